//! Faults between the tool and AWS (the fault layer): overlap, throttling, persistent errors, held waits, random kills.

use std::time::{Duration, Instant};

use super::*;
use support::faults;

/// A workspace whose calls go through a fault layer in front of the emulator.
fn faulty(test: &str) -> (Emulator, Workspace, faults::FaultProxy) {
    let (emu, mut ws) = setup(test);
    let layer = ws.behind_fault_layer(&emu);
    (emu, ws, layer)
}

#[test]
fn independent_steps_overlap_and_a_rerun_is_one_round_of_checks() {
    let (emu, ws, layer) = faulty("overlap");
    let before = snapshot(&emu, &ws);
    // Slow calls, so that what runs at once shows in the output and in the
    // layer's count of calls under way.
    layer.latency(Duration::from_millis(150));
    let out = ws.run(&["run", "--yes"]);
    out.ok();
    let at = |text: &str| {
        out.stdout
            .find(text)
            .unwrap_or_else(|| panic!("no {text:?} in\n{}", out.stdout))
    };
    // The role and the proxy's security group need nothing from each
    // other: both are under way before either is done.
    assert!(at("proxy-security-group: creating") < at("✓ proxy-role created"));
    assert!(at("proxy-role: creating") < at("✓ proxy-security-group created"));
    // The DB ingress needs the group only, not the proxy.
    assert!(at("✓ db-ingress created") < at("✓ proxy created"));
    // What waits on the proxy starts after it.
    assert!(at("✓ proxy created") < at("targets: checking"));
    assert!(at("✓ targets created") < at("lambda-env: checking"));
    // A new proxy does not wait for its role's grant (its target does).
    assert!(at("proxy: creating DB proxy") < at("✓ secret-access"));
    assert_one_of_each(&before, &snapshot(&emu, &ws), &ws, "after a run at once");
    // What a step's check read, its apply does not read again: the role's
    // inline policy, the proxy (in the listing preflight made), the
    // targets and the pool.
    let first = layer.all_calls();
    let count = |action: &str| first.get(action).copied().unwrap_or(0);
    assert_eq!(count("GetRolePolicy"), 1, "{first:?}");
    assert_eq!(count("DescribeDBProxyTargetGroups"), 1, "{first:?}");
    assert_eq!(
        count("DescribeDBProxies"),
        count("DescribeDBProxies (all)"),
        "a proxy read by name: {first:?}"
    );

    // The re-run of a finished runbook: no preflight, one check per step,
    // all issued together.
    let calls_before = layer.all_calls();
    layer.take_max_in_flight();
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
    let calls = layer.all_calls();
    let made = |action: &str| {
        calls.get(action).copied().unwrap_or(0) - calls_before.get(action).copied().unwrap_or(0)
    };
    for preflight_only in ["GetSecretValue", "DescribeSubnets"] {
        assert_eq!(made(preflight_only), 0, "{preflight_only}: preflight ran");
    }
    // The DB is read once, by the alarms' check (its max_connections sets
    // a threshold), not by a preflight.
    assert_eq!(made("DescribeDBInstances"), 1, "preflight ran: {calls:?}");
    assert_eq!(made("DescribeDBProxies"), 1, "one look at the proxy");
    assert_eq!(made("DescribeDBProxyTargets"), 1, "one look at the target");
    let together = layer.take_max_in_flight();
    assert!(
        together >= 8,
        "the re-run's checks were not issued together: at most {together} at once"
    );
}

#[test]
fn throttling_5xx_and_resets_are_retried() {
    use faults::Fault::*;
    let (emu, ws, layer) = faulty("transient");
    let before = snapshot(&emu, &ws);
    layer.fail("CreateRole", Throttle, 2);
    layer.fail("DescribeSecurityGroups", Unavailable, 2);
    layer.fail("CreateDBProxy", Reset, 1);
    layer.fail("AuthorizeSecurityGroupIngress", Throttle, 1);
    layer.fail("PUT configuration", Throttle, 2);
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has("Done: 10 step(s) applied");
    assert_eq!(layer.calls("CreateRole"), 3, "two throttled, then created");
    assert!(layer.calls("PUT configuration") >= 3);
    assert_one_of_each(&before, &snapshot(&emu, &ws), &ws, "after transient faults");
}

#[test]
fn errors_that_persist_fail_cleanly_and_resume_continues() {
    use faults::Fault::*;
    let (emu, ws, layer) = faulty("persistent");
    let before = snapshot(&emu, &ws);
    layer.fail("CreateSecurityGroup", Throttle, 1000);
    ws.run(&["run", "--yes"])
        .code(1)
        .stderr_has("step `proxy-security-group` failed: cannot create security group")
        .stderr_has("RequestLimitExceeded")
        .stderr_has("To continue after fixing it: rds-proxy-runbook resume");
    assert_eq!(
        layer.calls("CreateSecurityGroup"),
        6,
        "the SDK's attempts, then a clean failure"
    );
    ws.run(&["status"])
        .ok()
        .stdout_has("proxy-role             applied")
        .stdout_has("proxy-security-group   failed")
        .stdout_has("error: cannot create security group");
    layer.clear_faults();
    ws.run(&["resume", "--yes"])
        .ok()
        .stdout_has("✓ proxy-security-group created");
    assert_one_of_each(&before, &snapshot(&emu, &ws), &ws, "after resume");
}

#[test]
fn a_proxy_held_at_creating_is_waited_on_with_few_calls() {
    let (emu, ws, layer) = faulty("creating");
    let before = snapshot(&emu, &ws);
    layer.hold_proxy_creating(3);
    layer.hold_target("REGISTERING", None, 2);
    let out = ws.run(&["run", "--yes", "--until", "targets"]);
    out.ok()
        .stdout_has("waiting for DB proxy")
        .stdout_has(": creating (")
        .stdout_has("waiting for target")
        .stdout_has("REGISTERING");
    let polls = layer.calls("DescribeDBProxies");
    assert!(
        (3..=10).contains(&polls),
        "{polls} DescribeDBProxies calls for three `creating` answers"
    );
    ws.run(&["run", "--yes"]).ok();
    assert_one_of_each(&before, &snapshot(&emu, &ws), &ws, "after the waits");
}

#[test]
fn an_unavailable_target_fails_with_reason_and_fix_then_resumes() {
    let (emu, ws, layer) = faulty("unavailable");
    ws.write_runbook(|s| {
        edit(
            &s,
            "iam_auth = \"REQUIRED\"",
            "iam_auth = \"REQUIRED\"\nwait_timeout_seconds = 3",
        )
    });
    layer.hold_target("UNAVAILABLE", Some("AUTH_FAILURE"), 10_000);
    ws.run(&["run", "--yes"])
        .code(1)
        .stderr_has("step `targets` failed")
        .stderr_has("UNAVAILABLE (AUTH_FAILURE: held by the test's fault layer)")
        .stderr_has("likely fix: the proxy cannot log in")
        .stderr_has("the limit is 3s");
    layer.release_holds();
    let before_resume = snapshot(&emu, &ws);
    ws.run(&["resume", "--yes"])
        .ok()
        .stdout_has("= targets found done in the account")
        .stdout_has("✓ lambda-env created");
    // The resume makes what comes after targets: the alarms (and their
    // anomaly detection models) are all it adds, and nothing goes.
    let after = snapshot(&emu, &ws);
    let added: Vec<&String> = after
        .keys()
        .filter(|k| !before_resume.contains_key(*k))
        .collect();
    assert!(
        added
            .iter()
            .all(|k| k.starts_with("alarm ") || k.starts_with("anomaly model ")),
        "{added:?}"
    );
    assert_eq!(added.iter().filter(|k| k.starts_with("alarm ")).count(), 5);
    assert_eq!(before_resume.len() + added.len(), after.len());
}

#[test]
fn sigkill_at_random_moments_then_resume_or_rollback() {
    let emu = Emulator::start();
    let seed = std::env::var("KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos() as u64
        });
    println!("KILL_SEED={seed} reproduces this run");
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let slowed = |ws: &mut Workspace| {
        let layer = ws.behind_fault_layer(&emu);
        layer.latency(Duration::from_millis(40));
        layer
    };
    // How long a whole run takes at this latency: kills land inside it.
    let mut ws = emu.workspace("kill-timing");
    let layer = slowed(&mut ws);
    let start = Instant::now();
    ws.run(&["run", "--yes"]).ok();
    let whole = start.elapsed();
    let calls: usize = layer.all_calls().values().sum();
    println!("a whole run: {whole:?}, {calls} calls");
    for round in 0..6 {
        let mut ws = emu.workspace(&format!("kill{round}"));
        let _layer = slowed(&mut ws);
        let before = snapshot(&emu, &ws);
        let mut child = ws
            .cmd(&["run", "--yes"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let delay = Duration::from_millis(100 + next() % whole.as_millis() as u64);
        std::thread::sleep(delay);
        let _ = child.kill(); // SIGKILL
        finish(child);
        let what = format!("seed {seed}, round {round}, killed after {delay:?}");
        if round % 2 == 0 {
            let verb = if ws.state.exists() { "resume" } else { "run" };
            ws.run(&[verb, "--yes"]).ok();
            assert_one_of_each(
                &before,
                &snapshot(&emu, &ws),
                &ws,
                &format!("{what}, then {verb}"),
            );
            ws.run(&["rollback", "--yes"]).ok();
        } else {
            ws.run(&["rollback", "--yes"]).ok();
        }
        assert_same(
            &before,
            &snapshot(&emu, &ws),
            &format!("{what}, then rollback"),
        );
    }
}
