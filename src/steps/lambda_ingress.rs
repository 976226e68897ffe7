//! Recipe step 8: the proxy's security group admits each Lambda function's
//! security group (from the function's VpcConfig unless the runbook names
//! one) on the DB port.

use anyhow::Result;
use async_trait::async_trait;
use futures_util::future::try_join_all;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::function_configuration;
use super::contract::{Ctx, Found, Outputs, Replacement, Resolver, StepImpl, Undone};
use super::ingress;
use crate::runbook::Runbook;

pub struct LambdaIngress;

#[derive(Serialize, Deserialize)]
pub struct Function {
    name: String,
    security_group_id: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub struct Inputs {
    proxy_security_group_id: String,
    port: u16,
    functions: Vec<Function>,
}

/// The security groups the functions' connections come from.
async fn sources(cx: &Ctx<'_>, i: &Inputs) -> Result<Vec<String>> {
    let per_function = try_join_all(i.functions.iter().map(|f| async move {
        if let Some(sg) = &f.security_group_id {
            return Ok(vec![sg.clone()]);
        }
        let conf = function_configuration(cx, &f.name).await?;
        let groups = conf
            .vpc_config()
            .map(|v| v.security_group_ids().to_vec())
            .unwrap_or_default();
        if groups.is_empty() {
            anyhow::bail!(
                "Lambda function {} is not attached to a VPC, so it cannot reach the proxy: \
                 attach it to the DB's VPC (subnets and a security group), or name its \
                 security group in the runbook ([[lambda]] security_group_id)",
                f.name
            );
        }
        Ok(groups)
    }))
    .await?;
    let mut out: Vec<String> = per_function.into_iter().flatten().collect();
    out.sort();
    out.dedup();
    Ok(out)
}

#[async_trait]
impl StepImpl for LambdaIngress {
    type Inputs = Inputs;
    const NAME: &'static str = "lambda-ingress";
    const IDENTITY: &'static [&'static str] = &["proxy_security_group_id"];
    const REPLACEMENT: Replacement = Replacement::WithProxy {
        why: "the proxy would move to the new group in place, maybe before the group admits the \
         functions",
        follows: &[],
    };
    const ACTS_ON_LAMBDAS: bool = true;
    const OUTPUTS: &'static [&'static str] = &["rule_ids"];

    fn inputs(&self, rb: &Runbook, r: &mut Resolver) -> Inputs {
        let proxy_groups = r.list(&rb.proxy.security_group_ids);
        Inputs {
            proxy_security_group_id: proxy_groups.into_iter().next().unwrap_or_default(),
            port: rb.database.port,
            functions: rb
                .lambdas
                .iter()
                .map(|l| Function {
                    name: r.text(&l.function_name),
                    security_group_id: l.security_group_id.as_ref().map(|t| r.text(t)),
                })
                .collect(),
        }
    }

    fn describe(&self, i: &Inputs) -> String {
        let names: Vec<&str> = i.functions.iter().map(|f| f.name.as_str()).collect();
        format!(
            "the proxy's security group {} admits TCP {} from the security groups of {}",
            i.proxy_security_group_id,
            i.port,
            names.join(", ")
        )
    }

    async fn check(&self, cx: &Ctx, i: &Inputs) -> Result<Found> {
        let sources = sources(cx, i).await?;
        ingress::check(cx, Self::NAME, &i.proxy_security_group_id, i.port, &sources).await
    }

    async fn apply(&self, cx: &Ctx, i: &Inputs) -> Result<Outputs> {
        let sources = sources(cx, i).await?;
        let description = format!("Lambda to RDS Proxy ({})", cx.runbook);
        ingress::apply(
            cx,
            Self::NAME,
            &i.proxy_security_group_id,
            i.port,
            &sources,
            &description,
        )
        .await
    }

    async fn adopted(&self, _: &Ctx, _: &Inputs, outputs: &Outputs) -> Result<Option<Value>> {
        Ok(ingress::adopted(outputs))
    }

    async fn rollback(&self, cx: &Ctx, i: &Inputs, before: Option<&Value>) -> Result<Undone> {
        ingress::rollback(cx, Self::NAME, &i.proxy_security_group_id, i.port, before).await
    }
}
