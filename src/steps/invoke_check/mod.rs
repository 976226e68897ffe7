//! The recipe's check: invoke each function and fail on a function error,
//! an unexpected status code, or a response without the expected text. It
//! changes nothing, so repeating it is not a change.
//!
//! A refused login right after this run changed the connect policy or the
//! secret access is tried again for a while (`auth_retry_seconds`): IAM
//! takes seconds, rarely a minute, to honour a change. No other failure is
//! retried. A failure is read for its cause (`failure.rs`: the function's
//! error and log tail) and the proxy's log since the invocation, each named
//! with the runbook step that owns it and the fix.

mod failure;

use anyhow::Result;
use async_trait::async_trait;
use futures_util::future::try_join_all;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use std::time::{Duration, Instant, SystemTime};

use super::contract::{Actions, Ctx, Found, On, Outputs, Resolver, StepImpl, Undone};
use crate::probe::run::{Subject, Unrecorded};
use crate::proxy_logs::Read;
use crate::runbook::{DEFAULT_AUTH_RETRY_SECONDS, Runbook};
use failure::Kind;

pub struct InvokeCheck;

/// How much of a response to show.
const SHOW: usize = 300;
/// How many of the log tail's last lines to show with a failure.
const TAIL_LINES: usize = 6;
/// The output a check that exercised nothing records, with the reason.
pub const NOT_EXERCISED: &str = "not_exercised";
/// The steps whose change may take IAM a while to honour.
const IAM_CHANGES: &[&str] = &["connect-policy", "secret-access"];

#[derive(Serialize, Deserialize)]
pub struct Inputs {
    functions: Vec<String>,
    payload: String,
    expect: Option<String>,
    /// The proxy whose log is read after the invocations (none in states
    /// written before the log was read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    proxy: Option<String>,
    #[serde(default = "default_retry", skip_serializing_if = "is_default_retry")]
    auth_retry_seconds: u64,
    /// `[invoke_check] probe`: the tool's probe runs in the functions'
    /// configurations instead of invoking them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    probe: Option<Subject>,
}

fn default_retry() -> u64 {
    DEFAULT_AUTH_RETRY_SECONDS
}

fn is_default_retry(s: &u64) -> bool {
    *s == DEFAULT_AUTH_RETRY_SECONDS
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
        anyhow::bail!("{function}'s response does not contain {text:?}: {shown}");
    }
    Ok(shown)
}

/// The reason a function gives for not exercising the path, when it
/// answers `{"exercised": false, "reason": ...}`.
pub fn not_exercised(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    (v.get("exercised")? == &Value::Bool(false)).then(|| {
        v.get("reason")
            .and_then(Value::as_str)
            .unwrap_or("the function did not say why")
            .to_string()
    })
}

/// One invocation's result.
enum Answer {
    Passed(String),
    NotExercised(String),
    Failed {
        message: String,
        reading: failure::Reading,
        tail: String,
        /// Seconds it was tried again for, when it gave up at the window's end.
        retried_for: Option<u64>,
    },
}

async fn invoke_once(cx: &Ctx<'_>, function: &str, i: &Inputs) -> Result<Answer> {
    let crate::aws::lambda::Invoked {
        status,
        function_error,
        body,
        tail,
    } = cx.aws.invoke(function, i.payload.as_bytes()).await?;
    if function_error.is_none()
        && let Some(why) = not_exercised(&body)
    {
        return Ok(Answer::NotExercised(format!("{function}: {why}")));
    }
    Ok(
        match judge(
            function,
            status,
            function_error.as_deref(),
            &body,
            i.expect.as_deref(),
        ) {
            Ok(shown) => Answer::Passed(format!("{function}: {shown}")),
            Err(e) => Answer::Failed {
                message: e.to_string(),
                reading: failure::read(&body, &tail),
                tail,
                retried_for: None,
            },
        },
    )
}

/// Whether the proxy's log since `since` shows a refused login as an IAM
/// token refused (which IAM's propagation may explain); a log that does
/// not say gets the benefit of the doubt.
async fn refused_by_iam(cx: &Ctx<'_>, i: &Inputs, since: SystemTime) -> bool {
    let Some(proxy) = &i.proxy else {
        return true;
    };
    match crate::proxy_logs::read(cx.aws, proxy, since).await {
        Ok(Read::Messages(m)) => {
            let found = crate::proxy_logs::diagnose(&m);
            let is = |what: &str| found.iter().any(|f| f.what == what);
            is(crate::proxy_logs::IAM_REFUSED) || !is(crate::proxy_logs::NO_CREDENTIALS)
        }
        _ => true,
    }
}

/// Invokes `function` until it passes, or fails with anything but a login
/// refused for its IAM token, or `retry_until` passes.
async fn invoke(
    cx: &Ctx<'_>,
    function: &str,
    i: &Inputs,
    retry_until: Option<Instant>,
) -> Result<Answer> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(500);
    loop {
        let since = SystemTime::now() - Duration::from_secs(1);
        let mut answer = invoke_once(cx, function, i).await?;
        let Answer::Failed {
            reading,
            retried_for,
            ..
        } = &mut answer
        else {
            return Ok(answer);
        };
        let Some(until) = retry_until.filter(|_| reading.kind == Kind::Auth) else {
            return Ok(answer);
        };
        let now = Instant::now();
        if now >= until {
            *retried_for = Some(started.elapsed().as_secs());
            return Ok(answer);
        }
        if !refused_by_iam(cx, i, since).await {
            return Ok(answer);
        }
        cx.bar.set(format!(
            "{function}: login refused {:.0} s after this run changed an IAM grant; IAM takes \
             seconds (rarely a minute) to honour a change: trying again until {} s",
            started.elapsed().as_secs_f64(),
            i.auth_retry_seconds
        ));
        tokio::time::sleep(delay.min(until - now)).await;
        delay = (delay * 2).min(Duration::from_secs(8));
    }
}

/// The failure's message: the function's answer, its cause and fix, the
/// last lines of its log.
fn explain(
    message: &str,
    reading: &failure::Reading,
    tail: &str,
    retried_for: Option<u64>,
    proxies: &[String],
) -> String {
    let mut out = message.to_string();
    if let Some(host) = failure::host_off_proxy(&format!("{message}\n{tail}"), proxies) {
        out.push_str(&format!(
            "; cause: the function connected to {host}, not to the proxy: one of its variables \
             other than the runbook's still holds the DB's endpoint (a DATABASE_URL, say); fix: \
             give that variable a [[lambda]] entry of its own (env_var), or point it at the \
             proxy yourself"
        ));
    } else if reading.kind != Kind::Other {
        out.push_str(&format!("; cause: {}; fix: {}", reading.what, reading.fix));
    }
    if let Some(seconds) = retried_for {
        out.push_str(&format!(
            "; still refused after {seconds} s of retries (IAM honours a change within \
             seconds, rarely a minute): the grant itself is wrong, not late"
        ));
    }
    let lines: Vec<&str> = tail.lines().filter(|l| !l.trim().is_empty()).collect();
    if !lines.is_empty() {
        let last = &lines[lines.len().saturating_sub(TAIL_LINES)..];
        out.push_str(&format!("; the function's log ends: {}", last.join(" | ")));
    }
    out
}

/// The check as a probe: passes when every configuration connected and
/// queried through every endpoint. The probe functions are found by their
/// tag if a kill leaves one: this step's record says a probe ran.
async fn probe(
    cx: &Ctx<'_>,
    subject: &Subject,
    proxy: &str,
    retry_until: Option<Instant>,
) -> Result<Outputs> {
    let findings =
        crate::probe::run::probe(cx.aws, subject, proxy, cx.bar, &mut Unrecorded, retry_until)
            .await?;
    let lines = crate::probe::render::render(&findings);
    if !findings.passed() {
        anyhow::bail!("{}", lines.join("\n"));
    }
    let rows: usize = findings
        .configurations
        .iter()
        .map(|c| c.results.len())
        .sum();
    Ok(Outputs::from([(
        "response".into(),
        format!(
            "the probe passed in {} configuration(s), {rows} connection(s)",
            findings.configurations.len()
        ),
    )]))
}

#[async_trait]
impl StepImpl for InvokeCheck {
    type Inputs = Inputs;
    const NAME: &'static str = "invoke-check";
    const ACTS_ON_LAMBDAS: bool = true;
    const OUTPUTS: &'static [&'static str] = &["response"];
    const ACTIONS: Actions = Actions {
        check: &[],
        apply: &[
            ("lambda:InvokeFunction", On::Functions),
            // A failure's cause, from the proxy's log.
            ("logs:FilterLogEvents", On::ProxyLog),
        ],
        rollback: &[],
    };
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
            auth_retry_seconds: rb.invoke_check.auth_retry_seconds,
            probe: rb
                .invoke_check
                .probe
                .then(|| Subject::of(rb, |t| r.text(t))),
        }
    }

    fn describe(&self, i: &Inputs) -> String {
        if i.probe.is_some() {
            return format!(
                "probe the proxy from the configurations of {} (a function of the tool's own, \
                 created, invoked and deleted), without invoking them",
                i.functions.join(", ")
            );
        }
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
        let iam_changed = IAM_CHANGES.iter().any(|s| cx.changed_in_run.contains(*s));
        let retry_until =
            iam_changed.then(|| Instant::now() + Duration::from_secs(i.auth_retry_seconds));
        if let Some(subject) = &i.probe {
            return probe(
                cx,
                subject,
                i.proxy.as_deref().unwrap_or_default(),
                retry_until,
            )
            .await;
        }
        cx.bar.set(format!("invoking {}", i.functions.join(", ")));
        // A minute of slack: the log's clock and ours differ.
        let since = SystemTime::now() - Duration::from_secs(60);
        let answers =
            try_join_all(i.functions.iter().map(|f| invoke(cx, f, i, retry_until))).await?;
        let (mut passed, mut skipped, mut failed) = (Vec::new(), Vec::new(), Vec::new());
        for answer in answers {
            match answer {
                Answer::Passed(text) => passed.push(text),
                Answer::NotExercised(why) => skipped.push(why),
                Answer::Failed {
                    message,
                    reading,
                    tail,
                    retried_for,
                } => failed.push(explain(
                    &message,
                    &reading,
                    &tail,
                    retried_for,
                    cx.our_endpoints,
                )),
            }
        }
        if failed.is_empty() {
            let mut outputs = Outputs::from([("response".into(), passed.join("; "))]);
            if !skipped.is_empty() {
                outputs.insert(NOT_EXERCISED.into(), skipped.join("; "));
            }
            return Ok(outputs);
        }
        // What the proxy logged meanwhile says why. (A pass reads no log:
        // a re-run stays one round of reads; `doctor` reads it whenever
        // asked.)
        let findings = match &i.proxy {
            Some(proxy) => log_findings(cx, proxy, since).await,
            None => Vec::new(),
        };
        let mut message = failed.join("\n");
        if !findings.is_empty() {
            message.push_str(&format!(
                "\nthe proxy's log since the invocation: {}",
                findings.join("; ")
            ));
        }
        Err(anyhow::anyhow!(message))
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
        assert_eq!(
            not_exercised(r#"{"exercised": false, "reason": "no SQL Server here"}"#).as_deref(),
            Some("no SQL Server here")
        );
        assert_eq!(not_exercised(r#"{"exercised": true}"#), None);
        assert_eq!(not_exercised("\"Successfully connected\""), None);
        let long = "x".repeat(1000);
        assert_eq!(judge("f", 200, None, &long, None).unwrap().len(), SHOW);
    }
}
