//! `mooring bench image`: new tag pushed → running in the cluster, on the example
//! platform's model server (`model-serving-development`, annotated for the image
//! watcher: semver `~1.4`, Git write-back to the overlay's `images:`).
//!
//! In-process on loopback, as `mooring up` runs it: the embedded cluster, the controller,
//! the registry webhook, the example repository as a local Git repository served for its
//! placeholder URL (taking the watcher's pushes), and Debian's `docker-registry` (`apt-get
//! install docker-registry`). Two modes, each `--rounds` pushes of the next patch tag:
//! **notify** (the registry's push notification wakes the watcher; the poll interval is
//! 10 minutes, so only the notification explains the figure) and **poll** (no
//! notifications, a 10 s poll interval; pushes land at phases of the interval spread by a
//! golden-ratio sequence, so the figure is the poll's average wait, not its worst case).
//! Each round pushes 1.4.N through the registry's
//! HTTP API and times: the write-back commit on the branch, the Application Synced to
//! it, and the first pod of the Rollout running the new image (the canary's first step:
//! the canary's own pauses and analysis come after and are the rollout's, not delivery's).

use super::dr::{docs, until};
use super::gitops::percentile;
use crate::up::git;
use anyhow::bail;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use mooring_k8s::kube;
use mooring_testkit::registry::{Format, NotifyEndpoint, Registry, RegistryOptions};
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

const EXAMPLE: &str = "examples/ml-platform";
const REPO_URL: &str = "https://git.example.com/ml-platform/platform.git";
const APP: &str = "model-serving-development";
const NS: &str = "ml-serving-development";
const IMAGE: &str = "registry.ml.example.com/models/fraud-detector";
const REPOSITORY: &str = "models/fraud-detector";
const OVERLAY: &str = "applications/model-serving/overlays/development/kustomization.yaml";

/// One round's figures (seconds from the push).
struct Round {
    committed: Duration,
    synced: Duration,
    running: Duration,
}

pub async fn run(rounds: usize) -> anyhow::Result<()> {
    let example = Path::new(EXAMPLE);
    if !example
        .join("environments/development/model-serving.yaml")
        .exists()
    {
        bail!("run `mooring bench image` from the repository's root (it reads {EXAMPLE})");
    }
    if Registry::binary().is_none() {
        bail!("Debian's docker-registry is needed: apt-get install docker-registry");
    }
    println!(
        "new tag pushed → running ({rounds} rounds per mode; {APP}, semver ~1.4, Git write-back)"
    );
    println!(
        "{:<8} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "mode", "rounds", "commit50", "synced50", "run p50", "run p90", "run max"
    );
    for (mode, notify, interval) in [
        ("notify", true, Duration::from_secs(600)),
        ("poll", false, Duration::from_secs(10)),
    ] {
        let r = mode_rounds(rounds, notify, interval).await?;
        let col = |f: fn(&Round) -> Duration, p: f64| {
            let mut v: Vec<Duration> = r.iter().map(f).collect();
            percentile(&mut v, p).as_secs_f64()
        };
        println!(
            "{mode:<8} {:>7} {:>8.2}s {:>8.2}s {:>8.2}s {:>8.2}s {:>8.2}s",
            r.len(),
            col(|r| r.committed, 0.5),
            col(|r| r.synced, 0.5),
            col(|r| r.running, 0.5),
            col(|r| r.running, 0.9),
            col(|r| r.running, 1.0),
        );
    }
    Ok(())
}

async fn mode_rounds(
    rounds: usize,
    notify: bool,
    interval: Duration,
) -> anyhow::Result<Vec<Round>> {
    let data = tempfile::tempdir()?;
    let repo = data.path().join("platform");
    std::fs::create_dir_all(&repo)?;
    crate::up::copy_tree(Path::new(EXAMPLE), &repo, data.path())?;
    git(&repo, &["init", "-q", "-b", "main"])?;
    git(
        &repo,
        &["config", "receive.denyCurrentBranch", "updateInstead"],
    )?;
    git(&repo, &["add", "-A"])?;
    git(
        &repo,
        &[
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@localhost",
            "commit",
            "-q",
            "-m",
            "the example platform",
        ],
    )?;
    let cluster = mooring_apiserver::Cluster::start(mooring_apiserver::ClusterOptions {
        sim: mooring_apiserver::sim::SimOptions {
            speed: 20.0,
            ..Default::default()
        },
        crds: mooring_k8s::crds::all(),
        ..Default::default()
    })
    .await?;
    let client = mooring_k8s::client_from_kubeconfig(cluster.kubeconfig_path()).await?;
    let controller = mooring_controller::Controller::start(
        client.clone(),
        mooring_controller::ControllerOptions {
            cache_dir: data.path().join("repos"),
            operation_poll: Duration::from_millis(50),
            repo_aliases: vec![(REPO_URL.into(), format!("file://{}", repo.display()))],
            image_interval: interval,
            ..Default::default()
        },
    )
    .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let webhook = listener.local_addr()?;
    let router = mooring_server::router(controller.ctx.clone(), Default::default());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let registry = tokio::task::spawn_blocking(move || {
        Registry::start(RegistryOptions {
            notify: notify.then(|| NotifyEndpoint {
                url: format!("http://{webhook}/api/webhook/registry"),
                bearer_token: "bench".into(),
            }),
            ..Default::default()
        })
    })
    .await??;
    let push = |tag: String| {
        let created = mooring_core::time::now_rfc3339();
        tokio::task::block_in_place(|| {
            registry.push_image(REPOSITORY, &tag, "linux/amd64", &created, Format::Oci)
        })
    };
    push("1.4.2".into())?;
    let ns = mooring_core::app::CONTROL_PLANE_NAMESPACE;
    let cms: Api<mooring_k8s::k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), ns);
    for (name, key, value) in [
        (
            mooring_controller::image::CONFIG_MAP,
            mooring_controller::image::REGISTRIES_KEY,
            format!(
                "registries:\n- name: ML models\n  prefix: registry.ml.example.com\n  api_url: {}\n  insecure: yes\n",
                registry.url()
            ),
        ),
        (
            crate::connect::SETTINGS_CONFIGMAP,
            mooring_engine::outbound::CONFIG_KEY,
            registry.host(),
        ),
    ] {
        cms.patch(
            name,
            &PatchParams::apply("bench").force(),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": ns}, "data": {key: value}})),
        )
        .await?;
    }
    let cp = mooring_engine::project::ControlPlane::default();
    let example = Path::new(EXAMPLE);
    let mut objects = docs(&example.join("projects/ml-platform.yaml"))?;
    objects.extend(docs(
        &example.join("environments/development/model-serving.yaml"),
    )?);
    for o in &objects {
        crate::registration::register(&client, &cp, o)
            .await
            .map_err(|e| anyhow::anyhow!("registering {}: {e}", o["metadata"]["name"]))?;
    }
    let apps: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &mooring_k8s::resources::application_resource(),
    );
    let pods: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        NS,
        &kube::api::ApiResource::from_gvk(&kube::api::GroupVersionKind::gvk("", "v1", "Pod")),
    );
    let running_with = |tag: String| {
        let pods = pods.clone();
        async move {
            let want = format!("{IMAGE}:{tag}");
            let list = pods.list(&ListParams::default()).await?;
            Ok::<_, anyhow::Error>(list.items.iter().any(|p| {
                let v = serde_json::to_value(p).unwrap_or_default();
                v.pointer("/spec/containers/0/image")
                    .and_then(Value::as_str)
                    == Some(&want)
                    && v.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
            }))
        }
    };
    until(300, "the model server running 1.4.2", || async {
        Ok(running_with("1.4.2".into()).await?.then_some(()))
    })
    .await?;
    // The first check of a newly seen app is done; wait for it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut out = Vec::new();
    for i in 0..rounds {
        let tag = format!("1.4.{}", 3 + i);
        if !notify {
            // Pushes land at spread phases of the poll (a golden-ratio sequence over the
            // interval): pushing right after the previous round's check would measure the
            // worst case every time.
            tokio::time::sleep(interval.mul_f64((i as f64 * 0.618_034).fract())).await;
        }
        let t0 = Instant::now();
        push(tag.clone())?;
        let commit = until(120, &format!("the write-back of {tag}"), || async {
            let text = std::fs::read_to_string(repo.join(OVERLAY))?;
            text.contains(&format!("newTag: \"{tag}\""))
                .then(|| git(&repo, &["rev-parse", "HEAD"]))
                .transpose()
        })
        .await?;
        let committed = t0.elapsed();
        until(120, &format!("{APP} synced to the write-back"), || async {
            let a = serde_json::to_value(apps.get(APP).await?)?;
            Ok(
                (a.pointer("/status/sync/revision").and_then(Value::as_str) == Some(&commit))
                    .then_some(()),
            )
        })
        .await?;
        let synced = t0.elapsed();
        until(120, &format!("a pod running {tag}"), || async {
            Ok(running_with(tag.clone()).await?.then_some(()))
        })
        .await?;
        let running = t0.elapsed();
        out.push(Round {
            committed,
            synced,
            running,
        });
    }
    drop(controller);
    Ok(out)
}
