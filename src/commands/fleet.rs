//! A fleet: `run`, `resume`, `plan`, `status` or `rollback` of several
//! runbooks in one command (files, or folders of them). Each keeps its own
//! state and lock; up to `--parallel` run at once, each as its own command
//! would, and one's failure stops the others only with `--fail-fast`.
//! Their waits share their looks per account and region (see `rounds`),
//! their calls one rate limit per service and place (see `aws`).
//!
//! Before anything is called, the runbooks are read and compared: two
//! that would act on the same thing (a name, a state, a proxy, a
//! function's variable) are refused by `run` and `resume`, and shown by
//! the others.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;
use futures_util::StreamExt;
use indicatif::{MultiProgress, ProgressDrawTarget};
use serde_json::{Value, json};

use crate::aws::{Place, env_var};
use crate::cli::{Fleet, Output, Selection};
use crate::commands::plan::PlanHow;
use crate::commands::{plan, rollback, run, status};
use crate::engine::runner::RunHow;
use crate::error::{
    EXIT_BAD_INPUT, EXIT_CHANGES, EXIT_INTERRUPTED, EXIT_LOCKED, EXIT_STEP_FAILED, Failure, code_of,
};
use crate::open::{EnvMode, Options, load_runbook, state_place};
use crate::runbook::{self, Runbook};
use crate::ui::progress::{self, Member};
use crate::ui::prompt::confirm;

/// What each runbook of the fleet does.
pub enum Job<'a> {
    /// `run` or `resume` (`how.resume`).
    Run {
        select: &'a Selection,
        how: RunHow,
    },
    Plan {
        how: PlanHow,
    },
    Status {
        history: bool,
    },
    Rollback {
        to: Option<&'a str>,
        yes: bool,
        include_adopted: bool,
    },
}

impl Job<'_> {
    fn verb(&self) -> &'static str {
        match self {
            Job::Run { how, .. } if how.resume => "resume",
            Job::Run { .. } => "run",
            Job::Plan { .. } => "plan",
            Job::Status { .. } => "status",
            Job::Rollback { .. } => "rollback",
        }
    }

    /// Whether it may change the account (and so is asked for once).
    fn acts(&self) -> bool {
        matches!(self, Job::Run { .. } | Job::Rollback { .. })
    }
}

/// The one path given, when it is one runbook file (not a fleet).
pub fn single(paths: &[PathBuf]) -> Option<&Path> {
    match paths {
        [one] if !one.is_dir() => Some(one),
        _ => None,
    }
}

/// The runbook files named: files as given, a folder's `*.toml` files in
/// name order; each once.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| {
                    Failure::usage(format!("cannot read the folder {}: {e}", p.display()))
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file() && f.extension().is_some_and(|x| x == "toml"))
                .collect();
            if found.is_empty() {
                return Err(Failure::usage(format!(
                    "the folder {} holds no runbook (*.toml)",
                    p.display()
                )));
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    files.retain(|f| seen.insert(std::fs::canonicalize(f).unwrap_or_else(|_| f.clone())));
    Ok(files)
}

/// The proxies AWS allows in one account and region (the default quota).
pub const PROXY_QUOTA: usize = 20;

/// What two or more runbooks of the fleet share that they must not: each
/// as (refused by `run`/`resume`?, what, the fix). Pure: from the
/// runbooks and where they act.
pub fn collisions(fleet: &[(&Path, &Runbook, Place, String)]) -> Vec<(bool, String)> {
    let mut found = Vec::new();
    let shown = |p: &Path| p.display().to_string();
    let mut by: BTreeMap<(&str, String), Vec<&Path>> = BTreeMap::new();
    for (path, rb, place, state) in fleet {
        by.entry(("name", rb.name.clone())).or_default().push(path);
        by.entry(("state", state.clone())).or_default().push(path);
        if let Some(p) = rb.proxy.name.literal() {
            by.entry(("proxy", format!("DB proxy {p} ({place})")))
                .or_default()
                .push(path);
        }
        for l in &rb.lambdas {
            let Some(f) = l.function_name.literal() else {
                continue;
            };
            for var in std::iter::once(&l.env_var).chain(&l.read_env_var) {
                by.entry(("variable", format!("{var} of Lambda {f} ({place})")))
                    .or_default()
                    .push(path);
            }
        }
    }
    for ((kind, what), paths) in &by {
        if paths.len() < 2 {
            continue;
        }
        let who = paths
            .iter()
            .map(|p| shown(p))
            .collect::<Vec<_>>()
            .join(", ");
        found.push(match *kind {
            "name" => (
                true,
                format!(
                    "{who} are all named `{what}`: they would share one state and one ownership \
                     tag; give each its own `name`"
                ),
            ),
            "state" => (
                true,
                format!(
                    "{who} keep their state in one place ({what}); give each its own `[state]`"
                ),
            ),
            "proxy" => (
                true,
                format!(
                    "{who} all name {what}: each would change the other's; keep it in one runbook"
                ),
            ),
            _ => (
                true,
                format!(
                    "{who} all set {what}: the last to run would win; keep the function in one \
                     runbook"
                ),
            ),
        });
    }
    let mut per_place: BTreeMap<&Place, usize> = BTreeMap::new();
    for (_, _, place, _) in fleet {
        *per_place.entry(place).or_default() += 1;
    }
    for (place, n) in per_place {
        if n > PROXY_QUOTA {
            found.push((
                false,
                format!(
                    "{n} runbooks make a proxy in {place}: more than \
                     AWS's default quota of {PROXY_QUOTA} proxies per account and region (ask \
                     for more through Service Quotas, or spread them)"
                ),
            ));
        }
    }
    found
}

/// How one runbook of the fleet ended.
struct Ended {
    path: PathBuf,
    name: String,
    /// None: never started (`--fail-fast` after a failure).
    code: Option<i32>,
    error: Option<String>,
    account: Option<String>,
    region: Option<String>,
    changes: Option<usize>,
    seconds: f64,
    report: Option<Value>,
}

impl Ended {
    fn not_started(path: &Path, name: String) -> Ended {
        Ended {
            path: path.to_path_buf(),
            name,
            code: None,
            error: None,
            account: None,
            region: None,
            changes: None,
            seconds: 0.0,
            report: None,
        }
    }

    fn result(&self) -> &'static str {
        match self.code {
            None => "not started",
            Some(0) => "ok",
            Some(EXIT_CHANGES) => "changes",
            Some(EXIT_LOCKED) => "locked",
            Some(EXIT_INTERRUPTED) => "stopped",
            Some(_) => "failed",
        }
    }
}

pub async fn fleet(paths: &[PathBuf], job: Job<'_>, fleet: Fleet, opts: &Options) -> Result<()> {
    let verb = job.verb();
    if opts.state.is_some() {
        return Err(Failure::usage(
            "--state names one state, and a fleet has one per runbook: set each runbook's \
             `[state]` (or leave it beside the runbook)",
        ));
    }
    let files = expand(paths)?;
    let mode = match job {
        Job::Status { .. } | Job::Rollback { .. } => EnvMode::Lenient,
        _ => EnvMode::Strict,
    };
    // Every runbook read and checked before any call: a bad one stops the
    // fleet with nothing changed.
    let mut books = Vec::new();
    let mut bad = Vec::new();
    for f in &files {
        match load_runbook(f, mode) {
            Ok(rb) => books.push(rb),
            Err(e) => bad.push(format!("{}: {}", f.display(), runbook::render(&e, false))),
        }
    }
    if !bad.is_empty() {
        return Err(Failure::bad_input(format!(
            "{} of the fleet's {} runbooks cannot be used; nothing was done:\n{}",
            bad.len(),
            files.len(),
            bad.join("\n")
        )));
    }
    let mut described = Vec::new();
    for (f, rb) in files.iter().zip(&books) {
        let state = state_place(rb, opts)?.to_string();
        described.push((
            f.as_path(),
            rb,
            Place::expected(&opts.aws, rb.aws(), &env_var),
            state,
        ));
    }
    let clashes = collisions(&described);
    let refused = matches!(job, Job::Run { .. });
    if refused && clashes.iter().any(|(refuse, _)| *refuse) {
        return Err(Failure::bad_input(format!(
            "the fleet's runbooks collide; nothing was done:\n  {}",
            clashes
                .iter()
                .map(|(_, c)| c.as_str())
                .collect::<Vec<_>>()
                .join("\n  ")
        )));
    }
    for (_, c) in &clashes {
        progress::say_line(format!("warning: {c}"));
    }
    if job.acts() {
        let yes = match &job {
            Job::Run { how, .. } => how.yes,
            Job::Rollback { yes, .. } => *yes,
            _ => true,
        };
        let names: Vec<&str> = books.iter().map(|b| b.name.as_str()).collect();
        confirm(
            &format!(
                "{} {} runbooks ({}), up to {} at once; each checks the account before acting. \
                 Continue?",
                capitalized(verb),
                books.len(),
                names.join(", "),
                fleet.parallel
            ),
            yes,
        )?;
    }

    let width = books.iter().map(|b| b.name.len()).max().unwrap_or(0);
    let live = job.acts()
        && !opts.no_progress
        && !progress::to_stderr()
        && std::io::stdout().is_terminal();
    let multi = live.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stdout()));
    let keep = matches!(job, Job::Plan { .. } | Job::Status { .. });
    let stop = std::sync::atomic::AtomicBool::new(false);
    let started = Instant::now();
    let job = &job;
    let (stop, multi) = (&stop, multi.as_ref());
    let runs = described.iter().map(|(path, rb, place, _)| async move {
        let name = rb.name.clone();
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            return Ended::not_started(path, name);
        }
        let member = Member::new(&name, width, keep, multi);
        let t0 = Instant::now();
        let profile = opts.aws.profile.clone().or_else(|| rb.profile.clone());
        let command = crate::aws::with_profile(profile, one(job, path, opts));
        let outcome = member.clone().scope(command).await;
        let seconds = t0.elapsed().as_secs_f64();
        let (kept, report, account) = member.finish();
        let (code, error) = match &outcome {
            Ok(()) => (0, None),
            Err(e) => (code_of(e), Some(error_text(e))),
        };
        if code != 0 && code != EXIT_CHANGES && fleet.fail_fast {
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            // The others stop as Ctrl-C stops one: after the call in
            // flight, with the state saved.
            crate::poll::interrupt();
        }
        // What the command found, else what the fleet could tell.
        let said = |key: &str| {
            let value = report.as_ref()?.get(key)?.as_str()?;
            Some(value.to_string())
        };
        let account = account.or_else(|| said("account"));
        let region = said("region").or_else(|| Some(place.region.clone()).filter(|r| r != "?"));
        let changes = report.as_ref().and_then(|r| changes_in(job, r));
        let ended = Ended {
            path: path.to_path_buf(),
            name,
            code: Some(code),
            error,
            account,
            region,
            changes,
            seconds,
            report,
        };
        ended.show(width, keep.then_some(&kept[..]), multi);
        ended
    });
    let ended: Vec<Ended> = futures_util::stream::iter(runs)
        .buffered(usize::from(fleet.parallel))
        .collect()
        .await;
    let code = fleet_code(job, &ended);
    match opts.output {
        Output::Json => progress::emit_json(&fleet_json(verb, &ended, code, started.elapsed())),
        Output::Text => summary(&ended, started.elapsed()),
    }
    match code {
        0 => Ok(()),
        EXIT_CHANGES => Err(Failure::Changes.into()),
        _ => Err(Failure::Fleet(code).into()),
    }
}

fn capitalized(verb: &str) -> String {
    let mut c = verb.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// The runbook's own command, as it would run alone (asked once for the
/// fleet), its JSON document kept for the fleet's summary.
async fn one(job: &Job<'_>, path: &Path, opts: &Options) -> Result<()> {
    let output = match job {
        Job::Run { .. } | Job::Rollback { .. } => Output::Json,
        _ => opts.output,
    };
    let opts = Options {
        aws: opts.aws.clone(),
        state: None,
        no_progress: opts.no_progress,
        output,
    };
    match job {
        Job::Run { select, how } => {
            let how = RunHow { yes: true, ..*how };
            run::run(path, select, how, None, &opts).await
        }
        Job::Plan { how } => {
            let how = PlanHow {
                output,
                detailed_exitcode: true,
                ..*how
            };
            plan::plan(path, how, None, &opts).await
        }
        Job::Status { history } => status::status(path, *history, &opts).await,
        Job::Rollback {
            to,
            include_adopted,
            ..
        } => rollback::rollback(path, *to, true, *include_adopted, &opts).await,
    }
}

fn error_text(e: &anyhow::Error) -> String {
    match e.downcast_ref::<runbook::RunbookError>() {
        Some(rb) => runbook::render(rb, false),
        None => format!("{e:#}"),
    }
}

/// What a runbook changed, from its command's JSON document.
fn changes_in(job: &Job<'_>, report: &Value) -> Option<usize> {
    let label = match job {
        Job::Run { .. } => "changed",
        Job::Rollback { .. } => "undone",
        _ => return None,
    };
    Some(report["summary"][label].as_u64().unwrap_or(0) as usize)
}

impl Ended {
    /// A runbook's end, as it comes: its kept lines as one block (`plan`,
    /// `status`), its error, its result.
    fn show(&self, width: usize, kept: Option<&[String]>, multi: Option<&MultiProgress>) {
        let (name, code, seconds) = (&self.name, self.code.unwrap_or(0), self.seconds);
        let mut out = Vec::new();
        if let Some(kept) = kept {
            out.push(format!("== {name}"));
            out.extend(kept.iter().cloned());
        }
        let prefix = format!("{name:<width$} |");
        if let Some(e) = &self.error
            && code != EXIT_CHANGES
        {
            for (i, l) in e.lines().enumerate() {
                out.push(match i {
                    0 => format!("{prefix} error: {l}"),
                    _ => format!("{prefix}   {l}"),
                });
            }
        }
        let mark = match code {
            0 | EXIT_CHANGES => "✓",
            _ => "✗",
        };
        out.push(format!("{prefix} {mark} done in {seconds:.1}s"));
        for l in out {
            match multi {
                Some(m) => {
                    let _ = m.println(l);
                }
                None => progress::say_line(l),
            }
        }
    }
}

/// The fleet's exit code: 0 when every runbook succeeded; else 1 when one
/// failed, 4 when the only trouble is a lock, 130 when they were stopped;
/// `plan` 6 when every runbook could be planned and one has changes.
fn fleet_code(job: &Job<'_>, ended: &[Ended]) -> i32 {
    let codes: Vec<i32> = ended.iter().filter_map(|e| e.code).collect();
    let troubles: Vec<i32> = codes
        .iter()
        .copied()
        .filter(|c| *c != 0 && *c != EXIT_CHANGES)
        .collect();
    let detailed = matches!(job, Job::Plan { how } if how.detailed_exitcode);
    if troubles.is_empty() {
        return match codes.contains(&EXIT_CHANGES) && detailed {
            true => EXIT_CHANGES,
            false => 0,
        };
    }
    if troubles.iter().all(|c| *c == EXIT_LOCKED) {
        EXIT_LOCKED
    } else if troubles.iter().all(|c| *c == EXIT_INTERRUPTED) {
        EXIT_INTERRUPTED
    } else if troubles.iter().all(|c| *c == EXIT_BAD_INPUT) {
        EXIT_BAD_INPUT
    } else {
        EXIT_STEP_FAILED
    }
}

fn summary(ended: &[Ended], took: Duration) {
    let rows: Vec<[String; 6]> = ended
        .iter()
        .map(|e| {
            [
                e.name.clone(),
                e.account.clone().unwrap_or_else(|| "-".into()),
                e.region.clone().unwrap_or_else(|| "-".into()),
                e.result().to_string(),
                e.changes.map_or("-".into(), |c| c.to_string()),
                format!("{:.1}s", e.seconds),
            ]
        })
        .collect();
    let head = ["RUNBOOK", "ACCOUNT", "REGION", "RESULT", "CHANGES", "TIME"].map(String::from);
    let mut widths = [0usize; 6];
    for r in std::iter::once(&head).chain(&rows) {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    progress::say_line(String::new());
    for r in std::iter::once(&head).chain(&rows) {
        let cells: Vec<String> = r
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        progress::say_line(cells.join("  ").trim_end().to_string());
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for e in ended {
        *counts.entry(e.result()).or_default() += 1;
    }
    let counts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    progress::say_line(format!(
        "{} runbooks in {:.1}s: {}",
        ended.len(),
        took.as_secs_f64(),
        counts.join(", ")
    ));
}

fn fleet_json(verb: &str, ended: &[Ended], code: i32, took: Duration) -> Value {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let runbooks: Vec<Value> = ended
        .iter()
        .map(|e| {
            *counts.entry(e.result()).or_default() += 1;
            json!({
                "file": e.path.display().to_string(),
                "runbook": e.name,
                "account": e.account,
                "region": e.region,
                "result": e.result(),
                "exit_code": e.code,
                "changes": e.changes,
                "seconds": (e.seconds * 1000.0).round() / 1000.0,
                "error": e.error,
                "report": e.report,
            })
        })
        .collect();
    json!({
        "command": verb,
        "fleet": true,
        "result": if code == 0 || code == EXIT_CHANGES { "ok" } else { "failed" },
        "exit_code": code,
        "seconds": (took.as_secs_f64() * 1000.0).round() / 1000.0,
        "summary": counts,
        "runbooks": runbooks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cookbook's runbook as `file`, named `name`, for `proxy` and
    /// `function`, in `region`.
    fn book(
        file: &str,
        name: &str,
        proxy: &str,
        function: &str,
        region: &str,
    ) -> (PathBuf, Runbook) {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks/cookbook-4.3-mysql.toml"),
        )
        .unwrap()
        .replacen(
            "name = \"cookbook-4-3\"",
            &format!("name = \"{name}\"\nregion = \"{region}\""),
            1,
        );
        let env = |k: &str| {
            Some(
                match k {
                    "VPC_ID" => "vpc-0a1b2c3d4e5f60718",
                    "ISOLATED_SUBNETS" => "subnet-0aaaaaaaaaaaaaaaa subnet-0bbbbbbbbbbbbbbbb",
                    "RDS_SG" | "DB_APP_FUNCTION_SG_ID" => "sg-0dddddddddddddddd",
                    "RDS_SECRET_ARN" => {
                        "arn:aws:secretsmanager:us-east-1:123456789012:secret:s-AbC"
                    }
                    "DB_NAME" => proxy,
                    "DB_APP_FUNCTION_NAME" => function,
                    _ => "db1",
                }
                .to_string(),
            )
        };
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("runbooks")
            .join(file);
        let rb = Runbook::parse(&path, &text, &env, &crate::steps::Catalogue).expect("a runbook");
        (path, rb)
    }

    fn clashes(books: &[(PathBuf, Runbook)]) -> Vec<(bool, String)> {
        let aws = crate::aws::AwsOptions {
            profile: Some("p".into()),
            region: None,
            endpoint_url: None,
        };
        let described: Vec<_> = books
            .iter()
            .map(|(p, rb)| {
                (
                    p.as_path(),
                    rb,
                    Place::expected(&aws, rb.aws(), &|_| None),
                    format!("{}.state", rb.name),
                )
            })
            .collect();
        collisions(&described)
    }

    #[test]
    fn runbooks_that_share_a_proxy_a_variable_or_a_name_collide() {
        let a = book("a.toml", "a", "p1", "f1", "r1");
        let b = book("b.toml", "b", "p2", "f2", "r1");
        assert!(clashes(&[a.clone(), b]).is_empty());
        // The same proxy name: in one region a collision, in two not.
        let found = clashes(&[a.clone(), book("c.toml", "c", "p1", "f3", "r1")]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].0 && found[0].1.contains("DB proxy p1"),
            "{found:?}"
        );
        assert!(clashes(&[a.clone(), book("c.toml", "c", "p1", "f3", "r2")]).is_empty());
        // The same function's variable.
        let found = clashes(&[a.clone(), book("d.toml", "d", "p4", "f1", "r1")]);
        assert!(
            found
                .iter()
                .any(|(_, c)| c.contains("DB_HOST of Lambda f1")),
            "{found:?}"
        );
        // The same name: one state, one tag.
        let found = clashes(&[a, book("e.toml", "a", "p5", "f5", "r1")]);
        assert!(
            found.iter().any(|(_, c)| c.contains("all named `a`")),
            "{found:?}"
        );
    }

    fn ended(code: Option<i32>) -> Ended {
        Ended {
            code,
            ..Ended::not_started(Path::new("x"), "x".into())
        }
    }

    #[test]
    fn the_fleets_exit_code_says_all_ok_some_failed_or_locked() {
        let select = Selection::default();
        let run = Job::Run {
            select: &select,
            how: RunHow::default(),
        };
        let code = |codes: &[Option<i32>]| {
            fleet_code(&run, &codes.iter().map(|c| ended(*c)).collect::<Vec<_>>())
        };
        assert_eq!(code(&[Some(0), Some(0)]), 0);
        assert_eq!(code(&[Some(0), Some(1), Some(0)]), 1);
        assert_eq!(code(&[Some(0), Some(4)]), 4);
        assert_eq!(code(&[Some(4), Some(1)]), 1);
        assert_eq!(code(&[Some(1), None]), 1);
        assert_eq!(code(&[Some(130), Some(130)]), 130);
    }
}
