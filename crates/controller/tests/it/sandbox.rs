//! Runaway user code inside the controller (issue 12, findings 5 and 9): a tenant's
//! `ignoreDifferences` jq expression that doubles a value until the process runs out of
//! memory, and a `health.lua` customization stuck inside a pathological pattern match.
//! Each is refused with a clear message within its limit, applies nothing, and the
//! controller keeps reconciling other applications meanwhile.

use crate::support::{env, eventually, field, Repo};
use mooring_k8s::kube::api::{Api, DynamicObject, PostParams};
use mooring_k8s::kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};

const CONFIG: &str = "apiVersion: v1
kind: ConfigMap
metadata: {name: model-config}
data: {threshold: \"0.9\"}
";

fn application(name: &str, repo: &str, path: &str, namespace: &str, extra: Value) -> Value {
    let mut app = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo, "targetRevision": "main", "path": path},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": namespace},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true}, "syncOptions": ["CreateNamespace=true"]},
        }
    });
    if let (Some(spec), Some(extra)) = (app["spec"].as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    app
}

fn apps(client: &mooring_k8s::kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::resources::application_resource(),
    )
}

fn config_maps(client: &mooring_k8s::kube::Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("", "v1", "ConfigMap"),
            "configmaps",
        ),
    )
}

async fn create(apps: &Api<DynamicObject>, app: Value) {
    let obj: DynamicObject = serde_json::from_value(app).expect("app");
    apps.create(&PostParams::default(), &obj)
        .await
        .expect("create app");
}

async fn status(apps: &Api<DynamicObject>, name: &str) -> Value {
    serde_json::to_value(apps.get(name).await.expect("app")).expect("json")
}

/// A line of /proc/self/status in bytes (`VmRSS`, `VmHWM`).
fn proc_status_bytes(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or_else(|| panic!("{key} in /proc/self/status"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jq_doubling_in_ignore_differences_is_refused_and_memory_stays_bounded() {
    let repo = Repo::new();
    repo.write("apps/tenant/config.yaml", CONFIG);
    repo.write("apps/other/config.yaml", CONFIG);
    repo.commit("two apps");
    let e = env().await;
    let apps = apps(&e.client);
    let rss_before = proc_status_bytes("VmRSS");

    // The attack: a tenant's ignoreDifferences entry that doubles a string 31 times
    // (2 GiB), and variants doubling arrays and shared objects.
    let doubling = r#".data[reduce range(31) as $i ("x"; . + .)]"#;
    let variants = [
        doubling,
        r#".data | select((reduce range(40) as $i (["x"]; . + .)) | length > 0) | .threshold"#,
        r#".data | select((reduce range(40) as $i ("x"; {a: ., b: .})) | tojson | length > 0) | .threshold"#,
    ];
    for (i, expr) in variants.iter().enumerate() {
        create(
            &apps,
            application(
                &format!("tenant-{i}"),
                &repo.url(),
                "apps/tenant",
                &format!("ml-tenant-{i}"),
                json!({"ignoreDifferences": [{"kind": "ConfigMap", "jqPathExpressions": [expr]}]}),
            ),
        )
        .await;
    }
    create(
        &apps,
        application("other", &repo.url(), "apps/other", "ml-other", json!({})),
    )
    .await;

    for (i, expr) in variants.iter().enumerate() {
        let name = format!("tenant-{i}");
        let a = eventually(60, &format!("{name}: ComparisonError"), || async {
            let a = status(&apps, &name).await;
            a["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["type"] == "ComparisonError"))
                .then_some(a)
        })
        .await;
        let msg = a["status"]["conditions"].to_string();
        let quoted = serde_json::to_string(&format!("{expr:?}")).expect("json");
        assert!(
            msg.contains(quoted.trim_matches('"')),
            "{name}: the condition names the expression: {msg}"
        );
        assert!(
            msg.contains("built values larger than")
                || msg.contains("text longer than")
                || msg.contains("ran longer than"),
            "{name}: the condition names the limit: {msg}"
        );
    }
    // The other application converges meanwhile.
    eventually(60, "other: Synced", || async {
        let a = status(&apps, "other").await;
        (field(&a, "/status/sync/status") == "Synced").then_some(())
    })
    .await;
    // Refused again at the next reconcile, still without growing the process.
    e.controller.ctx.refresh("argocd/tenant-0");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let a = status(&apps, "tenant-0").await;
    assert!(
        a["status"]["conditions"]
            .to_string()
            .contains("built values larger than"),
        "{a}"
    );
    for i in 0..variants.len() {
        assert!(
            config_maps(&e.client, &format!("ml-tenant-{i}"))
                .get_opt("model-config")
                .await
                .ok()
                .flatten()
                .is_none(),
            "nothing of tenant-{i} is applied"
        );
    }
    let peak = proc_status_bytes("VmHWM");
    assert!(
        peak.saturating_sub(rss_before) < 1 << 30,
        "the process grew by {} MiB (peak {} MiB, before {} MiB)",
        peak.saturating_sub(rss_before) >> 20,
        peak >> 20,
        rss_before >> 20
    );
}

const SERVICE_ACCOUNT: &str = "apiVersion: v1
kind: ServiceAccount
metadata: {name: model-runner}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stuck_lua_health_scripts_end_at_the_limit_and_the_controller_stays_responsive() {
    // The attack: health.lua customizations whose work is inside LuaJIT's C library,
    // where the instruction hook never runs: a pathological pattern over a long string
    // (refused before it runs), and a loop of allowed but slow pattern calls (stopped at
    // the time limit instead of running for tens of seconds).
    let health = tempfile::tempdir().expect("tmp");
    let write = |rel: &str, code: &str| {
        let p = health.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, code).expect("write");
    };
    write(
        "ConfigMap/health.lua",
        r#"local s = string.rep("a", 15000)
for i = 1, 1000 do string.find(s, ".-b") end
return {status = "Healthy"}
"#,
    );
    write(
        "ServiceAccount/health.lua",
        r#"local s = string.rep("a", 100000)
if string.find(s, ".-.-.-.-b") then return {status = "Degraded"} end
return {status = "Healthy"}
"#,
    );
    let repo = Repo::new();
    repo.write("apps/tenant/config.yaml", CONFIG);
    // More objects under the stuck check: each assessment waits up to the limit, and
    // other reconciles go on meanwhile.
    for i in 0..3 {
        repo.write(
            &format!("apps/tenant/config-{i}.yaml"),
            &CONFIG.replace("model-config", &format!("model-config-{i}")),
        );
    }
    repo.write("apps/tenant/sa.yaml", SERVICE_ACCOUNT);
    repo.write(
        "apps/other/deployment.yaml",
        "apiVersion: apps/v1
kind: Deployment
metadata: {name: model-server, labels: {app: model-server}}
spec:
  replicas: 1
  selector: {matchLabels: {app: model-server}}
  template:
    metadata: {labels: {app: model-server}}
    spec: {containers: [{name: server, image: registry.local/model:1.0}]}
",
    );
    repo.commit("apps");
    let cluster = mooring_apiserver::Cluster::start(mooring_apiserver::ClusterOptions {
        sim: mooring_apiserver::sim::SimOptions {
            speed: 20.0,
            ..Default::default()
        },
        crds: mooring_k8s::crds::all(),
        ..Default::default()
    })
    .await
    .expect("cluster");
    let health_dir = health.path().to_path_buf();
    let e =
        crate::support::controller_with(&cluster, move |o| o.health_dir = Some(health_dir)).await;
    let apps = apps(&e.client);
    create(
        &apps,
        application("tenant", &repo.url(), "apps/tenant", "ml-tenant", json!({})),
    )
    .await;
    create(
        &apps,
        application("other", &repo.url(), "apps/other", "ml-other", json!({})),
    )
    .await;

    let a = eventually(60, "tenant: both resources assessed", || async {
        let a = status(&apps, "tenant").await;
        let resources = a["status"]["resources"].as_array()?;
        let message = |kind: &str| {
            resources.iter().find(|r| r["kind"] == kind).map(|r| {
                r["health"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
        };
        let (cm, sa) = (message("ConfigMap")?, message("ServiceAccount")?);
        (cm.contains("time limit") && sa.contains("could take too long")).then_some(a)
    })
    .await;
    let resources = a["status"]["resources"].to_string();
    assert!(
        resources.contains("ConfigMap/health.lua: exceeded its time limit of 1s"),
        "the message names the script and the limit: {resources}"
    );
    assert!(
        resources.contains("ServiceAccount/health.lua")
            && resources.contains("string.find: pattern \\\".-.-.-.-b\\\""),
        "the message names the script and the pattern: {resources}"
    );
    for r in a["status"]["resources"].as_array().expect("resources") {
        assert_eq!(r["health"]["status"], "Unknown", "{r}");
    }
    // The controller stays responsive: the other app converges meanwhile.
    eventually(60, "other: Synced and Healthy", || async {
        let a = status(&apps, "other").await;
        (field(&a, "/status/sync/status") == "Synced"
            && field(&a, "/status/health/status") == "Healthy")
            .then_some(())
    })
    .await;
}
