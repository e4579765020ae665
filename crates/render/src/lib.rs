//! Rendering: from a Git commit's tree and an Argo CD `spec.source` to the list of
//! Kubernetes objects the application wants.
//!
//! # Contract
//!
//! The caller (the controller, or `mooring check`) exports the commit's whole tree into a
//! private temporary directory `root` and calls [`render`]. Rendering only reads inside
//! `root` (and, for kustomize with Argo CD options, writes one short-lived
//! `.mooring-render-*` directory there). The result is either every object of the
//! application, validated, or a [`RenderError`] whose message names the offending file,
//! path or option and says what to do; there is no partial result, so a bad commit never
//! leads to a partial sync or to pruning what the bad file failed to produce.
//!
//! # Source type detection
//!
//! As in Argo CD ([`source_type`]): an explicit `source.directory`, `source.kustomize`,
//! `source.helm` (or `source.chart`) or `source.plugin` decides (two at once is an
//! error). Otherwise the files directly in `source.path` decide: a
//! `kustomization.yaml`, `kustomization.yml` or `Kustomization` means Kustomize, else a
//! `Chart.yaml` means Helm, else it is a plain directory.
//!
//! # Directories
//!
//! Files ending in `.yaml`, `.yml` and `.json` in `source.path` (and, with
//! `directory.recurse`, its subdirectories, walked in lexical order; `.git` is skipped),
//! filtered by `directory.include` and `directory.exclude`. Those are Argo CD globs
//! matched against the path **relative to `source.path`** (which is what Argo CD matches
//! against), where `*` also crosses `/` and `{a,b}` alternates: `include: '{*.yml,*.yaml}'`,
//! `exclude: 'tests/*'`. Every YAML document and every JSON value (a JSON array is a list of
//! objects) must be a Kubernetes object with apiVersion, kind and metadata.name (or
//! generateName); empty documents are skipped; `kind: List` (and any `…List` with `items`)
//! is flattened. As in Argo CD, a YAML file that fails to parse is ignored unless it looks
//! like a manifest (mentions `apiVersion:`, `kind:` and `metadata:`), so a stray CI config
//! does not break the app. `.jsonnet` files are refused (Mooring has no jsonnet): exclude
//! them. A symlink is followed only if it resolves inside `root`; a symlink to a
//! directory is not descended into (Go's `filepath.Walk` behaviour, which Argo CD has).
//!
//! # Kustomize
//!
//! Mooring runs the real binary, as Argo CD does: `kustomize build DIR` when `kustomize` is
//! on PATH, else `kubectl kustomize DIR` (or the binary in [`RenderOptions::kustomize`]),
//! always with `--load-restrictor LoadRestrictionsRootOnly`, arguments as argv (never a
//! shell), a clean environment (PATH, HOME, TMPDIR, LANG only: no credentials, no
//! KUBECONFIG), in its own process group, killed with its children on timeout, and killed
//! as soon as its output passes [`RenderOptions::max_output_bytes`]. Its stderr (trimmed,
//! first 16 KiB) is the error message when it fails.
//!
//! Before kustomize runs, Mooring walks the kustomization graph itself (resources, bases,
//! components, patches, generators' files, crds, configurations, replacements,
//! transformers, generators, validators, openapi): every local reference must resolve,
//! after symlinks, inside `root` (the load restrictor alone does not stop a base directory
//! `../../../elsewhere`), every file must be under [`RenderOptions::max_file_bytes`], and
//! resource YAML files are parsed with the core's safe parser, so an alias bomb is
//! reported by file name rather than expanded. Remote bases (`https://…`,
//! `github.com/org/repo//x?ref=…`) are refused unless
//! [`RenderOptions::allow_remote_bases`]: a render depends only on the commit.
//!
//! ## Argo CD's `source.kustomize` options
//!
//! Argo CD applies namePrefix, nameSuffix, images, commonLabels, commonAnnotations and
//! namespace by running `kustomize edit set …` inside its checkout. Mooring instead writes
//! a *wrapper* kustomization in a fresh `.mooring-render-*` directory inside `root`, whose
//! only resource is the application directory and which carries those fields, and builds
//! the wrapper. Why: nothing in the exported tree is modified (several applications may
//! render from the same tree concurrently), no option value ever becomes an argument of a
//! tool, and the file is written as JSON by serde, so no value can break out of its field.
//! Every value is validated first anyway (image references, Kubernetes label keys and
//! values, DNS names): `images: ["--help"]` or a label key `-x` is a [`RenderError`].
//!
//! The result equals Argo CD's except where the application's own kustomization sets the
//! same field: Argo CD *replaces* the overlay's `namePrefix`/`nameSuffix`, the wrapper
//! *adds* its own outside it (`argo-` + `dev-` + name); an image override matches the image
//! name as the overlay left it (after the overlay's own `images:` rename), not as written
//! in the base.
//!
//! # Helm
//!
//! Charts in the repository are rendered with `helm template RELEASE DIR --include-crds`
//! only where `helm` exists ([`RenderError::HelmMissing`] with an install hint otherwise).
//! Supported `source.helm` fields: releaseName (Argo CD defaults it to the Application's
//! name, which the renderer does not know: the caller should set it; the chart directory's
//! name is used otherwise), namespace, valueFiles (inside `root` only),
//! ignoreMissingValueFiles, values, valuesObject, parameters (`--set`/`--set-string`, commas
//! escaped), fileParameters, skipCrds, kubeVersion, apiVersions. Every flag is passed as
//! one `--flag=value` argument. Charts from Helm repositories (`source.chart`) and
//! dependencies that `helm dependency build` would fetch are not supported.
//!
//! `valueFiles` entries of the form `$NAME/path` read `path` from the repository of the
//! multi-source application's `ref: NAME` source, as Argo CD does ([`render_with_refs`];
//! the rules are in the `sources` module docs, see [`plan`]).
//!
//! # Multiple sources
//!
//! An Application with `spec.sources` is validated as a whole by [`plan`] (no I/O), each
//! rendered source is rendered on its own from its own repository and commit, and the
//! parts are joined by [`merge`], which refuses the same resource from two sources
//! (stricter than Argo CD, which keeps the last one with a warning). The caller keys the
//! cache per source and adds the commits of the `ref` trees a render read
//! ([`CacheKey::with_refs`]), so a commit to a values repository re-renders the charts
//! that read it and nothing else.
//!
//! # Parameter files
//!
//! Before rendering, callers merge Argo CD's `.argocd-source.yaml` and
//! `.argocd-source-<app>.yaml` from the source path over the source
//! ([`with_parameter_files`]; Argo CD Image Updater's Git write-back writes the latter).
//! The files are in the commit's tree, so the cache key's commit covers them; the
//! per-application file also makes the render specific to the application
//! ([`CacheKey::with_app`]).
//!
//! # Limits and identity
//!
//! One file over `max_file_bytes`, a render whose input files or tool output add up to
//! more than `max_output_bytes`, or a tool running past `timeout` is an error. Two objects
//! with the same group, kind, namespace and name (as written: the destination namespace is
//! not known here) are an error naming both places.
//!
//! # Caching and reuse
//!
//! [`RenderCache`] keys renders by (repo URL, commit, path, hash of the source's rendering
//! options). For a new commit the controller can skip rendering: list the application's
//! inputs with [`kustomize_inputs`] (the app directory plus every local directory its
//! kustomization graph reads), and if [`inputs_touched`] says none of the commit's changed
//! paths is under them, call [`RenderCache::reuse`]. [`source_inputs`] does the same for
//! any source type (Helm: the chart plus its value files' directories). Any error from
//! either means "render again".

mod cache;
mod directory;
mod error;
mod exec;
mod helm;
mod kustomize;
mod manifests;
mod parameters;
mod paths;
mod sources;
mod validate;

pub use cache::{CacheKey, Manifests, RenderCache};
pub use error::RenderError;
pub use parameters::{app_parameter_file, with_parameter_files, SHARED_PARAMETER_FILE};
pub use sources::{
    merge, parse_value_file, plan, source_label, PlannedSource, RefRoots, SourcePlan, ValueFile,
    MAX_SOURCES,
};

use mooring_core::app::ApplicationSource;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Name prefix of the wrapper directories Mooring writes inside `root`; directory walks
/// skip them.
pub(crate) const WRAPPER_PREFIX: &str = ".mooring-render-";

/// Limits and tool locations for one render (gitoxide's `Options`: plain data, no I/O).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// Largest single file read (default 8 MiB).
    pub max_file_bytes: u64,
    /// Largest render: the sum of a directory's manifest files, or a tool's stdout
    /// (default 64 MiB).
    pub max_output_bytes: u64,
    /// Longest a tool may run (default 60 s).
    pub timeout: Duration,
    /// The kustomize binary to use instead of `kustomize`/`kubectl` on PATH. A binary
    /// named `kubectl` is called as `kubectl kustomize`, any other as `… build`.
    pub kustomize: Option<PathBuf>,
    /// The helm binary to use instead of `helm` on PATH.
    pub helm: Option<PathBuf>,
    /// Let kustomize fetch remote bases (off: a render depends only on the commit).
    pub allow_remote_bases: bool,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            max_file_bytes: 8 * 1024 * 1024,
            max_output_bytes: 64 * 1024 * 1024,
            timeout: Duration::from_secs(60),
            kustomize: None,
            helm: None,
            allow_remote_bases: false,
        }
    }
}

/// How a source is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceType {
    Directory,
    Kustomize,
    Helm,
    /// A config management plugin: recognised, not rendered.
    Plugin,
}

impl SourceType {
    /// Argo CD's name (`status.sourceType`).
    pub fn as_str(self) -> &'static str {
        match self {
            SourceType::Directory => "Directory",
            SourceType::Kustomize => "Kustomize",
            SourceType::Helm => "Helm",
            SourceType::Plugin => "Plugin",
        }
    }
}

impl std::fmt::Display for SourceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The explicitly configured types of `source`.
fn explicit_types(source: &ApplicationSource) -> Vec<SourceType> {
    let mut found = Vec::new();
    if source.directory.is_some() {
        found.push(SourceType::Directory);
    }
    if source.kustomize.is_some() {
        found.push(SourceType::Kustomize);
    }
    if source.helm.is_some() || source.chart.as_deref().is_some_and(|c| !c.is_empty()) {
        found.push(SourceType::Helm);
    }
    if source.plugin.is_some() {
        found.push(SourceType::Plugin);
    }
    found
}

/// Detect the type of `source` in the tree at `root` (see the module docs). A source
/// with several explicit types reports the first (render refuses it); a path that cannot
/// be resolved safely reports `Directory` (render reports the error).
pub fn source_type(root: &Path, source: &ApplicationSource) -> SourceType {
    if let Some(t) = explicit_types(source).first() {
        return *t;
    }
    match paths::resolve_app_dir(root, source.path.as_deref()) {
        Ok(app) => detect(&app.dir),
        Err(_) => SourceType::Directory,
    }
}

fn detect(dir: &Path) -> SourceType {
    if kustomize::kustomization_file(dir).is_some() {
        SourceType::Kustomize
    } else if dir.join("Chart.yaml").is_file() {
        SourceType::Helm
    } else {
        SourceType::Directory
    }
}

/// Render `source` from the tree exported at `root`: every object, validated, or an error.
pub fn render(
    root: &Path,
    source: &ApplicationSource,
    opts: &RenderOptions,
) -> Result<Vec<Value>, RenderError> {
    render_with_refs(root, source, &RefRoots::new(), opts)
}

/// [`render`] one source of a multi-source application: `refs` holds the exported tree
/// of every `ref` source whose files its Helm value files read as `$NAME/path` (see
/// [`plan`]). A `$NAME/…` value file whose ref is not in `refs` is an error.
pub fn render_with_refs(
    root: &Path,
    source: &ApplicationSource,
    refs: &RefRoots,
    opts: &RenderOptions,
) -> Result<Vec<Value>, RenderError> {
    let explicit = explicit_types(source);
    if explicit.len() > 1 {
        return Err(RenderError::MultipleSourceTypes {
            found: explicit
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    if source.chart.as_deref().is_some_and(|c| !c.is_empty()) {
        return Err(RenderError::Unsupported {
            what: "a chart from a Helm repository (source.chart); vendor the chart into the Git repository".into(),
        });
    }
    let app = paths::resolve_app_dir(root, source.path.as_deref())?;
    let kind = explicit
        .first()
        .copied()
        .unwrap_or_else(|| detect(&app.dir));
    let started = std::time::Instant::now();
    let objects = match kind {
        SourceType::Directory => directory::render(&app, source.directory.as_ref(), opts),
        SourceType::Kustomize => kustomize::render(&app, source.kustomize.as_ref(), opts),
        SourceType::Helm => helm::render(&app, source.helm.as_ref(), refs, opts),
        SourceType::Plugin => Err(RenderError::Unsupported {
            what: "config management plugins (source.plugin)".into(),
        }),
    }?;
    tracing::debug!(
        path = source.path.as_deref().unwrap_or("."),
        source_type = kind.as_str(),
        objects = objects.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "rendered"
    );
    Ok(objects)
}

/// The repository-relative directories (`/`-separated, `.` for the root) whose contents a
/// render of `path` reads: `path` itself plus, for a kustomization, every local base,
/// resource, component and referenced file's directory, recursively. Directories inside
/// another listed one are omitted. Remote bases are not listed (they are refused by
/// [`render`] unless allowed, and a render that uses them should not be reused).
pub fn kustomize_inputs(root: &Path, path: &str) -> Result<Vec<String>, RenderError> {
    let app = paths::resolve_app_dir(root, Some(path))?;
    kustomize::inputs(&app)
}

/// The inputs of `source` whatever its type: [`kustomize_inputs`] for kustomize, the
/// chart directory plus the directories of value files and file parameters for Helm, the
/// directory itself for a plain directory.
pub fn source_inputs(root: &Path, source: &ApplicationSource) -> Result<Vec<String>, RenderError> {
    let app = paths::resolve_app_dir(root, source.path.as_deref())?;
    match source_type(root, source) {
        SourceType::Kustomize => kustomize::inputs(&app),
        SourceType::Helm => {
            let extra = helm::extra_inputs(&app, source.helm.as_ref());
            Ok(kustomize::minimal(&app, extra.into_iter().collect()))
        }
        SourceType::Directory | SourceType::Plugin => {
            Ok(kustomize::minimal(&app, Default::default()))
        }
    }
}

/// Whether any of `changed` (repository-relative file paths, `/`-separated, as a Git diff
/// or a webhook lists them) lies under one of `inputs` (from [`kustomize_inputs`]).
pub fn inputs_touched(inputs: &[String], changed: &[String]) -> bool {
    changed.iter().any(|c| {
        let c = c.trim_start_matches("./");
        inputs.iter().any(|i| kustomize::covers(i, c))
    })
}
