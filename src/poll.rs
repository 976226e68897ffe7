//! Waiting: deadlines, backoff with jitter, and sleeps that give way to
//! Ctrl-C.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};

use crate::ui::progress::StepBar;

/// Global: Ctrl-C's flag. The signal handler (`main`) sets it once, and
/// every wait and the engine's scheduler read it, in whatever task they
/// run: a signal has no context to pass, and one Ctrl-C stops every
/// runbook of a fleet alike.
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

/// Unit tests drive the real wait and retry loops against mocked AWS
/// answers, with every delay and deadline a thousand times shorter.
#[cfg(test)]
pub fn scaled(d: Duration) -> Duration {
    d / 1000
}

#[cfg(not(test))]
pub fn scaled(d: Duration) -> Duration {
    d
}

/// A limit on a wait (a [`Deadline`]) on the tests' clock: ten times the
/// room [`scaled`] gives the delays, so that the mocked answers of a loaded
/// machine (tens of milliseconds each) do not run into a limit the real
/// clock would never reach.
#[cfg(test)]
pub fn scaled_limit(d: Duration) -> Duration {
    d / 100
}

#[cfg(not(test))]
pub fn scaled_limit(d: Duration) -> Duration {
    d
}

/// A time measured on the clock, as the schedules count it (the inverse
/// of [`scaled`]).
#[cfg(test)]
pub fn unscaled(d: Duration) -> Duration {
    d * 1000
}

#[cfg(not(test))]
pub fn unscaled(d: Duration) -> Duration {
    d
}

/// Sleeps for `d`, waking early (with `Err`) if the user presses Ctrl-C.
pub async fn sleep(d: Duration) -> Result<(), Interrupted> {
    let end = Instant::now() + scaled(d);
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

fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()).rotate_left(32)
}

/// xorshift64: enough randomness to spread retries and polls apart.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[derive(Debug, Clone, Copy)]
pub struct Deadline(Instant);

impl Deadline {
    pub fn after(d: Duration) -> Deadline {
        Deadline(Instant::now() + scaled_limit(d))
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
        Backoff::with_seed(first, max, seed())
    }

    pub fn with_seed(first: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            next: first,
            max,
            rng: seed | 1,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        let r = xorshift(&mut self.rng);
        let cap = self.next.min(self.max);
        let half = cap / 2;
        let spread = (cap - half).as_millis() as u64;
        let jitter = if spread == 0 { 0 } else { r % (spread + 1) };
        self.next = (self.next * 2).min(self.max);
        half + Duration::from_millis(jitter)
    }
}

/// What one look at a slow resource found.
#[derive(Debug, PartialEq)]
pub enum Wait<T> {
    Ready(T),
    /// Not yet: the status to show while waiting.
    Pending(String),
}

/// When to look again at something AWS is still working on. The first look comes soon; then the delay grows with the time already
/// waited, so that the wait overshoots the moment the resource got ready by
/// at most 1/20 of it (or `FIRST`), capped at 30 s. Each delay is trimmed
/// by up to a tenth at random, so that runs that started together spread
/// apart and the bound still holds. A wait of T costs about 21 + 21·ln(T /
/// 5 s) looks once T passes 5 s: about 52 for 20 s, 107 for 5 minutes
/// (where a fixed 30 s poll would take 10 looks but be up to 30 s late).
/// [`wait_for`] counts each delay from the last look's start; a place's
/// shared rounds ([`crate::rounds`]) from the last round's answer. What a
/// place's waits cannot share keeps to a budget
/// ([`crate::rounds::paced_look`]).
pub struct PollSchedule {
    rng: u64,
}

impl PollSchedule {
    /// A quarter of a second: a look is at most that late while the wait
    /// is young (a Lambda update takes a second or two).
    pub const FIRST: Duration = Duration::from_millis(250);
    pub const MAX: Duration = Duration::from_secs(30);
    /// The part of the time waited so far that one more delay may add.
    pub const OVERSHOOT: u32 = 20;

    pub fn new() -> PollSchedule {
        PollSchedule { rng: seed() }
    }

    #[cfg(test)]
    pub fn with_seed(seed: u64) -> PollSchedule {
        PollSchedule { rng: seed | 1 }
    }

    /// The delay before the next look, `elapsed` into the wait.
    pub fn next_delay(&mut self, elapsed: Duration) -> Duration {
        let base = (elapsed / Self::OVERSHOOT).clamp(Self::FIRST, Self::MAX);
        let tenth = base.as_millis() as u64 / 10;
        base - Duration::from_millis(xorshift(&mut self.rng) % (tenth + 1))
    }
}

impl Default for PollSchedule {
    fn default() -> Self {
        PollSchedule::new()
    }
}

/// Polls `probe` until it is ready, failing when `timeout` passes, on a
/// [`PollSchedule`]: the first look a quarter of a second after the call
/// that started the work answered, then more rarely as the wait grows.
/// `probe` fails early by returning `Err` (a terminal status).
pub async fn wait_for<T, F, Fut>(
    bar: &StepBar,
    what: &str,
    timeout: Duration,
    probe: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Wait<T>>>,
{
    let started = Instant::now();
    let mut schedule = PollSchedule::new();
    // When the last look was sent (the wait's start for the first one).
    let mut last = started;
    let pace = move |left: Duration| {
        let delay = schedule.next_delay(unscaled(started.elapsed()));
        let wait = delay
            .saturating_sub(unscaled(last.elapsed()))
            .max(delay / AFTER_AN_ANSWER)
            .min(unscaled(left));
        last = Instant::now() + scaled(wait);
        sleep(wait)
    };
    wait_paced(bar, what, timeout, pace, probe).await
}

/// A look's delay counts from the last look's start, so that its latency
/// does not add up; but the next look comes no sooner than this part of
/// the delay after the last answer: a slow (or throttled) answer is not
/// followed by another at once.
pub const AFTER_AN_ANSWER: u32 = 4;

/// The loop of a wait: `pace` waits until the next look is due (at most
/// the time left), `probe` looks.
pub async fn wait_paced<T, F, Fut, P, PFut>(
    bar: &StepBar,
    what: &str,
    timeout: Duration,
    mut pace: P,
    mut probe: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Wait<T>>>,
    P: FnMut(Duration) -> PFut,
    PFut: Future<Output = Result<(), Interrupted>>,
{
    crate::failpoint::hit(bar.name(), "wait");
    let started = Instant::now();
    let deadline = Deadline::after(timeout);
    bar.set(format!("waiting for {what}"));
    loop {
        pace(scaled_limit(timeout).saturating_sub(started.elapsed())).await?;
        let status = match probe().await? {
            Wait::Ready(v) => return Ok(v),
            Wait::Pending(status) => status,
        };
        let elapsed = unscaled(started.elapsed());
        if deadline.passed() {
            anyhow::bail!(
                "{what} is still {status} after {}s (the limit is {}s); \
                 run the same command again to keep waiting, or raise the limit in the runbook",
                elapsed.as_secs(),
                timeout.as_secs()
            );
        }
        bar.set(format!(
            "waiting for {what}: {status} ({}s)",
            elapsed.as_secs()
        ));
    }
}

/// Calls `call` again while it fails with one of `codes` (a busy DB, a
/// Lambda update in progress, a group still in use), with backoff, for at
/// most `limit`. The last result is returned as it is.
pub async fn retry_on<T, E, R, F, Fut>(
    bar: &StepBar,
    codes: &[&str],
    limit: Duration,
    mut call: F,
) -> Result<Result<T, SdkError<E, R>>, Interrupted>
where
    E: ProvideErrorMetadata,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SdkError<E, R>>>,
{
    let deadline = Deadline::after(limit);
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(15));
    loop {
        let result = call().await;
        let code = match &result {
            Err(e) => crate::aws::error_code(e).map(str::to_string),
            Ok(_) => None,
        };
        match code {
            Some(code) if codes.contains(&code.as_str()) && !deadline.passed() => {
                let delay = backoff.next_delay();
                bar.set(format!(
                    "{code}: retrying in {:.0}s",
                    delay.as_secs_f64().ceil()
                ));
                sleep(delay).await?;
            }
            _ => return Ok(result),
        }
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
    fn polls_come_soon_then_overshoot_by_a_twentieth_at_most() {
        let mut p = PollSchedule::with_seed(7);
        let secs = Duration::from_secs;
        let d = p.next_delay(Duration::ZERO);
        assert!(
            d <= PollSchedule::FIRST && d >= PollSchedule::FIRST * 9 / 10,
            "{d:?}"
        );
        let d = p.next_delay(secs(100));
        assert!(d <= secs(5) && d >= secs(4), "{d:?}");
        assert!(p.next_delay(secs(3600)) <= PollSchedule::MAX);
        // Simulated waits: a resource ready at `ready` is seen within a
        // twentieth of it (or FIRST), with the number of looks predicted.
        for (ready, most_looks) in [(secs(20), 54), (secs(10), 38), (secs(300), 110)] {
            let (mut t, mut looks) = (Duration::ZERO, 0);
            while t < ready {
                t += p.next_delay(t);
                looks += 1;
            }
            let late = t - ready;
            assert!(
                late <= (ready / 20).max(PollSchedule::FIRST),
                "{ready:?}: {late:?}"
            );
            assert!(looks <= most_looks, "{ready:?}: {looks} looks");
        }
    }

    #[test]
    fn deadline() {
        assert!(Deadline::after(Duration::ZERO).passed());
        assert!(!Deadline::after(Duration::from_secs(60)).passed());
    }
}
