//! Recipe step 2 (first half): the proxy's security group, in the runbook's
//! VPC, with no ingress yet (later steps add the rules).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, ResourceType, SecurityGroup, Tag, TagSpecification};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::common::{TagChanges, ec2_tags, tag_changes};
use super::contract::{Actions, Ctx, Found, On, Outputs, Replacement, Resolver, StepImpl, Undone};
use crate::aws::errors::{is_dependency_violation, is_duplicate_group, is_group_not_found};
use crate::aws::{describe_error, error_code};
use crate::poll::{Backoff, Deadline, Wait};
use crate::rounds::wait_in_rounds;
use crate::runbook::Runbook;

pub struct ProxySecurityGroup;

#[derive(Serialize, Deserialize)]
pub struct Inputs {
    group_name: String,
    description: String,
    vpc_id: String,
    tags: BTreeMap<String, String>,
}

/// How long a delete keeps retrying while ENIs or rules still use the group.
const DELETE_DEADLINE: Duration = Duration::from_secs(300);
/// How long to wait for the proxy's network interfaces to go by themselves
/// after the proxy is deleted, before deleting the detached ones.
const ENI_DEADLINE: Duration = Duration::from_secs(600);

/// The network interfaces still in the group: (id, status); one look of
/// its own, the same listing as the place's rounds.
async fn interfaces(cx: &Ctx<'_>, group_id: &str) -> Result<Vec<(String, String)>> {
    let mut all = crate::rounds::list_interfaces(&cx.aws.ec2, vec![group_id.to_string()])
        .await
        .map_err(anyhow::Error::msg)?;
    Ok(all.remove(group_id).unwrap_or_default())
}

/// The book's cleanup done right: proxy ENIs linger after the proxy is
/// gone; wait for them, then delete those left detached past the deadline.
async fn clear_interfaces(cx: &Ctx<'_>, group_id: &str) -> Result<()> {
    let decide = |now: Vec<(String, String)>| {
        if now.is_empty() {
            Wait::Ready(Vec::new())
        } else if now.iter().all(|(_, status)| status == "available") {
            // Detached: nothing will remove them but us.
            Wait::Ready(now)
        } else {
            Wait::Pending(format!("{} still in use", now.len()))
        }
    };
    // One look first: usually there is nothing to wait for.
    let left = match decide(interfaces(cx, group_id).await?) {
        Wait::Ready(left) => left,
        // Then in the place's rounds, shared with every group a fleet's
        // runbooks wait on there.
        Wait::Pending(_) => {
            let look = crate::rounds::interfaces(cx.aws, group_id);
            wait_in_rounds(
                cx.bar,
                &format!("the network interfaces of {group_id} to go"),
                ENI_DEADLINE,
                &look.ticket,
                || async {
                    Ok(match look.interfaces()? {
                        Some(now) => decide(now),
                        None => Wait::Pending("not looked at yet".into()),
                    })
                },
            )
            .await?
        }
    };
    for (id, _) in left {
        cx.bar
            .set(format!("deleting leftover network interface {id}"));
        cx.aws
            .ec2
            .delete_network_interface()
            .network_interface_id(&id)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot delete network interface {id}: {}",
                    describe_error(&e)
                )
            })?;
    }
    Ok(())
}

async fn find_group(cx: &Ctx<'_>, i: &Inputs) -> Result<Option<SecurityGroup>> {
    let out = cx
        .aws
        .ec2
        .describe_security_groups()
        .filters(Filter::builder().name("vpc-id").values(&i.vpc_id).build())
        .filters(
            Filter::builder()
                .name("group-name")
                .values(&i.group_name)
                .build(),
        )
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot look up security group {} in {}: {}",
                i.group_name,
                i.vpc_id,
                describe_error(&e)
            )
        })?;
    Ok(out
        .security_groups
        .unwrap_or_default()
        .into_iter()
        .find(|g| g.group_name() == Some(i.group_name.as_str())))
}

/// The group, read once in this pass of the step: what the check found is
/// what apply acts on.
async fn find_once(cx: &Ctx<'_>, i: &Inputs) -> Result<Option<SecurityGroup>> {
    cx.read_once(group_key(i), find_group(cx, i)).await
}

/// The group as the place's listing of every group has it (a check's:
/// shared by a fleet's runbooks); the apply reads it on its own
/// ([`find_once`]) before it writes.
async fn find_listed(cx: &Ctx<'_>, i: &Inputs) -> Result<Option<SecurityGroup>> {
    let all = crate::aws::listings::security_groups(cx.aws).await?;
    Ok(all
        .values()
        .find(|g| {
            g.group_name() == Some(i.group_name.as_str()) && g.vpc_id() == Some(i.vpc_id.as_str())
        })
        .cloned())
}

fn group_key(i: &Inputs) -> String {
    format!("security group {} in {}", i.group_name, i.vpc_id)
}

/// Creates the group as the runbook says: its id, or None when one of that
/// name appeared meanwhile.
async fn create(cx: &Ctx<'_>, i: &Inputs) -> Result<Option<String>> {
    cx.bar.set(format!(
        "creating security group {} in {}",
        i.group_name, i.vpc_id
    ));
    let created = cx
        .aws
        .ec2
        .create_security_group()
        .group_name(&i.group_name)
        .description(&i.description)
        .vpc_id(&i.vpc_id)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::SecurityGroup)
                .set_tags(Some(ec2_tags(&i.tags)))
                .build(),
        )
        .send()
        .await;
    match created {
        Ok(out) => {
            let id = out
                .group_id
                .context("CreateSecurityGroup answered without a group id")?;
            Ok(Some(id))
        }
        Err(e) if is_duplicate_group(error_code(&e)) => Ok(None),
        Err(e) => anyhow::bail!(
            "cannot create security group {} in {}: {}",
            i.group_name,
            i.vpc_id,
            describe_error(&e)
        ),
    }
}

fn owned(cx: &Ctx, group: &SecurityGroup) -> bool {
    cx.claims(
        group
            .tags()
            .iter()
            .map(|t| (t.key().unwrap_or(""), t.value().unwrap_or(""))),
    )
}

/// How the group's tags must change (see [`tag_changes`]).
fn group_tags(cx: &Ctx, i: &Inputs, group: &SecurityGroup) -> TagChanges {
    let have = group.tags().iter();
    tag_changes(
        cx,
        have.map(|t| (t.key().unwrap_or(""), t.value().unwrap_or(""))),
        &i.tags,
    )
}

async fn retag(cx: &Ctx<'_>, id: &str, tags: TagChanges) -> Result<()> {
    if !tags.set.is_empty() {
        let set = ec2_tags(tags.set.iter().map(|(k, v)| (k, v)));
        cx.aws
            .ec2
            .create_tags()
            .resources(id)
            .set_tags(Some(set))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot tag {id}: {}", describe_error(&e)))?;
    }
    if !tags.remove.is_empty() {
        let keys = tags
            .remove
            .iter()
            .map(|k| Tag::builder().key(k).build())
            .collect();
        cx.aws
            .ec2
            .delete_tags()
            .resources(id)
            .set_tags(Some(keys))
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot untag {id}: {}", describe_error(&e)))?;
    }
    Ok(())
}

#[async_trait]
impl StepImpl for ProxySecurityGroup {
    type Inputs = Inputs;
    const NAME: &'static str = "proxy-security-group";
    /// A group's description cannot be changed.
    const IDENTITY: &'static [&'static str] = &["group_name", "vpc_id", "description"];
    const REPLACEMENT: Replacement = Replacement::WithProxy {
        why: "the proxy would move to the new group in place, maybe before the group admits the \
         functions and the DB admits it",
        follows: &[],
    };
    const OUTPUTS: &'static [&'static str] = &["group_id"];
    const ACTIONS: Actions = Actions {
        check: &[("ec2:DescribeSecurityGroups", On::Any)],
        apply: &[
            ("ec2:DescribeSecurityGroups", On::Any),
            ("ec2:CreateSecurityGroup", On::Any),
            ("ec2:CreateTags", On::Any),
            ("ec2:DeleteTags", On::Any),
        ],
        rollback: &[
            ("ec2:DescribeSecurityGroups", On::Any),
            // The proxy's leftover interfaces, waited on (and deleted once
            // detached) before the group.
            ("ec2:DescribeNetworkInterfaces", On::Any),
            ("ec2:DeleteNetworkInterface", On::Any),
            ("ec2:DeleteSecurityGroup", On::Any),
        ],
    };

    fn inputs(&self, rb: &Runbook, r: &mut Resolver) -> Inputs {
        Inputs {
            group_name: r.text(&rb.proxy_security_group.name),
            description: r.text(&rb.proxy_security_group.description),
            vpc_id: r.text(&rb.network.vpc_id),
            tags: rb.tags.clone(),
        }
    }

    fn describe(&self, i: &Inputs) -> String {
        format!(
            "security group {} in {}, no ingress yet",
            i.group_name, i.vpc_id
        )
    }

    async fn check(&self, cx: &Ctx, i: &Inputs) -> Result<Found> {
        let Some(group) = find_listed(cx, i).await? else {
            return Ok(Found::Missing);
        };
        let id = group.group_id().unwrap_or_default().to_string();
        if !owned(cx, &group) {
            return Ok(Found::Foreign(cx.not_ours(&format!(
                "security group {} ({id}) in {}",
                i.group_name, i.vpc_id
            ))));
        }
        if group.description() != Some(i.description.as_str()) {
            return Ok(Found::Replace(vec![format!(
                "description: {:?} -> {:?} (a security group's description cannot be changed)",
                group.description().unwrap_or_default(),
                i.description
            )]));
        }
        let tags = group_tags(cx, i, &group);
        let outputs = Outputs::from([("group_id".to_string(), id)]);
        if !tags.is_empty() {
            return Ok(Found::Update(tags.lines, outputs));
        }
        Ok(Found::Done(outputs))
    }

    async fn tag_owned(&self, cx: &Ctx, outputs: &Outputs) -> Result<()> {
        super::common::tag_owned_ec2(cx, outputs).await
    }

    async fn apply(&self, cx: &Ctx, i: &Inputs) -> Result<Outputs> {
        // The group the check found is updated, never created again (a
        // CreateSecurityGroup would need ec2:CreateSecurityGroup of a
        // day-two operator, and leave a failed call at every tag change).
        let group = match find_once(cx, i).await? {
            Some(group) => group,
            None => match create(cx, i).await? {
                Some(id) => return Ok(Outputs::from([("group_id".to_string(), id)])),
                // Made meanwhile (a run that died after the create): read
                // again, then brought to the runbook as any found one.
                None => {
                    cx.forget(&group_key(i));
                    find_once(cx, i).await?.with_context(|| {
                        format!(
                            "security group {} exists in {} but cannot be read",
                            i.group_name, i.vpc_id
                        )
                    })?
                }
            },
        };
        let id = group.group_id().unwrap_or_default().to_string();
        if !owned(cx, &group) {
            anyhow::bail!(cx.not_ours(&format!(
                "security group {} ({id}) in {}",
                i.group_name, i.vpc_id
            )));
        }
        cx.bar.set(format!(
            "updating the tags of security group {} ({id})",
            i.group_name
        ));
        retag(cx, &id, group_tags(cx, i, &group)).await?;
        cx.forget(&group_key(i));
        Ok(Outputs::from([("group_id".to_string(), id)]))
    }

    async fn rollback(&self, cx: &Ctx, i: &Inputs, _: Option<&Value>) -> Result<Undone> {
        let what = format!("security group {} in {}", i.group_name, i.vpc_id);
        let Some(group) = find_group(cx, i).await? else {
            return Ok(Undone::AlreadyGone(format!("{what} is already gone")));
        };
        if !owned(cx, &group) {
            return Ok(Undone::LeftAlone(format!(
                "{what} lacks our tag, so it is not ours to delete"
            )));
        }
        let id = group.group_id().unwrap_or_default().to_string();
        clear_interfaces(cx, &id).await?;
        let deadline = Deadline::after(DELETE_DEADLINE);
        let mut backoff = Backoff::new(Duration::from_secs(2), Duration::from_secs(20));
        loop {
            cx.bar.set(format!("deleting {what} ({id})"));
            match cx
                .aws
                .ec2
                .delete_security_group()
                .group_id(&id)
                .send()
                .await
            {
                Ok(_) => return Ok(Undone::Done(format!("deleted {what} ({id})"))),
                Err(e) if is_group_not_found(error_code(&e)) => {
                    return Ok(Undone::AlreadyGone(format!("{what} is already gone")));
                }
                // Proxy ENIs linger after the proxy is deleted: wait for them.
                Err(e) if is_dependency_violation(error_code(&e)) && !deadline.passed() => {
                    let wait = backoff.next_delay();
                    cx.bar.set(format!(
                        "{what} is still in use (network interfaces or rules); retrying in {}s",
                        wait.as_secs()
                    ));
                    crate::poll::sleep(wait).await?;
                }
                Err(e) => anyhow::bail!(
                    "cannot delete {what} ({id}): {}; if network interfaces still use it, \
                     wait for them to go and run rollback again",
                    describe_error(&e)
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_predicates() {
        assert!(is_duplicate_group(Some("InvalidGroup.Duplicate")));
        assert!(is_group_not_found(Some("InvalidGroup.NotFound")));
        assert!(is_group_not_found(Some("InvalidGroupId.NotFound")));
        assert!(is_dependency_violation(Some("DependencyViolation")));
        assert!(!is_dependency_violation(Some("UnauthorizedOperation")));
        assert!(!is_group_not_found(None));
    }

    mod mocked {
        use super::*;
        use crate::steps::mock::{Mocked, RUNBOOK, block_on};
        use aws_sdk_ec2::Client;
        use aws_sdk_ec2::error::ErrorMetadata;
        use aws_sdk_ec2::operation::delete_security_group::{
            DeleteSecurityGroupError, DeleteSecurityGroupOutput,
        };
        use aws_sdk_ec2::operation::describe_network_interfaces::DescribeNetworkInterfacesOutput;
        use aws_sdk_ec2::operation::describe_security_groups::DescribeSecurityGroupsOutput;
        use aws_smithy_mocks::mock;

        fn inputs() -> Inputs {
            Inputs {
                group_name: "g".into(),
                description: "d".into(),
                vpc_id: "vpc-1".into(),
                tags: BTreeMap::new(),
            }
        }

        fn ours() -> aws_smithy_mocks::Rule {
            mock!(Client::describe_security_groups).then_output(|| {
                DescribeSecurityGroupsOutput::builder()
                    .security_groups(
                        SecurityGroup::builder()
                            .group_name("g")
                            .group_id("sg-1")
                            .description("d")
                            .tags(
                                Tag::builder()
                                    .key(crate::runbook::OWNER_TAG)
                                    .value(RUNBOOK)
                                    .build(),
                            )
                            .build(),
                    )
                    .build()
            })
        }

        fn no_interfaces() -> aws_smithy_mocks::Rule {
            mock!(Client::describe_network_interfaces)
                .then_output(|| DescribeNetworkInterfacesOutput::builder().build())
        }

        fn in_use() -> DeleteSecurityGroupError {
            DeleteSecurityGroupError::generic(
                ErrorMetadata::builder().code("DependencyViolation").build(),
            )
        }

        #[test]
        fn dependency_violation_is_retried_until_the_group_is_free() {
            let (describe, enis) = (ours(), no_interfaces());
            let delete = mock!(Client::delete_security_group)
                .sequence()
                .error(in_use)
                .times(2)
                .output(|| DeleteSecurityGroupOutput::builder().build())
                .build();
            let m = Mocked::new(&[], &[&describe, &enis, &delete], &[]);
            let undone = block_on(StepImpl::rollback(
                &ProxySecurityGroup,
                &m.cx(),
                &inputs(),
                None,
            ))
            .unwrap();
            assert!(matches!(undone, Undone::Done(_)), "{undone:?}");
            assert_eq!(delete.num_calls(), 3);
        }

        #[test]
        fn a_group_that_stays_in_use_fails_with_what_to_do() {
            let (describe, enis) = (ours(), no_interfaces());
            let delete = mock!(Client::delete_security_group).then_error(in_use);
            let m = Mocked::new(&[], &[&describe, &enis, &delete], &[]);
            let e = block_on(StepImpl::rollback(
                &ProxySecurityGroup,
                &m.cx(),
                &inputs(),
                None,
            ))
            .unwrap_err()
            .to_string();
            assert!(
                e.contains("DependencyViolation") && e.contains("run rollback again"),
                "{e}"
            );
            assert!(delete.num_calls() > 2);
        }

        #[test]
        fn a_group_without_our_tag_is_never_deleted() {
            let describe = mock!(Client::describe_security_groups).then_output(|| {
                DescribeSecurityGroupsOutput::builder()
                    .security_groups(
                        SecurityGroup::builder()
                            .group_name("g")
                            .group_id("sg-1")
                            .build(),
                    )
                    .build()
            });
            let delete = mock!(Client::delete_security_group)
                .then_output(|| DeleteSecurityGroupOutput::builder().build());
            let m = Mocked::new(&[], &[&describe, &delete], &[]);
            let undone = block_on(StepImpl::rollback(
                &ProxySecurityGroup,
                &m.cx(),
                &inputs(),
                None,
            ))
            .unwrap();
            assert!(matches!(undone, Undone::LeftAlone(_)), "{undone:?}");
            assert_eq!(delete.num_calls(), 0);
        }
    }
}
