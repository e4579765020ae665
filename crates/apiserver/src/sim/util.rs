//! Small helpers shared by the simulation controllers: owner references, conditions,
//! timestamps, status writes and failure-injection lookups.

use super::Ctx;
use crate::api::Subresource;
use crate::error::ApiError;
use crate::registry::ResourceType;
use crate::store::{ObjKey, Stored};
use serde_json::{json, Map, Value};
use std::sync::Arc;
use std::time::Duration;

pub const FAIL_ANNOTATION: &str = "sim.mooring.dev/fail";
pub const RUN_SECONDS_ANNOTATION: &str = "sim.mooring.dev/run-seconds";

pub fn str_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

pub fn i64_at(v: &Value, ptr: &str) -> Option<i64> {
    v.pointer(ptr).and_then(Value::as_i64)
}

pub fn name_of(v: &Value) -> &str {
    str_at(v, "/metadata/name").unwrap_or_default()
}

pub fn is_deleting(v: &Value) -> bool {
    v.pointer("/metadata/deletionTimestamp").is_some()
}

/// A controller owner reference to `owner` (as Kubernetes' controllers set it).
pub fn owner_ref(owner: &Value) -> Value {
    json!({
        "apiVersion": owner.get("apiVersion").cloned().unwrap_or(Value::Null),
        "kind": owner.get("kind").cloned().unwrap_or(Value::Null),
        "name": owner.pointer("/metadata/name").cloned().unwrap_or(Value::Null),
        "uid": owner.pointer("/metadata/uid").cloned().unwrap_or(Value::Null),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// The key of the object of `resource` that owns `obj`, if any.
pub fn owner_key(ctx: &Ctx, obj: &Stored, resource: &str) -> Option<ObjKey> {
    obj.owners.iter().find_map(|uid| {
        ctx.api
            .store
            .by_uid(uid)
            .filter(|o| o.key.resource == resource)
            .map(|o| o.key.clone())
    })
}

/// Objects of `resource` whose ownerReferences name `uid`, parsed.
pub fn owned(ctx: &Ctx, uid: &str, resource: &str) -> Vec<Value> {
    ctx.api
        .store
        .dependents(uid)
        .into_iter()
        .filter(|k| k.resource == resource)
        .filter_map(|k| ctx.api.store.get(&k))
        .filter_map(|s| s.value().ok())
        .collect()
}

/// Read an object of a controller's own resource; `None` when it is gone.
pub fn get(ctx: &Ctx, key: &ObjKey) -> Result<Option<Value>, ApiError> {
    match ctx.api.store.get(key) {
        None => Ok(None),
        Some(s) => Ok(Some(s.value()?)),
    }
}

/// Replace `.status` of `current` when it differs; `true` when a write happened.
pub fn write_status(
    ctx: &Ctx,
    rt: &ResourceType,
    current: &Value,
    status: Value,
) -> Result<bool, ApiError> {
    if current.get("status") == Some(&status) {
        return Ok(false);
    }
    let mut obj = current.clone();
    obj["status"] = status;
    let ns = str_at(current, "/metadata/namespace");
    ctx.api
        .update(rt, ns, name_of(current), obj, Subresource::Status, &ctx.wo)?;
    Ok(true)
}

/// Replace the main resource (spec/metadata) when it differs.
pub fn write_main(
    ctx: &Ctx,
    rt: &ResourceType,
    current: &Value,
    new: Value,
) -> Result<Value, ApiError> {
    if current == &new {
        return Ok(new);
    }
    let ns = str_at(current, "/metadata/namespace");
    ctx.api
        .update(rt, ns, name_of(current), new, Subresource::Main, &ctx.wo)
}

/// Insert or replace a condition with Kubernetes' semantics (`SetDeploymentCondition`):
/// the same status and reason leave the old condition untouched; the same status with a
/// new reason keeps `lastTransitionTime`.
pub fn set_condition(conds: &mut Vec<Value>, mut new: Value) {
    let t = new.get("type").cloned();
    if let Some(old) = conds.iter().find(|c| c.get("type") == t.as_ref()) {
        if old.get("status") == new.get("status") {
            if old.get("reason") == new.get("reason") {
                return;
            }
            if let Some(ltt) = old.get("lastTransitionTime") {
                new["lastTransitionTime"] = ltt.clone();
            }
        }
    }
    match conds.iter_mut().find(|c| c.get("type") == t.as_ref()) {
        Some(c) => *c = new,
        None => conds.push(new),
    }
}

/// Remove a condition by type.
pub fn remove_condition(conds: &mut Vec<Value>, t: &str) {
    conds.retain(|c| c.get("type").and_then(Value::as_str) != Some(t));
}

pub fn conditions(v: &Value) -> Vec<Value> {
    v.pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

pub fn find_condition<'a>(conds: &'a [Value], t: &str) -> Option<&'a Value> {
    conds
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(t))
}

/// Annotation of an object (`metadata.annotations[key]`).
pub fn annotation<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.pointer("/metadata/annotations")
        .and_then(|a| a.get(key))
        .and_then(Value::as_str)
}

pub fn labels(v: &Value) -> Map<String, Value> {
    v.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

/// Remove zero or empty entries, as Kubernetes' `omitempty` status fields do.
pub fn omit_empty(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.retain(|_, x| match x {
            Value::Null => false,
            Value::Number(n) => n.as_i64() != Some(0),
            Value::Array(a) => !a.is_empty(),
            Value::String(s) => !s.is_empty(),
            _ => true,
        });
    }
    v
}

/// A 5-character suffix from the alphabet Kubernetes uses for generated names.
pub fn random_suffix() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..5)
        .map(|_| SAFE[rng.random_range(0..SAFE.len())] as char)
        .collect()
}

/// Kubernetes' "safe" alphabet (no vowels, no confusable digits).
pub const SAFE: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a, 32 bits (the hash Kubernetes uses for pod-template hashes).
pub fn fnv32a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in data {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// JSON with object keys sorted, so that a hash does not depend on key order.
pub fn canonical_json(v: &Value) -> String {
    fn canon(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for k in keys {
                    out.insert(k.clone(), canon(&m[k]));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(canon).collect()),
            other => other.clone(),
        }
    }
    canon(v).to_string()
}

/// Hash of a pod template (plus an optional collision count), encoded like Kubernetes'
/// `rand.SafeEncodeString(fmt.Sprint(hash))`: up to 10 characters of the safe alphabet.
pub fn template_hash(template: &Value, collision_count: Option<u32>) -> String {
    let mut data = canonical_json(template).into_bytes();
    if let Some(c) = collision_count {
        data.extend_from_slice(&c.to_le_bytes());
    }
    fnv32a(&data)
        .to_string()
        .bytes()
        .map(|b| SAFE[usize::from(b) % SAFE.len()] as char)
        .collect()
}

/// The simulated InternalIP of node `i`.
pub fn node_ip(i: usize) -> String {
    format!("172.18.{}.{}", i / 250, 2 + i % 250)
}

/// Index of a simulated node from its name (`mooring-node-3` → 3).
pub fn node_index(name: &str) -> usize {
    name.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| fnv32a(name.as_bytes()) as usize % 250)
}

/// Ready, schedulable nodes, by name.
pub fn ready_nodes(ctx: &Ctx) -> Vec<String> {
    let (nodes, _) = ctx.api.store.list(super::res::NODES, None);
    nodes
        .iter()
        .filter_map(|s| s.value().ok())
        .filter(|n| {
            n.pointer("/spec/unschedulable").and_then(Value::as_bool) != Some(true)
                && find_condition(&conditions(n), "Ready")
                    .and_then(|c| c.get("status"))
                    .and_then(Value::as_str)
                    == Some("True")
        })
        .map(|n| name_of(&n).to_string())
        .collect()
}

/// Pod helpers used by the workload controllers.
pub mod pod {
    use super::*;

    pub fn phase(p: &Value) -> &str {
        str_at(p, "/status/phase").unwrap_or("Pending")
    }

    /// Not terminated and not being deleted (Kubernetes' `FilterActivePods`).
    pub fn is_active(p: &Value) -> bool {
        !is_deleting(p) && !matches!(phase(p), "Succeeded" | "Failed")
    }

    pub fn is_ready(p: &Value) -> bool {
        find_condition(&conditions(p), "Ready")
            .and_then(|c| c.get("status"))
            .and_then(Value::as_str)
            == Some("True")
    }

    /// Ready for at least `min_ready` (real time); `Err(wait)` tells how long until it is.
    pub fn available(p: &Value, min_ready: Duration) -> Result<(), Option<Duration>> {
        if !is_ready(p) {
            return Err(None);
        }
        if min_ready.is_zero() {
            return Ok(());
        }
        let conds = conditions(p);
        let since_ready = mooring_core::time::since(
            find_condition(&conds, "Ready")
                .and_then(|c| c.get("lastTransitionTime"))
                .and_then(Value::as_str),
            mooring_core::time::now(),
        );
        if since_ready >= min_ready {
            Ok(())
        } else {
            Err(Some(min_ready - since_ready + Duration::from_millis(5)))
        }
    }

    /// A new Pod from a template, owned by `owner`.
    pub fn from_template(
        template: &Value,
        owner: &Value,
        name: &str,
        namespace: &str,
        extra_labels: &[(&str, String)],
    ) -> Value {
        let mut labels = template
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (k, v) in extra_labels {
            labels.insert((*k).to_string(), json!(v));
        }
        let mut meta = json!({
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [owner_ref(owner)],
        });
        if let Some(a) = template
            .pointer("/metadata/annotations")
            .filter(|a| a.is_object())
        {
            meta["annotations"] = a.clone();
        }
        if let Some(f) = template.pointer("/metadata/finalizers") {
            meta["finalizers"] = f.clone();
        }
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta,
            "spec": template.get("spec").cloned().unwrap_or(json!({})),
        })
    }

    /// The controller owning a Pod, as an object reference Events can be about, and the
    /// component reporting for that kind of owner.
    fn owner(p: &Value) -> Option<(Value, &'static str, String)> {
        let r = p
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)?
            .iter()
            .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))?;
        let kind = r.get("kind").and_then(Value::as_str)?.to_string();
        let component = match kind.as_str() {
            "ReplicaSet" => "replicaset-controller",
            "StatefulSet" => "statefulset-controller",
            "DaemonSet" => "daemonset-controller",
            "Job" => "job-controller",
            _ => return None,
        };
        let ns = str_at(p, "/metadata/namespace").unwrap_or_default();
        let obj = json!({"apiVersion": r.get("apiVersion"), "kind": kind,
            "metadata": {"name": r.get("name"), "namespace": ns, "uid": r.get("uid")}});
        Some((obj, component, kind))
    }

    /// The owner's SuccessfulCreate / SuccessfulDelete (or FailedCreate / FailedDelete)
    /// Event, worded as each Kubernetes controller words it.
    fn report(ctx: &Ctx, p: &Value, create: bool, err: Option<&ApiError>) {
        let Some((owner, component, kind)) = owner(p) else {
            return;
        };
        let pod = name_of(p);
        let (verb, ok_reason, failed_reason) = if create {
            ("create", "SuccessfulCreate", "FailedCreate")
        } else {
            ("delete", "SuccessfulDelete", "FailedDelete")
        };
        if kind == "StatefulSet" {
            let set = name_of(&owner);
            match err {
                None => ctx.recorder.normal(
                    component,
                    &owner,
                    ok_reason,
                    &format!("{verb} Pod {pod} in StatefulSet {set} successful"),
                ),
                Some(e) => ctx.recorder.warning(
                    component,
                    &owner,
                    failed_reason,
                    &format!("{verb} Pod {pod} in StatefulSet {set} failed error: {e}"),
                ),
            }
            return;
        }
        match (err, create) {
            (None, true) => {
                ctx.recorder
                    .normal(component, &owner, ok_reason, &format!("Created pod: {pod}"))
            }
            (None, false) => {
                ctx.recorder
                    .normal(component, &owner, ok_reason, &format!("Deleted pod: {pod}"))
            }
            (Some(e), true) => ctx.recorder.warning(
                component,
                &owner,
                failed_reason,
                &format!("Error creating: {e}"),
            ),
            (Some(e), false) => ctx.recorder.warning(
                component,
                &owner,
                failed_reason,
                &format!("Error deleting: {e}"),
            ),
        }
    }

    /// Create a Pod; returns the created object. The owner's Event is recorded.
    pub fn create(ctx: &Ctx, namespace: &str, pod: Value) -> Result<Value, ApiError> {
        match ctx
            .api
            .create(&ctx.pods, Some(namespace), pod.clone(), &ctx.wo)
        {
            Ok(created) => {
                report(ctx, &created, true, None);
                Ok(created)
            }
            Err(e) => {
                if !matches!(
                    e,
                    ApiError::AlreadyExists { .. } | ApiError::Conflict { .. }
                ) {
                    report(ctx, &pod, true, Some(&e));
                }
                Err(e)
            }
        }
    }

    /// Delete a Pod at once (simulated Pods have nothing to shut down).
    pub fn delete(ctx: &Ctx, p: &Value) -> Result<(), ApiError> {
        let ns = str_at(p, "/metadata/namespace");
        match ctx.api.delete(
            &ctx.pods,
            ns,
            name_of(p),
            &crate::api::DeleteOptions {
                precondition_uid: str_at(p, "/metadata/uid").map(str::to_string),
                ..Default::default()
            },
        ) {
            Ok(_) => {
                report(ctx, p, false, None);
                Ok(())
            }
            Err(ApiError::NotFound { .. }) => Ok(()),
            Err(e) => {
                if !matches!(e, ApiError::Conflict { .. }) {
                    report(ctx, p, false, Some(&e));
                }
                Err(e)
            }
        }
    }

    /// Deletion preference (Kubernetes' `ActivePods` ordering): unscheduled before
    /// scheduled, Pending before Running, not ready before ready, more restarts first,
    /// newer before older. Smaller sorts first.
    pub fn deletion_rank(p: &Value) -> (u8, u8, u8, i64, std::cmp::Reverse<String>) {
        let scheduled = u8::from(p.pointer("/spec/nodeName").is_some());
        let phase = match phase(p) {
            "Pending" => 0,
            "Unknown" => 1,
            _ => 2,
        };
        let ready = u8::from(is_ready(p));
        let restarts: i64 = p
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c.get("restartCount").and_then(Value::as_i64))
                    .sum()
            })
            .unwrap_or(0);
        let created = str_at(p, "/metadata/creationTimestamp")
            .unwrap_or_default()
            .to_string();
        (
            scheduled,
            phase,
            ready,
            -restarts,
            std::cmp::Reverse(created),
        )
    }
}

/// Shorthand used by controllers for keys of owned objects found through events.
pub fn push_owner(ctx: &Ctx, obj: &Arc<Stored>, resource: &str, out: &mut Vec<ObjKey>) {
    if let Some(k) = owner_key(ctx, obj, resource) {
        out.push(k);
    }
}

/// All keys of a resource.
pub fn all_keys(ctx: &Ctx, resource: &str) -> Vec<ObjKey> {
    ctx.api
        .store
        .list(resource, None)
        .0
        .into_iter()
        .map(|s| s.key.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_hash_is_stable_and_order_independent() {
        let a = json!({"metadata": {"labels": {"app": "x", "tier": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}});
        let b = json!({"spec": {"containers": [{"image": "nginx:1", "name": "c"}]}, "metadata": {"labels": {"tier": "web", "app": "x"}}});
        let h = template_hash(&a, None);
        assert_eq!(h, template_hash(&b, None));
        assert!(!h.is_empty() && h.len() <= 10, "{h}");
        assert!(h.bytes().all(|c| SAFE.contains(&c)));
        // Pinned: the hash must not change between releases, or every Deployment
        // would roll out after an upgrade.
        assert_eq!(h, template_hash(&a, None));
        let c = json!({"metadata": {"labels": {"app": "x", "tier": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:2"}]}});
        assert_ne!(h, template_hash(&c, None));
        assert_ne!(h, template_hash(&a, Some(1)));
    }

    #[test]
    fn fnv_matches_reference_vectors() {
        assert_eq!(fnv32a(b""), 0x811c_9dc5);
        assert_eq!(fnv32a(b"a"), 0xe40c_292c);
        assert_eq!(fnv32a(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn conditions_keep_transition_time() {
        let mut conds =
            vec![json!({"type": "Ready", "status": "True", "lastTransitionTime": "t0"})];
        set_condition(
            &mut conds,
            json!({"type": "Ready", "status": "True", "lastTransitionTime": "t1"}),
        );
        assert_eq!(conds[0]["lastTransitionTime"], "t0");
        set_condition(
            &mut conds,
            json!({"type": "Ready", "status": "False", "lastTransitionTime": "t2"}),
        );
        assert_eq!(conds[0]["lastTransitionTime"], "t2");
        set_condition(&mut conds, json!({"type": "Other", "status": "False"}));
        assert_eq!(conds.len(), 2);
    }
}
