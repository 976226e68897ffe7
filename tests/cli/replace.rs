//! Replacement (`--allow-replace`): an edit that only a new resource can
//! carry out (a proxy's name, its subnets with a new name) makes the new one
//! beside the old, the functions move to it once it is healthy, and only
//! then is the old one deleted. A watch checks every function all along: on
//! the DB or on a live proxy whose group admits it and whose `prx-` id its
//! role's policy allows.

use super::update::{applied, writes};
use super::*;

/// The way in a function on the proxy needs, for the watch.
fn paths(ws: &Workspace) -> Paths {
    Paths {
        proxy_sg: ws.output("proxy-security-group", "group_id"),
        policy_arn: ws.output("connect-policy", "arn"),
        functions: [(
            ws.env["DB_APP_FUNCTION_NAME"].clone(),
            (
                ws.env["DB_APP_FUNCTION_SG_ID"].clone(),
                ws.env["DB_APP_FUNCTION_ROLE_NAME"].clone(),
            ),
        )]
        .into_iter()
        .collect(),
    }
}

fn proxies(snap: &Snapshot) -> Vec<&String> {
    snap.keys().filter(|k| k.starts_with("db proxy ")).collect()
}

const NAME: &str = "name = \"${env.DB_NAME}\"";
const RENAMED: &str = "name = \"${env.DB_NAME}-v2\"";

#[test]
fn a_renamed_proxy_is_made_beside_the_old_which_goes_once_the_functions_moved() {
    let (emu, ws, before, db_host) = applied("replace_proxy", &[]);
    let p = ws.prefix.clone();
    let function = ws.env["DB_APP_FUNCTION_NAME"].clone();
    let old_endpoint = ws.output("proxy", "endpoint");
    let applied = snapshot(&emu, &ws);
    ws.write_edited(NAME, RENAMED);

    // Never without asking: refused before any write, with the way on.
    let calls = emu.calls();
    ws.run(&["run", "--yes"])
        .code(3)
        .stderr_has("proxy: name: ")
        .stderr_has("--allow-replace");
    ws.run(&["plan"])
        .code(3)
        .stdout_has("-/+ proxy")
        .stdout_has("replace (refused)");
    if emu.has_rules("a_renamed_proxy_is_made_beside_the_old") {
        assert_eq!(writes(&calls, &emu.calls()), Vec::<String>::new());
    }
    assert_same(&applied, &snapshot(&emu, &ws), "refused");
    ws.run(&["plan", "--allow-replace"])
        .ok()
        .stdout_has("-/+ proxy")
        .stdout_has("replace: a new one beside the old")
        .stdout_has(&format!("name: {p}-db -> {p}-db-v2"))
        .stdout_has("interrupts: nothing while the new proxy is made")
        .stdout_has("1 to replace");

    let watch = HostWatch::start_with(
        &emu,
        std::slice::from_ref(&function),
        "DB_HOST",
        &db_host,
        Some(paths(&ws)),
    );
    ws.run(&["run", "--yes", "--allow-replace"])
        .ok()
        .stdout_has("Replacing proxy (name: ")
        .stdout_has("(moves to the new proxy)")
        .stdout_has("deleting what was replaced: proxy, targets")
        .stdout_has("✓ proxy replaced, the old one deleted: deleted DB proxy");
    watch.assert_always_working("the proxy's replacement");
    let endpoint = ws.output("proxy", "endpoint");
    assert_ne!(endpoint, old_endpoint, "a new proxy");
    assert_eq!(
        function_variable(&emu, &function, "DB_HOST").as_deref(),
        Some(endpoint.as_str())
    );
    let snap = snapshot(&emu, &ws);
    assert_eq!(
        proxies(&snap),
        [&format!("db proxy {p}-db-v2")],
        "the old one is gone"
    );
    // And the anomaly detection models our alarms made on it: the alarms
    // watch the new proxy now, and the run's last pass deleted them.
    let old_models: Vec<&String> = snap
        .keys()
        .filter(|k| k.starts_with("anomaly model ") && k.ends_with(&format!("ProxyName={p}-db")))
        .collect();
    assert!(old_models.is_empty(), "left behind: {old_models:?}");
    assert!(
        snap.keys().any(
            |k| k.starts_with("anomaly model ") && k.ends_with(&format!("ProxyName={p}-db-v2"))
        ),
        "the new proxy's models: {snap:?}"
    );
    let policy = &snap[&format!("iam policy {p}-connect")];
    let id = ws.output("proxy", "id");
    assert!(policy.field("versions").contains(&id), "{policy}");
    let state = ws.state_json();
    assert!(state["steps"]["proxy"].get("retired").is_none(), "{state}");
    assert_eq!(
        state["steps"]["lambda-env"]["before"][format!("{function}.DB_HOST")],
        db_host.as_str(),
        "the value from before the first run is kept"
    );
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
    ws.run(&["rollback", "--yes"]).ok();
    assert_same(
        &before,
        &snapshot(&emu, &ws),
        "rollback after a replacement",
    );
}

#[test]
fn new_subnets_need_a_new_name_and_what_follows_the_proxy_needs_a_new_proxy() {
    let (emu, mut ws, before, db_host) = applied("replace_subnets", &[]);
    let p = ws.prefix.clone();
    let function = ws.env["DB_APP_FUNCTION_NAME"].clone();
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
    let subnets = (
        "subnet_ids = \"${env.ISOLATED_SUBNETS}\"",
        "subnet_ids = \"${env.OTHER_SUBNETS}\"",
    );
    let applied = snapshot(&emu, &ws);

    // The same name: the new proxy cannot have it while the old one lives.
    // The first message says all of it, with --allow-replace or without:
    // what forces a new proxy, that it needs a new name and why, where,
    // and the commands.
    ws.write_edited(subnets.0, subnets.1);
    let name_at = format!("change `proxy.name` ({}:", ws.runbook.display());
    let commands = |out: &Out, text: &str| {
        for says in [
            "subnets: {",
            "needs another name",
            "keeps its name and serves the functions until they have moved to the new one",
            name_at.as_str(),
            &format!("`rds-proxy-runbook plan {} ", ws.runbook.display()),
            &format!("`rds-proxy-runbook run {} ", ws.runbook.display()),
            "--allow-replace`",
        ] {
            assert!(text.contains(says), "lacks {says:?}: {out:#?}");
        }
    };
    for args in [&["run", "--yes"][..], &["run", "--yes", "--allow-replace"]] {
        let out = ws.run(args);
        out.code(3).stderr_has("proxy: subnets: ");
        commands(&out, &out.stderr);
    }
    for args in [&["plan"][..], &["plan", "--allow-replace"]] {
        let out = ws.run(args);
        out.code(3).stdout_has("replace (refused)");
        commands(&out, &out.stdout);
    }
    // The role renamed alone: the proxy would switch roles in place; said
    // at once, --allow-replace or not.
    let role = format!("name = \"{p}-proxy-role\"");
    ws.write_edited(&role, &format!("name = \"{p}-proxy-role-2\""));
    for args in [&["run", "--yes"][..], &["run", "--yes", "--allow-replace"]] {
        ws.run(args)
            .code(3)
            .stderr_has("proxy-role: role_name: ")
            .stderr_has("only be made safely together with a new proxy")
            .stderr_has("Give the proxy a new name as well (`proxy.name` at ")
            .stderr_has("--allow-replace` and make it with `");
    }
    ws.run(&["plan"])
        .code(3)
        .stdout_has("Give the proxy a new name as well (`proxy.name` at ");
    // Part of the runbook only: a replacement is a whole run.
    ws.write_edited(NAME, RENAMED);
    ws.run(&["run", "--yes", "--allow-replace", "--step", "proxy"])
        .code(2)
        .stderr_has("run without --step");
    assert_same(&applied, &snapshot(&emu, &ws), "refused");

    // New subnets, a new name, and the role with it: all beside the old.
    ws.write_runbook(|s| {
        let s = edit(&s, NAME, RENAMED);
        let s = edit(&s, subnets.0, subnets.1);
        edit(&s, &role, &format!("name = \"{p}-proxy-role-2\""))
    });
    // Every field the new proxy changes: the name, and the subnets that
    // forced it.
    let (old_subnets, new_subnets) = (
        ws.env["ISOLATED_SUBNETS"].replace(' ', "\",\""),
        ws.env["OTHER_SUBNETS"].replace(' ', "\",\""),
    );
    ws.run(&["plan", "--allow-replace"])
        .ok()
        .stdout_has("-/+ proxy-role")
        .stdout_has("-/+ proxy ")
        .stdout_has(&format!("name: {p}-db -> {p}-db-v2"))
        .stdout_has(&format!(
            "subnet_ids: [\"{old_subnets}\"] -> [\"{new_subnets}\"]"
        ));
    let watch = HostWatch::start_with(
        &emu,
        std::slice::from_ref(&function),
        "DB_HOST",
        &db_host,
        Some(paths(&ws)),
    );
    ws.run(&["run", "--yes", "--allow-replace"])
        .ok()
        .stdout_has("deleting what was replaced: ");
    watch.assert_always_working("a replacement with new subnets and a new role");
    let snap = snapshot(&emu, &ws);
    assert_eq!(proxies(&snap), [&format!("db proxy {p}-db-v2")]);
    let (subnets, role_arn) = runtime().block_on(async {
        let out = aws_sdk_rds::Client::new(&config)
            .describe_db_proxies()
            .db_proxy_name(format!("{p}-db-v2"))
            .send()
            .await
            .unwrap();
        let proxy = &out.db_proxies()[0];
        let role = proxy.role_arn().unwrap_or_default().to_string();
        (proxy.vpc_subnet_ids().to_vec(), role)
    });
    assert!(subnets.contains(&third), "{subnets:?}");
    assert!(
        role_arn.ends_with(&format!("role/{p}-proxy-role-2")),
        "{role_arn}"
    );
    assert!(snap.contains_key(&format!("iam role {p}-proxy-role-2")));
    assert!(
        !snap.contains_key(&format!("iam role {p}-proxy-role")),
        "the old role went with the old proxy: {snap:#?}"
    );
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
    ws.run(&["rollback", "--yes"]).ok();
    assert_same(&before, &snapshot(&emu, &ws), "rollback after it");
}

/// A function outside the runbook that someone pointed at the old proxy by
/// hand: the replacement makes the new proxy and moves the runbook's
/// functions, but keeps the old proxy and its way in (its policy statement)
/// and says so; once that function moves, the next run deletes the old one.
#[test]
fn a_function_left_on_the_old_proxy_keeps_it_and_its_way_in() {
    let (emu, ws, before, db_host) = applied("replace_kept", &["reports"]);
    let p = ws.prefix.clone();
    let reports = ws.env["REPORTS_FUNCTION_NAME"].clone();
    let old_endpoint = ws.output("proxy", "endpoint");
    let old_id = ws.output("proxy", "id");
    set_function_variable(&emu, &reports, "DB_HOST", Some(&old_endpoint));
    ws.write_edited(NAME, RENAMED);
    ws.run(&["run", "--yes", "--allow-replace"])
        .code(1)
        .stderr_has(&format!(
            "DB_HOST of Lambda function {reports} still point(s) at proxy `{p}-db`"
        ))
        .stderr_has("the replaced proxy and its way in were kept");
    let snap = snapshot(&emu, &ws);
    assert_eq!(proxies(&snap).len(), 2, "both proxies: {snap:#?}");
    let policy = snap[&format!("iam policy {p}-connect")].field("versions");
    let default = policy.split("default=true").nth(1).unwrap_or_default();
    assert!(
        default.contains(&old_id),
        "the old proxy is still allowed: {policy}"
    );
    assert_eq!(
        function_variable(&emu, &ws.env["DB_APP_FUNCTION_NAME"], "DB_HOST"),
        Some(ws.output("proxy", "endpoint")),
        "the runbook's function moved"
    );
    // Moved by its owner: the next run finishes the replacement.
    set_function_variable(&emu, &reports, "DB_HOST", Some(&db_host));
    ws.run(&["run", "--yes", "--allow-replace"])
        .ok()
        .stdout_has("✓ proxy replaced, the old one deleted");
    assert_eq!(
        proxies(&snapshot(&emu, &ws)),
        [&format!("db proxy {p}-db-v2")]
    );
    ws.run(&["rollback", "--yes"]).ok();
    assert_same(&before, &snapshot(&emu, &ws), "rollback after it");
}
