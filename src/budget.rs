//! The connection budget (seed 000 works it out by hand): how many DB
//! connections the instance allows, how many the proxy's pool may use, and
//! how many clients the Lambda functions can bring at worst.

use anyhow::Result;
use serde::Serialize;

use crate::aws::{Aws, describe_error};
use crate::db::Capacity;
use crate::runbook::{EngineFamily, Runbook};

/// The IAM actions the plan's budget reads need (`permissions`).
pub const ACTIONS: crate::actions::Calls = {
    use crate::actions::On;
    &[
        ("lambda:GetAccountSettings", On::Any),
        ("lambda:GetFunctionConcurrency", On::Functions),
        ("lambda:ListProvisionedConcurrencyConfigs", On::Functions),
        ("lambda:ListEventSourceMappings", On::Any),
    ]
};

/// What Lambda lets one function run at once when nothing caps it: the
/// account's concurrency (1,000 by default).
const ACCOUNT_DEFAULT: i64 = 1000;

/// max_connections for the classes seed 000 lists: (class, MySQL, PostgreSQL).
const KNOWN: &[(&str, i64, i64)] = &[
    ("db.t3.micro", 60, 66),
    ("db.t3.small", 150, 200),
    ("db.t3.medium", 320, 400),
    ("db.t3.large", 600, 800),
    ("db.r5.large", 1270, 1600),
    ("db.r5.xlarge", 2540, 3300),
];

/// Memory in GiB of an instance size (the last part of the class).
fn size_memory_gib(class: &str) -> Option<f64> {
    let (family, size) = class.strip_prefix("db.")?.split_once('.')?;
    // Memory per vCPU: 4 GiB for m (general purpose), 8 for r and x (memory
    // optimized), t scales from 0.5 GiB (nano) upwards.
    let per_large = match family.chars().next()? {
        't' => {
            return Some(match size {
                "micro" => 1.0,
                "small" => 2.0,
                "medium" => 4.0,
                "large" => 8.0,
                "xlarge" => 16.0,
                "2xlarge" => 32.0,
                _ => return None,
            });
        }
        'm' => 8.0,
        'r' | 'x' | 'z' => 16.0,
        _ => return None,
    };
    let factor = match size {
        "large" => 1.0,
        "xlarge" => 2.0,
        other => other.strip_suffix("xlarge")?.parse::<f64>().ok()? * 2.0,
    };
    Some(per_large * factor)
}

/// `max_connections` of an instance class: seed 000's table, else the
/// engine's formula over the class memory less what the OS keeps (~300 MiB).
pub fn max_connections(class: &str, family: EngineFamily) -> Option<i64> {
    if let Some((_, mysql, pg)) = KNOWN.iter().find(|(c, _, _)| *c == class) {
        return Some(if family == EngineFamily::Postgresql {
            *pg
        } else {
            *mysql
        });
    }
    let bytes = (size_memory_gib(class)? * 1024.0 - 300.0) * 1024.0 * 1024.0;
    Some(match family {
        EngineFamily::Postgresql => ((bytes / 9_531_392.0) as i64).min(5000),
        _ => (bytes / 12_582_880.0) as i64,
    })
}

#[derive(Debug, Serialize, PartialEq)]
pub struct FunctionLoad {
    pub name: String,
    /// The most environments it can run at once, and why.
    pub worst_case: i64,
    pub limited_by: String,
    pub provisioned: i64,
}

#[derive(Debug, Serialize)]
pub struct Budget {
    pub instance_class: String,
    pub max_connections: i64,
    /// The parameter group that sets max_connections; None: estimated
    /// from the class.
    pub max_connections_set_by: Option<String>,
    pub max_connections_percent: u32,
    pub pool_ceiling: i64,
    pub functions: Vec<FunctionLoad>,
    pub clients_worst_case: i64,
    pub fits: bool,
    pub headroom: i64,
    pub notes: Vec<String>,
}

/// The arithmetic, kept apart from the reads so it can be tested.
pub fn assess(
    capacity: &Capacity,
    family: EngineFamily,
    percent: u32,
    borrow_timeout: u32,
    idle_client_timeout: u32,
    functions: Vec<FunctionLoad>,
) -> Option<Budget> {
    let class = capacity.class.as_str();
    let (max, set_by) = match &capacity.max_connections_set {
        Some((value, group)) => (*value, Some(group.clone())),
        None => (max_connections(class, family)?, None),
    };
    let ceiling = max * i64::from(percent) / 100;
    let clients: i64 = functions.iter().map(|f| f.worst_case).sum();
    let fits = clients <= ceiling;
    let mut notes = vec![if fits {
        format!(
            "fits: at worst {clients} Lambda environments, each with a connection, against a pool of {ceiling}; headroom {}",
            ceiling - clients
        )
    } else {
        format!(
            "may exceed the pool: at worst {clients} Lambda environments, each with a client \
             connection, share {ceiling} DB connections transaction by transaction; when more than \
             {ceiling} are in a transaction at once, the rest wait up to {borrow_timeout}s \
             (ConnectionBorrowTimeout), then fail. Cap concurrency (reserved concurrency, SQS \
             maximum concurrency), raise max_connections_percent, or use a larger instance class"
        )
    }];
    notes.push(
        "cold starts briefly hold two connections for one environment (the old one not yet closed)"
            .into(),
    );
    if !capacity.instances.is_empty() {
        notes.push(format!(
            "the cluster's instances: {}; the proxy's default endpoint uses the writer, so its \
             class sets the budget",
            capacity.instances.join(", ")
        ));
    }
    notes.extend(capacity.notes.iter().cloned());
    if functions.iter().any(|f| f.provisioned > 0) {
        notes.push(format!(
            "provisioned concurrency keeps environments, and their client-side pools, alive: \
             recycle pooled connections before the proxy's IdleClientTimeout ({idle_client_timeout}s), \
             e.g. pool_recycle below it or pre-ping, or use no client pool; otherwise they reuse \
             connections the proxy closed ('Lost connection to MySQL server during query')"
        ));
    }
    Some(Budget {
        instance_class: class.to_string(),
        max_connections: max,
        max_connections_set_by: set_by,
        max_connections_percent: percent,
        pool_ceiling: ceiling,
        clients_worst_case: clients,
        fits,
        headroom: ceiling - clients,
        functions,
        notes,
    })
}

/// Reads each function's limits and assesses them against the instance
/// class (which preflight has read already; None: no budget).
pub async fn run(rb: &Runbook, aws: &Aws, capacity: Option<&Capacity>) -> Result<Option<Budget>> {
    let Some(capacity) = capacity else {
        return Ok(None); // No DB read (a missing DB, a cluster without a writer).
    };
    let names: Vec<String> = rb
        .lambdas
        .iter()
        .filter_map(|l| l.function_name.literal())
        .collect();
    let (functions, unread) = loads(aws, &names).await;
    let mut budget = assess(
        capacity,
        rb.database.engine_family,
        rb.pool.max_connections_percent,
        rb.pool.connection_borrow_timeout,
        rb.proxy.idle_client_timeout,
        functions,
    );
    if let Some(b) = &mut budget {
        b.notes.extend(unread);
    }
    Ok(budget)
}

/// How many environments each function can run at once at worst, and why
/// (with the notes of what could not be read); the `alarms` step reads
/// them too, for its static surge thresholds.
pub async fn loads(aws: &Aws, names: &[String]) -> (Vec<FunctionLoad>, Vec<String>) {
    // A read that fails counts as "no limit" (the worst case), and says so.
    let mut unread = Vec::new();
    // The account's, so one read for every runbook of the place; a failed
    // read is not kept.
    let limit = crate::rounds::shared(aws, "the account's Lambda concurrency".into(), async {
        aws.lambda
            .get_account_settings()
            .send()
            .await
            .map(|s| {
                s.account_limit()
                    .map(|l| i64::from(l.concurrent_executions()))
            })
            .map_err(|e| anyhow::anyhow!(describe_error(&e)))
    })
    .await;
    let account = match limit {
        Ok(limit) => limit,
        Err(e) => {
            unread.push(format!(
                "cannot read the account's Lambda concurrency ({e}): counted as no limit; allow \
                 lambda:GetAccountSettings for an exact budget"
            ));
            None
        }
    }
    .filter(|n| *n > 0)
    .unwrap_or(ACCOUNT_DEFAULT);
    let mappings = crate::aws::listings::event_sources(aws).await;
    if let Err(e) = &mappings {
        unread.push(format!(
            "{e:#}: the SQS event sources' maximum concurrency is counted as no limit"
        ));
    }
    let mut functions = Vec::new();
    for name in names {
        let name = name.clone();
        let reserved = readable(
            aws.lambda
                .get_function_concurrency()
                .function_name(&name)
                .send()
                .await,
            &format!("the reserved concurrency of {name}"),
            "lambda:GetFunctionConcurrency",
            &mut unread,
        )
        .and_then(|c| c.reserved_concurrent_executions());
        // The place's listing of every mapping (one call for a fleet).
        let sqs: Option<i64> = match &mappings {
            Ok(all) => Some(
                all.get(&name)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .filter(|e| e.event_source_arn().is_some_and(|a| a.contains(":sqs:")))
                    .filter_map(|e| e.scaling_config().and_then(|s| s.maximum_concurrency()))
                    .map(i64::from)
                    .sum(),
            ),
            Err(_) => None,
        }
        .filter(|n: &i64| *n > 0);
        let provisioned: i64 = readable(
            aws.lambda
                .list_provisioned_concurrency_configs()
                .function_name(&name)
                .send()
                .await,
            &format!("the provisioned concurrency of {name}"),
            "lambda:ListProvisionedConcurrencyConfigs",
            &mut unread,
        )
        .map(|p| {
            p.provisioned_concurrency_configs()
                .iter()
                .filter_map(|c| c.requested_provisioned_concurrent_executions())
                .map(i64::from)
                .sum()
        })
        .unwrap_or(0);
        let (worst_case, limited_by) = match (reserved, sqs) {
            (Some(r), _) => (i64::from(r), format!("reserved concurrency {r}")),
            (None, Some(s)) => (s, format!("SQS maximum concurrency {s}")),
            (None, None) => (
                account,
                format!("nothing: the account's concurrency ({account})"),
            ),
        };
        functions.push(FunctionLoad {
            name,
            worst_case: worst_case.max(provisioned),
            limited_by,
            provisioned,
        });
    }
    (functions, unread)
}

/// The answer of a read the budget can do without; a failure becomes a
/// note naming what could not be read and the permission to allow.
fn readable<T, E>(
    read: Result<T, aws_sdk_lambda::error::SdkError<E, aws_sdk_lambda::config::http::HttpResponse>>,
    what: &str,
    action: &str,
    notes: &mut Vec<String>,
) -> Option<T>
where
    E: aws_sdk_lambda::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    read.map_err(|e| {
        notes.push(format!(
            "cannot read {what} ({}): counted as no limit; allow {action} for an exact budget",
            describe_error(&e)
        ))
    })
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_connections_from_the_table_and_the_formula() {
        assert_eq!(
            max_connections("db.t3.micro", EngineFamily::Mysql),
            Some(60)
        );
        assert_eq!(
            max_connections("db.r5.large", EngineFamily::Postgresql),
            Some(1600)
        );
        // r5.2xlarge: 64 GiB; MySQL formula over what the OS leaves.
        let m = max_connections("db.r5.2xlarge", EngineFamily::Mysql).unwrap();
        assert!((5000..5500).contains(&m), "{m}");
        // PostgreSQL is capped at 5000.
        assert_eq!(
            max_connections("db.r5.8xlarge", EngineFamily::Postgresql),
            Some(5000)
        );
        assert_eq!(size_memory_gib("db.m5.4xlarge"), Some(64.0));
        assert_eq!(max_connections("db.unknown", EngineFamily::Mysql), None);
    }

    fn load(worst: i64, provisioned: i64) -> FunctionLoad {
        FunctionLoad {
            name: "f".into(),
            worst_case: worst,
            limited_by: "reserved concurrency".into(),
            provisioned,
        }
    }

    fn class(class: &str) -> Capacity {
        Capacity {
            class: class.into(),
            ..Capacity::default()
        }
    }

    #[test]
    fn a_value_the_parameter_group_sets_wins_and_a_clusters_writer_counts() {
        let capacity = Capacity {
            class: "db.r5.large".into(),
            max_connections_set: Some((200, "DB parameter group app-params".into())),
            instances: vec![
                "writer app-1 db.r5.large".into(),
                "reader app-2 db.t3.medium".into(),
            ],
            notes: Vec::new(),
        };
        let b = assess(&capacity, EngineFamily::Postgresql, 50, 120, 1800, vec![]).unwrap();
        assert_eq!((b.max_connections, b.pool_ceiling), (200, 100));
        assert_eq!(
            b.max_connections_set_by.as_deref(),
            Some("DB parameter group app-params")
        );
        assert!(
            b.notes
                .iter()
                .any(|n| n.contains("writer app-1 db.r5.large, reader app-2 db.t3.medium")),
            "{:?}",
            b.notes
        );
        // Not set: the class's estimate.
        let b = assess(
            &class("db.r5.large"),
            EngineFamily::Postgresql,
            50,
            120,
            1800,
            vec![],
        )
        .unwrap();
        assert_eq!(
            b.max_connections,
            max_connections("db.r5.large", EngineFamily::Postgresql).unwrap()
        );
        assert!(b.max_connections_set_by.is_none());
    }

    #[test]
    fn a_capped_function_fits_with_headroom() {
        let b = assess(
            &class("db.t3.small"),
            EngineFamily::Mysql,
            50,
            120,
            1800,
            vec![load(50, 0)],
        )
        .unwrap();
        assert_eq!(b.pool_ceiling, 75);
        assert!(b.fits);
        assert_eq!(b.headroom, 25);
        assert!(b.notes[0].starts_with("fits"));
        assert!(!b.notes.iter().any(|n| n.contains("IdleClientTimeout")));
    }

    #[test]
    fn too_many_clients_and_provisioned_concurrency_are_explained() {
        let b = assess(
            &class("db.t3.micro"),
            EngineFamily::Mysql,
            100,
            120,
            300,
            vec![load(1000, 5)],
        )
        .unwrap();
        assert!(!b.fits);
        assert_eq!(b.headroom, 60 - 1000);
        assert!(
            b.notes[0].starts_with("may exceed the pool"),
            "{:?}",
            b.notes
        );
        assert!(b.notes[0].contains("wait up to 120s"), "{:?}", b.notes);
        assert!(
            b.notes
                .iter()
                .any(|n| n.contains("IdleClientTimeout (300s)"))
        );
    }
}
