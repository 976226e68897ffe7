//! The runbook file: parse the TOML, check every key and value, fill
//! `${env.*}` references, and keep `${steps.*}` references for later.
//!
//! The typed [`Runbook`] is built by one walk over the document that also
//! records which keys it read; whatever it did not read is an unknown key.
//! That keeps the schema in one place (the code below) and lets every
//! problem be collected and reported at once, each with its file position.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml_edit::{Item, TableLike, Value};

use crate::template::{self, Piece};
use crate::validate;

/// The tag every resource we create carries; its value is the runbook name.
pub const OWNER_TAG: &str = "rds-proxy-runbook:runbook";

const DEFAULT_TRUST_POLICY: &str = include_str!("../runbooks/policies/rds-proxy-trust-policy.json");
const DEFAULT_CONNECT_POLICY: &str =
    include_str!("../runbooks/policies/rds-connect-policy-template.json");

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    pub fn start() -> Pos {
        Pos { line: 1, col: 1 }
    }

    fn at(src: &str, offset: usize) -> Pos {
        let offset = offset.min(src.len());
        let before = &src[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = src[line_start..offset].chars().count() + 1;
        Pos { line, col }
    }
}

/// One problem in a runbook, at a position, about a key, with the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub pos: Pos,
    pub key: String,
    pub message: String,
}

/// Everything wrong with a runbook file, reported at once.
#[derive(Debug)]
pub struct RunbookError {
    pub path: PathBuf,
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for RunbookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.diagnostics.len();
        writeln!(
            f,
            "{} has {n} problem{}; nothing was changed:",
            self.path.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for d in &self.diagnostics {
            let key = if d.key.is_empty() {
                String::new()
            } else {
                format!("`{}`: ", d.key)
            };
            writeln!(
                f,
                "  {}:{}:{}: {key}{}",
                self.path.display(),
                d.pos.line,
                d.pos.col,
                d.message
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for RunbookError {}

/// A string value from the runbook: literal text with `${env.*}` already
/// filled, and `${steps.*}` references left to fill when a step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    parts: Vec<Part>,
    pub pos: Pos,
    pub key: String,
    /// Holds a placeholder for an unset `${env.*}` (lenient loading only):
    /// its value is unknown, so value checks skip it.
    pub unset_env: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Ref { step: String, output: String },
}

impl Text {
    /// A text built in code (defaults), positioned at the key it stands for.
    fn fixed(value: &str, key: &str, pos: Pos) -> Text {
        Text {
            parts: vec![Part::Lit(value.to_string())],
            pos,
            key: key.to_string(),
            unset_env: false,
        }
    }

    /// The value when it holds no step reference.
    pub fn literal(&self) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Ref { .. } => return None,
            }
        }
        Some(out)
    }

    pub fn refs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.parts.iter().filter_map(|p| match p {
            Part::Ref { step, output } => Some((step.as_str(), output.as_str())),
            Part::Lit(_) => None,
        })
    }

    /// Fills step references through `lookup`; a missing output is `Err`
    /// with the `step.output` that was missing.
    pub fn fill(
        &self,
        lookup: &dyn Fn(&str, &str) -> Option<String>,
    ) -> Result<String, (String, String)> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Ref { step, output } => match lookup(step, output) {
                    Some(v) => out.push_str(&v),
                    None => return Err((step.clone(), output.clone())),
                },
            }
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum EngineFamily {
    #[serde(rename = "MYSQL")]
    Mysql,
    #[serde(rename = "POSTGRESQL")]
    Postgresql,
    #[serde(rename = "SQLSERVER")]
    Sqlserver,
}

impl EngineFamily {
    pub fn as_str(self) -> &'static str {
        match self {
            EngineFamily::Mysql => "MYSQL",
            EngineFamily::Postgresql => "POSTGRESQL",
            EngineFamily::Sqlserver => "SQLSERVER",
        }
    }

    pub fn default_port(self) -> i64 {
        match self {
            EngineFamily::Mysql => 3306,
            EngineFamily::Postgresql => 5432,
            EngineFamily::Sqlserver => 1433,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Network {
    pub vpc_id: Text,
}

#[derive(Debug, Clone)]
pub struct Database {
    pub instance_id: Option<Text>,
    pub cluster_id: Option<Text>,
    pub security_group_id: Text,
    pub port: u16,
    pub secret_arn: Text,
    pub engine_family: EngineFamily,
}

#[derive(Debug, Clone)]
pub struct ProxyRole {
    pub name: Text,
    /// The trust policy document, read from its file (or the built-in one).
    pub trust_policy: serde_json::Value,
}

#[derive(Debug, Clone)]
pub struct ProxySecurityGroup {
    pub name: Text,
    pub description: Text,
}

#[derive(Debug, Clone)]
pub struct Proxy {
    pub name: Text,
    pub role_arn: Text,
    pub subnet_ids: Vec<Text>,
    pub security_group_ids: Vec<Text>,
    pub require_tls: bool,
    pub iam_auth: String,
    pub idle_client_timeout: u32,
    pub debug_logging: bool,
    pub wait_timeout_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Pool {
    pub max_connections_percent: u32,
    pub max_idle_connections_percent: u32,
    pub connection_borrow_timeout: u32,
    pub init_query: Option<String>,
    pub session_pinning_filters: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct ConnectPolicy {
    pub name: Text,
    /// The policy template text with its placeholders still in it.
    pub template: String,
    pub db_user: Text,
}

#[derive(Debug, Clone)]
pub struct Lambda {
    pub function_name: Text,
    pub security_group_id: Option<Text>,
    pub env_var: String,
}

#[derive(Debug, Clone)]
pub struct InvokeCheck {
    pub payload: String,
    pub expect: Option<String>,
}

#[derive(Debug, Clone)]
pub struct StepEntry {
    pub name: String,
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub struct Runbook {
    pub path: PathBuf,
    pub name: String,
    pub region: Option<String>,
    /// The tags for everything we create, the ownership tag included.
    pub tags: BTreeMap<String, String>,
    pub network: Network,
    pub database: Database,
    pub proxy_role: ProxyRole,
    pub proxy_security_group: ProxySecurityGroup,
    pub proxy: Proxy,
    pub pool: Pool,
    pub connect_policy: ConnectPolicy,
    pub secret_access: String,
    pub lambdas: Vec<Lambda>,
    pub invoke_check: InvokeCheck,
    pub steps: Vec<StepEntry>,
}

/// The environment the runbook's `${env.*}` references read.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// What the parser knows of the steps, given by the caller so that the
/// runbook file does not depend on the steps (they depend on it): their
/// names and outputs, and the checks of a whole runbook against them.
pub trait StepCatalogue {
    fn names(&self) -> Vec<&'static str>;
    fn outputs(&self, step: &str) -> Option<&'static [&'static str]>;
    /// Problems of the runbook as a whole (references to steps not listed
    /// or listed later; with `order_checked`, the steps' own order).
    fn check(&self, rb: &Runbook, order_checked: bool) -> Vec<Diagnostic>;
}

impl Runbook {
    /// Reads and checks a runbook. Every problem is reported at once.
    /// `lenient`: an unset `${env.*}` becomes a placeholder instead of an
    /// error (for commands that work from the state alone).
    pub fn load(
        path: &Path,
        env: EnvLookup,
        lenient: bool,
        steps: &dyn StepCatalogue,
    ) -> Result<Runbook, RunbookError> {
        let src = std::fs::read_to_string(path).map_err(|e| RunbookError {
            path: path.to_path_buf(),
            diagnostics: vec![Diagnostic {
                pos: Pos::start(),
                key: String::new(),
                message: format!("cannot read the runbook: {e}; check the path"),
            }],
        })?;
        Runbook::parse_with(path, &src, env, lenient, steps)
    }

    /// Checks a runbook's text as if it were the file at `path`.
    pub fn parse(
        path: &Path,
        src: &str,
        env: EnvLookup,
        steps: &dyn StepCatalogue,
    ) -> Result<Runbook, RunbookError> {
        Runbook::parse_with(path, src, env, false, steps)
    }

    fn parse_with(
        path: &Path,
        src: &str,
        env: EnvLookup,
        lenient: bool,
        steps: &dyn StepCatalogue,
    ) -> Result<Runbook, RunbookError> {
        let fail = |diagnostics| RunbookError {
            path: path.to_path_buf(),
            diagnostics,
        };
        let doc = toml_edit::Document::parse(src.to_string()).map_err(|e| {
            let pos = Pos::at(src, e.span().map_or(0, |s| s.start));
            fail(vec![Diagnostic {
                pos,
                key: String::new(),
                message: format!("not valid TOML: {}", e.message().trim()),
            }])
        })?;
        let base_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut cx = Cx {
            src,
            env,
            lenient,
            base_dir,
            steps,
            diags: Vec::new(),
        };
        let runbook = cx.runbook(path, doc.as_table());
        let mut diags = cx.diags;
        if let Some(rb) = &runbook {
            diags.extend(steps.check(rb, !lenient));
        }
        diags.sort_by_key(|d| d.pos);
        diags.dedup();
        match runbook {
            Some(rb) if diags.is_empty() => Ok(rb),
            _ => Err(fail(diags)),
        }
    }

    pub fn step_names(&self) -> impl Iterator<Item = &str> {
        self.steps.iter().map(|s| s.name.as_str())
    }
}

/// A table being read: remembers which keys the reader asked for.
struct Tbl<'a> {
    table: &'a dyn TableLike,
    path: String,
    pos: Pos,
    known: Vec<&'static str>,
}

impl<'a> Tbl<'a> {
    fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Item> {
        self.known.push(key);
        self.table.get(key).filter(|i| !i.is_none())
    }
}

struct Cx<'s> {
    src: &'s str,
    env: EnvLookup<'s>,
    lenient: bool,
    base_dir: PathBuf,
    steps: &'s dyn StepCatalogue,
    diags: Vec<Diagnostic>,
}

impl<'s> Cx<'s> {
    fn error(&mut self, pos: Pos, key: &str, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            pos,
            key: key.to_string(),
            message: message.into(),
        });
    }

    fn pos_of(&self, span: Option<Range<usize>>) -> Pos {
        span.map_or(Pos::start(), |s| Pos::at(self.src, s.start))
    }

    fn item_pos(&self, tbl: &Tbl, key: &str, item: &Item) -> Pos {
        let span = item
            .span()
            .or_else(|| tbl.table.key(key).and_then(|k| k.span()));
        span.map_or(tbl.pos, |s| Pos::at(self.src, s.start))
    }

    fn missing(&mut self, tbl: &Tbl, key: &str, what: &str) {
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

    fn wrong_type(&mut self, pos: Pos, path: &str, want: &str, got: &str) {
        let hint = match (want, got) {
            ("an integer" | "true or false", "string") => "; write it without quotes",
            ("a string", _) => "; put the value in quotes",
            _ => "",
        };
        self.error(pos, path, format!("expected {want}, found {got}{hint}"));
    }

    /// Reports every key of `tbl` that no reader asked for.
    fn finish(&mut self, tbl: Tbl) {
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

    fn table<'a>(
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
    fn tables<'a>(&mut self, parent: &mut Tbl<'a>, key: &'static str) -> Vec<Tbl<'a>> {
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
    fn text(&mut self, tbl: &mut Tbl, key: &'static str, required: bool) -> Option<Text> {
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

    fn text_or(&mut self, tbl: &mut Tbl, key: &'static str, default: &str) -> Text {
        let pos = tbl.pos;
        let path = tbl.key_path(key);
        self.text(tbl, key, false)
            .unwrap_or_else(|| Text::fixed(default, &path, pos))
    }

    /// A string that must be known before any step runs (no step reference).
    fn literal(&mut self, tbl: &mut Tbl, key: &'static str, required: bool) -> Option<String> {
        let text = self.text(tbl, key, required)?;
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
    fn shape(&mut self, text: Option<&Text>, check: impl Fn(&str) -> Result<(), String>) {
        let Some(t) = text.filter(|t| !t.unset_env) else {
            return;
        };
        if let Some(value) = t.literal()
            && let Err(why) = check(&value)
        {
            self.error(t.pos, &t.key, why);
        }
    }

    fn shapes(&mut self, texts: Option<&Vec<Text>>, check: impl Fn(&str) -> Result<(), String>) {
        for t in texts.into_iter().flatten() {
            self.shape(Some(t), &check);
        }
    }

    fn quote_len(&self, start: usize) -> usize {
        let rest = &self.src[start.min(self.src.len())..];
        if rest.starts_with("\"\"\"") || rest.starts_with("'''") {
            3
        } else {
            1
        }
    }

    fn fill_env(
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
    fn text_list(&mut self, tbl: &mut Tbl, key: &'static str, required: bool) -> Option<Vec<Text>> {
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

    fn int(
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

    fn bool(&mut self, tbl: &mut Tbl, key: &'static str, default: bool) -> bool {
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
    fn choice(
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

    fn file(&mut self, tbl: &mut Tbl, key: &'static str, default: &str) -> String {
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

    fn string_map(&mut self, parent: &mut Tbl, key: &'static str) -> BTreeMap<String, String> {
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

    fn runbook(&mut self, path: &Path, root: &toml_edit::Table) -> Option<Runbook> {
        let mut top = Tbl {
            table: root,
            path: String::new(),
            pos: Pos::start(),
            known: Vec::new(),
        };
        let name_text = self.text(&mut top, "name", true);
        if let Some(t) = name_text.as_ref().filter(|t| !t.unset_env)
            && let Err(why) = t.literal().as_deref().map_or(Ok(()), check_runbook_name)
        {
            self.error(t.pos, "name", why);
        }
        let name = match name_text {
            Some(t) if t.literal().is_none() => {
                self.error(
                    t.pos,
                    "name",
                    "step outputs cannot be used in the runbook name",
                );
                None
            }
            other => other.and_then(|t| t.literal()),
        };
        let region = self.literal(&mut top, "region", false);
        let steps = self.step_list(&mut top);

        let mut tags = self.string_map(&mut top, "tags");
        if tags.contains_key(OWNER_TAG) {
            let tbl_pos = top.table.get("tags").and_then(|i| i.span());
            let pos = self.pos_of(tbl_pos);
            self.error(
                pos,
                &format!("tags.{OWNER_TAG}"),
                "this tag is set by the tool from `name`; remove it",
            );
        }

        let network = self.table(&mut top, "network", true).map(|mut t| {
            let vpc_id = self.text(&mut t, "vpc_id", true);
            self.shape(vpc_id.as_ref(), |v| validate::resource_id("vpc", v));
            let subnet_ids = self.text_list(&mut t, "subnet_ids", true);
            self.shapes(subnet_ids.as_ref(), |v| validate::resource_id("subnet", v));
            if let Some(ids) = &subnet_ids
                && ids.len() == 1
                && !ids[0].unset_env
                && ids[0].literal().is_some()
            {
                self.error(
                    ids[0].pos,
                    "network.subnet_ids",
                    "a proxy needs at least two subnets in different Availability Zones: \
                     list two or more",
                );
            }
            self.finish(t);
            (vpc_id, subnet_ids)
        });

        let database = self.table(&mut top, "database", true).map(|mut t| {
            let instance_id = self.text(&mut t, "instance_id", false);
            let cluster_id = self.text(&mut t, "cluster_id", false);
            // Count the keys written, not the values read: a value that
            // failed (an unset variable) is reported on its own.
            let written = ["instance_id", "cluster_id"]
                .iter()
                .filter(|k| t.table.contains_key(k))
                .count();
            if written != 1 {
                let pos = t.pos;
                self.error(
                    pos,
                    "database.instance_id",
                    "give exactly one of `instance_id` (an RDS instance) or `cluster_id` (an Aurora cluster)",
                );
            }
            self.shape(instance_id.as_ref(), validate::db_identifier);
            self.shape(cluster_id.as_ref(), validate::db_identifier);
            let security_group_id = self.text(&mut t, "security_group_id", true);
            self.shape(security_group_id.as_ref(), |v| validate::resource_id("sg", v));
            let secret_arn = self.text(&mut t, "secret_arn", true);
            self.shape(secret_arn.as_ref(), validate::secret_arn);
            let family = self.engine_family(&mut t);
            let port = self.int(
                &mut t,
                "port",
                family.default_port(),
                1..=65535,
                "a TCP port",
            ) as u16;
            self.finish(t);
            (
                instance_id,
                cluster_id,
                security_group_id,
                secret_arn,
                family,
                port,
            )
        });

        let proxy_role = self.table(&mut top, "proxy_role", true).map(|mut t| {
            let name = self.text(&mut t, "name", true);
            self.shape(name.as_ref(), |v| validate::iam_name(v, 64));
            let doc = self.file(&mut t, "trust_policy", DEFAULT_TRUST_POLICY);
            self.finish(t);
            (name, doc)
        });

        let proxy_sg = self
            .table(&mut top, "proxy_security_group", true)
            .map(|mut t| {
                let name = self.text(&mut t, "name", true);
                self.shape(name.as_ref(), validate::group_name);
                let description = self.text_or(&mut t, "description", "RDS Proxy security group");
                self.finish(t);
                (name, description)
            });

        let proxy = self.table(&mut top, "proxy", true).map(|mut t| {
            let name = self.text(&mut t, "name", true);
            if let Some(lit) = name
                .as_ref()
                .filter(|n| !n.unset_env)
                .and_then(Text::literal)
                && let Err(why) = check_proxy_name(&lit)
            {
                let n = name.as_ref().expect("checked");
                self.error(n.pos, &n.key, why);
            }
            let pos = t.pos;
            let role_arn = self
                .text(&mut t, "role_arn", false)
                .unwrap_or_else(|| Text::fixed_ref("proxy-role", "arn", "proxy.role_arn", pos));
            self.shape(Some(&role_arn), validate::role_arn);
            let subnet_ids = self.text_list(&mut t, "subnet_ids", false);
            self.shapes(subnet_ids.as_ref(), |v| validate::resource_id("subnet", v));
            let security_group_ids = self.text_list(&mut t, "security_group_ids", false);
            self.shapes(security_group_ids.as_ref(), |v| {
                validate::resource_id("sg", v)
            });
            let require_tls = self.bool(&mut t, "require_tls", true);
            let iam_auth = self.choice(&mut t, "iam_auth", &["REQUIRED", "DISABLED"], "REQUIRED");
            let idle = self.int(
                &mut t,
                "idle_client_timeout",
                1800,
                1..=28_800,
                "AWS allows 1 second to 8 hours",
            );
            let debug_logging = self.bool(&mut t, "debug_logging", false);
            let wait = self.int(
                &mut t,
                "wait_timeout_seconds",
                1800,
                1..=86_400,
                "how long to wait for the proxy to become available",
            );
            self.finish(t);
            (
                name,
                role_arn,
                subnet_ids,
                security_group_ids,
                require_tls,
                iam_auth,
                idle,
                debug_logging,
                wait,
            )
        });

        let pool = {
            let mut t = self.table(&mut top, "pool", false);
            let mut int = |cx: &mut Self, key, default, range, why: &str| match t.as_mut() {
                Some(t) => cx.int(t, key, default, range, why),
                None => default,
            };
            let max_conn = int(
                self,
                "max_connections_percent",
                100,
                1..=100,
                "a percentage",
            );
            let max_idle = int(
                self,
                "max_idle_connections_percent",
                50,
                0..=100,
                "a percentage",
            );
            let borrow = int(
                self,
                "connection_borrow_timeout",
                120,
                0..=3600,
                "seconds; AWS allows 0 to 3600",
            );
            let (init_query, filters) = match t.as_mut() {
                Some(t) => {
                    let q = self
                        .literal(t, "init_query", false)
                        .filter(|q| !q.is_empty());
                    let f = self
                        .text_list(t, "session_pinning_filters", false)
                        .unwrap_or_default()
                        .iter()
                        .filter_map(Text::literal)
                        .collect::<Vec<_>>();
                    for filter in &f {
                        if filter != "EXCLUDE_VARIABLE_SETS" {
                            let pos = t.pos;
                            self.error(
                                pos,
                                "pool.session_pinning_filters",
                                format!("`{filter}` is not a session pinning filter: the only one is EXCLUDE_VARIABLE_SETS"),
                            );
                        }
                    }
                    (q, f)
                }
                None => (None, Vec::new()),
            };
            if max_idle > max_conn {
                let pos = t.as_ref().map_or(Pos::start(), |t| {
                    let item = t.table.get("max_idle_connections_percent");
                    self.pos_of(item.and_then(Item::span)).max(t.pos)
                });
                self.error(
                    pos,
                    "pool.max_idle_connections_percent",
                    format!("{max_idle} must not exceed max_connections_percent ({max_conn})"),
                );
            }
            if let Some(t) = t {
                self.finish(t);
            }
            Pool {
                max_connections_percent: max_conn as u32,
                max_idle_connections_percent: max_idle as u32,
                connection_borrow_timeout: borrow as u32,
                init_query,
                session_pinning_filters: filters,
            }
        };

        let connect_policy = self.table(&mut top, "connect_policy", true).map(|mut t| {
            let name = self.text(&mut t, "name", true);
            self.shape(name.as_ref(), |v| validate::iam_name(v, 128));
            let template = self.file(&mut t, "template", DEFAULT_CONNECT_POLICY);
            let db_user = self.text_or(&mut t, "db_user", "*");
            self.finish(t);
            (name, template, db_user)
        });

        let secret_access = match self.table(&mut top, "secret_access", false) {
            Some(mut t) => {
                let mode = self.choice(
                    &mut t,
                    "mode",
                    &["least-privilege", "managed"],
                    "least-privilege",
                );
                self.finish(t);
                mode
            }
            None => "least-privilege",
        };

        let mut lambdas = Vec::new();
        for mut t in self.tables(&mut top, "lambda") {
            let function_name = self.text(&mut t, "function_name", true);
            self.shape(function_name.as_ref(), validate::function_name);
            let security_group_id = self.text(&mut t, "security_group_id", false);
            self.shape(security_group_id.as_ref(), |v| {
                validate::resource_id("sg", v)
            });
            let env_var = self
                .literal(&mut t, "env_var", false)
                .unwrap_or_else(|| "DB_HOST".into());
            self.finish(t);
            if let Some(function_name) = function_name {
                lambdas.push(Lambda {
                    function_name,
                    security_group_id,
                    env_var,
                });
            }
        }

        let invoke_check = match self.table(&mut top, "invoke_check", false) {
            Some(mut t) => {
                let payload = self
                    .literal(&mut t, "payload", false)
                    .unwrap_or("{}".into());
                if serde_json::from_str::<serde_json::Value>(&payload).is_err() {
                    let pos = t.pos;
                    self.error(
                        pos,
                        "invoke_check.payload",
                        "must be a JSON document, e.g. \"{}\"",
                    );
                }
                let expect = self.literal(&mut t, "expect", false);
                self.finish(t);
                InvokeCheck { payload, expect }
            }
            None => InvokeCheck {
                payload: "{}".into(),
                expect: None,
            },
        };

        self.finish(top);

        let name = name?;
        let (vpc_id, subnet_ids) = network?;
        let (instance_id, cluster_id, security_group_id, secret_arn, engine_family, port) =
            database?;
        let (role_name, trust_policy) = proxy_role?;
        let (sg_name, sg_description) = proxy_sg?;
        let (
            proxy_name,
            role_arn,
            proxy_subnets,
            proxy_sgs,
            require_tls,
            iam_auth,
            idle,
            debug_logging,
            wait,
        ) = proxy?;
        let (policy_name, template, db_user) = connect_policy?;
        tags.insert(OWNER_TAG.to_string(), name.clone());
        let subnet_ids = subnet_ids?;
        let trust_policy = serde_json::from_str(&trust_policy).ok()?;
        let proxy_pos = proxy_name.as_ref().map_or(Pos::start(), |t| t.pos);
        Some(Runbook {
            path: path.to_path_buf(),
            name,
            region,
            tags,
            network: Network { vpc_id: vpc_id? },
            database: Database {
                instance_id,
                cluster_id,
                security_group_id: security_group_id?,
                port,
                secret_arn: secret_arn?,
                engine_family,
            },
            proxy_role: ProxyRole {
                name: role_name?,
                trust_policy,
            },
            proxy_security_group: ProxySecurityGroup {
                name: sg_name?,
                description: sg_description,
            },
            proxy: Proxy {
                name: proxy_name?,
                role_arn,
                subnet_ids: proxy_subnets.unwrap_or(subnet_ids),
                security_group_ids: proxy_sgs.unwrap_or_else(|| {
                    vec![Text::fixed_ref(
                        "proxy-security-group",
                        "group_id",
                        "proxy.security_group_ids",
                        proxy_pos,
                    )]
                }),
                require_tls,
                iam_auth: iam_auth.to_string(),
                idle_client_timeout: idle as u32,
                debug_logging,
                wait_timeout_seconds: wait as u64,
            },
            pool,
            connect_policy: ConnectPolicy {
                name: policy_name?,
                template,
                db_user,
            },
            secret_access: secret_access.to_string(),
            lambdas,
            invoke_check,
            steps,
        })
    }

    fn engine_family(&mut self, t: &mut Tbl) -> EngineFamily {
        let Some(text) = self.text(t, "engine_family", true).filter(|t| !t.unset_env) else {
            return EngineFamily::Mysql;
        };
        let value = text.literal().unwrap_or_default().to_ascii_uppercase();
        match value.as_str() {
            "MYSQL" | "MARIADB" | "AURORA-MYSQL" => EngineFamily::Mysql,
            "POSTGRESQL" | "POSTGRES" | "AURORA-POSTGRESQL" => EngineFamily::Postgresql,
            "SQLSERVER" => EngineFamily::Sqlserver,
            other => {
                let why = if other.starts_with("ORACLE") {
                    "RDS Proxy does not support Oracle: use MYSQL, POSTGRESQL or SQLSERVER"
                        .to_string()
                } else {
                    format!("`{value}` is not an engine family: use MYSQL, POSTGRESQL or SQLSERVER")
                };
                self.error(text.pos, &text.key, why);
                EngineFamily::Mysql
            }
        }
    }

    fn step_list(&mut self, top: &mut Tbl) -> Vec<StepEntry> {
        let Some(item) = top.get("steps") else {
            self.error(
                Pos::start(),
                "steps",
                format!(
                    "missing required key: add `steps = [{}]` at the top of the file",
                    self.steps
                        .names()
                        .iter()
                        .map(|s| format!("\"{s}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            return Vec::new();
        };
        let pos = self.item_pos(top, "steps", item);
        let Some(arr) = item.as_value().and_then(Value::as_array) else {
            self.wrong_type(pos, "steps", "an array of step names", item.type_name());
            return Vec::new();
        };
        let mut out: Vec<StepEntry> = Vec::new();
        for (i, v) in arr.iter().enumerate() {
            let p = self.pos_of(v.span());
            let key = format!("steps[{i}]");
            let Some(name) = v.as_str() else {
                self.wrong_type(p, &key, "a step name", v.type_name());
                continue;
            };
            if !self.steps.names().contains(&name) {
                let hint = match closest(name, &self.steps.names()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("the steps are: {}", self.steps.names().join(", ")),
                };
                self.error(p, &key, format!("unknown step `{name}`; {hint}"));
            } else if out.iter().any(|s| s.name == name) {
                self.error(
                    p,
                    &key,
                    format!("step `{name}` is listed twice; remove one"),
                );
            } else {
                out.push(StepEntry {
                    name: name.to_string(),
                    pos: p,
                });
            }
        }
        if arr.is_empty() {
            self.error(
                pos,
                "steps",
                format!(
                    "lists no step; the steps are: {}",
                    self.steps.names().join(", ")
                ),
            );
        }
        out
    }
}

impl Text {
    /// A step's own need for another step's output, made in code.
    pub fn step_output(step: &str, output: &str) -> Text {
        Text::fixed_ref(step, output, "", Pos::start())
    }

    fn fixed_ref(step: &str, output: &str, key: &str, pos: Pos) -> Text {
        Text {
            parts: vec![Part::Ref {
                step: step.into(),
                output: output.into(),
            }],
            pos,
            key: key.to_string(),
            unset_env: false,
        }
    }
}

/// The runbook name goes into tags, file names and resource names.
pub fn check_runbook_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a usable runbook name: use 1 to 64 letters, digits, `-`, `_` or `.`, starting with a letter or digit"
        ))
    }
}

/// AWS's rules for a DB proxy name.
pub fn check_proxy_name(name: &str) -> Result<(), String> {
    let problem = if name.is_empty() {
        Some("is empty")
    } else if name.len() > 60 {
        Some("is longer than 60 characters")
    } else if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        Some("must start with a letter")
    } else if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        Some("may hold only letters, digits and hyphens")
    } else if name.contains("--") {
        Some("must not contain two hyphens in a row")
    } else if name.ends_with('-') {
        Some("must not end with a hyphen")
    } else {
        None
    };
    match problem {
        Some(p) => Err(format!(
            "proxy name `{name}` {p} (AWS: 1 to 60 letters, digits and single hyphens, starting with a letter, not ending with a hyphen)"
        )),
        None => Ok(()),
    }
}

/// Why `${steps.STEP.OUTPUT}` names nothing, if it does not.
fn unknown_output(steps: &dyn StepCatalogue, step: &str, output: &str) -> Option<String> {
    let names = steps.names();
    match steps.outputs(step) {
        None => Some(match closest(step, &names) {
            Some(s) => format!("no step is named `{step}`; did you mean `{s}`?"),
            None => format!(
                "no step is named `{step}`; the steps are: {}",
                names.join(", ")
            ),
        }),
        Some(outputs) if !outputs.contains(&output) => Some(format!(
            "step `{step}` has no output `{output}`; its outputs are: {}",
            outputs.join(", ")
        )),
        Some(_) => None,
    }
}

/// The known word closest to `word`, if it is close enough to be a typo.
pub(crate) fn closest<'a>(word: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (edit_distance(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
