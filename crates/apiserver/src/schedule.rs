//! CronJob schedules and the CronJob's API rules.
//!
//! A schedule is robfig/cron's syntax as Kubernetes reads it (five fields, the `@hourly`-style
//! macros, `@every DURATION`), in the CronJob's IANA `spec.timeZone` (`TZ=` / `CRON_TZ=`
//! prefixes are refused, as by the API server). The API server validates CronJobs with it
//! on every write ([`validate`]); the controller ([`crate::sim::cronjob`]) computes start
//! times with it.

use chrono::{DateTime, TimeZone as _, Utc};
use serde_json::Value;
use std::time::Duration;

/// Kubernetes refuses to look further back than this many missed start times.
pub const MAX_MISSED: usize = 100;
/// A CronJob name leaves room for the 11-character Job suffix within 63.
const MAX_NAME_LEN: usize = 52;

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn i64_at(v: &Value, pointer: &str) -> Option<i64> {
    v.pointer(pointer).and_then(Value::as_i64)
}

/// A parsed schedule in its time zone.
#[derive(Debug, Clone)]
pub enum Schedule {
    Cron(Box<croner::Cron>, chrono_tz::Tz),
    /// `@every <duration>` (robfig/cron's constant delay, whole seconds).
    Every(Duration),
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ScheduleError {
    #[error("spec.schedule: Invalid value: {0:?}: cannot use TZ or CRON_TZ in schedule, use timeZone field instead")]
    TzInSchedule(String),
    #[error("spec.schedule: Invalid value: {0:?}: {1}")]
    Unparseable(String, String),
    #[error("spec.timeZone: Invalid value: {0:?}: unknown time zone {0}")]
    TimeZone(String),
}

impl Schedule {
    /// Parse `schedule` in `time_zone` (`None`: UTC, the controller manager's zone here).
    pub fn parse(schedule: &str, time_zone: Option<&str>) -> Result<Schedule, ScheduleError> {
        let s = schedule.trim();
        if s.contains("TZ=") {
            return Err(ScheduleError::TzInSchedule(schedule.into()));
        }
        let tz = match time_zone {
            None => chrono_tz::UTC,
            Some(z) => z
                .parse::<chrono_tz::Tz>()
                .map_err(|_| ScheduleError::TimeZone(z.into()))?,
        };
        let bad = |why: String| ScheduleError::Unparseable(schedule.into(), why);
        if let Some(d) = s.strip_prefix("@every ") {
            let d = mooring_core::time::parse_go_duration(d.trim())
                .ok_or_else(|| bad(format!("failed to parse duration {}", d.trim())))?;
            let secs = d.as_secs();
            if secs == 0 {
                // robfig/cron rounds up to one second.
                return Ok(Schedule::Every(Duration::from_secs(1)));
            }
            return Ok(Schedule::Every(Duration::from_secs(secs)));
        }
        let s = if s.eq_ignore_ascii_case("@midnight") {
            "0 0 * * *"
        } else {
            s
        };
        if !s.starts_with('@') {
            let n = s.split_whitespace().count();
            if n != 5 {
                return Err(bad(format!("expected exactly 5 fields, found {n}: {s}")));
            }
        }
        let cron = croner::Cron::new(s)
            .parse()
            .map_err(|e| bad(e.to_string()))?;
        Ok(Schedule::Cron(Box::new(cron), tz))
    }

    /// The first start strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(d) => {
                let secs = t.timestamp() + i64::try_from(d.as_secs()).ok()?;
                Utc.timestamp_opt(secs, 0).single()
            }
            Schedule::Cron(c, tz) => {
                let local = tz.from_utc_datetime(&t.naive_utc());
                c.find_next_occurrence(&local, false)
                    .ok()
                    .map(|d| d.with_timezone(&Utc))
            }
        }
    }

    /// The scheduled time formatted in the schedule's zone (the annotation's value).
    pub fn format(&self, t: DateTime<Utc>) -> String {
        match self {
            Schedule::Cron(_, tz) => t
                .with_timezone(tz)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            Schedule::Every(_) => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }
}

/// The most recent unmet schedule time in `(earliest, now]`, and how many there were
/// (capped just above [`MAX_MISSED`]).
pub fn most_recent_missed(
    s: &Schedule,
    earliest: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, usize) {
    let mut last = None;
    let mut count = 0;
    let mut t = earliest;
    while let Some(n) = s.next_after(t) {
        if n > now {
            break;
        }
        last = Some(n);
        count += 1;
        t = n;
        if count > MAX_MISSED {
            // Jump to the end: the newest time before now is what gets started.
            let mut probe = now - chrono::Duration::days(1);
            if probe < t {
                probe = t;
            }
            while let Some(n2) = s.next_after(probe) {
                if n2 > now {
                    break;
                }
                last = Some(n2);
                probe = n2;
            }
            break;
        }
    }
    (last, count)
}

/// Validation of a CronJob, as the API server does.
pub fn validate(obj: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let name = str_at(obj, "/metadata/name").unwrap_or_default();
    if name.len() > MAX_NAME_LEN {
        errs.push(format!(
            "metadata.name: Invalid value: {name:?}: must be no more than {MAX_NAME_LEN} characters"
        ));
    }
    match str_at(obj, "/spec/schedule") {
        None | Some("") => errs.push("spec.schedule: Required value".into()),
        Some(s) => {
            let tz = obj.pointer("/spec/timeZone").and_then(Value::as_str);
            if let Err(e) = Schedule::parse(s, tz) {
                errs.push(e.to_string());
            }
        }
    }
    if let Some(p) = str_at(obj, "/spec/concurrencyPolicy") {
        if !matches!(p, "Allow" | "Forbid" | "Replace") {
            errs.push(format!("spec.concurrencyPolicy: Unsupported value: {p:?}: supported values: \"Allow\", \"Forbid\", \"Replace\""));
        }
    }
    for f in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        if let Some(v) = i64_at(obj, &format!("/spec/{f}")) {
            if v < 0 {
                errs.push(format!(
                    "spec.{f}: Invalid value: {v}: must be greater than or equal to 0"
                ));
            }
        }
    }
    if obj.pointer("/spec/jobTemplate/spec/template").is_none() {
        errs.push("spec.jobTemplate.spec.template: Required value".into());
    } else {
        match str_at(obj, "/spec/jobTemplate/spec/template/spec/restartPolicy") {
            Some("Never" | "OnFailure") | None => {}
            Some(p) => errs.push(format!("spec.jobTemplate.spec.template.spec.restartPolicy: Unsupported value: {p:?}: supported values: \"OnFailure\", \"Never\"")),
        }
    }
    errs
}
