//! Multi-source Applications (`spec.sources`): every source deployed from its own
//! repository at its own revision, one revision per source in status and history, a
//! commit to the second repository deployed, `revisions` in an operation, and duplicate
//! or hostile source lists refused with nothing applied.

use crate::support::{env, eventually, field, Repo};
use mooring_k8s::kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use mooring_k8s::kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};

/// Where the Applications live (the control-plane namespace).
const APP_NS: &str = "argocd";
/// The destination namespace.
const DEST: &str = "ml-multi";

fn apps(client: &mooring_k8s::kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        APP_NS,
        &mooring_k8s::resources::application_resource(),
    )
}

fn ns_api(
    client: &mooring_k8s::kube::Client,
    g: &str,
    k: &str,
    plural: &str,
) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        DEST,
        &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, "v1", k), plural),
    )
}

fn app(name: &str, sources: Value, automated: bool) -> DynamicObject {
    let mut a = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": APP_NS},
        "spec": {"project": "default",
            "sources": sources,
            "destination": {"server": "https://kubernetes.default.svc", "namespace": DEST},
            "syncPolicy": {"syncOptions": ["CreateNamespace=true"]}}
    });
    if automated {
        a["spec"]["syncPolicy"]["automated"] = json!({"prune": true});
    }
    serde_json::from_value(a).expect("app")
}

fn cm(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: \"{value}\"\n"
    )
}

fn deployment(name: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: server
        image: registry.local/{name}:1.0
"
    )
}

async fn get(apps: &Api<DynamicObject>, name: &str) -> Value {
    serde_json::to_value(apps.get(name).await.expect("app")).expect("json")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn revs(r: &[&str]) -> Vec<String> {
    r.iter().map(|x| x.to_string()).collect()
}

/// Synced and Healthy at exactly `revisions` (one per source).
async fn wait_at(apps: &Api<DynamicObject>, name: &str, revisions: &[&str]) -> Value {
    eventually(
        90,
        &format!("{name} Synced+Healthy at {revisions:?}"),
        || async {
            let a = get(apps, name).await;
            (field(&a, "/status/sync/status") == "Synced"
                && field(&a, "/status/health/status") == "Healthy"
                && strings(&a["status"]["sync"]["revisions"]) == revisions)
                .then_some(a)
        },
    )
    .await
}

fn condition(a: &Value, type_: &str) -> Option<String> {
    a["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| c["message"].as_str().unwrap_or_default().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_from_two_repositories_deploy_and_follow_each_repository() {
    // Repository A: two plain directories. Repository B: a kustomize overlay.
    let a = Repo::new();
    a.write("apps/first/cm.yaml", &cm("first", "a1"));
    a.write("apps/second/cm.yaml", &cm("second", "a1"));
    a.write("apps/second/deploy.yaml", &deployment("second-server"));
    a.write("apps/third/cm.yaml", &cm("third", "a1"));
    let ca = a.commit("a v1");
    let b = Repo::new();
    b.write(
        "overlays/prod/kustomization.yaml",
        "resources:\n- cm.yaml\nnamePrefix: prod-\n",
    );
    b.write("overlays/prod/cm.yaml", &cm("settings", "b1"));
    b.write("values/prod.yaml", "replicas: 3\n");
    let cb1 = b.commit("b v1");

    let e = env().await;
    let apps = apps(&e.client);
    // Two directory sources of one repository.
    apps.create(
        &PostParams::default(),
        &app(
            "dirs",
            json!([
                {"repoURL": a.url(), "targetRevision": "main", "path": "apps/first"},
                {"repoURL": a.url(), "targetRevision": "main", "path": "apps/second"},
            ]),
            true,
        ),
    )
    .await
    .expect("create dirs");
    // A directory and a kustomize source from two repositories, plus a `ref` source
    // (values only: not rendered, but its revision is reported).
    apps.create(
        &PostParams::default(),
        &app(
            "mixed",
            json!([
                {"repoURL": a.url(), "targetRevision": "main", "path": "apps/third", "directory": {"include": "*.yaml"}},
                {"repoURL": b.url(), "targetRevision": "main", "path": "overlays/prod"},
                {"repoURL": b.url(), "targetRevision": "main", "ref": "values"},
            ]),
            true,
        ),
    )
    .await
    .expect("create mixed");

    let dirs = wait_at(&apps, "dirs", &[&ca, &ca]).await;
    assert!(dirs["status"]["sync"].get("revision").is_none(), "{dirs}");
    assert_eq!(
        dirs["status"]["resources"].as_array().map(Vec::len),
        Some(3),
        "{dirs}"
    );
    let cms = ns_api(&e.client, "", "ConfigMap", "configmaps");
    let deploys = ns_api(&e.client, "apps", "Deployment", "deployments");
    assert!(cms.get_opt("first").await.expect("get").is_some());
    assert!(cms.get_opt("second").await.expect("get").is_some());
    assert!(deploys
        .get_opt("second-server")
        .await
        .expect("get")
        .is_some());

    let mixed = wait_at(&apps, "mixed", &[&ca, &cb1, &cb1]).await;
    assert!(cms.get_opt("third").await.expect("get").is_some());
    let settings = cms
        .get("prod-settings")
        .await
        .expect("kustomize source deployed");
    assert_eq!(settings.data["data"]["value"], "b1");
    // History and the operation record one revision per source, and the sources.
    let h = &mixed["status"]["history"][0];
    assert_eq!(
        strings(&h["revisions"]),
        revs(&[&ca, &cb1, &cb1]),
        "{mixed}"
    );
    assert!(h.get("revision").is_none(), "{h}");
    assert_eq!(h["sources"].as_array().map(Vec::len), Some(3), "{h}");
    assert_eq!(h["sources"][2]["ref"], "values", "{h}");
    assert_eq!(
        strings(&mixed["status"]["operationState"]["syncResult"]["revisions"]),
        revs(&[&ca, &cb1, &cb1])
    );
    assert!(
        mixed["status"]["operationState"]["operation"]["sync"]["revisions"].is_array(),
        "the automated operation pins every source: {mixed}"
    );

    // A commit to the second repository is deployed; the first source stays where it is.
    b.write("overlays/prod/cm.yaml", &cm("settings", "b2"));
    let cb2 = b.commit("b v2");
    e.controller.ctx.refresh(&format!("{APP_NS}/mixed"));
    let mixed = wait_at(&apps, "mixed", &[&ca, &cb2, &cb2]).await;
    let settings = cms.get("prod-settings").await.expect("settings");
    assert_eq!(settings.data["data"]["value"], "b2");
    let history = mixed["status"]["history"].as_array().expect("history");
    assert_eq!(history.len(), 2, "{mixed}");
    assert_eq!(strings(&history[1]["revisions"]), revs(&[&ca, &cb2, &cb2]));

    // A commit to the first repository outside both sources' paths re-renders nothing
    // and still moves both apps to the new commit.
    a.write("README.md", "docs\n");
    let ca2 = a.commit("docs");
    let reused = e.controller.ctx.metrics.renders_reused();
    e.controller.ctx.refresh(&format!("{APP_NS}/dirs"));
    wait_at(&apps, "dirs", &[&ca2, &ca2]).await;
    assert!(
        e.controller.ctx.metrics.renders_reused() >= reused + 2,
        "each source's render is reused across a commit that does not touch it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_pins_revisions_per_source() {
    let a = Repo::new();
    a.write("apps/a/cm.yaml", &cm("from-a", "a1"));
    let ca = a.commit("a v1");
    let b = Repo::new();
    b.write("apps/b/cm.yaml", &cm("from-b", "b1"));
    let cb1 = b.commit("b v1");
    b.write("apps/b/cm.yaml", &cm("from-b", "b2"));
    let cb2 = b.commit("b v2");
    let e = env().await;
    let apps = apps(&e.client);
    apps.create(
        &PostParams::default(),
        &app(
            "pinned",
            json!([
                {"repoURL": a.url(), "targetRevision": "main", "path": "apps/a"},
                {"repoURL": b.url(), "targetRevision": "main", "path": "apps/b"},
            ]),
            false,
        ),
    )
    .await
    .expect("create");
    // Compared with main on both; not synced (manual).
    eventually(60, "compared at main", || async {
        let a = get(&apps, "pinned").await;
        (strings(&a["status"]["sync"]["revisions"]) == revs(&[&ca, &cb2])).then_some(())
    })
    .await;

    // `mooring app sync pinned --revisions <cb1> --source-positions 2`: source 2 at an
    // older commit, source 1 at its targetRevision.
    let op = json!({"sync": {"revisions": ["", cb1], "prune": false}, "initiatedBy": {"username": "test"}});
    apps.patch(
        "pinned",
        &PatchParams::default(),
        &Patch::Merge(json!({"operation": op})),
    )
    .await
    .expect("sync");
    let a1 = eventually(60, "pinned sync finished", || async {
        let a = get(&apps, "pinned").await;
        (field(&a, "/status/operationState/phase") == "Succeeded").then_some(a)
    })
    .await;
    assert_eq!(
        strings(&a1["status"]["operationState"]["syncResult"]["revisions"]),
        revs(&[&ca, &cb1]),
        "{a1}"
    );
    assert_eq!(
        strings(&a1["status"]["history"][0]["revisions"]),
        revs(&[&ca, &cb1])
    );
    let cms = ns_api(&e.client, "", "ConfigMap", "configmaps");
    assert_eq!(
        cms.get("from-b").await.expect("b").data["data"]["value"],
        "b1"
    );

    // A single `revision` for a multi-source app is refused with a clear message.
    let op =
        json!({"sync": {"revision": cb1, "prune": false}, "initiatedBy": {"username": "test"}});
    apps.patch(
        "pinned",
        &PatchParams::default(),
        &Patch::Merge(json!({"operation": op})),
    )
    .await
    .expect("sync");
    let a2 = eventually(60, "ambiguous sync refused", || async {
        let a = get(&apps, "pinned").await;
        let done = field(&a, "/status/operationState/phase") == "Error"
            && a.get("operation").is_none_or(Value::is_null);
        done.then_some(a)
    })
    .await;
    let msg = field(&a2, "/status/operationState/message");
    assert!(
        msg.contains("2 sources") && msg.contains("revisions"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_and_hostile_source_lists_apply_nothing() {
    let a = Repo::new();
    a.write("apps/a/shared.yaml", &cm("shared", "a"));
    a.write("apps/a/only-a.yaml", &cm("only-a", "a"));
    a.commit("a");
    let b = Repo::new();
    // The same ConfigMap, once with the destination namespace written out: the identity
    // is the cluster's, after the destination namespace is filled in.
    b.write(
        "apps/b/shared.yaml",
        &cm("shared", "b").replace(
            "name: shared",
            &format!("name: shared\n  namespace: {DEST}"),
        ),
    );
    b.write("apps/b/only-b.yaml", &cm("only-b", "b"));
    b.commit("b");
    let e = env().await;
    let apps = apps(&e.client);
    let dir = |repo: &Repo, path: &str| json!({"repoURL": repo.url(), "targetRevision": "main", "path": path});
    let mut too_many = Vec::new();
    for _ in 0..21 {
        too_many.push(dir(&a, "apps/a"));
    }
    let cases: Vec<(&str, Value, Vec<String>)> = vec![
        (
            "dup",
            json!([dir(&a, "apps/a"), dir(&b, "apps/b")]),
            vec![
                "ConfigMap".into(),
                "shared".into(),
                format!("source 1 ({}, path apps/a)", a.url()),
                format!("source 2 ({}, path apps/b)", b.url()),
            ],
        ),
        (
            "ref-escape",
            json!([dir(&a, "apps/a"), {"repoURL": b.url(), "targetRevision": "main", "path": "../../etc", "ref": "values"}]),
            vec!["source 2".into(), "`..`".into()],
        ),
        (
            "unknown-ref",
            json!([
                {"repoURL": a.url(), "targetRevision": "main", "path": "apps/a", "helm": {"valueFiles": ["$vals/prod.yaml"]}},
                {"repoURL": b.url(), "targetRevision": "main", "ref": "values"},
            ]),
            vec!["$vals/prod.yaml".into(), "$values".into()],
        ),
        (
            "too-many",
            Value::Array(too_many),
            vec!["21 sources".into()],
        ),
    ];
    for (name, sources, _) in &cases {
        apps.create(&PostParams::default(), &app(name, sources.clone(), true))
            .await
            .expect("create");
    }
    for (name, _, wants) in &cases {
        let a = eventually(60, &format!("{name} refused"), || async {
            let a = get(&apps, name).await;
            condition(&a, "ComparisonError").map(|m| (a, m))
        })
        .await;
        for w in wants {
            assert!(a.1.contains(w.as_str()), "{name}: {w:?} in {}", a.1);
        }
        assert!(
            a.0["status"]["operationState"].is_null(),
            "{name}: no sync was started: {}",
            a.0
        );
    }
    // Nothing of any of them was applied.
    let cms = ns_api(&e.client, "", "ConfigMap", "configmaps");
    for n in ["shared", "only-a", "only-b"] {
        assert!(cms.get_opt(n).await.expect("get").is_none(), "{n} applied");
    }
}
