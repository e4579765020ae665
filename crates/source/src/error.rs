//! The one error type of the Git side of this crate. Every variant names the offending
//! input (URL with its password redacted, revision, path) and says what to do about it.

use std::path::PathBuf;

/// Why fetching, resolving or reading a Git source failed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The repository URL is not one Mooring will use.
    #[error("repository URL {url:?} is refused: {reason}; use file://, http://, https://, ssh:// or user@host:path")]
    InvalidUrl {
        /// The URL, password redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The Git server could not be reached at all.
    #[error("cannot reach the Git server for {url}: {detail}; check the URL, that the server is up and that this host can reach it")]
    Unreachable {
        /// The URL, password redacted.
        url: String,
        /// What the transport said.
        detail: String,
    },
    /// The server refused the credentials (or wanted some and none were given).
    #[error("authentication to {url} failed: {detail}; check the repository credentials (username and password or token, or sshPrivateKey) in the repository Secret")]
    AuthFailed {
        /// The URL, password redacted.
        url: String,
        /// What the transport said.
        detail: String,
    },
    /// ssh refused the server's host key.
    #[error("the ssh host key of {url} was not accepted: {detail}; add the host's key to the known hosts (argocd-ssh-known-hosts-cm) or mark the repository insecure")]
    HostKeyRejected {
        /// The URL.
        url: String,
        /// What ssh said.
        detail: String,
    },
    /// The server (or local path) has no repository at that URL.
    #[error("no Git repository at {url}: {detail}; check the repository URL")]
    RepositoryNotFound {
        /// The URL, password redacted.
        url: String,
        /// What the transport said.
        detail: String,
    },
    /// The revision is neither a branch, a tag, `HEAD` nor a known commit.
    #[error("commit/branch/tag {revision:?} not found in {url}; check targetRevision and that it has been pushed")]
    RevisionNotFound {
        /// The URL, password redacted.
        url: String,
        /// The revision as given.
        revision: String,
    },
    /// A short SHA matches more than one commit.
    #[error("short commit SHA {revision:?} is ambiguous in {url}; use more characters or the full 40-character SHA")]
    AmbiguousRevision {
        /// The URL, password redacted.
        url: String,
        /// The revision as given.
        revision: String,
    },
    /// Any other failure while talking to the server.
    #[error("fetching {url} failed: {detail}")]
    Fetch {
        /// The URL, password redacted.
        url: String,
        /// What gix said.
        detail: String,
    },
    /// The commit is not in the local cache (resolve it first) or the object store is damaged.
    #[error("commit {commit} of {url} is not available: {detail}; resolve the revision first (which fetches it)")]
    CommitUnavailable {
        /// The URL, password redacted.
        url: String,
        /// The commit.
        commit: String,
        /// What gix said.
        detail: String,
    },
    /// Reading objects from the local cache failed.
    #[error("reading {what} from the cache of {url} failed: {detail}")]
    Read {
        /// The URL, password redacted.
        url: String,
        /// What was being read.
        what: String,
        /// What gix said.
        detail: String,
    },
    /// A path argument is absolute, contains `..`, or is otherwise unusable.
    #[error("path {path:?} is refused: {reason}; give a path relative to the repository root without '..'")]
    InvalidPath {
        /// The path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The path does not exist at the commit.
    #[error("path {path:?} does not exist in {url} at commit {commit}; check the Application's source.path")]
    PathNotFound {
        /// The URL, password redacted.
        url: String,
        /// The commit.
        commit: String,
        /// The path.
        path: String,
    },
    /// The path is a file where a directory was expected.
    #[error("path {path:?} in {url} at commit {commit} is not a directory; source.path must name a directory")]
    NotADirectory {
        /// The URL, password redacted.
        url: String,
        /// The commit.
        commit: String,
        /// The path.
        path: String,
    },
    /// A tree entry has a name no checkout would accept (`..`, `.git`, a `/` …).
    #[error("the repository contains an unsafe entry {path:?}; remove it from the repository")]
    UnsafeEntry {
        /// The entry's path.
        path: String,
    },
    /// A symbolic link points outside the repository (absolute, or too many `..`).
    #[error("symbolic link {link:?} points outside the repository (target {target:?}); it was not followed — make the link relative and inside the repository")]
    SymlinkEscapes {
        /// The link's path in the repository.
        link: String,
        /// Its target as stored.
        target: String,
    },
    /// A symbolic link points to nothing, or through a file.
    #[error("symbolic link {link:?} points to {target:?}, which does not exist in the commit")]
    SymlinkDangling {
        /// The link's path in the repository.
        link: String,
        /// Its target as stored.
        target: String,
    },
    /// Symbolic links form a cycle or a chain that is too long.
    #[error("symbolic link {link:?} loops (or chains more than {max} links); break the cycle")]
    SymlinkLoop {
        /// The link's path in the repository.
        link: String,
        /// The longest chain followed.
        max: u32,
    },
    /// A single file is over [`crate::Limits::max_file_bytes`].
    #[error("file {path:?} is {size} bytes, over the limit of {limit} bytes; make it smaller or raise the limit")]
    FileTooLarge {
        /// The file's path in the repository.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The files together are over [`crate::Limits::max_total_bytes`].
    #[error("files under {path:?} add up to more than {limit} bytes (stopped at {at:?}); split the application or raise the limit")]
    TotalTooLarge {
        /// The directory being read.
        path: String,
        /// The file at which the limit was passed.
        at: String,
        /// The limit.
        limit: u64,
    },
    /// More files than [`crate::Limits::max_files`].
    #[error("more than {limit} files under {path:?}; split the application or raise the limit")]
    TooManyFiles {
        /// The directory being read.
        path: String,
        /// The limit.
        limit: usize,
    },
    /// Local file-system trouble (cache directory, export directory, key file).
    #[error("{action} {path:?} failed: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The local path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A repository Secret that is not usable.
    #[error("repository Secret {name:?} is not usable: {reason}")]
    InvalidSecret {
        /// `metadata.name`, when there is one.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The rollback target is not on the branch's first-parent history.
    #[error("{revision} is not an ancestor of the branch head {head} in {url} ({detail}); give a commit of the tracked branch's history")]
    NotAnAncestor {
        /// The URL, password redacted.
        url: String,
        /// The target commit.
        revision: String,
        /// The branch head.
        head: String,
        /// Why.
        detail: String,
    },
    /// A revert conflicts with later changes; nothing was written.
    #[error("reverting {commit} in {url} conflicts in {paths:?}; nothing was committed or pushed — revert by hand, or roll back to a later commit")]
    RevertConflict {
        /// The URL, password redacted.
        url: String,
        /// The commit whose revert conflicts.
        commit: String,
        /// The conflicting paths.
        paths: Vec<String>,
    },
    /// The revert changes nothing.
    #[error("nothing to revert in {url}: the branch head {head} already has the content the rollback would produce")]
    NothingToRevert {
        /// The URL, password redacted.
        url: String,
        /// The branch head.
        head: String,
    },
    /// A file edit of the rollback commit failed.
    #[error("cannot edit {path:?} in {url}: {reason}")]
    EditFailed {
        /// The URL, password redacted.
        url: String,
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Writing objects for a new commit failed.
    #[error("writing {what} for {url} failed: {detail}")]
    Write {
        /// The URL, password redacted.
        url: String,
        /// What was being written.
        what: String,
        /// What gix said.
        detail: String,
    },
    /// A branch name Git would not accept.
    #[error("branch name {branch:?} is refused: {reason}")]
    InvalidBranch {
        /// The branch as given.
        branch: String,
        /// Why.
        reason: String,
    },
    /// A write-back's check (e.g. the policy gate) refused the commit before its push.
    #[error("the change to {url} was not pushed: {reason}")]
    Refused {
        /// The URL, password redacted.
        url: String,
        reason: String,
    },
    /// The server refused the push because the branch moved (the push is never forced).
    #[error("push of {branch} to {url} was rejected: {detail}; the branch moved since it was read — run the command again")]
    PushRejected {
        /// The URL, password redacted.
        url: String,
        /// The branch.
        branch: String,
        /// What git said.
        detail: String,
    },
    /// Any other push failure.
    #[error("push of {branch} to {url} failed: {detail}")]
    Push {
        /// The URL, password redacted.
        url: String,
        /// The branch.
        branch: String,
        /// What git said.
        detail: String,
    },
    /// A string that should have been a 40-character commit id.
    #[error("{value:?} is not a full commit id (40 hexadecimal characters)")]
    InvalidCommitId {
        /// The value.
        value: String,
    },
}

/// The whole chain of a gix error, outermost first, without repeats: the `detail` of
/// the variants above, for fetching (`cache`) and reading trees (`tree`) alike.
pub(crate) fn describe(e: &gix::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for err in e.iter_errors() {
        let text = err.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}
