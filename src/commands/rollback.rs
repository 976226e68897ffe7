//! `rollback`: the run's graph backwards, undoing only what this state
//! created, never stranding a function on the proxy.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Result;

use crate::aws::Aws;
use crate::engine::order_for_status;
use crate::engine::report::{copy_results, emit_report, first_error};
use crate::engine::runner::StepFailed;
use crate::engine::schedule::{schedule, undo_waits};
use crate::engine::store::Store;
use crate::error::Failure;
use crate::open::{
    EnvMode, Options, check_place, command_hint, load_runbook, save, state_error, state_path,
};
use crate::poll::Interrupted;
use crate::runbook::Runbook;
use crate::state::{Event, Lock, Origin, State};
use crate::steps::{self, Ctx, Step, Undone};
use crate::ui::progress::Progress;
use crate::ui::prompt::confirm;

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
                ))
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
            )));
        }
    }
    let progress = Progress::new(opts.no_progress);
    progress.line(format!(
        "Rollback of runbook `{}` in {}; state: {}",
        rb.name,
        aws.region,
        path.display()
    ));
    let waits = undo_waits(&undo, &rb);
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
pub(crate) async fn undo_step(
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
    // Rollback works from the recorded inputs and `before` alone.
    let cx = Ctx::new(aws, &rb.name, &bar, None);
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
pub(crate) struct Guard {
    pub(crate) proxy: String,
    /// The proxy's endpoints, as the account has them.
    pub(crate) endpoints: Vec<String>,
}

impl Guard {
    /// Whether undoing `step` could leave a function on a proxy that
    /// cannot serve it: every step that changed the account, but the ones
    /// that point the functions (undone first).
    pub(crate) fn covers(step: &dyn Step) -> bool {
        step.changes_account() && !step.sets_function_variables()
    }

    /// The guard for undoing `undo`, if any of them is covered and the
    /// runbook's proxy exists in the account.
    pub(crate) async fn read(
        rb: &Runbook,
        state: &State,
        undo: &[&str],
        aws: &Aws,
    ) -> Result<Option<Guard>> {
        let covered = undo.iter().any(|n| {
            let rec = state.record(n);
            steps::get(n).is_some_and(Guard::covers)
                && rec.is_some_and(|r| r.inputs.is_some() && r.origin != Some(Origin::Adopted))
        });
        let recorded = |step: &str| state.record(step).and_then(|r| r.inputs.clone());
        let Some(proxy) = covered.then(|| steps::proxy_name(rb, &recorded)).flatten() else {
            return Ok(None);
        };
        let Some(found) = crate::aws::rds::find(aws, &proxy).await? else {
            return Ok(None);
        };
        let endpoints: Vec<String> = found.endpoint().into_iter().map(String::from).collect();
        Ok(Some(Guard { proxy, endpoints }))
    }

    pub(crate) async fn pointing(&self, aws: &Aws) -> Result<Vec<(String, String)>> {
        aws.variables_naming(&self.endpoints).await
    }

    /// What the user reads when functions still point at the proxy:
    /// `what` stopped, `why` they are not put back.
    pub(crate) fn stranded(
        &self,
        what: &str,
        why: &str,
        pointing: &[(String, String)],
        hint: &str,
    ) -> String {
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
