//! A fleet: `run`, `resume`, `plan`, `status` or `rollback` of several
//! runbooks in one command (files, or folders of them). Each keeps its own
//! state and lock; up to `--parallel` run at once, each as its own command
//! would, and one's failure stops the others only with `--fail-fast`.
//! Their waits share their looks per account and region (see `rounds`),
//! their calls one rate limit per service and place (see `aws`).
//!
//! Before anything is called, the runbooks are read and compared: two
//! that would act on the same thing (a name, a state, a proxy, a
//! function's variable) are refused by `run` and `resume`, and shown by
//! the others.
//!
//! Here the fleet runs; `job.rs` says what each runbook does, `compare.rs`
//! reads and compares them first, `summary.rs` sums them up; tests in
//! `tests.rs`.

mod compare;
mod job;
mod summary;
#[cfg(test)]
mod tests;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use futures_util::StreamExt;
use indicatif::{MultiProgress, ProgressDrawTarget};

use crate::aws::{Place, env_var};
use crate::cli::{Fleet, Output};
use crate::commands::plan::PlanHow;
use crate::commands::{plan, rollback, run, status};
use crate::engine::runner::RunHow;
use crate::error::{EXIT_CHANGES, Failure, code_of};
use crate::open::{EnvMode, Options, load_runbook, state_place};
use crate::runbook;
use crate::ui::progress::{self, Member};
use crate::ui::prompt::confirm;
pub use compare::single;
use compare::{collisions, expand};
pub use job::Job;
use summary::{Ended, changes_in, fleet_code, fleet_json, summary};

pub async fn fleet(paths: &[PathBuf], job: Job<'_>, fleet: Fleet, opts: &Options) -> Result<()> {
    let verb = job.verb();
    if opts.state.is_some() {
        return Err(Failure::usage(
            "--state names one state, and a fleet has one per runbook: set each runbook's \
             `[state]` (or leave it beside the runbook)",
        ));
    }
    let files = expand(paths)?;
    let mode = match job {
        Job::Status { .. } | Job::Rollback { .. } => EnvMode::Lenient,
        _ => EnvMode::Strict,
    };
    // Every runbook read and checked before any call: a bad one stops the
    // fleet with nothing changed.
    let mut books = Vec::new();
    let mut bad = Vec::new();
    for f in &files {
        match load_runbook(f, mode) {
            Ok(rb) => books.push(rb),
            Err(e) => bad.push(format!("{}: {}", f.display(), runbook::render(&e, false))),
        }
    }
    if !bad.is_empty() {
        return Err(Failure::bad_input(format!(
            "{} of the fleet's {} runbooks cannot be used; nothing was done:\n{}",
            bad.len(),
            files.len(),
            bad.join("\n")
        )));
    }
    let mut described = Vec::new();
    for (f, rb) in files.iter().zip(&books) {
        let state = state_place(rb, opts)?.to_string();
        described.push((
            f.as_path(),
            rb,
            Place::expected(&opts.aws, rb.aws(), &env_var),
            state,
        ));
    }
    let clashes = collisions(&described);
    let refused = matches!(job, Job::Run { .. });
    if refused && clashes.iter().any(|(refuse, _)| *refuse) {
        return Err(Failure::bad_input(format!(
            "the fleet's runbooks collide; nothing was done:\n  {}",
            clashes
                .iter()
                .map(|(_, c)| c.as_str())
                .collect::<Vec<_>>()
                .join("\n  ")
        )));
    }
    for (_, c) in &clashes {
        progress::say_line(format!("warning: {c}"));
    }
    if job.acts() {
        let yes = match &job {
            Job::Run { how, .. } => how.yes,
            Job::Rollback { yes, .. } => *yes,
            _ => true,
        };
        let names: Vec<&str> = books.iter().map(|b| b.name.as_str()).collect();
        confirm(
            &format!(
                "{} {} runbooks ({}), up to {} at once; each checks the account before acting. \
                 Continue?",
                capitalized(verb),
                books.len(),
                names.join(", "),
                fleet.parallel
            ),
            yes,
        )?;
    }

    let width = books.iter().map(|b| b.name.len()).max().unwrap_or(0);
    let live = job.acts()
        && !opts.no_progress
        && !progress::to_stderr()
        && std::io::stdout().is_terminal();
    let multi = live.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stdout()));
    let keep = matches!(job, Job::Plan { .. } | Job::Status { .. });
    let stop = std::sync::atomic::AtomicBool::new(false);
    let started = Instant::now();
    let job = &job;
    let (stop, multi) = (&stop, multi.as_ref());
    let runs = described.iter().map(|(path, rb, place, _)| async move {
        let name = rb.name.clone();
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            return Ended::not_started(path, name);
        }
        let member = Member::new(&name, width, keep, multi);
        let t0 = Instant::now();
        let profile = opts.aws.profile.clone().or_else(|| rb.profile.clone());
        let command = crate::aws::with_profile(profile, one(job, path, opts));
        let outcome = member.clone().scope(command).await;
        let seconds = t0.elapsed().as_secs_f64();
        let (kept, report, account) = member.finish();
        let (code, error) = match &outcome {
            Ok(()) => (0, None),
            Err(e) => (code_of(e), Some(error_text(e))),
        };
        if code != 0 && code != EXIT_CHANGES && fleet.fail_fast {
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            // The others stop as Ctrl-C stops one: after the call in
            // flight, with the state saved.
            crate::poll::interrupt();
        }
        // What the command found, else what the fleet could tell.
        let said = |key: &str| {
            let value = report.as_ref()?.get(key)?.as_str()?;
            Some(value.to_string())
        };
        let account = account.or_else(|| said("account"));
        let region = said("region").or_else(|| Some(place.region.clone()).filter(|r| r != "?"));
        let changes = report.as_ref().and_then(|r| changes_in(job, r));
        let ended = Ended {
            path: path.to_path_buf(),
            name,
            code: Some(code),
            error,
            account,
            region,
            changes,
            seconds,
            report,
        };
        ended.show(width, keep.then_some(&kept[..]), multi);
        ended
    });
    let ended: Vec<Ended> = futures_util::stream::iter(runs)
        .buffered(usize::from(fleet.parallel))
        .collect()
        .await;
    let code = fleet_code(job, &ended);
    match opts.output {
        Output::Json => progress::emit_json(&fleet_json(verb, &ended, code, started.elapsed())),
        Output::Text => summary(&ended, started.elapsed()),
    }
    match code {
        0 => Ok(()),
        EXIT_CHANGES => Err(Failure::Changes.into()),
        _ => Err(Failure::Fleet(code).into()),
    }
}

fn capitalized(verb: &str) -> String {
    let mut c = verb.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// The runbook's own command, as it would run alone (asked once for the
/// fleet), its JSON document kept for the fleet's summary.
async fn one(job: &Job<'_>, path: &Path, opts: &Options) -> Result<()> {
    let output = match job {
        Job::Run { .. } | Job::Rollback { .. } => Output::Json,
        _ => opts.output,
    };
    let opts = Options {
        aws: opts.aws.clone(),
        state: None,
        no_progress: opts.no_progress,
        output,
    };
    match job {
        Job::Run { select, how } => {
            let how = RunHow { yes: true, ..*how };
            run::run(path, select, how, None, &opts).await
        }
        Job::Plan { how } => {
            let how = PlanHow {
                output,
                detailed_exitcode: true,
                ..*how
            };
            plan::plan(path, how, None, &opts).await
        }
        Job::Status { history } => status::status(path, *history, &opts).await,
        Job::Rollback {
            to,
            include_adopted,
            ..
        } => rollback::rollback(path, *to, true, *include_adopted, &opts).await,
    }
}

fn error_text(e: &anyhow::Error) -> String {
    match e.downcast_ref::<runbook::RunbookError>() {
        Some(rb) => runbook::render(rb, false),
        None => format!("{e:#}"),
    }
}
