//! What `init` finds already in front of the DB: a proxy made elsewhere
//! (by hand, as the cookbook does) whose target is the DB, or whose
//! endpoint a function's variable holds. Its settings, role, security
//! group, pool and the functions' connect policy are read, so that the
//! runbook `init` writes describes that setup and `adopt` takes it over
//! instead of a second proxy being planned. Reads only.

use anyhow::Result;
use aws_sdk_rds::types::{DbProxy, IamAuthMode};
use futures_util::future::try_join_all;

use super::function::Function;
use crate::aws::{Aws, decode_policy, describe_error};
use crate::db::{Db, Kind};

/// An existing proxy and what `init` read of it.
/// One secret of an existing proxy, for an `[[auth]]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthFound {
    pub secret_arn: String,
    pub user: Option<String>,
    pub iam_auth: String,
    pub client_password_auth_type: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub struct Existing {
    pub name: String,
    pub endpoint: String,
    /// Why it counts as this DB's: its target, or a function's variable.
    pub why: String,
    /// Other proxies that also front the DB (named in a comment).
    pub others: Vec<String>,
    pub role_name: Option<String>,
    /// Its first security group: id, name, description.
    pub security_group: Option<(String, String, String)>,
    pub subnets: Vec<String>,
    pub secret_arn: Option<String>,
    pub iam_auth: String,
    /// Every secret of the proxy when it has several, each as an
    /// `[[auth]]` table would give it (empty with one or none).
    pub auth: Vec<AuthFound>,
    /// `NONE`, or `IAM_AUTH` (end-to-end IAM).
    pub default_auth_scheme: String,
    /// The endpoint's and the target connection's network types.
    pub network_types: (String, String),
    pub require_tls: bool,
    pub idle_client_timeout: Option<i32>,
    pub debug_logging: bool,
    /// max connections %, max idle %, borrow timeout (s).
    pub pool: Option<(i32, i32, i32)>,
    /// The customer-managed policy on a function's role that allows
    /// `rds-db:connect` to it, and the DB user it names.
    pub connect_policy: Option<(String, String)>,
    /// Its role has the book's SecretsManagerReadWrite.
    pub secrets_managed: bool,
}

/// The proxy in front of `db` (or named by one of `functions`' variables),
/// if any.
pub async fn find(aws: &Aws, db: &Db, functions: &[Function]) -> Result<Option<Existing>> {
    let mut proxies: Vec<DbProxy> = Vec::new();
    let mut pages = aws.rds.describe_db_proxies().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            anyhow::anyhow!(
                "cannot list the DB proxies (to see whether one fronts {} already): {}",
                db.id,
                describe_error(&e)
            )
        })?;
        proxies.extend(page.db_proxies().iter().cloned());
    }
    let fronting = try_join_all(proxies.iter().map(|p| fronts(aws, p, db))).await?;
    let mut candidates: Vec<(&DbProxy, String)> = proxies
        .iter()
        .zip(fronting)
        .filter(|(_, fronts)| *fronts)
        .map(|(p, _)| (p, format!("its target is {}", db.what())))
        .collect();
    for p in &proxies {
        let Some(endpoint) = p.endpoint() else {
            continue;
        };
        for f in functions {
            let holds = f.variables.iter().find(|(_, v)| v == endpoint);
            if let Some((k, _)) = holds
                && !candidates
                    .iter()
                    .any(|(c, _)| c.db_proxy_name() == p.db_proxy_name())
            {
                candidates.push((
                    p,
                    format!("{k} of Lambda function {} holds its endpoint", f.name),
                ));
            }
        }
    }
    let Some((proxy, why)) = candidates.first() else {
        return Ok(None);
    };
    let auth = proxy.auth().first();
    let mut found = Existing {
        name: proxy.db_proxy_name().unwrap_or_default().to_string(),
        endpoint: proxy.endpoint().unwrap_or_default().to_string(),
        why: why.clone(),
        others: candidates[1..]
            .iter()
            .filter_map(|(p, _)| p.db_proxy_name().map(String::from))
            .collect(),
        role_name: proxy
            .role_arn()
            .and_then(crate::arn::role_name)
            .map(String::from),
        subnets: proxy.vpc_subnet_ids().to_vec(),
        secret_arn: auth.and_then(|a| a.secret_arn()).map(String::from),
        iam_auth: auth
            .and_then(|a| a.iam_auth())
            .map_or("DISABLED", IamAuthMode::as_str)
            .to_string(),
        auth: if proxy.auth().len() > 1 {
            proxy
                .auth()
                .iter()
                .filter_map(|a| {
                    Some(AuthFound {
                        secret_arn: a.secret_arn()?.to_string(),
                        user: a.user_name().map(String::from),
                        iam_auth: a
                            .iam_auth()
                            .map_or("DISABLED", IamAuthMode::as_str)
                            .to_string(),
                        client_password_auth_type: a
                            .client_password_auth_type()
                            .map(|c| c.as_str().to_string()),
                    })
                })
                .collect()
        } else {
            Vec::new()
        },
        default_auth_scheme: proxy.default_auth_scheme().unwrap_or("NONE").to_string(),
        network_types: (
            proxy
                .endpoint_network_type()
                .map_or("IPV4", |t| t.as_str())
                .to_string(),
            proxy
                .target_connection_network_type()
                .map_or("IPV4", |t| t.as_str())
                .to_string(),
        ),
        require_tls: proxy.require_tls().unwrap_or(false),
        idle_client_timeout: proxy.idle_client_timeout(),
        debug_logging: proxy.debug_logging().unwrap_or(false),
        ..Existing::default()
    };
    let id = proxy
        .db_proxy_arn()
        .and_then(crate::arn::proxy_id)
        .unwrap_or_default()
        .to_string();
    let group = proxy.vpc_security_group_ids().first().cloned();
    let (group, pool, connect, managed) = tokio::join!(
        security_group(aws, group),
        crate::aws::rds::pool_now(aws, &found.name),
        connect_policy(aws, &id, functions),
        secrets_managed(aws, found.role_name.as_deref()),
    );
    found.security_group = group?;
    found.pool = pool?.map(|p| {
        (
            p.max_connections_percent().unwrap_or(100),
            p.max_idle_connections_percent().unwrap_or(50),
            p.connection_borrow_timeout().unwrap_or(120),
        )
    });
    found.connect_policy = connect?;
    found.secrets_managed = managed?;
    Ok(Some(found))
}

/// Whether `db` is a target of `proxy`.
async fn fronts(aws: &Aws, proxy: &DbProxy, db: &Db) -> Result<bool> {
    let Some(name) = proxy.db_proxy_name() else {
        return Ok(false);
    };
    let out = match aws
        .rds
        .describe_db_proxy_targets()
        .db_proxy_name(name)
        .send()
        .await
    {
        Ok(out) => out,
        // Gone, or its group not there yet: it fronts nothing.
        Err(e) if crate::aws::errors::is_proxy_part_gone(crate::aws::error_code(&e)) => {
            return Ok(false);
        }
        Err(e) => anyhow::bail!("cannot read the targets of {name}: {}", describe_error(&e)),
    };
    let same = |v: Option<&str>| v.is_some_and(|v| v.eq_ignore_ascii_case(&db.id));
    Ok(out.targets().iter().any(|t| match db.kind {
        Kind::Instance => same(t.rds_resource_id()),
        Kind::Cluster => same(t.tracked_cluster_id()) || same(t.rds_resource_id()),
    }))
}

async fn security_group(aws: &Aws, id: Option<String>) -> Result<Option<(String, String, String)>> {
    let Some(id) = id else { return Ok(None) };
    let out = aws
        .ec2
        .describe_security_groups()
        .group_ids(&id)
        .send()
        .await;
    let out = out
        .map_err(|e| anyhow::anyhow!("cannot read security group {id}: {}", describe_error(&e)))?;
    Ok(out.security_groups().first().map(|g| {
        (
            id.clone(),
            g.group_name().unwrap_or_default().to_string(),
            g.description().unwrap_or_default().to_string(),
        )
    }))
}

/// The customer-managed policy on a function's role whose default version
/// allows `rds-db:connect` to proxy `id`, with the DB user it names.
async fn connect_policy(
    aws: &Aws,
    id: &str,
    functions: &[Function],
) -> Result<Option<(String, String)>> {
    let roles: Vec<&str> = functions
        .iter()
        .filter_map(|f| f.role.as_deref().and_then(crate::arn::role_name))
        .collect();
    for role in roles {
        let attached = aws
            .iam
            .list_attached_role_policies()
            .role_name(role)
            .send()
            .await;
        let attached = attached.map_err(|e| {
            anyhow::anyhow!(
                "cannot list the policies of role {role}: {}",
                describe_error(&e)
            )
        })?;
        for p in attached.attached_policies() {
            let Some(arn) = p
                .policy_arn()
                .filter(|a| !a.starts_with("arn:aws:iam::aws:"))
            else {
                continue;
            };
            let Ok(policy) = aws.iam.get_policy().policy_arn(arn).send().await else {
                continue;
            };
            let Some(version) = policy.policy().and_then(|p| p.default_version_id()) else {
                continue;
            };
            let doc = aws
                .iam
                .get_policy_version()
                .policy_arn(arn)
                .version_id(version)
                .send();
            let Some(doc) = doc.await.ok().and_then(|d| {
                decode_policy(d.policy_version()?.document()?).map(|v| v.to_string())
            }) else {
                continue;
            };
            let marker = format!("dbuser:{id}/");
            if let Some(at) = doc.find(&marker) {
                let user: String = doc[at + marker.len()..]
                    .chars()
                    .take_while(|c| *c != '"')
                    .collect();
                let name = p.policy_name().unwrap_or_default().to_string();
                return Ok(Some((name, user)));
            }
        }
    }
    Ok(None)
}

/// Whether role `name` has the managed SecretsManagerReadWrite (the book's
/// way of letting the proxy read the secret).
async fn secrets_managed(aws: &Aws, name: Option<&str>) -> Result<bool> {
    let Some(name) = name else { return Ok(false) };
    let attached = aws
        .iam
        .list_attached_role_policies()
        .role_name(name)
        .send()
        .await;
    let attached = attached.map_err(|e| {
        anyhow::anyhow!(
            "cannot list the policies of role {name}: {}",
            describe_error(&e)
        )
    })?;
    Ok(attached
        .attached_policies()
        .iter()
        .any(|p| p.policy_arn() == Some(crate::steps::MANAGED_SECRETS_POLICY)))
}
