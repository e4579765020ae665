//! The standalone server's side of webhooks: it has no controller in its process, so — as
//! Argo CD's API server — it marks what a push concerns in the management cluster and the
//! controller, watching those objects, does the rest:
//!
//! - a Git push sets Argo CD's refresh annotation (`argocd.argoproj.io/refresh: normal`)
//!   on every concerned Application, and `argocd.argoproj.io/application-set-refresh:
//!   "true"` on every ApplicationSet whose git generators read the repository; the
//!   controller compares with fresh Git resolutions and clears them;
//! - a registry push adds the pushed repository paths to
//!   [`mooring_controller::push::REGISTRY_PUSH_ANNOTATION`] of the Applications whose
//!   image-list names them; the image watcher checks those images and clears it.
//!
//! Which objects are concerned is decided by the same pure functions the in-process path
//! uses ([`mooring_controller::push`]), with the repository aliases of `mooring-cm`.
//! The server needs `get, list, patch` on Applications and ApplicationSets for this (its
//! Role in `mooring install`).

use mooring_controller::push;
use mooring_k8s::kube;
use mooring_k8s::kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// `mooring-cm` key: repository URL rewrites, a JSON list of `[from, to]` pairs (`mooring
/// up` records the URLs it serves from its local repository).
pub const REPOSITORY_ALIASES_KEY: &str = "repository.aliases";

/// Why a push could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("listing {what}: {source}")]
    List {
        what: &'static str,
        source: kube::Error,
    },
}

/// Sets refresh annotations in the management cluster.
#[derive(Clone)]
pub struct Annotator {
    client: kube::Client,
    control_plane: mooring_engine::project::ControlPlane,
}

impl Annotator {
    pub fn new(
        client: kube::Client,
        control_plane: mooring_engine::project::ControlPlane,
    ) -> Annotator {
        Annotator {
            client,
            control_plane,
        }
    }

    /// The repository aliases of `mooring-cm` (none when unset or unreadable; an
    /// unreadable value is logged).
    async fn aliases(&self) -> Vec<(String, String)> {
        let cms: Api<mooring_k8s::k8s_openapi::api::core::v1::ConfigMap> =
            Api::namespaced(self.client.clone(), &self.control_plane.namespace);
        let value = cms
            .get_opt(crate::store::SETTINGS_CONFIGMAP)
            .await
            .ok()
            .flatten()
            .and_then(|cm| cm.data)
            .and_then(|d| d.get(REPOSITORY_ALIASES_KEY).cloned());
        match value {
            None => vec![],
            Some(j) if j.trim().is_empty() => vec![],
            Some(j) => serde_json::from_str(&j).unwrap_or_else(|e| {
                tracing::warn!("{REPOSITORY_ALIASES_KEY} of {} is not a JSON list of [from, to] pairs ({e}); pushes are matched without aliases", crate::store::SETTINGS_CONFIGMAP);
                vec![]
            }),
        }
    }

    /// Every object of `resource` the control plane reads, as JSON.
    async fn list(
        &self,
        resource: &kube::api::ApiResource,
        what: &'static str,
    ) -> Result<Vec<Value>, RefreshError> {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), resource);
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|source| RefreshError::List { what, source })?;
        Ok(list
            .items
            .into_iter()
            .filter(|o| {
                self.control_plane
                    .namespace_enabled(o.metadata.namespace.as_deref().unwrap_or_default())
            })
            .filter_map(|o| serde_json::to_value(o).ok())
            .collect())
    }

    async fn annotate(&self, resource: &kube::api::ApiResource, key: &str, annotations: Value) {
        let Some((ns, name)) = key.split_once('/') else {
            return;
        };
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, resource);
        let patch = json!({"metadata": {"annotations": annotations}});
        if let Err(e) = api
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::warn!("annotating {} {key} for a refresh: {e}", resource.kind);
        }
    }

    /// A Git push: annotate the concerned Applications and ApplicationSets. Returns the
    /// Applications' keys.
    pub async fn git_push(
        &self,
        event: &mooring_source::webhook::PushEvent,
    ) -> Result<Vec<String>, RefreshError> {
        let aliases = self.aliases().await;
        let app_resource = mooring_k8s::resources::application_resource();
        let apps: Vec<mooring_core::app::Application> = self
            .list(&app_resource, "Applications")
            .await?
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect();
        let concerned = push::apps_for_push(&apps, event, &aliases);
        for key in &concerned.apps {
            self.annotate(
                &app_resource,
                key,
                json!({mooring_controller::reconcile::REFRESH_ANNOTATION: "normal"}),
            )
            .await;
        }
        let set_resource = mooring_k8s::resources::applicationset_resource();
        let sets = self.list(&set_resource, "ApplicationSets").await?;
        for key in push::appsets_for_push(&sets, &push::pushed_urls(event), &aliases) {
            self.annotate(
                &set_resource,
                &key,
                json!({push::APPSET_REFRESH_ANNOTATION: "true"}),
            )
            .await;
        }
        Ok(concerned.apps)
    }

    /// A registry push: record the pushed repository paths on the Applications watching
    /// them. Returns their keys.
    pub async fn registry_push(
        &self,
        repositories: &[String],
    ) -> Result<Vec<String>, RefreshError> {
        let app_resource = mooring_k8s::resources::application_resource();
        let apps = self.list(&app_resource, "Applications").await?;
        let keys = push::apps_for_registry_push(&apps, repositories);
        for key in &keys {
            // Added to what an earlier push recorded and the watcher has not taken yet.
            let earlier = apps
                .iter()
                .find(|v| {
                    format!(
                        "{}/{}",
                        v["metadata"]["namespace"].as_str().unwrap_or_default(),
                        v["metadata"]["name"].as_str().unwrap_or_default()
                    ) == *key
                })
                .and_then(|v| v["metadata"]["annotations"][push::REGISTRY_PUSH_ANNOTATION].as_str())
                .map(push::registry_push_paths)
                .unwrap_or_default();
            let mut paths: std::collections::BTreeSet<String> = earlier.into_iter().collect();
            paths.extend(repositories.iter().filter(|r| !r.is_empty()).cloned());
            let value = paths.into_iter().collect::<Vec<_>>().join(",");
            self.annotate(
                &app_resource,
                key,
                json!({push::REGISTRY_PUSH_ANNOTATION: value}),
            )
            .await;
        }
        Ok(keys)
    }
}

/// The standalone server's own metrics: webhook requests by kind and result.
#[derive(Default)]
pub struct Counters {
    webhooks: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl Counters {
    /// Count one webhook request.
    pub fn webhook(&self, kind: &'static str, result: &'static str) {
        *self
            .webhooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry((kind, result))
            .or_default() += 1;
    }

    /// The series in OpenMetrics text.
    pub fn response(&self) -> crate::MetricsResponse {
        use prometheus_client::encoding::text::encode;
        use prometheus_client::metrics::counter::Counter;
        use prometheus_client::metrics::family::Family;
        let mut registry = prometheus_client::registry::Registry::with_prefix("mooring_server");
        let family = Family::<Vec<(String, String)>, Counter>::default();
        for ((kind, result), n) in self
            .webhooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            family
                .get_or_create(&vec![
                    ("kind".into(), (*kind).into()),
                    ("result".into(), (*result).into()),
                ])
                .inc_by(*n);
        }
        registry.register(
            "webhook_requests",
            "Webhook pushes accepted by kind (git, registry) and result",
            family,
        );
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &registry) {
            return (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                [(axum::http::header::CONTENT_TYPE, "text/plain")],
                format!("{e}\n"),
            );
        }
        (
            axum::http::StatusCode::OK,
            [(
                axum::http::header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            out,
        )
    }
}
