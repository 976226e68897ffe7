//! Opening a runbook and its state: the options every command shares,
//! the runbook read and checked, the state's path, its lock and load, and
//! the check that the state belongs to this account and region.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::aws::{Aws, AwsOptions};
use crate::error::Failure;
use crate::runbook::{Runbook, RunbookError};
use crate::state::{self, State};
use crate::steps;

pub struct Options {
    pub aws: AwsOptions,
    pub state: Option<PathBuf>,
    pub no_progress: bool,
    /// `--output` of run, resume, rollback and status.
    pub output: crate::cli::Output,
}

/// How `${env.*}` references are filled.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum EnvMode {
    /// Every reference must be set: the values are about to be used.
    Strict,
    /// Unset references become placeholders: `status` and `rollback` work
    /// from the state alone, in a shell without the exports.
    Lenient,
}

pub fn load_runbook(path: &Path, mode: EnvMode) -> Result<Runbook, RunbookError> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    Runbook::load(path, &env, mode == EnvMode::Lenient, &steps::Catalogue)
}

/// The state file: --state, or `.rds-proxy-runbook/<name>.state.json`
/// beside the runbook.
pub fn state_path(rb: &Runbook, opts: &Options) -> PathBuf {
    opts.state.clone().unwrap_or_else(|| {
        rb.path
            .parent()
            .unwrap_or(Path::new("."))
            .join(".rds-proxy-runbook")
            .join(format!("{}.state.json", rb.name))
    })
}

/// The command line to type to continue, for hints.
pub(crate) fn command_hint(verb: &str, rb: &Runbook, opts: &Options) -> String {
    let mut s = format!("rds-proxy-runbook {verb} {}", rb.path.display());
    if let Some(p) = &opts.state {
        s.push_str(&format!(" --state {}", p.display()));
    }
    s
}

pub(crate) fn state_error(e: state::StateError) -> anyhow::Error {
    match e {
        state::StateError::Locked { .. } => Failure::locked(e.to_string()),
        _ => Failure::bad_input(e.to_string()),
    }
}

pub(crate) fn save(state: &State, path: &Path) -> Result<()> {
    state.save(path).map_err(state_error)
}

/// Refuses to act in another account or region than the state's steps did
/// (a rollback there would find nothing and call it undone); records them
/// on first use. Returns whether the state changed.
pub(crate) async fn check_place(state: &mut State, aws: &Aws, path: &Path) -> Result<bool> {
    let account = aws.account_id().await?.to_string();
    record_place(state, &account, &aws.region, path)
}

pub(crate) fn record_place(
    state: &mut State,
    account: &str,
    region: &str,
    path: &Path,
) -> Result<bool> {
    if let (Some(a), Some(r)) = (&state.account, &state.region) {
        if a != account || r != region {
            return Err(Failure::bad_input(format!(
                "the state {} records steps in account {a}, region {r}, but this command \
                     would act in account {account}, region {region}: pass --region {r} or the \
                     profile of account {a}, or another --state for a new setup",
                path.display(),
            )));
        }
        return Ok(false);
    }
    state.account = Some(account.to_string());
    state.region = Some(region.to_string());
    Ok(true)
}
