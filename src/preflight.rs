//! Preflight: what the recipe needs from the account, checked before
//! anything is created. Every problem is collected, each with its fix, so
//! one look shows all that stands in the way (the failures users hit most:
//! a DB that is not available or of another engine, a secret without
//! username and password, subnets in one AZ or another VPC, a Lambda
//! outside the VPC, no room for another proxy, a proxy name taken).

use std::collections::{BTreeSet, HashMap};

use anyhow::Result;
use aws_sdk_ec2::types::SecurityGroup;

use crate::aws::errors::{is_no_such_entity, is_secret_not_found, is_subnet_not_found};
use crate::aws::{Aws, describe_error, error_code};
use crate::error::Failure;
use crate::runbook::{AuthScheme, EngineFamily, Runbook, Text};

/// Proxies an account may have (AWS's quota).
const PROXY_QUOTA: usize = 20;

/// The IAM actions preflight's calls need (`permissions`), the state
/// bucket's advice included; the DB's reads are [`crate::db::ACTIONS`].
pub const ACTIONS: crate::actions::Calls = {
    use crate::actions::On;
    &[
        ("sts:GetCallerIdentity", On::Any),
        ("rds:DescribeDBProxies", On::Any),
        ("rds:ListTagsForResource", On::Proxy),
        ("secretsmanager:DescribeSecret", On::Secrets),
        // Read to check its username and password (never shown); a
        // customer-managed key decrypts it through Secrets Manager.
        ("secretsmanager:GetSecretValue", On::Secrets),
        ("kms:Decrypt", On::SecretKeys),
        ("ec2:DescribeSubnets", On::Any),
        ("ec2:DescribeSecurityGroups", On::Any),
        ("lambda:GetFunctionConfiguration", On::Functions),
        ("iam:GetRole", On::FunctionRoles),
        ("s3:GetBucketVersioning", On::StateBucket),
        ("s3:GetEncryptionConfiguration", On::StateBucket),
    ]
};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub what: String,
    pub fix: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "✗ {}\n      fix: {}", self.what, self.fix)
    }
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub checked: Vec<String>,
    pub problems: Vec<Problem>,
    /// What is advised but not needed (a state bucket without versioning).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// What the DB can hold, for the connection budget (read once).
    #[serde(skip)]
    pub capacity: Option<crate::db::Capacity>,
}

impl Report {
    fn ok(&mut self, what: impl Into<String>) {
        self.checked.push(what.into());
    }

    /// Takes in the findings of a check that ran on its own.
    fn absorb(&mut self, part: Report) {
        self.checked.extend(part.checked);
        self.problems.extend(part.problems);
        self.warnings.extend(part.warnings);
        self.capacity = self.capacity.take().or(part.capacity);
    }

    pub fn problem(&mut self, what: impl Into<String>, fix: impl Into<String>) {
        self.problems.push(Problem {
            what: what.into(),
            fix: fix.into(),
        });
    }
}

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

/// Whether a secret's text has what the proxy logs in with. The text is
/// never shown.
pub fn secret_has_credentials(text: &str) -> Result<(), String> {
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|_| "its value is not JSON".to_string())?;
    let missing: Vec<&str> = ["username", "password"]
        .into_iter()
        .filter(|k| doc[k].as_str().is_none_or(|v| v.is_empty()))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("its JSON has no {}", missing.join(" or ")))
    }
}

/// Whether a secret's value logs in as `user`.
pub fn secret_is_for(text: &str, user: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text)
        .is_ok_and(|doc| doc["username"].as_str() == Some(user))
}

fn literal(t: &Text) -> Option<String> {
    t.literal()
}

/// Runs every check, all at once; never fails on a problem, only on a
/// tool error. The report lists them in a fixed order.
/// `state`: what this runbook's state holds (a proxy it adopted is its own
/// although untagged); `backend`: where it is kept (a bucket without
/// versioning or encryption is warned about).
pub async fn run(
    rb: &Runbook,
    aws: &Aws,
    state: &crate::state::State,
    backend: &crate::state::backend::Backend,
) -> Result<Report> {
    let adopted = state
        .record("proxy")
        .filter(|r| r.origin == Some(crate::state::Origin::Adopted))
        .and_then(|r| r.inputs.as_ref()?.get("name")?.as_str().map(String::from));
    let vpc = rb.network.vpc_id.literal().unwrap_or_default();
    let mut parts: [Report; 6] = Default::default();
    let [db, secret, subnets, groups, lambdas, room] = &mut parts;
    let advice = async {
        match backend {
            crate::state::backend::Backend::S3(s3) => Ok(s3.advice().await),
            crate::state::backend::Backend::File(_) => Ok(Vec::new()),
        }
    };
    let ((db_vpc, db_host), (), (), (), variables, (), mut warnings) = tokio::try_join!(
        check_database(rb, aws, db),
        check_secret(rb, aws, secret),
        check_subnets(rb, aws, &vpc, subnets),
        check_groups(rb, aws, &vpc, groups),
        check_lambdas(rb, aws, &vpc, lambdas),
        check_proxy_room(rb, aws, adopted.as_deref(), room),
        advice,
    )?;
    if let Some(db_vpc) = &db_vpc
        && *db_vpc != vpc
    {
        db.problem(
            format!("the runbook's VPC {vpc} is not the DB's VPC {db_vpc}"),
            format!("set network.vpc_id = \"{db_vpc}\": the proxy must sit in the DB's VPC"),
        );
    }
    warnings.extend(setting_warnings(rb));
    if let Some(db_host) = &db_host {
        for (function, vars) in &variables {
            let moved: Vec<&str> = rb
                .lambdas
                .iter()
                .filter(|l| l.function_name.literal().as_deref() == Some(function.as_str()))
                .map(|l| l.env_var.as_str())
                .collect();
            let names = left_on_the_db(vars, &moved, db_host);
            if !names.is_empty() {
                warnings.push(format!(
                    "{function}: {} also hold(s) the DB's endpoint {db_host}, and the runbook \
                     moves only {}: through them the function keeps reaching the DB directly. \
                     Put the proxy's endpoint in them too (a [[lambda]] entry per variable that \
                     holds only the host), or leave them if that is meant",
                    names.join(", "),
                    moved.join(", ")
                ));
            }
        }
    }
    let mut r = Report {
        warnings,
        ..Report::default()
    };
    for part in parts {
        r.absorb(part);
    }
    environment_room(rb, state, &aws.region, &variables, &mut r);
    Ok(r)
}

/// Whether each function's variables still fit Lambda's 4 KB once
/// `lambda-env` points its runbook's variables at the proxy (before any
/// change: AWS would refuse the update half-way through the run). The
/// proxy's host is its own when known, else one as long as AWS would give.
fn environment_room(
    rb: &Runbook,
    state: &crate::state::State,
    region: &str,
    variables: &[(String, HashMap<String, String>)],
    r: &mut Report,
) {
    let known = crate::engine::lookup_in(state, rb);
    let proxy_name = rb.proxy.name.literal().unwrap_or_default();
    let proxy_host = known("proxy", "endpoint")
        .unwrap_or_else(|| host_like(&format!("{proxy_name}.proxy"), region));
    for (function, vars) in variables {
        let mut after: HashMap<&str, String> =
            vars.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let mut first = None;
        for (i, l) in rb.lambdas.iter().enumerate() {
            if l.function_name.literal().as_deref() != Some(function.as_str()) {
                continue;
            }
            first.get_or_insert((i, l.pos));
            after.insert(&l.env_var, proxy_host.clone());
            if let (Some(var), Some(endpoint)) = (&l.read_env_var, rb.reader_endpoint_name(l)) {
                after.insert(
                    var,
                    host_like(&format!("{endpoint}.endpoint.proxy"), region),
                );
            }
        }
        let size = crate::limits::environment_size(after.iter().map(|(k, v)| (*k, v.as_str())));
        let most = crate::limits::LAMBDA_ENVIRONMENT_BYTES;
        if let Some((i, pos)) = first.filter(|_| size > most) {
            r.problem(
                format!(
                    "Lambda function {function} (`lambda[{i}].function_name`, {}): its variables \
                     would take {size} bytes once they point at the proxy, over Lambda's 4 KB \
                     ({most} bytes, measured as JSON): AWS would refuse the change",
                    rb.at(pos)
                ),
                format!(
                    "make {} bytes of room in {function}'s variables (remove or shorten some: \
                     aws lambda get-function-configuration --function-name {function} --query \
                     Environment), then run again",
                    size - most
                ),
            );
        }
    }
}

/// A host as long as the one AWS gives a proxy (`NAME.proxy-ID.REGION.
/// rds.amazonaws.com`, the ID 12 characters) or one of its endpoints
/// (`NAME.endpoint.proxy-ID...`), for a host not made yet.
fn host_like(prefix: &str, region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "rds.amazonaws.com.cn"
    } else {
        "rds.amazonaws.com"
    };
    format!("{prefix}-{}.{region}.{suffix}", "x".repeat(12))
}

/// The DB's VPC and endpoint address, when it can be read.
async fn check_database(
    rb: &Runbook,
    aws: &Aws,
    r: &mut Report,
) -> Result<(Option<String>, Option<String>)> {
    use crate::db::Kind;
    let family = rb.database.engine_family;
    let (kind, id) = match (
        rb.database.instance_id.as_ref().and_then(literal),
        rb.database.cluster_id.as_ref().and_then(literal),
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

/// Each secret the proxy logs in with: there, readable, credentials (for
/// the user its `[[auth]]` entry names).
async fn check_secret(rb: &Runbook, aws: &Aws, r: &mut Report) -> Result<()> {
    let mut secrets: Vec<(String, &str, Option<&str>)> = Vec::new();
    if let Some(arn) = rb.database.secret_arn.as_ref().and_then(Text::literal) {
        secrets.push((arn, "database.secret_arn", None));
    }
    for a in &rb.auth {
        if let Some(arn) = a.secret_arn.literal() {
            secrets.push((arn, a.secret_arn.key.as_str(), a.user.as_deref()));
        }
    }
    let found = futures_util::future::join_all(
        secrets
            .iter()
            .map(|(arn, key, user)| one_secret(aws, arn, key, *user)),
    )
    .await;
    for f in found {
        for (problem, fix) in f? {
            match fix {
                Some(fix) => r.problem(problem, fix),
                None => r.ok(problem),
            }
        }
    }
    Ok(())
}

/// One secret's findings: (text, the fix for a problem; none when fine).
async fn one_secret(
    aws: &Aws,
    arn: &str,
    key: &str,
    user: Option<&str>,
) -> Result<Vec<(String, Option<String>)>> {
    let (described, value) = tokio::join!(
        aws.secrets.describe_secret().secret_id(arn).send(),
        aws.secrets.get_secret_value().secret_id(arn).send()
    );
    let kms = match described {
        Ok(d) => d.kms_key_id().map(String::from),
        Err(e) if is_secret_not_found(error_code(&e)) => {
            return Ok(vec![(
                format!("secret {arn} does not exist"),
                Some(format!("check {key} and the region")),
            )]);
        }
        Err(e) => anyhow::bail!("cannot read secret {arn}: {}", describe_error(&e)),
    };
    Ok(vec![match value {
        Ok(v) => {
            let text = v.secret_string().unwrap_or_default();
            match (secret_has_credentials(text), user) {
                (Err(why), _) => (
                    format!("secret {arn}: {why}"),
                    Some(
                        "store the DB credentials as JSON: {\"username\": \"...\", \
                         \"password\": \"...\"}"
                            .to_string(),
                    ),
                ),
                (Ok(()), Some(u)) if !secret_is_for(text, u) => (
                    format!(
                        "secret {arn} does not log in as `{u}`, the user its [[auth]] entry names"
                    ),
                    Some(format!(
                        "give {key} the secret of `{u}`, or set that entry's `user` to the \
                         secret's username"
                    )),
                ),
                (Ok(()), _) => (
                    format!(
                        "secret {arn}: JSON with username and password, key {}",
                        kms.as_deref().unwrap_or("aws/secretsmanager (AWS managed)")
                    ),
                    None,
                ),
            }
        }
        Err(e) => (
            format!("secret {arn} cannot be read: {}", describe_error(&e)),
            Some(
                "allow secretsmanager:GetSecretValue (and kms:Decrypt) to whoever runs the tool"
                    .to_string(),
            ),
        ),
    }])
}

async fn check_subnets(rb: &Runbook, aws: &Aws, vpc: &str, r: &mut Report) -> Result<()> {
    let listed: Vec<String> = rb.proxy.subnet_ids.iter().filter_map(literal).collect();
    let mut ids: Vec<String> = Vec::new();
    for id in listed {
        if ids.contains(&id) {
            r.problem(
                format!("subnet {id} is listed twice"),
                "list each subnet once, two or more in different Availability Zones",
            );
        } else {
            ids.push(id);
        }
    }
    if ids.is_empty() {
        return Ok(());
    }
    let out = aws
        .ec2
        .describe_subnets()
        .set_subnet_ids(Some(ids.clone()))
        .send()
        .await;
    let subnets = match out {
        Ok(o) => o.subnets.unwrap_or_default(),
        Err(e) if is_subnet_not_found(error_code(&e)) => {
            r.problem(
                format!(
                    "a subnet of {} does not exist: {}",
                    ids.join(", "),
                    describe_error(&e)
                ),
                "check network.subnet_ids",
            );
            return Ok(());
        }
        Err(e) => anyhow::bail!("cannot read the subnets: {}", describe_error(&e)),
    };
    let mut zones = BTreeSet::new();
    for s in &subnets {
        let id = s.subnet_id().unwrap_or_default();
        if s.vpc_id() != Some(vpc) {
            r.problem(
                format!(
                    "subnet {id} is in {}, not in {vpc}",
                    s.vpc_id().unwrap_or("another VPC")
                ),
                "use subnets of the DB's VPC",
            );
        }
        if s.available_ip_address_count() == Some(0) {
            r.problem(
                format!("subnet {id} has no free IP address"),
                "free addresses or use another subnet: the proxy needs them",
            );
        }
        zones.extend(s.availability_zone().map(String::from));
    }
    let network = rb.proxy.endpoint_network_type;
    if network != "IPV4" {
        let ipv4_only: Vec<&str> = subnets
            .iter()
            .filter(|s| s.ipv6_cidr_block_association_set().is_empty())
            .filter_map(|s| s.subnet_id())
            .collect();
        if !ipv4_only.is_empty() {
            r.problem(
                format!(
                    "endpoint_network_type = \"{network}\" needs dual-stack subnets, and {} \
                     has no IPv6 CIDR block",
                    ipv4_only.join(", ")
                ),
                "give the subnets IPv6 CIDR blocks (aws ec2 associate-subnet-cidr-block), list \
                 dual-stack subnets, or set proxy.endpoint_network_type = \"IPV4\"",
            );
        }
    }
    if zones.len() < 2 {
        r.problem(
            format!(
                "the subnets are in {} Availability Zone(s): {}",
                zones.len(),
                zones.iter().cloned().collect::<Vec<_>>().join(", ")
            ),
            "list subnets in at least two Availability Zones",
        );
    } else {
        r.ok(format!(
            "{} subnets in {} Availability Zones",
            subnets.len(),
            zones.len()
        ));
    }
    Ok(())
}

async fn check_groups(rb: &Runbook, aws: &Aws, vpc: &str, r: &mut Report) -> Result<()> {
    let mut ids: Vec<String> = rb
        .database
        .security_group_id
        .literal()
        .into_iter()
        .collect();
    ids.extend(rb.proxy.security_group_ids.iter().filter_map(literal));
    ids.extend(
        rb.lambdas
            .iter()
            .filter_map(|l| l.security_group_id.as_ref())
            .filter_map(literal),
    );
    let mut seen = BTreeSet::new();
    ids.retain(|id| seen.insert(id.clone()));
    if ids.is_empty() {
        return Ok(());
    }
    for (id, g) in ids.iter().zip(read_groups(aws, &ids).await?) {
        match g {
            Some(g) if g.vpc_id() == Some(vpc) => r.ok(format!("security group {id} in {vpc}")),
            Some(g) => r.problem(
                format!(
                    "security group {id} is in {}, not in {vpc}",
                    g.vpc_id().unwrap_or("another VPC")
                ),
                "use a security group of the DB's VPC",
            ),
            None => r.problem(
                format!("security group {id} does not exist"),
                "check the runbook's security group ids",
            ),
        }
    }
    Ok(())
}

/// Each group of `ids` (None: no such group), in one call for all (a
/// fleet's runbooks each make one call, not one per group). One that does
/// not exist fails the whole call: one call each then says which. Any
/// other failure is the answer: more calls would not help a throttled or
/// refused one.
async fn read_groups(aws: &Aws, ids: &[String]) -> Result<Vec<Option<SecurityGroup>>> {
    let not_found = |code: Option<&str>| code.is_some_and(|c| c.ends_with(".NotFound"));
    let one = |id: &String| aws.ec2.describe_security_groups().group_ids(id).send();
    match aws
        .ec2
        .describe_security_groups()
        .set_group_ids(Some(ids.to_vec()))
        .send()
        .await
    {
        Ok(o) => Ok(ids
            .iter()
            .map(|id| {
                let g = o
                    .security_groups()
                    .iter()
                    .find(|g| g.group_id() == Some(id));
                g.cloned()
            })
            .collect()),
        Err(e) if not_found(error_code(&e)) && ids.len() > 1 => {
            futures_util::future::join_all(ids.iter().map(|id| async move {
                match one(id).await {
                    Ok(o) => Ok(o.security_groups().first().cloned()),
                    Err(e) if not_found(error_code(&e)) => Ok(None),
                    Err(e) => {
                        anyhow::bail!("cannot read security group {id}: {}", describe_error(&e))
                    }
                }
            }))
            .await
            .into_iter()
            .collect()
        }
        Err(e) if not_found(error_code(&e)) => Ok(vec![None]),
        Err(e) => anyhow::bail!(
            "cannot read security groups {}: {}",
            ids.join(", "),
            describe_error(&e)
        ),
    }
}

/// Each function checked; returns the variables of those that exist, by
/// function name (for the warning about a variable left on the DB).
async fn check_lambdas(
    rb: &Runbook,
    aws: &Aws,
    vpc: &str,
    r: &mut Report,
) -> Result<Vec<(String, HashMap<String, String>)>> {
    let mut names: Vec<String> = rb
        .lambdas
        .iter()
        .filter_map(|l| l.function_name.literal())
        .collect();
    // A function listed once per variable is checked once.
    names.sort();
    names.dedup();
    let parts = futures_util::future::try_join_all(names.iter().map(|name| async move {
        let mut part = Report::default();
        let vars = check_lambda(name, aws, vpc, &mut part).await?;
        anyhow::Ok((part, vars.map(|v| (name.clone(), v))))
    }))
    .await?;
    let mut variables = Vec::new();
    for (part, vars) in parts {
        r.absorb(part);
        variables.extend(vars);
    }
    Ok(variables)
}

/// The variables of a function, other than those the runbook moves to the
/// proxy (`moved`), whose value holds the DB's endpoint `db_host` (a
/// `DATABASE_URL`, say): the function would keep reaching the DB directly
/// through them. Names only, sorted: a value may hold a password.
fn left_on_the_db(vars: &HashMap<String, String>, moved: &[&str], db_host: &str) -> Vec<String> {
    let host = db_host.to_ascii_lowercase();
    let mut names: Vec<String> = vars
        .iter()
        .filter(|(k, v)| !moved.contains(&k.as_str()) && v.to_ascii_lowercase().contains(&host))
        .map(|(k, _)| k.clone())
        .collect();
    names.sort();
    names
}

/// What a runbook sets that works against itself: IAM authentication
/// required while TLS is not (IAM tokens are accepted over TLS only).
fn setting_warnings(rb: &Runbook) -> Vec<String> {
    let mut out = Vec::new();
    if rb.proxy.iam_auth.as_str() == "REQUIRED" && !rb.proxy.require_tls {
        out.push(
            "proxy.iam_auth = \"REQUIRED\" with require_tls = false: IAM tokens are accepted \
             over TLS only, so a client that connects without TLS is refused (\"This RDS Proxy \
             requires TLS\"; PostgreSQL: \"IAM authentication is allowed only with SSL \
             connections\"): set require_tls = true, and connect with TLS"
                .to_string(),
        );
    }
    out
}

/// One function: in the VPC (from its subnets: VpcConfig.VpcId is not
/// reliable in every emulator), and its execution role exists; both read
/// at once.
async fn check_lambda(
    name: &str,
    aws: &Aws,
    vpc: &str,
    r: &mut Report,
) -> Result<Option<HashMap<String, String>>> {
    // Shared with the fleet's runbooks that name the same function.
    let read = aws.function_if_any(name);
    let key = format!("Lambda function {name}");
    let Some(conf) = crate::rounds::shared(aws, key, read).await? else {
        r.problem(
            format!("Lambda function {name} does not exist"),
            "check [[lambda]] function_name and the region",
        );
        return Ok(None);
    };
    let variables = conf
        .environment()
        .and_then(|e| e.variables())
        .cloned()
        .unwrap_or_default();
    let subnets: Vec<String> = conf
        .vpc_config()
        .map(|v| v.subnet_ids().to_vec())
        .unwrap_or_default();
    let role = conf.role().and_then(crate::arn::role_name);
    let in_vpc = conf
        .vpc_config()
        .and_then(|v| v.vpc_id())
        .is_some_and(|v| v == vpc);
    let vpcs = async {
        if subnets.is_empty() {
            return None;
        }
        // AWS names the function's VPC: when it is the DB's, that settles
        // it (one call less before the run's first change). Any other
        // answer is checked on the subnets themselves, which say which VPC
        // (plain moto names `vpc-123abc` for every function).
        if in_vpc {
            return Some(Ok(BTreeSet::from([vpc.to_string()])));
        }
        let out = aws
            .ec2
            .describe_subnets()
            .set_subnet_ids(Some(subnets.clone()))
            .send()
            .await;
        Some(out.map(|o| {
            o.subnets()
                .iter()
                .filter_map(|s| s.vpc_id().map(String::from))
                .collect::<BTreeSet<String>>()
        }))
    };
    let role_read = async {
        match role {
            Some(role) => Some(aws.iam.get_role().role_name(role).send().await),
            None => None,
        }
    };
    let (vpcs, role_read) = tokio::join!(vpcs, role_read);
    match vpcs {
        None => r.problem(
            format!(
                "Lambda function {name} is not attached to a VPC, so it cannot reach the proxy"
            ),
            format!("attach it to {vpc} (subnets and a security group) first"),
        ),
        Some(Err(e)) => r.problem(
            format!(
                "cannot read the subnets of Lambda function {name}: {}",
                describe_error(&e)
            ),
            "allow ec2:DescribeSubnets to whoever runs the tool",
        ),
        Some(Ok(vpcs)) if !vpcs.is_empty() && !vpcs.contains(vpc) => r.problem(
            format!(
                "Lambda function {name} is attached to {}, not to {vpc}",
                vpcs.into_iter().collect::<Vec<_>>().join(", ")
            ),
            format!("attach it to the DB's VPC {vpc}"),
        ),
        Some(Ok(_)) => r.ok(format!("Lambda function {name}: in {vpc}")),
    }
    match (role, role_read) {
        (Some(role), Some(Ok(_))) => r.ok(format!(
            "Lambda function {name}: execution role {role} exists"
        )),
        (Some(role), Some(Err(e))) if is_no_such_entity(error_code(&e)) => r.problem(
            format!("the execution role {role} of {name} does not exist"),
            "give the function an existing execution role",
        ),
        (Some(role), Some(Err(e))) => {
            anyhow::bail!("cannot read role {role}: {}", describe_error(&e))
        }
        _ => r.problem(
            format!("Lambda function {name} has no readable execution role"),
            "give the function an execution role",
        ),
    }
    Ok(Some(variables))
}

async fn check_proxy_room(
    rb: &Runbook,
    aws: &Aws,
    adopted: Option<&str>,
    r: &mut Report,
) -> Result<()> {
    let Some(name) = rb.proxy.name.literal() else {
        return Ok(());
    };
    let all = crate::rounds::proxies_now(aws).await?;
    let found = all.get(&name);
    if !rb.step_names().any(|n| n == "proxy") {
        // Used as it is (by value): it must be there, whoever made it.
        match found {
            Some(_) => r.ok(format!(
                "DB proxy {name} exists (used as it is, not managed here)"
            )),
            None => r.problem(
                format!("DB proxy {name} (proxy.name; `proxy` is not in `steps`) does not exist"),
                "correct proxy.name, or add `proxy` to `steps` to make it",
            ),
        }
        return Ok(());
    }
    match found {
        Some(p) => {
            let arn = p.db_proxy_arn().unwrap_or_default();
            let tags = aws
                .rds
                .list_tags_for_resource()
                .resource_name(arn)
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!("cannot read the tags of {arn}: {}", describe_error(&e))
                })?;
            let ours = tags.tag_list().iter().any(|t| {
                t.key() == Some(crate::runbook::OWNER_TAG) && t.value() == Some(rb.name.as_str())
            });
            if ours {
                r.ok(format!("DB proxy {name} exists and is ours"));
            } else if adopted == Some(name.as_str()) {
                r.ok(format!("DB proxy {name} exists, adopted by this state"));
            } else {
                r.problem(
                    format!(
                        "a DB proxy named {name} exists and was not created by runbook `{}`",
                        rb.name
                    ),
                    "choose another proxy.name, or take it over with `adopt` (the setup made \
                     by hand), or delete that proxy if it is a leftover",
                );
            }
        }
        None if all.len() >= PROXY_QUOTA => r.problem(
            format!(
                "the account has {} DB proxies, AWS's limit is {PROXY_QUOTA}",
                all.len()
            ),
            "delete a proxy you no longer need, or ask AWS for a higher quota",
        ),
        None => r.ok(format!(
            "DB proxy name {name} is free ({} of {PROXY_QUOTA} proxies used)",
            all.len()
        )),
    }
    Ok(())
}

/// Prints a preflight report: every check when `all`, else only the
/// problems, and a summary line.
pub fn print_preflight(report: &crate::preflight::Report, all: bool) {
    if all {
        for c in &report.checked {
            crate::say!("  ✓ {c}");
        }
    }
    for p in &report.problems {
        crate::say!("  {p}");
    }
    for w in &report.warnings {
        crate::say!("  ! warning: {w}");
    }
    let (passed, problems) = (report.checked.len(), report.problems.len());
    if problems == 0 {
        crate::say!("Preflight: all {passed} checks passed.");
    } else {
        crate::say!("Preflight: {passed} checks passed, {problems} problem(s).");
    }
}

/// Runs preflight and prints it; Err (exit 5) when it found problems.
pub(crate) async fn preflight_checks(
    rb: &Runbook,
    aws: &Aws,
    state: &crate::state::State,
    backend: &crate::state::backend::Backend,
    all: bool,
) -> Result<()> {
    let report = crate::preflight::run(rb, aws, state, backend).await?;
    print_preflight(&report, all);
    preflight_verdict(&report)
}

/// Err (exit 5) when preflight found problems, after printing them.
pub(crate) fn preflight_verdict(report: &crate::preflight::Report) -> Result<()> {
    match report.problems.len() {
        0 => Ok(()),
        n => Err(Failure::preflight(format!(
            "preflight found {n} problem(s) in the account (listed above); nothing was changed"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_are_read_in_one_call_and_one_each_only_when_one_is_missing() {
        use crate::steps::mock::{Mocked, block_on};
        use aws_sdk_ec2::Client;
        use aws_sdk_ec2::error::ErrorMetadata;
        use aws_sdk_ec2::operation::describe_security_groups::{
            DescribeSecurityGroupsError, DescribeSecurityGroupsOutput,
        };
        use aws_smithy_mocks::mock;
        let ids = vec!["sg-1".to_string(), "sg-2".to_string()];
        let error = |code: &'static str| {
            move || {
                DescribeSecurityGroupsError::generic(ErrorMetadata::builder().code(code).build())
            }
        };

        // Refused: that one call is the answer, and it names every group.
        let batch =
            mock!(Client::describe_security_groups).then_error(error("UnauthorizedOperation"));
        let m = Mocked::new(&[], &[&batch], &[]);
        let e = block_on(read_groups(&m.aws, &ids)).unwrap_err().to_string();
        assert!(
            e.contains("sg-1, sg-2") && e.contains("UnauthorizedOperation"),
            "{e}"
        );
        assert_eq!(batch.num_calls(), 1);

        // One does not exist: the batch fails, and a call each says which.
        let batch = mock!(Client::describe_security_groups)
            .match_requests(|r| r.group_ids().len() == 2)
            .then_error(error("InvalidGroup.NotFound"));
        let first = mock!(Client::describe_security_groups)
            .match_requests(|r| r.group_ids() == ["sg-1"])
            .then_output(|| {
                DescribeSecurityGroupsOutput::builder()
                    .security_groups(SecurityGroup::builder().group_id("sg-1").build())
                    .build()
            });
        let second = mock!(Client::describe_security_groups)
            .match_requests(|r| r.group_ids() == ["sg-2"])
            .then_error(error("InvalidGroup.NotFound"));
        let m = Mocked::new(&[], &[&batch, &first, &second], &[]);
        let found = block_on(read_groups(&m.aws, &ids)).unwrap();
        assert_eq!(
            found.iter().map(Option::is_some).collect::<Vec<_>>(),
            [true, false]
        );
        assert_eq!(
            (batch.num_calls(), first.num_calls(), second.num_calls()),
            (1, 1, 1)
        );
    }

    #[test]
    fn a_function_whose_variables_would_outgrow_4_kb_is_a_problem() {
        use crate::runbook::Runbook;
        let path = std::path::Path::new("runbooks/template.toml");
        let rb = Runbook::load(path, &|_| None, true, &crate::steps::Catalogue).unwrap();
        let function = rb.lambdas[0].function_name.literal().unwrap();
        let state = crate::state::State::new(&rb.name);
        let room = |filler: usize| {
            let vars = HashMap::from([
                (
                    rb.lambdas[0].env_var.clone(),
                    "db.rds.amazonaws.com".to_string(),
                ),
                ("BIG".to_string(), "v".repeat(filler)),
            ]);
            let mut r = Report::default();
            environment_room(
                &rb,
                &state,
                "us-east-1",
                &[(function.clone(), vars)],
                &mut r,
            );
            r.problems
        };
        assert!(room(3000).is_empty());
        let problems = room(4050);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].what.contains("lambda[0].function_name"),
            "{problems:?}"
        );
        assert!(
            problems[0].what.contains("template.toml:134:1"),
            "{problems:?}"
        );
        assert!(problems[0].fix.contains("bytes of room"), "{problems:?}");
    }

    #[test]
    fn variables_left_on_the_db_are_named_never_shown() {
        let vars: HashMap<String, String> = [
            ("DB_HOST", "orders.abc.eu-west-1.rds.amazonaws.com"),
            (
                "DATABASE_URL",
                "mysql://app:hunter2@ORDERS.abc.eu-west-1.rds.amazonaws.com/app",
            ),
            ("READ_HOST", "orders.abc.eu-west-1.rds.amazonaws.com:3306"),
            ("LOG_LEVEL", "debug"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let host = "orders.abc.eu-west-1.rds.amazonaws.com";
        assert_eq!(
            left_on_the_db(&vars, &["DB_HOST"], host),
            ["DATABASE_URL", "READ_HOST"]
        );
        assert_eq!(
            left_on_the_db(&vars, &["DB_HOST", "READ_HOST"], host),
            ["DATABASE_URL"]
        );
        assert!(left_on_the_db(&vars, &["DB_HOST"], "other.rds.amazonaws.com").is_empty());
    }

    #[test]
    fn engines_map_to_families() {
        assert_eq!(family_of("mysql"), Ok(EngineFamily::Mysql));
        assert_eq!(family_of("aurora-mysql"), Ok(EngineFamily::Mysql));
        assert_eq!(family_of("mariadb"), Ok(EngineFamily::Mysql));
        assert_eq!(family_of("postgres"), Ok(EngineFamily::Postgresql));
        assert_eq!(family_of("aurora-postgresql"), Ok(EngineFamily::Postgresql));
        assert_eq!(family_of("sqlserver-ex"), Ok(EngineFamily::Sqlserver));
        assert!(family_of("oracle-ee").unwrap_err().contains("Oracle"));
        assert!(family_of("db2-se").is_err());
    }

    #[test]
    fn secrets_need_username_and_password_and_are_never_quoted() {
        assert!(secret_has_credentials(r#"{"username":"admin","password":"s3cret"}"#).is_ok());
        let e = secret_has_credentials(r#"{"username":"admin","password":""}"#).unwrap_err();
        assert_eq!(e, "its JSON has no password");
        assert!(secret_is_for(
            r#"{"username":"admin","password":"s"}"#,
            "admin"
        ));
        assert!(!secret_is_for(
            r#"{"username":"admin","password":"s"}"#,
            "app"
        ));
        assert!(!secret_is_for("hunter2", "app"));
        let e = secret_has_credentials("hunter2").unwrap_err();
        assert_eq!(e, "its value is not JSON");
        assert!(!e.contains("hunter2"));
        assert_eq!(
            secret_has_credentials("{}").unwrap_err(),
            "its JSON has no username or password"
        );
    }
}
