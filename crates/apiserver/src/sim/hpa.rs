//! The HorizontalPodAutoscaler controller (`autoscaling/v2`; v1 objects are the same
//! objects, see [`crate::convert`]).
//!
//! Every sync period (15 s, scaled by [`super::SimOptions::speed`]) and on every change
//! of an HPA, it reads the target's scale subresource (any kind that has one:
//! Deployments, StatefulSets, ReplicaSets, Argo Rollouts and other CRDs declaring
//! `subresources.scale`), the simulated usage of the Pods its selector matches
//! ([`super::usage`]) and computes the replica count the way kube-controller-manager's
//! replica calculator does:
//!
//! - per metric, `ratio = current / target`; within the 10 % tolerance nothing changes,
//!   otherwise `desired = ceil(ratio × ready Pods)`. Pods without metrics yet (Pending,
//!   starting) count as using nothing when scaling up and as exactly on target when
//!   scaling down, as in Kubernetes, so a scale-up does not overshoot;
//! - metrics: `Resource` `cpu` / `memory` with `Utilization` (percent of the requests:
//!   a container without a request is an error, as in Kubernetes) or `AverageValue`, and
//!   the `Pods` metric [`super::usage::REQUESTS_PER_SECOND_METRIC`] (the simulated request
//!   rate). Other Pods metrics and `Object` / `External` / `ContainerResource` metrics
//!   have no source here: the HPA reports `ScalingActive=False` with the real reason
//!   (`FailedGetPodsMetric`, …) and a Warning Event naming them;
//! - the largest proposal of all metrics wins; then `behavior`: stabilisation windows
//!   (scale-down 300 s by default) and rate policies (up: 4 Pods or 100 % per 15 s,
//!   down: 100 % per 15 s by default; `selectPolicy` Max/Min/Disabled), all scaled by the
//!   sim speed; then `minReplicas` / `maxReplicas`.
//!
//! Status as the real controller writes it: `currentReplicas`, `desiredReplicas`,
//! `currentMetrics`, `lastScaleTime`, `observedGeneration` and the conditions
//! `AbleToScale` (`SucceededRescale`, `ReadyForNewScale`, `ScaleDownStabilized`,
//! `FailedGetScale`, `FailedUpdateScale`), `ScalingActive` (`ValidMetricFound`,
//! `ScalingDisabled`, `FailedGetResourceMetric`, …) and `ScalingLimited`
//! (`DesiredWithinRange`, `TooManyReplicas`, `TooFewReplicas`, `ScaleUpLimit`,
//! `ScaleDownLimit`), with the Events `SuccessfulRescale` ("New size: 4; reason: cpu
//! resource utilization (percentage of request) above target"), `FailedGetScale`,
//! `FailedComputeMetricsReplicas` and `FailedGetResourceMetric`.

use super::usage::{self, REQUESTS_PER_SECOND_METRIC};
use super::util::{self, i64_at, str_at};
use super::{res, Controller, Ctx};
use crate::error::ApiError;
use crate::selector::LabelSelector;
use crate::store::{Event, ObjKey};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;

pub const RESOURCE: &str = "autoscaling/horizontalpodautoscalers";
/// Kubernetes' `--horizontal-pod-autoscaler-sync-period`.
const SYNC_PERIOD_SECONDS: f64 = 15.0;
/// Kubernetes' `--horizontal-pod-autoscaler-tolerance`.
pub const TOLERANCE: f64 = 0.1;
/// Reported as the source of this controller's Events.
const COMPONENT: &str = "horizontal-pod-autoscaler";
/// Remembered recommendations and scale events per HPA (beyond the longest window
/// nothing is needed; this only bounds memory against absurd windows).
const MAX_HISTORY: usize = 512;

#[derive(Default)]
pub struct HpaController {
    state: HashMap<ObjKey, History>,
}

#[derive(Default)]
struct History {
    /// (when, pre-normalisation desired replicas).
    recommendations: VecDeque<(Instant, i64)>,
    /// (when, replica change) of the rescales this controller made.
    scale_events: VecDeque<(Instant, i64)>,
}

/// A scaling rule (`behavior.scaleUp` / `scaleDown`) with Kubernetes' defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub stabilization_seconds: f64,
    pub select: String,
    /// (type `Pods`/`Percent`, value, periodSeconds).
    pub policies: Vec<(String, i64, f64)>,
}

impl Rules {
    fn parse(v: Option<&Value>, up: bool) -> Rules {
        let default_policies = if up {
            vec![
                ("Pods".to_string(), 4, 15.0),
                ("Percent".to_string(), 100, 15.0),
            ]
        } else {
            vec![("Percent".to_string(), 100, 15.0)]
        };
        let stabilization_seconds = v
            .and_then(|v| v.get("stabilizationWindowSeconds"))
            .and_then(Value::as_f64)
            .unwrap_or(if up { 0.0 } else { 300.0 })
            .clamp(0.0, 3600.0);
        let select = v
            .and_then(|v| v.get("selectPolicy"))
            .and_then(Value::as_str)
            .unwrap_or("Max")
            .to_string();
        let policies = v
            .and_then(|v| v.get("policies"))
            .and_then(Value::as_array)
            .map(|ps| {
                ps.iter()
                    .filter_map(|p| {
                        Some((
                            p.get("type")?.as_str()?.to_string(),
                            p.get("value")?.as_i64()?,
                            p.get("periodSeconds")?.as_f64()?.clamp(1.0, 1800.0),
                        ))
                    })
                    .collect::<Vec<_>>()
            })
            .filter(|p| !p.is_empty())
            .unwrap_or(default_policies);
        Rules {
            stabilization_seconds,
            select,
            policies,
        }
    }
}

/// Replicas proposed by one metric, with what it measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub replicas: i64,
    /// "cpu resource utilization (percentage of request)", as in the rescale reason.
    pub metric_name: String,
    /// The `currentMetrics` entry.
    pub current: Value,
}

/// The replica calculator for one metric: `values` per Pod (ready Pods with metrics),
/// `missing` Pods without metrics yet, `target` the per-Pod target, all in the same
/// unit. Returns (replicas, ratio).
pub fn replicas_for(current: i64, values: &[f64], missing: usize, target: f64) -> (i64, f64) {
    if values.is_empty() || target <= 0.0 {
        return (current, 1.0);
    }
    let n = values.len() as f64;
    let sum: f64 = values.iter().sum();
    let ratio = sum / n / target;
    if missing == 0 {
        if (ratio - 1.0).abs() <= TOLERANCE {
            return (current, ratio);
        }
        return ((ratio * n).ceil() as i64, ratio);
    }
    // Missing Pods: 0 when scaling up, the target when scaling down, then recompute.
    let fill = if ratio > 1.0 { 0.0 } else { target };
    let total = n + missing as f64;
    let new_ratio = (sum + fill * missing as f64) / total / target;
    if (new_ratio - 1.0).abs() <= TOLERANCE
        || (ratio > 1.0 && new_ratio < 1.0)
        || (ratio < 1.0 && new_ratio > 1.0)
    {
        return (current, ratio);
    }
    let proposed = (new_ratio * total).ceil() as i64;
    if (new_ratio > 1.0 && proposed < current) || (new_ratio < 1.0 && proposed > current) {
        return (current, ratio);
    }
    (proposed, ratio)
}

/// Stabilisation (Kubernetes' `stabilizeRecommendationWithBehaviors`): the result and
/// whether it was held back.
pub fn stabilize(
    current: i64,
    desired: i64,
    history: &[(f64, i64)],
    up: &Rules,
    down: &Rules,
) -> (i64, Option<&'static str>) {
    let (mut min_rec, mut max_rec) = (desired, desired);
    for &(age, r) in history {
        if age < up.stabilization_seconds {
            min_rec = min_rec.min(r);
        }
        if age < down.stabilization_seconds {
            max_rec = max_rec.max(r);
        }
    }
    let mut rec = current;
    if rec < min_rec {
        rec = min_rec;
    }
    if rec > max_rec {
        rec = max_rec;
    }
    let reason = if rec != desired {
        Some(if rec > desired {
            "ScaleDownStabilized"
        } else {
            "ScaleUpStabilized"
        })
    } else {
        None
    };
    (rec, reason)
}

/// The rate limits (Kubernetes' `calculateScaleUpLimitWithScalingRules` and
/// `…ScaleDownLimit…`). `events` are (age in seconds, replica change).
pub fn scale_limit(current: i64, events: &[(f64, i64)], rules: &Rules, up: bool) -> i64 {
    if rules.select == "Disabled" {
        return current;
    }
    let mut limits = Vec::new();
    for (kind, value, period) in &rules.policies {
        let changed: i64 = events
            .iter()
            .filter(|(age, change)| *age < *period && (*change > 0) == up)
            .map(|(_, c)| c.abs())
            .sum();
        let start = if up {
            current - changed
        } else {
            current + changed
        };
        let limit = match (kind.as_str(), up) {
            ("Pods", true) => start + value,
            ("Pods", false) => start - value,
            ("Percent", true) => (start as f64 * (1.0 + *value as f64 / 100.0)).ceil() as i64,
            (_, false) => (start as f64 * (1.0 - *value as f64 / 100.0)).floor() as i64,
            _ => start,
        };
        limits.push(limit);
    }
    // "Max" picks the policy allowing the most change: the highest limit up, the
    // lowest down; "Min" the least.
    let most_change = rules.select != "Min";
    let picked = if up == most_change {
        limits.iter().max()
    } else {
        limits.iter().min()
    };
    picked.copied().unwrap_or(current)
}

/// Rate limits and min/max (Kubernetes' `convertDesiredReplicasWithBehaviorRate`):
/// the replicas and the `ScalingLimited` (reason, message).
#[allow(clippy::too_many_arguments)]
pub fn limit(
    current: i64,
    desired: i64,
    min: i64,
    max: i64,
    events: &[(f64, i64)],
    up: &Rules,
    down: &Rules,
) -> (i64, &'static str, &'static str) {
    if desired > current {
        let up_limit = scale_limit(current, events, up, true).max(current);
        let allowed = up_limit.min(max);
        if desired > allowed {
            return if allowed == up_limit && up_limit < max {
                (
                    allowed,
                    "ScaleUpLimit",
                    "the desired replica count is increasing faster than the maximum scale rate",
                )
            } else {
                (
                    allowed,
                    "TooManyReplicas",
                    "the desired replica count is more than the maximum replica count",
                )
            };
        }
    } else if desired < current {
        let down_limit = scale_limit(current, events, down, false).min(current);
        let allowed = down_limit.max(min);
        if desired < allowed {
            return if allowed == down_limit && down_limit > min {
                (
                    allowed,
                    "ScaleDownLimit",
                    "the desired replica count is decreasing faster than the maximum scale rate",
                )
            } else {
                (
                    allowed,
                    "TooFewReplicas",
                    "the desired replica count is less than the minimum replica count",
                )
            };
        }
    }
    if desired > max {
        return (
            max,
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count",
        );
    }
    if desired < min {
        return (
            min,
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count",
        );
    }
    (
        desired,
        "DesiredWithinRange",
        "the desired count is within the acceptable range",
    )
}

/// A failure to compute a metric: (condition reason, message).
type MetricError = (&'static str, String);

/// Per-Pod figures of a resource.
struct ResourceValues {
    /// Usage per ready Pod with metrics.
    values: Vec<f64>,
    /// The request of each of those Pods.
    requests: Vec<Option<f64>>,
    /// Pods without metrics (yet).
    missing: usize,
}

fn resource_values(pods: &[Value], name: &str) -> Result<ResourceValues, String> {
    let mut values = Vec::new();
    let mut requests = Vec::new();
    let mut missing = 0;
    for p in pods {
        if !usage::has_metrics(p) {
            missing += 1;
            continue;
        }
        // CPU of unready Pods is ignored (they may be starting up), as in Kubernetes.
        if name == "cpu" && !util::pod::is_ready(p) {
            missing += 1;
            continue;
        }
        let u = usage::pod_usage(p);
        let v: f64 = u
            .iter()
            .map(|c| {
                if name == "cpu" {
                    c.cpu_nanos as f64 / 1e9
                } else {
                    c.memory_bytes as f64
                }
            })
            .sum();
        values.push(v);
        let reqs = usage::requests(p, name);
        if let Some(i) = reqs.iter().position(Option::is_none) {
            let container = p
                .pointer(&format!("/spec/containers/{i}/name"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            requests.push(None);
            return Err(format!(
                "missing request for {name} in container {container} of Pod {}",
                util::name_of(p)
            ));
        }
        requests.push(Some(reqs.iter().flatten().sum()));
    }
    Ok(ResourceValues {
        values,
        requests,
        missing,
    })
}

fn format_value(name: &str, v: f64) -> String {
    if name == "cpu" {
        format!("{}m", (v * 1000.0).round() as i64)
    } else {
        format!("{}", v.round() as i64)
    }
}

/// One metric's proposal.
fn compute(metric: &Value, pods: &[Value], current: i64) -> Result<Proposal, MetricError> {
    let t = metric
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match t {
        "Resource" => {
            let name = metric
                .pointer("/resource/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let target = metric.pointer("/resource/target").cloned().unwrap_or_default();
            let fail = |m: String| {
                (
                    "FailedGetResourceMetric",
                    format!("the HPA was unable to compute the replica count: failed to get {name} utilization: {m}"),
                )
            };
            if name != "cpu" && name != "memory" {
                return Err(fail(format!("unable to get metrics for resource {name}: no metrics returned from resource metrics API")));
            }
            let ResourceValues {
                values,
                requests,
                missing,
            } = resource_values(pods, name).map_err(fail)?;
            if values.is_empty() {
                return Err(fail(format!(
                    "unable to get metrics for resource {name}: no metrics returned from resource metrics API"
                )));
            }
            let avg = values.iter().sum::<f64>() / values.len() as f64;
            if target.get("type").and_then(Value::as_str) == Some("Utilization") {
                let want = target
                    .get("averageUtilization")
                    .and_then(Value::as_f64)
                    .unwrap_or(80.0);
                let req_total: f64 = requests.iter().flatten().sum();
                if req_total <= 0.0 {
                    return Err(fail(format!("missing request for {name}")));
                }
                let used: f64 = values.iter().sum();
                // Kubernetes truncates the utilisation to an integer percentage.
                let utilization = (used * 100.0 / req_total).floor();
                // The ratio comes from the totals, as in Kubernetes' replica calculator.
                let adjusted = vec![utilization; values.len()];
                let (replicas, _) = replicas_for(current, &adjusted, missing, want);
                Ok(Proposal {
                    replicas,
                    metric_name: format!("{name} resource utilization (percentage of request)"),
                    current: json!({"type": "Resource", "resource": {"name": name, "current": {
                        "averageUtilization": utilization as i64,
                        "averageValue": format_value(name, avg)}}}),
                })
            } else {
                let want = target
                    .get("averageValue")
                    .or_else(|| target.get("value"))
                    .and_then(crate::quantity::of)
                    .unwrap_or(1.0);
                let (replicas, _) = replicas_for(current, &values, missing, want);
                Ok(Proposal {
                    replicas,
                    metric_name: format!("{name} resource"),
                    current: json!({"type": "Resource", "resource": {"name": name, "current": {
                        "averageValue": format_value(name, avg)}}}),
                })
            }
        }
        "Pods" => {
            let name = metric
                .pointer("/pods/metric/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if name != REQUESTS_PER_SECOND_METRIC {
                return Err((
                    "FailedGetPodsMetric",
                    format!("the HPA was unable to compute the replica count: unable to get metric {name}: the simulation serves only the Pods metric {REQUESTS_PER_SECOND_METRIC}"),
                ));
            }
            let want = metric
                .pointer("/pods/target/averageValue")
                .and_then(crate::quantity::of)
                .unwrap_or(1.0);
            let with: Vec<&Value> = pods.iter().filter(|p| usage::has_metrics(p)).collect();
            let missing = pods.len() - with.len();
            let values: Vec<f64> = with.iter().map(|p| usage::request_rate(p)).collect();
            if values.is_empty() {
                return Err((
                    "FailedGetPodsMetric",
                    format!("the HPA was unable to compute the replica count: unable to get metric {name}: no metrics returned"),
                ));
            }
            let avg = values.iter().sum::<f64>() / values.len() as f64;
            let (replicas, _) = replicas_for(current, &values, missing, want);
            Ok(Proposal {
                replicas,
                metric_name: format!("pods metric {name}"),
                current: json!({"type": "Pods", "pods": {"metric": {"name": name},
                    "current": {"averageValue": format!("{}m", (avg * 1000.0).round() as i64)}}}),
            })
        }
        "Object" => Err((
            "FailedGetObjectMetric",
            "the HPA was unable to compute the replica count: Object metrics have no source in the simulation".into(),
        )),
        "External" => Err((
            "FailedGetExternalMetric",
            "the HPA was unable to compute the replica count: External metrics have no source in the simulation".into(),
        )),
        other => Err((
            "FailedGetContainerResourceMetric",
            format!("the HPA was unable to compute the replica count: {other} metrics have no source in the simulation"),
        )),
    }
}

fn condition(t: &str, status: bool, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": t, "status": if status { "True" } else { "False" },
           "lastTransitionTime": now, "reason": reason, "message": message})
}

/// (age in simulated seconds, replicas) pairs.
type Aged = Vec<(f64, i64)>;

impl HpaController {
    /// (recommendations, scale events) as (age in simulated seconds, replicas).
    fn ages(&self, key: &ObjKey, ctx: &Ctx, now: Instant) -> (Aged, Aged) {
        let Some(h) = self.state.get(key) else {
            return (vec![], vec![]);
        };
        let age = |t: &Instant| ctx.opts.sim_seconds(now.saturating_duration_since(*t));
        (
            h.recommendations
                .iter()
                .map(|(t, r)| (age(t), *r))
                .collect(),
            h.scale_events.iter().map(|(t, c)| (age(t), *c)).collect(),
        )
    }
}

impl Controller for HpaController {
    fn name(&self) -> &'static str {
        "horizontal-pod-autoscaler"
    }

    fn keys_for(&mut self, _ctx: &Ctx, ev: &Event, out: &mut Vec<ObjKey>) {
        if ev.object.key.resource == RESOURCE {
            out.push(ev.object.key.clone());
        }
    }

    fn all_keys(&mut self, ctx: &Ctx) -> Vec<ObjKey> {
        util::all_keys(ctx, RESOURCE)
    }

    fn reconcile(&mut self, ctx: &Ctx, key: &ObjKey) -> Result<Option<Duration>, ApiError> {
        let Some(hpa) = util::get(ctx, key)? else {
            self.state.remove(key);
            return Ok(None);
        };
        if util::is_deleting(&hpa) {
            self.state.remove(key);
            return Ok(None);
        }
        let period = ctx.opts.scaled(SYNC_PERIOD_SECONDS);
        let now_t = Instant::now();
        let now = mooring_core::time::now_rfc3339();
        let ns = key.namespace.as_str();
        let rt = ctx
            .api
            .registry
            .get("autoscaling", "v2", "horizontalpodautoscalers")
            .ok_or_else(|| ApiError::Internal("autoscaling/v2 is not registered".into()))?;
        let mut status = hpa.get("status").cloned().unwrap_or_else(|| json!({}));
        if !status.is_object() {
            status = json!({});
        }
        let mut conds = util::conditions(&hpa);
        status["observedGeneration"] = hpa
            .pointer("/metadata/generation")
            .cloned()
            .unwrap_or(json!(1));
        let min = i64_at(&hpa, "/spec/minReplicas").unwrap_or(1);
        let max = i64_at(&hpa, "/spec/maxReplicas").unwrap_or(min);
        let target_ref = hpa
            .pointer("/spec/scaleTargetRef")
            .cloned()
            .unwrap_or_default();
        let t_kind = str_at(&target_ref, "/kind").unwrap_or_default().to_string();
        let t_name = str_at(&target_ref, "/name").unwrap_or_default().to_string();
        let t_av = str_at(&target_ref, "/apiVersion")
            .unwrap_or_default()
            .to_string();
        let (t_group, _) = crate::registry::split_api_version(&t_av);
        let target_rt = ctx
            .api
            .registry
            .by_kind(&t_av, &t_kind)
            .or_else(|| ctx.api.registry.by_group_kind(t_group, &t_kind));
        let scale = match &target_rt {
            None => Err(format!(
                "no matches for kind \"{t_kind}\" in group \"{t_group}\""
            )),
            Some(trt) => ctx
                .api
                .get_scale(trt, Some(ns), &t_name)
                .map_err(|e| e.to_string()),
        };
        let scale = match scale {
            Ok(s) => s,
            Err(e) => {
                let msg =
                    format!("the HPA controller was unable to get the target's current scale: {e}");
                util::set_condition(
                    &mut conds,
                    condition("AbleToScale", false, "FailedGetScale", &msg, &now),
                );
                status["conditions"] = json!(conds);
                if util::write_status(ctx, &rt, &hpa, status)? {
                    record_event(ctx, &hpa, true, "FailedGetScale", &e);
                }
                return Ok(Some(period));
            }
        };
        let current = i64_at(&scale, "/spec/replicas").unwrap_or(0);
        status["currentReplicas"] = scale
            .pointer("/status/replicas")
            .cloned()
            .unwrap_or(json!(current));
        let selector = str_at(&scale, "/status/selector").unwrap_or_default();
        let selector = LabelSelector::parse(selector).unwrap_or_else(|_| LabelSelector::nothing());
        let pods: Vec<Value> = ctx
            .api
            .store
            .list(res::PODS, Some(ns))
            .0
            .iter()
            .filter(|s| !selector.is_empty() && selector.matches(&s.labels))
            .filter_map(|s| s.value().ok())
            .filter(|p| !util::is_deleting(p) && util::pod::is_active(p))
            .collect();

        let behavior = hpa.pointer("/spec/behavior");
        let up = Rules::parse(behavior.and_then(|b| b.get("scaleUp")), true);
        let down = Rules::parse(behavior.and_then(|b| b.get("scaleDown")), false);
        let desired;
        let mut rescale_reason = String::new();
        let mut able = (
            "ReadyForNewScale",
            "recommended size matches current size".to_string(),
        );
        if current == 0 && min != 0 {
            desired = 0;
            util::set_condition(
                &mut conds,
                condition(
                    "ScalingActive",
                    false,
                    "ScalingDisabled",
                    "scaling is disabled since the replica count of the target is zero",
                    &now,
                ),
            );
            util::remove_condition(&mut conds, "ScalingLimited");
        } else if current > max {
            desired = max;
            rescale_reason = "Current number of replicas above Spec.MaxReplicas".into();
            util::set_condition(
                &mut conds,
                condition(
                    "ScalingLimited",
                    true,
                    "TooManyReplicas",
                    "the desired replica count is more than the maximum replica count",
                    &now,
                ),
            );
        } else if current < min {
            desired = min;
            rescale_reason = "Current number of replicas below Spec.MinReplicas".into();
            util::set_condition(
                &mut conds,
                condition(
                    "ScalingLimited",
                    true,
                    "TooFewReplicas",
                    "the desired replica count is less than the minimum replica count",
                    &now,
                ),
            );
        } else {
            let metrics = hpa
                .pointer("/spec/metrics")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut best: Option<Proposal> = None;
            let mut current_metrics = Vec::new();
            let mut first_error: Option<MetricError> = None;
            for m in &metrics {
                match compute(m, &pods, current) {
                    Ok(p) => {
                        current_metrics.push(p.current.clone());
                        if best.as_ref().is_none_or(|b| p.replicas > b.replicas) {
                            best = Some(p);
                        }
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            status["currentMetrics"] = json!(current_metrics);
            let Some(best) = best else {
                let (reason, msg) = first_error.unwrap_or((
                    "InvalidMetricSourceType",
                    "the HPA was unable to compute the replica count: no metrics".into(),
                ));
                util::set_condition(
                    &mut conds,
                    condition("ScalingActive", false, reason, &msg, &now),
                );
                status["conditions"] = json!(conds);
                status["desiredReplicas"] = json!(current);
                if util::write_status(ctx, &rt, &hpa, status)? {
                    record_event(ctx, &hpa, true, reason, &msg);
                }
                return Ok(Some(period));
            };
            if let Some((reason, msg)) = &first_error {
                // Some metrics worked: scale on those, but say which did not.
                record_event(ctx, &hpa, true, reason, msg);
            }
            util::set_condition(
                &mut conds,
                condition(
                    "ScalingActive",
                    true,
                    "ValidMetricFound",
                    &format!(
                        "the HPA was able to successfully calculate a replica count from {}",
                        best.metric_name
                    ),
                    &now,
                ),
            );
            let proposed = best.replicas;
            if proposed > current {
                rescale_reason = format!("{} above target", best.metric_name);
            } else if proposed < current {
                rescale_reason = "All metrics below target".into();
            }
            let (history, events) = self.ages(key, ctx, now_t);
            let (stabilized, held) = stabilize(current, proposed, &history, &up, &down);
            let h = self.state.entry(key.clone()).or_default();
            let longest = up.stabilization_seconds.max(down.stabilization_seconds);
            h.recommendations.push_back((now_t, proposed));
            while h.recommendations.len() > MAX_HISTORY
                || h.recommendations.front().is_some_and(|(t, _)| {
                    ctx.opts.sim_seconds(now_t.saturating_duration_since(*t)) > longest + 1.0
                })
            {
                h.recommendations.pop_front();
            }
            if let Some(r) = held {
                able = (
                    r,
                    if r == "ScaleDownStabilized" {
                        "recent recommendations were higher than current one, applying the highest recent recommendation".into()
                    } else {
                        "recent recommendations were lower than current one, applying the lowest recent recommendation".into()
                    },
                );
            }
            let (limited, reason, msg) = limit(current, stabilized, min, max, &events, &up, &down);
            desired = limited;
            util::set_condition(
                &mut conds,
                condition(
                    "ScalingLimited",
                    reason != "DesiredWithinRange",
                    reason,
                    msg,
                    &now,
                ),
            );
        }
        status["desiredReplicas"] = json!(desired);
        if desired != current {
            let trt = target_rt
                .as_ref()
                .ok_or_else(|| ApiError::Internal("no target".into()))?;
            let mut s = scale.clone();
            s["spec"]["replicas"] = json!(desired);
            if let Some(m) = s.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            match ctx.api.set_scale(trt, Some(ns), &t_name, &s, &ctx.wo) {
                Ok(_) => {
                    let h = self.state.entry(key.clone()).or_default();
                    h.scale_events.push_back((now_t, desired - current));
                    while h.scale_events.len() > MAX_HISTORY
                        || h.scale_events.front().is_some_and(|(t, _)| {
                            ctx.opts.sim_seconds(now_t.saturating_duration_since(*t)) > 1800.0
                        })
                    {
                        h.scale_events.pop_front();
                    }
                    status["lastScaleTime"] = json!(now);
                    util::set_condition(&mut conds, condition("AbleToScale", true, "SucceededRescale",
                        &format!("the HPA controller was able to update the target scale to {desired}"), &now));
                    record_event(
                        ctx,
                        &hpa,
                        false,
                        "SuccessfulRescale",
                        &format!("New size: {desired}; reason: {rescale_reason}"),
                    );
                }
                Err(e) => {
                    let msg =
                        format!("the HPA controller was unable to update the target scale: {e}");
                    util::set_condition(
                        &mut conds,
                        condition("AbleToScale", false, "FailedUpdateScale", &msg, &now),
                    );
                    record_event(
                        ctx,
                        &hpa,
                        true,
                        "FailedRescale",
                        &format!("New size: {desired}; reason: {rescale_reason}; error: {e}"),
                    );
                }
            }
        } else {
            // Keep the SucceededRescale condition until the next decision differs, as the
            // real controller refreshes it only on change of reason.
            util::set_condition(
                &mut conds,
                condition("AbleToScale", true, able.0, &able.1, &now),
            );
        }
        status["conditions"] = json!(conds);
        util::write_status(ctx, &rt, &hpa, status)?;
        Ok(Some(period))
    }
}

/// Record an Event about the HPA through the simulation's shared recorder (which
/// aggregates repeats into `count`, as client-go does).
fn record_event(ctx: &Ctx, obj: &Value, warning: bool, reason: &str, message: &str) {
    let mut regarding = obj.clone();
    regarding["apiVersion"] = json!("autoscaling/v2");
    regarding["kind"] = json!("HorizontalPodAutoscaler");
    if warning {
        ctx.recorder.warning(COMPONENT, &regarding, reason, message);
    } else {
        ctx.recorder.normal(COMPONENT, &regarding, reason, message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::autoscaling::validate;

    fn defaults() -> (Rules, Rules) {
        (Rules::parse(None, true), Rules::parse(None, false))
    }

    #[test]
    fn ratio_and_tolerance() {
        // 90 % against a 50 % target on 2 Pods: ceil(1.8 × 2) = 4.
        assert_eq!(replicas_for(2, &[90.0, 90.0], 0, 50.0).0, 4);
        // Within 10 %: no change.
        assert_eq!(replicas_for(3, &[54.0, 54.0, 54.0], 0, 50.0).0, 3);
        // Below target: down.
        assert_eq!(replicas_for(4, &[10.0; 4], 0, 50.0).0, 1);
        // A missing Pod counts as 0 % when scaling up.
        assert_eq!(replicas_for(3, &[90.0, 90.0], 1, 50.0).0, 4);
    }

    #[test]
    fn scale_down_is_stabilized() {
        let (up, down) = defaults();
        // A recommendation of 5 a minute ago holds the HPA at 5.
        let (r, why) = stabilize(5, 2, &[(60.0, 5)], &up, &down);
        assert_eq!((r, why), (5, Some("ScaleDownStabilized")));
        // Older than the 300 s window: follows.
        assert_eq!(stabilize(5, 2, &[(400.0, 5)], &up, &down), (2, None));
        // Scale-up is immediate.
        assert_eq!(stabilize(2, 5, &[(1.0, 2)], &up, &down), (5, None));
    }

    #[test]
    fn rate_and_bounds() {
        let (up, down) = defaults();
        // From 1: max(1+4, 2×1) = 5 per 15 s.
        assert_eq!(limit(1, 20, 1, 50, &[], &up, &down).0, 5);
        assert_eq!(limit(1, 20, 1, 50, &[], &up, &down).1, "ScaleUpLimit");
        assert_eq!(
            limit(2, 20, 1, 3, &[], &up, &down),
            (
                3,
                "TooManyReplicas",
                "the desired replica count is more than the maximum replica count"
            )
        );
        assert_eq!(limit(4, 1, 2, 5, &[], &up, &down).0, 2);
        assert_eq!(limit(4, 1, 2, 5, &[], &up, &down).1, "TooFewReplicas");
        assert_eq!(limit(3, 4, 1, 5, &[], &up, &down).1, "DesiredWithinRange");
        // Having just added 4, only 100 % of the period start remains.
        assert_eq!(scale_limit(5, &[(5.0, 4)], &up, true), 5);
        let disabled = Rules {
            select: "Disabled".into(),
            ..down.clone()
        };
        assert_eq!(limit(4, 1, 1, 5, &[], &up, &disabled).0, 4);
    }

    #[test]
    fn validation() {
        let hpa = |min: i64, max: i64| {
            json!({"spec": {"minReplicas": min, "maxReplicas": max,
            "scaleTargetRef": {"kind": "Deployment", "name": "web"}}})
        };
        assert!(validate(&hpa(2, 5)).is_empty());
        assert_eq!(
            validate(&hpa(5, 2)),
            vec!["spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"]
        );
        assert_eq!(validate(&hpa(0, 2)).len(), 1);
        let bad = json!({"spec": {"maxReplicas": 3, "metrics": [{"type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": -5}}}]}});
        let errs = validate(&bad);
        assert_eq!(errs.len(), 3, "{errs:?}");
        let behavior = json!({"spec": {"minReplicas": 1, "maxReplicas": 3,
            "scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 7200, "selectPolicy": "Often",
                "policies": [{"type": "Pods", "value": 0, "periodSeconds": 0}, {"type": "Blocks", "value": 1, "periodSeconds": 99999}]}}}});
        assert_eq!(validate(&behavior).len(), 6, "{:?}", validate(&behavior));
    }
}
