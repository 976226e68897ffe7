//! One step of a run: check the account, decide, act, record, under the
//! rules every step obeys ([`super::rules`]: what this state never made is
//! not ours; never act before what a step waits on is in place).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use serde_json::Value;

use super::decide::{Block, Checked, Decision, Facts, Flags, decide, needs_check};
pub(crate) use super::rules::{needs_outputs, not_this_states, unmet, waits_unmet};
use super::store::Store;
use super::{our_endpoints, record_for, resolve, schedule::ancestors};
use crate::aws::Aws;
use crate::error::Failure;
use crate::poll::{self, Interrupted};
use crate::runbook::Runbook;
use crate::state::{self, Event, Origin, State, Status};
use crate::steps::{self, Ctx, Found};
use crate::ui::progress::{Progress, StepBar};
use crate::ui::prompt::{Answer, Asker};

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
    /// `--allow-replace`: carry out edits that need a new resource.
    pub allow_replace: bool,
}

/// What running one step came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Unchanged,
    Changed,
    Verified,
    /// A verification that could not check what it is for (the function
    /// said it did not exercise the path): neither passed nor failed.
    NotExercised,
    /// `--confirm` and the answer was no: nothing done, and the steps that
    /// wait on it do not start.
    Skipped,
}

/// What every run of one command shares.
pub(crate) struct Runner<'a> {
    pub(crate) rb: &'a Runbook,
    pub(crate) aws: &'a Aws,
    pub(crate) store: &'a Store,
    pub(crate) progress: &'a Progress,
    pub(crate) graph: &'a BTreeMap<String, Vec<String>>,
    /// What the first round found, by step: the checksum of the inputs it
    /// checked with, and the answer.
    pub(crate) prechecked: BTreeMap<String, (String, Found)>,
    /// The steps that changed the account in this run: a step that waits
    /// on one of them checks again rather than trust the first round.
    pub(crate) changed: std::sync::Mutex<BTreeSet<String>>,
    /// The command that runs this runbook, for hints.
    pub(crate) run_hint: String,
    /// The commands that plan and run it, for a message that names both.
    pub(crate) hints: super::Hints,
    /// `--confirm`: ask before each step.
    pub(crate) asker: Option<Asker>,
    /// `--adopt` and `--allow-replace`, for each step's decision.
    pub(crate) flags: Flags,
    /// The state as the run loaded it (what `run` refused or allowed
    /// before any step, decided again the same way).
    pub(crate) loaded: State,
    /// The steps this run found done or applied: a step that waits on one
    /// of them acts without checking it again.
    pub(crate) verified: std::sync::Mutex<BTreeSet<String>>,
    /// Whether steps may remove what the runbook no longer wants: not in
    /// the run's first pass, which notes in `deferred` the steps that have
    /// some; they run again, with removals, once every step is done.
    pub(crate) removals: std::sync::atomic::AtomicBool,
    pub(crate) deferred: crate::steps::Deferred,
}

/// Why a step stopped: interrupted (it stays `started`), or failed (the
/// state records the error).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct StepFailed(pub(crate) String);

impl Runner<'_> {
    /// A step that only verifies (the invoke check): it changes nothing, so
    /// it has no start to record and nothing to recover after a kill; its
    /// result is recorded only when it differs from the last one, so a
    /// re-run of a finished runbook writes nothing (and takes no S3 lock).
    async fn verify(
        &self,
        name: &str,
        step: &dyn steps::Step,
        cx: &Ctx<'_>,
        inputs: &Value,
        checksum: String,
        bar: &StepBar,
    ) -> Result<Outcome> {
        crate::failpoint::hit(name, "before-apply");
        let outputs = step.apply(cx, inputs).await.inspect_err(|e| {
            let interrupted = e.downcast_ref::<Interrupted>().is_some();
            bar.finish("✗", if interrupted { "interrupted" } else { "failed" });
        })?;
        crate::failpoint::hit(name, "after-apply");
        let response = outputs.values().cloned().collect::<Vec<_>>().join("; ");
        let not_exercised = outputs.get(steps::NOT_EXERCISED).cloned();
        let same = self.store.read(|s| {
            s.record(name).is_some_and(|r| {
                r.status == Status::Applied
                    && r.outputs == outputs
                    && r.checksum.as_ref() == Some(&checksum)
            })
        });
        if !same {
            self.store
                .advance_later(name, Event::Applied, |rec| {
                    rec.inputs = Some(inputs.clone());
                    rec.checksum = Some(checksum);
                    rec.outputs = outputs;
                    rec.error = None;
                })
                .await?;
        }
        if let Some(why) = not_exercised {
            bar.finish("~", format!("not exercised: {why}"));
            return Ok(Outcome::NotExercised);
        }
        bar.finish(
            "✓",
            format!("verified: {}: {response}", step.describe(inputs)?),
        );
        Ok(Outcome::Verified)
    }

    /// The first answer for `name` if it still holds: same inputs, and no
    /// step it waits on changed since.
    pub(crate) fn first_answer(&self, name: &str, checksum: &str) -> Option<Found> {
        let (sum, found) = self.prechecked.get(name)?;
        let changed = self.changed.lock().expect("lock");
        // Its own change in this run, or one upstream, makes it stale.
        let touched = changed.contains(name)
            || ancestors(self.graph, name)
                .iter()
                .any(|a| changed.contains(*a));
        (sum == checksum && !touched).then(|| found.clone())
    }

    pub(crate) async fn step(&self, name: &str) -> Result<Outcome> {
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
                self.store
                    .update(|s| {
                        if let Ok(rec) = s.advance(name, Event::Fail) {
                            rec.error = Some(message.clone());
                        }
                        Ok(())
                    })
                    .await?;
                Err(StepFailed(message).into())
            }
            ok => ok,
        }
    }

    /// The steps `name` waits on that are not in place at this moment: each
    /// must have been found done or applied by this run, or be applied in
    /// the state and found done in the account now (the first round's
    /// answer when nothing upstream changed since, else a check).
    pub(crate) async fn unmet_waits(&self, name: &str) -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        for dep in self.graph.get(name).into_iter().flatten() {
            if self.verified.lock().expect("lock").contains(dep) {
                continue;
            }
            let step = steps::named(dep);
            let (status, origin) = self
                .store
                .read(|s| (s.status(dep), s.record(dep).and_then(|r| r.origin)));
            let (inputs, missing) = self.store.read(|s| resolve(step, self.rb, s));
            let checksum = state::checksum(&inputs);
            let found = match self.first_answer(dep, &checksum) {
                Some(found) => Some(found),
                None if missing.is_empty() && status == Status::Applied => {
                    let bar = StepBar::silent(dep);
                    let recorded = self.store.read(|s| record_for(s, step, &inputs));
                    let cx = Ctx::new(self.aws, &self.rb.name, &bar, recorded.as_ref());
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
    /// what the account holds, the lines `plan` shows for the decision.
    pub(crate) async fn ask(
        &self,
        step: &dyn steps::Step,
        cx: &Ctx<'_>,
        inputs: &Value,
        decision: &Decision,
    ) -> Result<Answer> {
        let name = step.name();
        let state = self.store.read(|s| s.clone());
        let mut details =
            super::explain::details(step, cx, inputs, decision, self.rb, &state).await?;
        // A replacement is asked for by name, with what it replaces.
        let old = self.store.read(|s| {
            s.record(name)
                .filter(|r| r.replaced_by(step.identity(), inputs))
                .and_then(|r| r.inputs.clone())
        });
        if let (Decision::Replace { .. }, Some(old)) = (decision, old) {
            details.insert(
                0,
                format!(
                    "replaces {}: the old one is deleted once every function has moved",
                    step.describe(&old)?
                ),
            );
        }
        // What changes in place is asked as an update, whoever moved.
        let action = match decision.action() {
            super::Action::Drift => super::Action::Update,
            a => a,
        };
        let mut what = format!("\n{name} (to {action}): {}", step.describe(inputs)?);
        for d in details {
            what.push_str(&format!("\n    {d}"));
        }
        self.asker.as_ref().expect("asking").ask(&what)
    }

    pub(crate) async fn step_inner(&self, name: &str) -> Result<Outcome> {
        let step = steps::named(name);
        let (inputs, missing) = self.store.read(|s| resolve(step, self.rb, s));
        if !missing.is_empty() {
            return Err(needs_outputs(name, &missing, &self.run_hint));
        }
        let checksum = state::checksum(&inputs);
        let mut turn = match &self.asker {
            Some(a) => a.turn().await,
            None => None,
        };
        let bar = self.progress.step(name);
        // A replacement's record is the old resource's: the new one starts
        // with none (and the old one is retired when the step starts).
        let recorded = self.store.read(|s| record_for(s, step, &inputs));
        let endpoints = self.store.read(our_endpoints);
        let cx = Ctx {
            removals: self.removals.load(std::sync::atomic::Ordering::Relaxed),
            deferred: Some(&self.deferred),
            our_endpoints: &endpoints,
            changed_in_run: self.changed.lock().expect("lock").clone(),
            ..Ctx::new(self.aws, &self.rb.name, &bar, recorded.as_ref())
        };
        let facts = self
            .store
            .read(|s| Facts::of(step, self.rb, s, &self.loaded, &inputs, &missing));
        // A verification changes nothing, so it has nothing to check first.
        let found = if !needs_check(&facts, self.flags) {
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
        let decision = decide(&facts, Checked::Found(&found), self.flags);
        match decision {
            Decision::Blocked(block) => Err(self.refuse(name, step, &inputs, block, &bar)?),
            Decision::Adopt { outputs } => {
                let to = inputs.clone();
                self.store
                    .advance_to(name, Event::Applied, step.identity(), &to, |rec| {
                        rec.origin = Some(Origin::Adopted);
                        rec.outputs = outputs;
                        rec.inputs = Some(inputs);
                        rec.checksum = Some(checksum);
                        rec.error = None;
                    })
                    .await?;
                bar.finish(
                    "=",
                    "adopted: found in the account, managed from now on; rollback leaves it",
                );
                Ok(Outcome::Unchanged)
            }
            Decision::Nothing { outputs, back } => {
                let unchanged = facts.applied
                    && self.store.read(|s| {
                        s.record(name).is_some_and(|r| {
                            r.outputs == outputs && r.checksum.as_ref() == Some(&checksum)
                        })
                    });
                if !unchanged {
                    let to = inputs.clone();
                    self.store
                        .advance_to(name, Event::Applied, step.identity(), &to, |rec| {
                            rec.outputs = outputs;
                            rec.inputs = Some(inputs);
                            rec.checksum = Some(checksum);
                            rec.error = None;
                        })
                        .await?;
                }
                // Named again after a replacement began (the edit undone):
                // the retired one is current again, the new one retired.
                let note = if back {
                    "back to the one a replacement left (the newer one is deleted once every \
                     function has moved)"
                } else if facts.applied {
                    "already done, no change"
                } else {
                    "found done in the account, recorded, no change"
                };
                bar.finish("=", note);
                Ok(Outcome::Unchanged)
            }
            decision => {
                let acting = Acting {
                    name,
                    step,
                    cx: &cx,
                    inputs,
                    checksum,
                    bar: &bar,
                    origin: facts.origin,
                };
                self.act(acting, &facts, decision, &mut turn).await
            }
        }
    }
}

/// A step about to act, as [`Runner::step_inner`] found it.
struct Acting<'c> {
    name: &'c str,
    step: &'static dyn steps::Step,
    cx: &'c Ctx<'c>,
    inputs: Value,
    checksum: String,
    bar: &'c StepBar,
    origin: Option<Origin>,
}

impl Runner<'_> {
    /// The error for a step `run` does not act on, as `plan` blocks it.
    fn refuse(
        &self,
        name: &str,
        step: &dyn steps::Step,
        inputs: &Value,
        block: Block,
        bar: &StepBar,
    ) -> Result<anyhow::Error> {
        Ok(match block {
            Block::MadeElsewhere { unfinished } => {
                // What this state never acted on is not ours, though it
                // carries our tag.
                bar.finish("✗", "not made by this state");
                not_this_states(
                    &[(name, step.describe(inputs)?, unfinished.is_some())],
                    &self.store.backend,
                    &self.run_hint,
                )
            }
            // Seen only now (the first round found otherwise): refused as
            // the first round refuses it.
            Block::NeedsNewName(why) => {
                bar.finish("✗", "needs replacing");
                let replaced = [(name.to_string(), why)];
                self.store
                    .read(|s| super::needs_new_name(&replaced, self.rb, s, &self.hints))
            }
            Block::Foreign(why) => {
                bar.finish("✗", "blocked");
                anyhow::anyhow!(why)
            }
            // Refused for the whole runbook before any step (see
            // `replacements`); a failed check is its error.
            other => {
                bar.finish("✗", "blocked");
                let reason = self.store.read(|s| {
                    super::explain::reason(
                        &other,
                        name,
                        self.rb,
                        s,
                        &self.hints,
                        &self.store.backend,
                    )
                });
                Failure::bad_input(reason)
            }
        })
    }

    /// Carries out `decision` (one that acts): never before what the step
    /// waits on is in place; asked first under `--confirm`; its start, its
    /// change and its end recorded.
    async fn act(
        &self,
        a: Acting<'_>,
        facts: &Facts,
        decision: Decision,
        turn: &mut Option<tokio::sync::MutexGuard<'_, ()>>,
    ) -> Result<Outcome> {
        let Acting {
            name,
            step,
            cx,
            inputs,
            checksum,
            bar,
            origin,
        } = a;
        // Never act before what this step waits on is in place in the
        // account (a --step or --from past its order).
        let waits = self.unmet_waits(name).await.inspect_err(|_| {
            bar.finish("✗", "check failed");
        })?;
        if !waits.is_empty() {
            bar.finish("✗", "waits on steps not in place");
            return Err(waits_unmet(name, &waits, &self.run_hint));
        }
        if turn.is_some() {
            let answer = self.ask(step, cx, &inputs, &decision).await?;
            // The answer may have taken a while: what the step read is read
            // again before it acts.
            cx.reads.clear();
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
        let verb = match &decision {
            Decision::Finish { why } => {
                self.progress.line(format!("  {name}: {why}"));
                "finished"
            }
            Decision::Update { diffs: lines, .. } | Decision::PutBack { drift: lines } => {
                let (how, verb) = if cx.removals {
                    (
                        "now that every function has moved, removing what the runbook no \
                         longer wants",
                        "updated in place",
                    )
                } else if let Decision::Update { .. } = decision {
                    ("updating in place", "updated in place")
                } else {
                    ("changed outside the runbook, putting it back", "put back")
                };
                self.progress
                    .line(format!("  {name}: {how}: {}", lines.join("; ")));
                verb
            }
            _ => "created",
        };
        if facts.back {
            self.progress.line(format!(
                "  {name}: back to the one a replacement left; the newer one is deleted once \
                 every function has moved"
            ));
        } else if facts.replacing() {
            self.progress.line(format!(
                "  {name}: replacing: a new one beside the old, which is deleted once every \
                 function has moved"
            ));
        } else if let Decision::Create { again: true } = decision {
            self.progress.line(format!(
                "  note: step `{name}` was applied but is missing from the account (deleted \
                 by hand?); creating it again"
            ));
        }
        if let Decision::Verify = decision {
            return self.verify(name, step, cx, &inputs, checksum, bar).await;
        }
        // What the step replaces, read once before it first acts: a retry
        // must not mistake our own change for the original.
        let recorded_before = cx.recorded.and_then(|r| r.before.clone());
        let before = step
            .before(cx, &inputs, recorded_before)
            .await
            .inspect_err(|_| {
                bar.finish("✗", "failed");
            })?;
        // An update or a finish keeps what was adopted adopted (or, with
        // --adopt, takes it over); only a create makes it ours.
        let keeps = match decision {
            Decision::Create { .. } | Decision::Replace { .. } => None,
            _ if origin.is_none() => Some(Origin::Adopted),
            _ => origin,
        };
        // A replaced resource is kept until every function has moved to
        // the new one.
        self.store
            .advance_to(name, Event::Start, step.identity(), &inputs, |rec| {
                if let Some(o) = keeps {
                    rec.origin = Some(o);
                }
                rec.inputs = Some(inputs.clone());
                rec.checksum = Some(checksum);
                rec.before = before;
                rec.outputs.clear();
                rec.error = None;
            })
            .await?;
        crate::failpoint::hit(name, "before-apply");
        let outputs = match step.apply(cx, &inputs).await {
            Ok(outputs) => outputs,
            Err(e) => {
                // Interrupted, the step stays `started`: resume re-checks it.
                let interrupted = e.downcast_ref::<Interrupted>().is_some();
                bar.finish("✗", if interrupted { "interrupted" } else { "failed" });
                return Err(e);
            }
        };
        crate::failpoint::hit(name, "after-apply");
        self.store
            .advance_later(name, Event::Applied, |rec| {
                rec.outputs = outputs;
                rec.before = step.settled_before(&inputs, rec.before.take());
            })
            .await?;
        let what = step.describe(&inputs)?;
        self.changed.lock().expect("lock").insert(name.to_string());
        bar.finish("✓", format!("{verb}: {what}"));
        Ok(Outcome::Changed)
    }
}
