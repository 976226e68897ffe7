//! Answers kept by key, each read once: what one pass of a step has read
//! (kept until forgotten; see `steps::contract::Ctx::read_once`), and what
//! the runbooks of a place share for a few seconds (`rounds::shared`).
//! Those that ask for a key while its read is in flight wait for that
//! read instead of making their own; a failed read is not kept.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Slot = Arc<tokio::sync::Mutex<Option<(Instant, Arc<dyn Any + Send + Sync>)>>>;

pub struct Answers {
    slots: Mutex<HashMap<String, Slot>>,
    /// How long an answer serves after it was asked for (None: until
    /// forgotten).
    fresh: Option<Duration>,
}

impl Default for Answers {
    /// Kept until forgotten.
    fn default() -> Answers {
        Answers {
            slots: Mutex::default(),
            fresh: None,
        }
    }
}

impl Answers {
    /// Each answer serves for `fresh` after it was asked for.
    pub fn fresh_for(fresh: Duration) -> Answers {
        Answers {
            fresh: Some(fresh),
            ..Answers::default()
        }
    }

    /// The answer kept under `key` (which names the call and what it
    /// reads), else `read`'s.
    pub async fn read<T, F>(&self, key: String, read: F) -> anyhow::Result<T>
    where
        T: Clone + Send + Sync + 'static,
        F: Future<Output = anyhow::Result<T>>,
    {
        let slot = self
            .slots
            .lock()
            .expect("not poisoned")
            .entry(key)
            .or_default()
            .clone();
        let mut slot = slot.lock().await;
        if let Some((at, v)) = &*slot
            && self.fresh.is_none_or(|f| at.elapsed() < f)
            && let Some(v) = v.downcast_ref::<T>()
        {
            return Ok(v.clone());
        }
        let at = Instant::now();
        let v = read.await?;
        *slot = Some((at, Arc::new(v.clone())));
        Ok(v)
    }

    /// Forgets what was read under `key`.
    pub fn forget(&self, key: &str) {
        self.slots.lock().expect("not poisoned").remove(key);
    }

    pub fn clear(&self) {
        self.slots.lock().expect("not poisoned").clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[tokio::test]
    async fn a_read_is_made_once_until_forgotten_and_a_failed_one_is_not_kept() {
        let reads = Answers::default();
        let calls = AtomicU64::new(0);
        let read = |v: u64| {
            let calls = &calls;
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                anyhow::Ok(v)
            }
        };
        assert_eq!(reads.read("a".into(), read(1)).await.unwrap(), 1);
        assert_eq!(reads.read("a".into(), read(2)).await.unwrap(), 1, "kept");
        assert_eq!(reads.read("b".into(), read(3)).await.unwrap(), 3, "by key");
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        reads.forget("a");
        assert_eq!(reads.read("a".into(), read(4)).await.unwrap(), 4);
        let failed = reads
            .read("c".into(), async {
                anyhow::Result::<u64>::Err(anyhow::anyhow!("no"))
            })
            .await;
        assert!(failed.is_err());
        assert_eq!(
            reads.read("c".into(), read(5)).await.unwrap(),
            5,
            "not kept"
        );
        reads.clear();
        assert_eq!(reads.read("b".into(), read(6)).await.unwrap(), 6);
    }

    #[tokio::test]
    async fn those_that_ask_meanwhile_share_a_read_and_a_stale_one_is_read_again() {
        let calls = AtomicU64::new(0);
        let read = |v: u64| {
            let calls = &calls;
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                anyhow::Ok(v)
            }
        };
        let shared = Answers::fresh_for(Duration::from_secs(60));
        let (a, b, c) = tokio::join!(
            shared.read("k".into(), read(1)),
            shared.read("k".into(), read(2)),
            shared.read("k".into(), read(3)),
        );
        assert_eq!((a.unwrap(), b.unwrap(), c.unwrap()), (1, 1, 1));
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one read for three");
        let stale = Answers::fresh_for(Duration::ZERO);
        assert_eq!(stale.read("k".into(), read(4)).await.unwrap(), 4);
        assert_eq!(
            stale.read("k".into(), read(5)).await.unwrap(),
            5,
            "read again once stale"
        );
    }
}
