//! Repository credentials, read from Argo CD repository Secrets and credential templates,
//! and matched to repository URLs the way Argo CD matches them.
//!
//! An Argo CD repository Secret carries the label `argocd.argoproj.io/secret-type:
//! repository` (a credential template: `repo-creds`) and the keys `url`, `username`,
//! `password` (a password or a token), `sshPrivateKey`, `insecure` and `type`,
//! base64-encoded under `data` or in plain text under `stringData` (which wins, as it
//! does when Kubernetes stores the Secret).
//!
//! # Which credentials a URL gets ([`CredentialIndex`])
//!
//! Credentials are a secret sent to a server, so a URL gets them only from a Secret
//! written for *that* server and repository:
//!
//! * a repository Secret matches one repository URL exactly;
//! * a credential template matches every URL under its URL (Argo CD's
//!   `getRepositoryCredentialIndex`: the longest matching template wins), with the path a
//!   prefix at a `/` boundary (`https://git.example.com/org` covers `…/org/repo`, never
//!   `…/organisation/repo`);
//! * both compare the scheme, the host and the port (a default port written out is the
//!   same port), so credentials for `https://host/org/repo` are never sent to
//!   `http://host:19999/org/repo` — not in clear text over plain http, not to another
//!   service on the same host, and an ssh key never goes to an http URL. The user name in
//!   the URL, the case, a trailing `/` and `.git` do not matter (Argo CD's
//!   `NormalizeGitURL`); scp-like `git@host:org/repo` is `ssh://git@host/org/repo`.
//! * a repository Secret beats a template, as in Argo CD.
//! * a repository Secret with a `project` key (Argo CD's project-scoped repository) serves
//!   only Applications of that project; one without serves every project, and a scoped
//!   one wins over it for its own project (Argo CD's `getRepositorySecret`). Another
//!   project's scoped Secret is never used.
//!
//! When nothing matches but a Secret names the same host and path under another scheme
//! or port, the returned (empty) credentials say so ([`Credentials::unmatched`]), and an
//! authentication failure quotes it: the user sees why the credentials were withheld.

use std::fmt;

use base64::Engine as _;

use crate::SourceError;

/// The label that marks an Argo CD repository Secret.
pub const SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";

/// How to authenticate to one repository. `Debug` never prints the secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    username: Option<String>,
    password: Option<String>,
    ssh_private_key: Option<String>,
    insecure: bool,
    /// Why no credentials were found although a Secret names this repository under
    /// another scheme or port (see [`CredentialIndex::lookup`]).
    unmatched: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field(
                "ssh_private_key",
                &self.ssh_private_key.as_ref().map(|_| "***"),
            )
            .field("insecure", &self.insecure)
            .field("unmatched", &self.unmatched)
            .finish()
    }
}

impl Credentials {
    /// No credentials: public repositories, or ssh with the user's own keys.
    pub fn none() -> Self {
        Self::default()
    }

    /// HTTP basic authentication. For token authentication pass the token as `password`
    /// (GitHub and GitLab accept any non-empty user name with a token).
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: Some(username.into()),
            password: Some(password.into()),
            ..Self::default()
        }
    }

    /// An ssh private key in OpenSSH or PEM format.
    pub fn ssh_key(private_key: impl Into<String>) -> Self {
        Credentials {
            ssh_private_key: Some(private_key.into()),
            ..Self::default()
        }
    }

    /// Skip host-key checking for ssh (Argo CD's `insecure: "true"`).
    pub fn with_insecure(mut self, insecure: bool) -> Self {
        self.insecure = insecure;
        self
    }

    /// The user name, if any.
    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    /// The password or token, if any.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The ssh private key, if any.
    pub fn ssh_private_key(&self) -> Option<&str> {
        self.ssh_private_key.as_deref()
    }

    /// Whether host-key checking is off.
    pub fn insecure(&self) -> bool {
        self.insecure
    }

    /// Whether there is anything to send (a password or an ssh key).
    pub fn is_empty(&self) -> bool {
        self.password.is_none() && self.ssh_private_key.is_none()
    }

    /// Why a repository got no credentials although a Secret names it under another
    /// scheme or port (set by [`CredentialIndex::lookup`]).
    pub fn unmatched(&self) -> Option<&str> {
        self.unmatched.as_deref()
    }

    /// Read an Argo CD repository Secret (as JSON, e.g. from kube) and return its URL and
    /// credentials. The URL is checked with [`crate::validate_url`]. A credential
    /// template (`repo-creds`) is refused here: read it with [`RepoSecret::parse`].
    pub fn from_repository_secret(
        secret: &serde_json::Value,
    ) -> Result<(String, Credentials), SourceError> {
        let s = RepoSecret::parse(secret)?;
        if s.kind != SecretKind::Repository {
            return Err(SourceError::InvalidSecret {
                name: s.name,
                reason: format!(
                    "label {SECRET_TYPE_LABEL} is \"repo-creds\" (a credential template), expected \"repository\""
                ),
            });
        }
        Ok((s.url, s.credentials))
    }
}

/// What an Argo CD repository Secret is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretKind {
    /// `repository`: credentials for one repository URL, matched exactly.
    Repository,
    /// `repo-creds`: a credential template for every repository under its URL.
    Template,
}

/// A parsed repository Secret or credential template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoSecret {
    /// `metadata.name`.
    pub name: String,
    pub kind: SecretKind,
    /// The `url` key, checked with [`crate::validate_url`].
    pub url: String,
    /// The `project` key: the only project whose Applications may use it.
    pub project: Option<String>,
    pub credentials: Credentials,
}

impl RepoSecret {
    /// Read an Argo CD repository Secret (`argocd.argoproj.io/secret-type: repository`) or
    /// credential template (`repo-creds`), as JSON.
    pub fn parse(secret: &serde_json::Value) -> Result<RepoSecret, SourceError> {
        let name = secret
            .pointer("/metadata/name")
            .and_then(|v| v.as_str())
            .unwrap_or("<unnamed>")
            .to_string();
        let bad = |reason: String| SourceError::InvalidSecret {
            name: name.clone(),
            reason,
        };
        let kind = match secret
            .pointer("/metadata/labels")
            .and_then(|l| l.get(SECRET_TYPE_LABEL))
            .and_then(|v| v.as_str())
        {
            Some("repository") => SecretKind::Repository,
            Some("repo-creds") => SecretKind::Template,
            Some(other) => {
                return Err(bad(format!(
                "label {SECRET_TYPE_LABEL} is {other:?}, expected \"repository\" or \"repo-creds\""
            )))
            }
            None => {
                return Err(bad(format!(
                    "label {SECRET_TYPE_LABEL}: repository is missing"
                )))
            }
        };
        let field = |key: &str| -> Result<Option<String>, SourceError> {
            if let Some(v) = secret.get("stringData").and_then(|d| d.get(key)) {
                return match v.as_str() {
                    Some(s) => Ok(Some(s.to_string())),
                    None => Err(bad(format!("stringData.{key} is not a string"))),
                };
            }
            let Some(v) = secret.get("data").and_then(|d| d.get(key)) else {
                return Ok(None);
            };
            let Some(encoded) = v.as_str() else {
                return Err(bad(format!("data.{key} is not a string")));
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|e| bad(format!("data.{key} is not valid base64: {e}")))?;
            String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| bad(format!("data.{key} is not UTF-8 text")))
        };
        if let Some(kind) = field("type")? {
            if !kind.is_empty() && kind != "git" {
                return Err(bad(format!(
                    "type is {kind:?}; only \"git\" repositories are fetched by this crate"
                )));
            }
        }
        let url = field("url")?
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .ok_or_else(|| bad("the url key is missing".to_string()))?;
        if kind == SecretKind::Repository {
            crate::validate_url(&url)?;
        } else if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad(format!(
                "url {:?} contains whitespace or control characters",
                crate::redact_url(&url)
            )));
        }
        if UrlKey::parse(&url).is_none() {
            return Err(bad(format!(
                "url {:?} has no scheme, host and path to match repositories against",
                crate::redact_url(&url)
            )));
        }
        let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
        let credentials = Credentials {
            username: non_empty(field("username")?),
            password: non_empty(field("password")?),
            ssh_private_key: non_empty(field("sshPrivateKey")?),
            insecure: field("insecure")?.is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
            unmatched: None,
        };
        let project = non_empty(field("project")?).map(|p| p.trim().to_string());
        Ok(RepoSecret {
            name,
            kind,
            url,
            project,
            credentials,
        })
    }
}

/// The parts of a repository URL that decide which credentials it gets: scheme, host,
/// port (default ports filled in) and path (lower case, without surrounding `/` and
/// `.git`). The user name is not part of it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct UrlKey {
    scheme: String,
    host: String,
    port: Option<u16>,
    path: String,
}

impl UrlKey {
    fn parse(url: &str) -> Option<UrlKey> {
        let url = url.trim().to_ascii_lowercase();
        let (scheme, authority, path) = match url.split_once("://") {
            Some((scheme, rest)) => {
                let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                (scheme.to_string(), authority.to_string(), path.to_string())
            }
            None => {
                // scp-like [user@]host:path
                let (authority, path) = url.split_once(':')?;
                if authority.contains('/') {
                    return None;
                }
                ("ssh".to_string(), authority.to_string(), path.to_string())
            }
        };
        let hostport = authority
            .rsplit_once('@')
            .map_or(authority.as_str(), |(_, h)| h);
        let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
            // [IPv6]:port
            let (host, after) = rest.split_once(']')?;
            (format!("[{host}]"), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (hostport.to_string(), None),
            }
        };
        let port = match port.filter(|p| !p.is_empty()) {
            Some(p) => Some(p.parse::<u16>().ok()?),
            None => match scheme.as_str() {
                "http" => Some(80),
                "https" => Some(443),
                "ssh" => Some(22),
                _ => None,
            },
        };
        let mut path = path.trim_matches('/');
        if let Some(stripped) = path.strip_suffix(".git") {
            path = stripped.trim_end_matches('/');
        }
        if scheme != "file" && host.is_empty() {
            return None;
        }
        Some(UrlKey {
            scheme,
            host,
            port,
            path: path.to_string(),
        })
    }

    /// Whether a template for `self` covers `url`: same scheme, host and port, and
    /// `self.path` a prefix of `url.path` at a `/` boundary.
    fn covers(&self, url: &UrlKey) -> bool {
        self.same_server(url)
            && (self.path.is_empty()
                || url.path == self.path
                || url
                    .path
                    .strip_prefix(&self.path)
                    .is_some_and(|rest| rest.starts_with('/')))
    }

    fn same_server(&self, other: &UrlKey) -> bool {
        self.scheme == other.scheme && self.host == other.host && self.port == other.port
    }
}

/// Every repository Secret and credential template Mooring reads, by Secret name, and the
/// lookup of the credentials for one repository URL (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct CredentialIndex {
    secrets: std::collections::BTreeMap<String, (RepoSecret, UrlKey)>,
}

impl CredentialIndex {
    /// Add or replace the Secret `secret.name`.
    pub fn insert(&mut self, secret: RepoSecret) {
        if let Some(key) = UrlKey::parse(&secret.url) {
            self.secrets.insert(secret.name.clone(), (secret, key));
        }
    }

    /// Forget the Secret `name`.
    pub fn remove(&mut self, name: &str) {
        self.secrets.remove(name);
    }

    /// Number of Secrets held.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// Whether no Secret is held.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// The credentials an Application of `project` (`None`: no project, e.g. a templated
    /// ApplicationSet) uses for repository `url`: the repository Secret for exactly that
    /// URL (scoped to `project`, else unscoped), else the longest credential template
    /// covering it, else none (with [`Credentials::unmatched`] naming a Secret for the
    /// same host and path under another scheme or port, or of another project, if there
    /// is one).
    pub fn lookup(&self, url: &str, project: Option<&str>) -> Credentials {
        let Some(want) = UrlKey::parse(url) else {
            return Credentials::none();
        };
        let for_url = || {
            self.secrets
                .values()
                .filter(|(s, k)| s.kind == SecretKind::Repository && *k == want)
        };
        let repository = for_url()
            .find(|(s, _)| s.project.is_some() && s.project.as_deref() == project)
            .or_else(|| for_url().find(|(s, _)| s.project.is_none()));
        if let Some((s, _)) = repository {
            return s.credentials.clone();
        }
        let template = self
            .secrets
            .values()
            .filter(|(s, k)| s.kind == SecretKind::Template && k.covers(&want))
            .max_by_key(|(_, k)| k.path.len());
        if let Some((s, _)) = template {
            return s.credentials.clone();
        }
        let near = self.secrets.values().find(|(s, k)| {
            k.host == want.host
                && !k.same_server(&want)
                && match s.kind {
                    SecretKind::Repository => k.path == want.path,
                    SecretKind::Template => UrlKey {
                        scheme: want.scheme.clone(),
                        port: want.port,
                        ..k.clone()
                    }
                    .covers(&want),
                }
        });
        let mut none = Credentials::none();
        // The most relevant explanation first: a Secret for exactly this URL.
        if let Some((s, _)) = for_url().next() {
            none.unmatched = Some(format!(
                "repository Secret {:?} for {} belongs to project {:?}, not {}",
                s.name,
                crate::redact_url(url),
                s.project.as_deref().unwrap_or_default(),
                project.map_or("this application's".to_string(), |p| format!("{p:?}"))
            ));
        } else if let Some((s, _)) = near {
            none.unmatched = Some(format!(
                "the credentials of Secret {:?} are for {} and are not sent to {}: scheme, host and port must match",
                s.name,
                crate::redact_url(&s.url),
                crate::redact_url(url)
            ));
        }
        none
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn reads_data_and_string_data() {
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "repo-1", "labels": {SECRET_TYPE_LABEL: "repository"}},
            "data": {"url": b64("https://git.example.com/org/repo.git"), "username": b64("alice"), "password": b64("old")},
            "stringData": {"password": "token-123", "insecure": "true"}
        });
        let (url, creds) = Credentials::from_repository_secret(&secret).expect("valid secret");
        assert_eq!(url, "https://git.example.com/org/repo.git");
        assert_eq!(creds.username(), Some("alice"));
        assert_eq!(creds.password(), Some("token-123"));
        assert!(creds.insecure());
        assert!(!format!("{creds:?}").contains("token-123"));
    }

    #[test]
    fn reads_ssh_key() {
        let secret = json!({
            "metadata": {"name": "r", "labels": {SECRET_TYPE_LABEL: "repository"}},
            "data": {"url": b64("git@github.com:org/repo.git"), "sshPrivateKey": b64("-----BEGIN OPENSSH PRIVATE KEY-----\n")},
        });
        let (url, creds) = Credentials::from_repository_secret(&secret).expect("valid secret");
        assert_eq!(url, "git@github.com:org/repo.git");
        assert!(creds.ssh_private_key().is_some());
        assert_eq!(creds.username(), None);
    }

    #[test]
    fn refuses_wrong_label_bad_base64_and_bad_url() {
        let wrong = json!({"metadata": {"name": "x", "labels": {SECRET_TYPE_LABEL: "cluster"}}, "stringData": {"url": "https://h/r"}});
        let e = Credentials::from_repository_secret(&wrong).expect_err("wrong label");
        assert!(e.to_string().contains("cluster"), "{e}");
        let unlabelled = json!({"metadata": {"name": "x"}, "stringData": {"url": "https://h/r"}});
        assert!(Credentials::from_repository_secret(&unlabelled).is_err());
        let bad64 = json!({"metadata": {"name": "x", "labels": {SECRET_TYPE_LABEL: "repository"}}, "data": {"url": "%%%"}});
        let e = Credentials::from_repository_secret(&bad64).expect_err("bad base64");
        assert!(e.to_string().contains("data.url"), "{e}");
        let inject = json!({"metadata": {"name": "x", "labels": {SECRET_TYPE_LABEL: "repository"}}, "stringData": {"url": "ext::sh -c id"}});
        assert!(matches!(
            Credentials::from_repository_secret(&inject),
            Err(SourceError::InvalidUrl { .. })
        ));
        let nourl = json!({"metadata": {"name": "x", "labels": {SECRET_TYPE_LABEL: "repository"}}, "stringData": {}});
        assert!(Credentials::from_repository_secret(&nourl).is_err());
    }

    fn secret(name: &str, kind: &str, url: &str, password: &str) -> RepoSecret {
        RepoSecret::parse(&json!({
            "metadata": {"name": name, "labels": {SECRET_TYPE_LABEL: kind}},
            "stringData": {"url": url, "username": "u", "password": password}
        }))
        .expect("valid secret")
    }

    #[test]
    fn repository_secrets_match_the_exact_url_with_scheme_host_and_port() {
        let mut idx = CredentialIndex::default();
        idx.insert(secret(
            "r",
            "repository",
            "https://Git.Example.com/org/private.git",
            "p1",
        ));
        for same in [
            "https://git.example.com/org/private.git",
            "https://git.example.com/org/private",
            "https://git.example.com:443/org/private/",
            "https://bob@git.example.com/ORG/private.git",
        ] {
            assert_eq!(idx.lookup(same, None).password(), Some("p1"), "{same}");
        }
        for other in [
            "http://git.example.com/org/private.git",
            "http://git.example.com:19999/org/private.git",
            "https://git.example.com:8443/org/private.git",
            "ssh://git@git.example.com/org/private.git",
            "git@git.example.com:org/private.git",
            "https://git.example.com/org/private2.git",
            "https://evil.example.com/org/private.git",
        ] {
            let c = idx.lookup(other, None);
            assert!(c.is_empty(), "{other}: {c:?}");
        }
        let why = idx.lookup("http://git.example.com:19999/org/private.git", None);
        let why = why.unmatched().expect("a near miss is explained");
        assert!(
            why.contains("scheme, host and port must match") && why.contains("\"r\""),
            "{why}"
        );
        assert!(idx
            .lookup("https://other.example.com/x/y", None)
            .unmatched()
            .is_none());
    }

    #[test]
    fn templates_match_by_prefix_at_a_slash_and_the_longest_wins() {
        let mut idx = CredentialIndex::default();
        idx.insert(secret(
            "host",
            "repo-creds",
            "https://git.example.com",
            "host",
        ));
        idx.insert(secret(
            "org",
            "repo-creds",
            "https://git.example.com/org/",
            "org",
        ));
        idx.insert(secret(
            "exact",
            "repository",
            "https://git.example.com/org/special",
            "exact",
        ));
        idx.insert(secret(
            "ssh",
            "repo-creds",
            "git@git.example.com:org",
            "ssh",
        ));
        let got = |idx: &CredentialIndex, u: &str| idx.lookup(u, None).password().map(String::from);
        assert_eq!(
            got(&idx, "https://git.example.com/org/repo.git").as_deref(),
            Some("org")
        );
        assert_eq!(
            got(&idx, "https://git.example.com/org").as_deref(),
            Some("org")
        );
        assert_eq!(
            got(&idx, "https://git.example.com/organisation/repo").as_deref(),
            Some("host")
        );
        assert_eq!(
            got(&idx, "https://git.example.com/org/special.git").as_deref(),
            Some("exact")
        );
        assert_eq!(
            got(&idx, "ssh://git@git.example.com/org/repo").as_deref(),
            Some("ssh")
        );
        assert_eq!(
            got(&idx, "git@git.example.com:org/repo.git").as_deref(),
            Some("ssh")
        );
        assert_eq!(got(&idx, "http://git.example.com/org/repo.git"), None);
        assert_eq!(got(&idx, "git@git.example.com:organisation/repo.git"), None);
        idx.remove("org");
        assert_eq!(
            got(&idx, "https://git.example.com/org/repo.git").as_deref(),
            Some("host")
        );
        let e = Credentials::from_repository_secret(&json!({
            "metadata": {"name": "t", "labels": {SECRET_TYPE_LABEL: "repo-creds"}},
            "stringData": {"url": "https://git.example.com/org"}
        }))
        .expect_err("a template is not a repository Secret");
        assert!(e.to_string().contains("repo-creds"), "{e}");
    }

    #[test]
    fn project_scoped_repository_secrets_serve_only_their_project() {
        let scoped = |name: &str, project: Option<&str>, password: &str| {
            let mut data = json!({"url": "https://git.example.com/org/repo.git", "username": "u", "password": password});
            if let Some(p) = project {
                data["project"] = json!(p);
            }
            RepoSecret::parse(&json!({
                "metadata": {"name": name, "labels": {SECRET_TYPE_LABEL: "repository"}},
                "stringData": data
            }))
            .expect("valid secret")
        };
        let url = "https://git.example.com/org/repo";
        let mut idx = CredentialIndex::default();
        idx.insert(scoped("team-a", Some("team-a"), "a"));
        assert_eq!(idx.lookup(url, Some("team-a")).password(), Some("a"));
        for other in [Some("team-b"), None] {
            let c = idx.lookup(url, other);
            assert!(c.is_empty(), "{other:?}");
            let why = c.unmatched().expect("explained");
            assert!(why.contains("belongs to project \"team-a\""), "{why}");
        }
        idx.insert(scoped("global", None, "g"));
        assert_eq!(
            idx.lookup(url, Some("team-a")).password(),
            Some("a"),
            "scoped wins"
        );
        assert_eq!(idx.lookup(url, Some("team-b")).password(), Some("g"));
        assert_eq!(idx.lookup(url, None).password(), Some("g"));
    }
}
