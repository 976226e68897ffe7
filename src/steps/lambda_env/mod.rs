//! Recipe step 9: point each Lambda function's DB_HOST (name configurable)
//! at the proxy endpoint, merged with its other variables (the book's
//! command wipes them). The previous value is kept in the state; rollback
//! restores it, or removes the variable if it did not exist.
//!
//! The step (this file) stands on: `inputs.rs` (what the state records),
//! `diff.rs` (the decisions made without a call) and `calls.rs` (the calls
//! to Lambda); tests in `tests.rs`.

mod calls;
mod diff;
mod inputs;
#[cfg(test)]
mod tests;

use anyhow::Result;
use async_trait::async_trait;
use futures_util::future::try_join_all;
use serde_json::{Value, json};

use super::contract::{Actions, Ctx, Found, On, Outputs, Resolver, StepImpl, Undone};
use crate::runbook::Runbook;
use calls::{Set, listed_variables, set_variable, to_restore, variables};
use diff::{
    Restore, by_function, host_like, left_as_found, old_value, ours, recorded_value, removed,
    with_removed,
};
pub use inputs::{Function, Inputs};

pub struct LambdaEnv;

#[async_trait]
impl StepImpl for LambdaEnv {
    type Inputs = Inputs;
    const NAME: &'static str = "lambda-env";
    const ACTS_ON_LAMBDAS: bool = true;
    const OUTPUTS: &'static [&'static str] = &["endpoint"];
    const ACTIONS: Actions = Actions {
        check: &[
            ("lambda:GetFunctionConfiguration", On::Functions),
            // Its check reads the place's listing of every function.
            ("lambda:ListFunctions", On::Any),
        ],
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
        let all = try_join_all(i.functions.iter().map(|f| listed_variables(cx, &f.name))).await?;
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
        let restore = to_restore(cx, i).await?;
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
        let all = try_join_all(i.functions.iter().map(|f| listed_variables(cx, &f.name))).await?;
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
        let restore = to_restore(cx, i).await?;
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
