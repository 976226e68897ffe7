//! Questions on the terminal: the one parser of a yes / no / continue
//! answer, the confirmation before a command acts, and `--confirm`'s turn
//! by turn questions.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Result;

use crate::error::Failure;

/// Asks before a change when on a terminal; off a terminal, --yes is the
/// only way to agree.
pub(crate) fn confirm(question: &str, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(Failure::usage(
            "stdin is not a terminal, so there is no one to confirm: pass --yes",
        ));
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if parse_answer(&answer) == Some(Answer::Yes) {
        Ok(())
    } else {
        Err(Failure::steps_failed("cancelled; nothing was changed"))
    }
}

/// The answers to `run --confirm`'s question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Yes,
    No,
    Continue,
}

/// What a line typed at the question means; None: ask again.
pub fn parse_answer(line: &str) -> Option<Answer> {
    match line.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Some(Answer::Yes),
        "n" | "no" => Some(Answer::No),
        "c" | "continue" => Some(Answer::Continue),
        _ => None,
    }
}

/// `run --confirm`: before each step that would act, show what it would do
/// and ask; one step at a time until the answer is "continue".
pub(crate) struct Asker {
    pub(crate) asking: std::sync::atomic::AtomicBool,
    /// Held by the step being asked about, through its apply.
    pub(crate) turn: tokio::sync::Mutex<()>,
}

impl Asker {
    pub(crate) fn new() -> Asker {
        Asker {
            asking: true.into(),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn asking(&self) -> bool {
        self.asking.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// This step's turn, while still asking.
    pub(crate) async fn turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        if !self.asking() {
            return None;
        }
        let guard = self.turn.lock().await;
        self.asking().then_some(guard)
    }

    /// Shows `what` and reads an answer from the terminal.
    pub(crate) fn ask(&self, what: &str) -> Result<Answer> {
        tokio::task::block_in_place(|| {
            let mut out = std::io::stdout().lock();
            loop {
                write!(
                    out,
                    "{what}\n  Run it? [y]es / [n]o, skip it / [c]ontinue without asking: "
                )?;
                out.flush()?;
                let mut line = String::new();
                if std::io::stdin().lock().read_line(&mut line)? == 0 {
                    writeln!(out)?;
                    return Err(Failure::steps_failed(
                        "no answer (end of input); stopped before this step",
                    ));
                }
                if let Some(a) = parse_answer(&line) {
                    if a == Answer::Continue {
                        self.asking
                            .store(false, std::sync::atomic::Ordering::SeqCst);
                    }
                    return Ok(a);
                }
                writeln!(out, "  please answer y, n or c")?;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirm_answers() {
        assert_eq!(parse_answer("y\n"), Some(Answer::Yes));
        assert_eq!(parse_answer(" YES "), Some(Answer::Yes));
        assert_eq!(parse_answer("n"), Some(Answer::No));
        assert_eq!(parse_answer("c"), Some(Answer::Continue));
        assert_eq!(parse_answer("Continue"), Some(Answer::Continue));
        // Anything else is asked again, never taken as yes.
        assert_eq!(parse_answer(""), None);
        assert_eq!(parse_answer("yep"), None);
    }
}
