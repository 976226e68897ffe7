//! How the proxy logs in: one secret, end-to-end IAM, several secrets as
//! `[[auth]]` entries and the users functions connect as.

use super::*;

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
