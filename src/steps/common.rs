//! Account reads that several steps share.

use anyhow::Result;
use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput;

use super::Ctx;
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
