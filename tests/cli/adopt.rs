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
        .bounded_output();
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
    assert!(
        role.field("tags").contains("Project=AWSCookbook403"),
        "{role}"
    );
    assert!(
        !role.field("tags").contains(owner),
        "tagged unasked: {role}"
    );
    let proxy = &snap[&format!("db proxy {p}-db")];
    assert_eq!(proxy.field("idle_client_timeout"), "Some(300)", "{proxy}");

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
        .stdout_has("left alone: adopted")
        .stdout_has("✓ lambda-env restored")
        // The alarms were made by the run after the adoption: ours.
        .stdout_has("✓ alarms deleted CloudWatch alarm(s)")
        .stdout_has("Rolled back 4 of 11 step(s); left in place: ")
        .stdout_has("`rollback --include-adopted` undoes what this state adopted");
    assert_eq!(
        function_variable(&emu, &function, "DB_HOST").as_deref(),
        Some(db_host.as_str()),
        "the runbook said what to put back"
    );
    let snap = snapshot(&emu, &ws);
    let role = &snap[&format!("iam role {p}-proxy-role")];
    assert!(
        role.field("attached").contains("SecretsManagerReadWrite"),
        "{role}"
    );
    assert_eq!(role.field("inline"), "[]", "ours is gone: {role}");
    assert!(snap.contains_key(&format!("db proxy {p}-db")), "{snap:#?}");
    assert_eq!(
        snap.keys().filter(|k| k.starts_with("iam policy")).count(),
        1,
        "{snap:#?}"
    );

    // Adopted again and undone with it: the account is as before the
    // colleague's work (their rules revoked though untagged).
    set_function_variable(&emu, &function, "DB_HOST", Some(&endpoint));
    // Without a value to put back, deleting the adopted proxy would strand
    // the function: refused before any change.
    ws.write_runbook(|s| edit(&s, BOOK_GROUP.0, BOOK_GROUP.1));
    ws.run(&["adopt", "--yes"])
        .ok()
        .stdout_has("Adopted 8 step(s)");
    let adopted = snapshot(&emu, &ws);
    ws.run(&["rollback", "--yes", "--include-adopted"])
        .code(5)
        .stderr_has("still point(s) at proxy");
    assert_same(&adopted, &snapshot(&emu, &ws), "refused");
    ws.write_runbook(|s| {
        let s = edit(&s, BOOK_GROUP.0, BOOK_GROUP.1);
        edit(
            &s,
            "env_var = \"DB_HOST\"\n",
            &format!("env_var = \"DB_HOST\"\nrestore_value = \"{db_host}\"\n"),
        )
    });
    ws.run(&["run", "--yes"]).ok();
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
    for line in [role, proxy_sg_line(&snap, &ws)] {
        assert!(
            line.field("tags").contains(&format!("{owner}{p}")),
            "{line}"
        );
    }
    ws.run(&["rollback", "--yes", "--include-adopted"]).ok();
    assert_same(&untouched, &snapshot(&emu, &ws), "rollback of the tagged");
}

/// A runbook that uses a proxy it does not manage: `proxy` (and the role
/// and group steps) left out, the proxy named by `proxy.name`, the group by
/// value. It adds a function to that proxy and takes it away again, and
/// never touches the proxy; a name that does not exist is refused.
#[test]
fn a_proxy_named_by_value_is_used_and_never_touched() {
    let emu = Emulator::start();
    let ws = emu.workspace_for(
        "by_value",
        "cookbook-4.3-mysql.toml",
        &["--extra-function", "reports"],
    );
    let p = ws.prefix.clone();
    made_by_hand(&emu, &ws);
    let reports = ws.env["REPORTS_FUNCTION_NAME"].clone();
    let db_host = function_variable(&emu, &reports, "DB_HOST").unwrap();
    let endpoint = function_variable(&emu, &ws.env["DB_APP_FUNCTION_NAME"], "DB_HOST").unwrap();
    let by_hand = snapshot(&emu, &ws);
    let config = emu.sdk_config();
    let group = runtime().block_on(async {
        let out = aws_sdk_ec2::Client::new(&config)
            .describe_security_groups()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("group-name")
                    .values(format!("{p}-proxy-sg"))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        out.security_groups()[0].group_id().unwrap().to_string()
    });
    let uses = |proxy: &str| {
        let proxy = proxy.to_string();
        let (group, p) = (group.clone(), p.clone());
        move |s: String| {
            let s = edit(
                &s,
                "steps = [\n  \"proxy-role\",            # 1. IAM role trusted by rds.amazonaws.com\n  \"secret-access\",         # 5. the role may read the DB secret\n  \"proxy-security-group\",  # 2. the proxy's security group\n  \"proxy\",                 # 2. the proxy, waited on until available\n",
                "steps = [\n",
            );
            let s = edit(
                &s,
                "  \"db-ingress\",            # 6. DB SG admits the proxy SG\n  \"targets\",               # 7. register the DB, pool settings, health\n",
                "",
            );
            let s = edit(
                &s,
                "name = \"${env.DB_NAME}\"",
                &format!("name = \"{proxy}\""),
            );
            let s = edit(
                &s,
                "security_group_ids = [\"${steps.proxy-security-group.group_id}\"]",
                &format!("security_group_ids = [\"{group}\"]"),
            );
            let s = edit(&s, "role_arn = \"${steps.proxy-role.arn}\"\n", "");
            let s = edit(
                &s,
                &format!("name = \"{p}-connect\""),
                &format!("name = \"{p}-reports-connect\""),
            );
            edit(
                &s,
                "function_name = \"${env.DB_APP_FUNCTION_NAME}\"\nsecurity_group_id = \"${env.DB_APP_FUNCTION_SG_ID}\"",
                "function_name = \"${env.REPORTS_FUNCTION_NAME}\"",
            )
        }
    };
    ws.write_runbook(uses("no-such-proxy"));
    ws.run(&["plan"]).code(3).stderr_has(
        "(named by `proxy.name`, used as it is since `proxy` is not in `steps`) does not exist",
    );
    ws.write_runbook(uses(&ws.env["DB_NAME"]));
    ws.run(&["preflight"])
        .ok()
        .stdout_has("exists (used as it is, not managed here)");
    ws.run(&["plan"]).ok().stdout_has("+ connect-policy");
    ws.run(&["run", "--yes"]).ok();
    assert_eq!(
        function_variable(&emu, &reports, "DB_HOST").as_deref(),
        Some(endpoint.as_str())
    );
    let snap = snapshot(&emu, &ws);
    let proxy = &snap[&format!("db proxy {}", ws.env["DB_NAME"])];
    assert_eq!(
        proxy,
        &by_hand[&format!("db proxy {}", ws.env["DB_NAME"])],
        "untouched"
    );
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
    ws.run(&["rollback", "--yes"]).ok();
    assert_same(
        &by_hand,
        &snapshot(&emu, &ws),
        "rollback of what used the proxy",
    );
    assert_eq!(function_variable(&emu, &reports, "DB_HOST"), Some(db_host));
}
