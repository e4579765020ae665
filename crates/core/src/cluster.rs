//! Destination clusters as Argo CD stores them: Secrets labelled
//! `argocd.argoproj.io/secret-type: cluster`, with `name`, `server`, `project` and `config`
//! (JSON: `bearerToken`, `username`/`password`, `tlsClientConfig` with `insecure`,
//! `caData`, `certData`, `keyData`, `serverName`), the Secret's own labels being the
//! cluster's labels (what the ApplicationSet clusters generator selects on).
//!
//! One parser for every reader: the controller's cluster registry, the ApplicationSet
//! clusters generator and `mooring cluster …`. Pure: building a client from an entry is
//! `mooring_k8s::registry`'s business.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Argo CD's label naming what a Secret holds (`cluster`, `repository`).
pub const SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";

/// A cluster Secret that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("cluster Secret {secret}: {message}")]
pub struct ClusterSecretError {
    pub secret: String,
    pub message: String,
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
    /// `project`: the AppProject the cluster is scoped to (empty: any).
    pub project: String,
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
pub fn parse_secret(secret: &Value) -> Result<ClusterEntry, ClusterSecretError> {
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
    let err = |message: String| ClusterSecretError {
        secret: id.clone(),
        message,
    };
    let field = |key: &str| -> Result<Option<String>, ClusterSecretError> {
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
                    .decode(b64.trim())
                    .map_err(|e| err(format!("data.{key} is not base64: {e}")))?;
                String::from_utf8(bytes)
                    .map(Some)
                    .map_err(|_| err(format!("data.{key} is not UTF-8")))
            }
        }
    };
    let server = field("server")?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| err("has no server (data.server)".into()))?;
    let name = field("name")?
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| server.clone());
    let config = match field("config")? {
        None => ClusterConfig::default(),
        Some(text) if text.trim().is_empty() => ClusterConfig::default(),
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| err(format!("config is not a cluster config: {e}")))?,
    };
    Ok(ClusterEntry {
        name,
        server,
        project: field("project")?.unwrap_or_default(),
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
            "project": entry.project,
            "config": serde_json::to_string(&entry.config).unwrap_or_else(|_| "{}".into()),
        }
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
