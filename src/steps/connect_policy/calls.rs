//! The connect-policy step's calls to IAM (and the functions' roles, from
//! Lambda): the policy and its attachments read once a pass, the roles to
//! detach, a new default version with old ones pruned, its tags, and the
//! documents of a run over a found policy.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use aws_sdk_iam::types::PolicyVersion;
use futures_util::future::try_join_all;
use serde_json::Value;

use super::diff::{Documents, PolicyFound, Wiring, policy_tags, versions_to_prune};
use super::document::{Inputs, document, transitional};
use crate::aws::errors::is_no_such_entity;
use crate::aws::{describe_error, error_code};
use crate::steps::common::{decode_policy, function_configuration, iam_tags, policy_attached};
use crate::steps::contract::Ctx;

/// The policy, read once in this pass of the step.
pub(super) async fn find_once(cx: &Ctx<'_>, arn: &str) -> Result<Option<PolicyFound>> {
    cx.read_once(format!("policy {arn}"), find(cx, arn)).await
}

/// Whether the policy is attached to `role`, as this pass first read it.
async fn attached_once(cx: &Ctx<'_>, role: &str, arn: &str) -> Result<bool> {
    cx.read_once(
        format!("{arn} attached to {role}"),
        policy_attached(cx, role, arn),
    )
    .await
}

/// The policy as the place's IAM listing has it (a check's: shared by a
/// fleet's runbooks), with its tags (which the listing lacks); the apply
/// reads it on its own ([`find_once`]).
pub(super) async fn find_listed(cx: &Ctx<'_>, arn: &str) -> Result<Option<PolicyFound>> {
    let iam = crate::aws::listings::iam(cx.aws).await?;
    if !iam.policies.contains_key(arn) {
        return Ok(None);
    }
    let tags = match cx.aws.iam.list_policy_tags().policy_arn(arn).send().await {
        Ok(t) => t,
        Err(e) if is_no_such_entity(error_code(&e)) => return Ok(None),
        Err(e) => anyhow::bail!("cannot read the tags of {arn}: {}", describe_error(&e)),
    };
    Ok(Some(PolicyFound {
        ours: cx.claims(tags.tags().iter().map(|t| (t.key(), t.value()))),
        tags: tags
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect(),
        document: iam.policy_document(arn),
    }))
}

pub(super) async fn find(cx: &Ctx<'_>, arn: &str) -> Result<Option<PolicyFound>> {
    // The policy and its tags at once; its document then needs the
    // default version's id.
    let (policy, tags) = tokio::join!(
        cx.aws.iam.get_policy().policy_arn(arn).send(),
        cx.aws.iam.list_policy_tags().policy_arn(arn).send()
    );
    let policy = match policy {
        Ok(o) => o.policy.context("GetPolicy answered without a policy")?,
        Err(e) if is_no_such_entity(error_code(&e)) => return Ok(None),
        Err(e) => anyhow::bail!("cannot read IAM policy {arn}: {}", describe_error(&e)),
    };
    let tags =
        tags.map_err(|e| anyhow::anyhow!("cannot read the tags of {arn}: {}", describe_error(&e)))?;
    let version = policy.default_version_id().unwrap_or("v1");
    let doc = cx
        .aws
        .iam
        .get_policy_version()
        .policy_arn(arn)
        .version_id(version)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot read {arn} {version}: {}", describe_error(&e)))?;
    Ok(Some(PolicyFound {
        ours: cx.claims(tags.tags().iter().map(|t| (t.key(), t.value()))),
        tags: tags
            .tags()
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect(),
        document: doc
            .policy_version()
            .and_then(|v| v.document())
            .and_then(decode_policy),
    }))
}

pub(super) async fn versions(cx: &Ctx<'_>, arn: &str) -> Result<Vec<PolicyVersion>> {
    let out = cx
        .aws
        .iam
        .list_policy_versions()
        .policy_arn(arn)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot list versions of {arn}: {}", describe_error(&e)))?;
    Ok(out.versions().to_vec())
}

pub(super) async fn delete_version(cx: &Ctx<'_>, arn: &str, id: &str) -> Result<()> {
    cx.aws
        .iam
        .delete_policy_version()
        .policy_arn(arn)
        .version_id(id)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot delete {arn} {id}: {}", describe_error(&e)))?;
    Ok(())
}

/// The roles the policy is attached to that no function of the runbook uses
/// (a function removed, or moved to another role). The policy is ours, so
/// every attachment of it is too (as rollback holds); read from the account,
/// not the state, so a run that died mid-update loses none. Read once in
/// this pass of the step: what it attaches are roles the runbook uses.
async fn detach_needed(cx: &Ctx<'_>, arn: &str, roles: &[String]) -> Result<Vec<String>> {
    let read = detach_needed_now(cx, arn, roles);
    cx.read_once(format!("roles of {arn} to detach"), read)
        .await
}

async fn detach_needed_now(cx: &Ctx<'_>, arn: &str, roles: &[String]) -> Result<Vec<String>> {
    let out = match cx
        .aws
        .iam
        .list_entities_for_policy()
        .policy_arn(arn)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) if is_no_such_entity(error_code(&e)) => return Ok(Vec::new()),
        Err(e) => anyhow::bail!("cannot list what uses {arn}: {}", describe_error(&e)),
    };
    Ok(out
        .policy_roles()
        .iter()
        .filter_map(|r| r.role_name())
        .filter(|r| !roles.iter().any(|w| w == r))
        .map(String::from)
        .collect())
}

pub(super) async fn detach(cx: &Ctx<'_>, arn: &str, role: &str) -> Result<()> {
    cx.bar.set(format!("detaching {arn} from role {role}"));
    match cx
        .aws
        .iam
        .detach_role_policy()
        .role_name(role)
        .policy_arn(arn)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        // A role deleted or detached since: nothing left to detach.
        Err(e) if is_no_such_entity(error_code(&e)) => Ok(()),
        Err(e) => anyhow::bail!(
            "cannot detach {arn} from role {role}: {}",
            describe_error(&e)
        ),
    }
}

/// Brings a policy of ours to the runbook: a new default version for a new
/// document (pruning to stay within five), and its tags.
pub(super) async fn update(
    cx: &Ctx<'_>,
    i: &Inputs,
    arn: &str,
    f: &PolicyFound,
    want: &Value,
) -> Result<()> {
    if f.document.as_ref() != Some(want) {
        for v in versions_to_prune(&versions(cx, arn).await?) {
            cx.bar.set(format!("deleting old version {v} of {arn}"));
            delete_version(cx, arn, &v).await?;
        }
        cx.bar.set(format!("making a new default version of {arn}"));
        cx.aws
            .iam
            .create_policy_version()
            .policy_arn(arn)
            .policy_document(want.to_string())
            .set_as_default(true)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot update {arn}: {}", describe_error(&e)))?;
    }
    let tags = policy_tags(cx, i, f);
    if !tags.set.is_empty() {
        let set = iam_tags(tags.set.iter().map(|(k, v)| (k, v)))?;
        cx.aws
            .iam
            .tag_policy()
            .policy_arn(arn)
            .set_tags(Some(set))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot tag {arn}: {}", describe_error(&e)))?;
    }
    if !tags.remove.is_empty() {
        cx.aws
            .iam
            .untag_policy()
            .policy_arn(arn)
            .set_tag_keys(Some(tags.remove))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot untag {arn}: {}", describe_error(&e)))?;
    }
    Ok(())
}

/// The execution role of each function: its ARN by function, and the
/// roles' names (sorted, once each).
pub(super) async fn roles(
    cx: &Ctx<'_>,
    functions: &[String],
) -> Result<(BTreeMap<String, String>, Vec<String>)> {
    let confs = try_join_all(functions.iter().map(|f| {
        cx.read_once(
            format!("configuration of {f}"),
            function_configuration(cx, f),
        )
    }))
    .await?;
    named_roles(functions, confs.iter().map(|c| c.role()))
}

/// Each function's role ARN, and the roles' names (sorted, once each).
fn named_roles<'a>(
    functions: &[String],
    roles: impl Iterator<Item = Option<&'a str>>,
) -> Result<(BTreeMap<String, String>, Vec<String>)> {
    let mut arns = BTreeMap::new();
    let mut names = Vec::new();
    for (f, role) in functions.iter().zip(roles) {
        let arn = role.context("a function without a role")?;
        let name = crate::arn::role_name(arn)
            .with_context(|| format!("cannot read the role name in {arn}"))?;
        names.push(name.to_string());
        arns.insert(f.clone(), arn.to_string());
    }
    names.sort();
    names.dedup();
    Ok((arns, names))
}

impl Wiring {
    /// As the place's listings have it (a check's): the functions' roles
    /// out of the listing of every function, the attachments out of the
    /// IAM listing.
    pub(super) async fn read_listed(cx: &Ctx<'_>, i: &Inputs, arn: &str) -> Result<Wiring> {
        let (functions, iam) = tokio::try_join!(
            crate::aws::listings::functions(cx.aws),
            crate::aws::listings::iam(cx.aws)
        )?;
        let confs = i
            .functions
            .iter()
            .map(|f| {
                functions.get(f).ok_or_else(|| {
                    anyhow::anyhow!(
                        "Lambda function {f} does not exist in {}: check [[lambda]] function_name and the region",
                        cx.aws.region
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let (arns, roles) = named_roles(&i.functions, confs.iter().map(|c| c.role()))?;
        let attached = roles.iter().map(|r| iam.attached(r, arn)).collect();
        let detach = iam
            .roles_with(arn)
            .into_iter()
            .filter(|r| !roles.contains(r))
            .collect();
        Ok(Wiring {
            arns,
            roles,
            attached,
            detach,
        })
    }

    pub(super) async fn read(cx: &Ctx<'_>, i: &Inputs, arn: &str) -> Result<Wiring> {
        let (arns, roles) = roles(cx, &i.functions).await?;
        let (attached, detach) = tokio::try_join!(
            try_join_all(roles.iter().map(|r| attached_once(cx, r, arn))),
            detach_needed(cx, arn, &roles)
        )?;
        Ok(Wiring {
            arns,
            roles,
            attached,
            detach,
        })
    }

    /// The roles the policy is attached to now (ARNs): the functions' that
    /// have it, and those of functions that left (read by name).
    pub(super) async fn old_roles(&self, cx: &Ctx<'_>) -> Result<BTreeSet<String>> {
        let mut out: BTreeSet<String> = self
            .arns
            .values()
            .filter(|arn| {
                let name = crate::arn::role_name(arn).unwrap_or_default();
                self.roles
                    .iter()
                    .zip(&self.attached)
                    .any(|(r, a)| *a && r == name)
            })
            .cloned()
            .collect();
        let leaving = try_join_all(self.detach.iter().map(|r| role_arn(cx, r))).await?;
        out.extend(leaving.into_iter().flatten());
        Ok(out)
    }
}

/// A role's ARN (its path is in it), read once in this pass; None when the
/// role is gone (nothing to grant it then).
async fn role_arn(cx: &Ctx<'_>, name: &str) -> Result<Option<String>> {
    let read = async {
        match cx.aws.iam.get_role().role_name(name).send().await {
            Ok(out) => Ok(out.role.map(|r| r.arn)),
            Err(e) if is_no_such_entity(error_code(&e)) => Ok(None),
            Err(e) => anyhow::bail!("cannot read IAM role {name}: {}", describe_error(&e)),
        }
    };
    cx.read_once(format!("arn of role {name}"), read).await
}

pub(super) async fn documents(
    cx: &Ctx<'_>,
    i: &Inputs,
    found: &PolicyFound,
    wiring: &Wiring,
) -> Result<Documents> {
    let account = cx.aws.account_id().await?;
    let want = document(i, &cx.aws.region, account, &wiring.arns)?;
    let old = found.document.clone().unwrap_or(Value::Null);
    let during = transitional(
        &old,
        &wiring.old_roles(cx).await?,
        &want,
        &wiring.new_roles(),
    );
    Ok(Documents { want, during })
}
