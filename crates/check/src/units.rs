//! Discovery: the files of the repository, the Applications in them and the units to
//! render (one per source), and each unit's environment.

use mooring_core::app::Application;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// One Application to render.
#[derive(Debug, Clone)]
pub(crate) struct Unit {
    /// The Application's name (or the overlay path for an orphan overlay).
    pub(crate) name: String,
    /// Where it was defined (repository-relative file), if in a file.
    pub(crate) file: Option<String>,
    pub(crate) environment: Option<String>,
    /// `spec.destination.namespace`, given to namespaced objects rendered without one.
    pub(crate) namespace: Option<String>,
    /// The Application's own `metadata.namespace` (`None`: the control plane's, or for an
    /// app of an app-of-apps, the parent's destination namespace).
    pub(crate) app_namespace: Option<String>,
    pub(crate) source: mooring_core::app::ApplicationSource,
    /// `spec.project` (`None` for an overlay no Application renders) and
    /// `spec.destination`, for the project rules.
    pub(crate) project: Option<String>,
    pub(crate) destination: mooring_core::app::ApplicationDestination,
}

/// Every file under `repo` (hidden directories and Helm `templates/` skipped; symlinks not
/// followed), sorted.
pub(crate) fn walk(repo: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![repo.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let is_chart = dir.join("Chart.yaml").is_file();
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let Ok(ty) = e.file_type() else { continue };
            if ty.is_dir() {
                if name.starts_with('.') || (is_chart && name == "templates") {
                    continue;
                }
                stack.push(e.path());
            } else if ty.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

pub(crate) fn is_yaml(p: &Path) -> bool {
    p.extension()
        .and_then(|x| x.to_str())
        .is_some_and(|x| x == "yaml" || x == "yml")
}

pub(crate) fn rel(repo: &Path, p: &Path) -> String {
    let r = p.strip_prefix(repo).unwrap_or(p);
    let s = r.to_string_lossy().replace('\\', "/");
    if s.is_empty() {
        ".".into()
    } else {
        s
    }
}

pub(crate) fn looks_like_manifest(text: &str) -> bool {
    text.contains("apiVersion:") && text.contains("kind:") && text.contains("metadata:")
}

pub(crate) fn is_application(v: &Value) -> bool {
    v["kind"] == "Application"
        && v["apiVersion"]
            .as_str()
            .is_some_and(|a| a.starts_with("argoproj.io/"))
}

pub(crate) fn is_applicationset(v: &Value) -> bool {
    v["kind"] == "ApplicationSet"
        && v["apiVersion"]
            .as_str()
            .is_some_and(|a| a.starts_with("argoproj.io/"))
}

/// The environment after `marker/` in a `/`-separated path.
pub(crate) fn env_after(path: &str, marker: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').collect();
    parts
        .windows(2)
        .find(|w| w[0] == marker)
        .map(|w| w[1].to_string())
        .filter(|e| !e.is_empty() && !e.ends_with(".yaml") && !e.ends_with(".yml"))
}

/// The units of an Application: one per source (Argo CD multi-source Applications render
/// every source with a path; `ref`-only sources, which carry value files, have none).
pub(crate) fn units_of(doc: &Value, file: Option<&str>) -> Result<Vec<Unit>, String> {
    let app: Application = serde_json::from_value(doc.clone()).map_err(|e| {
        format!(
            "Application {}: {e}",
            doc["metadata"]["name"].as_str().unwrap_or("?")
        )
    })?;
    // `spec.sources` wins over `spec.source`, as in Argo CD.
    let sources: Vec<_> = app.sources().to_vec();
    if sources.is_empty() {
        return Err(format!("Application {} has no source", app.name()));
    }
    let multi = sources.len() > 1;
    let mut units = Vec::new();
    for (i, source) in sources.into_iter().enumerate() {
        if multi && source.path.is_none() && source.chart.is_none() {
            continue;
        }
        let environment = file
            .and_then(|f| env_after(f, "environments"))
            .or_else(|| {
                let p = source.path.as_deref()?;
                env_after(p, "overlays").or_else(|| env_after(p, "environments"))
            })
            .or_else(|| {
                app.metadata["labels"]["environment"]
                    .as_str()
                    .map(str::to_string)
            });
        let app_namespace = app
            .metadata
            .get("namespace")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(str::to_string);
        units.push(Unit {
            app_namespace,
            name: if multi {
                format!("{} (source {})", app.name(), i + 1)
            } else {
                app.name().to_string()
            },
            file: file.map(str::to_string),
            environment,
            namespace: app
                .spec
                .destination
                .namespace
                .clone()
                .filter(|n| !n.is_empty()),
            source,
            project: Some(app.spec.project.clone()),
            destination: app.spec.destination.clone(),
        });
    }
    Ok(units)
}

pub(crate) fn unit_key(u: &Unit) -> String {
    format!(
        "{}\u{0}{}",
        u.name,
        serde_json::to_string(&u.source).unwrap_or_default()
    )
}

pub(crate) fn wanted(u: &Unit, envs: &[String]) -> bool {
    envs.is_empty() || u.environment.as_ref().is_none_or(|e| envs.contains(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environments_from_paths() {
        for (path, marker, want) in [
            (
                "environments/staging/web.yaml",
                "environments",
                Some("staging"),
            ),
            (
                "clusters/eu/environments/prod/a.yaml",
                "environments",
                Some("prod"),
            ),
            ("environments/web.yaml", "environments", None),
            ("apps/web/overlays/dev", "overlays", Some("dev")),
            ("apps/web/overlays", "overlays", None),
            ("apps/web/base", "overlays", None),
        ] {
            assert_eq!(env_after(path, marker).as_deref(), want, "{path}");
        }
    }
}
