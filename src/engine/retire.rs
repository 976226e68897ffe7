//! What a replacement leaves behind: the resources a step made before its
//! identity changed (`run --allow-replace`), kept in its record as
//! `retired` until every function has moved to the new ones, then deleted
//! by the step's own rollback, the run's graph backwards. `rollback` deletes
//! them the same way.

use anyhow::Result;

use super::guard::Guard;
use super::schedule::{schedule, undo_waits};
use super::store::Store;
use crate::aws::Aws;
use crate::runbook::Runbook;
use crate::state::{Origin, State};
use crate::steps::{self, Ctx, Undone};
use crate::ui::progress::{Progress, StepBar};

/// The steps holding retired resources, in the runbook's order (then any
/// the runbook no longer lists).
pub(crate) fn with_retired(rb: &Runbook, state: &State) -> Vec<String> {
    super::order_for_status(rb, state)
        .into_iter()
        .filter(|n| state.record(n).is_some_and(|r| !r.retired.is_empty()))
        .collect()
}

/// Deletes the retired resources of step `name`, oldest first, each only
/// while no function points at a retired proxy (`guard`); each one deleted
/// leaves the state at once. One this state adopted is left in place and
/// forgotten. Returns what was done, a line each.
pub(crate) async fn undo_retired(
    name: &str,
    rb: &Runbook,
    aws: &Aws,
    store: &Store,
    bar: &StepBar,
    guard: Option<&Guard>,
    hint: &str,
) -> Result<Vec<String>> {
    let step = steps::named(name);
    let mut done = Vec::new();
    while let Some(entry) = store.read(|s| s.record(name).and_then(|r| r.retired.first().cloned()))
    {
        let forget = || {
            store.update(|s| {
                if let Some(rec) = s.steps.get_mut(name)
                    && let Some(at) = rec.retired.iter().position(|r| *r == entry)
                {
                    rec.retired.remove(at);
                }
                Ok(())
            })
        };
        let what = step.describe(&entry.inputs)?;
        if entry.origin == Origin::Adopted {
            forget().await?;
            done.push(format!(
                "left in place (adopted, not made by this state): {what}"
            ));
            continue;
        }
        if let Some(guard) = guard.filter(|_| Guard::covers(step)) {
            let pointing = guard.pointing(aws).await?;
            if !pointing.is_empty() {
                anyhow::bail!(guard.stranded(
                    &format!("the replaced {what} was not deleted"),
                    "it is the old one, about to be deleted",
                    &pointing,
                    hint,
                ));
            }
        }
        bar.set(format!("deleting the replaced {what}"));
        crate::failpoint::hit(name, "before-retire");
        let cx = Ctx::new(aws, &rb.name, bar, None);
        let undone = step
            .rollback(&cx, &entry.inputs, entry.before.as_ref())
            .await?;
        crate::failpoint::hit(name, "after-retire");
        forget().await?;
        done.push(match undone {
            Undone::Done(t) | Undone::AlreadyGone(t) => t,
            Undone::LeftAlone(t) => format!("left alone: {t}"),
        });
    }
    Ok(done)
}

/// The end of a run that replaced something: once every step is done and
/// every function on the new resources, the old ones go, the graph
/// backwards, never while a function points at an old proxy. Returns each
/// step's result (the lines it deleted) in the order they ended.
pub(crate) async fn retire_pass<'n>(
    names: &[&'n str],
    rb: &Runbook,
    aws: &Aws,
    store: &Store,
    progress: &Progress,
    hint: &str,
) -> Result<Vec<(&'n str, Result<Vec<String>>)>> {
    let guard = Guard::of(store.read(super::guard::retired_proxies), aws).await?;
    let waits = undo_waits(names, rb);
    Ok(schedule(
        names,
        &waits,
        |name| {
            let guard = guard.as_ref();
            async move {
                let bar = progress.step(name);
                match undo_retired(name, rb, aws, store, &bar, guard, hint).await {
                    Ok(lines) => {
                        bar.finish(
                            "✓",
                            format!("replaced, the old one deleted: {}", lines.join("; ")),
                        );
                        Ok(lines)
                    }
                    Err(e) => {
                        bar.finish("✗", "the old one was not deleted");
                        Err(e)
                    }
                }
            }
        },
        |_| true,
    )
    .await)
}
