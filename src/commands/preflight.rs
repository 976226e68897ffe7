//! `preflight`: what the recipe needs from the account.

use std::path::Path;

use anyhow::Result;

use crate::open::{EnvMode, Options, load_runbook, open_state};
use crate::preflight::preflight_checks;

pub async fn preflight(runbook: &Path, opts: &Options) -> Result<()> {
    let rb = load_runbook(runbook, EnvMode::Strict)?;
    let aws = crate::open::connect(&rb, opts).await?;
    // Read only (no lock): what the state adopted counts as its own.
    let backend = open_state(&rb, opts, "preflight").await?;
    let state = backend.load(&rb.name).await?;
    crate::say!("Preflight for runbook `{}` in {}:", rb.name, aws.region);
    preflight_checks(&rb, &aws, &state, &backend, true).await
}
