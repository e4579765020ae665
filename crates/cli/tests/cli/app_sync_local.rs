//! `mooring app sync APP --local DIR`, as Argo CD's: the CLI renders DIR and sends the
//! manifests in the sync operation (`operation.sync.manifests`); the controller syncs
//! them instead of Git's render (same operation, history and status), and the app then
//! shows OutOfSync with Git. Refused while automated sync is on, by the CLI and by the
//! controller for an operation written directly.

use crate::control_plane::{app_until, Up};
use crate::{kubectl, kubectl_ok, mooring};
use serde_json::Value;
use std::process::Command;

use mooring_testkit::git;

fn cm(value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: model}}\ndata: {{model: \"{value}\"}}\n")
}

fn model(kc: &str, ns: &str) -> String {
    let o = kubectl(
        kc,
        &[
            "get",
            "configmap",
            "model",
            "-n",
            ns,
            "-o",
            "jsonpath={.data.model}",
        ],
        None,
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn app_sync_local_syncs_local_manifests_and_is_refused_with_automated_sync() {
    let tmp = tempfile::tempdir().expect("tmp");
    let apps = tmp.path().join("apps.git");
    std::fs::create_dir_all(apps.join("serving")).expect("mkdir");
    git(&apps, &["init", "-q"]);
    std::fs::write(apps.join("serving/model.yaml"), cm("git")).expect("write");
    git(&apps, &["add", "-A"]);
    git(&apps, &["commit", "-q", "-m", "model from git"]);
    let url = format!("file://{}", apps.display());

    let control = tmp.path().join("control");
    std::fs::create_dir_all(&control).expect("mkdir");
    let app = |name: &str, ns: &str, automated: bool| {
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: {name}, namespace: argocd}}\nspec:\n  project: default\n  source: {{repoURL: \"{url}\", targetRevision: main, path: serving}}\n  destination: {{server: \"https://kubernetes.default.svc\", namespace: {ns}}}\n  syncPolicy:\n{}    syncOptions: [CreateNamespace=true]\n---\n",
            if automated { "    automated: {prune: true, selfHeal: true}\n" } else { "" }
        )
    };
    std::fs::write(
        control.join("apps.yaml"),
        app("serving", "ml-manual", false) + &app("serving-auto", "ml-auto", true),
    )
    .expect("write");
    git(&control, &["init", "-q"]);
    git(
        &control,
        &[
            "remote",
            "add",
            "origin",
            "https://git.example.com/platform/control.git",
        ],
    );
    git(&control, &["add", "-A"]);
    git(&control, &["commit", "-q", "-m", "apps"]);
    let up = Up::start(&control, &tmp.path().join("data"), &[]);
    let kc = up.kc.clone();
    app_until(&kc, "serving-auto", 120, "Synced", |v| {
        v["status"]["sync"]["status"] == "Synced"
    });
    let o = mooring(&kc, &["app", "sync", "serving", "--timeout", "120"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(model(&kc, "ml-manual"), "git");

    // A local directory (a kustomization) synced instead of Git.
    let local = tmp.path().join("local");
    std::fs::create_dir_all(&local).expect("mkdir");
    std::fs::write(local.join("model.yaml"), cm("local")).expect("write");
    std::fs::write(
        local.join("kustomization.yaml"),
        "resources:\n- model.yaml\n",
    )
    .expect("write");
    let o = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .args(["app", "sync", "serving", "--local"])
        .arg(&local)
        .args(["--timeout", "120", "--kubeconfig", &kc])
        .output()
        .expect("mooring runs");
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("Succeeded"), "{out}");
    assert_eq!(model(&kc, "ml-manual"), "local");
    let a = app_until(
        &kc,
        "serving",
        60,
        "OutOfSync with Git after a local sync",
        |v| v["status"]["sync"]["status"] == "OutOfSync",
    );
    let history = a["status"]["history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(history.len(), 2, "{history:?}");
    let cmv: Value = serde_json::from_str(&kubectl_ok(
        &kc,
        &["get", "configmap", "model", "-n", "ml-manual", "-o", "json"],
        None,
    ))
    .expect("json");
    assert!(
        cmv["metadata"]["annotations"]["argocd.argoproj.io/tracking-id"]
            .as_str()
            .unwrap_or("")
            .starts_with("serving:"),
        "tracked as the app's: {cmv}"
    );

    // Automated sync on: refused by the CLI, nothing requested.
    let o = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .args(["app", "sync", "serving-auto", "--local"])
        .arg(&local)
        .args(["--kubeconfig", &kc])
        .output()
        .expect("mooring runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("Cannot use local sync when Automatic Sync Policy is enabled"),
        "{err}"
    );
    assert_eq!(model(&kc, "ml-auto"), "git");
    // …and by the controller, for an operation written directly.
    kubectl_ok(
        &kc,
        &[
            "patch",
            "applications.argoproj.io",
            "serving-auto",
            "-n",
            "argocd",
            "--type",
            "merge",
            "-p",
            &serde_json::json!({"operation": {"sync": {"manifests": [cm("sneaky")]}}}).to_string(),
        ],
        None,
    );
    let a = app_until(&kc, "serving-auto", 60, "the local sync refused", |v| {
        v["status"]["operationState"]["phase"] == "Failed"
    });
    assert!(
        a["status"]["operationState"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("Cannot use local sync"),
        "{a}"
    );
    assert_eq!(model(&kc, "ml-auto"), "git");
}
