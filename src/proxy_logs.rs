//! The proxy's CloudWatch Logs (`/aws/rds/proxy/NAME`), read after the
//! invoke check and by `doctor`: the failures users meet, each recognised
//! in the log lines and named with its fix. A log line is shown shortened
//! and never stored; RDS Proxy logs no password.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;

use crate::aws::{Aws, describe_error, error_code};

/// How much of an example line to show.
const SHOW: usize = 200;
/// How many events to read at most.
const LIMIT: i32 = 1000;

/// A failure recognised in the log: what, its fix, how often, an example.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub what: &'static str,
    pub fix: &'static str,
    pub count: usize,
    pub example: String,
}

/// (any of these, lower case) -> (what, fix), first match wins per line.
const KNOWN: &[(&[&str], &str, &str)] = &[
    (
        &[
            "requires tls",
            "only with ssl",
            "ssl connection is required",
            "tls is required",
        ],
        "clients connected without TLS while the proxy requires it (IAM tokens travel over TLS only)",
        "connect with TLS (MySQL: ssl_ca / --ssl-mode=REQUIRED; PostgreSQL: sslmode=require), \
         or set proxy.require_tls = false if IAM auth is not required",
    ),
    (
        &[
            "iam authentication failed",
            "iam token",
            "authentication token",
            "pam authentication failed",
        ],
        IAM_REFUSED,
        "make the token for the proxy's endpoint and port (not the DB's host), as the user the \
         connect policy allows (connect_policy.db_user), and use it within 15 minutes; the \
         function's role needs rds-db:connect on the proxy's prx- id (the connect-policy step)",
    ),
    (
        &[
            "couldn't be retrieved",
            "could not be retrieved",
            "secretsmanager:getsecretvalue",
            "kms:decrypt",
            "not authorized to read the aws secrets manager secret",
        ],
        CREDENTIALS_UNREADABLE,
        "let the proxy's role read the secret (the secret-access step; kms:Decrypt for a \
         customer-managed key); the secret must be JSON with username and password",
    ),
    (
        &["couldn't be reached", "could not be reached"],
        "the proxy cannot reach its DB",
        "the DB's security group must admit the proxy's on the DB port (the db-ingress step)",
    ),
    (
        &["could not log in to the database"],
        "the proxy's own login to the DB was refused",
        "the secret must hold the DB user's current password (and the user must exist in \
         the DB); with end-to-end IAM, the DB user must be IAM-enabled",
    ),
    (
        &[
            "no such user",
            "unknown user",
            "has no credentials for the role",
            "the password that was provided for the role",
            "does not have any registered credentials",
            "not registered",
            "password authentication failed for user",
            "access denied for user",
        ],
        NO_CREDENTIALS,
        "log in as the user of the proxy's secret (its username), or, with IAM, as \
         connect_policy.db_user; with end-to-end IAM the DB user must be an IAM one",
    ),
    (
        &["session was pinned"],
        "the client session was pinned to its DB connection (it set session state)",
        "move the session's setup into the proxy's init query (pool.init_query); for MySQL, \
         session_pinning_filters = [\"EXCLUDE_VARIABLE_SETS\"] lets variable SETs through; or \
         disconnect after each invocation",
    ),
    (
        &[
            "timed-out waiting to acquire database connection",
            "timed out waiting to acquire",
        ],
        "clients waited for a DB connection until ConnectionBorrowTimeout (the pool was full)",
        "raise pool.max_connections_percent or the DB's max_connections, cap the functions' \
         concurrency, or end transactions sooner (see `doctor`'s pinning advice)",
    ),
];

/// What the log calls the proxy unable to read its own secret.
pub const CREDENTIALS_UNREADABLE: &str = "the proxy cannot read its credentials";
/// What the log calls an IAM token refused (a refusal IAM's propagation
/// may explain, unlike a user the proxy holds no secret for).
pub const IAM_REFUSED: &str = "an IAM token was refused";
/// What the log calls a login the proxy has no credentials for (or a
/// wrong password): no wait makes it pass.
pub const NO_CREDENTIALS: &str =
    "a client logged in as a user the proxy cannot log in as (or with a wrong password)";

/// The failures `messages` show, in the order of [`KNOWN`].
pub fn diagnose<S: AsRef<str>>(messages: &[S]) -> Vec<Finding> {
    let mut found: Vec<Finding> = Vec::new();
    for m in messages {
        let m = m.as_ref();
        let lower = m.to_lowercase();
        let Some((_, what, fix)) = KNOWN
            .iter()
            .find(|(keys, _, _)| keys.iter().any(|k| lower.contains(k)))
        else {
            continue;
        };
        match found.iter_mut().find(|f| f.what == *what) {
            Some(f) => f.count += 1,
            None => found.push(Finding {
                what,
                fix,
                count: 1,
                example: m.trim().chars().take(SHOW).collect(),
            }),
        }
    }
    found.sort_by_key(|f| KNOWN.iter().position(|(_, w, _)| *w == f.what));
    found
}

pub fn log_group(proxy: &str) -> String {
    format!("/aws/rds/proxy/{proxy}")
}

/// What reading the log gave.
pub enum Read {
    /// The messages since the time asked (at most [`LIMIT`]).
    Messages(Vec<String>),
    /// No log group: the proxy has logged nothing yet.
    NoGroup,
    /// Could not be read; the text says why and what to allow.
    Unreadable(String),
}

/// The proxy's log messages since `since`.
pub async fn read(aws: &Aws, proxy: &str, since: SystemTime) -> Result<Read> {
    let group = log_group(proxy);
    let start = since
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as i64;
    match aws
        .logs
        .filter_log_events()
        .log_group_name(&group)
        .start_time(start)
        .limit(LIMIT)
        .send()
        .await
    {
        Ok(out) => Ok(Read::Messages(
            out.events()
                .iter()
                .filter_map(|e| e.message().map(String::from))
                .collect(),
        )),
        Err(e) if error_code(&e) == Some("ResourceNotFoundException") => Ok(Read::NoGroup),
        Err(e) => Ok(Read::Unreadable(format!(
            "cannot read the proxy's log {group} ({}): allow logs:FilterLogEvents on it",
            describe_error(&e)
        ))),
    }
}

/// One line per finding: what, how often, the fix, an example line.
pub fn lines(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .map(|f| {
            format!(
                "{} ({} time(s) in the proxy's log, e.g. \"{}\"); fix: {}",
                f.what, f.count, f.example, f.fix
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failures_users_meet_are_named_with_their_fix() {
        let log = [
            "2026-12-02T10:00:00 [WARN] [default] This RDS Proxy requires TLS connections.",
            "2026-12-02T10:00:01 [WARN] [default] This RDS Proxy requires TLS connections.",
            "[WARN] [default] IAM authentication failed for the role app_user: the token is not valid",
            "[ERROR] Credentials couldn't be retrieved. The IAM role is not authorized to read the AWS Secrets Manager secret",
            "[INFO] [default] A new client connected",
            "[WARN] Timed-out waiting to acquire database connection",
        ];
        let f = diagnose(&log);
        let whats: Vec<&str> = f.iter().map(|f| f.what).collect();
        assert_eq!(whats.len(), 4, "{f:?}");
        assert!(whats[0].contains("without TLS"), "{whats:?}");
        assert_eq!(f[0].count, 2);
        assert!(whats[1].contains("IAM token was refused"));
        assert!(f[1].fix.contains("proxy's endpoint and port"));
        assert!(whats[2].contains("cannot read its credentials"));
        assert!(whats[3].contains("ConnectionBorrowTimeout"));
        assert!(diagnose(&["[INFO] all is well"]).is_empty());
        let long = "x requires tls ".repeat(100);
        assert_eq!(diagnose(&[long])[0].example.chars().count(), SHOW);
    }
}
