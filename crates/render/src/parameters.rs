//! Argo CD's parameter files: `.argocd-source.yaml` and `.argocd-source-<app>.yaml` in
//! the source path, merged over `spec.source` before rendering.
//!
//! Argo CD's repo-server (`mergeSourceParameters`) reads the shared file, then the
//! application's own, and applies each as a JSON merge patch (RFC 7386) to the source;
//! repoURL, path, targetRevision and chart cannot be changed that way. Argo CD Image
//! Updater's Git write-back writes the per-application file (`kustomize.images`,
//! `helm.parameters`), so an application's image follows a commit without touching its
//! manifests. Reading the same files makes Mooring render what Argo CD renders.
//!
//! Stricter than Argo CD, because the files are tenant input in the tree: the YAML goes
//! through the core's safe parser (alias budget) under the render's file-size limit; a
//! file that is a symbolic link out of the repository is refused; the top-level keys are
//! limited to the source-type options (`kustomize`, `helm`, `directory`, `plugin`); any
//! other key is an error naming the file and the key, where Argo CD would quietly keep
//! the protected fields. Another application's file is never read: the name is built from
//! the application's own name. A directory with the file's name is skipped, as in Argo CD.

use std::path::Path;

use mooring_core::app::ApplicationSource;
use serde_json::Value;

use crate::paths::{inside_root, read_capped, repo_relative, resolve_app_dir};
use crate::{RenderError, RenderOptions};

/// The parameter file every application rendering this path reads.
pub const SHARED_PARAMETER_FILE: &str = ".argocd-source.yaml";

/// Keys a parameter file may set.
const ALLOWED_KEYS: &[&str] = &["kustomize", "helm", "directory", "plugin"];

/// `.argocd-source-<app>.yaml`, the application's own parameter file.
pub fn app_parameter_file(app_name: &str) -> String {
    format!(".argocd-source-{app_name}.yaml")
}

/// `source` with the parameter files of its path merged in, as Argo CD does before
/// generating manifests: first [`SHARED_PARAMETER_FILE`], then (when `app_name` is not
/// empty) [`app_parameter_file`]. A source whose path is not in `root` (a Helm
/// repository chart) is returned unchanged.
pub fn with_parameter_files(
    root: &Path,
    source: &ApplicationSource,
    app_name: &str,
    opts: &RenderOptions,
) -> Result<ApplicationSource, RenderError> {
    if source.chart.as_deref().is_some_and(|c| !c.is_empty()) {
        return Ok(source.clone());
    }
    let invalid_name = app_name.is_empty()
        || app_name.len() > 253
        || app_name.contains(['/', '\\', '\0'])
        || app_name.starts_with('.');
    if !app_name.is_empty() && invalid_name {
        return Err(RenderError::InvalidOption {
            option: "application name".into(),
            value: app_name.into(),
            reason: "not usable in a parameter file name".into(),
        });
    }
    let app = resolve_app_dir(root, source.path.as_deref())?;
    let mut names = vec![SHARED_PARAMETER_FILE.to_string()];
    if !app_name.is_empty() {
        names.push(app_parameter_file(app_name));
    }
    let mut merged = serde_json::to_value(source).map_err(|e| RenderError::InvalidSource {
        source_label: "spec.source".into(),
        reason: e.to_string(),
    })?;
    let mut touched = false;
    for name in names {
        let path = app.dir.join(&name);
        let display = repo_relative(&app.root, &path);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(RenderError::io(display, e)),
        };
        let real = if meta.file_type().is_symlink() {
            if !path.exists() {
                return Err(RenderError::ParameterFile {
                    file: display,
                    reason: "a symbolic link to nothing".into(),
                });
            }
            inside_root(&app.root, &path, &display)?
        } else {
            path.clone()
        };
        if real.is_dir() {
            continue;
        }
        let text = read_capped(&real, &display, opts.max_file_bytes)?;
        let patch = mooring_core::yaml::parse_one(&text).map_err(|source| RenderError::Yaml {
            file: display.clone(),
            source,
        })?;
        let patch = match patch {
            Value::Null => continue,
            Value::Object(m) => m,
            other => {
                return Err(RenderError::ParameterFile {
                    file: display,
                    reason: format!("not a mapping of source options but {other}"),
                });
            }
        };
        if let Some(k) = patch.keys().find(|k| !ALLOWED_KEYS.contains(&k.as_str())) {
            return Err(RenderError::ParameterFile {
                file: display,
                reason: format!(
                    "key {k:?} cannot be set here (only {})",
                    ALLOWED_KEYS.join(", ")
                ),
            });
        }
        mooring_core::merge_patch::apply(&mut merged, &Value::Object(patch));
        // Check each step, so the error names the file that broke the source.
        serde_json::from_value::<ApplicationSource>(merged.clone()).map_err(|e| {
            RenderError::ParameterFile {
                file: display.clone(),
                reason: e.to_string(),
            }
        })?;
        touched = true;
    }
    if !touched {
        return Ok(source.clone());
    }
    let mut out: ApplicationSource =
        serde_json::from_value(merged).map_err(|e| RenderError::InvalidSource {
            source_label: "spec.source".into(),
            reason: e.to_string(),
        })?;
    // What Argo CD keeps from the Application whatever the files say.
    out.repo_url = source.repo_url.clone();
    out.path = source.path.clone();
    out.target_revision = source.target_revision.clone();
    out.chart = source.chart.clone();
    out.ref_ = source.ref_.clone();
    out.name = source.name.clone();
    Ok(out)
}
