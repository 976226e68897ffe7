//! `preflight`: what the recipe needs from the account.

use std::path::Path;

use anyhow::Result;

use crate::aws::Aws;
use crate::open::{EnvMode, Options, load_runbook, state_error, state_path};
use crate::preflight::preflight_checks;
use crate::state::State;

pub async fn preflight(runbook: &Path, opts: &Options) -> Result<()> {
    let rb = load_runbook(runbook, EnvMode::Strict)?;
    // Read only (no lock): what the state adopted counts as its own.
    let state = State::load(&state_path(&rb, opts), &rb.name).map_err(state_error)?;
    let aws = Aws::connect(&opts.aws, rb.region.as_deref()).await?;
    crate::say!("Preflight for runbook `{}` in {}:", rb.name, aws.region);
    preflight_checks(&rb, &aws, &state, true).await
}
