//! Living with the proxy: a runbook edited after a full run is applied in
//! place (proxy settings, pool, tags, functions added and removed), a change
//! made by hand is shown and put back, what only a new resource could
//! change is refused before any call that writes, and a rollback after a
//! chain of edits leaves the account as it was before the first run. A
//! watch checks every function's DB_HOST all along: always the DB or a
//! live proxy.

use std::collections::BTreeMap;

use super::*;

/// A full run of the cookbook runbook; `extra` seeds more functions.
pub(super) fn applied(test: &str, extra: &[&str]) -> (Emulator, Workspace, Snapshot, String) {
    let emu = Emulator::start();
    let mut seed = Vec::new();
    for e in extra {
        seed.extend(["--extra-function", e]);
    }
    let ws = emu.workspace_for(test, "cookbook-4.3-mysql.toml", &seed);
    let db_host = function_variable(&emu, &ws.env["DB_APP_FUNCTION_NAME"], "DB_HOST").unwrap();
    let before = snapshot(&emu, &ws);
    ws.run(&["run", "--yes"]).ok();
    (emu, ws, before, db_host)
}

fn proxy_line(emu: &Emulator, ws: &Workspace) -> Resource {
    snapshot(emu, ws)[&format!("db proxy {}-db", ws.prefix)].clone()
}

#[test]
fn proxy_settings_and_pool_are_changed_in_place() {
    let (emu, ws, before, db_host) = applied("update_in_place", &[]);
    let functions = vec![ws.env["DB_APP_FUNCTION_NAME"].clone()];
    let endpoint = ws.output("proxy", "endpoint");
    let first = proxy_line(&emu, &ws);
    assert_eq!(first.field("idle_client_timeout"), "Some(1800)", "{first}");
    ws.write_runbook(|s| {
        let s = edit(
            &s,
            "require_tls = true\n",
            "require_tls = true\nidle_client_timeout = 300\ndebug_logging = true\n",
        );
        let s = edit(
            &s,
            "Project = \"AWSCookbook403\"",
            "Project = \"AWSCookbook403\"\nTeam = \"platform\"",
        );
        format!("{s}\n[pool]\nmax_connections_percent = 50\n")
    });

    ws.run(&["plan"])
        .ok()
        .stdout_has("~ proxy")
        .stdout_has("update in place")
        .stdout_has("idle client timeout: 1800 -> 300")
        .stdout_has("debug logging: false -> true")
        .stdout_has("tag Team: (none) -> platform")
        .stdout_has("pool MaxConnectionsPercent: 100 -> 50")
        .stdout_has(
            "(runbook edited since applied: debug_logging: false -> true; \
             idle_client_timeout: 1800 -> 300",
        );
    let watch = HostWatch::start(&emu, &functions, "DB_HOST", &db_host);
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has("proxy: updating in place: idle client timeout: 1800 -> 300")
        .stdout_has("✓ proxy updated in place")
        .stdout_has("✓ targets updated in place")
        .stdout_has("✓ connect-policy updated in place")
        .stdout_has("✓ proxy-role updated in place");
    watch.assert_always_working("the update in place");
    let now = proxy_line(&emu, &ws);
    assert_eq!(now.field("idle_client_timeout"), "Some(300)", "{now}");
    assert_eq!(now.field("debug_logging"), "Some(true)", "{now}");
    assert!(
        now.field("pool").starts_with("Some(\"max=Some(50)"),
        "{now}"
    );
    assert_eq!(
        first.field("arn"),
        now.field("arn"),
        "the same proxy, not a new one"
    );
    assert_eq!(ws.output("proxy", "endpoint"), endpoint);
    assert_eq!(
        function_variable(&emu, &functions[0], "DB_HOST").as_deref(),
        Some(endpoint.as_str())
    );
    let role = &snapshot(&emu, &ws)[&format!("iam role {}-proxy-role", ws.prefix)];
    assert!(role.field("tags").contains("Team=platform"), "{role}");

    // Applied: a re-run changes nothing, and the tag goes when the runbook
    // drops it (a tag set by hand stays).
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
    ws.write_runbook(|s| {
        let s = edit(
            &s,
            "require_tls = true\n",
            "require_tls = true\nidle_client_timeout = 300\ndebug_logging = true\n",
        );
        format!("{s}\n[pool]\nmax_connections_percent = 50\n")
    });
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has("proxy-role updated in place");
    let role = &snapshot(&emu, &ws)[&format!("iam role {}-proxy-role", ws.prefix)];
    assert!(!role.field("tags").contains("Team="), "{role}");

    ws.run(&["rollback", "--yes"]).ok();
    assert_same(
        &before,
        &snapshot(&emu, &ws),
        "rollback after updates in place",
    );
}

/// A pool that keeps no idle connections (`max_idle_connections_percent =
/// 0`, which AWS accepts) is set, then found as the runbook says: a re-plan
/// has nothing to change (moto took 0 for "not given" and reset it to half
/// the maximum, so every later plan saw a change made outside the runbook;
/// the emulator's rds.py mends that).
#[test]
fn a_pool_without_idle_connections_runs_and_stays_as_set() {
    let (emu, ws, before, _) = applied("update_idle_zero", &[]);
    ws.write_runbook(|s| format!("{s}\n[pool]\nmax_idle_connections_percent = 0\n"));
    ws.run(&["plan"])
        .ok()
        .stdout_has("pool MaxIdleConnectionsPercent: 50 -> 0");
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has("✓ targets updated in place");
    let proxy = proxy_line(&emu, &ws);
    assert!(proxy.field("pool").contains("idle=Some(0)"), "{proxy}");
    ws.run(&["plan"])
        .ok()
        .stdout_has("Nothing to change: all 10 steps are done");
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
    ws.run(&["rollback", "--yes"]).ok();
    assert_same(&before, &snapshot(&emu, &ws), "rollback of an idle-0 pool");
}

#[test]
fn functions_are_added_and_removed_without_touching_the_others() {
    let (emu, ws, before, db_host) = applied("update_functions", &["reports"]);
    let p = ws.prefix.clone();
    let (app, reports) = (
        ws.env["DB_APP_FUNCTION_NAME"].clone(),
        ws.env["REPORTS_FUNCTION_NAME"].clone(),
    );
    let endpoint = ws.output("proxy", "endpoint");
    let second =
        "\n[[lambda]]\nfunction_name = \"${env.REPORTS_FUNCTION_NAME}\"\nenv_var = \"DB_HOST\"\n";
    ws.write_runbook(|s| edit(&s, "\n[invoke_check]", &format!("{second}\n[invoke_check]")));
    ws.run(&["plan"])
        .ok()
        .stdout_has(&format!(
            "{reports}.DB_HOST: {db_host} -> {endpoint} (added to the runbook)"
        ))
        .stdout_has(&format!("role {p}-reports-role: not attached -> attached"));
    let both = vec![app.clone(), reports.clone()];
    // Whenever a function is on the proxy, its way in must be there too.
    let paths = Paths {
        proxy_sg: ws.output("proxy-security-group", "group_id"),
        policy_arn: ws.output("connect-policy", "arn"),
        functions: [
            (
                app.clone(),
                ("DB_APP_FUNCTION_SG_ID", "DB_APP_FUNCTION_ROLE_NAME"),
            ),
            (
                reports.clone(),
                ("REPORTS_FUNCTION_SG_ID", "REPORTS_FUNCTION_ROLE_NAME"),
            ),
        ]
        .into_iter()
        .map(|(f, (sg, role))| (f, (ws.env[sg].clone(), ws.env[role].clone())))
        .collect(),
    };
    let watch = HostWatch::start_with(&emu, &both, "DB_HOST", &db_host, Some(paths.clone()));
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has("✓ lambda-env updated in place");
    watch.assert_always_working("adding a function");
    let snap = snapshot(&emu, &ws);
    for f in [&app, &reports] {
        assert!(
            snap[&format!("lambda {f}")]
                .field("env")
                .contains(&endpoint),
            "{f}: {snap:#?}"
        );
    }
    assert!(
        snap[&format!("iam role {p}-reports-role")]
            .field("attached")
            .contains(&format!("policy/{p}-connect"))
    );
    let proxy_sg = proxy_sg_line(&snap, &ws);
    assert!(
        proxy_sg
            .field("ingress")
            .contains(&ws.env["REPORTS_FUNCTION_SG_ID"]),
        "{proxy_sg}"
    );
    let recorded = ws.state_json()["steps"]["lambda-env"]["before"].clone();
    assert_eq!(
        recorded[format!("{app}.DB_HOST")],
        db_host.as_str(),
        "{recorded}"
    );
    assert_eq!(
        recorded[format!("{reports}.DB_HOST")],
        db_host.as_str(),
        "{recorded}"
    );

    // The first function leaves: its variable, rule and attachment go back;
    // the other keeps the proxy throughout.
    let first = "function_name = \"${env.DB_APP_FUNCTION_NAME}\"\n\
                 security_group_id = \"${env.DB_APP_FUNCTION_SG_ID}\"\n";
    let second_only = "function_name = \"${env.REPORTS_FUNCTION_NAME}\"\n";
    ws.write_runbook(|s| edit(&s, first, second_only));
    ws.run(&["plan"])
        .ok()
        .stdout_has(&format!(
            "{app}.DB_HOST: {endpoint} -> {db_host} (no longer in the runbook: put back)"
        ))
        .stdout_has(&format!("role {p}-lambda-role: attached -> detached"))
        .stdout_has("-> revoked (no longer wanted)");
    // A run of one step leaves the removal to a whole run.
    ws.run(&["run", "--yes", "--step", "lambda-ingress"])
        .ok()
        .stdout_has("note: lambda-ingress leave(s) what the runbook no longer wants in place");
    let snap = snapshot(&emu, &ws);
    let proxy_sg = proxy_sg_line(&snap, &ws);
    assert!(
        proxy_sg
            .field("ingress")
            .contains(&ws.env["DB_APP_FUNCTION_SG_ID"]),
        "{proxy_sg}"
    );
    let watch = HostWatch::start_with(&emu, &both, "DB_HOST", &db_host, Some(paths));
    // Held before lambda-env acts (with the failpoints feature), long enough
    // for the watch to see a function on the proxy without its way in, were
    // its rule or policy removed before its variable is put back.
    let held = ws
        .cmd(&["run", "--yes"])
        .env(
            "RDS_PROXY_RUNBOOK_FAILPOINT",
            "lambda-env:before-apply:sleep800",
        )
        .bounded_output();
    Out::from(held)
        .ok()
        .stdout_has("lambda-ingress: now that every function has moved, removing what the runbook no longer wants")
        .stdout_has("connect-policy: now that every function has moved, removing");
    watch.assert_always_working("removing a function");
    let snap = snapshot(&emu, &ws);
    assert_eq!(
        snap[&format!("lambda {app}")],
        before[&format!("lambda {app}")],
        "restored whole"
    );
    assert!(
        snap[&format!("lambda {reports}")]
            .field("env")
            .contains(&endpoint)
    );
    assert!(
        !snap[&format!("iam role {p}-lambda-role")]
            .field("attached")
            .contains(&format!("policy/{p}-connect"))
    );
    assert!(
        snap[&format!("iam role {p}-reports-role")]
            .field("attached")
            .contains(&format!("policy/{p}-connect"))
    );
    let proxy_sg = proxy_sg_line(&snap, &ws);
    assert!(
        !proxy_sg
            .field("ingress")
            .contains(&ws.env["DB_APP_FUNCTION_SG_ID"]),
        "{proxy_sg}"
    );
    assert!(
        proxy_sg
            .field("ingress")
            .contains(&ws.env["REPORTS_FUNCTION_SG_ID"]),
        "{proxy_sg}"
    );
    let recorded = ws.state_json()["steps"]["lambda-env"]["before"].clone();
    assert!(
        recorded.get(format!("{app}.DB_HOST")).is_none(),
        "put back, forgotten: {recorded}"
    );
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");

    ws.run(&["rollback", "--yes"]).ok();
    assert_same(
        &before,
        &snapshot(&emu, &ws),
        "rollback after adding and removing functions",
    );
}

#[test]
fn changes_made_by_hand_are_shown_and_put_back() {
    let (emu, ws, before, db_host) = applied("update_drift", &[]);
    let p = ws.prefix.clone();
    let app = ws.env["DB_APP_FUNCTION_NAME"].clone();
    let endpoint = ws.output("proxy", "endpoint");
    let applied = snapshot(&emu, &ws);
    // By hand: DB_HOST back to the DB, the proxy's ingress rule revoked,
    // the connect policy detached, the pool changed in the console.
    set_function_variable(&emu, &app, "DB_HOST", Some(&db_host));
    let config = emu.sdk_config();
    let proxy_sg = ws.output("proxy-security-group", "group_id");
    let rules = ws.output("lambda-ingress", "rule_ids");
    runtime().block_on(async {
        aws_sdk_ec2::Client::new(&config)
            .revoke_security_group_ingress()
            .group_id(&proxy_sg)
            .security_group_rule_ids(&rules)
            .send()
            .await
            .unwrap();
        aws_sdk_iam::Client::new(&config)
            .detach_role_policy()
            .role_name(format!("{p}-lambda-role"))
            .policy_arn(ws.output("connect-policy", "arn"))
            .send()
            .await
            .unwrap();
    });
    set_pool_by_hand(&emu, &format!("{p}-db"), 20);
    ws.run(&["plan"])
        .ok()
        .stdout_has("changed outside the runbook, to put back")
        .stdout_has(&format!(
            "{app}.DB_HOST: {db_host} -> {endpoint} (changed outside the runbook)"
        ))
        .stdout_has(&format!("role {p}-lambda-role: not attached -> attached"))
        .stdout_has("not admitted -> admitted")
        .stdout_has("pool MaxConnectionsPercent: 20 -> 100");
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has(
            "targets: changed outside the runbook, putting it back: \
             pool MaxConnectionsPercent: 20 -> 100",
        )
        .stdout_has("✓ lambda-env put back")
        .stdout_has("✓ lambda-ingress put back")
        .stdout_has("✓ connect-policy put back");
    assert_same(&applied, &snapshot(&emu, &ws), "put back as applied");
    ws.run(&["rollback", "--yes"]).ok();
    assert_same(
        &before,
        &snapshot(&emu, &ws),
        "rollback after drift put back",
    );
}

/// The emulator's counts of calls that write (not Describe, Get or List)
/// made between `before` and `after`.
pub(super) fn writes(
    before: &BTreeMap<String, usize>,
    after: &BTreeMap<String, usize>,
) -> Vec<String> {
    after
        .iter()
        .filter(|(k, _)| !["Describe", "Get", "List"].iter().any(|r| k.starts_with(r)))
        .filter(|(k, v)| before.get(*k) != Some(v))
        .map(|(k, v)| format!("{k} x{}", v - before.get(k).unwrap_or(&0)))
        .collect()
}

#[test]
fn what_only_a_new_resource_could_change_is_refused_before_any_write() {
    let (emu, mut ws, _, _) = applied("update_replace", &[]);
    let p = ws.prefix.clone();
    let applied = snapshot(&emu, &ws);
    // Another pair of subnets: the first, and a third one made here.
    let config = emu.sdk_config();
    let (vpc, first) = (ws.env["VPC_ID"].clone(), ws.env["ISOLATED_SUBNETS"].clone());
    let third = runtime().block_on(async {
        aws_sdk_ec2::Client::new(&config)
            .create_subnet()
            .vpc_id(vpc)
            .cidr_block("10.10.3.0/24")
            .availability_zone(format!("{REGION}b"))
            .send()
            .await
            .unwrap()
            .subnet()
            .and_then(|s| s.subnet_id().map(String::from))
            .unwrap()
    });
    let first = first.split(' ').next().unwrap();
    ws.env
        .insert("OTHER_SUBNETS".into(), format!("{first} {third}"));
    let name = format!("name = \"{p}-proxy-role\"");
    // A name edited (the runbook says so before any call), and subnets
    // (only the proxy's check can tell): each refused, nothing written.
    for (from, to, says) in [
        (
            "name = \"${env.DB_NAME}\"",
            "name = \"${env.DB_NAME}-2\"",
            "proxy: name: ",
        ),
        (
            name.as_str(),
            "name = \"other-role\"",
            "proxy-role: role_name: ",
        ),
        (
            "subnet_ids = \"${env.ISOLATED_SUBNETS}\"",
            "subnet_ids = \"${env.OTHER_SUBNETS}\"",
            "proxy: subnets: ",
        ),
    ] {
        ws.write_edited(from, to);
        ws.run(&["plan"])
            .code(3)
            .stdout_has("-/+ proxy")
            .stdout_has("replace (refused)");
        // Whatever the selection: a step must not act beside it.
        ws.run(&["run", "--yes", "--step", "targets"])
            .code(3)
            .stderr_has(says);
        let calls = emu.calls();
        ws.run(&["run", "--yes"])
            .code(3)
            .stderr_has("these changes need a new resource")
            .stderr_has(says)
            .stderr_has("Nothing was changed");
        if emu.has_rules("what_only_a_new_resource_could_change_is_refused_before_any_write") {
            assert_eq!(writes(&calls, &emu.calls()), Vec::<String>::new(), "{says}");
        }
        assert_same(&applied, &snapshot(&emu, &ws), says);
    }
}

#[test]
fn a_saved_plan_runs_as_reviewed_or_not_at_all() {
    let (emu, ws, _, _) = applied("saved_plan", &[]);
    let plan = ws.dir.join("reviewed.plan.json");
    let plan_arg = plan.to_str().unwrap();
    let edited = |timeout: u32| {
        ws.write_runbook(|s| {
            edit(
                &s,
                "require_tls = true\n",
                &format!("require_tls = true\nidle_client_timeout = {timeout}\n"),
            )
        })
    };
    edited(300);
    ws.run(&["plan", "-o", plan_arg])
        .ok()
        .stdout_has("idle client timeout: 1800 -> 300")
        .stdout_has("Saved this plan to");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&plan).unwrap()).unwrap();
    assert_eq!(doc["steps"][3]["name"], "proxy", "{doc}");
    assert_eq!(doc["steps"][3]["action"], "update", "{doc}");

    // The runbook moved after the review: refused, nothing changed.
    edited(600);
    let reviewed = snapshot(&emu, &ws);
    ws.run(&["run", "--yes", "--plan", plan_arg])
        .code(3)
        .stderr_has("the saved plan (made ")
        .stderr_has("proxy: the runbook changed what it makes")
        .stderr_has("Nothing was changed");
    assert_same(&reviewed, &snapshot(&emu, &ws), "a refused plan acted");

    // The account moved (the pool changed in the console): refused too.
    edited(300);
    set_pool_by_hand(&emu, &format!("{}-db", ws.prefix), 30);
    let moved = snapshot(&emu, &ws);
    ws.run(&["run", "--yes", "--plan", plan_arg])
        .code(3)
        .stderr_has("targets: the account changed since the plan (it was none)");
    assert_same(&moved, &snapshot(&emu, &ws), "a refused plan acted");

    // Planned again on that account: it runs, and only then.
    ws.run(&["plan", "-o", plan_arg]).ok();
    ws.run(&["run", "--yes", "--plan", plan_arg])
        .ok()
        .stdout_has("The saved plan (made ")
        .stdout_has("✓ proxy updated in place")
        .stdout_has("✓ targets put back");
    // Spent: what it planned is done, so the account moved.
    ws.run(&["run", "--yes", "--plan", plan_arg])
        .code(3)
        .stderr_has("the account changed since the plan");
    ws.run(&["run", "--yes", "--plan", "/nonexistent/plan.json"])
        .code(3)
        .stderr_has("there is no plan at /nonexistent/plan.json: the file does not exist");
    let not_a_plan = ws.dir.join("not-a-plan.json");
    std::fs::write(&not_a_plan, "{}").unwrap();
    ws.run(&["run", "--yes", "--plan", not_a_plan.to_str().unwrap()])
        .code(3)
        .stderr_has("is not a plan written by");
    ws.run(&["run", "--yes", "--plan", plan_arg, "--step", "proxy"])
        .code(2);
}

/// A tag-only edit, then a trust-policy-only edit: the role and the group
/// the check found are updated, never created again (a day-two operator
/// may lack iam:CreateRole and ec2:CreateSecurityGroup, and a failed
/// Create would be left in CloudTrail at every tag change), and the log
/// says so.
#[test]
fn a_tag_or_trust_policy_edit_updates_what_exists_and_creates_nothing() {
    let (emu, ws, before, _) = applied("update_no_create", &[]);
    let creates = |since: &BTreeMap<String, usize>| -> Vec<String> {
        let made = [
            "CreateRole",
            "CreateSecurityGroup",
            "CreatePolicy",
            "CreateDBProxy",
        ];
        writes(since, &emu.calls())
            .into_iter()
            .filter(|w| made.contains(&w.split(' ').next().unwrap_or_default()))
            .collect()
    };
    let creating = |out: &Out| {
        let lines: Vec<&str> = out
            .stdout
            .lines()
            .filter(|l| l.contains("creating "))
            .collect();
        assert!(lines.is_empty(), "{lines:#?}\n{}", out.stdout);
    };

    ws.write_runbook(|s| {
        edit(
            &s,
            "Project = \"AWSCookbook403\"",
            "Project = \"AWSCookbook403\"\nTeam = \"platform\"",
        )
    });
    let calls = emu.calls();
    let out = ws.run(&["run", "--yes"]);
    out.ok()
        .stdout_has("proxy-role: updating IAM role")
        .stdout_has("proxy-security-group: updating the tags of security group")
        .stdout_has("✓ proxy-role updated in place")
        .stdout_has("✓ proxy-security-group updated in place");
    creating(&out);
    assert_eq!(creates(&calls), Vec::<String>::new(), "a tag added");
    let written = writes(&calls, &emu.calls());
    for call in ["TagRole", "CreateTags"] {
        assert!(written.iter().any(|w| w.starts_with(call)), "{written:?}");
    }

    // The trust policy alone: another service trusted too.
    let trust = ws.dir.join("policies/rds-proxy-trust-policy.json");
    let text = std::fs::read_to_string(&trust).unwrap();
    let wider = edit(
        &text,
        "\"Service\": \"rds.amazonaws.com\"",
        "\"Service\": [\"rds.amazonaws.com\", \"lambda.amazonaws.com\"]",
    );
    std::fs::write(&trust, wider).unwrap();
    ws.run(&["plan"])
        .ok()
        .stdout_has("~ proxy-role")
        .stdout_has("trust policy: ");
    let calls = emu.calls();
    let out = ws.run(&["run", "--yes"]);
    out.ok()
        .stdout_has("proxy-role: updating IAM role")
        .stdout_has("✓ proxy-role updated in place");
    creating(&out);
    assert_eq!(creates(&calls), Vec::<String>::new(), "the trust policy");
    let written = writes(&calls, &emu.calls());
    assert!(
        written
            .iter()
            .any(|w| w.starts_with("UpdateAssumeRolePolicy")),
        "{written:?}"
    );
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");

    std::fs::write(&trust, text).unwrap();
    ws.run(&["rollback", "--yes"]).ok();
    assert_same(&before, &snapshot(&emu, &ws), "rollback after the edits");
}
