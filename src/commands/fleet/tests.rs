//! The fleet's unit tests: runbooks that collide, and the fleet's exit
//! code.

use super::*;
use crate::cli::Selection;
use crate::runbook::Runbook;

/// The cookbook's runbook as `file`, named `name`, for `proxy` and
/// `function`, in `region`.
fn book(file: &str, name: &str, proxy: &str, function: &str, region: &str) -> (PathBuf, Runbook) {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("runbooks/cookbook-4.3-mysql.toml"),
    )
    .unwrap()
    .replacen(
        "name = \"cookbook-4-3\"",
        &format!("name = \"{name}\"\nregion = \"{region}\""),
        1,
    );
    let env = |k: &str| {
        Some(
            match k {
                "VPC_ID" => "vpc-0a1b2c3d4e5f60718",
                "ISOLATED_SUBNETS" => "subnet-0aaaaaaaaaaaaaaaa subnet-0bbbbbbbbbbbbbbbb",
                "RDS_SG" | "DB_APP_FUNCTION_SG_ID" => "sg-0dddddddddddddddd",
                "RDS_SECRET_ARN" => "arn:aws:secretsmanager:us-east-1:123456789012:secret:s-AbC",
                "DB_NAME" => proxy,
                "DB_APP_FUNCTION_NAME" => function,
                _ => "db1",
            }
            .to_string(),
        )
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("runbooks")
        .join(file);
    let rb = Runbook::parse(&path, &text, &env, &crate::steps::Catalogue).expect("a runbook");
    (path, rb)
}

fn clashes(books: &[(PathBuf, Runbook)]) -> Vec<(bool, String)> {
    let aws = crate::aws::AwsOptions {
        profile: Some("p".into()),
        region: None,
        endpoint_url: None,
    };
    let described: Vec<_> = books
        .iter()
        .map(|(p, rb)| {
            (
                p.as_path(),
                rb,
                Place::expected(&aws, rb.aws(), &|_| None),
                format!("{}.state", rb.name),
            )
        })
        .collect();
    collisions(&described)
}

#[test]
fn runbooks_that_share_a_proxy_a_variable_or_a_name_collide() {
    let a = book("a.toml", "a", "p1", "f1", "r1");
    let b = book("b.toml", "b", "p2", "f2", "r1");
    assert!(clashes(&[a.clone(), b]).is_empty());
    // The same proxy name: in one region a collision, in two not.
    let found = clashes(&[a.clone(), book("c.toml", "c", "p1", "f3", "r1")]);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].0 && found[0].1.contains("DB proxy p1"),
        "{found:?}"
    );
    assert!(clashes(&[a.clone(), book("c.toml", "c", "p1", "f3", "r2")]).is_empty());
    // The same function's variable.
    let found = clashes(&[a.clone(), book("d.toml", "d", "p4", "f1", "r1")]);
    assert!(
        found
            .iter()
            .any(|(_, c)| c.contains("DB_HOST of Lambda f1")),
        "{found:?}"
    );
    // The same name: one state, one tag.
    let found = clashes(&[a, book("e.toml", "a", "p5", "f5", "r1")]);
    assert!(
        found.iter().any(|(_, c)| c.contains("all named `a`")),
        "{found:?}"
    );
}

fn ended(code: Option<i32>) -> Ended {
    Ended {
        code,
        ..Ended::not_started(Path::new("x"), "x".into())
    }
}

#[test]
fn the_fleets_exit_code_says_all_ok_some_failed_or_locked() {
    let select = Selection::default();
    let run = Job::Run {
        select: &select,
        how: RunHow::default(),
    };
    let code = |codes: &[Option<i32>]| {
        fleet_code(&run, &codes.iter().map(|c| ended(*c)).collect::<Vec<_>>())
    };
    assert_eq!(code(&[Some(0), Some(0)]), 0);
    assert_eq!(code(&[Some(0), Some(1), Some(0)]), 1);
    assert_eq!(code(&[Some(0), Some(4)]), 4);
    assert_eq!(code(&[Some(4), Some(1)]), 1);
    assert_eq!(code(&[Some(1), None]), 1);
    assert_eq!(code(&[Some(130), Some(130)]), 130);
}
