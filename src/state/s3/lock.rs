//! The S3 state's lock: the object `KEY.lock`, created with
//! `If-None-Match: *`, naming its holder; taken once per process, released
//! by [`release_all`] at the end of the command, removed by id with
//! `unlock --force`.

use super::*;

/// Who holds the lock, as its object says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Holder {
    pub id: String,
    pub who: String,
    pub host: String,
    pub pid: u32,
    pub command: String,
    pub since: String,
}

impl Holder {
    pub(super) fn me(command: &str) -> Holder {
        Holder {
            id: random_id(),
            who: ["USER", "LOGNAME", "USERNAME"]
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
                // SAFETY: getuid has no preconditions and cannot fail.
                .unwrap_or_else(|| format!("uid {}", unsafe { libc::getuid() })),
            host: gethostname::gethostname().to_string_lossy().into_owned(),
            pid: std::process::id(),
            command: command.to_string(),
            since: crate::state::now(),
        }
    }
}

/// 16 hex digits from the OS's random source: a lock's id.
pub(super) fn random_id() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if read.is_err() {
        // No /dev/urandom: the time and the pid still make it unique enough
        // for a lock that names its holder.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = ((nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)).to_be_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl S3State {
    /// Takes the lock unless this process holds it already; it is released
    /// by [`release_all`], which `main` awaits once the command is over,
    /// whatever its outcome (success, failure, a first Ctrl-C), and before
    /// the exit of a second Ctrl-C.
    /// True when it was taken now.
    pub async fn lock(&self) -> Result<bool> {
        let mut locked = self.locked.lock().await;
        if *locked {
            return Ok(false);
        }
        let lock = self.take_lock().await?;
        let closed = {
            let mut held = HELD.lock().expect("held locks");
            if !held.closed {
                held.locks.push(lock.clone());
            }
            held.closed
        };
        if closed {
            // Taken while the process quits (a second Ctrl-C): given back.
            lock.release().await;
            return Err(Failure::interrupted(
                "quitting: the state's lock was given back",
            ));
        }
        *locked = true;
        Ok(true)
    }

    /// Creates `KEY.lock` only if there is none. A second process is told
    /// who holds it and its id.
    pub(super) async fn take_lock(&self) -> Result<S3Lock> {
        let body = serde_json::to_vec(&self.writer).expect("holder serializes");
        let mut tries = 0;
        loop {
            let sent = self
                .client
                .put_object()
                .bucket(&self.place.bucket)
                .key(self.place.lock_key())
                .content_type("application/json")
                .body(ByteStream::from(body.clone()))
                .if_none_match("*")
                .send()
                .await;
            match sent {
                Ok(out) => {
                    return Ok(S3Lock {
                        client: self.client.clone(),
                        bucket: self.place.bucket.clone(),
                        key: self.place.lock_key(),
                        id: self.writer.id.clone(),
                        etag: out.e_tag().unwrap_or_default().to_string(),
                    });
                }
                // Another conditional write in flight: settled in a moment.
                Err(e) if is_conflict(code(&e)) && tries < 3 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(200 * tries)).await;
                }
                Err(e) if is_precondition_failed(code(&e)) || is_conflict(code(&e)) => {
                    let holder = self.holder().await?;
                    return Err(Failure::locked(locked_message(
                        &self.place,
                        holder.as_ref(),
                    )));
                }
                Err(e) => return Err(self.fail("lock", describe_error(&e))),
            }
        }
    }

    /// Who holds the lock now, if anyone.
    pub async fn holder(&self) -> Result<Option<Holder>> {
        Ok(self.held().await?.map(|(h, _)| h))
    }

    /// The lock's holder and the ETag of its object.
    pub(super) async fn held(&self) -> Result<Option<(Holder, String)>> {
        Ok(self
            .read(&self.place.lock_key())
            .await?
            .and_then(|(text, etag)| Some((serde_json::from_str(&text).ok()?, etag?))))
    }

    /// Removes the lock whose id is `id`, and only that one: the delete is
    /// conditional on the object read (If-Match), so a lock taken since by
    /// another process stays.
    pub async fn unlock(&self, id: &str) -> Result<Holder> {
        let Some((holder, etag)) = self.held().await? else {
            return Err(Failure::usage(format!(
                "{} is not locked: nothing to unlock",
                self.place
            )));
        };
        if holder.id != id {
            return Err(Failure::usage(format!(
                "the lock of {} has id {}, not {id} (held by {} on {}, pid {}, `{}`, since {}): \
                 nothing was removed. Check that that process is gone before removing its lock",
                self.place,
                holder.id,
                holder.who,
                holder.host,
                holder.pid,
                holder.command,
                holder.since
            )));
        }
        match delete(
            &self.client,
            &self.place.bucket,
            &self.place.lock_key(),
            &etag,
        )
        .await
        {
            Ok(()) => Ok(holder),
            Err(Gone::Changed) => Err(Failure::usage(format!(
                "the lock of {} changed while it was being removed (another process took it): \
                 nothing was removed",
                self.place
            ))),
            Err(Gone::Failed(e)) => Err(self.fail("unlock", e)),
        }
    }
}

/// The error a second process gets: who holds the lock, since when, its
/// id, and the command that removes it once that process is known gone.
pub(super) fn locked_message(place: &S3Place, holder: Option<&Holder>) -> String {
    match holder {
        Some(h) => format!(
            "state {place} is locked by {} on {} (pid {}, `{}`, since {}), lock id {}: wait \
             for it to finish; if that process is gone (killed), remove its lock with \
             `rds-proxy-runbook unlock RUNBOOK --force {}`, which removes that lock and no \
             newer one",
            h.who, h.host, h.pid, h.command, h.since, h.id, h.id
        ),
        None => format!(
            "state {place} is locked by another process (its lock was just released or cannot \
             be read): run again"
        ),
    }
}

/// A lock this process holds; released by [`release_all`] on every exit
/// path the process survives (success, failure, Ctrl-C). Only if it is
/// still ours: a lock removed with `unlock --force` and taken by another process
/// is not touched.
#[derive(Clone)]
pub struct S3Lock {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    id: String,
    /// The ETag of the lock object this process wrote: the release deletes
    /// that version only.
    etag: String,
}

impl S3Lock {
    async fn release(&self) {
        // Not ours any more (removed by `unlock --force`, maybe taken by
        // another process): left as it is.
        if let Err(Gone::Failed(e)) =
            delete(&self.client, &self.bucket, &self.key, &self.etag).await
        {
            eprintln!(
                "warning: could not release the state's lock s3://{}/{} (id {}): {e}; remove it \
                 with `rds-proxy-runbook unlock RUNBOOK --force {}`",
                self.bucket, self.key, self.id, self.id
            );
        }
    }
}

/// The S3 locks this process holds. Released by an explicit await at the
/// end of the command rather than in a destructor: a delete sent while the
/// runtime shuts down could wait forever on a stopped I/O driver.
static HELD: std::sync::Mutex<Held> = std::sync::Mutex::new(Held {
    locks: Vec::new(),
    closed: false,
});

struct Held {
    locks: Vec<S3Lock>,
    /// Released for good: a lock taken after it is given back at once.
    closed: bool,
}

/// Releases every S3 lock this process took, each only if it is still
/// ours; a lock taken after this (a write in flight while a second Ctrl-C
/// quits) is given back at once.
pub async fn release_all() {
    let held = {
        let mut held = HELD.lock().expect("held locks");
        held.closed = true;
        std::mem::take(&mut held.locks)
    };
    for lock in held {
        lock.release().await;
    }
}
