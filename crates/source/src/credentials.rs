//! Repository credentials, read from Argo CD repository Secrets.
//!
//! An Argo CD repository Secret carries the label `argocd.argoproj.io/secret-type:
//! repository` and the keys `url`, `username`, `password` (a password or a token),
//! `sshPrivateKey`, `insecure` and `type`, base64-encoded under `data` or in plain text
//! under `stringData` (which wins, as it does when Kubernetes stores the Secret).

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

    /// Read an Argo CD repository Secret (as JSON, e.g. from kube) and return its URL and
    /// credentials. The URL is checked with [`crate::validate_url`].
    pub fn from_repository_secret(
        secret: &serde_json::Value,
    ) -> Result<(String, Credentials), SourceError> {
        let name = secret
            .pointer("/metadata/name")
            .and_then(|v| v.as_str())
            .unwrap_or("<unnamed>")
            .to_string();
        let bad = |reason: String| SourceError::InvalidSecret {
            name: name.clone(),
            reason,
        };
        match secret
            .pointer("/metadata/labels")
            .and_then(|l| l.get(SECRET_TYPE_LABEL))
            .and_then(|v| v.as_str())
        {
            Some("repository") => {}
            Some(other) => {
                return Err(bad(format!(
                    "label {SECRET_TYPE_LABEL} is {other:?}, expected \"repository\""
                )))
            }
            None => {
                return Err(bad(format!(
                    "label {SECRET_TYPE_LABEL}: repository is missing"
                )))
            }
        }
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
        crate::validate_url(&url)?;
        let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
        let creds = Credentials {
            username: non_empty(field("username")?),
            password: non_empty(field("password")?),
            ssh_private_key: non_empty(field("sshPrivateKey")?),
            insecure: field("insecure")?.is_some_and(|v| v.trim().eq_ignore_ascii_case("true")),
        };
        Ok((url, creds))
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
}
