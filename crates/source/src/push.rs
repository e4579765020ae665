//! Pushing a commit from the cache to a branch of the remote repository.
//!
//! gix 0.90 has no push, so this runs the `git` binary (`git push`) against the cached
//! bare repository, with the same transports and credentials as a fetch and nothing
//! secret on a command line or in a URL:
//!
//! * `http(s)://`: the username and password reach git through `GIT_ASKPASS`, a
//!   two-line script in a private temporary directory that prints environment variables
//!   only the child process has; no credential helper, no terminal prompt, no system or
//!   global Git configuration;
//! * `ssh://` and scp-like URLs: `GIT_SSH_COMMAND` is the ssh command a fetch uses (the
//!   Secret's key in a 0600 temporary file, batch mode, the known-hosts rule);
//! * `file://`: local, no credentials.
//!
//! The push is never forced: pushing onto a branch that moved since it was resolved is
//! refused by the server as a non-fast-forward ([`SourceError::PushRejected`]), which is
//! what `mooring rollback git --direct` relies on.

use std::io::Write as _;
use std::process::{Command, Stdio};

use crate::url::{kind, redact_url, validate_url, Kind};
use crate::{CommitId, Credentials, RepoCache, SourceError};

/// A branch name Git accepts, checked before it reaches `git` (no option, no `..`, no
/// control characters: Git's `check-ref-format` rules, through gix's validator).
pub fn validate_branch(branch: &str) -> Result<(), SourceError> {
    let refuse = |reason: String| SourceError::InvalidBranch {
        branch: branch.to_string(),
        reason,
    };
    if branch.starts_with('-') {
        return Err(refuse("it starts with '-'".into()));
    }
    if branch.starts_with("refs/") {
        return Err(refuse("give the branch name without refs/heads/".into()));
    }
    gix::refs::FullName::try_from(format!("refs/heads/{branch}"))
        .map(|_| ())
        .map_err(|e| refuse(e.to_string()))
}

impl RepoCache {
    /// Push `commit` (in the cache) to `branch` of `url`, never forced: a new branch is
    /// created, an existing one only fast-forwarded.
    pub fn push(
        &self,
        url: &str,
        commit: &CommitId,
        branch: &str,
        creds: &Credentials,
    ) -> Result<(), SourceError> {
        validate_url(url)?;
        validate_branch(branch)?;
        let path = self.repo_dir(url);
        let lock = self.lock_for(&path);
        let _guard = lock.lock().unwrap_or_else(|e| e.into_inner());
        let io = |action: &'static str| {
            let path = path.clone();
            move |source| SourceError::Io {
                action,
                path,
                source,
            }
        };
        let home = tempfile::Builder::new()
            .prefix("mooring-push-")
            .tempdir()
            .map_err(io("creating the push's private directory"))?;
        let mut cmd = Command::new("git");
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            // ssh reads the user's known_hosts from HOME, as a fetch does; git's own
            // global configuration is off (GIT_CONFIG_GLOBAL below).
            .env(
                "HOME",
                std::env::var_os("HOME").unwrap_or_else(|| home.path().as_os_str().to_owned()),
            )
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("LANG", "C")
            .arg("--git-dir")
            .arg(&path)
            .args(["-c", "credential.helper=", "-c", "core.askPass="])
            .args(["push", "--no-verify", "--porcelain"]);
        let _key_file;
        match kind(url) {
            Kind::Ssh => {
                let (ssh, key) = self.ssh_command(creds)?;
                _key_file = key;
                cmd.env("GIT_SSH_COMMAND", ssh)
                    .env("GIT_SSH_VARIANT", "ssh");
            }
            Kind::Http => {
                if let Some(password) = creds.password() {
                    let askpass = home.path().join("askpass");
                    let script = "#!/bin/sh\ncase \"$1\" in\n  Username*) printf '%s\\n' \"$MOORING_GIT_USERNAME\" ;;\n  *) printf '%s\\n' \"$MOORING_GIT_PASSWORD\" ;;\nesac\n";
                    let mut options = std::fs::OpenOptions::new();
                    options.write(true).create_new(true);
                    #[cfg(unix)]
                    {
                        use std::os::unix::fs::OpenOptionsExt as _;
                        options.mode(0o700);
                    }
                    options
                        .open(&askpass)
                        .and_then(|mut f| f.write_all(script.as_bytes()))
                        .map_err(io("writing the askpass script"))?;
                    cmd.env("GIT_ASKPASS", &askpass)
                        .env("MOORING_GIT_USERNAME", creds.username().unwrap_or("git"))
                        .env("MOORING_GIT_PASSWORD", password);
                }
            }
            _ => {}
        }
        cmd.arg(url)
            .arg(format!("{commit}:refs/heads/{branch}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let output = cmd.output().map_err(|source| SourceError::Push {
            url: redact_url(url),
            branch: branch.to_string(),
            detail: format!("cannot run git ({source}); install the git package"),
        })?;
        if output.status.success() {
            tracing::info!(url = %redact_url(url), %branch, %commit, "pushed");
            return Ok(());
        }
        let said = format!(
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let detail = said
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && *l != "Done")
            .collect::<Vec<_>>()
            .join("; ");
        let detail = match creds.password() {
            Some(p) if !p.is_empty() => detail.replace(p, "***"),
            _ => detail,
        };
        let lower = detail.to_ascii_lowercase();
        let url = redact_url(url);
        let branch = branch.to_string();
        Err(
            if [
                "non-fast-forward",
                "fetch first",
                "[rejected]",
                "stale info",
            ]
            .iter()
            .any(|n| lower.contains(n))
            {
                SourceError::PushRejected {
                    url,
                    branch,
                    detail,
                }
            } else if [
                "authentication failed",
                "could not read username",
                "could not read password",
                "permission denied",
                "401",
                "403",
            ]
            .iter()
            .any(|n| lower.contains(n))
            {
                SourceError::AuthFailed { url, detail }
            } else {
                SourceError::Push {
                    url,
                    branch,
                    detail,
                }
            },
        )
    }
}
