//! Mooring's HTTP endpoints. For now: the Git webhook receiver, so a push refreshes the
//! applications it concerns at once instead of at the next poll.
//!
//! `POST /api/webhook` accepts GitHub (`X-GitHub-Event: push`, HMAC-SHA256 signature when
//! a secret is configured) and GitLab (`X-Gitlab-Event: Push Hook`, token) payloads, with
//! a body cap. A push refreshes only the applications whose repository it names and —
//! when the payload lists the changed files — whose source path it touches, as Argo CD
//! does.

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
        .layer(DefaultBodyLimit::max(
            mooring_source::webhook::MAX_BODY_BYTES + 1,
        ))
        .with_state(AppState { ctx, secrets })
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
