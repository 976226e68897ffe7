//! The secret-access step's unit tests: the least-privilege document,
//! what a first pass keeps, and the step against a mocked IAM.

use super::document::{SecretGrant, customer_key, least_privilege};
use super::*;

fn secret<'a>(arn: &'a str, kms_key: Option<&'static str>) -> Vec<SecretGrant<'a>> {
    vec![SecretGrant { arn, kms_key }]
}

#[test]
fn least_privilege_reads_only_this_secret() {
    let doc = least_privilege(
        &secret("arn:aws:secretsmanager:us-east-1:1:secret:s", None),
        None,
        "us-east-1",
        "1",
    );
    let st = doc["Statement"].as_array().unwrap();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0]["Action"], "secretsmanager:GetSecretValue");
    assert_eq!(
        st[0]["Resource"],
        "arn:aws:secretsmanager:us-east-1:1:secret:s"
    );
}

#[test]
fn customer_keys_add_decrypt_through_secrets_manager() {
    let doc = least_privilege(
        &secret("arn:s", Some("1234-abcd")),
        None,
        "eu-west-1",
        "111",
    );
    let st = &doc["Statement"][1];
    assert_eq!(st["Action"], "kms:Decrypt");
    assert_eq!(st["Resource"], "arn:aws:kms:eu-west-1:111:key/1234-abcd");
    assert_eq!(
        st["Condition"]["StringEquals"]["kms:ViaService"],
        "secretsmanager.eu-west-1.amazonaws.com"
    );
    let arn = "arn:aws:kms:eu-west-1:111:key/k";
    assert_eq!(
        least_privilege(&secret("arn:s", Some(arn)), None, "eu-west-1", "111")["Statement"][1]["Resource"],
        arn
    );
    assert_eq!(
        least_privilege(&secret("arn:s", Some("alias/mine")), None, "r", "1")["Statement"][1]["Resource"],
        "*"
    );
}

#[test]
fn end_to_end_iam_connects_to_the_dbs_resource_id_as_the_user() {
    let doc = least_privilege(&[], Some(("db-ABC", &["app"][..])), "eu-west-1", "111");
    let st = doc["Statement"].as_array().unwrap();
    assert_eq!(st.len(), 1, "no secret: no read of one");
    assert_eq!(st[0]["Action"], "rds-db:connect");
    assert_eq!(
        st[0]["Resource"],
        "arn:aws:rds-db:eu-west-1:111:dbuser:db-ABC/app"
    );
    // Moving a proxy to end-to-end IAM: both, as AWS's migration guide.
    let both = least_privilege(
        &secret("arn:s", None),
        Some(("cluster-XYZ", &["*"][..])),
        "r",
        "1",
    );
    assert_eq!(both["Statement"].as_array().unwrap().len(), 2);
    assert_eq!(
        both["Statement"][1]["Resource"],
        "arn:aws:rds-db:r:1:dbuser:cluster-XYZ/*"
    );
}

#[test]
fn a_dropped_grant_is_kept_until_the_removals() {
    let old = least_privilege(&secret("arn:old", None), None, "r", "1");
    let new = least_privilege(&secret("arn:new", None), None, "r", "1");
    let kept = keeping(&new, &old);
    let resources: Vec<&Value> = kept["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["Resource"])
        .collect();
    assert_eq!(resources, [&json!("arn:new"), &json!("arn:old")]);
    // One Sid once: the kept statement has none.
    assert!(kept["Statement"][1].get("Sid").is_none(), "{kept}");
    assert_eq!(keeping(&new, &kept), kept, "written twice, the same");
    // Nothing dropped: the document itself.
    assert_eq!(keeping(&new, &new), new);
    let grown = least_privilege(
        &secret("arn:new", None),
        Some(("db-1", &["u"][..])),
        "r",
        "1",
    );
    assert_eq!(keeping(&grown, &new), grown);
}

#[test]
fn inputs_recorded_before_end_to_end_iam_read_the_same() {
    let old = json!({"role_arn": "arn:r", "secret_arn": "arn:s", "mode": "least-privilege"});
    let i: Inputs = serde_json::from_value(old.clone()).unwrap();
    assert_eq!(i.secret_arn.as_deref(), Some("arn:s"));
    assert!(i.db_connect.is_none());
    assert_eq!(serde_json::to_value(&i).unwrap(), old);
}

#[test]
fn several_secrets_and_users_are_granted_exactly() {
    let grants = [
        SecretGrant {
            arn: "arn:a",
            kms_key: Some("k1"),
        },
        SecretGrant {
            arn: "arn:b",
            kms_key: None,
        },
        SecretGrant {
            arn: "arn:c",
            kms_key: Some("k1"),
        },
    ];
    let doc = least_privilege(&grants, Some(("db-1", &["app", "report"][..])), "r", "1");
    // The order of the [[auth]] tables is no difference.
    let reordered = [grants[2].clone(), grants[0].clone(), grants[1].clone()];
    assert_eq!(
        least_privilege(&reordered, Some(("db-1", &["app", "report"][..])), "r", "1"),
        doc
    );
    let st = doc["Statement"].as_array().unwrap();
    assert_eq!(st[0]["Resource"], json!(["arn:a", "arn:b", "arn:c"]));
    // One key for two secrets: granted once, and only it.
    assert_eq!(st[1]["Resource"], "arn:aws:kms:r:1:key/k1");
    assert_eq!(
        st[2]["Resource"],
        json!([
            "arn:aws:rds-db:r:1:dbuser:db-1/app",
            "arn:aws:rds-db:r:1:dbuser:db-1/report"
        ])
    );
    assert_eq!(least_privilege(&[], None, "r", "1")["Statement"], json!([]));
}

#[test]
fn the_aws_managed_key_needs_no_decrypt_grant() {
    assert_eq!(customer_key(None), None);
    assert_eq!(customer_key(Some("alias/aws/secretsmanager")), None);
    assert_eq!(
        customer_key(Some("arn:aws:kms:r:1:alias/aws/secretsmanager")),
        None
    );
    assert_eq!(customer_key(Some("k1")), Some("k1"));
}
