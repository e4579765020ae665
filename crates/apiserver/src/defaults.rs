//! Defaulting and type-specific validation for the built-in kinds.
//!
//! Kubernetes fills in many fields a manifest leaves out (a Deployment's strategy, a
//! container's `imagePullPolicy`, a Service's `clusterIP`), and rejects changes to fields it
//! declares immutable. A GitOps diff that compares Git with the live object has to cope
//! with exactly these differences, so the embedded cluster reproduces the common ones
//! instead of storing manifests verbatim; a tool tested against it then behaves the same
//! against a real cluster.

use crate::registry::ResourceType;
use base64::Engine;
use serde_json::{json, Map, Value};

fn obj_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.get(key).is_some_and(Value::is_object) {
        v[key] = json!({});
    }
    v[key]
        .as_object_mut()
        .expect("the key was just made an object")
}

fn default(m: &mut Map<String, Value>, key: &str, value: Value) {
    if !m.contains_key(key) || m.get(key) == Some(&Value::Null) {
        m.insert(key.into(), value);
    }
}

fn is_kind(rt: &ResourceType, group: &str, kind: &str) -> bool {
    rt.crd.is_none() && rt.group == group && rt.kind == kind
}

/// Fill in the fields the real API server defaults.
pub fn apply(rt: &ResourceType, obj: &mut Value) {
    if rt.crd.is_some() {
        return;
    }
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Namespace") => {
            let spec = obj_mut(obj, "spec");
            default(spec, "finalizers", json!(["kubernetes"]));
            let status = obj_mut(obj, "status");
            default(status, "phase", json!("Active"));
        }
        ("", "Secret") => {
            default(
                obj.as_object_mut().expect("objects are maps"),
                "type",
                json!("Opaque"),
            );
            if let Some(Value::Object(sd)) =
                obj.as_object_mut().and_then(|o| o.remove("stringData"))
            {
                let data = obj_mut(obj, "data");
                for (k, v) in sd {
                    let s = v.as_str().unwrap_or_default();
                    data.insert(
                        k,
                        json!(base64::engine::general_purpose::STANDARD.encode(s.as_bytes())),
                    );
                }
            }
        }
        ("", "Service") => {
            let spec = obj_mut(obj, "spec");
            default(spec, "type", json!("ClusterIP"));
            default(spec, "sessionAffinity", json!("None"));
            let external_name = spec.get("type").and_then(Value::as_str) == Some("ExternalName");
            if !external_name {
                let ip = spec
                    .get("clusterIP")
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .unwrap_or_else(allocate_cluster_ip);
                spec.insert("clusterIP".into(), json!(ip));
                spec.insert("clusterIPs".into(), json!([ip]));
                default(spec, "ipFamilies", json!(["IPv4"]));
                default(spec, "ipFamilyPolicy", json!("SingleStack"));
                default(spec, "internalTrafficPolicy", json!("Cluster"));
            }
            if let Some(Value::Array(ports)) = spec.get_mut("ports") {
                for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                    default(p, "protocol", json!("TCP"));
                    if let Some(port) = p.get("port").cloned() {
                        default(p, "targetPort", port);
                    }
                }
            }
            let status = obj_mut(obj, "status");
            default(status, "loadBalancer", json!({}));
        }
        ("", "Pod") => {
            let spec = obj_mut(obj, "spec");
            pod_spec_defaults(spec, true);
            default(spec, "serviceAccountName", json!("default"));
            default(spec, "enableServiceLinks", json!(true));
            default(spec, "priority", json!(0));
        }
        ("", "PersistentVolumeClaim") => {
            let spec = obj_mut(obj, "spec");
            default(spec, "volumeMode", json!("Filesystem"));
        }
        ("apps", "Deployment") => {
            let spec = obj_mut(obj, "spec");
            default(spec, "replicas", json!(1));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "progressDeadlineSeconds", json!(600));
            default(
                spec,
                "strategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}),
            );
            if let Some(s) = spec.get_mut("strategy").and_then(Value::as_object_mut) {
                default(s, "type", json!("RollingUpdate"));
                if s.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
                    let ru = s.entry("rollingUpdate").or_insert_with(|| json!({}));
                    if let Some(ru) = ru.as_object_mut() {
                        default(ru, "maxSurge", json!("25%"));
                        default(ru, "maxUnavailable", json!("25%"));
                    }
                }
            }
            template_defaults(spec);
        }
        ("apps", "ReplicaSet") => {
            let spec = obj_mut(obj, "spec");
            default(spec, "replicas", json!(1));
            template_defaults(spec);
        }
        ("apps", "StatefulSet") => {
            let spec = obj_mut(obj, "spec");
            default(spec, "replicas", json!(1));
            default(spec, "podManagementPolicy", json!("OrderedReady"));
            default(spec, "revisionHistoryLimit", json!(10));
            default(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
            );
            default(
                spec,
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
            template_defaults(spec);
        }
        ("apps", "DaemonSet") => {
            let spec = obj_mut(obj, "spec");
            default(spec, "revisionHistoryLimit", json!(10));
            default(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}),
            );
            template_defaults(spec);
        }
        ("batch", "Job") => {
            let uid = obj
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let spec = obj_mut(obj, "spec");
            default(spec, "backoffLimit", json!(6));
            default(spec, "completions", json!(1));
            default(spec, "parallelism", json!(1));
            default(spec, "completionMode", json!("NonIndexed"));
            default(spec, "suspend", json!(false));
            default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
            let manual = spec.get("manualSelector").and_then(Value::as_bool) == Some(true);
            if !manual && !spec.contains_key("selector") && !uid.is_empty() {
                spec.insert(
                    "selector".into(),
                    json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
                );
                let tmpl = spec.entry("template").or_insert_with(|| json!({}));
                let labels = obj_mut(tmpl, "metadata")
                    .entry("labels")
                    .or_insert_with(|| json!({}));
                if let Some(l) = labels.as_object_mut() {
                    default(l, "batch.kubernetes.io/controller-uid", json!(uid));
                    default(l, "batch.kubernetes.io/job-name", json!(name));
                    default(l, "controller-uid", json!(uid));
                    default(l, "job-name", json!(name));
                }
            }
            if let Some(ps) = spec
                .get_mut("template")
                .and_then(|t| t.get_mut("spec"))
                .and_then(Value::as_object_mut)
            {
                pod_spec_defaults(ps, false);
            }
        }
        ("autoscaling", "HorizontalPodAutoscaler") => crate::autoscaling::apply_defaults(obj),
        ("batch", "CronJob") => {
            let spec = obj_mut(obj, "spec");
            default(spec, "concurrencyPolicy", json!("Allow"));
            default(spec, "suspend", json!(false));
            default(spec, "successfulJobsHistoryLimit", json!(3));
            default(spec, "failedJobsHistoryLimit", json!(1));
        }
        _ => {}
    }
}

fn template_defaults(spec: &mut Map<String, Value>) {
    if let Some(ps) = spec
        .get_mut("template")
        .and_then(|t| t.get_mut("spec"))
        .and_then(Value::as_object_mut)
    {
        pod_spec_defaults(ps, true);
    }
}

fn pod_spec_defaults(spec: &mut Map<String, Value>, restart_always: bool) {
    if restart_always {
        default(spec, "restartPolicy", json!("Always"));
    }
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "securityContext", json!({}));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(cs)) = spec.get_mut(list) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
                let policy = if image_tag(image).is_none_or(|t| t == "latest") {
                    "Always"
                } else {
                    "IfNotPresent"
                };
                default(c, "imagePullPolicy", json!(policy));
                default(c, "terminationMessagePath", json!("/dev/termination-log"));
                default(c, "terminationMessagePolicy", json!("File"));
                default(c, "resources", json!({}));
                if let Some(Value::Array(ports)) = c.get_mut("ports") {
                    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                        default(p, "protocol", json!("TCP"));
                    }
                }
            }
        }
    }
}

/// The tag of an image reference (`None` for no tag; digests count as a tag).
fn image_tag(image: &str) -> Option<&str> {
    if image.contains('@') {
        return Some("digest");
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    last.split_once(':').map(|(_, t)| t)
}

fn allocate_cluster_ip() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    format!(
        "10.96.{}.{}",
        rng.random_range(0..=255u8),
        rng.random_range(1..=254u8)
    )
}

/// Type-specific validation; returns `field: message` strings (empty when valid).
pub fn validate(rt: &ResourceType, obj: &Value, old: Option<&Value>) -> Vec<String> {
    let mut errs = Vec::new();
    if rt.crd.is_some() {
        return errs;
    }
    if is_kind(rt, "autoscaling", "HorizontalPodAutoscaler") {
        errs.extend(crate::autoscaling::validate(obj));
    }
    if is_kind(rt, "batch", "CronJob") {
        errs.extend(crate::schedule::validate(obj));
    }
    if is_kind(rt, "coordination.k8s.io", "Lease") {
        errs.extend(validate_lease(obj));
    }
    let workload = rt.group == "apps"
        && matches!(
            rt.kind.as_str(),
            "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet"
        );
    if workload || is_kind(rt, "batch", "Job") {
        let is_job = rt.kind == "Job";
        match obj.pointer("/spec/selector") {
            None if !is_job => errs.push("spec.selector: Required value".into()),
            Some(sel) => {
                if let Ok(ls) = crate::selector::LabelSelector::from_label_selector_json(sel) {
                    let labels = obj
                        .pointer("/spec/template/metadata/labels")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    if ls.is_empty() && !is_job {
                        errs.push("spec.selector: Invalid value: empty selector is invalid for deployment".into());
                    } else if !ls.matches(&labels) {
                        errs.push("spec.template.metadata.labels: Invalid value: `selector` does not match template `labels`".into());
                    }
                } else {
                    errs.push("spec.selector: Invalid value: invalid label selector".into());
                }
            }
            None => {}
        }
        errs.extend(validate_pod_spec(
            obj.pointer("/spec/template/spec"),
            "spec.template.spec",
        ));
        if is_job {
            let rp = obj
                .pointer("/spec/template/spec/restartPolicy")
                .and_then(Value::as_str)
                .unwrap_or("Always");
            if rp != "Never" && rp != "OnFailure" {
                errs.push(format!("spec.template.spec.restartPolicy: Unsupported value: {rp:?}: supported values: \"OnFailure\", \"Never\""));
            }
        }
        if let Some(old) = old {
            if old.pointer("/spec/selector") != obj.pointer("/spec/selector") {
                errs.push("spec.selector: Invalid value: field is immutable".into());
            }
            if is_job && old.pointer("/spec/template/spec") != obj.pointer("/spec/template/spec") {
                errs.push("spec.template: Invalid value: field is immutable".into());
            }
        }
        if let Some(r) = obj.pointer("/spec/replicas") {
            if r.as_i64().is_none_or(|n| n < 0) {
                errs.push(format!(
                    "spec.replicas: Invalid value: {r}: must be greater than or equal to 0"
                ));
            }
        }
    }
    if is_kind(rt, "", "Pod") {
        errs.extend(validate_pod_spec(obj.pointer("/spec"), "spec"));
        if let Some(old) = old {
            let masked = |v: &Value| {
                let mut s = v.get("spec").cloned().unwrap_or(Value::Null);
                for list in ["containers", "initContainers"] {
                    if let Some(Value::Array(cs)) = s.get_mut(list) {
                        for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                            c.remove("image");
                        }
                    }
                }
                if let Some(o) = s.as_object_mut() {
                    o.remove("activeDeadlineSeconds");
                    o.remove("tolerations");
                    o.remove("terminationGracePeriodSeconds");
                    o.remove("nodeName");
                }
                s
            };
            if masked(old) != masked(obj) {
                errs.push("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations) or `spec.terminationGracePeriodSeconds`".into());
            }
        }
    }
    if let (true, Some(old)) = (
        is_kind(rt, "", "ConfigMap") || is_kind(rt, "", "Secret"),
        old,
    ) {
        if old.get("immutable").and_then(Value::as_bool) == Some(true) {
            if old.get("data") != obj.get("data") || old.get("binaryData") != obj.get("binaryData")
            {
                errs.push("data: Forbidden: field is immutable when `immutable` is set".into());
            }
            if obj.get("immutable").and_then(Value::as_bool) != Some(true) {
                errs.push(
                    "immutable: Forbidden: field is immutable when `immutable` is set".into(),
                );
            }
        }
    }
    if is_kind(rt, "", "Secret") {
        if let Some(Value::Object(data)) = obj.get("data") {
            for (k, v) in data {
                let ok = v
                    .as_str()
                    .is_some_and(|s| base64::engine::general_purpose::STANDARD.decode(s).is_ok());
                if !ok {
                    errs.push(format!(
                        "data[{k}]: Invalid value: must be base64-encoded bytes"
                    ));
                }
            }
        }
    }
    if is_kind(rt, "", "Service") {
        if let Some(old) = old {
            let oip = old.pointer("/spec/clusterIP");
            let nip = obj.pointer("/spec/clusterIP");
            if oip.is_some() && nip.is_some() && oip != nip {
                errs.push(format!(
                    "spec.clusterIPs[0]: Invalid value: {}: may not change once set",
                    nip.cloned().unwrap_or(Value::Null)
                ));
            }
        }
    }
    if is_kind(rt, "", "PersistentVolumeClaim") {
        if let Some(old) = old {
            let strip = |v: &Value| {
                let mut s = v.get("spec").cloned().unwrap_or(Value::Null);
                if let Some(o) = s.as_object_mut() {
                    o.remove("resources");
                    o.remove("volumeName");
                }
                s
            };
            if strip(old) != strip(obj) {
                errs.push("spec: Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims".into());
            }
        }
    }
    errs
}

fn validate_pod_spec(spec: Option<&Value>, at: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let Some(spec) = spec else {
        errs.push(format!("{at}.containers: Required value"));
        return errs;
    };
    match spec.get("containers").and_then(Value::as_array) {
        None => errs.push(format!("{at}.containers: Required value")),
        Some(cs) if cs.is_empty() => errs.push(format!("{at}.containers: Required value")),
        Some(cs) => {
            for (i, c) in cs.iter().enumerate() {
                let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
                if name.is_empty() {
                    errs.push(format!("{at}.containers[{i}].name: Required value"));
                } else {
                    let problems = crate::validation::is_dns1123_label(name);
                    if !problems.is_empty() {
                        errs.push(format!(
                            "{at}.containers[{i}].name: Invalid value: {name:?}: {}",
                            problems.join("; ")
                        ));
                    }
                }
                if c.get("image")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    errs.push(format!("{at}.containers[{i}].image: Required value"));
                }
            }
        }
    }
    errs
}

/// A Lease's spec as Kubernetes checks it (`ValidateLeaseSpec`, and the types its decoder
/// insists on): controllers lock on these fields, so a malformed one must not be stored.
fn validate_lease(obj: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let Some(spec) = obj.get("spec") else {
        return errs;
    };
    let Some(spec) = spec.as_object() else {
        return vec!["spec: Invalid value: must be an object".into()];
    };
    for (k, v) in spec {
        match k.as_str() {
            "holderIdentity" | "strategy" | "preferredHolder" if !v.is_string() && !v.is_null() => {
                errs.push(format!("spec.{k}: Invalid value: must be a string"))
            }
            "leaseDurationSeconds" => match v.as_i64() {
                Some(d) if d > 0 && d <= i64::from(i32::MAX) => {}
                None if v.is_null() => {}
                _ => errs.push(format!(
                    "spec.leaseDurationSeconds: Invalid value: {v}: must be greater than 0"
                )),
            },
            "leaseTransitions" => match v.as_i64() {
                Some(t) if (0..=i64::from(i32::MAX)).contains(&t) => {}
                None if v.is_null() => {}
                _ => errs.push(format!(
                    "spec.leaseTransitions: Invalid value: {v}: must be greater than or equal to 0"
                )),
            },
            "acquireTime" | "renewTime" => match v.as_str() {
                Some(t) if mooring_core::time::parse(t).is_ok() => {}
                None if v.is_null() => {}
                _ => errs.push(format!(
                    "spec.{k}: Invalid value: {v}: must be an RFC 3339 time (metav1.MicroTime)"
                )),
            },
            _ => {}
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    #[test]
    fn deployment_defaults_match_kubernetes() {
        let r = Registry::with_builtins();
        let rt = r.get("apps", "v1", "deployments").expect("deploy");
        let mut d = json!({"spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.25", "ports": [{"containerPort": 80}]}]}}}});
        apply(&rt, &mut d);
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(c["imagePullPolicy"], "IfNotPresent");
        assert_eq!(c["ports"][0]["protocol"], "TCP");
        assert!(validate(&rt, &d, None).is_empty());
    }

    #[test]
    fn selector_mismatch_and_immutability() {
        let r = Registry::with_builtins();
        let rt = r.get("apps", "v1", "deployments").expect("deploy");
        let d = json!({"spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "c"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}});
        assert!(validate(&rt, &d, None)
            .iter()
            .any(|e| e.contains("does not match")));
        let old = json!({"spec": {"selector": {"matchLabels": {"a": "c"}}}});
        assert!(validate(&rt, &d, Some(&old))
            .iter()
            .any(|e| e.contains("immutable")));
    }

    #[test]
    fn latest_images_pull_always() {
        assert_eq!(image_tag("nginx"), None);
        assert_eq!(image_tag("reg:5000/nginx"), None);
        assert_eq!(image_tag("reg:5000/nginx:1.2"), Some("1.2"));
    }

    #[test]
    fn secret_string_data_is_encoded() {
        let r = Registry::with_builtins();
        let rt = r.get("", "v1", "secrets").expect("secret");
        let mut s = json!({"stringData": {"k": "v"}});
        apply(&rt, &mut s);
        assert_eq!(s["data"]["k"], "dg==");
        assert!(s.get("stringData").is_none());
        assert_eq!(s["type"], "Opaque");
    }
}
