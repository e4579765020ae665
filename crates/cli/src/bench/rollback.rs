//! `mooring bench rollback`: from a RollbackPolicy breach to (a) the cluster back on the
//! good revision and (b) the revert commit pushed (`spec.gitRevert: {mode: direct}`).
//!
//! In-process on loopback: a Git repository (git CLI, file://, pushed to as to a server),
//! the embedded cluster with simulated pod metrics, a real Prometheus scraping them
//! (Debian: `apt-get install prometheus`), the controller. The app and the rule are the
//! example platform's production model serving (`examples/ml-platform/rollback/production`:
//! `error_rate > 5 %`, `automatic_rollback`) with the windows shortened so a round takes
//! seconds: `rate(…[10s])`, `for: 5s`, `interval: 1s`, scrape every second.
//!
//! Each round commits a version serving 20 % errors and measures, from the moment the rule
//! fires (`status.applications[].lastRollback.at`, written when the breach has held for
//! `for`): (a) the app's sync result at the good revision and Healthy, (b) the revert
//! commit on `main`; and from the moment the bad version is Healthy (errors flowing) to
//! the firing (detection: scrape, rate window, `for`, interval). The revert makes Git
//! render the good revision again, so automated sync resumes by itself before the next
//! round.

use super::gitops::percentile;
use crate::up::git;
use anyhow::bail;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use mooring_k8s::kube;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

pub(super) const NS: &str = "ml-serving";
pub(super) const ERROR_RATE: &str = "sum(rate(http_requests_total{namespace=\"ml-serving\",code=~\"5..\"}[10s])) / sum(rate(http_requests_total{namespace=\"ml-serving\"}[10s]))";

pub(super) fn write_model(dir: &Path, error_rate: &str) -> anyhow::Result<()> {
    let d = dir.join("applications/model-serving");
    std::fs::create_dir_all(&d)?;
    std::fs::write(
        d.join("deployment.yaml"),
        format!(
            "apiVersion: apps/v1
kind: Deployment
metadata: {{name: ml-model-serving, labels: {{app: ml-model-serving}}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: ml-model-serving}}}}
  template:
    metadata:
      labels: {{app: ml-model-serving}}
      annotations:
        sim.mooring.dev/request-rate: \"50\"
        sim.mooring.dev/error-rate: \"{error_rate}\"
    spec:
      containers:
      - name: server
        image: registry.ml.example.com/models/fraud-detector:{error_rate}
"
        ),
    )?;
    Ok(())
}

fn commit(dir: &Path, error_rate: &str, msg: &str) -> anyhow::Result<String> {
    write_model(dir, error_rate)?;
    git(dir, &["add", "-A"])?;
    git(dir, &["commit", "-q", "-m", msg])?;
    git(dir, &["rev-parse", "HEAD"])
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

async fn get(api: &Api<DynamicObject>, name: &str) -> anyhow::Result<Value> {
    Ok(serde_json::to_value(api.get(name).await?)?)
}

async fn refresh(apps: &Api<DynamicObject>) -> anyhow::Result<()> {
    apps.patch(
        "model-serving-production",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}}),
        ),
    )
    .await?;
    Ok(())
}

/// Poll `f` every 20 ms until it yields, for at most `secs`.
async fn until<F, Fut>(secs: u64, what: &str, mut f: F) -> anyhow::Result<Instant>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let t = Instant::now();
    loop {
        if f().await? {
            return Ok(Instant::now());
        }
        if t.elapsed() > Duration::from_secs(secs) {
            bail!("timed out after {secs}s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn run(rounds: usize) -> anyhow::Result<()> {
    let repo = tempfile::tempdir()?;
    let dir = repo.path();
    git(dir, &["init", "-q", "-b", "main"])?;
    git(
        dir,
        &["config", "receive.denyCurrentBranch", "updateInstead"],
    )?;
    let mut good = commit(dir, "0.001", "model v1")?;
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
    let data = tempfile::tempdir()?;
    let prom = super::scraping_prometheus(&cluster, data.path().join("prometheus")).await?;
    let controller = mooring_controller::Controller::start(
        client.clone(),
        mooring_controller::ControllerOptions {
            cache_dir: data.path().join("repos"),
            operation_poll: Duration::from_millis(50),
            prometheus_address: Some(prom.url()),
            ..Default::default()
        },
    )
    .await?;
    let ns = mooring_core::app::CONTROL_PLANE_NAMESPACE;
    let apps: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &mooring_k8s::resources::application_resource(),
    );
    let policies: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &mooring_k8s::resources::rollback_policy_resource(),
    );
    let app: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "model-serving-production", "namespace": ns},
        "spec": {"project": "default",
                 "source": {"repoURL": format!("file://{}", dir.display()), "targetRevision": "main", "path": "applications/model-serving"},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": NS},
                 "syncPolicy": {"automated": {"prune": true, "selfHeal": true}, "syncOptions": ["CreateNamespace=true"]}}
    }))?;
    apps.create(&PostParams::default(), &app).await?;
    let policy: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "mooring.dev/v1alpha1", "kind": "RollbackPolicy",
        "metadata": {"name": "model-serving-production", "namespace": ns},
        "spec": {"applications": {"names": ["model-serving-production"]}, "interval": "1s",
                 "gitRevert": {"mode": "direct"},
                 "rules": [{"name": "error_rate", "query": ERROR_RATE,
                            "threshold": {"operator": ">", "value": 0.05}, "for": "5s",
                            "action": "automatic_rollback"}]}
    }))?;
    policies.create(&PostParams::default(), &policy).await?;
    let healthy_at = |rev: String| {
        let apps = apps.clone();
        move || {
            let apps = apps.clone();
            let rev = rev.clone();
            async move {
                let a = get(&apps, "model-serving-production").await?;
                Ok(s(&a, "/status/operationState/syncResult/revision") == rev
                    && s(&a, "/status/operationState/phase") == "Succeeded"
                    && s(&a, "/status/health/status") == "Healthy"
                    && a.pointer("/operation").is_none_or(Value::is_null))
            }
        }
    };
    until(120, "v1 Healthy", healthy_at(good.clone())).await?;
    let (mut detect, mut back, mut pushed) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=rounds {
        // The policy must have seen the good revision healthy before the bad one comes.
        let g = good.clone();
        until(60, "the good revision recorded", || {
            let policies = policies.clone();
            let g = g.clone();
            async move {
                let p = get(&policies, "model-serving-production").await?;
                Ok(p.pointer("/status/applications/0/healthyRevisions")
                    .and_then(Value::as_array)
                    .is_some_and(|h| h.iter().any(|r| r == g.as_str())))
            }
        })
        .await?;
        let bad = commit(dir, "0.2", &format!("model v{}: 20% errors", round + 1))?;
        refresh(&apps).await?;
        let bad_live = until(120, "the bad version Healthy", healthy_at(bad.clone())).await?;
        let previous_revert = {
            let p = get(&policies, "model-serving-production").await?;
            s(&p, "/status/applications/0/gitRevert/commit").to_string()
        };
        let fired_wall = until(120, "the rule firing", || {
            let policies = policies.clone();
            let bad = bad.clone();
            async move {
                let p = get(&policies, "model-serving-production").await?;
                Ok(
                    s(&p, "/status/applications/0/lastRollback/fromRevision") == bad
                        && s(&p, "/status/applications/0/lastRollback/mode") == "syncRevision",
                )
            }
        })
        .await?;
        // The firing time as the controller recorded it (the poll above lags it a little).
        let p = get(&policies, "model-serving-production").await?;
        let fired_at = mooring_core::time::parse(s(&p, "/status/applications/0/lastRollback/at"))?;
        let lag = Duration::try_from(mooring_core::time::now().duration_since(fired_at))
            .unwrap_or_default();
        let fired = fired_wall
            .checked_sub(lag)
            .unwrap_or(fired_wall)
            .max(bad_live);
        let (a, b) = tokio::join!(
            until(
                120,
                "the good revision Healthy again",
                healthy_at(good.clone())
            ),
            until(120, "the revert pushed", || {
                let policies = policies.clone();
                let previous_revert = previous_revert.clone();
                async move {
                    let p = get(&policies, "model-serving-production").await?;
                    Ok(s(&p, "/status/applications/0/gitRevert/phase") == "Pushed"
                        && s(&p, "/status/applications/0/gitRevert/commit") != previous_revert)
                }
            })
        );
        let (a, b) = (a?, b?);
        detect.push(fired.duration_since(bad_live));
        back.push(a.duration_since(fired));
        pushed.push(b.duration_since(fired));
        eprintln!(
            "round {round}: detect {:?}, back on the good revision {:?}, revert pushed {:?}",
            fired.duration_since(bad_live),
            a.duration_since(fired),
            b.duration_since(fired)
        );
        // Git renders the good revision again: automated sync resumes; the revert commit
        // is the next round's good revision.
        let revert = git(dir, &["rev-parse", "main"])?;
        refresh(&apps).await?;
        until(120, "automated sync resumed", || {
            let apps = apps.clone();
            async move {
                let a = get(&apps, "model-serving-production").await?;
                Ok(s(&a, "/metadata/annotations/mooring.dev~1auto-sync-suspended").is_empty())
            }
        })
        .await?;
        good = revert;
        refresh(&apps).await?;
        until(120, "the revert commit deployed", || {
            let apps = apps.clone();
            let good = good.clone();
            async move {
                let a = get(&apps, "model-serving-production").await?;
                Ok(s(&a, "/status/sync/revision") == good
                    && s(&a, "/status/sync/status") == "Synced"
                    && s(&a, "/status/health/status") == "Healthy")
            }
        })
        .await?;
    }
    let show = |name: &str, v: &mut Vec<Duration>| {
        println!(
            "{name:<44} p50 {:>8.2?}  max {:>8.2?}",
            percentile(v, 0.5),
            percentile(v, 1.0)
        )
    };
    println!("rollback: {rounds} rounds (for: 5s, interval: 1s, scrape 1s, rate window 10s)");
    show("bad version Healthy -> rule fires", &mut detect);
    show("rule fires -> good revision Healthy (a)", &mut back);
    show("rule fires -> revert commit pushed (b)", &mut pushed);
    drop(controller);
    drop(prom);
    Ok(())
}
