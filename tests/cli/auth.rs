//! End-to-end IAM authentication (`default_auth_scheme = "IAM_AUTH"`): the
//! proxy logs in to the DB with IAM. The emulator reports the target
//! AUTH_FAILURE unless the proxy's role may `rds-db:connect` on the DB's
//! resource id as the user, and the DB has IAM database authentication on;
//! so a run that ends with a healthy target proves the grant.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::*;

fn proxy_line(emu: &Emulator, ws: &Workspace) -> Resource {
    snapshot(emu, ws)[&format!("db proxy {}-db", ws.prefix)].clone()
}

fn role_line(emu: &Emulator, ws: &Workspace, role: &str) -> Resource {
    let snap = snapshot(emu, ws);
    snap.iter()
        .find(|(k, _)| k.starts_with("iam role ") && k.ends_with(role))
        .unwrap_or_else(|| panic!("no role {role}: {snap:?}"))
        .1
        .clone()
}

/// The shipped Aurora runbook: no secret anywhere, the proxy's role allowed
/// to connect to the cluster's `cluster-` id as app_user, a reader endpoint
/// whose host the function gets in DB_READ_HOST; a re-run changes nothing;
/// rollback leaves exactly what was there (the endpoint gone, DB_READ_HOST
/// unset again).
#[test]
fn the_aurora_runbook_logs_in_with_iam_reruns_and_rolls_back() {
    // The recipe's steps but alarms (the Aurora runbook leaves them out),
    // and proxy-endpoints: as many as the cookbook's.
    const STEPS: usize = ALL_STEPS;
    let emu = Emulator::start();
    let ws = emu.workspace_for(
        "e2e_iam",
        "aurora-postgresql-iam.toml",
        &["--engine", "aurora-postgresql", "--iam-db-auth"],
    );
    let before = snapshot(&emu, &ws);
    ws.run(&["preflight"])
        .ok()
        .stdout_has("IAM database authentication on (end-to-end IAM)")
        .stdout_has("CREATE USER app_user; GRANT rds_iam TO app_user;");
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has("end-to-end IAM")
        .stdout_has(&format!("Done: {} step(s) applied", STEPS - 1));
    let proxy = proxy_line(&emu, &ws);
    assert_eq!(proxy.field("auth_scheme"), "Some(\"IAM_AUTH\")", "{proxy}");
    assert_eq!(proxy.field("secrets"), "[]", "{proxy}");
    let role = role_line(&emu, &ws, "-proxy-role");
    let inline = role.field("inline");
    assert!(
        inline.contains("rds-db:connect")
            && inline.contains(":dbuser:cluster-")
            && inline.contains("/app_user"),
        "{role}"
    );
    // The reader endpoint, and its host in DB_READ_HOST beside DB_HOST.
    let p = ws.prefix.to_lowercase();
    let env = snapshot(&emu, &ws)[&format!("lambda {}-db-app", ws.prefix)].clone();
    let env = env.field("env");
    assert!(
        env.contains(&format!("\"DB_READ_HOST\": \"{p}-db-ro.endpoint.proxy-"))
            && env.contains("\"DB_HOST\": \"")
            && env.contains(".db-proxy-"),
        "{env}"
    );
    assert!(
        !role.to_string().contains("secretsmanager"),
        "no secret to read: {role}"
    );
    ws.run(&["doctor"]).ok().stdout_has("end-to-end IAM");
    let after = snapshot(&emu, &ws);
    ws.run(&["run", "--yes"]).ok().stdout_has(&format!(
        "No changes: {STEPS} step(s) checked, all already done"
    ));
    assert_same(&after, &snapshot(&emu, &ws), "the re-run changed something");
    ws.run(&["rollback", "--yes"])
        .ok()
        .stdout_has(&format!("Rolled back {STEPS} step(s)."));
    assert_same(&before, &snapshot(&emu, &ws), "rollback left a difference");
}

/// Polls the proxy's target health until dropped, remembering every state
/// that is not AVAILABLE or REGISTERING.
struct HealthWatch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<(usize, Vec<String>)>>,
}

impl HealthWatch {
    fn start(emu: &Emulator, proxy: &str) -> HealthWatch {
        let config = emu.sdk_config();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let proxy = proxy.to_string();
        let thread = std::thread::spawn(move || {
            runtime().block_on(async move {
                let rds = aws_sdk_rds::Client::new(&config);
                let (mut looks, mut bad) = (0, Vec::new());
                while !flag.load(Ordering::Relaxed) {
                    let call = rds.describe_db_proxy_targets().db_proxy_name(&proxy);
                    if let Ok(out) = call.send().await {
                        looks += 1;
                        for t in out.targets() {
                            let Some(h) = t.target_health() else { continue };
                            let state = h.state().map(|s| s.as_str()).unwrap_or("?");
                            if state != "AVAILABLE" && state != "REGISTERING" {
                                bad.push(format!(
                                    "{state} {:?}: {:?}",
                                    h.reason(),
                                    h.description()
                                ));
                            }
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (looks, bad)
            })
        });
        HealthWatch {
            stop,
            thread: Some(thread),
        }
    }

    fn assert_always_healthy(mut self, what: &str) {
        self.stop.store(true, Ordering::Relaxed);
        let (looks, bad) = self.thread.take().unwrap().join().unwrap();
        assert!(
            looks > 5,
            "{what}: the target was looked at {looks} time(s) only"
        );
        assert!(
            bad.is_empty(),
            "{what}: the proxy could not log in: {bad:?}"
        );
    }
}

/// The book's proxy moved to end-to-end IAM and its secret dropped in one
/// edit: changed in place (the same proxy), and the proxy never loses its
/// way in meanwhile: the role keeps reading the secret until the proxy logs
/// in with IAM, and only then, in the run's second pass, loses that grant.
#[test]
fn the_books_proxy_moves_to_end_to_end_iam_in_place_without_losing_its_login() {
    let emu = Emulator::start();
    let mut ws = emu.workspace_for("to_iam", "cookbook-4.3-mysql.toml", &["--iam-db-auth"]);
    // The function connects as the secret's user first; with end-to-end
    // IAM, as the DB's IAM-enabled user (the seed's app_user), which the
    // operator switches to with the move, as on AWS.
    let function = ws.env["DB_APP_FUNCTION_NAME"].clone();
    set_function_variable(&emu, &function, "DB_USER", Some("admin"));
    let before = snapshot(&emu, &ws);
    ws.run(&["run", "--yes"]).ok();
    let first = proxy_line(&emu, &ws);
    assert_eq!(first.field("auth_scheme"), "Some(\"NONE\")", "{first}");
    ws.write_runbook(|s| {
        let s = edit(&s, "secret_arn = \"${env.RDS_SECRET_ARN}\"\n", "");
        edit(
            &s,
            "iam_auth = \"REQUIRED\"\n",
            "iam_auth = \"REQUIRED\"\ndefault_auth_scheme = \"IAM_AUTH\"\n",
        )
    });
    ws.run(&["plan"])
        .ok()
        .stdout_has("default auth scheme: NONE -> IAM_AUTH")
        .stdout_has("secret: arn:aws:secretsmanager:")
        .stdout_has("rds-db:connect");
    // Every call a little slower, as AWS's are: the window in which a
    // wrong order would leave the proxy without a login is wide enough
    // for the watch to see.
    set_function_variable(&emu, &function, "DB_USER", Some("app_user"));
    let layer = ws.behind_fault_layer(&emu);
    layer.latency(Duration::from_millis(60));
    let watch = HealthWatch::start(&emu, &format!("{}-db", ws.prefix));
    let out = ws.run(&["run", "--yes"]);
    watch.assert_always_healthy("the move to end-to-end IAM");
    out.ok()
        .stdout_has("proxy: updating in place: default auth scheme: NONE -> IAM_AUTH")
        .stdout_has("then, once the proxy has moved, -> ")
        .stdout_has(
            "secret-access: now that every function has moved, removing what the runbook \
             no longer wants",
        );
    let now = proxy_line(&emu, &ws);
    assert_eq!(now.field("auth_scheme"), "Some(\"IAM_AUTH\")", "{now}");
    assert_eq!(now.field("secrets"), "[]", "{now}");
    assert_eq!(
        first.field("arn"),
        now.field("arn"),
        "the same proxy, not a new one"
    );
    let role = role_line(&emu, &ws, "-proxy-role");
    let inline = role.field("inline");
    assert!(
        inline.contains("rds-db:connect") && inline.contains(":dbuser:db-"),
        "{role}"
    );
    assert!(!role.to_string().contains("GetSecretValue"), "{role}");
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
    ws.run(&["rollback", "--yes"]).ok();
    set_function_variable(&emu, &function, "DB_USER", Some("admin"));
    assert_same(&before, &snapshot(&emu, &ws), "rollback left a difference");
}

/// Preflight refuses end-to-end IAM on a DB without IAM database
/// authentication, with the command that turns it on, before any change.
#[test]
fn end_to_end_iam_on_a_db_without_iam_auth_is_refused_before_any_change() {
    let emu = Emulator::start();
    let ws = emu.workspace_for("iam_off", "cookbook-4.3-mysql.toml", &[]);
    ws.write_runbook(|s| {
        edit(
            &s,
            "iam_auth = \"REQUIRED\"\n",
            "iam_auth = \"REQUIRED\"\ndefault_auth_scheme = \"IAM_AUTH\"\n",
        )
    });
    let before = snapshot(&emu, &ws);
    let out = ws.run(&["run", "--yes"]);
    out.code(5)
        .stdout_has("has IAM database authentication off")
        .stdout_has(&format!(
            "aws rds modify-db-instance --db-instance-identifier {}-db \
             --enable-iam-database-authentication",
            ws.prefix.to_lowercase()
        ));
    assert_same(
        &before,
        &snapshot(&emu, &ws),
        "a refused run changed something",
    );
}

/// The book's proxy given a second DB user: its one secret moved into two
/// [[auth]] entries and a second function connecting as the new user. The
/// proxy changes in place (the same ARN) to both secrets; the emulator
/// reports the target healthy only if the proxy's role may read each of
/// them, so a healthy target proves secret-access granted both; the
/// connect policy lets each function's role connect as its own user only.
/// A re-run changes nothing; rollback leaves exactly what was there.
#[test]
fn a_second_db_user_gets_its_secret_and_each_function_its_own_user() {
    let emu = Emulator::start();
    let ws = emu.workspace_for(
        "two_users",
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
    let first = proxy_line(&emu, &ws);
    // Each secret's user in its [[auth]] entry: `first` for the book's.
    let two_users = |first: &str| {
        let first = first.to_string();
        move |s: String| {
            let s = edit(&s, "secret_arn = \"${env.RDS_SECRET_ARN}\"\n", "");
            let s = edit(
                &s,
                "env_var = \"DB_HOST\"\n",
                &format!("env_var = \"DB_HOST\"\ndb_user = \"{first}\"\n"),
            );
            format!(
                "{s}\n[[auth]]\nsecret_arn = \"${{env.RDS_SECRET_ARN}}\"\nuser = \"{first}\"\n\
                 [[auth]]\nsecret_arn = \"${{env.READER_SECRET_ARN}}\"\nuser = \"reader\"\n\
                 client_password_auth_type = \"MYSQL_NATIVE_PASSWORD\"\n\
                 [[lambda]]\nfunction_name = \"${{env.REPORTS_FUNCTION_NAME}}\"\n\
                 security_group_id = \"${{env.REPORTS_FUNCTION_SG_ID}}\"\ndb_user = \"reader\"\n"
            )
        }
    };
    // A user its secret does not log in as: refused before any change,
    // without the secret's own username shown.
    ws.write_runbook(two_users("app"));
    let out = ws.run(&["run", "--yes"]);
    out.code(5)
        .stdout_has("does not log in as `app`, the user its [[auth]] entry names")
        .stdout_has("give auth[0].secret_arn the secret of `app`");
    assert!(!out.stdout.contains("admin"), "{}", out.stdout);
    assert_eq!(
        proxy_line(&emu, &ws),
        first,
        "a refused run changed the proxy"
    );
    ws.write_runbook(two_users("admin"));
    ws.run(&["plan"])
        .ok()
        .stdout_has("secrets: arn:aws:secretsmanager:")
        .stdout_has("-reader-secret")
        .stdout_has("each role its own user");
    ws.run(&["run", "--yes"])
        .ok()
        .stdout_has("proxy: updating in place: secrets: ");
    let now = proxy_line(&emu, &ws);
    assert_eq!(
        first.field("arn"),
        now.field("arn"),
        "the same proxy, not a new one"
    );
    let secrets = now.field("secrets");
    assert!(
        secrets.contains("-db-secret") && secrets.contains("-reader-secret"),
        "{now}"
    );
    let role = role_line(&emu, &ws, "-proxy-role");
    let inline = role.field("inline");
    assert!(
        inline.contains("-db-secret") && inline.contains("-reader-secret"),
        "the proxy's role reads both secrets: {role}"
    );
    // The connect policy: admin for the book's function's role, reader for
    // the reports function's, nothing for anyone else.
    let snap = snapshot(&emu, &ws);
    let policy = snap
        .iter()
        .find(|(k, _)| k.starts_with("iam policy ") && k.ends_with("-connect"))
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no connect policy: {snap:?}"));
    let default = policy
        .field("versions")
        .split("default=true ")
        .nth(1)
        .unwrap_or_else(|| panic!("no default version: {policy}"));
    for (user, role) in [("admin", "-lambda-role"), ("reader", "-reports-role")] {
        let at = default
            .find(&format!("/{user}"))
            .unwrap_or_else(|| panic!("no statement for {user}: {default}"));
        let statement = &default[at..];
        let statement = &statement[..statement.find("}}").unwrap_or(statement.len())];
        assert!(
            statement.contains("aws:PrincipalArn") && statement.contains(role),
            "{user} is for {role} only: {statement}"
        );
    }
    assert!(
        !default.contains("/*"),
        "no function connects as any user: {default}"
    );
    ws.run(&["run", "--yes"]).ok().stdout_has("No changes");
    ws.run(&["rollback", "--yes"]).ok();
    assert_same(&before, &snapshot(&emu, &ws), "rollback left a difference");
}
