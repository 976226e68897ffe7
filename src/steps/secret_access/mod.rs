//! Recipe step 5: let the proxy's role read the DB secret. Least privilege
//! by default: an inline policy allowing secretsmanager:GetSecretValue on
//! this secret, plus kms:Decrypt through Secrets Manager when the secret
//! uses a customer-managed key. `mode = "managed"` mirrors the book
//! (SecretsManagerReadWrite). With end-to-end IAM, the same inline policy
//! lets the role connect to the DB (`rds-db:connect` on the DB's resource
//! id and user), beside or instead of the secret.
//!
//! A grant the runbook drops (a secret replaced, the secret left once the
//! proxy logs in with IAM) stays until the run's second pass, after the
//! proxy has moved off it: the proxy never loses what it still logs in with.
//!
//! The step (this file) stands on: `document.rs` (its inputs and the
//! policy's document, worked out without a call) and `calls.rs` (its
//! reads); tests in `tests.rs`.

mod calls;
mod document;
#[cfg(test)]
mod tests;

use anyhow::Result;
use async_trait::async_trait;
use serde_json::{Value, json};

use super::common::policy_attached;
use super::contract::{Actions, Ctx, Found, On, Outputs, Replacement, Resolver, StepImpl, Undone};
use crate::aws::errors::is_no_such_entity;
use crate::aws::{describe_error, error_code};
use crate::runbook::{AuthScheme, Runbook};
use calls::{inline_document, listed_inline_document, wanted};
pub use document::{DbConnect, Inputs, keeping};
use document::{INLINE_POLICY, role_name};

pub struct SecretAccess;

pub const MANAGED_POLICY: &str = "arn:aws:iam::aws:policy/SecretsManagerReadWrite";

#[async_trait]
impl StepImpl for SecretAccess {
    type Inputs = Inputs;
    const NAME: &'static str = "secret-access";
    const IDENTITY: &'static [&'static str] = &["role_arn", "mode"];
    const REPLACEMENT: Replacement = Replacement::WithProxy {
        why: "the proxy's role would lose its old grant while the proxy may still log in with it",
        follows: &[],
    };
    const OUTPUTS: &'static [&'static str] = &["policy"];
    const ACTIONS: Actions = Actions {
        check: &[
            // Its check reads the place's listings of every role and secret.
            ("iam:GetAccountAuthorizationDetails", On::Any),
            ("secretsmanager:ListSecrets", On::Any),
            ("iam:GetRolePolicy", On::ProxyRole),
            ("iam:ListAttachedRolePolicies", On::ProxyRole),
            ("secretsmanager:DescribeSecret", On::Secrets),
            // End-to-end IAM: the DB's resource id.
            ("rds:DescribeDBInstances", On::Any),
            ("rds:DescribeDBClusters", On::Any),
            ("rds:DescribeDBSubnetGroups", On::Any),
            ("sts:GetCallerIdentity", On::Any),
        ],
        apply: &[
            ("iam:GetRolePolicy", On::ProxyRole),
            ("iam:ListAttachedRolePolicies", On::ProxyRole),
            ("iam:PutRolePolicy", On::ProxyRole),
            ("iam:AttachRolePolicy", On::ProxyRoleManagedPolicy),
            ("secretsmanager:DescribeSecret", On::Secrets),
            ("rds:DescribeDBInstances", On::Any),
            ("rds:DescribeDBClusters", On::Any),
            ("rds:DescribeDBSubnetGroups", On::Any),
            ("sts:GetCallerIdentity", On::Any),
        ],
        rollback: &[
            ("iam:PutRolePolicy", On::ProxyRole),
            ("iam:DeleteRolePolicy", On::ProxyRole),
            ("iam:DetachRolePolicy", On::ProxyRole),
        ],
    };

    fn inputs(&self, rb: &Runbook, r: &mut Resolver) -> Inputs {
        let db = &rb.database;
        let db_connect = (rb.proxy.default_auth_scheme == AuthScheme::IamAuth).then(|| {
            let (kind, id) = match (&db.instance_id, &db.cluster_id) {
                (Some(id), _) => ("instance", id),
                (None, Some(id)) => ("cluster", id),
                (None, None) => ("instance", &rb.proxy.name),
            };
            let user = r.text(&rb.connect_policy.db_user);
            DbConnect {
                kind: kind.into(),
                id: r.text(id),
                users: rb.function_users(&user),
                user,
            }
        });
        Inputs {
            role_arn: r.text(&rb.proxy.role_arn),
            secret_arn: db.secret_arn.as_ref().map(|s| r.text(s)),
            secret_arns: rb.auth.iter().map(|a| r.text(&a.secret_arn)).collect(),
            mode: rb.secret_access.as_str().to_string(),
            db_connect,
        }
    }

    fn describe(&self, i: &Inputs) -> String {
        let role = crate::arn::role_name(&i.role_arn).unwrap_or(&i.role_arn);
        if i.mode == "managed" {
            return format!("role {role} gets the managed SecretsManagerReadWrite (as the book)");
        }
        let mut may = Vec::new();
        match i.secrets().as_slice() {
            [] => {}
            [arn] => may.push(format!("read secret {arn}")),
            arns => may.push(format!("read secrets {}", arns.join(", "))),
        }
        if let Some(c) = &i.db_connect {
            may.push(format!(
                "connect to {} {} as {} with IAM (end-to-end IAM)",
                c.kind,
                c.id,
                c.users().join(", ")
            ));
        }
        format!(
            "role {role} may {} (inline policy {INLINE_POLICY})",
            may.join(" and ")
        )
    }

    async fn check(&self, cx: &Ctx, i: &Inputs) -> Result<Found> {
        let role = role_name(i)?;
        if i.mode == "managed" {
            let iam = crate::aws::listings::iam(cx.aws).await?;
            return Ok(if iam.attached(role, MANAGED_POLICY) {
                Found::Done(Outputs::from([("policy".into(), MANAGED_POLICY.into())]))
            } else {
                Found::Missing
            });
        }
        let (want, doc) = tokio::try_join!(wanted(cx, i), listed_inline_document(cx, role))?;
        let outputs = Outputs::from([("policy".into(), format!("inline:{INLINE_POLICY}"))]);
        let Some(doc) = doc else {
            return Ok(Found::Missing);
        };
        if doc == want {
            return Ok(Found::Done(outputs));
        }
        // What the runbook drops stays until the removals' pass (a run's
        // first pass writes `now`, its last `want`).
        let now = keeping(&want, &doc);
        let mut lines = Vec::new();
        if now != doc {
            lines.push(format!("inline policy {INLINE_POLICY}: {doc} -> {now}"));
        }
        if now != want {
            lines.push(format!(
                "inline policy {INLINE_POLICY}: then, once the proxy has moved, -> {want}"
            ));
        }
        Ok(Found::Update(lines, outputs))
    }

    async fn details(&self, cx: &Ctx, i: &Inputs) -> Result<Vec<String>> {
        let role = crate::arn::role_name(&i.role_arn).unwrap_or(&i.role_arn);
        Ok(vec![if i.mode == "managed" {
            format!("attach {MANAGED_POLICY} to {role}")
        } else {
            format!(
                "inline policy {INLINE_POLICY} on {role}: {}",
                wanted(cx, i).await?
            )
        }])
    }

    /// Records what the role had before the first run, so rollback removes
    /// only our part.
    async fn before(&self, cx: &Ctx, i: &Inputs, recorded: Option<Value>) -> Result<Option<Value>> {
        if recorded.is_some() {
            return Ok(recorded);
        }
        let role = role_name(i)?;
        Ok(Some(if i.mode == "managed" {
            json!({"managed_attached": policy_attached(cx, role, MANAGED_POLICY).await?})
        } else {
            json!({"inline": inline_document(cx, role).await?})
        }))
    }

    async fn apply(&self, cx: &Ctx, i: &Inputs) -> Result<Outputs> {
        let role = role_name(i)?;
        if i.mode == "managed" {
            cx.bar
                .set(format!("attaching SecretsManagerReadWrite to {role}"));
            cx.aws
                .iam
                .attach_role_policy()
                .role_name(role)
                .policy_arn(MANAGED_POLICY)
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot attach {MANAGED_POLICY} to {role}: {}",
                        describe_error(&e)
                    )
                })?;
            return Ok(Outputs::from([("policy".into(), MANAGED_POLICY.into())]));
        }
        let (want, have) = tokio::try_join!(wanted(cx, i), inline_document(cx, role))?;
        let write = match &have {
            Some(have) if keeping(&want, have) != want && !cx.may_remove(Self::NAME) => {
                keeping(&want, have)
            }
            _ => want,
        };
        if have.as_ref() != Some(&write) {
            cx.bar
                .set(format!("putting inline policy {INLINE_POLICY} on {role}"));
            cx.aws
                .iam
                .put_role_policy()
                .role_name(role)
                .policy_name(INLINE_POLICY)
                .policy_document(write.to_string())
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!("cannot put a policy on role {role}: {}", describe_error(&e))
                })?;
        }
        Ok(Outputs::from([(
            "policy".into(),
            format!("inline:{INLINE_POLICY}"),
        )]))
    }

    async fn rollback(&self, cx: &Ctx, i: &Inputs, before: Option<&Value>) -> Result<Undone> {
        let role = role_name(i)?;
        let before = before.cloned().unwrap_or(Value::Null);
        if i.mode == "managed" {
            if before["managed_attached"] == json!(true) {
                return Ok(Undone::LeftAlone(format!(
                    "{MANAGED_POLICY} was attached to {role} before the run"
                )));
            }
            return match cx
                .aws
                .iam
                .detach_role_policy()
                .role_name(role)
                .policy_arn(MANAGED_POLICY)
                .send()
                .await
            {
                Ok(_) => Ok(Undone::Done(format!(
                    "detached SecretsManagerReadWrite from {role}"
                ))),
                Err(e) if is_no_such_entity(error_code(&e)) => Ok(Undone::AlreadyGone(format!(
                    "SecretsManagerReadWrite is not attached to {role}"
                ))),
                Err(e) => anyhow::bail!(
                    "cannot detach {MANAGED_POLICY} from {role}: {}",
                    describe_error(&e)
                ),
            };
        }
        if let Some(previous) = before.get("inline").filter(|v| !v.is_null()) {
            cx.aws
                .iam
                .put_role_policy()
                .role_name(role)
                .policy_name(INLINE_POLICY)
                .policy_document(previous.to_string())
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot restore the policy on {role}: {}",
                        describe_error(&e)
                    )
                })?;
            return Ok(Undone::Done(format!(
                "restored the earlier {INLINE_POLICY} on {role}"
            )));
        }
        match cx
            .aws
            .iam
            .delete_role_policy()
            .role_name(role)
            .policy_name(INLINE_POLICY)
            .send()
            .await
        {
            Ok(_) => Ok(Undone::Done(format!(
                "deleted inline policy {INLINE_POLICY} of {role}"
            ))),
            Err(e) if is_no_such_entity(error_code(&e)) => Ok(Undone::AlreadyGone(format!(
                "{role} has no {INLINE_POLICY}"
            ))),
            Err(e) => anyhow::bail!(
                "cannot delete {INLINE_POLICY} of {role}: {}",
                describe_error(&e)
            ),
        }
    }
}
