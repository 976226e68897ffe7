//! `preflight`: every problem at once, before any change.

use super::*;

#[test]
fn preflight_reports_every_problem_at_once_before_any_change() {
    let (emu, mut ws) = setup("preflight");
    let rules = emu.has_rules("preflight's calls");
    let before = if rules {
        emu.calls()
    } else {
        Default::default()
    };
    ws.run(&["preflight"])
        .ok()
        .stdout_has("✓ DB instance")
        .stdout_has("mysql, available")
        .stdout_has("JSON with username and password")
        .stdout_has("2 subnets in 2 Availability Zones")
        .stdout_has("-db-app: in vpc-")
        .stdout_has("execution role")
        .stdout_has("is free (0 of 20 proxies used)")
        .stdout_has("Preflight: all");
    if rules {
        // The runbook's subnets are read; the function's are not, as its
        // configuration names its VPC.
        let made = |a: &str| {
            emu.calls().get(a).copied().unwrap_or(0) - before.get(a).copied().unwrap_or(0)
        };
        assert_eq!(made("DescribeSubnets"), 1);
    }

    // Break five things the recipe needs.
    let config = emu.sdk_config();
    let p = ws.prefix.clone();
    let (secret, subnets) = (
        ws.env["RDS_SECRET_ARN"].clone(),
        ws.env["ISOLATED_SUBNETS"].clone(),
    );
    let outside = format!("{p}-outside");
    runtime().block_on(async {
        aws_sdk_secretsmanager::Client::new(&config)
            .put_secret_value()
            .secret_id(&secret)
            .secret_string(r#"{"username":"admin"}"#)
            .send()
            .await
            .unwrap();
        let role = aws_sdk_iam::Client::new(&config)
            .get_role()
            .role_name(format!("{p}-lambda-role"))
            .send()
            .await
            .unwrap();
        aws_sdk_lambda::Client::new(&config)
            .create_function()
            .function_name(&outside)
            .runtime(aws_sdk_lambda::types::Runtime::Python312)
            .handler("lambda_function.lambda_handler")
            .role(role.role().unwrap().arn())
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .zip_file(aws_sdk_lambda::primitives::Blob::new(
                        include_bytes!("../../runbooks/policies/rds-proxy-trust-policy.json")
                            .to_vec(),
                    ))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        aws_sdk_rds::Client::new(&config)
            .create_db_proxy()
            .db_proxy_name(format!("{p}-db"))
            .engine_family(aws_sdk_rds::types::EngineFamily::Mysql)
            .auth(
                aws_sdk_rds::types::UserAuthConfig::builder()
                    .secret_arn(&secret)
                    .build(),
            )
            .role_arn("arn:aws:iam::123456789012:role/someone")
            .set_vpc_subnet_ids(Some(subnets.split(' ').map(String::from).collect()))
            .send()
            .await
            .unwrap();
        // As on AWS, the proxy is `creating` for a while: the snapshots
        // below must not see it change on its own.
        wait_available(&config, &format!("{p}-db")).await;
    });
    let first_subnet = subnets.split(' ').next().unwrap().to_string();
    ws.env.insert(
        "ISOLATED_SUBNETS".into(),
        format!("{first_subnet} {first_subnet}"),
    );
    ws.write_runbook(|s| {
        let s = edit(
            &s,
            "engine_family = \"MYSQL\"",
            "engine_family = \"POSTGRESQL\"",
        );
        s + &format!("\n[[lambda]]\nfunction_name = \"{outside}\"\n")
    });
    let before = snapshot(&emu, &ws);
    for cmd in [&["preflight"][..], &["run", "--yes"][..], &["plan"][..]] {
        ws.run(cmd)
            .code(5)
            .stdout_has("Preflight: ")
            .stdout_has("6 problem(s)")
            .stdout_has("is listed twice")
            .stdout_has("runs mysql, but the runbook's engine family is POSTGRESQL")
            .stdout_has("fix: set database.engine_family = \"MYSQL\"")
            .stdout_has("its JSON has no password")
            .stdout_has("the subnets are in 1 Availability Zone(s)")
            .stdout_has(&format!(
                "Lambda function {outside} is not attached to a VPC"
            ))
            .stdout_has(&format!(
                "a DB proxy named {p}-db exists and was not created by runbook"
            ))
            .stderr_has(
                "preflight found 6 problem(s) in the account (listed above); nothing was changed",
            );
    }
    // Only what is wrong is marked so: the outside function's role is fine.
    ws.run(&["preflight"])
        .code(5)
        .stdout_has(&format!("✓ Lambda function {outside}: execution role"));
    assert_same(
        &before,
        &snapshot(&emu, &ws),
        "preflight let a change through",
    );
    assert!(!ws.state.exists(), "a failed preflight wrote a state");
}
