//! Argo CD's parameter files (`.argocd-source.yaml`, `.argocd-source-<app>.yaml`) merged
//! over the source before rendering, with the real kustomize (`kustomize` or `kubectl
//! kustomize` on PATH).

use mooring_core::app::{ApplicationSource, KustomizeSource};
use mooring_render::{render, with_parameter_files, RenderError, RenderOptions};
use serde_json::{json, Value};
use std::path::Path;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

fn source(path: &str) -> ApplicationSource {
    ApplicationSource {
        repo_url: "https://git.example/ml-platform.git".into(),
        path: Some(path.into()),
        target_revision: Some("main".into()),
        ..Default::default()
    }
}

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: guestbook-ui
spec:
  selector:
    matchLabels: {app: guestbook-ui}
  template:
    metadata:
      labels: {app: guestbook-ui}
    spec:
      containers:
      - name: guestbook-ui
        image: gcr.io/heptio-images/ks-guestbook-demo:0.1
";

/// A kustomize app as Argo CD's example repository has it.
fn kustomize_app() -> tempfile::TempDir {
    let t = tempfile::tempdir().expect("tempdir");
    let r = t.path();
    write(
        r,
        "kustomize-guestbook/guestbook-ui-deployment.yaml",
        DEPLOYMENT,
    );
    write(
        r,
        "kustomize-guestbook/kustomization.yaml",
        "resources:\n- guestbook-ui-deployment.yaml\n",
    );
    t
}

fn image_of(objs: &[Value]) -> String {
    objs.iter()
        .find(|o| o["kind"] == "Deployment")
        .and_then(|d| d["spec"]["template"]["spec"]["containers"][0]["image"].as_str())
        .expect("deployment image")
        .to_string()
}

fn merged_render(root: &Path, s: &ApplicationSource, app: &str) -> Result<Vec<Value>, RenderError> {
    let opts = RenderOptions::default();
    let merged = with_parameter_files(root, s, app, &opts)?;
    render(root, &merged, &opts)
}

#[test]
fn app_parameter_file_sets_the_kustomize_image() {
    let t = kustomize_app();
    // What Image Updater's Git write-back commits.
    write(
        t.path(),
        "kustomize-guestbook/.argocd-source-guestbook.yaml",
        "kustomize:\n  images:\n  - gcr.io/heptio-images/ks-guestbook-demo:0.2\n",
    );
    let objs =
        merged_render(t.path(), &source("kustomize-guestbook"), "guestbook").expect("renders");
    assert_eq!(
        image_of(&objs),
        "gcr.io/heptio-images/ks-guestbook-demo:0.2"
    );
    // Another application rendering the same path does not read guestbook's file.
    let objs = merged_render(t.path(), &source("kustomize-guestbook"), "other").expect("renders");
    assert_eq!(
        image_of(&objs),
        "gcr.io/heptio-images/ks-guestbook-demo:0.1"
    );
    // Without an application name only the shared file is read.
    let objs = merged_render(t.path(), &source("kustomize-guestbook"), "").expect("renders");
    assert_eq!(
        image_of(&objs),
        "gcr.io/heptio-images/ks-guestbook-demo:0.1"
    );
}

#[test]
fn shared_file_then_app_file_as_merge_patches() {
    let t = kustomize_app();
    write(
        t.path(),
        "kustomize-guestbook/.argocd-source.yaml",
        "kustomize:\n  namePrefix: shared-\n  images:\n  - gcr.io/heptio-images/ks-guestbook-demo:0.3\n",
    );
    write(
        t.path(),
        "kustomize-guestbook/.argocd-source-guestbook.yaml",
        "kustomize:\n  images:\n  - gcr.io/heptio-images/ks-guestbook-demo:0.4\n",
    );
    let mut s = source("kustomize-guestbook");
    s.kustomize = Some(KustomizeSource {
        name_suffix: Some("-x".into()),
        ..Default::default()
    });
    let merged =
        with_parameter_files(t.path(), &s, "guestbook", &RenderOptions::default()).expect("merges");
    let k = merged.kustomize.clone().expect("kustomize");
    assert_eq!(k.name_prefix.as_deref(), Some("shared-"));
    assert_eq!(k.name_suffix.as_deref(), Some("-x"));
    assert_eq!(
        k.images,
        vec!["gcr.io/heptio-images/ks-guestbook-demo:0.4".to_string()]
    );
    assert_eq!(merged.repo_url, s.repo_url);
    assert_eq!(merged.target_revision.as_deref(), Some("main"));
    let objs = render(t.path(), &merged, &RenderOptions::default()).expect("renders");
    assert_eq!(
        image_of(&objs),
        "gcr.io/heptio-images/ks-guestbook-demo:0.4"
    );
    let d = objs
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("deployment");
    assert_eq!(d["metadata"]["name"], "shared-guestbook-ui-x");
}

#[test]
fn no_files_leave_the_source_unchanged_and_helm_parameters_merge() {
    let t = kustomize_app();
    let s = source("kustomize-guestbook");
    let same =
        with_parameter_files(t.path(), &s, "guestbook", &RenderOptions::default()).expect("ok");
    assert_eq!(same, s);
    write(
        t.path(),
        "chart/.argocd-source-dex.yaml",
        "helm:\n  parameters:\n  - name: dex.image.tag\n    value: v2.41.1\n    forcestring: true\n",
    );
    let mut s = source("chart");
    s.helm =
        Some(json!({"releaseName": "dex", "parameters": [{"name": "replicas", "value": "2"}]}));
    let merged = with_parameter_files(t.path(), &s, "dex", &RenderOptions::default()).expect("ok");
    let helm = merged.helm.expect("helm");
    assert_eq!(helm["releaseName"], "dex");
    // A merge patch replaces lists whole, as in Argo CD.
    assert_eq!(
        helm["parameters"],
        json!([{"name": "dex.image.tag", "value": "v2.41.1", "forcestring": true}])
    );
}

#[test]
fn hostile_parameter_files() {
    let opts = RenderOptions::default();
    let check = |file: &str, text: &str, want: &str| {
        let t = kustomize_app();
        write(t.path(), &format!("kustomize-guestbook/{file}"), text);
        let e = with_parameter_files(t.path(), &source("kustomize-guestbook"), "guestbook", &opts)
            .expect_err(text);
        assert!(e.to_string().contains(want), "{text}: {e}");
        assert!(e.to_string().contains(file), "{e}");
    };
    check(
        ".argocd-source-guestbook.yaml",
        "repoURL: https://evil.example/x.git\n",
        "\"repoURL\"",
    );
    check(".argocd-source.yaml", "path: ../../etc\n", "\"path\"");
    check(
        ".argocd-source-guestbook.yaml",
        "- a\n- b\n",
        "not a mapping",
    );
    check(
        ".argocd-source-guestbook.yaml",
        "kustomize:\n  images: 3\n",
        "parameter file",
    );
    let mut bomb = String::from("kustomize:\n  a: &a [x, x, x, x, x, x, x, x, x, x]\n");
    let mut prev = 'a';
    for c in 'b'..='p' {
        bomb.push_str(&format!(
            "  {c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
        ));
        prev = c;
    }
    check(
        ".argocd-source-guestbook.yaml",
        &bomb,
        ".argocd-source-guestbook.yaml",
    );

    // Over the file-size limit.
    let t = kustomize_app();
    write(
        t.path(),
        "kustomize-guestbook/.argocd-source-guestbook.yaml",
        &format!("kustomize:\n  namePrefix: \"{}\"\n", "a".repeat(2048)),
    );
    let small = RenderOptions {
        max_file_bytes: 1024,
        ..Default::default()
    };
    let e = with_parameter_files(
        t.path(),
        &source("kustomize-guestbook"),
        "guestbook",
        &small,
    )
    .expect_err("too large");
    assert!(matches!(e, RenderError::FileTooLarge { .. }), "{e}");

    // A symbolic link out of the repository.
    let t = kustomize_app();
    let outside = tempfile::tempdir().expect("tempdir");
    write(
        outside.path(),
        "secret.yaml",
        "kustomize:\n  namePrefix: leaked-\n",
    );
    std::os::unix::fs::symlink(
        outside.path().join("secret.yaml"),
        t.path()
            .join("kustomize-guestbook/.argocd-source-guestbook.yaml"),
    )
    .expect("symlink");
    let e = with_parameter_files(t.path(), &source("kustomize-guestbook"), "guestbook", &opts)
        .expect_err("outside");
    assert!(matches!(e, RenderError::OutsideRoot { .. }), "{e}");

    // An application name that would reach another file.
    let t = kustomize_app();
    for bad in ["../x", "a/b", ".hidden"] {
        let e = with_parameter_files(t.path(), &source("kustomize-guestbook"), bad, &opts)
            .expect_err(bad);
        assert!(e.to_string().contains("application name"), "{e}");
    }
    // A directory with the file's name is skipped, as in Argo CD.
    std::fs::create_dir_all(t.path().join("kustomize-guestbook/.argocd-source.yaml"))
        .expect("mkdir");
    assert!(
        with_parameter_files(t.path(), &source("kustomize-guestbook"), "guestbook", &opts).is_ok()
    );
}
