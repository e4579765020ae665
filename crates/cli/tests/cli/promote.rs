//! `mooring promote` end to end, as a CI job runs it: a GitOps repository served over
//! smart HTTP with basic authentication (push enabled), an app-of-apps root Application
//! registered by `mooring up`, the repository Secret in `argocd`, and the promotion
//! followed until the app is Synced and Healthy at the new commit and the Deployment runs
//! the promoted image.

use crate::control_plane::{app_until, synced_healthy, Up};
use crate::{kubectl, kubectl_ok, mooring};
use mooring_testkit::GitHttpServer;
use serde_json::Value;
use std::process::Command;

use mooring_testkit::git;

const OVERLAY: &str = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n# development overlay of the model server\nresources:\n- ../../base\nimages:\n# bumped by CI (mooring promote)\n- name: registry.local/ml/model-server\n  newTag: \"1.2.3\"\n";

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: model-server\n  labels: {app: model-server}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: model-server}\n  template:\n    metadata:\n      labels: {app: model-server}\n    spec:\n      containers:\n      - name: server\n        image: registry.local/ml/model-server:1.0.0\n";

fn app_manifest(url: &str) -> String {
    format!(
        "# the development environment's model server\napiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: model-serving-development\n  namespace: argocd\n  labels:\n    environment: development\nspec:\n  project: default\n  source:\n    repoURL: {url}\n    targetRevision: main # promoted by CI\n    path: serving/overlays/development\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: ml-serving-dev\n  syncPolicy:\n    automated: {{prune: true, selfHeal: true}}\n    syncOptions: [CreateNamespace=true]\n"
    )
}

fn image_in_cluster(kc: &str) -> String {
    let o = kubectl(
        kc,
        &[
            "get",
            "deployment",
            "model-server",
            "-n",
            "ml-serving-dev",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ],
        None,
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn out(o: &std::process::Output) -> (i32, String, String) {
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn promote_image_and_revision_commit_push_and_wait_for_the_new_commit() {
    let tmp = tempfile::tempdir().expect("tmp");
    let served = tmp.path().join("srv");
    let bare = served.join("ml/gitops.git");
    std::fs::create_dir_all(&bare).expect("mkdir");
    git(&bare, &["init", "-q", "--bare"]);
    git(&bare, &["config", "http.receivepack", "true"]);
    let server = GitHttpServer::start(&served, Some(("ci", "s3cret"))).expect("git server");
    let url = server.url("ml/gitops.git");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    git(&work, &["init", "-q"]);
    git(
        &work,
        &[
            "remote",
            "add",
            "origin",
            &url.replacen("http://", "http://ci:s3cret@", 1),
        ],
    );
    for (path, content) in [
        ("apps/model-serving-development.yaml", app_manifest(&url)),
        (
            "serving/base/kustomization.yaml",
            "resources:\n- deployment.yaml\n".into(),
        ),
        ("serving/base/deployment.yaml", DEPLOYMENT.into()),
        (
            "serving/overlays/development/kustomization.yaml",
            OVERLAY.into(),
        ),
    ] {
        let p = work.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "platform"]);
    git(&work, &["tag", "v1.0.0"]);
    git(&work, &["push", "-q", "origin", "HEAD:main", "v1.0.0"]);

    // The control repository `mooring up` registers: the root of the app-of-apps.
    let control = tmp.path().join("control");
    std::fs::create_dir_all(&control).expect("mkdir");
    std::fs::write(
        control.join("root.yaml"),
        format!("apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: root, namespace: argocd}}\nspec:\n  project: default\n  source: {{repoURL: \"{url}\", targetRevision: main, path: apps}}\n  destination: {{server: \"https://kubernetes.default.svc\", namespace: argocd}}\n  syncPolicy: {{automated: {{prune: true, selfHeal: true}}}}\n"),
    )
    .expect("write");
    // A Git work tree with its own origin: `mooring up` serves only that URL from it, and
    // fetches the GitOps repository's URL as written.
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
    git(&control, &["commit", "-q", "-m", "root"]);
    let up = Up::start(&control, &tmp.path().join("data"), &[]);
    let kc = up.kc.clone();
    kubectl_ok(
        &kc,
        &["apply", "-f", "-"],
        Some(&format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: repo-gitops\n  namespace: argocd\n  labels: {{argocd.argoproj.io/secret-type: repository}}\nstringData: {{type: git, url: \"{url}\", username: ci, password: s3cret}}\n")),
    );
    app_until(
        &kc,
        "model-serving-development",
        180,
        "Synced and Healthy",
        synced_healthy,
    );
    assert_eq!(
        image_in_cluster(&kc),
        "registry.local/ml/model-server:1.2.3"
    );
    let head = || git(&bare, &["rev-parse", "main"]);
    let before = head();

    // Without --push: the diff and the message, nothing written.
    let image = "registry.local/ml/model-server:1.2.4";
    let (code, o, e) = out(&mooring(
        &kc,
        &[
            "promote",
            "model-serving",
            "--env",
            "development",
            "--image",
            image,
        ],
    ));
    assert_eq!(code, 0, "{o}{e}");
    assert!(
        o.contains("-  newTag: \"1.2.3\"\n+  newTag: \"1.2.4\"\n") && o.contains("Dry run"),
        "{o}"
    );
    assert!(
        o.contains("promote model-serving-development: image registry.local/ml/model-server registry.local/ml/model-server:1.2.3 → registry.local/ml/model-server:1.2.4"),
        "{o}"
    );
    assert_eq!(head(), before, "a dry run pushes nothing");

    // --push --wait: committed on main through the Secret's credentials, deployed.
    let (code, o, e) = out(&mooring(
        &kc,
        &[
            "promote",
            "model-serving",
            "--env",
            "development",
            "--image",
            image,
            "--push",
            "--wait",
            "--timeout",
            "180",
            "--initiator",
            "ci-bot",
            "-o",
            "json",
        ],
    ));
    assert_eq!(code, 0, "{o}{e}");
    let v: Value = serde_json::from_str(&o).expect("json");
    assert_eq!(v["pushed"], true, "{v}");
    assert_eq!(v["file"], "serving/overlays/development/kustomization.yaml");
    let pushed = head();
    assert_eq!(v["commit"], pushed.as_str());
    assert!(
        v["waited"]
            .as_str()
            .unwrap_or("")
            .contains("Synced and Healthy"),
        "{v}"
    );
    assert!(
        e.contains("model-serving-development: targetRevision main"),
        "progress: {e}"
    );
    assert_eq!(
        git(
            &bare,
            &[
                "show",
                "main:serving/overlays/development/kustomization.yaml"
            ]
        ),
        OVERLAY.replace("1.2.3", "1.2.4").trim_end(),
        "only the tag changed; comments and order kept"
    );
    let msg = git(&bare, &["log", "-1", "--format=%B", "main"]);
    assert!(
        msg.starts_with("promote model-serving-development: image "),
        "{msg}"
    );
    assert!(msg.contains("Promoted-by: ci-bot"), "{msg}");
    assert_eq!(
        git(&bare, &["rev-parse", "main~1"]),
        before,
        "a plain fast-forward"
    );
    assert_eq!(image_in_cluster(&kc), image);

    // Again: already there, nothing committed.
    let (code, o, e) = out(&mooring(
        &kc,
        &[
            "promote",
            "model-serving-development",
            "--image",
            image,
            "--push",
        ],
    ));
    assert_eq!(code, 0, "{o}{e}");
    assert!(o.contains("already at"), "{o}");
    assert_eq!(head(), pushed);

    // --revision: the parent's manifest (found by tracking id under root's path) pins
    // v1.0.0; the app deploys that tag's image again.
    let (code, o, e) = out(&mooring(
        &kc,
        &[
            "promote",
            "model-serving-development",
            "--revision",
            "v1.0.0",
            "--push",
            "--wait",
            "--timeout",
            "180",
        ],
    ));
    assert_eq!(code, 0, "{o}{e}");
    assert!(
        o.contains("-    targetRevision: main # promoted by CI\n+    targetRevision: \"v1.0.0\" # promoted by CI\n"),
        "{o}"
    );
    assert!(o.contains("Synced and Healthy"), "{o}");
    let manifest = git(&bare, &["show", "main:apps/model-serving-development.yaml"]);
    assert_eq!(
        manifest,
        app_manifest(&url)
            .replace("targetRevision: main", "targetRevision: \"v1.0.0\"")
            .trim_end()
    );
    assert!(git(&bare, &["log", "-1", "--format=%s", "main"])
        .starts_with("promote model-serving-development: targetRevision main → v1.0.0"));
    assert_eq!(
        image_in_cluster(&kc),
        "registry.local/ml/model-server:1.2.3"
    );
    drop(up);
}

#[test]
fn promote_refuses_hostile_arguments_before_touching_anything() {
    let run = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_mooring"))
            .args(args)
            .args(["--kubeconfig", "/nonexistent/kubeconfig"])
            .output()
            .expect("mooring runs");
        out(&o)
    };
    // A YAML injection through --image.
    let (code, _, e) = run(&[
        "promote",
        "model",
        "--image",
        "model-server=ml/model-server:1.2.4\n  newName: evil.example/x",
    ]);
    assert_eq!(code, 2, "{e}");
    assert!(e.contains("--image") && e.contains("not allowed"), "{e}");
    let (code, _, e) = run(&["promote", "model", "--image", "model-server=-rf:1"]);
    assert_eq!(code, 2, "{e}");
    assert!(e.contains("not an image name"), "{e}");
    // Options smuggled in as values.
    let (code, _, e) = run(&["promote", "model", "--revision=--force"]);
    assert_eq!(code, 2, "{e}");
    assert!(e.contains("must not start with '-'"), "{e}");
    let (code, _, e) = run(&["promote", "model", "--revision", "main", "--branch=-f"]);
    assert_eq!(code, 2, "{e}");
    assert!(e.contains("-f"), "{e}");
    let o = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .args(["promote", "--revision", "main", "--", "-evil"])
        .output()
        .expect("mooring runs");
    let (code, _, e) = out(&o);
    assert_eq!(code, 2, "{e}");
    assert!(e.contains("must not start with '-'"), "{e}");
    // Usage.
    let (code, _, e) = run(&["promote", "model", "--revision", "main", "--wait"]);
    assert_eq!(code, 2, "{e}");
    assert!(e.contains("--push"), "{e}");
    let (code, _, _) = run(&["promote", "model"]);
    assert_eq!(code, 2);
}
