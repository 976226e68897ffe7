//! The contract each step file implements ([`StepImpl`]), the face the
//! engine drives ([`Step`]), and what a step may use and answer.

use anyhow::Result;
use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::aws::Aws;
use crate::runbook::{Runbook, Text};
use crate::ui::progress::StepBar;

pub use crate::actions::{Actions, On};
pub use crate::state::{Outputs, StepRecord};

/// What a step's check found in the account.
#[derive(Debug, Clone, PartialEq)]
pub enum Found {
    /// Exists, carries our tag, and matches the runbook.
    Done(Outputs),
    /// Not there: apply will create it.
    Missing,
    /// Ours and partly there (still creating, a document to update, an
    /// attachment missing): apply will finish it. The text says what; the
    /// outputs, when they are already what the finished resource gives
    /// later steps (a proxy still creating or modifying has its id and
    /// endpoint), let `plan` plan those steps from the account rather than
    /// claim changes to values it does not know.
    Incomplete(String, Option<Outputs>),
    /// Ours, and it differs from the runbook in what AWS can change in
    /// place (an edit of the runbook, or a change made by hand): apply
    /// changes it. Each entry says `field: the account's -> the runbook's`;
    /// the outputs are what the resource gives later steps as it is now
    /// (what `adopt` records before any change).
    Update(Vec<String>, Outputs),
    /// Ours, and it differs from the runbook in what AWS cannot change (a
    /// proxy's engine family or subnets, a group's description): only a new
    /// resource would match. Each entry says what and why. Never applied.
    Replace(Vec<String>),
    /// Something of that name exists that this runbook did not create.
    Foreign(String),
}

/// Whether an edit of a step's identity (what names the resource it makes)
/// can be carried out by `run --allow-replace`: a new resource made beside
/// the old one, which is deleted only once every function has moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replacement {
    /// On its own: the old one keeps serving until the new one is in place.
    Beside,
    /// Only when the proxy is replaced in the same run (the new proxy uses
    /// the new resource from its start, the old proxy keeps the old one
    /// until it is deleted); alone it would interrupt the functions: `why`.
    /// An edit of only the fields in `follows` (which carry the proxy's own
    /// outputs, such as its name) is the proxy's replacement itself.
    WithProxy {
        why: &'static str,
        follows: &'static [&'static str],
    },
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
    /// What the state recorded for this step when it last acted (the
    /// inputs, outputs and `before` of an earlier run), if anything: what
    /// an update compares with to undo what the runbook no longer wants
    /// (a function removed, a role no longer used).
    pub recorded: Option<&'a StepRecord>,
    /// Whether a step may remove now what the runbook no longer wants (a
    /// rule, a role's attachment). A run first does everything else, so
    /// that a function leaving the proxy keeps its way in until its
    /// variable is put back: a step that leaves a removal for later says
    /// so in `deferred`, and the engine runs it again once the rest is done.
    pub removals: bool,
    pub deferred: Option<&'a Deferred>,
    /// This state adopted what the step's names point at (`adopt`), so it
    /// is the state's to manage (or, with `rollback --include-adopted`, to
    /// delete) though it lacks our tag: see [`Ctx::claims`].
    pub adopted: bool,
    /// `rollback --include-adopted`: what this state adopted is undone too,
    /// a function found on the proxy included (put back to the runbook's
    /// `include_adopted_restore_value`). False outside a rollback.
    pub include_adopted: bool,
    /// The endpoints of every proxy this state made and has not deleted
    /// (the current one, and one a replacement left until the functions
    /// moved): a variable holding one of them was set by us.
    pub our_endpoints: &'a [String],
    /// What this pass of the step has read: see [`Ctx::read_once`].
    pub reads: crate::answers::Answers,
    /// The steps that changed the account earlier in this run (a check
    /// that follows an IAM change allows for its propagation).
    pub changed_in_run: std::collections::BTreeSet<String>,
}

/// The steps that left removals for after the rest of the run.
#[derive(Default)]
pub struct Deferred(std::sync::Mutex<std::collections::BTreeSet<String>>);

impl Deferred {
    pub fn take(&self) -> std::collections::BTreeSet<String> {
        std::mem::take(&mut *self.0.lock().expect("lock"))
    }
}

impl<'a> Ctx<'a> {
    /// A context that may remove at once (a plan shows everything; a
    /// rollback removes anyway), with what the state recorded for the step
    /// (which says whether it adopted the resource).
    pub fn new(
        aws: &'a Aws,
        runbook: &'a str,
        bar: &'a StepBar,
        recorded: Option<&'a StepRecord>,
    ) -> Ctx<'a> {
        Ctx {
            aws,
            runbook,
            bar,
            recorded,
            removals: true,
            deferred: None,
            adopted: recorded.is_some_and(|r| r.origin == Some(crate::state::Origin::Adopted)),
            include_adopted: false,
            our_endpoints: &[],
            reads: Default::default(),
            changed_in_run: Default::default(),
        }
    }

    /// `read`'s answer, read once in this pass of the step (its check,
    /// `before` and apply follow one another within moments, so what the
    /// check read is what `before` and the apply would read again: the
    /// proxy by its name, a role's inline policy, a function's
    /// configuration). The engine forgets them when the pass stops for
    /// longer (a question under `--confirm`); a step forgets one it
    /// changed.
    pub async fn read_once<T, F>(&self, key: String, read: F) -> Result<T>
    where
        T: Clone + Send + Sync + 'static,
        F: std::future::Future<Output = Result<T>>,
    {
        self.reads.read(key, read).await
    }

    /// Forgets what was read under `key` (the step changed it).
    pub fn forget(&self, key: &str) {
        self.reads.forget(key);
    }

    /// Whether `step` may make a removal now; if not, it is noted for the
    /// run's second pass.
    pub fn may_remove(&self, step: &str) -> bool {
        if !self.removals
            && let Some(d) = self.deferred
        {
            d.0.lock().expect("lock").insert(step.to_string());
        }
        self.removals
    }

    /// The inputs this step was last applied with, typed.
    pub fn recorded_inputs<I: DeserializeOwned>(&self) -> Option<I> {
        let inputs = self.recorded?.inputs.clone()?;
        serde_json::from_value(inputs).ok()
    }

    /// One output this step recorded when it last acted.
    pub fn recorded_output(&self, output: &str) -> Option<&str> {
        self.recorded?.outputs.get(output).map(String::as_str)
    }

    /// The tag every resource we create carries.
    pub fn owner_tag(&self) -> (&'static str, &str) {
        (crate::runbook::OWNER_TAG, self.runbook)
    }

    /// The value of our ownership tag on a resource, compared with ours.
    pub fn owns<'t>(&self, mut tags: impl Iterator<Item = (&'t str, &'t str)>) -> bool {
        tags.any(|(k, v)| k == crate::runbook::OWNER_TAG && v == self.runbook)
    }

    /// Whether the resource the step names (a role, a group, a policy, a
    /// proxy: one of that name) is ours to manage: our tag says so, or this
    /// state adopted it. Not for what is found by matching (ingress rules):
    /// those go by the tag alone.
    pub fn claims<'t>(&self, tags: impl Iterator<Item = (&'t str, &'t str)>) -> bool {
        self.adopted || self.owns(tags)
    }

    pub fn not_ours(&self, what: &str) -> String {
        format!(
            "{what} exists but was not created by runbook `{}` (it lacks the tag {}={}); \
             the tool will not change or delete it: to manage it from this runbook, review \
             and take it over with `rds-proxy-runbook adopt RUNBOOK`; else choose another \
             name in the runbook, or delete it yourself if it is a leftover",
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

    /// The IAM actions its calls need, for its check, apply and rollback
    /// (what `permissions` prints; the tests hold the emulator's record of
    /// every call against it).
    const ACTIONS: Actions = Actions::NONE;

    /// False for a step that only verifies (it changes nothing, so a run
    /// that only repeats it reports no change).
    const CHANGES_ACCOUNT: bool = true;

    /// Steps that must be finished first when the runbook lists them,
    /// though this one reads none of their outputs, each with the reason.
    /// With the outputs it reads, they make the graph that lets independent
    /// steps run at the same time.
    const AFTER: &'static [(&'static str, &'static str)] = &[];

    /// The steps of `AFTER` that guard only a change to a resource that
    /// exists: a run that makes the resource (the state never made or
    /// adopted it) does not wait on them.
    const AFTER_ONLY_TO_CHANGE: &'static [&'static str] = &[];

    /// True for a step that points functions' variables at the proxy. The
    /// engine never undoes any other step that changed the account while a
    /// function's variable still points at the proxy: that would leave the
    /// function on a proxy that cannot serve it.
    const SETS_FUNCTION_VARIABLES: bool = false;

    /// False for a step whose undoing cannot leave a function on a proxy
    /// that cannot serve it (alarms watch the proxy, they do not serve
    /// it): rollback undoes it while variables still point at the proxy.
    const SERVES_FUNCTIONS: bool = true;

    /// True for a step that acts on the runbook's `[[lambda]]` functions
    /// (a runbook that lists it needs one).
    const ACTS_ON_LAMBDAS: bool = false;

    /// The input fields that name what the step makes (a role's name, a
    /// proxy's name): a runbook edit of one would make another resource
    /// and orphan the recorded one, so `run` refuses it (replacement), where
    /// an edit of any other field is applied in place.
    const IDENTITY: &'static [&'static str] = &[];

    /// How an edit of the identity is carried out with `--allow-replace`.
    const REPLACEMENT: Replacement = Replacement::Beside;

    /// The runbook key that names an existing resource of this kind when
    /// the runbook leaves the step out (used by value, not managed): the
    /// steps that read its outputs get them from [`StepImpl::existing`].
    const BY_VALUE: Option<&'static str> = None;

    /// The outputs of the resource `inputs` name, as it exists in the
    /// account (None: not there), for a step used by value.
    async fn existing(&self, _cx: &Ctx, _inputs: &Self::Inputs) -> Result<Option<Outputs>> {
        Ok(None)
    }

    /// The `(function, variable)` pairs this step's rollback puts back,
    /// from its recorded inputs and `before` (and, `include_adopted`, the
    /// values only `rollback --include-adopted` puts back).
    fn restores(
        &self,
        _inputs: &Self::Inputs,
        _before: Option<&Value>,
        _include_adopted: bool,
    ) -> Vec<(String, String)> {
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
    /// What the step is about to replace (the old `DB_HOST`), kept in the
    /// state for rollback: called before every apply with what was
    /// `recorded` so far, which it must keep (a retry or an update must not
    /// mistake our own change for the original), reading only what is new
    /// (a function added to the runbook).
    async fn before(
        &self,
        _cx: &Ctx,
        _inputs: &Self::Inputs,
        recorded: Option<Value>,
    ) -> Result<Option<Value>> {
        Ok(recorded)
    }
    /// What `adopt` records as `before` for what it takes over (with
    /// `outputs`, as the check found them), so that `rollback
    /// --include-adopted` undoes what was there then and no more: the
    /// functions' variables not on the proxy yet, the role's policies, the
    /// rules found. None: the resource alone.
    async fn adopted(
        &self,
        _cx: &Ctx,
        _inputs: &Self::Inputs,
        _outputs: &Outputs,
    ) -> Result<Option<Value>> {
        Ok(None)
    }
    /// Tags what the step adopted (its `outputs`) with our ownership tag,
    /// for `adopt --tag`. None by default: targets, the role's secret
    /// access, the alarms and the functions' variables take none.
    async fn tag_owned(&self, _cx: &Ctx, _outputs: &Outputs) -> Result<()> {
        Ok(())
    }
    /// What of `before` to keep once an apply with `inputs` succeeded (an
    /// update may have put back what the runbook no longer lists).
    fn settled_before(&self, _inputs: &Self::Inputs, before: Option<Value>) -> Option<Value> {
        before
    }
    /// Brings the account to the runbook, from what the check found (read
    /// again through [`Ctx::read_once`], so within moments of the check it
    /// costs no call): what exists is updated, never created again (a
    /// create answered "already exists" needs a permission a day-two
    /// operator may lack, and leaves a failed call in CloudTrail); only
    /// what is missing is created.
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
    fn actions(&self) -> Actions;
    fn changes_account(&self) -> bool;
    fn after(&self) -> &'static [(&'static str, &'static str)];
    fn after_only_to_change(&self) -> &'static [&'static str];
    fn sets_function_variables(&self) -> bool;
    fn serves_functions(&self) -> bool;
    fn acts_on_lambdas(&self) -> bool;
    fn identity(&self) -> &'static [&'static str];
    fn replacement(&self) -> Replacement;
    fn by_value(&self) -> Option<&'static str>;
    async fn existing(&self, cx: &Ctx, inputs: &Value) -> Result<Option<Outputs>>;
    fn settled_before(&self, inputs: &Value, before: Option<Value>) -> Option<Value>;
    fn restores(
        &self,
        inputs: &Value,
        before: Option<&Value>,
        include_adopted: bool,
    ) -> Vec<(String, String)>;
    fn inputs(&self, rb: &Runbook, r: &mut Resolver) -> Value;
    fn describe(&self, inputs: &Value) -> Result<String>;
    async fn check(&self, cx: &Ctx, inputs: &Value) -> Result<Found>;
    async fn details(&self, cx: &Ctx, inputs: &Value) -> Result<Vec<String>>;
    async fn before(
        &self,
        cx: &Ctx,
        inputs: &Value,
        recorded: Option<Value>,
    ) -> Result<Option<Value>>;
    async fn adopted(&self, cx: &Ctx, inputs: &Value, outputs: &Outputs) -> Result<Option<Value>>;
    async fn tag_owned(&self, cx: &Ctx, outputs: &Outputs) -> Result<()>;
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
    fn actions(&self) -> Actions {
        T::ACTIONS
    }
    fn changes_account(&self) -> bool {
        T::CHANGES_ACCOUNT
    }
    fn after(&self) -> &'static [(&'static str, &'static str)] {
        T::AFTER
    }
    fn after_only_to_change(&self) -> &'static [&'static str] {
        T::AFTER_ONLY_TO_CHANGE
    }
    fn sets_function_variables(&self) -> bool {
        T::SETS_FUNCTION_VARIABLES
    }
    fn serves_functions(&self) -> bool {
        T::SERVES_FUNCTIONS
    }
    fn acts_on_lambdas(&self) -> bool {
        T::ACTS_ON_LAMBDAS
    }
    fn identity(&self) -> &'static [&'static str] {
        T::IDENTITY
    }
    fn replacement(&self) -> Replacement {
        T::REPLACEMENT
    }
    fn by_value(&self) -> Option<&'static str> {
        T::BY_VALUE
    }
    async fn existing(&self, cx: &Ctx, inputs: &Value) -> Result<Option<Outputs>> {
        StepImpl::existing(self, cx, &typed(T::NAME, inputs)?).await
    }
    fn settled_before(&self, inputs: &Value, before: Option<Value>) -> Option<Value> {
        match typed(T::NAME, inputs) {
            Ok(i) => StepImpl::settled_before(self, &i, before),
            Err(_) => before,
        }
    }
    fn restores(
        &self,
        inputs: &Value,
        before: Option<&Value>,
        include_adopted: bool,
    ) -> Vec<(String, String)> {
        typed(T::NAME, inputs)
            .map(|i| StepImpl::restores(self, &i, before, include_adopted))
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
    async fn before(
        &self,
        cx: &Ctx,
        inputs: &Value,
        recorded: Option<Value>,
    ) -> Result<Option<Value>> {
        StepImpl::before(self, cx, &typed(T::NAME, inputs)?, recorded).await
    }
    async fn adopted(&self, cx: &Ctx, inputs: &Value, outputs: &Outputs) -> Result<Option<Value>> {
        StepImpl::adopted(self, cx, &typed(T::NAME, inputs)?, outputs).await
    }
    async fn tag_owned(&self, cx: &Ctx, outputs: &Outputs) -> Result<()> {
        StepImpl::tag_owned(self, cx, outputs).await
    }
    async fn apply(&self, cx: &Ctx, inputs: &Value) -> Result<Outputs> {
        StepImpl::apply(self, cx, &typed(T::NAME, inputs)?).await
    }
    async fn rollback(&self, cx: &Ctx, inputs: &Value, before: Option<&Value>) -> Result<Undone> {
        StepImpl::rollback(self, cx, &typed(T::NAME, inputs)?, before).await
    }
}
