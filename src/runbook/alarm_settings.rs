//! The alarms of `[alarms]`, typed: the CloudWatch alarms seed 000
//! prescribes for a proxy (its section 5), made by the `alarms` step, and
//! their defaults (the section itself is `types::Alarms`; its reader is
//! `alarms.rs`).

use serde::{Deserialize, Serialize};

/// The alarms the tool knows, each on one metric of the proxy (namespace
/// AWS/RDS, dimension ProxyName).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    /// The proxy's DB connections at or above a share of max_connections.
    DatabaseConnections,
    /// Connections pinned to one client, sustained.
    SessionPinned,
    /// The proxy's availability under 99.9%.
    Availability,
    /// A surge of the functions' connections to the proxy.
    ClientConnections,
    /// A surge of queries.
    QueryRequests,
}

impl AlarmKind {
    pub const ALL: [AlarmKind; 5] = [
        AlarmKind::DatabaseConnections,
        AlarmKind::SessionPinned,
        AlarmKind::Availability,
        AlarmKind::ClientConnections,
        AlarmKind::QueryRequests,
    ];

    /// Its sub-table in `[alarms]`.
    pub fn key(self) -> &'static str {
        match self {
            AlarmKind::DatabaseConnections => "database_connections",
            AlarmKind::SessionPinned => "session_pinned",
            AlarmKind::Availability => "availability",
            AlarmKind::ClientConnections => "client_connections",
            AlarmKind::QueryRequests => "query_requests",
        }
    }

    /// The RDS Proxy metric it watches.
    pub fn metric(self) -> &'static str {
        match self {
            AlarmKind::DatabaseConnections => "DatabaseConnections",
            AlarmKind::SessionPinned => "DatabaseConnectionsCurrentlySessionPinned",
            AlarmKind::Availability => "AvailabilityPercentage",
            AlarmKind::ClientConnections => "ClientConnections",
            AlarmKind::QueryRequests => "QueryRequests",
        }
    }

    /// (period seconds, evaluation periods, datapoints to alarm): pinning
    /// must last 15 minutes (three periods of five); the others three
    /// minutes out of five.
    pub fn default_periods(self) -> (u32, u32, u32) {
        match self {
            AlarmKind::SessionPinned => (300, 3, 3),
            _ => (60, 5, 3),
        }
    }

    /// Whether it watches for a surge (anomaly detection, else a static
    /// threshold from the connection budget).
    pub fn is_surge(self) -> bool {
        matches!(
            self,
            AlarmKind::ClientConnections | AlarmKind::QueryRequests
        )
    }
}

/// How a surge is recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SurgeMode {
    /// Anomaly detection where the account offers it, else static.
    Auto,
    Anomaly,
    Static,
}

/// One alarm as the runbook sets it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmSettings {
    pub kind: AlarmKind,
    pub name: String,
    pub period: u32,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
    /// database_connections: the share of max_connections (default 80).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,
    /// availability: the floor (default 99.9); a surge: a static threshold
    /// that overrides the budget's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// A surge's way (default auto).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<SurgeMode>,
    /// A surge's anomaly band, in standard deviations (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<f64>,
    /// query_requests' static threshold: queries a client may send per
    /// second (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_client_per_second: Option<u32>,
}

pub const DEFAULT_PERCENT: u32 = 80;
pub const DEFAULT_AVAILABILITY: f64 = 99.9;
pub const DEFAULT_BAND: f64 = 2.0;
pub const DEFAULT_PER_CLIENT_PER_SECOND: u32 = 10;

/// An alarm with every default: named `RUNBOOK-proxy-KIND`.
pub fn defaults(kind: AlarmKind, runbook: &str) -> AlarmSettings {
    let (period, evaluation_periods, datapoints_to_alarm) = kind.default_periods();
    AlarmSettings {
        kind,
        name: format!("{runbook}-proxy-{}", kind.key().replace('_', "-")),
        period,
        evaluation_periods,
        datapoints_to_alarm,
        percent: (kind == AlarmKind::DatabaseConnections).then_some(DEFAULT_PERCENT),
        threshold: (kind == AlarmKind::Availability).then_some(DEFAULT_AVAILABILITY),
        mode: kind.is_surge().then_some(SurgeMode::Auto),
        band: kind.is_surge().then_some(DEFAULT_BAND),
        per_client_per_second: (kind == AlarmKind::QueryRequests)
            .then_some(DEFAULT_PER_CLIENT_PER_SECOND),
    }
}
