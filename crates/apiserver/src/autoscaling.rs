//! The HorizontalPodAutoscaler's API rules: the defaults and the validation the API server
//! applies to an `autoscaling/v2` object (the storage form, [`crate::convert`]) on every
//! write. The controller that acts on HPAs is [`crate::sim::hpa`].

use serde_json::{json, Value};

/// Validation of an HPA in its v2 (storage) form, as the API server does.
pub fn validate(obj: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let min = obj.pointer("/spec/minReplicas").and_then(Value::as_i64);
    let max = obj.pointer("/spec/maxReplicas").and_then(Value::as_i64);
    if let Some(m) = min {
        if m < 1 {
            errs.push(format!(
                "spec.minReplicas: Invalid value: {m}: must be greater than or equal to 1"
            ));
        }
    }
    match max {
        None => errs.push("spec.maxReplicas: Required value".into()),
        Some(m) if m < 1 => errs.push(format!(
            "spec.maxReplicas: Invalid value: {m}: must be greater than 0"
        )),
        Some(m) if m < min.unwrap_or(1) => errs.push(format!(
            "spec.maxReplicas: Invalid value: {m}: must be greater than or equal to `minReplicas`"
        )),
        _ => {}
    }
    for f in ["kind", "name"] {
        if obj
            .pointer(&format!("/spec/scaleTargetRef/{f}"))
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            errs.push(format!("spec.scaleTargetRef.{f}: Required value"));
        }
    }
    for dir in ["scaleUp", "scaleDown"] {
        if let Some(rules) = obj.pointer(&format!("/spec/behavior/{dir}")) {
            errs.extend(validate_rules(rules, &format!("spec.behavior.{dir}")));
        }
    }
    let metrics = obj
        .pointer("/spec/metrics")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for (i, m) in metrics.iter().enumerate() {
        let at = format!("spec.metrics[{i}]");
        let t = m.get("type").and_then(Value::as_str).unwrap_or_default();
        let (source, field) = match t {
            "Resource" => ("resource", "resource"),
            "ContainerResource" => ("containerResource", "containerResource"),
            "Pods" => ("pods", "pods"),
            "Object" => ("object", "object"),
            "External" => ("external", "external"),
            other => {
                errs.push(format!(
                    "{at}.type: Unsupported value: {other:?}: supported values: \"ContainerResource\", \"External\", \"Object\", \"Pods\", \"Resource\""
                ));
                continue;
            }
        };
        let Some(src) = m.get(source) else {
            errs.push(format!("{at}.{field}: Required value: must populate information for the given metric source"));
            continue;
        };
        let target = src.get("target");
        let tt = target
            .and_then(|t| t.get("type"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        match tt {
            "Utilization" => {
                match target.and_then(|t| t.get("averageUtilization")).and_then(Value::as_i64) {
                    Some(u) if u > 0 => {}
                    Some(u) => errs.push(format!(
                        "{at}.{field}.target.averageUtilization: Invalid value: {u}: must be greater than 0"
                    )),
                    None => errs.push(format!(
                        "{at}.{field}.target.averageUtilization: Required value: must set either a target raw value or a target utilization"
                    )),
                }
            }
            "AverageValue" | "Value" => {
                let key = if tt == "Value" { "value" } else { "averageValue" };
                let q = target.and_then(|t| t.get(key)).and_then(crate::quantity::of);
                match q {
                    Some(v) if v > 0.0 => {}
                    _ => errs.push(format!(
                        "{at}.{field}.target.{key}: Invalid value: must be a positive quantity"
                    )),
                }
            }
            other => errs.push(format!(
                "{at}.{field}.target.type: Unsupported value: {other:?}: supported values: \"AverageValue\", \"Utilization\", \"Value\""
            )),
        }
        if t == "Resource"
            && src
                .get("name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            errs.push(format!(
                "{at}.resource.name: Required value: must specify a resource name"
            ));
        }
    }
    errs
}

/// Validation of `behavior.scaleUp` / `scaleDown` (Kubernetes' `validateScalingRules`).
fn validate_rules(rules: &Value, at: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if let Some(w) = rules
        .get("stabilizationWindowSeconds")
        .and_then(Value::as_i64)
    {
        if w < 0 {
            errs.push(format!("{at}.stabilizationWindowSeconds: Invalid value: {w}: must be greater than or equal to zero"));
        } else if w > 3600 {
            errs.push(format!("{at}.stabilizationWindowSeconds: Invalid value: {w}: must be less than or equal to 3600"));
        }
    }
    if let Some(p) = rules.get("selectPolicy").and_then(Value::as_str) {
        if !matches!(p, "Max" | "Min" | "Disabled") {
            errs.push(format!("{at}.selectPolicy: Unsupported value: {p:?}: supported values: \"Disabled\", \"Max\", \"Min\""));
        }
    }
    let policies = rules
        .get("policies")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if rules.get("policies").is_some() && policies.is_empty() {
        errs.push(format!(
            "{at}.policies: Required value: must specify at least one Policy"
        ));
    }
    for (i, p) in policies.iter().enumerate() {
        let pat = format!("{at}.policies[{i}]");
        match p.get("type").and_then(Value::as_str) {
            Some("Pods" | "Percent") => {}
            other => errs.push(format!(
                "{pat}.type: Unsupported value: {:?}: supported values: \"Percent\", \"Pods\"",
                other.unwrap_or_default()
            )),
        }
        match p.get("value").and_then(Value::as_i64) {
            Some(v) if v > 0 => {}
            v => errs.push(format!(
                "{pat}.value: Invalid value: {}: must be greater than zero",
                v.unwrap_or(0)
            )),
        }
        match p.get("periodSeconds").and_then(Value::as_i64) {
            Some(v) if v > 1800 => errs.push(format!(
                "{pat}.periodSeconds: Invalid value: {v}: must be less than or equal to 1800"
            )),
            Some(v) if v > 0 => {}
            v => errs.push(format!(
                "{pat}.periodSeconds: Invalid value: {}: must be greater than zero",
                v.unwrap_or(0)
            )),
        }
    }
    errs
}

/// Fill the v2 defaults: `minReplicas: 1`, and a CPU utilisation target of 80 % when no
/// metric is given.
pub fn apply_defaults(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec.get("minReplicas").is_none_or(Value::is_null) {
        spec.insert("minReplicas".into(), json!(1));
    }
    if spec
        .get("metrics")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty)
    {
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}}]),
        );
    }
}
