//! What the user sees while steps work: a spinner per step with elapsed
//! time and what it waits on, or plain timestamped lines when stdout is not
//! a terminal (or with --no-progress).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

static TO_STDERR: AtomicBool = AtomicBool::new(false);

/// With `--output json`, stdout carries the one JSON document: the lines
/// for people go to stderr (plain, no spinners).
pub fn human_to_stderr() {
    TO_STDERR.store(true, Ordering::SeqCst);
}

pub fn to_stderr() -> bool {
    TO_STDERR.load(Ordering::SeqCst)
}

static JSON_PRINTED: AtomicBool = AtomicBool::new(false);

/// Prints the command's one JSON document.
pub fn emit_json(doc: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(doc).expect("JSON values serialize")
    );
    JSON_PRINTED.store(true, Ordering::SeqCst);
}

/// Whether the command printed its JSON document (else, on an early error,
/// `main` prints one that carries the error).
pub fn json_printed() -> bool {
    JSON_PRINTED.load(Ordering::SeqCst)
}

/// `println!` for the lines people read: stdout, or stderr when stdout
/// carries JSON.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        if $crate::ui::progress::to_stderr() {
            eprintln!($($arg)*)
        } else {
            println!($($arg)*)
        }
    };
}

#[derive(Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    pub fn new(no_progress: bool) -> Progress {
        let fancy = !no_progress && !to_stderr() && std::io::stdout().is_terminal();
        Progress {
            multi: fancy.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stdout())),
        }
    }

    /// A line of output that does not belong to one step.
    pub fn line(&self, msg: impl AsRef<str>) {
        match &self.multi {
            Some(m) => {
                let _ = m.println(msg.as_ref());
            }
            None => crate::say!("{}", msg.as_ref()),
        }
    }

    pub fn step(&self, name: &str) -> StepBar {
        let bar = self.multi.as_ref().map(|m| {
            let pb = m.add(ProgressBar::new_spinner());
            pb.set_style(
                ProgressStyle::with_template("{spinner} {prefix:.bold} [{elapsed}] {msg}")
                    .expect("valid template"),
            );
            pb.set_prefix(name.to_string());
            pb.enable_steady_tick(Duration::from_millis(120));
            pb
        });
        StepBar {
            bar,
            multi: self.multi.clone(),
            name: name.to_string(),
            started: Instant::now(),
            quiet: false,
        }
    }
}

pub struct StepBar {
    bar: Option<ProgressBar>,
    multi: Option<MultiProgress>,
    name: String,
    started: Instant,
    /// Shows nothing: for the checks of the first round, whose answers
    /// the steps report when their turn comes.
    quiet: bool,
}

impl StepBar {
    pub fn silent(name: &str) -> StepBar {
        StepBar {
            bar: None,
            multi: None,
            name: name.to_string(),
            started: Instant::now(),
            quiet: true,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the step is doing or waiting on now.
    pub fn set(&self, msg: impl Into<String>) {
        if self.quiet {
            return;
        }
        let msg = msg.into();
        match &self.bar {
            Some(pb) => pb.set_message(msg),
            None => crate::say!("{} {}: {msg}", stamp(), self.name),
        }
    }

    /// A line that stays above the spinners: something the user should
    /// know about what the step did (said once, when it happens).
    pub fn note(&self, msg: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        let line = format!("  {}: {}", self.name, msg.as_ref());
        match &self.multi {
            Some(m) => {
                let _ = m.println(&line);
            }
            None => crate::say!("{line}"),
        }
    }

    /// Ends the spinner with a final line (`mark` is ✓, ✗, = ...).
    pub fn finish(&self, mark: &str, msg: impl AsRef<str>) {
        if self.quiet {
            return;
        }
        let elapsed = self.started.elapsed();
        let line = format!(
            "{mark} {} {} ({:.1}s)",
            self.name,
            msg.as_ref(),
            elapsed.as_secs_f64()
        );
        match &self.bar {
            Some(pb) => {
                // Clear the spinner first so the line (or an error after
                // it) is not overdrawn.
                pb.finish_and_clear();
                if let Some(m) = &self.multi {
                    let _ = m.println(&line);
                }
            }
            None => crate::say!("{} {line}", stamp()),
        }
    }
}

impl Drop for StepBar {
    fn drop(&mut self) {
        if let Some(pb) = &self.bar
            && !pb.is_finished()
        {
            pb.finish_and_clear();
        }
    }
}

/// The time at the start of a plain line.
fn stamp() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
