//! Names: the runbook's and the proxy's, and the closest known word to a
//! typo.

use super::types::StepCatalogue;
use crate::limits::model;

/// The runbook name goes into tags, file names and resource names.
pub fn check_runbook_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a usable runbook name: use 1 to 64 letters, digits, `-`, `_` or `.`, starting with a letter or digit"
        ))
    }
}

/// AWS's rules for a DB proxy's or a proxy endpoint's name: RDS's model
/// (DBProxyName, DBProxyEndpointName: 1 to 63 characters, pattern
/// `[a-zA-Z](?:-?[a-zA-Z0-9]+)*`), which AWS's API reference for
/// CreateDBProxy and ModifyDBProxy repeats ("Length Constraints: Minimum
/// length of 1. Maximum length of 63."); no AWS text says 60. Each rule of
/// the pattern is named, the model's pattern has the last word.
pub fn check_proxy_name(name: &str) -> Result<(), String> {
    let shape = &model::DB_PROXY_NAME;
    let max = shape.max.unwrap_or(63);
    let problem = if name.is_empty() {
        Some("is empty".to_string())
    } else if name.chars().count() as u64 > max {
        Some(format!("is longer than {max} characters"))
    } else if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        Some("must start with a letter".into())
    } else if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        Some("may hold only letters, digits and hyphens".into())
    } else if name.contains("--") {
        Some("must not contain two hyphens in a row".into())
    } else if name.ends_with('-') {
        Some("must not end with a hyphen".into())
    } else if shape.misfit(name).is_some() {
        Some(format!(
            "does not match AWS's pattern {}",
            shape.pattern.unwrap_or_default()
        ))
    } else {
        None
    };
    match problem {
        Some(p) => Err(format!(
            "proxy name `{name}` {p} (AWS: 1 to {max} letters, digits and single hyphens, starting with a letter, not ending with a hyphen)"
        )),
        None => Ok(()),
    }
}

/// Why `${steps.STEP.OUTPUT}` names nothing, if it does not.
pub(super) fn unknown_output(
    steps: &dyn StepCatalogue,
    step: &str,
    output: &str,
) -> Option<String> {
    let names = steps.names();
    match steps.outputs(step) {
        None => Some(match closest(step, &names) {
            Some(s) => format!("no step is named `{step}`; did you mean `{s}`?"),
            None => format!(
                "no step is named `{step}`; the steps are: {}",
                names.join(", ")
            ),
        }),
        Some(outputs) if !outputs.contains(&output) => Some(format!(
            "step `{step}` has no output `{output}`; its outputs are: {}",
            outputs.join(", ")
        )),
        Some(_) => None,
    }
}

/// The known word closest to `word`, if it is close enough to be a typo.
pub(crate) fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
