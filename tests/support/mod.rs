//! Test support: an emulator per test (or one given by
//! RDS_PROXY_RUNBOOK_TEST_ENDPOINT), the recipe's preconditions seeded into
//! it, the real binary run against it, and snapshots of what the emulator
//! holds so tests can compare before and after.

// Shared by the test binary and the benchmarks (benches/*.rs include this
// folder), each of which uses a part: what one leaves unused is not dead.
#![allow(dead_code, unused_imports)]

pub mod emulator;
pub mod faults;
pub mod snapshot;
pub mod watch;
pub mod workspace;

pub use emulator::*;
pub use snapshot::*;
pub use watch::*;
pub use workspace::*;

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

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}
