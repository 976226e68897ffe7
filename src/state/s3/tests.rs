use super::lock::{locked_message, random_id};
use super::*;

#[test]
fn an_s3_place_is_a_bucket_and_a_key() {
    let p = S3Place::parse("s3://team/rds/orders.state.json")
        .unwrap()
        .unwrap();
    assert_eq!(
        (p.bucket.as_str(), p.key.as_str()),
        ("team", "rds/orders.state.json")
    );
    assert_eq!(p.to_string(), "s3://team/rds/orders.state.json");
    assert_eq!(p.lock_key(), "rds/orders.state.json.lock");
    assert!(S3Place::parse("state.json").is_none(), "a local path");
    for bad in [
        "s3://",
        "s3://bucket",
        "s3://bucket/",
        "s3:///key",
        "s3://b/dir/",
    ] {
        assert!(S3Place::parse(bad).unwrap().is_err(), "{bad}");
    }
}

#[test]
fn lock_ids_differ_and_the_message_says_how_to_remove_one() {
    assert_ne!(random_id(), random_id());
    assert_eq!(random_id().len(), 16);
    let place = S3Place::parse("s3://b/k").unwrap().unwrap();
    let h = Holder::me("run");
    let m = locked_message(&place, Some(&h));
    assert!(
        m.contains(&format!("unlock RUNBOOK --force {}", h.id)),
        "{m}"
    );
    assert!(m.contains(&h.host) && m.contains("`run`"), "{m}");
}

#[test]
fn the_conditions_answers_are_told_apart() {
    assert!(is_precondition_failed(Some("PreconditionFailed")));
    assert!(is_conflict(Some("ConditionalRequestConflict")));
    assert!(is_missing(Some("NoSuchKey")));
    assert!(!is_precondition_failed(Some("AccessDenied")));
}
