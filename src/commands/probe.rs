//! `probe`: prove the wiring without the user's functions. In each
//! distinct configuration of the runbook's functions (execution role,
//! subnets, security groups) a short-lived function of the tool's own
//! connects to every endpoint of the proxy as the runbook configures
//! clients, and is deleted; the verdicts name the step owning a failure.
//! Every probe function is written in the state before it is created, so
//! one a kill left is deleted by the next `probe`, `run` or `rollback`.

use std::path::Path;

use anyhow::Result;
use async_trait::async_trait;

use crate::aws::Aws;
use crate::error::Failure;
use crate::open::{EnvMode, Options, check_place, load_runbook, open_state};
use crate::probe::render::render;
use crate::probe::run::{Ledger, Subject, probe as run_probe, sweep};
use crate::state::State;
use crate::state::backend::Backend;
use crate::ui::progress::Progress;

/// Writes each probe function in the state (saved) before it is made,
/// and strikes it off once it is gone.
pub struct StateLedger<'a> {
    pub backend: &'a Backend,
    pub state: &'a mut State,
}

#[async_trait]
impl Ledger for StateLedger<'_> {
    async fn note(&mut self, function: &str, exists: bool) -> Result<()> {
        let listed = self.state.probes.iter().any(|p| p == function);
        if exists == listed {
            return Ok(());
        }
        if exists {
            self.state.probes.push(function.to_string());
        } else {
            self.state.probes.retain(|p| p != function);
        }
        self.backend.save(self.state).await
    }
}

/// Deletes what an earlier probe of this state left, when the state says
/// one may be left (a probe written down, or an invoke check that
/// probes): `run` and `rollback` call this before their work.
pub async fn sweep_recorded(
    aws: &Aws,
    rb: &crate::runbook::Runbook,
    backend: &Backend,
    state: &mut State,
) -> Result<()> {
    // The invoke check deletes its probes before it is applied: one that
    // was not may have left one.
    let invoke_probe = state.record("invoke-check").is_some_and(|r| {
        r.status != crate::state::Status::Applied
            && r.inputs.as_ref().is_some_and(|i| i.get("probe").is_some())
    });
    if state.probes.is_empty() && !invoke_probe {
        return Ok(());
    }
    let deleted = sweep_all(aws, rb, backend, state).await?;
    if !deleted.is_empty() {
        crate::say!(
            "Deleted the probe function(s) an interrupted probe left: {}",
            deleted.join(", ")
        );
    }
    Ok(())
}

/// Deletes every probe function of the runbook the account holds, and
/// strikes off the state what was written down but never made (a probe
/// killed before its create answered).
async fn sweep_all(
    aws: &Aws,
    rb: &crate::runbook::Runbook,
    backend: &Backend,
    state: &mut State,
) -> Result<Vec<String>> {
    let deleted = sweep(aws, &rb.name, &mut StateLedger { backend, state }).await?;
    if !state.probes.is_empty() {
        state.probes.clear();
        backend.save(state).await?;
    }
    Ok(deleted)
}

pub async fn probe(runbook: &Path, opts: &Options) -> Result<()> {
    let rb = load_runbook(runbook, EnvMode::Strict)?;
    if rb.lambdas.is_empty() {
        return Err(Failure::usage(format!(
            "{}: the runbook lists no [[lambda]]: the probe runs in the functions' \
             configurations",
            rb.path.display()
        )));
    }
    let subject = Subject::of(&rb, |t| t.literal().unwrap_or_default());
    let backend = open_state(&rb, opts, "probe").await?;
    let (_lock, mut state) = backend.lock_and_load(&rb.name).await?;
    let aws = Aws::connect(&opts.aws, rb.aws()).await?;
    if check_place(&mut state, &aws, &backend).await? {
        backend.save(&state).await?;
    }
    let proxy = rb
        .proxy
        .name
        .literal()
        .or_else(|| state.record("proxy")?.outputs.get("name").cloned());
    let Some(proxy) = proxy else {
        return Err(Failure::usage(
            "proxy.name must be known to probe the proxy: run the runbook first",
        ));
    };
    let progress = Progress::new(opts.no_progress);
    let bar = progress.step("probe");
    let leftover = sweep_all(&aws, &rb, &backend, &mut state).await?;
    if !leftover.is_empty() {
        bar.note(format!(
            "deleted the probe function(s) an interrupted probe left: {}",
            leftover.join(", ")
        ));
    }
    let mut ledger = StateLedger {
        backend: &backend,
        state: &mut state,
    };
    let findings = run_probe(&aws, &subject, &proxy, &bar, &mut ledger, None).await;
    let findings = match findings {
        Ok(f) => f,
        Err(e) => {
            bar.finish("✗", "failed");
            return Err(e);
        }
    };
    bar.finish(
        if findings.passed() { "✓" } else { "✗" },
        if findings.passed() {
            "passed"
        } else {
            "failed"
        },
    );
    if opts.output == crate::cli::Output::Json {
        let mut doc = serde_json::to_value(&findings)?;
        doc["command"] = "probe".into();
        doc["runbook"] = rb.name.clone().into();
        doc["passed"] = findings.passed().into();
        crate::ui::progress::emit_json(&doc);
    } else {
        for line in render(&findings) {
            crate::say!("{line}");
        }
    }
    let left: Vec<&str> = findings
        .configurations
        .iter()
        .filter_map(|c| c.left_behind.as_deref())
        .collect();
    if !left.is_empty() {
        return Err(Failure::steps_failed(left.join("\n")));
    }
    if !findings.passed() {
        return Err(Failure::steps_failed(
            "the probe failed: see each failure's step and fix above",
        ));
    }
    Ok(())
}
