//! The recipe's check: invoke each function and fail on a function error,
//! an unexpected status code, or a response without the expected text. It
//! changes nothing, so repeating it is not a change.

use anyhow::Result;
use async_trait::async_trait;
use aws_sdk_lambda::primitives::Blob;
use futures_util::future::try_join_all;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use std::time::{Duration, SystemTime};

use super::contract::{Ctx, Found, Outputs, Resolver, StepImpl, Undone};
use crate::aws::describe_error;
use crate::proxy_logs::Read;
use crate::runbook::Runbook;

pub struct InvokeCheck;

/// How much of a response to show.
const SHOW: usize = 300;

#[derive(Serialize, Deserialize)]
pub struct Inputs {
    functions: Vec<String>,
    payload: String,
    expect: Option<String>,
    /// The proxy whose log is read after the invocations (none in states
    /// written before the log was read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    proxy: Option<String>,
}

/// What the proxy's log says since `since`, as lines to show; empty when
/// it says nothing the tool recognises, or there is no log yet.
async fn log_findings(cx: &Ctx<'_>, proxy: &str, since: SystemTime) -> Vec<String> {
    match crate::proxy_logs::read(cx.aws, proxy, since).await {
        Ok(Read::Messages(m)) => crate::proxy_logs::lines(&crate::proxy_logs::diagnose(&m)),
        Ok(Read::NoGroup) => Vec::new(),
        Ok(Read::Unreadable(why)) => vec![why],
        Err(e) => vec![format!("cannot read the proxy's log: {e}")],
    }
}

/// Judges one invocation's answer.
pub fn judge(
    function: &str,
    status: i32,
    function_error: Option<&str>,
    body: &str,
    expect: Option<&str>,
) -> Result<String> {
    let shown: String = body.chars().take(SHOW).collect();
    if let Some(kind) = function_error {
        anyhow::bail!("{function} failed ({kind}): {shown}");
    }
    if status != 200 {
        anyhow::bail!("{function} answered status {status}, not 200: {shown}");
    }
    if let Some(text) = expect
        && !body.contains(text)
    {
        anyhow::bail!(
            "{function}'s response does not contain {text:?}: {shown}; if the function cannot \
             connect, check its VPC attachment, the lambda-ingress rule, and that it makes its \
             IAM token for the proxy endpoint with TLS"
        );
    }
    Ok(shown)
}

#[async_trait]
impl StepImpl for InvokeCheck {
    type Inputs = Inputs;
    const NAME: &'static str = "invoke-check";
    const ACTS_ON_LAMBDAS: bool = true;
    const OUTPUTS: &'static [&'static str] = &["response"];
    const AFTER: &'static [(&'static str, &'static str)] = &[
        ("lambda-env", "it checks the function through the proxy"),
        ("targets", "it checks the function through the proxy"),
        ("lambda-ingress", "it checks the function through the proxy"),
        ("connect-policy", "it checks the function through the proxy"),
    ];
    const CHANGES_ACCOUNT: bool = false;

    fn inputs(&self, rb: &Runbook, r: &mut Resolver) -> Inputs {
        Inputs {
            functions: rb
                .lambdas
                .iter()
                .map(|l| r.text(&l.function_name))
                .collect(),
            payload: rb.invoke_check.payload.clone(),
            expect: rb.invoke_check.expect.clone(),
            proxy: Some(r.text(&rb.proxy.name)),
        }
    }

    fn describe(&self, i: &Inputs) -> String {
        let expect = i
            .expect
            .as_ref()
            .map_or(String::new(), |e| format!(", expecting {e:?}"));
        format!(
            "invoke {} with {}{expect}",
            i.functions.join(", "),
            i.payload
        )
    }

    async fn check(&self, _: &Ctx, _: &Inputs) -> Result<Found> {
        Ok(Found::Missing)
    }

    async fn apply(&self, cx: &Ctx, i: &Inputs) -> Result<Outputs> {
        cx.bar.set(format!("invoking {}", i.functions.join(", ")));
        // A minute of slack: the log's clock and ours differ.
        let since = SystemTime::now() - Duration::from_secs(60);
        let invoked = try_join_all(i.functions.iter().map(|f| async move {
            let out = cx
                .aws
                .lambda
                .invoke()
                .function_name(f)
                .payload(Blob::new(i.payload.as_bytes()))
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("cannot invoke {f}: {}", describe_error(&e)))?;
            let body = out
                .payload()
                .map(|p| String::from_utf8_lossy(p.as_ref()).into_owned())
                .unwrap_or_default();
            let shown = judge(
                f,
                out.status_code(),
                out.function_error(),
                &body,
                i.expect.as_deref(),
            )?;
            anyhow::Ok(format!("{f}: {shown}"))
        }))
        .await;
        // A failure: what the proxy logged meanwhile says why. (A pass
        // reads no log: a re-run stays one round of reads; `doctor` reads
        // it whenever asked.)
        let e = match invoked {
            Ok(responses) => {
                return Ok(Outputs::from([("response".into(), responses.join("; "))]));
            }
            Err(e) => e,
        };
        let findings = match &i.proxy {
            Some(proxy) => log_findings(cx, proxy, since).await,
            None => Vec::new(),
        };
        if findings.is_empty() {
            return Err(e);
        }
        Err(anyhow::anyhow!(
            "{e:#}; the proxy's log since the invocation: {}",
            findings.join("; ")
        ))
    }

    async fn rollback(&self, _: &Ctx, _: &Inputs, _: Option<&Value>) -> Result<Undone> {
        Ok(Undone::AlreadyGone(
            "nothing to undo: it only invoked".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judging_responses() {
        assert_eq!(judge("f", 200, None, "ok", None).unwrap(), "ok");
        assert!(
            judge("f", 200, Some("Unhandled"), "boom", None)
                .unwrap_err()
                .to_string()
                .contains("f failed (Unhandled): boom")
        );
        assert!(judge("f", 500, None, "", None).is_err());
        assert!(
            judge(
                "f",
                200,
                None,
                "Successfully connected",
                Some("Successfully")
            )
            .is_ok()
        );
        let e = judge("f", 200, None, "timeout", Some("Successfully"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not contain"), "{e}");
        let long = "x".repeat(1000);
        assert_eq!(judge("f", 200, None, &long, None).unwrap().len(), SHOW);
    }
}
