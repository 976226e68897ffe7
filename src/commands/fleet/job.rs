//! What each runbook of a fleet does: `run` (or `resume`), `plan`,
//! `status` or `rollback`, with the command's own options.

use crate::cli::Selection;
use crate::commands::plan::PlanHow;
use crate::engine::runner::RunHow;

/// What each runbook of the fleet does.
pub enum Job<'a> {
    /// `run` or `resume` (`how.resume`).
    Run {
        select: &'a Selection,
        how: RunHow,
    },
    Plan {
        how: PlanHow,
    },
    Status {
        history: bool,
    },
    Rollback {
        to: Option<&'a str>,
        yes: bool,
        include_adopted: bool,
    },
}

impl Job<'_> {
    pub(super) fn verb(&self) -> &'static str {
        match self {
            Job::Run { how, .. } if how.resume => "resume",
            Job::Run { .. } => "run",
            Job::Plan { .. } => "plan",
            Job::Status { .. } => "status",
            Job::Rollback { .. } => "rollback",
        }
    }

    /// Whether it may change the account (and so is asked for once).
    pub(super) fn acts(&self) -> bool {
        matches!(self, Job::Run { .. } | Job::Rollback { .. })
    }
}
