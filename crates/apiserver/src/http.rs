//! The HTTP face of the embedded cluster: Kubernetes REST paths, discovery, content
//! negotiation (JSON, YAML bodies, server-side `Table` printing) and watch streams.
//! Every request first passes [`crate::access`] (Host, bearer token) before its body is
//! read; bodies are decoded only in the formats Kubernetes accepts.
//!
//! Paths are parsed by hand rather than with a router table because Kubernetes' URL space
//! is data-driven: `/api/v1/namespaces/x` is a Namespace, `/api/v1/namespaces/x/pods` a
//! collection, and a CRD adds paths at run time. Everything below the path lives in
//! [`crate::api`], so this module stays a translation layer.

use crate::api::{
    Api, DeleteOptions, Deleted, ListOptions, PatchType, Propagation, Subresource, WriteOptions,
};
use crate::error::ApiError;
use crate::registry::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Event, EventType, Stored};
use crate::table;
use axum::body::Body;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use futures::SinkExt;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How often an idle watch with `allowWatchBookmarks` gets a BOOKMARK (Kubernetes sends
/// them about once a minute; more often costs one short line per watcher and lets clients
/// resume from a fresher revision).
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(1);

/// Largest request body accepted (Kubernetes' default is 3 MiB as well).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// Shared state of the HTTP layer.
#[derive(Clone)]
pub struct HttpState {
    pub api: Api,
    /// `host:port` this server is reachable at, for `/api`'s server addresses.
    pub address: String,
    /// Extra routes served by other parts of the cluster (pod metrics).
    pub metrics: Option<crate::sim::MetricsHandler>,
    /// Who may send requests.
    pub access: Arc<crate::access::Access>,
    /// While on, every request but the partition endpoint's is dropped ([`crate::partition`]).
    pub partition: crate::partition::Partition,
    /// Container logs of the simulated Pods (`pods/{name}/log`).
    pub logs: crate::sim::logs::PodLogs,
    /// Built OpenAPI v3 documents ([`crate::openapi`]).
    pub openapi: crate::openapi::Cache,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .fallback(handle)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(v).unwrap_or_default(),
    )
        .into_response()
}

fn error_response(e: &ApiError) -> Response {
    error_response_as(e, Answer::Json)
}

/// A `Status` error, in protobuf when the client prefers it (its `Status` has a
/// protobuf form), else JSON.
fn error_response_as(e: &ApiError, answer: Answer) -> Response {
    let code = StatusCode::from_u16(e.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let status = e.to_status();
    let answer = match answer {
        Answer::Protobuf { .. } => Answer::Protobuf { json_too: true },
        a => a,
    };
    let mut r = answer
        .respond(code, &status)
        .unwrap_or_else(|_| json_response(code, &status));
    if matches!(e, ApiError::Unauthorized(_)) {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer realm=\"mooring\""),
        );
    }
    r
}

type Query = HashMap<String, String>;

fn parse_query(uri: &Uri) -> Query {
    uri.query()
        .map(|q| {
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn truthy(q: &Query, k: &str) -> bool {
    q.get(k).is_some_and(|v| v == "true" || v == "1")
}

async fn handle(
    axum::extract::State(st): axum::extract::State<HttpState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let partition_endpoint = uri.path().trim_end_matches('/') == crate::partition::PATH;
    if !partition_endpoint && st.partition.is_partitioned() {
        tracing::debug!(%method, path = uri.path(), "partitioned: dropping the request");
        return dropped();
    }
    if let Err(e) = st.access.check(&uri, &headers) {
        tracing::debug!(%method, path = uri.path(), "refused: {e}");
        return error_response(&e);
    }
    let user = match authorize(&st, &method, &uri, &headers) {
        Ok(u) => u,
        Err(e) => {
            tracing::debug!(%method, path = uri.path(), "forbidden: {e}");
            return error_response(&e);
        }
    };
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(e) => return error_response(&e),
    };
    let answer = if partition_endpoint {
        partition_endpoint_answer(&st, &method, &body)
    } else {
        route(&st, &method, &uri, &headers, &user, body).await
    };
    match answer {
        Ok(r) => r,
        Err(e) => error_response_as(&e, negotiate(&headers)),
    }
}

/// Who the request acts as ([`crate::authz::identity`]) and whether RBAC lets them: the
/// administrator always; an impersonated identity only as its roles allow.
fn authorize(
    st: &HttpState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<crate::authz::UserInfo, ApiError> {
    let user = crate::authz::identity(headers)?;
    if user.is_privileged() || crate::access::is_public(uri.path()) {
        return Ok(user);
    }
    let watch = truthy(&parse_query(uri), "watch");
    let attrs = crate::authz::request_attributes(method, uri.path(), watch);
    if crate::authz::Rbac::load(&st.api)?
        .authorize(&user, &attrs)
        .allowed
    {
        Ok(user)
    } else {
        Err(crate::authz::forbidden(&user, &attrs))
    }
}

/// A response whose body fails at once: the server closes the connection without sending
/// anything (the partition's "no answer", detected at once by clients).
fn dropped() -> Response {
    let fail = futures::stream::once(async {
        Err::<Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "the cluster is partitioned",
        ))
    });
    Response::new(Body::from_stream(fail))
}

/// `GET` / `PUT` [`crate::partition::PATH`].
fn partition_endpoint_answer(
    st: &HttpState,
    method: &Method,
    body: &Bytes,
) -> Result<Response, ApiError> {
    match *method {
        Method::GET => {}
        Method::PUT => {
            let req = crate::partition::PartitionRequest::parse(body)
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
            tracing::info!(
                partitioned = req.partitioned,
                max_duration = ?req.max_duration,
                "partition requested over the API"
            );
            st.partition
                .set(req.partitioned, req.partitioned.then_some(req.max_duration));
        }
        _ => {
            return Err(ApiError::MethodNotAllowed(format!(
                "{method} is not supported on {}: use GET or PUT",
                crate::partition::PATH
            )))
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &st.partition.state().to_json(),
    ))
}

/// Read a request body up to [`MAX_BODY_BYTES`]. An oversized body is still drained (up
/// to a bound) before the 413 is sent, so the client reads the error instead of a reset
/// connection.
async fn read_body(body: Body) -> Result<Bytes, ApiError> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::BadRequest(format!("reading the request body: {e}")))?;
        seen += chunk.len();
        if seen <= MAX_BODY_BYTES {
            buf.extend_from_slice(&chunk);
        } else if seen > 8 * MAX_BODY_BYTES {
            break;
        }
    }
    if seen > MAX_BODY_BYTES {
        return Err(ApiError::RequestEntityTooLarge(format!(
            "the request body ({seen} bytes or more) is larger than the {MAX_BODY_BYTES}-byte limit"
        )));
    }
    Ok(Bytes::from(buf))
}

/// A parsed resource path.
struct ResourcePath {
    rt: Arc<ResourceType>,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
    watch: bool,
}

async fn route(
    st: &HttpState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    user: &crate::authz::UserInfo,
    body: Bytes,
) -> Result<Response, ApiError> {
    let path = uri.path();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["healthz"] | ["readyz"] | ["livez"] => return Ok((StatusCode::OK, "ok").into_response()),
        ["healthz", _] | ["readyz", _] | ["livez", _] => {
            return Ok((StatusCode::OK, "ok").into_response())
        }
        ["version"] => return Ok(json_response(StatusCode::OK, &version())),
        ["metrics", rest @ ..] => {
            if let Some(m) = &st.metrics {
                if let Some(text) = m(&rest.join("/")) {
                    // `targets` is a Prometheus http_sd document, which Prometheus only
                    // accepts as JSON; the rest is the text exposition format.
                    let content_type = if rest == ["targets"] {
                        "application/json"
                    } else {
                        "text/plain; version=0.0.4"
                    };
                    return Ok(
                        (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], text)
                            .into_response(),
                    );
                }
            }
            return Err(ApiError::NotFound {
                message: format!("no metrics at {path}"),
                details: Default::default(),
            });
        }
        ["api"] => {
            return Ok(json_response(
                StatusCode::OK,
                &json!({"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": st.address}]}),
            ))
        }
        ["apis"] => return Ok(json_response(StatusCode::OK, &api_group_list(st))),
        ["apis", crate::metrics_api::GROUP, rest @ ..] => {
            let q = parse_query(uri);
            let answer = crate::metrics_api::serve(&st.api, method == Method::GET, rest, &q, path)?;
            let mut r = json_response(StatusCode::OK, &answer.body);
            for w in answer.warnings {
                if let Ok(v) = axum::http::HeaderValue::from_str(&format!("299 - {w:?}")) {
                    r.headers_mut().append(header::WARNING, v);
                }
            }
            return Ok(r);
        }
        ["openapi", "v3"] => return Ok(json_response(StatusCode::OK, &openapi_root(st))),
        ["openapi", "v3", "api", "v1"] => {
            return openapi_group_version(st, uri, headers, "", "v1");
        }
        ["openapi", "v3", "apis", group, version] => {
            return openapi_group_version(st, uri, headers, group, version);
        }
        ["api", "v1"] => return Ok(json_response(StatusCode::OK, &resource_list(st, "", "v1"))),
        ["apis", group] => {
            return api_group(st, group)
                .map(|g| json_response(StatusCode::OK, &g))
                .ok_or_else(|| not_served(path))
        }
        ["apis", group, version] => {
            if !st
                .api
                .registry
                .all()
                .iter()
                .any(|t| t.group == *group && t.version == *version)
            {
                return Err(not_served(path));
            }
            return Ok(json_response(
                StatusCode::OK,
                &resource_list(st, group, version),
            ));
        }
        _ => {}
    }
    let (group, version, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(not_served(path)),
    };
    let rp = parse_resource_path(st, group, version, rest).ok_or_else(|| not_served(path))?;
    let q = parse_query(uri);
    if rp.rt.verbs == crate::registry::CREATE_ONLY {
        return serve_review(st, method, headers, user, rp, body);
    }
    serve_resource(st, method, headers, &q, rp, body).await
}

/// A review ([`crate::authz::review`]): POST to the collection answers; nothing else is served.
fn serve_review(
    st: &HttpState,
    method: &Method,
    headers: &HeaderMap,
    user: &crate::authz::UserInfo,
    rp: ResourcePath,
    body: Bytes,
) -> Result<Response, ApiError> {
    if *method != Method::POST || rp.name.is_some() || rp.watch {
        return Err(ApiError::MethodNotAllowed(format!(
            "the server does not allow this method on the requested resource ({} only accepts create)",
            rp.rt.qualified_plural()
        )));
    }
    let api_version = rp.rt.api_version();
    let request = decode_body(method, headers, &body, (&api_version, &rp.rt.kind))?;
    let answer = crate::authz::review(
        &st.api,
        &rp.rt,
        rp.namespace.as_deref(),
        request,
        user,
        |t| st.access.token().matches(t.as_bytes()),
    )?;
    negotiate(headers).respond(StatusCode::CREATED, &answer)
}

fn not_served(path: &str) -> ApiError {
    ApiError::NotFound {
        message: format!("the server could not find the requested resource ({path})"),
        details: Default::default(),
    }
}

fn parse_resource_path(
    st: &HttpState,
    group: &str,
    version: &str,
    rest: &[&str],
) -> Option<ResourcePath> {
    let (watch, rest) = match rest {
        ["watch", r @ ..] => (true, r),
        r => (false, r),
    };
    let reg = &st.api.registry;
    // /namespaces/{ns}/{plural}... when {plural} is a namespaced resource of this group.
    if let ["namespaces", ns, plural, tail @ ..] = rest {
        if let Some(rt) = reg.get(group, version, plural).filter(|t| t.namespaced) {
            if tail.len() > 2 {
                return None;
            }
            return Some(ResourcePath {
                rt,
                namespace: Some(ns.to_string()),
                name: tail.first().map(|s| s.to_string()),
                sub: tail.get(1).map(|s| s.to_string()),
                watch,
            });
        }
    }
    let (plural, tail) = rest.split_first()?;
    if tail.len() > 2 {
        return None;
    }
    let rt = reg.get(group, version, plural)?;
    Some(ResourcePath {
        rt,
        namespace: None,
        name: tail.first().map(|s| s.to_string()),
        sub: tail.get(1).map(|s| s.to_string()),
        watch,
    })
}

fn version() -> Value {
    json!({
        "major": "1", "minor": "32", "gitVersion": "v1.32.0-mooring",
        "gitCommit": "mooring", "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "rust", "compiler": "rustc", "platform": "linux/amd64",
        "emulationMajor": "1", "emulationMinor": "32",
    })
}

fn group_json(group: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({"name": group, "versions": vs, "preferredVersion": vs.first().cloned().unwrap_or(Value::Null)})
}

fn api_group_list(st: &HttpState) -> Value {
    let groups: Vec<Value> = st
        .api
        .registry
        .groups()
        .iter()
        .map(|(g, vs)| group_json(g, vs))
        .chain(std::iter::once(crate::metrics_api::group_list_entry()))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

fn api_group(st: &HttpState, group: &str) -> Option<Value> {
    let groups = st.api.registry.groups();
    let (g, vs) = groups.iter().find(|(g, _)| g == group)?;
    let mut v = group_json(g, vs);
    v["kind"] = json!("APIGroup");
    v["apiVersion"] = json!("v1");
    Some(v)
}

fn resource_list(st: &HttpState, group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for t in st.api.registry.all() {
        if t.group != group || t.version != version {
            continue;
        }
        let mut r = json!({
            "name": t.plural, "singularName": t.singular, "namespaced": t.namespaced,
            "kind": t.kind, "verbs": t.verbs, "storageVersionHash": "",
        });
        if !t.short_names.is_empty() {
            r["shortNames"] = json!(t.short_names);
        }
        if !t.categories.is_empty() {
            r["categories"] = json!(t.categories);
        }
        resources.push(r);
        if t.status_subresource {
            resources.push(
                json!({"name": format!("{}/status", t.plural), "singularName": "",
                "namespaced": t.namespaced, "kind": t.kind, "verbs": ["get", "patch", "update"]}),
            );
        }
        if t.group.is_empty() && t.plural == "pods" {
            resources.push(json!({"name": "pods/log", "singularName": "",
                "namespaced": true, "kind": "Pod", "verbs": ["get"]}));
        }
        if t.scale.is_some() {
            resources.push(
                json!({"name": format!("{}/scale", t.plural), "singularName": "",
                "namespaced": t.namespaced, "group": "autoscaling", "version": "v1",
                "kind": "Scale", "verbs": ["get", "patch", "update"]}),
            );
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

/// Group/versions served, as `api/v1` and `apis/{group}/{version}` paths.
fn served_group_versions(st: &HttpState) -> Vec<(String, String)> {
    let mut gvs: Vec<(String, String)> = st
        .api
        .registry
        .all()
        .iter()
        .map(|t| (t.group.clone(), t.version.clone()))
        .collect();
    gvs.sort();
    gvs.dedup();
    gvs
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The OpenAPI v3 index: one entry per group version, whose `?hash=` changes with the
/// document ([`crate::openapi`]), so kubectl's cache of the documents stays correct.
fn openapi_root(st: &HttpState) -> Value {
    let mut paths = serde_json::Map::new();
    for (g, v) in served_group_versions(st) {
        let doc = st.openapi.document(&st.api.registry, &g, &v);
        let p = gv_path(&g, &v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", doc.hash)}),
        );
    }
    json!({"paths": paths})
}

/// One group version's OpenAPI v3 document, with the real server's caching: a request
/// naming the current `hash` may be cached for good; one naming a stale hash is redirected
/// to the current one; `If-None-Match` with the current ETag is a 304.
fn openapi_group_version(
    st: &HttpState,
    uri: &Uri,
    headers: &HeaderMap,
    group: &str,
    version: &str,
) -> Result<Response, ApiError> {
    if !served_group_versions(st)
        .iter()
        .any(|(g, v)| g == group && v == version)
    {
        return Err(not_served(uri.path()));
    }
    let doc = st.openapi.document(&st.api.registry, group, version);
    let etag = format!("\"{}\"", doc.hash);
    let q = parse_query(uri);
    if let Some(h) = q.get("hash") {
        if *h != doc.hash {
            let location = format!("/openapi/v3/{}?hash={}", gv_path(group, version), doc.hash);
            return Ok((
                StatusCode::MOVED_PERMANENTLY,
                [
                    (header::LOCATION, location),
                    (header::CACHE_CONTROL, "no-cache, no-store".to_string()),
                ],
            )
                .into_response());
        }
    }
    let cache_control = if q.contains_key("hash") {
        "public, immutable, max-age=31536000"
    } else {
        "no-cache, private"
    };
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if matches {
        return Ok((
            StatusCode::NOT_MODIFIED,
            [
                (header::ETAG, etag),
                (header::CACHE_CONTROL, cache_control.to_string()),
            ],
        )
            .into_response());
    }
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache_control.to_string()),
        ],
        doc.body.as_ref().clone(),
    )
        .into_response())
}

/// The response format a client asked for with `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Json,
    /// Kubernetes protobuf; `json_too` when the client also accepts JSON (client-go
    /// sends `application/vnd.kubernetes.protobuf, */*`), for kinds with no protobuf form.
    Protobuf {
        json_too: bool,
    },
}

/// Read `Accept`: protobuf when the client's most preferred media type is
/// `application/vnd.kubernetes.protobuf` (highest `q`, then order), JSON otherwise
/// (including `as=Table`, which is always JSON here).
fn negotiate(headers: &HeaderMap) -> Answer {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Answer::Json;
    };
    let mut ranges: Vec<(f32, usize, String, bool)> = accept
        .split(',')
        .enumerate()
        .filter_map(|(i, r)| {
            let mut parts = r.split(';');
            let media = parts.next()?.trim().to_ascii_lowercase();
            let mut q = 1.0f32;
            let mut has_as = false;
            for p in parts {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                match k.trim() {
                    "q" => q = v.trim().parse().unwrap_or(1.0),
                    "as" => has_as = true,
                    _ => {}
                }
            }
            (q > 0.0 && !media.is_empty()).then_some((q, i, media, has_as))
        })
        .collect();
    ranges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    match ranges.first() {
        Some((_, _, media, false)) if media == crate::protobuf::MEDIA_TYPE => Answer::Protobuf {
            json_too: ranges.iter().any(|(_, _, m, _)| {
                matches!(m.as_str(), "application/json" | "application/*" | "*/*")
            }),
        },
        _ => Answer::Json,
    }
}

impl Answer {
    /// Answer `v` (with `apiVersion` and `kind`) in the negotiated format: protobuf when
    /// asked for and the kind has a protobuf form; JSON when the client accepts it; else
    /// 406.
    fn respond(self, code: StatusCode, v: &Value) -> Result<Response, ApiError> {
        let Answer::Protobuf { json_too } = self else {
            return Ok(json_response(code, v));
        };
        match crate::protobuf::encode_object(v) {
            Some(Ok(bytes)) => Ok((
                code,
                [(header::CONTENT_TYPE, crate::protobuf::MEDIA_TYPE)],
                bytes,
            )
                .into_response()),
            Some(Err(e)) if json_too => {
                tracing::debug!("answering in JSON: {e}");
                Ok(json_response(code, v))
            }
            None if json_too => Ok(json_response(code, v)),
            Some(Err(e)) => Err(ApiError::Internal(e.to_string())),
            None => Err(not_acceptable(v)),
        }
    }
}

fn not_acceptable(v: &Value) -> ApiError {
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("object");
    let av = v.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    ApiError::NotAcceptable(format!(
        "{kind}.{av} has no protobuf form ({} is only served for built-in kinds): accept application/json",
        crate::protobuf::MEDIA_TYPE
    ))
}

fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| {
            a.split(',')
                .next()
                .is_some_and(|first| first.contains("as=Table"))
        })
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string()
}

/// Decode a request body by its content type: JSON, YAML or Kubernetes protobuf
/// ([`crate::access::body_format`]); anything else is a 415. `expect` is the
/// `(apiVersion, kind)` the URL takes; a protobuf body must name it.
fn decode_body(
    method: &Method,
    headers: &HeaderMap,
    body: &Bytes,
    expect: (&str, &str),
) -> Result<Value, ApiError> {
    decode_body_checked(method, headers, body, expect).map(|(v, _)| v)
}

/// [`decode_body`], also returning the paths of keys the body repeats (for
/// `fieldValidation`, [`crate::fields`]).
fn decode_body_checked(
    method: &Method,
    headers: &HeaderMap,
    body: &Bytes,
    expect: (&str, &str),
) -> Result<(Value, Vec<String>), ApiError> {
    let format = crate::access::body_format(method, headers)?;
    if body.is_empty() {
        return Err(ApiError::BadRequest("the request body is empty".into()));
    }
    if format == crate::access::BodyFormat::Protobuf {
        // Protobuf has no duplicate keys, and Kubernetes does no strict decoding of it.
        return decode_protobuf(body, expect).map(|v| (v, Vec::new()));
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::BadRequest("the request body is not valid UTF-8".into()))?;
    if format == crate::access::BodyFormat::Yaml {
        crate::fields::yaml_with_duplicates(text)
            .map_err(|e| ApiError::BadRequest(format!("error decoding YAML body: {e}")))
    } else {
        decode_json(body).map_err(|e| {
            ApiError::BadRequest(format!(
                "the object provided is unrecognized: error decoding JSON body: {e}"
            ))
        })
    }
}

/// A protobuf body for the type `expect`: 415 when that type has no protobuf form (custom
/// resources, Mooring's kinds), 400 naming the problem when the body is malformed or
/// names another type.
fn decode_protobuf(body: &[u8], (api_version, kind): (&str, &str)) -> Result<Value, ApiError> {
    use crate::protobuf;
    if !protobuf::supports(api_version, kind) {
        return Err(ApiError::UnsupportedMediaType(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml ({kind}.{api_version} has no protobuf form: {} is only accepted for built-in kinds)",
            protobuf::MEDIA_TYPE
        )));
    }
    let decoded = protobuf::decode(body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if decoded.api_version != api_version || decoded.kind != kind {
        return Err(ApiError::BadRequest(format!(
            "the object provided is unrecognized (must be of type {kind}): the protobuf body holds {} {} where {api_version} {kind} was expected",
            decoded.api_version, decoded.kind
        )));
    }
    Ok(decoded.object)
}

fn decode_json(body: &[u8]) -> Result<(Value, Vec<String>), serde_json::Error> {
    crate::fields::json_with_duplicates(body)
}

/// Add the request's warnings to its response as `Warning: 299 - "..."` headers, as the
/// Kubernetes API server sends them (kubectl prints each as `Warning: ...`).
fn with_warnings(mut r: Response, warnings: &crate::fields::Warnings) -> Response {
    for w in warnings.list() {
        let text: String = w
            .chars()
            .map(|c| {
                if c.is_ascii() && !c.is_control() {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = axum::http::HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            r.headers_mut().append(header::WARNING, v);
        }
    }
    r
}

/// The options of a write from its query: `fieldManager` (default: the user-agent's
/// program name), `dryRun`, `force`, `fieldValidation` (of `options_kind`, for errors).
fn write_options(
    q: &Query,
    headers: &HeaderMap,
    options_kind: &str,
) -> Result<WriteOptions, ApiError> {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    Ok(WriteOptions {
        field_manager: q.get("fieldManager").cloned().or(agent),
        dry_run: q.get("dryRun").is_some_and(|v| v == "All"),
        force: truthy(q, "force"),
        field_validation: crate::fields::FieldValidation::parse(
            q.get("fieldValidation").map(String::as_str),
            options_kind,
        )?,
        ..Default::default()
    })
}

fn list_options(q: &Query) -> Result<ListOptions, ApiError> {
    let label_selector = match q.get("labelSelector").filter(|s| !s.is_empty()) {
        Some(s) => Some(
            LabelSelector::parse(s)
                .map_err(|e| ApiError::BadRequest(format!("unable to parse requirement: {e}")))?,
        ),
        None => None,
    };
    let field_selector = match q.get("fieldSelector").filter(|s| !s.is_empty()) {
        Some(s) => Some(
            FieldSelector::parse(s)
                .map_err(|e| ApiError::BadRequest(format!("invalid field selector: {e}")))?,
        ),
        None => None,
    };
    let limit = match q.get("limit") {
        Some(l) => Some(
            l.parse::<usize>()
                .map_err(|_| ApiError::BadRequest(format!("invalid limit {l:?}")))?,
        ),
        None => None,
    };
    Ok(ListOptions {
        label_selector,
        field_selector,
        limit,
        continue_token: q.get("continue").filter(|s| !s.is_empty()).cloned(),
        resource_version: q.get("resourceVersion").filter(|s| !s.is_empty()).cloned(),
        resource_version_match: q
            .get("resourceVersionMatch")
            .filter(|s| !s.is_empty())
            .cloned(),
    })
}

fn delete_options(q: &Query, headers: &HeaderMap, body: &Bytes) -> Result<DeleteOptions, ApiError> {
    let from_body = if body.is_empty() {
        Value::Null
    } else {
        match crate::access::body_format(&Method::DELETE, headers)? {
            // client-go names DeleteOptions in the group it deletes from (`apps/v1`):
            // the message is meta.v1's whatever the envelope's apiVersion says.
            crate::access::BodyFormat::Protobuf => crate::protobuf::decode_delete_options(body)
                .map_err(|e| ApiError::BadRequest(e.to_string()))?,
            _ => decode_body(
                &Method::DELETE,
                headers,
                body,
                ("meta.k8s.io/v1", "DeleteOptions"),
            )?,
        }
    };
    let policy = q
        .get("propagationPolicy")
        .cloned()
        .or_else(|| {
            from_body
                .get("propagationPolicy")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .or_else(|| {
            let orphan = q
                .get("orphanDependents")
                .map(|v| v == "true")
                .or_else(|| from_body.get("orphanDependents").and_then(Value::as_bool));
            match orphan {
                Some(true) => Some("Orphan".into()),
                Some(false) => Some("Background".into()),
                None => None,
            }
        });
    let propagation = match policy.as_deref() {
        None => None,
        Some("Background") => Some(Propagation::Background),
        Some("Foreground") => Some(Propagation::Foreground),
        Some("Orphan") => Some(Propagation::Orphan),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
            )))
        }
    };
    let dry_run = q.get("dryRun").is_some_and(|v| v == "All")
        || from_body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    Ok(DeleteOptions {
        propagation,
        precondition_uid: from_body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        precondition_rv: from_body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
        dry_run,
    })
}

/// A list's `metadata`: its resourceVersion, and the next page's token and count.
fn list_meta(rv: u64, cont: Option<&str>, remaining: Option<usize>) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    if let Some(r) = remaining {
        meta["remainingItemCount"] = json!(r);
    }
    meta
}

fn list_json(
    rt: &ResourceType,
    items: &[Arc<Stored>],
    rv: u64,
    cont: Option<&str>,
    remaining: Option<usize>,
) -> Result<Bytes, ApiError> {
    // Stored objects are already JSON: splice them instead of re-serialising.
    let meta = list_meta(rv, cont, remaining);
    let head = format!(
        "{{\"kind\":{},\"apiVersion\":{},\"metadata\":{},\"items\":[",
        json!(rt.list_kind()),
        json!(rt.api_version()),
        meta
    );
    let size: usize = items.iter().map(|s| s.json.len() + 1).sum();
    let mut out = Vec::with_capacity(head.len() + size + 2);
    out.extend_from_slice(head.as_bytes());
    let want_av = rt.api_version();
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if stored_api_version_is(s, &want_av) {
            out.extend_from_slice(&s.json);
        } else {
            let v = Api::present(rt, s)?;
            out.extend_from_slice(&serde_json::to_vec(&v).unwrap_or_default());
        }
    }
    out.extend_from_slice(b"]}");
    Ok(Bytes::from(out))
}

/// A list as a JSON value (for protobuf answers, which re-encode every item anyway).
fn list_value(
    rt: &ResourceType,
    items: &[Arc<Stored>],
    rv: u64,
    cont: Option<&str>,
    remaining: Option<usize>,
) -> Result<Value, ApiError> {
    let meta = list_meta(rv, cont, remaining);
    let items: Result<Vec<Value>, ApiError> = items.iter().map(|s| Api::present(rt, s)).collect();
    Ok(
        json!({"kind": rt.list_kind(), "apiVersion": rt.api_version(), "metadata": meta, "items": items?}),
    )
}

/// Whether the stored JSON already says `"apiVersion":"<want>"` (cheap prefix check; the
/// store writes apiVersion first).
fn stored_api_version_is(s: &Stored, want: &str) -> bool {
    let needle = format!("\"apiVersion\":\"{want}\"");
    s.json
        .get(..needle.len() + 1)
        .is_some_and(|head| head[1..] == *needle.as_bytes())
}

async fn serve_resource(
    st: &HttpState,
    method: &Method,
    headers: &HeaderMap,
    q: &Query,
    rp: ResourcePath,
    body: Bytes,
) -> Result<Response, ApiError> {
    let api = &st.api;
    let rt = rp.rt.clone();
    let ns = rp.namespace.as_deref();
    if rt.namespaced && ns.is_none() && rp.name.is_some() {
        return Err(ApiError::NotFound {
            message: format!("the server could not find the requested resource ({} must be addressed in a namespace)", rt.plural),
            details: Default::default(),
        });
    }
    if rp.sub.as_deref() == Some("log") && rt.group.is_empty() && rt.plural == "pods" {
        if let (Some(ns), Some(name)) = (ns, rp.name.as_deref()) {
            if *method != Method::GET {
                return Err(ApiError::MethodNotAllowed(format!(
                    "{method} is not supported on pods/log: use GET"
                )));
            }
            return crate::podlog::serve(&st.api, &st.logs, q, ns, name).await;
        }
    }
    let sub = match rp.sub.as_deref() {
        None => None,
        Some("status") if rt.status_subresource => Some(Subresource::Status),
        Some("scale") if rt.scale.is_some() => None,
        Some("token") if rt.group.is_empty() && rt.plural == "serviceaccounts" => {
            // `kubectl create token`: there are no per-ServiceAccount identities here.
            return Err(ApiError::NotFound {
                message: "the server could not find the requested resource (serviceaccounts/token): the embedded cluster does not serve TokenRequest; every client uses the bearer token of the kubeconfig it writes".into(),
                details: Default::default(),
            });
        }
        Some(other) => {
            return Err(ApiError::NotFound {
                message: format!(
                    "the server could not find the requested resource ({}/{other})",
                    rt.plural
                ),
                details: Default::default(),
            })
        }
    };
    let is_scale = rp.sub.as_deref() == Some("scale");
    let table = wants_table(headers);
    let answer = negotiate(headers);
    let own_type = (rt.api_version(), rt.kind.clone());
    let own_type = (own_type.0.as_str(), own_type.1.as_str());
    let watch = rp.watch || truthy(q, "watch");
    match (method.clone(), rp.name.as_deref()) {
        (Method::GET, None) if watch => watch_response(st, &rt, ns, q, table, answer).await,
        (Method::GET, None) => {
            let opts = list_options(q)?;
            let res = api.list(&rt, ns, &opts)?;
            if table {
                let objs: Result<Vec<Value>, ApiError> =
                    res.items.iter().map(|s| Api::present(&rt, s)).collect();
                return Ok(json_response(
                    StatusCode::OK,
                    &table::table(
                        &rt,
                        &objs?,
                        res.resource_version,
                        res.continue_token.as_deref(),
                    ),
                ));
            }
            if let Answer::Protobuf { json_too } = answer {
                if crate::protobuf::supports(&rt.api_version(), &rt.list_kind()) {
                    let list = list_value(
                        &rt,
                        &res.items,
                        res.resource_version,
                        res.continue_token.as_deref(),
                        res.remaining,
                    )?;
                    return answer.respond(StatusCode::OK, &list);
                }
                if !json_too {
                    return Err(not_acceptable(
                        &json!({"kind": rt.list_kind(), "apiVersion": rt.api_version()}),
                    ));
                }
            }
            let bytes = list_json(
                &rt,
                &res.items,
                res.resource_version,
                res.continue_token.as_deref(),
                res.remaining,
            )?;
            Ok((
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                bytes,
            )
                .into_response())
        }
        (Method::GET, Some(name)) if watch => {
            let mut q = q.clone();
            q.insert("fieldSelector".into(), format!("metadata.name={name}"));
            watch_response(st, &rt, ns, &q, table, answer).await
        }
        (Method::GET, Some(name)) => {
            if is_scale {
                return answer.respond(StatusCode::OK, &api.get_scale(&rt, ns, name)?);
            }
            let v = api.get(&rt, ns, name)?;
            if table {
                let rv = v
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                return Ok(json_response(
                    StatusCode::OK,
                    &table::table(&rt, &[v], rv, None),
                ));
            }
            answer.respond(StatusCode::OK, &v)
        }
        (Method::POST, None) => {
            let mut opts = write_options(q, headers, "CreateOptions")?;
            let (obj, dups) = decode_body_checked(method, headers, &body, own_type)?;
            opts.duplicate_fields = dups;
            let v = api.create(&rt, ns, obj, &opts)?;
            Ok(with_warnings(
                answer.respond(StatusCode::CREATED, &v)?,
                &opts.warnings,
            ))
        }
        (Method::PUT, Some(name)) => {
            let mut opts = write_options(q, headers, "UpdateOptions")?;
            let expect = if is_scale {
                ("autoscaling/v1", "Scale")
            } else {
                own_type
            };
            let (obj, dups) = decode_body_checked(method, headers, &body, expect)?;
            opts.duplicate_fields = dups;
            if is_scale {
                let v = api.set_scale(&rt, ns, name, &obj, &opts)?;
                return Ok(with_warnings(
                    answer.respond(StatusCode::OK, &v)?,
                    &opts.warnings,
                ));
            }
            let v = api.update(&rt, ns, name, obj, sub.unwrap_or(Subresource::Main), &opts)?;
            Ok(with_warnings(
                answer.respond(StatusCode::OK, &v)?,
                &opts.warnings,
            ))
        }
        (Method::PATCH, Some(name)) => {
            let ct = content_type(headers);
            let pt = PatchType::from_content_type(&ct).ok_or_else(|| {
                ApiError::UnsupportedMediaType(format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {ct:?})"
                ))
            })?;
            let mut opts = write_options(q, headers, "PatchOptions")?;
            let (patch, dups) = if pt == PatchType::Apply {
                let text = std::str::from_utf8(&body).map_err(|_| {
                    ApiError::BadRequest("the request body is not valid UTF-8".into())
                })?;
                crate::fields::yaml_with_duplicates(text)
                    .map_err(|e| ApiError::BadRequest(format!("error decoding YAML: {e}")))?
            } else {
                decode_json(&body)
                    .map_err(|e| ApiError::BadRequest(format!("error decoding patch body: {e}")))?
            };
            // A JSON patch is a list of operations: its keys are not the object's.
            if pt != PatchType::Json {
                opts.duplicate_fields = dups;
            }
            if is_scale {
                let current = api.get_scale(&rt, ns, name)?;
                let patched = match pt {
                    PatchType::Json => crate::patch::json_patch(&current, &patch)
                        .map_err(|e| ApiError::BadRequest(e.to_string()))?,
                    PatchType::Strategic => crate::patch::strategic_merge_patch(&current, &patch)
                        .map_err(|e| ApiError::BadRequest(e.to_string()))?,
                    _ => mooring_core::merge_patch::applied(&current, &patch),
                };
                let v = api.set_scale(&rt, ns, name, &patched, &opts)?;
                return Ok(with_warnings(
                    answer.respond(StatusCode::OK, &v)?,
                    &opts.warnings,
                ));
            }
            let existed = pt != PatchType::Apply || api.get(&rt, ns, name).is_ok();
            let v = api.patch(
                &rt,
                ns,
                name,
                pt,
                &patch,
                sub.unwrap_or(Subresource::Main),
                &opts,
            )?;
            let code = if existed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            Ok(with_warnings(answer.respond(code, &v)?, &opts.warnings))
        }
        (Method::DELETE, Some(name)) => {
            let opts = delete_options(q, headers, &body)?;
            match api.delete(&rt, ns, name, &opts)? {
                Deleted::Gone(v) | Deleted::Pending(v) => answer.respond(StatusCode::OK, &v),
            }
        }
        (Method::DELETE, None) => {
            let opts = delete_options(q, headers, &body)?;
            let items = api.delete_collection(&rt, ns, &list_options(q)?, &opts)?;
            answer.respond(
                StatusCode::OK,
                &json!({"kind": rt.list_kind(), "apiVersion": rt.api_version(),
                    "metadata": {"resourceVersion": api.store.revision().to_string()}, "items": items}),
            )
        }
        (m, _) => Err(ApiError::MethodNotAllowed(format!(
            "the server does not allow this method on the requested resource ({m} {})",
            rt.plural
        ))),
    }
}

/// One watch event line.
fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

/// One watch event in the stream's format: a JSON line, or a protobuf frame (falling back
/// to nothing but a log line if an object cannot be encoded, which a stored built-in object
/// always can).
fn event_bytes(protobuf: bool, kind: &str, object: &Value) -> Option<Bytes> {
    if !protobuf {
        return Some(event_line(kind, object));
    }
    match crate::protobuf::watch_frame(kind, object) {
        Some(Ok(frame)) => Some(Bytes::from(frame)),
        Some(Err(e)) => {
            tracing::warn!("a {kind} watch event cannot be sent in protobuf: {e}");
            None
        }
        None => None,
    }
}

struct WatchFilter {
    rt: Arc<ResourceType>,
    storage_key: String,
    namespace: Option<String>,
    labels: Option<LabelSelector>,
    fields: Option<FieldSelector>,
    table: bool,
    /// Frames of Kubernetes protobuf instead of JSON lines.
    protobuf: bool,
}

impl WatchFilter {
    fn render(&self, ev_kind: EventType, s: &Stored) -> Option<Bytes> {
        if s.key.resource != self.storage_key {
            return None;
        }
        if let Some(ns) = &self.namespace {
            if &s.key.namespace != ns {
                return None;
            }
        }
        if let Some(l) = &self.labels {
            if !l.matches(&s.labels) {
                return None;
            }
        }
        let v = Api::present(&self.rt, s).ok()?;
        if let Some(f) = &self.fields {
            if !f.matches(&v) {
                return None;
            }
        }
        let obj = if self.table {
            table::table(&self.rt, &[v], s.rv, None)
        } else {
            v
        };
        event_bytes(self.protobuf, ev_kind.as_str(), &obj)
    }

    /// Whether a stored object is in this watch's selection.
    fn selects(&self, s: &Stored) -> bool {
        if s.key.resource != self.storage_key {
            return false;
        }
        if let Some(ns) = &self.namespace {
            if &s.key.namespace != ns {
                return false;
            }
        }
        if let Some(l) = &self.labels {
            if !l.matches(&s.labels) {
                return false;
            }
        }
        match &self.fields {
            Some(f) => Api::present(&self.rt, s).is_ok_and(|v| f.matches(&v)),
            None => true,
        }
    }

    /// One logged write as this watcher sees it, as Kubernetes' watch cache does: an
    /// update that moves an object into the selection is ADDED, one that moves it out is
    /// DELETED (with its last matching state, at the update's resourceVersion).
    fn render_event(&self, ev: &Event) -> Option<Bytes> {
        if ev.kind != EventType::Modified || (self.labels.is_none() && self.fields.is_none()) {
            return self.render(ev.kind, &ev.object);
        }
        let now = self.selects(&ev.object);
        let before = ev.prev.as_deref().is_some_and(|p| self.selects(p));
        match (before, now) {
            (true, true) => self.render(EventType::Modified, &ev.object),
            (false, true) => self.render(EventType::Added, &ev.object),
            (true, false) => {
                let prev = ev.prev.as_deref()?;
                let mut v = Api::present(&self.rt, prev).ok()?;
                v["metadata"]["resourceVersion"] = json!(ev.rv().to_string());
                let obj = if self.table {
                    table::table(&self.rt, &[v], ev.rv(), None)
                } else {
                    v
                };
                Some(event_line(EventType::Deleted.as_str(), &obj))
            }
            (false, false) => None,
        }
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj =
            json!({"kind": self.rt.kind, "apiVersion": self.rt.api_version(), "metadata": meta});
        event_bytes(self.protobuf, "BOOKMARK", &obj).unwrap_or_default()
    }
}

fn expired(rv: u64, oldest: u64, protobuf: bool) -> Bytes {
    let status = ApiError::Gone(format!("too old resource version: {rv} ({oldest})")).to_status();
    event_bytes(protobuf, "ERROR", &status).unwrap_or_default()
}

async fn watch_response(
    st: &HttpState,
    rt: &Arc<ResourceType>,
    ns: Option<&str>,
    q: &Query,
    table: bool,
    answer: Answer,
) -> Result<Response, ApiError> {
    let opts = list_options(q)?;
    let protobuf = match answer {
        Answer::Protobuf { json_too } if !table => {
            if crate::protobuf::supports(&rt.api_version(), &rt.kind) {
                true
            } else if json_too {
                false
            } else {
                return Err(not_acceptable(
                    &json!({"kind": rt.kind, "apiVersion": rt.api_version()}),
                ));
            }
        }
        _ => false,
    };
    let content_type = if protobuf {
        crate::protobuf::WATCH_MEDIA_TYPE
    } else {
        "application/json"
    };
    let filter = WatchFilter {
        rt: rt.clone(),
        storage_key: rt.storage_key(),
        namespace: if rt.namespaced {
            ns.map(str::to_string)
        } else {
            None
        },
        labels: opts.label_selector.clone(),
        fields: opts.field_selector.clone(),
        table,
        protobuf,
    };
    let since: Option<u64> = match q.get("resourceVersion").filter(|s| !s.is_empty()) {
        None => None,
        Some(v) => Some(
            v.parse()
                .map_err(|_| ApiError::BadRequest(format!("invalid resource version: {v:?}")))?,
        ),
    };
    let send_initial = truthy(q, "sendInitialEvents");
    if let Some(m) = opts.resource_version_match.as_deref() {
        if !(send_initial && m == "NotOlderThan") {
            return Err(ApiError::invalid(
                ("ListOptions", "meta.k8s.io"),
                "",
                vec![format!("resourceVersionMatch: Forbidden: resourceVersionMatch {m:?} is forbidden for watch unless sendInitialEvents is provided with \"NotOlderThan\"")],
            ));
        }
    }
    let bookmarks = truthy(q, "allowWatchBookmarks");
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let api = st.api.clone();
    let mut partition = st.partition.subscribe();
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, std::io::Error>>(256);
    // Start from a consistent point: subscribe, then list at (or after) that revision.
    let (start_rv, initial, backlog, mut live) = match since {
        Some(rv) if rv > 0 && !send_initial => match api.store.watch_from(rv) {
            Ok((backlog, live)) => (rv, vec![], backlog, live),
            Err(oldest) => {
                let line = expired(rv, oldest, protobuf);
                let body = Body::from(line);
                return Ok(
                    (StatusCode::OK, [(header::CONTENT_TYPE, content_type)], body).into_response(),
                );
            }
        },
        _ => {
            let rev = api.store.revision();
            let (backlog, live) = api
                .store
                .watch_from(rev)
                .map_err(|o| ApiError::Gone(format!("too old resource version: {rev} ({o})")))?;
            let res = api.list(
                rt,
                filter.namespace.as_deref(),
                &ListOptions {
                    label_selector: opts.label_selector.clone(),
                    field_selector: opts.field_selector.clone(),
                    ..Default::default()
                },
            )?;
            (res.resource_version, res.items, backlog, live)
        }
    };
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        let mut last = start_rv;
        for s in &initial {
            if let Some(line) = filter.render(EventType::Added, s) {
                if tx.send(Ok(line)).await.is_err() {
                    return;
                }
            }
        }
        if send_initial && tx.send(Ok(filter.bookmark(start_rv, true))).await.is_err() {
            return;
        }
        let mut pending: std::collections::VecDeque<Arc<Event>> = backlog.into();
        let mut tick = tokio::time::interval(BOOKMARK_INTERVAL);
        tick.tick().await;
        loop {
            while let Some(ev) = pending.pop_front() {
                if ev.rv() <= last {
                    continue;
                }
                last = ev.rv();
                if let Some(line) = filter.render_event(&ev) {
                    if tx.send(Ok(line)).await.is_err() {
                        return;
                    }
                }
            }
            tokio::select! {
                _ = &mut deadline => return,
                // A partition cuts the stream (an error aborts the connection).
                _ = async { partition.wait_for(|p| p.partitioned).await.is_ok() } => {
                    let _ = tx.send(Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "the cluster is partitioned",
                    ))).await;
                    return;
                }
                _ = tick.tick(), if bookmarks => {
                    if tx.send(Ok(filter.bookmark(last, false))).await.is_err() {
                        return;
                    }
                }
                r = live.recv() => match r {
                    Ok(ev) => pending.push_back(ev),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        match api.store.events_since(last) {
                            Ok(evs) => pending.extend(evs),
                            Err(oldest) => {
                                let _ = tx.send(Ok(expired(last, oldest, filter.protobuf))).await;
                                return;
                            }
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    });
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(rx),
    )
        .into_response())
}
