//! Structural schemas: custom resources pruned, defaulted and validated against their CRD's
//! `openAPIV3Schema`, and CRD schemas checked for being structural.
//!
//! A real API server stores a custom resource only if it matches the schema of its version,
//! and stores only what the schema declares: this is what lets controllers (Mooring's own
//! included) trust the shape of what they read. The steps, in the real server's order:
//!
//! 1. **Pruning** ([`prune`]): fields the schema does not declare are dropped, unless a
//!    node says `x-kubernetes-preserve-unknown-fields: true`; at the root and in
//!    `x-kubernetes-embedded-resource` objects, `apiVersion`, `kind` and `metadata` stay.
//!    The dropped paths are what `fieldValidation=Strict|Warn` reports ([`crate::fields`]).
//! 2. **Defaulting** ([`default`]): a missing property (or a `null` one that is not
//!    `nullable`) with a `default` gets it, recursively.
//! 3. **Validation** ([`validate`]): types (`integer` vs `number`, `x-kubernetes-int-or-string`),
//!    `nullable`, `required`, `enum`, `pattern`, `minimum`/`maximum` and their exclusive
//!    forms, `multipleOf`, lengths, item and property counts, `uniqueItems`, the formats the
//!    real server checks, `x-kubernetes-list-type` `set`/`map` uniqueness, `allOf`/`anyOf`/
//!    `oneOf`/`not`. Errors are worded as the real server's field errors
//!    (`spec.replicas: Invalid value: "string": spec.replicas in body must be of type
//!    integer: "string"`), and validation ratchets as in Kubernetes 1.32: a part of an
//!    update equal to the stored object's is not re-validated, so objects stored before a
//!    schema tightened can still be updated elsewhere.
//!
//! Defaults are applied on writes and on reads (an object stored before its schema gained a
//! default reads with it, as the real server defaults what it reads from etcd).
//! `x-kubernetes-validations` (CEL rules) are not evaluated; a CRD carrying them is accepted
//! with a `Warning` naming each rule that will not be enforced ([`cel_rules`]).
//!
//! Hostile input stays bounded: patterns are compiled with the linear-time `regex` crate
//! under a size limit (and cached, a bounded number of them), recursion is bounded by the
//! JSON decoder's nesting limit and [`MAX_DEPTH`], and every check is linear in the object
//! (uniqueness uses hashing of canonical JSON).

use regex::Regex;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

/// Deepest schema or object nesting walked; deeper parts are reported, not walked.
pub const MAX_DEPTH: usize = 100;

/// Largest compiled `pattern` (bytes of the compiled program).
const MAX_REGEX_SIZE: usize = 1 << 20;

/// Compiled patterns kept at most.
const REGEX_CACHE: usize = 512;

/// Longest pattern kept in the cache (longer ones, rare and possibly hostile, are compiled
/// each time rather than pinned in memory).
const MAX_CACHED_PATTERN: usize = 4096;

/// Field errors listed at most for one object; the rest are counted (a hostile object with
/// a million bad items gets a bounded answer).
pub const MAX_ERRORS: usize = 100;

/// Why a `pattern` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PatternError {
    #[error("{0}")]
    Invalid(String),
}

/// A compiled `pattern`, cached.
pub fn pattern(p: &str) -> Result<Arc<Regex>, PatternError> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(r) = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(p)
    {
        return Ok(r.clone());
    }
    let r = regex::RegexBuilder::new(p)
        .size_limit(MAX_REGEX_SIZE)
        .dfa_size_limit(MAX_REGEX_SIZE)
        .build()
        .map_err(|e| {
            // The parser's message spans lines (pattern, caret, error); keep the error.
            let text = e.to_string();
            let line = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("error: "))
                .unwrap_or(text.lines().last().unwrap_or(""))
                .to_string();
            PatternError::Invalid(line)
        })?;
    let r = Arc::new(r);
    if p.len() <= MAX_CACHED_PATTERN {
        let mut c = cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if c.len() >= REGEX_CACHE {
            c.clear();
        }
        c.insert(p.to_string(), r.clone());
    }
    Ok(r)
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn truthy(s: &Value, key: &str) -> bool {
    s.get(key).and_then(Value::as_bool) == Some(true)
}

fn preserves(s: &Value) -> bool {
    truthy(s, "x-kubernetes-preserve-unknown-fields")
        || s.get("additionalProperties").and_then(Value::as_bool) == Some(true)
}

/// The schema of a map's values, when `additionalProperties` is one.
fn additional(s: &Value) -> Option<&Value> {
    s.get("additionalProperties").filter(|a| a.is_object())
}

/// Drop what `schema` does not declare from `v` (the object at the root of a custom
/// resource when `root`); returns the dropped paths (`spec.foo`, `spec.items[0].bar`).
pub fn prune(schema: &Value, v: &mut Value, root: bool) -> Vec<String> {
    let mut out = Vec::new();
    prune_at(schema, v, "", root, 0, &mut out);
    out.sort();
    out
}

fn prune_at(
    s: &Value,
    v: &mut Value,
    path: &str,
    keep_meta: bool,
    depth: usize,
    out: &mut Vec<String>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    match v {
        Value::Object(o) => {
            let props = s.get("properties").and_then(Value::as_object);
            let add = additional(s);
            let keep_all = preserves(s);
            let embedded = keep_meta || truthy(s, "x-kubernetes-embedded-resource");
            let mut gone = Vec::new();
            for (k, x) in o.iter_mut() {
                if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let p = child(path, k);
                if let Some(ps) = props.and_then(|p| p.get(k)) {
                    prune_at(ps, x, &p, false, depth + 1, out);
                } else if let Some(a) = add {
                    prune_at(a, x, &format!("{path}[{k}]"), false, depth + 1, out);
                } else if !keep_all {
                    gone.push(k.clone());
                    out.push(p);
                }
            }
            for k in gone {
                o.remove(&k);
            }
        }
        Value::Array(a) => {
            if let Some(items) = s.get("items").filter(|i| i.is_object()) {
                for (i, x) in a.iter_mut().enumerate() {
                    prune_at(items, x, &format!("{path}[{i}]"), false, depth + 1, out);
                }
            }
        }
        _ => {}
    }
}

/// Fill in the `default`s of `schema` that `v` lacks, recursively.
pub fn default(schema: &Value, v: &mut Value) {
    default_at(schema, v, 0);
}

fn default_at(s: &Value, v: &mut Value, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    match v {
        Value::Object(o) => {
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (k, ps) in props {
                    let Some(d) = ps.get("default") else { continue };
                    let missing = match o.get(k) {
                        None => true,
                        Some(Value::Null) => !truthy(ps, "nullable"),
                        Some(_) => false,
                    };
                    if missing {
                        o.insert(k.clone(), d.clone());
                    }
                }
                for (k, x) in o.iter_mut() {
                    if let Some(ps) = props.get(k) {
                        default_at(ps, x, depth + 1);
                    }
                }
            } else if let Some(a) = additional(s) {
                for x in o.values_mut() {
                    default_at(a, x, depth + 1);
                }
            }
        }
        Value::Array(a) => {
            if let Some(items) = s.get("items").filter(|i| i.is_object()) {
                for x in a.iter_mut() {
                    if x.is_null() {
                        if let Some(d) = items.get("default").filter(|_| !truthy(items, "nullable"))
                        {
                            *x = d.clone();
                        }
                    }
                    default_at(items, x, depth + 1);
                }
            }
        }
        _ => {}
    }
}

/// A JSON value as Go's `%#v`-ish rendering in field errors: strings quoted, the rest as
/// JSON (long values shortened, as hostile ones can be megabytes).
fn shown(v: &Value) -> String {
    let s = match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    if s.len() > 256 {
        let mut cut = 256;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        format!("{}...", &s[..cut])
    } else {
        s
    }
}

/// The OpenAPI type name of a JSON value.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if is_integer(n) => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_integer(n: &serde_json::Number) -> bool {
    n.is_i64()
        || n.is_u64()
        || n.as_f64()
            .is_some_and(|f| f.fract() == 0.0 && f.is_finite())
}

fn type_matches(t: &str, v: &Value) -> bool {
    match (t, v) {
        ("object", Value::Object(_))
        | ("array", Value::Array(_))
        | ("string", Value::String(_))
        | ("boolean", Value::Bool(_))
        | ("number", Value::Number(_)) => true,
        ("integer", Value::Number(n)) => is_integer(n),
        _ => false,
    }
}

/// Validate `v` against `schema`; `old` is the stored object on an update (unchanged parts
/// are not re-validated: ratcheting). Returns field errors (`path: message`).
pub fn validate(schema: &Value, v: &Value, old: Option<&Value>) -> Vec<String> {
    let mut out = Vec::new();
    validate_at(schema, v, old, "", true, 0, &mut out);
    if out.len() > MAX_ERRORS {
        let more = out.len() - MAX_ERRORS;
        out.truncate(MAX_ERRORS);
        out.push(format!("<root>: Forbidden: {more} more errors not listed"));
    }
    out
}

/// Whether two numbers are equal (JSON `1` and `1.0` are).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, a)| y.get(k).is_some_and(|b| json_eq(a, b)))
        }
        _ => a == b,
    }
}

/// A canonical string for uniqueness checks (object keys sorted, numbers as f64).
fn canonical(v: &Value) -> String {
    match v {
        Value::Number(n) => n.as_f64().map(|f| f.to_string()).unwrap_or_default(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k:?}:{}", canonical(&o[k.as_str()])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        other => other.to_string(),
    }
}

fn num(s: &Value, key: &str) -> Option<f64> {
    s.get(key).and_then(Value::as_f64)
}

fn count(s: &Value, key: &str) -> Option<u64> {
    s.get(key).and_then(Value::as_u64)
}

#[allow(clippy::too_many_arguments)]
fn validate_at(
    s: &Value,
    v: &Value,
    old: Option<&Value>,
    path: &str,
    root: bool,
    depth: usize,
    out: &mut Vec<String>,
) {
    if old.is_some_and(|o| json_eq(o, v)) {
        return;
    }
    let at = if path.is_empty() { "<root>" } else { path };
    if depth > MAX_DEPTH {
        out.push(format!(
            "{at}: Invalid value: \"object\": nested too deeply (more than {MAX_DEPTH} levels)"
        ));
        return;
    }
    if v.is_null() {
        if truthy(s, "nullable") {
            return;
        }
        if let Some(t) = s.get("type").and_then(Value::as_str) {
            out.push(format!(
                "{at}: Invalid value: \"null\": {at} in body must be of type {t}: \"null\""
            ));
            return;
        }
        if truthy(s, "x-kubernetes-int-or-string") {
            out.push(format!("{at}: Invalid value: \"null\": {at} in body must be of type integer,string: \"null\""));
            return;
        }
    }
    if truthy(s, "x-kubernetes-int-or-string") {
        if !matches!(type_name(v), "integer" | "string") {
            let t = type_name(v);
            out.push(format!("{at}: Invalid value: \"{t}\": {at} in body must be of type integer,string: \"{t}\""));
            return;
        }
    } else if let Some(t) = s.get("type").and_then(Value::as_str) {
        if !type_matches(t, v) {
            let got = type_name(v);
            out.push(format!(
                "{at}: Invalid value: \"{got}\": {at} in body must be of type {t}: \"{got}\""
            ));
            return;
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        if !e.iter().any(|x| json_eq(x, v)) {
            let supported: Vec<String> = e.iter().take(64).map(shown).collect();
            let more = if e.len() > 64 { ", ..." } else { "" };
            out.push(format!(
                "{at}: Unsupported value: {}: supported values: {}{more}",
                shown(v),
                supported.join(", ")
            ));
        }
    }
    match v {
        Value::String(st) => validate_string(s, st, v, at, out),
        Value::Number(n) => validate_number(s, n, v, at, out),
        Value::Array(a) => {
            let n = a.len() as u64;
            if let Some(max) = count(s, "maxItems") {
                if n > max {
                    out.push(format!(
                        "{at}: Too many: {n}: must have at most {max} items"
                    ));
                }
            }
            if let Some(min) = count(s, "minItems") {
                if n < min {
                    out.push(format!(
                        "{at}: Invalid value: {n}: {at} in body should have at least {min} items"
                    ));
                }
            }
            let list_type = s.get("x-kubernetes-list-type").and_then(Value::as_str);
            if truthy(s, "uniqueItems") || list_type == Some("set") {
                let mut seen = HashSet::new();
                for (i, x) in a.iter().enumerate() {
                    if !seen.insert(canonical(x)) {
                        out.push(format!("{at}[{i}]: Duplicate value: {}", shown(x)));
                    }
                }
            }
            if list_type == Some("map") {
                let keys: Vec<&str> = s
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|k| k.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let mut seen = HashSet::new();
                for (i, x) in a.iter().enumerate() {
                    let key: Vec<String> = keys
                        .iter()
                        .map(|k| x.get(*k).map(canonical).unwrap_or_default())
                        .collect();
                    if !seen.insert(key) {
                        let shown_key: Map<String, Value> = keys
                            .iter()
                            .filter_map(|k| Some((k.to_string(), x.get(*k)?.clone())))
                            .collect();
                        out.push(format!(
                            "{at}[{i}]: Duplicate value: {}",
                            Value::Object(shown_key)
                        ));
                    }
                }
            }
            if let Some(items) = s.get("items").filter(|i| i.is_object()) {
                let old_items = old.and_then(Value::as_array);
                for (i, x) in a.iter().enumerate() {
                    // Ratcheting correlates list items only by map keys or set values;
                    // positional lists are compared as a whole (above).
                    let o = old_items.and_then(|oi| correlate(list_type, s, oi, x));
                    validate_at(items, x, o, &format!("{path}[{i}]"), false, depth + 1, out);
                }
            }
        }
        Value::Object(o) => {
            let n = o.len() as u64;
            if let Some(max) = count(s, "maxProperties") {
                if n > max {
                    out.push(format!(
                        "{at}: Too many: {n}: must have at most {max} items"
                    ));
                }
            }
            if let Some(min) = count(s, "minProperties") {
                if n < min {
                    out.push(format!("{at}: Invalid value: {n}: {at} in body should have at least {min} properties"));
                }
            }
            if let Some(req) = s.get("required").and_then(Value::as_array) {
                for r in req.iter().filter_map(Value::as_str) {
                    if !o.contains_key(r) {
                        out.push(format!("{}: Required value", child(path, r)));
                    }
                }
            }
            let props = s.get("properties").and_then(Value::as_object);
            let add = additional(s);
            let old_obj = old.and_then(Value::as_object);
            for (k, x) in o {
                if root && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let ox = old_obj.and_then(|m| m.get(k));
                if let Some(ps) = props.and_then(|p| p.get(k)) {
                    validate_at(ps, x, ox, &child(path, k), false, depth + 1, out);
                } else if let Some(a) = add {
                    validate_at(a, x, ox, &format!("{path}[{k}]"), false, depth + 1, out);
                }
            }
        }
        _ => {}
    }
    validate_combinators(s, v, old, path, root, depth, out);
}

fn correlate<'a>(
    list_type: Option<&str>,
    s: &Value,
    old: &'a [Value],
    x: &Value,
) -> Option<&'a Value> {
    match list_type {
        Some("set") => old.iter().find(|o| json_eq(o, x)),
        Some("map") => {
            let keys: Vec<&str> = s
                .get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .map(|k| k.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            old.iter()
                .find(|o| keys.iter().all(|k| o.get(*k) == x.get(*k)))
        }
        _ => None,
    }
}

fn validate_combinators(
    s: &Value,
    v: &Value,
    old: Option<&Value>,
    path: &str,
    root: bool,
    depth: usize,
    out: &mut Vec<String>,
) {
    let at = if path.is_empty() { "<root>" } else { path };
    let errs = |sub: &Value| {
        let mut e = Vec::new();
        validate_at(sub, v, old, path, root, depth + 1, &mut e);
        e
    };
    if let Some(all) = s.get("allOf").and_then(Value::as_array) {
        for sub in all {
            out.extend(errs(sub));
        }
    }
    if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
        if !any.is_empty() && !any.iter().any(|sub| errs(sub).is_empty()) {
            out.push(format!("{at}: Invalid value: {}: {at} in body must be valid against at least one schema of anyOf", shown(v)));
        }
    }
    if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
        let ok = one.iter().filter(|sub| errs(sub).is_empty()).count();
        if !one.is_empty() && ok != 1 {
            out.push(format!("{at}: Invalid value: {}: {at} in body must be valid against exactly one schema of oneOf", shown(v)));
        }
    }
    if let Some(not) = s.get("not") {
        if errs(not).is_empty() {
            out.push(format!(
                "{at}: Invalid value: {}: {at} in body must not be valid against the schema of not",
                shown(v)
            ));
        }
    }
}

fn validate_string(s: &Value, st: &str, v: &Value, at: &str, out: &mut Vec<String>) {
    let chars = st.chars().count() as u64;
    if let Some(max) = count(s, "maxLength") {
        if chars > max {
            out.push(format!("{at}: Too long: may not be more than {max} bytes"));
        }
    }
    if let Some(min) = count(s, "minLength") {
        if chars < min {
            out.push(format!(
                "{at}: Invalid value: {}: {at} in body should be at least {min} chars long",
                shown(v)
            ));
        }
    }
    if let Some(p) = s.get("pattern").and_then(Value::as_str) {
        match pattern(p) {
            Ok(re) => {
                if !re.is_match(st) {
                    out.push(format!(
                        "{at}: Invalid value: {}: {at} in body should match '{p}'",
                        shown(v)
                    ));
                }
            }
            Err(e) => out.push(format!(
                "{at}: Invalid value: {}: the schema's pattern does not compile: {e}",
                shown(v)
            )),
        }
    }
    if let Some(f) = s.get("format").and_then(Value::as_str) {
        if !format_ok(f, st) {
            out.push(format!(
                "{at}: Invalid value: {}: {at} in body must be of type {f}: {}",
                shown(v),
                shown(v)
            ));
        }
    }
}

fn validate_number(s: &Value, n: &serde_json::Number, v: &Value, at: &str, out: &mut Vec<String>) {
    let Some(x) = n.as_f64() else { return };
    let show = shown(v);
    let fmt = |f: f64| {
        Value::from(f)
            .to_string()
            .trim_end_matches(".0")
            .to_string()
    };
    if let Some(min) = num(s, "minimum") {
        if truthy(s, "exclusiveMinimum") {
            if x <= min {
                out.push(format!(
                    "{at}: Invalid value: {show}: {at} in body should be greater than {}",
                    fmt(min)
                ));
            }
        } else if x < min {
            out.push(format!(
                "{at}: Invalid value: {show}: {at} in body should be greater than or equal to {}",
                fmt(min)
            ));
        }
    }
    if let Some(max) = num(s, "maximum") {
        if truthy(s, "exclusiveMaximum") {
            if x >= max {
                out.push(format!(
                    "{at}: Invalid value: {show}: {at} in body should be less than {}",
                    fmt(max)
                ));
            }
        } else if x > max {
            out.push(format!(
                "{at}: Invalid value: {show}: {at} in body should be less than or equal to {}",
                fmt(max)
            ));
        }
    }
    if let Some(m) = num(s, "multipleOf") {
        if m > 0.0 && ((x / m).fract().abs() > 1e-9) {
            out.push(format!(
                "{at}: Invalid value: {show}: {at} in body should be a multiple of {}",
                fmt(m)
            ));
        }
    }
    if let Some(f) = s.get("format").and_then(Value::as_str) {
        let fits = match f {
            "int32" => is_integer(n) && x >= f64::from(i32::MIN) && x <= f64::from(i32::MAX),
            "int64" => n.as_i64().is_some() || (is_integer(n) && x.abs() < 9.2e18),
            _ => true,
        };
        if !fits {
            out.push(format!(
                "{at}: Invalid value: {show}: {at} in body must be of type {f}: {show}"
            ));
        }
    }
}

/// The string formats the real server checks (the ones Kubernetes registers for CRDs);
/// unknown formats are not checked, as there.
fn format_ok(f: &str, s: &str) -> bool {
    match f {
        "date-time" | "datetime" => s.parse::<jiff::Timestamp>().is_ok(),
        "date" => s.len() == 10 && jiff::civil::Date::strptime("%Y-%m-%d", s).is_ok(),
        "uuid" | "uuid3" | "uuid4" | "uuid5" => uuid::Uuid::parse_str(s).is_ok() && s.len() == 36,
        "byte" => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(s).is_ok()
        }
        "ipv4" => s.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6" => s.parse::<std::net::Ipv6Addr>().is_ok(),
        "cidr" => s.parse::<ipnet::IpNet>().is_ok(),
        "hostname" => {
            !s.is_empty()
                && s.len() <= 253
                && s.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                })
        }
        "email" => s
            .split_once('@')
            .is_some_and(|(a, b)| !a.is_empty() && b.contains('.')),
        "mac" => {
            let parts: Vec<&str> = s.split([':', '-']).collect();
            parts.len() == 6
                && parts
                    .iter()
                    .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
        }
        _ => true,
    }
}

/// One served version's schema problems: the CRD is rejected with these.
fn structural_errors(s: &Value, path: &str, depth: usize, out: &mut Vec<String>) {
    if depth > MAX_DEPTH {
        out.push(format!(
            "{path}: Invalid value: \"object\": nested too deeply (more than {MAX_DEPTH} levels)"
        ));
        return;
    }
    let Some(o) = s.as_object() else {
        out.push(format!(
            "{path}: Invalid value: {}: must be an object",
            shown(s)
        ));
        return;
    };
    let t = o.get("type").and_then(Value::as_str).unwrap_or("");
    let int_or_string = truthy(s, "x-kubernetes-int-or-string");
    let preserve = truthy(s, "x-kubernetes-preserve-unknown-fields");
    if t.is_empty() && !int_or_string && !preserve {
        out.push(format!(
            "{path}.type: Required value: must not be empty for specified object fields"
        ));
    }
    if !t.is_empty()
        && !matches!(
            t,
            "object" | "array" | "string" | "integer" | "number" | "boolean"
        )
    {
        out.push(format!(
            "{path}.type: Unsupported value: {t:?}: supported values: \"array\", \"boolean\", \"integer\", \"number\", \"object\", \"string\""
        ));
    }
    if o.contains_key("properties") && o.contains_key("additionalProperties") {
        out.push(format!(
            "{path}.additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"
        ));
    }
    if o.get("additionalProperties").and_then(Value::as_bool) == Some(false) {
        out.push(format!(
            "{path}.additionalProperties: Forbidden: must not be false (unknown fields are pruned instead)"
        ));
    }
    if t == "array" && !o.get("items").is_some_and(Value::is_object) {
        out.push(format!("{path}.items: Required value: must be specified"));
    }
    if let Some(p) = o.get("pattern") {
        match p.as_str().map(pattern) {
            Some(Ok(_)) => {}
            Some(Err(e)) => out.push(format!(
                "{path}.pattern: Invalid value: {}: must be a valid regular expression, but isn't: {e}",
                shown(p)
            )),
            None => out.push(format!("{path}.pattern: Invalid value: {}: must be a string", shown(p))),
        }
    }
    if let Some(t) = o.get("x-kubernetes-list-type").and_then(Value::as_str) {
        if !matches!(t, "atomic" | "set" | "map") {
            out.push(format!(
                "{path}.x-kubernetes-list-type: Unsupported value: {t:?}: supported values: \"atomic\", \"map\", \"set\""
            ));
        }
        if t == "map"
            && o.get("x-kubernetes-list-map-keys")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
        {
            out.push(format!(
                "{path}.x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map"
            ));
        }
    }
    if let Some(props) = o.get("properties") {
        match props.as_object() {
            Some(props) => {
                for (k, ps) in props {
                    structural_errors(ps, &format!("{path}.properties[{k}]"), depth + 1, out);
                }
            }
            None => out.push(format!(
                "{path}.properties: Invalid value: {}: must be an object",
                shown(props)
            )),
        }
    }
    if let Some(a) = o.get("additionalProperties").filter(|a| a.is_object()) {
        structural_errors(a, &format!("{path}.additionalProperties"), depth + 1, out);
    }
    if let Some(i) = o.get("items").filter(|i| i.is_object()) {
        structural_errors(i, &format!("{path}.items"), depth + 1, out);
    }
    if let Some(d) = o.get("default") {
        let mut errs = Vec::new();
        validate_at(s, d, None, "", false, depth, &mut errs);
        for e in errs {
            out.push(format!("{path}.default: Invalid value: {}: {e}", shown(d)));
        }
    }
    for comb in ["allOf", "anyOf", "oneOf"] {
        if let Some(subs) = o.get(comb).and_then(Value::as_array) {
            for (i, sub) in subs.iter().enumerate() {
                let p = format!("{path}.{comb}[{i}]");
                combinator_errors(sub, &p, int_or_string, depth + 1, out);
            }
        }
    }
    if let Some(n) = o.get("not") {
        combinator_errors(n, &format!("{path}.not"), false, depth + 1, out);
    }
}

/// Inside `allOf`/`anyOf`/`oneOf`/`not` a structural schema holds value validations only,
/// except for the int-or-string idiom controller-gen emits next to
/// `x-kubernetes-int-or-string: true` (`anyOf: [{type: integer}, {type: string}]`), which
/// Kubernetes allows.
fn combinator_errors(
    s: &Value,
    path: &str,
    int_or_string: bool,
    depth: usize,
    out: &mut Vec<String>,
) {
    if depth > MAX_DEPTH {
        out.push(format!(
            "{path}: Invalid value: \"object\": nested too deeply (more than {MAX_DEPTH} levels)"
        ));
        return;
    }
    let t = s.get("type").and_then(Value::as_str);
    if s.get("type").is_some() && !(int_or_string && matches!(t, Some("integer" | "string"))) {
        out.push(format!(
            "{path}.type: Forbidden: must be empty to be structural"
        ));
    }
    for k in [
        "additionalProperties",
        "default",
        "nullable",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-embedded-resource",
        "x-kubernetes-int-or-string",
    ] {
        if s.get(k).is_some() {
            out.push(format!(
                "{path}.{k}: Forbidden: must be empty to be structural"
            ));
        }
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        for (k, ps) in props {
            combinator_errors(
                ps,
                &format!("{path}.properties[{k}]"),
                false,
                depth + 1,
                out,
            );
        }
    }
    if let Some(i) = s.get("items").filter(|i| i.is_object()) {
        combinator_errors(i, &format!("{path}.items"), false, depth + 1, out);
    }
}

/// Field errors of a CustomResourceDefinition's schemas: every version's `openAPIV3Schema`
/// must be structural (`spec.versions[0].schema.openAPIV3Schema.properties[spec].type:
/// Required value: ...`), as apiextensions.k8s.io/v1 requires.
pub fn crd_errors(crd: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if crd.pointer("/spec/preserveUnknownFields") == Some(&Value::Bool(true)) {
        out.push("spec.preserveUnknownFields: Invalid value: true: must be false in order to use defaults in the schema".into());
    }
    let Some(versions) = crd.pointer("/spec/versions").and_then(Value::as_array) else {
        return out;
    };
    for (i, v) in versions.iter().enumerate() {
        let path = format!("spec.versions[{i}].schema.openAPIV3Schema");
        match v.pointer("/schema/openAPIV3Schema") {
            Some(s) => {
                structural_errors(s, &path, 0, &mut out);
                if s.get("type").and_then(Value::as_str) != Some("object") && s.is_object() {
                    out.push(format!(
                        "{path}.type: Invalid value: {}: must be object at the root",
                        shown(s.get("type").unwrap_or(&Value::Null))
                    ));
                }
            }
            None => out.push(format!(
                "spec.versions[{i}].schema.openAPIV3Schema: Required value: schemas are required"
            )),
        }
    }
    out
}

/// Every `x-kubernetes-validations` rule of a CRD, as `path: rule`, for the warning that
/// they will not be enforced.
pub fn cel_rules(crd: &Value) -> Vec<String> {
    fn walk(s: &Value, path: &str, depth: usize, out: &mut Vec<String>) {
        if depth > MAX_DEPTH || out.len() >= 100 {
            return;
        }
        let Some(o) = s.as_object() else { return };
        if let Some(rules) = o.get("x-kubernetes-validations").and_then(Value::as_array) {
            for r in rules {
                if let Some(rule) = r.get("rule").and_then(Value::as_str) {
                    let mut rule = rule.to_string();
                    if rule.len() > 200 {
                        let mut cut = 200;
                        while !rule.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        rule.truncate(cut);
                        rule.push_str("...");
                    }
                    out.push(format!("{path}: {rule}"));
                }
            }
        }
        if let Some(props) = o.get("properties").and_then(Value::as_object) {
            for (k, ps) in props {
                walk(ps, &format!("{path}.properties[{k}]"), depth + 1, out);
            }
        }
        for k in ["items", "additionalProperties"] {
            if let Some(x) = o.get(k) {
                walk(x, &format!("{path}.{k}"), depth + 1, out);
            }
        }
    }
    let mut out = Vec::new();
    if let Some(versions) = crd.pointer("/spec/versions").and_then(Value::as_array) {
        for (i, v) in versions.iter().enumerate() {
            if let Some(s) = v.pointer("/schema/openAPIV3Schema") {
                walk(
                    s,
                    &format!("spec.versions[{i}].schema.openAPIV3Schema"),
                    0,
                    &mut out,
                );
            }
        }
    }
    out
}

/// Prune, default and validate a custom resource against its version's schema, as a write
/// does. Returns the pruned paths (for `fieldValidation`) and the field errors.
pub fn admit(schema: &Value, obj: &mut Value, old: Option<&Value>) -> (Vec<String>, Vec<String>) {
    let pruned = prune(schema, obj, true);
    default(schema, obj);
    let errors = validate(schema, obj, old);
    (pruned, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "replicas": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1},
                        "image": {"type": "string", "maxLength": 20, "pattern": "^[a-z]+(:[0-9.]+)?$"},
                        "mode": {"type": "string", "enum": ["fast", "slow"]},
                        "port": {"x-kubernetes-int-or-string": true},
                        "ratio": {"type": "number", "exclusiveMinimum": true, "minimum": 0},
                        "when": {"type": "string", "format": "date-time"},
                        "note": {"type": "string", "nullable": true},
                        "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set", "maxItems": 3},
                        "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                            "items": {"type": "object", "properties": {"name": {"type": "string"}, "port": {"type": "integer", "format": "int32"}}}},
                        "labels": {"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": 2},
                        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "template": {"type": "object", "x-kubernetes-embedded-resource": true,
                            "properties": {"spec": {"type": "object", "properties": {"a": {"type": "string"}}}}},
                    }
                },
                "status": {"type": "object", "properties": {"phase": {"type": "string"}}}
            }
        })
    }

    fn admitted(obj: Value) -> (Value, Vec<String>, Vec<String>) {
        let mut o = obj;
        let (p, e) = admit(&schema(), &mut o, None);
        (o, p, e)
    }

    #[test]
    fn prunes_unknown_fields_but_keeps_preserved_and_embedded_ones() {
        let (o, pruned, errors) = admitted(json!({
            "apiVersion": "example.com/v1", "kind": "Foo", "metadata": {"name": "x"},
            "spec": {"image": "nginx", "bogus": 1, "extra": {"anything": {"goes": true}},
                "template": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"a": "b", "c": "d"}},
                "ports": [{"name": "http", "port": 80, "zzz": 1}]},
            "top": true
        }));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            pruned,
            vec![
                "spec.bogus",
                "spec.ports[0].zzz",
                "spec.template.spec.c",
                "top"
            ]
        );
        assert_eq!(o["spec"]["extra"]["anything"]["goes"], true);
        assert_eq!(o["spec"]["template"]["kind"], "Pod");
        assert_eq!(o["metadata"]["name"], "x");
        assert!(o.get("top").is_none());
        // Defaults.
        assert_eq!(o["spec"]["replicas"], 1);
    }

    #[test]
    fn errors_are_worded_as_the_real_server_words_them() {
        let (_, _, e) = admitted(json!({"spec": {"image": "nginx", "replicas": "three"}}));
        assert_eq!(e, ["spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""]);
        let (_, _, e) = admitted(json!({"spec": {"replicas": 11}}));
        assert_eq!(e, [
            "spec.image: Required value",
            "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10",
        ]);
        let (_, _, e) =
            admitted(json!({"spec": {"image": "Nginx", "mode": "medium", "replicas": 1.5}}));
        assert!(
            e.contains(
                &"spec.mode: Unsupported value: \"medium\": supported values: \"fast\", \"slow\""
                    .to_string()
            ),
            "{e:?}"
        );
        assert!(e.contains(&"spec.image: Invalid value: \"Nginx\": spec.image in body should match '^[a-z]+(:[0-9.]+)?$'".to_string()), "{e:?}");
        assert!(e.contains(&"spec.replicas: Invalid value: \"number\": spec.replicas in body must be of type integer: \"number\"".to_string()), "{e:?}");
        let (_, _, e) = admitted(json!({"spec": {"image": "a".repeat(100_000)}}));
        assert_eq!(e, ["spec.image: Too long: may not be more than 20 bytes"]);
        let (_, _, e) = admitted(
            json!({"spec": {"image": "a", "port": true, "ratio": 0, "when": "yesterday", "note": null,
            "tags": ["a", "a"], "ports": [{"name": "x"}, {"name": "x"}], "labels": {"a": "1", "b": "2", "c": 3}}}),
        );
        for want in [
            "spec.port: Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\"",
            "spec.ratio: Invalid value: 0: spec.ratio in body should be greater than 0",
            "spec.when: Invalid value: \"yesterday\": spec.when in body must be of type date-time: \"yesterday\"",
            "spec.tags[1]: Duplicate value: \"a\"",
            "spec.ports[1]: Duplicate value: {\"name\":\"x\"}",
            "spec.labels: Too many: 3: must have at most 2 items",
            "spec.labels[c]: Invalid value: \"integer\": spec.labels[c] in body must be of type string: \"integer\"",
        ] {
            assert!(e.contains(&want.to_string()), "missing {want}: {e:?}");
        }
        assert_eq!(e.len(), 7, "{e:?}");
        let (_, _, e) = admitted(
            json!({"spec": {"image": "a", "port": "http", "ports": [{"name": "a", "port": 3_000_000_000u64}]}}),
        );
        assert_eq!(e, ["spec.ports[0].port: Invalid value: 3000000000: spec.ports[0].port in body must be of type int32: 3000000000"]);
    }

    #[test]
    fn unchanged_parts_of_an_update_are_not_revalidated() {
        let old = json!({"spec": {"image": "NOT valid", "replicas": 1}});
        let new = json!({"spec": {"image": "NOT valid", "replicas": 2}});
        assert!(validate(&schema(), &new, Some(&old)).is_empty());
        let worse = json!({"spec": {"image": "NOT valid", "replicas": 20}});
        assert_eq!(validate(&schema(), &worse, Some(&old)).len(), 1);
    }

    #[test]
    fn crd_schemas_must_be_structural() {
        let crd = |s: Value| json!({"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": s}}]}});
        assert!(crd_errors(&crd(schema())).is_empty());
        let e = crd_errors(&crd(
            json!({"type": "object", "properties": {"spec": {"properties": {}}}}),
        ));
        assert_eq!(e, ["spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields"]);
        let e = crd_errors(&crd(
            json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}}),
        ));
        assert_eq!(e, ["spec.versions[0].schema.openAPIV3Schema.additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"]);
        let e = crd_errors(&crd(
            json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "(", "default": 3}}}),
        ));
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].starts_with("spec.versions[0].schema.openAPIV3Schema.properties[a].pattern: Invalid value: \"(\": must be a valid regular expression"), "{e:?}");
        // A pathological pattern compiles (linear-time engine) or is refused by size; either
        // way validating against it is bounded.
        let huge = format!("^{}$", "(a|aa)*".repeat(2000));
        let _ = crd_errors(&crd(
            json!({"type": "object", "properties": {"a": {"type": "string", "pattern": huge}}}),
        ));
        // Deep nesting is refused, not overflowed.
        let mut deep = json!({"type": "string"});
        for _ in 0..(MAX_DEPTH + 5) {
            deep = json!({"type": "object", "properties": {"x": deep}});
        }
        assert!(crd_errors(&crd(deep))
            .iter()
            .any(|e| e.contains("nested too deeply")));
        // controller-gen's int-or-string (a Quantity) is structural, and validates.
        let q = json!({"type": "object", "properties": {"cpu": {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": "^[0-9]+m?$", "x-kubernetes-int-or-string": true}}});
        assert!(
            crd_errors(&crd(q.clone())).is_empty(),
            "{:?}",
            crd_errors(&crd(q.clone()))
        );
        assert!(validate(&q, &json!({"cpu": "500m"}), None).is_empty());
        assert!(validate(&q, &json!({"cpu": 2}), None).is_empty());
        assert_eq!(validate(&q, &json!({"cpu": "lots"}), None).len(), 1);
        assert_eq!(validate(&q, &json!({"cpu": 1.5}), None).len(), 1);
        let e = crd_errors(&crd(json!({"type": "object", "properties": {"a": {
            "type": "string", "anyOf": [{"type": "integer"}]}}})));
        assert_eq!(e, ["spec.versions[0].schema.openAPIV3Schema.properties[a].anyOf[0].type: Forbidden: must be empty to be structural"]);
        let rules = cel_rules(&crd(
            json!({"type": "object", "x-kubernetes-validations": [{"rule": "self.a == self.b"}]}),
        ));
        assert_eq!(
            rules,
            ["spec.versions[0].schema.openAPIV3Schema: self.a == self.b"]
        );
    }

    #[test]
    fn a_huge_enum_and_many_items_stay_linear() {
        let values: Vec<Value> = (0..100_000).map(|i| json!(format!("v{i}"))).collect();
        let s = json!({"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string", "enum": values}});
        let items: Vec<Value> = (0..200).map(|i| json!(format!("v{i}"))).collect();
        assert!(validate(&s, &Value::Array(items), None).is_empty());
        let e = validate(&s, &json!(["nope"]), None);
        assert_eq!(e.len(), 1);
        assert!(e[0].ends_with(", ..."), "{}", e[0]);
        let bad: Vec<Value> = (0..5_000).map(|i| json!(i)).collect();
        let e = validate(&s, &Value::Array(bad), None);
        assert_eq!(e.len(), MAX_ERRORS + 1);
        assert_eq!(
            e[MAX_ERRORS],
            "<root>: Forbidden: 4900 more errors not listed"
        );
    }
}
