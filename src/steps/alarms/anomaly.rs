//! The anomaly detection models behind the surge alarms' bands. CloudWatch
//! makes a model when an alarm on its band is put and keeps it when the
//! alarm is deleted; models carry no tags. So the step records, before it
//! first acts (`before`, saved ahead of any change, so a kill mid-step
//! loses nothing), the models the proxy's metrics already had: those are
//! not ours. Rollback deletes the proxy's models of the metrics the step
//! watches that were not there then, and no other.

use anyhow::Result;
use aws_sdk_cloudwatch::types::{Dimension, SingleMetricAnomalyDetector};
use serde_json::{Value, json};

use super::super::contract::Ctx;
use crate::aws::describe_error;
use crate::runbook::AlarmKind;

/// The key under `before` listing the models found before the step acted.
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
            Err(e) if crate::aws::error_code(&e) == Some("AccessDenied") => anyhow::bail!(
                "cannot list the anomaly detection models of DB proxy {proxy}: {}",
                describe_error(&e)
            ),
            // Not offered here: no model can be.
            Err(_) => return Ok(None),
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

/// What `before` records: the models already there.
pub async fn found(cx: &Ctx<'_>, proxy: &str) -> Result<Value> {
    let there = models(cx, proxy).await?.unwrap_or_default();
    Ok(json!({ FOUND: there }))
}

/// Deletes the proxy's models that were not there before the step acted
/// (with `rollback --include-adopted` of an adopted step, those it found
/// too: it adopted them with the alarms); returns their keys. With no
/// record of what was there (a state from before models were recorded),
/// none: it cannot tell ours.
pub async fn delete_ours(cx: &Ctx<'_>, proxy: &str, before: Option<&Value>) -> Result<Vec<String>> {
    let Some(there) = before.and_then(|b| b.get(FOUND)).and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    let there: Vec<&str> = match cx.adopted {
        true => Vec::new(),
        false => there.iter().filter_map(Value::as_str).collect(),
    };
    let Some(now) = models(cx, proxy).await? else {
        return Ok(Vec::new());
    };
    let mut deleted = Vec::new();
    for k in now.into_iter().filter(|k| !there.contains(&k.as_str())) {
        let (metric, stat) = k.split_once(' ').unwrap_or((&k, ""));
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
            Ok(_) => deleted.push(k),
            Err(e) if crate::aws::error_code(&e) == Some("ResourceNotFoundException") => {}
            Err(e) => anyhow::bail!(
                "cannot delete the anomaly detection model of {k} on DB proxy {proxy}: {}",
                describe_error(&e)
            ),
        }
    }
    Ok(deleted)
}
