//! Push webhooks from GitHub and GitLab: verification and parsing. Pure — no I/O.
//!
//! A push tells Mooring *which repository* changed and, when the provider lists them,
//! *which files*: with [`normalize_repo_url`] the caller finds the Applications whose
//! `repoURL` is that repository, and with [`touches`] it skips those whose `path` the push
//! did not touch. When the file list is incomplete (providers cap the commits in a
//! payload at 20, and a forced push rewrites history) [`PushEvent::changed_files`] is
//! `None` and every Application of the repository must be refreshed.
//!
//! Verification follows the providers' documentation:
//!
//! * GitHub signs the raw body with HMAC-SHA256 and sends `X-Hub-Signature-256:
//!   sha256=<hex>`; the comparison is constant-time ([`hmac::Mac::verify_slice`]).
//! * GitLab sends the configured secret in `X-Gitlab-Token`; compared in constant time.
//!
//! When no secret is configured at all, events are accepted without verification, as in
//! Argo CD. Once any secret is configured, a provider without its own secret is refused
//! ([`WebhookError::Unverified`]) instead of accepted unsigned (Argo CD would accept it):
//! an admin who sets a secret means "only signed pushes". Bodies over
//! [`MAX_BODY_BYTES`] are refused before anything is parsed.

use hmac::{Hmac, Mac as _};
use http::HeaderMap;
use serde_json::Value;
use subtle::ConstantTimeEq as _;

/// The largest webhook body accepted: 1 MiB.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Providers list at most this many commits in a push payload.
const PROVIDER_COMMIT_CAP: usize = 20;

/// A verified push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushEvent {
    /// Every URL the payload gives for the repository (web, http clone, ssh clone).
    /// Compare them with [`normalize_repo_url`].
    pub repo_urls: Vec<String>,
    /// The pushed ref, e.g. `refs/heads/main` or `refs/tags/v1.2.0`.
    pub git_ref: String,
    /// The commit the ref points to now; `None` when the ref was deleted.
    pub after: Option<String>,
    /// Files added, modified or removed by the pushed commits, when the payload lists
    /// them all; `None` means "unknown: assume everything changed".
    pub changed_files: Option<Vec<String>>,
}

impl PushEvent {
    /// The branch name, when a branch was pushed.
    pub fn branch(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/heads/")
    }

    /// The tag name, when a tag was pushed.
    pub fn tag(&self) -> Option<&str> {
        self.git_ref.strip_prefix("refs/tags/")
    }
}

/// Why a webhook request was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The body is over [`MAX_BODY_BYTES`].
    #[error("webhook body is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// The body's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A header needed for verification is missing.
    #[error(
        "webhook request has no {header} header; configure the webhook secret at the provider too"
    )]
    MissingHeader {
        /// The header's name.
        header: &'static str,
    },
    /// The GitHub signature does not match the body and the configured secret.
    #[error("webhook signature (X-Hub-Signature-256) does not match; check that the webhook secret is the same at GitHub and in Mooring")]
    BadSignature,
    /// The GitLab token differs from the configured one.
    #[error("webhook token (X-Gitlab-Token) does not match; check that the secret token is the same at GitLab and in Mooring")]
    BadToken,
    /// Webhook secrets are configured, but none for this provider.
    #[error("webhook secrets are configured but none for {provider}, so its unsigned pushes are refused; set webhook.{key}.secret in mooring-secret (or --webhook-secret)")]
    Unverified {
        /// `GitHub` or `GitLab`.
        provider: &'static str,
        /// `github` or `gitlab`.
        key: &'static str,
    },
    /// The request is not from a provider this module knows.
    #[error(
        "webhook request is neither from GitHub (X-GitHub-Event) nor from GitLab (X-Gitlab-Event)"
    )]
    UnknownProvider,
    /// The body is not the JSON the provider documents.
    #[error("webhook payload is not a valid {provider} push event: {reason}")]
    InvalidPayload {
        /// `GitHub` or `GitLab`.
        provider: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn check_size(body: &[u8]) -> Result<(), WebhookError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(WebhookError::TooLarge {
            size: body.len(),
            limit: MAX_BODY_BYTES,
        });
    }
    Ok(())
}

/// Verify and parse a request from either provider, chosen by its event header.
pub fn parse(
    headers: &HeaderMap,
    body: &[u8],
    github_secret: Option<&str>,
    gitlab_secret: Option<&str>,
) -> Result<Option<PushEvent>, WebhookError> {
    check_size(body)?;
    let github_secret = github_secret.filter(|s| !s.is_empty());
    let gitlab_secret = gitlab_secret.filter(|s| !s.is_empty());
    let any_secret = github_secret.is_some() || gitlab_secret.is_some();
    if headers.contains_key("x-github-event") {
        if any_secret && github_secret.is_none() {
            return Err(WebhookError::Unverified {
                provider: "GitHub",
                key: "github",
            });
        }
        parse_github(headers, body, github_secret)
    } else if headers.contains_key("x-gitlab-event") {
        if any_secret && gitlab_secret.is_none() {
            return Err(WebhookError::Unverified {
                provider: "GitLab",
                key: "gitlab",
            });
        }
        parse_gitlab(headers, body, gitlab_secret)
    } else {
        Err(WebhookError::UnknownProvider)
    }
}

/// Verify and parse a GitHub webhook. `ping` and events other than `push` verify and
/// give `Ok(None)`.
pub fn parse_github(
    headers: &HeaderMap,
    body: &[u8],
    secret: Option<&str>,
) -> Result<Option<PushEvent>, WebhookError> {
    check_size(body)?;
    if let Some(secret) = secret.filter(|s| !s.is_empty()) {
        let signature =
            header(headers, "x-hub-signature-256").ok_or(WebhookError::MissingHeader {
                header: "X-Hub-Signature-256",
            })?;
        let hex = signature
            .strip_prefix("sha256=")
            .ok_or(WebhookError::BadSignature)?;
        let expected = decode_hex(hex).ok_or(WebhookError::BadSignature)?;
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
            .map_err(|_| WebhookError::BadSignature)?;
        mac.update(body);
        mac.verify_slice(&expected)
            .map_err(|_| WebhookError::BadSignature)?;
    }
    let event = header(headers, "x-github-event").ok_or(WebhookError::MissingHeader {
        header: "X-GitHub-Event",
    })?;
    if event != "push" {
        return Ok(None);
    }
    let (payload, git_ref, repo_urls) = push_payload(
        "GitHub",
        body,
        &[
            "/repository/html_url",
            "/repository/clone_url",
            "/repository/ssh_url",
            "/repository/git_url",
            "/repository/url",
        ],
    )?;
    let forced = payload.get("forced").and_then(Value::as_bool) == Some(true);
    let changed_files = if forced {
        None
    } else {
        changed_files(&payload, None)
    };
    Ok(Some(PushEvent {
        repo_urls,
        git_ref,
        after: after(&payload),
        changed_files,
    }))
}

/// The parts every push payload has: the JSON, the pushed ref, and the repository URLs
/// found at `url_paths` (at least one).
fn push_payload(
    provider: &'static str,
    body: &[u8],
    url_paths: &[&str],
) -> Result<(Value, String, Vec<String>), WebhookError> {
    let invalid = |reason: &str| WebhookError::InvalidPayload {
        provider,
        reason: reason.to_string(),
    };
    let payload: Value =
        serde_json::from_slice(body).map_err(|e| invalid(&format!("not JSON: {e}")))?;
    let git_ref = str_at(&payload, "/ref").ok_or_else(|| invalid("no \"ref\""))?;
    let repo_urls = urls_at(&payload, url_paths);
    if repo_urls.is_empty() {
        return Err(invalid("no repository URL"));
    }
    Ok((payload, git_ref, repo_urls))
}

/// Verify and parse a GitLab webhook. `Push Hook` and `Tag Push Hook` give a
/// [`PushEvent`]; other events verify and give `Ok(None)`.
pub fn parse_gitlab(
    headers: &HeaderMap,
    body: &[u8],
    secret: Option<&str>,
) -> Result<Option<PushEvent>, WebhookError> {
    check_size(body)?;
    if let Some(secret) = secret.filter(|s| !s.is_empty()) {
        let token = header(headers, "x-gitlab-token").ok_or(WebhookError::MissingHeader {
            header: "X-Gitlab-Token",
        })?;
        if !bool::from(token.as_bytes().ct_eq(secret.as_bytes())) {
            return Err(WebhookError::BadToken);
        }
    }
    let event = header(headers, "x-gitlab-event").ok_or(WebhookError::MissingHeader {
        header: "X-Gitlab-Event",
    })?;
    if event != "Push Hook" && event != "Tag Push Hook" {
        return Ok(None);
    }
    let (payload, git_ref, repo_urls) = push_payload(
        "GitLab",
        body,
        &[
            "/project/web_url",
            "/project/git_http_url",
            "/project/git_ssh_url",
            "/repository/homepage",
            "/repository/git_http_url",
            "/repository/git_ssh_url",
            "/repository/url",
        ],
    )?;
    let total = payload
        .get("total_commits_count")
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok());
    Ok(Some(PushEvent {
        repo_urls,
        git_ref,
        after: after(&payload),
        changed_files: changed_files(&payload, total),
    }))
}

fn str_at(payload: &Value, pointer: &str) -> Option<String> {
    payload
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn urls_at(payload: &Value, pointers: &[&str]) -> Vec<String> {
    let mut urls: Vec<String> = Vec::new();
    for p in pointers {
        if let Some(u) = str_at(payload, p) {
            if !urls.contains(&u) {
                urls.push(u);
            }
        }
    }
    urls
}

fn after(payload: &Value) -> Option<String> {
    str_at(payload, "/after").filter(|a| !a.bytes().all(|b| b == b'0'))
}

/// The union of the commits' added/modified/removed lists, or `None` when the payload
/// cannot list them all.
fn changed_files(payload: &Value, total_commits: Option<usize>) -> Option<Vec<String>> {
    let commits = payload.get("commits")?.as_array()?;
    if commits.len() >= PROVIDER_COMMIT_CAP || total_commits.is_some_and(|t| t > commits.len()) {
        return None;
    }
    let mut files: Vec<String> = Vec::new();
    for commit in commits {
        for key in ["added", "modified", "removed"] {
            let Some(list) = commit.get(key) else {
                continue;
            };
            for f in list.as_array()? {
                files.push(f.as_str()?.to_string());
            }
        }
    }
    files.sort();
    files.dedup();
    Some(files)
}

/// Decode a SHA-256 digest written as 64 hexadecimal characters.
fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if hex.len() != 64 {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A comparable form of a repository URL: lower-case `host/path`, without scheme, user,
/// password, port, trailing `/` or `.git`. `https://github.com/Org/Repo.git`,
/// `ssh://git@github.com:22/org/repo` and `git@github.com:org/repo` all become
/// `github.com/org/repo`.
pub fn normalize_repo_url(url: &str) -> String {
    let url = url.trim().to_ascii_lowercase();
    let (authority, path) = if let Some((_, rest)) = url.split_once("://") {
        match rest.split_once('/') {
            Some((a, p)) => (a.to_string(), p.to_string()),
            None => (rest.to_string(), String::new()),
        }
    } else if let Some((a, p)) = url.split_once(':') {
        // scp-like user@host:path
        (a.to_string(), p.to_string())
    } else {
        (String::new(), url.clone())
    };
    let host = authority
        .rsplit_once('@')
        .map_or(authority.as_str(), |(_, h)| h);
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    let mut path = path.trim_matches('/').to_string();
    if let Some(stripped) = path.strip_suffix(".git") {
        path = stripped.trim_end_matches('/').to_string();
    }
    if host.is_empty() {
        path
    } else if path.is_empty() {
        host.to_string()
    } else {
        format!("{host}/{path}")
    }
}

/// Whether any of `changed_files` lies in `app_path` (an Application's `source.path`);
/// the repository root (`""`, `"."`, `"/"`) is touched by any change.
pub fn touches(changed_files: &[String], app_path: &str) -> bool {
    let mut path = app_path.trim();
    while let Some(p) = path.strip_prefix("./") {
        path = p;
    }
    let path = path.trim_matches('/');
    if path.is_empty() || path == "." {
        return !changed_files.is_empty();
    }
    changed_files.iter().any(|f| {
        let f = f.trim_start_matches("./").trim_start_matches('/');
        f == path
            || f.strip_prefix(path)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// The `X-Hub-Signature-256` value GitHub sends with `body` for webhook secret `secret`
/// (`sha256=<hex of HMAC-SHA256>`): what [`parse_github`] verifies, for clients that
/// sign pushes themselves (tests, `mooring bench load`).
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length; the error case cannot happen.
    let mut mac = match Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn github_headers(event: &str, signature: Option<String>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "x-github-event",
            HeaderValue::from_str(event).expect("ascii"),
        );
        if let Some(s) = signature {
            h.insert(
                "x-hub-signature-256",
                HeaderValue::from_str(&s).expect("ascii"),
            );
        }
        h
    }

    fn sign(secret: &str, body: &[u8]) -> String {
        github_signature(secret, body)
    }

    const GITHUB_PUSH: &str = r#"{
        "ref": "refs/heads/main",
        "before": "1111111111111111111111111111111111111111",
        "after": "2222222222222222222222222222222222222222",
        "forced": false,
        "repository": {
            "html_url": "https://github.com/Org/ML-Platform",
            "clone_url": "https://github.com/Org/ML-Platform.git",
            "ssh_url": "git@github.com:Org/ML-Platform.git"
        },
        "commits": [
            {"added": ["apps/serving/new.yaml"], "modified": ["apps/serving/deploy.yaml"], "removed": []},
            {"added": [], "modified": ["README.md"], "removed": ["apps/training/old.yaml"]}
        ]
    }"#;

    #[test]
    fn github_valid_signature() {
        let body = GITHUB_PUSH.as_bytes();
        let headers = github_headers("push", Some(sign("s3cret", body)));
        let event = parse_github(&headers, body, Some("s3cret"))
            .expect("valid")
            .expect("a push");
        assert_eq!(event.git_ref, "refs/heads/main");
        assert_eq!(event.branch(), Some("main"));
        assert_eq!(
            event.after.as_deref(),
            Some("2222222222222222222222222222222222222222")
        );
        assert_eq!(event.repo_urls.len(), 3);
        let files = event.changed_files.expect("listed");
        assert_eq!(
            files,
            vec![
                "README.md",
                "apps/serving/deploy.yaml",
                "apps/serving/new.yaml",
                "apps/training/old.yaml"
            ]
        );
        // the generic entry point picks GitHub from the headers
        assert!(parse(&headers, body, Some("s3cret"), None)
            .expect("valid")
            .is_some());
    }

    #[test]
    fn github_invalid_or_missing_signature() {
        let body = GITHUB_PUSH.as_bytes();
        let wrong = github_headers("push", Some(sign("other", body)));
        assert!(matches!(
            parse_github(&wrong, body, Some("s3cret")),
            Err(WebhookError::BadSignature)
        ));
        let mut tampered = body.to_vec();
        tampered[10] ^= 1;
        let signed_original = github_headers("push", Some(sign("s3cret", body)));
        assert!(matches!(
            parse_github(&signed_original, &tampered, Some("s3cret")),
            Err(WebhookError::BadSignature)
        ));
        let garbage = github_headers("push", Some("sha256=zz".to_string()));
        assert!(parse_github(&garbage, body, Some("s3cret")).is_err());
        let missing = github_headers("push", None);
        assert!(matches!(
            parse_github(&missing, body, Some("s3cret")),
            Err(WebhookError::MissingHeader { .. })
        ));
        // No secret configured: accepted unverified, as Argo CD does.
        assert!(parse_github(&missing, body, None)
            .expect("accepted")
            .is_some());
        // A secret for GitLab only: an unsigned GitHub push is refused, not accepted.
        let e = parse(&missing, body, None, Some("t")).expect_err("unverified");
        assert!(
            matches!(
                e,
                WebhookError::Unverified {
                    provider: "GitHub",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("webhook.github.secret"), "{e}");
        assert!(
            parse(&missing, body, Some(""), None).is_ok(),
            "an empty secret is none"
        );
    }

    #[test]
    fn github_ping_and_other_events() {
        let body = br#"{"zen": "Keep it logically awesome.", "hook_id": 1}"#;
        let ping = github_headers("ping", Some(sign("s3cret", body)));
        assert_eq!(parse_github(&ping, body, Some("s3cret")).expect("ok"), None);
        let issues = github_headers("issues", Some(sign("s3cret", body)));
        assert_eq!(
            parse_github(&issues, body, Some("s3cret")).expect("ok"),
            None
        );
        // a ping with a bad signature is still refused
        let bad_ping = github_headers("ping", Some(sign("x", body)));
        assert!(parse_github(&bad_ping, body, Some("s3cret")).is_err());
    }

    #[test]
    fn oversized_body_is_refused_before_parsing() {
        let body = vec![b' '; MAX_BODY_BYTES + 1];
        let headers = github_headers("push", None);
        assert!(matches!(
            parse_github(&headers, &body, None),
            Err(WebhookError::TooLarge { size, limit }) if size == MAX_BODY_BYTES + 1 && limit == MAX_BODY_BYTES
        ));
        assert!(matches!(
            parse_gitlab(&HeaderMap::new(), &body, Some("t")),
            Err(WebhookError::TooLarge { .. })
        ));
        assert!(matches!(
            parse(&HeaderMap::new(), &body, None, None),
            Err(WebhookError::TooLarge { .. })
        ));
    }

    #[test]
    fn github_forced_push_and_deleted_branch() {
        let body = br#"{"ref":"refs/heads/x","after":"0000000000000000000000000000000000000000","forced":true,
            "repository":{"html_url":"https://github.com/o/r"},"commits":[{"added":["a"]}]}"#;
        let event = parse_github(&github_headers("push", None), body, None)
            .expect("ok")
            .expect("push");
        assert_eq!(event.after, None);
        assert_eq!(event.changed_files, None);
        let not_json = github_headers("push", None);
        assert!(matches!(
            parse_github(&not_json, b"{", None),
            Err(WebhookError::InvalidPayload { .. })
        ));
    }

    const GITLAB_PUSH: &str = r#"{
        "object_kind": "push",
        "ref": "refs/heads/main",
        "after": "3333333333333333333333333333333333333333",
        "total_commits_count": 1,
        "project": {
            "web_url": "https://gitlab.example.com/ml/platform",
            "git_http_url": "https://gitlab.example.com/ml/platform.git",
            "git_ssh_url": "git@gitlab.example.com:ml/platform.git"
        },
        "commits": [{"added": [], "modified": ["envs/prod/values.yaml"], "removed": []}]
    }"#;

    fn gitlab_headers(event: &str, token: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "x-gitlab-event",
            HeaderValue::from_str(event).expect("ascii"),
        );
        if let Some(t) = token {
            h.insert("x-gitlab-token", HeaderValue::from_str(t).expect("ascii"));
        }
        h
    }

    #[test]
    fn gitlab_token() {
        let body = GITLAB_PUSH.as_bytes();
        let event = parse_gitlab(&gitlab_headers("Push Hook", Some("tok")), body, Some("tok"))
            .expect("valid")
            .expect("push");
        assert_eq!(
            event.changed_files,
            Some(vec!["envs/prod/values.yaml".to_string()])
        );
        assert_eq!(event.repo_urls.len(), 3);
        assert!(matches!(
            parse_gitlab(
                &gitlab_headers("Push Hook", Some("tok2")),
                body,
                Some("tok")
            ),
            Err(WebhookError::BadToken)
        ));
        assert!(matches!(
            parse_gitlab(&gitlab_headers("Push Hook", None), body, Some("tok")),
            Err(WebhookError::MissingHeader { .. })
        ));
        assert_eq!(
            parse_gitlab(
                &gitlab_headers("Merge Request Hook", Some("tok")),
                body,
                Some("tok")
            )
            .expect("ok"),
            None
        );
        let tag = parse(
            &gitlab_headers("Tag Push Hook", Some("tok")),
            body,
            None,
            Some("tok"),
        )
        .expect("ok");
        assert!(tag.is_some());
    }

    #[test]
    fn gitlab_truncated_commit_list_means_unknown_files() {
        let body = GITLAB_PUSH.replace("\"total_commits_count\": 1", "\"total_commits_count\": 45");
        let event = parse_gitlab(&gitlab_headers("Push Hook", None), body.as_bytes(), None)
            .expect("ok")
            .expect("push");
        assert_eq!(event.changed_files, None);
    }

    #[test]
    fn unknown_provider() {
        assert!(matches!(
            parse(&HeaderMap::new(), b"{}", None, None),
            Err(WebhookError::UnknownProvider)
        ));
    }

    #[test]
    fn url_normalisation() {
        let same = [
            "https://github.com/Org/Repo",
            "https://github.com/org/repo.git",
            "https://github.com/org/repo/",
            "http://user:pw@github.com:443/org/repo.git",
            "ssh://git@github.com/org/repo.git",
            "ssh://git@github.com:22/org/repo",
            "git@github.com:org/repo.git",
            "github.com:org/repo",
        ];
        for u in same {
            assert_eq!(normalize_repo_url(u), "github.com/org/repo", "{u}");
        }
        assert_ne!(
            normalize_repo_url("https://github.com/org/repo"),
            normalize_repo_url("https://github.com/org/repo2")
        );
        assert_ne!(
            normalize_repo_url("https://github.com/org/repo"),
            normalize_repo_url("https://gitlab.com/org/repo")
        );
        assert_eq!(normalize_repo_url("file:///tmp/x/repo.git"), "tmp/x/repo");
    }

    #[test]
    fn touches_paths() {
        let files = vec![
            "apps/serving/deploy.yaml".to_string(),
            "README.md".to_string(),
        ];
        assert!(touches(&files, "apps/serving"));
        assert!(touches(&files, "./apps/serving/"));
        assert!(touches(&files, "apps"));
        assert!(!touches(&files, "apps/serv"));
        assert!(!touches(&files, "apps/training"));
        assert!(touches(&files, "."));
        assert!(touches(&files, ""));
        assert!(!touches(&[], "."));
        assert!(touches(&files, "README.md"));
    }
}
