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

/// Puts `messages` in the proxy's log group, as RDS Proxy would.
fn log_as_the_proxy(emu: &Emulator, proxy: &str, messages: &[&str]) {
    let config = emu.sdk_config();
    runtime().block_on(async {
        use aws_sdk_cloudwatchlogs::types::InputLogEvent;
        let logs = aws_sdk_cloudwatchlogs::Client::new(&config);
        let group = format!("/aws/rds/proxy/{proxy}");
        let _ = logs.create_log_group().log_group_name(&group).send().await;
        let _ = logs
            .create_log_stream()
            .log_group_name(&group)
            .log_stream_name("default")
            .send()
            .await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let mut put = logs
            .put_log_events()
            .log_group_name(&group)
            .log_stream_name("default");
        for (n, m) in messages.iter().enumerate() {
            put = put.log_events(
                InputLogEvent::builder()
                    .timestamp(now + n as i64)
                    .message(*m)
                    .build()
                    .unwrap(),
            );
        }
        put.send().await.unwrap();
    });
}

/// The proxy's log read after a failed invoke check, and by doctor: the
/// failure named with its fix.
#[test]
fn the_invoke_check_and_doctor_name_what_the_proxys_log_shows() {
    let (emu, ws) = setup("proxy_log");
    let proxy = format!("{}-db", ws.prefix);
    ws.run(&["run", "--yes"]).ok();
    ws.run(&["doctor"])
        .ok()
        .stdout_has(&format!("Log /aws/rds/proxy/{proxy}: none yet"));
    log_as_the_proxy(
        &emu,
        &proxy,
        &[
            "[WARN] [default] Credentials couldn't be retrieved. The IAM role is not authorized \
             to read the AWS Secrets Manager secret",
            "[INFO] [default] A new client connected",
        ],
    );
    // The emulator's function echoes the payload: the book's expected text
    // is missing, so the check fails, and the log says why.
    ws.write_runbook(|s| {
        edit(
            &s,
            "[invoke_check]\npayload = \"{}\"",
            "[invoke_check]\npayload = \"{}\"\nexpect = \"Successfully connected\"",
        )
    });
    ws.run(&["run", "--yes"])
        .code(1)
        .stderr_has("does not contain \"Successfully connected\"")
        .stderr_has("the proxy's log since the invocation: the proxy cannot read its credentials")
        .stderr_has("fix: let the proxy's role read the secret");
    log_as_the_proxy(
        &emu,
        &proxy,
        &["[WARN] [default] This RDS Proxy requires TLS connections"],
    );
    ws.run(&["doctor"])
        .ok()
        .stdout_has(&format!("Log /aws/rds/proxy/{proxy}, the last hour: 3 event(s)"))
        .stdout_has("clients connected without TLS while the proxy requires it (IAM tokens travel over TLS only) (1 time(s)")
        .stdout_has("the proxy cannot read its credentials (1 time(s)");
}
