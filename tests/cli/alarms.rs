//! The `alarms` step (`[alarms]`): the CloudWatch alarms seed 000
//! prescribes, made, kept and undone through the binary on the emulator,
//! which evaluates them from the metrics it holds.

use super::*;

/// Sets the DB's max_connections with a parameter group of its own (made
/// the first time).
pub fn set_max_connections(emu: &Emulator, ws: &Workspace, value: i64) {
    let config = emu.sdk_config();
    runtime().block_on(async {
        use aws_sdk_rds::types::{ApplyMethod, Parameter};
        let rds = aws_sdk_rds::Client::new(&config);
        let group = format!("{}-params", ws.prefix.to_lowercase());
        let _ = rds
            .create_db_parameter_group()
            .db_parameter_group_name(&group)
            .db_parameter_group_family("mysql8.0")
            .description("the alarms test's")
            .send()
            .await;
        rds.modify_db_parameter_group()
            .db_parameter_group_name(&group)
            .parameters(
                Parameter::builder()
                    .parameter_name("max_connections")
                    .parameter_value(value.to_string())
                    .apply_method(ApplyMethod::Immediate)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        rds.modify_db_instance()
            .db_instance_identifier(&ws.env["RDS_ID"])
            .db_parameter_group_name(&group)
            .apply_immediately(true)
            .send()
            .await
            .unwrap();
    });
}

/// The shipped runbook with `section` as its `[alarms]` (the cookbook's
/// own replaced).
fn with_alarms(s: &str, section: &str) -> String {
    let start = s
        .find("\n[alarms]")
        .expect("the cookbook runbook has [alarms]");
    let end = s[start + 1..]
        .find("\n[")
        .map_or(s.len(), |e| start + 1 + e);
    // Sub-tables of [alarms] go with it.
    let mut end = end;
    while s[end..].starts_with("\n[alarms.") {
        end = s[end + 1..].find("\n[").map_or(s.len(), |e| end + 1 + e);
    }
    format!("{}\n{section}\n{}", &s[..start], &s[end..])
}

/// `[alarms]` with every default.
const ALARMS: &str = "[alarms]\n";

fn alarm<'s>(snap: &'s Snapshot, ws: &Workspace, kind: &str) -> Option<&'s Resource> {
    snap.get(&format!("alarm {}-proxy-{kind}", ws.prefix))
}

fn put_by_hand(emu: &Emulator, name: &str, proxy: &str) {
    let config = emu.sdk_config();
    runtime().block_on(async {
        aws_sdk_cloudwatch::Client::new(&config)
            .put_metric_alarm()
            .alarm_name(name)
            .namespace("AWS/RDS")
            .metric_name("AvailabilityPercentage")
            .dimensions(
                aws_sdk_cloudwatch::types::Dimension::builder()
                    .name("ProxyName")
                    .value(proxy)
                    .build(),
            )
            .statistic(aws_sdk_cloudwatch::types::Statistic::Average)
            .period(300)
            .evaluation_periods(1)
            .threshold(99.0)
            .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::LessThanThreshold)
            .send()
            .await
            .unwrap();
    });
}

/// Puts an anomaly detection model on the proxy's `metric` by hand.
fn put_model(emu: &Emulator, proxy: &str, metric: &str, stat: &str) {
    let config = emu.sdk_config();
    runtime().block_on(async {
        use aws_sdk_cloudwatch::types::{Dimension, SingleMetricAnomalyDetector};
        aws_sdk_cloudwatch::Client::new(&config)
            .put_anomaly_detector()
            .single_metric_anomaly_detector(
                SingleMetricAnomalyDetector::builder()
                    .namespace("AWS/RDS")
                    .metric_name(metric)
                    .dimensions(Dimension::builder().name("ProxyName").value(proxy).build())
                    .stat(stat)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
}

/// The book's function invoked in the background: it connects through
/// the proxy, sets a session variable (which pins its session) and holds
/// the connection `seconds`.
fn pin_for(emu: &Emulator, ws: &Workspace, seconds: u32) -> std::thread::JoinHandle<()> {
    let config = emu.sdk_config();
    let function = ws.env["DB_APP_FUNCTION_NAME"].clone();
    std::thread::spawn(move || {
        runtime().block_on(async {
            let out = aws_sdk_lambda::Client::new(&config)
                .invoke()
                .function_name(&function)
                .payload(aws_sdk_lambda::primitives::Blob::new(format!(
                    r#"{{"set_session": true, "idle_seconds": {seconds}}}"#
                )))
                .send()
                .await
                .unwrap();
            assert!(out.function_error().is_none(), "{:?}", out.payload());
        });
    })
}

/// Made with thresholds from the account, re-run without a change, a
/// threshold edited in the runbook and one moved by the DB's
/// max_connections updated in place, one deleted by hand put back, one
/// dropped from the runbook deleted, the pinned-connections alarm (15
/// minutes) driven into ALARM by a real pinned session through the proxy
/// and shown by doctor, rollback leaving a hand-made alarm and a hand-made
/// anomaly detection model and deleting the one our alarm made.
#[test]
fn alarms_follow_the_runbook_and_the_dbs_max_connections() {
    let (emu, ws) = setup("alarms");
    // A CloudWatch minute lasts 0.2 s: the pinned alarm's 3 periods of 5
    // minutes pass in 3 s.
    emu.configure(r#"{"alarm_minute": 0.2}"#);
    set_max_connections(&emu, &ws, 40);
    // A model made by hand on the metric and statistic our client
    // connections alarm will use: not ours, though our alarm uses it.
    let proxy_name = ws.env["DB_NAME"].clone();
    put_model(&emu, &proxy_name, "ClientConnections", "Maximum");
    ws.write_runbook(|s| with_alarms(&s, ALARMS));
    let before = snapshot(&emu, &ws);
    ws.run(&["plan"])
        .ok()
        .stdout_has(&format!(
            "alarm {}-proxy-database-connections: DatabaseConnections Maximum >= 32 in 3 of 5 \
             periods of 60s (80% of the DB's max_connections 40 (set by DB parameter group {}-params))",
            ws.prefix,
            ws.prefix.to_lowercase()
        ))
        .stdout_has(&format!(
            "alarm {}-proxy-session-pinned: DatabaseConnectionsCurrentlySessionPinned Maximum > 0 \
             in 3 of 3 periods of 300s (connections pinned in 3 periods in a row: 15 minutes)",
            ws.prefix
        ))
        .stdout_has(
            "ClientConnections Maximum above its anomaly band in 3 of 5 periods of 60s \
             (CloudWatch anomaly detection, a band of 2 standard deviations (the account offers it",
        );
    ws.run(&["run", "--yes"]).ok();
    let snap = snapshot(&emu, &ws);
    let db = alarm(&snap, &ws, "database-connections").expect("the connections alarm");
    assert_eq!(db.field("threshold"), "Some(32.0)", "{db}");
    assert!(
        db.field("tags")
            .contains(&format!("rds-proxy-runbook:runbook={}", ws.prefix)),
        "tagged as ours: {db}"
    );
    for kind in [
        "session-pinned",
        "availability",
        "client-connections",
        "query-requests",
    ] {
        assert!(alarm(&snap, &ws, kind).is_some(), "{kind}: {snap:?}");
    }
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
    ws.run(&["status"])
        .ok()
        .stdout_has(&format!("{}-proxy-availability", ws.prefix));

    // A threshold edited in the runbook: updated in place.
    ws.write_runbook(|s| {
        with_alarms(
            &s,
            &format!("{ALARMS}[alarms.database_connections]\npercent = 50\n"),
        )
    });
    ws.run(&["plan"]).ok().stdout_has(&format!(
        "alarm {}-proxy-database-connections threshold: 32 -> 20",
        ws.prefix
    ));
    ws.run(&["run", "--yes"]).ok();
    let snap = snapshot(&emu, &ws);
    assert!(
        alarm(&snap, &ws, "database-connections")
            .unwrap()
            .field("threshold")
            == "Some(20.0)"
    );
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");

    // The DB's max_connections moves: so does the threshold, and why.
    set_max_connections(&emu, &ws, 60);
    ws.run(&["plan"]).ok().stdout_has(&format!(
        "alarm {}-proxy-database-connections threshold: 20 -> 30",
        ws.prefix
    ));
    ws.run(&["run", "--yes"]).ok();

    // Deleted by hand: put back.
    let pinned = format!("{}-proxy-session-pinned", ws.prefix);
    let config = emu.sdk_config();
    runtime().block_on(async {
        aws_sdk_cloudwatch::Client::new(&config)
            .delete_alarms()
            .alarm_names(&pinned)
            .send()
            .await
            .unwrap();
    });
    ws.run(&["plan"])
        .ok()
        .stdout_has(&format!("to create: {pinned}"));
    ws.run(&["run", "--yes"]).ok();
    assert!(alarm(&snapshot(&emu, &ws), &ws, "session-pinned").is_some());
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");

    // A session pinned by a real SET through the proxy, held past the
    // alarm's three periods: the proxy publishes its pinned connection each
    // minute, the alarm goes off, doctor says so while it lasts.
    let proxy = ws.output("proxy", "name");
    assert_eq!(proxy, proxy_name);
    let pinning = pin_for(&emu, &ws, 10);
    let wanted =
        format!("{pinned} (DatabaseConnectionsCurrentlySessionPinned): ALARM: Threshold Crossed");
    let doctor = loop {
        let out = ws.run(&["doctor"]);
        out.ok();
        if out.stdout.contains(&wanted) || pinning.is_finished() {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    doctor
        .stdout_has(&wanted)
        .stdout_has("3 out of the last 3 datapoints")
        .stdout_has("greater than the threshold (0.0)");
    pinning.join().unwrap();

    // Turned off in the runbook: deleted in the run's last pass.
    ws.write_runbook(|s| {
        with_alarms(
            &s,
            &format!(
                "{ALARMS}[alarms.database_connections]\npercent = 50\n\
                 [alarms.availability]\nenabled = false\n"
            ),
        )
    });
    ws.run(&["plan"]).ok().stdout_has(&format!(
        "alarm {}-proxy-availability: to delete (no longer in the runbook",
        ws.prefix
    ));
    ws.run(&["run", "--yes"]).ok();
    assert_eq!(alarm(&snapshot(&emu, &ws), &ws, "availability"), None);
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");

    // One made by hand under that name: not ours, left by rollback.
    let by_hand = format!("{}-proxy-availability", ws.prefix);
    put_by_hand(&emu, &by_hand, &proxy);
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
    let with_hand_made = snapshot(&emu, &ws);
    // The query requests alarm's model, made by CloudWatch with our alarm.
    let ours = format!("anomaly model QueryRequests Sum ProxyName={proxy}");
    assert!(with_hand_made.contains_key(&ours), "{with_hand_made:?}");
    ws.run(&["rollback", "--yes"]).ok().stdout_has(&format!(
        "deleted the anomaly detection model(s) of QueryRequests Sum on {proxy} they made"
    ));
    let after = snapshot(&emu, &ws);
    assert_eq!(
        after.get(&format!("alarm {by_hand}")),
        with_hand_made.get(&format!("alarm {by_hand}")),
        "the hand-made alarm is left"
    );
    let mut expected = before.clone();
    expected.insert(
        format!("alarm {by_hand}"),
        with_hand_made[&format!("alarm {by_hand}")].clone(),
    );
    assert_same(&expected, &after, "rollback left a difference");
}

/// Bad `[alarms]` values are refused before any call, each at its key and
/// position.
#[test]
fn bad_alarm_settings_are_named_at_their_place_before_any_call() {
    let (emu, ws) = setup("alarms_bad");
    let calls = emu.calls();
    ws.write_runbook(|s| {
        with_alarms(
            &s,
            "[alarms]\nsns_topic_arn = \"arn:aws:sqs:us-east-1:123456789012:q\"\n\
             [alarms.database_connections]\npercent = 120\n\
             [alarms.session_pinned]\nperiod = 45\n\
             [alarms.availability]\nname = \"\"\n\
             [alarms.query_request]\nenabled = false\n",
        )
    });
    let out = ws.run(&["plan"]);
    out.code(3)
        .stderr_has("`alarms.sns_topic_arn`: `arn:aws:sqs:us-east-1:123456789012:q` is not an SNS topic ARN")
        .stderr_has("`alarms.database_connections.percent`: 120 is out of range: use 1 to 100")
        .stderr_has("`alarms.session_pinned.period`: 45 is not a CloudWatch alarm period")
        .stderr_has("`alarms.availability.name`: a CloudWatch alarm name has 1 to 255 characters")
        .stderr_has("`alarms.query_request`: unknown key; did you mean `query_requests`?");
    let long = "a".repeat(256);
    ws.write_runbook(|s| {
        with_alarms(
            &s,
            &format!("[alarms]\n[alarms.availability]\nname = \"{long}\"\n"),
        )
    });
    ws.run(&["plan"])
        .code(3)
        .stderr_has(
            "`alarms.availability.name`: a CloudWatch alarm name has 1 to 255 characters, and",
        )
        .stderr_has("has 256");
    assert_eq!(emu.calls(), calls, "no call was made");
}

/// Alarms a colleague made by hand under the runbook's names, once the
/// runbook turns the step on: refused as not ours and the way named,
/// taken over by `adopt` without a change, then brought to the runbook in
/// place and never tagged as ours unasked; a plain rollback leaves them,
/// and adopted again, `rollback --include-adopted` deletes them.
#[test]
fn hand_made_alarms_of_the_same_names_are_adopted() {
    let (emu, ws) = setup("alarms_adopt");
    let p = ws.prefix.clone();
    let before = snapshot(&emu, &ws);
    // The cookbook runbook without the step.
    ws.write_runbook(|s| {
        let s = edit(
            &s,
            "  \"alarms\",                # watch: CloudWatch alarms (seed 000, section 5; docs/alarms.md)\n",
            "",
        );
        edit(&s, "\n[alarms]\n", "\n")
    });
    ws.run(&["run", "--yes"]).ok();
    let proxy = ws.output("proxy", "name");
    let kinds = [
        "availability",
        "client-connections",
        "database-connections",
        "query-requests",
        "session-pinned",
    ];
    for kind in kinds {
        put_by_hand(&emu, &format!("{p}-proxy-{kind}"), &proxy);
    }
    let by_hand = snapshot(&emu, &ws);

    // The step turned on: refused, the way named, nothing changed.
    ws.write_runbook(|s| with_alarms(&s, "[alarms]\n"));
    ws.run(&["run", "--yes"])
        .code(1)
        .stderr_has(&format!(
            "CloudWatch alarm {p}-proxy-database-connections exists but was not created by \
             runbook `{p}`"
        ))
        .stderr_has("take it over with `rds-proxy-runbook adopt RUNBOOK`");
    assert_same(&by_hand, &snapshot(&emu, &ws), "a refused run");
    ws.run(&["adopt", "--yes"])
        .ok()
        .stdout_has("~ alarms ")
        .stdout_has(&format!(
            "alarm {p}-proxy-database-connections threshold: 99 -> 48"
        ));
    assert_same(&by_hand, &snapshot(&emu, &ws), "adopt changes nothing");

    // Managed: brought to the runbook in place, not tagged as ours.
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has("alarms: updating in place");
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
    let managed = snapshot(&emu, &ws);
    let db = alarm(&managed, &ws, "database-connections").unwrap();
    assert_eq!(db.field("threshold"), "Some(48.0)", "{db}");
    for kind in kinds {
        let a = alarm(&managed, &ws, kind).unwrap();
        assert!(
            !a.field("tags").contains("rds-proxy-runbook:runbook="),
            "tagged unasked: {a}"
        );
    }

    // A plain rollback leaves them, as the runbook brought them.
    // It says what --include-adopted would have done: in place of this
    // rollback, which lets go of them.
    ws.run(&["rollback", "--yes"])
        .ok()
        .stdout_has("alarms left alone: adopted")
        .stdout_has(
            "`rollback --include-adopted` undoes what this state adopted, in place of a plain \
             rollback: this one has let go of it, so adopt it again first",
        );
    let mut expected = before.clone();
    for kind in kinds {
        let key = format!("alarm {p}-proxy-{kind}");
        expected.insert(key.clone(), managed[&key].clone());
    }
    // And the anomaly detection models the adopted surge alarms use.
    for (k, v) in &managed {
        if k.starts_with("anomaly model ") {
            expected.insert(k.clone(), v.clone());
        }
    }
    assert_same(&expected, &snapshot(&emu, &ws), "a plain rollback");

    // Run again, adopted again: undone with --include-adopted.
    ws.run(&["run", "--yes"])
        .code(1)
        .stderr_has("take it over with `rds-proxy-runbook adopt RUNBOOK`");
    ws.run(&["adopt", "--yes"]).ok();
    ws.run(&["run", "--yes"]).ok();
    ws.run(&["rollback", "--yes", "--include-adopted"])
        .ok()
        .stdout_has("✓ alarms");
    assert_same(&before, &snapshot(&emu, &ws), "rollback --include-adopted");
}

/// A listing of anomaly detection models that fails (CloudWatch
/// unavailable, past the SDK's retries) is no answer: the step fails
/// rather than take it for "the region has none" (which would choose
/// static thresholds and record a model made by hand as not there
/// before, for rollback to delete). Once CloudWatch answers, the run
/// records the hand-made model, and rollback leaves it.
#[test]
fn a_failed_listing_of_models_is_no_answer_and_a_hand_made_model_survives() {
    let (emu, mut ws) = setup("alarms_models_fail");
    let layer = ws.behind_fault_layer(&emu);
    let proxy = ws.env["DB_NAME"].clone();
    put_model(&emu, &proxy, "ClientConnections", "Maximum");
    let model = format!("anomaly model ClientConnections Maximum ProxyName={proxy}");
    let with_model = snapshot(&emu, &ws);
    assert!(with_model.contains_key(&model), "{with_model:?}");
    layer.fail(
        "DescribeAnomalyDetectors",
        support::faults::Fault::Unavailable,
        1000,
    );
    ws.run(&["run", "--yes"])
        .code(1)
        .stderr_has("anomaly detection");
    layer.clear_faults();
    ws.run(&["run", "--yes"]).ok();
    ws.run(&["rollback", "--yes"]).ok();
    assert_same(
        &with_model,
        &snapshot(&emu, &ws),
        "rollback left exactly what was there, the hand-made model with it",
    );
}
