//! The proxy step's unit tests: the differences and statuses, and the
//! step against a mocked RDS.

use std::collections::BTreeMap;

use aws_sdk_rds::types::{
    ClientPasswordAuthType, DbProxy, DbProxyStatus, EndpointNetworkType, IamAuthMode,
    TargetConnectionNetworkType, UserAuthConfigInfo,
};

use super::inputs::auth_config;
use super::*;

fn inputs() -> Inputs {
    Inputs {
        name: "p".into(),
        engine_family: "MYSQL".into(),
        secret_arn: Some("arn:s".into()),
        iam_auth: "REQUIRED".into(),
        auth: Vec::new(),
        default_auth_scheme: "NONE".into(),
        endpoint_network_type: "IPV4".into(),
        target_connection_network_type: "IPV4".into(),
        role_arn: "arn:r".into(),
        subnet_ids: vec!["a".into(), "b".into()],
        security_group_ids: vec!["sg".into()],
        require_tls: true,
        idle_client_timeout: 1800,
        debug_logging: false,
        tags: BTreeMap::new(),
        wait_timeout_seconds: 60,
    }
}

fn proxy() -> aws_sdk_rds::types::builders::DbProxyBuilder {
    DbProxy::builder()
        .db_proxy_name("p")
        .engine_family("MYSQL")
        .require_tls(true)
        .auth(
            UserAuthConfigInfo::builder()
                .secret_arn("arn:s")
                .iam_auth(IamAuthMode::Required)
                .build(),
        )
        .role_arn("arn:r")
        .vpc_subnet_ids("b")
        .vpc_subnet_ids("a")
        .vpc_security_group_ids("sg")
        .idle_client_timeout(1800)
        .debug_logging(false)
}

#[test]
fn same_proxy_has_no_differences_whatever_the_subnet_order() {
    assert_eq!(
        differences(&proxy().build(), &inputs(), &[]),
        Differences::default()
    );
}

#[test]
fn modify_covers_settings_and_only_engine_and_subnets_need_a_new_proxy() {
    let p = proxy()
        .engine_family("POSTGRESQL")
        .require_tls(false)
        .role_arn("arn:other")
        .idle_client_timeout(300)
        .debug_logging(true)
        .vpc_security_group_ids("sg2")
        .build();
    let d = differences(&p, &inputs(), &[]);
    assert_eq!(d.replace, vec!["engine family: POSTGRESQL -> MYSQL"]);
    assert_eq!(
        d.in_place,
        vec![
            "require TLS: false -> true",
            "role: arn:other -> arn:r",
            r#"security groups: {"sg", "sg2"} -> {"sg"}"#,
            "idle client timeout: 300 -> 1800",
            "debug logging: true -> false",
        ]
    );
    let mut i = inputs();
    i.subnet_ids.push("c".into());
    let d = differences(&proxy().build(), &i, &["a".into(), "b".into()]);
    assert!(d.replace[0].starts_with("subnets"), "{d:?}");
    assert!(d.in_place.is_empty());
}

#[test]
fn end_to_end_iam_and_the_secret_are_changed_in_place() {
    // The book's proxy moved to end-to-end IAM, its secret kept.
    let mut i = inputs();
    i.default_auth_scheme = "IAM_AUTH".into();
    let d = differences(&proxy().build(), &i, &[]);
    assert_eq!(d.in_place, vec!["default auth scheme: NONE -> IAM_AUTH"]);
    assert!(d.replace.is_empty());
    // Then its secret dropped: the clients' IAM setting, which lives in
    // the secret's entry, is no difference then.
    i.secret_arn = None;
    let iam = proxy().default_auth_scheme("IAM_AUTH").build();
    assert_eq!(
        differences(&iam, &i, &[]).in_place,
        vec!["secret: arn:s -> none"]
    );
    let bare = DbProxy::builder()
        .db_proxy_name("p")
        .engine_family("MYSQL")
        .default_auth_scheme("IAM_AUTH")
        .require_tls(true)
        .role_arn("arn:r")
        .vpc_subnet_ids("a")
        .vpc_subnet_ids("b")
        .vpc_security_group_ids("sg")
        .build();
    assert_eq!(differences(&bare, &i, &[]), Differences::default());
    assert!(auth_config(&i).is_empty());
}

#[test]
fn auth_entries_are_compared_secret_by_secret() {
    let entry = |arn: &str, iam: &str, cpat: Option<&str>| AuthInput {
        secret_arn: arn.into(),
        user: None,
        iam_auth: iam.into(),
        client_password_auth_type: cpat.map(String::from),
        description: None,
    };
    let mut i = inputs();
    i.secret_arn = None;
    i.auth = vec![
        entry("arn:s", "DISABLED", None),
        entry("arn:t", "REQUIRED", Some("MYSQL_NATIVE_PASSWORD")),
    ];
    // The book's proxy (arn:s, REQUIRED): one secret more, the first's
    // clients' IAM changed; AWS's default password type is no change
    // where the runbook names none.
    let d = differences(&proxy().build(), &i, &[]);
    assert_eq!(
        d.in_place,
        vec![
            "secrets: arn:s -> arn:s, arn:t",
            "IAM auth of arn:s: REQUIRED -> DISABLED"
        ]
    );
    let two = proxy()
        .set_auth(Some(vec![
            UserAuthConfigInfo::builder()
                .secret_arn("arn:t")
                .iam_auth(IamAuthMode::Required)
                .client_password_auth_type(ClientPasswordAuthType::MysqlCachingSha2Password)
                .build(),
            UserAuthConfigInfo::builder()
                .secret_arn("arn:s")
                .iam_auth(IamAuthMode::Disabled)
                .client_password_auth_type(ClientPasswordAuthType::MysqlNativePassword)
                .build(),
        ]))
        .build();
    assert_eq!(
        differences(&two, &i, &[]).in_place,
        vec![
            "client password auth of arn:t: MYSQL_CACHING_SHA2_PASSWORD -> \
             MYSQL_NATIVE_PASSWORD"
        ]
    );
    // A user the runbook names is compared (the proxy reports none here).
    i.auth[0].user = Some("app".into());
    assert!(
        differences(&two, &i, &[])
            .in_place
            .contains(&"user of arn:s: none -> app".to_string())
    );
    i.auth[0].user = None;
    let config = auth_config(&i);
    assert_eq!(config.len(), 2);
    assert_eq!(
        config[1].client_password_auth_type(),
        Some(&ClientPasswordAuthType::MysqlNativePassword)
    );
    // Recorded with the entries, without the book's secret.
    let v = serde_json::to_value(&i).unwrap();
    assert_eq!(v["auth"][1]["secret_arn"], "arn:t");
    assert!(
        v["auth"][0].get("client_password_auth_type").is_none(),
        "{v}"
    );
}

#[test]
fn inputs_recorded_before_end_to_end_iam_read_the_same() {
    // What a state written by an earlier version holds: no scheme; the
    // book's inputs serialize the same, so their checksum is unchanged.
    let mut v = serde_json::to_value(inputs()).unwrap();
    assert!(v.get("default_auth_scheme").is_none(), "{v}");
    assert!(v.get("auth").is_none(), "{v}");
    assert_eq!(v["secret_arn"], "arn:s");
    v.as_object_mut().unwrap().remove("default_auth_scheme");
    let back: Inputs = serde_json::from_value(v).unwrap();
    assert_eq!(back.default_auth_scheme, "NONE");
    let mut iam = inputs();
    iam.default_auth_scheme = "IAM_AUTH".into();
    iam.secret_arn = None;
    let v = serde_json::to_value(&iam).unwrap();
    assert_eq!(v["default_auth_scheme"], "IAM_AUTH");
    assert!(v.get("secret_arn").is_none(), "{v}");
}

#[test]
fn network_types_need_a_new_proxy() {
    let mut i = inputs();
    i.endpoint_network_type = "DUAL".into();
    i.target_connection_network_type = "IPV6".into();
    let d = differences(&proxy().build(), &i, &[]);
    assert_eq!(
        d.replace,
        vec![
            "endpoint network type: IPV4 -> DUAL",
            "target connection network type: IPV4 -> IPV6"
        ]
    );
    assert!(d.in_place.is_empty());
    let dual = proxy()
        .endpoint_network_type(EndpointNetworkType::Dual)
        .target_connection_network_type(TargetConnectionNetworkType::Ipv6)
        .build();
    assert_eq!(differences(&dual, &i, &[]), Differences::default());
    let v = serde_json::to_value(inputs()).unwrap();
    assert!(v.get("endpoint_network_type").is_none(), "{v}");
}

#[test]
fn a_subnet_aws_left_out_at_creation_is_no_difference_later() {
    let mut i = inputs();
    i.subnet_ids.push("e".into());
    let made_with: Vec<String> = vec!["a".into(), "b".into(), "e".into()];
    // The proxy has a and b: AWS dropped e, which it was made with.
    assert_eq!(
        differences(&proxy().build(), &i, &made_with),
        Differences::default()
    );
    // Unknown what it was made with: e is missing, so a new proxy.
    let d = differences(&proxy().build(), &i, &[]);
    assert!(d.replace[0].starts_with("subnets"), "{d:?}");
    // A subnet the proxy has and the runbook no longer lists.
    let d = differences(&proxy().vpc_subnet_ids("z").build(), &i, &made_with);
    assert!(d.replace[0].starts_with("subnets"), "{d:?}");
}

#[test]
fn terminal_statuses_fail_early_with_what_to_check() {
    assert!(matches!(status_decision("available"), Ok(Wait::Ready(()))));
    assert!(matches!(status_decision("creating"), Ok(Wait::Pending(s)) if s == "creating"));
    assert!(matches!(status_decision("modifying"), Ok(Wait::Pending(_))));
    let e = status_decision("incompatible-network")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("two Availability Zones") && e.contains("free IP"),
        "{e}"
    );
    let e = status_decision("insufficient-resource-limits")
        .unwrap_err()
        .to_string();
    assert!(e.contains("limits"), "{e}");
}

#[test]
fn outputs_carry_the_prx_id() {
    let p = proxy()
        .db_proxy_arn("arn:aws:rds:us-east-1:123456789012:db-proxy:prx-0123")
        .endpoint("p.proxy-x.us-east-1.rds.amazonaws.com")
        .build();
    let o = outputs(&p).unwrap();
    assert_eq!(o["id"], "prx-0123");
    assert_eq!(o["endpoint"], "p.proxy-x.us-east-1.rds.amazonaws.com");
    let bad = proxy().db_proxy_arn("arn:aws:rds:x:1:db-proxy").build();
    assert!(outputs(&bad).is_err());
}

mod mocked {
    use super::*;
    use crate::steps::mock::{Mocked, RUNBOOK, block_on};
    use aws_sdk_rds::Client;
    use aws_sdk_rds::error::ErrorMetadata;
    use aws_sdk_rds::operation::create_db_proxy::{CreateDBProxyError, CreateDbProxyOutput};
    use aws_sdk_rds::operation::delete_db_proxy::DeleteDbProxyOutput;
    use aws_sdk_rds::operation::describe_db_proxies::{
        DescribeDBProxiesError, DescribeDbProxiesOutput,
    };
    use aws_sdk_rds::operation::list_tags_for_resource::ListTagsForResourceOutput;
    use aws_smithy_mocks::mock;

    const ARN: &str = "arn:aws:rds:us-east-1:123456789012:db-proxy:prx-0abc";

    fn with_status(status: DbProxyStatus) -> impl Fn() -> DescribeDbProxiesOutput {
        move || {
            DescribeDbProxiesOutput::builder()
                .db_proxies(
                    proxy()
                        .db_proxy_arn(ARN)
                        .endpoint("p.proxy-x.rds.amazonaws.com")
                        .status(status.clone())
                        .build(),
                )
                .build()
        }
    }

    fn ours() -> aws_smithy_mocks::Rule {
        mock!(Client::list_tags_for_resource).then_output(|| {
            ListTagsForResourceOutput::builder()
                .tag_list(
                    aws_sdk_rds::types::Tag::builder()
                        .key(crate::runbook::OWNER_TAG)
                        .value(RUNBOOK)
                        .build(),
                )
                .build()
        })
    }

    fn not_found() -> DescribeDBProxiesError {
        DescribeDBProxiesError::generic(
            ErrorMetadata::builder()
                .code("DBProxyNotFoundFault")
                .build(),
        )
    }

    fn created() -> aws_smithy_mocks::Rule {
        mock!(Client::create_db_proxy).then_output(|| CreateDbProxyOutput::builder().build())
    }

    #[test]
    fn a_proxy_that_stays_creating_times_out_with_its_status() {
        // A run that died after the create: the proxy is there, so no
        // create is sent, and the tags are read once to know it ours.
        let create = mock!(Client::create_db_proxy).then_error(|| {
            CreateDBProxyError::generic(
                ErrorMetadata::builder()
                    .code("DBProxyAlreadyExistsFault")
                    .build(),
            )
        });
        let describe =
            mock!(Client::describe_db_proxies).then_output(with_status(DbProxyStatus::Creating));
        let tags = ours();
        let m = Mocked::new(&[&create, &describe, &tags], &[], &[]);
        let mut i = inputs();
        i.wait_timeout_seconds = 30;
        let e = block_on(StepImpl::apply(&Proxy, &m.cx(), &i))
            .unwrap_err()
            .to_string();
        assert!(e.contains("DB proxy p is still creating"), "{e}");
        assert!(e.contains("the limit is 30s"), "{e}");
        assert!(
            describe.num_calls() > 3,
            "polled {} times",
            describe.num_calls()
        );
        assert_eq!(tags.num_calls(), 1, "ownership is read once");
        assert_eq!(create.num_calls(), 0, "it exists: no create");
    }

    #[test]
    fn a_creating_proxy_is_waited_on_until_available() {
        let describe = mock!(Client::describe_db_proxies)
            .sequence()
            .error(not_found)
            .output(with_status(DbProxyStatus::Creating))
            .times(3)
            .output(with_status(DbProxyStatus::Available))
            .repeatedly()
            .build();
        let (create, tags) = (created(), ours());
        let m = Mocked::new(&[&create, &describe, &tags], &[], &[]);
        let out = block_on(StepImpl::apply(&Proxy, &m.cx(), &inputs())).unwrap();
        assert_eq!(out["id"], "prx-0abc");
        assert_eq!(out["endpoint"], "p.proxy-x.rds.amazonaws.com");
        assert_eq!(create.num_calls(), 1);
        assert_eq!(
            describe.num_calls(),
            5,
            "one look first, then one per status"
        );
        assert_eq!(tags.num_calls(), 0, "made by this call: ours");
    }

    #[test]
    fn a_terminal_status_fails_early() {
        let describe = mock!(Client::describe_db_proxies)
            .sequence()
            .error(not_found)
            .output(with_status(DbProxyStatus::IncompatibleNetwork))
            .repeatedly()
            .build();
        let create = created();
        let m = Mocked::new(&[&create, &describe], &[], &[]);
        let e = block_on(StepImpl::apply(&Proxy, &m.cx(), &inputs())).unwrap_err();
        assert!(e.to_string().contains("incompatible-network"), "{e}");
        assert_eq!(describe.num_calls(), 2, "no waiting on a terminal status");
    }

    #[test]
    fn a_missing_proxy_is_to_create_and_already_rolled_back() {
        let describe = mock!(Client::describe_db_proxies).then_error(not_found);
        let m = Mocked::new(&[&describe], &[], &[]);
        let found = block_on(StepImpl::check(&Proxy, &m.cx(), &inputs())).unwrap();
        assert_eq!(found, Found::Missing);
        let undone = block_on(StepImpl::rollback(&Proxy, &m.cx(), &inputs(), None)).unwrap();
        assert!(matches!(undone, Undone::AlreadyGone(_)), "{undone:?}");
    }

    #[test]
    fn rollback_deletes_and_waits_until_the_proxy_is_proxy_part_gone() {
        let describe = mock!(Client::describe_db_proxies)
            .sequence()
            .output(with_status(DbProxyStatus::Available))
            .output(with_status(DbProxyStatus::Deleting))
            .times(2)
            .error(not_found)
            .build();
        let delete =
            mock!(Client::delete_db_proxy).then_output(|| DeleteDbProxyOutput::builder().build());
        let tags = ours();
        let m = Mocked::new(&[&describe, &delete, &tags], &[], &[]);
        let undone = block_on(StepImpl::rollback(&Proxy, &m.cx(), &inputs(), None)).unwrap();
        assert_eq!(undone, Undone::Done("deleted DB proxy p".into()));
        assert_eq!(delete.num_calls(), 1);
        assert_eq!(describe.num_calls(), 4);
    }

    #[test]
    fn a_proxy_without_our_tag_is_foreign_and_left_alone() {
        let describe =
            mock!(Client::describe_db_proxies).then_output(with_status(DbProxyStatus::Available));
        let tags = mock!(Client::list_tags_for_resource)
            .then_output(|| ListTagsForResourceOutput::builder().build());
        let m = Mocked::new(&[&describe, &tags], &[], &[]);
        let found = block_on(StepImpl::check(&Proxy, &m.cx(), &inputs())).unwrap();
        assert!(matches!(found, Found::Foreign(_)), "{found:?}");
        let undone = block_on(StepImpl::rollback(&Proxy, &m.cx(), &inputs(), None)).unwrap();
        assert!(matches!(undone, Undone::LeftAlone(_)), "{undone:?}");
    }
}
