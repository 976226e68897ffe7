//! What a probe does, decided from what was read: the configurations it
//! runs in (one per distinct execution role, subnets and security groups
//! among the runbook's functions), the name of each probe function, and
//! the endpoints and users each connects to and as. Pure: the reads are
//! in `lambda.rs` and the command.

use std::collections::BTreeSet;

use serde::Serialize;

use super::Target;
use crate::runbook::EngineFamily;

/// A user's function as Lambda describes it, with the DB users it may
/// connect as.
#[derive(Debug, Clone)]
pub struct Function {
    pub name: String,
    pub role: String,
    pub subnets: Vec<String>,
    pub groups: Vec<String>,
    pub users: Vec<String>,
}

/// What the probe proves in one go: the functions sharing an execution
/// role, subnets and security groups can all do what the probe can there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Configuration {
    pub role: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub functions: Vec<String>,
    pub users: Vec<String>,
}

/// The functions grouped by configuration, in the runbook's order of
/// their first function.
pub fn configurations(functions: &[Function]) -> Vec<Configuration> {
    let mut out: Vec<Configuration> = Vec::new();
    for f in functions {
        let mut subnets = f.subnets.clone();
        subnets.sort();
        let mut groups = f.groups.clone();
        groups.sort();
        let at = out
            .iter()
            .position(|c| c.role == f.role && c.subnets == subnets && c.security_groups == groups);
        let c = match at {
            Some(i) => &mut out[i],
            None => {
                out.push(Configuration {
                    role: f.role.clone(),
                    subnets,
                    security_groups: groups,
                    functions: Vec::new(),
                    users: Vec::new(),
                });
                out.last_mut().expect("just pushed")
            }
        };
        c.functions.push(f.name.clone());
        let users: BTreeSet<String> = c.users.iter().chain(&f.users).cloned().collect();
        c.users = users.into_iter().collect();
    }
    out
}

/// Lambda's longest function name.
const MAX_NAME: usize = 64;

/// The start of every probe function's name for this runbook: the
/// runbook's name as Lambda allows it (letters, digits, `-` and `_`), cut
/// to leave room for the number.
pub fn prefix(runbook: &str) -> String {
    let mut p: String = runbook
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    p.truncate(MAX_NAME - "-probe-99".len());
    format!("{p}-probe-")
}

/// The probe function of the `i`th configuration.
pub fn function_name(runbook: &str, i: usize) -> String {
    format!("{}{}", prefix(runbook), i + 1)
}

/// One of the proxy's secrets as the proxy describes it, with the user it
/// logs in as (read from the secret by whoever runs the tool).
#[derive(Debug, Clone)]
pub struct Secret {
    pub arn: String,
    pub user: Option<String>,
    /// IAM authentication is REQUIRED for this secret's user.
    pub iam: bool,
}

/// What the proxy says of how clients reach and log in to it.
#[derive(Debug, Clone)]
pub struct Proxy {
    pub arn: String,
    pub family: EngineFamily,
    /// Clients connect with TLS: the runbook's `proxy.require_tls` (the
    /// probe connects as the runbook configures clients).
    pub require_tls: bool,
    /// End-to-end IAM (DefaultAuthScheme IAM_AUTH): every login is a token.
    pub iam_default: bool,
    pub secrets: Vec<Secret>,
    /// `(endpoint name, host)`: the proxy's own first (`default`).
    pub endpoints: Vec<(String, String)>,
}

/// What the probe connects to for one configuration: every endpoint, as
/// every user of its functions, the way the runbook configures clients;
/// or why a user cannot be tried (no secret of the proxy logs in as it).
pub fn targets(proxy: &Proxy, users: &[String]) -> (Vec<Target>, Vec<(String, String)>) {
    let mut targets = Vec::new();
    let mut unreachable = Vec::new();
    for user in users {
        let secret = proxy
            .secrets
            .iter()
            .find(|s| s.user.as_deref() == Some(user.as_str()));
        let (auth, secret_arn) = match secret {
            _ if proxy.iam_default => ("iam", None),
            Some(s) if s.iam => ("iam", None),
            Some(s) => ("secret", Some(s.arn.clone())),
            None => {
                unreachable.push((
                    user.clone(),
                    format!(
                        "none of the proxy's secrets logs in as `{user}`: the proxy refuses \
                         every login as it"
                    ),
                ));
                continue;
            }
        };
        for (name, host) in &proxy.endpoints {
            targets.push(Target {
                name: name.clone(),
                host: host.clone(),
                port: proxy.family.default_port() as u16,
                engine: proxy.family.as_str().to_string(),
                user: user.clone(),
                auth,
                secret_arn: secret_arn.clone(),
                // An IAM token goes only over TLS.
                tls: proxy.require_tls || auth == "iam",
                timeout: CONNECT_TIMEOUT_SECONDS,
            });
        }
    }
    (targets, unreachable)
}

/// How long the probe waits for a TCP connection: a group that does not
/// admit the function drops its SYN, which would otherwise wait minutes.
pub const CONNECT_TIMEOUT_SECONDS: u64 = 5;

/// The users a function connects as: its `db_user`, else the connect
/// policy's; a wildcard (`*`) means any of the proxy's secrets' users.
pub fn function_users(named: Option<&str>, proxy: &Proxy) -> Vec<String> {
    match named {
        Some(u) if !u.contains('*') => vec![u.to_string()],
        _ => {
            let users: BTreeSet<String> = proxy
                .secrets
                .iter()
                .filter_map(|s| s.user.clone())
                .collect();
            users.into_iter().collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(name: &str, role: &str, groups: &[&str], users: &[&str]) -> Function {
        Function {
            name: name.into(),
            role: role.into(),
            subnets: vec!["subnet-b".into(), "subnet-a".into()],
            groups: groups.iter().map(|g| g.to_string()).collect(),
            users: users.iter().map(|u| u.to_string()).collect(),
        }
    }

    #[test]
    fn functions_sharing_role_subnets_and_groups_share_a_probe() {
        let got = configurations(&[
            function("a", "role-1", &["sg-2", "sg-1"], &["app"]),
            function("b", "role-2", &["sg-1"], &["app"]),
            function("c", "role-1", &["sg-1", "sg-2"], &["admin"]),
        ]);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].functions, ["a", "c"]);
        assert_eq!(got[0].users, ["admin", "app"]);
        assert_eq!(got[0].subnets, ["subnet-a", "subnet-b"]);
        assert_eq!(got[1].functions, ["b"]);
    }

    #[test]
    fn probe_names_fit_lambda() {
        assert_eq!(function_name("cookbook-4.3", 0), "cookbook-4-3-probe-1");
        let long = function_name(&"x".repeat(64), 11);
        assert!(long.len() <= 64, "{long}");
        assert!(long.starts_with(&prefix(&"x".repeat(64))));
    }

    fn proxy(iam_default: bool, secrets: Vec<Secret>) -> Proxy {
        Proxy {
            arn: String::new(),
            family: EngineFamily::Postgresql,
            require_tls: false,
            iam_default,
            secrets,
            endpoints: vec![
                ("default".into(), "p.proxy-x".into()),
                ("reader".into(), "r.endpoint.proxy-x".into()),
            ],
        }
    }

    fn secret(user: &str, iam: bool) -> Secret {
        Secret {
            arn: format!("arn:secret:{user}"),
            user: Some(user.into()),
            iam,
        }
    }

    #[test]
    fn each_user_logs_in_as_the_proxy_lets_it_on_every_endpoint() {
        let p = proxy(false, vec![secret("app", false), secret("admin", true)]);
        let (t, none) = targets(&p, &["admin".into(), "app".into(), "ghost".into()]);
        assert_eq!(t.len(), 4);
        assert_eq!((t[0].auth, t[0].tls, t[0].port), ("iam", true, 5432));
        assert_eq!(t[1].name, "reader");
        assert_eq!(
            (t[2].auth, t[2].tls, t[2].secret_arn.as_deref()),
            ("secret", false, Some("arn:secret:app"))
        );
        assert_eq!(none.len(), 1);
        assert!(none[0].1.contains("`ghost`"), "{none:?}");
        // End-to-end IAM: a token for every user, no secret needed.
        let (t, none) = targets(&proxy(true, vec![]), &["ghost".into()]);
        assert_eq!((t.len(), t[0].auth, none.len()), (2, "iam", 0));
    }

    #[test]
    fn a_wildcard_user_is_every_secret_user() {
        let p = proxy(false, vec![secret("b", false), secret("a", false)]);
        assert_eq!(function_users(Some("*"), &p), ["a", "b"]);
        assert_eq!(function_users(None, &p), ["a", "b"]);
        assert_eq!(function_users(Some("app"), &p), ["app"]);
    }
}
