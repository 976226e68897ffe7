use super::*;
use crate::state::StepRecord;

fn runbook(file: &str, env: &dyn Fn(&str) -> Option<String>) -> Runbook {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("runbooks")
        .join(file);
    Runbook::load(&path, env, true, &crate::steps::Catalogue).expect("a runbook")
}

fn book() -> Runbook {
    runbook("cookbook-4.3-mysql.toml", &|k| {
        Some(
            match k {
                "VPC_ID" => "vpc-0a1b2c3d4e5f60718",
                "ISOLATED_SUBNETS" => "subnet-0aaaaaaaaaaaaaaaa subnet-0bbbbbbbbbbbbbbbb",
                "RDS_SG" | "DB_APP_FUNCTION_SG_ID" => "sg-0dddddddddddddddd",
                "RDS_SECRET_ARN" => "arn:aws:secretsmanager:us-east-1:123456789012:secret:s-AbCdEf",
                "DB_APP_FUNCTION_NAME" => "app",
                _ => "db1",
            }
            .to_string(),
        )
    })
}

fn names(rb: &Runbook, state: Option<&State>) -> Names {
    let file = StatePlace::File("s.json".into());
    Names::of(rb, state, &file, "1".into(), "r".into())
}

fn actions(rb: &Runbook, state: Option<&State>, command: For, replace: bool) -> Vec<&'static str> {
    calls_for(rb, state, command, replace)
        .into_iter()
        .map(|(a, _)| a)
        .collect()
}

#[test]
fn plan_doctor_and_status_only_read() {
    let rb = book();
    for command in [For::Plan, For::Doctor, For::Status] {
        for a in actions(&rb, None, command, false) {
            let verb = a.split(':').nth(1).unwrap();
            let reads = ["Describe", "Get", "List", "Filter"]
                .iter()
                .any(|r| verb.starts_with(r));
            assert!(reads || a == "kms:Decrypt", "{command:?} writes: {a}");
        }
    }
}

#[test]
fn a_replacement_adds_what_it_deletes_and_a_rollback_what_the_state_made() {
    let rb = book();
    let run = actions(&rb, None, For::Run, false);
    assert!(run.contains(&"rds:CreateDBProxy") && run.contains(&"iam:PassRole"));
    assert!(!run.contains(&"rds:DeleteDBProxy"), "{run:?}");
    let replace = actions(&rb, None, For::Run, true);
    assert!(replace.contains(&"rds:DeleteDBProxy"), "{replace:?}");
    assert!(
        replace.contains(&"lambda:ListFunctions"),
        "the guard: {replace:?}"
    );
    // A step the runbook no longer lists is still undone from the state.
    let mut state = State::new(&rb.name);
    state
        .steps
        .insert("proxy-endpoints".into(), StepRecord::default());
    assert!(!actions(&rb, None, For::Rollback, false).contains(&"rds:DeleteDBProxyEndpoint"));
    let undo = actions(&rb, Some(&state), For::Rollback, false);
    assert!(undo.contains(&"rds:DeleteDBProxyEndpoint"), "{undo:?}");
}

#[test]
fn resources_are_the_runbooks_and_the_states_names() {
    let rb = book();
    let mut state = State::new(&rb.name);
    let mut env = StepRecord {
        inputs: Some(json!({"endpoint": "e", "functions": [{"name": "gone-fn"}]})),
        ..Default::default()
    };
    env.outputs.insert("endpoint".into(), "e".into());
    state.steps.insert("lambda-env".into(), env);
    let mut proxy = StepRecord::default();
    proxy.outputs.insert("name".into(), "old-proxy".into());
    state.steps.insert("proxy".into(), proxy);
    let n = names(&rb, Some(&state));
    let text = |on| serde_json::to_string(&n.resources(on)).unwrap();
    assert_eq!(
        text(On::Functions),
        r#"[["arn:aws:lambda:r:1:function:app","arn:aws:lambda:r:1:function:gone-fn"],null]"#
    );
    assert!(text(On::ProxyLog).contains("/aws/rds/proxy/old-proxy:*"));
    assert_eq!(
        n.resources(On::ProxyRole).0,
        ["arn:aws:iam::1:role/AWSCookbook403RDSProxy"]
    );
    assert_eq!(
        n.resources(On::Secrets).0,
        ["arn:aws:secretsmanager:us-east-1:123456789012:secret:s-AbCdEf"]
    );
    assert!(
        n.resources(On::Proxy)
            .0
            .contains(&"arn:aws:rds:r:1:db:db1".into())
    );
    // Least privilege mode: no managed policy; a file state: no S3.
    for on in [
        On::ProxyRoleManagedPolicy,
        On::StateBucket,
        On::StateObject,
        On::StateKey,
    ] {
        assert!(n.resources(on).0.is_empty(), "{on:?}");
    }
    // A value from an unset variable: any.
    let bare = runbook("cookbook-4.3-mysql.toml", &|_| None);
    let n = names(&bare, None);
    assert_eq!(
        n.resources(On::Functions).0,
        ["arn:aws:lambda:r:1:function:*"]
    );
}

#[test]
fn a_state_in_s3_is_named_with_its_lock_and_key() {
    let rb = book();
    let place = StatePlace::S3(crate::state::s3::S3Place {
        bucket: "b".into(),
        key: "k/s.json".into(),
        region: Some("eu-west-1".into()),
        kms_key: Some("alias/state".into()),
    });
    let n = Names::of(&rb, None, &place, "1".into(), "r".into());
    assert_eq!(
        n.resources(On::StateObject).0,
        ["arn:aws:s3:::b/k/s.json", "arn:aws:s3:::b/k/s.json.lock"]
    );
    assert_eq!(n.resources(On::StateBucket).0, ["arn:aws:s3:::b"]);
    assert_eq!(
        n.resources(On::StateKey).0,
        ["arn:aws:kms:eu-west-1:1:key/*"]
    );
    let doc = serde_json::to_value(policy(&calls_for(&rb, None, For::Status, false), &n)).unwrap();
    assert_eq!(doc["Version"], "2012-10-17");
    let sids: Vec<&str> = doc["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["Sid"].as_str().unwrap())
        .collect();
    assert_eq!(sids, ["StateBucket", "StateObject", "StateKey"]);
}
