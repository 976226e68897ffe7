//! `init`: write a runbook filled in from the account. It reads the DB
//! (instance or Aurora cluster) and each Lambda function, never changes
//! anything, and checks its own output with the runbook loader before it
//! writes it.
//!
//! Here: the reads and the checks; existing.rs: a proxy already in front
//! of the DB; function.rs: a function as read; render.rs: the values set
//! into runbooks/template.toml, which template.rs fills in (so what init
//! writes is the template, its comments and defaults kept); tests.rs.

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
mod render;
mod template;
use function::Function;
use render::{Rendered, render};

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

#[cfg(test)]
mod tests;
