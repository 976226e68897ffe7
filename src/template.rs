//! `${...}` references inside runbook strings.
//!
//! Two namespaces exist: `${env.NAME}` (filled from the environment when the
//! runbook is loaded, so the cookbook's exported shell variables work as they
//! are) and `${steps.STEP.OUTPUT}` (filled from the state when a step runs).
//! `$${` writes a literal `${`.

use std::ops::Range;

/// One piece of a parsed string, with its byte range inside the string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Lit(String),
    Env(String),
    Step { step: String, output: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Byte offset inside the string where the problem starts.
    pub offset: usize,
    pub message: String,
}

/// Splits `s` into literal text and references.
pub fn parse(s: &str) -> Result<Vec<(Piece, Range<usize>)>, TemplateError> {
    let mut pieces = Vec::new();
    let mut lit = String::new();
    let mut lit_start = 0;
    let mut i = 0;
    let bytes = s.as_bytes();
    while i < bytes.len() {
        if s[i..].starts_with("$${") {
            lit.push_str("${");
            i += 3;
            continue;
        }
        if !s[i..].starts_with("${") {
            let ch = s[i..].chars().next().expect("in bounds");
            lit.push(ch);
            i += ch.len_utf8();
            continue;
        }
        let start = i;
        let Some(close) = s[i + 2..].find('}') else {
            return Err(TemplateError {
                offset: start,
                message: "unterminated `${`: close the reference with `}` (write `$${` for a literal `${`)".into(),
            });
        };
        let body = &s[i + 2..i + 2 + close];
        let end = i + 2 + close + 1;
        if !lit.is_empty() {
            pieces.push((Piece::Lit(std::mem::take(&mut lit)), lit_start..start));
        }
        pieces.push((parse_reference(body, start)?, start..end));
        i = end;
        lit_start = end;
    }
    if !lit.is_empty() {
        pieces.push((Piece::Lit(lit), lit_start..s.len()));
    }
    Ok(pieces)
}

fn parse_reference(body: &str, offset: usize) -> Result<Piece, TemplateError> {
    let err = |message: String| TemplateError { offset, message };
    let parts: Vec<&str> = body.split('.').collect();
    let valid = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    match parts.as_slice() {
        ["env", name] if valid(name) => Ok(Piece::Env(name.to_string())),
        ["steps", step, output] if valid(step) && valid(output) => Ok(Piece::Step {
            step: step.to_string(),
            output: output.to_string(),
        }),
        ["env", ..] => Err(err(format!(
            "`${{{body}}}` is not a valid environment reference: write `${{env.NAME}}`"
        ))),
        ["steps", ..] => Err(err(format!(
            "`${{{body}}}` is not a valid step reference: write `${{steps.STEP.OUTPUT}}`"
        ))),
        _ => Err(err(format!(
            "unknown reference `${{{body}}}`: use `${{env.NAME}}` or `${{steps.STEP.OUTPUT}}`"
        ))),
    }
}

/// Replaces the placeholders of a policy template (the cookbook's `sed`
/// step): every `KEY` of `vars` found in `text` is replaced by its value.
/// Longer keys are replaced first so that one key being a prefix of another
/// cannot corrupt the result.
pub fn fill_placeholders(text: &str, vars: &[(&str, &str)]) -> String {
    let mut vars = vars.to_vec();
    vars.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    'outer: while !rest.is_empty() {
        for (key, value) in &vars {
            if !key.is_empty() && rest.starts_with(key) {
                out.push_str(value);
                rest = &rest[key.len()..];
                continue 'outer;
            }
        }
        let ch = rest.chars().next().expect("non-empty");
        out.push(ch);
        rest = &rest[ch.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(s: &str) -> Vec<Piece> {
        parse(s).unwrap().into_iter().map(|(p, _)| p).collect()
    }

    #[test]
    fn plain_text_is_one_literal() {
        assert_eq!(pieces("abc"), vec![Piece::Lit("abc".into())]);
        assert_eq!(pieces(""), vec![]);
    }

    #[test]
    fn env_and_step_references() {
        assert_eq!(
            pieces("arn:${env.AWS_REGION}:${steps.proxy-role.arn}/x"),
            vec![
                Piece::Lit("arn:".into()),
                Piece::Env("AWS_REGION".into()),
                Piece::Lit(":".into()),
                Piece::Step {
                    step: "proxy-role".into(),
                    output: "arn".into()
                },
                Piece::Lit("/x".into()),
            ]
        );
    }

    #[test]
    fn ranges_point_into_the_string() {
        let s = "a${env.X}b";
        let parsed = parse(s).unwrap();
        assert_eq!(&s[parsed[1].1.clone()], "${env.X}");
        assert_eq!(&s[parsed[2].1.clone()], "b");
    }

    #[test]
    fn dollar_dollar_escapes() {
        assert_eq!(pieces("$${env.X}"), vec![Piece::Lit("${env.X}".into())]);
        assert_eq!(pieces("cost $5"), vec![Piece::Lit("cost $5".into())]);
    }

    #[test]
    fn errors_name_the_offset_and_the_fix() {
        let e = parse("ab${env.X").unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(e.message.contains("unterminated"));
        let e = parse("x${foo.bar}").unwrap_err();
        assert_eq!(e.offset, 1);
        assert!(e.message.contains("unknown reference"), "{}", e.message);
        assert!(parse("${env.}").is_err());
        assert!(parse("${steps.only}").is_err());
        assert!(parse("${steps.a.b.c}").is_err());
        assert!(parse("${env.A B}").is_err());
    }

    #[test]
    fn non_ascii_literals_survive() {
        assert_eq!(pieces("é${env.X}ü").len(), 3);
    }

    #[test]
    fn placeholders_like_the_cookbook_sed() {
        let tpl = r#"{"Resource": "arn:aws:rds-db:AWS_REGION:AWS_ACCOUNT_ID:dbuser:RDSProxyID/*"}"#;
        let out = fill_placeholders(
            tpl,
            &[
                ("AWS_REGION", "us-east-1"),
                ("AWS_ACCOUNT_ID", "123456789012"),
                ("RDSProxyID", "prx-0abc"),
            ],
        );
        assert_eq!(
            out,
            r#"{"Resource": "arn:aws:rds-db:us-east-1:123456789012:dbuser:prx-0abc/*"}"#
        );
    }

    #[test]
    fn longer_placeholders_win() {
        let out = fill_placeholders("AB A", &[("A", "1"), ("AB", "2")]);
        assert_eq!(out, "2 1");
    }

    #[test]
    fn replaced_values_are_not_rescanned() {
        let out = fill_placeholders("A", &[("A", "B"), ("B", "C")]);
        assert_eq!(out, "B");
    }
}
