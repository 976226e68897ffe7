//! `[proxy]` and `[pool]`: the proxy's settings and its connection pool.

use toml_edit::Item;

use crate::runbook::names::check_proxy_name;
use crate::{limits, validate};

use crate::runbook::reader::{Cx, Tbl};
use crate::runbook::types::*;

impl Cx<'_> {
    /// `[proxy]`; its subnets default to the network's, its role and
    /// group to the outputs of the steps that make them.
    /// With the proxy, the position of its `default_auth_scheme` (for the
    /// rules that compare it with other sections).
    pub(super) fn proxy(
        &mut self,
        top: &mut Tbl,
        network_subnets: Option<&[Text]>,
    ) -> Option<(Proxy, Pos)> {
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
    pub(super) fn pool(&mut self, top: &mut Tbl) -> Pool {
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
}
