//! The orchestrator: load the runbook and the state, take the lock, and
//! drive each step's check / apply / rollback, saving the state after every
//! transition.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::Result;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use serde_json::Value;

use crate::aws::{Aws, AwsOptions};
use crate::error::{EXIT_INTERRUPTED, Failure, code_of};
use crate::cli::Selection;
use crate::poll::{self, Interrupted};
use crate::progress::{Progress, StepBar};
use crate::runbook::{Runbook, RunbookError};
use crate::state::{self, Event, Lock, Origin, State, Status};
use crate::steps::{self, Ctx, Found, Resolver, Step, Undone};

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
        return Err(Failure::usage("stdin is not a terminal, so there is no one to confirm: pass --yes",
        ));
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
        Ok(())
    } else {
        Err(Failure::steps_failed("cancelled; nothing was changed"))
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
pub(crate) fn needs(missing: &[(String, String)]) -> Vec<&str> {
    let mut steps: Vec<&str> = Vec::new();
    for (step, _) in missing {
        if !steps.contains(&step.as_str()) {
            steps.push(step);
        }
    }
    steps
}

/// The input fields that differ between two input documents, each whole:
/// objects are followed down to the fields that changed (`pool.max_...`),
/// any other value is shown in full.
fn changed_fields(old: Option<&Value>, new: &Value) -> Vec<String> {
    let Some(old) = old else {
        return vec!["(inputs): none recorded".into()];
    };
    let mut out = Vec::new();
    diff_into("", old, new, &mut out);
    out
}

fn diff_into(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut keys: Vec<&String> = o.keys().chain(n.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let at = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (o.get(k), n.get(k)) {
                    (Some(a), Some(b)) => diff_into(&at, a, b, out),
                    (a, b) if a != b => out.push(format!("{at}: {} -> {}", show(a), show(b))),
                    _ => {}
                }
            }
        }
        (a, b) if a != b => {
            let at = if path.is_empty() { "(inputs)" } else { path };
            out.push(format!("{at}: {} -> {}", show(Some(a)), show(Some(b))));
        }
        _ => {}
    }
}

fn show(v: Option<&Value>) -> String {
    match v {
        None => "(none)".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn select<'a>(rb: &'a Runbook, sel: &Selection) -> Result<Vec<&'a str>> {
    let names: Vec<&str> = rb.step_names().collect();
    let index = |name: &str| {
        names.iter().position(|n| *n == name).ok_or_else(|| {
            let hint = crate::runbook::closest(name, &names)
                .map_or(String::new(), |s| format!("did you mean `{s}`? "));
            Failure::usage(format!(
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
        return Err(Failure::usage(format!(
                "--from {} comes after --until {} in the runbook",
                names[from], names[until]
            ),
        ));
    }
    Ok(names[from..=until].to_vec())
}

/// The inputs that changed since `name` was applied, if any. A step that
/// only verifies changed nothing, so an edit of its inputs does not count.
pub(crate) fn edited_since_applied(name: &str, rb: &Runbook, state: &State) -> Option<Vec<String>> {
    let step = steps::get(name)?;
    let rec = state.record(name).filter(|r| r.status == Status::Applied)?;
    if !step.changes_account() {
        return None;
    }
    let (inputs, missing) = resolve(step, rb, state);
    (missing.is_empty() && rec.checksum.as_deref() != Some(&state::checksum(&inputs)))
        .then(|| changed_fields(rec.inputs.as_ref(), &inputs))
}

pub(crate) fn state_error(e: state::StateError) -> anyhow::Error {
    match e {
        state::StateError::Locked { .. } => Failure::locked(e.to_string()),
        _ => Failure::bad_input(e.to_string()),
    }
}

fn save(state: &State, path: &Path) -> Result<()> {
    state.save(path).map_err(state_error)
}

/// Refuses to act in another account or region than the state's steps did
/// (a rollback there would find nothing and call it undone); records them
/// on first use. Returns whether the state changed.
pub(crate) async fn check_place(state: &mut State, aws: &Aws, path: &Path) -> Result<bool> {
    let account = aws.account_id().await?.to_string();
    record_place(state, &account, &aws.region, path)
}

fn record_place(state: &mut State, account: &str, region: &str, path: &Path) -> Result<bool> {
    if let (Some(a), Some(r)) = (&state.account, &state.region) {
        if a != account || r != region {
            return Err(Failure::bad_input(format!(
                    "the state {} records steps in account {a}, region {r}, but this command \
                     would act in account {account}, region {region}: pass --region {r} or the \
                     profile of account {a}, or another --state for a new setup",
                    path.display(),
                ),
            ));
        }
        return Ok(false);
    }
    state.account = Some(account.to_string());
    state.region = Some(region.to_string());
    Ok(true)
}

/// Prints a preflight report: every check when `all`, else only the
/// problems, and a summary line.
pub fn print_preflight(report: &crate::preflight::Report, all: bool) {
    if all {
        for c in &report.checked {
            crate::say!("  ✓ {c}");
        }
    }
    for p in &report.problems {
        crate::say!("  {p}");
    }
    let (passed, problems) = (report.checked.len(), report.problems.len());
    if problems == 0 {
        crate::say!("Preflight: all {passed} checks passed.");
    } else {
        crate::say!("Preflight: {passed} checks passed, {problems} problem(s).");
    }
}

/// Runs preflight and prints it; Err (exit 5) when it found problems.
async fn preflight_checks(rb: &Runbook, aws: &Aws, all: bool) -> Result<()> {
    let report = crate::preflight::run(rb, aws).await?;
    print_preflight(&report, all);
    preflight_verdict(&report)
}

/// Err (exit 5) when preflight found problems, after printing them.
pub(crate) fn preflight_verdict(report: &crate::preflight::Report) -> Result<()> {
    match report.problems.len() {
        0 => Ok(()),
        n => Err(Failure::preflight(format!(
                "preflight found {n} problem(s) in the account (listed above); nothing was changed"
            ),
        )),
    }
}

pub async fn preflight(runbook: &Path, opts: &Options) -> Result<()> {
    let rb = load_runbook(runbook, EnvMode::Strict)?;
    let aws = Aws::connect(&opts.aws, rb.region.as_deref()).await?;
    crate::say!("Preflight for runbook `{}` in {}:", rb.name, aws.region);
    preflight_checks(&rb, &aws, true).await
}

/// How `run` and `resume` go about it.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunHow {
    /// Agreed beforehand: no question.
    pub yes: bool,
    /// `--confirm`: a question before each step that would act.
    pub ask: bool,
    /// `resume`: continue the state's run (the state must exist).
    pub resume: bool,
    /// `--adopt`: take over what the account holds with our tag that this
    /// state never made, instead of refusing.
    pub adopt: bool,
}

/// What the account holds for a step that this state never acted on (no
/// origin): each entry is the step, what it makes, and whether it is
/// unfinished there. The error names them, says that another state
/// probably made them, and how to go on.
fn not_this_states(found: &[(&str, String, bool)], path: &Path, hint: &str) -> anyhow::Error {
    let list: Vec<String> = found
        .iter()
        .map(|(name, what, unfinished)| {
            let how = if *unfinished { ", unfinished" } else { "" };
            format!("  {name}: {what}{how}")
        })
        .collect();
    let adopt = if found.iter().all(|(_, _, unfinished)| !unfinished) {
        format!(
            " To take them over in this state instead: `{hint} --adopt` (they are then \
             managed here, and `rollback` leaves them in place)."
        )
    } else {
        " What is unfinished can only be finished by the state that started it.".to_string()
    };
    Failure::bad_input(format!(
            "the account already holds what these steps make, with this runbook's tag, but \
             this state ({}) never made it:\n{}\nAnother state of this runbook probably \
             exists (a colleague's checkout, a CI runner, a mistyped --state; by default it \
             is .rds-proxy-runbook/<name>.state.json beside the runbook that made it): \
             point --state at it and run again.{adopt} Nothing was changed.",
            path.display(),
            list.join("\n")
        ),
    )
}

/// Whether what the account holds for a step (`found`) is someone else's
/// although it carries our tag: this state never acted on the step (no
/// `origin`) and it is there, done or unfinished. `Some(unfinished)` is
/// refused; `adopt` takes over what is done.
fn made_elsewhere(origin: Option<Origin>, found: &Found, adopt: bool) -> Option<bool> {
    match (origin, found) {
        (Some(_), _) => None,
        (None, Found::Done(_)) => (!adopt).then_some(false),
        (None, Found::Incomplete(_)) => Some(true),
        (None, _) => None,
    }
}

/// Why a step that another one waits on cannot be trusted to be in place:
/// `None` when this state applied it (created or adopted) and the account
/// has it as the runbook says.
fn unmet(status: Status, origin: Option<Origin>, found: Option<&Found>) -> Option<String> {
    if status != Status::Applied {
        return Some(format!("{} in this state", status.label()));
    }
    if origin.is_none() {
        return Some("not made or adopted by this state".into());
    }
    match found {
        Some(Found::Done(_)) => None,
        None => Some("its inputs are not applied".into()),
        Some(Found::Missing) => Some("applied, but missing from the account".into()),
        Some(Found::Incomplete(why)) => Some(format!("not finished in the account: {why}")),
        Some(Found::Drifted(diffs)) => Some(format!("drifted: {}", diffs.join("; "))),
        Some(Found::Foreign(why)) => Some(why.clone()),
    }
}

/// The error for a step that reads outputs of steps not applied yet.
fn needs_outputs(name: &str, missing: &[(String, String)], run_hint: &str) -> anyhow::Error {
    let (first, output) = &missing[0];
    Failure::usage(format!(
            "step `{name}` needs outputs of {} (such as `{first}.{output}`), which are not \
             applied: run them first, e.g. `{run_hint} --step {first}`",
            needs(missing).join(", "),
        ),
    )
}

/// The error for a step whose `waits` (each: step, reason) are not in
/// place, with the command that runs them first.
fn waits_unmet(name: &str, waits: &[(String, String)], run_hint: &str) -> anyhow::Error {
    let list: Vec<String> = waits
        .iter()
        .map(|(dep, why)| format!("`{dep}` ({why})"))
        .collect();
    let reasons: Vec<String> = steps::get(name)
        .map(|s| s.after())
        .unwrap_or_default()
        .iter()
        .filter(|(dep, _)| waits.iter().any(|(w, _)| w == dep))
        .map(|(dep, why)| format!("{dep}: {why}"))
        .collect();
    let why = if reasons.is_empty() {
        String::new()
    } else {
        format!(" ({})", reasons.join("; "))
    };
    Failure::usage(format!(
            "step `{name}` must wait for steps that are not applied and verified in the \
             account{why}: {}. Step `{name}` was not applied; run them first: \
             `{run_hint} --until {name}`",
            list.join(", ")
        ),
    )
}

/// The state and its file, with one writer: every transition is made and
/// saved under one lock, so steps that run at the same time never save a
/// half-updated state or lose each other's records.
pub(crate) struct Store {
    path: PathBuf,
    state: std::sync::Mutex<State>,
}

impl Store {
    fn new(path: PathBuf, state: State) -> Store {
        Store {
            path,
            state: std::sync::Mutex::new(state),
        }
    }

    fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.state.lock().expect("state lock"))
    }

    /// Changes the state and saves it before anyone else may change it.
    fn update<R>(&self, f: impl FnOnce(&mut State) -> Result<R>) -> Result<R> {
        let mut state = self.state.lock().expect("state lock");
        let r = f(&mut state)?;
        save(&state, &self.path)?;
        Ok(r)
    }

    fn advance(
        &self,
        name: &str,
        event: Event,
        f: impl FnOnce(&mut state::StepRecord),
    ) -> Result<()> {
        self.update(|s| {
            let rec = s.advance(name, event).map_err(anyhow::Error::msg)?;
            f(rec);
            Ok(())
        })
    }
}

/// For each step in `names`, the steps among `names` it waits on.
fn waits_on<'n>(
    names: &[&'n str],
    graph: &BTreeMap<String, Vec<String>>,
) -> BTreeMap<&'n str, Vec<&'n str>> {
    names
        .iter()
        .map(|n| {
            let deps = graph.get(*n).map_or(&[][..], Vec::as_slice);
            let within = names
                .iter()
                .copied()
                .filter(|m| deps.iter().any(|d| d == m))
                .collect();
            (*n, within)
        })
        .collect()
}

/// Runs `task` for each of `names` as soon as every step it waits on has
/// succeeded, as many at once as the graph allows, in one task (the
/// state's single writer is the [`Store`]). A result for which `proceed`
/// is false (a step the user skipped) holds back the steps that wait on
/// it, and nothing else. After a failure or a Ctrl-C no new step starts,
/// and those under way finish. Returns the results in the order they
/// ended; a step that never started is absent.
async fn schedule<'n, T, Fut>(
    names: &[&'n str],
    waits_on: &BTreeMap<&'n str, Vec<&'n str>>,
    task: impl Fn(&'n str) -> Fut,
    proceed: impl Fn(&T) -> bool,
) -> Vec<(&'n str, Result<T>)>
where
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut started: BTreeSet<&str> = BTreeSet::new();
    let mut succeeded: BTreeSet<&str> = BTreeSet::new();
    let mut results = Vec::new();
    let mut running = FuturesUnordered::new();
    let mut stop = false;
    loop {
        if !stop && !poll::interrupted() {
            for &name in names {
                let ready = waits_on
                    .get(name)
                    .is_none_or(|deps| deps.iter().all(|d| succeeded.contains(d)));
                if ready && started.insert(name) {
                    let fut = task(name);
                    running.push(async move { (name, fut.await) });
                }
            }
        }
        let Some((name, result)) = running.next().await else {
            break;
        };
        match &result {
            Ok(v) if proceed(v) => {
                succeeded.insert(name);
            }
            Ok(_) => {}
            Err(_) => stop = true,
        }
        results.push((name, result));
    }
    // Steps held back by a skipped one, directly or not.
    let mut held: BTreeSet<&str> = started.difference(&succeeded).copied().collect();
    loop {
        let more: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !started.contains(n) && !held.contains(n))
            .filter(|n| {
                waits_on
                    .get(n)
                    .is_some_and(|d| d.iter().any(|d| held.contains(d)))
            })
            .collect();
        if more.is_empty() {
            break;
        }
        held.extend(more);
    }
    // Nothing stopped it, yet a step never became ready: its steps wait on
    // each other (possible only in a runbook loaded leniently).
    if !stop && !poll::interrupted() {
        for &name in names
            .iter()
            .filter(|n| !started.contains(*n) && !held.contains(*n))
        {
            let deps = waits_on.get(name).map_or(String::new(), |d| d.join(", "));
            results.push((
                name,
                Err(anyhow::anyhow!(
                    "never started: it waits on {deps}, which wait on it in turn; \
                     list the steps in the order they need"
                )),
            ));
        }
    }
    results
}

/// Every step `name` waits on, directly or not.
fn ancestors<'g>(graph: &'g BTreeMap<String, Vec<String>>, name: &str) -> BTreeSet<&'g str> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&str> = graph
        .get(name)
        .map_or(Vec::new(), |d| d.iter().map(String::as_str).collect());
    while let Some(n) = todo.pop() {
        if seen.insert(n) {
            todo.extend(graph.get(n).into_iter().flatten().map(String::as_str));
        }
    }
    seen
}

/// What running one step came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Unchanged,
    Changed,
    Verified,
    /// `--confirm` and the answer was no: nothing done, and the steps that
    /// wait on it do not start.
    Skipped,
}

/// The answers to `run --confirm`'s question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Yes,
    No,
    Continue,
}

/// What a line typed at the question means; None: ask again.
pub fn parse_answer(line: &str) -> Option<Answer> {
    match line.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Some(Answer::Yes),
        "n" | "no" => Some(Answer::No),
        "c" | "continue" => Some(Answer::Continue),
        _ => None,
    }
}

/// `run --confirm`: before each step that would act, show what it would do
/// and ask; one step at a time until the answer is "continue".
struct Asker {
    asking: std::sync::atomic::AtomicBool,
    /// Held by the step being asked about, through its apply.
    turn: tokio::sync::Mutex<()>,
}

impl Asker {
    fn new() -> Asker {
        Asker {
            asking: true.into(),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    fn asking(&self) -> bool {
        self.asking.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// This step's turn, while still asking.
    async fn turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if !self.asking() {
            return None;
        }
        let guard = self.turn.lock().await;
        self.asking().then_some(guard)
    }

    /// Shows `what` and reads an answer from the terminal.
    fn ask(&self, what: &str) -> Result<Answer> {
        tokio::task::block_in_place(|| {
            let mut out = std::io::stdout().lock();
            loop {
                write!(
                    out,
                    "{what}\n  Run it? [y]es / [n]o, skip it / [c]ontinue without asking: "
                )?;
                out.flush()?;
                let mut line = String::new();
                if std::io::stdin().lock().read_line(&mut line)? == 0 {
                    writeln!(out)?;
                    return Err(Failure::steps_failed("no answer (end of input); stopped before this step",
                    ));
                }
                if let Some(a) = parse_answer(&line) {
                    if a == Answer::Continue {
                        self.asking
                            .store(false, std::sync::atomic::Ordering::SeqCst);
                    }
                    return Ok(a);
                }
                writeln!(out, "  please answer y, n or c")?;
            }
        })
    }
}

/// What every run of one command shares.
struct Runner<'a> {
    rb: &'a Runbook,
    aws: &'a Aws,
    store: &'a Store,
    progress: &'a Progress,
    graph: &'a BTreeMap<String, Vec<String>>,
    /// What the first round found, by step: the checksum of the inputs it
    /// checked with, and the answer.
    prechecked: BTreeMap<String, (String, Found)>,
    /// The steps that changed the account in this run: a step that waits
    /// on one of them checks again rather than trust the first round.
    changed: std::sync::Mutex<BTreeSet<String>>,
    /// The command that runs this runbook, for hints.
    run_hint: String,
    /// `--confirm`: ask before each step.
    asker: Option<Asker>,
    /// `--adopt`: take over what this state did not make.
    adopt: bool,
    /// The steps this run found done or applied: a step that waits on one
    /// of them acts without checking it again.
    verified: std::sync::Mutex<BTreeSet<String>>,
}

/// Why a step stopped: interrupted (it stays `started`), or failed (the
/// state records the error).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct StepFailed(String);

impl Runner<'_> {
    /// The first answer for `name` if it still holds: same inputs, and no
    /// step it waits on changed since.
    fn first_answer(&self, name: &str, checksum: &str) -> Option<Found> {
        let (sum, found) = self.prechecked.get(name)?;
        let changed = self.changed.lock().expect("lock");
        let touched = ancestors(self.graph, name)
            .iter()
            .any(|a| changed.contains(*a));
        (sum == checksum && !touched).then(|| found.clone())
    }

    async fn step(&self, name: &str) -> Result<Outcome> {
        let result = self.step_inner(name).await;
        if matches!(result, Ok(Outcome::Changed | Outcome::Unchanged)) {
            self.verified.lock().expect("lock").insert(name.to_string());
        }
        match result {
            Err(e) if e.downcast_ref::<Interrupted>().is_some() => Err(e),
            Err(e) if e.downcast_ref::<Failure>().is_some() => Err(e),
            Err(e) => {
                let message = format!("{e:#}");
                // A transition that does not apply is no reason to fail
                // again; a state that cannot be saved is.
                self.store.update(|s| {
                    if let Ok(rec) = s.advance(name, Event::Fail) {
                        rec.error = Some(message.clone());
                    }
                    Ok(())
                })?;
                Err(StepFailed(message).into())
            }
            ok => ok,
        }
    }

    /// The steps `name` waits on that are not in place at this moment: each
    /// must have been found done or applied by this run, or be applied in
    /// the state and found done in the account now (the first round's
    /// answer when nothing upstream changed since, else a check).
    async fn unmet_waits(&self, name: &str) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for dep in self.graph.get(name).into_iter().flatten() {
            if self.verified.lock().expect("lock").contains(dep) {
                continue;
            }
            let step = steps::get(dep).expect("validated");
            let (status, origin) = self
                .store
                .read(|s| (s.status(dep), s.record(dep).and_then(|r| r.origin)));
            let (inputs, missing) = self.store.read(|s| resolve(step, self.rb, s));
            let checksum = state::checksum(&inputs);
            let found = match self.first_answer(dep, &checksum) {
                Some(found) => Some(found),
                None if missing.is_empty() && status == Status::Applied => {
                    let bar = StepBar::silent(dep);
                    let cx = Ctx {
                        aws: self.aws,
                        runbook: &self.rb.name,
                        bar: &bar,
                    };
                    Some(step.check(&cx, &inputs).await?)
                }
                None => None,
            };
            if let Some(why) = unmet(status, origin, found.as_ref()) {
                out.push((dep.clone(), why));
            }
        }
        Ok(out)
    }

    /// `--confirm`'s question for a step that would act: what it does and
    /// what the account holds, as `plan` shows them.
    async fn ask(
        &self,
        name: &str,
        step: &dyn steps::Step,
        cx: &Ctx<'_>,
        inputs: &Value,
        found: &Found,
    ) -> Result<Answer> {
        let (action, details) = crate::plan::pending(step, cx, inputs, found).await?;
        let mut what = format!("\n{name} (to {action}): {}", step.describe(inputs)?);
        for d in details {
            what.push_str(&format!("\n    {d}"));
        }
        self.asker.as_ref().expect("asking").ask(&what)
    }

    async fn step_inner(&self, name: &str) -> Result<Outcome> {
        let step = steps::get(name).expect("validated");
        let (inputs, missing) = self.store.read(|s| resolve(step, self.rb, s));
        if !missing.is_empty() {
            return Err(needs_outputs(name, &missing, &self.run_hint));
        }
        let checksum = state::checksum(&inputs);
        let was = self.store.read(|s| s.status(name));
        let mut turn = match &self.asker {
            Some(a) => a.turn().await,
            None => None,
        };
        let bar = self.progress.step(name);
        let cx = Ctx {
            aws: self.aws,
            runbook: &self.rb.name,
            bar: &bar,
        };
        // A verification changes nothing, so it has nothing to check first.
        let found = if !step.changes_account() {
            bar.set(format!("running {}", step.describe(&inputs)?));
            Found::Missing
        } else if let Some(found) = self.first_answer(name, &checksum) {
            found
        } else {
            bar.set(format!("checking {}", step.describe(&inputs)?));
            step.check(&cx, &inputs).await.inspect_err(|_| {
                bar.finish("✗", "check failed");
            })?
        };
        tracing::debug!(step = %name, ?found, "checked the account");
        // What this state never acted on is not ours, though it carries
        // our tag: refused, or taken over on request.
        let origin = self.store.read(|s| s.record(name).and_then(|r| r.origin));
        if let Some(unfinished) = made_elsewhere(origin, &found, self.adopt) {
            bar.finish("✗", "not made by this state");
            return Err(not_this_states(
                &[(name, step.describe(&inputs)?, unfinished)],
                &self.store.path,
                &self.run_hint,
            ));
        }
        match found {
            Found::Done(outputs) if origin.is_none() => {
                self.store.advance(name, Event::Applied, |rec| {
                    rec.origin = Some(Origin::Adopted);
                    rec.outputs = outputs;
                    rec.inputs = Some(inputs);
                    rec.checksum = Some(checksum);
                    rec.error = None;
                })?;
                bar.finish(
                    "=",
                    "adopted: found in the account, managed from now on; rollback leaves it",
                );
                Ok(Outcome::Unchanged)
            }
            Found::Done(outputs) => {
                let unchanged = was == Status::Applied
                    && self.store.read(|s| {
                        s.record(name).is_some_and(|r| {
                            r.outputs == outputs && r.checksum.as_ref() == Some(&checksum)
                        })
                    });
                if !unchanged {
                    self.store.advance(name, Event::Applied, |rec| {
                        rec.outputs = outputs;
                        rec.inputs = Some(inputs);
                        rec.checksum = Some(checksum);
                        rec.error = None;
                    })?;
                }
                let note = if was == Status::Applied {
                    "already done, no change"
                } else {
                    "found done in the account, recorded, no change"
                };
                bar.finish("=", note);
                Ok(Outcome::Unchanged)
            }
            Found::Missing | Found::Incomplete(_) => {
                // Never act before what this step waits on is in place in
                // the account (a --step or --from past its order).
                let waits = self.unmet_waits(name).await.inspect_err(|_| {
                    bar.finish("✗", "check failed");
                })?;
                if !waits.is_empty() {
                    bar.finish("✗", "waits on steps not in place");
                    return Err(waits_unmet(name, &waits, &self.run_hint));
                }
                if turn.is_some() {
                    let answer = self.ask(name, step, &cx, &inputs, &found).await?;
                    if poll::interrupted() {
                        // Ctrl-C while the question was open.
                        bar.finish("✗", "interrupted");
                        return Err(Interrupted.into());
                    }
                    match answer {
                        Answer::No => {
                            bar.finish("-", "skipped (answered no)");
                            return Ok(Outcome::Skipped);
                        }
                        // No more questions: the other steps may start now.
                        Answer::Continue => drop(turn.take()),
                        Answer::Yes => {}
                    }
                }
                let finishing = match &found {
                    Found::Incomplete(why) => {
                        self.progress.line(format!("  {name}: {why}"));
                        true
                    }
                    _ => false,
                };
                if !finishing && was == Status::Applied && step.changes_account() {
                    self.progress.line(format!(
                        "  note: step `{name}` was applied but is missing from the account \
                         (deleted by hand?); creating it again"
                    ));
                }
                // What the step replaces, read once before it first acts: a
                // retry must not mistake our own change for the original.
                let mut before = self
                    .store
                    .read(|s| s.record(name).and_then(|r| r.before.clone()));
                if before.is_none() {
                    before = step.before(&cx, &inputs).await.inspect_err(|_| {
                        bar.finish("✗", "failed");
                    })?;
                }
                self.store.advance(name, Event::Start, |rec| {
                    rec.inputs = Some(inputs.clone());
                    rec.checksum = Some(checksum);
                    rec.before = before;
                    rec.outputs.clear();
                    rec.error = None;
                })?;
                crate::failpoint::hit(name, "before-apply");
                let outputs = match step.apply(&cx, &inputs).await {
                    Ok(outputs) => outputs,
                    Err(e) => {
                        // Interrupted, the step stays `started`: resume
                        // re-checks it.
                        let interrupted = e.downcast_ref::<Interrupted>().is_some();
                        bar.finish("✗", if interrupted { "interrupted" } else { "failed" });
                        return Err(e);
                    }
                };
                crate::failpoint::hit(name, "after-apply");
                let response = outputs.values().cloned().collect::<Vec<_>>().join("; ");
                self.store.advance(name, Event::Applied, |rec| {
                    rec.outputs = outputs;
                })?;
                let what = step.describe(&inputs)?;
                if !step.changes_account() {
                    bar.finish("✓", format!("verified: {what}: {response}"));
                    return Ok(Outcome::Verified);
                }
                self.changed.lock().expect("lock").insert(name.to_string());
                let verb = if finishing { "finished" } else { "created" };
                bar.finish("✓", format!("{verb}: {what}"));
                Ok(Outcome::Changed)
            }
            Found::Drifted(diffs) => {
                bar.finish("✗", "drifted");
                anyhow::bail!(
                    "{} differs from the runbook: {}. Fix the runbook to match, or roll the step back and run again",
                    step.describe(&inputs)?,
                    diffs.join("; ")
                )
            }
            Found::Foreign(why) => {
                bar.finish("✗", "blocked");
                anyhow::bail!(why)
            }
        }
    }
}

/// A copy of the steps' results (errors as their text; Ctrl-C kept).
fn copy_results<'n, T: Copy>(results: &[(&'n str, Result<T>)]) -> Vec<(&'n str, Result<T>)> {
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
fn emit_report<T>(
    command: &str,
    rb: &Runbook,
    region: &str,
    state: &Path,
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
    crate::progress::emit_json(&serde_json::json!({
        "command": command,
        "runbook": rb.name,
        "region": region,
        "state": state,
        "result": result,
        "exit_code": exit_code,
        "error": error,
        "summary": summary,
        "steps": steps,
    }));
}

/// The error that ends a run or rollback from its steps' results: Ctrl-C
/// wins, then a usage error, then every failed step with the way on.
fn first_error<T>(
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
            ),
        ));
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
        return Err(Failure::steps_failed(format!("{}\n{hints}", failed.join("\n")),
        ));
    }
    Ok(ok)
}

/// `run` and `resume`; `ask`: `--confirm`, a question before each step.
pub async fn run(runbook: &Path, sel: &Selection, how: RunHow, opts: &Options) -> Result<()> {
    let RunHow {
        yes,
        ask,
        resume,
        adopt,
    } = how;
    let rb = load_runbook(runbook, EnvMode::Strict)?;
    let selected = select(&rb, sel)?;
    let path = state_path(&rb, opts);
    if resume && !State::exists(&path) {
        return Err(Failure::usage(format!(
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
            let changes = changes.join("; ");
            let back_to = rb
                .step_names()
                .take_while(|n| n != name)
                .last()
                .map_or_else(
                    || format!("{} --yes", command_hint("rollback", &rb, opts)),
                    |prev| format!("{} --to {prev} --yes", command_hint("rollback", &rb, opts)),
                );
            return Err(Failure::bad_input(format!(
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
        crate::say!("Every step is pending or rolled back: resume starts the run over.");
    }
    if ask {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::usage("--confirm asks on the terminal, and stdin is not one: run without --confirm (and with --yes)",
            ));
        }
    } else {
        confirm(
            &format!(
                "{verb} {} step(s) of runbook `{}` ({}); each checks the account before acting. Continue?",
                selected.len(),
                rb.name,
                selected.join(", ")
            ),
            yes,
        )?;
    }
    let aws = Aws::connect(&opts.aws, rb.region.as_deref()).await?;

    // The first round, all at once: who we are, every step that can be
    // checked already, and preflight unless every step is applied (then a
    // re-run costs the checks alone).
    let all_applied = selected.iter().all(|n| state.status(n) == Status::Applied);
    // The steps the selection waits on but leaves out (`--step`, `--from`):
    // they must be in place in the account, so they are checked too.
    let graph = steps::dependencies(&rb);
    let mut outside: Vec<&str> = Vec::new();
    for name in &selected {
        for dep in graph.get(*name).into_iter().flatten() {
            if !selected.contains(&dep.as_str()) && !outside.contains(&dep.as_str()) {
                outside.push(dep);
            }
        }
    }
    let checkable: Vec<(&str, Value)> = selected
        .iter()
        .chain(&outside)
        .filter_map(|name| {
            let step = steps::get(name).expect("validated");
            let (inputs, missing) = resolve(step, &rb, &state);
            (step.changes_account() && missing.is_empty()).then_some((*name, inputs))
        })
        .collect();
    let prechecks = futures_util::future::join_all(checkable.iter().map(|(name, inputs)| {
        let (aws, rb_name) = (&aws, &rb.name);
        async move {
            let bar = StepBar::silent(name);
            let cx = Ctx {
                aws,
                runbook: rb_name,
                bar: &bar,
            };
            let step = steps::get(name).expect("validated");
            let found = step.check(&cx, inputs).await;
            (name.to_string(), state::checksum(inputs), found)
        }
    }));
    let early_preflight = async {
        if all_applied {
            None
        } else {
            Some(crate::preflight::run(&rb, &aws).await)
        }
    };
    // Who we are: with an account recorded, the steps use it while STS is
    // asked beside them; on a first run they share the one STS answer.
    let recorded = state.account.clone();
    if let Some(account) = &recorded {
        aws.assume_account(account);
    }
    let whoami = async {
        match recorded {
            Some(_) => aws.caller_account().await,
            None => aws.account_id().await.map(str::to_string),
        }
    };
    let (account, prechecks, mut report) = tokio::join!(whoami, prechecks, early_preflight);
    if record_place(&mut state, &account?, &aws.region, &path)? && !state.steps.is_empty() {
        save(&state, &path)?;
    }
    let prechecked: BTreeMap<String, (String, Found)> = prechecks
        .into_iter()
        .filter_map(|(name, sum, found)| found.ok().map(|f| (name, (sum, f))))
        .collect();
    let run_hint = command_hint("run", &rb, opts);

    // Before any change: what this state never made is refused (unless
    // adopted), and so is a step whose waits are not in place.
    let foreign: Vec<(&str, String, bool)> = selected
        .iter()
        .filter_map(|n| {
            let origin = state.record(n).and_then(|r| r.origin);
            let unfinished = made_elsewhere(origin, &prechecked.get(*n)?.1, adopt)?;
            let step = steps::get(n).expect("validated");
            let what = step.describe(&resolve(step, &rb, &state).0).ok()?;
            Some((*n, what, unfinished))
        })
        .collect();
    if !foreign.is_empty() {
        return Err(not_this_states(&foreign, &path, &run_hint));
    }
    for name in &selected {
        let step = steps::get(name).expect("validated");
        let missing: Vec<(String, String)> = resolve(step, &rb, &state)
            .1
            .into_iter()
            .filter(|(dep, _)| !selected.contains(&dep.as_str()))
            .collect();
        if !missing.is_empty() {
            return Err(needs_outputs(name, &missing, &run_hint));
        }
        let waits: Vec<(String, String)> = graph[*name]
            .iter()
            .filter(|d| outside.contains(&d.as_str()))
            .filter_map(|d| {
                let rec = state.record(d);
                let found = prechecked.get(d).map(|(_, f)| f);
                unmet(state.status(d), rec.and_then(|r| r.origin), found).map(|w| (d.clone(), w))
            })
            .collect();
        if !waits.is_empty() {
            return Err(waits_unmet(name, &waits, &run_hint));
        }
    }
    let all_done = selected.iter().all(|n| {
        !steps::get(n).expect("validated").changes_account()
            || matches!(prechecked.get(*n), Some((_, Found::Done(_))))
    });
    if report.is_none() && !all_done {
        report = Some(crate::preflight::run(&rb, &aws).await);
    }
    if let Some(report) = report {
        let report = report?;
        print_preflight(&report, false);
        preflight_verdict(&report)?;
    }

    // Spinners would redraw over --confirm's questions.
    let progress = Progress::new(opts.no_progress || ask);
    progress.line(format!(
        "{verb} of runbook `{}` in {}; state: {}",
        rb.name,
        aws.region,
        path.display()
    ));
    let store = Store::new(path, state);
    let runner = Runner {
        rb: &rb,
        aws: &aws,
        store: &store,
        progress: &progress,
        graph: &graph,
        prechecked,
        changed: Default::default(),
        run_hint,
        asker: ask.then(Asker::new),
        adopt,
        verified: Default::default(),
    };
    let waits = waits_on(&selected, &graph);
    let results = schedule(
        &selected,
        &waits,
        |name| {
            let runner = &runner;
            async move {
                let started = std::time::Instant::now();
                runner.step(name).await.map(|o| (o, started.elapsed()))
            }
        },
        |(o, _)| *o != Outcome::Skipped,
    )
    .await;
    // For --output json: the results as they were, before the error is built.
    let report = (opts.output == crate::cli::Output::Json).then(|| copy_results(&results));
    let outcomes = first_error(results, &rb, opts, "resume");
    if let Some(steps) = report {
        emit_report(
            if resume { "resume" } else { "run" },
            &rb,
            &aws.region,
            &store.path,
            &selected,
            &steps,
            |o| match o {
                Outcome::Changed => "changed",
                Outcome::Unchanged => "unchanged",
                Outcome::Verified => "verified",
                Outcome::Skipped => "skipped",
            },
            outcomes.as_ref().map(|_| ()),
        );
    }
    let outcomes: Vec<(Outcome, std::time::Duration)> = outcomes?;
    let outcomes: Vec<Outcome> = outcomes.into_iter().map(|(o, _)| o).collect();
    let count = |o: Outcome| outcomes.iter().filter(|x| **x == o).count();
    let (changed, verified) = (count(Outcome::Changed), count(Outcome::Verified));
    let skipped = count(Outcome::Skipped);
    // Answered no, or waiting on a step that was: not done, and so said.
    let not_run = skipped + selected.len() - outcomes.len();
    let mut verified_note = match verified {
        0 => String::new(),
        v => format!("; {v} verification(s) passed"),
    };
    if not_run > 0 {
        verified_note.push_str(&format!(
            "; {not_run} step(s) not run ({skipped} answered no, the rest wait on them): `{}` runs them",
            command_hint("run", &rb, opts)
        ));
    }
    if changed == 0 && not_run == 0 {
        crate::say!(
            "No changes: {} step(s) checked, all already done{verified_note}.",
            selected.len()
        );
    } else {
        crate::say!(
            "Done: {changed} step(s) applied, {} already done{verified_note}.",
            selected.len() - changed - verified - not_run
        );
    }
    Ok(())
}

pub fn status(runbook: &Path, opts: &Options) -> Result<()> {
    let rb = load_runbook(runbook, EnvMode::Lenient)?;
    let path = state_path(&rb, opts);
    let exists = State::exists(&path);
    let state = State::load(&path, &rb.name).map_err(state_error)?;
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
                Failure::usage(format!(
                        "--to {t}: no such step; the steps are: {}",
                        order.join(", ")
                    ),
                )
            })? + 1
        }
        None => 0,
    };
    let undo: Vec<&str> = order[keep..]
        .iter()
        .rev()
        .filter(|n| state.status(n).may_have_changed_account())
        .map(String::as_str)
        .collect();
    if undo.is_empty() {
        if opts.output == crate::cli::Output::Json {
            let none: &[(&str, Result<(&str, std::time::Duration)>)] = &[];
            let region = state.region.clone().unwrap_or_default();
            emit_report("rollback", &rb, &region, &path, &[], none, |l| l, Ok(()));
        }
        match to {
            Some(t) => {
                crate::say!("Nothing to roll back: no step after `{t}` has changed the account.")
            }
            None => crate::say!("Nothing to roll back: no step has changed the account."),
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
    let rollback_hint = command_hint("rollback", &rb, opts);
    let guard = Guard::read(&rb, &state, &undo, &aws).await?;
    if let Some(guard) = &guard {
        // Before anything: a function that points at the proxy and that
        // this rollback does not point back stops it here.
        let restored: BTreeSet<(String, String)> = undo
            .iter()
            .filter_map(|n| Some((steps::get(n)?, state.record(n)?)))
            .filter(|(step, rec)| {
                step.sets_function_variables() && rec.origin == Some(Origin::Created)
            })
            .flat_map(|(step, rec)| match &rec.inputs {
                Some(inputs) => step.restores(inputs, rec.before.as_ref()),
                None => Vec::new(),
            })
            .collect();
        let stranded: Vec<(String, String)> = guard
            .pointing(&aws)
            .await?
            .into_iter()
            .filter(|p| !restored.contains(p))
            .collect();
        if !stranded.is_empty() {
            return Err(Failure::preflight(guard.stranded(
                    "rollback stopped before changing anything",
                    "this state recorded no old value of theirs to put back",
                    &stranded,
                    &rollback_hint,
                ),
            ));
        }
    }
    let progress = Progress::new(opts.no_progress);
    progress.line(format!(
        "Rollback of runbook `{}` in {}; state: {}",
        rb.name,
        aws.region,
        path.display()
    ));
    // The run's graph backwards: a step is undone once every step that
    // waits on it is. Steps the runbook no longer lists (no graph for
    // them) go first, one at a time, the recipe's last first.
    let graph = steps::dependencies(&rb);
    let listed: BTreeSet<&str> = rb.step_names().collect();
    let known = steps::names();
    let later_in_recipe =
        |m: &str, n: &str| known.iter().position(|k| *k == m) > known.iter().position(|k| *k == n);
    let waits: BTreeMap<&str, Vec<&str>> = undo
        .iter()
        .map(|&n| {
            let first = undo
                .iter()
                .copied()
                .filter(|&m| {
                    let unlisted_first =
                        !listed.contains(m) && (listed.contains(n) || later_in_recipe(m, n));
                    let waits_on_n = graph.get(m).is_some_and(|deps| deps.iter().any(|d| d == n));
                    unlisted_first || waits_on_n
                })
                .collect();
            (n, first)
        })
        .collect();
    let store = Store::new(path, state);
    let results = schedule(
        &undo,
        &waits,
        |name| {
            let (rb, aws, store, progress) = (&rb, &aws, &store, &progress);
            let (guard, hint) = (guard.as_ref(), &rollback_hint);
            async move {
                let started = std::time::Instant::now();
                let undone = undo_step(name, rb, aws, store, progress, guard, hint).await?;
                Ok((undone, started.elapsed()))
            }
        },
        |_| true,
    )
    .await;
    let report = (opts.output == crate::cli::Output::Json).then(|| copy_results(&results));
    let ended = first_error(results, &rb, opts, "rollback");
    if let Some(steps) = report {
        emit_report(
            "rollback",
            &rb,
            &aws.region,
            &store.path,
            &undo,
            &steps,
            |label| label,
            ended.as_ref().map(|_| ()),
        );
    }
    ended?;
    crate::say!("Rolled back {} step(s).", undo.len());
    Ok(())
}

/// Undoes one step; says how: undone, already gone, left alone, or
/// nothing to undo.
async fn undo_step(
    name: &str,
    rb: &Runbook,
    aws: &Aws,
    store: &Store,
    progress: &Progress,
    guard: Option<&Guard>,
    rollback_hint: &str,
) -> Result<&'static str> {
    let step = steps::get(name).expect("known step");
    let rec = store.read(|s| s.record(name).cloned().unwrap_or_default());
    let bar = progress.step(name);
    let Some(inputs) = rec.inputs else {
        // Never got as far as acting: nothing in the account to undo.
        store.advance(name, Event::RolledBack, |_| {})?;
        bar.finish("=", "nothing to undo");
        return Ok("nothing to undo");
    };
    if rec.origin == Some(Origin::Adopted) {
        // Taken over, not made here: the state forgets it, the account
        // keeps it.
        store.advance(name, Event::RolledBack, |rec| {
            rec.outputs.clear();
            rec.error = None;
        })?;
        bar.finish("!", "left alone: adopted, not created by this state");
        return Ok("left alone");
    }
    let cx = Ctx {
        aws,
        runbook: &rb.name,
        bar: &bar,
    };
    let undone = async {
        // At the moment of acting: no function may point at the proxy.
        if let Some(guard) = guard.filter(|_| Guard::covers(step)) {
            let pointing = guard.pointing(aws).await?;
            if !pointing.is_empty() {
                anyhow::bail!(guard.stranded(
                    "not undone",
                    "pointed there after this rollback began, or left by it",
                    &pointing,
                    rollback_hint,
                ));
            }
        }
        crate::failpoint::hit(name, "before-rollback");
        step.rollback(&cx, &inputs, rec.before.as_ref()).await
    };
    match undone.await {
        Ok(undone) => {
            crate::failpoint::hit(name, "after-rollback");
            store.advance(name, Event::RolledBack, |rec| {
                rec.outputs.clear();
                rec.before = None;
                rec.error = None;
            })?;
            Ok(match undone {
                Undone::Done(msg) => {
                    bar.finish("✓", msg);
                    "undone"
                }
                Undone::AlreadyGone(msg) => {
                    bar.finish("=", msg);
                    "already gone"
                }
                Undone::LeftAlone(msg) => {
                    bar.finish("!", format!("left alone: {msg}"));
                    "left alone"
                }
            })
        }
        Err(e) if e.downcast_ref::<Interrupted>().is_some() => {
            bar.finish("✗", "interrupted");
            Err(e)
        }
        Err(e) => {
            bar.finish("✗", "rollback failed");
            let message = format!("{e:#}");
            store.update(|s| {
                if let Some(rec) = s.steps.get_mut(name) {
                    rec.error = Some(format!("rollback: {message}"));
                }
                Ok(())
            })?;
            Err(StepFailed(message).into())
        }
    }
}

/// The rule that keeps functions working through a rollback: nothing a
/// proxy needs to serve is undone while a function's variable points at
/// it, whatever the state says.
struct Guard {
    proxy: String,
    /// The proxy's endpoints, as the account has them.
    endpoints: Vec<String>,
}

impl Guard {
    /// Whether undoing `step` could leave a function on a proxy that
    /// cannot serve it: every step that changed the account, but the ones
    /// that point the functions (undone first).
    fn covers(step: &dyn Step) -> bool {
        step.changes_account() && !step.sets_function_variables()
    }

    /// The guard for undoing `undo`, if any of them is covered and the
    /// runbook's proxy exists in the account.
    async fn read(rb: &Runbook, state: &State, undo: &[&str], aws: &Aws) -> Result<Option<Guard>> {
        let covered = undo.iter().any(|n| {
            let rec = state.record(n);
            steps::get(n).is_some_and(Guard::covers)
                && rec.is_some_and(|r| r.inputs.is_some() && r.origin != Some(Origin::Adopted))
        });
        let recorded = |step: &str| state.record(step).and_then(|r| r.inputs.clone());
        let Some(proxy) = covered.then(|| steps::proxy_name(rb, &recorded)).flatten() else {
            return Ok(None);
        };
        let Some(found) = steps::find_proxy(aws, &proxy).await? else {
            return Ok(None);
        };
        let endpoints: Vec<String> = found.endpoint().into_iter().map(String::from).collect();
        Ok(Some(Guard { proxy, endpoints }))
    }

    async fn pointing(&self, aws: &Aws) -> Result<Vec<(String, String)>> {
        aws.variables_naming(&self.endpoints).await
    }

    /// What the user reads when functions still point at the proxy:
    /// `what` stopped, `why` they are not put back.
    fn stranded(&self, what: &str, why: &str, pointing: &[(String, String)], hint: &str) -> String {
        let names: Vec<String> = pointing
            .iter()
            .map(|(f, v)| format!("{v} of Lambda function {f}"))
            .collect();
        format!(
            "{what}: {} still point(s) at proxy `{}` ({}), which this rollback would leave \
             unable to serve them ({why}). Set each variable back to the database's endpoint \
             (in the Lambda console, which keeps the function's other variables), then run \
             `{hint}` again.",
            names.join(", "),
            self.proxy,
            self.endpoints.join(", "),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_schedule(
        names: &[&'static str],
        edges: &[(&'static str, &'static str)],
        fail: &'static str,
    ) -> (Vec<String>, Vec<(&'static str, bool)>) {
        let waits: BTreeMap<&str, Vec<&str>> = names
            .iter()
            .map(|n| {
                let deps = edges.iter().filter(|(s, _)| s == n).map(|(_, d)| *d);
                (*n, deps.collect())
            })
            .collect();
        let events = std::sync::Mutex::new(Vec::new());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let results = rt.block_on(schedule(
            names,
            &waits,
            |name| {
                let events = &events;
                async move {
                    events.lock().unwrap().push(format!("start {name}"));
                    let ms = if name == "slow" { 30 } else { 1 };
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                    events.lock().unwrap().push(format!("end {name}"));
                    if name == fail {
                        anyhow::bail!("{name} failed");
                    }
                    Ok(!name.starts_with("skip"))
                }
            },
            |done| *done,
        ));
        let results = results.into_iter().map(|(n, r)| (n, r.is_ok())).collect();
        (events.into_inner().unwrap(), results)
    }

    #[test]
    fn independent_steps_start_together_and_dependents_after() {
        let (events, results) = run_schedule(
            &["slow", "quick", "after-slow"],
            &[("after-slow", "slow")],
            "",
        );
        let at = |e: &str| events.iter().position(|x| x == e).unwrap();
        assert!(at("start quick") < at("end slow"), "{events:?}");
        assert!(at("end slow") < at("start after-slow"), "{events:?}");
        assert_eq!(results.len(), 3);
        assert!(results.iter().all(|(_, ok)| *ok));
    }

    #[test]
    fn after_a_failure_nothing_new_starts_and_what_runs_finishes() {
        let (events, results) = run_schedule(
            &["quick", "slow", "after-quick"],
            &[("after-quick", "quick")],
            "quick",
        );
        assert!(events.contains(&"end slow".to_string()), "{events:?}");
        assert!(
            !events.iter().any(|e| e.contains("after-quick")),
            "{events:?}"
        );
        assert_eq!(results, [("quick", false), ("slow", true)]);
    }

    #[test]
    fn confirm_answers() {
        assert_eq!(parse_answer("y\n"), Some(Answer::Yes));
        assert_eq!(parse_answer(" YES "), Some(Answer::Yes));
        assert_eq!(parse_answer("n"), Some(Answer::No));
        assert_eq!(parse_answer("c"), Some(Answer::Continue));
        assert_eq!(parse_answer("Continue"), Some(Answer::Continue));
        // Anything else is asked again, never taken as yes.
        assert_eq!(parse_answer(""), None);
        assert_eq!(parse_answer("yep"), None);
    }

    #[test]
    fn a_skipped_step_holds_back_only_what_waits_on_it() {
        let (events, results) = run_schedule(
            &["skip-a", "b", "after-a", "after-after-a", "after-b"],
            &[
                ("after-a", "skip-a"),
                ("after-after-a", "after-a"),
                ("after-b", "b"),
            ],
            "",
        );
        assert!(!events.iter().any(|e| e.contains("after-a")), "{events:?}");
        assert!(events.contains(&"end after-b".to_string()), "{events:?}");
        // Held back is not started, not an error.
        let mut results = results;
        results.sort();
        assert_eq!(results, [("after-b", true), ("b", true), ("skip-a", true)]);
    }

    #[test]
    fn steps_that_wait_on_each_other_are_an_error_not_a_silent_stop() {
        let (events, results) = run_schedule(&["a", "b"], &[("a", "b"), ("b", "a")], "");
        assert!(events.is_empty());
        assert_eq!(results, [("a", false), ("b", false)]);
    }

    #[test]
    fn ancestors_are_followed_through_the_graph() {
        let graph: BTreeMap<String, Vec<String>> = [
            ("c", vec!["b"]),
            ("b", vec!["a"]),
            ("a", vec![]),
            ("d", vec![]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
        .collect();
        assert_eq!(ancestors(&graph, "c"), BTreeSet::from(["a", "b"]));
        assert!(ancestors(&graph, "d").is_empty());
    }

    #[test]
    fn changed_fields_names_each_difference() {
        let old: Value = serde_json::json!({"role_name": "a", "tags": {"x": "1"}, "same": 1});
        let new: Value = serde_json::json!({"role_name": "b", "tags": {"x": "2"}, "same": 1});
        let diffs = changed_fields(Some(&old), &new);
        assert_eq!(diffs.len(), 2);
        assert_eq!(diffs[0], "role_name: a -> b");
        assert_eq!(diffs[1], "tags.x: 1 -> 2");
    }

    #[test]
    fn changed_fields_are_shown_whole() {
        let long: Vec<String> = (0..40).map(|i| format!("function-{i}")).collect();
        let old = serde_json::json!({"functions": ["f"], "pool": {"max": 100, "idle": 50}});
        let new = serde_json::json!({"functions": long, "pool": {"max": 50, "idle": 50}});
        let diffs = changed_fields(Some(&old), &new);
        assert_eq!(diffs.len(), 2, "{diffs:?}");
        assert!(diffs[0].starts_with(r#"functions: ["f"] -> ["function-0","#));
        assert!(diffs[0].ends_with(r#""function-39"]"#), "cut: {}", diffs[0]);
        assert_eq!(diffs[1], "pool.max: 100 -> 50");
    }

    #[test]
    fn what_this_state_never_acted_on_is_someone_elses() {
        let done = Found::Done(Default::default());
        let unfinished = Found::Incomplete("creating".into());
        for origin in [Some(Origin::Created), Some(Origin::Adopted)] {
            assert_eq!(made_elsewhere(origin, &done, false), None);
            assert_eq!(made_elsewhere(origin, &unfinished, false), None);
        }
        assert_eq!(made_elsewhere(None, &done, false), Some(false));
        assert_eq!(made_elsewhere(None, &done, true), None, "adopted");
        assert_eq!(
            made_elsewhere(None, &unfinished, true),
            Some(true),
            "an unfinished one is never adopted"
        );
        assert_eq!(made_elsewhere(None, &Found::Missing, false), None);
    }

    #[test]
    fn a_step_waited_on_must_be_applied_here_and_done_in_the_account() {
        let done = Found::Done(Default::default());
        let ours = Some(Origin::Created);
        assert_eq!(unmet(Status::Applied, ours, Some(&done)), None);
        assert_eq!(
            unmet(Status::Applied, Some(Origin::Adopted), Some(&done)),
            None
        );
        assert_eq!(
            unmet(Status::Pending, None, Some(&done)).as_deref(),
            Some("pending in this state"),
            "done in the account but not by this state"
        );
        assert_eq!(
            unmet(Status::Applied, None, Some(&done)).as_deref(),
            Some("not made or adopted by this state"),
            "applied without an origin: found, not made"
        );
        assert!(unmet(Status::Applied, ours, Some(&Found::Missing)).is_some());
        assert!(unmet(Status::Applied, ours, Some(&Found::Incomplete("x".into()))).is_some());
        assert!(unmet(Status::Applied, ours, None).is_some());
        assert!(unmet(Status::Started, ours, Some(&done)).is_some());
    }
}
