//! `mooring bench dr`: the RTO of the example disaster-recovery plan
//! (`examples/ml-platform/dr`), measured by `--rounds` drills, broken down by step.
//!
//! In-process on loopback, as `mooring up --clusters 'us-west-2:…;eu-west-1:…'` runs it: a
//! management cluster and two embedded regions (each its own load-balancer range, so the
//! checks reach real listeners), the controller, the example repository as a local Git
//! repository served for its placeholder URL, Debian's BIND for the DNS record (`apt-get
//! install bind9 bind9-dnsutils`), and a real Prometheus when installed (else the plan's
//! PromQL check is left out, and the output says so). Each drill is the plan's own
//! (`failureMode: scale-to-zero`, `primaryDegradedFor: 10s`): inject, detect, fail over,
//! validate, restore, fail back, report; the figures are read from the report ConfigMaps.

use super::gitops::percentile;
use crate::up::git;
use anyhow::{bail, Context};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use mooring_k8s::kube;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const EXAMPLE: &str = "examples/ml-platform";
const REPO_URL: &str = "https://git.example.com/ml-platform/platform.git";
const PLAN: &str = "ml-platform";

fn region(name: &str, range: &str) -> anyhow::Result<mooring_apiserver::ClusterOptions> {
    Ok(mooring_apiserver::ClusterOptions {
        name: name.into(),
        sim: mooring_apiserver::sim::SimOptions {
            speed: 20.0,
            ..Default::default()
        },
        ..Default::default()
    }
    .with_load_balancer_range(range)?)
}

/// Poll `f` every 50 ms until it yields, for at most `secs`.
pub(super) async fn until<T, F, Fut>(secs: u64, what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let t = Instant::now();
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        if t.elapsed() > Duration::from_secs(secs) {
            bail!("timed out after {secs}s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(super) fn docs(path: &Path) -> anyhow::Result<Vec<Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(mooring_core::yaml::parse_all(&text)?)
}

pub async fn run(rounds: usize) -> anyhow::Result<()> {
    let example = Path::new(EXAMPLE);
    if !example.join("dr/plan.yaml").exists() {
        bail!("run `mooring bench dr` from the repository's root (it reads {EXAMPLE}/dr)");
    }
    if !mooring_controller::dr::local_dns::LocalBind::available("mooring bench dr") {
        bail!("BIND is needed for the plan's DNS record: apt-get install bind9 bind9-dnsutils");
    }
    let data = tempfile::tempdir()?;
    let repo = data.path().join("platform");
    std::fs::create_dir_all(&repo)?;
    crate::up::copy_tree(example, &repo, data.path())?;
    git(&repo, &["init", "-q", "-b", "main"])?;
    git(&repo, &["add", "-A"])?;
    git(&repo, &["commit", "-q", "-m", "the example platform"])?;

    let mgmt = mooring_apiserver::Cluster::start(mooring_apiserver::ClusterOptions {
        sim: mooring_apiserver::sim::SimOptions {
            speed: 20.0,
            ..Default::default()
        },
        crds: mooring_k8s::crds::all(),
        ..Default::default()
    })
    .await?;
    let (primary_range, standby_range) = ("127.0.180.0/24", "127.0.181.0/24");
    let primary = mooring_apiserver::Cluster::start(region("us-west-2", primary_range)?).await?;
    let standby = mooring_apiserver::Cluster::start(region("eu-west-1", standby_range)?).await?;
    let client = mooring_k8s::client_from_kubeconfig(mgmt.kubeconfig_path()).await?;
    let prom = mooring_controller::prometheus::LocalPrometheus::start(
        mooring_controller::prometheus::LocalPrometheusOptions {
            binary: None,
            data_dir: data.path().join("prometheus"),
            listen: None,
            scrape_interval: Duration::from_secs(2),
            clusters: [&mgmt, &primary, &standby]
                .iter()
                .map(|c| mooring_controller::prometheus::ScrapeCluster {
                    url: c.url(),
                    token_file: c.token_path(),
                    ca_file: Some(c.ca_path()),
                })
                .collect(),
        },
    )
    .await;
    let bind = mooring_controller::dr::local_dns::LocalBind::start("ml.example.com", None, &[])?;
    let controller = mooring_controller::Controller::start(
        client.clone(),
        mooring_controller::ControllerOptions {
            cache_dir: data.path().join("repos"),
            operation_poll: Duration::from_millis(50),
            prometheus_address: prom.as_ref().ok().map(|p| p.url()),
            repo_aliases: vec![(REPO_URL.into(), format!("file://{}", repo.display()))],
            ..Default::default()
        },
    )
    .await?;
    let ns = mooring_core::app::CONTROL_PLANE_NAMESPACE;
    for (name, c) in [("us-west-2", &primary), ("eu-west-1", &standby)] {
        crate::cluster::register(
            &client,
            ns,
            &mooring_k8s::registry::ClusterEntry {
                project: String::new(),
                name: name.into(),
                server: c.url(),
                config: c.client_config(),
                labels: [("region".to_string(), name.to_string())].into(),
                annotations: Default::default(),
            },
        )
        .await?;
    }
    // What an admin applies: the TSIG key, the outbound allowlist, the project, the
    // region apps, the plan (its name server is this BIND).
    let key = bind.key("hmac-sha256");
    let secrets: Api<mooring_k8s::k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), ns);
    secrets
        .patch(
            "dr-dns-tsig",
            &PatchParams::apply("bench"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "dr-dns-tsig", "namespace": ns},
                "stringData": {"secret": key.secret}})),
        )
        .await?;
    let cms: Api<mooring_k8s::k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), ns);
    let mut allow = vec![bind.server(), primary_range.into(), standby_range.into()];
    if let Ok(p) = &prom {
        allow.push(p.url().trim_start_matches("http://").to_string());
    }
    cms.patch(
        crate::connect::SETTINGS_CONFIGMAP,
        &PatchParams::apply("bench"),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": crate::connect::SETTINGS_CONFIGMAP, "namespace": ns},
            "data": {mooring_engine::outbound::CONFIG_KEY: allow.join("\n")}})),
    )
    .await?;
    let cp = mooring_engine::project::ControlPlane::default();
    let mut objects = docs(&example.join("projects/ml-platform.yaml"))?;
    objects.extend(docs(&example.join("dr/applications.yaml"))?);
    let mut plan = docs(&example.join("dr/plan.yaml"))?
        .into_iter()
        .next()
        .context("dr/plan.yaml is empty")?;
    let rfc = &mut plan["spec"]["activation"]["dns"]["provider"]["rfc2136"];
    rfc["server"] = json!(bind.server());
    rfc["tsig"]["keyName"] = json!(key.name);
    if prom.is_err() {
        if let Some(checks) = plan["spec"]["validation"]["checks"].as_array_mut() {
            checks.retain(|c| c.get("prometheus").is_none());
        }
    }
    objects.push(plan);
    for o in &objects {
        crate::registration::register(&client, &cp, o)
            .await
            .map_err(|e| anyhow::anyhow!("registering {}: {e}", o["metadata"]["name"]))?;
    }
    let plans: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &mooring_k8s::resources::disaster_recovery_plan_resource(),
    );
    let get_plan =
        || async { Ok::<Value, anyhow::Error>(serde_json::to_value(plans.get(PLAN).await?)?) };
    until(
        300,
        "the primary region serving and the plan watching it",
        || async {
            let p = get_plan().await?;
            let healthy = p["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "PrimaryHealthy" && c["status"] == "True")
            });
            Ok(healthy.then_some(()))
        },
    )
    .await?;
    println!(
        "mooring bench dr: {rounds} drills of the example plan (scale-to-zero, primaryDegradedFor 10s){}",
        if prom.is_ok() { "" } else { " — Prometheus not installed: its check left out" }
    );
    let mut rtos = Vec::new();
    let mut steps: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut passed = 0;
    for round in 1..=rounds {
        let incident = format!("bench-{round}");
        plans
            .patch_status(
                PLAN,
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"status": {"request": {"kind": "Drill", "incident": incident,
                    "requestedAt": mooring_core::time::now_rfc3339(), "requestedBy": "bench"}}}),
                ),
            )
            .await?;
        let last = until(600, &format!("drill {incident}"), || async {
            let p = get_plan().await?;
            Ok((p["status"]["lastDrill"]["incident"] == incident.as_str())
                .then(|| p["status"]["lastDrill"].clone()))
        })
        .await?;
        let cm_name = last["report"].as_str().context("the drill has no report")?;
        let cm = cms.get(cm_name).await?;
        let report: Value = serde_json::from_str(
            cm.data
                .as_ref()
                .and_then(|d| d.get(mooring_engine::dr::report::REPORT_JSON_KEY))
                .context("report.json missing")?,
        )?;
        let rto = report["rtoSeconds"].as_f64().unwrap_or(f64::NAN);
        if report["passed"] == true {
            passed += 1;
        }
        rtos.push(rto);
        for s in report["steps"].as_array().into_iter().flatten() {
            if let (Some(n), Some(secs)) = (s["name"].as_str(), s["seconds"].as_f64()) {
                steps.entry(n.to_string()).or_default().push(secs);
            }
        }
        println!(
            "  drill {round:>2}: RTO {rto:6.2} s  passed {}",
            report["passed"]
        );
    }
    let p50 = |v: &[f64]| {
        let mut d: Vec<Duration> = v
            .iter()
            .filter(|x| x.is_finite())
            .map(|x| Duration::from_secs_f64(x.max(0.0)))
            .collect();
        if d.is_empty() {
            f64::NAN
        } else {
            percentile(&mut d, 0.5).as_secs_f64()
        }
    };
    let mut sorted = rtos.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "RTO over {rounds} drills: min {:.2} s, p50 {:.2} s, max {:.2} s (spread {:.2} s); {passed}/{rounds} passed; objective 15m, goal < 30 s",
        sorted.first().copied().unwrap_or(f64::NAN),
        p50(&sorted),
        sorted.last().copied().unwrap_or(f64::NAN),
        sorted.last().copied().unwrap_or(f64::NAN) - sorted.first().copied().unwrap_or(f64::NAN),
    );
    println!("by step (p50 / max seconds):");
    for (name, mut v) in steps {
        v.sort_by(f64::total_cmp);
        println!(
            "  {name:32} {:6.2} / {:6.2}",
            p50(&v),
            v.last().copied().unwrap_or(f64::NAN)
        );
    }
    drop(controller);
    drop(bind);
    Ok(())
}
