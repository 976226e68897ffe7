//! The fleet benchmark (on demand: `cargo bench --bench fleet`; not part of
//! the tests). Against the local emulator at AWS's pace (each proxy
//! `creating` for 20 s, its target REGISTERING for 10 s, `deleting` for
//! 20 s), behind the tests' fault layer (100 ms per API call, and AWS's
//! throttling of the Describe calls as EC2 documents it: a token bucket per
//! action, 20 a second after a burst of 100), it runs fleets of 1, 10 and 50 runbooks, each with its own
//! DB and function, in one process each time: the run, a no-op re-run, a
//! `plan` of the finished fleet, the rollback (the same seeded setups serve every size: a rollback puts them
//! back). In one run it reports each fleet's wall time as a ratio of one
//! runbook's, the calls per runbook, the DescribeDBProxies calls (the
//! waits' looks: one listing per round for the whole place, so about as
//! many for fifty proxies as for one), the answers throttled, and the
//! process's peak memory. Exit status 1 when a target is missed.
//!
//! Settings: BENCH_FLEET_SIZES (1,10,50), BENCH_LATENCY_MS (100),
//! BENCH_CREATING_S (20), BENCH_REGISTERING_S (10), BENCH_DELETING_S (20),
//! BENCH_DESCRIBE_RATE (20 a second, a burst of five times that; 0: no
//! throttling), BENCH_VERBOSE=1, BENCH_TRACE=FILE (each phase's calls with
//! their arrival go to FILE.SIZE.PHASE).

#[path = "../tests/support/mod.rs"]
mod support;

#[path = "common/measure.rs"]
mod common;

use std::process::Command;
use std::time::Duration;

use common::{Measure, measure, setting, verdict};
use support::faults::FaultProxy;
use support::{BIN, Emulator, Workspace};

fn fleet(books: &[Workspace], faults: &FaultProxy, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .args(books.iter().map(|w| &w.runbook))
        .args(["--no-progress", "--output", "json"])
        .arg("--parallel")
        .arg(books.len().to_string())
        .env_remove("AWS_PROFILE")
        .envs(books[0].emu_env.iter().cloned())
        .env("AWS_ENDPOINT_URL", &faults.url);
    c
}

/// Each runbook of the fleet's document succeeded (one runbook alone: its
/// own document).
fn all_ok(m: &Measure) {
    let doc: serde_json::Value = serde_json::from_str(&m.stdout).expect("one JSON document");
    let each = match doc["runbooks"].as_array() {
        Some(all) => all.clone(),
        None => vec![doc],
    };
    let bad: Vec<String> = each
        .iter()
        .filter(|r| r["result"] != "ok")
        .map(|r| format!("{}: {}", r["runbook"], r["error"]))
        .collect();
    assert!(bad.is_empty(), "{}: {bad:?}", m.what);
}

/// DescribeDBProxies listings of every proxy: the shared rounds.
fn rounds(p: &Phase) -> usize {
    p.m.by_action
        .get("DescribeDBProxies (all)")
        .copied()
        .unwrap_or(0)
}

struct Phase {
    size: usize,
    what: &'static str,
    m: Measure,
    throttled: usize,
    /// The emulator's CPU time meanwhile.
    emulator_cpu: Option<Duration>,
    /// Its children's meanwhile: the functions' invocations.
    functions_cpu: Option<Duration>,
}

fn main() -> std::process::ExitCode {
    let sizes: Vec<usize> = std::env::var("BENCH_FLEET_SIZES")
        .unwrap_or_else(|_| "1,10,50".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let latency = Duration::from_millis(setting("BENCH_LATENCY_MS", 100));
    let rate = setting("BENCH_DESCRIBE_RATE", 20) as f64;
    let emu = Emulator::start();
    let most = sizes.iter().copied().max().unwrap_or(1);
    // Seeding goes straight to the emulator: not counted, not slowed.
    let books: Vec<Workspace> = (0..most)
        .map(|i| emu.workspace(&format!("fleet{i}")).standalone())
        .collect();
    let faults = FaultProxy::start(&emu.url);
    faults.latency(latency);
    if rate > 0.0 {
        faults.rate_limit("Describe", rate, 5.0 * rate);
    }
    emu.configure(&format!(
        r#"{{"proxy_creating": {}, "target_registering": {}, "proxy_deleting": {}, "proxy_eni_linger": 5, "lambda_updating": 1}}"#,
        setting("BENCH_CREATING_S", 20),
        setting("BENCH_REGISTERING_S", 10),
        setting("BENCH_DELETING_S", 20),
    ));

    let mut phases: Vec<Phase> = Vec::new();
    for &n in &sizes {
        for (what, args) in [
            ("run", &["run"][..]),
            ("re-run", &["run"][..]),
            ("plan", &["plan"][..]),
            ("rollback", &["rollback"][..]),
        ] {
            let throttled = faults.throttled();
            let (cpu, children_cpu) = (emu.cpu(), emu.children_cpu());
            faults.record_timeline();
            let started = std::time::Instant::now();
            let mut cmd = fleet(&books[..n], &faults, args);
            if what != "plan" {
                cmd.arg("--yes");
            }
            let m = measure(what, &faults, cmd);
            let timeline = faults.take_timeline(started);
            if let Ok(file) = std::env::var("BENCH_TRACE") {
                std::fs::write(format!("{file}.{n}.{what}"), timeline).expect("write BENCH_TRACE");
            }
            // A plan's document says what each would change, not a result
            // (its exit status, checked by `measure`, says it planned).
            if what != "plan" {
                all_ok(&m);
            }
            phases.push(Phase {
                size: n,
                what,
                m,
                throttled: faults.throttled() - throttled,
                emulator_cpu: emu.cpu().zip(cpu).map(|(after, before)| after - before),
                functions_cpu: emu
                    .children_cpu()
                    .zip(children_cpu)
                    .map(|(after, before)| after - before),
            });
        }
    }

    println!();
    println!(
        "rds-proxy-runbook fleet benchmark: {} ms per API call, each Describe* throttled beyond {rate}/s (burst {}), proxy creating {} s, target REGISTERING {} s, deleting {} s",
        latency.as_millis(),
        5.0 * rate,
        setting("BENCH_CREATING_S", 20),
        setting("BENCH_REGISTERING_S", 10),
        setting("BENCH_DELETING_S", 20)
    );
    println!(
        "{:>5} {:<9} {:>8} {:>8} {:>9} {:>7} {:>8} {:>10} {:>8} {:>6} {:>8} {:>8}",
        "fleet",
        "phase",
        "wall s",
        "vs one",
        "calls/rb",
        "rounds",
        "by name",
        "throttled",
        "peak MB",
        "CPU s",
        "emu CPU",
        "fn CPU"
    );
    let one = |what: &str| {
        phases
            .iter()
            .find(|p| p.size == sizes[0] && p.what == what)
            .map(|p| p.m.wall.as_secs_f64())
    };
    for p in &phases {
        let ratio = one(p.what).map_or("-".into(), |w| {
            format!("{:.3}x", p.m.wall.as_secs_f64() / w)
        });
        let describes = p.m.by_action.get("DescribeDBProxies").copied().unwrap_or(0);
        println!(
            "{:>5} {:<9} {:>8.2} {:>8} {:>9.1} {:>7} {:>8} {:>10} {:>8.1} {:>6.2} {:>8} {:>8}",
            p.size,
            p.what,
            p.m.wall.as_secs_f64(),
            ratio,
            p.m.calls as f64 / p.size as f64,
            rounds(p),
            describes - rounds(p),
            p.throttled,
            p.m.peak_kb.unwrap_or(0) as f64 / 1024.0,
            p.m.cpu.as_secs_f64(),
            p.emulator_cpu
                .map_or("-".into(), |c| format!("{:.2}", c.as_secs_f64())),
            p.functions_cpu
                .map_or("-".into(), |c| format!("{:.2}", c.as_secs_f64()))
        );
    }
    println!(
        "rounds: DescribeDBProxies listings (every proxy of the place, shared by every wait); by name: \
         each runbook's own reads of its proxy (its checks); CPU s: the tool's own CPU time; emu CPU: the \
         emulator's meanwhile (one core at most: Python); fn CPU: the functions' invocations, each a child process of the emulator"
    );
    for p in phases.iter().filter(|p| p.throttled > 0) {
        let which: Vec<String> =
            p.m.by_action
                .iter()
                .filter_map(|(k, n)| Some(format!("{} {n}", k.strip_prefix("throttled ")?)))
                .collect();
        println!(
            "throttled in {} of {}: {}",
            p.what,
            p.size,
            which.join(", ")
        );
    }
    for p in phases.iter().filter(|p| p.size > 1) {
        let doc: serde_json::Value = serde_json::from_str(&p.m.stdout).unwrap();
        let mut secs: Vec<f64> = doc["runbooks"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["seconds"].as_f64())
            .collect();
        secs.sort_by(f64::total_cmp);
        println!(
            "{} of {}: each runbook {:.1} s to {:.1} s (median {:.1} s)",
            p.what,
            p.size,
            secs[0],
            secs[secs.len() - 1],
            secs[secs.len() / 2]
        );
    }
    for p in phases
        .iter()
        .filter(|p| p.what == "re-run" || p.what == "plan")
    {
        let each: Vec<String> =
            p.m.by_action
                .iter()
                .filter(|(k, _)| !k.starts_with("throttled "))
                .map(|(k, n)| format!("{k} {:.1}", *n as f64 / p.size as f64))
                .collect();
        println!(
            "{} of {}, calls per runbook: {}",
            p.what,
            p.size,
            each.join(", ")
        );
    }
    let find = |size: usize, what: &str| phases.iter().find(|p| p.size == size && p.what == what);
    let mut checks: Vec<(String, bool)> = Vec::new();
    // A no-op re-run reads through the place's shared answers: at most 5
    // calls per runbook in a fleet (one runbook alone reads for itself).
    for p in phases.iter().filter(|p| p.what == "re-run" && p.size >= 10) {
        let per = p.m.calls as f64 / p.size as f64;
        checks.push((
            format!(
                "re-run of {}: at most 5 calls per runbook ({per:.1})",
                p.size
            ),
            per <= 5.0,
        ));
    }
    if let (Some(first), Some(last)) = (sizes.first(), sizes.last())
        && first != last
    {
        let (a, b) = (
            find(*first, "re-run").unwrap(),
            find(*last, "re-run").unwrap(),
        );
        checks.push((
            format!("re-run: {last} runbooks within 2x of {first}"),
            b.m.wall.as_secs_f64() <= 2.0 * a.m.wall.as_secs_f64(),
        ));
        for what in ["run", "rollback"] {
            let (a, b) = (find(*first, what).unwrap(), find(*last, what).unwrap());
            checks.push((
                format!("{what}: {last} runbooks within 1.15x of {first}"),
                b.m.wall.as_secs_f64() <= 1.15 * a.m.wall.as_secs_f64(),
            ));
            // The waits' looks: one listing per round for the whole place,
            // never faster than one wait's fastest pace (one per 0.5 s),
            // whatever the fleet's size.
            let per_second = rounds(b) as f64 / b.m.wall.as_secs_f64();
            checks.push((
                format!("{what}: {last} runbooks' rounds at most 2 a second ({per_second:.2})"),
                per_second <= 2.1,
            ));
            let looks = |p: &Phase| p.m.by_action.get("DescribeDBProxies").copied().unwrap_or(0);
            let apart = (looks(a) * last / first) as f64;
            checks.push((
                format!(
                    "{what}: DescribeDBProxies of {last} runbooks under a quarter of {last} run apart ({} of {apart:.0})",
                    looks(b)
                ),
                (looks(b) as f64) < apart / 4.0,
            ));
        }
        let peak = phases
            .iter()
            .filter(|p| p.size == *last)
            .filter_map(|p| p.m.peak_kb)
            .max()
            .unwrap_or(0) as f64
            / 1024.0;
        checks.push((
            format!("peak memory of {last} runbooks under 100 MB ({peak:.1})"),
            peak < 100.0,
        ));
    }
    verdict(checks)
}
