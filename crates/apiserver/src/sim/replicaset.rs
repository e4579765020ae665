//! The ReplicaSet controller: keep `spec.replicas` active Pods, report how many are
//! ready and available.
//!
//! Pods are named `{rs}-{5 chars}` (what `generateName` gives in Kubernetes), carry the
//! template's labels and annotations and a controller owner reference. Scaling down
//! deletes the least useful Pods first (unscheduled, pending, not ready, most restarts,
//! newest), as Kubernetes does.

use super::util::{self, i64_at, pod};
use super::{res, Controller, Ctx};
use crate::error::ApiError;
use crate::store::{Event, ObjKey};
use serde_json::{json, Value};
use std::time::Duration;

pub struct ReplicaSetController;

impl Controller for ReplicaSetController {
    fn name(&self) -> &'static str {
        "replicaset"
    }

    fn keys_for(&mut self, ctx: &Ctx, ev: &Event, out: &mut Vec<ObjKey>) {
        match ev.object.key.resource.as_str() {
            res::REPLICASETS => out.push(ev.object.key.clone()),
            res::PODS => util::push_owner(ctx, &ev.object, res::REPLICASETS, out),
            _ => {}
        }
    }

    fn all_keys(&mut self, ctx: &Ctx) -> Vec<ObjKey> {
        util::all_keys(ctx, res::REPLICASETS)
    }

    fn reconcile(&mut self, ctx: &Ctx, key: &ObjKey) -> Result<Option<Duration>, ApiError> {
        let Some(rs) = util::get(ctx, key)? else {
            return Ok(None);
        };
        let uid = util::str_at(&rs, "/metadata/uid")
            .unwrap_or_default()
            .to_string();
        let mut pods: Vec<Value> = util::owned(ctx, &uid, res::PODS)
            .into_iter()
            .filter(pod::is_active)
            .collect();
        if !util::is_deleting(&rs) {
            let want = i64_at(&rs, "/spec/replicas").unwrap_or(1).max(0) as usize;
            let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
            while pods.len() < want {
                let name = format!("{}-{}", key.name, util::random_suffix());
                let p = pod::from_template(&template, &rs, &name, &key.namespace, &[]);
                match pod::create(ctx, &key.namespace, p) {
                    Ok(created) => pods.push(created),
                    Err(ApiError::AlreadyExists { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
            if pods.len() > want {
                pods.sort_by_key(pod::deletion_rank);
                let excess = pods.len() - want;
                for p in pods.drain(..excess) {
                    pod::delete(ctx, &p)?;
                }
            }
        }
        let min_ready = ctx
            .opts
            .scaled(i64_at(&rs, "/spec/minReadySeconds").unwrap_or(0).max(0) as f64);
        let mut wake: Option<Duration> = None;
        let ready = pods.iter().filter(|p| pod::is_ready(p)).count();
        let available = pods
            .iter()
            .filter(|p| match pod::available(p, min_ready) {
                Ok(()) => true,
                Err(w) => {
                    if let Some(w) = w {
                        wake = Some(wake.map_or(w, |x| x.min(w)));
                    }
                    false
                }
            })
            .count();
        let template_labels = rs
            .pointer("/spec/template/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let fully_labeled = pods
            .iter()
            .filter(|p| {
                let l = util::labels(p);
                template_labels.iter().all(|(k, v)| l.get(k) == Some(v))
            })
            .count();
        let mut status = json!({
            "replicas": pods.len(),
            "fullyLabeledReplicas": fully_labeled,
            "readyReplicas": ready,
            "availableReplicas": available,
            "observedGeneration": i64_at(&rs, "/metadata/generation").unwrap_or(1),
        });
        // `replicas` is always present; the others are omitempty.
        status = util::omit_empty(status);
        status["replicas"] = json!(pods.len());
        if let Some(c) = rs
            .pointer("/status/conditions")
            .filter(|c| c.as_array().is_some_and(|a| !a.is_empty()))
        {
            status["conditions"] = c.clone();
        }
        util::write_status(ctx, &ctx.replicasets, &rs, status)?;
        Ok(wake)
    }
}
