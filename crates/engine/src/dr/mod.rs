//! Disaster recovery, the pure part: whether a plan can be acted on, the steps of a
//! failover and a failback and which one runs next, when detection fires, and the
//! RTO/RPO arithmetic. The drill report is [`report`].
//!
//! A failover is a list of steps recorded in the plan's status before any of them runs
//! (like a sync's `operationState`), each `Pending` → `Running` → `Succeeded`/`Failed`:
//!
//! | step | failover | failback |
//! |---|---|---|
//! | `freeze` | suspend automated sync of the primary apps (nothing fights the failover) | — |
//! | `sync/<app>` | sync each standby app (its one sync, for manual-sync DR apps), wait Synced+Healthy within its timeout | resume automated sync of each primary app and sync it now |
//! | `scale` | set `activation.scale` replicas on the standby (the old values kept in status) | — |
//! | `validate` | the checks on the standby, retried until they pass or `validation.timeout` | the checks on the primary |
//! | `dns` | switch each record to the standby's address | back to the primary's |
//! | `unscale` | — | restore the standby's replicas from before `scale` |
//! | `notify` | `FailoverCompleted` Event (incident, regions, RTO) | `FailbackCompleted` Event |
//!
//! **DNS moves only after validation passed**: a standby that never validates never takes
//! the traffic (the issue lists validation after DNS; traffic on an unvalidated region is
//! the half-switched state the acceptance forbids). The RTO is measured from the failure
//! (detection's first sighting, the drill's injection, or the manual request) to the end
//! of the `dns` step: the standby validated and serving the name.

pub mod checks;
pub mod report;
pub mod request;

use mooring_core::dr::{CheckSpec, DisasterRecoveryPlanSpec, DrOperation, StepStatus, Target};
use mooring_core::time::{self, Timestamp};
use std::time::Duration;

/// Step and operation phases.
pub const PENDING: &str = "Pending";
pub const RUNNING: &str = "Running";
pub const SUCCEEDED: &str = "Succeeded";
pub const FAILED: &str = "Failed";

/// Operation kinds (`status.operation.kind`, `status.request.kind`).
pub const FAILOVER: &str = "Failover";
pub const FAILBACK: &str = "Failback";
pub const DRILL: &str = "Drill";

/// Drill failure modes.
pub const SCALE_TO_ZERO: &str = "scale-to-zero";
pub const PARTITION: &str = "partition";

/// Defaults of the optional durations.
pub const DEFAULT_UNREACHABLE_FOR: Duration = Duration::from_secs(30);
pub const DEFAULT_SYNC_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_VALIDATION_TIMEOUT: Duration = Duration::from_secs(300);
pub const DEFAULT_TTL: u32 = 60;

/// The kinds a scale override may name (they have a `spec.replicas` and a scale
/// subresource).
pub const SCALABLE_KINDS: &[&str] = &["Deployment", "StatefulSet", "ReplicaSet", "Rollout"];

/// One side of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Primary,
    Standby,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Primary => Side::Standby,
            Side::Standby => Side::Primary,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Primary => "primary",
            Side::Standby => "standby",
        }
    }

    /// The side an operation of `kind` makes active.
    pub fn activated_by(kind: &str) -> Side {
        if kind == FAILBACK {
            Side::Primary
        } else {
            Side::Standby
        }
    }
}

/// A plan's durations, parsed once.
#[derive(Debug, Clone, PartialEq)]
pub struct Durations {
    pub unreachable_for: Duration,
    pub degraded_for: Option<Duration>,
    pub sync_timeout: Duration,
    pub validation_timeout: Duration,
    pub rto: Option<Duration>,
    pub rpo: Option<Duration>,
}

/// Why a plan cannot be acted on: every problem, each naming its field.
pub fn validate(spec: &DisasterRecoveryPlanSpec) -> Result<Durations, Vec<String>> {
    let mut problems = Vec::new();
    let mut duration = |field: &str, v: &Option<String>| -> Option<Duration> {
        let s = v.as_deref()?;
        match time::parse_go_duration(s) {
            Some(d) if !d.is_zero() => Some(d),
            _ => {
                problems.push(format!(
                    "{field} {s:?} is not a positive Go duration (e.g. 30s, 5m)"
                ));
                None
            }
        }
    };
    let unreachable_for = duration(
        "detection.primaryUnreachableFor",
        &spec.detection.primary_unreachable_for,
    );
    let degraded_for = duration(
        "detection.primaryDegradedFor",
        &spec.detection.primary_degraded_for,
    );
    let sync_timeout = duration("activation.syncTimeout", &spec.activation.sync_timeout);
    let validation_timeout = duration("validation.timeout", &spec.validation.timeout);
    let objectives = spec.objectives.clone().unwrap_or_default();
    let rto = duration("objectives.rto", &objectives.rto);
    let rpo = duration("objectives.rpo", &objectives.rpo);
    for (i, p) in spec.applications.pairs.iter().enumerate() {
        duration(
            &format!("applications.pairs[{i}].syncTimeout"),
            &p.sync_timeout,
        );
    }

    if spec.primary.cluster.is_empty() || spec.standby.cluster.is_empty() {
        problems.push("primary.cluster and standby.cluster are required (cluster names)".into());
    } else if spec.primary.cluster == spec.standby.cluster {
        problems.push(format!(
            "primary and standby are the same cluster {:?}: a standby must be another region",
            spec.primary.cluster
        ));
    }
    let apps = &spec.applications;
    if apps.pairs.is_empty() && apps.application_set.is_none() {
        problems.push("applications: give pairs or an applicationSet".into());
    }
    if !apps.pairs.is_empty() && apps.application_set.is_some() {
        problems.push("applications: give pairs or an applicationSet, not both".into());
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, p) in apps.pairs.iter().enumerate() {
        for name in [&p.primary, &p.standby] {
            if !mooring_core::name::matches_dns1123_subdomain(name) {
                problems.push(format!(
                    "applications.pairs[{i}]: {name:?} is not an Application name (a DNS-1123 subdomain)"
                ));
            } else if !seen.insert(name.clone()) {
                problems.push(format!(
                    "applications.pairs[{i}]: {name:?} appears twice in the plan"
                ));
            }
        }
    }
    for (i, s) in spec.activation.scale.iter().enumerate() {
        if !SCALABLE_KINDS.contains(&s.kind.as_str()) {
            problems.push(format!(
                "activation.scale[{i}].kind {:?}: expected one of {}",
                s.kind,
                SCALABLE_KINDS.join(", ")
            ));
        }
        if s.replicas < 0 || s.replicas > 10_000 {
            problems.push(format!(
                "activation.scale[{i}].replicas {} is out of range (0–10000)",
                s.replicas
            ));
        }
        if s.namespace.is_empty() || s.name.is_empty() {
            problems.push(format!(
                "activation.scale[{i}]: namespace and name are required"
            ));
        }
    }
    if let Some(dns) = &spec.activation.dns {
        let p = &dns.provider;
        if p.rfc2136.is_some() == p.webhook.is_some() {
            problems.push("activation.dns.provider: give exactly one of rfc2136, webhook".into());
        }
        if dns.records.is_empty() {
            problems.push("activation.dns.records: at least one record".into());
        }
        for (i, r) in dns.records.iter().enumerate() {
            for (side, t) in [("primary", &r.primary), ("standby", &r.standby)] {
                if let Err(e) = target(t) {
                    problems.push(format!("activation.dns.records[{i}].{side}: {e}"));
                }
            }
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for (i, c) in spec.validation.checks.iter().enumerate() {
        if let Err(e) = check_kind(c) {
            problems.push(format!("validation.checks[{i}]: {e}"));
        }
        if !names.insert(c.name.as_str()) {
            problems.push(format!(
                "validation.checks[{i}]: the name {:?} is used twice",
                c.name
            ));
        }
    }
    if let Some(drill) = &spec.drill {
        if let Some(mode) = drill.failure_mode.as_deref() {
            if mode != SCALE_TO_ZERO && mode != PARTITION {
                problems.push(format!(
                    "drill.failureMode {mode:?}: expected {SCALE_TO_ZERO} or {PARTITION}"
                ));
            }
        }
        if let Some(s) = &drill.schedule {
            if let Err(e) = crate::project::Schedule::parse_with_seconds(
                s,
                drill.time_zone.as_deref().unwrap_or(""),
            ) {
                problems.push(format!("drill: {}", schedule_error(&e)));
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Durations {
        unreachable_for: unreachable_for.unwrap_or(DEFAULT_UNREACHABLE_FOR),
        degraded_for,
        sync_timeout: sync_timeout.unwrap_or(DEFAULT_SYNC_TIMEOUT),
        validation_timeout: validation_timeout.unwrap_or(DEFAULT_VALIDATION_TIMEOUT),
        rto,
        rpo,
    })
}

fn schedule_error(e: &crate::project::WindowError) -> String {
    match e {
        crate::project::WindowError::Schedule { schedule, reason } => {
            format!("schedule {schedule:?}: {reason}")
        }
        crate::project::WindowError::TimeZone(tz) => {
            format!("timeZone {tz:?} is not an IANA time zone (e.g. Europe/Berlin)")
        }
        other => other.to_string(),
    }
}

/// The one kind of a check (`applications`, `http`, `tcp`, `prometheus`), or why not:
/// [`checks::check_kind`] (one rule, also what the checks runner applies), with a name.
pub fn check_kind(c: &CheckSpec) -> Result<&'static str, String> {
    if c.name.is_empty() {
        return Err("a check needs a name".into());
    }
    checks::check_kind(c)
        .map(checks::CheckKind::as_str)
        .map_err(|e| e.to_string())
}

/// A DNS target: exactly one of a literal address or a Service.
fn target(t: &Target) -> Result<(), String> {
    match (&t.address, &t.service) {
        (Some(a), None) if !a.trim().is_empty() => Ok(()),
        (None, Some(s)) if !s.namespace.is_empty() && !s.name.is_empty() => Ok(()),
        _ => Err("give exactly one of address, service {namespace, name}".into()),
    }
}

/// The per-app sync timeout of a standby app.
pub fn sync_timeout(spec: &DisasterRecoveryPlanSpec, d: &Durations, app: &str) -> Duration {
    spec.applications
        .pairs
        .iter()
        .find(|p| p.primary == app || p.standby == app)
        .and_then(|p| p.sync_timeout.as_deref())
        .and_then(time::parse_go_duration)
        .unwrap_or(d.sync_timeout)
}

/// The steps of an operation, all `Pending`; `apps` are the apps to sync (the standby's
/// for a failover, the primary's for a failback).
pub fn steps(spec: &DisasterRecoveryPlanSpec, kind: &str, apps: &[String]) -> Vec<StepStatus> {
    let step = |name: String| StepStatus {
        name,
        phase: PENDING.into(),
        ..Default::default()
    };
    let mut out = Vec::new();
    if kind == FAILOVER {
        out.push(step("freeze".into()));
    }
    out.extend(apps.iter().map(|a| step(format!("sync/{a}"))));
    if kind == FAILOVER && !spec.activation.scale.is_empty() {
        out.push(step("scale".into()));
    }
    out.push(step("validate".into()));
    if spec.activation.dns.is_some() {
        out.push(step("dns".into()));
    }
    if kind == FAILBACK && !spec.activation.scale.is_empty() {
        out.push(step("unscale".into()));
    }
    out.push(step("notify".into()));
    out
}

/// A new operation with its steps, recorded before anything runs.
pub fn operation(
    spec: &DisasterRecoveryPlanSpec,
    kind: &str,
    incident: &str,
    trigger: &str,
    apps: &[String],
    now: Timestamp,
    failure_at: Option<Timestamp>,
) -> DrOperation {
    DrOperation {
        kind: kind.into(),
        incident: incident.into(),
        trigger: trigger.into(),
        started_at: time::format_millis(now),
        failure_at: Some(time::format_millis(failure_at.unwrap_or(now))),
        phase: RUNNING.into(),
        steps: steps(spec, kind, apps),
        ..Default::default()
    }
}

/// The index of the step to work on: the first that has not succeeded. `None` when every
/// step succeeded or one failed (then [`finished`] says how it ended).
pub fn current(op: &DrOperation) -> Option<usize> {
    if op.phase != RUNNING || op.steps.iter().any(|s| s.phase == FAILED) {
        return None;
    }
    op.steps.iter().position(|s| s.phase != SUCCEEDED)
}

/// How a running operation ended, once no step is left: `Succeeded` or `Failed` (with
/// the failed step's name and message).
pub fn finished(op: &DrOperation) -> Option<(&'static str, String)> {
    if let Some(s) = op.steps.iter().find(|s| s.phase == FAILED) {
        return Some((FAILED, format!("step {} failed: {}", s.name, s.message)));
    }
    op.steps
        .iter()
        .all(|s| s.phase == SUCCEEDED)
        .then(|| (SUCCEEDED, format!("{} completed", op.kind.to_lowercase())))
}

/// Seconds between two RFC 3339 times (0 when `to` is before `from`).
pub fn seconds_between(from: &str, to: &str) -> Option<f64> {
    let (a, b) = (time::parse(from).ok()?, time::parse(to).ok()?);
    let d = b.duration_since(a).as_secs_f64();
    Some(if d < 0.0 {
        0.0
    } else {
        (d * 1000.0).round() / 1000.0
    })
}

/// The RTO of an operation: from the failure to the end of the step that made the
/// activated side serve (`dns`, else `validate`).
pub fn rto_seconds(op: &DrOperation) -> Option<f64> {
    let from = op.failure_at.as_deref().unwrap_or(&op.started_at);
    let served = op
        .steps
        .iter()
        .rev()
        .find(|s| s.name == "dns" || s.name == "validate")
        .filter(|s| s.phase == SUCCEEDED)?;
    seconds_between(from, served.finished_at.as_deref()?)
}

/// What detection sees of one primary app.
#[derive(Debug, Clone, PartialEq)]
pub struct PrimaryApp {
    pub name: String,
    /// Argo CD health (`Healthy`, `Degraded`, `Missing`, …).
    pub health: String,
}

/// Detection: whether the primary is unreachable or degraded long enough to fail over.
/// `unreachable_since` / `degraded_since` are what the status recorded. Returns the reason
/// and the failure's start.
pub fn detection_fires(
    d: &Durations,
    unreachable_since: Option<&str>,
    degraded_since: Option<&str>,
    now: Timestamp,
) -> Option<(String, Timestamp)> {
    let held = |since: Option<&str>, need: Duration| -> Option<Timestamp> {
        let t = time::parse(since?).ok()?;
        (now.duration_since(t).as_secs_f64() >= need.as_secs_f64()).then_some(t)
    };
    if let Some(t) = held(unreachable_since, d.unreachable_for) {
        return Some((
            format!(
                "the primary cluster has not answered for {}s",
                d.unreachable_for.as_secs()
            ),
            t,
        ));
    }
    let need = d.degraded_for?;
    held(degraded_since, need).map(|t| {
        (
            format!(
                "the primary has been degraded (an app Degraded or Missing, or an endpoint check failing) for {}s",
                need.as_secs()
            ),
            t,
        )
    })
}

/// Whether a primary app's health counts as degraded for detection.
pub fn degraded(health: &str) -> bool {
    matches!(health, "Degraded" | "Missing")
}

/// The configuration RPO of one pair: zero when the standby runs the revision the primary
/// last synced; else the age (at the failure) of the primary's newest deployment the
/// standby lacks. `primary_history` is the primary app's `(revision, deployedAt)` history,
/// oldest first.
pub fn config_rpo_seconds(
    primary_history: &[(String, String)],
    standby_revision: &str,
    failure_at: &str,
) -> Option<f64> {
    let (newest, _) = primary_history.last()?;
    if newest == standby_revision {
        return Some(0.0);
    }
    // The first deployment after the standby's revision (or the oldest recorded) is the
    // oldest change the standby lacks.
    let after = primary_history
        .iter()
        .rposition(|(r, _)| r == standby_revision)
        .map(|i| i + 1)
        .unwrap_or(0);
    let (_, deployed_at) = primary_history.get(after)?;
    seconds_between(deployed_at, failure_at)
}

/// An incident id for an automatic failover or a drill: `dr-<plan>-<UTC time>`.
pub fn incident_id(prefix: &str, plan: &str, now: Timestamp) -> String {
    let t = time::format(now).replace([':', '-'], "");
    format!("{prefix}-{plan}-{}", t.trim_end_matches('Z').to_lowercase())
}

/// An object name for something about an incident (its Events, its report ConfigMap):
/// `<plan>-<incident>-<suffix>` lowercased with anything a DNS-1123 subdomain refuses
/// replaced, plus a hash of the original when that changed it (so `INC-1` and `inc-1`
/// never share a name), at most 253 characters. The same inputs always give the same
/// name, which is what makes a second attempt to record the same thing fail.
pub fn object_name(plan: &str, incident: &str, suffix: &str) -> String {
    let raw = format!("{plan}-{incident}-{suffix}");
    let mut clean: String = raw
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-') => c,
            _ => '-',
        })
        .collect();
    if clean != raw {
        clean = format!("{clean}-{}", crate::rollout::text_hash(&raw));
    }
    clean.truncate(253);
    let trimmed = clean.trim_matches('-');
    if trimmed.is_empty() {
        crate::rollout::text_hash(&raw)
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests;
