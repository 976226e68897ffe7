//! The runbook's reader: the shipped runbooks, defaults, problems reported
//! with their positions and fixes. By topic in the sibling files: step_list.rs,
//! auth.rs, lambdas.rs, names.rs; the helpers here.

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

mod auth;
mod lambdas;
mod names;
mod step_list;

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
    let src = include_str!("../../../runbooks/cookbook-4.3-mysql.toml");
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
    let src = include_str!("../../../runbooks/template.toml");
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
    let src = include_str!("../../../runbooks/cookbook-4.3-mysql.toml");
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
