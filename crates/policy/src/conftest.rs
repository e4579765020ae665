//! conftest-compatible policies: `mooring policy test`.
//!
//! Teams already have a `policy/` directory of conftest Rego and CI jobs that run
//! `conftest test`. This module gives the same answers for the same files, so the directory
//! moves to Mooring unchanged:
//!
//! * **Inputs** are parsed the way conftest parses them, chosen by file extension or by an
//!   explicit parser ([`Parser`]): YAML (a multi-document file is several inputs reported
//!   under one file name), JSON, HCL2/Terraform (`.tf`, `.tfvars`, `.hcl`, converted to
//!   JSON in the shape of conftest's `hcl2` parser: every block body is wrapped in an array,
//!   labels nest, expressions that are not literals become `"${…}"` strings), Dockerfile
//!   (a list of `{Cmd, SubCmd, JSON, Flags, Value, Stage, Original}` commands, `Cmd`
//!   lowercased, comments as `Cmd: "comment"`), TOML, and `.env` files.
//! * **Rules** are `deny`, `violation` and `warn`, and any rule named `deny_*`,
//!   `violation_*` or `warn_*`, in the selected namespaces (`main` by default). A result is a
//!   string or an object with `msg` (its other keys are the metadata); as in conftest the
//!   metadata also carries the `query` that produced it.
//! * **Exceptions**: `exception[rules]` excuses `deny_<rule>`/`violation_<rule>`/
//!   `warn_<rule>` for an input when `rules` contains `<rule>` (and the bare `deny` rules
//!   when it contains `""`). An excused rule reports one exception whose message is the
//!   exception query, as conftest does, and none of its failures.
//! * **Successes** are counted like conftest: each rule *definition* that produced nothing
//!   counts as one success.
//! * `--combine` evaluates all inputs at once as one array of `{path, contents}` sorted by
//!   path, reported under the file name `Combined`.
//! * `data.conftest.file` holds `{name, dir}` of the file under test (`dir` absolute when
//!   the caller passes [`Options::base_dir`], as the CLI does).
//! * A boolean `deny if { … }` rule is an error, as in conftest: it cannot say what is wrong.
//!
//! Deliberate differences: exit codes follow Mooring's contract (with `--fail-on-warn`,
//! failures and warnings both exit 1, where conftest exits 2 for failures; 2 is always an
//! error here), and an object result without a string `msg` is an error naming the rule.
//!
//! Everything is pure: the caller reads files and passes their text. Inputs larger than
//! [`MAX_INPUT_BYTES`] are refused; evaluation runs under the policy's [`Limits`].

use std::str::FromStr;

use serde_json::{Map, Value};

use super::report::{Finding, Report, Severity, Subject};
use super::{Limits, Policy, RegoError, RegoSource, RegoVersion};

/// Largest input file accepted (bytes).
pub const MAX_INPUT_BYTES: usize = mooring_core::yaml::MAX_YAML_BYTES;

/// Errors of parsing inputs and running conftest policies.
#[derive(Debug, thiserror::Error)]
pub enum ConftestError {
    /// An input file could not be parsed.
    #[error("{path}: parsing as {parser}: {message}")]
    Parse {
        path: String,
        parser: Parser,
        message: String,
    },
    /// No parser for this file name and none given with `--parser`.
    #[error("{0}: unknown file type; pass --parser (yaml, json, hcl2, dockerfile, toml, dotenv)")]
    UnknownFileType(String),
    /// `--parser` named a parser that does not exist.
    #[error("unknown parser {0:?}; expected one of yaml, json, hcl2, dockerfile, toml, dotenv")]
    UnknownParser(String),
    /// A data document could not be loaded.
    #[error("{path}: loading data: {message}")]
    Data { path: String, message: String },
    /// No policy files were given.
    #[error("no policies found (looked for .rego files in {0})")]
    NoPolicies(String),
    /// A rule returned something conftest cannot report.
    #[error("{query}: {message}")]
    BadResult { query: String, message: String },
    /// Compiling or evaluating the policies failed.
    #[error(transparent)]
    Rego(#[from] RegoError),
}

/// The input parsers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parser {
    Yaml,
    Json,
    Hcl2,
    Dockerfile,
    Toml,
    Dotenv,
}

impl Parser {
    pub const ALL: [Parser; 6] = [
        Parser::Yaml,
        Parser::Json,
        Parser::Hcl2,
        Parser::Dockerfile,
        Parser::Toml,
        Parser::Dotenv,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Parser::Yaml => "yaml",
            Parser::Json => "json",
            Parser::Hcl2 => "hcl2",
            Parser::Dockerfile => "dockerfile",
            Parser::Toml => "toml",
            Parser::Dotenv => "dotenv",
        }
    }

    /// The parser conftest picks for a file name, or `None`.
    pub fn for_path(path: &str) -> Option<Parser> {
        let name = path.rsplit(['/', '\\']).next().unwrap_or(path);
        let lower = name.to_ascii_lowercase();
        if lower == "dockerfile"
            || lower == "containerfile"
            || lower.starts_with("dockerfile.")
            || lower.ends_with(".dockerfile")
            || lower.ends_with(".containerfile")
        {
            return Some(Parser::Dockerfile);
        }
        let ext = lower.rsplit_once('.').map(|(_, e)| e)?;
        match ext {
            "yaml" | "yml" => Some(Parser::Yaml),
            "json" => Some(Parser::Json),
            "tf" | "tfvars" | "hcl" => Some(Parser::Hcl2),
            "toml" => Some(Parser::Toml),
            "env" => Some(Parser::Dotenv),
            _ if lower == ".env" => Some(Parser::Dotenv),
            _ => None,
        }
    }
}

impl std::fmt::Display for Parser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Parser {
    type Err = ConftestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        let name = match lower.as_str() {
            "yml" => "yaml",
            "hcl" | "tf" | "terraform" => "hcl2",
            "docker" | "containerfile" => "dockerfile",
            "env" => "dotenv",
            other => other,
        };
        Parser::ALL
            .into_iter()
            .find(|p| p.name() == name)
            .ok_or_else(|| ConftestError::UnknownParser(s.to_string()))
    }
}

/// One input file, parsed: a multi-document YAML file has several documents.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    pub path: String,
    pub documents: Vec<Value>,
}

/// Parses `text` (the contents of `path`) with `parser`, or the parser its name implies.
pub fn parse_input(path: &str, text: &str, parser: Option<Parser>) -> Result<Input, ConftestError> {
    let parser = match parser {
        Some(p) => p,
        None => {
            Parser::for_path(path).ok_or_else(|| ConftestError::UnknownFileType(path.into()))?
        }
    };
    let fail = |message: String| ConftestError::Parse {
        path: path.to_string(),
        parser,
        message,
    };
    if text.len() > MAX_INPUT_BYTES {
        return Err(fail(format!(
            "input is {} bytes, over the {MAX_INPUT_BYTES}-byte limit",
            text.len()
        )));
    }
    if text.contains('\0') {
        return Err(fail(
            "input contains NUL bytes; is it a binary file?".into(),
        ));
    }
    let documents = match parser {
        Parser::Yaml => mooring_core::yaml::parse_all(text).map_err(|e| fail(e.to_string()))?,
        // A stream of JSON values is several documents, as in conftest.
        Parser::Json => serde_json::Deserializer::from_str(text.trim_start_matches('\u{feff}'))
            .into_iter::<Value>()
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(e.to_string()))?,
        Parser::Hcl2 => vec![hcl_to_json(text).map_err(fail)?],
        Parser::Dockerfile => vec![dockerfile_to_json(text)],
        Parser::Toml => vec![toml_to_json(text).map_err(fail)?],
        Parser::Dotenv => vec![dotenv_to_json(text).map_err(fail)?],
    };
    Ok(Input {
        path: path.to_string(),
        documents,
    })
}

/// Parses a `--data` document (JSON or YAML; a multi-document YAML file is merged).
pub fn parse_data(path: &str, text: &str) -> Result<Value, ConftestError> {
    let fail = |message: String| ConftestError::Data {
        path: path.to_string(),
        message,
    };
    if path.ends_with(".json") {
        return serde_json::from_str(text).map_err(|e| fail(e.to_string()));
    }
    let docs = mooring_core::yaml::parse_all(text).map_err(|e| fail(e.to_string()))?;
    let mut merged = Map::new();
    for doc in docs {
        match doc {
            Value::Object(map) => merged.extend(map),
            other => {
                return Err(fail(format!(
                    "a data document must be an object, not {}",
                    kind_of(&other)
                )))
            }
        }
    }
    Ok(Value::Object(merged))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

// ---------------------------------------------------------------------------------------
// HCL2

/// Converts HCL2 to JSON in the shape of conftest's `hcl2` parser (tmccombs/hcl2json).
fn hcl_to_json(text: &str) -> Result<Value, String> {
    let body = hcl::parse(text).map_err(|e| e.to_string())?;
    hcl_body(&body)
}

fn hcl_body(body: &hcl::Body) -> Result<Value, String> {
    let mut out = Map::new();
    for attr in body.attributes() {
        out.insert(attr.key.to_string(), hcl_expr(&attr.expr));
    }
    for block in body.blocks() {
        let value = hcl_body(&block.body)?;
        let mut keys: Vec<String> = vec![block.identifier.to_string()];
        keys.extend(block.labels.iter().map(|l| l.as_str().to_string()));
        let (last, path) = keys.split_last().ok_or("block without a name")?;
        let mut target = &mut out;
        for key in path {
            let entry = target
                .entry(key.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            target = entry.as_object_mut().ok_or_else(|| {
                format!(
                    "unable to convert block {}: {key} is not an object",
                    keys.join(".")
                )
            })?;
        }
        match target.get_mut(last) {
            Some(Value::Array(list)) => list.push(value),
            Some(current) => {
                let previous = current.take();
                *current = Value::Array(vec![previous, value]);
            }
            None => {
                target.insert(last.clone(), Value::Array(vec![value]));
            }
        }
    }
    Ok(Value::Object(out))
}

fn hcl_expr(expr: &hcl::Expression) -> Value {
    use hcl::Expression as E;
    match expr {
        E::Null => Value::Null,
        E::Bool(b) => Value::Bool(*b),
        E::Number(n) => serde_json::to_value(n).unwrap_or(Value::Null),
        E::String(s) => Value::String(s.clone()),
        E::Array(items) => Value::Array(items.iter().map(hcl_expr).collect()),
        E::Object(obj) => {
            let mut m = Map::new();
            for (k, v) in obj {
                let key = match k {
                    hcl::ObjectKey::Identifier(id) => id.to_string(),
                    hcl::ObjectKey::Expression(E::String(s)) => s.clone(),
                    hcl::ObjectKey::Expression(other) => match hcl_expr(other) {
                        Value::String(s) => s,
                        v => v.to_string(),
                    },
                    other => other.to_string(),
                };
                m.insert(key, hcl_expr(v));
            }
            Value::Object(m)
        }
        // A template keeps its source: literal text and `${…}` interpolations.
        E::TemplateExpr(t) => match t.as_ref() {
            hcl::TemplateExpr::QuotedString(s) => Value::String(s.clone()),
            hcl::TemplateExpr::Heredoc(h) => Value::String(h.template.clone()),
        },
        E::Parenthesis(inner) => match inner.as_ref() {
            E::Null | E::Bool(_) | E::Number(_) | E::String(_) => hcl_expr(inner),
            _ => Value::String(format!("${{{expr}}}")),
        },
        // Everything else is kept as its source, wrapped in `${…}`, as conftest does.
        other => Value::String(format!("${{{other}}}")),
    }
}

// ---------------------------------------------------------------------------------------
// Dockerfile

/// Converts a Dockerfile to conftest's shape: the list of its commands.
///
/// Hand-written: there is no maintained Rust crate that follows BuildKit's parser, and the
/// shape conftest exposes (BuildKit's AST flattened into `Cmd`/`Flags`/`Value`) is small:
/// line continuations, comments, parser directives, `--flags`, JSON (exec) form, and the
/// per-instruction splitting of the value.
fn dockerfile_to_json(text: &str) -> Value {
    let mut escape = '\\';
    let mut commands = Vec::new();
    let mut stage: i64 = -1;
    let mut comments: Vec<String> = Vec::new();
    let mut in_directives = true;
    let mut lines = text.lines().peekable();
    while let Some(raw) = lines.next() {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            in_directives = false;
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            if in_directives {
                if let Some((key, value)) = comment.trim().split_once('=') {
                    let key = key.trim().to_ascii_lowercase();
                    if key == "escape" {
                        escape = value.trim().chars().next().unwrap_or('\\');
                        continue;
                    }
                    if key == "syntax" || key == "check" {
                        continue;
                    }
                }
            }
            in_directives = false;
            comments.push(comment.trim().to_string());
            continue;
        }
        in_directives = false;
        // Join continuation lines (comment lines inside a continuation are dropped).
        let mut line = raw.trim_end().to_string();
        let mut original = line.clone();
        while line.ends_with(escape) {
            line.pop();
            match lines.next() {
                Some(next) => {
                    original.push('\n');
                    original.push_str(next.trim_end());
                    if next.trim_start().starts_with('#') {
                        // A comment inside a continuation is dropped; the command goes on.
                        line.push(escape);
                        continue;
                    }
                    line.push_str(next.trim_end());
                }
                None => break,
            }
        }
        let line = line.trim();
        let (instruction, rest) = split_word(line);
        let cmd = instruction.to_ascii_lowercase();
        // Heredocs (`RUN <<EOF` … `EOF`): their lines belong to the command, not the file.
        if matches!(cmd.as_str(), "run" | "copy" | "add") {
            for marker in heredoc_markers(rest) {
                for next in lines.by_ref() {
                    original.push('\n');
                    original.push_str(next);
                    if next.trim() == marker {
                        break;
                    }
                }
            }
        }
        if cmd == "from" {
            stage += 1;
        }
        let current_stage = stage.max(0);
        for comment in comments.drain(..) {
            commands.push(serde_json::json!({
                "Cmd": "comment",
                "SubCmd": "",
                "JSON": false,
                "Flags": [],
                "Value": [comment],
                "Stage": current_stage,
                "Original": format!("# {comment}"),
            }));
        }
        let (flags, rest) = take_flags(rest);
        let (sub_cmd, json, value) = if cmd == "onbuild" {
            let (sub, sub_rest) = split_word(rest);
            let (json, value) = dockerfile_value(&sub.to_ascii_lowercase(), sub_rest);
            (sub.to_ascii_uppercase(), json, value)
        } else {
            let (json, value) = dockerfile_value(&cmd, rest);
            (String::new(), json, value)
        };
        commands.push(serde_json::json!({
            "Cmd": cmd,
            "SubCmd": sub_cmd,
            "JSON": json,
            "Flags": flags,
            "Value": value,
            "Stage": current_stage,
            "Original": original,
        }));
    }
    Value::Array(commands)
}

/// The terminators of the heredocs a command line opens (`<<EOF`, `<<-EOF`, `<<"EOF"`).
fn heredoc_markers(rest: &str) -> Vec<String> {
    rest.split_whitespace()
        .filter_map(|w| w.strip_prefix("<<"))
        .map(|w| w.trim_start_matches('-').trim_matches(['"', '\'']))
        .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_alphanumeric() || c == '_'))
        .map(str::to_string)
        .collect()
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

fn take_flags(mut rest: &str) -> (Vec<String>, &str) {
    let mut flags = Vec::new();
    loop {
        let (word, after) = split_word(rest);
        if word.starts_with("--") && word.len() > 2 {
            flags.push(word.to_string());
            rest = after;
        } else {
            return (flags, rest);
        }
    }
}

/// `(json form?, values)` of one instruction's arguments, split as BuildKit splits them.
fn dockerfile_value(cmd: &str, rest: &str) -> (bool, Vec<String>) {
    let json_form = || -> Option<Vec<String>> {
        if rest.starts_with('[') {
            serde_json::from_str::<Vec<String>>(rest).ok()
        } else {
            None
        }
    };
    let words = || rest.split_whitespace().map(str::to_string).collect();
    match cmd {
        "run" | "cmd" | "entrypoint" | "shell" => match json_form() {
            Some(v) => (true, v),
            None if rest.is_empty() => (false, vec![]),
            None => (false, vec![rest.to_string()]),
        },
        "add" | "copy" | "volume" => match json_form() {
            Some(v) => (true, v),
            None => (false, words()),
        },
        "env" | "label" => (false, name_values(rest)),
        "maintainer" | "stopsignal" | "workdir" | "user" => {
            if rest.is_empty() {
                (false, vec![])
            } else {
                (false, vec![rest.to_string()])
            }
        }
        "healthcheck" => {
            let (first, after) = split_word(rest);
            if first.eq_ignore_ascii_case("none") {
                (false, vec!["NONE".into()])
            } else {
                let (json, mut v) = dockerfile_value("cmd", after);
                v.insert(0, first.to_ascii_uppercase());
                (json, v)
            }
        }
        // from, expose, arg and anything unknown: whitespace-separated words.
        _ => (false, words()),
    }
}

/// `ENV a=b c="d e"` → `[a, b, c, d e]`; the legacy `ENV a b c` → `[a, b c]`.
fn name_values(rest: &str) -> Vec<String> {
    let words = shell_words(rest);
    if !words.first().is_some_and(|w| w.contains('=')) {
        let (name, value) = split_word(rest);
        return vec![name.to_string(), unquote(value)];
    }
    let mut out = Vec::new();
    for w in words {
        match w.split_once('=') {
            Some((k, v)) => {
                out.push(k.to_string());
                out.push(v.to_string());
            }
            None => out.push(w),
        }
    }
    out
}

/// Splits on whitespace outside quotes, removing the quotes.
fn shell_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
                in_word = true;
            }
            (_, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

fn unquote(s: &str) -> String {
    let s = s.trim();
    for q in ['"', '\''] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return s[1..s.len() - 1].to_string();
        }
    }
    s.to_string()
}

// ---------------------------------------------------------------------------------------
// TOML, dotenv

fn toml_to_json(text: &str) -> Result<Value, String> {
    let value: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    Ok(toml_value(&toml::Value::Table(value)))
}

fn toml_value(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_value).collect()),
        toml::Value::Table(t) => {
            Value::Object(t.iter().map(|(k, v)| (k.clone(), toml_value(v))).collect())
        }
    }
}

fn dotenv_to_json(text: &str) -> Result<Value, String> {
    let mut out = Map::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (k, v) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: expected KEY=VALUE", n + 1))?;
        let v = v.trim();
        let v = if v.starts_with(['"', '\'']) {
            unquote(v)
        } else {
            v.split(" #").next().unwrap_or(v).trim().to_string()
        };
        out.insert(k.trim().to_string(), Value::String(v));
    }
    Ok(Value::Object(out))
}

// ---------------------------------------------------------------------------------------
// Evaluation

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct Options {
    /// Namespaces (packages without `data.`) whose rules run; `main` when empty.
    pub namespaces: Vec<String>,
    /// Run every namespace that has policies.
    pub all_namespaces: bool,
    /// Evaluate all inputs together as one `[{path, contents}]` document.
    pub combine: bool,
    /// The directory relative input paths are relative to (the CLI's working directory),
    /// so `data.conftest.file.dir` is absolute as in conftest. `None` keeps paths as given.
    pub base_dir: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            namespaces: vec!["main".into()],
            all_namespaces: false,
            combine: false,
            base_dir: None,
        }
    }
}

/// Compiled conftest policies with their data.
#[derive(Debug, Clone)]
pub struct Conftest {
    policy: Policy,
}

fn is_failure(rule: &str) -> bool {
    rule_kind(rule) == Some(Severity::Failure)
}

/// `deny`, `violation`, `warn`, optionally followed by `_suffix` parts of `[A-Za-z0-9]`.
fn rule_kind(rule: &str) -> Option<Severity> {
    for (prefix, sev) in [
        ("deny", Severity::Failure),
        ("violation", Severity::Failure),
        ("warn", Severity::Warning),
    ] {
        if let Some(rest) = rule.strip_prefix(prefix) {
            let ok = rest.is_empty()
                || (rest.starts_with('_')
                    && rest[1..]
                        .split('_')
                        .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric())));
            if ok {
                return Some(sev);
            }
        }
    }
    None
}

fn remove_rule_prefix(rule: &str) -> &str {
    if matches!(rule, "deny" | "violation" | "warn") {
        return "";
    }
    for prefix in ["violation_", "deny_", "warn_"] {
        if let Some(rest) = rule.strip_prefix(prefix) {
            return rest;
        }
    }
    rule
}

impl Conftest {
    /// Compiles `policies` (Rego v0 or v1) and loads `data` documents (each merged at the
    /// root of `data`, as `conftest --data` does).
    pub fn load(
        policies: &[RegoSource],
        data: &[Value],
        limits: Limits,
    ) -> Result<Self, ConftestError> {
        if policies.is_empty() {
            return Err(ConftestError::NoPolicies("the policy paths".into()));
        }
        let mut policy = Policy::compile(policies, RegoVersion::Auto, limits)?;
        for doc in data {
            policy.add_data(doc)?;
        }
        Ok(Self { policy })
    }

    /// The namespaces that have policies (packages without `data.`).
    pub fn namespaces(&self) -> Vec<String> {
        self.policy
            .packages()
            .iter()
            .map(|p| p.strip_prefix("data.").unwrap_or(p).to_string())
            .collect()
    }

    fn selected(&self, options: &Options) -> Vec<String> {
        if options.all_namespaces {
            return self.namespaces();
        }
        if options.namespaces.is_empty() {
            return vec!["main".into()];
        }
        options.namespaces.clone()
    }

    /// Evaluates `inputs` and returns one subject per file and namespace (or per namespace
    /// for `combine`).
    pub fn test(&self, inputs: &[Input], options: &Options) -> Result<Report, ConftestError> {
        let mut report = Report::default();
        let namespaces = self.selected(options);
        if options.combine {
            let mut all: Vec<(&str, &Value)> = inputs
                .iter()
                .flat_map(|i| i.documents.iter().map(move |d| (i.path.as_str(), d)))
                .collect();
            all.sort_by(|a, b| a.0.cmp(b.0));
            let combined = Value::Array(
                all.into_iter()
                    .map(|(path, contents)| serde_json::json!({"path": path, "contents": contents}))
                    .collect(),
            );
            let policy = self.with_file_info("Combined", options.base_dir.as_deref())?;
            for ns in &namespaces {
                let mut subject = Subject {
                    filename: "Combined".into(),
                    namespace: ns.clone(),
                    ..Subject::default()
                };
                check(
                    &policy,
                    ns,
                    &definitions(&policy, ns),
                    &combined,
                    &mut subject,
                )?;
                report.subjects.push(subject);
            }
            return Ok(report);
        }
        for ns in &namespaces {
            let defs = definitions(&self.policy, ns);
            for input in inputs {
                let policy = self.with_file_info(&input.path, options.base_dir.as_deref())?;
                let mut subject = Subject {
                    filename: input.path.clone(),
                    namespace: ns.clone(),
                    ..Subject::default()
                };
                for doc in &input.documents {
                    check(&policy, ns, &defs, doc, &mut subject)?;
                }
                report.subjects.push(subject);
            }
        }
        Ok(report)
    }

    fn with_file_info(&self, path: &str, base_dir: Option<&str>) -> Result<Policy, ConftestError> {
        let (dir, name) = match path.rsplit_once('/') {
            Some(("", n)) => ("/".to_string(), n.to_string()),
            Some((d, n)) => (d.to_string(), n.to_string()),
            None => (".".to_string(), path.to_string()),
        };
        let dir = match base_dir {
            Some(base) if !dir.starts_with('/') => {
                let base = base.trim_end_matches('/');
                match dir.as_str() {
                    "." => base.to_string(),
                    _ => format!("{base}/{}", dir.trim_start_matches("./")),
                }
            }
            _ => dir,
        };
        let mut policy = self.policy.clone();
        policy.add_data(&serde_json::json!({"conftest": {"file": {"name": name, "dir": dir}}}))?;
        Ok(policy)
    }
}

/// The `deny`/`violation`/`warn` rule definitions of namespace `ns` (a rule with two
/// bodies is listed twice).
fn definitions(policy: &Policy, ns: &str) -> Vec<String> {
    policy
        .rule_definitions(&format!("data.{ns}"))
        .into_iter()
        .filter(|r| rule_kind(r).is_some())
        .collect()
}

/// conftest's `check` of one document in one namespace, added to `subject`.
fn check(
    policy: &Policy,
    ns: &str,
    definitions: &[String],
    doc: &Value,
    subject: &mut Subject,
) -> Result<(), ConftestError> {
    let mut rules: Vec<&String> = Vec::new();
    for r in definitions {
        if !rules.contains(&r) {
            rules.push(r);
        }
    }
    let input = super::rego::to_value(doc);
    let mut successes = 0;
    let mut results = 0;
    for rule in rules {
        let severity = rule_kind(rule).unwrap_or(Severity::Warning);
        let exception_query = format!(
            "data.{ns}.exception[_][_] == {}",
            serde_json::to_string(remove_rule_prefix(rule)).unwrap_or_default()
        );
        let excused = policy
            .eval_query(&exception_query, input.clone())?
            .is_some_and(|values| values.iter().all(|v| *v == regorus::Value::Bool(true)));
        if excused {
            results += 1;
            subject.findings.push(Finding {
                severity: Severity::Exception,
                source: "conftest".into(),
                rule: format!("{ns}.{rule}"),
                message: exception_query.clone(),
                resource: String::new(),
                line: None,
                metadata: serde_json::json!({"query": exception_query}),
            });
            continue;
        }
        let query = format!("data.{ns}.{rule}");
        let value = policy.eval_rule(&query, input.clone())?;
        let value = value.map(|v| super::rego::from_value(&v));
        let items = match value {
            Some(Value::Array(items)) => items,
            // `deny if { … }` is a boolean: conftest refuses it, as a policy that can never
            // report what is wrong.
            Some(Value::Bool(_)) => {
                return Err(ConftestError::BadResult {
                    query,
                    message: format!(
                        "{rule} is a boolean rule; write `{rule} contains msg if {{ … }}` (Rego v1) or `{rule}[msg] {{ … }}` (v0)"
                    ),
                })
            }
            // A set rule that produced nothing, or a non-collection rule: one passing result.
            _ => Vec::new(),
        };
        if items.is_empty() {
            successes += 1;
            results += 1;
            continue;
        }
        for item in items {
            let (message, metadata) = match item {
                Value::String(s) => (s, serde_json::json!({"query": query})),
                Value::Object(mut obj) => {
                    let msg = match obj.remove("msg") {
                        Some(Value::String(s)) => s,
                        Some(other) => {
                            return Err(ConftestError::BadResult {
                                query,
                                message: format!("msg must be a string, not {}", kind_of(&other)),
                            })
                        }
                        None => {
                            return Err(ConftestError::BadResult {
                                query,
                                message: "rule result is an object without a msg field".into(),
                            })
                        }
                    };
                    obj.insert("query".into(), Value::String(query.clone()));
                    (msg, Value::Object(obj))
                }
                // conftest ignores other result types.
                _ => continue,
            };
            results += 1;
            let line = metadata
                .get("line")
                .and_then(Value::as_u64)
                .and_then(|l| u32::try_from(l).ok());
            subject.findings.push(Finding {
                severity: if is_failure(rule) {
                    Severity::Failure
                } else {
                    severity
                },
                source: "conftest".into(),
                rule: format!("{ns}.{rule}"),
                message,
                resource: String::new(),
                line,
                metadata,
            });
        }
    }
    // As conftest: each rule definition beyond the results counts as a success.
    if results < definitions.len() {
        successes += definitions.len() - results;
    }
    subject.successes += successes;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conftest(rego: &str) -> Conftest {
        Conftest::load(
            &[RegoSource::new("policy/main.rego", rego)],
            &[],
            Limits::default(),
        )
        .expect("compiles")
    }

    fn run(c: &Conftest, path: &str, text: &str) -> Report {
        let input = parse_input(path, text, None).expect("parses");
        c.test(&[input], &Options::default()).expect("runs")
    }

    const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: train\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: trainer:latest\n";

    #[test]
    fn deny_warn_and_successes_like_conftest() {
        let c = conftest(
            r#"package main
deny[msg] { input.kind == "Deployment"; msg := sprintf("%s: no limits", [input.metadata.name]) }
deny[msg] { input.kind == "Pod"; msg := "pods are not allowed" }
warn[msg] { endswith(input.spec.template.spec.containers[_].image, ":latest"); msg := "latest tag" }
deny_no_owner[{"msg": "owner label missing", "severity": "high"}] { not input.metadata.labels.owner }
violation_ok[msg] { false; msg := "never" }
"#,
        );
        let report = run(&c, "deploy.yaml", DEPLOY);
        let s = &report.subjects[0];
        assert_eq!(s.filename, "deploy.yaml");
        assert_eq!(s.namespace, "main");
        let msgs: Vec<_> = s
            .findings
            .iter()
            .map(|f| (f.severity, f.message.as_str()))
            .collect();
        assert!(msgs.contains(&(Severity::Failure, "train: no limits")));
        assert!(msgs.contains(&(Severity::Warning, "latest tag")));
        assert!(msgs.contains(&(Severity::Failure, "owner label missing")));
        let owner = s
            .findings
            .iter()
            .find(|f| f.message == "owner label missing")
            .expect("owner finding");
        assert_eq!(owner.metadata["severity"], "high");
        assert_eq!(owner.metadata["query"], "data.main.deny_no_owner");
        assert_eq!(owner.rule, "main.deny_no_owner");
        // 5 definitions, 3 results: conftest counts 2 successes.
        assert_eq!(s.successes, 2);
        assert!(report.has_failures());
    }

    #[test]
    fn rego_v1_policies_work() {
        let c = conftest(
            "package main\nimport rego.v1\ndeny contains msg if { input.kind == \"Deployment\"; msg := \"no\" }\n",
        );
        let report = run(&c, "d.yaml", DEPLOY);
        assert_eq!(report.subjects[0].findings.len(), 1);
    }

    #[test]
    fn multi_document_yaml_is_one_subject_with_every_document_checked() {
        let c = conftest("package main\ndeny[msg] { input.kind == \"Secret\"; msg := sprintf(\"secret %s\", [input.metadata.name]) }\n");
        let text = "kind: Secret\nmetadata: {name: a}\n---\nkind: ConfigMap\nmetadata: {name: b}\n---\nkind: Secret\nmetadata: {name: c}\n";
        let report = run(&c, "all.yaml", text);
        assert_eq!(report.subjects.len(), 1);
        assert_eq!(report.subjects[0].findings.len(), 2);
        assert_eq!(report.subjects[0].successes, 1);
    }

    #[test]
    fn exceptions_excuse_named_rules() {
        let c = conftest(
            r#"package main
deny_run_as_root[msg] { input.kind == "Deployment"; msg := "runs as root" }
deny_latest[msg] { input.kind == "Deployment"; msg := "latest tag" }
exception[rules] { input.metadata.name == "train"; rules := ["run_as_root"] }
"#,
        );
        let report = run(&c, "d.yaml", DEPLOY);
        let s = &report.subjects[0];
        let excp: Vec<_> = s
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Exception)
            .collect();
        assert_eq!(excp.len(), 1);
        assert_eq!(
            excp[0].message,
            "data.main.exception[_][_] == \"run_as_root\""
        );
        assert!(s.findings.iter().any(|f| f.message == "latest tag"));
        assert!(!s.findings.iter().any(|f| f.message == "runs as root"));
    }

    #[test]
    fn v1_exceptions_with_contains() {
        let c = conftest(
            "package main\nimport rego.v1\ndeny_foo contains \"foo\" if { true }\nexception contains rules if { input.kind == \"X\"; rules := [\"foo\"] }\n",
        );
        let r = run(&c, "x.json", r#"{"kind": "X"}"#);
        assert_eq!(r.subjects[0].findings[0].severity, Severity::Exception);
        let r = run(&c, "y.json", r#"{"kind": "Y"}"#);
        assert_eq!(r.subjects[0].findings[0].severity, Severity::Failure);
    }

    #[test]
    fn namespaces_select_packages() {
        let c = Conftest::load(
            &[
                RegoSource::new("a.rego", "package main\ndeny[m] { m := \"main\" }\n"),
                RegoSource::new("b.rego", "package k8s.extra\nwarn[m] { m := \"extra\" }\n"),
            ],
            &[],
            Limits::default(),
        )
        .expect("compiles");
        let input = parse_input("x.json", "{}", None).expect("parses");
        let only = c
            .test(
                std::slice::from_ref(&input),
                &Options {
                    namespaces: vec!["k8s.extra".into()],
                    ..Options::default()
                },
            )
            .expect("runs");
        assert_eq!(only.subjects.len(), 1);
        assert_eq!(only.subjects[0].findings[0].message, "extra");
        let all = c
            .test(
                &[input],
                &Options {
                    all_namespaces: true,
                    ..Options::default()
                },
            )
            .expect("runs");
        assert_eq!(all.subjects.len(), 2);
    }

    #[test]
    fn combine_passes_every_document_with_its_path() {
        let c = conftest(
            r#"package main
deny[msg] {
  names := {n | n := input[_].contents.metadata.name}
  count(names) != count(input)
  msg := "duplicate names"
}
deny[msg] { input[i].path == "b.yaml"; msg := sprintf("saw %s", [input[i].contents.metadata.name]) }
"#,
        );
        let a = parse_input(
            "b.yaml",
            "metadata: {name: x}\n---\nmetadata: {name: z}\n",
            None,
        )
        .expect("parses");
        let b = parse_input("a.yaml", "metadata: {name: x}\n", None).expect("parses");
        let report = c
            .test(
                &[a, b],
                &Options {
                    combine: true,
                    ..Options::default()
                },
            )
            .expect("runs");
        assert_eq!(report.subjects.len(), 1);
        assert_eq!(report.subjects[0].filename, "Combined");
        let msgs: Vec<_> = report.subjects[0]
            .findings
            .iter()
            .map(|f| f.message.clone())
            .collect();
        assert!(msgs.contains(&"duplicate names".to_string()), "{msgs:?}");
        assert!(
            msgs.contains(&"saw x".to_string()) && msgs.contains(&"saw z".to_string()),
            "{msgs:?}"
        );
    }

    #[test]
    fn data_documents_and_file_info_are_visible() {
        let data =
            parse_data("data/repos.yaml", "allowed:\n  - registry.example.com\n").expect("data");
        let c = Conftest::load(
            &[RegoSource::new(
                "p.rego",
                r#"package main
deny[msg] { not startswith(input.image, data.allowed[0]); msg := sprintf("%s from %s", [input.image, data.conftest.file.name]) }
"#,
            )],
            &[data],
            Limits::default(),
        )
        .expect("compiles");
        let r = run(&c, "dir/pod.json", r#"{"image": "docker.io/x"}"#);
        assert_eq!(
            r.subjects[0].findings[0].message,
            "docker.io/x from pod.json"
        );
    }

    #[test]
    fn boolean_deny_rules_are_refused_like_conftest() {
        let c = conftest("package main\nimport rego.v1\ndeny if { input.x }\n");
        let input = parse_input("x.json", "{\"x\": true}", None).expect("parses");
        let err = c.test(&[input], &Options::default()).expect_err("boolean");
        assert!(err.to_string().contains("deny contains msg if"), "{err}");
    }

    #[test]
    fn object_results_need_a_msg() {
        let c = conftest("package main\ndeny[{\"reason\": \"x\"}] { true }\n");
        let input = parse_input("x.json", "{}", None).expect("parses");
        let err = c.test(&[input], &Options::default()).expect_err("no msg");
        assert!(err.to_string().contains("msg"), "{err}");
    }

    #[test]
    fn rule_kinds_follow_conftest_names() {
        assert_eq!(rule_kind("deny"), Some(Severity::Failure));
        assert_eq!(rule_kind("deny_a_b1"), Some(Severity::Failure));
        assert_eq!(rule_kind("violation_x"), Some(Severity::Failure));
        assert_eq!(rule_kind("warn_x"), Some(Severity::Warning));
        assert_eq!(rule_kind("denyx"), None);
        assert_eq!(rule_kind("deny_"), None);
        assert_eq!(rule_kind("exception"), None);
        assert_eq!(remove_rule_prefix("deny"), "");
        assert_eq!(remove_rule_prefix("warn_latest"), "latest");
    }

    #[test]
    fn hcl2_matches_conftest_shape() {
        let tf = r#"
variable "region" { default = "eu-west-1" }
resource "aws_s3_bucket" "logs" {
  bucket = "logs-${var.env}"
  acl    = "private"
  count  = 2
  tags   = { team = "ml", Name = var.name }
  versioning { enabled = true }
}
resource "aws_s3_bucket" "data" { bucket = var.bucket }
provider "aws" { region = var.region }
"#;
        let input = parse_input("main.tf", tf, None).expect("parses");
        let v = &input.documents[0];
        assert_eq!(v["resource"]["aws_s3_bucket"]["logs"][0]["acl"], "private");
        assert_eq!(v["resource"]["aws_s3_bucket"]["logs"][0]["count"], 2);
        assert_eq!(
            v["resource"]["aws_s3_bucket"]["logs"][0]["bucket"],
            "logs-${var.env}"
        );
        assert_eq!(
            v["resource"]["aws_s3_bucket"]["logs"][0]["tags"]["Name"],
            "${var.name}"
        );
        assert_eq!(
            v["resource"]["aws_s3_bucket"]["logs"][0]["versioning"],
            json!([{"enabled": true}])
        );
        assert_eq!(
            v["resource"]["aws_s3_bucket"]["data"][0]["bucket"],
            "${var.bucket}"
        );
        assert_eq!(v["variable"]["region"][0]["default"], "eu-west-1");
        assert_eq!(v["provider"]["aws"][0]["region"], "${var.region}");
    }

    #[test]
    fn dockerfile_matches_conftest_shape() {
        let text = "# syntax=docker/dockerfile:1\nFROM python:3.11 AS build\n# install deps\nRUN pip install \\\n    torch\nCOPY --from=build --chown=1000 /a /b\nENV A=1 B=\"two words\"\nCMD [\"python\", \"serve.py\"]\nFROM gcr.io/distroless/python3\nUSER 1000\nEXPOSE 8080 9090\n";
        let input = parse_input("Dockerfile", text, None).expect("parses");
        let cmds = input.documents[0].as_array().expect("commands").clone();
        let by = |i: usize| &cmds[i];
        assert_eq!(by(0)["Cmd"], "from");
        assert_eq!(by(0)["Value"], json!(["python:3.11", "AS", "build"]));
        assert_eq!(by(0)["Stage"], 0);
        assert_eq!(by(1)["Cmd"], "comment");
        assert_eq!(by(1)["Value"], json!(["install deps"]));
        assert_eq!(by(2)["Cmd"], "run");
        assert_eq!(by(2)["Value"], json!(["pip install     torch"]));
        assert_eq!(by(3)["Flags"], json!(["--from=build", "--chown=1000"]));
        assert_eq!(by(3)["Value"], json!(["/a", "/b"]));
        assert_eq!(by(4)["Value"], json!(["A", "1", "B", "two words"]));
        assert_eq!(by(5)["JSON"], true);
        assert_eq!(by(5)["Value"], json!(["python", "serve.py"]));
        assert_eq!(by(6)["Stage"], 1);
        assert_eq!(by(7)["Value"], json!(["1000"]));
        assert_eq!(by(8)["Value"], json!(["8080", "9090"]));
        assert_eq!(cmds.len(), 9);
    }

    /// The parsed form of realistic inputs, compared with reviewed JSON files
    /// (`UPDATE_GOLDEN=1` rewrites them).
    #[test]
    fn parser_golden_files() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/policy/conftest/parsers"
        );
        for name in ["main.tf", "Dockerfile"] {
            let text = std::fs::read_to_string(format!("{dir}/{name}")).expect("fixture");
            let input = parse_input(name, &text, None).expect("parses");
            let got = serde_json::to_string_pretty(&input.documents).expect("json") + "\n";
            let golden = format!("{dir}/{name}.json");
            if std::env::var_os("UPDATE_GOLDEN").is_some() {
                std::fs::write(&golden, &got).expect("write golden");
            }
            let want = std::fs::read_to_string(&golden).expect("golden");
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn json_streams_and_byte_order_marks() {
        let i = parse_input("s.json", "\u{feff}{\"a\": 1}\n{\"a\": 2}\n", None).expect("stream");
        assert_eq!(i.documents, vec![json!({"a": 1}), json!({"a": 2})]);
        let i = parse_input("arr.json", "[1, 2]", None).expect("array");
        assert_eq!(i.documents, vec![json!([1, 2])], "an array is one document");
    }

    #[test]
    fn dockerfile_heredocs_stay_in_their_command() {
        let text = "FROM debian\nRUN <<EOF\napt-get update\nUSER root\nEOF\nUSER 1000\n";
        let input = parse_input("Dockerfile", text, None).expect("parses");
        let cmds = input.documents[0].as_array().expect("commands");
        let names: Vec<_> = cmds
            .iter()
            .map(|c| c["Cmd"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(names, ["from", "run", "user"]);
        assert_eq!(cmds[2]["Value"], json!(["1000"]));
        assert!(cmds[1]["Original"]
            .as_str()
            .is_some_and(|o| o.contains("apt-get update")));
    }

    #[test]
    fn toml_and_dotenv_inputs() {
        let t = parse_input(
            "c.toml",
            "[server]\nport = 8080\nwhen = 1979-05-27T07:32:00Z\n",
            None,
        )
        .expect("toml");
        assert_eq!(t.documents[0]["server"]["port"], 8080);
        let e = parse_input(".env", "# c\nexport A=1\nB=\"x y\"\n", None).expect("env");
        assert_eq!(e.documents[0], json!({"A": "1", "B": "x y"}));
    }

    #[test]
    fn hostile_inputs_are_clear_errors() {
        let err = parse_input("x.yaml", "a: [1, 2\nb: {", None).expect_err("broken");
        assert!(
            err.to_string().starts_with("x.yaml: parsing as yaml"),
            "{err}"
        );
        let err = parse_input("bin.json", "\u{0}\u{1}\u{2}", None).expect_err("binary");
        assert!(err.to_string().contains("binary"), "{err}");
        let big = "a".repeat(MAX_INPUT_BYTES + 1);
        let err = parse_input("big.yaml", &big, None).expect_err("too big");
        assert!(err.to_string().contains("limit"), "{err}");
        let err = parse_input("notes.txt", "hi", None).expect_err("unknown");
        assert!(matches!(err, ConftestError::UnknownFileType(_)));
        let err = parse_input("main.tf", "resource \"x\" {", None).expect_err("hcl");
        assert!(err.to_string().contains("hcl2"), "{err}");
        assert!("cue".parse::<Parser>().is_err());
        assert_eq!("terraform".parse::<Parser>().expect("alias"), Parser::Hcl2);
    }

    #[test]
    fn runaway_policies_hit_the_time_limit() {
        let c = Conftest::load(
            &[RegoSource::new(
                "slow.rego",
                "package main\ndeny[x] { some i, j, k; numbers.range(1, 400)[i]; numbers.range(1, 400)[j]; numbers.range(1, 400)[k]; x := sprintf(\"%d\", [i + j + k]) }\n",
            )],
            &[],
            Limits {
                eval_timeout: std::time::Duration::from_millis(100),
                ..Limits::default()
            },
        )
        .expect("compiles");
        let input = parse_input("x.json", "{}", None).expect("parses");
        let err = c
            .test(&[input], &Options::default())
            .expect_err("times out");
        assert!(err.to_string().contains("time limit"), "{err}");
    }

    #[test]
    fn compile_errors_name_file_and_line() {
        let err = Conftest::load(
            &[RegoSource::new(
                "policy/bad.rego",
                "package main\n\ndeny[msg] {\n  msg := \n}\n",
            )],
            &[],
            Limits::default(),
        )
        .expect_err("bad rego");
        assert!(err.to_string().starts_with("policy/bad.rego:"), "{err}");
    }
}
