//! The version `--version` prints: the package's version and the commit it
//! was built from, `0.1.0 (51228bf)`, as `RDS_PROXY_RUNBOOK_VERSION`.
//!
//! The commit comes from `git rev-parse --short HEAD` when the crate is the
//! root of its own git checkout; else from the `.cargo_vcs_info.json` that
//! `cargo package` writes into a crate's tarball; else the version stands
//! alone (a copy without either, or no git on the machine). A crate
//! unpacked inside some other checkout does not take that checkout's
//! commit: the checkout's top must be this crate's folder.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let version = std::env::var("CARGO_PKG_VERSION").expect("cargo sets it");
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let commit = from_git(&dir).or_else(|| from_vcs_info(&dir));
    let full = match commit {
        Some(commit) => format!("{version} ({commit})"),
        None => version,
    };
    println!("cargo:rustc-env=RDS_PROXY_RUNBOOK_VERSION={full}");
    println!("cargo:rerun-if-changed=build.rs");
    // (Only a file that exists: one that does not would rerun this script,
    // and rebuild the crate, at every build.)
    if dir.join(".cargo_vcs_info.json").exists() {
        println!("cargo:rerun-if-changed=.cargo_vcs_info.json");
    }
}

/// The short commit of the checkout whose top is `dir`, and the files to
/// watch so a new commit or another branch rebuilds with the new id.
fn from_git(dir: &Path) -> Option<String> {
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    if std::fs::canonicalize(top).ok()? != std::fs::canonicalize(dir).ok()? {
        return None;
    }
    // HEAD (a worktree has its own), the branch it points at, and the
    // packed refs a branch may live in: `--git-path` finds each, in a
    // worktree too.
    let mut watch = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watch.push(branch);
    }
    for name in watch {
        if let Some(path) = git(dir, &["rev-parse", "--git-path", &name]) {
            let path = dir.join(path);
            // A path that does not exist would rerun the script each build.
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }
    git(dir, &["rev-parse", "--short", "HEAD"])
}

/// The commit `cargo package` recorded in a crate's tarball.
fn from_vcs_info(dir: &Path) -> Option<String> {
    let info = std::fs::read_to_string(dir.join(".cargo_vcs_info.json")).ok()?;
    let after = &info[info.find("\"sha1\"")? + "\"sha1\"".len()..];
    let start = after.find('"')? + 1;
    let sha1 = &after[start..];
    let sha1 = &sha1[..sha1.find('"')?];
    (sha1.len() >= 7 && sha1.chars().all(|c| c.is_ascii_hexdigit())).then(|| sha1[..7].to_string())
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}
