//! Crash points: the binary built with the `failpoints` feature aborts,
//! dead, at a named boundary of a step. For every step and every boundary:
//! `resume` then finishes with exactly one of each resource, and from the
//! same kill (made again in a second workspace) `rollback` leaves exactly
//! what was there before the run.

use std::os::unix::process::ExitStatusExt;

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
    ("lambda-ingress", &["before-apply", "after-apply"]),
    ("lambda-env", &["before-apply", "wait", "after-apply"]),
    ("invoke-check", &["before-apply", "after-apply"]),
];

/// Runs the whole recipe and dies at `step:point`.
fn kill_at(ws: &Workspace, step: &str, point: &str) {
    let out = ws
        .cmd(&["run", "--yes"])
        .env("RDS_PROXY_RUNBOOK_FAILPOINT", format!("{step}:{point}"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(6),
        "{step}:{point} did not abort the run: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ingress_rules(line: &str) -> usize {
    line.split(" egress=")
        .next()
        .unwrap()
        .matches("tcp:")
        .count()
}

/// Exactly one of each resource the recipe makes, and the function
/// pointing at the proxy.
#[track_caller]
fn assert_one_of_each(before: &Snapshot, after: &Snapshot, ws: &Workspace, what: &str) {
    let p = &ws.prefix;
    let added: Vec<&String> = after.keys().filter(|k| !before.contains_key(*k)).collect();
    let mut kinds: Vec<String> = added
        .iter()
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

fn crash_step(step: &str) {
    let emu = Emulator::start();
    let points = POINTS.iter().find(|(s, _)| *s == step).unwrap().1;
    for point in points {
        let what = format!("killed at {step}:{point}");
        // Kill, then resume: finishes with one of each.
        let ws = emu.workspace(&format!("c{}", point.len()));
        let before = snapshot(&emu, &ws);
        kill_at(&ws, step, point);
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
        let ws = emu.workspace(&format!("r{}", point.len()));
        let before = snapshot(&emu, &ws);
        kill_at(&ws, step, point);
        ws.run(&["rollback", "--yes"]).ok();
        assert_same(
            &before,
            &snapshot(&emu, &ws),
            &format!("{what}, then rollback"),
        );
    }
}

macro_rules! crash_tests {
    ($($name:ident => $step:literal),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                crash_step($step);
            }
        )*
        /// The list above covers every step the tool has.
        #[test]
        fn every_step_has_crash_points() {
            let tested = [$($step),*];
            assert_eq!(tested.len(), POINTS.len());
            let help = std::process::Command::new(BIN).args(["run", "--help"]).output().unwrap();
            assert!(help.status.success());
            for (step, _) in POINTS {
                assert!(tested.contains(step), "{step} has no crash test");
            }
        }
    };
}

crash_tests! {
    crash_proxy_role => "proxy-role",
    crash_secret_access => "secret-access",
    crash_proxy_security_group => "proxy-security-group",
    crash_proxy => "proxy",
    crash_connect_policy => "connect-policy",
    crash_db_ingress => "db-ingress",
    crash_targets => "targets",
    crash_lambda_ingress => "lambda-ingress",
    crash_lambda_env => "lambda-env",
    crash_invoke_check => "invoke-check",
}
