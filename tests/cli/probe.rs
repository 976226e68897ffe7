//! `probe`: the tool's own function, in the configuration of the
//! runbook's, proves the wiring on the emulator's real data path: it
//! passes on the recipe, names the owning step of each broken part, and
//! leaves nothing behind (killed half way, the next command deletes it).

use super::data_path::by_hand;
use super::*;

/// The emulator's Lambda functions, by name.
fn functions(emu: &Emulator) -> Vec<String> {
    let config = emu.sdk_config();
    runtime().block_on(async move {
        let lambda = aws_sdk_lambda::Client::new(&config);
        let out = lambda.list_functions().send().await.unwrap();
        let mut names: Vec<String> = out
            .functions()
            .iter()
            .filter_map(|f| f.function_name().map(String::from))
            .collect();
        names.sort();
        names
    })
}

/// `probe` on a working setup: passes, through every endpoint, and leaves
/// the account's functions as it found them.
#[track_caller]
fn passes(emu: &Emulator, ws: &Workspace, endpoints: &[&str]) {
    let before = functions(emu);
    let out = ws.run(&["probe"]);
    out.ok()
        .stdout_has("The wiring works")
        .stdout_has(&format!("{}-db-app", ws.prefix));
    for e in endpoints {
        assert!(
            out.stdout
                .lines()
                .any(|l| l.contains(e) && l.ends_with("  ok")),
            "no passing row for {e}:\n{}",
            out.stdout
        );
    }
    assert_eq!(functions(emu), before, "the probe left a function");
}

#[test]
fn the_probe_passes_on_the_recipe_for_each_engine_and_leaves_nothing() {
    let emu = Emulator::start();
    if !emu.has_rules("the_probe_passes_on_the_recipe_for_each_engine_and_leaves_nothing") {
        return;
    }
    for (runbook, seed, endpoints) in [
        ("cookbook-4.3-mysql.toml", &[][..], &["default"][..]),
        (
            "postgresql.toml",
            &["--engine", "postgres"][..],
            &["default"][..],
        ),
        (
            "cookbook-4.3-mysql.toml",
            &["--engine", "aurora-mysql"][..],
            &["default"][..],
        ),
        (
            "aurora-postgresql-iam.toml",
            &["--engine", "aurora-postgresql", "--iam-db-auth"][..],
            &["default", "-db-ro"][..],
        ),
    ] {
        let ws = emu.workspace_for(&format!("probe_{}", seed.len()), runbook, seed);
        if seed.contains(&"aurora-mysql") {
            ws.write_runbook(|s| {
                edit(
                    &s,
                    "instance_id = \"${env.RDS_ID}\"",
                    "cluster_id = \"${env.RDS_CLUSTER_ID}\"",
                )
            });
        }
        ws.run(&["run", "--yes"]).ok();
        passes(&emu, &ws, endpoints);
        // As JSON: each result with its parts' times.
        let out = ws.run(&["probe", "--output", "json"]);
        out.ok();
        let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(doc["passed"], true, "{doc}");
        let results = doc["configurations"][0]["results"].as_array().unwrap();
        assert_eq!(results.len(), endpoints.len(), "{doc}");
        for r in results {
            assert_eq!(r["verdict"], "ok", "{r}");
            assert_eq!(r["query"]["ms"].as_array().unwrap().len(), 2, "{r}");
            assert_eq!(r["tls"]["verified"], true, "{r}");
        }
        assert!(
            !out.stdout.contains("password") && !out.stderr.contains("password\":"),
            "{out:?}"
        );
    }
}

#[test]
fn a_broken_wiring_fails_the_probe_at_the_step_that_owns_it() {
    let (emu, ws) = setup("probe_broken");
    if !emu.has_rules("a_broken_wiring_fails_the_probe_at_the_step_that_owns_it") {
        return;
    }
    ws.run(&["run", "--yes"]).ok();
    let p = ws.prefix.clone();
    let before = functions(&emu);
    let fails = |owner: &str, error: &str| {
        let out = ws.run(&["probe"]);
        out.code(1)
            .stdout_has(error)
            .stdout_has(&format!("owner: {owner}: "))
            .stdout_has("The probe failed.");
        assert_eq!(functions(&emu), before, "the probe left a function");
        out.stdout.clone()
    };

    // The connect policy detached from the function's role.
    let (role, policy) = (
        format!("{p}-lambda-role"),
        format!("arn:aws:iam::123456789012:policy/{p}-connect"),
    );
    {
        let (role, policy) = (role.clone(), policy.clone());
        by_hand(&emu, |c| async move {
            let iam = aws_sdk_iam::Client::new(&c);
            let detach = iam.detach_role_policy().role_name(role).policy_arn(policy);
            detach.send().await.unwrap();
        });
    }
    let out = fails("connect-policy", "auth failed");
    assert!(out.contains("an IAM token was refused"), "{out}");
    ws.run(&["run", "--yes"]).ok();
    passes(&emu, &ws, &["default"]);

    // A connect policy for another proxy's id: the log names the resource
    // the role lacks, this proxy's.
    let proxy_id = ws.output("proxy", "id");
    let text = std::fs::read_to_string(ws.dir.join("policies/rds-connect-policy-template.json"))
        .unwrap()
        .replace("RDSProxyID", "prx-0123456789abcdef0");
    std::fs::write(ws.dir.join("policies/other-proxy.json"), text).unwrap();
    let other = |s: String| {
        edit(
            &s,
            "policies/rds-connect-policy-template.json",
            "policies/other-proxy.json",
        )
    };
    // The run's invoke check comes before its last pass narrows the
    // policy to the other id (docs/limits.md).
    ws.write_runbook(other);
    ws.run(&["run", "--yes"]).ok();
    // IAM honours the narrowed policy after its propagation delay.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let out = fails("connect-policy", "auth failed");
    assert!(
        out.contains(&format!(
            "needs rds-db:connect on arn:aws:rds-db:us-east-1:123456789012:dbuser:{proxy_id}/admin"
        )),
        "{out}"
    );
    ws.write_runbook(|s| s);
    ws.run(&["run", "--yes"]).ok();

    // The function's security group no longer admitted by the proxy's.
    let proxy_sg = ws.output("proxy-security-group", "group_id");
    let app_sg = ws.env["DB_APP_FUNCTION_SG_ID"].clone();
    by_hand(&emu, |c| async move {
        let ec2 = aws_sdk_ec2::Client::new(&c);
        let rules = ec2
            .describe_security_group_rules()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("group-id")
                    .values(&proxy_sg)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let ids: Vec<String> = rules
            .security_group_rules()
            .iter()
            .filter(|r| r.referenced_group_info().and_then(|g| g.group_id()) == Some(&app_sg))
            .filter_map(|r| r.security_group_rule_id().map(String::from))
            .collect();
        assert!(!ids.is_empty(), "no rule admits the function's group");
        ec2.revoke_security_group_ingress()
            .group_id(&proxy_sg)
            .set_security_group_rule_ids(Some(ids))
            .send()
            .await
            .unwrap();
    });
    fails("lambda-ingress", "connect failed");
    ws.run(&["run", "--yes"]).ok();

    // The proxy's role no longer allowed to read the secret.
    let proxy_role = format!("{p}-proxy-role");
    by_hand(&emu, |c| async move {
        let iam = aws_sdk_iam::Client::new(&c);
        let names = iam
            .list_role_policies()
            .role_name(&proxy_role)
            .send()
            .await
            .unwrap();
        for name in names.policy_names() {
            let delete = iam
                .delete_role_policy()
                .role_name(&proxy_role)
                .policy_name(name);
            delete.send().await.unwrap();
        }
    });
    let out = fails("secret-access", "auth failed");
    assert!(
        out.contains("the proxy cannot read its credentials"),
        "{out}"
    );
    ws.run(&["run", "--yes"]).ok();
    passes(&emu, &ws, &["default"]);
}

#[test]
fn a_probe_killed_after_creating_its_function_is_deleted_by_the_next_command() {
    let (emu, ws) = setup("probe_killed");
    if !emu.has_rules("a_probe_killed_after_creating_its_function_is_deleted_by_the_next_command") {
        return;
    }
    ws.run(&["run", "--yes"]).ok();
    let before = functions(&emu);
    let probe_fn = format!("{}-probe-1", ws.prefix);
    let killed = || {
        let out: Out = ws
            .cmd(&["probe"])
            .env("RDS_PROXY_RUNBOOK_FAILPOINT", "probe:after-create")
            .output()
            .unwrap()
            .into();
        assert_ne!(out.code, 0, "{out:?}");
        assert!(functions(&emu).contains(&probe_fn), "{:?}", functions(&emu));
        assert!(ws.state_text().unwrap().contains(&probe_fn), "recorded");
    };
    // The next probe deletes it first, and leaves nothing.
    killed();
    ws.run(&["probe"]).ok().stdout_has(&format!(
        "deleted the probe function(s) an interrupted probe left: {probe_fn}"
    ));
    assert_eq!(functions(&emu), before);
    assert!(!ws.state_text().unwrap().contains(&probe_fn));
    // So does a run (changing nothing else), and a rollback.
    killed();
    ws.run(&["run", "--yes"]).ok().stdout_has(&format!(
        "Deleted the probe function(s) an interrupted probe left: {probe_fn}"
    ));
    assert_eq!(functions(&emu), before);
    killed();
    ws.run(&["rollback", "--yes"]).ok();
    assert!(!functions(&emu).contains(&probe_fn));
    assert!(!ws.state_text().unwrap().contains(&probe_fn));
}

/// `[invoke_check] probe = true`: the run's last check is the probe, not
/// an invocation of the user's function.
#[test]
fn the_run_can_end_with_the_probe_instead_of_invoking_the_functions() {
    let (emu, ws) = setup("probe_check");
    if !emu.has_rules("the_run_can_end_with_the_probe_instead_of_invoking_the_functions") {
        return;
    }
    ws.write_runbook(|s| {
        edit(
            &s,
            "[invoke_check]\npayload = \"{}\"",
            "[invoke_check]\nprobe = true",
        )
    });
    let before = functions(&emu);
    ws.run(&["plan"])
        .ok()
        .stdout_has("probe the proxy from the configurations of");
    let out = ws.run(&["run", "--yes"]);
    out.ok()
        .stdout_has("✓ invoke-check")
        .stdout_has("the probe passed in 1 configuration(s), 1 connection(s)");
    assert!(
        !out.stdout.contains("Successfully connected"),
        "the user's function was invoked:\n{}",
        out.stdout
    );
    assert_eq!(functions(&emu), before, "nothing of the probe remains");
}

/// A proxy made to require TLS by hand refuses clients the runbook
/// configures without it: the probe, connecting as they do, fails at the
/// proxy step; the run puts it back.
#[test]
fn tls_required_by_hand_refuses_the_clients_the_runbook_configures_without_it() {
    let (emu, ws) = setup("probe_tls");
    if !emu.has_rules("tls_required_by_hand_refuses_the_clients_the_runbook_configures") {
        return;
    }
    let no_tls = |s: String| {
        let s = edit(&s, "require_tls = true", "require_tls = false");
        let s = edit(&s, "iam_auth = \"REQUIRED\"", "iam_auth = \"DISABLED\"");
        edit(
            &s,
            "[invoke_check]\npayload = \"{}\"",
            "[invoke_check]\nprobe = true",
        )
    };
    ws.write_runbook(no_tls);
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has("the probe passed");
    let out = ws.run(&["probe"]);
    out.ok();
    assert!(
        out.stdout
            .lines()
            .any(|l| l.contains(" off ") && l.ends_with("  ok")),
        "the probe connected without TLS, as the runbook configures clients:\n{}",
        out.stdout
    );
    let proxy = format!("{}-db", ws.prefix);
    by_hand(&emu, |c| async move {
        let rds = aws_sdk_rds::Client::new(&c);
        rds.modify_db_proxy()
            .db_proxy_name(proxy)
            .require_tls(true)
            .send()
            .await
            .unwrap();
    });
    ws.run(&["probe"])
        .code(1)
        .stdout_has("auth failed: (3159)")
        .stdout_has("owner: proxy: the proxy requires TLS");
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has("the probe passed");
    ws.run(&["probe"]).ok();
}
