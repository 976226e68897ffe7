//! A fleet summed up: how each runbook ended (shown as it comes), what it
//! changed, the fleet's exit code, and the closing table or JSON document.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::MultiProgress;
use serde_json::{Value, json};

use super::job::Job;
use crate::error::{EXIT_BAD_INPUT, EXIT_CHANGES, EXIT_INTERRUPTED, EXIT_LOCKED, EXIT_STEP_FAILED};
use crate::ui::progress;

/// How one runbook of the fleet ended.
pub(super) struct Ended {
    pub(super) path: PathBuf,
    pub(super) name: String,
    /// None: never started (`--fail-fast` after a failure).
    pub(super) code: Option<i32>,
    pub(super) error: Option<String>,
    pub(super) account: Option<String>,
    pub(super) region: Option<String>,
    pub(super) changes: Option<usize>,
    pub(super) seconds: f64,
    pub(super) report: Option<Value>,
}

impl Ended {
    pub(super) fn not_started(path: &Path, name: String) -> Ended {
        Ended {
            path: path.to_path_buf(),
            name,
            code: None,
            error: None,
            account: None,
            region: None,
            changes: None,
            seconds: 0.0,
            report: None,
        }
    }

    pub(super) fn result(&self) -> &'static str {
        match self.code {
            None => "not started",
            Some(0) => "ok",
            Some(EXIT_CHANGES) => "changes",
            Some(EXIT_LOCKED) => "locked",
            Some(EXIT_INTERRUPTED) => "stopped",
            Some(_) => "failed",
        }
    }
}

impl Ended {
    /// A runbook's end, as it comes: its kept lines as one block (`plan`,
    /// `status`), its error, its result.
    pub(super) fn show(
        &self,
        width: usize,
        kept: Option<&[String]>,
        multi: Option<&MultiProgress>,
    ) {
        let (name, code, seconds) = (&self.name, self.code.unwrap_or(0), self.seconds);
        let mut out = Vec::new();
        if let Some(kept) = kept {
            out.push(format!("== {name}"));
            out.extend(kept.iter().cloned());
        }
        let prefix = format!("{name:<width$} |");
        if let Some(e) = &self.error
            && code != EXIT_CHANGES
        {
            for (i, l) in e.lines().enumerate() {
                out.push(match i {
                    0 => format!("{prefix} error: {l}"),
                    _ => format!("{prefix}   {l}"),
                });
            }
        }
        let mark = match code {
            0 | EXIT_CHANGES => "✓",
            _ => "✗",
        };
        out.push(format!("{prefix} {mark} done in {seconds:.1}s"));
        for l in out {
            match multi {
                Some(m) => {
                    let _ = m.println(l);
                }
                None => progress::say_line(l),
            }
        }
    }
}

/// What a runbook changed, from its command's JSON document.
pub(super) fn changes_in(job: &Job<'_>, report: &Value) -> Option<usize> {
    let label = match job {
        Job::Run { .. } => "changed",
        Job::Rollback { .. } => "undone",
        _ => return None,
    };
    Some(report["summary"][label].as_u64().unwrap_or(0) as usize)
}

/// The fleet's exit code: 0 when every runbook succeeded; else 1 when one
/// failed, 4 when the only trouble is a lock, 130 when they were stopped;
/// `plan` 6 when every runbook could be planned and one has changes.
pub(super) fn fleet_code(job: &Job<'_>, ended: &[Ended]) -> i32 {
    let codes: Vec<i32> = ended.iter().filter_map(|e| e.code).collect();
    let troubles: Vec<i32> = codes
        .iter()
        .copied()
        .filter(|c| *c != 0 && *c != EXIT_CHANGES)
        .collect();
    let detailed = matches!(job, Job::Plan { how } if how.detailed_exitcode);
    if troubles.is_empty() {
        return match codes.contains(&EXIT_CHANGES) && detailed {
            true => EXIT_CHANGES,
            false => 0,
        };
    }
    if troubles.iter().all(|c| *c == EXIT_LOCKED) {
        EXIT_LOCKED
    } else if troubles.iter().all(|c| *c == EXIT_INTERRUPTED) {
        EXIT_INTERRUPTED
    } else if troubles.iter().all(|c| *c == EXIT_BAD_INPUT) {
        EXIT_BAD_INPUT
    } else {
        EXIT_STEP_FAILED
    }
}

pub(super) fn summary(ended: &[Ended], took: Duration) {
    let rows: Vec<[String; 6]> = ended
        .iter()
        .map(|e| {
            [
                e.name.clone(),
                e.account.clone().unwrap_or_else(|| "-".into()),
                e.region.clone().unwrap_or_else(|| "-".into()),
                e.result().to_string(),
                e.changes.map_or("-".into(), |c| c.to_string()),
                format!("{:.1}s", e.seconds),
            ]
        })
        .collect();
    let head = ["RUNBOOK", "ACCOUNT", "REGION", "RESULT", "CHANGES", "TIME"].map(String::from);
    let mut widths = [0usize; 6];
    for r in std::iter::once(&head).chain(&rows) {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    progress::say_line(String::new());
    for r in std::iter::once(&head).chain(&rows) {
        let cells: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        progress::say_line(cells.join("  ").trim_end().to_string());
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for e in ended {
        *counts.entry(e.result()).or_default() += 1;
    }
    let counts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    progress::say_line(format!(
        "{} runbooks in {:.1}s: {}",
        ended.len(),
        took.as_secs_f64(),
        counts.join(", ")
    ));
}

pub(super) fn fleet_json(verb: &str, ended: &[Ended], code: i32, took: Duration) -> Value {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let runbooks: Vec<Value> = ended
        .iter()
        .map(|e| {
            *counts.entry(e.result()).or_default() += 1;
            json!({
                "file": e.path.display().to_string(),
                "runbook": e.name,
                "account": e.account,
                "region": e.region,
                "result": e.result(),
                "exit_code": e.code,
                "changes": e.changes,
                "seconds": (e.seconds * 1000.0).round() / 1000.0,
                "error": e.error,
                "report": e.report,
            })
        })
        .collect();
    json!({
        "command": verb,
        "fleet": true,
        "result": if code == 0 || code == EXIT_CHANGES { "ok" } else { "failed" },
        "exit_code": code,
        "seconds": (took.as_secs_f64() * 1000.0).round() / 1000.0,
        "summary": counts,
        "runbooks": runbooks,
    })
}
