//! `preflight`: what the recipe needs from the account.

use std::path::Path;

use anyhow::Result;

use crate::aws::Aws;
use crate::open::{EnvMode, Options, load_runbook};
use crate::preflight::preflight_checks;

pub async fn preflight(runbook: &Path, opts: &Options) -> Result<()> {
    let rb = load_runbook(runbook, EnvMode::Strict)?;
    let aws = Aws::connect(&opts.aws, rb.region.as_deref()).await?;
    crate::say!("Preflight for runbook `{}` in {}:", rb.name, aws.region);
    preflight_checks(&rb, &aws, true).await
}
