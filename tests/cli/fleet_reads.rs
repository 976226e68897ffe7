//! A fleet reads the account once per place: its checks read the place's
//! shared listings (every function, every security group and rule, every
//! proxy), and a write still acts on the resource read on its own right
//! before it.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::support::*;

/// Most calls of its own a runbook of a fleet may make in a no-op re-run,
/// besides the place's listings, each made once for the fleet: its proxy's
/// targets and target group, the invoke, its proxy's and its policy's
/// tags (AWS lists none of them). The alarms step the cookbook runbook
/// turns on reads only listings: its alarms, the DB, whether the region
/// offers anomaly detection; the state vouches for its alarms being ours,
/// and a band needs no functions' worst case. Before the shared listings a
/// runbook made 18 to 19 calls (without the alarms step).
const MOST_PER_RUNBOOK: usize = 5;

/// The place's listings, one call each for the whole fleet.
const LISTINGS: [&str; 10] = [
    "ListFunctions",
    "DescribeSecurityGroups",
    "DescribeSecurityGroupRules",
    "DescribeDBProxies",
    "GetAccountAuthorizationDetails",
    "ListSecrets",
    "GetCallerIdentity",
    "DescribeAlarms",
    "DescribeDBInstances",
    "DescribeAnomalyDetectors",
];

fn fleet(emu: &Emulator, args: &[&str], books: &[Workspace]) -> Out {
    Out::from(
        Command::new(BIN)
            .args(args)
            .args(books.iter().map(|w| &w.runbook))
            .args(["--yes", "--no-progress"])
            .env_remove("AWS_PROFILE")
            .envs(emu.aws_env())
            .stdin(Stdio::null())
            .bounded_output(),
    )
}

fn since(
    before: &BTreeMap<String, usize>,
    after: &BTreeMap<String, usize>,
) -> BTreeMap<String, usize> {
    after
        .iter()
        .map(|(k, n)| (k.clone(), n - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

#[test]
fn a_no_op_rerun_of_three_runbooks_reads_shared_listings() {
    let emu = Emulator::start();
    let books: Vec<Workspace> = ["reads-a", "reads-b", "reads-c"]
        .iter()
        .map(|t| emu.workspace(t).standalone())
        .collect();
    fleet(&emu, &["run"], &books).code(0);
    let before = emu.calls();
    let out = fleet(&emu, &["run"], &books);
    out.code(0);
    let calls = since(&before, &emu.calls());
    for listing in LISTINGS {
        let n = calls.get(listing).copied().unwrap_or(0);
        assert!(n <= 1, "{listing} {n} times: {calls:?}");
    }
    let own: usize = calls
        .iter()
        .filter(|(k, _)| !LISTINGS.contains(&k.as_str()))
        .map(|(_, n)| n)
        .sum();
    assert!(
        own <= MOST_PER_RUNBOOK * books.len(),
        "{own} calls of their own for {} runbooks (at most {MOST_PER_RUNBOOK} each): {calls:?}",
        books.len()
    );
}

#[cfg(feature = "failpoints")]
#[test]
fn a_function_changed_after_the_check_keeps_the_change_when_the_write_comes() {
    let emu = Emulator::start();
    let ws = emu.workspace("reads-fresh").standalone();
    let function = ws.env["DB_APP_FUNCTION_NAME"].clone();
    // The run stops 4 s before lambda-env's write, after its check read
    // the listing of every function.
    let run = Command::new(BIN)
        .args(["run", "--yes", "--no-progress"])
        .arg(&ws.runbook)
        .env_remove("AWS_PROFILE")
        .envs(emu.aws_env())
        .env(
            "RDS_PROXY_RUNBOOK_FAILPOINT",
            "lambda-env:before-apply:sleep4000",
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let text = ws.state_text().unwrap_or_default();
        let state: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if state["steps"]["lambda-env"]["status"] == "started" {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "lambda-env never started"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Meanwhile a colleague adds a variable to the function.
    set_function_variable(&emu, &function, "ADDED_BY_HAND", Some("yes"));
    let out = Out::from(run.wait_with_output().unwrap());
    out.code(0);
    assert_eq!(
        function_variable(&emu, &function, "ADDED_BY_HAND").as_deref(),
        Some("yes"),
        "the write acted on the function as it was then"
    );
    let endpoint = ws.output("lambda-env", "endpoint");
    assert_eq!(
        function_variable(&emu, &function, "DB_HOST"),
        Some(endpoint),
        "and pointed it at the proxy"
    );
}
