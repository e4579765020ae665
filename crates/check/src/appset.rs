//! ApplicationSet generation from a directory: the [`GeneratorInputs`] of a checkout, so
//! `mooring check` (and `mooring appset generate`) expand the Applications a set would
//! generate from this very repository, without a cluster or a fetch.

use mooring_core::appset::ApplicationSet;
use mooring_engine::appset::{ClusterInfo, GeneratorInputs};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Most files read from the local checkout.
const MAX_FILES: usize = 50_000;

/// Generator inputs read from a local checkout: the clusters given, and the files under
/// `root` for git generators (whatever their `repoURL` and revision).
pub struct LocalInputs {
    pub clusters: Vec<ClusterInfo>,
    pub root: PathBuf,
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let ft = entry.file_type().map_err(|e| e.to_string())?;
        let path = entry.path();
        if ft.is_dir() {
            walk(root, &path, out)?;
        } else if ft.is_file() {
            let rel = path.strip_prefix(root).map_err(|e| e.to_string())?;
            out.push(rel.to_string_lossy().replace('\\', "/"));
            if out.len() > MAX_FILES {
                return Err(format!(
                    "more than {MAX_FILES} files under {}",
                    root.display()
                ));
            }
        }
    }
    Ok(())
}

impl GeneratorInputs for LocalInputs {
    fn clusters(&self) -> Result<Vec<ClusterInfo>, String> {
        Ok(self.clusters.clone())
    }
    fn git_files(&self, _repo_url: &str, _revision: &str) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        walk(&self.root, &self.root, &mut out)?;
        out.sort();
        Ok(out)
    }
    fn git_read(&self, _repo_url: &str, _revision: &str, path: &str) -> Result<Vec<u8>, String> {
        // Paths come from `git_files` (no `..`, no links), but check anyway.
        if path.split('/').any(|s| s == ".." || s.is_empty()) {
            return Err(format!("refusing path {path:?}"));
        }
        let p = self.root.join(path);
        let meta = std::fs::symlink_metadata(&p).map_err(|e| format!("{path}: {e}"))?;
        if !meta.is_file() {
            return Err(format!("{path} is not a regular file"));
        }
        if meta.len() > mooring_engine::appset::MAX_GIT_FILE_BYTES as u64 {
            return Err(format!("{path} is {} bytes, over the limit", meta.len()));
        }
        std::fs::read(&p).map_err(|e| format!("{path}: {e}"))
    }
}

/// Generate one ApplicationSet document against a local checkout, with no registered
/// clusters (`mooring check`: a clusters generator then yields only what Argo CD's
/// local-cluster rule gives).
pub(crate) fn generate_local(doc: &Value, root: &Path) -> Result<Vec<Value>, String> {
    let set: ApplicationSet = serde_json::from_value(doc.clone())
        .map_err(|e| format!("not a valid ApplicationSet: {e}"))?;
    let inputs = LocalInputs {
        clusters: vec![],
        root: root.to_path_buf(),
    };
    mooring_engine::appset::generate(&set, &inputs).map_err(|e| e.to_string())
}
