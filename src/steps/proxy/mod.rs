//! Recipe step 2 (second half): the DB proxy itself, waited on until it is
//! `available`. A proxy of that name that differs from the runbook (engine,
//! TLS, auth, subnets, role, security groups) is drift: reported, never
//! adopted silently.
//!
//! The step (this file) stands on: `inputs.rs` (what the state records),
//! `subnets.rs` (the subnets AWS left out), `diff.rs` (the decisions made
//! without a call) and `calls.rs` (the calls to RDS); tests in `tests.rs`.

mod calls;
mod diff;
mod inputs;
mod subnets;
#[cfg(test)]
mod tests;

use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use serde_json::Value;

use super::contract::{Actions, Ctx, Found, On, Outputs, Resolver, StepImpl, Undone};
use crate::aws::errors::is_proxy_not_found;
use crate::aws::rds::find;
use crate::aws::{describe_error, error_code};
use crate::poll::Wait;
use crate::rounds::{self, wait_in_rounds};
use crate::runbook::Runbook;
use calls::{create, find_listed, find_once, modify, owned, tags_of, wait_available};
pub use diff::{Differences, differences, status_decision};
use diff::{outputs, proxy_tags, status_of};
pub use inputs::{AuthInput, Inputs};
use subnets::{report_left_out, requested_subnets};

pub struct Proxy;

/// The name of the runbook's proxy, for the rollback guard: as the state
/// recorded it (`recorded`: a step's recorded inputs), else as the runbook
/// gives it when it is known (not an unset `${env.*}`).
pub fn name_for_guard(
    rb: &Runbook,
    recorded: &dyn Fn(&str) -> Option<serde_json::Value>,
) -> Option<String> {
    let from_state = recorded(<Proxy as StepImpl>::NAME)
        .as_ref()
        .and_then(|i| i.get("name"))
        .and_then(|n| n.as_str())
        .map(str::to_string);
    let none = |_: &str, _: &str| None;
    from_state.or_else(|| {
        (!rb.proxy.name.unset_env)
            .then(|| rb.proxy.name.fill(&none).ok())
            .flatten()
    })
}

#[async_trait]
impl StepImpl for Proxy {
    type Inputs = Inputs;
    const NAME: &'static str = "proxy";
    const IDENTITY: &'static [&'static str] = &["name"];
    const BY_VALUE: Option<&'static str> = Some("proxy.name");
    const OUTPUTS: &'static [&'static str] = &["arn", "id", "endpoint", "name"];
    const ACTIONS: Actions = Actions {
        check: &[
            ("rds:DescribeDBProxies", On::Any),
            ("rds:ListTagsForResource", On::Proxy),
        ],
        apply: &[
            ("rds:DescribeDBProxies", On::Any),
            ("rds:ListTagsForResource", On::Proxy),
            ("rds:CreateDBProxy", On::Proxy),
            ("rds:ModifyDBProxy", On::Proxy),
            ("rds:AddTagsToResource", On::Proxy),
            ("rds:RemoveTagsFromResource", On::Proxy),
            // CreateDBProxy and ModifyDBProxy hand RDS the proxy's role;
            // not a call of its own, so no emulator records it.
            ("iam:PassRole", On::ProxyRoleToRds),
            // A subnet AWS left out of the proxy, named with its zone.
            ("ec2:DescribeSubnets", On::Any),
        ],
        rollback: &[
            ("rds:DescribeDBProxies", On::Any),
            ("rds:ListTagsForResource", On::Proxy),
            ("rds:DeleteDBProxy", On::Proxy),
        ],
    };
    const AFTER: &'static [(&'static str, &'static str)] = &[(
        "secret-access",
        "the proxy logs in with what it grants: a proxy moved to another secret or to IAM \
         before the grant would fail to log in meanwhile",
    )];
    // A new proxy logs in only once its target is registered, which waits
    // on secret-access itself.
    const AFTER_ONLY_TO_CHANGE: &'static [&'static str] = &["secret-access"];

    fn inputs(&self, rb: &Runbook, r: &mut Resolver) -> Inputs {
        let p = &rb.proxy;
        Inputs {
            name: r.text(&p.name),
            engine_family: rb.database.engine_family.as_str().to_string(),
            secret_arn: rb.database.secret_arn.as_ref().map(|s| r.text(s)),
            iam_auth: p.iam_auth.as_str().to_string(),
            auth: rb
                .auth
                .iter()
                .map(|a| AuthInput {
                    secret_arn: r.text(&a.secret_arn),
                    user: a.user.clone(),
                    iam_auth: a.iam_auth.to_string(),
                    client_password_auth_type: a.client_password_auth_type.map(String::from),
                    description: a.description.clone(),
                })
                .collect(),
            default_auth_scheme: p.default_auth_scheme.as_str().to_string(),
            endpoint_network_type: p.endpoint_network_type.to_string(),
            target_connection_network_type: p.target_connection_network_type.to_string(),
            role_arn: r.text(&p.role_arn),
            subnet_ids: r.list(&p.subnet_ids),
            security_group_ids: r.list(&p.security_group_ids),
            require_tls: p.require_tls,
            idle_client_timeout: p.idle_client_timeout,
            debug_logging: p.debug_logging,
            tags: rb.tags.clone(),
            wait_timeout_seconds: p.wait_timeout_seconds,
        }
    }

    fn describe(&self, i: &Inputs) -> String {
        let auth = match (i.default_auth_scheme.as_str(), i.auth.len()) {
            ("IAM_AUTH", 0) => "end-to-end IAM".to_string(),
            ("IAM_AUTH", n) => format!("end-to-end IAM and {n} secrets"),
            (_, 0) => format!("IAM auth {}", i.iam_auth),
            (_, n) => format!("{n} secrets"),
        };
        let network = match (
            i.endpoint_network_type.as_str(),
            i.target_connection_network_type.as_str(),
        ) {
            ("IPV4", "IPV4") => String::new(),
            (clients, db) => format!(", clients over {clients}, the DB over {db}"),
        };
        format!(
            "DB proxy {} ({}, TLS {}, {auth}{network}) in {} subnets",
            i.name,
            i.engine_family,
            if i.require_tls {
                "required"
            } else {
                "optional"
            },
            i.subnet_ids.len()
        )
    }

    async fn existing(&self, cx: &Ctx, i: &Inputs) -> Result<Option<Outputs>> {
        find(cx.aws, &i.name)
            .await?
            .as_ref()
            .map(outputs)
            .transpose()
    }

    async fn check(&self, cx: &Ctx, i: &Inputs) -> Result<Found> {
        let Some(p) = find_listed(cx, &i.name).await? else {
            return Ok(Found::Missing);
        };
        let (ours, tags) = tags_of(cx, &p).await?;
        if !ours {
            return Ok(Found::Foreign(cx.not_ours(&format!("DB proxy {}", i.name))));
        }
        let Differences { in_place, replace } = differences(&p, i, &requested_subnets(cx));
        if !replace.is_empty() {
            return Ok(Found::Replace(replace));
        }
        let status = status_of(&p);
        let wait = status_decision(&status)?;
        let mut changes = in_place;
        changes.extend(proxy_tags(cx, i, &tags).lines);
        match wait {
            _ if !changes.is_empty() => Ok(Found::Update(changes, outputs(&p)?)),
            Wait::Ready(()) => Ok(Found::Done(outputs(&p)?)),
            // Still creating or modifying, with its id and endpoint already
            // (what the steps after it read); not yet without an endpoint.
            Wait::Pending(s) => Ok(Found::Incomplete(
                format!("the proxy is {s}: wait for it"),
                Some(outputs(&p)?).filter(|o| o.values().all(|v| !v.is_empty())),
            )),
        }
    }

    async fn tag_owned(&self, cx: &Ctx, outputs: &Outputs) -> Result<()> {
        let Some(arn) = super::common::output(outputs, "arn") else {
            return Ok(());
        };
        let (k, v) = super::common::owner_tag(cx);
        let sent = cx.aws.rds.add_tags_to_resource().resource_name(&arn);
        let sent = sent.set_tags(Some(super::common::rds_tags([(&k, &v)])));
        sent.send().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot tag DB proxy {arn}: {}",
                crate::aws::describe_error(&e)
            )
        })?;
        Ok(())
    }

    async fn apply(&self, cx: &Ctx, i: &Inputs) -> Result<Outputs> {
        // The engine has just checked: the proxy is missing, or ours and
        // unfinished or differing in what ModifyDBProxy changes. Whether it
        // is known to be ours: made by this call. One that existed (a run
        // that died after the create) is ours once its tag says so.
        let p = match find_once(cx, &i.name).await? {
            None => {
                let created = create(cx, i).await?;
                // Made by this call with the runbook's subnets; else as the
                // state recorded it was made.
                let requested = match created {
                    true => i.subnet_ids.clone(),
                    false => requested_subnets(cx),
                };
                let p = wait_available(cx, i, created, false, &requested).await?;
                if created {
                    // Made just now as the runbook says, tags and all.
                    report_left_out(cx, &p, i).await;
                    return outputs(&p);
                }
                p
            }
            // Available already (an update): no wait before the change.
            Some(p) if matches!(status_decision(&status_of(&p))?, Wait::Ready(())) => p,
            Some(_) => {
                let requested = requested_subnets(cx);
                wait_available(cx, i, false, false, &requested).await?
            }
        };
        let (ours, tags) = tags_of(cx, &p).await?;
        if !ours {
            anyhow::bail!(cx.not_ours(&format!("DB proxy {}", i.name)));
        }
        let tags = proxy_tags(cx, i, &tags);
        if differences(&p, i, &i.subnet_ids).in_place.is_empty() && tags.is_empty() {
            return outputs(&p);
        }
        modify(cx, i, &p, tags).await?;
        let requested = requested_subnets(cx);
        outputs(&wait_available(cx, i, true, true, &requested).await?)
    }

    async fn rollback(&self, cx: &Ctx, i: &Inputs, _: Option<&Value>) -> Result<Undone> {
        let name = &i.name;
        let Some(p) = find(cx.aws, name).await? else {
            return Ok(Undone::AlreadyGone(format!(
                "DB proxy {name} is already gone"
            )));
        };
        if !owned(cx, &p).await? {
            return Ok(Undone::LeftAlone(format!(
                "DB proxy {name} lacks our tag, so it is not ours to delete"
            )));
        }
        if status_of(&p) != "deleting" {
            cx.bar.set(format!("deleting DB proxy {name}"));
            match cx
                .aws
                .rds
                .delete_db_proxy()
                .db_proxy_name(name)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if is_proxy_not_found(error_code(&e)) => {
                    return Ok(Undone::AlreadyGone(format!(
                        "DB proxy {name} is already gone"
                    )));
                }
                Err(e) => anyhow::bail!("cannot delete DB proxy {name}: {}", describe_error(&e)),
            }
        }
        // Deletion can take long; the proxy's network interfaces may linger
        // after it (the security group's rollback waits for those).
        let look = rounds::proxies(cx.aws);
        wait_in_rounds(
            cx.bar,
            &format!("DB proxy {name} to be deleted"),
            Duration::from_secs(i.wait_timeout_seconds),
            &look,
            || async {
                Ok(match look.proxy(name)? {
                    None => Wait::Ready(()),
                    Some(p) => Wait::Pending(status_of(&p)),
                })
            },
        )
        .await?;
        Ok(Undone::Done(format!("deleted DB proxy {name}")))
    }
}
