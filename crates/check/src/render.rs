//! Rendering units with the render crate, as the controller does (never through a link
//! the export refused), and the destination namespace Argo CD gives namespaced objects
//! rendered without one (scope from `mooring_core::scope`).

use crate::error::CheckError;
use crate::units::Unit;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// A rendered unit.
pub(crate) struct Rendered {
    pub(crate) unit: Unit,
    pub(crate) objects: Vec<Value>,
}

pub(crate) enum RenderResult {
    Objects(Vec<Value>),
    External(String),
    Failed(String),
}

/// Render units on blocking threads, at most as many at once as there are cores.
pub(crate) async fn render_all(
    repo: &Path,
    units: Vec<Unit>,
    opts: &mooring_render::RenderOptions,
    refused: &[Refused],
    control_plane: &mooring_engine::project::ControlPlane,
) -> Result<Vec<(Unit, RenderResult)>, CheckError> {
    let refused = std::sync::Arc::new(refused.to_vec());
    let width = std::thread::available_parallelism().map_or(2, |n| n.get());
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(width));
    let mut tasks = Vec::new();
    for unit in units {
        let repo = repo.to_path_buf();
        let opts = opts.clone();
        let sem = sem.clone();
        let refused = refused.clone();
        let control_plane = control_plane.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            tokio::task::spawn_blocking(move || {
                let result = render_one(&repo, &unit, &opts, &refused, &control_plane);
                (unit, result)
            })
            .await
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(
            t.await
                .map_err(CheckError::RenderTask)?
                .map_err(CheckError::RenderTask)?,
        );
    }
    Ok(out)
}

pub(crate) fn render_one(
    repo: &Path,
    unit: &Unit,
    opts: &mooring_render::RenderOptions,
    refused: &[Refused],
    control_plane: &mooring_engine::project::ControlPlane,
) -> RenderResult {
    let started = Instant::now();
    let s = &unit.source;
    if s.chart.as_deref().is_some_and(|c| !c.is_empty()) {
        return RenderResult::External(format!(
            "chart {:?} from {} is not in this repository; not rendered",
            s.chart.as_deref().unwrap_or(""),
            s.repo_url
        ));
    }
    let path = s.path.as_deref().unwrap_or("");
    // A path that escapes (`..`, an absolute path, a symlink out) is the render crate's
    // to refuse with a clear error; one that merely does not exist here belongs to
    // another repository.
    let escapes = Path::new(path).components().any(|c| {
        matches!(
            c,
            std::path::Component::ParentDir | std::path::Component::RootDir
        )
    });
    // A source path through a link the export refused is that link's error.
    let normalized = path.trim_start_matches("./").trim_end_matches('/');
    if let Some(r) = refused.iter().find(|r| {
        !r.path.is_empty()
            && (normalized == r.path || normalized.starts_with(&format!("{}/", r.path)))
    }) {
        return RenderResult::Failed(format!("source path {path:?}: {}", r.message));
    }
    let in_repo = !path.is_empty() && (escapes || repo.join(path).exists());
    if !in_repo {
        return RenderResult::External(format!(
            "source path {path:?} of {} is not a directory of this repository; not rendered",
            s.repo_url
        ));
    }
    let mut source = s.clone();
    if let Some(helm) = source.helm.as_mut().and_then(Value::as_object_mut) {
        helm.entry("releaseName")
            .or_insert_with(|| Value::String(unit.name.clone()));
    }
    // Argo CD's parameter files (`.argocd-source.yaml`, `.argocd-source-<app>.yaml`); an
    // orphan overlay (no Application) reads only the shared one. The application's file
    // is named as Argo CD's repo-server names it (`namespace_name` outside the control
    // plane's namespace).
    let app_name = if unit.project.is_some() {
        control_plane.instance_name(unit.app_namespace.as_deref().unwrap_or(""), &unit.name)
    } else {
        String::new()
    };
    let source = match mooring_render::with_parameter_files(repo, &source, &app_name, opts) {
        Ok(s) => s,
        Err(e) => return RenderResult::Failed(e.to_string()),
    };
    let result = match mooring_render::render(repo, &source, opts) {
        Ok(objects) => RenderResult::Objects(objects),
        Err(e) => RenderResult::Failed(e.to_string()),
    };
    eprintln!(
        "check:   {} ({path}) {:.2}s",
        unit.name,
        started.elapsed().as_secs_f64()
    );
    result
}

/// Place every object where Argo CD (and the controller) would apply it
/// (`mooring_engine::state::place_namespace`), so findings name the namespace the object
/// lands in. Scope comes from CRDs among `crds` (`spec.scope`), the built-in table and
/// Gatekeeper constraints (cluster-scoped); anything else is taken as namespaced.
pub(crate) fn default_namespaces(
    objects: &mut [Value],
    namespace: &str,
    cluster_crds: &BTreeMap<(String, String), bool>,
) {
    for o in objects.iter_mut() {
        let namespaced = !is_cluster_scoped(o, cluster_crds);
        mooring_engine::state::place_namespace(o, namespace, namespaced);
    }
}

/// Whether an object is cluster-scoped without a cluster to ask: CRDs among
/// `cluster_crds`, then the built-in table (`mooring_core::scope`).
pub(crate) fn is_cluster_scoped(
    o: &Value,
    cluster_crds: &BTreeMap<(String, String), bool>,
) -> bool {
    let group = mooring_core::scope::api_group(o["apiVersion"].as_str().unwrap_or(""));
    let kind = o["kind"].as_str().unwrap_or("");
    !mooring_core::scope::namespaced_without_discovery(group, kind, cluster_crds)
}

/// An entry of REPO left out of the export, with why.
#[derive(Debug, Clone)]
pub(crate) struct Refused {
    /// Path relative to REPO.
    pub(crate) path: String,
    pub(crate) message: String,
    /// A file over the size limit (a warning, as for YAML files over the parser's limit),
    /// rather than a link or special file (a failure).
    pub(crate) too_large: bool,
}

/// The repository path an export refusal names.
pub(crate) fn refused_path(e: &mooring_source::SourceError) -> String {
    use mooring_source::SourceError as E;
    match e {
        E::SymlinkEscapes { link, .. }
        | E::SymlinkDangling { link, .. }
        | E::SymlinkLoop { link, .. } => link.clone(),
        E::UnsafeEntry { path } | E::InvalidPath { path, .. } | E::FileTooLarge { path, .. } => {
            path.clone()
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_follow_scope() {
        let mut objs = vec![
            serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "a"}}),
            serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}),
            serde_json::json!({"apiVersion": "ml.example.com/v1", "kind": "Pool", "metadata": {"name": "p"}}),
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "mine"}}),
        ];
        let cluster = [(("ml.example.com".to_string(), "Pool".to_string()), false)].into();
        default_namespaces(&mut objs, "dest", &cluster);
        let ns: Vec<Option<&str>> = objs
            .iter()
            .map(|o| o["metadata"]["namespace"].as_str())
            .collect();
        assert_eq!(ns, vec![Some("dest"), None, None, Some("mine")]);
    }
}
