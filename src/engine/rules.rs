//! The rules every step of a run obeys, decided without a call (what this
//! state never made is not ours: see [`super::decide`]); never act before what a step waits on is applied here and in place in
//! the account; never run a step whose inputs need outputs not applied yet.
//! Each with the error that says so and how to go on.

use super::needs;
use crate::error::{Failure, fixed};
use crate::state::{Origin, Status};
use crate::steps::{self, Found};

/// What the account holds for a step that this state never acted on (no
/// origin): each entry is the step, what it makes, and whether it is
/// unfinished there. The error names them, says that another state
/// probably made them, and how to go on.
pub(crate) fn not_this_states(
    found: &[(&str, String, bool)],
    path: &dyn std::fmt::Display,
    hint: &str,
) -> anyhow::Error {
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
    Failure::bad_input(fixed(
        format!(
            "the account already holds what these steps make, with this runbook's tag, but \
             this state ({path}) never made it:\n{}\nNothing was changed.",
            list.join("\n")
        ),
        format!(
            "Another state of this runbook probably exists (a colleague's checkout, a CI \
             runner, a mistyped --state; by default it is .rds-proxy-runbook/<name>.state.json \
             beside the runbook that made it): point --state at it and run again.{adopt}"
        ),
    ))
}

/// For `plan`: why a step whose resource another state made is blocked
/// (see [`super::decide`]).
pub(crate) fn made_elsewhere_reason(state: &dyn std::fmt::Display) -> String {
    format!(
        "the account holds it with this runbook's tag, but this state ({state}) never made it: \
         another state probably exists; point --state at it, or take it over with \
         `run --adopt`"
    )
}

/// Why a step that another one waits on cannot be trusted to be in place:
/// `None` when this state applied it (created or adopted) and the account
/// has it as the runbook says.
pub(crate) fn unmet(
    status: Status,
    origin: Option<Origin>,
    found: Option<&Found>,
) -> Option<String> {
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
        Some(Found::Incomplete(why, _)) => Some(format!("not finished in the account: {why}")),
        Some(Found::Update(diffs, _)) => Some(format!(
            "applied, but the account differs: {}",
            diffs.join("; ")
        )),
        Some(Found::Replace(why)) => Some(format!("needs replacing: {}", why.join("; "))),
        Some(Found::Foreign(why)) => Some(why.clone()),
    }
}

/// The error for a step that reads outputs of steps not applied yet.
pub(crate) fn needs_outputs(
    name: &str,
    missing: &[(String, String)],
    run_hint: &str,
) -> anyhow::Error {
    let (first, output) = &missing[0];
    Failure::usage(fixed(
        format!(
            "step `{name}` needs outputs of {} (such as `{first}.{output}`), which are not \
             applied.",
            needs(missing).join(", "),
        ),
        format!("Run them first, e.g. `{run_hint} --step {first}`."),
    ))
}

/// The error for a step whose `waits` (each: step, reason) are not in
/// place, with the command that runs them first.
pub(crate) fn waits_unmet(name: &str, waits: &[(String, String)], run_hint: &str) -> anyhow::Error {
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
    Failure::usage(fixed(
        format!(
            "step `{name}` must wait for steps that are not applied and verified in the \
             account{why}: {}. Step `{name}` was not applied.",
            list.join(", ")
        ),
        format!("Run them first: `{run_hint} --until {name}`."),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(
            unmet(
                Status::Applied,
                ours,
                Some(&Found::Incomplete("x".into(), None))
            )
            .is_some()
        );
        assert!(unmet(Status::Applied, ours, None).is_some());
        assert!(unmet(Status::Started, ours, Some(&done)).is_some());
    }
}
