//! `doctor`: how a running proxy is doing, and what to do about it. Status,
//! target health with reason and likely fix, pool settings, the idle client
//! timeout, and the last hour of the proxy's CloudWatch metrics, with the
//! advice they call for (session pinning above all).

use std::time::{Duration, SystemTime};

use anyhow::Result;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Statistic};

use crate::aws::{Aws, describe_error};

/// The IAM actions `doctor`'s reads need (`permissions`), besides the DB's
/// ([`crate::db::ACTIONS`]).
pub const ACTIONS: crate::actions::Calls = {
    use crate::actions::On;
    &[
        ("sts:GetCallerIdentity", On::Any),
        ("rds:DescribeDBProxies", On::Any),
        ("rds:DescribeDBProxyTargets", On::Any),
        ("rds:DescribeDBProxyTargetGroups", On::Any),
        ("cloudwatch:GetMetricStatistics", On::Any),
        ("cloudwatch:DescribeAlarms", On::Any),
        ("logs:FilterLogEvents", On::ProxyLog),
    ]
};
use crate::error::Failure;
use crate::open::{EnvMode, Options, load_runbook};
use crate::runbook::EngineFamily;

const METRICS: &[&str] = &[
    "DatabaseConnections",
    "MaxDatabaseConnectionsAllowed",
    "ClientConnections",
    "DatabaseConnectionsCurrentlySessionPinned",
    "DatabaseConnectionsBorrowLatency",
    "QueryRequests",
];

/// The last hour of one metric: average, maximum and sum of its
/// datapoints; None without data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hour {
    pub average: f64,
    pub maximum: f64,
    pub sum: f64,
}

/// The advice the numbers call for.
pub fn advice(
    family: EngineFamily,
    filters: &[String],
    init_query: Option<&str>,
    pool_ceiling_percent: i32,
    metrics: &[(&str, Option<Hour>)],
) -> Vec<String> {
    let get = |name: &str| {
        metrics
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, h)| *h)
    };
    let mut out = Vec::new();
    if let Some(p) = get("DatabaseConnectionsCurrentlySessionPinned")
        && p.maximum > 0.0
    {
        out.push(format!(
            "up to {:.0} DB connections were pinned to one client: a session state (SET \
             statements, temporary tables, prepared statements, user variables, statements over \
             16 KB{}) ties a client to its DB connection, which then serves no one else. That is \
             acceptable for long transactions and batch jobs. If the application sets session \
             state on every connect (an ORM's `SET client_encoding`, say), move it into the \
             proxy's init query (pool.init_query){}, or disconnect after each invocation.",
            p.maximum,
            if family == EngineFamily::Postgresql {
                "; in PostgreSQL also SET"
            } else {
                ""
            },
            if family == EngineFamily::Mysql
                && !filters.iter().any(|f| f == "EXCLUDE_VARIABLE_SETS")
            {
                ", or let the proxy ignore variable SETs with \
                 session_pinning_filters = [\"EXCLUDE_VARIABLE_SETS\"] (MySQL only)"
            } else {
                ""
            }
        ));
        if init_query.is_some() {
            out.push("an init query is set: check it does not itself set what pins".into());
        }
    }
    if let Some(b) = get("DatabaseConnectionsBorrowLatency")
        && b.average > 10_000.0
    {
        out.push(format!(
            "clients waited {:.0} ms on average for a DB connection: the pool ({pool_ceiling_percent}% of \
             max_connections) is saturated; raise max_connections_percent, use a larger instance \
             class, or cap the Lambdas' concurrency",
            b.average / 1000.0
        ));
    }
    if let (Some(used), Some(allowed)) = (
        get("DatabaseConnections"),
        get("MaxDatabaseConnectionsAllowed"),
    ) && allowed.maximum > 0.0
        && used.maximum >= 0.9 * allowed.maximum
    {
        out.push(format!(
            "the proxy opened up to {:.0} DB connections of the {:.0} it may \
             (MaxDatabaseConnectionsAllowed: the DB's max_connections times \
             max_connections_percent, {pool_ceiling_percent}%): more clients in a transaction at \
             once wait, then fail after ConnectionBorrowTimeout; raise max_connections_percent, \
             max_connections (the DB's parameter group) or the instance class, or cap the \
             Lambdas' concurrency",
            used.maximum, allowed.maximum
        ));
    }
    if get("DatabaseConnections").is_none() && get("ClientConnections").is_none() {
        out.push(
            "no metrics in the last hour: the proxy has had no traffic, or its metrics are not \
             published yet"
                .into(),
        );
    }
    out
}

/// The DB's max_connections (as its parameter group sets it, else the
/// class's estimate) and the pool's share of it; None when the DB or its
/// class cannot be read (doctor goes on without it).
async fn db_connections(rb: &crate::runbook::Runbook, aws: &Aws, percent: i32) -> Option<String> {
    use crate::db::Kind;
    let (kind, id) = match (&rb.database.instance_id, &rb.database.cluster_id) {
        (Some(id), _) => (Kind::Instance, id.literal()?),
        (None, Some(id)) => (Kind::Cluster, id.literal()?),
        _ => return None,
    };
    let db = crate::db::read(aws, kind, &id).await.ok()??;
    let capacity = crate::db::capacity(aws, &db).await.ok()??;
    let (max, how) = match &capacity.max_connections_set {
        Some((value, group)) => (*value, format!("set by {group}")),
        None => (
            crate::budget::max_connections(&capacity.class, rb.database.engine_family)?,
            format!("estimated for {}", capacity.class),
        ),
    };
    Some(format!(
        "DB: max_connections {max} ({how}); the pool may open {} ({percent}%)",
        max * i64::from(percent) / 100
    ))
}

async fn last_hour(aws: &Aws, proxy: &str, metric: &str) -> Result<Option<Hour>> {
    let now = SystemTime::now();
    let out = aws
        .cloudwatch
        .get_metric_statistics()
        .namespace("AWS/RDS")
        .metric_name(metric)
        .dimensions(Dimension::builder().name("ProxyName").value(proxy).build())
        .start_time(DateTime::from(now - Duration::from_secs(3600)))
        // A minute of slack: the end is exclusive, and clocks differ.
        .end_time(DateTime::from(now + Duration::from_secs(60)))
        .period(300)
        .statistics(Statistic::Average)
        .statistics(Statistic::Maximum)
        .statistics(Statistic::Sum)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot read {metric} of {proxy} in {}: {}",
                aws.region,
                describe_error(&e)
            )
        })?;
    let points = out.datapoints();
    if points.is_empty() {
        return Ok(None);
    }
    let average = points.iter().filter_map(|p| p.average()).sum::<f64>() / points.len() as f64;
    let maximum = points
        .iter()
        .filter_map(|p| p.maximum())
        .fold(0.0, f64::max);
    let sum = points.iter().filter_map(|p| p.sum()).sum();
    Ok(Some(Hour {
        average,
        maximum,
        sum,
    }))
}

/// Each alarm of `[alarms]`: its state and the reason CloudWatch gives.
async fn alarms(rb: &crate::runbook::Runbook, aws: &Aws) {
    let Some(section) = rb.alarms.as_ref().filter(|a| !a.alarms.is_empty()) else {
        return;
    };
    let names: Vec<String> = section.alarms.iter().map(|a| a.name.clone()).collect();
    let found = aws
        .cloudwatch
        .describe_alarms()
        .set_alarm_names(Some(names))
        .send()
        .await;
    let found = match found {
        Ok(f) => f,
        Err(e) => {
            println!("Alarms: cannot read them: {}", describe_error(&e));
            return;
        }
    };
    println!("Alarms:");
    for a in &section.alarms {
        match found
            .metric_alarms()
            .iter()
            .find(|m| m.alarm_name() == Some(a.name.as_str()))
        {
            Some(m) => println!(
                "  {} ({}): {}: {}",
                a.name,
                a.kind.metric(),
                m.state_value().map_or("?", |s| s.as_str()),
                m.state_reason().unwrap_or("")
            ),
            None => println!(
                "  {} ({}): not made yet (run the `alarms` step)",
                a.name,
                a.kind.metric()
            ),
        }
    }
}

pub async fn doctor(runbook: &std::path::Path, opts: &Options) -> Result<()> {
    let rb = load_runbook(runbook, EnvMode::Strict)?;
    let aws = Aws::connect(&opts.aws, rb.aws()).await?;
    let Some(name) = rb.proxy.name.literal() else {
        anyhow::bail!("proxy.name must be known to examine the proxy");
    };
    let Some(proxy) = crate::aws::rds::find(&aws, &name).await? else {
        return Err(Failure::steps_failed(format!(
            "there is no DB proxy {name} in {}: run the runbook first",
            aws.region
        )));
    };
    let status = proxy.status().map_or("unknown", |s| s.as_str());
    println!("DB proxy {name} in {}: {status}", aws.region);
    let auth = match proxy.default_auth_scheme() {
        Some("IAM_AUTH") => "end-to-end IAM (it logs in to the DB with IAM)".to_string(),
        _ => format!(
            "IAM auth {}",
            proxy
                .auth()
                .first()
                .and_then(|a| a.iam_auth())
                .map_or("?", |a| a.as_str())
        ),
    };
    println!(
        "  engine {}, TLS {}, {auth}, endpoint {}",
        proxy.engine_family().unwrap_or("?"),
        if proxy.require_tls() == Some(true) {
            "required"
        } else {
            "optional"
        },
        proxy.endpoint().unwrap_or("?")
    );
    let idle = proxy.idle_client_timeout().unwrap_or(1800);
    println!(
        "  IdleClientTimeout {idle}s: client-side pools must recycle connections before it \
         (pool_recycle below it, or pre-ping), or they reuse connections the proxy closed"
    );
    if status != "available" {
        println!("  the proxy is not available: {status}");
    }

    let targets = aws
        .rds
        .describe_db_proxy_targets()
        .db_proxy_name(&name)
        .send()
        .await;
    match targets {
        Ok(t) if t.targets().is_empty() => {
            println!("Targets: none registered (run the `targets` step)")
        }
        Ok(t) => {
            println!("Targets:");
            for target in t.targets() {
                println!(
                    "  {}: {}",
                    target.rds_resource_id().unwrap_or("?"),
                    crate::aws::rds::health_text(target.target_health())
                );
            }
        }
        Err(e) => println!("Targets: cannot read them: {}", describe_error(&e)),
    }

    let pool = crate::aws::rds::pool_now(&aws, &name).await?;
    let pool = pool.as_ref();
    let filters: Vec<String> = pool
        .map(|p| p.session_pinning_filters().to_vec())
        .unwrap_or_default();
    let percent = pool
        .and_then(|p| p.max_connections_percent())
        .unwrap_or(100);
    if let Some(p) = pool {
        println!(
            "Pool: MaxConnectionsPercent {percent}, MaxIdleConnectionsPercent {}, \
             ConnectionBorrowTimeout {}s, InitQuery {}, SessionPinningFilters {:?}",
            p.max_idle_connections_percent().unwrap_or(50),
            p.connection_borrow_timeout().unwrap_or(120),
            p.init_query().filter(|q| !q.is_empty()).unwrap_or("(none)"),
            filters
        );
    }
    if let Some(line) = db_connections(&rb, &aws, percent).await {
        println!("{line}");
    }

    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let group = crate::proxy_logs::log_group(&name);
    match crate::proxy_logs::read(&aws, &name, hour_ago).await? {
        crate::proxy_logs::Read::Messages(m) => {
            let found = crate::proxy_logs::diagnose(&m);
            println!("Log {group}, the last hour: {} event(s)", m.len());
            if found.is_empty() && !m.is_empty() {
                println!("  no failure the tool knows");
            }
            for line in crate::proxy_logs::lines(&found) {
                println!("  - {line}");
            }
        }
        crate::proxy_logs::Read::NoGroup => {
            println!("Log {group}: none yet (the proxy has logged nothing)")
        }
        crate::proxy_logs::Read::Unreadable(why) => println!("Log: {why}"),
    }

    println!("The last hour (CloudWatch AWS/RDS, ProxyName={name}):");
    let mut metrics = Vec::new();
    for metric in METRICS {
        let hour = last_hour(&aws, &name, metric).await?;
        match hour {
            // A count per period: its total says how busy the proxy was.
            Some(h) if *metric == "QueryRequests" => println!("  {metric}: {:.0} in all", h.sum),
            Some(h) => println!(
                "  {metric}: average {:.1}, maximum {:.1}",
                h.average, h.maximum
            ),
            None => println!("  {metric}: no data"),
        }
        metrics.push((*metric, hour));
    }
    alarms(&rb, &aws).await;
    let advice = advice(
        rb.database.engine_family,
        &filters,
        pool.and_then(|p| p.init_query()).filter(|q| !q.is_empty()),
        percent,
        &metrics,
    );
    if advice.is_empty() {
        println!("Nothing to worry about in the last hour.");
    } else {
        println!("Advice:");
        for a in advice {
            println!("  - {a}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour(avg: f64, max: f64) -> Option<Hour> {
        Some(Hour {
            sum: avg,
            average: avg,
            maximum: max,
        })
    }

    #[test]
    fn pinning_is_explained_with_the_mysql_filter_when_it_applies() {
        let m = [
            ("DatabaseConnections", hour(5.0, 9.0)),
            ("DatabaseConnectionsCurrentlySessionPinned", hour(1.0, 4.0)),
        ];
        let a = advice(EngineFamily::Mysql, &[], None, 100, &m);
        assert_eq!(a.len(), 1, "{a:?}");
        assert!(
            a[0].starts_with("up to 4 DB connections were pinned"),
            "{}",
            a[0]
        );
        assert!(a[0].contains("long transactions and batch jobs"));
        assert!(a[0].contains("EXCLUDE_VARIABLE_SETS"));
        // Already filtered, or PostgreSQL: no filter to suggest.
        let a = advice(
            EngineFamily::Mysql,
            &["EXCLUDE_VARIABLE_SETS".into()],
            None,
            100,
            &m,
        );
        assert!(!a[0].contains("EXCLUDE_VARIABLE_SETS"));
        let a = advice(EngineFamily::Postgresql, &[], None, 100, &m);
        assert!(!a[0].contains("EXCLUDE_VARIABLE_SETS") && a[0].contains("also SET"));
    }

    #[test]
    fn connections_near_what_the_proxy_may_open_are_named() {
        let near = [
            ("DatabaseConnections", hour(40.0, 46.0)),
            ("MaxDatabaseConnectionsAllowed", hour(50.0, 50.0)),
        ];
        let a = advice(EngineFamily::Mysql, &[], None, 100, &near);
        assert!(
            a.len() == 1 && a[0].starts_with("the proxy opened up to 46 DB connections of the 50"),
            "{a:?}"
        );
        let far = [
            ("DatabaseConnections", hour(10.0, 20.0)),
            ("MaxDatabaseConnectionsAllowed", hour(50.0, 50.0)),
        ];
        assert!(advice(EngineFamily::Mysql, &[], None, 100, &far).is_empty());
    }

    #[test]
    fn saturation_and_silence_are_named() {
        let m = [
            ("DatabaseConnections", hour(30.0, 30.0)),
            (
                "DatabaseConnectionsBorrowLatency",
                hour(250_000.0, 900_000.0),
            ),
        ];
        let a = advice(EngineFamily::Mysql, &[], None, 50, &m);
        assert!(
            a[0].contains("waited 250 ms") && a[0].contains("(50% of"),
            "{a:?}"
        );
        let a = advice(EngineFamily::Mysql, &[], None, 100, &[]);
        assert!(a[0].starts_with("no metrics in the last hour"));
        let calm = [
            ("DatabaseConnections", hour(2.0, 3.0)),
            ("ClientConnections", hour(4.0, 8.0)),
        ];
        assert!(advice(EngineFamily::Mysql, &[], None, 100, &calm).is_empty());
    }
}
