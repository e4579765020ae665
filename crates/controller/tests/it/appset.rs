//! The ApplicationSet controller against the embedded cluster: a list-generator set
//! creates, deletes (create-delete) or keeps (create-only, preserveResourcesOnDeletion)
//! its Applications; a clusters-generator set follows cluster Secrets as they are added
//! and relabelled; a broken template is reported, not half-applied.

use crate::support::{env, eventually, field, Repo};
use mooring_apiserver::{Cluster, ClusterOptions};
use mooring_k8s::k8s_openapi::api::core::v1::Secret;
use mooring_k8s::kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use mooring_k8s::kube::Client;
use serde_json::{json, Value};

fn sets(c: &Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        c.clone(),
        "argocd",
        &mooring_k8s::resources::applicationset_resource(),
    )
}

fn apps(c: &Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        c.clone(),
        "argocd",
        &mooring_k8s::resources::application_resource(),
    )
}

async fn app_names(c: &Client, set: &str) -> Vec<String> {
    let l = apps(c)
        .list(&ListParams::default().labels(&format!("mooring.dev/applicationset={set}")))
        .await
        .expect("list apps");
    let mut names: Vec<String> = l
        .items
        .into_iter()
        .filter(|o| o.metadata.deletion_timestamp.is_none())
        .filter_map(|o| o.metadata.name)
        .collect();
    names.sort();
    names
}

fn list_set(name: &str, elements: &[&str], sync_policy: Value, repo: &str) -> DynamicObject {
    let elements: Vec<Value> = elements.iter().map(|e| json!({"app": e})).collect();
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {
            "generators": [{"list": {"elements": elements}}],
            "syncPolicy": sync_policy,
            "template": {
                "metadata": {"name": format!("{name}-{{{{app}}}}")},
                "spec": {
                    "project": "default",
                    "source": {"repoURL": repo, "path": "app", "targetRevision": "HEAD"},
                    "destination": {"server": "https://kubernetes.default.svc", "namespace": "default"}
                }
            }
        }
    }))
    .expect("appset")
}

async fn wait_names(c: &Client, set: &str, want: &[&str]) {
    let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    eventually(30, &format!("{set} generates {want:?}"), || {
        let want = want.clone();
        async move { (app_names(c, set).await == want).then_some(()) }
    })
    .await;
}

async fn set_elements(c: &Client, name: &str, elements: &[&str], sync_policy: Value) {
    let elements: Vec<Value> = elements.iter().map(|e| json!({"app": e})).collect();
    sets(c)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"generators": [{"list": {"elements": elements}}], "syncPolicy": sync_policy}})),
        )
        .await
        .expect("patch set");
}

/// The set's status lists exactly `n` resources (a reconcile of the current spec ran).
async fn wait_status_resources(c: &Client, name: &str, n: usize) {
    eventually(
        30,
        &format!("{name} status lists {n} resources"),
        || async move {
            let s = sets(c).get(name).await.ok()?;
            let v = serde_json::to_value(&s).ok()?;
            let count = v["status"]["resources"].as_array().map_or(0, Vec::len);
            (count == n).then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_generator_creates_deletes_and_keeps_per_policy() {
    let repo = Repo::new();
    repo.write(
        "app/cm.yaml",
        r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"k": "v"}}"#,
    );
    repo.commit("app");
    let e = env().await;
    let c = &e.client;
    sets(c)
        .create(
            &PostParams::default(),
            &list_set("ml", &["a", "b", "c"], json!({}), &repo.url()),
        )
        .await
        .expect("create set");
    wait_names(c, "ml", &["ml-a", "ml-b", "ml-c"]).await;

    // Ownership: ownerReference to the set, the owner label, Argo CD's resources finalizer.
    let set_uid = sets(c)
        .get("ml")
        .await
        .expect("set")
        .metadata
        .uid
        .expect("uid");
    let a = serde_json::to_value(apps(c).get("ml-a").await.expect("ml-a")).expect("json");
    assert_eq!(field(&a, "/metadata/ownerReferences/0/uid"), set_uid);
    assert_eq!(
        field(&a, "/metadata/ownerReferences/0/kind"),
        "ApplicationSet"
    );
    assert_eq!(
        field(&a, "/metadata/finalizers/0"),
        "resources-finalizer.argocd.argoproj.io"
    );
    assert_eq!(field(&a, "/spec/source/repoURL"), repo.url());
    // A reconcile of an unchanged set writes nothing (no update churn).
    let again = mooring_controller::appset::reconcile(&e.controller.ctx, "argocd", "ml")
        .await
        .expect("reconcile");
    assert!(
        again.created.is_empty() && again.updated.is_empty() && again.deleted.is_empty(),
        "{again:?}"
    );

    // A template change updates every Application (sync policy allows updates).
    sets(c)
        .patch(
            "ml",
            &PatchParams::default(),
            &Patch::Merge(
                &json!({"spec": {"template": {"spec": {"source": {"path": "app/{{app}}"}}}}}),
            ),
        )
        .await
        .expect("patch template");
    eventually(30, "ml-c follows the template", || async move {
        let a = serde_json::to_value(apps(c).get("ml-c").await.ok()?).ok()?;
        (field(&a, "/spec/source/path") == "app/c").then_some(())
    })
    .await;

    // Default policy (sync): a removed element deletes its Application.
    set_elements(c, "ml", &["a", "b"], json!({})).await;
    wait_names(c, "ml", &["ml-a", "ml-b"]).await;

    // create-only: removing an element keeps the Application.
    set_elements(c, "ml", &["a"], json!({"applicationsSync": "create-only"})).await;
    wait_status_resources(c, "ml", 1).await;
    assert_eq!(app_names(c, "ml").await, ["ml-a", "ml-b"]);

    // create-delete with preserveResourcesOnDeletion: deleted without the finalizer.
    set_elements(
        c,
        "ml",
        &["a"],
        json!({"applicationsSync": "create-delete", "preserveResourcesOnDeletion": true}),
    )
    .await;
    wait_names(c, "ml", &["ml-a"]).await;

    // An owned Application deleted by hand comes back.
    apps(c)
        .patch(
            "ml-a",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
        )
        .await
        .expect("drop finalizer");
    apps(c)
        .delete("ml-a", &Default::default())
        .await
        .expect("delete ml-a");
    eventually(30, "ml-a is regenerated", || async move {
        let a = apps(c).get("ml-a").await.ok()?;
        a.metadata.deletion_timestamp.is_none().then_some(())
    })
    .await;

    // Status: up to date.
    let s = serde_json::to_value(sets(c).get("ml").await.expect("set")).expect("json");
    let conds = s["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        conds
            .iter()
            .any(|c| c["type"] == "ResourcesUpToDate" && c["status"] == "True"),
        "{conds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_template_is_reported_and_nothing_changes() {
    let e = env().await;
    let c = &e.client;
    sets(c)
        .create(
            &PostParams::default(),
            &list_set("bad", &["a"], json!({}), "https://git.example/x.git"),
        )
        .await
        .expect("create set");
    wait_names(c, "bad", &["bad-a"]).await;
    // Two elements rendering the same name: an error; the existing app stays.
    sets(c)
        .patch(
            "bad",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {
                "generators": [{"list": {"elements": [{"app": "x", "other": "1"}, {"app": "x", "other": "2"}]}}]}})),
        )
        .await
        .expect("patch");
    let message = eventually(30, "ErrorOccurred is reported", || async move {
        let s = serde_json::to_value(sets(c).get("bad").await.ok()?).ok()?;
        s["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "ErrorOccurred" && c["status"] == "True")
            .map(|c| c["message"].as_str().unwrap_or_default().to_string())
    })
    .await;
    assert!(
        message.contains("more than one Application named \"bad-x\""),
        "{message}"
    );
    assert_eq!(app_names(c, "bad").await, ["bad-a"]);
}

/// The condition `type_` of the set `name` with status True, once it says `contains`.
async fn wait_condition(c: &Client, name: &str, type_: &str, contains: &str) -> String {
    eventually(
        30,
        &format!("{type_} mentioning {contains}"),
        || async move {
            let s = serde_json::to_value(sets(c).get(name).await.ok()?).ok()?;
            s["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == type_ && c["status"] == "True")
                .map(|c| c["message"].as_str().unwrap_or_default().to_string())
                .filter(|m| m.contains(contains))
        },
    )
    .await
}

/// Issue 11: a field of the set Mooring does not act on is named in a warning condition
/// (the set still generates); a generator it does not implement fails generation naming
/// it, and a value its schema does not allow is refused by the API server; neither changes
/// the Applications.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_fields_warn_and_unsupported_generators_fail_naming_them() {
    let e = env().await;
    let c = &e.client;
    let mut set = serde_json::to_value(list_set(
        "ml",
        &["a"],
        json!({}),
        "https://git.example/x.git",
    ))
    .expect("json");
    set["spec"]["strategy"] = json!({"type": "RollingSync", "rollingSync": {"steps": [
        {"matchExpressions": [{"key": "env", "operator": "In", "values": ["dev"]}]}]}});
    let set: DynamicObject = serde_json::from_value(set).expect("set");
    sets(c)
        .create(&PostParams::default(), &set)
        .await
        .expect("create set");
    wait_names(c, "ml", &["ml-a"]).await;
    let warning = wait_condition(c, "ml", "UnsupportedFieldWarning", "RollingSync").await;
    assert!(
        warning.contains("spec.strategy.type \"RollingSync\" is not supported by Mooring: progressive syncs are not implemented")
            && warning.contains("spec.strategy.rollingSync is not supported by Mooring"),
        "{warning}"
    );
    // A pull-request generator: generation fails naming it; the app stays.
    sets(c)
        .patch(
            "ml",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"generators": [
                {"list": {"elements": [{"app": "a"}, {"app": "b"}]}},
                {"pullRequest": {"github": {"owner": "ml", "repo": "models"}}}]}})),
        )
        .await
        .expect("patch");
    let error = wait_condition(c, "ml", "ErrorOccurred", "pullRequest").await;
    assert!(
        error.contains("unsupported generator \"pullRequest\""),
        "{error}"
    );
    wait_condition(
        c,
        "ml",
        "UnsupportedFieldWarning",
        "spec.generators[1].pullRequest",
    )
    .await;
    assert_eq!(app_names(c, "ml").await, ["ml-a"]);
    // A value the schema does not allow is refused by the API server (as a real one
    // refuses it under Argo CD's CRD), naming the supported values; nothing changes.
    let refused = sets(c)
        .patch(
            "ml",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {
                "generators": [{"list": {"elements": [{"app": "a"}, {"app": "b"}]}}],
                "syncPolicy": {"applicationsSync": "sometimes"}}})),
        )
        .await
        .expect_err("an unsupported applicationsSync is refused");
    let refused = refused.to_string();
    assert!(
        refused.contains("spec.syncPolicy.applicationsSync: Unsupported value: \"sometimes\"")
            && refused.contains("\"create-only\""),
        "{refused}"
    );
    assert_eq!(app_names(c, "ml").await, ["ml-a"]);
}

/// An Argo CD cluster Secret; `cluster` is the embedded cluster at `server` (whose token
/// and CA go into `config`), if any.
fn cluster_secret(
    name: &str,
    server: &str,
    cluster: Option<&Cluster>,
    labels: &[(&str, &str)],
) -> Secret {
    let config = cluster.map(Cluster::client_config).unwrap_or_default();
    let mut l: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    l.insert("argocd.argoproj.io/secret-type".into(), json!("cluster"));
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("cluster-{name}"), "namespace": "argocd", "labels": l},
        "stringData": {"name": name, "server": server,
            "config": serde_json::to_string(&config).expect("config")}
    }))
    .expect("secret")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusters_generator_follows_cluster_secrets() {
    let e = env().await;
    let c = &e.client;
    // Two more embedded clusters in this process, registered by Secret.
    let eu = Cluster::start(ClusterOptions::default()).await.expect("eu");
    let us = Cluster::start(ClusterOptions::default()).await.expect("us");
    let secrets: Api<Secret> = Api::namespaced(c.clone(), "argocd");
    let prod = [
        ("environment", "production"),
        ("workload-type", "inference"),
    ];
    secrets
        .create(
            &PostParams::default(),
            &cluster_secret("prod-eu", &eu.url(), Some(&eu), &prod),
        )
        .await
        .expect("eu secret");
    let set: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "inference", "namespace": "argocd"},
        "spec": {
            "goTemplate": true,
            "goTemplateOptions": ["missingkey=error"],
            "generators": [{"clusters": {"selector": {"matchLabels": {"environment": "production", "workload-type": "inference"}}}}],
            "template": {
                "metadata": {"name": "inference-{{.name}}"},
                "spec": {
                    "project": "default",
                    "source": {"repoURL": "https://git.example/ml.git", "path": "app"},
                    "destination": {"server": "{{.server}}", "namespace": "serving"}
                }
            }
        }
    }))
    .expect("set");
    sets(c)
        .create(&PostParams::default(), &set)
        .await
        .expect("create set");
    wait_names(c, "inference", &["inference-prod-eu"]).await;
    let a =
        serde_json::to_value(apps(c).get("inference-prod-eu").await.expect("app")).expect("json");
    assert_eq!(field(&a, "/spec/destination/server"), eu.url());

    // A new matching cluster gets its app; a non-matching one does not.
    secrets
        .create(
            &PostParams::default(),
            &cluster_secret("prod-us", &us.url(), Some(&us), &prod),
        )
        .await
        .expect("us secret");
    secrets
        .create(
            &PostParams::default(),
            &cluster_secret(
                "staging",
                "https://staging.example:6443",
                None,
                &[("environment", "staging")],
            ),
        )
        .await
        .expect("staging secret");
    wait_names(c, "inference", &["inference-prod-eu", "inference-prod-us"]).await;

    // Relabelled away: its app goes.
    secrets
        .patch(
            "cluster-prod-eu",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"environment": "retired"}}})),
        )
        .await
        .expect("relabel");
    wait_names(c, "inference", &["inference-prod-us"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_directory_generator_follows_commits() {
    let repo = Repo::new();
    let cm = |n: &str| {
        format!(
            r#"{{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {{"name": "{n}"}}, "data": {{"k": "v"}}}}"#
        )
    };
    repo.write("models/bert/cm.yaml", &cm("bert"));
    repo.write("models/resnet/cm.yaml", &cm("resnet"));
    repo.write("models/experimental/cm.yaml", &cm("exp"));
    repo.commit("models");
    let e = env().await;
    let c = &e.client;
    let set: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "models", "namespace": "argocd"},
        "spec": {
            "generators": [{"git": {"repoURL": repo.url(), "revision": "HEAD",
                "directories": [{"path": "models/*"}, {"path": "models/experimental", "exclude": true}]}}],
            "template": {
                "metadata": {"name": "model-{{path.basename}}"},
                "spec": {
                    "project": "default",
                    "source": {"repoURL": repo.url(), "path": "{{path}}", "targetRevision": "HEAD"},
                    "destination": {"server": "https://kubernetes.default.svc", "namespace": "default"}
                }
            }
        }
    }))
    .expect("set");
    sets(c)
        .create(&PostParams::default(), &set)
        .await
        .expect("create set");
    wait_names(c, "models", &["model-bert", "model-resnet"]).await;
    let a = serde_json::to_value(apps(c).get("model-bert").await.expect("app")).expect("json");
    assert_eq!(field(&a, "/spec/source/path"), "models/bert");

    // A new directory in a new commit: a new app at the next resync (forced here).
    repo.write("models/whisper/cm.yaml", &cm("whisper"));
    repo.commit("whisper");
    mooring_controller::appset::refresh(&e.controller.ctx, "argocd", "models")
        .await
        .expect("reconcile");
    wait_names(
        c,
        "models",
        &["model-bert", "model-resnet", "model-whisper"],
    )
    .await;
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let ft = e.file_type().expect("type");
        if ft.is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else if ft.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }
}

/// Issue 5's acceptance for the seed: `ml-inference-services`, applied verbatim to a
/// management cluster with three production inference clusters (and a staging one)
/// registered by cluster Secrets, deploys the inference service to each production
/// cluster with that cluster's replica count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_applicationset_deploys_per_cluster_replicas() {
    use mooring_apiserver::sim::SimOptions;
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ml-platform");
    let repo = Repo::new();
    copy_tree(&example, repo.path());
    repo.commit("the example repository");
    let sim = || SimOptions {
        speed: 20.0,
        ..Default::default()
    };
    let mgmt = Cluster::start(ClusterOptions {
        sim: sim(),
        crds: mooring_k8s::crds::all(),
        ..Default::default()
    })
    .await
    .expect("management cluster");
    let c = mooring_k8s::client_from_kubeconfig(mgmt.kubeconfig_path())
        .await
        .expect("client");
    let cache = tempfile::tempdir().expect("tmp");
    let _controller = mooring_controller::Controller::start(
        c.clone(),
        mooring_controller::ControllerOptions {
            cache_dir: cache.path().to_path_buf(),
            operation_poll: std::time::Duration::from_millis(100),
            repo_aliases: vec![(
                "https://git.example.com/ml-platform/platform.git".into(),
                repo.url(),
            )],
            ..Default::default()
        },
    )
    .await
    .expect("controller");

    let secrets: Api<Secret> = Api::namespaced(c.clone(), "argocd");
    let prod = [
        ("environment", "production"),
        ("workload-type", "inference"),
    ];
    let mut fleet = Vec::new();
    for (name, labels) in [
        ("prod-us-east", &prod[..]),
        ("prod-eu-west", &prod[..]),
        ("prod-ap-south", &prod[..]),
        (
            "staging",
            &[("environment", "staging"), ("workload-type", "inference")][..],
        ),
    ] {
        let cl = Cluster::start(ClusterOptions {
            sim: sim(),
            ..Default::default()
        })
        .await
        .expect("destination cluster");
        secrets
            .create(
                &PostParams::default(),
                &cluster_secret(name, &cl.url(), Some(&cl), labels),
            )
            .await
            .expect("cluster secret");
        fleet.push((name, cl));
    }
    // The seed's project, where this build serves AppProjects.
    let project = example.join("projects/ml-platform.yaml");
    if project.is_file() {
        let v = mooring_core::yaml::parse_one(&std::fs::read_to_string(&project).expect("read"))
            .expect("project yaml");
        let projects: Api<DynamicObject> = Api::namespaced_with(
            c.clone(),
            "argocd",
            &mooring_k8s::kube::core::ApiResource::from_gvk_with_plural(
                &mooring_k8s::kube::core::GroupVersionKind::gvk(
                    "argoproj.io",
                    "v1alpha1",
                    "AppProject",
                ),
                "appprojects",
            ),
        );
        if let Ok(p) = serde_json::from_value::<DynamicObject>(v) {
            let _ = projects.create(&PostParams::default(), &p).await;
        }
    }
    let seed = mooring_core::yaml::parse_one(
        &std::fs::read_to_string(example.join("applicationsets/ml-inference-services.yaml"))
            .expect("seed"),
    )
    .expect("seed yaml");
    sets(&c)
        .create(
            &PostParams::default(),
            &serde_json::from_value(seed).expect("appset"),
        )
        .await
        .expect("create the seed ApplicationSet");
    wait_names(
        &c,
        "ml-inference-services",
        &[
            "inference-prod-ap-south",
            "inference-prod-eu-west",
            "inference-prod-us-east",
        ],
    )
    .await;

    for (name, cl) in &fleet {
        let want = match *name {
            "prod-us-east" => 6,
            "prod-eu-west" => 4,
            "prod-ap-south" => 3,
            _ => continue,
        };
        let dc = mooring_k8s::client_from_kubeconfig(cl.kubeconfig_path())
            .await
            .expect("client");
        let deployments: Api<DynamicObject> = Api::namespaced_with(
            dc,
            "ml-inference-production",
            &mooring_k8s::kube::core::ApiResource::from_gvk_with_plural(
                &mooring_k8s::kube::core::GroupVersionKind::gvk("apps", "v1", "Deployment"),
                "deployments",
            ),
        );
        eventually(
            90,
            &format!("{name} runs inference-gateway with {want} replicas"),
            || {
                let deployments = deployments.clone();
                async move {
                    let d = deployments.get("inference-gateway").await.ok()?;
                    (d.data["spec"]["replicas"] == want).then_some(())
                }
            },
        )
        .await;
    }
}
