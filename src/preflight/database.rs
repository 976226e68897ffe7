//! Preflight's DB: there and available, of the runbook's engine family
//! (an engine's family), in which VPC and at which address, a reader for a
//! READ_ONLY endpoint, dual-stack for IPv6, and IAM authentication on for
//! end-to-end IAM.

use anyhow::Result;

use super::report::Report;
use crate::aws::Aws;
use crate::runbook::{AuthScheme, EngineFamily, Runbook, Text};

/// The engine family an RDS engine name belongs to; Err for Oracle and
/// engines RDS Proxy does not serve.
pub fn family_of(engine: &str) -> Result<EngineFamily, String> {
    let e = engine.to_ascii_lowercase();
    if e.starts_with("oracle") {
        Err("RDS Proxy does not support Oracle".into())
    } else if e == "mysql" || e == "mariadb" || e == "aurora-mysql" || e == "aurora" {
        Ok(EngineFamily::Mysql)
    } else if e == "postgres" || e == "aurora-postgresql" {
        Ok(EngineFamily::Postgresql)
    } else if e.starts_with("sqlserver") {
        Ok(EngineFamily::Sqlserver)
    } else {
        Err(format!("RDS Proxy does not support the engine `{engine}`"))
    }
}

/// The DB's VPC and endpoint address, when it can be read.
pub(super) async fn check_database(
    rb: &Runbook,
    aws: &Aws,
    r: &mut Report,
) -> Result<(Option<String>, Option<String>)> {
    use crate::db::Kind;
    let family = rb.database.engine_family;
    let (kind, id) = match (
        rb.database.instance_id.as_ref().and_then(Text::literal),
        rb.database.cluster_id.as_ref().and_then(Text::literal),
    ) {
        (Some(id), _) => (Kind::Instance, id),
        (None, Some(id)) => (Kind::Cluster, id),
        (None, None) => return Ok((None, None)),
    };
    // Shared with the fleet's runbooks that name the same DB.
    let read = crate::db::read(aws, kind, &id);
    let key = format!("{} {id}", kind.label());
    let Some(db) = crate::rounds::shared(aws, key, read).await? else {
        r.problem(
            format!("{} {id} does not exist in {}", kind.label(), aws.region),
            "check database.instance_id / cluster_id and the region",
        );
        return Ok((None, None));
    };
    r.capacity = crate::db::capacity(aws, &db).await?;
    let (what, status, engine) = (db.what(), &db.status, &db.engine);
    if let Some(c) = &db.cluster {
        r.problem(
            format!("{what} belongs to Aurora cluster {c}"),
            format!(
                "register the cluster: write database.cluster_id = \"{c}\" instead of instance_id (the proxy then follows its writer)"
            ),
        );
    }
    if status != "available" {
        r.problem(
            format!("{what} is {status}, not available"),
            "wait until it is available (the target cannot register before), then run again",
        );
    }
    match family_of(engine) {
        Ok(f) if f == family => r.ok(format!("{what}: {engine}, {status}")),
        Ok(f) => r.problem(
            format!(
                "{what} runs {engine}, but the runbook's engine family is {}",
                family.as_str()
            ),
            format!("set database.engine_family = \"{}\"", f.as_str()),
        ),
        Err(why) => r.problem(
            format!("{what} runs {engine}: {why}"),
            "use a MySQL, PostgreSQL or SQL Server database",
        ),
    }
    if rb.proxy.default_auth_scheme == AuthScheme::IamAuth {
        iam_database_auth(&db, rb, r);
    }
    let readers = db.instances.iter().filter(|(_, writer)| !writer).count();
    if db.kind == crate::db::Kind::Cluster
        && readers == 0
        && rb.endpoints.iter().any(|e| e.target_role == "READ_ONLY")
    {
        r.warnings.push(format!(
            "{} has no reader instance: its READ_ONLY endpoint is made, but connections to it \
             fail until the cluster has one (aws rds create-db-instance \
             --db-cluster-identifier {} ...)",
            db.what(),
            db.id
        ));
    }
    if rb.proxy.target_connection_network_type == "IPV6" && db.network_type != "DUAL" {
        r.problem(
            format!(
                "{what} is {} only: target_connection_network_type = \"IPV6\" needs a \
                 dual-stack DB",
                db.network_type,
                what = db.what()
            ),
            "make the DB dual-stack (network type DUAL: its subnet group's subnets need IPv6 \
             CIDR blocks), or set proxy.target_connection_network_type = \"IPV4\"",
        );
    }
    Ok((db.vpc_id, db.address))
}

/// End-to-end IAM: the proxy logs in to the DB with IAM, which the DB must
/// allow, as a user made for it.
fn iam_database_auth(db: &crate::db::Db, rb: &Runbook, r: &mut Report) {
    let what = db.what();
    if !db.iam_auth {
        let (command, flag) = match db.kind {
            crate::db::Kind::Instance => ("modify-db-instance", "--db-instance-identifier"),
            crate::db::Kind::Cluster => ("modify-db-cluster", "--db-cluster-identifier"),
        };
        r.problem(
            format!(
                "{what} has IAM database authentication off: with default_auth_scheme = \
                 \"IAM_AUTH\" the proxy could not log in to it"
            ),
            format!(
                "aws rds {command} {flag} {} --enable-iam-database-authentication \
                 --apply-immediately; or set proxy.default_auth_scheme = \"NONE\" and give \
                 database.secret_arn",
                db.id
            ),
        );
        return;
    }
    // The functions' users (each [[lambda]]'s db_user, else the policy's).
    let default = rb
        .connect_policy
        .db_user
        .literal()
        .filter(|u| u != "*")
        .unwrap_or_else(|| "app_user".into());
    let mut users = rb.function_users(&default);
    if users.is_empty() {
        users.push(default);
    }
    let setup: Vec<String> = users
        .iter()
        .map(|user| match rb.database.engine_family {
            EngineFamily::Postgresql => format!("CREATE USER {user}; GRANT rds_iam TO {user};"),
            _ => format!("CREATE USER {user} IDENTIFIED WITH AWSAuthenticationPlugin AS 'RDS';"),
        })
        .collect();
    let setup = setup.join(" ");
    r.ok(format!(
        "{what}: IAM database authentication on (end-to-end IAM); the proxy logs in as the \
         functions' user, which the DB must know as an IAM user: {setup}"
    ));
}
