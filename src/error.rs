//! The one failure type the exit codes come from: an error is raised as
//! the kind of failure it is, and `main` exits with its code.

use crate::poll::Interrupted;
use crate::runbook::RunbookError;

pub const EXIT_STEP_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_BAD_INPUT: i32 = 3;
pub const EXIT_LOCKED: i32 = 4;
pub const EXIT_PREFLIGHT: i32 = 5;
/// `plan --detailed-exitcode`: there are changes to apply.
pub const EXIT_CHANGES: i32 = 6;
pub const EXIT_INTERRUPTED: i32 = 130;

/// Every exit code and what it means: the one source of the `--help`
/// text (`exit_codes_help`) and of the README's table, which a test holds
/// to it.
pub const EXIT_CODES: &[(i32, &str)] = &[
    (0, "success (including: nothing to change)"),
    (
        EXIT_STEP_FAILED,
        "a step failed (AWS error, drift, something not ours in the way, timeout), or a \
         confirmation was declined",
    ),
    (
        EXIT_USAGE,
        "command-line misuse: an unknown step, `resume` without a state, a step whose inputs or \
         the steps it waits on are not applied and verified in the account yet, no `--yes` when \
         stdin is not a terminal",
    ),
    (
        EXIT_BAD_INPUT,
        "bad input: the runbook or the state file is invalid, an edit needs a new resource and \
         `--allow-replace` was not given (or it cannot be replaced safely), a proxy named by \
         value does not exist, the state belongs to another account or region, or the account \
         holds what this state never made (another state's; `run --adopt` takes it over); \
         nothing was changed",
    ),
    (
        EXIT_LOCKED,
        "the state is locked by another `rds-proxy-runbook` process, or (in S3) was written by \
         another since this process read it: nothing was overwritten",
    ),
    (
        EXIT_PREFLIGHT,
        "preflight (or `init`) found problems in the account, or a rollback would strand a \
         function on the proxy; nothing was changed (or written)",
    ),
    (
        EXIT_CHANGES,
        "`plan --detailed-exitcode`: there are changes to apply",
    ),
    (
        EXIT_INTERRUPTED,
        "interrupted (Ctrl-C); the state is saved: `resume` continues",
    ),
];

/// The exit codes as `--help` shows them, wrapped.
pub fn exit_codes_help() -> String {
    let mut out = String::from("Exit codes:");
    for (code, meaning) in EXIT_CODES {
        let mut line = format!("\n  {code:<5}");
        for word in meaning.split(' ') {
            if line.len() + word.len() > 78 {
                out.push_str(line.trim_end());
                line = format!("\n{:7}", "");
            }
            line.push_str(word);
            line.push(' ');
        }
        out.push_str(line.trim_end());
    }
    out
}

/// What a failure says: what happened, and what to do about it, kept
/// apart. The terminal shows the fix as its own `help:` line (as miette
/// draws a diagnostic's help) and a JSON document as its own field;
/// anywhere else the error is one text (`Display`: the two joined), so a
/// state's recorded error or a fleet's summary loses nothing.
#[derive(Debug)]
pub struct Said {
    pub what: String,
    pub fix: Option<String>,
}

impl std::fmt::Display for Said {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.fix {
            Some(fix) => write!(f, "{} {fix}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

impl From<String> for Said {
    fn from(what: String) -> Said {
        Said { what, fix: None }
    }
}

impl From<&str> for Said {
    fn from(what: &str) -> Said {
        what.to_string().into()
    }
}

/// What happened and, apart, the fix (each a sentence or more).
pub fn fixed(what: impl Into<String>, fix: impl Into<String>) -> Said {
    Said {
        what: what.into(),
        fix: Some(fix.into()),
    }
}

/// Why a command ended without success, each with its exit code.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// A step failed (AWS error, drift, something not ours in the way,
    /// timeout), or a confirmation was declined.
    #[error("{0}")]
    StepsFailed(Said),
    /// Command-line misuse.
    #[error("{0}")]
    Usage(Said),
    /// The runbook or the state does not allow the command; nothing changed.
    #[error("{0}")]
    BadInput(Said),
    /// Another process holds the state's lock.
    #[error("{0}")]
    Locked(Said),
    /// The account is not ready; nothing changed.
    #[error("{0}")]
    Preflight(Said),
    /// Not a failure but an answer (`plan --detailed-exitcode`): the plan
    /// printed says what, so nothing more is said.
    #[error("there are changes to apply")]
    Changes,
    /// Ctrl-C; the state is saved.
    #[error("{0}")]
    Interrupted(Said),
    /// A fleet where not every runbook succeeded, with the fleet's code:
    /// its summary said which and why.
    #[error("not every runbook of the fleet succeeded (see the summary)")]
    Fleet(i32),
}

impl Failure {
    pub fn code(&self) -> i32 {
        match self {
            Failure::StepsFailed(_) => EXIT_STEP_FAILED,
            Failure::Usage(_) => EXIT_USAGE,
            Failure::BadInput(_) => EXIT_BAD_INPUT,
            Failure::Locked(_) => EXIT_LOCKED,
            Failure::Preflight(_) => EXIT_PREFLIGHT,
            Failure::Changes => EXIT_CHANGES,
            Failure::Interrupted(_) => EXIT_INTERRUPTED,
            Failure::Fleet(code) => *code,
        }
    }

    /// What it says, apart from its fix (none for an answer).
    pub fn said(&self) -> Option<&Said> {
        match self {
            Failure::StepsFailed(s)
            | Failure::Usage(s)
            | Failure::BadInput(s)
            | Failure::Locked(s)
            | Failure::Preflight(s)
            | Failure::Interrupted(s) => Some(s),
            Failure::Changes | Failure::Fleet(_) => None,
        }
    }

    /// Whether the error line is left out (the code is the answer).
    pub fn is_answer(&self) -> bool {
        matches!(self, Failure::Changes | Failure::Fleet(_))
    }

    pub fn steps_failed(m: impl Into<Said>) -> anyhow::Error {
        Failure::StepsFailed(m.into()).into()
    }
    pub fn usage(m: impl Into<Said>) -> anyhow::Error {
        Failure::Usage(m.into()).into()
    }
    pub fn bad_input(m: impl Into<Said>) -> anyhow::Error {
        Failure::BadInput(m.into()).into()
    }
    pub fn locked(m: impl Into<Said>) -> anyhow::Error {
        Failure::Locked(m.into()).into()
    }
    pub fn preflight(m: impl Into<Said>) -> anyhow::Error {
        Failure::Preflight(m.into()).into()
    }
    pub fn interrupted(m: impl Into<Said>) -> anyhow::Error {
        Failure::Interrupted(m.into()).into()
    }
}

/// An error as the terminal shows it: `error: ` and what happened, then a
/// failure's fix on its own `help:` line (miette's word for it), each long
/// line as it is (the terminal wraps). An error with context above the
/// failure is shown whole, on one line.
pub fn for_terminal(e: &anyhow::Error) -> String {
    let said = e
        .downcast_ref::<Failure>()
        .filter(|_| e.chain().count() == 1)
        .and_then(Failure::said);
    match said {
        Some(Said {
            what,
            fix: Some(fix),
        }) => format!("error: {what}\n  help: {fix}\n"),
        _ => format!("error: {e:#}\n"),
    }
}

/// The exit code of any error: a [`Failure`]'s own; a runbook that does
/// not load is bad input; Ctrl-C inside a step is an interruption; any
/// other error failed a step.
pub fn code_of(e: &anyhow::Error) -> i32 {
    if let Some(f) = e.downcast_ref::<Failure>() {
        f.code()
    } else if e.downcast_ref::<RunbookError>().is_some() {
        EXIT_BAD_INPUT
    } else if e.downcast_ref::<Interrupted>().is_some() {
        EXIT_INTERRUPTED
    } else {
        EXIT_STEP_FAILED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fix_is_its_own_help_line_on_the_terminal_and_joined_elsewhere() {
        let e = Failure::usage(fixed("step `b` needs `a`.", "Run `a` first."));
        assert_eq!(
            for_terminal(&e),
            "error: step `b` needs `a`.\n  help: Run `a` first.\n"
        );
        assert_eq!(e.to_string(), "step `b` needs `a`. Run `a` first.");
        assert_eq!(for_terminal(&Failure::usage("no fix")), "error: no fix\n");
        let above = e.context("while planning");
        assert_eq!(
            for_terminal(&above),
            "error: while planning: step `b` needs `a`. Run `a` first.\n"
        );
    }

    #[test]
    fn each_failure_has_its_code() {
        assert_eq!(code_of(&Failure::usage("x")), 2);
        assert_eq!(code_of(&Failure::bad_input("x")), 3);
        assert_eq!(code_of(&Failure::locked("x")), 4);
        assert_eq!(code_of(&Failure::preflight("x")), 5);
        assert_eq!(code_of(&Failure::Changes.into()), 6);
        assert_eq!(code_of(&Failure::interrupted("x")), 130);
        assert_eq!(code_of(&Interrupted.into()), 130);
        assert_eq!(code_of(&anyhow::anyhow!("AccessDenied")), 1);
    }

    /// The README's table of exit codes is this one, row for row.
    #[test]
    fn the_readmes_exit_codes_are_the_tools() {
        let readme = include_str!("../README.md");
        let rows: Vec<(i32, &str)> = readme
            .split("### Exit codes")
            .nth(1)
            .expect("the README has an exit codes section")
            .split("\n#")
            .next()
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut cells = l.strip_prefix("| ")?.strip_suffix(" |")?.split(" | ");
                Some((cells.next()?.parse().ok()?, cells.next()?))
            })
            .collect();
        assert_eq!(
            rows, EXIT_CODES,
            "README.md's exit codes differ from error::EXIT_CODES"
        );
    }

    #[test]
    fn the_help_lists_every_code_within_80_columns() {
        let help = exit_codes_help();
        for (code, _) in EXIT_CODES {
            assert!(help.contains(&format!("\n  {code} ")), "{help}");
        }
        assert!(help.lines().all(|l| l.len() <= 80), "{help}");
    }
}
