//! The REST API (`/api/v1/…`), shaped like Argo CD's so its clients and habits carry over,
//! with every route authenticated by an API token and authorised by [`crate::rbac`].
//!
//! | route | RBAC resource, action, object |
//! |---|---|
//! | `GET /api/v1/applications` | `applications, get, PROJECT/NAME` (the list is filtered) |
//! | `POST /api/v1/applications[?upsert=true]` | `applications, create` (`update` when upserting an existing one) |
//! | `GET /api/v1/applications/{name}` | `applications, get` |
//! | `PUT /api/v1/applications/{name}` | `applications, update` (on the old and, if moved, the new project) |
//! | `DELETE /api/v1/applications/{name}[?cascade=false]` | `applications, delete` |
//! | `POST /api/v1/applications/{name}/sync` `{revision, prune}` (`{revisions, sourcePositions, prune}` for `spec.sources`) | `applications, sync` |
//! | `POST /api/v1/applications/{name}/rollback` `{id, prune}` | `applications, sync` |
//! | `GET /api/v1/projects[/{name}]` | `projects, get, NAME` |
//! | `POST /api/v1/projects/{p}/roles/{r}/token` `{expiresIn}` · `DELETE …/token/{id}` | `projects, update, p` |
//! | `GET /api/v1/applicationsets[/{name}]` | `applicationsets, get, PROJECT/NAME` (project of the template) |
//! | `GET /api/v1/account` | `accounts, get, NAME` (filtered) |
//! | `POST /api/v1/account/{name}/token` `{expiresIn}` · `DELETE …/token/{id}` | `accounts, update, NAME` |
//! | `GET /api/v1/account/can-i/{resource}/{action}/{object…}` | none: answers `{"value": "yes"\|"no"}` for the caller |
//! | `GET /api/v1/session/userinfo` | none |
//! | `GET /api/v1/applications/{name}/resource-tree`, `…/managed-resources`, `…/events`, `…/rollouts` (`views`) | `applications, get` |
//! | `GET /api/v1/applications/{name}/pods/{pod}/logs` | `applications, get` and `logs, get` |
//! | `POST /api/v1/applications/{name}/rollouts/{ns}/{rollout}/{action}` | `applications, action/argoproj.io/Rollout/ACTION` |
//! | `GET /api/v1/stream/applications` (`stream`) | `applications, get` per event |
//! | `GET /api/v1/clusters` | `clusters, get, SERVER` (filtered) |
//! | `GET /api/v1/policy` | findings filtered by `applications, get` |
//! | `GET /api/v1/rollbackpolicies`, `GET /api/v1/drplans` | `applications, get, */*` |
//! | `GET /api/openapi.json` | none: the document of these routes ([`openapi`]) |
//!
//! Errors are JSON `{"error", "message", "code"}`: 401 for a missing, malformed,
//! expired or revoked token (or a disabled account), 403 `permission denied: RESOURCE,
//! ACTION, OBJECT, sub: SUBJECT`, 404, 409, 413 beyond [`MAX_BODY_BYTES`], 429 with
//! `Retry-After` once the failures of an account, or of unknown tokens together, exceed
//! their budget (a valid token is never refused for them: see [`crate::auth`]). An application
//! the caller may not see answers 403, not 404, so names do not leak. An application,
//! project or ApplicationSet name in the path that is not a Kubernetes name (`a%2Fb`), or
//! a role name outside Argo CD's rule, answers 400 before RBAC parses it. `expiresIn` is
//! seconds (as in Argo CD) or a duration string such as `"90d"`.
//!
//! Sync and rollback set the Application's `operation` field, exactly as `mooring app
//! sync` does; the controller runs it.
//!
//! Applications live in the control-plane namespace ([`ApiOptions::control_plane`],
//! `argocd` by default). Those in other namespaces the control plane reads ("applications
//! in any namespace") are addressed as in Argo CD: `?appNamespace=NS` on the
//! per-application routes, `metadata.namespace` in a created body, and RBAC objects
//! `PROJECT/NS/NAME` (`PROJECT/NAME` in the control-plane namespace). A namespace the
//! control plane does not read, or that the app's project does not list in
//! `sourceNamespaces`, is refused (400) whatever the caller's RBAC.

pub mod live;
pub mod openapi;
mod stream;
mod views;

use crate::auth::{self, AuthError, FailureKey, FailureLimiter};
use crate::rbac::{project_of, Project, Rbac, Subject};
use crate::store::{Store, StoreError};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use mooring_engine::project::ControlPlane;
use mooring_k8s::kube;
use mooring_k8s::kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use mooring_k8s::resources::applicationset_resource;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Options of the API.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// The control-plane namespace (projects, settings, tokens, Applications) and the
    /// other namespaces Applications may live in.
    pub control_plane: ControlPlane,
    /// Failed authentications allowed per account (and for unknown tokens together)
    /// before 429 …
    pub failure_burst: u32,
    /// … refilled at this rate per second.
    pub failure_refill_per_second: f64,
    /// Where the views (tree, managed resources, rollouts) read live state; `None`: a
    /// context of their own made on first use ([`live::Live::offline`]).
    pub live: Option<live::Live>,
    /// Set `Secure` on the UI's cookie (the server is reached over HTTPS).
    pub secure_cookie: bool,
}

impl Default for ApiOptions {
    fn default() -> Self {
        ApiOptions {
            control_plane: ControlPlane::default(),
            failure_burst: 10,
            failure_refill_per_second: 0.2,
            live: None,
            secure_cookie: false,
        }
    }
}

#[derive(Clone)]
pub(crate) struct ApiState {
    pub(crate) store: Store,
    pub(crate) control_plane: Arc<ControlPlane>,
    /// The controller of this process (`mooring up`), or one made for reading (a
    /// standalone `mooring server`): renders, compares and reads live state.
    pub(crate) live: live::Live,
    /// The Application watch behind every `/api/v1/stream/applications`.
    feed: Arc<stream::Feed>,
    pub(crate) secure_cookie: bool,
    limiter: Arc<Mutex<FailureLimiter>>,
    /// Refused answers being held back at once (beyond it, refusals are answered at
    /// once: holding costs a task and a connection each).
    tarpit: Arc<tokio::sync::Semaphore>,
}

/// Refused answers held back at most at once.
const TARPIT_SLOTS: usize = 256;

/// The authenticated caller.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    pub(crate) subject: Subject,
    token_id: String,
    /// Authenticated by the web UI's cookie rather than an `Authorization` header.
    by_cookie: bool,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("{0}")]
    Unauthorized(#[from] AuthError),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    /// Live state could not be read (a destination unreachable or unregistered).
    #[error("{0}")]
    Unavailable(String),
    #[error("too many failed authentications {key}; retry in {}s", retry.as_secs().max(1))]
    TooMany { key: FailureKey, retry: Duration },
    #[error("{0}")]
    Body(String, StatusCode),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Kube(#[from] kube::Error),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = match &self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Body(_, c) => *c,
            ApiError::Kube(kube::Error::Api(e)) => {
                StatusCode::from_u16(e.code).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            ApiError::Store(StoreError::Kube { .. }) | ApiError::Kube(_) => StatusCode::BAD_GATEWAY,
            ApiError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let msg = self.to_string();
        let mut resp = (
            code,
            Json(json!({"error": msg, "message": msg, "code": code.as_u16()})),
        )
            .into_response();
        if let ApiError::TooMany { retry, .. } = &self {
            if let Ok(v) = HeaderValue::from_str(&retry.as_secs().max(1).to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if let ApiError::Unauthorized(_) = &self {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"mooring\""),
            );
        }
        resp
    }
}

pub(crate) type ApiResult<T = Json<Value>> = Result<T, ApiError>;

/// The `/api/v1` router. Serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` so failures are logged with the
/// client's address (they are limited per account, never per address).
pub fn router(client: kube::Client, opts: ApiOptions) -> Router {
    let live = opts
        .live
        .unwrap_or_else(|| live::Live::offline_default(client.clone(), opts.control_plane.clone()));
    let st = ApiState {
        store: Store::new(client, &opts.control_plane.namespace),
        control_plane: Arc::new(opts.control_plane),
        live,
        feed: Default::default(),
        secure_cookie: opts.secure_cookie,
        limiter: Arc::new(Mutex::new(FailureLimiter::new(
            opts.failure_burst,
            opts.failure_refill_per_second,
        ))),
        tarpit: Arc::new(tokio::sync::Semaphore::new(TARPIT_SLOTS)),
    };
    Router::new()
        .route("/api/v1/applications", get(list_apps).post(create_app))
        .route(
            "/api/v1/applications/{name}",
            get(get_app).put(update_app).delete(delete_app),
        )
        .route("/api/v1/applications/{name}/sync", post(sync_app))
        .route("/api/v1/applications/{name}/rollback", post(rollback_app))
        .route(
            "/api/v1/applications/{name}/resource-tree",
            get(views::resource_tree),
        )
        .route(
            "/api/v1/applications/{name}/managed-resources",
            get(views::managed_resources),
        )
        .route("/api/v1/applications/{name}/events", get(views::events))
        .route(
            "/api/v1/applications/{name}/pods/{pod}/logs",
            get(views::pod_logs),
        )
        .route("/api/v1/applications/{name}/rollouts", get(views::rollouts))
        .route(
            "/api/v1/applications/{name}/rollouts/{namespace}/{rollout}/{action}",
            post(views::rollout_action),
        )
        .route("/api/v1/stream/applications", get(stream::applications))
        .route("/api/v1/clusters", get(views::clusters))
        .route("/api/v1/policy", get(views::policy))
        .route("/api/v1/rollbackpolicies", get(views::rollback_policies))
        .route("/api/v1/drplans", get(views::dr_plans))
        .route("/api/v1/projects", get(list_projects))
        .route("/api/v1/projects/{name}", get(get_project))
        .route(
            "/api/v1/projects/{name}/roles/{role}/token",
            post(create_project_token),
        )
        .route(
            "/api/v1/projects/{name}/roles/{role}/token/{id}",
            delete(delete_project_token),
        )
        .route("/api/v1/applicationsets", get(list_appsets))
        .route("/api/v1/applicationsets/{name}", get(get_appset))
        .route("/api/v1/session/userinfo", get(userinfo))
        .route("/api/v1/account", get(list_accounts))
        .route(
            "/api/v1/account/can-i/{resource}/{action}/{*object}",
            get(can_i),
        )
        .route("/api/v1/account/{name}/token", post(create_account_token))
        .route(
            "/api/v1/account/{name}/token/{id}",
            delete(delete_account_token),
        )
        .route_layer(axum::middleware::from_fn(check_names))
        .layer(axum::middleware::from_fn_with_state(
            st.clone(),
            authenticate,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .merge(crate::ui::router())
        .route("/api/openapi.json", get(openapi::document))
        .with_state(st)
}

/// The cookie the web UI keeps its token in (Argo CD's name); `HttpOnly` and
/// `SameSite=Strict` (see [`crate::ui`]).
pub const TOKEN_COOKIE: &str = "argocd.token";

/// The header the web UI sends with every request that changes something. A request
/// authenticated by the cookie without it is refused: a cross-site form cannot set a
/// header, and a cross-site script would need a CORS preflight, which is never granted.
pub const CSRF_HEADER: &str = "x-requested-with";

/// The request's token: the `Authorization: Bearer` header, else the web UI's cookie
/// (`true`).
pub(crate) fn request_token(headers: &HeaderMap) -> Result<(&str, bool), AuthError> {
    if headers.contains_key(header::AUTHORIZATION) {
        return bearer(headers).map(|t| (t, false));
    }
    cookie_token(headers)
        .map(|t| (t, true))
        .ok_or(AuthError::Missing)
}

/// The value of the [`TOKEN_COOKIE`] cookie, if the request carries one.
pub(crate) fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == TOKEN_COOKIE)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

fn bearer(headers: &HeaderMap) -> Result<&str, AuthError> {
    let v = headers
        .get(header::AUTHORIZATION)
        .ok_or(AuthError::Missing)?
        .to_str()
        .map_err(|_| AuthError::Malformed)?;
    let (scheme, token) = v.trim().split_once(' ').ok_or(AuthError::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Malformed);
    }
    Ok(token.trim())
}

/// The caller, or why not and whom the failure counts against.
async fn principal(
    store: &Store,
    headers: &HeaderMap,
) -> Result<Principal, (ApiError, FailureKey)> {
    let anonymous = |e: ApiError| (e, FailureKey::Anonymous);
    let (token, by_cookie) = request_token(headers).map_err(|e| anonymous(e.into()))?;
    verify_token(store, token)
        .await
        .map(|(subject, token_id)| Principal {
            subject,
            token_id,
            by_cookie,
        })
}

/// The subject and token id of a token, or why not and whom the failure counts against.
pub(crate) async fn verify_token(
    store: &Store,
    token: &str,
) -> Result<(Subject, String), (ApiError, FailureKey)> {
    let anonymous = |e: ApiError| (e, FailureKey::Anonymous);
    if !auth::well_formed(token) {
        return Err(anonymous(AuthError::Malformed.into()));
    }
    let tokens = store.tokens().await.map_err(|e| anonymous(e.into()))?;
    let rec = match tokens.verify(token, mooring_core::time::now().as_second()) {
        Ok(rec) => rec,
        Err(e @ AuthError::Expired { .. }) => {
            let subject = tokens
                .tokens
                .iter()
                .find(|t| t.hash == auth::hash_token(token))
                .map(|t| t.subject.clone())
                .unwrap_or_default();
            return Err((e.into(), FailureKey::Subject(subject)));
        }
        Err(e) => return Err(anonymous(e.into())),
    };
    let subject = if rec.subject.starts_with("proj:") {
        Subject {
            name: rec.subject.clone(),
            groups: vec![],
        }
    } else {
        let accounts = store.accounts().await.map_err(|e| anonymous(e.into()))?;
        let a = auth::account_for(&accounts, &rec.subject)
            .map_err(|e| (e.into(), FailureKey::Subject(rec.subject.clone())))?;
        Subject {
            name: a.name.clone(),
            groups: a.groups.clone(),
        }
    };
    Ok((subject, rec.id.clone()))
}

/// The subject of a request's bearer token (for endpoints outside `/api/v1`, such as
/// `/metrics` with `--metrics-auth`), or why it is refused.
pub async fn authenticated_subject(store: &Store, headers: &HeaderMap) -> Result<Subject, String> {
    principal(store, headers)
        .await
        .map(|p| p.subject)
        .map_err(|(e, _)| e.to_string())
}

/// Authenticate every request. The token is checked first, so a valid one is always
/// served; a failure counts against its [`FailureKey`], and once that budget is spent
/// the answer is 429 with `Retry-After`, held back by the limiter's backoff. A request
/// that changes something and is authenticated by the web UI's cookie must carry
/// [`CSRF_HEADER`] (403 without it).
async fn authenticate(State(st): State<ApiState>, mut req: Request, next: Next) -> Response {
    let ip = peer_ip(&req);
    let p = match principal(&st.store, req.headers()).await {
        Ok(p) => p,
        Err(failed) => return refuse(&st, ip, failed).await,
    };
    let safe = matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    if p.by_cookie && !safe && !req.headers().contains_key(CSRF_HEADER) {
        tracing::info!(%ip, sub = %p.subject.name, "cookie-authenticated request without the CSRF header refused");
        return ApiError::Forbidden(format!(
            "cross-site request refused: a {} authenticated by the UI's cookie must carry the {CSRF_HEADER} header (scripts use `Authorization: Bearer TOKEN`)",
            req.method()
        ))
        .into_response();
    }
    req.extensions_mut().insert(p);
    next.run(req).await
}

/// The client's address, for logs.
pub(crate) fn peer_ip(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

/// Check a token the web UI's login form or link presents, under the same failure
/// budget as the API's.
pub(crate) async fn admit_token(
    st: &ApiState,
    ip: IpAddr,
    token: &str,
) -> Result<Subject, Response> {
    match verify_token(&st.store, token).await {
        Ok((subject, _)) => Ok(subject),
        Err(failed) => Err(refuse(st, ip, failed).await),
    }
}

/// The answer to a failed authentication: counted against its key, 429 (held back) once
/// the key's budget is spent.
async fn refuse(st: &ApiState, ip: IpAddr, (e, key): (ApiError, FailureKey)) -> Response {
    if !matches!(e, ApiError::Unauthorized(_)) {
        // The settings could not be read: not the caller's failure.
        return e.into_response();
    }
    let now = Instant::now();
    let verdict = match st.limiter.lock() {
        Ok(mut l) => match l.check(&key, now) {
            Ok(()) => {
                l.fail(key.clone(), now);
                Ok(())
            }
            Err(retry) => Err((retry, l.refused(&key, now))),
        },
        Err(_) => Ok(()),
    };
    match verdict {
        Ok(()) => {
            tracing::info!(%ip, error = %e, "API authentication failed");
            e.into_response()
        }
        Err((retry, hold)) => {
            tracing::debug!(%ip, error = %e, "API authentication failed (limited)");
            if let Ok(_slot) = st.tarpit.try_acquire() {
                tokio::time::sleep(hold).await;
            }
            ApiError::TooMany { key, retry }.into_response()
        }
    }
}

/// Refuse (400) application, project and ApplicationSet names in the path that are not
/// Kubernetes names, and role names outside Argo CD's rule, before any handler parses
/// them into RBAC objects (`a%2Fb` would otherwise be split as `a` / `b`, and reach the
/// API server as a subresource path).
async fn check_names(params: axum::extract::RawPathParams, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let kind = if path.starts_with("/api/v1/applicationsets") {
        "applicationset"
    } else if path.starts_with("/api/v1/applications") {
        "application"
    } else if path.starts_with("/api/v1/projects") {
        "project"
    } else {
        ""
    };
    for (key, value) in &params {
        let refused = match key {
            "name" if !kind.is_empty() => mooring_core::name::validate_object_name(kind, value)
                .err()
                .map(|e| e.to_string()),
            "role" if !crate::rbac::valid_role_name(value) => Some(format!(
                "role name {value:?} is invalid: use letters, digits, '-' and '_', starting and ending with a letter or digit"
            )),
            _ => None,
        };
        if let Some(why) = refused {
            return ApiError::BadRequest(why).into_response();
        }
    }
    next.run(req).await
}

/// The policy and projects, loaded once per request.
pub(crate) struct Authz {
    rbac: Rbac,
    projects: HashMap<String, Project>,
}

impl Authz {
    pub(crate) async fn load(st: &ApiState) -> ApiResult<Authz> {
        let rbac = st.store.rbac().await?;
        let projects = st
            .store
            .projects_json()
            .await?
            .iter()
            .map(Project::from_json)
            .map(|p| (p.name.clone(), p))
            .collect();
        Ok(Authz { rbac, projects })
    }

    pub(crate) fn allowed(
        &self,
        p: &Principal,
        resource: &str,
        action: &str,
        object: &str,
    ) -> bool {
        let project = project_of(resource, object).and_then(|n| self.projects.get(n));
        self.rbac
            .allowed(&p.subject, resource, action, object, project)
    }

    pub(crate) fn check(
        &self,
        p: &Principal,
        resource: &str,
        action: &str,
        object: &str,
    ) -> ApiResult<()> {
        let project = project_of(resource, object).and_then(|n| self.projects.get(n));
        self.rbac
            .check(&p.subject, resource, action, object, project)
            .map_err(|mut d| {
                // A project token is told when its own role is disabled, whatever it asked.
                if d.because.is_empty() {
                    if let Some(e) = p.subject.project_role().and_then(|(proj, role)| {
                        self.projects.get(proj).and_then(|pr| pr.role_error(role))
                    }) {
                        d.because = format!(" ({e})");
                    }
                }
                ApiError::Forbidden(d.to_string())
            })
    }
}

/// The Applications of namespace `ns`.
pub(crate) fn apps(st: &ApiState, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        st.store.client.clone(),
        ns,
        &mooring_k8s::resources::application_resource(),
    )
}

/// `?appNamespace=`: which namespace a per-application route means (default: the
/// control plane's), as in Argo CD's API.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AppNamespaceQuery {
    #[serde(default)]
    pub(crate) app_namespace: Option<String>,
}

impl AppNamespaceQuery {
    /// The namespace, refused (400) unless the control plane reads Applications there.
    pub(crate) fn namespace<'a>(&'a self, st: &'a ApiState) -> ApiResult<&'a str> {
        enabled_namespace(st, self.app_namespace.as_deref())
    }
}

/// An Application namespace a request names (the control plane's when none), refused (400)
/// unless the control plane reads Applications there.
pub(crate) fn enabled_namespace<'a>(st: &'a ApiState, ns: Option<&'a str>) -> ApiResult<&'a str> {
    let ns = ns
        .filter(|n| !n.is_empty())
        .unwrap_or(&st.control_plane.namespace);
    if !st.control_plane.namespace_enabled(ns) {
        return Err(ApiError::BadRequest(format!(
            "namespace {ns:?} is not permitted: {}",
            mooring_controller::ignored_reason(&st.control_plane, ns)
        )));
    }
    Ok(ns)
}

pub(crate) fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

/// The RBAC object of an Application: `PROJECT/NAME` in the control-plane namespace,
/// `PROJECT/NAMESPACE/NAME` elsewhere (Argo CD's `RBACName`); project `default` when unset.
pub(crate) fn app_object(st: &ApiState, v: &Value) -> String {
    let project = match str_at(v, "/spec/project") {
        "" => "default",
        p => p,
    };
    let name = st.control_plane.qualified_name(
        str_at(v, "/metadata/namespace"),
        str_at(v, "/metadata/name"),
    );
    format!("{project}/{name}")
}

pub(crate) fn to_value(o: &DynamicObject) -> Value {
    let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
    if let Some(m) = v.pointer_mut("/metadata/managedFields") {
        *m = Value::Null;
    }
    v
}

/// The Application `ns/name`, or 403 (not 404) unless the caller could see any app.
pub(crate) async fn load_app(
    st: &ApiState,
    az: &Authz,
    p: &Principal,
    ns: &str,
    name: &str,
) -> ApiResult<Value> {
    match apps(st, ns).get_opt(name).await? {
        Some(o) => Ok(to_value(&o)),
        None => {
            let qualified = st.control_plane.qualified_name(ns, name);
            let obj = format!("*/{qualified}");
            if az.allowed(p, "applications", "get", &obj) {
                Err(ApiError::NotFound(format!(
                    "application {qualified:?} not found"
                )))
            } else {
                Err(ApiError::Forbidden(format!(
                    "permission denied: applications, get, {obj}, sub: {}",
                    p.subject.name
                )))
            }
        }
    }
}

pub(crate) fn body_json<T: serde::de::DeserializeOwned + Default>(
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<T> {
    let bytes = body.map_err(|e| ApiError::Body(e.body_text(), e.status()))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::BadRequest(format!("request body is not valid JSON: {e}")))
}

/// Every Application the control plane reads (its namespace and the allowed others) that
/// the caller may see; `?appNamespace=` narrows it to one namespace.
/// An Application outside the control-plane namespace may use only a project that lists
/// its namespace in `sourceNamespaces` (Argo CD's API enforces this whatever the caller's
/// RBAC). The project itself is the control plane's.
async fn check_project_admits(st: &ApiState, app: &Value) -> ApiResult<()> {
    let ns = str_at(app, "/metadata/namespace");
    if ns.is_empty() || ns == st.control_plane.namespace {
        return Ok(());
    }
    let project = match str_at(app, "/spec/project") {
        "" => mooring_core::project::DEFAULT_PROJECT,
        p => p,
    };
    let found = st
        .store
        .project_json(project)
        .await?
        .and_then(|v| serde_json::from_value::<mooring_core::project::AppProject>(v).ok());
    let Some(proj) = found else {
        return Err(ApiError::BadRequest(format!(
            "application {}/{} references project {project}, which does not exist in {}",
            ns,
            str_at(app, "/metadata/name"),
            st.control_plane.namespace
        )));
    };
    st.control_plane
        .check_app_namespace(&proj, ns)
        .map_err(|r| ApiError::BadRequest(r.to_string()))
}

async fn list_apps(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<AppNamespaceQuery>,
) -> ApiResult {
    let az = Authz::load(&st).await?;
    let list = match &q.app_namespace {
        Some(_) => {
            apps(&st, q.namespace(&st)?)
                .list(&Default::default())
                .await?
        }
        None => {
            Api::<DynamicObject>::all_with(
                st.store.client.clone(),
                &mooring_k8s::resources::application_resource(),
            )
            .list(&Default::default())
            .await?
        }
    };
    let items: Vec<Value> = list
        .items
        .iter()
        .filter(|o| {
            st.control_plane
                .namespace_enabled(o.metadata.namespace.as_deref().unwrap_or_default())
        })
        .map(to_value)
        .filter(|a| az.allowed(&p, "applications", "get", &app_object(&st, a)))
        .collect();
    Ok(Json(json!({"items": items, "metadata": {}})))
}

#[derive(serde::Deserialize, Default)]
struct RefreshQuery {
    /// `normal` or `hard`: set Argo CD's refresh annotation, which the controller acts on
    /// at once (`hard` also drops the app's cached render).
    #[serde(default)]
    refresh: Option<String>,
}

async fn get_app(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<AppNamespaceQuery>,
    Query(r): Query<RefreshQuery>,
) -> ApiResult {
    let az = Authz::load(&st).await?;
    let ns = q.namespace(&st)?;
    let a = load_app(&st, &az, &p, ns, &name).await?;
    az.check(&p, "applications", "get", &app_object(&st, &a))?;
    let Some(kind) = r.refresh.filter(|k| !k.is_empty()) else {
        return Ok(Json(a));
    };
    if kind != "normal" && kind != "hard" {
        return Err(ApiError::BadRequest(format!(
            "refresh must be normal or hard, not {kind:?}"
        )));
    }
    let patch = json!({"metadata": {"annotations": {
        mooring_controller::reconcile::REFRESH_ANNOTATION: kind}}});
    let out = apps(&st, ns)
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(Json(to_value(&out)))
}

#[derive(serde::Deserialize, Default)]
struct UpsertQuery {
    #[serde(default)]
    upsert: bool,
}

async fn create_app(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<UpsertQuery>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut a: Value = body_json(body)?;
    if !a.is_object() || str_at(&a, "/metadata/name").is_empty() {
        return Err(ApiError::BadRequest(
            "the body must be an Application with metadata.name".into(),
        ));
    }
    if !a.get("spec").is_some_and(Value::is_object) {
        return Err(ApiError::BadRequest("the Application has no spec".into()));
    }
    a["apiVersion"] = json!("argoproj.io/v1alpha1");
    a["kind"] = json!("Application");
    // `metadata.namespace` (Argo CD's API takes the app namespace from the payload).
    let ns = enabled_namespace(&st, Some(str_at(&a, "/metadata/namespace")))?.to_string();
    a["metadata"]["namespace"] = json!(ns);
    let name = str_at(&a, "/metadata/name").to_string();
    let az = Authz::load(&st).await?;
    check_project_admits(&st, &a).await?;
    let obj = app_object(&st, &a);
    let api = apps(&st, &ns);
    if let Some(existing) = api.get_opt(&name).await? {
        let existing = to_value(&existing);
        if !q.upsert {
            az.check(&p, "applications", "get", &app_object(&st, &existing))?;
            return Err(ApiError::Conflict(format!(
                "application {name:?} already exists; use upsert=true to update it"
            )));
        }
        az.check(&p, "applications", "update", &app_object(&st, &existing))?;
        az.check(&p, "applications", "update", &obj)?;
        let updated = replace_spec(&api, &name, &a["spec"]).await?;
        return Ok((StatusCode::OK, Json(updated)));
    }
    az.check(&p, "applications", "create", &obj)?;
    mooring_core::server_fields::strip_server_metadata(&mut a);
    if let Some(o) = a.as_object_mut() {
        o.remove("status");
        o.remove("operation");
    }
    let obj: DynamicObject = serde_json::from_value(a)
        .map_err(|e| ApiError::BadRequest(format!("not an Application: {e}")))?;
    let created = api.create(&PostParams::default(), &obj).await?;
    Ok((StatusCode::CREATED, Json(to_value(&created))))
}

async fn replace_spec(api: &Api<DynamicObject>, name: &str, spec: &Value) -> ApiResult<Value> {
    let mut current = api.get(name).await?;
    current.data["spec"] = spec.clone();
    let out = api.replace(name, &PostParams::default(), &current).await?;
    Ok(to_value(&out))
}

async fn update_app(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<AppNamespaceQuery>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let a: Value = body_json(body)?;
    let body_name = str_at(&a, "/metadata/name");
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::BadRequest(format!(
            "metadata.name {body_name:?} does not match the URL's {name:?}"
        )));
    }
    let Some(spec) = a.get("spec").filter(|s| s.is_object()) else {
        return Err(ApiError::BadRequest("the Application has no spec".into()));
    };
    // `?appNamespace=` or the body's `metadata.namespace` (Argo CD reads it from the
    // payload); both, and different, is a request that cannot mean one app.
    let body_ns = Some(str_at(&a, "/metadata/namespace")).filter(|n| !n.is_empty());
    let ns = match (
        q.app_namespace.as_deref().filter(|n| !n.is_empty()),
        body_ns,
    ) {
        (Some(qn), Some(bn)) if qn != bn => {
            return Err(ApiError::BadRequest(format!(
                "appNamespace {qn:?} and metadata.namespace {bn:?} differ"
            )))
        }
        (Some(n), _) | (None, Some(n)) => enabled_namespace(&st, Some(n))?,
        (None, None) => enabled_namespace(&st, None)?,
    };
    let az = Authz::load(&st).await?;
    let current = load_app(&st, &az, &p, ns, &name).await?;
    az.check(&p, "applications", "update", &app_object(&st, &current))?;
    let mut next = current.clone();
    next["spec"] = spec.clone();
    check_project_admits(&st, &next).await?;
    az.check(&p, "applications", "update", &app_object(&st, &next))?;
    Ok(Json(replace_spec(&apps(&st, ns), &name, spec).await?))
}

#[derive(serde::Deserialize)]
struct DeleteQuery {
    #[serde(default = "yes")]
    cascade: bool,
}

fn yes() -> bool {
    true
}

async fn delete_app(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<DeleteQuery>,
    Query(nsq): Query<AppNamespaceQuery>,
) -> ApiResult {
    let az = Authz::load(&st).await?;
    let ns = nsq.namespace(&st)?;
    let a = load_app(&st, &az, &p, ns, &name).await?;
    az.check(&p, "applications", "delete", &app_object(&st, &a))?;
    let api = apps(&st, ns);
    if q.cascade {
        // Added to the finalizers already there (the post-delete ones stay).
        mooring_k8s::update_finalizers(&api, &name, |list| {
            mooring_core::app::finalizers_with(
                list,
                mooring_controller::reconcile::RESOURCES_FINALIZER,
            )
        })
        .await?;
    }
    api.delete(&name, &DeleteParams::default()).await?;
    Ok(Json(json!({})))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SyncRequest {
    #[serde(default)]
    revision: Option<String>,
    /// For an app with `spec.sources`: revisions of the sources at `source_positions`
    /// (1-based), as Argo CD's sync request.
    #[serde(default)]
    revisions: Vec<String>,
    #[serde(default)]
    source_positions: Vec<i64>,
    #[serde(default)]
    prune: bool,
    /// Compare and run the sync's checks without applying anything.
    #[serde(default)]
    dry_run: bool,
    /// Sync only these resources (`{group, kind, namespace, name}`), as Argo CD's
    /// selective sync.
    #[serde(default)]
    resources: Vec<mooring_core::app::SyncOperationResource>,
    /// Argo CD's `syncOptions: {items: ["ServerSideApply=true", …]}`.
    #[serde(default)]
    sync_options: Option<SyncOptionsItems>,
}

#[derive(serde::Deserialize, Default)]
struct SyncOptionsItems {
    #[serde(default)]
    items: Vec<String>,
}

impl SyncRequest {
    /// The operation's fields beyond revisions and prune.
    fn options(&self) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        if self.dry_run {
            m.insert("dryRun".into(), json!(true));
        }
        if !self.resources.is_empty() {
            m.insert("resources".into(), json!(self.resources));
        }
        if let Some(o) = self.sync_options.as_ref().filter(|o| !o.items.is_empty()) {
            m.insert("syncOptions".into(), json!(o.items));
        }
        m
    }
}

async fn request_operation(
    st: &ApiState,
    p: &Principal,
    current: &Value,
    revisions: mooring_core::app::Revisions,
    prune: bool,
    options: serde_json::Map<String, Value>,
) -> ApiResult {
    let (ns, name) = (
        str_at(current, "/metadata/namespace"),
        str_at(current, "/metadata/name"),
    );
    if current.get("operation").is_some_and(|o| !o.is_null()) {
        return Err(ApiError::Conflict(format!(
            "another operation is already in progress on {name}"
        )));
    }
    let mut sync = json!({"prune": prune});
    revisions.write_into(&mut sync);
    if let Some(m) = sync.as_object_mut() {
        m.extend(options);
    }
    let op = json!({
        "sync": sync,
        "initiatedBy": {"username": p.subject.name},
    });
    let out = apps(st, ns)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"operation": op})),
        )
        .await?;
    tracing::info!(app = name, sub = %p.subject.name, token = %p.token_id, "sync requested over the API");
    Ok(Json(to_value(&out)))
}

async fn sync_app(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<AppNamespaceQuery>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let req: SyncRequest = body_json(body)?;
    let az = Authz::load(&st).await?;
    let a = load_app(&st, &az, &p, q.namespace(&st)?, &name).await?;
    az.check(&p, "applications", "sync", &app_object(&st, &a))?;
    let typed: mooring_core::app::Application = serde_json::from_value(a.clone())
        .map_err(|e| ApiError::BadRequest(format!("application {name} is not valid: {e}")))?;
    let revisions = mooring_core::app::requested_revisions(
        &typed,
        req.revision.as_deref(),
        &req.revisions,
        &req.source_positions,
    )
    .map_err(|e| ApiError::BadRequest(format!("cannot sync {name}: {e}")))?;
    let options = req.options();
    request_operation(&st, &p, &a, revisions, req.prune, options).await
}

#[derive(serde::Deserialize, Default)]
struct RollbackRequest {
    #[serde(default)]
    id: Option<i64>,
    #[serde(default)]
    prune: bool,
}

async fn rollback_app(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<AppNamespaceQuery>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let req: RollbackRequest = body_json(body)?;
    let az = Authz::load(&st).await?;
    let a = load_app(&st, &az, &p, q.namespace(&st)?, &name).await?;
    az.check(&p, "applications", "sync", &app_object(&st, &a))?;
    let Some(id) = req.id else {
        return Err(ApiError::BadRequest(
            "rollback needs the history `id` to go back to".into(),
        ));
    };
    if a.pointer("/spec/syncPolicy/automated")
        .is_some_and(|v| !v.is_null())
    {
        return Err(ApiError::BadRequest(format!(
            "rollback cannot be initiated when auto-sync is enabled: disable spec.syncPolicy.automated of {name} first"
        )));
    }
    let rev = a
        .pointer("/status/history")
        .and_then(Value::as_array)
        .and_then(|h| {
            h.iter()
                .find(|e| e.get("id").and_then(Value::as_i64) == Some(id))
        })
        // `revision`, or `revisions` (one per source) for a multi-source app.
        .map(mooring_core::app::Revisions::of)
        .ok_or_else(|| {
            ApiError::BadRequest(format!("application {name} has no history entry {id}"))
        })?;
    request_operation(&st, &p, &a, rev, req.prune, Default::default()).await
}

async fn list_projects(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
) -> ApiResult {
    let az = Authz::load(&st).await?;
    let items: Vec<Value> = st
        .store
        .projects_json()
        .await?
        .into_iter()
        .filter(|pr| az.allowed(&p, "projects", "get", str_at(pr, "/metadata/name")))
        .collect();
    Ok(Json(json!({"items": items, "metadata": {}})))
}

async fn get_project(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult {
    let az = Authz::load(&st).await?;
    az.check(&p, "projects", "get", &name)?;
    st.store
        .project_json(&name)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("project {name:?} not found")))
}

fn appset_object(v: &Value) -> String {
    let project = match str_at(v, "/spec/template/spec/project") {
        "" => "default",
        p => p,
    };
    format!("{project}/{}", str_at(v, "/metadata/name"))
}

fn appsets(st: &ApiState) -> Api<DynamicObject> {
    Api::namespaced_with(
        st.store.client.clone(),
        &st.store.namespace,
        &applicationset_resource(),
    )
}

async fn list_appsets(State(st): State<ApiState>, Extension(p): Extension<Principal>) -> ApiResult {
    let az = Authz::load(&st).await?;
    let items: Vec<Value> = match appsets(&st).list(&Default::default()).await {
        Ok(l) => l.items.iter().map(to_value).collect(),
        Err(kube::Error::Api(e)) if e.code == 404 => vec![],
        Err(e) => return Err(e.into()),
    };
    let items: Vec<Value> = items
        .into_iter()
        .filter(|s| az.allowed(&p, "applicationsets", "get", &appset_object(s)))
        .collect();
    Ok(Json(json!({"items": items, "metadata": {}})))
}

async fn get_appset(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult {
    let az = Authz::load(&st).await?;
    let found = match appsets(&st).get_opt(&name).await {
        Ok(o) => o,
        Err(kube::Error::Api(e)) if e.code == 404 => None,
        Err(e) => return Err(e.into()),
    };
    let Some(s) = found.as_ref().map(to_value) else {
        let obj = format!("*/{name}");
        az.check(&p, "applicationsets", "get", &obj)?;
        return Err(ApiError::NotFound(format!(
            "applicationset {name:?} not found"
        )));
    };
    az.check(&p, "applicationsets", "get", &appset_object(&s))?;
    Ok(Json(s))
}

async fn userinfo(Extension(p): Extension<Principal>) -> Json<Value> {
    Json(json!({
        "loggedIn": true,
        "username": p.subject.name,
        "iss": "mooring",
        "groups": p.subject.groups,
    }))
}

#[derive(serde::Deserialize)]
struct CanIPath {
    resource: String,
    action: String,
    object: String,
}

async fn can_i(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path(c): Path<CanIPath>,
) -> ApiResult {
    let az = Authz::load(&st).await?;
    let yes = az.allowed(&p, &c.resource, &c.action, &c.object);
    Ok(Json(json!({"value": if yes { "yes" } else { "no" }})))
}

async fn list_accounts(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
) -> ApiResult {
    let az = Authz::load(&st).await?;
    let tokens = st.store.tokens().await?;
    let items: Vec<Value> = st
        .store
        .accounts()
        .await?
        .into_iter()
        .filter(|a| az.allowed(&p, "accounts", "get", &a.name))
        .map(|a| {
            let t: Vec<Value> = tokens
                .tokens
                .iter()
                .filter(|t| t.subject == a.name)
                .map(|t| json!({"id": t.id, "issuedAt": t.issued_at, "expiresAt": t.expires_at}))
                .collect();
            json!({"name": a.name, "enabled": a.enabled, "capabilities": a.capabilities, "groups": a.groups, "tokens": t})
        })
        .collect();
    Ok(Json(json!({"items": items})))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct TokenRequest {
    /// Seconds, or a duration string (`90d`); 0 or absent: never expires.
    #[serde(default)]
    expires_in: Option<Value>,
}

fn expiry(req: &TokenRequest) -> ApiResult<Option<Duration>> {
    match &req.expires_in {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(0) => Ok(None),
            Some(s) => Ok(Some(Duration::from_secs(s))),
            None => Err(ApiError::BadRequest(format!(
                "expiresIn must be a non-negative number of seconds, not {n}"
            ))),
        },
        Some(Value::String(s)) => {
            auth::parse_duration(s).map_err(|e| ApiError::BadRequest(e.to_string()))
        }
        Some(other) => Err(ApiError::BadRequest(format!(
            "expiresIn must be seconds or a duration string, not {other}"
        ))),
    }
}

fn issued(token: String, rec: &auth::TokenRecord) -> Json<Value> {
    Json(
        json!({"token": token, "id": rec.id, "subject": rec.subject, "issuedAt": rec.issued_at, "expiresAt": rec.expires_at}),
    )
}

async fn create_account_token(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let req: TokenRequest = body_json(body)?;
    let exp = expiry(&req)?;
    let az = Authz::load(&st).await?;
    az.check(&p, "accounts", "update", &name)?;
    let accounts = st.store.accounts().await?;
    auth::account_for(&accounts, &name).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let (token, rec) = st.store.issue(&name, exp).await?;
    Ok(issued(token, &rec))
}

async fn delete_account_token(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path((name, id)): Path<(String, String)>,
) -> ApiResult {
    let az = Authz::load(&st).await?;
    az.check(&p, "accounts", "update", &name)?;
    if st.store.revoke(&name, &id).await? {
        Ok(Json(json!({})))
    } else {
        Err(ApiError::NotFound(format!(
            "account {name:?} has no token {id:?}"
        )))
    }
}

async fn create_project_token(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path((project, role)): Path<(String, String)>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let req: TokenRequest = body_json(body)?;
    let exp = expiry(&req)?;
    let az = Authz::load(&st).await?;
    az.check(&p, "projects", "update", &project)?;
    let proj = az
        .projects
        .get(&project)
        .ok_or_else(|| ApiError::NotFound(format!("project {project:?} not found")))?;
    if let Some(e) = proj.role_error(&role) {
        return Err(ApiError::BadRequest(e.to_string()));
    }
    if proj.role(&role).is_none() {
        return Err(ApiError::NotFound(format!(
            "project {project:?} has no role {role:?}"
        )));
    }
    let (token, rec) = st
        .store
        .issue(&format!("proj:{project}:{role}"), exp)
        .await?;
    Ok(issued(token, &rec))
}

async fn delete_project_token(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path((project, role, id)): Path<(String, String, String)>,
) -> ApiResult {
    let az = Authz::load(&st).await?;
    az.check(&p, "projects", "update", &project)?;
    if st
        .store
        .revoke(&format!("proj:{project}:{role}"), &id)
        .await?
    {
        Ok(Json(json!({})))
    } else {
        Err(ApiError::NotFound(format!(
            "role {role:?} of project {project:?} has no token {id:?}"
        )))
    }
}
