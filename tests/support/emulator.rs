//! The emulator a test runs against: moto with localstack/awsrules at the
//! tests' pace (or the endpoint RDS_PROXY_RUNBOOK_TEST_ENDPOINT names), its
//! configuration and its own API.

use super::*;

pub struct Emulator {
    pub url: String,
    child: Option<Child>,
}

impl Emulator {
    /// The CPU time (user and system) the emulator's process has used so
    /// far; None when it runs elsewhere (RDS_PROXY_RUNBOOK_TEST_ENDPOINT).
    pub fn cpu(&self) -> Option<std::time::Duration> {
        // After the command's name in parentheses: utime and stime are the
        // 12th and 13th fields, in clock ticks.
        self.cpu_fields(11)
    }

    /// The CPU time of the emulator's children it has waited for so far:
    /// each Lambda invocation runs in a child process of its own (a cold
    /// start), which `cpu` does not count.
    pub fn children_cpu(&self) -> Option<std::time::Duration> {
        // cutime and cstime follow utime and stime.
        self.cpu_fields(13)
    }

    /// The two fields of /proc/PID/stat from `first` (counted after the
    /// command's name), in clock ticks, as a duration.
    fn cpu_fields(&self, first: usize) -> Option<std::time::Duration> {
        let pid = self.child.as_ref()?.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 =
            fields.get(first)?.parse::<u64>().ok()? + fields.get(first + 1)?.parse::<u64>().ok()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        Some(std::time::Duration::from_secs_f64(ticks as f64 / hz))
    }
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
