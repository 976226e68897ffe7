//! Crash points: the binary built with the `failpoints` feature aborts,
//! dead, at a named boundary of a step. For every step and every boundary:
//! `resume` then finishes with exactly one of each resource, and from the
//! same kill (made again in a second workspace) `rollback` leaves exactly
//! what was there before the run.

use std::os::unix::process::ExitStatusExt;

use super::edit;
use super::support::*;

/// The boundaries each step passes on a run: before the create call, after
/// it succeeded but before the state is saved, and inside a wait.
const POINTS: &[(&str, &[&str])] = &[
    ("proxy-role", &["before-apply", "after-apply"]),
    ("secret-access", &["before-apply", "after-apply"]),
    ("proxy-security-group", &["before-apply", "after-apply"]),
    ("proxy", &["before-apply", "wait", "after-apply"]),
    ("connect-policy", &["before-apply", "after-apply"]),
    ("db-ingress", &["before-apply", "after-apply"]),
    ("targets", &["before-apply", "wait", "after-apply"]),
    // Between the first alarm made and the rest: the resume makes the
    // others, and no alarm twice.
    (
        "alarms",
        &["before-apply", "after-first-alarm", "after-apply"],
    ),
    ("lambda-ingress", &["before-apply", "after-apply"]),
    // The emulator applies the update at once: lambda-env has no wait.
    ("lambda-env", &["before-apply", "after-apply"]),
    ("invoke-check", &["before-apply", "after-apply"]),
];

/// Runs `args` (a run or a rollback) and dies at `step:point`.
pub(super) fn kill_at(ws: &Workspace, args: &[&str], step: &str, point: &str) {
    let out = ws
        .cmd(args)
        .env("RDS_PROXY_RUNBOOK_FAILPOINT", format!("{step}:{point}"))
        .bounded_output();
    assert_eq!(
        out.status.signal(),
        Some(6),
        "{step}:{point} did not abort {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every boundary of `step` killed on a run, then resumed or rolled back,
/// and on a rollback, then rolled back again; with the state in a local
/// file, or (`s3`) in an S3 object with its lock.
fn crash_step(step: &str, s3: bool) {
    let emu = Emulator::start();
    let workspace = |name: &str| {
        let ws = emu.workspace(name);
        if s3 { ws.in_s3() } else { ws }
    };
    let points = POINTS.iter().find(|(s, _)| *s == step).unwrap().1;
    for point in points {
        let what = format!("killed at {step}:{point}");
        // Kill, then resume: finishes with one of each.
        let ws = workspace(&format!("c{}", point.len()));
        let before = snapshot(&emu, &ws);
        kill_at(&ws, &["run", "--yes"], step, point);
        if s3 {
            // The killed holder left its lock: refused, named, removed by
            // its id, then resumed.
            unlock_left(&ws);
        }
        ws.run(&["resume", "--yes"]).ok();
        assert_one_of_each(
            &before,
            &snapshot(&emu, &ws),
            &ws,
            &format!("{what}, then resume"),
        );
        ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
        ws.run(&["rollback", "--yes"]).ok();
        assert_same(
            &before,
            &snapshot(&emu, &ws),
            &format!("{what}, resume, rollback"),
        );

        // The same kill, then rollback: nothing left behind.
        let ws = workspace(&format!("r{}", point.len()));
        let before = snapshot(&emu, &ws);
        kill_at(&ws, &["run", "--yes"], step, point);
        if s3 {
            unlock_left(&ws);
        }
        ws.run(&["rollback", "--yes"]).ok();
        assert_same(
            &before,
            &snapshot(&emu, &ws),
            &format!("{what}, then rollback"),
        );
    }
    // A rollback killed at this step (before its undo, or after it but
    // before the state is saved): the next rollback finishes it exactly.
    let ws = workspace("rb");
    let before = snapshot(&emu, &ws);
    ws.run(&["run", "--yes"]).ok();
    for point in ["before-rollback", "after-rollback"] {
        kill_at(&ws, &["rollback", "--yes"], step, point);
        if s3 {
            unlock_left(&ws);
        }
        ws.run(&["rollback", "--yes"]).ok();
        assert_same(
            &before,
            &snapshot(&emu, &ws),
            &format!("rollback killed at {step}:{point}"),
        );
        ws.run(&["run", "--yes"]).ok();
    }
}

/// The lock a killed process left on an S3 state (if it had taken one: a
/// process locks at its first write), removed by its id; `status` reads the
/// state meanwhile.
pub(super) fn unlock_left(ws: &Workspace) {
    ws.run(&["status"]).ok();
    if let Some(id) = ws.lock_id() {
        ws.run(&["unlock", "--force", &id]).ok();
    }
}

macro_rules! crash_tests {
    ($($name:ident, $in_s3:ident => $step:literal),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                crash_step($step, false);
            }
            #[test]
            fn $in_s3() {
                crash_step($step, true);
            }
        )*
        /// The list above covers every step the tool has.
        #[test]
        fn every_step_has_crash_points() {
            let tested = [$($step),*];
            assert_eq!(tested.len(), POINTS.len());
            let help = std::process::Command::new(BIN).args(["run", "--help"]).bounded_output();
            assert!(help.status.success());
            for (step, _) in POINTS {
                assert!(tested.contains(step), "{step} has no crash test");
            }
        }
    };
}

crash_tests! {
    crash_proxy_role, crash_proxy_role_s3 => "proxy-role",
    crash_secret_access, crash_secret_access_s3 => "secret-access",
    crash_proxy_security_group, crash_proxy_security_group_s3 => "proxy-security-group",
    crash_proxy, crash_proxy_s3 => "proxy",
    crash_connect_policy, crash_connect_policy_s3 => "connect-policy",
    crash_db_ingress, crash_db_ingress_s3 => "db-ingress",
    crash_targets, crash_targets_s3 => "targets",
    crash_alarms, crash_alarms_s3 => "alarms",
    crash_lambda_ingress, crash_lambda_ingress_s3 => "lambda-ingress",
    crash_lambda_env, crash_lambda_env_s3 => "lambda-env",
    crash_invoke_check, crash_invoke_check_s3 => "invoke-check",
}

/// Runs the recipe held for `ms` at `step:point`, and returns once the
/// state shows `step` started (the process is then in the pause). The
/// caller waits on the child.
#[allow(clippy::zombie_processes)]
fn paused_run(ws: &Workspace, step: &str, point: &str, ms: u64) -> std::process::Child {
    let child = ws
        .cmd(&["run", "--yes"])
        .env(
            "RDS_PROXY_RUNBOOK_FAILPOINT",
            format!("{step}:{point}:sleep{ms}"),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        let state: serde_json::Value = ws
            .state_text()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        if state["steps"][step]["status"] == "started" {
            return child;
        }
        assert!(
            start.elapsed().as_secs() < 30,
            "the run never reached {step}:{point}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn interrupt(child: &std::process::Child) {
    // SAFETY: sends a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
}

#[test]
fn first_ctrl_c_finishes_the_call_saves_and_says_how_to_resume() {
    first_ctrl_c(false);
}

/// As above with the state in S3: the lock is released on the way out.
#[test]
fn first_ctrl_c_releases_the_s3_lock() {
    first_ctrl_c(true);
}

fn first_ctrl_c(s3: bool) {
    let emu = Emulator::start();
    let ws = emu.workspace("ctrl-c");
    let ws = if s3 { ws.in_s3() } else { ws };
    let before = snapshot(&emu, &ws);
    let child = paused_run(&ws, "proxy", "before-apply", 1500);
    interrupt(&child);
    let out = Out::from(finish(child));
    out.code(130)
        .stderr_has("stopping after the current AWS call")
        .stderr_has("interrupted; the state is saved. To continue: rds-proxy-runbook resume");
    // The call in flight (the create) finished; the wait after it was cut
    // short, so the step stays started; nothing that waits on it ran.
    let state = ws.state_json();
    assert_eq!(state["steps"]["proxy"]["status"], "started");
    assert!(state["steps"]["connect-policy"].is_null(), "{state}");
    assert!(state["steps"]["targets"].is_null(), "{state}");
    ws.run(&["status"])
        .ok()
        .stdout_has("connect-policy         pending");
    // The create went through: resume finds the proxy (still `creating`
    // when it looks quickly, as on AWS, or already done) and makes no other.
    let resumed = ws.run(&["resume", "--yes"]);
    resumed.ok();
    assert!(
        resumed
            .stdout
            .contains("= proxy found done in the account, recorded")
            || resumed.stdout.contains("✓ proxy finished: DB proxy"),
        "resume did not take the proxy over\n{}",
        resumed.stdout
    );
    assert_one_of_each(
        &before,
        &snapshot(&emu, &ws),
        &ws,
        "after Ctrl-C and resume",
    );
}

#[test]
fn second_ctrl_c_exits_at_once_with_a_consistent_state() {
    let emu = Emulator::start();
    let ws = emu.workspace("ctrl-c2");
    let before = snapshot(&emu, &ws);
    let child = paused_run(&ws, "proxy", "before-apply", 20_000);
    let start = std::time::Instant::now();
    interrupt(&child);
    std::thread::sleep(std::time::Duration::from_millis(300));
    interrupt(&child);
    let out = Out::from(finish(child));
    out.code(130).stderr_has("quitting now");
    assert!(
        start.elapsed().as_secs() < 10,
        "the second Ctrl-C did not exit at once"
    );
    // The state on disk is whole: the proxy step is recorded as started.
    assert_eq!(ws.state_json()["steps"]["proxy"]["status"], "started");
    ws.run(&["resume", "--yes"]).ok();
    assert_one_of_each(
        &before,
        &snapshot(&emu, &ws),
        &ws,
        "after two Ctrl-C and resume",
    );
    ws.run(&["rollback", "--yes"]).ok();
    assert_same(&before, &snapshot(&emu, &ws), "rollback after two Ctrl-C");
}

/// An update in place killed at each boundary of the steps it changes (the
/// proxy's ModifyDBProxy and its wait, the pool, the variable of a function
/// added or removed): `resume` finishes it with the same proxy and no
/// duplicate, no function ever points at anything but the DB or the live
/// proxy, and a rollback afterwards leaves what was there before the first
/// run. Each kill flips the runbook between its first version and an
/// edited one (idle timeout, pool, a second function), so every round is
/// an update.
#[test]
fn an_update_killed_anywhere_resumes_with_the_same_proxy_and_no_stranded_function() {
    let emu = Emulator::start();
    let ws = emu.workspace_for(
        "cupd",
        "cookbook-4.3-mysql.toml",
        &["--extra-function", "reports"],
    );
    let p = ws.prefix.clone();
    let (app, reports) = (
        ws.env["DB_APP_FUNCTION_NAME"].clone(),
        ws.env["REPORTS_FUNCTION_NAME"].clone(),
    );
    let db_host = function_variable(&emu, &app, "DB_HOST").unwrap();
    let before = snapshot(&emu, &ws);
    ws.run(&["run", "--yes"]).ok();
    let proxy_arn = |snap: &Snapshot| snap[&format!("db proxy {p}-db")].field("arn").to_string();
    let arn = proxy_arn(&snapshot(&emu, &ws));
    let endpoint = ws.output("proxy", "endpoint");
    let edited = |on: bool| {
        ws.write_runbook(|s| {
            if !on {
                return s;
            }
            let s = s.replace(
                "require_tls = true\n",
                "require_tls = true\nidle_client_timeout = 300\n",
            );
            let s = s.replace(
                "\n[invoke_check]",
                "\n[[lambda]]\nfunction_name = \"${env.REPORTS_FUNCTION_NAME}\"\n\n[invoke_check]",
            );
            format!("{s}\n[pool]\nmax_connections_percent = 60\n")
        })
    };
    let mut on = false;
    for (step, point) in [
        ("proxy", "before-apply"),
        ("proxy", "wait"),
        ("proxy", "after-apply"),
        ("targets", "after-apply"),
        ("lambda-env", "before-apply"),
        ("lambda-env", "after-apply"),
        ("connect-policy", "after-apply"),
        // A removal round: killed in the first pass, whose rule revoke
        // waits for the second; resume does both.
        ("lambda-ingress", "after-apply"),
    ] {
        on = !on;
        edited(on);
        let what = format!("update (edited: {on}) killed at {step}:{point}");
        let both = [app.clone(), reports.clone()];
        let watch = HostWatch::start(&emu, &both, "DB_HOST", &db_host);
        kill_at(&ws, &["run", "--yes"], step, point);
        ws.run(&["resume", "--yes"]).ok();
        watch.assert_always_working(&what);
        let snap = snapshot(&emu, &ws);
        assert_eq!(proxy_arn(&snap), arn, "{what}: the same proxy");
        let proxies = snap.keys().filter(|k| k.starts_with("db proxy ")).count();
        assert_eq!(proxies, 1, "{what}: {snap:#?}");
        let timeout = if on { "Some(300)" } else { "Some(1800)" };
        let proxy = &snap[&format!("db proxy {p}-db")];
        assert_eq!(
            proxy.field("idle_client_timeout"),
            timeout,
            "{what}: {proxy}"
        );
        let policy = &snap[&format!("iam policy {p}-connect")];
        let versions = policy.field("versions");
        assert_eq!(versions.matches(" default=").count(), 1, "{what}: {policy}");
        assert_eq!(
            function_variable(&emu, &app, "DB_HOST").as_deref(),
            Some(endpoint.as_str()),
            "{what}"
        );
        let want = if on { &endpoint } else { &db_host };
        assert_eq!(
            function_variable(&emu, &reports, "DB_HOST").as_ref(),
            Some(want),
            "{what}"
        );
        let proxy_sg = proxy_sg_line(&snap, &ws);
        let sources = proxy_sg.field("ingress").matches("sg-").count();
        assert_eq!(sources, if on { 2 } else { 1 }, "{what}: {proxy_sg}");
        ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
    }
    // A removal killed before lambda-env puts the function back: rollback
    // (not resume) still restores it from the recorded old value.
    edited(true);
    ws.run(&["run", "--yes"]).ok();
    edited(false);
    kill_at(&ws, &["run", "--yes"], "lambda-env", "before-apply");
    assert_eq!(
        function_variable(&emu, &reports, "DB_HOST").as_ref(),
        Some(&endpoint),
        "killed before it was put back"
    );
    ws.run(&["rollback", "--yes"]).ok();
    assert_same(
        &before,
        &snapshot(&emu, &ws),
        "rollback after killed updates",
    );
}

/// A replacement (`--allow-replace`: the proxy renamed) killed at each
/// boundary: the new proxy's create and wait, its target, the functions'
/// move, the invoke check, and the deletion of the old ones. `resume
/// --allow-replace` finishes it with exactly one proxy (the runbook's), no
/// function ever on anything but the DB or a live proxy that admits it and
/// that its policy allows, and nothing of the old one left; a rollback of a
/// replacement killed half way deletes both proxies and puts every variable
/// back.
#[test]
fn a_replacement_killed_anywhere_resumes_with_one_proxy_and_no_stranded_function() {
    let emu = Emulator::start();
    let ws = emu.workspace("crepl");
    let p = ws.prefix.clone();
    let app = ws.env["DB_APP_FUNCTION_NAME"].clone();
    let db_host = function_variable(&emu, &app, "DB_HOST").unwrap();
    let before = snapshot(&emu, &ws);
    ws.run(&["run", "--yes"]).ok();
    let paths = Paths {
        proxy_sg: ws.output("proxy-security-group", "group_id"),
        policy_arn: ws.output("connect-policy", "arn"),
        functions: [(
            app.clone(),
            (
                ws.env["DB_APP_FUNCTION_SG_ID"].clone(),
                ws.env["DB_APP_FUNCTION_ROLE_NAME"].clone(),
            ),
        )]
        .into_iter()
        .collect(),
    };
    let name = |second: bool| match second {
        true => format!("{p}-db-v2"),
        false => format!("{p}-db"),
    };
    let renamed = |second: bool| {
        ws.write_runbook(|s| match second {
            true => edit(
                &s,
                "name = \"${env.DB_NAME}\"",
                "name = \"${env.DB_NAME}-v2\"",
            ),
            false => s,
        })
    };
    let mut second = false;
    for (step, point) in [
        ("proxy", "before-apply"),
        ("proxy", "wait"),
        ("proxy", "after-apply"),
        ("targets", "after-apply"),
        ("lambda-env", "before-apply"),
        ("lambda-env", "after-apply"),
        ("invoke-check", "after-apply"),
        ("targets", "before-retire"),
        ("proxy", "before-retire"),
        ("proxy", "after-retire"),
    ] {
        second = !second;
        renamed(second);
        let what = format!("replacement (to {}) killed at {step}:{point}", name(second));
        let watch = HostWatch::start_with(
            &emu,
            std::slice::from_ref(&app),
            "DB_HOST",
            &db_host,
            Some(paths.clone()),
        );
        kill_at(&ws, &["run", "--yes", "--allow-replace"], step, point);
        ws.run(&["resume", "--yes", "--allow-replace"]).ok();
        watch.assert_always_working(&what);
        let snap = snapshot(&emu, &ws);
        let proxies: Vec<&String> = snap.keys().filter(|k| k.starts_with("db proxy ")).collect();
        assert_eq!(proxies, [&format!("db proxy {}", name(second))], "{what}");
        assert_eq!(
            function_variable(&emu, &app, "DB_HOST"),
            Some(ws.output("proxy", "endpoint")),
            "{what}"
        );
        let state = ws.state_json();
        for (step, rec) in state["steps"].as_object().unwrap() {
            assert!(rec.get("retired").is_none(), "{what}: {step} kept {rec}");
        }
        let policy = snap[&format!("iam policy {p}-connect")].field("versions");
        let default = policy.split("default=true").nth(1).unwrap_or_default();
        let default = default.split("default=").next().unwrap_or_default();
        assert_eq!(
            default.matches("prx-").count(),
            1,
            "{what}: narrowed: {policy}"
        );
        ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
    }
    // Killed half way, then rolled back instead: both proxies go, and the
    // variable gets the DB back from wherever it pointed.
    for (step, point) in [("proxy", "after-apply"), ("lambda-env", "after-apply")] {
        second = !second;
        renamed(second);
        kill_at(&ws, &["run", "--yes", "--allow-replace"], step, point);
        ws.run(&["rollback", "--yes"]).ok();
        assert_same(
            &before,
            &snapshot(&emu, &ws),
            &format!("rollback of a replacement killed at {step}:{point}"),
        );
        ws.run(&["run", "--yes"]).ok();
    }
}

/// A replacement stopped half way (the new proxy made, the function not
/// moved yet) and the edit undone: `resume` goes back to the old proxy,
/// which the state kept, and deletes the new one; nothing of either is
/// lost or left.
#[test]
fn a_replacement_undone_half_way_goes_back_to_the_old_proxy() {
    let emu = Emulator::start();
    let ws = emu.workspace("cback");
    let p = ws.prefix.clone();
    let app = ws.env["DB_APP_FUNCTION_NAME"].clone();
    let before = snapshot(&emu, &ws);
    ws.run(&["run", "--yes"]).ok();
    let (endpoint, id) = (ws.output("proxy", "endpoint"), ws.output("proxy", "id"));
    ws.write_edited("name = \"${env.DB_NAME}\"", "name = \"${env.DB_NAME}-v2\"");
    kill_at(
        &ws,
        &["run", "--yes", "--allow-replace"],
        "lambda-env",
        "before-apply",
    );
    let proxies = |snap: &Snapshot| snap.keys().filter(|k| k.starts_with("db proxy ")).count();
    assert_eq!(proxies(&snapshot(&emu, &ws)), 2, "the new one was made");
    ws.write_runbook(|s| s);
    ws.run(&["resume", "--yes", "--allow-replace"])
        .ok()
        .stdout_has("back to the one a replacement left")
        .stdout_has("deleting what was replaced");
    let snap = snapshot(&emu, &ws);
    assert_eq!(proxies(&snap), 1, "{snap:#?}");
    assert!(snap.contains_key(&format!("db proxy {p}-db")), "{snap:#?}");
    assert_eq!(ws.output("proxy", "id"), id, "the old one, kept");
    assert_eq!(function_variable(&emu, &app, "DB_HOST"), Some(endpoint));
    let state = ws.state_json();
    for (step, rec) in state["steps"].as_object().unwrap() {
        assert!(rec.get("retired").is_none(), "{step} kept {rec}");
    }
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
    ws.run(&["rollback", "--yes"]).ok();
    assert_same(&before, &snapshot(&emu, &ws), "rollback after going back");
}
