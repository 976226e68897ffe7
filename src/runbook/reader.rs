//! Typed access to the runbook's tables: each read remembers its key (so
//! what is never read is an unknown key) and its position (so every
//! problem points at the file's line and column).

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::PathBuf;

use toml_edit::{Item, TableLike, Value};

use super::names::{closest, unknown_output};
use super::types::*;
use crate::template::{self, Piece};

/// A table being read: remembers which keys the reader asked for.
pub(super) struct Tbl<'a> {
    pub(super) table: &'a dyn TableLike,
    pub(super) path: String,
    pub(super) pos: Pos,
    pub(super) known: Vec<&'static str>,
}

impl<'a> Tbl<'a> {
    pub(super) fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(super) fn get(&mut self, key: &'static str) -> Option<&'a Item> {
        self.known.push(key);
        self.table.get(key).filter(|i| !i.is_none())
    }
}

pub(super) struct Cx<'s> {
    pub(super) src: &'s str,
    pub(super) env: EnvLookup<'s>,
    pub(super) lenient: bool,
    pub(super) base_dir: PathBuf,
    pub(super) steps: &'s dyn StepCatalogue,
    pub(super) diags: Vec<Diagnostic>,
}

impl<'s> Cx<'s> {
    pub(super) fn error(&mut self, pos: Pos, key: &str, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            pos,
            key: key.to_string(),
            message: message.into(),
        });
    }

    pub(super) fn pos_of(&self, span: Option<Range<usize>>) -> Pos {
        span.map_or(Pos::start(), |s| Pos::at(self.src, s.start))
    }

    pub(super) fn item_pos(&self, tbl: &Tbl, key: &str, item: &Item) -> Pos {
        let span = item
            .span()
            .or_else(|| tbl.table.key(key).and_then(|k| k.span()));
        span.map_or(tbl.pos, |s| Pos::at(self.src, s.start))
    }

    pub(super) fn missing(&mut self, tbl: &Tbl, key: &str, what: &str) {
        let pos = tbl.pos;
        let section = if tbl.path.is_empty() {
            "at the top of the file".to_string()
        } else {
            format!("in [{}]", tbl.path)
        };
        let path = tbl.key_path(key);
        self.error(
            pos,
            &path,
            format!("missing required key: add `{key} = {what}` {section}"),
        );
    }

    pub(super) fn wrong_type(&mut self, pos: Pos, path: &str, want: &str, got: &str) {
        let hint = match (want, got) {
            ("an integer" | "true or false", "string") => "; write it without quotes",
            ("a string", _) => "; put the value in quotes",
            _ => "",
        };
        self.error(pos, path, format!("expected {want}, found {got}{hint}"));
    }

    /// Reports every key of `tbl` that no reader asked for.
    pub(super) fn finish(&mut self, tbl: Tbl) {
        let known: HashSet<&str> = tbl.known.iter().copied().collect();
        let mut unknown = Vec::new();
        for (key, _) in tbl.table.iter() {
            if !known.contains(key) {
                let pos = self.pos_of(tbl.table.key(key).and_then(|k| k.span()));
                unknown.push((pos, key.to_string()));
            }
        }
        for (pos, key) in unknown {
            let hint = match closest(&key, &tbl.known) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("known keys here: {}", tbl.known.join(", ")),
            };
            let path = tbl.key_path(&key);
            self.error(pos, &path, format!("unknown key; {hint}"));
        }
    }

    pub(super) fn table<'a>(
        &mut self,
        parent: &mut Tbl<'a>,
        key: &'static str,
        required: bool,
    ) -> Option<Tbl<'a>> {
        let path = parent.key_path(key);
        let Some(item) = parent.get(key) else {
            if required {
                let pos = if parent.path.is_empty() {
                    Pos::start()
                } else {
                    parent.pos
                };
                self.error(
                    pos,
                    &path,
                    format!("missing required section: add a `[{path}]` table"),
                );
            }
            return None;
        };
        let pos = self.item_pos(parent, key, item);
        match item.as_table_like() {
            Some(table) => Some(Tbl {
                table,
                path,
                pos,
                known: Vec::new(),
            }),
            None => {
                self.wrong_type(pos, &path, "a table", item.type_name());
                None
            }
        }
    }

    /// `[[key]]` tables (or an inline array of inline tables).
    pub(super) fn tables<'a>(&mut self, parent: &mut Tbl<'a>, key: &'static str) -> Vec<Tbl<'a>> {
        let path = parent.key_path(key);
        let Some(item) = parent.get(key) else {
            return Vec::new();
        };
        let pos = self.item_pos(parent, key, item);
        let tables: Vec<(&'a dyn TableLike, Option<Range<usize>>)> =
            if let Some(aot) = item.as_array_of_tables() {
                aot.iter()
                    .map(|t| (t as &dyn TableLike, t.span()))
                    .collect()
            } else if let Some(arr) = item.as_value().and_then(Value::as_array) {
                let mut v = Vec::new();
                for value in arr.iter() {
                    match value.as_inline_table() {
                        Some(t) => v.push((t as &dyn TableLike, value.span())),
                        None => {
                            let p = self.pos_of(value.span());
                            self.wrong_type(p, &path, "tables", value.type_name());
                        }
                    }
                }
                v
            } else {
                self.wrong_type(
                    pos,
                    &path,
                    &format!("`[[{path}]]` tables"),
                    item.type_name(),
                );
                return Vec::new();
            };
        tables
            .into_iter()
            .enumerate()
            .map(|(i, (table, span))| Tbl {
                table,
                path: format!("{path}[{i}]"),
                pos: span.map_or(pos, |s| Pos::at(self.src, s.start)),
                known: Vec::new(),
            })
            .collect()
    }

    /// Reads a string and fills its `${env.*}` references.
    pub(super) fn text(
        &mut self,
        tbl: &mut Tbl,
        key: &'static str,
        required: bool,
    ) -> Option<Text> {
        let path = tbl.key_path(key);
        let Some(item) = tbl.get(key) else {
            if required {
                self.missing(tbl, key, "\"...\"");
            }
            return None;
        };
        let pos = self.item_pos(tbl, key, item);
        match item.as_value() {
            Some(Value::String(s)) => {
                let content_start = s.span().map(|r| r.start + self.quote_len(r.start));
                self.fill_env(s.value(), content_start, &path, pos)
            }
            _ => {
                self.wrong_type(pos, &path, "a string", item.type_name());
                None
            }
        }
    }

    pub(super) fn text_or(&mut self, tbl: &mut Tbl, key: &'static str, default: &str) -> Text {
        let pos = tbl.pos;
        let path = tbl.key_path(key);
        self.text(tbl, key, false)
            .unwrap_or_else(|| Text::fixed(default, &path, pos))
    }

    /// A string that must be known before any step runs (no step reference).
    pub(super) fn literal(
        &mut self,
        tbl: &mut Tbl,
        key: &'static str,
        required: bool,
    ) -> Option<String> {
        self.literal_shaped(tbl, key, required, |_| Ok(()))
    }

    /// [`Cx::literal`], its value checked by `check` (unless it holds an
    /// unset variable of a lenient load: its value is not known).
    pub(super) fn literal_shaped(
        &mut self,
        tbl: &mut Tbl,
        key: &'static str,
        required: bool,
        check: impl Fn(&str) -> Result<(), String>,
    ) -> Option<String> {
        let text = self.text(tbl, key, required)?;
        self.shape(Some(&text), check);
        match text.literal() {
            Some(s) => Some(s),
            None => {
                self.error(
                    text.pos,
                    &text.key,
                    "step outputs cannot be used here: the value is needed before any step runs",
                );
                None
            }
        }
    }

    /// Checks the shape of a value known now (not a reference, not an
    /// unset variable of a lenient load).
    pub(super) fn shape(
        &mut self,
        text: Option<&Text>,
        check: impl Fn(&str) -> Result<(), String>,
    ) {
        let Some(t) = text.filter(|t| !t.unset_env) else {
            return;
        };
        if let Some(value) = t.literal()
            && let Err(why) = check(&value)
        {
            self.error(t.pos, &t.key, why);
        }
    }

    pub(super) fn shapes(
        &mut self,
        texts: Option<&Vec<Text>>,
        check: impl Fn(&str) -> Result<(), String>,
    ) {
        for t in texts.into_iter().flatten() {
            self.shape(Some(t), &check);
        }
    }

    pub(super) fn quote_len(&self, start: usize) -> usize {
        let rest = &self.src[start.min(self.src.len())..];
        if rest.starts_with("\"\"\"") || rest.starts_with("'''") {
            3
        } else {
            1
        }
    }

    pub(super) fn fill_env(
        &mut self,
        raw: &str,
        content_start: Option<usize>,
        path: &str,
        pos: Pos,
    ) -> Option<Text> {
        let pos_in = |cx: &Self, offset: usize| {
            content_start.map_or(pos, |start| Pos::at(cx.src, start + offset))
        };
        let pieces = match template::parse(raw) {
            Ok(p) => p,
            Err(e) => {
                let p = pos_in(self, e.offset);
                self.error(p, path, e.message);
                return None;
            }
        };
        let mut parts: Vec<Part> = Vec::new();
        let mut ok = true;
        let mut unset_env = false;
        let push_lit = |parts: &mut Vec<Part>, s: &str| match parts.last_mut() {
            Some(Part::Lit(prev)) => prev.push_str(s),
            _ => parts.push(Part::Lit(s.to_string())),
        };
        for (piece, range) in pieces {
            match piece {
                Piece::Lit(s) => push_lit(&mut parts, &s),
                Piece::Env(name) => match (self.env)(&name) {
                    Some(v) => push_lit(&mut parts, &v),
                    None if self.lenient => {
                        unset_env = true;
                        push_lit(&mut parts, &format!("${{env.{name}}}"));
                    }
                    None => {
                        ok = false;
                        let p = pos_in(self, range.start);
                        self.error(
                            p,
                            path,
                            format!(
                                "environment variable `{name}` is not set or empty: export \
                                 it (for the local emulator: `source localstack/.run/seed.env` \
                                 in the repository) or write the value here"
                            ),
                        );
                    }
                },
                Piece::Step { step, output } => {
                    if let Some(why) = unknown_output(self.steps, &step, &output) {
                        ok = false;
                        let p = pos_in(self, range.start);
                        self.error(p, path, why);
                    }
                    parts.push(Part::Ref { step, output });
                }
            }
        }
        ok.then(|| Text {
            parts,
            pos,
            key: path.to_string(),
            unset_env,
        })
    }

    /// A list of strings: a TOML array, or one string split on spaces and
    /// commas (so `"${env.ISOLATED_SUBNETS}"` works as the book exports it).
    pub(super) fn text_list(
        &mut self,
        tbl: &mut Tbl,
        key: &'static str,
        required: bool,
    ) -> Option<Vec<Text>> {
        let path = tbl.key_path(key);
        let Some(item) = tbl.get(key) else {
            if required {
                self.missing(tbl, key, "[\"...\", \"...\"]");
            }
            return None;
        };
        let pos = self.item_pos(tbl, key, item);
        let mut out = Vec::new();
        match item.as_value() {
            Some(Value::String(s)) => {
                let start = s.span().map(|r| r.start + self.quote_len(r.start));
                let text = self.fill_env(s.value(), start, &path, pos)?;
                match text.literal().filter(|_| !text.unset_env) {
                    Some(lit) => out.extend(
                        lit.split([' ', ',', '\t', '\n'])
                            .filter(|s| !s.is_empty())
                            .map(|s| Text::fixed(s, &path, pos)),
                    ),
                    None => out.push(text),
                }
            }
            Some(Value::Array(arr)) => {
                for (i, v) in arr.iter().enumerate() {
                    let item_path = format!("{path}[{i}]");
                    let p = self.pos_of(v.span());
                    match v {
                        Value::String(s) => {
                            let start = s.span().map(|r| r.start + self.quote_len(r.start));
                            if let Some(t) = self.fill_env(s.value(), start, &item_path, p) {
                                out.push(t);
                            }
                        }
                        other => self.wrong_type(p, &item_path, "a string", other.type_name()),
                    }
                }
            }
            _ => {
                self.wrong_type(pos, &path, "an array of strings", item.type_name());
                return None;
            }
        }
        if out.is_empty() && required {
            self.error(pos, &path, "must not be empty");
        }
        Some(out)
    }

    pub(super) fn int(
        &mut self,
        tbl: &mut Tbl,
        key: &'static str,
        default: i64,
        range: std::ops::RangeInclusive<i64>,
        why: &str,
    ) -> i64 {
        let path = tbl.key_path(key);
        let Some(item) = tbl.get(key) else {
            return default;
        };
        let pos = self.item_pos(tbl, key, item);
        match item.as_value().and_then(Value::as_integer) {
            Some(v) if range.contains(&v) => v,
            Some(v) => {
                self.error(
                    pos,
                    &path,
                    format!(
                        "{v} is out of range: use {} to {} ({why})",
                        range.start(),
                        range.end()
                    ),
                );
                default
            }
            None => {
                self.wrong_type(pos, &path, "an integer", item.type_name());
                default
            }
        }
    }

    pub(super) fn bool(&mut self, tbl: &mut Tbl, key: &'static str, default: bool) -> bool {
        let path = tbl.key_path(key);
        let Some(item) = tbl.get(key) else {
            return default;
        };
        let pos = self.item_pos(tbl, key, item);
        match item.as_value().and_then(Value::as_bool) {
            Some(v) => v,
            None => {
                self.wrong_type(pos, &path, "true or false", item.type_name());
                default
            }
        }
    }

    /// One of a fixed set of words (case-insensitive; stored as given in
    /// `choices`).
    pub(super) fn choice(
        &mut self,
        tbl: &mut Tbl,
        key: &'static str,
        choices: &[&'static str],
        default: &'static str,
    ) -> &'static str {
        let Some(text) = self.text(tbl, key, false) else {
            return default;
        };
        if text.unset_env {
            return default;
        }
        let Some(value) = text.literal() else {
            self.error(text.pos, &text.key, "step outputs cannot be used here");
            return default;
        };
        match choices.iter().find(|c| c.eq_ignore_ascii_case(&value)) {
            Some(c) => c,
            None => {
                self.error(
                    text.pos,
                    &text.key,
                    format!("`{value}` is not one of: {}", choices.join(", ")),
                );
                default
            }
        }
    }

    pub(super) fn file(&mut self, tbl: &mut Tbl, key: &'static str, default: &str) -> String {
        let Some(text) = self.text(tbl, key, false) else {
            return default.to_string();
        };
        let Some(rel) = text.literal() else {
            self.error(
                text.pos,
                &text.key,
                "step outputs cannot be used in a file path",
            );
            return default.to_string();
        };
        let path = self.base_dir.join(&rel);
        match std::fs::read_to_string(&path) {
            Ok(s) => match serde_json::from_str::<serde_json::Value>(&s) {
                Ok(_) => s,
                Err(e) => {
                    self.error(
                        text.pos,
                        &text.key,
                        format!("{} is not valid JSON: {e}", path.display()),
                    );
                    default.to_string()
                }
            },
            Err(e) => {
                self.error(
                    text.pos,
                    &text.key,
                    format!(
                        "cannot read {}: {e}; the path is relative to the runbook's folder",
                        path.display()
                    ),
                );
                default.to_string()
            }
        }
    }

    pub(super) fn string_map(
        &mut self,
        parent: &mut Tbl,
        key: &'static str,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Some(tbl) = self.table(parent, key, false) else {
            return out;
        };
        for (k, item) in tbl.table.iter() {
            let path = tbl.key_path(k);
            let pos = self.item_pos(&tbl, k, item);
            match item.as_value() {
                Some(Value::String(s)) => {
                    let start = s.span().map(|r| r.start + self.quote_len(r.start));
                    if let Some(t) = self.fill_env(s.value(), start, &path, pos) {
                        match t.literal() {
                            Some(v) => {
                                out.insert(k.to_string(), v);
                            }
                            None => self.error(pos, &path, "step outputs cannot be used in tags"),
                        }
                    }
                }
                _ => self.wrong_type(pos, &path, "a string", item.type_name()),
            }
        }
        out
    }
}
