//! `permissions`: the IAM policy the person running a command needs, from
//! what each part of the tool declares its calls need ([`crate::actions`]):
//! the steps' check, apply and rollback, preflight, the plan's budget, the
//! rollback guard, the state in S3, `doctor`. Resources are the runbook's
//! (its role, policy, functions, secrets, DB, the state's bucket and key)
//! and what its state recorded (a function that left the runbook, the
//! proxy a replacement left); `*` where AWS needs it (Describe and List
//! actions, EC2's security-group calls) or names the resource only once it
//! exists (the proxy's `prx-` id).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Result;
use serde_json::{Value, json};

use crate::actions::{Calls, On};
use crate::aws::Aws;
use crate::open::{EnvMode, Options, load_runbook, open_state, state_place};
use crate::runbook::{Runbook, Text};
use crate::state::State;
use crate::state::backend::StatePlace;
use crate::steps::{self, Step};

pub use crate::cli::PermissionsFor as For;

pub async fn permissions(
    runbook: &Path,
    command: For,
    allow_replace: bool,
    opts: &Options,
) -> Result<()> {
    let rb = load_runbook(runbook, EnvMode::Lenient)?;
    let place = state_place(&rb, opts)?;
    let mut notes = Vec::new();
    let state = match open_state(&rb, opts, "permissions")
        .await?
        .load_found(&rb.name)
        .await
    {
        Ok((state, true)) => Some(state),
        Ok((_, false)) => None,
        Err(e) => {
            notes.push(format!(
                "the state could not be read ({e:#}): only the runbook's names are listed"
            ));
            None
        }
    };
    let recorded = state
        .as_ref()
        .and_then(|s| s.account.clone().zip(s.region.clone()));
    let (account, region) = match recorded {
        Some(place) => place,
        None => match Aws::connect(&opts.aws, rb.aws()).await {
            Ok(aws) => match aws.account_id().await {
                Ok(id) => (id.to_string(), aws.region.clone()),
                Err(e) => {
                    notes.push(format!(
                        "the account is not known ({e:#}): ARNs hold `*` for it"
                    ));
                    ("*".into(), aws.region.clone())
                }
            },
            Err(e) => {
                notes.push(format!(
                    "no account or region ({e:#}): ARNs hold `*` for them"
                ));
                ("*".into(), "*".into())
            }
        },
    };
    let names = Names::of(&rb, state.as_ref(), &place, account, region);
    let calls = calls_for(&rb, state.as_ref(), command, allow_replace);
    let doc = policy(&calls, &names);
    println!("{}", serde_json::to_string_pretty(&doc)?);
    if doc.statement.is_empty() {
        notes.push("this command makes no AWS call with a state in a local file".into());
    }
    for n in notes {
        eprintln!("note: {n}");
    }
    Ok(())
}

/// Every call `command` may make for this runbook, with what it acts on.
pub fn calls_for(
    rb: &Runbook,
    state: Option<&State>,
    command: For,
    allow_replace: bool,
) -> Vec<(&'static str, On)> {
    let listed: Vec<&dyn Step> = rb.step_names().filter_map(steps::get).collect();
    // Steps the runbook leaves out but reads from the account by value
    // (`proxy.name` of a proxy it does not manage).
    let by_value = steps::names()
        .into_iter()
        .filter_map(steps::get)
        .filter(|s| s.by_value().is_some() && !listed.iter().any(|l| l.name() == s.name()));
    let checks = listed
        .iter()
        .copied()
        .chain(by_value)
        .map(|s| s.actions().check);
    let mut parts: Vec<Calls> = vec![crate::aws::ACTIONS];
    match command {
        For::Plan => {
            parts.extend([
                crate::preflight::ACTIONS,
                crate::db::ACTIONS,
                crate::budget::ACTIONS,
            ]);
            parts.push(crate::state::s3::READ);
            parts.extend(checks);
        }
        For::Run => {
            parts.extend([crate::preflight::ACTIONS, crate::db::ACTIONS]);
            if rb.invoke_check.probe {
                parts.push(crate::probe::lambda::ACTIONS);
            }
            if rb.invoke_check.probe || state.is_some_and(|s| !s.probes.is_empty()) {
                parts.push(crate::probe::lambda::SWEEP);
            }
            parts.push(crate::state::s3::WRITE);
            parts.extend(checks);
            parts.extend(listed.iter().map(|s| s.actions().apply));
            if allow_replace {
                // The old resources, deleted once every function moved.
                parts.push(crate::aws::GUARD);
                let replaceable = listed.iter().filter(|s| !s.identity().is_empty());
                parts.extend(replaceable.map(|s| s.actions().rollback));
            }
        }
        For::Rollback => {
            parts.push(crate::state::s3::WRITE);
            if rb.invoke_check.probe || state.is_some_and(|s| !s.probes.is_empty()) {
                parts.push(crate::probe::lambda::SWEEP);
            }
            parts.push(crate::aws::GUARD);
            // The runbook's steps, and any its state recorded.
            let recorded = state
                .map(|s| {
                    s.steps
                        .keys()
                        .filter_map(|n| steps::get(n))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            let all = listed.iter().copied().chain(recorded);
            parts.extend(all.map(|s| s.actions().rollback));
        }
        For::Doctor => parts.extend([crate::commands::doctor::ACTIONS, crate::db::ACTIONS]),
        For::Probe => {
            parts.push(crate::state::s3::WRITE);
            parts.extend([crate::probe::lambda::ACTIONS, crate::probe::lambda::SWEEP]);
        }
        For::Status => {
            parts = vec![crate::state::s3::READ, crate::state::s3::HISTORY];
        }
    }
    let mut out: Vec<(&'static str, On)> = parts.into_iter().flatten().copied().collect();
    out.sort();
    out.dedup();
    out
}

/// The names the runbook and its state give the resources, as ARNs.
pub struct Names {
    account: String,
    region: String,
    proxy_roles: BTreeSet<String>,
    policies: BTreeSet<String>,
    proxies: BTreeSet<String>,
    db: Option<String>,
    functions: BTreeSet<String>,
    /// The start of the name of every probe function of the runbook.
    probe_prefix: String,
    secrets: BTreeSet<String>,
    alarms: BTreeSet<String>,
    /// The book's managed secrets policy (`secret_access.mode`).
    managed_secrets: bool,
    state: Option<crate::state::s3::S3Place>,
}

/// A runbook value, or `*` when it comes from an unset variable.
fn value(t: &Text) -> String {
    match (t.unset_env, t.literal()) {
        (false, Some(v)) => v,
        _ => "*".into(),
    }
}

impl Names {
    pub fn of(
        rb: &Runbook,
        state: Option<&State>,
        place: &StatePlace,
        account: String,
        region: String,
    ) -> Names {
        let iam = |kind: &str, name: &str| format!("arn:aws:iam::{account}:{kind}/{name}");
        // What the state recorded: current and replaced resources.
        let outputs = |step: &str, key: &str| -> Vec<String> {
            let Some(rec) = state.and_then(|s| s.record(step)) else {
                return Vec::new();
            };
            let retired = rec.retired.iter().map(|r| &r.outputs);
            std::iter::once(&rec.outputs)
                .chain(retired)
                .filter_map(|o| o.get(key).cloned())
                .collect()
        };
        let role_arn = match rb.proxy.role_arn.literal() {
            Some(arn) if !rb.proxy.role_arn.unset_env => arn,
            _ => iam("role", &value(&rb.proxy_role.name)),
        };
        let mut proxy_roles = BTreeSet::from([role_arn]);
        proxy_roles.extend(outputs("proxy-role", "arn"));
        let mut policies = BTreeSet::from([iam("policy", &value(&rb.connect_policy.name))]);
        policies.extend(outputs("connect-policy", "arn"));
        let mut proxies = BTreeSet::from([value(&rb.proxy.name)]);
        proxies.extend(outputs("proxy", "name"));
        let db = match (&rb.database.instance_id, &rb.database.cluster_id) {
            (Some(id), _) => Some(format!("arn:aws:rds:{region}:{account}:db:{}", value(id))),
            (None, Some(id)) => Some(format!(
                "arn:aws:rds:{region}:{account}:cluster:{}",
                value(id)
            )),
            _ => None,
        };
        let mut functions: BTreeSet<String> =
            rb.lambdas.iter().map(|l| value(&l.function_name)).collect();
        functions.extend(recorded_functions(state));
        let secrets = rb
            .database
            .secret_arn
            .iter()
            .chain(rb.auth.iter().map(|a| &a.secret_arn))
            .map(value)
            .collect();
        let mut alarms: BTreeSet<String> = rb
            .alarms
            .iter()
            .flat_map(|a| a.alarms.iter().map(|s| s.name.clone()))
            .collect();
        alarms.extend(
            outputs("alarms", "alarms")
                .iter()
                .flat_map(|o| o.split_whitespace().map(String::from)),
        );
        let state = match place {
            StatePlace::S3(p) => Some(p.clone()),
            StatePlace::File(_) => None,
        };
        Names {
            account,
            region,
            proxy_roles,
            policies,
            proxies,
            db,
            functions,
            probe_prefix: crate::probe::plan::prefix(&rb.name),
            secrets,
            alarms,
            managed_secrets: rb.secret_access == crate::runbook::SecretAccess::Managed,
            state,
        }
    }

    /// The resources of `on`, and the condition that narrows it.
    fn resources(&self, on: On) -> (Vec<String>, Option<Value>) {
        let (a, r) = (&self.account, &self.region);
        let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>();
        match on {
            On::ProxyRole => (list(&self.proxy_roles), None),
            On::ProxyRoleToRds => (
                list(&self.proxy_roles),
                Some(json!({"StringEquals": {"iam:PassedToService": "rds.amazonaws.com"}})),
            ),
            On::ProxyRoleManagedPolicy if !self.managed_secrets => (Vec::new(), None),
            On::ProxyRoleManagedPolicy => (
                list(&self.proxy_roles),
                Some(json!({"ArnEquals": {"iam:PolicyARN": steps::MANAGED_SECRETS_POLICY}})),
            ),
            On::ConnectPolicy => (list(&self.policies), None),
            On::ConnectPolicyHolders => (
                ["role", "user", "group"]
                    .iter()
                    .map(|k| format!("arn:aws:iam::{a}:{k}/*"))
                    .collect(),
                Some(json!({"ArnEquals": {"iam:PolicyARN": list(&self.policies)}})),
            ),
            On::FunctionRoles => (vec![format!("arn:aws:iam::{a}:role/*")], None),
            On::FunctionRolesToLambda => (
                vec![format!("arn:aws:iam::{a}:role/*")],
                Some(json!({"StringEquals": {"iam:PassedToService": "lambda.amazonaws.com"}})),
            ),
            On::ProbeFunctions => (
                vec![format!(
                    "arn:aws:lambda:{r}:{a}:function:{}*",
                    self.probe_prefix
                )],
                None,
            ),
            On::Proxy => {
                let mut out: Vec<String> = ["db-proxy", "target-group", "db-proxy-endpoint"]
                    .iter()
                    .map(|k| format!("arn:aws:rds:{r}:{a}:{k}:*"))
                    .collect();
                out.extend(self.db.clone());
                (out, None)
            }
            On::Functions => (
                self.functions
                    .iter()
                    .map(|f| format!("arn:aws:lambda:{r}:{a}:function:{f}"))
                    .collect(),
                None,
            ),
            On::AnyFunction => (vec![format!("arn:aws:lambda:{r}:{a}:function:*")], None),
            On::Secrets => (list(&self.secrets), None),
            On::SecretKeys if self.secrets.is_empty() => (Vec::new(), None),
            On::SecretKeys => (
                vec!["*".into()],
                Some(json!({"StringLike": {
                    "kms:ViaService": format!("secretsmanager.{r}.amazonaws.com")
                }})),
            ),
            On::ProxyLog => (
                self.proxies
                    .iter()
                    .flat_map(|p| {
                        let group = format!("arn:aws:logs:{r}:{a}:log-group:/aws/rds/proxy/{p}");
                        [format!("{group}:*"), group]
                    })
                    .collect(),
                None,
            ),
            On::Alarms => (
                self.alarms
                    .iter()
                    .map(|n| format!("arn:aws:cloudwatch:{r}:{a}:alarm:{n}"))
                    .collect(),
                None,
            ),
            On::StateBucket => match &self.state {
                Some(s) => (vec![format!("arn:aws:s3:::{}", s.bucket)], None),
                None => (Vec::new(), None),
            },
            On::StateObject => match &self.state {
                Some(s) => {
                    let object = format!("arn:aws:s3:::{}/{}", s.bucket, s.key);
                    (vec![object.clone(), format!("{object}.lock")], None)
                }
                None => (Vec::new(), None),
            },
            On::StateKey => match self.state.as_ref().and_then(|s| s.kms_key.as_ref()) {
                Some(k) if k.starts_with("arn:") => (vec![k.clone()], None),
                // An alias or a key id: any key of the state's region.
                Some(_) => {
                    let sr = self.state.as_ref().and_then(|s| s.region.clone());
                    let sr = sr.unwrap_or_else(|| r.clone());
                    (vec![format!("arn:aws:kms:{sr}:{a}:key/*")], None)
                }
                None => (Vec::new(), None),
            },
            On::Any => (vec!["*".into()], None),
        }
    }
}

/// The functions a state records (a step's inputs' `functions`: names, or
/// entries with a `name`): one that left the runbook is put back by the
/// next run, and rolled back from the state.
fn recorded_functions(state: Option<&State>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Some(state) = state else { return out };
    for rec in state.steps.values() {
        let inputs = rec
            .inputs
            .iter()
            .chain(rec.retired.iter().map(|r| &r.inputs));
        for list in inputs.filter_map(|i| i.get("functions")?.as_array()) {
            for f in list {
                let name = f.as_str().or_else(|| f.get("name")?.as_str());
                out.extend(name.map(String::from));
            }
        }
    }
    out
}

/// The statement id of each kind of resource.
fn sid(on: On) -> &'static str {
    match on {
        On::ProxyRole => "ProxyRole",
        On::ProxyRoleToRds => "PassProxyRoleToRds",
        On::ProxyRoleManagedPolicy => "ProxyRoleManagedSecretsPolicy",
        On::ConnectPolicy => "ConnectPolicy",
        On::ConnectPolicyHolders => "ConnectPolicyAttachments",
        On::FunctionRoles => "FunctionRolesRead",
        On::FunctionRolesToLambda => "PassFunctionRolesToProbe",
        On::ProbeFunctions => "ProbeFunctions",
        On::Proxy => "Proxy",
        On::Functions => "Functions",
        On::AnyFunction => "AnyFunctionRead",
        On::Secrets => "Secrets",
        On::SecretKeys => "SecretKeysThroughSecretsManager",
        On::ProxyLog => "ProxyLog",
        On::Alarms => "ProxyAlarms",
        On::StateBucket => "StateBucket",
        On::StateObject => "StateObject",
        On::StateKey => "StateKey",
        On::Any => "AnyResource",
    }
}

/// An IAM policy, its fields in the order IAM shows them.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Policy {
    version: &'static str,
    pub statement: Vec<Statement>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    sid: &'static str,
    effect: &'static str,
    pub action: Vec<&'static str>,
    pub resource: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<Value>,
}

/// The policy: one statement per kind of resource, its actions sorted; a
/// kind the runbook has none of (no state in S3) is left out.
pub fn policy(calls: &[(&'static str, On)], names: &Names) -> Policy {
    let mut by_on: BTreeMap<On, BTreeSet<&'static str>> = BTreeMap::new();
    for (action, on) in calls {
        by_on.entry(*on).or_default().insert(action);
    }
    let statement = by_on
        .into_iter()
        .filter_map(|(on, actions)| {
            let (resources, condition) = names.resources(on);
            let resource = match resources.as_slice() {
                [] => return None,
                [one] => json!(one),
                many => json!(many),
            };
            Some(Statement {
                sid: sid(on),
                effect: "Allow",
                action: actions.into_iter().collect(),
                resource,
                condition,
            })
        })
        .collect();
    Policy {
        version: "2012-10-17",
        statement,
    }
}

#[cfg(test)]
mod tests;
