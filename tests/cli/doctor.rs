//! `doctor` on a running proxy.

use super::*;

#[test]
fn doctor_reports_a_running_proxy_and_explains_pinning() {
    let (emu, ws) = setup("doctor");
    ws.run(&["doctor"])
        .code(1)
        .stderr_has("there is no DB proxy")
        .stderr_has("run the runbook first");
    ws.run(&["run", "--yes"]).ok();
    let proxy = format!("{}-db", ws.prefix);
    ws.run(&["doctor"])
        .ok()
        .stdout_has(&format!("DB proxy {proxy} in us-east-1: available"))
        .stdout_has("engine MYSQL, TLS required, IAM auth REQUIRED")
        .stdout_has("IdleClientTimeout 1800s")
        .stdout_has(&format!("{}: AVAILABLE", proxy))
        .stdout_has("Pool: MaxConnectionsPercent 100")
        .stdout_has(
            "DB: max_connections 60 (estimated for db.t3.micro); the pool may open 60 (100%)",
        )
        .stdout_has("DatabaseConnectionsCurrentlySessionPinned: no data")
        .stdout_has("no metrics in the last hour");
    // Metrics the test puts where CloudWatch would.
    let config = emu.sdk_config();
    runtime().block_on(async {
        use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
        let cw = aws_sdk_cloudwatch::Client::new(&config);
        for (name, value) in [
            ("DatabaseConnections", 6.0),
            ("ClientConnections", 40.0),
            ("DatabaseConnectionsCurrentlySessionPinned", 3.0),
            ("DatabaseConnectionsBorrowLatency", 1500.0),
            ("MaxDatabaseConnectionsAllowed", 6.0),
        ] {
            cw.put_metric_data()
                .namespace("AWS/RDS")
                .metric_data(
                    MetricDatum::builder()
                        .metric_name(name)
                        .dimensions(Dimension::builder().name("ProxyName").value(&proxy).build())
                        .value(value)
                        .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from(
                            std::time::SystemTime::now(),
                        ))
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
    });
    ws.run(&["doctor"])
        .ok()
        .stdout_has("ClientConnections: average 40.0, maximum 40.0")
        .stdout_has("DatabaseConnectionsCurrentlySessionPinned: average 3.0, maximum 3.0")
        .stdout_has("up to 3 DB connections were pinned to one client")
        .stdout_has("long transactions and batch jobs")
        .stdout_has("session_pinning_filters = [\"EXCLUDE_VARIABLE_SETS\"]")
        .stdout_has("the proxy opened up to 6 DB connections of the 6 it may");
}
