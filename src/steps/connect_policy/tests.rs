//! The connect-policy step's unit tests (the documents' are in
//! `document.rs`).

use aws_sdk_iam::primitives::DateTime;
use aws_sdk_iam::types::PolicyVersion;

use super::diff::versions_to_prune;

fn version(id: &str, default: bool, secs: i64) -> PolicyVersion {
    PolicyVersion::builder()
        .version_id(id)
        .is_default_version(default)
        .create_date(DateTime::from_secs(secs))
        .build()
}

#[test]
fn pruning_keeps_room_for_one_more_version() {
    let few = vec![version("v1", false, 1), version("v2", true, 2)];
    assert!(versions_to_prune(&few).is_empty());
    let full = vec![
        version("v3", false, 3),
        version("v1", false, 1),
        version("v5", true, 5),
        version("v2", false, 2),
        version("v4", false, 4),
    ];
    assert_eq!(versions_to_prune(&full), vec!["v1"]);
}
