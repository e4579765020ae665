//! Fields Mooring reads but does not act on, found so that none is silently ignored.
//!
//! Mooring reads Argo CD `Application`s and `ApplicationSet`s and Argo Rollouts `Rollout`s
//! unchanged, but it implements a subset of what those formats can say. A field it does
//! not act on must never pass silently: an Application with `directory.jsonnet` would
//! otherwise deploy its plain YAML files without a word, a Rollout with an `experiment`
//! step would skip the step and move traffic to a canary nobody compared, an
//! ApplicationSet with a `RollingSync` strategy would update every cluster at once. So
//! each object is walked against **one table per format** ([`tables`]) that lists, field
//! by field, what Mooring acts on; everything else is an [`Unsupported`] entry naming the
//! field path. The callers decide what an entry means:
//!
//! - Applications and ApplicationSets: a warning condition (`UnsupportedFieldWarning`,
//!   [`CONDITION`]) listing every entry, written by the controllers; `mooring check`
//!   reports the same entries as findings. The object is still reconciled with what
//!   Mooring understands.
//! - Rollouts: `InvalidSpec` (the Rollout is Degraded and nothing is scaled or routed),
//!   because acting on part of a progressive-delivery spec moves real traffic.
//!
//! # The table rules
//!
//! - A field in the table is acted on ([`Kind::Yes`]), or its sub-fields are looked up in
//!   a nested table (objects and lists of objects).
//! - A field the upstream format defines that Mooring does not implement is reported when
//!   it is set to something other than its zero value ([`Kind::No`]: `skipTests: false`,
//!   `jsonnet: {}` or `patches: []` mean the same as leaving the field out, as they do for
//!   Argo's Go types), or whenever it is present ([`Kind::Never`]: an `experiment` step, a
//!   traffic router, a config management plugin — presence alone changes the meaning).
//! - Some fields are acted on for some values only ([`Kind::Only`]: Helm `version: "3"`,
//!   strategy `type: AllAtOnce`), and sync options are checked option by option
//!   ([`sync_options`]) against [`tables::SYNC_OPTIONS`].
//! - Anything else is not a field of the upstream type at all (a typo, or a field of a
//!   newer upstream version): reported as such.
//! - `null` is the same as absent. A value of the wrong type is not reported here: the
//!   typed parser that reads the object reports it. In ApplicationSets, values holding a
//!   template (`{{…}}`) are not judged before they are rendered.
//!
//! Everything here is pure: a function of the object's JSON, so the controller, `mooring
//! check` and tests share it.

pub mod tables;
#[cfg(test)]
mod tests;

use serde_json::Value;
use std::fmt;
use tables::{Field, Kind};

/// Condition type of the warning on Applications and ApplicationSets. Argo CD has no type
/// for this; a name ending in `Warning` is what Argo CD's tools show as a warning.
pub const CONDITION: &str = "UnsupportedFieldWarning";

/// Why a field is reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// A field of the upstream format that Mooring does not act on, and why.
    NotImplemented(&'static str),
    /// A value Mooring does not act on (the field itself is supported).
    Value { value: String, note: String },
    /// Not a field of the upstream type (`of`: "an Argo CD Application").
    Unknown { of: &'static str },
}

/// One field Mooring does not act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// The field path: `spec.source.directory.jsonnet`,
    /// `spec.strategy.canary.steps[2].experiment`, `spec.syncPolicy.syncOptions[1]`.
    pub path: String,
    pub reason: Reason,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            Reason::NotImplemented(note) => {
                write!(f, "{} is not supported by Mooring: {note}", self.path)
            }
            Reason::Value { value, note } => write!(
                f,
                "{} {value:?} is not supported by Mooring: {note}",
                self.path
            ),
            Reason::Unknown { of } => write!(f, "{} is not a field of {of}", self.path),
        }
    }
}

impl Unsupported {
    /// For an entry inside the list at `list` (`spec.strategy.canary.steps`): the item's
    /// index and the field named in it (`(2, "experiment")` for `…steps[2].experiment`).
    pub fn list_item(&self, list: &str) -> Option<(usize, &str)> {
        let rest = self.path.strip_prefix(list)?.strip_prefix('[')?;
        let (index, rest) = rest.split_once(']')?;
        let field = rest.strip_prefix('.')?;
        if field.is_empty() || field.contains(['.', '[']) {
            return None;
        }
        Some((index.parse().ok()?, field))
    }
}

/// Every field of an Argo CD `Application` (the whole object) Mooring does not act on.
pub fn application(app: &Value) -> Vec<Unsupported> {
    walk_root(app, tables::APPLICATION, "an Argo CD Application")
}

/// Every field of an Argo CD `ApplicationSet` (the whole object, its generators and its
/// Application template included) Mooring does not act on.
pub fn applicationset(set: &Value) -> Vec<Unsupported> {
    walk_root(set, tables::APPLICATION_SET, "an Argo CD ApplicationSet")
}

/// Every field of an Argo Rollouts `Rollout` (the whole object) Mooring does not act on.
pub fn rollout(rollout: &Value) -> Vec<Unsupported> {
    walk_root(rollout, tables::ROLLOUT, "an Argo Rollouts Rollout")
}

/// The per-resource annotations of one rendered manifest Mooring does not act on: sync
/// options (`argocd.argoproj.io/sync-options`) and hook types (`argocd.argoproj.io/hook`,
/// `helm.sh/hook`). A hook of an unknown type is never applied (as Argo CD, Mooring keeps
/// hook-annotated objects out of the sync), so it must be said. Paths name the resource:
/// `Job/ns/name: metadata.annotations["argocd.argoproj.io/hook"]`.
pub fn manifest(obj: &Value) -> Vec<Unsupported> {
    let annotation = |name: &str| {
        obj.pointer("/metadata/annotations")
            .and_then(|a| a.get(name))
            .and_then(Value::as_str)
    };
    let resource = mooring_core::ResourceKey::of(obj)
        .map(|k| k.to_string())
        .unwrap_or_else(|| "a manifest".into());
    let at = |name: &str| format!("{resource}: metadata.annotations[{name:?}]");
    let mut out = Vec::new();
    if let Some(options) = annotation(SYNC_OPTIONS_ANNOTATION) {
        let options: Vec<&str> = options
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .collect();
        out.extend(sync_options(&options, &at(SYNC_OPTIONS_ANNOTATION)));
    }
    for (name, known) in tables::HOOK_TYPES {
        let Some(types) = annotation(name) else {
            continue;
        };
        for t in types.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if !known.contains(&t) {
                out.push(Unsupported {
                    path: at(name),
                    reason: Reason::Value {
                        value: t.to_string(),
                        note: format!(
                            "the object is kept out of the sync and never applied; Mooring runs {}",
                            known.join(", ")
                        ),
                    },
                });
            }
        }
    }
    out
}

/// Argo CD's per-resource sync options annotation.
pub use crate::sync::ANNOTATION_SYNC_OPTIONS as SYNC_OPTIONS_ANNOTATION;

/// Sync options (`Key=Value`, as in `syncPolicy.syncOptions` or the comma-separated
/// `argocd.argoproj.io/sync-options` annotation) Mooring does not act on, each reported at
/// `path[i]`.
pub fn sync_options(options: &[&str], path: &str) -> Vec<Unsupported> {
    let mut out = Vec::new();
    for (i, o) in options.iter().enumerate() {
        if let Some(note) = sync_option(o) {
            out.push(Unsupported {
                path: format!("{path}[{i}]"),
                reason: Reason::Value {
                    value: o.trim().to_string(),
                    note,
                },
            });
        }
    }
    out
}

/// One message listing every entry (for a condition or an error).
pub fn summary(entries: &[Unsupported]) -> String {
    entries
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why Mooring does not act on one sync option, `None` when it does.
fn sync_option(option: &str) -> Option<String> {
    let option = option.trim();
    let Some((key, value)) = option.split_once('=') else {
        return Some("a sync option is written Key=Value".into());
    };
    let (key, value) = (key.trim(), value.trim());
    if let Some((_, values)) = tables::SYNC_OPTIONS.iter().find(|(k, _)| *k == key) {
        if values.contains(&value) {
            return None;
        }
        return Some(format!(
            "Mooring acts on {key}={}",
            values.join(format!(" or {key}=").as_str())
        ));
    }
    if let Some((_, note)) = tables::SYNC_OPTIONS_NOT_ACTED
        .iter()
        .find(|(k, _)| *k == key)
    {
        return Some((*note).to_string());
    }
    Some(format!(
        "{key} is not an Argo CD sync option (Mooring knows {})",
        tables::SYNC_OPTIONS
            .iter()
            .map(|(k, _)| *k)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn walk_root(v: &Value, fields: &[Field], of: &'static str) -> Vec<Unsupported> {
    let mut w = Walker {
        of,
        out: Vec::new(),
        depth: 0,
    };
    w.object(v, fields, None, "");
    w.out
}

/// How deep matrix/merge generators are followed (generation itself refuses more than 3).
const MAX_GENERATOR_DEPTH: usize = 8;

struct Walker {
    of: &'static str,
    out: Vec<Unsupported>,
    /// Nested generator lists being walked.
    depth: usize,
}

impl Walker {
    fn push(&mut self, path: String, reason: Reason) {
        self.out.push(Unsupported { path, reason });
    }

    /// The fields of an object against `fields`; keys not listed are reported with
    /// `other` (a note for open sets of names: plugins, steps, generators) or as unknown.
    fn object(&mut self, v: &Value, fields: &[Field], other: Option<&'static str>, path: &str) {
        let Value::Object(o) = v else { return };
        for (key, x) in o {
            if x.is_null() {
                continue;
            }
            let p = join(path, key);
            match fields.iter().find(|f| f.name == key) {
                Some(f) => self.field(x, &f.kind, p),
                None => match other {
                    Some(note) => self.push(p, Reason::NotImplemented(note)),
                    None => self.push(p, Reason::Unknown { of: self.of }),
                },
            }
        }
    }

    fn list(&mut self, v: &Value, fields: &[Field], other: Option<&'static str>, path: &str) {
        let Value::Array(a) = v else { return };
        for (i, item) in a.iter().enumerate() {
            self.object(item, fields, other, &format!("{path}[{i}]"));
        }
    }

    fn field(&mut self, x: &Value, kind: &Kind, path: String) {
        match kind {
            Kind::Yes => {}
            Kind::Object(fields) => self.object(x, fields, None, &path),
            Kind::Named(fields, note) => self.object(x, fields, Some(note), &path),
            Kind::List(fields) => self.list(x, fields, None, &path),
            Kind::NamedList(fields, note) => self.list(x, fields, Some(note), &path),
            Kind::No(note) => {
                if !is_zero(x) {
                    self.push(path, Reason::NotImplemented(note));
                }
            }
            Kind::Never(note) => self.push(path, Reason::NotImplemented(note)),
            Kind::Only(values, note) => {
                if let Some(s) = scalar(x).filter(|s| !s.contains("{{")) {
                    if !values.contains(&s.as_str()) {
                        self.push(
                            path,
                            Reason::Value {
                                value: s,
                                note: (*note).to_string(),
                            },
                        );
                    }
                }
            }
            Kind::SyncOptions => {
                let Value::Array(a) = x else { return };
                for (i, o) in a.iter().enumerate() {
                    let Some(o) = o.as_str().filter(|s| !s.contains("{{")) else {
                        continue;
                    };
                    if let Some(note) = sync_option(o) {
                        self.push(
                            format!("{path}[{i}]"),
                            Reason::Value {
                                value: o.trim().to_string(),
                                note,
                            },
                        );
                    }
                }
            }
            Kind::Generators => {
                if self.depth < MAX_GENERATOR_DEPTH {
                    self.depth += 1;
                    self.list(x, tables::GENERATOR, Some(tables::UNKNOWN_GENERATOR), &path);
                    self.depth -= 1;
                }
            }
        }
    }
}

/// `a.b`, or `a["x/y"]` for a key that is not a plain name (plugin names, annotations).
fn join(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{key:?}]"),
    }
}

/// A Go zero value (what Argo's `omitempty` fields read as "not set").
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_zero),
    }
}

/// A scalar as text (`true`, `3`, `AllAtOnce`); `None` for lists and objects.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
