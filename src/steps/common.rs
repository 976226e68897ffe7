//! Account reads that several steps share.

use anyhow::Result;
use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput;
use serde_json::Value;

use super::contract::Ctx;
use crate::aws::describe_error;

/// A Lambda function's configuration (role, VpcConfig, environment, update
/// status).
pub async fn function_configuration(
    cx: &Ctx<'_>,
    name: &str,
) -> Result<GetFunctionConfigurationOutput> {
    cx.aws.function_if_any(name).await?.ok_or_else(|| {
        anyhow::anyhow!(
            "Lambda function {name} does not exist in {}: check [[lambda]] function_name and the region",
            cx.aws.region
        )
    })
}

/// Whether the managed policy `arn` is attached to `role`.
pub async fn policy_attached(cx: &Ctx<'_>, role: &str, arn: &str) -> Result<bool> {
    let out = cx
        .aws
        .iam
        .list_attached_role_policies()
        .role_name(role)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot list the policies of role {role}: {}",
                describe_error(&e)
            )
        })?;
    Ok(out
        .attached_policies()
        .iter()
        .any(|p| p.policy_arn() == Some(arn)))
}

/// IAM returns policy documents URL-encoded; some emulators return them as
/// they were sent.
pub fn decode_policy(doc: &str) -> Option<Value> {
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
