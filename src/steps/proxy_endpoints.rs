//! The proxy's other endpoints (`[[endpoint]]`): a READ_ONLY one serves an
//! Aurora cluster's readers, a READ_WRITE one another way in to the writer,
//! each in the proxy's subnets and groups unless the runbook names others.
//! Made after the target is registered (a READ_ONLY endpoint needs the
//! cluster), each tagged as ours; the groups change in place, the role and
//! subnets only with a new endpoint. One the runbook drops is deleted in the
//! run's last pass, once no function's variable is moved off it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use aws_sdk_rds::types::{DbProxyEndpoint, DbProxyEndpointTargetRole};
use futures_util::future::try_join_all;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::rds_tags;
use super::contract::{Actions, Ctx, Found, On, Outputs, Replacement, Resolver, StepImpl, Undone};
use crate::aws::errors::is_endpoint_not_found;
use crate::aws::{describe_error, error_code};
use crate::poll::Wait;
use crate::rounds::{self, wait_in_rounds};
use crate::runbook::Runbook;

pub struct ProxyEndpoints;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Endpoint {
    name: String,
    target_role: String,
    subnet_ids: Vec<String>,
    security_group_ids: Vec<String>,
}

#[derive(Serialize, Deserialize)]
pub struct Inputs {
    proxy: String,
    endpoints: Vec<Endpoint>,
    tags: BTreeMap<String, String>,
    /// A setting of the run, kept out of the checksum.
    #[serde(rename = "_wait_timeout_seconds")]
    wait_timeout_seconds: u64,
}

/// The `endpoints` output: `NAME=HOST` pairs separated by spaces.
pub fn hosts(output: &str) -> Vec<(String, String)> {
    output
        .split_whitespace()
        .filter_map(|p| p.split_once('='))
        .map(|(n, h)| (n.to_string(), h.to_string()))
        .collect()
}

fn output(found: &[DbProxyEndpoint]) -> Outputs {
    let mut pairs: Vec<String> = found
        .iter()
        .filter_map(|e| Some(format!("{}={}", e.db_proxy_endpoint_name()?, e.endpoint()?)))
        .collect();
    pairs.sort();
    Outputs::from([("endpoints".into(), pairs.join(" "))])
}

async fn find(cx: &Ctx<'_>, name: &str) -> Result<Option<DbProxyEndpoint>> {
    match cx
        .aws
        .rds
        .describe_db_proxy_endpoints()
        .db_proxy_endpoint_name(name)
        .send()
        .await
    {
        Ok(o) => Ok(o.db_proxy_endpoints.unwrap_or_default().into_iter().next()),
        Err(e) if is_endpoint_not_found(error_code(&e)) => Ok(None),
        Err(e) => anyhow::bail!(
            "cannot read DB proxy endpoint {name}: {}",
            describe_error(&e)
        ),
    }
}

async fn ours(cx: &Ctx<'_>, ep: &DbProxyEndpoint) -> Result<bool> {
    let arn = ep
        .db_proxy_endpoint_arn()
        .context("a DB proxy endpoint without an ARN")?;
    let tags = crate::aws::rds::tags(cx.aws, arn).await?;
    Ok(cx.claims(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))))
}

fn set(v: &[String]) -> BTreeSet<&str> {
    v.iter().map(String::as_str).collect()
}

/// How an endpoint differs from the runbook: (in place, only a new one).
pub fn differences(ep: &DbProxyEndpoint, want: &Endpoint) -> (Vec<String>, Vec<String>) {
    let (mut in_place, mut replace) = (Vec::new(), Vec::new());
    let role = ep
        .target_role()
        .map_or("READ_WRITE", DbProxyEndpointTargetRole::as_str);
    if role != want.target_role {
        replace.push(format!(
            "endpoint {} target role: {role} -> {}",
            want.name, want.target_role
        ));
    }
    if set(ep.vpc_subnet_ids()) != set(&want.subnet_ids) {
        replace.push(format!(
            "endpoint {} subnets: {:?} -> {:?}",
            want.name,
            set(ep.vpc_subnet_ids()),
            set(&want.subnet_ids)
        ));
    }
    if set(ep.vpc_security_group_ids()) != set(&want.security_group_ids) {
        in_place.push(format!(
            "endpoint {} security groups: {:?} -> {:?}",
            want.name,
            set(ep.vpc_security_group_ids()),
            set(&want.security_group_ids)
        ));
    }
    (in_place, replace)
}

fn status(ep: &DbProxyEndpoint) -> &str {
    ep.status().map_or("unknown", |s| s.as_str())
}

/// The proxy's endpoints besides its default, in one call (none when the
/// proxy is gone).
async fn of_proxy(cx: &Ctx<'_>, proxy: &str) -> Result<Vec<DbProxyEndpoint>> {
    match cx
        .aws
        .rds
        .describe_db_proxy_endpoints()
        .db_proxy_name(proxy)
        .send()
        .await
    {
        Ok(o) => Ok(o
            .db_proxy_endpoints
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e.is_default() != Some(true))
            .collect()),
        Err(e) if crate::aws::errors::is_proxy_not_found(error_code(&e)) => Ok(Vec::new()),
        Err(e) => anyhow::bail!(
            "cannot list the endpoints of DB proxy {proxy}: {}",
            describe_error(&e)
        ),
    }
}

impl ProxyEndpoints {
    /// Endpoints of our proxy with our tag that the runbook no longer lists,
    /// read from the account (not the state, which a first pass may have
    /// rewritten before the removals' pass): `listed`, the proxy's, or read.
    async fn dropped(
        &self,
        cx: &Ctx<'_>,
        i: &Inputs,
        listed: Option<Vec<DbProxyEndpoint>>,
    ) -> Result<Vec<String>> {
        let all = match listed {
            Some(l) => l,
            None => of_proxy(cx, &i.proxy).await?,
        };
        let mut out = Vec::new();
        for ep in all {
            let Some(name) = ep.db_proxy_endpoint_name() else {
                continue;
            };
            if i.endpoints.iter().any(|w| w.name == name) {
                continue;
            }
            if ours(cx, &ep).await? {
                out.push(name.to_string());
            }
        }
        Ok(out)
    }

    async fn delete_and_wait(&self, cx: &Ctx<'_>, i: &Inputs, names: &[String]) -> Result<()> {
        for name in names {
            cx.bar.set(format!("deleting DB proxy endpoint {name}"));
            match cx
                .aws
                .rds
                .delete_db_proxy_endpoint()
                .db_proxy_endpoint_name(name)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if is_endpoint_not_found(error_code(&e)) => {}
                Err(e) if error_code(&e) == Some("InvalidDBProxyEndpointStateFault") => {}
                Err(e) => anyhow::bail!(
                    "cannot delete DB proxy endpoint {name}: {}",
                    describe_error(&e)
                ),
            }
        }
        let look = rounds::endpoints(cx.aws);
        for name in names {
            wait_in_rounds(
                cx.bar,
                &format!("DB proxy endpoint {name} to be deleted"),
                Duration::from_secs(i.wait_timeout_seconds),
                &look,
                || async {
                    Ok(match look.endpoint(name)? {
                        None => Wait::Ready(()),
                        Some(ep) => Wait::Pending(status(&ep).to_string()),
                    })
                },
            )
            .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl StepImpl for ProxyEndpoints {
    type Inputs = Inputs;
    const NAME: &'static str = "proxy-endpoints";
    const OUTPUTS: &'static [&'static str] = &["endpoints"];
    const ACTIONS: Actions = Actions {
        check: &[
            ("rds:DescribeDBProxyEndpoints", On::Any),
            ("rds:ListTagsForResource", On::Proxy),
        ],
        apply: &[
            ("rds:DescribeDBProxyEndpoints", On::Any),
            ("rds:ListTagsForResource", On::Proxy),
            ("rds:CreateDBProxyEndpoint", On::Proxy),
            ("rds:ModifyDBProxyEndpoint", On::Proxy),
            ("rds:AddTagsToResource", On::Proxy),
            ("rds:RemoveTagsFromResource", On::Proxy),
            // One the runbook drops, in the run's last pass.
            ("rds:DeleteDBProxyEndpoint", On::Proxy),
        ],
        rollback: &[
            ("rds:DescribeDBProxyEndpoints", On::Any),
            ("rds:ListTagsForResource", On::Proxy),
            ("rds:DeleteDBProxyEndpoint", On::Proxy),
        ],
    };
    const IDENTITY: &'static [&'static str] = &["proxy"];
    const REPLACEMENT: Replacement = Replacement::WithProxy {
        why: "endpoints belong to their proxy",
        follows: &["proxy"],
    };
    const AFTER: &'static [(&'static str, &'static str)] = &[(
        "targets",
        "a READ_ONLY endpoint serves the readers of the cluster registered as the target",
    )];

    fn inputs(&self, rb: &Runbook, r: &mut Resolver) -> Inputs {
        let proxy_subnets = r.list(&rb.proxy.subnet_ids);
        let proxy_groups = r.list(&rb.proxy.security_group_ids);
        Inputs {
            proxy: r.output("proxy", "name"),
            endpoints: rb
                .endpoints
                .iter()
                .map(|e| Endpoint {
                    name: e.name.clone(),
                    target_role: e.target_role.to_string(),
                    subnet_ids: e
                        .subnet_ids
                        .as_ref()
                        .map_or_else(|| proxy_subnets.clone(), |s| r.list(s)),
                    security_group_ids: e
                        .security_group_ids
                        .as_ref()
                        .map_or_else(|| proxy_groups.clone(), |s| r.list(s)),
                })
                .collect(),
            tags: rb.tags.clone(),
            wait_timeout_seconds: rb.proxy.wait_timeout_seconds,
        }
    }

    fn describe(&self, i: &Inputs) -> String {
        let each: Vec<String> = i
            .endpoints
            .iter()
            .map(|e| format!("{} ({})", e.name, e.target_role))
            .collect();
        if each.is_empty() {
            return format!("no endpoints of DB proxy {} besides its default", i.proxy);
        }
        format!("endpoints of DB proxy {}: {}", i.proxy, each.join(", "))
    }

    async fn check(&self, cx: &Ctx, i: &Inputs) -> Result<Found> {
        // One listing of the proxy's endpoints answers for the runbook's and
        // the dropped ones; a name it lacks is looked up on its own (it may
        // be another proxy's: endpoint names are the account's).
        let listed = of_proxy(cx, &i.proxy).await?;
        let found = try_join_all(i.endpoints.iter().map(|e| {
            let known = listed
                .iter()
                .find(|l| l.db_proxy_endpoint_name() == Some(e.name.as_str()))
                .cloned();
            async move {
                match known {
                    Some(ep) => Ok(Some(ep)),
                    None => find(cx, &e.name).await,
                }
            }
        }))
        .await?;
        let (mut missing, mut lines, mut replace, mut pending, mut present) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (want, ep) in i.endpoints.iter().zip(found) {
            let Some(ep) = ep else {
                missing.push(want.name.clone());
                continue;
            };
            let what = format!("DB proxy endpoint {}", want.name);
            if ep.db_proxy_name() != Some(i.proxy.as_str()) {
                return Ok(Found::Foreign(format!(
                    "{what} exists on another proxy ({}): endpoint names are the account's, so \
                     a new proxy needs new endpoint names",
                    ep.db_proxy_name().unwrap_or("?")
                )));
            }
            if !ours(cx, &ep).await? {
                return Ok(Found::Foreign(cx.not_ours(&what)));
            }
            let (in_place, new) = differences(&ep, want);
            lines.extend(in_place);
            replace.extend(new);
            if status(&ep) != "available" {
                pending.push(format!("{} is {}", want.name, status(&ep)));
            }
            present.push(ep);
        }
        if !replace.is_empty() {
            return Ok(Found::Replace(replace));
        }
        for name in self.dropped(cx, i, Some(listed)).await? {
            lines.push(format!(
                "endpoint {name}: to delete (no longer in the runbook; after the functions moved)"
            ));
        }
        Ok(
            if !missing.is_empty() && present.is_empty() && lines.is_empty() {
                Found::Missing
            } else if !missing.is_empty() {
                Found::Incomplete(format!("to create: {}", missing.join(", ")), None)
            } else if !lines.is_empty() {
                Found::Update(lines, output(&present))
            } else if !pending.is_empty() {
                // Each there with its host (named when it is created): what
                // the steps after it read is known already.
                let known = present
                    .iter()
                    .all(|e| e.endpoint().is_some_and(|h| !h.is_empty()));
                Found::Incomplete(
                    format!("waiting: {}", pending.join(", ")),
                    known.then(|| output(&present)),
                )
            } else {
                Found::Done(output(&present))
            },
        )
    }

    async fn apply(&self, cx: &Ctx, i: &Inputs) -> Result<Outputs> {
        for want in &i.endpoints {
            match find(cx, &want.name).await? {
                None => {
                    cx.bar
                        .set(format!("creating DB proxy endpoint {}", want.name));
                    cx.aws
                        .rds
                        .create_db_proxy_endpoint()
                        .db_proxy_name(&i.proxy)
                        .db_proxy_endpoint_name(&want.name)
                        .target_role(DbProxyEndpointTargetRole::from(want.target_role.as_str()))
                        .set_vpc_subnet_ids(Some(want.subnet_ids.clone()))
                        .set_vpc_security_group_ids(Some(want.security_group_ids.clone()))
                        .set_tags(Some(rds_tags(&i.tags)))
                        .send()
                        .await
                        .map_err(|e| {
                            anyhow::anyhow!(
                                "cannot create DB proxy endpoint {}: {}",
                                want.name,
                                describe_error(&e)
                            )
                        })?;
                }
                Some(ep) => {
                    if ep.db_proxy_name() != Some(i.proxy.as_str()) {
                        anyhow::bail!(
                            "DB proxy endpoint {} exists on another proxy ({}): endpoint names \
                             are the account's, so a new proxy needs new endpoint names",
                            want.name,
                            ep.db_proxy_name().unwrap_or("?")
                        );
                    }
                    if !ours(cx, &ep).await? {
                        anyhow::bail!(cx.not_ours(&format!("DB proxy endpoint {}", want.name)));
                    }
                    if !differences(&ep, want).0.is_empty() && status(&ep) == "available" {
                        cx.bar
                            .set(format!("modifying DB proxy endpoint {}", want.name));
                        cx.aws
                            .rds
                            .modify_db_proxy_endpoint()
                            .db_proxy_endpoint_name(&want.name)
                            .set_vpc_security_group_ids(Some(want.security_group_ids.clone()))
                            .send()
                            .await
                            .map_err(|e| {
                                anyhow::anyhow!(
                                    "cannot modify DB proxy endpoint {}: {}",
                                    want.name,
                                    describe_error(&e)
                                )
                            })?;
                    }
                }
            }
        }
        let mut present = Vec::new();
        let look = rounds::endpoints(cx.aws);
        for want in &i.endpoints {
            let ep = wait_in_rounds(
                cx.bar,
                &format!("DB proxy endpoint {}", want.name),
                Duration::from_secs(i.wait_timeout_seconds),
                &look,
                || async {
                    let Some(ep) = look.endpoint(&want.name)? else {
                        return Ok(Wait::Pending("not visible yet".into()));
                    };
                    Ok(match status(&ep) {
                        "available" if differences(&ep, want).0.is_empty() => Wait::Ready(ep),
                        "available" => Wait::Pending("applying the security groups".into()),
                        "deleting" => anyhow::bail!(
                            "DB proxy endpoint {} is being deleted; run again once it is gone",
                            want.name
                        ),
                        other => Wait::Pending(other.to_string()),
                    })
                },
            )
            .await?;
            present.push(ep);
        }
        let dropped = self.dropped(cx, i, None).await?;
        if !dropped.is_empty() && cx.may_remove(Self::NAME) {
            self.delete_and_wait(cx, i, &dropped).await?;
        }
        Ok(output(&present))
    }

    async fn rollback(&self, cx: &Ctx, i: &Inputs, _: Option<&Value>) -> Result<Undone> {
        let mut ours_now = Vec::new();
        let mut left = Vec::new();
        for e in &i.endpoints {
            let Some(ep) = find(cx, &e.name).await? else {
                continue;
            };
            if ep.db_proxy_name() == Some(i.proxy.as_str()) && ours(cx, &ep).await? {
                ours_now.push(e.name.clone());
            } else {
                left.push(e.name.clone());
            }
        }
        if ours_now.is_empty() {
            return Ok(if left.is_empty() {
                Undone::AlreadyGone("the proxy's endpoints are already gone".into())
            } else {
                Undone::LeftAlone(format!(
                    "{} lack our tag, so they are not ours to delete",
                    left.join(", ")
                ))
            });
        }
        self.delete_and_wait(cx, i, &ours_now).await?;
        Ok(Undone::Done(format!(
            "deleted DB proxy endpoint(s) {}",
            ours_now.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_rds::types::DbProxyEndpoint;

    fn want() -> Endpoint {
        Endpoint {
            name: "ro".into(),
            target_role: "READ_ONLY".into(),
            subnet_ids: vec!["a".into(), "b".into()],
            security_group_ids: vec!["sg1".into()],
        }
    }

    #[test]
    fn groups_change_in_place_role_and_subnets_need_a_new_endpoint() {
        let same = DbProxyEndpoint::builder()
            .db_proxy_endpoint_name("ro")
            .target_role(DbProxyEndpointTargetRole::ReadOnly)
            .vpc_subnet_ids("b")
            .vpc_subnet_ids("a")
            .vpc_security_group_ids("sg1")
            .build();
        assert_eq!(differences(&same, &want()), (vec![], vec![]));
        let other = DbProxyEndpoint::builder()
            .db_proxy_endpoint_name("ro")
            .target_role(DbProxyEndpointTargetRole::ReadWrite)
            .vpc_subnet_ids("a")
            .vpc_security_group_ids("sg2")
            .build();
        let (in_place, replace) = differences(&other, &want());
        assert_eq!(
            in_place,
            vec![r#"endpoint ro security groups: {"sg2"} -> {"sg1"}"#]
        );
        assert_eq!(replace.len(), 2, "{replace:?}");
        assert!(replace[0].contains("target role: READ_WRITE -> READ_ONLY"));
    }

    #[test]
    fn the_output_names_each_endpoints_host() {
        let eps = [
            DbProxyEndpoint::builder()
                .db_proxy_endpoint_name("rw2")
                .endpoint("rw2.endpoint.proxy-x.rds.amazonaws.com")
                .build(),
            DbProxyEndpoint::builder()
                .db_proxy_endpoint_name("ro")
                .endpoint("ro.endpoint.proxy-x.rds.amazonaws.com")
                .build(),
        ];
        let out = output(&eps);
        assert_eq!(
            out["endpoints"],
            "ro=ro.endpoint.proxy-x.rds.amazonaws.com rw2=rw2.endpoint.proxy-x.rds.amazonaws.com"
        );
        assert_eq!(
            hosts(&out["endpoints"]),
            vec![
                (
                    "ro".to_string(),
                    "ro.endpoint.proxy-x.rds.amazonaws.com".to_string()
                ),
                (
                    "rw2".to_string(),
                    "rw2.endpoint.proxy-x.rds.amazonaws.com".to_string()
                ),
            ]
        );
    }
}
