//! One SDK configuration from --profile / --region / --endpoint-url (and
//! everything aws-config reads: AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL,
//! SSO, ...), and the clients built from it.

pub mod errors;
pub mod lambda;
pub mod listings;
pub mod rds;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_sdk_ec2::error::ProvideErrorMetadata;

#[derive(Clone)]
pub struct AwsOptions {
    pub profile: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
}

/// What a runbook says of where its calls go: used when the command line
/// says nothing (the region also when neither the environment nor the
/// profile does).
#[derive(Clone, Copy, Default)]
pub struct RunbookAws<'a> {
    pub region: Option<&'a str>,
    pub profile: Option<&'a str>,
}

/// Where calls go: through which profile (the account it stands for), to
/// which endpoint, in which region. Runbooks in one place share rounds of
/// looks and the client-side rate limits ([`Aws::connect`], `rounds`),
/// count against one quota of proxies, and collide on names
/// (`commands::fleet`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Place {
    pub profile: String,
    pub endpoint: Option<String>,
    pub region: String,
}

impl Place {
    /// As far as the command line, the runbook and the environment (`env`)
    /// tell without a call: the region is `?` when only a profile's file
    /// would name it.
    pub fn expected(
        opts: &AwsOptions,
        rb: RunbookAws<'_>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Place {
        Place {
            profile: profile(opts, rb)
                .map(String::from)
                .or_else(|| env("AWS_PROFILE"))
                .unwrap_or_else(|| "default".into()),
            endpoint: opts
                .endpoint_url
                .clone()
                .or_else(|| env("AWS_ENDPOINT_URL")),
            region: opts
                .region
                .clone()
                .or_else(|| env("AWS_REGION"))
                .or_else(|| env("AWS_DEFAULT_REGION"))
                .or_else(|| rb.region.map(String::from))
                .unwrap_or_else(|| "?".into()),
        }
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "profile {}, region {}", self.profile, self.region)?;
        if let Some(e) = &self.endpoint {
            write!(f, ", endpoint {e}")?;
        }
        Ok(())
    }
}

/// An environment variable, unset when empty.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The IAM actions the calls every command makes need (`permissions`):
/// the account's id.
pub const ACTIONS: crate::actions::Calls = &[("sts:GetCallerIdentity", crate::actions::On::Any)];

/// The IAM actions of the guard that never leaves a function on a proxy
/// being removed (rollback, and a replacement deleting the old proxy): every
/// function's variables, whoever owns the function, and the proxies'.
pub const GUARD: crate::actions::Calls = {
    use crate::actions::On;
    &[
        ("lambda:ListFunctions", On::Any),
        ("lambda:GetFunctionConfiguration", On::AnyFunction),
        ("rds:DescribeDBProxies", On::Any),
    ]
};

pub struct Aws {
    pub region: String,
    /// Where the clients' calls go (see [`Place`]), with the region they
    /// were made with.
    pub place: Place,
    account: tokio::sync::OnceCell<String>,
    pub iam: aws_sdk_iam::Client,
    pub ec2: aws_sdk_ec2::Client,
    pub rds: aws_sdk_rds::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub sts: aws_sdk_sts::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// The proxy's log (`/aws/rds/proxy/NAME`), read by the invoke check
    /// and `doctor`.
    pub logs: aws_sdk_cloudwatchlogs::Client,
}

/// The profile the calls use: --profile, else the runbook's.
fn profile<'a>(opts: &'a AwsOptions, rb: RunbookAws<'a>) -> Option<&'a str> {
    opts.profile.as_deref().or(rb.profile)
}

/// One HTTP client for the whole process: every SDK client, of every
/// runbook in a fleet, shares its TLS setup (the parsed root certificates)
/// and its pool of connections. Left to itself, each SDK client makes its
/// own: eight per runbook, 400 root stores for a fleet of 50. The same
/// client the SDK would make (rustls with aws-lc, the proxy settings from
/// the environment).
fn http_client() -> aws_sdk_sts::config::SharedHttpClient {
    use aws_smithy_http_client::{Builder, ConnectorBuilder, proxy::ProxyConfig, tls};
    static CLIENT: std::sync::OnceLock<aws_sdk_sts::config::SharedHttpClient> =
        std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            Builder::new().build_with_connector_fn(|settings, components| {
                let mut conn = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(
                    tls::rustls_provider::CryptoMode::AwsLc,
                ));
                conn.set_connector_settings(settings.cloned());
                if let Some(c) = components {
                    conn.set_sleep_impl(c.sleep_impl());
                }
                conn.set_proxy_config(Some(ProxyConfig::from_env()));
                conn.build()
            })
        })
        .clone()
}

/// The SDK configuration every client is built from.
pub async fn sdk_config(
    opts: &AwsOptions,
    rb: RunbookAws<'_>,
) -> anyhow::Result<aws_config::SdkConfig> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        // Throttling and transient errors are retried by the SDK with
        // exponential backoff and jitter; once throttled, a client-side
        // rate limit (per service and place, see `Aws::connect`) slows the
        // calls down and recovers as the answers come back.
        .retry_config(
            RetryConfig::adaptive()
                .with_max_attempts(6)
                .with_max_backoff(Duration::from_secs(20)),
        )
        // An endpoint that accepts and never answers must fail, not hang.
        // In all, room for the six attempts of a call throttled each time
        // (backoff up to 20 s, and the adaptive rate limit's own pauses):
        // the user then sees the throttling, not a timeout (90 s was
        // reached on a loaded machine).
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_attempt_timeout(Duration::from_secs(30))
                .operation_timeout(Duration::from_secs(180))
                .build(),
        );
    loader = loader.http_client(http_client());
    if let Some(p) = profile(opts, rb) {
        let _ = PROFILE.set(p.to_string());
        // An explicit --profile wins over keys in the environment, as
        // with the AWS CLI (the default chain would try the keys first).
        loader = loader.profile_name(p).credentials_provider(
            aws_config::profile::ProfileFileCredentialsProvider::builder()
                .profile_name(p)
                .build(),
        );
    }
    if let Some(r) = &opts.region {
        loader = loader.region(Region::new(r.clone()));
    }
    if let Some(e) = &opts.endpoint_url {
        loader = loader.endpoint_url(e);
    }
    let mut config = loader.load().await;
    // The runbook's region is the last resort: --region, AWS_REGION and
    // the profile come first.
    if config.region().is_none()
        && let Some(r) = rb.region
    {
        config = config
            .into_builder()
            .region(Region::new(r.to_string()))
            .build();
    }
    if config.region().is_none() {
        anyhow::bail!(
            "no AWS region: pass --region, set AWS_REGION, set `region` in the runbook, \
                 or give the profile a region"
        );
    }
    Ok(config)
}

impl Aws {
    pub async fn connect(opts: &AwsOptions, rb: RunbookAws<'_>) -> anyhow::Result<Aws> {
        let config = sdk_config(opts, rb).await?;
        let region = config.region().map(|r| r.to_string()).unwrap_or_default();
        let place = Place {
            region: region.clone(),
            ..Place::expected(opts, rb, &env_var)
        };
        // Each service's retries and client-side rate limit in this place
        // are shared by every client of the process that calls it there
        // (a fleet's runbooks), and adapt to throttling together.
        macro_rules! client {
            ($krate:ident) => {
                $krate::Client::from_conf(
                    $krate::config::Builder::from(&config)
                        .retry_partition($krate::config::retry::RetryPartition::new(format!(
                            "{}:{place}",
                            stringify!($krate)
                        )))
                        .build(),
                )
            };
        }
        Ok(Aws {
            region,
            account: tokio::sync::OnceCell::new(),
            // IAM is global: the SDK picks its endpoint itself.
            iam: client!(aws_sdk_iam),
            ec2: client!(aws_sdk_ec2),
            rds: client!(aws_sdk_rds),
            lambda: client!(aws_sdk_lambda),
            secrets: client!(aws_sdk_secretsmanager),
            sts: client!(aws_sdk_sts),
            cloudwatch: client!(aws_sdk_cloudwatch),
            logs: client!(aws_sdk_cloudwatchlogs),
            place,
        })
    }
}

/// An S3 client for the team's state, from the same options (profile, SSO,
/// endpoint) as every other call; in `region` when the state's bucket is
/// elsewhere. Path-style addressing on a custom endpoint (an emulator has no
/// per-bucket host names).
pub async fn s3_client(
    opts: &AwsOptions,
    rb: RunbookAws<'_>,
    region: Option<&str>,
) -> anyhow::Result<aws_sdk_s3::Client> {
    let config = sdk_config(opts, rb).await?;
    let mut s3 = aws_sdk_s3::config::Builder::from(&config);
    if let Some(r) = region {
        s3 = s3.region(Region::new(r.to_string()));
    }
    if config.endpoint_url().is_some() {
        s3 = s3.force_path_style(true);
    }
    Ok(aws_sdk_s3::Client::from_conf(s3.build()))
}

impl Aws {
    /// Clients made elsewhere (mocked ones, in unit tests).
    #[cfg(test)]
    pub fn from_clients(
        iam: aws_sdk_iam::Client,
        ec2: aws_sdk_ec2::Client,
        rds: aws_sdk_rds::Client,
        lambda: aws_sdk_lambda::Client,
    ) -> Aws {
        let account = tokio::sync::OnceCell::new();
        account.set("123456789012".to_string()).expect("new cell");
        let secrets = aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::Config::builder()
                .behavior_version_latest()
                .build(),
        );
        let sts = aws_sdk_sts::Client::from_conf(
            aws_sdk_sts::Config::builder()
                .behavior_version_latest()
                .build(),
        );
        let cloudwatch = aws_sdk_cloudwatch::Client::from_conf(
            aws_sdk_cloudwatch::Config::builder()
                .behavior_version_latest()
                .build(),
        );
        let logs = aws_sdk_cloudwatchlogs::Client::from_conf(
            aws_sdk_cloudwatchlogs::Config::builder()
                .behavior_version_latest()
                .build(),
        );
        // Each set of mocked clients is a place of its own.
        static MOCKED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = MOCKED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Aws {
            region: "us-east-1".into(),
            place: Place {
                profile: format!("mocked-{n}"),
                endpoint: None,
                region: "us-east-1".into(),
            },
            account,
            iam,
            ec2,
            rds,
            lambda,
            secrets,
            sts,
            cloudwatch,
            logs,
        }
    }

    /// The account id (STS GetCallerIdentity, asked once; or the one
    /// [`Aws::assume_account`] was given).
    pub async fn account_id(&self) -> anyhow::Result<&str> {
        let id = self
            .account
            .get_or_try_init(|| self.caller_account())
            .await?;
        Ok(id)
    }

    /// Who the credentials belong to, asked now: by one call for every
    /// runbook of the place (a fleet's) that asks within a few seconds.
    pub async fn caller_account(&self) -> anyhow::Result<String> {
        static CALLERS: std::sync::OnceLock<crate::answers::Answers> = std::sync::OnceLock::new();
        CALLERS
            .get_or_init(|| crate::answers::Answers::fresh_for(Duration::from_secs(5)))
            .read(format!("the caller in {}", self.place), self.ask_caller())
            .await
    }

    async fn ask_caller(&self) -> anyhow::Result<String> {
        let me = self.sts.get_caller_identity().send().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot tell which AWS account this is: {}",
                describe_error(&e)
            )
        })?;
        me.account
            .ok_or_else(|| anyhow::anyhow!("GetCallerIdentity answered without an account"))
    }

    /// Lets steps build ARNs with the account the state recorded, without
    /// waiting for STS; the engine still asks [`Aws::caller_account`] at
    /// the same time and refuses to act if the two differ.
    pub fn assume_account(&self, id: &str) {
        let _ = self.account.set(id.to_string());
    }
}

/// The AWS error code of a failed call (`NoSuchEntity`,
/// `InvalidGroup.NotFound`, ...), if the service sent one.
pub fn error_code<E: ProvideErrorMetadata, R>(
    err: &aws_sdk_ec2::error::SdkError<E, R>,
) -> Option<&str> {
    err.as_service_error().and_then(|e| e.code())
}

/// A readable one-line message for an SDK error: code and message when the
/// service answered, the underlying cause otherwise.
pub fn describe_error<E>(
    err: &aws_sdk_ec2::error::SdkError<E, aws_sdk_ec2::config::http::HttpResponse>,
) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_ec2::error::SdkError;
    match err {
        SdkError::ServiceError(s) => {
            let e = s.err();
            match (e.code(), e.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_string(),
                _ => unnamed_answer(s.raw()),
            }
        }
        other => {
            if let Some(why) = std::error::Error::source(other).and_then(credentials_problem) {
                return why;
            }
            let mut msg = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                msg = format!("{msg}: {s}");
                source = s.source();
            }
            let hint = if matches!(
                other,
                SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)
            ) {
                "; check the endpoint (--endpoint-url / AWS_ENDPOINT_URL) and the network"
            } else {
                ""
            };
            format!("{msg}{hint}")
        }
    }
}

/// An error answer the SDK could not name (no code in it): its HTTP
/// status, what that likely means, and the start of its body (an HTML
/// page by its title), so that it is still named.
fn unnamed_answer(raw: &aws_sdk_ec2::config::http::HttpResponse) -> String {
    let status = raw.status().as_u16();
    let body = raw
        .body()
        .bytes()
        .map(|b| {
            String::from_utf8_lossy(b)
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let likely = match status {
        403 => "access denied: the caller lacks the permission for this call",
        404 | 405 | 501 => "the endpoint does not offer this call (an emulator without it?)",
        200..=299 => {
            "the endpoint answered in a form the AWS SDK cannot read (an emulator's gap, or \
             a proxy in the way)"
        }
        _ => "no AWS error code in the answer",
    };
    let lower = body.to_ascii_lowercase();
    let shown = if lower.starts_with("<!doctype html") || lower.starts_with("<html") {
        let title = lower
            .find("<title>")
            .and_then(|a| Some((a + 7, lower[a..].find("</title>")? + a)))
            .map(|(a, b)| body[a..b].to_string())
            .unwrap_or_default();
        format!("; an HTML page {title:?}")
    } else if body.is_empty() {
        String::new()
    } else {
        format!(
            "; the answer began: {}",
            body.chars().take(200).collect::<String>()
        )
    };
    format!("HTTP {status} without an AWS error code: {likely}{shown}")
}

/// Global: --profile, set once by `main`, for error messages that name it
/// (an SDK error knows no profile; passing it to every call site that
/// words an error would thread it through every step). A fleet's runbook
/// with a profile of its own says so through [`TASK_PROFILE`].
static PROFILE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

tokio::task_local! {
    /// A fleet's runbook's profile, for the messages of its own calls (the
    /// fleet's runbooks may each use another).
    static TASK_PROFILE: Option<String>;
}

/// Runs `f` (one runbook's command in a fleet) with `profile` as the one
/// its credential errors name.
pub async fn with_profile<F: std::future::Future>(profile: Option<String>, f: F) -> F::Output {
    TASK_PROFILE.scope(profile, f).await
}

/// The profile the calls of this runbook use, if one was named.
fn profile_in_use() -> Option<String> {
    TASK_PROFILE
        .try_with(Clone::clone)
        .unwrap_or_else(|_| PROFILE.get().cloned())
}

/// Where aws-config looks for credentials, and how to give it some.
const CREDENTIALS_FIX: &str = "aws-config looks at --profile / AWS_PROFILE, \
     AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, ~/.aws/config and ~/.aws/credentials \
     (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE), web identity, and the ECS or EC2 \
     instance role; for an SSO profile run `aws sso login --profile NAME` first";

/// A readable message when a call failed because aws-config found no
/// usable credentials (the SDK reports it as a dispatch failure).
fn credentials_problem(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    use aws_credential_types::provider::error::CredentialsError;
    let mut source = Some(err);
    while let Some(e) = source {
        if let Some(c) = e.downcast_ref::<CredentialsError>() {
            let mut detail = Vec::new();
            let mut inner = std::error::Error::source(c);
            while let Some(s) = inner {
                detail.push(s.to_string());
                inner = s.source();
            }
            let what = match c {
                CredentialsError::CredentialsNotLoaded(_) if profile_in_use().is_some() => {
                    &format!(
                        "profile `{}` gave no AWS credentials (is it defined?)",
                        profile_in_use().expect("named")
                    )
                }
                CredentialsError::CredentialsNotLoaded(_) => "no AWS credentials were found",
                CredentialsError::ProviderTimedOut(_) => "loading the AWS credentials timed out",
                _ => "the AWS credentials could not be loaded",
            };
            let detail = if detail.is_empty() {
                String::new()
            } else {
                format!(" ({})", detail.join(": "))
            };
            return Some(format!("{what}{detail}; {CREDENTIALS_FIX}"));
        }
        source = e.source();
    }
    None
}

/// IAM returns policy documents URL-encoded; some emulators return them as
/// they were sent.
pub fn decode_policy(doc: &str) -> Option<serde_json::Value> {
    serde_json::from_str(doc)
        .ok()
        .or_else(|| serde_json::from_str(&percent_decode(doc)).ok())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
