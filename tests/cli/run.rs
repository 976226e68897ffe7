//! `run`, its re-run and rollback: the whole recipe, step by step, every engine runbook, JSON output, the invoke check.

use super::*;

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
        .stdout_has("✓ alarms created")
        .stdout_has("✓ lambda-ingress created")
        .stdout_has("✓ lambda-env created")
        .stdout_has("✓ invoke-check verified")
        .stdout_has("Done: 10 step(s) applied, 0 already done; 1 verification(s) passed.");
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
        function.field("env"),
        format!(r#"{{"DB_HOST": "{endpoint}", "DB_USER": "admin", "LOG_LEVEL": "info"}}"#)
    );

    // The proxy role: trusted by RDS, only our least-privilege inline policy.
    let role = &after_run[&format!("iam role {p}-proxy-role")];
    let secret = &ws.env["RDS_SECRET_ARN"];
    assert_eq!(role.field("attached"), "[]", "{role}");
    let inline = role.field("inline");
    assert!(
        inline.starts_with("[\"rds-proxy-runbook-secret-access="),
        "{role}"
    );
    assert!(inline.contains("secretsmanager:GetSecretValue"), "{role}");
    assert!(inline.contains(secret.as_str()), "{role}");
    assert!(
        !inline.contains("kms:Decrypt"),
        "the seed's secret uses the AWS-managed key: {role}"
    );
    assert!(
        role.field("tags")
            .contains(&format!("rds-proxy-runbook:runbook={p}")),
        "{role}"
    );

    // The Lambda role: its own policy plus our connect policy, one version
    // with the book's resource on the prx- id.
    let lambda_role = &after_run[&format!("iam role {p}-lambda-role")];
    assert_eq!(
        lambda_role.field("attached"),
        format!(
            "[\"arn:aws:iam::123456789012:policy/{p}-connect\", \
             \"arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole\"]"
        ),
        "{lambda_role}"
    );
    assert_eq!(lambda_role.field("inline"), "[]", "{lambda_role}");
    let policy = after_run[&format!("iam policy {p}-connect")].field("versions");
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
        let ingress = rules.field("ingress");
        assert!(
            ingress.contains("tcp:Some(3306)-Some(3306)") && ingress.contains(source),
            "{group} should admit {source} on 3306: {rules}"
        );
    };
    admits(&db_sg, &proxy_sg);
    admits(&proxy_sg, &ws.env["DB_APP_FUNCTION_SG_ID"]);
    let proxy = &after_run[&format!("db proxy {p}-db")];
    assert_eq!(proxy.field("status"), "Some(Available)", "{proxy}");
    assert_eq!(proxy.field("tls"), "Some(true)", "{proxy}");
    assert_eq!(proxy.field("targets"), format!("[\"{p}-db\"]"), "{proxy}");

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
        .stdout_has("No changes: 11 step(s) checked, all already done; 1 verification(s) passed.");
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
        .stdout_has("Nothing to change: all 10 steps are done (1 verification step(s) will run).");

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
        .stdout_has("✓ alarms deleted CloudWatch alarm(s)")
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
        ("alarms", "targets"),
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
        .stdout_has("Done: 10 step(s) applied");
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
    assert_eq!(doc["summary"]["changed"], 10);
    assert_eq!(doc["summary"]["verified"], 1);
    assert_eq!(doc["steps"].as_array().unwrap().len(), ALL_STEPS);
    assert_eq!(doc["steps"][0]["name"], "proxy-role");
    assert!(doc["steps"][0]["seconds"].as_f64().is_some());

    let doc = json(ws.run(&["run", "--yes", "--output", "json"]).ok());
    assert_eq!(doc["summary"]["unchanged"], 10);

    let doc = json(ws.run(&["status", "--output", "json"]).ok());
    assert_eq!(doc["exists"], true);
    assert_eq!(doc["steps"][3]["name"], "proxy");
    assert_eq!(doc["steps"][3]["status"], "applied");
    assert!(doc["steps"][3]["outputs"]["endpoint"].as_str().is_some());

    let doc = json(ws.run(&["rollback", "--yes", "--output", "json"]).ok());
    assert_eq!(doc["command"], "rollback");
    assert_eq!(doc["summary"]["undone"], 10);
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

/// The shipped PostgreSQL, SQL Server and Aurora runbooks, each against a DB
/// of its engine: run, a re-run that changes nothing, rollback to exactly
/// what was there. The Aurora one serves two functions with their own roles
/// and security groups.
#[test]
fn each_engine_runbook_runs_reruns_and_rolls_back() {
    // These runbooks leave the alarms step out (the cookbook's turns it on).
    const STEPS: usize = ALL_STEPS - 1;
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
        let out = ws.run(&["run", "--yes"]);
        out.ok()
            .stdout_has(&format!("Done: {} step(s) applied", STEPS - 1));
        // Each function read the seed's row from the DB's real server through
        // the proxy; SQL Server has no server in the emulator, and says so.
        if family == "SQLSERVER" {
            out.stdout_has("~ invoke-check not exercised: ")
                .stdout_has("the local emulator has no sqlserver server")
                .stdout_has("1 verification(s) not exercised");
        } else {
            for f in functions {
                out.stdout_has(&format!(
                    "{p}-{f}: \"Successfully connected to RDS via RDS Proxy! Read 'hello from {p}-db' \
                     from the database (PostgreSQL"
                ));
            }
        }
        let after = snapshot(&emu, &ws);
        let proxy = &after[&format!("db proxy {p}-db")];
        // AWS lists a DB identifier in lower case, whatever the runbook's,
        // and a cluster's instances after the cluster.
        assert!(
            proxy.field("engine") == format!("Some({family:?})")
                && proxy
                    .field("targets")
                    .starts_with(&format!("[\"{}-db\"", p.to_lowercase())),
            "{runbook}: {proxy}"
        );
        let tcp = format!("tcp:Some({port})-Some({port})");
        let proxy_sg = proxy_sg_line(&after, &ws);
        let ingress = proxy_sg.field("ingress");
        assert_eq!(
            ingress.matches("sg-").count(),
            functions.len(),
            "{runbook}: one source per function: {proxy_sg}"
        );
        assert!(ingress.contains(&tcp), "{runbook}: {proxy_sg}");
        for f in functions {
            let env = after[&format!("lambda {p}-{f}")].field("env");
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
                role.field("attached")
                    .contains(&format!("policy/{p}-connect")),
                "{runbook}: {f}: {role}"
            );
        }
        ws.run(&["run", "--yes"]).ok().stdout_has(&format!(
            "No changes: {STEPS} step(s) checked, all already done"
        ));
        assert_same(
            &after,
            &snapshot(&emu, &ws),
            &format!("{runbook}: the re-run changed something"),
        );
        ws.run(&["rollback", "--yes"])
            .ok()
            .stdout_has(&format!("Rolled back {STEPS} step(s)."));
        assert_same(
            &before,
            &snapshot(&emu, &ws),
            &format!("{runbook}: rollback left a difference"),
        );
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
    // The function reads DB_HOST, which still holds the DB's endpoint: it
    // goes around the proxy (and times out, the DB's group admitting only
    // the proxy's), which the invoke check names.
    ws.run(&["run", "--yes"])
        .code(1)
        .stdout_has("✓ lambda-env created")
        .stderr_has(&format!(
            "cause: the function connected to {}-db.",
            ws.prefix.to_lowercase()
        ))
        .stderr_has("not to the proxy: one of its variables other than the runbook's");
    ws.write_runbook(|s| {
        let s = edit(&s, "mode = \"least-privilege\"", "mode = \"managed\"");
        let s = edit(&s, "env_var = \"DB_HOST\"", "env_var = \"PROXY_HOST\"");
        edit(
            &s,
            "  \"invoke-check\",          # check: invoke the function\n",
            "",
        )
    });
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has("No changes: 10 step(s) checked");
    let after = snapshot(&emu, &ws);
    let role = &after[&format!("iam role {}-proxy-role", ws.prefix)];
    assert_eq!(
        role.field("attached"),
        "[\"arn:aws:iam::aws:policy/SecretsManagerReadWrite\"]",
        "{role}"
    );
    assert_eq!(role.field("inline"), "[]", "{role}");
    let function = after[&format!("lambda {}-db-app", ws.prefix)].field("env");
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
    let (_emu, ws) = setup("invoke");
    let expecting = |text: &str| {
        ws.write_runbook(|s| {
            edit(
                &s,
                "payload = \"{}\"",
                &format!("payload = \"{{}}\"\nexpect = \"{text}\""),
            )
        })
    };
    // The book's function, run for real: its answer holds the row it read.
    expecting("Successfully connected to RDS via RDS Proxy!");
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has("✓ invoke-check verified")
        .stdout_has(&format!("Read 'hello from {}-db'", ws.prefix));
    // An answer without the expected text fails the check, and shows it.
    expecting("Connected to the reader");
    ws.run(&["run", "--yes", "--step", "invoke-check"])
        .code(1)
        .stderr_has("step `invoke-check` failed")
        .stderr_has("response does not contain \"Connected to the reader\"")
        .stderr_has("Successfully connected to RDS via RDS Proxy!");
    ws.run(&["status"])
        .ok()
        .stdout_has("invoke-check           failed");
}

/// AWS leaves out, without a word, a subnet in an Availability Zone RDS
/// Proxy does not support: the run says so once, with the zone, and no
/// later plan shows it as a change (Terraform's perpetual diff).
#[test]
fn a_subnet_aws_leaves_out_is_reported_once_and_never_a_change() {
    let emu = Emulator::start();
    let mut ws = emu.workspace("azs");
    let config = emu.sdk_config();
    let subnet = runtime().block_on(async {
        aws_sdk_ec2::Client::new(&config)
            .create_subnet()
            .vpc_id(&ws.env["VPC_ID"])
            .cidr_block("10.10.99.0/24")
            .availability_zone("us-east-1e")
            .send()
            .await
            .unwrap()
            .subnet()
            .and_then(|s| s.subnet_id())
            .unwrap()
            .to_string()
    });
    emu.configure(r#"{"unsupported_azs": ["us-east-1e"]}"#);
    let subnets = format!("{} {subnet}", ws.env["ISOLATED_SUBNETS"]);
    ws.env.insert("ISOLATED_SUBNETS".into(), subnets);
    let before = snapshot(&emu, &ws);
    let said = format!("AWS left out {subnet} (us-east-1e) from the proxy");
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has(&said)
        .stdout_has("the proxy uses 2 subnet(s)");
    let proxy = snapshot(&emu, &ws);
    let plan = ws.run(&["plan"]);
    plan.ok()
        .stdout_has("Nothing to change: all 10 steps are done");
    assert!(!plan.stdout.contains(&said), "said once: {plan:?}");
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
    assert_same(
        &proxy,
        &snapshot(&emu, &ws),
        "a re-run with a subnet left out",
    );
    ws.run(&["rollback", "--yes"]).ok();
    assert_same(&before, &snapshot(&emu, &ws), "rollback");
}
