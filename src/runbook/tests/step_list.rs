//! The step list: references to steps' outputs, the list's problems, and
//! the graph (what runs at once, what must come first).

use super::*;

#[test]
fn step_references_are_checked() {
    // Unknown step, unknown output, a step not listed, a step listed later.
    let src = MINIMAL.replace("name = \"sg\"", "name = \"${steps.proxy-rol.arn}\"");
    let d = errors(&src);
    assert!(d[0].message.contains("did you mean `proxy-role`"), "{d:?}");

    let src = MINIMAL.replace("name = \"sg\"", "name = \"${steps.proxy-role.id}\"");
    let d = errors(&src);
    assert!(
        d[0].message
            .contains("has no output `id`; its outputs are: arn, name"),
        "{d:?}"
    );

    let src = MINIMAL
        .replace("name = \"sg\"", "name = \"${steps.proxy-role.name}-sg\"")
        .replace(
            "steps = [\"proxy-role\", \"proxy-security-group\"]",
            "steps = [\"proxy-security-group\"]",
        );
    let d = errors(&src);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(
        d[0].message.contains("`proxy-role` is not in `steps`"),
        "{d:?}"
    );

    // Writing the value instead is offered only where a key can hold it.
    let listing = |steps: &str| {
        MINIMAL.replace(
            "steps = [\"proxy-role\", \"proxy-security-group\"]",
            &format!("steps = {steps}"),
        )
    };
    let d = errors(&listing(r#"["proxy-security-group", "proxy"]"#));
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].key, "proxy.role_arn", "{d:?}");
    assert!(
        d[0].message
            .contains("or write the value in `proxy.role_arn` instead"),
        "{d:?}"
    );
    // A step's own need of the proxy (targets reads its name): with `proxy`
    // left out, `proxy.name` names an existing one, read from the account.
    let rb = parse(&listing(r#"["targets"]"#));
    assert!(rb.is_ok(), "{:?}", rb.err());

    let src = MINIMAL
        .replace("name = \"sg\"", "name = \"${steps.proxy-role.name}-sg\"")
        .replace(
            "steps = [\"proxy-role\", \"proxy-security-group\"]",
            "steps = [\"proxy-security-group\", \"proxy-role\"]",
        );
    let d = errors(&src);
    assert!(d[0].message.contains("which runs later"), "{d:?}");

    // In the right order it is fine, and stays a reference until run time.
    let src = MINIMAL.replace("name = \"sg\"", "name = \"${steps.proxy-role.name}-sg\"");
    let rb = parse(&src).unwrap();
    assert!(rb.proxy_security_group.name.literal().is_none());
    let filled = rb
        .proxy_security_group
        .name
        .fill(&|s, o| (s == "proxy-role" && o == "name").then(|| "R".to_string()))
        .unwrap();
    assert_eq!(filled, "R-sg");
}

#[test]
fn step_list_problems() {
    let src = MINIMAL.replace(
        "steps = [\"proxy-role\", \"proxy-security-group\"]",
        "steps = [\"proxy-role\", \"proxy-role\", \"nope\", 3]",
    );
    let d = errors(&src);
    let messages: Vec<&str> = d.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(d.len(), 3, "{messages:?}");
    assert!(messages[0].contains("listed twice"));
    assert!(messages[1].contains("unknown step `nope`"));
    assert!(messages[2].contains("expected a step name"));
}

#[test]
fn the_graph_lets_independent_steps_run_at_once_and_orders_the_rest() {
    let src = include_str!("../../../runbooks/cookbook-4.3-mysql.toml");
    let rb = parse(src).unwrap();
    let g = crate::steps::dependencies(&rb);
    let deps = |s: &str| g[s].iter().map(String::as_str).collect::<Vec<_>>();
    assert!(deps("proxy-role").is_empty());
    assert!(deps("proxy-security-group").is_empty());
    assert_eq!(deps("secret-access"), ["proxy-role"]);
    assert_eq!(
        deps("proxy"),
        ["proxy-role", "secret-access", "proxy-security-group"]
    );
    assert_eq!(deps("db-ingress"), ["proxy-security-group"]);
    assert_eq!(deps("lambda-ingress"), ["proxy-security-group"]);
    assert_eq!(deps("connect-policy"), ["proxy"]);
    assert_eq!(deps("targets"), ["secret-access", "proxy", "db-ingress"]);
    assert_eq!(
        deps("lambda-env"),
        ["proxy", "connect-policy", "targets", "lambda-ingress"]
    );
    assert_eq!(
        deps("invoke-check"),
        ["connect-policy", "targets", "lambda-ingress", "lambda-env"]
    );
    // A run that makes the proxy does not wait for its role's grant (the
    // target does); one that changes it does.
    let making = crate::steps::dependencies_for(&rb, |s| s == "proxy");
    assert_eq!(making["proxy"], ["proxy-role", "proxy-security-group"]);
    assert_eq!(making["targets"], g["targets"]);
    let making_all = crate::steps::dependencies_for(&rb, |_| true);
    assert_eq!(
        making_all["targets"], g["targets"],
        "waits that always hold"
    );
}

#[test]
fn a_step_listed_before_what_it_must_follow_is_an_error_with_the_reason() {
    let src = include_str!("../../../runbooks/cookbook-4.3-mysql.toml").replace(
        "  \"db-ingress\",            # 6. DB SG admits the proxy SG\n  \"targets\",",
        "  \"targets\",\n  \"db-ingress\",",
    );
    let d = errors(&src);
    assert_eq!(d.len(), 1, "{d:?}");
    assert!(
        d[0].message
            .contains("`targets` is listed before `db-ingress`"),
        "{d:?}"
    );
    assert!(d[0].message.contains("CONNECTION_FAILED"), "{d:?}");
    assert!(
        d[0].message.contains("list `db-ingress` before `targets`"),
        "{d:?}"
    );
    assert!(d[0].pos.line > 1, "{d:?}");
}
