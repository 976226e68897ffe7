//! A fleet read and compared before anything is called: the runbook files
//! named (a folder's in name order), and what two or more would share that
//! they must not (a name, a state, a proxy, a function's variable, the
//! proxy quota). Pure: from the runbooks and where they act.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::aws::Place;
use crate::error::Failure;
use crate::runbook::Runbook;

/// The one path given, when it is one runbook file (not a fleet).
pub fn single(paths: &[PathBuf]) -> Option<&Path> {
    match paths {
        [one] if !one.is_dir() => Some(one),
        _ => None,
    }
}

/// The runbook files named: files as given, a folder's `*.toml` files in
/// name order; each once.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| {
                    Failure::usage(format!("cannot read the folder {}: {e}", p.display()))
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "toml"))
                .collect();
            if found.is_empty() {
                return Err(Failure::usage(format!(
                    "the folder {} holds no runbook (*.toml)",
                    p.display()
                )));
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    files.retain(|f| seen.insert(std::fs::canonicalize(f).unwrap_or_else(|_| f.clone())));
    Ok(files)
}

/// The proxies AWS allows in one account and region (the default quota).
pub const PROXY_QUOTA: usize = 20;

/// What two or more runbooks of the fleet share that they must not: each
/// as (refused by `run`/`resume`?, what, the fix). Pure: from the
/// runbooks and where they act.
pub fn collisions(fleet: &[(&Path, &Runbook, Place, String)]) -> Vec<(bool, String)> {
    let mut found = Vec::new();
    let shown = |p: &Path| p.display().to_string();
    let mut by: BTreeMap<(&str, String), Vec<&Path>> = BTreeMap::new();
    for (path, rb, place, state) in fleet {
        by.entry(("name", rb.name.clone())).or_default().push(path);
        by.entry(("state", state.clone())).or_default().push(path);
        if let Some(p) = rb.proxy.name.literal() {
            by.entry(("proxy", format!("DB proxy {p} ({place})")))
                .or_default()
                .push(path);
        }
        for l in &rb.lambdas {
            let Some(f) = l.function_name.literal() else {
                continue;
            };
            for var in std::iter::once(&l.env_var).chain(&l.read_env_var) {
                by.entry(("variable", format!("{var} of Lambda {f} ({place})")))
                    .or_default()
                    .push(path);
            }
        }
    }
    for ((kind, what), paths) in &by {
        if paths.len() < 2 {
            continue;
        }
        let who = paths
            .iter()
            .map(|p| shown(p))
            .collect::<Vec<_>>()
            .join(", ");
        found.push(match *kind {
            "name" => (
                true,
                format!(
                    "{who} are all named `{what}`: they would share one state and one ownership \
                     tag; give each its own `name`"
                ),
            ),
            "state" => (
                true,
                format!(
                    "{who} keep their state in one place ({what}); give each its own `[state]`"
                ),
            ),
            "proxy" => (
                true,
                format!(
                    "{who} all name {what}: each would change the other's; keep it in one runbook"
                ),
            ),
            _ => (
                true,
                format!(
                    "{who} all set {what}: the last to run would win; keep the function in one \
                     runbook"
                ),
            ),
        });
    }
    let mut per_place: BTreeMap<&Place, usize> = BTreeMap::new();
    for (_, _, place, _) in fleet {
        *per_place.entry(place).or_default() += 1;
    }
    for (place, n) in per_place {
        if n > PROXY_QUOTA {
            found.push((
                false,
                format!(
                    "{n} runbooks make a proxy in {place}: more than \
                     AWS's default quota of {PROXY_QUOTA} proxies per account and region (ask \
                     for more through Service Quotas, or spread them)"
                ),
            ));
        }
    }
    found
}
