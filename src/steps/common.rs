//! Account reads that several steps share.

use std::collections::BTreeMap;

use anyhow::Result;
use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput;

use super::contract::Ctx;
use crate::aws::describe_error;

/// The output `key`, if set and not empty.
pub fn output(outputs: &super::contract::Outputs, key: &str) -> Option<String> {
    outputs.get(key).filter(|s| !s.is_empty()).cloned()
}

/// Our ownership tag, as `adopt --tag` puts it on what a step adopted.
pub fn owner_tag(cx: &Ctx<'_>) -> (String, String) {
    (
        crate::runbook::OWNER_TAG.to_string(),
        cx.runbook.to_string(),
    )
}

/// Tags the security group and rules a step adopted (`group_id`,
/// `rule_ids`) with our ownership tag (`adopt --tag`).
pub async fn tag_owned_ec2(cx: &Ctx<'_>, outputs: &super::contract::Outputs) -> Result<()> {
    let ids: Vec<String> = ["group_id", "rule_ids"]
        .iter()
        .filter_map(|key| output(outputs, key))
        .flat_map(|s| s.split(',').map(String::from).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let (k, v) = owner_tag(cx);
    let sent = cx.aws.ec2.create_tags().set_resources(Some(ids.clone()));
    sent.set_tags(Some(ec2_tags([(&k, &v)])))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot tag {}: {}", ids.join(", "), describe_error(&e)))?;
    Ok(())
}

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

pub use crate::aws::decode_policy;

/// Key-value pairs as IAM's tags (a role's, a policy's).
pub fn iam_tags<'a>(
    pairs: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Result<Vec<aws_sdk_iam::types::Tag>> {
    pairs
        .into_iter()
        .map(|(k, v)| Ok(aws_sdk_iam::types::Tag::builder().key(k).value(v).build()?))
        .collect()
}

/// Key-value pairs as RDS's tags (a proxy's).
pub fn rds_tags<'a>(
    pairs: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Vec<aws_sdk_rds::types::Tag> {
    pairs
        .into_iter()
        .map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(k).value(v).build())
        .collect()
}

/// Key-value pairs as EC2's tags (a security group's).
pub fn ec2_tags<'a>(
    pairs: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Vec<aws_sdk_ec2::types::Tag> {
    pairs
        .into_iter()
        .map(|(k, v)| aws_sdk_ec2::types::Tag::builder().key(k).value(v).build())
        .collect()
}

/// How a resource's tags must change to carry the runbook's `tags`.
#[derive(Debug, Default, PartialEq)]
pub struct TagChanges {
    /// Missing, or with another value.
    pub set: Vec<(String, String)>,
    /// Set by an earlier run and no longer in the runbook. A tag someone
    /// added by hand is left alone, and our ownership tag is never removed.
    pub remove: Vec<String>,
    /// `tag K: old -> new`, for the plan.
    pub lines: Vec<String>,
}

impl TagChanges {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }
}

/// What to change on tags `have` so the resource carries `want`, removing
/// only tags the step's last applied inputs asked for (see [`changes_of`]).
/// What this state adopted untagged gets the runbook's tags but not our
/// ownership tag: only `adopt --tag` puts that on.
pub fn tag_changes<'t>(
    cx: &Ctx<'_>,
    have: impl Iterator<Item = (&'t str, &'t str)>,
    want: &BTreeMap<String, String>,
) -> TagChanges {
    let earlier: Option<BTreeMap<String, String>> = cx
        .recorded
        .and_then(|r| r.inputs.as_ref())
        .and_then(|i| i.get("tags"))
        .and_then(|t| serde_json::from_value(t.clone()).ok());
    let have: Vec<(&str, &str)> = have.collect();
    let untagged = !have.iter().any(|(k, _)| *k == crate::runbook::OWNER_TAG);
    let mut want = want.clone();
    if cx.adopted && untagged {
        want.remove(crate::runbook::OWNER_TAG);
    }
    changes_of(have.into_iter(), &want, earlier.as_ref())
}

/// What to change on tags `have` so the resource carries `want`; `earlier`
/// is what the last applied inputs asked for (the tags ours to remove).
fn changes_of<'t>(
    have: impl Iterator<Item = (&'t str, &'t str)>,
    want: &BTreeMap<String, String>,
    earlier: Option<&BTreeMap<String, String>>,
) -> TagChanges {
    let have: BTreeMap<&str, &str> = have.collect();
    let mut out = TagChanges::default();
    for (k, v) in want {
        let now = have.get(k.as_str()).copied();
        if now != Some(v.as_str()) {
            out.set.push((k.clone(), v.clone()));
            out.lines
                .push(format!("tag {k}: {} -> {v}", now.unwrap_or("(none)")));
        }
    }
    for k in earlier.into_iter().flat_map(|e| e.keys()) {
        if want.contains_key(k) || k == crate::runbook::OWNER_TAG {
            continue;
        }
        if let Some(now) = have.get(k.as_str()) {
            out.remove.push(k.clone());
            out.lines.push(format!("tag {k}: {now} -> (removed)"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn tags_are_set_and_only_ours_removed() {
        let owner = crate::runbook::OWNER_TAG;
        let have = [(owner, "rb"), ("team", "a"), ("old", "x"), ("by-hand", "y")];
        let want = map(&[(owner, "rb"), ("team", "b"), ("new", "n")]);
        let earlier = map(&[(owner, "rb"), ("team", "a"), ("old", "x"), ("gone", "z")]);
        let c = changes_of(have.iter().copied(), &want, Some(&earlier));
        assert_eq!(
            c.set,
            vec![("new".into(), "n".into()), ("team".into(), "b".into())]
        );
        assert_eq!(c.remove, vec!["old".to_string()], "not by-hand, not gone");
        assert_eq!(
            c.lines,
            vec![
                "tag new: (none) -> n",
                "tag team: a -> b",
                "tag old: x -> (removed)"
            ]
        );
        let same = changes_of(have.iter().copied(), &map(&[(owner, "rb")]), None);
        assert!(same.is_empty(), "{same:?}");
    }
}
