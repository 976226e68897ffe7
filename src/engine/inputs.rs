//! A step's inputs, from the runbook and the outputs the state holds, and
//! what changed since the state recorded them: the edits that update a
//! resource in place, those that need a new one (and whether that can be
//! made alone), the record a replacement's new resource starts from. No
//! AWS call; read by [`super::decide`], `plan`, `run` and `status`.

use serde_json::Value;

use crate::runbook::Runbook;
use crate::state::{self, State, Status};
use crate::steps::{self, Resolver, Step};

/// The outputs of applied steps, for `${steps.*}` references, and of the
/// steps the runbook uses by value (read from the account: see
/// [`read_external`]).
pub(crate) fn lookup_in<'a>(
    state: &'a State,
    rb: &'a Runbook,
) -> impl Fn(&str, &str) -> Option<String> + 'a {
    |step, output| {
        state
            .record(step)
            .filter(|r| r.status == Status::Applied)
            .and_then(|r| r.outputs.get(output).cloned())
            .or_else(|| rb.external.get()?.get(step)?.get(output).cloned())
    }
}

pub(crate) fn resolve(
    step: &dyn Step,
    rb: &Runbook,
    state: &State,
) -> (Value, Vec<(String, String)>) {
    let lookup = lookup_in(state, rb);
    let mut r = Resolver::new(&lookup);
    let inputs = step.inputs(rb, &mut r);
    (inputs, r.missing)
}

/// The steps whose outputs are missing, once each, in order.
pub(crate) fn needs(missing: &[(String, String)]) -> Vec<&str> {
    let mut steps: Vec<&str> = Vec::new();
    for (step, _) in missing {
        if !steps.contains(&step.as_str()) {
            steps.push(step);
        }
    }
    steps
}

/// The input fields that differ between two input documents, each whole:
/// objects are followed down to the fields that changed (`pool.max_...`),
/// any other value is shown in full.
pub(crate) fn changed_fields(old: Option<&Value>, new: &Value) -> Vec<String> {
    let Some(old) = old else {
        return vec!["(inputs): none recorded".into()];
    };
    let mut out = Vec::new();
    diff_into("", old, new, &mut out);
    out
}

pub(crate) fn diff_into(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    match (old, new) {
        (Value::Object(o), Value::Object(n)) => {
            let mut keys: Vec<&String> = o.keys().chain(n.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let at = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (o.get(k), n.get(k)) {
                    (Some(a), Some(b)) => diff_into(&at, a, b, out),
                    (a, b) if a != b => out.push(format!("{at}: {} -> {}", show(a), show(b))),
                    _ => {}
                }
            }
        }
        (a, b) if a != b => {
            let at = if path.is_empty() { "(inputs)" } else { path };
            out.push(format!("{at}: {} -> {}", show(Some(a)), show(Some(b))));
        }
        _ => {}
    }
}

pub(crate) fn show(v: Option<&Value>) -> String {
    match v {
        None => "(none)".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// The inputs that changed since `name` was applied, if any. A step that
/// only verifies changed nothing, so an edit of its inputs does not count.
pub(crate) fn edited_since_applied(name: &str, rb: &Runbook, state: &State) -> Option<Vec<String>> {
    let step = steps::get(name)?;
    let rec = state.record(name).filter(|r| r.status == Status::Applied)?;
    if !step.changes_account() {
        return None;
    }
    let (inputs, missing) = resolve(step, rb, state);
    (missing.is_empty() && rec.checksum.as_deref() != Some(&state::checksum(&inputs)))
        .then(|| changed_fields(rec.inputs.as_ref(), &inputs))
}

/// The fields naming what `step` made that the runbook changed since the
/// state recorded them (`field: old -> new`): applying the new ones would
/// make another resource and leave the recorded one behind.
pub(crate) fn identity_edited(step: &dyn Step, rb: &Runbook, state: &State) -> Vec<String> {
    let Some(old) = state
        .record(step.name())
        .filter(|r| r.status.may_have_changed_account())
        .and_then(|r| r.inputs.as_ref())
    else {
        return Vec::new();
    };
    let (new, missing) = resolve(step, rb, state);
    step.identity()
        .iter()
        .filter_map(|field| {
            let (a, b) = (old.get(*field), new.get(*field));
            // An output not known yet (the step it reads is not applied)
            // is no edit.
            let unresolved = missing.iter().any(|(s, o)| {
                b.and_then(Value::as_str)
                    .is_some_and(|t| t.contains(&format!("${{steps.{s}.{o}}}")))
            });
            (a != b && !unresolved).then(|| format!("{field}: {} -> {}", show(a), show(b)))
        })
        .collect()
}

/// Every input a replacement of `step` changes (`field: old -> new`), for
/// what `plan` shows and `run` says: the identity edits that make it a new
/// resource first, then every other field the new one gets (the subnets
/// that forced it, say). Empty when the runbook does not replace it.
pub(crate) fn replacement_changes(step: &dyn Step, rb: &Runbook, state: &State) -> Vec<String> {
    let identity = identity_edited(step, rb, state);
    if identity.is_empty() {
        return identity;
    }
    let old = state.record(step.name()).and_then(|r| r.inputs.as_ref());
    let (new, _) = resolve(step, rb, state);
    let of_identity = |line: &str| {
        step.identity()
            .iter()
            .any(|f| line.starts_with(&format!("{f}: ")) || line.starts_with(&format!("{f}.")))
    };
    let others = changed_fields(old, &new)
        .into_iter()
        .filter(|line| !of_identity(line));
    identity.into_iter().chain(others).collect()
}

/// The record of `step` as far as it concerns the resource `inputs` name
/// (see `StepRecord::for_inputs`): none for a new one in a replacement (the
/// record is the old resource's, which the new one must not take for its
/// own), a retired one's when they name it again.
pub(crate) fn record_for(
    state: &State,
    step: &dyn Step,
    inputs: &Value,
) -> Option<crate::state::StepRecord> {
    state
        .record(step.name())?
        .for_inputs(step.identity(), inputs)
}

/// Whether this run replaces the proxy: the runbook renamed it, or a
/// replacement of it is under way and the new one not made yet (a resume).
pub(crate) fn proxy_replaced(rb: &Runbook, state: &State) -> bool {
    rb.step_names().any(|n| n == steps::PROXY)
        && (!identity_edited(steps::named(steps::PROXY), rb, state).is_empty()
            || state
                .record(steps::PROXY)
                .is_some_and(|r| !r.retired.is_empty() && r.status != Status::Applied))
}

/// Why the identity edit `edits` (`field: old -> new`) of `step` cannot be
/// made in this run, if so: the step can be replaced only with the proxy,
/// and the proxy is not being replaced (an edit of only what follows the
/// proxy, such as the target's proxy name, is its replacement itself).
pub(crate) fn alone(
    step: &dyn Step,
    edits: &[String],
    rb: &Runbook,
    state: &State,
) -> Option<&'static str> {
    let steps::Replacement::WithProxy { why, follows } = step.replacement() else {
        return None;
    };
    let follows_proxy = edits
        .iter()
        .all(|e| follows.iter().any(|f| e.starts_with(&format!("{f}: "))));
    (!follows_proxy && !proxy_replaced(rb, state)).then_some(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_fields_names_each_difference() {
        let old: Value = serde_json::json!({"role_name": "a", "tags": {"x": "1"}, "same": 1});
        let new: Value = serde_json::json!({"role_name": "b", "tags": {"x": "2"}, "same": 1});
        let diffs = changed_fields(Some(&old), &new);
        assert_eq!(diffs.len(), 2);
        assert_eq!(diffs[0], "role_name: a -> b");
        assert_eq!(diffs[1], "tags.x: 1 -> 2");
    }

    #[test]
    fn changed_fields_are_shown_whole() {
        let long: Vec<String> = (0..40).map(|i| format!("function-{i}")).collect();
        let old = serde_json::json!({"functions": ["f"], "pool": {"max": 100, "idle": 50}});
        let new = serde_json::json!({"functions": long, "pool": {"max": 50, "idle": 50}});
        let diffs = changed_fields(Some(&old), &new);
        assert_eq!(diffs.len(), 2, "{diffs:?}");
        assert!(diffs[0].starts_with(r#"functions: ["f"] -> ["function-0","#));
        assert!(diffs[0].ends_with(r#""function-39"]"#), "cut: {}", diffs[0]);
        assert_eq!(diffs[1], "pool.max: 100 -> 50");
    }
}
