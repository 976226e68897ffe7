//! The engine: a step's inputs from the runbook and the state, the steps
//! a command selects, what each step will do ([`decide`]: one typed
//! decision that `plan` shows, `run` carries out, `--confirm` asks about
//! and a saved plan records; [`explain`] says it), the graph they run on
//! ([`schedule`]), the one writer of the state ([`store`]), the runner of
//! each step ([`runner`]) and the rules it obeys ([`rules`]), and the JSON
//! report ([`report`]).

use anyhow::Result;

use crate::cli::Selection;
use crate::error::{Failure, fixed};
use crate::runbook::Runbook;
use crate::state::State;
use crate::steps::{self, Ctx, Resolver, Step};

pub mod decide;
pub mod explain;
pub mod guard;
pub mod inputs;
pub mod report;
pub mod retire;
pub mod rules;
pub mod runner;
pub mod saved;
pub mod schedule;
pub mod store;

pub use decide::{Action, Decision};
pub(crate) use inputs::{
    edited_since_applied, lookup_in, needs, proxy_replaced, record_for, replacement_changes,
    resolve,
};

/// Reads from the account the outputs of the steps the runbook leaves out
/// but whose resource it names by value (see `StepImpl::BY_VALUE`), as far
/// as a listed step reads them; an error names the key when it is not there.
pub(crate) async fn read_external(rb: &Runbook, aws: &crate::aws::Aws) -> Result<()> {
    let listed = listed(rb);
    let none = |_: &str, _: &str| None;
    let mut wanted: Vec<&dyn Step> = Vec::new();
    for step in &listed {
        let mut r = Resolver::new(&none);
        step.inputs(rb, &mut r);
        for (used, _, _) in r.used {
            let Some(used) = steps::get(&used) else {
                continue;
            };
            let known = |s: &&dyn Step| s.name() == used.name();
            if !listed.iter().any(known) && !wanted.iter().any(known) {
                wanted.push(used);
            }
        }
    }
    let mut external = std::collections::BTreeMap::new();
    for step in wanted {
        let name = step.name();
        let Some(key) = step.by_value() else { continue };
        let (inputs, _) = resolve(step, rb, &State::new(&rb.name));
        let bar = crate::ui::progress::StepBar::silent(name);
        let cx = Ctx::new(aws, &rb.name, &bar, None);
        match step.existing(&cx, &inputs).await? {
            Some(outputs) => {
                external.insert(name.to_string(), outputs);
            }
            None => {
                return Err(Failure::bad_input(format!(
                    "{} (named by `{key}`, used as it is since `{name}` is not in `steps`) does \
                     not exist in {}: correct `{key}`, or add `{name}` to `steps` to make it",
                    step.describe(&inputs)?,
                    aws.region
                )));
            }
        }
    }
    let _ = rb.external.set(external);
    Ok(())
}

/// The runbook's steps, in its order, resolved once (reading the runbook
/// validated every name it lists).
pub(crate) fn listed(rb: &Runbook) -> Vec<&'static dyn Step> {
    rb.step_names().map(steps::named).collect()
}

pub(crate) fn select<'a>(rb: &'a Runbook, sel: &Selection) -> Result<Vec<&'a str>> {
    let names: Vec<&str> = rb.step_names().collect();
    let index = |name: &str| {
        names.iter().position(|n| *n == name).ok_or_else(|| {
            let hint = crate::runbook::closest(name, &names)
                .map_or(String::new(), |s| format!("did you mean `{s}`? "));
            Failure::usage(format!(
                "runbook `{}` has no step `{name}`; {hint}its steps are: {}",
                rb.name,
                names.join(", ")
            ))
        })
    };
    if let Some(s) = &sel.step {
        let i = index(s)?;
        return Ok(vec![names[i]]);
    }
    let from = sel.from.as_deref().map(index).transpose()?.unwrap_or(0);
    let until = sel
        .until
        .as_deref()
        .map(index)
        .transpose()?
        .unwrap_or(names.len() - 1);
    if from > until {
        return Err(Failure::usage(format!(
            "--from {} comes after --until {} in the runbook",
            names[from], names[until]
        )));
    }
    Ok(names[from..=until].to_vec())
}

/// The endpoints of the proxies this state holds, made or adopted (the
/// current one, and those a replacement retired): a variable that holds
/// one is on a proxy of ours.
pub(crate) fn our_endpoints(state: &State) -> Vec<String> {
    let Some(rec) = state.record(steps::PROXY) else {
        return Vec::new();
    };
    // The proxy's other endpoints (`[[endpoint]]`): a reader variable
    // holding one is on a proxy of ours too.
    let others = state
        .record("proxy-endpoints")
        .and_then(|r| r.outputs.get("endpoints"))
        .map(|o| crate::steps::endpoint_hosts(o))
        .unwrap_or_default();
    rec.outputs
        .get("endpoint")
        .into_iter()
        .chain(rec.retired.iter().filter_map(|r| r.outputs.get("endpoint")))
        .cloned()
        .chain(others.into_iter().map(|(_, host)| host))
        .filter(|e| !e.is_empty())
        .collect()
}

/// The replacements of the runbook (each step and what it changes,
/// `field: old -> new`, as [`replacement_changes`]), if `run` may carry them out: with `allow` (`--allow-replace`), and each
/// one a replacement the step supports, else the error that refuses them
/// all before any AWS call.
pub(crate) fn replacements(
    rb: &Runbook,
    state: &State,
    allow: bool,
    opts: &crate::open::Options,
) -> Result<Vec<(String, Vec<String>)>> {
    use decide::{Block, Checked, Facts, Flags};
    let flags = Flags {
        allow_replace: allow,
        adopt: false,
    };
    // What can be made only with a new proxy is said first, with or
    // without --allow-replace: the whole way on in one message.
    let (mut edits, mut alone, mut refused) = (Vec::new(), Vec::new(), Vec::new());
    for step in listed(rb) {
        let name = step.name();
        let (inputs, missing) = resolve(step, rb, state);
        let facts = Facts::of(step, rb, state, state, &inputs, &missing);
        if !facts.replacing() {
            continue;
        }
        let changes = replacement_changes(step, rb, state);
        match decide::decide(&facts, Checked::Not, flags) {
            Decision::Blocked(Block::Alone(why)) => {
                alone.push(format!("  {name}: {} (alone, {why})", changes.join("; ")));
            }
            Decision::Blocked(Block::ReplaceRefused) => {
                refused.push((name.to_string(), changes.clone()));
            }
            _ => {}
        }
        edits.push((name.to_string(), changes));
    }
    if !alone.is_empty() {
        return Err(Failure::bad_input(fixed(
            format!(
                "these changes need a new resource, which can only be made safely together \
                 with a new proxy:\n{}\nNothing was changed.",
                alone.join("\n"),
            ),
            with_new_proxy(rb, &Hints::new(rb, opts)),
        )));
    }
    if !refused.is_empty() {
        return Err(replacement_refused(&refused, rb, opts));
    }
    Ok(edits)
}

/// What to do when an edit needs a new resource that only a new proxy may
/// use (for `run`'s error and `plan`'s blocked step alike).
pub(crate) fn with_new_proxy(rb: &Runbook, hints: &Hints) -> String {
    format!(
        "Give the proxy a new name as well (`proxy.name` at {}), then review the replacement \
         with `{} --allow-replace` and make it with `{} --allow-replace`: the new proxy is made \
         with the new resources and becomes ready, the functions move to it, and only then is \
         the old proxy deleted with what it used. Or undo the edit.",
        rb.at(rb.proxy.name.pos),
        hints.plan,
        hints.run
    )
}

/// The error for edits that would need a new resource (`why`: each step
/// and what changed) when `--allow-replace` was not given.
pub(crate) fn replacement_refused(
    why: &[(String, Vec<String>)],
    rb: &Runbook,
    opts: &crate::open::Options,
) -> anyhow::Error {
    use crate::open::command_hint;
    let list: Vec<String> = why
        .iter()
        .map(|(step, what)| format!("  {step}: {}", what.join("; ")))
        .collect();
    Failure::bad_input(fixed(
        format!(
            "these changes need a new resource, which AWS cannot make from the old one in \
             place:\n{}\nNothing was changed.",
            list.join("\n"),
        ),
        format!(
            "A replacement is never made without asking: review it with `{} --allow-replace`, \
             then run `{} --allow-replace`: the new one is made beside the old, the functions \
             move to it once it is ready, and only then is the old one deleted. Or undo the \
             edit.",
            command_hint("plan", rb, opts),
            command_hint("run", rb, opts)
        ),
    ))
}

/// The error for steps whose check found that only a new resource would
/// match though their names stayed (a proxy's subnets, a group's
/// description; `why`: each step and what differs), with everything the
/// user needs at once (see [`new_name_advice`]).
pub(crate) fn needs_new_name(
    why: &[(String, Vec<String>)],
    rb: &Runbook,
    state: &State,
    hints: &Hints,
) -> anyhow::Error {
    let list: Vec<String> = why
        .iter()
        .map(|(step, what)| format!("  {step}: {}", what.join("; ")))
        .collect();
    let names: Vec<&str> = why.iter().map(|(step, _)| step.as_str()).collect();
    Failure::bad_input(fixed(
        format!(
            "these changes need a new resource, since AWS cannot make them in place (only a \
             new resource would match the runbook):\n{}\nNothing was changed.",
            list.join("\n"),
        ),
        new_name_advice(&names, rb, state, hints),
    ))
}

/// The commands a message names: `plan` and `run` of this runbook (with
/// its `--state`).
pub(crate) struct Hints {
    pub(crate) plan: String,
    pub(crate) run: String,
}

impl Hints {
    pub(crate) fn new(rb: &Runbook, opts: &crate::open::Options) -> Hints {
        Hints {
            plan: crate::open::command_hint("plan", rb, opts),
            run: crate::open::command_hint("run", rb, opts),
        }
    }
}

/// What to do when only new resources would match for `replaced` though
/// their names stayed, said once and whole (for `run`'s error and `plan`'s
/// blocked step alike): the new one is made beside the old, so it needs
/// another name (each key to change, at its place in the file); a resource
/// made only with a new proxy needs the proxy renamed too; then the commands.
pub(crate) fn new_name_advice(
    replaced: &[&str],
    rb: &Runbook,
    state: &State,
    hints: &Hints,
) -> String {
    let proxy_key = format!("`proxy.name` ({})", rb.at(rb.proxy.name.pos));
    let mut rename: Vec<String> = Vec::new();
    for step in replaced {
        let key = match *step {
            steps::PROXY => proxy_key.clone(),
            "proxy-security-group" => format!(
                "`proxy_security_group.name` ({})",
                rb.at(rb.proxy_security_group.name.pos)
            ),
            "proxy-endpoints" => "the `name` of each `[[endpoint]]` named above (endpoint \
                 names are the account's)"
                .to_string(),
            other => format!("the name of what `{other}` makes"),
        };
        if !rename.contains(&key) {
            rename.push(key);
        }
    }
    // A resource made only together with a new proxy: the proxy too.
    let with_proxy = replaced
        .iter()
        .find_map(|step| match steps::get(step)?.replacement() {
            steps::Replacement::WithProxy { why, .. } if *step != steps::PROXY => {
                Some((*step, why))
            }
            _ => None,
        });
    if let Some((step, why)) = with_proxy
        && !rename.contains(&proxy_key)
        && !proxy_replaced(rb, state)
    {
        rename.push(format!(
            "{proxy_key}, since a new {step} is made only with a new proxy ({why})"
        ));
    }
    format!(
        "A new one is made beside the old one, which keeps its name and serves the functions \
         until they have moved to the new one, so the new one needs another name: change {}. \
         Then review the replacement with `{} --allow-replace` and make it with `{} \
         --allow-replace`: the new one is made and becomes ready, the functions move to it, \
         and only then is the old one deleted. Or undo the edit.",
        rename.join("; and "),
        hints.plan,
        hints.run
    )
}

/// The runbook's steps, then any step the state knows that the runbook no
/// longer lists (still ours to roll back).
pub(crate) fn order_for_status(rb: &Runbook, state: &State) -> Vec<String> {
    let mut names: Vec<String> = rb.step_names().map(String::from).collect();
    for known in steps::names() {
        if state.steps.contains_key(known) && !names.iter().any(|n| n == known) {
            names.push(known.to_string());
        }
    }
    names
}
