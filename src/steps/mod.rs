//! The steps of the recipe. Each lives in its own file and implements
//! [`StepImpl`]: what it needs from the runbook (`inputs`), what it would do
//! (`describe`, no AWS call), what the account already has (`check`), how to
//! make it so (`apply`) and how to undo only what we made (`rollback`).
//! Adding a step is one new file plus one line in [`STEPS`].

use std::collections::BTreeMap;

use anyhow::Result;
use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::aws::Aws;
use crate::progress::StepBar;
use crate::runbook::{Diagnostic, Runbook, Text};

mod common;
mod connect_policy;
mod db_ingress;
mod ingress;
mod invoke_check;
mod lambda_env;
mod lambda_ingress;
#[cfg(test)]
mod mock;
mod proxy;
mod proxy_role;
mod proxy_security_group;
mod secret_access;
mod targets;

pub use proxy::{find as find_proxy, name_for_guard as proxy_name};
pub use targets::{health_text, pool_now};

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
    &lambda_ingress::LambdaIngress,
    &lambda_env::LambdaEnv,
    &invoke_check::InvokeCheck,
];

pub fn names() -> Vec<&'static str> {
    STEPS.iter().map(|s| s.name()).collect()
}

pub fn get(name: &str) -> Option<&'static dyn Step> {
    STEPS.iter().copied().find(|s| s.name() == name)
}

pub type Outputs = BTreeMap<String, String>;

/// What a step's check found in the account.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// Exists, carries our tag, and matches the runbook.
    Done(Outputs),
    /// Not there: apply will create it.
    Missing,
    /// Ours and partly there (still creating, a document to update, an
    /// attachment missing): apply will finish it. The text says what.
    Incomplete(String),
    /// Ours, but it differs from the runbook: each entry says how.
    Drifted(Vec<String>),
    /// Something of that name exists that this runbook did not create.
    Foreign(String),
}

/// What a rollback did.
#[derive(Debug, Clone, PartialEq)]
pub enum Undone {
    /// Deleted or restored; the text says what.
    Done(String),
    /// Nothing to undo: already gone.
    AlreadyGone(String),
    /// Left alone on purpose (not ours); the text says why.
    LeftAlone(String),
}

/// What a step may use while it works.
pub struct Ctx<'a> {
    pub aws: &'a Aws,
    pub runbook: &'a str,
    pub bar: &'a StepBar,
}

impl Ctx<'_> {
    /// The tag every resource we create carries.
    pub fn owner_tag(&self) -> (&'static str, &str) {
        (crate::runbook::OWNER_TAG, self.runbook)
    }

    /// The value of our ownership tag on a resource, compared with ours.
    pub fn owns<'t>(&self, mut tags: impl Iterator<Item = (&'t str, &'t str)>) -> bool {
        tags.any(|(k, v)| k == crate::runbook::OWNER_TAG && v == self.runbook)
    }

    pub fn not_ours(&self, what: &str) -> String {
        format!(
            "{what} exists but was not created by runbook `{}` (it lacks the tag {}={}); \
             the tool will not adopt or delete it: choose another name in the runbook, \
             or delete it yourself if it is a leftover",
            self.runbook,
            crate::runbook::OWNER_TAG,
            self.runbook
        )
    }
}

/// Fills `${steps.*}` references while a step's inputs are built, and
/// remembers which ones it met (to check them, and to order the steps).
pub struct Resolver<'a> {
    lookup: &'a dyn Fn(&str, &str) -> Option<String>,
    pub used: Vec<(String, String, Text)>,
    pub missing: Vec<(String, String)>,
}

impl<'a> Resolver<'a> {
    pub fn new(lookup: &'a dyn Fn(&str, &str) -> Option<String>) -> Self {
        Resolver {
            lookup,
            used: Vec::new(),
            missing: Vec::new(),
        }
    }

    /// An output of another step that this step needs (which also orders
    /// the steps: the runbook must list `step` first).
    pub fn output(&mut self, step: &str, output: &str) -> String {
        self.text(&Text::step_output(step, output))
    }

    pub fn text(&mut self, text: &Text) -> String {
        for (step, output) in text.refs() {
            self.used
                .push((step.to_string(), output.to_string(), text.clone()));
        }
        text.fill(self.lookup).unwrap_or_else(|(step, output)| {
            let placeholder = format!("${{steps.{step}.{output}}}");
            self.missing.push((step, output));
            placeholder
        })
    }

    pub fn list(&mut self, texts: &[Text]) -> Vec<String> {
        texts.iter().map(|t| self.text(t)).collect()
    }
}

/// The contract each step file implements, with typed inputs.
#[async_trait]
pub trait StepImpl: Send + Sync + 'static {
    type Inputs: Serialize + DeserializeOwned + Send + Sync;
    const NAME: &'static str;
    /// The outputs later steps may reference as `${steps.NAME.OUTPUT}`.
    const OUTPUTS: &'static [&'static str];

    /// False for a step that only verifies (it changes nothing, so a run
    /// that only repeats it reports no change).
    const CHANGES_ACCOUNT: bool = true;

    /// Steps that must be finished first when the runbook lists them,
    /// though this one reads none of their outputs, each with the reason.
    /// With the outputs it reads, they make the graph that lets independent
    /// steps run at the same time.
    const AFTER: &'static [(&'static str, &'static str)] = &[];

    /// True for a step that points functions' variables at the proxy. The
    /// engine never undoes any other step that changed the account while a
    /// function's variable still points at the proxy: that would leave the
    /// function on a proxy that cannot serve it.
    const SETS_FUNCTION_VARIABLES: bool = false;

    /// The `(function, variable)` pairs this step's rollback puts back,
    /// from its recorded inputs and `before`.
    fn restores(&self, _inputs: &Self::Inputs, _before: Option<&Value>) -> Vec<(String, String)> {
        Vec::new()
    }

    fn inputs(&self, rb: &Runbook, r: &mut Resolver) -> Self::Inputs;
    /// One line: what the step makes, from the runbook alone.
    fn describe(&self, inputs: &Self::Inputs) -> String;
    async fn check(&self, cx: &Ctx, inputs: &Self::Inputs) -> Result<Found>;
    /// For the plan: what exactly will change (old -> new values, the
    /// policy documents to attach, what is left alone). Never a secret.
    async fn details(&self, _cx: &Ctx, _inputs: &Self::Inputs) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
    /// What the step is about to replace (the old `DB_HOST`), read once
    /// before it first acts and kept in the state for rollback.
    async fn before(&self, _cx: &Ctx, _inputs: &Self::Inputs) -> Result<Option<Value>> {
        Ok(None)
    }
    async fn apply(&self, cx: &Ctx, inputs: &Self::Inputs) -> Result<Outputs>;
    /// Undoes what the step did; `before` is what `before` recorded.
    async fn rollback(
        &self,
        cx: &Ctx,
        inputs: &Self::Inputs,
        before: Option<&Value>,
    ) -> Result<Undone>;
}

/// The object-safe face of a step that the engine drives; inputs travel as
/// JSON so they can be saved in the state and checksummed.
#[async_trait]
pub trait Step: Send + Sync {
    fn name(&self) -> &'static str;
    fn outputs(&self) -> &'static [&'static str];
    fn changes_account(&self) -> bool;
    fn after(&self) -> &'static [(&'static str, &'static str)];
    fn sets_function_variables(&self) -> bool;
    fn restores(&self, inputs: &Value, before: Option<&Value>) -> Vec<(String, String)>;
    fn inputs(&self, rb: &Runbook, r: &mut Resolver) -> Value;
    fn describe(&self, inputs: &Value) -> Result<String>;
    async fn check(&self, cx: &Ctx, inputs: &Value) -> Result<Found>;
    async fn details(&self, cx: &Ctx, inputs: &Value) -> Result<Vec<String>>;
    async fn before(&self, cx: &Ctx, inputs: &Value) -> Result<Option<Value>>;
    async fn apply(&self, cx: &Ctx, inputs: &Value) -> Result<Outputs>;
    async fn rollback(&self, cx: &Ctx, inputs: &Value, before: Option<&Value>) -> Result<Undone>;
}

fn typed<I: DeserializeOwned>(step: &str, inputs: &Value) -> Result<I> {
    serde_json::from_value(inputs.clone()).map_err(|e| {
        anyhow::anyhow!(
            "the recorded inputs of step `{step}` cannot be read ({e}); \
             the state file may come from another version of the tool"
        )
    })
}

#[async_trait]
impl<T: StepImpl> Step for T {
    fn name(&self) -> &'static str {
        T::NAME
    }
    fn outputs(&self) -> &'static [&'static str] {
        T::OUTPUTS
    }
    fn changes_account(&self) -> bool {
        T::CHANGES_ACCOUNT
    }
    fn after(&self) -> &'static [(&'static str, &'static str)] {
        T::AFTER
    }
    fn sets_function_variables(&self) -> bool {
        T::SETS_FUNCTION_VARIABLES
    }
    fn restores(&self, inputs: &Value, before: Option<&Value>) -> Vec<(String, String)> {
        typed(T::NAME, inputs)
            .map(|i| StepImpl::restores(self, &i, before))
            .unwrap_or_default()
    }
    fn inputs(&self, rb: &Runbook, r: &mut Resolver) -> Value {
        serde_json::to_value(StepImpl::inputs(self, rb, r)).expect("inputs serialize")
    }
    fn describe(&self, inputs: &Value) -> Result<String> {
        Ok(StepImpl::describe(self, &typed(T::NAME, inputs)?))
    }
    async fn check(&self, cx: &Ctx, inputs: &Value) -> Result<Found> {
        StepImpl::check(self, cx, &typed(T::NAME, inputs)?).await
    }
    async fn details(&self, cx: &Ctx, inputs: &Value) -> Result<Vec<String>> {
        StepImpl::details(self, cx, &typed(T::NAME, inputs)?).await
    }
    async fn before(&self, cx: &Ctx, inputs: &Value) -> Result<Option<Value>> {
        StepImpl::before(self, cx, &typed(T::NAME, inputs)?).await
    }
    async fn apply(&self, cx: &Ctx, inputs: &Value) -> Result<Outputs> {
        StepImpl::apply(self, cx, &typed(T::NAME, inputs)?).await
    }
    async fn rollback(&self, cx: &Ctx, inputs: &Value, before: Option<&Value>) -> Result<Undone> {
        StepImpl::rollback(self, cx, &typed(T::NAME, inputs)?, before).await
    }
}

/// The steps that act on the runbook's `[[lambda]]` functions.
const NEEDS_LAMBDAS: &[&str] = &[
    "connect-policy",
    "lambda-ingress",
    "lambda-env",
    "invoke-check",
];

/// The steps each listed step waits on, among those the runbook lists: the
/// ones whose outputs it reads, and its `AFTER` steps. The runbook's order
/// is one order that respects them (see [`check_references`]); steps with
/// no path between them may run at the same time.
pub fn dependencies(rb: &Runbook) -> BTreeMap<String, Vec<String>> {
    let listed: Vec<&str> = rb.step_names().collect();
    let none = |_: &str, _: &str| None;
    let mut graph = BTreeMap::new();
    for name in &listed {
        let Some(step) = get(name) else { continue };
        let mut r = Resolver::new(&none);
        step.inputs(rb, &mut r);
        let mut deps: Vec<String> = Vec::new();
        let reads = r.used.into_iter().map(|(s, _, _)| s);
        let after = step.after().iter().map(|(s, _)| s.to_string());
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
        if NEEDS_LAMBDAS.contains(&step.name()) && rb.lambdas.is_empty() && !lambdas_reported {
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
            let message = match order.iter().position(|s| *s == target) {
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
