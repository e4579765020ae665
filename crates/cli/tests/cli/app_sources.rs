//! `mooring app manifests|sync|get|list|history` on a multi-source Application
//! (`spec.sources`) against an embedded cluster run by the binary: every source is
//! rendered from its own repository, `--revisions`/`--source-positions` pin one source, a
//! plain `--revision` is refused, and one revision per source is shown.

use crate::{apply_eventually, kubectl_ok, mooring};
use std::path::Path;

const APPLICATION_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: applications.argoproj.io}
spec:
  group: argoproj.io
  scope: Namespaced
  names: {kind: Application, plural: applications, listKind: ApplicationList, singular: application}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#;

use super::git;

/// A repository with one ConfigMap `name` holding `value` under `path`; its commit.
fn commit_cm(dir: &Path, path: &str, name: &str, value: &str) -> String {
    let d = dir.join(path);
    std::fs::create_dir_all(&d).expect("mkdir");
    std::fs::write(
        d.join("cm.yaml"),
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{value: \"{value}\"}}\n"),
    )
    .expect("write");
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", value]);
    git(dir, &["rev-parse", "HEAD"])
}

fn text(o: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn multi_source_app_commands() {
    let a = tempfile::tempdir().expect("tmp");
    let b = tempfile::tempdir().expect("tmp");
    git(a.path(), &["init", "-q", "-b", "main"]);
    git(b.path(), &["init", "-q", "-b", "main"]);
    commit_cm(a.path(), "apps/a", "from-a", "a1");
    let b1 = commit_cm(b.path(), "apps/b", "from-b", "b1");
    commit_cm(b.path(), "apps/b", "from-b", "b2");
    let (url_a, url_b) = (
        format!("file://{}", a.path().display()),
        format!("file://{}", b.path().display()),
    );

    let cluster = crate::BinCluster::start();
    let kc = cluster.kc.clone();
    kubectl_ok(&kc, &["apply", "-f", "-"], Some(APPLICATION_CRD));
    apply_eventually(
        &kc,
        &format!(
            r#"
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: multi, namespace: argocd}}
spec:
  project: default
  sources:
  - {{repoURL: "{url_a}", targetRevision: main, path: apps/a}}
  - {{repoURL: "{url_b}", targetRevision: main, path: apps/b}}
  - {{repoURL: "{url_b}", targetRevision: main, ref: values}}
  destination: {{server: "https://kubernetes.default.svc", namespace: ml}}
"#
        ),
    );

    // Every source is rendered, each from its own repository.
    let (out, err) = text(&mooring(&kc, &["app", "manifests", "multi"]));
    assert!(
        out.contains("name: from-a") && out.contains("name: from-b"),
        "{out}{err}"
    );
    assert!(out.contains("value: b2"), "{out}");
    // Source 2 pinned to an older commit, as `argocd app manifests --revisions`.
    let o = mooring(
        &kc,
        &[
            "app",
            "manifests",
            "multi",
            "--revisions",
            &b1,
            "--source-positions",
            "2",
        ],
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        out.contains("value: b1") && out.contains("name: from-a"),
        "{out}"
    );

    // A single --revision is ambiguous for spec.sources: refused before anything is
    // requested; a position out of range likewise.
    let o = mooring(&kc, &["app", "sync", "multi", "--revision", "main"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--source-positions") && err.contains("3 sources"),
        "{err}"
    );
    let o = mooring(
        &kc,
        &[
            "app",
            "sync",
            "multi",
            "--revisions",
            "x",
            "--source-positions",
            "4",
        ],
    );
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("out of range"), "{err}");
    let op = kubectl_ok(
        &kc,
        &[
            "get",
            "applications.argoproj.io",
            "multi",
            "-n",
            "argocd",
            "-o",
            "jsonpath={.operation}",
        ],
        None,
    );
    assert!(op.trim().is_empty(), "no operation was requested: {op}");

    // One revision per source in get, list and history.
    let (ra, rb) = ("a".repeat(40), "b".repeat(40));
    kubectl_ok(
        &kc,
        &[
            "patch",
            "applications.argoproj.io",
            "multi",
            "-n",
            "argocd",
            "--type",
            "merge",
            "-p",
            &format!(
                r#"{{"status": {{"sync": {{"status": "Synced", "revisions": ["{ra}", "{rb}", "{rb}"]}},
                   "history": [{{"id": 0, "revisions": ["{ra}", "{rb}", "{rb}"], "deployedAt": "2026-01-01T00:00:00Z"}}]}}}}"#
            ),
        ],
        None,
    );
    let (out, err) = text(&mooring(&kc, &["app", "get", "multi"]));
    assert!(out.contains("Sources:"), "{out}{err}");
    assert!(
        out.contains(&format!("1. {url_a} @ main  path apps/a  (aaaaaaa)")),
        "{out}"
    );
    assert!(out.contains("ref values  (bbbbbbb)"), "{out}");
    assert!(out.contains("Synced (aaaaaaa,bbbbbbb,bbbbbbb)"), "{out}");
    let (out, _) = text(&mooring(&kc, &["app", "list"]));
    assert!(out.contains("aaaaaaa,bbbbbbb,bbbbbbb"), "{out}");
    let (out, _) = text(&mooring(&kc, &["app", "history", "multi"]));
    assert!(out.contains(&format!("{ra},{rb},{rb}")), "{out}");
}
