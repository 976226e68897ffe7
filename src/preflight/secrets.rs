//! Preflight's secrets: each one the proxy logs in with is there, readable,
//! and holds credentials (for the user its `[[auth]]` entry names); the
//! value itself is never shown.

use anyhow::Result;

use super::report::Report;
use crate::aws::errors::is_secret_not_found;
use crate::aws::{Aws, describe_error, error_code};
use crate::runbook::{Runbook, Text};

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

/// Each secret the proxy logs in with: there, readable, credentials (for
/// the user its `[[auth]]` entry names).
pub(super) async fn check_secret(rb: &Runbook, aws: &Aws, r: &mut Report) -> Result<()> {
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
