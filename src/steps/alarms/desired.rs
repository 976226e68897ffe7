//! What each alarm should be, from the runbook and the figures read from
//! the account (the DB's max_connections, the functions' worst case,
//! whether anomaly detection is offered), and how an alarm found differs:
//! pure, so unit-tested without AWS.

use serde::{Deserialize, Serialize};

use crate::runbook::{AlarmKind, AlarmSettings, SurgeMode};

/// The settings of the whole `[alarms]` section a step's inputs carry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Notify {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sns_topic_arn: Option<String>,
    #[serde(default)]
    pub ok: bool,
    #[serde(default)]
    pub insufficient_data: bool,
}

/// The figures read from the account that thresholds come from.
#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    /// The DB's max_connections as the connection budget works it out, and
    /// where it comes from (`set by DB parameter group p`, `estimated for
    /// db.t3.medium`); None: unknown (the DB or its class cannot be read).
    pub max_connections: Option<(i64, String)>,
    /// The functions' worst-case environments together, and how each is
    /// limited.
    pub clients: Option<(i64, String)>,
    /// Ok: CloudWatch anomaly detection is offered; Err: why not.
    pub anomaly: Result<(), String>,
}

/// How the alarm compares: a threshold, or an anomaly detection band.
#[derive(Clone, Debug, PartialEq)]
pub enum Rule {
    Threshold {
        statistic: &'static str,
        operator: &'static str,
        value: f64,
    },
    Band {
        statistic: &'static str,
        deviations: f64,
    },
}

/// One alarm as it should be.
#[derive(Clone, Debug, PartialEq)]
pub struct Alarm {
    pub name: String,
    pub metric: &'static str,
    pub rule: Rule,
    pub period: u32,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
    pub alarm_actions: Vec<String>,
    pub ok_actions: Vec<String>,
    pub insufficient_data_actions: Vec<String>,
    /// Where the threshold comes from, for the plan and the description.
    pub why: String,
}

/// The id of the band's expression in an anomaly alarm (`ThresholdMetricId`).
pub const BAND_ID: &str = "band";
/// The id of the metric in an anomaly alarm.
pub const METRIC_ID: &str = "m1";

/// The treatment of missing data: a proxy without traffic publishes no
/// datapoints, which is no trouble.
pub const TREAT_MISSING: &str = "notBreaching";

/// The threshold of the DatabaseConnections alarm: `percent` of
/// max_connections, whole connections (rounded down: the alarm comes a
/// connection early rather than late).
pub fn connections_threshold(max_connections: i64, percent: u32) -> i64 {
    max_connections * i64::from(percent) / 100
}

/// The static threshold of a surge, from the budget's worst case: more
/// client connections than the functions can open at once (cold starts
/// double them only for moments, which three breaching minutes of five
/// ignore), or more queries than each of them sends at `per_second`.
pub fn surge_threshold(kind: AlarmKind, clients: i64, period: u32, per_second: u32) -> i64 {
    match kind {
        AlarmKind::QueryRequests => clients * i64::from(period) * i64::from(per_second),
        _ => clients,
    }
}

fn trim(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// Each alarm the runbook turns on, as it should be; Err: an alarm whose
/// threshold cannot be worked out, and why.
pub fn desired(
    settings: &[AlarmSettings],
    notify: &Notify,
    figures: &Figures,
) -> Result<Vec<Alarm>, String> {
    let topic: Vec<String> = notify.sns_topic_arn.iter().cloned().collect();
    let mut out = Vec::new();
    for s in settings {
        let (rule, why) = match s.kind {
            AlarmKind::DatabaseConnections => {
                let percent = s.percent.unwrap_or(crate::runbook::DEFAULT_PERCENT);
                let Some((max, from)) = &figures.max_connections else {
                    return Err(format!(
                        "alarm {}: the DB's max_connections cannot be worked out (its class \
                         is not known), so {percent}% of it cannot be",
                        s.name
                    ));
                };
                let value = connections_threshold(*max, percent);
                (
                    Rule::Threshold {
                        statistic: "Maximum",
                        operator: "GreaterThanOrEqualToThreshold",
                        value: value as f64,
                    },
                    format!("{percent}% of the DB's max_connections {max} ({from})"),
                )
            }
            // Maximum: the proxy also publishes its zeros within a period;
            // pinning in every one of several periods in a row is what lasts.
            AlarmKind::SessionPinned => (
                Rule::Threshold {
                    statistic: "Maximum",
                    operator: "GreaterThanThreshold",
                    value: 0.0,
                },
                format!(
                    "connections pinned in {} periods in a row: {} minutes",
                    s.datapoints_to_alarm,
                    s.period * s.datapoints_to_alarm / 60
                ),
            ),
            AlarmKind::Availability => {
                let floor = s.threshold.unwrap_or(crate::runbook::DEFAULT_AVAILABILITY);
                (
                    Rule::Threshold {
                        statistic: "Average",
                        operator: "LessThanThreshold",
                        value: floor,
                    },
                    format!("availability under {}%", trim(floor)),
                )
            }
            AlarmKind::ClientConnections | AlarmKind::QueryRequests => surge(s, figures)?,
        };
        out.push(Alarm {
            name: s.name.clone(),
            metric: s.kind.metric(),
            rule,
            period: s.period,
            evaluation_periods: s.evaluation_periods,
            datapoints_to_alarm: s.datapoints_to_alarm,
            alarm_actions: topic.clone(),
            ok_actions: if notify.ok { topic.clone() } else { Vec::new() },
            insufficient_data_actions: if notify.insufficient_data {
                topic.clone()
            } else {
                Vec::new()
            },
            why,
        });
    }
    Ok(out)
}

fn surge(s: &AlarmSettings, figures: &Figures) -> Result<(Rule, String), String> {
    let statistic = if s.kind == AlarmKind::QueryRequests {
        "Sum"
    } else {
        "Maximum"
    };
    let mode = s.mode.unwrap_or(SurgeMode::Auto);
    let deviations = s.band.unwrap_or(crate::runbook::DEFAULT_BAND);
    let band = |why: &str| {
        (
            Rule::Band {
                statistic,
                deviations,
            },
            format!(
                "CloudWatch anomaly detection, a band of {} standard deviations ({why})",
                trim(deviations)
            ),
        )
    };
    match (mode, &figures.anomaly) {
        (SurgeMode::Anomaly, Ok(())) => return Ok(band("the runbook asks for it")),
        (SurgeMode::Anomaly, Err(why)) => {
            return Err(format!(
                "alarm {}: mode = \"anomaly\", but anomaly detection is not offered here \
                 ({why}): use mode = \"static\" or \"auto\"",
                s.name
            ));
        }
        (SurgeMode::Auto, Ok(())) => {
            return Ok(band(
                "the account offers it, and the load is learned, not guessed",
            ));
        }
        _ => {}
    }
    let because = match (mode, &figures.anomaly) {
        (SurgeMode::Static, _) => "the runbook asks for a static threshold".to_string(),
        (_, Err(why)) => format!("anomaly detection is not offered here: {why}"),
        _ => String::new(),
    };
    let (value, from) = match (s.threshold, &figures.clients) {
        (Some(t), _) => (t, "the runbook's threshold".to_string()),
        (None, Some((clients, how))) => {
            let per_second = s
                .per_client_per_second
                .unwrap_or(crate::runbook::DEFAULT_PER_CLIENT_PER_SECOND);
            let v = surge_threshold(s.kind, *clients, s.period, per_second);
            let from = match s.kind {
                AlarmKind::QueryRequests => format!(
                    "the budget's worst case of {clients} client connections ({how}) x \
                     {per_second} queries/s x {}s",
                    s.period
                ),
                _ => format!("the budget's worst case of {clients} client connections ({how})"),
            };
            (v as f64, from)
        }
        (None, None) => {
            return Err(format!(
                "alarm {}: no static threshold: the functions' worst case is not known; set \
                 threshold",
                s.name
            ));
        }
    };
    Ok((
        Rule::Threshold {
            statistic,
            operator: "GreaterThanThreshold",
            value,
        },
        format!("static, above {} = {from}; {because}", trim(value)),
    ))
}

impl Alarm {
    /// One line for the plan: what it watches, and where its threshold
    /// comes from.
    pub fn line(&self) -> String {
        let what = match &self.rule {
            Rule::Threshold {
                statistic,
                operator,
                value,
            } => format!(
                "{statistic} {} {}",
                match *operator {
                    "GreaterThanOrEqualToThreshold" => ">=",
                    "GreaterThanThreshold" => ">",
                    "LessThanThreshold" => "<",
                    _ => "<=",
                },
                trim(*value)
            ),
            Rule::Band { statistic, .. } => format!("{statistic} above its anomaly band"),
        };
        let notify = match self.alarm_actions.first() {
            Some(t) => format!(", notifies {t}"),
            None => String::new(),
        };
        format!(
            "alarm {}: {} {what} in {} of {} periods of {}s ({}){notify}",
            self.name,
            self.metric,
            self.datapoints_to_alarm,
            self.evaluation_periods,
            self.period,
            self.why
        )
    }
}

/// An alarm as compared: the fields the runbook decides, as text.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Shape {
    pub metric: String,
    pub statistic: String,
    pub comparison: String,
    pub threshold: String,
    pub band: String,
    pub period: String,
    pub evaluation_periods: String,
    pub datapoints_to_alarm: String,
    pub alarm_actions: String,
    pub ok_actions: String,
    pub insufficient_data_actions: String,
    pub treat_missing_data: String,
    pub dimension: String,
}

impl Alarm {
    pub fn shape(&self, proxy: &str) -> Shape {
        let (statistic, comparison, threshold, band) = match &self.rule {
            Rule::Threshold {
                statistic,
                operator,
                value,
            } => (*statistic, *operator, trim(*value), String::new()),
            Rule::Band {
                statistic,
                deviations,
            } => (
                *statistic,
                "GreaterThanUpperThreshold",
                String::new(),
                band_expression(*deviations),
            ),
        };
        Shape {
            metric: format!("AWS/RDS {}", self.metric),
            statistic: statistic.into(),
            comparison: comparison.into(),
            threshold,
            band,
            period: self.period.to_string(),
            evaluation_periods: self.evaluation_periods.to_string(),
            datapoints_to_alarm: self.datapoints_to_alarm.to_string(),
            alarm_actions: self.alarm_actions.join(","),
            ok_actions: self.ok_actions.join(","),
            insufficient_data_actions: self.insufficient_data_actions.join(","),
            treat_missing_data: TREAT_MISSING.into(),
            dimension: format!("ProxyName={proxy}"),
        }
    }
}

pub fn band_expression(deviations: f64) -> String {
    format!("ANOMALY_DETECTION_BAND({METRIC_ID}, {})", trim(deviations))
}

pub fn number(v: f64) -> String {
    trim(v)
}

/// Each field of `found` that differs from `want`: `alarm NAME field: old -> new`.
pub fn differences(name: &str, found: &Shape, want: &Shape) -> Vec<String> {
    let fields: [(&str, &String, &String); 13] = [
        ("metric", &found.metric, &want.metric),
        ("dimension", &found.dimension, &want.dimension),
        ("statistic", &found.statistic, &want.statistic),
        ("comparison", &found.comparison, &want.comparison),
        ("threshold", &found.threshold, &want.threshold),
        ("anomaly band", &found.band, &want.band),
        ("period", &found.period, &want.period),
        (
            "evaluation periods",
            &found.evaluation_periods,
            &want.evaluation_periods,
        ),
        (
            "datapoints to alarm",
            &found.datapoints_to_alarm,
            &want.datapoints_to_alarm,
        ),
        ("alarm actions", &found.alarm_actions, &want.alarm_actions),
        ("OK actions", &found.ok_actions, &want.ok_actions),
        (
            "INSUFFICIENT_DATA actions",
            &found.insufficient_data_actions,
            &want.insufficient_data_actions,
        ),
        (
            "missing data",
            &found.treat_missing_data,
            &want.treat_missing_data,
        ),
    ];
    let shown = |v: &str| {
        if v.is_empty() {
            "(none)".to_string()
        } else {
            v.to_string()
        }
    };
    fields
        .iter()
        .filter(|(_, a, b)| a != b)
        .map(|(field, a, b)| format!("alarm {name} {field}: {} -> {}", shown(a), shown(b)))
        .collect()
}

#[cfg(test)]
mod tests;
