//! The anomaly detection models behind the surge alarms' bands. CloudWatch
//! makes a model when an alarm on its band is put and keeps it when the
//! alarm is deleted; models carry no tags. So the step records, before it
//! first acts on a proxy (`before`, saved ahead of any change, so a kill
//! mid-step loses nothing), the models that proxy's metrics already had:
//! those are not ours. Each proxy the alarms have watched is recorded (a
//! replacement moves them to the new proxy, whose models CloudWatch makes
//! anew). Rollback deletes, for each, its models of the metrics the step
//! watches that were not there then, and no other; once a replacement has
//! moved the alarms to a new proxy, the run's last pass deletes those the
//! alarms made on the old one.

use anyhow::Result;
use aws_sdk_cloudwatch::types::{Dimension, SingleMetricAnomalyDetector};
use serde_json::{Value, json};

use super::super::contract::Ctx;
use crate::aws::describe_error;
use crate::aws::errors::is_not_offered;
use crate::runbook::AlarmKind;

/// The key under `before`: for each proxy the alarms watched, the models
/// found before the step first acted on it.
const FOUND: &str = "anomaly_detectors";

/// One model: its metric and statistic on the proxy (`ClientConnections
/// Maximum`).
fn key(metric: &str, stat: &str) -> String {
    format!("{metric} {stat}")
}

/// The proxy's models of the metrics the step watches (their keys), or
/// None where the account offers no anomaly detection.
async fn models(cx: &Ctx<'_>, proxy: &str) -> Result<Option<Vec<String>>> {
    let watched: Vec<&str> = AlarmKind::ALL.iter().map(|k| k.metric()).collect();
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let answer = cx
            .aws
            .cloudwatch
            .describe_anomaly_detectors()
            .namespace("AWS/RDS")
            .dimensions(Dimension::builder().name("ProxyName").value(proxy).build())
            .set_next_token(token)
            .send()
            .await;
        let answer = match answer {
            Ok(a) => a,
            // Not offered here: no model can be.
            Err(e) if is_not_offered(crate::aws::error_code(&e)) => return Ok(None),
            // Any other failure is no answer: taking it for "none there"
            // would record a model made by hand as not there before, and
            // rollback would delete it.
            Err(e) => anyhow::bail!(
                "cannot list the anomaly detection models of DB proxy {proxy}: {}",
                describe_error(&e)
            ),
        };
        for d in answer.anomaly_detectors() {
            let Some(m) = d.single_metric_anomaly_detector() else {
                continue;
            };
            let (Some(metric), Some(stat)) = (m.metric_name(), m.stat()) else {
                continue;
            };
            let on_proxy = m.namespace() == Some("AWS/RDS")
                && m.dimensions().len() == 1
                && m.dimensions()[0].value() == Some(proxy);
            if on_proxy && watched.contains(&metric) {
                out.push(key(metric, stat));
            }
        }
        token = answer.next_token().map(String::from);
        if token.is_none() {
            break;
        }
    }
    out.sort();
    Ok(Some(out))
}

/// What `before` records: `recorded` kept, and the models already there
/// on `proxy` if it is new to the record.
pub async fn found(cx: &Ctx<'_>, proxy: &str, recorded: Option<Value>) -> Result<Value> {
    let mut all = recorded
        .as_ref()
        .and_then(|r| r.get(FOUND))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if !all.contains_key(proxy) {
        let there = models(cx, proxy).await?.unwrap_or_default();
        all.insert(proxy.to_string(), json!(there));
    }
    Ok(json!({ FOUND: all }))
}

/// Deletes, on each proxy recorded, the models that were not there before
/// the step acted on it (with `rollback --include-adopted` of an adopted
/// step, those it found too: it adopted them with the alarms); returns
/// their keys. With no record of what was there (a state from before
/// models were recorded), none: it cannot tell ours; but adopted and
/// undone with --include-adopted, those on `proxy`.
pub async fn delete_ours(cx: &Ctx<'_>, proxy: &str, before: Option<&Value>) -> Result<Vec<String>> {
    let mut proxies = before
        .and_then(|b| b.get(FOUND))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    if cx.adopted {
        proxies.entry(proxy.to_string()).or_insert(json!([]));
    }
    let mut deleted = Vec::new();
    for (proxy, there) in &proxies {
        let there: Vec<&str> = match cx.adopted {
            true => Vec::new(),
            false => there
                .as_array()
                .map(|t| t.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default(),
        };
        deleted.extend(delete_on(cx, proxy, &there).await?);
    }
    Ok(deleted)
}

/// The proxies recorded besides `proxy` (those a replacement left), each
/// with the models found there before the step first acted on it.
fn others<'v>(before: Option<&'v Value>, proxy: &str) -> Vec<(&'v str, Vec<&'v str>)> {
    let Some(all) = before.and_then(|b| b.get(FOUND)).and_then(Value::as_object) else {
        return Vec::new();
    };
    all.iter()
        .filter(|(p, _)| p.as_str() != proxy)
        .map(|(p, there)| {
            let there = there
                .as_array()
                .map(|t| t.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            (p.as_str(), there)
        })
        .collect()
}

/// The models our alarms made on the proxies a replacement left (no alarm
/// of ours watches those any more), each `(proxy, key)`: what the run's
/// last pass deletes ([`delete_models`]).
pub async fn left_behind(
    cx: &Ctx<'_>,
    proxy: &str,
    before: Option<&Value>,
) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (old, there) in others(before, proxy) {
        let now = models(cx, old).await?.unwrap_or_default();
        out.extend(
            now.into_iter()
                .filter(|k| !there.contains(&k.as_str()))
                .map(|k| (old.to_string(), k)),
        );
    }
    Ok(out)
}

/// Deletes the models `(proxy, key)`; returns them as `KEY on PROXY`.
pub async fn delete_models(cx: &Ctx<'_>, models: &[(String, String)]) -> Result<Vec<String>> {
    let mut deleted = Vec::new();
    for (proxy, key) in models {
        if delete_model(cx, proxy, key).await? {
            deleted.push(format!("{key} on {proxy}"));
        }
    }
    Ok(deleted)
}

async fn delete_on(cx: &Ctx<'_>, proxy: &str, there: &[&str]) -> Result<Vec<String>> {
    let Some(now) = models(cx, proxy).await? else {
        return Ok(Vec::new());
    };
    let ours: Vec<(String, String)> = now
        .into_iter()
        .filter(|k| !there.contains(&k.as_str()))
        .map(|k| (proxy.to_string(), k))
        .collect();
    delete_models(cx, &ours).await
}

/// Deletes the model `key` (`METRIC STAT`) on `proxy`; false when it was
/// already gone.
async fn delete_model(cx: &Ctx<'_>, proxy: &str, key: &str) -> Result<bool> {
    let (metric, stat) = key.split_once(' ').unwrap_or((key, ""));
    let model = SingleMetricAnomalyDetector::builder()
        .namespace("AWS/RDS")
        .metric_name(metric)
        .dimensions(Dimension::builder().name("ProxyName").value(proxy).build())
        .stat(stat)
        .build();
    match cx
        .aws
        .cloudwatch
        .delete_anomaly_detector()
        .single_metric_anomaly_detector(model)
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if crate::aws::error_code(&e) == Some("ResourceNotFoundException") => Ok(false),
        Err(e) => anyhow::bail!(
            "cannot delete the anomaly detection model of {key} on DB proxy {proxy}: {}",
            describe_error(&e)
        ),
    }
}
