//! Fleets: several runbooks in one command, each with its own DB, function
//! and state, run at once by one process.

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::edit;
use super::support::*;

fn standalone(emu: &Emulator, test: &str) -> Workspace {
    emu.workspace(test).standalone()
}

/// The fleet command on `books`.
fn fleet(emu: &Emulator, args: &[&str], books: &[&Workspace]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .args(books.iter().map(|w| &w.runbook))
        .arg("--no-progress")
        .env_remove("AWS_PROFILE")
        .envs(emu.aws_env())
        .stdin(Stdio::null());
    c
}

fn run_fleet(emu: &Emulator, args: &[&str], books: &[&Workspace]) -> (Out, serde_json::Value) {
    let out = Out::from(
        fleet(emu, args, books)
            .args(["--output", "json"])
            .bounded_output(),
    );
    let doc = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON document ({e}):\n{}\n{}",
            out.stdout, out.stderr
        )
    });
    (out, doc)
}

/// Each runbook's (result, changes) in the fleet's document.
fn results(doc: &serde_json::Value) -> Vec<(String, String, Option<u64>)> {
    doc["runbooks"]
        .as_array()
        .expect("runbooks")
        .iter()
        .map(|r| {
            (
                r["runbook"].as_str().unwrap().to_string(),
                r["result"].as_str().unwrap().to_string(),
                r["changes"].as_u64(),
            )
        })
        .collect()
}

#[test]
fn a_fleet_where_one_fails_finishes_the_others_and_resume_finishes_it_then_rollback_is_exact() {
    let emu = Emulator::start();
    let books: Vec<Workspace> = ["fleet-a", "fleet-b", "fleet-c"]
        .iter()
        .map(|t| standalone(&emu, t))
        .collect();
    let (a, b, c) = (&books[0], &books[1], &books[2]);
    let before: Vec<Snapshot> = books.iter().map(|w| snapshot(&emu, w)).collect();
    // b's check expects what its function never answers: b fails at its
    // last step, after everything else of it is in place.
    b.write_standalone(|s| {
        edit(
            &s,
            "payload = \"{}\"",
            "payload = \"{}\"\nexpect = \"an answer it never gives\"",
        )
    });
    let rules = emu.has_rules("a fleet's one GetCallerIdentity");
    let sts = || emu.calls().get("GetCallerIdentity").copied().unwrap_or(0);
    let asked = if rules { sts() } else { 0 };
    let (out, doc) = run_fleet(&emu, &["run", "--yes"], &[a, b, c]);
    out.code(1);
    if rules {
        assert_eq!(
            sts() - asked,
            1,
            "who the caller is, asked once for the place"
        );
    }
    let names = |w: &Workspace| w.prefix.clone();
    let r = results(&doc);
    let shown: Vec<(&str, &str)> = r.iter().map(|(n, r, _)| (n.as_str(), r.as_str())).collect();
    assert_eq!(
        shown,
        [
            (names(a).as_str(), "ok"),
            (names(b).as_str(), "failed"),
            (names(c).as_str(), "ok")
        ],
        "{}",
        out.stderr
    );
    assert!(
        r.iter().all(|(_, _, n)| n.unwrap() >= 8),
        "each made its setup: {r:?}"
    );
    assert_eq!(doc["exit_code"], 1);
    let failed = &doc["runbooks"][1];
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("an answer it never gives"),
        "{failed}"
    );
    assert_eq!(failed["account"], "123456789012");
    assert_eq!(failed["region"], "us-east-1");
    // Each runbook's lines carry its name.
    out.stderr_has(&format!("{} | ", names(c)));
    for w in [a, c] {
        assert_eq!(w.state_json()["steps"]["invoke-check"]["status"], "applied");
    }

    // Fixed, the fleet resumes: only b acts.
    b.write_standalone(|s| s);
    let (out, doc) = run_fleet(&emu, &["resume", "--yes"], &[a, b, c]);
    out.code(0);
    let r = results(&doc);
    assert_eq!(r[0].1, "ok");
    assert_eq!(r[0].2, Some(0), "a has nothing to change: {}", out.stderr);
    assert_eq!(r[1].1, "ok", "{}", out.stderr);
    assert_eq!(b.state_json()["steps"]["invoke-check"]["status"], "applied");
    assert_eq!(r[2].2, Some(0), "c has nothing to change");

    // A re-run of the fleet changes nothing anywhere.
    let (out, doc) = run_fleet(&emu, &["run", "--yes"], &[a, b, c]);
    out.code(0);
    assert!(
        results(&doc)
            .iter()
            .all(|(_, r, n)| r == "ok" && *n == Some(0)),
        "{doc}"
    );

    // Rolled back together: each exactly as before.
    let (out, doc) = run_fleet(&emu, &["rollback", "--yes"], &[a, b, c]);
    out.code(0);
    assert!(results(&doc).iter().all(|(_, r, _)| r == "ok"), "{doc}");
    for (w, before) in books.iter().zip(&before) {
        assert_same(
            before,
            &snapshot(&emu, w),
            &format!("{} after the fleet's rollback", w.prefix),
        );
    }
}

#[test]
fn runbooks_that_name_one_proxy_are_refused_before_any_change() {
    let emu = Emulator::start();
    let a = standalone(&emu, "fleet-clash-a");
    let b = standalone(&emu, "fleet-clash-b");
    let proxy = a.env["DB_NAME"].clone();
    b.write_standalone(|s| s.replace("${env.DB_NAME}", &proxy));
    let before = [snapshot(&emu, &a), snapshot(&emu, &b)];
    let calls = emu.calls();
    let out = Out::from(fleet(&emu, &["run", "--yes"], &[&a, &b]).bounded_output());
    out.code(3)
        .stderr_has("collide; nothing was done")
        .stderr_has(&format!("all name DB proxy {proxy}"));
    assert_eq!(emu.calls(), calls, "not one call to the account");
    assert_same(&before[0], &snapshot(&emu, &a), "a");
    assert_same(&before[1], &snapshot(&emu, &b), "b");
    assert!(!a.state.exists() && !b.state.exists(), "no state made");
    // plan shows the collision, and plans each.
    let out = Out::from(fleet(&emu, &["plan"], &[&a, &b]).bounded_output());
    out.code(0)
        .stdout_has(&format!("warning: {}", a.runbook.display()))
        .stdout_has(&format!("== {}", a.prefix))
        .stdout_has(&format!("== {}", b.prefix))
        .stdout_has("RUNBOOK");
}

#[cfg(feature = "failpoints")]
#[test]
fn a_fleet_killed_mid_run_resumes_without_a_duplicate_and_rolls_back_without_a_leak() {
    let emu = Emulator::start();
    let books: Vec<Workspace> = ["fleet-kill-a", "fleet-kill-b"]
        .iter()
        .map(|t| standalone(&emu, t))
        .collect();
    let before: Vec<Snapshot> = books.iter().map(|w| snapshot(&emu, w)).collect();
    let refs: Vec<&Workspace> = books.iter().collect();
    // Dead right after the first proxy's create answered, before its
    // state was saved: the other runbook is wherever it is.
    let out = fleet(&emu, &["run", "--yes"], &refs)
        .env("RDS_PROXY_RUNBOOK_FAILPOINT", "proxy:after-apply")
        .bounded_output();
    assert_eq!(
        out.status.signal(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (out, doc) = run_fleet(&emu, &["resume", "--yes"], &refs);
    out.code(0);
    assert!(results(&doc).iter().all(|(_, r, _)| r == "ok"), "{doc}");
    for (w, before) in books.iter().zip(&before) {
        assert_one_of_each(before, &snapshot(&emu, w), w, "after the resume");
        assert_eq!(w.state_json()["steps"]["invoke-check"]["status"], "applied");
    }
    let (out, _) = run_fleet(&emu, &["rollback", "--yes"], &refs);
    out.code(0);
    for (w, before) in books.iter().zip(&before) {
        assert_same(before, &snapshot(&emu, w), &w.prefix);
    }
}

#[test]
fn a_folder_is_a_fleet_and_a_bad_runbook_stops_it_before_any_call() {
    let emu = Emulator::start();
    let a = standalone(&emu, "fleet-folder");
    let folder: PathBuf = a.dir.clone();
    std::fs::write(
        folder.join("broken.toml"),
        "name = \"x\"\nsteps = [\"proxy\"]\n",
    )
    .unwrap();
    let calls = emu.calls();
    let out = Out::from(
        Command::new(BIN)
            .args(["status", "--no-progress"])
            .arg(&folder)
            .envs(emu.aws_env())
            .stdin(Stdio::null())
            .bounded_output(),
    );
    out.code(3)
        .stderr_has("broken.toml")
        .stderr_has("1 of the fleet's 2 runbooks");
    assert_eq!(emu.calls(), calls);
}

#[test]
fn fail_fast_starts_no_more_runbooks_after_a_failure() {
    let emu = Emulator::start();
    let a = standalone(&emu, "fleet-ff-a");
    let b = standalone(&emu, "fleet-ff-b");
    // a's function does not exist: preflight stops it (exit 5).
    a.write_standalone(|s| s.replace("${env.DB_APP_FUNCTION_NAME}", "no-such-function"));
    let before = snapshot(&emu, &b);
    let (out, doc) = run_fleet(
        &emu,
        &["run", "--yes", "--parallel", "1", "--fail-fast"],
        &[&a, &b],
    );
    out.code(1);
    let r = results(&doc);
    assert_eq!(r[0].1, "failed", "{doc}");
    assert_eq!(r[1].1, "not started", "{doc}");
    assert_same(&before, &snapshot(&emu, &b), "b never started");
    assert!(!b.state.exists());
    // Without --fail-fast the second runs although the first failed.
    let (out, doc) = run_fleet(&emu, &["plan", "--parallel", "1"], &[&a, &b]);
    out.code(1);
    assert_eq!(results(&doc)[1].1, "changes", "{doc}");
}

#[test]
fn each_runbook_calls_with_its_own_profile() {
    let emu = Emulator::start();
    let a = standalone(&emu, "fleet-profile-a");
    let b = standalone(&emu, "fleet-profile-b");
    let home = temp_dir("fleet-profiles");
    std::fs::write(
        home.join("config"),
        "[profile team-a]\nregion = us-east-1\naws_access_key_id = test\naws_secret_access_key = test\n",
    )
    .unwrap();
    a.write_standalone(|s| s.replacen("\nsteps = [", "\nprofile = \"team-a\"\nsteps = [", 1));
    b.write_standalone(|s| s.replacen("\nsteps = [", "\nprofile = \"team-b\"\nsteps = [", 1));
    // No keys in the environment: only a runbook's profile gives any.
    let out = Out::from(
        fleet(&emu, &["plan", "--output", "json"], &[&a, &b])
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env("HOME", &home)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", home.join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
            .bounded_output(),
    );
    out.code(1);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let r = results(&doc);
    assert_eq!(r[0].1, "changes", "team-a's keys were used: {doc}");
    assert_eq!(r[1].1, "failed");
    let error = doc["runbooks"][1]["error"].as_str().unwrap();
    assert!(error.contains("profile `team-b`"), "{error}");
}
