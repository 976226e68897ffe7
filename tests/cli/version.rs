//! `--version`: the package's version and the commit it was built from
//! (build.rs).

use super::*;

#[test]
fn version_names_the_commit_it_was_built_from() {
    let out = std::process::Command::new(BIN)
        .arg("--version")
        .bounded_output();
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    let dir = env!("CARGO_MANIFEST_DIR");
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8(o.stdout).unwrap().trim().to_string())
    };
    let top = git(&["rev-parse", "--show-toplevel"]);
    let same = |a: &str| std::fs::canonicalize(a).ok();
    if top.is_some_and(|top| same(&top) == same(dir)) {
        // A checkout: the commit this binary was built from is HEAD (the
        // build reruns when HEAD or its branch moves).
        let head = git(&["rev-parse", "--short", "HEAD"]).unwrap();
        assert_eq!(printed, format!("rds-proxy-runbook {version} ({head})\n"));
    } else {
        // A crate's tarball names the commit it was packaged from, if any.
        assert!(
            printed.starts_with(&format!("rds-proxy-runbook {version}")),
            "{printed}"
        );
    }
}
