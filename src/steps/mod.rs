//! The steps of the recipe. Each lives in its own file and implements
//! [`StepImpl`]: what it needs from the runbook (`inputs`), what it would do
//! (`describe`, no AWS call), what the account already has (`check`), how to
//! make it so (`apply`) and how to undo only what we made (`rollback`).
//! Adding a step is one new file plus one line in [`STEPS`].

use std::collections::BTreeMap;

use crate::runbook::{Diagnostic, Runbook};

mod alarms;
mod common;
mod connect_policy;
mod contract;
mod db_ingress;
mod ingress;
mod invoke_check;
mod lambda_env;
mod lambda_ingress;
#[cfg(test)]
pub(crate) mod mock;
mod proxy;
mod proxy_endpoints;
mod proxy_role;
mod proxy_security_group;
mod secret_access;
mod targets;

pub use contract::{Ctx, Deferred, Found, Replacement, Resolver, Step, StepImpl, Undone};
pub use invoke_check::NOT_EXERCISED;
pub use proxy::name_for_guard as proxy_name;
pub use proxy_endpoints::hosts as endpoint_hosts;
pub use secret_access::MANAGED_POLICY as MANAGED_SECRETS_POLICY;

/// The proxy's step: a replacement of the others follows from one of it.
pub const PROXY: &str = <proxy::Proxy as StepImpl>::NAME;

/// Every step the tool knows, in the recipe's order. A run follows the
/// graph of [`dependencies`], independent steps at once; a rollback follows
/// it backwards (DB_HOST first, the role last).
static STEPS: &[&dyn Step] = &[
    &proxy_role::ProxyRole,
    &secret_access::SecretAccess,
    &proxy_security_group::ProxySecurityGroup,
    &proxy::Proxy,
    &connect_policy::ConnectPolicy,
    &db_ingress::DbIngress,
    &targets::Targets,
    &proxy_endpoints::ProxyEndpoints,
    &alarms::Alarms,
    &lambda_ingress::LambdaIngress,
    &lambda_env::LambdaEnv,
    &invoke_check::InvokeCheck,
];

/// The steps as the runbook parser sees them.
pub struct Catalogue;

impl crate::runbook::StepCatalogue for Catalogue {
    fn names(&self) -> Vec<&'static str> {
        names()
    }
    fn outputs(&self, step: &str) -> Option<&'static [&'static str]> {
        get(step).map(|s| s.outputs())
    }
    fn check(&self, rb: &Runbook, order_checked: bool) -> Vec<Diagnostic> {
        check_references(rb, order_checked)
    }
}

pub fn names() -> Vec<&'static str> {
    STEPS.iter().map(|s| s.name()).collect()
}

pub fn get(name: &str) -> Option<&'static dyn Step> {
    STEPS.iter().copied().find(|s| s.name() == name)
}

/// The step a runbook lists, or a state of its records, by name: each name
/// was checked against [`STEPS`] when the runbook was read, so an unknown
/// one is a bug.
pub fn named(name: &str) -> &'static dyn Step {
    get(name).unwrap_or_else(|| panic!("no step `{name}`: the runbook's names are checked"))
}

/// The steps each listed step waits on, among those the runbook lists: the
/// ones whose outputs it reads, and its `AFTER` steps. The runbook's order
/// is one order that respects them (see [`check_references`]); steps with
/// no path between them may run at the same time.
pub fn dependencies(rb: &Runbook) -> BTreeMap<String, Vec<String>> {
    dependencies_for(rb, |_| false)
}

/// The graph of a run, where `makes(step)` says whether the run makes the
/// step's resource (this state never made or adopted it): such a step does
/// not wait on the steps that guard only a change to an existing one.
pub fn dependencies_for(
    rb: &Runbook,
    makes: impl Fn(&str) -> bool,
) -> BTreeMap<String, Vec<String>> {
    let listed: Vec<&str> = rb.step_names().collect();
    let none = |_: &str, _: &str| None;
    let mut graph = BTreeMap::new();
    for name in &listed {
        let Some(step) = get(name) else { continue };
        let mut r = Resolver::new(&none);
        step.inputs(rb, &mut r);
        let mut deps: Vec<String> = Vec::new();
        let reads = r.used.into_iter().map(|(s, _, _)| s);
        let after = step
            .after()
            .iter()
            .map(|(s, _)| *s)
            .filter(|s| !(makes(name) && step.after_only_to_change().contains(s)))
            .map(String::from);
        for dep in reads.chain(after) {
            if listed.contains(&dep.as_str()) && dep != *name && !deps.contains(&dep) {
                deps.push(dep);
            }
        }
        deps.sort_by_key(|d| listed.iter().position(|l| l == d));
        graph.insert(name.to_string(), deps);
    }
    graph
}

/// Checks every `${steps.STEP.OUTPUT}` that a listed step reads: the step
/// it names must be listed, and earlier. With `order_checked`, a step's `AFTER`
/// steps, when listed, must be listed earlier too (not asked of `status`
/// and `rollback`, which follow the graph whatever the list says, so an
/// older runbook can still be undone).
pub fn check_references(rb: &Runbook, order_checked: bool) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let mut lambdas_reported = false;
    let order: Vec<&str> = rb.step_names().collect();
    let none = |_: &str, _: &str| None;
    for (index, entry) in rb.steps.iter().enumerate() {
        let Some(step) = get(&entry.name) else {
            continue;
        };
        if step.acts_on_lambdas() && rb.lambdas.is_empty() && !lambdas_reported {
            lambdas_reported = true;
            diags.push(Diagnostic {
                pos: entry.pos,
                key: format!("steps[{index}]"),
                message: format!(
                    "step `{}` (and the steps after it that act on Lambda functions) needs a \
                     function, but the runbook has no valid [[lambda]]: add one with \
                     function_name",
                    entry.name
                ),
            });
        }
        let mut r = Resolver::new(&none);
        step.inputs(rb, &mut r);
        for (target, output, text) in r.used {
            // Unknown steps and outputs are reported by the parser.
            let by_value = get(&target).and_then(|s| s.by_value());
            let message = match order.iter().position(|s| *s == target) {
                // Read from the account: the runbook names the resource.
                None if text.key.is_empty() && by_value.is_some() => None,
                // Only a runbook value can be written out instead; a step's
                // own need (no key) can only be met by the step.
                None if text.key.is_empty() => Some(format!(
                    "step `{}` needs `${{steps.{target}.{output}}}` but `{target}` is not in \
                     `steps`: add `{target}` before `{}`",
                    entry.name, entry.name
                )),
                None => Some(format!(
                    "step `{}` uses `${{steps.{target}.{output}}}` but `{target}` is not in \
                     `steps`: add it before `{}`, or write the value in `{}` instead",
                    entry.name, entry.name, text.key
                )),
                Some(at) if at >= index => Some(format!(
                    "step `{}` uses an output of `{target}`, which runs later: \
                     list `{target}` before `{}` in `steps`",
                    entry.name, entry.name
                )),
                Some(_) => None,
            };
            if let Some(message) = message {
                // A step's own need (not a runbook value): point at the step.
                let (pos, key) = if text.key.is_empty() {
                    (entry.pos, format!("steps[{index}]"))
                } else {
                    (text.pos, text.key.clone())
                };
                diags.push(Diagnostic { pos, key, message });
            }
        }
        for (before, why) in step.after().iter().filter(|_| order_checked) {
            if order.iter().skip(index + 1).any(|s| s == before) {
                diags.push(Diagnostic {
                    pos: entry.pos,
                    key: format!("steps[{index}]"),
                    message: format!(
                        "step `{}` is listed before `{before}`, which must be finished first \
                         ({why}): list `{before}` before `{}` in `steps`",
                        entry.name, entry.name
                    ),
                });
            }
        }
    }
    diags
}
