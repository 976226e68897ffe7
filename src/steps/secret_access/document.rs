//! The secret-access step's inputs and the inline policy's document,
//! worked out without a call: the secrets' read (and decrypt with a
//! customer-managed key), `rds-db:connect` with end-to-end IAM, and what a
//! run's first pass keeps of the old document while the proxy moves.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub(super) const INLINE_POLICY: &str = "rds-proxy-runbook-secret-access";

#[derive(Serialize, Deserialize)]
pub struct Inputs {
    pub(super) role_arn: String,
    /// None with end-to-end IAM and no secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) secret_arn: Option<String>,
    /// The `[[auth]]` entries' secrets, when the runbook lists them (then
    /// `secret_arn` is none); left out otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) secret_arns: Vec<String>,
    pub(super) mode: String,
    /// With end-to-end IAM: the DB the proxy connects to with IAM, and as
    /// whom (left out otherwise, so the book's inputs read as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) db_connect: Option<DbConnect>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DbConnect {
    /// `instance` or `cluster`.
    pub(super) kind: String,
    pub(super) id: String,
    /// The DB user (or `*`), the connect policy's `db_user`.
    pub(super) user: String,
    /// The users the functions name (`[[lambda]] db_user`, the connect
    /// policy's for those that name none), when any does: then these, not
    /// `user`, are whom the proxy connects as.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) users: Vec<String>,
}

impl DbConnect {
    pub(super) fn users(&self) -> Vec<&str> {
        if self.users.is_empty() {
            vec![self.user.as_str()]
        } else {
            self.users.iter().map(String::as_str).collect()
        }
    }
}

impl Inputs {
    /// The secrets the role reads: the `[[auth]]` ones, else the one.
    pub(super) fn secrets(&self) -> Vec<&str> {
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
pub(super) fn customer_key(kms_key_id: Option<&str>) -> Option<&str> {
    kms_key_id.filter(|k| !k.is_empty() && !k.ends_with("alias/aws/secretsmanager"))
}

pub(super) fn role_name(i: &Inputs) -> Result<&str> {
    crate::arn::role_name(&i.role_arn)
        .with_context(|| format!("`{}` is not an IAM role ARN", i.role_arn))
}
