//! The proxy step's inputs, as the state records them (the runbook's
//! `[proxy]`, its database's secret or `[[auth]]` entries), and the proxy's
//! `Auth` built from them.

use std::collections::BTreeMap;

use aws_sdk_rds::types::{AuthScheme, ClientPasswordAuthType, IamAuthMode, UserAuthConfig};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone)]
pub struct Inputs {
    pub(super) name: String,
    pub(super) engine_family: String,
    /// None with end-to-end IAM and no secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) secret_arn: Option<String>,
    pub(super) iam_auth: String,
    /// The runbook's `[[auth]]` entries, when it lists them (then
    /// `secret_arn` is none); left out otherwise, so the book's inputs read
    /// and checksum as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) auth: Vec<AuthInput>,
    /// `NONE` (the book's, left out of the recorded inputs so that states
    /// written before it keep their checksum) or `IAM_AUTH`.
    #[serde(default = "no_scheme", skip_serializing_if = "is_no_scheme")]
    pub(super) default_auth_scheme: String,
    /// `IPV4` (left out of the recorded inputs, as the scheme's default),
    /// `IPV6` or `DUAL`; set when the proxy is made.
    #[serde(default = "ipv4", skip_serializing_if = "is_ipv4")]
    pub(super) endpoint_network_type: String,
    /// `IPV4` or `IPV6`; likewise.
    #[serde(default = "ipv4", skip_serializing_if = "is_ipv4")]
    pub(super) target_connection_network_type: String,
    pub(super) role_arn: String,
    pub(super) subnet_ids: Vec<String>,
    pub(super) security_group_ids: Vec<String>,
    pub(super) require_tls: bool,
    pub(super) idle_client_timeout: u32,
    pub(super) debug_logging: bool,
    pub(super) tags: BTreeMap<String, String>,
    /// How long to wait; a setting of the run, not of the proxy, so it is
    /// kept out of the checksum (see `state::checksum`).
    #[serde(rename = "_wait_timeout_seconds")]
    pub(super) wait_timeout_seconds: u64,
}

/// One of the proxy's secrets, as `Auth` lists it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AuthInput {
    pub(super) secret_arn: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) user: Option<String>,
    pub(super) iam_auth: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) client_password_auth_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) description: Option<String>,
}

impl Inputs {
    /// The proxy's secrets: the `[[auth]]` entries, else the one secret.
    pub(super) fn entries(&self) -> Vec<AuthInput> {
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

/// The proxy's `Auth`: its secrets, none with end-to-end IAM alone.
pub(super) fn auth_config(i: &Inputs) -> Vec<UserAuthConfig> {
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
