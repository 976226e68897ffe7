//! `run` and `resume`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use crate::cli::Selection;
use crate::engine::decide::{Block, Checked, Decision, Facts, Flags, decide};
use crate::engine::guard::{Guard, retired_proxies};
use crate::engine::report::{copy_results, emit_report, first_error};
use crate::engine::retire::{retire_pass, with_retired};
use crate::engine::runner::{
    Outcome, RunHow, Runner, StepFailed, needs_outputs, not_this_states, unmet, waits_unmet,
};
use crate::engine::saved::{Now, SavedPlan, found_digest};
use crate::engine::schedule::{schedule, waits_on};
use crate::engine::store::Store;
use crate::engine::{
    Hints, edited_since_applied, needs_new_name, read_external, record_for, replacements, resolve,
    select,
};
use crate::error::Failure;
use crate::open::{
    EnvMode, Options, command_hint, connect, load_runbook, open_state, record_place,
};
use crate::preflight::{preflight_verdict, print_preflight};
use crate::state::{self, Status};
use crate::steps::{self, Ctx, Found};
use crate::ui::progress::{Progress, StepBar};
use crate::ui::prompt::{Asker, confirm};

/// A step of this run, resolved once: the step, its inputs as the state
/// gives them, and the outputs (step, output) they still miss.
type Resolved = (&'static dyn steps::Step, Value, Vec<(String, String)>);

/// `run` and `resume`; `ask`: `--confirm`, a question before each step;
/// `saved`: `--plan FILE`, what a saved plan says (or nothing at all).
pub async fn run(
    runbook: &Path,
    sel: &Selection,
    how: RunHow,
    saved: Option<&Path>,
    opts: &Options,
) -> Result<()> {
    let RunHow {
        yes,
        ask,
        resume,
        adopt,
        allow_replace,
    } = how;
    let rb = load_runbook(runbook, EnvMode::Strict)?;
    let saved = saved.map(SavedPlan::load).transpose()?;
    // A reviewed plan that replaces was made with --allow-replace: running
    // it is the consent.
    let allow_replace = allow_replace || saved.as_ref().is_some_and(|p| p.allow_replace);
    let selected = select(&rb, sel)?;
    // Before any call: the clients, and what the region settles without one.
    let aws = connect(&rb, opts).await?;
    let backend = open_state(&rb, opts, if resume { "resume" } else { "run" }).await?;
    if resume && !backend.exists().await? {
        return Err(Failure::usage(format!(
            "there is no state at {backend}: nothing to resume; start with `{}`",
            command_hint("run", &rb, opts)
        )));
    }
    let (_lock, mut state) = backend.load_for_run(&rb.name).await?;

    // An edit that would need a new resource is refused before touching
    // AWS, in any step of the runbook (a `--step` of another must not act
    // on it: a proxy moved to a group its rules do not name, say), unless
    // --allow-replace and the step can be replaced safely; every other edit
    // is applied in place by the step's update.
    let replacing = replacements(&rb, &state, allow_replace, opts)?;
    if !replacing.is_empty() && selected.len() != rb.step_names().count() {
        return Err(Failure::usage(format!(
            "a replacement is made by a run of the whole runbook (the old resource is deleted \
             once every function has moved to the new one): run without --step, --from or \
             --until: `{} --allow-replace`",
            command_hint("run", &rb, opts)
        )));
    }

    let verb = if resume { "Resume" } else { "Run" };
    for (name, changes) in &replacing {
        crate::say!(
            "Replacing {name} ({}): the new one is made beside the old, the functions move to \
             it once it is ready, then the old one is deleted.",
            changes.join("; ")
        );
    }
    if resume
        && selected
            .iter()
            .all(|n| matches!(state.status(n), Status::RolledBack | Status::Pending))
    {
        crate::say!("Every step is pending or rolled back: resume starts the run over.");
    }
    if ask {
        if !std::io::stdin().is_terminal() {
            return Err(Failure::usage(
                "--confirm asks on the terminal, and stdin is not one: run without --confirm (and with --yes)",
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
    read_external(&rb, &aws).await?;

    // The first round, all at once: who we are, every step that can be
    // checked already, and preflight unless every step is applied as the
    // runbook says (then a re-run costs the checks alone; an edit will act).
    let all_applied = selected.iter().all(|n| {
        state.status(n) == Status::Applied && edited_since_applied(n, &rb, &state).is_none()
    });
    // The steps the selection waits on but leaves out (`--step`, `--from`):
    // they must be in place in the account, so they are checked too.
    let graph = crate::engine::schedule::run_graph(&rb, &state, adopt);
    let mut outside: Vec<&str> = Vec::new();
    for name in &selected {
        for dep in graph.get(*name).into_iter().flatten() {
            if !selected.contains(&dep.as_str()) && !outside.contains(&dep.as_str()) {
                outside.push(dep);
            }
        }
    }
    // Each step this run reads, resolved once: the step, its inputs as the
    // state gives them, and the outputs they still miss.
    let resolved: BTreeMap<&str, Resolved> = selected
        .iter()
        .chain(&outside)
        .map(|n| {
            let step = steps::named(n);
            let (inputs, missing) = resolve(step, &rb, &state);
            (*n, (step, inputs, missing))
        })
        .collect();
    let checkable = resolved
        .iter()
        .filter(|(_, (step, _, missing))| step.changes_account() && missing.is_empty());
    let prechecks = futures_util::future::join_all(checkable.map(|(name, (step, inputs, _))| {
        let (aws, rb_name) = (&aws, &rb.name);
        let recorded = record_for(&state, *step, inputs);
        async move {
            let bar = StepBar::silent(name);
            let cx = Ctx::new(aws, rb_name, &bar, recorded.as_ref());
            let found = step.check(&cx, inputs).await;
            (name.to_string(), state::checksum(inputs), found)
        }
    }));
    let early_preflight = async {
        if all_applied {
            None
        } else {
            Some(crate::preflight::run(&rb, &aws, &state, &backend).await)
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
    if record_place(&mut state, &account?, &aws.region, &backend)? && !state.steps.is_empty() {
        backend.save(&state).await?;
    }
    crate::commands::probe::sweep_recorded(&aws, &rb, &backend, &mut state).await?;
    let prechecked: BTreeMap<String, (String, Found)> = prechecks
        .into_iter()
        .filter_map(|(name, sum, found)| match found {
            Ok(f) => Some((name, (sum, f))),
            Err(e) => {
                tracing::debug!("{name}: the first check failed, checked again in its turn: {e:#}");
                None
            }
        })
        .collect();
    let run_hint = command_hint("run", &rb, opts);
    // Before any change, each step's decision from the first round, as
    // `plan` shows it: what this state never made is refused (unless
    // adopted), and so is what only a new resource would match (with
    // --allow-replace or without, what is needed said at once).
    let flags = Flags {
        allow_replace,
        adopt,
    };
    let decided: BTreeMap<&str, Decision> = resolved
        .iter()
        .filter_map(|(n, (step, inputs, missing))| {
            let facts = Facts::of(*step, &rb, &state, &state, inputs, missing);
            let found = Checked::Found(&prechecked.get(*n)?.1);
            Some((*n, decide(&facts, found, flags)))
        })
        .collect();
    if let Some(saved) = &saved {
        // Exactly what was reviewed, or nothing: the same inputs, the same
        // answers from the account, the same decisions.
        let now: Vec<Now> = selected
            .iter()
            .map(|n| Now {
                name: n.to_string(),
                inputs: state::checksum(&resolved[n].1),
                found: prechecked.get(*n).map(|(_, f)| found_digest(f)),
                action: decided.get(n).map(Decision::action),
            })
            .collect();
        let account = aws.account_id().await?;
        let plan_hint = command_hint("plan", &rb, opts);
        saved.holds(&rb.name, account, &aws.region, &now, &plan_hint, &run_hint)?;
    }

    let foreign: Vec<(&str, String, bool)> = selected
        .iter()
        .filter_map(|n| match decided.get(n)? {
            Decision::Blocked(Block::MadeElsewhere { unfinished }) => {
                let (step, inputs, _) = &resolved[n];
                Some((*n, step.describe(inputs).ok()?, unfinished.is_some()))
            }
            _ => None,
        })
        .collect();
    if !foreign.is_empty() {
        return Err(not_this_states(&foreign, &backend, &run_hint));
    }
    let replaced: Vec<(String, Vec<String>)> = decided
        .iter()
        .filter_map(|(n, d)| match d {
            Decision::Blocked(Block::NeedsNewName(why)) => Some((n.to_string(), why.clone())),
            _ => None,
        })
        .collect();
    if !replaced.is_empty() {
        return Err(needs_new_name(
            &replaced,
            &rb,
            &state,
            &Hints::new(&rb, opts),
        ));
    }
    for name in &selected {
        let missing: Vec<(String, String)> = resolved[name]
            .2
            .iter()
            .filter(|(dep, _)| !selected.contains(&dep.as_str()))
            .cloned()
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
        !resolved[n].0.changes_account()
            || matches!(
                decided.get(n),
                Some(Decision::Nothing { .. } | Decision::Adopt { .. })
            )
    });
    if report.is_none() && !all_done {
        report = Some(crate::preflight::run(&rb, &aws, &state, &backend).await);
    }
    if let Some(report) = report {
        let report = report?;
        print_preflight(&report, false);
        preflight_verdict(&report)?;
    }

    // Spinners would redraw over --confirm's questions.
    let progress = Progress::new(opts.no_progress || ask);
    progress.line(format!(
        "{verb} of runbook `{}` in {}; state: {backend}",
        rb.name, aws.region
    ));
    let loaded = state.clone();
    let store = Store::new(backend, state);
    let runner = Runner {
        rb: &rb,
        aws: &aws,
        store: &store,
        progress: &progress,
        graph: &graph,
        prechecked,
        changed: Default::default(),
        run_hint,
        hints: Hints::new(&rb, opts),
        asker: ask.then(Asker::new),
        flags,
        loaded,
        verified: Default::default(),
        removals: Default::default(),
        deferred: Default::default(),
    };
    let waits = waits_on(&selected, &graph);
    let mut results = schedule(
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
    // What the steps left for later, then what a step recorded without its
    // own write (S3) saved, whatever the outcome, an early error included.
    let passes = later_passes(&runner, &selected, opts, &mut results).await;
    let flushed = store.flush().await;
    passes?;
    flushed?;
    // For --output json: the results as they were, before the error is built.
    let report = (opts.output == crate::cli::Output::Json).then(|| copy_results(&results));
    let outcomes = first_error(results, &rb, opts, "resume");
    if let Some(steps) = report {
        emit_report(
            if resume { "resume" } else { "run" },
            &rb,
            &aws.region,
            &store.backend,
            &selected,
            &steps,
            |o| match o {
                Outcome::Changed => "changed",
                Outcome::Unchanged => "unchanged",
                Outcome::Verified => "verified",
                Outcome::NotExercised => "not_exercised",
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
    match count(Outcome::NotExercised) {
        0 => {}
        n => verified_note.push_str(&format!(
            "; {n} verification(s) not exercised (see above: neither passed nor failed)"
        )),
    }
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
            selected.len() - changed - verified - count(Outcome::NotExercised) - not_run
        );
    }
    Ok(())
}

/// The passes after the first: what the steps left to remove, once every
/// step of the runbook is done (every function on its new path), one step
/// after another; then what replacements left. A run of some steps only
/// leaves them to a whole run.
async fn later_passes<'n>(
    runner: &Runner<'_>,
    selected: &[&'n str],
    opts: &Options,
    results: &mut Vec<(&'n str, Result<(Outcome, std::time::Duration)>)>,
) -> Result<()> {
    let (rb, aws, store, progress) = (runner.rb, runner.aws, runner.store, runner.progress);
    let whole = selected.len() == rb.step_names().count();
    let all_done = results.len() == selected.len()
        && results
            .iter()
            .all(|(_, r)| matches!(r, Ok((o, _)) if *o != Outcome::Skipped));
    let deferred = runner.deferred.take();
    if !whole && !deferred.is_empty() {
        progress.line(format!(
            "  note: {} leave(s) what the runbook no longer wants in place until a run of the \
         whole runbook, which removes it once every function has moved: `{}`",
            deferred.iter().cloned().collect::<Vec<_>>().join(", "),
            command_hint("run", rb, opts)
        ));
    }
    // What replacements left: nothing of the old proxy's way (its policy
    // statement, its rules) goes while a function still points at it.
    let retiring = store.read(|s| with_retired(rb, s));
    let mut all_done = all_done;
    if whole && all_done && !retiring.is_empty() {
        let guard = Guard::of(store.read(retired_proxies), aws).await?;
        if let Some(guard) = guard {
            let pointing = guard.pointing(aws).await?;
            if !pointing.is_empty() {
                let hint = command_hint("run", rb, opts) + " --allow-replace";
                let why = "it is the old one, kept with its way to the DB until they move";
                let e = guard.stranded(
                    "the replaced proxy and its way in were kept",
                    why,
                    &pointing,
                    &hint,
                );
                let now = std::time::Instant::now();
                merge(results, steps::PROXY, Err(StepFailed(e).into()), now);
                all_done = false;
            }
        }
    }
    if whole && all_done && !deferred.is_empty() {
        runner
            .removals
            .store(true, std::sync::atomic::Ordering::Relaxed);
        for name in selected.iter().filter(|n| deferred.contains(**n)) {
            let started = std::time::Instant::now();
            let second = runner.step(name).await;
            merge(results, name, second, started);
            if results.iter().any(|(_, r)| r.is_err()) {
                break;
            }
        }
    }
    // Last, the old resources, now that every function uses the new ones
    // (never while one points at an old proxy).
    let all_done = all_done && results.iter().all(|(_, r)| r.is_ok());
    if !whole && !retiring.is_empty() {
        progress.line(format!(
            "  note: what was replaced ({}) is deleted by a run of the whole runbook, once \
         every function has moved: `{}`",
            retiring.join(", "),
            command_hint("run", rb, opts)
        ));
    }
    if whole && all_done && !retiring.is_empty() {
        progress.line(
            "  now that every function has moved, deleting what was replaced: ".to_string()
                + &retiring.join(", "),
        );
        let names: Vec<&str> = retiring.iter().map(String::as_str).collect();
        let hint = command_hint("resume", rb, opts) + " --allow-replace";
        // Deletions come before their state writes: the lock first.
        store.backend.hold().await?;
        let started = std::time::Instant::now();
        for (name, second) in retire_pass(&names, rb, aws, store, progress, &hint).await? {
            let name = steps::named(name).name();
            merge(results, name, second.map(|_| Outcome::Changed), started);
        }
    }
    Ok(())
}

/// A step's result after a later pass over it (the removals, or the
/// deletion of what it replaced): its first pass's, changed by the later
/// one if that changed something or failed. A step the runbook no longer
/// lists gets the later result as its own.
fn merge<'n>(
    results: &mut Vec<(&'n str, Result<(Outcome, std::time::Duration)>)>,
    name: &'n str,
    later: Result<Outcome>,
    started: std::time::Instant,
) {
    match results.iter_mut().find(|(n, _)| *n == name) {
        Some((_, first)) => match (later, first) {
            (Err(e), first) => *first = Err(e),
            (Ok(Outcome::Changed), Ok((outcome, took))) => {
                *outcome = Outcome::Changed;
                *took += started.elapsed();
            }
            _ => {}
        },
        None => results.push((name, later.map(|o| (o, started.elapsed())))),
    }
}
