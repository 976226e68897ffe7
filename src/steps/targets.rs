//! Recipe step 7: register the DB instance (or Aurora cluster) with the
//! proxy's default target group, apply the runbook's connection-pool
//! settings, and wait until the target is AVAILABLE.

use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use aws_sdk_rds::types::{
    ConnectionPoolConfiguration, ConnectionPoolConfigurationInfo, DbProxyTarget, TargetRole,
    TargetType,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::contract::{Actions, Ctx, Found, On, Outputs, Replacement, Resolver, StepImpl, Undone};
use crate::aws::errors::is_proxy_part_gone;
use crate::aws::rds::{DEFAULT_TARGET_GROUP, health_text, pool_now};
use crate::aws::{describe_error, error_code};
use crate::poll::{Wait, retry_on, wait_for};
use crate::runbook::{Pool, Runbook};

pub struct Targets;

/// How long to keep retrying a register while the DB is busy.
const BUSY_DB_LIMIT: Duration = Duration::from_secs(900);

#[derive(Serialize, Deserialize)]
pub struct Inputs {
    proxy_name: String,
    instance_id: Option<String>,
    cluster_id: Option<String>,
    pool: Pool,
    #[serde(rename = "_wait_timeout_seconds")]
    wait_timeout_seconds: u64,
}

impl Inputs {
    fn target(&self) -> &str {
        self.instance_id
            .as_deref()
            .or(self.cluster_id.as_deref())
            .unwrap_or_default()
    }
}

/// Whether `t` is the runbook's DB (the instance, or the cluster's entry).
/// RDS identifiers are not case-sensitive: AWS keeps them in lower case, so
/// `MyDB` in a runbook is listed as `mydb`.
pub fn is_our_target(t: &DbProxyTarget, i: &Inputs) -> bool {
    let same =
        |listed: Option<&str>, ours: &str| listed.is_some_and(|l| l.eq_ignore_ascii_case(ours));
    match (&i.instance_id, &i.cluster_id) {
        (Some(id), _) => same(t.rds_resource_id(), id),
        (None, Some(c)) => same(t.tracked_cluster_id(), c) || same(t.rds_resource_id(), c),
        (None, None) => false,
    }
}

/// What the health of our entries means while waiting for AVAILABLE.
/// UNAVAILABLE is part of the usual path (REGISTERING, UNAVAILABLE,
/// AVAILABLE), so it is waited on, with its reason shown, until the deadline.
///
/// An instance has one entry. For an Aurora cluster AWS lists the cluster
/// (TRACKED_CLUSTER) and each of its instances (RDS_INSTANCE with
/// TrackedClusterId): the writer's health is what counts (the default
/// endpoint sends everything to it); the cluster's own entry counts only
/// while no instance is listed.
pub fn health_decision(ours: &[DbProxyTarget]) -> Wait<String> {
    let instances: Vec<&DbProxyTarget> = ours
        .iter()
        .filter(|t| {
            t.tracked_cluster_id().is_some() && t.r#type() == Some(&TargetType::RdsInstance)
        })
        .collect();
    let writers: Vec<&DbProxyTarget> = instances
        .iter()
        .copied()
        .filter(|t| t.role() == Some(&TargetRole::ReadWrite))
        .collect();
    let counted = if !writers.is_empty() {
        writers
    } else if !instances.is_empty() {
        instances
    } else {
        ours.iter().collect()
    };
    if counted.is_empty() {
        return Wait::Pending("not listed yet".into());
    }
    let waiting: Vec<String> = counted
        .iter()
        .filter(|t| {
            t.target_health()
                .and_then(|h| h.state())
                .map(|s| s.as_str())
                != Some("AVAILABLE")
        })
        .map(|t| match (counted.len(), t.rds_resource_id()) {
            (1, _) | (_, None) => health_text(t.target_health()),
            (_, Some(id)) => format!("{id}: {}", health_text(t.target_health())),
        })
        .collect();
    if waiting.is_empty() {
        Wait::Ready("AVAILABLE".into())
    } else {
        Wait::Pending(waiting.join("; "))
    }
}

/// How the pool settings in the account differ from the runbook's.
pub fn pool_differences(
    have: Option<&ConnectionPoolConfigurationInfo>,
    want: &Pool,
) -> Vec<String> {
    let Some(h) = have else {
        return vec!["no connection pool settings reported".into()];
    };
    let mut d = Vec::new();
    let mut cmp = |what: &str, have: String, want: String| {
        if have != want {
            d.push(format!("{what}: {have} -> {want}"));
        }
    };
    let num = |v: Option<i32>| v.map_or("unset".to_string(), |v| v.to_string());
    cmp(
        "MaxConnectionsPercent",
        num(h.max_connections_percent()),
        want.max_connections_percent.to_string(),
    );
    cmp(
        "MaxIdleConnectionsPercent",
        num(h.max_idle_connections_percent()),
        want.max_idle_connections_percent.to_string(),
    );
    cmp(
        "ConnectionBorrowTimeout",
        num(h.connection_borrow_timeout()),
        want.connection_borrow_timeout.to_string(),
    );
    cmp(
        "SessionPinningFilters",
        format!("{:?}", h.session_pinning_filters()),
        format!("{:?}", want.session_pinning_filters),
    );
    // Some emulators do not report InitQuery: compare it only when given.
    if let Some(q) = h.init_query() {
        cmp(
            "InitQuery",
            q.to_string(),
            want.init_query.clone().unwrap_or_default(),
        );
    }
    d
}

/// The proxy's entries for the runbook's DB (none: not registered).
async fn our_targets(cx: &Ctx<'_>, i: &Inputs) -> Result<Vec<DbProxyTarget>> {
    match cx
        .aws
        .rds
        .describe_db_proxy_targets()
        .db_proxy_name(&i.proxy_name)
        .send()
        .await
    {
        Ok(o) => Ok(o
            .targets
            .unwrap_or_default()
            .into_iter()
            .filter(|t| is_our_target(t, i))
            .collect()),
        Err(e) if is_proxy_part_gone(error_code(&e)) => Ok(Vec::new()),
        Err(e) => anyhow::bail!(
            "cannot read the targets of DB proxy {}: {}",
            i.proxy_name,
            describe_error(&e)
        ),
    }
}

/// The proxy's entries for the DB and its pool, read at once and once in
/// this pass of the step.
async fn targets_and_pool(
    cx: &Ctx<'_>,
    i: &Inputs,
) -> Result<(Vec<DbProxyTarget>, Option<ConnectionPoolConfigurationInfo>)> {
    let read = async { tokio::try_join!(our_targets(cx, i), pool_now(cx.aws, &i.proxy_name)) };
    cx.read_once(format!("targets and pool of {}", i.proxy_name), read)
        .await
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_rds::types::TargetHealth;
    use aws_sdk_rds::types::{TargetHealthReason, TargetState};

    fn target(state: TargetState, reason: Option<TargetHealthReason>) -> DbProxyTarget {
        DbProxyTarget::builder()
            .rds_resource_id("db1")
            .target_health(
                TargetHealth::builder()
                    .state(state)
                    .set_reason(reason)
                    .description("could not connect")
                    .build(),
            )
            .build()
    }

    #[test]
    fn health_waits_and_explains_unavailable() {
        assert!(matches!(
            health_decision(&[target(TargetState::Available, None)]),
            Wait::Ready(_)
        ));
        assert!(matches!(
            health_decision(&[target(TargetState::Registering, None)]),
            Wait::Pending(s) if s == "REGISTERING"
        ));
        let Wait::Pending(s) = health_decision(&[target(
            TargetState::Unavailable,
            Some(TargetHealthReason::ConnectionFailed),
        )]) else {
            panic!("UNAVAILABLE is waited on");
        };
        assert!(
            s.starts_with("UNAVAILABLE (CONNECTION_FAILED: could not connect)"),
            "{s}"
        );
        assert!(s.contains("db-ingress"), "{s}");
        let Wait::Pending(s) = health_decision(&[target(
            TargetState::Unavailable,
            Some(TargetHealthReason::AuthFailure),
        )]) else {
            panic!()
        };
        assert!(s.contains("secret-access"), "{s}");
        assert!(matches!(health_decision(&[]), Wait::Pending(s) if s == "not listed yet"));
    }

    fn member(id: &str, role: TargetRole, state: TargetState) -> DbProxyTarget {
        DbProxyTarget::builder()
            .rds_resource_id(id)
            .tracked_cluster_id("c1")
            .r#type(TargetType::RdsInstance)
            .role(role)
            .target_health(TargetHealth::builder().state(state).build())
            .build()
    }

    #[test]
    fn a_cluster_is_ready_when_its_writer_is() {
        // AWS: the cluster's entry carries no health; its instances do.
        let cluster = DbProxyTarget::builder()
            .rds_resource_id("c1")
            .r#type(TargetType::TrackedCluster)
            .build();
        assert!(matches!(
            health_decision(std::slice::from_ref(&cluster)),
            Wait::Pending(s) if s == "no health reported"
        ));
        let writer_up = [
            cluster.clone(),
            member("c1-1", TargetRole::ReadWrite, TargetState::Available),
            member("c1-2", TargetRole::ReadOnly, TargetState::Registering),
        ];
        assert!(matches!(health_decision(&writer_up), Wait::Ready(_)));
        let writer_down = [
            cluster.clone(),
            member("c1-1", TargetRole::ReadWrite, TargetState::Registering),
            member("c1-2", TargetRole::ReadOnly, TargetState::Available),
        ];
        assert!(matches!(
            health_decision(&writer_down),
            Wait::Pending(s) if s == "REGISTERING"
        ));
        // No roles reported yet: every instance counts, each named.
        let unroled = DbProxyTarget::builder()
            .rds_resource_id("c1-2")
            .tracked_cluster_id("c1")
            .r#type(TargetType::RdsInstance)
            .target_health(
                TargetHealth::builder()
                    .state(TargetState::Registering)
                    .build(),
            )
            .build();
        let mut up = unroled.clone();
        up.rds_resource_id = Some("c1-1".into());
        up.target_health = Some(
            TargetHealth::builder()
                .state(TargetState::Available)
                .build(),
        );
        assert!(matches!(
            health_decision(&[cluster, up, unroled]),
            Wait::Pending(s) if s == "c1-2: REGISTERING"
        ));
        // The emulator's way: the cluster's entry with its own health.
        let emulated = DbProxyTarget::builder()
            .rds_resource_id("c1")
            .r#type(TargetType::TrackedCluster)
            .target_health(
                TargetHealth::builder()
                    .state(TargetState::Available)
                    .build(),
            )
            .build();
        assert!(matches!(health_decision(&[emulated]), Wait::Ready(_)));
    }

    fn pool() -> Pool {
        Pool {
            max_connections_percent: 50,
            max_idle_connections_percent: 25,
            connection_borrow_timeout: 120,
            init_query: None,
            session_pinning_filters: vec![],
        }
    }

    #[test]
    fn pool_differences_name_each_setting() {
        let have = ConnectionPoolConfigurationInfo::builder()
            .max_connections_percent(100)
            .max_idle_connections_percent(25)
            .connection_borrow_timeout(120)
            .build();
        assert_eq!(
            pool_differences(Some(&have), &pool()),
            vec!["MaxConnectionsPercent: 100 -> 50"]
        );
        let same = ConnectionPoolConfigurationInfo::builder()
            .max_connections_percent(50)
            .max_idle_connections_percent(25)
            .connection_borrow_timeout(120)
            .build();
        assert!(pool_differences(Some(&same), &pool()).is_empty());
    }

    #[test]
    fn cluster_targets_match_by_tracked_cluster() {
        let i = Inputs {
            proxy_name: "p".into(),
            instance_id: None,
            cluster_id: Some("c1".into()),
            pool: pool(),
            wait_timeout_seconds: 1,
        };
        let t = DbProxyTarget::builder()
            .rds_resource_id("c1-instance-1")
            .tracked_cluster_id("c1")
            .build();
        assert!(is_our_target(&t, &i));
        let other = DbProxyTarget::builder().rds_resource_id("x").build();
        assert!(!is_our_target(&other, &i));
    }

    #[test]
    fn targets_match_whatever_the_case_of_the_runbooks_id() {
        // AWS lists `MyDB` as `mydb`.
        let i = Inputs {
            proxy_name: "p".into(),
            instance_id: Some("App-POSTGRESQL-db".into()),
            cluster_id: None,
            pool: pool(),
            wait_timeout_seconds: 1,
        };
        let listed = DbProxyTarget::builder()
            .rds_resource_id("app-postgresql-db")
            .build();
        assert!(is_our_target(&listed, &i));
        let other = DbProxyTarget::builder()
            .rds_resource_id("app-postgresql-db2")
            .build();
        assert!(!is_our_target(&other, &i));
    }

    mod mocked {
        use super::*;
        use crate::steps::mock::{Mocked, block_on};
        use aws_sdk_rds::Client;
        use aws_sdk_rds::error::ErrorMetadata;
        use aws_sdk_rds::operation::deregister_db_proxy_targets::DeregisterDBProxyTargetsError;
        use aws_sdk_rds::operation::describe_db_proxy_target_groups::{
            DescribeDBProxyTargetGroupsError, DescribeDbProxyTargetGroupsOutput,
        };
        use aws_sdk_rds::operation::describe_db_proxy_targets::{
            DescribeDBProxyTargetsError, DescribeDbProxyTargetsOutput,
        };
        use aws_sdk_rds::operation::register_db_proxy_targets::{
            RegisterDBProxyTargetsError, RegisterDbProxyTargetsOutput,
        };
        use aws_sdk_rds::types::{DbProxyTargetGroup, TargetHealthReason, TargetState};
        use aws_smithy_mocks::mock;

        fn inputs() -> Inputs {
            Inputs {
                proxy_name: "p".into(),
                instance_id: Some("db1".into()),
                cluster_id: None,
                pool: pool(),
                wait_timeout_seconds: 30,
            }
        }

        fn listed(t: Option<DbProxyTarget>) -> DescribeDbProxyTargetsOutput {
            DescribeDbProxyTargetsOutput::builder()
                .set_targets(t.map(|t| vec![t]))
                .build()
        }

        fn same_pool() -> aws_smithy_mocks::Rule {
            mock!(Client::describe_db_proxy_target_groups).then_output(|| {
                DescribeDbProxyTargetGroupsOutput::builder()
                    .target_groups(
                        DbProxyTargetGroup::builder()
                            .connection_pool_config(
                                ConnectionPoolConfigurationInfo::builder()
                                    .max_connections_percent(50)
                                    .max_idle_connections_percent(25)
                                    .connection_borrow_timeout(120)
                                    .build(),
                            )
                            .build(),
                    )
                    .build()
            })
        }

        #[test]
        fn a_busy_db_is_retried_then_registered() {
            let describe = mock!(Client::describe_db_proxy_targets)
                .sequence()
                .output(|| listed(None))
                .output(|| listed(Some(target(TargetState::Registering, None))))
                .output(|| listed(Some(target(TargetState::Available, None))))
                .repeatedly()
                .build();
            let register = mock!(Client::register_db_proxy_targets)
                .sequence()
                .error(|| {
                    RegisterDBProxyTargetsError::generic(
                        ErrorMetadata::builder()
                            .code("InvalidDBInstanceState")
                            .build(),
                    )
                })
                .times(2)
                .output(|| RegisterDbProxyTargetsOutput::builder().build())
                .build();
            let pool = same_pool();
            let m = Mocked::new(&[&describe, &register, &pool], &[], &[]);
            let out = block_on(StepImpl::apply(&Targets, &m.cx(), &inputs())).unwrap();
            assert_eq!(out["health"], "AVAILABLE");
            assert_eq!(register.num_calls(), 3, "two busy answers, then registered");
        }

        #[test]
        fn an_unavailable_target_fails_at_the_deadline_with_reason_and_fix() {
            let describe = mock!(Client::describe_db_proxy_targets).then_output(|| {
                listed(Some(target(
                    TargetState::Unavailable,
                    Some(TargetHealthReason::ConnectionFailed),
                )))
            });
            let pool = same_pool();
            let m = Mocked::new(&[&describe, &pool], &[], &[]);
            let e = block_on(StepImpl::apply(&Targets, &m.cx(), &inputs()))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("UNAVAILABLE (CONNECTION_FAILED: could not connect)"),
                "{e}"
            );
            assert!(
                e.contains("likely fix: the DB's security group must admit"),
                "{e}"
            );
            assert!(describe.num_calls() > 2);
        }

        #[test]
        fn a_gone_proxy_means_the_target_is_already_deregistered() {
            let describe = mock!(Client::describe_db_proxy_targets).then_error(|| {
                DescribeDBProxyTargetsError::generic(
                    ErrorMetadata::builder()
                        .code("DBProxyNotFoundFault")
                        .build(),
                )
            });
            let groups = mock!(Client::describe_db_proxy_target_groups).then_error(|| {
                DescribeDBProxyTargetGroupsError::generic(
                    ErrorMetadata::builder()
                        .code("DBProxyNotFoundFault")
                        .build(),
                )
            });
            let m = Mocked::new(&[&describe, &groups], &[], &[]);
            let undone = block_on(StepImpl::rollback(&Targets, &m.cx(), &inputs(), None)).unwrap();
            assert!(matches!(undone, Undone::AlreadyGone(_)), "{undone:?}");
            let found = block_on(StepImpl::check(&Targets, &m.cx(), &inputs())).unwrap();
            assert_eq!(found, Found::Missing);
        }

        #[test]
        fn deregistering_a_target_that_went_meanwhile_is_fine() {
            let describe = mock!(Client::describe_db_proxy_targets)
                .then_output(|| listed(Some(target(TargetState::Available, None))));
            let deregister = mock!(Client::deregister_db_proxy_targets).then_error(|| {
                DeregisterDBProxyTargetsError::generic(
                    ErrorMetadata::builder()
                        .code("DBProxyTargetNotFoundFault")
                        .build(),
                )
            });
            let m = Mocked::new(&[&describe, &deregister], &[], &[]);
            let undone = block_on(StepImpl::rollback(&Targets, &m.cx(), &inputs(), None)).unwrap();
            assert!(matches!(undone, Undone::AlreadyGone(_)), "{undone:?}");
        }
    }
}
