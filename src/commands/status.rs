//! `status`: each step's state, from the state file alone.

use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use crate::engine::{edited_since_applied, order_for_status};
use crate::open::{EnvMode, Options, command_hint, load_runbook, state_error, state_path};
use crate::state::State;

pub fn status(runbook: &Path, opts: &Options) -> Result<()> {
    let rb = load_runbook(runbook, EnvMode::Lenient)?;
    let path = state_path(&rb, opts);
    let exists = State::exists(&path);
    let state = State::load(&path, &rb.name).map_err(state_error)?;
    // What the runbook says now that the step was not applied with
    // (`field: applied -> runbook`); a value from an unset variable is not
    // known, so not compared.
    let edits = |name: &str| -> Vec<String> {
        edited_since_applied(name, &rb, &state)
            .unwrap_or_default()
            .into_iter()
            .filter(|line| !line.contains("${env."))
            .collect()
    };
    if opts.output == crate::cli::Output::Json {
        let steps: Vec<Value> = order_for_status(&rb, &state)
            .iter()
            .map(|name| {
                let rec = state.record(name).cloned().unwrap_or_default();
                serde_json::json!({
                    "name": name,
                    "status": rec.status,
                    "updated_at": rec.updated_at,
                    "outputs": rec.outputs,
                    "error": rec.error,
                    "runbook_edits": edits(name),
                    "origin": rec.origin,
                    "replaced": rec.retired.iter().map(|r| &r.outputs).collect::<Vec<_>>(),
                })
            })
            .collect();
        let doc = serde_json::json!({
            "runbook": rb.name,
            "file": rb.path,
            "state": path,
            "exists": exists,
            "account": state.account,
            "region": state.region,
            "steps": steps,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!("Runbook `{}` ({})", rb.name, rb.path.display());
    println!(
        "State: {}{}",
        path.display(),
        if exists {
            ""
        } else {
            " (none yet: nothing has run)"
        }
    );
    let mut last_error = None;
    for name in order_for_status(&rb, &state) {
        let rec = state.record(&name).cloned().unwrap_or_default();
        println!(
            "  {:<22} {:<12} {}",
            name,
            rec.status.label(),
            rec.updated_at.as_deref().unwrap_or("")
        );
        for (k, v) in &rec.outputs {
            println!("      {k} = {v}");
        }
        for e in edits(&name) {
            println!("      edited in the runbook, not applied yet: {e}");
        }
        if rec.origin == Some(crate::state::Origin::Adopted) {
            println!("      adopted: managed here, left in place by rollback");
        }
        for r in &rec.retired {
            let what = crate::steps::get(&name)
                .and_then(|s| s.describe(&r.inputs).ok())
                .unwrap_or_default();
            println!("      replaced, to delete once every function has moved: {what}");
        }
        if let Some(e) = &rec.error {
            println!("      error: {e}");
            last_error = Some(name.clone());
        }
    }
    if let Some(name) = last_error {
        println!(
            "Last error in step `{name}`. To continue after fixing it: {}",
            command_hint("resume", &rb, opts)
        );
    }
    Ok(())
}
