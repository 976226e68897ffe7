//! The proxy step's calls to RDS: the proxy read once a pass, its tags and
//! whether they say it is ours, CreateDBProxy, ModifyDBProxy with the tags,
//! and the wait until it is `available`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_rds::types::{
    DbProxy, DefaultAuthScheme, EndpointNetworkType, EngineFamily, TargetConnectionNetworkType,
};

use super::diff::{differences, status_decision, status_of};
use super::inputs::{Inputs, auth_config};
use crate::aws::errors::is_proxy_exists;
use crate::aws::rds::find;
use crate::aws::{describe_error, error_code};
use crate::poll::Wait;
use crate::rounds::{self, wait_in_rounds};
use crate::steps::common::{TagChanges, rds_tags};
use crate::steps::contract::Ctx;

/// The proxy's tags, and whether they say it is ours.
pub(super) async fn tags_of(cx: &Ctx<'_>, p: &DbProxy) -> Result<(bool, Vec<(String, String)>)> {
    let arn = p.db_proxy_arn().context("a DB proxy without an ARN")?;
    let tags = crate::aws::rds::tags(cx.aws, arn).await?;
    let ours = cx.claims(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    Ok((ours, tags))
}

pub(super) async fn owned(cx: &Ctx<'_>, p: &DbProxy) -> Result<bool> {
    Ok(tags_of(cx, p).await?.0)
}

/// Changes a proxy of ours in place: ModifyDBProxy with the runbook's
/// settings (only when one differs), then its tags.
pub(super) async fn modify(cx: &Ctx<'_>, i: &Inputs, p: &DbProxy, tags: TagChanges) -> Result<()> {
    let arn = p.db_proxy_arn().context("a DB proxy without an ARN")?;
    if !differences(p, i, &i.subnet_ids).in_place.is_empty() {
        cx.bar.set(format!("modifying DB proxy {}", i.name));
        let auth = auth_config(i);
        let no_secret = auth.is_empty();
        let mut call = cx
            .aws
            .rds
            .modify_db_proxy()
            .db_proxy_name(&i.name)
            .default_auth_scheme(DefaultAuthScheme::from(i.default_auth_scheme.as_str()))
            .set_auth(Some(auth))
            .role_arn(&i.role_arn)
            .set_security_groups(Some(i.security_group_ids.clone()))
            .require_tls(i.require_tls)
            .idle_client_timeout(i.idle_client_timeout as i32)
            .debug_logging(i.debug_logging)
            .customize();
        if no_secret {
            // End-to-end IAM without a secret: the proxy's secrets removed.
            call = call.mutate_request(crate::aws::rds::empty_list("Auth"));
        }
        call.send().await.map_err(|e| {
            anyhow::anyhow!("cannot modify DB proxy {}: {}", i.name, describe_error(&e))
        })?;
    }
    if !tags.set.is_empty() {
        let set = rds_tags(tags.set.iter().map(|(k, v)| (k, v)));
        cx.aws
            .rds
            .add_tags_to_resource()
            .resource_name(arn)
            .set_tags(Some(set))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot tag {arn}: {}", describe_error(&e)))?;
    }
    if !tags.remove.is_empty() {
        cx.aws
            .rds
            .remove_tags_from_resource()
            .resource_name(arn)
            .set_tag_keys(Some(tags.remove))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot untag {arn}: {}", describe_error(&e)))?;
    }
    Ok(())
}

/// The proxy as the place's listing of every proxy has it (a check's:
/// shared by a fleet's runbooks for a few seconds); the apply reads it
/// again ([`find_once`]) before it writes.
pub(super) async fn find_listed(cx: &Ctx<'_>, name: &str) -> Result<Option<DbProxy>> {
    Ok(rounds::proxies_now(cx.aws).await?.get(name).cloned())
}

/// The proxy by its name, read once in this pass of the step. One this
/// state has no record of is looked up in the place's listing of the last
/// few seconds (preflight's, for a run), which a fleet's runbooks share.
pub(super) async fn find_once(cx: &Ctx<'_>, name: &str) -> Result<Option<DbProxy>> {
    let read = async {
        match cx.recorded {
            None => Ok(rounds::proxies_now(cx.aws).await?.get(name).cloned()),
            Some(_) => find(cx.aws, name).await,
        }
    };
    cx.read_once(format!("proxy {name}"), read).await
}

/// Creates the proxy; false when one of that name appeared meanwhile
/// (not known to be ours yet).
pub(super) async fn create(cx: &Ctx<'_>, i: &Inputs) -> Result<bool> {
    cx.bar.set(format!("creating DB proxy {}", i.name));
    let tags = rds_tags(&i.tags);
    let created = cx
        .aws
        .rds
        .create_db_proxy()
        .db_proxy_name(&i.name)
        .engine_family(EngineFamily::from(i.engine_family.as_str()))
        .default_auth_scheme(DefaultAuthScheme::from(i.default_auth_scheme.as_str()))
        .set_auth(Some(auth_config(i)).filter(|a| !a.is_empty()))
        .endpoint_network_type(EndpointNetworkType::from(i.endpoint_network_type.as_str()))
        .target_connection_network_type(TargetConnectionNetworkType::from(
            i.target_connection_network_type.as_str(),
        ))
        .role_arn(&i.role_arn)
        .set_vpc_subnet_ids(Some(i.subnet_ids.clone()))
        .set_vpc_security_group_ids(Some(i.security_group_ids.clone()))
        .require_tls(i.require_tls)
        .idle_client_timeout(i.idle_client_timeout as i32)
        .debug_logging(i.debug_logging)
        .set_tags(Some(tags))
        .send()
        .await;
    match created {
        Ok(_) => Ok(true),
        Err(e) if is_proxy_exists(error_code(&e)) => Ok(false),
        Err(e) => anyhow::bail!("cannot create DB proxy {}: {}", i.name, describe_error(&e)),
    }
}

/// Waits until the proxy is `available` (and, after a `modified`, as
/// the runbook says in what ModifyDBProxy changes: the change may take
/// a moment to show), failing on what only a new proxy would change.
pub(super) async fn wait_available(
    cx: &Ctx<'_>,
    i: &Inputs,
    ours: bool,
    modified: bool,
    requested: &[String],
) -> Result<DbProxy> {
    let what = format!("DB proxy {}", i.name);
    let ours = AtomicBool::new(ours);
    let ours = &ours;
    let look = rounds::proxies(cx.aws);
    wait_in_rounds(
        cx.bar,
        &what,
        Duration::from_secs(i.wait_timeout_seconds),
        &look,
        || async {
            let Some(p) = look.proxy(&i.name)? else {
                return Ok(Wait::Pending("not visible yet".into()));
            };
            if !ours.load(Ordering::Relaxed) {
                if !owned(cx, &p).await? {
                    anyhow::bail!(cx.not_ours(&what));
                }
                ours.store(true, Ordering::Relaxed);
            }
            let diffs = differences(&p, i, requested);
            if !diffs.replace.is_empty() {
                anyhow::bail!(
                    "{what} differs from the runbook in what only a new proxy changes: {}",
                    diffs.replace.join("; ")
                );
            }
            Ok(match status_decision(&status_of(&p))? {
                Wait::Ready(()) if modified && !diffs.in_place.is_empty() => {
                    Wait::Pending(format!("applying {}", diffs.in_place.join("; ")))
                }
                Wait::Ready(()) => Wait::Ready(p),
                Wait::Pending(s) => Wait::Pending(s),
            })
        },
    )
    .await
}
