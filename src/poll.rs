//! Waiting: deadlines, backoff with jitter, and sleeps that give way to
//! Ctrl-C.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Set by the first Ctrl-C: the call in flight finishes, the state is
/// saved, and the run stops before the next step or the next wait.
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Raised when a wait is cut short by Ctrl-C.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Interrupted;

/// Sleeps for `d`, waking early (with `Err`) if the user presses Ctrl-C.
pub async fn sleep(d: Duration) -> Result<(), Interrupted> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if interrupted() {
            return Err(Interrupted);
        }
        let left = end.saturating_duration_since(Instant::now());
        tokio::time::sleep(left.min(Duration::from_millis(100))).await;
    }
    if interrupted() {
        return Err(Interrupted);
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant);

impl Deadline {
    pub fn after(d: Duration) -> Deadline {
        Deadline(Instant::now() + d)
    }

    pub fn passed(&self) -> bool {
        Instant::now() >= self.0
    }
}

/// Exponential backoff with "full jitter" over the upper half: each delay is
/// drawn from [cap/2, cap] where cap doubles from `first` up to `max`.
pub struct Backoff {
    next: Duration,
    max: Duration,
    rng: u64,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Backoff {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(32);
        Backoff::with_seed(first, max, seed)
    }

    pub fn with_seed(first: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            next: first,
            max,
            rng: seed | 1,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        // xorshift64: enough randomness to spread retries apart.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let cap = self.next.min(self.max);
        let half = cap / 2;
        let spread = (cap - half).as_millis() as u64;
        let jitter = if spread == 0 {
            0
        } else {
            self.rng % (spread + 1)
        };
        self.next = (self.next * 2).min(self.max);
        half + Duration::from_millis(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let mut b = Backoff::with_seed(Duration::from_secs(1), Duration::from_secs(8), 42);
        let delays: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        let caps = [1, 2, 4, 8, 8, 8, 8, 8];
        for (d, cap) in delays.iter().zip(caps) {
            let cap = Duration::from_secs(cap);
            assert!(
                *d >= cap / 2 && *d <= cap,
                "{d:?} not in [{:?}, {cap:?}]",
                cap / 2
            );
        }
        // Jitter: the capped delays are not all the same.
        assert!(delays[3..].windows(2).any(|w| w[0] != w[1]), "{delays:?}");
    }

    #[test]
    fn different_seeds_spread_retries() {
        let mut a = Backoff::with_seed(Duration::from_secs(4), Duration::from_secs(4), 1);
        let mut b = Backoff::with_seed(Duration::from_secs(4), Duration::from_secs(4), 2);
        let same = (0..10).filter(|_| a.next_delay() == b.next_delay()).count();
        assert!(same < 10);
    }

    #[test]
    fn deadline() {
        assert!(Deadline::after(Duration::ZERO).passed());
        assert!(!Deadline::after(Duration::from_secs(60)).passed());
    }
}
