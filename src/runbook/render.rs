//! Runbook problems for people: each problem's line as before
//! (`file:line:col: key: message`), then the file's line with the value
//! marked, drawn by miette. The error's `Display` (and so the JSON error
//! document) stays the plain lines.

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, NamedSource};

use super::types::{Diagnostic, RunbookError};

/// The error as text for a terminal: `color` when it may use colours.
pub fn render(err: &RunbookError, color: bool) -> String {
    let Some(src) = &err.source else {
        return err.to_string();
    };
    let name = err.path.display().to_string();
    let mut out = format!("{}\n", err.headline());
    for d in &err.diagnostics {
        out.push_str(&err.line(d));
        out.push('\n');
        out.push_str(&snippet(&name, src, d, color).unwrap_or_default());
    }
    out
}

/// The file's lines around `d`, its value marked; None when the position
/// is not in the text.
fn snippet(name: &str, src: &str, d: &Diagnostic, color: bool) -> Option<String> {
    let start = offset_of(src, d.pos.line, d.pos.col)?;
    let span = start..start + value_len(&src[start..]);
    let label = if d.key.is_empty() {
        "here".to_string()
    } else {
        d.key.clone()
    };
    let diag = MietteDiagnostic::new("").with_labels([LabeledSpan::at(span, label)]);
    let report =
        miette::Report::new(diag).with_source_code(NamedSource::new(name, src.to_string()));
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let mut text = String::new();
    GraphicalReportHandler::new_themed(theme)
        .with_context_lines(1)
        .render_report(&mut text, report.as_ref())
        .ok()?;
    // Keep the drawing of the source, not miette's own (empty) headline.
    let from = text.find("╭─")?;
    let from = text[..from].rfind('\n').map_or(0, |i| i + 1);
    Some(
        text[from..]
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>(),
    )
}

/// The byte offset of a 1-based line and column (in characters).
fn offset_of(src: &str, line: usize, col: usize) -> Option<usize> {
    let line_start = if line <= 1 {
        0
    } else {
        src.match_indices('\n').nth(line - 2)?.0 + 1
    };
    let rest = &src[line_start..];
    let end = rest.find('\n').unwrap_or(rest.len());
    let at = rest[..end]
        .char_indices()
        .nth(col - 1)
        .map_or(end, |(i, _)| i);
    Some(line_start + at)
}

/// How much of the text at a problem's position to mark: a quoted string
/// whole, a list to its bracket on that line, else the word.
fn value_len(text: &str) -> usize {
    let line = &text[..text.find('\n').unwrap_or(text.len())];
    let mut chars = line.char_indices();
    let len = match chars.next() {
        None => 0,
        Some((_, '"')) => {
            let mut escaped = false;
            line.char_indices()
                .skip(1)
                .find(|(_, c)| {
                    let end = *c == '"' && !escaped;
                    escaped = *c == '\\' && !escaped;
                    end
                })
                .map_or(line.len(), |(i, _)| i + 1)
        }
        Some((_, '[')) => line.rfind(']').map_or(line.len(), |i| i + 1),
        Some(_) => line
            .find(|c: char| c.is_whitespace() || matches!(c, ',' | ']' | '"'))
            .unwrap_or(line.len()),
    };
    len.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_of_several_lines_loses_nothing() {
        use crate::runbook::Pos;
        let src = "a = 1\nb = \"x\"\n";
        let at = |line, col, message: &str| Diagnostic {
            pos: Pos { line, col },
            key: String::new(),
            message: message.into(),
        };
        let err = RunbookError {
            path: "r.toml".into(),
            diagnostics: vec![at(1, 5, "first\nsecond"), at(2, 5, "third")],
            source: Some(src.into()),
        };
        let text = render(&err, false);
        for part in [
            "2 problems",
            "r.toml:1:5: first",
            "second",
            "r.toml:2:5: third",
            "b = \"x\"",
        ] {
            assert!(text.contains(part), "{part:?} is missing:\n{text}");
        }
    }

    #[test]
    fn the_value_at_a_position_is_marked_whole() {
        assert_eq!(value_len(r#""a \"b\" c" # x"#), 11);
        assert_eq!(value_len(r#"["a", "b"] # x"#), 10);
        assert_eq!(value_len("1800\nnext"), 4);
        assert_eq!(
            value_len("${env.X}\" # a"),
            8,
            "a reference inside a string"
        );
        assert_eq!(value_len(""), 1);
        let src = "a = 1\nbé = \"x\"\n";
        assert_eq!(offset_of(src, 2, 6), Some(src.find('"').unwrap()));
        assert_eq!(offset_of(src, 9, 1), None);
    }
}
