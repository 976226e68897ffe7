//! Where the state is kept, opened: a file beside the runbook or an S3
//! object, behind one `Backend` that the commands read, write and lock
//! through (a module of its own, so that `state` itself knows neither).

use std::path::PathBuf;

use super::lock::Lock;
use super::s3::{self, S3Place};
use super::{State, as_failure};

/// Where a runbook's state lives: a file beside the runbook (the default,
/// or --state PATH), or an S3 object a team shares (--state s3://BUCKET/KEY,
/// or the runbook's `[state]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatePlace {
    File(PathBuf),
    S3(S3Place),
}

impl std::fmt::Display for StatePlace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatePlace::File(p) => write!(f, "{}", p.display()),
            StatePlace::S3(s) => write!(f, "{s}"),
        }
    }
}

/// The state's storage, opened: the one thing the commands read, write and
/// lock the state through; nothing else knows which one it is.
pub enum Backend {
    File(PathBuf),
    S3(Box<s3::S3State>),
}

/// The lock a command holds while it runs: a file's is released when this
/// is dropped; an S3 lock is recorded by the backend and released when the
/// command is over (`s3::release_all`).
pub enum Held {
    File(#[allow(dead_code)] Lock),
    InBackend,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::File(p) => write!(f, "{}", p.display()),
            Backend::S3(s) => write!(f, "{}", s.place),
        }
    }
}

impl Backend {
    pub async fn exists(&self) -> anyhow::Result<bool> {
        match self {
            Backend::File(p) => Ok(State::exists(p)),
            Backend::S3(s) => s.exists().await,
        }
    }

    /// The state and whether there was one (else a fresh one).
    pub async fn load_found(&self, runbook: &str) -> anyhow::Result<(State, bool)> {
        match self {
            Backend::File(p) => Ok((State::load(p, runbook).map_err(as_failure)?, p.exists())),
            Backend::S3(s) => {
                let state = s.load(runbook).await?;
                Ok((state, s.found()))
            }
        }
    }

    /// The state, or a fresh one when there is none yet.
    pub async fn load(&self, runbook: &str) -> anyhow::Result<State> {
        match self {
            Backend::File(p) => State::load(p, runbook).map_err(as_failure),
            Backend::S3(s) => s.load(runbook).await,
        }
    }

    /// Saves the state: atomically (a file: temp file, fsync, rename; S3: one
    /// PutObject), and for S3 only over the version this process last read
    /// or wrote. Awaited: a blocked thread would stop every step's calls.
    pub async fn save(&self, state: &State) -> anyhow::Result<()> {
        match self {
            Backend::File(p) => state.save(p).map_err(as_failure),
            Backend::S3(s) => s.save(state).await,
        }
    }

    /// Takes the state's lock, or names who holds it (exit 4).
    pub async fn lock(&self) -> anyhow::Result<Held> {
        match self {
            Backend::File(p) => Ok(Held::File(Lock::acquire(p).map_err(as_failure)?)),
            Backend::S3(s) => {
                s.lock().await?;
                Ok(Held::InBackend)
            }
        }
    }

    /// Before a change that comes ahead of its state write: the lock held
    /// (a file's since `load_for_run`; an S3 one taken now, if not yet).
    pub async fn hold(&self) -> anyhow::Result<()> {
        match self {
            Backend::File(_) => Ok(()),
            Backend::S3(s) => s.lock_unchanged().await,
        }
    }

    /// For `run`: a file's state locked and read; an S3 state read only,
    /// its lock taken at the first write (which always comes before the
    /// run's first change), so a re-run that changes nothing costs one read
    /// of S3 and takes no lock. A write after another process wrote is
    /// refused by the compare-and-swap, changing nothing.
    pub async fn load_for_run(&self, runbook: &str) -> anyhow::Result<(Held, State)> {
        match self {
            Backend::File(_) => self.lock_and_load(runbook).await,
            Backend::S3(s) => Ok((Held::InBackend, s.load(runbook).await?)),
        }
    }

    /// Takes the lock and reads the state. In S3 both at once, one round
    /// instead of two: a write by a holder that released its lock between
    /// the two is caught by the compare-and-swap of this process's first
    /// write (refused, nothing lost).
    pub async fn lock_and_load(&self, runbook: &str) -> anyhow::Result<(Held, State)> {
        match self {
            Backend::File(_) => {
                let held = self.lock().await?;
                Ok((held, self.load(runbook).await?))
            }
            Backend::S3(s) => {
                let (lock, state) = tokio::join!(s.lock(), s.load(runbook));
                lock?;
                Ok((Held::InBackend, state?))
            }
        }
    }
}
