//! Bad input: runbook problems with their positions, missing credentials or region.

use super::*;
use std::path::Path;
use std::process::Command;

#[test]
fn bad_input_is_reported_with_positions_and_creates_nothing() {
    let (emu, ws) = setup("bad_input");
    let before = snapshot(&emu, &ws);
    // (edit, the key the error names, a piece of the message)
    type Edit = fn(String) -> String;
    let cases: Vec<(Edit, &str, &str)> = vec![
        (
            |s| {
                edit(
                    &s,
                    "require_tls = true",
                    "require_tls = true\nrequire_tsl = true",
                )
            },
            "`proxy.require_tsl`",
            "unknown key; did you mean `require_tls`?",
        ),
        (
            |s| edit(&s, "port = 3306", "port = \"3306\""),
            "`database.port`",
            "expected an integer, found string",
        ),
        (
            |s| edit(&s, "secret_arn = \"${env.RDS_SECRET_ARN}\"\n", ""),
            "`database.secret_arn`",
            "missing required key: add `secret_arn = ",
        ),
        (
            |s| edit(&s, "${env.VPC_ID}", "${env.NO_SUCH_VARIABLE}"),
            "`network.vpc_id`",
            "environment variable `NO_SUCH_VARIABLE` is not set",
        ),
        (
            |s| edit(&s, "\"proxy-security-group\",", "\"proxy-securitygroup\","),
            "`steps[2]`",
            "unknown step `proxy-securitygroup`; did you mean `proxy-security-group`?",
        ),
        (
            |s| edit(&s, "${steps.proxy-role.arn}", "${steps.proxy-role.ar}"),
            "`proxy.role_arn`",
            "step `proxy-role` has no output `ar`",
        ),
        (
            |s| edit(&s, "name = \"${env.DB_NAME}\"", "name = \"9-proxy--\""),
            "`proxy.name`",
            "proxy name `9-proxy--` must start with a letter",
        ),
        (
            |s| {
                edit(
                    &s,
                    "secret_arn = \"${env.RDS_SECRET_ARN}\"",
                    "secret_arn = \"my-db-secret\"",
                )
            },
            "`database.secret_arn`",
            "`my-db-secret` is not a secret ARN",
        ),
        (
            |s| {
                edit(
                    &s,
                    "engine_family = \"MYSQL\"",
                    "engine_family = \"oracle-ee\"",
                )
            },
            "`database.engine_family`",
            "RDS Proxy does not support Oracle",
        ),
        (
            |s| s + "\n[pool]\nmax_connections_percent = 150\n",
            "`pool.max_connections_percent`",
            "150 is out of range: use 1 to 100",
        ),
        (
            |s| {
                edit(
                    &s,
                    "iam_auth = \"REQUIRED\"",
                    "iam_auth = \"REQUIRED\"\nidle_client_timeout = 30000",
                )
            },
            "`proxy.idle_client_timeout`",
            "30000 is out of range: use 1 to 28800",
        ),
        (
            |s| {
                edit(
                    &s,
                    "[proxy_security_group]\nname = \"",
                    "[proxy_security_group]\nname = \"sg-",
                )
            },
            "`proxy_security_group.name`",
            "may not start with `sg-`",
        ),
        // AWS's own limits (src/limits), each refused before any call.
        (
            |s| match s.contains("[pool]\n") {
                true => edit(&s, "[pool]\n", "[pool]\nconnection_borrow_timeout = 301\n"),
                false => s + "\n[pool]\nconnection_borrow_timeout = 301\n",
            },
            "`pool.connection_borrow_timeout`",
            "301 is out of range: use 0 to 300",
        ),
        (
            |s| {
                let long = format!("(AWS Cookbook 4.3){}\"", "a".repeat(220));
                edit(&s, "(AWS Cookbook 4.3)\"", &long)
            },
            "`proxy_security_group.description`",
            "is 263 characters long: EC2 takes a security group description of up to 255",
        ),
        (
            |s| {
                edit(
                    &s,
                    "RDS Proxy security group (",
                    "RDS Proxy sécurité group (",
                )
            },
            "`proxy_security_group.description`",
            "holds `é`, which EC2 does not take in a security group description",
        ),
        (
            |s| {
                s + "\n[[auth]]\nsecret_arn = \"arn:aws:secretsmanager:us-east-1:123456789012:secret:x\"\n\
                     description = \"the app\\nand the reports\"\n"
            },
            "`auth[0].description`",
            "holds a line break, which RDS does not take in a description",
        ),
        (
            |s| edit(&s, "[tags]\n", "[tags]\nTeam = \"a, b (team)\"\n"),
            "`tags.Team`",
            "a tag value may hold letters, digits, spaces and _ . : / = + - @ only",
        ),
        (
            |s| {
                let key = "k".repeat(128);
                edit(&s, "[tags]\n", &format!("[tags]\n{key} = \"x\"\n"))
            },
            "`tags.kkkk",
            "a tag key of 128 characters: AWS takes 1 to 127",
        ),
        (
            |s| edit(&s, "[tags]\n", "[tags]\n\"aws:owner\" = \"x\"\n"),
            "`tags.aws:owner`",
            "a tag key may not start with `aws:`",
        ),
        (
            |s| {
                let many: String = (0..49).map(|i| format!("T{i} = \"v\"\n")).collect();
                edit(&s, "[tags]\n", &format!("[tags]\n{many}"))
            },
            "`tags`",
            "50 tags and the tool's own ownership tag make 51: IAM takes at most 50",
        ),
        (
            |s| edit(&s, "env_var = \"DB_HOST\"", "env_var = \"AWS_REGION\""),
            "`lambda[0].env_var`",
            "`AWS_REGION` is set by Lambda itself",
        ),
        (
            |s| {
                edit(
                    &s,
                    "function_name = \"${env.DB_APP_FUNCTION_NAME}\"\n",
                    "function_name = \"${env.DB_APP_FUNCTION_NAME}\"\nread_env_var = \"DB-READ-HOST\"\n",
                )
            },
            "`lambda[0].read_env_var`",
            "is not a name Lambda takes for a variable",
        ),
        // The same function's variable twice (whatever the edits above
        // made of the first table's).
        (
            |s| {
                let var = s
                    .lines()
                    .find(|l| l.starts_with("env_var = "))
                    .expect("an env_var")
                    .to_string();
                s + "\n[[lambda]]\nfunction_name = \"${env.DB_APP_FUNCTION_NAME}\"\n" + &var + "\n"
            },
            "`lambda[1].function_name`",
            "lambda[0] (line ",
        ),
    ];
    for (edit, key, message) in &cases {
        ws.write_runbook(edit);
        for cmd in [&["run", "--yes"][..], &["plan"][..]] {
            let calls = emu.calls();
            let out = ws.run(cmd);
            assert_eq!(calls, emu.calls(), "{key}: a call was made");
            out.code(3)
                .stderr_has(key)
                .stderr_has(message)
                .stderr_has("nothing was changed");
            // file:line:col before the key
            let line = out.stderr.lines().find(|l| l.contains(key)).unwrap();
            let runbook = ws.runbook.display().to_string();
            let pos = line
                .trim()
                .strip_prefix(&format!("{runbook}:"))
                .unwrap_or_else(|| panic!("{line}"));
            let mut nums = pos.split(':').take(2).map(|n| n.parse::<usize>());
            assert!(
                nums.all(|n| n.is_ok_and(|n| n > 0)),
                "no line:col in {line}"
            );
        }
    }
    // Several problems at once: all reported. (The two edits of the secret
    // line cannot both apply; the ARN one stands for them.)
    let together: Vec<_> = cases
        .iter()
        .filter(|(_, _, message)| !message.starts_with("missing required key"))
        .collect();
    ws.write_runbook(|s| together.iter().fold(s, |s, (edit, _, _)| edit(s)));
    let out = ws.run(&["run", "--yes"]);
    out.code(3);
    for (_, key, _) in &together {
        out.stderr_has(key);
    }
    assert_same(&before, &snapshot(&emu, &ws), "bad input created something");
    assert!(!ws.state.exists(), "bad input wrote a state");
}

/// Credentials and region come from aws-config alone; when it finds none,
/// the error says so and where it looked, before any change.
#[test]
fn missing_credentials_or_region_are_named() {
    let (emu, ws) = setup("no_credentials");
    let home = temp_dir("empty-home");
    let bare = |args: &[&str], drop: &[&str]| {
        let mut c = ws.cmd(args);
        for k in drop {
            c.env_remove(k);
        }
        Out::from(
            c.env("HOME", &home)
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env("AWS_CONFIG_FILE", home.join("config"))
                .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
                .bounded_output(),
        )
    };
    let before = snapshot(&emu, &ws);
    bare(&["plan"], &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"])
        .code(1)
        .stderr_has("no AWS credentials were found")
        .stderr_has("Environment: the credential provider was not enabled")
        .stderr_has("aws-config looks at --profile / AWS_PROFILE");
    bare(&["plan", "--profile", "nosuch"], &[])
        .code(1)
        .stderr_has("profile `nosuch` gave no AWS credentials (is it defined?)");
    bare(&["run", "--yes"], &["AWS_REGION", "AWS_DEFAULT_REGION"])
        .code(1)
        .stderr_has("no AWS region: pass --region, set AWS_REGION");
    // A profile from the config file is used, keys and region included.
    std::fs::write(
        home.join("config"),
        "[profile emulator]\nregion = us-east-1\naws_access_key_id = test\naws_secret_access_key = test\n",
    )
    .unwrap();
    bare(
        &["plan", "--profile", "emulator"],
        &[
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
        ],
    )
    .ok()
    .stdout_has(&format!("Plan: {} to create", ALL_STEPS - 1));
    assert_same(&before, &snapshot(&emu, &ws), "nothing was changed");
}

/// `run --plan FILE`: a file that is not there is named as missing; one
/// that is there but no plan keeps its own message.
#[test]
fn a_saved_plan_that_does_not_exist_is_named_missing() {
    let (emu, ws) = setup("plan_missing");
    let calls = emu.calls();
    let missing = ws.dir.join("missing.json");
    ws.run(&["run", "--yes", "--plan", &missing.display().to_string()])
        .code(3)
        .stderr_has(&format!("there is no plan at {}", missing.display()))
        .stderr_has("the file does not exist; write one with `rds-proxy-runbook plan RUNBOOK -o");
    let other = ws.dir.join("other.json");
    std::fs::write(&other, "{\"format\": \"something else\"}").unwrap();
    ws.run(&["run", "--yes", "--plan", &other.display().to_string()])
        .code(3)
        .stderr_has("is not a plan written by `rds-proxy-runbook plan -o`");
    assert_eq!(calls, emu.calls(), "a call was made");
}

/// localstack/demo.sh takes `--port N` (or `--port=N`) to start.sh and
/// refuses anything else with its usage.
#[test]
fn the_demo_takes_a_port_and_refuses_other_arguments() {
    let demo = Path::new(ROOT).join("localstack/demo.sh");
    let run = |args: &[&str]| {
        Out::from(
            Command::new(&demo)
                .args(args)
                .env_remove("AWS_ENDPOINT_URL")
                .env_remove("MOTO_PORT")
                .bounded_output(),
        )
    };
    for args in [
        &["--bogus"][..],
        &["--port"][..],
        &["--port", "x1"][..],
        &["4566"][..],
    ] {
        run(args)
            .code(2)
            .stderr_has("usage: localstack/demo.sh [--port N]");
    }
    // Something that is not the emulator answers on the port: start.sh,
    // given the port, says so (and the demo stops there).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in taken.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 1024];
            let _ = std::io::Read::read(&mut stream, &mut buf);
            let _ = std::io::Write::write_all(
                &mut stream,
                b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            );
        }
    });
    for args in [
        vec!["--port".to_string(), port.to_string()],
        vec![format!("--port={port}")],
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run(&args).code(1).stderr_has(&format!(
            "port {port} is taken by something this script did not start"
        ));
    }
}

/// ARNs of another region than the one the command works in (a secret, an
/// `[[auth]]` secret, a function by ARN): the region is in the ARN, so the
/// mismatch is refused before any call, each at its position with the fix.
#[test]
fn arns_of_another_region_are_refused_before_any_call() {
    let (emu, ws) = setup("other_region");
    let secret = &ws.env["RDS_SECRET_ARN"];
    let elsewhere = secret.replace(":us-east-1:", ":eu-west-1:");
    assert_ne!(&elsewhere, secret, "the seed's secret is in us-east-1");
    ws.write_runbook(|s| {
        edit(
            &s,
            "function_name = \"${env.DB_APP_FUNCTION_NAME}\"",
            "function_name = \"arn:aws:lambda:eu-west-1:123456789012:function:${env.DB_APP_FUNCTION_NAME}\"",
        )
        .replace("${env.RDS_SECRET_ARN}", &elsewhere)
    });
    // Where the secret's value is written: line and column of its quote.
    let text = std::fs::read_to_string(&ws.runbook).unwrap();
    let (line, col) = text
        .lines()
        .enumerate()
        .find_map(|(i, l)| {
            l.starts_with("secret_arn = ")
                .then(|| (i + 1, l.find('"').unwrap() + 1))
        })
        .unwrap();
    let before = snapshot(&emu, &ws);
    for cmd in [&["run", "--yes"][..], &["plan"][..], &["preflight"][..]] {
        let calls = emu.calls();
        let out = ws.run(cmd);
        assert_eq!(calls, emu.calls(), "{cmd:?} made a call");
        out.code(3)
            .stderr_has("nothing was changed")
            .stderr_has(&format!(
                "{}:{line}:{col}: `database.secret_arn`: the secret is in region eu-west-1 (its \
                 ARN says so), but this command works in us-east-1",
                ws.runbook.display()
            ))
            .stderr_has(
                "run in eu-west-1 (--region eu-west-1, or `region = \"eu-west-1\"` in the runbook)",
            )
            .stderr_has("replicate-secret-to-regions")
            .stderr_has("`lambda[0].function_name`: the function is in region eu-west-1");
    }
    // The same secret in the region the command works in: on its way.
    ws.write_runbook(|s| s);
    ws.run(&["plan"]).ok();
    assert_same(&before, &snapshot(&emu, &ws), "nothing was changed");
}

/// src/limits/model.rs is what localstack/tools/constraints.py makes from
/// AWS's models (botocore's, pinned in localstack/requirements.txt).
#[test]
fn the_limits_table_is_what_awss_models_say() {
    install_emulator();
    let out = Command::new(Path::new(ROOT).join("localstack/.venv/bin/python"))
        .arg(Path::new(ROOT).join("localstack/tools/constraints.py"))
        .arg("--check")
        .bounded_output();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A function whose variables would outgrow Lambda's 4 KB once they point
/// at the proxy: found by preflight (it needs the function's variables),
/// before any change, naming the function, its table and the room needed.
#[test]
fn a_function_environment_over_4_kb_after_the_swap_is_refused_before_any_change() {
    let (emu, ws) = setup("env_4kb");
    let function = &ws.env["DB_APP_FUNCTION_NAME"];
    set_function_variable(&emu, function, "BIG", Some(&"v".repeat(4000)));
    let before = snapshot(&emu, &ws);
    for cmd in [&["run", "--yes"][..], &["plan"][..]] {
        ws.run(cmd)
            .code(5)
            .stdout_has(&format!(
                "Lambda function {function} (`lambda[0].function_name`, {}:",
                ws.runbook.display()
            ))
            .stdout_has("over Lambda's 4 KB (4096 bytes, measured as JSON)")
            .stdout_has("bytes of room in");
    }
    assert_same(&before, &snapshot(&emu, &ws), "nothing was changed");
    // With room made, the same runbook goes on.
    set_function_variable(&emu, function, "BIG", Some("v"));
    ws.run(&["preflight"]).ok();
}
