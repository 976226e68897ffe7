//! Preflight's proxy: its name free, or the proxy ours (by its tag, or
//! adopted by this state), or there when it is used as it is; and room for
//! another under AWS's quota.

use anyhow::Result;

use super::report::Report;
use crate::aws::{Aws, describe_error};
use crate::runbook::Runbook;

/// Proxies an account may have (AWS's quota).
const PROXY_QUOTA: usize = 20;

pub(super) async fn check_proxy_room(
    rb: &Runbook,
    aws: &Aws,
    adopted: Option<&str>,
    r: &mut Report,
) -> Result<()> {
    let Some(name) = rb.proxy.name.literal() else {
        return Ok(());
    };
    let all = crate::rounds::proxies_now(aws).await?;
    let found = all.get(&name);
    if !rb.step_names().any(|n| n == "proxy") {
        // Used as it is (by value): it must be there, whoever made it.
        match found {
            Some(_) => r.ok(format!(
                "DB proxy {name} exists (used as it is, not managed here)"
            )),
            None => r.problem(
                format!("DB proxy {name} (proxy.name; `proxy` is not in `steps`) does not exist"),
                "correct proxy.name, or add `proxy` to `steps` to make it",
            ),
        }
        return Ok(());
    }
    match found {
        Some(p) => {
            let arn = p.db_proxy_arn().unwrap_or_default();
            let tags = aws
                .rds
                .list_tags_for_resource()
                .resource_name(arn)
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!("cannot read the tags of {arn}: {}", describe_error(&e))
                })?;
            let ours = tags.tag_list().iter().any(|t| {
                t.key() == Some(crate::runbook::OWNER_TAG) && t.value() == Some(rb.name.as_str())
            });
            if ours {
                r.ok(format!("DB proxy {name} exists and is ours"));
            } else if adopted == Some(name.as_str()) {
                r.ok(format!("DB proxy {name} exists, adopted by this state"));
            } else {
                r.problem(
                    format!(
                        "a DB proxy named {name} exists and was not created by runbook `{}`",
                        rb.name
                    ),
                    "choose another proxy.name, or take it over with `adopt` (the setup made \
                     by hand), or delete that proxy if it is a leftover",
                );
            }
        }
        None if all.len() >= PROXY_QUOTA => r.problem(
            format!(
                "the account has {} DB proxies, AWS's limit is {PROXY_QUOTA}",
                all.len()
            ),
            "delete a proxy you no longer need, or ask AWS for a higher quota",
        ),
        None => r.ok(format!(
            "DB proxy name {name} is free ({} of {PROXY_QUOTA} proxies used)",
            all.len()
        )),
    }
    Ok(())
}
