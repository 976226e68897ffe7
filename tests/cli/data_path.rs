//! The recipe's promise end to end: the function's own code runs, makes an
//! IAM token, connects over TLS to the proxy, which checks what AWS checks
//! and logs in to a real database server with its secret; the invoke check
//! passes only on the row the seed wrote there. Each failure users meet,
//! made by hand on a working setup, is named by the invoke check with its
//! cause and fix.

use super::*;
use std::time::Duration;

/// A by-hand change to the account, through the SDK; its answer (the
/// probe's tests break the wiring with it too).
pub(crate) fn by_hand<T, F, Fut>(emu: &Emulator, change: F) -> T
where
    F: FnOnce(aws_config::SdkConfig) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    runtime().block_on(change(emu.sdk_config()))
}

/// The runbook as the shipped one, with a pool whose clients wait at most
/// 2 s for a DB connection (a proxy that cannot log in keeps them waiting
/// that long; AWS's default is 120 s), a retry window of 3 s for a refused
/// login, the invoke check's `payload`, and `edit` on top.
fn write(ws: &Workspace, payload: &str, edit_more: impl FnOnce(String) -> String) {
    let payload = payload.replace('"', "\\\"");
    ws.write_runbook(|s| {
        let s = edit(
            &s,
            "[invoke_check]\npayload = \"{}\"",
            &format!("[invoke_check]\npayload = \"{payload}\"\nauth_retry_seconds = 3"),
        );
        edit_more(format!("{s}\n[pool]\nconnection_borrow_timeout = 2\n"))
    });
}

/// The invoke check alone, with `payload`, expected to fail: its stderr.
#[track_caller]
fn check_fails(ws: &Workspace, payload: &str) -> Out {
    write(ws, payload, |s| s);
    let out = ws.run(&["run", "--yes", "--step", "invoke-check"]);
    out.code(1).stderr_has("step `invoke-check` failed");
    out
}

/// The invoke check alone, refused before it invokes: a step it waits on
/// is not in place in the account; its stderr.
#[track_caller]
fn check_refused(ws: &Workspace) -> Out {
    write(ws, "{}", |s| s);
    let out = ws.run(&["run", "--yes", "--step", "invoke-check"]);
    out.code(2)
        .stderr_has("step `invoke-check` must wait for steps that are not applied and verified");
    out
}

/// A breakage the tool's own checks see: the invoke check is refused before
/// it invokes, its stderr having each of `guard_says`; the function invoked
/// directly fails with `function_error` (the proxy refuses it for real);
/// `doctor` names `doctor_says` from the proxy's log.
fn named_by_the_guard(
    ws: &Workspace,
    emu: &Emulator,
    guard_says: &[&str],
    function_error: &str,
    doctor_says: &str,
) {
    let out = check_refused(ws);
    for text in guard_says {
        out.stderr_has(text);
    }
    let error = invoke_directly(emu, &ws.env["DB_APP_FUNCTION_NAME"]);
    assert!(error.contains(function_error), "{error}");
    ws.run(&["doctor"]).ok().stdout_has(doctor_says);
}

/// The function invoked directly (not through the tool): its error.
fn invoke_directly(emu: &Emulator, function: &str) -> String {
    let function = function.to_string();
    by_hand(emu, |c| async move {
        let lambda = aws_sdk_lambda::Client::new(&c);
        let out = lambda
            .invoke()
            .function_name(&function)
            .send()
            .await
            .unwrap();
        let body = String::from_utf8_lossy(out.payload().unwrap().as_ref()).into_owned();
        assert!(
            out.function_error().is_some(),
            "the function passed: {body}"
        );
        body
    })
}

/// Every line of the proxy's log group, as RDS Proxy writes it.
fn proxy_log(emu: &Emulator, proxy: &str) -> String {
    let group = format!("/aws/rds/proxy/{proxy}");
    by_hand(emu, |c| async move {
        let logs = aws_sdk_cloudwatchlogs::Client::new(&c);
        let out = logs
            .filter_log_events()
            .log_group_name(group)
            .send()
            .await
            .unwrap();
        let lines: Vec<&str> = out.events().iter().filter_map(|e| e.message()).collect();
        lines.join("\n")
    })
}

/// The whole runbook run again: it puts back what was changed by hand (a
/// change of its own, which IAM may take a moment to honour) and the
/// invoke check passes on the real row.
fn repaired(ws: &Workspace) {
    write(ws, "{}", |s| s);
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has(&format!("Read 'hello from {}-db'", ws.prefix));
}

#[test]
fn each_engine_reads_the_seeded_row_through_the_proxy() {
    let emu = Emulator::start();
    if !emu.has_rules("each_engine_reads_the_seeded_row_through_the_proxy") {
        return;
    }
    for (runbook, seed, server) in [
        ("cookbook-4.3-mysql.toml", &[][..], "MariaDB"),
        (
            "postgresql.toml",
            &["--engine", "postgres"][..],
            "PostgreSQL",
        ),
        (
            "cookbook-4.3-mysql.toml",
            &["--engine", "aurora-mysql"][..],
            "MariaDB",
        ),
        (
            "aurora-postgresql-iam.toml",
            &["--engine", "aurora-postgresql", "--iam-db-auth"][..],
            "PostgreSQL",
        ),
    ] {
        let ws = emu.workspace_for(&format!("row_{}", seed.len()), runbook, seed);
        if seed.contains(&"aurora-mysql") {
            // The book's runbook, given the cluster instead of an instance.
            ws.write_runbook(|s| {
                edit(
                    &s,
                    "instance_id = \"${env.RDS_ID}\"",
                    "cluster_id = \"${env.RDS_CLUSTER_ID}\"",
                )
            });
        }
        ws.run(&["run", "--yes"])
            .ok()
            .stdout_has("✓ invoke-check verified")
            .stdout_has(&format!(
                "Successfully connected to RDS via RDS Proxy! Read 'hello from {}-db' from the database (",
                ws.prefix
            ))
            .stdout_has(server);
    }
}

/// A working setup broken by hand, one way after another. Each time the
/// tool names the cause and its fix: the invoke check itself, from the
/// function's error and the proxy's log, when the tool's own steps cannot
/// see the change; the guard of the invoke check, naming the step that no
/// longer holds, when they can (the function invoked directly then shows
/// the proxy refusing it for real). The whole runbook run again passes.
#[test]
fn a_broken_wiring_is_named_by_the_tool() {
    let (emu, ws) = setup("broken");
    if !emu.has_rules("a_broken_wiring_is_named_by_the_tool") {
        return;
    }
    write(&ws, "{}", |s| s);
    ws.run(&["run", "--yes"]).ok();
    let p = ws.prefix.clone();
    let function = ws.env["DB_APP_FUNCTION_NAME"].clone();
    let proxy_id = ws.output("proxy", "id");

    // The connect policy detached from the function's role: the tool sees
    // it; the proxy refuses the function's token.
    let (role, policy) = (
        format!("{p}-lambda-role"),
        format!("arn:aws:iam::123456789012:policy/{p}-connect"),
    );
    by_hand(&emu, |c| async move {
        let iam = aws_sdk_iam::Client::new(&c);
        let detach = iam
            .detach_role_policy()
            .role_name(&role)
            .policy_arn(&policy);
        detach.send().await.unwrap();
    });
    named_by_the_guard(
        &ws,
        &emu,
        &["`connect-policy` (applied, but the account differs"],
        "Access denied for user 'admin'",
        "an IAM token was refused",
    );
    let log = proxy_log(&emu, &format!("{p}-db"));
    assert!(
        log.contains(&format!(
            "is not allowed rds-db:connect on arn:aws:rds-db:us-east-1:123456789012:dbuser:{proxy_id}/admin"
        )),
        "{log}"
    );
    repaired(&ws);

    // A connect policy for the proxy's name instead of its prx- id, then for
    // the DB's resource id: what the runbook says, so the tool applies it
    // (keeping the old statement until its last pass, while a function may
    // still use it); then the function's login is refused, and the failure
    // names the grant and the proxy's log the resource it lacks.
    let dbi = by_hand(&emu, |c| {
        let db = ws.env["RDS_ID"].clone();
        async move {
            let rds = aws_sdk_rds::Client::new(&c);
            let out = rds
                .describe_db_instances()
                .db_instance_identifier(db)
                .send()
                .await;
            out.unwrap().db_instances()[0]
                .dbi_resource_id()
                .unwrap()
                .to_string()
        }
    });
    let template = ws.dir.join("policies/wrong-connect-policy.json");
    for wrong in [format!("{p}-db"), dbi] {
        let text =
            std::fs::read_to_string(ws.dir.join("policies/rds-connect-policy-template.json"))
                .unwrap()
                .replace("RDSProxyID", &wrong);
        std::fs::write(&template, text).unwrap();
        let wrong_template = |s: String| {
            edit(
                &s,
                "policies/rds-connect-policy-template.json",
                "policies/wrong-connect-policy.json",
            )
        };
        write(&ws, "{}", wrong_template);
        ws.run(&["run", "--yes"]).ok().stdout_has("connect-policy");
        // IAM honours the narrowed policy after its propagation delay.
        std::thread::sleep(Duration::from_millis(500));
        write(&ws, "{}", wrong_template);
        ws.run(&["run", "--yes", "--step", "invoke-check"])
            .code(1)
            .stderr_has("Access denied for user 'admin'")
            .stderr_has("cause: the proxy refused the function's login")
            .stderr_has("(connect-policy)")
            .stderr_has("the proxy's log since the invocation: an IAM token was refused");
        assert!(
            proxy_log(&emu, &format!("{p}-db")).contains(&format!("dbuser:{proxy_id}/admin")),
            "the log names the resource the role lacks"
        );
        repaired(&ws);
    }

    // The function moved into a security group the proxy's does not admit
    // (the runbook names the group it admits, which is still admitted):
    // its connection times out, and the proxy never hears of it.
    let vpc = ws.env["VPC_ID"].clone();
    let (other, old) = by_hand(&emu, |c| {
        let (function, vpc, p) = (function.clone(), vpc.clone(), p.clone());
        async move {
            let ec2 = aws_sdk_ec2::Client::new(&c);
            let group = ec2
                .create_security_group()
                .group_name(format!("{p}-elsewhere"))
                .description("not admitted by the proxy")
                .vpc_id(vpc)
                .send()
                .await
                .unwrap();
            let lambda = aws_sdk_lambda::Client::new(&c);
            let conf = lambda
                .get_function_configuration()
                .function_name(&function)
                .send();
            let vpc = conf.await.unwrap().vpc_config().unwrap().clone();
            (group.group_id().unwrap().to_string(), vpc)
        }
    });
    let move_function = |groups: Vec<String>| {
        let (function, subnets) = (function.clone(), old.subnet_ids().to_vec());
        by_hand(&emu, |c| async move {
            let lambda = aws_sdk_lambda::Client::new(&c);
            let vpc = aws_sdk_lambda::types::VpcConfig::builder()
                .set_subnet_ids(Some(subnets))
                .set_security_group_ids(Some(groups))
                .build();
            lambda
                .update_function_configuration()
                .function_name(&function)
                .vpc_config(vpc)
                .send()
                .await
                .unwrap();
            // As on AWS, the update takes a moment.
            tokio::time::sleep(Duration::from_secs(1)).await;
        })
    };
    move_function(vec![other]);
    check_fails(&ws, "{}")
        .stderr_has("Can't connect to MySQL server")
        .stderr_has("timed out")
        .stderr_has("cause: the function's connection to the proxy timed out")
        .stderr_has("(lambda-ingress)");
    move_function(old.security_group_ids().to_vec());
    repaired(&ws);

    // The DB's group no longer admitting the proxy's: the tool sees the
    // rule gone and the target unhealthy; the proxy cannot reach its DB,
    // and its client waits the borrow timeout.
    let proxy_sg = ws.output("proxy-security-group", "group_id");
    let db_sg = ws.env["RDS_SG"].clone();
    by_hand(&emu, |c| async move {
        let ec2 = aws_sdk_ec2::Client::new(&c);
        let filter = aws_sdk_ec2::types::Filter::builder()
            .name("group-id")
            .values(&db_sg)
            .build();
        let rules = ec2
            .describe_security_group_rules()
            .filters(filter)
            .send()
            .await
            .unwrap();
        let ids: Vec<String> = rules
            .security_group_rules()
            .iter()
            .filter(|r| {
                r.referenced_group_info().and_then(|g| g.group_id()) == Some(proxy_sg.as_str())
            })
            .filter_map(|r| r.security_group_rule_id().map(String::from))
            .collect();
        assert!(!ids.is_empty(), "no rule of {db_sg} admits {proxy_sg}");
        let revoke = ec2.revoke_security_group_ingress().group_id(&db_sg);
        revoke
            .set_security_group_rule_ids(Some(ids))
            .send()
            .await
            .unwrap();
    });
    named_by_the_guard(
        &ws,
        &emu,
        &[
            "`targets` (not finished in the account: target health UNAVAILABLE (CONNECTION_FAILED",
            "(the db-ingress step)",
        ],
        "9501",
        "the proxy cannot reach its DB",
    );
    repaired(&ws);

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
    named_by_the_guard(
        &ws,
        &emu,
        &[
            "target health UNAVAILABLE (AUTH_FAILURE: Credentials couldn't be retrieved",
            "secret-access",
        ],
        "Access denied for user 'admin'",
        "the proxy cannot read its credentials",
    );
    repaired(&ws);

    // The secret's password no longer the DB's: nothing of the tool's own
    // changed, but the target's health, which follows the proxy's real
    // login, says so.
    let secret = ws.env["RDS_SECRET_ARN"].clone();
    let put_secret = |text: Option<String>| {
        let secret = secret.clone();
        by_hand(&emu, |c| async move {
            let sm = aws_sdk_secretsmanager::Client::new(&c);
            let now = sm
                .get_secret_value()
                .secret_id(&secret)
                .send()
                .await
                .unwrap();
            let before = now.secret_string().unwrap().to_string();
            let mut value: serde_json::Value = serde_json::from_str(&before).unwrap();
            value["password"] = "not-the-password".into();
            sm.put_secret_value()
                .secret_id(&secret)
                .secret_string(text.unwrap_or(value.to_string()))
                .send()
                .await
                .unwrap();
            before
        })
    };
    let original = put_secret(None);
    named_by_the_guard(
        &ws,
        &emu,
        &["AUTH_FAILURE", "Access denied for user 'admin'"],
        "Timed-out waiting to acquire database connection",
        "the proxy's own login to the DB was refused",
    );
    put_secret(Some(original));
    repaired(&ws);

    // A function that connects without TLS, which the proxy requires.
    check_fails(&ws, r#"{"tls": false}"#)
        .stderr_has("3159, 'This RDS Proxy requires TLS connections.'")
        .stderr_has("cause: the function connected without TLS")
        .stderr_has("clients connected without TLS while the proxy requires it");
    repaired(&ws);
}

/// IAM's propagation, as AWS has it: a connect policy made in this run is
/// honoured a few seconds later, and the invoke check waits for that,
/// saying so; a grant that is wrong fails once the retry window is over,
/// saying the grant itself is wrong.
#[test]
fn a_new_grant_is_waited_for_and_a_wrong_one_is_not_forgiven() {
    let emu = Emulator::start();
    if !emu.has_rules("a_new_grant_is_waited_for_and_a_wrong_one_is_not_forgiven") {
        return;
    }
    emu.configure(r#"{"iam_propagation": 3}"#);
    let ws = emu.workspace("propagation");
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has("login refused")
        .stdout_has("after this run changed an IAM grant; IAM takes seconds")
        .stdout_has("✓ invoke-check verified")
        .stdout_has(&format!("Read 'hello from {}-db'", ws.prefix));

    // A refusal IAM cannot explain (a user the proxy holds no secret for)
    // is not retried, though this run changed the connect policy.
    let function = ws.env["DB_APP_FUNCTION_NAME"].clone();
    set_function_variable(&emu, &function, "DB_USER", Some("ghost"));
    let (role, policy) = (
        format!("{}-lambda-role", ws.prefix),
        format!("arn:aws:iam::123456789012:policy/{}-connect", ws.prefix),
    );
    by_hand(&emu, |c| async move {
        let iam = aws_sdk_iam::Client::new(&c);
        let detach = iam
            .detach_role_policy()
            .role_name(&role)
            .policy_arn(&policy);
        detach.send().await.unwrap();
    });
    let out = ws.run(&["run", "--yes"]);
    out.code(1)
        .stdout_has("connect-policy")
        .stderr_has("Access denied for user 'ghost'")
        .stderr_has("a client logged in as a user the proxy cannot log in as");
    assert!(
        !out.stdout.contains("trying again"),
        "a login without credentials was retried: {}",
        out.stdout
    );

    // A template that names the proxy instead of its prx- id, from the
    // first run on: nothing to keep, the grant is wrong from the start.
    let wrong = emu.workspace("wrong_grant");
    let text = std::fs::read_to_string(wrong.dir.join("policies/rds-connect-policy-template.json"))
        .unwrap()
        .replace("RDSProxyID", &format!("{}-db", wrong.prefix));
    std::fs::write(wrong.dir.join("policies/wrong.json"), text).unwrap();
    wrong.write_runbook(|s| {
        let s = edit(
            &s,
            "policies/rds-connect-policy-template.json",
            "policies/wrong.json",
        );
        edit(
            &s,
            "payload = \"{}\"",
            "payload = \"{}\"\nauth_retry_seconds = 5",
        )
    });
    wrong
        .run(&["run", "--yes"])
        .code(1)
        .stdout_has("login refused")
        .stderr_has("Access denied for user 'admin'")
        .stderr_has("still refused after 5 s of retries")
        .stderr_has("the grant itself is wrong, not late");
}

/// Seed 002's failure, reproduced: a client that keeps a connection idle
/// longer than the proxy's IdleClientTimeout finds it closed ("Lost
/// connection to MySQL server during query"), named with its fix; and a
/// session that sets session state is pinned, in PostgreSQL too.
#[test]
fn an_idle_client_is_closed_and_a_set_pins_the_session() {
    let emu = Emulator::start();
    if !emu.has_rules("an_idle_client_is_closed_and_a_set_pins_the_session") {
        return;
    }
    let ws = emu.workspace("idle");
    let with_payload = |payload: &str| {
        let payload = payload.replace('"', "\\\"");
        ws.write_runbook(|s| {
            let s = edit(
                &s,
                "iam_auth = \"REQUIRED\"",
                "iam_auth = \"REQUIRED\"\nidle_client_timeout = 2",
            );
            edit(&s, "payload = \"{}\"", &format!("payload = \"{payload}\""))
        })
    };
    with_payload("{}");
    ws.run(&["run", "--yes"]).ok();
    with_payload(r#"{"idle_seconds": 3}"#);
    ws.run(&["run", "--yes", "--step", "invoke-check"])
        .code(1)
        .stderr_has("(2013, 'Lost connection to MySQL server during query")
        .stderr_has(
            "cause: the proxy closed the client connection (idle longer than IdleClientTimeout)",
        )
        .stderr_has("fix: recycle client pools before proxy.idle_client_timeout");
    let log = proxy_log(&emu, &format!("{}-db", ws.prefix));
    assert!(
        log.contains("the client was idle longer than IdleClientTimeout (2 seconds)"),
        "{log}"
    );

    let pg = emu.workspace_for("pg_pins", "postgresql.toml", &["--engine", "postgres"]);
    pg.run(&["run", "--yes"]).ok();
    pg.write_runbook(|s| format!("{s}\n[invoke_check]\npayload = '{{\"set_session\": true}}'\n"));
    pg.run(&["run", "--yes", "--step", "invoke-check"]).ok();
    let log = proxy_log(&emu, &format!("{}-db", pg.prefix));
    assert!(
        log.contains("The client session was pinned to the database connection")
            && log.contains("SET client_encoding"),
        "{log}"
    );
    pg.run(&["doctor"])
        .ok()
        .stdout_has("up to 1 DB connections were pinned to one client")
        .stdout_has("in PostgreSQL also SET");
}
