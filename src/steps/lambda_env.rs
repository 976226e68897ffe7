//! Recipe step 9: point each Lambda function's DB_HOST (name configurable)
//! at the proxy endpoint, merged with its other variables (the book's
//! command wipes them). The previous value is kept in the state; rollback
//! restores it, or removes the variable if it did not exist.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput;
use aws_sdk_lambda::types::{Environment, LastUpdateStatus};
use futures_util::future::try_join_all;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::common::function_configuration;
use super::contract::{Actions, Ctx, Found, On, Outputs, Resolver, StepImpl, Undone};
use crate::aws::errors::is_update_in_progress;
use crate::aws::{describe_error, error_code};
use crate::poll::{Backoff, Deadline, Wait, sleep, wait_for};
use crate::runbook::Runbook;

pub struct LambdaEnv;

/// How long to keep retrying while another update of the function runs.
const CONFLICT_LIMIT: Duration = Duration::from_secs(300);
const UPDATE_LIMIT: Duration = Duration::from_secs(600);

#[derive(Serialize, Deserialize)]
pub struct Function {
    name: String,
    variable: String,
    /// What rollback sets the variable to when it already pointed at the
    /// proxy before this state touched it (an adopted setup: its real old
    /// value is unknown), from the runbook's `restore_value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    restore: Option<String>,
    /// The same for `rollback --include-adopted` only (the runbook's
    /// `include_adopted_restore_value`, as `init` writes it for a function
    /// it found on a proxy): a plain rollback leaves the variable as found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    include_adopted_restore: Option<String>,
    /// The host this variable gets when not the proxy's default endpoint:
    /// an `[[endpoint]]`'s (a reader variable such as DB_READ_HOST).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    endpoint: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub struct Inputs {
    endpoint: String,
    functions: Vec<Function>,
}

impl Function {
    /// The host this variable gets.
    fn target<'a>(&'a self, i: &'a Inputs) -> &'a str {
        self.endpoint.as_deref().unwrap_or(&i.endpoint)
    }

    /// The key of its old value in the state's `before`.
    fn key(&self) -> String {
        format!("{}.{}", self.name, self.variable)
    }
}

/// The entries grouped by function: functions are updated at once, one
/// function's variables one after another (two updates of one function at
/// once could each drop the other's).
fn by_function(functions: &[Function]) -> Vec<Vec<&Function>> {
    let mut groups: Vec<Vec<&Function>> = Vec::new();
    for f in functions {
        match groups.iter_mut().find(|g| g[0].name == f.name) {
            Some(g) => g.push(f),
            None => groups.push(vec![f]),
        }
    }
    groups
}

/// What rollback puts back in `f`: the value it had before the run, as
/// recorded (see [`recorded_value`]), else the runbook's `restore_value`
/// (a variable that was on the proxy already when adopted), else, only when
/// the rollback undoes what was adopted (`include_adopted`), its
/// `include_adopted_restore_value`; `None`: not known or not asked for,
/// leave the variable alone.
fn old_value<'a>(
    before: &'a Value,
    f: &'a Function,
    all: &[Function],
    include_adopted: bool,
) -> Option<Option<&'a str>> {
    let adopted_only = f
        .include_adopted_restore
        .as_deref()
        .filter(|_| include_adopted);
    recorded_value(before, f, all).or_else(|| f.restore.as_deref().or(adopted_only).map(Some))
}

/// Why rollback leaves `f` as it is (it has no [`old_value`]).
fn left_as_found(f: &Function) -> String {
    match &f.include_adopted_restore {
        Some(v) => format!(
            "{}: on the proxy when adopted, so left there (`rollback --include-adopted` puts \
             back {v})",
            f.key()
        ),
        None => format!(
            "{}: its old value was not recorded (nor a restore_value given)",
            f.key()
        ),
    }
}

/// The value `f` had before the run as recorded: `Some(None)` it did not
/// exist, `None` not recorded. Keyed by function and variable; states
/// written before two variables of one function were told apart key by the
/// function alone, which is trusted only for a function listed once.
fn recorded_value<'a>(
    before: &'a Value,
    f: &Function,
    all: &[Function],
) -> Option<Option<&'a str>> {
    let once = all.iter().filter(|g| g.name == f.name).count() == 1;
    before
        .get(f.key())
        .or_else(|| before.get(&f.name).filter(|_| once))
        .map(Value::as_str)
}

/// The variables an earlier run pointed at the proxy that the runbook no
/// longer lists, each with its old value: `(function, variable, old)`.
/// Keys from states that named the function alone are not followed.
fn removed<'a>(before: &'a Value, i: &Inputs) -> Vec<(String, String, Option<&'a str>)> {
    let Some(map) = before.as_object() else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(key, old)| {
            let (name, variable) = key.rsplit_once('.')?;
            let listed = i
                .functions
                .iter()
                .any(|f| f.name == name && f.variable == variable);
            (!listed).then(|| (name.to_string(), variable.to_string(), old.as_str()))
        })
        .collect()
}

/// The listed functions, then those the runbook no longer lists whose old
/// value is still recorded (an update that died before putting them back):
/// what rollback restores.
fn with_removed(i: &Inputs, before: &Value) -> Vec<Function> {
    let mut all: Vec<Function> = i
        .functions
        .iter()
        .map(|f| Function {
            name: f.name.clone(),
            variable: f.variable.clone(),
            restore: f.restore.clone(),
            include_adopted_restore: f.include_adopted_restore.clone(),
            endpoint: f.endpoint.clone(),
        })
        .collect();
    all.extend(
        removed(before, i)
            .into_iter()
            .map(|(name, variable, _)| Function {
                name,
                variable,
                restore: None,
                include_adopted_restore: None,
                endpoint: None,
            }),
    );
    all
}

/// What rollback did with one variable.
enum Restore {
    Done(String),
    Left(String),
}

/// Whether `v` looks like a host name (or address, with a port): what the
/// step replaces, and all of a variable's value it ever shows or keeps.
fn host_like(v: &str) -> bool {
    crate::validate::host(v).is_ok()
}

/// A function's configuration, read once in this pass of the step (until
/// [`set_variable`] writes it).
async fn config_once(cx: &Ctx<'_>, name: &str) -> Result<GetFunctionConfigurationOutput> {
    cx.read_once(config_key(name), function_configuration(cx, name))
        .await
}

fn config_key(name: &str) -> String {
    format!("configuration of {name}")
}

async fn variables(cx: &Ctx<'_>, name: &str) -> Result<HashMap<String, String>> {
    let conf = config_once(cx, name).await?;
    Ok(conf
        .environment()
        .and_then(|e| e.variables())
        .cloned()
        .unwrap_or_default())
}

/// What LastUpdateStatus means while waiting for an update to land.
pub fn update_decision(
    status: Option<&LastUpdateStatus>,
    reason: Option<&str>,
) -> Result<Wait<()>> {
    match status {
        None | Some(LastUpdateStatus::Successful) => Ok(Wait::Ready(())),
        Some(LastUpdateStatus::Failed) => anyhow::bail!(
            "the function's update failed: {}",
            reason.unwrap_or("no reason given")
        ),
        Some(other) => Ok(Wait::Pending(other.as_str().to_string())),
    }
}

async fn wait_updated(cx: &Ctx<'_>, name: &str) -> Result<()> {
    wait_for(
        cx.bar,
        &format!("Lambda function {name} to update"),
        UPDATE_LIMIT,
        || async {
            let conf = function_configuration(cx, name).await?;
            update_decision(conf.last_update_status(), conf.last_update_status_reason())
        },
    )
    .await
}

/// What [`set_variable`] did.
#[derive(Debug, PartialEq, Eq)]
enum Set {
    Written,
    /// It had that value already.
    AlreadySo,
    /// Its value was not the one expected: someone changed it; untouched.
    NotAsExpected,
}

/// Sets (Some) or removes (None) one variable, keeping all the others; with
/// `expect`, only while the variable still holds one of those values. The
/// first try uses this pass's read (the check's, a moment ago); each later
/// one reads the variables afresh (another update may have changed them).
/// Each checks `expect` on its read, and never writes when the read
/// failed, which would drop the others.
async fn set_variable(
    cx: &Ctx<'_>,
    name: &str,
    variable: &str,
    expect: Option<&[String]>,
    value: Option<&str>,
) -> Result<Set> {
    let deadline = Deadline::after(CONFLICT_LIMIT);
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(15));
    loop {
        let conf = config_once(cx, name).await?;
        // Whatever this try does, the next read is a new one.
        cx.forget(&config_key(name));
        if let Wait::Pending(_) =
            update_decision(conf.last_update_status(), conf.last_update_status_reason())?
        {
            wait_updated(cx, name).await?;
            continue;
        }
        let mut vars = conf
            .environment()
            .and_then(|e| e.variables())
            .cloned()
            .unwrap_or_default();
        let now = vars.get(variable).map(String::as_str);
        if expect.is_some_and(|e| !e.iter().any(|e| now == Some(e.as_str()))) {
            return Ok(Set::NotAsExpected);
        }
        if now == value {
            return Ok(Set::AlreadySo);
        }
        match value {
            Some(v) => vars.insert(variable.to_string(), v.to_string()),
            None => vars.remove(variable),
        };
        let sent = cx
            .aws
            .lambda
            .update_function_configuration()
            .function_name(name)
            .environment(Environment::builder().set_variables(Some(vars)).build())
            .send()
            .await;
        match sent {
            Ok(out) => {
                let now =
                    update_decision(out.last_update_status(), out.last_update_status_reason())?;
                if let Wait::Pending(_) = now {
                    wait_updated(cx, name).await?;
                }
                return Ok(Set::Written);
            }
            Err(e) if is_update_in_progress(error_code(&e)) && !deadline.passed() => {
                let delay = backoff.next_delay();
                cx.bar.set(format!(
                    "ResourceConflictException: retrying in {:.0}s",
                    delay.as_secs_f64().ceil()
                ));
                sleep(delay).await?;
            }
            Err(e) => anyhow::bail!(
                "cannot update the environment of {name}: {}",
                describe_error(&e)
            ),
        }
    }
}

/// A variable the runbook no longer lists that still points at the proxy.
struct ToRestore {
    name: String,
    variable: String,
    old: Option<String>,
    line: String,
}

/// The endpoints a variable of ours may hold: `endpoint` (the one these
/// inputs set), the other endpoints `i` or the last applied inputs set
/// (reader variables, one the runbook no longer lists included), and every
/// other proxy endpoint this state set (a proxy a replacement left).
fn ours(cx: &Ctx<'_>, endpoint: &str, i: &Inputs) -> Vec<String> {
    let mut all = vec![endpoint.to_string()];
    let earlier = cx.recorded_inputs::<Inputs>();
    let others = i
        .functions
        .iter()
        .chain(earlier.iter().flat_map(|e| &e.functions))
        .filter_map(|f| f.endpoint.as_ref());
    for e in others.chain(cx.our_endpoints) {
        if !all.contains(e) {
            all.push(e.clone());
        }
    }
    all
}

impl LambdaEnv {
    /// The removed functions (see [`removed`]) whose variable still holds
    /// the endpoint an earlier run set: each is put back to its old value.
    async fn to_restore(&self, cx: &Ctx<'_>, i: &Inputs) -> Result<Vec<ToRestore>> {
        let Some(before) = cx.recorded.and_then(|r| r.before.as_ref()) else {
            return Ok(Vec::new());
        };
        let gone = removed(before, i);
        if gone.is_empty() {
            return Ok(Vec::new());
        }
        let endpoint = cx
            .recorded_output("endpoint")
            .map(String::from)
            .or_else(|| cx.recorded_inputs::<Inputs>().map(|e| e.endpoint))
            .unwrap_or_else(|| i.endpoint.clone());
        let ours = ours(cx, &endpoint, i);
        let ours = &ours;
        let all = try_join_all(gone.iter().map(|(name, _, _)| async move {
            // A function deleted since has nothing to put back.
            Ok::<_, anyhow::Error>(match cx.aws.function_if_any(name).await? {
                Some(conf) => conf.environment().and_then(|e| e.variables()).cloned(),
                None => None,
            })
        }))
        .await?;
        Ok(gone
            .into_iter()
            .zip(all)
            .filter_map(|((name, variable, old), vars)| {
                let now = vars.as_ref().and_then(|v| v.get(&variable))?;
                ours.contains(now).then(|| ToRestore {
                    line: format!(
                        "{name}.{variable}: {now} -> {} (no longer in the runbook: put back)",
                        old.unwrap_or("(unset)")
                    ),
                    name,
                    variable,
                    old: old.map(String::from),
                })
            })
            .collect())
    }
}

#[async_trait]
impl StepImpl for LambdaEnv {
    type Inputs = Inputs;
    const NAME: &'static str = "lambda-env";
    const ACTS_ON_LAMBDAS: bool = true;
    const OUTPUTS: &'static [&'static str] = &["endpoint"];
    const ACTIONS: Actions = Actions {
        check: &[("lambda:GetFunctionConfiguration", On::Functions)],
        apply: &[
            ("lambda:GetFunctionConfiguration", On::Functions),
            ("lambda:UpdateFunctionConfiguration", On::Functions),
        ],
        rollback: &[
            ("lambda:GetFunctionConfiguration", On::Functions),
            ("lambda:UpdateFunctionConfiguration", On::Functions),
        ],
    };
    const AFTER: &'static [(&'static str, &'static str)] = &[
        (
            "targets",
            "the function would reach a proxy without a healthy target",
        ),
        ("lambda-ingress", "the proxy must admit the function first"),
        (
            "connect-policy",
            "the function needs rds-db:connect to log in through the proxy",
        ),
    ];
    const SETS_FUNCTION_VARIABLES: bool = true;

    /// The variables whose old value was recorded (rollback leaves the
    /// others alone).
    fn restores(
        &self,
        i: &Inputs,
        before: Option<&Value>,
        include_adopted: bool,
    ) -> Vec<(String, String)> {
        let none = json!({});
        let before = before.unwrap_or(&none);
        let all = with_removed(i, before);
        all.iter()
            .filter(|f| old_value(before, f, &all, include_adopted).is_some())
            .map(|f| (f.name.clone(), f.variable.clone()))
            .collect()
    }

    fn inputs(&self, rb: &Runbook, r: &mut Resolver) -> Inputs {
        // The other endpoints' hosts, read only when a function wants one
        // (so a runbook without them does not need their step).
        let readers = rb
            .lambdas
            .iter()
            .any(|l| l.read_env_var.is_some())
            .then(|| r.output("proxy-endpoints", "endpoints"));
        // An endpoint's host; while the step's output does not have it yet
        // (not made, or made before the runbook named it), a placeholder
        // that counts as a missing output, so the step cannot run with it.
        let host_of = |r: &mut Resolver, name: &str| {
            let found = super::proxy_endpoints::hosts(readers.as_deref().unwrap_or_default())
                .into_iter()
                .find(|(n, _)| *n == name);
            match found {
                Some((_, host)) => host,
                None => {
                    let output = format!("endpoints[{name}]");
                    let placeholder = format!("${{steps.proxy-endpoints.{output}}}");
                    if !r.missing.iter().any(|(_, o)| *o == output) {
                        r.missing.push(("proxy-endpoints".into(), output));
                    }
                    placeholder
                }
            }
        };
        let mut functions = Vec::new();
        for l in &rb.lambdas {
            let name = r.text(&l.function_name);
            functions.push(Function {
                name: name.clone(),
                variable: l.env_var.clone(),
                restore: l.restore_value.as_ref().map(|t| r.text(t)),
                include_adopted_restore: l
                    .include_adopted_restore_value
                    .as_ref()
                    .map(|t| r.text(t)),
                endpoint: None,
            });
            if let Some(var) = &l.read_env_var {
                functions.push(Function {
                    name,
                    variable: var.clone(),
                    restore: None,
                    include_adopted_restore: None,
                    endpoint: Some(host_of(r, rb.reader_endpoint_name(l).unwrap_or_default())),
                });
            }
        }
        Inputs {
            endpoint: r.output("proxy", "endpoint"),
            functions,
        }
    }

    fn describe(&self, i: &Inputs) -> String {
        let (main, readers): (Vec<&Function>, Vec<&Function>) =
            i.functions.iter().partition(|f| f.endpoint.is_none());
        let main: Vec<String> = main.iter().map(|f| f.key()).collect();
        let readers: String = readers
            .iter()
            .map(|f| format!("; {} = {}", f.key(), f.target(i)))
            .collect();
        format!(
            "{} = {}{readers} (other variables kept)",
            main.join(", "),
            i.endpoint
        )
    }

    async fn check(&self, cx: &Ctx, i: &Inputs) -> Result<Found> {
        let mut pending = Vec::new();
        let all = try_join_all(i.functions.iter().map(|f| variables(cx, &f.name))).await?;
        let earlier: Option<Inputs> = cx.recorded_inputs();
        for (f, vars) in i.functions.iter().zip(all) {
            match vars.get(&f.variable) {
                Some(v) if *v == f.target(i) => {}
                // Not a host (a URL with a password, say): swapping it for
                // a host would break the function, and its old value would
                // have to be kept in the state.
                Some(v) if !host_like(v) => {
                    return Ok(Found::Foreign(format!(
                        "{} holds something other than a host name (not shown); the step \
                         sets it to the proxy's host name: set [[lambda]] env_var to the \
                         variable that holds the DB's host",
                        f.key()
                    )));
                }
                now => {
                    let was_listed = earlier.as_ref().is_some_and(|e| {
                        e.functions
                            .iter()
                            .any(|g| g.name == f.name && g.variable == f.variable)
                    });
                    let why = if now.is_some_and(|v| cx.our_endpoints.contains(v)) {
                        "moves to the new proxy"
                    } else if was_listed {
                        "changed outside the runbook"
                    } else {
                        "added to the runbook"
                    };
                    let now = now.map_or("(unset)", String::as_str);
                    pending.push((
                        f.key(),
                        format!("{}: {now} -> {} ({why})", f.key(), f.target(i)),
                    ));
                }
            }
        }
        let restore = self.to_restore(cx, i).await?;
        let applied = cx
            .recorded
            .is_some_and(|r| r.status == crate::state::Status::Applied);
        Ok(if pending.is_empty() && restore.is_empty() {
            Found::Done(Outputs::from([("endpoint".into(), i.endpoint.clone())]))
        } else if applied || !restore.is_empty() {
            // Applied before: what differs now is an edit or a change by hand.
            let mut lines: Vec<String> = pending.into_iter().map(|(_, l)| l).collect();
            lines.extend(restore.into_iter().map(|r| r.line));
            Found::Update(
                lines,
                Outputs::from([("endpoint".into(), i.endpoint.clone())]),
            )
        } else if pending.len() < i.functions.len() {
            let keys: Vec<String> = pending.into_iter().map(|(k, _)| k).collect();
            Found::Incomplete(
                format!("still to point at the proxy: {}", keys.join(", ")),
                None,
            )
        } else {
            Found::Missing
        })
    }

    /// Old -> new for each function, and the names (never the values) of
    /// the variables left alone.
    async fn details(&self, cx: &Ctx, i: &Inputs) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let all = try_join_all(i.functions.iter().map(|f| variables(cx, &f.name))).await?;
        for (f, vars) in i.functions.iter().zip(all) {
            let old = match vars.get(&f.variable) {
                None => "(unset)",
                Some(v) if host_like(v) => v,
                Some(_) => "(not a host name: not shown)",
            };
            out.push(format!("{}: {old} -> {}", f.key(), f.target(i)));
            // The variables no entry of this function sets.
            let set_here = |k: &String| {
                i.functions
                    .iter()
                    .any(|g| g.name == f.name && g.variable == *k)
            };
            let mut others: Vec<&String> = vars.keys().filter(|k| !set_here(k)).collect();
            others.sort();
            if !others.is_empty() {
                let names: Vec<&str> = others.iter().map(|s| s.as_str()).collect();
                out.push(format!("{}: left alone: {}", f.name, names.join(", ")));
            }
        }
        Ok(out)
    }

    /// The value each variable had before the first run that pointed it at
    /// the proxy (null: it was unset): what was recorded is kept, and only
    /// the functions not recorded yet (added to the runbook) are read.
    async fn before(&self, cx: &Ctx, i: &Inputs, recorded: Option<Value>) -> Result<Option<Value>> {
        let mut before = recorded
            .as_ref()
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        // A state from before the keys named the variable keys a function
        // listed once by its name: named by its variable from now on, so
        // that another variable of it, or its removal, finds it.
        if let Some(earlier) = cx.recorded_inputs::<Inputs>() {
            for g in &earlier.functions {
                let once = earlier
                    .functions
                    .iter()
                    .filter(|h| h.name == g.name)
                    .count()
                    == 1;
                if once && let Some(old) = before.remove(&g.name) {
                    before.entry(g.key()).or_insert(old);
                }
            }
        }
        let recorded = Value::Object(before.clone());
        let unknown: Vec<&Function> = i
            .functions
            .iter()
            .filter(|f| recorded_value(&recorded, f, &i.functions).is_none())
            .collect();
        let all = try_join_all(unknown.iter().map(|f| variables(cx, &f.name))).await?;
        let ours = ours(cx, &i.endpoint, i);
        for (f, vars) in unknown.into_iter().zip(all) {
            match vars.get(&f.variable) {
                // On a proxy of ours already (an adopted setup): its old
                // value is not this one (the runbook's `restore_value` may
                // say what it was).
                Some(now) if ours.contains(now) => {}
                now => {
                    before.insert(f.key(), json!(now));
                }
            }
        }
        Ok(Some(Value::Object(before)))
    }

    /// The variables not on the proxy yet (a `run` moves them); those on it
    /// have no known old value (the runbook's `restore_value` says it).
    async fn adopted(&self, cx: &Ctx, i: &Inputs, _: &Outputs) -> Result<Option<Value>> {
        StepImpl::before(self, cx, i, None).await
    }

    /// Once applied, a function the runbook no longer lists was put back:
    /// its old value is no longer needed.
    fn settled_before(&self, i: &Inputs, before: Option<Value>) -> Option<Value> {
        let mut before = before?;
        let gone: Vec<String> = removed(&before, i)
            .into_iter()
            .map(|(name, variable, _)| format!("{name}.{variable}"))
            .collect();
        if let Some(map) = before.as_object_mut() {
            for key in gone {
                map.remove(&key);
            }
        }
        Some(before)
    }

    async fn apply(&self, cx: &Ctx, i: &Inputs) -> Result<Outputs> {
        cx.bar.set("setting the variables to the proxy endpoint");
        let restore = self.to_restore(cx, i).await?;
        try_join_all(
            by_function(&i.functions)
                .into_iter()
                .map(|group| async move {
                    for f in group {
                        set_variable(cx, &f.name, &f.variable, None, Some(f.target(i))).await?;
                    }
                    anyhow::Ok(())
                }),
        )
        .await?;
        // Then the functions the runbook no longer lists get their old value
        // back, each only while it still holds our endpoint.
        let ours = ours(cx, &i.endpoint, i);
        for r in restore {
            cx.bar.set(format!("restoring {}.{}", r.name, r.variable));
            set_variable(cx, &r.name, &r.variable, Some(&ours), r.old.as_deref()).await?;
        }
        Ok(Outputs::from([("endpoint".into(), i.endpoint.clone())]))
    }

    async fn rollback(&self, cx: &Ctx, i: &Inputs, before: Option<&Value>) -> Result<Undone> {
        let none = json!({});
        let before = before.unwrap_or(&none);
        let all = with_removed(i, before);
        let include_adopted = cx.include_adopted;
        if !all
            .iter()
            .any(|f| old_value(before, f, &all, include_adopted).is_some())
        {
            let why: Vec<String> = all.iter().map(left_as_found).collect();
            return Ok(Undone::LeftAlone(why.join("; ")));
        }
        let all = &all;
        let ours = ours(cx, &i.endpoint, i);
        let ours = &ours;
        let outcomes = try_join_all(by_function(all).into_iter().map(|group| async move {
            let mut out = Vec::new();
            for f in group {
                let Some(old) = old_value(before, f, all, include_adopted) else {
                    out.push(Restore::Left(left_as_found(f)));
                    continue;
                };
                // One the runbook no longer lists may be gone since.
                let listed = i.functions.iter().any(|g| g.name == f.name);
                if !listed && cx.aws.function_if_any(&f.name).await?.is_none() {
                    out.push(Restore::Left(format!("{}: the function is gone", f.key())));
                    continue;
                }
                cx.bar.set(format!("restoring {}", f.key()));
                // Only while it still holds the endpoint we set: a
                // change made since is not ours to undo.
                let set = set_variable(cx, &f.name, &f.variable, Some(ours), old).await?;
                out.push(match (set, old) {
                    (Set::NotAsExpected, _) => {
                        Restore::Left(format!("{}: no longer on the proxy endpoint", f.key()))
                    }
                    (_, Some(_)) => Restore::Done(format!("restored {}", f.key())),
                    (_, None) => Restore::Done(format!("removed {} (it did not exist)", f.key())),
                });
            }
            anyhow::Ok(out)
        }))
        .await?;
        let (mut restored, mut left) = (Vec::new(), Vec::new());
        for o in outcomes.into_iter().flatten() {
            match o {
                Restore::Done(t) => restored.push(t),
                Restore::Left(t) => left.push(t),
            }
        }
        if restored.is_empty() {
            return Ok(Undone::AlreadyGone(format!(
                "left as is: {}",
                left.join(", ")
            )));
        }
        let mut text = restored.join("; ");
        if !left.is_empty() {
            text.push_str(&format!("; left as is: {}", left.join(", ")));
        }
        Ok(Undone::Done(text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, variable: &str) -> Function {
        Function {
            name: name.into(),
            variable: variable.into(),
            restore: None,
            include_adopted_restore: None,
            endpoint: None,
        }
    }

    #[test]
    fn only_host_names_are_shown_or_replaced() {
        assert!(host_like("db.abc.us-east-1.rds.amazonaws.com"));
        assert!(host_like("10.0.0.5:3306"));
        assert!(!host_like("mysql://admin:s3cret@db.example:3306/app"));
        assert!(!host_like("user=admin password=x host=db"));
        assert!(!host_like(""));
    }

    #[test]
    fn two_variables_of_one_function_keep_their_own_old_values() {
        let fs = [
            entry("api", "DB_HOST"),
            entry("jobs", "DB_HOST"),
            entry("api", "DB_RO_HOST"),
        ];
        let groups: Vec<Vec<String>> = by_function(&fs)
            .iter()
            .map(|g| g.iter().map(|f| f.key()).collect())
            .collect();
        assert_eq!(
            groups,
            [vec!["api.DB_HOST", "api.DB_RO_HOST"], vec!["jobs.DB_HOST"]]
        );
        let before = json!({"api.DB_HOST": "db", "api.DB_RO_HOST": null});
        assert_eq!(old_value(&before, &fs[0], &fs, false), Some(Some("db")));
        assert_eq!(
            old_value(&before, &fs[2], &fs, false),
            Some(None),
            "did not exist"
        );
        assert_eq!(
            old_value(&before, &fs[1], &fs, false),
            None,
            "not recorded: unknown"
        );
        // A state written before the keys named the variable: trusted only
        // for a function listed once.
        let old = json!({"api": "old", "jobs": "old2"});
        assert_eq!(old_value(&old, &fs[1], &fs, false), Some(Some("old2")));
        assert_eq!(old_value(&old, &fs[0], &fs, false), None);
    }

    /// A function found on the proxy goes back only where the user said:
    /// their `restore_value` for every rollback; the value `init` wrote
    /// (`include_adopted_restore_value`) for `rollback --include-adopted`
    /// alone, else it is left as found.
    #[test]
    fn a_value_init_wrote_is_put_back_only_with_include_adopted() {
        let none = json!({});
        let by_init = Function {
            include_adopted_restore: Some("db".into()),
            ..entry("api", "DB_HOST")
        };
        let all = [by_init];
        assert_eq!(old_value(&none, &all[0], &all, false), None);
        assert_eq!(old_value(&none, &all[0], &all, true), Some(Some("db")));
        assert!(left_as_found(&all[0]).contains("`rollback --include-adopted` puts back db"));
        let by_user = Function {
            restore: Some("db".into()),
            ..entry("api", "DB_HOST")
        };
        let all = [by_user];
        assert_eq!(old_value(&none, &all[0], &all, false), Some(Some("db")));
        // What the state recorded comes first.
        let before = json!({"api.DB_HOST": "recorded"});
        assert_eq!(
            old_value(&before, &all[0], &all, false),
            Some(Some("recorded"))
        );
        let i = Inputs {
            endpoint: "proxy".into(),
            functions: vec![Function {
                include_adopted_restore: Some("db".into()),
                ..entry("api", "DB_HOST")
            }],
        };
        assert!(StepImpl::restores(&LambdaEnv, &i, None, false).is_empty());
        assert_eq!(
            StepImpl::restores(&LambdaEnv, &i, None, true),
            [("api".to_string(), "DB_HOST".to_string())]
        );
    }

    #[test]
    fn functions_no_longer_listed_are_put_back_then_forgotten() {
        let i = Inputs {
            endpoint: "proxy".into(),
            functions: vec![entry("api", "DB_HOST")],
        };
        let before = json!({"api.DB_HOST": "db", "jobs.DB_HOST": null, "old": "x"});
        assert_eq!(
            removed(&before, &i),
            vec![("jobs".to_string(), "DB_HOST".to_string(), None)],
            "a key of the old format is not followed"
        );
        let all: Vec<String> = with_removed(&i, &before).iter().map(|f| f.key()).collect();
        assert_eq!(
            all,
            ["api.DB_HOST", "jobs.DB_HOST"],
            "rollback restores both"
        );
        let settled = StepImpl::settled_before(&LambdaEnv, &i, Some(before)).unwrap();
        assert_eq!(settled, json!({"api.DB_HOST": "db", "old": "x"}));
    }

    #[test]
    fn update_status_decisions() {
        assert!(matches!(update_decision(None, None), Ok(Wait::Ready(()))));
        assert!(matches!(
            update_decision(Some(&LastUpdateStatus::Successful), None),
            Ok(Wait::Ready(()))
        ));
        assert!(matches!(
            update_decision(Some(&LastUpdateStatus::InProgress), None),
            Ok(Wait::Pending(s)) if s == "InProgress"
        ));
        let e = update_decision(Some(&LastUpdateStatus::Failed), Some("ENI limit")).unwrap_err();
        assert!(e.to_string().contains("ENI limit"));
    }

    mod mocked {
        use super::*;
        use crate::steps::mock::{Mocked, block_on};
        use aws_sdk_lambda::Client;
        use aws_sdk_lambda::error::ErrorMetadata;
        use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput;
        use aws_sdk_lambda::operation::update_function_configuration::{
            UpdateFunctionConfigurationError, UpdateFunctionConfigurationOutput,
        };
        use aws_sdk_lambda::types::EnvironmentResponse;
        use aws_smithy_mocks::mock;

        fn config(db_host: &str, status: LastUpdateStatus) -> GetFunctionConfigurationOutput {
            GetFunctionConfigurationOutput::builder()
                .last_update_status(status)
                .environment(
                    EnvironmentResponse::builder()
                        .variables("DB_HOST", db_host)
                        .variables("DB_USER", "admin")
                        .build(),
                )
                .build()
        }

        fn inputs() -> Inputs {
            Inputs {
                endpoint: "proxy.example".into(),
                functions: vec![Function {
                    name: "f".into(),
                    variable: "DB_HOST".into(),
                    restore: None,
                    include_adopted_restore: None,
                    endpoint: None,
                }],
            }
        }

        #[test]
        fn conflicts_are_retried_and_other_variables_kept() {
            let get = mock!(Client::get_function_configuration)
                .then_output(|| config("db.example", LastUpdateStatus::Successful));
            // Only an update that keeps DB_USER and sets DB_HOST matches.
            let update = mock!(Client::update_function_configuration)
                .match_requests(|req| {
                    let vars = req.environment().and_then(|e| e.variables());
                    vars.is_some_and(|v| {
                        v.get("DB_USER").map(String::as_str) == Some("admin")
                            && v.get("DB_HOST").map(String::as_str) == Some("proxy.example")
                    })
                })
                .sequence()
                .error(|| {
                    UpdateFunctionConfigurationError::generic(
                        ErrorMetadata::builder()
                            .code("ResourceConflictException")
                            .build(),
                    )
                })
                .times(2)
                .output(|| UpdateFunctionConfigurationOutput::builder().build())
                .build();
            let m = Mocked::new(&[], &[], &[&get, &update]);
            let out = block_on(StepImpl::apply(&LambdaEnv, &m.cx(), &inputs())).unwrap();
            assert_eq!(out["endpoint"], "proxy.example");
            assert_eq!(update.num_calls(), 3);
        }

        #[test]
        fn an_update_in_progress_is_waited_on_and_a_failed_one_reported() {
            let get = mock!(Client::get_function_configuration)
                .sequence()
                .output(|| config("db.example", LastUpdateStatus::InProgress))
                .times(2)
                .output(|| {
                    GetFunctionConfigurationOutput::builder()
                        .last_update_status(LastUpdateStatus::Failed)
                        .last_update_status_reason("EniLimitExceeded")
                        .build()
                })
                .repeatedly()
                .build();
            let m = Mocked::new(&[], &[], &[&get]);
            let e = block_on(StepImpl::apply(&LambdaEnv, &m.cx(), &inputs())).unwrap_err();
            assert!(e.to_string().contains("EniLimitExceeded"), "{e}");
            // The read before the update, then the waits' looks; no update.
            assert_eq!(get.num_calls(), 3);
        }

        #[test]
        fn rollback_restores_the_old_value_only_if_ours_is_still_there() {
            let get = mock!(Client::get_function_configuration)
                .then_output(|| config("proxy.example", LastUpdateStatus::Successful));
            let update = mock!(Client::update_function_configuration)
                .match_requests(|req| {
                    req.environment()
                        .and_then(|e| e.variables())
                        .and_then(|v| v.get("DB_HOST"))
                        .map(String::as_str)
                        == Some("db.example")
                })
                .then_output(|| UpdateFunctionConfigurationOutput::builder().build());
            let m = Mocked::new(&[], &[], &[&get, &update]);
            let before = json!({"f": "db.example"});
            let undone = block_on(StepImpl::rollback(
                &LambdaEnv,
                &m.cx(),
                &inputs(),
                Some(&before),
            ))
            .unwrap();
            assert_eq!(undone, Undone::Done("restored f.DB_HOST".into()));
            assert_eq!(update.num_calls(), 1);

            // Someone pointed it elsewhere since: left alone.
            let get = mock!(Client::get_function_configuration)
                .then_output(|| config("other.example", LastUpdateStatus::Successful));
            let m = Mocked::new(&[], &[], &[&get]);
            let undone = block_on(StepImpl::rollback(
                &LambdaEnv,
                &m.cx(),
                &inputs(),
                Some(&before),
            ))
            .unwrap();
            assert!(matches!(undone, Undone::AlreadyGone(_)), "{undone:?}");
        }
    }
}
