//! Mooring's way into Kubernetes: the only crate that depends on kube-rs.
//!
//! Every cluster, the embedded one included, is reached through the Kubernetes API with
//! this crate's clients; there is no second in-memory path. It owns client construction
//! from kubeconfigs and cluster Secrets, the cluster connection and its live cache,
//! discovery, the CRDs Mooring installs, finalizer updates, and the descriptors of every
//! resource Mooring serves ([`resources`]).
//!
//! The boundary is where kube-rs is *depended on*, not where it is *named*: the I/O
//! crates (`controller`, `server`, `cli`) talk to the API with kube-rs types (`Api`,
//! `DynamicObject`, watchers, patches), always through the re-exports below
//! (`mooring_k8s::kube`, `mooring_k8s::k8s_openapi`; tests too), so the workspace has one
//! kube-rs and one way in. The crates that decide and read (`core`, `engine`, `source`,
//! `render`, `policy`) never see kube, the cluster or tokio (`engine::schema` uses
//! k8s-openapi's plain data types only). `tests/boundary.rs` enforces both from
//! `cargo metadata`.

pub use k8s_openapi;
pub use kube;

pub mod cluster;
pub mod crds;
pub mod registry;
pub mod resources;

use std::path::Path;

/// The REST resource of a kind (`""` is the core group), for dynamic API calls.
pub fn api_resource(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> kube::api::ApiResource {
    kube::api::ApiResource::from_gvk_with_plural(
        &kube::api::GroupVersionKind::gvk(group, version, kind),
        plural,
    )
}

/// How many times [`update_finalizers`] computes its change again after a conflict.
const FINALIZER_ATTEMPTS: usize = 5;

/// Change an object's `metadata.finalizers` with `change` (given the current list). A merge
/// patch replaces the whole list, so it is computed from a fresh read and names the
/// `resourceVersion` it was computed from: a concurrent writer (the controller adding the
/// post-delete finalizers while `app delete` adds the resources one) makes it a 409, and it
/// is computed again, so no writer drops another's finalizer. A missing object is not an
/// error (there is nothing left to hold).
pub async fn update_finalizers(
    api: &kube::Api<kube::api::DynamicObject>,
    name: &str,
    change: impl Fn(Vec<String>) -> Vec<String>,
) -> Result<(), kube::Error> {
    let mut last = None;
    for _ in 0..FINALIZER_ATTEMPTS {
        let Some(current) = api.get_opt(name).await? else {
            return Ok(());
        };
        let before = current.metadata.finalizers.clone().unwrap_or_default();
        let after = change(before.clone());
        if after == before {
            return Ok(());
        }
        let patch = serde_json::json!({"metadata": {
            "finalizers": after,
            "resourceVersion": current.metadata.resource_version,
        }});
        match api
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => last = Some(kube::Error::Api(e)),
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("the loop ran and every attempt was a conflict"))
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("kubeconfig {path} is not usable: {source}")]
    Config {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("cannot build a client for {path}: {source}")]
    Client {
        path: String,
        #[source]
        source: kube::Error,
    },
}

/// A client for the current context of a kubeconfig file.
/// The namespace the current context of the kubeconfig at `path` names, if it names one
/// (kube's `Config` defaults an absent one to `default`, which is not the same answer).
pub fn kubeconfig_namespace(path: &Path) -> Option<String> {
    let kc = kube::config::Kubeconfig::read_from(path).ok()?;
    let current = kc.current_context.as_deref()?;
    kc.contexts
        .iter()
        .find(|c| c.name == current)?
        .context
        .as_ref()?
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
}

pub async fn client_from_kubeconfig(path: &Path) -> Result<kube::Client, ClientError> {
    let p = path.display().to_string();
    let kc =
        kube::config::Kubeconfig::read_from(path).map_err(|source| ClientError::Kubeconfig {
            path: p.clone(),
            source,
        })?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|source| ClientError::Config {
                path: p.clone(),
                source,
            })?;
    kube::Client::try_from(config).map_err(|source| ClientError::Client { path: p, source })
}
