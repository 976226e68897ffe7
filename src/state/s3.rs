//! The state as one S3 object that a team shares, with Terraform's way of
//! locking it and more: the lock is an object `KEY.lock` created with
//! `If-None-Match: *` (one process gets it; another is told who holds it and
//! the lock's id), and every state write is a compare-and-swap, `If-Match`
//! on the ETag this process last read or wrote, so a writer that lost its
//! lock (or a hand edit) is refused instead of overwriting. Each write
//! carries who made it (user, host, pid, command) as object metadata, for
//! `status --history` on a versioned bucket. A PutObject is whole or not
//! at all, so a kill at any moment leaves the old state or the new one.

use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use serde::{Deserialize, Serialize};

use super::{State, StateError, recovery};
use crate::aws::describe_error;
use crate::error::Failure;

/// The IAM actions a state in S3 needs (`permissions`): to read it (`plan`,
/// `status`), to lock and write it (every command that changes the
/// account), and to read its history (`status --history`). GetObject on a
/// key that does not exist answers NoSuchKey only with s3:ListBucket.
pub const READ: crate::actions::Calls = {
    use crate::actions::On;
    &[
        ("s3:GetObject", On::StateObject),
        ("s3:ListBucket", On::StateBucket),
        ("kms:Decrypt", On::StateKey),
    ]
};
pub const WRITE: crate::actions::Calls = {
    use crate::actions::On;
    &[
        ("s3:GetObject", On::StateObject),
        ("s3:ListBucket", On::StateBucket),
        ("s3:PutObject", On::StateObject),
        ("s3:DeleteObject", On::StateObject),
        ("kms:Decrypt", On::StateKey),
        ("kms:GenerateDataKey", On::StateKey),
    ]
};
pub const HISTORY: crate::actions::Calls = {
    use crate::actions::On;
    &[
        ("s3:ListBucketVersions", On::StateBucket),
        ("s3:GetObjectVersion", On::StateObject),
    ]
};

/// Where the state lives in S3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Place {
    pub bucket: String,
    pub key: String,
    /// The bucket's region, when it is not the one the steps act in.
    pub region: Option<String>,
    /// A KMS key to encrypt the state with (SSE-KMS); else the bucket's
    /// default encryption.
    pub kms_key: Option<String>,
}

impl std::fmt::Display for S3Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

impl S3Place {
    /// `s3://BUCKET/KEY`.
    pub fn parse(url: &str) -> Option<Result<S3Place, String>> {
        let rest = url.strip_prefix("s3://")?;
        Some(match rest.split_once('/') {
            Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() && !key.ends_with('/') => {
                Ok(S3Place {
                    bucket: bucket.to_string(),
                    key: key.to_string(),
                    region: None,
                    kms_key: None,
                })
            }
            _ => Err(format!(
                "`{url}` is not an S3 state: give s3://BUCKET/KEY, e.g. \
                 s3://my-team-state/rds-proxy/orders.state.json"
            )),
        })
    }

    fn lock_key(&self) -> String {
        format!("{}.lock", self.key)
    }
}

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
    fn me(command: &str) -> Holder {
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
            since: super::now(),
        }
    }
}

/// 16 hex digits from the OS's random source: a lock's id.
fn random_id() -> String {
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

/// The S3 state, opened: its client, and the ETag of the version this
/// process last read or wrote (None: there was no object).
pub struct S3State {
    pub place: S3Place,
    client: aws_sdk_s3::Client,
    etag: Mutex<Option<String>>,
    /// Who writes: user, host, pid, command (object metadata of each write).
    writer: Holder,
    /// Whether this process took the lock (released by [`release_all`]).
    locked: tokio::sync::Mutex<bool>,
}

/// One earlier version of the state, for `status --history`.
#[derive(Debug, Serialize)]
pub struct Version {
    pub version_id: String,
    pub when: String,
    pub latest: bool,
    pub who: String,
    pub host: String,
    pub command: String,
}

fn code<E: ProvideErrorMetadata>(e: &aws_sdk_s3::error::SdkError<E>) -> Option<&str> {
    match e {
        aws_sdk_s3::error::SdkError::ServiceError(s) => s.err().code(),
        _ => None,
    }
}

/// S3's answer to a condition that does not hold (412), or to another
/// conditional write to the key in flight (409).
fn is_precondition_failed(code: Option<&str>) -> bool {
    matches!(code, Some("PreconditionFailed"))
}

fn is_conflict(code: Option<&str>) -> bool {
    matches!(code, Some("ConditionalRequestConflict"))
}

fn is_missing(code: Option<&str>) -> bool {
    matches!(code, Some("NoSuchKey" | "NotFound"))
}

impl S3State {
    pub fn new(place: S3Place, client: aws_sdk_s3::Client, command: &str) -> S3State {
        S3State {
            place,
            client,
            etag: Mutex::new(None),
            writer: Holder::me(command),
            locked: tokio::sync::Mutex::new(false),
        }
    }

    fn fail(&self, what: &str, e: String) -> anyhow::Error {
        Failure::bad_input(format!(
            "cannot {what} the state at {}: {e} (the backend needs s3:GetObject, \
             s3:PutObject and s3:DeleteObject on the key and its .lock, s3:ListBucket on \
             the bucket; kms:GenerateDataKey and kms:Decrypt on its key, if one is set: see \
             docs/state.md, \"A state shared by a team\")",
            self.place
        ))
    }

    /// The object's text and ETag, if there is one.
    async fn read(&self, key: &str) -> Result<Option<(String, Option<String>)>> {
        let got = self
            .client
            .get_object()
            .bucket(&self.place.bucket)
            .key(key)
            .send()
            .await;
        let out = match got {
            Ok(out) => out,
            Err(e) if is_missing(code(&e)) => return Ok(None),
            Err(e) => return Err(self.fail("read", describe_error(&e))),
        };
        let etag = out.e_tag().map(String::from);
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| self.fail("read", e.to_string()))?;
        Ok(Some((
            String::from_utf8_lossy(&bytes.into_bytes()).into_owned(),
            etag,
        )))
    }

    /// Whether the last load found a state (it remembered its version).
    pub fn found(&self) -> bool {
        self.etag.lock().expect("etag").is_some()
    }

    pub async fn exists(&self) -> Result<bool> {
        Ok(self.read(&self.place.key).await?.is_some())
    }

    /// Reads the state (a fresh one when there is none) and remembers its
    /// version for the next write.
    pub async fn load(&self, runbook: &str) -> Result<State> {
        let pseudo = std::path::PathBuf::from(self.place.to_string());
        let state = match self.read(&self.place.key).await? {
            None => {
                *self.etag.lock().expect("etag") = None;
                State::new(runbook)
            }
            Some((text, etag)) => {
                *self.etag.lock().expect("etag") = etag;
                match State::parse(&pseudo, &text, runbook) {
                    Ok(state) => state,
                    Err(StateError::Corrupt { path, why, .. }) => {
                        let advice = self.corrupt_advice(runbook).await;
                        return Err(super::as_failure(StateError::Corrupt { path, why, advice }));
                    }
                    Err(e) => return Err(super::as_failure(e)),
                }
            }
        };
        Ok(state)
    }

    /// The ways on from a state object that cannot be read (see
    /// [`recovery::advice`]), its previous version first.
    async fn corrupt_advice(&self, runbook: &str) -> String {
        let here = self.place.to_string();
        recovery::advice(
            runbook,
            self.previous_version(runbook).await,
            &format!("aws s3 mv {here} {here}.broken"),
            &format!("aws s3 rm {here}"),
        )
    }

    /// How to put back the version of the state before the current one:
    /// when the bucket keeps versions and that one reads as a state of
    /// `runbook`; else why not.
    async fn previous_version(&self, runbook: &str) -> Result<String, String> {
        let (bucket, key) = (&self.place.bucket, &self.place.key);
        if !self.versioned().await? {
            return Err(format!(
                "bucket {bucket} keeps no versions, so there is no earlier state to put back"
            ));
        }
        let listed = self
            .client
            .list_object_versions()
            .bucket(bucket)
            .prefix(key)
            .send()
            .await
            .map_err(|e| format!("its versions cannot be listed: {}", describe_error(&e)))?;
        // Newest first, as S3 lists a key's versions.
        let previous = listed
            .versions()
            .iter()
            .filter(|v| v.key() == Some(key.as_str()) && v.is_latest() != Some(true))
            .find_map(|v| v.version_id());
        let Some(id) = previous else {
            return Err("the bucket holds no earlier version of it".into());
        };
        let text = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .version_id(id)
            .send()
            .await
            .map_err(|e| {
                format!(
                    "its previous version {id} cannot be read: {}",
                    describe_error(&e)
                )
            })?
            .body
            .collect()
            .await
            .map_err(|e| format!("its previous version {id} cannot be read: {e}"))?
            .into_bytes();
        let pseudo = std::path::PathBuf::from(format!("{}?versionId={id}", self.place));
        if let Err(e) = State::parse(&pseudo, &String::from_utf8_lossy(&text), runbook) {
            return Err(format!(
                "its previous version cannot be used either ({e}); `status --history` lists the \
                 others"
            ));
        }
        // The copy is encrypted as the tool writes the state.
        let kms = match &self.place.kms_key {
            Some(k) => format!(" --server-side-encryption aws:kms --ssekms-key-id {k}"),
            None => String::new(),
        };
        Ok(format!(
            "put back its previous version, {id} (`status --history` lists them, with who wrote \
             each and when): `aws s3api copy-object --bucket {bucket} --key {key} --copy-source \
             {bucket}/{key}?versionId={id}{kms}`"
        ))
    }

    /// Writes the state if the object is still the version this process
    /// last read or wrote (or, when there was none, if there still is
    /// none); remembers the new version. Refused, writing nothing, when
    /// someone else wrote it meanwhile. Takes the lock first if this
    /// process does not hold it yet (a run reads without it, and locks at
    /// its first write, which always comes before its first change).
    pub async fn save(&self, state: &State) -> Result<()> {
        self.lock().await?;
        let mut json = serde_json::to_vec_pretty(state).expect("state serializes");
        json.push(b'\n');
        let expected = self.etag.lock().expect("etag").clone();
        let mut put = self
            .client
            .put_object()
            .bucket(&self.place.bucket)
            .key(&self.place.key)
            .content_type("application/json")
            .body(ByteStream::from(json))
            .metadata("who", &self.writer.who)
            .metadata("host", &self.writer.host)
            .metadata("pid", self.writer.pid.to_string())
            .metadata("command", &self.writer.command);
        put = match &expected {
            Some(etag) => put.if_match(etag),
            None => put.if_none_match("*"),
        };
        if let Some(key) = &self.place.kms_key {
            put = put
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(key);
        }
        match put.send().await {
            Ok(out) => {
                *self.etag.lock().expect("etag") = out.e_tag().map(String::from);
                Ok(())
            }
            // 404 on If-Match: deleted meanwhile, also a change.
            Err(e)
                if is_precondition_failed(code(&e))
                    || is_conflict(code(&e))
                    || (expected.is_some() && is_missing(code(&e))) =>
            {
                Err(self.changed_since())
            }
            Err(e) => Err(self.fail("write", describe_error(&e))),
        }
    }

    /// A write refused because someone else wrote meanwhile.
    fn changed_since(&self) -> anyhow::Error {
        Failure::locked(format!(
            "the state at {} changed since this process read it (another process ran and \
             wrote it meanwhile, or wrote it after this one lost its lock, or it was edited by \
             hand): this write was refused, so nothing of the other writer's record was \
             overwritten. This process stops here; what it did in AWS is in the account, and \
             each step's check finds it: look with `status`, then run again",
            self.place
        ))
    }

    /// The lock, for changes that come before this process's next write (a
    /// replacement's deletions): when it is taken only now, the state must
    /// still be the version this process read, or those changes would act
    /// on a state someone else has changed since.
    pub async fn lock_unchanged(&self) -> Result<()> {
        if !self.lock().await? {
            return Ok(());
        }
        let now = self.read(&self.place.key).await?.and_then(|(_, etag)| etag);
        if now != *self.etag.lock().expect("etag") {
            return Err(self.changed_since());
        }
        Ok(())
    }

    /// Deletes the state object, only while it is the version this
    /// process read (after `state pull` copied it).
    pub async fn delete_state(&self) -> Result<()> {
        let etag = self.etag.lock().expect("etag").clone().unwrap_or_default();
        match delete(&self.client, &self.place.bucket, &self.place.key, &etag).await {
            Ok(()) => Ok(()),
            Err(Gone::Changed) => Err(Failure::locked(format!(
                "the state at {} changed while it was being moved: the copy was written, the \
                 object kept; compare the two before using either",
                self.place
            ))),
            Err(Gone::Failed(e)) => Err(self.fail("delete", e)),
        }
    }

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
    async fn take_lock(&self) -> Result<S3Lock> {
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
    async fn held(&self) -> Result<Option<(Holder, String)>> {
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

    /// The state's versions, newest first, with who wrote each (a bucket
    /// without versioning keeps only the latest).
    pub async fn history(&self) -> Result<Vec<Version>> {
        let listed = self
            .client
            .list_object_versions()
            .bucket(&self.place.bucket)
            .prefix(&self.place.key)
            .send()
            .await
            .map_err(|e| self.fail("list the versions of", describe_error(&e)))?;
        let mut out = Vec::new();
        for v in listed.versions() {
            if v.key() != Some(self.place.key.as_str()) {
                continue;
            }
            let id = v.version_id().unwrap_or("null").to_string();
            // "null": the one object of a bucket without versioning.
            let version = Some(id.clone()).filter(|v| v != "null");
            let head = self
                .client
                .head_object()
                .bucket(&self.place.bucket)
                .key(&self.place.key)
                .set_version_id(version)
                .send()
                .await
                .map_err(|e| self.fail("read a version of", describe_error(&e)))?;
            let meta = |k: &str| {
                head.metadata()
                    .and_then(|m| m.get(k))
                    .cloned()
                    .unwrap_or_else(|| "?".into())
            };
            out.push(Version {
                when: v
                    .last_modified()
                    .and_then(|d| d.fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime).ok())
                    .unwrap_or_default(),
                latest: v.is_latest().unwrap_or(false),
                version_id: id,
                who: meta("who"),
                host: meta("host"),
                command: meta("command"),
            });
        }
        Ok(out)
    }

    /// Whether the bucket keeps a new version at each write (versioning
    /// `Enabled`; never turned on, or `Suspended`: it does not); `Err`: why
    /// that cannot be read.
    pub async fn versioned(&self) -> Result<bool, String> {
        let b = &self.place.bucket;
        match self.client.get_bucket_versioning().bucket(b).send().await {
            Ok(v) => Ok(v.status().map(|s| s.as_str()) == Some("Enabled")),
            Err(e) => Err(format!(
                "cannot read the versioning of bucket {b}: {} (allow s3:GetBucketVersioning)",
                describe_error(&e)
            )),
        }
    }

    /// What the AWS and Terraform docs advise for a state bucket and this
    /// one lacks: versioning (history, recovery) and encryption.
    pub async fn advice(&self) -> Vec<String> {
        let b = &self.place.bucket;
        let mut out = Vec::new();
        match self.versioned().await {
            Ok(true) => {}
            Ok(false) => out.push(format!(
                "bucket {b} does not keep versions of the state: turn versioning on \
                 (`{}`) for its history and to recover an earlier state",
                versioning_command(b)
            )),
            Err(e) => out.push(e),
        }
        let kms = self.place.kms_key.is_some();
        match self.client.get_bucket_encryption().bucket(b).send().await {
            Ok(_) => {}
            Err(_) if kms => {}
            Err(e) if code(&e) == Some("ServerSideEncryptionConfigurationNotFoundError") => {
                out.push(format!(
                    "bucket {b} has no default encryption and the runbook gives no kms_key: \
                     set one of them for the state"
                ))
            }
            Err(e) => out.push(format!(
                "cannot read the encryption of bucket {b}: {} (allow s3:GetEncryptionConfiguration)",
                describe_error(&e)
            )),
        }
        out
    }
}

/// The command that turns versioning on for `bucket`.
pub fn versioning_command(bucket: &str) -> String {
    format!(
        "aws s3api put-bucket-versioning --bucket {bucket} --versioning-configuration \
         Status=Enabled"
    )
}

/// The error a second process gets: who holds the lock, since when, its
/// id, and the command that removes it once that process is known gone.
pub fn locked_message(place: &S3Place, holder: Option<&Holder>) -> String {
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

/// Why a conditional delete did not happen.
enum Gone {
    /// The object is not the version given (or not there).
    Changed,
    Failed(String),
}

/// Deletes `key` only while it is the version `etag` (If-Match).
async fn delete(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    etag: &str,
) -> Result<(), Gone> {
    match client
        .delete_object()
        .bucket(bucket)
        .key(key)
        .if_match(etag)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_precondition_failed(code(&e)) || is_missing(code(&e)) => Err(Gone::Changed),
        Err(e) => Err(Gone::Failed(describe_error(&e))),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_s3_place_is_a_bucket_and_a_key() {
        let p = S3Place::parse("s3://team/rds/orders.state.json")
            .unwrap()
            .unwrap();
        assert_eq!(
            (p.bucket.as_str(), p.key.as_str()),
            ("team", "rds/orders.state.json")
        );
        assert_eq!(p.to_string(), "s3://team/rds/orders.state.json");
        assert_eq!(p.lock_key(), "rds/orders.state.json.lock");
        assert!(S3Place::parse("state.json").is_none(), "a local path");
        for bad in [
            "s3://",
            "s3://bucket",
            "s3://bucket/",
            "s3:///key",
            "s3://b/dir/",
        ] {
            assert!(S3Place::parse(bad).unwrap().is_err(), "{bad}");
        }
    }

    #[test]
    fn lock_ids_differ_and_the_message_says_how_to_remove_one() {
        assert_ne!(random_id(), random_id());
        assert_eq!(random_id().len(), 16);
        let place = S3Place::parse("s3://b/k").unwrap().unwrap();
        let h = Holder::me("run");
        let m = locked_message(&place, Some(&h));
        assert!(
            m.contains(&format!("unlock RUNBOOK --force {}", h.id)),
            "{m}"
        );
        assert!(m.contains(&h.host) && m.contains("`run`"), "{m}");
    }

    #[test]
    fn the_conditions_answers_are_told_apart() {
        assert!(is_precondition_failed(Some("PreconditionFailed")));
        assert!(is_conflict(Some("ConditionalRequestConflict")));
        assert!(is_missing(Some("NoSuchKey")));
        assert!(!is_precondition_failed(Some("AccessDenied")));
    }
}
