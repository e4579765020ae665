//! The resource metrics API, `metrics.k8s.io/v1beta1`, as metrics-server serves it.
//!
//! `kubectl top` and the HPA read Pod and node usage from this API. On a real cluster it
//! is an aggregated API (an `APIService` pointing at metrics-server); here it is answered
//! in-process from the simulation's usage model ([`crate::sim::usage`]), computed on each
//! request, so nothing is stored and there is nothing to keep in step.
//!
//! Served, as metrics-server does: `PodMetrics` (`pods`, namespaced) and `NodeMetrics`
//! (`nodes`), `get` and `list` with `labelSelector` and `fieldSelector` (on
//! `metadata.name` / `metadata.namespace`). Only Running Pods with a started container
//! have metrics (a Pending Pod is a 404, like a Pod metrics-server has not scraped yet).
//! Every other verb is `405 MethodNotAllowed`, watch included; other query parameters
//! that change a list (`limit`, `continue`, `resourceVersion`) are ignored by
//! metrics-server too and get a `Warning` header here, so nothing is silently dropped.

use crate::api::Api;
use crate::error::ApiError;
use crate::selector::{FieldSelector, LabelSelector};
use crate::sim::usage;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

pub const GROUP: &str = "metrics.k8s.io";
pub const VERSION: &str = "v1beta1";

/// The collection window reported with each figure (metrics-server's default resolution).
const WINDOW: &str = "15s";

/// `/apis/metrics.k8s.io` as an APIGroup.
pub fn api_group() -> Value {
    let gv = json!({"groupVersion": format!("{GROUP}/{VERSION}"), "version": VERSION});
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": GROUP,
           "versions": [gv], "preferredVersion": gv})
}

/// The entry of `/apis` (APIGroupList.groups).
pub fn group_list_entry() -> Value {
    let mut g = api_group();
    if let Some(o) = g.as_object_mut() {
        o.remove("kind");
        o.remove("apiVersion");
    }
    g
}

/// `/apis/metrics.k8s.io/v1beta1` as an APIResourceList.
pub fn resource_list() -> Value {
    json!({
        "kind": "APIResourceList", "apiVersion": "v1",
        "groupVersion": format!("{GROUP}/{VERSION}"),
        "resources": [
            {"name": "nodes", "singularName": "", "namespaced": false, "kind": "NodeMetrics",
             "verbs": ["get", "list"]},
            {"name": "pods", "singularName": "", "namespaced": true, "kind": "PodMetrics",
             "verbs": ["get", "list"]},
        ],
    })
}

/// The answer to a request under `/apis/metrics.k8s.io/`: the body and any warnings.
pub struct Answer {
    pub body: Value,
    pub warnings: Vec<String>,
}

fn not_allowed() -> ApiError {
    ApiError::MethodNotAllowed(
        "the server does not allow this method on the requested resource".into(),
    )
}

fn not_found_path(path: &str) -> ApiError {
    ApiError::NotFound {
        message: format!("the server could not find the requested resource ({path})"),
        details: Default::default(),
    }
}

/// Serve `GET` below `/apis/metrics.k8s.io` (`rest` are the path segments after the group).
pub fn serve(
    api: &Api,
    is_get: bool,
    rest: &[&str],
    query: &HashMap<String, String>,
    path: &str,
) -> Result<Answer, ApiError> {
    match rest {
        [] => {
            return if is_get {
                Ok(Answer {
                    body: api_group(),
                    warnings: vec![],
                })
            } else {
                Err(not_allowed())
            }
        }
        [VERSION] => {
            return if is_get {
                Ok(Answer {
                    body: resource_list(),
                    warnings: vec![],
                })
            } else {
                Err(not_allowed())
            }
        }
        _ => {}
    }
    let (watch, rest) = match rest {
        [VERSION, "watch", r @ ..] => (true, r),
        [VERSION, r @ ..] => (false, r),
        _ => return Err(not_found_path(path)),
    };
    let (resource, ns, name) = match rest {
        ["nodes"] => ("nodes", None, None),
        ["nodes", n] => ("nodes", None, Some(*n)),
        ["pods"] => ("pods", None, None),
        ["namespaces", ns, "pods"] => ("pods", Some(*ns), None),
        ["namespaces", ns, "pods", n] => ("pods", Some(*ns), Some(*n)),
        _ => return Err(not_found_path(path)),
    };
    if !is_get || watch || query.get("watch").is_some_and(|w| w == "true" || w == "1") {
        return Err(not_allowed());
    }
    let labels = match query.get("labelSelector").filter(|s| !s.is_empty()) {
        Some(s) => Some(
            LabelSelector::parse(s)
                .map_err(|e| ApiError::BadRequest(format!("unable to parse requirement: {e}")))?,
        ),
        None => None,
    };
    let fields = match query.get("fieldSelector").filter(|s| !s.is_empty()) {
        Some(s) => {
            let f = FieldSelector::parse(s)
                .map_err(|e| ApiError::BadRequest(format!("invalid field selector: {e}")))?;
            for t in f.terms() {
                if !matches!(t.field.as_str(), "metadata.name" | "metadata.namespace") {
                    return Err(ApiError::BadRequest(format!(
                        "field label not supported: {}",
                        t.field
                    )));
                }
            }
            Some(f)
        }
        None => None,
    };
    let warnings: Vec<String> = [
        "limit",
        "continue",
        "resourceVersion",
        "resourceVersionMatch",
    ]
    .iter()
    .filter(|k| query.get(**k).is_some_and(|v| !v.is_empty()))
    .map(|k| format!("the metrics API ignores the list option {k}"))
    .collect();
    let now = mooring_core::time::now_rfc3339();
    let items = match resource {
        "pods" => pod_metrics(api, ns, name, &now),
        _ => node_metrics(api, name, &now),
    };
    let items: Vec<Value> = items
        .into_iter()
        .filter(|(l, _)| labels.as_ref().is_none_or(|s| s.matches(l)))
        .map(|(_, v)| v)
        .filter(|v| fields.as_ref().is_none_or(|f| f.matches(v)))
        .collect();
    let (kind, plural) = if resource == "pods" {
        ("PodMetrics", "pods")
    } else {
        ("NodeMetrics", "nodes")
    };
    let body = match name {
        Some(n) => {
            let mut it = items.into_iter();
            let mut v = it
                .next()
                .ok_or_else(|| ApiError::not_found((plural, GROUP), n))?;
            v["kind"] = json!(kind);
            v["apiVersion"] = json!(format!("{GROUP}/{VERSION}"));
            v
        }
        None => json!({
            "kind": format!("{kind}List"),
            "apiVersion": format!("{GROUP}/{VERSION}"),
            "metadata": {},
            "items": items,
        }),
    };
    Ok(Answer { body, warnings })
}

fn labels_of(v: &Value) -> Map<String, Value> {
    v.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn running_pods(api: &Api, ns: Option<&str>) -> Vec<Value> {
    let (items, _) = api.store.list(crate::sim::res::PODS, ns);
    items
        .iter()
        .filter_map(|s| s.value().ok())
        .filter(usage::has_metrics)
        .collect()
}

fn pod_metrics(
    api: &Api,
    ns: Option<&str>,
    name: Option<&str>,
    now: &str,
) -> Vec<(Map<String, Value>, Value)> {
    running_pods(api, ns)
        .into_iter()
        .filter(|p| {
            name.is_none_or(|n| p.pointer("/metadata/name").and_then(Value::as_str) == Some(n))
        })
        .map(|p| {
            let labels = labels_of(&p);
            let containers: Vec<Value> = usage::pod_usage(&p)
                .into_iter()
                .map(|c| {
                    json!({"name": c.name, "usage": {
                        "cpu": usage::format_cpu(c.cpu_nanos),
                        "memory": usage::format_memory(c.memory_bytes)}})
                })
                .collect();
            let v = json!({
                "metadata": {
                    "name": p.pointer("/metadata/name"),
                    "namespace": p.pointer("/metadata/namespace"),
                    "creationTimestamp": now,
                    "labels": labels,
                },
                "timestamp": now,
                "window": WINDOW,
                "containers": containers,
            });
            (labels, v)
        })
        .collect()
}

fn node_metrics(api: &Api, name: Option<&str>, now: &str) -> Vec<(Map<String, Value>, Value)> {
    let (nodes, _) = api.store.list(crate::sim::res::NODES, None);
    let pods = running_pods(api, None);
    nodes
        .iter()
        .filter(|s| name.is_none_or(|n| s.key.name == n))
        .filter_map(|s| s.value().ok())
        .map(|n| {
            let node = n
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let (mut cpu, mut mem) = (usage::NODE_BASE_CPU_NANOS, usage::NODE_BASE_MEMORY_BYTES);
            for p in pods
                .iter()
                .filter(|p| p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node))
            {
                for c in usage::pod_usage(p) {
                    cpu = cpu.saturating_add(c.cpu_nanos);
                    mem = mem.saturating_add(c.memory_bytes);
                }
            }
            let labels = labels_of(&n);
            let v = json!({
                "metadata": {"name": node, "creationTimestamp": now, "labels": labels},
                "timestamp": now,
                "window": WINDOW,
                "usage": {"cpu": usage::format_cpu(cpu), "memory": usage::format_memory(mem)},
            });
            (labels, v)
        })
        .collect()
}
