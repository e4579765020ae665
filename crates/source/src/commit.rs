//! New files in a new commit: what a disaster-recovery drill commits its report with
//! (`drill.report.git`), on top of the branch head, pushed with [`RepoCache::push`]; and
//! [`RepoCache::update_branch`], the fetch–edit–commit–push loop of every write-back
//! (the image watcher's, `mooring promote`'s).
//!
//! Like a revert ([`crate::revert`]), the commit is built in memory with gix and stored
//! in the cache only when complete; an existing file at a path is replaced.
//!
//! # Racing other committers
//!
//! A write-back reads the branch head, computes its edit from the files there, commits
//! and pushes without force. When someone pushed in between, the server refuses the push
//! ([`SourceError::PushRejected`]); the loop then fetches the new head and computes the
//! edit again *from the new files* (a rebase of a one-commit change, with no merge: the
//! edit is re-derived, so it can never undo the other commit), up to a bounded number of
//! attempts. Nobody's commit is lost and nothing is forced.

use crate::cache::open_existing;
use crate::error::describe;
use crate::revert::Identity;
use crate::url::{redact_url, validate_url};
use crate::{CommitId, Credentials, RepoCache, SourceError};

/// The change one attempt of [`RepoCache::update_branch`] makes: files and message,
/// computed from the branch head it is given.
pub struct BranchEdit {
    /// Repository-relative paths and their new content.
    pub files: Vec<(String, Vec<u8>)>,
    pub message: String,
}

/// What [`RepoCache::update_branch`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchUpdate {
    /// The head the successful attempt started from.
    pub parent: CommitId,
    /// The commit pushed.
    pub commit: CommitId,
    /// Attempts made (1 = the branch did not move).
    pub attempts: u32,
}

/// How [`RepoCache::update_branch`] commits.
pub struct UpdateOptions<'a> {
    pub branch: &'a str,
    pub author: &'a Identity,
    /// Attempts before giving up when the branch keeps moving (at least 1).
    pub attempts: u32,
}

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

impl RepoCache {
    /// Fetch `options.branch` of `url`, call `edit` with its head, commit what it returns
    /// on top of the head, call `check` with the commit (still unpushed: e.g. a policy
    /// gate; its `Err(reason)` stops everything as [`SourceError::Refused`], nothing is
    /// pushed), and push it, never forced.
    /// When the push is refused because the branch moved, start again from the new head,
    /// up to `options.attempts` times. `edit` returning `None` means nothing to change:
    /// the result is `None` and nothing is committed.
    pub fn update_branch<E, C>(
        &self,
        url: &str,
        creds: &Credentials,
        options: &UpdateOptions<'_>,
        mut edit: E,
        mut check: C,
    ) -> Result<Option<BranchUpdate>, SourceError>
    where
        E: FnMut(&RepoCache, &CommitId) -> Result<Option<BranchEdit>, SourceError>,
        C: FnMut(&CommitId) -> Result<(), String>,
    {
        crate::push::validate_branch(options.branch)?;
        let attempts = options.attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let head = self.resolve(url, &format!("refs/heads/{}", options.branch), creds)?;
            let Some(change) = edit(self, &head)? else {
                return Ok(None);
            };
            let commit = self.commit_files(
                url,
                &NewFiles {
                    head: head.clone(),
                    files: change.files,
                    message: &change.message,
                    author: options.author,
                    time: mooring_core::time::now().as_second(),
                },
            )?;
            check(&commit).map_err(|reason| SourceError::Refused {
                url: redact_url(url),
                reason,
            })?;
            match self.push(url, &commit, options.branch, creds) {
                Ok(()) => {
                    return Ok(Some(BranchUpdate {
                        parent: head,
                        commit,
                        attempts: attempt,
                    }))
                }
                Err(SourceError::PushRejected { .. }) if attempt < attempts => {
                    tracing::info!(url = %redact_url(url), branch = options.branch, attempt, "the branch moved during a write-back: computing the change again from the new head");
                }
                Err(e) => return Err(e),
            }
        }
    }
}
