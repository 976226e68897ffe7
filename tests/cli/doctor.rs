//! `doctor` on a running proxy: its figures and its log, as the emulator's
//! proxy writes them while it carries the functions' real connections.

use super::*;

/// Sets the invoke check's payload (what the book's function is asked to
/// do: `{"set_session": true}`, `{"tls": false}`).
fn payload(ws: &Workspace, payload: &str) {
    let payload = payload.replace('"', "\\\"");
    ws.write_runbook(|s| {
        edit(
            &s,
            "[invoke_check]\npayload = \"{}\"",
            &format!("[invoke_check]\npayload = \"{payload}\""),
        )
    });
}

#[test]
fn doctor_reports_a_running_proxy_and_explains_pinning() {
    let (_emu, ws) = setup("doctor");
    ws.run(&["doctor"])
        .code(1)
        .stderr_has("there is no DB proxy")
        .stderr_has("run the runbook first");
    ws.run(&["run", "--yes"]).ok();
    let proxy = format!("{}-db", ws.prefix);
    // The invoke check's connection, counted by the proxy: one client, one
    // DB connection of the 60 a db.t3.micro allows, no session pinned.
    ws.run(&["doctor"])
        .ok()
        .stdout_has(&format!("DB proxy {proxy} in us-east-1: available"))
        .stdout_has("engine MYSQL, TLS required, IAM auth REQUIRED")
        .stdout_has("IdleClientTimeout 1800s")
        .stdout_has(&format!("{}: AVAILABLE", proxy))
        .stdout_has("Pool: MaxConnectionsPercent 100")
        .stdout_has(
            "DB: max_connections 60 (estimated for db.t3.micro); the pool may open 60 (100%)",
        )
        .stdout_has("ClientConnections: average")
        .stdout_has("DatabaseConnections: average 1.0, maximum 1.0")
        .stdout_has("MaxDatabaseConnectionsAllowed: average 60.0, maximum 60.0")
        .stdout_has("DatabaseConnectionsCurrentlySessionPinned: average 0.0, maximum 0.0")
        .stdout_has("QueryRequests: ")
        .stdout_has(" in all");
    // A function that sets a user variable (seed 004's ORM sets its
    // encoding on connect): the proxy pins its session.
    payload(&ws, r#"{"set_session": true}"#);
    ws.run(&["run", "--yes", "--step", "invoke-check"]).ok();
    ws.run(&["doctor"])
        .ok()
        .stdout_has("DatabaseConnectionsCurrentlySessionPinned: average")
        .stdout_has("maximum 1.0")
        .stdout_has("up to 1 DB connections were pinned to one client")
        .stdout_has("long transactions and batch jobs")
        .stdout_has("session_pinning_filters = [\"EXCLUDE_VARIABLE_SETS\"]")
        .stdout_has(
            "the client session was pinned to its DB connection (it set session state) (1 \
             time(s) in the proxy's log",
        );
}

/// The proxy's log read after a failed invoke check, and by doctor: the
/// failure named with its fix. The lines are the proxy's own.
#[test]
fn the_invoke_check_and_doctor_name_what_the_proxys_log_shows() {
    let (_emu, ws) = setup("proxy_log");
    let proxy = format!("{}-db", ws.prefix);
    ws.run(&["run", "--yes"]).ok();
    ws.run(&["doctor"])
        .ok()
        .stdout_has(&format!("Log /aws/rds/proxy/{proxy}, the last hour: "))
        .stdout_has("no failure the tool knows");
    // A function that connects without TLS, which this proxy requires.
    payload(&ws, r#"{"tls": false}"#);
    ws.run(&["run", "--yes", "--step", "invoke-check"])
        .code(1)
        .stderr_has("This RDS Proxy requires TLS connections.")
        .stderr_has("the proxy's log since the invocation: clients connected without TLS")
        .stderr_has("fix: connect with TLS");
    ws.run(&["doctor"]).ok().stdout_has(
        "clients connected without TLS while the proxy requires it (IAM tokens travel over \
             TLS only) (1 time(s)",
    );
}
