//! Least privilege while functions move: a run that changes which DB user
//! each function connects as (one user -> several, a function joining, and
//! back: a function leaving) is watched all along, every role's policies
//! evaluated by the emulator's own IAM rules (tests/support/grants_watch.py):
//! no role may ever connect as a user, or to a proxy, that it could neither
//! before the run nor after it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::*;

/// What each role may connect as (proxy id, user) at one moment.
type Grants = BTreeMap<String, BTreeSet<(String, String)>>;

/// The grants watch, running until [`GrantsWatch::looks`].
struct GrantsWatch {
    child: Child,
    stop: std::path::PathBuf,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl GrantsWatch {
    /// Evaluates `roles` for `users` on `proxies` and every proxy seen;
    /// returns once the first look (the account before what follows) is in.
    fn start(emu: &Emulator, roles: &[&str], proxies: &[&str], users: &[&str]) -> GrantsWatch {
        let stop = temp_dir("grants-watch").join("stop");
        let mut child = Command::new(Path::new(ROOT).join("localstack/.venv/bin/python"))
            .arg(Path::new(ROOT).join("tests/support/grants_watch.py"))
            .arg(&stop)
            .args(["--roles", &roles.join(",")])
            .args(["--proxies", &proxies.join(",")])
            .args(["--users", &users.join(",")])
            .envs(emu.aws_env())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start grants_watch.py");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (out, shared) = (child.stdout.take().unwrap(), lines.clone());
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                shared.lock().unwrap().push(line);
            }
        });
        let started = std::time::Instant::now();
        while lines.lock().unwrap().is_empty() {
            assert!(
                started.elapsed() < PROCESS_LIMIT,
                "grants_watch.py took no look"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        GrantsWatch {
            child,
            stop,
            lines,
            reader: Some(reader),
        }
    }

    /// Stops the watch; every look it took, in order.
    fn looks(mut self) -> Vec<Grants> {
        std::fs::write(&self.stop, "").unwrap();
        let status = self.child.wait().unwrap();
        self.reader.take().unwrap().join().unwrap();
        assert!(
            status.success(),
            "grants_watch.py failed (its stderr is above)"
        );
        let lines = std::mem::take(&mut *self.lines.lock().unwrap());
        lines
            .iter()
            .map(|l| {
                let v: BTreeMap<String, Vec<(String, String)>> = serde_json::from_str(l).unwrap();
                v.into_iter()
                    .map(|(r, g)| (r, g.into_iter().collect()))
                    .collect()
            })
            .collect()
    }
}

/// A watch dropped without its looks (its test failed first) stops.
impl Drop for GrantsWatch {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.stop, "");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fails naming every moment a role could connect as something it could
/// neither at the first look (before the command) nor at the last (after).
#[track_caller]
fn never_more_than_before_or_after(what: &str, looks: &[Grants]) {
    assert!(
        looks.len() > 10,
        "{what}: the watch looked {} times",
        looks.len()
    );
    let (first, last) = (&looks[0], &looks[looks.len() - 1]);
    let mut extra = Vec::new();
    for (n, look) in looks.iter().enumerate() {
        for (role, grants) in look {
            for g in grants {
                if !first[role].contains(g) && !last[role].contains(g) {
                    extra.push(format!(
                        "look {n}: {role} may connect to {} as {}",
                        g.0, g.1
                    ));
                }
            }
        }
    }
    assert!(
        extra.is_empty(),
        "{what}: a transitional version granted more than the versions before and after \
         (before: {first:?}, after: {last:?}):\n{}",
        extra.join("\n")
    );
}

#[test]
fn no_role_may_connect_as_a_user_it_had_neither_before_nor_after_a_change_of_users() {
    let emu = Emulator::start();
    if !emu.has_rules("no_role_may_connect_as_a_user_it_had_neither_before_nor_after") {
        return;
    }
    let mut ws = emu.workspace_for(
        "grants_move",
        "cookbook-4.3-mysql.toml",
        &[
            "--extra-function",
            "reports:reader",
            "--extra-secret",
            "reader",
        ],
    );
    let before = snapshot(&emu, &ws);
    ws.run(&["run", "--yes"]).ok();
    let id = ws.output("proxy", "id");
    let p = &ws.prefix;
    let (book, reports) = (format!("{p}-lambda-role"), format!("{p}-reports-role"));
    let roles = [book.as_str(), reports.as_str()];
    let users = ["admin", "reader", "someone-else"];
    // The book's function as admin, the reports function (joining) as
    // reader: the book's unconditioned `dbuser:prx-…/*` must never reach
    // the reports function's role.
    let two_users = |s: String| {
        let s = edit(&s, "secret_arn = \"${env.RDS_SECRET_ARN}\"\n", "");
        let s = edit(
            &s,
            "env_var = \"DB_HOST\"\n",
            "env_var = \"DB_HOST\"\ndb_user = \"admin\"\n",
        );
        format!(
            "{s}\n[[auth]]\nsecret_arn = \"${{env.RDS_SECRET_ARN}}\"\nuser = \"admin\"\n\
             [[auth]]\nsecret_arn = \"${{env.READER_SECRET_ARN}}\"\nuser = \"reader\"\n\
             client_password_auth_type = \"MYSQL_NATIVE_PASSWORD\"\n\
             [[lambda]]\nfunction_name = \"${{env.REPORTS_FUNCTION_NAME}}\"\n\
             security_group_id = \"${{env.REPORTS_FUNCTION_SG_ID}}\"\ndb_user = \"reader\"\n"
        )
    };
    ws.write_runbook(two_users);
    // The plan says what the first pass writes and what the last one
    // narrows it to.
    ws.run(&["plan"])
        .ok()
        .stdout_has("for the roles it had, while the functions move)")
        .stdout_has("policy document: then, once every function has moved, -> ");
    let watch = GrantsWatch::start(&emu, &roles, &[&id], &users);
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has("connect-policy: updating in place: policy document: ")
        .stdout_has("connect-policy: now that every function has moved, removing what");
    let looks = watch.looks();
    never_more_than_before_or_after("one user -> two, a function joining", &looks);
    let last = &looks[looks.len() - 1];
    assert_eq!(
        last[&reports],
        BTreeSet::from([(id.clone(), "reader".to_string())]),
        "the joining function's role ends with its user only"
    );

    // Back to the book: the reports function leaves, the book's function
    // is `*` again. The leaving role never meets the new `*`: it is
    // detached before the narrowed version is written (each call slowed
    // down, so that a version written first would be seen).
    ws.write_runbook(|s| s);
    let layer = ws.behind_fault_layer(&emu);
    layer.latency(std::time::Duration::from_millis(150));
    let watch = GrantsWatch::start(&emu, &roles, &[&id], &users);
    ws.run(&["run", "--yes"]).ok();
    ws.set_endpoint(&emu.url);
    let looks = watch.looks();
    never_more_than_before_or_after("two users -> one, a function leaving", &looks);
    assert!(looks[looks.len() - 1][&reports].is_empty(), "{looks:?}");

    // A replacement: the version written while the function moves holds
    // both proxies, and the log says so (not the new one alone).
    ws.write_edited("name = \"${env.DB_NAME}\"", "name = \"${env.DB_NAME}-v2\"");
    let watch = GrantsWatch::start(&emu, &roles, &[&id], &users);
    let out = ws.run(&["run", "--yes", "--allow-replace"]);
    out.ok();
    let new_id = ws.output("proxy", "id");
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("connect-policy: updating in place: policy document: "))
        .unwrap_or_else(|| panic!("no update of the connect policy: {}", out.stdout));
    let (_, written) = line.split_once(" -> ").unwrap();
    let written = written.split(" (a new default version").next().unwrap();
    assert!(
        written.contains(&id) && written.contains(&new_id),
        "the version written holds both proxies: {line}"
    );
    assert!(
        line.contains("then, once every function has moved, -> "),
        "{line}"
    );
    let looks = watch.looks();
    never_more_than_before_or_after("a replacement", &looks);
    ws.run(&["rollback", "--yes"]).ok();
    assert_same(&before, &snapshot(&emu, &ws), "rollback left a difference");
}
