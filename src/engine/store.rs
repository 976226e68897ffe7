//! The state and where it is kept, with one writer.

use std::sync::atomic::Ordering::SeqCst;

use anyhow::Result;

use crate::state::backend::Backend;
use crate::state::{self, Event, State};

/// The state and where it is kept (a file, or S3), with one writer: every
/// transition is made under the state's lock and each write, one at a time,
/// saves a whole copy taken under it, so steps that run at the same time
/// never save a half-updated state or lose each other's records.
pub(crate) struct Store {
    pub(crate) backend: Backend,
    pub(crate) state: std::sync::Mutex<State>,
    /// How many transitions the state in memory has had.
    changes: std::sync::atomic::AtomicU64,
    /// The writer's turn, and how many transitions the last write held.
    written: tokio::sync::Mutex<u64>,
}

impl Store {
    pub(crate) fn new(backend: Backend, state: State) -> Store {
        Store {
            backend,
            state: std::sync::Mutex::new(state),
            changes: Default::default(),
            written: Default::default(),
        }
    }

    pub(crate) fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.state.lock().expect("state lock"))
    }

    /// Changes the state and returns once it is saved with that change: the
    /// latest state is written, unless a write since the change already
    /// holds it (as after [`Store::advance_later`]). Writes are awaited,
    /// never blocked on: the steps share one thread, and one blocked there
    /// would stop every other step's calls in flight.
    pub(crate) async fn update<R>(&self, f: impl FnOnce(&mut State) -> Result<R>) -> Result<R> {
        let (r, mine) = self.change(f)?;
        self.written_up_to(mine).await?;
        Ok(r)
    }

    /// A change in memory only, numbered.
    fn change<R>(&self, f: impl FnOnce(&mut State) -> Result<R>) -> Result<(R, u64)> {
        let mut state = self.state.lock().expect("state lock");
        let r = f(&mut state)?;
        Ok((r, self.changes.fetch_add(1, SeqCst) + 1))
    }

    /// Returns once a write holding change `mine` is done: one already
    /// made, or the latest state written now.
    async fn written_up_to(&self, mine: u64) -> Result<()> {
        let mut written = self.written.lock().await;
        if *written >= mine {
            return Ok(());
        }
        let (latest, holds) = {
            let state = self.state.lock().expect("state lock");
            (state.clone(), self.changes.load(SeqCst))
        };
        self.backend.save(&latest).await?;
        *written = holds;
        Ok(())
    }

    /// A step applied, recorded without waiting for its own write in S3:
    /// it goes with the next write (the next step's start, or
    /// [`Store::flush`] at the end of the run), saving a round trip on the
    /// run's critical path. As crash-safe: a kill before that write leaves
    /// the step started, and the next run finds it done in the account and
    /// records it, as after a kill between the apply and its save (a crash
    /// point the tests kill at). A file is written at once, as ever.
    pub(crate) async fn advance_later(
        &self,
        name: &str,
        event: Event,
        f: impl FnOnce(&mut state::StepRecord),
    ) -> Result<()> {
        if let Backend::File(_) = self.backend {
            return self.advance(name, event, f).await;
        }
        self.change(transition(name, event, f))?;
        Ok(())
    }

    /// Writes what [`Store::advance_later`] kept, if anything is unwritten.
    pub(crate) async fn flush(&self) -> Result<()> {
        self.written_up_to(self.changes.load(SeqCst)).await
    }

    pub(crate) async fn advance(
        &self,
        name: &str,
        event: Event,
        f: impl FnOnce(&mut state::StepRecord),
    ) -> Result<()> {
        self.update(transition(name, event, f)).await
    }

    /// [`Store::advance`] for a step about to record `inputs`: when they
    /// name another resource than the one it made (a replacement), that one
    /// is first kept as retired, with its origin, in the same write.
    pub(crate) async fn advance_to(
        &self,
        name: &str,
        event: Event,
        identity: &[&str],
        inputs: &serde_json::Value,
        f: impl FnOnce(&mut state::StepRecord),
    ) -> Result<()> {
        let advance = transition(name, event, f);
        self.update(|s| {
            if let Some(rec) = s.steps.get_mut(name) {
                rec.retire_if_replaced(identity, inputs);
            }
            advance(s)
        })
        .await
    }
}

/// The change that moves step `name` on by `event`, then lets `f` fill its
/// record.
fn transition(
    name: &str,
    event: Event,
    f: impl FnOnce(&mut state::StepRecord),
) -> impl FnOnce(&mut State) -> Result<()> {
    move |s| {
        f(s.advance(name, event).map_err(anyhow::Error::msg)?);
        Ok(())
    }
}
