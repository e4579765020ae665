//! Exporting a directory of the local file system (a checkout, possibly not a Git
//! repository) the way [`crate::RepoCache::export`] exports a commit, so tools that follow
//! symbolic links on their own (Helm's `.Files.Get` and template loading, kustomize) only
//! ever see files of the repository.
//!
//! `mooring check` renders a working tree the controller has never seen; rendering it in
//! place would let a chart's symlink to `~/.ssh/id_rsa` or `/etc/shadow` be printed into
//! CI output. Here every symbolic link is resolved on the file system and must land inside
//! the directory; an absolute target (as in a commit's tree), a target outside, a dangling
//! target, a loop, or a directory link that leads back to one of its own ancestors is
//! refused. A refused link is reported (with the same [`SourceError`] variants as a
//! commit's tree) and left out of the export, and the rest is exported, so one bad link
//! does not hide every other finding of a CI run. Links that stay inside are written as
//! copies of what they point to, so the export holds no links at all. Special files
//! (FIFOs, sockets, devices) are refused too. [`crate::Limits`] applies as for a commit,
//! except that a single file over the size limit is reported and left out rather than
//! ending the export (the total and the number of files still end it).

use crate::cache::write_exported;
use crate::{Limits, SourceError, TreeFile};
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// Deepest directory nesting walked (as for a commit's tree).
const MAX_DEPTH: usize = 256;

/// Copy the files of `src` into `dest` (an existing, empty, private directory), skipping
/// the top-level entries for which `skip_top` is true (e.g. `.git`). Returns the entries
/// that were refused and left out (links, special files, files over the size limit); the
/// total and file-count limits and I/O trouble are errors.
pub fn export_dir(
    src: &Path,
    dest: &Path,
    limits: &Limits,
    skip_top: &dyn Fn(&str) -> bool,
) -> Result<Vec<SourceError>, SourceError> {
    let root = src.canonicalize().map_err(|source| SourceError::Io {
        action: "reading the directory",
        path: src.to_path_buf(),
        source,
    })?;
    let mut walker = DirWalker {
        root: root.clone(),
        dest,
        limits,
        files: 0,
        total: 0,
        refused: Vec::new(),
    };
    walker.walk(&root, "", &mut vec![root.clone()], skip_top)?;
    Ok(walker.refused)
}

struct DirWalker<'a> {
    root: PathBuf,
    dest: &'a Path,
    limits: &'a Limits,
    files: usize,
    total: u64,
    refused: Vec<SourceError>,
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> SourceError {
    let path = path.to_path_buf();
    move |source| SourceError::Io {
        action,
        path,
        source,
    }
}

impl DirWalker<'_> {
    /// Export directory `dir` (a real path inside the root) as `rel`; `ancestors` are the
    /// real paths of the directories being walked, for loop detection.
    fn walk(
        &mut self,
        dir: &Path,
        rel: &str,
        ancestors: &mut Vec<PathBuf>,
        skip_top: &dyn Fn(&str) -> bool,
    ) -> Result<(), SourceError> {
        if ancestors.len() > MAX_DEPTH {
            self.refused.push(SourceError::InvalidPath {
                path: rel.to_string(),
                reason: format!("directories nested deeper than {MAX_DEPTH} levels"),
            });
            return Ok(());
        }
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(io_err("reading the directory", dir))?
            .collect::<Result<_, _>>()
            .map_err(io_err("reading the directory", dir))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let entry_rel = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if rel.is_empty() && skip_top(&name) {
                continue;
            }
            let path = entry.path();
            let meta =
                std::fs::symlink_metadata(&path).map_err(io_err("reading the directory", &path))?;
            let real = if meta.file_type().is_symlink() {
                match self.resolve_link(&path, &entry_rel, ancestors) {
                    Ok(real) => real,
                    Err(refused) => {
                        self.refused.push(refused);
                        continue;
                    }
                }
            } else {
                path
            };
            let meta = std::fs::metadata(&real).map_err(io_err("reading the directory", &real))?;
            if meta.is_dir() {
                ancestors.push(real.clone());
                let walked = self.walk(&real, &entry_rel, ancestors, skip_top);
                ancestors.pop();
                walked?;
            } else if meta.is_file() {
                self.copy_file(&real, &entry_rel, &meta)?;
            } else {
                self.refused
                    .push(SourceError::UnsafeEntry { path: entry_rel });
            }
        }
        Ok(())
    }

    /// Where the link at `path` leads, if it may be followed.
    fn resolve_link(
        &self,
        path: &Path,
        rel: &str,
        ancestors: &[PathBuf],
    ) -> Result<PathBuf, SourceError> {
        let target = std::fs::read_link(path)
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_default();
        let escapes = || SourceError::SymlinkEscapes {
            link: rel.to_string(),
            target: target.clone(),
        };
        if Path::new(&target).is_absolute() {
            return Err(escapes());
        }
        let real = match path.canonicalize() {
            Ok(r) => r,
            Err(e) if e.raw_os_error() == Some(40) => {
                // ELOOP
                return Err(SourceError::SymlinkLoop {
                    link: rel.to_string(),
                    max: crate::tree::MAX_LINK_HOPS,
                });
            }
            Err(_) => {
                return Err(SourceError::SymlinkDangling {
                    link: rel.to_string(),
                    target,
                })
            }
        };
        if !real.starts_with(&self.root) {
            return Err(escapes());
        }
        if real.is_dir() && ancestors.iter().any(|a| a.starts_with(&real)) {
            return Err(SourceError::SymlinkLoop {
                link: rel.to_string(),
                max: crate::tree::MAX_LINK_HOPS,
            });
        }
        Ok(real)
    }

    fn copy_file(
        &mut self,
        real: &Path,
        rel: &str,
        meta: &std::fs::Metadata,
    ) -> Result<(), SourceError> {
        let limit = self.limits.max_file_bytes;
        if meta.len() > limit {
            self.refused.push(SourceError::FileTooLarge {
                path: rel.to_string(),
                size: meta.len(),
                limit,
            });
            return Ok(());
        }
        self.files += 1;
        if self.files > self.limits.max_files {
            return Err(SourceError::TooManyFiles {
                path: ".".to_string(),
                limit: self.limits.max_files,
            });
        }
        let mut data = Vec::new();
        std::fs::File::open(real)
            .and_then(|f| f.take(limit + 1).read_to_end(&mut data))
            .map_err(io_err("reading a file to export", real))?;
        let size = data.len() as u64;
        if size > limit {
            self.refused.push(SourceError::FileTooLarge {
                path: rel.to_string(),
                size,
                limit,
            });
            return Ok(());
        }
        self.total += size;
        if self.total > self.limits.max_total_bytes {
            return Err(SourceError::TotalTooLarge {
                path: ".".to_string(),
                at: rel.to_string(),
                limit: self.limits.max_total_bytes,
            });
        }
        #[cfg(unix)]
        let executable = {
            use std::os::unix::fs::PermissionsExt as _;
            meta.permissions().mode() & 0o111 != 0
        };
        #[cfg(not(unix))]
        let executable = false;
        write_exported(
            self.dest,
            &TreeFile {
                path: rel.to_string(),
                data,
                executable,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_inside_are_copied_and_links_out_are_refused() {
        let outside = tempfile::tempdir().expect("tmp");
        std::fs::write(outside.path().join("secret"), "MARKER").expect("write");
        let src = tempfile::tempdir().expect("tmp");
        let s = src.path();
        std::fs::create_dir_all(s.join("chart/templates")).expect("mkdir");
        std::fs::create_dir_all(s.join(".git")).expect("mkdir");
        std::fs::write(s.join(".git/config"), "x").expect("write");
        std::fs::write(s.join("chart/values.yaml"), "a: 1").expect("write");
        symlink("../values.yaml", s.join("chart/templates/values-link.yaml")).expect("link");
        symlink(outside.path().join("secret"), s.join("chart/abs")).expect("link");
        symlink(
            "../../../../../../../../../../..".to_string()
                + &outside.path().join("secret").display().to_string(),
            s.join("chart/rel"),
        )
        .expect("link");
        symlink("nothing-here", s.join("chart/dangling")).expect("link");
        symlink("..", s.join("chart/templates/up")).expect("link");
        symlink("loop-b", s.join("loop-a")).expect("link");
        symlink("loop-a", s.join("loop-b")).expect("link");
        let dest = tempfile::tempdir().expect("tmp");
        let refused =
            export_dir(s, dest.path(), &Limits::default(), &|n| n == ".git").expect("export");
        let d = dest.path();
        assert_eq!(
            std::fs::read_to_string(d.join("chart/templates/values-link.yaml")).expect("copied"),
            "a: 1"
        );
        assert!(
            !std::fs::symlink_metadata(d.join("chart/templates/values-link.yaml"))
                .expect("meta")
                .file_type()
                .is_symlink()
        );
        assert!(!d.join(".git").exists());
        let text: Vec<String> = refused.iter().map(ToString::to_string).collect();
        for (link, what) in [
            ("chart/abs", "points outside"),
            ("chart/rel", "points outside"),
            ("chart/dangling", "does not exist"),
            ("chart/templates/up", "loops"),
            ("loop-a", "loops"),
            ("loop-b", "loops"),
        ] {
            assert!(
                text.iter()
                    .any(|t| t.contains(&format!("{link:?}")) && t.contains(what)),
                "{link}: {text:?}"
            );
            assert!(!d.join(link).exists(), "{link} is not exported");
        }
        assert!(!text.iter().any(|t| t.contains("MARKER")));
    }
}
