//! The StatefulSet controller.
//!
//! Pods are `{sts}-{ordinal}` with the labels `controller-revision-hash`
//! (`{sts}-{template hash}`), `statefulset.kubernetes.io/pod-name` and
//! `apps.kubernetes.io/pod-index`, `hostname`/`subdomain` set, and one PVC per
//! `volumeClaimTemplates` entry named `{template}-{sts}-{ordinal}` mounted in place of the
//! volume of the same name. With `podManagementPolicy: OrderedReady` (the default) a Pod
//! is created only when all lower ordinals are Running and Ready, and scale-down removes
//! one Pod at a time from the highest ordinal; `Parallel` creates and deletes at once.
//! A RollingUpdate replaces Pods of an older revision one at a time from the highest
//! ordinal down to `partition`, only while every Pod is Ready; `OnDelete` waits for the
//! user. Without ControllerRevision objects, a Pod recreated below the partition gets the
//! current template, not the old one.

use super::util::{self, i64_at, pod, str_at};
use super::{res, Controller, Ctx};
use crate::error::ApiError;
use crate::store::{Event, ObjKey};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

pub const REVISION_LABEL: &str = "controller-revision-hash";

pub struct StatefulSetController;

fn ordinal(sts_name: &str, pod_name: &str) -> Option<i64> {
    pod_name
        .strip_prefix(sts_name)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

fn revision(p: &Value) -> String {
    util::labels(p)
        .get(REVISION_LABEL)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

impl Controller for StatefulSetController {
    fn name(&self) -> &'static str {
        "statefulset"
    }

    fn keys_for(&mut self, ctx: &Ctx, ev: &Event, out: &mut Vec<ObjKey>) {
        match ev.object.key.resource.as_str() {
            res::STATEFULSETS => out.push(ev.object.key.clone()),
            res::PODS => util::push_owner(ctx, &ev.object, res::STATEFULSETS, out),
            _ => {}
        }
    }

    fn all_keys(&mut self, ctx: &Ctx) -> Vec<ObjKey> {
        util::all_keys(ctx, res::STATEFULSETS)
    }

    fn reconcile(&mut self, ctx: &Ctx, key: &ObjKey) -> Result<Option<Duration>, ApiError> {
        let Some(sts) = util::get(ctx, key)? else {
            return Ok(None);
        };
        if util::is_deleting(&sts) {
            return Ok(None);
        }
        let name = key.name.as_str();
        let ns = key.namespace.as_str();
        let uid = str_at(&sts, "/metadata/uid")
            .unwrap_or_default()
            .to_string();
        let replicas = i64_at(&sts, "/spec/replicas").unwrap_or(1).max(0);
        let parallel = str_at(&sts, "/spec/podManagementPolicy") == Some("Parallel");
        let on_delete = str_at(&sts, "/spec/updateStrategy/type") == Some("OnDelete");
        let partition = i64_at(&sts, "/spec/updateStrategy/rollingUpdate/partition")
            .unwrap_or(0)
            .max(0);
        let template = sts.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let collision = i64_at(&sts, "/status/collisionCount").map(|c| c.max(0) as u32);
        let update_rev = format!("{name}-{}", util::template_hash(&template, collision));
        let current_rev = str_at(&sts, "/status/currentRevision")
            .unwrap_or(update_rev.as_str())
            .to_string();

        let mut pods: BTreeMap<i64, Value> = BTreeMap::new();
        for p in util::owned(ctx, &uid, res::PODS) {
            if let Some(i) = ordinal(name, util::name_of(&p)) {
                if util::is_deleting(&p) {
                    continue;
                }
                if matches!(pod::phase(&p), "Succeeded" | "Failed") {
                    // A terminated StatefulSet Pod is replaced.
                    pod::delete(ctx, &p)?;
                    continue;
                }
                pods.insert(i, p);
            }
        }

        // Create missing Pods (and their claims).
        for i in 0..replicas {
            if let Some(p) = pods.get(&i) {
                let running_ready = pod::phase(p) == "Running" && pod::is_ready(p);
                if !parallel && !running_ready {
                    break;
                }
                continue;
            }
            ensure_claims(ctx, &sts, i)?;
            let p = new_pod(&sts, &template, i, &update_rev);
            let created = pod::create(ctx, ns, p)?;
            pods.insert(i, created);
            if !parallel {
                break;
            }
        }

        // Scale down from the highest ordinal.
        let extra: Vec<i64> = pods
            .keys()
            .rev()
            .copied()
            .filter(|i| *i >= replicas)
            .collect();
        let all_ready = pods.values().all(pod::is_ready);
        for i in extra {
            if !parallel && !all_ready {
                break;
            }
            if let Some(p) = pods.remove(&i) {
                pod::delete(ctx, &p)?;
            }
            if !parallel {
                break;
            }
        }

        // Rolling update: replace the highest-ordinal Pod of an old revision.
        let complete_set = (0..replicas).all(|i| pods.contains_key(&i));
        if !on_delete && complete_set && pods.values().all(pod::is_ready) {
            if let Some((&i, p)) = pods
                .iter()
                .rev()
                .find(|(i, p)| **i >= partition && revision(p) != update_rev)
            {
                pod::delete(ctx, p)?;
                pods.remove(&i);
            }
        }

        // Status.
        let min_ready = ctx
            .opts
            .scaled(i64_at(&sts, "/spec/minReadySeconds").unwrap_or(0).max(0) as f64);
        let mut wake = None;
        let count = pods.len() as i64;
        let ready = pods.values().filter(|p| pod::is_ready(p)).count() as i64;
        let available = pods
            .values()
            .filter(|p| match pod::available(p, min_ready) {
                Ok(()) => true,
                Err(w) => {
                    if let Some(w) = w {
                        wake = Some(wake.map_or(w, |x: Duration| x.min(w)));
                    }
                    false
                }
            })
            .count() as i64;
        let updated = pods.values().filter(|p| revision(p) == update_rev).count() as i64;
        let mut current_rev = current_rev;
        let mut current = pods.values().filter(|p| revision(p) == current_rev).count() as i64;
        if updated == replicas && ready == replicas && count == replicas {
            current_rev = update_rev.clone();
            current = updated;
        }
        let mut status = util::omit_empty(json!({
            "observedGeneration": i64_at(&sts, "/metadata/generation").unwrap_or(1),
            "replicas": count,
            "readyReplicas": ready,
            "currentReplicas": current,
            "updatedReplicas": updated,
        }));
        status["replicas"] = json!(count);
        status["currentRevision"] = json!(current_rev);
        status["updateRevision"] = json!(update_rev);
        status["collisionCount"] = json!(collision.unwrap_or(0));
        status["availableReplicas"] = json!(available);
        util::write_status(ctx, &ctx.statefulsets, &sts, status)?;
        Ok(wake)
    }
}

fn claim_name(tmpl: &Value, sts: &str, i: i64) -> String {
    format!("{}-{sts}-{i}", util::name_of(tmpl))
}

fn new_pod(sts: &Value, template: &Value, i: i64, rev: &str) -> Value {
    let name = util::name_of(sts);
    let pod_name = format!("{name}-{i}");
    let ns = str_at(sts, "/metadata/namespace").unwrap_or_default();
    let mut p = pod::from_template(
        template,
        sts,
        &pod_name,
        ns,
        &[
            (REVISION_LABEL, rev.to_string()),
            ("statefulset.kubernetes.io/pod-name", pod_name.clone()),
            ("apps.kubernetes.io/pod-index", i.to_string()),
        ],
    );
    p["spec"]["hostname"] = json!(pod_name);
    if let Some(svc) = str_at(sts, "/spec/serviceName").filter(|s| !s.is_empty()) {
        p["spec"]["subdomain"] = json!(svc);
    }
    let claims = sts
        .pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !claims.is_empty() {
        let mut vols: Vec<Value> = p
            .pointer("/spec/volumes")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for c in &claims {
            let vname = util::name_of(c);
            vols.retain(|v| v.get("name").and_then(Value::as_str) != Some(vname));
            vols.push(json!({"name": vname, "persistentVolumeClaim": {"claimName": claim_name(c, name, i)}}));
        }
        p["spec"]["volumes"] = json!(vols);
    }
    p
}

/// Create the PVCs of ordinal `i` that do not exist yet.
fn ensure_claims(ctx: &Ctx, sts: &Value, i: i64) -> Result<(), ApiError> {
    let name = util::name_of(sts);
    let ns = str_at(sts, "/metadata/namespace").unwrap_or_default();
    let delete_with_set = str_at(
        sts,
        "/spec/persistentVolumeClaimRetentionPolicy/whenDeleted",
    ) == Some("Delete");
    let claims = sts
        .pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for c in claims {
        let cname = claim_name(&c, name, i);
        if ctx.api.get(&ctx.pvcs, Some(ns), &cname).is_ok() {
            continue;
        }
        let mut labels = util::labels(&c);
        if let Some(ml) = sts
            .pointer("/spec/selector/matchLabels")
            .and_then(Value::as_object)
        {
            labels.extend(ml.clone());
        }
        let mut meta = json!({"name": cname, "namespace": ns, "labels": labels});
        if let Some(a) = c.pointer("/metadata/annotations") {
            meta["annotations"] = a.clone();
        }
        if delete_with_set {
            meta["ownerReferences"] = json!([util::owner_ref(sts)]);
        }
        let pvc = json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": meta,
            "spec": c.get("spec").cloned().unwrap_or(json!({})),
        });
        let pod = format!("{name}-{i}");
        match ctx.api.create(&ctx.pvcs, Some(ns), pvc, &ctx.wo) {
            Ok(_) => ctx.recorder.normal(
                "statefulset-controller",
                sts,
                "SuccessfulCreate",
                &format!("create Claim {cname} Pod {pod} in StatefulSet {name} success"),
            ),
            Err(ApiError::AlreadyExists { .. }) => {}
            Err(e) => {
                ctx.recorder.warning(
                    "statefulset-controller",
                    sts,
                    "FailedCreate",
                    &format!("create Claim {cname} for Pod {pod} in StatefulSet {name} failed error: {e}"),
                );
                return Err(e);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_parse_only_own_pods() {
        assert_eq!(ordinal("web", "web-0"), Some(0));
        assert_eq!(ordinal("web", "web-12"), Some(12));
        assert_eq!(ordinal("web", "web-x"), None);
        assert_eq!(ordinal("web", "webby-1"), None);
    }

    #[test]
    fn pods_mount_their_claims() {
        let sts = json!({"metadata": {"name": "db", "namespace": "d", "uid": "u"},
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "spec": {"serviceName": "db", "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {}}]}});
        let t = json!({"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}});
        let p = new_pod(&sts, &t, 2, "db-abc");
        assert_eq!(p["metadata"]["name"], "db-2");
        assert_eq!(
            p["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
            "data-db-2"
        );
        assert_eq!(p["metadata"]["labels"][REVISION_LABEL], "db-abc");
        assert_eq!(p["spec"]["subdomain"], "db");
    }
}
