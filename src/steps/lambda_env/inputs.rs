//! The lambda-env step's inputs, as the state records them: each function's
//! variable, the host it gets (the proxy's endpoint, or an `[[endpoint]]`'s
//! for a reader variable) and what rollback may put back in it.

use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Function {
    pub(super) name: String,
    pub(super) variable: String,
    /// What rollback sets the variable to when it already pointed at the
    /// proxy before this state touched it (an adopted setup: its real old
    /// value is unknown), from the runbook's `restore_value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) restore: Option<String>,
    /// The same for `rollback --include-adopted` only (the runbook's
    /// `include_adopted_restore_value`, as `init` writes it for a function
    /// it found on a proxy): a plain rollback leaves the variable as found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) include_adopted_restore: Option<String>,
    /// The host this variable gets when not the proxy's default endpoint:
    /// an `[[endpoint]]`'s (a reader variable such as DB_READ_HOST).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) endpoint: Option<String>,
}

#[derive(Serialize, Deserialize)]
pub struct Inputs {
    pub(super) endpoint: String,
    pub(super) functions: Vec<Function>,
}

impl Function {
    /// The host this variable gets.
    pub(super) fn target<'a>(&'a self, i: &'a Inputs) -> &'a str {
        self.endpoint.as_deref().unwrap_or(&i.endpoint)
    }

    /// The key of its old value in the state's `before`.
    pub(super) fn key(&self) -> String {
        format!("{}.{}", self.name, self.variable)
    }
}
