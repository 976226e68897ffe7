//! Ingress rules, shared by `db-ingress` and `lambda-ingress`: TCP on one
//! port into a security group from other security groups. Each rule we add
//! carries our tag, so rollback revokes exactly those and never a rule that
//! was there before the run.

use anyhow::{Context, Result};
use aws_sdk_ec2::types::{
    Filter, IpPermission, ResourceType, SecurityGroupRule, Tag, TagSpecification, UserIdGroupPair,
};

use super::contract::{Ctx, Found, Outputs, Undone};
use crate::aws::errors::{is_duplicate_rule, is_rule_gone};
use crate::aws::{describe_error, error_code};

/// The ingress rules of a group (empty if the group is gone).
async fn rules_of(cx: &Ctx<'_>, group_id: &str) -> Result<Vec<SecurityGroupRule>> {
    let out = cx
        .aws
        .ec2
        .describe_security_group_rules()
        .filters(Filter::builder().name("group-id").values(group_id).build())
        .send()
        .await;
    match out {
        Ok(o) => Ok(o
            .security_group_rules
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.is_egress() == Some(false) && r.group_id() == Some(group_id))
            .collect()),
        Err(e) if is_rule_gone(error_code(&e)) => Ok(Vec::new()),
        Err(e) => anyhow::bail!(
            "cannot read the rules of security group {group_id}: {}",
            describe_error(&e)
        ),
    }
}

/// The rules as this pass of the step first read them (its check's).
async fn rules_once(cx: &Ctx<'_>, group_id: &str) -> Result<Vec<SecurityGroupRule>> {
    cx.read_once(format!("rules of {group_id}"), rules_of(cx, group_id))
        .await
}

/// The ingress rules of a group as the place's listing of every rule has
/// them (a check's: shared by a fleet's runbooks); the apply reads the
/// group's rules on its own ([`rules_once`]) before it writes.
async fn listed_rules(cx: &Ctx<'_>, group_id: &str) -> Result<Vec<SecurityGroupRule>> {
    let all = crate::aws::listings::group_rules(cx.aws).await?;
    Ok(all
        .get(group_id)
        .map(|rules| {
            rules
                .iter()
                .filter(|r| r.is_egress() == Some(false))
                .cloned()
                .collect()
        })
        .unwrap_or_default())
}

/// Whether `rule` admits TCP `port` from `source`.
pub fn admits(rule: &SecurityGroupRule, port: u16, source: &str) -> bool {
    let port = i32::from(port);
    matches!(rule.ip_protocol(), Some("tcp" | "6"))
        && rule.from_port().is_some_and(|p| p <= port)
        && rule.to_port().is_some_and(|p| p >= port)
        && rule.referenced_group_info().and_then(|g| g.group_id()) == Some(source)
}

fn ours(cx: &Ctx, rule: &SecurityGroupRule) -> bool {
    cx.owns(
        rule.tags()
            .iter()
            .map(|t| (t.key().unwrap_or(""), t.value().unwrap_or(""))),
    )
}

/// The tag that says which step added a rule (the ownership tag says which
/// runbook): an update revokes only its own step's rules.
const STEP_TAG: &str = "rds-proxy-runbook:step";

/// Our rules that `step` added and no longer wants: another port, or a
/// source no longer listed. So a removed function's rule is revoked only
/// when no remaining function shares its security group: the group is
/// still among the sources (docs/updates.md). A rule of ours from before
/// rules carried the step tag is never taken for one.
fn stale<'r>(
    cx: &Ctx,
    rules: &'r [SecurityGroupRule],
    step: &str,
    port: u16,
    sources: &[String],
) -> Vec<&'r SecurityGroupRule> {
    rules
        .iter()
        .filter(|r| added_by(cx, r, step))
        .filter(|r| !sources.iter().any(|s| admits(r, port, s)))
        .collect()
}

/// Whether `step` of this runbook added the rule (both our tags).
fn added_by(cx: &Ctx, rule: &SecurityGroupRule, step: &str) -> bool {
    ours(cx, rule)
        && rule
            .tags()
            .iter()
            .any(|t| t.key() == Some(STEP_TAG) && t.value() == Some(step))
}

fn source_of(rule: &SecurityGroupRule) -> &str {
    rule.referenced_group_info()
        .and_then(|g| g.group_id())
        .unwrap_or("?")
}

/// Done when every source is admitted (by our rule or one that was there)
/// and no rule `step` added is left that the runbook no longer wants. Once
/// applied, what differs is an update: a source to admit (a function added,
/// or a rule deleted by hand), a rule of ours to revoke.
pub async fn check(
    cx: &Ctx<'_>,
    step: &str,
    group_id: &str,
    port: u16,
    sources: &[String],
) -> Result<Found> {
    let rules = listed_rules(cx, group_id).await?;
    let missing: Vec<&String> = sources
        .iter()
        .filter(|s| !rules.iter().any(|r| admits(r, port, s)))
        .collect();
    let stale = stale(cx, &rules, step, port, sources);
    let applied = cx
        .recorded
        .is_some_and(|r| r.status == crate::state::Status::Applied);
    if missing.is_empty() && stale.is_empty() {
        Ok(Found::Done(outputs(&rules, port, sources)))
    } else if applied || !stale.is_empty() {
        let mut lines: Vec<String> = missing
            .iter()
            .map(|s| format!("{group_id} from {s} on TCP {port}: not admitted -> admitted"))
            .collect();
        lines.extend(stale.iter().map(|r| {
            format!(
                "{group_id} from {} on TCP {}: our rule {} -> revoked (no longer wanted)",
                source_of(r),
                r.from_port().unwrap_or_default(),
                r.security_group_rule_id().unwrap_or("?")
            )
        }));
        Ok(Found::Update(lines, outputs(&rules, port, sources)))
    } else if missing.len() < sources.len() {
        Ok(Found::Incomplete(
            format!("{group_id} does not admit {} yet", join(&missing)),
            None,
        ))
    } else {
        Ok(Found::Missing)
    }
}

/// Revokes one rule; gone already is fine.
async fn revoke(cx: &Ctx<'_>, group_id: &str, id: &str) -> Result<bool> {
    cx.bar.set(format!("revoking rule {id} in {group_id}"));
    match cx
        .aws
        .ec2
        .revoke_security_group_ingress()
        .group_id(group_id)
        .security_group_rule_ids(id)
        .send()
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if is_rule_gone(error_code(&e)) => Ok(false),
        Err(e) => anyhow::bail!(
            "cannot revoke rule {id} in security group {group_id}: {}",
            describe_error(&e)
        ),
    }
}

fn join(v: &[&String]) -> String {
    v.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
}

fn outputs(rules: &[SecurityGroupRule], port: u16, sources: &[String]) -> Outputs {
    let ids: Vec<&str> = sources
        .iter()
        .filter_map(|s| rules.iter().find(|r| admits(r, port, s)))
        .filter_map(|r| r.security_group_rule_id())
        .collect();
    Outputs::from([("rule_ids".to_string(), ids.join(","))])
}

/// Adds the rules that are missing, tagged as ours and as `step`'s, then
/// revokes the rules of `step` no longer wanted.
pub async fn apply(
    cx: &Ctx<'_>,
    step: &str,
    group_id: &str,
    port: u16,
    sources: &[String],
    description: &str,
) -> Result<Outputs> {
    let existing = rules_once(cx, group_id).await?;
    let mut added: Vec<SecurityGroupRule> = Vec::new();
    for source in sources {
        if existing.iter().any(|r| admits(r, port, source)) {
            continue;
        }
        cx.bar
            .set(format!("adding TCP {port} from {source} to {group_id}"));
        let (k, v) = cx.owner_tag();
        let added_now = cx
            .aws
            .ec2
            .authorize_security_group_ingress()
            .group_id(group_id)
            .ip_permissions(
                IpPermission::builder()
                    .ip_protocol("tcp")
                    .from_port(i32::from(port))
                    .to_port(i32::from(port))
                    .user_id_group_pairs(
                        UserIdGroupPair::builder()
                            .group_id(source)
                            .description(description)
                            .build(),
                    )
                    .build(),
            )
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::SecurityGroupRule)
                    .tags(Tag::builder().key(k).value(v).build())
                    .tags(Tag::builder().key(STEP_TAG).value(step).build())
                    .build(),
            )
            .send()
            .await;
        match added_now {
            Ok(o) => added.extend(o.security_group_rules.unwrap_or_default()),
            // Someone (or a run that died) added it meanwhile: it is there.
            Err(e) if is_duplicate_rule(error_code(&e)) => {}
            Err(e) => anyhow::bail!(
                "cannot add TCP {port} from {source} to security group {group_id}: {}",
                describe_error(&e)
            ),
        }
    }
    // Only once every wanted source is admitted, and in the run's second
    // pass (a function leaving keeps its way in until its variable is put
    // back; the proxy keeps its way to the DB until it uses its new group).
    let stale = stale(cx, &existing, step, port, sources);
    let mut revoked: Vec<&str> = Vec::new();
    if !stale.is_empty() && cx.may_remove(step) {
        for rule in stale {
            let id = rule
                .security_group_rule_id()
                .context("a security group rule without an id")?;
            revoke(cx, group_id, id).await?;
            revoked.push(id);
        }
    }
    // The rules now: the ones read, less those revoked, and those added
    // (AWS answers with them); read again only when that falls short (a
    // rule someone else added meanwhile).
    let mut rules: Vec<SecurityGroupRule> = existing
        .iter()
        .filter(|r| !revoked.contains(&r.security_group_rule_id().unwrap_or_default()))
        .cloned()
        .chain(added)
        .collect();
    if sources
        .iter()
        .any(|s| !rules.iter().any(|r| admits(r, port, s)))
    {
        rules = rules_of(cx, group_id).await?;
    }
    let missing: Vec<&String> = sources
        .iter()
        .filter(|s| !rules.iter().any(|r| admits(r, port, s)))
        .collect();
    if !missing.is_empty() {
        anyhow::bail!(
            "security group {group_id} still does not admit {} on TCP {port} after adding the rule",
            join(&missing)
        );
    }
    Ok(outputs(&rules, port, sources))
}

/// What `adopt` records of the rules it takes over: their ids.
pub fn adopted(outputs: &Outputs) -> Option<serde_json::Value> {
    let ids: Vec<&str> = outputs
        .get("rule_ids")?
        .split(',')
        .filter(|s| !s.is_empty())
        .collect();
    Some(serde_json::json!({ "rule_ids": ids }))
}

/// Revokes the rules `step` added to `group_id` and no other (a group that
/// is not the step's own, such as an endpoint's, may hold other steps'
/// rules of ours).
pub async fn rollback_step(cx: &Ctx<'_>, step: &str, group_id: &str) -> Result<Undone> {
    let rules = rules_of(cx, group_id).await?;
    let mut revoked = Vec::new();
    for rule in rules.iter().filter(|r| added_by(cx, r, step)) {
        let id = rule
            .security_group_rule_id()
            .context("a security group rule without an id")?;
        if revoke(cx, group_id, id).await? {
            revoked.push(id.to_string());
        }
    }
    Ok(if revoked.is_empty() {
        Undone::AlreadyGone(format!("no rule of {step} in {group_id}"))
    } else {
        Undone::Done(format!("revoked {} in {group_id}", revoked.join(", ")))
    })
}

/// Revokes the rules of ours on `port`, and those `step` added on any port
/// (a port changed since); leaves every other rule. With what this state
/// adopted undone too (`cx.adopted`), also the rules it found when it took
/// them over (their ids in `before`, see [`adopted`]).
pub async fn rollback(
    cx: &Ctx<'_>,
    step: &str,
    group_id: &str,
    port: u16,
    before: Option<&serde_json::Value>,
) -> Result<Undone> {
    let adopted: Vec<&str> = before
        .and_then(|b| b.get("rule_ids")?.as_array())
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
        .collect();
    let rules = rules_of(cx, group_id).await?;
    let ours: Vec<&SecurityGroupRule> = rules
        .iter()
        .filter(|r| {
            let on_port =
                r.from_port() == Some(i32::from(port)) && r.to_port() == Some(i32::from(port));
            let taken_over = cx.adopted
                && r.security_group_rule_id()
                    .is_some_and(|id| adopted.contains(&id));
            (ours(cx, r) && on_port) || added_by(cx, r, step) || taken_over
        })
        .collect();
    if ours.is_empty() {
        return Ok(Undone::AlreadyGone(format!(
            "no rule of ours on TCP {port} in {group_id}"
        )));
    }
    let mut revoked = Vec::new();
    for rule in ours {
        let id = rule
            .security_group_rule_id()
            .context("a security group rule without an id")?;
        if revoke(cx, group_id, id).await? {
            revoked.push(id.to_string());
        }
    }
    Ok(Undone::Done(format!(
        "revoked {} in {group_id}",
        revoked.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::types::ReferencedSecurityGroup;

    fn rule(proto: &str, from: i32, to: i32, source: &str) -> SecurityGroupRule {
        SecurityGroupRule::builder()
            .is_egress(false)
            .ip_protocol(proto)
            .from_port(from)
            .to_port(to)
            .referenced_group_info(ReferencedSecurityGroup::builder().group_id(source).build())
            .build()
    }

    #[test]
    fn a_rule_admits_its_port_and_source_only() {
        assert!(admits(&rule("tcp", 3306, 3306, "sg-p"), 3306, "sg-p"));
        assert!(admits(&rule("tcp", 0, 65535, "sg-p"), 3306, "sg-p"));
        assert!(!admits(&rule("tcp", 3306, 3306, "sg-p"), 5432, "sg-p"));
        assert!(!admits(&rule("tcp", 3306, 3306, "sg-x"), 3306, "sg-p"));
        assert!(!admits(&rule("udp", 3306, 3306, "sg-p"), 3306, "sg-p"));
    }

    #[test]
    fn error_predicates() {
        assert!(is_duplicate_rule(Some("InvalidPermission.Duplicate")));
        assert!(is_rule_gone(Some("InvalidPermission.NotFound")));
        assert!(is_rule_gone(Some("InvalidSecurityGroupRuleId.NotFound")));
        assert!(!is_rule_gone(Some("UnauthorizedOperation")));
    }
}
