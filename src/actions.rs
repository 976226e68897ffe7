//! What the tool's AWS calls need from whoever runs it. Each place that
//! calls AWS declares, beside its calls, the IAM action of each and what it
//! acts on: every step for its check, apply and rollback
//! ([`crate::steps::StepImpl::ACTIONS`]), and preflight, the plan's budget,
//! the reads a run shares, the rollback guard, the state in S3 and
//! `doctor`. `permissions` turns them into the policy one command needs;
//! the tests hold every call the emulator records against it.

/// What an action acts on, as far as the runbook (and the state) name it.
/// `permissions` turns each into resource ARNs (and a condition where
/// IAM can narrow the action further).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum On {
    /// The proxy's IAM role: the `proxy-role` step's, or `proxy.role_arn`.
    ProxyRole,
    /// The proxy's role, passed to RDS only (`iam:PassRole` for
    /// CreateDBProxy and ModifyDBProxy).
    ProxyRoleToRds,
    /// The proxy's role, with the book's managed `SecretsManagerReadWrite`
    /// only (`secret_access.mode = "managed"`).
    ProxyRoleManagedPolicy,
    /// The connect policy.
    ConnectPolicy,
    /// The roles (and users and groups) the connect policy goes on, with
    /// that policy only.
    ConnectPolicyHolders,
    /// The functions' execution roles, read only: the runbook does not
    /// name them (each function's configuration does).
    FunctionRoles,
    /// The functions' execution roles, passed to Lambda for a probe
    /// function of the tool's own (`probe`).
    FunctionRolesToLambda,
    /// The probe functions (`probe`): named after the runbook.
    ProbeFunctions,
    /// The proxy, its target group and its endpoints (AWS chooses their
    /// ids, so any of the account and region), and the DB.
    Proxy,
    /// The runbook's Lambda functions (and those its state still records).
    Functions,
    /// Any Lambda function: the rollback guard reads those that point at
    /// the proxy, whoever they belong to.
    AnyFunction,
    /// The runbook's secrets.
    Secrets,
    /// The keys of the secrets, through Secrets Manager only (for a secret
    /// encrypted with a customer-managed key).
    SecretKeys,
    /// The proxy's log group, `/aws/rds/proxy/NAME`.
    ProxyLog,
    /// The proxy's CloudWatch alarms (`[alarms]`, and those the state
    /// records).
    Alarms,
    /// The bucket of a state in S3.
    StateBucket,
    /// The state's object and its lock object.
    StateObject,
    /// The KMS key of a state in S3 (`state.kms_key`), if one is set.
    StateKey,
    /// Every resource: an action without resource-level permissions
    /// (Describe*, List*, ec2's rules) or on what the runbook cannot name.
    Any,
}

/// IAM actions (`service:Action`), each with what it acts on.
pub type Calls = &'static [(&'static str, On)];

/// A step's calls, by what the step is doing.
#[derive(Clone, Copy, Debug)]
pub struct Actions {
    /// Its check (and the plan's details, what it records as `before`,
    /// and its outputs when used by value): `plan` and `run`.
    pub check: Calls,
    /// Its apply: `run` and `resume`, after the check.
    pub apply: Calls,
    /// Its rollback: `rollback`, and a replacement deleting what it
    /// replaced.
    pub rollback: Calls,
}

impl Actions {
    pub const NONE: Actions = Actions {
        check: &[],
        apply: &[],
        rollback: &[],
    };
}
