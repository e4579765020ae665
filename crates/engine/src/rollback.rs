//! Rollback triggers, as pure functions: validating a `RollbackPolicy`, the threshold
//! relation (absolute or relative to a baseline), and the breach timing of one rule as a
//! function of (previous state, measurement, now).
//!
//! The semantics follow Prometheus alerting rules, because that is what the people who
//! write these policies already know:
//!
//! - A rule **breaches** when `value OP threshold` holds, where the threshold is `value`
//!   (absolute), `baseline × ratio` or `baseline + offset`.
//! - **No data never breaches**: an empty result, a NaN (`0/0` of an idle service), an
//!   infinite threshold, or a missing baseline ends a breach in progress, like an alert
//!   whose expression returns nothing resolves.
//! - The breach must hold **continuously for `for`**: `breachingSince` is set at the first
//!   breaching evaluation and cleared by the first one that does not breach; the rule
//!   fires when `now − breachingSince ≥ for` (at once when `for` is 0).
//! - A rule **fires once per breach**: `firedAt` is set when it fires and cleared only
//!   when the breach ends, so later breaching evaluations (or a restarted controller
//!   reading the state back from `status`) do not fire again.
//! - An **error** (Prometheus unreachable, a bad query, a result of several series) changes
//!   nothing: the breach is neither extended into a firing nor forgotten. Errors are
//!   reported in the rule's status.
//!
//! What firing does (abort the Rollout, sync the last healthy revision, suspend automated
//! sync, incident) is the controller's business; which revision to return to is decided
//! here ([`rollback_target`]) from the revisions the controller saw Synced and Healthy.

pub mod verify;

use mooring_core::rollback::{RollbackPolicySpec, RollbackRule, RuleAction};
use mooring_core::time;
use std::time::{Duration, SystemTime};

/// Default evaluation interval.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
/// Shortest evaluation interval accepted (tests use about a second).
pub const MIN_INTERVAL: Duration = Duration::from_millis(200);
/// Longest query accepted (PromQL text, per query).
pub const MAX_QUERY_LEN: usize = 16 * 1024;
/// Most rules per policy (each is one or two queries per interval).
pub const MAX_RULES: usize = 64;
/// Healthy revisions remembered per Application.
pub const MAX_HEALTHY_REVISIONS: usize = 10;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RollbackError {
    #[error("RollbackPolicy: {0}")]
    Policy(String),
    #[error("rule {rule:?}: {message}")]
    Rule { rule: String, message: String },
}

fn rule_err(rule: &str, message: impl Into<String>) -> RollbackError {
    RollbackError::Rule {
        rule: rule.to_string(),
        message: message.into(),
    }
}

/// The comparison that is a breach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Gt,
    Ge,
    Lt,
    Le,
}

impl Operator {
    pub fn parse(s: &str) -> Option<Operator> {
        Some(match s.trim() {
            ">" => Operator::Gt,
            ">=" => Operator::Ge,
            "<" => Operator::Lt,
            "<=" => Operator::Le,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Operator::Gt => ">",
            Operator::Ge => ">=",
            Operator::Lt => "<",
            Operator::Le => "<=",
        }
    }

    /// `value OP threshold`; false when either is not a finite number.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        if !value.is_finite() || !threshold.is_finite() {
            return false;
        }
        match self {
            Operator::Gt => value > threshold,
            Operator::Ge => value >= threshold,
            Operator::Lt => value < threshold,
            Operator::Le => value <= threshold,
        }
    }
}

/// Where the threshold comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Relation {
    Absolute(f64),
    /// `baseline × ratio`.
    Ratio(f64),
    /// `baseline + offset`.
    Offset(f64),
}

impl Relation {
    /// The threshold for this baseline (`None` when relative and the baseline is missing
    /// or not a finite number).
    pub fn threshold(self, baseline: Option<f64>) -> Option<f64> {
        let t = match self {
            Relation::Absolute(v) => v,
            Relation::Ratio(r) => baseline? * r,
            Relation::Offset(o) => baseline? + o,
        };
        t.is_finite().then_some(t)
    }

    pub fn is_relative(self) -> bool {
        !matches!(self, Relation::Absolute(_))
    }

    /// `> 0.05`, `> 2 × baseline`, `< baseline - 0.05`.
    pub fn describe(self, op: Operator) -> String {
        match self {
            Relation::Absolute(v) => format!("{} {v}", op.as_str()),
            Relation::Ratio(r) => format!("{} {r} × baseline", op.as_str()),
            Relation::Offset(o) if o < 0.0 => format!("{} baseline - {}", op.as_str(), -o),
            Relation::Offset(o) => format!("{} baseline + {o}", op.as_str()),
        }
    }
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub query: String,
    pub baseline_query: Option<String>,
    pub operator: Operator,
    pub relation: Relation,
    pub for_: Duration,
    pub action: RuleAction,
}

impl Rule {
    /// `error_rate > 0.05 for 5m0s`.
    pub fn describe(&self) -> String {
        format!(
            "{} {} for {:?}",
            self.name,
            self.relation.describe(self.operator),
            self.for_
        )
    }
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub interval: Duration,
    pub rules: Vec<Rule>,
}

fn check_url(what: &str, url: &str) -> Result<(), RollbackError> {
    let u = url.trim();
    let rest = u
        .strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"));
    match rest {
        Some(r) if !r.is_empty() && !u.chars().any(char::is_whitespace) => Ok(()),
        _ => Err(RollbackError::Policy(format!(
            "{what} {url:?} is not an http(s) URL"
        ))),
    }
}

fn check_query(rule: &str, what: &str, q: &str) -> Result<String, RollbackError> {
    let q = q.trim();
    if q.is_empty() {
        return Err(rule_err(rule, format!("{what} is empty")));
    }
    if q.len() > MAX_QUERY_LEN {
        return Err(rule_err(
            rule,
            format!("{what} is {} bytes; at most {MAX_QUERY_LEN}", q.len()),
        ));
    }
    Ok(q.to_string())
}

fn duration(rule: Option<&str>, what: &str, s: &str) -> Result<Duration, RollbackError> {
    mooring_core::time::parse_go_duration(s).ok_or_else(|| {
        let message = format!("{what} {s:?} is not a duration (e.g. 30s, 5m, 1h30m)");
        match rule {
            Some(r) => rule_err(r, message),
            None => RollbackError::Policy(message),
        }
    })
}

/// Validate one rule.
pub fn compile_rule(r: &RollbackRule) -> Result<Rule, RollbackError> {
    let name = r.name.trim();
    if name.is_empty() {
        return Err(RollbackError::Policy("a rule has no name".into()));
    }
    let query = check_query(name, "query", &r.query)?;
    let operator = Operator::parse(&r.threshold.operator).ok_or_else(|| {
        rule_err(
            name,
            format!(
                "threshold.operator {:?} is not one of >, >=, <, <=",
                r.threshold.operator
            ),
        )
    })?;
    let t = &r.threshold;
    let relation = match (t.value, t.ratio, t.offset) {
        (Some(v), None, None) => Relation::Absolute(v),
        (None, Some(x), None) => Relation::Ratio(x),
        (None, None, Some(o)) => Relation::Offset(o),
        _ => {
            return Err(rule_err(
                name,
                "threshold needs exactly one of value (absolute), ratio (baseline × ratio) or offset (baseline + offset)",
            ))
        }
    };
    match relation {
        Relation::Absolute(v) | Relation::Ratio(v) | Relation::Offset(v) if !v.is_finite() => {
            return Err(rule_err(name, "threshold is not a finite number"))
        }
        Relation::Ratio(x) if x <= 0.0 => {
            return Err(rule_err(
                name,
                format!("threshold.ratio must be positive, not {x}"),
            ))
        }
        _ => {}
    }
    let baseline_query = match (&r.baseline, relation.is_relative()) {
        (Some(b), true) => Some(check_query(name, "baseline.query", &b.query)?),
        (None, true) => {
            return Err(rule_err(
                name,
                "threshold.ratio and threshold.offset are relative to a baseline: set baseline.query",
            ))
        }
        (Some(_), false) => {
            return Err(rule_err(
                name,
                "baseline is set but threshold.value is absolute; use ratio or offset to compare with the baseline",
            ))
        }
        (None, false) => None,
    };
    let for_ = match r.for_.as_deref() {
        Some(s) => duration(Some(name), "for", s)?,
        None => Duration::ZERO,
    };
    Ok(Rule {
        name: name.to_string(),
        query,
        baseline_query,
        operator,
        relation,
        for_,
        action: r.action,
    })
}

/// Validate a policy: every rule, unique rule names, interval, URLs.
pub fn compile(spec: &RollbackPolicySpec) -> Result<Policy, RollbackError> {
    if spec.rules.is_empty() {
        return Err(RollbackError::Policy("spec.rules is empty".into()));
    }
    if spec.rules.len() > MAX_RULES {
        return Err(RollbackError::Policy(format!(
            "spec.rules has {} rules; at most {MAX_RULES}",
            spec.rules.len()
        )));
    }
    let interval = match spec.interval.as_deref() {
        Some(s) => duration(None, "spec.interval", s)?,
        None => DEFAULT_INTERVAL,
    };
    if interval < MIN_INTERVAL {
        return Err(RollbackError::Policy(format!(
            "spec.interval {interval:?} is shorter than {MIN_INTERVAL:?}"
        )));
    }
    if let Some(p) = &spec.prometheus {
        check_url("spec.prometheus.address", &p.address)?;
    }
    if let Some(w) = spec.incident.as_ref().and_then(|i| i.webhook.as_ref()) {
        check_url("spec.incident.webhook.url", &w.url)?;
        for h in &w.headers {
            let from_secret = h
                .value_from
                .as_ref()
                .map(|f| !f.secret_key_ref.name.is_empty() && !f.secret_key_ref.key.is_empty());
            let valid = !h.name.is_empty()
                && h.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
                && !h.value.contains(['\r', '\n'])
                && match from_secret {
                    // Exactly one of value and valueFrom.secretKeyRef {name, key}.
                    Some(ok) => ok && h.value.is_empty(),
                    None => !h.value.is_empty(),
                };
            if !valid {
                return Err(RollbackError::Policy(format!(
                    "spec.incident.webhook.headers: {:?} is not a valid header (a token name and exactly one of a one-line value or valueFrom.secretKeyRef {{name, key}})",
                    h.name
                )));
            }
        }
    }
    if let Some(g) = &spec.git_revert {
        check_git_revert(g)?;
    }
    let mut rules: Vec<Rule> = Vec::with_capacity(spec.rules.len());
    for r in &spec.rules {
        let rule = compile_rule(r)?;
        if rules.iter().any(|x| x.name == rule.name) {
            return Err(rule_err(&rule.name, "two rules have this name"));
        }
        rules.push(rule);
    }
    Ok(Policy { interval, rules })
}

/// `spec.gitRevert`: a pull request needs its forge and token; nothing else is read.
fn check_git_revert(g: &mooring_core::rollback::GitRevertSpec) -> Result<(), RollbackError> {
    use mooring_core::rollback::GitRevertMode;
    let err = |m: String| Err(RollbackError::Policy(format!("spec.gitRevert: {m}")));
    match (g.mode, &g.pull_request) {
        (GitRevertMode::PullRequest, None) => {
            err("mode pullRequest needs pullRequest {provider, tokenSecretRef}".into())
        }
        (GitRevertMode::Direct, Some(_)) => {
            err("pullRequest is set but mode is direct (no pull request is opened)".into())
        }
        (GitRevertMode::Direct, None) => Ok(()),
        (GitRevertMode::PullRequest, Some(pr)) => {
            if !["github", "gitlab", "gitea"].contains(&pr.provider.as_str()) {
                return err(format!(
                    "pullRequest.provider {:?}: use github, gitlab or gitea",
                    pr.provider
                ));
            }
            if pr.token_secret_ref.name.is_empty() || pr.token_secret_ref.key.is_empty() {
                return err("pullRequest.tokenSecretRef needs name and key".into());
            }
            if let Some(u) = &pr.api_url {
                check_url("spec.gitRevert.pullRequest.apiUrl", u)?;
            }
            Ok(())
        }
    }
}

/// One query's result, reduced.
#[derive(Debug, Clone, PartialEq)]
pub enum Measurement {
    Value(f64),
    /// Empty result or NaN: never a breach.
    NoData(String),
    Error(String),
}

/// Reduce a query's samples to one measurement: none is no data, one is its value (NaN
/// is no data), several are an error (the query must aggregate to one series).
pub fn reduce(samples: &[f64]) -> Measurement {
    match samples {
        [] => Measurement::NoData("the query returned no data".into()),
        [v] if v.is_nan() => Measurement::NoData("the query returned NaN".into()),
        [v] => Measurement::Value(*v),
        many => Measurement::Error(format!(
            "the query returned {} series; aggregate it to one (e.g. sum(…) or max(…))",
            many.len()
        )),
    }
}

/// The breach state of one rule (persisted in the rule's status).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BreachState {
    pub breaching_since: Option<SystemTime>,
    pub fired_at: Option<SystemTime>,
}

/// What an evaluation concluded.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Ok,
    NoData,
    /// Breaching, not yet for `for`.
    Pending {
        remaining: Duration,
    },
    /// Breaching for `for` now: the action must run (once).
    Fire,
    /// Still breaching after having fired.
    Firing,
    Error,
}

impl Outcome {
    /// The rule status' `state`.
    pub fn state(&self) -> &'static str {
        match self {
            Outcome::Ok => "Ok",
            Outcome::NoData => "NoData",
            Outcome::Pending { .. } => "Pending",
            Outcome::Fire | Outcome::Firing => "Firing",
            Outcome::Error => "Error",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub state: BreachState,
    pub outcome: Outcome,
    pub value: Option<f64>,
    pub baseline: Option<f64>,
    pub threshold: Option<f64>,
    /// Human-readable: the value against the threshold, or why there is none.
    pub message: String,
}

/// One evaluation of `rule`: `value` is the query's measurement, `baseline` the baseline
/// query's (ignored for absolute thresholds).
pub fn evaluate(
    rule: &Rule,
    prev: BreachState,
    value: &Measurement,
    baseline: Option<&Measurement>,
    now: SystemTime,
) -> Evaluation {
    let num = |m: Option<&Measurement>| match m {
        Some(Measurement::Value(v)) => Some(*v),
        _ => None,
    };
    let (v, b) = (num(Some(value)), num(baseline));
    let mut out = Evaluation {
        state: prev,
        outcome: Outcome::Error,
        value: v,
        baseline: b,
        threshold: None,
        message: String::new(),
    };
    // Errors first: they leave the state as it was.
    if let Measurement::Error(e) = value {
        out.message = format!("query: {e}");
        return out;
    }
    if rule.relation.is_relative() {
        match baseline {
            Some(Measurement::Error(e)) => {
                out.message = format!("baseline query: {e}");
                return out;
            }
            Some(Measurement::NoData(why)) => {
                out.state = BreachState::default();
                out.outcome = Outcome::NoData;
                out.message = format!("baseline: {why}");
                return out;
            }
            Some(Measurement::Value(_)) => {}
            None => {
                out.state = BreachState::default();
                out.outcome = Outcome::NoData;
                out.message = "baseline: not measured".into();
                return out;
            }
        }
    }
    let Some(v) = v else {
        out.state = BreachState::default();
        out.outcome = Outcome::NoData;
        if let Measurement::NoData(why) = value {
            out.message = why.clone();
        }
        return out;
    };
    let Some(t) = rule.relation.threshold(b) else {
        out.state = BreachState::default();
        out.outcome = Outcome::NoData;
        out.message = format!("no finite threshold from baseline {b:?}");
        return out;
    };
    out.threshold = Some(t);
    let base = b.map(|b| format!(" (baseline {b})")).unwrap_or_default();
    if !rule.operator.holds(v, t) {
        out.state = BreachState::default();
        out.outcome = Outcome::Ok;
        out.message = format!("{v} is not {} {t}{base}", rule.operator.as_str());
        return out;
    }
    let since = prev.breaching_since.filter(|s| *s <= now).unwrap_or(now);
    let held = now.duration_since(since).unwrap_or_default();
    out.state.breaching_since = Some(since);
    out.message = format!(
        "{v} {} {t}{base}, breaching for {}",
        rule.operator.as_str(),
        human(held)
    );
    if prev.fired_at.is_some() {
        out.outcome = Outcome::Firing;
    } else if held >= rule.for_ {
        out.state.fired_at = Some(now);
        out.outcome = Outcome::Fire;
    } else {
        out.outcome = Outcome::Pending {
            remaining: rule.for_ - held,
        };
    }
    out
}

fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        format!("{}m{}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

/// RFC 3339 (UTC, seconds with millisecond precision) for status fields.
/// A `SystemTime` outside jiff's range (years -9999..=9999) is clamped to that range.
pub fn format_time(t: SystemTime) -> String {
    let ts = time::Timestamp::try_from(t).unwrap_or(if t < SystemTime::UNIX_EPOCH {
        time::Timestamp::MIN
    } else {
        time::Timestamp::MAX
    });
    time::format_millis(ts)
}

/// Parse a status timestamp (`None` when absent or malformed: a hand-edited status
/// never breaks the loop, it only restarts the breach timing).
pub fn parse_time(s: Option<&str>) -> Option<SystemTime> {
    time::parse(s?.trim()).ok().map(SystemTime::from)
}

/// The revision to roll back to: the newest healthy revision (oldest first in
/// `healthy`) that is not the one deployed now.
pub fn rollback_target(healthy: &[String], current: Option<&str>) -> Option<String> {
    healthy
        .iter()
        .rev()
        .find(|r| Some(r.as_str()) != current && !r.is_empty())
        .cloned()
}

/// Remember `revision` as the newest healthy one (moved to the end when already known;
/// at most [`MAX_HEALTHY_REVISIONS`] kept). Returns whether the list changed.
pub fn record_healthy(healthy: &mut Vec<String>, revision: &str) -> bool {
    if revision.is_empty() || healthy.last().map(String::as_str) == Some(revision) {
        return false;
    }
    healthy.retain(|r| r != revision);
    healthy.push(revision.to_string());
    let excess = healthy.len().saturating_sub(MAX_HEALTHY_REVISIONS);
    healthy.drain(..excess);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use mooring_core::rollback::{BaselineSpec, Threshold};

    fn rule(threshold: Threshold, baseline: bool, for_: &str) -> RollbackRule {
        RollbackRule {
            name: "r".into(),
            query: "q".into(),
            baseline: baseline.then(|| BaselineSpec { query: "b".into() }),
            threshold,
            for_: Some(for_.into()),
            action: RuleAction::AutomaticRollback,
        }
    }

    fn th(op: &str, value: Option<f64>, ratio: Option<f64>, offset: Option<f64>) -> Threshold {
        Threshold {
            operator: op.into(),
            value,
            ratio,
            offset,
        }
    }

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    #[test]
    fn relations_and_thresholds() {
        let v = Measurement::Value;
        // (threshold, baseline, value, breaches)
        let cases = [
            (th(">", Some(0.05), None, None), None, 0.2, true),
            (th(">", Some(0.05), None, None), None, 0.05, false),
            (th(">=", Some(0.05), None, None), None, 0.05, true),
            (th("<", Some(0.99), None, None), None, 0.98, true),
            (th("<=", Some(0.99), None, None), None, 1.0, false),
            // p99 above 2 × baseline
            (th(">", None, Some(2.0), None), Some(0.1), 0.25, true),
            (th(">", None, Some(2.0), None), Some(0.1), 0.15, false),
            // accuracy below baseline − 0.05
            (th("<", None, None, Some(-0.05)), Some(0.95), 0.80, true),
            (th("<", None, None, Some(-0.05)), Some(0.95), 0.93, false),
        ];
        for (i, (threshold, base, value, breaches)) in cases.into_iter().enumerate() {
            let r = compile_rule(&rule(threshold, base.is_some(), "0s")).expect("valid");
            let b = base.map(v);
            let e = evaluate(&r, BreachState::default(), &v(value), b.as_ref(), t(0));
            assert_eq!(e.outcome == Outcome::Fire, breaches, "case {i}: {e:?}");
            assert!(e.threshold.is_some(), "case {i}");
        }
    }

    #[test]
    fn breach_must_hold_for_the_duration_and_fires_once() {
        let r = compile_rule(&rule(th(">", Some(0.05), None, None), false, "3m")).expect("r");
        let bad = Measurement::Value(0.2);
        let good = Measurement::Value(0.01);
        let s0 = BreachState::default();
        let e1 = evaluate(&r, s0, &bad, None, t(0));
        assert_eq!(
            e1.outcome,
            Outcome::Pending {
                remaining: Duration::from_secs(180)
            }
        );
        assert_eq!(e1.state.breaching_since, Some(t(0)));
        let e2 = evaluate(&r, e1.state, &bad, None, t(179));
        assert!(matches!(e2.outcome, Outcome::Pending { .. }));
        let e3 = evaluate(&r, e2.state, &bad, None, t(180));
        assert_eq!(e3.outcome, Outcome::Fire);
        assert_eq!(e3.state.fired_at, Some(t(180)));
        // Still breaching: fired already, does not fire again.
        let e4 = evaluate(&r, e3.state, &bad, None, t(400));
        assert_eq!(e4.outcome, Outcome::Firing);
        assert_eq!(e4.state, e3.state);
        // One good sample ends the breach; a new breach starts from zero.
        let e5 = evaluate(&r, e4.state, &good, None, t(401));
        assert_eq!(e5.outcome, Outcome::Ok);
        assert_eq!(e5.state, BreachState::default());
        let e6 = evaluate(&r, e5.state, &bad, None, t(402));
        assert!(matches!(e6.outcome, Outcome::Pending { .. }));
    }

    #[test]
    fn a_breach_shorter_than_for_never_fires() {
        let r = compile_rule(&rule(th(">", Some(0.05), None, None), false, "10s")).expect("r");
        let mut s = BreachState::default();
        for (at, v) in [
            (0, 0.2),
            (5, 0.2),
            (9, 0.2),
            (10, 0.0),
            (15, 0.2),
            (19, 0.3),
        ] {
            let e = evaluate(&r, s, &Measurement::Value(v), None, t(at));
            assert_ne!(e.outcome, Outcome::Fire, "at {at}");
            s = e.state;
        }
    }

    #[test]
    fn no_data_and_nan_never_breach_and_reset() {
        let r = compile_rule(&rule(th(">", Some(0.05), None, None), false, "0s")).expect("r");
        let pending = BreachState {
            breaching_since: Some(t(0)),
            fired_at: None,
        };
        for m in [reduce(&[]), reduce(&[f64::NAN])] {
            let e = evaluate(&r, pending, &m, None, t(10));
            assert_eq!(e.outcome, Outcome::NoData, "{m:?}");
            assert_eq!(e.state, BreachState::default());
        }
        // Below-threshold comparisons with NaN are false too (`< 0.99` on NaN).
        let r = compile_rule(&rule(th("<", Some(0.99), None, None), false, "0s")).expect("r");
        let e = evaluate(&r, pending, &reduce(&[f64::NAN]), None, t(10));
        assert_eq!(e.outcome, Outcome::NoData);
        // +Inf is a value: an infinite error rate is not a number to compare.
        assert!(!Operator::Gt.holds(f64::INFINITY, 1.0));
    }

    #[test]
    fn missing_or_odd_baseline_is_no_data() {
        let r = compile_rule(&rule(th(">", None, Some(2.0), None), true, "0s")).expect("r");
        let v = Measurement::Value(1.0);
        let e = evaluate(&r, BreachState::default(), &v, Some(&reduce(&[])), t(0));
        assert_eq!(e.outcome, Outcome::NoData);
        let e = evaluate(&r, BreachState::default(), &v, None, t(0));
        assert_eq!(e.outcome, Outcome::NoData);
        let inf = Measurement::Value(f64::INFINITY);
        let e = evaluate(&r, BreachState::default(), &v, Some(&inf), t(0));
        assert_eq!(e.outcome, Outcome::NoData, "{e:?}");
    }

    #[test]
    fn errors_keep_the_state() {
        let r = compile_rule(&rule(th(">", None, Some(2.0), None), true, "1m")).expect("r");
        let s = BreachState {
            breaching_since: Some(t(0)),
            fired_at: None,
        };
        let err = Measurement::Error("connection refused".into());
        let e = evaluate(&r, s, &err, Some(&Measurement::Value(1.0)), t(120));
        assert_eq!(e.outcome, Outcome::Error);
        assert_eq!(e.state, s);
        assert!(e.message.contains("connection refused"));
        let e = evaluate(&r, s, &Measurement::Value(5.0), Some(&err), t(120));
        assert_eq!(e.outcome, Outcome::Error);
        assert_eq!(e.state, s);
        assert!(e.message.starts_with("baseline query"));
        // Several series are an error, not a guess.
        assert!(matches!(reduce(&[1.0, 2.0]), Measurement::Error(m) if m.contains("2 series")));
    }

    #[test]
    fn a_clock_step_back_does_not_panic_or_fire() {
        let r = compile_rule(&rule(th(">", Some(0.0), None, None), false, "1m")).expect("r");
        let s = BreachState {
            breaching_since: Some(t(100)),
            fired_at: None,
        };
        let e = evaluate(&r, s, &Measurement::Value(1.0), None, t(50));
        assert!(matches!(e.outcome, Outcome::Pending { .. }), "{e:?}");
    }

    #[test]
    fn invalid_rules_are_rejected_with_the_reason() {
        let cases: [(RollbackRule, &str); 9] = [
            (
                rule(th("=>", Some(1.0), None, None), false, "1m"),
                "operator",
            ),
            (rule(th(">", None, None, None), false, "1m"), "exactly one"),
            (
                rule(th(">", Some(1.0), Some(2.0), None), true, "1m"),
                "exactly one",
            ),
            (
                rule(th(">", None, Some(2.0), None), false, "1m"),
                "baseline.query",
            ),
            (rule(th(">", Some(1.0), None, None), true, "1m"), "absolute"),
            (
                rule(th(">", None, Some(-1.0), None), true, "1m"),
                "positive",
            ),
            (
                rule(th(">", Some(f64::NAN), None, None), false, "1m"),
                "finite",
            ),
            (
                rule(th(">", Some(1.0), None, None), false, "5 minutes"),
                "duration",
            ),
            (
                RollbackRule {
                    query: "  ".into(),
                    ..rule(th(">", Some(1.0), None, None), false, "1m")
                },
                "query is empty",
            ),
        ];
        for (r, want) in cases {
            let e = compile_rule(&r).expect_err("invalid").to_string();
            assert!(e.contains(want), "{e} should mention {want}");
            assert!(e.contains("rule \"r\""), "{e}");
        }
    }

    #[test]
    fn invalid_policies_are_rejected() {
        let good = rule(th(">", Some(1.0), None, None), false, "1m");
        let spec = |f: &dyn Fn(&mut RollbackPolicySpec)| {
            let mut s = RollbackPolicySpec {
                rules: vec![good.clone()],
                ..Default::default()
            };
            f(&mut s);
            compile(&s)
        };
        assert!(spec(&|_| {}).is_ok());
        assert_eq!(spec(&|_| {}).expect("ok").interval, DEFAULT_INTERVAL);
        type Edit<'a> = &'a dyn Fn(&mut RollbackPolicySpec);
        let bad: [(Edit, &str); 6] = [
            (&|s| s.rules.clear(), "rules is empty"),
            (&|s| s.rules.push(good.clone()), "two rules"),
            (&|s| s.interval = Some("0s".into()), "shorter"),
            (&|s| s.interval = Some("soon".into()), "not a duration"),
            (
                &|s| {
                    s.prometheus = Some(mooring_core::rollback::PrometheusRef {
                        address: "file:///etc/passwd".into(),
                    })
                },
                "http(s)",
            ),
            (
                &|s| {
                    s.incident = Some(mooring_core::rollback::IncidentSpec {
                        webhook: Some(mooring_core::rollback::WebhookSpec {
                            url: "http://x".into(),
                            headers: vec![mooring_core::rollback::WebhookHeader {
                                name: "X".into(),
                                value: "a\r\nInjected: 1".into(),
                                value_from: None,
                            }],
                        }),
                    })
                },
                "header",
            ),
        ];
        for (f, want) in bad {
            let e = spec(f).expect_err("invalid").to_string();
            assert!(e.contains(want), "{e} should mention {want}");
        }
        let many = vec![good.clone(); MAX_RULES + 1];
        let e = spec(&|s| s.rules = many.clone()).expect_err("too many");
        assert!(e.to_string().contains("at most 64"), "{e}");
        let long = "x".repeat(MAX_QUERY_LEN + 1);
        let e = spec(&|s| s.rules[0].query = long.clone()).expect_err("long");
        assert!(e.to_string().contains("at most"));
    }

    #[test]
    fn rollback_target_and_healthy_history() {
        let mut h = vec![];
        assert!(record_healthy(&mut h, "a"));
        assert!(!record_healthy(&mut h, "a"));
        assert!(record_healthy(&mut h, "b"));
        assert!(record_healthy(&mut h, "a"));
        assert_eq!(h, vec!["b", "a"]);
        assert_eq!(rollback_target(&h, Some("a")), Some("b".into()));
        assert_eq!(rollback_target(&h, Some("c")), Some("a".into()));
        assert_eq!(rollback_target(&["a".to_string()], Some("a")), None);
        assert_eq!(rollback_target(&[], None), None);
        for i in 0..30 {
            record_healthy(&mut h, &i.to_string());
        }
        assert_eq!(h.len(), MAX_HEALTHY_REVISIONS);
        assert_eq!(h.last().map(String::as_str), Some("29"));
    }

    #[test]
    fn times_round_trip() {
        let now = t(42) + Duration::from_millis(5);
        let s = format_time(now);
        assert!(s.ends_with('Z'), "{s}");
        assert_eq!(parse_time(Some(&s)), Some(now));
        assert_eq!(parse_time(Some("yesterday")), None);
        assert_eq!(parse_time(None), None);
    }

    #[test]
    fn descriptions_read_like_the_rule() {
        let r = compile_rule(&rule(th("<", None, None, Some(-0.05)), true, "10m")).expect("r");
        assert_eq!(r.describe(), "r < baseline - 0.05 for 600s");
        let r = compile_rule(&rule(th(">", None, Some(2.0), None), true, "3m")).expect("r");
        assert_eq!(r.relation.describe(r.operator), "> 2 × baseline");
    }

    #[test]
    fn the_example_seed_rules_compile() {
        for (text, action) in [
            (
                include_str!(
                    "../../../examples/ml-platform/rollback/production/model-serving.yaml"
                ),
                RuleAction::CreateIncidentAndRollback,
            ),
            (
                include_str!(
                    "../../../examples/ml-platform/rollback/development/model-serving.yaml"
                ),
                RuleAction::Notify,
            ),
        ] {
            let v = mooring_core::yaml::parse_one(text).expect("yaml");
            let p: mooring_core::rollback::RollbackPolicy =
                serde_json::from_value(v).expect("policy");
            let c = compile(&p.spec).expect("valid");
            let got: Vec<(String, Relation, Operator, Duration)> = c
                .rules
                .iter()
                .map(|r| (r.name.clone(), r.relation, r.operator, r.for_))
                .collect();
            let m = |n: u64| Duration::from_secs(60 * n);
            assert_eq!(
                got,
                vec![
                    (
                        "error_rate".into(),
                        Relation::Absolute(0.05),
                        Operator::Gt,
                        m(5)
                    ),
                    (
                        "p99_latency".into(),
                        Relation::Ratio(2.0),
                        Operator::Gt,
                        m(3)
                    ),
                    (
                        "availability".into(),
                        Relation::Absolute(0.99),
                        Operator::Lt,
                        m(2)
                    ),
                    (
                        "model_accuracy".into(),
                        Relation::Offset(-0.05),
                        Operator::Lt,
                        m(10)
                    ),
                ]
            );
            assert!(c.rules.iter().all(|r| r.action == action));
        }
    }

    #[test]
    fn git_revert_settings_are_checked() {
        let with = |g: serde_json::Value| {
            let spec: RollbackPolicySpec = serde_json::from_value(serde_json::json!({
                "rules": [{"name": "r", "query": "up", "threshold": {"operator": ">", "value": 1}, "action": "automatic_rollback"}],
                "gitRevert": g,
            }))
            .expect("spec");
            compile(&spec).map(drop).map_err(|e| e.to_string())
        };
        assert_eq!(with(serde_json::json!({"mode": "direct"})), Ok(()));
        let ok = serde_json::json!({"mode": "pullRequest", "pullRequest": {"provider": "github", "tokenSecretRef": {"name": "t", "key": "token"}}});
        assert_eq!(with(ok), Ok(()));
        for (bad, says) in [
            (
                serde_json::json!({"mode": "pullRequest"}),
                "needs pullRequest",
            ),
            (
                serde_json::json!({"mode": "direct", "pullRequest": {"provider": "github", "tokenSecretRef": {"name": "t", "key": "k"}}}),
                "mode is direct",
            ),
            (
                serde_json::json!({"mode": "pullRequest", "pullRequest": {"provider": "bitbucket", "tokenSecretRef": {"name": "t", "key": "k"}}}),
                "bitbucket",
            ),
            (
                serde_json::json!({"mode": "pullRequest", "pullRequest": {"provider": "gitea", "tokenSecretRef": {"name": "", "key": "k"}}}),
                "tokenSecretRef",
            ),
            (
                serde_json::json!({"mode": "pullRequest", "pullRequest": {"provider": "gitea", "apiUrl": "ftp://x", "tokenSecretRef": {"name": "t", "key": "k"}}}),
                "apiUrl",
            ),
        ] {
            let e = with(bad.clone()).expect_err("invalid");
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
