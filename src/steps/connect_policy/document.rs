//! The connect policy's documents, worked out without a call: the template
//! filled (once per DB user when the functions connect as several, each
//! statement for its functions' roles only), and the transitional version a
//! run writes while functions join, leave or move to a new proxy.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::template::fill_placeholders;

#[derive(Serialize, Deserialize)]
pub struct Inputs {
    pub(super) policy_name: String,
    pub(super) template: String,
    pub(super) proxy_id: String,
    pub(super) db_user: String,
    pub(super) functions: Vec<String>,
    /// The functions that name the DB user they connect as (`[[lambda]]
    /// db_user`), each with it; left out when none does.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) users: BTreeMap<String, String>,
    pub(super) tags: BTreeMap<String, String>,
}

impl Inputs {
    /// Each user the functions connect as, with the functions.
    pub(super) fn by_user(&self) -> BTreeMap<&str, Vec<&str>> {
        let mut out: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for f in &self.functions {
            let user = self.users.get(f).unwrap_or(&self.db_user);
            out.entry(user).or_default().push(f);
        }
        out
    }
}

/// The cookbook's `sed` over the template, for one user.
pub(super) fn filled(i: &Inputs, user: &str, region: &str, account: &str) -> Result<Value> {
    let text = fill_placeholders(
        &i.template,
        &[
            ("AWS_REGION", region),
            ("AWS_ACCOUNT_ID", account),
            ("RDSProxyID", &i.proxy_id),
            ("DB_USER", user),
        ],
    );
    serde_json::from_str(&text).context("the filled connect-policy template is not JSON")
}

/// The policy's document. When the functions connect as one user (the
/// book's case), the template filled with it. When they connect as several,
/// one policy still serves them all: the template filled once per user,
/// each statement allowed only to the execution roles (`roles`: each
/// function's role ARN) of the functions that connect as that user, so a
/// function may connect as its own user only.
pub fn document(
    i: &Inputs,
    region: &str,
    account: &str,
    roles: &BTreeMap<String, String>,
) -> Result<Value> {
    let by_user = i.by_user();
    if by_user.len() <= 1 {
        let user = by_user.keys().next().copied().unwrap_or(&i.db_user);
        return filled(i, user, region, account);
    }
    let mut all = Vec::new();
    let mut doc = Value::Null;
    for (n, (user, functions)) in by_user.into_iter().enumerate() {
        let principals: BTreeSet<String> = functions
            .iter()
            .map(|f| {
                roles
                    .get(*f)
                    .cloned()
                    .with_context(|| format!("the execution role of {f} is not known"))
            })
            .collect::<Result<_>>()?;
        doc = filled(i, user, region, account)?;
        for mut st in statements(&doc) {
            let Some(obj) = st.as_object_mut() else {
                continue;
            };
            if let Some(Value::String(sid)) = obj.get_mut("Sid") {
                sid.push_str(&n.to_string());
            }
            let condition = obj
                .entry("Condition")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(c) = condition.as_object_mut() {
                c.insert(
                    "ArnEquals".into(),
                    json!({ PRINCIPAL: one_or_many(&principals) }),
                );
            }
            all.push(st);
        }
    }
    doc["Statement"] = Value::Array(all);
    Ok(doc)
}

/// The condition key that names the calling role.
const PRINCIPAL: &str = "aws:PrincipalArn";

/// One ARN as a string, several as a list (as IAM shows them).
fn one_or_many(arns: &BTreeSet<String>) -> Value {
    match arns.len() {
        1 => Value::from(arns.iter().next().expect("one").as_str()),
        _ => Value::from(arns.iter().cloned().collect::<Vec<_>>()),
    }
}

/// A document's statements, as a list (IAM accepts one as an object).
pub(super) fn statements(doc: &Value) -> Vec<Value> {
    match doc.get("Statement") {
        Some(Value::Array(list)) => list.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

/// A statement without its `Sid`: two statements that differ only there
/// grant the same.
fn without_sid(st: &Value) -> Value {
    let mut st = st.clone();
    if let Some(o) = st.as_object_mut() {
        o.remove("Sid");
    }
    st
}

/// The version a run writes while the policy moves from `old` (attached to
/// the roles `old_roles`, ARNs) to `new` (for the roles `new_roles`): the
/// union of both *as they were granted*. Until the run's last pass the
/// policy is attached to every role of both, so a statement that holds for
/// whoever the policy is attached to (the book's, without a condition)
/// would reach roles it was never given to: a function joining would get
/// the old `dbuser:prx-…/*`, a function leaving the new user. Each such
/// statement is limited (`aws:PrincipalArn`) to the roles that had or will
/// have it; one already limited to roles keeps only those of them; a
/// `Deny` stays as it is (it can only take away). So every (role, user,
/// proxy) this version allows, the old or the new one allows, and it
/// allows all they allow: a function keeps its way in, whichever proxy or
/// user it still uses, until every function has moved and the last pass
/// writes `new` alone. The old statements lose their `Sid` (IAM refuses two
/// statements with one).
pub fn transitional(
    old: &Value,
    old_roles: &BTreeSet<String>,
    new: &Value,
    new_roles: &BTreeSet<String>,
) -> Value {
    let attached: BTreeSet<String> = old_roles.union(new_roles).cloned().collect();
    // Each statement, with the roles it is granted to.
    let mut grants: Vec<(Value, BTreeSet<String>)> = statements(new)
        .into_iter()
        .map(|s| (s, new_roles.clone()))
        .collect();
    for s in statements(old) {
        let bare = without_sid(&s);
        match grants.iter_mut().find(|(g, _)| without_sid(g) == bare) {
            Some((_, roles)) => roles.extend(old_roles.iter().cloned()),
            None => grants.push((bare, old_roles.clone())),
        }
    }
    let all: Vec<Value> = grants
        .into_iter()
        .filter_map(|(st, roles)| {
            let deny = st.get("Effect").and_then(Value::as_str) == Some("Deny");
            if deny || roles.is_superset(&attached) {
                return Some(st);
            }
            limited(st, &roles)
        })
        .collect();
    let mut doc = new.clone();
    doc["Statement"] = Value::Array(all);
    doc
}

/// `st` allowed to the roles `roles` only; None when it would be left to
/// no one (or cannot be limited: it is then left out, never widened).
fn limited(mut st: Value, roles: &BTreeSet<String>) -> Option<Value> {
    let obj = st.as_object_mut()?;
    let condition = obj
        .entry("Condition")
        .or_insert_with(|| Value::Object(Default::default()))
        .as_object_mut()?;
    let names_principal = |block: &Value| {
        block
            .as_object()
            .is_some_and(|b| b.keys().any(|k| k.eq_ignore_ascii_case(PRINCIPAL)))
    };
    // Ours (document's): plain role ARNs, narrowed to those of `roles`.
    if let Some(listed) = condition
        .get_mut("ArnEquals")
        .and_then(Value::as_object_mut)
        .and_then(|b| {
            b.iter_mut()
                .find(|(k, _)| k.eq_ignore_ascii_case(PRINCIPAL))
        })
        .map(|(_, v)| v)
    {
        let arns: Option<BTreeSet<String>> = match &*listed {
            Value::String(one) => Some(BTreeSet::from([one.clone()])),
            Value::Array(many) => many.iter().map(|v| v.as_str().map(String::from)).collect(),
            _ => None,
        };
        if let Some(arns) = arns.filter(|a| a.iter().all(|a| !a.contains(['*', '?']))) {
            let kept: BTreeSet<String> = arns.intersection(roles).cloned().collect();
            if kept.is_empty() {
                return None;
            }
            *listed = one_or_many(&kept);
            return Some(st);
        }
    }
    // Otherwise the roles go under an operator that does not name the
    // principal yet: every operator of a condition must hold.
    let free = ["ArnEquals", "ArnLike", "StringEquals", "StringLike"]
        .into_iter()
        .find(|op| !condition.get(*op).is_some_and(names_principal))?;
    let block = condition
        .entry(free)
        .or_insert_with(|| Value::Object(Default::default()))
        .as_object_mut()?;
    block.insert(PRINCIPAL.into(), one_or_many(roles));
    Some(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn inputs(db_user: &str) -> Inputs {
        Inputs {
            policy_name: "p".into(),
            template: include_str!("../../../runbooks/policies/rds-connect-policy-template.json")
                .into(),
            proxy_id: "prx-0abc".into(),
            db_user: db_user.into(),
            functions: vec!["f".into()],
            users: BTreeMap::new(),
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn the_template_is_filled_like_the_book() {
        let doc = document(&inputs("*"), "us-east-1", "123456789012", &BTreeMap::new()).unwrap();
        assert_eq!(
            doc["Statement"][0]["Resource"][0],
            "arn:aws:rds-db:us-east-1:123456789012:dbuser:prx-0abc/*"
        );
        assert_eq!(doc["Statement"][0]["Action"][0], "rds-db:connect");
        let doc = document(&inputs("admin"), "eu-west-1", "1", &BTreeMap::new()).unwrap();
        assert_eq!(
            doc["Statement"][0]["Resource"][0],
            "arn:aws:rds-db:eu-west-1:1:dbuser:prx-0abc/admin"
        );
    }

    #[test]
    fn functions_of_several_users_each_get_their_own_user_only() {
        let mut i = inputs("*");
        i.functions = vec!["api".into(), "report".into(), "cron".into()];
        i.users = BTreeMap::from([
            ("api".to_string(), "app".to_string()),
            ("report".to_string(), "reader".to_string()),
        ]);
        let roles = BTreeMap::from([
            ("api".to_string(), "arn:aws:iam::1:role/api".to_string()),
            (
                "report".to_string(),
                "arn:aws:iam::1:role/service-role/rep".to_string(),
            ),
            ("cron".to_string(), "arn:aws:iam::1:role/api".to_string()),
        ]);
        let doc = document(&i, "r", "1", &roles).unwrap();
        let st = statements(&doc);
        assert_eq!(st.len(), 3, "{doc}");
        let who = |user: &str| {
            st.iter()
                .find(|s| s["Resource"][0] == format!("arn:aws:rds-db:r:1:dbuser:prx-0abc/{user}"))
                .map(|s| s["Condition"]["ArnEquals"]["aws:PrincipalArn"].clone())
                .unwrap_or_else(|| panic!("no statement for {user}: {doc}"))
        };
        assert_eq!(who("app"), "arn:aws:iam::1:role/api");
        assert_eq!(who("reader"), "arn:aws:iam::1:role/service-role/rep");
        // cron names no user: the connect policy's (`*`), on its role only.
        assert_eq!(who("*"), "arn:aws:iam::1:role/api");
        // A role missing is an error, never a statement for everyone.
        assert!(document(&i, "r", "1", &BTreeMap::new()).is_err());
        // All of one user: the template filled with it, no condition (the
        // book's document with the user in it).
        i.users.insert("cron".into(), "app".into());
        i.users.insert("report".into(), "app".into());
        let one = document(&i, "r", "1", &roles).unwrap();
        assert_eq!(one, filled(&i, "app", "r", "1").unwrap());
        // Inputs without users record as before.
        let v = serde_json::to_value(inputs("*")).unwrap();
        assert!(v.get("users").is_none(), "{v}");
    }

    // --- what a version grants, as IAM evaluates it ---------------------

    /// IAM's wildcard match (`*` any run, `?` one character).
    fn glob(pattern: &str, value: &str) -> bool {
        let (p, v): (Vec<char>, Vec<char>) = (pattern.chars().collect(), value.chars().collect());
        fn at(p: &[char], v: &[char]) -> bool {
            match (p.first(), v.first()) {
                (None, None) => true,
                (Some('*'), _) => at(&p[1..], v) || (!v.is_empty() && at(p, &v[1..])),
                (Some('?'), Some(_)) => at(&p[1..], &v[1..]),
                (Some(a), Some(b)) if a == b => at(&p[1..], &v[1..]),
                _ => false,
            }
        }
        at(&p, &v)
    }

    fn strings(v: &Value) -> Vec<String> {
        match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(a) => a
                .iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Whether the statement's conditions hold for a call by `role` (the
    /// operators the tool writes; any other makes it not apply).
    fn holds(st: &Value, role: &str) -> bool {
        let Some(condition) = st.get("Condition").and_then(Value::as_object) else {
            return true;
        };
        condition.iter().all(|(op, block)| {
            block.as_object().is_some_and(|b| {
                b.iter().all(|(key, wanted)| {
                    key.eq_ignore_ascii_case(PRINCIPAL)
                        && strings(wanted).iter().any(|w| match op.as_str() {
                            "ArnEquals" | "ArnLike" | "StringLike" => glob(w, role),
                            "StringEquals" => w == role,
                            _ => false,
                        })
                })
            })
        })
    }

    /// Whether `doc`, attached to `attached`, lets `role` connect to proxy
    /// `proxy` as `user`.
    fn allows(
        doc: &Value,
        attached: &BTreeSet<String>,
        role: &str,
        proxy: &str,
        user: &str,
    ) -> bool {
        if !attached.contains(role) {
            return false;
        }
        let resource = format!("arn:aws:rds-db:r:1:dbuser:{proxy}/{user}");
        let applies = |st: &Value| {
            strings(&st["Action"])
                .iter()
                .any(|a| glob(a, "rds-db:connect"))
                && strings(&st["Resource"]).iter().any(|r| glob(r, &resource))
                && holds(st, role)
        };
        let effect = |e: &str| {
            statements(doc)
                .iter()
                .any(|s| s["Effect"] == e && applies(s))
        };
        effect("Allow") && !effect("Deny")
    }

    /// One version: the functions (name, role, user) on a proxy.
    struct Version<'a> {
        proxy: &'a str,
        functions: &'a [(&'a str, &'a str, Option<&'a str>)],
        db_user: &'a str,
    }

    impl Version<'_> {
        fn document(&self) -> Value {
            let mut i = inputs(self.db_user);
            i.proxy_id = self.proxy.into();
            i.functions = self.functions.iter().map(|f| f.0.to_string()).collect();
            i.users = self
                .functions
                .iter()
                .filter_map(|(f, _, u)| Some((f.to_string(), (*u)?.to_string())))
                .collect();
            let roles = self
                .functions
                .iter()
                .map(|(f, r, _)| (f.to_string(), role(r)))
                .collect();
            document(&i, "r", "1", &roles).unwrap()
        }

        fn roles(&self) -> BTreeSet<String> {
            self.functions.iter().map(|(_, r, _)| role(r)).collect()
        }
    }

    fn role(name: &str) -> String {
        format!("arn:aws:iam::1:role/{name}")
    }

    /// The property, over every role, user and proxy of both versions and
    /// one more of each: what the transitional version allows (attached to
    /// both versions' roles, as it is until the last pass) the old or the
    /// new one allows, as they were granted; and it keeps all they allow.
    /// The states between (the last pass detaches first, then narrows)
    /// are covered: fewer roles attached allow less.
    #[track_caller]
    fn transition_is_exact(what: &str, old: Version, new: Version) {
        let (old_doc, new_doc) = (old.document(), new.document());
        let (old_roles, new_roles) = (old.roles(), new.roles());
        let doc = transitional(&old_doc, &old_roles, &new_doc, &new_roles);
        let attached: BTreeSet<String> = old_roles.union(&new_roles).cloned().collect();
        let mut roles = attached.clone();
        roles.insert(role("outsider"));
        let proxies = [old.proxy, new.proxy, "prx-0other"];
        let mut users: BTreeSet<&str> = ["someone-else", old.db_user, new.db_user].into();
        for v in [&old, &new] {
            users.extend(v.functions.iter().filter_map(|f| f.2));
        }
        for r in &roles {
            for p in proxies {
                for u in &users {
                    let during = allows(&doc, &attached, r, p, u);
                    let before = allows(&old_doc, &old_roles, r, p, u);
                    let after = allows(&new_doc, &new_roles, r, p, u);
                    assert!(
                        !during || before || after,
                        "{what}: the transitional version lets {r} connect to {p} as {u}, which \
                         neither the version before nor the one after allows:\n{doc:#}"
                    );
                    assert!(
                        during || !(before || after),
                        "{what}: {r} loses {p} as {u} during the move:\n{doc:#}"
                    );
                }
            }
        }
    }

    #[test]
    fn no_transitional_version_grants_what_neither_neighbour_does() {
        let (old_id, new_id) = ("prx-0abc", "prx-0new");
        let on = |proxy, functions, db_user| Version {
            proxy,
            functions,
            db_user,
        };
        let book = [("api", "api-role", None)];
        let two_users = [
            ("api", "api-role", Some("app")),
            ("report", "report-role", Some("reader")),
        ];
        let joined = [("api", "api-role", None), ("report", "report-role", None)];
        transition_is_exact(
            "one user (the book's `*`) -> several, a function joining",
            on(old_id, &book, "*"),
            on(old_id, &two_users, "*"),
        );
        transition_is_exact(
            "several users -> one, a function leaving",
            on(old_id, &two_users, "*"),
            on(old_id, &[("api", "api-role", Some("app"))], "*"),
        );
        transition_is_exact(
            "several users -> one for all",
            on(old_id, &two_users, "*"),
            on(old_id, &joined, "admin"),
        );
        transition_is_exact(
            "a function joining",
            on(old_id, &book, "*"),
            on(old_id, &joined, "*"),
        );
        transition_is_exact(
            "a function leaving",
            on(old_id, &joined, "admin"),
            on(old_id, &book, "admin"),
        );
        transition_is_exact(
            "a replacement",
            on(old_id, &book, "*"),
            on(new_id, &book, "*"),
        );
        transition_is_exact(
            "a replacement while users change and functions join and leave",
            on(old_id, &two_users, "*"),
            on(
                new_id,
                &[
                    ("api", "api-role", Some("admin")),
                    ("cron", "cron-role", Some("reader")),
                ],
                "*",
            ),
        );
        transition_is_exact(
            "a function moving to another role, another user",
            on(
                old_id,
                &[("api", "api-role", Some("app")), ("x", "x-role", Some("b"))],
                "*",
            ),
            on(
                old_id,
                &[
                    ("api", "new-role", Some("reader")),
                    ("x", "x-role", Some("b")),
                ],
                "*",
            ),
        );
    }

    #[test]
    fn the_transitional_version_keeps_the_books_shape_when_it_can() {
        let old = document(&inputs("*"), "r", "1", &BTreeMap::new()).unwrap();
        let mut moved = inputs("*");
        moved.proxy_id = "prx-0new".into();
        let new = document(&moved, "r", "1", &BTreeMap::new()).unwrap();
        let roles = BTreeSet::from([role("api")]);
        // The same roles: both proxies, no condition needed.
        let doc = transitional(&old, &roles, &new, &roles);
        assert_eq!(statements(&doc).len(), 2, "{doc}");
        assert!(doc.to_string().contains("prx-0abc/*") && !doc.to_string().contains("Condition"));
        // Nothing more to keep: the new version itself.
        assert_eq!(transitional(&new, &roles, &new, &roles), new);
        assert_eq!(
            transitional(&doc, &roles, &new, &roles),
            doc,
            "a rerun writes it again"
        );
        // A role joining: the old grant is limited to the old role.
        let both = BTreeSet::from([role("api"), role("report")]);
        let doc = transitional(&old, &roles, &new, &both);
        let kept = &statements(&doc)[1];
        assert_eq!(kept["Resource"][0], "arn:aws:rds-db:r:1:dbuser:prx-0abc/*");
        assert_eq!(
            kept["Condition"]["ArnEquals"][PRINCIPAL],
            "arn:aws:iam::1:role/api"
        );
        // Statements with Sids (a template's): the kept one has none.
        let sid = |user: &str| json!({"Statement": [{"Sid": "Connect0", "Effect": "Allow", "Resource": user}]});
        let doc = transitional(&sid("a"), &roles, &sid("b"), &roles);
        assert_eq!(
            doc["Statement"][1],
            json!({"Effect": "Allow", "Resource": "a"})
        );
        // A condition on the principal of another form: limited beside it.
        let like = json!({"Statement": [{"Effect": "Allow", "Resource": "a",
            "Condition": {"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::1:role/*"}}}]});
        let doc = transitional(&like, &roles, &sid("b"), &both);
        assert_eq!(
            doc["Statement"][1]["Condition"],
            json!({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::1:role/*"},
                   "ArnEquals": {"aws:PrincipalArn": "arn:aws:iam::1:role/api"}})
        );
        let single = json!({"Statement": {"Effect": "Allow"}});
        assert_eq!(statements(&single).len(), 1);
    }
}
