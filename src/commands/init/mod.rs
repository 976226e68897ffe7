//! `init`: write a runbook filled in from the account. It reads the DB
//! (instance or Aurora cluster) and each Lambda function, never changes
//! anything, and checks its own output with the runbook loader before it
//! writes it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Result;
use futures_util::future::join_all;

use crate::aws::Aws;
use crate::cli::InitArgs;
use crate::db::{Db, Kind};
use crate::error::Failure;
use crate::open::Options;
use crate::preflight::{Report, family_of};
use crate::runbook::{EngineFamily, Runbook, check_proxy_name, check_runbook_name};

mod existing;
mod function;
use existing::Existing;
use function::Function;

/// The variable to swap: the one whose value is one of the DB's addresses,
/// or the endpoint of the proxy already in front of it (a variable named
/// like DB_HOST first), else DB_HOST.
pub fn with_env_var(mut f: Function, addresses: &[String], proxy: Option<&str>) -> Function {
    let holds = |v: &String| addresses.contains(v) || Some(v.as_str()) == proxy;
    let mut holding: Vec<&(String, String)> =
        f.variables.iter().filter(|(_, v)| holds(v)).collect();
    holding.sort_by_key(|(k, _)| (!k.contains("HOST"), k.as_str()));
    let (var, note) = match holding.first() {
        Some((k, v)) if Some(v.as_str()) == proxy => {
            f.on_proxy = true;
            (k.clone(), "holds the proxy's endpoint now")
        }
        Some((k, _)) => (k.clone(), "holds the DB's endpoint now"),
        None if f.variables.iter().any(|(k, _)| k == "DB_HOST") => {
            ("DB_HOST".to_string(), "the function has it now")
        }
        None => (
            "DB_HOST".to_string(),
            "not set on the function now: use the name your code reads",
        ),
    };
    f.env_var = var;
    f.env_var_note = note;
    f.variables.clear();
    f
}

/// The name derived from the DB's identifier: `<db>-proxy`, cut to AWS's
/// 60 characters for a proxy name.
pub fn default_name(db_id: &str) -> String {
    suffixed(db_id, "-proxy", 60)
}

/// `base` + `suffix`, with `base` cut so the whole fits in `max` bytes
/// (names here are ASCII: AWS's rules allow nothing else).
pub fn suffixed(base: &str, suffix: &str, max: usize) -> String {
    let keep = max.saturating_sub(suffix.len()).min(base.len());
    format!("{}{suffix}", base[..keep].trim_end_matches('-'))
}

pub async fn init(args: &InitArgs, opts: &Options) -> Result<()> {
    // Everything that needs no AWS call first.
    if let Some(out) = &args.out
        && out.exists()
        && !args.force
    {
        return Err(Failure::usage(format!(
            "{} exists: pass --force to overwrite it, or choose another file with -o",
            out.display()
        )));
    }
    let db_id = args
        .db_instance
        .as_deref()
        .or(args.db_cluster.as_deref())
        .unwrap_or_default();
    let name = args.name.clone().unwrap_or_else(|| default_name(db_id));
    if let Err(why) = check_runbook_name(&name).and_then(|()| check_proxy_name(&name)) {
        return Err(Failure::usage(format!(
            "--name: {why}; the name is the runbook's and the proxy's"
        )));
    }

    let aws = Aws::connect(&opts.aws, Default::default()).await?;
    let account = aws.account_id();
    let kind = match args.db_instance {
        Some(_) => Kind::Instance,
        None => Kind::Cluster,
    };
    let db = crate::db::read(&aws, kind, db_id);
    let functions = join_all(args.functions.iter().map(|f| read_function(&aws, f)));
    let (account, db, functions) = tokio::join!(account, db, functions);
    let account = account?.to_string();

    // Only its problems are used: what init could not fill in.
    let mut problems = Report::default();
    let db = db?;
    match &db {
        None => problems.problem(
            format!("{} {db_id} does not exist in {}", kind.label(), aws.region),
            match kind {
                Kind::Instance => "check the identifier and the region (--region); for Aurora give --db-cluster",
                Kind::Cluster => "check the identifier and the region (--region); for an RDS instance give --db-instance",
            },
        ),
        Some(Db { cluster: Some(c), .. }) => problems.problem(
            format!("DB instance {db_id} belongs to Aurora cluster {c}"),
            format!("register the cluster: --db-cluster {c} (the proxy then follows its writer)"),
        ),
        Some(_) => {}
    }
    let mut found = Vec::new();
    for (name, f) in args.functions.iter().zip(functions) {
        match f? {
            Some(f) => found.push(f),
            None => problems.problem(
                format!("Lambda function {name} does not exist in {}", aws.region),
                "check the name and the region (--region)",
            ),
        }
    }
    let functions = found;
    // A proxy already in front of the DB (made by hand): the runbook then
    // describes it, for `adopt`, instead of planning a second one.
    let existing = match &db {
        Some(d) if d.cluster.is_none() => existing::find(&aws, d, &functions).await?,
        _ => None,
    };
    let secret = args
        .secret
        .clone()
        .or_else(|| existing.as_ref().and_then(|e| e.secret_arn.clone()))
        .or_else(|| db.as_ref().and_then(|d| d.managed_secret.clone()));
    if let Some(db) = db.as_ref().filter(|d| d.cluster.is_none()) {
        let named_like = match secret {
            Some(_) => Vec::new(),
            None => secrets_named_like(&aws, &db.id).await,
        };
        // A DB with IAM database authentication needs no secret: the
        // runbook then has the proxy log in with IAM (end-to-end IAM).
        let iam_will_do = end_to_end_iam_possible(db);
        check_db(
            db,
            secret.is_some() || iam_will_do,
            &named_like,
            &mut problems,
        );
    }
    for f in &functions {
        if f.security_groups.is_empty() {
            problems.problem(
                format!(
                    "function {} is not in a VPC, so it cannot reach the proxy",
                    f.name
                ),
                "attach it to the DB's VPC (subnets and a security group), then run init again",
            );
        }
    }
    let Some(db) = db.filter(|_| problems.problems.is_empty()) else {
        let listed: Vec<String> = problems.problems.iter().map(|p| p.to_string()).collect();
        return Err(Failure::preflight(format!(
            "cannot write the runbook; nothing was written:\n  {}",
            listed.join("\n  ")
        )));
    };

    let proxy = existing.as_ref().map(|e| e.endpoint.as_str());
    let mut functions: Vec<Function> = functions
        .into_iter()
        .map(|f| with_env_var(f, db.address.as_slice(), proxy))
        .collect();
    let mut seen = std::collections::HashSet::new();
    functions.retain(|f| seen.insert(f.name.clone()));
    // The figure the [alarms] comment gives; a read that fails leaves it
    // to `plan` (init writes the section commented either way).
    let capacity = crate::db::capacity(&aws, &db).await.ok().flatten();
    let text = render(&Rendered {
        name: &name,
        region: &aws.region,
        account: &account,
        db: &db,
        secret: secret.as_deref().unwrap_or_default(),
        secret_given: args.secret.is_some(),
        functions: &functions,
        existing: existing.as_ref(),
        capacity: capacity.as_ref(),
    });
    // Our own output must load: a failure here is a bug, not the user's.
    let check_path = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runbook.toml"));
    if let Err(e) = Runbook::parse(&check_path, &text, &|_| None, &crate::steps::Catalogue) {
        return Err(Failure::bad_input(format!(
            "the runbook init wrote does not load (a bug; please report it):\n{e}"
        )));
    }
    let file = args
        .out
        .as_ref()
        .map_or("<the runbook>".to_string(), |o| o.display().to_string());
    if let Some(e) = &existing {
        eprintln!(
            "note: {} is already behind RDS Proxy {} ({}): the runbook describes that proxy and \
             what it uses, so that `rds-proxy-runbook adopt {file}` takes them over instead of \
             a second proxy being made",
            db.what(),
            e.name,
            e.why
        );
    }
    match &args.out {
        None => print!("{text}"),
        Some(out) => {
            write_new(out, &text)?;
            let next = match existing {
                Some(_) => format!("`rds-proxy-runbook adopt {file}`, then `plan`"),
                None => format!("`rds-proxy-runbook plan {file}`"),
            };
            eprintln!("wrote {file}: review it, then {next}");
        }
    }
    Ok(())
}

/// Writes through a temporary file beside `path`, then renames.
fn write_new(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))
}

/// What in the DB keeps init from writing a runbook that works.
/// Whether the proxy could log in to `db` with IAM (end-to-end IAM): IAM
/// database authentication on, and not SQL Server.
fn end_to_end_iam_possible(db: &Db) -> bool {
    db.iam_auth && family_of(&db.engine).is_ok_and(|f| f != EngineFamily::Sqlserver)
}

fn check_db(db: &Db, have_secret: bool, named_like: &[String], problems: &mut Report) {
    let what = db.what();
    if let Err(why) = family_of(&db.engine) {
        problems.problem(
            format!("{what} runs {}: {why}", db.engine),
            "RDS Proxy serves MySQL, MariaDB, PostgreSQL and SQL Server (and their Aurora kinds)",
        );
    }
    if db.vpc_id.is_none() || db.subnets.is_empty() {
        problems.problem(
            format!("{what} reports no subnet group"),
            "the proxy must sit in the DB's VPC: give the DB a subnet group",
        );
    }
    if db.security_groups.is_empty() {
        problems.problem(
            format!("{what} has no VPC security group"),
            "give the DB a security group; the proxy is admitted through it",
        );
    }
    if !have_secret {
        let hint = match named_like {
            [] => String::new(),
            found => format!(
                " (secrets whose name holds {}: {})",
                db.id,
                found.join(", ")
            ),
        };
        problems.problem(
            format!("{what} has no secret that RDS manages"),
            format!(
                "pass --secret ARN: a Secrets Manager secret holding the DB user's username and password as JSON{hint}"
            ),
        );
    }
}

/// The ARNs of secrets whose name holds `db_id` (names only: no value is
/// read), as hints for --secret. Empty when they cannot be listed.
async fn secrets_named_like(aws: &Aws, db_id: &str) -> Vec<String> {
    let filter = aws_sdk_secretsmanager::types::Filter::builder()
        .key(aws_sdk_secretsmanager::types::FilterNameStringType::Name)
        .values(db_id)
        .build();
    match aws.secrets.list_secrets().filters(filter).send().await {
        Ok(o) => o
            .secret_list()
            .iter()
            .filter_map(|s| s.arn().map(String::from))
            .take(5)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The function; None when there is no such function.
async fn read_function(aws: &Aws, name: &str) -> Result<Option<Function>> {
    let Some(c) = aws.function_if_any(name).await? else {
        return Ok(None);
    };
    Ok(Some(Function {
        // The name, even when given as an ARN.
        name: c.function_name().unwrap_or(name).to_string(),
        role: c.role().map(String::from),
        security_groups: c
            .vpc_config()
            .map(|v| v.security_group_ids().to_vec())
            .unwrap_or_default(),
        variables: c
            .environment()
            .and_then(|e| e.variables())
            .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        ..Function::default()
    }))
}

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

/// The runbook's text: every value from the account, commented.
pub fn render(r: &Rendered) -> String {
    let db = r.db;
    let family = family_of(&db.engine).unwrap_or(EngineFamily::Mysql);
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
    let name = r.name;
    let mut t = String::new();
    let w = &mut t;
    let _ = writeln!(
        w,
        "# Written by `rds-proxy-runbook init` from account {} in {}.",
        r.account, r.region
    );
    let _ = writeln!(
        w,
        "# Every value was read from the account; review them, then:"
    );
    match r.existing {
        None => {
            let _ = writeln!(w, "#   rds-proxy-runbook plan <this file>");
        }
        Some(e) => {
            let _ = writeln!(
                w,
                "# {} is already behind RDS Proxy {} ({}), made without this tool:",
                db.what(),
                e.name,
                e.why
            );
            let _ = writeln!(
                w,
                "# this runbook describes that proxy and what it uses (its role, group, pool,"
            );
            let _ = writeln!(
                w,
                "# the functions' connect policy), so that `adopt` takes them over instead"
            );
            let _ = writeln!(w, "# of a second proxy being made:");
            let _ = writeln!(w, "#   rds-proxy-runbook adopt <this file>");
            let _ = writeln!(w, "#   rds-proxy-runbook plan <this file>");
            if !e.others.is_empty() {
                let _ = writeln!(w, "# Also in front of it: {}.", e.others.join(", "));
            }
        }
    }
    let _ = writeln!(
        w,
        "# runbooks/template.toml in the repository lists every key and its default."
    );
    let _ = writeln!(w, "name = {}", q(name));
    let _ = writeln!(w, "region = {}", q(r.region));
    let _ = writeln!(w);
    let _ = writeln!(w, "steps = [");
    let _ = writeln!(
        w,
        "  \"proxy-role\", \"secret-access\", \"proxy-security-group\", \"proxy\", \"connect-policy\","
    );
    let _ = writeln!(w, "  \"db-ingress\", \"targets\",");
    let _ = writeln!(
        w,
        "  # \"alarms\",  # CloudWatch alarms on the proxy: uncomment with [alarms] below"
    );
    let _ = writeln!(w, "  \"lambda-ingress\", \"lambda-env\", \"invoke-check\",");
    let _ = writeln!(w, "]");
    let _ = writeln!(w);
    let _ = writeln!(w, "[network]");
    let _ = writeln!(
        w,
        "vpc_id = {}  # the DB's VPC",
        q(db.vpc_id.as_deref().unwrap_or_default())
    );
    let zones: Vec<String> = db
        .subnets
        .iter()
        .map(|(s, z)| format!("{s} in {z}"))
        .collect();
    let _ = writeln!(w, "# The DB subnet group's subnets: {}.", zones.join(", "));
    let ids: Vec<String> = match r.existing {
        Some(e) if !e.subnets.is_empty() => {
            let _ = writeln!(w, "# The existing proxy's subnets:");
            e.subnets.iter().map(|s| q(s)).collect()
        }
        _ => db.subnets.iter().map(|(s, _)| q(s)).collect(),
    };
    let _ = writeln!(w, "subnet_ids = [{}]", ids.join(", "));
    let _ = writeln!(w);
    let _ = writeln!(w, "[database]");
    let _ = writeln!(w, "{} = {}  # {about}", db.kind.key(), q(&db.id));
    let _ = writeln!(
        w,
        "security_group_id = {}  # the DB's security group{}",
        q(&db.security_groups[0]),
        others(&db.security_groups)
    );
    let why = match r.existing.and_then(|e| e.secret_arn.as_deref()) {
        _ if r.secret_given => "given with --secret",
        Some(_) => "the existing proxy's secret",
        None => "the master user's secret, managed by RDS",
    };
    let several = r.existing.map_or(&[][..], |e| &e.auth[..]);
    let several = if r.secret_given { &[][..] } else { several };
    if !several.is_empty() {
        let _ = writeln!(
            w,
            "# No secret_arn: the existing proxy logs in with {} secrets, the [[auth]] tables \
             below.",
            several.len()
        );
    } else if r.secret.is_empty() {
        let _ = writeln!(
            w,
            "# No secret_arn: none was found, and the proxy logs in with IAM (see [proxy])."
        );
    } else {
        let _ = writeln!(w, "secret_arn = {}  # {why}", q(r.secret));
    }
    let _ = writeln!(w, "engine_family = {}", q(family.as_str()));
    let _ = writeln!(
        w,
        "port = {}",
        db.port.map_or(family.default_port(), i64::from)
    );
    let _ = writeln!(w);
    for a in several {
        let _ = writeln!(w, "[[auth]]");
        let _ = writeln!(w, "secret_arn = {}", q(&a.secret_arn));
        if let Some(u) = &a.user {
            let _ = writeln!(w, "user = {}", q(u));
        }
        let _ = writeln!(w, "iam_auth = {}", q(&a.iam_auth));
        if let Some(c) = &a.client_password_auth_type {
            let _ = writeln!(w, "client_password_auth_type = {}", q(c));
        }
        let _ = writeln!(w);
    }
    let existing = r.existing;
    let made = |step: &str| match existing {
        Some(_) => "the existing proxy's".to_string(),
        None => format!("made by the {step} step"),
    };
    let _ = writeln!(w, "[proxy_role]");
    let role = existing
        .and_then(|e| e.role_name.clone())
        .unwrap_or_else(|| suffixed(name, "-rds-proxy", 64));
    let _ = writeln!(w, "name = {}  # {}", q(&role), made("proxy-role"));
    let _ = writeln!(w);
    let _ = writeln!(w, "[proxy_security_group]");
    let (group, description) = match existing.and_then(|e| e.security_group.as_ref()) {
        Some((_, name, description)) => (name.clone(), description.clone()),
        None => (
            format!("{name}-rds-proxy"),
            format!("RDS Proxy {name} for {}", db.id),
        ),
    };
    let _ = writeln!(
        w,
        "name = {}  # {}",
        q(&group),
        made("proxy-security-group")
    );
    let _ = writeln!(w, "description = {}", q(&description));
    let _ = writeln!(w);
    let _ = writeln!(w, "[proxy]");
    match existing {
        None => {
            let _ = writeln!(w, "name = {}", q(name));
            let _ = writeln!(w, "require_tls = true");
            let _ = writeln!(
                w,
                "iam_auth = \"REQUIRED\"  # the functions log in with IAM tokens (connect-policy)"
            );
            if r.secret.is_empty() {
                let _ = writeln!(
                    w,
                    "default_auth_scheme = \"IAM_AUTH\"  # end-to-end IAM: {} has IAM database \
                     authentication on and no secret was found",
                    db.id
                );
            } else if end_to_end_iam_possible(db) {
                let _ = writeln!(
                    w,
                    "# {} has IAM database authentication on: the proxy can log in to it with \
                     IAM too\n# (end-to-end IAM, no secret needed; the DB user must be an IAM \
                     one, see `preflight`):\n# default_auth_scheme = \"IAM_AUTH\"",
                    db.id
                );
            }
        }
        Some(e) => {
            let _ = writeln!(
                w,
                "name = {}  # the existing proxy ({})",
                q(&e.name),
                e.endpoint
            );
            let _ = writeln!(w, "require_tls = {}", e.require_tls);
            let _ = writeln!(w, "iam_auth = {}", q(&e.iam_auth));
            if e.default_auth_scheme == "IAM_AUTH" {
                let _ = writeln!(w, "default_auth_scheme = \"IAM_AUTH\"  # end-to-end IAM");
            }
            let (clients, db) = &e.network_types;
            for (key, value) in [
                ("endpoint_network_type", clients),
                ("target_connection_network_type", db),
            ] {
                if value != "IPV4" && !value.is_empty() {
                    let _ = writeln!(w, "{key} = {}", q(value));
                }
            }
            if let Some(t) = e.idle_client_timeout {
                let _ = writeln!(w, "idle_client_timeout = {t}");
            }
            let _ = writeln!(w, "debug_logging = {}", e.debug_logging);
        }
    }
    let _ = writeln!(w);
    let (max, idle, borrow) = existing.and_then(|e| e.pool).unwrap_or((100, 50, 120));
    let _ = writeln!(
        w,
        "# The pool's {}; `plan` shows the connection budget they give.",
        if existing.is_some() {
            "settings now"
        } else {
            "defaults"
        }
    );
    let _ = writeln!(w, "[pool]");
    let _ = writeln!(w, "max_connections_percent = {max}");
    let _ = writeln!(w, "max_idle_connections_percent = {idle}");
    let _ = writeln!(w, "connection_borrow_timeout = {borrow}");
    let _ = writeln!(w);
    let _ = writeln!(w, "[connect_policy]");
    match existing.and_then(|e| e.connect_policy.as_ref()) {
        Some((policy, user)) => {
            let _ = writeln!(w, "name = {}  # on the functions' roles now", q(policy));
            let _ = writeln!(w, "db_user = {}", q(user));
        }
        None => {
            let _ = writeln!(
                w,
                "name = {}  # made by the connect-policy step",
                q(&format!("{name}-rds-connect"))
            );
            let _ = writeln!(w, "db_user = \"*\"  # or the user the functions log in as");
        }
    }
    if existing.is_some_and(|e| e.secrets_managed) {
        let _ = writeln!(w);
        let _ = writeln!(w, "[secret_access]");
        let _ = writeln!(
            w,
            "mode = \"managed\"  # the role has SecretsManagerReadWrite now (\"least-privilege\" narrows it)"
        );
    }
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "# CloudWatch alarms on the proxy, as seed 000 prescribes (docs/alarms.md): uncomment\n\
         # \"alarms\" in `steps` and this section to make them, each with its defaults."
    );
    let _ = writeln!(w, "# [alarms]  # {}", connections_alarm(r.capacity, family));
    let _ = writeln!(w, "# sns_topic_arn = \"arn:aws:sns:REGION:ACCOUNT:TOPIC\"");
    for f in r.functions {
        let _ = writeln!(w);
        let _ = writeln!(w, "[[lambda]]");
        let role = f
            .role
            .as_deref()
            .and_then(|a| a.rsplit('/').next())
            .unwrap_or("?");
        let _ = writeln!(w, "function_name = {}  # role {role}", q(&f.name));
        let _ = writeln!(
            w,
            "security_group_id = {}  # from its VPC configuration{}",
            q(&f.security_groups[0]),
            others(&f.security_groups)
        );
        let _ = writeln!(w, "env_var = {}  # {}", q(&f.env_var), f.env_var_note);
        // Found on the proxy: its way back is the user's to choose, so what
        // is written here (the DB's endpoint) is for `--include-adopted`
        // only, under a key of its own that tells it from a restore_value
        // the user writes.
        if let (true, Some(address)) = (f.on_proxy, &db.address) {
            let _ = writeln!(
                w,
                "# On the proxy now: `rollback` leaves it there, and `rollback --include-adopted`\n\
                 # (which deletes the proxy) puts back the DB's endpoint; for every rollback to\n\
                 # put it back, rename the key to restore_value.\n\
                 include_adopted_restore_value = {}",
                q(address)
            );
        }
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "[invoke_check]");
    let _ = writeln!(w, "payload = \"{{}}\"");
    let _ = writeln!(w, "# expect = \"...\"  # text a healthy response contains");
    t
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn what_init_writes_loads_and_carries_the_account_values() {
        let db = Db {
            kind: Kind::Cluster,
            id: "orders".into(),
            engine: "aurora-postgresql".into(),
            engine_version: "16.1".into(),
            status: "available".into(),
            instance_class: None,
            cluster: None,
            members: 2,
            port: Some(5432),
            address: Some("orders.cluster-x.us-east-1.rds.amazonaws.com".into()),
            vpc_id: Some("vpc-0123456789abcdef0".into()),
            subnets: vec![
                ("subnet-0aaaaaaaaaaaaaaaa".into(), "us-east-1a".into()),
                ("subnet-0bbbbbbbbbbbbbbbb".into(), "us-east-1b".into()),
            ],
            security_groups: vec!["sg-0123456789abcdef0".into(), "sg-0fedcba9876543210".into()],
            managed_secret: None,
            resource_id: None,
            iam_auth: false,
            network_type: "IPV4".into(),
            ..Db::default()
        };
        let functions = [with_env_var(
            function(&[("DB_HOST", "leak-canary-7f3")]),
            db.address.as_slice(),
            None,
        )];
        let text = render(&Rendered {
            name: "orders-proxy",
            region: "us-east-1",
            account: "123456789012",
            db: &db,
            secret: "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!cluster-1-AbCdEf",
            secret_given: true,
            functions: &functions,
            existing: None,
            capacity: None,
        });
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
            secret_arn: Some(
                "arn:aws:secretsmanager:us-east-1:123456789012:secret:book-AbCdEf".into(),
            ),
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
}
