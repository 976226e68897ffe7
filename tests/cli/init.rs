//! `init`: a runbook written from the account, that runs.

use super::*;

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
                .bounded_output(),
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
        // The alarms step and its section commented, with the figure read:
        // the writer's class (the emulator's default parameter group).
        "  # \"alarms\",  # CloudWatch alarms on the proxy".to_string(),
        "# [alarms]  # DatabaseConnections alarm at 80% of max_connections = 1270 \
         (db.r5.large estimate) -> 1016"
            .to_string(),
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
        // The recipe's steps but the check and alarms (init leaves the
        // step and [alarms] commented).
        .stdout_has(&format!("Done: {} step(s) applied", ALL_STEPS - 2));
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
    // Its [alarms] comment gives the threshold the step will set: both
    // uncommented, `plan` works out the same figure.
    let text = std::fs::read_to_string(&ws.runbook).unwrap();
    let figure = "# [alarms]  # DatabaseConnections alarm at 80% of max_connections = 60 \
                  (db.t3.micro estimate) -> 48";
    assert!(text.contains(figure), "lacks {figure}:\n{text}");
    let text = edit(&text, "  # \"alarms\",", "  \"alarms\",");
    std::fs::write(&ws.runbook, edit(&text, "# [alarms]", "[alarms]")).unwrap();
    ws.run(&["plan"])
        .ok()
        .stdout_has("DatabaseConnections Maximum >= 48 ")
        .stdout_has("(80% of the DB's max_connections 60 (");

    // Unknown names: every problem at once, before anything is written.
    init(&["--function", "nope", "--db-instance", "nodb"])
        .code(5)
        .stderr_has("DB instance nodb does not exist in us-east-1")
        .stderr_has("Lambda function nope does not exist in us-east-1");
}

/// `init` on a DB that a proxy made by hand already fronts: it says so and
/// writes a runbook that describes that setup, so that `adopt` takes all of
/// it over and `plan` then has nothing to change, instead of a second proxy.
#[test]
fn init_on_a_db_already_behind_a_proxy_writes_a_runbook_that_adopts_it() {
    let emu = Emulator::start();
    let mut ws = emu.workspace("init_adopt");
    let function = ws.env["DB_APP_FUNCTION_NAME"].clone();
    let untouched = snapshot(&emu, &ws);
    super::adopt::made_by_hand(&emu, &ws);
    let proxy = ws.env["DB_NAME"].clone();
    let by_hand = snapshot(&emu, &ws);
    let on_proxy = function_variable(&emu, &function, "DB_HOST").unwrap();
    ws.runbook = ws.dir.join("from-init.toml");
    let file = ws.runbook.to_str().unwrap().to_string();
    let out = Out::from(
        std::process::Command::new(BIN)
            .args(["init", "--function", &function])
            .args([
                "--db-instance",
                &ws.env["RDS_ID"],
                "--name",
                &ws.prefix,
                "-o",
                &file,
            ])
            .env_remove("AWS_PROFILE")
            .envs(emu.aws_env())
            .bounded_output(),
    );
    out.ok()
        .stderr_has(&format!(
            "is already behind RDS Proxy {proxy} (its target is DB instance"
        ))
        .stderr_has(&format!("rds-proxy-runbook adopt {file}"));
    let text = std::fs::read_to_string(&ws.runbook).unwrap();
    for want in [
        format!("name = \"{proxy}\""),
        format!("name = \"{}-proxy-role\"", ws.prefix),
        "description = \"Lambda Security Group\"".to_string(),
        "mode = \"managed\"".to_string(),
        "\ninclude_adopted_restore_value = ".to_string(),
    ] {
        assert!(text.contains(&want), "lacks {want}:\n{text}");
    }
    // What init wrote is not the user's word: no restore_value.
    assert!(!text.contains("\nrestore_value"), "{text}");
    ws.run(&["adopt", "--yes"])
        .ok()
        .stdout_has("Adopted 9 step(s)");
    ws.run(&["plan"])
        .ok()
        .stdout_has("Nothing to change: all 9 steps are done");
    assert_same(
        &by_hand,
        &snapshot(&emu, &ws),
        "init and adopt change nothing",
    );
    // Managed from then on, and a plain rollback leaves all of it as found,
    // the function on the hand-made proxy included; the summary says so.
    ws.run(&["rollback", "--yes"])
        .ok()
        .stdout_has(&format!(
            "{function}.DB_HOST: on the proxy when adopted, so left there \
             (`rollback --include-adopted` puts back "
        ))
        .stdout_has("Rolled back 0 of 9 step(s); left in place: ")
        .stdout_has("lambda-env")
        .stdout_has("`rollback --include-adopted` undoes what this state adopted");
    assert_eq!(
        function_variable(&emu, &function, "DB_HOST"),
        Some(on_proxy),
        "the function stays on the proxy it was found on"
    );
    assert_same(&by_hand, &snapshot(&emu, &ws), "plain rollback");
    // --include-adopted deletes it all and puts the function back on the
    // DB, with the value init wrote.
    ws.run(&["adopt", "--yes"])
        .ok()
        .stdout_has("Adopted 9 step(s)");
    ws.run(&["rollback", "--yes", "--include-adopted"])
        .ok()
        .stdout_has("Rolled back 9 step(s).");
    let db = function_variable(&emu, &function, "DB_HOST").unwrap();
    assert!(
        db.contains(".rds.amazonaws.com") && !db.contains("proxy"),
        "{db}"
    );
    assert_same(
        &untouched,
        &snapshot(&emu, &ws),
        "rollback --include-adopted",
    );

    // Only one of the two keys: which rollback puts it back is the
    // user's to say.
    let both = text.replace(
        "\ninclude_adopted_restore_value = ",
        &format!("\nrestore_value = \"{db}\"\ninclude_adopted_restore_value = "),
    );
    std::fs::write(&ws.runbook, both).unwrap();
    ws.run(&["plan"])
        .code(3)
        .stderr_has("include_adopted_restore_value")
        .stderr_has("give one of restore_value (every rollback puts it back) and");
}
