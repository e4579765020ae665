//! A push to Debian's real `docker-registry` reaches the image watcher through the
//! registry's own notifications (`notifications.endpoints` with a bearer token) at
//! `POST /api/webhook/registry`, and the new tag is deployed although the watcher's poll
//! interval is an hour. A notification without the token is refused.

use mooring_apiserver::{sim::SimOptions, Cluster, ClusterOptions};
use mooring_controller::{Controller, ControllerOptions};
use mooring_k8s::kube;
use mooring_k8s::kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use mooring_testkit::registry::{Format, NotifyEndpoint, Registry, RegistryOptions};
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

const IMAGE: &str = "registry.ml.example.com/models/fraud-detector";
const REPO: &str = "models/fraud-detector";

fn git(dir: &std::path::Path, args: &[&str]) {
    let o = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_notification_deploys_the_new_tag_without_waiting_for_the_poll() {
    registry_notification_deploys_the_new_tag(false).await;
}

/// The same through a standalone server (`mooring server`), which has no controller in
/// its process: it records the push on the watching Application and the image watcher
/// takes it from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registry_notification_through_a_standalone_server_deploys_the_new_tag() {
    registry_notification_deploys_the_new_tag(true).await;
}

async fn registry_notification_deploys_the_new_tag(standalone: bool) {
    let repo = tempfile::tempdir().expect("tmp");
    git(repo.path(), &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(repo.path().join("app")).expect("mkdir");
    std::fs::write(
        repo.path().join("app/deployment.yaml"),
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: fraud-detector}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: fd}}}}\n  template:\n    metadata: {{labels: {{app: fd}}}}\n    spec:\n      containers:\n      - {{name: server, image: '{IMAGE}:1.2.3'}}\n"),
    )
    .expect("write");
    std::fs::write(
        repo.path().join("app/kustomization.yaml"),
        "resources: [deployment.yaml]\n",
    )
    .expect("write");
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "v1"]);

    let cluster = Cluster::start(ClusterOptions {
        sim: SimOptions {
            speed: 20.0,
            ..Default::default()
        },
        crds: mooring_k8s::crds::all(),
        ..Default::default()
    })
    .await
    .expect("cluster");
    let client = mooring_k8s::client_from_kubeconfig(cluster.kubeconfig_path())
        .await
        .expect("client");
    let cache = tempfile::tempdir().expect("tmp");
    let controller = Controller::start(
        client.clone(),
        ControllerOptions {
            cache_dir: cache.path().to_path_buf(),
            image_interval: Duration::from_secs(3600),
            ..Default::default()
        },
    )
    .await
    .expect("controller");
    let token = "registry-token";
    let secrets = mooring_server::WebhookSecrets {
        registry: Some(token.into()),
        ..Default::default()
    };
    let router = if standalone {
        mooring_server::standalone_router(client.clone(), Default::default(), secrets.into())
    } else {
        mooring_server::router(controller.ctx.clone(), secrets.into())
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });

    let registry = Registry::start(RegistryOptions {
        notify: Some(NotifyEndpoint {
            url: format!("http://{addr}/api/webhook/registry"),
            bearer_token: token.into(),
        }),
        ..Default::default()
    })
    .expect("docker-registry (Debian package docker-registry; scripts/test installs it)");
    registry
        .push_image(
            REPO,
            "1.2.3",
            "linux/amd64",
            "2026-01-01T00:00:00Z",
            Format::Oci,
        )
        .expect("push");

    // The admin's registries.conf and allowlist (the registry is on loopback).
    let cms: Api<mooring_k8s::k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "argocd");
    for (name, key, value) in [
        (
            "argocd-image-updater-config",
            "registries.conf",
            format!(
                "registries:\n- name: ML\n  prefix: registry.ml.example.com\n  api_url: {}\n",
                registry.url()
            ),
        ),
        ("mooring-cm", "outbound.allow", "127.0.0.1".to_string()),
    ] {
        cms.patch(
            name,
            &PatchParams::apply("test-admin").force(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "argocd"}, "data": {key: value}})),
        )
        .await
        .expect("configmap");
    }
    let apps: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::resources::application_resource(),
    );
    let app: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "fraud-detector", "namespace": "argocd", "annotations": {
            "argocd-image-updater.argoproj.io/image-list": format!("{IMAGE}:~1.2"),
        }},
        "spec": {"project": "default",
            "source": {"repoURL": format!("file://{}", repo.path().display()), "targetRevision": "main", "path": "app"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "serving"},
            "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]}}
    }))
    .expect("app");
    apps.create(&PostParams::default(), &app)
        .await
        .expect("create");
    let deploys: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "serving",
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
            "apps",
            "v1",
            "Deployment",
        )),
    );
    let running = || async {
        let d = serde_json::to_value(deploys.get("fraud-detector").await.ok()?).ok()?;
        d.pointer("/spec/template/spec/containers/0/image")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    mooring_testkit::eventually(60, "1.2.3 running", || async {
        (running().await? == format!("{IMAGE}:1.2.3")).then_some(())
    })
    .await;
    // The watcher's first check is done (on discovery); the next poll is an hour away.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // A notification without the token: 401, nothing happens.
    let http = reqwest::Client::new();
    let forged = http
        .post(format!("http://{addr}/api/webhook/registry"))
        .header("content-type", "application/vnd.docker.distribution.events.v1+json")
        .body(r#"{"events":[{"action":"push","target":{"repository":"models/fraud-detector","tag":"9.9.9"}}]}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(forged.status().as_u16(), 401);

    registry
        .push_image(
            REPO,
            "1.2.4",
            "linux/amd64",
            "2026-02-01T00:00:00Z",
            Format::Oci,
        )
        .expect("push");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while running().await != Some(format!("{IMAGE}:1.2.4")) {
        if std::time::Instant::now() > deadline {
            let a =
                serde_json::to_value(apps.get("fraud-detector").await.expect("app")).expect("json");
            panic!("1.2.4 is not running after 60s: {:#}", a);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The watcher's figures on /metrics (the controller's own in the standalone case).
    let metrics = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let metrics = if standalone {
        assert!(
            metrics
                .contains("mooring_server_webhook_requests_total{kind=\"registry\",result=\"ok\"}"),
            "{metrics}"
        );
        mooring_server::metrics_response(Some(&controller.ctx.metrics), true).2
    } else {
        metrics
    };
    assert!(
        metrics.contains("mooring_image_updates_total{result=\"written\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("mooring_image_checks_total"), "{metrics}");
    // The argocd write-back method: a parameter override on the Application.
    let a = serde_json::to_value(apps.get("fraud-detector").await.expect("app")).expect("json");
    assert_eq!(
        a.pointer("/spec/source/kustomize/images/0")
            .and_then(Value::as_str),
        Some(format!("{IMAGE}:1.2.4").as_str()),
        "{a}"
    );
}
