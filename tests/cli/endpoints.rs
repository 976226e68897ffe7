//! The proxy's other endpoints (`[[endpoint]]`, the `proxy-endpoints`
//! step) with a function's reader variable (`read_env_var`), on the shipped
//! Aurora runbook: killed anywhere, resumed or rolled back exactly; an
//! endpoint dropped from the runbook goes only after the function's reader
//! variable is back.

use std::os::unix::process::ExitStatusExt;

use super::*;

const SEED: &[&str] = &["--engine", "aurora-postgresql", "--iam-db-auth"];
const RUNBOOK: &str = "aurora-postgresql-iam.toml";

fn endpoints(snap: &Snapshot) -> Vec<&String> {
    snap.keys()
        .filter(|k| k.starts_with("db proxy endpoint "))
        .collect()
}

#[test]
fn a_reader_endpoint_killed_anywhere_resumes_or_rolls_back_exactly() {
    let emu = Emulator::start();
    for point in ["before-apply", "wait", "after-apply"] {
        for then in ["resume", "rollback"] {
            let ws = emu.workspace_for(&format!("ep_{}_{then}", point.len()), RUNBOOK, SEED);
            let before = snapshot(&emu, &ws);
            let out = ws
                .cmd(&["run", "--yes"])
                .env(
                    "RDS_PROXY_RUNBOOK_FAILPOINT",
                    format!("proxy-endpoints:{point}"),
                )
                .bounded_output();
            assert_eq!(out.status.signal(), Some(6), "{point} did not abort");
            let what = format!("killed at proxy-endpoints:{point}, then {then}");
            if then == "resume" {
                ws.run(&["resume", "--yes"]).ok();
                let after = snapshot(&emu, &ws);
                assert_eq!(endpoints(&after).len(), 1, "{what}: {after:?}");
                ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
            }
            ws.run(&["rollback", "--yes"]).ok();
            assert_same(&before, &snapshot(&emu, &ws), &what);
        }
    }
}

#[test]
fn an_endpoint_dropped_from_the_runbook_goes_once_the_reader_variable_is_back() {
    let emu = Emulator::start();
    let ws = emu.workspace_for("ep_drop", RUNBOOK, SEED);
    let function = ws.env["DB_APP_FUNCTION_NAME"].clone();
    ws.run(&["run", "--yes"]).ok();
    let read_host = function_variable(&emu, &function, "DB_READ_HOST").unwrap();
    assert!(read_host.contains("-ro.endpoint.proxy-"), "{read_host}");
    ws.write_runbook(|s| {
        let s = edit(
            &s,
            "[[endpoint]]\nname = \"${env.DB_NAME}-ro\"\ntarget_role = \"READ_ONLY\"\n",
            "",
        );
        edit(
            &s,
            "read_env_var = \"DB_READ_HOST\"",
            "# no reader variable any more",
        )
    });
    ws.run(&["plan"])
        .ok()
        .stdout_has("to delete (no longer in the runbook")
        .stdout_has("DB_READ_HOST");
    ws.run(&["run", "--yes"]).ok().stdout_has(
        "proxy-endpoints: now that every function has moved, removing what the runbook no \
         longer wants",
    );
    assert_eq!(function_variable(&emu, &function, "DB_READ_HOST"), None);
    assert!(endpoints(&snapshot(&emu, &ws)).is_empty());
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
}
