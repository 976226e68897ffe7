//! Recipe step 2 (second half): the DB proxy itself, waited on until it is
//! `available`. A proxy of that name that differs from the runbook (engine,
//! TLS, auth, subnets, role, security groups) is drift: reported, never
//! adopted silently.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use aws_sdk_rds::types::{
    AuthScheme, ClientPasswordAuthType, DbProxy, DbProxyStatus, DefaultAuthScheme,
    EndpointNetworkType, EngineFamily, IamAuthMode, TargetConnectionNetworkType, UserAuthConfig,
    UserAuthConfigInfo,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{TagChanges, rds_tags, tag_changes};
use super::contract::{Actions, Ctx, Found, On, Outputs, Resolver, StepImpl, Undone};
use crate::aws::errors::{is_proxy_exists, is_proxy_not_found};
use crate::aws::rds::find;
use crate::aws::{describe_error, error_code};
use crate::poll::Wait;
use crate::rounds::{self, wait_in_rounds};
use crate::runbook::Runbook;

pub struct Proxy;

#[derive(Serialize, Deserialize, Clone)]
pub struct Inputs {
    name: String,
    engine_family: String,
    /// None with end-to-end IAM and no secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    secret_arn: Option<String>,
    iam_auth: String,
    /// The runbook's `[[auth]]` entries, when it lists them (then
    /// `secret_arn` is none); left out otherwise, so the book's inputs read
    /// and checksum as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    auth: Vec<AuthInput>,
    /// `NONE` (the book's, left out of the recorded inputs so that states
    /// written before it keep their checksum) or `IAM_AUTH`.
    #[serde(default = "no_scheme", skip_serializing_if = "is_no_scheme")]
    default_auth_scheme: String,
    /// `IPV4` (left out of the recorded inputs, as the scheme's default),
    /// `IPV6` or `DUAL`; set when the proxy is made.
    #[serde(default = "ipv4", skip_serializing_if = "is_ipv4")]
    endpoint_network_type: String,
    /// `IPV4` or `IPV6`; likewise.
    #[serde(default = "ipv4", skip_serializing_if = "is_ipv4")]
    target_connection_network_type: String,
    role_arn: String,
    subnet_ids: Vec<String>,
    security_group_ids: Vec<String>,
    require_tls: bool,
    idle_client_timeout: u32,
    debug_logging: bool,
    tags: BTreeMap<String, String>,
    /// How long to wait; a setting of the run, not of the proxy, so it is
    /// kept out of the checksum (see `state::checksum`).
    #[serde(rename = "_wait_timeout_seconds")]
    wait_timeout_seconds: u64,
}

/// One of the proxy's secrets, as `Auth` lists it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AuthInput {
    secret_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    iam_auth: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_password_auth_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

impl Inputs {
    /// The proxy's secrets: the `[[auth]]` entries, else the one secret.
    fn entries(&self) -> Vec<AuthInput> {
        if !self.auth.is_empty() {
            return self.auth.clone();
        }
        self.secret_arn
            .iter()
            .map(|arn| AuthInput {
                secret_arn: arn.clone(),
                user: None,
                iam_auth: self.iam_auth.clone(),
                client_password_auth_type: None,
                description: None,
            })
            .collect()
    }
}

fn no_scheme() -> String {
    "NONE".to_string()
}

fn is_no_scheme(s: &str) -> bool {
    s == "NONE"
}

fn ipv4() -> String {
    "IPV4".to_string()
}

fn is_ipv4(s: &str) -> bool {
    s == "IPV4"
}

/// What to do about a status while waiting for `available`.
pub fn status_decision(status: &str) -> Result<Wait<()>> {
    match status {
        "available" => Ok(Wait::Ready(())),
        "incompatible-network" => anyhow::bail!(
            "the proxy is incompatible-network, which does not pass by waiting: check that its \
             subnets are in the DB's VPC, in at least two Availability Zones that RDS Proxy \
             supports, with free IP addresses; then roll the proxy back and run again"
        ),
        "insufficient-resource-limits" => anyhow::bail!(
            "the proxy is insufficient-resource-limits, which does not pass by waiting: free IP \
             addresses in its subnets or raise the account's limits (network interfaces), then \
             roll the proxy back and run again"
        ),
        "deleting" => {
            anyhow::bail!("the proxy is being deleted; wait until it is gone, then run again")
        }
        "suspended" | "suspending" => anyhow::bail!(
            "the proxy is {status}: its target or credentials may be broken; see its events in \
             the RDS console"
        ),
        other => Ok(Wait::Pending(other.to_string())),
    }
}

fn status_of(p: &DbProxy) -> String {
    p.status()
        .map_or("unknown", DbProxyStatus::as_str)
        .to_string()
}

fn set(v: &[String]) -> BTreeSet<&str> {
    v.iter().map(String::as_str).collect()
}

/// How the proxy in the account differs from the runbook, each entry
/// `what: the account's -> the runbook's`.
#[derive(Debug, Default, PartialEq)]
pub struct Differences {
    /// What ModifyDBProxy changes in place.
    pub in_place: Vec<String>,
    /// What only a new proxy can change: the engine family and subnets.
    pub replace: Vec<String>,
}

pub fn differences(p: &DbProxy, i: &Inputs, requested: &[String]) -> Differences {
    let mut d = Differences::default();
    let mut cmp = |in_place: bool, what: &str, have: String, want: String| {
        if have != want {
            let list = if in_place {
                &mut d.in_place
            } else {
                &mut d.replace
            };
            list.push(format!("{what}: {have} -> {want}"));
        }
    };
    cmp(
        false,
        "engine family",
        p.engine_family().unwrap_or_default().to_string(),
        i.engine_family.clone(),
    );
    cmp(
        false,
        "subnets",
        format!("{:?}", set(p.vpc_subnet_ids())),
        format!("{:?}", set(&kept_subnets(p, i, requested))),
    );
    cmp(
        false,
        "endpoint network type",
        p.endpoint_network_type()
            .map_or("IPV4", EndpointNetworkType::as_str)
            .to_string(),
        i.endpoint_network_type.clone(),
    );
    cmp(
        false,
        "target connection network type",
        p.target_connection_network_type()
            .map_or("IPV4", TargetConnectionNetworkType::as_str)
            .to_string(),
        i.target_connection_network_type.clone(),
    );
    cmp(
        true,
        "require TLS",
        p.require_tls().unwrap_or(false).to_string(),
        i.require_tls.to_string(),
    );
    cmp(
        true,
        "default auth scheme",
        p.default_auth_scheme().unwrap_or("NONE").to_string(),
        i.default_auth_scheme.clone(),
    );
    let have: BTreeMap<&str, &UserAuthConfigInfo> = p
        .auth()
        .iter()
        .filter_map(|a| a.secret_arn().map(|s| (s, a)))
        .collect();
    let want = i.entries();
    let list = |arns: Vec<&str>| {
        if arns.is_empty() {
            "none".to_string()
        } else {
            arns.join(", ")
        }
    };
    // The book's one secret keeps its wording; listed ones are named.
    let (secrets, of): (&str, fn(&str) -> String) = if i.auth.is_empty() {
        ("secret", |_: &str| String::new())
    } else {
        ("secrets", |arn: &str| format!(" of {arn}"))
    };
    cmp(
        true,
        secrets,
        list(have.keys().copied().collect()),
        list(
            want.iter()
                .map(|a| a.secret_arn.as_str())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
        ),
    );
    // Each secret's settings (clients' IAM, password authentication, the
    // description), compared where the runbook sets them.
    for a in &want {
        let Some(h) = have.get(a.secret_arn.as_str()) else {
            continue;
        };
        let of = of(&a.secret_arn);
        cmp(
            true,
            &format!("IAM auth{of}"),
            h.iam_auth()
                .map_or("DISABLED", IamAuthMode::as_str)
                .to_string(),
            a.iam_auth.clone(),
        );
        if let Some(c) = &a.client_password_auth_type {
            cmp(
                true,
                &format!("client password auth{of}"),
                h.client_password_auth_type()
                    .map_or("default", |c| c.as_str())
                    .to_string(),
                c.clone(),
            );
        }
        if let Some(u) = &a.user {
            cmp(
                true,
                &format!("user{of}"),
                h.user_name().unwrap_or("none").to_string(),
                u.clone(),
            );
        }
        if let Some(d) = &a.description {
            cmp(
                true,
                &format!("description{of}"),
                h.description().unwrap_or_default().to_string(),
                d.clone(),
            );
        }
    }
    cmp(
        true,
        "role",
        p.role_arn().unwrap_or_default().to_string(),
        i.role_arn.clone(),
    );
    cmp(
        true,
        "security groups",
        format!("{:?}", set(p.vpc_security_group_ids())),
        format!("{:?}", set(&i.security_group_ids)),
    );
    if let Some(t) = p.idle_client_timeout() {
        cmp(
            true,
            "idle client timeout",
            t.to_string(),
            i.idle_client_timeout.to_string(),
        );
    }
    if let Some(b) = p.debug_logging() {
        cmp(
            true,
            "debug logging",
            b.to_string(),
            i.debug_logging.to_string(),
        );
    }
    d
}

/// The proxy's `Auth`: its secrets, none with end-to-end IAM alone.
fn auth_config(i: &Inputs) -> Vec<UserAuthConfig> {
    i.entries()
        .into_iter()
        .map(|a| {
            UserAuthConfig::builder()
                .auth_scheme(AuthScheme::Secrets)
                .secret_arn(a.secret_arn)
                .set_user_name(a.user)
                .iam_auth(IamAuthMode::from(a.iam_auth.as_str()))
                .set_client_password_auth_type(
                    a.client_password_auth_type
                        .map(|c| ClientPasswordAuthType::from(c.as_str())),
                )
                .set_description(a.description)
                .build()
        })
        .collect()
}

/// The name of the runbook's proxy, for the rollback guard: as the state
/// recorded it (`recorded`: a step's recorded inputs), else as the runbook
/// gives it when it is known (not an unset `${env.*}`).
pub fn name_for_guard(
    rb: &Runbook,
    recorded: &dyn Fn(&str) -> Option<serde_json::Value>,
) -> Option<String> {
    let from_state = recorded(<Proxy as StepImpl>::NAME)
        .as_ref()
        .and_then(|i| i.get("name"))
        .and_then(|n| n.as_str())
        .map(str::to_string);
    let none = |_: &str, _: &str| None;
    from_state.or_else(|| {
        (!rb.proxy.name.unset_env)
            .then(|| rb.proxy.name.fill(&none).ok())
            .flatten()
    })
}

/// The proxy's tags, and whether they say it is ours.
async fn tags_of(cx: &Ctx<'_>, p: &DbProxy) -> Result<(bool, Vec<(String, String)>)> {
    let arn = p.db_proxy_arn().context("a DB proxy without an ARN")?;
    let tags = crate::aws::rds::tags(cx.aws, arn).await?;
    let ours = cx.claims(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    Ok((ours, tags))
}

async fn owned(cx: &Ctx<'_>, p: &DbProxy) -> Result<bool> {
    Ok(tags_of(cx, p).await?.0)
}

/// How the proxy's tags must change (see [`tag_changes`]).
fn proxy_tags(cx: &Ctx<'_>, i: &Inputs, have: &[(String, String)]) -> TagChanges {
    tag_changes(
        cx,
        have.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        &i.tags,
    )
}

/// Changes a proxy of ours in place: ModifyDBProxy with the runbook's
/// settings (only when one differs), then its tags.
async fn modify(cx: &Ctx<'_>, i: &Inputs, p: &DbProxy, tags: TagChanges) -> Result<()> {
    let arn = p.db_proxy_arn().context("a DB proxy without an ARN")?;
    if !differences(p, i, &i.subnet_ids).in_place.is_empty() {
        cx.bar.set(format!("modifying DB proxy {}", i.name));
        let auth = auth_config(i);
        let no_secret = auth.is_empty();
        let mut call = cx
            .aws
            .rds
            .modify_db_proxy()
            .db_proxy_name(&i.name)
            .default_auth_scheme(DefaultAuthScheme::from(i.default_auth_scheme.as_str()))
            .set_auth(Some(auth))
            .role_arn(&i.role_arn)
            .set_security_groups(Some(i.security_group_ids.clone()))
            .require_tls(i.require_tls)
            .idle_client_timeout(i.idle_client_timeout as i32)
            .debug_logging(i.debug_logging)
            .customize();
        if no_secret {
            // End-to-end IAM without a secret: the proxy's secrets removed.
            call = call.mutate_request(crate::aws::rds::empty_list("Auth"));
        }
        call.send().await.map_err(|e| {
            anyhow::anyhow!("cannot modify DB proxy {}: {}", i.name, describe_error(&e))
        })?;
    }
    if !tags.set.is_empty() {
        let set = rds_tags(tags.set.iter().map(|(k, v)| (k, v)));
        cx.aws
            .rds
            .add_tags_to_resource()
            .resource_name(arn)
            .set_tags(Some(set))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot tag {arn}: {}", describe_error(&e)))?;
    }
    if !tags.remove.is_empty() {
        cx.aws
            .rds
            .remove_tags_from_resource()
            .resource_name(arn)
            .set_tag_keys(Some(tags.remove))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot untag {arn}: {}", describe_error(&e)))?;
    }
    Ok(())
}

/// The runbook's subnets as the proxy should have them: less those AWS
/// left out when the proxy was made with `requested` (it drops, without a
/// word, subnets in an Availability Zone RDS Proxy does not support). So
/// they are not a difference on every later check, while a subnet added
/// to the runbook since, or one the proxy has and the runbook not, is.
fn kept_subnets(p: &DbProxy, i: &Inputs, requested: &[String]) -> Vec<String> {
    let has = p.vpc_subnet_ids();
    i.subnet_ids
        .iter()
        .filter(|s| has.contains(s) || !requested.contains(s))
        .cloned()
        .collect()
}

/// The subnets the proxy was made with, as the state recorded them (none
/// known: every runbook subnet must be the proxy's).
fn requested_subnets(cx: &Ctx<'_>) -> Vec<String> {
    cx.recorded
        .and_then(|r| r.inputs.as_ref()?.get("subnet_ids")?.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

/// Says once, when the proxy is made, which subnets AWS left out and in
/// which Availability Zone, and what to do.
async fn report_left_out(cx: &Ctx<'_>, p: &DbProxy, i: &Inputs) {
    let has = p.vpc_subnet_ids();
    let left: Vec<String> = i
        .subnet_ids
        .iter()
        .filter(|s| !has.contains(s))
        .cloned()
        .collect();
    if left.is_empty() {
        return;
    }
    let azs = cx
        .aws
        .ec2
        .describe_subnets()
        .set_subnet_ids(Some(left.clone()))
        .send()
        .await
        .map(|o| {
            o.subnets()
                .iter()
                .filter_map(|s| {
                    Some((
                        s.subnet_id()?.to_string(),
                        s.availability_zone()?.to_string(),
                    ))
                })
                .collect::<std::collections::HashMap<_, _>>()
        })
        .unwrap_or_default();
    let named: Vec<String> = left
        .iter()
        .map(|s| match azs.get(s) {
            Some(az) => format!("{s} ({az})"),
            None => s.clone(),
        })
        .collect();
    cx.bar.note(format!(
        "AWS left out {} from the proxy: RDS Proxy does not support that Availability Zone; \
         the proxy uses {} subnet(s). Later plans do not show this as a change; remove it from \
         proxy.subnet_ids to match (nothing changes then), and keep two or more supported \
         Availability Zones",
        named.join(", "),
        has.len()
    ));
}

fn outputs(p: &DbProxy) -> Result<Outputs> {
    let arn = p.db_proxy_arn().context("a DB proxy without an ARN")?;
    let id = crate::arn::proxy_id(arn)
        .with_context(|| format!("cannot find the prx- id in the proxy ARN {arn}"))?;
    Ok(Outputs::from([
        ("arn".to_string(), arn.to_string()),
        ("id".to_string(), id.to_string()),
        (
            "endpoint".to_string(),
            p.endpoint().unwrap_or_default().to_string(),
        ),
        (
            "name".to_string(),
            p.db_proxy_name().unwrap_or_default().to_string(),
        ),
    ]))
}

/// The proxy by its name, read once in this pass of the step. One this
/// state has no record of is looked up in the place's listing of the last
/// few seconds (preflight's, for a run), which a fleet's runbooks share.
async fn find_once(cx: &Ctx<'_>, name: &str) -> Result<Option<DbProxy>> {
    let read = async {
        match cx.recorded {
            None => Ok(rounds::proxies_now(cx.aws).await?.get(name).cloned()),
            Some(_) => find(cx.aws, name).await,
        }
    };
    cx.read_once(format!("proxy {name}"), read).await
}

impl Proxy {
    /// Creates the proxy; false when one of that name appeared meanwhile
    /// (not known to be ours yet).
    async fn create(&self, cx: &Ctx<'_>, i: &Inputs) -> Result<bool> {
        cx.bar.set(format!("creating DB proxy {}", i.name));
        let tags = rds_tags(&i.tags);
        let created = cx
            .aws
            .rds
            .create_db_proxy()
            .db_proxy_name(&i.name)
            .engine_family(EngineFamily::from(i.engine_family.as_str()))
            .default_auth_scheme(DefaultAuthScheme::from(i.default_auth_scheme.as_str()))
            .set_auth(Some(auth_config(i)).filter(|a| !a.is_empty()))
            .endpoint_network_type(EndpointNetworkType::from(i.endpoint_network_type.as_str()))
            .target_connection_network_type(TargetConnectionNetworkType::from(
                i.target_connection_network_type.as_str(),
            ))
            .role_arn(&i.role_arn)
            .set_vpc_subnet_ids(Some(i.subnet_ids.clone()))
            .set_vpc_security_group_ids(Some(i.security_group_ids.clone()))
            .require_tls(i.require_tls)
            .idle_client_timeout(i.idle_client_timeout as i32)
            .debug_logging(i.debug_logging)
            .set_tags(Some(tags))
            .send()
            .await;
        match created {
            Ok(_) => Ok(true),
            Err(e) if is_proxy_exists(error_code(&e)) => Ok(false),
            Err(e) => anyhow::bail!("cannot create DB proxy {}: {}", i.name, describe_error(&e)),
        }
    }

    /// Waits until the proxy is `available` (and, after a `modified`, as
    /// the runbook says in what ModifyDBProxy changes: the change may take
    /// a moment to show), failing on what only a new proxy would change.
    async fn wait_available(
        &self,
        cx: &Ctx<'_>,
        i: &Inputs,
        ours: bool,
        modified: bool,
        requested: &[String],
    ) -> Result<DbProxy> {
        let what = format!("DB proxy {}", i.name);
        let ours = AtomicBool::new(ours);
        let ours = &ours;
        let look = rounds::proxies(cx.aws);
        wait_in_rounds(
            cx.bar,
            &what,
            Duration::from_secs(i.wait_timeout_seconds),
            &look,
            || async {
                let Some(p) = look.proxy(&i.name)? else {
                    return Ok(Wait::Pending("not visible yet".into()));
                };
                if !ours.load(Ordering::Relaxed) {
                    if !owned(cx, &p).await? {
                        anyhow::bail!(cx.not_ours(&what));
                    }
                    ours.store(true, Ordering::Relaxed);
                }
                let diffs = differences(&p, i, requested);
                if !diffs.replace.is_empty() {
                    anyhow::bail!(
                        "{what} differs from the runbook in what only a new proxy changes: {}",
                        diffs.replace.join("; ")
                    );
                }
                Ok(match status_decision(&status_of(&p))? {
                    Wait::Ready(()) if modified && !diffs.in_place.is_empty() => {
                        Wait::Pending(format!("applying {}", diffs.in_place.join("; ")))
                    }
                    Wait::Ready(()) => Wait::Ready(p),
                    Wait::Pending(s) => Wait::Pending(s),
                })
            },
        )
        .await
    }
}

#[async_trait]
impl StepImpl for Proxy {
    type Inputs = Inputs;
    const NAME: &'static str = "proxy";
    const IDENTITY: &'static [&'static str] = &["name"];
    const BY_VALUE: Option<&'static str> = Some("proxy.name");
    const OUTPUTS: &'static [&'static str] = &["arn", "id", "endpoint", "name"];
    const ACTIONS: Actions = Actions {
        check: &[
            ("rds:DescribeDBProxies", On::Any),
            ("rds:ListTagsForResource", On::Proxy),
        ],
        apply: &[
            ("rds:DescribeDBProxies", On::Any),
            ("rds:ListTagsForResource", On::Proxy),
            ("rds:CreateDBProxy", On::Proxy),
            ("rds:ModifyDBProxy", On::Proxy),
            ("rds:AddTagsToResource", On::Proxy),
            ("rds:RemoveTagsFromResource", On::Proxy),
            // CreateDBProxy and ModifyDBProxy hand RDS the proxy's role;
            // not a call of its own, so no emulator records it.
            ("iam:PassRole", On::ProxyRoleToRds),
            // A subnet AWS left out of the proxy, named with its zone.
            ("ec2:DescribeSubnets", On::Any),
        ],
        rollback: &[
            ("rds:DescribeDBProxies", On::Any),
            ("rds:ListTagsForResource", On::Proxy),
            ("rds:DeleteDBProxy", On::Proxy),
        ],
    };
    const AFTER: &'static [(&'static str, &'static str)] = &[(
        "secret-access",
        "the proxy logs in with what it grants: a proxy moved to another secret or to IAM \
         before the grant would fail to log in meanwhile",
    )];
    // A new proxy logs in only once its target is registered, which waits
    // on secret-access itself.
    const AFTER_ONLY_TO_CHANGE: &'static [&'static str] = &["secret-access"];

    fn inputs(&self, rb: &Runbook, r: &mut Resolver) -> Inputs {
        let p = &rb.proxy;
        Inputs {
            name: r.text(&p.name),
            engine_family: rb.database.engine_family.as_str().to_string(),
            secret_arn: rb.database.secret_arn.as_ref().map(|s| r.text(s)),
            iam_auth: p.iam_auth.as_str().to_string(),
            auth: rb
                .auth
                .iter()
                .map(|a| AuthInput {
                    secret_arn: r.text(&a.secret_arn),
                    user: a.user.clone(),
                    iam_auth: a.iam_auth.to_string(),
                    client_password_auth_type: a.client_password_auth_type.map(String::from),
                    description: a.description.clone(),
                })
                .collect(),
            default_auth_scheme: p.default_auth_scheme.as_str().to_string(),
            endpoint_network_type: p.endpoint_network_type.to_string(),
            target_connection_network_type: p.target_connection_network_type.to_string(),
            role_arn: r.text(&p.role_arn),
            subnet_ids: r.list(&p.subnet_ids),
            security_group_ids: r.list(&p.security_group_ids),
            require_tls: p.require_tls,
            idle_client_timeout: p.idle_client_timeout,
            debug_logging: p.debug_logging,
            tags: rb.tags.clone(),
            wait_timeout_seconds: p.wait_timeout_seconds,
        }
    }

    fn describe(&self, i: &Inputs) -> String {
        let auth = match (i.default_auth_scheme.as_str(), i.auth.len()) {
            ("IAM_AUTH", 0) => "end-to-end IAM".to_string(),
            ("IAM_AUTH", n) => format!("end-to-end IAM and {n} secrets"),
            (_, 0) => format!("IAM auth {}", i.iam_auth),
            (_, n) => format!("{n} secrets"),
        };
        let network = match (
            i.endpoint_network_type.as_str(),
            i.target_connection_network_type.as_str(),
        ) {
            ("IPV4", "IPV4") => String::new(),
            (clients, db) => format!(", clients over {clients}, the DB over {db}"),
        };
        format!(
            "DB proxy {} ({}, TLS {}, {auth}{network}) in {} subnets",
            i.name,
            i.engine_family,
            if i.require_tls {
                "required"
            } else {
                "optional"
            },
            i.subnet_ids.len()
        )
    }

    async fn existing(&self, cx: &Ctx, i: &Inputs) -> Result<Option<Outputs>> {
        find(cx.aws, &i.name)
            .await?
            .as_ref()
            .map(outputs)
            .transpose()
    }

    async fn check(&self, cx: &Ctx, i: &Inputs) -> Result<Found> {
        let Some(p) = find_once(cx, &i.name).await? else {
            return Ok(Found::Missing);
        };
        let (ours, tags) = tags_of(cx, &p).await?;
        if !ours {
            return Ok(Found::Foreign(cx.not_ours(&format!("DB proxy {}", i.name))));
        }
        let Differences { in_place, replace } = differences(&p, i, &requested_subnets(cx));
        if !replace.is_empty() {
            return Ok(Found::Replace(replace));
        }
        let status = status_of(&p);
        let wait = status_decision(&status)?;
        let mut changes = in_place;
        changes.extend(proxy_tags(cx, i, &tags).lines);
        match wait {
            _ if !changes.is_empty() => Ok(Found::Update(changes, outputs(&p)?)),
            Wait::Ready(()) => Ok(Found::Done(outputs(&p)?)),
            // Still creating or modifying, with its id and endpoint already
            // (what the steps after it read); not yet without an endpoint.
            Wait::Pending(s) => Ok(Found::Incomplete(
                format!("the proxy is {s}: wait for it"),
                Some(outputs(&p)?).filter(|o| o.values().all(|v| !v.is_empty())),
            )),
        }
    }

    async fn apply(&self, cx: &Ctx, i: &Inputs) -> Result<Outputs> {
        // The engine has just checked: the proxy is missing, or ours and
        // unfinished or differing in what ModifyDBProxy changes. Whether it
        // is known to be ours: made by this call. One that existed (a run
        // that died after the create) is ours once its tag says so.
        let p = match find_once(cx, &i.name).await? {
            None => {
                let created = self.create(cx, i).await?;
                // Made by this call with the runbook's subnets; else as the
                // state recorded it was made.
                let requested = match created {
                    true => i.subnet_ids.clone(),
                    false => requested_subnets(cx),
                };
                let p = self
                    .wait_available(cx, i, created, false, &requested)
                    .await?;
                if created {
                    // Made just now as the runbook says, tags and all.
                    report_left_out(cx, &p, i).await;
                    return outputs(&p);
                }
                p
            }
            // Available already (an update): no wait before the change.
            Some(p) if matches!(status_decision(&status_of(&p))?, Wait::Ready(())) => p,
            Some(_) => {
                let requested = requested_subnets(cx);
                self.wait_available(cx, i, false, false, &requested).await?
            }
        };
        let (ours, tags) = tags_of(cx, &p).await?;
        if !ours {
            anyhow::bail!(cx.not_ours(&format!("DB proxy {}", i.name)));
        }
        let tags = proxy_tags(cx, i, &tags);
        if differences(&p, i, &i.subnet_ids).in_place.is_empty() && tags.is_empty() {
            return outputs(&p);
        }
        modify(cx, i, &p, tags).await?;
        let requested = requested_subnets(cx);
        outputs(&self.wait_available(cx, i, true, true, &requested).await?)
    }

    async fn rollback(&self, cx: &Ctx, i: &Inputs, _: Option<&Value>) -> Result<Undone> {
        let name = &i.name;
        let Some(p) = find(cx.aws, name).await? else {
            return Ok(Undone::AlreadyGone(format!(
                "DB proxy {name} is already gone"
            )));
        };
        if !owned(cx, &p).await? {
            return Ok(Undone::LeftAlone(format!(
                "DB proxy {name} lacks our tag, so it is not ours to delete"
            )));
        }
        if status_of(&p) != "deleting" {
            cx.bar.set(format!("deleting DB proxy {name}"));
            match cx
                .aws
                .rds
                .delete_db_proxy()
                .db_proxy_name(name)
                .send()
                .await
            {
                Ok(_) => {}
                Err(e) if is_proxy_not_found(error_code(&e)) => {
                    return Ok(Undone::AlreadyGone(format!(
                        "DB proxy {name} is already gone"
                    )));
                }
                Err(e) => anyhow::bail!("cannot delete DB proxy {name}: {}", describe_error(&e)),
            }
        }
        // Deletion can take long; the proxy's network interfaces may linger
        // after it (the security group's rollback waits for those).
        let look = rounds::proxies(cx.aws);
        wait_in_rounds(
            cx.bar,
            &format!("DB proxy {name} to be deleted"),
            Duration::from_secs(i.wait_timeout_seconds),
            &look,
            || async {
                Ok(match look.proxy(name)? {
                    None => Wait::Ready(()),
                    Some(p) => Wait::Pending(status_of(&p)),
                })
            },
        )
        .await?;
        Ok(Undone::Done(format!("deleted DB proxy {name}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_rds::types::UserAuthConfigInfo;

    fn inputs() -> Inputs {
        Inputs {
            name: "p".into(),
            engine_family: "MYSQL".into(),
            secret_arn: Some("arn:s".into()),
            iam_auth: "REQUIRED".into(),
            auth: Vec::new(),
            default_auth_scheme: "NONE".into(),
            endpoint_network_type: "IPV4".into(),
            target_connection_network_type: "IPV4".into(),
            role_arn: "arn:r".into(),
            subnet_ids: vec!["a".into(), "b".into()],
            security_group_ids: vec!["sg".into()],
            require_tls: true,
            idle_client_timeout: 1800,
            debug_logging: false,
            tags: BTreeMap::new(),
            wait_timeout_seconds: 60,
        }
    }

    fn proxy() -> aws_sdk_rds::types::builders::DbProxyBuilder {
        DbProxy::builder()
            .db_proxy_name("p")
            .engine_family("MYSQL")
            .require_tls(true)
            .auth(
                UserAuthConfigInfo::builder()
                    .secret_arn("arn:s")
                    .iam_auth(IamAuthMode::Required)
                    .build(),
            )
            .role_arn("arn:r")
            .vpc_subnet_ids("b")
            .vpc_subnet_ids("a")
            .vpc_security_group_ids("sg")
            .idle_client_timeout(1800)
            .debug_logging(false)
    }

    #[test]
    fn same_proxy_has_no_differences_whatever_the_subnet_order() {
        assert_eq!(
            differences(&proxy().build(), &inputs(), &[]),
            Differences::default()
        );
    }

    #[test]
    fn modify_covers_settings_and_only_engine_and_subnets_need_a_new_proxy() {
        let p = proxy()
            .engine_family("POSTGRESQL")
            .require_tls(false)
            .role_arn("arn:other")
            .idle_client_timeout(300)
            .debug_logging(true)
            .vpc_security_group_ids("sg2")
            .build();
        let d = differences(&p, &inputs(), &[]);
        assert_eq!(d.replace, vec!["engine family: POSTGRESQL -> MYSQL"]);
        assert_eq!(
            d.in_place,
            vec![
                "require TLS: false -> true",
                "role: arn:other -> arn:r",
                r#"security groups: {"sg", "sg2"} -> {"sg"}"#,
                "idle client timeout: 300 -> 1800",
                "debug logging: true -> false",
            ]
        );
        let mut i = inputs();
        i.subnet_ids.push("c".into());
        let d = differences(&proxy().build(), &i, &["a".into(), "b".into()]);
        assert!(d.replace[0].starts_with("subnets"), "{d:?}");
        assert!(d.in_place.is_empty());
    }

    #[test]
    fn end_to_end_iam_and_the_secret_are_changed_in_place() {
        // The book's proxy moved to end-to-end IAM, its secret kept.
        let mut i = inputs();
        i.default_auth_scheme = "IAM_AUTH".into();
        let d = differences(&proxy().build(), &i, &[]);
        assert_eq!(d.in_place, vec!["default auth scheme: NONE -> IAM_AUTH"]);
        assert!(d.replace.is_empty());
        // Then its secret dropped: the clients' IAM setting, which lives in
        // the secret's entry, is no difference then.
        i.secret_arn = None;
        let iam = proxy().default_auth_scheme("IAM_AUTH").build();
        assert_eq!(
            differences(&iam, &i, &[]).in_place,
            vec!["secret: arn:s -> none"]
        );
        let bare = DbProxy::builder()
            .db_proxy_name("p")
            .engine_family("MYSQL")
            .default_auth_scheme("IAM_AUTH")
            .require_tls(true)
            .role_arn("arn:r")
            .vpc_subnet_ids("a")
            .vpc_subnet_ids("b")
            .vpc_security_group_ids("sg")
            .build();
        assert_eq!(differences(&bare, &i, &[]), Differences::default());
        assert!(auth_config(&i).is_empty());
    }

    #[test]
    fn auth_entries_are_compared_secret_by_secret() {
        let entry = |arn: &str, iam: &str, cpat: Option<&str>| AuthInput {
            secret_arn: arn.into(),
            user: None,
            iam_auth: iam.into(),
            client_password_auth_type: cpat.map(String::from),
            description: None,
        };
        let mut i = inputs();
        i.secret_arn = None;
        i.auth = vec![
            entry("arn:s", "DISABLED", None),
            entry("arn:t", "REQUIRED", Some("MYSQL_NATIVE_PASSWORD")),
        ];
        // The book's proxy (arn:s, REQUIRED): one secret more, the first's
        // clients' IAM changed; AWS's default password type is no change
        // where the runbook names none.
        let d = differences(&proxy().build(), &i, &[]);
        assert_eq!(
            d.in_place,
            vec![
                "secrets: arn:s -> arn:s, arn:t",
                "IAM auth of arn:s: REQUIRED -> DISABLED"
            ]
        );
        let two = proxy()
            .set_auth(Some(vec![
                UserAuthConfigInfo::builder()
                    .secret_arn("arn:t")
                    .iam_auth(IamAuthMode::Required)
                    .client_password_auth_type(ClientPasswordAuthType::MysqlCachingSha2Password)
                    .build(),
                UserAuthConfigInfo::builder()
                    .secret_arn("arn:s")
                    .iam_auth(IamAuthMode::Disabled)
                    .client_password_auth_type(ClientPasswordAuthType::MysqlNativePassword)
                    .build(),
            ]))
            .build();
        assert_eq!(
            differences(&two, &i, &[]).in_place,
            vec![
                "client password auth of arn:t: MYSQL_CACHING_SHA2_PASSWORD -> \
                 MYSQL_NATIVE_PASSWORD"
            ]
        );
        // A user the runbook names is compared (the proxy reports none here).
        i.auth[0].user = Some("app".into());
        assert!(
            differences(&two, &i, &[])
                .in_place
                .contains(&"user of arn:s: none -> app".to_string())
        );
        i.auth[0].user = None;
        let config = auth_config(&i);
        assert_eq!(config.len(), 2);
        assert_eq!(
            config[1].client_password_auth_type(),
            Some(&ClientPasswordAuthType::MysqlNativePassword)
        );
        // Recorded with the entries, without the book's secret.
        let v = serde_json::to_value(&i).unwrap();
        assert_eq!(v["auth"][1]["secret_arn"], "arn:t");
        assert!(
            v["auth"][0].get("client_password_auth_type").is_none(),
            "{v}"
        );
    }

    #[test]
    fn inputs_recorded_before_end_to_end_iam_read_the_same() {
        // What a state written by an earlier version holds: no scheme; the
        // book's inputs serialize the same, so their checksum is unchanged.
        let mut v = serde_json::to_value(inputs()).unwrap();
        assert!(v.get("default_auth_scheme").is_none(), "{v}");
        assert!(v.get("auth").is_none(), "{v}");
        assert_eq!(v["secret_arn"], "arn:s");
        v.as_object_mut().unwrap().remove("default_auth_scheme");
        let back: Inputs = serde_json::from_value(v).unwrap();
        assert_eq!(back.default_auth_scheme, "NONE");
        let mut iam = inputs();
        iam.default_auth_scheme = "IAM_AUTH".into();
        iam.secret_arn = None;
        let v = serde_json::to_value(&iam).unwrap();
        assert_eq!(v["default_auth_scheme"], "IAM_AUTH");
        assert!(v.get("secret_arn").is_none(), "{v}");
    }

    #[test]
    fn network_types_need_a_new_proxy() {
        let mut i = inputs();
        i.endpoint_network_type = "DUAL".into();
        i.target_connection_network_type = "IPV6".into();
        let d = differences(&proxy().build(), &i, &[]);
        assert_eq!(
            d.replace,
            vec![
                "endpoint network type: IPV4 -> DUAL",
                "target connection network type: IPV4 -> IPV6"
            ]
        );
        assert!(d.in_place.is_empty());
        let dual = proxy()
            .endpoint_network_type(EndpointNetworkType::Dual)
            .target_connection_network_type(TargetConnectionNetworkType::Ipv6)
            .build();
        assert_eq!(differences(&dual, &i, &[]), Differences::default());
        let v = serde_json::to_value(inputs()).unwrap();
        assert!(v.get("endpoint_network_type").is_none(), "{v}");
    }

    #[test]
    fn a_subnet_aws_left_out_at_creation_is_no_difference_later() {
        let mut i = inputs();
        i.subnet_ids.push("e".into());
        let made_with: Vec<String> = vec!["a".into(), "b".into(), "e".into()];
        // The proxy has a and b: AWS dropped e, which it was made with.
        assert_eq!(
            differences(&proxy().build(), &i, &made_with),
            Differences::default()
        );
        // Unknown what it was made with: e is missing, so a new proxy.
        let d = differences(&proxy().build(), &i, &[]);
        assert!(d.replace[0].starts_with("subnets"), "{d:?}");
        // A subnet the proxy has and the runbook no longer lists.
        let d = differences(&proxy().vpc_subnet_ids("z").build(), &i, &made_with);
        assert!(d.replace[0].starts_with("subnets"), "{d:?}");
    }

    #[test]
    fn terminal_statuses_fail_early_with_what_to_check() {
        assert!(matches!(status_decision("available"), Ok(Wait::Ready(()))));
        assert!(matches!(status_decision("creating"), Ok(Wait::Pending(s)) if s == "creating"));
        assert!(matches!(status_decision("modifying"), Ok(Wait::Pending(_))));
        let e = status_decision("incompatible-network")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("two Availability Zones") && e.contains("free IP"),
            "{e}"
        );
        let e = status_decision("insufficient-resource-limits")
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits"), "{e}");
    }

    #[test]
    fn outputs_carry_the_prx_id() {
        let p = proxy()
            .db_proxy_arn("arn:aws:rds:us-east-1:123456789012:db-proxy:prx-0123")
            .endpoint("p.proxy-x.us-east-1.rds.amazonaws.com")
            .build();
        let o = outputs(&p).unwrap();
        assert_eq!(o["id"], "prx-0123");
        assert_eq!(o["endpoint"], "p.proxy-x.us-east-1.rds.amazonaws.com");
        let bad = proxy().db_proxy_arn("arn:aws:rds:x:1:db-proxy").build();
        assert!(outputs(&bad).is_err());
    }

    mod mocked {
        use super::*;
        use crate::steps::mock::{Mocked, RUNBOOK, block_on};
        use aws_sdk_rds::Client;
        use aws_sdk_rds::error::ErrorMetadata;
        use aws_sdk_rds::operation::create_db_proxy::{CreateDBProxyError, CreateDbProxyOutput};
        use aws_sdk_rds::operation::delete_db_proxy::DeleteDbProxyOutput;
        use aws_sdk_rds::operation::describe_db_proxies::{
            DescribeDBProxiesError, DescribeDbProxiesOutput,
        };
        use aws_sdk_rds::operation::list_tags_for_resource::ListTagsForResourceOutput;
        use aws_smithy_mocks::mock;

        const ARN: &str = "arn:aws:rds:us-east-1:123456789012:db-proxy:prx-0abc";

        fn with_status(status: DbProxyStatus) -> impl Fn() -> DescribeDbProxiesOutput {
            move || {
                DescribeDbProxiesOutput::builder()
                    .db_proxies(
                        proxy()
                            .db_proxy_arn(ARN)
                            .endpoint("p.proxy-x.rds.amazonaws.com")
                            .status(status.clone())
                            .build(),
                    )
                    .build()
            }
        }

        fn ours() -> aws_smithy_mocks::Rule {
            mock!(Client::list_tags_for_resource).then_output(|| {
                ListTagsForResourceOutput::builder()
                    .tag_list(
                        aws_sdk_rds::types::Tag::builder()
                            .key(crate::runbook::OWNER_TAG)
                            .value(RUNBOOK)
                            .build(),
                    )
                    .build()
            })
        }

        fn not_found() -> DescribeDBProxiesError {
            DescribeDBProxiesError::generic(
                ErrorMetadata::builder()
                    .code("DBProxyNotFoundFault")
                    .build(),
            )
        }

        fn created() -> aws_smithy_mocks::Rule {
            mock!(Client::create_db_proxy).then_output(|| CreateDbProxyOutput::builder().build())
        }

        #[test]
        fn a_proxy_that_stays_creating_times_out_with_its_status() {
            // A run that died after the create: the proxy is there, so no
            // create is sent, and the tags are read once to know it ours.
            let create = mock!(Client::create_db_proxy).then_error(|| {
                CreateDBProxyError::generic(
                    ErrorMetadata::builder()
                        .code("DBProxyAlreadyExistsFault")
                        .build(),
                )
            });
            let describe = mock!(Client::describe_db_proxies)
                .then_output(with_status(DbProxyStatus::Creating));
            let tags = ours();
            let m = Mocked::new(&[&create, &describe, &tags], &[], &[]);
            let mut i = inputs();
            i.wait_timeout_seconds = 30;
            let e = block_on(StepImpl::apply(&Proxy, &m.cx(), &i))
                .unwrap_err()
                .to_string();
            assert!(e.contains("DB proxy p is still creating"), "{e}");
            assert!(e.contains("the limit is 30s"), "{e}");
            assert!(
                describe.num_calls() > 3,
                "polled {} times",
                describe.num_calls()
            );
            assert_eq!(tags.num_calls(), 1, "ownership is read once");
            assert_eq!(create.num_calls(), 0, "it exists: no create");
        }

        #[test]
        fn a_creating_proxy_is_waited_on_until_available() {
            let describe = mock!(Client::describe_db_proxies)
                .sequence()
                .error(not_found)
                .output(with_status(DbProxyStatus::Creating))
                .times(3)
                .output(with_status(DbProxyStatus::Available))
                .repeatedly()
                .build();
            let (create, tags) = (created(), ours());
            let m = Mocked::new(&[&create, &describe, &tags], &[], &[]);
            let out = block_on(StepImpl::apply(&Proxy, &m.cx(), &inputs())).unwrap();
            assert_eq!(out["id"], "prx-0abc");
            assert_eq!(out["endpoint"], "p.proxy-x.rds.amazonaws.com");
            assert_eq!(create.num_calls(), 1);
            assert_eq!(
                describe.num_calls(),
                5,
                "one look first, then one per status"
            );
            assert_eq!(tags.num_calls(), 0, "made by this call: ours");
        }

        #[test]
        fn a_terminal_status_fails_early() {
            let describe = mock!(Client::describe_db_proxies)
                .sequence()
                .error(not_found)
                .output(with_status(DbProxyStatus::IncompatibleNetwork))
                .repeatedly()
                .build();
            let create = created();
            let m = Mocked::new(&[&create, &describe], &[], &[]);
            let e = block_on(StepImpl::apply(&Proxy, &m.cx(), &inputs())).unwrap_err();
            assert!(e.to_string().contains("incompatible-network"), "{e}");
            assert_eq!(describe.num_calls(), 2, "no waiting on a terminal status");
        }

        #[test]
        fn a_missing_proxy_is_to_create_and_already_rolled_back() {
            let describe = mock!(Client::describe_db_proxies).then_error(not_found);
            let m = Mocked::new(&[&describe], &[], &[]);
            let found = block_on(StepImpl::check(&Proxy, &m.cx(), &inputs())).unwrap();
            assert_eq!(found, Found::Missing);
            let undone = block_on(StepImpl::rollback(&Proxy, &m.cx(), &inputs(), None)).unwrap();
            assert!(matches!(undone, Undone::AlreadyGone(_)), "{undone:?}");
        }

        #[test]
        fn rollback_deletes_and_waits_until_the_proxy_is_proxy_part_gone() {
            let describe = mock!(Client::describe_db_proxies)
                .sequence()
                .output(with_status(DbProxyStatus::Available))
                .output(with_status(DbProxyStatus::Deleting))
                .times(2)
                .error(not_found)
                .build();
            let delete = mock!(Client::delete_db_proxy)
                .then_output(|| DeleteDbProxyOutput::builder().build());
            let tags = ours();
            let m = Mocked::new(&[&describe, &delete, &tags], &[], &[]);
            let undone = block_on(StepImpl::rollback(&Proxy, &m.cx(), &inputs(), None)).unwrap();
            assert_eq!(undone, Undone::Done("deleted DB proxy p".into()));
            assert_eq!(delete.num_calls(), 1);
            assert_eq!(describe.num_calls(), 4);
        }

        #[test]
        fn a_proxy_without_our_tag_is_foreign_and_left_alone() {
            let describe = mock!(Client::describe_db_proxies)
                .then_output(with_status(DbProxyStatus::Available));
            let tags = mock!(Client::list_tags_for_resource)
                .then_output(|| ListTagsForResourceOutput::builder().build());
            let m = Mocked::new(&[&describe, &tags], &[], &[]);
            let found = block_on(StepImpl::check(&Proxy, &m.cx(), &inputs())).unwrap();
            assert!(matches!(found, Found::Foreign(_)), "{found:?}");
            let undone = block_on(StepImpl::rollback(&Proxy, &m.cx(), &inputs(), None)).unwrap();
            assert!(matches!(undone, Undone::LeftAlone(_)), "{undone:?}");
        }
    }
}
