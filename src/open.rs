//! Opening a runbook and its state: the options every command shares,
//! the runbook read and checked, the state's path, its lock and load, and
//! the check that the state belongs to this account and region.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::aws::{Aws, AwsOptions};
use crate::error::Failure;
use crate::runbook::{Runbook, RunbookError};
use crate::state::State;
use crate::state::backend::{Backend, Place};
use crate::state::s3::{S3Place, S3State};
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

/// The state file beside the runbook: `.rds-proxy-runbook/<name>.state.json`.
pub fn default_state_path(rb: &Runbook) -> PathBuf {
    rb.path
        .parent()
        .unwrap_or(Path::new("."))
        .join(".rds-proxy-runbook")
        .join(format!("{}.state.json", rb.name))
}

/// Where the runbook's state lives: --state (a path, or s3://BUCKET/KEY),
/// else the runbook's `[state]`, else the file beside the runbook.
pub fn state_place(rb: &Runbook, opts: &Options) -> Result<Place> {
    if let Some(given) = &opts.state {
        let text = given.to_string_lossy();
        return match S3Place::parse(&text) {
            Some(Ok(p)) => Ok(Place::S3(p)),
            Some(Err(why)) => Err(Failure::usage(format!("--state: {why}"))),
            None => Ok(Place::File(given.clone())),
        };
    }
    let Some(t) = &rb.state else {
        return Ok(Place::File(default_state_path(rb)));
    };
    let none = |_: &str, _: &str| None;
    let fill = |t: &crate::runbook::Text| {
        t.fill(&none).map_err(|_| {
            Failure::bad_input(format!(
                "{}: `{}` cannot name a step's output",
                rb.at(t.pos),
                t.key
            ))
        })
    };
    if t.bucket.unset_env {
        return Err(Failure::bad_input(format!(
            "{}: `state.bucket` comes from an environment variable that is not set: export \
             it, or give --state",
            rb.at(t.bucket.pos)
        )));
    }
    Ok(Place::S3(S3Place {
        bucket: fill(&t.bucket)?,
        key: match &t.key {
            Some(k) => fill(k)?,
            None => format!("rds-proxy-runbook/{}.state.json", rb.name),
        },
        region: t.region.clone(),
        kms_key: t.kms_key.as_ref().map(fill).transpose()?,
    }))
}

/// The runbook's state storage, opened for `command` (named in the lock and
/// in each S3 write).
pub async fn open_state(rb: &Runbook, opts: &Options, command: &str) -> Result<Backend> {
    Ok(match state_place(rb, opts)? {
        Place::File(p) => Backend::File(p),
        Place::S3(p) => {
            let client = crate::aws::s3_client(&opts.aws, rb.aws(), p.region.as_deref()).await?;
            Backend::S3(Box::new(S3State::new(p, client, command)))
        }
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

/// Refuses to act in another account or region than the state's steps did
/// (a rollback there would find nothing and call it undone); records them
/// on first use. Returns whether the state changed.
pub(crate) async fn check_place(
    state: &mut State,
    aws: &Aws,
    path: &dyn std::fmt::Display,
) -> Result<bool> {
    let account = aws.account_id().await?.to_string();
    record_place(state, &account, &aws.region, path)
}

pub(crate) fn record_place(
    state: &mut State,
    account: &str,
    region: &str,
    path: &dyn std::fmt::Display,
) -> Result<bool> {
    crate::ui::progress::member_account(account);
    if let (Some(a), Some(r)) = (&state.account, &state.region) {
        if a != account || r != region {
            return Err(Failure::bad_input(format!(
                "the state {} records steps in account {a}, region {r}, but this command \
                     would act in account {account}, region {region}: pass --region {r} or the \
                     profile of account {a}, or another --state for a new setup",
                path,
            )));
        }
        return Ok(false);
    }
    state.account = Some(account.to_string());
    state.region = Some(region.to_string());
    Ok(true)
}
