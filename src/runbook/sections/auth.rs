//! How the proxy logs in to the DB: `[[auth]]`, the rules that hold it
//! against the engine, `[database]` and `[proxy]`, and each function's
//! `db_user` against the users the secrets log in as.

use crate::validate;

use crate::runbook::reader::{Cx, Tbl};
use crate::runbook::types::*;

impl Cx<'_> {
    /// How the proxy logs in to the DB, against the engine and the other
    /// sections: a secret unless end-to-end IAM; end-to-end IAM not for SQL
    /// Server (AWS supports it for MySQL, MariaDB and PostgreSQL only), nor
    /// with the managed secret policy (which grants no rds-db:connect).
    pub(super) fn auth_rules(
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
    pub(super) fn auth(
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
    pub(super) fn lambda_users(
        &mut self,
        lambdas: &[Lambda],
        auth: &[AuthEntry],
        proxy: Option<&Proxy>,
    ) {
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
}
