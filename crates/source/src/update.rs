//! Committing file edits onto a branch that others push to: fetch, edit, commit, push,
//! and when the push is refused because the branch moved meanwhile, start again from the
//! new head (fetch-rebase-retry), a bounded number of times. Never forced.
//!
//! This is how a CI promotion (`mooring promote`) and the image watcher's Git write-back
//! change a GitOps repository a human may be committing to at the same moment: the edit
//! is a function of the file's content, so it is recomputed on the new head rather than
//! replayed as a patch, and a concurrent commit is never lost (the push only
//! fast-forwards). An edit that changes nothing commits and pushes nothing.

use crate::{redact_url, validate_branch, SourceError};
use crate::{CommitId, Credentials, FileChange, FileEdit, Identity, RepoCache, RevertRequest};

/// The default number of attempts of [`RepoCache::update_branch`].
pub const DEFAULT_ATTEMPTS: usize = 5;

/// What [`RepoCache::update_branch`] commits.
pub struct BranchUpdate<'a> {
    /// The branch (name without `refs/heads/`).
    pub branch: String,
    /// Files to edit; each edit sees the file's content at the head it is applied to.
    pub edits: Vec<FileEdit<'a>>,
    /// The commit message.
    pub message: String,
    /// Author and committer.
    pub author: Identity,
    /// Commit time, seconds since the Unix epoch.
    pub time: i64,
    /// Push the commit. `false` prepares it in memory only (nothing stored, nothing sent):
    /// a preview of what a push would do.
    pub push: bool,
    /// Attempts at most (at least 1).
    pub attempts: usize,
}

/// What [`RepoCache::update_branch`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BranchUpdated {
    /// The head the commit was made on (of the last attempt).
    pub base: CommitId,
    /// The new commit (stored and pushed only when pushed); the base when nothing
    /// changed.
    pub commit: CommitId,
    /// What it changes, by path; empty when every edit left its file as it was (then
    /// nothing was pushed).
    pub changes: Vec<FileChange>,
    /// Whether the branch now points at [`BranchUpdated::commit`].
    pub pushed: bool,
    /// How many attempts it took (more than 1: the branch moved and the edit was made
    /// again on the new head).
    pub attempts: usize,
}

impl RepoCache {
    /// Apply `update.edits` to the head of `update.branch` of `url` in one commit and push
    /// it (never forced); when the push is refused because the branch moved, fetch the
    /// new head and redo the edits there, up to `update.attempts` times.
    pub fn update_branch(
        &self,
        url: &str,
        creds: &Credentials,
        update: &BranchUpdate<'_>,
    ) -> Result<BranchUpdated, SourceError> {
        validate_branch(&update.branch)?;
        let attempts = update.attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let base = self.resolve(url, &format!("refs/heads/{}", update.branch), creds)?;
            let done = match self.revert(
                url,
                &RevertRequest {
                    head: base.clone(),
                    commits: vec![],
                    edits: update
                        .edits
                        .iter()
                        .map(|e| FileEdit {
                            path: e.path.clone(),
                            edit: e.edit,
                        })
                        .collect(),
                    message: update.message.clone(),
                    author: update.author.clone(),
                    committer: update.author.clone(),
                    time: update.time,
                    write: update.push,
                },
            ) {
                Ok(done) => done,
                // Every file already says what the edits would write.
                Err(SourceError::NothingToRevert { .. }) => {
                    return Ok(BranchUpdated {
                        commit: base.clone(),
                        base,
                        changes: vec![],
                        pushed: false,
                        attempts: attempt,
                    })
                }
                Err(e) => return Err(e),
            };
            let changes: Vec<FileChange> = done
                .changes
                .into_iter()
                .filter(|c| c.before != c.after)
                .collect();
            let mut updated = BranchUpdated {
                base,
                commit: done.commit,
                changes,
                pushed: false,
                attempts: attempt,
            };
            if !update.push || updated.changes.is_empty() {
                return Ok(updated);
            }
            match self.push(url, &updated.commit, &update.branch, creds) {
                Ok(()) => {
                    updated.pushed = true;
                    return Ok(updated);
                }
                Err(SourceError::PushRejected { detail, .. }) if attempt < attempts => {
                    tracing::info!(url = %redact_url(url), branch = %update.branch, attempt, %detail,
                        "the branch moved; editing the new head again");
                }
                Err(SourceError::PushRejected { detail, .. }) => {
                    return Err(SourceError::BranchKeptMoving {
                        url: redact_url(url),
                        branch: update.branch.clone(),
                        attempts,
                        detail,
                    })
                }
                Err(e) => return Err(e),
            }
        }
    }
}
