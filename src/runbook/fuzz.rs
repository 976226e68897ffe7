//! Property tests (bounded, so they run in CI): the parser and the
//! templating never panic, whatever the input, and every problem they
//! report points inside the file.

use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::template::{Piece, fill_placeholders, parse};

const COOKBOOK: &str = include_str!("../../runbooks/cookbook-4.3-mysql.toml");

fn env(name: &str) -> Option<String> {
    // Every variable set, to realistic values: mutations then hit the
    // deeper checks rather than stopping at unset variables.
    Some(match name {
        "VPC_ID" => "vpc-0a1b2c3d4e5f60718".into(),
        "ISOLATED_SUBNETS" => "subnet-0aaaaaaaa subnet-0bbbbbbbb".into(),
        "RDS_SECRET_ARN" => "arn:aws:secretsmanager:us-east-1:123456789012:secret:s".into(),
        "RDS_SG" | "DB_APP_FUNCTION_SG_ID" => "sg-0123456789abcdef0".into(),
        _ => "db1".into(),
    })
}

/// Parses and checks that the outcome is well-formed.
fn parse_checked(src: &str) {
    let lines = src.split('\n').count();
    match Runbook::parse(Path::new("fuzz.toml"), src, &env, &crate::steps::Catalogue) {
        Ok(rb) => assert!(!rb.steps.is_empty()),
        Err(e) => {
            assert!(!e.diagnostics.is_empty());
            for d in &e.diagnostics {
                assert!(
                    d.pos.line >= 1 && d.pos.line <= lines,
                    "{d:?} outside {lines} lines"
                );
                assert!(d.pos.col >= 1);
                assert!(!d.message.is_empty());
            }
            let _ = e.to_string();
        }
    }
}

/// Edits of the shipped runbook: a span cut out, or text put in.
fn mutation() -> impl Strategy<Value = String> {
    let len = COOKBOOK.len();
    let fragments = prop::sample::select(vec![
        "",
        "\"",
        "[",
        "]",
        "=",
        "\n",
        "${",
        "}",
        "${env.",
        "${steps.proxy.",
        "[[lambda]]\n",
        "[proxy]\n",
        "x = 1\n",
        "port = -1\n",
        "name = \"\"\n",
        "'''",
        "\"\"\"",
        "#",
        "é",
        "\u{0}",
        "steps = []\n",
    ]);
    (0..len, 0..200usize, fragments, any::<bool>()).prop_map(move |(at, cut, text, insert)| {
        let at = (0..=at)
            .rev()
            .find(|i| COOKBOOK.is_char_boundary(*i))
            .unwrap_or(0);
        if insert {
            format!("{}{}{}", &COOKBOOK[..at], text, &COOKBOOK[at..])
        } else {
            let end = (at + cut).min(len);
            let end = (end..=len)
                .find(|i| COOKBOOK.is_char_boundary(*i))
                .unwrap_or(len);
            format!("{}{}", &COOKBOOK[..at], &COOKBOOK[end..])
        }
    })
}

fn piece() -> impl Strategy<Value = Piece> {
    prop_oneof![
        "[a-zA-Z0-9 ./:-]{1,12}".prop_map(Piece::Lit),
        "[A-Z_][A-Z0-9_]{0,8}".prop_map(Piece::Env),
        ("[a-z][a-z-]{0,10}[a-z]", "[a-z_]{1,8}")
            .prop_map(|(step, output)| Piece::Step { step, output }),
    ]
}

fn render(pieces: &[Piece]) -> String {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Lit(s) => s.clone(),
            Piece::Env(n) => format!("${{env.{n}}}"),
            Piece::Step { step, output } => format!("${{steps.{step}.{output}}}"),
        })
        .collect()
}

/// Adjacent literals merge when parsed back.
fn merged(pieces: Vec<Piece>) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::new();
    for p in pieces {
        match (out.last_mut(), p) {
            (Some(Piece::Lit(prev)), Piece::Lit(s)) => prev.push_str(&s),
            (_, p) => out.push(p),
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn the_parser_never_panics_on_any_text(src in "\\PC{0,300}") {
        parse_checked(&src);
    }

    #[test]
    fn the_parser_never_panics_on_an_edited_runbook(src in mutation()) {
        parse_checked(&src);
    }

    #[test]
    fn templates_never_panic(s in "\\PC{0,80}") {
        let _ = parse(&s);
    }

    #[test]
    fn templates_round_trip(pieces in prop::collection::vec(piece(), 0..6)) {
        let parsed: Vec<Piece> = parse(&render(&pieces)).unwrap().into_iter().map(|(p, _)| p).collect();
        prop_assert_eq!(parsed, merged(pieces));
    }

    #[test]
    fn placeholders_never_panic_and_leave_other_text(s in "\\PC{0,80}", v in "\\PC{0,10}") {
        let out = fill_placeholders(&s, &[("AWS_REGION", &v), ("RDSProxyID", &v)]);
        if !s.contains("AWS_REGION") && !s.contains("RDSProxyID") {
            prop_assert_eq!(out, s);
        }
    }
}
