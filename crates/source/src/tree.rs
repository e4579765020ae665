//! Reading a commit's tree without a work tree.
//!
//! Symbolic links are resolved against the commit's own tree, component by component, as
//! a file system would (so `a/link/..` means the parent of the link's *target*). Popping
//! above the repository root, an absolute target, a dangling target, a chain of more than
//! [`MAX_LINK_HOPS`] links, or a directory link that leads back to one of its own
//! ancestors are errors that name the link. Nothing outside the object store is read.

use std::collections::VecDeque;

use gix::bstr::ByteSlice as _;
use gix::object::tree::EntryKind;

use crate::error::describe;
use crate::url::redact_url;
use crate::{CommitId, Limits, SourceError, TreeFile};

/// Longest chain of symbolic links followed (Linux's limit).
pub(crate) const MAX_LINK_HOPS: u32 = 40;
/// Deepest directory nesting walked.
const MAX_DEPTH: usize = 256;
/// Longest symbolic-link target read.
const MAX_LINK_TARGET: u64 = 4096;

/// Where a path ends up in the tree.
enum Node {
    Tree(gix::ObjectId),
    Blob { id: gix::ObjectId, executable: bool },
    Submodule,
}

struct Walker<'a> {
    repo: &'a gix::Repository,
    url: &'a str,
    root: gix::ObjectId,
    limits: &'a Limits,
    /// The directory the caller asked for, for messages.
    base: String,
    files: usize,
    total: u64,
}

/// Call `emit` for every file under `path` at `commit`, in tree order.
pub(crate) fn walk(
    repo: &gix::Repository,
    url: &str,
    commit: &CommitId,
    path: &str,
    limits: &Limits,
    emit: &mut dyn FnMut(TreeFile) -> Result<(), SourceError>,
) -> Result<(), SourceError> {
    let components = split_path(path)?;
    let root = repo
        .find_commit(commit.to_oid())
        .and_then(|c| c.tree_id().map(|id| id.detach()))
        .map_err(|e| SourceError::CommitUnavailable {
            url: redact_url(url),
            commit: commit.to_string(),
            detail: describe(&e),
        })?;
    let mut walker = Walker {
        repo,
        url,
        root,
        limits,
        base: components.join("/"),
        files: 0,
        total: 0,
    };
    let path_shown = if components.is_empty() {
        ".".to_string()
    } else {
        components.join("/")
    };
    let mut hops = 0;
    let (canonical, node) = walker
        .resolve(components.clone(), true, &mut hops, &path_shown)?
        .ok_or_else(|| SourceError::PathNotFound {
            url: redact_url(url),
            commit: commit.to_string(),
            path: path_shown.clone(),
        })?;
    match node {
        Node::Tree(id) => walker.walk_dir(&canonical, id, "", 0, emit),
        Node::Blob { .. } | Node::Submodule => Err(SourceError::NotADirectory {
            url: redact_url(url),
            commit: commit.to_string(),
            path: path_shown,
        }),
    }
}

/// A caller's path to one file, normalised (`./a//b` → `a/b`), with the same refusals as
/// [`split_path`]; the root itself is refused.
pub(crate) fn file_path(path: &str) -> Result<String, SourceError> {
    let parts = split_path(path)?;
    if parts.is_empty() {
        return Err(SourceError::InvalidPath {
            path: path.to_string(),
            reason: "it names the repository root, not a file".to_string(),
        });
    }
    Ok(parts.join("/"))
}

/// Split a caller's path into components, refusing absolute paths and `..`.
fn split_path(path: &str) -> Result<Vec<String>, SourceError> {
    let refuse = |reason: &str| SourceError::InvalidPath {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    if path.starts_with('/') || path.starts_with('\\') {
        return Err(refuse("it is absolute"));
    }
    if path.contains('\0') {
        return Err(refuse("it contains a NUL byte"));
    }
    let mut out = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(refuse("it contains '..'")),
            p => out.push(p.to_string()),
        }
    }
    Ok(out)
}

/// Whether a tree entry's name could be a checkout hazard.
fn unsafe_name(name: &[u8]) -> bool {
    name.is_empty()
        || name == b"."
        || name == b".."
        || name.eq_ignore_ascii_case(b".git")
        || name.contains(&b'/')
        || name.contains(&b'\\')
        || name.contains(&0)
}

impl Walker<'_> {
    fn read_err(&self, what: String, e: &gix::Error) -> SourceError {
        SourceError::Read {
            url: redact_url(self.url),
            what,
            detail: describe(e),
        }
    }

    /// The entries of tree `id`, as (name, kind, id).
    fn entries(
        &self,
        id: gix::ObjectId,
        shown: &str,
    ) -> Result<Vec<(Vec<u8>, EntryKind, gix::ObjectId)>, SourceError> {
        let tree = self
            .repo
            .find_tree(id)
            .map_err(|e| self.read_err(format!("directory {shown:?}"), &e))?;
        let decoded = tree.decode().map_err(|e| SourceError::Read {
            url: redact_url(self.url),
            what: format!("directory {shown:?}"),
            detail: e.to_string(),
        })?;
        Ok(decoded
            .entries
            .iter()
            .map(|e| (e.filename.to_vec(), e.mode.kind(), e.oid.to_owned()))
            .collect())
    }

    /// Follow `components` from the root. With `follow_last`, a link in the last position
    /// is followed too. Returns the canonical path and what it names, or `None` when the
    /// path does not exist (and no link was involved).
    fn resolve(
        &self,
        components: Vec<String>,
        follow_last: bool,
        hops: &mut u32,
        link_for_errors: &str,
    ) -> Result<Option<(Vec<String>, Node)>, SourceError> {
        let mut queue: VecDeque<String> = components.into();
        // (name, tree id) of each directory we are inside, root excluded.
        let mut stack: Vec<(String, gix::ObjectId)> = Vec::new();
        let mut through_link: Option<(String, String)> = None;
        while let Some(part) = queue.pop_front() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    if stack.pop().is_none() {
                        let (link, target) = through_link
                            .clone()
                            .unwrap_or_else(|| (link_for_errors.to_string(), "..".to_string()));
                        return Err(SourceError::SymlinkEscapes { link, target });
                    }
                    continue;
                }
                _ => {}
            }
            let here = stack.last().map_or(self.root, |(_, id)| *id);
            let here_shown = join(stack.iter().map(|(n, _)| n.as_str()));
            let entries = self.entries(here, &here_shown)?;
            let Some((_, kind, id)) = entries
                .into_iter()
                .find(|(name, _, _)| name.as_slice() == part.as_bytes())
            else {
                return match through_link {
                    Some((link, target)) => Err(SourceError::SymlinkDangling { link, target }),
                    None => Ok(None),
                };
            };
            let last = queue.is_empty();
            let entry_path = if here_shown.is_empty() {
                part.clone()
            } else {
                format!("{here_shown}/{part}")
            };
            match kind {
                EntryKind::Tree => stack.push((part, id)),
                EntryKind::Link if !last || follow_last => {
                    *hops += 1;
                    if *hops > MAX_LINK_HOPS {
                        return Err(SourceError::SymlinkLoop {
                            link: entry_path,
                            max: MAX_LINK_HOPS,
                        });
                    }
                    let target = self.link_target(id, &entry_path)?;
                    if target.starts_with('/') {
                        return Err(SourceError::SymlinkEscapes {
                            link: entry_path,
                            target,
                        });
                    }
                    for (i, p) in target.split('/').enumerate() {
                        queue.insert(i, p.to_string());
                    }
                    through_link = Some((entry_path, target));
                }
                EntryKind::Link => {
                    let mut path: Vec<String> = stack.into_iter().map(|(n, _)| n).collect();
                    path.push(part);
                    return Ok(Some((
                        path,
                        Node::Blob {
                            id,
                            executable: false,
                        },
                    )));
                }
                EntryKind::Blob | EntryKind::BlobExecutable | EntryKind::Commit => {
                    if !last {
                        return match through_link {
                            Some((link, target)) => {
                                Err(SourceError::SymlinkDangling { link, target })
                            }
                            None => Ok(None),
                        };
                    }
                    let mut path: Vec<String> = stack.into_iter().map(|(n, _)| n).collect();
                    path.push(part);
                    let node = match kind {
                        EntryKind::Commit => Node::Submodule,
                        k => Node::Blob {
                            id,
                            executable: k == EntryKind::BlobExecutable,
                        },
                    };
                    return Ok(Some((path, node)));
                }
            }
        }
        let path: Vec<String> = stack.iter().map(|(n, _)| n.clone()).collect();
        let id = stack.last().map_or(self.root, |(_, id)| *id);
        Ok(Some((path, Node::Tree(id))))
    }

    fn link_target(&self, id: gix::ObjectId, link: &str) -> Result<String, SourceError> {
        let header = self
            .repo
            .find_header(id)
            .map_err(|e| self.read_err(format!("symbolic link {link:?}"), &e))?;
        if header.size() > MAX_LINK_TARGET {
            return Err(SourceError::SymlinkDangling {
                link: link.to_string(),
                target: format!("<{} bytes>", header.size()),
            });
        }
        let blob = self
            .repo
            .find_blob(id)
            .map_err(|e| self.read_err(format!("symbolic link {link:?}"), &e))?;
        Ok(blob.data.to_str_lossy().into_owned())
    }

    /// Emit every file in tree `id`, which lives at `canonical` in the repository and is
    /// shown to the caller as `rel`.
    fn walk_dir(
        &mut self,
        canonical: &[String],
        id: gix::ObjectId,
        rel: &str,
        depth: usize,
        emit: &mut dyn FnMut(TreeFile) -> Result<(), SourceError>,
    ) -> Result<(), SourceError> {
        let shown = join(canonical.iter().map(String::as_str));
        if depth > MAX_DEPTH {
            return Err(SourceError::UnsafeEntry {
                path: format!("{shown} (nested deeper than {MAX_DEPTH} directories)"),
            });
        }
        for (name, kind, entry_id) in self.entries(id, &shown)? {
            let name_text = name.to_str_lossy().into_owned();
            let repo_path = if shown.is_empty() {
                name_text.clone()
            } else {
                format!("{shown}/{name_text}")
            };
            if unsafe_name(&name) || std::str::from_utf8(&name).is_err() {
                return Err(SourceError::UnsafeEntry { path: repo_path });
            }
            let rel_path = if rel.is_empty() {
                name_text.clone()
            } else {
                format!("{rel}/{name_text}")
            };
            let mut child_canonical = canonical.to_vec();
            child_canonical.push(name_text);
            match kind {
                EntryKind::Tree => {
                    self.walk_dir(&child_canonical, entry_id, &rel_path, depth + 1, emit)?;
                }
                EntryKind::Blob | EntryKind::BlobExecutable => {
                    let file = self.read_file(
                        entry_id,
                        &repo_path,
                        rel_path,
                        kind == EntryKind::BlobExecutable,
                    )?;
                    emit(file)?;
                }
                EntryKind::Commit => {
                    tracing::debug!(path = %repo_path, "skipping submodule");
                }
                EntryKind::Link => {
                    let mut hops = 0;
                    let resolved =
                        self.resolve(child_canonical.clone(), true, &mut hops, &repo_path)?;
                    let Some((target_path, node)) = resolved else {
                        let target = self.link_target(entry_id, &repo_path)?;
                        return Err(SourceError::SymlinkDangling {
                            link: repo_path,
                            target,
                        });
                    };
                    match node {
                        Node::Blob { id, executable } => {
                            let file = self.read_file(id, &repo_path, rel_path, executable)?;
                            emit(file)?;
                        }
                        Node::Tree(tree_id) => {
                            // A link to one of its own ancestors would repeat forever.
                            if canonical.starts_with(&target_path) {
                                return Err(SourceError::SymlinkLoop {
                                    link: repo_path,
                                    max: MAX_LINK_HOPS,
                                });
                            }
                            self.walk_dir(&target_path, tree_id, &rel_path, depth + 1, emit)?;
                        }
                        Node::Submodule => {
                            tracing::debug!(path = %repo_path, "skipping link to a submodule");
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn read_file(
        &mut self,
        id: gix::ObjectId,
        repo_path: &str,
        rel_path: String,
        executable: bool,
    ) -> Result<TreeFile, SourceError> {
        let header = self
            .repo
            .find_header(id)
            .map_err(|e| self.read_err(format!("file {repo_path:?}"), &e))?;
        let size = header.size();
        if size > self.limits.max_file_bytes {
            return Err(SourceError::FileTooLarge {
                path: repo_path.to_string(),
                size,
                limit: self.limits.max_file_bytes,
            });
        }
        if self.files >= self.limits.max_files {
            return Err(SourceError::TooManyFiles {
                path: self.base_shown(),
                limit: self.limits.max_files,
            });
        }
        if self.total.saturating_add(size) > self.limits.max_total_bytes {
            return Err(SourceError::TotalTooLarge {
                path: self.base_shown(),
                at: repo_path.to_string(),
                limit: self.limits.max_total_bytes,
            });
        }
        self.files += 1;
        self.total += size;
        let blob = self
            .repo
            .find_blob(id)
            .map_err(|e| self.read_err(format!("file {repo_path:?}"), &e))?;
        Ok(TreeFile {
            path: rel_path,
            data: blob.detach().data,
            executable,
        })
    }

    fn base_shown(&self) -> String {
        if self.base.is_empty() {
            ".".to_string()
        } else {
            self.base.clone()
        }
    }
}

fn join<'a>(parts: impl Iterator<Item = &'a str>) -> String {
    parts.collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_path_refuses_escapes() {
        assert!(split_path("/etc").is_err());
        assert!(split_path("apps/../..").is_err());
        assert!(split_path("..").is_err());
        assert_eq!(split_path("./apps//x/").expect("ok"), vec!["apps", "x"]);
        assert!(split_path("").expect("ok").is_empty());
    }

    #[test]
    fn unsafe_names() {
        for bad in [&b".."[..], b".", b".GIT", b"a/b", b""] {
            assert!(unsafe_name(bad), "{bad:?}");
        }
        assert!(!unsafe_name(b".gitignore"));
    }
}
