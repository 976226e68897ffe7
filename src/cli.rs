//! The command tree, and nothing else.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Put Amazon RDS Proxy in front of an RDS database for AWS Lambda, as a
/// runbook you can run step by step, resume, and roll back.
#[derive(Debug, Parser)]
// (`main` adds the exit codes to the help, from `error::EXIT_CODES`.)
// The version names the commit it was built from (see build.rs).
#[command(name = "rds-proxy-runbook", version = env!("RDS_PROXY_RUNBOOK_VERSION"))]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// AWS profile to use (else AWS_PROFILE, else the default chain).
    #[arg(long, global = true)]
    pub profile: Option<String>,

    /// AWS region (else AWS_REGION, the profile, or the runbook's `region`).
    #[arg(long, global = true)]
    pub region: Option<String>,

    /// Send every AWS call to this endpoint, e.g. a local emulator
    /// (AWS_ENDPOINT_URL works too).
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,

    /// The state file, or s3://BUCKET/KEY for a state a team shares (with a
    /// lock object KEY.lock) [default: the runbook's [state] table, else
    /// .rds-proxy-runbook/<name>.state.json beside the runbook].
    #[arg(long, global = true, value_name = "PATH|S3_URL")]
    pub state: Option<PathBuf>,

    /// More detail on stderr (-v: the tool's own trace, -vv: AWS SDK calls).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Plain timestamped lines instead of spinners.
    #[arg(long, global = true)]
    pub no_progress: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a runbook filled in from the account: the DB's VPC, subnets,
    /// security group, port, engine family and managed secret, and each
    /// function's role, security group and DB host variable. Reads only;
    /// review the file, then `plan` it.
    Init(InitArgs),
    /// Take over what the account already holds under the runbook's names
    /// but this tool never made (a setup made by hand, the cookbook's):
    /// shows what each step finds and how it differs from the runbook, and
    /// with --yes records it in the state as adopted: managed from then on
    /// (`run` updates it in place), left in place by `rollback` unless
    /// --include-adopted. Changes nothing in the account unless --tag.
    Adopt {
        /// The runbook file (TOML).
        runbook: PathBuf,
        /// Record what was found without asking (required when stdin is not
        /// a terminal); without it and on a terminal, asks once.
        #[arg(long, short = 'y')]
        yes: bool,
        /// Also tag what is adopted with the runbook's ownership tag (the
        /// only change made in the account).
        #[arg(long)]
        tag: bool,
    },
    /// Show each step and what its check finds in the account. Changes nothing.
    Plan {
        /// The runbook file (TOML); several, or folders of them, make a
        /// fleet: each with its own state and lock, several at once.
        #[arg(required = true, value_name = "RUNBOOK")]
        runbooks: Vec<PathBuf>,
        #[command(flatten)]
        fleet: Fleet,
        /// `json`: one JSON document with the same facts (preflight, each
        /// step's action, what and details, a summary).
        #[arg(long, value_enum, default_value_t)]
        output: Output,
        /// Exit 0 only when there is nothing to change, 6 when there are
        /// changes to apply (as Terraform's -detailed-exitcode, with 6 for
        /// its 2). Blocked steps exit as `run` would, with or without it.
        #[arg(long)]
        detailed_exitcode: bool,
        /// Also write the plan to FILE, for `run --plan FILE` to do exactly
        /// that (or refuse if the runbook or the account moved since).
        #[arg(long = "out", short = 'o', value_name = "FILE")]
        out: Option<PathBuf>,
        /// Plan the replacements an edit needs (a new proxy beside the
        /// old) as `run --allow-replace` would make them, instead of
        /// showing them blocked.
        #[arg(long)]
        allow_replace: bool,
    },
    /// Check what the recipe needs from the account (DB, secret, subnets,
    /// security groups, Lambdas, room for a proxy). Changes nothing.
    Preflight {
        /// The runbook file (TOML).
        runbook: PathBuf,
    },
    /// Run the steps (all, one, or a range), each as soon as the steps it
    /// needs are done; each checks the account before acting.
    Run {
        /// The runbook file (TOML); several, or folders of them, make a
        /// fleet: each with its own state and lock, several at once.
        #[arg(required = true, value_name = "RUNBOOK")]
        runbooks: Vec<PathBuf>,
        #[command(flatten)]
        fleet: Fleet,
        #[command(flatten)]
        select: Selection,
        /// Do not ask for confirmation (required when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Before each step that would act, show what it would do and ask:
        /// yes, no (skip it and the steps that need it), or continue
        /// without asking. One step at a time until "continue".
        #[arg(long, conflicts_with_all = ["yes", "output"])]
        confirm: bool,
        /// Take over what the account already holds with this runbook's tag
        /// but this state never made (another state's, most likely): it is
        /// recorded as adopted, managed from then on, and left in place by
        /// `rollback`. Without it such a run is refused.
        #[arg(long)]
        adopt: bool,
        /// Do what the plan saved in FILE (`plan -o FILE`) says, and only if
        /// the runbook and the account are still as it found them: else
        /// refuse, changing nothing. Runs the whole runbook.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["step", "from", "until", "adopt"])]
        plan: Option<PathBuf>,
        /// Carry out edits that need a new resource (a proxy's name, engine
        /// family or subnets; see docs/updates.md): the new one is made beside
        /// the old, made healthy, the functions move to it, and only then
        /// is the old one deleted. Without it such an edit is refused.
        #[arg(long)]
        allow_replace: bool,
        /// `json`: one JSON document on stdout (docs/usage.md); the lines
        /// for people go to stderr.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Continue a run that stopped or failed, re-checking every step
    /// against the account.
    Resume {
        /// The runbook file (TOML); several, or folders of them, make a
        /// fleet: each with its own state and lock, several at once.
        #[arg(required = true, value_name = "RUNBOOK")]
        runbooks: Vec<PathBuf>,
        #[command(flatten)]
        fleet: Fleet,
        /// Do not ask for confirmation (required when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
        /// As `run --allow-replace` (to finish a replacement that stopped).
        #[arg(long)]
        allow_replace: bool,
        /// `json`: one JSON document on stdout (docs/usage.md); the lines
        /// for people go to stderr.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Prove the wiring without invoking the runbook's functions: in each of
    /// their configurations (execution role, subnets, security groups) a
    /// short-lived function of the tool's own connects to every endpoint of
    /// the proxy as the runbook configures clients (IAM token or secret,
    /// TLS), runs a query twice, and is deleted. Each failure names the
    /// step that owns it and the fix.
    Probe {
        /// The runbook file (TOML).
        runbook: PathBuf,
        /// `json`: one JSON document on stdout; the lines for people go to
        /// stderr.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// How a running proxy is doing: status, target health, pool settings,
    /// the idle client timeout, the last hour of its CloudWatch metrics,
    /// and what they call for. Changes nothing.
    Doctor {
        /// The runbook file (TOML).
        runbook: PathBuf,
    },
    /// Print the IAM policy (JSON) that the person running a command needs
    /// for this runbook: the actions its calls use, on the runbook's
    /// resources where it names them (the proxy's role, the connect policy,
    /// the functions, the secrets, the DB, the state's bucket and key) and
    /// on `*` where AWS needs it. Reads the state and the account's id only.
    Permissions {
        /// The runbook file (TOML).
        runbook: PathBuf,
        /// The command the policy is for.
        #[arg(long = "for", value_enum, default_value_t)]
        command: PermissionsFor,
        /// With `--for run`: also what a replacement deletes once every
        /// function has moved (`run --allow-replace`).
        #[arg(long)]
        allow_replace: bool,
    },
    /// Remove the lock a killed process left on the runbook's state in S3:
    /// only the lock with this id (the one the error named), never one taken
    /// since by another process. Check that its holder is gone first.
    Unlock {
        /// The runbook file (TOML).
        runbook: PathBuf,
        /// The lock's id, as the "locked" error gave it.
        #[arg(long, value_name = "LOCK_ID")]
        force: String,
    },
    /// Move the state between a local file and S3.
    #[command(subcommand)]
    State(StateCommand),
    /// Print a shell completion script: `source <(rds-proxy-runbook
    /// completions bash)`, or save it where your shell loads completions.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), generated from this command tree:
    /// `rds-proxy-runbook man > rds-proxy-runbook.1; man ./rds-proxy-runbook.1`.
    Man,
    /// Each step's state, outputs, when, and the last error. No call to the
    /// account (a state in S3 is read from S3).
    Status {
        /// The runbook file (TOML); several, or folders of them, make a
        /// fleet: each with its own state and lock, several at once.
        #[arg(required = true, value_name = "RUNBOOK")]
        runbooks: Vec<PathBuf>,
        #[command(flatten)]
        fleet: Fleet,
        /// The state's earlier versions in S3 (a versioned bucket): when, who,
        /// from which host, with which command.
        #[arg(long)]
        history: bool,
        /// `json`: one JSON document on stdout (docs/usage.md); the lines
        /// for people go to stderr.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Undo applied steps (the run's order backwards, independent ones at
    /// once), deleting only what this runbook created and restoring what it
    /// changed.
    Rollback {
        /// The runbook file (TOML); several, or folders of them, make a
        /// fleet: each with its own state and lock, several at once.
        #[arg(required = true, value_name = "RUNBOOK")]
        runbooks: Vec<PathBuf>,
        #[command(flatten)]
        fleet: Fleet,
        /// Keep this step and the ones before it; undo only the steps after it.
        #[arg(long, value_name = "STEP")]
        to: Option<String>,
        /// Do not ask for confirmation (required when stdin is not a terminal).
        #[arg(long, short = 'y')]
        yes: bool,
        /// Also undo what this state adopted (`adopt`, `run --adopt`):
        /// delete it as if this runbook had made it. Without it, adopted
        /// resources stay as they are.
        #[arg(long)]
        include_adopted: bool,
        /// `json`: one JSON document on stdout (docs/usage.md); the lines
        /// for people go to stderr.
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

/// `state push` and `state pull`.
#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Move the runbook's local state (the default file, or --state PATH) to
    /// an S3 object, so a team shares it: the lock held on both sides, the
    /// object created only if there is none; the local file is kept as
    /// `<file>.pushed`. Then point the runbook's `[state]` (or --state) at it.
    Push {
        /// The runbook file (TOML).
        runbook: PathBuf,
        /// s3://BUCKET/KEY
        #[arg(long, value_name = "S3_URL")]
        to: String,
    },
    /// Move the runbook's state back from an S3 object to its local file
    /// (the default, or --state PATH): the lock held on both sides, the file
    /// written only if there is none; the object is deleted if unchanged
    /// (a versioned bucket keeps its history).
    Pull {
        /// The runbook file (TOML).
        runbook: PathBuf,
        /// s3://BUCKET/KEY
        #[arg(long, value_name = "S3_URL")]
        from: String,
    },
}

/// How several runbooks run together.
#[derive(Debug, Args, Clone, Copy)]
pub struct Fleet {
    /// With several runbooks: how many at once (their waits share their
    /// looks per account and region, so more costs few more calls).
    #[arg(long, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub parallel: u16,
    /// With several runbooks: when one fails, stop the others after their
    /// call in flight (their states saved) and start no more.
    #[arg(long)]
    pub fail_fast: bool,
}

#[derive(Debug, Args, Clone, Default)]
#[group(multiple = true)]
pub struct Selection {
    /// Run only this step.
    #[arg(long, value_name = "STEP", conflicts_with_all = ["from", "until"])]
    pub step: Option<String>,
    /// Start at this step.
    #[arg(long, value_name = "STEP")]
    pub from: Option<String>,
    /// Stop after this step.
    #[arg(long, value_name = "STEP")]
    pub until: Option<String>,
}

/// `init`'s options.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// A Lambda function that should reach the DB through the proxy
    /// (repeat for several).
    #[arg(long = "function", value_name = "NAME", required = true)]
    pub functions: Vec<String>,
    /// The RDS DB instance to put the proxy in front of.
    #[arg(long, value_name = "ID", required_unless_present = "db_cluster")]
    pub db_instance: Option<String>,
    /// The Aurora cluster to put the proxy in front of.
    #[arg(long, value_name = "ID", conflicts_with = "db_instance")]
    pub db_cluster: Option<String>,
    /// The secret with the DB user's credentials [default: the secret RDS
    /// manages for the master user].
    #[arg(long, value_name = "ARN")]
    pub secret: Option<String>,
    /// The runbook's and the proxy's name [default: <DB id>-proxy].
    #[arg(long)]
    pub name: Option<String>,
    /// Write the runbook to FILE instead of stdout.
    #[arg(short = 'o', long = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Overwrite FILE if it exists.
    #[arg(long, requires = "out")]
    pub force: bool,
}

/// The command `permissions` prints a policy for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum PermissionsFor {
    /// `plan` and `preflight`: reads only.
    Plan,
    /// `run` and `resume`.
    #[default]
    Run,
    /// `rollback`.
    Rollback,
    /// `doctor`: reads only.
    Doctor,
    /// `probe`: a function of the tool's own, created, invoked, deleted.
    Probe,
    /// `status` (and `status --history`): a state in S3 only.
    Status,
}

/// How a command prints what it found: for people, or one JSON document.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum, Default)]
pub enum Output {
    #[default]
    Text,
    Json,
}
