//! `alarms`: the CloudWatch alarms seed 000 prescribes for the proxy
//! (namespace AWS/RDS, dimension ProxyName), each tagged as ours. Their
//! thresholds come from the account: the DB's max_connections as the
//! connection budget works it out, and the functions' worst case; so a new
//! class or a parameter group edit moves the next plan's threshold. One the
//! runbook drops is deleted in the run's last pass; rollback deletes ours.

mod anomaly;
mod calls;
mod desired;
mod inputs;

use std::collections::BTreeMap;

use anyhow::Result;
use async_trait::async_trait;
use aws_sdk_cloudwatch::types::MetricAlarm;
use serde_json::Value;

use super::contract::{Actions, Ctx, Found, On, Outputs, Resolver, StepImpl, Undone};
use crate::aws::describe_error;
use crate::runbook::Runbook;
use calls::{find, listed, ours, put, shape_of, wanted};
use desired::{Alarm, Notify, differences};
pub use inputs::{DbRef, Inputs};

pub struct Alarms;

/// The output listing the alarms where ours may be: those the runbook
/// wants, and those it dropped whose deletion waits for the run's last pass
/// (so that pass, and rollback, still find them).
const OUTPUT: &str = "alarms";

/// What the step recorded before it first acted on each proxy (see
/// [`anomaly`]).
fn recorded_before<'c>(cx: &'c Ctx<'_>) -> Option<&'c Value> {
    cx.recorded?.before.as_ref()
}

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

impl Alarms {
    /// The recorded alarms the runbook no longer wants that are ours
    /// (`trusted`: see [`ours`]).
    async fn dropped(
        &self,
        cx: &Ctx<'_>,
        i: &Inputs,
        found: &BTreeMap<String, MetricAlarm>,
        trusted: &[String],
    ) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for name in recorded_names(cx) {
            if i.alarms.iter().any(|a| a.name == name) {
                continue;
            }
            if let Some(a) = found.get(&name)
                && ours(cx, a, trusted).await?
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
            // The models the alarms made on a proxy since replaced, in the
            // run's last pass.
            ("cloudwatch:DeleteAnomalyDetector", On::Any),
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
        let found = listed(cx, &self.names(cx, i)).await?;
        let trusted = recorded_names(cx);
        let (mut missing, mut lines, mut present) = (Vec::new(), Vec::new(), Vec::new());
        for w in &want {
            let Some(a) = found.get(&w.name) else {
                missing.push(w.name.clone());
                continue;
            };
            if !ours(cx, a, &trusted).await? {
                return Ok(Found::Foreign(
                    cx.not_ours(&format!("CloudWatch alarm {}", w.name)),
                ));
            }
            lines.extend(differences(&w.name, &shape_of(a), &w.shape(&i.proxy)));
            present.push(w.name.clone());
        }
        for name in self.dropped(cx, i, &found, &trusted).await? {
            lines.push(format!(
                "alarm {name}: to delete (no longer in the runbook; in the run's last pass)"
            ));
            present.push(name);
        }
        for (proxy, model) in anomaly::left_behind(cx, &i.proxy, recorded_before(cx)).await? {
            let model = format!("{model} on {proxy}");
            lines.push(format!(
                "anomaly detection model {model}: to delete (made by our alarms on a proxy \
                 since replaced; in the run's last pass)"
            ));
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
                    if !ours(cx, a, &[]).await? {
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
        let dropped = self.dropped(cx, i, &found, &[]).await?;
        if !dropped.is_empty() {
            if cx.may_remove(Self::NAME) {
                self.delete(cx, &dropped).await?;
            } else {
                present.extend(dropped);
            }
        }
        let before = recorded_before(cx);
        let left = anomaly::left_behind(cx, &i.proxy, before).await?;
        if !left.is_empty() && cx.may_remove(Self::NAME) {
            let deleted = anomaly::delete_models(cx, &left).await?;
            cx.bar.set(format!(
                "deleted the anomaly detection model(s) of {} (their proxy was replaced)",
                deleted.join(", ")
            ));
        }
        Ok(output(&present))
    }

    async fn rollback(&self, cx: &Ctx, i: &Inputs, before: Option<&Value>) -> Result<Undone> {
        let found = find(cx, &self.names(cx, i)).await?;
        let (mut mine, mut left) = (Vec::new(), Vec::new());
        for (name, a) in &found {
            if ours(cx, a, &[]).await? {
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
