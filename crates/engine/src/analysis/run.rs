//! The AnalysisRun state machine, as pure functions of (spec, status, now).
//!
//! The status written to the API server is the only state, as in Argo Rollouts: a
//! restarted controller reads it and carries on. One reconcile step is
//!
//! 1. [`plan`]: which metrics need a measurement now (the first one immediately, or after
//!    `initialDelay`; then every `interval` after the previous one finished, until
//!    `count`; a metric without `interval` is measured once), which Running measurements
//!    (Jobs) are due for a look, and when to wake up next;
//! 2. the controller measures and calls [`assess_measurement`] to judge a value against
//!    `successCondition`/`failureCondition`, then [`record`] to store it;
//! 3. [`assess`]: per-metric phase from the counters, then the run's phase.
//!
//! Judging a value follows Argo: no condition ⇒ Successful; only a success condition ⇒
//! Failed when it is false; only a failure condition ⇒ Failed when it is true; both ⇒
//! Failed when the failure condition holds, Successful when only the success condition
//! holds, Inconclusive when neither does. A condition that cannot be evaluated (an empty
//! Prometheus vector indexed with `result[0]`, a non-boolean) makes the measurement an
//! Error, not a failure.
//!
//! A metric is Failed when `failed > failureLimit` (default 0, `-1` = no limit),
//! Inconclusive when `inconclusive > inconclusiveLimit` (default 0), Error when
//! `consecutiveError > consecutiveErrorLimit` (default 4), Successful when
//! `consecutiveSuccessLimit` successes in a row were seen or `count` measurements were
//! taken. After an Error measurement the next one comes within 10 seconds (or the
//! interval, when shorter), as in Argo. The run takes the worst phase of its metrics (Failed > Error > Inconclusive >
//! Successful) and, like Argo, stops measuring everything else as soon as one metric
//! fails; metrics listed in `dryRun` are measured and summarised in `dryRunSummary` but
//! never affect the run. `spec.terminate: true` ends the run Successful ("Run
//! Terminated") unless a metric already failed. Each metric keeps its last
//! `measurementRetention` measurements (default 10).

use super::expr::{evaluate_condition, MetricValue};
use super::template::AnalysisError;
use mooring_core::analysis::{
    AnalysisPhase, AnalysisRunSpec, AnalysisRunStatus, Measurement, Metric, MetricResult,
    RunSummary,
};
use mooring_core::time::parse_go_duration;
use mooring_core::time::{self, Timestamp};
use std::time::Duration;

/// Argo's default `consecutiveErrorLimit`.
pub const DEFAULT_CONSECUTIVE_ERROR_LIMIT: i64 = 4;
/// Argo's default number of measurements kept per metric.
pub const DEFAULT_MEASUREMENT_RETENTION: usize = 10;
/// Retry interval after an error for a metric without `interval` (Argo: 10s).
pub const DEFAULT_ERROR_RETRY: Duration = Duration::from_secs(10);
/// How often a Running measurement (a Job) is looked at when it set no `resumeAt`.
pub const DEFAULT_RESUME: Duration = Duration::from_secs(1);

/// A status stamp (unparsable reads as absent: the run restarts its timing).
fn stamp(s: Option<&str>) -> Option<Timestamp> {
    s.and_then(|s| time::parse(s).ok())
}

/// `t + d`, saturating at the end of representable time.
fn after(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// The limits and timing of a metric, validated (after argument substitution).
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRules {
    pub interval: Option<Duration>,
    pub initial_delay: Option<Duration>,
    /// `None` = until the run ends.
    pub count: Option<i64>,
    /// `None` = no limit (`-1`).
    pub failure_limit: Option<i64>,
    pub inconclusive_limit: Option<i64>,
    pub consecutive_error_limit: i64,
    pub consecutive_success_limit: Option<i64>,
}

impl MetricRules {
    pub fn of(m: &Metric) -> Result<MetricRules, AnalysisError> {
        let bad = |message: String| AnalysisError::InvalidMetric {
            metric: m.name.clone(),
            message,
        };
        let dur = |field: &str, v: &Option<String>| -> Result<Option<Duration>, AnalysisError> {
            match v.as_deref().map(str::trim) {
                None | Some("") => Ok(None),
                Some(s) => parse_go_duration(s)
                    .map(Some)
                    .ok_or_else(|| bad(format!("{field} `{s}` is not a duration like 30s or 5m"))),
            }
        };
        let int = |field: &str,
                   v: &Option<mooring_core::analysis::IntOrString>|
         -> Result<Option<i64>, AnalysisError> {
            match v {
                None => Ok(None),
                Some(x) => x
                    .as_int()
                    .map(Some)
                    .ok_or_else(|| bad(format!("{field} `{x}` is not an integer"))),
            }
        };
        let interval = dur("interval", &m.interval)?.filter(|d| !d.is_zero());
        let initial_delay = dur("initialDelay", &m.initial_delay)?;
        let count = match int("count", &m.count)? {
            Some(c) if c > 0 => Some(c),
            Some(c) if c < 0 => return Err(bad(format!("count {c} is negative"))),
            _ if interval.is_none() => Some(1),
            _ => None,
        };
        if count.is_some_and(|c| c > 1) && interval.is_none() {
            return Err(bad(
                "count > 1 needs an interval between measurements".into()
            ));
        }
        let limit = |field: &str, v, default: i64| -> Result<Option<i64>, AnalysisError> {
            match int(field, v)?.unwrap_or(default) {
                -1 => Ok(None),
                n if n < -1 => Err(bad(format!("{field} {n} is below -1"))),
                n => Ok(Some(n)),
            }
        };
        Ok(MetricRules {
            interval,
            initial_delay,
            count,
            failure_limit: limit("failureLimit", &m.failure_limit, 0)?,
            inconclusive_limit: limit("inconclusiveLimit", &m.inconclusive_limit, 0)?,
            consecutive_error_limit: int("consecutiveErrorLimit", &m.consecutive_error_limit)?
                .unwrap_or(DEFAULT_CONSECUTIVE_ERROR_LIMIT)
                .max(0),
            consecutive_success_limit: int(
                "consecutiveSuccessLimit",
                &m.consecutive_success_limit,
            )?
            .filter(|n| *n > 0),
        })
    }
}

/// Whether `name` is listed in `dryRun` (a metric name, or a regular expression matching
/// the whole name such as `.*`).
pub fn is_dry_run(spec: &AnalysisRunSpec, name: &str) -> bool {
    spec.dry_run
        .iter()
        .any(|d| name_matches(&d.metric_name, name))
}

fn name_matches(pattern: &str, name: &str) -> bool {
    pattern == name
        || regex::Regex::new(&format!("^(?:{pattern})$"))
            .map(|r| r.is_match(name))
            .unwrap_or(false)
}

/// Measurements kept for `name`.
pub fn retention(spec: &AnalysisRunSpec, name: &str) -> usize {
    spec.measurement_retention
        .iter()
        .find(|r| name_matches(&r.metric_name, name))
        .filter(|r| r.limit > 0)
        .map(|r| r.limit as usize)
        .unwrap_or(DEFAULT_MEASUREMENT_RETENTION)
}

/// What a reconcile step must do.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Metrics to take a new measurement of now.
    pub measure: Vec<String>,
    /// Metrics whose last measurement is Running and due for a look (Jobs).
    pub resume: Vec<String>,
    /// Metrics whose Running measurement must be stopped (the run is terminating).
    pub terminate: Vec<String>,
    /// When something is due next (`None`: nothing will be, or the run is complete).
    pub next_at: Option<Timestamp>,
}

/// Whether the run is stopping: `terminate` was asked, or a (non-dry-run) metric
/// already ended Failed, Error or Inconclusive.
pub fn is_terminating(spec: &AnalysisRunSpec, status: &AnalysisRunStatus) -> bool {
    spec.terminate
        || status.metric_results.iter().any(|r| {
            matches!(
                r.phase,
                AnalysisPhase::Failed | AnalysisPhase::Error | AnalysisPhase::Inconclusive
            ) && !r.dry_run
        })
}

/// What is due at `now`. Invalid metric settings are reported by [`assess`] (run Error).
pub fn plan(spec: &AnalysisRunSpec, status: &AnalysisRunStatus, now: Timestamp) -> Plan {
    let mut p = Plan::default();
    if status.phase.completed() {
        return p;
    }
    let terminating = is_terminating(spec, status);
    let started = stamp(status.started_at.as_deref()).unwrap_or(now);
    let wake = |t: Timestamp, p: &mut Plan| {
        if p.next_at.is_none_or(|n| t < n) {
            p.next_at = Some(t);
        }
    };
    for m in &spec.metrics {
        let Ok(rules) = MetricRules::of(m) else {
            continue;
        };
        let result = status.metric_results.iter().find(|r| r.name == m.name);
        if result.is_some_and(|r| r.phase.completed()) {
            continue;
        }
        let last = result.and_then(|r| r.measurements.last());
        if let Some(l) = last.filter(|l| !l.phase.completed()) {
            if terminating {
                p.terminate.push(m.name.clone());
                continue;
            }
            let at = stamp(l.resume_at.as_deref())
                .or_else(|| stamp(l.started_at.as_deref()).map(|t| after(t, DEFAULT_RESUME)))
                .unwrap_or(now);
            if at <= now {
                p.resume.push(m.name.clone());
            } else {
                wake(at, &mut p);
            }
            continue;
        }
        if terminating {
            continue;
        }
        let due = match last {
            None => after(started, rules.initial_delay.unwrap_or_default()),
            Some(l) => {
                let r = result
                    .map(|r| (r.count, r.consecutive_error))
                    .unwrap_or_default();
                if rules.count.is_some_and(|c| r.0 >= c) && l.phase != AnalysisPhase::Error {
                    continue;
                }
                let finished = stamp(l.finished_at.as_deref())
                    .or_else(|| stamp(l.started_at.as_deref()))
                    .unwrap_or(now);
                let gap = match (rules.interval, l.phase) {
                    // After an error, retry within 10s even when the interval is longer.
                    (Some(i), AnalysisPhase::Error) => i.min(DEFAULT_ERROR_RETRY),
                    (Some(i), _) => i,
                    (None, AnalysisPhase::Error) => DEFAULT_ERROR_RETRY,
                    // Measured once and not an error: done (assess completes it).
                    (None, _) => continue,
                };
                after(finished, gap)
            }
        };
        if due <= now {
            p.measure.push(m.name.clone());
        } else {
            wake(due, &mut p);
        }
    }
    p
}

/// Judge a value against the metric's conditions (Argo's `EvaluateResult`): the phase,
/// and an error message when a condition could not be evaluated.
pub fn assess_measurement(metric: &Metric, value: &MetricValue) -> (AnalysisPhase, Option<String>) {
    fn cond(c: &Option<String>) -> Option<&str> {
        c.as_deref().filter(|s| !s.trim().is_empty())
    }
    let (success, failure) = (
        cond(&metric.success_condition),
        cond(&metric.failure_condition),
    );
    let eval = |c: Option<&str>| c.map(|c| evaluate_condition(c, value)).transpose();
    let s = match eval(success) {
        Ok(s) => s,
        Err(e) => return (AnalysisPhase::Error, Some(e.to_string())),
    };
    let f = match eval(failure) {
        Ok(f) => f,
        Err(e) => return (AnalysisPhase::Error, Some(e.to_string())),
    };
    let phase = match (s, f) {
        (None, None) => AnalysisPhase::Successful,
        (Some(s), None) => {
            if s {
                AnalysisPhase::Successful
            } else {
                AnalysisPhase::Failed
            }
        }
        (None, Some(f)) => {
            if f {
                AnalysisPhase::Failed
            } else {
                AnalysisPhase::Successful
            }
        }
        (Some(_), Some(true)) => AnalysisPhase::Failed,
        (Some(true), Some(false)) => AnalysisPhase::Successful,
        (Some(false), Some(false)) => AnalysisPhase::Inconclusive,
    };
    (phase, None)
}

/// Store a measurement of `metric`: a completed measurement replaces a Running last one
/// (a Job that finished) or is appended, and counters are updated; a Running one is
/// appended (or replaces the Running last one). Older measurements beyond the retention
/// are dropped.
pub fn record(
    spec: &AnalysisRunSpec,
    status: &mut AnalysisRunStatus,
    metric: &str,
    measurement: Measurement,
) {
    let dry_run = is_dry_run(spec, metric);
    let keep = retention(spec, metric);
    let idx = match status.metric_results.iter().position(|r| r.name == metric) {
        Some(i) => i,
        None => {
            status.metric_results.push(MetricResult {
                name: metric.to_string(),
                phase: AnalysisPhase::Running,
                dry_run,
                ..Default::default()
            });
            status.metric_results.len() - 1
        }
    };
    let r = &mut status.metric_results[idx];
    r.dry_run = dry_run;
    if r.phase == AnalysisPhase::Pending {
        r.phase = AnalysisPhase::Running;
    }
    let replaces_running = r.measurements.last().is_some_and(|l| !l.phase.completed());
    match measurement.phase {
        AnalysisPhase::Successful => {
            r.successful += 1;
            r.count += 1;
            r.consecutive_error = 0;
            r.consecutive_success += 1;
        }
        AnalysisPhase::Failed => {
            r.failed += 1;
            r.count += 1;
            r.consecutive_error = 0;
            r.consecutive_success = 0;
        }
        AnalysisPhase::Inconclusive => {
            r.inconclusive += 1;
            r.count += 1;
            r.consecutive_error = 0;
            r.consecutive_success = 0;
        }
        AnalysisPhase::Error => {
            r.error += 1;
            r.consecutive_error += 1;
            r.consecutive_success = 0;
        }
        AnalysisPhase::Pending | AnalysisPhase::Running => {}
    }
    if measurement.phase == AnalysisPhase::Error {
        r.message = measurement.message.clone();
    }
    if replaces_running {
        r.measurements.pop();
    }
    r.measurements.push(measurement);
    if r.measurements.len() > keep {
        let drop = r.measurements.len() - keep;
        r.measurements.drain(..drop);
    }
}

/// A measurement of `phase` started and finished at `now`.
pub fn measurement(
    phase: AnalysisPhase,
    value: Option<String>,
    message: Option<String>,
    now: Timestamp,
) -> Measurement {
    Measurement {
        phase,
        message,
        started_at: Some(time::format(now)),
        finished_at: phase.completed().then(|| time::format(now)),
        value,
        metadata: None,
        resume_at: None,
    }
}

/// Phase and message of one metric from its counters.
fn metric_phase(
    m: &Metric,
    rules: &MetricRules,
    r: &MetricResult,
    terminating: bool,
) -> (AnalysisPhase, Option<String>) {
    if r.phase.completed() {
        return (r.phase, r.message.clone());
    }
    let Some(last) = r.measurements.last() else {
        if terminating {
            return (AnalysisPhase::Successful, None);
        }
        return (AnalysisPhase::Pending, None);
    };
    if !last.phase.completed() {
        return (AnalysisPhase::Running, None);
    }
    let due = |phase: AnalysisPhase, why: String| {
        (
            phase,
            Some(format!(
                "Metric \"{}\" assessed {phase} due to {why}",
                m.name
            )),
        )
    };
    if let Some(l) = rules.failure_limit.filter(|l| r.failed > *l) {
        return due(
            AnalysisPhase::Failed,
            format!("failed ({}) > failureLimit ({l})", r.failed),
        );
    }
    if let Some(l) = rules.inconclusive_limit.filter(|l| r.inconclusive > *l) {
        return due(
            AnalysisPhase::Inconclusive,
            format!(
                "inconclusive ({}) > inconclusiveLimit ({l})",
                r.inconclusive
            ),
        );
    }
    if r.consecutive_error > rules.consecutive_error_limit {
        return due(
            AnalysisPhase::Error,
            format!(
                "consecutiveErrors ({}) > consecutiveErrorLimit ({}): \"Error Message: {}\"",
                r.consecutive_error,
                rules.consecutive_error_limit,
                last.message.as_deref().unwrap_or_default()
            ),
        );
    }
    if rules
        .consecutive_success_limit
        .is_some_and(|l| r.consecutive_success >= l)
    {
        return (AnalysisPhase::Successful, None);
    }
    if rules.count.is_some_and(|c| r.count >= c) {
        if rules.consecutive_success_limit.is_some() {
            return due(
                AnalysisPhase::Failed,
                format!(
                    "consecutiveSuccessLimit ({}) not reached in count ({}) measurements",
                    rules.consecutive_success_limit.unwrap_or_default(),
                    r.count
                ),
            );
        }
        return (AnalysisPhase::Successful, None);
    }
    if terminating {
        return (AnalysisPhase::Successful, None);
    }
    (AnalysisPhase::Running, None)
}

fn severity(p: AnalysisPhase) -> u8 {
    match p {
        AnalysisPhase::Pending | AnalysisPhase::Running | AnalysisPhase::Successful => 0,
        AnalysisPhase::Inconclusive => 1,
        AnalysisPhase::Error => 2,
        AnalysisPhase::Failed => 3,
    }
}

fn count(summary: &mut RunSummary, p: AnalysisPhase) {
    summary.count += 1;
    match p {
        AnalysisPhase::Successful => summary.successful += 1,
        AnalysisPhase::Failed => summary.failed += 1,
        AnalysisPhase::Inconclusive => summary.inconclusive += 1,
        AnalysisPhase::Error => summary.error += 1,
        AnalysisPhase::Pending | AnalysisPhase::Running => {}
    }
}

/// Update every metric's phase and the run's phase, message and summaries.
pub fn assess(spec: &AnalysisRunSpec, status: &mut AnalysisRunStatus, now: Timestamp) {
    if status.phase.completed() {
        return;
    }
    if status.started_at.is_none() {
        status.started_at = Some(time::format(now));
    }
    // Invalid metric settings make the whole run an Error, before anything is measured.
    let mut rules = Vec::with_capacity(spec.metrics.len());
    for m in &spec.metrics {
        match MetricRules::of(m) {
            Ok(r) => rules.push(r),
            Err(e) => {
                status.phase = AnalysisPhase::Error;
                status.message = Some(e.to_string());
                return;
            }
        }
    }
    if spec.metrics.is_empty() {
        status.phase = AnalysisPhase::Error;
        status.message = Some("the run has no metrics".into());
        return;
    }
    // Judge the metrics one by one; a metric that fails makes the others stop (terminate).
    for (m, rule) in spec.metrics.iter().zip(&rules) {
        let terminating = is_terminating(spec, status);
        let dry_run = is_dry_run(spec, &m.name);
        let Some(r) = status.metric_results.iter_mut().find(|r| r.name == m.name) else {
            if terminating {
                status.metric_results.push(MetricResult {
                    name: m.name.clone(),
                    phase: AnalysisPhase::Successful,
                    dry_run,
                    ..Default::default()
                });
            }
            continue;
        };
        r.dry_run = dry_run;
        let (phase, message) = metric_phase(m, rule, r, terminating);
        r.phase = phase;
        if message.is_some() {
            r.message = message;
        }
    }
    // A second pass: metrics judged before a later one failed must stop too.
    if is_terminating(spec, status) {
        for (m, rule) in spec.metrics.iter().zip(&rules) {
            if let Some(r) = status.metric_results.iter_mut().find(|r| r.name == m.name) {
                if !r.phase.completed() {
                    let (phase, message) = metric_phase(m, rule, r, true);
                    r.phase = phase;
                    if message.is_some() {
                        r.message = message;
                    }
                }
            }
        }
    }
    let mut summary = RunSummary::default();
    let mut dry = RunSummary::default();
    let mut worst: Option<(AnalysisPhase, Option<String>)> = None;
    let mut all_done = true;
    for m in &spec.metrics {
        let r = status.metric_results.iter().find(|r| r.name == m.name);
        let phase = r.map(|r| r.phase).unwrap_or_default();
        if r.is_some_and(|r| r.dry_run) {
            count(&mut dry, phase);
            if !phase.completed() {
                all_done = false;
            }
            continue;
        }
        count(&mut summary, phase);
        if !phase.completed() {
            all_done = false;
            continue;
        }
        if worst
            .as_ref()
            .is_none_or(|(w, _)| severity(phase) > severity(*w))
        {
            worst = Some((phase, r.and_then(|r| r.message.clone())));
        }
    }
    status.run_summary = Some(summary);
    status.dry_run_summary = (dry.count > 0).then_some(dry);
    if all_done {
        let (phase, message) = worst.unwrap_or((AnalysisPhase::Successful, None));
        status.phase = phase;
        status.message = if phase == AnalysisPhase::Successful {
            spec.terminate.then(|| "Run Terminated".to_string())
        } else {
            message
        };
    } else {
        status.phase = AnalysisPhase::Running;
    }
}

/// Mark a run as failed before any measurement (unresolvable args, missing Secret).
pub fn fail_run(status: &mut AnalysisRunStatus, message: String, now: Timestamp) {
    status.phase = AnalysisPhase::Error;
    status.message = Some(message);
    if status.started_at.is_none() {
        status.started_at = Some(time::format(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> AnalysisRunSpec {
        serde_json::from_value(v).expect("spec")
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + secs).expect("time")
    }

    fn metric(extra: serde_json::Value) -> serde_json::Value {
        let mut m = json!({"name": "success-rate", "successCondition": "result[0] >= 0.95",
            "provider": {"prometheus": {"query": "q"}}});
        if let (Some(o), Some(e)) = (m.as_object_mut(), extra.as_object()) {
            o.extend(e.clone());
        }
        m
    }

    /// Run a metric over values (Some(v) = a measured value, None = an error), one step
    /// a second; returns the final status.
    fn drive(s: &AnalysisRunSpec, values: &[Option<f64>]) -> AnalysisRunStatus {
        let mut st = AnalysisRunStatus::default();
        let mut values = values.iter();
        for i in 0..200 {
            let now = t(i);
            assess(s, &mut st, now);
            if st.phase.completed() {
                break;
            }
            let p = plan(s, &st, now);
            for name in &p.measure {
                let m = s.metrics.iter().find(|m| &m.name == name).expect("metric");
                let Some(v) = values.next() else {
                    return st;
                };
                let meas = match v {
                    Some(v) => {
                        let value = MetricValue::Array(vec![MetricValue::Number(*v)]);
                        let (phase, msg) = assess_measurement(m, &value);
                        measurement(phase, Some(value.to_string()), msg, now)
                    }
                    None => measurement(AnalysisPhase::Error, None, Some("boom".into()), now),
                };
                record(s, &mut st, name, meas);
            }
        }
        st
    }

    #[test]
    fn judges_measurements_like_argo() {
        let one = MetricValue::Array(vec![MetricValue::Number(0.9)]);
        let m = |s: Option<&str>, f: Option<&str>| Metric {
            name: "m".into(),
            success_condition: s.map(String::from),
            failure_condition: f.map(String::from),
            ..Default::default()
        };
        let cases = [
            (None, None, AnalysisPhase::Successful),
            (Some("result[0] > 0.5"), None, AnalysisPhase::Successful),
            (Some("result[0] > 0.95"), None, AnalysisPhase::Failed),
            (None, Some("result[0] < 0.95"), AnalysisPhase::Failed),
            (None, Some("result[0] < 0.5"), AnalysisPhase::Successful),
            (
                Some("result[0] > 0.95"),
                Some("result[0] < 0.5"),
                AnalysisPhase::Inconclusive,
            ),
            (
                Some("result[0] > 0.5"),
                Some("result[0] < 0.95"),
                AnalysisPhase::Failed,
            ),
            (
                Some("result[0] > 0.5"),
                Some("result[0] < 0.5"),
                AnalysisPhase::Successful,
            ),
        ];
        for (s, f, want) in cases {
            assert_eq!(assess_measurement(&m(s, f), &one).0, want, "{s:?} {f:?}");
        }
        let (p, msg) = assess_measurement(
            &m(Some("result[0] >= 0.95"), None),
            &MetricValue::Array(vec![]),
        );
        assert_eq!(p, AnalysisPhase::Error);
        assert!(msg.is_some());
        let (p, msg) = assess_measurement(&m(Some("result[0]"), None), &one);
        assert_eq!(p, AnalysisPhase::Error);
        assert!(msg.expect("message").contains("not a boolean"));
    }

    #[test]
    fn a_single_measurement_decides_a_metric_without_interval() {
        let s = spec(json!({"metrics": [metric(json!({}))]}));
        let st = drive(&s, &[Some(0.99)]);
        assert_eq!(st.phase, AnalysisPhase::Successful);
        assert_eq!(st.metric_results[0].count, 1);
        assert_eq!(
            st.metric_results[0].measurements[0].value.as_deref(),
            Some("[0.99]")
        );
        assert_eq!(
            st.run_summary,
            Some(RunSummary {
                count: 1,
                successful: 1,
                ..Default::default()
            })
        );
        let st = drive(&s, &[Some(0.5)]);
        assert_eq!(st.phase, AnalysisPhase::Failed);
        assert_eq!(
            st.message.as_deref(),
            Some("Metric \"success-rate\" assessed Failed due to failed (1) > failureLimit (0)")
        );
    }

    #[test]
    fn failure_limit_and_count() {
        let s = spec(
            json!({"metrics": [metric(json!({"interval": "1s", "count": 4, "failureLimit": 1}))]}),
        );
        let st = drive(&s, &[Some(0.5), Some(0.99), Some(0.99), Some(0.99)]);
        assert_eq!(st.phase, AnalysisPhase::Successful, "{st:?}");
        assert_eq!(st.metric_results[0].count, 4);
        let st = drive(&s, &[Some(0.5), Some(0.99), Some(0.5), Some(0.99)]);
        assert_eq!(st.phase, AnalysisPhase::Failed);
        assert_eq!(st.metric_results[0].count, 3, "stops at the second failure");
        // failureLimit -1: never fails on failures.
        let s = spec(
            json!({"metrics": [metric(json!({"interval": "1s", "count": "2", "failureLimit": -1}))]}),
        );
        assert_eq!(
            drive(&s, &[Some(0.1), Some(0.1)]).phase,
            AnalysisPhase::Successful
        );
    }

    #[test]
    fn consecutive_errors_make_the_run_an_error() {
        let s = spec(json!({"metrics": [metric(json!({"interval": "1s"}))]}));
        let st = drive(
            &s,
            &[
                None,
                None,
                None,
                None,
                Some(0.99),
                None,
                None,
                None,
                None,
                None,
            ],
        );
        assert_eq!(st.phase, AnalysisPhase::Error, "{st:?}");
        assert_eq!(st.metric_results[0].error, 9);
        assert_eq!(st.metric_results[0].consecutive_error, 5);
        let msg = st.message.expect("message");
        assert!(
            msg.contains("consecutiveErrors (5) > consecutiveErrorLimit (4)")
                && msg.contains("boom"),
            "{msg}"
        );
        let s = spec(
            json!({"metrics": [metric(json!({"interval": "1s", "consecutiveErrorLimit": 0}))]}),
        );
        assert_eq!(drive(&s, &[None]).phase, AnalysisPhase::Error);
    }

    #[test]
    fn inconclusive_and_consecutive_success() {
        let s = spec(json!({"metrics": [metric(json!({"failureCondition": "result[0] < 0.5"}))]}));
        let st = drive(&s, &[Some(0.7)]);
        assert_eq!(st.phase, AnalysisPhase::Inconclusive);
        assert!(st
            .message
            .expect("msg")
            .contains("inconclusive (1) > inconclusiveLimit (0)"));
        let s = spec(
            json!({"metrics": [metric(json!({"interval": "1s", "consecutiveSuccessLimit": 2, "failureLimit": -1}))]}),
        );
        let st = drive(
            &s,
            &[
                Some(0.1),
                Some(0.99),
                Some(0.1),
                Some(0.99),
                Some(0.99),
                Some(0.1),
            ],
        );
        assert_eq!(st.phase, AnalysisPhase::Successful);
        assert_eq!(st.metric_results[0].count, 5);
    }

    #[test]
    fn an_indefinite_metric_runs_until_terminated() {
        let s = spec(json!({"metrics": [metric(json!({"interval": "1s"}))]}));
        let st = drive(&s, &[Some(0.99); 30]);
        assert_eq!(st.phase, AnalysisPhase::Running);
        assert_eq!(st.metric_results[0].count, 30);
        assert_eq!(
            st.metric_results[0].measurements.len(),
            DEFAULT_MEASUREMENT_RETENTION
        );
        let mut s2 = s.clone();
        s2.terminate = true;
        let mut st2 = st.clone();
        assess(&s2, &mut st2, t(100));
        assert_eq!(st2.phase, AnalysisPhase::Successful);
        assert_eq!(st2.message.as_deref(), Some("Run Terminated"));
        assert_eq!(plan(&s2, &st2, t(101)), Plan::default());
    }

    #[test]
    fn terminate_does_not_hide_a_failure() {
        let s = spec(json!({"terminate": true, "metrics": [metric(json!({}))]}));
        let mut st = drive(&spec(json!({"metrics": [metric(json!({}))]})), &[Some(0.1)]);
        assert_eq!(st.phase, AnalysisPhase::Failed);
        assess(&s, &mut st, t(10));
        assert_eq!(st.phase, AnalysisPhase::Failed);
    }

    #[test]
    fn a_failing_metric_stops_the_others() {
        let s = spec(json!({"metrics": [
            metric(json!({"name": "fast"})),
            metric(json!({"name": "slow", "interval": "1s"}))
        ]}));
        let st = drive(&s, &[Some(0.1), Some(0.99), Some(0.99)]);
        assert_eq!(st.phase, AnalysisPhase::Failed);
        assert!(st.message.expect("m").contains("\"fast\""));
        let slow = st
            .metric_results
            .iter()
            .find(|r| r.name == "slow")
            .expect("slow");
        assert_eq!(slow.phase, AnalysisPhase::Successful);
    }

    #[test]
    fn dry_run_metrics_never_fail_the_run() {
        let s = spec(json!({
            "dryRun": [{"metricName": "shadow"}],
            "metrics": [metric(json!({"name": "real"})), metric(json!({"name": "shadow"}))]
        }));
        // Both measured once: real succeeds, shadow fails.
        let mut st = AnalysisRunStatus::default();
        assess(&s, &mut st, t(0));
        let p = plan(&s, &st, t(0));
        assert_eq!(p.measure, vec!["real".to_string(), "shadow".to_string()]);
        for (name, v) in [("real", 0.99), ("shadow", 0.1)] {
            let m = s.metrics.iter().find(|m| m.name == name).expect("m");
            let value = MetricValue::Array(vec![MetricValue::Number(v)]);
            let (phase, msg) = assess_measurement(m, &value);
            record(
                &s,
                &mut st,
                name,
                measurement(phase, Some(value.to_string()), msg, t(0)),
            );
        }
        assess(&s, &mut st, t(0));
        assert_eq!(st.phase, AnalysisPhase::Successful);
        assert_eq!(
            st.run_summary,
            Some(RunSummary {
                count: 1,
                successful: 1,
                ..Default::default()
            })
        );
        assert_eq!(
            st.dry_run_summary,
            Some(RunSummary {
                count: 1,
                failed: 1,
                ..Default::default()
            })
        );
        assert!(st
            .metric_results
            .iter()
            .any(|r| r.name == "shadow" && r.dry_run && r.phase == AnalysisPhase::Failed));
        // `.*` puts every metric in dry-run.
        let all = spec(json!({"dryRun": [{"metricName": ".*"}], "metrics": [metric(json!({}))]}));
        assert!(is_dry_run(&all, "success-rate"));
        assert!(!is_dry_run(&s, "shadowy"));
    }

    #[test]
    fn timing_initial_delay_interval_and_next_wake() {
        let s = spec(
            json!({"metrics": [metric(json!({"interval": "30s", "initialDelay": "10s", "count": 2}))]}),
        );
        let mut st = AnalysisRunStatus::default();
        assess(&s, &mut st, t(0));
        let p = plan(&s, &st, t(0));
        assert!(p.measure.is_empty());
        assert_eq!(p.next_at, Some(t(10)));
        assert_eq!(
            plan(&s, &st, t(10)).measure,
            vec!["success-rate".to_string()]
        );
        let m = &s.metrics[0];
        record(
            &s,
            &mut st,
            &m.name,
            measurement(AnalysisPhase::Successful, None, None, t(11)),
        );
        assess(&s, &mut st, t(11));
        let p = plan(&s, &st, t(12));
        assert!(p.measure.is_empty());
        assert_eq!(p.next_at, Some(t(41)));
        record(
            &s,
            &mut st,
            &m.name,
            measurement(AnalysisPhase::Successful, None, None, t(41)),
        );
        assess(&s, &mut st, t(41));
        assert_eq!(st.phase, AnalysisPhase::Successful);
        assert_eq!(plan(&s, &st, t(100)), Plan::default());
    }

    #[test]
    fn errors_are_retried_within_ten_seconds() {
        let s = spec(json!({"metrics": [metric(json!({"interval": "5m"}))]}));
        let mut st = AnalysisRunStatus::default();
        assess(&s, &mut st, t(0));
        record(
            &s,
            &mut st,
            "success-rate",
            measurement(AnalysisPhase::Error, None, Some("x".into()), t(0)),
        );
        assess(&s, &mut st, t(0));
        assert_eq!(plan(&s, &st, t(1)).next_at, Some(t(10)));
        record(
            &s,
            &mut st,
            "success-rate",
            measurement(AnalysisPhase::Successful, None, None, t(10)),
        );
        assess(&s, &mut st, t(10));
        assert_eq!(plan(&s, &st, t(11)).next_at, Some(t(310)));
        // A zero retention limit means the default.
        let z = spec(
            json!({"measurementRetention": [{"metricName": "success-rate", "limit": 0}], "metrics": []}),
        );
        assert_eq!(retention(&z, "success-rate"), DEFAULT_MEASUREMENT_RETENTION);
    }

    #[test]
    fn running_measurements_are_resumed_or_terminated() {
        let s =
            spec(json!({"metrics": [metric(json!({"name": "job", "successCondition": null}))]}));
        let mut st = AnalysisRunStatus::default();
        assess(&s, &mut st, t(0));
        let mut running = measurement(AnalysisPhase::Running, None, None, t(0));
        running.resume_at = Some(time::format(t(5)));
        record(&s, &mut st, "job", running);
        assess(&s, &mut st, t(0));
        assert_eq!(st.phase, AnalysisPhase::Running);
        assert_eq!(plan(&s, &st, t(1)).next_at, Some(t(5)));
        assert_eq!(plan(&s, &st, t(5)).resume, vec!["job".to_string()]);
        record(
            &s,
            &mut st,
            "job",
            measurement(AnalysisPhase::Successful, None, None, t(6)),
        );
        assert_eq!(
            st.metric_results[0].measurements.len(),
            1,
            "replaces the Running one"
        );
        assess(&s, &mut st, t(6));
        assert_eq!(st.phase, AnalysisPhase::Successful);
        // Terminating with a Running measurement: stop it.
        let mut s2 = s.clone();
        s2.terminate = true;
        let mut st2 = AnalysisRunStatus::default();
        record(
            &s2,
            &mut st2,
            "job",
            measurement(AnalysisPhase::Running, None, None, t(0)),
        );
        assert_eq!(plan(&s2, &st2, t(1)).terminate, vec!["job".to_string()]);
    }

    #[test]
    fn invalid_metric_settings_are_a_run_error() {
        for (extra, want) in [
            (json!({"interval": "soon"}), "interval `soon`"),
            (
                json!({"count": "{{args.n}}", "interval": "1s"}),
                "count `{{args.n}}`",
            ),
            (json!({"count": 3}), "needs an interval"),
            (json!({"failureLimit": -5}), "below -1"),
        ] {
            let s = spec(json!({"metrics": [metric(extra)]}));
            let mut st = AnalysisRunStatus::default();
            assess(&s, &mut st, t(0));
            assert_eq!(st.phase, AnalysisPhase::Error);
            let msg = st.message.clone().expect("message");
            assert!(msg.contains(want), "{msg}");
            assert_eq!(plan(&s, &st, t(0)), Plan::default());
        }
        let mut st = AnalysisRunStatus::default();
        assess(&spec(json!({"metrics": []})), &mut st, t(0));
        assert_eq!(st.phase, AnalysisPhase::Error);
    }

    #[test]
    fn measurement_retention_is_per_metric() {
        let s = spec(
            json!({"measurementRetention": [{"metricName": "success-rate", "limit": 3}],
            "metrics": [metric(json!({"interval": "1s"}))]}),
        );
        let st = drive(&s, &[Some(0.99); 8]);
        assert_eq!(st.metric_results[0].measurements.len(), 3);
        assert_eq!(st.metric_results[0].count, 8);
    }
}
