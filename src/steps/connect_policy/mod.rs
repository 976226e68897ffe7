//! Recipe steps 3 and 4: fill the connect-policy template (region, account,
//! the proxy's `prx-` id, the DB user), create the customer-managed policy
//! (or, when ours and the document differs, a new default version, pruning
//! old versions to stay within five) and attach it to each target Lambda's
//! execution role.

mod document;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use async_trait::async_trait;
use aws_sdk_iam::types::PolicyVersion;
use futures_util::future::try_join_all;
use serde_json::Value;

use super::common::decode_policy;
use super::common::{TagChanges, function_configuration, iam_tags, policy_attached, tag_changes};
use super::contract::{Actions, Ctx, Found, On, Outputs, Resolver, StepImpl, Undone};
use crate::aws::errors::is_no_such_entity;
use crate::aws::{describe_error, error_code};
use crate::runbook::Runbook;
use document::{Inputs, document, transitional};

pub struct ConnectPolicy;

/// IAM keeps at most five versions of a managed policy.
const MAX_VERSIONS: usize = 5;

/// Which versions to delete so that one more fits: the oldest non-default.
pub fn versions_to_prune(versions: &[PolicyVersion]) -> Vec<String> {
    let mut old: Vec<&PolicyVersion> = versions
        .iter()
        .filter(|v| !v.is_default_version())
        .collect();
    old.sort_by_key(|v| v.create_date().map(|d| d.secs()).unwrap_or_default());
    let excess = (versions.len() + 1).saturating_sub(MAX_VERSIONS);
    old.iter()
        .take(excess)
        .filter_map(|v| v.version_id().map(String::from))
        .collect()
}

#[derive(Clone)]
struct PolicyFound {
    ours: bool,
    document: Option<Value>,
    tags: Vec<(String, String)>,
}

fn policy_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:policy/{name}")
}

/// The policy, read once in this pass of the step.
async fn find_once(cx: &Ctx<'_>, arn: &str) -> Result<Option<PolicyFound>> {
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

async fn find(cx: &Ctx<'_>, arn: &str) -> Result<Option<PolicyFound>> {
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

async fn versions(cx: &Ctx<'_>, arn: &str) -> Result<Vec<PolicyVersion>> {
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

async fn delete_version(cx: &Ctx<'_>, arn: &str, id: &str) -> Result<()> {
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

async fn detach(cx: &Ctx<'_>, arn: &str, role: &str) -> Result<()> {
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
async fn update(cx: &Ctx<'_>, i: &Inputs, arn: &str, f: &PolicyFound, want: &Value) -> Result<()> {
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

/// How the policy's tags must change (see [`tag_changes`]).
fn policy_tags(cx: &Ctx<'_>, i: &Inputs, f: &PolicyFound) -> TagChanges {
    tag_changes(
        cx,
        f.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &i.tags,
    )
}

/// The execution role of each function: its ARN by function, and the
/// roles' names (sorted, once each).
async fn roles(
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
    let mut arns = BTreeMap::new();
    let mut names = Vec::new();
    for (f, conf) in functions.iter().zip(confs) {
        let arn = conf.role().context("a function without a role")?;
        let name = crate::arn::role_name(arn)
            .with_context(|| format!("cannot read the role name in {arn}"))?;
        names.push(name.to_string());
        arns.insert(f.clone(), arn.to_string());
    }
    names.sort();
    names.dedup();
    Ok((arns, names))
}

/// Where the policy stands and where a run takes it: read once per pass.
struct Wiring {
    /// The execution role of each function, by function (ARNs).
    arns: BTreeMap<String, String>,
    /// The functions' roles (names, sorted, once each), and whether the
    /// policy is attached to each now.
    roles: Vec<String>,
    attached: Vec<bool>,
    /// The roles it is attached to that no function of the runbook uses.
    detach: Vec<String>,
}

impl Wiring {
    async fn read(cx: &Ctx<'_>, i: &Inputs, arn: &str) -> Result<Wiring> {
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

    /// The roles the runbook's functions use (ARNs).
    fn new_roles(&self) -> BTreeSet<String> {
        self.arns.values().cloned().collect()
    }

    /// The roles the policy is attached to now (ARNs): the functions' that
    /// have it, and those of functions that left (read by name).
    async fn old_roles(&self, cx: &Ctx<'_>) -> Result<BTreeSet<String>> {
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

/// The documents of a run over a found policy: what the runbook wants, and
/// what its first pass writes while functions still move (see
/// [`transitional`]): the same when nothing has to wait.
struct Documents {
    want: Value,
    during: Value,
}

async fn documents(
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

/// Whether this is a run's last pass, which narrows the policy to the
/// runbook once every function has moved (a plan shows both passes).
fn last_pass(cx: &Ctx<'_>) -> bool {
    cx.removals && cx.deferred.is_some()
}

/// How the policy differs from the runbook (each `what: old -> new`) and
/// the tags to change: the document the run's first pass writes, then the
/// one its last pass narrows it to, when they differ.
fn differences(
    cx: &Ctx<'_>,
    i: &Inputs,
    found: &PolicyFound,
    docs: &Documents,
    wiring: &Wiring,
) -> Vec<String> {
    let mut d = Vec::new();
    let have = found
        .document
        .as_ref()
        .map_or("(unreadable)".to_string(), Value::to_string);
    let (want, during) = (&docs.want, &docs.during);
    if last_pass(cx) || during == want {
        if found.document.as_ref() != Some(want) {
            d.push(format!(
                "policy document: {have} -> {want} (a new default version)"
            ));
        }
    } else {
        if found.document.as_ref() != Some(during) {
            d.push(format!(
                "policy document: {have} -> {during} (a new default version that keeps each \
                 grant of the old one for the roles it had, while the functions move)"
            ));
        }
        d.push(format!(
            "policy document: then, once every function has moved, -> {want} (the run's last \
             pass)"
        ));
    }
    let unattached = wiring.roles.iter().zip(&wiring.attached);
    for (role, _) in unattached.filter(|(_, a)| !**a) {
        d.push(format!("role {role}: not attached -> attached"));
    }
    for role in &wiring.detach {
        d.push(format!(
            "role {role}: attached -> detached (no function of the runbook uses it)"
        ));
    }
    let tags = policy_tags(cx, i, found);
    d.extend(tags.lines);
    d
}

#[async_trait]
impl StepImpl for ConnectPolicy {
    type Inputs = Inputs;
    const NAME: &'static str = "connect-policy";
    const IDENTITY: &'static [&'static str] = &["policy_name"];
    const ACTS_ON_LAMBDAS: bool = true;
    const OUTPUTS: &'static [&'static str] = &["arn", "roles"];
    const ACTIONS: Actions = Actions {
        check: &[
            ("sts:GetCallerIdentity", On::Any),
            ("iam:GetPolicy", On::ConnectPolicy),
            ("iam:GetPolicyVersion", On::ConnectPolicy),
            ("iam:ListPolicyTags", On::ConnectPolicy),
            ("iam:ListEntitiesForPolicy", On::ConnectPolicy),
            ("lambda:GetFunctionConfiguration", On::Functions),
            ("iam:ListAttachedRolePolicies", On::FunctionRoles),
            // The ARN of a role that leaves (a function removed).
            ("iam:GetRole", On::FunctionRoles),
        ],
        apply: &[
            ("sts:GetCallerIdentity", On::Any),
            ("iam:GetPolicy", On::ConnectPolicy),
            ("iam:GetPolicyVersion", On::ConnectPolicy),
            ("iam:ListPolicyTags", On::ConnectPolicy),
            ("iam:ListEntitiesForPolicy", On::ConnectPolicy),
            ("lambda:GetFunctionConfiguration", On::Functions),
            ("iam:ListAttachedRolePolicies", On::FunctionRoles),
            ("iam:GetRole", On::FunctionRoles),
            ("iam:CreatePolicy", On::ConnectPolicy),
            ("iam:TagPolicy", On::ConnectPolicy),
            ("iam:UntagPolicy", On::ConnectPolicy),
            ("iam:ListPolicyVersions", On::ConnectPolicy),
            ("iam:DeletePolicyVersion", On::ConnectPolicy),
            ("iam:CreatePolicyVersion", On::ConnectPolicy),
            ("iam:AttachRolePolicy", On::ConnectPolicyHolders),
            ("iam:DetachRolePolicy", On::ConnectPolicyHolders),
        ],
        rollback: &[
            ("sts:GetCallerIdentity", On::Any),
            ("iam:GetPolicy", On::ConnectPolicy),
            ("iam:GetPolicyVersion", On::ConnectPolicy),
            ("iam:ListPolicyTags", On::ConnectPolicy),
            ("iam:ListEntitiesForPolicy", On::ConnectPolicy),
            ("iam:ListPolicyVersions", On::ConnectPolicy),
            ("iam:DeletePolicyVersion", On::ConnectPolicy),
            ("iam:DeletePolicy", On::ConnectPolicy),
            ("iam:DetachRolePolicy", On::ConnectPolicyHolders),
            ("iam:DetachUserPolicy", On::ConnectPolicyHolders),
            ("iam:DetachGroupPolicy", On::ConnectPolicyHolders),
        ],
    };

    fn inputs(&self, rb: &Runbook, r: &mut Resolver) -> Inputs {
        Inputs {
            policy_name: r.text(&rb.connect_policy.name),
            template: rb.connect_policy.template.clone(),
            proxy_id: r.output("proxy", "id"),
            db_user: r.text(&rb.connect_policy.db_user),
            functions: rb
                .lambdas
                .iter()
                .map(|l| r.text(&l.function_name))
                .collect(),
            users: rb
                .lambdas
                .iter()
                .filter_map(|l| Some((r.text(&l.function_name), l.db_user.clone()?)))
                .collect(),
            tags: rb.tags.clone(),
        }
    }

    fn describe(&self, i: &Inputs) -> String {
        let by_user = i.by_user();
        if by_user.len() <= 1 {
            let user = by_user.keys().next().copied().unwrap_or(&i.db_user);
            return format!(
                "IAM policy {} (rds-db:connect to {} as {user}) attached to the roles of {}",
                i.policy_name,
                i.proxy_id,
                i.functions.join(", ")
            );
        }
        let each: Vec<String> = by_user
            .iter()
            .map(|(user, fs)| format!("{} as {user}", fs.join(", ")))
            .collect();
        format!(
            "IAM policy {} (rds-db:connect to {}: {}, each role its own user) attached to their \
             roles",
            i.policy_name,
            i.proxy_id,
            each.join("; ")
        )
    }

    async fn check(&self, cx: &Ctx, i: &Inputs) -> Result<Found> {
        let account = cx.aws.account_id().await?;
        let arn = policy_arn(account, &i.policy_name);
        // The policy, and where it is attached, read at once.
        let (found, wiring) = tokio::try_join!(find_once(cx, &arn), Wiring::read(cx, i, &arn))?;
        let Some(found) = found else {
            return Ok(Found::Missing);
        };
        if !found.ours {
            return Ok(Found::Foreign(cx.not_ours(&format!("IAM policy {arn}"))));
        }
        let docs = documents(cx, i, &found, &wiring).await?;
        let diffs = differences(cx, i, &found, &docs, &wiring);
        let outputs = Outputs::from([
            ("arn".to_string(), arn),
            ("roles".to_string(), wiring.roles.join(",")),
        ]);
        if !diffs.is_empty() {
            return Ok(Found::Update(diffs, outputs));
        }
        Ok(Found::Done(outputs))
    }

    async fn details(&self, cx: &Ctx, i: &Inputs) -> Result<Vec<String>> {
        let account = cx.aws.account_id().await?;
        let (arns, roles) = roles(cx, &i.functions).await?;
        Ok(vec![
            format!(
                "policy document: {}",
                document(i, &cx.aws.region, account, &arns)?
            ),
            format!("attached to: {}", roles.join(", ")),
        ])
    }

    async fn apply(&self, cx: &Ctx, i: &Inputs) -> Result<Outputs> {
        let account = cx.aws.account_id().await?;
        let arn = policy_arn(account, &i.policy_name);
        let wiring = Wiring::read(cx, i, &arn).await?;
        match find_once(cx, &arn).await? {
            None => {
                let want = document(i, &cx.aws.region, account, &wiring.arns)?;
                cx.bar.set(format!("creating IAM policy {}", i.policy_name));
                let tags = iam_tags(&i.tags)?;
                cx.aws
                    .iam
                    .create_policy()
                    .policy_name(&i.policy_name)
                    .policy_document(want.to_string())
                    .description(
                        "rds-db:connect through the RDS Proxy, created by rds-proxy-runbook",
                    )
                    .set_tags(Some(tags))
                    .send()
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "cannot create IAM policy {}: {}",
                            i.policy_name,
                            describe_error(&e)
                        )
                    })?;
            }
            Some(f) if !f.ours => anyhow::bail!(cx.not_ours(&format!("IAM policy {arn}"))),
            Some(f) => {
                let docs = documents(cx, i, &f, &wiring).await?;
                // Removals wait for the run's last pass: a function leaving
                // keeps its policy until its variable is put back, one
                // moving keeps its old grants until every function moved.
                let waiting = docs.during != docs.want || !wiring.detach.is_empty();
                if waiting && cx.may_remove(Self::NAME) {
                    // Detached first: the narrowed document never reaches a
                    // role that is leaving.
                    for role in &wiring.detach {
                        detach(cx, &arn, role).await?;
                    }
                    update(cx, i, &arn, &f, &docs.want).await?;
                } else {
                    update(cx, i, &arn, &f, &docs.during).await?;
                }
            }
        }
        // Attached once the document is written: a role joining never
        // meets the old one's grants for everyone.
        try_join_all(
            wiring
                .roles
                .iter()
                .zip(&wiring.attached)
                .map(|(role, attached)| {
                    let arn = &arn;
                    async move {
                        if *attached {
                            return Ok(());
                        }
                        cx.bar
                            .set(format!("attaching {} to role {role}", i.policy_name));
                        cx.aws
                            .iam
                            .attach_role_policy()
                            .role_name(role)
                            .policy_arn(arn)
                            .send()
                            .await
                            .map(|_| ())
                            .map_err(|e| {
                                anyhow::anyhow!(
                                    "cannot attach {arn} to role {role}: {}",
                                    describe_error(&e)
                                )
                            })
                    }
                }),
        )
        .await?;
        Ok(Outputs::from([
            ("arn".to_string(), arn),
            ("roles".to_string(), wiring.roles.join(",")),
        ]))
    }

    async fn rollback(&self, cx: &Ctx, i: &Inputs, _: Option<&Value>) -> Result<Undone> {
        let account = cx.aws.account_id().await?;
        let arn = policy_arn(account, &i.policy_name);
        let Some(found) = find(cx, &arn).await? else {
            return Ok(Undone::AlreadyGone(format!(
                "IAM policy {arn} is already gone"
            )));
        };
        if !found.ours {
            return Ok(Undone::LeftAlone(format!(
                "IAM policy {arn} lacks our tag, so it is not ours to delete"
            )));
        }
        // A policy can only be deleted once detached and alone in its
        // versions; it is ours, so every attachment of it is too.
        let entities = cx
            .aws
            .iam
            .list_entities_for_policy()
            .policy_arn(&arn)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot list what uses {arn}: {}", describe_error(&e)))?;
        for role in entities.policy_roles() {
            detach(cx, &arn, role.role_name().unwrap_or_default()).await?;
        }
        for user in entities.policy_users() {
            let name = user.user_name().unwrap_or_default();
            cx.aws
                .iam
                .detach_user_policy()
                .user_name(name)
                .policy_arn(&arn)
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot detach {arn} from user {name}: {}",
                        describe_error(&e)
                    )
                })?;
        }
        for group in entities.policy_groups() {
            let name = group.group_name().unwrap_or_default();
            cx.aws
                .iam
                .detach_group_policy()
                .group_name(name)
                .policy_arn(&arn)
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot detach {arn} from group {name}: {}",
                        describe_error(&e)
                    )
                })?;
        }
        for v in versions(cx, &arn)
            .await?
            .iter()
            .filter(|v| !v.is_default_version())
        {
            delete_version(cx, &arn, v.version_id().unwrap_or_default()).await?;
        }
        cx.bar.set(format!("deleting IAM policy {arn}"));
        match cx.aws.iam.delete_policy().policy_arn(&arn).send().await {
            Ok(_) => Ok(Undone::Done(format!(
                "detached and deleted IAM policy {arn}"
            ))),
            Err(e) if is_no_such_entity(error_code(&e)) => Ok(Undone::AlreadyGone(format!(
                "IAM policy {arn} is already gone"
            ))),
            Err(e) => anyhow::bail!("cannot delete IAM policy {arn}: {}", describe_error(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_iam::primitives::DateTime;

    fn version(id: &str, default: bool, secs: i64) -> PolicyVersion {
        PolicyVersion::builder()
            .version_id(id)
            .is_default_version(default)
            .create_date(DateTime::from_secs(secs))
            .build()
    }

    #[test]
    fn pruning_keeps_room_for_one_more_version() {
        let few = vec![version("v1", false, 1), version("v2", true, 2)];
        assert!(versions_to_prune(&few).is_empty());
        let full = vec![
            version("v3", false, 3),
            version("v1", false, 1),
            version("v5", true, 5),
            version("v2", false, 2),
            version("v4", false, 4),
        ];
        assert_eq!(versions_to_prune(&full), vec!["v1"]);
    }
}
