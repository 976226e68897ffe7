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
    cx.aws
        .lambda
        .get_function_configuration()
        .function_name(name)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot read Lambda function {name}: {}", describe_error(&e)))
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
