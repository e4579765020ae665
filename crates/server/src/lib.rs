//! Mooring's HTTP endpoints. For now: the Git webhook receiver, so a push refreshes the
//! applications it concerns at once instead of at the next poll.
//!
//! `POST /api/webhook` accepts GitHub (`X-GitHub-Event: push`, HMAC-SHA256 signature when
//! a secret is configured) and GitLab (`X-Gitlab-Event: Push Hook`, token) payloads, with
//! a body cap. A push refreshes only the applications whose repository it names and —
//! when the payload lists the changed files — whose source path it touches, as Argo CD
//! does.
//!
//! The REST API (`/api/v1/…`, [`api`]) with its accounts and tokens ([`auth`], [`store`])
//! and Argo CD's RBAC model ([`rbac`]) lives here too.

pub mod api;
pub mod auth;
pub mod rbac;
pub mod store;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use mooring_controller::Context;
use std::sync::Arc;

/// Webhook secrets (`None`: accept unsigned payloads, as Argo CD does without a secret).
#[derive(Debug, Clone, Default)]
pub struct WebhookSecrets {
    pub github: Option<String>,
    pub gitlab: Option<String>,
}

#[derive(Clone)]
struct AppState {
    ctx: Arc<Context>,
    secrets: WebhookSecrets,
}

pub fn router(ctx: Arc<Context>, secrets: WebhookSecrets) -> Router {
    Router::new()
        .route("/api/webhook", post(webhook))
        .route("/metrics", axum::routing::get(metrics))
        .layer(DefaultBodyLimit::max(
            mooring_source::webhook::MAX_BODY_BYTES + 1,
        ))
        .with_state(AppState { ctx, secrets })
}

/// Prometheus metrics of the controller: reconciles and their duration, renders reused
/// across commits, and commit-seen → Synced+Healthy convergence per application.
async fn metrics(
    State(st): State<AppState>,
) -> (
    StatusCode,
    [(axum::http::header::HeaderName, &'static str); 1],
    String,
) {
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::metrics::family::Family;
    use prometheus_client::metrics::gauge::Gauge;
    use prometheus_client::registry::Registry;
    let m = &st.ctx.metrics;
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
    for ((app, revision), took) in m.convergence() {
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
    let event = match mooring_source::webhook::parse(
        &headers,
        &body,
        st.secrets.github.as_deref(),
        st.secrets.gitlab.as_deref(),
    ) {
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
                _ => StatusCode::BAD_REQUEST,
            };
            return (code, format!("{e}\n"));
        }
    };
    let refreshed = st.ctx.refresh_for_push(&event).await;
    tracing::info!(git_ref = %event.git_ref, apps = ?refreshed, "webhook push");
    (
        StatusCode::OK,
        format!("refreshing {} application(s)\n", refreshed.len()),
    )
}
