//! `runbooks/template.toml` filled in: `init` writes the template itself,
//! its comments and defaults kept, with the values it read set (a
//! commented key uncommented when it gets a value) and its own notes
//! beside them; so the template and what `init` writes cannot drift apart.
//!
//! The template is read as lines, in sections: a section starts at its
//! header (`[x]`, `[[x]]`, or the same commented, `# [x]`), with the comment
//! lines right above it; the lines before the first header are the top.
//! A key is a line `key = value` or `# key = value` (a value may run over
//! several lines while its brackets are open).

use std::collections::HashMap;

pub const TEMPLATE: &str = include_str!("../../../runbooks/template.toml");

/// What to do with a key of a section.
pub enum Set {
    /// `key = value`, uncommented, with a note after it (None: the
    /// template's own comment on that line, if any).
    Value(String, Option<String>),
    /// The key's line(s) replaced by these lines (none: left out).
    Lines(Vec<String>),
}

/// What `init` puts into one section (or one table of an array).
#[derive(Default)]
pub struct Fill {
    keys: HashMap<&'static str, Set>,
    /// Comment lines put right before a key's line.
    before: HashMap<&'static str, Vec<String>>,
    /// Comment lines right after the header.
    after_header: Vec<String>,
    /// A note at the end of the header line (which stays commented when
    /// the template's is and no value is set).
    header_note: Option<String>,
}

impl Fill {
    pub fn value(&mut self, key: &'static str, value: impl Into<String>) -> &mut Self {
        self.keys.insert(key, Set::Value(value.into(), None));
        self
    }
    pub fn noted(
        &mut self,
        key: &'static str,
        value: impl Into<String>,
        note: impl Into<String>,
    ) -> &mut Self {
        self.keys
            .insert(key, Set::Value(value.into(), Some(note.into())));
        self
    }
    pub fn lines(&mut self, key: &'static str, lines: Vec<String>) -> &mut Self {
        self.keys.insert(key, Set::Lines(lines));
        self
    }
    pub fn before(&mut self, key: &'static str, lines: Vec<String>) -> &mut Self {
        self.before.entry(key).or_default().extend(lines);
        self
    }
    pub fn after_header(&mut self, line: String) -> &mut Self {
        self.after_header.push(line);
        self
    }
    pub fn header_note(&mut self, note: String) -> &mut Self {
        self.header_note = Some(note);
        self
    }
}

struct Section {
    /// "" for the top.
    name: String,
    /// Written `# [name]` in the template.
    commented: bool,
    /// The comment lines above the header.
    preface: Vec<String>,
    header: Option<String>,
    body: Vec<String>,
}

/// The template, read into sections, and the fills given so far.
pub struct Filled {
    sections: Vec<Section>,
    fills: HashMap<String, Vec<Fill>>,
    /// The top's first comment lines (up to a lone `#`) replaced by these.
    intro: Vec<String>,
}

/// `[name]` or `[[name]]`, commented or not: the name and whether it is
/// commented.
fn header(line: &str) -> Option<(String, bool)> {
    let (rest, commented) = match line.strip_prefix("# ") {
        Some(rest) => (rest, true),
        None => (line, false),
    };
    let rest = rest.split("  #").next().unwrap_or(rest).trim_end();
    let inner = rest.strip_prefix("[[").and_then(|r| r.strip_suffix("]]"));
    let inner = inner.or_else(|| rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')))?;
    inner
        .chars()
        .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
        .then(|| (inner.to_string(), commented))
}

/// The key of a line `key = ...` or `# key = ...`, and whether it is
/// commented.
fn key_of(line: &str) -> Option<(&str, bool)> {
    let (rest, commented) = match line.strip_prefix("# ") {
        Some(rest) => (rest, true),
        None => (line, false),
    };
    let (key, _) = rest.split_once(" = ")?;
    let ok = !key.is_empty() && key.chars().all(|c| c.is_ascii_lowercase() || c == '_');
    ok.then_some((key, commented))
}

/// The comment at the end of a key's line (after its value), if any.
fn trailing_comment(line: &str) -> Option<&str> {
    let (_, value) = line.split_once(" = ")?;
    let mut quote = None;
    for (i, c) in value.char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '#') => return Some(value[i + 1..].trim()),
            _ => {}
        }
    }
    None
}

/// How many lines the value starting on `lines[0]` spans.
fn value_span(lines: &[String]) -> usize {
    let depth = |s: &str| {
        let s = s.split(" #").next().unwrap_or(s);
        s.matches('[').count() as i64 - s.matches(']').count() as i64
    };
    let mut open = depth(lines[0].split_once(" = ").map_or("", |(_, v)| v));
    let mut n = 1;
    while open > 0 && n < lines.len() {
        open += depth(&lines[n]);
        n += 1;
    }
    n
}

impl Filled {
    pub fn new() -> Filled {
        let mut sections = vec![Section {
            name: String::new(),
            commented: false,
            preface: Vec::new(),
            header: None,
            body: Vec::new(),
        }];
        for line in TEMPLATE.lines() {
            if let Some((name, commented)) = header(line) {
                // The comment lines right above the header are its own.
                let last = sections.last_mut().expect("the top");
                let start = last
                    .body
                    .iter()
                    .rposition(|l| !l.starts_with('#'))
                    .map_or(0, |i| i + 1);
                let preface = last.body.split_off(start);
                sections.push(Section {
                    name,
                    commented,
                    preface,
                    header: Some(line.to_string()),
                    body: Vec::new(),
                });
            } else {
                let last = sections.last_mut().expect("the top");
                last.body.push(line.to_string());
            }
        }
        Filled {
            sections,
            fills: HashMap::new(),
            intro: Vec::new(),
        }
    }

    /// The template's lines for `key` in `section` (its value's lines).
    pub fn template_lines(&self, section: &str, key: &str) -> Vec<String> {
        let s = self.sections.iter().find(|s| s.name == section);
        let body = s.map_or(&[][..], |s| &s.body[..]);
        match body
            .iter()
            .position(|l| key_of(l).is_some_and(|(k, _)| k == key))
        {
            Some(i) => body[i..i + value_span(&body[i..])].to_vec(),
            None => Vec::new(),
        }
    }

    pub fn intro(&mut self, lines: Vec<String>) {
        self.intro = lines;
    }

    /// The fill of a section (`""`: the top).
    pub fn section(&mut self, name: &str) -> &mut Fill {
        let fills = self.fills.entry(name.to_string()).or_default();
        if fills.is_empty() {
            fills.push(Fill::default());
        }
        &mut fills[0]
    }

    /// The tables of an array section, one per fill: none leaves the
    /// template's as it is when commented, and out when not.
    pub fn tables(&mut self, name: &str, fills: Vec<Fill>) {
        self.fills.insert(name.to_string(), fills);
    }

    pub fn render(&self) -> String {
        let mut out: Vec<String> = Vec::new();
        for s in &self.sections {
            match self.fills.get(&s.name) {
                None => {
                    out.extend(s.preface.iter().cloned());
                    out.extend(s.header.iter().cloned());
                    out.extend(s.body.iter().cloned());
                    if s.name.is_empty() {
                        self.replace_intro(&mut out);
                    }
                }
                Some(fills) if fills.is_empty() => {
                    if s.commented {
                        out.extend(s.preface.iter().cloned());
                        out.extend(s.header.iter().cloned());
                        out.extend(s.body.iter().cloned());
                    } else {
                        // Left out: keep the blank line that ends it.
                        out.extend(s.body.iter().filter(|l| l.is_empty()).take(1).cloned());
                    }
                }
                Some(fills) => {
                    for (n, fill) in fills.iter().enumerate() {
                        let last = n + 1 == fills.len();
                        if n == 0 {
                            out.extend(s.preface.iter().cloned());
                        }
                        self.render_one(s, fill, last, &mut out);
                    }
                    if s.name.is_empty() {
                        self.replace_intro(&mut out);
                    }
                }
            }
        }
        let mut text = out.join("\n");
        text.push('\n');
        text
    }

    fn replace_intro(&self, out: &mut Vec<String>) {
        if self.intro.is_empty() {
            return;
        }
        let end = out
            .iter()
            .position(|l| l == "#" || l.is_empty())
            .unwrap_or(0);
        out.splice(0..end, self.intro.iter().cloned());
    }

    /// One table of a section: its header, then its lines with the fill's
    /// values; the blank lines that end it only after the last table.
    fn render_one(&self, s: &Section, fill: &Fill, last: bool, out: &mut Vec<String>) {
        if let Some(h) = &s.header {
            let uncomment = !fill.keys.is_empty() || !s.commented;
            let mut h = match (uncomment, h.strip_prefix("# ")) {
                (true, Some(rest)) => rest.to_string(),
                _ => h.clone(),
            };
            if let Some(note) = &fill.header_note {
                h = format!("{h}  # {note}");
            }
            out.push(h);
        }
        out.extend(fill.after_header.iter().cloned());
        let body = &s.body;
        let trailing_blank = body.iter().rev().take_while(|l| l.is_empty()).count();
        let lines = &body[..body.len() - trailing_blank];
        let mut i = 0;
        let mut seen = Vec::new();
        while i < lines.len() {
            let line = &lines[i];
            let Some((key, commented)) = key_of(line) else {
                out.push(line.clone());
                i += 1;
                continue;
            };
            seen.push(key);
            let span = value_span(&lines[i..]);
            if let Some(before) = fill.before.get(key) {
                out.extend(before.iter().cloned());
            }
            match fill.keys.get(key) {
                Some(Set::Value(value, note)) => {
                    let plain = if commented { &line[2..] } else { &line[..] };
                    let note = note.as_deref().or_else(|| trailing_comment(plain));
                    out.push(match note {
                        Some(note) => format!("{key} = {value}  # {note}"),
                        None => format!("{key} = {value}"),
                    });
                }
                Some(Set::Lines(with)) => out.extend(with.iter().cloned()),
                None => out.extend(lines[i..i + span].iter().cloned()),
            }
            i += span;
        }
        // A value for a key the template does not have (any more) is still
        // written, at the table's end, rather than lost.
        let mut missing: Vec<_> = fill
            .keys
            .iter()
            .filter(|(k, _)| !seen.contains(k))
            .collect();
        missing.sort_by_key(|(k, _)| **k);
        for (key, set) in missing {
            match set {
                Set::Value(value, Some(note)) => out.push(format!("{key} = {value}  # {note}")),
                Set::Value(value, None) => out.push(format!("{key} = {value}")),
                Set::Lines(with) => out.extend(with.iter().cloned()),
            }
        }
        if last {
            out.extend(std::iter::repeat_n(String::new(), trailing_blank));
        } else {
            out.push(String::new());
        }
    }
}
