//! `mooring deploy` end to end against an embedded cluster run by the binary, with real
//! kustomize and kubectl: a dry run writes nothing, a deploy applies the overlay as an
//! ApplySet (KEP-3659 labels and parent Secret), a second deploy prunes exactly the
//! object that no longer renders, a Gatekeeper constraint in the target cluster refuses a
//! deploy with nothing applied, and a symlink leaving the repository is refused.

use crate::{apply_eventually, kubectl, kubectl_ok};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn deploy(kc: &str, path: &Path, extra: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .arg("deploy")
        .arg(path)
        .args(["--kubeconfig", kc, "--namespace", "ml-dev"])
        .args(extra)
        .output()
        .expect("mooring runs");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }
}

fn cm(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  model: \"{value}\"\n"
    )
}

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: model-server\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: model-server}\n  template:\n    metadata:\n      labels: {app: model-server}\n    spec:\n      containers:\n      - name: server\n        image: registry.local/ml/model-server:1.2.3\n";

fn get(kc: &str, kind: &str, name: &str) -> Option<Value> {
    let o = kubectl(
        kc,
        &[
            "get",
            kind,
            name,
            "-n",
            "ml-dev",
            "-o",
            "json",
            "--show-managed-fields",
        ],
        None,
    );
    o.status
        .success()
        .then(|| serde_json::from_slice(&o.stdout).expect("json"))
}

#[test]
fn deploy_applies_an_applyset_prunes_only_its_own_and_obeys_the_policy() {
    let cluster = crate::BinCluster::start();
    let kc = cluster.kc.clone();
    let crds = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .arg("crds")
        .output()
        .expect("crds");
    apply_eventually(&kc, &String::from_utf8_lossy(&crds.stdout));

    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("platform");
    std::fs::create_dir_all(&repo).expect("mkdir");
    assert!(Command::new("git")
        .args(["init", "-q"])
        .current_dir(&repo)
        .status()
        .expect("git")
        .success());
    write(
        &repo,
        &[
            (
                "serving/base/kustomization.yaml",
                "resources:\n- deployment.yaml\n- features.yaml\n- thresholds.yaml\n",
            ),
            ("serving/base/deployment.yaml", DEPLOYMENT),
            ("serving/base/features.yaml", &cm("features", "v1")),
            ("serving/base/thresholds.yaml", &cm("thresholds", "0.9")),
            (
                "serving/overlays/dev/kustomization.yaml",
                "resources:\n- ../../base\ncommonLabels:\n  environment: development\n",
            ),
        ],
    );
    let overlay = repo.join("serving/overlays/dev");
    // Someone else's object in the namespace: never part of the applyset.
    kubectl_ok(
        &kc,
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: Namespace\nmetadata: {name: ml-dev}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: keep-me, namespace: ml-dev}\ndata: {a: b}\n"),
    );

    // --dry-run: the diff, nothing written.
    let (code, out, err) = deploy(&kc, &overlay, &["--dry-run", "--prune"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Dry run: 3 object(s) to apply, 0 to prune"),
        "{out}"
    );
    assert!(
        out.contains("registry.local/ml/model-server:1.2.3"),
        "the diff: {out}"
    );
    assert!(
        get(&kc, "configmap", "features").is_none(),
        "a dry run applied something"
    );
    assert!(get(&kc, "secret", "dev").is_none());

    // Deploy: applied with the applyset label, the parent records the set, all Healthy.
    let (code, out, err) = deploy(&kc, &overlay, &["--prune", "--wait", "--timeout", "120"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("all 3 object(s) Healthy"), "{out}");
    let parent = get(&kc, "secret", "dev").expect("the applyset parent Secret");
    let id = parent["metadata"]["labels"]["applyset.kubernetes.io/id"]
        .as_str()
        .expect("id label")
        .to_string();
    assert!(id.starts_with("applyset-") && id.ends_with("-v1"), "{id}");
    let ann = &parent["metadata"]["annotations"];
    assert_eq!(
        ann["applyset.kubernetes.io/contains-group-kinds"],
        "ConfigMap,Deployment.apps"
    );
    assert!(ann["applyset.kubernetes.io/tooling"]
        .as_str()
        .unwrap_or("")
        .starts_with("mooring/v"));
    for (kind, name) in [
        ("configmap", "features"),
        ("configmap", "thresholds"),
        ("deployment", "model-server"),
    ] {
        let o = get(&kc, kind, name).unwrap_or_else(|| panic!("{kind}/{name} applied"));
        assert_eq!(
            o["metadata"]["labels"]["applyset.kubernetes.io/part-of"],
            id.as_str()
        );
        assert_eq!(o["metadata"]["labels"]["environment"], "development");
        let managers: Vec<&str> = o["metadata"]["managedFields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["manager"].as_str())
            .collect();
        assert!(managers.contains(&"mooring-deploy"), "{managers:?}");
    }

    // thresholds no longer renders: pruned, and only it.
    write(
        &repo,
        &[(
            "serving/base/kustomization.yaml",
            "resources:\n- deployment.yaml\n- features.yaml\n",
        )],
    );
    let (code, out, err) = deploy(&kc, &overlay, &["--prune"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("pruned ConfigMap ml-dev/thresholds"), "{out}");
    assert!(get(&kc, "configmap", "thresholds").is_none(), "pruned");
    assert!(get(&kc, "configmap", "features").is_some());
    assert!(
        get(&kc, "configmap", "keep-me").is_some(),
        "not in the applyset: untouched"
    );
    assert!(get(&kc, "deployment", "model-server").is_some());

    // A Gatekeeper constraint in the target cluster (template + the constraint kind's
    // CRD, as Gatekeeper serves it): Deployments must carry a `team` label. The refused
    // deploy applies nothing, not even the allowed ConfigMap change.
    apply_eventually(
        &kc,
        r#"
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: k8srequiredlabels}
spec:
  crd: {spec: {names: {kind: K8sRequiredLabels}}}
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8srequiredlabels
      violation[{"msg": msg}] {
        provided := {label | input.review.object.metadata.labels[label]}
        required := {label | label := input.parameters.labels[_]}
        missing := required - provided
        count(missing) > 0
        msg := sprintf("you must provide labels: %v", [missing])
      }
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: k8srequiredlabels.constraints.gatekeeper.sh}
spec:
  group: constraints.gatekeeper.sh
  scope: Cluster
  names: {kind: K8sRequiredLabels, plural: k8srequiredlabels, listKind: K8sRequiredLabelsList, singular: k8srequiredlabels}
  versions:
  - name: v1beta1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#,
    );
    apply_eventually(
        &kc,
        r#"
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sRequiredLabels
metadata: {name: deployments-need-a-team}
spec:
  match:
    kinds: [{apiGroups: ["apps"], kinds: ["Deployment"]}]
  parameters: {labels: ["team"]}
"#,
    );
    write(
        &repo,
        &[
            ("serving/base/features.yaml", &cm("features", "v2")),
            (
                "serving/base/deployment.yaml",
                &DEPLOYMENT.replace("1.2.3", "1.2.4"),
            ),
        ],
    );
    let (code, out, err) = deploy(&kc, &overlay, &["--prune"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("you must provide labels") && err.contains("nothing applied"),
        "{err}"
    );
    let features = get(&kc, "configmap", "features").expect("features");
    assert_eq!(features["data"]["model"], "v1", "nothing applied");
    let d = get(&kc, "deployment", "model-server").expect("deployment");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.local/ml/model-server:1.2.3"
    );
    // With the label the same deploy goes through.
    write(
        &repo,
        &[(
            "serving/base/deployment.yaml",
            &DEPLOYMENT.replace("1.2.3", "1.2.4").replace(
                "  name: model-server\n",
                "  name: model-server\n  labels: {team: ml}\n",
            ),
        )],
    );
    let (code, out, err) = deploy(&kc, &overlay, &["--prune"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        get(&kc, "configmap", "features").expect("features")["data"]["model"],
        "v2"
    );
}

#[test]
fn deploy_refuses_hostile_input_before_applying() {
    let cluster = crate::BinCluster::start();
    let kc = cluster.kc.clone();
    let tmp = tempfile::tempdir().expect("tmp");
    // A symlink leaving the directory (a secret of the CI machine would be applied).
    let dir = tmp.path().join("app");
    write(&dir, &[("cm.yaml", &cm("ok", "v1"))]);
    let outside = tmp.path().join("outside.yaml");
    std::fs::write(&outside, cm("stolen", "secret")).expect("write");
    std::os::unix::fs::symlink(&outside, dir.join("stolen.yaml")).expect("symlink");
    let (code, out, err) = deploy(&kc, &dir, &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("stolen.yaml") && err.contains("nothing was applied"),
        "{err}"
    );
    assert!(get(&kc, "configmap", "ok").is_none());
    assert!(get(&kc, "configmap", "stolen").is_none());
    // Names that are not Kubernetes names, or look like options.
    std::fs::remove_file(dir.join("stolen.yaml")).expect("rm");
    for bad in [
        ["--name", "-rf"],
        ["--name", "Bad_Name"],
        ["--namespace", "--x"],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_mooring"))
            .arg("deploy")
            .arg(&dir)
            .args(["--kubeconfig", &kc])
            .arg(format!("{}={}", bad[0], bad[1]))
            .output()
            .expect("mooring runs");
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("not a Kubernetes name"), "{bad:?}: {err}");
    }
    assert!(get(&kc, "configmap", "ok").is_none());
    // A conftest policy of --policy DIR refuses the deploy: nothing applied.
    let policy = tmp.path().join("policy");
    write(
        &policy,
        &[(
            "labels.rego",
            "package main\n\ndeny[msg] {\n  input.kind == \"ConfigMap\"\n  not input.metadata.labels.team\n  msg := sprintf(\"ConfigMap %s needs a team label\", [input.metadata.name])\n}\n",
        )],
    );
    let (code, out, err) = deploy(&kc, &dir, &["--policy", &policy.display().to_string()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("ConfigMap ok needs a team label") && err.contains("nothing applied"),
        "{err}"
    );
    assert!(get(&kc, "configmap", "ok").is_none());
    // --cluster: a cluster registered in the management cluster (`in-cluster`: itself).
    let o = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .arg("deploy")
        .arg(&dir)
        .args([
            "--cluster",
            "in-cluster",
            "--management-kubeconfig",
            &kc,
            "-n",
            "ml-dev",
        ])
        .output()
        .expect("mooring runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        get(&kc, "configmap", "ok").expect("deployed")["data"]["model"],
        "v1"
    );
    // The same object in another applyset (another --name) is not taken over.
    let (code, out, err) = deploy(&kc, &dir, &["--name", "other-set"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("belongs to another applyset"), "{err}");
    let o = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .arg("deploy")
        .arg(&dir)
        .args(["--cluster", "gpu-east", "--management-kubeconfig", &kc])
        .output()
        .expect("mooring runs");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no cluster \"gpu-east\" is registered"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
