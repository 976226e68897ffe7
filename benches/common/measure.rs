//! What the benchmarks share: one measured command (wall time, API calls
//! through the fault layer, the process's own peak memory).

// Each benchmark uses a part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::support::faults::FaultProxy;

pub fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One measured command: wall time, API calls, peak memory of the process.
pub struct Measure {
    pub what: &'static str,
    pub wall: Duration,
    pub calls: usize,
    /// The calls of each action.
    pub by_action: BTreeMap<String, usize>,
    pub peak_kb: Option<i64>,
    /// The process's own CPU time (user and system).
    pub cpu: Duration,
    /// What the command printed on stdout.
    pub stdout: String,
}

/// Runs `cmd`, waits with wait4 to read its own peak memory, and counts the
/// fault layer's calls in between.
pub fn measure(what: &'static str, faults: &FaultProxy, mut cmd: Command) -> Measure {
    let calls = faults.total_calls();
    let before = faults.all_calls();
    let started = Instant::now();
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the command");
    let Ended {
        status,
        peak_kb,
        cpu,
        stdout,
        stderr,
    } = wait_rusage(child);
    let wall = started.elapsed();
    if status != 0 {
        panic!("{what} failed ({status})\n--- stdout\n{stdout}\n--- stderr\n{stderr}");
    }
    if std::env::var("BENCH_VERBOSE").is_ok() {
        println!(
            "--- {what} ({:.2} s)\n{stdout}\n--- its stderr\n{stderr}",
            wall.as_secs_f64()
        );
    }
    Measure {
        what,
        wall,
        calls: faults.total_calls() - calls,
        by_action: faults
            .all_calls()
            .into_iter()
            .map(|(k, n)| {
                let was = before.get(&k).copied().unwrap_or(0);
                (k, n - was)
            })
            .filter(|(_, n)| *n > 0)
            .collect(),
        // A script's own memory says nothing about the CLI it runs.
        peak_kb: (!what.starts_with("book")).then_some(peak_kb),
        cpu,
        stdout,
    }
}

/// How a child ended.
pub struct Ended {
    pub status: i32,
    /// Its peak RSS (kB).
    pub peak_kb: i64,
    /// Its CPU time, user and system.
    pub cpu: Duration,
    pub stdout: String,
    pub stderr: String,
}

/// wait4 for a child: its exit code, its peak RSS, its CPU time and its
/// output.
pub fn wait_rusage(mut child: std::process::Child) -> Ended {
    use std::io::Read;
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut stdout = String::new();
    let _ = out.read_to_string(&mut stdout);
    let stderr = reader.join().unwrap();
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child's pid, with valid out-pointers.
    let r = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(r, child.id() as libc::pid_t, "wait4");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ended {
        status: code,
        peak_kb: usage.ru_maxrss,
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
        stdout,
        stderr,
    }
}

/// Prints each goal as met or MISSED; failure when one is missed. The
/// benchmark's main returns it, so the emulator it started is stopped
/// (an exit from here would leave it running).
pub fn verdict<S: std::fmt::Display>(
    checks: impl IntoIterator<Item = (S, bool)>,
) -> std::process::ExitCode {
    let mut missed = 0;
    for (what, ok) in checks {
        println!("{} {what}", if ok { "met   " } else { "MISSED" });
        missed += usize::from(!ok);
    }
    match missed {
        0 => std::process::ExitCode::SUCCESS,
        _ => std::process::ExitCode::FAILURE,
    }
}
