//! Kustomize sources: a safety walk of the kustomization graph, then the real `kustomize
//! build` (or `kubectl kustomize`) binary.

use crate::exec::{which, Tool};
use crate::manifests::collect_tool_output;
use crate::paths::{check_size, inside_root, read_capped, repo_relative, AppDir};
use crate::{validate, RenderError, RenderOptions, WRAPPER_PREFIX};
use mooring_core::app::KustomizeSource;
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use mooring_core::files::KUSTOMIZATION_FILES;

/// Kustomizations nested deeper than this are refused (a chain of 64 overlays is not a
/// repository layout, it is an attack on the walk).
const MAX_DEPTH: usize = 64;

pub(crate) fn kustomization_file(dir: &Path) -> Option<PathBuf> {
    KUSTOMIZATION_FILES
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// What the walk of a kustomization graph found: every local directory it reads from.
pub(crate) struct Graph<'a> {
    root: &'a Path,
    max_file_bytes: u64,
    allow_remote: bool,
    /// Parse resource files with the safe parser (render: yes; listing inputs: no).
    parse_resources: bool,
    visited: HashSet<PathBuf>,
    pub dirs: BTreeSet<PathBuf>,
}

impl<'a> Graph<'a> {
    pub fn new(
        root: &'a Path,
        max_file_bytes: u64,
        allow_remote: bool,
        parse_resources: bool,
    ) -> Self {
        Graph {
            root,
            max_file_bytes,
            allow_remote,
            parse_resources,
            visited: HashSet::new(),
            dirs: BTreeSet::new(),
        }
    }

    /// Walk the kustomization in canonical directory `dir` and everything it references.
    pub fn walk(&mut self, dir: &Path) -> Result<(), RenderError> {
        self.kustomization(dir, 0)
    }

    fn kustomization(&mut self, dir: &Path, depth: usize) -> Result<(), RenderError> {
        if !self.visited.insert(dir.to_path_buf()) {
            return Ok(()); // shared base or a cycle (kustomize itself reports cycles)
        }
        self.dirs.insert(dir.to_path_buf());
        let Some(file) = kustomization_file(dir) else {
            // A directory without a kustomization: kustomize says so itself.
            return Ok(());
        };
        let display = repo_relative(self.root, &file);
        if depth > MAX_DEPTH {
            return Err(RenderError::Unsupported {
                what: format!("kustomizations nested more than {MAX_DEPTH} deep ({display})"),
            });
        }
        let file = inside_root(self.root, &file, &display)?;
        let text = read_capped(&file, &display, self.max_file_bytes)?;
        let k = mooring_core::yaml::parse_one(&text).map_err(|source| RenderError::Yaml {
            file: display.clone(),
            source,
        })?;
        let Some(k) = k.as_object() else {
            return Ok(()); // kustomize reports a malformed kustomization
        };
        let strings = |field: &str| -> Vec<String> {
            match k.get(field) {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
                Some(Value::String(s)) => vec![s.clone()],
                _ => Vec::new(),
            }
        };
        let objects = |field: &str| -> Vec<Map<String, Value>> {
            match k.get(field) {
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_object).cloned().collect(),
                _ => Vec::new(),
            }
        };
        let ctx = Ref {
            kustomization: &display,
            dir,
            depth,
        };
        // Resources, bases and components: files or further kustomizations.
        for field in ["resources", "bases", "components"] {
            for entry in strings(field) {
                self.reference(&ctx, &entry, Kind::Resource)?;
            }
        }
        // Transformer/generator/validator entries are files, kustomization dirs, or
        // inline YAML.
        for field in ["transformers", "generators", "validators"] {
            for entry in strings(field) {
                if !is_inline(&entry) {
                    self.reference(&ctx, &entry, Kind::Resource)?;
                }
            }
        }
        for entry in strings("patchesStrategicMerge") {
            if !is_inline(&entry) {
                self.reference(&ctx, &entry, Kind::File)?;
            }
        }
        for field in ["crds", "configurations"] {
            for entry in strings(field) {
                self.reference(&ctx, &entry, Kind::File)?;
            }
        }
        for field in ["patches", "patchesJson6902", "replacements"] {
            for o in objects(field) {
                if let Some(p) = o.get("path").and_then(Value::as_str) {
                    self.reference(&ctx, p, Kind::File)?;
                }
            }
        }
        if let Some(p) = k
            .get("openapi")
            .and_then(|o| o.get("path"))
            .and_then(Value::as_str)
        {
            self.reference(&ctx, p, Kind::File)?;
        }
        for field in ["configMapGenerator", "secretGenerator"] {
            for g in objects(field) {
                let list = |f: &str| -> Vec<String> {
                    match g.get(f) {
                        Some(Value::Array(a)) => a
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect(),
                        Some(Value::String(s)) => vec![s.clone()],
                        _ => Vec::new(),
                    }
                };
                for f in list("files") {
                    // `[key=]path`
                    let path = f.split_once('=').map_or(f.as_str(), |(_, p)| p);
                    self.reference(&ctx, path, Kind::File)?;
                }
                for f in list("envs").into_iter().chain(list("env")) {
                    self.reference(&ctx, &f, Kind::File)?;
                }
            }
        }
        Ok(())
    }

    fn reference(&mut self, ctx: &Ref<'_>, entry: &str, kind: Kind) -> Result<(), RenderError> {
        let entry = entry.trim();
        if entry.is_empty() {
            return Ok(());
        }
        let what = format!("{entry:?} in {}", ctx.kustomization);
        let p = ctx.dir.join(entry);
        if !p.exists() {
            if p.symlink_metadata().is_err() && looks_remote(entry) {
                if self.allow_remote {
                    return Ok(());
                }
                return Err(RenderError::RemoteBase {
                    kustomization: ctx.kustomization.into(),
                    entry: entry.into(),
                });
            }
            return Err(RenderError::MissingReference {
                kustomization: ctx.kustomization.into(),
                entry: entry.into(),
            });
        }
        let canon = inside_root(self.root, &p, &what)?;
        if canon.is_dir() {
            match kind {
                Kind::Resource => self.kustomization(&canon, ctx.depth + 1)?,
                Kind::File => {
                    self.dirs.insert(canon);
                }
            }
            return Ok(());
        }
        let display = repo_relative(self.root, &canon);
        check_size(&canon, &display, self.max_file_bytes)?;
        if let Some(parent) = canon.parent() {
            self.dirs.insert(parent.to_path_buf());
        }
        if self.parse_resources
            && matches!(kind, Kind::Resource)
            && [".yaml", ".yml", ".json"]
                .iter()
                .any(|e| display.ends_with(e))
        {
            // Parse with the safe parser before kustomize sees it: an alias bomb or a
            // malformed file is reported here, naming the file.
            let text = read_capped(&canon, &display, self.max_file_bytes)?;
            mooring_core::yaml::parse_all(&text).map_err(|source| RenderError::Yaml {
                file: display.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

struct Ref<'a> {
    kustomization: &'a str,
    dir: &'a Path,
    depth: usize,
}

#[derive(Clone, Copy)]
enum Kind {
    /// A file, or a directory holding a kustomization.
    Resource,
    /// A file (a directory only counts as an input).
    File,
}

/// An inline patch or transformer config rather than a path.
fn is_inline(entry: &str) -> bool {
    entry.contains('\n') || entry.contains(": ")
}

/// A kustomize remote target: `https://…`, `git@…`, `github.com/org/repo//path?ref=…`.
fn looks_remote(entry: &str) -> bool {
    if entry.contains("://") || entry.starts_with("git@") || entry.starts_with("git::") {
        return true;
    }
    match entry.split_once('/') {
        Some((host, _)) => host.contains('.') && !host.starts_with('.'),
        None => false,
    }
}

/// Validate the Argo CD `source.kustomize` options and turn them into the fields of a
/// wrapper kustomization. `None` when no option is set.
pub(crate) fn wrapper_fields(
    ks: &KustomizeSource,
) -> Result<Option<Map<String, Value>>, RenderError> {
    let mut m = Map::new();
    if let Some(p) = ks.name_prefix.as_deref().filter(|p| !p.is_empty()) {
        validate::name_affix("source.kustomize.namePrefix", p, true)?;
        m.insert("namePrefix".into(), json!(p));
    }
    if let Some(s) = ks.name_suffix.as_deref().filter(|s| !s.is_empty()) {
        validate::name_affix("source.kustomize.nameSuffix", s, false)?;
        m.insert("nameSuffix".into(), json!(s));
    }
    if let Some(ns) = ks.namespace.as_deref().filter(|n| !n.is_empty()) {
        validate::dns_label("source.kustomize.namespace", ns)?;
        m.insert("namespace".into(), json!(ns));
    }
    if !ks.images.is_empty() {
        let images = ks
            .images
            .iter()
            .map(|i| validate::image(i))
            .collect::<Result<Vec<_>, _>>()?;
        m.insert("images".into(), Value::Array(images));
    }
    if !ks.common_labels.is_empty() {
        for (k, v) in &ks.common_labels {
            validate::qualified_name("source.kustomize.commonLabels key", k)?;
            validate::label_value(&format!("source.kustomize.commonLabels[{k}]"), v)?;
        }
        m.insert("commonLabels".into(), json!(ks.common_labels));
    }
    if !ks.common_annotations.is_empty() {
        for (k, v) in &ks.common_annotations {
            validate::qualified_name("source.kustomize.commonAnnotations key", k)?;
            validate::annotation_value(&format!("source.kustomize.commonAnnotations[{k}]"), v)?;
        }
        m.insert("commonAnnotations".into(), json!(ks.common_annotations));
    }
    if !ks.replicas.is_empty() {
        let mut replicas = Vec::new();
        for r in &ks.replicas {
            validate::qualified_name("source.kustomize.replicas name", &r.name)?;
            let count = r
                .count()
                .filter(|c| (0..=1_000_000).contains(c))
                .ok_or_else(|| RenderError::InvalidOption {
                    option: format!("source.kustomize.replicas[{}].count", r.name),
                    value: r.count.to_string(),
                    reason: "must be a whole number from 0 to 1000000".into(),
                })?;
            replicas.push(json!({"name": r.name, "count": count}));
        }
        m.insert("replicas".into(), Value::Array(replicas));
    }
    Ok((!m.is_empty()).then_some(m))
}

/// The kustomize program and the subcommand that builds (`build` or `kustomize`).
fn kustomize_program(opts: &RenderOptions) -> Result<(PathBuf, &'static str), RenderError> {
    let sub = |p: &Path| {
        if p.file_name().is_some_and(|n| n == "kubectl") {
            "kustomize"
        } else {
            "build"
        }
    };
    if let Some(bin) = &opts.kustomize {
        return Ok((bin.clone(), sub(bin)));
    }
    if let Some(k) = which("kustomize") {
        return Ok((k, "build"));
    }
    if let Some(k) = which("kubectl") {
        return Ok((k, "kustomize"));
    }
    Err(RenderError::KustomizeMissing)
}

pub(crate) fn render(
    app: &AppDir,
    ks: Option<&KustomizeSource>,
    opts: &RenderOptions,
) -> Result<Vec<Value>, RenderError> {
    // Validate everything before running anything.
    let fields = match ks {
        Some(ks) => wrapper_fields(ks)?,
        None => None,
    };
    let mut graph = Graph::new(
        &app.root,
        opts.max_file_bytes,
        opts.allow_remote_bases,
        true,
    );
    graph.walk(&app.dir)?;
    let (program, sub) = kustomize_program(opts)?;
    let app_rel = repo_relative(&app.root, &app.dir);

    // With Argo CD options, build a wrapper kustomization (inside root, so the load
    // restrictor and relative paths behave) whose only resource is the application.
    let wrapper = match fields {
        Some(mut fields) => {
            let dir = tempfile::Builder::new()
                .prefix(WRAPPER_PREFIX)
                .tempdir_in(&app.root)
                .map_err(|e| RenderError::io(&app.root, e))?;
            let resource = if app_rel == "." {
                "..".to_string()
            } else {
                format!("../{app_rel}")
            };
            fields.insert(
                "apiVersion".into(),
                json!("kustomize.config.k8s.io/v1beta1"),
            );
            fields.insert("kind".into(), json!("Kustomization"));
            fields.insert("resources".into(), json!([resource]));
            // JSON is YAML: serde_json does all the quoting, so no value can break out.
            let text = serde_json::to_string_pretty(&Value::Object(fields))
                .map_err(|e| RenderError::io(dir.path(), std::io::Error::other(e)))?;
            let file = dir.path().join("kustomization.yaml");
            std::fs::write(&file, text).map_err(|e| RenderError::io(&file, e))?;
            Some(dir)
        }
        None => None,
    };
    let build_dir = wrapper.as_ref().map_or(app.dir.as_path(), |w| w.path());
    let args: Vec<OsString> = vec![
        sub.into(),
        build_dir.as_os_str().to_owned(),
        "--load-restrictor".into(),
        "LoadRestrictionsRootOnly".into(),
    ];
    let out = Tool {
        program: &program,
        args,
        cwd: &app.root,
        root: &app.root,
        timeout: opts.timeout,
        max_output: opts.max_output_bytes,
    }
    .run();
    drop(wrapper);
    let out = out?;
    collect_tool_output(&format!("kustomize build {app_rel}"), &out)
}

/// See [`crate::kustomize_inputs`].
pub(crate) fn inputs(app: &AppDir) -> Result<Vec<String>, RenderError> {
    let mut dirs = BTreeSet::new();
    if kustomization_file(&app.dir).is_some() {
        let mut graph = Graph::new(&app.root, u64::MAX, true, false);
        graph.walk(&app.dir)?;
        dirs = graph.dirs;
    }
    Ok(minimal(app, dirs))
}

/// The repo-relative forms of `dirs` plus the app directory, without directories
/// already covered by an ancestor in the set.
pub(crate) fn minimal(app: &AppDir, mut dirs: BTreeSet<PathBuf>) -> Vec<String> {
    dirs.insert(app.dir.clone());
    // Drop directories already covered by an ancestor in the set.
    let mut out: Vec<String> = Vec::new();
    for d in &dirs {
        let rel = repo_relative(&app.root, d);
        if out.iter().any(|o| covers(o, &rel)) {
            continue;
        }
        out.retain(|o| !covers(&rel, o));
        out.push(rel);
    }
    out.sort();
    out
}

/// Whether repo-relative directory `dir` contains repo-relative `path`.
pub(crate) fn covers(dir: &str, path: &str) -> bool {
    dir == "." || path == dir || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remote_detection() {
        assert!(looks_remote("https://github.com/org/repo//base?ref=v1"));
        assert!(looks_remote("github.com/org/repo/base?ref=v1"));
        assert!(looks_remote("git@github.com:org/repo.git"));
        assert!(!looks_remote("../base"));
        assert!(!looks_remote("deployment.yaml"));
        assert!(!looks_remote("./sub/x.yaml"));
    }

    #[test]
    fn replicas_option() {
        use mooring_core::app::KustomizeReplica;
        let ks = |count: Value| KustomizeSource {
            replicas: vec![KustomizeReplica {
                name: "inference".into(),
                count,
            }],
            ..KustomizeSource::default()
        };
        let f = wrapper_fields(&ks(json!("3")))
            .expect("valid")
            .expect("fields");
        assert_eq!(f["replicas"], json!([{"name": "inference", "count": 3}]));
        let f = wrapper_fields(&ks(json!(2)))
            .expect("valid")
            .expect("fields");
        assert_eq!(f["replicas"][0]["count"], 2);
        for bad in [json!("-1"), json!("three"), json!(1e12), json!(null)] {
            assert!(wrapper_fields(&ks(bad.clone())).is_err(), "{bad}");
        }
    }

    #[test]
    fn covering() {
        assert!(covers("apps/a", "apps/a/x.yaml"));
        assert!(!covers("apps/a", "apps/ab/x.yaml"));
        assert!(covers(".", "anything"));
    }
}
