//! From templates and arguments to an AnalysisRun, and from arguments to measurable
//! metrics.
//!
//! A Rollout step names one or more `AnalysisTemplate`s / `ClusterAnalysisTemplate`s and
//! passes arguments; [`build_run_spec`] merges them as Argo Rollouts does: metrics are
//! concatenated (two metrics with one name are an error, since results are keyed by
//! name), template arguments are merged (the same name declared twice must agree),
//! the caller's arguments override template defaults by name, and every argument must
//! end up with a `value` or a `valueFrom` — a run that could never resolve `{{args.x}}`
//! is refused before it exists rather than failing later.
//!
//! At measurement time [`resolve_args`] turns arguments into values (reading Secrets
//! through a callback, so this stays pure) and [`resolve_metric`] substitutes
//! `{{args.NAME}}` into every string of the metric: the query, the URL, headers, the
//! conditions, even `count`. Values that came from Secrets are remembered in a
//! [`Redactor`], which replaces them with `*****` in anything written to the status or
//! a log, so an API token substituted into a header never leaks through an error message.

use mooring_core::analysis::{
    AnalysisTemplateSpec, Argument, Metric, SecretKeyRef, ANALYSIS_TEMPLATE,
    CLUSTER_ANALYSIS_TEMPLATE,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;

/// The mask Argo Rollouts uses for secret values.
pub const REDACTED: &str = "*****";

/// Errors building or resolving a run.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AnalysisError {
    #[error("{0} is not an AnalysisTemplate or ClusterAnalysisTemplate")]
    NotATemplate(String),
    #[error("template {template}: invalid spec: {message}")]
    InvalidTemplate { template: String, message: String },
    #[error("invalid argument list: {0}")]
    InvalidArgs(String),
    #[error("metric name {0:?} is used more than once")]
    DuplicateMetric(String),
    #[error("argument {0:?} is declared twice with different values")]
    ConflictingArg(String),
    #[error("args.{0} was not resolved: give it a value or valueFrom")]
    UnresolvedArg(String),
    #[error("secret {secret}, key {key} (argument {arg:?}): {reason}")]
    Secret {
        arg: String,
        secret: String,
        key: String,
        reason: String,
    },
    #[error(
        "argument {0:?} uses valueFrom.fieldRef, which must be resolved by whoever creates the run"
    )]
    FieldRef(String),
    #[error("metric {metric:?}: {message}")]
    InvalidMetric { metric: String, message: String },
    #[error("invalid AnalysisRun spec: {0}")]
    InvalidRun(String),
}

fn template_name(t: &Value) -> String {
    let kind = t.get("kind").and_then(Value::as_str).unwrap_or("(no kind)");
    let name = t
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("(no name)");
    format!("{kind}/{name}")
}

/// Merge `templates` (AnalysisTemplate or ClusterAnalysisTemplate objects) and apply
/// `args` (Argo `Argument`s: `{name, value}` or `{name, valueFrom}`): the `spec` of the
/// AnalysisRun to create.
pub fn build_run_spec(templates: &[Value], args: &[Value]) -> Result<Value, AnalysisError> {
    let mut metrics: Vec<Metric> = vec![];
    let mut names = BTreeSet::new();
    let mut template_args: Vec<Argument> = vec![];
    let mut dry_run = vec![];
    let mut retention = vec![];
    for t in templates {
        let kind = t.get("kind").and_then(Value::as_str).unwrap_or_default();
        if kind != ANALYSIS_TEMPLATE && kind != CLUSTER_ANALYSIS_TEMPLATE {
            return Err(AnalysisError::NotATemplate(template_name(t)));
        }
        let spec: AnalysisTemplateSpec =
            serde_json::from_value(t.get("spec").cloned().unwrap_or(json!({}))).map_err(|e| {
                AnalysisError::InvalidTemplate {
                    template: template_name(t),
                    message: e.to_string(),
                }
            })?;
        for m in spec.metrics {
            if m.name.trim().is_empty() {
                return Err(AnalysisError::InvalidTemplate {
                    template: template_name(t),
                    message: "a metric has no name".into(),
                });
            }
            if !names.insert(m.name.clone()) {
                return Err(AnalysisError::DuplicateMetric(m.name));
            }
            metrics.push(m);
        }
        for a in spec.args {
            match template_args.iter().find(|x| x.name == a.name) {
                Some(prev) if prev != &a => return Err(AnalysisError::ConflictingArg(a.name)),
                Some(_) => {}
                None => template_args.push(a),
            }
        }
        dry_run.extend(spec.dry_run);
        retention.extend(spec.measurement_retention);
    }
    if metrics.is_empty() {
        return Err(AnalysisError::InvalidRun(
            "the templates define no metrics".into(),
        ));
    }
    let given: Vec<Argument> = serde_json::from_value(Value::Array(args.to_vec()))
        .map_err(|e| AnalysisError::InvalidArgs(e.to_string()))?;
    for g in &given {
        if let Some(t) = template_args.iter_mut().find(|t| t.name == g.name) {
            if g.value.is_some() || g.value_from.is_some() {
                t.value = g.value.clone();
                t.value_from = g.value_from.clone();
            }
        }
    }
    if let Some(a) = template_args
        .iter()
        .find(|a| a.value.is_none() && a.value_from.is_none())
    {
        return Err(AnalysisError::UnresolvedArg(a.name.clone()));
    }
    let mut spec = Map::new();
    spec.insert("metrics".into(), to_json(&metrics)?);
    if !template_args.is_empty() {
        spec.insert("args".into(), to_json(&template_args)?);
    }
    if !dry_run.is_empty() {
        spec.insert("dryRun".into(), to_json(&dry_run)?);
    }
    if !retention.is_empty() {
        spec.insert("measurementRetention".into(), to_json(&retention)?);
    }
    Ok(Value::Object(spec))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, AnalysisError> {
    serde_json::to_value(v).map_err(|e| AnalysisError::InvalidRun(e.to_string()))
}

/// An argument with its value, and whether that value is a secret.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedArg {
    pub name: String,
    pub value: String,
    pub secret: bool,
}

/// Resolve a run's arguments: literal values as they are, `secretKeyRef` through
/// `secret` (which returns the decoded value or a reason, e.g. "not found").
pub fn resolve_args(
    args: &[Argument],
    mut secret: impl FnMut(&SecretKeyRef) -> Result<String, String>,
) -> Result<Vec<ResolvedArg>, AnalysisError> {
    let mut out = Vec::with_capacity(args.len());
    for a in args {
        let resolved = if let Some(v) = &a.value {
            ResolvedArg {
                name: a.name.clone(),
                value: v.clone(),
                secret: false,
            }
        } else if let Some(r) = a
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
        {
            let value = secret(r).map_err(|reason| AnalysisError::Secret {
                arg: a.name.clone(),
                secret: r.name.clone(),
                key: r.key.clone(),
                reason,
            })?;
            ResolvedArg {
                name: a.name.clone(),
                value,
                secret: true,
            }
        } else if a.value_from.as_ref().is_some_and(|v| v.field_ref.is_some()) {
            return Err(AnalysisError::FieldRef(a.name.clone()));
        } else {
            return Err(AnalysisError::UnresolvedArg(a.name.clone()));
        };
        out.push(resolved);
    }
    Ok(out)
}

/// Masks secret argument values in text that leaves the controller.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub fn new(args: &[ResolvedArg]) -> Redactor {
        let mut secrets: Vec<String> = args
            .iter()
            .filter(|a| a.secret && !a.value.is_empty())
            .map(|a| a.value.clone())
            .collect();
        // Longest first, so a secret containing another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Redactor { secrets }
    }

    pub fn redact(&self, text: &str) -> String {
        let mut s = text.to_string();
        for secret in &self.secrets {
            if s.contains(secret.as_str()) {
                s = s.replace(secret.as_str(), REDACTED);
            }
        }
        s
    }
}

/// Substitute `{{args.NAME}}` in every string of `metric` (query, URL, headers, body,
/// conditions, job spec, count and limits). A reference to an unknown argument is an error.
pub fn resolve_metric(metric: &Metric, args: &[ResolvedArg]) -> Result<Metric, AnalysisError> {
    let v = serde_json::to_value(metric).map_err(|e| AnalysisError::InvalidMetric {
        metric: metric.name.clone(),
        message: e.to_string(),
    })?;
    let v = substitute_value(v, args).map_err(|message| AnalysisError::InvalidMetric {
        metric: metric.name.clone(),
        message,
    })?;
    serde_json::from_value(v).map_err(|e| AnalysisError::InvalidMetric {
        metric: metric.name.clone(),
        message: e.to_string(),
    })
}

fn substitute_value(v: Value, args: &[ResolvedArg]) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => Value::String(substitute(&s, args)?),
        Value::Array(a) => Value::Array(
            a.into_iter()
                .map(|x| substitute_value(x, args))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, x)| Ok((k, substitute_value(x, args)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other,
    })
}

/// Replace `{{args.NAME}}` (spaces inside the braces allowed) in `s`. Other `{{…}}`
/// (e.g. Argo's `{{templates.…}}` of web metrics) are left as they are.
pub fn substitute(s: &str, args: &[ResolvedArg]) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        let inner = rest[start + 2..start + len].trim();
        out.push_str(&rest[..start]);
        if let Some(name) = inner.strip_prefix("args.") {
            let a = args
                .iter()
                .find(|a| a.name == name)
                .ok_or_else(|| format!("{{{{args.{name}}}}} is not an argument of the run"))?;
            out.push_str(&a.value);
        } else {
            out.push_str(&rest[start..start + len + 2]);
        }
        rest = &rest[start + len + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mooring_core::analysis::AnalysisRunSpec;

    fn template(kind: &str, name: &str, spec: Value) -> Value {
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": kind, "metadata": {"name": name}, "spec": spec})
    }

    fn success_rate() -> Value {
        template(
            "AnalysisTemplate",
            "success-rate",
            json!({
                "args": [{"name": "service-name"}, {"name": "threshold", "value": "0.95"}],
                "metrics": [{"name": "success-rate", "interval": "1m", "count": "{{args.count}}",
                    "successCondition": "result[0] >= {{args.threshold}}",
                    "provider": {"prometheus": {"address": "http://p:9090",
                        "query": "sum(rate(x{service=\"{{args.service-name}}\"}[1m]))"}}}]
            }),
        )
    }

    #[test]
    fn merges_templates_and_applies_args() {
        let latency = template(
            "ClusterAnalysisTemplate",
            "latency",
            json!({"args": [{"name": "service-name"}, {"name": "count", "value": "3"}],
                   "metrics": [{"name": "p99", "provider": {"prometheus": {"query": "q"}}}],
                   "dryRun": [{"metricName": "p99"}]}),
        );
        let spec = build_run_spec(
            &[success_rate(), latency],
            &[
                json!({"name": "service-name", "value": "model"}),
                json!({"name": "unused", "value": "x"}),
            ],
        )
        .expect("builds");
        let run: AnalysisRunSpec = serde_json::from_value(spec.clone()).expect("a run spec");
        assert_eq!(run.metrics.len(), 2);
        assert_eq!(run.dry_run[0].metric_name, "p99");
        let names: Vec<_> = run
            .args
            .iter()
            .map(|a| (a.name.as_str(), a.value.as_deref()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("service-name", Some("model")),
                ("threshold", Some("0.95")),
                ("count", Some("3"))
            ]
        );
        let args = resolve_args(&run.args, |_| Err("no secrets".into())).expect("args");
        let m = resolve_metric(&run.metrics[0], &args).expect("resolves");
        assert_eq!(m.success_condition.as_deref(), Some("result[0] >= 0.95"));
        assert_eq!(m.count.as_ref().and_then(|c| c.as_int()), Some(3));
        assert_eq!(
            m.provider.prometheus.as_ref().map(|p| p.query.as_str()),
            Some("sum(rate(x{service=\"model\"}[1m]))")
        );
    }

    #[test]
    fn refuses_what_argo_refuses() {
        // A template arg without a value that nobody supplies.
        let e = build_run_spec(&[success_rate()], &[]).expect_err("unresolved");
        assert_eq!(e, AnalysisError::UnresolvedArg("service-name".into()));
        // Duplicate metric names.
        let e = build_run_spec(
            &[success_rate(), success_rate()],
            &[json!({"name": "service-name", "value": "m"})],
        )
        .expect_err("dup");
        assert_eq!(e, AnalysisError::DuplicateMetric("success-rate".into()));
        // The same arg with different defaults.
        let other = template(
            "AnalysisTemplate",
            "other",
            json!({"args": [{"name": "threshold", "value": "0.5"}], "metrics": [{"name": "x", "provider": {}}]}),
        );
        let e = build_run_spec(
            &[success_rate(), other],
            &[json!({"name": "service-name", "value": "m"})],
        )
        .expect_err("conflict");
        assert_eq!(e, AnalysisError::ConflictingArg("threshold".into()));
        // Not a template, malformed spec, malformed args, no metrics.
        let e = build_run_spec(
            &[json!({"kind": "ConfigMap", "metadata": {"name": "x"}})],
            &[],
        )
        .expect_err("kind");
        assert_eq!(
            e.to_string(),
            "ConfigMap/x is not an AnalysisTemplate or ClusterAnalysisTemplate"
        );
        let e = build_run_spec(
            &[template(
                "AnalysisTemplate",
                "bad",
                json!({"metrics": "nope"}),
            )],
            &[],
        )
        .expect_err("spec");
        assert!(e.to_string().contains("AnalysisTemplate/bad"), "{e}");
        let e =
            build_run_spec(&[success_rate()], &[json!({"value": "no name"})]).expect_err("args");
        assert!(matches!(e, AnalysisError::InvalidArgs(_)), "{e}");
        let e = build_run_spec(&[template("AnalysisTemplate", "empty", json!({}))], &[])
            .expect_err("empty");
        assert!(matches!(e, AnalysisError::InvalidRun(_)), "{e}");
    }

    #[test]
    fn secrets_are_resolved_and_redacted() {
        let args: Vec<Argument> = serde_json::from_value(json!([
            {"name": "token", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}},
            {"name": "plain", "value": "hello"}
        ]))
        .expect("args");
        let resolved = resolve_args(&args, |r| {
            assert_eq!((r.name.as_str(), r.key.as_str()), ("s", "k"));
            Ok("t0ps3cret".into())
        })
        .expect("resolves");
        let r = Redactor::new(&resolved);
        assert_eq!(
            r.redact("GET https://x/?token=t0ps3cret failed (hello)"),
            "GET https://x/?token=***** failed (hello)"
        );
        let e = resolve_args(&args, |_| Err("secret \"s\" not found".into())).expect_err("missing");
        assert!(
            e.to_string().contains("not found") && e.to_string().contains("token"),
            "{e}"
        );
        let fr: Vec<Argument> = serde_json::from_value(
            json!([{"name": "ns", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]),
        )
        .expect("args");
        assert_eq!(
            resolve_args(&fr, |_| Ok(String::new())),
            Err(AnalysisError::FieldRef("ns".into()))
        );
    }

    #[test]
    fn substitution_is_exact() {
        let args = vec![ResolvedArg {
            name: "a".into(),
            value: "1".into(),
            secret: false,
        }];
        assert_eq!(
            substitute("x{{args.a}}y{{ args.a }}", &args),
            Ok("x1y1".into())
        );
        assert_eq!(
            substitute("{{templates.x}} {{ unclosed", &args),
            Ok("{{templates.x}} {{ unclosed".into())
        );
        assert!(substitute("{{args.b}}", &args)
            .expect_err("unknown")
            .contains("args.b"));
        // A value containing braces is not substituted again.
        let tricky = vec![ResolvedArg {
            name: "a".into(),
            value: "{{args.a}}".into(),
            secret: false,
        }];
        assert_eq!(substitute("{{args.a}}", &tricky), Ok("{{args.a}}".into()));
    }
}
