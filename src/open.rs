//! Opening a runbook and its state: the options every command shares,
//! the runbook read and checked, the state's path, its lock and load, and
//! the check that the state belongs to this account and region.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::aws::{Aws, AwsOptions};
use crate::error::Failure;
use crate::runbook::{Diagnostic, Runbook, RunbookError, Text};
use crate::state::State;
use crate::state::backend::{Backend, StatePlace};
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

/// The SDK clients for the runbook's calls, once the runbook's values that
/// name a region (a secret's ARN, a function's) are checked against the
/// region the calls go to: the mismatch is known without a call, and would
/// otherwise surface later as a secret that "does not exist".
pub async fn connect(rb: &Runbook, opts: &Options) -> Result<Aws> {
    let aws = Aws::connect(&opts.aws, rb.aws()).await?;
    let diagnostics = region_mismatches(rb, &aws.region);
    if !diagnostics.is_empty() {
        return Err(RunbookError {
            path: rb.path.clone(),
            source: std::fs::read_to_string(&rb.path).ok(),
            diagnostics,
        }
        .into());
    }
    Ok(aws)
}

/// Each ARN of the runbook in another region than `region`. Pure.
pub fn region_mismatches(rb: &Runbook, region: &str) -> Vec<Diagnostic> {
    let arn_region = |t: &Text| {
        let value = t.literal().filter(|_| !t.unset_env)?;
        let r = value.strip_prefix("arn:")?.split(':').nth(2)?.to_string();
        (!r.is_empty() && r != region).then_some(r)
    };
    let elsewhere = |r: &str| {
        format!(
            "if the setup is there, run in {r} (--region {r}, or `region = \"{r}\"` in the \
             runbook), else give the ARN of one in {region}"
        )
    };
    let mut out = Vec::new();
    let secrets = rb
        .database
        .secret_arn
        .iter()
        .chain(rb.auth.iter().map(|a| &a.secret_arn));
    for t in secrets {
        if let Some(r) = arn_region(t) {
            out.push(Diagnostic {
                pos: t.pos,
                key: t.key.clone(),
                message: format!(
                    "the secret is in region {r} (its ARN says so), but this command works in \
                     {region}, where the proxy is made and reads its secrets: {} (a replica: \
                     aws secretsmanager replicate-secret-to-regions --secret-id ARN \
                     --add-replica-regions Region={region})",
                    elsewhere(&r)
                ),
            });
        }
    }
    for l in &rb.lambdas {
        if let Some(r) = arn_region(&l.function_name) {
            out.push(Diagnostic {
                pos: l.function_name.pos,
                key: l.function_name.key.clone(),
                message: format!(
                    "the function is in region {r} (its ARN says so), but this command works \
                     in {region}, where the proxy is made: a function reaches a proxy of its \
                     own region; {}",
                    elsewhere(&r)
                ),
            });
        }
    }
    out.sort_by_key(|d| d.pos);
    out
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
pub fn state_place(rb: &Runbook, opts: &Options) -> Result<StatePlace> {
    if let Some(given) = &opts.state {
        let text = given.to_string_lossy();
        return match S3Place::parse(&text) {
            Some(Ok(p)) => Ok(StatePlace::S3(p)),
            Some(Err(why)) => Err(Failure::usage(format!("--state: {why}"))),
            None => Ok(StatePlace::File(given.clone())),
        };
    }
    let Some(t) = &rb.state else {
        return Ok(StatePlace::File(default_state_path(rb)));
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
    Ok(StatePlace::S3(S3Place {
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
        StatePlace::File(p) => Backend::File(p),
        StatePlace::S3(p) => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_of_another_region_are_named_at_their_keys() {
        let src = std::fs::read_to_string("runbooks/template.toml").unwrap();
        let path = std::path::Path::new("runbooks/template.toml");
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db";
        let env = |_: &str| None;
        let rb =
            Runbook::parse(path, &src, &env, &steps::Catalogue).unwrap_or_else(|e| panic!("{e}"));
        let secret = rb
            .database
            .secret_arn
            .as_ref()
            .and_then(Text::literal)
            .unwrap();
        let home = secret.split(':').nth(3).unwrap().to_string();
        assert!(region_mismatches(&rb, &home).is_empty());
        let d = region_mismatches(&rb, "ap-south-1");
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].key, "database.secret_arn");
        assert!(
            d[0].message.contains(&format!("in region {home}")),
            "{}",
            d[0].message
        );
        let moved = src.replace(&secret, arn).replace(
            "function_name = \"my-app\"",
            "function_name = \"arn:aws:lambda:eu-west-1:123456789012:function:my-app\"",
        );
        let rb =
            Runbook::parse(path, &moved, &env, &steps::Catalogue).unwrap_or_else(|e| panic!("{e}"));
        let keys: Vec<String> = region_mismatches(&rb, "us-east-1")
            .into_iter()
            .map(|d| d.key)
            .collect();
        assert_eq!(keys, ["database.secret_arn", "lambda[0].function_name"]);
        assert!(region_mismatches(&rb, "eu-west-1").is_empty());
    }
}
