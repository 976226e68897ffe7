//! The pages of docs/ written from the code, each held to it by a test so
//! that it cannot drift (`RDS_PROXY_RUNBOOK_WRITE_DOCS=1 cargo test
//! reference` writes them again after a change): `docs/commands.md`, the
//! command reference, from the clap tree (`crate::command_tree`): every
//! command with its help, usage and options, and the exit codes; and the
//! table of every source file in `docs/layout.md`, from each file's own
//! `//!` header.

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
    if writing() {
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

/// Whether `RDS_PROXY_RUNBOOK_WRITE_DOCS` asks for the pages to be written.
fn writing() -> bool {
    std::env::var("RDS_PROXY_RUNBOOK_WRITE_DOCS").is_ok_and(|v| !v.is_empty())
}

/// Where the table of files begins and ends in docs/layout.md.
const FILES_START: &str = "<!-- files: written by `RDS_PROXY_RUNBOOK_WRITE_DOCS=1 cargo test \
                           reference` from each file's `//!` header; edit the headers, not \
                           this table -->";
const FILES_END: &str = "<!-- end of files -->";

/// A file's header: the first paragraph of its `//!` lines, on one line.
fn header(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map_while(|l| l.strip_prefix("//!"))
        .map(str::trim)
        .take_while(|l| !l.is_empty())
        .collect();
    lines.join(" ").replace('|', "\\|")
}

/// Whether `path` (under src/) holds only tests.
fn only_tests(path: &std::path::Path) -> bool {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    name == "tests.rs"
        || name.ends_with("_tests.rs")
        || path.components().any(|c| c.as_os_str() == "tests")
}

/// Every source file under `dir` but the tests', a folder's mod.rs first.
fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    let mut entries: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort_by_key(|p| (p.file_name().is_none_or(|n| n != "mod.rs"), p.clone()));
    for p in entries {
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") && !only_tests(&p) {
            out.push(p);
        }
    }
}

/// The table of every source file with its header.
fn files_table(root: &std::path::Path) -> String {
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    let mut out = String::from("| file | what it holds |\n|---|---|\n");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let rel = f.strip_prefix(root).unwrap().display().to_string();
        out.push_str(&format!("| `{rel}` | {} |\n", header(&text)));
    }
    out
}

#[test]
fn every_source_file_says_what_it_holds() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    let bare: Vec<String> = files
        .iter()
        .filter(|f| header(&std::fs::read_to_string(f).unwrap()).is_empty())
        .map(|f| f.display().to_string())
        .collect();
    assert!(bare.is_empty(), "files without a `//!` header: {bare:?}");
}

#[test]
fn the_layouts_table_of_files_is_current() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("docs/layout.md");
    let page = std::fs::read_to_string(&path).unwrap();
    let (Some(start), Some(end)) = (page.find(FILES_START), page.find(FILES_END)) else {
        panic!("docs/layout.md lacks the markers of its table of files");
    };
    let now = format!(
        "{}{FILES_START}\n\n{}\n{}",
        &page[..start],
        files_table(root),
        &page[end..]
    );
    if writing() {
        std::fs::write(&path, &now).unwrap();
        return;
    }
    assert!(
        now == page,
        "docs/layout.md's table of files is not what the files' headers say: run \
         `RDS_PROXY_RUNBOOK_WRITE_DOCS=1 cargo test --features failpoints reference` and commit it"
    );
}
