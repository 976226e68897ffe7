//! The way back from a state that cannot be read (a hand edit gone wrong, a
//! truncated copy, a merge): a copy of the last state this tool wrote, kept
//! beside a local state file, or an earlier version of a state in S3; and
//! what each way on means for rollback, since a state rebuilt from the
//! account holds everything as adopted, which rollback leaves in place.

use std::path::{Path, PathBuf};

/// Whether a text at a path reads as a state of the runbook (the state's
/// own parser, handed in: this module does not import the state back).
pub type Readable<'a> = &'a dyn Fn(&Path, &str) -> Result<(), String>;

/// The copy of the last state this tool wrote, beside a local state file:
/// `<state>.backup`. Written after the state at each save (so never ahead
/// of it), with the same atomic rename and mode; it holds what the state
/// holds, which is never a secret.
pub fn backup_path(state_path: &Path) -> PathBuf {
    let mut s = state_path.as_os_str().to_owned();
    s.push(".backup");
    PathBuf::from(s)
}

/// How to put back the backup of the local state `path`: `Ok(what to do)`
/// when it is `readable`; `Err(why there is none)`.
pub fn local_restore(path: &Path, readable: Readable) -> Result<String, String> {
    let backup = backup_path(path);
    let text = match std::fs::read_to_string(&backup) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "there is no copy of it to put back: {} does not exist",
                backup.display()
            ));
        }
        Err(e) => return Err(format!("its copy {} cannot be read: {e}", backup.display())),
    };
    if let Err(e) = readable(&backup, &text) {
        return Err(format!("its copy cannot be used either: {e}"));
    }
    let written = std::fs::metadata(&backup)
        .and_then(|m| m.modified())
        .map(|t| format!(", written {}", humantime::format_rfc3339_seconds(t)))
        .unwrap_or_default();
    Ok(format!(
        "put back the last state this tool wrote, kept beside it{written}: `cp -p {} {}`",
        backup.display(),
        path.display()
    ))
}

/// The ways on from a state of `runbook` that cannot be read, each with
/// what it means for rollback: `restore`, how to put back an earlier copy
/// (or why there is none); `aside`, the command that moves the broken one
/// out of the way; `remove`, the one that deletes it.
pub fn advice(runbook: &str, restore: Result<String, String>, aside: &str, remove: &str) -> String {
    let mut ways = Vec::new();
    let mut notes = Vec::new();
    match restore {
        Ok(how) => ways.push(format!(
            "{how}; the state is then as that write left it, and `rollback` deletes what it \
             records as made here (`resume` re-checks every step against the account)"
        )),
        Err(why) => notes.push(why),
    }
    ways.push(format!(
        "start a new state from the account: `{aside}`, then `rds-proxy-runbook run RUNBOOK \
         --adopt`: each step takes over what carries this runbook's tag, as adopted, so \
         `rollback` leaves all of it in place and only `rollback --include-adopted` deletes \
         it. The functions' old DB host values are lost with the state: give each [[lambda]] \
         a `restore_value` (the DB's endpoint) for rollback to put the function back"
    ));
    ways.push(format!(
        "delete by hand what carries the tag rds-proxy-runbook:runbook={runbook} (first point \
         the functions' variables back at the DB), then `{remove}`"
    ));
    let mut out = String::from("Ways on, and what each leaves to rollback");
    if !notes.is_empty() {
        out.push_str(&format!(" ({})", notes.join("; ")));
    }
    out.push(':');
    for (n, way) in ways.iter().enumerate() {
        out.push_str(&format!("\n  {}. {way}", n + 1));
    }
    out
}

/// [`advice`] for the local state file `path`.
pub fn local_advice(path: &Path, runbook: &str, readable: Readable) -> String {
    let shown = path.display();
    advice(
        runbook,
        local_restore(path, readable),
        &format!("mv {shown} {shown}.broken"),
        &format!("rm {shown}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::State;

    fn as_state(runbook: &str) -> impl Fn(&Path, &str) -> Result<(), String> + '_ {
        move |p, t| {
            State::parse(p, t, runbook)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rpr-recovery-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn each_way_on_says_what_rollback_does_after_it() {
        let text = advice("orders", Ok("put back X".into()), "mv s s.broken", "rm s");
        let ways: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(ways.len(), 3, "{text}");
        assert!(ways[0].starts_with("  1. put back X") && ways[0].contains("`rollback` deletes"));
        assert!(ways[1].contains("`mv s s.broken`, then `rds-proxy-runbook run RUNBOOK --adopt`"));
        assert!(ways[1].contains("`rollback` leaves all of it in place"));
        assert!(ways[1].contains("`rollback --include-adopted` deletes"));
        assert!(ways[1].contains("restore_value"));
        assert!(ways[2].contains("rds-proxy-runbook:runbook=orders") && ways[2].contains("`rm s`"));
        // Without a copy: said why, and the other two ways numbered from 1.
        let text = advice("orders", Err("no copy".into()), "mv", "rm");
        assert!(text.starts_with("Ways on, and what each leaves to rollback (no copy):"));
        assert!(text.contains("\n  1. start a new state") && text.contains("\n  2. delete"));
    }

    #[test]
    fn the_backup_is_offered_only_when_it_reads_as_this_runbooks_state() {
        let dir = tmpdir("backup");
        let path = dir.join("s.json");
        let missing = local_restore(&path, &as_state("rb")).unwrap_err();
        assert!(
            missing.contains("s.json.backup does not exist"),
            "{missing}"
        );
        std::fs::write(backup_path(&path), "{garbage").unwrap();
        let broken = local_restore(&path, &as_state("rb")).unwrap_err();
        assert!(broken.contains("cannot be used either"), "{broken}");
        State::new("other").save(&path).unwrap();
        let foreign = local_restore(&path, &as_state("rb")).unwrap_err();
        assert!(foreign.contains("belongs to runbook `other`"), "{foreign}");
        State::new("rb").save(&path).unwrap();
        let how = local_restore(&path, &as_state("rb")).unwrap();
        assert!(
            how.contains(&format!(
                "`cp -p {} {}`",
                backup_path(&path).display(),
                path.display()
            )) && how.contains("written 2"),
            "{how}"
        );
    }
}
