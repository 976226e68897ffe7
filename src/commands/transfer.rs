//! `state push` / `state pull`: a state moved between a local file and S3,
//! each side locked.

use std::path::Path;

use anyhow::Result;

use crate::error::Failure;
use crate::open::{EnvMode, Options, default_state_path, load_runbook};
use crate::state::backend::Backend;
use crate::state::s3::{S3Place, S3State};

/// The runbook's local state file: --state PATH, else the default.
fn local(rb: &crate::runbook::Runbook, opts: &Options) -> Result<std::path::PathBuf> {
    match &opts.state {
        Some(p) if S3Place::parse(&p.to_string_lossy()).is_some() => Err(Failure::usage(
            "--state names the local file here (the S3 side is --to / --from)",
        )),
        Some(p) => Ok(p.clone()),
        None => Ok(default_state_path(rb)),
    }
}

async fn s3_side(
    rb: &crate::runbook::Runbook,
    opts: &Options,
    url: &str,
    command: &str,
) -> Result<S3State> {
    let place = match S3Place::parse(url) {
        Some(Ok(p)) => p,
        Some(Err(why)) => return Err(Failure::usage(why)),
        None => return Err(Failure::usage(format!("`{url}` is not s3://BUCKET/KEY"))),
    };
    let (region, kms_key) = match &rb.state {
        Some(t) => (t.region.clone(), None),
        None => (None, None),
    };
    let place = S3Place {
        region,
        kms_key,
        ..place
    };
    let client = crate::aws::s3_client(&opts.aws, rb.aws(), place.region.as_deref()).await?;
    Ok(S3State::new(place, client, command))
}

/// `state push RUNBOOK --to s3://BUCKET/KEY`.
pub async fn push(runbook: &Path, to: &str, opts: &Options) -> Result<()> {
    let rb = load_runbook(runbook, EnvMode::Lenient)?;
    let file = local(&rb, opts)?;
    if !file.exists() {
        return Err(Failure::usage(format!(
            "there is no state at {}: nothing to push",
            file.display()
        )));
    }
    let from = Backend::File(file.clone());
    let s3 = s3_side(&rb, opts, to, "state push").await?;
    let (_here, state) = from.lock_and_load(&rb.name).await?;
    s3.lock().await?;
    s3.load(&rb.name).await?;
    if s3.found() {
        return Err(Failure::usage(format!(
            "{} holds a state already: nothing was moved (pull it, or push to another key)",
            s3.place
        )));
    }
    // Created only if there is still none (If-None-Match).
    s3.save(&state).await?;
    let kept = file.with_extension("json.pushed");
    std::fs::rename(&file, &kept).map_err(|e| {
        anyhow::anyhow!(
            "pushed, but cannot rename {} to {}: {e}",
            file.display(),
            kept.display()
        )
    })?;
    // Its copy would offer, later, to put back a state that now lives in S3
    // (the copy kept is `kept`).
    let _ = std::fs::remove_file(crate::state::recovery::backup_path(&file));
    crate::say!(
        "Moved the state of `{}` to {} (the local copy is kept as {}). From now on, use it \
         with `--state {}`, or in the runbook:\n[state]\nbucket = \"{}\"\nkey = \"{}\"",
        rb.name,
        s3.place,
        kept.display(),
        s3.place,
        s3.place.bucket,
        s3.place.key
    );
    Ok(())
}

/// `state pull RUNBOOK --from s3://BUCKET/KEY`.
pub async fn pull(runbook: &Path, from: &str, opts: &Options) -> Result<()> {
    let rb = load_runbook(runbook, EnvMode::Lenient)?;
    let file = local(&rb, opts)?;
    if file.exists() {
        return Err(Failure::usage(format!(
            "{} exists: nothing was moved (move it aside first)",
            file.display()
        )));
    }
    let s3 = s3_side(&rb, opts, from, "state pull").await?;
    let to = Backend::File(file.clone());
    let (_here, _) = to.lock_and_load(&rb.name).await?;
    s3.lock().await?;
    let state = s3.load(&rb.name).await?;
    if !s3.found() {
        return Err(Failure::usage(format!(
            "there is no state at {}: nothing to pull",
            s3.place
        )));
    }
    to.save(&state).await?;
    s3.delete_state().await?;
    crate::say!(
        "Moved the state of `{}` from {} to {} (the object is deleted; a versioned bucket \
         keeps its history). Remove the runbook's [state] table, or pass --state {}.",
        rb.name,
        s3.place,
        file.display(),
        file.display()
    );
    Ok(())
}
