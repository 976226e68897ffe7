//! RDS reads that the steps, `doctor` and `rollback` share: the proxy by
//! name, its default target group's pool, and a target's health in words.

use anyhow::Result;
use aws_sdk_rds::types::{ConnectionPoolConfigurationInfo, DbProxy, TargetHealth};

use super::errors::{is_proxy_not_found, is_proxy_part_gone};
use super::{Aws, describe_error, error_code};

/// The target group RDS makes with every proxy (the only one).
pub const DEFAULT_TARGET_GROUP: &str = "default";

/// The proxy; None when there is none of that name.
pub async fn find(aws: &Aws, name: &str) -> Result<Option<DbProxy>> {
    match aws
        .rds
        .describe_db_proxies()
        .db_proxy_name(name)
        .send()
        .await
    {
        Ok(out) => Ok(out.db_proxies.unwrap_or_default().into_iter().next()),
        Err(e) if is_proxy_not_found(error_code(&e)) => Ok(None),
        Err(e) => anyhow::bail!("cannot read DB proxy {name}: {}", describe_error(&e)),
    }
}

/// An RDS resource's tags (a proxy's, an endpoint's), as (key, value).
pub async fn tags(aws: &Aws, arn: &str) -> Result<Vec<(String, String)>> {
    let out = aws
        .rds
        .list_tags_for_resource()
        .resource_name(arn)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the tags of {arn}: {}", describe_error(&e)))?;
    Ok(out
        .tag_list()
        .iter()
        .map(|t| {
            let k = t.key().unwrap_or("").to_string();
            (k, t.value().unwrap_or("").to_string())
        })
        .collect())
}

/// The pool settings; None when the proxy or its group is not there.
pub async fn pool_now(
    aws: &Aws,
    proxy_name: &str,
) -> Result<Option<ConnectionPoolConfigurationInfo>> {
    let out = match aws
        .rds
        .describe_db_proxy_target_groups()
        .db_proxy_name(proxy_name)
        .target_group_name(DEFAULT_TARGET_GROUP)
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) if is_proxy_part_gone(error_code(&e)) => return Ok(None),
        Err(e) => anyhow::bail!(
            "cannot read the target group of {proxy_name}: {}",
            describe_error(&e)
        ),
    };
    Ok(out
        .target_groups()
        .first()
        .and_then(|g| g.connection_pool_config())
        .cloned())
}

/// The likely fix for an UNAVAILABLE target, from the reference's list.
pub fn likely_fix(reason: &str) -> &'static str {
    match reason {
        "CONNECTION_FAILED" | "UNREACHABLE" => {
            "the DB's security group must admit the proxy's security group on the DB port \
             (the db-ingress step), and the DB must be reachable from the proxy's subnets"
        }
        "AUTH_FAILURE" => {
            "the proxy cannot log in: its role must be trusted by rds.amazonaws.com and may read \
             the secret (the secret-access step; kms:Decrypt for a customer-managed key), and the \
             secret must be JSON with the DB's username and password; with end-to-end IAM \
             (default_auth_scheme IAM_AUTH), the DB needs IAM database authentication on, an \
             IAM DB user, and the role rds-db:connect on the DB's resource id (db-/cluster-, not \
             the proxy's prx-) as that user (the secret-access step)"
        }
        "PENDING_PROXY_CAPACITY" => "the proxy is still scaling up: wait and run `resume`",
        "INVALID_REPLICATION_STATE" | "PROMOTED" => {
            "the target is a replica or was promoted: register the primary instance or the cluster"
        }
        _ => "see the target's description and the proxy's events in the RDS console",
    }
}

pub fn health_text(h: Option<&TargetHealth>) -> String {
    let Some(h) = h else {
        return "no health reported".into();
    };
    let state = h.state().map_or("unknown", |s| s.as_str());
    match h.reason() {
        Some(reason) => format!(
            "{state} ({}: {}); likely fix: {}",
            reason.as_str(),
            h.description().unwrap_or("no description"),
            likely_fix(reason.as_str())
        ),
        None => state.to_string(),
    }
}

/// Adds `PARAM=` to a Query request's form body: how the AWS CLI (botocore)
/// sends an empty list, which the Rust SDK leaves out altogether. Needed
/// where an empty list means something: ModifyDBProxy's `Auth=` removes
/// every secret (a proxy moved to end-to-end IAM), where no `Auth` keeps
/// them.
pub fn empty_list(
    param: &'static str,
) -> impl Fn(&mut aws_sdk_rds::config::http::HttpRequest) + Send + Sync + 'static {
    move |req| {
        let mut body = req.body().bytes().unwrap_or_default().to_vec();
        body.extend_from_slice(format!("&{param}=").as_bytes());
        let len = body.len().to_string();
        // The RDS crate re-exports no body type; the Lambda crate's is the same.
        *req.body_mut() = aws_sdk_lambda::primitives::SdkBody::from(body);
        req.headers_mut().insert("content-length", len);
    }
}
