//! The functions (`[[lambda]]`), the proxy's extra endpoints and the
//! functions that read them, and the invoke check.

use super::*;

#[test]
fn lambdas_and_subnet_arrays() {
    let src = MINIMAL.replace(
        "subnet_ids = \"${env.ISOLATED_SUBNETS}\"",
        "subnet_ids = [\"subnet-01111111\", \"subnet-02222222\", \"subnet-03333333\"]",
    ) + "[[lambda]]\nfunction_name = \"a\"\n[[lambda]]\nfunction_name = \"b\"\nenv_var = \"DATABASE_HOST\"\n";
    let rb = parse(&src).unwrap();
    assert_eq!(rb.proxy.subnet_ids.len(), 3);
    assert_eq!(rb.lambdas.len(), 2);
    assert_eq!(rb.lambdas[0].env_var, "DB_HOST");
    assert_eq!(rb.lambdas[1].env_var, "DATABASE_HOST");

    let src = MINIMAL.to_string() + "[[lambda]]\nfuncton_name = \"a\"\n";
    let d = errors(&src);
    let keys: Vec<&str> = d.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys, ["lambda[0].function_name", "lambda[0].functon_name"]);
}

#[test]
fn endpoints_and_reader_variables_are_checked_against_the_db_and_each_other() {
    let cluster = MINIMAL
        .replace("instance_id = \"db1\"", "cluster_id = \"c1\"")
        .replace(
            "steps = [\"proxy-role\", \"proxy-security-group\"]",
            "steps = [\"proxy-role\", \"proxy-security-group\", \"proxy-endpoints\"]",
        );
    let reader = "[[endpoint]]\nname = \"p1-ro\"\n[[lambda]]\nfunction_name = \"fn1\"\nread_env_var = \"DB_READ_HOST\"\n";
    let rb = parse(&format!("{cluster}{reader}")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rb.endpoints[0].target_role, "READ_ONLY");
    assert_eq!(rb.lambdas[0].read_env_var.as_deref(), Some("DB_READ_HOST"));
    // An RDS instance has no readers.
    let on_instance = format!(
        "{}{reader}",
        cluster.replace("cluster_id = \"c1\"", "instance_id = \"db1\"")
    );
    let d = errors(&on_instance);
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].key, "endpoint[0].target_role");
    assert!(
        d[0].message.contains("an RDS instance has none"),
        "{}",
        d[0].message
    );
    // No step to make it.
    let d = errors(&format!(
        "{}{reader}",
        cluster.replace(", \"proxy-endpoints\"", "")
    ));
    assert!(
        d[0].message.contains("add \"proxy-endpoints\" to steps"),
        "{d:?}"
    );
    // A reader variable without an endpoint to read, or naming an unknown one.
    let d = errors(&format!(
        "{cluster}[[lambda]]\nfunction_name = \"fn1\"\nread_env_var = \"DB_READ_HOST\"\n"
    ));
    assert_eq!(d[0].key, "lambda[0].read_env_var");
    assert!(
        d[0].message.contains("there is no READ_ONLY [[endpoint]]"),
        "{}",
        d[0].message
    );
    let d = errors(&format!("{cluster}{reader}read_endpoint = \"nope\"\n"));
    assert!(
        d[0].message.contains("no [[endpoint]] named `nope`"),
        "{d:?}"
    );
    let d = errors(&format!(
        "{cluster}[[endpoint]]\nname = \"p1-ro\"\n[[lambda]]\nfunction_name = \"fn1\"\nread_env_var = \"DB_HOST\"\n"
    ));
    assert!(d[0].message.contains("is env_var already"), "{d:?}");
}

#[test]
fn a_reader_variable_waits_for_its_endpoints_host() {
    let src = MINIMAL
        .replace("instance_id = \"db1\"", "cluster_id = \"c1\"")
        .replace(
            "steps = [\"proxy-role\", \"proxy-security-group\"]",
            "steps = [\"proxy-role\", \"proxy-security-group\", \"proxy\", \"targets\", \
             \"proxy-endpoints\", \"lambda-env\"]",
        )
        + "[[endpoint]]\nname = \"p1-ro\"\n[[lambda]]\nfunction_name = \"fn1\"\nread_env_var = \"DB_READ_HOST\"\n";
    let rb = parse(&src).unwrap_or_else(|e| panic!("{e}"));
    let step = crate::steps::get("lambda-env").unwrap();
    let inputs = |endpoints: &'static str| {
        let lookup = move |s: &str, o: &str| match (s, o) {
            ("proxy", "endpoint") => Some("p1.proxy".to_string()),
            ("proxy-endpoints", "endpoints") => Some(endpoints.to_string()),
            _ => None,
        };
        let mut r = crate::steps::Resolver::new(&lookup);
        let v = step.inputs(&rb, &mut r);
        (v, r.missing)
    };
    let (v, missing) = inputs("p1-ro=p1-ro.endpoint.proxy");
    assert!(missing.is_empty(), "{missing:?}");
    assert_eq!(v["functions"][1]["endpoint"], "p1-ro.endpoint.proxy");
    // Made before the runbook named it: the step waits, never writes a
    // placeholder into the variable.
    let (_, missing) = inputs("other=other.endpoint.proxy");
    assert_eq!(
        missing,
        [(
            "proxy-endpoints".to_string(),
            "endpoints[p1-ro]".to_string()
        )]
    );
}

#[test]
fn a_function_variable_set_by_two_tables_is_refused_at_the_second() {
    let two = |second: &str| format!("{MINIMAL}[[lambda]]\nfunction_name = \"app\"\n\n{second}");
    let d = errors(&two("[[lambda]]\nfunction_name = \"app\"\n"));
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].key, "lambda[1].function_name");
    assert_eq!(d[0].pos, Pos { line: 22, col: 1 }, "the second table");
    assert!(
        d[0].message
            .contains("lambda[0] (line 19) sets DB_HOST of Lambda app already"),
        "{}",
        d[0].message
    );
    // By ARN, it is the same function; a reader variable counts too.
    let arn = "arn:aws:lambda:us-east-1:123456789012:function:app";
    let d = errors(&two(&format!(
        "[[lambda]]\nfunction_name = \"{arn}\"\nenv_var = \"OTHER\"\nread_env_var = \"DB_HOST\"\n"
    )));
    assert!(
        d.iter().any(|d| d.key == "lambda[1].function_name"),
        "{d:?}"
    );
    // Another variable of the same function is another table's to set.
    let rb = parse(&two(
        "[[lambda]]\nfunction_name = \"app\"\nenv_var = \"DATABASE_HOST\"\n",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(rb.lambdas.len(), 2);
}

#[test]
fn the_invoke_check_probes_or_invokes_never_both() {
    let rb = parse(&format!("{MINIMAL}[invoke_check]\nprobe = true\n")).unwrap();
    assert!(rb.invoke_check.probe);
    assert!(!parse(MINIMAL).unwrap().invoke_check.probe);
    let errs = errors(&format!(
        "{MINIMAL}[invoke_check]\npayload = \"{{}}\"\nprobe = true\n"
    ));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].key, "invoke_check.probe");
    assert_eq!((errs[0].pos.line, errs[0].pos.col), (21, 9), "{errs:?}");
    assert!(
        errs[0].message.contains("remove payload and expect"),
        "{errs:?}"
    );
}
