//! The image watcher end to end: Debian's real `docker-registry` with htpasswd auth,
//! real Git over smart HTTP (`git http-backend`) behind Basic auth with an Argo CD
//! repository Secret, the embedded cluster and the controller. Images are pushed through
//! the registry's HTTP API; the Application carries Argo CD Image Updater's annotations
//! as its users write them.

use crate::support::{allow_outbound, controller_with, eventually, Env};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use mooring_apiserver::{sim::SimOptions, Cluster, ClusterOptions};
use mooring_k8s::kube;
use mooring_testkit::registry::{Format, Registry, RegistryOptions};
use mooring_testkit::GitHttpServer;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

const IMAGE: &str = "registry.ml.example.com/models/fraud-detector";
const REPO: &str = "models/fraud-detector";

use mooring_testkit::git;

/// The platform repository: a Deployment of the model server in a kustomize base and a
/// `dev` overlay (with a comment the write-back must keep).
const OVERLAY: &str = "# The development overlay: one replica.\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [../../base]\n";

fn deployment(tag: &str) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: fraud-detector}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: fraud-detector}}}}
  template:
    metadata: {{labels: {{app: fraud-detector}}}}
    spec:
      containers:
      - name: server
        image: {IMAGE}:{tag}
"#
    )
}

struct World {
    root: tempfile::TempDir,
    _git: GitHttpServer,
    url: String,
    registry: Registry,
    e: Env,
    _cluster: Cluster,
    apps: Api<DynamicObject>,
}

impl World {
    fn work(&self) -> PathBuf {
        self.root.path().join("work")
    }

    /// The overlay's kustomization on the remote's main.
    fn overlay_on_main(&self) -> String {
        let bare = self.root.path().join("srv/ml/platform.git");
        git(
            &bare,
            &["show", "main:apps/model/overlays/dev/kustomization.yaml"],
        )
    }

    fn log(&self) -> Vec<String> {
        let bare = self.root.path().join("srv/ml/platform.git");
        git(&bare, &["log", "--format=%an|%s", "main"])
            .lines()
            .map(str::to_string)
            .collect()
    }

    async fn apply(&self, v: Value) {
        let client = &self.e.client;
        let gvk = kube::api::GroupVersionKind::try_from(&kube::api::TypeMeta {
            api_version: v["apiVersion"].as_str().expect("apiVersion").into(),
            kind: v["kind"].as_str().expect("kind").into(),
        })
        .expect("gvk");
        let (ar, _) = kube::discovery::pinned_kind(client, &gvk)
            .await
            .expect("kind served");
        let api: Api<DynamicObject> = match v.pointer("/metadata/namespace").and_then(Value::as_str)
        {
            Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
            None => Api::all_with(client.clone(), &ar),
        };
        let name = v["metadata"]["name"].as_str().expect("name").to_string();
        api.patch(
            &name,
            &PatchParams::apply("test-admin").force(),
            &Patch::Apply(v),
        )
        .await
        .expect("apply");
    }

    /// The image the live Deployment runs.
    async fn running(&self, ns: &str) -> Option<String> {
        let deploys: Api<DynamicObject> = Api::namespaced_with(
            self.e.client.clone(),
            ns,
            &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk(
                "apps",
                "v1",
                "Deployment",
            )),
        );
        let d = deploys.get("fraud-detector").await.ok()?;
        serde_json::to_value(d)
            .ok()?
            .pointer("/spec/template/spec/containers/0/image")
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}

/// Registry with Basic auth and 1.2.3 pushed, the repository over HTTP with Basic auth,
/// a controller checking images every `interval`, the registries.conf and the Secrets.
async fn world(interval: Duration) -> World {
    let root = tempfile::tempdir().expect("tmp");
    let bare = root.path().join("srv/ml/platform.git");
    std::fs::create_dir_all(&bare).expect("mkdir");
    git(&bare, &["init", "-q", "--bare", "-b", "main"]);
    git(&bare, &["config", "http.receivepack", "true"]);
    let work = root.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["remote", "add", "origin", &bare.to_string_lossy()]);
    for (p, c) in [
        ("apps/model/base/deployment.yaml", deployment("1.2.3")),
        (
            "apps/model/base/kustomization.yaml",
            "resources: [deployment.yaml]\n".to_string(),
        ),
        ("apps/model/overlays/dev/kustomization.yaml", OVERLAY.into()),
    ] {
        let f = work.join(p);
        std::fs::create_dir_all(f.parent().expect("parent")).expect("mkdir");
        std::fs::write(f, c).expect("write");
    }
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "model server 1.2.3"]);
    git(&work, &["push", "-q", "origin", "main"]);
    let git_server =
        GitHttpServer::start(&root.path().join("srv"), Some(("git", "git-secret"))).expect("git");
    let url = git_server.url("ml/platform.git");

    let registry = Registry::start(RegistryOptions {
        basic_auth: Some(("ci".into(), "registry-secret".into())),
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
        .expect("push 1.2.3");

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
    let e = controller_with(&cluster, |o| o.image_interval = interval).await;
    allow_outbound(&e.client, &e.controller.ctx.outbound, "127.0.0.1").await;
    let apps = Api::namespaced_with(
        e.client.clone(),
        "argocd",
        &mooring_k8s::resources::application_resource(),
    );
    let w = World {
        root,
        _git: git_server,
        url,
        registry,
        e,
        _cluster: cluster,
        apps,
    };
    w.apply(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "platform-repo", "namespace": "argocd",
                     "labels": {"argocd.argoproj.io/secret-type": "repository"}},
        "stringData": {"type": "git", "url": w.url, "username": "git", "password": "git-secret"}}))
        .await;
    w.apply(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "ml-registry", "namespace": "argocd"},
        "stringData": {"creds": "ci:registry-secret"}}))
        .await;
    let conf = format!(
        "registries:\n- name: ML models\n  prefix: registry.ml.example.com\n  api_url: {}\n  credentials: secret:argocd/ml-registry#creds\n  insecure: yes\n- name: elsewhere\n  prefix: evil.example.com\n  api_url: {}\n  credentials: secret:argocd/ml-registry#creds\n",
        w.registry.url(),
        w.registry.url()
    );
    w.apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "argocd-image-updater-config", "namespace": "argocd"},
        "data": {"registries.conf": conf, "git.user": "image-bot",
                 "git.email": "image-bot@example.com", "log.level": "debug"}}))
        .await;
    w
}

fn app(w: &World, name: &str, annotations: Value) -> Value {
    json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd", "annotations": annotations},
        "spec": {"project": "default",
            "source": {"repoURL": w.url, "targetRevision": "main", "path": "apps/model/overlays/dev"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": name},
            "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]}}})
}

async fn create(w: &World, v: Value) {
    let o: DynamicObject = serde_json::from_value(v).expect("app");
    w.apps
        .create(&PostParams::default(), &o)
        .await
        .expect("create app");
}

async fn condition(w: &World, name: &str, type_: &str) -> Option<String> {
    let a = serde_json::to_value(w.apps.get(name).await.ok()?).ok()?;
    a.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .and_then(|c| c["message"].as_str())
        .map(str::to_string)
}

/// semver `~1.2`: 1.2.4 is written back to the overlay's `images:` with Image Updater's
/// commit message and deployed; 1.3.0 never is. The overlay's comment survives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_patch_tag_is_committed_to_the_overlay_and_deployed() {
    let w = world(Duration::from_millis(500)).await;
    create(
        &w,
        app(
            &w,
            "fraud-detector-dev",
            json!({
                "argocd-image-updater.argoproj.io/image-list": format!("fd={IMAGE}:~1.2"),
                "argocd-image-updater.argoproj.io/fd.update-strategy": "semver",
                "argocd-image-updater.argoproj.io/write-back-method": "git",
                "argocd-image-updater.argoproj.io/write-back-target": "kustomization",
            }),
        ),
    )
    .await;
    eventually(60, "1.2.3 running", || async {
        (w.running("fraud-detector-dev").await? == format!("{IMAGE}:1.2.3")).then_some(())
    })
    .await;
    for tag in ["1.3.0", "1.2.4"] {
        w.registry
            .push_image(
                REPO,
                tag,
                "linux/amd64",
                "2026-02-01T00:00:00Z",
                Format::Oci,
            )
            .expect("push");
    }
    eventually(60, "1.2.4 running", || async {
        (w.running("fraud-detector-dev").await? == format!("{IMAGE}:1.2.4")).then_some(())
    })
    .await;
    let overlay = w.overlay_on_main();
    assert!(
        overlay.starts_with("# The development overlay"),
        "{overlay}"
    );
    assert!(overlay.contains("newTag: \"1.2.4\""), "{overlay}");
    assert!(!overlay.contains("1.3.0"), "{overlay}");
    let log = w.log();
    assert!(
        log[0].starts_with("image-bot|build: automatic update of fraud-detector-dev"),
        "{log:?}"
    );
    assert_eq!(log.len(), 2, "one write-back commit: {log:?}");
    // More checks change nothing: Git already says 1.2.4.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(w.log().len(), 2, "{:?}", w.log());
    assert_eq!(
        condition(&w, "fraud-detector-dev", "ImageUpdateError").await,
        None
    );
    let _ = w.work();
}

const ALLOWED_REPOS: &str = r#"package k8sallowedrepos

violation[{"msg": msg}] {
  container := input.review.object.spec.template.spec.containers[_]
  not allowed(container.image)
  msg := sprintf("container <%v> has an invalid image repo <%v>, allowed repos are %v", [container.name, container.image, input.parameters.repos])
}

allowed(image) {
  startswith(image, input.parameters.repos[_])
}
"#;

/// The model-governance policy allows one registry; an image-list entry that would move
/// the model server to another one finds a newer tag there, but the commit fails the
/// gate: nothing is pushed, the Application says why, and a Warning Event is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_registry_is_never_written_back() {
    let w = world(Duration::from_millis(500)).await;
    w.apply(json!({
        "apiVersion": "templates.gatekeeper.sh/v1", "kind": "ConstraintTemplate",
        "metadata": {"name": "k8sallowedrepos"},
        "spec": {"crd": {"spec": {"names": {"kind": "K8sAllowedRepos"}}},
                 "targets": [{"target": "admission.k8s.gatekeeper.sh", "rego": ALLOWED_REPOS}]}
    }))
    .await;
    let constraint = json!({
        "apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sAllowedRepos",
        "metadata": {"name": "ml-approved-model-registries"},
        "spec": {"enforcementAction": "deny",
                 "match": {"kinds": [{"apiGroups": ["apps"], "kinds": ["Deployment"]}]},
                 "parameters": {"repos": ["registry.ml.example.com/models/"]}}
    });
    eventually(30, "the constraint kind is served", || async {
        let gvk = kube::api::GroupVersionKind::gvk(
            "constraints.gatekeeper.sh",
            "v1beta1",
            "K8sAllowedRepos",
        );
        kube::discovery::pinned_kind(&w.e.client, &gvk).await.ok()
    })
    .await;
    w.apply(constraint).await;
    create(
        &w,
        app(
            &w,
            "fraud-detector-elsewhere",
            json!({
                "argocd-image-updater.argoproj.io/image-list": "fd=evil.example.com/models/fraud-detector:~1.2",
                "argocd-image-updater.argoproj.io/fd.kustomize.image-name": IMAGE,
                "argocd-image-updater.argoproj.io/write-back-method": "git",
                "argocd-image-updater.argoproj.io/write-back-target": "kustomization",
            }),
        ),
    )
    .await;
    eventually(60, "1.2.3 running", || async {
        (w.running("fraud-detector-elsewhere").await? == format!("{IMAGE}:1.2.3")).then_some(())
    })
    .await;
    w.registry
        .push_image(
            REPO,
            "1.2.9",
            "linux/amd64",
            "2026-02-01T00:00:00Z",
            Format::Oci,
        )
        .expect("push");
    let message = eventually(60, "the refusal on the Application", || async {
        condition(&w, "fraud-detector-elsewhere", "ImageUpdateError")
            .await
            .filter(|m| m.contains("policy"))
    })
    .await;
    assert!(message.contains("evil.example.com"), "{message}");
    assert!(
        message.contains("ml-approved-model-registries") || message.contains("invalid image repo"),
        "{message}"
    );
    assert_eq!(w.log().len(), 1, "nothing pushed: {:?}", w.log());
    assert!(!w.overlay_on_main().contains("evil"));
    assert_eq!(
        w.running("fraud-detector-elsewhere").await.as_deref(),
        Some(format!("{IMAGE}:1.2.3").as_str())
    );
    let events: Api<DynamicObject> = Api::namespaced_with(
        w.e.client.clone(),
        "argocd",
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk("", "v1", "Event")),
    );
    let refused = eventually(30, "a Warning Event", || async {
        let list = events.list(&Default::default()).await.ok()?;
        list.items
            .into_iter()
            .filter_map(|e| serde_json::to_value(e).ok())
            .find(|e| e["reason"] == "ImageUpdateRefused")
    })
    .await;
    assert_eq!(refused["type"], "Warning");
}

/// The `spec.source.kustomize.images` override the `argocd` write-back set, if any.
async fn override_of(w: &World, name: &str) -> Option<String> {
    let a = serde_json::to_value(w.apps.get(name).await.ok()?).ok()?;
    a.pointer("/spec/source/kustomize/images/0")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The other strategies through the watcher, with the `argocd` write-back (a parameter
/// override on the Application): `newest-build` picks by the config's creation time (not
/// by name or push order) among `allow-tags`; `digest` follows a moving tag by digest;
/// `platforms` skips a newer tag that lacks the wanted platform on a multi-arch index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newest_build_digest_and_platforms_pick_what_the_registry_says() {
    let w = world(Duration::from_millis(500)).await;
    let push = |tag: &str, created: &str| {
        w.registry
            .push_image(REPO, tag, "linux/amd64", created, Format::Oci)
            .expect("push")
    };
    // newest-build: build-b is built later but pushed first; `nightly` is not allowed.
    push("build-b", "2026-03-02T00:00:00Z");
    push("build-a", "2026-03-01T00:00:00Z");
    push("nightly", "2026-03-09T00:00:00Z");
    // digest: `latest` moves below.
    let first = push("latest", "2026-03-01T00:00:00Z");
    // platforms: 1.2.5 is amd64 only, 1.2.4 an index with arm64.
    push("1.2.5", "2026-03-01T00:00:00Z");
    w.registry
        .push_index(
            REPO,
            "1.2.4",
            &[
                ("linux/amd64", "2026-03-01T00:00:00Z"),
                ("linux/arm64", "2026-03-01T00:00:00Z"),
            ],
            Format::Oci,
        )
        .expect("index");
    for (name, annotations) in [
        (
            "fd-newest",
            json!({
                "argocd-image-updater.argoproj.io/image-list": format!("fd={IMAGE}"),
                "argocd-image-updater.argoproj.io/fd.update-strategy": "newest-build",
                "argocd-image-updater.argoproj.io/fd.allow-tags": "regexp:^build-",
            }),
        ),
        (
            "fd-digest",
            json!({
                "argocd-image-updater.argoproj.io/image-list": format!("fd={IMAGE}:latest"),
                "argocd-image-updater.argoproj.io/fd.update-strategy": "digest",
            }),
        ),
        (
            "fd-arm",
            json!({
                "argocd-image-updater.argoproj.io/image-list": format!("fd={IMAGE}:~1.2"),
                "argocd-image-updater.argoproj.io/fd.platforms": "linux/arm64",
            }),
        ),
    ] {
        create(&w, app(&w, name, annotations)).await;
    }
    let newest = eventually(60, "the newest build set", || async {
        override_of(&w, "fd-newest").await
    })
    .await;
    assert_eq!(newest, format!("{IMAGE}:build-b"));
    let pinned = eventually(60, "latest pinned by digest", || async {
        override_of(&w, "fd-digest").await
    })
    .await;
    assert_eq!(pinned, format!("{IMAGE}:latest@{first}"));
    let arm = eventually(60, "the arm64 version set", || async {
        override_of(&w, "fd-arm").await
    })
    .await;
    assert_eq!(arm, format!("{IMAGE}:1.2.4"));
    // `latest` moves: the override follows its new digest, and the cluster runs it.
    let moved = push("latest", "2026-03-05T00:00:00Z");
    assert_ne!(moved, first);
    eventually(60, "the new digest set", || async {
        (override_of(&w, "fd-digest").await? == format!("{IMAGE}:latest@{moved}")).then_some(())
    })
    .await;
    eventually(60, "the new digest running", || async {
        (w.running("fd-digest").await? == format!("{IMAGE}:latest@{moved}")).then_some(())
    })
    .await;
}
