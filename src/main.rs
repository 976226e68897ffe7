//! The binary: parses the command line (`cli`), sets up tracing and the
//! output, runs the command (one runbook or a fleet) and exits with the
//! code of its failure (`error::code_of`).

mod actions;
mod answers;
mod arn;
mod aws;
mod budget;
mod cli;
mod commands;
mod db;
mod engine;
mod error;
mod failpoint;
mod limits;
mod open;
mod poll;
mod preflight;
mod probe;
mod proxy_logs;
#[cfg(test)]
mod reference;
mod rounds;
mod runbook;
mod state;
mod steps;
mod template;
mod ui;
mod validate;

use crate::cli::{Cli, Command};
use crate::commands::fleet::{self, Job};
use crate::commands::{adopt, doctor, init, plan, rollback, run, status, transfer, unlock};
use crate::engine::runner::RunHow;
use crate::error::{EXIT_INTERRUPTED, Failure};
use crate::open::Options;
use crate::ui::progress;

/// The command tree, with the exit codes in its help.
fn command_tree() -> clap::Command {
    <Cli as clap::CommandFactory>::command().after_help(error::exit_codes_help())
}

fn main() {
    // Die quietly when the reader goes away (`status | head`), as Unix
    // tools do, instead of panicking on a broken pipe.
    // SAFETY: called before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = {
        use clap::FromArgMatches;
        let matches = command_tree().get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    };
    init_tracing(cli.global.verbose);
    let code = match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            let code = error::code_of(&e);
            // An exit code that is an answer, not a failure, says nothing.
            let answer = e.downcast_ref::<Failure>().is_some_and(Failure::is_answer);
            if !answer {
                match e.downcast_ref::<runbook::RunbookError>() {
                    // The runbook's lines, each value marked (colours on a
                    // terminal, unless NO_COLOR).
                    Some(rb) => {
                        use std::io::IsTerminal;
                        let color = std::io::stderr().is_terminal()
                            && std::env::var_os("NO_COLOR").is_none();
                        eprint!("error: {}", runbook::render(rb, color));
                    }
                    None => eprint!("{}", error::for_terminal(&e)),
                }
            }
            if progress::to_stderr() && !progress::json_printed() {
                // --output json stopped before its document: one that says why.
                progress::emit_json(&serde_json::json!({
                    "result": "error",
                    "exit_code": code,
                    "error": format!("{e:#}"),
                }));
            }
            code
        }
    };
    std::process::exit(code);
}

fn init_tracing(verbose: u8) {
    let filter = match verbose {
        0 => return,
        1 => "rds_proxy_runbook=debug,aws_smithy_runtime::client::orchestrator=debug",
        2 => "rds_proxy_runbook=trace,aws_config=debug,aws_smithy_runtime=debug",
        _ => "trace",
    };
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // https://no-color.org: spinners (console) honour it too.
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .init();
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let g = cli.global;
    let opts = Options {
        aws: aws::AwsOptions {
            profile: g.profile,
            region: g.region,
            endpoint_url: g.endpoint_url,
        },
        state: g.state,
        no_progress: g.no_progress,
        output: match &cli.command {
            Command::Plan { output, .. }
            | Command::Run { output, .. }
            | Command::Resume { output, .. }
            | Command::Status { output, .. }
            | Command::Probe { output, .. }
            | Command::Rollback { output, .. } => *output,
            _ => Default::default(),
        },
    };
    if opts.output == cli::Output::Json {
        progress::human_to_stderr();
    }
    // No AWS call and no runtime needed: keeps these fast.
    match &cli.command {
        Command::Completions { shell } => {
            let mut cmd = command_tree();
            let name = cmd.get_name().to_string();
            clap_complete::generate(*shell, &mut cmd, name, &mut std::io::stdout());
            return Ok(());
        }
        Command::Man => {
            let cmd = command_tree();
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
            return Ok(());
        }
        _ => {}
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        watch_ctrl_c();
        let outcome = command(&cli.command, &opts).await;
        state::s3::release_all().await;
        outcome
    })
}

/// The command that needs AWS, run to its end (whatever the outcome).
async fn command(command: &Command, opts: &Options) -> anyhow::Result<()> {
    match command {
        Command::Init(args) => init::init(args, opts).await,
        Command::Plan {
            runbooks,
            output,
            detailed_exitcode,
            out,
            allow_replace,
            fleet: together,
        } => {
            let how = plan::PlanHow {
                output: *output,
                detailed_exitcode: *detailed_exitcode,
                allow_replace: *allow_replace,
            };
            match fleet::single(runbooks) {
                Some(one) => plan::plan(one, how, out.as_deref(), opts).await,
                None if out.is_some() => Err(one_only("plan --out")),
                None => fleet::fleet(runbooks, Job::Plan { how }, *together, opts).await,
            }
        }
        Command::Adopt { runbook, yes, tag } => adopt::adopt(runbook, *yes, *tag, opts).await,
        Command::Preflight { runbook } => commands::preflight::preflight(runbook, opts).await,
        Command::Doctor { runbook } => doctor::doctor(runbook, opts).await,
        Command::Probe { runbook, .. } => commands::probe::probe(runbook, opts).await,
        Command::Permissions {
            runbook,
            command,
            allow_replace,
        } => commands::permissions::permissions(runbook, *command, *allow_replace, opts).await,
        Command::Run {
            runbooks,
            select,
            yes,
            confirm,
            adopt,
            plan,
            allow_replace,
            fleet: together,
            ..
        } => {
            let how = RunHow {
                yes: *yes,
                ask: *confirm,
                adopt: *adopt,
                resume: false,
                allow_replace: *allow_replace,
            };
            match fleet::single(runbooks) {
                Some(one) => run::run(one, select, how, plan.as_deref(), opts).await,
                None if plan.is_some() => Err(one_only("run --plan")),
                None if *confirm => Err(one_only("run --confirm")),
                None => fleet::fleet(runbooks, Job::Run { select, how }, *together, opts).await,
            }
        }
        Command::Resume {
            runbooks,
            yes,
            allow_replace,
            fleet: together,
            ..
        } => {
            let how = RunHow {
                yes: *yes,
                resume: true,
                allow_replace: *allow_replace,
                ..Default::default()
            };
            let select = Default::default();
            match fleet::single(runbooks) {
                Some(one) => run::run(one, &select, how, None, opts).await,
                None => {
                    fleet::fleet(
                        runbooks,
                        Job::Run {
                            select: &select,
                            how,
                        },
                        *together,
                        opts,
                    )
                    .await
                }
            }
        }
        Command::Rollback {
            runbooks,
            to,
            yes,
            include_adopted,
            fleet: together,
            ..
        } => match fleet::single(runbooks) {
            Some(one) => rollback::rollback(one, to.as_deref(), *yes, *include_adopted, opts).await,
            None => {
                let job = Job::Rollback {
                    to: to.as_deref(),
                    yes: *yes,
                    include_adopted: *include_adopted,
                };
                fleet::fleet(runbooks, job, *together, opts).await
            }
        },
        Command::Status {
            runbooks,
            history,
            fleet: together,
            ..
        } => match fleet::single(runbooks) {
            Some(one) => status::status(one, *history, opts).await,
            None => {
                fleet::fleet(runbooks, Job::Status { history: *history }, *together, opts).await
            }
        },
        Command::Unlock { runbook, force } => unlock::unlock(runbook, force, opts).await,
        Command::State(cli::StateCommand::Push { runbook, to }) => {
            transfer::push(runbook, to, opts).await
        }
        Command::State(cli::StateCommand::Pull { runbook, from }) => {
            transfer::pull(runbook, from, opts).await
        }
        Command::Completions { .. } | Command::Man => {
            unreachable!("handled above")
        }
    }
}

/// An option that names one runbook's file, given with several.
fn one_only(what: &str) -> anyhow::Error {
    error::Failure::usage(format!(
        "`{what}` works on one runbook at a time; give one runbook file, or leave it out"
    ))
}

/// First Ctrl-C: let the call in flight finish, save, and stop. Second:
/// exit at once (the state on disk is always a complete file).
fn watch_ctrl_c() {
    tokio::spawn(async {
        if tokio::signal::ctrl_c().await.is_ok() {
            poll::interrupt();
            eprintln!("\nstopping after the current AWS call (press Ctrl-C again to quit now)");
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("quitting now; `run` or `resume` continues from what the account holds");
                // The state's S3 lock, if any, is not left behind (a few
                // seconds at most: quitting now is what was asked).
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(3),
                    state::s3::release_all(),
                )
                .await;
                std::process::exit(EXIT_INTERRUPTED);
            }
        }
    });
}
