//! `[alarms]`: the CloudWatch alarms seed 000 prescribes for a proxy (its
//! section 5), made by the `alarms` step. One sub-table per alarm, each
//! optional (its defaults apply) and each may be turned off.

use serde::{Deserialize, Serialize};
use toml_edit::{Item, Value};

use super::reader::{Cx, Tbl};
use super::types::{Pos, StepEntry};
use crate::validate;

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

/// `[alarms]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Alarms {
    pub sns_topic_arn: Option<String>,
    /// Notify the topic when an alarm is back to OK too.
    pub notify_ok: bool,
    /// ... and when it lacks data.
    pub notify_insufficient_data: bool,
    /// The alarms turned on, in [`AlarmKind::ALL`]'s order.
    pub alarms: Vec<AlarmSettings>,
    pub pos: Pos,
}

pub const DEFAULT_PERCENT: u32 = 80;
pub const DEFAULT_AVAILABILITY: f64 = 99.9;
pub const DEFAULT_BAND: f64 = 2.0;
pub const DEFAULT_PER_CLIENT_PER_SECOND: u32 = 10;

/// CloudWatch's periods: 10 and 30 seconds (high resolution) or whole
/// minutes; what they cover together at most (PutMetricAlarm's
/// documentation: a day for the short ones, seven days otherwise).
fn period_problem(period: i64, evaluation_periods: i64) -> Option<String> {
    if !(period == 10 || period == 30 || period % 60 == 0) {
        return Some(format!(
            "{period} is not a CloudWatch alarm period: use 10, 30 or a multiple of 60 seconds"
        ));
    }
    let most = if period < 60 { 86_400 } else { 604_800 };
    (period * evaluation_periods > most).then(|| {
        format!(
            "{evaluation_periods} periods of {period}s cover {}s, more than CloudWatch evaluates \
             ({most}s): fewer or shorter periods",
            period * evaluation_periods
        )
    })
}

impl Cx<'_> {
    /// `[alarms]`, optional; `runbook` names the alarms by default.
    pub(super) fn alarms(
        &mut self,
        top: &mut Tbl,
        runbook: Option<&str>,
        steps: &[StepEntry],
    ) -> Option<Alarms> {
        let listed = steps.iter().find(|s| s.name == "alarms");
        let Some(mut t) = self.table(top, "alarms", false) else {
            // The step alone: every alarm with its defaults.
            return listed.map(|s| Alarms {
                sns_topic_arn: None,
                notify_ok: false,
                notify_insufficient_data: false,
                alarms: AlarmKind::ALL
                    .iter()
                    .map(|k| defaults(*k, runbook.unwrap_or("runbook")))
                    .collect(),
                pos: s.pos,
            });
        };
        let pos = t.pos;
        if listed.is_none() {
            self.error(
                pos,
                "alarms",
                "no step makes these alarms: add \"alarms\" to steps, after \"targets\"",
            );
        }
        let sns_topic_arn = self.literal_shaped(&mut t, "sns_topic_arn", false, |v| {
            validate::sns_topic_arn(v)
        });
        let notify_ok = self.bool(&mut t, "notify_ok", false);
        let notify_insufficient_data = self.bool(&mut t, "notify_insufficient_data", false);
        if sns_topic_arn.is_none() && (notify_ok || notify_insufficient_data) {
            self.error(
                pos,
                "alarms.notify_ok",
                "notify_ok and notify_insufficient_data notify sns_topic_arn: add it",
            );
        }
        let mut alarms = Vec::new();
        for kind in AlarmKind::ALL {
            if let Some(a) = self.alarm(&mut t, kind, runbook.unwrap_or("runbook")) {
                alarms.push(a);
            }
        }
        let mut names: Vec<&str> = alarms.iter().map(|a| a.name.as_str()).collect();
        names.sort();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            self.error(
                pos,
                "alarms",
                format!("two alarms are named `{}`: give each its own name", w[0]),
            );
        }
        self.finish(t);
        Some(Alarms {
            sns_topic_arn,
            notify_ok,
            notify_insufficient_data,
            alarms,
            pos,
        })
    }

    /// One alarm's sub-table (its defaults when absent); None: turned off.
    fn alarm(&mut self, top: &mut Tbl, kind: AlarmKind, runbook: &str) -> Option<AlarmSettings> {
        let mut a = defaults(kind, runbook);
        let Some(mut t) = self.table(top, kind.key(), false) else {
            self.shape(Some(&fixed_name(&a.name, top, kind)), validate::alarm_name);
            return Some(a);
        };
        let enabled = self.bool(&mut t, "enabled", true);
        if let Some(n) = self.literal_shaped(&mut t, "name", false, validate::alarm_name) {
            a.name = n;
        } else {
            let pos = t.pos;
            if let Err(why) = validate::alarm_name(&a.name) {
                self.error(pos, &t.key_path("name"), why);
            }
        }
        let (p, e, d) = kind.default_periods();
        let period = self.int(&mut t, "period", p.into(), 10..=86_400, "seconds");
        let evaluation = self.int(
            &mut t,
            "evaluation_periods",
            e.into(),
            1..=10_080,
            "how many periods are evaluated",
        );
        let datapoints = self.int(
            &mut t,
            "datapoints_to_alarm",
            d.min(evaluation as u32).into(),
            1..=10_080,
            "how many of the evaluated periods must breach",
        );
        let pos = t.pos;
        if let Some(why) = period_problem(period, evaluation) {
            let at = self.key_pos(&t, "period").unwrap_or(pos);
            self.error(at, &t.key_path("period"), why);
        }
        if datapoints > evaluation {
            let at = self.key_pos(&t, "datapoints_to_alarm").unwrap_or(pos);
            self.error(
                at,
                &t.key_path("datapoints_to_alarm"),
                format!("{datapoints} must not exceed evaluation_periods ({evaluation})"),
            );
        }
        (a.period, a.evaluation_periods, a.datapoints_to_alarm) =
            (period as u32, evaluation as u32, datapoints as u32);
        match kind {
            AlarmKind::DatabaseConnections => {
                a.percent = Some(self.int(
                    &mut t,
                    "percent",
                    DEFAULT_PERCENT.into(),
                    1..=100,
                    "a percentage of the DB's max_connections",
                ) as u32);
            }
            AlarmKind::Availability => {
                a.threshold = self.float(&mut t, "threshold", 0.0..=100.0, "a percentage");
                a.threshold.get_or_insert(DEFAULT_AVAILABILITY);
            }
            AlarmKind::SessionPinned => {}
            AlarmKind::ClientConnections | AlarmKind::QueryRequests => {
                let mode = self.choice(&mut t, "mode", &["auto", "anomaly", "static"], "auto");
                a.mode = Some(match mode {
                    "anomaly" => SurgeMode::Anomaly,
                    "static" => SurgeMode::Static,
                    _ => SurgeMode::Auto,
                });
                a.band = Some(
                    self.float(&mut t, "band", 0.1..=100.0, "standard deviations")
                        .unwrap_or(DEFAULT_BAND),
                );
                a.threshold = self.float(&mut t, "threshold", 0.0..=1e12, "a static threshold");
                if kind == AlarmKind::QueryRequests {
                    a.per_client_per_second = Some(self.int(
                        &mut t,
                        "per_client_per_second",
                        DEFAULT_PER_CLIENT_PER_SECOND.into(),
                        1..=1_000_000,
                        "queries one client sends per second at most",
                    ) as u32);
                }
            }
        }
        self.finish(t);
        enabled.then_some(a)
    }

    fn key_pos(&self, t: &Tbl, key: &str) -> Option<Pos> {
        let item = t.table.get(key)?;
        Some(self.item_pos(t, key, item))
    }

    /// A number (integer or float) within `range`.
    fn float(
        &mut self,
        t: &mut Tbl,
        key: &'static str,
        range: std::ops::RangeInclusive<f64>,
        why: &str,
    ) -> Option<f64> {
        let path = t.key_path(key);
        let item: &Item = t.get(key)?;
        let pos = self.item_pos(t, key, item);
        let value = match item.as_value() {
            Some(Value::Float(f)) => Some(*f.value()),
            Some(Value::Integer(i)) => Some(*i.value() as f64),
            _ => None,
        };
        match value {
            Some(v) if range.contains(&v) => Some(v),
            Some(v) => {
                self.error(
                    pos,
                    &path,
                    format!(
                        "{v} is out of range: use {} to {} ({why})",
                        range.start(),
                        range.end()
                    ),
                );
                None
            }
            None => {
                self.wrong_type(pos, &path, "a number", item.type_name());
                None
            }
        }
    }
}

/// The default name as a text positioned at `[alarms]`, for its check.
fn fixed_name(name: &str, top: &Tbl, kind: AlarmKind) -> super::types::Text {
    super::types::Text::fixed(name, &top.key_path(kind.key()), top.pos)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_follow_cloudwatch() {
        assert_eq!(period_problem(60, 5), None);
        assert_eq!(period_problem(10, 6), None);
        assert!(
            period_problem(45, 1)
                .unwrap()
                .contains("10, 30 or a multiple of 60")
        );
        assert!(period_problem(30, 3000).unwrap().contains("86400s"));
        assert_eq!(period_problem(3600, 168), None);
        assert!(period_problem(3600, 169).is_some());
    }
}
