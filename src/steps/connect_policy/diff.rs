//! What the connect-policy step decides without a call, from what its reads
//! found (`PolicyFound`, `Wiring`): the policy's ARN, which old versions to
//! prune, how its tags must change, and how it differs from the runbook
//! (the document of a run's first pass, then of its last, and the roles to
//! attach or detach).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_iam::types::PolicyVersion;
use serde_json::Value;

use super::document::Inputs;
use crate::steps::common::{TagChanges, tag_changes};
use crate::steps::contract::Ctx;

/// IAM keeps at most five versions of a managed policy.
const MAX_VERSIONS: usize = 5;

/// Which versions to delete so that one more fits: the oldest non-default.
pub fn versions_to_prune(versions: &[PolicyVersion]) -> Vec<String> {
    let mut old: Vec<&PolicyVersion> = versions
        .iter()
        .filter(|v| !v.is_default_version())
        .collect();
    old.sort_by_key(|v| v.create_date().map(|d| d.secs()).unwrap_or_default());
    let excess = (versions.len() + 1).saturating_sub(MAX_VERSIONS);
    old.iter()
        .take(excess)
        .filter_map(|v| v.version_id().map(String::from))
        .collect()
}

#[derive(Clone)]
pub(super) struct PolicyFound {
    pub(super) ours: bool,
    pub(super) document: Option<Value>,
    pub(super) tags: Vec<(String, String)>,
}

pub(super) fn policy_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:policy/{name}")
}

/// How the policy's tags must change (see [`tag_changes`]).
pub(super) fn policy_tags(cx: &Ctx<'_>, i: &Inputs, f: &PolicyFound) -> TagChanges {
    tag_changes(
        cx,
        f.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &i.tags,
    )
}

/// Where the policy stands and where a run takes it: read once per pass.
pub(super) struct Wiring {
    /// The execution role of each function, by function (ARNs).
    pub(super) arns: BTreeMap<String, String>,
    /// The functions' roles (names, sorted, once each), and whether the
    /// policy is attached to each now.
    pub(super) roles: Vec<String>,
    pub(super) attached: Vec<bool>,
    /// The roles it is attached to that no function of the runbook uses.
    pub(super) detach: Vec<String>,
}

impl Wiring {
    /// The roles the runbook's functions use (ARNs).
    pub(super) fn new_roles(&self) -> BTreeSet<String> {
        self.arns.values().cloned().collect()
    }
}

/// The documents of a run over a found policy: what the runbook wants, and
/// what its first pass writes while functions still move (see
/// [`transitional`]): the same when nothing has to wait.
pub(super) struct Documents {
    pub(super) want: Value,
    pub(super) during: Value,
}

/// Whether this is a run's last pass, which narrows the policy to the
/// runbook once every function has moved (a plan shows both passes).
pub(super) fn last_pass(cx: &Ctx<'_>) -> bool {
    cx.removals && cx.deferred.is_some()
}

/// How the policy differs from the runbook (each `what: old -> new`) and
/// the tags to change: the document the run's first pass writes, then the
/// one its last pass narrows it to, when they differ.
pub(super) fn differences(
    cx: &Ctx<'_>,
    i: &Inputs,
    found: &PolicyFound,
    docs: &Documents,
    wiring: &Wiring,
) -> Vec<String> {
    let mut d = Vec::new();
    let have = found
        .document
        .as_ref()
        .map_or("(unreadable)".to_string(), Value::to_string);
    let (want, during) = (&docs.want, &docs.during);
    if last_pass(cx) || during == want {
        if found.document.as_ref() != Some(want) {
            d.push(format!(
                "policy document: {have} -> {want} (a new default version)"
            ));
        }
    } else {
        if found.document.as_ref() != Some(during) {
            d.push(format!(
                "policy document: {have} -> {during} (a new default version that keeps each \
                 grant of the old one for the roles it had, while the functions move)"
            ));
        }
        d.push(format!(
            "policy document: then, once every function has moved, -> {want} (the run's last \
             pass)"
        ));
    }
    let unattached = wiring.roles.iter().zip(&wiring.attached);
    for (role, _) in unattached.filter(|(_, a)| !**a) {
        d.push(format!("role {role}: not attached -> attached"));
    }
    for role in &wiring.detach {
        d.push(format!(
            "role {role}: attached -> detached (no function of the runbook uses it)"
        ));
    }
    let tags = policy_tags(cx, i, found);
    d.extend(tags.lines);
    d
}
