use super::*;
use crate::runbook::alarm_defaults as defaults;

fn figures(max: i64, anomaly: Result<(), String>) -> Figures {
    Figures {
        max_connections: Some((max, "set by DB parameter group p".into())),
        clients: Some((12, "seed".into())),
        anomaly,
    }
}

fn all() -> Vec<AlarmSettings> {
    AlarmKind::ALL.iter().map(|k| defaults(*k, "rb")).collect()
}

fn threshold(a: &Alarm) -> f64 {
    match a.rule {
        Rule::Threshold { value, .. } => value,
        Rule::Band { .. } => panic!("{} is a band", a.name),
    }
}

#[test]
fn the_connections_threshold_is_a_share_of_max_connections_in_whole_connections() {
    assert_eq!(connections_threshold(40, 80), 32);
    assert_eq!(connections_threshold(320, 80), 256);
    // 75% of 66 is 49.5: the alarm comes a connection early, not late.
    assert_eq!(connections_threshold(66, 75), 49);
    assert_eq!(connections_threshold(400, 100), 400);
}

#[test]
fn each_alarm_says_where_its_threshold_comes_from() {
    let want = desired(&all(), &Notify::default(), &figures(40, Err("no".into()))).unwrap();
    assert_eq!(want.len(), 5);
    let db = &want[0];
    assert_eq!(threshold(db), 32.0);
    assert!(
        db.line()
            .contains("80% of the DB's max_connections 40 (set by DB parameter group p)"),
        "{}",
        db.line()
    );
    assert!(db.line().contains("Maximum >= 32 in 3 of 5 periods of 60s"));
    let pinned = &want[1];
    assert_eq!(pinned.metric, "DatabaseConnectionsCurrentlySessionPinned");
    assert!(pinned.line().contains("> 0") && pinned.line().contains("15 minutes"));
    assert_eq!(threshold(&want[2]), 99.9);
    assert!(want[2].line().contains("< 99.9"));
    // No anomaly detection: the budget's worst case, and why.
    assert_eq!(threshold(&want[3]), 12.0);
    assert!(
        want[3]
            .line()
            .contains("worst case of 12 client connections")
            && want[3]
                .line()
                .contains("anomaly detection is not offered here: no"),
        "{}",
        want[3].line()
    );
    // 12 clients x 10 queries/s x 60 s.
    assert_eq!(threshold(&want[4]), 7200.0);
}

#[test]
fn max_connections_moving_moves_the_threshold_shown_as_a_difference() {
    let settings = &all()[..1];
    let old = desired(settings, &Notify::default(), &figures(60, Ok(()))).unwrap();
    let new = desired(settings, &Notify::default(), &figures(40, Ok(()))).unwrap();
    let d = differences("rb-db", &old[0].shape("px"), &new[0].shape("px"));
    assert_eq!(d, vec!["alarm rb-db threshold: 48 -> 32"]);
    assert!(differences("rb-db", &new[0].shape("px"), &new[0].shape("px")).is_empty());
}

#[test]
fn surges_use_anomaly_bands_where_offered_unless_asked_otherwise() {
    let mut s = all();
    let want = desired(&s, &Notify::default(), &figures(40, Ok(()))).unwrap();
    assert!(matches!(want[3].rule, Rule::Band { deviations, .. } if deviations == 2.0));
    assert!(want[3].line().contains("the account offers it"));
    assert_eq!(
        want[3].shape("px").band,
        "ANOMALY_DETECTION_BAND(m1, 2)".to_string()
    );
    s[3].mode = Some(SurgeMode::Static);
    s[4].threshold = Some(500.0);
    let want = desired(&s, &Notify::default(), &figures(40, Ok(()))).unwrap();
    assert_eq!(threshold(&want[3]), 12.0);
    assert!(
        want[3]
            .line()
            .contains("the runbook asks for a static threshold")
    );
    // A threshold is for the static way: auto still takes the band offered.
    assert!(matches!(want[4].rule, Rule::Band { .. }));
    s[4].mode = Some(SurgeMode::Anomaly);
    let err = desired(&s, &Notify::default(), &figures(40, Err("NotFound".into()))).unwrap_err();
    assert!(
        err.contains("mode = \"anomaly\"") && err.contains("NotFound"),
        "{err}"
    );
}

#[test]
fn a_topic_notifies_alarm_and_on_request_ok_and_insufficient_data() {
    let notify = Notify {
        sns_topic_arn: Some("arn:aws:sns:us-east-1:123456789012:ops".into()),
        ok: true,
        insufficient_data: false,
    };
    let want = desired(&all()[..1], &notify, &figures(40, Ok(()))).unwrap();
    assert_eq!(want[0].alarm_actions, want[0].ok_actions);
    assert!(want[0].insufficient_data_actions.is_empty());
    let quiet = desired(&all()[..1], &Notify::default(), &figures(40, Ok(()))).unwrap();
    assert_eq!(
        differences("a", &quiet[0].shape("px"), &want[0].shape("px")),
        vec![
            "alarm a alarm actions: (none) -> arn:aws:sns:us-east-1:123456789012:ops",
            "alarm a OK actions: (none) -> arn:aws:sns:us-east-1:123456789012:ops",
        ]
    );
}

#[test]
fn without_max_connections_the_percentage_cannot_be_worked_out() {
    let f = Figures {
        max_connections: None,
        clients: None,
        anomaly: Ok(()),
    };
    let err = desired(&all()[..1], &Notify::default(), &f).unwrap_err();
    assert!(
        err.contains("max_connections cannot be worked out"),
        "{err}"
    );
}
