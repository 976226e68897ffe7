//! What the proxy step decides without a call: what a status means while
//! waiting, how the proxy in the account differs from the runbook (in place,
//! or only by a new proxy), how its tags must change, and its outputs.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use aws_sdk_rds::types::{
    DbProxy, DbProxyStatus, EndpointNetworkType, IamAuthMode, TargetConnectionNetworkType,
    UserAuthConfigInfo,
};

use super::inputs::Inputs;
use super::subnets::kept_subnets;
use crate::poll::Wait;
use crate::steps::common::{TagChanges, tag_changes};
use crate::steps::contract::{Ctx, Outputs};

/// What to do about a status while waiting for `available`.
pub fn status_decision(status: &str) -> Result<Wait<()>> {
    match status {
        "available" => Ok(Wait::Ready(())),
        "incompatible-network" => anyhow::bail!(
            "the proxy is incompatible-network, which does not pass by waiting: check that its \
             subnets are in the DB's VPC, in at least two Availability Zones that RDS Proxy \
             supports, with free IP addresses; then roll the proxy back and run again"
        ),
        "insufficient-resource-limits" => anyhow::bail!(
            "the proxy is insufficient-resource-limits, which does not pass by waiting: free IP \
             addresses in its subnets or raise the account's limits (network interfaces), then \
             roll the proxy back and run again"
        ),
        "deleting" => {
            anyhow::bail!("the proxy is being deleted; wait until it is gone, then run again")
        }
        "suspended" | "suspending" => anyhow::bail!(
            "the proxy is {status}: its target or credentials may be broken; see its events in \
             the RDS console"
        ),
        other => Ok(Wait::Pending(other.to_string())),
    }
}

pub(super) fn status_of(p: &DbProxy) -> String {
    p.status()
        .map_or("unknown", DbProxyStatus::as_str)
        .to_string()
}

pub(super) fn set(v: &[String]) -> BTreeSet<&str> {
    v.iter().map(String::as_str).collect()
}

/// How the proxy in the account differs from the runbook, each entry
/// `what: the account's -> the runbook's`.
#[derive(Debug, Default, PartialEq)]
pub struct Differences {
    /// What ModifyDBProxy changes in place.
    pub in_place: Vec<String>,
    /// What only a new proxy can change: the engine family and subnets.
    pub replace: Vec<String>,
}

pub fn differences(p: &DbProxy, i: &Inputs, requested: &[String]) -> Differences {
    let mut d = Differences::default();
    let mut cmp = |in_place: bool, what: &str, have: String, want: String| {
        if have != want {
            let list = if in_place {
                &mut d.in_place
            } else {
                &mut d.replace
            };
            list.push(format!("{what}: {have} -> {want}"));
        }
    };
    cmp(
        false,
        "engine family",
        p.engine_family().unwrap_or_default().to_string(),
        i.engine_family.clone(),
    );
    cmp(
        false,
        "subnets",
        format!("{:?}", set(p.vpc_subnet_ids())),
        format!("{:?}", set(&kept_subnets(p, i, requested))),
    );
    cmp(
        false,
        "endpoint network type",
        p.endpoint_network_type()
            .map_or("IPV4", EndpointNetworkType::as_str)
            .to_string(),
        i.endpoint_network_type.clone(),
    );
    cmp(
        false,
        "target connection network type",
        p.target_connection_network_type()
            .map_or("IPV4", TargetConnectionNetworkType::as_str)
            .to_string(),
        i.target_connection_network_type.clone(),
    );
    cmp(
        true,
        "require TLS",
        p.require_tls().unwrap_or(false).to_string(),
        i.require_tls.to_string(),
    );
    cmp(
        true,
        "default auth scheme",
        p.default_auth_scheme().unwrap_or("NONE").to_string(),
        i.default_auth_scheme.clone(),
    );
    let have: BTreeMap<&str, &UserAuthConfigInfo> = p
        .auth()
        .iter()
        .filter_map(|a| a.secret_arn().map(|s| (s, a)))
        .collect();
    let want = i.entries();
    let list = |arns: Vec<&str>| {
        if arns.is_empty() {
            "none".to_string()
        } else {
            arns.join(", ")
        }
    };
    // The book's one secret keeps its wording; listed ones are named.
    let (secrets, of): (&str, fn(&str) -> String) = if i.auth.is_empty() {
        ("secret", |_: &str| String::new())
    } else {
        ("secrets", |arn: &str| format!(" of {arn}"))
    };
    cmp(
        true,
        secrets,
        list(have.keys().copied().collect()),
        list(
            want.iter()
                .map(|a| a.secret_arn.as_str())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        ),
    );
    // Each secret's settings (clients' IAM, password authentication, the
    // description), compared where the runbook sets them.
    for a in &want {
        let Some(h) = have.get(a.secret_arn.as_str()) else {
            continue;
        };
        let of = of(&a.secret_arn);
        cmp(
            true,
            &format!("IAM auth{of}"),
            h.iam_auth()
                .map_or("DISABLED", IamAuthMode::as_str)
                .to_string(),
            a.iam_auth.clone(),
        );
        if let Some(c) = &a.client_password_auth_type {
            cmp(
                true,
                &format!("client password auth{of}"),
                h.client_password_auth_type()
                    .map_or("default", |c| c.as_str())
                    .to_string(),
                c.clone(),
            );
        }
        if let Some(u) = &a.user {
            cmp(
                true,
                &format!("user{of}"),
                h.user_name().unwrap_or("none").to_string(),
                u.clone(),
            );
        }
        if let Some(d) = &a.description {
            cmp(
                true,
                &format!("description{of}"),
                h.description().unwrap_or_default().to_string(),
                d.clone(),
            );
        }
    }
    cmp(
        true,
        "role",
        p.role_arn().unwrap_or_default().to_string(),
        i.role_arn.clone(),
    );
    cmp(
        true,
        "security groups",
        format!("{:?}", set(p.vpc_security_group_ids())),
        format!("{:?}", set(&i.security_group_ids)),
    );
    if let Some(t) = p.idle_client_timeout() {
        cmp(
            true,
            "idle client timeout",
            t.to_string(),
            i.idle_client_timeout.to_string(),
        );
    }
    if let Some(b) = p.debug_logging() {
        cmp(
            true,
            "debug logging",
            b.to_string(),
            i.debug_logging.to_string(),
        );
    }
    d
}

/// How the proxy's tags must change (see [`tag_changes`]).
pub(super) fn proxy_tags(cx: &Ctx<'_>, i: &Inputs, have: &[(String, String)]) -> TagChanges {
    tag_changes(
        cx,
        have.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &i.tags,
    )
}

pub(super) fn outputs(p: &DbProxy) -> Result<Outputs> {
    let arn = p.db_proxy_arn().context("a DB proxy without an ARN")?;
    let id = crate::arn::proxy_id(arn)
        .with_context(|| format!("cannot find the prx- id in the proxy ARN {arn}"))?;
    Ok(Outputs::from([
        ("arn".to_string(), arn.to_string()),
        ("id".to_string(), id.to_string()),
        (
            "endpoint".to_string(),
            p.endpoint().unwrap_or_default().to_string(),
        ),
        (
            "name".to_string(),
            p.db_proxy_name().unwrap_or_default().to_string(),
        ),
    ]))
}
