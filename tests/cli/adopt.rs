//! Adoption of a setup made by hand (the cookbook's, without our tag):
//! `adopt` shows what it finds and changes nothing; once adopted, the
//! resources are managed (updated in place, never tagged as ours unasked),
//! `rollback` leaves them (putting a function back only when the runbook
//! says to what), and `rollback --include-adopted` deletes them as if the
//! runbook had made them.

use std::path::Path;

use super::*;

/// The cookbook made by hand under the workspace's names (see
/// tests/support/by_hand.py).
pub(super) fn made_by_hand(emu: &Emulator, ws: &Workspace) {
    let out = std::process::Command::new(Path::new(ROOT).join("localstack/.venv/bin/python"))
        .arg(Path::new(ROOT).join("tests/support/by_hand.py"))
        .arg(&ws.prefix)
        .envs(emu.aws_env())
        .envs(ws.env.iter())
        .output()
        .expect("run by_hand.py");
    assert!(
        out.status.success(),
        "by_hand.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The book describes its group otherwise; a runbook that adopts it says so.
const BOOK_GROUP: (&str, &str) = (
    "description = \"RDS Proxy security group (AWS Cookbook 4.3)\"",
    "description = \"Lambda Security Group\"",
);

#[test]
fn a_setup_made_by_hand_is_adopted_managed_and_undone_only_on_request() {
    let emu = Emulator::start();
    let ws = emu.workspace("adopt_hand");
    let p = ws.prefix.clone();
    let function = ws.env["DB_APP_FUNCTION_NAME"].clone();
    let db_host = function_variable(&emu, &function, "DB_HOST").unwrap();
    let untouched = snapshot(&emu, &ws);
    made_by_hand(&emu, &ws);
    let by_hand = snapshot(&emu, &ws);
    let endpoint = function_variable(&emu, &function, "DB_HOST").unwrap();
    let owner = "rds-proxy-runbook:runbook=";

    // Without adopting: blocked, and the way is named.
    ws.write_edited(BOOK_GROUP.0, BOOK_GROUP.1);
    ws.run(&["run", "--yes"])
        .code(5)
        .stdout_has("take it over with `adopt`");
    ws.run(&["adopt"])
        .code(2)
        .stdout_has("~ proxy-role")
        .stderr_has("pass --yes");
    ws.run(&["adopt", "--yes"])
        .ok()
        .stdout_has("tag Project: (none) -> AWSCookbook403")
        .stdout_has("+ secret-access")
        .stdout_has("~ proxy ")
        .stdout_has("= lambda-env")
        .stdout_has("Adopted 8 step(s)");
    assert_same(&by_hand, &snapshot(&emu, &ws), "adopt changes nothing");
    ws.run(&["adopt", "--yes"])
        .ok()
        .stdout_has("already in this state (adopted)")
        .stdout_has("Nothing to adopt");
    ws.run(&["plan"])
        .ok()
        .stdout_has("update in place")
        .stdout_has("(adopted as found: `run` brings it to the runbook)");

    // Managed: brought to the runbook and updated in place, never tagged
    // as ours unasked.
    ws.write_runbook(|s| {
        let s = edit(&s, BOOK_GROUP.0, BOOK_GROUP.1);
        edit(
            &s,
            "require_tls = true\n",
            "require_tls = true\nidle_client_timeout = 300\n",
        )
    });
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has("✓ proxy updated in place")
        .stdout_has("✓ secret-access created");
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
    let snap = snapshot(&emu, &ws);
    let role = &snap[&format!("iam role {p}-proxy-role")];
    assert!(role.contains("Project=AWSCookbook403"), "{role}");
    assert!(!role.contains(owner), "tagged unasked: {role}");
    let proxy = &snap[&format!("db proxy {p}-db")];
    assert!(proxy.contains("idle_client_timeout=Some(300)"), "{proxy}");

    // Rollback leaves what was adopted: the function stays on the proxy
    // (its old value is unknown), so what the proxy needs stays too.
    ws.run(&["rollback", "--yes"])
        .code(5)
        .stderr_has("still point(s) at proxy");
    ws.write_runbook(|s| {
        let s = edit(&s, BOOK_GROUP.0, BOOK_GROUP.1);
        let s = edit(
            &s,
            "require_tls = true\n",
            "require_tls = true\nidle_client_timeout = 300\n",
        );
        edit(
            &s,
            "env_var = \"DB_HOST\"\n",
            &format!("env_var = \"DB_HOST\"\nrestore_value = \"{db_host}\"\n"),
        )
    });
    ws.run(&["run", "--yes"]).ok();
    ws.run(&["rollback", "--yes"])
        .ok()
        .stdout_has("left alone: adopted");
    assert_eq!(
        function_variable(&emu, &function, "DB_HOST").as_deref(),
        Some(db_host.as_str()),
        "the runbook said what to put back"
    );
    let snap = snapshot(&emu, &ws);
    let role = &snap[&format!("iam role {p}-proxy-role")];
    assert!(role.contains("SecretsManagerReadWrite"), "{role}");
    assert!(role.contains("inline=[]"), "ours is gone: {role}");
    assert!(snap.contains_key(&format!("db proxy {p}-db")), "{snap:#?}");
    assert_eq!(
        snap.keys().filter(|k| k.starts_with("iam policy")).count(),
        1,
        "{snap:#?}"
    );

    // Adopted again and undone with it: the account is as before the
    // colleague's work (their rules revoked though untagged).
    set_function_variable(&emu, &function, "DB_HOST", Some(&endpoint));
    ws.run(&["adopt", "--yes"])
        .ok()
        .stdout_has("Adopted 8 step(s)");
    ws.run(&["rollback", "--yes", "--include-adopted"]).ok();
    assert_same(
        &untouched,
        &snapshot(&emu, &ws),
        "rollback --include-adopted",
    );

    // Made by hand once more, adopted with our tag on request.
    made_by_hand(&emu, &ws);
    ws.run(&["adopt", "--yes", "--tag"])
        .ok()
        .stdout_has("Adopted 8 step(s)");
    let snap = snapshot(&emu, &ws);
    let role = &snap[&format!("iam role {p}-proxy-role")];
    for line in [role.as_str(), proxy_sg_line(&snap, &ws)] {
        assert!(line.contains(&format!("{owner}{p}")), "{line}");
    }
    ws.run(&["rollback", "--yes", "--include-adopted"]).ok();
    assert_same(&untouched, &snapshot(&emu, &ws), "rollback of the tagged");
}
