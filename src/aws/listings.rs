//! The account's listings that a place's checks share: one call (paged to
//! the end) answers every runbook of a fleet, and every step of one
//! runbook, for a few seconds (`rounds::shared`). A check reads its
//! resource out of them; a write never rests on them: the step reads the
//! resource it changes on its own right before (its apply's read).
//!
//! - every Lambda function's configuration, environment included
//!   (ListFunctions);
//! - every security group (DescribeSecurityGroups, no filter);
//! - every security group rule (DescribeSecurityGroupRules, no filter);
//! - every IAM role (trust policy, inline policies, attached policies,
//!   tags) and every customer-managed policy (its versions' documents):
//!   GetAccountAuthorizationDetails;
//! - every secret's ARN and KMS key (ListSecrets);
//! - every CloudWatch metric alarm (DescribeAlarms), every DB instance
//!   (DescribeDBInstances) and every event source mapping
//!   (ListEventSourceMappings): the alarms step's check.
//!
//! A page that AWS throttles is asked again after a growing pause (on top
//! of the SDK's own retries): the place slows down, no runbook fails.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
use aws_sdk_cloudwatch::types::MetricAlarm;
use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::operation::describe_security_group_rules::DescribeSecurityGroupRulesOutput;
use aws_sdk_ec2::operation::describe_security_groups::DescribeSecurityGroupsOutput;
use aws_sdk_ec2::types::{SecurityGroup, SecurityGroupRule};
use aws_sdk_iam::operation::get_account_authorization_details::GetAccountAuthorizationDetailsOutput;
use aws_sdk_lambda::operation::list_event_source_mappings::ListEventSourceMappingsOutput;
use aws_sdk_lambda::operation::list_functions::ListFunctionsOutput;
use aws_sdk_lambda::types::{EventSourceMappingConfiguration, FunctionConfiguration};
use aws_sdk_rds::operation::describe_db_instances::DescribeDbInstancesOutput;
use aws_sdk_rds::types::DbInstance;
use aws_sdk_secretsmanager::operation::list_secrets::ListSecretsOutput;

use super::{Aws, describe_error};

/// Every function of the place, by name.
pub type Functions = Arc<BTreeMap<String, FunctionConfiguration>>;
/// Every security group of the place, by id.
pub type Groups = Arc<BTreeMap<String, SecurityGroup>>;
/// Every security group rule of the place, by the group it belongs to.
pub type Rules = Arc<BTreeMap<String, Vec<SecurityGroupRule>>>;

/// The account's IAM roles by name and customer-managed policies by ARN.
#[derive(Default)]
pub struct IamDetails {
    pub roles: BTreeMap<String, aws_sdk_iam::types::RoleDetail>,
    pub policies: BTreeMap<String, aws_sdk_iam::types::ManagedPolicyDetail>,
}

impl IamDetails {
    /// The default version's document of the policy `arn`, decoded.
    pub fn policy_document(&self, arn: &str) -> Option<serde_json::Value> {
        self.policies
            .get(arn)?
            .policy_version_list()
            .iter()
            .find(|v| v.is_default_version())
            .and_then(|v| v.document())
            .and_then(super::decode_policy)
    }

    /// Whether the policy `arn` is attached to the role `role`.
    pub fn attached(&self, role: &str, arn: &str) -> bool {
        self.roles.get(role).is_some_and(|r| {
            r.attached_managed_policies()
                .iter()
                .any(|p| p.policy_arn() == Some(arn))
        })
    }

    /// The roles the policy `arn` is attached to.
    pub fn roles_with(&self, arn: &str) -> Vec<String> {
        self.roles
            .keys()
            .filter(|r| self.attached(r, arn))
            .cloned()
            .collect()
    }
}

/// How often a throttled page is asked again before the listing fails.
const THROTTLED_TRIES: u32 = 8;

/// Whether an error code is AWS saying "slow down".
pub fn is_throttled(code: Option<&str>) -> bool {
    matches!(
        code,
        Some(
            "Throttling"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "TooManyRequestsException"
                | "RequestThrottled"
                | "RequestThrottledException"
                | "SlowDown"
        )
    )
}

/// One page, asked again while AWS throttles it: 0.5 s, 1 s, 2 s, ... (at
/// most 8 s) apart.
async fn page<T, E, R, F, Fut>(mut ask: F) -> std::result::Result<T, SdkError<E, R>>
where
    E: ProvideErrorMetadata,
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, SdkError<E, R>>>,
{
    let mut pause = Duration::from_millis(500);
    let mut tries = 1;
    loop {
        match ask().await {
            Err(e) if tries < THROTTLED_TRIES && is_throttled(super::error_code(&e)) => {
                tracing::debug!("a listing was throttled: again in {pause:?}");
                tokio::time::sleep(crate::poll::scaled(pause)).await;
                pause = (pause * 2).min(Duration::from_secs(8));
                tries += 1;
            }
            other => return other,
        }
    }
}

/// Every item of a paged listing, `what` (as messages name it) made by
/// the IAM action `allow`: `ask(token)` asks one page (again while AWS
/// throttles it), `take` keeps a page's items and gives the next page's
/// token.
async fn every<O, E, F, Fut>(
    what: &str,
    allow: &str,
    mut ask: F,
    mut take: impl FnMut(&O) -> Option<String>,
) -> Result<()>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = std::result::Result<O, SdkError<E, HttpResponse>>>,
{
    let mut token: Option<String> = None;
    loop {
        let out = page(|| ask(token.clone())).await.map_err(|e| {
            anyhow::anyhow!("cannot list {what}: {} (allow {allow})", describe_error(&e))
        })?;
        token = take(&out).filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(());
        }
    }
}

/// Every Lambda function of the place (shared for a few seconds).
pub async fn functions(aws: &Aws) -> Result<Functions> {
    let read = async {
        let mut all = BTreeMap::new();
        every(
            "the Lambda functions",
            "lambda:ListFunctions",
            |m| aws.lambda.list_functions().set_marker(m).send(),
            |out: &ListFunctionsOutput| {
                for f in out.functions() {
                    all.insert(f.function_name().unwrap_or_default().to_string(), f.clone());
                }
                out.next_marker().map(String::from)
            },
        )
        .await?;
        Ok(Arc::new(all))
    };
    crate::rounds::shared(aws, "every Lambda function".into(), read).await
}

/// Every security group of the place (shared for a few seconds).
pub async fn security_groups(aws: &Aws) -> Result<Groups> {
    let read = async {
        let mut all = BTreeMap::new();
        every(
            "the security groups",
            "ec2:DescribeSecurityGroups",
            |t| {
                let call = aws.ec2.describe_security_groups().set_next_token(t);
                call.max_results(1000).send()
            },
            |out: &DescribeSecurityGroupsOutput| {
                for g in out.security_groups() {
                    all.insert(g.group_id().unwrap_or_default().to_string(), g.clone());
                }
                out.next_token().map(String::from)
            },
        )
        .await?;
        Ok(Arc::new(all))
    };
    crate::rounds::shared(aws, "every security group".into(), read).await
}

/// Every security group rule of the place, by group (shared for a few
/// seconds).
pub async fn group_rules(aws: &Aws) -> Result<Rules> {
    let read = async {
        let mut all: BTreeMap<String, Vec<SecurityGroupRule>> = BTreeMap::new();
        every(
            "the security group rules",
            "ec2:DescribeSecurityGroupRules",
            |t| {
                let call = aws.ec2.describe_security_group_rules().set_next_token(t);
                call.max_results(1000).send()
            },
            |out: &DescribeSecurityGroupRulesOutput| {
                for r in out.security_group_rules() {
                    let group = r.group_id().unwrap_or_default().to_string();
                    all.entry(group).or_default().push(r.clone());
                }
                out.next_token().map(String::from)
            },
        )
        .await?;
        Ok(Arc::new(all))
    };
    crate::rounds::shared(aws, "every security group rule".into(), read).await
}

/// Every IAM role and customer-managed policy of the account (shared for
/// a few seconds by the place's runbooks).
pub async fn iam(aws: &Aws) -> Result<Arc<IamDetails>> {
    use aws_sdk_iam::types::EntityType;
    let read = async {
        let mut all = IamDetails::default();
        every(
            "the IAM roles and policies",
            "iam:GetAccountAuthorizationDetails",
            |m| {
                let call = aws.iam.get_account_authorization_details();
                let call = call.filter(EntityType::Role);
                // 1000 a page, IAM's most (100 by default).
                call.filter(EntityType::LocalManagedPolicy)
                    .max_items(1000)
                    .set_marker(m)
                    .send()
            },
            |out: &GetAccountAuthorizationDetailsOutput| {
                for r in out.role_detail_list() {
                    all.roles
                        .insert(r.role_name().unwrap_or_default().to_string(), r.clone());
                }
                for p in out.policies() {
                    all.policies
                        .insert(p.arn().unwrap_or_default().to_string(), p.clone());
                }
                out.marker()
                    .filter(|_| out.is_truncated())
                    .map(String::from)
            },
        )
        .await?;
        Ok(Arc::new(all))
    };
    crate::rounds::shared(aws, "every IAM role and policy".into(), read).await
}

/// Every secret of the place by ARN: its KMS key id, if any (shared for a
/// few seconds).
pub async fn secrets(aws: &Aws) -> Result<Arc<BTreeMap<String, Option<String>>>> {
    let read = async {
        let mut all = BTreeMap::new();
        every(
            "the secrets",
            "secretsmanager:ListSecrets",
            |t| {
                let call = aws.secrets.list_secrets().set_next_token(t);
                call.max_results(100).send()
            },
            |out: &ListSecretsOutput| {
                for s in out.secret_list() {
                    all.insert(
                        s.arn().unwrap_or_default().to_string(),
                        s.kms_key_id().map(String::from),
                    );
                }
                out.next_token().map(String::from)
            },
        )
        .await?;
        Ok(Arc::new(all))
    };
    crate::rounds::shared(aws, "every secret".into(), read).await
}

/// Every CloudWatch metric alarm of the place, by name (shared for a few
/// seconds).
pub async fn alarms(aws: &Aws) -> Result<Arc<BTreeMap<String, MetricAlarm>>> {
    let read = async {
        let mut all = BTreeMap::new();
        every(
            "the CloudWatch alarms",
            "cloudwatch:DescribeAlarms",
            |t| {
                let call = aws.cloudwatch.describe_alarms().set_next_token(t);
                call.max_records(100).send()
            },
            |out: &DescribeAlarmsOutput| {
                for a in out.metric_alarms() {
                    all.insert(a.alarm_name().unwrap_or_default().to_string(), a.clone());
                }
                out.next_token().map(String::from)
            },
        )
        .await?;
        Ok(Arc::new(all))
    };
    crate::rounds::shared(aws, "every CloudWatch alarm".into(), read).await
}

/// Every RDS DB instance of the place, by identifier (shared for a few
/// seconds).
pub async fn db_instances(aws: &Aws) -> Result<Arc<BTreeMap<String, DbInstance>>> {
    let read = async {
        let mut all = BTreeMap::new();
        every(
            "the DB instances",
            "rds:DescribeDBInstances",
            |m| {
                let call = aws.rds.describe_db_instances().set_marker(m);
                call.max_records(100).send()
            },
            |out: &DescribeDbInstancesOutput| {
                for d in out.db_instances() {
                    let id = d.db_instance_identifier().unwrap_or_default();
                    all.insert(id.to_string(), d.clone());
                }
                out.marker().map(String::from)
            },
        )
        .await?;
        Ok(Arc::new(all))
    };
    crate::rounds::shared(aws, "every DB instance".into(), read).await
}

/// Every Lambda event source mapping of the place, by the name of the
/// function it invokes (shared for a few seconds).
pub async fn event_sources(
    aws: &Aws,
) -> Result<Arc<BTreeMap<String, Vec<EventSourceMappingConfiguration>>>> {
    let read = async {
        let mut all: BTreeMap<String, Vec<EventSourceMappingConfiguration>> = BTreeMap::new();
        every(
            "the Lambda event source mappings",
            "lambda:ListEventSourceMappings",
            |m| {
                let call = aws.lambda.list_event_source_mappings().set_marker(m);
                call.max_items(100).send()
            },
            |out: &ListEventSourceMappingsOutput| {
                for e in out.event_source_mappings() {
                    // arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]
                    let name = e.function_arn().and_then(|a| a.split(':').nth(6));
                    all.entry(name.unwrap_or_default().to_string())
                        .or_default()
                        .push(e.clone());
                }
                out.next_marker().map(String::from)
            },
        )
        .await?;
        Ok(Arc::new(all))
    };
    crate::rounds::shared(aws, "every event source mapping".into(), read).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::mock::{Mocked, block_on};
    use aws_sdk_ec2::Client;
    use aws_sdk_ec2::error::ErrorMetadata;
    use aws_sdk_ec2::operation::describe_security_groups::{
        DescribeSecurityGroupsError, DescribeSecurityGroupsOutput,
    };
    use aws_smithy_mocks::mock;

    #[test]
    fn throttling_codes() {
        assert!(is_throttled(Some("RequestLimitExceeded")));
        assert!(is_throttled(Some("Throttling")));
        assert!(!is_throttled(Some("UnauthorizedOperation")));
        assert!(!is_throttled(None));
    }

    #[test]
    fn a_listing_pages_to_the_end_and_a_throttled_page_is_asked_again() {
        let group = |id: &str| SecurityGroup::builder().group_id(id).build();
        let first = mock!(Client::describe_security_groups)
            .match_requests(|r| r.next_token().is_none())
            .then_output(move || {
                DescribeSecurityGroupsOutput::builder()
                    .security_groups(group("sg-1"))
                    .next_token("two")
                    .build()
            });
        let slow_down = || {
            DescribeSecurityGroupsError::generic(
                ErrorMetadata::builder()
                    .code("RequestLimitExceeded")
                    .build(),
            )
        };
        let second = mock!(Client::describe_security_groups)
            .match_requests(|r| r.next_token() == Some("two"))
            .sequence()
            .error(slow_down)
            .times(2)
            .output(move || {
                DescribeSecurityGroupsOutput::builder()
                    .security_groups(group("sg-2"))
                    .build()
            })
            .build();
        let m = Mocked::new(&[], &[&first, &second], &[]);
        let all = block_on(security_groups(&m.aws)).unwrap();
        assert_eq!(
            all.keys().collect::<Vec<_>>(),
            ["sg-1", "sg-2"],
            "both pages"
        );
        assert_eq!(second.num_calls(), 3, "throttled twice, then answered");
        // Shared: asked again at once, no call.
        let again = block_on(security_groups(&m.aws)).unwrap();
        assert_eq!(again.len(), 2);
        assert_eq!(first.num_calls(), 1);
    }
}
