//! Registry credentials from Kubernetes Secrets, and who may use which (pure).
//!
//! Image Updater reads credentials from a pull secret (`pullsecret:NS/NAME`, a
//! `kubernetes.io/dockerconfigjson` Secret), a generic Secret (`secret:NS/NAME#FIELD`,
//! `user:password`), the environment (`env:VAR`) or a script (`ext:PATH`). Mooring's
//! rules, because an Application's annotations are a tenant's input:
//!
//! * a Secret is read only from the control-plane namespace (where the admin keeps them;
//!   a tenant cannot make the controller read a Secret of some other namespace);
//! * from a pull secret only the entry of the registry's own host is used, so naming an
//!   admin's pull secret for an image on another registry sends nothing there;
//! * a `secret:` from an annotation (no host in it) is used only for a registry the admin
//!   configured in `registries.conf`;
//! * `env:` only from `registries.conf`; `ext:` never (it runs a command) — both refused
//!   by the annotation parser already.

use super::CredentialSource;
use base64::Engine as _;
use serde_json::Value;

/// A username and password for a registry.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// Why credentials could not be had.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialError {
    #[error("credentials {source_text}: Secrets are read only from the control-plane namespace {control_plane}, not {namespace}")]
    Namespace {
        source_text: String,
        namespace: String,
        control_plane: String,
    },
    #[error("credentials {source_text}: {reason}")]
    Invalid { source_text: String, reason: String },
    #[error("credentials {source_text} (from an Application's annotation) name no registry host: they are used only for a registry configured in registries.conf, and {registry} is not")]
    Unbound {
        source_text: String,
        registry: String,
    },
}

/// The text form of a credential source, for messages.
pub fn describe(source: &CredentialSource) -> String {
    match source {
        CredentialSource::PullSecret { namespace, name } => {
            format!("pullsecret:{namespace}/{name}")
        }
        CredentialSource::Secret {
            namespace,
            name,
            field,
        } => format!("secret:{namespace}/{name}#{field}"),
        CredentialSource::Env(v) => format!("env:{v}"),
    }
}

/// The Secret a source reads, if any, checked against the control-plane namespace.
pub fn secret_of<'a>(
    source: &'a CredentialSource,
    control_plane: &str,
) -> Result<Option<(&'a str, &'a str)>, CredentialError> {
    let (ns, name) = match source {
        CredentialSource::PullSecret { namespace, name }
        | CredentialSource::Secret {
            namespace, name, ..
        } => (namespace.as_str(), name.as_str()),
        CredentialSource::Env(_) => return Ok(None),
    };
    if ns != control_plane {
        return Err(CredentialError::Namespace {
            source_text: describe(source),
            namespace: ns.to_string(),
            control_plane: control_plane.to_string(),
        });
    }
    Ok(Some((ns, name)))
}

/// A Secret's `data` field, base64-decoded (or its `stringData`).
pub fn secret_field(secret: &Value, key: &str) -> Option<String> {
    if let Some(s) = secret
        .pointer("/stringData")
        .and_then(|d| d.get(key))
        .and_then(Value::as_str)
    {
        return Some(s.to_string());
    }
    let b64 = secret.pointer("/data")?.get(key)?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    String::from_utf8(bytes).ok()
}

fn user_password(text: &str, source_text: &str) -> Result<RegistryAuth, CredentialError> {
    let (u, p) = text
        .trim()
        .split_once(':')
        .ok_or_else(|| CredentialError::Invalid {
            source_text: source_text.to_string(),
            reason: "the value is not `username:password`".into(),
        })?;
    Ok(RegistryAuth {
        username: u.to_string(),
        password: p.to_string(),
    })
}

/// The credentials `source` yields for the registry `host` (`host[:port]` as images name
/// it), from the `secret` it names (`None` for `env:`, then `env` is read) — or `None`
/// when a pull secret has no entry for that host.
pub fn from_secret(
    source: &CredentialSource,
    secret: Option<&Value>,
    host: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<RegistryAuth>, CredentialError> {
    let source_text = describe(source);
    let missing = |what: String| CredentialError::Invalid {
        source_text: source_text.clone(),
        reason: what,
    };
    match source {
        CredentialSource::Env(var) => {
            let v = env(var).ok_or_else(|| missing(format!("{var} is not set")))?;
            user_password(&v, &source_text).map(Some)
        }
        CredentialSource::Secret { field: f, .. } => {
            let secret = secret.ok_or_else(|| missing("the Secret does not exist".into()))?;
            let v = secret_field(secret, f)
                .ok_or_else(|| missing(format!("the Secret has no field {f}")))?;
            user_password(&v, &source_text).map(Some)
        }
        CredentialSource::PullSecret { .. } => {
            let secret = secret.ok_or_else(|| missing("the Secret does not exist".into()))?;
            let text = secret_field(secret, ".dockerconfigjson")
                .or_else(|| secret_field(secret, ".dockercfg"))
                .ok_or_else(|| missing("the Secret has no .dockerconfigjson".into()))?;
            let config: Value = serde_json::from_str(&text)
                .map_err(|e| missing(format!(".dockerconfigjson is not JSON: {e}")))?;
            docker_config_auth(&config, host).map_err(|reason| CredentialError::Invalid {
                source_text: source_text.clone(),
                reason,
            })
        }
    }
}

/// The entry of a Docker config (`{"auths": {HOST: {auth | username+password}}}`, or
/// the older `.dockercfg` map) for `host` only. Keys may be written as URLs
/// (`https://host/v1/`): their host part is compared.
pub fn docker_config_auth(config: &Value, host: &str) -> Result<Option<RegistryAuth>, String> {
    let auths = config
        .get("auths")
        .unwrap_or(config)
        .as_object()
        .ok_or("the Docker config has no `auths` object")?;
    let want = host.to_ascii_lowercase();
    let host_of = |key: &str| {
        let k = key
            .trim()
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        k.split('/').next().unwrap_or("").to_ascii_lowercase()
    };
    let docker_hub = |h: &str| {
        matches!(
            h,
            "docker.io" | "index.docker.io" | "registry-1.docker.io" | ""
        )
    };
    let Some(entry) = auths
        .iter()
        .find(|(k, _)| {
            let h = host_of(k);
            h == want || (docker_hub(&h) && docker_hub(&want))
        })
        .map(|(_, v)| v)
    else {
        return Ok(None);
    };
    if let (Some(u), Some(p)) = (
        entry.get("username").and_then(Value::as_str),
        entry.get("password").and_then(Value::as_str),
    ) {
        return Ok(Some(RegistryAuth {
            username: u.to_string(),
            password: p.to_string(),
        }));
    }
    let auth = entry
        .get("auth")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("the entry for {host} has neither auth nor username/password"))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|e| format!("the auth of {host} is not base64: {e}"))?;
    let text =
        String::from_utf8(decoded).map_err(|_| format!("the auth of {host} is not UTF-8"))?;
    let (u, p) = text
        .split_once(':')
        .ok_or_else(|| format!("the auth of {host} is not `username:password`"))?;
    Ok(Some(RegistryAuth {
        username: u.to_string(),
        password: p.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn a_pull_secret_gives_only_its_hosts_entry() {
        let config = json!({"auths": {
            "registry.ml.example.com": {"auth": b64("ml:secret")},
            "https://index.docker.io/v1/": {"username": "hub", "password": "p"}
        }});
        let got = docker_config_auth(&config, "registry.ml.example.com").expect("ok");
        assert_eq!(got.map(|a| a.username), Some("ml".to_string()));
        assert_eq!(
            docker_config_auth(&config, "docker.io")
                .expect("ok")
                .map(|a| a.password),
            Some("p".to_string())
        );
        assert_eq!(docker_config_auth(&config, "evil.example.com"), Ok(None));
    }

    #[test]
    fn secrets_come_only_from_the_control_plane_namespace() {
        let s = CredentialSource::PullSecret {
            namespace: "kube-system".into(),
            name: "admin".into(),
        };
        let err = secret_of(&s, "argocd").expect_err("refused");
        assert!(err.to_string().contains("kube-system"), "{err}");
        let ok = CredentialSource::Secret {
            namespace: "argocd".into(),
            name: "reg".into(),
            field: "creds".into(),
        };
        assert_eq!(secret_of(&ok, "argocd"), Ok(Some(("argocd", "reg"))));
    }

    #[test]
    fn a_generic_secret_field_is_user_colon_password() {
        let src = CredentialSource::Secret {
            namespace: "argocd".into(),
            name: "reg".into(),
            field: "creds".into(),
        };
        let secret = json!({"data": {"creds": b64("bot:pw:with:colons")}});
        let auth = from_secret(&src, Some(&secret), "h", |_| None)
            .expect("ok")
            .expect("some");
        assert_eq!(auth.username, "bot");
        assert_eq!(auth.password, "pw:with:colons");
        assert!(!format!("{auth:?}").contains("pw"));
        let err =
            from_secret(&src, Some(&json!({"data": {}})), "h", |_| None).expect_err("no field");
        assert!(err.to_string().contains("no field creds"), "{err}");
    }
}
