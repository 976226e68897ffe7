//! Preflight's functions: each in the DB's VPC with an execution role that
//! exists; their variables that would still reach the DB directly; and
//! whether their variables still fit Lambda's 4 KB once they point at the
//! proxy.

use std::collections::{BTreeSet, HashMap};

use anyhow::Result;

use super::report::Report;
use crate::aws::errors::is_no_such_entity;
use crate::aws::{Aws, describe_error, error_code};
use crate::runbook::Runbook;

/// Each function checked; returns the variables of those that exist, by
/// function name (for the warning about a variable left on the DB).
pub(super) async fn check_lambdas(
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
pub(super) fn left_on_the_db(
    vars: &HashMap<String, String>,
    moved: &[&str],
    db_host: &str,
) -> Vec<String> {
    let host = db_host.to_ascii_lowercase();
    let mut names: Vec<String> = vars
        .iter()
        .filter(|(k, v)| !moved.contains(&k.as_str()) && v.to_ascii_lowercase().contains(&host))
        .map(|(k, _)| k.clone())
        .collect();
    names.sort();
    names
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
    // Out of the place's listing of every function, which the fleet's
    // runbooks and their checks share.
    let all = crate::aws::listings::functions(aws).await?;
    let Some(conf) = all.get(name) else {
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

/// Whether each function's variables still fit Lambda's 4 KB once
/// `lambda-env` points its runbook's variables at the proxy (before any
/// change: AWS would refuse the update half-way through the run). The
/// proxy's host is its own when known, else one as long as AWS would give.
pub(super) fn environment_room(
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
