//! `rollback`: the run's graph backwards, undoing only what this state
//! created, never stranding a function on the proxy.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Result;

use crate::aws::Aws;
use crate::engine::guard::Guard;
use crate::engine::report::{copy_results, emit_report, first_error};
use crate::engine::retire::undo_retired;
use crate::engine::runner::StepFailed;
use crate::engine::schedule::{schedule, undo_waits};
use crate::engine::store::Store;
use crate::engine::{order_for_status, our_endpoints};
use crate::error::Failure;
use crate::open::{EnvMode, Options, check_place, command_hint, load_runbook, open_state};
use crate::poll::Interrupted;
use crate::runbook::Runbook;
use crate::state::{Event, Origin};
use crate::steps::{self, Ctx, Undone};
use crate::ui::progress::Progress;
use crate::ui::prompt::confirm;

/// `include_adopted`: undo what this state adopted too, as if it had made
/// it (`--include-adopted`).
pub async fn rollback(
    runbook: &Path,
    to: Option<&str>,
    yes: bool,
    include_adopted: bool,
    opts: &Options,
) -> Result<()> {
    let rb = load_runbook(runbook, EnvMode::Lenient)?;
    let backend = open_state(&rb, opts, "rollback").await?;
    let (_lock, mut state) = backend.lock_and_load(&rb.name).await?;
    let order = order_for_status(&rb, &state);
    let keep = match to {
        Some(t) => {
            order.iter().position(|n| n == t).ok_or_else(|| {
                Failure::usage(format!(
                    "--to {t}: no such step; the steps are: {}",
                    order.join(", ")
                ))
            })? + 1
        }
        None => 0,
    };
    let undo: Vec<&str> = order[keep..]
        .iter()
        .rev()
        .filter(|n| {
            state.status(n).may_have_changed_account()
                || state.record(n).is_some_and(|r| !r.retired.is_empty())
        })
        .map(String::as_str)
        .collect();
    if undo.is_empty() {
        if opts.output == crate::cli::Output::Json {
            let none: &[(&str, Result<(&str, std::time::Duration)>)] = &[];
            let region = state.region.clone().unwrap_or_default();
            emit_report("rollback", &rb, &region, &backend, &[], none, |l| l, Ok(()));
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
            "Roll back {} step(s) of runbook `{}` ({}), deleting only what this runbook {}?",
            undo.len(),
            rb.name,
            undo.join(", "),
            if include_adopted {
                "created or adopted"
            } else {
                "created"
            }
        ),
        yes,
    )?;
    let aws = Aws::connect(&opts.aws, rb.aws()).await?;
    if check_place(&mut state, &aws, &backend).await? {
        backend.save(&state).await?;
    }
    crate::commands::probe::sweep_recorded(&aws, &rb, &backend, &mut state).await?;
    let rollback_hint = command_hint("rollback", &rb, opts);
    let guard = Guard::read(&rb, &state, &undo, include_adopted, &aws).await?;
    if let Some(guard) = &guard {
        // Before anything: a function that points at the proxy and that
        // this rollback does not point back stops it here.
        let restored: BTreeSet<(String, String)> = undo
            .iter()
            .filter_map(|n| Some((steps::get(n)?, state.record(n)?)))
            // Whatever its origin: what it recorded, it puts back.
            .filter(|(step, _)| step.sets_function_variables())
            .flat_map(|(step, rec)| match &rec.inputs {
                Some(inputs) => step.restores(inputs, rec.before.as_ref(), include_adopted),
                None => Vec::new(),
            })
            .collect();
        let covered: Vec<&dyn steps::Step> = undo
            .iter()
            .filter_map(|n| steps::get(n))
            .filter(|s| Guard::covers(*s))
            .collect();
        let stranded: Vec<(String, String)> = guard
            .cut_off(&aws, &covered)
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
            )));
        }
    }
    let progress = Progress::new(opts.no_progress);
    progress.line(format!(
        "Rollback of runbook `{}` in {}; state: {backend}",
        rb.name, aws.region
    ));
    let waits = undo_waits(&undo, &rb);
    let endpoints = our_endpoints(&state);
    let adopted: BTreeSet<&str> = undo
        .iter()
        .copied()
        .filter(|n| {
            state
                .record(n)
                .is_some_and(|r| r.origin == Some(Origin::Adopted))
        })
        .collect();
    let store = Store::new(backend, state);
    let how = Undo {
        rb: &rb,
        aws: &aws,
        store: &store,
        progress: &progress,
        guard: guard.as_ref(),
        hint: &rollback_hint,
        include_adopted,
        endpoints: &endpoints,
    };
    let results = schedule(
        &undo,
        &waits,
        |name| {
            let how = &how;
            async move {
                let started = std::time::Instant::now();
                let undone = how.step(name).await?;
                Ok((undone, started.elapsed()))
            }
        },
        |_| true,
    )
    .await;
    let left: Vec<&str> = results
        .iter()
        .filter(|(_, r)| matches!(r, Ok(("left alone", _))))
        .map(|(name, _)| *name)
        .collect();
    let report = (opts.output == crate::cli::Output::Json).then(|| copy_results(&results));
    let ended = first_error(results, &rb, opts, "rollback");
    if let Some(steps) = report {
        emit_report(
            "rollback",
            &rb,
            &aws.region,
            &store.backend,
            &undo,
            &steps,
            |label| label,
            ended.as_ref().map(|_| ()),
        );
    }
    ended?;
    let left_adopted = !include_adopted && left.iter().any(|n| adopted.contains(n));
    crate::say!("{}", summary(undo.len(), &left, left_adopted));
    Ok(())
}

/// The last line of a rollback of `count` steps: what it left in place
/// (`left`: adopted, or a function's variable without a value to put
/// back), and, when some of it is adopted (`left_adopted`), how to undo
/// that too.
fn summary(count: usize, left: &[&str], left_adopted: bool) -> String {
    if left.is_empty() {
        return format!("Rolled back {count} step(s).");
    }
    let hint = match left_adopted {
        true => {
            "; `rollback --include-adopted` undoes what this state adopted, in place of a plain \
             rollback: this one has let go of it, so adopt it again first"
        }
        false => "",
    };
    format!(
        "Rolled back {} of {count} step(s); left in place: {} (the lines above say why{hint}).",
        count - left.len(),
        left.join(", ")
    )
}

/// What every step of one rollback shares.
struct Undo<'a> {
    rb: &'a Runbook,
    aws: &'a Aws,
    store: &'a Store,
    progress: &'a Progress,
    guard: Option<&'a Guard>,
    hint: &'a str,
    /// `--include-adopted`: what this state adopted is undone too.
    include_adopted: bool,
    /// Every proxy endpoint this state set (see [`our_endpoints`]).
    endpoints: &'a [String],
}

impl Undo<'_> {
    /// Undoes one step (first what a replacement left of it, then what it
    /// holds now); says how: undone, already gone, left alone, or nothing
    /// to undo.
    async fn step(&self, name: &str) -> Result<&'static str> {
        let (store, aws) = (self.store, self.aws);
        let step = steps::named(name);
        let rec = store.read(|s| s.record(name).cloned().unwrap_or_default());
        let bar = self.progress.step(name);
        let retired = if rec.retired.is_empty() {
            Vec::new()
        } else {
            match undo_retired(name, self.rb, aws, store, &bar, self.guard, self.hint).await {
                Ok(done) => done,
                Err(e) => return Err(self.failed(name, &bar, e).await),
            }
        };
        let Some(inputs) = rec.inputs.filter(|_| rec.status.may_have_changed_account()) else {
            // Never got as far as acting: nothing in the account to undo
            // (but what a replacement left, undone above).
            if rec.status.may_have_changed_account() {
                store.advance(name, Event::RolledBack, |_| {}).await?;
            }
            return Ok(match retired.is_empty() {
                true => {
                    bar.finish("=", "nothing to undo");
                    "nothing to undo"
                }
                false => {
                    bar.finish("✓", retired.join("; "));
                    "undone"
                }
            });
        };
        let adopted = rec.origin == Some(Origin::Adopted);
        // Taken over, not made here: the state forgets it, the account keeps
        // it. What a step that points the functions recorded of their old
        // values is put back whatever its origin: it only holds values it
        // replaced, or the runbook's `restore_value`; a function found on
        // the proxy stays there, unless the runbook says where it goes back
        // (`restore_value`, or with --include-adopted its
        // `include_adopted_restore_value`).
        if adopted && !self.include_adopted && !step.sets_function_variables() {
            store
                .advance(name, Event::RolledBack, |rec| {
                    rec.outputs.clear();
                    rec.error = None;
                })
                .await?;
            bar.finish(
                "!",
                "left alone: adopted, not created by this state (--include-adopted undoes it)",
            );
            return Ok("left alone");
        }
        // Rollback works from the recorded inputs and `before` alone.
        let cx = Ctx {
            adopted: adopted && self.include_adopted,
            include_adopted: self.include_adopted,
            our_endpoints: self.endpoints,
            ..Ctx::new(aws, &self.rb.name, &bar, None)
        };
        let undone = async {
            // At the moment of acting: no function may point at the proxy.
            if let Some(guard) = self.guard.filter(|_| Guard::covers(step)) {
                let pointing = guard.cut_off(aws, &[step]).await?;
                if !pointing.is_empty() {
                    anyhow::bail!(guard.stranded(
                        "not undone",
                        "pointed there after this rollback began, or left by it",
                        &pointing,
                        self.hint,
                    ));
                }
            }
            crate::failpoint::hit(name, "before-rollback");
            step.rollback(&cx, &inputs, rec.before.as_ref()).await
        };
        let undone = match undone.await {
            Ok(undone) => undone,
            Err(e) => return Err(self.failed(name, &bar, e).await),
        };
        crate::failpoint::hit(name, "after-rollback");
        store
            .advance(name, Event::RolledBack, |rec| {
                rec.outputs.clear();
                rec.before = None;
                rec.error = None;
            })
            .await?;
        let also = match retired.is_empty() {
            true => String::new(),
            false => format!(" (and the replaced one: {})", retired.join("; ")),
        };
        Ok(match undone {
            Undone::Done(msg) => {
                bar.finish("✓", format!("{msg}{also}"));
                "undone"
            }
            Undone::AlreadyGone(msg) => {
                bar.finish("=", format!("{msg}{also}"));
                "already gone"
            }
            Undone::LeftAlone(msg) => {
                bar.finish("!", format!("left alone: {msg}{also}"));
                "left alone"
            }
        })
    }

    /// A step that could not be undone: interrupted (it stays as it was),
    /// or failed (the state records why).
    async fn failed(
        &self,
        name: &str,
        bar: &crate::ui::progress::StepBar,
        e: anyhow::Error,
    ) -> anyhow::Error {
        if e.downcast_ref::<Interrupted>().is_some() {
            bar.finish("✗", "interrupted");
            return e;
        }
        bar.finish("✗", "rollback failed");
        let message = format!("{e:#}");
        let saved = self.store.update(|s| {
            if let Some(rec) = s.steps.get_mut(name) {
                rec.error = Some(format!("rollback: {message}"));
            }
            Ok(())
        });
        match saved.await {
            Ok(()) => StepFailed(message).into(),
            Err(e) => e,
        }
    }
}
