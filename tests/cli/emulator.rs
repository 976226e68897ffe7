//! The emulator's AWS rules (localstack/awsrules): their own boto3 tests,
//! and runbooks or orders that AWS refuses: each fails under the rules where
//! plain moto lets it through, so the suite's passing runs mean something.

use super::*;
use std::path::Path;
use std::process::Command;

#[test]
fn the_emulators_own_rule_tests_pass() {
    install_emulator();
    let out = Command::new(Path::new(ROOT).join("localstack/.venv/bin/python"))
        .args([
            "-m",
            "unittest",
            "discover",
            "-s",
            "awsrules/tests",
            "-t",
            ".",
        ])
        .current_dir(Path::new(ROOT).join("localstack"))
        .bounded_output();
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "localstack/awsrules tests failed:\n{report}"
    );
    assert!(report.contains("OK"), "{report}");
}

/// The runbook `s` without the step `step` in its list.
fn leave_out(s: &str, step: &str) -> String {
    let kept: Vec<&str> = s
        .lines()
        .filter(|l| !l.trim_start().starts_with(&format!("\"{step}\"")))
        .collect();
    assert_ne!(kept.len(), s.lines().count(), "no step {step} to leave out");
    kept.join("\n")
}

/// Plain moto has no anomaly detection API (DescribeAnomalyDetectors
/// answers an HTML 500, which the alarms step rightly refuses to take for
/// "not offered"): on plain moto a runbook leaves its alarms out.
fn for_plain(s: &str) -> String {
    let mut doc: toml_edit::DocumentMut = leave_out(s, "alarms").parse().unwrap();
    doc.remove("alarms").expect("an [alarms] section");
    doc.to_string()
}

/// Runs the cookbook runbook without `step` (and, on `plain` moto, without
/// its alarms), waiting at most a few seconds for the proxy's target.
fn run_without(emu: &Emulator, test: &str, step: &str, plain: bool) -> Out {
    let ws = emu.workspace(test);
    ws.write_runbook(|s| {
        let s = leave_out(&s, step);
        let s = if plain { for_plain(&s) } else { s };
        edit(&s, "[proxy]\n", "[proxy]\nwait_timeout_seconds = 3\n")
    });
    ws.run(&["run", "--yes"])
}

#[track_caller]
fn says(out: &Out, text: &str) {
    assert!(
        out.stdout.contains(text) || out.stderr.contains(text),
        "the output lacks {text:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.stdout,
        out.stderr
    );
}

/// The cookbook runbook without `step` passes on plain moto and fails under
/// the rules (exit 1, with the target health's `reason`), as on AWS.
fn fails_only_under_the_rules(test: &str, step: &str, reason: &str) {
    let plain = Emulator::start_plain();
    run_without(&plain, &format!("{test}-plain"), step, true).ok();
    let emu = Emulator::start();
    if !emu.has_rules(test) {
        return;
    }
    let out = run_without(&emu, test, step, false);
    out.code(1);
    says(&out, reason);
}

#[test]
fn a_runbook_without_db_ingress_fails_as_on_aws_where_plain_moto_passes() {
    fails_only_under_the_rules("no-ingress", "db-ingress", "CONNECTION_FAILED");
}

#[test]
fn a_runbook_without_secret_access_fails_as_on_aws_where_plain_moto_passes() {
    fails_only_under_the_rules("no-secret", "secret-access", "AUTH_FAILURE");
}

/// What a rollback in the wrong order would send first: the proxy's group
/// deleted while the proxy still stands. AWS refuses; plain moto deletes it
/// (and the proxy is left with a group that no longer exists). The tool's
/// own rollback, in its order, passes under the rules in every other test.
#[test]
fn deleting_the_proxys_group_before_the_proxy_is_refused_as_on_aws() {
    for (emu, aws_like) in [(Emulator::start_plain(), false), (Emulator::start(), true)] {
        if aws_like && !emu.has_rules("deleting_the_proxys_group_before_the_proxy") {
            return;
        }
        let ws = emu.workspace(if aws_like {
            "sg-first"
        } else {
            "sg-first-plain"
        });
        if !aws_like {
            ws.write_runbook(|s| for_plain(&s));
        }
        ws.run(&["run", "--yes"]).ok();
        let group = ws.output("proxy-security-group", "group_id");
        let config = emu.sdk_config();
        let deleted = runtime().block_on(async {
            aws_sdk_ec2::Client::new(&config)
                .delete_security_group()
                .group_id(&group)
                .send()
                .await
        });
        match deleted {
            Ok(_) => assert!(!aws_like, "the rules let a group in use be deleted"),
            Err(e) => {
                assert!(aws_like, "plain moto refused: {e:?}");
                let code = e.as_service_error().and_then(|e| e.meta().code());
                assert_eq!(code, Some("DependencyViolation"), "{e:?}");
                ws.run(&["rollback", "--yes"]).ok();
            }
        }
    }
}

/// No change twice, counted by the emulator itself: a re-run of a finished
/// runbook sends no call that writes, only reads.
#[test]
fn a_rerun_sends_no_write_call() {
    let emu = Emulator::start();
    if !emu.has_rules("a_rerun_sends_no_write_call") {
        return;
    }
    let ws = emu.workspace("rerun-reads");
    ws.run(&["run", "--yes"]).ok();
    let before = emu.calls();
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
    let after = emu.calls();
    let reads = ["Describe", "Get", "List"];
    let writes: Vec<String> = after
        .iter()
        .filter(|(action, n)| **n > before.get(*action).copied().unwrap_or(0))
        .map(|(action, _)| action.clone())
        .filter(|a| !reads.iter().any(|r| a.starts_with(r)) && a != "Invoke")
        .collect();
    assert!(writes.is_empty(), "the re-run wrote: {writes:?}");
    assert!(
        after.get("DescribeDBProxies") > before.get("DescribeDBProxies"),
        "the re-run did not even look: {after:?}"
    );
}

/// The deleted proxy's network interfaces linger (as on AWS, listed by
/// DescribeNetworkInterfaces): the rollback waits for them and deletes the
/// proxy's group once, instead of trying and being refused meanwhile.
#[test]
fn a_rollback_waits_for_the_proxys_interfaces_and_deletes_its_group_once() {
    let emu = Emulator::start();
    if !emu.has_rules("a_rollback_waits_for_the_proxys_interfaces_and_deletes_its_group_once") {
        return;
    }
    let ws = emu.workspace("eni-wait");
    ws.run(&["run", "--yes"]).ok();
    let before = emu.calls();
    ws.run(&["rollback", "--yes"])
        .ok()
        .stdout_has("deleted security group");
    let after = emu.calls();
    let made = |a: &str| after.get(a).copied().unwrap_or(0) - before.get(a).copied().unwrap_or(0);
    assert!(made("DescribeNetworkInterfaces") >= 1, "{after:?}");
    assert_eq!(
        made("DeleteSecurityGroup"),
        1,
        "the group's delete was tried while the interfaces lingered"
    );
}
