//! Mooring's HTTP endpoints: the Git and registry webhook receivers, so a push refreshes
//! what it concerns at once instead of at the next poll, metrics, and the REST API.
//!
//! The webhooks run either next to the controller ([`Backend::InProcess`], `mooring up`:
//! a push queues the controller's work directly) or in a standalone `mooring server`
//! ([`Backend::Standalone`]: a push sets refresh annotations the controller, another
//! process, acts on; see [`refresh`]). Which objects a push concerns is decided by the
//! same pure functions in both cases (`mooring_controller::push`).
//!
//! `POST /api/webhook` accepts GitHub (`X-GitHub-Event: push`, HMAC-SHA256 signature when
//! a secret is configured) and GitLab (`X-Gitlab-Event: Push Hook`, token) payloads, with
//! a body cap. A push refreshes only the applications whose repository it names and —
//! when the payload lists the changed files — whose source path it touches, as Argo CD
//! does.
//!
//! The webhook secrets are `mooring up --webhook-secret` ([`WebhookSecrets`], both
//! providers) and, read at every request so a change applies at once, the keys Argo CD
//! keeps in `argocd-secret`: `webhook.github.secret` and `webhook.gitlab.secret` of
//! `mooring-secret` in the control-plane namespace (a key there wins over the flag).
//! With any secret set, an unsigned or wrongly signed push answers 401 (403 for a
//! provider without a secret of its own) and refreshes nothing.
//!
//! `POST /api/webhook/registry` takes the distribution registry's push notifications
//! (`application/vnd.docker.distribution.events.v1+json`, configured in the registry's
//! `notifications.endpoints` with an `Authorization: Bearer SECRET` header): every image
//! the image watcher follows in a pushed repository is checked at once instead of at its
//! registry's next poll. The secret is `webhook.registry.secret` of `mooring-secret` (or
//! `mooring up --webhook-secret`); with one set, a notification without it answers 401.
//! A notification only triggers a check (the registry is asked what it has), so a forged
//! one can change nothing.
//!
//! `GET /metrics` lists per-application series (application names) only to a caller with
//! a valid API token whose RBAC allows `applications, get, */*` (admin, readonly); other
//! callers get the aggregate series — anonymous ones, unless [`HttpOptions::metrics_auth`]
//! (`--metrics-auth`) answers them 401.
//!
//! The REST API (`/api/v1/…`, [`api`]) with its accounts and tokens ([`auth`], [`store`])
//! and Argo CD's RBAC model ([`rbac`]) lives here too.

pub mod api;
pub mod auth;
pub mod metrics;
pub mod rbac;
pub mod refresh;
pub mod store;
pub mod ui;

pub use metrics::{controller_metrics_response, metrics_response, MetricsResponse};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use mooring_controller::Context;
use mooring_k8s::kube;
use std::sync::Arc;

/// Webhook secrets (`None`: accept unsigned payloads, as Argo CD does without a secret).
#[derive(Debug, Clone, Default)]
pub struct WebhookSecrets {
    pub github: Option<String>,
    pub gitlab: Option<String>,
    /// The bearer token a container registry's notifications must carry
    /// (`POST /api/webhook/registry`).
    pub registry: Option<String>,
}

/// Options of the webhook and metrics endpoints.
#[derive(Debug, Clone, Default)]
pub struct HttpOptions {
    /// Secrets given on the command line (`--webhook-secret`); `mooring-secret`'s keys win.
    pub webhook: WebhookSecrets,
    /// `/metrics` answers 401 without a valid API token (`--metrics-auth`).
    pub metrics_auth: bool,
}

impl From<WebhookSecrets> for HttpOptions {
    fn from(webhook: WebhookSecrets) -> Self {
        HttpOptions {
            webhook,
            ..Default::default()
        }
    }
}

/// Where the webhooks' pushes go, and whose metrics `/metrics` serves.
#[derive(Clone)]
pub enum Backend {
    /// The controller runs in this process (`mooring up`): pushes queue its work directly
    /// and `/metrics` serves its series.
    InProcess(Arc<Context>),
    /// A standalone `mooring server`: pushes set Argo CD's refresh annotations on the
    /// concerned objects in the management cluster ([`refresh`]), which the controller —
    /// another process — honours; `/metrics` serves the server's own series.
    Standalone(refresh::Annotator),
}

#[derive(Clone)]
struct AppState {
    backend: Backend,
    opts: HttpOptions,
    store: store::Store,
    counters: Arc<refresh::Counters>,
}

/// The webhook and metrics endpoints of a server whose controller runs in this process.
pub fn router(ctx: Arc<Context>, opts: HttpOptions) -> Router {
    let store = store::Store::new(ctx.management.client().clone(), ctx.namespace());
    routes(Backend::InProcess(ctx), store, opts)
}

/// The webhook and metrics endpoints of a standalone server (see [`Backend::Standalone`]).
pub fn standalone_router(
    client: kube::Client,
    control_plane: mooring_engine::project::ControlPlane,
    opts: HttpOptions,
) -> Router {
    let store = store::Store::new(client.clone(), &control_plane.namespace);
    routes(
        Backend::Standalone(refresh::Annotator::new(client, control_plane)),
        store,
        opts,
    )
}

fn routes(backend: Backend, store: store::Store, opts: HttpOptions) -> Router {
    Router::new()
        .route("/api/webhook", post(webhook))
        .route("/api/webhook/registry", post(registry_webhook))
        .route("/metrics", axum::routing::get(metrics))
        .layer(DefaultBodyLimit::max(
            mooring_source::webhook::MAX_BODY_BYTES + 1,
        ))
        .with_state(AppState {
            backend,
            opts,
            store,
            counters: Default::default(),
        })
}

/// Prometheus metrics of the controller ([`metrics`]); the series naming applications only
/// for a caller who may get every application.
async fn metrics(
    State(st): State<AppState>,
    headers: HeaderMap,
) -> (
    StatusCode,
    [(axum::http::header::HeaderName, &'static str); 1],
    String,
) {
    // Per-application series only for a caller who may get every application.
    let authenticated =
        if headers.contains_key(axum::http::header::AUTHORIZATION) || st.opts.metrics_auth {
            match api::authenticated_subject(&st.store, &headers).await {
                Ok(subject) => st
                    .store
                    .rbac()
                    .await
                    .is_ok_and(|r| r.allowed(&subject, "applications", "get", "*/*", None)),
                Err(e) => {
                    return (
                        StatusCode::UNAUTHORIZED,
                        [(axum::http::header::CONTENT_TYPE, "text/plain")],
                        format!("{e}\n"),
                    )
                }
            }
        } else {
            false
        };
    match &st.backend {
        Backend::InProcess(ctx) => controller_metrics_response(Some(ctx), authenticated),
        Backend::Standalone(_) => st.counters.response(),
    }
}

async fn webhook(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let (github, gitlab) = match st.store.webhook_secrets().await {
        Ok(s) => s,
        // Fail closed: without the settings no push can be verified.
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
    };
    let github = github.or_else(|| st.opts.webhook.github.clone());
    let gitlab = gitlab.or_else(|| st.opts.webhook.gitlab.clone());
    let event =
        match mooring_source::webhook::parse(&headers, &body, github.as_deref(), gitlab.as_deref())
        {
            Ok(Some(e)) => e,
            Ok(None) => return (StatusCode::OK, "ignored: not a push event\n".into()),
            Err(e) => {
                let code = match e {
                    mooring_source::webhook::WebhookError::TooLarge { .. } => {
                        StatusCode::PAYLOAD_TOO_LARGE
                    }
                    mooring_source::webhook::WebhookError::BadSignature
                    | mooring_source::webhook::WebhookError::BadToken
                    | mooring_source::webhook::WebhookError::MissingHeader { .. } => {
                        StatusCode::UNAUTHORIZED
                    }
                    mooring_source::webhook::WebhookError::Unverified { .. } => {
                        StatusCode::FORBIDDEN
                    }
                    _ => StatusCode::BAD_REQUEST,
                };
                return (code, format!("{e}\n"));
            }
        };
    let refreshed = match &st.backend {
        Backend::InProcess(ctx) => ctx.refresh_for_push(&event).await,
        Backend::Standalone(a) => match a.git_push(&event).await {
            Ok(r) => r,
            Err(e) => {
                st.counters.webhook("git", "error");
                return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n"));
            }
        },
    };
    st.counters.webhook("git", "ok");
    tracing::info!(git_ref = %event.git_ref, apps = ?refreshed, "webhook push");
    (
        StatusCode::OK,
        format!("refreshing {} application(s)\n", refreshed.len()),
    )
}

/// A container registry's push notifications: check the images of the pushed
/// repositories now.
async fn registry_webhook(
    State(st): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let secret = match st.store.registry_webhook_secret().await {
        Ok(s) => s.or_else(|| st.opts.webhook.registry.clone()),
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
    };
    if let Some(secret) = secret {
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        use subtle::ConstantTimeEq as _;
        if !bool::from(given.trim().as_bytes().ct_eq(secret.as_bytes())) {
            return (
                StatusCode::UNAUTHORIZED,
                "the notification lacks the registry webhook's bearer token (Authorization: Bearer …)\n".into(),
            );
        }
    }
    let notification = match mooring_engine::image::registry::parse_notification(&body) {
        Ok(n) => n,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let repositories: Vec<String> = notification
        .pushes
        .into_iter()
        .map(|e| e.repository)
        .collect();
    let n = repositories.len();
    match &st.backend {
        Backend::InProcess(ctx) => {
            ctx.images.notify(repositories);
        }
        Backend::Standalone(a) => {
            if let Err(e) = a.registry_push(&repositories).await {
                st.counters.webhook("registry", "error");
                return (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n"));
            }
        }
    }
    st.counters.webhook("registry", "ok");
    tracing::info!(pushes = n, "registry notification");
    (
        StatusCode::OK,
        format!("checking the images of {n} push(es)\n"),
    )
}
