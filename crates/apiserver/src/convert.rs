//! Conversion between the served versions of a kind whose versions differ in shape.
//!
//! Most kinds served in several versions here are the same object under another
//! `apiVersion`, so storage keeps one JSON object and [`crate::api::Api::present`] only
//! relabels it. `HorizontalPodAutoscaler` is different: `autoscaling/v1` has a single
//! `targetCPUUtilizationPercentage` where `autoscaling/v2` has a list of `metrics`,
//! `behavior` and `conditions`. As in Kubernetes, the object is stored as v2 (the storage
//! version) and converted on the way in and out; what v1 cannot express travels in the
//! annotations Kubernetes uses for it (`autoscaling.alpha.kubernetes.io/metrics`,
//! `…/behavior`, `…/conditions`, `…/current-metrics`), so that reading an HPA through v1
//! and writing it back loses nothing. `kubectl autoscale` creates v1 objects; the HPA
//! controller works on the v2 form.
//!
//! Events are stored as core `v1` Events and also served as `events.k8s.io/v1`, whose
//! fields have other names (`involvedObject` ↔ `regarding`, `message` ↔ `note` …):
//! [`to_events_v1`], [`from_events_v1`] and [`patch_to_core`].

use crate::registry::ResourceType;
use serde_json::{json, Map, Value};

pub const HPA_METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
pub const HPA_CURRENT_METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
pub const HPA_CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";
pub const HPA_BEHAVIOR_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/behavior";

const HPA_V1: &str = "autoscaling/v1";
const HPA_V2: &str = "autoscaling/v2";

fn is_hpa(rt: &ResourceType) -> bool {
    rt.group == "autoscaling" && rt.kind == "HorizontalPodAutoscaler"
}

/// The `apiVersion` objects of this resource are stored with.
pub fn storage_api_version(rt: &ResourceType) -> String {
    if is_hpa(rt) {
        HPA_V2.to_string()
    } else {
        rt.api_version()
    }
}

/// Convert an object as sent to `rt`'s version into its storage form.
pub fn to_storage(rt: &ResourceType, mut obj: Value) -> Value {
    if is_hpa(rt) {
        let is_v1 =
            rt.version == "v1" || obj.get("apiVersion").and_then(Value::as_str) == Some(HPA_V1);
        if is_v1 {
            obj = hpa_v1_to_v2(obj);
        }
        obj["apiVersion"] = json!(HPA_V2);
    }
    obj
}

/// Convert a stored object to `rt`'s version (`apiVersion` and `kind` are set by the
/// caller).
pub fn to_version(rt: &ResourceType, obj: Value) -> Value {
    if !is_hpa(rt) {
        return obj;
    }
    let stored_v1 = obj.get("apiVersion").and_then(Value::as_str) == Some(HPA_V1);
    match (rt.version.as_str(), stored_v1) {
        ("v1", false) => hpa_v2_to_v1(obj),
        ("v2", true) => hpa_v1_to_v2(obj),
        _ => obj,
    }
}

fn annotations_mut(obj: &mut Value) -> Option<&mut Map<String, Value>> {
    obj.pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
}

fn take_annotation(obj: &mut Value, key: &str) -> Option<Value> {
    let a = annotations_mut(obj)?;
    let v = a.remove(key)?;
    let parsed = v.as_str().and_then(|s| serde_json::from_str(s).ok());
    if a.is_empty() {
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("annotations");
        }
    }
    parsed
}

fn put_annotation(obj: &mut Value, key: &str, v: &Value) {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    if !obj
        .pointer("/metadata/annotations")
        .is_some_and(Value::is_object)
    {
        obj["metadata"]["annotations"] = json!({});
    }
    obj["metadata"]["annotations"][key] = json!(v.to_string());
}

fn is_cpu_utilization(m: &Value) -> bool {
    m.get("type").and_then(Value::as_str) == Some("Resource")
        && m.pointer("/resource/name").and_then(Value::as_str) == Some("cpu")
        && m.pointer("/resource/target/type").and_then(Value::as_str) == Some("Utilization")
}

fn hpa_v2_to_v1(mut obj: Value) -> Value {
    let metrics: Vec<Value> = obj
        .pointer("/spec/metrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let behavior = obj.pointer("/spec/behavior").cloned();
    let cpu = metrics.iter().position(is_cpu_utilization);
    let mut spec = Map::new();
    for k in ["scaleTargetRef", "minReplicas", "maxReplicas"] {
        if let Some(v) = obj.pointer(&format!("/spec/{k}")) {
            spec.insert(k.into(), v.clone());
        }
    }
    if let Some(i) = cpu {
        if let Some(u) = metrics[i].pointer("/resource/target/averageUtilization") {
            spec.insert("targetCPUUtilizationPercentage".into(), u.clone());
        }
    }
    let others: Vec<Value> = metrics
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != cpu)
        .map(|(_, m)| m.clone())
        .collect();
    let status = obj.get("status").cloned();
    obj["spec"] = Value::Object(spec);
    if !others.is_empty() {
        put_annotation(&mut obj, HPA_METRICS_ANNOTATION, &Value::Array(others));
    }
    if let Some(b) = behavior {
        put_annotation(&mut obj, HPA_BEHAVIOR_ANNOTATION, &b);
    }
    if let Some(status) = status {
        let mut s = Map::new();
        for k in [
            "observedGeneration",
            "lastScaleTime",
            "currentReplicas",
            "desiredReplicas",
        ] {
            if let Some(v) = status.get(k) {
                s.insert(k.into(), v.clone());
            }
        }
        if !s.contains_key("currentReplicas") {
            s.insert("currentReplicas".into(), json!(0));
        }
        if !s.contains_key("desiredReplicas") {
            s.insert("desiredReplicas".into(), json!(0));
        }
        let current: Vec<Value> = status
            .get("currentMetrics")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut other_current = Vec::new();
        for m in current {
            let cpu_util = m.get("type").and_then(Value::as_str) == Some("Resource")
                && m.pointer("/resource/name").and_then(Value::as_str) == Some("cpu")
                && m.pointer("/resource/current/averageUtilization").is_some();
            if cpu_util {
                if let Some(u) = m.pointer("/resource/current/averageUtilization") {
                    s.insert("currentCPUUtilizationPercentage".into(), u.clone());
                }
            } else {
                other_current.push(m);
            }
        }
        if !other_current.is_empty() {
            put_annotation(
                &mut obj,
                HPA_CURRENT_METRICS_ANNOTATION,
                &Value::Array(other_current),
            );
        }
        if let Some(c) = status.get("conditions").filter(|c| !c.is_null()) {
            put_annotation(&mut obj, HPA_CONDITIONS_ANNOTATION, c);
        }
        obj["status"] = Value::Object(s);
    }
    obj
}

fn hpa_v1_to_v2(mut obj: Value) -> Value {
    let mut metrics = Vec::new();
    if let Some(u) = obj
        .pointer("/spec/targetCPUUtilizationPercentage")
        .filter(|v| !v.is_null())
    {
        metrics.push(json!({"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": u}}}));
    }
    if let Some(Value::Array(more)) = take_annotation(&mut obj, HPA_METRICS_ANNOTATION) {
        metrics.extend(more);
    }
    let behavior = take_annotation(&mut obj, HPA_BEHAVIOR_ANNOTATION);
    let conditions = take_annotation(&mut obj, HPA_CONDITIONS_ANNOTATION);
    let current_more = take_annotation(&mut obj, HPA_CURRENT_METRICS_ANNOTATION);
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("targetCPUUtilizationPercentage");
        if !metrics.is_empty() {
            spec.insert("metrics".into(), Value::Array(metrics));
        }
        if let Some(b) = behavior {
            spec.insert("behavior".into(), b);
        }
    }
    if let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) {
        let mut current = Vec::new();
        if let Some(u) = status.remove("currentCPUUtilizationPercentage") {
            current.push(json!({"type": "Resource", "resource": {"name": "cpu",
                "current": {"averageUtilization": u}}}));
        }
        if let Some(Value::Array(more)) = current_more {
            current.extend(more);
        }
        if !current.is_empty() {
            status.insert("currentMetrics".into(), Value::Array(current));
        }
        if let Some(c) = conditions {
            status.insert("conditions".into(), c);
        }
    }
    obj["apiVersion"] = json!(HPA_V2);
    obj
}

/// Field renames between core `v1` and `events.k8s.io/v1` Events (core, events.k8s.io).
const RENAMES: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
];

fn rename(v: &Value, to_events_v1: bool) -> Value {
    let Some(o) = v.as_object() else {
        return v.clone();
    };
    let mut out = serde_json::Map::new();
    for (k, x) in o {
        let new = RENAMES
            .iter()
            .find_map(|(core, ev1)| {
                if to_events_v1 {
                    (k == core).then_some(*ev1)
                } else {
                    (k == ev1).then_some(*core)
                }
            })
            .unwrap_or(k);
        out.insert(new.to_string(), x.clone());
    }
    Value::Object(out)
}

/// A stored (core `v1`) Event as `events.k8s.io/v1` shows it.
pub fn to_events_v1(core: &Value) -> Value {
    let mut v = rename(core, true);
    v["apiVersion"] = json!("events.k8s.io/v1");
    v["kind"] = json!("Event");
    v
}

/// An `events.k8s.io/v1` Event as the core `v1` object stored.
pub fn from_events_v1(ev: &Value) -> Value {
    let mut v = rename(ev, false);
    v["apiVersion"] = json!("v1");
    v["kind"] = json!("Event");
    v
}

/// A patch of an `events.k8s.io/v1` Event as the same patch of the stored core Event: a
/// JSON patch's paths and a merge / strategic / apply body's fields renamed.
pub fn patch_to_core(json_patch: bool, body: &Value) -> Value {
    if json_patch {
        let Some(ops) = body.as_array() else {
            return body.clone();
        };
        let rename_path = |p: &str| -> String {
            let rest = p.strip_prefix('/').unwrap_or(p);
            let (first, tail) = rest
                .split_once('/')
                .map_or((rest, None), |(a, b)| (a, Some(b)));
            let first = RENAMES
                .iter()
                .find(|(_, ev1)| *ev1 == first)
                .map_or(first, |(core, _)| core);
            match tail {
                Some(t) => format!("/{first}/{t}"),
                None => format!("/{first}"),
            }
        };
        return Value::Array(
            ops.iter()
                .map(|op| {
                    let mut op = op.clone();
                    for k in ["path", "from"] {
                        if let Some(p) = op.get(k).and_then(Value::as_str) {
                            op[k] = json!(rename_path(p));
                        }
                    }
                    op
                })
                .collect(),
        );
    }
    let mut v = rename(body, false);
    if v.get("apiVersion").is_some() {
        v["apiVersion"] = json!("v1");
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[test]
    fn hpa_round_trips_through_v1() {
        let reg = Registry::with_builtins();
        let v1 = reg
            .get("autoscaling", "v1", "horizontalpodautoscalers")
            .expect("test value");
        let v2 = reg
            .get("autoscaling", "v2", "horizontalpodautoscalers")
            .expect("test value");
        let stored = json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "demo"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 2, "maxReplicas": 5,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                    {"type": "Pods", "pods": {"metric": {"name": "http_requests_per_second"}, "target": {"type": "AverageValue", "averageValue": "20"}}},
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}},
            },
            "status": {
                "currentReplicas": 2, "desiredReplicas": 3,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 70, "averageValue": "35m"}}}],
                "conditions": [{"type": "AbleToScale", "status": "True"}],
            },
        });
        let view = to_version(&v1, stored.clone());
        assert_eq!(view["spec"]["targetCPUUtilizationPercentage"], 50);
        assert_eq!(view["status"]["currentCPUUtilizationPercentage"], 70);
        assert!(view["spec"].get("metrics").is_none());
        assert!(view["metadata"]["annotations"][HPA_METRICS_ANNOTATION]
            .as_str()
            .expect("test value")
            .contains("http_requests_per_second"));
        let back = to_storage(&v1, view);
        assert_eq!(back["apiVersion"], "autoscaling/v2");
        assert_eq!(back["spec"], stored["spec"]);
        assert_eq!(back["status"]["conditions"], stored["status"]["conditions"]);
        assert!(back["metadata"].get("annotations").is_none());
        // v2 is the storage form: unchanged.
        assert_eq!(to_version(&v2, stored.clone()), stored);
    }

    #[test]
    fn kubectl_autoscale_v1_object() {
        let reg = Registry::with_builtins();
        let v1 = reg
            .get("autoscaling", "v1", "horizontalpodautoscalers")
            .expect("test value");
        let sent = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": 2, "maxReplicas": 5, "targetCPUUtilizationPercentage": 60}});
        let s = to_storage(&v1, sent);
        assert_eq!(
            s["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            60
        );
        assert!(s["spec"].get("targetCPUUtilizationPercentage").is_none());
    }
}
