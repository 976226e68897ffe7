//! The `[alarms]` section's reader (its typed settings are in
//! `alarm_settings.rs`): one sub-table per alarm, each optional (its
//! defaults apply) and each may be turned off; CloudWatch's periods checked.

use toml_edit::{Item, Value};

use super::alarm_settings::*;
use super::reader::{Cx, Tbl};
use super::types::{Alarms, Pos, StepEntry};
// CloudWatch's periods (10, 20, 30 seconds or whole minutes) and what they
// may cover together, from its model's words.
use crate::limits::alarm_period_problem as period_problem;
use crate::validate;

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
