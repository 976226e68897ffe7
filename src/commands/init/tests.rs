use super::existing::Existing;
use super::*;
use crate::runbook::AuthScheme;

#[test]
fn names_fit_aws_limits() {
    assert_eq!(default_name("orders-db"), "orders-db-proxy");
    let long = format!("a{}", "-b".repeat(40));
    let name = default_name(&long);
    assert!(name.len() <= 60 && name.ends_with("-proxy"), "{name}");
    assert!(check_proxy_name(&name).is_ok(), "{name}");
    assert_eq!(suffixed("abc-", "-x", 5), "abc-x");
    assert_eq!(suffixed(&"r".repeat(60), "-rds-proxy", 64).len(), 64);
}

/// The runbook `init` wrote, parsed (the text shown when it does not).
fn parsed(text: &str) -> Runbook {
    Runbook::parse(
        Path::new("x.toml"),
        text,
        &|_| None,
        &crate::steps::Catalogue,
    )
    .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn function(vars: &[(&str, &str)]) -> Function {
    Function {
        name: "api".into(),
        role: Some("arn:aws:iam::123456789012:role/service/api-role".into()),
        security_groups: vec!["sg-0aaaaaaaaaaaaaaa1".into(), "sg-0aaaaaaaaaaaaaaa2".into()],
        variables: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Function::default()
    }
}

#[test]
fn the_variable_holding_the_db_endpoint_is_chosen() {
    let db = ["db.example".to_string()];
    let f = with_env_var(
        function(&[("LOG", "db.example"), ("PGHOST", "db.example"), ("X", "y")]),
        &db,
        None,
    );
    assert_eq!(
        (f.env_var.as_str(), f.env_var_note),
        ("PGHOST", "holds the DB's endpoint now")
    );
    assert!(f.variables.is_empty(), "values are dropped once used");
    let f = with_env_var(function(&[("DB_HOST", "elsewhere")]), &db, None);
    assert_eq!(
        (f.env_var.as_str(), f.env_var_note),
        ("DB_HOST", "the function has it now")
    );
    assert!(!f.on_proxy);
    let f = with_env_var(function(&[("DB_HOST", "p.proxy")]), &db, Some("p.proxy"));
    assert_eq!(
        (f.env_var.as_str(), f.env_var_note, f.on_proxy),
        ("DB_HOST", "holds the proxy's endpoint now", true)
    );
    let f = with_env_var(function(&[]), &db, None);
    assert_eq!(f.env_var, "DB_HOST");
    assert!(f.env_var_note.starts_with("not set"));
}

/// An Aurora PostgreSQL cluster with two members in two subnets.
fn orders_cluster() -> Db {
    Db {
        kind: Kind::Cluster,
        id: "orders".into(),
        engine: "aurora-postgresql".into(),
        engine_version: "16.1".into(),
        status: "available".into(),
        members: 2,
        port: Some(5432),
        address: Some("orders.cluster-x.us-east-1.rds.amazonaws.com".into()),
        vpc_id: Some("vpc-0123456789abcdef0".into()),
        subnets: vec![
            ("subnet-0aaaaaaaaaaaaaaaa".into(), "us-east-1a".into()),
            ("subnet-0bbbbbbbbbbbbbbbb".into(), "us-east-1b".into()),
        ],
        security_groups: vec!["sg-0123456789abcdef0".into(), "sg-0fedcba9876543210".into()],
        network_type: "IPV4".into(),
        ..Db::default()
    }
}

/// What init writes for `db` and `functions` as runbook `orders-proxy`,
/// the secret given.
fn render_orders(db: &Db, functions: &[Function]) -> String {
    render(&Rendered {
        name: "orders-proxy",
        region: "us-east-1",
        account: "123456789012",
        db,
        secret: "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!cluster-1-AbCdEf",
        secret_given: true,
        functions,
        existing: None,
        capacity: None,
    })
}

#[test]
fn what_init_writes_loads_and_carries_the_account_values() {
    let db = orders_cluster();
    let functions = [with_env_var(
        function(&[("DB_HOST", "leak-canary-7f3")]),
        db.address.as_slice(),
        None,
    )];
    let text = render_orders(&db, &functions);
    let rb = parsed(&text);
    assert_eq!(rb.name, "orders-proxy");
    assert_eq!(rb.database.port, 5432);
    assert_eq!(rb.database.engine_family, EngineFamily::Postgresql);
    assert_eq!(rb.lambdas.len(), 1);
    assert_eq!(rb.steps.len(), 10);
    assert!(text.contains("cluster_id = \"orders\""), "{text}");
    assert!(text.contains("(also: sg-0fedcba9876543210)"), "{text}");
    assert!(text.contains("(also: sg-0aaaaaaaaaaaaaaa2)"), "{text}");
    assert!(text.contains("# role api-role"), "{text}");
    assert!(text.contains("given with --secret"), "{text}");
    assert!(
        !text.contains("leak-canary-7f3"),
        "a variable's value never reaches the file"
    );
}

#[test]
fn a_db_with_iam_auth_on_is_offered_end_to_end_iam() {
    let db = Db {
        kind: Kind::Instance,
        id: "app-db".into(),
        engine: "postgres".into(),
        engine_version: "16".into(),
        status: "available".into(),
        instance_class: Some("db.t3.micro".into()),
        cluster: None,
        members: 0,
        port: Some(5432),
        address: Some("app-db.x.us-east-1.rds.amazonaws.com".into()),
        vpc_id: Some("vpc-0123456789abcdef0".into()),
        subnets: vec![
            ("subnet-0aaaaaaaaaaaaaaaa".into(), "us-east-1a".into()),
            ("subnet-0bbbbbbbbbbbbbbbb".into(), "us-east-1b".into()),
        ],
        security_groups: vec!["sg-0123456789abcdef0".into()],
        managed_secret: None,
        resource_id: Some("db-ABCDEFGHIJKL".into()),
        iam_auth: true,
        network_type: "IPV4".into(),
        ..Db::default()
    };
    let functions = [with_env_var(function(&[]), db.address.as_slice(), None)];
    let load = |secret: &str| {
        let text = render(&Rendered {
            name: "app-proxy",
            region: "us-east-1",
            account: "123456789012",
            db: &db,
            secret,
            secret_given: !secret.is_empty(),
            functions: &functions,
            existing: None,
            capacity: None,
        });
        let rb = parsed(&text);
        (text, rb)
    };
    // No secret found: the proxy logs in with IAM.
    let (text, rb) = load("");
    assert_eq!(rb.proxy.default_auth_scheme, AuthScheme::IamAuth, "{text}");
    assert!(rb.database.secret_arn.is_none(), "{text}");
    // A secret: kept, and end-to-end IAM offered in a comment.
    let (text, rb) = load("arn:aws:secretsmanager:us-east-1:123456789012:secret:s-AbCdEf");
    assert_eq!(rb.proxy.default_auth_scheme, AuthScheme::None, "{text}");
    assert!(
        text.contains("# default_auth_scheme = \"IAM_AUTH\""),
        "{text}"
    );
    // Not for SQL Server, nor without IAM database authentication.
    for db in [
        Db {
            engine: "sqlserver-ex".into(),
            ..db.clone()
        },
        Db {
            iam_auth: false,
            ..db.clone()
        },
    ] {
        assert!(!end_to_end_iam_possible(&db), "{db:?}");
    }
}

#[test]
fn a_proxy_already_in_front_is_described_for_adopt() {
    let db = Db {
        kind: Kind::Instance,
        id: "app-db".into(),
        engine: "mysql".into(),
        engine_version: "8.0".into(),
        status: "available".into(),
        instance_class: Some("db.t3.micro".into()),
        cluster: None,
        members: 0,
        port: Some(3306),
        address: Some("app-db.x.us-east-1.rds.amazonaws.com".into()),
        vpc_id: Some("vpc-0123456789abcdef0".into()),
        subnets: vec![("subnet-0aaaaaaaaaaaaaaaa".into(), "us-east-1a".into())],
        security_groups: vec!["sg-0123456789abcdef0".into()],
        managed_secret: Some(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-1-AbCdEf".into(),
        ),
        resource_id: Some("db-ABCDEFGHIJKL".into()),
        iam_auth: true,
        network_type: "IPV4".into(),
        ..Db::default()
    };
    let existing = Existing {
        name: "by-hand".into(),
        endpoint: "by-hand.proxy-x.us-east-1.rds.amazonaws.com".into(),
        why: "its target is DB instance app-db".into(),
        role_name: Some("AWSCookbook403RDSProxy".into()),
        security_group: Some((
            "sg-0aaaaaaaaaaaaaaa9".into(),
            "AWSCookbook403RDSProxySG".into(),
            "Lambda Security Group".into(),
        )),
        subnets: vec![
            "subnet-0cccccccccccccccc".into(),
            "subnet-0dddddddddddddddd".into(),
        ],
        secret_arn: Some("arn:aws:secretsmanager:us-east-1:123456789012:secret:book-AbCdEf".into()),
        iam_auth: "REQUIRED".into(),
        require_tls: true,
        idle_client_timeout: Some(900),
        pool: Some((40, 20, 60)),
        connect_policy: Some(("AWSCookbook403RdsIamPolicy".into(), "admin".into())),
        secrets_managed: true,
        ..Existing::default()
    };
    let functions = [with_env_var(
        function(&[("DB_HOST", &existing.endpoint)]),
        db.address.as_slice(),
        Some(&existing.endpoint),
    )];
    let text = render(&Rendered {
        name: "app-db-proxy",
        region: "us-east-1",
        account: "123456789012",
        db: &db,
        secret: existing.secret_arn.as_deref().unwrap(),
        secret_given: false,
        functions: &functions,
        existing: Some(&existing),
        capacity: None,
    });
    let rb = parsed(&text);
    let none = |_: &str, _: &str| None;
    assert_eq!(rb.proxy.name.fill(&none).unwrap(), "by-hand");
    assert_eq!(rb.proxy.idle_client_timeout, 900);
    assert_eq!(rb.pool.max_connections_percent, 40);
    assert_eq!(rb.secret_access.as_str(), "managed");
    // The DB's endpoint for --include-adopted only: a plain rollback
    // leaves the function on the proxy it was found on.
    assert!(rb.lambdas[0].restore_value.is_none(), "{text}");
    assert!(rb.lambdas[0].include_adopted_restore_value.is_some());
    for want in [
        "adopt <this file>",
        "name = \"AWSCookbook403RDSProxy\"",
        "description = \"Lambda Security Group\"",
        "subnet_ids = [\"subnet-0cccccccccccccccc\", \"subnet-0dddddddddddddddd\"]",
        "secret_arn = \"arn:aws:secretsmanager:us-east-1:123456789012:secret:book-AbCdEf\"",
        "db_user = \"admin\"",
        "\ninclude_adopted_restore_value = \"app-db.x.us-east-1.rds.amazonaws.com\"",
    ] {
        assert!(text.contains(want), "{want} in:\n{text}");
    }
    // A proxy with two secrets: both as [[auth]] tables, no
    // database.secret_arn (a run would otherwise drop the second).
    let arn = |n: &str| format!("arn:aws:secretsmanager:us-east-1:123456789012:secret:{n}");
    let two = Existing {
        auth: vec![
            existing::AuthFound {
                secret_arn: arn("book-AbCdEf"),
                user: Some("admin".into()),
                iam_auth: "REQUIRED".into(),
                client_password_auth_type: Some("MYSQL_NATIVE_PASSWORD".into()),
            },
            existing::AuthFound {
                secret_arn: arn("reader-AbCdEf"),
                user: None,
                iam_auth: "DISABLED".into(),
                client_password_auth_type: None,
            },
        ],
        ..existing.clone()
    };
    let text = render(&Rendered {
        name: "app-db-proxy",
        region: "us-east-1",
        account: "123456789012",
        db: &db,
        secret: two.secret_arn.as_deref().unwrap(),
        secret_given: false,
        functions: &functions,
        existing: Some(&two),
        capacity: None,
    });
    let rb = parsed(&text);
    assert!(rb.database.secret_arn.is_none(), "{text}");
    assert_eq!(rb.auth.len(), 2, "{text}");
    assert_eq!(rb.auth[0].user.as_deref(), Some("admin"));
    assert_eq!(rb.auth[1].iam_auth, "DISABLED");
}

#[test]
fn what_init_writes_is_the_template_filled_in() {
    let db = orders_cluster();
    let functions = [
        with_env_var(function(&[("DB_HOST", "x")]), db.address.as_slice(), None),
        with_env_var(
            Function {
                name: "reports".into(),
                ..function(&[])
            },
            db.address.as_slice(),
            None,
        ),
    ];
    let text = render_orders(&db, &functions);
    // Every explanation of the template is there as it stands, every
    // section too: init cannot drift from the template (nor restate it).
    for line in template::TEMPLATE.lines().skip_while(|l| *l != "#") {
        let explains = line.starts_with('#') && !line.contains(" = ");
        assert!(!explains || text.contains(line), "lacks {line:?}:\n{text}");
    }
    // Its own values, with the template's comment or its own.
    for want in [
        "region = \"us-east-1\"\n",
        "port = 5432  # default: the engine family's port\n",
        "\ncluster_id = \"orders\"  # aurora-postgresql 16.1, 2 member(s)\n",
        "# [alarms]  # DatabaseConnections alarm at 80% of max_connections (not read",
    ] {
        assert!(text.contains(want), "lacks {want:?}:\n{text}");
    }
    // Both functions, each its own table; no instance_id beside the cluster.
    assert_eq!(text.matches("\n[[lambda]]\n").count(), 2, "{text}");
    assert!(!text.contains("instance_id = "), "{text}");
    assert_eq!(parsed(&text).lambdas.len(), 2);
}

/// A value for a key the template lacks is written at its table's end,
/// not lost.
#[test]
fn a_key_the_template_lacks_is_not_lost() {
    let mut t = template::Filled::new();
    t.section("proxy").value("no_such_key", "1");
    t.section("invoke_check").noted("another", "\"x\"", "why");
    let text = t.render();
    assert!(text.contains("\nno_such_key = 1\n"), "{text}");
    assert!(text.contains("\nanother = \"x\"  # why\n"), "{text}");
    let proxy = text.find("[proxy]\n").unwrap();
    let pool = text.find("[pool]\n").unwrap();
    let at = text.find("no_such_key").unwrap();
    assert!(proxy < at && at < pool, "in [proxy]:\n{text}");
}
