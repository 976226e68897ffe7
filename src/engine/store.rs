//! The state and where it is kept, with one writer.

use anyhow::Result;

use crate::state::{self, Backend, Event, State};

/// The state and where it is kept (a file, or S3), with one writer: every
/// transition is made and saved under one lock, so steps that run at the
/// same time never save a half-updated state or lose each other's records.
pub(crate) struct Store {
    pub(crate) backend: Backend,
    pub(crate) state: std::sync::Mutex<State>,
}

impl Store {
    pub(crate) fn new(backend: Backend, state: State) -> Store {
        Store {
            backend,
            state: std::sync::Mutex::new(state),
        }
    }

    pub(crate) fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.state.lock().expect("state lock"))
    }

    /// Changes the state and saves it before anyone else may change it.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut State) -> Result<R>) -> Result<R> {
        let mut state = self.state.lock().expect("state lock");
        let r = f(&mut state)?;
        self.backend.save(&state)?;
        Ok(r)
    }

    pub(crate) fn advance(
        &self,
        name: &str,
        event: Event,
        f: impl FnOnce(&mut state::StepRecord),
    ) -> Result<()> {
        self.update(|s| {
            let rec = s.advance(name, event).map_err(anyhow::Error::msg)?;
            f(rec);
            Ok(())
        })
    }

    /// [`Store::advance`] for a step about to record `inputs`: when they
    /// name another resource than the one it made (a replacement), that one
    /// is first kept as retired, with its origin, in the same write.
    pub(crate) fn advance_to(
        &self,
        name: &str,
        event: Event,
        identity: &[&str],
        inputs: &serde_json::Value,
        f: impl FnOnce(&mut state::StepRecord),
    ) -> Result<()> {
        self.update(|s| {
            if let Some(rec) = s.steps.get_mut(name) {
                rec.retire_if_replaced(identity, inputs);
            }
            let rec = s.advance(name, event).map_err(anyhow::Error::msg)?;
            f(rec);
            Ok(())
        })
    }
}
