//! Clients for destination clusters, which are stored as Argo CD stores them (cluster
//! Secrets, parsed by [`mooring_core::cluster`], re-exported here).
//!
//! Existing Argo CD cluster Secrets therefore work unchanged, and `mooring cluster add`
//! writes the same shape from a kubeconfig context. A client is built by turning the
//! Secret back into a one-context kubeconfig, so every TLS and auth setting is interpreted
//! by kube-rs exactly as for a kubeconfig file. Clients get a short connect timeout: an
//! unreachable cluster must fail fast instead of holding a controller worker.

use base64::Engine as _;
pub use mooring_core::cluster::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;
/// How long connecting to a destination may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cluster {server}: {message}")]
    Client { server: String, message: String },
    #[error("kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
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
        project: String::new(),
        name: name.unwrap_or(&ctx_name).to_string(),
        server,
        config,
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
    })
}
