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
    killed_anywhere(false);
}

/// The same with the state in S3: the killed holder's lock is refused,
/// named and removed by its id before the resume or rollback.
#[test]
fn a_reader_endpoint_killed_anywhere_with_the_state_in_s3() {
    killed_anywhere(true);
}

fn killed_anywhere(s3: bool) {
    let emu = Emulator::start();
    for point in ["before-apply", "wait", "after-apply"] {
        for then in ["resume", "rollback"] {
            let ws = emu.workspace_for(&format!("ep_{}_{then}", point.len()), RUNBOOK, SEED);
            let ws = if s3 { ws.in_s3() } else { ws };
            let before = snapshot(&emu, &ws);
            let out = ws
                .cmd(&["run", "--yes"])
                .env(
                    "RDS_PROXY_RUNBOOK_FAILPOINT",
                    format!("proxy-endpoints:{point}"),
                )
                .bounded_output();
            assert_eq!(out.status.signal(), Some(6), "{point} did not abort");
            if s3 {
                super::crash::unlock_left(&ws);
            }
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

/// A reader endpoint in a security group of its own: lambda-ingress admits
/// the function that reads it there (the group is not the proxy's, which
/// admits it already). Moved back to the proxy's group, the rule goes in
/// the run's second pass; rollback leaves exactly what was there.
#[test]
fn an_endpoint_in_its_own_group_admits_the_functions_that_read_it() {
    let emu = Emulator::start();
    let ws = emu.workspace_for("ep_own_sg", RUNBOOK, SEED);
    let name = format!("{}-ro-sg", ws.prefix);
    let config = emu.sdk_config();
    let group = runtime().block_on(async {
        aws_sdk_ec2::Client::new(&config)
            .create_security_group()
            .group_name(&name)
            .description("the reader endpoint's own group")
            .vpc_id(&ws.env["VPC_ID"])
            .send()
            .await
            .expect("create the endpoint's group")
            .group_id
            .expect("a group id")
    });
    let lambda_sg = ws.env["DB_APP_FUNCTION_SG_ID"].clone();
    let group_line = |snap: &Snapshot| {
        snap.iter()
            .find(|(k, _)| k.ends_with(&group))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no group {group}: {snap:?}"))
    };
    let before = snapshot(&emu, &ws);
    assert_eq!(group_line(&before).field("ingress"), "[]");
    let own = format!("target_role = \"READ_ONLY\"\nsecurity_group_ids = [\"{group}\"]\n");
    ws.write_runbook(|s| edit(&s, "target_role = \"READ_ONLY\"\n", &own));
    ws.run(&["plan"])
        .ok()
        .stdout_has(&format!("endpoint group {group} admits "));
    ws.run(&["run", "--yes"]).ok();
    let line = group_line(&snapshot(&emu, &ws));
    assert!(
        line.field("ingress").contains("tcp:Some(5432)-Some(5432)")
            && line.field("ingress").contains(&lambda_sg),
        "the reader's function is admitted on the DB port: {line}"
    );
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
    // Back in the proxy's group: the endpoint's groups change in place, and
    // the rule in its own group is revoked once the run's first pass is done.
    ws.write_runbook(|s| s);
    ws.run(&["plan"])
        .ok()
        .stdout_has(&format!("{group} from {lambda_sg} on TCP 5432: our rule"));
    ws.run(&["run", "--yes"]).ok();
    assert!(
        group_line(&snapshot(&emu, &ws)).field("ingress") == "[]",
        "the rule is gone"
    );
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
    ws.write_runbook(|s| edit(&s, "target_role = \"READ_ONLY\"\n", &own));
    ws.run(&["run", "--yes"]).ok();
    ws.run(&["rollback", "--yes"]).ok();
    assert_same(&before, &snapshot(&emu, &ws), "rollback left a difference");
}
