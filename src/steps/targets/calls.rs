//! The targets step's reads of RDS: the proxy's entries for the runbook's
//! DB, and those with the pool, read once a pass.

use anyhow::Result;
use aws_sdk_rds::types::{ConnectionPoolConfigurationInfo, DbProxyTarget};

use super::diff::{Inputs, is_our_target};
use crate::aws::errors::is_proxy_part_gone;
use crate::aws::rds::pool_now;
use crate::aws::{describe_error, error_code};
use crate::steps::contract::Ctx;

/// The proxy's entries for the runbook's DB (none: not registered).
pub(super) async fn our_targets(cx: &Ctx<'_>, i: &Inputs) -> Result<Vec<DbProxyTarget>> {
    match cx
        .aws
        .rds
        .describe_db_proxy_targets()
        .db_proxy_name(&i.proxy_name)
        .send()
        .await
    {
        Ok(o) => Ok(o
            .targets
            .unwrap_or_default()
            .into_iter()
            .filter(|t| is_our_target(t, i))
            .collect()),
        Err(e) if is_proxy_part_gone(error_code(&e)) => Ok(Vec::new()),
        Err(e) => anyhow::bail!(
            "cannot read the targets of DB proxy {}: {}",
            i.proxy_name,
            describe_error(&e)
        ),
    }
}

/// The proxy's entries for the DB and its pool, read at once and once in
/// this pass of the step.
pub(super) async fn targets_and_pool(
    cx: &Ctx<'_>,
    i: &Inputs,
) -> Result<(Vec<DbProxyTarget>, Option<ConnectionPoolConfigurationInfo>)> {
    let read = async { tokio::try_join!(our_targets(cx, i), pool_now(cx.aws, &i.proxy_name)) };
    cx.read_once(format!("targets and pool of {}", i.proxy_name), read)
        .await
}
