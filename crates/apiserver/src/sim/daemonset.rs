//! The DaemonSet controller: one Pod per Ready simulated node (bound directly with
//! `spec.nodeName`; `nodeSelector` is honoured against node labels), named
//! `{ds}-{5 chars}` and labelled `controller-revision-hash` / `pod-template-generation`.
//! A RollingUpdate replaces Pods of an older template while no more than
//! `maxUnavailable` (rounded up from a percentage) are unavailable; `OnDelete` waits.

use super::deployment::scaled_value;
use super::util::{self, i64_at, pod, str_at};
use super::{res, Controller, Ctx};
use crate::error::ApiError;
use crate::store::{Event, ObjKey};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

pub struct DaemonSetController;

const REVISION_LABEL: &str = "controller-revision-hash";

fn matches_node(ctx: &Ctx, ds: &Value, node: &str) -> bool {
    let Some(sel) = ds
        .pointer("/spec/template/spec/nodeSelector")
        .and_then(Value::as_object)
    else {
        return true;
    };
    let Some(n) = ctx.api.store.get(&ObjKey::new(res::NODES, "", node)) else {
        return false;
    };
    sel.iter().all(|(k, v)| n.labels.get(k) == Some(v))
}

impl Controller for DaemonSetController {
    fn name(&self) -> &'static str {
        "daemonset"
    }

    fn keys_for(&mut self, ctx: &Ctx, ev: &Event, out: &mut Vec<ObjKey>) {
        match ev.object.key.resource.as_str() {
            res::DAEMONSETS => out.push(ev.object.key.clone()),
            res::PODS => util::push_owner(ctx, &ev.object, res::DAEMONSETS, out),
            res::NODES => out.extend(util::all_keys(ctx, res::DAEMONSETS)),
            _ => {}
        }
    }

    fn all_keys(&mut self, ctx: &Ctx) -> Vec<ObjKey> {
        util::all_keys(ctx, res::DAEMONSETS)
    }

    fn reconcile(&mut self, ctx: &Ctx, key: &ObjKey) -> Result<Option<Duration>, ApiError> {
        let Some(ds) = util::get(ctx, key)? else {
            return Ok(None);
        };
        if util::is_deleting(&ds) {
            return Ok(None);
        }
        let uid = str_at(&ds, "/metadata/uid").unwrap_or_default().to_string();
        let generation = i64_at(&ds, "/metadata/generation").unwrap_or(1);
        let template = ds.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let collision = i64_at(&ds, "/status/collisionCount").map(|c| c.max(0) as u32);
        let hash = util::template_hash(&template, collision);
        let nodes: Vec<String> = util::ready_nodes(ctx)
            .into_iter()
            .filter(|n| matches_node(ctx, &ds, n))
            .collect();
        let mut by_node: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for p in util::owned(ctx, &uid, res::PODS) {
            if util::is_deleting(&p) {
                continue;
            }
            if matches!(pod::phase(&p), "Succeeded" | "Failed") {
                pod::delete(ctx, &p)?;
                continue;
            }
            let node = str_at(&p, "/spec/nodeName").unwrap_or_default().to_string();
            by_node.entry(node).or_default().push(p);
        }
        // Pods on nodes that should not run one.
        for (node, ps) in by_node.iter_mut() {
            if !nodes.contains(node) {
                for p in ps.drain(..) {
                    pod::delete(ctx, &p)?;
                }
            } else if ps.len() > 1 {
                ps.sort_by_key(pod::deletion_rank);
                let extra = ps.len() - 1;
                for p in ps.drain(..extra) {
                    pod::delete(ctx, &p)?;
                }
            }
        }
        by_node.retain(|_, ps| !ps.is_empty());
        for node in &nodes {
            if by_node.contains_key(node) {
                continue;
            }
            let name = format!("{}-{}", key.name, util::random_suffix());
            let mut p = pod::from_template(
                &template,
                &ds,
                &name,
                &key.namespace,
                &[
                    (REVISION_LABEL, hash.clone()),
                    ("pod-template-generation", generation.to_string()),
                ],
            );
            p["spec"]["nodeName"] = json!(node);
            let created = pod::create(ctx, &key.namespace, p)?;
            by_node.insert(node.clone(), vec![created]);
        }
        let pods: Vec<Value> = by_node.into_values().flatten().collect();
        let desired = nodes.len() as i64;
        let min_ready = ctx
            .opts
            .scaled(i64_at(&ds, "/spec/minReadySeconds").unwrap_or(0).max(0) as f64);
        let mut wake = None;
        let is_available =
            |p: &Value, wake: &mut Option<Duration>| match pod::available(p, min_ready) {
                Ok(()) => true,
                Err(w) => {
                    if let Some(w) = w {
                        *wake = Some(wake.map_or(w, |x: Duration| x.min(w)));
                    }
                    false
                }
            };
        let mut available = pods.iter().filter(|p| is_available(p, &mut wake)).count() as i64;

        // Rolling update.
        if str_at(&ds, "/spec/updateStrategy/type") != Some("OnDelete") {
            let max_unavailable = scaled_value(
                ds.pointer("/spec/updateStrategy/rollingUpdate/maxUnavailable"),
                desired,
                true,
            )
            .max(1);
            let old: Vec<&Value> = pods
                .iter()
                .filter(|p| {
                    util::labels(p).get(REVISION_LABEL).and_then(Value::as_str)
                        != Some(hash.as_str())
                })
                .collect();
            let mut unavailable = desired - available;
            for p in old {
                if !is_available(p, &mut None) {
                    pod::delete(ctx, p)?;
                } else if unavailable < max_unavailable {
                    pod::delete(ctx, p)?;
                    unavailable += 1;
                    available -= 1;
                }
            }
        }

        let ready = pods.iter().filter(|p| pod::is_ready(p)).count() as i64;
        let updated = pods
            .iter()
            .filter(|p| {
                util::labels(p).get(REVISION_LABEL).and_then(Value::as_str) == Some(hash.as_str())
            })
            .count() as i64;
        let mut status = util::omit_empty(json!({
            "currentNumberScheduled": pods.len(),
            "numberMisscheduled": 0,
            "desiredNumberScheduled": desired,
            "numberReady": ready,
            "observedGeneration": generation,
            "updatedNumberScheduled": updated,
            "numberAvailable": available.max(0),
            "numberUnavailable": (desired - available).max(0),
        }));
        for f in [
            "currentNumberScheduled",
            "numberMisscheduled",
            "desiredNumberScheduled",
            "numberReady",
        ] {
            if status.get(f).is_none() {
                status[f] = json!(0);
            }
        }
        util::write_status(ctx, &ctx.daemonsets, &ds, status)?;
        Ok(wake)
    }
}
