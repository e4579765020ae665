//! `mooring bench policy --objects N`: Gatekeeper reviews per second, and the cost of
//! Mooring's layer over bare regorus.
//!
//! The sync gate reviews every rendered object before every apply, and `mooring check`
//! reviews a whole repository, so the per-review cost decides whether policy can stay on
//! the hot path. This benchmark generates N realistic ML workloads (Deployments and Pods
//! with one to three containers, GPU and CPU trainers, model servers, init containers,
//! some violating) and reviews each one, on one thread:
//!
//! * end to end through [`Gatekeeper::review`] against three templates an ML platform
//!   uses (resource limits with Kubernetes quantity parsing written in Rego, allowed
//!   registries, required governance annotations), one constraint each;
//! * the allowed-registries template alone, end to end;
//! * the same allowed-registries Rego through bare regorus, as a minimal integration would
//!   call it: clone a prepared `Engine`, `set_input` (converted from JSON), `eval_rule`.
//!
//! The ratio of the last two is Mooring's overhead (input building, `spec.match`,
//! parameters, result conversion). Figures are printed as a table and recorded in
//! docs/benchmarks.md.

use std::time::Instant;

use anyhow::Context;
use mooring_policy::gatekeeper::{Gatekeeper, Review};
use mooring_policy::rego::regorus;
use mooring_policy::Limits;
use serde_json::{json, Value};

const RESOURCE_LIMITS: &str = r#"
package k8smlresourcelimits

containers[c] { c := input.review.object.spec.containers[_] }
containers[c] { c := input.review.object.spec.initContainers[_] }
containers[c] { c := input.review.object.spec.template.spec.containers[_] }
containers[c] { c := input.review.object.spec.template.spec.initContainers[_] }

mem_multiple("") = 1
mem_multiple("k") = 1000
mem_multiple("K") = 1000
mem_multiple("M") = 1000000
mem_multiple("G") = 1000000000
mem_multiple("T") = 1000000000000
mem_multiple("Ki") = 1024
mem_multiple("Mi") = 1048576
mem_multiple("Gi") = 1073741824
mem_multiple("Ti") = 1099511627776

# Kubernetes memory quantity to bytes: 512, "512", "1.5Gi", "500M".
mem_bytes(q) = q { is_number(q) }
mem_bytes(q) = n {
  is_string(q)
  parts := regex.find_all_string_submatch_n(`^([0-9]+(?:\.[0-9]+)?)([A-Za-z]*)$`, q, 1)
  n := to_number(parts[0][1]) * mem_multiple(parts[0][2])
}

# Kubernetes CPU quantity to millicores: 2, "2", "1.5", "500m".
cpu_millis(q) = n { is_number(q); n := q * 1000 }
cpu_millis(q) = n { is_string(q); endswith(q, "m"); n := to_number(trim_suffix(q, "m")) }
cpu_millis(q) = n { is_string(q); not endswith(q, "m"); n := to_number(q) * 1000 }

violation[{"msg": msg}] {
  c := containers[_]
  not c.resources.limits.cpu
  msg := sprintf("container <%v> has no cpu limit", [c.name])
}

violation[{"msg": msg}] {
  c := containers[_]
  not c.resources.limits.memory
  msg := sprintf("container <%v> has no memory limit", [c.name])
}

violation[{"msg": msg, "details": {"limit": c.resources.limits.cpu, "max": input.parameters.cpu}}] {
  c := containers[_]
  cpu_millis(c.resources.limits.cpu) > cpu_millis(input.parameters.cpu)
  msg := sprintf("container <%v> cpu limit <%v> is higher than the maximum <%v>", [c.name, c.resources.limits.cpu, input.parameters.cpu])
}

violation[{"msg": msg}] {
  c := containers[_]
  mem_bytes(c.resources.limits.memory) > mem_bytes(input.parameters.memory)
  msg := sprintf("container <%v> memory limit <%v> is higher than the maximum <%v>", [c.name, c.resources.limits.memory, input.parameters.memory])
}

violation[{"msg": msg}] {
  c := containers[_]
  c.resources.requests["nvidia.com/gpu"]
  not c.resources.limits["nvidia.com/gpu"]
  msg := sprintf("container <%v> requests GPUs without a GPU limit", [c.name])
}

violation[{"msg": msg}] {
  c := containers[_]
  to_number(c.resources.limits["nvidia.com/gpu"]) > input.parameters.gpus
  msg := sprintf("container <%v> asks for %v GPUs, more than %v", [c.name, c.resources.limits["nvidia.com/gpu"], input.parameters.gpus])
}
"#;

const ALLOWED_REPOS: &str = r#"
package k8sallowedrepos

violation[{"msg": msg}] {
  container := input.review.object.spec.containers[_]
  satisfied := [good | repo = input.parameters.repos[_] ; good = startswith(container.image, repo)]
  not any(satisfied)
  msg := sprintf("container <%v> has an invalid image repo <%v>, allowed repos are %v", [container.name, container.image, input.parameters.repos])
}

violation[{"msg": msg}] {
  container := input.review.object.spec.template.spec.containers[_]
  satisfied := [good | repo = input.parameters.repos[_] ; good = startswith(container.image, repo)]
  not any(satisfied)
  msg := sprintf("container <%v> has an invalid image repo <%v>, allowed repos are %v", [container.name, container.image, input.parameters.repos])
}

violation[{"msg": msg}] {
  container := input.review.object.spec.initContainers[_]
  satisfied := [good | repo = input.parameters.repos[_] ; good = startswith(container.image, repo)]
  not any(satisfied)
  msg := sprintf("initContainer <%v> has an invalid image repo <%v>, allowed repos are %v", [container.name, container.image, input.parameters.repos])
}
"#;

const REQUIRED_ANNOTATIONS: &str = r#"
package k8srequiredannotations

violation[{"msg": msg, "details": {"missing_annotations": missing}}] {
  provided := {key | input.review.object.metadata.annotations[key]}
  required := {key | key := input.parameters.annotations[_].key}
  missing := required - provided
  count(missing) > 0
  msg := sprintf("you must provide annotation(s): %v", [missing])
}

violation[{"msg": msg}] {
  value := input.review.object.metadata.annotations[key]
  expected := input.parameters.annotations[_]
  expected.key == key
  expected.allowedRegex != ""
  not re_match(expected.allowedRegex, value)
  msg := sprintf("annotation <%v: %v> does not satisfy allowed regex: %v", [key, value, expected.allowedRegex])
}
"#;

fn template(kind: &str, rego: &str) -> Value {
    json!({
        "apiVersion": "templates.gatekeeper.sh/v1",
        "kind": "ConstraintTemplate",
        "metadata": {"name": kind.to_ascii_lowercase()},
        "spec": {
            "crd": {"spec": {"names": {"kind": kind}}},
            "targets": [{"target": "admission.k8s.gatekeeper.sh", "rego": rego}]
        }
    })
}

fn repos_parameters() -> Value {
    json!({"repos": ["registry.ml.example.com/", "ghcr.io/ml-platform/"]})
}

fn policy_objects() -> Vec<Value> {
    let kinds = json!([{"apiGroups": ["", "apps"], "kinds": ["Pod", "Deployment"]}]);
    vec![
        template("K8sMLResourceLimits", RESOURCE_LIMITS),
        template("K8sAllowedRepos", ALLOWED_REPOS),
        template("K8sRequiredAnnotations", REQUIRED_ANNOTATIONS),
        json!({
            "apiVersion": "constraints.gatekeeper.sh/v1beta1",
            "kind": "K8sMLResourceLimits",
            "metadata": {"name": "ml-training-caps"},
            "spec": {
                "match": {"kinds": kinds, "namespaces": ["ml-*"], "excludedNamespaces": ["kube-*"]},
                "parameters": {"cpu": "16", "memory": "64Gi", "gpus": 8}
            }
        }),
        json!({
            "apiVersion": "constraints.gatekeeper.sh/v1beta1",
            "kind": "K8sAllowedRepos",
            "metadata": {"name": "approved-registries"},
            "spec": {"match": {"kinds": kinds}, "parameters": repos_parameters()}
        }),
        json!({
            "apiVersion": "constraints.gatekeeper.sh/v1beta1",
            "kind": "K8sRequiredAnnotations",
            "metadata": {"name": "model-governance"},
            "spec": {
                "enforcementAction": "warn",
                "match": {"kinds": kinds, "labelSelector": {"matchExpressions": [{"key": "ml.example.com/stage", "operator": "In", "values": ["staging", "production"]}]}},
                "parameters": {"annotations": [
                    {"key": "ml.example.com/approved-by", "allowedRegex": "^[a-z]+@example\\.com$"},
                    {"key": "ml.example.com/bias-check", "allowedRegex": "^(passed|waived)$"}
                ]}
            }
        }),
    ]
}

/// A deterministic mix of ML workloads; roughly one in five violates something.
fn workload(i: usize) -> Value {
    let registry = if i % 7 == 3 {
        "docker.io/someone/"
    } else if i.is_multiple_of(2) {
        "registry.ml.example.com/"
    } else {
        "ghcr.io/ml-platform/"
    };
    let gpu = i.is_multiple_of(3);
    let memory = ["8Gi", "32Gi", "48000M", "128Gi"][i % 4];
    let cpu = ["500m", "4", "12", "2.5"][i % 4];
    let mut limits = json!({"cpu": cpu, "memory": memory});
    if gpu {
        limits["nvidia.com/gpu"] = json!(if i.is_multiple_of(11) { "16" } else { "4" });
    }
    let n_containers = 1 + i % 3;
    let containers: Vec<Value> = (0..n_containers)
        .map(|c| {
            json!({
                "name": if c == 0 { "main".to_string() } else { format!("sidecar-{c}") },
                "image": format!("{registry}{}:{}.{}", if gpu { "trainer" } else { "server" }, i % 10, c),
                "args": ["--epochs", "10", "--data", "s3://datasets/imagenet"],
                "env": [{"name": "MODEL", "value": format!("model-{i}")}, {"name": "LOG_LEVEL", "value": "info"}],
                "resources": {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": if c == 2 && i.is_multiple_of(5) { json!({}) } else { limits.clone() }}
            })
        })
        .collect();
    let stage = ["dev", "staging", "production"][i % 3];
    let mut annotations = json!({"ml.example.com/approved-by": "ada@example.com", "ml.example.com/bias-check": "passed"});
    if i.is_multiple_of(13) {
        annotations["ml.example.com/bias-check"] = json!("skipped");
    }
    let metadata = json!({
        "name": format!("workload-{i}"),
        "namespace": if i.is_multiple_of(2) { "ml-training" } else { "ml-serving" },
        "labels": {"app": format!("model-{}", i % 50), "ml.example.com/stage": stage, "team": "vision"},
        "annotations": annotations
    });
    let pod_spec = json!({
        "initContainers": [{"name": "fetch-weights", "image": format!("{registry}fetcher:1"), "resources": {"limits": {"cpu": "1", "memory": "512Mi"}}}],
        "containers": containers,
        "nodeSelector": {"accelerator": if gpu { "a100" } else { "none" }}
    });
    if i.is_multiple_of(2) {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata,
               "spec": {"replicas": 2, "selector": {"matchLabels": {"app": format!("model-{}", i % 50)}},
                        "template": {"metadata": {"labels": {"app": format!("model-{}", i % 50)}}, "spec": pod_spec}}})
    } else {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec})
    }
}

struct Figure {
    what: &'static str,
    micros: f64,
    violations: usize,
}

fn time_reviews(
    what: &'static str,
    objects: &[Value],
    mut review: impl FnMut(&Value) -> anyhow::Result<usize>,
) -> anyhow::Result<Figure> {
    // Warm up caches and allocators on a slice first.
    for obj in objects.iter().take(200) {
        review(obj)?;
    }
    let start = Instant::now();
    let mut violations = 0;
    for obj in objects {
        violations += review(obj)?;
    }
    let micros = start.elapsed().as_secs_f64() * 1e6 / objects.len().max(1) as f64;
    Ok(Figure {
        what,
        micros,
        violations,
    })
}

pub fn run(objects: usize) -> anyhow::Result<()> {
    let objects: Vec<Value> = (0..objects.max(1)).map(workload).collect();
    let policy = policy_objects();
    let limits = Limits::default();

    let all = Gatekeeper::from_objects(&policy, limits).context("loading the ML templates")?;
    let repos_only = Gatekeeper::from_objects(
        policy
            .iter()
            .filter(|o| o["kind"] == "ConstraintTemplate" || o["kind"] == "K8sAllowedRepos"),
        limits,
    )
    .context("loading allowed-repos")?;

    // Bare regorus, the way a minimal integration calls it.
    let mut bare = regorus::Engine::new();
    bare.set_rego_v0(true);
    bare.add_extension(
        "any".to_string(),
        1,
        Box::new(|args: Vec<regorus::Value>| {
            let any = args
                .first()
                .and_then(|v| v.as_array().ok())
                .is_some_and(|a| a.iter().any(|v| *v == regorus::Value::Bool(true)));
            Ok(regorus::Value::from(any))
        }),
    )?;
    bare.add_policy("allowed-repos.rego".to_string(), ALLOWED_REPOS.to_string())?;
    // Prepare once (rule analysis), so clones start prepared.
    bare.eval_query("true".to_string(), false)?;
    let parameters = repos_parameters();

    let mut figures = Vec::new();
    figures.push(time_reviews(
        "Gatekeeper::review, 3 ML templates",
        &objects,
        |obj| Ok(all.review(&Review::create(obj))?.len()),
    )?);
    figures.push(time_reviews(
        "Gatekeeper::review, allowed-repos only",
        &objects,
        |obj| Ok(repos_only.review(&Review::create(obj))?.len()),
    )?);
    figures.push(time_reviews(
        "bare regorus, allowed-repos",
        &objects,
        |obj| {
            let mut engine = bare.clone();
            engine.set_input(regorus::Value::from(json!({
                "review": {"object": obj.clone()},
                "parameters": parameters.clone()
            })));
            let result = engine.eval_rule("data.k8sallowedrepos.violation".to_string())?;
            Ok(result.as_set().map(|s| s.len()).unwrap_or(0))
        },
    )?);

    println!(
        "policy evaluation, {} objects (Deployments and Pods), one thread",
        objects.len()
    );
    println!(
        "{:<42} {:>12} {:>12} {:>11}",
        "path", "µs/review", "reviews/s", "violations"
    );
    for f in &figures {
        println!(
            "{:<42} {:>12.1} {:>12.0} {:>11}",
            f.what,
            f.micros,
            1e6 / f.micros,
            f.violations
        );
    }
    let mut by_constraint = std::collections::BTreeMap::<String, usize>::new();
    for obj in &objects {
        for v in all.review(&Review::create(obj))? {
            *by_constraint
                .entry(format!("{}/{}", v.constraint_kind, v.constraint_name))
                .or_default() += 1;
        }
    }
    println!("violations by constraint: {by_constraint:?}");
    let ratio = figures[1].micros / figures[2].micros;
    println!("end-to-end / bare regorus (allowed-repos): {ratio:.2}x");
    anyhow::ensure!(
        figures[1].violations == figures[2].violations,
        "Gatekeeper found {} allowed-repos violations, bare regorus {}",
        figures[1].violations,
        figures[2].violations
    );
    Ok(())
}
