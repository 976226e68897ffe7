//! `status`: each step's state, from the state alone (no call to the
//! account; a state in S3 is read from S3), and with `--history` the
//! state's earlier versions.

use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use crate::engine::{edited_since_applied, order_for_status};
use crate::error::Failure;
use crate::open::{EnvMode, Options, command_hint, load_runbook, open_state};
use crate::state::backend::Backend;

pub async fn status(runbook: &Path, history: bool, opts: &Options) -> Result<()> {
    let rb = load_runbook(runbook, EnvMode::Lenient)?;
    let backend = open_state(&rb, opts, "status").await?;
    if history {
        return print_history(&backend, opts).await;
    }
    let (state, exists) = backend.load_found(&rb.name).await?;
    let path = backend.to_string();
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
        crate::ui::progress::emit_json(&doc);
        return Ok(());
    }
    crate::say!("Runbook `{}` ({})", rb.name, rb.path.display());
    crate::say!(
        "State: {}{}",
        path,
        if exists {
            ""
        } else {
            " (none yet: nothing has run)"
        }
    );
    let mut last_error = None;
    for name in order_for_status(&rb, &state) {
        let rec = state.record(&name).cloned().unwrap_or_default();
        crate::say!(
            "  {:<22} {:<12} {}",
            name,
            rec.status.label(),
            rec.updated_at.as_deref().unwrap_or("")
        );
        for (k, v) in &rec.outputs {
            crate::say!("      {k} = {v}");
        }
        for e in edits(&name) {
            crate::say!("      edited in the runbook, not applied yet: {e}");
        }
        if rec.origin == Some(crate::state::Origin::Adopted) {
            crate::say!("      adopted: managed here, left in place by rollback");
        }
        for r in &rec.retired {
            let what = crate::steps::get(&name)
                .and_then(|s| s.describe(&r.inputs).ok())
                .unwrap_or_default();
            crate::say!("      replaced, to delete once every function has moved: {what}");
        }
        if let Some(e) = &rec.error {
            crate::say!("      error: {e}");
            last_error = Some(name.clone());
        }
    }
    if let Some(name) = last_error {
        crate::say!(
            "Last error in step `{name}`. To continue after fixing it: {}",
            command_hint("resume", &rb, opts)
        );
    }
    Ok(())
}

/// The state's versions in S3, newest first: when, who, host, command.
async fn print_history(backend: &Backend, opts: &Options) -> Result<()> {
    let Backend::S3(s3) = backend else {
        return Err(Failure::usage(format!(
            "--history needs the state in S3 (a versioned bucket keeps its versions); {backend} \
             is a local file: move it with `state push --to s3://BUCKET/KEY`"
        )));
    };
    let versions = s3.history().await?;
    if opts.output == crate::cli::Output::Json {
        crate::ui::progress::emit_json(&serde_json::to_value(&versions)?);
        return Ok(());
    }
    crate::say!("History of {backend} (newest first):");
    for v in &versions {
        crate::say!(
            "  {}  {:<12} {:<20} {:<10} {}{}",
            v.when,
            v.who,
            v.host,
            v.command,
            v.version_id,
            if v.latest { "  (current)" } else { "" }
        );
    }
    // The bucket's versioning says what the list means, not its length: a
    // versioned bucket lists one version until the state's next write.
    let versioned = s3.versioned().await;
    if let Some(note) = history_note(versioned, versions.len(), &s3.place.bucket) {
        crate::say!("  ({note})");
    }
    Ok(())
}

/// What a list of `count` versions means, from the bucket's versioning
/// (`Err`: why it cannot be read); none when the list says it all.
fn history_note(versioned: Result<bool, String>, count: usize, bucket: &str) -> Option<String> {
    let turn_on = crate::state::s3::history::versioning_command(bucket);
    match versioned {
        Ok(true) if count <= 1 => Some(
            "one version so far: the bucket is versioned, so each later write of the state \
             adds one"
                .into(),
        ),
        Ok(true) => None,
        Ok(false) if count <= 1 => Some(format!(
            "the bucket keeps no history unless versioning is on: `{turn_on}`"
        )),
        Ok(false) => Some(format!(
            "versioning is suspended: the earlier versions listed were kept while it was on, \
             and each write now replaces the latest; the bucket keeps no history unless \
             versioning is on: `{turn_on}`"
        )),
        Err(why) => Some(format!(
            "whether the bucket keeps versions is not known: {why}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::history_note;

    #[test]
    fn the_buckets_versioning_not_the_count_says_whether_it_keeps_history() {
        let no_history = "keeps no history";
        let one = history_note(Ok(true), 1, "b").unwrap();
        assert!(
            one.contains("one version so far") && !one.contains(no_history),
            "{one}"
        );
        assert_eq!(history_note(Ok(true), 3, "b"), None);
        let off = history_note(Ok(false), 1, "b").unwrap();
        assert!(
            off.contains(no_history) && off.contains("--bucket b"),
            "{off}"
        );
        let suspended = history_note(Ok(false), 2, "b").unwrap();
        assert!(suspended.contains("suspended"), "{suspended}");
        let unknown = history_note(Err("AccessDenied".into()), 1, "b").unwrap();
        assert!(unknown.contains("AccessDenied") && !unknown.contains(no_history));
    }
}
