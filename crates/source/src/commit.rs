//! New files in a new commit: what a disaster-recovery drill commits its report with
//! (`drill.report.git`), on top of the branch head, pushed with [`RepoCache::push`].
//!
//! Like a revert ([`crate::revert`]), the commit is built in memory with gix and stored
//! in the cache only when complete; an existing file at a path is replaced.

use crate::cache::open_existing;
use crate::error::describe;
use crate::revert::Identity;
use crate::url::{redact_url, validate_url};
use crate::{CommitId, RepoCache, SourceError};

/// What [`RepoCache::commit_files`] commits.
pub struct NewFiles<'a> {
    /// The parent (the branch head, in the cache).
    pub head: CommitId,
    /// Repository-relative paths and their content.
    pub files: Vec<(String, Vec<u8>)>,
    pub message: &'a str,
    pub author: &'a Identity,
    /// Seconds since the Unix epoch (UTC).
    pub time: i64,
}

impl RepoCache {
    /// One commit on `files.head` adding (or replacing) `files.files`; stored in the cache
    /// (to push it). Returns the commit.
    pub fn commit_files(&self, url: &str, files: &NewFiles<'_>) -> Result<CommitId, SourceError> {
        validate_url(url)?;
        let path = self.repo_dir(url);
        let lock = self.lock_for(&path);
        let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let repo = open_existing(&path, url, files.head.as_str())?;
        let err = |what: String, e: &gix::Error| SourceError::Write {
            url: redact_url(url),
            what,
            detail: describe(e),
        };
        let head_tree = repo
            .find_commit(files.head.to_oid())
            .and_then(|c| c.tree_id().map(|t| t.detach()))
            .map_err(|e| SourceError::CommitUnavailable {
                url: redact_url(url),
                commit: files.head.to_string(),
                detail: describe(&e),
            })?;
        let mut editor = repo
            .edit_tree(head_tree)
            .map_err(|e| err("the head's tree".into(), &e))?;
        for (p, content) in &files.files {
            let file = crate::tree::file_path(p)?;
            let blob = repo.write_blob(content).map_err(|e| err(p.clone(), &e))?;
            editor
                .upsert(file.as_str(), gix::object::tree::EntryKind::Blob, blob)
                .map_err(|e| err(p.clone(), &e))?;
        }
        let tree = editor
            .write()
            .map_err(|e| err("the new tree".into(), &e))?
            .detach();
        let signature = gix::actor::Signature {
            name: files.author.name.as_str().into(),
            email: files.author.email.as_str().into(),
            time: gix::date::Time {
                seconds: files.time,
                offset: 0,
            },
        };
        let commit = gix::objs::Commit {
            tree,
            parents: std::iter::once(files.head.to_oid()).collect(),
            author: signature.clone(),
            committer: signature,
            encoding: None,
            message: files.message.into(),
            extra_headers: Vec::new(),
        };
        let id = repo
            .write_object(commit)
            .map_err(|e| err("the commit".into(), &e))?
            .detach();
        Ok(CommitId::from_oid(&id))
    }
}
