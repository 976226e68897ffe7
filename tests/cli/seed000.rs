//! Seed 000's own system, shipped as runbooks/seed-000-mass-emailing.toml
//! and seeded by `seed.py --system seed-000`: its plan reproduces the
//! figures seed 000 works out by hand, and it runs, re-runs without a
//! change and rolls back exactly.

use super::*;

/// The five functions, each as seed 000 caps it, as the budget reads them.
const CAPS: [(&str, i64, &str); 5] = [
    ("csv-import", 5, "reserved concurrency 5"),
    ("mail-send", 4, "SQS maximum concurrency 4"),
    ("workflow-complete", 1, "reserved concurrency 1"),
    ("completion-poll", 1, "reserved concurrency 1"),
    ("dlq", 1, "reserved concurrency 1"),
];

/// The plan's budget against seed 000's figures: 5 + 4 + 3 = 12 clients,
/// `max_connections` from its table for db.t3.medium, a pool of half.
fn assert_seed_000_budget(ws: &Workspace, max_connections: i64) {
    let out = ws.run(&["plan", "--output", "json"]);
    out.ok();
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let b = &plan["budget"];
    assert_eq!(b["instance_class"], "db.t3.medium", "{b}");
    assert_eq!(b["max_connections"], max_connections, "{b}");
    assert!(
        b["max_connections_set_by"].is_null(),
        "the class's estimate: {b}"
    );
    assert_eq!(b["max_connections_percent"], 50, "{b}");
    assert_eq!(b["pool_ceiling"], max_connections / 2, "{b}");
    assert_eq!(b["clients_worst_case"], 12, "{b}");
    assert_eq!(b["fits"], true, "{b}");
    assert_eq!(b["headroom"], max_connections / 2 - 12, "{b}");
    let functions = b["functions"].as_array().unwrap();
    assert_eq!(functions.len(), CAPS.len(), "{b}");
    for (f, (name, worst, limited_by)) in functions.iter().zip(CAPS) {
        assert_eq!(f["name"], format!("{}-{name}", ws.prefix), "{b}");
        assert_eq!(f["worst_case"], worst, "{name}: {b}");
        assert_eq!(f["limited_by"], limited_by, "{name}: {b}");
    }
}

#[test]
fn seed_000_plans_its_own_figures_runs_reruns_and_rolls_back() {
    let emu = Emulator::start();
    let ws = emu.workspace_for(
        "seed000",
        "seed-000-mass-emailing.toml",
        &["--system", "seed-000"],
    );
    assert_seed_000_budget(&ws, 320);
    // The alarms seed 000 prescribes, from the same figures: 80% of 320,
    // the static surge thresholds from the 12 clients (in a region without
    // anomaly detection, as the emulator is told to be here).
    emu.configure(r#"{"anomaly_detection": false}"#);
    ws.run(&["plan"])
        .ok()
        .stdout_has(
            "Connection budget: db.t3.medium allows about 320 connections; the pool may use 50% = 160.",
        )
        .stdout_has("at worst 12 Lambda environments, each with a connection, against a pool of 160; headroom 148")
        .stdout_has("DatabaseConnections Maximum >= 256 ")
        .stdout_has("ClientConnections Maximum > 12 ")
        .stdout_has("anomaly detection is not offered here: DescribeAnomalyDetectors answered");

    let before = snapshot(&emu, &ws);
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has("✓ alarms created")
        .stdout_has("✓ invoke-check verified");
    let after = snapshot(&emu, &ws);
    let endpoint = ws.output("proxy", "endpoint");
    for (name, _, _) in CAPS {
        let function = after[&format!("lambda {}-{name}", ws.prefix)].field("env");
        assert!(
            function.contains(&format!(r#""DB_HOST": "{endpoint}""#))
                && function.contains(r#""DB_USER": "app_user""#),
            "{name}: {function}"
        );
    }
    let db = &after[&format!("alarm {}-proxy-database-connections", ws.prefix)];
    assert_eq!(db.field("threshold"), "Some(256.0)", "{db}");
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
    assert_same(&after, &snapshot(&emu, &ws), "a re-run changed something");
    ws.run(&["rollback", "--yes"]).ok();
    assert_same(&before, &snapshot(&emu, &ws), "rollback left a difference");
}

/// The PostgreSQL variant: seed 000's ~400 for db.t3.medium, a pool of 200.
#[test]
fn seed_000_on_postgresql_plans_its_own_figures() {
    let emu = Emulator::start();
    let ws = emu.workspace_for(
        "seed000_pg",
        "seed-000-mass-emailing.toml",
        &["--system", "seed-000", "--engine", "postgres"],
    );
    ws.write_runbook(|s| {
        edit(
            &edit(
                &s,
                "engine_family = \"MYSQL\"",
                "engine_family = \"POSTGRESQL\"",
            ),
            "port = 3306",
            "port = 5432",
        )
    });
    assert_seed_000_budget(&ws, 400);
    ws.run(&["plan"])
        .ok()
        .stdout_has("DatabaseConnections Maximum >= 320 ");
}
