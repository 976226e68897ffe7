//! The orchestrator: load the runbook and the state, take the lock, and
//! drive each step's check / apply / rollback, saving the state after every
//! transition.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::Value;

use crate::aws::{Aws, AwsOptions};
use crate::cli::Selection;
use crate::poll::{self, Interrupted};
use crate::progress::Progress;
use crate::runbook::{Runbook, RunbookError};
use crate::state::{self, Event, Lock, State, Status};
use crate::steps::{self, Ctx, Found, Resolver, Step, Undone};

/// An error that ends the command with a specific exit code.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Exit {
    pub code: i32,
    pub message: String,
}

pub const EXIT_STEP_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_BAD_INPUT: i32 = 3;
pub const EXIT_LOCKED: i32 = 4;
pub const EXIT_PREFLIGHT: i32 = 5;
pub const EXIT_INTERRUPTED: i32 = 130;

pub(crate) fn exit(code: i32, message: impl Into<String>) -> anyhow::Error {
    Exit {
        code,
        message: message.into(),
    }
    .into()
}

pub struct Options {
    pub aws: AwsOptions,
    pub state: Option<PathBuf>,
    pub no_progress: bool,
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
    Runbook::load(path, &env, mode == EnvMode::Lenient)
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
fn command_hint(verb: &str, rb: &Runbook, opts: &Options) -> String {
    let mut s = format!("rds-proxy-runbook {verb} {}", rb.path.display());
    if let Some(p) = &opts.state {
        s.push_str(&format!(" --state {}", p.display()));
    }
    s
}

/// Asks before a change when on a terminal; off a terminal, --yes is the
/// only way to agree.
fn confirm(question: &str, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(exit(
            EXIT_USAGE,
            "stdin is not a terminal, so there is no one to confirm: pass --yes",
        ));
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(exit(EXIT_STEP_FAILED, "cancelled; nothing was changed"))
    }
}

/// The outputs of applied steps, for `${steps.*}` references.
fn lookup_in(state: &State) -> impl Fn(&str, &str) -> Option<String> + '_ {
    |step, output| {
        state
            .record(step)
            .filter(|r| r.status == Status::Applied)
            .and_then(|r| r.outputs.get(output).cloned())
    }
}

pub(crate) fn resolve(
    step: &dyn Step,
    rb: &Runbook,
    state: &State,
) -> (Value, Vec<(String, String)>) {
    let lookup = lookup_in(state);
    let mut r = Resolver::new(&lookup);
    let inputs = step.inputs(rb, &mut r);
    (inputs, r.missing)
}

/// The steps whose outputs are missing, once each, in order.
pub(crate) fn needs(missing: &[(String, String)]) -> String {
    let mut steps: Vec<&str> = Vec::new();
    for (step, _) in missing {
        if !steps.contains(&step.as_str()) {
            steps.push(step);
        }
    }
    steps.join(", ")
}

/// Top-level input fields that differ between two input documents.
fn changed_fields(old: Option<&Value>, new: &Value) -> Vec<String> {
    let (Some(Value::Object(old)), Value::Object(new)) = (old, new) else {
        return vec!["(inputs)".into()];
    };
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| old.get(*k) != new.get(*k))
        .map(|k| {
            let show = |v: Option<&Value>| v.map_or("(none)".to_string(), compact);
            format!("{k}: {} -> {}", show(old.get(k)), show(new.get(k)))
        })
        .collect()
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => {
            let s = other.to_string();
            if s.len() > 120 {
                format!("{}...", &s[..117])
            } else {
                s
            }
        }
    }
}

fn select<'a>(rb: &'a Runbook, sel: &Selection) -> Result<Vec<&'a str>> {
    let names: Vec<&str> = rb.step_names().collect();
    let index = |name: &str| {
        names.iter().position(|n| *n == name).ok_or_else(|| {
            let hint = crate::runbook::closest(name, &names)
                .map_or(String::new(), |s| format!("did you mean `{s}`? "));
            exit(
                EXIT_USAGE,
                format!(
                    "runbook `{}` has no step `{name}`; {hint}its steps are: {}",
                    rb.name,
                    names.join(", ")
                ),
            )
        })
    };
    if let Some(s) = &sel.step {
        let i = index(s)?;
        return Ok(vec![names[i]]);
    }
    let from = sel.from.as_deref().map(index).transpose()?.unwrap_or(0);
    let until = sel
        .until
        .as_deref()
        .map(index)
        .transpose()?
        .unwrap_or(names.len() - 1);
    if from > until {
        return Err(exit(
            EXIT_USAGE,
            format!(
                "--from {} comes after --until {} in the runbook",
                names[from], names[until]
            ),
        ));
    }
    Ok(names[from..=until].to_vec())
}

/// The inputs that changed since `name` was applied, if any. A step that
/// only verifies changed nothing, so an edit of its inputs does not count.
pub(crate) fn edited_since_applied(name: &str, rb: &Runbook, state: &State) -> Option<String> {
    let step = steps::get(name)?;
    let rec = state.record(name).filter(|r| r.status == Status::Applied)?;
    if !step.changes_account() {
        return None;
    }
    let (inputs, missing) = resolve(step, rb, state);
    (missing.is_empty() && rec.checksum.as_deref() != Some(&state::checksum(&inputs)))
        .then(|| changed_fields(rec.inputs.as_ref(), &inputs).join("; "))
}

pub(crate) fn state_error(e: state::StateError) -> anyhow::Error {
    let code = match e {
        state::StateError::Locked { .. } => EXIT_LOCKED,
        _ => EXIT_BAD_INPUT,
    };
    exit(code, e.to_string())
}

fn save(state: &State, path: &Path) -> Result<()> {
    state.save(path).map_err(state_error)
}

/// Refuses to act in another account or region than the state's steps did
/// (a rollback there would find nothing and call it undone); records them
/// on first use. Returns whether the state changed.
pub(crate) async fn check_place(state: &mut State, aws: &Aws, path: &Path) -> Result<bool> {
    let account = aws.account_id().await?.to_string();
    if let (Some(a), Some(r)) = (&state.account, &state.region) {
        if *a != account || *r != aws.region {
            return Err(exit(
                EXIT_BAD_INPUT,
                format!(
                    "the state {} records steps in account {a}, region {r}, but this command \
                     would act in account {account}, region {}: pass --region {r} or the \
                     profile of account {a}, or another --state for a new setup",
                    path.display(),
                    aws.region
                ),
            ));
        }
        return Ok(false);
    }
    state.account = Some(account);
    state.region = Some(aws.region.clone());
    Ok(true)
}

/// Prints a preflight report: every check when `all`, else only the
/// problems, and a summary line.
pub fn print_preflight(report: &crate::preflight::Report, all: bool) {
    if all {
        for c in &report.checked {
            println!("  ✓ {c}");
        }
    }
    for p in &report.problems {
        println!("  ✗ {}\n      fix: {}", p.what, p.fix);
    }
    let (passed, problems) = (report.checked.len(), report.problems.len());
    if problems == 0 {
        println!("Preflight: all {passed} checks passed.");
    } else {
        println!("Preflight: {passed} checks passed, {problems} problem(s).");
    }
}

/// Runs preflight and prints it; Err (exit 5) when it found problems.
async fn preflight_checks(rb: &Runbook, aws: &Aws, all: bool) -> Result<()> {
    let report = crate::preflight::run(rb, aws).await?;
    print_preflight(&report, all);
    match report.problems.len() {
        0 => Ok(()),
        n => Err(exit(
            EXIT_PREFLIGHT,
            format!(
                "preflight found {n} problem(s) in the account (listed above); nothing was changed"
            ),
        )),
    }
}

pub async fn preflight(runbook: &Path, opts: &Options) -> Result<()> {
    let rb = load_runbook(runbook, EnvMode::Strict)?;
    let aws = Aws::connect(&opts.aws, rb.region.as_deref()).await?;
    println!("Preflight for runbook `{}` in {}:", rb.name, aws.region);
    preflight_checks(&rb, &aws, true).await
}

pub async fn run(
    runbook: &Path,
    sel: &Selection,
    yes: bool,
    resume: bool,
    opts: &Options,
) -> Result<()> {
    let rb = load_runbook(runbook, EnvMode::Strict)?;
    let selected = select(&rb, sel)?;
    let path = state_path(&rb, opts);
    if resume && !State::exists(&path) {
        return Err(exit(
            EXIT_USAGE,
            format!(
                "there is no state at {}: nothing to resume; start with `{}`",
                path.display(),
                command_hint("run", &rb, opts)
            ),
        ));
    }
    let _lock = Lock::acquire(&path).map_err(state_error)?;
    let mut state = State::load(&path, &rb.name).map_err(state_error)?;

    // Catch a runbook edited after a step was applied before touching AWS.
    for name in &selected {
        if let Some(changes) = edited_since_applied(name, &rb, &state) {
            let back_to = rb
                .step_names()
                .take_while(|n| n != name)
                .last()
                .map_or_else(
                    || format!("{} --yes", command_hint("rollback", &rb, opts)),
                    |prev| format!("{} --to {prev} --yes", command_hint("rollback", &rb, opts)),
                );
            return Err(exit(
                EXIT_BAD_INPUT,
                format!(
                    "the runbook changed after step `{name}` was applied ({changes}); \
                     nothing was changed. Undo the edit, or roll back from that step (which \
                     also undoes every step after it) and run again: `{back_to}` then `{}`",
                    command_hint("run", &rb, opts)
                ),
            ));
        }
    }

    let verb = if resume { "Resume" } else { "Run" };
    if resume
        && selected
            .iter()
            .all(|n| matches!(state.status(n), Status::RolledBack | Status::Pending))
    {
        println!("Every step is pending or rolled back: resume starts the run over.");
    }
    confirm(
        &format!(
            "{verb} {} step(s) of runbook `{}` ({}); each checks the account before acting. Continue?",
            selected.len(),
            rb.name,
            selected.join(", ")
        ),
        yes,
    )?;
    let aws = Aws::connect(&opts.aws, rb.region.as_deref()).await?;
    if check_place(&mut state, &aws, &path).await? && !state.steps.is_empty() {
        save(&state, &path)?;
    }
    preflight_checks(&rb, &aws, false).await?;
    let progress = Progress::new(opts.no_progress);
    progress.line(format!(
        "{verb} of runbook `{}` in {}; state: {}",
        rb.name,
        aws.region,
        path.display()
    ));

    let (mut changed, mut verified) = (0, 0);
    for name in &selected {
        if poll::interrupted() {
            return Err(interrupted(&rb, opts));
        }
        let step = steps::get(name).expect("validated");
        let (inputs, missing) = resolve(step, &rb, &state);
        if let Some((first, output)) = missing.first() {
            return Err(exit(
                EXIT_USAGE,
                format!(
                    "step `{name}` needs outputs of {} (such as `{first}.{output}`), which \
                     are not applied: run them first, e.g. `{} --step {first}`",
                    needs(&missing),
                    command_hint("run", &rb, opts)
                ),
            ));
        }
        let checksum = state::checksum(&inputs);
        let was = state.status(name);
        let bar = progress.step(name);
        let cx = Ctx {
            aws: &aws,
            runbook: &rb.name,
            bar: &bar,
        };
        // A verification changes nothing, so it has nothing to check first.
        let verb = if step.changes_account() {
            "checking"
        } else {
            "running"
        };
        bar.set(format!("{verb} {}", step.describe(&inputs)?));
        let found = if step.changes_account() {
            match step.check(&cx, &inputs).await {
                Ok(f) => f,
                Err(e) => {
                    bar.finish("✗", "check failed");
                    return Err(fail(&mut state, &path, name, &e, &rb, opts));
                }
            }
        } else {
            Found::Missing
        };
        tracing::debug!(step = %name, ?found, "checked the account");
        match found {
            Found::Done(outputs) => {
                let rec = state.record(name);
                let unchanged = was == Status::Applied
                    && rec.is_some_and(|r| {
                        r.outputs == outputs && r.checksum.as_ref() == Some(&checksum)
                    });
                if !unchanged {
                    let rec = state
                        .advance(name, Event::Applied)
                        .map_err(anyhow::Error::msg)?;
                    rec.outputs = outputs;
                    rec.inputs = Some(inputs);
                    rec.checksum = Some(checksum);
                    rec.error = None;
                    save(&state, &path)?;
                }
                let note = if was == Status::Applied {
                    "already done, no change"
                } else {
                    "found done in the account, recorded, no change"
                };
                bar.finish("=", note);
            }
            Found::Missing | Found::Incomplete(_) => {
                let finishing = match &found {
                    Found::Incomplete(why) => {
                        progress.line(format!("  {name}: {why}"));
                        true
                    }
                    _ => false,
                };
                if !finishing && was == Status::Applied && step.changes_account() {
                    progress.line(format!(
                        "  note: step `{name}` was applied but is missing from the account \
                         (deleted by hand?); creating it again"
                    ));
                }
                // What the step replaces, read once before it first acts: a
                // retry must not mistake our own change for the original.
                let mut before = state.record(name).and_then(|r| r.before.clone());
                if before.is_none() {
                    before = match step.before(&cx, &inputs).await {
                        Ok(b) => b,
                        Err(e) => {
                            bar.finish("✗", "failed");
                            return Err(fail(&mut state, &path, name, &e, &rb, opts));
                        }
                    };
                }
                let rec = state
                    .advance(name, Event::Start)
                    .map_err(anyhow::Error::msg)?;
                rec.inputs = Some(inputs.clone());
                rec.checksum = Some(checksum);
                rec.before = before;
                rec.outputs.clear();
                rec.error = None;
                save(&state, &path)?;
                crate::failpoint::hit(name, "before-apply");
                match step.apply(&cx, &inputs).await {
                    Ok(outputs) => {
                        crate::failpoint::hit(name, "after-apply");
                        let rec = state
                            .advance(name, Event::Applied)
                            .map_err(anyhow::Error::msg)?;
                        rec.outputs = outputs;
                        save(&state, &path)?;
                        let what = step.describe(&inputs)?;
                        if !step.changes_account() {
                            verified += 1;
                            let response = state.record(name).map(|r| {
                                r.outputs.values().cloned().collect::<Vec<_>>().join("; ")
                            });
                            bar.finish(
                                "✓",
                                format!("verified: {what}: {}", response.unwrap_or_default()),
                            );
                        } else if finishing {
                            changed += 1;
                            bar.finish("✓", format!("finished: {what}"));
                        } else {
                            changed += 1;
                            bar.finish("✓", format!("created: {what}"));
                        }
                    }
                    Err(e) if e.downcast_ref::<Interrupted>().is_some() => {
                        // The step stays `started`: resume re-checks it.
                        bar.finish("✗", "interrupted");
                        return Err(interrupted(&rb, opts));
                    }
                    Err(e) => {
                        bar.finish("✗", "failed");
                        return Err(fail(&mut state, &path, name, &e, &rb, opts));
                    }
                }
            }
            Found::Drifted(diffs) => {
                bar.finish("✗", "drifted");
                let e = anyhow::anyhow!(
                    "{} differs from the runbook: {}. Fix the runbook to match, or roll the step back and run again",
                    step.describe(&inputs)?,
                    diffs.join("; ")
                );
                return Err(fail(&mut state, &path, name, &e, &rb, opts));
            }
            Found::Foreign(why) => {
                bar.finish("✗", "blocked");
                return Err(fail(
                    &mut state,
                    &path,
                    name,
                    &anyhow::anyhow!(why),
                    &rb,
                    opts,
                ));
            }
        }
    }
    let verified_note = match verified {
        0 => String::new(),
        n => format!("; {n} verification(s) passed"),
    };
    if changed == 0 {
        println!(
            "No changes: {} step(s) checked, all already done{verified_note}.",
            selected.len()
        );
    } else {
        println!(
            "Done: {changed} step(s) applied, {} already done{verified_note}.",
            selected.len() - changed - verified
        );
    }
    Ok(())
}

fn interrupted(rb: &Runbook, opts: &Options) -> anyhow::Error {
    exit(
        EXIT_INTERRUPTED,
        format!(
            "interrupted; the state is saved. To continue: {}",
            command_hint("resume", rb, opts)
        ),
    )
}

/// Records a failed step and builds the error that names the way on.
fn fail(
    state: &mut State,
    path: &Path,
    name: &str,
    err: &anyhow::Error,
    rb: &Runbook,
    opts: &Options,
) -> anyhow::Error {
    let message = format!("{err:#}");
    if let Ok(rec) = state.advance(name, Event::Fail) {
        rec.error = Some(message.clone());
    }
    if let Err(e) = save(state, path) {
        return e;
    }
    exit(
        EXIT_STEP_FAILED,
        format!(
            "step `{name}` failed: {message}\nTo continue after fixing it: {}\nTo undo: {}",
            command_hint("resume", rb, opts),
            command_hint("rollback", rb, opts)
        ),
    )
}

pub fn status(runbook: &Path, opts: &Options) -> Result<()> {
    let rb = load_runbook(runbook, EnvMode::Lenient)?;
    let path = state_path(&rb, opts);
    let exists = State::exists(&path);
    let state = State::load(&path, &rb.name).map_err(state_error)?;
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

/// The runbook's steps, then any step the state knows that the runbook no
/// longer lists (still ours to roll back).
fn order_for_status(rb: &Runbook, state: &State) -> Vec<String> {
    let mut names: Vec<String> = rb.step_names().map(String::from).collect();
    for known in steps::names() {
        if state.steps.contains_key(known) && !names.iter().any(|n| n == known) {
            names.push(known.to_string());
        }
    }
    names
}

pub async fn rollback(runbook: &Path, to: Option<&str>, yes: bool, opts: &Options) -> Result<()> {
    let rb = load_runbook(runbook, EnvMode::Lenient)?;
    let path = state_path(&rb, opts);
    let _lock = Lock::acquire(&path).map_err(state_error)?;
    let mut state = State::load(&path, &rb.name).map_err(state_error)?;
    let order = order_for_status(&rb, &state);
    let keep = match to {
        Some(t) => {
            order.iter().position(|n| n == t).ok_or_else(|| {
                exit(
                    EXIT_USAGE,
                    format!(
                        "--to {t}: no such step; the steps are: {}",
                        order.join(", ")
                    ),
                )
            })? + 1
        }
        None => 0,
    };
    let undo: Vec<String> = order[keep..]
        .iter()
        .rev()
        .filter(|n| state.status(n).may_have_changed_account())
        .cloned()
        .collect();
    if undo.is_empty() {
        match to {
            Some(t) => {
                println!("Nothing to roll back: no step after `{t}` has changed the account.")
            }
            None => println!("Nothing to roll back: no step has changed the account."),
        }
        return Ok(());
    }
    confirm(
        &format!(
            "Roll back {} step(s) of runbook `{}` ({}), deleting only what this runbook created?",
            undo.len(),
            rb.name,
            undo.join(", ")
        ),
        yes,
    )?;
    let aws = Aws::connect(&opts.aws, rb.region.as_deref()).await?;
    if check_place(&mut state, &aws, &path).await? {
        save(&state, &path)?;
    }
    let progress = Progress::new(opts.no_progress);
    progress.line(format!(
        "Rollback of runbook `{}` in {}; state: {}",
        rb.name,
        aws.region,
        path.display()
    ));
    for name in &undo {
        if poll::interrupted() {
            return Err(exit(
                EXIT_INTERRUPTED,
                format!(
                    "interrupted; the state is saved. To continue: {}",
                    command_hint("rollback", &rb, opts)
                ),
            ));
        }
        let step = steps::get(name).expect("known step");
        let rec = state.record(name).cloned().unwrap_or_default();
        let bar = progress.step(name);
        let Some(inputs) = rec.inputs else {
            // Never got as far as acting: nothing in the account to undo.
            state
                .advance(name, Event::RolledBack)
                .map_err(anyhow::Error::msg)?;
            save(&state, &path)?;
            bar.finish("=", "nothing to undo");
            continue;
        };
        let cx = Ctx {
            aws: &aws,
            runbook: &rb.name,
            bar: &bar,
        };
        crate::failpoint::hit(name, "before-rollback");
        match step.rollback(&cx, &inputs, rec.before.as_ref()).await {
            Ok(undone) => {
                crate::failpoint::hit(name, "after-rollback");
                let rec = state
                    .advance(name, Event::RolledBack)
                    .map_err(anyhow::Error::msg)?;
                rec.outputs.clear();
                rec.before = None;
                rec.error = None;
                save(&state, &path)?;
                match undone {
                    Undone::Done(msg) => bar.finish("✓", msg),
                    Undone::AlreadyGone(msg) => bar.finish("=", msg),
                    Undone::LeftAlone(msg) => bar.finish("!", format!("left alone: {msg}")),
                }
            }
            Err(e) => {
                bar.finish("✗", "rollback failed");
                let message = format!("{e:#}");
                if let Some(rec) = state.steps.get_mut(name.as_str()) {
                    rec.error = Some(format!("rollback: {message}"));
                }
                save(&state, &path)?;
                return Err(exit(
                    EXIT_STEP_FAILED,
                    format!(
                        "rolling back step `{name}` failed: {message}\nFix it and run again: {}",
                        command_hint("rollback", &rb, opts)
                    ),
                ));
            }
        }
    }
    println!("Rolled back {} step(s).", undo.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_fields_names_each_difference() {
        let old: Value = serde_json::json!({"role_name": "a", "tags": {"x": "1"}, "same": 1});
        let new: Value = serde_json::json!({"role_name": "b", "tags": {"x": "2"}, "same": 1});
        let diffs = changed_fields(Some(&old), &new);
        assert_eq!(diffs.len(), 2);
        assert_eq!(diffs[0], "role_name: a -> b");
        assert!(diffs[1].starts_with("tags: "));
    }
}
