//! Recipe step 7: register the DB instance (or Aurora cluster) with the
//! proxy's default target group, apply the runbook's connection-pool
//! settings, and wait until the target is AVAILABLE.
//!
//! The step (this file) stands on: `diff.rs` (its inputs and the decisions
//! made without a call) and `calls.rs` (its reads); tests in `tests.rs`.

mod calls;
mod diff;
#[cfg(test)]
mod tests;

use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use aws_sdk_rds::types::ConnectionPoolConfiguration;
use serde_json::Value;

use super::contract::{Actions, Ctx, Found, On, Outputs, Replacement, Resolver, StepImpl, Undone};
use crate::aws::errors::is_proxy_part_gone;
use crate::aws::rds::DEFAULT_TARGET_GROUP;
use crate::aws::{describe_error, error_code};
use crate::poll::{Wait, retry_on, wait_for};
use crate::runbook::Runbook;
use calls::{our_targets, targets_and_pool};
pub use diff::{Inputs, health_decision, pool_differences};

pub struct Targets;

/// How long to keep retrying a register while the DB is busy.
const BUSY_DB_LIMIT: Duration = Duration::from_secs(900);

#[async_trait]
impl StepImpl for Targets {
    type Inputs = Inputs;
    const NAME: &'static str = "targets";
    const IDENTITY: &'static [&'static str] = &["proxy_name", "instance_id", "cluster_id"];
    const REPLACEMENT: Replacement = Replacement::WithProxy {
        why: "a proxy's target group holds one DB, so registering another one means deregistering \
         the first (an outage); with a new proxy the new DB is served before the functions move",
        follows: &["proxy_name"],
    };
    const OUTPUTS: &'static [&'static str] = &["target", "health"];
    const ACTIONS: Actions = Actions {
        check: &[
            ("rds:DescribeDBProxyTargets", On::Any),
            ("rds:DescribeDBProxyTargetGroups", On::Any),
        ],
        apply: &[
            ("rds:DescribeDBProxyTargets", On::Any),
            ("rds:DescribeDBProxyTargetGroups", On::Any),
            ("rds:RegisterDBProxyTargets", On::Proxy),
            ("rds:ModifyDBProxyTargetGroup", On::Proxy),
        ],
        rollback: &[
            ("rds:DescribeDBProxyTargets", On::Any),
            ("rds:DeregisterDBProxyTargets", On::Proxy),
        ],
    };
    const AFTER: &'static [(&'static str, &'static str)] = &[
        (
            "secret-access",
            "the proxy logs in to the DB with the secret; without access the target is UNAVAILABLE with AUTH_FAILURE",
        ),
        (
            "db-ingress",
            "the DB must admit the proxy, or the target is UNAVAILABLE with CONNECTION_FAILED",
        ),
    ];

    fn inputs(&self, rb: &Runbook, r: &mut Resolver) -> Inputs {
        Inputs {
            proxy_name: r.output("proxy", "name"),
            instance_id: rb.database.instance_id.as_ref().map(|t| r.text(t)),
            cluster_id: rb.database.cluster_id.as_ref().map(|t| r.text(t)),
            pool: rb.pool.clone(),
            wait_timeout_seconds: rb.proxy.wait_timeout_seconds,
        }
    }

    fn describe(&self, i: &Inputs) -> String {
        let kind = if i.instance_id.is_some() {
            "DB instance"
        } else {
            "Aurora cluster"
        };
        format!(
            "{kind} {} registered with {} (pool: max {}%, idle {}%, borrow {}s)",
            i.target(),
            i.proxy_name,
            i.pool.max_connections_percent,
            i.pool.max_idle_connections_percent,
            i.pool.connection_borrow_timeout
        )
    }

    async fn check(&self, cx: &Ctx, i: &Inputs) -> Result<Found> {
        let (ours, pool) = targets_and_pool(cx, i).await?;
        if ours.is_empty() {
            return Ok(Found::Missing);
        }
        let diffs = pool_differences(pool.as_ref(), &i.pool);
        if !diffs.is_empty() {
            // ModifyDBProxyTargetGroup changes them in place.
            let health = match health_decision(&ours) {
                Wait::Ready(h) | Wait::Pending(h) => h,
            };
            return Ok(Found::Update(
                diffs.into_iter().map(|d| format!("pool {d}")).collect(),
                Outputs::from([
                    ("target".into(), i.target().into()),
                    ("health".into(), health),
                ]),
            ));
        }
        Ok(match health_decision(&ours) {
            Wait::Ready(h) => Found::Done(Outputs::from([
                ("target".into(), i.target().into()),
                ("health".into(), h),
            ])),
            Wait::Pending(h) => Found::Incomplete(format!("target health {h}"), None),
        })
    }

    async fn apply(&self, cx: &Ctx, i: &Inputs) -> Result<Outputs> {
        // What is there, read at once; then register and set the pool one
        // after the other (RDS may refuse to change a target group while a
        // target registers; untested on AWS, so not risked).
        let (ours, pool) = targets_and_pool(cx, i).await?;
        if ours.is_empty() {
            cx.bar
                .set(format!("registering {} with {}", i.target(), i.proxy_name));
            let registered = retry_on(
                cx.bar,
                &["InvalidDBInstanceState", "InvalidDBClusterStateFault"],
                BUSY_DB_LIMIT,
                || {
                    cx.aws
                        .rds
                        .register_db_proxy_targets()
                        .db_proxy_name(&i.proxy_name)
                        .target_group_name(DEFAULT_TARGET_GROUP)
                        .set_db_instance_identifiers(i.instance_id.clone().map(|v| vec![v]))
                        .set_db_cluster_identifiers(i.cluster_id.clone().map(|v| vec![v]))
                        .send()
                },
            )
            .await?;
            registered.map_err(|e| {
                anyhow::anyhow!(
                    "cannot register {} with DB proxy {}: {}",
                    i.target(),
                    i.proxy_name,
                    describe_error(&e)
                )
            })?;
        }
        if !pool_differences(pool.as_ref(), &i.pool).is_empty() {
            cx.bar.set("applying the connection pool settings");
            let p = &i.pool;
            cx.aws
                .rds
                .modify_db_proxy_target_group()
                .db_proxy_name(&i.proxy_name)
                .target_group_name(DEFAULT_TARGET_GROUP)
                .connection_pool_config(
                    ConnectionPoolConfiguration::builder()
                        .max_connections_percent(p.max_connections_percent as i32)
                        .max_idle_connections_percent(p.max_idle_connections_percent as i32)
                        .connection_borrow_timeout(p.connection_borrow_timeout as i32)
                        .init_query(p.init_query.clone().unwrap_or_default())
                        .set_session_pinning_filters(Some(p.session_pinning_filters.clone()))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot set the pool settings of {}: {}",
                        i.proxy_name,
                        describe_error(&e)
                    )
                })?;
        }
        // Registered and healthy before a change of the pool alone: no
        // wait (its first look would come half a second later).
        if !ours.is_empty()
            && let Wait::Ready(health) = health_decision(&ours)
        {
            return Ok(Outputs::from([
                ("target".into(), i.target().into()),
                ("health".into(), health),
            ]));
        }
        let what = format!("target {} of {}", i.target(), i.proxy_name);
        let health = wait_for(
            cx.bar,
            &what,
            Duration::from_secs(i.wait_timeout_seconds),
            || async {
                crate::rounds::paced_look(cx.aws).await?;
                Ok(health_decision(&our_targets(cx, i).await?))
            },
        )
        .await?;
        Ok(Outputs::from([
            ("target".into(), i.target().into()),
            ("health".into(), health),
        ]))
    }

    async fn rollback(&self, cx: &Ctx, i: &Inputs, _: Option<&Value>) -> Result<Undone> {
        if our_targets(cx, i).await?.is_empty() {
            return Ok(Undone::AlreadyGone(format!(
                "{} is not registered with {}",
                i.target(),
                i.proxy_name
            )));
        }
        cx.bar.set(format!(
            "deregistering {} from {}",
            i.target(),
            i.proxy_name
        ));
        match cx
            .aws
            .rds
            .deregister_db_proxy_targets()
            .db_proxy_name(&i.proxy_name)
            .target_group_name(DEFAULT_TARGET_GROUP)
            .set_db_instance_identifiers(i.instance_id.clone().map(|v| vec![v]))
            .set_db_cluster_identifiers(i.cluster_id.clone().map(|v| vec![v]))
            .send()
            .await
        {
            Ok(_) => Ok(Undone::Done(format!(
                "deregistered {} from {}",
                i.target(),
                i.proxy_name
            ))),
            Err(e) if is_proxy_part_gone(error_code(&e)) => Ok(Undone::AlreadyGone(format!(
                "{} is not registered with {}",
                i.target(),
                i.proxy_name
            ))),
            Err(e) => anyhow::bail!(
                "cannot deregister {} from {}: {}",
                i.target(),
                i.proxy_name,
                describe_error(&e)
            ),
        }
    }
}
