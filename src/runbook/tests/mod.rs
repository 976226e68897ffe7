use std::collections::HashMap;
use std::path::Path;

use super::*;
use crate::steps::Catalogue;

fn cookbook_env() -> HashMap<&'static str, &'static str> {
    HashMap::from([
        ("VPC_ID", "vpc-0a1b2c3d4e5f60718"),
        (
            "ISOLATED_SUBNETS",
            "subnet-0aaaaaaaaaaaaaaaa subnet-0bbbbbbbbbbbbbbbb",
        ),
        ("RDS_ID", "db1"),
        ("RDS_SG", "sg-0dddddddddddddddd"),
        (
            "RDS_SECRET_ARN",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:s-AbC",
        ),
        ("DB_NAME", "db1"),
        ("DB_APP_FUNCTION_NAME", "fn1"),
        ("DB_APP_FUNCTION_SG_ID", "sg-0ffffffffffffffff"),
    ])
}

fn parse_with(src: &str, env: &HashMap<&str, &str>) -> Result<Runbook, RunbookError> {
    let lookup = |name: &str| env.get(name).map(|v| v.to_string());
    Runbook::parse(Path::new("runbooks/x.toml"), src, &lookup, &Catalogue)
}

fn parse(src: &str) -> Result<Runbook, RunbookError> {
    parse_with(src, &cookbook_env())
}

fn errors(src: &str) -> Vec<Diagnostic> {
    parse(src).expect_err("should not parse").diagnostics
}

/// A small valid runbook; tests append or replace lines.
const MINIMAL: &str = r#"name = "t"
steps = ["proxy-role", "proxy-security-group"]
[network]
vpc_id = "${env.VPC_ID}"
subnet_ids = "${env.ISOLATED_SUBNETS}"
[database]
instance_id = "db1"
security_group_id = "sg-0dddddddddddddddd"
secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:s"
engine_family = "MYSQL"
[proxy_role]
name = "role"
[proxy_security_group]
name = "sg"
[proxy]
name = "p1"
[connect_policy]
name = "pol"
"#;

#[test]
fn the_shipped_cookbook_runbook_parses() {
    let src = include_str!("../../runbooks/cookbook-4.3-mysql.toml");
    let lookup = |name: &str| cookbook_env().get(name).map(|v| v.to_string());
    let rb = Runbook::parse(
        Path::new("runbooks/cookbook-4.3-mysql.toml"),
        src,
        &lookup,
        &Catalogue,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rb.name, "cookbook-4-3");
    assert_eq!(
        rb.proxy_role.name.literal().unwrap(),
        "AWSCookbook403RDSProxy"
    );
    assert_eq!(
        rb.proxy_security_group.name.literal().unwrap(),
        "AWSCookbook403RDSProxySG"
    );
    assert_eq!(rb.database.port, 3306);
    assert_eq!(rb.tags.get(OWNER_TAG).unwrap(), "cookbook-4-3");
    assert_eq!(rb.tags.get("Project").unwrap(), "AWSCookbook403");
    let subnets: Vec<_> = rb
        .proxy
        .subnet_ids
        .iter()
        .map(|t| t.literal().unwrap())
        .collect();
    assert_eq!(
        subnets,
        ["subnet-0aaaaaaaaaaaaaaaa", "subnet-0bbbbbbbbbbbbbbbb"]
    );
    assert_eq!(
        rb.proxy_role.trust_policy["Statement"][0]["Principal"]["Service"],
        "rds.amazonaws.com"
    );
}

#[test]
fn the_template_runbook_parses_without_environment() {
    let src = include_str!("../../runbooks/template.toml");
    let none = |_: &str| None;
    Runbook::parse(Path::new("runbooks/template.toml"), src, &none, &Catalogue)
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn defaults_are_aws_defaults() {
    let rb = parse(MINIMAL).unwrap();
    assert!(rb.proxy.require_tls);
    assert_eq!(rb.proxy.iam_auth, "REQUIRED");
    assert_eq!(rb.proxy.idle_client_timeout, 1800);
    assert_eq!(rb.pool.max_connections_percent, 100);
    assert_eq!(rb.pool.max_idle_connections_percent, 50);
    assert_eq!(rb.pool.connection_borrow_timeout, 120);
    assert_eq!(rb.secret_access, "least-privilege");
    assert_eq!(rb.database.port, 3306);
    assert_eq!(
        rb.proxy.role_arn.refs().collect::<Vec<_>>(),
        [("proxy-role", "arn")]
    );
    assert_eq!(
        rb.proxy.security_group_ids[0].refs().collect::<Vec<_>>(),
        [("proxy-security-group", "group_id")]
    );
    // The proxy's subnets default to the network's.
    assert_eq!(rb.proxy.subnet_ids.len(), 2);
}

#[test]
fn port_defaults_follow_the_engine_family() {
    let rb = parse(&MINIMAL.replace("\"MYSQL\"", "\"POSTGRESQL\"")).unwrap();
    assert_eq!(rb.database.port, 5432);
    let rb = parse(&MINIMAL.replace("\"MYSQL\"", "\"sqlserver\"")).unwrap();
    assert_eq!(rb.database.port, 1433);
}

#[test]
fn unknown_key_names_position_and_suggestion() {
    let src = MINIMAL.replace(
        "[proxy]\nname = \"p1\"",
        "[proxy]\nname = \"p1\"\nrequire_tsl = true",
    );
    let d = errors(&src);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].key, "proxy.require_tsl");
    assert_eq!(d[0].pos, Pos { line: 17, col: 1 });
    assert!(
        d[0].message.contains("did you mean `require_tls`"),
        "{}",
        d[0].message
    );
}

#[test]
fn wrong_types_are_reported() {
    let src = MINIMAL.replace(
        "name = \"p1\"",
        "name = \"p1\"\nrequire_tls = \"yes\"\nidle_client_timeout = \"30\"",
    );
    let d = errors(&src);
    let keys: Vec<&str> = d.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys, ["proxy.require_tls", "proxy.idle_client_timeout"]);
    assert!(
        d[0].message
            .contains("expected true or false, found string")
    );
    assert!(d[1].message.contains("expected an integer, found string"));
}

#[test]
fn missing_required_values_say_what_to_add() {
    let src = MINIMAL.replace(
        "secret_arn = \"arn:aws:secretsmanager:us-east-1:123456789012:secret:s\"\n",
        "",
    );
    let d = errors(&src);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].key, "database.secret_arn");
    assert!(
        d[0].message.contains("add `secret_arn = "),
        "{}",
        d[0].message
    );
    assert!(d[0].message.contains("in [database]"));
    assert_eq!(d[0].pos.line, 6, "points at the [database] table");

    let src = MINIMAL.replace("[connect_policy]\nname = \"pol\"\n", "");
    let d = errors(&src);
    assert_eq!(d[0].key, "connect_policy");
    assert!(d[0].message.contains("add a `[connect_policy]` table"));
}

#[test]
fn unset_environment_variables_are_errors_with_the_fix() {
    let mut env = cookbook_env();
    env.remove("VPC_ID");
    let d = parse_with(MINIMAL, &env).unwrap_err().diagnostics;
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].key, "network.vpc_id");
    assert_eq!(
        d[0].pos,
        Pos { line: 4, col: 11 },
        "points at the reference itself"
    );
    assert!(d[0].message.contains("`VPC_ID` is not set"));
    assert!(d[0].message.contains("export it"));
}

#[test]
fn step_references_are_checked() {
    // Unknown step, unknown output, a step not listed, a step listed later.
    let src = MINIMAL.replace("name = \"sg\"", "name = \"${steps.proxy-rol.arn}\"");
    let d = errors(&src);
    assert!(d[0].message.contains("did you mean `proxy-role`"), "{d:?}");

    let src = MINIMAL.replace("name = \"sg\"", "name = \"${steps.proxy-role.id}\"");
    let d = errors(&src);
    assert!(
        d[0].message
            .contains("has no output `id`; its outputs are: arn, name"),
        "{d:?}"
    );

    let src = MINIMAL
        .replace("name = \"sg\"", "name = \"${steps.proxy-role.name}-sg\"")
        .replace(
            "steps = [\"proxy-role\", \"proxy-security-group\"]",
            "steps = [\"proxy-security-group\"]",
        );
    let d = errors(&src);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(
        d[0].message.contains("`proxy-role` is not in `steps`"),
        "{d:?}"
    );

    // Writing the value instead is offered only where a key can hold it.
    let listing = |steps: &str| {
        MINIMAL.replace(
            "steps = [\"proxy-role\", \"proxy-security-group\"]",
            &format!("steps = {steps}"),
        )
    };
    let d = errors(&listing(r#"["proxy-security-group", "proxy"]"#));
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].key, "proxy.role_arn", "{d:?}");
    assert!(
        d[0].message
            .contains("or write the value in `proxy.role_arn` instead"),
        "{d:?}"
    );
    // A step's own need of the proxy (targets reads its name): with `proxy`
    // left out, `proxy.name` names an existing one, read from the account.
    let rb = parse(&listing(r#"["targets"]"#));
    assert!(rb.is_ok(), "{:?}", rb.err());

    let src = MINIMAL
        .replace("name = \"sg\"", "name = \"${steps.proxy-role.name}-sg\"")
        .replace(
            "steps = [\"proxy-role\", \"proxy-security-group\"]",
            "steps = [\"proxy-security-group\", \"proxy-role\"]",
        );
    let d = errors(&src);
    assert!(d[0].message.contains("which runs later"), "{d:?}");

    // In the right order it is fine, and stays a reference until run time.
    let src = MINIMAL.replace("name = \"sg\"", "name = \"${steps.proxy-role.name}-sg\"");
    let rb = parse(&src).unwrap();
    assert!(rb.proxy_security_group.name.literal().is_none());
    let filled = rb
        .proxy_security_group
        .name
        .fill(&|s, o| (s == "proxy-role" && o == "name").then(|| "R".to_string()))
        .unwrap();
    assert_eq!(filled, "R-sg");
}

#[test]
fn step_list_problems() {
    let src = MINIMAL.replace(
        "steps = [\"proxy-role\", \"proxy-security-group\"]",
        "steps = [\"proxy-role\", \"proxy-role\", \"nope\", 3]",
    );
    let d = errors(&src);
    let messages: Vec<&str> = d.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(d.len(), 3, "{messages:?}");
    assert!(messages[0].contains("listed twice"));
    assert!(messages[1].contains("unknown step `nope`"));
    assert!(messages[2].contains("expected a step name"));
}

#[test]
fn all_problems_are_reported_at_once_in_file_order() {
    let src = MINIMAL
        .replace("name = \"p1\"", "name = \"1p\"\niam_auth = \"SOMETIMES\"")
        .replace(
            "engine_family = \"MYSQL\"",
            "engine_family = \"oracle-ee\"\nport = 0",
        )
        .replace("name = \"t\"", "name = \"t\"\nextra = 1");
    let d = errors(&src);
    assert_eq!(d.len(), 5, "{d:?}");
    let mut sorted = d.clone();
    sorted.sort_by_key(|d| d.pos);
    assert_eq!(d, sorted);
    let text = RunbookError {
        path: "runbooks/x.toml".into(),
        diagnostics: d,
        source: None,
    }
    .to_string();
    assert!(text.contains("runbooks/x.toml has 5 problems; nothing was changed"));
    assert!(
        text.contains("runbooks/x.toml:2:1: `extra`: unknown key"),
        "{text}"
    );
    assert!(text.contains("does not support Oracle"));
    assert!(text.contains("must start with a letter"));
    assert!(text.contains("`SOMETIMES` is not one of: REQUIRED, DISABLED"));
}

#[test]
fn invalid_toml_is_one_error_with_position() {
    let d = errors("name = \"x\"\nsteps = [\n");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].pos.line, 2);
    assert!(d[0].message.starts_with("not valid TOML"));
}

#[test]
fn owner_tag_cannot_be_overridden() {
    let src = format!("{MINIMAL}[tags]\n\"{OWNER_TAG}\" = \"someone-else\"\n");
    let d = errors(&src);
    assert!(d[0].message.contains("set by the tool"), "{d:?}");
}

#[test]
fn exactly_one_database_target() {
    let src = MINIMAL.replace("instance_id = \"db1\"\n", "");
    assert!(errors(&src)[0].message.contains("exactly one of"));
    let src = MINIMAL.replace(
        "instance_id = \"db1\"",
        "instance_id = \"db1\"\ncluster_id = \"c1\"",
    );
    assert!(errors(&src)[0].message.contains("exactly one of"));
}

#[test]
fn lambdas_and_subnet_arrays() {
    let src = MINIMAL.replace(
        "subnet_ids = \"${env.ISOLATED_SUBNETS}\"",
        "subnet_ids = [\"subnet-01111111\", \"subnet-02222222\", \"subnet-03333333\"]",
    ) + "[[lambda]]\nfunction_name = \"a\"\n[[lambda]]\nfunction_name = \"b\"\nenv_var = \"DATABASE_HOST\"\n";
    let rb = parse(&src).unwrap();
    assert_eq!(rb.proxy.subnet_ids.len(), 3);
    assert_eq!(rb.lambdas.len(), 2);
    assert_eq!(rb.lambdas[0].env_var, "DB_HOST");
    assert_eq!(rb.lambdas[1].env_var, "DATABASE_HOST");

    let src = MINIMAL.to_string() + "[[lambda]]\nfuncton_name = \"a\"\n";
    let d = errors(&src);
    let keys: Vec<&str> = d.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys, ["lambda[0].function_name", "lambda[0].functon_name"]);
}

#[test]
fn proxy_names_follow_aws_rules() {
    assert!(check_proxy_name("my-proxy-1").is_ok());
    assert!(check_proxy_name(&"a".repeat(63)).is_ok());
    assert!(check_proxy_name(&"a".repeat(64)).is_err());
    for bad in ["", "1abc", "a--b", "a-", "a_b", &"a".repeat(64), "ab c"] {
        assert!(check_proxy_name(bad).is_err(), "{bad:?} should be refused");
    }
}

#[test]
fn runbook_names_are_safe_for_files_and_tags() {
    assert!(check_runbook_name("cookbook-4-3").is_ok());
    for bad in ["", "../x", "a b", "-a", &"a".repeat(65)] {
        assert!(check_runbook_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn positions_count_characters_not_bytes() {
    let src = "é = 1\nab";
    assert_eq!(
        Pos::at(src, src.find('=').unwrap()),
        Pos { line: 1, col: 3 }
    );
    assert_eq!(
        Pos::at(src, src.find('b').unwrap()),
        Pos { line: 2, col: 2 }
    );
}

#[test]
fn an_unset_variable_is_one_problem_not_two() {
    let mut env = cookbook_env();
    env.remove("RDS_ID");
    let src = include_str!("../../runbooks/cookbook-4.3-mysql.toml");
    let d = parse_with(src, &env).unwrap_err().diagnostics;
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(d[0].message.contains("`RDS_ID` is not set"));
}

#[test]
fn pool_percentages_point_at_the_value_and_show_both() {
    let src = MINIMAL.to_string()
        + "[pool]\nmax_connections_percent = 30\nmax_idle_connections_percent = 50\n";
    let d = errors(&src);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].pos.line, 21, "the max_idle line");
    assert_eq!(
        d[0].message,
        "50 must not exceed max_connections_percent (30)"
    );
}

#[test]
fn the_graph_lets_independent_steps_run_at_once_and_orders_the_rest() {
    let src = include_str!("../../runbooks/cookbook-4.3-mysql.toml");
    let rb = parse(src).unwrap();
    let g = crate::steps::dependencies(&rb);
    let deps = |s: &str| g[s].iter().map(String::as_str).collect::<Vec<_>>();
    assert!(deps("proxy-role").is_empty());
    assert!(deps("proxy-security-group").is_empty());
    assert_eq!(deps("secret-access"), ["proxy-role"]);
    assert_eq!(
        deps("proxy"),
        ["proxy-role", "secret-access", "proxy-security-group"]
    );
    assert_eq!(deps("db-ingress"), ["proxy-security-group"]);
    assert_eq!(deps("lambda-ingress"), ["proxy-security-group"]);
    assert_eq!(deps("connect-policy"), ["proxy"]);
    assert_eq!(deps("targets"), ["secret-access", "proxy", "db-ingress"]);
    assert_eq!(
        deps("lambda-env"),
        ["proxy", "connect-policy", "targets", "lambda-ingress"]
    );
    assert_eq!(
        deps("invoke-check"),
        ["connect-policy", "targets", "lambda-ingress", "lambda-env"]
    );
    // A run that makes the proxy does not wait for its role's grant (the
    // target does); one that changes it does.
    let making = crate::steps::dependencies_for(&rb, |s| s == "proxy");
    assert_eq!(making["proxy"], ["proxy-role", "proxy-security-group"]);
    assert_eq!(making["targets"], g["targets"]);
    let making_all = crate::steps::dependencies_for(&rb, |_| true);
    assert_eq!(
        making_all["targets"], g["targets"],
        "waits that always hold"
    );
}

#[test]
fn a_step_listed_before_what_it_must_follow_is_an_error_with_the_reason() {
    let src = include_str!("../../runbooks/cookbook-4.3-mysql.toml").replace(
        "  \"db-ingress\",            # 6. DB SG admits the proxy SG\n  \"targets\",",
        "  \"targets\",\n  \"db-ingress\",",
    );
    let d = errors(&src);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(
        d[0].message
            .contains("`targets` is listed before `db-ingress`"),
        "{d:?}"
    );
    assert!(d[0].message.contains("CONNECTION_FAILED"), "{d:?}");
    assert!(
        d[0].message.contains("list `db-ingress` before `targets`"),
        "{d:?}"
    );
    assert!(d[0].pos.line > 1, "{d:?}");
}

#[test]
fn each_problem_shows_its_line_with_the_value_marked() {
    let src = MINIMAL.replace("name = \"p1\"", "name = \"p1\"\niam_auth = \"SOMETIMES\"");
    let err = parse(&src).unwrap_err();
    let text = render(&err, false);
    // The line people read first, as before, then the file's line marked.
    assert!(
        text.contains("runbooks/x.toml:17:12: `proxy.iam_auth`: `SOMETIMES` is not one of"),
        "{text}"
    );
    assert!(text.contains("iam_auth = \"SOMETIMES\""), "{text}");
    let marked = text
        .lines()
        .find(|l| l.contains("───"))
        .unwrap_or_else(|| panic!("no marker: {text}"));
    let value_at = text
        .lines()
        .find(|l| l.contains("iam_auth = "))
        .unwrap()
        .find("\"SOMETIMES")
        .unwrap();
    let marker_at = marked.find('─').unwrap();
    assert_eq!(
        text.lines().find(|l| l.contains("iam_auth = ")).unwrap()[..value_at]
            .chars()
            .count(),
        marked[..marker_at].chars().count(),
        "the marker starts under the value:\n{text}"
    );
    // Without the file's text (it could not be read), the lines alone.
    let bare = RunbookError {
        source: None,
        ..err
    };
    assert_eq!(render(&bare, false), bare.to_string());
}

#[test]
fn end_to_end_iam_needs_no_secret_and_every_other_proxy_does() {
    let no_secret = MINIMAL.replace(
        "secret_arn = \"arn:aws:secretsmanager:us-east-1:123456789012:secret:s\"\n",
        "",
    );
    let iam = no_secret.replace(
        "[proxy]\nname = \"p1\"",
        "[proxy]\nname = \"p1\"\ndefault_auth_scheme = \"IAM_AUTH\"",
    );
    let rb = parse(&iam).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rb.proxy.default_auth_scheme, AuthScheme::IamAuth);
    assert!(rb.database.secret_arn.is_none());
    // The book's proxy logs in with its secret: without one, the error
    // names the table, the key and both ways out.
    let d = errors(&no_secret);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].key, "database.secret_arn");
    assert_eq!(d[0].pos, Pos { line: 6, col: 1 });
    assert!(
        d[0].message.contains("add `secret_arn = ")
            && d[0].message.contains("default_auth_scheme = \"IAM_AUTH\""),
        "{}",
        d[0].message
    );
    assert_eq!(
        parse(MINIMAL).unwrap().proxy.default_auth_scheme,
        AuthScheme::None
    );
}

#[test]
fn end_to_end_iam_is_refused_for_sql_server_and_the_managed_secret_policy() {
    let iam = MINIMAL.replace(
        "[proxy]\nname = \"p1\"",
        "[proxy]\nname = \"p1\"\ndefault_auth_scheme = \"iam_auth\"",
    );
    let d = errors(&iam.replace("\"MYSQL\"", "\"SQLSERVER\""));
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].key, "proxy.default_auth_scheme");
    assert_eq!(d[0].pos, Pos { line: 17, col: 23 }, "the value");
    assert!(
        d[0].message.contains("not available for SQL Server"),
        "{}",
        d[0].message
    );
    let d = errors(&format!("{iam}[secret_access]\nmode = \"managed\"\n"));
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].key, "proxy.default_auth_scheme");
    assert!(d[0].message.contains("rds-db:connect"), "{}", d[0].message);
    let d = errors(&MINIMAL.replace(
        "[proxy]\nname = \"p1\"",
        "[proxy]\nname = \"p1\"\ndefault_auth_scheme = \"IAM\"",
    ));
    assert!(
        d[0].message.contains("not one of: NONE, IAM_AUTH"),
        "{}",
        d[0].message
    );
}

#[test]
fn endpoints_and_reader_variables_are_checked_against_the_db_and_each_other() {
    let cluster = MINIMAL
        .replace("instance_id = \"db1\"", "cluster_id = \"c1\"")
        .replace(
            "steps = [\"proxy-role\", \"proxy-security-group\"]",
            "steps = [\"proxy-role\", \"proxy-security-group\", \"proxy-endpoints\"]",
        );
    let reader = "[[endpoint]]\nname = \"p1-ro\"\n[[lambda]]\nfunction_name = \"fn1\"\nread_env_var = \"DB_READ_HOST\"\n";
    let rb = parse(&format!("{cluster}{reader}")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rb.endpoints[0].target_role, "READ_ONLY");
    assert_eq!(rb.lambdas[0].read_env_var.as_deref(), Some("DB_READ_HOST"));
    // An RDS instance has no readers.
    let on_instance = format!(
        "{}{reader}",
        cluster.replace("cluster_id = \"c1\"", "instance_id = \"db1\"")
    );
    let d = errors(&on_instance);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].key, "endpoint[0].target_role");
    assert!(
        d[0].message.contains("an RDS instance has none"),
        "{}",
        d[0].message
    );
    // No step to make it.
    let d = errors(&format!(
        "{}{reader}",
        cluster.replace(", \"proxy-endpoints\"", "")
    ));
    assert!(
        d[0].message.contains("add \"proxy-endpoints\" to steps"),
        "{d:?}"
    );
    // A reader variable without an endpoint to read, or naming an unknown one.
    let d = errors(&format!(
        "{cluster}[[lambda]]\nfunction_name = \"fn1\"\nread_env_var = \"DB_READ_HOST\"\n"
    ));
    assert_eq!(d[0].key, "lambda[0].read_env_var");
    assert!(
        d[0].message.contains("there is no READ_ONLY [[endpoint]]"),
        "{}",
        d[0].message
    );
    let d = errors(&format!("{cluster}{reader}read_endpoint = \"nope\"\n"));
    assert!(
        d[0].message.contains("no [[endpoint]] named `nope`"),
        "{d:?}"
    );
    let d = errors(&format!(
        "{cluster}[[endpoint]]\nname = \"p1-ro\"\n[[lambda]]\nfunction_name = \"fn1\"\nread_env_var = \"DB_HOST\"\n"
    ));
    assert!(d[0].message.contains("is env_var already"), "{d:?}");
}

#[test]
fn a_reader_variable_waits_for_its_endpoints_host() {
    let src = MINIMAL
        .replace("instance_id = \"db1\"", "cluster_id = \"c1\"")
        .replace(
            "steps = [\"proxy-role\", \"proxy-security-group\"]",
            "steps = [\"proxy-role\", \"proxy-security-group\", \"proxy\", \"targets\", \
             \"proxy-endpoints\", \"lambda-env\"]",
        )
        + "[[endpoint]]\nname = \"p1-ro\"\n[[lambda]]\nfunction_name = \"fn1\"\nread_env_var = \"DB_READ_HOST\"\n";
    let rb = parse(&src).unwrap_or_else(|e| panic!("{e}"));
    let step = crate::steps::get("lambda-env").unwrap();
    let inputs = |endpoints: &'static str| {
        let lookup = move |s: &str, o: &str| match (s, o) {
            ("proxy", "endpoint") => Some("p1.proxy".to_string()),
            ("proxy-endpoints", "endpoints") => Some(endpoints.to_string()),
            _ => None,
        };
        let mut r = crate::steps::Resolver::new(&lookup);
        let v = step.inputs(&rb, &mut r);
        (v, r.missing)
    };
    let (v, missing) = inputs("p1-ro=p1-ro.endpoint.proxy");
    assert!(missing.is_empty(), "{missing:?}");
    assert_eq!(v["functions"][1]["endpoint"], "p1-ro.endpoint.proxy");
    // Made before the runbook named it: the step waits, never writes a
    // placeholder into the variable.
    let (_, missing) = inputs("other=other.endpoint.proxy");
    assert_eq!(
        missing,
        [(
            "proxy-endpoints".to_string(),
            "endpoints[p1-ro]".to_string()
        )]
    );
}

/// MINIMAL with its one secret moved into [[auth]] entries.
fn with_auth(entries: &str) -> String {
    let no_secret = MINIMAL.replace(
        "secret_arn = \"arn:aws:secretsmanager:us-east-1:123456789012:secret:s\"\n",
        "",
    );
    format!("{no_secret}{entries}")
}

const TWO_USERS: &str = r#"[[auth]]
secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app"
user = "app"
client_password_auth_type = "MYSQL_CACHING_SHA2_PASSWORD"
[[auth]]
secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:reader"
user = "reader"
iam_auth = "DISABLED"
description = "reports"
[[lambda]]
function_name = "api"
db_user = "app"
[[lambda]]
function_name = "report"
db_user = "reader"
"#;

#[test]
fn several_secrets_are_auth_entries_and_functions_name_their_user() {
    let rb = parse(&with_auth(TWO_USERS)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rb.auth.len(), 2);
    assert_eq!(rb.auth[0].iam_auth, "REQUIRED", "proxy.iam_auth's default");
    assert_eq!(
        rb.auth[0].client_password_auth_type,
        Some("MYSQL_CACHING_SHA2_PASSWORD")
    );
    assert_eq!(rb.auth[1].iam_auth, "DISABLED");
    assert_eq!(rb.auth[1].description.as_deref(), Some("reports"));
    assert_eq!(rb.lambdas[1].db_user.as_deref(), Some("reader"));
    // The book's one secret is no [[auth]] entry.
    assert!(parse(MINIMAL).unwrap().auth.is_empty());
}

#[test]
fn auth_entries_are_checked_against_the_engine_and_each_other() {
    // Both forms at once: which one holds the secrets?
    let d = errors(&format!("{MINIMAL}{TWO_USERS}"));
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].key, "database.secret_arn");
    assert!(d[0].message.contains("[[auth]]"), "{}", d[0].message);
    // A PostgreSQL password type on a MySQL proxy, ENABLED off SQL Server.
    let d = errors(&with_auth(
        &TWO_USERS
            .replace("MYSQL_CACHING_SHA2_PASSWORD", "POSTGRES_MD5")
            .replace("\"DISABLED\"", "\"ENABLED\""),
    ));
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!(d[0].key, "auth[0].client_password_auth_type");
    assert_eq!(d[0].pos, Pos { line: 21, col: 29 }, "the value");
    assert!(
        d[0].message
            .contains("MYSQL_NATIVE_PASSWORD or MYSQL_CACHING_SHA2_PASSWORD"),
        "{}",
        d[0].message
    );
    assert_eq!(d[1].key, "auth[1].iam_auth");
    assert!(d[1].message.contains("SQL Server"), "{}", d[1].message);
    // ENABLED is SQL Server's, with its own password type.
    let sql = with_auth(
        &TWO_USERS
            .replace("MYSQL_CACHING_SHA2_PASSWORD", "SQL_SERVER_AUTHENTICATION")
            .replace("\"DISABLED\"", "\"ENABLED\""),
    )
    .replace("\"MYSQL\"", "\"SQLSERVER\"");
    assert_eq!(
        parse(&sql).unwrap_or_else(|e| panic!("{e}")).auth[1].iam_auth,
        "ENABLED"
    );
    // One secret twice, one user twice.
    let d = errors(&with_auth(
        &TWO_USERS.replace("secret:reader", "secret:app"),
    ));
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].key, "auth[1].secret_arn");
    let d = errors(&with_auth(
        &TWO_USERS.replace("user = \"reader\"", "user = \"app\""),
    ));
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].key, "auth[1].user");
    assert_eq!(d[0].pos, Pos { line: 24, col: 8 }, "the value");
    // AWS's bounds on a description, before any call.
    let d = errors(&with_auth(&TWO_USERS.replace("\"reports\"", "\"\"")));
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].key, "auth[1].description");
}

#[test]
fn a_function_connects_as_a_user_some_secret_logs_in_as() {
    let d = errors(&with_auth(
        &TWO_USERS.replace("db_user = \"reader\"", "db_user = \"admin\""),
    ));
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].key, "lambda[1].db_user");
    assert!(
        d[0].message
            .contains("no [[auth]] entry logs in as `admin`")
            && d[0].message.contains("app, reader"),
        "{}",
        d[0].message
    );
    // `*` is every user: a function names its own.
    let d = errors(&with_auth(
        &TWO_USERS.replace("db_user = \"reader\"", "db_user = \"*\""),
    ));
    assert!(d.iter().any(|d| d.key == "lambda[1].db_user"), "{d:?}");
    // With end-to-end IAM the proxy logs in as any IAM user: no secret needed.
    let iam = with_auth("[[lambda]]\nfunction_name = \"api\"\ndb_user = \"app\"\n").replace(
        "[proxy]\nname = \"p1\"",
        "[proxy]\nname = \"p1\"\ndefault_auth_scheme = \"IAM_AUTH\"",
    );
    assert_eq!(
        parse(&iam).unwrap_or_else(|e| panic!("{e}")).lambdas[0]
            .db_user
            .as_deref(),
        Some("app")
    );
}

#[test]
fn a_function_variable_set_by_two_tables_is_refused_at_the_second() {
    let two = |second: &str| format!("{MINIMAL}[[lambda]]\nfunction_name = \"app\"\n\n{second}");
    let d = errors(&two("[[lambda]]\nfunction_name = \"app\"\n"));
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].key, "lambda[1].function_name");
    assert_eq!(d[0].pos, Pos { line: 22, col: 1 }, "the second table");
    assert!(
        d[0].message
            .contains("lambda[0] (line 19) sets DB_HOST of Lambda app already"),
        "{}",
        d[0].message
    );
    // By ARN, it is the same function; a reader variable counts too.
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:app";
    let d = errors(&two(&format!(
        "[[lambda]]\nfunction_name = \"{arn}\"\nenv_var = \"OTHER\"\nread_env_var = \"DB_HOST\"\n"
    )));
    assert!(
        d.iter().any(|d| d.key == "lambda[1].function_name"),
        "{d:?}"
    );
    // Another variable of the same function is another table's to set.
    let rb = parse(&two(
        "[[lambda]]\nfunction_name = \"app\"\nenv_var = \"DATABASE_HOST\"\n",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rb.lambdas.len(), 2);
}

#[test]
fn tags_are_checked_as_a_whole_too() {
    let tags = |lines: &str| format!("{MINIMAL}[tags]\n{lines}");
    // 49 of the user's and the tool's own: 50, IAM's most.
    let many = |n: usize| {
        (0..n)
            .map(|i| format!("T{i} = \"v\"\n"))
            .collect::<String>()
    };
    parse(&tags(&many(49))).unwrap_or_else(|e| panic!("{e}"));
    let d = errors(&tags(&many(50)));
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].key, "tags");
    assert!(d[0].message.contains("make 51"), "{}", d[0].message);
    // One key twice in IAM's eyes, and the tool's own in another case.
    let d = errors(&tags(
        "Team = \"a\"\nteam = \"b\"\n\"RDS-PROXY-RUNBOOK:runbook\" = \"x\"\n",
    ));
    let keys: Vec<&str> = d.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(
        keys,
        ["tags.team", "tags.RDS-PROXY-RUNBOOK:runbook"],
        "{d:?}"
    );
    assert!(
        d[0].message.contains("`Team` is a tag already"),
        "{}",
        d[0].message
    );
    // A value from the environment is checked as filled.
    let mut env = cookbook_env();
    env.insert("TEAM", "a, b");
    let src = tags("Team = \"${env.TEAM}\"\n");
    let d = parse_with(&src, &env).unwrap_err().diagnostics;
    assert_eq!(d[0].key, "tags.Team", "{d:?}");
}

#[test]
fn aws_limits_on_names_descriptions_and_variables() {
    let d = errors(&MINIMAL.replace(
        "[proxy_security_group]\nname = \"sg\"",
        "[proxy_security_group]\nname = \"sg\"\ndescription = \"Sécurité\"",
    ));
    assert_eq!(d[0].key, "proxy_security_group.description", "{d:?}");
    let d = errors(&format!(
        "{MINIMAL}[[lambda]]\nfunction_name = \"a\"\nenv_var = \"AWS_REGION\"\nread_env_var = \"DB-HOST\"\n"
    ));
    let keys: Vec<&str> = d.iter().map(|d| d.key.as_str()).collect();
    assert!(keys.contains(&"lambda[0].env_var"), "{d:?}");
    assert!(keys.contains(&"lambda[0].read_env_var"), "{d:?}");
    let d = errors(&format!(
        "{MINIMAL}[pool]\nconnection_borrow_timeout = 301\n"
    ));
    assert!(d[0].message.contains("use 0 to 300"), "{d:?}");
    // A lenient load does not judge a value it does not know.
    let dir = std::env::temp_dir().join(format!("rpr-lenient-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("r.toml");
    let src = format!("{MINIMAL}[[lambda]]\nfunction_name = \"a\"\nenv_var = \"${{env.VAR}}\"\n");
    std::fs::write(&path, src).unwrap();
    let env = cookbook_env();
    let lookup = |name: &str| env.get(name).map(|v| v.to_string());
    Runbook::load(&path, &lookup, true, &Catalogue).unwrap_or_else(|e| panic!("{e}"));
    assert!(Runbook::load(&path, &lookup, false, &Catalogue).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_invoke_check_probes_or_invokes_never_both() {
    let rb = parse(&format!("{MINIMAL}[invoke_check]\nprobe = true\n")).unwrap();
    assert!(rb.invoke_check.probe);
    assert!(!parse(MINIMAL).unwrap().invoke_check.probe);
    let errs = errors(&format!(
        "{MINIMAL}[invoke_check]\npayload = \"{{}}\"\nprobe = true\n"
    ));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].key, "invoke_check.probe");
    assert_eq!((errs[0].pos.line, errs[0].pos.col), (21, 9), "{errs:?}");
    assert!(
        errs[0].message.contains("remove payload and expect"),
        "{errs:?}"
    );
}
