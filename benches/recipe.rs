//! The speed benchmark (run on demand: `cargo bench --bench recipe`; not
//! part of the tests). Against the local emulator (moto with
//! localstack/awsrules) at AWS's pace (each proxy `creating` for 20 s, its
//! target REGISTERING for 10 s, `deleting` for 20 s: the emulator's
//! settings), behind the tests' fault layer for the latency (100 ms per API
//! call), it measures in one run:
//!   (a) the book's recipe as a shell script of AWS CLI commands, polling
//!       every 10 s (benches/book/recipe.sh), and the book's cleanup
//!       (benches/book/cleanup.sh);
//!   (b) the tool's full run; (c) its no-op re-run; (d) two updates in
//!   place after an edit of the runbook: the proxy's idle client timeout
//!   (ModifyDBProxy, `modifying` for 10 s) and the pool's
//!   max_connections_percent (ModifyDBProxyTargetGroup); (e) a replacement
//!   (`run --allow-replace` after the proxy is renamed: a new proxy made
//!   beside the old, its target registered, the function moved, the old
//!   one deleted); (f) its rollback; (g) what a state in S3 (the
//!   emulator's, behind the same latency) adds: a run and a no-op re-run
//!   with a local file and the same with the state in S3, alternated
//!   BENCH_S3_PAIRS times (3) in two other sets of resources seeded alike
//!   (each pair rolled back before the next), compared by their medians
//!   (one run's waits alone vary by about a second);
//!   and `--help` and `status` (median of 20), and the peak memory of a run.
//! It counts the API calls of each and prints the tool's wall time as a
//! ratio of the critical path: the waits that cannot overlap plus one
//! latency per call that must follow another (see `critical_paths`).
//! Exit status 1 when a target is missed.
//!
//! Settings: BENCH_LATENCY_MS (100), BENCH_CREATING_S (20),
//! BENCH_REGISTERING_S (10), BENCH_DELETING_S (20), BENCH_ENI_LINGER_S (5:
//! the deleted proxy's network interfaces keep its group in use),
//! BENCH_LAMBDA_UPDATING_S (1: a function's update InProgress),
//! BENCH_MODIFYING_S (10: a proxy `modifying` after ModifyDBProxy),
//! BENCH_S3_PAIRS (3), BENCH_SKIP_BOOK=1 to
//! leave out the shell scripts, BENCH_VERBOSE=1 to print each command's
//! output (each step's line ends with its own duration).

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Measure, measure, setting, verdict};
use support::faults::FaultProxy;
use support::{BIN, Emulator, ROOT, Workspace};

#[path = "common/measure.rs"]
mod common;

fn book(script: &str, ws: &Workspace, faults: &FaultProxy, awscli_bin: &Path) -> Command {
    let mut c = Command::new("bash");
    c.arg(Path::new(ROOT).join("benches/book").join(script))
        .envs(ws.emu_env.iter().cloned())
        .envs(ws.env.iter())
        .env("AWS_ENDPOINT_URL", &faults.url)
        .env("PREFIX", format!("{}-", ws.prefix))
        .env("WORK", &ws.dir)
        .env(
            "PATH",
            format!(
                "{}:{}",
                awscli_bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .stdin(Stdio::null());
    c
}

/// The median wall time of `n` runs of a quick command.
fn median(n: usize, mut cmd: impl FnMut() -> Command) -> Duration {
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            let out = cmd().output().expect("run");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            t.elapsed()
        })
        .collect();
    times.sort();
    times[n / 2]
}

/// The measure with the median wall time (its own calls and memory).
fn median_of(mut all: Vec<Measure>) -> Measure {
    all.sort_by_key(|m| m.wall);
    let n = all.len();
    all.swap_remove(n / 2)
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

/// How long AWS takes; the emulator is set to it.
struct Pace {
    creating: Duration,
    registering: Duration,
    deleting: Duration,
    eni_linger: Duration,
    lambda_updating: Duration,
    modifying: Duration,
}

fn main() -> std::process::ExitCode {
    // `cargo bench` passes --bench; no other arguments are taken.
    let latency = Duration::from_millis(setting("BENCH_LATENCY_MS", 100));
    let pace = Pace {
        creating: Duration::from_secs(setting("BENCH_CREATING_S", 20)),
        registering: Duration::from_secs(setting("BENCH_REGISTERING_S", 10)),
        deleting: Duration::from_secs(setting("BENCH_DELETING_S", 20)),
        eni_linger: Duration::from_secs(setting("BENCH_ENI_LINGER_S", 5)),
        lambda_updating: Duration::from_secs(setting("BENCH_LAMBDA_UPDATING_S", 1)),
        modifying: Duration::from_secs(setting("BENCH_MODIFYING_S", 10)),
    };
    let with_book = std::env::var("BENCH_SKIP_BOOK").is_err();
    let awscli_bin = Path::new(ROOT).join("benches/book/.venv/bin");
    if with_book {
        let ok = Command::new(Path::new(ROOT).join("benches/book/install-awscli.sh"))
            .status()
            .expect("run install-awscli.sh")
            .success();
        assert!(ok, "benches/book/install-awscli.sh failed");
    }

    let emu = Emulator::start();
    // Seeding goes straight to the emulator: not counted, not slowed.
    let book_ws = emu.workspace("bench-book");
    let mut ws = emu.workspace("bench-tool");
    // For the S3 comparison: a local state, and one in a bucket made (and
    // versioned) straight on the emulator, uncounted.
    let mut file_ws = emu.workspace("bench-file");
    let mut s3_ws = emu.workspace("bench-s3").in_s3();
    let faults = FaultProxy::start(&emu.url);
    faults.latency(latency);
    emu.configure(&format!(
        r#"{{"proxy_creating": {}, "target_registering": {}, "proxy_deleting": {}, "proxy_eni_linger": {}, "lambda_updating": {}, "proxy_modifying": {}}}"#,
        pace.creating.as_secs_f64(),
        pace.registering.as_secs_f64(),
        pace.deleting.as_secs_f64(),
        pace.eni_linger.as_secs_f64(),
        pace.lambda_updating.as_secs_f64(),
        pace.modifying.as_secs_f64()
    ));
    ws.set_endpoint(&faults.url);
    s3_ws.set_endpoint(&faults.url);
    file_ws.set_endpoint(&faults.url);

    let mut rows: Vec<Measure> = Vec::new();
    if with_book {
        rows.push(measure(
            "book: recipe (AWS CLI)",
            &faults,
            book("recipe.sh", &book_ws, &faults, &awscli_bin),
        ));
        rows.push(measure(
            "book: cleanup (AWS CLI)",
            &faults,
            book("cleanup.sh", &book_ws, &faults, &awscli_bin),
        ));
    }
    // BENCH_TRACE=FILE: the run's calls, each with its arrival (seconds
    // since the command started), go there.
    let trace = std::env::var("BENCH_TRACE").ok();
    faults.record_timeline();
    let started = std::time::Instant::now();
    let run = measure("tool: run", &faults, ws.cmd(&["run", "--yes"]));
    let timeline = faults.take_timeline(started);
    if let Some(file) = &trace {
        std::fs::write(file, timeline).expect("write BENCH_TRACE");
    }
    let rerun = measure("tool: re-run (no-op)", &faults, ws.cmd(&["run", "--yes"]));
    let status_time = median(21, || ws.cmd(&["status"]));
    let help_time = median(21, || {
        let mut c = Command::new(BIN);
        c.arg("--help");
        c
    });
    // Day two: an edit of the runbook, applied in place.
    ws.write_runbook(|s| {
        s.replace(
            "require_tls = true\n",
            "require_tls = true\nidle_client_timeout = 300\n",
        )
    });
    let idle = measure(
        "tool: update idle timeout",
        &faults,
        ws.cmd(&["run", "--yes"]),
    );
    ws.write_runbook(|s| {
        let s = s.replace(
            "require_tls = true\n",
            "require_tls = true\nidle_client_timeout = 300\n",
        );
        format!("{s}\n[pool]\nmax_connections_percent = 60\n")
    });
    let pool = measure("tool: update pool", &faults, ws.cmd(&["run", "--yes"]));
    ws.write_runbook(|s| {
        let s = s.replace(
            "require_tls = true\n",
            "require_tls = true\nidle_client_timeout = 300\n",
        );
        let s = s.replace("name = \"${env.DB_NAME}\"", "name = \"${env.DB_NAME}-v2\"");
        format!("{s}\n[pool]\nmax_connections_percent = 60\n")
    });
    let replace = measure(
        "tool: replace the proxy",
        &faults,
        ws.cmd(&["run", "--yes", "--allow-replace"]),
    );
    let rollback = measure("tool: rollback", &faults, ws.cmd(&["rollback", "--yes"]));

    // A state in S3 against a local file, alternated, each pair undone
    // (both rollbacks at once, unmeasured) before the next.
    let pairs = setting("BENCH_S3_PAIRS", 3).max(1);
    // Each kind: its row's name, the workspace; run, then re-run.
    let kinds = [
        ("tool: run, local (median)", &file_ws),
        ("tool: run, S3 (median)", &s3_ws),
        ("tool: re-run, local (med.)", &file_ws),
        ("tool: re-run, S3 (median)", &s3_ws),
    ];
    let mut measured: [Vec<Measure>; 4] = Default::default();
    for _ in 0..pairs {
        for ((what, w), all) in kinds.iter().zip(measured.iter_mut()) {
            all.push(measure(what, &faults, w.cmd(&["run", "--yes"])));
        }
        let undo: Vec<_> = [&file_ws, &s3_ws]
            .iter()
            .map(|w| {
                w.cmd(&["rollback", "--yes"])
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("rollback")
            })
            .collect();
        for mut u in undo {
            assert!(
                u.wait().expect("rollback").success(),
                "a pair's rollback failed"
            );
        }
    }
    let [file_run, s3_run, file_rerun, s3_rerun] = measured.map(median_of);

    // The critical paths: the waits that cannot overlap, plus one latency
    // for each call on the longest chain of calls that must follow one
    // another. Run: CreateRole -> CreateDBProxy -> (creating) ->
    // RegisterDBProxyTargets -> (registering) -> UpdateFunctionConfiguration
    // -> (updating) -> Invoke. Rollback: UpdateFunctionConfiguration (DB_HOST
    // back) -> (updating) -> DeregisterDBProxyTargets -> DeleteDBProxy ->
    // (deleting) -> (ENIs linger) -> DeleteSecurityGroup.
    let run_path = pace.creating + pace.registering + pace.lambda_updating + latency * 5;
    // The physical limit of a run: the critical path and one look after
    // each wait that sees it over (a wait cannot end sooner than the call
    // that shows it ended).
    let run_limit = run_path + latency * 3;
    let rollback_path = pace.lambda_updating + pace.deleting + pace.eni_linger + latency * 4;
    let rerun_budget = latency + Duration::from_millis(500);
    // An update: one round of checks, the modify, (modifying), and the
    // invoke check that follows it; the pool's has no wait of its own.
    let idle_path = latency * 3 + pace.modifying;
    let pool_path = latency * 3;
    let pool_budget = pool_path + Duration::from_millis(500);
    // A replacement: one round of checks, CreateDBProxy -> (creating) -> a
    // look -> RegisterDBProxyTargets -> (registering) -> a look ->
    // UpdateFunctionConfiguration -> (updating) -> a look -> Invoke ->
    // DeleteDBProxy (the old one) -> (deleting) -> a look.
    let replace_path =
        pace.creating + pace.registering + pace.lambda_updating + pace.deleting + latency * 11;

    println!();
    println!(
        "rds-proxy-runbook benchmark: {} ms per API call; proxy creating {} s, target REGISTERING {} s, deleting {} s, ENIs linger {} s, Lambda update {} s",
        latency.as_millis(),
        pace.creating.as_secs(),
        pace.registering.as_secs(),
        pace.deleting.as_secs(),
        pace.eni_linger.as_secs(),
        pace.lambda_updating.as_secs()
    );
    println!(
        "{:<26} {:>9} {:>9} {:>11} {:>9} {:>9}",
        "what", "wall s", "API calls", "vs critical", "vs limit", "peak MB"
    );
    let row = |m: &Measure, path: Option<Duration>| {
        let ratio = path.map_or(String::from("-"), |p| {
            format!("{:.3}x", m.wall.as_secs_f64() / p.as_secs_f64())
        });
        // A run of the tool against its physical limit.
        let limit = if m.what.starts_with("tool: run") {
            format!("{:.3}x", m.wall.as_secs_f64() / run_limit.as_secs_f64())
        } else {
            String::from("-")
        };
        let mb = m
            .peak_kb
            .map_or(String::from("-"), |kb| format!("{:.1}", kb as f64 / 1024.0));
        println!(
            "{:<26} {:>9} {:>9} {:>11} {:>9} {:>9}",
            m.what,
            secs(m.wall),
            m.calls,
            ratio,
            limit,
            mb
        );
    };
    for m in &rows {
        let path = if m.what.contains("cleanup") {
            rollback_path
        } else {
            run_path
        };
        row(m, Some(path));
    }
    row(&run, Some(run_path));
    row(&rerun, None);
    row(&file_run, Some(run_path));
    row(&s3_run, Some(run_path));
    row(&file_rerun, None);
    row(&s3_rerun, None);
    row(&idle, Some(idle_path));
    row(&pool, Some(pool_path));
    row(&replace, Some(replace_path));
    row(&rollback, Some(rollback_path));
    println!(
        "physical limit of a run: {} s (the critical path and a look after each of its 3 waits); \
         the run is {:.2} s over it",
        secs(run_limit),
        run.wall.as_secs_f64() - run_limit.as_secs_f64()
    );
    println!(
        "critical path: run {} s, rollback {} s, idle-timeout update {} s, pool update {} s, \
         replacement {} s; re-run budget {} s (one round + 0.5 s), pool update budget {} s (its \
         path + 0.5 s)",
        secs(run_path),
        secs(rollback_path),
        secs(idle_path),
        secs(pool_path),
        secs(replace_path),
        secs(rerun_budget),
        secs(pool_budget)
    );
    // What S3 adds, side by side: the run's share, the re-run's rounds.
    let s3_share = s3_run.wall.as_secs_f64() / file_run.wall.as_secs_f64() - 1.0;
    let s3_rerun_extra = s3_rerun.wall.saturating_sub(file_rerun.wall);
    println!(
        "state in S3 (medians of {pairs} alternated pairs): run {:+.1}% of the local run ({} more API calls); re-run {:+.0} ms, {:.2} \
         round(s) of {} ms ({} more API calls)",
        100.0 * s3_share,
        s3_run.calls as i64 - file_run.calls as i64,
        s3_rerun.wall.as_secs_f64() * 1000.0 - file_rerun.wall.as_secs_f64() * 1000.0,
        s3_rerun_extra.as_secs_f64() / latency.as_secs_f64(),
        latency.as_millis(),
        s3_rerun.calls as i64 - file_rerun.calls as i64
    );
    println!(
        "--help {} ms, status {} ms (median of 21)",
        help_time.as_millis(),
        status_time.as_millis()
    );

    let peak_mb = [
        &run,
        &rerun,
        &file_run,
        &s3_run,
        &file_rerun,
        &s3_rerun,
        &idle,
        &pool,
        &replace,
        &rollback,
    ]
    .iter()
    .filter_map(|m| m.peak_kb)
    .max()
    .unwrap_or(0) as f64
        / 1024.0;
    let checks = [
        (
            "full run within 1.1x the critical path",
            run.wall.as_secs_f64() <= 1.1 * run_path.as_secs_f64(),
        ),
        (
            "full run within 1 s of its physical limit",
            run.wall <= run_limit + Duration::from_secs(1),
        ),
        (
            "rollback within 1.2x its critical path",
            rollback.wall.as_secs_f64() <= 1.2 * rollback_path.as_secs_f64(),
        ),
        (
            "no-op re-run within one round + 0.5 s",
            rerun.wall <= rerun_budget,
        ),
        (
            "idle-timeout update within 1.2x its critical path",
            idle.wall.as_secs_f64() <= 1.2 * idle_path.as_secs_f64(),
        ),
        (
            "pool update within its critical path + 0.5 s",
            pool.wall <= pool_budget,
        ),
        (
            "replacement within 1.2x its critical path",
            replace.wall.as_secs_f64() <= 1.2 * replace_path.as_secs_f64(),
        ),
        (
            "state in S3: a run within 5% of the local run",
            s3_share < 0.05,
        ),
        (
            // One round of latency, and the emulator's own time for it.
            "state in S3: a re-run at most one round more than the local one",
            s3_rerun_extra <= latency + Duration::from_millis(100),
        ),
        ("--help under 50 ms", help_time < Duration::from_millis(50)),
        (
            "status under 50 ms",
            status_time < Duration::from_millis(50),
        ),
        ("peak memory under 50 MB", peak_mb < 50.0),
    ];
    verdict(checks)
}
