//! The runbook file: parse the TOML, check every key and value, fill
//! `${env.*}` references, and keep `${steps.*}` references for later.
//!
//! The typed [`Runbook`] is built by one walk over the document that also
//! records which keys it read; whatever it did not read is an unknown key.
//! That keeps the schema in one place (the code below) and lets every
//! problem be collected and reported at once, each with its file position.

use std::path::Path;

mod alarm_settings;
mod alarms;
mod names;
mod reader;
mod render;
mod rules;
mod sections;
mod types;

#[cfg(test)]
pub use alarm_settings::defaults as alarm_defaults;
pub use alarm_settings::{
    AlarmKind, AlarmSettings, DEFAULT_AVAILABILITY, DEFAULT_BAND, DEFAULT_PER_CLIENT_PER_SECOND,
    DEFAULT_PERCENT, SurgeMode,
};
pub(crate) use names::closest;
pub use names::{check_proxy_name, check_runbook_name};
use reader::Cx;
pub use render::render;
pub use types::*;

impl Runbook {
    /// The users the functions connect as when any names one (each
    /// function's `db_user`, else `default`), sorted, once each; empty when
    /// none names one.
    pub fn function_users(&self, default: &str) -> Vec<String> {
        if self.lambdas.iter().all(|l| l.db_user.is_none()) {
            return Vec::new();
        }
        let users: std::collections::BTreeSet<String> = self
            .lambdas
            .iter()
            .map(|l| l.db_user.clone().unwrap_or_else(|| default.to_string()))
            .collect();
        users.into_iter().collect()
    }

    /// The endpoint a function's reader variable gets: `read_endpoint`, else
    /// the only READ_ONLY one (the parser has checked there is one).
    pub fn reader_endpoint_name<'a>(&'a self, l: &'a Lambda) -> Option<&'a str> {
        l.read_env_var.as_ref()?;
        l.read_endpoint.as_deref().or_else(|| {
            self.endpoints
                .iter()
                .find(|e| e.target_role == "READ_ONLY")
                .map(|e| e.name.as_str())
        })
    }

    /// Where a value is in the runbook file, as `file:line:col`.
    pub fn at(&self, pos: Pos) -> String {
        format!("{}:{}:{}", self.path.display(), pos.line, pos.col)
    }

    /// Reads and checks a runbook. Every problem is reported at once.
    /// `lenient`: an unset `${env.*}` becomes a placeholder instead of an
    /// error (for commands that work from the state alone).
    pub fn load(
        path: &Path,
        env: EnvLookup,
        lenient: bool,
        steps: &dyn StepCatalogue,
    ) -> Result<Runbook, RunbookError> {
        let src = std::fs::read_to_string(path).map_err(|e| RunbookError {
            path: path.to_path_buf(),
            source: None,
            diagnostics: vec![Diagnostic {
                pos: Pos::start(),
                key: String::new(),
                message: format!("cannot read the runbook: {e}; check the path"),
            }],
        })?;
        Runbook::parse_with(path, &src, env, lenient, steps)
    }

    /// Checks a runbook's text as if it were the file at `path`.
    pub fn parse(
        path: &Path,
        src: &str,
        env: EnvLookup,
        steps: &dyn StepCatalogue,
    ) -> Result<Runbook, RunbookError> {
        Runbook::parse_with(path, src, env, false, steps)
    }

    fn parse_with(
        path: &Path,
        src: &str,
        env: EnvLookup,
        lenient: bool,
        steps: &dyn StepCatalogue,
    ) -> Result<Runbook, RunbookError> {
        let fail = |diagnostics| RunbookError {
            path: path.to_path_buf(),
            source: Some(src.to_string()),
            diagnostics,
        };
        let doc = toml_edit::Document::parse(src.to_string()).map_err(|e| {
            let pos = Pos::at(src, e.span().map_or(0, |s| s.start));
            fail(vec![Diagnostic {
                pos,
                key: String::new(),
                message: format!("not valid TOML: {}", e.message().trim()),
            }])
        })?;
        let base_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut cx = Cx {
            src,
            env,
            lenient,
            base_dir,
            steps,
            diags: Vec::new(),
        };
        let runbook = cx.runbook(path, doc.as_table());
        let mut diags = cx.diags;
        if let Some(rb) = &runbook {
            diags.extend(steps.check(rb, !lenient));
        }
        diags.sort_by_key(|d| d.pos);
        diags.dedup();
        match runbook {
            Some(rb) if diags.is_empty() => Ok(rb),
            _ => Err(fail(diags)),
        }
    }

    pub fn step_names(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().map(|s| s.name.as_str())
    }
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
