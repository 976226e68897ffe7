//! `alarms`: the CloudWatch alarms seed 000 prescribes for the proxy
//! (namespace AWS/RDS, dimension ProxyName), each tagged as ours. Their
//! thresholds come from the account: the DB's max_connections as the
//! connection budget works it out, and the functions' worst case; so a new
//! class or a parameter group edit moves the next plan's threshold. One the
//! runbook drops is deleted in the run's last pass; rollback deletes ours.

mod anomaly;
mod desired;

use std::collections::BTreeMap;

use anyhow::Result;
use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, Metric, MetricAlarm, MetricDataQuery, MetricStat, Statistic, Tag,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::contract::{Actions, Ctx, Found, On, Outputs, Resolver, StepImpl, Undone};
use crate::aws::{describe_error, error_code};
use crate::runbook::{AlarmSettings, Runbook, SurgeMode};
use desired::{Alarm, BAND_ID, METRIC_ID, Rule, Shape, TREAT_MISSING, differences};
use desired::{Figures, Notify};

pub struct Alarms;

/// The DB whose max_connections sets a threshold.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DbRef {
    kind: String,
    id: String,
    engine_family: crate::runbook::EngineFamily,
}

#[derive(Serialize, Deserialize)]
pub struct Inputs {
    proxy: String,
    db: Option<DbRef>,
    /// The functions whose worst case sets a surge's static threshold.
    functions: Vec<String>,
    alarms: Vec<AlarmSettings>,
    notify: Notify,
    tags: BTreeMap<String, String>,
}

/// The output listing the alarms where ours may be: those the runbook
/// wants, and those it dropped whose deletion waits for the run's last pass
/// (so that pass, and rollback, still find them).
const OUTPUT: &str = "alarms";

fn recorded_names(cx: &Ctx<'_>) -> Vec<String> {
    cx.recorded_output(OUTPUT)
        .map(|o| o.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

fn output(names: &[String]) -> Outputs {
    let mut names = names.to_vec();
    names.sort();
    names.dedup();
    Outputs::from([(OUTPUT.into(), names.join(" "))])
}

/// The figures the thresholds come from, read once in a pass.
async fn figures(cx: &Ctx<'_>, i: &Inputs) -> Result<Figures> {
    let needs_clients = i
        .alarms
        .iter()
        .any(|a| a.kind.is_surge() && a.threshold.is_none() && a.mode != Some(SurgeMode::Anomaly));
    let needs_anomaly = i
        .alarms
        .iter()
        .any(|a| a.kind.is_surge() && a.mode != Some(SurgeMode::Static));
    let max_connections = match &i.db {
        Some(db) if i.alarms.iter().any(|a| a.percent.is_some()) => {
            cx.read_once(
                format!("max_connections of {}", db.id),
                max_connections(cx, db),
            )
            .await?
        }
        _ => None,
    };
    let clients = if needs_clients {
        cx.read_once("worst-case clients".into(), clients(cx, &i.functions))
            .await?
    } else {
        None
    };
    let anomaly = if needs_anomaly {
        cx.read_once("anomaly detection".into(), anomaly_offered(cx))
            .await?
    } else {
        Err("not asked".into())
    };
    Ok(Figures {
        max_connections,
        clients,
        anomaly,
    })
}

/// The DB's max_connections as the budget works it out, and whence.
async fn max_connections(cx: &Ctx<'_>, db: &DbRef) -> Result<Option<(i64, String)>> {
    use crate::db::Kind;
    let kind = if db.kind == "cluster" {
        Kind::Cluster
    } else {
        Kind::Instance
    };
    let Some(found) = crate::db::read(cx.aws, kind, &db.id).await? else {
        anyhow::bail!(
            "{} {} does not exist: the DatabaseConnections alarm's threshold is a share of its \
             max_connections",
            kind.label(),
            db.id
        );
    };
    let Some(capacity) = crate::db::capacity(cx.aws, &found).await? else {
        return Ok(None);
    };
    Ok(match &capacity.max_connections_set {
        Some((value, group)) => Some((*value, format!("set by {group}"))),
        None => crate::budget::max_connections(&capacity.class, db.engine_family)
            .map(|m| (m, format!("estimated for {}", capacity.class))),
    })
}

async fn clients(cx: &Ctx<'_>, functions: &[String]) -> Result<Option<(i64, String)>> {
    if functions.is_empty() {
        return Ok(None);
    }
    let (loads, _) = crate::budget::loads(cx.aws, functions).await;
    let total = loads.iter().map(|l| l.worst_case).sum();
    let how: Vec<String> = loads
        .iter()
        .map(|l| format!("{} {}: {}", l.name, l.worst_case, l.limited_by))
        .collect();
    Ok(Some((total, how.join("; "))))
}

/// Whether the account offers anomaly detection: it answers
/// DescribeAnomalyDetectors (a region or an emulator without it does not).
async fn anomaly_offered(cx: &Ctx<'_>) -> Result<Result<(), String>> {
    Ok(
        match cx
            .aws
            .cloudwatch
            .describe_anomaly_detectors()
            .max_results(1)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if error_code(&e) == Some("AccessDenied") => anyhow::bail!(
                "cannot ask CloudWatch whether it offers anomaly detection: {}",
                describe_error(&e)
            ),
            Err(e) => Err(format!(
                "DescribeAnomalyDetectors answered {}",
                describe_error(&e)
            )),
        },
    )
}

/// The alarms named, as the account holds them.
async fn find(cx: &Ctx<'_>, names: &[String]) -> Result<BTreeMap<String, MetricAlarm>> {
    let mut out = BTreeMap::new();
    for chunk in names.chunks(100) {
        let answer = cx
            .aws
            .cloudwatch
            .describe_alarms()
            .set_alarm_names(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("cannot read CloudWatch alarms: {}", describe_error(&e))
            })?;
        for a in answer.metric_alarms() {
            if let Some(n) = a.alarm_name() {
                out.insert(n.to_string(), a.clone());
            }
        }
    }
    Ok(out)
}

async fn ours(cx: &Ctx<'_>, alarm: &MetricAlarm) -> Result<bool> {
    let Some(arn) = alarm.alarm_arn() else {
        return Ok(cx.adopted);
    };
    let tags = cx
        .aws
        .cloudwatch
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot read the tags of alarm {}: {}",
                alarm.alarm_name().unwrap_or("?"),
                describe_error(&e)
            )
        })?;
    Ok(cx.claims(
        tags.tags()
            .iter()
            .filter_map(|t| Some((t.key()?, t.value()?))),
    ))
}

/// An alarm as found, in the terms it is compared in.
fn shape_of(a: &MetricAlarm) -> Shape {
    let join = |v: &[String]| v.join(",");
    let (metric, statistic, period, dimension, band) = match a.metrics() {
        [] => (
            a.metric_name().unwrap_or_default().to_string(),
            a.statistic().map(|s| s.as_str().to_string()),
            a.period(),
            a.dimensions().to_vec(),
            String::new(),
        ),
        queries => {
            let stat = queries.iter().find_map(|q| q.metric_stat());
            let band = queries
                .iter()
                .find(|q| q.id() == Some(a.threshold_metric_id().unwrap_or(BAND_ID)))
                .and_then(|q| q.expression())
                .unwrap_or_default()
                .to_string();
            (
                stat.and_then(|s| s.metric())
                    .and_then(|m| m.metric_name())
                    .unwrap_or_default()
                    .to_string(),
                stat.and_then(|s| s.stat()).map(String::from),
                stat.and_then(|s| s.period()),
                stat.and_then(|s| s.metric())
                    .map(|m| m.dimensions().to_vec())
                    .unwrap_or_default(),
                band,
            )
        }
    };
    let namespace = match a.metrics() {
        [] => a.namespace().map(String::from),
        q => q
            .iter()
            .find_map(|q| q.metric_stat()?.metric()?.namespace().map(String::from)),
    };
    let dims: Vec<String> = dimension
        .iter()
        .map(|d| format!("{}={}", d.name().unwrap_or(""), d.value().unwrap_or("")))
        .collect();
    Shape {
        metric: format!("{} {metric}", namespace.unwrap_or_default()),
        statistic: statistic.unwrap_or_default(),
        comparison: a
            .comparison_operator()
            .map(|c| c.as_str().to_string())
            .unwrap_or_default(),
        threshold: if band.is_empty() {
            a.threshold().map(desired::number).unwrap_or_default()
        } else {
            String::new()
        },
        band,
        period: period.map(|p| p.to_string()).unwrap_or_default(),
        evaluation_periods: a
            .evaluation_periods()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        datapoints_to_alarm: a
            .datapoints_to_alarm()
            .or(a.evaluation_periods())
            .map(|p| p.to_string())
            .unwrap_or_default(),
        alarm_actions: join(a.alarm_actions()),
        ok_actions: join(a.ok_actions()),
        insufficient_data_actions: join(a.insufficient_data_actions()),
        treat_missing_data: a.treat_missing_data().unwrap_or("missing").to_string(),
        dimension: dims.join(","),
    }
}

/// The alarms as they should be, from the account's figures.
async fn wanted(cx: &Ctx<'_>, i: &Inputs) -> Result<Vec<Alarm>> {
    let f = figures(cx, i).await?;
    desired::desired(&i.alarms, &i.notify, &f).map_err(anyhow::Error::msg)
}

async fn put(cx: &Ctx<'_>, i: &Inputs, want: &Alarm, create: bool) -> Result<()> {
    let dimension = Dimension::builder()
        .name("ProxyName")
        .value(&i.proxy)
        .build();
    let mut call = cx
        .aws
        .cloudwatch
        .put_metric_alarm()
        .alarm_name(&want.name)
        .alarm_description(crate::validate::alarm_description(format!(
            "RDS Proxy {}: {} (made by rds-proxy-runbook {})",
            i.proxy, want.why, cx.runbook
        )))
        .evaluation_periods(want.evaluation_periods as i32)
        .datapoints_to_alarm(want.datapoints_to_alarm as i32)
        .treat_missing_data(TREAT_MISSING)
        .actions_enabled(true)
        .set_alarm_actions(Some(want.alarm_actions.clone()))
        .set_ok_actions(Some(want.ok_actions.clone()))
        .set_insufficient_data_actions(Some(want.insufficient_data_actions.clone()));
    call = match &want.rule {
        Rule::Threshold {
            statistic,
            operator,
            value,
        } => call
            .namespace("AWS/RDS")
            .metric_name(want.metric)
            .dimensions(dimension)
            .statistic(Statistic::from(*statistic))
            .period(want.period as i32)
            .comparison_operator(ComparisonOperator::from(*operator))
            .threshold(*value),
        Rule::Band {
            statistic,
            deviations,
        } => call
            .metrics(
                MetricDataQuery::builder()
                    .id(METRIC_ID)
                    .return_data(true)
                    .metric_stat(
                        MetricStat::builder()
                            .metric(
                                Metric::builder()
                                    .namespace("AWS/RDS")
                                    .metric_name(want.metric)
                                    .dimensions(dimension)
                                    .build(),
                            )
                            .period(want.period as i32)
                            .stat(*statistic)
                            .build(),
                    )
                    .build(),
            )
            .metrics(
                MetricDataQuery::builder()
                    .id(BAND_ID)
                    .return_data(true)
                    .expression(desired::band_expression(*deviations))
                    .build(),
            )
            .threshold_metric_id(BAND_ID)
            .comparison_operator(ComparisonOperator::GreaterThanUpperThreshold),
    };
    if create {
        // Tags are taken on creation only (an update's are ignored).
        for (k, v) in &i.tags {
            call = call.tags(Tag::builder().key(k).value(v).build());
        }
    }
    call.send().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot {} CloudWatch alarm {}: {}",
            if create { "create" } else { "update" },
            want.name,
            describe_error(&e)
        )
    })?;
    Ok(())
}

impl Alarms {
    /// The recorded alarms the runbook no longer wants that are ours.
    async fn dropped(
        &self,
        cx: &Ctx<'_>,
        i: &Inputs,
        found: &BTreeMap<String, MetricAlarm>,
    ) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for name in recorded_names(cx) {
            if i.alarms.iter().any(|a| a.name == name) {
                continue;
            }
            if let Some(a) = found.get(&name)
                && ours(cx, a).await?
            {
                out.push(name);
            }
        }
        Ok(out)
    }

    /// Every name where an alarm of ours may be.
    fn names(&self, cx: &Ctx<'_>, i: &Inputs) -> Vec<String> {
        let mut names: Vec<String> = i.alarms.iter().map(|a| a.name.clone()).collect();
        names.extend(recorded_names(cx));
        names.sort();
        names.dedup();
        names
    }

    async fn delete(&self, cx: &Ctx<'_>, names: &[String]) -> Result<()> {
        cx.bar
            .set(format!("deleting CloudWatch alarm(s) {}", names.join(", ")));
        cx.aws
            .cloudwatch
            .delete_alarms()
            .set_alarm_names(Some(names.to_vec()))
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot delete CloudWatch alarm(s) {}: {}",
                    names.join(", "),
                    describe_error(&e)
                )
            })?;
        Ok(())
    }
}

#[async_trait]
impl StepImpl for Alarms {
    type Inputs = Inputs;
    const NAME: &'static str = "alarms";
    const OUTPUTS: &'static [&'static str] = &[OUTPUT];
    const ACTIONS: Actions = Actions {
        check: &[
            ("cloudwatch:DescribeAlarms", On::Any),
            ("cloudwatch:DescribeAnomalyDetectors", On::Any),
            ("cloudwatch:ListTagsForResource", On::Alarms),
            ("rds:DescribeDBInstances", On::Any),
            ("rds:DescribeDBClusters", On::Any),
            ("rds:DescribeDBParameters", On::Any),
            ("rds:DescribeDBClusterParameters", On::Any),
            ("lambda:GetAccountSettings", On::Any),
            ("lambda:GetFunctionConcurrency", On::Functions),
            ("lambda:ListProvisionedConcurrencyConfigs", On::Functions),
            ("lambda:ListEventSourceMappings", On::Any),
        ],
        apply: &[
            // `before`: the anomaly detection models already there.
            ("cloudwatch:DescribeAnomalyDetectors", On::Any),
            ("cloudwatch:PutMetricAlarm", On::Alarms),
            ("cloudwatch:TagResource", On::Alarms),
            // One the runbook drops, in the run's last pass.
            ("cloudwatch:DeleteAlarms", On::Alarms),
        ],
        rollback: &[
            ("cloudwatch:DescribeAlarms", On::Any),
            ("cloudwatch:ListTagsForResource", On::Alarms),
            ("cloudwatch:DeleteAlarms", On::Alarms),
            // The models our band alarms made (not those found before).
            ("cloudwatch:DescribeAnomalyDetectors", On::Any),
            ("cloudwatch:DeleteAnomalyDetector", On::Any),
        ],
    };
    const SERVES_FUNCTIONS: bool = false;
    const AFTER: &'static [(&'static str, &'static str)] = &[(
        "targets",
        "the proxy publishes its connection metrics once its target is registered",
    )];

    fn inputs(&self, rb: &Runbook, r: &mut Resolver) -> Inputs {
        let db = match (&rb.database.instance_id, &rb.database.cluster_id) {
            (Some(id), _) => Some(("instance", r.text(id))),
            (None, Some(id)) => Some(("cluster", r.text(id))),
            _ => None,
        };
        let functions = rb
            .lambdas
            .iter()
            .map(|l| r.text(&l.function_name))
            .collect();
        let section = rb.alarms.as_ref();
        Inputs {
            proxy: r.output("proxy", "name"),
            db: db.map(|(kind, id)| DbRef {
                kind: kind.into(),
                id,
                engine_family: rb.database.engine_family,
            }),
            functions,
            alarms: section.map(|a| a.alarms.clone()).unwrap_or_default(),
            notify: Notify {
                sns_topic_arn: section.and_then(|a| a.sns_topic_arn.clone()),
                ok: section.is_some_and(|a| a.notify_ok),
                insufficient_data: section.is_some_and(|a| a.notify_insufficient_data),
            },
            tags: rb.tags.clone(),
        }
    }

    fn describe(&self, i: &Inputs) -> String {
        let each: Vec<String> = i
            .alarms
            .iter()
            .map(|a| a.kind.metric().to_string())
            .collect();
        format!(
            "CloudWatch alarms on DB proxy {}: {}",
            i.proxy,
            if each.is_empty() {
                "none".into()
            } else {
                each.join(", ")
            }
        )
    }

    async fn details(&self, cx: &Ctx, i: &Inputs) -> Result<Vec<String>> {
        Ok(wanted(cx, i).await?.iter().map(Alarm::line).collect())
    }

    async fn check(&self, cx: &Ctx, i: &Inputs) -> Result<Found> {
        let want = wanted(cx, i).await?;
        let found = find(cx, &self.names(cx, i)).await?;
        let (mut missing, mut lines, mut present) = (Vec::new(), Vec::new(), Vec::new());
        for w in &want {
            let Some(a) = found.get(&w.name) else {
                missing.push(w.name.clone());
                continue;
            };
            if !ours(cx, a).await? {
                return Ok(Found::Foreign(
                    cx.not_ours(&format!("CloudWatch alarm {}", w.name)),
                ));
            }
            lines.extend(differences(&w.name, &shape_of(a), &w.shape(&i.proxy)));
            present.push(w.name.clone());
        }
        for name in self.dropped(cx, i, &found).await? {
            lines.push(format!(
                "alarm {name}: to delete (no longer in the runbook; in the run's last pass)"
            ));
            present.push(name);
        }
        Ok(if !missing.is_empty() && present.is_empty() {
            Found::Missing
        } else if !missing.is_empty() {
            Found::Incomplete(format!("to create: {}", missing.join(", ")), None)
        } else if !lines.is_empty() {
            Found::Update(lines, output(&present))
        } else {
            Found::Done(output(&present))
        })
    }

    async fn before(&self, cx: &Ctx, i: &Inputs, recorded: Option<Value>) -> Result<Option<Value>> {
        Ok(Some(anomaly::found(cx, &i.proxy, recorded).await?))
    }

    async fn adopted(&self, cx: &Ctx, i: &Inputs, _: &Outputs) -> Result<Option<Value>> {
        Ok(Some(anomaly::found(cx, &i.proxy, None).await?))
    }

    async fn apply(&self, cx: &Ctx, i: &Inputs) -> Result<Outputs> {
        let want = wanted(cx, i).await?;
        let found = find(cx, &self.names(cx, i)).await?;
        let mut present = Vec::new();
        for (n, w) in want.iter().enumerate() {
            match found.get(&w.name) {
                None => {
                    cx.bar.set(format!("creating CloudWatch alarm {}", w.name));
                    put(cx, i, w, true).await?;
                }
                Some(a) => {
                    if !ours(cx, a).await? {
                        anyhow::bail!(cx.not_ours(&format!("CloudWatch alarm {}", w.name)));
                    }
                    if !differences(&w.name, &shape_of(a), &w.shape(&i.proxy)).is_empty() {
                        cx.bar.set(format!("updating CloudWatch alarm {}", w.name));
                        put(cx, i, w, false).await?;
                    }
                }
            }
            if n == 0 {
                crate::failpoint::hit(Self::NAME, "after-first-alarm");
            }
            present.push(w.name.clone());
        }
        let dropped = self.dropped(cx, i, &found).await?;
        if !dropped.is_empty() {
            if cx.may_remove(Self::NAME) {
                self.delete(cx, &dropped).await?;
            } else {
                present.extend(dropped);
            }
        }
        Ok(output(&present))
    }

    async fn rollback(&self, cx: &Ctx, i: &Inputs, before: Option<&Value>) -> Result<Undone> {
        let found = find(cx, &self.names(cx, i)).await?;
        let (mut mine, mut left) = (Vec::new(), Vec::new());
        for (name, a) in &found {
            if ours(cx, a).await? {
                mine.push(name.clone());
            } else {
                left.push(name.clone());
            }
        }
        if !mine.is_empty() {
            self.delete(cx, &mine).await?;
        }
        // Once no alarm of ours uses them: the models they made.
        let models = anomaly::delete_ours(cx, &i.proxy, before).await?;
        if mine.is_empty() && models.is_empty() {
            return Ok(if left.is_empty() {
                Undone::AlreadyGone("the proxy's alarms are already gone".into())
            } else {
                Undone::LeftAlone(format!(
                    "{} lack our tag, so they are not ours to delete",
                    left.join(", ")
                ))
            });
        }
        let mut done = Vec::new();
        if !mine.is_empty() {
            done.push(format!("deleted CloudWatch alarm(s) {}", mine.join(", ")));
        }
        if !models.is_empty() {
            done.push(format!(
                "deleted the anomaly detection model(s) of {} they made",
                models.join(", ")
            ));
        }
        Ok(Undone::Done(done.join("; ")))
    }
}
