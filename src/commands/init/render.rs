//! The runbook `init` writes: `runbooks/template.toml` with the values read
//! from the account set, each with where it came from (template.rs fills
//! it in).

use super::existing::Existing;
use super::function::Function;
use super::template::{Fill, Filled};
use super::{end_to_end_iam_possible, suffixed};
use crate::db::{Db, Kind};
use crate::preflight::family_of;
use crate::runbook::EngineFamily;

pub struct Rendered<'a> {
    pub name: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub db: &'a Db,
    pub secret: &'a str,
    pub secret_given: bool,
    pub functions: &'a [Function],
    /// A proxy already in front of the DB: the runbook describes it.
    pub existing: Option<&'a Existing>,
    /// The DB's class and max_connections as read, for the `[alarms]`
    /// comment; None: not read.
    pub capacity: Option<&'a crate::db::Capacity>,
}

/// The DatabaseConnections alarm's threshold with the figures it comes
/// from, as the `alarms` step works it out (its default percent).
fn connections_alarm(capacity: Option<&crate::db::Capacity>, family: EngineFamily) -> String {
    let percent = crate::runbook::DEFAULT_PERCENT;
    let (max, from) = match capacity {
        Some(c) => match &c.max_connections_set {
            Some((v, by)) => (Some(*v), format!("set by {by}")),
            None => (
                crate::budget::max_connections(&c.class, family),
                format!("{} estimate", c.class),
            ),
        },
        None => (None, String::new()),
    };
    match max {
        Some(max) => format!(
            "DatabaseConnections alarm at {percent}% of max_connections = {max} ({from}) -> {}",
            max * i64::from(percent) / 100
        ),
        None => format!(
            "DatabaseConnections alarm at {percent}% of max_connections (not read: `plan` works it out)"
        ),
    }
}

/// A TOML string literal.
fn q(s: &str) -> String {
    toml_edit::Value::from(s).to_string()
}

/// `others: a, b` for the values after the first, or nothing.
fn others(all: &[String]) -> String {
    match all.get(1..) {
        Some(rest) if !rest.is_empty() => format!(" (also: {})", rest.join(", ")),
        _ => String::new(),
    }
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

/// The runbook's text: the template, every value from the account set and
/// commented.
pub fn render(r: &Rendered) -> String {
    let db = r.db;
    let family = family_of(&db.engine).unwrap_or(EngineFamily::Mysql);
    let mut t = Filled::new();
    t.intro(intro(r));
    top(&mut t, r);
    network(&mut t, r);
    database(&mut t, r, family);
    proxy(&mut t, r);
    let existing = r.existing;
    let name = r.name;
    let made = |step: &str| match existing {
        Some(_) => "the existing proxy's".to_string(),
        None => format!("made by the {step} step"),
    };
    let role = existing
        .and_then(|e| e.role_name.clone())
        .unwrap_or_else(|| suffixed(name, "-rds-proxy", 64));
    t.section("proxy_role")
        .noted("name", q(&role), made("proxy-role"));
    let (group, description) = match existing.and_then(|e| e.security_group.as_ref()) {
        Some((_, name, description)) => (name.clone(), description.clone()),
        None => (
            format!("{name}-rds-proxy"),
            format!("RDS Proxy {name} for {}", db.id),
        ),
    };
    t.section("proxy_security_group")
        .noted("name", q(&group), made("proxy-security-group"))
        .value("description", q(&description));
    let (max, idle, borrow) = existing.and_then(|e| e.pool).unwrap_or((100, 50, 120));
    let now = if existing.is_some() {
        "settings now"
    } else {
        "defaults"
    };
    t.section("pool")
        .after_header(format!(
            "# The pool's {now}; `plan` shows the connection budget they give."
        ))
        .value("max_connections_percent", max.to_string())
        .value("max_idle_connections_percent", idle.to_string())
        .value("connection_borrow_timeout", borrow.to_string());
    let policy = t.section("connect_policy");
    match existing.and_then(|e| e.connect_policy.as_ref()) {
        Some((name, user)) => {
            policy
                .noted("name", q(name), "on the functions' roles now")
                .value("db_user", q(user));
        }
        None => {
            policy
                .noted(
                    "name",
                    q(&format!("{name}-rds-connect")),
                    "made by the connect-policy step",
                )
                .noted("db_user", "\"*\"", "or the user the functions log in as");
        }
    }
    if existing.is_some_and(|e| e.secrets_managed) {
        t.section("secret_access").noted(
            "mode",
            "\"managed\"",
            "the role has SecretsManagerReadWrite now (\"least-privilege\" narrows it)",
        );
    }
    t.section("alarms")
        .header_note(connections_alarm(r.capacity, family));
    let lambdas = r.functions.iter().map(|f| lambda(f, db)).collect();
    t.tables("lambda", lambdas);
    t.render()
}

/// The file's first lines: where it comes from and what to do next.
fn intro(r: &Rendered) -> Vec<String> {
    let mut w = vec![
        format!(
            "# Written by `rds-proxy-runbook init` from account {} in {}.",
            r.account, r.region
        ),
        "# Every value was read from the account; review them, then:".to_string(),
    ];
    match r.existing {
        None => w.push("#   rds-proxy-runbook plan <this file>".to_string()),
        Some(e) => {
            w.push(format!(
                "# {} is already behind RDS Proxy {} ({}), made without this tool:",
                r.db.what(),
                e.name,
                e.why
            ));
            w.extend(lines(
                "# this runbook describes that proxy and what it uses (its role, group, pool,\n\
                 # the functions' connect policy), so that `adopt` takes them over instead\n\
                 # of a second proxy being made:\n\
                 #   rds-proxy-runbook adopt <this file>\n\
                 #   rds-proxy-runbook plan <this file>",
            ));
            if !e.others.is_empty() {
                w.push(format!("# Also in front of it: {}.", e.others.join(", ")));
            }
        }
    }
    w.push(
        "# It is runbooks/template.toml filled in: every key is here, with its default."
            .to_string(),
    );
    w
}

/// The name, the region, and the steps with the alarms step offered.
fn top(t: &mut Filled, r: &Rendered) {
    let mut steps = Vec::new();
    for line in t.template_lines("", "steps") {
        // "alarms" is offered commented, after "targets", whether the
        // template lists it or not.
        let line = line.replace("\"alarms\", ", "");
        match line.split_once("\"targets\", ") {
            Some((head, tail)) => {
                steps.push(format!("{head}\"targets\","));
                steps.push(
                    "  # \"alarms\",  # CloudWatch alarms on the proxy: uncomment with [alarms] below"
                        .to_string(),
                );
                steps.push(format!("  {tail}"));
            }
            None => steps.push(line),
        }
    }
    t.section("")
        .value("name", q(r.name))
        .value("region", q(r.region))
        .lines("steps", steps);
}

fn network(t: &mut Filled, r: &Rendered) {
    let db = r.db;
    let zones: Vec<String> = db
        .subnets
        .iter()
        .map(|(s, z)| format!("{s} in {z}"))
        .collect();
    let mut notes = vec![format!(
        "# The DB subnet group's subnets: {}.",
        zones.join(", ")
    )];
    let ids: Vec<String> = match r.existing {
        Some(e) if !e.subnets.is_empty() => {
            notes.push("# The existing proxy's subnets:".to_string());
            e.subnets.iter().map(|s| q(s)).collect()
        }
        _ => db.subnets.iter().map(|(s, _)| q(s)).collect(),
    };
    t.section("network")
        .noted(
            "vpc_id",
            q(db.vpc_id.as_deref().unwrap_or_default()),
            "the DB's VPC",
        )
        .before("subnet_ids", notes)
        .value("subnet_ids", format!("[{}]", ids.join(", ")));
}

fn database(t: &mut Filled, r: &Rendered, family: EngineFamily) {
    let db = r.db;
    let about = match db.kind {
        Kind::Instance => format!(
            "{} {}, {}",
            db.engine,
            db.engine_version,
            db.instance_class.as_deref().unwrap_or("?")
        ),
        Kind::Cluster => format!(
            "{} {}, {} member(s)",
            db.engine, db.engine_version, db.members
        ),
    };
    let s = t.section("database");
    s.noted(db.kind.key(), q(&db.id), about);
    if matches!(db.kind, Kind::Cluster) {
        s.lines("instance_id", Vec::new());
    }
    s.noted(
        "security_group_id",
        q(&db.security_groups[0]),
        format!("the DB's security group{}", others(&db.security_groups)),
    );
    let why = match r.existing.and_then(|e| e.secret_arn.as_deref()) {
        _ if r.secret_given => "given with --secret",
        Some(_) => "the existing proxy's secret",
        None => "the master user's secret, managed by RDS",
    };
    let several = r.existing.map_or(&[][..], |e| &e.auth[..]);
    let several = if r.secret_given { &[][..] } else { several };
    if !several.is_empty() {
        s.lines(
            "secret_arn",
            vec![format!(
                "# No secret_arn: the existing proxy logs in with {} secrets, the [[auth]] \
                 tables below.",
                several.len()
            )],
        );
    } else if r.secret.is_empty() {
        s.lines(
            "secret_arn",
            vec![
                "# No secret_arn: none was found, and the proxy logs in with IAM (see [proxy])."
                    .to_string(),
            ],
        );
    } else {
        s.noted("secret_arn", q(r.secret), why);
    }
    s.value("engine_family", q(family.as_str())).value(
        "port",
        db.port.map_or(family.default_port(), i64::from).to_string(),
    );
    let auth = several
        .iter()
        .map(|a| {
            let mut f = Fill::default();
            f.value("secret_arn", q(&a.secret_arn))
                .value("iam_auth", q(&a.iam_auth));
            if let Some(u) = &a.user {
                f.value("user", q(u));
            }
            if let Some(c) = &a.client_password_auth_type {
                f.value("client_password_auth_type", q(c));
            }
            f
        })
        .collect();
    t.tables("auth", auth);
}

fn proxy(t: &mut Filled, r: &Rendered) {
    let db = r.db;
    let s = t.section("proxy");
    match r.existing {
        None => {
            s.value("name", q(r.name))
                .value("require_tls", "true")
                .noted(
                    "iam_auth",
                    "\"REQUIRED\"",
                    "the functions log in with IAM tokens (connect-policy)",
                );
            if r.secret.is_empty() {
                s.noted(
                    "default_auth_scheme",
                    "\"IAM_AUTH\"",
                    format!(
                        "end-to-end IAM: {} has IAM database authentication on and no secret \
                         was found",
                        db.id
                    ),
                );
            } else if end_to_end_iam_possible(db) {
                s.lines(
                    "default_auth_scheme",
                    lines(&format!(
                        "# {} has IAM database authentication on: the proxy can log in to it \
                         with IAM too\n# (end-to-end IAM, no secret needed; the DB user must \
                         be an IAM one, see `preflight`):\n# default_auth_scheme = \"IAM_AUTH\"",
                        db.id
                    )),
                );
            }
        }
        Some(e) => {
            s.noted(
                "name",
                q(&e.name),
                format!("the existing proxy ({})", e.endpoint),
            )
            .value("require_tls", e.require_tls.to_string())
            .value("iam_auth", q(&e.iam_auth));
            if e.default_auth_scheme == "IAM_AUTH" {
                s.noted("default_auth_scheme", "\"IAM_AUTH\"", "end-to-end IAM");
            }
            let (clients, db) = &e.network_types;
            for (key, value) in [
                ("endpoint_network_type", clients),
                ("target_connection_network_type", db),
            ] {
                if value != "IPV4" && !value.is_empty() {
                    s.value(key, q(value));
                }
            }
            if let Some(timeout) = e.idle_client_timeout {
                s.value("idle_client_timeout", timeout.to_string());
            }
            s.value("debug_logging", e.debug_logging.to_string());
        }
    }
}

/// One `[[lambda]]`.
fn lambda(f: &Function, db: &Db) -> Fill {
    let mut t = Fill::default();
    let role = f
        .role
        .as_deref()
        .and_then(|a| a.rsplit('/').next())
        .unwrap_or("?");
    t.noted("function_name", q(&f.name), format!("role {role}"))
        .noted(
            "security_group_id",
            q(&f.security_groups[0]),
            format!("from its VPC configuration{}", others(&f.security_groups)),
        )
        .noted("env_var", q(&f.env_var), f.env_var_note);
    // Found on the proxy: its way back is the user's to choose, so what is
    // written here (the DB's endpoint) is for `--include-adopted` only,
    // under a key of its own that tells it from a restore_value the user
    // writes.
    if let (true, Some(address)) = (f.on_proxy, &db.address) {
        t.before(
            "include_adopted_restore_value",
            lines(
                "# On the proxy now: `rollback` leaves it there, and `rollback --include-adopted`\n\
                 # (which deletes the proxy) puts back the DB's endpoint; for every rollback to\n\
                 # put it back, rename the key to restore_value.",
            ),
        )
        .value("include_adopted_restore_value", q(address));
    }
    t
}
