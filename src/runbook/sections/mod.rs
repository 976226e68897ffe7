//! The runbook's schema: one reader per section, each reporting its own
//! problems; the runbook is whole only when every section is. The small
//! sections are read here; auth.rs (`[[auth]]` and how the proxy logs in),
//! proxy.rs (`[proxy]`, `[pool]`) and lambdas.rs (`[[lambda]]`,
//! `[[endpoint]]`) hold the big ones.

mod auth;
mod lambdas;
mod proxy;

use std::path::Path;

use toml_edit::{Item, Value};

use std::collections::BTreeMap;

use super::names::{check_runbook_name, closest};
use super::reader::{Cx, Tbl};
use super::types::*;
use crate::validate;

impl Cx<'_> {
    /// The whole runbook: every section is read (so every problem is
    /// reported), and the runbook is built only when each is whole.
    pub(super) fn runbook(&mut self, path: &Path, root: &toml_edit::Table) -> Option<Runbook> {
        let mut top = Tbl {
            table: root,
            path: String::new(),
            pos: Pos::start(),
            known: Vec::new(),
        };
        let name = self.name(&mut top);
        let region = self.literal(&mut top, "region", false);
        let profile = self.literal(&mut top, "profile", false);
        let steps = self.step_list(&mut top);
        let mut tags = self.tags(&mut top);
        let network = self.network(&mut top);
        let database = self.database(&mut top);
        let proxy_role = self.proxy_role(&mut top);
        let proxy_security_group = self.proxy_security_group(&mut top);
        let proxy = self.proxy(&mut top, network.as_ref().map(|(_, s)| s.as_slice()));
        let pool = self.pool(&mut top);
        let connect_policy = self.connect_policy(&mut top);
        let secret_access = self.secret_access(&mut top);
        let auth = self.auth(&mut top, database.as_ref(), proxy.as_ref().map(|p| &p.0));
        if let (Some(db), Some((proxy, scheme_pos))) = (&database, &proxy) {
            self.auth_rules(db, proxy, *scheme_pos, secret_access, !auth.is_empty());
        }
        let lambdas = self.lambdas(&mut top);
        self.lambda_duplicates(&lambdas);
        self.lambda_users(&lambdas, &auth, proxy.as_ref().map(|p| &p.0));
        let endpoints = self.endpoints(&mut top, database.as_ref(), &lambdas, &steps);
        let invoke_check = self.invoke_check(&mut top);
        let alarms = self.alarms(&mut top, name.as_deref(), &steps);
        let state = self.state(&mut top);
        self.finish(top);

        let name = name?;
        tags.insert(OWNER_TAG.to_string(), name.clone());
        Some(Runbook {
            path: path.to_path_buf(),
            name,
            region,
            profile,
            tags,
            network: network?.0,
            database: database?,
            proxy_role: proxy_role?,
            proxy_security_group: proxy_security_group?,
            proxy: proxy?.0,
            pool,
            connect_policy: connect_policy?,
            secret_access,
            auth,
            lambdas,
            endpoints,
            invoke_check,
            alarms,
            steps,
            state,
            external: Default::default(),
        })
    }

    /// `name`: the runbook's, in tags, file names and resource names.
    fn name(&mut self, top: &mut Tbl) -> Option<String> {
        let name_text = self.text(top, "name", true);
        if let Some(t) = name_text.as_ref().filter(|t| !t.unset_env)
            && let Err(why) = t.literal().as_deref().map_or(Ok(()), check_runbook_name)
        {
            self.error(t.pos, "name", why);
        }
        match name_text {
            Some(t) if t.literal().is_none() => {
                self.error(
                    t.pos,
                    "name",
                    "step outputs cannot be used in the runbook name",
                );
                None
            }
            other => other.and_then(|t| t.literal()),
        }
    }

    /// `[tags]`: added to everything we create, beside our own.
    fn tags(&mut self, top: &mut Tbl) -> BTreeMap<String, String> {
        let tags = self.string_map(top, "tags");
        self.tag_rules(top, &tags);
        if tags.contains_key(OWNER_TAG) {
            let tbl_pos = top.table.get("tags").and_then(|i| i.span());
            let pos = self.pos_of(tbl_pos);
            self.error(
                pos,
                &format!("tags.{OWNER_TAG}"),
                "this tag is set by the tool from `name`; remove it",
            );
        }
        tags
    }

    /// `[network]`, with its subnets (the proxy's, unless it names its own).
    fn network(&mut self, top: &mut Tbl) -> Option<(Network, Vec<Text>)> {
        let mut t = self.table(top, "network", true)?;
        let vpc_id = self.text(&mut t, "vpc_id", true);
        self.shape(vpc_id.as_ref(), |v| validate::resource_id("vpc", v));
        let subnet_ids = self.text_list(&mut t, "subnet_ids", true);
        self.shapes(subnet_ids.as_ref(), |v| validate::resource_id("subnet", v));
        if let Some(ids) = &subnet_ids
            && ids.len() == 1
            && !ids[0].unset_env
            && ids[0].literal().is_some()
        {
            self.error(
                ids[0].pos,
                "network.subnet_ids",
                "a proxy needs at least two subnets in different Availability Zones: \
                 list two or more",
            );
        }
        self.finish(t);
        Some((Network { vpc_id: vpc_id? }, subnet_ids?))
    }

    /// `[database]`: an instance or an Aurora cluster.
    fn database(&mut self, top: &mut Tbl) -> Option<Database> {
        let mut t = self.table(top, "database", true)?;
        let t_pos = t.pos;
        let instance_id = self.text(&mut t, "instance_id", false);
        let cluster_id = self.text(&mut t, "cluster_id", false);
        // Count the keys written, not the values read: a value that
        // failed (an unset variable) is reported on its own.
        let written = ["instance_id", "cluster_id"]
            .iter()
            .filter(|k| t.table.contains_key(k))
            .count();
        if written != 1 {
            let pos = t.pos;
            self.error(
                pos,
                "database.instance_id",
                "give exactly one of `instance_id` (an RDS instance) or `cluster_id` (an Aurora cluster)",
            );
        }
        self.shape(instance_id.as_ref(), validate::db_identifier);
        self.shape(cluster_id.as_ref(), validate::db_identifier);
        let security_group_id = self.text(&mut t, "security_group_id", true);
        self.shape(security_group_id.as_ref(), |v| {
            validate::resource_id("sg", v)
        });
        // Required unless the proxy logs in with IAM (see `auth_rules`).
        let secret_arn = self.text(&mut t, "secret_arn", false);
        self.shape(secret_arn.as_ref(), validate::secret_arn);
        let engine_family = self.engine_family(&mut t);
        let port = self.int(
            &mut t,
            "port",
            engine_family.default_port(),
            1..=65535,
            "a TCP port",
        ) as u16;
        self.finish(t);
        Some(Database {
            instance_id,
            cluster_id,
            security_group_id: security_group_id?,
            port,
            secret_arn,
            engine_family,
            pos: t_pos,
        })
    }

    /// Where a key's value is written (the table's start when it is not).
    fn value_pos(&self, t: &Tbl, key: &str) -> Pos {
        let span = t.table.get(key).and_then(Item::span);
        span.map_or(t.pos, |s| self.pos_of(Some(s)))
    }

    /// `[proxy_role]`: its name and trust policy.
    fn proxy_role(&mut self, top: &mut Tbl) -> Option<ProxyRole> {
        let mut t = self.table(top, "proxy_role", true)?;
        let name = self.text(&mut t, "name", true);
        self.shape(name.as_ref(), validate::role_name);
        let doc = self.file(&mut t, "trust_policy", DEFAULT_TRUST_POLICY);
        self.finish(t);
        Some(ProxyRole {
            name: name?,
            trust_policy: serde_json::from_str(&doc).ok()?,
        })
    }

    /// `[proxy_security_group]`.
    fn proxy_security_group(&mut self, top: &mut Tbl) -> Option<ProxySecurityGroup> {
        let mut t = self.table(top, "proxy_security_group", true)?;
        let name = self.text(&mut t, "name", true);
        self.shape(name.as_ref(), validate::group_name);
        let description = self.text_or(&mut t, "description", "RDS Proxy security group");
        self.shape(Some(&description), validate::group_description);
        self.finish(t);
        Some(ProxySecurityGroup {
            name: name?,
            description,
        })
    }

    /// `[connect_policy]`: the functions' `rds-db:connect` policy.
    fn connect_policy(&mut self, top: &mut Tbl) -> Option<ConnectPolicy> {
        let mut t = self.table(top, "connect_policy", true)?;
        let name = self.text(&mut t, "name", true);
        self.shape(name.as_ref(), validate::policy_name);
        let template = self.file(&mut t, "template", DEFAULT_CONNECT_POLICY);
        let db_user = self.text_or(&mut t, "db_user", "*");
        self.finish(t);
        Some(ConnectPolicy {
            name: name?,
            template,
            db_user,
        })
    }

    /// `[secret_access]`, optional: how the proxy role reads the secret.
    fn secret_access(&mut self, top: &mut Tbl) -> SecretAccess {
        let Some(mut t) = self.table(top, "secret_access", false) else {
            return SecretAccess::LeastPrivilege;
        };
        let mode = self.choice(
            &mut t,
            "mode",
            &["least-privilege", "managed"],
            "least-privilege",
        );
        self.finish(t);
        match mode {
            "managed" => SecretAccess::Managed,
            _ => SecretAccess::LeastPrivilege,
        }
    }

    /// `[state]`, optional: the S3 object a team shares the state in.
    fn state(&mut self, top: &mut Tbl) -> Option<StateTable> {
        let mut t = self.table(top, "state", false)?;
        let bucket = self.text(&mut t, "bucket", true);
        let key = self.text(&mut t, "key", false);
        let region = self.literal(&mut t, "region", false);
        let kms_key = self.text(&mut t, "kms_key", false);
        self.finish(t);
        Some(StateTable {
            bucket: bucket?,
            key,
            region,
            kms_key,
        })
    }

    /// `[invoke_check]`, optional: the payload and the expected answer.
    fn invoke_check(&mut self, top: &mut Tbl) -> InvokeCheck {
        let Some(mut t) = self.table(top, "invoke_check", false) else {
            return InvokeCheck {
                payload: "{}".into(),
                expect: None,
                auth_retry_seconds: DEFAULT_AUTH_RETRY_SECONDS,
                probe: false,
            };
        };
        let payload = self
            .literal(&mut t, "payload", false)
            .unwrap_or("{}".into());
        if serde_json::from_str::<serde_json::Value>(&payload).is_err() {
            let pos = t.pos;
            self.error(
                pos,
                "invoke_check.payload",
                "must be a JSON document, e.g. \"{}\"",
            );
        }
        let expect = self.literal(&mut t, "expect", false);
        let auth_retry_seconds = self.int(
            &mut t,
            "auth_retry_seconds",
            DEFAULT_AUTH_RETRY_SECONDS as i64,
            0..=900,
            "how long a refused login is tried again after this run changed an IAM grant",
        ) as u64;
        let probe = self.bool(&mut t, "probe", false);
        if probe && (t.table.contains_key("payload") || expect.is_some()) {
            let pos = self.value_pos(&t, "probe");
            self.error(
                pos,
                "invoke_check.probe",
                "with probe = true the check invokes the tool's probe, not the functions: \
                 remove payload and expect, or set probe = false",
            );
        }
        self.finish(t);
        InvokeCheck {
            payload,
            expect,
            auth_retry_seconds,
            probe,
        }
    }

    pub(super) fn engine_family(&mut self, t: &mut Tbl) -> EngineFamily {
        let Some(text) = self.text(t, "engine_family", true).filter(|t| !t.unset_env) else {
            return EngineFamily::Mysql;
        };
        let value = text.literal().unwrap_or_default().to_ascii_uppercase();
        match value.as_str() {
            "MYSQL" | "MARIADB" | "AURORA-MYSQL" => EngineFamily::Mysql,
            "POSTGRESQL" | "POSTGRES" | "AURORA-POSTGRESQL" => EngineFamily::Postgresql,
            "SQLSERVER" => EngineFamily::Sqlserver,
            other => {
                let why = if other.starts_with("ORACLE") {
                    "RDS Proxy does not support Oracle: use MYSQL, POSTGRESQL or SQLSERVER"
                        .to_string()
                } else {
                    format!("`{value}` is not an engine family: use MYSQL, POSTGRESQL or SQLSERVER")
                };
                self.error(text.pos, &text.key, why);
                EngineFamily::Mysql
            }
        }
    }

    pub(super) fn step_list(&mut self, top: &mut Tbl) -> Vec<StepEntry> {
        let Some(item) = top.get("steps") else {
            self.error(
                Pos::start(),
                "steps",
                format!(
                    "missing required key: add `steps = [{}]` at the top of the file",
                    self.steps
                        .names()
                        .iter()
                        .map(|s| format!("\"{s}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            return Vec::new();
        };
        let pos = self.item_pos(top, "steps", item);
        let Some(arr) = item.as_value().and_then(Value::as_array) else {
            self.wrong_type(pos, "steps", "an array of step names", item.type_name());
            return Vec::new();
        };
        let mut out: Vec<StepEntry> = Vec::new();
        for (i, v) in arr.iter().enumerate() {
            let p = self.pos_of(v.span());
            let key = format!("steps[{i}]");
            let Some(name) = v.as_str() else {
                self.wrong_type(p, &key, "a step name", v.type_name());
                continue;
            };
            if !self.steps.names().contains(&name) {
                let hint = match closest(name, &self.steps.names()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("the steps are: {}", self.steps.names().join(", ")),
                };
                self.error(p, &key, format!("unknown step `{name}`; {hint}"));
            } else if out.iter().any(|s| s.name == name) {
                self.error(
                    p,
                    &key,
                    format!("step `{name}` is listed twice; remove one"),
                );
            } else {
                out.push(StepEntry {
                    name: name.to_string(),
                    pos: p,
                });
            }
        }
        if arr.is_empty() {
            self.error(
                pos,
                "steps",
                format!(
                    "lists no step; the steps are: {}",
                    self.steps.names().join(", ")
                ),
            );
        }
        out
    }
}
