//! How a run or a rollback ends: the JSON document and the error with the
//! way on.

use std::collections::BTreeMap;

use anyhow::Result;
use serde_json::Value;

use crate::error::{EXIT_INTERRUPTED, Failure, code_of};
use crate::open::{Options, command_hint};
use crate::poll::{self, Interrupted};
use crate::runbook::Runbook;

/// A copy of the steps' results (errors as their text; Ctrl-C kept).
pub(crate) fn copy_results<'n, T: Copy>(
    results: &[(&'n str, Result<T>)],
) -> Vec<(&'n str, Result<T>)> {
    results
        .iter()
        .map(|(n, r)| {
            let r = match r {
                Ok(v) => Ok(*v),
                Err(e) if e.downcast_ref::<Interrupted>().is_some() => Err(Interrupted.into()),
                Err(e) => Err(anyhow::anyhow!("{e:#}")),
            };
            (*n, r)
        })
        .collect()
}

/// With `--output json`: the command's document, from its steps' results
/// (in the runbook's order; a step absent from them never started) and
/// how the command ended.
#[allow(clippy::too_many_arguments)]
pub(crate) fn emit_report<T>(
    command: &str,
    rb: &Runbook,
    region: &str,
    state: &dyn std::fmt::Display,
    names: &[&str],
    results: &[(&str, Result<(T, std::time::Duration)>)],
    label: impl Fn(&T) -> &'static str,
    ended: Result<(), &anyhow::Error>,
) {
    let mut summary: BTreeMap<&str, usize> = BTreeMap::new();
    let steps: Vec<Value> = names
        .iter()
        .map(|name| {
            let found = results.iter().find(|(n, _)| n == name).map(|(_, r)| r);
            let (result, seconds, error) = match found {
                None => ("not started", None, None),
                Some(Ok((v, d))) => (label(v), Some(d.as_secs_f64()), None),
                Some(Err(e)) if e.downcast_ref::<Interrupted>().is_some() => {
                    ("interrupted", None, None)
                }
                Some(Err(e)) => ("failed", None, Some(format!("{e:#}"))),
            };
            *summary.entry(result).or_default() += 1;
            serde_json::json!({
                "name": name,
                "result": result,
                "seconds": seconds.map(|s| (s * 1000.0).round() / 1000.0),
                "error": error,
            })
        })
        .collect();
    let (result, exit_code, error) = match ended {
        Ok(()) => ("ok", 0, None),
        Err(e) => {
            let code = code_of(e);
            let result = if code == EXIT_INTERRUPTED {
                "interrupted"
            } else {
                "failed"
            };
            (result, code, Some(format!("{e:#}")))
        }
    };
    crate::ui::progress::emit_json(&serde_json::json!({
        "command": command,
        "runbook": rb.name,
        "region": region,
        "state": state.to_string(),
        "result": result,
        "exit_code": exit_code,
        "error": error,
        "summary": summary,
        "steps": steps,
    }));
}

/// The error that ends a run or rollback from its steps' results: Ctrl-C
/// wins, then a usage error, then every failed step with the way on.
pub(crate) fn first_error<T>(
    results: Vec<(&str, Result<T>)>,
    rb: &Runbook,
    opts: &Options,
    verb: &str,
) -> Result<Vec<T>> {
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    let mut exit_err = None;
    for (name, r) in results {
        match r {
            Ok(v) => ok.push(v),
            Err(e) if e.downcast_ref::<Interrupted>().is_some() => {}
            Err(e) => match e.downcast::<Failure>() {
                Ok(x) => exit_err = Some(x),
                Err(e) => failed.push(format!("step `{name}` failed: {e:#}")),
            },
        }
    }
    if poll::interrupted() {
        return Err(Failure::interrupted(format!(
            "interrupted; the state is saved. To continue: {}",
            command_hint(verb, rb, opts)
        )));
    }
    if let Some(x) = exit_err {
        return Err(x.into());
    }
    if !failed.is_empty() {
        let hints = if verb == "resume" {
            format!(
                "To continue after fixing it: {}\nTo undo: {}",
                command_hint("resume", rb, opts),
                command_hint("rollback", rb, opts)
            )
        } else {
            format!("Fix it and run again: {}", command_hint(verb, rb, opts))
        };
        return Err(Failure::steps_failed(format!(
            "{}\n{hints}",
            failed.join("\n")
        )));
    }
    Ok(ok)
}
