//! The state as one S3 object that a team shares, with Terraform's way of
//! locking it and more: the lock is an object `KEY.lock` created with
//! `If-None-Match: *` (one process gets it; another is told who holds it and
//! the lock's id), and every state write is a compare-and-swap, `If-Match`
//! on the ETag this process last read or wrote, so a writer that lost its
//! lock (or a hand edit) is refused instead of overwriting. Each write
//! carries who made it (user, host, pid, command) as object metadata, for
//! `status --history` on a versioned bucket. A PutObject is whole or not
//! at all, so a kill at any moment leaves the old state or the new one.
//!
//! Here: the place (`s3://BUCKET/KEY`), reads, loads and compare-and-swap
//! writes; lock.rs: the lock object, its holder, `unlock` by id and the
//! release at the end; history.rs: `status --history` and the advice on
//! the bucket.

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

pub mod history;
mod lock;
pub use lock::{Holder, release_all};

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

#[cfg(test)]
mod tests;
