//! Garbage collection and namespace termination, as Kubernetes' controllers do them.
//!
//! Deletion in Kubernetes is asynchronous: the API call only marks or removes the owner,
//! and controllers finish the job. This module follows the store's event stream and
//! converges:
//!
//! - **Background** propagation: when an owner is gone, dependents whose owners are all
//!   gone are deleted; a dependent that still has a living owner only loses the dangling
//!   reference.
//! - **Foreground** (`foregroundDeletion` finalizer on the owner): dependents are deleted
//!   (themselves in foreground), and the owner's finalizer is removed once none remain.
//! - **Orphan** (`orphan` finalizer): the owner reference is removed from every dependent,
//!   then the finalizer.
//! - **Namespaces**: a terminating namespace has every object in it deleted, then its
//!   `kubernetes` spec finalizer removed, at which point it disappears.
//!
//! A lagged event stream (or a restart) triggers a full resync, so nothing is missed.

use crate::api::{Api, DeleteOptions, Deleted, Propagation, FOREGROUND, ORPHAN};
use crate::error::ApiError;
use crate::store::{EventType, ObjKey, Stored};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

/// Run the collector until the store is dropped.
pub async fn run(api: Api) {
    let Ok((_, mut rx)) = api.store.watch_from(api.store.revision()) else {
        return;
    };
    resync(&api);
    loop {
        match rx.recv().await {
            Ok(ev) => {
                let obj = ev.object.clone();
                if ev.kind == EventType::Deleted {
                    on_deleted(&api, &obj);
                } else {
                    on_changed(&api, &obj);
                }
            }
            Err(RecvError::Lagged(_)) => resync(&api),
            Err(RecvError::Closed) => return,
        }
    }
}

fn log_err(what: &str, key: &ObjKey, r: Result<(), ApiError>) {
    match r {
        Ok(()) | Err(ApiError::NotFound { .. }) | Err(ApiError::Conflict { .. }) => {}
        Err(e) => tracing::warn!("garbage collector: {what} {key}: {e}"),
    }
}

/// Re-examine everything: objects being deleted and objects with missing owners.
pub fn resync(api: &Api) {
    for s in api.store.all() {
        on_changed(api, &s);
        if !s.owners.is_empty() && s.owners.iter().all(|o| api.store.by_uid(o).is_none()) {
            log_err(
                "delete orphaned dependent",
                &s.key,
                delete_key(api, &s.key, Propagation::Background),
            );
        }
    }
}

fn on_changed(api: &Api, obj: &Arc<Stored>) {
    // Most writes are not deletions: no need to parse them.
    if !obj.deleting {
        return;
    }
    let Ok(v) = obj.value() else { return };
    let Some(meta) = v.get("metadata") else {
        return;
    };
    if meta.get("deletionTimestamp").is_none() {
        return;
    }
    let fins: Vec<&str> = meta
        .get("finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if obj.key.resource == "/namespaces" {
        terminate_namespace(api, &obj.key.name);
    }
    if fins.contains(&ORPHAN) {
        log_err(
            "orphan dependents of",
            &obj.key,
            orphan_dependents(api, obj),
        );
    }
    if fins.contains(&FOREGROUND) {
        let deps = api.store.dependents(&obj.uid);
        if deps.is_empty() {
            log_err(
                "finish foreground deletion of",
                &obj.key,
                remove_finalizer(api, &obj.key, FOREGROUND),
            );
        } else {
            for d in deps {
                log_err(
                    "delete dependent",
                    &d,
                    delete_key(api, &d, Propagation::Foreground),
                );
            }
        }
    }
}

fn on_deleted(api: &Api, obj: &Arc<Stored>) {
    for dep in api.store.dependents(&obj.uid) {
        let Some(d) = api.store.get(&dep) else {
            continue;
        };
        let alive = d.owners.iter().any(|o| api.store.by_uid(o).is_some());
        if alive {
            log_err(
                "drop dangling owner reference of",
                &dep,
                drop_owner_ref(api, &dep, &obj.uid),
            );
        } else {
            log_err(
                "delete dependent",
                &dep,
                delete_key(api, &dep, Propagation::Background),
            );
        }
    }
    // A deleted dependent may unblock its owner's foreground deletion.
    for owner in &obj.owners {
        if let Some(o) = api.store.by_uid(owner) {
            on_changed(api, &o);
        }
    }
    if !obj.key.namespace.is_empty() {
        let ns = ObjKey::new("/namespaces", "", &obj.key.namespace);
        if let Some(n) = api.store.get(&ns) {
            on_changed(api, &n);
        }
    }
}

fn resource_type(api: &Api, key: &ObjKey) -> Option<Arc<crate::registry::ResourceType>> {
    let (group, plural) = key.resource.split_once('/')?;
    api.registry
        .all()
        .into_iter()
        .find(|t| t.group == group && t.plural == plural)
}

fn ns_of(key: &ObjKey) -> Option<&str> {
    (!key.namespace.is_empty()).then_some(key.namespace.as_str())
}

fn delete_key(api: &Api, key: &ObjKey, propagation: Propagation) -> Result<(), ApiError> {
    let Some(rt) = resource_type(api, key) else {
        return Ok(());
    };
    let opts = DeleteOptions {
        propagation: Some(propagation),
        ..Default::default()
    };
    match api.delete(&rt, ns_of(key), &key.name, &opts)? {
        Deleted::Gone(_) | Deleted::Pending(_) => Ok(()),
    }
}

/// Rewrite an object's metadata in place through the store (bypassing API validation:
/// this is the system, not a client).
fn edit_meta<F: FnOnce(&mut serde_json::Map<String, Value>)>(
    api: &Api,
    key: &ObjKey,
    f: F,
) -> Result<(), ApiError> {
    let Some(rt) = resource_type(api, key) else {
        return Ok(());
    };
    let Some(cur) = api.store.get(key) else {
        return Ok(());
    };
    let mut v = cur.value()?;
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        f(m);
    }
    api.update(
        &rt,
        ns_of(key),
        &key.name,
        v,
        crate::api::Subresource::Main,
        &crate::api::WriteOptions {
            field_manager: Some("kube-controller-manager".into()),
            ..Default::default()
        },
    )
    .map(|_| ())
}

fn remove_finalizer(api: &Api, key: &ObjKey, fin: &str) -> Result<(), ApiError> {
    edit_meta(api, key, |m| {
        if let Some(Value::Array(f)) = m.get_mut("finalizers") {
            f.retain(|x| x.as_str() != Some(fin));
            if f.is_empty() {
                m.remove("finalizers");
            }
        }
    })
}

fn drop_owner_ref(api: &Api, key: &ObjKey, uid: &str) -> Result<(), ApiError> {
    edit_meta(api, key, |m| {
        if let Some(Value::Array(refs)) = m.get_mut("ownerReferences") {
            refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(uid));
            if refs.is_empty() {
                m.remove("ownerReferences");
            }
        }
    })
}

fn orphan_dependents(api: &Api, owner: &Stored) -> Result<(), ApiError> {
    for dep in api.store.dependents(&owner.uid) {
        drop_owner_ref(api, &dep, &owner.uid)?;
    }
    remove_finalizer(api, &owner.key, ORPHAN)
}

fn terminate_namespace(api: &Api, ns: &str) {
    let keys = api.store.keys_in_namespace(ns);
    if keys.is_empty() {
        let key = ObjKey::new("/namespaces", "", ns);
        let Some(rt) = resource_type(api, &key) else {
            return;
        };
        let Some(cur) = api.store.get(&key) else {
            return;
        };
        let Ok(mut v) = cur.value() else { return };
        let blocked = v
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if !blocked {
            return;
        }
        if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
            spec.remove("finalizers");
        }
        // Clearing the last spec finalizer of a terminating namespace removes it (the
        // `finalize` subresource in Kubernetes).
        let r = api.store.write(&key, |_, _| {
            let no_meta_finalizers = v
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(|a| a.is_empty());
            if no_meta_finalizers {
                Ok(crate::store::Write::Delete)
            } else {
                Ok(crate::store::Write::Put(v))
            }
        });
        if let Err(e) = r {
            tracing::warn!("namespace controller: finalize {ns}: {e}");
        }
        let _ = rt;
        return;
    }
    for key in keys {
        if let Some(s) = api.store.get(&key) {
            let deleting = s
                .value()
                .ok()
                .and_then(|v| v.pointer("/metadata/deletionTimestamp").cloned())
                .is_some();
            if !deleting {
                log_err(
                    "delete namespaced object",
                    &key,
                    delete_key(api, &key, Propagation::Background),
                );
            }
        }
    }
}
