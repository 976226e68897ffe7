//! Recipe step 5: let the proxy's role read the DB secret. Least privilege
//! by default: an inline policy allowing secretsmanager:GetSecretValue on
//! this secret, plus kms:Decrypt through Secrets Manager when the secret
//! uses a customer-managed key. `mode = "managed"` mirrors the book
//! (SecretsManagerReadWrite).

use anyhow::{Context, Result};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::common::decode_policy;
use super::common::policy_attached;
use super::contract::{Ctx, Found, Outputs, Replacement, Resolver, StepImpl, Undone};
use crate::aws::errors::is_no_such_entity;
use crate::aws::{describe_error, error_code};
use crate::runbook::Runbook;

pub struct SecretAccess;

pub const MANAGED_POLICY: &str = "arn:aws:iam::aws:policy/SecretsManagerReadWrite";
const INLINE_POLICY: &str = "rds-proxy-runbook-secret-access";

#[derive(Serialize, Deserialize)]
pub struct Inputs {
    role_arn: String,
    secret_arn: String,
    mode: String,
}

/// The least-privilege document. `kms_key` is the secret's KmsKeyId when it
/// is a customer-managed key (None for the AWS-managed default).
pub fn least_privilege(
    secret_arn: &str,
    kms_key: Option<&str>,
    region: &str,
    account: &str,
) -> Value {
    let mut statements = vec![json!({
        "Sid": "ReadProxySecret",
        "Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": secret_arn,
    })];
    if let Some(key) = kms_key {
        // An alias cannot be a policy resource; a key id becomes its ARN.
        let resource = if key.starts_with("arn:") && !key.contains(":alias/") {
            key.to_string()
        } else if key.starts_with("alias/") || key.contains(":alias/") {
            "*".to_string()
        } else {
            format!("arn:aws:kms:{region}:{account}:key/{key}")
        };
        statements.push(json!({
            "Sid": "DecryptProxySecret",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": resource,
            "Condition": {"StringEquals": {"kms:ViaService": format!("secretsmanager.{region}.amazonaws.com")}},
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// A customer-managed key, or None when the secret uses the AWS-managed one.
fn customer_key(kms_key_id: Option<&str>) -> Option<&str> {
    kms_key_id.filter(|k| !k.is_empty() && !k.ends_with("alias/aws/secretsmanager"))
}

fn role_name(i: &Inputs) -> Result<&str> {
    crate::arn::role_name(&i.role_arn)
        .with_context(|| format!("`{}` is not an IAM role ARN", i.role_arn))
}

async fn wanted(cx: &Ctx<'_>, i: &Inputs) -> Result<Value> {
    let secret = cx
        .aws
        .secrets
        .describe_secret()
        .secret_id(&i.secret_arn)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot read the secret {}: {}",
                i.secret_arn,
                describe_error(&e)
            )
        })?;
    let account = cx.aws.account_id().await?;
    Ok(least_privilege(
        &i.secret_arn,
        customer_key(secret.kms_key_id()),
        &cx.aws.region,
        account,
    ))
}

async fn inline_document(cx: &Ctx<'_>, role: &str) -> Result<Option<Value>> {
    match cx
        .aws
        .iam
        .get_role_policy()
        .role_name(role)
        .policy_name(INLINE_POLICY)
        .send()
        .await
    {
        Ok(o) => Ok(decode_policy(o.policy_document())),
        Err(e) if is_no_such_entity(error_code(&e)) => Ok(None),
        Err(e) => anyhow::bail!(
            "cannot read the policies of role {role}: {}",
            describe_error(&e)
        ),
    }
}

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

    fn inputs(&self, rb: &Runbook, r: &mut Resolver) -> Inputs {
        Inputs {
            role_arn: r.text(&rb.proxy.role_arn),
            secret_arn: r.text(&rb.database.secret_arn),
            mode: rb.secret_access.as_str().to_string(),
        }
    }

    fn describe(&self, i: &Inputs) -> String {
        let role = crate::arn::role_name(&i.role_arn).unwrap_or(&i.role_arn);
        if i.mode == "managed" {
            format!("role {role} gets the managed SecretsManagerReadWrite (as the book)")
        } else {
            format!(
                "role {role} may read secret {} (inline policy {INLINE_POLICY})",
                i.secret_arn
            )
        }
    }

    async fn check(&self, cx: &Ctx, i: &Inputs) -> Result<Found> {
        let role = role_name(i)?;
        if i.mode == "managed" {
            return Ok(if policy_attached(cx, role, MANAGED_POLICY).await? {
                Found::Done(Outputs::from([("policy".into(), MANAGED_POLICY.into())]))
            } else {
                Found::Missing
            });
        }
        let want = wanted(cx, i).await?;
        Ok(match inline_document(cx, role).await? {
            None => Found::Missing,
            Some(doc) if doc == want => Found::Done(Outputs::from([(
                "policy".into(),
                format!("inline:{INLINE_POLICY}"),
            )])),
            Some(doc) => Found::Update(
                vec![format!("inline policy {INLINE_POLICY}: {doc} -> {want}")],
                Outputs::from([("policy".into(), format!("inline:{INLINE_POLICY}"))]),
            ),
        })
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
        let want = wanted(cx, i).await?;
        cx.bar
            .set(format!("putting inline policy {INLINE_POLICY} on {role}"));
        cx.aws
            .iam
            .put_role_policy()
            .role_name(role)
            .policy_name(INLINE_POLICY)
            .policy_document(want.to_string())
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("cannot put a policy on role {role}: {}", describe_error(&e))
            })?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_privilege_reads_only_this_secret() {
        let doc = least_privilege(
            "arn:aws:secretsmanager:us-east-1:1:secret:s",
            None,
            "us-east-1",
            "1",
        );
        let st = doc["Statement"].as_array().unwrap();
        assert_eq!(st.len(), 1);
        assert_eq!(st[0]["Action"], "secretsmanager:GetSecretValue");
        assert_eq!(
            st[0]["Resource"],
            "arn:aws:secretsmanager:us-east-1:1:secret:s"
        );
    }

    #[test]
    fn customer_keys_add_decrypt_through_secrets_manager() {
        let doc = least_privilege("arn:s", Some("1234-abcd"), "eu-west-1", "111");
        let st = &doc["Statement"][1];
        assert_eq!(st["Action"], "kms:Decrypt");
        assert_eq!(st["Resource"], "arn:aws:kms:eu-west-1:111:key/1234-abcd");
        assert_eq!(
            st["Condition"]["StringEquals"]["kms:ViaService"],
            "secretsmanager.eu-west-1.amazonaws.com"
        );
        let arn = "arn:aws:kms:eu-west-1:111:key/k";
        assert_eq!(
            least_privilege("arn:s", Some(arn), "eu-west-1", "111")["Statement"][1]["Resource"],
            arn
        );
        assert_eq!(
            least_privilege("arn:s", Some("alias/mine"), "r", "1")["Statement"][1]["Resource"],
            "*"
        );
    }

    #[test]
    fn the_aws_managed_key_needs_no_decrypt_grant() {
        assert_eq!(customer_key(None), None);
        assert_eq!(customer_key(Some("alias/aws/secretsmanager")), None);
        assert_eq!(
            customer_key(Some("arn:aws:kms:r:1:alias/aws/secretsmanager")),
            None
        );
        assert_eq!(customer_key(Some("k1")), Some("k1"));
    }
}
