//! Test support: an emulator per test (or one given by
//! RDS_PROXY_RUNBOOK_TEST_ENDPOINT), the recipe's preconditions seeded into
//! it, the real binary run against it, and snapshots of what the emulator
//! holds so tests can compare before and after.

#![allow(dead_code)]

pub mod faults;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_rds-proxy-runbook");
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");
pub const REGION: &str = "us-east-1";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The longest any one run of the binary (or of a helper script) may take
/// in a test: far above what a command needs on the emulator, so that a
/// hang fails its test, naming the command and what it printed, instead of
/// stalling the whole suite until CI gives up.
pub const PROCESS_LIMIT: Duration = Duration::from_secs(300);

/// Waits for `child` as `wait_with_output` does, killing it past
/// [`PROCESS_LIMIT`] and failing the test with what it printed.
pub fn finish(child: Child) -> Output {
    let pid = child.id();
    let (done, watch) = std::sync::mpsc::channel::<()>();
    let dog = std::thread::spawn(move || {
        let late = watch.recv_timeout(PROCESS_LIMIT).is_err();
        if late {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        late
    });
    let out = child.wait_with_output().expect("wait for the process");
    let _ = done.send(());
    if dog.join().expect("watchdog") {
        panic!(
            "process {pid} ran over {PROCESS_LIMIT:?} and was killed\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// `Command::output` bounded by [`PROCESS_LIMIT`].
pub trait Bounded {
    fn bounded_output(&mut self) -> Output;
}

impl Bounded for Command {
    fn bounded_output(&mut self) -> Output {
        let child = self
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the process");
        finish(child)
    }
}

/// A fresh, empty folder for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("rpr-it-{}-{n}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal HTTP/1.0 request, enough for moto's control API.
pub fn http(url: &str, method: &str, body: &str) -> std::io::Result<String> {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut s = TcpStream::connect(host)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

pub struct Emulator {
    pub url: String,
    child: Option<Child>,
}

impl Emulator {
    /// The CPU time (user and system) the emulator's process has used so
    /// far; None when it runs elsewhere (RDS_PROXY_RUNBOOK_TEST_ENDPOINT).
    pub fn cpu(&self) -> Option<std::time::Duration> {
        let pid = self.child.as_ref()?.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // After the command's name in parentheses: utime and stime are the
        // 12th and 13th fields, in clock ticks.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        Some(std::time::Duration::from_secs_f64(ticks as f64 / hz))
    }
}

/// A name unique to this test process and call: every name the seed and
/// the runbook use carries it, so workspaces can share an emulator.
pub fn unique_prefix(test: &str) -> String {
    let prefix = format!(
        "t{}{}-{}",
        std::process::id() % 10_000,
        COUNTER.fetch_add(1, Ordering::SeqCst),
        test.replace('_', "-")
    );
    prefix
        .chars()
        .take(28)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// Installs the pinned emulator and its extension on a fresh machine, once
/// per process.
pub fn install_emulator() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let ok = Command::new(Path::new(ROOT).join("localstack/install.sh"))
            .status()
            .expect("run localstack/install.sh")
            .success();
        assert!(ok, "localstack/install.sh failed");
    });
}

/// The pace the tests run at: every AWS state is passed through (a proxy is
/// `creating`, its target REGISTERING, a function's update InProgress), for
/// long enough that the tool's first look sees it, short enough that the
/// suite stays quick. Names as in localstack/awsrules/settings.py.
pub const TEST_PACE: &[(&str, &str)] = &[
    ("AWSRULES_PROXY_CREATING", "0.6"),
    ("AWSRULES_PROXY_MODIFYING", "0.3"),
    ("AWSRULES_PROXY_DELETING", "0.6"),
    ("AWSRULES_PROXY_ENI_LINGER", "0.6"),
    ("AWSRULES_TARGET_REGISTERING", "0.4"),
    ("AWSRULES_ENDPOINT_CREATING", "0.3"),
    ("AWSRULES_ENDPOINT_MODIFYING", "0.3"),
    ("AWSRULES_ENDPOINT_DELETING", "0.3"),
    ("AWSRULES_LAMBDA_UPDATING", "0.3"),
    ("AWSRULES_IAM_PROPAGATION", "0.3"),
];

impl Emulator {
    /// The project's emulator (moto with localstack/awsrules) at the tests'
    /// pace, or the endpoint RDS_PROXY_RUNBOOK_TEST_ENDPOINT names.
    pub fn start() -> Emulator {
        if let Ok(url) = std::env::var("RDS_PROXY_RUNBOOK_TEST_ENDPOINT") {
            return Emulator { url, child: None };
        }
        Emulator::spawn(true)
    }

    /// Plain moto, without the extension: for the tests that show a rule
    /// catches a bug plain moto lets through.
    pub fn start_plain() -> Emulator {
        Emulator::spawn(false)
    }

    fn spawn(with_rules: bool) -> Emulator {
        let venv = Path::new(ROOT).join("localstack/.venv/bin");
        install_emulator();
        let port = free_port();
        let log = std::fs::File::create(temp_dir("moto").join("moto.log")).unwrap();
        let mut cmd = if with_rules {
            let mut c = Command::new(venv.join("python"));
            c.args(["-m", "awsrules"]).envs(TEST_PACE.iter().copied());
            c
        } else {
            Command::new(venv.join("moto_server"))
        };
        let child = cmd
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start the emulator");
        let url = format!("http://127.0.0.1:{port}");
        let emu = Emulator {
            url: url.clone(),
            child: Some(child),
        };
        let started = Instant::now();
        while http(&format!("{url}/moto-api/"), "GET", "").is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the emulator did not start on {url}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        http(
            &format!("{url}/moto-api/config"),
            "POST",
            r#"{"lambda":{"use_docker":false}}"#,
        )
        .unwrap();
        emu
    }

    /// Whether this emulator has the AWS rules of localstack/awsrules. A
    /// test that needs them and meets an endpoint without them says so on
    /// the terminal (not captured by the test harness) and returns: it is
    /// reported as skipped with the reason, never as a silent pass.
    pub fn has_rules(&self, test: &str) -> bool {
        let answer = http(&format!("{}/awsrules/config", self.url), "GET", "").unwrap_or_default();
        let ok = answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200");
        if !ok {
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: the emulator at {} lacks the AWS rules of localstack/awsrules \
                 (GET /awsrules/config does not answer)",
                self.url
            );
        }
        ok
    }

    /// Changes the emulator's pace (names of localstack/awsrules/settings.py,
    /// seconds), e.g. `{"proxy_creating": 20}`.
    pub fn configure(&self, json: &str) {
        let answer = http(&format!("{}/awsrules/config", self.url), "POST", json).unwrap();
        assert!(
            answer.contains(" 200 "),
            "the emulator refused {json}: {answer}"
        );
    }

    /// Calls that reached the emulator so far, by action.
    pub fn calls(&self) -> BTreeMap<String, usize> {
        let answer = http(&format!("{}/awsrules/calls", self.url), "GET", "").unwrap();
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str(body).unwrap_or_default()
    }

    /// Seeds the recipe's preconditions under a new prefix, and writes the
    /// cookbook runbook for them.
    pub fn workspace(&self, test: &str) -> Workspace {
        self.workspace_for(test, "cookbook-4.3-mysql.toml", &[])
    }

    /// Seeds with `seed_args` (e.g. `--engine postgres`) under a new prefix,
    /// and writes the shipped runbook `runbook` (a file in runbooks/).
    pub fn workspace_for(&self, test: &str, runbook: &str, seed_args: &[&str]) -> Workspace {
        let prefix = unique_prefix(test);
        let exports = self.seed(&prefix, seed_args);
        Workspace::new(self, &prefix, exports, runbook)
    }

    /// Seeds the recipe's preconditions; returns the exports.
    pub fn seed(&self, prefix: &str, seed_args: &[&str]) -> HashMap<String, String> {
        let out = Command::new(Path::new(ROOT).join("localstack/.venv/bin/python"))
            .arg(Path::new(ROOT).join("localstack/seed.py"))
            .args(["--prefix", prefix])
            .args(seed_args)
            .envs(self.aws_env())
            .bounded_output();
        assert!(
            out.status.success(),
            "seed failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
            .collect()
    }

    pub fn aws_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.url.as_str()),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", REGION),
            ("AWS_DEFAULT_REGION", REGION),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    pub fn sdk_config(&self) -> aws_config::SdkConfig {
        runtime().block_on(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .endpoint_url(&self.url)
                .region(aws_config::Region::new(REGION))
                .credentials_provider(aws_sdk_iam::config::Credentials::new(
                    "test", "test", None, None, "tests",
                ))
                .load(),
        )
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A runbook for one test: a shipped runbook with every name made unique by
/// the emulator's prefix, written into its own folder with the policy files
/// beside it.
#[derive(Clone)]
pub struct Workspace {
    pub dir: PathBuf,
    /// The shipped runbook it was made from (a file in runbooks/).
    pub source: String,
    pub runbook: PathBuf,
    pub state: PathBuf,
    /// The state in S3 instead (`s3://BUCKET/KEY`), see [`Workspace::in_s3`].
    pub s3: Option<String>,
    pub env: HashMap<String, String>,
    pub emu_env: Vec<(String, String)>,
    pub prefix: String,
}

impl Workspace {
    pub fn new(
        emu: &Emulator,
        prefix: &str,
        exports: HashMap<String, String>,
        runbook: &str,
    ) -> Workspace {
        let dir = temp_dir(prefix);
        std::fs::create_dir_all(dir.join("policies")).unwrap();
        for f in [
            "rds-proxy-trust-policy.json",
            "rds-connect-policy-template.json",
        ] {
            std::fs::copy(
                Path::new(ROOT).join("runbooks/policies").join(f),
                dir.join("policies").join(f),
            )
            .unwrap();
        }
        let ws = Workspace {
            runbook: dir.join("runbook.toml"),
            state: dir.join("state/runbook.state.json"),
            s3: None,
            dir,
            source: runbook.to_string(),
            env: exports,
            emu_env: emu.aws_env(),
            prefix: prefix.to_string(),
        };
        ws.write_runbook(|s| s);
        ws
    }

    /// Writes the shipped runbook, renamed for this test, through `edit`.
    pub fn write_runbook(&self, edit: impl FnOnce(String) -> String) {
        let p = &self.prefix;
        let src =
            std::fs::read_to_string(Path::new(ROOT).join("runbooks").join(&self.source)).unwrap();
        let mut doc: toml_edit::DocumentMut = src.parse().unwrap();
        doc["name"] = toml_edit::value(p.as_str());
        for (table, name) in [
            ("proxy_role", format!("{p}-proxy-role")),
            ("proxy_security_group", format!("{p}-proxy-sg")),
            ("connect_policy", format!("{p}-connect")),
        ] {
            doc[table]["name"] = toml_edit::value(name);
        }
        std::fs::write(&self.runbook, edit(doc.to_string())).unwrap();
    }

    /// The same workspace with its runbook standing alone, as a fleet's
    /// runbooks must (they share one environment): its `${env.*}` written
    /// in, its state the default file beside it.
    pub fn standalone(self) -> Workspace {
        self.write_standalone(|s| s);
        Workspace {
            state: self
                .dir
                .join(".rds-proxy-runbook")
                .join(format!("{}.state.json", self.prefix)),
            ..self
        }
    }

    /// Writes the shipped runbook through `edit`, its `${env.*}` written in.
    pub fn write_standalone(&self, edit: impl FnOnce(String) -> String) {
        self.write_runbook(|s| {
            let mut s = edit(s);
            for (k, v) in &self.env {
                s = s.replace(&format!("${{env.{k}}}"), v);
            }
            s
        });
    }

    /// Writes the shipped runbook afresh with `from` replaced by `to` in the
    /// text as written, after the renames (a renamed role, say).
    #[track_caller]
    pub fn write_edited(&self, from: &str, to: &str) {
        self.write_runbook(|s| s);
        let text = std::fs::read_to_string(&self.runbook).unwrap();
        assert!(text.contains(from), "the runbook has no {from:?}");
        std::fs::write(&self.runbook, text.replace(from, to)).unwrap();
    }

    /// The command without --state: the runbook's `[state]` (or the
    /// default file beside it) decides.
    pub fn cmd_own_state(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .arg(&self.runbook)
            .arg("--no-progress")
            .env_remove("AWS_PROFILE")
            .envs(self.emu_env.iter().cloned())
            .envs(self.env.iter())
            .stdin(Stdio::null());
        c
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        let state: std::ffi::OsString = match &self.s3 {
            Some(url) => url.into(),
            None => self.state.clone().into(),
        };
        c.args(args)
            .arg(&self.runbook)
            .arg("--no-progress")
            .arg("--state")
            .arg(state)
            .env_remove("AWS_PROFILE")
            .envs(self.emu_env.iter().cloned())
            .envs(self.env.iter())
            .stdin(Stdio::null());
        c
    }

    /// Sends this workspace's AWS calls to `url` (e.g. a fault layer).
    pub fn set_endpoint(&mut self, url: &str) {
        self.emu_env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
        self.emu_env
            .push(("AWS_ENDPOINT_URL".into(), url.to_string()));
    }

    pub fn run(&self, args: &[&str]) -> Out {
        Out::from(self.cmd(args).bounded_output())
    }

    /// The same runbook with another state file (a colleague's checkout,
    /// a CI runner, a mistyped --state).
    pub fn with_state(&self, file: &str) -> Workspace {
        Workspace {
            state: self.dir.join(file),
            ..self.clone()
        }
    }

    /// A step's output as the state records it.
    #[track_caller]
    pub fn output(&self, step: &str, key: &str) -> String {
        self.state_json()["steps"][step]["outputs"][key]
            .as_str()
            .unwrap_or_else(|| panic!("no output {step}.{key} in the state"))
            .to_string()
    }

    pub fn state_json(&self) -> serde_json::Value {
        let text = self.state_text().expect("a state");
        serde_json::from_str(&text).unwrap()
    }

    /// The state's text, wherever it is kept; None when there is none.
    pub fn state_text(&self) -> Option<String> {
        let Some(url) = &self.s3 else {
            return std::fs::read_to_string(&self.state).ok();
        };
        let (bucket, key) = url
            .strip_prefix("s3://")
            .and_then(|r| r.split_once('/'))
            .unwrap();
        let client = self.s3_client();
        runtime().block_on(async {
            let out = client
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .ok()?;
            let bytes = out.body.collect().await.ok()?.into_bytes();
            Some(String::from_utf8_lossy(&bytes).into_owned())
        })
    }

    /// The id of the lock on the workspace's S3 state, if one is held.
    pub fn lock_id(&self) -> Option<String> {
        let url = self.s3.as_ref()?;
        let (bucket, key) = url.strip_prefix("s3://")?.split_once('/')?;
        let client = self.s3_client();
        runtime().block_on(async {
            let out = client
                .get_object()
                .bucket(bucket)
                .key(format!("{key}.lock"))
                .send()
                .await
                .ok()?;
            let bytes = out.body.collect().await.ok()?.into_bytes();
            let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
            v["id"].as_str().map(String::from)
        })
    }

    /// An S3 client on the workspace's endpoint (path-style, as the tool's).
    pub fn s3_client(&self) -> aws_sdk_s3::Client {
        let url = self
            .emu_env
            .iter()
            .find(|(k, _)| k == "AWS_ENDPOINT_URL")
            .map(|(_, v)| v.clone())
            .unwrap();
        let config = aws_sdk_s3::config::Builder::new()
            .behavior_version_latest()
            .endpoint_url(url)
            .region(aws_sdk_s3::config::Region::new(REGION))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .force_path_style(true)
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// The same workspace with its state in a bucket of its own, versioned
    /// (`--state s3://...`), as a team shares it.
    pub fn in_s3(&self) -> Workspace {
        let bucket = format!("rpr-{}", self.prefix.to_ascii_lowercase());
        let client = self.s3_client();
        runtime().block_on(async {
            let _ = client.create_bucket().bucket(&bucket).send().await;
            client
                .put_bucket_versioning()
                .bucket(&bucket)
                .versioning_configuration(
                    aws_sdk_s3::types::VersioningConfiguration::builder()
                        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send()
                .await
                .unwrap();
        });
        Workspace {
            s3: Some(format!("s3://{bucket}/team/runbook.state.json")),
            ..self.clone()
        }
    }
}

#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Out {
    fn from(o: Output) -> Out {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Out {
    #[track_caller]
    pub fn code(&self, want: i32) -> &Self {
        assert_eq!(
            self.code, want,
            "exit code {} (want {want})\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.code(0)
    }

    #[track_caller]
    pub fn stdout_has(&self, text: &str) -> &Self {
        assert!(
            self.stdout.contains(text),
            "stdout lacks {text:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, text: &str) -> &Self {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Everything in the emulator that the recipe could touch, as sorted text
/// lines keyed by resource, restricted to this test's names and VPC.
pub type Snapshot = BTreeMap<String, String>;

pub fn snapshot(emu: &Emulator, ws: &Workspace) -> Snapshot {
    let config = emu.sdk_config();
    let p = ws.prefix.clone();
    let vpc = ws.env["VPC_ID"].clone();
    runtime().block_on(async move {
        let mut snap = Snapshot::new();
        let iam = aws_sdk_iam::Client::new(&config);
        let roles = iam.list_roles().send().await.unwrap();
        for role in roles.roles() {
            let name = role.role_name();
            if !name.contains(&p) {
                continue;
            }
            let attached = iam
                .list_attached_role_policies()
                .role_name(name)
                .send()
                .await
                .unwrap();
            let mut arns: Vec<_> = attached
                .attached_policies()
                .iter()
                .filter_map(|a| a.policy_arn())
                .collect();
            arns.sort();
            let inline = iam
                .list_role_policies()
                .role_name(name)
                .send()
                .await
                .unwrap();
            let mut inline_docs = Vec::new();
            for pn in inline.policy_names() {
                let doc = iam
                    .get_role_policy()
                    .role_name(name)
                    .policy_name(pn)
                    .send()
                    .await
                    .unwrap();
                inline_docs.push(format!("{pn}={}", url_decode(doc.policy_document())));
            }
            let tags = iam.list_role_tags().role_name(name).send().await.unwrap();
            let mut tags: Vec<_> = tags
                .tags()
                .iter()
                .map(|t| format!("{}={}", t.key(), t.value()))
                .collect();
            tags.sort();
            snap.insert(
                format!("iam role {name}"),
                format!("attached={arns:?} inline={inline_docs:?} tags={tags:?}"),
            );
        }
        let policies = iam
            .list_policies()
            .scope(aws_sdk_iam::types::PolicyScopeType::Local)
            .send()
            .await
            .unwrap();
        for pol in policies.policies() {
            let name = pol.policy_name().unwrap_or_default();
            if !name.contains(&p) {
                continue;
            }
            let arn = pol.arn().unwrap_or_default();
            let versions = iam
                .list_policy_versions()
                .policy_arn(arn)
                .send()
                .await
                .unwrap();
            let mut vs = Vec::new();
            for v in versions.versions() {
                let id = v.version_id().unwrap_or_default();
                let doc = iam
                    .get_policy_version()
                    .policy_arn(arn)
                    .version_id(id)
                    .send()
                    .await
                    .unwrap();
                let doc = doc
                    .policy_version()
                    .and_then(|v| v.document())
                    .unwrap_or_default()
                    .to_string();
                vs.push(format!("{id} default={} {doc}", v.is_default_version()));
            }
            vs.sort();
            snap.insert(format!("iam policy {name}"), format!("{vs:?}"));
        }
        let ec2 = aws_sdk_ec2::Client::new(&config);
        let groups = ec2
            .describe_security_groups()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("vpc-id")
                    .values(&vpc)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        for g in groups.security_groups() {
            let rules = |perms: &[aws_sdk_ec2::types::IpPermission]| {
                let mut r: Vec<String> = perms
                    .iter()
                    .map(|p| {
                        let mut srcs: Vec<String> = p
                            .user_id_group_pairs()
                            .iter()
                            .filter_map(|u| u.group_id().map(String::from))
                            .chain(
                                p.ip_ranges()
                                    .iter()
                                    .filter_map(|r| r.cidr_ip().map(String::from)),
                            )
                            .collect();
                        srcs.sort();
                        format!(
                            "{}:{:?}-{:?} from {srcs:?}",
                            p.ip_protocol().unwrap_or_default(),
                            p.from_port(),
                            p.to_port()
                        )
                    })
                    .collect();
                r.sort();
                r
            };
            let mut tags: Vec<_> = g
                .tags()
                .iter()
                .map(|t| {
                    format!(
                        "{}={}",
                        t.key().unwrap_or_default(),
                        t.value().unwrap_or_default()
                    )
                })
                .collect();
            tags.sort();
            snap.insert(
                format!(
                    "security group {} {}",
                    g.group_name().unwrap_or_default(),
                    g.group_id().unwrap_or_default()
                ),
                format!(
                    "ingress={:?} egress={:?} tags={tags:?}",
                    rules(g.ip_permissions()),
                    rules(g.ip_permissions_egress())
                ),
            );
        }
        let rds = aws_sdk_rds::Client::new(&config);
        // moto answers 500 for proxy calls in some states: treat as none.
        if let Ok(proxies) = rds.describe_db_proxies().send().await {
            for px in proxies.db_proxies() {
                let name = px.db_proxy_name().unwrap_or_default();
                if !name.contains(&p) {
                    continue;
                }
                let targets = rds
                    .describe_db_proxy_targets()
                    .db_proxy_name(name)
                    .send()
                    .await
                    .map(|t| {
                        t.targets()
                            .iter()
                            .map(|t| t.rds_resource_id().unwrap_or_default().to_string())
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                let pool = rds
                    .describe_db_proxy_target_groups()
                    .db_proxy_name(name)
                    .send()
                    .await
                    .ok()
                    .and_then(|g| g.target_groups().first().cloned())
                    .and_then(|g| g.connection_pool_config().cloned())
                    .map(|c| {
                        format!(
                            "max={:?} idle={:?} borrow={:?}",
                            c.max_connections_percent(),
                            c.max_idle_connections_percent(),
                            c.connection_borrow_timeout()
                        )
                    });
                snap.insert(
                    format!("db proxy {name}"),
                    format!(
                        "status={:?} engine={:?} tls={:?} targets={targets:?} \
                         idle_client_timeout={:?} debug_logging={:?} pool={pool:?} \
                         auth_scheme={:?} secrets={:?} network={:?}/{:?} arn={:?}",
                        px.status(),
                        px.engine_family(),
                        px.require_tls(),
                        px.idle_client_timeout(),
                        px.debug_logging(),
                        px.default_auth_scheme(),
                        px.auth()
                            .iter()
                            .filter_map(|a| a.secret_arn())
                            .collect::<Vec<_>>(),
                        px.endpoint_network_type().map(|t| t.as_str()),
                        px.target_connection_network_type().map(|t| t.as_str()),
                        px.db_proxy_arn(),
                    ),
                );
            }
        }
        // The proxies' other endpoints (not the default one), by name.
        if let Ok(eps) = rds.describe_db_proxy_endpoints().send().await {
            for ep in eps.db_proxy_endpoints() {
                let name = ep.db_proxy_endpoint_name().unwrap_or_default();
                if ep.is_default() == Some(true) || !name.to_lowercase().contains(&p.to_lowercase())
                {
                    continue;
                }
                let mut groups = ep.vpc_security_group_ids().to_vec();
                groups.sort();
                snap.insert(
                    format!("db proxy endpoint {name}"),
                    format!(
                        "proxy={:?} role={:?} groups={groups:?} subnets={} status={:?}",
                        ep.db_proxy_name(),
                        ep.target_role(),
                        ep.vpc_subnet_ids().len(),
                        ep.status(),
                    ),
                );
            }
        }
        // CloudWatch alarms named after this test, with their tags.
        let cw = aws_sdk_cloudwatch::Client::new(&config);
        let alarms = cw.describe_alarms().send().await.unwrap();
        for a in alarms.metric_alarms() {
            let name = a.alarm_name().unwrap_or_default();
            if !name.contains(&p) {
                continue;
            }
            let tags = cw
                .list_tags_for_resource()
                .resource_arn(a.alarm_arn().unwrap_or_default())
                .send()
                .await
                .unwrap();
            let mut tags: Vec<_> = tags
                .tags()
                .iter()
                .map(|t| format!("{}={}", t.key().unwrap_or(""), t.value().unwrap_or("")))
                .collect();
            tags.sort();
            snap.insert(
                format!("alarm {name}"),
                format!(
                    "metric={:?} threshold={:?} actions={:?} tags={tags:?}",
                    a.metric_name(),
                    a.threshold(),
                    a.alarm_actions()
                ),
            );
        }
        // Anomaly detection models on this test's proxies (none where the
        // emulator offers no anomaly detection, as plain moto).
        if let Ok(models) = cw.describe_anomaly_detectors().send().await {
            for d in models.anomaly_detectors() {
                let Some(m) = d.single_metric_anomaly_detector() else {
                    continue;
                };
                let dims: Vec<String> = m
                    .dimensions()
                    .iter()
                    .map(|d| format!("{}={}", d.name().unwrap_or(""), d.value().unwrap_or("")))
                    .collect();
                let dims = dims.join(",");
                if !dims.to_lowercase().contains(&p.to_lowercase()) {
                    continue;
                }
                snap.insert(
                    format!(
                        "anomaly model {} {} {}",
                        m.metric_name().unwrap_or_default(),
                        m.stat().unwrap_or_default(),
                        dims
                    ),
                    format!("namespace={:?}", m.namespace()),
                );
            }
        }
        let lambda = aws_sdk_lambda::Client::new(&config);
        let functions = lambda.list_functions().send().await.unwrap();
        for f in functions.functions() {
            let name = f.function_name().unwrap_or_default();
            if !name.contains(&p) {
                continue;
            }
            let env: BTreeMap<_, _> = f
                .environment()
                .and_then(|e| e.variables())
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .collect();
            snap.insert(format!("lambda {name}"), format!("env={env:?}"));
        }
        snap
    })
}

/// IAM hands policy documents back URL-encoded.
pub fn url_decode(s: &str) -> String {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

/// Lines that differ between two snapshots, for assertion messages.
pub fn diff(a: &Snapshot, b: &Snapshot) -> String {
    let mut out = String::new();
    for (k, v) in a {
        match b.get(k) {
            None => out.push_str(&format!("- {k}: {v}\n")),
            Some(w) if w != v => out.push_str(&format!("~ {k}:\n    {v}\n -> {w}\n")),
            _ => {}
        }
    }
    for (k, v) in b {
        if !a.contains_key(k) {
            out.push_str(&format!("+ {k}: {v}\n"));
        }
    }
    out
}

#[track_caller]
pub fn assert_same(before: &Snapshot, after: &Snapshot, what: &str) {
    assert!(before == after, "{what}:\n{}", diff(before, after));
}

pub fn ingress_rules(line: &str) -> usize {
    line.split(" egress=")
        .next()
        .unwrap()
        .matches("tcp:")
        .count()
}

/// Exactly one of each resource the recipe makes, and the function
/// pointing at the proxy.
#[track_caller]
pub fn assert_one_of_each(before: &Snapshot, after: &Snapshot, ws: &Workspace, what: &str) {
    let p = &ws.prefix;
    let added: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    // The alarms (the `alarms` step, when listed): each of the five once,
    // tagged as ours (CloudWatch keys alarms by name: a second of the same
    // name would have replaced the first, not sat beside it).
    let alarms: Vec<&String> = added
        .iter()
        .copied()
        .filter(|k| k.starts_with("alarm "))
        .collect();
    let want_alarms: Vec<String> = [
        "availability",
        "client-connections",
        "database-connections",
        "query-requests",
        "session-pinned",
    ]
    .iter()
    .map(|kind| format!("alarm {p}-proxy-{kind}"))
    .collect();
    // (Only a runbook that lists the `alarms` step makes them; one that
    // does must have made all five.)
    let lists_alarms = std::fs::read_to_string(&ws.runbook)
        .unwrap_or_default()
        .lines()
        .any(|l| l.trim_start().starts_with("\"alarms\""));
    if lists_alarms || !alarms.is_empty() {
        assert_eq!(
            alarms,
            want_alarms.iter().collect::<Vec<_>>(),
            "{what}: alarms added"
        );
    }
    for a in &alarms {
        assert!(
            after[*a].contains(&format!("rds-proxy-runbook:runbook={p}")),
            "{what}: {a} is not tagged as ours: {}",
            after[*a]
        );
    }
    // The surge alarms' anomaly detection models (CloudWatch makes one per
    // band alarm's metric and statistic): both, or none where the emulator
    // offers no anomaly detection.
    let models: Vec<String> = added
        .iter()
        .filter_map(|k| k.strip_prefix("anomaly model "))
        .map(|k| k.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert!(
        models.is_empty()
            || (lists_alarms && models == ["ClientConnections Maximum", "QueryRequests Sum"]),
        "{what}: anomaly detection models added: {models:?}"
    );
    let mut kinds: Vec<String> = added
        .iter()
        .filter(|k| !k.starts_with("alarm ") && !k.starts_with("anomaly model "))
        .map(|k| {
            k.rsplit_once(' ')
                .map_or(k.to_string(), |(a, _)| a.to_string())
        })
        .collect();
    kinds.sort();
    let mut want = vec![
        format!("db proxy {p}-db")
            .rsplit_once(' ')
            .unwrap()
            .0
            .to_string(),
        "iam policy".to_string(),
        "iam role".to_string(),
        format!("security group {p}-proxy-sg"),
    ];
    want.sort();
    assert_eq!(kinds, want, "{what}: resources added: {added:?}");
    let policy = &after[&format!("iam policy {p}-connect")];
    assert_eq!(
        policy.matches(" default=").count(),
        1,
        "{what}: policy versions: {policy}"
    );
    let role = &after[&format!("iam role {p}-proxy-role")];
    assert_eq!(
        role.matches("rds-proxy-runbook-secret-access=").count(),
        1,
        "{what}: {role}"
    );
    let proxy = &after[&format!("db proxy {p}-db")];
    assert!(
        proxy.contains(&format!("targets=[\"{p}-db\"]")),
        "{what}: {proxy}"
    );
    for (k, v) in after
        .iter()
        .filter(|(k, _)| k.starts_with("security group "))
    {
        let rules = ingress_rules(v);
        let want = if k.contains(&format!("{p}-proxy-sg ")) || k.contains(&format!("{p}-db-sg ")) {
            1
        } else {
            ingress_rules(&before[k])
        };
        assert_eq!(rules, want, "{what}: ingress of {k}: {v}");
    }
    let lambda_role = &after[&format!("iam role {p}-lambda-role")];
    assert_eq!(
        lambda_role.matches(&format!("policy/{p}-connect")).count(),
        1,
        "{what}"
    );
    let function = &after[&format!("lambda {p}-db-app")];
    assert!(
        function.contains(".db-proxy-"),
        "{what}: DB_HOST not on the proxy: {function}"
    );
    assert!(
        function.contains("\"DB_USER\": \"admin\""),
        "{what}: {function}"
    );
}

/// Waits until the DB proxy `name` is `available` (the emulator, like AWS,
/// has it `creating` for a while).
pub async fn wait_available(config: &aws_config::SdkConfig, name: &str) {
    let rds = aws_sdk_rds::Client::new(config);
    let started = Instant::now();
    loop {
        let found = rds
            .describe_db_proxies()
            .db_proxy_name(name)
            .send()
            .await
            .unwrap();
        let status = found.db_proxies()[0]
            .status()
            .map(|s| s.as_str().to_string());
        if status.as_deref() == Some("available") {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{name} stays {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sets (or, with None, removes) one variable of a Lambda function, keeping
/// the others, as a person would in the console.
pub fn set_function_variable(emu: &Emulator, function: &str, variable: &str, value: Option<&str>) {
    let config = emu.sdk_config();
    runtime().block_on(async {
        let lambda = aws_sdk_lambda::Client::new(&config);
        let conf = lambda
            .get_function_configuration()
            .function_name(function)
            .send()
            .await
            .unwrap();
        let mut vars = conf
            .environment()
            .and_then(|e| e.variables())
            .cloned()
            .unwrap_or_default();
        match value {
            Some(v) => vars.insert(variable.to_string(), v.to_string()),
            None => vars.remove(variable),
        };
        // As AWS does, the emulator refuses an update while another is in
        // progress: retry that, then wait until this one is done.
        let started = Instant::now();
        loop {
            let sent = lambda
                .update_function_configuration()
                .function_name(function)
                .environment(
                    aws_sdk_lambda::types::Environment::builder()
                        .set_variables(Some(vars.clone()))
                        .build(),
                )
                .send()
                .await;
            match sent {
                Ok(_) => break,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_resource_conflict_exception())
                        && started.elapsed() < Duration::from_secs(30) =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => panic!("update {function}: {e:?}"),
            }
        }
        while lambda
            .get_function_configuration()
            .function_name(function)
            .send()
            .await
            .unwrap()
            .last_update_status()
            == Some(&aws_sdk_lambda::types::LastUpdateStatus::InProgress)
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{function} stays InProgress"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}

/// Watches functions' variables while a command runs: every value each
/// one takes must be a host that works, the DB's own (`db_host`) or the
/// endpoint of a proxy that exists and is not being deleted. Each look
/// reads the variables and then the proxies, so a proxy that disappears
/// while a function still points at it is caught.
pub struct HostWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<(usize, Vec<String>)>>,
}

/// What a function on the proxy needs besides a live endpoint: the proxy's
/// security group admitting the function's, and the connect policy on the
/// function's role, allowing `rds-db:connect` to that proxy (its `prx-` id
/// in the policy's default version).
#[derive(Clone)]
pub struct Paths {
    pub proxy_sg: String,
    pub policy_arn: String,
    /// Each function's security group and role, by function name.
    pub functions: HashMap<String, (String, String)>,
}

impl HostWatch {
    pub fn start(emu: &Emulator, functions: &[String], variable: &str, db_host: &str) -> HostWatch {
        Self::start_with(emu, functions, variable, db_host, None)
    }

    /// As [`HostWatch::start`], and a function on the proxy must also have
    /// its way in: its group admitted, its role allowed (see [`Paths`]).
    pub fn start_with(
        emu: &Emulator,
        functions: &[String],
        variable: &str,
        db_host: &str,
        paths: Option<Paths>,
    ) -> HostWatch {
        let config = emu.sdk_config();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (functions, variable, db_host) = (
            functions.to_vec(),
            variable.to_string(),
            db_host.to_string(),
        );
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            runtime().block_on(async move {
                let lambda = aws_sdk_lambda::Client::new(&config);
                let rds = aws_sdk_rds::Client::new(&config);
                let (mut looks, mut bad) = (0, Vec::new());
                while !flag.load(Ordering::Relaxed) {
                    let mut values = Vec::new();
                    for f in &functions {
                        let conf = lambda.get_function_configuration().function_name(f).send();
                        if let Ok(conf) = conf.await {
                            let v = conf
                                .environment()
                                .and_then(|e| e.variables())
                                .and_then(|v| v.get(&variable))
                                .cloned();
                            values.push((f.clone(), v));
                        }
                    }
                    // Each live proxy's endpoint and `prx-` id.
                    let live: Vec<(String, String)> = match rds.describe_db_proxies().send().await {
                        Ok(p) => p
                            .db_proxies()
                            .iter()
                            .filter(|p| p.status().map(|s| s.as_str()) != Some("deleting"))
                            .filter_map(|p| {
                                let id = p.db_proxy_arn()?.rsplit(':').next()?.to_string();
                                Some((p.endpoint()?.to_string(), id))
                            })
                            .collect(),
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    looks += 1;
                    for (f, v) in values {
                        let proxy = live.iter().find(|(e, _)| Some(e) == v.as_ref());
                        let on_proxy = proxy.is_some();
                        let ok = v.as_deref() == Some(db_host.as_str()) || on_proxy;
                        if !ok {
                            bad.push(format!("{f}.{variable} = {v:?} (live proxies: {live:?})"));
                        }
                        let Some((paths, (sg, role))) = paths
                            .as_ref()
                            .and_then(|p| p.functions.get(&f).map(|w| (p, w)))
                            .filter(|_| on_proxy)
                        else {
                            continue;
                        };
                        let id = &proxy.expect("on the proxy").1;
                        if let Some(missing) = way_in(&config, paths, sg, role, id).await {
                            // Only if it is still there: a function that moved
                            // on meanwhile took its way with it.
                            let now = lambda.get_function_configuration().function_name(&f);
                            let now = now.send().await.ok().and_then(|c| {
                                c.environment()?.variables()?.get(&variable).cloned()
                            });
                            if now == v {
                                bad.push(format!("{f} is on the proxy without {missing}"));
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                (looks, bad)
            })
        });
        HostWatch {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops watching; panics with every value seen that was not a working
    /// host, or if the watch never looked.
    #[track_caller]
    pub fn assert_always_working(mut self, what: &str) {
        self.stop.store(true, Ordering::Relaxed);
        let (looks, bad) = self.thread.take().unwrap().join().unwrap();
        assert!(looks > 0, "{what}: the watch never looked");
        assert!(
            bad.is_empty(),
            "{what}: a function pointed at no working host: {bad:#?}"
        );
    }
}

/// A watch dropped without its assertion (its test failed first) stops
/// looking, rather than spinning on an emulator that is gone.
impl Drop for HostWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// One variable of a Lambda function, as the emulator holds it.
pub fn function_variable(emu: &Emulator, function: &str, variable: &str) -> Option<String> {
    let config = emu.sdk_config();
    runtime().block_on(async {
        aws_sdk_lambda::Client::new(&config)
            .get_function_configuration()
            .function_name(function)
            .send()
            .await
            .unwrap()
            .environment()
            .and_then(|e| e.variables())
            .and_then(|v| v.get(variable))
            .cloned()
    })
}

/// What a function on proxy `proxy_id` lacks of its way in, if anything.
async fn way_in(
    config: &aws_config::SdkConfig,
    paths: &Paths,
    sg: &str,
    role: &str,
    proxy_id: &str,
) -> Option<String> {
    let rules = aws_sdk_ec2::Client::new(config)
        .describe_security_group_rules()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("group-id")
                .values(&paths.proxy_sg)
                .build(),
        )
        .send()
        .await
        .ok()?;
    let admitted = rules.security_group_rules().iter().any(|r| {
        r.is_egress() == Some(false)
            && r.referenced_group_info().and_then(|g| g.group_id()) == Some(sg)
    });
    if !admitted {
        return Some(format!("{sg} admitted by {}", paths.proxy_sg));
    }
    let attached = aws_sdk_iam::Client::new(config)
        .list_attached_role_policies()
        .role_name(role)
        .send()
        .await
        .ok()?;
    let allowed = attached
        .attached_policies()
        .iter()
        .any(|p| p.policy_arn() == Some(paths.policy_arn.as_str()));
    if !allowed {
        return Some(format!("{} on role {role}", paths.policy_arn));
    }
    let iam = aws_sdk_iam::Client::new(config);
    let policy = iam
        .get_policy()
        .policy_arn(&paths.policy_arn)
        .send()
        .await
        .ok()?;
    let version = policy.policy()?.default_version_id()?.to_string();
    let doc = iam
        .get_policy_version()
        .policy_arn(&paths.policy_arn)
        .version_id(version)
        .send()
        .await
        .ok()?;
    let doc = url_decode(doc.policy_version()?.document()?);
    (!doc.contains(proxy_id)).then(|| format!("rds-db:connect to {proxy_id} in {doc}"))
}

/// The snapshot line of the workspace's proxy security group.
#[track_caller]
pub fn proxy_sg_line<'s>(snap: &'s Snapshot, ws: &Workspace) -> &'s str {
    let key = format!("security group {}-proxy-sg ", ws.prefix);
    snap.iter()
        .find(|(k, _)| k.starts_with(&key))
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in the snapshot"))
}

/// Sets the pool's MaxConnectionsPercent of a proxy's default target group
/// by hand, as in the console.
pub fn set_pool_by_hand(emu: &Emulator, proxy: &str, max_connections_percent: i32) {
    let config = emu.sdk_config();
    runtime().block_on(async {
        aws_sdk_rds::Client::new(&config)
            .modify_db_proxy_target_group()
            .db_proxy_name(proxy)
            .target_group_name("default")
            .connection_pool_config(
                aws_sdk_rds::types::ConnectionPoolConfiguration::builder()
                    .max_connections_percent(max_connections_percent)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    });
}
