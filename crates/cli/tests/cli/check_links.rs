//! `mooring check` on a repository whose chart, kustomization and plain directory link to a
//! file outside the repository (issue 12, finding 8): the links are refused with a finding
//! naming each, and the outside file's content never reaches any output format.

use std::os::unix::fs::{symlink, PermissionsExt as _};
use std::process::Command;

/// Content of the file outside the repository (a Deployment, so a render that read it
/// would name it in lint findings).
const MARKER: &str = "outside-secret-marker-5e1f";

fn outside_manifest() -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {MARKER}}}
spec:
  selector: {{matchLabels: {{app: x}}}}
  template:
    metadata: {{labels: {{app: x}}}}
    spec:
      containers:
      - name: x
        image: registry.local/x:latest
        env: [{{name: TOKEN, value: {MARKER}-token}}]
"
    )
}

fn app(name: &str, path: &str) -> String {
    format!(
        r#"apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: {name}, namespace: argocd}}
spec:
  project: default
  source: {{repoURL: "https://git.example.com/platform.git", targetRevision: main, path: {path}}}
  destination: {{server: "https://kubernetes.default.svc", namespace: ml-serving}}
"#
    )
}

#[test]
fn check_never_reads_through_links_leaving_the_repository() {
    let outside = tempfile::tempdir().expect("tmp");
    let secret = outside.path().join("secret.yaml");
    std::fs::write(&secret, outside_manifest()).expect("write");

    let repo = tempfile::tempdir().expect("tmp");
    let r = repo.path();
    let write = |rel: &str, content: &str| {
        let p = r.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    };
    // A Helm chart whose template and whose `.Files.Get` file are links out.
    write("apps/chart.yaml", &app("model-chart", "charts/model"));
    write(
        "charts/model/Chart.yaml",
        "apiVersion: v2\nname: model\nversion: 0.1.0\n",
    );
    write(
        "charts/model/templates/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: model-config}\ndata: {a: b}\n",
    );
    symlink(&secret, r.join("charts/model/templates/leak.yaml")).expect("symlink");
    std::fs::create_dir_all(r.join("charts/model/files")).expect("mkdir");
    symlink(
        format!("../../../{}", "../".repeat(20)) + &secret.display().to_string(),
        r.join("charts/model/files/token"),
    )
    .expect("symlink");
    // kustomize `resources:` naming a link out.
    write(
        "apps/kustomized.yaml",
        &app("model-kustomize", "kustomize/model"),
    );
    write(
        "kustomize/model/kustomization.yaml",
        "resources: [config.yaml, leak.yaml]\n",
    );
    write(
        "kustomize/model/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: k-config}\ndata: {a: b}\n",
    );
    symlink(&secret, r.join("kustomize/model/leak.yaml")).expect("symlink");
    // A plain directory with a link out, and an app whose whole path is a link out.
    write("apps/plain.yaml", &app("model-plain", "plain/model"));
    write(
        "plain/model/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: p-config}\ndata: {a: b}\n",
    );
    symlink(&secret, r.join("plain/model/leak.yaml")).expect("symlink");
    write("apps/linked.yaml", &app("model-linked", "linked"));
    symlink(outside.path(), r.join("linked")).expect("symlink");

    // A stand-in for helm that behaves as helm does with links: it reads every file of the
    // chart's templates/ and files/ directories, following links, and prints them.
    let bin = tempfile::tempdir().expect("tmp");
    let helm = bin.path().join("helm");
    std::fs::write(
        &helm,
        "#!/bin/sh\nchart=\"$3\"\nfor f in \"$chart\"/templates/* \"$chart\"/files/*; do\n  [ -f \"$f\" ] || continue\n  printf -- '---\\n# Source: %s\\n' \"$f\"\n  cat \"$f\"\ndone\n",
    )
    .expect("write helm");
    std::fs::set_permissions(&helm, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );

    for format in ["json", "table", "junit", "sarif", "github"] {
        let o = Command::new(env!("CARGO_BIN_EXE_mooring"))
            .arg("check")
            .arg(r)
            .args(["-o", format])
            .env("PATH", &path)
            .output()
            .expect("mooring runs");
        let (out, err) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        assert_eq!(o.status.code(), Some(1), "{format}: {err}\n{out}");
        assert!(
            !out.contains(MARKER) && !err.contains(MARKER),
            "{format}: the outside file leaked:\n{out}\n{err}"
        );
        for link in [
            "charts/model/templates/leak.yaml",
            "charts/model/files/token",
            "kustomize/model/leak.yaml",
            "plain/model/leak.yaml",
            "linked",
        ] {
            assert!(
                out.contains(link),
                "{format}: no finding names {link}:\n{out}"
            );
        }
        if format == "json" {
            let v: serde_json::Value = serde_json::from_str(&out).expect("JSON report");
            let subjects = v.as_array().expect("subjects");
            let rules = |filename: &str| -> Vec<String> {
                subjects
                    .iter()
                    .filter(|s| s["filename"] == filename)
                    .flat_map(|s| s["failures"].as_array().cloned().unwrap_or_default())
                    .map(|f| f["rule"].as_str().unwrap_or_default().to_string())
                    .collect()
            };
            assert_eq!(
                rules("charts/model/templates/leak.yaml"),
                ["repository/link-refused"],
                "{out}"
            );
            let linked = subjects
                .iter()
                .find(|s| s["namespace"] == "model-linked")
                .unwrap_or_else(|| panic!("model-linked: {out}"));
            assert_eq!(linked["failures"][0]["rule"], "render/error", "{linked}");
            // The rest of the chart still renders (its ConfigMap is checked).
            assert!(
                !subjects
                    .iter()
                    .filter(|s| s["namespace"] == "model-chart")
                    .any(|s| s["failures"].to_string().contains("render/error")),
                "{out}"
            );
        }
    }
}
