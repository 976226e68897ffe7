//! The alarms step's reads and writes: the figures its thresholds come
//! from (the DB's max_connections, the functions' worst case, whether the
//! region offers anomaly detection), the alarms found and whether each is
//! ours, and PutMetricAlarm.

use std::collections::BTreeMap;

use anyhow::Result;
use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, Metric, MetricAlarm, MetricDataQuery, MetricStat, Statistic, Tag,
};

use super::super::contract::Ctx;
use super::desired::{self, Alarm, BAND_ID, Figures, METRIC_ID, Rule, Shape, TREAT_MISSING};
use super::inputs::{DbRef, Inputs};
use crate::aws::{describe_error, error_code};
use crate::runbook::SurgeMode;

/// The figures the thresholds come from, read once in a pass, and only
/// those a threshold uses: the functions' worst case only for a static
/// surge threshold the runbook leaves to the budget.
pub(super) async fn figures(cx: &Ctx<'_>, i: &Inputs) -> Result<Figures> {
    let needs_anomaly = i
        .alarms
        .iter()
        .any(|a| a.kind.is_surge() && a.mode != Some(SurgeMode::Static));
    let anomaly = if needs_anomaly {
        let offered = crate::rounds::shared(
            cx.aws,
            "whether CloudWatch offers anomaly detection".into(),
            anomaly_offered(cx.aws),
        );
        cx.read_once("anomaly detection".into(), offered).await?
    } else {
        Err("not asked".into())
    };
    let needs_clients = i.alarms.iter().any(|a| {
        a.kind.is_surge()
            && a.threshold.is_none()
            && match a.mode.unwrap_or(SurgeMode::Auto) {
                SurgeMode::Static => true,
                SurgeMode::Auto => anomaly.is_err(),
                SurgeMode::Anomaly => false,
            }
    });
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
    Ok(Figures {
        max_connections,
        clients,
        anomaly,
    })
}

/// The DB's max_connections as the budget works it out, and whence.
pub(super) async fn max_connections(cx: &Ctx<'_>, db: &DbRef) -> Result<Option<(i64, String)>> {
    use crate::db::Kind;
    let kind = if db.kind == "cluster" {
        Kind::Cluster
    } else {
        Kind::Instance
    };
    let Some(found) = crate::db::listed(cx.aws, kind, &db.id).await? else {
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

pub(super) async fn clients(cx: &Ctx<'_>, functions: &[String]) -> Result<Option<(i64, String)>> {
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
/// Asked once for the place (`rounds::shared`).
async fn anomaly_offered(aws: &crate::aws::Aws) -> Result<Result<(), String>> {
    Ok(
        match aws
            .cloudwatch
            .describe_anomaly_detectors()
            .max_results(1)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if crate::aws::errors::is_not_offered(error_code(&e)) => Err(format!(
                "DescribeAnomalyDetectors answered {}",
                describe_error(&e)
            )),
            // A throttle or a denial says nothing of what the region
            // offers: the thresholds must not flip to static for it.
            Err(e) => anyhow::bail!(
                "cannot ask CloudWatch whether it offers anomaly detection: {}",
                describe_error(&e)
            ),
        },
    )
}

/// The alarms named, out of the place's shared listing of every alarm (a
/// check's read: one call answers a fleet).
pub(super) async fn listed(
    cx: &Ctx<'_>,
    names: &[String],
) -> Result<BTreeMap<String, MetricAlarm>> {
    let all = crate::aws::listings::alarms(cx.aws).await?;
    Ok(names
        .iter()
        .filter_map(|n| Some((n.clone(), all.get(n)?.clone())))
        .collect())
}

/// The alarms named, as the account holds them.
pub(super) async fn find(cx: &Ctx<'_>, names: &[String]) -> Result<BTreeMap<String, MetricAlarm>> {
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

/// Whether `alarm` is ours. A check trusts the state: an alarm it records
/// as the step's (made, so tagged, or adopted) is taken as ours without a
/// call (CloudWatch lists no tags: one read per alarm and run otherwise);
/// any other's tags are read. A write, and rollback, trust nothing
/// (`trusted` empty): they read the alarm and its tags afresh.
pub(super) async fn ours(cx: &Ctx<'_>, alarm: &MetricAlarm, trusted: &[String]) -> Result<bool> {
    if alarm
        .alarm_name()
        .is_some_and(|n| trusted.iter().any(|t| t == n))
    {
        return Ok(true);
    }
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
pub(super) fn shape_of(a: &MetricAlarm) -> Shape {
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
pub(super) async fn wanted(cx: &Ctx<'_>, i: &Inputs) -> Result<Vec<Alarm>> {
    let f = figures(cx, i).await?;
    desired::desired(&i.alarms, &i.notify, &f).map_err(anyhow::Error::msg)
}

pub(super) async fn put(cx: &Ctx<'_>, i: &Inputs, want: &Alarm, create: bool) -> Result<()> {
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
