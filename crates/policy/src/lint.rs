//! Built-in best-practice lints for rendered workloads, in the spirit of kube-score and
//! kubesec, so `mooring check` catches the usual production mistakes without a policy
//! pack.
//!
//! # The lints
//!
//! Every lint has a stable id (the finding's rule is `lint/<id>`). They apply to the pod
//! spec of every workload: `Pod`, `Deployment`, `StatefulSet`, `DaemonSet`, `ReplicaSet`,
//! `ReplicationController`, `Job`, `CronJob` (its job template), `PodTemplate` and the
//! Argo Rollouts `Rollout` (`spec.template`; a Rollout with `workloadRef` has no template
//! and is linted through the Deployment it references). Init containers are checked
//! where the rule makes sense for them (the table says which).
//!
//! | id | init | what is required |
//! |---|---|---|
//! | `container-resources` | yes | `requests` and `limits` for `cpu` and `memory` |
//! | `image-latest-tag` | yes | an image tag other than `latest`, or a digest |
//! | `readiness-probe` | no | Deployments, StatefulSets, ReplicaSets and Rollouts whose pods serve (a container declares `ports`, or a Service among the objects selects the pods): at least one container has a `readinessProbe` |
//! | `run-as-non-root` | yes | `runAsNonRoot: true` or a non-zero `runAsUser`, on the container or inherited from the pod's `securityContext` |
//! | `privileged-container` | yes | no `privileged: true`, no `allowPrivilegeEscalation: true`, no added `SYS_ADMIN`/`ALL` capability |
//! | `gpu-limits` | yes | a GPU (`nvidia.com/gpu`, `amd.com/gpu`, `gpu.intel.com/*`) in `requests` is also in `limits`, with the same quantity (extended resources cannot be overcommitted; the scheduler rejects a mismatch) |
//! | `host-namespaces` | – | no `hostNetwork`, `hostPID` or `hostIPC` |
//! | `host-path` | – | no `hostPath` volumes |
//!
//! # Turning lints off
//!
//! - for one object, with the annotation `mooring.dev/ignore-lints: id,id` on the object
//!   (kube-score's `kube-score/ignore: …` is honoured too, and kube-score's check names
//!   map to Mooring's: `container-image-tag` → `image-latest-tag`, `pod-probes` →
//!   `readiness-probe`, `container-security-context-user-group-id` → `run-as-non-root`,
//!   `container-security-context-privileged` → `privileged-container`);
//! - for a whole run, with [`LintOptions::disabled`] (the CLI's `--disable-lint ID` and the
//!   repository's `.mooring/check.yaml` `lints: {disable: [id, …]}`).
//!
//! An unknown id in either place is reported by [`unknown_ids`] so a typo does not silently
//! leave a lint on.

use crate::report::{Finding, Severity};
use mooring_engine::diff::quantity;
use serde_json::Value;
use std::collections::BTreeSet;

/// Every lint id with a one-line description.
pub const LINTS: &[(&str, &str)] = &[
    (
        "container-resources",
        "containers set requests and limits for cpu and memory",
    ),
    (
        "image-latest-tag",
        "images are pinned to a tag other than latest, or a digest",
    ),
    ("readiness-probe", "serving workloads have a readinessProbe"),
    ("run-as-non-root", "containers run as a non-root user"),
    (
        "privileged-container",
        "containers are not privileged and cannot escalate privileges",
    ),
    (
        "gpu-limits",
        "GPUs requested are declared in limits, with requests equal to limits",
    ),
    (
        "host-namespaces",
        "pods do not share the host's network, PID or IPC namespace",
    ),
    ("host-path", "pods do not mount hostPath volumes"),
];

/// The annotation that disables lints on one object.
pub const IGNORE_ANNOTATION: &str = "mooring.dev/ignore-lints";
/// kube-score's equivalent, honoured too.
pub const KUBE_SCORE_IGNORE_ANNOTATION: &str = "kube-score/ignore";

/// GPU extended-resource names (exact) and prefixes.
const GPU_RESOURCES: &[&str] = &["nvidia.com/gpu", "amd.com/gpu"];
const GPU_PREFIXES: &[&str] = &["gpu.intel.com/", "nvidia.com/mig-"];

/// Options of a lint run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LintOptions {
    /// Lint ids turned off for every object.
    pub disabled: BTreeSet<String>,
}

/// The ids in `ids` that are not lints (after mapping kube-score names).
pub fn unknown_ids<'a>(ids: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    ids.into_iter()
        .filter(|id| !LINTS.iter().any(|(l, _)| l == &canonical(id)))
        .cloned()
        .collect()
}

/// Map kube-score check names to Mooring's ids.
fn canonical(id: &str) -> &str {
    match id.trim() {
        "container-image-tag" => "image-latest-tag",
        "pod-probes" => "readiness-probe",
        "container-security-context-user-group-id" => "run-as-non-root",
        "container-security-context-privileged" => "privileged-container",
        other => other,
    }
}

/// What linting one object found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LintResult {
    pub findings: Vec<Finding>,
    /// Lints that ran on the object and passed.
    pub passed: usize,
}

/// The finding's `resource`: the object's [`mooring_core::ResourceKey`] as displayed
/// everywhere (`Deployment.apps/ns/name`), or its kind when it has no identity.
pub fn resource_label(obj: &Value) -> String {
    mooring_core::ResourceKey::of(obj).map_or_else(
        || obj["kind"].as_str().unwrap_or("").to_string(),
        |k| k.to_string(),
    )
}

/// The pod spec (and pod labels) of a workload, if `obj` is one.
fn pod_template(obj: &Value) -> Option<(&Value, &Value)> {
    let kind = obj["kind"].as_str()?;
    let group = obj["apiVersion"]
        .as_str()?
        .rsplit_once('/')
        .map_or("", |(g, _)| g);
    let template = match (group, kind) {
        ("", "Pod") => return Some((&obj["spec"], &obj["metadata"]["labels"])),
        ("", "PodTemplate") => &obj["template"],
        ("apps", "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        | ("", "ReplicationController")
        | ("batch", "Job")
        | ("argoproj.io", "Rollout") => &obj["spec"]["template"],
        ("batch", "CronJob") => &obj["spec"]["jobTemplate"]["spec"]["template"],
        _ => return None,
    };
    template
        .get("spec")
        .filter(|s| s.is_object())
        .map(|s| (s, &template["metadata"]["labels"]))
}

fn serving_kind(obj: &Value) -> bool {
    let group = obj["apiVersion"]
        .as_str()
        .and_then(|a| a.rsplit_once('/'))
        .map_or("", |(g, _)| g);
    matches!(
        (group, obj["kind"].as_str().unwrap_or("")),
        ("apps", "Deployment" | "StatefulSet" | "ReplicaSet") | ("argoproj.io", "Rollout")
    )
}

/// The ids disabled on `obj` by annotation.
fn ignored_by_annotation(obj: &Value) -> BTreeSet<String> {
    let ann = &obj["metadata"]["annotations"];
    [IGNORE_ANNOTATION, KUBE_SCORE_IGNORE_ANNOTATION]
        .iter()
        .filter_map(|a| ann[*a].as_str())
        .flat_map(|s| s.split(','))
        .map(|id| canonical(id).to_string())
        .filter(|id| !id.is_empty())
        .collect()
}

struct Container<'a> {
    c: &'a Value,
    init: bool,
    name: String,
}

fn containers(spec: &Value) -> Vec<Container<'_>> {
    let mut out = Vec::new();
    for (field, init) in [("initContainers", true), ("containers", false)] {
        for c in spec[field].as_array().into_iter().flatten() {
            let name = c["name"].as_str().unwrap_or("?");
            out.push(Container {
                c,
                init,
                name: if init {
                    format!("init container {name:?}")
                } else {
                    format!("container {name:?}")
                },
            });
        }
    }
    out
}

/// Whether a Service among `objects` selects pods with `labels` in `namespace`.
fn selected_by_service(objects: &[Value], namespace: &str, labels: &Value) -> bool {
    let Some(labels) = labels.as_object() else {
        return false;
    };
    objects.iter().any(|s| {
        s["apiVersion"] == "v1"
            && s["kind"] == "Service"
            && s["metadata"]["namespace"].as_str().unwrap_or("") == namespace
            && s["spec"]["selector"].as_object().is_some_and(|sel| {
                !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
            })
    })
}

/// Lint one object. `objects` is the whole rendered set (for Service selection).
pub fn lint(obj: &Value, objects: &[Value], opts: &LintOptions) -> LintResult {
    let mut result = LintResult::default();
    let Some((spec, labels)) = pod_template(obj) else {
        return result;
    };
    let ignored = ignored_by_annotation(obj);
    let resource = resource_label(obj);
    let on = |id: &str| !opts.disabled.iter().any(|d| canonical(d) == id) && !ignored.contains(id);
    let cs = containers(spec);
    let mut run = |id: &str, problems: Vec<String>| {
        if !on(id) {
            return;
        }
        if problems.is_empty() {
            result.passed += 1;
        }
        for message in problems {
            result.findings.push(Finding {
                severity: Severity::Failure,
                source: "lint".into(),
                rule: format!("lint/{id}"),
                message,
                resource: resource.clone(),
                line: None,
                metadata: Value::Null,
            });
        }
    };

    // container-resources
    let mut p = Vec::new();
    for c in &cs {
        let mut missing = Vec::new();
        for section in ["requests", "limits"] {
            for r in ["cpu", "memory"] {
                let v = &c.c["resources"][section][r];
                if v.is_null() || v.as_str() == Some("") {
                    missing.push(format!("{section}.{r}"));
                }
            }
        }
        if !missing.is_empty() {
            p.push(format!(
                "{} has no resources.{}",
                c.name,
                missing.join(", resources.")
            ));
        }
    }
    run("container-resources", p);

    // image-latest-tag
    let mut p = Vec::new();
    for c in &cs {
        let image = c.c["image"].as_str().unwrap_or("");
        if image.is_empty() {
            continue;
        }
        match image_tag(image) {
            ImageTag::Digest | ImageTag::Tag(_) => {}
            ImageTag::Latest => p.push(format!(
                "{} uses the latest tag ({image}): pin a version or a digest",
                c.name
            )),
            ImageTag::None => p.push(format!(
                "{} has no image tag ({image}, which means latest): pin a version or a digest",
                c.name
            )),
        }
    }
    run("image-latest-tag", p);

    // readiness-probe
    if serving_kind(obj) {
        let ns = obj["metadata"]["namespace"].as_str().unwrap_or("");
        let main: Vec<&Container> = cs.iter().filter(|c| !c.init).collect();
        let serving = main
            .iter()
            .any(|c| c.c["ports"].as_array().is_some_and(|p| !p.is_empty()))
            || selected_by_service(objects, ns, labels);
        if serving {
            let probed = main.iter().any(|c| c.c["readinessProbe"].is_object());
            let p = if probed {
                vec![]
            } else {
                vec!["serves traffic but no container has a readinessProbe: traffic reaches pods before they are ready".to_string()]
            };
            run("readiness-probe", p);
        }
    }

    // run-as-non-root
    let pod_sc = &spec["securityContext"];
    let mut p = Vec::new();
    for c in &cs {
        let sc = &c.c["securityContext"];
        let non_root = sc["runAsNonRoot"]
            .as_bool()
            .or_else(|| pod_sc["runAsNonRoot"].as_bool());
        let user = sc["runAsUser"]
            .as_i64()
            .or_else(|| pod_sc["runAsUser"].as_i64());
        let ok = match (non_root, user) {
            (_, Some(0)) => false,
            (Some(true), _) => true,
            (_, Some(u)) => u > 0,
            _ => false,
        };
        if !ok {
            p.push(format!(
                "{} may run as root: set securityContext.runAsNonRoot: true (or a non-zero runAsUser)",
                c.name
            ));
        }
    }
    run("run-as-non-root", p);

    // privileged-container
    let mut p = Vec::new();
    for c in &cs {
        let sc = &c.c["securityContext"];
        if sc["privileged"] == true {
            p.push(format!("{} is privileged", c.name));
        }
        if sc["allowPrivilegeEscalation"] == true {
            p.push(format!("{} sets allowPrivilegeEscalation: true", c.name));
        }
        for cap in sc["capabilities"]["add"].as_array().into_iter().flatten() {
            if let Some(cap) = cap.as_str() {
                let bare = cap.strip_prefix("CAP_").unwrap_or(cap);
                if bare.eq_ignore_ascii_case("SYS_ADMIN") || bare.eq_ignore_ascii_case("ALL") {
                    p.push(format!("{} adds the {cap} capability", c.name));
                }
            }
        }
    }
    run("privileged-container", p);

    // gpu-limits
    let mut p = Vec::new();
    let mut any_gpu = false;
    for c in &cs {
        let res = &c.c["resources"];
        let mut names: BTreeSet<&str> = BTreeSet::new();
        for section in ["requests", "limits"] {
            if let Some(m) = res[section].as_object() {
                names.extend(m.keys().map(String::as_str).filter(|k| is_gpu(k)));
            }
        }
        for name in names {
            any_gpu = true;
            let req = &res["requests"][name];
            let lim = &res["limits"][name];
            if lim.is_null() {
                p.push(format!(
                    "{} requests {name} but does not declare it in limits",
                    c.name
                ));
            } else if !req.is_null() && quantity::of(req) != quantity::of(lim) {
                p.push(format!(
                    "{} requests {name}: {} but limits it to {}: GPU requests must equal limits",
                    c.name,
                    scalar(req),
                    scalar(lim)
                ));
            }
        }
    }
    if any_gpu {
        run("gpu-limits", p);
    }

    // host-namespaces
    let p = ["hostNetwork", "hostPID", "hostIPC"]
        .iter()
        .filter(|f| spec[**f] == true)
        .map(|f| format!("the pod sets {f}: true"))
        .collect();
    run("host-namespaces", p);

    // host-path
    let p = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["hostPath"].is_object())
        .map(|v| {
            format!(
                "volume {:?} mounts the host path {}",
                v["name"].as_str().unwrap_or("?"),
                v["hostPath"]["path"].as_str().unwrap_or("?")
            )
        })
        .collect();
    run("host-path", p);

    result
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn is_gpu(name: &str) -> bool {
    GPU_RESOURCES.contains(&name) || GPU_PREFIXES.iter().any(|p| name.starts_with(p))
}

#[derive(Debug, PartialEq, Eq)]
enum ImageTag<'a> {
    Digest,
    Tag(&'a str),
    Latest,
    None,
}

/// The tag of an image reference (`registry:5000/org/img:tag@sha256:…`).
fn image_tag(image: &str) -> ImageTag<'_> {
    if image.contains('@') {
        return ImageTag::Digest;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.rsplit_once(':') {
        Some((_, "latest")) => ImageTag::Latest,
        Some((_, "")) | None => ImageTag::None,
        Some((_, t)) => ImageTag::Tag(t),
    }
}

#[cfg(test)]
mod tests;
