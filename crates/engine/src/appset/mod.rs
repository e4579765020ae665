//! ApplicationSet generation: generators → parameter sets → Applications, as a pure
//! function of the set and its inputs.
//!
//! Semantics follow Argo CD's ApplicationSet controller:
//!
//! - **list**: each element is a parameter set. Without `goTemplate`, element values must
//!   be strings (a `values` map becomes `values.<key>`), as Argo CD requires.
//! - **clusters**: one parameter set per Argo CD cluster Secret whose labels match the
//!   selector: `name`, `nameNormalized`, `server`, `project`, `metadata.labels.<k>`,
//!   `metadata.annotations.<k>` and the templated `values.<k>`. The management cluster
//!   (`in-cluster`, `https://kubernetes.default.svc`) is included without a Secret only
//!   when the selector is empty — Argo CD's `ignoreLocalClusters` rule: a label selector
//!   can only match clusters that have a Secret to carry labels.
//! - **git directories / files**: directories matching `directories[].path` (minus those
//!   matching an `exclude: true` entry), or JSON/YAML files matching `files[].path`, give
//!   `path`, `path.basename`, `path.basenameNormalized`, `path[n]` (files also
//!   `path.filename`, `path.filenameNormalized` and the file's flattened keys). With
//!   `goTemplate` the same arrive nested: `.path.path`, `.path.segments`, the file as is.
//!   `*` does not cross `/`; `**` does. Files are read through [`GeneratorInputs`], so the
//!   engine does no I/O and tests need no repository.
//! - **matrix**: the product of two generators; the second is interpolated with each
//!   parameter set of the first (so it may use `{{path}}` from a git generator). A key
//!   present in both with different values is an error without `goTemplate`; with it the
//!   second generator's values win.
//! - **merge**: the first generator's sets, each overridden by the sets of later
//!   generators that agree on every `mergeKeys` value (a later set matching no base set is
//!   dropped; of base sets with equal keys the first is kept).
//! - **selector** on any generator filters its parameter sets by label-selector rules
//!   applied to the (flattened) parameters.
//! - The template (merged with a generator's own `template`) is rendered per parameter set
//!   ([`template`]), then `templatePatch` is rendered and merged over it (JSON merge-patch
//!   semantics: maps merge, lists and scalars replace — what Argo CD's strategic merge
//!   does for Application fields, which carry no merge keys). Two sets producing the same
//!   Application name is an error, so nothing is half-applied.
//!
//! Hostile input is bounded: at most [`MAX_PARAM_SETS`] parameter sets per generator (a
//! matrix of two large lists stops early), [`MAX_APPLICATIONS`] Applications per set, file
//! sizes and YAML alias expansion through `mooring_core::yaml`, template size and output.

pub mod template;

use globset::{GlobBuilder, GlobMatcher};
use mooring_core::app::{Application, IN_CLUSTER};
use mooring_core::appset::{
    ApplicationSet, ClusterGenerator, Generator, GitGenerator, LabelSelector, ListGenerator,
    MergeGenerator,
};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
pub use template::Dialect;

/// Most parameter sets one generator (including a matrix product) may produce.
pub const MAX_PARAM_SETS: usize = 10_000;
/// Most Applications one ApplicationSet may produce.
pub const MAX_APPLICATIONS: usize = 10_000;
pub use mooring_core::app::RESOURCES_FINALIZER;
/// Largest git generator file read (bytes).
pub const MAX_GIT_FILE_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AppSetError {
    #[error("generator: {0}")]
    Generator(String),
    #[error("template: {0}")]
    Template(String),
    #[error("git generator ({repo} at {revision:?}): {message}")]
    Git {
        repo: String,
        revision: String,
        message: String,
    },
    #[error("{what} produced {count} results, over the limit of {limit}")]
    TooMany {
        what: String,
        count: usize,
        limit: usize,
    },
    #[error("ApplicationSet generates more than one Application named {0:?}")]
    DuplicateName(String),
    #[error("generated Application {name:?} is invalid: {message}")]
    InvalidApplication { name: String, message: String },
}

/// One destination cluster as the clusters generator sees it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClusterInfo {
    pub name: String,
    pub server: String,
    pub project: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

impl ClusterInfo {
    /// Argo CD's local cluster: `in-cluster` at `https://kubernetes.default.svc`.
    pub fn in_cluster() -> ClusterInfo {
        ClusterInfo {
            name: mooring_core::app::IN_CLUSTER_NAME.into(),
            server: IN_CLUSTER.into(),
            ..ClusterInfo::default()
        }
    }
}

/// What generators read from outside: registered clusters and Git trees.
pub trait GeneratorInputs {
    /// Clusters registered by Secret (the local cluster is added by the generator).
    fn clusters(&self) -> Result<Vec<ClusterInfo>, String>;
    /// Every file path (relative, `/`-separated) in `repo_url` at `revision`.
    fn git_files(&self, repo_url: &str, revision: &str) -> Result<Vec<String>, String>;
    /// One file's content.
    fn git_read(&self, repo_url: &str, revision: &str, path: &str) -> Result<Vec<u8>, String>;
}

/// Inputs with no clusters and no repositories (list/matrix of lists only).
pub struct NoInputs;

impl GeneratorInputs for NoInputs {
    fn clusters(&self) -> Result<Vec<ClusterInfo>, String> {
        Ok(vec![])
    }
    fn git_files(&self, repo_url: &str, _: &str) -> Result<Vec<String>, String> {
        Err(format!("no repository available for {repo_url}"))
    }
    fn git_read(&self, repo_url: &str, _: &str, _: &str) -> Result<Vec<u8>, String> {
        Err(format!("no repository available for {repo_url}"))
    }
}

type Params = Map<String, Value>;

/// Argo CD's name sanitising (`nameNormalized`, `normalize`): lowercase, any character
/// outside `[a-z0-9.-]` becomes `-`, at most 253 characters.
pub fn normalize(s: &str) -> String {
    let mut out: String = s
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    out.truncate(253);
    out
}

/// Generate the Applications of a set, in generator order. Each is a complete
/// `Application` object (apiVersion, kind, metadata with name and namespace, spec) without
/// ownership metadata, which the controller adds.
pub fn generate(
    set: &ApplicationSet,
    inputs: &dyn GeneratorInputs,
) -> Result<Vec<Value>, AppSetError> {
    let dialect = Dialect::from_options(set.spec.go_template, &set.spec.go_template_options)?;
    if set.spec.template_patch.is_some() && dialect == Dialect::Fast {
        return Err(AppSetError::Template(
            "templatePatch requires goTemplate: true (as in Argo CD)".into(),
        ));
    }
    if set.spec.generators.is_empty() {
        return Err(AppSetError::Generator("spec.generators is empty".into()));
    }
    let base_template = serde_json::to_value(&set.spec.template)
        .map_err(|e| AppSetError::Template(e.to_string()))?;
    let mut apps = Vec::new();
    let mut names = BTreeSet::new();
    for (i, raw) in set.spec.generators.iter().enumerate() {
        let g: Generator = serde_json::from_value(raw.clone())
            .map_err(|e| AppSetError::Generator(format!("generators[{i}]: {e}")))?;
        let params = run(&g, inputs, dialect, 0)?;
        let template = match generator_template(&g) {
            Some(t) => merge_template(&base_template, t),
            None => base_template.clone(),
        };
        for p in params {
            let app = render_application(set, &template, &p, dialect)?;
            let name = app["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if !names.insert(name.clone()) {
                return Err(AppSetError::DuplicateName(name));
            }
            apps.push(app);
            if apps.len() > MAX_APPLICATIONS {
                return Err(AppSetError::TooMany {
                    what: "the ApplicationSet".into(),
                    count: apps.len(),
                    limit: MAX_APPLICATIONS,
                });
            }
        }
    }
    Ok(apps)
}

fn generator_template(g: &Generator) -> Option<&Value> {
    g.template
        .as_ref()
        .or(g.list.as_ref().and_then(|l| l.template.as_ref()))
        .or(g.clusters.as_ref().and_then(|c| c.template.as_ref()))
        .or(g.git.as_ref().and_then(|c| c.template.as_ref()))
        .or(g.matrix.as_ref().and_then(|c| c.template.as_ref()))
        .or(g.merge.as_ref().and_then(|c| c.template.as_ref()))
}

/// A generator's template overrides the set's where it sets a (non-empty) value.
fn merge_template(base: &Value, over: &Value) -> Value {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                let merged = match out.get(k) {
                    Some(bv) => merge_template(bv, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Object(out)
        }
        (b, Value::Null) => b.clone(),
        (b, Value::String(s)) if s.is_empty() => b.clone(),
        (_, o) => o.clone(),
    }
}

fn render_application(
    set: &ApplicationSet,
    template: &Value,
    params: &Params,
    dialect: Dialect,
) -> Result<Value, AppSetError> {
    let rendered = template::render_value(template, params, dialect)?;
    let meta = &rendered["metadata"];
    let mut metadata = Map::new();
    let name = meta["name"].as_str().unwrap_or_default().to_string();
    metadata.insert("name".into(), json!(name));
    let ns = meta["namespace"]
        .as_str()
        .filter(|n| !n.is_empty())
        .unwrap_or(set.namespace());
    if !ns.is_empty() {
        metadata.insert("namespace".into(), json!(ns));
    }
    for k in ["labels", "annotations", "finalizers"] {
        if let Some(v) = meta.get(k).filter(|v| !v.is_null()) {
            metadata.insert(k.into(), v.clone());
        }
    }
    // Argo CD: generated Applications carry the resources finalizer (deleting one deletes
    // its resources) unless `preserveResourcesOnDeletion` is set.
    let preserve = set
        .spec
        .sync_policy
        .as_ref()
        .is_some_and(|p| p.preserve_resources_on_deletion);
    if !preserve {
        let fin = metadata.entry("finalizers").or_insert_with(|| json!([]));
        if let Value::Array(a) = fin {
            if !a.iter().any(|f| f == RESOURCES_FINALIZER) {
                a.push(json!(RESOURCES_FINALIZER));
            }
        }
    }
    let mut app = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": metadata,
        "spec": rendered["spec"].clone(),
    });
    if let Some(patch) = &set.spec.template_patch {
        let text = template::render_str(patch, params, dialect)?;
        let patch = mooring_core::yaml::parse_one(&text)
            .map_err(|e| AppSetError::Template(format!("templatePatch: {e}")))?;
        if !patch.is_object() && !patch.is_null() {
            return Err(AppSetError::Template(format!(
                "templatePatch must render to a map, got {patch}"
            )));
        }
        if !patch.is_null() {
            mooring_core::merge_patch::apply(&mut app, &patch);
        }
    }
    validate_application(&app)?;
    Ok(app)
}

fn validate_application(app: &Value) -> Result<(), AppSetError> {
    let name = app["metadata"]["name"].as_str().unwrap_or_default();
    let bad = |message: String| AppSetError::InvalidApplication {
        name: name.to_string(),
        message,
    };
    let valid_name = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !valid_name {
        return Err(bad(
            "metadata.name must be a DNS subdomain (lowercase letters, digits, '-' and '.', at most 253 characters)".into(),
        ));
    }
    if name.contains("{{") {
        return Err(bad(
            "metadata.name still holds an unresolved parameter".into()
        ));
    }
    serde_json::from_value::<Application>(app.clone()).map_err(|e| bad(e.to_string()))?;
    Ok(())
}

fn too_many(what: &str, count: usize) -> AppSetError {
    AppSetError::TooMany {
        what: what.into(),
        count,
        limit: MAX_PARAM_SETS,
    }
}

/// Run one generator (with its selector) into parameter sets.
fn run(
    g: &Generator,
    inputs: &dyn GeneratorInputs,
    dialect: Dialect,
    depth: usize,
) -> Result<Vec<Params>, AppSetError> {
    if depth > 3 {
        return Err(AppSetError::Generator(
            "matrix/merge generators nested more than 3 deep".into(),
        ));
    }
    let set_kinds = [
        g.list.is_some(),
        g.clusters.is_some(),
        g.git.is_some(),
        g.matrix.is_some(),
        g.merge.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if let Some(unknown) = g.other.keys().next() {
        return Err(AppSetError::Generator(format!(
            "unsupported generator {unknown:?} (supported: list, clusters, git, matrix, merge)"
        )));
    }
    if set_kinds != 1 {
        return Err(AppSetError::Generator(format!(
            "a generator entry must set exactly one of list, clusters, git, matrix, merge (found {set_kinds})"
        )));
    }
    let mut out = if let Some(l) = &g.list {
        list(l, dialect)?
    } else if let Some(c) = &g.clusters {
        clusters(c, inputs, dialect)?
    } else if let Some(git) = &g.git {
        git_generator(git, inputs, dialect)?
    } else if let Some(m) = &g.matrix {
        matrix(&m.generators, inputs, dialect, depth)?
    } else if let Some(m) = &g.merge {
        merge(m, inputs, dialect, depth)?
    } else {
        vec![]
    };
    if out.len() > MAX_PARAM_SETS {
        return Err(too_many("a generator", out.len()));
    }
    if let Some(sel) = &g.selector {
        let sel = parse_selector(sel)?;
        out.retain(|p| sel.matches(&flatten_strings(p)));
    }
    Ok(out)
}

fn list(l: &ListGenerator, dialect: Dialect) -> Result<Vec<Params>, AppSetError> {
    let mut elements = l.elements.clone();
    if let Some(y) = l.elements_yaml.as_deref().filter(|y| !y.trim().is_empty()) {
        match mooring_core::yaml::parse_one(y)
            .map_err(|e| AppSetError::Generator(format!("list.elementsYaml: {e}")))?
        {
            Value::Array(a) => elements.extend(a),
            Value::Null => {}
            other => {
                return Err(AppSetError::Generator(format!(
                    "list.elementsYaml must be a list, got {other}"
                )))
            }
        }
    }
    if elements.len() > MAX_PARAM_SETS {
        return Err(too_many("the list generator", elements.len()));
    }
    elements
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let Value::Object(o) = e else {
                return Err(AppSetError::Generator(format!(
                    "list element {i} is not a map: {e}"
                )));
            };
            if dialect != Dialect::Fast {
                return Ok(o);
            }
            let mut p = Params::new();
            for (k, v) in o {
                match (k.as_str(), v) {
                    (_, Value::String(s)) => {
                        p.insert(k, Value::String(s));
                    }
                    ("values", Value::Object(vals)) => {
                        for (vk, vv) in vals {
                            p.insert(format!("values.{vk}"), Value::String(template::display(&vv)));
                        }
                    }
                    (_, other) => {
                        return Err(AppSetError::Generator(format!(
                            "list element {i}: {k:?} is {other}, but without goTemplate list values must be strings (quote it)"
                        )))
                    }
                }
            }
            Ok(p)
        })
        .collect()
}

fn clusters(
    c: &ClusterGenerator,
    inputs: &dyn GeneratorInputs,
    dialect: Dialect,
) -> Result<Vec<Params>, AppSetError> {
    let selector = parse_selector(&c.selector)?;
    let registered = inputs.clusters().map_err(AppSetError::Generator)?;
    let mut all: Vec<ClusterInfo> = Vec::new();
    // Argo CD: the local cluster counts without a Secret only for an empty selector.
    if c.selector.is_empty() && !registered.iter().any(|r| r.server == IN_CLUSTER) {
        all.push(ClusterInfo::in_cluster());
    }
    all.extend(
        registered
            .into_iter()
            .filter(|r| selector.matches(&r.labels)),
    );
    let mut out = Vec::new();
    for cl in all {
        let mut p = Params::new();
        if dialect == Dialect::Fast {
            p.insert("name".into(), json!(cl.name));
            p.insert("nameNormalized".into(), json!(normalize(&cl.name)));
            p.insert("server".into(), json!(cl.server));
            p.insert("project".into(), json!(cl.project));
            for (k, v) in &cl.labels {
                p.insert(format!("metadata.labels.{k}"), json!(v));
            }
            for (k, v) in &cl.annotations {
                p.insert(format!("metadata.annotations.{k}"), json!(v));
            }
            for (k, v) in &c.values {
                let rendered = template::render_str(v, &p, dialect)?;
                p.insert(format!("values.{k}"), json!(rendered));
            }
        } else {
            p.insert("name".into(), json!(cl.name));
            p.insert("nameNormalized".into(), json!(normalize(&cl.name)));
            p.insert("server".into(), json!(cl.server));
            p.insert("project".into(), json!(cl.project));
            p.insert(
                "metadata".into(),
                json!({"labels": cl.labels, "annotations": cl.annotations}),
            );
            let mut values = Map::new();
            for (k, v) in &c.values {
                values.insert(k.clone(), json!(template::render_str(v, &p, dialect)?));
            }
            p.insert("values".into(), Value::Object(values));
        }
        out.push(p);
    }
    Ok(out)
}

fn glob(pattern: &str) -> Result<GlobMatcher, AppSetError> {
    GlobBuilder::new(pattern.trim_start_matches("./"))
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| AppSetError::Generator(format!("bad git path pattern {pattern:?}: {e}")))
}

fn path_params(p: &mut Params, dir: &str, file: Option<&str>, dialect: Dialect, prefix: &str) {
    let base = dir.rsplit('/').next().unwrap_or(dir).to_string();
    let segments: Vec<&str> = dir.split('/').filter(|s| !s.is_empty()).collect();
    let key = if prefix.is_empty() {
        "path".to_string()
    } else {
        format!("{prefix}.path")
    };
    if dialect == Dialect::Fast {
        p.insert(key.clone(), json!(dir));
        p.insert(format!("{key}.basename"), json!(base));
        p.insert(format!("{key}.basenameNormalized"), json!(normalize(&base)));
        if let Some(f) = file {
            p.insert(format!("{key}.filename"), json!(f));
            p.insert(format!("{key}.filenameNormalized"), json!(normalize(f)));
        }
        for (i, s) in segments.iter().enumerate() {
            p.insert(format!("{key}[{i}]"), json!(s));
        }
    } else {
        let mut m = json!({
            "path": dir, "basename": base, "basenameNormalized": normalize(&base),
            "segments": segments,
        });
        if let Some(f) = file {
            m["filename"] = json!(f);
            m["filenameNormalized"] = json!(normalize(f));
        }
        if prefix.is_empty() {
            p.insert("path".into(), m);
        } else {
            p.insert(prefix.into(), json!({ "path": m }));
        }
    }
}

fn git_values(g: &GitGenerator, p: &mut Params, dialect: Dialect) -> Result<(), AppSetError> {
    if g.values.is_empty() {
        return Ok(());
    }
    let mut values = Map::new();
    for (k, v) in &g.values {
        values.insert(k.clone(), json!(template::render_str(v, p, dialect)?));
    }
    if dialect == Dialect::Fast {
        for (k, v) in values {
            p.insert(format!("values.{k}"), v);
        }
    } else {
        p.insert("values".into(), Value::Object(values));
    }
    Ok(())
}

fn git_generator(
    g: &GitGenerator,
    inputs: &dyn GeneratorInputs,
    dialect: Dialect,
) -> Result<Vec<Params>, AppSetError> {
    let git_err = |message: String| AppSetError::Git {
        repo: g.repo_url.clone(),
        revision: g.revision.clone(),
        message,
    };
    if g.directories.is_empty() == g.files.is_empty() {
        return Err(git_err("set exactly one of directories and files".into()));
    }
    let files = inputs
        .git_files(&g.repo_url, &g.revision)
        .map_err(git_err)?;
    let hidden = |p: &str| p.split('/').any(|s| s.starts_with('.'));
    let mut out = Vec::new();
    if !g.directories.is_empty() {
        let mut dirs = BTreeSet::new();
        for f in files.iter().filter(|f| !hidden(f)) {
            let mut d = f.as_str();
            while let Some((parent, _)) = d.rsplit_once('/') {
                dirs.insert(parent.to_string());
                d = parent;
            }
        }
        let include: Vec<GlobMatcher> = g
            .directories
            .iter()
            .filter(|d| !d.exclude)
            .map(|d| glob(&d.path))
            .collect::<Result<_, _>>()?;
        let exclude: Vec<GlobMatcher> = g
            .directories
            .iter()
            .filter(|d| d.exclude)
            .map(|d| glob(&d.path))
            .collect::<Result<_, _>>()?;
        for d in dirs {
            if include.iter().any(|m| m.is_match(&d)) && !exclude.iter().any(|m| m.is_match(&d)) {
                let mut p = Params::new();
                path_params(&mut p, &d, None, dialect, &g.path_param_prefix);
                git_values(g, &mut p, dialect)?;
                out.push(p);
                if out.len() > MAX_PARAM_SETS {
                    return Err(too_many("the git directory generator", out.len()));
                }
            }
        }
        return Ok(out);
    }
    let include: Vec<GlobMatcher> = g
        .files
        .iter()
        .filter(|d| !d.exclude)
        .map(|d| glob(&d.path))
        .collect::<Result<_, _>>()?;
    let exclude: Vec<GlobMatcher> = g
        .files
        .iter()
        .filter(|d| d.exclude)
        .map(|d| glob(&d.path))
        .collect::<Result<_, _>>()?;
    let mut matched: Vec<&String> = files
        .iter()
        .filter(|f| {
            include.iter().any(|m| m.is_match(f.as_str()))
                && !exclude.iter().any(|m| m.is_match(f.as_str()))
        })
        .collect();
    matched.sort();
    for f in matched {
        let bytes = inputs
            .git_read(&g.repo_url, &g.revision, f)
            .map_err(git_err)?;
        if bytes.len() > MAX_GIT_FILE_BYTES {
            return Err(git_err(format!(
                "{f} is {} bytes, over the {MAX_GIT_FILE_BYTES}-byte limit",
                bytes.len()
            )));
        }
        let text = String::from_utf8(bytes).map_err(|_| git_err(format!("{f} is not UTF-8")))?;
        let doc = mooring_core::yaml::parse_one(&text).map_err(|e| git_err(format!("{f}: {e}")))?;
        let objects = match doc {
            Value::Array(a) => a,
            Value::Null => vec![],
            other => vec![other],
        };
        let (dir, file) = match f.rsplit_once('/') {
            Some((d, n)) => (d, n),
            None => ("", f.as_str()),
        };
        for (i, o) in objects.into_iter().enumerate() {
            let Value::Object(o) = o else {
                return Err(git_err(format!("{f}: entry {i} is not a map")));
            };
            let mut p = if dialect == Dialect::Fast {
                let mut flat = Params::new();
                flatten_into(&Value::Object(o), "", &mut flat);
                flat
            } else {
                o
            };
            path_params(&mut p, dir, Some(file), dialect, &g.path_param_prefix);
            git_values(g, &mut p, dialect)?;
            out.push(p);
            if out.len() > MAX_PARAM_SETS {
                return Err(too_many("the git file generator", out.len()));
            }
        }
    }
    Ok(out)
}

/// Argo CD's flattening (`jeremywohl/flatten`, dot style), values printed as Go's `%v`.
fn flatten_into(v: &Value, prefix: &str, out: &mut Params) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Value::Object(o) => o.iter().for_each(|(k, x)| flatten_into(x, &key(k), out)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| flatten_into(x, &key(&i.to_string()), out)),
        other => {
            out.insert(prefix.to_string(), Value::String(template::display(other)));
        }
    }
}

/// Parameters as a flat string map (for selectors and merge keys).
fn flatten_strings(p: &Params) -> BTreeMap<String, String> {
    let mut flat = Params::new();
    for (k, v) in p {
        match v {
            Value::Object(_) | Value::Array(_) => flatten_into(v, k, &mut flat),
            other => {
                flat.insert(k.clone(), Value::String(template::display(other)));
            }
        }
    }
    flat.into_iter()
        .map(|(k, v)| (k, template::display(&v)))
        .collect()
}

fn deep_merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(bv) => deep_merge(bv, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, o) => *b = o.clone(),
    }
}

fn combine(a: &Params, b: &Params, dialect: Dialect) -> Result<Params, AppSetError> {
    let mut out = a.clone();
    for (k, v) in b {
        match out.get_mut(k) {
            Some(existing) if dialect == Dialect::Fast => {
                if existing != v {
                    return Err(AppSetError::Generator(format!(
                        "matrix: parameter {k:?} is {} in the first generator and {} in the second",
                        existing, v
                    )));
                }
            }
            Some(existing) => deep_merge(existing, v),
            None => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(out)
}

fn matrix(
    children: &[Generator],
    inputs: &dyn GeneratorInputs,
    dialect: Dialect,
    depth: usize,
) -> Result<Vec<Params>, AppSetError> {
    let [first, second] = children else {
        return Err(AppSetError::Generator(format!(
            "the matrix generator needs exactly 2 child generators, got {}",
            children.len()
        )));
    };
    let a = run(first, inputs, dialect, depth + 1)?;
    let second_json =
        serde_json::to_value(second).map_err(|e| AppSetError::Generator(e.to_string()))?;
    let templated = second_json.to_string().contains("{{");
    let fixed = if templated {
        None
    } else {
        Some(run(second, inputs, dialect, depth + 1)?)
    };
    let mut out = Vec::new();
    for pa in &a {
        let b = match &fixed {
            Some(b) => b.clone(),
            None => {
                let g: Generator =
                    serde_json::from_value(template::render_value(&second_json, pa, dialect)?)
                        .map_err(|e| {
                            AppSetError::Generator(format!(
                                "matrix: interpolated second generator: {e}"
                            ))
                        })?;
                run(&g, inputs, dialect, depth + 1)?
            }
        };
        for pb in &b {
            out.push(combine(pa, pb, dialect)?);
            if out.len() > MAX_PARAM_SETS {
                return Err(too_many("the matrix generator", out.len()));
            }
        }
    }
    Ok(out)
}

fn merge(
    m: &MergeGenerator,
    inputs: &dyn GeneratorInputs,
    dialect: Dialect,
    depth: usize,
) -> Result<Vec<Params>, AppSetError> {
    if m.generators.len() < 2 {
        return Err(AppSetError::Generator(format!(
            "the merge generator needs at least 2 child generators, got {}",
            m.generators.len()
        )));
    }
    if m.merge_keys.is_empty() {
        return Err(AppSetError::Generator(
            "the merge generator needs mergeKeys".into(),
        ));
    }
    let key_of = |p: &Params| -> Option<Vec<String>> {
        let flat = flatten_strings(p);
        m.merge_keys.iter().map(|k| flat.get(k).cloned()).collect()
    };
    let mut base: Vec<(Vec<String>, Params)> = Vec::new();
    let mut seen = BTreeSet::new();
    for p in run(&m.generators[0], inputs, dialect, depth + 1)? {
        // A base set without every merge key cannot be merged; Argo CD drops it too.
        if let Some(k) = key_of(&p) {
            if seen.insert(k.clone()) {
                base.push((k, p));
            }
        }
    }
    for g in &m.generators[1..] {
        let mut by_key: HashMap<Vec<String>, Params> = HashMap::new();
        for p in run(g, inputs, dialect, depth + 1)? {
            if let Some(k) = key_of(&p) {
                by_key.entry(k).or_insert(p);
            }
        }
        for (k, p) in base.iter_mut() {
            if let Some(over) = by_key.get(k) {
                for (ok, ov) in over {
                    match p.get_mut(ok) {
                        Some(existing) if dialect != Dialect::Fast => deep_merge(existing, ov),
                        _ => {
                            p.insert(ok.clone(), ov.clone());
                        }
                    }
                }
            }
        }
    }
    Ok(base.into_iter().map(|(_, p)| p).collect())
}

/// A generator's selector, validated like Argo CD's (`metav1.LabelSelectorAsSelector`):
/// an invalid one is a generator error, not a selector that silently matches nothing.
fn parse_selector(
    sel: &LabelSelector,
) -> Result<mooring_core::selector::LabelSelector, AppSetError> {
    sel.to_selector()
        .map_err(|e| AppSetError::Generator(format!("selector: {e}")))
}

#[cfg(test)]
mod tests;

/// Read an Argo CD cluster Secret into the clusters generator's view (name, server,
/// project, the Secret's labels and annotations), with the one cluster Secret parser.
pub fn cluster_from_secret(secret: &Value) -> Result<ClusterInfo, String> {
    let e = mooring_core::cluster::parse_secret(secret).map_err(|e| e.to_string())?;
    Ok(ClusterInfo {
        name: e.name,
        server: e.server,
        project: e.project,
        labels: e.labels,
        annotations: e.annotations,
    })
}
