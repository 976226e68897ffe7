//! The state file: what each step did, its outputs and the inputs it ran
//! with. Saved atomically after every transition; guarded by a lock so two
//! processes never drive the same state.
//!
//! Here: the records, origins, transitions and the atomic save; lock.rs:
//! the local file's lock; checksum.rs: the inputs' checksum; backend.rs:
//! a file or S3; s3/: the state a team shares; recovery.rs: the backup
//! copy and the ways on from a broken state.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub mod backend;
mod checksum;
pub mod lock;
pub use checksum::checksum;
pub mod recovery;
pub mod s3;

/// What a step hands to later steps (`${steps.NAME.OUTPUT}`).
pub type Outputs = BTreeMap<String, String>;

/// 2: each step records its `origin` (created by this state, or adopted).
/// 3: a step may hold `retired` resources (replaced, deleted once the
/// functions moved): an older tool would drop them and leak the old proxy.
pub const SCHEMA_VERSION: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    #[default]
    Pending,
    Started,
    Applied,
    Failed,
    RolledBack,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Started => "started",
            Status::Applied => "applied",
            Status::Failed => "failed",
            Status::RolledBack => "rolled back",
        }
    }

    /// Whether the account may hold something this step made: only such
    /// steps are rolled back.
    pub fn may_have_changed_account(self) -> bool {
        matches!(self, Status::Started | Status::Applied | Status::Failed)
    }
}

/// What happens to a step, in the order the engine sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Start,
    Applied,
    Fail,
    RolledBack,
}

/// The state machine of one step. Everything may start again (a resume, a
/// re-run after a rollback, a re-creation of something deleted by hand);
/// only a started step can end, and only a step that may have changed the
/// account can be rolled back.
pub fn transition(from: Status, event: Event) -> Result<Status, String> {
    use Status::*;
    let to = match (from, event) {
        (_, Event::Start) => Started,
        // A check that finds the step done records it as applied without a
        // start (a re-run, or a resume that adopts what it finds).
        (Started | Pending | Failed | RolledBack | Applied, Event::Applied) => Applied,
        // A check can fail a step before it starts (drift, a name taken).
        (_, Event::Fail) => Failed,
        (Started | Applied | Failed, Event::RolledBack) => RolledBack,
        (from, event) => return Err(format!("a {} step cannot take {event:?}", from.label())),
    };
    Ok(to)
}

/// How what a step holds in the account came to be this state's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// This state started the step's apply: whatever the account holds for
    /// it from then on (even a create that died before its answer was
    /// saved) is ours to finish and to undo.
    Created,
    /// Found in the account and taken over on request (`run --adopt`):
    /// managed from then on, but rollback leaves it in place.
    Adopted,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StepRecord {
    pub status: Status,
    /// Why the account's resource is this state's; none: this state never
    /// acted on the step (what the account holds for it is someone else's,
    /// another state's most likely).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// sha256 of the resolved inputs the step was applied with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<String>,
    /// The resolved inputs (names, ids, documents; never secret values),
    /// so rollback works from the state alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: Outputs,
    /// What the step replaced (the old `DB_HOST`), read before it first
    /// acted: rollback puts it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What this step made before a replacement (`run --allow-replace`):
    /// the old resource, kept until every function has moved to the new
    /// one, then deleted (rollback deletes it too).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<Retired>,
}

/// A resource a replacement left behind, as its step recorded it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Retired {
    pub inputs: Value,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: Outputs,
    pub origin: Origin,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
}

impl StepRecord {
    /// Whether `inputs` name another resource than the one the step may
    /// have made (the fields of `identity` differ from those it recorded):
    /// applying them replaces it.
    pub fn replaced_by(&self, identity: &[&str], inputs: &Value) -> bool {
        let Some(old) = self.inputs.as_ref() else {
            return false;
        };
        self.status.may_have_changed_account()
            && identity.iter().any(|f| old.get(*f) != inputs.get(*f))
    }

    /// The record as far as it concerns the resource `inputs` name: this
    /// one; none when they name another (a replacement: the new one starts
    /// afresh); or, when they name one a replacement retired (the edit
    /// undone before the old one was deleted), that one's, applied.
    pub fn for_inputs(&self, identity: &[&str], inputs: &Value) -> Option<StepRecord> {
        if !self.replaced_by(identity, inputs) {
            return Some(self.clone());
        }
        let back = self
            .retired
            .iter()
            .find(|r| same(identity, &r.inputs, inputs))?;
        Some(StepRecord {
            status: Status::Applied,
            origin: Some(back.origin),
            inputs: Some(back.inputs.clone()),
            outputs: back.outputs.clone(),
            before: back.before.clone(),
            ..StepRecord::default()
        })
    }

    /// Before the step acts with `inputs` that name another resource: the
    /// one it made so far is kept as retired (to delete once the functions
    /// moved), and the record starts afresh for the new one, or takes back
    /// the one a replacement retired when `inputs` name it again. True if
    /// so.
    pub fn retire_if_replaced(&mut self, identity: &[&str], inputs: &Value) -> bool {
        if !self.replaced_by(identity, inputs) {
            return false;
        }
        let back = self
            .retired
            .iter()
            .position(|r| same(identity, &r.inputs, inputs))
            .map(|at| self.retired.remove(at));
        // Without an origin nothing here is ours (a step that failed before
        // it started): there is nothing to keep.
        if let Some(origin) = self.origin.take() {
            self.retired.push(Retired {
                inputs: self.inputs.take().expect("replaced_by saw inputs"),
                outputs: std::mem::take(&mut self.outputs),
                origin,
                before: self.before.take(),
            });
        }
        self.checksum = None;
        self.outputs.clear();
        (self.inputs, self.before) = (None, None);
        if let Some(back) = back {
            self.inputs = Some(back.inputs);
            self.outputs = back.outputs;
            self.origin = Some(back.origin);
            self.before = back.before;
        }
        true
    }
}

/// Whether two input documents name the same resource (`identity`).
fn same(identity: &[&str], a: &Value, b: &Value) -> bool {
    identity.iter().all(|f| a.get(*f) == b.get(*f))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub schema_version: u32,
    pub runbook: String,
    /// Where the steps acted: commands elsewhere are refused, so a rollback
    /// in the wrong region cannot report resources gone that are not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default)]
    pub steps: BTreeMap<String, StepRecord>,
    /// Probe functions (`probe`) written down before each was created and
    /// struck off once deleted: one a kill left is deleted by the next
    /// `probe`, `run` or `rollback`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// `advice`: the ways on, from where the state is kept (see
    /// [`recovery`]).
    #[error(
        "state {path} is not readable as a state ({why}), so what this runbook made cannot be \
         told from it; nothing was changed. {advice}"
    )]
    Corrupt {
        path: PathBuf,
        why: String,
        advice: String,
    },
    #[error(
        "state file {path} has schema version {found}, newer than this tool's {SCHEMA_VERSION}; \
         upgrade rds-proxy-runbook"
    )]
    Newer { path: PathBuf, found: u32 },
    #[error(
        "state file {path} belongs to runbook `{found}`, not `{expected}`; \
         pass the right runbook, or a different --state"
    )]
    OtherRunbook {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "state {path} is locked by another rds-proxy-runbook (pid {pid} on {host}, since {since}); \
         wait for it to finish, or if that process is gone, run again"
    )]
    Locked {
        path: PathBuf,
        pid: String,
        host: String,
        since: String,
    },
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

impl State {
    pub fn new(runbook: &str) -> State {
        State {
            schema_version: SCHEMA_VERSION,
            runbook: runbook.to_string(),
            account: None,
            region: None,
            steps: BTreeMap::new(),
            probes: Vec::new(),
        }
    }

    /// Reads the state, or a fresh one if the file does not exist. One
    /// that cannot be read says the ways on, its backup first.
    pub fn load(path: &Path, runbook: &str) -> Result<State, StateError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(State::new(runbook)),
            Err(e) => return Err(io("read", path)(e)),
        };
        State::parse(path, &text, runbook).map_err(|e| match e {
            StateError::Corrupt { path, why, .. } => StateError::Corrupt {
                advice: recovery::local_advice(&path, runbook, &|p: &Path, t: &str| {
                    State::parse(p, t, runbook)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }),
                path,
                why,
            },
            other => other,
        })
    }

    /// The state in `text`; one that cannot be read is `Corrupt` without
    /// advice (the caller knows where it is kept, so how to get it back).
    pub fn parse(path: &Path, text: &str, runbook: &str) -> Result<State, StateError> {
        let corrupt = |why: String| StateError::Corrupt {
            path: path.to_path_buf(),
            why,
            advice: String::new(),
        };
        let raw: Value = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
        let version = raw
            .get("schema_version")
            .and_then(Value::as_u64)
            .ok_or_else(|| corrupt("no schema_version".into()))?;
        if version > u64::from(SCHEMA_VERSION) {
            return Err(StateError::Newer {
                path: path.to_path_buf(),
                found: version as u32,
            });
        }
        let mut state: State = serde_json::from_value(raw).map_err(|e| corrupt(e.to_string()))?;
        if version < u64::from(SCHEMA_VERSION) {
            state.schema_version = SCHEMA_VERSION;
        }
        if version < 2 {
            // Version 1 did not record origins: a step that acted (inputs
            // recorded, not rolled back) was created or found by this state.
            for rec in state.steps.values_mut() {
                if rec.status.may_have_changed_account() && rec.inputs.is_some() {
                    rec.origin = Some(Origin::Created);
                }
            }
        }
        if state.runbook != runbook {
            return Err(StateError::OtherRunbook {
                path: path.to_path_buf(),
                found: state.runbook,
                expected: runbook.to_string(),
            });
        }
        Ok(state)
    }

    pub fn exists(path: &Path) -> bool {
        path.exists()
    }

    pub fn record(&self, step: &str) -> Option<&StepRecord> {
        self.steps.get(step)
    }

    pub fn status(&self, step: &str) -> Status {
        self.record(step).map_or(Status::Pending, |r| r.status)
    }

    /// Moves a step through `event`, stamping the time.
    pub fn advance(&mut self, step: &str, event: Event) -> Result<&mut StepRecord, String> {
        let record = self.steps.entry(step.to_string()).or_default();
        record.status = transition(record.status, event)?;
        match event {
            Event::Start => record.origin = Some(Origin::Created),
            Event::RolledBack => record.origin = None,
            Event::Applied | Event::Fail => {}
        }
        record.updated_at = Some(now());
        Ok(record)
    }

    /// Writes the state atomically (a temp file in the same folder, fsync,
    /// rename, fsync of the folder; mode 0600), then the same way its copy,
    /// `<state>.backup`: the way back if the state is broken by something
    /// else later (see [`recovery`]). The copy comes second, so it is never
    /// ahead of the state.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let dir = dir.unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io("create the folder of", path))?;
        let mut json = serde_json::to_vec_pretty(self).expect("state serializes");
        json.push(b'\n');
        replace_atomically(dir, path, &json)?;
        replace_atomically(dir, &recovery::backup_path(path), &json)?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// `path` (in `dir`) replaced by `bytes` at once: a temp file beside it,
/// fsync, rename. Mode 0600.
fn replace_atomically(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let file_name = path
        .file_name()
        .map_or("state".into(), |n| n.to_string_lossy());
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io("write", &tmp))?;
    f.write_all(bytes).map_err(io("write", &tmp))?;
    f.sync_all().map_err(io("sync", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io("replace", path))
}

pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
/// A state error as the command's failure: a lock held elsewhere exits 4,
/// anything else is bad input (3).
pub fn as_failure(e: StateError) -> anyhow::Error {
    match e {
        StateError::Locked { .. } => crate::error::Failure::locked(e.to_string()),
        _ => crate::error::Failure::bad_input(e.to_string()),
    }
}

#[cfg(test)]
mod tests;
