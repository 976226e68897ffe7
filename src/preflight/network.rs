//! Preflight's network: the proxy's subnets (in the VPC, in two or more
//! Availability Zones, with free addresses, dual-stack when asked) and the
//! runbook's security groups (there, in the VPC), read in one call each.

use std::collections::BTreeSet;

use anyhow::Result;
use aws_sdk_ec2::types::SecurityGroup;

use super::report::Report;
use crate::aws::errors::is_subnet_not_found;
use crate::aws::{Aws, describe_error, error_code};
use crate::runbook::{Runbook, Text};

pub(super) async fn check_subnets(
    rb: &Runbook,
    aws: &Aws,
    vpc: &str,
    r: &mut Report,
) -> Result<()> {
    let listed: Vec<String> = rb
        .proxy
        .subnet_ids
        .iter()
        .filter_map(Text::literal)
        .collect();
    let mut ids: Vec<String> = Vec::new();
    for id in listed {
        if ids.contains(&id) {
            r.problem(
                format!("subnet {id} is listed twice"),
                "list each subnet once, two or more in different Availability Zones",
            );
        } else {
            ids.push(id);
        }
    }
    if ids.is_empty() {
        return Ok(());
    }
    let out = aws
        .ec2
        .describe_subnets()
        .set_subnet_ids(Some(ids.clone()))
        .send()
        .await;
    let subnets = match out {
        Ok(o) => o.subnets.unwrap_or_default(),
        Err(e) if is_subnet_not_found(error_code(&e)) => {
            r.problem(
                format!(
                    "a subnet of {} does not exist: {}",
                    ids.join(", "),
                    describe_error(&e)
                ),
                "check network.subnet_ids",
            );
            return Ok(());
        }
        Err(e) => anyhow::bail!("cannot read the subnets: {}", describe_error(&e)),
    };
    let mut zones = BTreeSet::new();
    for s in &subnets {
        let id = s.subnet_id().unwrap_or_default();
        if s.vpc_id() != Some(vpc) {
            r.problem(
                format!(
                    "subnet {id} is in {}, not in {vpc}",
                    s.vpc_id().unwrap_or("another VPC")
                ),
                "use subnets of the DB's VPC",
            );
        }
        if s.available_ip_address_count() == Some(0) {
            r.problem(
                format!("subnet {id} has no free IP address"),
                "free addresses or use another subnet: the proxy needs them",
            );
        }
        zones.extend(s.availability_zone().map(String::from));
    }
    let network = rb.proxy.endpoint_network_type;
    if network != "IPV4" {
        let ipv4_only: Vec<&str> = subnets
            .iter()
            .filter(|s| s.ipv6_cidr_block_association_set().is_empty())
            .filter_map(|s| s.subnet_id())
            .collect();
        if !ipv4_only.is_empty() {
            r.problem(
                format!(
                    "endpoint_network_type = \"{network}\" needs dual-stack subnets, and {} \
                     has no IPv6 CIDR block",
                    ipv4_only.join(", ")
                ),
                "give the subnets IPv6 CIDR blocks (aws ec2 associate-subnet-cidr-block), list \
                 dual-stack subnets, or set proxy.endpoint_network_type = \"IPV4\"",
            );
        }
    }
    if zones.len() < 2 {
        r.problem(
            format!(
                "the subnets are in {} Availability Zone(s): {}",
                zones.len(),
                zones.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
            "list subnets in at least two Availability Zones",
        );
    } else {
        r.ok(format!(
            "{} subnets in {} Availability Zones",
            subnets.len(),
            zones.len()
        ));
    }
    Ok(())
}

pub(super) async fn check_groups(rb: &Runbook, aws: &Aws, vpc: &str, r: &mut Report) -> Result<()> {
    let mut ids: Vec<String> = rb
        .database
        .security_group_id
        .literal()
        .into_iter()
        .collect();
    ids.extend(rb.proxy.security_group_ids.iter().filter_map(Text::literal));
    ids.extend(
        rb.lambdas
            .iter()
            .filter_map(|l| l.security_group_id.as_ref())
            .filter_map(Text::literal),
    );
    let mut seen = BTreeSet::new();
    ids.retain(|id| seen.insert(id.clone()));
    if ids.is_empty() {
        return Ok(());
    }
    for (id, g) in ids.iter().zip(read_groups(aws, &ids).await?) {
        match g {
            Some(g) if g.vpc_id() == Some(vpc) => r.ok(format!("security group {id} in {vpc}")),
            Some(g) => r.problem(
                format!(
                    "security group {id} is in {}, not in {vpc}",
                    g.vpc_id().unwrap_or("another VPC")
                ),
                "use a security group of the DB's VPC",
            ),
            None => r.problem(
                format!("security group {id} does not exist"),
                "check the runbook's security group ids",
            ),
        }
    }
    Ok(())
}

/// Each group of `ids` (None: no such group), in one call for all (a
/// fleet's runbooks each make one call, not one per group). One that does
/// not exist fails the whole call: one call each then says which. Any
/// other failure is the answer: more calls would not help a throttled or
/// refused one.
pub(super) async fn read_groups(aws: &Aws, ids: &[String]) -> Result<Vec<Option<SecurityGroup>>> {
    let not_found = |code: Option<&str>| code.is_some_and(|c| c.ends_with(".NotFound"));
    let one = |id: &String| aws.ec2.describe_security_groups().group_ids(id).send();
    match aws
        .ec2
        .describe_security_groups()
        .set_group_ids(Some(ids.to_vec()))
        .send()
        .await
    {
        Ok(o) => Ok(ids
            .iter()
            .map(|id| {
                let g = o
                    .security_groups()
                    .iter()
                    .find(|g| g.group_id() == Some(id));
                g.cloned()
            })
            .collect()),
        Err(e) if not_found(error_code(&e)) && ids.len() > 1 => {
            futures_util::future::join_all(ids.iter().map(|id| async move {
                match one(id).await {
                    Ok(o) => Ok(o.security_groups().first().cloned()),
                    Err(e) if not_found(error_code(&e)) => Ok(None),
                    Err(e) => {
                        anyhow::bail!("cannot read security group {id}: {}", describe_error(&e))
                    }
                }
            }))
            .await
            .into_iter()
            .collect()
        }
        Err(e) if not_found(error_code(&e)) => Ok(vec![None]),
        Err(e) => anyhow::bail!(
            "cannot read security groups {}: {}",
            ids.join(", "),
            describe_error(&e)
        ),
    }
}
