//! Lambda's reads beside the steps': one invocation with its log's tail
//! (the invoke check, the probe), a function's configuration if there is
//! one, and the functions whose variables name a host (the rollback guard).

use super::{Aws, describe_error, error_code, errors};

/// What one synchronous invocation answered, decoded: its status, the
/// function's error kind (Unhandled, Handled) if any, its payload and the
/// tail of its log.
pub struct Invoked {
    pub status: i32,
    pub function_error: Option<String>,
    pub body: String,
    pub tail: String,
}

impl Aws {
    /// Invokes a Lambda function with `payload`, asking for its log's tail.
    pub async fn invoke(&self, function: &str, payload: &[u8]) -> anyhow::Result<Invoked> {
        let out = self
            .lambda
            .invoke()
            .function_name(function)
            .log_type(aws_sdk_lambda::types::LogType::Tail)
            .payload(aws_sdk_lambda::primitives::Blob::new(payload))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot invoke {function}: {}", describe_error(&e)))?;
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        Ok(Invoked {
            status: out.status_code(),
            function_error: out.function_error().map(String::from),
            body: out.payload().map(|p| text(p.as_ref())).unwrap_or_default(),
            tail: out
                .log_result()
                .and_then(|t| aws_smithy_types::base64::decode(t).ok())
                .map(|b| text(&b))
                .unwrap_or_default(),
        })
    }

    /// A Lambda function's configuration; None when there is no such
    /// function.
    pub async fn function_if_any(
        &self,
        name: &str,
    ) -> anyhow::Result<
        Option<
            aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput,
        >,
    > {
        match self
            .lambda
            .get_function_configuration()
            .function_name(name)
            .send()
            .await
        {
            Ok(c) => Ok(Some(c)),
            Err(e) if errors::is_function_not_found(error_code(&e)) => Ok(None),
            Err(e) => anyhow::bail!("cannot read Lambda function {name}: {}", describe_error(&e)),
        }
    }

    /// Every `(function, variable)` in the account and region whose value
    /// names one of `hosts` (as the whole value or inside it, such as a
    /// `DATABASE_URL`). Every function is read, not only the runbook's: a
    /// colleague may have pointed another one at the proxy by hand.
    pub async fn variables_naming(
        &self,
        hosts: &[String],
    ) -> anyhow::Result<Vec<(String, String)>> {
        let hosts: Vec<String> = hosts
            .iter()
            .filter(|h| !h.is_empty())
            .map(|h| h.to_ascii_lowercase())
            .collect();
        let mut found = Vec::new();
        if hosts.is_empty() {
            return Ok(found);
        }
        let mut pages = self.lambda.list_functions().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                anyhow::anyhow!(
                    "cannot list the Lambda functions to see which point at the proxy: {} \
                     (allow lambda:ListFunctions)",
                    describe_error(&e)
                )
            })?;
            for f in page.functions() {
                let vars = f.environment().and_then(|e| e.variables());
                for (k, v) in vars.into_iter().flatten() {
                    let v = v.to_ascii_lowercase();
                    if hosts.iter().any(|h| v.contains(h.as_str())) {
                        found.push((f.function_name().unwrap_or_default().to_string(), k.clone()));
                    }
                }
            }
        }
        found.sort();
        Ok(found)
    }
}
