//! `plan`: an empty account, the connection budget.

use super::*;

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
        .stdout_has("Plan: 10 to create, 0 to finish, 0 to update in place, 0 done, 0 blocked (1 verification step(s) will run).");
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
    assert_eq!(actions, [vec!["create"; 10], vec!["verify"]].concat());
    assert_eq!(
        plan["steps"][3]["after"],
        serde_json::json!(["proxy-role", "proxy-security-group"])
    );
    // In the order `run` keeps: a new proxy waits on its role and group,
    // not on secret-access (which guards a change to an existing one).
    let proxy = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "proxy")
        .unwrap();
    assert_eq!(
        proxy["waits_on"],
        serde_json::json!(["proxy-role", "proxy-security-group"])
    );
    assert_eq!(plan["summary"]["create"], 10);
    assert!(
        !out.stdout.contains("\"info\""),
        "variable values never appear"
    );
    assert_same(&before, &snapshot(&emu, &ws), "plan changed the emulator");
    assert!(!ws.state.exists(), "plan must not write a state");
    ws.run(&["run", "--yes"]).ok();
    let out = ws.run(&["plan", "--output", "json"]);
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(plan["summary"]["done"], 10);
    assert!(
        plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["details"].is_null())
    );
}

#[test]
fn plan_works_out_the_connection_budget() {
    let (emu, ws) = setup("budget");
    // Uncapped: the account's concurrency against db.t3.micro's ~60.
    let out = ws.run(&["plan"]);
    out.ok()
        .stdout_has("Connection budget: db.t3.micro allows about 60 connections; the pool may use 100% = 60.")
        .stdout_has("at worst 1000 environments (limited by nothing: the account's concurrency (1000))")
        .stdout_has("may exceed the pool");
    // Every read answered (the emulator's Lambda account settings and
    // provisioned concurrency): no note of a read that failed.
    assert!(!out.stdout.contains("cannot read"), "{out:?}");
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

/// max_connections as the DB's parameter group sets it, else the
/// estimate; an Aurora cluster's budget from its writer's class.
#[test]
fn the_budget_reads_max_connections_from_the_parameter_group_and_covers_aurora() {
    let (emu, ws) = setup("budget_params");
    let config = emu.sdk_config();
    runtime().block_on(async {
        use aws_sdk_rds::types::{ApplyMethod, Parameter};
        let rds = aws_sdk_rds::Client::new(&config);
        let group = format!("{}-params", ws.prefix.to_lowercase());
        rds.create_db_parameter_group()
            .db_parameter_group_name(&group)
            .db_parameter_group_family("mysql8.0")
            .description("the budget test's")
            .send()
            .await
            .unwrap();
        rds.modify_db_parameter_group()
            .db_parameter_group_name(&group)
            .parameters(
                Parameter::builder()
                    .parameter_name("max_connections")
                    .parameter_value("40")
                    .apply_method(ApplyMethod::Immediate)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        rds.modify_db_instance()
            .db_instance_identifier(&ws.env["RDS_ID"])
            .db_parameter_group_name(&group)
            .apply_immediately(true)
            .send()
            .await
            .unwrap();
    });
    ws.run(&["plan"]).ok().stdout_has(&format!(
        "Connection budget: db.t3.micro allows 40 connections (set by DB parameter group \
         {}-params); the pool may use 100% = 40.",
        ws.prefix.to_lowercase()
    ));

    let aurora = emu.workspace_for(
        "budget_aurora",
        "aurora-postgresql.toml",
        &[
            "--engine",
            "aurora-postgresql",
            "--extra-function",
            "reports",
        ],
    );
    let out = aurora.run(&["plan"]);
    out.ok()
        .stdout_has("Connection budget: db.r5.large allows about ")
        .stdout_has(&format!(
            "the cluster's instances: writer {}-db-1 db.r5.large",
            aurora.prefix.to_lowercase()
        ));
    assert!(!out.stdout.contains("cannot read"), "{out:?}");
}

#[test]
fn plan_warns_about_a_variable_left_on_the_db_and_iam_without_tls() {
    let (emu, ws) = setup("plan_warns");
    let app = ws.env["DB_APP_FUNCTION_NAME"].clone();
    let db_host = function_variable(&emu, &app, "DB_HOST").unwrap();
    let out = ws.run(&["plan"]);
    out.ok();
    assert!(!out.stdout.contains("warning"), "{out:?}");
    // A connection string beside DB_HOST, holding the DB's host (and a
    // password, never shown).
    let url = format!(
        "mysql://admin:Sup3rSecret@{}:3306/app",
        db_host.to_uppercase()
    );
    set_function_variable(&emu, &app, "DATABASE_URL", Some(&url));
    ws.write_edited("require_tls = true", "require_tls = false");
    let out = ws.run(&["plan"]);
    out.ok()
        .stdout_has(&format!(
            "{app}: DATABASE_URL also hold(s) the DB's endpoint {db_host}, and the runbook moves only DB_HOST"
        ))
        .stdout_has("proxy.iam_auth = \"REQUIRED\" with require_tls = false");
    assert!(!out.stdout.contains("Sup3rSecret"), "{out:?}");
    assert!(!out.stderr.contains("Sup3rSecret"), "{out:?}");
}
