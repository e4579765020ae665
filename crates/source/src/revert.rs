//! `git revert` without a work tree, for `mooring rollback git`.
//!
//! # Why in memory
//!
//! A rollback must either produce one whole commit or nothing: a revert that conflicts
//! half-way must not leave a branch, a commit or stray files behind. So every step runs
//! on the cached bare repository with gix's object memory switched on
//! ([`gix::Repository::with_object_memory`]): the 3-way tree merges, the edited files and
//! the commit exist only in memory until [`RevertRequest::write`] asks for them to be
//! stored, and only after the whole revert succeeded. A conflict stops with the
//! conflicting paths named ([`SourceError::RevertConflict`]).
//!
//! # What a revert is
//!
//! Reverting commit `C` onto the current tree `H` is the 3-way merge with base `C`, ours
//! `H` and theirs `C^` (its first parent, `git revert -m 1` for a merge commit; the empty
//! tree for a root commit) — exactly what `git revert` computes. Several commits are
//! reverted newest first, each on the result of the previous one, and the result is **one**
//! commit whose parent is the branch head (`git revert --no-commit A..B` then one commit,
//! as the seed's runbook does). A commit is always reverted whole; choosing *which*
//! commits to revert (those touching an application's render inputs) is the caller's.

use gix::bstr::{BStr, ByteSlice as _};

use crate::cache::{diff_paths, open_existing};
use crate::error::describe;
use crate::url::{redact_url, validate_url};
use crate::{CommitId, RepoCache, SourceError};

/// The longest first-parent history walked to find the target of a rollback.
pub const MAX_RANGE: usize = 10_000;

/// One commit of a first-parent history.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CommitInfo {
    /// The commit.
    pub id: CommitId,
    /// The first line of its message.
    pub summary: String,
    /// The files it changed against its first parent (sorted; a rename lists both paths).
    pub changed: Vec<String>,
}

/// A name and an e-mail address for a commit's author or committer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The name, as `user.name`.
    pub name: String,
    /// The e-mail address, as `user.email`.
    pub email: String,
}

/// Turns a file's content into its new content; the error names what could not be edited.
pub type EditFn<'a> = &'a dyn Fn(&[u8]) -> Result<Vec<u8>, String>;

/// A change of one existing file applied on top of the reverted tree, in the same commit
/// (the Application manifest whose `targetRevision` follows the rollback).
pub struct FileEdit<'a> {
    /// Repository-relative path of the file.
    pub path: String,
    /// Turns the file's content (after the reverts) into its new content; the error is a
    /// message naming what could not be edited.
    pub edit: EditFn<'a>,
}

/// What [`RepoCache::revert`] does.
pub struct RevertRequest<'a> {
    /// The branch head the revert commit goes on (its only parent).
    pub head: CommitId,
    /// The commits to revert, in the order given (newest first, as `git revert` does for
    /// a range). Each must be in the cache.
    pub commits: Vec<CommitId>,
    /// Files edited after the reverts, in the same commit.
    pub edits: Vec<FileEdit<'a>>,
    /// The commit message.
    pub message: String,
    /// The commit's author.
    pub author: Identity,
    /// The commit's committer.
    pub committer: Identity,
    /// The commit time, seconds since the Unix epoch (UTC).
    pub time: i64,
    /// Store the new objects in the cache (to push them). `false` keeps everything in
    /// memory: a dry run leaves no trace.
    pub write: bool,
}

/// One file the revert commit changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileChange {
    /// Repository-relative path.
    pub path: String,
    /// The content at the branch head (`None`: the revert adds the file).
    pub before: Option<Vec<u8>>,
    /// The content after the revert (`None`: the revert deletes the file).
    pub after: Option<Vec<u8>>,
}

/// The result of [`RepoCache::revert`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reverted {
    /// The revert commit (stored in the cache only with [`RevertRequest::write`]).
    pub commit: CommitId,
    /// What it changes against the branch head, by path.
    pub changes: Vec<FileChange>,
}

impl RepoCache {
    /// The commits after `base` up to and including `head`, following first parents,
    /// oldest first, each with the files it changed. `base` must be on `head`'s
    /// first-parent history ([`SourceError::NotAnAncestor`] otherwise); both commits must
    /// be in the cache (resolve them first).
    pub fn first_parent_range(
        &self,
        url: &str,
        base: &CommitId,
        head: &CommitId,
    ) -> Result<Vec<CommitInfo>, SourceError> {
        validate_url(url)?;
        let repo = open_existing(&self.repo_dir(url), url, head.as_str())?;
        let read = |what: String, e: &gix::Error| SourceError::Read {
            url: redact_url(url),
            what,
            detail: describe(e),
        };
        let mut out = Vec::new();
        let mut id = head.to_oid();
        let base_id = base.to_oid();
        loop {
            if id == base_id {
                break;
            }
            if out.len() >= MAX_RANGE {
                return Err(SourceError::NotAnAncestor {
                    url: redact_url(url),
                    revision: base.to_string(),
                    head: head.to_string(),
                    detail: format!("not found in the last {MAX_RANGE} first-parent commits"),
                });
            }
            let commit = repo
                .find_commit(id)
                .map_err(|e| read(format!("commit {id}"), &e))?;
            let parent = commit.parent_ids().next().map(|p| p.detach());
            let tree = commit
                .tree()
                .map_err(|e| read(format!("the tree of {id}"), &e))?;
            let parent_tree = match parent {
                Some(p) => repo
                    .find_commit(p)
                    .and_then(|c| c.tree())
                    .map_err(|e| read(format!("the tree of {p}"), &e))?,
                None => repo.empty_tree(),
            };
            let changed = diff_paths(&repo, url, &parent_tree, &tree, &format!("commit {id}"))?;
            let summary = commit
                .message_raw_sloppy()
                .lines()
                .next()
                .map(|l| l.to_str_lossy().trim().to_string())
                .unwrap_or_default();
            out.push(CommitInfo {
                id: CommitId::from_oid(&id),
                summary,
                changed,
            });
            match parent {
                Some(p) => id = p,
                None => {
                    return Err(SourceError::NotAnAncestor {
                        url: redact_url(url),
                        revision: base.to_string(),
                        head: head.to_string(),
                        detail: "it is not on the branch's first-parent history".to_string(),
                    })
                }
            }
        }
        out.reverse();
        Ok(out)
    }

    /// The content of the file `path` at `commit`, `None` when there is no such file.
    /// The commit must be in the cache.
    pub fn read_file(
        &self,
        url: &str,
        commit: &CommitId,
        path: &str,
    ) -> Result<Option<Vec<u8>>, SourceError> {
        validate_url(url)?;
        let path = crate::tree::file_path(path)?;
        let repo = open_existing(&self.repo_dir(url), url, commit.as_str())?;
        let tree = repo
            .find_commit(commit.to_oid())
            .and_then(|c| c.tree())
            .map_err(|e| SourceError::CommitUnavailable {
                url: redact_url(url),
                commit: commit.to_string(),
                detail: describe(&e),
            })?;
        blob_at(&repo, url, &tree, &path)
    }

    /// Revert `request.commits` onto `request.head`, apply `request.edits`, and make one
    /// commit of the result (parent: the head). Nothing is stored unless
    /// [`RevertRequest::write`]; a conflict stores nothing and names the paths.
    pub fn revert(&self, url: &str, request: &RevertRequest<'_>) -> Result<Reverted, SourceError> {
        validate_url(url)?;
        let path = self.repo_dir(url);
        let lock = self.lock_for(&path);
        let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut repo = open_existing(&path, url, request.head.as_str())?.with_object_memory();
        let err = |what: String, e: &gix::Error| SourceError::Write {
            url: redact_url(url),
            what,
            detail: describe(e),
        };
        let tree_of = |repo: &gix::Repository, c: &CommitId| {
            repo.find_commit(c.to_oid())
                .and_then(|c| c.tree_id().map(|t| t.detach()))
                .map_err(|e| SourceError::CommitUnavailable {
                    url: redact_url(url),
                    commit: c.to_string(),
                    detail: describe(&e),
                })
        };
        let head_tree = tree_of(&repo, &request.head)?;
        let mut current = head_tree;
        let options = repo
            .tree_merge_options()
            .map_err(|e| err("the merge options".into(), &e))?;
        let unresolved = gix::merge::tree::TreatAsUnresolved::git();
        for c in &request.commits {
            let commit =
                repo.find_commit(c.to_oid())
                    .map_err(|e| SourceError::CommitUnavailable {
                        url: redact_url(url),
                        commit: c.to_string(),
                        detail: describe(&e),
                    })?;
            let parent = commit.parent_ids().next().map(|p| p.detach());
            let parent_tree = match parent {
                Some(p) => tree_of(&repo, &CommitId::from_oid(&p))?,
                None => gix::ObjectId::empty_tree(repo.object_hash()),
            };
            let c_tree = tree_of(&repo, c)?;
            let other = format!("parent of {}", c.short());
            let labels = gix::merge::blob::builtin_driver::text::Labels {
                ancestor: Some(BStr::new(c.short())),
                current: Some(BStr::new("HEAD")),
                other: Some(BStr::new(other.as_str())),
            };
            let mut outcome = repo
                .merge_trees(c_tree, current, parent_tree, labels, options.clone())
                .map_err(|e| err(format!("the revert of {c}"), &e))?;
            if outcome.has_unresolved_conflicts(unresolved) {
                let mut paths: Vec<String> = outcome
                    .conflicts
                    .iter()
                    .filter(|x| x.is_unresolved(unresolved))
                    .flat_map(|x| [x.ours.location(), x.theirs.location()])
                    .map(|p| p.to_str_lossy().into_owned())
                    .collect();
                paths.sort();
                paths.dedup();
                return Err(SourceError::RevertConflict {
                    url: redact_url(url),
                    commit: c.to_string(),
                    paths,
                });
            }
            current = outcome
                .tree
                .write()
                .map_err(|e| err(format!("the tree reverting {c}"), &e))?
                .detach();
        }
        if !request.edits.is_empty() {
            let tree = repo
                .find_tree(current)
                .map_err(|e| err("the reverted tree".into(), &e))?;
            let mut editor = repo
                .edit_tree(current)
                .map_err(|e| err("the reverted tree".into(), &e))?;
            for edit in &request.edits {
                let path = crate::tree::file_path(&edit.path)?;
                let entry = tree
                    .lookup_entry_by_path(&path)
                    .map_err(|e| err(edit.path.clone(), &e))?
                    .filter(|e| e.mode().is_blob())
                    .ok_or_else(|| SourceError::EditFailed {
                        url: redact_url(url),
                        path: edit.path.clone(),
                        reason: "there is no such file after the revert".to_string(),
                    })?;
                let mode = entry.mode();
                let data = entry
                    .object()
                    .map_err(|e| err(edit.path.clone(), &e))?
                    .detach()
                    .data;
                let new = (edit.edit)(&data).map_err(|reason| SourceError::EditFailed {
                    url: redact_url(url),
                    path: edit.path.clone(),
                    reason,
                })?;
                let blob = repo
                    .write_blob(&new)
                    .map_err(|e| err(edit.path.clone(), &e))?;
                editor
                    .upsert(path.as_str(), mode.kind(), blob)
                    .map_err(|e| err(edit.path.clone(), &e))?;
            }
            current = editor
                .write()
                .map_err(|e| err("the edited tree".into(), &e))?
                .detach();
        }
        if current == head_tree {
            return Err(SourceError::NothingToRevert {
                url: redact_url(url),
                head: request.head.to_string(),
            });
        }
        let signature = |who: &Identity| gix::actor::Signature {
            name: who.name.as_str().into(),
            email: who.email.as_str().into(),
            time: gix::date::Time {
                seconds: request.time,
                offset: 0,
            },
        };
        let commit = gix::objs::Commit {
            tree: current,
            parents: std::iter::once(request.head.to_oid()).collect(),
            author: signature(&request.author),
            committer: signature(&request.committer),
            encoding: None,
            message: request.message.as_str().into(),
            extra_headers: Vec::new(),
        };
        let commit_id = repo
            .write_object(commit)
            .map_err(|e| err("the revert commit".into(), &e))?
            .detach();
        let changes = file_changes(&repo, url, head_tree, current)?;
        if request.write {
            use gix::objs::Write as _;
            if let Some(memory) = repo.objects.take_object_memory() {
                for (id, (kind, data)) in memory.iter() {
                    repo.objects
                        .write_buf(*kind, data)
                        .map_err(|e| SourceError::Write {
                            url: redact_url(url),
                            what: format!("object {id} into the cache"),
                            detail: e.to_string(),
                        })?;
                }
            }
        }
        Ok(Reverted {
            commit: CommitId::from_oid(&commit_id),
            changes,
        })
    }
}

/// The blob at `path` in `tree`, `None` when absent or not a file.
fn blob_at(
    repo: &gix::Repository,
    url: &str,
    tree: &gix::Tree<'_>,
    path: &str,
) -> Result<Option<Vec<u8>>, SourceError> {
    let read = |e: &gix::Error| SourceError::Read {
        url: redact_url(url),
        what: path.to_string(),
        detail: describe(e),
    };
    let Some(entry) = tree.lookup_entry_by_path(path).map_err(|e| read(&e))? else {
        return Ok(None);
    };
    if !entry.mode().is_blob() {
        return Ok(None);
    }
    let _ = repo;
    Ok(Some(entry.object().map_err(|e| read(&e))?.detach().data))
}

/// Every file that differs between the trees `old` and `new`, with both contents.
fn file_changes(
    repo: &gix::Repository,
    url: &str,
    old: gix::ObjectId,
    new: gix::ObjectId,
) -> Result<Vec<FileChange>, SourceError> {
    let find = |id: gix::ObjectId| {
        repo.find_tree(id).map_err(|e| SourceError::Read {
            url: redact_url(url),
            what: format!("tree {id}"),
            detail: describe(&e),
        })
    };
    let (old, new) = (find(old)?, find(new)?);
    let mut out = Vec::new();
    for path in diff_paths(repo, url, &old, &new, "the revert")? {
        out.push(FileChange {
            before: blob_at(repo, url, &old, &path)?,
            after: blob_at(repo, url, &new, &path)?,
            path,
        });
    }
    Ok(out)
}
