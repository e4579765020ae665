//! Live state behind the API's views (resource tree, managed resources, events, logs,
//! rollouts): the destination clusters an application deploys to and the controller's own
//! render-and-compare, so the UI shows exactly what the controller decides on.
//!
//! In `mooring up` the controller runs in the same process and its [`Context`] (with its
//! watch-fed caches and registered clusters) is used as is. A standalone `mooring server`
//! has no controller: it makes a [`Context::offline`] on first use (as `mooring app diff`
//! does) and connects to a destination through its Argo CD cluster Secret when a view first
//! needs it. Either way the credentials are the control plane's, never the caller's: every
//! view checks the caller's RBAC on the application first.

use super::ApiError;
use mooring_controller::Context;
use mooring_core::app::ApplicationDestination;
use mooring_engine::project::ControlPlane;
use mooring_k8s::cluster::ClusterClient;
use mooring_k8s::kube;
use std::sync::Arc;
use tokio::sync::OnceCell;

/// Where the views read live state from.
#[derive(Clone)]
pub struct Live {
    source: Arc<Source>,
}

enum Source {
    /// The controller of this process.
    Controller(Arc<Context>),
    /// A context made on first use from the management cluster's client.
    Offline {
        client: kube::Client,
        options: Box<mooring_controller::ControllerOptions>,
        context: OnceCell<Arc<Context>>,
    },
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match *self.source {
            Source::Controller(_) => "Live::Controller",
            Source::Offline { .. } => "Live::Offline",
        })
    }
}

impl Live {
    /// The controller running in this process.
    pub fn controller(ctx: Arc<Context>) -> Live {
        Live {
            source: Arc::new(Source::Controller(ctx)),
        }
    }

    /// No controller here: views render and connect on their own, with `options` (the
    /// control plane and repository settings a controller would use).
    pub fn offline(client: kube::Client, options: mooring_controller::ControllerOptions) -> Live {
        Live {
            source: Arc::new(Source::Offline {
                client,
                options: Box::new(options),
                context: OnceCell::new(),
            }),
        }
    }

    /// [`Live::offline`] with default settings for `control_plane`.
    pub fn offline_default(client: kube::Client, control_plane: ControlPlane) -> Live {
        Live::offline(
            client,
            mooring_controller::ControllerOptions {
                cache_dir: std::env::temp_dir().join("mooring-server-repos"),
                control_plane,
                ..Default::default()
            },
        )
    }

    /// The controller's context (made on first use when offline).
    pub(crate) async fn context(&self) -> Result<Arc<Context>, ApiError> {
        match &*self.source {
            Source::Controller(ctx) => Ok(ctx.clone()),
            Source::Offline {
                client,
                options,
                context,
            } => context
                .get_or_try_init(|| async {
                    Context::offline(client.clone(), (**options).clone())
                        .await
                        .map_err(|e| ApiError::Unavailable(format!("reading live state: {e}")))
                })
                .await
                .cloned(),
        }
    }

    /// The cluster an application deploys to. Offline, a destination not seen yet is
    /// connected through its cluster Secret in the control-plane namespace.
    pub(crate) async fn cluster(
        &self,
        dest: &ApplicationDestination,
    ) -> Result<Arc<ClusterClient>, ApiError> {
        let ctx = self.context().await?;
        if let Ok(c) = ctx.cluster_for(dest) {
            return Ok(c);
        }
        let Source::Offline {
            client, options, ..
        } = &*self.source
        else {
            return ctx
                .cluster_for(dest)
                .map_err(|e| ApiError::Unavailable(e.to_string()));
        };
        let entry = find_cluster(client, &options.control_plane.namespace, dest).await?;
        let kube_client = mooring_k8s::registry::client(&entry)
            .await
            .map_err(|e| ApiError::Unavailable(format!("connecting to {}: {e}", entry.server)))?;
        let cluster = ClusterClient::without_cache(&entry.name, kube_client);
        // Discovery failing leaves the client usable for the kinds it can guess.
        if let Err(e) = cluster.refresh_discovery().await {
            tracing::debug!(server = %entry.server, error = %e, "discovery of a destination failed");
        }
        let mut clusters = ctx
            .clusters
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        clusters.insert(entry.server.clone(), cluster.clone());
        clusters.insert(entry.name.clone(), cluster.clone());
        Ok(cluster)
    }
}

/// The registered cluster (Argo CD cluster Secret) a destination names.
async fn find_cluster(
    client: &kube::Client,
    namespace: &str,
    dest: &ApplicationDestination,
) -> Result<mooring_core::cluster::ClusterEntry, ApiError> {
    use mooring_k8s::k8s_openapi::api::core::v1::Secret;
    let api: kube::Api<Secret> = kube::Api::namespaced(client.clone(), namespace);
    let params = kube::api::ListParams::default().labels(&format!(
        "{}=cluster",
        mooring_k8s::registry::SECRET_TYPE_LABEL
    ));
    let server = dest.server.as_deref().unwrap_or_default();
    let name = dest.name.as_deref().unwrap_or_default();
    for s in api.list(&params).await?.items {
        let Ok(v) = serde_json::to_value(&s) else {
            continue;
        };
        if let Ok(e) = mooring_core::cluster::parse_secret(&v) {
            if (!server.is_empty() && e.server == server) || (!name.is_empty() && e.name == name) {
                return Ok(e);
            }
        }
    }
    Err(ApiError::Unavailable(format!(
        "destination cluster {:?} is not registered (use `mooring cluster add`)",
        if server.is_empty() { name } else { server }
    )))
}
