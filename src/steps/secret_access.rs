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

use anyhow::{Context, Result};
use async_trait::async_trait;
use futures_util::future::try_join_all;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::common::decode_policy;
use super::common::policy_attached;
use super::contract::{Actions, Ctx, Found, On, Outputs, Replacement, Resolver, StepImpl, Undone};
use crate::aws::errors::is_no_such_entity;
use crate::aws::{describe_error, error_code};
use crate::runbook::{AuthScheme, Runbook};

pub struct SecretAccess;

pub const MANAGED_POLICY: &str = "arn:aws:iam::aws:policy/SecretsManagerReadWrite";
const INLINE_POLICY: &str = "rds-proxy-runbook-secret-access";

#[derive(Serialize, Deserialize)]
pub struct Inputs {
    role_arn: String,
    /// None with end-to-end IAM and no secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_arn: Option<String>,
    /// The `[[auth]]` entries' secrets, when the runbook lists them (then
    /// `secret_arn` is none); left out otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    secret_arns: Vec<String>,
    mode: String,
    /// With end-to-end IAM: the DB the proxy connects to with IAM, and as
    /// whom (left out otherwise, so the book's inputs read as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    db_connect: Option<DbConnect>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DbConnect {
    /// `instance` or `cluster`.
    kind: String,
    id: String,
    /// The DB user (or `*`), the connect policy's `db_user`.
    user: String,
    /// The users the functions name (`[[lambda]] db_user`, the connect
    /// policy's for those that name none), when any does: then these, not
    /// `user`, are whom the proxy connects as.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    users: Vec<String>,
}

impl DbConnect {
    fn users(&self) -> Vec<&str> {
        if self.users.is_empty() {
            vec![self.user.as_str()]
        } else {
            self.users.iter().map(String::as_str).collect()
        }
    }
}

impl Inputs {
    /// The secrets the role reads: the `[[auth]]` ones, else the one.
    fn secrets(&self) -> Vec<&str> {
        self.secret_arn
            .iter()
            .chain(&self.secret_arns)
            .map(String::as_str)
            .collect()
    }
}

/// One resource, or a list of them (the book's one secret keeps the
/// document it always had).
fn one_or_list(mut items: Vec<String>) -> Value {
    if items.len() == 1 {
        Value::String(items.remove(0))
    } else {
        json!(items)
    }
}

/// The secret the role reads: its ARN, and its KmsKeyId when that is a
/// customer-managed key (None for the AWS-managed default).
#[derive(Clone)]
pub struct SecretGrant<'a> {
    pub arn: &'a str,
    pub kms_key: Option<&'a str>,
}

/// The least-privilege document: the secrets' read (and decrypt), and with
/// end-to-end IAM `rds-db:connect` on `dbuser:RESOURCE_ID/USER` for each
/// user (the DB's `db-`/`cluster-` id: the proxy connects to the DB, not to
/// itself).
pub fn least_privilege(
    secrets: &[SecretGrant],
    connect: Option<(&str, &[&str])>,
    region: &str,
    account: &str,
) -> Value {
    let mut statements = secret_statements(secrets, region, account);
    if let Some((resource_id, users)) = connect {
        let resources = users
            .iter()
            .map(|user| format!("arn:aws:rds-db:{region}:{account}:dbuser:{resource_id}/{user}"))
            .collect();
        statements.push(json!({
            "Sid": "ConnectToDbWithIam",
            "Effect": "Allow",
            "Action": "rds-db:connect",
            "Resource": one_or_list(resources),
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

fn secret_statements(secrets: &[SecretGrant], region: &str, account: &str) -> Vec<Value> {
    if secrets.is_empty() {
        return Vec::new();
    }
    // Sorted: the order of the [[auth]] tables is no difference.
    let mut arns: Vec<String> = secrets.iter().map(|s| s.arn.to_string()).collect();
    arns.sort();
    arns.dedup();
    let mut statements = vec![json!({
        "Sid": "ReadProxySecret",
        "Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": one_or_list(arns),
    })];
    // An alias cannot be a policy resource; a key id becomes its ARN.
    let mut keys: Vec<String> = secrets
        .iter()
        .filter_map(|s| s.kms_key)
        .map(|key| {
            if key.starts_with("arn:") && !key.contains(":alias/") {
                key.to_string()
            } else if key.starts_with("alias/") || key.contains(":alias/") {
                "*".to_string()
            } else {
                format!("arn:aws:kms:{region}:{account}:key/{key}")
            }
        })
        .collect();
    keys.sort();
    keys.dedup();
    if keys.iter().any(|k| k == "*") {
        keys = vec!["*".to_string()];
    }
    if !keys.is_empty() {
        statements.push(json!({
            "Sid": "DecryptProxySecret",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": one_or_list(keys),
            "Condition": {"StringEquals": {"kms:ViaService": format!("secretsmanager.{region}.amazonaws.com")}},
        }));
    }
    statements
}

/// What to write while the runbook's removals wait for the second pass:
/// `want`, plus the statements of `have` it drops (a grant the proxy may
/// still log in with until the proxy step has moved it).
/// A kept statement loses its `Sid`: IAM refuses two statements with one
/// Sid, which an old and a new secret's reads would have.
pub fn keeping(want: &Value, have: &Value) -> Value {
    let wanted = want["Statement"].as_array().cloned().unwrap_or_default();
    let mut all = wanted.clone();
    for s in have["Statement"].as_array().into_iter().flatten() {
        if wanted.contains(s) {
            continue;
        }
        let mut kept = s.clone();
        if let Some(st) = kept.as_object_mut() {
            st.remove("Sid");
        }
        if !all.contains(&kept) {
            all.push(kept);
        }
    }
    json!({"Version": "2012-10-17", "Statement": all})
}

/// A customer-managed key, or None when the secret uses the AWS-managed one.
fn customer_key(kms_key_id: Option<&str>) -> Option<&str> {
    kms_key_id.filter(|k| !k.is_empty() && !k.ends_with("alias/aws/secretsmanager"))
}

fn role_name(i: &Inputs) -> Result<&str> {
    crate::arn::role_name(&i.role_arn)
        .with_context(|| format!("`{}` is not an IAM role ARN", i.role_arn))
}

/// The document the role should hold, worked out once in this pass of the
/// step.
async fn wanted(cx: &Ctx<'_>, i: &Inputs) -> Result<Value> {
    cx.read_once("the wanted document".into(), wanted_now(cx, i))
        .await
}

async fn wanted_now(cx: &Ctx<'_>, i: &Inputs) -> Result<Value> {
    let secrets = i.secrets();
    // Each secret's customer-managed key, read at once.
    let kms_keys = try_join_all(secrets.iter().map(|arn| async move {
        let out = cx
            .aws
            .secrets
            .describe_secret()
            .secret_id(*arn)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot read the secret {arn}: {}", describe_error(&e)))?;
        anyhow::Ok(
            out.kms_key_id
                .filter(|k| customer_key(Some(k.as_str())).is_some()),
        )
    }))
    .await?;
    let resource_id = match &i.db_connect {
        Some(c) => Some(resource_id(cx, c).await?),
        None => None,
    };
    let account = cx.aws.account_id().await?;
    let grants: Vec<SecretGrant> = secrets
        .iter()
        .zip(&kms_keys)
        .map(|(arn, key)| SecretGrant {
            arn,
            kms_key: key.as_deref(),
        })
        .collect();
    let users = i.db_connect.as_ref().map(DbConnect::users);
    Ok(least_privilege(
        &grants,
        resource_id.as_deref().zip(users.as_deref()),
        &cx.aws.region,
        account,
    ))
}

/// The DB's resource id (`db-...`, `cluster-...`), which IAM policies name.
async fn resource_id(cx: &Ctx<'_>, c: &DbConnect) -> Result<String> {
    use crate::db::Kind;
    let kind = if c.kind == "cluster" {
        Kind::Cluster
    } else {
        Kind::Instance
    };
    let db = crate::db::read(cx.aws, kind, &c.id)
        .await?
        .with_context(|| {
            format!(
                "{} {} does not exist: end-to-end IAM grants the proxy's role rds-db:connect on it",
                kind.label(),
                c.id
            )
        })?;
    let what = db.what();
    db.resource_id
        .with_context(|| format!("{what} has no resource id to grant rds-db:connect on"))
}

/// The role's inline policy of ours, read once in this pass of the step.
async fn inline_document(cx: &Ctx<'_>, role: &str) -> Result<Option<Value>> {
    cx.read_once(
        format!("inline policy of {role}"),
        inline_document_now(cx, role),
    )
    .await
}

async fn inline_document_now(cx: &Ctx<'_>, role: &str) -> Result<Option<Value>> {
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
    const ACTIONS: Actions = Actions {
        check: &[
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
            return Ok(if policy_attached(cx, role, MANAGED_POLICY).await? {
                Found::Done(Outputs::from([("policy".into(), MANAGED_POLICY.into())]))
            } else {
                Found::Missing
            });
        }
        let (want, doc) = tokio::try_join!(wanted(cx, i), inline_document(cx, role))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn secret<'a>(arn: &'a str, kms_key: Option<&'static str>) -> Vec<SecretGrant<'a>> {
        vec![SecretGrant { arn, kms_key }]
    }

    #[test]
    fn least_privilege_reads_only_this_secret() {
        let doc = least_privilege(
            &secret("arn:aws:secretsmanager:us-east-1:1:secret:s", None),
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
        let doc = least_privilege(
            &secret("arn:s", Some("1234-abcd")),
            None,
            "eu-west-1",
            "111",
        );
        let st = &doc["Statement"][1];
        assert_eq!(st["Action"], "kms:Decrypt");
        assert_eq!(st["Resource"], "arn:aws:kms:eu-west-1:111:key/1234-abcd");
        assert_eq!(
            st["Condition"]["StringEquals"]["kms:ViaService"],
            "secretsmanager.eu-west-1.amazonaws.com"
        );
        let arn = "arn:aws:kms:eu-west-1:111:key/k";
        assert_eq!(
            least_privilege(&secret("arn:s", Some(arn)), None, "eu-west-1", "111")["Statement"][1]
                ["Resource"],
            arn
        );
        assert_eq!(
            least_privilege(&secret("arn:s", Some("alias/mine")), None, "r", "1")["Statement"][1]["Resource"],
            "*"
        );
    }

    #[test]
    fn end_to_end_iam_connects_to_the_dbs_resource_id_as_the_user() {
        let doc = least_privilege(&[], Some(("db-ABC", &["app"][..])), "eu-west-1", "111");
        let st = doc["Statement"].as_array().unwrap();
        assert_eq!(st.len(), 1, "no secret: no read of one");
        assert_eq!(st[0]["Action"], "rds-db:connect");
        assert_eq!(
            st[0]["Resource"],
            "arn:aws:rds-db:eu-west-1:111:dbuser:db-ABC/app"
        );
        // Moving a proxy to end-to-end IAM: both, as AWS's migration guide.
        let both = least_privilege(
            &secret("arn:s", None),
            Some(("cluster-XYZ", &["*"][..])),
            "r",
            "1",
        );
        assert_eq!(both["Statement"].as_array().unwrap().len(), 2);
        assert_eq!(
            both["Statement"][1]["Resource"],
            "arn:aws:rds-db:r:1:dbuser:cluster-XYZ/*"
        );
    }

    #[test]
    fn a_dropped_grant_is_kept_until_the_removals() {
        let old = least_privilege(&secret("arn:old", None), None, "r", "1");
        let new = least_privilege(&secret("arn:new", None), None, "r", "1");
        let kept = keeping(&new, &old);
        let resources: Vec<&Value> = kept["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| &s["Resource"])
            .collect();
        assert_eq!(resources, [&json!("arn:new"), &json!("arn:old")]);
        // One Sid once: the kept statement has none.
        assert!(kept["Statement"][1].get("Sid").is_none(), "{kept}");
        assert_eq!(keeping(&new, &kept), kept, "written twice, the same");
        // Nothing dropped: the document itself.
        assert_eq!(keeping(&new, &new), new);
        let grown = least_privilege(
            &secret("arn:new", None),
            Some(("db-1", &["u"][..])),
            "r",
            "1",
        );
        assert_eq!(keeping(&grown, &new), grown);
    }

    #[test]
    fn inputs_recorded_before_end_to_end_iam_read_the_same() {
        let old = json!({"role_arn": "arn:r", "secret_arn": "arn:s", "mode": "least-privilege"});
        let i: Inputs = serde_json::from_value(old.clone()).unwrap();
        assert_eq!(i.secret_arn.as_deref(), Some("arn:s"));
        assert!(i.db_connect.is_none());
        assert_eq!(serde_json::to_value(&i).unwrap(), old);
    }

    #[test]
    fn several_secrets_and_users_are_granted_exactly() {
        let grants = [
            SecretGrant {
                arn: "arn:a",
                kms_key: Some("k1"),
            },
            SecretGrant {
                arn: "arn:b",
                kms_key: None,
            },
            SecretGrant {
                arn: "arn:c",
                kms_key: Some("k1"),
            },
        ];
        let doc = least_privilege(&grants, Some(("db-1", &["app", "report"][..])), "r", "1");
        // The order of the [[auth]] tables is no difference.
        let reordered = [grants[2].clone(), grants[0].clone(), grants[1].clone()];
        assert_eq!(
            least_privilege(&reordered, Some(("db-1", &["app", "report"][..])), "r", "1"),
            doc
        );
        let st = doc["Statement"].as_array().unwrap();
        assert_eq!(st[0]["Resource"], json!(["arn:a", "arn:b", "arn:c"]));
        // One key for two secrets: granted once, and only it.
        assert_eq!(st[1]["Resource"], "arn:aws:kms:r:1:key/k1");
        assert_eq!(
            st[2]["Resource"],
            json!([
                "arn:aws:rds-db:r:1:dbuser:db-1/app",
                "arn:aws:rds-db:r:1:dbuser:db-1/report"
            ])
        );
        assert_eq!(least_privilege(&[], None, "r", "1")["Statement"], json!([]));
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
