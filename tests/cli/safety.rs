//! The rules that keep a function from being stranded on a proxy that
//! cannot serve it: a second state does not take over the first one's
//! resources, rollback never removes what a proxy needs while a function
//! points at it, and `--step` never runs past the steps it waits on.

use super::support::*;

/// The runbook's function and its value of `DB_HOST` in a snapshot.
fn db_host(snap: &Snapshot, ws: &Workspace) -> String {
    let line = snap[&format!("lambda {}-db-app", ws.prefix)].field("env");
    let at = line.find("\"DB_HOST\": \"").expect("DB_HOST is set") + 12;
    line[at..].split('"').next().unwrap().to_string()
}

#[test]
fn a_second_state_refuses_what_the_first_made_unless_it_adopts_it() {
    let emu = Emulator::start();
    let ws = emu.workspace("second_state");
    ws.run(&["run", "--yes"]).ok();
    let after_run = snapshot(&emu, &ws);
    let endpoint = ws.output("proxy", "endpoint");

    // A colleague's checkout: the same runbook, a state of its own.
    let other = ws.with_state("colleague/runbook.state.json");
    other
        .run(&["run", "--yes"])
        .code(3)
        .stderr_has("this runbook's tag, but this state (")
        .stderr_has("never made it")
        .stderr_has(&format!("proxy-role: IAM role {}-proxy-role", ws.prefix))
        .stderr_has("Another state of this runbook probably exists")
        .stderr_has("point --state at it")
        .stderr_has("--adopt")
        .stderr_has("Nothing was changed.");
    // `plan` says the same, with the same exit code and the reason per step.
    let plan = other.run(&["plan", "--output", "json"]);
    plan.code(3);
    let doc: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(doc["result"], "blocked");
    assert_eq!(doc["exit_code"], 3);
    let role = &doc["steps"][0];
    assert_eq!(role["name"], "proxy-role");
    assert_eq!(role["blocked"]["exit_code"], 3);
    assert!(
        role["blocked"]["reason"]
            .as_str()
            .unwrap()
            .contains("never made it"),
        "{role}"
    );
    // Its rollback has nothing of its own to undo.
    other
        .run(&["rollback", "--yes"])
        .ok()
        .stdout_has("Nothing to roll back");
    assert_same(
        &after_run,
        &snapshot(&emu, &ws),
        "a second state changed the account",
    );

    // Told to, it adopts them: managed there, but left by its rollback.
    other
        .run(&["run", "--yes", "--adopt"])
        .ok()
        .stdout_has("= proxy adopted")
        .stdout_has("= lambda-env adopted")
        .stdout_has("No changes");
    assert_eq!(other.state_json()["steps"]["proxy"]["origin"], "adopted");
    // Managed there: an edit is applied in place, and what was adopted
    // stays adopted.
    other.write_runbook(|s| {
        s.replace(
            "require_tls = true\n",
            "require_tls = true\nidle_client_timeout = 600\n",
        )
    });
    other
        .run(&["run", "--yes"])
        .ok()
        .stdout_has("✓ proxy updated in place");
    assert_eq!(other.state_json()["steps"]["proxy"]["origin"], "adopted");
    let updated = snapshot(&emu, &ws);
    other
        .run(&["rollback", "--yes"])
        .ok()
        .stdout_has("! proxy left alone: adopted, not created by this state");
    let after = snapshot(&emu, &ws);
    assert_same(&updated, &after, "an adopting state's rollback deleted");
    assert_eq!(db_host(&after, &ws), endpoint);

    // The first state still owns them, and its rollback undoes them.
    ws.run(&["rollback", "--yes"]).ok();
    assert_ne!(db_host(&snapshot(&emu, &ws), &ws), endpoint);
}

#[test]
fn rollback_never_strands_a_function_on_the_proxy() {
    let emu = Emulator::start();
    let ws = emu.workspace("stranded");
    let before = snapshot(&emu, &ws);
    let db_address = db_host(&before, &ws);
    ws.run(&["run", "--yes"]).ok();
    let function = format!("{}-db-app", ws.prefix);
    let endpoint = db_host(&snapshot(&emu, &ws), &ws);

    // Someone pointed another variable at the proxy by hand: the rollback
    // would put DB_HOST back but leave DATABASE_URL on a deleted proxy.
    let url = format!("mysql://admin@{endpoint}:3306/app");
    set_function_variable(&emu, &function, "DATABASE_URL", Some(&url));
    let pointed = snapshot(&emu, &ws);
    ws.run(&["rollback", "--yes"])
        .code(5)
        .stderr_has("rollback stopped before changing anything")
        .stderr_has(&format!(
            "DATABASE_URL of Lambda function {function} still point(s) at proxy"
        ))
        .stderr_has("Set each variable back to the database's endpoint");
    assert_same(&pointed, &snapshot(&emu, &ws), "a stopped rollback acted");
    assert!(
        !ws.run(&["rollback", "--yes"]).stderr.contains(&url),
        "the variable's value was shown"
    );
    set_function_variable(&emu, &function, "DATABASE_URL", None);

    // Whatever the state says: one that lost DB_HOST's old value (or never
    // had it) does not delete the proxy under the function either.
    let mut state = ws.state_json();
    state["steps"]["lambda-env"]
        .as_object_mut()
        .unwrap()
        .remove("before");
    std::fs::write(&ws.state, state.to_string()).unwrap();
    let unchanged = snapshot(&emu, &ws);
    ws.run(&["rollback", "--yes"])
        .code(5)
        .stderr_has(&format!("DB_HOST of Lambda function {function}"));
    assert_same(&unchanged, &snapshot(&emu, &ws), "a stopped rollback acted");

    // Once the function is back on the DB, the rollback goes through.
    set_function_variable(&emu, &function, "DB_HOST", Some(&db_address));
    ws.run(&["rollback", "--yes"])
        .ok()
        .stdout_has("lambda-env left alone")
        .stdout_has("✓ proxy deleted");
    assert_same(&before, &snapshot(&emu, &ws), "rollback left something");
}

#[cfg(feature = "failpoints")]
#[test]
fn a_function_pointed_at_the_proxy_during_a_rollback_stops_it_there() {
    let emu = Emulator::start();
    let ws = emu.workspace("stranded_late");
    let before = snapshot(&emu, &ws);
    ws.run(&["run", "--yes"]).ok();
    let function = format!("{}-db-app", ws.prefix);
    let endpoint = db_host(&snapshot(&emu, &ws), &ws);
    // The rollback checks before it starts, then pauses after DB_HOST is
    // put back: meanwhile someone points a variable at the proxy.
    let child = ws
        .cmd(&["rollback", "--yes"])
        .env(
            "RDS_PROXY_RUNBOOK_FAILPOINT",
            "lambda-env:after-rollback:sleep4000",
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2000));
    set_function_variable(&emu, &function, "READ_HOST", Some(&endpoint));
    let out = Out::from(finish(child));
    out.code(1)
        .stderr_has("not undone: READ_HOST of Lambda function")
        .stderr_has("still point(s) at proxy");
    let now = snapshot(&emu, &ws);
    assert!(
        now.keys().any(|k| k.starts_with("db proxy ")),
        "the proxy was deleted under a function: {now:?}"
    );
    set_function_variable(&emu, &function, "READ_HOST", None);
    ws.run(&["rollback", "--yes"]).ok();
    assert_same(&before, &snapshot(&emu, &ws), "rollback left something");
}

#[test]
fn a_step_never_runs_past_the_steps_it_waits_on() {
    let emu = Emulator::start();
    let ws = emu.workspace("step_guards");
    ws.run(&["run", "--yes", "--until", "proxy"]).ok();
    let before = snapshot(&emu, &ws);
    for args in [
        &["run", "--yes", "--step", "lambda-env"][..],
        &["run", "--yes", "--from", "lambda-env"][..],
    ] {
        ws.run(args)
            .code(2)
            .stderr_has("step `lambda-env` must wait for steps that are not applied and verified")
            .stderr_has("`targets` (pending in this state)")
            .stderr_has("`lambda-ingress` (pending in this state)")
            .stderr_has("`connect-policy` (pending in this state)")
            .stderr_has("--until lambda-env`");
    }
    ws.run(&["run", "--yes", "--step", "invoke-check"])
        .code(2)
        .stderr_has("step `invoke-check` must wait for");
    assert_same(&before, &snapshot(&emu, &ws), "a refused step acted");

    // Applied in the state is not enough: the account must have it.
    ws.run(&["run", "--yes", "--until", "lambda-env"]).ok();
    ws.run(&["rollback", "--yes", "--to", "lambda-ingress"])
        .ok();
    let rule = ws.output("lambda-ingress", "rule_ids");
    let group = ws.output("proxy-security-group", "group_id");
    let config = emu.sdk_config();
    runtime().block_on(async {
        aws_sdk_ec2::Client::new(&config)
            .revoke_security_group_ingress()
            .group_id(&group)
            .security_group_rule_ids(&rule)
            .send()
            .await
            .unwrap();
    });
    let revoked = snapshot(&emu, &ws);
    ws.run(&["run", "--yes", "--step", "lambda-env"])
        .code(2)
        .stderr_has("`lambda-ingress` (applied, but the account differs: ")
        .stderr_has("not admitted -> admitted");
    assert_same(&revoked, &snapshot(&emu, &ws), "a refused step acted");
    // The whole run puts the rule back first, then points the function.
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has("✓ lambda-ingress put back")
        .stdout_has("✓ lambda-env created");
}

#[test]
fn plan_exits_as_run_would_and_shows_every_change_whole() {
    let emu = Emulator::start();
    let ws = emu.workspace("plan_codes");
    ws.run(&["plan", "--detailed-exitcode"]).code(6);
    ws.run(&["plan"]).ok();
    ws.run(&["run", "--yes"]).ok();
    ws.run(&["plan", "--detailed-exitcode"])
        .ok()
        .stdout_has("Nothing to change");

    // An edit after apply, in place: a change to make (exit 6 with
    // --detailed-exitcode), the edit shown field by field, whole.
    ws.write_runbook(|s| s + "\n[pool]\nmax_connections_percent = 50\n");
    let plan = ws.run(&["plan", "--output", "json", "--detailed-exitcode"]);
    plan.code(6);
    let doc: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let step = |doc: &serde_json::Value, name: &str| {
        doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
            .clone()
    };
    let targets = step(&doc, "targets");
    assert_eq!(targets["action"], "update", "{targets}");
    assert_eq!(
        targets["details"],
        serde_json::json!([
            "pool MaxConnectionsPercent: 100 -> 50",
            "(runbook edited since applied: pool.max_connections_percent: 100 -> 50)"
        ]),
        "{targets}"
    );
    // An edit only a new resource could apply: blocked, exit 3 from plan as
    // from run, the field whole.
    let description = "RDS Proxy security group (AWS Cookbook 4.3)";
    ws.write_runbook(|s| s.replace(description, "another description"));
    let plan = ws.run(&["plan", "--output", "json"]);
    plan.code(3);
    let doc: serde_json::Value = serde_json::from_str(&plan.stdout).unwrap();
    let group = step(&doc, "proxy-security-group");
    assert_eq!(group["action"], "replace", "{group}");
    assert_eq!(group["blocked"]["exit_code"], 3, "{group}");
    let line = format!("description: {description} -> another description");
    assert_eq!(group["details"][0], line.as_str(), "{group}");
    ws.run(&["run", "--yes"]).code(3).stderr_has(&line);
    ws.run(&["rollback", "--yes"]).ok();

    // A preflight problem: exit 5 from plan, run and preflight alike.
    ws.write_runbook(|s| s);
    let mut wrong = ws.clone();
    let missing = format!("{}-no-such-function", ws.prefix);
    wrong
        .env
        .insert("DB_APP_FUNCTION_NAME".into(), missing.clone());
    for cmd in [&["plan"][..], &["run", "--yes"][..], &["preflight"][..]] {
        wrong.run(cmd).code(5).stdout_has(&missing);
    }
}
