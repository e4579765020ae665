//! The CronJob controller (`batch/v1`), on the simulation's clock ([`super::SimClock`]).
//!
//! As Kubernetes' cronjob controller (v2) does: for each CronJob, find the most recent
//! schedule time missed since `status.lastScheduleTime` (or the creation time), within
//! `startingDeadlineSeconds` when set (otherwise a `MissSchedule` Warning Event), and
//! start a Job for it named `{cronjob}-{scheduled time in minutes since the epoch}`, owned
//! by the CronJob, from `spec.jobTemplate`, annotated
//! `batch.kubernetes.io/cronjob-scheduled-timestamp` (RFC 3339 in the CronJob's time
//! zone). `concurrencyPolicy` `Allow` / `Forbid` (skip, Event `JobAlreadyActive`) /
//! `Replace` (delete the running Jobs first); `suspend` starts nothing; finished Jobs
//! leave `status.active` (Event `SawCompletedJob`, `status.lastSuccessfulTime`) and
//! beyond `successfulJobsHistoryLimit` / `failedJobsHistoryLimit` the oldest are deleted
//! (Event `SuccessfulDelete`). More than 100 missed start times is Kubernetes'
//! `TooManyMissedTimes` Warning; the newest is still started.
//!
//! Schedules are robfig/cron's standard syntax as Kubernetes accepts it: five fields
//! with ranges, steps, lists and month/day names, the macros `@yearly`, `@annually`,
//! `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly` and `@every <duration>`;
//! `TZ=` / `CRON_TZ=` prefixes are rejected (use `spec.timeZone`, an IANA name), as the
//! real API server does for new objects. Parsing is done by `croner`, which also accepts
//! Quartz extensions (`L`, `#`, `W`) that robfig/cron would reject: those are accepted
//! here too.
//!
//! Not simulated: the controller's clock-skew handling, and a Job that exists but is not
//! owned by the CronJob (it is simply not adopted).

use super::util::{self, i64_at, str_at};
use super::{res, Controller, Ctx};
use crate::api::{DeleteOptions, Propagation};
use crate::error::ApiError;
use crate::schedule::{most_recent_missed, Schedule, ScheduleError, MAX_MISSED};
use crate::store::{Event, ObjKey};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

/// Reported as the source of this controller's Events.
const COMPONENT: &str = "cronjob-controller";
pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

pub struct CronJobController;

fn to_chrono(t: SystemTime) -> DateTime<Utc> {
    DateTime::<Utc>::from(t)
}

fn parse_time(s: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s?)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A finished Job's condition type (`Complete` / `Failed`).
fn finished(job: &Value) -> Option<&'static str> {
    util::conditions(job).iter().find_map(|c| {
        if c.get("status").and_then(Value::as_str) != Some("True") {
            return None;
        }
        match c.get("type").and_then(Value::as_str) {
            Some("Complete") => Some("Complete"),
            Some("Failed") => Some("Failed"),
            _ => None,
        }
    })
}

fn job_ref(job: &Value) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job",
           "name": job.pointer("/metadata/name"), "namespace": job.pointer("/metadata/namespace"),
           "uid": job.pointer("/metadata/uid"),
           "resourceVersion": job.pointer("/metadata/resourceVersion")})
}

/// Record an Event about the CronJob through the simulation's shared recorder.
fn record_event(ctx: &Ctx, obj: &Value, warning: bool, reason: &str, message: &str) {
    if warning {
        ctx.recorder.warning(COMPONENT, obj, reason, message);
    } else {
        ctx.recorder.normal(COMPONENT, obj, reason, message);
    }
}

impl CronJobController {
    fn delete_job(ctx: &Ctx, cj: &Value, job: &Value) -> Result<(), ApiError> {
        let ns = str_at(job, "/metadata/namespace");
        let name = util::name_of(job);
        match ctx.api.delete(
            &ctx.jobs,
            ns,
            name,
            &DeleteOptions {
                propagation: Some(Propagation::Background),
                ..Default::default()
            },
        ) {
            Ok(_) => {
                record_event(
                    ctx,
                    cj,
                    false,
                    "SuccessfulDelete",
                    &format!("Deleted job {name}"),
                );
                Ok(())
            }
            Err(ApiError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

impl Controller for CronJobController {
    fn name(&self) -> &'static str {
        "cronjob"
    }

    fn keys_for(&mut self, ctx: &Ctx, ev: &Event, out: &mut Vec<ObjKey>) {
        match ev.object.key.resource.as_str() {
            res::CRONJOBS => out.push(ev.object.key.clone()),
            res::JOBS => util::push_owner(ctx, &ev.object, res::CRONJOBS, out),
            _ => {}
        }
    }

    fn all_keys(&mut self, ctx: &Ctx) -> Vec<ObjKey> {
        util::all_keys(ctx, res::CRONJOBS)
    }

    fn reconcile(&mut self, ctx: &Ctx, key: &ObjKey) -> Result<Option<Duration>, ApiError> {
        let Some(mut cj) = util::get(ctx, key)? else {
            return Ok(None);
        };
        if util::is_deleting(&cj) {
            return Ok(None);
        }
        cj["apiVersion"] = json!("batch/v1");
        cj["kind"] = json!("CronJob");
        let ns = key.namespace.as_str();
        let uid = str_at(&cj, "/metadata/uid").unwrap_or_default().to_string();
        let now = to_chrono(ctx.clock.now());
        let mut jobs = util::owned(ctx, &uid, res::JOBS);
        let mut status = cj
            .get("status")
            .cloned()
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        let was_active: Vec<Value> = status
            .get("active")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();

        // Finished Jobs leave `active`.
        let mut active = Vec::new();
        for job in &jobs {
            let name = util::name_of(job);
            let listed = was_active
                .iter()
                .any(|r| r.get("name").and_then(Value::as_str) == Some(name));
            match finished(job) {
                Some(state) => {
                    if listed {
                        record_event(
                            ctx,
                            &cj,
                            false,
                            "SawCompletedJob",
                            &format!("Saw completed job: {name}, condition: {state}"),
                        );
                    }
                    if state == "Complete" {
                        let done = parse_time(str_at(job, "/status/completionTime"));
                        let last = parse_time(str_at(&status, "/lastSuccessfulTime"));
                        if let Some(d) = done {
                            if last.is_none_or(|l| d > l) {
                                status["lastSuccessfulTime"] = json!(rfc3339(d));
                            }
                        }
                    }
                }
                None if !util::is_deleting(job) => active.push(job_ref(job)),
                None => {}
            }
        }

        // History limits: the oldest finished Jobs beyond them go.
        let keep_ok = i64_at(&cj, "/spec/successfulJobsHistoryLimit")
            .unwrap_or(3)
            .max(0) as usize;
        let keep_failed = i64_at(&cj, "/spec/failedJobsHistoryLimit")
            .unwrap_or(1)
            .max(0) as usize;
        jobs.sort_by(|a, b| {
            let t = |j: &Value| {
                str_at(j, "/status/startTime")
                    .or(str_at(j, "/metadata/creationTimestamp"))
                    .unwrap_or_default()
                    .to_string()
            };
            t(a).cmp(&t(b))
                .then_with(|| util::name_of(a).cmp(util::name_of(b)))
        });
        for (state, keep) in [("Complete", keep_ok), ("Failed", keep_failed)] {
            let done: Vec<&Value> = jobs
                .iter()
                .filter(|j| finished(j) == Some(state) && !util::is_deleting(j))
                .collect();
            if done.len() > keep {
                for j in &done[..done.len() - keep] {
                    Self::delete_job(ctx, &cj, j)?;
                }
            }
        }

        let tz = cj.pointer("/spec/timeZone").and_then(Value::as_str);
        let schedule_str = str_at(&cj, "/spec/schedule").unwrap_or_default();
        let schedule = match Schedule::parse(schedule_str, tz) {
            Ok(s) => s,
            Err(e) => {
                let reason = if matches!(e, ScheduleError::TimeZone(_)) {
                    "UnknownTimeZone"
                } else {
                    "UnparseableSchedule"
                };
                status["active"] = json!(active);
                if util::write_status(ctx, &ctx.cronjobs, &cj, status)? {
                    record_event(ctx, &cj, true, reason, &e.to_string());
                }
                return Ok(None);
            }
        };
        let suspended = cj.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true);
        let created = parse_time(str_at(&cj, "/metadata/creationTimestamp")).unwrap_or(now);
        let mut earliest = parse_time(str_at(&status, "/lastScheduleTime")).unwrap_or(created);
        // A clock ahead of the simulated one (a restarted cluster): nothing was missed.
        if earliest > now {
            earliest = now;
        }
        let deadline = i64_at(&cj, "/spec/startingDeadlineSeconds");
        if let Some(d) = deadline {
            let from = now - chrono::Duration::seconds(d.clamp(0, 10 * 365 * 86_400));
            if from > earliest {
                earliest = from;
            }
        }
        let requeue = |after: DateTime<Utc>| -> Option<Duration> {
            schedule.next_after(after).map(|next| {
                let sim = (next - now).to_std().unwrap_or_default().as_secs_f64();
                // Wake a hair after the time, so that it has passed on the sim clock.
                ctx.opts.scaled(sim) + Duration::from_millis(5)
            })
        };

        if suspended {
            status["active"] = json!(active);
            util::write_status(ctx, &ctx.cronjobs, &cj, status)?;
            return Ok(None);
        }
        let (missed, count) = most_recent_missed(&schedule, earliest, now);
        let Some(scheduled) = missed else {
            status["active"] = json!(active);
            util::write_status(ctx, &ctx.cronjobs, &cj, status)?;
            return Ok(requeue(now));
        };
        if count > MAX_MISSED {
            record_event(ctx, &cj, true, "TooManyMissedTimes",
                "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew");
        }
        let job_name = format!("{}-{}", key.name, scheduled.timestamp().div_euclid(60));
        let already = jobs.iter().any(|j| util::name_of(j) == job_name);
        if already {
            status["active"] = json!(active);
            util::write_status(ctx, &ctx.cronjobs, &cj, status)?;
            return Ok(requeue(now));
        }
        if let Some(d) = deadline {
            if scheduled + chrono::Duration::seconds(d.clamp(0, 10 * 365 * 86_400)) < now {
                record_event(
                    ctx,
                    &cj,
                    true,
                    "MissSchedule",
                    &format!(
                        "Missed scheduled time to start a job: {}",
                        rfc3339(scheduled)
                    ),
                );
                status["active"] = json!(active);
                util::write_status(ctx, &ctx.cronjobs, &cj, status)?;
                return Ok(requeue(now));
            }
        }
        match str_at(&cj, "/spec/concurrencyPolicy").unwrap_or("Allow") {
            "Forbid" if !active.is_empty() => {
                record_event(ctx, &cj, false, "JobAlreadyActive",
                    "Not starting job because prior execution is running and concurrency policy is Forbid");
                status["active"] = json!(active);
                util::write_status(ctx, &ctx.cronjobs, &cj, status)?;
                // The Job's completion brings us back; the schedule may pass meanwhile.
                return Ok(requeue(now));
            }
            "Replace" => {
                for r in std::mem::take(&mut active) {
                    if let Some(j) = jobs.iter().find(|j| {
                        util::name_of(j)
                            == r.get("name").and_then(Value::as_str).unwrap_or_default()
                    }) {
                        Self::delete_job(ctx, &cj, j)?;
                    }
                }
            }
            _ => {}
        }
        let tmpl = cj.pointer("/spec/jobTemplate").cloned().unwrap_or_default();
        let mut annotations = tmpl
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        annotations.insert(
            SCHEDULED_TIMESTAMP_ANNOTATION.into(),
            json!(schedule.format(scheduled)),
        );
        let job = json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {
                "name": job_name, "namespace": ns,
                "labels": tmpl.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
                "annotations": annotations,
                "ownerReferences": [util::owner_ref(&cj)],
            },
            "spec": tmpl.get("spec").cloned().unwrap_or(json!({})),
        });
        match ctx.api.create(&ctx.jobs, Some(ns), job, &ctx.wo) {
            Ok(created) => {
                record_event(
                    ctx,
                    &cj,
                    false,
                    "SuccessfulCreate",
                    &format!("Created job {job_name}"),
                );
                active.push(job_ref(&created));
            }
            Err(ApiError::AlreadyExists { .. }) => {}
            Err(e) => {
                record_event(
                    ctx,
                    &cj,
                    true,
                    "FailedCreate",
                    &format!("Error creating job: {e}"),
                );
                return Err(e);
            }
        }
        status["active"] = json!(active);
        status["lastScheduleTime"] = json!(rfc3339(scheduled));
        util::write_status(ctx, &ctx.cronjobs, &cj, status)?;
        Ok(requeue(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::validate;

    fn t(s: &str) -> DateTime<Utc> {
        parse_time(Some(s)).expect("test value")
    }

    #[test]
    fn kubernetes_schedule_syntax() {
        for ok in [
            "*/5 * * * *",
            "0 9-17 * * MON-FRI",
            "@hourly",
            "@midnight",
            "15 2 1 JAN *",
            "@every 90s",
            "0 0 * * 7",
        ] {
            assert!(Schedule::parse(ok, None).is_ok(), "{ok}");
        }
        assert!(matches!(
            Schedule::parse("TZ=UTC * * * * *", None),
            Err(ScheduleError::TzInSchedule(_))
        ));
        assert!(matches!(
            Schedule::parse("CRON_TZ=Europe/Paris 0 * * * *", None),
            Err(ScheduleError::TzInSchedule(_))
        ));
        assert!(matches!(
            Schedule::parse("* * * *", None),
            Err(ScheduleError::Unparseable(..))
        ));
        assert!(matches!(
            Schedule::parse("61 * * * *", None),
            Err(ScheduleError::Unparseable(..))
        ));
        assert!(matches!(
            Schedule::parse("0 * * * * *", None),
            Err(ScheduleError::Unparseable(..))
        ));
        assert!(matches!(
            Schedule::parse("@every nonsense", None),
            Err(ScheduleError::Unparseable(..))
        ));
        assert_eq!(
            Schedule::parse("* * * * *", Some("Mars/Olympus"))
                .expect_err("an error")
                .to_string(),
            "spec.timeZone: Invalid value: \"Mars/Olympus\": unknown time zone Mars/Olympus"
        );
    }

    #[test]
    fn next_times_and_time_zones() {
        let s = Schedule::parse("*/5 * * * *", None).expect("test value");
        assert_eq!(
            s.next_after(t("2026-01-01T10:02:00Z")),
            Some(t("2026-01-01T10:05:00Z"))
        );
        // 09:00 in Paris is 08:00 UTC in winter.
        let s = Schedule::parse("0 9 * * *", Some("Europe/Paris")).expect("test value");
        assert_eq!(
            s.next_after(t("2026-01-01T00:00:00Z")),
            Some(t("2026-01-01T08:00:00Z"))
        );
        assert_eq!(
            s.format(t("2026-01-01T08:00:00Z")),
            "2026-01-01T09:00:00+01:00"
        );
        let s = Schedule::parse("@every 90s", None).expect("test value");
        assert_eq!(
            s.next_after(t("2026-01-01T00:00:00Z")),
            Some(t("2026-01-01T00:01:30Z"))
        );
    }

    #[test]
    fn missed_times() {
        let s = Schedule::parse("* * * * *", None).expect("test value");
        let (last, n) =
            most_recent_missed(&s, t("2026-01-01T10:00:30Z"), t("2026-01-01T10:03:10Z"));
        assert_eq!((last, n), (Some(t("2026-01-01T10:03:00Z")), 3));
        let (last, n) =
            most_recent_missed(&s, t("2026-01-01T10:00:00Z"), t("2026-01-01T10:00:59Z"));
        assert_eq!((last, n), (None, 0));
        // Years of minutes missed: bounded work, the newest is found.
        let (last, n) =
            most_recent_missed(&s, t("2020-01-01T00:00:00Z"), t("2026-01-01T10:03:10Z"));
        assert_eq!(last, Some(t("2026-01-01T10:03:00Z")));
        assert!(n > MAX_MISSED);
    }

    #[test]
    fn validation() {
        let cj = |schedule: &str, extra: Value| {
            let mut v = json!({"metadata": {"name": "c"}, "spec": {"schedule": schedule,
                "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never"}}}}}});
            if let (Some(s), Some(e)) = (v["spec"].as_object_mut(), extra.as_object()) {
                s.extend(e.clone());
            }
            v
        };
        assert!(validate(&cj("* * * * *", json!({}))).is_empty());
        assert_eq!(validate(&cj("bogus", json!({}))).len(), 1);
        assert_eq!(
            validate(&cj("* * * * *", json!({"timeZone": "Nowhere/Land"}))).len(),
            1
        );
        assert_eq!(
            validate(&cj("* * * * *", json!({"concurrencyPolicy": "Sometimes"}))).len(),
            1
        );
        assert_eq!(
            validate(&cj("* * * * *", json!({"startingDeadlineSeconds": -1}))).len(),
            1
        );
        let long = json!({"metadata": {"name": "x".repeat(53)}, "spec": {"schedule": "* * * * *",
            "jobTemplate": {"spec": {"template": {}}}}});
        assert_eq!(validate(&long).len(), 1);
    }
}
