//! [`RepoCache`]: one bare object store per repository URL, fetched with gix.

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, Once};

use gix::bstr::ByteSlice as _;
use gix::protocol::handshake::Ref;
use sha2::Digest as _;

use crate::error::describe;
use crate::url::{kind, redact_url, validate_url, Kind};
use crate::{CommitId, Credentials, Limits, SourceError, TreeFile};

/// What a fetch maps: branches, tags and the remote's `HEAD`.
const REFSPECS: &[&str] = &[
    "+refs/heads/*:refs/remotes/origin/*",
    "+refs/tags/*:refs/tags/*",
    "+HEAD:refs/remotes/origin/HEAD",
];

/// Seconds `ssh` waits for the TCP connection.
const SSH_CONNECT_TIMEOUT_SECS: u32 = 30;

/// What one contact with a remote repository turned out to be, in Argo CD's terms
/// (`argocd_git_request_total`'s `request_type`). Mooring contacts a remote once per
/// fetch: the server advertises its refs, and objects are downloaded only when a ref
/// moved. A contact that downloaded nothing is what Argo CD calls an `ls-remote`; one
/// that downloaded objects (or failed, when it cannot be told) is a `fetch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GitRequest {
    LsRemote,
    Fetch,
}

impl GitRequest {
    pub fn as_str(self) -> &'static str {
        match self {
            GitRequest::LsRemote => "ls-remote",
            GitRequest::Fetch => "fetch",
        }
    }
}

/// Told about every contact with a remote: the URL without credentials, what the contact
/// was, and how long it took.
pub type RequestObserver =
    Arc<dyn Fn(&str, GitRequest, std::time::Duration) + Send + Sync + 'static>;

/// A directory of cached bare repositories, one per repository URL.
///
/// All methods block; call them from `spawn_blocking` in async code. Calls for the same
/// URL are serialised inside one `RepoCache`; share one instance per process.
pub struct RepoCache {
    dir: PathBuf,
    known_hosts: Option<PathBuf>,
    locks: Mutex<HashMap<PathBuf, Arc<Mutex<()>>>>,
    observer: Option<RequestObserver>,
}

impl std::fmt::Debug for RepoCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepoCache")
            .field("dir", &self.dir)
            .field("known_hosts", &self.known_hosts)
            .finish_non_exhaustive()
    }
}

fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Another part of the process may have installed a provider already: that is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl RepoCache {
    /// A cache under `dir` (created on first use).
    pub fn new(dir: PathBuf) -> Self {
        install_crypto_provider();
        RepoCache {
            dir,
            known_hosts: None,
            locks: Mutex::new(HashMap::new()),
            observer: None,
        }
    }

    /// Report every contact with a remote (fetches) to `observer` (metrics).
    pub fn with_request_observer(mut self, observer: RequestObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Check ssh host keys against this `known_hosts` file (strictly) instead of the
    /// user's own. Credentials with [`Credentials::insecure`] still skip the check.
    pub fn with_known_hosts(mut self, known_hosts: PathBuf) -> Self {
        self.known_hosts = Some(known_hosts);
        self
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The bare repository that caches `url`. The password never reaches the name.
    pub(crate) fn repo_dir(&self, url: &str) -> PathBuf {
        let digest = sha2::Sha256::digest(redact_url(url).as_bytes());
        let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{hex}.git"))
    }

    pub(crate) fn lock_for(&self, path: &Path) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(path.to_path_buf()).or_default().clone()
    }

    /// Fetch (clone the first time) and resolve `revision` — a branch, a tag, a full or
    /// short commit SHA, `HEAD` (the remote's default branch) or a full ref name such as
    /// `refs/heads/main` — to a commit.
    ///
    /// Branch and tag names are looked up in what the server advertises now, so a deleted
    /// branch is not found even if the cache still has it. A full SHA already in the cache
    /// is answered without a fetch.
    pub fn resolve(
        &self,
        url: &str,
        revision: &str,
        creds: &Credentials,
    ) -> Result<CommitId, SourceError> {
        validate_url(url)?;
        let revision = revision.trim();
        let revision = if revision.is_empty() {
            "HEAD"
        } else {
            revision
        };
        let path = self.repo_dir(url);
        let lock = self.lock_for(&path);
        let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());

        if revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit()) {
            if let Ok(repo) = open_existing(&path, url, revision) {
                if let Ok(id) = gix::ObjectId::from_hex(revision.as_bytes()) {
                    if is_commit(&repo, id) {
                        return Ok(CommitId::from_oid(&id));
                    }
                }
            }
        }
        let (repo, refs) = self.fetch(&path, url, creds)?;
        resolve_in(&repo, &refs, url, revision)
    }

    /// Read the files under `path` (relative to the repository root; `""` or `"."` is the
    /// root) at `commit` from the cache, following symbolic links only inside the commit's
    /// tree. The commit must have been fetched by [`RepoCache::resolve`].
    pub fn read_tree(
        &self,
        url: &str,
        commit: &CommitId,
        path: &str,
        limits: &Limits,
    ) -> Result<Vec<TreeFile>, SourceError> {
        validate_url(url)?;
        let repo_path = self.repo_dir(url);
        let repo = open_existing(&repo_path, url, commit.as_str())?;
        let mut files = Vec::new();
        crate::tree::walk(&repo, url, commit, path, limits, &mut |file| {
            files.push(file);
            Ok(())
        })?;
        Ok(files)
    }

    /// Write the whole tree of `commit` into `dest` (an existing, empty, private directory),
    /// with the same symbolic-link and limit rules as [`RepoCache::read_tree`]. Links are
    /// written as copies of what they point to; empty directories are not written.
    pub fn export(
        &self,
        url: &str,
        commit: &CommitId,
        dest: &Path,
        limits: &Limits,
    ) -> Result<(), SourceError> {
        validate_url(url)?;
        let repo_path = self.repo_dir(url);
        let repo = open_existing(&repo_path, url, commit.as_str())?;
        crate::tree::walk(&repo, url, commit, "", limits, &mut |file| {
            write_exported(dest, &file)
        })
    }

    /// The paths of the files that differ between `from` and `to` (added, deleted or
    /// modified; a rename shows both paths), sorted. Both commits must be in the cache.
    pub fn changed_paths(
        &self,
        url: &str,
        from: &CommitId,
        to: &CommitId,
    ) -> Result<Vec<String>, SourceError> {
        validate_url(url)?;
        let repo_path = self.repo_dir(url);
        let repo = open_existing(&repo_path, url, from.as_str())?;
        let tree_of = |c: &CommitId| -> Result<gix::Tree<'_>, SourceError> {
            repo.find_commit(c.to_oid())
                .and_then(|commit| commit.tree())
                .map_err(|e| SourceError::CommitUnavailable {
                    url: redact_url(url),
                    commit: c.to_string(),
                    detail: describe(&e),
                })
        };
        let (old, new) = (tree_of(from)?, tree_of(to)?);
        diff_paths(
            &repo,
            url,
            &old,
            &new,
            &format!("the difference between {from} and {to}"),
        )
    }

    /// The `ssh` command line (for `sh`) that reaches a repository with `creds`: batch
    /// mode, the Secret's private key (written to a private temporary file, returned so the
    /// caller keeps it alive for as long as ssh may run) and the host-key rule.
    pub(crate) fn ssh_command(
        &self,
        creds: &Credentials,
    ) -> Result<(String, Option<tempfile::NamedTempFile>), SourceError> {
        let mut cmd = format!("ssh -o BatchMode=yes -o ConnectTimeout={SSH_CONNECT_TIMEOUT_SECS}");
        let mut key_file = None;
        if let Some(key) = creds.ssh_private_key() {
            let file = write_key_file(key)?;
            cmd.push_str(&format!(
                " -i {} -o IdentitiesOnly=yes",
                shell_quote(&file.path().to_string_lossy())
            ));
            key_file = Some(file);
        }
        if creds.insecure() {
            cmd.push_str(" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null");
        } else if let Some(known_hosts) = &self.known_hosts {
            cmd.push_str(&format!(
                " -o StrictHostKeyChecking=yes -o UserKnownHostsFile={}",
                shell_quote(&known_hosts.to_string_lossy())
            ));
        }
        Ok((cmd, key_file))
    }

    /// Fetch all branches, tags and `HEAD` of `url` into the bare repository at `path`,
    /// telling the observer what the contact was and how long it took.
    fn fetch(
        &self,
        path: &Path,
        url: &str,
        creds: &Credentials,
    ) -> Result<(gix::Repository, Vec<Ref>), SourceError> {
        let started = std::time::Instant::now();
        let result = self.fetch_remote(path, url, creds);
        if let Some(observe) = &self.observer {
            let kind = match &result {
                Ok((_, _, false)) => GitRequest::LsRemote,
                _ => GitRequest::Fetch,
            };
            observe(&redact_url(url), kind, started.elapsed());
        }
        result.map(|(repo, refs, _)| (repo, refs))
    }

    /// [`RepoCache::fetch`]; also says whether objects were downloaded.
    fn fetch_remote(
        &self,
        path: &Path,
        url: &str,
        creds: &Credentials,
    ) -> Result<(gix::Repository, Vec<Ref>, bool), SourceError> {
        ensure_bare(path)?;
        let mut overrides = vec![
            "core.logAllRefUpdates=false".to_string(),
            "protocol.version=2".to_string(),
        ];
        // Keep the key file and ssh's error log alive (and private) until the fetch is over.
        let mut _key_file = None;
        let mut ssh_log = None;
        if kind(url) == Kind::Ssh {
            let (mut cmd, key_file) = self.ssh_command(creds)?;
            _key_file = key_file;
            // ssh's own messages ("Host key verification failed", "Permission denied
            // (publickey)") go to a private log so errors can quote them.
            let log = tempfile::Builder::new()
                .prefix("mooring-ssh-log-")
                .tempfile()
                .map_err(|source| SourceError::Io {
                    action: "creating the ssh log file",
                    path: std::env::temp_dir(),
                    source,
                })?;
            cmd.push_str(&format!(
                " \"$@\" 2>{}",
                shell_quote(&log.path().to_string_lossy())
            ));
            ssh_log = Some(log);
            overrides.push(format!("core.sshCommand={cmd}"));
            overrides.push("ssh.variant=ssh".to_string());
        } else if kind(url) == Kind::Http
            && creds.password().is_some()
            && url
                .get(..7)
                .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
        {
            tracing::warn!(url = %redact_url(url), "sending credentials over plain http");
        }
        let no_credentials = creds.is_empty();
        let withheld = creds
            .unmatched()
            .map(|why| format!("; {why}"))
            .unwrap_or_default();
        let classify = |e: &gix::Error| {
            let ssh_said = ssh_log.as_ref().map(|log| ssh_messages(log.path()));
            match classify(url, e, ssh_said.as_deref()) {
                SourceError::AuthFailed { url, detail } if no_credentials => {
                    SourceError::AuthFailed {
                        url,
                        detail: format!(
                            "the server wants credentials and none are configured for this repository{withheld} ({detail})"
                        ),
                    }
                }
                other => other,
            }
        };
        let repo = gix::open_opts(
            path,
            gix::open::Options::isolated().config_overrides(overrides),
        )
        .map_err(|e| cache_error(path, url, &e))?;

        let remote = repo
            .remote_at(url)
            .and_then(|r| r.with_refspecs(REFSPECS, gix::remote::Direction::Fetch))
            .map_err(|e| SourceError::InvalidUrl {
                url: redact_url(url),
                reason: describe(&e),
            })?
            .with_fetch_tags(gix::remote::fetch::Tags::None);
        let connection = remote
            .connect(gix::remote::Direction::Fetch)
            .map_err(|e| classify(&e))?;
        let account = match (creds.username(), creds.password()) {
            (user, Some(password)) => Some(gix::sec::identity::Account {
                username: user.unwrap_or("git").to_string(),
                password: password.to_string(),
                oauth_refresh_token: None,
            }),
            _ => None,
        };
        let connection = connection.with_credentials(move |action| match action {
            gix::credentials::helper::Action::Get(ctx) => {
                Ok(account
                    .clone()
                    .map(|identity| gix::credentials::protocol::Outcome {
                        identity,
                        next: ctx.into(),
                    }))
            }
            _ => Ok(None),
        });
        let outcome = connection
            .prepare_fetch(gix::progress::Discard, Default::default())
            .map_err(|e| classify(&e))?
            .receive(gix::progress::Discard, &AtomicBool::new(false))
            .map_err(|e| classify(&e))?;
        tracing::debug!(url = %redact_url(url), refs = outcome.ref_map.remote_refs.len(), "fetched");
        let downloaded = matches!(outcome.status, gix::remote::fetch::Status::Change { .. });
        let refs = outcome.ref_map.remote_refs;
        Ok((repo, refs, downloaded))
    }
}

pub(crate) fn open_existing(
    path: &Path,
    url: &str,
    commit: &str,
) -> Result<gix::Repository, SourceError> {
    if !path.join("HEAD").is_file() {
        return Err(SourceError::CommitUnavailable {
            url: redact_url(url),
            commit: commit.to_string(),
            detail: "the repository has not been fetched into the cache yet".to_string(),
        });
    }
    gix::open_opts(path, gix::open::Options::isolated()).map_err(|e| cache_error(path, url, &e))
}

/// The paths of the files that differ between two trees (added, deleted or modified; a
/// rename shows both paths), sorted: the one rule for "what a commit touched".
pub(crate) fn diff_paths(
    repo: &gix::Repository,
    url: &str,
    old: &gix::Tree<'_>,
    new: &gix::Tree<'_>,
    what: &str,
) -> Result<Vec<String>, SourceError> {
    let changes = repo
        .diff_tree_to_tree(Some(old), Some(new), gix::diff::Options::default())
        .map_err(|e| SourceError::Read {
            url: redact_url(url),
            what: what.to_string(),
            detail: describe(&e),
        })?;
    let mut paths = Vec::new();
    for change in &changes {
        use gix::object::tree::diff::ChangeDetached as C;
        if change.entry_mode().is_tree() {
            continue;
        }
        if let C::Rewrite {
            source_location, ..
        } = change
        {
            paths.push(source_location.to_str_lossy().into_owned());
        }
        paths.push(change.location().to_str_lossy().into_owned());
    }
    paths.sort();
    paths.dedup();
    Ok(paths)
}

/// Create the bare repository at `path`, replacing a half-made one.
fn ensure_bare(path: &Path) -> Result<(), SourceError> {
    if path.join("HEAD").is_file() && path.join("objects").is_dir() {
        return Ok(());
    }
    if path.exists() {
        std::fs::remove_dir_all(path).map_err(|source| SourceError::Io {
            action: "removing the incomplete cache repository",
            path: path.to_path_buf(),
            source,
        })?;
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| SourceError::Io {
            action: "creating the cache directory",
            path: parent.to_path_buf(),
            source,
        })?;
    }
    gix::init_bare(path).map_err(|e| SourceError::Io {
        action: "initialising the cache repository",
        path: path.to_path_buf(),
        source: std::io::Error::other(describe(&e)),
    })?;
    Ok(())
}

fn cache_error(path: &Path, url: &str, e: &gix::Error) -> SourceError {
    SourceError::Read {
        url: redact_url(url),
        what: format!("the cache repository {}", path.display()),
        detail: describe(e),
    }
}

fn write_key_file(key: &str) -> Result<tempfile::NamedTempFile, SourceError> {
    // tempfile creates the file with mode 0600.
    let mut file = tempfile::Builder::new()
        .prefix("mooring-ssh-key-")
        .tempfile()
        .map_err(|source| SourceError::Io {
            action: "creating the ssh key file",
            path: std::env::temp_dir(),
            source,
        })?;
    let mut text = key.replace("\r\n", "\n");
    if !text.ends_with('\n') {
        text.push('\n');
    }
    file.write_all(text.as_bytes())
        .and_then(|()| file.flush())
        .map_err(|source| SourceError::Io {
            action: "writing the ssh key file",
            path: file.path().to_path_buf(),
            source,
        })?;
    Ok(file)
}

/// Quote `s` for `sh` (gix runs `core.sshCommand` through the shell).
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn is_commit(repo: &gix::Repository, id: gix::ObjectId) -> bool {
    repo.find_header(id)
        .is_ok_and(|h| h.kind() == gix::object::Kind::Commit)
}

/// Turn `revision` into a commit using the refs the server just advertised and the
/// objects now in the cache.
fn resolve_in(
    repo: &gix::Repository,
    refs: &[Ref],
    url: &str,
    revision: &str,
) -> Result<CommitId, SourceError> {
    let not_found = || SourceError::RevisionNotFound {
        url: redact_url(url),
        revision: revision.to_string(),
    };
    let candidates: Vec<String> = if revision == "HEAD" || revision.starts_with("refs/") {
        vec![revision.to_string()]
    } else {
        vec![
            format!("refs/heads/{revision}"),
            format!("refs/tags/{revision}"),
        ]
    };
    for candidate in &candidates {
        let Some(found) = refs.iter().find(|r| r.unpack().0 == candidate.as_bytes()) else {
            continue;
        };
        let (_, target, peeled) = found.unpack();
        let Some(id) = peeled.or(target) else {
            // An unborn HEAD: the repository has no commits yet.
            return Err(not_found());
        };
        let commit = repo
            .find_object(id)
            .and_then(|o| o.peel_to_commit())
            .map_err(|e| SourceError::Read {
                url: redact_url(url),
                what: format!("{candidate} ({id})"),
                detail: describe(&e),
            })?;
        return Ok(CommitId::from_oid(&commit.id));
    }
    let hex = revision.len() >= 4
        && revision.len() <= 40
        && revision.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex {
        return Err(not_found());
    }
    if revision.len() == 40 {
        let id = gix::ObjectId::from_hex(revision.as_bytes()).map_err(|_| not_found())?;
        return if is_commit(repo, id) {
            Ok(CommitId::from_oid(&id))
        } else {
            Err(not_found())
        };
    }
    let prefix = gix::hash::Prefix::from_hex(revision).map_err(|_| not_found())?;
    let mut candidates = HashSet::new();
    repo.objects
        .lookup_prefix(prefix, Some(&mut candidates))
        .map_err(|e| SourceError::Read {
            url: redact_url(url),
            what: format!("objects starting with {revision}"),
            detail: e.to_string(),
        })?;
    let mut commits: Vec<_> = candidates
        .into_iter()
        .filter(|id| is_commit(repo, *id))
        .collect();
    match commits.len() {
        0 => Err(not_found()),
        1 => Ok(CommitId::from_oid(&commits.remove(0))),
        _ => Err(SourceError::AmbiguousRevision {
            url: redact_url(url),
            revision: revision.to_string(),
        }),
    }
}

/// The last meaningful lines ssh wrote to its log.
fn ssh_messages(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Warning: Permanently added"))
        .collect();
    lines[lines.len().saturating_sub(3)..].join("; ")
}

/// Sort a transport failure into unreachable / not found / authentication / other.
/// `ssh_said` is what the ssh client printed, when ssh was used.
fn classify(url: &str, e: &gix::Error, ssh_said: Option<&str>) -> SourceError {
    let mut detail = describe(e);
    if let Some(said) = ssh_said.filter(|s| !s.is_empty()) {
        detail = format!("ssh: {said} ({detail})");
    }
    let lower = detail.to_ascii_lowercase();
    let url = redact_url(url);
    // Status codes only count as numbers of their own: the `404` in port 44041 is not one.
    let has = |needles: &[&str]| {
        needles.iter().any(|n| {
            lower.match_indices(n).any(|(i, _)| {
                let digit = |c: Option<char>| c.is_some_and(|c| c.is_ascii_digit());
                !n.bytes().all(|b| b.is_ascii_digit())
                    || (!digit(lower[..i].chars().next_back())
                        && !digit(lower[i + n.len()..].chars().next()))
            })
        })
    };
    if has(&[
        "host key verification failed",
        "remote host identification has changed",
    ]) {
        return SourceError::HostKeyRejected { url, detail };
    }
    if e.is_unauthenticated()
        || has(&[
            "401",
            "authentication",
            "permission denied (publickey",
            "permission denied, please try again",
            "too many authentication failures",
        ])
    {
        return SourceError::AuthFailed { url, detail };
    }
    if has(&[
        "404",
        "not a valid git directory",
        "does not appear to be a git repository",
        "repository not found",
        "could not verify that",
        "no such file or directory",
    ]) {
        return SourceError::RepositoryNotFound { url, detail };
    }
    if has(&[
        "connection refused",
        "could not resolve",
        "dns error",
        "failed to lookup",
        "timed out",
        "no route to host",
        "network is unreachable",
        "connection reset",
        "error sending request",
        "connection closed by remote host",
        "connection closed",
        "operation timed out",
    ]) {
        return SourceError::Unreachable { url, detail };
    }
    SourceError::Fetch { url, detail }
}

/// Write one exported file under `dest`, never following anything already there.
pub(crate) fn write_exported(dest: &Path, file: &TreeFile) -> Result<(), SourceError> {
    let target = dest.join(&file.path);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(|source| SourceError::Io {
            action: "creating an export directory",
            path: parent.to_path_buf(),
            source,
        })?;
    }
    let io = |source| SourceError::Io {
        action: "writing an exported file",
        path: target.clone(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(if file.executable { 0o755 } else { 0o644 });
    }
    let mut out = options.open(&target).map_err(io)?;
    out.write_all(&file.data).map_err(io)?;
    Ok(())
}
