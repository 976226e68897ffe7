//! Preflight's unit tests: the groups read in one call, the functions'
//! variables (their room, those left on the DB), engines and secrets.

use std::collections::HashMap;

use aws_sdk_ec2::types::SecurityGroup;

use super::network::read_groups;
use super::secrets::{secret_has_credentials, secret_is_for};
use super::*;
use crate::runbook::EngineFamily;

#[test]
fn groups_are_read_in_one_call_and_one_each_only_when_one_is_missing() {
    use crate::steps::mock::{Mocked, block_on};
    use aws_sdk_ec2::Client;
    use aws_sdk_ec2::error::ErrorMetadata;
    use aws_sdk_ec2::operation::describe_security_groups::{
        DescribeSecurityGroupsError, DescribeSecurityGroupsOutput,
    };
    use aws_smithy_mocks::mock;
    let ids = vec!["sg-1".to_string(), "sg-2".to_string()];
    let error = |code: &'static str| {
        move || DescribeSecurityGroupsError::generic(ErrorMetadata::builder().code(code).build())
    };

    // Refused: that one call is the answer, and it names every group.
    let batch = mock!(Client::describe_security_groups).then_error(error("UnauthorizedOperation"));
    let m = Mocked::new(&[], &[&batch], &[]);
    let e = block_on(read_groups(&m.aws, &ids)).unwrap_err().to_string();
    assert!(
        e.contains("sg-1, sg-2") && e.contains("UnauthorizedOperation"),
        "{e}"
    );
    assert_eq!(batch.num_calls(), 1);

    // One does not exist: the batch fails, and a call each says which.
    let batch = mock!(Client::describe_security_groups)
        .match_requests(|r| r.group_ids().len() == 2)
        .then_error(error("InvalidGroup.NotFound"));
    let first = mock!(Client::describe_security_groups)
        .match_requests(|r| r.group_ids() == ["sg-1"])
        .then_output(|| {
            DescribeSecurityGroupsOutput::builder()
                .security_groups(SecurityGroup::builder().group_id("sg-1").build())
                .build()
        });
    let second = mock!(Client::describe_security_groups)
        .match_requests(|r| r.group_ids() == ["sg-2"])
        .then_error(error("InvalidGroup.NotFound"));
    let m = Mocked::new(&[], &[&batch, &first, &second], &[]);
    let found = block_on(read_groups(&m.aws, &ids)).unwrap();
    assert_eq!(
        found.iter().map(Option::is_some).collect::<Vec<_>>(),
        [true, false]
    );
    assert_eq!(
        (batch.num_calls(), first.num_calls(), second.num_calls()),
        (1, 1, 1)
    );
}

#[test]
fn a_function_whose_variables_would_outgrow_4_kb_is_a_problem() {
    use crate::runbook::Runbook;
    let path = std::path::Path::new("runbooks/template.toml");
    let rb = Runbook::load(path, &|_| None, true, &crate::steps::Catalogue).unwrap();
    let function = rb.lambdas[0].function_name.literal().unwrap();
    let state = crate::state::State::new(&rb.name);
    let room = |filler: usize| {
        let vars = HashMap::from([
            (
                rb.lambdas[0].env_var.clone(),
                "db.rds.amazonaws.com".to_string(),
            ),
            ("BIG".to_string(), "v".repeat(filler)),
        ]);
        let mut r = Report::default();
        environment_room(
            &rb,
            &state,
            "us-east-1",
            &[(function.clone(), vars)],
            &mut r,
        );
        r.problems
    };
    assert!(room(3000).is_empty());
    let problems = room(4050);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].what.contains("lambda[0].function_name"),
        "{problems:?}"
    );
    assert!(
        problems[0].what.contains("template.toml:134:1"),
        "{problems:?}"
    );
    assert!(problems[0].fix.contains("bytes of room"), "{problems:?}");
}

#[test]
fn variables_left_on_the_db_are_named_never_shown() {
    let vars: HashMap<String, String> = [
        ("DB_HOST", "orders.abc.eu-west-1.rds.amazonaws.com"),
        (
            "DATABASE_URL",
            "mysql://app:hunter2@ORDERS.abc.eu-west-1.rds.amazonaws.com/app",
        ),
        ("READ_HOST", "orders.abc.eu-west-1.rds.amazonaws.com:3306"),
        ("LOG_LEVEL", "debug"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let host = "orders.abc.eu-west-1.rds.amazonaws.com";
    assert_eq!(
        left_on_the_db(&vars, &["DB_HOST"], host),
        ["DATABASE_URL", "READ_HOST"]
    );
    assert_eq!(
        left_on_the_db(&vars, &["DB_HOST", "READ_HOST"], host),
        ["DATABASE_URL"]
    );
    assert!(left_on_the_db(&vars, &["DB_HOST"], "other.rds.amazonaws.com").is_empty());
}

#[test]
fn engines_map_to_families() {
    assert_eq!(family_of("mysql"), Ok(EngineFamily::Mysql));
    assert_eq!(family_of("aurora-mysql"), Ok(EngineFamily::Mysql));
    assert_eq!(family_of("mariadb"), Ok(EngineFamily::Mysql));
    assert_eq!(family_of("postgres"), Ok(EngineFamily::Postgresql));
    assert_eq!(family_of("aurora-postgresql"), Ok(EngineFamily::Postgresql));
    assert_eq!(family_of("sqlserver-ex"), Ok(EngineFamily::Sqlserver));
    assert!(family_of("oracle-ee").unwrap_err().contains("Oracle"));
    assert!(family_of("db2-se").is_err());
}

#[test]
fn secrets_need_username_and_password_and_are_never_quoted() {
    assert!(secret_has_credentials(r#"{"username":"admin","password":"s3cret"}"#).is_ok());
    let e = secret_has_credentials(r#"{"username":"admin","password":""}"#).unwrap_err();
    assert_eq!(e, "its JSON has no password");
    assert!(secret_is_for(
        r#"{"username":"admin","password":"s"}"#,
        "admin"
    ));
    assert!(!secret_is_for(
        r#"{"username":"admin","password":"s"}"#,
        "app"
    ));
    assert!(!secret_is_for("hunter2", "app"));
    let e = secret_has_credentials("hunter2").unwrap_err();
    assert_eq!(e, "its value is not JSON");
    assert!(!e.contains("hunter2"));
    assert_eq!(
        secret_has_credentials("{}").unwrap_err(),
        "its JSON has no username or password"
    );
}
