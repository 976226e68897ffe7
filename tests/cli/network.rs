//! The proxy's network types (`endpoint_network_type`,
//! `target_connection_network_type`): set when the proxy is made, so a
//! change is a replacement; IPv6 needs dual-stack subnets (the endpoint)
//! and a dual-stack DB (the target), which preflight checks and the
//! emulator enforces as AWS does.

use super::*;

const IAM: &str = "iam_auth = \"REQUIRED\"\n";

fn with_networks(endpoint: &str, target: &str) -> impl FnOnce(String) -> String {
    let to = format!(
        "{IAM}endpoint_network_type = \"{endpoint}\"\ntarget_connection_network_type = \"{target}\"\n"
    );
    move |s| edit(&s, IAM, &to)
}

#[test]
fn a_dual_stack_proxy_runs_reruns_and_a_network_change_needs_a_new_proxy() {
    let emu = Emulator::start();
    let ws = emu.workspace_for("dual_stack", "cookbook-4.3-mysql.toml", &["--dual-stack"]);
    ws.write_runbook(with_networks("DUAL", "IPV6"));
    let before = snapshot(&emu, &ws);
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has("clients over DUAL, the DB over IPV6")
        .stdout_has(&format!("Done: {} step(s) applied", ALL_STEPS - 1));
    let line = &snapshot(&emu, &ws)[&format!("db proxy {}-db", ws.prefix)];
    assert!(
        line.field("network") == "Some(\"DUAL\")/Some(\"IPV6\")",
        "{line}"
    );
    ws.run(&["run", "--yes"]).ok().stdout_has(&format!(
        "No changes: {ALL_STEPS} step(s) checked, all already done"
    ));
    // AWS cannot change a proxy's network types: refused, nothing changed.
    let applied = snapshot(&emu, &ws);
    ws.write_runbook(with_networks("IPV4", "IPV6"));
    ws.run(&["plan"])
        .code(3)
        .stdout_has("-/+ proxy")
        .stdout_has("endpoint network type: DUAL -> IPV4");
    ws.run(&["run", "--yes"])
        .code(3)
        .stderr_has("endpoint network type: DUAL -> IPV4")
        .stderr_has("--allow-replace");
    assert_same(
        &applied,
        &snapshot(&emu, &ws),
        "a refused change went through",
    );
    ws.run(&["rollback", "--yes"]).ok();
    assert_same(&before, &snapshot(&emu, &ws), "rollback left a difference");
}

#[test]
fn ipv6_without_dual_stack_subnets_and_db_is_refused_before_any_change() {
    let emu = Emulator::start();
    let ws = emu.workspace_for("ipv4_only", "cookbook-4.3-mysql.toml", &[]);
    ws.write_runbook(with_networks("IPV6", "IPV6"));
    let before = snapshot(&emu, &ws);
    ws.run(&["run", "--yes"])
        .code(5)
        .stdout_has("endpoint_network_type = \"IPV6\" needs dual-stack subnets")
        .stdout_has("target_connection_network_type = \"IPV6\" needs a dual-stack DB")
        .stdout_has("aws ec2 associate-subnet-cidr-block");
    assert_same(
        &before,
        &snapshot(&emu, &ws),
        "a refused run changed something",
    );
}
