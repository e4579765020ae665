//! Multi-source Applications (`spec.sources`): which sources are rendered, what `ref`
//! sources give the others, `$ref/path` Helm value files, and the merge of the rendered
//! sources into one desired state.
//!
//! Everything here is pure (no I/O): the controller validates the whole list with [`plan`]
//! before it fetches anything, so a hostile or malformed list is refused with nothing
//! fetched, rendered or applied; then it renders each planned source from its own
//! repository at its own commit ([`crate::render_with_refs`], handing every Helm source
//! the exported trees of the `ref` sources it names) and joins the parts with [`merge`].
//!
//! # As Argo CD
//!
//! - Each source is rendered on its own (its own repository, `targetRevision`, `path` and
//!   tool options) and the objects are joined in source order.
//! - A source with `ref: NAME` lends its repository, at its own revision, to the Helm
//!   value files of every other source: `valueFiles: [$NAME/envs/prod.yaml]` reads
//!   `envs/prod.yaml` from the root of that repository (never relative to the `ref`
//!   source's `path`). `$NAME` is recognised only at the start of an entry. A `ref`
//!   source without `path` is not rendered itself; with a `path` it is rendered as well.
//! - `ref` names use only letters, digits, `_` and `-`, and are unique; a `ref` source
//!   cannot have a `chart`; every source needs `repoURL` and one of `path`, `chart` or
//!   `ref`.
//!
//! # Stricter than Argo CD (on purpose)
//!
//! - **The same resource from two sources is an error** naming both sources ([`merge`]),
//!   where Argo CD lets the last source win and raises a `RepeatedResourceWarning`: the
//!   loser's definition would otherwise silently never be applied. The identity is the
//!   one the cluster sees (group, kind, namespace with the destination namespace filled
//!   in, name), so the caller merges after defaulting namespaces. Two equal definitions
//!   inside one source are refused the same way.
//! - A `$NAME/…` value file that names no `ref` source is an error listing the known
//!   refs (Argo CD reads it as a literal path in the chart directory, which then fails
//!   later with a less helpful message or, with `ignoreMissingValueFiles`, is skipped).
//! - At most [`MAX_SOURCES`] sources (Argo CD's documentation calls more than two or
//!   three an abuse of the feature; each source costs a fetch and a render).
//! - An application whose sources are all path-less `ref` sources renders nothing and is
//!   refused, rather than looking like an empty app that automated sync would prune.
//! - Paths are checked before anything is fetched: an absolute path or `..` in a
//!   source's `path` (including a `ref` source's) or after `$NAME/` is refused.

use crate::paths::check_relative;
use crate::RenderError;
use mooring_core::app::ApplicationSource;
use mooring_core::ResourceKey;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// Most sources one Application may list.
pub const MAX_SOURCES: usize = 20;

/// The exported tree of each `ref` source a render may read, by ref name (without `$`).
pub type RefRoots = BTreeMap<String, PathBuf>;

/// What to do with one source of an application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedSource {
    /// Position in the source list, from 0.
    pub index: usize,
    /// How messages name the source: `source 2 (REPO, path P)`.
    pub label: String,
    /// Whether the source is rendered (everything but a `ref` source without `path`).
    pub rendered: bool,
    /// The `ref` sources its Helm value files read: ref name → index of that source.
    pub refs: BTreeMap<String, usize>,
}

/// The validated source list of an application, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePlan {
    pub sources: Vec<PlannedSource>,
}

impl SourcePlan {
    /// The sources to render, in order.
    pub fn rendered(&self) -> impl Iterator<Item = &PlannedSource> {
        self.sources.iter().filter(|s| s.rendered)
    }
}

/// `source N (REPO, path P)` / `source N (REPO, ref R)`, numbered from 1 as Argo CD's
/// `--source-positions`.
pub fn source_label(index: usize, source: &ApplicationSource) -> String {
    let mut what = Vec::new();
    if let Some(p) = source.path.as_deref().filter(|p| !p.is_empty()) {
        what.push(format!("path {p}"));
    }
    if let Some(c) = source.chart.as_deref().filter(|c| !c.is_empty()) {
        what.push(format!("chart {c}"));
    }
    if let Some(r) = source.ref_.as_deref().filter(|r| !r.is_empty()) {
        what.push(format!("ref {r}"));
    }
    let mut inner = source.repo_url.clone();
    for w in what {
        inner.push_str(", ");
        inner.push_str(&w);
    }
    format!("source {} ({inner})", index + 1)
}

fn invalid(label: &str, reason: impl Into<String>) -> RenderError {
    RenderError::InvalidSource {
        source_label: label.to_string(),
        reason: reason.into(),
    }
}

fn is_valid_ref_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Validate an application's sources (Argo CD's `GetSources()`: `spec.sources`, or the
/// single `spec.source`) and decide what is rendered and which `ref` trees each render
/// reads. No I/O: nothing is fetched before this passes.
pub fn plan(sources: &[ApplicationSource]) -> Result<SourcePlan, RenderError> {
    if sources.is_empty() {
        return Err(RenderError::NoSource);
    }
    if sources.len() > MAX_SOURCES {
        return Err(RenderError::TooManySources {
            count: sources.len(),
            limit: MAX_SOURCES,
        });
    }
    let labels: Vec<String> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| source_label(i, s))
        .collect();
    // Ref names first: a value file may name a ref defined by a later source.
    let mut refs: BTreeMap<String, usize> = BTreeMap::new();
    for (i, s) in sources.iter().enumerate() {
        let Some(name) = s.ref_.as_deref() else {
            continue;
        };
        if !is_valid_ref_name(name) {
            return Err(invalid(
                &labels[i],
                format!("ref {name:?} may contain only letters, digits, '_' and '-'"),
            ));
        }
        if s.chart.as_deref().is_some_and(|c| !c.is_empty()) {
            return Err(invalid(
                &labels[i],
                "a source with `ref` cannot have `chart` (a ref lends a Git repository's files to value files)",
            ));
        }
        if let Some(first) = refs.insert(name.to_string(), i) {
            return Err(invalid(
                &labels[i],
                format!("ref {name:?} is already defined by {}", labels[first]),
            ));
        }
    }
    let mut planned = Vec::with_capacity(sources.len());
    for (i, s) in sources.iter().enumerate() {
        let label = &labels[i];
        if s.repo_url.trim().is_empty() {
            return Err(invalid(label, "repoURL is required"));
        }
        let path = s.path.as_deref().filter(|p| !p.is_empty());
        let chart = s.chart.as_deref().filter(|c| !c.is_empty());
        if path.is_none() && chart.is_none() && s.ref_.is_none() {
            return Err(invalid(label, "one of path, chart or ref is required"));
        }
        if let Some(p) = s.path.as_deref() {
            check_relative(p).map_err(|e| invalid(label, e.to_string()))?;
        }
        let mut used = BTreeMap::new();
        for entry in helm_value_files(s) {
            if let ValueFile::Ref { name, .. } = parse_value_file(entry)? {
                let Some(&at) = refs.get(name) else {
                    return Err(unknown_ref(entry, label, &refs));
                };
                used.insert(name.to_string(), at);
            }
        }
        planned.push(PlannedSource {
            index: i,
            label: label.clone(),
            rendered: path.is_some() || chart.is_some() || s.ref_.is_none(),
            refs: used,
        });
    }
    if !planned.iter().any(|p| p.rendered) {
        return Err(RenderError::NoRenderedSource);
    }
    Ok(SourcePlan { sources: planned })
}

fn unknown_ref(entry: &str, label: &str, refs: &BTreeMap<String, usize>) -> RenderError {
    RenderError::UnknownRef {
        entry: entry.to_string(),
        source_label: label.to_string(),
        known: if refs.is_empty() {
            "none".into()
        } else {
            refs.keys()
                .map(|k| format!("${k}"))
                .collect::<Vec<_>>()
                .join(", ")
        },
    }
}

/// The `source.helm.valueFiles` entries of a source (strings only).
pub(crate) fn helm_value_files(source: &ApplicationSource) -> impl Iterator<Item = &str> {
    source
        .helm
        .as_ref()
        .and_then(|h| h.get("valueFiles"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

/// One `source.helm.valueFiles` entry, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueFile<'a> {
    /// A path relative to the chart directory (checked against the tree when rendered).
    Local(&'a str),
    /// `$NAME/path`: `path` (relative, no `..`) in the tree of the `ref: NAME` source.
    Ref { name: &'a str, path: PathBuf },
}

/// Parse a value file entry: `$NAME/path` is a reference to the `ref: NAME` source's
/// repository root; anything else is a local path. Pure and lexical: `..`, an absolute
/// path or nothing after `$NAME/` is refused here, and the render then resolves the
/// path (symlinks included) inside that source's tree.
pub fn parse_value_file(entry: &str) -> Result<ValueFile<'_>, RenderError> {
    let Some(rest) = entry.strip_prefix('$') else {
        return Ok(ValueFile::Local(entry));
    };
    let bad = |reason: &str| RenderError::InvalidOption {
        option: "source.helm.valueFiles entry".into(),
        value: entry.into(),
        reason: reason.into(),
    };
    let (name, path) = rest.split_once('/').unwrap_or((rest, ""));
    if !is_valid_ref_name(name) {
        return Err(bad(
            "a `$NAME/path` value file needs a ref name of letters, digits, '_' and '-'",
        ));
    }
    let rel = check_relative(path).map_err(|_| {
        bad("the path after `$NAME/` must be relative to that repository's root, without `..`")
    })?;
    if rel.as_os_str().is_empty() {
        return Err(bad("name a file after `$NAME/`"));
    }
    Ok(ValueFile::Ref { name, path: rel })
}

/// The ref value file `entry` resolved against `refs` (the exported trees the caller
/// was given): the tree's root and the relative path in it. `Ok(None)` for a local entry.
pub(crate) fn ref_value_file(
    entry: &str,
    refs: &RefRoots,
    source_label: &str,
) -> Result<Option<(PathBuf, PathBuf)>, RenderError> {
    match parse_value_file(entry)? {
        ValueFile::Local(_) => Ok(None),
        ValueFile::Ref { name, path } => match refs.get(name) {
            Some(root) => Ok(Some((root.clone(), path))),
            None => Err(RenderError::UnknownRef {
                entry: entry.to_string(),
                source_label: source_label.to_string(),
                known: if refs.is_empty() {
                    "none".into()
                } else {
                    refs.keys()
                        .map(|k| format!("${k}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            }),
        },
    }
}

/// Join the rendered sources, in source order: `(label, objects)` per rendered source.
/// The same resource twice — from two sources, or twice from one — is an error naming
/// where each came from (see the module docs for why this is stricter than Argo CD).
/// Objects without `metadata.name` (hooks with `generateName`) are never duplicates.
pub fn merge(parts: Vec<(String, Vec<Value>)>) -> Result<Vec<Value>, RenderError> {
    let mut seen: HashMap<ResourceKey, usize> = HashMap::new();
    let total = parts.iter().map(|(_, o)| o.len()).sum();
    let mut out = Vec::with_capacity(total);
    for (i, (label, objects)) in parts.iter().enumerate() {
        for o in objects {
            let named = o
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            if named {
                if let Some(key) = ResourceKey::of(o) {
                    if let Some(&first) = seen.get(&key) {
                        let (key, first, second) =
                            (key.to_string(), parts[first].0.clone(), label.clone());
                        return Err(if first == second {
                            RenderError::DuplicateResource { key, first, second }
                        } else {
                            RenderError::DuplicateAcrossSources { key, first, second }
                        });
                    }
                    seen.insert(key, i);
                }
            }
        }
    }
    for (_, objects) in parts {
        out.extend(objects);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn src(repo: &str, path: Option<&str>, r: Option<&str>) -> ApplicationSource {
        ApplicationSource {
            repo_url: repo.into(),
            path: path.map(str::to_string),
            ref_: r.map(str::to_string),
            ..Default::default()
        }
    }

    fn helm_src(repo: &str, path: &str, files: &[&str]) -> ApplicationSource {
        ApplicationSource {
            helm: Some(json!({ "valueFiles": files })),
            ..src(repo, Some(path), None)
        }
    }

    #[test]
    fn plans_rendered_sources_and_refs() {
        let sources = vec![
            helm_src(
                "https://a/charts.git",
                "charts/model",
                &["values.yaml", "$values/envs/prod.yaml"],
            ),
            src("https://b/values.git", None, Some("values")),
            src("https://c/extra.git", Some("extra"), Some("extra")),
        ];
        let p = plan(&sources).expect("plan");
        let rendered: Vec<usize> = p.rendered().map(|s| s.index).collect();
        assert_eq!(
            rendered,
            [0, 2],
            "a ref source without path is not rendered"
        );
        assert_eq!(p.sources[0].refs, BTreeMap::from([("values".into(), 1)]));
        assert_eq!(
            p.sources[0].label,
            "source 1 (https://a/charts.git, path charts/model)"
        );
        assert_eq!(
            p.sources[1].label,
            "source 2 (https://b/values.git, ref values)"
        );
        // A single `source` is planned the same way.
        let one = plan(&[src("https://a/x.git", Some("apps/x"), None)]).expect("plan");
        assert_eq!(one.rendered().count(), 1);
    }

    #[test]
    fn refuses_malformed_and_hostile_source_lists() {
        let ok = src("https://a/x.git", Some("x"), None);
        let msg = |sources: Vec<ApplicationSource>| {
            plan(&sources).expect_err("must be refused").to_string()
        };
        assert!(matches!(plan(&[]), Err(RenderError::NoSource)));
        let many = vec![ok.clone(); MAX_SOURCES + 1];
        let m = msg(many);
        assert!(m.contains("21 sources") && m.contains("20"), "{m}");

        let m = msg(vec![
            ok.clone(),
            src("https://b/v.git", Some("../../etc"), Some("v")),
        ]);
        assert!(m.contains("source 2") && m.contains("`..`"), "{m}");
        let m = msg(vec![ok.clone(), src("https://b/v.git", Some("/etc"), None)]);
        assert!(m.contains("source 2") && m.contains("absolute"), "{m}");

        let m = msg(vec![
            helm_src("https://a/c.git", "c", &["$missing/prod.yaml"]),
            src("https://b/v.git", None, Some("values")),
        ]);
        assert!(
            m.contains("$missing/prod.yaml") && m.contains("source 1") && m.contains("$values"),
            "{m}"
        );
        let m = msg(vec![helm_src(
            "https://a/c.git",
            "c",
            &["$values/prod.yaml"],
        )]);
        assert!(m.contains("none"), "{m}");
        let m = msg(vec![
            helm_src("https://a/c.git", "c", &["$values/../../../etc/passwd"]),
            src("https://b/v.git", None, Some("values")),
        ]);
        assert!(m.contains("without `..`"), "{m}");
        let m = msg(vec![
            helm_src("https://a/c.git", "c", &["$values"]),
            src("https://b/v.git", None, Some("values")),
        ]);
        assert!(m.contains("name a file"), "{m}");

        let m = msg(vec![
            ok.clone(),
            src("https://b/v.git", None, Some("bad ref!")),
        ]);
        assert!(m.contains("letters, digits"), "{m}");
        let m = msg(vec![
            src("https://b/v.git", None, Some("v")),
            src("https://c/v.git", None, Some("v")),
            ok.clone(),
        ]);
        assert!(
            m.contains("source 2") && m.contains("already defined by source 1"),
            "{m}"
        );
        let chart_ref = ApplicationSource {
            chart: Some("model".into()),
            ..src("https://charts.example", None, Some("v"))
        };
        let m = msg(vec![ok.clone(), chart_ref]);
        assert!(m.contains("cannot have `chart`"), "{m}");
        let m = msg(vec![ok.clone(), src("", Some("x"), None)]);
        assert!(m.contains("repoURL is required"), "{m}");
        let m = msg(vec![ok.clone(), src("https://b/v.git", None, None)]);
        assert!(m.contains("one of path, chart or ref"), "{m}");
        assert!(matches!(
            plan(&[src("https://b/v.git", None, Some("v"))]),
            Err(RenderError::NoRenderedSource)
        ));
    }

    #[test]
    fn parses_ref_value_files() {
        assert_eq!(
            parse_value_file("values-prod.yaml").expect("local"),
            ValueFile::Local("values-prod.yaml")
        );
        assert_eq!(
            parse_value_file("$values/envs/prod.yaml").expect("ref"),
            ValueFile::Ref {
                name: "values",
                path: PathBuf::from("envs/prod.yaml")
            }
        );
        assert_eq!(
            parse_value_file("$values/./envs/prod.yaml").expect("ref"),
            ValueFile::Ref {
                name: "values",
                path: PathBuf::from("envs/prod.yaml")
            }
        );
        for bad in [
            "$values//etc/passwd",
            "$values/../x",
            "$/x",
            "$va lues/x",
            "$values/",
        ] {
            assert!(parse_value_file(bad).is_err(), "{bad}");
        }
        let refs = RefRoots::from([("values".to_string(), PathBuf::from("/tmp/r"))]);
        assert_eq!(
            ref_value_file("$values/a.yaml", &refs, "source 1").expect("ok"),
            Some((PathBuf::from("/tmp/r"), PathBuf::from("a.yaml")))
        );
        assert_eq!(
            ref_value_file("a.yaml", &refs, "source 1").expect("ok"),
            None
        );
        let e = ref_value_file("$other/a.yaml", &refs, "source 1").expect_err("unknown");
        assert!(e.to_string().contains("$values"), "{e}");
    }

    fn cm(name: &str, ns: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}})
    }

    #[test]
    fn merges_in_source_order_and_refuses_duplicates() {
        let merged = merge(vec![
            (
                "source 1 (a)".into(),
                vec![cm("a", "ns"), cm("shared", "ns")],
            ),
            (
                "source 2 (b)".into(),
                vec![cm("b", "ns"), cm("shared", "other")],
            ),
        ])
        .expect("no duplicates");
        let names: Vec<&str> = merged
            .iter()
            .map(|o| o["metadata"]["name"].as_str().expect("name"))
            .collect();
        assert_eq!(names, ["a", "shared", "b", "shared"]);

        let e = merge(vec![
            (
                "source 1 (repo-a, path apps/a)".into(),
                vec![cm("shared", "ns")],
            ),
            (
                "source 2 (repo-b, path apps/b)".into(),
                vec![cm("shared", "ns")],
            ),
        ])
        .expect_err("duplicate");
        let m = e.to_string();
        assert!(
            m.contains("ConfigMap")
                && m.contains("shared")
                && m.contains("source 1 (repo-a, path apps/a)")
                && m.contains("source 2 (repo-b, path apps/b)"),
            "{m}"
        );
        assert!(merge(vec![(
            "source 1".into(),
            vec![cm("x", "ns"), cm("x", "ns")]
        )])
        .is_err());
        // Hooks named by generateName are never duplicates.
        let hook = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"generateName": "migrate-", "namespace": "ns"}});
        assert_eq!(
            merge(vec![
                ("source 1".into(), vec![hook.clone()]),
                ("source 2".into(), vec![hook])
            ])
            .expect("hooks")
            .len(),
            2
        );
    }
}
