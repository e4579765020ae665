//! The Job controller: run `parallelism` Pods at a time until `completions` succeeded,
//! or give up after more than `backoffLimit` failed Pods.
//!
//! Finished Jobs get the conditions Kubernetes 1.31+ writes: `SuccessCriteriaMet` then
//! `Complete` (reason `CompletionsReached`), or `FailureTarget` then `Failed` (reason
//! `BackoffLimitExceeded`), plus `startTime`, `completionTime` and the Pod counters
//! (`active`, `ready`, `succeeded`, `failed`, `terminating`). Pods are `{job}-{5 chars}`;
//! terminated Pods are kept, as in Kubernetes. Not simulated: `Indexed` completion mode
//! (treated as NonIndexed), `activeDeadlineSeconds`, pod failure policies, the back-off
//! delay between retries, and `suspend` beyond not starting Pods.

use super::util::{self, i64_at, pod, str_at};
use super::{res, Controller, Ctx};
use crate::error::ApiError;
use crate::store::{Event, ObjKey};
use serde_json::{json, Value};
use std::time::Duration;

/// Reported as the source of the Job controller's Events.
const COMPONENT: &str = "job-controller";

pub struct JobController;

fn finished(job: &Value) -> bool {
    util::conditions(job).iter().any(|c| {
        matches!(
            c.get("type").and_then(Value::as_str),
            Some("Complete" | "Failed")
        ) && c.get("status").and_then(Value::as_str) == Some("True")
    })
}

fn cond(t: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": t, "status": "True", "lastProbeTime": now, "lastTransitionTime": now,
           "reason": reason, "message": message})
}

impl Controller for JobController {
    fn name(&self) -> &'static str {
        "job"
    }

    fn keys_for(&mut self, ctx: &Ctx, ev: &Event, out: &mut Vec<ObjKey>) {
        match ev.object.key.resource.as_str() {
            res::JOBS => out.push(ev.object.key.clone()),
            res::PODS => util::push_owner(ctx, &ev.object, res::JOBS, out),
            _ => {}
        }
    }

    fn all_keys(&mut self, ctx: &Ctx) -> Vec<ObjKey> {
        util::all_keys(ctx, res::JOBS)
    }

    fn reconcile(&mut self, ctx: &Ctx, key: &ObjKey) -> Result<Option<Duration>, ApiError> {
        let Some(job) = util::get(ctx, key)? else {
            return Ok(None);
        };
        if util::is_deleting(&job) || finished(&job) {
            return Ok(None);
        }
        let now = mooring_core::time::now_rfc3339();
        let uid = str_at(&job, "/metadata/uid")
            .unwrap_or_default()
            .to_string();
        let suspended = job.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true);
        let parallelism = i64_at(&job, "/spec/parallelism").unwrap_or(1).max(0);
        let completions = i64_at(&job, "/spec/completions");
        let backoff_limit = i64_at(&job, "/spec/backoffLimit").unwrap_or(6).max(0);
        let pods = util::owned(ctx, &uid, res::PODS);
        let mut active: Vec<Value> = pods.iter().filter(|p| pod::is_active(p)).cloned().collect();
        let succeeded = pods.iter().filter(|p| pod::phase(p) == "Succeeded").count() as i64;
        let failed = pods.iter().filter(|p| pod::phase(p) == "Failed").count() as i64;
        let mut conds = util::conditions(&job);
        let mut completion_time = None;

        let done = match completions {
            Some(c) => succeeded >= c,
            None => succeeded > 0 && active.is_empty(),
        };
        if failed > backoff_limit {
            for p in active.drain(..) {
                pod::delete(ctx, &p)?;
            }
            let msg = "Job has reached the specified backoff limit";
            util::set_condition(
                &mut conds,
                cond("FailureTarget", "BackoffLimitExceeded", msg, &now),
            );
            util::set_condition(
                &mut conds,
                cond("Failed", "BackoffLimitExceeded", msg, &now),
            );
        } else if done {
            for p in active.drain(..) {
                pod::delete(ctx, &p)?;
            }
            let msg = "Reached expected number of succeeded pods";
            util::set_condition(
                &mut conds,
                cond("SuccessCriteriaMet", "CompletionsReached", msg, &now),
            );
            util::set_condition(
                &mut conds,
                cond("Complete", "CompletionsReached", msg, &now),
            );
            completion_time = Some(now.clone());
        } else if !suspended {
            let remaining = match completions {
                Some(c) => (c - succeeded).max(0),
                None => parallelism,
            };
            let want = parallelism.min(remaining) as usize;
            if active.len() > want {
                active.sort_by_key(pod::deletion_rank);
                let extra = active.len() - want;
                for p in active.drain(..extra) {
                    pod::delete(ctx, &p)?;
                }
            }
            let template = job.pointer("/spec/template").cloned().unwrap_or(json!({}));
            while active.len() < want {
                let name = format!("{}-{}", key.name, util::random_suffix());
                let p = pod::from_template(&template, &job, &name, &key.namespace, &[]);
                match pod::create(ctx, &key.namespace, p) {
                    Ok(c) => active.push(c),
                    Err(ApiError::AlreadyExists { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
        }

        let old = job.get("status").cloned().unwrap_or(json!({}));
        let mut status = json!({});
        if !conds.is_empty() {
            status["conditions"] = json!(conds);
        }
        if !suspended || old.get("startTime").is_some() {
            status["startTime"] = old.get("startTime").cloned().unwrap_or_else(|| json!(now));
        }
        if let Some(t) = &completion_time {
            status["completionTime"] = json!(t);
        }
        if !active.is_empty() {
            status["active"] = json!(active.len());
        }
        if succeeded > 0 {
            status["succeeded"] = json!(succeeded);
        }
        if failed > 0 {
            status["failed"] = json!(failed);
        }
        status["terminating"] = json!(0);
        status["uncountedTerminatedPods"] = json!({});
        status["ready"] = json!(active.iter().filter(|p| pod::is_ready(p)).count());
        let had = |t: &str| util::find_condition(&util::conditions(&job), t).is_some();
        let (was_complete, was_failed) = (had("Complete"), had("Failed"));
        util::write_status(ctx, &ctx.jobs, &job, status)?;
        if completion_time.is_some() && !was_complete {
            ctx.recorder
                .normal(COMPONENT, &job, "Completed", "Job completed");
        }
        if failed > backoff_limit && !was_failed {
            ctx.recorder.warning(
                COMPONENT,
                &job,
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            );
        }
        Ok(None)
    }
}
