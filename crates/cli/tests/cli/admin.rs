//! `mooring admin export` / `import`: a control plane backed up from one `mooring up` and
//! restored into a fresh one reaches the same reconciled state; `--prune` deletes only
//! backed-up kinds missing from the backup; hostile backups are refused before anything
//! is written.

use crate::control_plane::{app_until, synced_healthy, Up};
use crate::{kubectl, kubectl_ok, mooring};

use super::git;

fn out(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn admin_ok(kc: &str, args: &[&str]) -> String {
    let mut all = vec!["admin"];
    all.extend_from_slice(args);
    let o = mooring(kc, &all);
    assert_eq!(o.status.code(), Some(0), "admin {args:?}: {}", out(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn exists(kc: &str, what: &str, name: &str) -> bool {
    kubectl(kc, &["get", what, name, "-n", "argocd", "-o", "name"], None)
        .status
        .success()
}

#[test]
fn admin_export_import_round_trip_prune_and_hostile_backups() {
    let tmp = tempfile::tempdir().expect("tmp");
    // The source repository, over file://.
    let source = tmp.path().join("models.git");
    std::fs::create_dir_all(source.join("serving")).expect("mkdir");
    git(&source, &["init", "-q", "-b", "main"]);
    std::fs::write(
        source.join("serving/model.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: model}\ndata: {model: v1}\n",
    )
    .expect("write");
    git(&source, &["add", "-A"]);
    git(&source, &["commit", "-q", "-m", "model v1"]);
    let url = format!("file://{}", source.display());

    // The first control plane: a project and an app in its repository.
    let first = tmp.path().join("first");
    std::fs::create_dir_all(&first).expect("mkdir");
    std::fs::write(
        first.join("platform.yaml"),
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {{name: ml, namespace: argocd}}\nspec:\n  sourceRepos: ['*']\n  destinations: [{{server: '*', namespace: '*'}}]\n---\napiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: model, namespace: argocd, finalizers: [resources-finalizer.argocd.argoproj.io]}}\nspec:\n  project: ml\n  source: {{repoURL: \"{url}\", targetRevision: main, path: serving}}\n  destination: {{server: \"https://kubernetes.default.svc\", namespace: models}}\n  syncPolicy: {{automated: {{prune: true, selfHeal: true}}, syncOptions: [CreateNamespace=true]}}\n"
        ),
    )
    .expect("write");
    let up = Up::start(&first, &tmp.path().join("data1"), &[]);
    let kc = up.kc.clone();
    app_until(&kc, "model", 120, "Synced and Healthy", synced_healthy);
    kubectl_ok(
        &kc,
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: repo-models, namespace: argocd, labels: {{argocd.argoproj.io/secret-type: repository}}}}\nstringData: {{url: \"{url}\"}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: someone-elses, namespace: argocd}}\nstringData: {{password: hunter2}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: mooring-rbac-cm, namespace: argocd}}\ndata: {{policy.csv: 'g, ml-team, role:admin'}}\n---\napiVersion: mooring.dev/v1alpha1\nkind: RollbackPolicy\nmetadata: {{name: model-guard, namespace: argocd}}\nspec:\n  applications: {{names: [model]}}\n  interval: 15s\n  rules: [{{name: error_rate, query: 'vector(0)', threshold: {{operator: '>', value: 0.05}}, action: notify}}]\n---\napiVersion: mooring.dev/v1alpha1\nkind: DisasterRecoveryPlan\nmetadata: {{name: models-dr, namespace: argocd}}\nspec:\n  primary: {{cluster: in-cluster}}\n  standby: {{cluster: standby}}\n  applications: {{pairs: [{{primary: model, standby: model-dr}}]}}\n  detection: {{automatic: false}}\n"
        )),
    );
    let backup = tmp.path().join("backup.yaml");
    admin_ok(&kc, &["export", "-o", backup.to_str().expect("path")]);
    drop(up);

    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&backup)
            .expect("backup")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&backup).expect("backup");
    for absent in [
        "uid:",
        "resourceVersion",
        "managedFields",
        "creationTimestamp",
        "someone-elses",
    ] {
        assert!(!text.contains(absent), "{absent} in the backup:\n{text}");
    }
    for present in [
        "kind: AppProject",
        "name: model",
        "repo-models",
        "g, ml-team, role:admin",
    ] {
        assert!(
            text.contains(present),
            "{present} not in the backup:\n{text}"
        );
    }

    // A fresh control plane with an empty repository: the import restores it.
    let second = tmp.path().join("second");
    std::fs::create_dir_all(&second).expect("mkdir");
    let up = Up::start(&second, &tmp.path().join("data2"), &[]);
    let kc = up.kc.clone();
    assert!(!exists(&kc, "application", "model"));
    let dry = admin_ok(
        &kc,
        &["import", backup.to_str().expect("path"), "--dry-run"],
    );
    assert!(
        dry.contains("argoproj.io/Application model in namespace argocd created (dry run)"),
        "{dry}"
    );
    assert!(!exists(&kc, "application", "model"), "--dry-run wrote");
    let done = admin_ok(&kc, &["import", backup.to_str().expect("path")]);
    assert!(
        done.contains("Secret repo-models in namespace argocd created"),
        "{done}"
    );
    app_until(
        &kc,
        "model",
        120,
        "Synced and Healthy after the restore",
        synced_healthy,
    );
    assert!(exists(&kc, "appproject", "ml"));
    assert!(!exists(&kc, "secret", "someone-elses"));
    let guarded = kubectl_ok(
        &kc,
        &[
            "get",
            "rollbackpolicy",
            "model-guard",
            "-n",
            "argocd",
            "-o",
            "jsonpath={.spec.applications.names[0]}",
        ],
        None,
    );
    assert_eq!(guarded, "model");
    assert!(exists(&kc, "disasterrecoveryplan", "models-dr"));
    let policy = kubectl_ok(
        &kc,
        &[
            "get",
            "configmap",
            "mooring-rbac-cm",
            "-n",
            "argocd",
            "-o",
            "jsonpath={.data.policy\\.csv}",
        ],
        None,
    );
    assert_eq!(policy, "g, ml-team, role:admin");
    let model = kubectl_ok(
        &kc,
        &[
            "get",
            "configmap",
            "model",
            "-n",
            "models",
            "-o",
            "jsonpath={.data.model}",
        ],
        None,
    );
    assert_eq!(model, "v1");
    // Importing again changes nothing.
    let again = admin_ok(&kc, &["import", backup.to_str().expect("path")]);
    assert!(again.contains(" 0 created, 0 updated"), "{again}");

    // A changed spec is put back; objects the backup lacks are listed, and pruned only
    // with --prune (Applications without their resources' finalizer); other Secrets stay.
    kubectl_ok(
        &kc,
        &[
            "-n",
            "argocd",
            "patch",
            "appproject",
            "ml",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"description":"changed"}}"#,
        ],
        None,
    );
    kubectl_ok(
        &kc,
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: stray, namespace: argocd, finalizers: [resources-finalizer.argocd.argoproj.io]}}\nspec:\n  project: ml\n  source: {{repoURL: \"{url}\", targetRevision: main, path: serving}}\n  destination: {{server: \"https://kubernetes.default.svc\", namespace: stray}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: tls-key, namespace: argocd}}\nstringData: {{key: k}}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: argocd-notifications-cm, namespace: argocd}}\n"
        )),
    );
    let listed = admin_ok(&kc, &["import", backup.to_str().expect("path")]);
    assert!(
        listed.contains("AppProject ml in namespace argocd updated"),
        "{listed}"
    );
    assert!(
        listed.contains("Application stray in namespace argocd is not in the backup"),
        "{listed}"
    );
    assert!(exists(&kc, "application", "stray"));
    let dry = admin_ok(
        &kc,
        &[
            "import",
            backup.to_str().expect("path"),
            "--prune",
            "--dry-run",
        ],
    );
    assert!(
        dry.contains("Application stray in namespace argocd pruned (dry run)"),
        "{dry}"
    );
    assert!(exists(&kc, "application", "stray"));
    let pruned = admin_ok(&kc, &["import", backup.to_str().expect("path"), "--prune"]);
    assert!(
        pruned.contains("Application stray in namespace argocd pruned"),
        "{pruned}"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while exists(&kc, "application", "stray") {
        assert!(
            std::time::Instant::now() < deadline,
            "stray was not deleted"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(
        exists(&kc, "secret", "tls-key"),
        "a non-Mooring Secret was pruned"
    );
    assert!(exists(&kc, "application", "model"));
    assert!(!pruned.contains("tls-key"), "{pruned}");

    // Hostile backups: refused whole, with the reason, before anything is written.
    let intruder = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: intruder}\nspec: {project: ml}\n---\n";
    for (bad, says) in [
        ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: miner}\n", "not a kind a backup holds"),
        ("apiVersion: v1\nkind: Secret\nmetadata: {name: tls-key}\nstringData: {key: stolen}\n", "not one of Mooring's"),
        ("apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {name: p, namespace: kube-system}\n", "kube-system"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n", "invalid YAML"),
    ] {
        let file = tmp.path().join("hostile.yaml");
        std::fs::write(&file, format!("{intruder}{bad}")).expect("write");
        let o = mooring(&kc, &["admin", "import", file.to_str().expect("path"), "--prune"]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", out(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says) && err.contains("nothing was written"), "{bad}: {err}");
        assert!(!exists(&kc, "application", "intruder"), "{bad}: written");
        assert!(exists(&kc, "application", "model"), "{bad}: pruned");
    }
    let secret = kubectl_ok(
        &kc,
        &[
            "get",
            "secret",
            "tls-key",
            "-n",
            "argocd",
            "-o",
            "jsonpath={.data.key}",
        ],
        None,
    );
    assert_eq!(secret, "aw==", "the non-Mooring Secret was overwritten");
    let o = mooring(
        &kc,
        &[
            "admin",
            "import",
            tmp.path().join("missing.yaml").to_str().expect("path"),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    drop(up);
}
