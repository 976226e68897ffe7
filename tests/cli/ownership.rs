//! Ownership and secrets: what is not ours is never adopted or deleted; no secret reaches the output, the logs or the state.

use super::*;

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
                "../../runbooks/policies/rds-proxy-trust-policy.json"
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
