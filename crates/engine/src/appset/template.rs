//! Template substitution for ApplicationSets, in Argo CD's two dialects.
//!
//! - **fasttemplate** (the default): `{{param}}` (spaces inside the braces ignored) is
//!   replaced in every string and map key of the template; a tag naming no parameter is
//!   left as written, exactly as Argo CD leaves it.
//! - **Go templates** (`goTemplate: true`): every string value is a Go `text/template`,
//!   rendered with gtmpl (a maintained Rust implementation of Go's template language:
//!   pipelines, `if`/`range`/`with`, `index`, `printf`, comparisons) plus the Sprig
//!   functions ApplicationSets use in practice (`default`, `lower`, `upper`, `replace`,
//!   `toJson`, `trim*`, `quote`, `normalize`, …). `missingkey=error` makes a missing map
//!   key an error instead of `<no value>`, as in Go.

use super::AppSetError;
use gtmpl::{Context, Func, FuncError, Template, Value as GValue};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Largest template string rendered (bytes): a template is configuration, not data.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;
/// Largest rendered string (bytes), against `range`/`printf` blow-ups.
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;

/// How strings are rendered: the dialect and its options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Fast,
    Go { missing_key_error: bool },
}

impl Dialect {
    pub fn from_options(go_template: bool, options: &[String]) -> Result<Dialect, AppSetError> {
        if !go_template {
            return Ok(Dialect::Fast);
        }
        let mut missing_key_error = false;
        for o in options {
            match o.trim() {
                "missingkey=error" => missing_key_error = true,
                "missingkey=zero" | "missingkey=default" | "missingkey=invalid" => {
                    missing_key_error = false
                }
                other => {
                    return Err(AppSetError::Template(format!(
                        "unsupported goTemplateOptions entry {other:?} (supported: missingkey=error, missingkey=default, missingkey=zero, missingkey=invalid)"
                    )))
                }
            }
        }
        Ok(Dialect::Go { missing_key_error })
    }
}

/// Render one string with the parameters.
pub fn render_str(
    s: &str,
    params: &Map<String, Value>,
    dialect: Dialect,
) -> Result<String, AppSetError> {
    if !s.contains("{{") {
        return Ok(s.to_string());
    }
    if s.len() > MAX_TEMPLATE_BYTES {
        return Err(AppSetError::Template(format!(
            "template string of {} bytes is over the {MAX_TEMPLATE_BYTES}-byte limit",
            s.len()
        )));
    }
    match dialect {
        Dialect::Fast => Ok(fast(s, params)),
        Dialect::Go { missing_key_error } => go(s, params, missing_key_error),
    }
}

/// Render every string (and, for fasttemplate, every map key) of a JSON value.
pub fn render_value(
    v: &Value,
    params: &Map<String, Value>,
    dialect: Dialect,
) -> Result<Value, AppSetError> {
    Ok(match v {
        Value::String(s) => Value::String(render_str(s, params, dialect)?),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| render_value(x, params, dialect))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => {
            let mut out = Map::new();
            for (k, x) in o {
                let k = match dialect {
                    Dialect::Fast => fast(k, params),
                    Dialect::Go { .. } => k.clone(),
                };
                out.insert(k, render_value(x, params, dialect)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// A parameter as fasttemplate prints it (Go's `%v` for scalars).
pub(crate) fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "<nil>".into(),
        other => other.to_string(),
    }
}

fn fast(s: &str, params: &Map<String, Value>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let tag = &after[..end];
                match params.get(tag.trim()).filter(|_| !tag.trim().is_empty()) {
                    Some(v) => out.push_str(&display(v)),
                    None => {
                        out.push_str("{{");
                        out.push_str(tag);
                        out.push_str("}}");
                    }
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The Go template functions every Go template Mooring renders shares (ApplicationSets
/// here, notification templates in `mooring_notify::template`): one function set, so a
/// template means the same thing wherever it is written.
pub fn go_funcs() -> &'static [(&'static str, Func)] {
    FUNCS
}

/// A JSON value as gtmpl sees it; `strict` makes a missing field an error
/// (`missingkey=error`) instead of `<no value>`.
pub fn to_gvalue(v: &Value, strict: bool) -> GValue {
    match v {
        Value::Null => GValue::Nil,
        Value::Bool(b) => GValue::Bool(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => GValue::from(i),
            (None, Some(u), _) => GValue::from(u),
            (_, _, Some(f)) => GValue::from(f),
            _ => GValue::Nil,
        },
        Value::String(s) => GValue::String(s.clone()),
        Value::Array(a) => GValue::Array(a.iter().map(|x| to_gvalue(x, strict)).collect()),
        Value::Object(o) => {
            let m: HashMap<String, GValue> = o
                .iter()
                .map(|(k, x)| (k.clone(), to_gvalue(x, strict)))
                .collect();
            // gtmpl: a missing field of an Object is an error, of a Map `<no value>`.
            if strict {
                GValue::Object(m)
            } else {
                GValue::Map(m)
            }
        }
    }
}

/// A gtmpl value back as JSON (functions become `null`).
pub fn from_gvalue(v: &GValue) -> Value {
    match v {
        GValue::NoValue | GValue::Nil | GValue::Function(_) => Value::Null,
        GValue::Bool(b) => Value::Bool(*b),
        GValue::String(s) => Value::String(s.clone()),
        GValue::Number(n) => n
            .as_i64()
            .map(Value::from)
            .or_else(|| n.as_u64().map(Value::from))
            .or_else(|| n.as_f64().map(Value::from))
            .unwrap_or(Value::Null),
        GValue::Array(a) => Value::Array(a.iter().map(from_gvalue).collect()),
        GValue::Object(o) | GValue::Map(o) => {
            let mut keys: Vec<_> = o.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), from_gvalue(&o[k])))
                    .collect(),
            )
        }
    }
}

fn go(s: &str, params: &Map<String, Value>, strict: bool) -> Result<String, AppSetError> {
    let mut t = Template::default();
    t.add_funcs(FUNCS);
    t.parse(s)
        .map_err(|e| AppSetError::Template(format!("parsing template {s:?}: {e}")))?;
    let ctx = Context::from(to_gvalue(&Value::Object(params.clone()), strict));
    let out = t
        .render(&ctx)
        .map_err(|e| AppSetError::Template(format!("rendering template {s:?}: {e}")))?;
    if out.len() > MAX_OUTPUT_BYTES {
        return Err(AppSetError::Template(format!(
            "template {s:?} rendered {} bytes, over the {MAX_OUTPUT_BYTES}-byte limit",
            out.len()
        )));
    }
    Ok(out)
}

const FUNCS: &[(&str, Func)] = &[
    ("index", f_index as Func),
    ("default", f_default as Func),
    ("lower", f_lower as Func),
    ("upper", f_upper as Func),
    ("title", f_title as Func),
    ("replace", f_replace as Func),
    ("toJson", f_to_json as Func),
    ("toPrettyJson", f_to_pretty_json as Func),
    ("toString", f_to_string as Func),
    ("trim", f_trim as Func),
    ("trimPrefix", f_trim_prefix as Func),
    ("trimSuffix", f_trim_suffix as Func),
    ("trunc", f_trunc as Func),
    ("quote", f_quote as Func),
    ("squote", f_squote as Func),
    ("contains", f_contains as Func),
    ("hasPrefix", f_has_prefix as Func),
    ("hasSuffix", f_has_suffix as Func),
    ("join", f_join as Func),
    ("splitList", f_split_list as Func),
    ("empty", f_empty as Func),
    ("normalize", f_normalize as Func),
];

fn arg_str(name: &str, args: &[GValue], i: usize) -> Result<String, FuncError> {
    match args.get(i) {
        Some(GValue::String(s)) => Ok(s.clone()),
        Some(GValue::NoValue) | Some(GValue::Nil) => Ok(String::new()),
        Some(v) => Ok(v.to_string()),
        None => Err(FuncError::AtLeastXArgs(name.into(), i + 1)),
    }
}

fn exactly(name: &str, args: &[GValue], n: usize) -> Result<(), FuncError> {
    if args.len() == n {
        Ok(())
    } else {
        Err(FuncError::ExactlyXArgs(name.into(), n))
    }
}

fn is_empty(v: &GValue) -> bool {
    match v {
        GValue::NoValue | GValue::Nil => true,
        GValue::Bool(b) => !b,
        GValue::String(s) => s.is_empty(),
        GValue::Array(a) => a.is_empty(),
        GValue::Object(o) | GValue::Map(o) => o.is_empty(),
        GValue::Number(n) => n.as_f64() == Some(0.0) || n.as_i64() == Some(0),
        GValue::Function(_) => false,
    }
}

/// Go's `index`: a missing map key gives the zero value (`""` for the string maps
/// generators produce, such as cluster labels), even under `missingkey=error` — which
/// governs `.field` access only, as in Go. gtmpl's own `index` errors on strict maps.
fn f_index(args: &[GValue]) -> Result<GValue, FuncError> {
    let Some((first, keys)) = args.split_first().filter(|(_, k)| !k.is_empty()) else {
        return Err(FuncError::AtLeastXArgs("index".into(), 2));
    };
    let mut cur = first.clone();
    for k in keys {
        cur = match (&cur, k) {
            (GValue::Array(a), GValue::Number(n)) => {
                let i = n.as_u64().ok_or(FuncError::UnableToConvertFromValue)?;
                a.get(i as usize).cloned().ok_or_else(|| {
                    FuncError::Generic(format!("index out of range: {i} (length {})", a.len()))
                })?
            }
            (GValue::Object(o) | GValue::Map(o), key) => {
                let key = match key {
                    GValue::String(s) => s.clone(),
                    other => other.to_string(),
                };
                o.get(&key)
                    .cloned()
                    .unwrap_or(GValue::String(String::new()))
            }
            (GValue::NoValue | GValue::Nil, _) => GValue::String(String::new()),
            (other, key) => {
                return Err(FuncError::Generic(format!(
                    "can't index {other} with {key}"
                )))
            }
        };
    }
    Ok(cur)
}

/// Sprig `default DEFAULT VALUE`: VALUE unless empty.
fn f_default(args: &[GValue]) -> Result<GValue, FuncError> {
    match args {
        [d] => Ok(d.clone()),
        [d, v] => Ok(if is_empty(v) { d.clone() } else { v.clone() }),
        _ => Err(FuncError::AtLeastXArgs("default".into(), 1)),
    }
}

fn f_lower(args: &[GValue]) -> Result<GValue, FuncError> {
    exactly("lower", args, 1)?;
    Ok(GValue::String(arg_str("lower", args, 0)?.to_lowercase()))
}

fn f_upper(args: &[GValue]) -> Result<GValue, FuncError> {
    exactly("upper", args, 1)?;
    Ok(GValue::String(arg_str("upper", args, 0)?.to_uppercase()))
}

fn f_title(args: &[GValue]) -> Result<GValue, FuncError> {
    exactly("title", args, 1)?;
    let s = arg_str("title", args, 0)?;
    let mut out = String::with_capacity(s.len());
    let mut start = true;
    for c in s.chars() {
        if start {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = c.is_whitespace();
    }
    Ok(GValue::String(out))
}

/// Sprig `replace OLD NEW STRING`.
fn f_replace(args: &[GValue]) -> Result<GValue, FuncError> {
    exactly("replace", args, 3)?;
    let (old, new, s) = (
        arg_str("replace", args, 0)?,
        arg_str("replace", args, 1)?,
        arg_str("replace", args, 2)?,
    );
    Ok(GValue::String(s.replace(&old, &new)))
}

fn f_to_json(args: &[GValue]) -> Result<GValue, FuncError> {
    exactly("toJson", args, 1)?;
    Ok(GValue::String(from_gvalue(&args[0]).to_string()))
}

fn f_to_pretty_json(args: &[GValue]) -> Result<GValue, FuncError> {
    exactly("toPrettyJson", args, 1)?;
    serde_json::to_string_pretty(&from_gvalue(&args[0]))
        .map(GValue::String)
        .map_err(|e| FuncError::Generic(e.to_string()))
}

fn f_to_string(args: &[GValue]) -> Result<GValue, FuncError> {
    exactly("toString", args, 1)?;
    Ok(GValue::String(arg_str("toString", args, 0)?))
}

fn f_trim(args: &[GValue]) -> Result<GValue, FuncError> {
    exactly("trim", args, 1)?;
    Ok(GValue::String(arg_str("trim", args, 0)?.trim().to_string()))
}

/// Sprig `trimPrefix PREFIX STRING`.
fn f_trim_prefix(args: &[GValue]) -> Result<GValue, FuncError> {
    exactly("trimPrefix", args, 2)?;
    let (p, s) = (
        arg_str("trimPrefix", args, 0)?,
        arg_str("trimPrefix", args, 1)?,
    );
    Ok(GValue::String(s.strip_prefix(&p).unwrap_or(&s).to_string()))
}

fn f_trim_suffix(args: &[GValue]) -> Result<GValue, FuncError> {
    exactly("trimSuffix", args, 2)?;
    let (p, s) = (
        arg_str("trimSuffix", args, 0)?,
        arg_str("trimSuffix", args, 1)?,
    );
    Ok(GValue::String(s.strip_suffix(&p).unwrap_or(&s).to_string()))
}

/// Sprig `trunc N STRING` (negative N keeps the end).
fn f_trunc(args: &[GValue]) -> Result<GValue, FuncError> {
    exactly("trunc", args, 2)?;
    let n = match &args[0] {
        GValue::Number(n) => n.as_i64().unwrap_or(0),
        other => other
            .to_string()
            .parse()
            .map_err(|_| FuncError::UnableToConvertFromValue)?,
    };
    let s: Vec<char> = arg_str("trunc", args, 1)?.chars().collect();
    let len = s.len() as i64;
    let out: String = if n >= 0 {
        s.iter().take(n.min(len) as usize).collect()
    } else {
        s.iter().skip((len + n).max(0) as usize).collect()
    };
    Ok(GValue::String(out))
}

fn f_quote(args: &[GValue]) -> Result<GValue, FuncError> {
    let parts: Vec<String> = (0..args.len())
        .map(|i| arg_str("quote", args, i).map(|s| Value::String(s).to_string()))
        .collect::<Result<_, _>>()?;
    Ok(GValue::String(parts.join(" ")))
}

fn f_squote(args: &[GValue]) -> Result<GValue, FuncError> {
    let parts: Vec<String> = (0..args.len())
        .map(|i| arg_str("squote", args, i).map(|s| format!("'{s}'")))
        .collect::<Result<_, _>>()?;
    Ok(GValue::String(parts.join(" ")))
}

/// Sprig `contains SUBSTRING STRING`.
fn f_contains(args: &[GValue]) -> Result<GValue, FuncError> {
    exactly("contains", args, 2)?;
    Ok(GValue::Bool(
        arg_str("contains", args, 1)?.contains(&arg_str("contains", args, 0)?),
    ))
}

fn f_has_prefix(args: &[GValue]) -> Result<GValue, FuncError> {
    exactly("hasPrefix", args, 2)?;
    Ok(GValue::Bool(
        arg_str("hasPrefix", args, 1)?.starts_with(&arg_str("hasPrefix", args, 0)?),
    ))
}

fn f_has_suffix(args: &[GValue]) -> Result<GValue, FuncError> {
    exactly("hasSuffix", args, 2)?;
    Ok(GValue::Bool(
        arg_str("hasSuffix", args, 1)?.ends_with(&arg_str("hasSuffix", args, 0)?),
    ))
}

/// Sprig `join SEPARATOR LIST`.
fn f_join(args: &[GValue]) -> Result<GValue, FuncError> {
    exactly("join", args, 2)?;
    let sep = arg_str("join", args, 0)?;
    match &args[1] {
        GValue::Array(a) => Ok(GValue::String(
            a.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(&sep),
        )),
        other => Ok(GValue::String(other.to_string())),
    }
}

/// Sprig `splitList SEPARATOR STRING`.
fn f_split_list(args: &[GValue]) -> Result<GValue, FuncError> {
    exactly("splitList", args, 2)?;
    let (sep, s) = (
        arg_str("splitList", args, 0)?,
        arg_str("splitList", args, 1)?,
    );
    if sep.is_empty() {
        return Err(FuncError::Generic("splitList: empty separator".into()));
    }
    Ok(GValue::Array(
        s.split(sep.as_str())
            .map(|p| GValue::String(p.into()))
            .collect(),
    ))
}

fn f_empty(args: &[GValue]) -> Result<GValue, FuncError> {
    exactly("empty", args, 1)?;
    Ok(GValue::Bool(is_empty(&args[0])))
}

/// Argo CD's `normalize`: a valid Kubernetes name from any string.
fn f_normalize(args: &[GValue]) -> Result<GValue, FuncError> {
    exactly("normalize", args, 1)?;
    Ok(GValue::String(super::normalize(&arg_str(
        "normalize",
        args,
        0,
    )?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params() -> Map<String, Value> {
        json!({
            "name": "prod-eu", "server": "https://eu:6443", "replicas": 3,
            "metadata": {"labels": {"region": "eu-west", "tier": "gpu"}},
            "values": {"replicas": "4"}, "empty": ""
        })
        .as_object()
        .cloned()
        .expect("object")
    }

    #[test]
    fn fasttemplate_table() {
        let flat: Map<String, Value> =
            json!({"name": "a", "metadata.labels.env": "prod", "n": "3"})
                .as_object()
                .cloned()
                .expect("object");
        for (input, want) in [
            ("{{name}}-x", "a-x"),
            ("{{ name }}", "a"),
            ("{{metadata.labels.env}}", "prod"),
            ("{{missing}}/{{name}}", "{{missing}}/a"),
            ("{{}}", "{{}}"),
            ("{{name", "{{name"),
            ("plain", "plain"),
            ("{{n}}{{n}}", "33"),
        ] {
            assert_eq!(
                render_str(input, &flat, Dialect::Fast).expect("render"),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn go_template_table() {
        let go = Dialect::Go {
            missing_key_error: false,
        };
        let p = params();
        for (input, want) in [
            ("{{.name}}", "prod-eu"),
            ("{{index .metadata.labels \"region\"}}", "eu-west"),
            ("{{.metadata.labels.tier}}", "gpu"),
            ("{{.values.replicas}}", "4"),
            ("{{.replicas}}", "3"),
            ("{{.empty | default \"fallback\"}}", "fallback"),
            ("{{default \"x\" .name}}", "prod-eu"),
            ("{{.name | upper}}", "PROD-EU"),
            ("{{\"ABC\" | lower}}", "abc"),
            ("{{.name | replace \"-\" \"_\"}}", "prod_eu"),
            (
                "{{toJson .metadata.labels}}",
                r#"{"region":"eu-west","tier":"gpu"}"#,
            ),
            ("{{if eq .name \"prod-eu\"}}yes{{else}}no{{end}}", "yes"),
            ("{{.nope}}", "<no value>"),
            ("{{normalize \"My_Cluster\"}}", "my-cluster"),
            ("{{trunc 4 .name}}", "prod"),
            ("{{printf \"%s:%d\" .name .replicas}}", "prod-eu:3"),
        ] {
            assert_eq!(render_str(input, &p, go).expect(input), want, "{input}");
        }
    }

    #[test]
    fn missingkey_error_and_bad_templates() {
        let strict = Dialect::Go {
            missing_key_error: true,
        };
        let p = params();
        let e = render_str("{{.nope}}", &p, strict).expect_err("missing key");
        assert!(e.to_string().contains("nope"), "{e}");
        // `index` gives the zero value, as in Go, so `default` applies.
        assert_eq!(
            render_str(
                r#"{{index .metadata.labels "zone" | default "none"}}"#,
                &p,
                strict
            )
            .expect("index"),
            "none"
        );
        assert!(render_str("{{index .values 3}}", &p, strict).is_ok());
        assert!(render_str(r#"{{index "x" 1}}"#, &p, strict).is_err());
        assert_eq!(render_str("{{.name}}", &p, strict).expect("ok"), "prod-eu");
        for bad in ["{{.name", "{{if .name}}", "{{nofunc .name}}"] {
            assert!(render_str(bad, &p, strict).is_err(), "{bad}");
        }
        let huge = format!("{{{{.name}}}}{}", "x".repeat(MAX_TEMPLATE_BYTES));
        assert!(render_str(&huge, &p, strict).is_err());
        assert!(Dialect::from_options(true, &["missingkey=explode".into()]).is_err());
        assert_eq!(
            Dialect::from_options(true, &["missingkey=error".into()]).expect("ok"),
            strict
        );
    }
}
