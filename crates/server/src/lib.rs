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
pub mod rbac;
pub mod refresh;
pub mod store;
pub mod ui;

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

/// Prometheus metrics of the controller: reconciles and their duration, renders reused
/// across commits, and commit-seen → Synced+Healthy convergence per application (only
/// for a caller who may get every application: the series name applications).
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
        Backend::InProcess(ctx) => metrics_response(Some(&ctx.metrics), authenticated),
        Backend::Standalone(_) => st.counters.response(),
    }
}

/// The type of a `/metrics` answer.
pub type MetricsResponse = (
    StatusCode,
    [(axum::http::header::HeaderName, &'static str); 1],
    String,
);

/// The controller's metrics in OpenMetrics text: reconciles and their duration, renders
/// reused across commits, notification deliveries, image checks and write-backs, and —
/// with `per_app` — commit-seen → Synced+Healthy convergence per application (series
/// naming applications). `None` (a controller still starting) gives the series at zero.
pub fn metrics_response(
    metrics: Option<&mooring_controller::Metrics>,
    per_app: bool,
) -> MetricsResponse {
    let authenticated = per_app;
    let empty = mooring_controller::Metrics::default();
    let m = metrics.unwrap_or(&empty);
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::registry::Registry;
    let mut registry = Registry::with_prefix("mooring");
    let (count, total) = m.reconciles();
    let reconciles: Counter = Counter::default();
    reconciles.inc_by(count);
    registry.register("reconciles", "Application reconciles run", reconciles);
    let seconds: Counter<f64, std::sync::atomic::AtomicU64> = Counter::default();
    seconds.inc_by(total.as_secs_f64());
    registry.register(
        "reconcile_seconds",
        "Time spent reconciling applications",
        seconds,
    );
    let reused: Counter = Counter::default();
    reused.inc_by(m.renders_reused());
    registry.register(
        "renders_reused",
        "Renders reused for commits outside an app's inputs",
        reused,
    );
    let convergence =
        Family::<Vec<(String, String)>, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
    for ((app, revision), took) in m.convergence().into_iter().filter(|_| authenticated) {
        convergence
            .get_or_create(&vec![
                ("application".into(), app),
                ("revision".into(), revision),
            ])
            .set(took.as_secs_f64());
    }
    registry.register(
        "convergence_seconds",
        "Seconds from a revision first seen to the application Synced and Healthy",
        convergence,
    );
    let deliveries = Family::<Vec<(String, String)>, Counter>::default();
    for ((trigger, service, result), n) in m.notification_deliveries() {
        deliveries
            .get_or_create(&vec![
                ("trigger".into(), trigger),
                ("service".into(), service),
                ("result".into(), result),
            ])
            .inc_by(n);
    }
    registry.register(
        "notifications_deliveries",
        "Notification deliveries (Argo CD Notifications' format) by trigger, service and result",
        deliveries,
    );
    let checks: Counter = Counter::default();
    checks.inc_by(m.image_checks());
    registry.register(
        "image_checks",
        "Images the image watcher looked up in their registries",
        checks,
    );
    let updates = Family::<Vec<(String, String)>, Counter>::default();
    for (result, n) in m.image_updates() {
        updates
            .get_or_create(&vec![("result".into(), result.into())])
            .inc_by(n);
    }
    registry.register(
        "image_updates",
        "Image write-backs by result (written, refused by the policy gate, failed)",
        updates,
    );
    // Sharding: which shards this replica owns, whether it leads, and which destinations
    // it reconciled (Argo CD shows the same per shard in its cluster list).
    let shards = m.sharding();
    let owned = Family::<Vec<(String, String)>, Gauge>::default();
    for k in 0..shards.shards {
        owned
            .get_or_create(&vec![("shard".into(), k.to_string())])
            .set(i64::from(shards.owned.contains(&k)));
    }
    registry.register(
        "controller_shard_owned",
        "1 for each shard this controller replica owns (holds the Lease of), else 0",
        owned,
    );
    let leader: Gauge = Gauge::default();
    leader.set(i64::from(shards.leader));
    registry.register(
        "controller_leader",
        "1 when this replica runs the management-cluster loops (ApplicationSets, notifications, DR)",
        leader,
    );
    let replica = shards.replica.clone();
    let by_destination = Family::<Vec<(String, String)>, Counter>::default();
    for ((destination, shard), n) in m.destination_reconciles() {
        by_destination
            .get_or_create(&vec![
                ("destination".into(), destination),
                ("shard".into(), shard.to_string()),
                ("replica".into(), replica.clone()),
            ])
            .inc_by(n);
    }
    registry.register(
        "destination_reconciles",
        "Application reconciles run by this replica, by destination cluster and shard",
        by_destination,
    );
    let mut out = String::new();
    if let Err(e) = encode(&mut out, &registry) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(axum::http::header::CONTENT_TYPE, "text/plain")],
            format!("{e}\n"),
        );
    }
    (
        StatusCode::OK,
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
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
