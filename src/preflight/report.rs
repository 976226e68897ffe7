//! Preflight's report: each check passed, each problem with its fix, the
//! warnings; how it is printed, and the verdict (exit 5 on a problem).

use anyhow::Result;

use crate::error::Failure;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub what: String,
    pub fix: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "✗ {}\n      fix: {}", self.what, self.fix)
    }
}

#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub checked: Vec<String>,
    pub problems: Vec<Problem>,
    /// What is advised but not needed (a state bucket without versioning).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// What the DB can hold, for the connection budget (read once).
    #[serde(skip)]
    pub capacity: Option<crate::db::Capacity>,
}

impl Report {
    pub(super) fn ok(&mut self, what: impl Into<String>) {
        self.checked.push(what.into());
    }

    /// Takes in the findings of a check that ran on its own.
    pub(super) fn absorb(&mut self, part: Report) {
        self.checked.extend(part.checked);
        self.problems.extend(part.problems);
        self.warnings.extend(part.warnings);
        self.capacity = self.capacity.take().or(part.capacity);
    }

    pub fn problem(&mut self, what: impl Into<String>, fix: impl Into<String>) {
        self.problems.push(Problem {
            what: what.into(),
            fix: fix.into(),
        });
    }
}

/// Prints a preflight report: every check when `all`, else only the
/// problems, and a summary line.
pub fn print_preflight(report: &Report, all: bool) {
    if all {
        for c in &report.checked {
            crate::say!("  ✓ {c}");
        }
    }
    for p in &report.problems {
        crate::say!("  {p}");
    }
    for w in &report.warnings {
        crate::say!("  ! warning: {w}");
    }
    let (passed, problems) = (report.checked.len(), report.problems.len());
    if problems == 0 {
        crate::say!("Preflight: all {passed} checks passed.");
    } else {
        crate::say!("Preflight: {passed} checks passed, {problems} problem(s).");
    }
}

/// Err (exit 5) when preflight found problems, after printing them.
pub(crate) fn preflight_verdict(report: &Report) -> Result<()> {
    match report.problems.len() {
        0 => Ok(()),
        n => Err(Failure::preflight(format!(
            "preflight found {n} problem(s) in the account (listed above); nothing was changed"
        ))),
    }
}
