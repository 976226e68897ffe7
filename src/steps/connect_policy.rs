//! Recipe steps 3 and 4: fill the connect-policy template (region, account,
//! the proxy's `prx-` id, the DB user), create the customer-managed policy
//! (or, when ours and the document differs, a new default version, pruning
//! old versions to stay within five) and attach it to each target Lambda's
//! execution role.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use async_trait::async_trait;
use aws_sdk_iam::types::PolicyVersion;
use futures_util::future::try_join_all;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::decode_policy;
use super::common::{TagChanges, function_configuration, iam_tags, policy_attached, tag_changes};
use super::contract::{Ctx, Found, Outputs, Resolver, StepImpl, Undone};
use crate::aws::errors::is_no_such_entity;
use crate::aws::{describe_error, error_code};
use crate::runbook::Runbook;
use crate::template::fill_placeholders;

pub struct ConnectPolicy;

/// IAM keeps at most five versions of a managed policy.
const MAX_VERSIONS: usize = 5;

#[derive(Serialize, Deserialize)]
pub struct Inputs {
    policy_name: String,
    template: String,
    proxy_id: String,
    db_user: String,
    functions: Vec<String>,
    /// The functions that name the DB user they connect as (`[[lambda]]
    /// db_user`), each with it; left out when none does.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    users: BTreeMap<String, String>,
    tags: BTreeMap<String, String>,
}

impl Inputs {
    /// Each user the functions connect as, with the functions.
    fn by_user(&self) -> BTreeMap<&str, Vec<&str>> {
        let mut out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for f in &self.functions {
            let user = self.users.get(f).unwrap_or(&self.db_user);
            out.entry(user).or_default().push(f);
        }
        out
    }
}

/// The cookbook's `sed` over the template, for one user.
fn filled(i: &Inputs, user: &str, region: &str, account: &str) -> Result<Value> {
    let text = fill_placeholders(
        &i.template,
        &[
            ("AWS_REGION", region),
            ("AWS_ACCOUNT_ID", account),
            ("RDSProxyID", &i.proxy_id),
            ("DB_USER", user),
        ],
    );
    serde_json::from_str(&text).context("the filled connect-policy template is not JSON")
}

/// The policy's document. When the functions connect as one user (the
/// book's case), the template filled with it. When they connect as several,
/// one policy still serves them all: the template filled once per user,
/// each statement allowed only to the execution roles (`roles`: each
/// function's role ARN) of the functions that connect as that user, so a
/// function may connect as its own user only.
pub fn document(
    i: &Inputs,
    region: &str,
    account: &str,
    roles: &BTreeMap<String, String>,
) -> Result<Value> {
    let by_user = i.by_user();
    if by_user.len() <= 1 {
        let user = by_user.keys().next().copied().unwrap_or(&i.db_user);
        return filled(i, user, region, account);
    }
    let mut all = Vec::new();
    let mut doc = Value::Null;
    for (n, (user, functions)) in by_user.into_iter().enumerate() {
        let mut principals: Vec<&str> = functions
            .iter()
            .map(|f| {
                roles
                    .get(*f)
                    .map(String::as_str)
                    .with_context(|| format!("the execution role of {f} is not known"))
            })
            .collect::<Result<_>>()?;
        principals.sort();
        principals.dedup();
        let principals = match principals.as_slice() {
            [one] => Value::from(*one),
            many => Value::from(many.to_vec()),
        };
        doc = filled(i, user, region, account)?;
        for mut st in statements(&doc) {
            let Some(obj) = st.as_object_mut() else {
                continue;
            };
            if let Some(Value::String(sid)) = obj.get_mut("Sid") {
                sid.push_str(&n.to_string());
            }
            let condition = obj
                .entry("Condition")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(c) = condition.as_object_mut() {
                c.insert(
                    "ArnEquals".into(),
                    serde_json::json!({"aws:PrincipalArn": principals}),
                );
            }
            all.push(st);
        }
    }
    doc["Statement"] = Value::Array(all);
    Ok(doc)
}

/// A document's statements, as a list (IAM accepts one as an object).
fn statements(doc: &Value) -> Vec<Value> {
    match doc.get("Statement") {
        Some(Value::Array(list)) => list.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

/// `want` widened with what `old` allows that it does not (`None` when it
/// allows nothing more): the document for the run's first pass, so that a
/// function still on the old proxy (a replacement) or as the old user keeps
/// its access until every function has moved; the second pass narrows it.
pub fn widened(old: &Value, want: &Value) -> Option<Value> {
    let mut all = statements(want);
    // A kept statement loses its Sid: IAM refuses two statements with one.
    let extra: Vec<Value> = statements(old)
        .into_iter()
        .filter(|s| !all.contains(s))
        .map(|mut s| {
            if let Some(o) = s.as_object_mut() {
                o.remove("Sid");
            }
            s
        })
        .filter(|s| !all.contains(s))
        .collect();
    if extra.is_empty() {
        return None;
    }
    all.extend(extra);
    let mut doc = want.clone();
    doc["Statement"] = Value::Array(all);
    Some(doc)
}

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

/// How the policy differs from the runbook (each `what: old -> new`) and
/// the tags to change, for one found policy and the functions' roles.
fn differences(
    cx: &Ctx<'_>,
    i: &Inputs,
    found: &PolicyFound,
    want: &Value,
    roles: &[String],
    attached: &[bool],
    detach: &[String],
) -> Vec<String> {
    let mut d = Vec::new();
    if found.document.as_ref() != Some(want) {
        d.push(format!(
            "policy document: {} -> {want} (a new default version)",
            found
                .document
                .as_ref()
                .map_or("(unreadable)".to_string(), Value::to_string)
        ));
    }
    for (role, _) in roles.iter().zip(attached).filter(|(_, a)| !**a) {
        d.push(format!("role {role}: not attached -> attached"));
    }
    for role in detach {
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
        let attachments = async {
            let (arns, roles) = roles(cx, &i.functions).await?;
            let (attached, detach) = tokio::try_join!(
                try_join_all(roles.iter().map(|r| attached_once(cx, r, &arn))),
                detach_needed(cx, &arn, &roles)
            )?;
            anyhow::Ok((arns, roles, attached, detach))
        };
        let (found, (arns, roles, attached, detach)) =
            tokio::try_join!(find_once(cx, &arn), attachments)?;
        let Some(found) = found else {
            return Ok(Found::Missing);
        };
        if !found.ours {
            return Ok(Found::Foreign(cx.not_ours(&format!("IAM policy {arn}"))));
        }
        let want = document(i, &cx.aws.region, account, &arns)?;
        let diffs = differences(cx, i, &found, &want, &roles, &attached, &detach);
        let outputs = Outputs::from([
            ("arn".to_string(), arn),
            ("roles".to_string(), roles.join(",")),
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
        let (arns, roles) = roles(cx, &i.functions).await?;
        let want = document(i, &cx.aws.region, account, &arns)?;
        match find_once(cx, &arn).await? {
            None => {
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
                // What the old document allows goes last (the second pass).
                let wider = f.document.as_ref().and_then(|old| widened(old, &want));
                let doc = match wider {
                    Some(wider) if !cx.may_remove(Self::NAME) => wider,
                    _ => want.clone(),
                };
                update(cx, i, &arn, &f, &doc).await?;
            }
        }
        try_join_all(roles.iter().map(|role| {
            let arn = &arn;
            async move {
                if attached_once(cx, role, arn).await? {
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
        }))
        .await?;
        // In the run's second pass: a function leaving keeps its policy
        // until its variable is put back.
        let to_detach = detach_needed(cx, &arn, &roles).await?;
        if !to_detach.is_empty() && cx.may_remove(Self::NAME) {
            for role in to_detach {
                detach(cx, &arn, &role).await?;
            }
        }
        Ok(Outputs::from([
            ("arn".to_string(), arn),
            ("roles".to_string(), roles.join(",")),
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

    #[test]
    fn the_first_pass_keeps_what_the_old_document_allowed() {
        let mut new_proxy = inputs("*");
        new_proxy.proxy_id = "prx-0new".into();
        let old = document(&inputs("*"), "r", "1", &BTreeMap::new()).unwrap();
        let want = document(&new_proxy, "r", "1", &BTreeMap::new()).unwrap();
        let wide = widened(&old, &want).expect("the old proxy is still allowed");
        let text = wide.to_string();
        assert!(
            text.contains("prx-0abc") && text.contains("prx-0new"),
            "{text}"
        );
        assert_eq!(statements(&wide).len(), 2);
        assert_eq!(widened(&want, &want), None, "nothing more to keep");
        assert_eq!(widened(&wide, &wide), None);
        // The second pass narrows the widened one to what the runbook says.
        assert!(widened(&wide, &want).is_some());
        // Statements with Sids (a template's): the kept one has none.
        let sid =
            |user: &str| serde_json::json!({"Statement": [{"Sid": "Connect0", "Resource": user}]});
        let wide = widened(&sid("a"), &sid("b")).unwrap();
        assert_eq!(wide["Statement"][1], serde_json::json!({"Resource": "a"}));
        let single = serde_json::json!({"Statement": {"Effect": "Allow"}});
        assert_eq!(statements(&single).len(), 1);
    }

    fn inputs(db_user: &str) -> Inputs {
        Inputs {
            policy_name: "p".into(),
            template: include_str!("../../runbooks/policies/rds-connect-policy-template.json")
                .into(),
            proxy_id: "prx-0abc".into(),
            db_user: db_user.into(),
            functions: vec!["f".into()],
            users: BTreeMap::new(),
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn the_template_is_filled_like_the_book() {
        let doc = document(&inputs("*"), "us-east-1", "123456789012", &BTreeMap::new()).unwrap();
        assert_eq!(
            doc["Statement"][0]["Resource"][0],
            "arn:aws:rds-db:us-east-1:123456789012:dbuser:prx-0abc/*"
        );
        assert_eq!(doc["Statement"][0]["Action"][0], "rds-db:connect");
        let doc = document(&inputs("admin"), "eu-west-1", "1", &BTreeMap::new()).unwrap();
        assert_eq!(
            doc["Statement"][0]["Resource"][0],
            "arn:aws:rds-db:eu-west-1:1:dbuser:prx-0abc/admin"
        );
    }

    #[test]
    fn functions_of_several_users_each_get_their_own_user_only() {
        let mut i = inputs("*");
        i.functions = vec!["api".into(), "report".into(), "cron".into()];
        i.users = BTreeMap::from([
            ("api".to_string(), "app".to_string()),
            ("report".to_string(), "reader".to_string()),
        ]);
        let roles = BTreeMap::from([
            ("api".to_string(), "arn:aws:iam::1:role/api".to_string()),
            (
                "report".to_string(),
                "arn:aws:iam::1:role/service-role/rep".to_string(),
            ),
            ("cron".to_string(), "arn:aws:iam::1:role/api".to_string()),
        ]);
        let doc = document(&i, "r", "1", &roles).unwrap();
        let st = statements(&doc);
        assert_eq!(st.len(), 3, "{doc}");
        let who = |user: &str| {
            st.iter()
                .find(|s| s["Resource"][0] == format!("arn:aws:rds-db:r:1:dbuser:prx-0abc/{user}"))
                .map(|s| s["Condition"]["ArnEquals"]["aws:PrincipalArn"].clone())
                .unwrap_or_else(|| panic!("no statement for {user}: {doc}"))
        };
        assert_eq!(who("app"), "arn:aws:iam::1:role/api");
        assert_eq!(who("reader"), "arn:aws:iam::1:role/service-role/rep");
        // cron names no user: the connect policy's (`*`), on its role only.
        assert_eq!(who("*"), "arn:aws:iam::1:role/api");
        // A role missing is an error, never a statement for everyone.
        assert!(document(&i, "r", "1", &BTreeMap::new()).is_err());
        // All of one user: the template filled with it, no condition (the
        // book's document with the user in it).
        i.users.insert("cron".into(), "app".into());
        i.users.insert("report".into(), "app".into());
        let one = document(&i, "r", "1", &roles).unwrap();
        assert_eq!(one, filled(&i, "app", "r", "1").unwrap());
        // Inputs without users record as before.
        let v = serde_json::to_value(inputs("*")).unwrap();
        assert!(v.get("users").is_none(), "{v}");
    }

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
