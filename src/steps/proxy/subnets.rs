//! The proxy's subnets, kept apart: AWS leaves out, without a word, a
//! subnet in an Availability Zone RDS Proxy does not support. Which of the
//! runbook's subnets the proxy should have, the ones it was made with (from
//! the state), and the one note that names those left out.

use aws_sdk_rds::types::DbProxy;

use super::inputs::Inputs;
use crate::steps::contract::Ctx;

/// The runbook's subnets as the proxy should have them: less those AWS
/// left out when the proxy was made with `requested` (it drops, without a
/// word, subnets in an Availability Zone RDS Proxy does not support). So
/// they are not a difference on every later check, while a subnet added
/// to the runbook since, or one the proxy has and the runbook not, is.
pub(super) fn kept_subnets(p: &DbProxy, i: &Inputs, requested: &[String]) -> Vec<String> {
    let has = p.vpc_subnet_ids();
    i.subnet_ids
        .iter()
        .filter(|s| has.contains(s) || !requested.contains(s))
        .cloned()
        .collect()
}

/// The subnets the proxy was made with, as the state recorded them (none
/// known: every runbook subnet must be the proxy's).
pub(super) fn requested_subnets(cx: &Ctx<'_>) -> Vec<String> {
    cx.recorded
        .and_then(|r| r.inputs.as_ref()?.get("subnet_ids")?.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

/// Says once, when the proxy is made, which subnets AWS left out and in
/// which Availability Zone, and what to do.
pub(super) async fn report_left_out(cx: &Ctx<'_>, p: &DbProxy, i: &Inputs) {
    let has = p.vpc_subnet_ids();
    let left: Vec<String> = i
        .subnet_ids
        .iter()
        .filter(|s| !has.contains(s))
        .cloned()
        .collect();
    if left.is_empty() {
        return;
    }
    let azs = cx
        .aws
        .ec2
        .describe_subnets()
        .set_subnet_ids(Some(left.clone()))
        .send()
        .await
        .map(|o| {
            o.subnets()
                .iter()
                .filter_map(|s| {
                    Some((
                        s.subnet_id()?.to_string(),
                        s.availability_zone()?.to_string(),
                    ))
                })
                .collect::<std::collections::HashMap<_, _>>()
        })
        .unwrap_or_default();
    let named: Vec<String> = left
        .iter()
        .map(|s| match azs.get(s) {
            Some(az) => format!("{s} ({az})"),
            None => s.clone(),
        })
        .collect();
    cx.bar.note(format!(
        "AWS left out {} from the proxy: RDS Proxy does not support that Availability Zone; \
         the proxy uses {} subnet(s). Later plans do not show this as a change; remove it from \
         proxy.subnet_ids to match (nothing changes then), and keep two or more supported \
         Availability Zones",
        named.join(", "),
        has.len()
    ));
}
