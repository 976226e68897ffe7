//! One probe, from the account's reads to the verdicts: what the proxy
//! says of its endpoints and logins, each function's configuration, then
//! per configuration a probe function created, invoked and deleted. Used
//! by the `probe` command and by the invoke check (`[invoke_check] probe`).

use std::time::{Duration, Instant, SystemTime};

use anyhow::Result;
use async_trait::async_trait;
use serde::Serialize;

use super::lambda;
use super::plan::{self, Configuration, Function, Proxy, Secret};
use super::{Report, owner};
use crate::aws::{Aws, describe_error};
use crate::runbook::{EngineFamily, Runbook};
use crate::ui::progress::StepBar;
use serde::Deserialize;
use std::collections::BTreeMap;

/// What a probe needs of the runbook: kept in the invoke check's inputs
/// when it probes, so that the step runs from its inputs alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    pub runbook: String,
    /// The tags of what the runbook creates (the ownership tag included).
    pub tags: BTreeMap<String, String>,
    /// Each function, with the DB user it connects as (`*`: any of the
    /// proxy's secrets' users).
    pub functions: Vec<(String, String)>,
    /// The runbook's `[[endpoint]]`s, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<String>,
    /// `proxy.require_tls`: clients connect with TLS (always with a token).
    pub require_tls: bool,
}

impl Subject {
    /// The runbook's functions, named by `name_of` (the step's resolver,
    /// or the literal), and its endpoints.
    pub fn of(rb: &Runbook, mut name_of: impl FnMut(&crate::runbook::Text) -> String) -> Subject {
        let policy_user = rb.connect_policy.db_user.literal();
        let functions = rb
            .lambdas
            .iter()
            .map(|l| {
                let user = l.db_user.clone().or(policy_user.clone());
                (
                    name_of(&l.function_name),
                    user.unwrap_or_else(|| "*".into()),
                )
            })
            .collect();
        Subject {
            runbook: rb.name.clone(),
            tags: rb.tags.clone(),
            functions,
            endpoints: rb.endpoints.iter().map(|e| e.name.clone()).collect(),
            require_tls: rb.proxy.require_tls,
        }
    }
}

/// Where a probe function is written down before it is created and struck
/// off once deleted, so that one a kill left is found by the next command.
#[async_trait]
pub trait Ledger: Send {
    async fn note(&mut self, function: &str, exists: bool) -> Result<()>;
}

/// A ledger that writes nothing: the caller's state already says a probe
/// may have run (the invoke check's record).
pub struct Unrecorded;

#[async_trait]
impl Ledger for Unrecorded {
    async fn note(&mut self, _: &str, _: bool) -> Result<()> {
        Ok(())
    }
}

/// One endpoint, as one user, from one configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    #[serde(flatten)]
    pub report: Report,
    /// The step of the runbook that owns a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// What the probe found in one configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Probed {
    #[serde(flatten)]
    pub configuration: Configuration,
    pub probe_function: String,
    pub results: Vec<Verdict>,
    /// Why the probe could not answer at all (creating or invoking it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why the probe function could not be deleted (with the command).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub left_behind: Option<String>,
}

impl Probed {
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.results.iter().all(|v| v.report.verdict == "ok")
    }
}

/// A whole probe.
#[derive(Debug, Clone, Serialize)]
pub struct Findings {
    pub proxy: String,
    pub configurations: Vec<Probed>,
    /// What the proxy's log says since the probe began, when one failed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub proxy_log: Vec<String>,
}

impl Findings {
    pub fn passed(&self) -> bool {
        self.configurations.iter().all(Probed::passed)
    }
}

/// How long a probe function may run: each target's connect timeout, its
/// login and two queries.
fn function_timeout(targets: usize) -> i32 {
    (10 + targets as u64 * (plan::CONNECT_TIMEOUT_SECONDS + 5)).min(900) as i32
}

/// Deletes every probe function of this runbook the account holds.
/// Returns the names deleted.
pub async fn sweep(aws: &Aws, runbook: &str, ledger: &mut dyn Ledger) -> Result<Vec<String>> {
    let found = lambda::leftovers(aws, runbook).await?;
    for name in &found {
        lambda::delete(aws, name).await?;
        ledger.note(name, false).await?;
    }
    Ok(found)
}

/// The proxy as clients meet it.
async fn read_proxy(aws: &Aws, name: &str, wanted: &[String]) -> Result<Proxy> {
    let Some(p) = crate::aws::rds::find(aws, name).await? else {
        return Err(crate::error::Failure::steps_failed(format!(
            "there is no DB proxy {name} in {}: run the runbook first",
            aws.region
        )));
    };
    let family = match p.engine_family() {
        Some("POSTGRESQL") => EngineFamily::Postgresql,
        Some("SQLSERVER") => EngineFamily::Sqlserver,
        _ => EngineFamily::Mysql,
    };
    let mut secrets = Vec::new();
    for a in p.auth() {
        let Some(arn) = a.secret_arn() else { continue };
        // The user the secret logs in as, read by whoever runs the tool
        // (as preflight does); the password is never kept.
        let user = match aws.secrets.get_secret_value().secret_id(arn).send().await {
            Ok(v) => v
                .secret_string()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok())
                .and_then(|d| d["username"].as_str().map(String::from)),
            Err(e) => anyhow::bail!(
                "cannot read which user secret {arn} logs in as: {} (allow \
                 secretsmanager:GetSecretValue to whoever runs the probe)",
                describe_error(&e)
            ),
        };
        secrets.push(Secret {
            arn: arn.to_string(),
            user,
            iam: a.iam_auth().map(|i| i.as_str()) == Some("REQUIRED"),
        });
    }
    let mut endpoints = vec![(
        "default".to_string(),
        p.endpoint().unwrap_or_default().to_string(),
    )];
    if !wanted.is_empty() {
        let listed = aws
            .rds
            .describe_db_proxy_endpoints()
            .db_proxy_name(name)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot read the endpoints of {name}: {}",
                    describe_error(&e)
                )
            })?;
        for e in wanted {
            let host = listed
                .db_proxy_endpoints()
                .iter()
                .find(|l| l.db_proxy_endpoint_name() == Some(e.as_str()))
                .and_then(|l| l.endpoint());
            match host {
                Some(h) => endpoints.push((e.clone(), h.to_string())),
                None => {
                    anyhow::bail!("proxy {name} has no endpoint {e} yet: run the runbook first")
                }
            }
        }
    }
    Ok(Proxy {
        arn: p.db_proxy_arn().unwrap_or_default().to_string(),
        family,
        require_tls: p.require_tls() == Some(true),
        iam_default: p.default_auth_scheme() == Some("IAM_AUTH"),
        secrets,
        endpoints,
    })
}

/// Each function as Lambda describes it.
async fn read_functions(aws: &Aws, s: &Subject, proxy: &Proxy) -> Result<Vec<Function>> {
    let mut out = Vec::new();
    for (name, user) in &s.functions {
        let Some(f) = aws.function_if_any(name).await? else {
            anyhow::bail!("there is no Lambda function {name} in {}", aws.region);
        };
        let vpc = f.vpc_config();
        out.push(Function {
            name: name.clone(),
            role: f.role().unwrap_or_default().to_string(),
            subnets: vpc.map(|v| v.subnet_ids().to_vec()).unwrap_or_default(),
            groups: vpc
                .map(|v| v.security_group_ids().to_vec())
                .unwrap_or_default(),
            users: plan::function_users(Some(user), proxy),
        });
    }
    Ok(out)
}

/// Probes every configuration of the runbook's functions against `proxy`
/// (its name).
pub async fn probe(
    aws: &Aws,
    rb: &Subject,
    proxy_name: &str,
    bar: &StepBar,
    ledger: &mut dyn Ledger,
    retry_logins_until: Option<Instant>,
) -> Result<Findings> {
    let since = SystemTime::now();
    let mut proxy = read_proxy(aws, proxy_name, &rb.endpoints).await?;
    // Clients connect as the runbook configures them: a proxy changed by
    // hand to require TLS refuses them, as it would the functions.
    proxy.require_tls = rb.require_tls;
    if proxy.family == EngineFamily::Sqlserver {
        return Err(crate::error::Failure::usage(
            "the probe has no SQL Server client: check a SQL Server proxy with the invoke check \
             (your function) and `doctor`",
        ));
    }
    let functions = read_functions(aws, rb, &proxy).await?;
    let mut configurations = Vec::new();
    for (i, c) in plan::configurations(&functions).into_iter().enumerate() {
        let name = plan::function_name(&rb.runbook, i);
        let (targets, unreachable) = plan::targets(&proxy, &c.users);
        let mut results: Vec<Verdict> = unreachable
            .into_iter()
            .map(|(user, why)| Verdict {
                report: Report::failed_before(&user, "credentials", &why),
                step: Some("secret-access"),
                fix: Some(format!(
                    "give the proxy a secret that logs in as `{user}` (an [[auth]] entry), or \
                     connect the function as a user the proxy has"
                )),
            })
            .collect();
        let mut probed = Probed {
            configuration: c.clone(),
            probe_function: name.clone(),
            results: Vec::new(),
            error: None,
            left_behind: None,
        };
        if !targets.is_empty() {
            bar.set(format!(
                "probe {} of {}: creating {name}",
                i + 1,
                c.functions.join(", ")
            ));
            ledger.note(&name, true).await?;
            let answered = async {
                lambda::create(
                    aws,
                    bar,
                    &name,
                    &rb.runbook,
                    &rb.tags,
                    &c,
                    function_timeout(targets.len()),
                )
                .await?;
                crate::failpoint::hit("probe", "after-create");
                bar.set(format!("probe {}: invoking {name}", i + 1));
                loop {
                    let answer = lambda::invoke(aws, &name, &targets).await?;
                    // IAM honours a grant this run made within seconds,
                    // rarely a minute: a refused login is tried again.
                    let refused = answer
                        .results
                        .iter()
                        .any(|r| r.failed_at.as_deref() == Some("auth"));
                    match retry_logins_until {
                        Some(until) if refused && Instant::now() < until => {
                            bar.set(format!(
                                "probe {}: a login was refused, trying again",
                                i + 1
                            ));
                            tokio::time::sleep(crate::poll::scaled(Duration::from_secs(2))).await;
                        }
                        _ => break Ok::<_, anyhow::Error>(answer),
                    }
                }
            }
            .await;
            match answered {
                Ok(answer) => results.extend(answer.results.into_iter().map(|r| {
                    let iam = targets.iter().any(|t| t.host == r.host && t.auth == "iam");
                    judge(r, iam)
                })),
                Err(e) => probed.error = Some(format!("{e:#}")),
            }
            match lambda::delete(aws, &name).await {
                Ok(()) => ledger.note(&name, false).await?,
                Err(e) => probed.left_behind = Some(format!("{e:#}")),
            }
        }
        probed.results = results;
        configurations.push(probed);
    }
    let mut findings = Findings {
        proxy: proxy_name.to_string(),
        configurations,
        proxy_log: Vec::new(),
    };
    if !findings.passed() {
        let found = match crate::proxy_logs::read(aws, proxy_name, since).await {
            Ok(crate::proxy_logs::Read::Messages(m)) => crate::proxy_logs::diagnose(&m),
            Ok(crate::proxy_logs::Read::NoGroup) => Vec::new(),
            Ok(crate::proxy_logs::Read::Unreadable(why)) => {
                findings.proxy_log.push(why);
                Vec::new()
            }
            Err(e) => {
                findings
                    .proxy_log
                    .push(format!("cannot read the proxy's log: {e:#}"));
                Vec::new()
            }
        };
        if let Some((step, fix)) = login_owner(&found) {
            let refused = findings
                .configurations
                .iter_mut()
                .flat_map(|c| c.results.iter_mut())
                .filter(|v| v.report.failed_at.as_deref() == Some("auth"));
            for v in refused {
                v.step = Some(step);
                v.fix = Some(fix.to_string());
            }
        }
        findings.proxy_log.extend(crate::proxy_logs::lines(&found));
        for c in &mut findings.configurations {
            let role = c.configuration.role.clone();
            let refused = c
                .results
                .iter_mut()
                .filter(|v| v.step == Some("connect-policy"));
            for v in refused {
                let user = v.report.user.as_deref().unwrap_or("*");
                if let Some(fix) = grant_needed(&proxy.arn, &role, user) {
                    v.fix = Some(fix);
                }
            }
        }
    }
    Ok(findings)
}

/// The grant a role lacks for an IAM token refused: `rds-db:connect` on
/// the proxy's `prx-` id for the user, named whole.
fn grant_needed(proxy_arn: &str, role: &str, user: &str) -> Option<String> {
    let id = crate::arn::proxy_id(proxy_arn)?;
    let mut parts = proxy_arn.split(':').skip(1);
    let (partition, _, region, account) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    Some(format!(
        "the function's role ({role}) needs rds-db:connect on \
         arn:{partition}:rds-db:{region}:{account}:dbuser:{id}/{user} (this proxy's id is {id}): \
         the connect policy must name that id, and be attached to the role"
    ))
}

/// Who owns a refused login, when the proxy's log says why it refused:
/// its own credentials unreadable, a user it holds no secret for, or an
/// IAM token its role may not use.
fn login_owner(found: &[crate::proxy_logs::Finding]) -> Option<(&'static str, &'static str)> {
    use crate::proxy_logs::{CREDENTIALS_UNREADABLE, IAM_REFUSED, NO_CREDENTIALS};
    [
        (CREDENTIALS_UNREADABLE, "secret-access"),
        (NO_CREDENTIALS, "secret-access"),
        (IAM_REFUSED, "connect-policy"),
    ]
    .into_iter()
    .find_map(|(what, step)| found.iter().find(|f| f.what == what).map(|f| (step, f.fix)))
}

fn judge(report: Report, iam: bool) -> Verdict {
    let (step, fix) = match (&report.failed_at, &report.error) {
        (Some(at), error) => {
            let (step, fix) = owner(at, error.as_deref().unwrap_or(""), iam);
            (Some(step), Some(fix.to_string()))
        }
        _ => (None, None),
    };
    Verdict { report, step, fix }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_token_names_the_grant_it_lacks() {
        let fix = grant_needed(
            "arn:aws:rds:us-east-1:123456789012:db-proxy:prx-0abc",
            "arn:aws:iam::123456789012:role/app",
            "admin",
        )
        .unwrap();
        assert!(
            fix.contains("on arn:aws:rds-db:us-east-1:123456789012:dbuser:prx-0abc/admin (this"),
            "{fix}"
        );
        assert_eq!(grant_needed("", "r", "u"), None);
    }

    #[test]
    fn a_probe_has_time_for_every_target() {
        assert_eq!(function_timeout(1), 20);
        assert_eq!(function_timeout(1000), 900, "Lambda's longest");
    }
}
