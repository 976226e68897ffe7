//! `unlock`: remove the lock a killed process left on a state in S3, by
//! the id the "locked" error gave, and only that lock.

use std::path::Path;

use anyhow::Result;

use crate::error::Failure;
use crate::open::{EnvMode, Options, load_runbook, open_state};
use crate::state::backend::Backend;

/// `unlock RUNBOOK --force LOCK_ID`.
pub async fn unlock(runbook: &Path, id: &str, opts: &Options) -> Result<()> {
    let rb = load_runbook(runbook, EnvMode::Lenient)?;
    let Backend::S3(s3) = open_state(&rb, opts, "unlock").await? else {
        return Err(Failure::usage(
            "the state is a local file: its lock is released by the system when its holder \
             exits (there is nothing to remove)",
        ));
    };
    let holder = s3.unlock(id).await?;
    crate::say!(
        "Removed lock {} of {} (held by {} on {}, pid {}, `{}`, since {}).",
        holder.id,
        s3.place,
        holder.who,
        holder.host,
        holder.pid,
        holder.command,
        holder.since
    );
    Ok(())
}
