//! What the emulator holds, one line per resource (`Snapshot`), compared
//! before and after a command, and the checks tests share on it.

use super::*;

/// Everything in the emulator that the recipe could touch, keyed by
/// resource (`iam role NAME`, `db proxy NAME`, ...), restricted to this
/// test's names and VPC.
pub type Snapshot = BTreeMap<String, Resource>;

/// One resource as the emulator holds it: its fields by name, each as
/// sorted text, so a test asks for the field it means (`field("tags")`)
/// instead of searching the whole resource.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Resource(Vec<(&'static str, String)>);

impl Resource {
    fn of<const N: usize>(fields: [(&'static str, String); N]) -> Resource {
        Resource(fields.to_vec())
    }

    /// The field `name`; a test that asks for a field the resource lacks
    /// is wrong, and says which it has.
    pub fn field(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| {
                let names: Vec<&str> = self.0.iter().map(|(k, _)| *k).collect();
                panic!("no field {name:?} in a resource of fields {names:?}")
            })
    }
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let each: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        f.write_str(&each.join(" "))
    }
}

pub fn snapshot(emu: &Emulator, ws: &Workspace) -> Snapshot {
    let config = emu.sdk_config();
    let p = ws.prefix.clone();
    let vpc = ws.env["VPC_ID"].clone();
    runtime().block_on(async move {
        let mut snap = Snapshot::new();
        let iam = aws_sdk_iam::Client::new(&config);
        let roles = iam.list_roles().send().await.unwrap();
        for role in roles.roles() {
            let name = role.role_name();
            if !name.contains(&p) {
                continue;
            }
            let attached = iam
                .list_attached_role_policies()
                .role_name(name)
                .send()
                .await
                .unwrap();
            let mut arns: Vec<_> = attached
                .attached_policies()
                .iter()
                .filter_map(|a| a.policy_arn())
                .collect();
            arns.sort();
            let inline = iam
                .list_role_policies()
                .role_name(name)
                .send()
                .await
                .unwrap();
            let mut inline_docs = Vec::new();
            for pn in inline.policy_names() {
                let doc = iam
                    .get_role_policy()
                    .role_name(name)
                    .policy_name(pn)
                    .send()
                    .await
                    .unwrap();
                inline_docs.push(format!("{pn}={}", url_decode(doc.policy_document())));
            }
            let tags = iam.list_role_tags().role_name(name).send().await.unwrap();
            let mut tags: Vec<_> = tags
                .tags()
                .iter()
                .map(|t| format!("{}={}", t.key(), t.value()))
                .collect();
            tags.sort();
            snap.insert(
                format!("iam role {name}"),
                Resource::of([
                    ("attached", format!("{arns:?}")),
                    ("inline", format!("{inline_docs:?}")),
                    ("tags", format!("{tags:?}")),
                ]),
            );
        }
        let policies = iam
            .list_policies()
            .scope(aws_sdk_iam::types::PolicyScopeType::Local)
            .send()
            .await
            .unwrap();
        for pol in policies.policies() {
            let name = pol.policy_name().unwrap_or_default();
            if !name.contains(&p) {
                continue;
            }
            let arn = pol.arn().unwrap_or_default();
            let versions = iam
                .list_policy_versions()
                .policy_arn(arn)
                .send()
                .await
                .unwrap();
            let mut vs = Vec::new();
            for v in versions.versions() {
                let id = v.version_id().unwrap_or_default();
                let doc = iam
                    .get_policy_version()
                    .policy_arn(arn)
                    .version_id(id)
                    .send()
                    .await
                    .unwrap();
                let doc = doc
                    .policy_version()
                    .and_then(|v| v.document())
                    .unwrap_or_default()
                    .to_string();
                vs.push(format!("{id} default={} {doc}", v.is_default_version()));
            }
            vs.sort();
            snap.insert(
                format!("iam policy {name}"),
                Resource::of([("versions", format!("{vs:?}"))]),
            );
        }
        let ec2 = aws_sdk_ec2::Client::new(&config);
        let groups = ec2
            .describe_security_groups()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("vpc-id")
                    .values(&vpc)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        for g in groups.security_groups() {
            let rules = |perms: &[aws_sdk_ec2::types::IpPermission]| {
                let mut r: Vec<String> = perms
                    .iter()
                    .map(|p| {
                        let mut srcs: Vec<String> = p
                            .user_id_group_pairs()
                            .iter()
                            .filter_map(|u| u.group_id().map(String::from))
                            .chain(
                                p.ip_ranges()
                                    .iter()
                                    .filter_map(|r| r.cidr_ip().map(String::from)),
                            )
                            .collect();
                        srcs.sort();
                        format!(
                            "{}:{:?}-{:?} from {srcs:?}",
                            p.ip_protocol().unwrap_or_default(),
                            p.from_port(),
                            p.to_port()
                        )
                    })
                    .collect();
                r.sort();
                r
            };
            let mut tags: Vec<_> = g
                .tags()
                .iter()
                .map(|t| {
                    format!(
                        "{}={}",
                        t.key().unwrap_or_default(),
                        t.value().unwrap_or_default()
                    )
                })
                .collect();
            tags.sort();
            snap.insert(
                format!(
                    "security group {} {}",
                    g.group_name().unwrap_or_default(),
                    g.group_id().unwrap_or_default()
                ),
                Resource::of([
                    ("ingress", format!("{:?}", rules(g.ip_permissions()))),
                    ("egress", format!("{:?}", rules(g.ip_permissions_egress()))),
                    ("tags", format!("{tags:?}")),
                ]),
            );
        }
        let rds = aws_sdk_rds::Client::new(&config);
        // moto answers 500 for proxy calls in some states: treat as none.
        if let Ok(proxies) = rds.describe_db_proxies().send().await {
            for px in proxies.db_proxies() {
                let name = px.db_proxy_name().unwrap_or_default();
                if !name.contains(&p) {
                    continue;
                }
                let targets = rds
                    .describe_db_proxy_targets()
                    .db_proxy_name(name)
                    .send()
                    .await
                    .map(|t| {
                        t.targets()
                            .iter()
                            .map(|t| t.rds_resource_id().unwrap_or_default().to_string())
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                let pool = rds
                    .describe_db_proxy_target_groups()
                    .db_proxy_name(name)
                    .send()
                    .await
                    .ok()
                    .and_then(|g| g.target_groups().first().cloned())
                    .and_then(|g| g.connection_pool_config().cloned())
                    .map(|c| {
                        format!(
                            "max={:?} idle={:?} borrow={:?}",
                            c.max_connections_percent(),
                            c.max_idle_connections_percent(),
                            c.connection_borrow_timeout()
                        )
                    });
                snap.insert(
                    format!("db proxy {name}"),
                    Resource::of([
                        ("status", format!("{:?}", px.status())),
                        ("engine", format!("{:?}", px.engine_family())),
                        ("tls", format!("{:?}", px.require_tls())),
                        ("targets", format!("{targets:?}")),
                        (
                            "idle_client_timeout",
                            format!("{:?}", px.idle_client_timeout()),
                        ),
                        ("debug_logging", format!("{:?}", px.debug_logging())),
                        ("pool", format!("{pool:?}")),
                        ("auth_scheme", format!("{:?}", px.default_auth_scheme())),
                        (
                            "secrets",
                            format!(
                                "{:?}",
                                px.auth()
                                    .iter()
                                    .filter_map(|a| a.secret_arn())
                                    .collect::<Vec<_>>()
                            ),
                        ),
                        (
                            "network",
                            format!(
                                "{:?}/{:?}",
                                px.endpoint_network_type().map(|t| t.as_str()),
                                px.target_connection_network_type().map(|t| t.as_str())
                            ),
                        ),
                        ("arn", format!("{:?}", px.db_proxy_arn())),
                    ]),
                );
            }
        }
        // The proxies' other endpoints (not the default one), by name.
        if let Ok(eps) = rds.describe_db_proxy_endpoints().send().await {
            for ep in eps.db_proxy_endpoints() {
                let name = ep.db_proxy_endpoint_name().unwrap_or_default();
                if ep.is_default() == Some(true) || !name.to_lowercase().contains(&p.to_lowercase())
                {
                    continue;
                }
                let mut groups = ep.vpc_security_group_ids().to_vec();
                groups.sort();
                snap.insert(
                    format!("db proxy endpoint {name}"),
                    Resource::of([
                        ("proxy", format!("{:?}", ep.db_proxy_name())),
                        ("role", format!("{:?}", ep.target_role())),
                        ("groups", format!("{groups:?}")),
                        ("subnets", ep.vpc_subnet_ids().len().to_string()),
                        ("status", format!("{:?}", ep.status())),
                    ]),
                );
            }
        }
        // CloudWatch alarms named after this test, with their tags.
        let cw = aws_sdk_cloudwatch::Client::new(&config);
        let alarms = cw.describe_alarms().send().await.unwrap();
        for a in alarms.metric_alarms() {
            let name = a.alarm_name().unwrap_or_default();
            if !name.contains(&p) {
                continue;
            }
            let tags = cw
                .list_tags_for_resource()
                .resource_arn(a.alarm_arn().unwrap_or_default())
                .send()
                .await
                .unwrap();
            let mut tags: Vec<_> = tags
                .tags()
                .iter()
                .map(|t| format!("{}={}", t.key().unwrap_or(""), t.value().unwrap_or("")))
                .collect();
            tags.sort();
            snap.insert(
                format!("alarm {name}"),
                Resource::of([
                    ("metric", format!("{:?}", a.metric_name())),
                    ("threshold", format!("{:?}", a.threshold())),
                    ("actions", format!("{:?}", a.alarm_actions())),
                    ("tags", format!("{tags:?}")),
                ]),
            );
        }
        // Anomaly detection models on this test's proxies (none where the
        // emulator offers no anomaly detection, as plain moto).
        if let Ok(models) = cw.describe_anomaly_detectors().send().await {
            for d in models.anomaly_detectors() {
                let Some(m) = d.single_metric_anomaly_detector() else {
                    continue;
                };
                let dims: Vec<String> = m
                    .dimensions()
                    .iter()
                    .map(|d| format!("{}={}", d.name().unwrap_or(""), d.value().unwrap_or("")))
                    .collect();
                let dims = dims.join(",");
                if !dims.to_lowercase().contains(&p.to_lowercase()) {
                    continue;
                }
                snap.insert(
                    format!(
                        "anomaly model {} {} {}",
                        m.metric_name().unwrap_or_default(),
                        m.stat().unwrap_or_default(),
                        dims
                    ),
                    Resource::of([("namespace", format!("{:?}", m.namespace()))]),
                );
            }
        }
        let lambda = aws_sdk_lambda::Client::new(&config);
        let functions = lambda.list_functions().send().await.unwrap();
        for f in functions.functions() {
            let name = f.function_name().unwrap_or_default();
            if !name.contains(&p) {
                continue;
            }
            let env: BTreeMap<_, _> = f
                .environment()
                .and_then(|e| e.variables())
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .collect();
            snap.insert(
                format!("lambda {name}"),
                Resource::of([("env", format!("{env:?}"))]),
            );
        }
        snap
    })
}

/// IAM hands policy documents back URL-encoded.
pub fn url_decode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Lines that differ between two snapshots, for assertion messages.
pub fn diff(a: &Snapshot, b: &Snapshot) -> String {
    let mut out = String::new();
    for (k, v) in a {
        match b.get(k) {
            None => out.push_str(&format!("- {k}: {v}\n")),
            Some(w) if w != v => out.push_str(&format!("~ {k}:\n    {v}\n -> {w}\n")),
            _ => {}
        }
    }
    for (k, v) in b {
        if !a.contains_key(k) {
            out.push_str(&format!("+ {k}: {v}\n"));
        }
    }
    out
}

#[track_caller]
pub fn assert_same(before: &Snapshot, after: &Snapshot, what: &str) {
    assert!(before == after, "{what}:\n{}", diff(before, after));
}

/// How many TCP ingress rules a security group has.
pub fn ingress_rules(group: &Resource) -> usize {
    group.field("ingress").matches("tcp:").count()
}

/// Exactly one of each resource the recipe makes, and the function
/// pointing at the proxy.
#[track_caller]
pub fn assert_one_of_each(before: &Snapshot, after: &Snapshot, ws: &Workspace, what: &str) {
    let p = &ws.prefix;
    let added: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    // The alarms (the `alarms` step, when listed): each of the five once,
    // tagged as ours (CloudWatch keys alarms by name: a second of the same
    // name would have replaced the first, not sat beside it).
    let alarms: Vec<&String> = added
        .iter()
        .copied()
        .filter(|k| k.starts_with("alarm "))
        .collect();
    let want_alarms: Vec<String> = [
        "availability",
        "client-connections",
        "database-connections",
        "query-requests",
        "session-pinned",
    ]
    .iter()
    .map(|kind| format!("alarm {p}-proxy-{kind}"))
    .collect();
    // (Only a runbook that lists the `alarms` step makes them; one that
    // does must have made all five.)
    let lists_alarms = std::fs::read_to_string(&ws.runbook)
        .unwrap_or_default()
        .lines()
        .any(|l| l.trim_start().starts_with("\"alarms\""));
    if lists_alarms || !alarms.is_empty() {
        assert_eq!(
            alarms,
            want_alarms.iter().collect::<Vec<_>>(),
            "{what}: alarms added"
        );
    }
    for a in &alarms {
        assert!(
            after[*a]
                .field("tags")
                .contains(&format!("rds-proxy-runbook:runbook={p}")),
            "{what}: {a} is not tagged as ours: {}",
            after[*a]
        );
    }
    // The surge alarms' anomaly detection models (CloudWatch makes one per
    // band alarm's metric and statistic): both, or none where the emulator
    // offers no anomaly detection.
    let models: Vec<String> = added
        .iter()
        .filter_map(|k| k.strip_prefix("anomaly model "))
        .map(|k| k.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert!(
        models.is_empty()
            || (lists_alarms && models == ["ClientConnections Maximum", "QueryRequests Sum"]),
        "{what}: anomaly detection models added: {models:?}"
    );
    let mut kinds: Vec<String> = added
        .iter()
        .filter(|k| !k.starts_with("alarm ") && !k.starts_with("anomaly model "))
        .map(|k| {
            k.rsplit_once(' ')
                .map_or(k.to_string(), |(a, _)| a.to_string())
        })
        .collect();
    kinds.sort();
    let mut want = vec![
        format!("db proxy {p}-db")
            .rsplit_once(' ')
            .unwrap()
            .0
            .to_string(),
        "iam policy".to_string(),
        "iam role".to_string(),
        format!("security group {p}-proxy-sg"),
    ];
    want.sort();
    assert_eq!(kinds, want, "{what}: resources added: {added:?}");
    let policy = &after[&format!("iam policy {p}-connect")];
    assert_eq!(
        policy.field("versions").matches(" default=").count(),
        1,
        "{what}: policy versions: {policy}"
    );
    let role = &after[&format!("iam role {p}-proxy-role")];
    assert_eq!(
        role.field("inline")
            .matches("rds-proxy-runbook-secret-access=")
            .count(),
        1,
        "{what}: {role}"
    );
    let proxy = &after[&format!("db proxy {p}-db")];
    assert!(
        proxy.field("targets") == format!("[\"{p}-db\"]"),
        "{what}: {proxy}"
    );
    for (k, v) in after
        .iter()
        .filter(|(k, _)| k.starts_with("security group "))
    {
        let rules = ingress_rules(v);
        let want = if k.contains(&format!("{p}-proxy-sg ")) || k.contains(&format!("{p}-db-sg ")) {
            1
        } else {
            ingress_rules(&before[k])
        };
        assert_eq!(rules, want, "{what}: ingress of {k}: {v}");
    }
    let lambda_role = &after[&format!("iam role {p}-lambda-role")];
    assert_eq!(
        lambda_role
            .field("attached")
            .matches(&format!("policy/{p}-connect"))
            .count(),
        1,
        "{what}"
    );
    let function = &after[&format!("lambda {p}-db-app")];
    assert!(
        function.field("env").contains(".db-proxy-"),
        "{what}: DB_HOST not on the proxy: {function}"
    );
    assert!(
        function.field("env").contains("\"DB_USER\": \"admin\""),
        "{what}: {function}"
    );
}

/// Waits until the DB proxy `name` is `available` (the emulator, like AWS,
/// has it `creating` for a while).
pub async fn wait_available(config: &aws_config::SdkConfig, name: &str) {
    let rds = aws_sdk_rds::Client::new(config);
    let started = Instant::now();
    loop {
        let found = rds
            .describe_db_proxies()
            .db_proxy_name(name)
            .send()
            .await
            .unwrap();
        let status = found.db_proxies()[0]
            .status()
            .map(|s| s.as_str().to_string());
        if status.as_deref() == Some("available") {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{name} stays {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The workspace's proxy security group in the snapshot.
#[track_caller]
pub fn proxy_sg_line<'s>(snap: &'s Snapshot, ws: &Workspace) -> &'s Resource {
    let key = format!("security group {}-proxy-sg ", ws.prefix);
    snap.iter()
        .find(|(k, _)| k.starts_with(&key))
        .map(|(_, v)| v)
        .unwrap_or_else(|| panic!("no {key} in the snapshot"))
}
