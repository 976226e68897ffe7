//! `[[lambda]]` and `[[endpoint]]`: the functions put behind the proxy,
//! and the proxy's extra endpoints (against the DB, the steps and the
//! functions that read one).

use crate::runbook::names::check_proxy_name;
use crate::validate;

use crate::runbook::reader::{Cx, Tbl};
use crate::runbook::types::*;

impl Cx<'_> {
    /// Each `[[lambda]]`: a function to put behind the proxy.
    pub(super) fn lambdas(&mut self, top: &mut Tbl) -> Vec<Lambda> {
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
    pub(super) fn endpoints(
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
}
