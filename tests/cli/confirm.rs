//! `run --confirm` through a pseudo-terminal.

use super::*;

/// `run --confirm` on a terminal: each step's plan and a question; "no"
/// skips the step and holds back what needs it, "continue" stops asking.
#[test]
fn confirm_asks_before_each_step_and_skips_on_no() {
    let (_emu, ws) = setup("confirm");
    let answering = |answers: &str| answering_with(&ws, answers, &[]);
    // proxy-role, proxy-security-group, secret-access and proxy yes (a new
    // proxy does not wait on secret-access: it is ready as soon as the group
    // is, before db-ingress), db-ingress no, then go on.
    answering("y,y,y,y,n,c")
        .ok()
        .stdout_has("proxy-role (to create): IAM role")
        .stdout_has("    trust policy: {")
        .stdout_has("Run it? [y]es / [n]o, skip it / [c]ontinue without asking: ")
        .stdout_has("- db-ingress skipped (answered no)")
        .stdout_has("✓ proxy created")
        .stdout_has("5 step(s) not run (1 answered no, the rest wait on them)");
    let status = |s: &str| {
        ws.state_json()["steps"][s]["status"]
            .as_str()
            .unwrap_or("pending")
            .to_string()
    };
    assert_eq!(status("proxy"), "applied");
    assert_eq!(status("db-ingress"), "pending");
    assert_eq!(status("targets"), "pending", "targets needs db-ingress");
    assert_eq!(status("alarms"), "pending", "alarms come after targets");
    assert_eq!(status("lambda-env"), "pending");

    // Nobody answers: it stops before acting.
    answering("").code(1).stdout_has("no answer (end of input)");
    assert_eq!(status("db-ingress"), "pending");
    // Off a terminal there is no one to ask.
    ws.run(&["run", "--confirm"])
        .code(2)
        .stderr_has("--confirm asks on the terminal");
    answering("y,c")
        .ok()
        .stdout_has("db-ingress (to create)")
        .stdout_has("Done: 4 step(s) applied, 6 already done; 1 verification(s) passed.");

    // A replacement is asked for by name, with what it replaces.
    ws.write_edited("name = \"${env.DB_NAME}\"", "name = \"${env.DB_NAME}-v2\"");
    answering_with(&ws, "n", &["--allow-replace"])
        .ok()
        .stdout_has("proxy (to replace): DB proxy ")
        .stdout_has(&format!(
            "replaces DB proxy {}-db (MYSQL, TLS required, IAM auth REQUIRED) in 2 subnets: \
             the old one is deleted once every function has moved",
            ws.prefix
        ))
        .stdout_has("- proxy skipped (answered no)");
}

/// `run --confirm ARGS` on a terminal, typing `answers`.
fn answering_with(ws: &Workspace, answers: &str, args: &[&str]) -> Out {
    let mut c =
        std::process::Command::new(std::path::Path::new(ROOT).join("localstack/.venv/bin/python"));
    c.arg(std::path::Path::new(ROOT).join("tests/support/answer.py"))
        .arg(answers)
        .arg("--")
        .arg(BIN)
        .args(["run", "--confirm", "--state"])
        .arg(&ws.state)
        .arg(&ws.runbook)
        .args(args)
        .env_remove("AWS_PROFILE")
        .envs(ws.emu_env.iter().cloned())
        .envs(ws.env.iter());
    Out::from(c.bounded_output())
}
