//! What the targets step decides without a call: its inputs, which of the
//! proxy's entries are the runbook's DB, what their health means while
//! waiting for AVAILABLE, and how the pool differs from the runbook's.

use aws_sdk_rds::types::{ConnectionPoolConfigurationInfo, DbProxyTarget, TargetRole, TargetType};
use serde::{Deserialize, Serialize};

use crate::aws::rds::health_text;
use crate::poll::Wait;
use crate::runbook::Pool;

#[derive(Serialize, Deserialize)]
pub struct Inputs {
    pub(super) proxy_name: String,
    pub(super) instance_id: Option<String>,
    pub(super) cluster_id: Option<String>,
    pub(super) pool: Pool,
    #[serde(rename = "_wait_timeout_seconds")]
    pub(super) wait_timeout_seconds: u64,
}

impl Inputs {
    pub(super) fn target(&self) -> &str {
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
