//! The runbook's types: the typed runbook and its sections, the text values
//! that may hold `${steps.*}` references, positions and diagnostics.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// The tag every resource we create carries; its value is the runbook name.
pub const OWNER_TAG: &str = "rds-proxy-runbook:runbook";

pub(super) const DEFAULT_TRUST_POLICY: &str =
    include_str!("../../runbooks/policies/rds-proxy-trust-policy.json");
pub(super) const DEFAULT_CONNECT_POLICY: &str =
    include_str!("../../runbooks/policies/rds-connect-policy-template.json");

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    pub fn start() -> Pos {
        Pos { line: 1, col: 1 }
    }

    pub(super) fn at(src: &str, offset: usize) -> Pos {
        let offset = offset.min(src.len());
        let before = &src[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = src[line_start..offset].chars().count() + 1;
        Pos { line, col }
    }
}

/// One problem in a runbook, at a position, about a key, with the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub pos: Pos,
    pub key: String,
    pub message: String,
}

/// Everything wrong with a runbook file, reported at once.
#[derive(Debug)]
pub struct RunbookError {
    pub path: PathBuf,
    pub diagnostics: Vec<Diagnostic>,
    /// The file's text, when it could be read: [`super::render`] shows
    /// each problem's line with the value marked.
    pub source: Option<String>,
}

impl RunbookError {
    /// The first line: how many problems, and that nothing changed.
    pub fn headline(&self) -> String {
        let n = self.diagnostics.len();
        format!(
            "{} has {n} problem{}; nothing was changed:",
            self.path.display(),
            if n == 1 { "" } else { "s" }
        )
    }

    /// One problem's line: `file:line:col: `key`: message`.
    pub fn line(&self, d: &Diagnostic) -> String {
        let key = if d.key.is_empty() {
            String::new()
        } else {
            format!("`{}`: ", d.key)
        };
        format!(
            "  {}:{}:{}: {key}{}",
            self.path.display(),
            d.pos.line,
            d.pos.col,
            d.message
        )
    }
}

impl fmt::Display for RunbookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.headline())?;
        for d in &self.diagnostics {
            writeln!(f, "{}", self.line(d))?;
        }
        Ok(())
    }
}

impl std::error::Error for RunbookError {}

/// A string value from the runbook: literal text with `${env.*}` already
/// filled, and `${steps.*}` references left to fill when a step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub(super) parts: Vec<Part>,
    pub pos: Pos,
    pub key: String,
    /// Holds a placeholder for an unset `${env.*}` (lenient loading only):
    /// its value is unknown, so value checks skip it.
    pub unset_env: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Part {
    Lit(String),
    Ref { step: String, output: String },
}

impl Text {
    /// A text built in code (defaults), positioned at the key it stands for.
    pub(super) fn fixed(value: &str, key: &str, pos: Pos) -> Text {
        Text {
            parts: vec![Part::Lit(value.to_string())],
            pos,
            key: key.to_string(),
            unset_env: false,
        }
    }

    /// The value when it holds no step reference.
    pub fn literal(&self) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Ref { .. } => return None,
            }
        }
        Some(out)
    }

    pub fn refs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.parts.iter().filter_map(|p| match p {
            Part::Ref { step, output } => Some((step.as_str(), output.as_str())),
            Part::Lit(_) => None,
        })
    }

    /// Fills step references through `lookup`; a missing output is `Err`
    /// with the `step.output` that was missing.
    pub fn fill(
        &self,
        lookup: &dyn Fn(&str, &str) -> Option<String>,
    ) -> Result<String, (String, String)> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Ref { step, output } => match lookup(step, output) {
                    Some(v) => out.push_str(&v),
                    None => return Err((step.clone(), output.clone())),
                },
            }
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EngineFamily {
    #[serde(rename = "MYSQL")]
    Mysql,
    #[serde(rename = "POSTGRESQL")]
    Postgresql,
    #[serde(rename = "SQLSERVER")]
    Sqlserver,
}

impl EngineFamily {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineFamily::Mysql => "MYSQL",
            EngineFamily::Postgresql => "POSTGRESQL",
            EngineFamily::Sqlserver => "SQLSERVER",
        }
    }

    pub fn default_port(self) -> i64 {
        match self {
            EngineFamily::Mysql => 3306,
            EngineFamily::Postgresql => 5432,
            EngineFamily::Sqlserver => 1433,
        }
    }
}

/// Whether clients must authenticate to the proxy with IAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IamAuth {
    Required,
    Disabled,
}

impl IamAuth {
    /// As the RDS API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            IamAuth::Required => "REQUIRED",
            IamAuth::Disabled => "DISABLED",
        }
    }
}

/// The tests compare with the spelling.
#[cfg(test)]
impl PartialEq<&str> for IamAuth {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// How the proxy itself logs in to the DB: with the secrets of `Auth`
/// (`NONE`, the book's), or with IAM (`IAM_AUTH`, end-to-end IAM: no secret
/// needed, the proxy's role gets rds-db:connect on the DB's resource id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    None,
    IamAuth,
}

impl AuthScheme {
    /// As the RDS API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthScheme::None => "NONE",
            AuthScheme::IamAuth => "IAM_AUTH",
        }
    }
}

/// How the proxy's role may read the DB secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretAccess {
    /// GetSecretValue on this secret (and kms:Decrypt through Secrets
    /// Manager for a customer-managed key).
    LeastPrivilege,
    /// The book's managed SecretsManagerReadWrite.
    Managed,
}

impl SecretAccess {
    /// As the runbook spells it (and the step records it).
    pub fn as_str(self) -> &'static str {
        match self {
            SecretAccess::LeastPrivilege => "least-privilege",
            SecretAccess::Managed => "managed",
        }
    }
}

/// The tests compare with the spelling.
#[cfg(test)]
impl PartialEq<&str> for SecretAccess {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[derive(Debug, Clone)]
pub struct Network {
    pub vpc_id: Text,
}

#[derive(Debug, Clone)]
pub struct Database {
    pub instance_id: Option<Text>,
    pub cluster_id: Option<Text>,
    pub security_group_id: Text,
    pub port: u16,
    /// The secret the proxy logs in with; none only with end-to-end IAM.
    pub secret_arn: Option<Text>,
    pub engine_family: EngineFamily,
    /// Where `[database]` starts, for rules that involve other sections.
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub struct ProxyRole {
    pub name: Text,
    /// The trust policy document, read from its file (or the built-in one).
    pub trust_policy: serde_json::Value,
}

/// `[state]`: where a team keeps the runbook's state (an S3 object).
#[derive(Debug, Clone)]
pub struct StateTable {
    pub bucket: Text,
    /// Default: `rds-proxy-runbook/<name>.state.json`.
    pub key: Option<Text>,
    pub region: Option<String>,
    pub kms_key: Option<Text>,
}

#[derive(Debug, Clone)]
pub struct ProxySecurityGroup {
    pub name: Text,
    pub description: Text,
}

#[derive(Debug, Clone)]
pub struct Proxy {
    pub name: Text,
    pub role_arn: Text,
    pub subnet_ids: Vec<Text>,
    pub security_group_ids: Vec<Text>,
    pub require_tls: bool,
    pub iam_auth: IamAuth,
    pub default_auth_scheme: AuthScheme,
    /// How clients reach the proxy: `IPV4`, `IPV6` or `DUAL` (set when the
    /// proxy is made: a change needs a new proxy).
    pub endpoint_network_type: &'static str,
    /// How the proxy reaches the DB: `IPV4` or `IPV6` (likewise).
    pub target_connection_network_type: &'static str,
    pub idle_client_timeout: u32,
    pub debug_logging: bool,
    pub wait_timeout_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pool {
    pub max_connections_percent: u32,
    pub max_idle_connections_percent: u32,
    pub connection_borrow_timeout: u32,
    pub init_query: Option<String>,
    pub session_pinning_filters: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ConnectPolicy {
    pub name: Text,
    /// The policy template text with its placeholders still in it.
    pub template: String,
    pub db_user: Text,
}

/// `[[auth]]`: one of the proxy's secrets (AWS's UserAuthConfig), for a
/// proxy that logs in as several DB users. Without any, the proxy's one
/// secret is `database.secret_arn` with `proxy.iam_auth`.
#[derive(Debug, Clone)]
pub struct AuthEntry {
    pub secret_arn: Text,
    /// The DB user the secret logs in as, which a `[[lambda]]`'s `db_user`
    /// names (the proxy reads it from the secret: this is for the policies).
    pub user: Option<String>,
    /// `REQUIRED`, `DISABLED`, or `ENABLED` (SQL Server only); default:
    /// `proxy.iam_auth`.
    pub iam_auth: &'static str,
    /// How clients send their password; AWS's default for the engine when
    /// none is given.
    pub client_password_auth_type: Option<&'static str>,
    pub description: Option<String>,
}

/// The client password authentications each engine family accepts.
pub fn client_password_auth_types(family: EngineFamily) -> &'static [&'static str] {
    match family {
        EngineFamily::Mysql => &["MYSQL_NATIVE_PASSWORD", "MYSQL_CACHING_SHA2_PASSWORD"],
        EngineFamily::Postgresql => &["POSTGRES_SCRAM_SHA_256", "POSTGRES_MD5"],
        EngineFamily::Sqlserver => &["SQL_SERVER_AUTHENTICATION"],
    }
}

/// `[[endpoint]]`: another endpoint of the proxy (a reader endpoint of an
/// Aurora cluster, or another read/write one).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub name: String,
    /// `READ_ONLY` or `READ_WRITE`.
    pub target_role: &'static str,
    /// Default: the proxy's.
    pub subnet_ids: Option<Vec<Text>>,
    /// Default: the proxy's.
    pub security_group_ids: Option<Vec<Text>>,
}

#[derive(Debug, Clone)]
pub struct Lambda {
    pub function_name: Text,
    pub security_group_id: Option<Text>,
    pub env_var: String,
    /// A second variable that gets an `[[endpoint]]`'s host (`read_endpoint`,
    /// or the only READ_ONLY one), such as `DB_READ_HOST`.
    pub read_env_var: Option<String>,
    pub read_endpoint: Option<String>,
    /// The DB user it connects as: its connect policy allows that user only
    /// (default: `connect_policy.db_user`).
    pub db_user: Option<String>,
    /// Where its table starts.
    pub pos: Pos,
    /// What rollback puts back in `env_var` when it already pointed at the
    /// proxy before this tool touched it (an adopted setup).
    pub restore_value: Option<Text>,
    /// The same, but only for `rollback --include-adopted` (which deletes
    /// the adopted proxy): what `init` writes for a function it found on a
    /// proxy, so that a plain rollback leaves the function as found unless
    /// the user writes `restore_value` themselves.
    pub include_adopted_restore_value: Option<Text>,
}

#[derive(Debug, Clone)]
pub struct InvokeCheck {
    pub payload: String,
    pub expect: Option<String>,
    /// How long a login refused right after this run changed the connect
    /// policy or the secret access is tried again: IAM takes seconds
    /// (rarely a minute) to honour a change.
    pub auth_retry_seconds: u64,
    /// The check runs the tool's probe (`probe`) in each function's
    /// configuration instead of invoking the functions themselves.
    pub probe: bool,
}

/// IAM honours a new grant within seconds, rarely a minute.
pub const DEFAULT_AUTH_RETRY_SECONDS: u64 = 60;

#[derive(Debug, Clone)]
pub struct StepEntry {
    pub name: String,
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub struct Runbook {
    pub path: PathBuf,
    pub name: String,
    pub region: Option<String>,
    /// The AWS profile of this runbook's account (a fleet across accounts
    /// names one per runbook); --profile wins over it.
    pub profile: Option<String>,
    /// The tags for everything we create, the ownership tag included.
    pub tags: BTreeMap<String, String>,
    pub network: Network,
    pub database: Database,
    pub proxy_role: ProxyRole,
    pub proxy_security_group: ProxySecurityGroup,
    pub proxy: Proxy,
    pub pool: Pool,
    pub connect_policy: ConnectPolicy,
    pub secret_access: SecretAccess,
    /// The proxy's secrets when the runbook lists them (`[[auth]]`).
    pub auth: Vec<AuthEntry>,
    pub lambdas: Vec<Lambda>,
    pub endpoints: Vec<Endpoint>,
    pub invoke_check: InvokeCheck,
    /// `[alarms]`, or the defaults when only the `alarms` step is listed.
    pub alarms: Option<Alarms>,
    pub steps: Vec<StepEntry>,
    /// Where the state lives when the team shares it (`--state` wins).
    pub state: Option<StateTable>,
    /// The outputs of steps the runbook leaves out but whose resource it
    /// names by value (an existing proxy, by `proxy.name`), read from the
    /// account before a command resolves the steps' inputs.
    /// Set once per command.
    pub external: std::sync::OnceLock<BTreeMap<String, BTreeMap<String, String>>>,
}

/// The environment the runbook's `${env.*}` references read.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// What the parser knows of the steps, given by the caller so that the
/// runbook file does not depend on the steps (they depend on it): their
/// names and outputs, and the checks of a whole runbook against them.
pub trait StepCatalogue {
    fn names(&self) -> Vec<&'static str>;
    fn outputs(&self, step: &str) -> Option<&'static [&'static str]>;
    /// Problems of the runbook as a whole (references to steps not listed
    /// or listed later; with `order_checked`, the steps' own order).
    fn check(&self, rb: &Runbook, order_checked: bool) -> Vec<Diagnostic>;
}

impl Text {
    /// A step's own need for another step's output, made in code.
    pub fn step_output(step: &str, output: &str) -> Text {
        Text::fixed_ref(step, output, "", Pos::start())
    }

    pub(super) fn fixed_ref(step: &str, output: &str, key: &str, pos: Pos) -> Text {
        Text {
            parts: vec![Part::Ref {
                step: step.into(),
                output: output.into(),
            }],
            pos,
            key: key.to_string(),
            unset_env: false,
        }
    }
}

impl Runbook {
    /// Where the runbook says its calls go.
    pub fn aws(&self) -> crate::aws::RunbookAws<'_> {
        crate::aws::RunbookAws {
            region: self.region.as_deref(),
            profile: self.profile.as_deref(),
        }
    }
}

/// `[alarms]` (its alarms: `alarm_settings.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct Alarms {
    pub sns_topic_arn: Option<String>,
    /// Notify the topic when an alarm is back to OK too.
    pub notify_ok: bool,
    /// ... and when it lacks data.
    pub notify_insufficient_data: bool,
    /// The alarms turned on, in `AlarmKind::ALL`'s order.
    pub alarms: Vec<super::alarm_settings::AlarmSettings>,
    pub pos: Pos,
}
