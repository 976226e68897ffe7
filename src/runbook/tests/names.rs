//! Names, tags and AWS's limits on the values a runbook holds.

use super::*;

#[test]
fn owner_tag_cannot_be_overridden() {
    let src = format!("{MINIMAL}[tags]\n\"{OWNER_TAG}\" = \"someone-else\"\n");
    let d = errors(&src);
    assert!(d[0].message.contains("set by the tool"), "{d:?}");
}

#[test]
fn proxy_names_follow_aws_rules() {
    assert!(check_proxy_name("my-proxy-1").is_ok());
    assert!(check_proxy_name(&"a".repeat(63)).is_ok());
    assert!(check_proxy_name(&"a".repeat(64)).is_err());
    for bad in ["", "1abc", "a--b", "a-", "a_b", &"a".repeat(64), "ab c"] {
        assert!(check_proxy_name(bad).is_err(), "{bad:?} should be refused");
    }
}

#[test]
fn runbook_names_are_safe_for_files_and_tags() {
    assert!(check_runbook_name("cookbook-4-3").is_ok());
    for bad in ["", "../x", "a b", "-a", &"a".repeat(65)] {
        assert!(check_runbook_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn tags_are_checked_as_a_whole_too() {
    let tags = |lines: &str| format!("{MINIMAL}[tags]\n{lines}");
    // 49 of the user's and the tool's own: 50, IAM's most.
    let many = |n: usize| {
        (0..n)
            .map(|i| format!("T{i} = \"v\"\n"))
            .collect::<String>()
    };
    parse(&tags(&many(49))).unwrap_or_else(|e| panic!("{e}"));
    let d = errors(&tags(&many(50)));
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0].key, "tags");
    assert!(d[0].message.contains("make 51"), "{}", d[0].message);
    // One key twice in IAM's eyes, and the tool's own in another case.
    let d = errors(&tags(
        "Team = \"a\"\nteam = \"b\"\n\"RDS-PROXY-RUNBOOK:runbook\" = \"x\"\n",
    ));
    let keys: Vec<&str> = d.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(
        keys,
        ["tags.team", "tags.RDS-PROXY-RUNBOOK:runbook"],
        "{d:?}"
    );
    assert!(
        d[0].message.contains("`Team` is a tag already"),
        "{}",
        d[0].message
    );
    // A value from the environment is checked as filled.
    let mut env = cookbook_env();
    env.insert("TEAM", "a, b");
    let src = tags("Team = \"${env.TEAM}\"\n");
    let d = parse_with(&src, &env).unwrap_err().diagnostics;
    assert_eq!(d[0].key, "tags.Team", "{d:?}");
}

#[test]
fn aws_limits_on_names_descriptions_and_variables() {
    let d = errors(&MINIMAL.replace(
        "[proxy_security_group]\nname = \"sg\"",
        "[proxy_security_group]\nname = \"sg\"\ndescription = \"Sécurité\"",
    ));
    assert_eq!(d[0].key, "proxy_security_group.description", "{d:?}");
    let d = errors(&format!(
        "{MINIMAL}[[lambda]]\nfunction_name = \"a\"\nenv_var = \"AWS_REGION\"\nread_env_var = \"DB-HOST\"\n"
    ));
    let keys: Vec<&str> = d.iter().map(|d| d.key.as_str()).collect();
    assert!(keys.contains(&"lambda[0].env_var"), "{d:?}");
    assert!(keys.contains(&"lambda[0].read_env_var"), "{d:?}");
    let d = errors(&format!(
        "{MINIMAL}[pool]\nconnection_borrow_timeout = 301\n"
    ));
    assert!(d[0].message.contains("use 0 to 300"), "{d:?}");
    // A lenient load does not judge a value it does not know.
    let dir = std::env::temp_dir().join(format!("rpr-lenient-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("r.toml");
    let src = format!("{MINIMAL}[[lambda]]\nfunction_name = \"a\"\nenv_var = \"${{env.VAR}}\"\n");
    std::fs::write(&path, src).unwrap();
    let env = cookbook_env();
    let lookup = |name: &str| env.get(name).map(|v| v.to_string());
    Runbook::load(&path, &lookup, true, &Catalogue).unwrap_or_else(|e| panic!("{e}"));
    assert!(Runbook::load(&path, &lookup, false, &Catalogue).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}
