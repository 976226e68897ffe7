//! The targets step's unit tests: which entries are ours, their health,
//! the pool's differences, and the step against a mocked RDS.

use aws_sdk_rds::types::{
    ConnectionPoolConfigurationInfo, DbProxyTarget, TargetHealth, TargetHealthReason, TargetRole,
    TargetState, TargetType,
};

use super::diff::is_our_target;
use super::*;
use crate::runbook::Pool;

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
