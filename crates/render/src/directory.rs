//! Plain directories of manifests (Argo CD's `Directory` source type).

use crate::manifests::Collector;
use crate::paths::{inside_root, read_capped, repo_relative, AppDir};
use crate::{RenderError, RenderOptions, WRAPPER_PREFIX};
use globset::{Glob, GlobMatcher};
use mooring_core::app::DirectorySource;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Compile an Argo CD include/exclude pattern. Argo CD uses gobwas/glob without
/// separators, so `*` also matches `/` (`*.yaml` matches `sub/x.yaml`) and `{a,b}`
/// alternates.
fn matcher(option: &str, pattern: &str) -> Result<Option<GlobMatcher>, RenderError> {
    if pattern.is_empty() {
        return Ok(None);
    }
    let glob = globset::GlobBuilder::new(pattern)
        .literal_separator(false)
        .backslash_escape(true)
        .build()
        .map_err(|e| RenderError::InvalidOption {
            option: option.into(),
            value: pattern.into(),
            reason: format!("not a valid glob: {}", e.kind()),
        })?;
    Ok(Some(Glob::compile_matcher(&glob)))
}

struct Walk<'a> {
    app: &'a AppDir,
    recurse: bool,
    include: Option<GlobMatcher>,
    exclude: Option<GlobMatcher>,
    opts: &'a RenderOptions,
    total: u64,
    collector: Collector,
}

pub(crate) fn render(
    app: &AppDir,
    dir: Option<&DirectorySource>,
    opts: &RenderOptions,
) -> Result<Vec<Value>, RenderError> {
    let default = DirectorySource::default();
    let dir = dir.unwrap_or(&default);
    let mut walk = Walk {
        app,
        recurse: dir.recurse,
        include: matcher(
            "source.directory.include",
            dir.include.as_deref().unwrap_or(""),
        )?,
        exclude: matcher(
            "source.directory.exclude",
            dir.exclude.as_deref().unwrap_or(""),
        )?,
        opts,
        total: 0,
        collector: Collector::new(),
    };
    walk.dir(&app.dir, Path::new(""))?;
    Ok(walk.collector.finish())
}

impl Walk<'_> {
    /// Visit `path` (whose path relative to the application directory is `rel`), in
    /// lexical order like Go's `filepath.Walk`.
    fn dir(&mut self, path: &Path, rel: &Path) -> Result<(), RenderError> {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .map_err(|e| RenderError::io(path, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| RenderError::io(path, e))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name();
            let name_str = name.to_string_lossy().into_owned();
            let child = entry.path();
            let child_rel = rel.join(&name);
            let ft = entry.file_type().map_err(|e| RenderError::io(&child, e))?;
            if ft.is_dir() {
                if self.recurse && name_str != ".git" && !name_str.starts_with(WRAPPER_PREFIX) {
                    self.dir(&child, &child_rel)?;
                }
                continue;
            }
            if !is_manifest_name(&name_str) {
                continue;
            }
            let rel_str = child_rel.to_string_lossy();
            if self.exclude.as_ref().is_some_and(|m| m.is_match(&*rel_str)) {
                continue;
            }
            if self
                .include
                .as_ref()
                .is_some_and(|m| !m.is_match(&*rel_str))
            {
                continue;
            }
            let display = repo_relative(&self.app.root, &self.app.dir.join(&child_rel));
            let real: PathBuf = if ft.is_symlink() {
                let target = inside_root(&self.app.root, &child, &format!("symlink {display}"))?;
                if target.is_dir() {
                    // Go's Walk does not follow symlinked directories; neither do we.
                    continue;
                }
                target
            } else {
                child
            };
            if name_str.ends_with(".jsonnet") {
                return Err(RenderError::Unsupported {
                    what: format!("jsonnet ({display}); exclude it with source.directory.exclude"),
                });
            }
            self.file(&real, &display, &name_str)?;
        }
        Ok(())
    }

    fn file(&mut self, path: &Path, display: &str, name: &str) -> Result<(), RenderError> {
        let text = read_capped(path, display, self.opts.max_file_bytes)?;
        self.total += text.len() as u64;
        if self.total > self.opts.max_output_bytes {
            return Err(RenderError::OutputTooLarge {
                what: format!("directory {}", repo_relative(&self.app.root, &self.app.dir)),
                limit: self.opts.max_output_bytes,
            });
        }
        if name.ends_with(".json") {
            let v: Value = serde_json::from_str(&text).map_err(|e| RenderError::Json {
                file: display.into(),
                message: e.to_string(),
            })?;
            match v {
                Value::Array(items) => {
                    for (i, item) in items.into_iter().enumerate() {
                        self.collector.add(display, i, item)?;
                    }
                }
                v => self.collector.add(display, 0, v)?,
            }
            return Ok(());
        }
        let docs = match mooring_core::yaml::parse_all(&text) {
            Ok(docs) => docs,
            Err(e) => {
                // Argo CD ignores YAML files that fail to parse unless they look like a
                // manifest (mention apiVersion, kind and metadata): e.g. a Helm-style
                // template or a CI config next to the manifests.
                let too_large = matches!(e, mooring_core::yaml::YamlError::TooLarge { .. });
                if too_large || looks_like_manifest(&text) {
                    return Err(RenderError::Yaml {
                        file: display.into(),
                        source: e,
                    });
                }
                let file = display.to_string();
                tracing::debug!(%file, error = %e, "skipping unparsable non-manifest YAML");
                return Ok(());
            }
        };
        for (i, doc) in docs.into_iter().enumerate() {
            self.collector.add(display, i, doc)?;
        }
        Ok(())
    }
}

/// Argo CD's `^.*\.(yaml|yml|json|jsonnet)$`.
fn is_manifest_name(name: &str) -> bool {
    [".yaml", ".yml", ".json", ".jsonnet"]
        .iter()
        .any(|ext| name.len() > ext.len() && name.ends_with(ext))
}

fn looks_like_manifest(text: &str) -> bool {
    text.contains("apiVersion:") && text.contains("kind:") && text.contains("metadata:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argo_globs() {
        let m = matcher("include", "{*.yml,*.yaml}")
            .expect("valid")
            .expect("some");
        assert!(m.is_match("a.yml"));
        assert!(m.is_match("sub/a.yaml"));
        assert!(!m.is_match("a.json"));
        let m = matcher("include", "some-dir/*")
            .expect("valid")
            .expect("some");
        assert!(m.is_match("some-dir/a.yaml"));
        assert!(!m.is_match("other/a.yaml"));
        assert!(matcher("include", "").expect("valid").is_none());
        assert!(matcher("include", "{a,").is_err());
    }
}
