//! Recipe step 1: the IAM role the proxy assumes to read the DB secret.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use async_trait::async_trait;
use aws_sdk_iam::types::Tag;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{TagChanges, decode_policy, iam_tags, tag_changes};
use super::contract::{Actions, Ctx, Found, On, Outputs, Replacement, Resolver, StepImpl, Undone};
use crate::aws::errors::{is_already_exists, is_delete_conflict, is_no_such_entity};
use crate::aws::{describe_error, error_code};
use crate::runbook::Runbook;

pub struct ProxyRole;

#[derive(Serialize, Deserialize)]
pub struct Inputs {
    role_name: String,
    trust_policy: Value,
    tags: BTreeMap<String, String>,
}

fn trusted_services(policy: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let statements = match &policy["Statement"] {
        Value::Array(a) => a.clone(),
        other => vec![other.clone()],
    };
    for st in statements {
        match &st["Principal"]["Service"] {
            Value::String(s) => out.push(s.clone()),
            Value::Array(a) => out.extend(a.iter().filter_map(|v| v.as_str().map(String::from))),
            _ => {}
        }
    }
    out
}

#[derive(Clone)]
struct RoleFound {
    arn: String,
    ours: bool,
    trust_policy: Option<Value>,
    tags: Vec<(String, String)>,
}

async fn find_role(cx: &Ctx<'_>, name: &str) -> Result<Option<RoleFound>> {
    let role = match cx.aws.iam.get_role().role_name(name).send().await {
        Ok(out) => out.role.context("GetRole answered without a role")?,
        Err(e) if is_no_such_entity(error_code(&e)) => return Ok(None),
        Err(e) => anyhow::bail!("cannot read IAM role {name}: {}", describe_error(&e)),
    };
    let mut tags: Vec<Tag> = role.tags().to_vec();
    if tags.is_empty() {
        // GetRole does not always carry the tags; ListRoleTags does.
        let listed = cx
            .aws
            .iam
            .list_role_tags()
            .role_name(name)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot read the tags of role {name}: {}",
                    describe_error(&e)
                )
            })?;
        tags = listed.tags().to_vec();
    }
    Ok(Some(RoleFound {
        arn: role.arn().to_string(),
        ours: cx.claims(tags.iter().map(|t| (t.key(), t.value()))),
        trust_policy: role.assume_role_policy_document().and_then(decode_policy),
        tags: tags
            .iter()
            .map(|t| (t.key().to_string(), t.value().to_string()))
            .collect(),
    }))
}

/// The role by its name, read once in this pass of the step: what the
/// check found is what apply acts on.
async fn find_once(cx: &Ctx<'_>, name: &str) -> Result<Option<RoleFound>> {
    cx.read_once(role_key(name), find_role(cx, name)).await
}

/// The role as the place's IAM listing has it (a check's: shared by a
/// fleet's runbooks); the apply reads it on its own ([`find_once`]).
async fn find_listed(cx: &Ctx<'_>, name: &str) -> Result<Option<RoleFound>> {
    let iam = crate::aws::listings::iam(cx.aws).await?;
    let Some(role) = iam.roles.get(name) else {
        return Ok(None);
    };
    let tags: Vec<(String, String)> = role
        .tags()
        .iter()
        .map(|t| (t.key().to_string(), t.value().to_string()))
        .collect();
    Ok(Some(RoleFound {
        arn: role.arn().unwrap_or_default().to_string(),
        ours: cx.claims(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        trust_policy: role.assume_role_policy_document().and_then(decode_policy),
        tags,
    }))
}

fn role_key(name: &str) -> String {
    format!("role {name}")
}

/// How the role differs from the runbook: the trust policy, and its tags.
fn differences(cx: &Ctx<'_>, i: &Inputs, role: &RoleFound) -> (Vec<String>, TagChanges) {
    let mut d = Vec::new();
    if role.trust_policy.as_ref() != Some(&i.trust_policy) {
        d.push(format!(
            "trust policy: {} -> {}",
            role.trust_policy
                .as_ref()
                .map_or("an unreadable document".into(), Value::to_string),
            i.trust_policy
        ));
    }
    let have = role.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let tags = tag_changes(cx, have, &i.tags);
    d.extend(tags.lines.iter().cloned());
    (d, tags)
}

/// Brings a role of ours to the runbook: its trust policy and tags.
async fn update(cx: &Ctx<'_>, i: &Inputs, role: &RoleFound) -> Result<()> {
    let name = &i.role_name;
    let fail = |what: &str, e: String| anyhow::anyhow!("cannot {what} of IAM role {name}: {e}");
    cx.bar.set(format!("updating IAM role {name}"));
    let (_, tags) = differences(cx, i, role);
    if role.trust_policy.as_ref() != Some(&i.trust_policy) {
        cx.bar.set(format!("updating the trust policy of {name}"));
        cx.aws
            .iam
            .update_assume_role_policy()
            .role_name(name)
            .policy_document(i.trust_policy.to_string())
            .send()
            .await
            .map_err(|e| fail("update the trust policy", describe_error(&e)))?;
    }
    if !tags.set.is_empty() {
        let set = iam_tags(tags.set.iter().map(|(k, v)| (k, v)))?;
        cx.aws
            .iam
            .tag_role()
            .role_name(name)
            .set_tags(Some(set))
            .send()
            .await
            .map_err(|e| fail("set the tags", describe_error(&e)))?;
    }
    if !tags.remove.is_empty() {
        cx.aws
            .iam
            .untag_role()
            .role_name(name)
            .set_tag_keys(Some(tags.remove))
            .send()
            .await
            .map_err(|e| fail("remove tags", describe_error(&e)))?;
    }
    Ok(())
}

/// Creates the role as the runbook says: its ARN, or None when one of that
/// name appeared meanwhile.
async fn create(cx: &Ctx<'_>, i: &Inputs) -> Result<Option<String>> {
    cx.bar.set(format!("creating IAM role {}", i.role_name));
    let created = cx
        .aws
        .iam
        .create_role()
        .role_name(&i.role_name)
        .assume_role_policy_document(i.trust_policy.to_string())
        .description("RDS Proxy role, created by rds-proxy-runbook")
        .set_tags(Some(iam_tags(&i.tags)?))
        .send()
        .await;
    match created {
        Ok(out) => {
            let arn = out
                .role
                .map(|r| r.arn)
                .context("CreateRole answered without a role")?;
            Ok(Some(arn))
        }
        Err(e) if is_already_exists(error_code(&e)) => Ok(None),
        Err(e) => anyhow::bail!(
            "cannot create IAM role {}: {}",
            i.role_name,
            describe_error(&e)
        ),
    }
}

fn outputs(name: &str, arn: &str) -> Outputs {
    Outputs::from([
        ("arn".to_string(), arn.to_string()),
        ("name".to_string(), name.to_string()),
    ])
}

#[async_trait]
impl StepImpl for ProxyRole {
    type Inputs = Inputs;
    const NAME: &'static str = "proxy-role";
    const IDENTITY: &'static [&'static str] = &["role_name"];
    const REPLACEMENT: Replacement = Replacement::WithProxy {
        why: "the proxy would switch to the new role in place, maybe before the new role may read \
         the secret (its target would fail to log in)",
        follows: &[],
    };
    const OUTPUTS: &'static [&'static str] = &["arn", "name"];
    const ACTIONS: Actions = Actions {
        check: &[
            ("iam:GetRole", On::ProxyRole),
            ("iam:ListRoleTags", On::ProxyRole),
            // Its check reads the place's listing of every role.
            ("iam:GetAccountAuthorizationDetails", On::Any),
        ],
        apply: &[
            ("iam:GetRole", On::ProxyRole),
            ("iam:ListRoleTags", On::ProxyRole),
            ("iam:CreateRole", On::ProxyRole),
            ("iam:TagRole", On::ProxyRole),
            ("iam:UntagRole", On::ProxyRole),
            ("iam:UpdateAssumeRolePolicy", On::ProxyRole),
        ],
        rollback: &[
            ("iam:GetRole", On::ProxyRole),
            ("iam:ListRoleTags", On::ProxyRole),
            // An adopted role goes with the policies it had then.
            ("iam:ListAttachedRolePolicies", On::ProxyRole),
            ("iam:ListRolePolicies", On::ProxyRole),
            ("iam:DetachRolePolicy", On::ProxyRole),
            ("iam:DeleteRolePolicy", On::ProxyRole),
            ("iam:DeleteRole", On::ProxyRole),
        ],
    };

    fn inputs(&self, rb: &Runbook, r: &mut Resolver) -> Inputs {
        Inputs {
            role_name: r.text(&rb.proxy_role.name),
            trust_policy: rb.proxy_role.trust_policy.clone(),
            tags: rb.tags.clone(),
        }
    }

    fn describe(&self, i: &Inputs) -> String {
        format!(
            "IAM role {} trusted by {}",
            i.role_name,
            trusted_services(&i.trust_policy).join(", ")
        )
    }

    async fn check(&self, cx: &Ctx, i: &Inputs) -> Result<Found> {
        let Some(role) = find_listed(cx, &i.role_name).await? else {
            return Ok(Found::Missing);
        };
        if !role.ours {
            return Ok(Found::Foreign(
                cx.not_ours(&format!("IAM role {}", i.role_name)),
            ));
        }
        let (diffs, _) = differences(cx, i, &role);
        if !diffs.is_empty() {
            return Ok(Found::Update(diffs, outputs(&i.role_name, &role.arn)));
        }
        Ok(Found::Done(outputs(&i.role_name, &role.arn)))
    }

    async fn details(&self, _: &Ctx, i: &Inputs) -> Result<Vec<String>> {
        Ok(vec![format!("trust policy: {}", i.trust_policy)])
    }

    async fn tag_owned(&self, cx: &Ctx, outputs: &Outputs) -> Result<()> {
        let Some(role) = super::common::output(outputs, "name") else {
            return Ok(());
        };
        let (k, v) = super::common::owner_tag(cx);
        let tags = iam_tags([(&k, &v)])?;
        let sent = cx
            .aws
            .iam
            .tag_role()
            .role_name(&role)
            .set_tags(Some(tags))
            .send();
        sent.await
            .map_err(|e| anyhow::anyhow!("cannot tag IAM role {role}: {}", describe_error(&e)))?;
        Ok(())
    }

    async fn apply(&self, cx: &Ctx, i: &Inputs) -> Result<Outputs> {
        // The role the check found is updated, never created again (a
        // CreateRole would need iam:CreateRole of a day-two operator, and
        // leave a failed call in CloudTrail at every tag change).
        let role = match find_once(cx, &i.role_name).await? {
            Some(role) => role,
            None => match create(cx, i).await? {
                Some(arn) => return Ok(outputs(&i.role_name, &arn)),
                // Made meanwhile (a run that died after the create): read
                // again, then brought to the runbook as any found one.
                None => {
                    cx.forget(&role_key(&i.role_name));
                    find_once(cx, &i.role_name).await?.with_context(|| {
                        format!("IAM role {} exists but cannot be read", i.role_name)
                    })?
                }
            },
        };
        if !role.ours {
            anyhow::bail!(cx.not_ours(&format!("IAM role {}", i.role_name)));
        }
        update(cx, i, &role).await?;
        cx.forget(&role_key(&i.role_name));
        Ok(outputs(&i.role_name, &role.arn))
    }

    /// The policies on the role when it is taken over: `rollback
    /// --include-adopted` removes those (and no other) before it deletes it.
    async fn adopted(&self, cx: &Ctx, i: &Inputs, _: &Outputs) -> Result<Option<Value>> {
        let (attached, inline) = policies(cx, &i.role_name).await?;
        Ok(Some(
            serde_json::json!({"attached": attached, "inline": inline}),
        ))
    }

    async fn rollback(&self, cx: &Ctx, i: &Inputs, before: Option<&Value>) -> Result<Undone> {
        let name = &i.role_name;
        let Some(role) = find_role(cx, name).await? else {
            return Ok(Undone::AlreadyGone(format!(
                "IAM role {name} is already gone"
            )));
        };
        if !role.ours {
            return Ok(Undone::LeftAlone(format!(
                "IAM role {name} lacks our tag, so it is not ours to delete"
            )));
        }
        if cx.adopted {
            // Adopted, and undone on request (`--include-adopted`): it goes
            // with what was on it when it was taken over (the book's
            // SecretsManagerReadWrite); anything added since blocks it.
            strip(cx, name, before).await?;
        }
        cx.bar.set(format!("deleting IAM role {name}"));
        match cx.aws.iam.delete_role().role_name(name).send().await {
            Ok(_) => Ok(Undone::Done(format!("deleted IAM role {name}"))),
            Err(e) if is_no_such_entity(error_code(&e)) => Ok(Undone::AlreadyGone(format!(
                "IAM role {name} is already gone"
            ))),
            Err(e) if is_delete_conflict(error_code(&e)) => anyhow::bail!(
                "IAM role {name} still has policies attached, so it cannot be deleted: \
                 roll back the steps that attached them first, or detach policies \
                 you added by hand ({})",
                describe_error(&e)
            ),
            Err(e) => anyhow::bail!("cannot delete IAM role {name}: {}", describe_error(&e)),
        }
    }
}

/// The managed policies attached to role `name` (their ARNs) and its
/// inline policies (their names).
async fn policies(cx: &Ctx<'_>, name: &str) -> Result<(Vec<String>, Vec<String>)> {
    let iam = &cx.aws.iam;
    let fail = |what: &str, e: String| anyhow::anyhow!("cannot {what} of IAM role {name}: {e}");
    let attached = iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await;
    let attached = attached.map_err(|e| fail("list the policies", describe_error(&e)))?;
    let inline = iam.list_role_policies().role_name(name).send().await;
    let inline = inline.map_err(|e| fail("list the inline policies", describe_error(&e)))?;
    Ok((
        attached
            .attached_policies()
            .iter()
            .filter_map(|p| p.policy_arn().map(String::from))
            .collect(),
        inline.policy_names().to_vec(),
    ))
}

/// Detaches from role `name` the managed policies and deletes the inline
/// ones that `before` lists (what was on it when it was adopted).
async fn strip(cx: &Ctx<'_>, name: &str, before: Option<&Value>) -> Result<()> {
    let iam = &cx.aws.iam;
    let listed = |key: &str| -> Vec<String> {
        before
            .and_then(|b| b.get(key)?.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    };
    let fail = |what: &str, e: String| anyhow::anyhow!("cannot {what} of IAM role {name}: {e}");
    for arn in listed("attached") {
        cx.bar.set(format!("detaching {arn} from IAM role {name}"));
        match iam
            .detach_role_policy()
            .role_name(name)
            .policy_arn(&arn)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if is_no_such_entity(error_code(&e)) => {}
            Err(e) => return Err(fail("detach a policy", describe_error(&e))),
        }
    }
    for policy in listed("inline") {
        match iam
            .delete_role_policy()
            .role_name(name)
            .policy_name(&policy)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if is_no_such_entity(error_code(&e)) => {}
            Err(e) => return Err(fail("delete an inline policy", describe_error(&e))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_url_encoded_and_plain_documents() {
        let plain = r#"{"Version":"2012-10-17","Statement":[]}"#;
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%5D%7D";
        assert_eq!(decode_policy(plain), decode_policy(encoded));
        assert!(decode_policy(plain).is_some());
        assert!(decode_policy("%7").is_none());
    }

    #[test]
    fn finds_trusted_services() {
        let p: Value = serde_json::from_str(include_str!(
            "../../runbooks/policies/rds-proxy-trust-policy.json"
        ))
        .unwrap();
        assert_eq!(trusted_services(&p), vec!["rds.amazonaws.com"]);
    }

    #[test]
    fn error_predicates() {
        assert!(is_no_such_entity(Some("NoSuchEntity")));
        assert!(!is_no_such_entity(Some("AccessDenied")));
        assert!(!is_no_such_entity(None));
        assert!(is_already_exists(Some("EntityAlreadyExists")));
        assert!(is_delete_conflict(Some("DeleteConflict")));
    }
}
