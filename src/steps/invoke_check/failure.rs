//! What a failed invocation says about the wiring: the function's error
//! and the tail of its log, read for the failures users meet connecting to
//! RDS Proxy (the texts of MySQL's and PostgreSQL's drivers and of AWS's
//! "Troubleshooting for RDS Proxy" page), each with the step of the
//! runbook that owns the cause and the fix. Pure: unit-tested here.

/// The kind of failure, which decides whether a retry can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The login was refused (a token, a password, a grant): may be IAM
    /// not yet honouring a change made moments ago.
    Auth,
    /// TLS missing, or the proxy's certificate not trusted.
    Tls,
    /// The connection timed out: the network does not let it through.
    Network,
    /// The name does not resolve.
    Dns,
    /// The pool had no DB connection to lend within its borrow timeout.
    Pool,
    /// The proxy closed an idle client connection.
    Idle,
    /// The function ran out of time (what it waited on is in the proxy's log).
    Timeout,
    /// Anything else.
    Other,
}

/// (any of these, lower case) -> (kind, what, fix); the first match wins.
const KNOWN: &[(&[&str], Kind, &str, &str)] = &[
    (
        &[
            "requires tls",
            "only with ssl",
            "ssl connection is required",
            "ssl is not enabled",
        ],
        Kind::Tls,
        "the function connected without TLS, which the proxy requires (IAM tokens travel \
         over TLS only)",
        "connect with TLS (pymysql: ssl=ssl.create_default_context(); pg8000: ssl_context=...; \
         MySQL CLI: --ssl-mode=REQUIRED; libpq: sslmode=require)",
    ),
    (
        &["certificate_verify_failed", "certificate verify failed"],
        Kind::Tls,
        "the function does not trust the proxy's TLS certificate",
        "verify it against the Amazon root CAs (the runtime's default CA bundle, or the \
         book's AmazonRootCA1.pem), with the proxy's endpoint as the host name",
    ),
    (
        &[
            "access denied for user",
            "password authentication failed",
            "iam authentication failed",
            "has no credentials for the role",
            "the password that was provided for the role",
            "pam authentication failed",
        ],
        Kind::Auth,
        "the proxy refused the function's login",
        "the function's role needs rds-db:connect on the proxy's prx- id for its DB user \
         (connect-policy), its token must be made for the proxy's endpoint and port, and the \
         proxy must hold a secret for that user (secret-access, [[auth]])",
    ),
    (
        &["timed-out waiting to acquire database connection"],
        Kind::Pool,
        "the proxy lent no DB connection within ConnectionBorrowTimeout",
        "see the proxy's log for why it cannot log in to the DB (targets: its health), or \
         raise pool.max_connections_percent if the pool is full",
    ),
    (
        &[
            "lost connection to mysql server during query",
            "server closed the connection unexpectedly",
        ],
        Kind::Idle,
        "the proxy closed the client connection (idle longer than IdleClientTimeout)",
        "recycle client pools before proxy.idle_client_timeout (pool_recycle, pre-ping), or \
         connect per invocation",
    ),
    (
        &[
            "name or service not known",
            "nodename nor servname",
            "getaddrinfo failed",
            "temporary failure in name resolution",
        ],
        Kind::Dns,
        "the function's DB host does not resolve",
        "point the function's variable at the proxy's endpoint (lambda-env)",
    ),
    (
        &[
            "timed out",
            "can't connect",
            "can't create a connection",
            "connection refused",
        ],
        Kind::Network,
        "the function's connection to the proxy timed out",
        "the proxy's security group must admit the function's on the DB port \
         (lambda-ingress), and the function must be attached to the proxy's VPC",
    ),
];

/// What a failure shows: its kind, and (unless Other) what and the fix.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub kind: Kind,
    pub what: &'static str,
    pub fix: &'static str,
}

/// Reads a failed invocation: `error` (the function's error or response)
/// first, then its log tail. A Lambda timeout is read from the log's own
/// "Task timed out" only when nothing more precise shows.
pub fn read(error: &str, log_tail: &str) -> Reading {
    for text in [error, log_tail] {
        let lower = text.to_lowercase();
        if lower.contains("task timed out") {
            continue;
        }
        if let Some((_, kind, what, fix)) = KNOWN
            .iter()
            .find(|(keys, ..)| keys.iter().any(|k| lower.contains(k)))
        {
            return Reading {
                kind: *kind,
                what,
                fix,
            };
        }
    }
    if format!("{error}{log_tail}")
        .to_lowercase()
        .contains("task timed out")
    {
        return Reading {
            kind: Kind::Timeout,
            what: "the function timed out",
            fix: "see what the proxy's log says below; a connection that hangs is a security \
                  group that does not admit the function (lambda-ingress)",
        };
    }
    Reading {
        kind: Kind::Other,
        what: "",
        fix: "",
    }
}

/// A database host the failure names (`NAME.rds.amazonaws.com`) that is
/// none of `proxies`: the function went around the proxy (another of its
/// variables, a `DATABASE_URL` say, still holds the DB's endpoint).
pub fn host_off_proxy(text: &str, proxies: &[String]) -> Option<String> {
    const SUFFIX: &str = ".rds.amazonaws.com";
    let mut rest = text;
    while let Some(at) = rest.find(SUFFIX) {
        let before = &rest[..at];
        let start = before
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
            .map_or(0, |i| i + 1);
        let host = format!("{}{SUFFIX}", &before[start..]);
        // A proxy's endpoints name it: NAME.proxy-ID (NAME.endpoint.proxy-ID
        // for its own endpoints; `db-proxy-` in the local emulator).
        let a_proxy = host
            .split('.')
            .any(|label| label.starts_with("proxy-") || label.starts_with("db-proxy-"));
        if !a_proxy && !proxies.iter().any(|p| p.eq_ignore_ascii_case(&host)) {
            return Some(host);
        }
        rest = &rest[at + SUFFIX.len()..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drivers_errors_are_read_for_their_cause() {
        let cases = [
            (
                "(1045, \"Access denied for user 'admin'@'%' (using password: YES)\")",
                Kind::Auth,
            ),
            (
                "{'S': 'FATAL', 'C': '28P01', 'M': 'IAM authentication failed for user admin. \
                 Check the IAM token for this user and try again.'}",
                Kind::Auth,
            ),
            (
                "(3159, 'This RDS Proxy requires TLS connections.')",
                Kind::Tls,
            ),
            (
                "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed",
                Kind::Tls,
            ),
            (
                "(2003, \"Can't connect to MySQL server on 'p.proxy-x.rds.amazonaws.com' (timed out)\")",
                Kind::Network,
            ),
            (
                "Can't create a connection to host p and port 5432 (timeout is 10 and source_address is None).",
                Kind::Network,
            ),
            (
                "(9501, 'Timed-out waiting to acquire database connection')",
                Kind::Pool,
            ),
            (
                "(2013, 'Lost connection to MySQL server during query')",
                Kind::Idle,
            ),
            ("[Errno -2] Name or service not known", Kind::Dns),
            ("division by zero", Kind::Other),
        ];
        for (error, kind) in cases {
            assert_eq!(read(error, "").kind, kind, "{error}");
        }
        // The log tail speaks when the error does not; a Lambda timeout is
        // the last resort.
        assert_eq!(
            read("Task timed out after 30.00 seconds", "").kind,
            Kind::Timeout
        );
        assert_eq!(
            read(
                "Task timed out after 30.00 seconds",
                "OperationalError: (1045, \"Access denied for user 'a'@'%'\")"
            )
            .kind,
            Kind::Auth
        );
        assert!(
            read("Access denied for user", "")
                .fix
                .contains("connect-policy")
        );
    }

    #[test]
    fn a_host_that_is_not_the_proxy_is_named() {
        let proxy = "p.db-proxy-abc.us-east-1.rds.amazonaws.com".to_string();
        let db = "(2003, \"Can't connect to MySQL server on 'app-db.aaaa.us-east-1.rds.amazonaws.com' (timed out)\")";
        assert_eq!(
            host_off_proxy(db, std::slice::from_ref(&proxy)).as_deref(),
            Some("app-db.aaaa.us-east-1.rds.amazonaws.com")
        );
        let via_proxy = format!("connecting to {proxy}:3306 as admin");
        assert_eq!(host_off_proxy(&via_proxy, &[proxy]), None);
        // Any proxy's endpoint, on AWS, is not the DB.
        let aws = "Can't connect to 'app.proxy-abcdefgh.eu-west-1.rds.amazonaws.com'";
        assert_eq!(host_off_proxy(aws, &[]), None);
        assert_eq!(host_off_proxy("no host at all", &[]), None);
    }
}
