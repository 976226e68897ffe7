//! What the user sees while steps work: a spinner per step with elapsed
//! time and what it waits on, or plain timestamped lines when stdout is not
//! a terminal (or with --no-progress).

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Global: whether the lines for people go to stderr (stdout carries a
/// JSON document). Set once by `main` from --output before any line; read
/// by every `say!` and progress bar, deep in steps that know nothing of
/// the output's format.
static TO_STDERR: AtomicBool = AtomicBool::new(false);

/// With `--output json`, stdout carries the one JSON document: the lines
/// for people go to stderr (plain, no spinners).
pub fn human_to_stderr() {
    TO_STDERR.store(true, Ordering::SeqCst);
}

pub fn to_stderr() -> bool {
    TO_STDERR.load(Ordering::SeqCst)
}

/// Global: whether the command's JSON document went out, so that `main`
/// prints one carrying the error when a command stopped before its own.
static JSON_PRINTED: AtomicBool = AtomicBool::new(false);

/// Prints the command's one JSON document (a fleet's runbook hands it to
/// the fleet instead).
pub fn emit_json(doc: &serde_json::Value) {
    if MEMBER.try_with(|m| m.keep_json(doc.clone())).is_ok() {
        return;
    }
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
/// carries JSON; in a fleet, through the runbook's [`Member`].
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::ui::progress::say_line(format!($($arg)*))
    };
}

/// See [`say!`].
pub fn say_line(line: String) {
    if MEMBER.try_with(|m| m.line(&line)).is_ok() {
        return;
    }
    if to_stderr() {
        eprintln!("{line}")
    } else {
        println!("{line}")
    }
}

tokio::task_local! {
    /// The fleet's runbook whose command this task runs.
    static MEMBER: std::sync::Arc<Member>;
}

/// One runbook of a fleet, as its command's output sees it: its lines go
/// out with its name in front (or are kept, to be shown as one block), its
/// steps' progress is its live line, its JSON document is kept for the
/// fleet's.
pub struct Member {
    prefix: String,
    /// Lines kept until the command ends (`plan`, `status`), else None.
    kept: Option<std::sync::Mutex<Vec<String>>>,
    /// The live line on a terminal.
    live: Option<(MultiProgress, ProgressBar)>,
    json: std::sync::Mutex<Option<serde_json::Value>>,
    account: std::sync::Mutex<Option<String>>,
}

impl Member {
    /// `width`: the longest name of the fleet, so that the lines align.
    pub fn new(
        name: &str,
        width: usize,
        keep: bool,
        multi: Option<&MultiProgress>,
    ) -> std::sync::Arc<Member> {
        let prefix = format!("{name:<width$} |");
        let live = multi.map(|m| (m.clone(), spinner(m, &prefix)));
        std::sync::Arc::new(Member {
            prefix,
            kept: keep.then(Default::default),
            live,
            json: Default::default(),
            account: Default::default(),
        })
    }

    /// Runs `f` as this runbook's command.
    pub async fn scope<F: std::future::Future>(self: std::sync::Arc<Self>, f: F) -> F::Output {
        MEMBER.scope(self, f).await
    }

    fn line(&self, line: &str) {
        if let Some(kept) = &self.kept {
            kept.lock().expect("not poisoned").push(line.to_string());
            return;
        }
        let line = format!("{} {line}", self.prefix);
        match &self.live {
            Some((m, _)) => {
                let _ = m.println(line);
            }
            None if to_stderr() => eprintln!("{line}"),
            None => println!("{line}"),
        }
    }

    /// What a step does now: the live line, when there is one.
    fn status(&self, msg: &str) -> bool {
        match &self.live {
            Some((_, pb)) => {
                pb.set_message(msg.to_string());
                true
            }
            None => false,
        }
    }

    fn keep_json(&self, doc: serde_json::Value) {
        *self.json.lock().expect("not poisoned") = Some(doc);
    }

    /// The lines kept, the JSON document, the account; the live line ends.
    pub fn finish(&self) -> (Vec<String>, Option<serde_json::Value>, Option<String>) {
        if let Some((_, pb)) = &self.live {
            pb.finish_and_clear();
        }
        let kept = self
            .kept
            .as_ref()
            .map(|k| std::mem::take(&mut *k.lock().expect("not poisoned")))
            .unwrap_or_default();
        let json = self.json.lock().expect("not poisoned").take();
        let account = self.account.lock().expect("not poisoned").clone();
        (kept, json, account)
    }
}

/// In a fleet: the account the runbook's command found itself in.
pub fn member_account(account: &str) {
    let _ = MEMBER.try_with(|m| *m.account.lock().expect("not poisoned") = Some(account.into()));
}

fn in_member() -> bool {
    MEMBER.try_with(|_| ()).is_ok()
}

#[derive(Clone)]
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    pub fn new(no_progress: bool) -> Progress {
        let fancy = !no_progress && !to_stderr() && !in_member() && std::io::stdout().is_terminal();
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
        let bar = self.multi.as_ref().map(|m| spinner(m, name));
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
            None => {
                let live = MEMBER
                    .try_with(|m| m.status(&format!("{}: {msg}", self.name)))
                    .unwrap_or(false);
                if !live {
                    crate::say!("{} {}: {msg}", stamp(), self.name)
                }
            }
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

/// A spinner line named `prefix`, with its elapsed time and message.
fn spinner(m: &MultiProgress, prefix: &str) -> ProgressBar {
    let pb = m.add(ProgressBar::new_spinner());
    pb.set_style(
        ProgressStyle::with_template("{spinner} {prefix:.bold} [{elapsed}] {msg}")
            .expect("valid template"),
    );
    pb.set_prefix(prefix.to_string());
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// The time at the start of a plain line.
fn stamp() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
