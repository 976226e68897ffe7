//! Preflight: what the recipe needs from the account, checked before
//! anything is created. Every problem is collected, each with its fix, so
//! one look shows all that stands in the way (the failures users hit most:
//! a DB that is not available or of another engine, a secret without
//! username and password, subnets in one AZ or another VPC, a Lambda
//! outside the VPC, no room for another proxy, a proxy name taken).
//!
//! `run` (here) reads them all at once, each area in its own file:
//! `database.rs`, `secrets.rs`, `network.rs` (subnets, security groups),
//! `lambdas.rs` (the functions and their variables), `proxy.rs` (its name,
//! the quota); `report.rs` holds the report, its printing and the verdict.
//! Tests in `tests.rs`.

mod database;
mod lambdas;
mod network;
mod proxy;
mod report;
mod secrets;
#[cfg(test)]
mod tests;

use anyhow::Result;

use crate::aws::Aws;
use crate::runbook::Runbook;
use database::check_database;
pub use database::family_of;
use lambdas::{check_lambdas, environment_room, left_on_the_db};
use network::{check_groups, check_subnets};
use proxy::check_proxy_room;
pub(crate) use report::preflight_verdict;
pub use report::{Report, print_preflight};
use secrets::check_secret;

/// The IAM actions preflight's calls need (`permissions`), the state
/// bucket's advice included; the DB's reads are [`crate::db::ACTIONS`].
pub const ACTIONS: crate::actions::Calls = {
    use crate::actions::On;
    &[
        ("sts:GetCallerIdentity", On::Any),
        ("rds:DescribeDBProxies", On::Any),
        ("rds:ListTagsForResource", On::Proxy),
        ("secretsmanager:DescribeSecret", On::Secrets),
        // Read to check its username and password (never shown); a
        // customer-managed key decrypts it through Secrets Manager.
        ("secretsmanager:GetSecretValue", On::Secrets),
        ("kms:Decrypt", On::SecretKeys),
        ("ec2:DescribeSubnets", On::Any),
        ("ec2:DescribeSecurityGroups", On::Any),
        ("lambda:GetFunctionConfiguration", On::Functions),
        // The functions, out of the place's listing of every function.
        ("lambda:ListFunctions", On::Any),
        ("iam:GetRole", On::FunctionRoles),
        ("s3:GetBucketVersioning", On::StateBucket),
        ("s3:GetEncryptionConfiguration", On::StateBucket),
    ]
};

/// Runs every check, all at once; never fails on a problem, only on a
/// tool error. The report lists them in a fixed order.
/// `state`: what this runbook's state holds (a proxy it adopted is its own
/// although untagged); `backend`: where it is kept (a bucket without
/// versioning or encryption is warned about).
pub async fn run(
    rb: &Runbook,
    aws: &Aws,
    state: &crate::state::State,
    backend: &crate::state::backend::Backend,
) -> Result<Report> {
    let adopted = state
        .record("proxy")
        .filter(|r| r.origin == Some(crate::state::Origin::Adopted))
        .and_then(|r| r.inputs.as_ref()?.get("name")?.as_str().map(String::from));
    let vpc = rb.network.vpc_id.literal().unwrap_or_default();
    let mut parts: [Report; 6] = Default::default();
    let [db, secret, subnets, groups, lambdas, room] = &mut parts;
    let advice = async {
        match backend {
            crate::state::backend::Backend::S3(s3) => Ok(s3.advice().await),
            crate::state::backend::Backend::File(_) => Ok(Vec::new()),
        }
    };
    let ((db_vpc, db_host), (), (), (), variables, (), mut warnings) = tokio::try_join!(
        check_database(rb, aws, db),
        check_secret(rb, aws, secret),
        check_subnets(rb, aws, &vpc, subnets),
        check_groups(rb, aws, &vpc, groups),
        check_lambdas(rb, aws, &vpc, lambdas),
        check_proxy_room(rb, aws, adopted.as_deref(), room),
        advice,
    )?;
    if let Some(db_vpc) = &db_vpc
        && *db_vpc != vpc
    {
        db.problem(
            format!("the runbook's VPC {vpc} is not the DB's VPC {db_vpc}"),
            format!("set network.vpc_id = \"{db_vpc}\": the proxy must sit in the DB's VPC"),
        );
    }
    warnings.extend(setting_warnings(rb));
    if let Some(db_host) = &db_host {
        for (function, vars) in &variables {
            let moved: Vec<&str> = rb
                .lambdas
                .iter()
                .filter(|l| l.function_name.literal().as_deref() == Some(function.as_str()))
                .map(|l| l.env_var.as_str())
                .collect();
            let names = left_on_the_db(vars, &moved, db_host);
            if !names.is_empty() {
                warnings.push(format!(
                    "{function}: {} also hold(s) the DB's endpoint {db_host}, and the runbook \
                     moves only {}: through them the function keeps reaching the DB directly. \
                     Put the proxy's endpoint in them too (a [[lambda]] entry per variable that \
                     holds only the host), or leave them if that is meant",
                    names.join(", "),
                    moved.join(", ")
                ));
            }
        }
    }
    let mut r = Report {
        warnings,
        ..Report::default()
    };
    for part in parts {
        r.absorb(part);
    }
    environment_room(rb, state, &aws.region, &variables, &mut r);
    Ok(r)
}

/// What a runbook sets that works against itself: IAM authentication
/// required while TLS is not (IAM tokens are accepted over TLS only).
fn setting_warnings(rb: &Runbook) -> Vec<String> {
    let mut out = Vec::new();
    if rb.proxy.iam_auth.as_str() == "REQUIRED" && !rb.proxy.require_tls {
        out.push(
            "proxy.iam_auth = \"REQUIRED\" with require_tls = false: IAM tokens are accepted \
             over TLS only, so a client that connects without TLS is refused (\"This RDS Proxy \
             requires TLS\"; PostgreSQL: \"IAM authentication is allowed only with SSL \
             connections\"): set require_tls = true, and connect with TLS"
                .to_string(),
        );
    }
    out
}

/// Runs preflight and prints it; Err (exit 5) when it found problems.
pub(crate) async fn preflight_checks(
    rb: &Runbook,
    aws: &Aws,
    state: &crate::state::State,
    backend: &crate::state::backend::Backend,
    all: bool,
) -> Result<()> {
    let report = crate::preflight::run(rb, aws, state, backend).await?;
    print_preflight(&report, all);
    preflight_verdict(&report)
}
