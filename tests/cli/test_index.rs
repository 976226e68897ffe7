//! docs/tests.md's index, from behaviour to test: each test of this
//! binary with its doc comment (its name, where it has none), written from
//! these files so it cannot drift. `RDS_PROXY_RUNBOOK_WRITE_DOCS=1 cargo
//! test --features failpoints --test cli test_index` writes it again.

use std::path::{Path, PathBuf};

use super::*;

const BEGIN: &str = "<!-- index: written by tests/cli/test_index.rs -->";
const END: &str = "<!-- /index -->";

/// The doc comment above line `at` (attributes skipped), joined.
fn doc_above(lines: &[&str], at: usize) -> String {
    let mut doc = Vec::new();
    for l in lines[..at].iter().rev() {
        let l = l.trim();
        if let Some(text) = l.strip_prefix("///") {
            doc.push(text.trim());
        } else if !l.starts_with("#[") {
            break;
        }
    }
    doc.reverse();
    doc.join(" ")
}

/// One row per test: its area (the file), what it shows, its name.
fn rows() -> Vec<(String, String, String)> {
    let dir = Path::new(ROOT).join("tests/cli");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let area = file.file_stem().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if l.trim() != "#[test]" {
                continue;
            }
            let Some(name) = lines[i + 1..]
                .iter()
                .find_map(|l| l.trim().strip_prefix("fn "))
                .and_then(|rest| rest.split('(').next())
            else {
                continue;
            };
            if name.starts_with('$') {
                continue; // a macro's: its invocations are listed below
            }
            let doc = doc_above(&lines, i);
            let what = if doc.is_empty() {
                name.replace('_', " ")
            } else {
                doc
            };
            out.push((area.clone(), what, name.to_string()));
        }
        // `crash_tests!`'s invocations: `local, in_s3 => "step"`.
        for l in &lines {
            let Some((names, step)) = l.trim().split_once(" => ") else {
                continue;
            };
            let Some((local, s3)) = names.split_once(", ") else {
                continue;
            };
            if !local.starts_with("crash_") {
                continue;
            }
            let step = step.trim_end_matches(',').trim_matches('"');
            out.push((
                area.clone(),
                format!(
                    "every crash point of `{step}` killed on a run, then resumed or rolled \
                     back, and on a rollback, then rolled back again (`{s3}`: the state in S3 \
                     with its lock)"
                ),
                local.to_string(),
            ));
        }
    }
    out
}

fn index() -> String {
    let mut out = format!("{BEGIN}\n\n| area | what it shows | test |\n|---|---|---|\n");
    for (area, what, name) in rows() {
        let what = what.replace('|', "\\|");
        out.push_str(&format!("| {area} | {what} | `{area}::{name}` |\n"));
    }
    out.push_str(END);
    out
}

#[test]
fn the_test_index_is_current() {
    let path = Path::new(ROOT).join("docs/tests.md");
    let page = std::fs::read_to_string(&path).unwrap();
    let (Some(from), Some(to)) = (page.find(BEGIN), page.find(END)) else {
        panic!("docs/tests.md has no {BEGIN} ... {END} section");
    };
    let now = &page[from..to + END.len()];
    let want = index();
    if std::env::var("RDS_PROXY_RUNBOOK_WRITE_DOCS").is_ok_and(|v| !v.is_empty()) {
        std::fs::write(&path, page.replacen(now, &want, 1)).unwrap();
        return;
    }
    assert!(
        now == want,
        "docs/tests.md's index is not what tests/cli says: run \
         `RDS_PROXY_RUNBOOK_WRITE_DOCS=1 cargo test --features failpoints --test cli \
         test_index` and commit it"
    );
}
