//! What the lambda-env step decides without a call: the order of the
//! updates (one function's variables one after another), what counts as a
//! host, what an update's status means, the endpoints a variable of ours
//! may hold, and what rollback puts back (the recorded old values, the
//! runbook's restore values, the variables the runbook no longer lists).

use anyhow::Result;
use aws_sdk_lambda::types::LastUpdateStatus;
use serde_json::Value;

use super::inputs::{Function, Inputs};
use crate::poll::Wait;
use crate::steps::contract::Ctx;

/// The entries grouped by function: functions are updated at once, one
/// function's variables one after another (two updates of one function at
/// once could each drop the other's).
pub(super) fn by_function(functions: &[Function]) -> Vec<Vec<&Function>> {
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
pub(super) fn old_value<'a>(
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
pub(super) fn left_as_found(f: &Function) -> String {
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
pub(super) fn recorded_value<'a>(
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
pub(super) fn removed<'a>(before: &'a Value, i: &Inputs) -> Vec<(String, String, Option<&'a str>)> {
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
pub(super) fn with_removed(i: &Inputs, before: &Value) -> Vec<Function> {
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
pub(super) enum Restore {
    Done(String),
    Left(String),
}

/// Whether `v` looks like a host name (or address, with a port): what the
/// step replaces, and all of a variable's value it ever shows or keeps.
pub(super) fn host_like(v: &str) -> bool {
    crate::validate::host(v).is_ok()
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

/// A variable the runbook no longer lists that still points at the proxy.
pub(super) struct ToRestore {
    pub(super) name: String,
    pub(super) variable: String,
    pub(super) old: Option<String>,
    pub(super) line: String,
}

/// The endpoints a variable of ours may hold: `endpoint` (the one these
/// inputs set), the other endpoints `i` or the last applied inputs set
/// (reader variables, one the runbook no longer lists included), and every
/// other proxy endpoint this state set (a proxy a replacement left).
pub(super) fn ours(cx: &Ctx<'_>, endpoint: &str, i: &Inputs) -> Vec<String> {
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
