//! Recipe step 6: the DB's security group admits the proxy's security
//! group on the DB port.

use anyhow::Result;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::contract::{Actions, Ctx, Found, On, Outputs, Resolver, StepImpl, Undone};
use super::ingress;
use crate::runbook::Runbook;

pub struct DbIngress;

#[derive(Serialize, Deserialize)]
pub struct Inputs {
    db_security_group_id: String,
    port: u16,
    proxy_security_group_ids: Vec<String>,
}

#[async_trait]
impl StepImpl for DbIngress {
    type Inputs = Inputs;
    const NAME: &'static str = "db-ingress";
    const IDENTITY: &'static [&'static str] = &["db_security_group_id"];
    const OUTPUTS: &'static [&'static str] = &["rule_ids"];
    const ACTIONS: Actions = Actions {
        check: &[("ec2:DescribeSecurityGroupRules", On::Any)],
        apply: &[
            ("ec2:DescribeSecurityGroupRules", On::Any),
            ("ec2:AuthorizeSecurityGroupIngress", On::Any),
            // The rule is tagged as it is made.
            ("ec2:CreateTags", On::Any),
        ],
        rollback: &[
            ("ec2:DescribeSecurityGroupRules", On::Any),
            ("ec2:RevokeSecurityGroupIngress", On::Any),
        ],
    };

    fn inputs(&self, rb: &Runbook, r: &mut Resolver) -> Inputs {
        Inputs {
            db_security_group_id: r.text(&rb.database.security_group_id),
            port: rb.database.port,
            proxy_security_group_ids: r.list(&rb.proxy.security_group_ids),
        }
    }

    fn describe(&self, i: &Inputs) -> String {
        format!(
            "the DB's security group {} admits TCP {} from {}",
            i.db_security_group_id,
            i.port,
            i.proxy_security_group_ids.join(", ")
        )
    }

    async fn check(&self, cx: &Ctx, i: &Inputs) -> Result<Found> {
        ingress::check(
            cx,
            Self::NAME,
            &i.db_security_group_id,
            i.port,
            &i.proxy_security_group_ids,
        )
        .await
    }

    async fn tag_owned(&self, cx: &Ctx, outputs: &Outputs) -> Result<()> {
        super::common::tag_owned_ec2(cx, outputs).await
    }

    async fn apply(&self, cx: &Ctx, i: &Inputs) -> Result<Outputs> {
        let description = format!("RDS Proxy to DB ({})", cx.runbook);
        ingress::apply(
            cx,
            Self::NAME,
            &i.db_security_group_id,
            i.port,
            &i.proxy_security_group_ids,
            &description,
        )
        .await
    }

    async fn adopted(&self, _: &Ctx, _: &Inputs, outputs: &Outputs) -> Result<Option<Value>> {
        Ok(ingress::adopted(outputs))
    }

    async fn rollback(&self, cx: &Ctx, i: &Inputs, before: Option<&Value>) -> Result<Undone> {
        ingress::rollback(cx, Self::NAME, &i.db_security_group_id, i.port, before).await
    }
}
