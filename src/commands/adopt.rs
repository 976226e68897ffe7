//! `adopt`: take over a setup this tool never made (the cookbook's, made by
//! hand): each step's check looks under the runbook's names, whether or not
//! what it finds carries our tag; the command shows what it found and how
//! it differs from the runbook, and on --yes records it in the state as
//! adopted. Nothing changes in the account, unless --tag asks for our
//! ownership tag on what is adopted.
//!
//! A command of its own rather than a flag of `run`: adopting is a review
//! (what is there, what differs) that ends in a record, and a run would go
//! on to change things in the same breath. `run --adopt` stays for what
//! carries this runbook's tag from another state.

use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use crate::aws::Aws;
use crate::engine::{needs, resolve};
use crate::error::Failure;
use crate::open::{EnvMode, Options, check_place, command_hint, load_runbook, open_state};
use crate::state::{self, Event, Origin, Outputs, Status};
use crate::steps::{self, Ctx, Found};
use crate::ui::progress::StepBar;
use crate::ui::prompt::confirm;

/// What `adopt` found for one step.
struct Seen {
    name: String,
    what: String,
    /// Recorded on --yes: the inputs, outputs and `before` to record.
    take: Option<(Value, Outputs, Option<Value>)>,
    /// Found as the runbook says (else `run` has changes to make on it).
    as_runbook: bool,
}

pub async fn adopt(runbook: &Path, yes: bool, tag: bool, opts: &Options) -> Result<()> {
    let rb = load_runbook(runbook, EnvMode::Strict)?;
    let backend = open_state(&rb, opts, "adopt").await?;
    let (_lock, mut state) = backend.lock_and_load(&rb.name).await?;
    let aws = Aws::connect(&opts.aws, rb.aws()).await?;
    crate::engine::read_external(&rb, &aws).await?;
    check_place(&mut state, &aws, &backend).await?;
    println!(
        "What the account holds under the names of runbook `{}` ({}) in {}:",
        rb.name,
        rb.path.display(),
        aws.region
    );
    // A copy of the state in which each step found is applied, so that the
    // steps after it read its outputs (the proxy's id, the role's ARN).
    let mut working = state.clone();
    let mut seen: Vec<Seen> = Vec::new();
    for name in rb.step_names() {
        let step = steps::named(name);
        if !step.changes_account() {
            continue;
        }
        let (inputs, missing) = resolve(step, &rb, &working);
        let line = |mark: &str, text: String| println!("  {mark} {name:<22} {text}");
        if !missing.is_empty() {
            line(
                "?",
                format!(
                    "not checked: it reads what {} make(s), which is not adopted here",
                    needs(&missing).join(", ")
                ),
            );
            continue;
        }
        let what = step.describe(&inputs)?;
        if let Some(rec) = state.record(name).filter(|r| r.origin.is_some()) {
            let how = match rec.origin {
                Some(Origin::Adopted) => "adopted",
                _ => "created",
            };
            line("=", format!("{what}: already in this state ({how})"));
            continue;
        }
        let bar = StepBar::silent(name);
        // Whatever holds these names counts, with our tag or without.
        let cx = Ctx {
            adopted: true,
            ..Ctx::new(&aws, &rb.name, &bar, None)
        };
        let found = step.check(&cx, &inputs).await;
        let as_runbook = matches!(found, Ok(Found::Done(_)));
        let outputs = match found {
            Err(e) => {
                line("!", format!("{what}: cannot be read: {e:#}"));
                continue;
            }
            Ok(Found::Missing) => {
                line("+", format!("{what}: not found (`run` makes it)"));
                continue;
            }
            Ok(Found::Foreign(why)) => {
                line("!", format!("{what}: cannot be adopted: {why}"));
                continue;
            }
            Ok(Found::Replace(why)) => {
                line(
                    "!",
                    format!(
                        "{what}: found, but differs in what AWS cannot change in place: {}; make \
                         the runbook say what the account has, then adopt it",
                        why.join("; ")
                    ),
                );
                continue;
            }
            Ok(Found::Incomplete(why, _)) if name == steps::PROXY => {
                line(
                    "!",
                    format!("{what}: {why}; adopt it once it is available (nothing recorded)"),
                );
                continue;
            }
            Ok(Found::Done(outputs)) => {
                line("=", format!("{what}: found, as the runbook says"));
                outputs
            }
            Ok(Found::Update(diffs, outputs)) => {
                line(
                    "~",
                    format!("{what}: found; differs in what `run` changes in place:"),
                );
                for d in diffs {
                    println!("        {d}");
                }
                outputs
            }
            Ok(Found::Incomplete(why, _)) => {
                line(
                    "~",
                    format!("{what}: found in part; `run` finishes it: {why}"),
                );
                Outputs::new()
            }
        };
        let before = step.adopted(&cx, &inputs, &outputs).await?;
        let rec = working.steps.entry(name.to_string()).or_default();
        rec.status = Status::Applied;
        rec.outputs = outputs.clone();
        seen.push(Seen {
            name: name.to_string(),
            what,
            take: Some((inputs, outputs, before)),
            as_runbook,
        });
    }
    let taken: Vec<&Seen> = seen.iter().filter(|s| s.take.is_some()).collect();
    if taken.is_empty() {
        println!("Nothing to adopt: no step found something under the runbook's names.");
        return Ok(());
    }
    let names: Vec<&str> = taken.iter().map(|s| s.name.as_str()).collect();
    confirm(
        &format!(
            "Adopt {} step(s) ({}) into state {}? They are managed from then on (`run` changes \
             them in place), and `rollback` leaves them unless --include-adopted.{}",
            taken.len(),
            names.join(", "),
            backend,
            if tag {
                " Each is tagged with the runbook's ownership tag."
            } else {
                ""
            }
        ),
        yes,
    )?;
    for s in &taken {
        let (inputs, outputs, before) = s.take.clone().expect("taken");
        if tag {
            let bar = StepBar::silent(&s.name);
            let cx = Ctx::new(&aws, &rb.name, &bar, None);
            let step = steps::named(&s.name);
            step.tag_owned(&cx, &outputs)
                .await
                .map_err(|e| Failure::steps_failed(format!("{e:#}; nothing more was recorded")))?;
        }
        let rec = state
            .advance(&s.name, Event::Applied)
            .map_err(anyhow::Error::msg)?;
        rec.origin = Some(Origin::Adopted);
        // No checksum for what differs: not applied with these inputs yet,
        // so `plan` and `run` call bringing it to the runbook an update.
        rec.checksum = s.as_runbook.then(|| state::checksum(&inputs));
        rec.inputs = Some(inputs);
        rec.outputs = outputs;
        rec.before = before;
        rec.error = None;
        backend.save(&state).await?;
        println!("  adopted {}: {}", s.name, s.what);
    }
    println!(
        "Adopted {} step(s). Next: `{}` shows what `run` would change.",
        taken.len(),
        command_hint("plan", &rb, opts)
    );
    Ok(())
}
