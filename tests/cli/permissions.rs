//! `permissions`: the IAM policy it prints for a command covers every call
//! that command makes, so the list cannot drift from the code. The calls
//! are the emulator's record (`GET /awsrules/calls`, by moto's action name,
//! mapped to IAM's here), and for S3, whose calls the emulator does not
//! count, the fault layer's record of each REST request in front of it.

use std::collections::BTreeSet;

use serde_json::Value;

use super::*;

/// The policy `permissions` prints for `args` (`--for ...`).
fn policy(ws: &Workspace, args: &[&str]) -> Value {
    let mut all = vec!["permissions"];
    all.extend(args);
    let out = ws.run(&all);
    out.ok();
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("permissions printed no JSON ({e}): {}", out.stdout))
}

/// Every action the policy allows.
fn actions(policy: &Value) -> BTreeSet<String> {
    policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["Action"].as_array().unwrap().clone())
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// IAM's name for a call the emulator counted under moto's action name
/// (moto names Lambda's `Invoke` as its API does; IAM calls it
/// InvokeFunction).
fn iam_action(call: &str) -> String {
    let service = match call {
        "Invoke" => return "lambda:InvokeFunction".into(),
        "GetCallerIdentity" => "sts",
        "GetFunctionConfiguration"
        | "CreateFunction"
        | "DeleteFunction"
        | "ListTags"
        | "UpdateFunctionConfiguration"
        | "ListFunctions"
        | "GetFunctionConcurrency"
        | "ListEventSourceMappings"
        | "GetAccountSettings"
        | "ListProvisionedConcurrencyConfigs" => "lambda",
        "DescribeSecret" | "GetSecretValue" | "ListSecrets" => "secretsmanager",
        "GetAccountAuthorizationDetails" => "iam",
        "GetMetricStatistics"
        | "DescribeAlarms"
        | "PutMetricAlarm"
        | "DeleteAlarms"
        | "DescribeAnomalyDetectors"
        | "DeleteAnomalyDetector"
        | "TagResource" => "cloudwatch",
        "FilterLogEvents" => "logs",
        c if c.contains("DB")
            || c.ends_with("TagsToResource")
            || c.ends_with("TagsFromResource")
            || c == "ListTagsForResource" =>
        {
            "rds"
        }
        c if c.contains("Role") || c.contains("Policy") => "iam",
        c if c.contains("SecurityGroup")
            || c.contains("NetworkInterface")
            || c.contains("Subnet")
            || c.ends_with("Tags") =>
        {
            "ec2"
        }
        other => panic!("the emulator counted {other}: say in iam_action which service it is"),
    };
    format!("{service}:{call}")
}

/// IAM's name for an S3 call the fault layer saw (`s3 METHOD /path?query`).
fn s3_action(call: &str) -> Option<&'static str> {
    let mut parts = call.splitn(3, ' ');
    let (service, method, target) = (parts.next()?, parts.next()?, parts.next()?);
    if service != "s3" {
        return None;
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let object = path.trim_start_matches('/').contains('/');
    let has = |k: &str| {
        query
            .split('&')
            .any(|kv| kv == k || kv.starts_with(&format!("{k}=")))
    };
    Some(match (method, object) {
        ("GET", false) if has("versioning") => "s3:GetBucketVersioning",
        ("GET", false) if has("encryption") => "s3:GetEncryptionConfiguration",
        ("GET", false) if has("versions") => "s3:ListBucketVersions",
        ("GET", false) => "s3:ListBucket",
        ("GET" | "HEAD", true) if has("versionId") => "s3:GetObjectVersion",
        ("GET" | "HEAD", true) => "s3:GetObject",
        ("PUT", true) => "s3:PutObject",
        ("DELETE", true) => "s3:DeleteObject",
        _ => panic!("an S3 call not mapped to IAM: {call}"),
    })
}

/// Runs `args` and fails naming every call it made that the policy of
/// `permissions for` does not allow; returns what it printed.
#[track_caller]
fn covered(
    emu: &Emulator,
    ws: &Workspace,
    layer: Option<&faults::FaultProxy>,
    args: &[&str],
    permissions_for: &[&str],
) -> Out {
    let allowed = actions(&policy(ws, permissions_for));
    http(&format!("{}/awsrules/calls", emu.url), "DELETE", "").unwrap();
    let rest_before = layer.map_or(0, |l| l.rest_calls().len());
    let out = ws.run(args);
    let mut made: BTreeSet<String> = emu.calls().keys().map(|c| iam_action(c)).collect();
    if let Some(l) = layer {
        let rest = l.rest_calls();
        made.extend(
            rest[rest_before..]
                .iter()
                .filter_map(|c| s3_action(c))
                .map(String::from),
        );
    }
    let missing: Vec<&String> = made.difference(&allowed).collect();
    assert!(
        missing.is_empty(),
        "`{}` called what `permissions {}` does not allow: {missing:?}\n(it called {made:?})",
        args.join(" "),
        permissions_for.join(" ")
    );
    out
}

/// What may run where `plan` and `doctor` run: nothing that writes.
#[track_caller]
fn reads_only(policy: &Value) {
    let writes: Vec<String> = actions(policy)
        .into_iter()
        .filter(|a| {
            let verb = a.split(':').nth(1).unwrap_or_default();
            !["Describe", "Get", "List", "Filter"]
                .iter()
                .any(|r| verb.starts_with(r))
                && a != "kms:Decrypt"
        })
        .collect();
    assert!(
        writes.is_empty(),
        "a read-only command's policy writes: {writes:?}"
    );
}

#[test]
fn every_call_of_plan_run_doctor_and_rollback_is_in_the_policy_printed_for_it() {
    let emu = Emulator::start();
    if !emu.has_rules("every_call_of_plan_run_doctor_and_rollback_is_in_the_policy") {
        return;
    }
    let ws = emu.workspace_for(
        "perm_book",
        "cookbook-4.3-mysql.toml",
        &["--extra-function", "reports"],
    );
    let before = snapshot(&emu, &ws);
    reads_only(&policy(&ws, &["--for", "plan"]));
    reads_only(&policy(&ws, &["--for", "doctor"]));
    covered(&emu, &ws, None, &["plan"], &["--for", "plan"]).ok();
    covered(&emu, &ws, None, &["run", "--yes"], &["--for", "run"]).ok();
    covered(&emu, &ws, None, &["run", "--yes"], &["--for", "run"]).ok();
    covered(&emu, &ws, None, &["plan"], &["--for", "plan"]).ok();
    covered(&emu, &ws, None, &["doctor"], &["--for", "doctor"]).ok();
    // Day two: a function joins and the tags change (every update in
    // place), then it leaves (the last pass's removals).
    let joined = |s: String| {
        let s = edit(
            &s,
            "Project = \"AWSCookbook403\"",
            "Project = \"AWSCookbook403\"\nTeam = \"db\"",
        );
        format!(
            "{s}\n[[lambda]]\nfunction_name = \"${{env.REPORTS_FUNCTION_NAME}}\"\n\
             security_group_id = \"${{env.REPORTS_FUNCTION_SG_ID}}\"\n"
        )
    };
    ws.write_runbook(joined);
    covered(&emu, &ws, None, &["plan"], &["--for", "plan"]).ok();
    covered(&emu, &ws, None, &["run", "--yes"], &["--for", "run"]).ok();
    ws.write_runbook(|s| s);
    // The function that left is still the state's: its variable is put
    // back by this run, so the policy names it.
    let run = policy(&ws, &["--for", "run"]);
    let reports = &ws.env["REPORTS_FUNCTION_NAME"];
    assert!(
        run.to_string().contains(&format!("function:{reports}\"")),
        "{run:#}"
    );
    covered(&emu, &ws, None, &["run", "--yes"], &["--for", "run"]).ok();
    // A replacement: the new proxy beside the old, the old one deleted.
    ws.write_edited("name = \"${env.DB_NAME}\"", "name = \"${env.DB_NAME}-v2\"");
    covered(
        &emu,
        &ws,
        None,
        &["run", "--yes", "--allow-replace"],
        &["--for", "run", "--allow-replace"],
    )
    .ok();
    covered(
        &emu,
        &ws,
        None,
        &["rollback", "--yes"],
        &["--for", "rollback"],
    )
    .ok();
    assert_same(&before, &snapshot(&emu, &ws), "rollback");
}

/// The shipped Aurora runbook (end-to-end IAM, a reader endpoint, two
/// functions) with its state in S3: the state's calls too, counted by the
/// fault layer.
#[test]
fn the_aurora_runbook_with_its_state_in_s3_calls_nothing_its_policies_leave_out() {
    let emu = Emulator::start();
    if !emu.has_rules("the_aurora_runbook_with_its_state_in_s3") {
        return;
    }
    let ws = emu.workspace_for(
        "perm_aurora",
        "aurora-postgresql-iam.toml",
        &["--engine", "aurora-postgresql", "--iam-db-auth"],
    );
    let mut ws = ws.in_s3();
    let layer = ws.behind_fault_layer(&emu);
    let l = Some(&layer);
    let run = policy(&ws, &["--for", "run"]);
    let bucket = format!("rpr-{}", ws.prefix.to_ascii_lowercase());
    let object = format!("arn:aws:s3:::{bucket}/team/runbook.state.json");
    let state = run["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "StateObject")
        .unwrap_or_else(|| panic!("no statement for the state: {run:#}"));
    assert_eq!(
        state["Resource"],
        serde_json::json!([object, format!("{object}.lock")])
    );
    covered(&emu, &ws, l, &["plan"], &["--for", "plan"]).ok();
    covered(&emu, &ws, l, &["run", "--yes"], &["--for", "run"]).ok();
    covered(&emu, &ws, l, &["run", "--yes"], &["--for", "run"]).ok();
    covered(&emu, &ws, l, &["status"], &["--for", "status"]).ok();
    covered(&emu, &ws, l, &["status", "--history"], &["--for", "status"]).ok();
    covered(&emu, &ws, l, &["doctor"], &["--for", "doctor"]).ok();
    covered(&emu, &ws, l, &["rollback", "--yes"], &["--for", "rollback"]).ok();
    assert!(
        layer.rest_calls().iter().any(|c| c.starts_with("s3 PUT ")),
        "the fault layer saw the state's writes: {:?}",
        layer.rest_calls()
    );
}

/// What no call shows: `iam:PassRole`, which CreateDBProxy and
/// ModifyDBProxy need on the proxy's role (AWS checks it inside the call;
/// the emulator records no call of it), only for RDS; and each IAM write
/// on the runbook's own names, never on `*`.
#[test]
fn the_run_policy_passes_the_proxy_role_to_rds_only_and_writes_only_the_runbooks_names() {
    let (_emu, ws) = setup("perm_pass");
    let run = policy(&ws, &["--for", "run"]);
    let statements = run["Statement"].as_array().unwrap();
    let account = &ws.env["AWS_ACCOUNT_ID"];
    let role = format!("arn:aws:iam::{account}:role/{}-proxy-role", ws.prefix);
    let pass = statements
        .iter()
        .find(|s| {
            s["Action"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a == "iam:PassRole")
        })
        .unwrap_or_else(|| panic!("no iam:PassRole: {run:#}"));
    assert_eq!(pass["Resource"], role.as_str(), "{pass:#}");
    assert_eq!(
        pass["Condition"]["StringEquals"]["iam:PassedToService"],
        "rds.amazonaws.com"
    );
    for s in statements {
        let writes_iam = s["Action"].as_array().unwrap().iter().any(|a| {
            let a = a.as_str().unwrap();
            a.starts_with("iam:") && !["iam:Get", "iam:List"].iter().any(|r| a.starts_with(r))
        });
        let anywhere = s["Resource"].to_string().contains("/*") || s["Resource"] == "*";
        assert!(
            !writes_iam || !anywhere || s.get("Condition").is_some(),
            "an IAM write on any resource without a condition: {s:#}"
        );
    }
    // Only what the runbook uses: no managed secrets policy, no S3 state.
    let text = run.to_string();
    assert!(
        !text.contains("SecretsManagerReadWrite") && !text.contains("s3:"),
        "{run:#}"
    );
}

/// The probe's calls, alone and as the run's last check, are in the
/// policies printed for them; its role is passed to Lambda only.
#[test]
fn every_call_of_the_probe_is_in_the_policy_printed_for_it() {
    let (emu, ws) = setup("perm_probe");
    if !emu.has_rules("every_call_of_the_probe_is_in_the_policy_printed_for_it") {
        return;
    }
    ws.run(&["run", "--yes"]).ok();
    let probe = policy(&ws, &["--for", "probe"]);
    let pass = probe["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == "PassFunctionRolesToProbe")
        .unwrap_or_else(|| panic!("no PassRole statement: {probe:#}"));
    assert_eq!(
        pass["Condition"]["StringEquals"]["iam:PassedToService"], "lambda.amazonaws.com",
        "{pass:#}"
    );
    assert!(
        probe
            .to_string()
            .contains(&format!("function:{}-probe-*", ws.prefix)),
        "{probe:#}"
    );
    covered(&emu, &ws, None, &["probe"], &["--for", "probe"]).ok();
    assert!(
        !actions(&policy(&ws, &["--for", "run"])).contains("lambda:CreateFunction"),
        "a runbook that does not probe needs no CreateFunction"
    );
    ws.write_runbook(|s| {
        edit(
            &s,
            "[invoke_check]\npayload = \"{}\"",
            "[invoke_check]\nprobe = true",
        )
    });
    covered(&emu, &ws, None, &["run", "--yes"], &["--for", "run"]).ok();
    covered(
        &emu,
        &ws,
        None,
        &["rollback", "--yes"],
        &["--for", "rollback"],
    )
    .ok();
}
