//! Git sources for Mooring: fetch repositories, resolve revisions, read trees at a commit,
//! and understand push webhooks.
//!
//! # Why it looks like this
//!
//! Argo CD's repo-server keeps one clone per repository and answers "what is in path P at
//! revision R". Mooring does the same with [gix](https://docs.rs/gix), in process:
//!
//! * [`RepoCache`] keeps **one bare object store per repository URL** under a cache
//!   directory. [`RepoCache::resolve`] fetches (cloning the first time) and turns a
//!   revision — branch, tag, full or short commit SHA, or `HEAD` — into a [`CommitId`].
//!   A full SHA that is already in the cache is answered without touching the network,
//!   because commits never change.
//! * [`RepoCache::read_tree`] and [`RepoCache::export`] read blobs straight from the object
//!   store: there is **no work tree**, so nothing in the repository can make Mooring read
//!   or write outside it. Symbolic links are resolved *inside the commit's tree* the way a
//!   file system would resolve them (component by component, `..` included); a link that
//!   would leave the repository is an error naming the link, and exported links become
//!   plain copies, never real links. Every read obeys [`Limits`] (file size, total size,
//!   file count), checked from object headers before a blob is loaded.
//! * [`RepoCache::changed_paths`] lists the files that differ between two commits, so a
//!   new commit that does not touch an application's path can reuse its last render.
//! * [`RepoCache::first_parent_range`], [`RepoCache::revert`] and [`RepoCache::push`]
//!   write Git for `mooring rollback git`: reverts are in-memory 3-way tree merges with
//!   gix (nothing is stored until the whole revert succeeded), pushes run `git push`
//!   because gix has no push (see the `push` module for how credentials reach it).
//! * [`webhook`] is pure: it verifies and parses GitHub and GitLab push events.
//!
//! All of the Git work is blocking; async callers wrap it in `spawn_blocking`.
//!
//! # Hostile input
//!
//! * Repository URLs are checked before any transport sees them ([`validate_url`]): only
//!   `file://`, `http://`, `https://`, `ssh://` and scp-like `user@host:path` are accepted;
//!   `ext::`, other transports, plain local paths and anything that starts with `-` (or has
//!   a host or user starting with `-`) are refused, so a URL can never become an option of
//!   `ssh` or `git`.
//! * Paths given by callers (an Application's `path`) must be relative and free of `..`.
//! * Tree entries named `.`, `..`, `.git` or containing `/` are refused.
//! * Errors name the URL with its password redacted ([`redact_url`]), the revision and the
//!   path, and say what to check.
//!
//! # Transports and credentials
//!
//! * `file://` spawns `git-upload-pack` (the `git` package).
//! * `http(s)://` uses gix's smart-HTTP client on reqwest with rustls (ring provider,
//!   installed as the process default the first time a [`RepoCache`] is made); basic
//!   authentication comes from [`Credentials`] only — never from a terminal prompt or a
//!   credential helper. As with git and Argo CD, credentials configured for a plain
//!   `http://` URL (in-cluster Git servers) are sent over it, with a warning in the log;
//!   credentials for an `https://` URL are never sent to an `http://` one
//!   ([`CredentialIndex`] matches scheme, host and port).
//! * `ssh://` and scp-like URLs spawn the `ssh` binary (`openssh-client`) in batch mode.
//!   A private key from [`Credentials`] is written to a private temporary file (mode 0600,
//!   removed afterwards) and passed with `-i … -o IdentitiesOnly=yes`. Host keys are checked
//!   against [`RepoCache::with_known_hosts`] when set (Argo CD's `argocd-ssh-known-hosts-cm`),
//!   otherwise against the user's usual `known_hosts`; a repository Secret with
//!   `insecure: "true"` turns host-key checking off, exactly as in Argo CD. What ssh prints
//!   goes to a private log file and is quoted in errors ("Host key verification failed",
//!   "Permission denied (publickey)").
//!
//! Repositories are opened in gix's isolated mode: global and system Git configuration and
//! `GIT_*` environment variables do not change how Mooring fetches.

mod cache;
mod commit;
mod credentials;
mod dir;
mod error;
pub mod files;
mod push;
mod revert;
mod tree;
mod url;
pub mod webhook;

pub use cache::{GitRequest, RepoCache, RequestObserver};
pub use commit::{BranchEdit, BranchUpdate, NewFiles, UpdateOptions};
pub use credentials::{CredentialIndex, Credentials, RepoSecret, SecretKind};
pub use dir::export_dir;
pub use error::SourceError;
pub use push::validate_branch;
pub use revert::{
    CommitInfo, EditFn, FileChange, FileEdit, Identity, RevertRequest, Reverted, MAX_RANGE,
};
pub use url::{redact_url, validate_url};

use std::fmt;
use std::str::FromStr;

/// A full commit id: 40 lowercase hexadecimal characters (SHA-1).
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct CommitId(String);

impl CommitId {
    /// The 40 hexadecimal characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first seven characters, as `git log --oneline` shows them.
    pub fn short(&self) -> &str {
        &self.0[..7]
    }

    pub(crate) fn from_oid(id: &gix::oid) -> Self {
        CommitId(id.to_hex().to_string())
    }

    pub(crate) fn to_oid(&self) -> gix::ObjectId {
        gix::ObjectId::from_hex(self.0.as_bytes())
            .expect("a CommitId always holds 40 validated hex characters")
    }
}

impl FromStr for CommitId {
    type Err = SourceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(CommitId(s.to_ascii_lowercase()))
        } else {
            Err(SourceError::InvalidCommitId {
                value: s.to_string(),
            })
        }
    }
}

impl TryFrom<String> for CommitId {
    type Error = SourceError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<CommitId> for String {
    fn from(c: CommitId) -> String {
        c.0
    }
}

impl fmt::Display for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Caps on what one [`RepoCache::read_tree`] or [`RepoCache::export`] call may read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest single file, in bytes.
    pub max_file_bytes: u64,
    /// Largest sum of all file sizes, in bytes.
    pub max_total_bytes: u64,
    /// Most files.
    pub max_files: usize,
}

impl Default for Limits {
    /// 8 MiB per file, 256 MiB in total, 20 000 files.
    fn default() -> Self {
        Limits {
            max_file_bytes: 8 << 20,
            max_total_bytes: 256 << 20,
            max_files: 20_000,
        }
    }
}

/// One file read from a commit's tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeFile {
    /// Path relative to the directory that was read, `/`-separated. A file reached through a
    /// symbolic link appears under the link's path.
    pub path: String,
    /// The file's content.
    pub data: Vec<u8>,
    /// Whether the blob has the executable mode (`100755`).
    pub executable: bool,
}
