//! Destination clusters, stored as Argo CD stores them: Secrets in the management cluster
//! labelled `argocd.argoproj.io/secret-type: cluster`, with `name`, `server` and `config`
//! (JSON: `bearerToken`, `username`/`password`, `tlsClientConfig` with `insecure`,
//! `caData`, `certData`, `keyData`, `serverName`) and the Secret's own labels as the
//! cluster's labels (what the ApplicationSet clusters generator selects on).
//!
//! Existing Argo CD cluster Secrets therefore work unchanged, and `mooring cluster add`
//! writes the same shape from a kubeconfig context. A client is built by turning the
//! Secret back into a one-context kubeconfig, so every TLS and auth setting is interpreted
//! by kube-rs exactly as for a kubeconfig file. Clients get a short connect timeout: an
//! unreachable cluster must fail fast instead of holding a controller worker.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

/// The label that marks a cluster Secret.
pub const SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";
/// How long connecting to a destination may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cluster Secret {secret}: {message}")]
    Secret { secret: String, message: String },
    #[error("cluster {server}: {message}")]
    Client { server: String, message: String },
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
}

/// `tlsClientConfig` of a cluster Secret's `config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsClientConfig {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// Base64 PEM, as in kubeconfig's `*-data` fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
}

/// A cluster Secret's `config`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default)]
    pub tls_client_config: TlsClientConfig,
}

/// One registered destination cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterEntry {
    pub name: String,
    pub server: String,
    pub config: ClusterConfig,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `secret` is labelled as a cluster Secret.
pub fn is_cluster_secret(secret: &Value) -> bool {
    secret
        .pointer("/metadata/labels")
        .and_then(|l| l.get(SECRET_TYPE_LABEL))
        .and_then(Value::as_str)
        == Some("cluster")
}

/// Reads a cluster Secret (`data` base64, or `stringData`).
pub fn parse_secret(secret: &Value) -> Result<ClusterEntry, RegistryError> {
    let id = format!(
        "{}/{}",
        secret
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(""),
        secret
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    );
    let err = |message: String| RegistryError::Secret {
        secret: id.clone(),
        message,
    };
    let field = |key: &str| -> Result<Option<String>, RegistryError> {
        if let Some(s) = secret
            .pointer(&format!("/stringData/{key}"))
            .and_then(Value::as_str)
        {
            return Ok(Some(s.to_string()));
        }
        match secret
            .pointer(&format!("/data/{key}"))
            .and_then(Value::as_str)
        {
            None => Ok(None),
            Some(b64) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| err(format!("data.{key} is not base64: {e}")))?;
                String::from_utf8(bytes)
                    .map(Some)
                    .map_err(|_| err(format!("data.{key} is not UTF-8")))
            }
        }
    };
    let server = field("server")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| err("has no server".into()))?;
    let name = field("name")?.unwrap_or_else(|| server.clone());
    let config = match field("config")? {
        None => ClusterConfig::default(),
        Some(text) if text.trim().is_empty() => ClusterConfig::default(),
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| err(format!("config is not a cluster config: {e}")))?,
    };
    Ok(ClusterEntry {
        name,
        server,
        config,
        labels: string_map(secret.pointer("/metadata/labels")),
        annotations: string_map(secret.pointer("/metadata/annotations")),
    })
}

/// The Secret that registers `entry` (in `namespace`, named after the cluster).
pub fn secret_for(entry: &ClusterEntry, namespace: &str) -> Value {
    let mut labels = entry.labels.clone();
    labels.insert(SECRET_TYPE_LABEL.into(), "cluster".into());
    let secret_name: String = format!("cluster-{}", entry.name)
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(253)
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name, "namespace": namespace, "labels": labels,
                     "annotations": entry.annotations},
        "type": "Opaque",
        "stringData": {
            "name": entry.name,
            "server": entry.server,
            "config": serde_json::to_string(&entry.config).unwrap_or_else(|_| "{}".into()),
        }
    })
}

/// A client for a registered cluster.
pub async fn client(entry: &ClusterEntry) -> Result<kube::Client, RegistryError> {
    let tls = &entry.config.tls_client_config;
    let kubeconfig = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "c", "cluster": {
            "server": entry.server,
            "insecure-skip-tls-verify": tls.insecure.then_some(true),
            "certificate-authority-data": tls.ca_data,
            "tls-server-name": tls.server_name,
        }}],
        "users": [{"name": "u", "user": {
            "token": entry.config.bearer_token,
            "username": entry.config.username,
            "password": entry.config.password,
            "client-certificate-data": tls.cert_data,
            "client-key-data": tls.key_data,
        }}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "x",
    });
    let fail = |message: String| RegistryError::Client {
        server: entry.server.clone(),
        message,
    };
    let kc: kube::config::Kubeconfig =
        serde_json::from_value(strip_nulls(kubeconfig)).map_err(|e| fail(e.to_string()))?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| fail(e.to_string()))?;
    config.connect_timeout = Some(CONNECT_TIMEOUT);
    kube::Client::try_from(config).map_err(|e| fail(e.to_string()))
}

fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

/// The cluster entry for a kubeconfig context (`None`: the current context), with the
/// context's credentials copied into the Secret's `config` (files inlined as data).
pub fn entry_from_kubeconfig(
    path: &std::path::Path,
    context: Option<&str>,
    name: Option<&str>,
) -> Result<ClusterEntry, RegistryError> {
    let p = path.display().to_string();
    let fail = |message: String| RegistryError::Kubeconfig {
        path: p.clone(),
        message,
    };
    let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| fail(e.to_string()))?;
    let ctx_name = context
        .map(str::to_string)
        .or_else(|| kc.current_context.clone())
        .ok_or_else(|| fail("has no current context; pass one".into()))?;
    let ctx = kc
        .contexts
        .iter()
        .find(|c| c.name == ctx_name)
        .and_then(|c| c.context.clone())
        .ok_or_else(|| {
            let known: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
            fail(format!(
                "has no context {ctx_name:?} (contexts: {})",
                known.join(", ")
            ))
        })?;
    let cluster = kc
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)
        .and_then(|c| c.cluster.clone())
        .ok_or_else(|| fail(format!("context {ctx_name} names no known cluster")))?;
    let user = ctx
        .user
        .as_ref()
        .and_then(|u| kc.auth_infos.iter().find(|a| &a.name == u))
        .and_then(|a| a.auth_info.clone())
        .unwrap_or_default();
    let file_data = |file: &Option<String>| -> Result<Option<String>, RegistryError> {
        match file {
            None => Ok(None),
            Some(f) => std::fs::read(f)
                .map(|b| Some(base64::engine::general_purpose::STANDARD.encode(b)))
                .map_err(|e| fail(format!("reading {f}: {e}"))),
        }
    };
    use secrecy::ExposeSecret as _;
    let server = cluster
        .server
        .clone()
        .ok_or_else(|| fail(format!("cluster of context {ctx_name} has no server")))?;
    let config = ClusterConfig {
        bearer_token: user.token.as_ref().map(|t| t.expose_secret().to_string()),
        username: user.username.clone(),
        password: user
            .password
            .as_ref()
            .map(|t| t.expose_secret().to_string()),
        tls_client_config: TlsClientConfig {
            insecure: cluster.insecure_skip_tls_verify.unwrap_or(false),
            ca_data: match cluster.certificate_authority_data.clone() {
                Some(d) => Some(d),
                None => file_data(&cluster.certificate_authority)?,
            },
            cert_data: match user.client_certificate_data.clone() {
                Some(d) => Some(d),
                None => file_data(&user.client_certificate)?,
            },
            key_data: match user.client_key_data.as_ref() {
                Some(d) => Some(d.expose_secret().to_string()),
                None => file_data(&user.client_key)?,
            },
            server_name: cluster.tls_server_name.clone(),
        },
    };
    Ok(ClusterEntry {
        name: name.unwrap_or(&ctx_name).to_string(),
        server,
        config,
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argo_cd_cluster_secrets_parse() {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "prod-east", "namespace": "argocd",
                         "labels": {"argocd.argoproj.io/secret-type": "cluster", "environment": "production"}},
            "data": {
                "name": b64("prod-east"),
                "server": b64("https://10.0.0.1:6443"),
                "config": b64(r#"{"bearerToken": "t0k", "tlsClientConfig": {"insecure": false, "caData": "Q0E="}}"#),
            }
        });
        assert!(is_cluster_secret(&secret));
        let e = parse_secret(&secret).expect("parses");
        assert_eq!(e.name, "prod-east");
        assert_eq!(e.server, "https://10.0.0.1:6443");
        assert_eq!(e.config.bearer_token.as_deref(), Some("t0k"));
        assert_eq!(e.config.tls_client_config.ca_data.as_deref(), Some("Q0E="));
        assert_eq!(
            e.labels.get("environment").map(String::as_str),
            Some("production")
        );
        // And back: the Secret Mooring writes parses to the same entry.
        let again = parse_secret(&secret_for(&e, "argocd")).expect("round trip");
        assert_eq!(again.server, e.server);
        assert_eq!(again.config, e.config);
    }

    #[test]
    fn malformed_cluster_secrets_are_clear_errors() {
        for (secret, needle) in [
            (
                json!({"metadata": {"name": "a"}, "data": {}}),
                "has no server",
            ),
            (
                json!({"metadata": {"name": "b"}, "data": {"server": "%%%"}}),
                "not base64",
            ),
            (
                json!({"metadata": {"name": "c"}, "stringData": {"server": "https://x", "config": "{nope"}}),
                "config is not a cluster config",
            ),
        ] {
            let e = parse_secret(&secret).expect_err("refused").to_string();
            assert!(e.contains(needle), "{e}");
        }
    }
}
