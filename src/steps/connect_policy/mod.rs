//! Recipe steps 3 and 4: fill the connect-policy template (region, account,
//! the proxy's `prx-` id, the DB user), create the customer-managed policy
//! (or, when ours and the document differs, a new default version, pruning
//! old versions to stay within five) and attach it to each target Lambda's
//! execution role.
//!
//! The step (this file) stands on: `document.rs` (the documents, worked
//! out without a call), `diff.rs` (the other decisions made without a call)
//! and `calls.rs` (the calls to IAM); tests in `tests.rs`.

mod calls;
mod diff;
mod document;
#[cfg(test)]
mod tests;

use anyhow::Result;
use async_trait::async_trait;
use futures_util::future::try_join_all;
use serde_json::Value;

use super::common::iam_tags;
use super::contract::{Actions, Ctx, Found, On, Outputs, Resolver, StepImpl, Undone};
use crate::aws::errors::is_no_such_entity;
use crate::aws::{describe_error, error_code};
use crate::runbook::Runbook;
use calls::{
    delete_version, detach, documents, find, find_listed, find_once, roles, update, versions,
};
use diff::{Wiring, differences, policy_arn};
use document::{Inputs, document};

pub struct ConnectPolicy;

#[async_trait]
impl StepImpl for ConnectPolicy {
    type Inputs = Inputs;
    const NAME: &'static str = "connect-policy";
    const IDENTITY: &'static [&'static str] = &["policy_name"];
    const ACTS_ON_LAMBDAS: bool = true;
    const OUTPUTS: &'static [&'static str] = &["arn", "roles"];
    const ACTIONS: Actions = Actions {
        check: &[
            ("sts:GetCallerIdentity", On::Any),
            // Its check reads the place's listings of every role, policy and
            // function.
            ("iam:GetAccountAuthorizationDetails", On::Any),
            ("lambda:ListFunctions", On::Any),
            ("iam:GetPolicy", On::ConnectPolicy),
            ("iam:GetPolicyVersion", On::ConnectPolicy),
            ("iam:ListPolicyTags", On::ConnectPolicy),
            ("iam:ListEntitiesForPolicy", On::ConnectPolicy),
            ("lambda:GetFunctionConfiguration", On::Functions),
            ("iam:ListAttachedRolePolicies", On::FunctionRoles),
            // The ARN of a role that leaves (a function removed).
            ("iam:GetRole", On::FunctionRoles),
        ],
        apply: &[
            ("sts:GetCallerIdentity", On::Any),
            ("iam:GetPolicy", On::ConnectPolicy),
            ("iam:GetPolicyVersion", On::ConnectPolicy),
            ("iam:ListPolicyTags", On::ConnectPolicy),
            ("iam:ListEntitiesForPolicy", On::ConnectPolicy),
            ("lambda:GetFunctionConfiguration", On::Functions),
            ("iam:ListAttachedRolePolicies", On::FunctionRoles),
            ("iam:GetRole", On::FunctionRoles),
            ("iam:CreatePolicy", On::ConnectPolicy),
            ("iam:TagPolicy", On::ConnectPolicy),
            ("iam:UntagPolicy", On::ConnectPolicy),
            ("iam:ListPolicyVersions", On::ConnectPolicy),
            ("iam:DeletePolicyVersion", On::ConnectPolicy),
            ("iam:CreatePolicyVersion", On::ConnectPolicy),
            ("iam:AttachRolePolicy", On::ConnectPolicyHolders),
            ("iam:DetachRolePolicy", On::ConnectPolicyHolders),
        ],
        rollback: &[
            ("sts:GetCallerIdentity", On::Any),
            ("iam:GetPolicy", On::ConnectPolicy),
            ("iam:GetPolicyVersion", On::ConnectPolicy),
            ("iam:ListPolicyTags", On::ConnectPolicy),
            ("iam:ListEntitiesForPolicy", On::ConnectPolicy),
            ("iam:ListPolicyVersions", On::ConnectPolicy),
            ("iam:DeletePolicyVersion", On::ConnectPolicy),
            ("iam:DeletePolicy", On::ConnectPolicy),
            ("iam:DetachRolePolicy", On::ConnectPolicyHolders),
            ("iam:DetachUserPolicy", On::ConnectPolicyHolders),
            ("iam:DetachGroupPolicy", On::ConnectPolicyHolders),
        ],
    };

    fn inputs(&self, rb: &Runbook, r: &mut Resolver) -> Inputs {
        Inputs {
            policy_name: r.text(&rb.connect_policy.name),
            template: rb.connect_policy.template.clone(),
            proxy_id: r.output("proxy", "id"),
            db_user: r.text(&rb.connect_policy.db_user),
            functions: rb
                .lambdas
                .iter()
                .map(|l| r.text(&l.function_name))
                .collect(),
            users: rb
                .lambdas
                .iter()
                .filter_map(|l| Some((r.text(&l.function_name), l.db_user.clone()?)))
                .collect(),
            tags: rb.tags.clone(),
        }
    }

    fn describe(&self, i: &Inputs) -> String {
        let by_user = i.by_user();
        if by_user.len() <= 1 {
            let user = by_user.keys().next().copied().unwrap_or(&i.db_user);
            return format!(
                "IAM policy {} (rds-db:connect to {} as {user}) attached to the roles of {}",
                i.policy_name,
                i.proxy_id,
                i.functions.join(", ")
            );
        }
        let each: Vec<String> = by_user
            .iter()
            .map(|(user, fs)| format!("{} as {user}", fs.join(", ")))
            .collect();
        format!(
            "IAM policy {} (rds-db:connect to {}: {}, each role its own user) attached to their \
             roles",
            i.policy_name,
            i.proxy_id,
            each.join("; ")
        )
    }

    async fn check(&self, cx: &Ctx, i: &Inputs) -> Result<Found> {
        let account = cx.aws.account_id().await?;
        let arn = policy_arn(account, &i.policy_name);
        // The policy, and where it is attached, read at once.
        let (found, wiring) =
            tokio::try_join!(find_listed(cx, &arn), Wiring::read_listed(cx, i, &arn))?;
        let Some(found) = found else {
            return Ok(Found::Missing);
        };
        if !found.ours {
            return Ok(Found::Foreign(cx.not_ours(&format!("IAM policy {arn}"))));
        }
        let docs = documents(cx, i, &found, &wiring).await?;
        let diffs = differences(cx, i, &found, &docs, &wiring);
        let outputs = Outputs::from([
            ("arn".to_string(), arn),
            ("roles".to_string(), wiring.roles.join(",")),
        ]);
        if !diffs.is_empty() {
            return Ok(Found::Update(diffs, outputs));
        }
        Ok(Found::Done(outputs))
    }

    async fn details(&self, cx: &Ctx, i: &Inputs) -> Result<Vec<String>> {
        let account = cx.aws.account_id().await?;
        let (arns, roles) = roles(cx, &i.functions).await?;
        Ok(vec![
            format!(
                "policy document: {}",
                document(i, &cx.aws.region, account, &arns)?
            ),
            format!("attached to: {}", roles.join(", ")),
        ])
    }

    async fn tag_owned(&self, cx: &Ctx, outputs: &Outputs) -> Result<()> {
        let Some(arn) = super::common::output(outputs, "arn") else {
            return Ok(());
        };
        let (k, v) = super::common::owner_tag(cx);
        let tags = iam_tags([(&k, &v)])?;
        let sent = cx
            .aws
            .iam
            .tag_policy()
            .policy_arn(&arn)
            .set_tags(Some(tags));
        let sent = sent.send();
        sent.await.map_err(|e| {
            anyhow::anyhow!(
                "cannot tag IAM policy {arn}: {}",
                crate::aws::describe_error(&e)
            )
        })?;
        Ok(())
    }

    async fn apply(&self, cx: &Ctx, i: &Inputs) -> Result<Outputs> {
        let account = cx.aws.account_id().await?;
        let arn = policy_arn(account, &i.policy_name);
        let wiring = Wiring::read(cx, i, &arn).await?;
        match find_once(cx, &arn).await? {
            None => {
                let want = document(i, &cx.aws.region, account, &wiring.arns)?;
                cx.bar.set(format!("creating IAM policy {}", i.policy_name));
                let tags = iam_tags(&i.tags)?;
                cx.aws
                    .iam
                    .create_policy()
                    .policy_name(&i.policy_name)
                    .policy_document(want.to_string())
                    .description(
                        "rds-db:connect through the RDS Proxy, created by rds-proxy-runbook",
                    )
                    .set_tags(Some(tags))
                    .send()
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "cannot create IAM policy {}: {}",
                            i.policy_name,
                            describe_error(&e)
                        )
                    })?;
            }
            Some(f) if !f.ours => anyhow::bail!(cx.not_ours(&format!("IAM policy {arn}"))),
            Some(f) => {
                let docs = documents(cx, i, &f, &wiring).await?;
                // Removals wait for the run's last pass: a function leaving
                // keeps its policy until its variable is put back, one
                // moving keeps its old grants until every function moved.
                let waiting = docs.during != docs.want || !wiring.detach.is_empty();
                if waiting && cx.may_remove(Self::NAME) {
                    // Detached first: the narrowed document never reaches a
                    // role that is leaving.
                    for role in &wiring.detach {
                        detach(cx, &arn, role).await?;
                    }
                    update(cx, i, &arn, &f, &docs.want).await?;
                } else {
                    update(cx, i, &arn, &f, &docs.during).await?;
                }
            }
        }
        // Attached once the document is written: a role joining never
        // meets the old one's grants for everyone.
        try_join_all(
            wiring
                .roles
                .iter()
                .zip(&wiring.attached)
                .map(|(role, attached)| {
                    let arn = &arn;
                    async move {
                        if *attached {
                            return Ok(());
                        }
                        cx.bar
                            .set(format!("attaching {} to role {role}", i.policy_name));
                        cx.aws
                            .iam
                            .attach_role_policy()
                            .role_name(role)
                            .policy_arn(arn)
                            .send()
                            .await
                            .map(|_| ())
                            .map_err(|e| {
                                anyhow::anyhow!(
                                    "cannot attach {arn} to role {role}: {}",
                                    describe_error(&e)
                                )
                            })
                    }
                }),
        )
        .await?;
        Ok(Outputs::from([
            ("arn".to_string(), arn),
            ("roles".to_string(), wiring.roles.join(",")),
        ]))
    }

    async fn rollback(&self, cx: &Ctx, i: &Inputs, _: Option<&Value>) -> Result<Undone> {
        let account = cx.aws.account_id().await?;
        let arn = policy_arn(account, &i.policy_name);
        let Some(found) = find(cx, &arn).await? else {
            return Ok(Undone::AlreadyGone(format!(
                "IAM policy {arn} is already gone"
            )));
        };
        if !found.ours {
            return Ok(Undone::LeftAlone(format!(
                "IAM policy {arn} lacks our tag, so it is not ours to delete"
            )));
        }
        // A policy can only be deleted once detached and alone in its
        // versions; it is ours, so every attachment of it is too.
        let entities = cx
            .aws
            .iam
            .list_entities_for_policy()
            .policy_arn(&arn)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot list what uses {arn}: {}", describe_error(&e)))?;
        for role in entities.policy_roles() {
            detach(cx, &arn, role.role_name().unwrap_or_default()).await?;
        }
        for user in entities.policy_users() {
            let name = user.user_name().unwrap_or_default();
            cx.aws
                .iam
                .detach_user_policy()
                .user_name(name)
                .policy_arn(&arn)
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot detach {arn} from user {name}: {}",
                        describe_error(&e)
                    )
                })?;
        }
        for group in entities.policy_groups() {
            let name = group.group_name().unwrap_or_default();
            cx.aws
                .iam
                .detach_group_policy()
                .group_name(name)
                .policy_arn(&arn)
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot detach {arn} from group {name}: {}",
                        describe_error(&e)
                    )
                })?;
        }
        for v in versions(cx, &arn)
            .await?
            .iter()
            .filter(|v| !v.is_default_version())
        {
            delete_version(cx, &arn, v.version_id().unwrap_or_default()).await?;
        }
        cx.bar.set(format!("deleting IAM policy {arn}"));
        match cx.aws.iam.delete_policy().policy_arn(&arn).send().await {
            Ok(_) => Ok(Undone::Done(format!(
                "detached and deleted IAM policy {arn}"
            ))),
            Err(e) if is_no_such_entity(error_code(&e)) => Ok(Undone::AlreadyGone(format!(
                "IAM policy {arn} is already gone"
            ))),
            Err(e) => anyhow::bail!("cannot delete IAM policy {arn}: {}", describe_error(&e)),
        }
    }
}
