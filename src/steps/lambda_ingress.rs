//! Recipe step 8: the proxy's security group admits each Lambda function's
//! security group (from the function's VpcConfig unless the runbook names
//! one) on the DB port; an `[[endpoint]]` in groups of its own admits the
//! functions that read it (its `read_env_var`'s), the same way. The rules
//! are added and revoked by `ingress.rs`, with `db-ingress`'s: a removed
//! function's rule is revoked only when no remaining function shares its
//! group (`ingress::stale`, from the sources [`sources`] lists).

use std::collections::BTreeMap;

use anyhow::Result;
use async_trait::async_trait;
use futures_util::future::try_join_all;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::function_configuration;
use super::contract::{Actions, Ctx, Found, On, Outputs, Replacement, Resolver, StepImpl, Undone};
use super::ingress;
use crate::runbook::Runbook;

pub struct LambdaIngress;

#[derive(Serialize, Deserialize)]
pub struct Function {
    name: String,
    security_group_id: Option<String>,
}

/// An endpoint's security group (one not the proxy's) and the functions
/// that reach the endpoint.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub struct EndpointGroup {
    group_id: String,
    functions: Vec<String>,
}

#[derive(Serialize, Deserialize)]
pub struct Inputs {
    proxy_security_group_id: String,
    port: u16,
    functions: Vec<Function>,
    /// Left out without such endpoints, so the book's inputs read as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    endpoint_groups: Vec<EndpointGroup>,
}

/// The output that lists the endpoint groups where rules of ours may be:
/// those the runbook wants, and those it no longer names whose rules wait
/// for the run's second pass (so that pass, and rollback, still find them).
const GROUPS: &str = "endpoint_groups";

/// The security groups the functions' connections come from.
async fn sources<'f>(
    cx: &Ctx<'_>,
    functions: impl Iterator<Item = &'f Function>,
) -> Result<Vec<String>> {
    let per_function = try_join_all(functions.map(|f| async move {
        if let Some(sg) = &f.security_group_id {
            return Ok(vec![sg.clone()]);
        }
        let conf = function_configuration(cx, &f.name).await?;
        let groups = conf
            .vpc_config()
            .map(|v| v.security_group_ids().to_vec())
            .unwrap_or_default();
        if groups.is_empty() {
            anyhow::bail!(
                "Lambda function {} is not attached to a VPC, so it cannot reach the proxy: \
                 attach it to the DB's VPC (subnets and a security group), or name its \
                 security group in the runbook ([[lambda]] security_group_id)",
                f.name
            );
        }
        Ok(groups)
    }))
    .await?;
    let mut out: Vec<String> = per_function.into_iter().flatten().collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// The endpoint groups an earlier run recorded (see [`GROUPS`]).
fn recorded_groups(cx: &Ctx<'_>) -> Vec<String> {
    cx.recorded
        .and_then(|r| r.outputs.get(GROUPS))
        .map(|g| {
            g.split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Each endpoint group to look at, with the sources it must admit: the
/// runbook's, then those only recorded (to admit none: our rules there are
/// no longer wanted).
async fn endpoint_admits(cx: &Ctx<'_>, i: &Inputs) -> Result<Vec<(String, Vec<String>)>> {
    let mut out = Vec::new();
    for g in &i.endpoint_groups {
        let functions = i.functions.iter().filter(|f| g.functions.contains(&f.name));
        out.push((g.group_id.clone(), sources(cx, functions).await?));
    }
    for g in recorded_groups(cx) {
        if !out.iter().any(|(w, _)| *w == g) {
            out.push((g, Vec::new()));
        }
    }
    Ok(out)
}

/// The step's outputs: the proxy group's rule ids, and [`GROUPS`] (left out
/// when there are none).
fn with_groups(mut outputs: Outputs, groups: &[String]) -> Outputs {
    if !groups.is_empty() {
        outputs.insert(GROUPS.into(), groups.join(","));
    }
    outputs
}

/// The proxy group's answer and the endpoint groups' as one: an update if
/// any has one, done if all are, missing if none is begun.
fn combine(proxy: Found, endpoints: Vec<(String, Found)>, groups: &[String]) -> Found {
    let mut lines = Vec::new();
    let mut unfinished = Vec::new();
    let mut begun = false;
    let mut outputs = Outputs::new();
    for (group, found) in std::iter::once((String::new(), proxy)).chain(endpoints) {
        let first = group.is_empty();
        match found {
            Found::Done(o) => {
                begun = true;
                if first {
                    outputs = o;
                }
            }
            Found::Update(l, o) => {
                begun = true;
                lines.extend(l);
                if first {
                    outputs = o;
                }
            }
            Found::Missing if first => unfinished.push("the proxy's group admits none".into()),
            Found::Missing => unfinished.push(format!("{group} admits none")),
            Found::Incomplete(why, _) => {
                begun = true;
                unfinished.push(why);
            }
            other => return other,
        }
    }
    let outputs = with_groups(outputs, groups);
    if !lines.is_empty() {
        Found::Update(lines, outputs)
    } else if unfinished.is_empty() {
        Found::Done(outputs)
    } else if !begun {
        Found::Missing
    } else {
        Found::Incomplete(unfinished.join("; "), None)
    }
}

#[async_trait]
impl StepImpl for LambdaIngress {
    type Inputs = Inputs;
    const NAME: &'static str = "lambda-ingress";
    const IDENTITY: &'static [&'static str] = &["proxy_security_group_id"];
    const REPLACEMENT: Replacement = Replacement::WithProxy {
        why: "the proxy would move to the new group in place, maybe before the group admits the \
         functions",
        follows: &[],
    };
    const ACTS_ON_LAMBDAS: bool = true;
    const OUTPUTS: &'static [&'static str] = &["rule_ids"];
    const ACTIONS: Actions = Actions {
        check: &[
            ("ec2:DescribeSecurityGroupRules", On::Any),
            ("lambda:GetFunctionConfiguration", On::Functions),
        ],
        apply: &[
            ("ec2:DescribeSecurityGroupRules", On::Any),
            ("lambda:GetFunctionConfiguration", On::Functions),
            ("ec2:AuthorizeSecurityGroupIngress", On::Any),
            ("ec2:CreateTags", On::Any),
            // Rules in a group no longer named, in the run's last pass.
            ("ec2:RevokeSecurityGroupIngress", On::Any),
        ],
        rollback: &[
            ("ec2:DescribeSecurityGroupRules", On::Any),
            ("ec2:RevokeSecurityGroupIngress", On::Any),
        ],
    };

    fn inputs(&self, rb: &Runbook, r: &mut Resolver) -> Inputs {
        let proxy_groups = r.list(&rb.proxy.security_group_ids);
        let proxy_group = proxy_groups.first().cloned().unwrap_or_default();
        // Each group of an endpoint but the proxy's first (which admits
        // every function), with the functions whose reader variable gets
        // that endpoint.
        let mut by_group: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for e in &rb.endpoints {
            let readers: Vec<String> = rb
                .lambdas
                .iter()
                .filter(|l| rb.reader_endpoint_name(l) == Some(e.name.as_str()))
                .map(|l| r.text(&l.function_name))
                .collect();
            for g in e.security_group_ids.iter().flat_map(|g| r.list(g)) {
                if g != proxy_group && !readers.is_empty() {
                    let entry = by_group.entry(g).or_default();
                    entry.extend(readers.iter().cloned());
                    entry.sort();
                    entry.dedup();
                }
            }
        }
        Inputs {
            proxy_security_group_id: proxy_group,
            port: rb.database.port,
            functions: rb
                .lambdas
                .iter()
                .map(|l| Function {
                    name: r.text(&l.function_name),
                    security_group_id: l.security_group_id.as_ref().map(|t| r.text(t)),
                })
                .collect(),
            endpoint_groups: by_group
                .into_iter()
                .map(|(group_id, functions)| EndpointGroup {
                    group_id,
                    functions,
                })
                .collect(),
        }
    }

    fn describe(&self, i: &Inputs) -> String {
        let names: Vec<&str> = i.functions.iter().map(|f| f.name.as_str()).collect();
        let endpoints: String = i
            .endpoint_groups
            .iter()
            .map(|g| {
                format!(
                    "; endpoint group {} admits {}",
                    g.group_id,
                    g.functions.join(", ")
                )
            })
            .collect();
        format!(
            "the proxy's security group {} admits TCP {} from the security groups of {}{endpoints}",
            i.proxy_security_group_id,
            i.port,
            names.join(", ")
        )
    }

    async fn check(&self, cx: &Ctx, i: &Inputs) -> Result<Found> {
        let all = sources(cx, i.functions.iter()).await?;
        let proxy = ingress::check(cx, Self::NAME, &i.proxy_security_group_id, i.port, &all);
        let endpoints = async {
            let admits = endpoint_admits(cx, i).await?;
            let found = try_join_all(
                admits
                    .iter()
                    .map(|(g, s)| ingress::check(cx, Self::NAME, g, i.port, s)),
            )
            .await?;
            anyhow::Ok((admits, found))
        };
        let (proxy, (admits, found)) = tokio::try_join!(proxy, endpoints)?;
        // A group no longer named is listed only while rules of ours wait
        // there (as apply lists it).
        let endpoints: Vec<(String, Found)> = admits
            .into_iter()
            .zip(found)
            .filter(|((_, admit), f)| !admit.is_empty() || !matches!(f, Found::Done(_)))
            .map(|((g, _), f)| (g, f))
            .collect();
        let groups: Vec<String> = endpoints.iter().map(|(g, _)| g.clone()).collect();
        Ok(combine(proxy, endpoints, &groups))
    }

    async fn tag_owned(&self, cx: &Ctx, outputs: &Outputs) -> Result<()> {
        super::common::tag_owned_ec2(cx, outputs).await
    }

    async fn apply(&self, cx: &Ctx, i: &Inputs) -> Result<Outputs> {
        let all = sources(cx, i.functions.iter()).await?;
        let description = format!("Lambda to RDS Proxy ({})", cx.runbook);
        let outputs = ingress::apply(
            cx,
            Self::NAME,
            &i.proxy_security_group_id,
            i.port,
            &all,
            &description,
        )
        .await?;
        let mut groups = Vec::new();
        for (group, admit) in endpoint_admits(cx, i).await? {
            ingress::apply(cx, Self::NAME, &group, i.port, &admit, &description).await?;
            // A group no longer named stays listed until its rules are gone.
            if !admit.is_empty() || !cx.may_remove(Self::NAME) {
                groups.push(group);
            }
        }
        Ok(with_groups(outputs, &groups))
    }

    async fn adopted(&self, _: &Ctx, _: &Inputs, outputs: &Outputs) -> Result<Option<Value>> {
        Ok(ingress::adopted(outputs))
    }

    async fn rollback(&self, cx: &Ctx, i: &Inputs, before: Option<&Value>) -> Result<Undone> {
        let mut undone =
            ingress::rollback(cx, Self::NAME, &i.proxy_security_group_id, i.port, before).await?;
        let mut groups: Vec<String> = i
            .endpoint_groups
            .iter()
            .map(|g| g.group_id.clone())
            .collect();
        for g in recorded_groups(cx) {
            if !groups.contains(&g) {
                groups.push(g);
            }
        }
        let mut revoked = Vec::new();
        for g in groups {
            if let Undone::Done(what) = ingress::rollback_step(cx, Self::NAME, &g).await? {
                revoked.push(what);
            }
        }
        if !revoked.is_empty() {
            let first = match undone {
                Undone::Done(what) => vec![what],
                _ => Vec::new(),
            };
            undone = Undone::Done(
                first
                    .into_iter()
                    .chain(revoked)
                    .collect::<Vec<_>>()
                    .join("; "),
            );
        }
        Ok(undone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(ids: &str) -> Found {
        Found::Done(Outputs::from([("rule_ids".to_string(), ids.to_string())]))
    }

    #[test]
    fn the_groups_answers_combine_into_one() {
        let groups = vec!["sg-e".to_string()];
        let Found::Done(o) = combine(done("r1"), vec![("sg-e".into(), done("r2"))], &groups) else {
            panic!("all done is done")
        };
        assert_eq!(o["rule_ids"], "r1", "the proxy group's rules, as before");
        assert_eq!(o[GROUPS], "sg-e");
        // The book's: no endpoint group, no output for them.
        let Found::Done(o) = combine(done("r1"), Vec::new(), &[]) else {
            panic!()
        };
        assert!(!o.contains_key(GROUPS));
        // An endpoint group to admit in an applied step: an update.
        let update = Found::Update(vec!["sg-e from sg-f".into()], Outputs::new());
        assert!(matches!(
            combine(done("r1"), vec![("sg-e".into(), update)], &groups),
            Found::Update(l, _) if l == ["sg-e from sg-f"]
        ));
        // Nothing begun anywhere: missing; the proxy's done, an endpoint
        // group not begun: unfinished, which a run completes.
        assert!(matches!(
            combine(
                Found::Missing,
                vec![("sg-e".into(), Found::Missing)],
                &groups
            ),
            Found::Missing
        ));
        assert!(matches!(
            combine(done("r1"), vec![("sg-e".into(), Found::Missing)], &groups),
            Found::Incomplete(why, _) if why == "sg-e admits none"
        ));
    }
}
