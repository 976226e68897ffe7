//! The runbook's schema: one reader per section, each reporting its own
//! problems; the runbook is whole only when every section is.

use std::path::Path;

use toml_edit::{Item, Value};

use std::collections::BTreeMap;

use super::names::{check_proxy_name, check_runbook_name, closest};
use super::reader::{Cx, Tbl};
use super::types::*;
use crate::{limits, validate};

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

    /// How the proxy logs in to the DB, against the engine and the other
    /// sections: a secret unless end-to-end IAM; end-to-end IAM not for SQL
    /// Server (AWS supports it for MySQL, MariaDB and PostgreSQL only), nor
    /// with the managed secret policy (which grants no rds-db:connect).
    fn auth_rules(
        &mut self,
        db: &Database,
        proxy: &Proxy,
        scheme_pos: Pos,
        access: SecretAccess,
        listed: bool,
    ) {
        if listed && let Some(s) = &db.secret_arn {
            self.error(
                s.pos,
                "database.secret_arn",
                "the proxy's secrets are its [[auth]] entries: move this one into an [[auth]] \
                 table (secret_arn = ...) or remove the [[auth]] tables",
            );
        }
        match proxy.default_auth_scheme {
            AuthScheme::None if db.secret_arn.is_none() && !listed => self.error(
                db.pos,
                "database.secret_arn",
                "missing required key: add `secret_arn = \"...\"` in [database], the ARN of \
                 the Secrets Manager secret (username and password) the proxy logs in to the DB \
                 with; or set proxy.default_auth_scheme = \"IAM_AUTH\" for a proxy that logs in \
                 with IAM (MySQL and PostgreSQL)",
            ),
            AuthScheme::IamAuth if db.engine_family == EngineFamily::Sqlserver => self.error(
                scheme_pos,
                "proxy.default_auth_scheme",
                "end-to-end IAM authentication is not available for SQL Server (AWS supports \
                 it for MySQL, MariaDB and PostgreSQL): a SQL Server proxy logs in with a \
                 secret; set default_auth_scheme = \"NONE\" and give database.secret_arn",
            ),
            AuthScheme::IamAuth if access == SecretAccess::Managed => self.error(
                scheme_pos,
                "proxy.default_auth_scheme",
                "end-to-end IAM needs rds-db:connect on the DB for the proxy's role, which \
                 secret_access.mode = \"managed\" (SecretsManagerReadWrite) does not grant: \
                 remove that line (least-privilege, the default, grants both)",
            ),
            _ => {}
        }
    }

    /// Each `[[auth]]`: a secret the proxy logs in with, its clients' IAM
    /// setting and password authentication, checked against the engine.
    fn auth(
        &mut self,
        top: &mut Tbl,
        db: Option<&Database>,
        proxy: Option<&Proxy>,
    ) -> Vec<AuthEntry> {
        let family = db.map(|d| d.engine_family);
        let default_iam = proxy.map_or("REQUIRED", |p| p.iam_auth.as_str());
        let mut entries: Vec<AuthEntry> = Vec::new();
        for mut t in self.tables(top, "auth") {
            let secret_arn = self.text(&mut t, "secret_arn", true);
            self.shape(secret_arn.as_ref(), validate::secret_arn);
            let user = self.literal(&mut t, "user", false);
            if let Some(u) = &user
                && let Err(why) = validate::db_user(u)
            {
                let pos = self.value_pos(&t, "user");
                self.error(pos, &t.key_path("user"), why);
            }
            let iam_pos = self.value_pos(&t, "iam_auth");
            let iam_auth = self.choice(
                &mut t,
                "iam_auth",
                &["REQUIRED", "DISABLED", "ENABLED"],
                default_iam,
            );
            if iam_auth == "ENABLED" && family.is_some_and(|f| f != EngineFamily::Sqlserver) {
                self.error(
                    iam_pos,
                    &t.key_path("iam_auth"),
                    "ENABLED (IAM or password, the client's choice) is for SQL Server proxies \
                     only: use REQUIRED or DISABLED",
                );
            }
            let cpat_pos = self.value_pos(&t, "client_password_auth_type");
            let all: Vec<&'static str> = [
                EngineFamily::Mysql,
                EngineFamily::Postgresql,
                EngineFamily::Sqlserver,
            ]
            .into_iter()
            .flat_map(|f| client_password_auth_types(f).iter().copied())
            .collect();
            let cpat = Some(self.choice(&mut t, "client_password_auth_type", &all, ""))
                .filter(|c| !c.is_empty());
            if let (Some(c), Some(f)) = (cpat, family)
                && !client_password_auth_types(f).contains(&c)
            {
                self.error(
                    cpat_pos,
                    &t.key_path("client_password_auth_type"),
                    format!(
                        "{c} is not for a {} proxy: use {}",
                        f.as_str(),
                        client_password_auth_types(f).join(" or ")
                    ),
                );
            }
            let description =
                self.literal_shaped(&mut t, "description", false, validate::auth_description);
            let user_pos = self.value_pos(&t, "user");
            let user_key = t.key_path("user");
            self.finish(t);
            let Some(secret_arn) = secret_arn else {
                continue;
            };
            if let Some(lit) = secret_arn.literal()
                && entries
                    .iter()
                    .any(|e| e.secret_arn.literal() == Some(lit.clone()))
            {
                self.error(
                    secret_arn.pos,
                    &secret_arn.key,
                    "this secret is in another [[auth]] entry already: remove one",
                );
            }
            if let Some(u) = &user
                && entries.iter().any(|e| e.user.as_ref() == Some(u))
            {
                self.error(
                    user_pos,
                    &user_key,
                    format!(
                        "`{u}` is the user of another [[auth]] entry already: one secret per user"
                    ),
                );
            }
            entries.push(AuthEntry {
                secret_arn,
                user,
                iam_auth,
                client_password_auth_type: cpat,
                description,
            });
        }
        entries
    }

    /// A function's `db_user`, against the users the `[[auth]]` entries
    /// name: with secrets (not end-to-end IAM), a user no secret logs in as
    /// would be refused by the proxy.
    fn lambda_users(&mut self, lambdas: &[Lambda], auth: &[AuthEntry], proxy: Option<&Proxy>) {
        let users: Vec<&str> = auth.iter().filter_map(|a| a.user.as_deref()).collect();
        let iam = proxy.is_some_and(|p| p.default_auth_scheme == AuthScheme::IamAuth);
        if users.is_empty() || iam {
            return;
        }
        for (i, l) in lambdas.iter().enumerate() {
            if let Some(u) = l.db_user.as_deref().filter(|u| !users.contains(u)) {
                self.error(
                    l.pos,
                    &format!("lambda[{i}].db_user"),
                    format!(
                        "no [[auth]] entry logs in as `{u}` (they log in as {}): name one of \
                         them, or add an [[auth]] entry with user = \"{u}\"",
                        users.join(", ")
                    ),
                );
            }
        }
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

    /// `[proxy]`; its subnets default to the network's, its role and
    /// group to the outputs of the steps that make them.
    /// With the proxy, the position of its `default_auth_scheme` (for the
    /// rules that compare it with other sections).
    fn proxy(&mut self, top: &mut Tbl, network_subnets: Option<&[Text]>) -> Option<(Proxy, Pos)> {
        let mut t = self.table(top, "proxy", true)?;
        let scheme_span = t.table.get("default_auth_scheme").and_then(Item::span);
        let scheme_pos = scheme_span.map_or(t.pos, |s| self.pos_of(Some(s)));
        let default_auth_scheme =
            match self.choice(&mut t, "default_auth_scheme", &["NONE", "IAM_AUTH"], "NONE") {
                "IAM_AUTH" => AuthScheme::IamAuth,
                _ => AuthScheme::None,
            };
        let name = self.text(&mut t, "name", true);
        if let Some(lit) = name
            .as_ref()
            .filter(|n| !n.unset_env)
            .and_then(Text::literal)
            && let Err(why) = check_proxy_name(&lit)
        {
            let n = name.as_ref().expect("checked");
            self.error(n.pos, &n.key, why);
        }
        let pos = t.pos;
        let role_arn = self
            .text(&mut t, "role_arn", false)
            .unwrap_or_else(|| Text::fixed_ref("proxy-role", "arn", "proxy.role_arn", pos));
        self.shape(Some(&role_arn), validate::role_arn);
        let subnet_ids = self.text_list(&mut t, "subnet_ids", false);
        self.shapes(subnet_ids.as_ref(), |v| validate::resource_id("subnet", v));
        let security_group_ids = self.text_list(&mut t, "security_group_ids", false);
        self.shapes(security_group_ids.as_ref(), |v| {
            validate::resource_id("sg", v)
        });
        let require_tls = self.bool(&mut t, "require_tls", true);
        let iam_auth = match self.choice(&mut t, "iam_auth", &["REQUIRED", "DISABLED"], "REQUIRED")
        {
            "DISABLED" => IamAuth::Disabled,
            _ => IamAuth::Required,
        };
        let endpoint_network_type = self.choice(
            &mut t,
            "endpoint_network_type",
            &["IPV4", "IPV6", "DUAL"],
            "IPV4",
        );
        let target_connection_network_type = self.choice(
            &mut t,
            "target_connection_network_type",
            &["IPV4", "IPV6"],
            "IPV4",
        );
        let idle = self.int(
            &mut t,
            "idle_client_timeout",
            1800,
            limits::IDLE_CLIENT_TIMEOUT,
            "seconds: RDS's IdleClientTimeout, up to 8 hours",
        );
        let debug_logging = self.bool(&mut t, "debug_logging", false);
        let wait = self.int(
            &mut t,
            "wait_timeout_seconds",
            1800,
            1..=86_400,
            "how long to wait for the proxy to become available",
        );
        self.finish(t);
        let name = name?;
        let security_group_ids = security_group_ids.unwrap_or_else(|| {
            vec![Text::fixed_ref(
                "proxy-security-group",
                "group_id",
                "proxy.security_group_ids",
                name.pos,
            )]
        });
        let proxy = Proxy {
            name,
            role_arn,
            subnet_ids: subnet_ids.or_else(|| network_subnets.map(<[Text]>::to_vec))?,
            security_group_ids,
            require_tls,
            iam_auth,
            default_auth_scheme,
            endpoint_network_type,
            target_connection_network_type,
            idle_client_timeout: idle as u32,
            debug_logging,
            wait_timeout_seconds: wait as u64,
        };
        Some((proxy, scheme_pos))
    }

    /// `[pool]`, optional: the target group's connection pool.
    fn pool(&mut self, top: &mut Tbl) -> Pool {
        let mut t = self.table(top, "pool", false);
        let mut int = |cx: &mut Self, key, default, range, why: &str| match t.as_mut() {
            Some(t) => cx.int(t, key, default, range, why),
            None => default,
        };
        let max_conn = int(
            self,
            "max_connections_percent",
            100,
            limits::MAX_CONNECTIONS_PERCENT,
            "a percentage",
        );
        let max_idle = int(
            self,
            "max_idle_connections_percent",
            50,
            limits::MAX_IDLE_CONNECTIONS_PERCENT,
            "a percentage",
        );
        let borrow = int(
            self,
            "connection_borrow_timeout",
            120,
            limits::CONNECTION_BORROW_TIMEOUT,
            "seconds a client waits for a DB connection: RDS's ConnectionBorrowTimeout",
        );
        let (init_query, filters) = match t.as_mut() {
            Some(t) => {
                let q = self
                    .literal(t, "init_query", false)
                    .filter(|q| !q.is_empty());
                let f = self
                    .text_list(t, "session_pinning_filters", false)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(Text::literal)
                    .collect::<Vec<_>>();
                for filter in &f {
                    if filter != "EXCLUDE_VARIABLE_SETS" {
                        let pos = t.pos;
                        self.error(
                            pos,
                            "pool.session_pinning_filters",
                            format!("`{filter}` is not a session pinning filter: the only one is EXCLUDE_VARIABLE_SETS"),
                        );
                    }
                }
                (q, f)
            }
            None => (None, Vec::new()),
        };
        if max_idle > max_conn {
            let pos = t.as_ref().map_or(Pos::start(), |t| {
                let item = t.table.get("max_idle_connections_percent");
                self.pos_of(item.and_then(Item::span)).max(t.pos)
            });
            self.error(
                pos,
                "pool.max_idle_connections_percent",
                format!("{max_idle} must not exceed max_connections_percent ({max_conn})"),
            );
        }
        if let Some(t) = t {
            self.finish(t);
        }
        Pool {
            max_connections_percent: max_conn as u32,
            max_idle_connections_percent: max_idle as u32,
            connection_borrow_timeout: borrow as u32,
            init_query,
            session_pinning_filters: filters,
        }
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

    /// Each `[[lambda]]`: a function to put behind the proxy.
    fn lambdas(&mut self, top: &mut Tbl) -> Vec<Lambda> {
        let mut lambdas = Vec::new();
        for mut t in self.tables(top, "lambda") {
            let function_name = self.text(&mut t, "function_name", true);
            self.shape(function_name.as_ref(), validate::function_name);
            let security_group_id = self.text(&mut t, "security_group_id", false);
            self.shape(security_group_id.as_ref(), |v| {
                validate::resource_id("sg", v)
            });
            let env_var = self
                .literal_shaped(&mut t, "env_var", false, validate::variable_name)
                .unwrap_or_else(|| "DB_HOST".into());
            let restore_value = self.text(&mut t, "restore_value", false);
            self.shape(restore_value.as_ref(), validate::host);
            let adopted_only = "include_adopted_restore_value";
            let include_adopted_restore_value = self.text(&mut t, adopted_only, false);
            self.shape(include_adopted_restore_value.as_ref(), validate::host);
            if restore_value.is_some() && include_adopted_restore_value.is_some() {
                let pos = self.value_pos(&t, adopted_only);
                self.error(
                    pos,
                    &t.key_path(adopted_only),
                    "give one of restore_value (every rollback puts it back) and \
                     include_adopted_restore_value (only `rollback --include-adopted` does): \
                     remove the other",
                );
            }
            let read_env_var =
                self.literal_shaped(&mut t, "read_env_var", false, validate::variable_name);
            if let Some(v) = read_env_var.as_ref().filter(|v| **v == env_var) {
                let pos = t.pos;
                self.error(
                    pos,
                    &t.key_path("read_env_var"),
                    format!("`{v}` is env_var already: name another variable (DB_READ_HOST)"),
                );
            }
            let read_endpoint = self.literal(&mut t, "read_endpoint", false);
            let db_user = self.literal(&mut t, "db_user", false);
            if let Some(u) = &db_user
                && let Err(why) = validate::db_user(u)
            {
                let pos = self.value_pos(&t, "db_user");
                self.error(pos, &t.key_path("db_user"), why);
            }
            let pos = t.pos;
            self.finish(t);
            if let Some(function_name) = function_name {
                lambdas.push(Lambda {
                    function_name,
                    security_group_id,
                    env_var,
                    read_env_var,
                    read_endpoint,
                    db_user,
                    restore_value,
                    include_adopted_restore_value,
                    pos,
                });
            }
        }
        lambdas
    }

    /// Each `[[endpoint]]`, against the DB (READ_ONLY serves Aurora readers
    /// only), the step list, and the functions that read one.
    fn endpoints(
        &mut self,
        top: &mut Tbl,
        db: Option<&Database>,
        lambdas: &[Lambda],
        steps: &[StepEntry],
    ) -> Vec<Endpoint> {
        let mut endpoints = Vec::new();
        for mut t in self.tables(top, "endpoint") {
            let pos = t.pos;
            let name = self.literal(&mut t, "name", true);
            if let Some(n) = &name
                && let Err(why) = check_proxy_name(n)
            {
                self.error(pos, &t.key_path("name"), why);
            }
            let target_role = self.choice(
                &mut t,
                "target_role",
                &["READ_ONLY", "READ_WRITE"],
                "READ_ONLY",
            );
            if target_role == "READ_ONLY" && db.is_some_and(|d| d.cluster_id.is_none()) {
                self.error(
                    pos,
                    &t.key_path("target_role"),
                    "READ_ONLY endpoints serve an Aurora cluster's reader instances, and an RDS \
                     instance has none: use database.cluster_id, or target_role = \"READ_WRITE\"",
                );
            }
            let subnet_ids = self.text_list(&mut t, "subnet_ids", false);
            self.shapes(subnet_ids.as_ref(), |v| validate::resource_id("subnet", v));
            let security_group_ids = self.text_list(&mut t, "security_group_ids", false);
            self.shapes(security_group_ids.as_ref(), |v| {
                validate::resource_id("sg", v)
            });
            if !steps.iter().any(|s| s.name == "proxy-endpoints") {
                self.error(
                    pos,
                    &t.path,
                    "no step makes it: add \"proxy-endpoints\" to steps, after \"targets\"",
                );
            }
            self.finish(t);
            if let Some(name) = name {
                endpoints.push(Endpoint {
                    name,
                    target_role,
                    subnet_ids,
                    security_group_ids,
                });
            }
        }
        for (i, l) in lambdas.iter().enumerate() {
            let Some(var) = &l.read_env_var else {
                if l.read_endpoint.is_some() {
                    self.error(
                        l.pos,
                        &format!("lambda[{i}].read_endpoint"),
                        "read_endpoint names the endpoint read_env_var gets: add read_env_var",
                    );
                }
                continue;
            };
            let found = match &l.read_endpoint {
                Some(n) => endpoints.iter().filter(|e| e.name == *n).count(),
                None => endpoints
                    .iter()
                    .filter(|e| e.target_role == "READ_ONLY")
                    .count(),
            };
            if found != 1 {
                let why = match &l.read_endpoint {
                    Some(n) => format!("there is no [[endpoint]] named `{n}`"),
                    None if found == 0 => "there is no READ_ONLY [[endpoint]]".to_string(),
                    None => "there are several READ_ONLY [[endpoint]]s".to_string(),
                };
                self.error(
                    l.pos,
                    &format!("lambda[{i}].read_env_var"),
                    format!(
                        "{var} would get an endpoint's host, but {why}: add one, or name it \
                         with read_endpoint"
                    ),
                );
            }
        }
        endpoints
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
