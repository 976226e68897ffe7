//! Shared looks: every wait on a proxy (or a proxy endpoint) in one account
//! and region reads the same answers. While anything waits there, one task
//! lists them all (DescribeDBProxies without a name, page by page) in
//! rounds, and each wait reads its own proxy out of the latest round.
//! A fleet of fifty proxies creating together then costs one call per
//! round, as one proxy does, instead of fifty.
//!
//! The rounds keep the pace of the youngest wait (the one that began
//! last): the delay grows with its time waited as [`PollSchedule`] says,
//! so no wait sees its resource later than it would on its own schedule;
//! one that has waited longer is looked at more often than it needs, for
//! free. A new wait brings the next round forward to a quarter of a
//! second from its start, never back.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_rds::types::{DbProxy, DbProxyEndpoint};
use tokio::sync::{Notify, watch};

use crate::aws::errors::{is_endpoint_not_found, is_proxy_not_found};
use crate::aws::{Aws, describe_error, error_code};
use crate::poll::{self, Interrupted, PollSchedule, Wait};
use crate::ui::progress::StepBar;

type Fetch<V> =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<V, String>> + Send>> + Send + Sync>;

/// One round's answer, numbered, with when its first call was sent.
pub struct Round<V> {
    seq: u64,
    started: Instant,
    answer: Result<V, String>,
}

struct Waiting {
    /// Each wait that has joined and not left, by id: when it began.
    waits: BTreeMap<u64, Instant>,
    next_id: u64,
    /// When the next round is due (while the task runs).
    next_at: Option<Instant>,
    running: bool,
}

/// The rounds of one kind of listing in one place.
pub struct Rounds<V> {
    fetch: Fetch<V>,
    waiting: Mutex<Waiting>,
    wake: Notify,
    latest: watch::Sender<Option<Arc<Round<V>>>>,
    /// Rounds made so far (for the tests and the benchmark's trace).
    made: AtomicU64,
}

impl<V: Send + Sync + 'static> Rounds<V> {
    fn new(fetch: Fetch<V>) -> Arc<Rounds<V>> {
        Arc::new(Rounds {
            fetch,
            waiting: Mutex::new(Waiting {
                waits: BTreeMap::new(),
                next_id: 0,
                next_at: None,
                running: false,
            }),
            wake: Notify::new(),
            latest: watch::channel(None).0,
            made: AtomicU64::new(0),
        })
    }

    /// Joins the rounds: the first answer this wait reads is of a round
    /// sent after now.
    pub fn join(self: &Arc<Self>) -> Ticket<V> {
        let joined = Instant::now();
        let mut w = self.waiting.lock().expect("not poisoned");
        let id = w.next_id;
        w.next_id += 1;
        w.waits.insert(id, joined);
        let first = joined + poll::scaled(PollSchedule::FIRST);
        w.next_at = Some(w.next_at.map_or(first, |at| at.min(first)));
        if !w.running {
            w.running = true;
            let rounds = self.clone();
            tokio::spawn(async move { rounds.keep_rounds().await });
        }
        drop(w);
        self.wake.notify_one();
        Ticket {
            rounds: self.clone(),
            id,
            joined,
            current: Mutex::new(None),
        }
    }

    /// The task: a round when one is due, while any wait is left. Each
    /// delay counts from the last round's start, as `poll::wait_for`
    /// counts from its last look's: a round's own latency does not make
    /// the next one later (but a slow answer is not followed at once).
    async fn keep_rounds(self: Arc<Self>) {
        let mut schedule = PollSchedule::new();
        let mut last_start: Option<Instant> = None;
        loop {
            let due = {
                let mut w = self.waiting.lock().expect("not poisoned");
                let Some(youngest) = w.waits.values().max().copied() else {
                    w.running = false;
                    w.next_at = None;
                    return;
                };
                let waited = poll::unscaled(youngest.elapsed());
                let delay = poll::scaled(schedule.next_delay(waited));
                let now = Instant::now();
                let paced = last_start.map_or(now + delay, |s| {
                    (s + delay).max(now + delay / poll::AFTER_AN_ANSWER)
                });
                let due = w.next_at.map_or(paced, |at| at.min(paced));
                w.next_at = Some(due);
                due
            };
            let now = Instant::now();
            if due > now {
                // A new wait may bring the round forward: look again then.
                let _ = tokio::time::timeout(due - now, self.wake.notified()).await;
                if Instant::now() < due {
                    continue;
                }
            }
            let started = Instant::now();
            last_start = Some(started);
            {
                // Rounds due before this one are this one.
                let mut w = self.waiting.lock().expect("not poisoned");
                w.next_at = None;
            }
            let answer = (self.fetch)().await;
            let seq = self.made.fetch_add(1, Ordering::SeqCst) + 1;
            self.latest.send_replace(Some(Arc::new(Round {
                seq,
                started,
                answer,
            })));
        }
    }

    fn leave(&self, id: u64) {
        let mut w = self.waiting.lock().expect("not poisoned");
        w.waits.remove(&id);
        drop(w);
        self.wake.notify_one();
    }

    /// Rounds made so far.
    #[cfg(test)]
    pub fn made(&self) -> u64 {
        self.made.load(Ordering::SeqCst)
    }
}

/// One wait's place in the rounds; leaving is dropping it.
pub struct Ticket<V: Send + Sync + 'static> {
    rounds: Arc<Rounds<V>>,
    id: u64,
    joined: Instant,
    current: Mutex<Option<Arc<Round<V>>>>,
}

impl<V: Send + Sync + 'static> Drop for Ticket<V> {
    fn drop(&mut self) {
        self.rounds.leave(self.id);
    }
}

impl<V: Send + Sync + 'static> Ticket<V> {
    /// Waits for a round this wait has not read yet (sent after it
    /// joined), at most `limit`; Ctrl-C ends the wait.
    async fn next(&self, limit: Duration) -> Result<(), Interrupted> {
        let end = Instant::now() + limit;
        let mut rx = self.rounds.latest.subscribe();
        loop {
            {
                let latest = rx.borrow_and_update();
                let mut current = self.current.lock().expect("not poisoned");
                let seen = current.as_ref().map_or(0, |c| c.seq);
                if let Some(r) = &*latest
                    && r.seq > seen
                    && r.started >= self.joined
                {
                    *current = Some(r.clone());
                    return Ok(());
                }
            }
            if poll::interrupted() {
                return Err(Interrupted);
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), rx.changed()).await;
        }
    }

    /// The answer of the round this wait read last.
    fn answer<T>(&self, read: impl FnOnce(&V) -> T) -> anyhow::Result<Option<T>> {
        let current = self.current.lock().expect("not poisoned");
        match current.as_deref() {
            None => Ok(None),
            Some(Round { answer: Ok(v), .. }) => Ok(Some(read(v))),
            Some(Round { answer: Err(e), .. }) => anyhow::bail!("{e}"),
        }
    }
}

/// The proxies of a place, by name.
pub type Proxies = BTreeMap<String, DbProxy>;
/// The proxy endpoints of a place, by name.
pub type Endpoints = BTreeMap<String, DbProxyEndpoint>;

/// The network interfaces of the security groups waited on in a place, by
/// group: (interface id, status).
pub type Interfaces = BTreeMap<String, Vec<(String, String)>>;

/// The groups whose interfaces the place's waits look at, each with how
/// many waits look at it.
type Groups = Arc<Mutex<BTreeMap<String, usize>>>;

/// What the runbooks of one place (`aws::Place`) share: the waits'
/// rounds, the checks' listings, the pacer of the looks.
struct Shared {
    proxies: Arc<Rounds<Proxies>>,
    endpoints: Arc<Rounds<Endpoints>>,
    interfaces: Arc<Rounds<Interfaces>>,
    interface_groups: Groups,
    /// The reads of [`shared`].
    shared: crate::answers::Answers,
    /// The slots of [`paced_look`].
    looks: Pacer,
}

/// The shared rounds of `aws`'s place. Global: every runbook of a fleet
/// connects its own clients, and the point of a place is that they find
/// the same rounds without being handed them; one map for the process.
fn place(aws: &Aws) -> Arc<Shared> {
    static PLACES: OnceLock<Mutex<BTreeMap<crate::aws::Place, Arc<Shared>>>> = OnceLock::new();
    let mut places = PLACES
        .get_or_init(Default::default)
        .lock()
        .expect("not poisoned");
    places
        .entry(aws.place.clone())
        .or_insert_with(|| {
            let rds = aws.rds.clone();
            let proxies = Rounds::new(Box::new(move || {
                let rds = rds.clone();
                Box::pin(async move { list_proxies(&rds).await })
            }));
            let rds = aws.rds.clone();
            let endpoints = Rounds::new(Box::new(move || {
                let rds = rds.clone();
                Box::pin(async move { list_endpoints(&rds).await })
            }));
            let ec2 = aws.ec2.clone();
            let interface_groups = Groups::default();
            let groups = interface_groups.clone();
            let interfaces = Rounds::new(Box::new(move || {
                let ec2 = ec2.clone();
                let groups: Vec<String> = groups
                    .lock()
                    .expect("not poisoned")
                    .keys()
                    .cloned()
                    .collect();
                Box::pin(async move { list_interfaces(&ec2, groups).await })
            }));
            Arc::new(Shared {
                proxies,
                endpoints,
                interfaces,
                interface_groups,
                shared: crate::answers::Answers::fresh_for(FRESH),
                looks: Pacer::new(PACED_LOOKS_PER_SECOND),
            })
        })
        .clone()
}

async fn list_proxies(rds: &aws_sdk_rds::Client) -> Result<Proxies, String> {
    let mut all = Proxies::new();
    let mut pages = rds.describe_db_proxies().into_paginator().send();
    while let Some(page) = pages.next().await {
        match page {
            Ok(page) => {
                for p in page.db_proxies.unwrap_or_default() {
                    all.insert(p.db_proxy_name().unwrap_or_default().to_string(), p);
                }
            }
            // Not an answer to a listing, but an emulator's (or a mock's).
            Err(e) if is_proxy_not_found(error_code(&e)) => break,
            Err(e) => {
                return Err(format!(
                    "cannot list the DB proxies: {}",
                    describe_error(&e)
                ));
            }
        }
    }
    Ok(all)
}

async fn list_endpoints(rds: &aws_sdk_rds::Client) -> Result<Endpoints, String> {
    let mut all = Endpoints::new();
    let mut pages = rds.describe_db_proxy_endpoints().into_paginator().send();
    while let Some(page) = pages.next().await {
        match page {
            Ok(page) => {
                for e in page.db_proxy_endpoints.unwrap_or_default() {
                    all.insert(
                        e.db_proxy_endpoint_name().unwrap_or_default().to_string(),
                        e,
                    );
                }
            }
            Err(e) if is_endpoint_not_found(error_code(&e)) => break,
            Err(e) => {
                return Err(format!(
                    "cannot list the DB proxy endpoints: {}",
                    describe_error(&e)
                ));
            }
        }
    }
    Ok(all)
}

/// The network interfaces of `groups`, in calls of at most 200 groups
/// (EC2's limit of values in a filter).
pub async fn list_interfaces(
    ec2: &aws_sdk_ec2::Client,
    groups: Vec<String>,
) -> Result<Interfaces, String> {
    let mut all: Interfaces = groups.iter().map(|g| (g.clone(), Vec::new())).collect();
    for chunk in groups.chunks(200) {
        let filter = aws_sdk_ec2::types::Filter::builder()
            .name("group-id")
            .set_values(Some(chunk.to_vec()))
            .build();
        let mut pages = ec2
            .describe_network_interfaces()
            .filters(filter)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                format!(
                    "cannot list the network interfaces of security groups: {}",
                    describe_error(&e)
                )
            })?;
            for n in page.network_interfaces() {
                let id = n.network_interface_id().unwrap_or_default();
                let status = n.status().map_or("unknown", |s| s.as_str());
                for g in n.groups() {
                    if let Some(list) = g.group_id().and_then(|g| all.get_mut(g)) {
                        list.push((id.to_string(), status.to_string()));
                    }
                }
            }
        }
    }
    Ok(all)
}

/// How long a [`shared`] read serves.
const FRESH: Duration = Duration::from_secs(5);

/// `read`'s answer, shared by every runbook of the place that asks for
/// `key` within a few seconds of it (those that ask meanwhile wait for the
/// one in flight): preflight's and plan's reads of what a fleet's runbooks
/// have in common (the account's proxies, a DB, a function) cost one call,
/// not one each. A failed read is not kept.
pub async fn shared<T, F>(aws: &Aws, key: String, read: F) -> anyhow::Result<T>
where
    T: Clone + Send + Sync + 'static,
    F: Future<Output = anyhow::Result<T>>,
{
    place(aws).shared.read(key, read).await
}

/// Every proxy of the place now (preflight's room for one more), shared
/// (see [`shared`]).
pub async fn proxies_now(aws: &Aws) -> anyhow::Result<Proxies> {
    let read = async { list_proxies(&aws.rds).await.map_err(anyhow::Error::msg) };
    shared(aws, "every proxy".into(), read).await
}

/// How many target-health looks (see [`paced_look`]) a place makes a
/// second at most: EC2's documented rate for a Describe action (RDS
/// documents none); the rounds list the proxies with another action.
pub const PACED_LOOKS_PER_SECOND: f64 = 20.0;

/// Waits for the place's next slot for a look that cannot be shared: a
/// proxy's target health is read one proxy at a time, for as long as the
/// target registers (minutes on AWS), so fifty targets waited on together
/// would look fifty times a round and meet AWS's throttling. The slots are
/// spread evenly, [`PACED_LOOKS_PER_SECOND`] of them; one runbook's looks
/// (four a second at most) never wait. A function's update is waited on
/// for a second or two and is not paced.
pub async fn paced_look(aws: &Aws) -> Result<(), Interrupted> {
    let wait = place(aws).looks.slot(Instant::now());
    if wait.is_zero() {
        return Ok(());
    }
    poll::sleep(poll::unscaled(wait)).await
}

/// Slots spread evenly at a rate: each caller gets the next free one.
struct Pacer {
    every: Duration,
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    fn new(per_second: f64) -> Pacer {
        Pacer {
            every: Duration::from_secs_f64(1.0 / per_second),
            next: Mutex::new(None),
        }
    }

    /// How long a caller asking at `now` waits for its slot.
    fn slot(&self, now: Instant) -> Duration {
        let mut next = self.next.lock().expect("not poisoned");
        let slot = next.map_or(now, |n| n.max(now));
        *next = Some(slot + self.every);
        slot - now
    }
}

/// A wait on a proxy of the place of `aws`: each look reads it out of the
/// place's shared round (None: not there).
pub fn proxies(aws: &Aws) -> Ticket<Proxies> {
    place(aws).proxies.join()
}

/// A wait on a proxy endpoint of the place of `aws`.
pub fn endpoints(aws: &Aws) -> Ticket<Endpoints> {
    place(aws).endpoints.join()
}

/// A wait on the network interfaces of a security group of the place of
/// `aws`: each look reads them out of the place's shared round, which
/// lists the interfaces of every group waited on there in one call.
pub fn interfaces(aws: &Aws, group_id: &str) -> InterfacesLook {
    let place = place(aws);
    // Named before joining: every round the wait reads lists its group.
    *place
        .interface_groups
        .lock()
        .expect("not poisoned")
        .entry(group_id.to_string())
        .or_default() += 1;
    InterfacesLook {
        ticket: place.interfaces.join(),
        group: group_id.to_string(),
        groups: place.interface_groups.clone(),
    }
}

/// See [`interfaces`]; dropping it leaves the rounds.
pub struct InterfacesLook {
    pub ticket: Ticket<Interfaces>,
    group: String,
    groups: Groups,
}

impl InterfacesLook {
    /// The group's interfaces in the round read last: (id, status).
    pub fn interfaces(&self) -> anyhow::Result<Option<Vec<(String, String)>>> {
        Ok(self
            .ticket
            .answer(|all| all.get(&self.group).cloned())?
            .flatten())
    }
}

impl Drop for InterfacesLook {
    fn drop(&mut self) {
        let mut groups = self.groups.lock().expect("not poisoned");
        if let Some(n) = groups.get_mut(&self.group) {
            *n -= 1;
            if *n == 0 {
                groups.remove(&self.group);
            }
        }
    }
}

impl Ticket<Proxies> {
    /// The proxy named `name` in the round read last.
    pub fn proxy(&self, name: &str) -> anyhow::Result<Option<DbProxy>> {
        Ok(self.answer(|all| all.get(name).cloned())?.flatten())
    }
}

impl Ticket<Endpoints> {
    /// The endpoint named `name` in the round read last.
    pub fn endpoint(&self, name: &str) -> anyhow::Result<Option<DbProxyEndpoint>> {
        Ok(self.answer(|all| all.get(name).cloned())?.flatten())
    }
}

/// [`poll::wait_for`] on shared rounds: each look is the next round of
/// `ticket` (which `probe` reads), instead of a call of its own.
pub async fn wait_in_rounds<V, T, F, Fut>(
    bar: &StepBar,
    what: &str,
    timeout: Duration,
    ticket: &Ticket<V>,
    probe: F,
) -> anyhow::Result<T>
where
    V: Send + Sync + 'static,
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Wait<T>>>,
{
    poll::wait_paced(bar, what, timeout, |left| ticket.next(left), probe).await
}

#[cfg(test)]
mod tests;
