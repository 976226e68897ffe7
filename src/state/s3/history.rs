//! The S3 state's history (`status --history`: its versions and who wrote
//! each) and the advice on its bucket (versioning, encryption).

use super::*;

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

impl S3State {
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
