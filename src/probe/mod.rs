//! The probe: a short-lived Lambda function of the tool's own that proves
//! the wiring without the user's function (`probe.py`, packaged here). This
//! module holds the pure parts: the function's code as a zip, the event it
//! is given, the report it answers, and which step of the runbook owns a
//! failure, with the fix.

use serde::{Deserialize, Serialize};

pub mod lambda;
pub mod plan;
pub mod render;
pub mod run;

/// The probe's code: self-contained Python (the standard library and boto3).
pub const CODE: &str = include_str!("probe.py");
/// Its handler, as Lambda names it.
pub const HANDLER: &str = "probe.lambda_handler";

/// A zip archive holding the probe's code as `probe.py`, stored without
/// compression (Lambda takes either): small enough to need no zip crate.
pub fn code_zip() -> Vec<u8> {
    let name = b"probe.py";
    let data = CODE.as_bytes();
    let crc = crc32(data);
    let size = data.len() as u32;
    // DOS time and date of 1980-01-01 00:00: the archive does not change
    // between builds, so its checksum (the function's CodeSha256) does not.
    let (time, date) = (0u16, 0x21u16);
    let mut zip = Vec::with_capacity(data.len() + 128);
    let header = |zip: &mut Vec<u8>, central: bool| {
        zip.extend_from_slice(if central {
            &[0x50, 0x4b, 0x01, 0x02, 20, 0]
        } else {
            &[0x50, 0x4b, 0x03, 0x04]
        });
        for v in [20u16, 0, 0, time, date] {
            zip.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, size, size] {
            zip.extend_from_slice(&v.to_le_bytes());
        }
        zip.extend_from_slice(&(name.len() as u16).to_le_bytes());
        zip.extend_from_slice(&0u16.to_le_bytes()); // extra field
    };
    header(&mut zip, false);
    zip.extend_from_slice(name);
    zip.extend_from_slice(data);
    let central_at = zip.len() as u32;
    header(&mut zip, true);
    // comment, disk, internal attributes, external attributes (a regular
    // file, mode 0644), the local header's offset
    for v in [0u16, 0, 0] {
        zip.extend_from_slice(&v.to_le_bytes());
    }
    zip.extend_from_slice(&(0o100644u32 << 16).to_le_bytes());
    zip.extend_from_slice(&0u32.to_le_bytes());
    zip.extend_from_slice(name);
    let central_size = zip.len() as u32 - central_at;
    zip.extend_from_slice(&[0x50, 0x4b, 0x05, 0x06]);
    for v in [0u16, 0, 1, 1] {
        zip.extend_from_slice(&v.to_le_bytes());
    }
    zip.extend_from_slice(&central_size.to_le_bytes());
    zip.extend_from_slice(&central_at.to_le_bytes());
    zip.extend_from_slice(&0u16.to_le_bytes());
    zip
}

/// CRC-32 (IEEE), as zip archives check their members.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in data {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One endpoint the probe connects to, as the runbook configures clients.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Target {
    /// The proxy endpoint's name (`default` for the proxy's own).
    pub name: String,
    pub host: String,
    pub port: u16,
    /// MYSQL or POSTGRESQL.
    pub engine: String,
    pub user: String,
    /// `iam`: an IAM token; `secret`: the secret's password.
    pub auth: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_arn: Option<String>,
    pub tls: bool,
    /// Seconds a connect may take (a dropped SYN waits that long).
    pub timeout: u64,
}

/// A step of the probe's connection, with its time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Timed {
    pub ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tls {
    pub ms: f64,
    pub version: Option<String>,
    pub verified: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Queries {
    pub ms: Vec<f64>,
}

/// What the probe found for one endpoint, as one user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// The endpoint's name.
    #[serde(rename = "endpoint")]
    pub name: Option<String>,
    pub host: String,
    #[serde(default)]
    pub user: Option<String>,
    pub resolve: Option<Timed>,
    pub connect: Option<Timed>,
    pub tls: Option<Tls>,
    pub auth: Option<Timed>,
    pub query: Option<Queries>,
    pub verdict: String,
    pub failed_at: Option<String>,
    pub error: Option<String>,
}

impl Report {
    /// A target the probe could not try, and why.
    pub fn failed_before(user: &str, failed_at: &str, error: &str) -> Report {
        Report {
            name: None,
            host: String::new(),
            user: Some(user.to_string()),
            resolve: None,
            connect: None,
            tls: None,
            auth: None,
            query: None,
            verdict: "failed".into(),
            failed_at: Some(failed_at.into()),
            error: Some(error.into()),
        }
    }
}

/// The probe function's answer.
#[derive(Debug, Deserialize)]
pub struct Answer {
    pub results: Vec<Report>,
}

/// The step of the runbook that owns a failure at `failed_at`, and the
/// fix, as far as the probe's own report tells (`iam`: the client logs in
/// with an IAM token).
pub fn owner(failed_at: &str, error: &str, iam: bool) -> (&'static str, &'static str) {
    let lower = error.to_lowercase();
    match failed_at {
        "resolve" => (
            "proxy",
            "the proxy's endpoint does not resolve: the proxy (or the endpoint) must be \
             available, and the function attached to its VPC",
        ),
        "connect" => (
            "lambda-ingress",
            "the connection timed out: the proxy's security group must admit the function's on \
             the DB port, and the function must be attached to the proxy's VPC",
        ),
        "tls" => (
            "proxy",
            "the TLS handshake failed: trust the Amazon root CAs (the runtime's bundle), with the \
             proxy's endpoint as the host name",
        ),
        "credentials" => (
            "[[lambda]]",
            "the function's role may not read the proxy's secret (secretsmanager:GetSecretValue), \
             which a client logging in with the secret's password needs",
        ),
        "auth" if lower.contains("requires tls") || lower.contains("only with ssl") => (
            "proxy",
            "the proxy requires TLS (RequireTLS, and IAM authentication always) but clients \
             connect as the runbook says, without it: `run` puts proxy.require_tls back on the \
             proxy, or set it to true and connect with TLS",
        ),
        "auth" if lower.contains("no credentials") || lower.contains("password that was") => (
            "secret-access",
            "the proxy holds no secret that logs in as this user (an [[auth]] entry for it), \
             or its password is not the user's",
        ),
        "auth" if iam => (
            "connect-policy",
            "the function's role needs rds-db:connect on the proxy's prx- id for this user; the \
             proxy's log names the resource it lacks",
        ),
        "auth" => (
            "secret-access",
            "the password is not the one the proxy's secret holds for this user",
        ),
        _ => (
            "targets",
            "the proxy lent no DB connection: see its target's health (`doctor`) and its log",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_zip_is_a_valid_archive_of_probe_py() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926, "the standard check value");
        let zip = code_zip();
        assert_eq!(&zip[..4], b"PK\x03\x04");
        assert_eq!(&zip[30..38], b"probe.py");
        assert_eq!(&zip[38..38 + CODE.len()], CODE.as_bytes());
        let end = zip.len() - 22;
        assert_eq!(&zip[end..end + 4], b"PK\x05\x06");
        assert_eq!(code_zip(), zip, "the same bytes every time");
    }

    #[test]
    fn each_failure_has_an_owning_step() {
        assert_eq!(owner("connect", "timed out", true).0, "lambda-ingress");
        assert_eq!(
            owner("auth", "(1045) Access denied for user 'admin'", true).0,
            "connect-policy"
        );
        assert_eq!(
            owner(
                "auth",
                "(3159) This RDS Proxy requires TLS connections.",
                true
            )
            .0,
            "proxy"
        );
        assert_eq!(
            owner(
                "auth",
                "28P01: This RDS proxy has no credentials for the role x",
                false
            )
            .0,
            "secret-access"
        );
        assert_eq!(owner("query", "9501", true).0, "targets");
        assert_eq!(owner("resolve", "", true).0, "proxy");
    }
}
