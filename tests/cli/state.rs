//! The state: its lock, a runbook edited after apply, another region or a broken file, commands without the exports, resume.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use super::*;

#[test]
fn a_second_concurrent_run_fails_on_the_lock_naming_the_holder() {
    let (_emu, ws) = setup("lock");
    // The first run talks to an endpoint that accepts and never answers, so
    // it holds the lock for as long as the test wants.
    let blackhole = TcpListener::bind("127.0.0.1:0").unwrap();
    let hole = format!("http://{}", blackhole.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in blackhole.incoming().flatten() {
            held.push(conn);
        }
    });
    let mut first = ws
        .cmd(&["run", "--yes"])
        .env("AWS_ENDPOINT_URL", &hole)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock = {
        let mut s = ws.state.as_os_str().to_owned();
        s.push(".lock");
        std::path::PathBuf::from(s)
    };
    let pid = first.id().to_string();
    let start = Instant::now();
    while !std::fs::read_to_string(&lock)
        .unwrap_or_default()
        .contains(&pid)
    {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "first run never took the lock"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = std::fs::read_to_string(&lock).unwrap();
    ws.run(&["run", "--yes"])
        .code(4)
        .stderr_has(&format!(
            "locked by another rds-proxy-runbook (pid {pid} on "
        ))
        .stderr_has("since ");
    ws.run(&["rollback", "--yes"]).code(4);
    assert_eq!(before, std::fs::read_to_string(&lock).unwrap());
    first.kill().unwrap();
    finish(first);
    // Once the holder is gone, the lock is free again.
    ws.run(&["run", "--yes"]).ok();
}

#[test]
fn a_name_edited_after_apply_is_caught_before_any_change() {
    let (emu, ws) = setup("edited");
    ws.run(&["run", "--yes"]).ok();
    let before = snapshot(&emu, &ws);
    let role = format!("{}-proxy-role", ws.prefix);
    let renamed = format!("{}-renamed-role", ws.prefix);
    ws.write_edited(&role, &renamed);
    ws.run(&["run", "--yes"])
        .code(3)
        .stderr_has("these changes need a new resource")
        .stderr_has(&format!("proxy-role: role_name: {role} -> {renamed}"))
        .stderr_has("--allow-replace");
    ws.run(&["resume", "--yes"]).code(3);
    assert_same(
        &before,
        &snapshot(&emu, &ws),
        "an edited runbook changed the emulator",
    );
    // Rolling back works from the state alone, whatever the runbook says now.
    ws.run(&["rollback", "--yes"])
        .ok()
        .stdout_has(&format!("Rolled back {ALL_STEPS} step(s)."));
    assert!(
        !snapshot(&emu, &ws).keys().any(|k| k.contains(&role)),
        "the recorded role was deleted"
    );
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has("Done: 10 step(s) applied");
}

#[test]
fn another_region_or_a_broken_state_is_refused_before_any_change() {
    let (emu, ws) = setup("refused");
    ws.run(&["run", "--yes", "--until", "proxy-security-group"])
        .ok();
    let state = std::fs::read_to_string(&ws.state).unwrap();
    let after = snapshot(&emu, &ws);

    // A rollback in another region would find nothing and call it undone.
    // (The state says us-west-2 here: the runbook's secret, in us-east-1,
    // refuses a command in another region before the state is read.)
    let elsewhere = state.replace("\"region\": \"us-east-1\"", "\"region\": \"us-west-2\"");
    assert_ne!(elsewhere, state, "the state records its region");
    std::fs::write(&ws.state, &elsewhere).unwrap();
    for cmd in [
        &["rollback", "--yes"][..],
        &["run", "--yes"][..],
        &["plan"][..],
    ] {
        Out::from(ws.cmd(cmd).bounded_output())
            .code(3)
            .stderr_has("records steps in account 123456789012, region us-west-2")
            .stderr_has("would act in account 123456789012, region us-east-1")
            .stderr_has("pass --region us-west-2");
    }
    assert_eq!(elsewhere, std::fs::read_to_string(&ws.state).unwrap());
    assert_eq!(snapshot(&emu, &ws), after, "nothing was changed");
    std::fs::write(&ws.state, &state).unwrap();

    // Corrupt, truncated, newer, another runbook's: refused, never a panic.
    let cases = [
        ("{ not json".to_string(), "is not readable as a state"),
        (
            state[..state.len() / 2].to_string(),
            "is not readable as a state",
        ),
        (
            state.replace("\"schema_version\": 3", "\"schema_version\": 9"),
            "has schema version 9, newer than this tool's 3",
        ),
        (
            state.replace(
                &format!("\"runbook\": \"{}\"", ws.prefix),
                "\"runbook\": \"someone-else\"",
            ),
            "belongs to runbook `someone-else`",
        ),
    ];
    for (text, message) in &cases {
        std::fs::write(&ws.state, text).unwrap();
        for cmd in [
            &["run", "--yes"][..],
            &["rollback", "--yes"][..],
            &["status"][..],
            &["plan"][..],
        ] {
            ws.run(cmd).code(3).stderr_has(message);
        }
    }
    std::fs::write(&ws.state, &state).unwrap();
    assert_same(
        &after,
        &snapshot(&emu, &ws),
        "a refused command changed the emulator",
    );

    // Output piped into a reader that goes away: no panic.
    let mut child = ws
        .cmd(&["status"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let status = finish(child).status;
    assert_ne!(status.code(), Some(101), "panicked on a broken pipe");
}

/// A state broken by something else (here `{garbage`): every command
/// refuses it, naming the ways on, and each works as it says: the copy the
/// tool keeps put back (rollback then deletes everything), or a new state
/// that adopts what carries the tag (plain rollback leaves it all,
/// `--include-adopted` deletes it once the functions have a value to go
/// back to).
#[test]
fn a_broken_state_is_refused_with_ways_on_that_work() {
    let (emu, ws) = setup("broken");
    let function = ws.env["DB_APP_FUNCTION_NAME"].clone();
    let db_host = function_variable(&emu, &function, "DB_HOST").unwrap();
    let before = snapshot(&emu, &ws);
    ws.run(&["run", "--yes"]).ok();
    let applied = snapshot(&emu, &ws);
    let state = std::fs::read_to_string(&ws.state).unwrap();
    let backup = {
        let mut s = ws.state.as_os_str().to_owned();
        s.push(".backup");
        std::path::PathBuf::from(s)
    };
    assert_eq!(
        std::fs::read_to_string(&backup).unwrap(),
        state,
        "the last write"
    );
    let shown = ws.state.display().to_string();
    let restore = format!("`cp -p {} {shown}`", backup.display());
    let adopt =
        format!("`mv {shown} {shown}.broken`, then `rds-proxy-runbook run RUNBOOK --adopt`");

    // 1. The copy put back: as if nothing had happened.
    std::fs::write(&ws.state, "{garbage").unwrap();
    for cmd in [
        &["run", "--yes"][..],
        &["rollback", "--yes"][..],
        &["status"][..],
    ] {
        ws.run(cmd)
            .code(3)
            .stderr_has("is not readable as a state")
            .stderr_has("1. put back the last state this tool wrote, kept beside it, written ")
            .stderr_has(&restore)
            .stderr_has("`rollback` deletes what it records as made here")
            .stderr_has(&format!("2. start a new state from the account: {adopt}"))
            .stderr_has(
                "`rollback` leaves all of it in place and only `rollback --include-adopted` \
                 deletes it",
            )
            .stderr_has(&format!(
                "3. delete by hand what carries the tag rds-proxy-runbook:runbook={}",
                ws.prefix
            ));
    }
    assert_same(&applied, &snapshot(&emu, &ws), "refused");
    std::fs::copy(&backup, &ws.state).unwrap();
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
    ws.run(&["rollback", "--yes"])
        .ok()
        .stdout_has(&format!("Rolled back {ALL_STEPS} step(s)."));
    assert_same(&before, &snapshot(&emu, &ws), "rollback from the copy");

    // 2. No copy (a state from before the tool kept one, or lost with it):
    // a new state adopts what carries the tag.
    ws.run(&["run", "--yes"]).ok();
    let applied = snapshot(&emu, &ws);
    std::fs::write(&ws.state, "{garbage").unwrap();
    std::fs::remove_file(&backup).unwrap();
    ws.run(&["plan"])
        .code(3)
        .stderr_has("(there is no copy of it to put back")
        .stderr_has(&format!("1. start a new state from the account: {adopt}"));
    std::fs::rename(&ws.state, format!("{shown}.broken")).unwrap();
    ws.run(&["run", "--yes"])
        .code(3)
        .stderr_has("never made it")
        .stderr_has(" --adopt`");
    ws.run(&["run", "--yes", "--adopt"]).ok();
    let adopted = snapshot(&emu, &ws);
    assert_same(&applied, &adopted, "adopting changes nothing");
    ws.run(&["plan"]).ok().stdout_has("Nothing to change");
    // Plain rollback leaves it all in place.
    ws.run(&["rollback", "--yes"])
        .ok()
        .stdout_has("left alone: adopted");
    assert_same(
        &adopted,
        &snapshot(&emu, &ws),
        "plain rollback of the adopted",
    );
    // --include-adopted deletes it, once the function has a value to go
    // back to (the old one went with the state).
    ws.run(&["run", "--yes", "--adopt"]).ok();
    ws.run(&["rollback", "--yes", "--include-adopted"])
        .code(5)
        .stderr_has("still point(s) at proxy");
    ws.write_edited(
        "env_var = \"DB_HOST\"\n",
        &format!("env_var = \"DB_HOST\"\nrestore_value = \"{db_host}\"\n"),
    );
    ws.run(&["run", "--yes"]).ok();
    ws.run(&["rollback", "--yes", "--include-adopted"]).ok();
    assert_same(&before, &snapshot(&emu, &ws), "rollback --include-adopted");
}

#[test]
fn status_and_rollback_work_without_the_exports() {
    let (emu, mut ws) = setup("no_exports");
    let before = snapshot(&emu, &ws);
    ws.run(&["run", "--yes"]).ok();
    // A new shell, without the seed's exports.
    let exports = std::mem::take(&mut ws.env);
    ws.run(&["status"])
        .ok()
        .stdout_has("proxy-role             applied");
    ws.run(&["plan"])
        .code(3)
        .stderr_has("environment variable `VPC_ID` is not set");
    ws.run(&["rollback", "--yes"])
        .ok()
        .stdout_has(&format!("Rolled back {ALL_STEPS} step(s)."));
    ws.env = exports;
    assert_same(
        &before,
        &snapshot(&emu, &ws),
        "rollback did not restore the emulator",
    );
}

#[test]
fn resume_needs_a_state_and_rechecks_the_account() {
    let (emu, ws) = setup("resume");
    ws.run(&["resume", "--yes"])
        .code(2)
        .stderr_has("nothing to resume; start with `rds-proxy-runbook run");
    ws.run(&["run", "--yes"]).ok();
    let finished = snapshot(&emu, &ws);
    // Someone revokes the DB ingress and detaches the connect policy by
    // hand: resume re-checks the account, not the file, and repairs both.
    let config = emu.sdk_config();
    let rule = ws.output("db-ingress", "rule_ids");
    let policy = ws.output("connect-policy", "arn");
    let db_sg = ws.env["RDS_SG"].clone();
    let lambda_role = ws.env["DB_APP_FUNCTION_ROLE_NAME"].clone();
    runtime().block_on(async {
        aws_sdk_ec2::Client::new(&config)
            .revoke_security_group_ingress()
            .group_id(&db_sg)
            .security_group_rule_ids(&rule)
            .send()
            .await
            .unwrap();
        aws_sdk_iam::Client::new(&config)
            .detach_role_policy()
            .role_name(&lambda_role)
            .policy_arn(&policy)
            .send()
            .await
            .unwrap();
    });
    ws.run(&["resume", "--yes"])
        .ok()
        .stdout_has("= proxy-role already done")
        .stdout_has(&format!(
            "connect-policy: changed outside the runbook, putting it back: role {lambda_role}: not attached -> attached"
        ))
        .stdout_has("✓ connect-policy put back")
        .stdout_has("db-ingress: changed outside the runbook, putting it back: ")
        .stdout_has("✓ db-ingress put back")
        .stdout_has("= lambda-env already done")
        .stdout_has("Done: 2 step(s) applied");
    // The same resources as before, apart from the new rule's id.
    let repaired = snapshot(&emu, &ws);
    assert_eq!(
        finished.keys().collect::<Vec<_>>(),
        repaired.keys().collect::<Vec<_>>()
    );
    assert_same(
        &finished,
        &repaired,
        "resume did not restore what was removed by hand",
    );
}
