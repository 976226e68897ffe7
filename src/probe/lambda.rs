//! The probe's Lambda calls: find what an earlier probe left (by its name
//! and our tags), create a probe function in a configuration, wait until
//! it can run, invoke it, and delete it.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{FunctionCode, Runtime, State as FnState, VpcConfig};

use super::plan::{self, Configuration};
use super::{Answer, HANDLER, Target, code_zip};
use crate::aws::{Aws, describe_error, error_code, errors::is_function_not_found};
use crate::poll::{Wait, wait_for};
use crate::runbook::OWNER_TAG;
use crate::ui::progress::StepBar;

/// The tag that marks a probe function, beside the ownership tag.
pub const PROBE_TAG: &str = "rds-proxy-runbook:probe";

/// The IAM actions of a probe (`permissions --for probe`); the sweep's
/// (`SWEEP`) are made by `run` and `rollback` too when the state records a
/// probe.
pub const ACTIONS: crate::actions::Calls = {
    use crate::actions::On;
    &[
        ("lambda:CreateFunction", On::ProbeFunctions),
        ("lambda:TagResource", On::ProbeFunctions),
        ("lambda:GetFunctionConfiguration", On::ProbeFunctions),
        ("lambda:InvokeFunction", On::ProbeFunctions),
        ("iam:PassRole", On::FunctionRolesToLambda),
        // The proxy's secrets: the user each logs in as (never the password).
        ("secretsmanager:GetSecretValue", On::Secrets),
        ("rds:DescribeDBProxies", On::Any),
        ("rds:DescribeDBProxyEndpoints", On::Any),
        ("lambda:GetFunctionConfiguration", On::Functions),
        ("logs:FilterLogEvents", On::ProxyLog),
    ]
};

/// Finding and deleting what an earlier probe left.
pub const SWEEP: crate::actions::Calls = {
    use crate::actions::On;
    &[
        ("lambda:ListFunctions", On::Any),
        ("lambda:ListTags", On::ProbeFunctions),
        ("lambda:DeleteFunction", On::ProbeFunctions),
    ]
};

/// The probe functions of this runbook the account holds: named with its
/// prefix and tagged as its probes (another runbook's of the same prefix
/// is not ours).
pub async fn leftovers(aws: &Aws, runbook: &str) -> Result<Vec<String>> {
    let prefix = plan::prefix(runbook);
    let mut named = Vec::new();
    let mut pages = aws.lambda.list_functions().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            anyhow::anyhow!(
                "cannot list the Lambda functions to find a probe left behind: {} (allow \
                 lambda:ListFunctions)",
                describe_error(&e)
            )
        })?;
        for f in page.functions() {
            if let (Some(name), Some(arn)) = (f.function_name(), f.function_arn())
                && name.starts_with(&prefix)
            {
                named.push((name.to_string(), arn.to_string()));
            }
        }
    }
    let mut ours = Vec::new();
    for (name, arn) in named {
        let tags = aws
            .lambda
            .list_tags()
            .resource(&arn)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!("cannot read the tags of {name}: {}", describe_error(&e))
            })?;
        let tags = tags.tags().cloned().unwrap_or_default();
        if is_our_probe(&tags, runbook) {
            ours.push(name);
        }
    }
    Ok(ours)
}

fn is_our_probe(tags: &HashMap<String, String>, runbook: &str) -> bool {
    tags.get(OWNER_TAG).map(String::as_str) == Some(runbook) && tags.contains_key(PROBE_TAG)
}

/// Deletes a probe function; gone already is done.
pub async fn delete(aws: &Aws, name: &str) -> Result<()> {
    match aws
        .lambda
        .delete_function()
        .function_name(name)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_function_not_found(error_code(&e)) => Ok(()),
        Err(e) => anyhow::bail!(
            "cannot delete the probe function {name}: {}; delete it with `aws lambda \
             delete-function --function-name {name}` (or run `probe` again)",
            describe_error(&e)
        ),
    }
}

/// Creates the probe function of a configuration, tagged as ours, with
/// its role and VPC, and waits until Lambda can run it.
pub async fn create(
    aws: &Aws,
    bar: &StepBar,
    name: &str,
    runbook: &str,
    tags: &std::collections::BTreeMap<String, String>,
    c: &Configuration,
    timeout_seconds: i32,
) -> Result<()> {
    let mut tags: HashMap<String, String> = tags.clone().into_iter().collect();
    tags.insert(PROBE_TAG.into(), "true".into());
    let created = aws
        .lambda
        .create_function()
        .function_name(name)
        .description(format!(
            "rds-proxy-runbook's probe of runbook {runbook}: deleted once it has answered"
        ))
        .runtime(Runtime::Python312)
        .handler(HANDLER)
        .role(&c.role)
        .timeout(timeout_seconds)
        .memory_size(128)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(code_zip()))
                .build(),
        )
        .vpc_config(
            VpcConfig::builder()
                .set_subnet_ids(Some(c.subnets.clone()))
                .set_security_group_ids(Some(c.security_groups.clone()))
                .build(),
        )
        .set_tags(Some(tags))
        .send()
        .await;
    if let Err(e) = created {
        anyhow::bail!(
            "cannot create the probe function {name} with role {}: {} (the probe needs \
             lambda:CreateFunction and iam:PassRole on the functions' roles: see `permissions \
             --for probe`)",
            c.role,
            describe_error(&e)
        );
    }
    wait_for(
        bar,
        "the probe function to be active",
        Duration::from_secs(300),
        || async {
            let f = aws
                .lambda
                .get_function_configuration()
                .function_name(name)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("cannot read {name}: {}", describe_error(&e)))?;
            match f.state() {
                Some(FnState::Failed) => anyhow::bail!(
                    "the probe function {name} failed to start: {}",
                    f.state_reason().unwrap_or("Lambda gave no reason")
                ),
                Some(FnState::Active) | None => Ok(Wait::Ready(())),
                Some(s) => Ok(Wait::Pending(s.as_str().to_lowercase())),
            }
        },
    )
    .await
}

/// What one invocation answered: each target's report, or the function's
/// error with its log's tail.
pub async fn invoke(aws: &Aws, name: &str, targets: &[Target]) -> Result<Answer> {
    let event = serde_json::json!({ "targets": targets });
    let crate::aws::lambda::Invoked {
        function_error,
        body,
        tail,
        ..
    } = aws.invoke(name, event.to_string().as_bytes()).await?;
    if let Some(kind) = function_error {
        let last: Vec<&str> = tail.lines().rev().take(6).collect();
        anyhow::bail!(
            "the probe {name} failed ({kind}): {}{}",
            body.chars().take(300).collect::<String>(),
            if last.is_empty() {
                String::new()
            } else {
                format!(
                    "\n  its log ends:\n    {}",
                    last.into_iter().rev().collect::<Vec<_>>().join("\n    ")
                )
            }
        );
    }
    serde_json::from_str(&body).with_context(|| format!("the probe {name} answered {body:.300}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_runbooks_probes_are_ours() {
        let tags = |owner: &str, probe: bool| {
            let mut t = HashMap::from([(OWNER_TAG.to_string(), owner.to_string())]);
            if probe {
                t.insert(PROBE_TAG.into(), "true".into());
            }
            t
        };
        assert!(is_our_probe(&tags("rb", true), "rb"));
        assert!(!is_our_probe(&tags("rb.other", true), "rb"));
        assert!(!is_our_probe(&tags("rb", false), "rb"));
    }
}
