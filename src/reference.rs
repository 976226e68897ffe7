//! `docs/commands.md`, the command reference, written from the clap tree
//! (`crate::command_tree`): every command with its help, usage and
//! options, and the exit codes. A test holds the page to the tree, so it
//! cannot drift; `RDS_PROXY_RUNBOOK_WRITE_DOCS=1 cargo test reference`
//! writes it again after a change.

use clap::{Arg, Command};

/// One option or argument as a table row: its spelling, then its help.
fn row(arg: &Arg) -> Option<String> {
    if arg.is_hide_set() || ["help", "version"].contains(&arg.get_id().as_str()) {
        return None;
    }
    let values: Vec<String> = arg
        .get_value_names()
        .map(|v| v.iter().map(|n| format!("<{n}>")).collect())
        .unwrap_or_default();
    let mut spelled = match (arg.get_short(), arg.get_long()) {
        (Some(s), Some(l)) => format!("-{s}, --{l}"),
        (None, Some(l)) => format!("--{l}"),
        (Some(s), None) => format!("-{s}"),
        (None, None) => values.join(" "),
    };
    if arg.get_long().is_some() && arg.get_action().takes_values() {
        let name = if values.is_empty() {
            format!("<{}>", arg.get_id().as_str().to_uppercase())
        } else {
            values.join(" ")
        };
        spelled = format!("{spelled} {name}");
    }
    let help = arg
        .get_long_help()
        .or(arg.get_help())
        .map(|h| h.to_string())
        .unwrap_or_default()
        .replace('\n', " ")
        .replace('|', "\\|");
    let possible: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| format!("`{}`", v.get_name()))
        .collect();
    let mut extra = String::new();
    let help = if help.is_empty() || help.ends_with(['.', ')', ':']) {
        help
    } else {
        format!("{help}.")
    };
    if !possible.is_empty() && arg.get_action().takes_values() {
        extra.push_str(&format!(" One of {}.", possible.join(", ")));
    }
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|d| d.to_string_lossy().into_owned())
        .collect();
    if !defaults.is_empty() && arg.get_action().takes_values() {
        extra.push_str(&format!(" Default: `{}`.", defaults.join(" ")));
    }
    let spelled = spelled.replace('|', "\\|");
    Some(format!("| `{spelled}` | {help}{extra} |"))
}

fn section(out: &mut String, cmd: &Command, path: &str) {
    out.push_str(&format!("\n## `{path}`\n\n"));
    let about = cmd
        .get_long_about()
        .or(cmd.get_about())
        .map(|a| a.to_string())
        .unwrap_or_default();
    out.push_str(about.trim());
    out.push_str("\n\n```\n");
    let usage = cmd.clone().bin_name(path).render_usage().to_string();
    out.push_str(usage.trim_start_matches("Usage: "));
    out.push_str("\n```\n");
    let rows: Vec<String> = cmd
        .get_arguments()
        .filter(|a| !a.is_global_set())
        .filter_map(row)
        .collect();
    if !rows.is_empty() {
        out.push_str("\n| option | what it does |\n|---|---|\n");
        for r in rows {
            out.push_str(&r);
            out.push('\n');
        }
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        section(out, sub, &format!("{path} {}", sub.get_name()));
    }
}

/// The whole page.
pub fn markdown(cmd: &Command) -> String {
    let mut cmd = cmd.clone();
    cmd.build();
    let name = cmd.get_name().to_string();
    let mut out = format!(
        "# Command reference\n\n<!-- Written by `RDS_PROXY_RUNBOOK_WRITE_DOCS=1 cargo test \
         reference` from the command tree (src/cli.rs): edit the doc comments there, not \
         this page. -->\n\n{}\n\nGlobal options, before or after the command:\n\n\
         | option | what it does |\n|---|---|\n",
        cmd.get_about().map(|a| a.to_string()).unwrap_or_default()
    );
    for r in cmd
        .get_arguments()
        .filter(|a| a.is_global_set() || cmd.get_subcommands().count() == 0)
        .filter_map(row)
    {
        out.push_str(&r);
        out.push('\n');
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        section(&mut out, sub, &format!("{name} {}", sub.get_name()));
    }
    out.push_str("\n## Exit codes\n\n| code | meaning |\n|---|---|\n");
    for (code, meaning) in crate::error::EXIT_CODES {
        out.push_str(&format!("| {code} | {meaning} |\n"));
    }
    out
}

#[test]
fn the_command_reference_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/commands.md");
    let page = markdown(&crate::command_tree());
    if std::env::var("RDS_PROXY_RUNBOOK_WRITE_DOCS").is_ok_and(|v| !v.is_empty()) {
        std::fs::write(path, &page).unwrap();
        return;
    }
    let now = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        now == page,
        "docs/commands.md is not what the command tree says: run \
         `RDS_PROXY_RUNBOOK_WRITE_DOCS=1 cargo test --features failpoints reference` and commit it"
    );
}
