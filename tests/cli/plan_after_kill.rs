//! A plan after a killed run claims what `resume` then does. A step whose
//! inputs come from an unfinished step (the proxy still `modifying` after
//! an update, a replacement proxy still `creating`) is planned from what
//! the account says that step gives, never as an update to a placeholder.

use std::collections::BTreeMap;

use super::crash::kill_at;
use super::*;

/// Each step's action in `plan --output json`, as `resume --output json`
/// would report it if the plan holds: what the plan changes is `changed`,
/// what it finds done `unchanged`. Also the plan's text, for its details.
fn planned(ws: &Workspace, args: &[&str]) -> (BTreeMap<String, String>, String) {
    let out = ws.run(args);
    out.ok();
    let plan: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    let claims = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let result = match s["action"].as_str().unwrap() {
                "none" => "unchanged",
                "verify" => "verified",
                "create" | "finish" | "update" | "drift" | "replace" => "changed",
                other => other,
            };
            (s["name"].as_str().unwrap().to_string(), result.to_string())
        })
        .collect();
    (claims, out.stdout.clone())
}

/// Each step's result in `resume --output json`.
fn resumed(ws: &Workspace, args: &[&str]) -> BTreeMap<String, String> {
    let out = ws.run(args);
    out.ok();
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).expect("one JSON document");
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let name = s["name"].as_str().unwrap().to_string();
            (name, s["result"].as_str().unwrap().to_string())
        })
        .collect()
}

fn action<'p>(plan: &'p serde_json::Value, step: &str) -> &'p str {
    let steps = plan["steps"].as_array().unwrap();
    let s = steps.iter().find(|s| s["name"] == step).unwrap();
    s["action"].as_str().unwrap()
}

#[test]
fn a_plan_after_an_update_killed_while_the_proxy_modifies_claims_what_resume_does() {
    let emu = Emulator::start();
    let ws = emu.workspace("kmod");
    ws.run(&["run", "--yes"]).ok();
    // Long enough for the plan to see the proxy still modifying.
    emu.configure(r#"{"proxy_modifying": 8}"#);
    ws.write_runbook(|s| {
        edit(
            &s,
            "require_tls = true\n",
            "require_tls = true\nidle_client_timeout = 300\n",
        )
    });
    kill_at(&ws, &["run", "--yes"], "proxy", "wait");
    let (claims, text) = planned(&ws, &["plan", "--output", "json"]);
    let plan: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(action(&plan, "proxy"), "finish", "{text}");
    assert!(!text.contains("${steps."), "a placeholder planned: {text}");
    let done = resumed(&ws, &["resume", "--yes", "--output", "json"]);
    assert_eq!(claims, done, "the plan's claims against what resume did");
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
}

#[test]
fn a_plan_after_a_replacement_killed_while_the_new_proxy_creates_claims_what_resume_does() {
    let emu = Emulator::start();
    let ws = emu.workspace("kcre");
    let p = ws.prefix.clone();
    ws.run(&["run", "--yes"]).ok();
    let old_id = ws.output("proxy", "id");
    emu.configure(r#"{"proxy_creating": 8}"#);
    ws.write_edited("name = \"${env.DB_NAME}\"", "name = \"${env.DB_NAME}-v2\"");
    kill_at(&ws, &["run", "--yes", "--allow-replace"], "proxy", "wait");
    let (claims, text) = planned(&ws, &["plan", "--allow-replace", "--output", "json"]);
    let plan: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(action(&plan, "proxy"), "finish", "{text}");
    assert!(!text.contains("${steps."), "a placeholder planned: {text}");
    // The new proxy's own id and endpoint, read from the account.
    assert!(text.contains(&format!("{p}-db-v2.")), "{text}");
    assert!(text.contains("prx-"), "{text}");
    // The replacement under way is resumed without --allow-replace too (it
    // was given when it began): the plan without it claims the same.
    let (plain, text) = planned(&ws, &["plan", "--output", "json"]);
    assert_eq!(plain, claims, "{text}");
    let done = resumed(&ws, &["resume", "--yes", "--output", "json"]);
    assert_eq!(claims, done, "the plan's claims against what resume did");
    assert_ne!(ws.output("proxy", "id"), old_id);
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
}
