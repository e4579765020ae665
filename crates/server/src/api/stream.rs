//! `GET /api/v1/stream/applications`: Application changes as server-sent events, the way
//! Argo CD's UI follows them (`data: {"result": {"type": "MODIFIED", "application": …}}`).
//!
//! One watch of the management cluster's Applications serves every open stream: the
//! first stream starts it, its newest objects are kept ([`Feed`]) and each change is
//! broadcast. A new stream first gets every application it may see (`ADDED`), then the
//! changes; one too slow to keep up gets the current state again instead of a gap. So a
//! thousand open browser tabs cost one watch, not a thousand polls. The caller's RBAC is
//! applied to every event (reloaded, and the token checked again, at most every
//! [`AUTHZ_TTL`]: a revoked token's stream ends), with `?name=`,
//! `?projects=` and `?appNamespace=` filters as Argo CD's.

use super::{app_object, str_at, ApiError, ApiResult, ApiState, Authz, Principal};
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Extension;
use futures::StreamExt as _;
use mooring_k8s::kube;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, OnceCell};

/// How long a stream trusts the RBAC policy and projects it loaded.
pub const AUTHZ_TTL: Duration = Duration::from_secs(10);
/// Changes buffered per stream before it is considered behind.
const BACKLOG: usize = 4096;

/// A change of one application.
#[derive(Debug, Clone)]
struct Change {
    kind: &'static str,
    app: Arc<Value>,
}

/// The shared watch: the newest object of every application and the change broadcast.
#[derive(Default)]
pub struct Feed {
    started: OnceCell<broadcast::Sender<Change>>,
    apps: RwLock<BTreeMap<String, Arc<Value>>>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Feed")
    }
}

fn key(a: &Value) -> String {
    format!(
        "{}/{}",
        str_at(a, "/metadata/namespace"),
        str_at(a, "/metadata/name")
    )
}

impl Feed {
    /// The broadcast, the watch started on first use.
    async fn subscribe(self: &Arc<Self>, client: &kube::Client) -> broadcast::Receiver<Change> {
        let tx = self
            .started
            .get_or_init(|| async {
                let (tx, _) = broadcast::channel(BACKLOG);
                tokio::spawn(watch(self.clone(), client.clone(), tx.clone()));
                tx
            })
            .await;
        tx.subscribe()
    }

    fn snapshot(&self) -> Vec<Arc<Value>> {
        self.apps
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}

/// Follow every Application of the management cluster into `feed`, for as long as the
/// process runs (the watcher relists after errors, with backoff).
async fn watch(feed: Arc<Feed>, client: kube::Client, tx: broadcast::Sender<Change>) {
    use kube::runtime::{watcher, WatchStreamExt as _};
    let api: kube::Api<kube::api::DynamicObject> =
        kube::Api::all_with(client, &mooring_k8s::resources::application_resource());
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut relisted: Option<BTreeMap<String, Arc<Value>>> = None;
    while let Some(ev) = stream.next().await {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                tracing::debug!(error = %e, "the UI's Application watch failed; retrying");
                continue;
            }
        };
        let mut apps = feed
            .apps
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match ev {
            watcher::Event::Init => relisted = Some(BTreeMap::new()),
            watcher::Event::InitApply(o) => {
                let a = Arc::new(super::to_value(&o));
                if let Some(r) = relisted.as_mut() {
                    r.insert(key(&a), a);
                }
            }
            watcher::Event::InitDone => {
                let fresh = relisted.take().unwrap_or_default();
                for (k, old) in apps.iter() {
                    if !fresh.contains_key(k) {
                        let _ = tx.send(Change {
                            kind: "DELETED",
                            app: old.clone(),
                        });
                    }
                }
                for (k, a) in &fresh {
                    let kind = if apps.contains_key(k) {
                        "MODIFIED"
                    } else {
                        "ADDED"
                    };
                    let _ = tx.send(Change {
                        kind,
                        app: a.clone(),
                    });
                }
                *apps = fresh;
            }
            watcher::Event::Apply(o) => {
                let a = Arc::new(super::to_value(&o));
                let kind = if apps.insert(key(&a), a.clone()).is_some() {
                    "MODIFIED"
                } else {
                    "ADDED"
                };
                let _ = tx.send(Change { kind, app: a });
            }
            watcher::Event::Delete(o) => {
                let a = Arc::new(super::to_value(&o));
                apps.remove(&key(&a));
                let _ = tx.send(Change {
                    kind: "DELETED",
                    app: a,
                });
            }
        }
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct StreamQuery {
    #[serde(default)]
    name: Option<String>,
    /// Comma-separated project names.
    #[serde(default)]
    projects: Option<String>,
    #[serde(default)]
    app_namespace: Option<String>,
}

impl StreamQuery {
    fn admits(&self, a: &Value) -> bool {
        let project = match str_at(a, "/spec/project") {
            "" => "default",
            p => p,
        };
        self.name
            .as_deref()
            .is_none_or(|n| n.is_empty() || n == str_at(a, "/metadata/name"))
            && self
                .app_namespace
                .as_deref()
                .is_none_or(|n| n.is_empty() || n == str_at(a, "/metadata/namespace"))
            && self.projects.as_deref().is_none_or(|ps| {
                let wanted: Vec<&str> = ps
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .collect();
                wanted.is_empty() || wanted.contains(&project)
            })
    }
}

/// The stream's events for one change, if the caller may see it.
fn event(change: &Change) -> Event {
    let data = json!({"result": {"type": change.kind, "application": &*change.app}});
    Event::default().data(data.to_string())
}

/// `GET /api/v1/stream/applications`.
pub(super) async fn applications(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    Query(q): Query<StreamQuery>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>> {
    // Checked again with the RBAC reload: a token revoked (or expired, or an account
    // disabled) while its stream is open ends the stream.
    let token = super::request_token(&headers)
        .map(|(t, _)| t.to_string())
        .map_err(ApiError::from)?;
    if let Some(ns) = q.app_namespace.as_deref().filter(|n| !n.is_empty()) {
        super::enabled_namespace(&st, Some(ns))?;
    }
    let mut az = Authz::load(&st).await?;
    let mut loaded = Instant::now();
    let mut rx = st.feed.subscribe(&st.store.client).await;
    let (out, events) = mpsc::channel::<Event>(64);
    let visible = move |st: &ApiState, az: &Authz, a: &Value| {
        st.control_plane
            .namespace_enabled(str_at(a, "/metadata/namespace"))
            && q.admits(a)
            && az.allowed(&p, "applications", "get", &app_object(st, a))
    };
    tokio::spawn(async move {
        let send_all = |az: &Authz| -> Vec<Event> {
            st.feed
                .snapshot()
                .into_iter()
                .filter(|a| visible(&st, az, a))
                .map(|app| event(&Change { kind: "ADDED", app }))
                .collect()
        };
        for e in send_all(&az) {
            if out.send(e).await.is_err() {
                return;
            }
        }
        loop {
            let change = match rx.recv().await {
                Ok(c) => c,
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Behind: the current state again rather than a gap.
                    for e in send_all(&az) {
                        if out.send(e).await.is_err() {
                            return;
                        }
                    }
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if loaded.elapsed() > AUTHZ_TTL {
                if let Err((e, _)) = super::verify_token(&st.store, &token).await {
                    tracing::info!(error = %e, "an application stream's token is no longer valid; closing it");
                    return;
                }
                match Authz::load(&st).await {
                    Ok(fresh) => az = fresh,
                    Err(ApiError::Store(e)) => {
                        tracing::debug!(error = %e, "reloading RBAC for an application stream");
                    }
                    Err(_) => {}
                }
                loaded = Instant::now();
            }
            // A deleted app is announced to whoever could see it.
            if visible(&st, &az, &change.app) && out.send(event(&change)).await.is_err() {
                return;
            }
        }
    });
    let stream = futures::stream::unfold(events, |mut rx| async move {
        rx.recv().await.map(|e| (Ok(e), rx))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
