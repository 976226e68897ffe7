//! The lambda-env step's calls to Lambda: a function's configuration read
//! once a pass, the wait until an update lands, the one write that sets or
//! removes a variable (keeping the others, retried while another update
//! runs), and the variables the runbook no longer lists still to put back.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput;
use aws_sdk_lambda::types::Environment;
use futures_util::future::try_join_all;

use super::diff::{ToRestore, ours, removed, update_decision};
use super::inputs::Inputs;
use crate::aws::errors::is_update_in_progress;
use crate::aws::{describe_error, error_code};
use crate::poll::{Backoff, Deadline, Wait, sleep, wait_for};
use crate::steps::common::function_configuration;
use crate::steps::contract::Ctx;

/// How long to keep retrying while another update of the function runs.
const CONFLICT_LIMIT: Duration = Duration::from_secs(300);
const UPDATE_LIMIT: Duration = Duration::from_secs(600);

/// A function's configuration, read once in this pass of the step (until
/// [`set_variable`] writes it).
async fn config_once(cx: &Ctx<'_>, name: &str) -> Result<GetFunctionConfigurationOutput> {
    cx.read_once(config_key(name), function_configuration(cx, name))
        .await
}

fn config_key(name: &str) -> String {
    format!("configuration of {name}")
}

/// A function's variables as the place's listing of every function has
/// them (for a check and the plan: shared by a fleet's runbooks); the
/// apply and `before` read the function on its own ([`variables`]).
pub(super) async fn listed_variables(cx: &Ctx<'_>, name: &str) -> Result<HashMap<String, String>> {
    let all = crate::aws::listings::functions(cx.aws).await?;
    let conf = all.get(name).ok_or_else(|| {
        anyhow::anyhow!(
            "Lambda function {name} does not exist in {}: check [[lambda]] function_name and the region",
            cx.aws.region
        )
    })?;
    Ok(conf
        .environment()
        .and_then(|e| e.variables())
        .cloned()
        .unwrap_or_default())
}

/// A function's variables, read on their own (once this pass).
pub(super) async fn variables(cx: &Ctx<'_>, name: &str) -> Result<HashMap<String, String>> {
    let conf = config_once(cx, name).await?;
    Ok(conf
        .environment()
        .and_then(|e| e.variables())
        .cloned()
        .unwrap_or_default())
}

async fn wait_updated(cx: &Ctx<'_>, name: &str) -> Result<()> {
    wait_for(
        cx.bar,
        &format!("Lambda function {name} to update"),
        UPDATE_LIMIT,
        || async {
            let conf = function_configuration(cx, name).await?;
            update_decision(conf.last_update_status(), conf.last_update_status_reason())
        },
    )
    .await
}

/// What [`set_variable`] did.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Set {
    Written,
    /// It had that value already.
    AlreadySo,
    /// Its value was not the one expected: someone changed it; untouched.
    NotAsExpected,
}

/// Sets (Some) or removes (None) one variable, keeping all the others; with
/// `expect`, only while the variable still holds one of those values. The
/// first try uses this pass's read (the check's, a moment ago); each later
/// one reads the variables afresh (another update may have changed them).
/// Each checks `expect` on its read, and never writes when the read
/// failed, which would drop the others.
pub(super) async fn set_variable(
    cx: &Ctx<'_>,
    name: &str,
    variable: &str,
    expect: Option<&[String]>,
    value: Option<&str>,
) -> Result<Set> {
    let deadline = Deadline::after(CONFLICT_LIMIT);
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(15));
    loop {
        // Read on its own right before the write (never the listing a
        // check read, nor what `before` read moments ago): the write
        // keeps every other variable as the function has them now.
        let conf = function_configuration(cx, name).await?;
        cx.forget(&config_key(name));
        if let Wait::Pending(_) =
            update_decision(conf.last_update_status(), conf.last_update_status_reason())?
        {
            wait_updated(cx, name).await?;
            continue;
        }
        let mut vars = conf
            .environment()
            .and_then(|e| e.variables())
            .cloned()
            .unwrap_or_default();
        let now = vars.get(variable).map(String::as_str);
        if expect.is_some_and(|e| !e.iter().any(|e| now == Some(e.as_str()))) {
            return Ok(Set::NotAsExpected);
        }
        if now == value {
            return Ok(Set::AlreadySo);
        }
        match value {
            Some(v) => vars.insert(variable.to_string(), v.to_string()),
            None => vars.remove(variable),
        };
        let sent = cx
            .aws
            .lambda
            .update_function_configuration()
            .function_name(name)
            .environment(Environment::builder().set_variables(Some(vars)).build())
            .send()
            .await;
        match sent {
            Ok(out) => {
                let now =
                    update_decision(out.last_update_status(), out.last_update_status_reason())?;
                if let Wait::Pending(_) = now {
                    wait_updated(cx, name).await?;
                }
                return Ok(Set::Written);
            }
            Err(e) if is_update_in_progress(error_code(&e)) && !deadline.passed() => {
                let delay = backoff.next_delay();
                cx.bar.set(format!(
                    "ResourceConflictException: retrying in {:.0}s",
                    delay.as_secs_f64().ceil()
                ));
                sleep(delay).await?;
            }
            Err(e) => anyhow::bail!(
                "cannot update the environment of {name}: {}",
                describe_error(&e)
            ),
        }
    }
}

/// The removed functions (see [`removed`]) whose variable still holds
/// the endpoint an earlier run set: each is put back to its old value.
pub(super) async fn to_restore(cx: &Ctx<'_>, i: &Inputs) -> Result<Vec<ToRestore>> {
    let Some(before) = cx.recorded.and_then(|r| r.before.as_ref()) else {
        return Ok(Vec::new());
    };
    let gone = removed(before, i);
    if gone.is_empty() {
        return Ok(Vec::new());
    }
    let endpoint = cx
        .recorded_output("endpoint")
        .map(String::from)
        .or_else(|| cx.recorded_inputs::<Inputs>().map(|e| e.endpoint))
        .unwrap_or_else(|| i.endpoint.clone());
    let ours = ours(cx, &endpoint, i);
    let ours = &ours;
    let all = try_join_all(gone.iter().map(|(name, _, _)| async move {
        // A function deleted since has nothing to put back.
        Ok::<_, anyhow::Error>(match cx.aws.function_if_any(name).await? {
            Some(conf) => conf.environment().and_then(|e| e.variables()).cloned(),
            None => None,
        })
    }))
    .await?;
    Ok(gone
        .into_iter()
        .zip(all)
        .filter_map(|((name, variable, old), vars)| {
            let now = vars.as_ref().and_then(|v| v.get(&variable))?;
            ours.contains(now).then(|| ToRestore {
                line: format!(
                    "{name}.{variable}: {now} -> {} (no longer in the runbook: put back)",
                    old.unwrap_or("(unset)")
                ),
                name,
                variable,
                old: old.map(String::from),
            })
        })
        .collect())
}
