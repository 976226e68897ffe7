//! The one integration test binary: the real `rds-proxy-runbook` against a
//! local AWS emulator (moto, started per test), comparing what the emulator
//! holds before and after.

mod support;

#[cfg(feature = "failpoints")]
#[path = "cli/crash.rs"]
mod crash;
#[path = "cli/safety.rs"]
mod safety;

use std::net::TcpListener;

use std::time::{Duration, Instant};
use support::faults;

use support::*;

fn setup(test: &str) -> (Emulator, Workspace) {
    let emu = Emulator::start();
    let ws = emu.workspace(test);
    (emu, ws)
}

/// `s` with `from` replaced by `to`; panics if `from` is not there, so a
/// test cannot silently run an unedited runbook.
#[track_caller]
fn edit(s: &str, from: &str, to: &str) -> String {
    assert!(s.contains(from), "the runbook has no {from:?}");
    s.replace(from, to)
}

const ALL_STEPS: usize = 10;

#[test]
fn plan_on_an_empty_account_changes_nothing() {
    let (emu, ws) = setup("plan_empty");
    let before = snapshot(&emu, &ws);
    ws.run(&["plan"])
        .ok()
        .stdout_has("+ proxy-role")
        .stdout_has("to create: IAM role")
        .stdout_has("trusted by rds.amazonaws.com")
        .stdout_has("+ proxy-security-group")
        .stdout_has("+ proxy                  to create, after proxy-role")
        .stdout_has("? invoke-check           will verify")
        .stdout_has("Plan: 9 to create, 0 to finish, 0 done, 0 drifted or blocked (1 verification step(s) will run).");
    // Old -> new, what is left alone (names, never values), the documents.
    ws.run(&["plan"])
        .ok()
        .stdout_has(".DB_HOST: ")
        .stdout_has(".rds.amazonaws.com -> ${steps.proxy.endpoint}")
        .stdout_has("left alone: DB_USER, LOG_LEVEL")
        .stdout_has("trust policy: {")
        .stdout_has("secretsmanager:GetSecretValue")
        .stdout_has("policy document: {");

    // The same facts as one JSON document.
    let out = ws.run(&["plan", "--output", "json"]);
    out.ok();
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    assert_eq!(plan["runbook"], ws.prefix.as_str());
    assert_eq!(plan["region"], "us-east-1");
    assert_eq!(plan["preflight"]["problems"], serde_json::json!([]));
    let actions: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, [vec!["create"; 9], vec!["verify"]].concat());
    assert_eq!(
        plan["steps"][3]["after"],
        serde_json::json!(["proxy-role", "proxy-security-group"])
    );
    assert_eq!(plan["summary"]["create"], 9);
    assert!(
        !out.stdout.contains("\"info\""),
        "variable values never appear"
    );
    assert_same(&before, &snapshot(&emu, &ws), "plan changed the emulator");
    assert!(!ws.state.exists(), "plan must not write a state");
    ws.run(&["run", "--yes"]).ok();
    let out = ws.run(&["plan", "--output", "json"]);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["summary"]["done"], 9);
    assert!(
        plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["details"].is_null())
    );
}

#[test]
fn run_rerun_and_rollback() {
    let (emu, ws) = setup("run_rerun");
    let p = ws.prefix.clone();
    let before = snapshot(&emu, &ws);

    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has("✓ proxy-role created")
        .stdout_has("✓ secret-access created")
        .stdout_has("✓ proxy-security-group created")
        .stdout_has("✓ proxy created")
        .stdout_has("✓ connect-policy created")
        .stdout_has("✓ db-ingress created")
        .stdout_has("✓ targets created")
        .stdout_has("✓ lambda-ingress created")
        .stdout_has("✓ lambda-env created")
        .stdout_has("✓ invoke-check verified")
        .stdout_has("Done: 9 step(s) applied, 0 already done; 1 verification(s) passed.");
    let after_run = snapshot(&emu, &ws);
    let state = ws.state_json();
    let out = |step: &str, key: &str| {
        state["steps"][step]["outputs"][key]
            .as_str()
            .unwrap_or_else(|| panic!("no output {step}.{key}"))
            .to_string()
    };
    let (endpoint, proxy_id) = (out("proxy", "endpoint"), out("proxy", "id"));
    let (proxy_sg, db_sg) = (
        out("proxy-security-group", "group_id"),
        ws.env["RDS_SG"].clone(),
    );
    assert!(proxy_id.starts_with("prx-"), "{proxy_id}");

    // The function points at the proxy, its other variables intact.
    let function = &after_run[&format!("lambda {p}-db-app")];
    assert_eq!(
        function,
        &format!(r#"env={{"DB_HOST": "{endpoint}", "DB_USER": "admin", "LOG_LEVEL": "info"}}"#)
    );

    // The proxy role: trusted by RDS, only our least-privilege inline policy.
    let role = &after_run[&format!("iam role {p}-proxy-role")];
    let secret = &ws.env["RDS_SECRET_ARN"];
    assert!(
        role.starts_with("attached=[] inline=[\"rds-proxy-runbook-secret-access="),
        "{role}"
    );
    assert!(role.contains("secretsmanager:GetSecretValue"), "{role}");
    assert!(role.contains(secret.as_str()), "{role}");
    assert!(
        !role.contains("kms:Decrypt"),
        "the seed's secret uses the AWS-managed key: {role}"
    );
    assert!(
        role.contains(&format!("rds-proxy-runbook:runbook={p}")),
        "{role}"
    );

    // The Lambda role: its own policy plus our connect policy, one version
    // with the book's resource on the prx- id.
    let lambda_role = &after_run[&format!("iam role {p}-lambda-role")];
    assert!(
        lambda_role.starts_with(&format!(
            "attached=[\"arn:aws:iam::123456789012:policy/{p}-connect\", \
             \"arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole\"] inline=[]"
        )),
        "{lambda_role}"
    );
    let policy = &after_run[&format!("iam policy {p}-connect")];
    assert!(
        policy.starts_with("[\"v1 default=true "),
        "one version: {policy}"
    );
    assert!(
        policy.contains(&format!(
            "arn:aws:rds-db:us-east-1:123456789012:dbuser:{proxy_id}/*"
        )),
        "{policy}"
    );
    assert!(policy.contains("rds-db:connect"), "{policy}");

    // Both ingress rules, and the proxy with its target.
    let sg_line = |id: &str| {
        after_run
            .iter()
            .find(|(k, _)| k.ends_with(&format!(" {id}")))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no group {id}"))
    };
    let admits = |group: &str, source: &str| {
        let rules = sg_line(group);
        let ingress = rules.split(" egress=").next().unwrap().to_string();
        assert!(
            ingress.contains("tcp:Some(3306)-Some(3306)") && ingress.contains(source),
            "{group} should admit {source} on 3306: {rules}"
        );
    };
    admits(&db_sg, &proxy_sg);
    admits(&proxy_sg, &ws.env["DB_APP_FUNCTION_SG_ID"]);
    let proxy = &after_run[&format!("db proxy {p}-db")];
    assert!(proxy.contains("status=Some(Available)"), "{proxy}");
    assert!(proxy.contains("tls=Some(true)"), "{proxy}");
    assert!(proxy.contains(&format!("targets=[\"{p}-db\"]")), "{proxy}");

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&ws.state).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    // A re-run changes nothing, and says so; only the verification's own
    // record is refreshed in the state.
    let without_verification = |mut v: serde_json::Value| {
        v["steps"].as_object_mut().unwrap().remove("invoke-check");
        v
    };
    let state_before = without_verification(ws.state_json());
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has("= proxy-role already done, no change")
        .stdout_has("= lambda-env already done, no change")
        .stdout_has("No changes: 10 step(s) checked, all already done; 1 verification(s) passed.");
    assert_same(
        &after_run,
        &snapshot(&emu, &ws),
        "a re-run changed the emulator",
    );
    assert_eq!(
        state_before,
        without_verification(ws.state_json()),
        "a re-run rewrote the state"
    );

    // Plan of a finished runbook: nothing to change.
    ws.run(&["plan"])
        .ok()
        .stdout_has("Nothing to change: all 9 steps are done (1 verification step(s) will run).");

    // Status shows each step, its outputs and when.
    ws.run(&["status"])
        .ok()
        .stdout_has("proxy-role             applied")
        .stdout_has("arn = arn:aws:iam::123456789012:role/")
        .stdout_has(&format!("endpoint = {endpoint}"))
        .stdout_has(&format!("id = {proxy_id}"));

    // Rollback off a terminal needs --yes, and changes nothing without it.
    ws.run(&["rollback"]).code(2).stderr_has("pass --yes");
    assert_same(
        &after_run,
        &snapshot(&emu, &ws),
        "rollback without --yes acted",
    );

    let out = ws.run(&["rollback", "--yes"]);
    out.ok()
        .stdout_has("✓ lambda-env restored")
        .stdout_has("✓ lambda-ingress revoked")
        .stdout_has("✓ targets deregistered")
        .stdout_has("✓ db-ingress revoked")
        .stdout_has("✓ connect-policy detached and deleted IAM policy")
        .stdout_has("✓ proxy deleted DB proxy")
        .stdout_has("✓ proxy-security-group deleted security group")
        .stdout_has("✓ secret-access deleted inline policy")
        .stdout_has("✓ proxy-role deleted IAM role")
        .stdout_has(&format!("Rolled back {ALL_STEPS} step(s)."));
    // The run's graph backwards (DB_HOST first, the role last): each step
    // is undone only after every step that waits on it.
    let done_at = |step: &str| {
        out.stdout
            .find(&format!("✓ {step} "))
            .unwrap_or_else(|| panic!("no ✓ for {step}"))
    };
    for (first, then) in [
        ("lambda-env", "lambda-ingress"),
        ("lambda-env", "targets"),
        ("lambda-env", "connect-policy"),
        ("targets", "db-ingress"),
        ("targets", "secret-access"),
        ("targets", "proxy"),
        ("connect-policy", "proxy"),
        ("proxy", "proxy-security-group"),
        ("db-ingress", "proxy-security-group"),
        ("lambda-ingress", "proxy-security-group"),
        ("proxy", "proxy-role"),
        ("secret-access", "proxy-role"),
    ] {
        assert!(
            done_at(first) < done_at(then),
            "{then} was undone before {first}:\n{}",
            out.stdout
        );
    }
    assert_same(
        &before,
        &snapshot(&emu, &ws),
        "rollback did not restore the emulator",
    );
    ws.run(&["status"])
        .ok()
        .stdout_has("proxy-role             rolled back");
    ws.run(&["rollback", "--yes"])
        .ok()
        .stdout_has("Nothing to roll back");

    // And it runs again after a rollback.
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has("Done: 9 step(s) applied");
    let again = snapshot(&emu, &ws);
    assert_eq!(again.len(), after_run.len());
}

#[test]
fn step_by_step_and_rollback_to() {
    let (emu, ws) = setup("step_by_step");
    let before = snapshot(&emu, &ws);
    ws.run(&["run", "--yes", "--step", "proxy-role"])
        .ok()
        .stdout_has("✓ proxy-role created")
        .stdout_has("Done: 1 step(s) applied");
    ws.run(&["status"])
        .ok()
        .stdout_has("proxy-role             applied")
        .stdout_has("proxy-security-group   pending");
    // A step whose input is another step's output waits for that step.
    ws.run(&["run", "--yes", "--step", "proxy"])
        .code(2)
        .stderr_has(
            "step `proxy` needs outputs of proxy-security-group (such as `proxy-security-group.group_id`), which are not applied",
        );
    ws.run(&[
        "run",
        "--yes",
        "--from",
        "secret-access",
        "--until",
        "proxy",
    ])
    .ok()
    .stdout_has("✓ secret-access created")
    .stdout_has("✓ proxy created")
    .stdout_has("Done: 3 step(s) applied");
    ws.run(&["run", "--yes", "--until", "proxy-role"])
        .ok()
        .stdout_has("No changes: 1 step(s) checked");
    ws.run(&["run", "--yes", "--step", "nope"])
        .code(2)
        .stderr_has(
            "has no step `nope`; its steps are: proxy-role, secret-access, proxy-security-group",
        );

    // --to keeps that step and undoes the ones after it.
    ws.run(&["rollback", "--yes", "--to", "secret-access"])
        .ok()
        .stdout_has("✓ proxy deleted")
        .stdout_has("✓ proxy-security-group deleted")
        .stdout_has("Rolled back 2 step(s).");
    ws.run(&["status"])
        .ok()
        .stdout_has("secret-access          applied")
        .stdout_has("proxy-security-group   rolled back");
    ws.run(&["rollback", "--yes"])
        .ok()
        .stdout_has("✓ proxy-role deleted");
    assert_same(
        &before,
        &snapshot(&emu, &ws),
        "rollback did not restore the emulator",
    );
}

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
    first.wait().unwrap();
    // Once the holder is gone, the lock is free again.
    ws.run(&["run", "--yes"]).ok();
}

#[test]
fn bad_input_is_reported_with_positions_and_creates_nothing() {
    let (emu, ws) = setup("bad_input");
    let before = snapshot(&emu, &ws);
    // (edit, the key the error names, a piece of the message)
    type Edit = fn(String) -> String;
    let cases: Vec<(Edit, &str, &str)> = vec![
        (
            |s| {
                edit(
                    &s,
                    "require_tls = true",
                    "require_tls = true\nrequire_tsl = true",
                )
            },
            "`proxy.require_tsl`",
            "unknown key; did you mean `require_tls`?",
        ),
        (
            |s| edit(&s, "port = 3306", "port = \"3306\""),
            "`database.port`",
            "expected an integer, found string",
        ),
        (
            |s| edit(&s, "secret_arn = \"${env.RDS_SECRET_ARN}\"\n", ""),
            "`database.secret_arn`",
            "missing required key: add `secret_arn = ",
        ),
        (
            |s| edit(&s, "${env.VPC_ID}", "${env.NO_SUCH_VARIABLE}"),
            "`network.vpc_id`",
            "environment variable `NO_SUCH_VARIABLE` is not set",
        ),
        (
            |s| edit(&s, "\"proxy-security-group\",", "\"proxy-securitygroup\","),
            "`steps[2]`",
            "unknown step `proxy-securitygroup`; did you mean `proxy-security-group`?",
        ),
        (
            |s| edit(&s, "${steps.proxy-role.arn}", "${steps.proxy-role.ar}"),
            "`proxy.role_arn`",
            "step `proxy-role` has no output `ar`",
        ),
        (
            |s| edit(&s, "name = \"${env.DB_NAME}\"", "name = \"9-proxy--\""),
            "`proxy.name`",
            "proxy name `9-proxy--` must start with a letter",
        ),
        (
            |s| {
                edit(
                    &s,
                    "secret_arn = \"${env.RDS_SECRET_ARN}\"",
                    "secret_arn = \"my-db-secret\"",
                )
            },
            "`database.secret_arn`",
            "`my-db-secret` is not a secret ARN",
        ),
        (
            |s| {
                edit(
                    &s,
                    "engine_family = \"MYSQL\"",
                    "engine_family = \"oracle-ee\"",
                )
            },
            "`database.engine_family`",
            "RDS Proxy does not support Oracle",
        ),
        (
            |s| s + "\n[pool]\nmax_connections_percent = 150\n",
            "`pool.max_connections_percent`",
            "150 is out of range: use 1 to 100",
        ),
        (
            |s| {
                edit(
                    &s,
                    "iam_auth = \"REQUIRED\"",
                    "iam_auth = \"REQUIRED\"\nidle_client_timeout = 30000",
                )
            },
            "`proxy.idle_client_timeout`",
            "30000 is out of range: use 1 to 28800",
        ),
        (
            |s| {
                edit(
                    &s,
                    "[proxy_security_group]\nname = \"",
                    "[proxy_security_group]\nname = \"sg-",
                )
            },
            "`proxy_security_group.name`",
            "may not start with `sg-`",
        ),
    ];
    for (edit, key, message) in &cases {
        ws.write_runbook(edit);
        for cmd in [&["run", "--yes"][..], &["plan"][..]] {
            let out = ws.run(cmd);
            out.code(3)
                .stderr_has(key)
                .stderr_has(message)
                .stderr_has("nothing was changed");
            // file:line:col before the key
            let line = out.stderr.lines().find(|l| l.contains(key)).unwrap();
            let runbook = ws.runbook.display().to_string();
            let pos = line
                .trim()
                .strip_prefix(&format!("{runbook}:"))
                .unwrap_or_else(|| panic!("{line}"));
            let mut nums = pos.split(':').take(2).map(|n| n.parse::<usize>());
            assert!(
                nums.all(|n| n.is_ok_and(|n| n > 0)),
                "no line:col in {line}"
            );
        }
    }
    // Several problems at once: all reported. (The two edits of the secret
    // line cannot both apply; the ARN one stands for them.)
    let together: Vec<_> = cases
        .iter()
        .filter(|(_, _, message)| !message.starts_with("missing required key"))
        .collect();
    ws.write_runbook(|s| together.iter().fold(s, |s, (edit, _, _)| edit(s)));
    let out = ws.run(&["run", "--yes"]);
    out.code(3);
    for (_, key, _) in &together {
        out.stderr_has(key);
    }
    assert_same(&before, &snapshot(&emu, &ws), "bad input created something");
    assert!(!ws.state.exists(), "bad input wrote a state");
}

#[test]
fn something_not_ours_blocks_the_step_and_survives_rollback() {
    let (emu, ws) = setup("not_ours");
    // Someone made a role with our role's name by hand (no tag).
    let config = emu.sdk_config();
    let role = format!("{}-proxy-role", ws.prefix);
    runtime().block_on(async {
        aws_sdk_iam::Client::new(&config)
            .create_role()
            .role_name(&role)
            .assume_role_policy_document(include_str!(
                "../runbooks/policies/rds-proxy-trust-policy.json"
            ))
            .send()
            .await
            .unwrap();
    });
    let before = snapshot(&emu, &ws);
    // `plan` exits as `run` would: the step fails (1).
    ws.run(&["plan"])
        .code(1)
        .stdout_has("! proxy-role")
        .stdout_has("was not created by runbook");
    ws.run(&["run", "--yes"])
        .code(1)
        .stderr_has("step `proxy-role` failed")
        .stderr_has(&format!(
            "IAM role {role} exists but was not created by runbook"
        ))
        .stderr_has("To continue after fixing it: rds-proxy-runbook resume");
    ws.run(&["status"])
        .ok()
        .stdout_has("proxy-role             failed")
        .stdout_has("error: IAM role")
        .stdout_has("To continue after fixing it: rds-proxy-runbook resume");
    // The step never acted, so there is nothing of ours to undo.
    ws.run(&["rollback", "--yes"])
        .ok()
        .stdout_has("= proxy-role nothing to undo");
    assert_same(
        &before,
        &snapshot(&emu, &ws),
        "rollback touched a role that is not ours",
    );

    // Once the user renames the role in the runbook, resume finishes the run.
    ws.write_runbook(|s| {
        s.replace(
            &format!("{}-proxy-role", ws.prefix),
            &format!("{}-proxy-role2", ws.prefix),
        )
    });
    ws.run(&["resume", "--yes"])
        .ok()
        .stdout_has("✓ proxy-role created")
        .stdout_has("✓ proxy-security-group created");
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
    let state = ws.state_json();
    let rule = state["steps"]["db-ingress"]["outputs"]["rule_ids"]
        .as_str()
        .unwrap()
        .to_string();
    let policy = state["steps"]["connect-policy"]["outputs"]["arn"]
        .as_str()
        .unwrap()
        .to_string();
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
            "connect-policy: not attached to role {lambda_role} yet"
        ))
        .stdout_has("✓ connect-policy finished")
        .stdout_has("was applied but is missing from the account")
        .stdout_has("✓ db-ingress created")
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

#[test]
fn a_runbook_edited_after_apply_is_caught_before_any_change() {
    let (emu, ws) = setup("edited");
    ws.run(&["run", "--yes"]).ok();
    let before = snapshot(&emu, &ws);
    ws.write_runbook(|s| s.replace("Project = \"AWSCookbook403\"", "Project = \"Renamed\""));
    ws.run(&["run", "--yes"])
        .code(3)
        .stderr_has("the runbook changed after step `proxy-role` was applied")
        .stderr_has("tags.Project: AWSCookbook403 -> Renamed")
        .stderr_has("rollback");
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
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has("Done: 9 step(s) applied");
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
fn output_json_is_one_document_per_command() {
    let (emu, ws) = setup("json_out");
    let json = |out: &Out| -> serde_json::Value {
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", out.stdout))
    };
    let out = ws.run(&["run", "--yes", "--output", "json"]);
    out.ok().stderr_has("✓ proxy created");
    let doc = json(&out);
    assert_eq!(doc["command"], "run");
    assert_eq!(doc["result"], "ok");
    assert_eq!(doc["exit_code"], 0);
    assert_eq!(doc["summary"]["changed"], 9);
    assert_eq!(doc["summary"]["verified"], 1);
    assert_eq!(doc["steps"].as_array().unwrap().len(), ALL_STEPS);
    assert_eq!(doc["steps"][0]["name"], "proxy-role");
    assert!(doc["steps"][0]["seconds"].as_f64().is_some());

    let doc = json(ws.run(&["run", "--yes", "--output", "json"]).ok());
    assert_eq!(doc["summary"]["unchanged"], 9);

    let doc = json(ws.run(&["status", "--output", "json"]).ok());
    assert_eq!(doc["exists"], true);
    assert_eq!(doc["steps"][3]["name"], "proxy");
    assert_eq!(doc["steps"][3]["status"], "applied");
    assert!(doc["steps"][3]["outputs"]["endpoint"].as_str().is_some());

    let doc = json(ws.run(&["rollback", "--yes", "--output", "json"]).ok());
    assert_eq!(doc["command"], "rollback");
    assert_eq!(doc["summary"]["undone"], 9);
    assert_eq!(doc["steps"].as_array().unwrap().len(), ALL_STEPS);
    let doc = json(ws.run(&["rollback", "--yes", "--output", "json"]).ok());
    assert_eq!(doc["steps"].as_array().unwrap().len(), 0);

    // An error before any step still gives one document, with the code.
    ws.write_runbook(|s| edit(&s, "port = 3306", "port = \"x\""));
    let out = ws.run(&["run", "--yes", "--output", "json"]);
    out.code(3);
    let doc = json(&out);
    assert_eq!(doc["result"], "error");
    assert_eq!(doc["exit_code"], 3);
    assert!(doc["error"].as_str().unwrap().contains("port"), "{doc}");
    drop(emu);
}

#[test]
fn completions_and_the_man_page_come_from_the_command_tree() {
    let out = |args: &[&str]| {
        let o = std::process::Command::new(BIN).args(args).output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let bash = out(&["completions", "bash"]);
    for word in [
        "plan",
        "run",
        "resume",
        "rollback",
        "status",
        "doctor",
        "--endpoint-url",
    ] {
        assert!(bash.contains(word), "bash completions lack {word}");
    }
    // bash loads it and registers the completion.
    let script = temp_dir("completions").join("c.bash");
    std::fs::write(&script, &bash).unwrap();
    let loaded = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {} && complete -p rds-proxy-runbook",
            script.display()
        ))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&loaded.stdout).contains("rds-proxy-runbook"),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    assert!(out(&["completions", "zsh"]).starts_with("#compdef rds-proxy-runbook"));
    assert!(out(&["completions", "fish"]).contains("-a \"rollback\""));
    let man = out(&["man"]);
    assert!(man.contains(".TH rds-proxy-runbook 1"), "{man}");
    assert!(
        man.contains("rollback") && man.contains("Exit codes"),
        "{man}"
    );
    std::process::Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .map(|o| assert_eq!(o.status.code(), Some(2)))
        .unwrap();
}

#[test]
fn help_lists_exit_codes_and_commands() {
    let out = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for word in [
        "plan",
        "run",
        "resume",
        "status",
        "rollback",
        "--endpoint-url",
        "--state",
        "Exit codes",
        "130",
    ] {
        assert!(text.contains(word), "--help lacks {word}:\n{text}");
    }
}

#[test]
fn managed_secret_access_and_a_new_variable_are_undone_exactly() {
    let (emu, ws) = setup("managed");
    let before = snapshot(&emu, &ws);
    ws.write_runbook(|s| {
        let s = edit(&s, "mode = \"least-privilege\"", "mode = \"managed\"");
        edit(&s, "env_var = \"DB_HOST\"", "env_var = \"PROXY_HOST\"")
    });
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has("Done: 9 step(s) applied");
    let after = snapshot(&emu, &ws);
    let role = &after[&format!("iam role {}-proxy-role", ws.prefix)];
    assert!(
        role.starts_with(
            "attached=[\"arn:aws:iam::aws:policy/SecretsManagerReadWrite\"] inline=[]"
        ),
        "{role}"
    );
    let function = &after[&format!("lambda {}-db-app", ws.prefix)];
    let endpoint = ws.state_json()["steps"]["proxy"]["outputs"]["endpoint"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        function.contains(&format!("\"PROXY_HOST\": \"{endpoint}\"")),
        "{function}"
    );
    assert!(
        function.contains("\"DB_HOST\": \""),
        "DB_HOST kept: {function}"
    );
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
    ws.run(&["rollback", "--yes"])
        .ok()
        .stdout_has("removed ")
        .stdout_has(".PROXY_HOST (it did not exist)")
        .stdout_has("detached SecretsManagerReadWrite");
    assert_same(
        &before,
        &snapshot(&emu, &ws),
        "rollback did not restore the emulator",
    );
}

#[test]
fn invoke_check_judges_the_response() {
    let (emu, ws) = setup("invoke");
    ws.write_runbook(|s| {
        edit(
            &s,
            "payload = \"{}\"",
            "payload = \"{}\"\nexpect = \"Successfully connected to RDS via RDS Proxy!\"",
        )
    });
    // moto without Docker answers invocations from a queue of responses.
    let queue = |body: &str| {
        let results = serde_json::json!({"results": [body], "region": REGION});
        http(
            &format!("{}/moto-api/static/lambda-simple/response", emu.url),
            "POST",
            &results.to_string(),
        )
        .unwrap();
    };
    queue("Successfully connected to RDS via RDS Proxy!");
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has("✓ invoke-check verified")
        .stdout_has("Successfully connected to RDS via RDS Proxy!");
    queue("(2013, 'Lost connection to MySQL server during query')");
    ws.run(&["run", "--yes", "--step", "invoke-check"])
        .code(1)
        .stderr_has("step `invoke-check` failed")
        .stderr_has("response does not contain \"Successfully connected to RDS via RDS Proxy!\"")
        .stderr_has("Lost connection");
    ws.run(&["status"])
        .ok()
        .stdout_has("invoke-check           failed");
}

#[test]
fn another_region_or_a_broken_state_is_refused_before_any_change() {
    let (emu, ws) = setup("refused");
    ws.run(&["run", "--yes", "--until", "proxy-security-group"])
        .ok();
    let state = std::fs::read_to_string(&ws.state).unwrap();
    let after = snapshot(&emu, &ws);

    // A rollback in another region would find nothing and call it undone.
    for cmd in [
        &["rollback", "--yes"][..],
        &["run", "--yes"][..],
        &["plan"][..],
    ] {
        let mut c = ws.cmd(cmd);
        c.arg("--region").arg("us-west-2");
        Out::from(c.output().unwrap())
            .code(3)
            .stderr_has("records steps in account 123456789012, region us-east-1")
            .stderr_has("would act in account 123456789012, region us-west-2")
            .stderr_has("pass --region us-east-1");
    }
    assert_eq!(state, std::fs::read_to_string(&ws.state).unwrap());

    // Corrupt, truncated, newer, another runbook's: refused, never a panic.
    let cases = [
        ("{ not json".to_string(), "is not readable JSON"),
        (state[..state.len() / 2].to_string(), "is not readable JSON"),
        (
            state.replace("\"schema_version\": 2", "\"schema_version\": 9"),
            "has schema version 9, newer than this tool's 2",
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
    let status = child.wait().unwrap();
    assert_ne!(status.code(), Some(101), "panicked on a broken pipe");
}

#[test]
fn a_resource_that_lost_our_tag_is_left_alone_by_rollback() {
    let (emu, ws) = setup("untagged");
    ws.run(&["run", "--yes", "--until", "proxy-security-group"])
        .ok();
    let role = format!("{}-proxy-role", ws.prefix);
    let config = emu.sdk_config();
    runtime().block_on(async {
        aws_sdk_iam::Client::new(&config)
            .untag_role()
            .role_name(&role)
            .tag_keys("rds-proxy-runbook:runbook")
            .send()
            .await
            .unwrap();
    });
    ws.run(&["rollback", "--yes"])
        .ok()
        .stdout_has(&format!(
            "! proxy-role left alone: IAM role {role} lacks our tag"
        ))
        .stdout_has("✓ proxy-security-group deleted");
    assert!(snapshot(&emu, &ws).contains_key(&format!("iam role {role}")));
}

#[test]
fn secrets_never_reach_the_state_the_logs_or_the_output() {
    let (emu, ws) = setup("secrets");
    // The DB password (in the secret) and a secret variable of the function.
    let config = emu.sdk_config();
    let token = format!("tok-{}-{}", std::process::id(), ws.prefix.len() * 7919);
    set_function_variable(
        &emu,
        &ws.env["DB_APP_FUNCTION_NAME"],
        "API_TOKEN",
        Some(&token),
    );
    let password = runtime().block_on(async {
        let secret = aws_sdk_secretsmanager::Client::new(&config)
            .get_secret_value()
            .secret_id(&ws.env["RDS_SECRET_ARN"])
            .send()
            .await
            .unwrap();
        let doc: serde_json::Value = serde_json::from_str(secret.secret_string().unwrap()).unwrap();
        doc["password"].as_str().unwrap().to_string()
    });
    assert!(password.len() >= 16);
    let mut seen = String::new();
    for verbosity in ["-v", "-vv", "-vvv"] {
        for cmd in [&["plan"][..], &["run", "--yes"][..], &["status"][..]] {
            let mut args = cmd.to_vec();
            args.push(verbosity);
            let out = ws.run(&args);
            out.ok();
            seen.push_str(&out.stdout);
            seen.push_str(&out.stderr);
        }
    }
    let out = ws.run(&["rollback", "--yes", "-vvv"]);
    out.ok();
    seen.push_str(&out.stdout);
    seen.push_str(&out.stderr);
    let state_dir = ws.state.parent().unwrap();
    for entry in std::fs::read_dir(state_dir).unwrap() {
        seen.push_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default());
    }
    assert!(
        seen.len() > 10_000,
        "the logs at -vvv should be long: {}",
        seen.len()
    );
    assert!(!seen.contains(&password), "the DB password leaked");
    assert!(
        !seen.contains(&token),
        "a secret environment variable leaked"
    );
}

/// A workspace whose calls go through a fault layer in front of the emulator.
fn faulty(test: &str) -> (Emulator, Workspace, faults::FaultProxy) {
    let (emu, mut ws) = setup(test);
    let layer = faults::FaultProxy::start(&emu.url);
    ws.set_endpoint(&layer.url);
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
    assert_one_of_each(&before, &snapshot(&emu, &ws), &ws, "after a run at once");

    // The re-run of a finished runbook: no preflight, one check per step,
    // all issued together.
    let calls_before = layer.all_calls();
    layer.take_max_in_flight();
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
    let calls = layer.all_calls();
    let made = |action: &str| {
        calls.get(action).copied().unwrap_or(0) - calls_before.get(action).copied().unwrap_or(0)
    };
    for preflight_only in ["DescribeDBInstances", "GetSecretValue", "DescribeSubnets"] {
        assert_eq!(made(preflight_only), 0, "{preflight_only}: preflight ran");
    }
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
        .stdout_has("Done: 9 step(s) applied");
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
    assert_eq!(before_resume.len(), snapshot(&emu, &ws).len());
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
        let layer = faults::FaultProxy::start(&emu.url);
        layer.latency(Duration::from_millis(40));
        ws.set_endpoint(&layer.url);
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
        child.wait().unwrap();
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

#[test]
fn preflight_reports_every_problem_at_once_before_any_change() {
    let (emu, mut ws) = setup("preflight");
    ws.run(&["preflight"])
        .ok()
        .stdout_has("✓ DB instance")
        .stdout_has("mysql, available")
        .stdout_has("JSON with username and password")
        .stdout_has("2 subnets in 2 Availability Zones")
        .stdout_has("-db-app: in vpc-")
        .stdout_has("execution role")
        .stdout_has("is free (0 of 20 proxies used)")
        .stdout_has("Preflight: all");

    // Break five things the recipe needs.
    let config = emu.sdk_config();
    let p = ws.prefix.clone();
    let (secret, subnets) = (
        ws.env["RDS_SECRET_ARN"].clone(),
        ws.env["ISOLATED_SUBNETS"].clone(),
    );
    let outside = format!("{p}-outside");
    runtime().block_on(async {
        aws_sdk_secretsmanager::Client::new(&config)
            .put_secret_value()
            .secret_id(&secret)
            .secret_string(r#"{"username":"admin"}"#)
            .send()
            .await
            .unwrap();
        let role = aws_sdk_iam::Client::new(&config)
            .get_role()
            .role_name(format!("{p}-lambda-role"))
            .send()
            .await
            .unwrap();
        aws_sdk_lambda::Client::new(&config)
            .create_function()
            .function_name(&outside)
            .runtime(aws_sdk_lambda::types::Runtime::Python312)
            .handler("lambda_function.lambda_handler")
            .role(role.role().unwrap().arn())
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .zip_file(aws_sdk_lambda::primitives::Blob::new(
                        include_bytes!("../runbooks/policies/rds-proxy-trust-policy.json").to_vec(),
                    ))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        aws_sdk_rds::Client::new(&config)
            .create_db_proxy()
            .db_proxy_name(format!("{p}-db"))
            .engine_family(aws_sdk_rds::types::EngineFamily::Mysql)
            .auth(
                aws_sdk_rds::types::UserAuthConfig::builder()
                    .secret_arn(&secret)
                    .build(),
            )
            .role_arn("arn:aws:iam::123456789012:role/someone")
            .set_vpc_subnet_ids(Some(subnets.split(' ').map(String::from).collect()))
            .send()
            .await
            .unwrap();
    });
    let first_subnet = subnets.split(' ').next().unwrap().to_string();
    ws.env.insert(
        "ISOLATED_SUBNETS".into(),
        format!("{first_subnet} {first_subnet}"),
    );
    ws.write_runbook(|s| {
        let s = edit(
            &s,
            "engine_family = \"MYSQL\"",
            "engine_family = \"POSTGRESQL\"",
        );
        s + &format!("\n[[lambda]]\nfunction_name = \"{outside}\"\n")
    });
    let before = snapshot(&emu, &ws);
    for cmd in [&["preflight"][..], &["run", "--yes"][..], &["plan"][..]] {
        ws.run(cmd)
            .code(5)
            .stdout_has("Preflight: ")
            .stdout_has("6 problem(s)")
            .stdout_has("is listed twice")
            .stdout_has("runs mysql, but the runbook's engine family is POSTGRESQL")
            .stdout_has("fix: set database.engine_family = \"MYSQL\"")
            .stdout_has("its JSON has no password")
            .stdout_has("the subnets are in 1 Availability Zone(s)")
            .stdout_has(&format!(
                "Lambda function {outside} is not attached to a VPC"
            ))
            .stdout_has(&format!(
                "a DB proxy named {p}-db exists and was not created by runbook"
            ))
            .stderr_has(
                "preflight found 6 problem(s) in the account (listed above); nothing was changed",
            );
    }
    // Only what is wrong is marked so: the outside function's role is fine.
    ws.run(&["preflight"])
        .code(5)
        .stdout_has(&format!("✓ Lambda function {outside}: execution role"));
    assert_same(
        &before,
        &snapshot(&emu, &ws),
        "preflight let a change through",
    );
    assert!(!ws.state.exists(), "a failed preflight wrote a state");
}

#[test]
fn plan_works_out_the_connection_budget() {
    let (emu, ws) = setup("budget");
    // Uncapped: the account's concurrency against db.t3.micro's ~60.
    ws.run(&["plan"])
        .ok()
        .stdout_has("Connection budget: db.t3.micro allows about 60 connections; the pool may use 100% = 60.")
        .stdout_has("at worst 1000 environments (limited by nothing: the account's concurrency (1000))")
        .stdout_has("may exceed the pool");
    // Capped by reserved concurrency, with half the pool.
    let config = emu.sdk_config();
    runtime().block_on(async {
        aws_sdk_lambda::Client::new(&config)
            .put_function_concurrency()
            .function_name(&ws.env["DB_APP_FUNCTION_NAME"])
            .reserved_concurrent_executions(20)
            .send()
            .await
            .unwrap();
    });
    ws.write_runbook(|s| {
        s + "\n[pool]\nmax_connections_percent = 50\nmax_idle_connections_percent = 25\n"
    });
    let out = ws.run(&["plan", "--output", "json"]);
    out.ok();
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let b = &plan["budget"];
    assert_eq!(b["max_connections"], 60);
    assert_eq!(b["pool_ceiling"], 30);
    assert_eq!(b["clients_worst_case"], 20);
    assert_eq!(b["fits"], true);
    assert_eq!(b["headroom"], 10);
    assert_eq!(b["functions"][0]["limited_by"], "reserved concurrency 20");
}

#[test]
fn doctor_reports_a_running_proxy_and_explains_pinning() {
    let (emu, ws) = setup("doctor");
    ws.run(&["doctor"])
        .code(1)
        .stderr_has("there is no DB proxy")
        .stderr_has("run the runbook first");
    ws.run(&["run", "--yes"]).ok();
    let proxy = format!("{}-db", ws.prefix);
    ws.run(&["doctor"])
        .ok()
        .stdout_has(&format!("DB proxy {proxy} in us-east-1: available"))
        .stdout_has("engine MYSQL, TLS required, IAM auth REQUIRED")
        .stdout_has("IdleClientTimeout 1800s")
        .stdout_has(&format!("{}: AVAILABLE", proxy))
        .stdout_has("Pool: MaxConnectionsPercent 100")
        .stdout_has("DatabaseConnectionsCurrentlySessionPinned: no data")
        .stdout_has("no metrics in the last hour");
    // Metrics the test puts where CloudWatch would.
    let config = emu.sdk_config();
    runtime().block_on(async {
        use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
        let cw = aws_sdk_cloudwatch::Client::new(&config);
        for (name, value) in [
            ("DatabaseConnections", 6.0),
            ("ClientConnections", 40.0),
            ("DatabaseConnectionsCurrentlySessionPinned", 3.0),
            ("DatabaseConnectionsBorrowLatency", 1500.0),
        ] {
            cw.put_metric_data()
                .namespace("AWS/RDS")
                .metric_data(
                    MetricDatum::builder()
                        .metric_name(name)
                        .dimensions(Dimension::builder().name("ProxyName").value(&proxy).build())
                        .value(value)
                        .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from(
                            std::time::SystemTime::now(),
                        ))
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
    });
    ws.run(&["doctor"])
        .ok()
        .stdout_has("ClientConnections: average 40.0, maximum 40.0")
        .stdout_has("DatabaseConnectionsCurrentlySessionPinned: average 3.0, maximum 3.0")
        .stdout_has("up to 3 DB connections were pinned to one client")
        .stdout_has("long transactions and batch jobs")
        .stdout_has("session_pinning_filters = [\"EXCLUDE_VARIABLE_SETS\"]");
}

/// The shipped PostgreSQL, SQL Server and Aurora runbooks, each against a DB
/// of its engine: run, a re-run that changes nothing, rollback to exactly
/// what was there. The Aurora one serves two functions with their own roles
/// and security groups.
#[test]
fn each_engine_runbook_runs_reruns_and_rolls_back() {
    let emu = Emulator::start();
    for (runbook, seed, family, port, functions) in [
        (
            "postgresql.toml",
            &["--engine", "postgres"][..],
            "POSTGRESQL",
            5432,
            &["db-app"][..],
        ),
        (
            "sqlserver.toml",
            &["--engine", "sqlserver-ex"],
            "SQLSERVER",
            1433,
            &["db-app"],
        ),
        (
            "aurora-postgresql.toml",
            &[
                "--engine",
                "aurora-postgresql",
                "--extra-function",
                "reports",
            ],
            "POSTGRESQL",
            5432,
            &["db-app", "reports"],
        ),
    ] {
        let ws = emu.workspace_for(&format!("engine_{family}"), runbook, seed);
        let p = &ws.prefix;
        let before = snapshot(&emu, &ws);
        ws.run(&["run", "--yes"])
            .ok()
            .stdout_has(&format!("Done: {} step(s) applied", ALL_STEPS - 1));
        let after = snapshot(&emu, &ws);
        let proxy = &after[&format!("db proxy {p}-db")];
        assert!(
            proxy.contains(&format!("engine=Some({family:?})"))
                && proxy.contains(&format!("targets=[\"{p}-db\"]")),
            "{runbook}: {proxy}"
        );
        let tcp = format!("tcp:Some({port})-Some({port})");
        let proxy_sg = after
            .iter()
            .find(|(k, _)| k.starts_with(&format!("security group {p}-proxy-sg ")))
            .map(|(_, v)| v)
            .unwrap();
        let ingress = proxy_sg.split(" egress=").next().unwrap();
        assert_eq!(
            ingress.matches("sg-").count(),
            functions.len(),
            "{runbook}: one source per function: {proxy_sg}"
        );
        assert!(proxy_sg.contains(&tcp), "{runbook}: {proxy_sg}");
        for f in functions {
            let env = &after[&format!("lambda {p}-{f}")];
            assert!(
                env.contains(".db-proxy-") && env.contains("\"LOG_LEVEL\": \"info\""),
                "{runbook}: {f}: {env}"
            );
            let role = if *f == "db-app" {
                "lambda".to_string()
            } else {
                f.to_string()
            };
            let role = &after[&format!("iam role {p}-{role}-role")];
            assert!(
                role.contains(&format!("policy/{p}-connect")),
                "{runbook}: {f}: {role}"
            );
        }
        ws.run(&["run", "--yes"]).ok().stdout_has(&format!(
            "No changes: {ALL_STEPS} step(s) checked, all already done"
        ));
        assert_same(
            &after,
            &snapshot(&emu, &ws),
            &format!("{runbook}: the re-run changed something"),
        );
        ws.run(&["rollback", "--yes"])
            .ok()
            .stdout_has(&format!("Rolled back {ALL_STEPS} step(s)."));
        assert_same(
            &before,
            &snapshot(&emu, &ws),
            &format!("{runbook}: rollback left a difference"),
        );
    }
}

/// `init` reads the DB and the functions and writes a runbook that runs as
/// it is: here an Aurora cluster (its managed secret found) with two
/// functions, then an instance whose secret must be given.
#[test]
fn init_writes_a_runbook_from_the_account_that_runs() {
    let emu = Emulator::start();
    let p = unique_prefix("init");
    let env = emu.seed(
        &p,
        &["--engine", "aurora-mysql", "--extra-function", "reports"],
    );
    let mut ws = Workspace::new(&emu, &p, env.clone(), "cookbook-4.3-mysql.toml");
    ws.runbook = ws.dir.join("from-init.toml");
    let init = |args: &[&str]| {
        Out::from(
            std::process::Command::new(BIN)
                .arg("init")
                .args(args)
                .env_remove("AWS_PROFILE")
                .envs(emu.aws_env())
                .output()
                .unwrap(),
        )
    };
    let file = ws.runbook.to_str().unwrap().to_string();
    let args = [
        "--function",
        &env["DB_APP_FUNCTION_NAME"],
        "--function",
        &env["REPORTS_FUNCTION_NAME"],
        "--db-cluster",
        &env["RDS_CLUSTER_ID"],
        "--name",
        &format!("{p}-proxy"),
        "-o",
        &file,
    ];
    let before = snapshot(&emu, &ws);
    init(&args)
        .ok()
        .stderr_has("review it, then `rds-proxy-runbook plan");
    let text = std::fs::read_to_string(&ws.runbook).unwrap();
    for want in [
        format!("cluster_id = \"{}\"", env["RDS_CLUSTER_ID"]),
        format!("secret_arn = \"{}\"", env["RDS_SECRET_ARN"]),
        format!("security_group_id = \"{}\"", env["RDS_SG"]),
        format!("security_group_id = \"{}\"", env["DB_APP_FUNCTION_SG_ID"]),
        format!("security_group_id = \"{}\"", env["REPORTS_FUNCTION_SG_ID"]),
        format!("vpc_id = \"{}\"", env["VPC_ID"]),
        "engine_family = \"MYSQL\"".to_string(),
        "port = 3306".to_string(),
        "env_var = \"DB_HOST\"  # holds the DB's endpoint now".to_string(),
    ] {
        assert!(text.contains(&want), "lacks {want}:\n{text}");
    }
    assert_same(&before, &snapshot(&emu, &ws), "init changed the account");

    // An existing file is kept unless --force.
    init(&args)
        .code(2)
        .stderr_has("pass --force to overwrite it");
    assert_eq!(std::fs::read_to_string(&ws.runbook).unwrap(), text);
    let forced = [&args[..], &["--force"]].concat();
    init(&forced).ok();

    // What it wrote runs as it is, and rolls back to what was there.
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has(&format!("Done: {} step(s) applied", ALL_STEPS - 1));
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
    ws.run(&["rollback", "--yes"]).ok();
    assert_same(&before, &snapshot(&emu, &ws), "rollback after init");

    // An instance without a managed secret: init names the flag and the
    // secrets that look like the DB's, and writes nothing.
    let q = unique_prefix("init_instance");
    let env = emu.seed(&q, &[]);
    let out = ws.dir.join("instance.toml");
    let args = [
        "--function",
        &env["DB_APP_FUNCTION_NAME"],
        "--db-instance",
        &env["RDS_ID"],
        "-o",
        out.to_str().unwrap(),
    ];
    init(&args)
        .code(5)
        .stderr_has("has no secret that RDS manages")
        .stderr_has("pass --secret ARN: a Secrets Manager secret")
        .stderr_has(&env["RDS_SECRET_ARN"]);
    assert!(!out.exists());
    init(&[&args[..], &["--secret", &env["RDS_SECRET_ARN"]]].concat()).ok();
    ws.runbook = out;
    ws.state = ws.dir.join("instance.state.json");
    ws.run(&["plan"]).ok().stdout_has("Plan: 9 to create");

    // Unknown names: every problem at once, before anything is written.
    init(&["--function", "nope", "--db-instance", "nodb"])
        .code(5)
        .stderr_has("DB instance nodb does not exist in us-east-1")
        .stderr_has("Lambda function nope does not exist in us-east-1");
}

/// `run --confirm` on a terminal: each step's plan and a question; "no"
/// skips the step and holds back what needs it, "continue" stops asking.
#[test]
fn confirm_asks_before_each_step_and_skips_on_no() {
    let (_emu, ws) = setup("confirm");
    let answering = |answers: &str| {
        let mut c = std::process::Command::new(
            std::path::Path::new(ROOT).join("localstack/.venv/bin/python"),
        );
        c.arg(std::path::Path::new(ROOT).join("tests/support/answer.py"))
            .arg(answers)
            .arg("--")
            .arg(BIN)
            .args(["run", "--confirm", "--state"])
            .arg(&ws.state)
            .arg(&ws.runbook)
            .env_remove("AWS_PROFILE")
            .envs(ws.emu_env.iter().cloned())
            .envs(ws.env.iter());
        Out::from(c.output().unwrap())
    };
    // proxy-role and proxy-security-group yes, secret-access no, then go on.
    answering("y,y,n,c")
        .ok()
        .stdout_has("proxy-role (to create): IAM role")
        .stdout_has("    trust policy: {")
        .stdout_has("Run it? [y]es / [n]o, skip it / [c]ontinue without asking: ")
        .stdout_has("- secret-access skipped (answered no)")
        .stdout_has("✓ proxy created")
        .stdout_has("4 step(s) not run (1 answered no, the rest wait on them)");
    let status = |s: &str| {
        ws.state_json()["steps"][s]["status"]
            .as_str()
            .unwrap_or("pending")
            .to_string()
    };
    assert_eq!(status("proxy"), "applied");
    assert_eq!(status("secret-access"), "pending");
    assert_eq!(status("targets"), "pending", "targets needs secret-access");
    assert_eq!(status("lambda-env"), "pending");

    // Nobody answers: it stops before acting.
    answering("").code(1).stdout_has("no answer (end of input)");
    assert_eq!(status("secret-access"), "pending");
    // Off a terminal there is no one to ask.
    ws.run(&["run", "--confirm"])
        .code(2)
        .stderr_has("--confirm asks on the terminal");
    answering("y,c")
        .ok()
        .stdout_has("secret-access (to create)")
        .stdout_has("Done: 3 step(s) applied, 6 already done; 1 verification(s) passed.");
}

/// Credentials and region come from aws-config alone; when it finds none,
/// the error says so and where it looked, before any change.
#[test]
fn missing_credentials_or_region_are_named() {
    let (emu, ws) = setup("no_credentials");
    let home = temp_dir("empty-home");
    let bare = |args: &[&str], drop: &[&str]| {
        let mut c = ws.cmd(args);
        for k in drop {
            c.env_remove(k);
        }
        Out::from(
            c.env("HOME", &home)
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env("AWS_CONFIG_FILE", home.join("config"))
                .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
                .output()
                .unwrap(),
        )
    };
    let before = snapshot(&emu, &ws);
    bare(&["plan"], &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
        .code(1)
        .stderr_has("no AWS credentials were found")
        .stderr_has("Environment: the credential provider was not enabled")
        .stderr_has("aws-config looks at --profile / AWS_PROFILE");
    bare(&["plan", "--profile", "nosuch"], &[])
        .code(1)
        .stderr_has("profile `nosuch` gave no AWS credentials (is it defined?)");
    bare(&["run", "--yes"], &["AWS_REGION", "AWS_DEFAULT_REGION"])
        .code(1)
        .stderr_has("no AWS region: pass --region, set AWS_REGION");
    // A profile from the config file is used, keys and region included.
    std::fs::write(
        home.join("config"),
        "[profile emulator]\nregion = us-east-1\naws_access_key_id = test\naws_secret_access_key = test\n",
    )
    .unwrap();
    bare(
        &["plan", "--profile", "emulator"],
        &[
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
        ],
    )
    .ok()
    .stdout_has("Plan: 9 to create");
    assert_same(&before, &snapshot(&emu, &ws), "nothing was changed");
}
