//! What a step will do, decided once: from what its check found, the
//! state's record and the flags (`--allow-replace`, `--adopt`), one typed
//! [`Decision`] that `plan` shows, `run` and `resume` carry out, `--confirm`
//! asks about and a saved plan records. Every rule of "what to do with this
//! step" lives in [`decide`]; [`Facts::of`] gathers what it reads from the
//! runbook and the state (no AWS call), the rest is pure.

use serde_json::Value;

use super::inputs::{alone, changed_fields, identity_edited, record_for};
use crate::error::{EXIT_BAD_INPUT, EXIT_STEP_FAILED};
use crate::runbook::Runbook;
use crate::state::{self, Origin, Outputs, State, Status};
use crate::steps::{Found, Step};

/// What a step will do.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Only checks (the invoke check): runs, changes nothing.
    Verify,
    /// Make it; `again` when the state says applied but the account lacks
    /// it (deleted by hand).
    Create { again: bool },
    /// Not checked yet: it reads outputs of a step not applied yet; what it
    /// made stays and is changed to follow them (a replaced proxy's id).
    Follow,
    /// Finish what a run left (a proxy still creating): `why` says what.
    Finish { why: String },
    /// Change in place, the runbook edited since it was applied (`edits`,
    /// `field: old -> new`; empty: adopted as found, brought to the runbook).
    Update {
        diffs: Vec<String>,
        edits: Vec<String>,
    },
    /// Change in place what was changed outside the runbook: put it back.
    PutBack { drift: Vec<String> },
    /// A new resource beside the old one (`--allow-replace`); `checked`
    /// when the check found the new one missing (else it is not checked
    /// yet: it reads what a replacement before it makes).
    Replace { checked: bool },
    /// Found done though this state never made it: taken over (`--adopt`).
    Adopt { outputs: Outputs },
    /// Done as the runbook says; `back` when it is the one a replacement
    /// left (the edit undone).
    Nothing { outputs: Outputs, back: bool },
    /// `run` refuses or fails here, changing nothing.
    Blocked(Block),
}

/// Why `run` would refuse or fail on a step.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// An identity edit of a step replaced only with the proxy, alone.
    Alone(&'static str),
    /// An identity edit (a replacement) without `--allow-replace`.
    ReplaceRefused,
    /// The names stayed but only a new resource would match (the check's
    /// `Found::Replace`): each line what differs.
    NeedsNewName(Vec<String>),
    /// The account holds it with our tag but this state never acted on it;
    /// `unfinished`: what is not finished there (never adopted).
    MadeElsewhere { unfinished: Option<String> },
    /// Something of that name that this runbook did not make.
    Foreign(String),
    /// The check itself failed.
    CheckFailed(String),
}

impl Block {
    /// What `run` exits with when it stops here.
    pub fn exit_code(&self) -> i32 {
        match self {
            Block::Foreign(_) | Block::CheckFailed(_) => EXIT_STEP_FAILED,
            _ => EXIT_BAD_INPUT,
        }
    }
}

/// What `plan` says a step will do (and `run --confirm` asks about), as the
/// JSON plan and the saved plan spell it: the [`Decision`]'s kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Finish,
    Update,
    Drift,
    Replace,
    None,
    Verify,
    Blocked,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Finish => "finish",
            Action::Update => "update",
            Action::Drift => "drift",
            Action::Replace => "replace",
            Action::None => "none",
            Action::Verify => "verify",
            Action::Blocked => "blocked",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Decision {
    pub fn action(&self) -> Action {
        match self {
            Decision::Verify => Action::Verify,
            Decision::Create { .. } => Action::Create,
            Decision::Follow | Decision::Update { .. } => Action::Update,
            Decision::Finish { .. } => Action::Finish,
            Decision::PutBack { .. } => Action::Drift,
            Decision::Replace { .. } => Action::Replace,
            Decision::Adopt { .. } | Decision::Nothing { .. } => Action::None,
            Decision::Blocked(Block::Alone(_) | Block::ReplaceRefused | Block::NeedsNewName(_)) => {
                Action::Replace
            }
            Decision::Blocked(_) => Action::Blocked,
        }
    }

    pub fn blocked(&self) -> Option<&Block> {
        match self {
            Decision::Blocked(b) => Some(b),
            _ => None,
        }
    }
}

/// The flags that change a decision.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    /// `--allow-replace` (or a saved plan made with it).
    pub allow_replace: bool,
    /// `run --adopt`.
    pub adopt: bool,
}

/// What the step's check came to.
#[derive(Debug, Clone, Copy)]
pub enum Checked<'a> {
    /// Not checked (see [`needs_check`]).
    Not,
    Found(&'a Found),
    /// The check failed, with why.
    Failed(&'a str),
}

/// What [`decide`] reads of a step, its record and the runbook.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// Only verifies (changes nothing in the account).
    pub verifies: bool,
    /// The edits of what names the resource (`field: old -> new`): a new
    /// resource, beside the old one.
    pub identity: Vec<String>,
    /// Whether the state as the command loaded it has identity edits (a
    /// replacement under way, its new one not made yet, is none).
    pub identity_as_loaded: bool,
    /// Why the identity edit cannot be made in this run, if so: the step
    /// is replaced only with the proxy, and the proxy is not.
    pub alone: Option<&'static str>,
    /// It reads outputs of steps not applied yet: not checked.
    pub waits_for_outputs: bool,
    /// The state says applied.
    pub applied: bool,
    /// Who made what the record is about: none if this state never acted
    /// on the resource the inputs name.
    pub origin: Option<Origin>,
    /// The inputs changed since the record's (`field: old -> new`; empty:
    /// recorded without a checksum, adopted as found); none when the same.
    pub edits: Option<Vec<String>>,
    /// The inputs name the resource a replacement retired (the edit undone).
    pub back: bool,
}

impl Facts {
    /// The facts of `step` with `inputs` (and the outputs they still miss)
    /// resolved from `state`; `loaded` is the state as the command loaded
    /// it (`plan` works on a copy that records what it finds).
    pub fn of(
        step: &dyn Step,
        rb: &Runbook,
        state: &State,
        loaded: &State,
        inputs: &Value,
        missing: &[(String, String)],
    ) -> Facts {
        let name = step.name();
        let identity = identity_edited(step, rb, state);
        let recorded = record_for(state, step, inputs);
        let checksum = state::checksum(inputs);
        let edits = match &recorded {
            Some(r) if r.checksum.as_deref() == Some(checksum.as_str()) => None,
            r => Some(changed_fields(
                r.as_ref().and_then(|r| r.inputs.as_ref()),
                inputs,
            )),
        };
        let replaced = state
            .record(name)
            .is_some_and(|r| r.replaced_by(step.identity(), inputs));
        Facts {
            verifies: !step.changes_account(),
            alone: match identity.is_empty() {
                true => None,
                false => alone(step, &identity, rb, loaded),
            },
            identity,
            identity_as_loaded: !identity_edited(step, rb, loaded).is_empty(),
            waits_for_outputs: !missing.is_empty(),
            applied: state.status(name) == Status::Applied,
            origin: recorded.as_ref().and_then(|r| r.origin),
            edits,
            back: replaced && recorded.is_some(),
        }
    }

    /// A new resource is made beside the one recorded.
    pub fn replacing(&self) -> bool {
        !self.identity.is_empty()
    }
}

/// Whether the decision needs the step's check (else [`decide`] settles it
/// with [`Checked::Not`]).
pub fn needs_check(f: &Facts, flags: Flags) -> bool {
    before_check(f, flags).is_none()
}

/// What is decided before the account is read: a verification, an edit
/// `run` refuses, and a step that reads outputs not known yet.
fn before_check(f: &Facts, flags: Flags) -> Option<Decision> {
    if f.verifies {
        return Some(Decision::Verify);
    }
    if let (true, Some(why)) = (f.replacing(), f.alone) {
        // With --allow-replace or without: the whole way on at once.
        return Some(Decision::Blocked(Block::Alone(why)));
    }
    if f.identity_as_loaded && !flags.allow_replace {
        return Some(Decision::Blocked(Block::ReplaceRefused));
    }
    if f.waits_for_outputs {
        return Some(match (f.replacing(), f.applied) {
            // A new one, made with what a replacement before it makes.
            (true, _) => Decision::Replace { checked: false },
            (false, true) => Decision::Follow,
            (false, false) => Decision::Create { again: false },
        });
    }
    None
}

/// What to do with a step: every rule in one place (see the module).
pub fn decide(f: &Facts, checked: Checked<'_>, flags: Flags) -> Decision {
    if let Some(d) = before_check(f, flags) {
        return d;
    }
    let found = match checked {
        Checked::Found(found) => found,
        Checked::Failed(why) => return Decision::Blocked(Block::CheckFailed(why.to_string())),
        Checked::Not => &Found::Missing,
    };
    // What this state never acted on is not ours, though it carries our
    // tag: refused, or what is done taken over with --adopt.
    if f.origin.is_none() {
        match found {
            Found::Incomplete(why, _) => {
                return Decision::Blocked(Block::MadeElsewhere {
                    unfinished: Some(why.clone()),
                });
            }
            Found::Done(_) | Found::Update(..) | Found::Replace(_) if !flags.adopt => {
                return Decision::Blocked(Block::MadeElsewhere { unfinished: None });
            }
            Found::Done(outputs) => {
                return Decision::Adopt {
                    outputs: outputs.clone(),
                };
            }
            _ => {}
        }
    }
    match found {
        Found::Missing if f.replacing() => Decision::Replace { checked: true },
        Found::Missing => Decision::Create { again: f.applied },
        Found::Incomplete(why, _) => Decision::Finish { why: why.clone() },
        Found::Done(outputs) => Decision::Nothing {
            outputs: outputs.clone(),
            back: f.back,
        },
        // Whether the runbook moved, or only the account did.
        Found::Update(diffs, _) => match &f.edits {
            Some(edits) => Decision::Update {
                diffs: diffs.clone(),
                edits: edits.clone(),
            },
            None => Decision::PutBack {
                drift: diffs.clone(),
            },
        },
        Found::Replace(why) => Decision::Blocked(Block::NeedsNewName(why.clone())),
        Found::Foreign(why) => Decision::Blocked(Block::Foreign(why.clone())),
    }
}

/// What a step gives the steps after it in a plan (in the plan's copy of
/// the state), as decided: what it found done or to change in place, or
/// unfinished with its outputs already known (a proxy still modifying); and
/// what another state made, so that the steps after it are checked (and
/// blocked the same way) rather than shown waiting.
pub fn gives<'f>(d: &Decision, found: &'f Found) -> Option<&'f Outputs> {
    match (d, found) {
        (
            Decision::Nothing { .. } | Decision::Blocked(Block::MadeElsewhere { .. }),
            Found::Done(o),
        ) => Some(o),
        (Decision::Update { .. } | Decision::PutBack { .. }, Found::Update(_, o)) => Some(o),
        (Decision::Finish { .. }, Found::Incomplete(_, Some(o))) => Some(o),
        _ => None,
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
