//! The Deployment controller, following Kubernetes' `deployment_controller` closely
//! because Mooring's health assessment and `kubectl rollout status` read exactly the
//! fields it writes.
//!
//! - One ReplicaSet per pod template, named `{deployment}-{pod-template-hash}`; the hash
//!   ([`super::util::template_hash`]) is FNV-32a over the canonical template JSON (plus
//!   `status.collisionCount` after a name collision), encoded like Kubernetes does, and is
//!   added as the `pod-template-hash` label to the ReplicaSet's selector and template.
//! - Revisions: `deployment.kubernetes.io/revision` on the new ReplicaSet is one more
//!   than the highest old one (a rollback re-numbers the old ReplicaSet), and is mirrored
//!   on the Deployment.
//! - RollingUpdate scales the new ReplicaSet up to `replicas + maxSurge` total Pods and old
//!   ones down while keeping `replicas - maxUnavailable` available ([`resolve_fenceposts`]:
//!   surge rounds up, unavailable rounds down, both zero means one unavailable). Recreate
//!   scales old ReplicaSets to zero and creates the new one once their Pods are gone.
//! - `spec.paused` stops rollouts; old ReplicaSets beyond `revisionHistoryLimit` are
//!   deleted once a rollout is complete.
//! - Conditions `Available` (MinimumReplicasAvailable / MinimumReplicasUnavailable) and
//!   `Progressing` (NewReplicaSetCreated, FoundNewReplicaSet, ReplicaSetUpdated,
//!   NewReplicaSetAvailable, ProgressDeadlineExceeded, DeploymentPaused,
//!   DeploymentResumed). The deadline is `progressDeadlineSeconds` of simulated time
//!   since the last progress.

use super::util::{self, i64_at, str_at};
use super::{res, Controller, Ctx};
use crate::error::ApiError;
use crate::store::{Event, ObjKey};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
pub const HASH_LABEL: &str = "pod-template-hash";

/// `progressDeadlineSeconds` at this value means "no deadline".
const NO_DEADLINE: i64 = i32::MAX as i64;

#[derive(Default)]
pub struct DeploymentController {
    /// When each Deployment last made progress (precise; conditions only hold seconds).
    progress: HashMap<ObjKey, (String, Instant)>,
}

/// Resolve an int-or-percent against `total`: percentages round up or down.
pub fn scaled_value(v: Option<&Value>, total: i64, round_up: bool) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => match s.strip_suffix('%').map(str::trim).map(str::parse::<i64>) {
            Some(Ok(p)) => {
                let x = p * total;
                if round_up {
                    (x + 99).div_euclid(100)
                } else {
                    x.div_euclid(100)
                }
            }
            _ => s.parse().unwrap_or(0),
        },
        _ => 0,
    }
}

/// `(maxSurge, maxUnavailable)` as absolute numbers, as Kubernetes' `ResolveFenceposts`.
pub fn resolve_fenceposts(
    max_surge: Option<&Value>,
    max_unavailable: Option<&Value>,
    replicas: i64,
) -> (i64, i64) {
    let surge = scaled_value(max_surge, replicas, true).max(0);
    let mut unavailable = scaled_value(max_unavailable, replicas, false).max(0);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    (surge, unavailable)
}

fn revision_of(rs: &Value) -> i64 {
    util::annotation(rs, REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

fn spec_replicas(rs: &Value) -> i64 {
    i64_at(rs, "/spec/replicas").unwrap_or(0)
}

fn status_n(rs: &Value, f: &str) -> i64 {
    rs.pointer("/status")
        .and_then(|s| s.get(f))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// Whether two pod templates are equal apart from the `pod-template-hash` label.
pub fn equal_ignore_hash(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut c = v.clone();
        if let Some(l) = c
            .pointer_mut("/metadata/labels")
            .and_then(Value::as_object_mut)
        {
            l.remove(HASH_LABEL);
        }
        c
    };
    strip(a) == strip(b)
}

fn created(v: &Value) -> (String, String) {
    (
        str_at(v, "/metadata/creationTimestamp")
            .unwrap_or_default()
            .to_string(),
        util::name_of(v).to_string(),
    )
}

fn condition(t: &str, status: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": t, "status": status, "lastUpdateTime": now, "lastTransitionTime": now,
           "reason": reason, "message": message})
}

/// Annotations copied from the Deployment to its ReplicaSets.
fn copied_annotations(d: &Value) -> Map<String, Value> {
    let mut a = d
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for k in [
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        "deployment.kubernetes.io/revision-history",
        DESIRED_REPLICAS,
        MAX_REPLICAS,
        "deprecated.deployment.rollback.to",
    ] {
        a.remove(k);
    }
    a
}

/// Reported as the source of the Deployment controller's Events.
const COMPONENT: &str = "deployment-controller";

struct Plan<'a> {
    ctx: &'a Ctx,
    d: &'a Value,
    replicas: i64,
    surge: i64,
}

impl Plan<'_> {
    /// Set an RS's replicas (and the desired/max annotations) when they differ.
    fn scale(&self, rs: &mut Value, n: i64) -> Result<(), ApiError> {
        let desired = self.replicas.to_string();
        let max = (self.replicas + self.surge).to_string();
        if spec_replicas(rs) == n
            && util::annotation(rs, DESIRED_REPLICAS) == Some(desired.as_str())
            && util::annotation(rs, MAX_REPLICAS) == Some(max.as_str())
        {
            return Ok(());
        }
        let old = spec_replicas(rs);
        let mut new = rs.clone();
        new["spec"]["replicas"] = json!(n);
        set_annotation(&mut new, DESIRED_REPLICAS, &desired);
        set_annotation(&mut new, MAX_REPLICAS, &max);
        *rs = util::write_main(self.ctx, &self.ctx.replicasets, rs, new)?;
        if old != n {
            let op = if old < n { "up" } else { "down" };
            self.ctx.recorder.normal(
                COMPONENT,
                self.d,
                "ScalingReplicaSet",
                &format!(
                    "Scaled {op} replica set {} to {n} from {old}",
                    util::name_of(rs)
                ),
            );
        }
        Ok(())
    }

    fn create_rs(&self, hash: &str, revision: i64, replicas: i64) -> Result<Value, ApiError> {
        let d = self.d;
        let mut template = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
        template["metadata"]["labels"][HASH_LABEL] = json!(hash);
        let mut selector = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
        selector["matchLabels"][HASH_LABEL] = json!(hash);
        let mut ann = copied_annotations(d);
        ann.insert(DESIRED_REPLICAS.into(), json!(self.replicas.to_string()));
        ann.insert(
            MAX_REPLICAS.into(),
            json!((self.replicas + self.surge).to_string()),
        );
        ann.insert(REVISION.into(), json!(revision.to_string()));
        let mut spec = json!({"replicas": replicas, "selector": selector, "template": template});
        if let Some(m) = d.pointer("/spec/minReadySeconds") {
            spec["minReadySeconds"] = m.clone();
        }
        let rs = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": format!("{}-{hash}", util::name_of(d)),
                "namespace": str_at(d, "/metadata/namespace"),
                "labels": template["metadata"]["labels"].clone(),
                "annotations": ann,
                "ownerReferences": [util::owner_ref(d)],
            },
            "spec": spec,
        });
        let created = self.ctx.api.create(
            &self.ctx.replicasets,
            str_at(d, "/metadata/namespace"),
            rs,
            &self.ctx.wo,
        )?;
        if replicas > 0 {
            self.ctx.recorder.normal(
                COMPONENT,
                d,
                "ScalingReplicaSet",
                &format!(
                    "Scaled up replica set {} to {replicas} from 0",
                    util::name_of(&created)
                ),
            );
        }
        Ok(created)
    }
}

fn set_annotation(v: &mut Value, k: &str, val: &str) {
    if !v
        .pointer("/metadata/annotations")
        .is_some_and(Value::is_object)
    {
        v["metadata"]["annotations"] = json!({});
    }
    v["metadata"]["annotations"][k] = json!(val);
}

impl Controller for DeploymentController {
    fn name(&self) -> &'static str {
        "deployment"
    }

    fn keys_for(&mut self, ctx: &Ctx, ev: &Event, out: &mut Vec<ObjKey>) {
        match ev.object.key.resource.as_str() {
            res::DEPLOYMENTS => out.push(ev.object.key.clone()),
            res::REPLICASETS => util::push_owner(ctx, &ev.object, res::DEPLOYMENTS, out),
            // Recreate waits for old Pods to be gone.
            res::PODS if ev.kind == crate::store::EventType::Deleted => {
                for uid in &ev.object.owners {
                    if let Some(rs) = ctx.api.store.by_uid(uid) {
                        if rs.key.resource == res::REPLICASETS {
                            util::push_owner(ctx, &rs, res::DEPLOYMENTS, out);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn all_keys(&mut self, ctx: &Ctx) -> Vec<ObjKey> {
        util::all_keys(ctx, res::DEPLOYMENTS)
    }

    fn reconcile(&mut self, ctx: &Ctx, key: &ObjKey) -> Result<Option<Duration>, ApiError> {
        let Some(d) = util::get(ctx, key)? else {
            self.progress.remove(key);
            return Ok(None);
        };
        if util::is_deleting(&d) {
            return Ok(None);
        }
        let uid = str_at(&d, "/metadata/uid").unwrap_or_default().to_string();
        let now = mooring_core::time::now_rfc3339();
        let replicas = i64_at(&d, "/spec/replicas").unwrap_or(1).max(0);
        let rolling = str_at(&d, "/spec/strategy/type") != Some("Recreate");
        let (surge, max_unavailable) = if rolling {
            let (s, u) = resolve_fenceposts(
                d.pointer("/spec/strategy/rollingUpdate/maxSurge"),
                d.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
                replicas,
            );
            (s, u.min(replicas))
        } else {
            (0, 0)
        };
        let paused = d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true);
        let template = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let collision = i64_at(&d, "/status/collisionCount").map(|c| c.max(0) as u32);
        let hash = util::template_hash(&template, collision);

        let mut all: Vec<Value> = util::owned(ctx, &uid, res::REPLICASETS)
            .into_iter()
            .filter(|rs| !util::is_deleting(rs))
            .collect();
        all.sort_by_key(created);
        let new_idx = all.iter().position(|rs| {
            rs.pointer("/spec/template")
                .is_some_and(|t| equal_ignore_hash(t, &template))
        });
        let mut new_rs = new_idx.map(|i| all.remove(i));
        let mut old = all;
        let max_old_rev = old.iter().map(revision_of).max().unwrap_or(0);
        let mut conds = util::conditions(&d);
        let mut progressed = false;
        let mut collision_bump = false;
        let plan = Plan {
            ctx,
            d: &d,
            replicas,
            surge,
        };

        // The new ReplicaSet carries the latest revision.
        if let Some(rs) = new_rs.as_mut() {
            if revision_of(rs) <= max_old_rev {
                let mut n = rs.clone();
                set_annotation(&mut n, REVISION, &(max_old_rev + 1).to_string());
                *rs = util::write_main(ctx, &ctx.replicasets, rs, n)?;
            }
            if !paused && util::find_condition(&conds, "Progressing").is_none() {
                util::set_condition(
                    &mut conds,
                    condition(
                        "Progressing",
                        "True",
                        "FoundNewReplicaSet",
                        &format!("Found new replica set \"{}\"", util::name_of(rs)),
                        &now,
                    ),
                );
                progressed = true;
            }
        }

        if !paused {
            let mut create =
                |want: i64, conds: &mut Vec<Value>| -> Result<Option<Value>, ApiError> {
                    match plan.create_rs(&hash, max_old_rev + 1, want) {
                        Ok(rs) => {
                            util::remove_condition(conds, "Progressing");
                            util::set_condition(
                                conds,
                                condition(
                                    "Progressing",
                                    "True",
                                    "NewReplicaSetCreated",
                                    &format!("Created new replica set \"{}\"", util::name_of(&rs)),
                                    &now,
                                ),
                            );
                            Ok(Some(rs))
                        }
                        Err(ApiError::AlreadyExists { .. }) => {
                            // A ReplicaSet of that name with another template: change the hash.
                            collision_bump = true;
                            Ok(None)
                        }
                        Err(e) => Err(e),
                    }
                };
            if rolling {
                let new_replicas = |new: Option<&Value>, old: &[Value]| -> i64 {
                    let cur_new = new.map(spec_replicas).unwrap_or(0);
                    if cur_new >= replicas {
                        return replicas;
                    }
                    let current: i64 = old.iter().map(spec_replicas).sum::<i64>() + cur_new;
                    let max_total = replicas + surge;
                    if current >= max_total {
                        return cur_new;
                    }
                    cur_new + (max_total - current).min(replicas - cur_new)
                };
                match new_rs.as_mut() {
                    None => {
                        let want = new_replicas(None, &old);
                        new_rs = create(want, &mut conds)?;
                        progressed |= new_rs.is_some();
                    }
                    Some(rs) => {
                        let want = new_replicas(Some(rs), &old);
                        plan.scale(rs, want)?;
                    }
                }
                if let Some(rs) = new_rs.as_ref() {
                    scale_down_old(&plan, rs, &mut old, max_unavailable)?;
                }
            } else {
                for rs in old.iter_mut() {
                    plan.scale(rs, 0)?;
                }
                let old_running = old.iter().any(|rs| {
                    let ruid = str_at(rs, "/metadata/uid").unwrap_or_default();
                    util::owned(ctx, ruid, res::PODS)
                        .iter()
                        .any(util::pod::is_active)
                });
                if !old_running {
                    match new_rs.as_mut() {
                        None => {
                            new_rs = create(replicas, &mut conds)?;
                            progressed |= new_rs.is_some();
                        }
                        Some(rs) => plan.scale(rs, replicas)?,
                    }
                }
            }
        } else if let Some(rs) = new_rs.as_mut() {
            // Paused: plain scaling still applies when nothing else runs.
            if old.iter().all(|o| spec_replicas(o) == 0) {
                plan.scale(rs, replicas)?;
            }
        }

        // Status, from the ReplicaSets' statuses.
        let sum = |f: &str| -> i64 {
            old.iter()
                .chain(new_rs.iter())
                .map(|rs| status_n(rs, f))
                .sum()
        };
        let status_replicas = sum("replicas");
        let updated = new_rs
            .as_ref()
            .map(|rs| status_n(rs, "replicas"))
            .unwrap_or(0);
        let ready = sum("readyReplicas");
        let available = sum("availableReplicas");
        let generation = i64_at(&d, "/metadata/generation").unwrap_or(1);
        let old_status = d.get("status").cloned().unwrap_or(json!({}));
        let new_name = new_rs.as_ref().map(|rs| util::name_of(rs).to_string());

        let min_available = replicas - max_unavailable;
        if available >= min_available {
            util::set_condition(
                &mut conds,
                condition(
                    "Available",
                    "True",
                    "MinimumReplicasAvailable",
                    "Deployment has minimum availability.",
                    &now,
                ),
            );
        } else {
            util::set_condition(
                &mut conds,
                condition(
                    "Available",
                    "False",
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                    &now,
                ),
            );
        }

        let deadline = i64_at(&d, "/spec/progressDeadlineSeconds").unwrap_or(600);
        let has_deadline = deadline != NO_DEADLINE;
        let mut wake = None;
        let cond_reason = |conds: &[Value]| {
            util::find_condition(conds, "Progressing")
                .and_then(|c| c.get("reason"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        if paused {
            if cond_reason(&conds).as_deref() != Some("DeploymentPaused") {
                util::set_condition(
                    &mut conds,
                    condition(
                        "Progressing",
                        "Unknown",
                        "DeploymentPaused",
                        "Deployment is paused",
                        &now,
                    ),
                );
                progressed = true;
            }
        } else if has_deadline {
            if cond_reason(&conds).as_deref() == Some("DeploymentPaused") {
                util::set_condition(
                    &mut conds,
                    condition(
                        "Progressing",
                        "Unknown",
                        "DeploymentResumed",
                        "Deployment is resumed",
                        &now,
                    ),
                );
                progressed = true;
            }
            let rs_name = new_name.clone().unwrap_or_default();
            let is_complete = status_replicas == updated
                && cond_reason(&conds).as_deref() == Some("NewReplicaSetAvailable");
            let complete =
                updated == replicas && status_replicas == replicas && available == replicas;
            let old_updated = old_status
                .get("updatedReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let old_total = old_status
                .get("replicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let old_ready = old_status
                .get("readyReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let old_available = old_status
                .get("availableReplicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let making_progress = updated > old_updated
                || (old_total - old_updated) > (status_replicas - updated)
                || ready > old_ready
                || available > old_available;
            if !is_complete {
                if complete {
                    util::set_condition(
                        &mut conds,
                        condition(
                            "Progressing",
                            "True",
                            "NewReplicaSetAvailable",
                            &format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
                            &now,
                        ),
                    );
                    progressed = true;
                } else if making_progress {
                    let msg = if new_name.is_some() {
                        format!("ReplicaSet \"{rs_name}\" is progressing.")
                    } else {
                        format!("Deployment \"{}\" is progressing.", key.name)
                    };
                    let mut c = condition("Progressing", "True", "ReplicaSetUpdated", &msg, &now);
                    if let Some(cur) = util::find_condition(&conds, "Progressing") {
                        if cur.get("status").and_then(Value::as_str) == Some("True") {
                            if let Some(ltt) = cur.get("lastTransitionTime") {
                                c["lastTransitionTime"] = ltt.clone();
                            }
                        }
                    }
                    util::remove_condition(&mut conds, "Progressing");
                    conds.push(c);
                    progressed = true;
                } else if cond_reason(&conds).as_deref() != Some("ProgressDeadlineExceeded") {
                    if let Some(cur) = util::find_condition(&conds, "Progressing") {
                        let limit = ctx.opts.scaled(deadline.max(0) as f64);
                        let since = match self.progress.get(key) {
                            Some((u, t)) if *u == uid => t.elapsed(),
                            _ => mooring_core::time::since(
                                cur.get("lastUpdateTime").and_then(Value::as_str),
                                mooring_core::time::now(),
                            ),
                        };
                        if since >= limit {
                            util::set_condition(
                                &mut conds,
                                condition(
                                    "Progressing",
                                    "False",
                                    "ProgressDeadlineExceeded",
                                    &format!("ReplicaSet \"{rs_name}\" has timed out progressing."),
                                    &now,
                                ),
                            );
                        } else {
                            wake = Some(limit - since + Duration::from_millis(5));
                        }
                    }
                }
            }
        }
        if progressed {
            self.progress
                .insert(key.clone(), (uid.clone(), Instant::now()));
            // Progress restarts the deadline.
            if has_deadline && !paused {
                wake = Some(ctx.opts.scaled(deadline.max(0) as f64) + Duration::from_millis(5));
            }
        }
        let order = ["Available", "Progressing", "ReplicaFailure"];
        conds.sort_by_key(|c| {
            order
                .iter()
                .position(|o| c.get("type").and_then(Value::as_str) == Some(o))
                .unwrap_or(order.len())
        });

        // History cleanup once the rollout is complete.
        let complete_now =
            updated == replicas && status_replicas == replicas && available == replicas;
        if complete_now && !paused {
            let limit = i64_at(&d, "/spec/revisionHistoryLimit")
                .unwrap_or(10)
                .max(0) as usize;
            let mut idle: Vec<&Value> = old
                .iter()
                .filter(|rs| spec_replicas(rs) == 0 && status_n(rs, "replicas") == 0)
                .collect();
            idle.sort_by_key(|rs| revision_of(rs));
            let excess = idle.len().saturating_sub(limit);
            for rs in idle.into_iter().take(excess) {
                match ctx.api.delete(
                    &ctx.replicasets,
                    str_at(rs, "/metadata/namespace"),
                    util::name_of(rs),
                    &Default::default(),
                ) {
                    Ok(_) | Err(ApiError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }

        // The Deployment mirrors its new ReplicaSet's revision.
        let mut d = d.clone();
        if let Some(rs) = new_rs.as_ref() {
            let rev = revision_of(rs).to_string();
            if util::annotation(&d, REVISION) != Some(rev.as_str()) {
                let mut n = d.clone();
                set_annotation(&mut n, REVISION, &rev);
                d = util::write_main(ctx, &ctx.deployments, &d, n)?;
            }
        }

        let mut status = util::omit_empty(json!({
            "observedGeneration": generation,
            "replicas": status_replicas,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            // Kubernetes subtracts from the ReplicaSets' desired (spec) replicas.
            "unavailableReplicas": (old.iter().chain(new_rs.iter()).map(spec_replicas).sum::<i64>() - available).max(0),
        }));
        status["conditions"] = json!(conds);
        let cc = collision.map(i64::from).unwrap_or(0) + i64::from(collision_bump);
        if cc > 0 {
            status["collisionCount"] = json!(cc);
        }
        util::write_status(ctx, &ctx.deployments, &d, status)?;
        if collision_bump {
            return Ok(Some(Duration::from_millis(10)));
        }
        Ok(wake)
    }
}

/// Kubernetes' `reconcileOldReplicaSets`: first drop old Pods that are not available,
/// then scale old ReplicaSets down as far as `maxUnavailable` allows.
fn scale_down_old(
    plan: &Plan<'_>,
    new_rs: &Value,
    old: &mut [Value],
    max_unavailable: i64,
) -> Result<(), ApiError> {
    let old_count: i64 = old.iter().map(spec_replicas).sum();
    if old_count == 0 {
        return Ok(());
    }
    let all_count = old_count + spec_replicas(new_rs);
    let min_available = plan.replicas - max_unavailable;
    let new_unavailable = spec_replicas(new_rs) - status_n(new_rs, "availableReplicas");
    let max_scaled_down = all_count - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Ok(());
    }
    // Unhealthy replicas first (oldest ReplicaSets first).
    let mut cleaned = 0;
    for rs in old.iter_mut() {
        if cleaned >= max_scaled_down {
            break;
        }
        let n = spec_replicas(rs);
        let avail = status_n(rs, "availableReplicas");
        if n == 0 || n <= avail {
            continue;
        }
        let down = (max_scaled_down - cleaned).min(n - avail);
        plan.scale(rs, n - down)?;
        cleaned += down;
    }
    // Then available ones, down to the minimum availability.
    let available: i64 = old
        .iter()
        .map(|rs| status_n(rs, "availableReplicas").min(spec_replicas(rs)))
        .sum::<i64>()
        + status_n(new_rs, "availableReplicas");
    if available <= min_available {
        return Ok(());
    }
    let total = available - min_available;
    let mut done = 0;
    for rs in old.iter_mut() {
        if done >= total {
            break;
        }
        let n = spec_replicas(rs);
        if n == 0 {
            continue;
        }
        let down = n.min(total - done);
        plan.scale(rs, n - down)?;
        done += down;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surge_rounds_up_unavailable_rounds_down() {
        assert_eq!(
            resolve_fenceposts(Some(&json!("25%")), Some(&json!("25%")), 10),
            (3, 2)
        );
        assert_eq!(
            resolve_fenceposts(Some(&json!("25%")), Some(&json!("25%")), 1),
            (1, 0)
        );
        assert_eq!(
            resolve_fenceposts(Some(&json!("25%")), Some(&json!("25%")), 4),
            (1, 1)
        );
        assert_eq!(
            resolve_fenceposts(Some(&json!(2)), Some(&json!(0)), 5),
            (2, 0)
        );
        assert_eq!(
            resolve_fenceposts(Some(&json!(0)), Some(&json!(0)), 5),
            (0, 1)
        );
        assert_eq!(
            resolve_fenceposts(Some(&json!("0%")), Some(&json!("10%")), 5),
            (0, 1)
        );
        assert_eq!(
            resolve_fenceposts(Some(&json!("50%")), Some(&json!("50%")), 3),
            (2, 1)
        );
    }

    #[test]
    fn hash_ignores_label_order_and_template_equality_ignores_hash() {
        let a = json!({"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}});
        let mut b = a.clone();
        b["metadata"]["labels"][HASH_LABEL] = json!("abc");
        assert!(equal_ignore_hash(&a, &b));
        let mut c = a.clone();
        c["spec"]["containers"][0]["image"] = json!("y");
        assert!(!equal_ignore_hash(&a, &c));
        assert_eq!(
            util::template_hash(&a, None),
            util::template_hash(&a.clone(), None)
        );
    }
}
