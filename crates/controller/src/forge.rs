//! Pull requests on the forge that hosts a repository: GitHub, GitLab, Gitea.
//!
//! `mooring rollback git --pr` (and a RollbackPolicy's `gitRevert` in pull-request mode)
//! opens the rollback's pull request through the forge's REST API, as the seed's runbook
//! does with the forge's CLI. The API base is user input (a flag, or derived from the
//! repository URL), so every request goes through [`Outbound`], the admin's allowlist
//! included. The calls, per forge:
//!
//! * **GitHub** (`Authorization: Bearer`, API `https://api.github.com`, or
//!   `https://HOST/api/v3` for GitHub Enterprise): `POST /repos/{owner}/{repo}/pulls`
//!   (`title`, `head`, `base`, `body`), then `POST /repos/{owner}/{repo}/issues/{n}/labels`
//!   (`labels`) and `POST /repos/{owner}/{repo}/pulls/{n}/requested_reviewers`
//!   (`reviewers`, user logins).
//! * **GitLab** (`PRIVATE-TOKEN`, API `https://HOST/api/v4`): reviewers are user ids, so
//!   each username is looked up with `GET /users?username=NAME` first; then
//!   `POST /projects/{url-encoded path}/merge_requests` (`source_branch`,
//!   `target_branch`, `title`, `description`, `labels` as a comma-separated string,
//!   `reviewer_ids`).
//! * **Gitea** (`Authorization: token`, API `https://HOST/api/v1`): labels are ids, looked
//!   up with `GET /repos/{owner}/{repo}/labels`; a label the repository does not define is
//!   reported as a warning (Gitea would refuse the id); then
//!   `POST /repos/{owner}/{repo}/pulls` (`head`, `base`, `title`, `body`, `labels`) and
//!   `POST /repos/{owner}/{repo}/pulls/{n}/requested_reviewers` (`reviewers`).
//!
//! The token never appears in errors; an error names the request and quotes the start of
//! the forge's answer.

use crate::outbound::{Outbound, OutboundError, OutboundRequest};
use mooring_engine::git_rollback::ForgeRepo;
use serde_json::{json, Value};
use std::str::FromStr;

/// Which forge API to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ForgeKind {
    Github,
    Gitlab,
    Gitea,
}

impl FromStr for ForgeKind {
    type Err = ForgeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "github" => Ok(ForgeKind::Github),
            "gitlab" => Ok(ForgeKind::Gitlab),
            "gitea" => Ok(ForgeKind::Gitea),
            _ => Err(ForgeError::UnknownForge(s.to_string())),
        }
    }
}

impl ForgeKind {
    /// The API base for a repository on this forge when none is given.
    pub fn default_api(self, repo: &ForgeRepo) -> String {
        match self {
            ForgeKind::Github if repo.host.eq_ignore_ascii_case("github.com") => {
                "https://api.github.com".to_string()
            }
            ForgeKind::Github => format!("{}/api/v3", repo.base),
            ForgeKind::Gitlab => format!("{}/api/v4", repo.base),
            ForgeKind::Gitea => format!("{}/api/v1", repo.base),
        }
    }
}

/// Errors talking to a forge; each names the request.
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    #[error("unknown forge {0:?}: use github, gitlab or gitea")]
    UnknownForge(String),
    #[error("{what}: {source}")]
    Request {
        what: String,
        #[source]
        source: Box<OutboundError>,
    },
    #[error("{what}: the forge answered HTTP {status}: {body}")]
    Status {
        what: String,
        status: u16,
        body: String,
    },
    #[error("{what}: unexpected answer: {reason}")]
    Answer { what: String, reason: String },
    #[error("GitLab has no user named {0:?} (reviewer)")]
    UnknownUser(String),
}

/// A forge and a repository on it.
#[derive(Clone, Debug)]
pub struct Forge {
    pub kind: ForgeKind,
    /// API base URL, without a trailing `/`.
    pub api: String,
    /// The repository's path on the forge (`owner/name`).
    pub repo: String,
    /// The API token.
    pub token: String,
}

/// What the pull request says.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PullRequest {
    pub title: String,
    pub body: String,
    /// The branch with the changes.
    pub head: String,
    /// The branch to merge into.
    pub base: String,
    pub labels: Vec<String>,
    pub reviewers: Vec<String>,
}

/// The opened pull request.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Opened {
    /// Its number (GitLab: the merge request's `iid`).
    pub number: u64,
    /// Its web page.
    pub url: String,
    /// What could not be set (a label the repository lacks).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Forge {
    /// Open `pr`, then set its labels and reviewers.
    pub async fn open(&self, outbound: &Outbound, pr: &PullRequest) -> Result<Opened, ForgeError> {
        match self.kind {
            ForgeKind::Github => self.github(outbound, pr).await,
            ForgeKind::Gitlab => self.gitlab(outbound, pr).await,
            ForgeKind::Gitea => self.gitea(outbound, pr).await,
        }
    }

    async fn call(
        &self,
        outbound: &Outbound,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ForgeError> {
        let url = format!("{}{path}", self.api.trim_end_matches('/'));
        let what = format!("{method} {url}");
        let mut req = OutboundRequest::new(method, &url);
        req.timeout = std::time::Duration::from_secs(30);
        let auth = match self.kind {
            ForgeKind::Github => ("Authorization", format!("Bearer {}", self.token)),
            ForgeKind::Gitlab => ("PRIVATE-TOKEN", self.token.clone()),
            ForgeKind::Gitea => ("Authorization", format!("token {}", self.token)),
        };
        req.headers.push((auth.0.to_string(), auth.1));
        req.headers
            .push(("User-Agent".to_string(), "mooring".to_string()));
        if self.kind == ForgeKind::Github {
            req.headers.push((
                "Accept".to_string(),
                "application/vnd.github+json".to_string(),
            ));
            req.headers
                .push(("X-GitHub-Api-Version".to_string(), "2022-11-28".to_string()));
        } else {
            req.headers
                .push(("Accept".to_string(), "application/json".to_string()));
        }
        if let Some(body) = body {
            req.headers
                .push(("Content-Type".to_string(), "application/json".to_string()));
            req.body = Some(body.to_string().into_bytes());
        }
        let resp = outbound
            .send(req)
            .await
            .map_err(|source| ForgeError::Request {
                what: what.clone(),
                source: Box::new(source),
            })?;
        let text = String::from_utf8_lossy(&resp.body);
        if !(200..300).contains(&resp.status) {
            let mut body: String = text.chars().take(300).collect();
            if !self.token.is_empty() {
                body = body.replace(&self.token, "***");
            }
            return Err(ForgeError::Status {
                what,
                status: resp.status,
                body,
            });
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| ForgeError::Answer {
            what,
            reason: format!("not JSON: {e}"),
        })
    }

    fn number_and_url(
        v: &Value,
        number_key: &str,
        url_key: &str,
    ) -> Result<(u64, String), ForgeError> {
        let number = v.get(number_key).and_then(Value::as_u64);
        let url = v.get(url_key).and_then(Value::as_str);
        match (number, url) {
            (Some(n), Some(u)) => Ok((n, u.to_string())),
            _ => Err(ForgeError::Answer {
                what: "creating the pull request".into(),
                reason: format!("no {number_key:?} and {url_key:?} in the answer"),
            }),
        }
    }

    async fn github(&self, outbound: &Outbound, pr: &PullRequest) -> Result<Opened, ForgeError> {
        use reqwest::Method;
        let repo = format!("/repos/{}", self.repo);
        let created = self
            .call(
                outbound,
                Method::POST,
                &format!("{repo}/pulls"),
                Some(json!({"title": pr.title, "head": pr.head, "base": pr.base, "body": pr.body})),
            )
            .await?;
        let (number, url) = Self::number_and_url(&created, "number", "html_url")?;
        if !pr.labels.is_empty() {
            self.call(
                outbound,
                Method::POST,
                &format!("{repo}/issues/{number}/labels"),
                Some(json!({"labels": pr.labels})),
            )
            .await?;
        }
        if !pr.reviewers.is_empty() {
            self.call(
                outbound,
                Method::POST,
                &format!("{repo}/pulls/{number}/requested_reviewers"),
                Some(json!({"reviewers": pr.reviewers})),
            )
            .await?;
        }
        Ok(Opened {
            number,
            url,
            warnings: vec![],
        })
    }

    async fn gitlab(&self, outbound: &Outbound, pr: &PullRequest) -> Result<Opened, ForgeError> {
        use reqwest::Method;
        let mut reviewer_ids = Vec::new();
        for name in &pr.reviewers {
            let q: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
            let users = self
                .call(outbound, Method::GET, &format!("/users?username={q}"), None)
                .await?;
            let id = users
                .as_array()
                .and_then(|a| a.first())
                .and_then(|u| u.get("id"))
                .and_then(Value::as_u64)
                .ok_or_else(|| ForgeError::UnknownUser(name.clone()))?;
            reviewer_ids.push(id);
        }
        let project: String = url::form_urlencoded::byte_serialize(self.repo.as_bytes()).collect();
        let mut body = json!({
            "source_branch": pr.head,
            "target_branch": pr.base,
            "title": pr.title,
            "description": pr.body,
            "labels": pr.labels.join(","),
        });
        if !reviewer_ids.is_empty() {
            body["reviewer_ids"] = json!(reviewer_ids);
        }
        let created = self
            .call(
                outbound,
                Method::POST,
                &format!("/projects/{project}/merge_requests"),
                Some(body),
            )
            .await?;
        let (number, url) = Self::number_and_url(&created, "iid", "web_url")?;
        Ok(Opened {
            number,
            url,
            warnings: vec![],
        })
    }

    async fn gitea(&self, outbound: &Outbound, pr: &PullRequest) -> Result<Opened, ForgeError> {
        use reqwest::Method;
        let repo = format!("/repos/{}", self.repo);
        let mut warnings = Vec::new();
        let mut label_ids = Vec::new();
        if !pr.labels.is_empty() {
            let defined = self
                .call(
                    outbound,
                    Method::GET,
                    &format!("{repo}/labels?limit=50"),
                    None,
                )
                .await?;
            for name in &pr.labels {
                let id = defined.as_array().and_then(|a| {
                    a.iter()
                        .find(|l| l.get("name").and_then(Value::as_str) == Some(name))
                        .and_then(|l| l.get("id"))
                        .and_then(Value::as_u64)
                });
                match id {
                    Some(id) => label_ids.push(id),
                    None => warnings.push(format!(
                        "label {name:?} is not defined in {}; create it to have it set",
                        self.repo
                    )),
                }
            }
        }
        let created = self
            .call(
                outbound,
                Method::POST,
                &format!("{repo}/pulls"),
                Some(json!({"head": pr.head, "base": pr.base, "title": pr.title, "body": pr.body, "labels": label_ids})),
            )
            .await?;
        let (number, url) = Self::number_and_url(&created, "number", "html_url")?;
        if !pr.reviewers.is_empty() {
            self.call(
                outbound,
                Method::POST,
                &format!("{repo}/pulls/{number}/requested_reviewers"),
                Some(json!({"reviewers": pr.reviewers})),
            )
            .await?;
        }
        Ok(Opened {
            number,
            url,
            warnings,
        })
    }
}
