//! A team shares one state in S3 (`--state s3://BUCKET/KEY`, or the
//! runbook's `[state]`): one lock object, created only if there is none;
//! every state write a compare-and-swap on the version last read; the lock
//! of a killed process removed by its id only; the state moved to S3 and
//! back; its versions listed. On the emulator's S3 (moto answers both
//! conditional headers with AWS's 412 PreconditionFailed).

use super::*;

/// A run of `ws` held for `ms` at `step:point` (a failpoint sleep), started
/// in the background.
fn held_run(ws: &Workspace, args: &[&str], at: &str, ms: u64) -> std::process::Child {
    ws.cmd(args)
        .env("RDS_PROXY_RUNBOOK_FAILPOINT", format!("{at}:sleep{ms}"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn two_laptops_race_for_one_s3_state_and_exactly_one_runs() {
    let emu = Emulator::start();
    let ws = emu.workspace("team_race").in_s3();
    // A colleague's checkout: the same runbook in another folder, with its
    // own (unused) local state path, on the same S3 state.
    let other_dir = ws.dir.join("colleague");
    std::fs::create_dir_all(other_dir.join("policies")).unwrap();
    for f in [
        "rds-proxy-trust-policy.json",
        "rds-connect-policy-template.json",
    ] {
        std::fs::copy(
            ws.dir.join("policies").join(f),
            other_dir.join("policies").join(f),
        )
        .unwrap();
    }
    std::fs::copy(&ws.runbook, other_dir.join("runbook.toml")).unwrap();
    let other = Workspace {
        runbook: other_dir.join("runbook.toml"),
        state: other_dir.join("state.json"),
        dir: other_dir,
        ..ws.clone()
    };
    let before = snapshot(&emu, &ws);
    // Both start at once, each held a moment inside its first step.
    let a = held_run(&ws, &["run", "--yes"], "proxy-role:before-apply", 1500);
    let b = held_run(&other, &["run", "--yes"], "proxy-role:before-apply", 1500);
    let (a, b) = (Out::from(finish(a)), Out::from(finish(b)));
    let (won, lost) = match (a.code, b.code) {
        (0, 4) => (&a, &b),
        (4, 0) => (&b, &a),
        _ => panic!("exactly one must run: {a:?} {b:?}"),
    };
    won.stdout_has("Done: 10 step(s) applied");
    // A versioned bucket draws no warning about its versions (the emulator
    // answers GetBucketVersioning as AWS does, which the SDK parses).
    assert!(
        !won.stdout.contains("versions of the state") && !won.stdout.contains("cannot read"),
        "{won:?}"
    );
    lost.stderr_has("is locked by")
        .stderr_has("lock id ")
        .stderr_has("unlock RUNBOOK --force ");
    assert_eq!(ws.lock_id(), None, "released on success");
    // Every step's record written, the last ones (kept for the next write
    // to save a round trip) included.
    let state = ws.state_json();
    for (name, rec) in state["steps"].as_object().unwrap() {
        assert_eq!(rec["status"], "applied", "{name}: {rec}");
    }
    assert_one_of_each(&before, &snapshot(&emu, &ws), &ws, "one run of two");
    // The loser, run again, finds everything done: one state, shared.
    other.run(&["run", "--yes"]).ok().stdout_has("No changes");
    // A run that fails releases the lock too.
    ws.write_edited("name = \"${env.DB_NAME}\"", "name = \"${env.DB_NAME}-2\"");
    ws.run(&["run", "--yes"]).code(3);
    assert_eq!(ws.lock_id(), None, "released on failure");
    ws.write_runbook(|s| s);
    ws.run(&["rollback", "--yes"]).ok();
    assert_same(
        &before,
        &snapshot(&emu, &ws),
        "rollback from the shared state",
    );
}

#[cfg(feature = "failpoints")]
#[test]
fn a_lost_lock_is_removed_by_its_id_only_and_a_stale_write_is_refused() {
    let emu = Emulator::start();
    let ws = emu.workspace("team_lock").in_s3();
    let before = snapshot(&emu, &ws);
    // Killed while holding the lock: the lock stays, naming its holder.
    let killed = ws
        .cmd(&["run", "--yes"])
        .env("RDS_PROXY_RUNBOOK_FAILPOINT", "proxy:before-apply")
        .bounded_output();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&killed.status),
        Some(6)
    );
    let id = ws.lock_id().expect("the killed holder's lock");
    ws.run(&["resume", "--yes"])
        .code(4)
        .stderr_has(&format!("lock id {id}"));
    // Another id: nothing removed.
    ws.run(&["unlock", "--force", "0123456789abcdef"])
        .code(2)
        .stderr_has(&format!("has id {id}, not 0123456789abcdef"))
        .stderr_has("nothing was removed");
    assert_eq!(ws.lock_id().as_deref(), Some(id.as_str()));
    ws.run(&["unlock", "--force", &id])
        .ok()
        .stdout_has(&format!("Removed lock {id}"));
    ws.run(&["resume", "--yes"]).ok();
    assert_one_of_each(&before, &snapshot(&emu, &ws), &ws, "resumed after unlock");

    // A holder that lost its lock (removed by hand while it paused between
    // its update of the proxy and the record of it, then taken by a
    // colleague who ran and wrote): its next write is refused and the
    // colleague's record stays.
    ws.write_edited(
        "require_tls = true\n",
        "require_tls = true\nidle_client_timeout = 300\n",
    );
    let slow = held_run(&ws, &["run", "--yes"], "proxy:after-apply", 4000);
    let start = std::time::Instant::now();
    let slow_id = loop {
        if let Some(id) = ws.lock_id() {
            break id;
        }
        assert!(start.elapsed().as_secs() < 30, "the slow run never locked");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    ws.run(&["unlock", "--force", &slow_id]).ok();
    // The colleague finds the slow run's update made (still `modifying`,
    // or done): finished and recorded.
    let colleague = ws.run(&["run", "--yes"]);
    colleague.ok();
    assert!(
        colleague.stdout.contains("✓ proxy finished")
            || colleague
                .stdout
                .contains("= proxy found done in the account, recorded"),
        "{colleague:?}"
    );
    let colleague = ws.state_json();
    let slow = Out::from(finish(slow));
    slow.code(4)
        .stderr_has("changed since this process read it")
        .stderr_has("nothing of the other writer's record was overwritten");
    assert_eq!(ws.state_json(), colleague, "the colleague's state stands");
    assert_eq!(ws.lock_id(), None, "no lock left by either");
    ws.run(&["rollback", "--yes"]).ok();
    assert_same(&before, &snapshot(&emu, &ws), "rollback after the refusal");
}

#[test]
fn a_local_state_moves_to_s3_and_back_and_keeps_its_history() {
    let emu = Emulator::start();
    let ws = emu.workspace("team_move");
    let s3 = ws.in_s3();
    let url = s3.s3.clone().unwrap();
    let before = snapshot(&emu, &ws);
    ws.run(&["run", "--yes"]).ok();
    let local = ws.state_json();
    // Moved: the lock held on both sides, the local file kept aside.
    ws.run(&["state", "push", "--to", &url])
        .ok()
        .stdout_has(&format!("Moved the state of `{}` to {url}", ws.prefix));
    assert!(!ws.state.exists(), "the local state is moved aside");
    let mut backup = ws.state.clone().into_os_string();
    backup.push(".backup");
    let backup = std::path::PathBuf::from(backup);
    assert!(
        !backup.exists(),
        "its copy would offer to put back a moved state"
    );
    assert_eq!(s3.state_json(), local);
    ws.run(&["state", "push", "--to", &url])
        .code(2)
        .stderr_has("there is no state at");
    // One version so far, in a versioned bucket: its history starts here
    // (the bucket's versioning decides the note, not the count).
    let one = s3.run(&["status", "--history"]);
    one.ok()
        .stdout_has("state push")
        .stdout_has("one version so far: the bucket is versioned");
    assert!(!one.stdout.contains("keeps no history"), "{one:?}");
    s3.run(&["run", "--yes"]).ok().stdout_has("No changes");
    s3.run(&["status", "--history"])
        .ok()
        .stdout_has("(current)")
        .stdout_has("state push")
        .stdout_has("run");
    // And back.
    ws.run(&["state", "pull", "--from", &url])
        .ok()
        .stdout_has("the object is deleted");
    assert_eq!(s3.state_text(), None);
    assert!(backup.exists(), "written with the state");
    assert_eq!(s3_steps_after(&ws.state_json()), s3_steps_after(&local));
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
    ws.run(&["rollback", "--yes"]).ok();
    assert_same(
        &before,
        &snapshot(&emu, &ws),
        "rollback after the round trip",
    );
}

/// A state object broken by something else (`{garbage` written over it):
/// refused, naming its previous version and the copy that puts it back;
/// put back, the state is as before and rollback deletes everything.
#[test]
fn a_broken_s3_state_names_the_version_that_puts_it_back() {
    let emu = Emulator::start();
    let ws = emu.workspace("team_broken").in_s3();
    let url = ws.s3.clone().unwrap();
    let (bucket, key) = url
        .strip_prefix("s3://")
        .and_then(|r| r.split_once('/'))
        .unwrap();
    let before = snapshot(&emu, &ws);
    ws.run(&["run", "--yes"]).ok();
    let client = ws.s3_client();
    let good = runtime().block_on(async {
        client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body("{garbage".as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
        let listed = client
            .list_object_versions()
            .bucket(bucket)
            .prefix(key)
            .send()
            .await
            .unwrap();
        let ours: Vec<_> = listed
            .versions()
            .iter()
            .filter(|v| v.key() == Some(key))
            .collect();
        assert_eq!(ours[0].is_latest(), Some(true), "newest first");
        ours[1].version_id().unwrap().to_string()
    });
    let copy = format!(
        "`aws s3api copy-object --bucket {bucket} --key {key} --copy-source \
         {bucket}/{key}?versionId={good}`"
    );
    for cmd in [&["run", "--yes"][..], &["status"][..]] {
        ws.run(cmd)
            .code(3)
            .stderr_has("is not readable as a state")
            .stderr_has(&format!("1. put back its previous version, {good}"))
            .stderr_has(&copy)
            .stderr_has(&format!(
                "2. start a new state from the account: `aws s3 mv {url} {url}.broken`, then \
                 `rds-proxy-runbook run RUNBOOK --adopt`"
            ))
            .stderr_has(&format!("`aws s3 rm {url}`"));
    }
    // Put back as the error says.
    runtime().block_on(async {
        client
            .copy_object()
            .bucket(bucket)
            .key(key)
            .copy_source(format!("{bucket}/{key}?versionId={good}"))
            .send()
            .await
            .unwrap();
    });
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
    ws.run(&["rollback", "--yes"])
        .ok()
        .stdout_has(&format!("Rolled back {ALL_STEPS} step(s)."));
    assert_same(&before, &snapshot(&emu, &ws), "rollback from the version");
}

/// The steps of a state as a later no-op run leaves them (the invoke
/// check records its time again): compared without that step.
fn s3_steps_after(v: &serde_json::Value) -> serde_json::Value {
    let mut steps = v["steps"].clone();
    steps.as_object_mut().unwrap().remove("invoke-check");
    steps
}

#[test]
fn a_bucket_without_versioning_is_warned_about_and_the_runbook_can_name_it() {
    let emu = Emulator::start();
    let ws = emu.workspace("team_advice");
    let bucket = format!("rpr-{}-plain", ws.prefix);
    let client = ws.s3_client();
    runtime().block_on(async {
        client.create_bucket().bucket(&bucket).send().await.unwrap();
    });
    ws.write_runbook(|s| format!("{s}\n[state]\nbucket = \"{bucket}\"\n"));
    let run = |args: &[&str]| Out::from(ws.cmd_own_state(args).bounded_output());
    run(&["plan"])
        .ok()
        .stdout_has(&format!(
            "warning: bucket {bucket} does not keep versions of the state"
        ))
        .stdout_has("has no default encryption");
    // The runbook's [state] is used (--state would win over it).
    run(&["run", "--yes"]).ok().stdout_has(&format!(
        "state: s3://{bucket}/rds-proxy-runbook/{}.state.json",
        ws.prefix
    ));
    assert!(!ws.state.exists() && !ws.dir.join(".rds-proxy-runbook").exists());
    run(&["status", "--history"])
        .ok()
        .stdout_has("the bucket keeps no history unless versioning is on");
    // Broken there, it has no earlier version to offer.
    let key = format!("rds-proxy-runbook/{}.state.json", ws.prefix);
    let put = |body: Vec<u8>| {
        runtime().block_on(async {
            client
                .put_object()
                .bucket(&bucket)
                .key(&key)
                .body(body.into())
                .send()
                .await
                .unwrap();
        })
    };
    let state = runtime().block_on(async {
        let out = client
            .get_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .unwrap();
        out.body.collect().await.unwrap().into_bytes().to_vec()
    });
    put(b"{garbage".to_vec());
    run(&["status"])
        .code(3)
        .stderr_has(&format!(
            "(bucket {bucket} keeps no versions, so there is no earlier state to put back):"
        ))
        .stderr_has("1. start a new state from the account");
    put(state);
    run(&["rollback", "--yes"]).ok();
}

/// A function removed with the state in S3: the removals' second pass (a
/// step run again at the end of the run) records its steps too, though a
/// step's `applied` waits for the next write.
#[test]
fn a_function_removed_with_the_state_in_s3_leaves_every_record_written() {
    let emu = Emulator::start();
    let ws = emu
        .workspace_for(
            "team_remove",
            "cookbook-4.3-mysql.toml",
            &["--extra-function", "reports"],
        )
        .in_s3();
    let before = snapshot(&emu, &ws);
    let second =
        "\n[[lambda]]\nfunction_name = \"${env.REPORTS_FUNCTION_NAME}\"\nenv_var = \"DB_HOST\"\n";
    ws.write_runbook(|s| edit(&s, "\n[invoke_check]", &format!("{second}\n[invoke_check]")));
    ws.run(&["run", "--yes"]).ok();
    let first = "function_name = \"${env.DB_APP_FUNCTION_NAME}\"\n\
                 security_group_id = \"${env.DB_APP_FUNCTION_SG_ID}\"\n";
    let second_only = "function_name = \"${env.REPORTS_FUNCTION_NAME}\"\n";
    ws.write_runbook(|s| edit(&s, first, second_only));
    ws.run(&["run", "--yes"]).ok();
    let state = ws.state_json();
    for (name, rec) in state["steps"].as_object().unwrap() {
        assert_eq!(rec["status"], "applied", "{name}: {rec}");
    }
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
    ws.run(&["rollback", "--yes"]).ok();
    assert_same(&before, &snapshot(&emu, &ws), "rollback after the removal");
}
