//! The steps on their graph: what starts together, what waits, what stops
//! after a failure.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use crate::poll;
use crate::runbook::Runbook;
use crate::steps;

/// For each step in `names`, the steps among `names` it waits on.
pub(crate) fn waits_on<'n>(
    names: &[&'n str],
    graph: &BTreeMap<String, Vec<String>>,
) -> BTreeMap<&'n str, Vec<&'n str>> {
    names
        .iter()
        .map(|n| {
            let deps = graph.get(*n).map_or(&[][..], Vec::as_slice);
            let within = names
                .iter()
                .copied()
                .filter(|m| deps.iter().any(|d| d == m))
                .collect();
            (*n, within)
        })
        .collect()
}

/// Runs `task` for each of `names` as soon as every step it waits on has
/// succeeded, as many at once as the graph allows, in one task (the
/// state's single writer is the [`Store`]). A result for which `proceed`
/// is false (a step the user skipped) holds back the steps that wait on
/// it, and nothing else. After a failure or a Ctrl-C no new step starts,
/// and those under way finish. Returns the results in the order they
/// ended; a step that never started is absent.
pub(crate) async fn schedule<'n, T, Fut>(
    names: &[&'n str],
    waits_on: &BTreeMap<&'n str, Vec<&'n str>>,
    task: impl Fn(&'n str) -> Fut,
    proceed: impl Fn(&T) -> bool,
) -> Vec<(&'n str, Result<T>)>
where
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut started: BTreeSet<&str> = BTreeSet::new();
    let mut succeeded: BTreeSet<&str> = BTreeSet::new();
    let mut results = Vec::new();
    let mut running = FuturesUnordered::new();
    let mut stop = false;
    loop {
        if !stop && !poll::interrupted() {
            for &name in names {
                let ready = waits_on
                    .get(name)
                    .is_none_or(|deps| deps.iter().all(|d| succeeded.contains(d)));
                if ready && started.insert(name) {
                    let fut = task(name);
                    running.push(async move { (name, fut.await) });
                }
            }
        }
        let Some((name, result)) = running.next().await else {
            break;
        };
        match &result {
            Ok(v) if proceed(v) => {
                succeeded.insert(name);
            }
            Ok(_) => {}
            Err(_) => stop = true,
        }
        results.push((name, result));
    }
    // Steps held back by a skipped one, directly or not.
    let mut held: BTreeSet<&str> = started.difference(&succeeded).copied().collect();
    loop {
        let more: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !started.contains(n) && !held.contains(n))
            .filter(|n| {
                waits_on
                    .get(n)
                    .is_some_and(|d| d.iter().any(|d| held.contains(d)))
            })
            .collect();
        if more.is_empty() {
            break;
        }
        held.extend(more);
    }
    // Nothing stopped it, yet a step never became ready: its steps wait on
    // each other (possible only in a runbook loaded leniently).
    if !stop && !poll::interrupted() {
        for &name in names
            .iter()
            .filter(|n| !started.contains(*n) && !held.contains(*n))
        {
            let deps = waits_on.get(name).map_or(String::new(), |d| d.join(", "));
            results.push((
                name,
                Err(anyhow::anyhow!(
                    "never started: it waits on {deps}, which wait on it in turn; \
                     list the steps in the order they need"
                )),
            ));
        }
    }
    results
}

/// Every step `name` waits on, directly or not.
pub(crate) fn ancestors<'g>(
    graph: &'g BTreeMap<String, Vec<String>>,
    name: &str,
) -> BTreeSet<&'g str> {
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&str> = graph
        .get(name)
        .map_or(Vec::new(), |d| d.iter().map(String::as_str).collect());
    while let Some(n) = todo.pop() {
        if seen.insert(n) {
            todo.extend(graph.get(n).into_iter().flatten().map(String::as_str));
        }
    }
    seen
}

/// The graph a run follows (and its plan shows): a step this state never
/// made or adopted makes its resource, and so does not wait on what only
/// guards a change (see [`steps::dependencies_for`]); with `adopt`, one
/// found made elsewhere is taken over, and waits as a change does.
pub(crate) fn run_graph(
    rb: &Runbook,
    state: &crate::state::State,
    adopt: bool,
) -> BTreeMap<String, Vec<String>> {
    steps::dependencies_for(rb, |n| {
        !adopt && state.record(n).and_then(|r| r.origin).is_none()
    })
}

/// A rollback's order, for each step in `undo`, the steps among them
/// undone first: the run's graph backwards (a step is undone once every
/// step that waits on it is); steps the runbook no longer lists (no graph
/// for them) go first, one at a time, the recipe's last first.
pub(crate) fn undo_waits<'n>(undo: &[&'n str], rb: &Runbook) -> BTreeMap<&'n str, Vec<&'n str>> {
    let graph = steps::dependencies(rb);
    let listed: BTreeSet<&str> = rb.step_names().collect();
    let known = steps::names();
    let later_in_recipe =
        |m: &str, n: &str| known.iter().position(|k| *k == m) > known.iter().position(|k| *k == n);
    undo.iter()
        .map(|&n| {
            let first = undo
                .iter()
                .copied()
                .filter(|&m| {
                    let unlisted_first =
                        !listed.contains(m) && (listed.contains(n) || later_in_recipe(m, n));
                    let waits_on_n = graph.get(m).is_some_and(|deps| deps.iter().any(|d| d == n));
                    unlisted_first || waits_on_n
                })
                .collect();
            (n, first)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_schedule(
        names: &[&'static str],
        edges: &[(&'static str, &'static str)],
        fail: &'static str,
    ) -> (Vec<String>, Vec<(&'static str, bool)>) {
        let waits: BTreeMap<&str, Vec<&str>> = names
            .iter()
            .map(|n| {
                let deps = edges.iter().filter(|(s, _)| s == n).map(|(_, d)| *d);
                (*n, deps.collect())
            })
            .collect();
        let events = std::sync::Mutex::new(Vec::new());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let results = rt.block_on(schedule(
            names,
            &waits,
            |name| {
                let events = &events;
                async move {
                    events.lock().unwrap().push(format!("start {name}"));
                    let ms = if name == "slow" { 30 } else { 1 };
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                    events.lock().unwrap().push(format!("end {name}"));
                    if name == fail {
                        anyhow::bail!("{name} failed");
                    }
                    Ok(!name.starts_with("skip"))
                }
            },
            |done| *done,
        ));
        let results = results.into_iter().map(|(n, r)| (n, r.is_ok())).collect();
        (events.into_inner().unwrap(), results)
    }

    #[test]
    fn independent_steps_start_together_and_dependents_after() {
        let (events, results) = run_schedule(
            &["slow", "quick", "after-slow"],
            &[("after-slow", "slow")],
            "",
        );
        let at = |e: &str| events.iter().position(|x| x == e).unwrap();
        assert!(at("start quick") < at("end slow"), "{events:?}");
        assert!(at("end slow") < at("start after-slow"), "{events:?}");
        assert_eq!(results.len(), 3);
        assert!(results.iter().all(|(_, ok)| *ok));
    }

    #[test]
    fn after_a_failure_nothing_new_starts_and_what_runs_finishes() {
        let (events, results) = run_schedule(
            &["quick", "slow", "after-quick"],
            &[("after-quick", "quick")],
            "quick",
        );
        assert!(events.contains(&"end slow".to_string()), "{events:?}");
        assert!(
            !events.iter().any(|e| e.contains("after-quick")),
            "{events:?}"
        );
        assert_eq!(results, [("quick", false), ("slow", true)]);
    }

    #[test]
    fn a_skipped_step_holds_back_only_what_waits_on_it() {
        let (events, results) = run_schedule(
            &["skip-a", "b", "after-a", "after-after-a", "after-b"],
            &[
                ("after-a", "skip-a"),
                ("after-after-a", "after-a"),
                ("after-b", "b"),
            ],
            "",
        );
        assert!(!events.iter().any(|e| e.contains("after-a")), "{events:?}");
        assert!(events.contains(&"end after-b".to_string()), "{events:?}");
        // Held back is not started, not an error.
        let mut results = results;
        results.sort();
        assert_eq!(results, [("after-b", true), ("b", true), ("skip-a", true)]);
    }

    #[test]
    fn steps_that_wait_on_each_other_are_an_error_not_a_silent_stop() {
        let (events, results) = run_schedule(&["a", "b"], &[("a", "b"), ("b", "a")], "");
        assert!(events.is_empty());
        assert_eq!(results, [("a", false), ("b", false)]);
    }

    #[test]
    fn ancestors_are_followed_through_the_graph() {
        let graph: BTreeMap<String, Vec<String>> = [
            ("c", vec!["b"]),
            ("b", vec!["a"]),
            ("a", vec![]),
            ("d", vec![]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
        .collect();
        assert_eq!(ancestors(&graph, "c"), BTreeSet::from(["a", "b"]));
        assert!(ancestors(&graph, "d").is_empty());
    }
}
