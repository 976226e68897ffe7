//! `plan`: preflight, then each step and what its check finds in the
//! account, with what exactly would change. As text, or with
//! `--output json` as one JSON document of the same facts.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::engine::decide::{Block, Checked, Decision, Facts, Flags, decide, gives, needs_check};
use crate::engine::retire::with_retired;
use crate::engine::saved::{SavedPlan, SavedStep, found_digest};
use crate::engine::{Action, Hints, explain, listed, needs, record_for, resolve};
use crate::error::{EXIT_BAD_INPUT, EXIT_CHANGES, EXIT_PREFLIGHT, EXIT_STEP_FAILED, Failure};
use crate::open::{EnvMode, Options, check_place, load_runbook, open_state};
use crate::preflight::preflight_verdict;
use crate::state::{self, Origin, State, Status};
use crate::steps::{self, Ctx};
use crate::ui::progress::StepBar;

#[derive(Serialize)]
struct PlanReport {
    runbook: String,
    file: String,
    account: String,
    region: String,
    preflight: crate::preflight::Report,
    /// Absent when the DB or its class cannot be read (preflight says why).
    #[serde(skip_serializing_if = "Option::is_none")]
    budget: Option<crate::budget::Budget>,
    steps: Vec<PlanStep>,
    /// What replacements under way left, deleted at the end of the next
    /// whole run (each: step, what).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    to_delete: Vec<String>,
    summary: Summary,
    /// no_changes, changes, or blocked (`run` would refuse or fail).
    result: &'static str,
    /// What `plan` exits with; `run` exits with the same when blocked.
    exit_code: i32,
}

#[derive(Serialize)]
struct PlanStep {
    name: String,
    /// create, finish, update (in place, the runbook edited), drift (in
    /// place, changed outside the runbook: put back), replace (needs a new
    /// resource: refused), none, blocked, verify.
    action: Action,
    what: String,
    /// Steps whose outputs this one waits for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    after: Vec<String>,
    /// Every step `run` finishes before this one (outputs it reads, and
    /// order); steps with no path between them run at the same time.
    waits_on: Vec<String>,
    /// What exactly will change; or how it differs, for drift.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    details: Vec<String>,
    /// For a step `run` would refuse or fail on: why, and the exit code.
    #[serde(skip_serializing_if = "Option::is_none")]
    blocked: Option<Blocked>,
}

#[derive(Serialize)]
struct Blocked {
    reason: String,
    exit_code: i32,
}

/// How `plan` goes about it.
#[derive(Debug, Clone, Copy)]
pub struct PlanHow {
    pub output: Output,
    /// Exit 6 when there are changes.
    pub detailed_exitcode: bool,
    /// Plan replacements as `run --allow-replace` makes them.
    pub allow_replace: bool,
}

#[derive(Serialize, Default)]
struct Summary {
    create: usize,
    finish: usize,
    /// Updates in place: runbook edits, and changes made by hand put back.
    update: usize,
    /// New resources beside old ones (`--allow-replace`).
    replace: usize,
    done: usize,
    blocked: usize,
    verify: usize,
}

use crate::cli::Output;

pub async fn plan(runbook: &Path, how: PlanHow, out: Option<&Path>, opts: &Options) -> Result<()> {
    let PlanHow {
        output,
        detailed_exitcode,
        allow_replace,
    } = how;
    let rb = load_runbook(runbook, EnvMode::Strict)?;
    let aws = crate::open::connect(&rb, opts).await?;
    // Read without the lock: a plan writes nothing.
    let backend = open_state(&rb, opts, "plan").await?;
    let mut state = backend.load(&rb.name).await?;
    crate::engine::read_external(&rb, &aws).await?;
    check_place(&mut state, &aws, &backend).await?;
    let preflight = crate::preflight::run(&rb, &aws, &state, &backend).await?;
    let budget = crate::budget::run(&rb, &aws, preflight.capacity.as_ref()).await?;
    // The state as `run` will read it (the plan's copy records what it
    // finds done, for the steps after).
    let original = state.clone();
    let mut saved_steps = Vec::new();
    let mut steps_out = Vec::new();
    let mut summary = Summary::default();
    // The order `run` keeps (a new proxy does not wait on secret-access).
    let mut graph = crate::engine::schedule::run_graph(&rb, &state, false);
    let hints = Hints::new(&rb, opts);
    let flags = Flags {
        allow_replace,
        adopt: false,
    };
    for step in listed(&rb) {
        let name = step.name();
        let (inputs, missing) = resolve(step, &rb, &state);
        let what = step.describe(&inputs)?;
        let bar = StepBar::silent(name);
        // A replacement's record is the old resource's (see `record_for`).
        let recorded = record_for(&state, step, &inputs);
        let cx = Ctx::new(&aws, &rb.name, &bar, recorded.as_ref());
        let after: Vec<String> = needs(&missing).into_iter().map(String::from).collect();
        // What `run` decides, from the state as it loads it (an edit of
        // what an unfinished step will give is not one: the replacement
        // under way makes it).
        let facts = Facts::of(step, &rb, &state, &original, &inputs, &missing);
        // As `run` meets them: a failed read fails the step (after
        // preflight, which names the usual causes).
        let checked = match needs_check(&facts, flags) {
            true => Some(step.check(&cx, &inputs).await.map_err(|e| format!("{e:#}"))),
            false => None,
        };
        // A failed check is saved as such: no answer `run` finds matches
        // it, so a plan that was blocked never runs.
        let found = checked.as_ref().map(|c| {
            c.as_ref()
                .map_or_else(|_| "check failed".into(), found_digest)
        });
        let decided = decide(
            &facts,
            match &checked {
                None => Checked::Not,
                Some(Ok(found)) => Checked::Found(found),
                Some(Err(why)) => Checked::Failed(why),
            },
            flags,
        );
        let (decision, details) =
            match explain::details(step, &cx, &inputs, &decided, &rb, &state).await {
                Ok(details) => (decided.clone(), details),
                Err(e) => (
                    Decision::Blocked(Block::CheckFailed(format!("{e:#}"))),
                    Vec::new(),
                ),
            };
        // The steps after it read what it gives (found done, changed in
        // place, or unfinished with its outputs known), as `run` will meet
        // them; a step being replaced gives what the new one will.
        if let Some(Ok(found)) = &checked
            && let Some(outputs) = gives(&decided, found)
        {
            record_found(&mut state, name, outputs.clone());
        }
        if let Decision::Replace { .. } = decided {
            forget_applied(&mut state, name);
        }
        let blocked = decision.blocked().map(|b| Blocked {
            reason: explain::reason(b, name, &rb, &original, &hints, &backend),
            exit_code: b.exit_code(),
        });
        let action = decision.action();
        match action {
            _ if blocked.is_some() => summary.blocked += 1,
            Action::Create => summary.create += 1,
            Action::Finish => summary.finish += 1,
            Action::Update | Action::Drift => summary.update += 1,
            Action::Replace => summary.replace += 1,
            Action::None => summary.done += 1,
            Action::Verify => summary.verify += 1,
            Action::Blocked => summary.blocked += 1,
        }
        // What `run --plan` compares: the inputs as it resolves them, and
        // what was found with those same inputs.
        let planned = state::checksum(&resolve(step, &rb, &original).0);
        saved_steps.push(SavedStep {
            name: name.to_string(),
            action: action.as_str().to_string(),
            found: found.filter(|_| planned == state::checksum(&inputs)),
            inputs: planned,
            details: details.clone(),
        });
        steps_out.push(PlanStep {
            name: name.to_string(),
            action,
            what,
            after,
            waits_on: graph.remove(name).unwrap_or_default(),
            details,
            blocked,
        });
    }
    // The code `run` would end with: its gates come in this order (the
    // runbook against the state, preflight, then the steps).
    let gate = |codes: &[i32]| {
        steps_out
            .iter()
            .filter_map(|s| s.blocked.as_ref())
            .map(|b| b.exit_code)
            .find(|c| codes.contains(c))
    };
    let blocked_code = gate(&[EXIT_BAD_INPUT])
        .or_else(|| (!preflight.problems.is_empty()).then_some(EXIT_PREFLIGHT))
        .or_else(|| gate(&[EXIT_STEP_FAILED]));
    // What replacements under way left, deleted at the end of a whole run.
    let to_delete: Vec<String> = with_retired(&rb, &original)
        .into_iter()
        .flat_map(|name| {
            let step = steps::named(&name);
            let rec = original.record(&name).expect("has retired");
            rec.retired
                .iter()
                .map(|r| {
                    let what = step.describe(&r.inputs).unwrap_or_default();
                    match r.origin {
                        Origin::Adopted => format!("{name}: {what} (adopted: left in place)"),
                        Origin::Created => format!("{name}: {what}"),
                    }
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let changes =
        summary.create + summary.finish + summary.update + summary.replace + to_delete.len() > 0;
    let (result, exit_code) = match blocked_code {
        Some(code) => ("blocked", code),
        None if changes => ("changes", if detailed_exitcode { EXIT_CHANGES } else { 0 }),
        None => ("no_changes", 0),
    };
    if let Some(out) = out {
        let account = aws.account_id().await?;
        let mut saved = SavedPlan::new(&rb.name, account, &aws.region, saved_steps);
        saved.allow_replace = allow_replace;
        saved.write(out)?;
        crate::say!(
            "Saved this plan to {}: `run --plan {}` does exactly this, or refuses if the \
             runbook or the account moved.",
            out.display(),
            out.display()
        );
    }
    let report = PlanReport {
        runbook: rb.name.clone(),
        file: rb.path.display().to_string(),
        account: aws.account_id().await?.to_string(),
        region: aws.region.clone(),
        preflight,
        budget,
        steps: steps_out,
        to_delete,
        summary,
        result,
        exit_code,
    };
    match output {
        Output::Json => crate::ui::progress::emit_json(&serde_json::to_value(&report)?),
        Output::Text => print_text(&report),
    }
    let blocked =
        "`run` would refuse or fail on the blocked step(s) listed above; nothing was changed";
    match exit_code {
        0 => Ok(()),
        // The plan above says what changes: the code is the answer.
        EXIT_CHANGES => Err(Failure::Changes.into()),
        EXIT_PREFLIGHT => preflight_verdict(&report.preflight),
        EXIT_BAD_INPUT => Err(Failure::bad_input(blocked)),
        _ => Err(Failure::steps_failed(blocked)),
    }
}

/// A step being replaced, for the steps after it in this plan: what they
/// read of it is the new one's, not known yet (in the plan's copy only).
fn forget_applied(state: &mut State, name: &str) {
    if let Some(rec) = state.steps.get_mut(name) {
        rec.status = Status::Pending;
        rec.outputs.clear();
    }
}

/// What a step found done, or to update in place, or unfinished with its
/// outputs known, gives the steps after it in this plan that read its
/// outputs (in the plan's copy of the state only; nothing is saved).
fn record_found(state: &mut State, name: &str, outputs: crate::state::Outputs) {
    let rec = state.steps.entry(name.to_string()).or_default();
    rec.status = Status::Applied;
    rec.outputs = outputs;
}

fn print_text(r: &PlanReport) {
    crate::preflight::print_preflight(&r.preflight, false);
    if let Some(b) = &r.budget {
        let (about, set_by) = match &b.max_connections_set_by {
            Some(by) => ("", format!(" (set by {by})")),
            None => ("about ", String::new()),
        };
        crate::say!(
            "Connection budget: {} allows {about}{} connections{set_by}; the pool may use {}% = {}.",
            b.instance_class,
            b.max_connections,
            b.max_connections_percent,
            b.pool_ceiling
        );
        for f in &b.functions {
            crate::say!(
                "  {}: at worst {} environments (limited by {}{})",
                f.name,
                f.worst_case,
                f.limited_by,
                if f.provisioned > 0 {
                    format!("; {} provisioned", f.provisioned)
                } else {
                    String::new()
                }
            );
        }
        for n in &b.notes {
            crate::say!("  {n}");
        }
    }
    crate::say!(
        "Plan for runbook `{}` ({}) in {}:",
        r.runbook,
        r.file,
        r.region
    );
    for s in &r.steps {
        let (mark, label) = match s.action {
            Action::Create => ("+", "to create"),
            Action::Finish => ("~", "to finish"),
            Action::Update => ("~", "update in place"),
            Action::Drift => ("~", "changed outside the runbook, to put back"),
            Action::Replace if s.blocked.is_some() => ("-/+", "replace (refused)"),
            Action::Replace => ("-/+", "replace: a new one beside the old"),
            Action::None => ("=", "done"),
            Action::Verify => ("?", "will verify"),
            Action::Blocked => ("!", "blocked"),
        };
        let after = if s.after.is_empty() {
            String::new()
        } else {
            format!(", after {}", s.after.join(", "))
        };
        crate::say!("  {mark} {:<22} {label}{after}: {}", s.name, s.what);
        for d in &s.details {
            crate::say!("      {d}");
        }
        if let Some(b) = &s.blocked {
            crate::say!("      blocked: {}", b.reason);
        }
    }
    if !r.to_delete.is_empty() {
        crate::say!("  - to delete once every function has moved (replaced):");
        for d in &r.to_delete {
            crate::say!("      {d}");
        }
    }
    let m = &r.summary;
    let verifies = match m.verify {
        0 => String::new(),
        n => format!(" ({n} verification step(s) will run)"),
    };
    if m.create + m.finish + m.update + m.replace + m.blocked == 0 && r.to_delete.is_empty() {
        crate::say!(
            "Nothing to change: all {} steps are done{verifies}.",
            m.done
        );
    } else {
        let replace = match m.replace {
            0 => String::new(),
            n => format!("{n} to replace, "),
        };
        let delete = match r.to_delete.len() {
            0 => String::new(),
            n => format!(", {n} replaced to delete"),
        };
        crate::say!(
            "Plan: {} to create, {} to finish, {} to update in place, {replace}{} done, {} \
             blocked{delete}{verifies}.",
            m.create,
            m.finish,
            m.update,
            m.done,
            m.blocked
        );
    }
}
