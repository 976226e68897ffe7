//! One Lambda function as `init` reads it from the account (shared by
//! the runbook it writes and the search for a proxy already in front).

/// What the account says about one function.
#[derive(Default)]
pub struct Function {
    pub name: String,
    pub role: Option<String>,
    pub security_groups: Vec<String>,
    /// The variable that holds the DB's address now, or DB_HOST.
    pub env_var: String,
    /// Why `env_var` was chosen, for the runbook's comment.
    pub env_var_note: &'static str,
    /// The function's variables, only to find `env_var`: never shown.
    pub(super) variables: Vec<(String, String)>,
    /// `env_var` holds the endpoint of the proxy already in front of the DB.
    pub on_proxy: bool,
}
