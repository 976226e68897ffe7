//! What a [`Decision`] says to a person: the lines under a step in `plan`
//! and in `run --confirm`'s question (the same lines), and why a blocked
//! step is blocked, with the way on.

use anyhow::Result;
use serde_json::Value;

use super::decide::{Block, Decision};
use super::rules::made_elsewhere_reason;
use super::{Hints, new_name_advice, replacement_changes, with_new_proxy};
use crate::runbook::Runbook;
use crate::state::State;
use crate::steps::{Ctx, Step};

/// Why a step that needs a new resource is blocked without --allow-replace.
const REPLACE_REFUSED: &str = "only a new resource would match: `run` refuses, changing \
     nothing, unless --allow-replace; `plan --allow-replace` shows how the new one would be \
     made beside the old";

/// What a replacement of `step` does: how it goes, and what it interrupts.
fn replacement_lines(step: &str) -> Vec<String> {
    let mut lines = vec![
        "the new one is made beside the old one, which is deleted only once every function \
         has moved (and the invoke check passed)"
            .to_string(),
    ];
    if step == crate::steps::PROXY {
        lines.push(
            "interrupts: nothing while the new proxy is made and its target becomes healthy \
             (the functions keep the old one); then each function's variable moves to the new \
             endpoint (new connections go there), and the connections still open on the old \
             proxy are closed when it is deleted"
                .to_string(),
        );
    }
    lines
}

/// What exactly `decision` changes for `step` (or, for drift, how the
/// account differs), a line each. `state` is the one the decision was made
/// from (a replacement's changes are read from its record). An error is a
/// read that failed (`step.details`): `run` would fail there too.
pub(crate) async fn details(
    step: &dyn Step,
    cx: &Ctx<'_>,
    inputs: &Value,
    decision: &Decision,
    rb: &Runbook,
    state: &State,
) -> Result<Vec<String>> {
    let name = step.name();
    // What a replacement changes, every field of it (the name, and the
    // subnets that forced it).
    let changes = || replacement_changes(step, rb, state);
    Ok(match decision {
        Decision::Verify | Decision::Nothing { .. } | Decision::Adopt { .. } => Vec::new(),
        Decision::Blocked(Block::Alone(_) | Block::ReplaceRefused) => changes(),
        Decision::Replace { checked } => {
            let mut lines = changes();
            lines.extend(replacement_lines(name));
            if *checked {
                lines.extend(step.details(cx, inputs).await.unwrap_or_default());
            }
            lines
        }
        Decision::Follow | Decision::Create { .. } => step.details(cx, inputs).await?,
        Decision::Finish { why } => {
            let mut lines = vec![why.clone()];
            lines.extend(step.details(cx, inputs).await?);
            lines
        }
        Decision::Update { diffs, edits } => {
            let mut lines = diffs.clone();
            lines.push(match edits.is_empty() {
                true => "(adopted as found: `run` brings it to the runbook)".to_string(),
                false => format!("(runbook edited since applied: {})", edits.join("; ")),
            });
            lines
        }
        Decision::PutBack { drift } => drift.clone(),
        Decision::Blocked(Block::NeedsNewName(why)) => why.clone(),
        Decision::Blocked(Block::Foreign(why)) => vec![why.clone()],
        Decision::Blocked(Block::MadeElsewhere { unfinished }) => {
            unfinished.iter().cloned().collect()
        }
        Decision::Blocked(Block::CheckFailed(_)) => Vec::new(),
    })
}

/// Why `run` stops at `step`, and how to go on (for `plan`'s blocked step).
pub(crate) fn reason(
    block: &Block,
    step: &str,
    rb: &Runbook,
    state: &State,
    hints: &Hints,
    backend: &dyn std::fmt::Display,
) -> String {
    match block {
        Block::Alone(why) => format!("alone, {why}. {}", with_new_proxy(rb, hints)),
        Block::ReplaceRefused => REPLACE_REFUSED.to_string(),
        Block::NeedsNewName(_) => format!(
            "AWS cannot change this in place, so only a new resource would match. {}",
            new_name_advice(&[step], rb, state, hints)
        ),
        Block::MadeElsewhere { .. } => made_elsewhere_reason(backend),
        Block::Foreign(why) => why.clone(),
        Block::CheckFailed(why) => format!("its check failed: {why}"),
    }
}
