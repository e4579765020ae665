//! `mooring proj can-i` and `mooring account …` against an embedded cluster holding the
//! seed's project roles and two accounts.

use crate::{apply_eventually, kubectl_ok, mooring};

const SETUP: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: appprojects.argoproj.io}
spec:
  group: argoproj.io
  scope: Namespaced
  names: {kind: AppProject, plural: appprojects, listKind: AppProjectList, singular: appproject}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: mooring-cm, namespace: argocd}
data:
  accounts.alice: apiKey
  accounts.alice.groups: ml-engineers
  accounts.dora: apiKey
  accounts.dora.groups: data-scientists
  accounts.bob: login
---
apiVersion: v1
kind: ConfigMap
metadata: {name: mooring-rbac-cm, namespace: argocd}
data:
  policy.csv: |
    p, role:auditor, clusters, get, *, allow
    g, dora, role:auditor
"#;

const PROJECT: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {name: ml-platform, namespace: argocd}
spec:
  roles:
  - name: ml-engineers
    groups: [ml-engineers]
    policies:
    - p, proj:ml-platform:ml-engineers, applications, get, ml-platform/*, allow
    - p, proj:ml-platform:ml-engineers, applications, sync, ml-platform/*, allow
  - name: data-scientists
    groups: [data-scientists]
    policies:
    - p, proj:ml-platform:data-scientists, applications, get, ml-platform/*, allow
"#;

#[test]
fn can_i_and_tokens() {
    let cluster = crate::BinCluster::start();
    let kc = cluster.kc.clone();
    kubectl_ok(&kc, &["apply", "-f", "-"], Some(SETUP));
    // The CRD is served once established.
    apply_eventually(&kc, PROJECT);

    for (args, want) in [
        (
            [
                "alice",
                "sync",
                "applications",
                "ml-platform/inference-east",
            ],
            0,
        ),
        (
            ["dora", "get", "applications", "ml-platform/inference-east"],
            0,
        ),
        (
            ["dora", "sync", "applications", "ml-platform/inference-east"],
            1,
        ),
        (["dora", "get", "clusters", "https://gpu-1"], 0),
        (["alice", "sync", "applications", "other/app"], 1),
        (
            [
                "proj:ml-platform:ml-engineers",
                "sync",
                "applications",
                "ml-platform/a",
            ],
            0,
        ),
        (
            [
                "proj:ml-platform:data-scientists",
                "sync",
                "applications",
                "ml-platform/a",
            ],
            1,
        ),
        (
            [
                "proj:ml-platform:ml-engineers",
                "sync",
                "applications",
                "other/a",
            ],
            1,
        ),
        (["admin", "delete", "clusters", "https://gpu-1"], 0),
        (["role:readonly", "get", "projects", "ml-platform"], 0),
        (["nobody", "get", "applications", "ml-platform/a"], 1),
    ] {
        let mut a = vec!["proj", "can-i"];
        a.extend(args);
        let o = mooring(&kc, &a);
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            o.status.code(),
            Some(want),
            "{args:?}: {out} {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(out.trim(), if want == 0 { "yes" } else { "no" }, "{args:?}");
    }

    let o = mooring(
        &kc,
        &[
            "account",
            "generate-token",
            "--account",
            "alice",
            "--expires-in",
            "1h",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let token = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(token.starts_with("mrg_") && token.len() == 47, "{token}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("shown once"));
    let o = mooring(
        &kc,
        &[
            "account",
            "generate-token",
            "--account",
            "proj:ml-platform:ml-engineers",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for bad in ["bob", "nobody", "proj:ml-platform:nope", "proj:missing:r"] {
        let o = mooring(&kc, &["account", "generate-token", "--account", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
    }
    let o = mooring(
        &kc,
        &[
            "proj",
            "role",
            "create-token",
            "ml-platform",
            "data-scientists",
            "-e",
            "30d",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout)
        .trim()
        .starts_with("mrg_"));
    let o = mooring(
        &kc,
        &["proj", "role", "create-token", "ml-platform", "nope"],
    );
    assert_eq!(o.status.code(), Some(2));
    let o = mooring(&kc, &["account", "generate-token", "--expires-in", "soon"]);
    assert_eq!(o.status.code(), Some(2));
    let o = mooring(&kc, &["account", "list", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let alice = v
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == "alice"))
        .expect("alice listed");
    assert_eq!(alice["tokens"].as_array().map(Vec::len), Some(1), "{alice}");
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains(&token),
        "never stored or shown again"
    );
    let id = alice["tokens"][0]["id"].as_str().expect("id").to_string();
    let o = mooring(&kc, &["account", "delete-token", &id, "--account", "alice"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = mooring(&kc, &["account", "delete-token", &id, "--account", "alice"]);
    assert_eq!(o.status.code(), Some(2));
}
