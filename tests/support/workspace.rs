//! A runbook for one test (a shipped runbook made unique, its
//! preconditions seeded) and the real binary run on it (`Out`: its exit
//! code and what it printed, with assertions).

use super::*;

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

    /// Puts the tests' fault layer between this workspace and `emu`: the
    /// layer returned slows or fails its calls as a test asks.
    pub fn behind_fault_layer(&mut self, emu: &Emulator) -> faults::FaultProxy {
        let layer = faults::FaultProxy::start(&emu.url);
        self.set_endpoint(&layer.url);
        layer
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
