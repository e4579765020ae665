use super::*;
use serde_json::json;

fn yaml(s: &str) -> Value {
    mooring_core::yaml::parse_one(s).expect("test YAML parses")
}

fn clean() -> Value {
    yaml(include_str!(
        "../../tests/fixtures/lint/deployment-clean.yaml"
    ))
}

/// (id, message) pairs of linting `obj` alone.
fn run(obj: &Value, opts: &LintOptions) -> Vec<(String, String)> {
    lint(obj, std::slice::from_ref(obj), opts)
        .findings
        .into_iter()
        .map(|f| {
            assert_eq!(f.source, "lint");
            assert_eq!(f.severity, Severity::Failure);
            (f.rule.trim_start_matches("lint/").to_string(), f.message)
        })
        .collect()
}

fn ids(obj: &Value) -> Vec<String> {
    run(obj, &LintOptions::default())
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

#[test]
fn clean_deployment_passes_every_lint() {
    let r = lint(&clean(), &[clean()], &LintOptions::default());
    assert_eq!(r.findings, vec![]);
    // All eight lints apply to this Deployment and pass.
    assert_eq!(r.passed, LINTS.len());
}

type Edit = fn(&mut Value);

#[test]
fn each_lint_positive_and_negative() {
    let cases: &[(&str, Edit, &[&str])] = &[
        (
            "no limits",
            |o| {
                o.pointer_mut("/spec/template/spec/containers/0/resources")
                    .expect("r")
                    .as_object_mut()
                    .expect("o")
                    .remove("limits");
            },
            &["container-resources", "gpu-limits"],
        ),
        (
            "init container without requests",
            |o| {
                o.pointer_mut("/spec/template/spec/initContainers/0/resources")
                    .expect("r")
                    .as_object_mut()
                    .expect("o")
                    .remove("requests");
            },
            &["container-resources"],
        ),
        (
            "latest tag",
            |o| {
                o.pointer_mut("/spec/template/spec/containers/0")
                    .expect("c")["image"] = json!("nginx:latest")
            },
            &["image-latest-tag"],
        ),
        (
            "no tag with registry port",
            |o| {
                o.pointer_mut("/spec/template/spec/containers/0")
                    .expect("c")["image"] = json!("registry:5000/nginx")
            },
            &["image-latest-tag"],
        ),
        (
            "init container latest",
            |o| {
                o.pointer_mut("/spec/template/spec/initContainers/0")
                    .expect("c")["image"] = json!("busybox")
            },
            &["image-latest-tag"],
        ),
        (
            "tag plus digest is fine",
            |o| {
                o.pointer_mut("/spec/template/spec/containers/0")
                    .expect("c")["image"] = json!("nginx:latest@sha256:abc")
            },
            &[],
        ),
        (
            "no readiness probe",
            |o| {
                o.pointer_mut("/spec/template/spec/containers/0")
                    .expect("c")
                    .as_object_mut()
                    .expect("o")
                    .remove("readinessProbe");
            },
            &["readiness-probe"],
        ),
        (
            "no ports and no service: no probe needed",
            |o| {
                let c = o
                    .pointer_mut("/spec/template/spec/containers/0")
                    .expect("c")
                    .as_object_mut()
                    .expect("o");
                c.remove("readinessProbe");
                c.remove("ports");
            },
            &[],
        ),
        (
            "pod runAsNonRoot false",
            |o| {
                o.pointer_mut("/spec/template/spec").expect("s")["securityContext"] =
                    json!({"runAsNonRoot": false})
            },
            &["run-as-non-root", "run-as-non-root"],
        ),
        (
            "container overrides pod with root user",
            |o| {
                o.pointer_mut("/spec/template/spec/containers/0")
                    .expect("c")["securityContext"] = json!({"runAsUser": 0})
            },
            &["run-as-non-root"],
        ),
        (
            "non-zero runAsUser is enough",
            |o| {
                o.pointer_mut("/spec/template/spec").expect("s")["securityContext"] =
                    json!({"runAsUser": 1000});
            },
            &[],
        ),
        (
            "privileged",
            |o| {
                o.pointer_mut("/spec/template/spec/containers/0/securityContext")
                    .expect("c")["privileged"] = json!(true)
            },
            &["privileged-container"],
        ),
        (
            "privilege escalation in init",
            |o| {
                o.pointer_mut("/spec/template/spec/initContainers/0")
                    .expect("c")["securityContext"] = json!({"allowPrivilegeEscalation": true})
            },
            &["privileged-container"],
        ),
        (
            "SYS_ADMIN",
            |o| {
                o.pointer_mut("/spec/template/spec/containers/0/securityContext")
                    .expect("c")["capabilities"] =
                    json!({"add": ["NET_BIND_SERVICE", "CAP_SYS_ADMIN"]})
            },
            &["privileged-container"],
        ),
        (
            "gpu only in requests",
            |o| {
                o.pointer_mut("/spec/template/spec/containers/0/resources/limits")
                    .expect("l")
                    .as_object_mut()
                    .expect("o")
                    .remove("nvidia.com/gpu");
            },
            &["gpu-limits"],
        ),
        (
            "gpu requests differ from limits",
            |o| {
                o.pointer_mut("/spec/template/spec/containers/0/resources/limits")
                    .expect("l")["nvidia.com/gpu"] = json!(2)
            },
            &["gpu-limits"],
        ),
        (
            "amd gpu in init container only in requests",
            |o| {
                o.pointer_mut("/spec/template/spec/initContainers/0/resources/requests")
                    .expect("l")["amd.com/gpu"] = json!(1)
            },
            &["gpu-limits"],
        ),
        (
            "gpu only in limits is fine",
            |o| {
                o.pointer_mut("/spec/template/spec/containers/0/resources/requests")
                    .expect("l")
                    .as_object_mut()
                    .expect("o")
                    .remove("nvidia.com/gpu");
            },
            &[],
        ),
        (
            "hostNetwork",
            |o| o.pointer_mut("/spec/template/spec").expect("s")["hostNetwork"] = json!(true),
            &["host-namespaces"],
        ),
        (
            "hostPath",
            |o| {
                o.pointer_mut("/spec/template/spec").expect("s")["volumes"] =
                    json!([{"name": "docker", "hostPath": {"path": "/var/run/docker.sock"}}])
            },
            &["host-path"],
        ),
    ];
    for (name, edit, want) in cases {
        let mut obj = clean();
        edit(&mut obj);
        assert_eq!(
            ids(&obj),
            *want,
            "{name}: {:?}",
            run(&obj, &LintOptions::default())
        );
    }
}

#[test]
fn messages_name_the_container() {
    let mut obj = clean();
    obj["spec"]["template"]["spec"]["initContainers"][0]["image"] = json!("busybox");
    let f = run(&obj, &LintOptions::default());
    assert_eq!(
        f,
        vec![(
            "image-latest-tag".to_string(),
            "init container \"fetch-model\" has no image tag (busybox, which means latest): pin a version or a digest".to_string()
        )]
    );
    let r = lint(&obj, &[], &LintOptions::default());
    assert_eq!(
        r.findings[0].resource,
        "Deployment.apps/ml-serving/model-server"
    );
    assert_eq!(r.findings[0].rule, "lint/image-latest-tag");
}

#[test]
fn every_workload_kind_is_linted() {
    let pod_spec = json!({"containers": [{"name": "c", "image": "x"}]});
    let template = json!({"metadata": {"labels": {"app": "a"}}, "spec": pod_spec});
    let objs = [
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": pod_spec}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": template}}),
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "d"}, "spec": {"template": template}}),
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "d"}, "spec": {"template": template}}),
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "d"}, "spec": {"template": template}}),
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "d"}, "spec": {"template": template}}),
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "d"}, "spec": {"jobTemplate": {"spec": {"template": template}}}}),
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "d"}, "spec": {"template": template}}),
        json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "d"}, "spec": {"template": template}}),
    ];
    for o in &objs {
        let got = ids(o);
        assert!(
            got.contains(&"image-latest-tag".to_string()),
            "{o}: {got:?}"
        );
        assert!(
            got.contains(&"container-resources".to_string()),
            "{o}: {got:?}"
        );
        assert!(got.contains(&"run-as-non-root".to_string()), "{o}: {got:?}");
    }
    // Not workloads: nothing.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    assert_eq!(
        lint(&cm, &[], &LintOptions::default()),
        LintResult::default()
    );
    let rollout_ref = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "d"}, "spec": {"workloadRef": {"kind": "Deployment", "name": "x"}}});
    assert_eq!(
        lint(&rollout_ref, &[], &LintOptions::default()),
        LintResult::default()
    );
}

#[test]
fn readiness_probe_when_a_service_selects_the_pods() {
    let mut d = clean();
    let c = d["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .expect("container");
    c.remove("readinessProbe");
    c.remove("ports");
    let svc = |ns: &str, app: &str| json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": ns}, "spec": {"selector": {"app": app}}});
    let with = |objs: &[Value]| -> Vec<String> {
        lint(&d, objs, &LintOptions::default())
            .findings
            .into_iter()
            .map(|f| f.rule)
            .collect()
    };
    assert_eq!(
        with(&[svc("ml-serving", "model-server")]),
        vec!["lint/readiness-probe"]
    );
    assert_eq!(with(&[svc("other", "model-server")]), Vec::<String>::new());
    assert_eq!(with(&[svc("ml-serving", "else")]), Vec::<String>::new());
    // Jobs never need one.
    let mut job = d.clone();
    job["apiVersion"] = json!("batch/v1");
    job["kind"] = json!("Job");
    assert!(lint(
        &job,
        &[svc("ml-serving", "model-server")],
        &LintOptions::default()
    )
    .findings
    .is_empty());
}

#[test]
fn disabling_lints() {
    let mut obj = clean();
    obj["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx");
    obj["spec"]["template"]["spec"]["hostNetwork"] = json!(true);
    assert_eq!(ids(&obj), vec!["image-latest-tag", "host-namespaces"]);
    // Globally.
    let opts = LintOptions {
        disabled: ["image-latest-tag".to_string()].into(),
    };
    assert_eq!(run(&obj, &opts).len(), 1);
    // kube-score's name maps to ours.
    let opts = LintOptions {
        disabled: ["container-image-tag".to_string()].into(),
    };
    assert_eq!(run(&obj, &opts).len(), 1);
    // Per object, with Mooring's annotation and with kube-score's.
    for (ann, value) in [
        (IGNORE_ANNOTATION, "image-latest-tag, host-namespaces"),
        (
            KUBE_SCORE_IGNORE_ANNOTATION,
            "container-image-tag,host-namespaces",
        ),
    ] {
        let mut o = obj.clone();
        o["metadata"]["annotations"] = json!({ ann: value });
        assert_eq!(ids(&o), Vec::<String>::new(), "{ann}");
    }
    // A disabled lint is neither a finding nor a pass.
    let all: BTreeSet<String> = LINTS.iter().map(|(id, _)| id.to_string()).collect();
    let r = lint(&obj, &[], &LintOptions { disabled: all });
    assert_eq!((r.findings.len(), r.passed), (0, 0));
}

#[test]
fn unknown_ids_are_named() {
    let ids = [
        "image-latest-tag".to_string(),
        "pod-probes".to_string(),
        "nope".to_string(),
    ];
    assert_eq!(unknown_ids(&ids), vec!["nope".to_string()]);
}

#[test]
fn image_tags() {
    for (image, want) in [
        ("nginx", ImageTag::None),
        ("nginx:", ImageTag::None),
        ("nginx:latest", ImageTag::Latest),
        ("nginx:1.27", ImageTag::Tag("1.27")),
        ("localhost:5000/nginx", ImageTag::None),
        ("localhost:5000/nginx:v1", ImageTag::Tag("v1")),
        ("nginx@sha256:abc", ImageTag::Digest),
    ] {
        assert_eq!(image_tag(image), want, "{image}");
    }
}
