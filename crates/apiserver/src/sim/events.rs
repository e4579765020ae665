//! The Event recorder of the simulated controllers, and the Event TTL of the API server.
//!
//! `kubectl describe deploy web` is how people find out why a rollout is stuck, so the
//! simulated controllers report what real ones report, in the same words: the scheduler's
//! `Scheduled`, the kubelet's `Pulling` / `Pulled` / `Created` / `Started` / `BackOff`, the
//! ReplicaSet controller's `SuccessfulCreate`, the Deployment controller's
//! `ScalingReplicaSet`, … Every simulated controller records through one [`Recorder`]
//! (reachable as `ctx.recorder` in a simulation controller), which behaves like client-go's
//! legacy `EventRecorder` with its `EventCorrelator`:
//!
//! - an Event is a core `v1` Event named `{object}.{hex nanoseconds}` in the object's
//!   namespace (`default` for cluster-scoped objects), with `source` and
//!   `reportingComponent` / `reportingInstance` set from the [`Source`];
//! - the same object, type, reason, message and source again is *not* a new Event: the
//!   existing one gets `count + 1` and a new `lastTimestamp` (client-go's `EventLogger`),
//!   so a crash loop shows `BackOff … (x12 over 3m)`. The recorder remembers the last
//!   [`CACHE_SIZE`] distinct Events (client-go keeps 4096 in an LRU);
//! - recording never fails the caller: an error is logged and dropped, as in client-go
//!   (Events are best effort).
//!
//! Events expire like with kube-apiserver's `--event-ttl` (default one hour): [`expire`]
//! deletes every Event (whoever wrote it) whose last write is older than the TTL,
//! [`crate::ClusterOptions::event_ttl`].
//!
//! Kubernetes serves the same objects as `events.k8s.io/v1` too; [`crate::convert::to_events_v1`] and
//! [`crate::convert::from_events_v1`] are that conversion (`involvedObject` ↔ `regarding`, `message` ↔
//! `note`, `count` ↔ `deprecatedCount`, …), used by the API layer for that group.
//!
//! ```ignore
//! // In a controller's reconcile:
//! ctx.recorder.normal("cronjob-controller", &cronjob, "SuccessfulCreate",
//!     &format!("Created job {name}"));
//! ctx.recorder.warning("horizontal-pod-autoscaler", &hpa, "FailedGetScale", &msg);
//! ```

use crate::api::{Api, DeleteOptions, Subresource, WriteOptions};
use crate::error::ApiError;
use crate::registry::ResourceType;
use mooring_core::event::EventType;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Distinct Events remembered for aggregation (client-go's `maxLruCacheEntries`).
pub const CACHE_SIZE: usize = 4096;

/// kube-apiserver's default `--event-ttl`.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// Who reports an Event: `source.component` / `reportingComponent`, and for per-node
/// components (the kubelet) `source.host` / `reportingInstance`.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub component: &'a str,
    pub host: Option<&'a str>,
}

impl<'a> Source<'a> {
    /// A controller of kube-controller-manager (no host), e.g. `"job-controller"`.
    pub fn controller(component: &'a str) -> Self {
        Source {
            component,
            host: None,
        }
    }

    /// The kubelet of `node`.
    pub fn kubelet(node: &'a str) -> Self {
        Source {
            component: "kubelet",
            host: Some(node),
        }
    }
}

/// Records Events through the in-process API, aggregating repeats. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    inner: Arc<Inner>,
}

struct Inner {
    api: Api,
    events: Arc<ResourceType>,
    wo: WriteOptions,
    seen: Mutex<Seen>,
    seq: AtomicU64,
}

/// The Events recorded recently: aggregation key → (namespace, name), oldest first.
#[derive(Default)]
struct Seen {
    by_key: HashMap<String, (String, String)>,
    order: VecDeque<String>,
}

impl Recorder {
    /// A recorder writing through `api` (core `v1` Events must be registered).
    pub fn new(api: Api) -> Result<Recorder, ApiError> {
        let events = api
            .registry
            .get("", "v1", "events")
            .ok_or_else(|| ApiError::Internal("v1 events are not registered".into()))?;
        Ok(Recorder {
            inner: Arc::new(Inner {
                api,
                events,
                wo: WriteOptions {
                    field_manager: Some("kube-controller-manager".into()),
                    ..Default::default()
                },
                seen: Mutex::new(Seen::default()),
                seq: AtomicU64::new(0),
            }),
        })
    }

    /// A `Normal` Event about `regarding` from the controller `component`.
    pub fn normal(&self, component: &str, regarding: &Value, reason: &str, message: &str) {
        self.record(
            Source::controller(component),
            regarding,
            EventType::Normal,
            reason,
            message,
        );
    }

    /// A `Warning` Event about `regarding` from the controller `component`.
    pub fn warning(&self, component: &str, regarding: &Value, reason: &str, message: &str) {
        self.record(
            Source::controller(component),
            regarding,
            EventType::Warning,
            reason,
            message,
        );
    }

    /// Record an Event about `regarding` (an object with `apiVersion`, `kind` and
    /// `metadata`), or count a repeat of the same one. Errors are logged, not returned.
    pub fn record(
        &self,
        source: Source<'_>,
        regarding: &Value,
        type_: EventType,
        reason: &str,
        message: &str,
    ) {
        self.record_at(source, regarding, None, type_, reason, message);
    }

    /// [`record`](Self::record) about a part of the object: `involvedObject.fieldPath`,
    /// such as `spec.containers{app}` for the kubelet's container Events.
    pub fn record_at(
        &self,
        source: Source<'_>,
        regarding: &Value,
        field_path: Option<&str>,
        type_: EventType,
        reason: &str,
        message: &str,
    ) {
        if let Err(e) = self.try_record(source, regarding, field_path, type_, reason, message) {
            let object = regarding
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            tracing::warn!("cannot record event {reason} about {object}: {e}");
        }
    }

    fn try_record(
        &self,
        source: Source<'_>,
        regarding: &Value,
        field_path: Option<&str>,
        type_: EventType,
        reason: &str,
        message: &str,
    ) -> Result<(), ApiError> {
        let mut key = aggregation_key(source, regarding, type_, reason, message);
        key.push('\u{0}');
        key.push_str(field_path.unwrap_or_default());
        let now = mooring_core::time::now_rfc3339();
        let api = &self.inner.api;
        let rt = &self.inner.events;
        let known = self.lock().by_key.get(&key).cloned();
        if let Some((ns, name)) = known {
            match api.get(rt, Some(&ns), &name) {
                Ok(mut ev) => {
                    let count = ev.get("count").and_then(Value::as_i64).unwrap_or(1);
                    ev["count"] = json!(count.saturating_add(1));
                    ev["lastTimestamp"] = json!(now);
                    match api.update(rt, Some(&ns), &name, ev, Subresource::Main, &self.inner.wo) {
                        Ok(_) => return Ok(()),
                        // Expired or deleted meanwhile: record it anew below.
                        Err(ApiError::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        let mut ev = new_event(source, regarding, type_, reason, message, &now, seq);
        if let Some(f) = field_path {
            ev["involvedObject"]["fieldPath"] = json!(f);
        }
        let ns = ev
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string();
        let created = api.create(rt, Some(&ns), ev, &self.inner.wo)?;
        let name = created
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut seen = self.lock();
        if seen.by_key.insert(key.clone(), (ns, name)).is_none() {
            seen.order.push_back(key);
            while seen.order.len() > CACHE_SIZE {
                if let Some(old) = seen.order.pop_front() {
                    seen.by_key.remove(&old);
                }
            }
        }
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        // A panic while holding the lock leaves a consistent map: keep using it.
        self.inner
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// client-go's `getEventKey`: source, object, type, reason and message.
fn aggregation_key(
    source: Source<'_>,
    regarding: &Value,
    type_: EventType,
    reason: &str,
    message: &str,
) -> String {
    let f = |p: &str| {
        regarding
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    [
        source.component,
        source.host.unwrap_or_default(),
        f("/apiVersion"),
        f("/kind"),
        f("/metadata/namespace"),
        f("/metadata/name"),
        f("/metadata/uid"),
        type_.as_str(),
        reason,
        message,
    ]
    .join("\u{0}")
}

/// A new core `v1` Event as client-go's legacy recorder makes it.
fn new_event(
    source: Source<'_>,
    regarding: &Value,
    type_: EventType,
    reason: &str,
    message: &str,
    now: &str,
    seq: u64,
) -> Value {
    let mut ev =
        mooring_core::event::event(regarding, type_, reason, message, source.component, now);
    let name = regarding
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("object");
    let ns = regarding
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or("default");
    // client-go names Events `{name}.{UnixNano in hex}`; the sequence number keeps two
    // Events of the same nanosecond apart.
    let nanos = mooring_core::time::now().as_nanosecond();
    let stamp = u64::try_from(nanos).unwrap_or_default().wrapping_add(seq);
    ev["metadata"] = json!({"name": format!("{name}.{stamp:x}"), "namespace": ns});
    if let Some(host) = source.host {
        ev["source"]["host"] = json!(host);
    }
    ev["reportingInstance"] = json!(source.host.unwrap_or_default());
    ev["eventTime"] = Value::Null;
    if let Some(o) = ev.get_mut("involvedObject").and_then(Value::as_object_mut) {
        o.retain(|_, v| !v.is_null());
    }
    ev
}

/// When an Event was last written: the latest of its timestamps.
fn last_written(ev: &Value) -> Option<mooring_core::time::Timestamp> {
    [
        "/lastTimestamp",
        "/eventTime",
        "/series/lastObservedTime",
        "/metadata/creationTimestamp",
    ]
    .iter()
    .filter_map(|p| ev.pointer(p).and_then(Value::as_str))
    .filter_map(|s| mooring_core::time::parse(s).ok())
    .max()
}

/// Whether an Event last written at `written` has outlived `ttl` at `now`.
pub fn is_expired(ev: &Value, ttl: Duration, now: mooring_core::time::Timestamp) -> bool {
    match last_written(ev) {
        Some(t) => std::time::Duration::try_from(now.duration_since(t)).is_ok_and(|age| age > ttl),
        None => false,
    }
}

/// Delete Events older than `ttl`, forever (the API server's `--event-ttl`). Checks
/// every tenth of the TTL (at least every 100 ms, at most every minute).
pub async fn expire(api: Api, ttl: Duration) {
    let Some(rt) = api.registry.get("", "v1", "events") else {
        return;
    };
    let period = (ttl / 10).clamp(Duration::from_millis(100), Duration::from_secs(60));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = mooring_core::time::now();
        let (all, _) = api.store.list(&rt.storage_key(), None);
        for s in all {
            let Ok(ev) = s.value() else { continue };
            if !is_expired(&ev, ttl, now) {
                continue;
            }
            let opts = DeleteOptions {
                precondition_uid: ev
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                ..Default::default()
            };
            match api.delete(&rt, Some(&s.key.namespace), &s.key.name, &opts) {
                Ok(_) | Err(ApiError::NotFound { .. } | ApiError::Conflict { .. }) => {}
                Err(e) => tracing::warn!("expiring event {}: {e}", s.key),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::{from_events_v1, patch_to_core, to_events_v1};

    fn pod() -> Value {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "web-1", "namespace": "ml", "uid": "u1", "resourceVersion": "5"}})
    }

    #[test]
    fn events_look_like_client_go_ones() {
        let ev = new_event(
            Source::kubelet("mooring-node-1"),
            &pod(),
            EventType::Normal,
            "Started",
            "Started container app",
            "2026-01-01T00:00:00Z",
            0,
        );
        let name = ev["metadata"]["name"].as_str().unwrap_or_default();
        assert!(name.starts_with("web-1."), "{name}");
        assert_eq!(ev["metadata"]["namespace"], "ml");
        assert_eq!(ev["source"]["component"], "kubelet");
        assert_eq!(ev["source"]["host"], "mooring-node-1");
        assert_eq!(ev["reportingComponent"], "kubelet");
        assert_eq!(ev["reportingInstance"], "mooring-node-1");
        assert_eq!(ev["involvedObject"]["uid"], "u1");
        assert_eq!(ev["count"], 1);
        // Cluster-scoped objects' Events go to `default`.
        let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}});
        let ev = new_event(
            Source::controller("node-controller"),
            &node,
            EventType::Normal,
            "R",
            "m",
            "t",
            1,
        );
        assert_eq!(ev["metadata"]["namespace"], "default");
        assert_eq!(ev["reportingInstance"], "");
    }

    #[test]
    fn aggregation_key_tells_events_apart() {
        let k = |reason: &str, msg: &str, src: Source<'_>| {
            aggregation_key(src, &pod(), EventType::Warning, reason, msg)
        };
        let a = k("BackOff", "m", Source::kubelet("n0"));
        assert_eq!(a, k("BackOff", "m", Source::kubelet("n0")));
        assert_ne!(a, k("BackOff", "m2", Source::kubelet("n0")));
        assert_ne!(a, k("BackOff", "m", Source::kubelet("n1")));
        assert_ne!(a, k("Failed", "m", Source::kubelet("n0")));
    }

    #[test]
    fn ttl_counts_from_the_last_write() {
        let now = mooring_core::time::parse("2026-01-01T02:00:00Z").expect("time");
        let ttl = Duration::from_secs(3600);
        let old = json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
                         "lastTimestamp": "2026-01-01T00:30:00Z"});
        assert!(is_expired(&old, ttl, now));
        let refreshed = json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
                               "lastTimestamp": "2026-01-01T01:30:00Z"});
        assert!(!is_expired(&refreshed, ttl, now));
        let series = json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
                            "series": {"count": 2, "lastObservedTime": "2026-01-01T01:59:00.000000Z"}});
        assert!(!is_expired(&series, ttl, now));
        // No timestamp at all: kept (nothing says it is old).
        assert!(!is_expired(&json!({}), ttl, now));
    }

    #[test]
    fn events_v1_conversion_round_trips() {
        let core = new_event(
            Source::controller("deployment-controller"),
            &pod(),
            EventType::Normal,
            "ScalingReplicaSet",
            "Scaled up replica set web-abc to 2 from 0",
            "2026-01-01T00:00:00Z",
            0,
        );
        let v1 = to_events_v1(&core);
        assert_eq!(v1["apiVersion"], "events.k8s.io/v1");
        assert_eq!(v1["regarding"]["name"], "web-1");
        assert_eq!(v1["note"], core["message"]);
        assert_eq!(v1["reportingController"], "deployment-controller");
        assert_eq!(v1["deprecatedCount"], 1);
        assert_eq!(v1["deprecatedSource"]["component"], "deployment-controller");
        assert!(v1.get("involvedObject").is_none() && v1.get("message").is_none());
        assert_eq!(from_events_v1(&v1), core);
        let merge = patch_to_core(false, &json!({"note": "n", "series": {"count": 2}}));
        assert_eq!(merge, json!({"message": "n", "series": {"count": 2}}));
        let jp = patch_to_core(
            true,
            &json!([{"op": "replace", "path": "/deprecatedCount", "value": 3},
                    {"op": "replace", "path": "/regarding/name", "value": "x"},
                    {"op": "add", "path": "/series", "value": {}}]),
        );
        assert_eq!(jp[0]["path"], "/count");
        assert_eq!(jp[1]["path"], "/involvedObject/name");
        assert_eq!(jp[2]["path"], "/series");
    }
}
