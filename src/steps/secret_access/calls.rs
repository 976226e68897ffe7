//! The secret-access step's reads: the document the role should hold (the
//! secrets' keys, the DB's resource id, the account), and the role's inline
//! policy of ours, each once a pass.

use anyhow::{Context, Result};
use futures_util::future::try_join_all;
use serde_json::Value;

use super::document::{
    DbConnect, INLINE_POLICY, Inputs, SecretGrant, customer_key, least_privilege,
};
use crate::aws::errors::is_no_such_entity;
use crate::aws::{describe_error, error_code};
use crate::steps::common::decode_policy;
use crate::steps::contract::Ctx;

/// The document the role should hold, worked out once in this pass of the
/// step.
pub(super) async fn wanted(cx: &Ctx<'_>, i: &Inputs) -> Result<Value> {
    cx.read_once("the wanted document".into(), wanted_now(cx, i))
        .await
}

async fn wanted_now(cx: &Ctx<'_>, i: &Inputs) -> Result<Value> {
    let secrets = i.secrets();
    // Each secret's customer-managed key, read at once.
    // Out of the place's listing of every secret; one it does not name as
    // given (a name, a partial ARN) is read on its own.
    let listed = crate::aws::listings::secrets(cx.aws).await?;
    let listed = &listed;
    let kms_keys = try_join_all(secrets.iter().map(|arn| async move {
        if let Some(key) = listed.get(*arn) {
            return anyhow::Ok(
                key.clone()
                    .filter(|k| customer_key(Some(k.as_str())).is_some()),
            );
        }
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

/// The role's inline policy of ours as the place's IAM listing has it (a
/// check's); the apply and `before` read it on their own.
pub(super) async fn listed_inline_document(cx: &Ctx<'_>, role: &str) -> Result<Option<Value>> {
    let iam = crate::aws::listings::iam(cx.aws).await?;
    Ok(iam.roles.get(role).and_then(|r| {
        r.role_policy_list()
            .iter()
            .find(|p| p.policy_name() == Some(INLINE_POLICY))
            .and_then(|p| p.policy_document())
            .and_then(decode_policy)
    }))
}

/// The role's inline policy of ours, read once in this pass of the step.
pub(super) async fn inline_document(cx: &Ctx<'_>, role: &str) -> Result<Option<Value>> {
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
