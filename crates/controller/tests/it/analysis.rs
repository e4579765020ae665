//! Analysis against real parts: the embedded cluster's simulated pod metrics scraped by a
//! real Prometheus (the Debian `prometheus` binary), AnalysisRuns measured by the
//! analysis controller.

use crate::support::eventually;
use mooring_apiserver::{sim::SimOptions, Cluster, ClusterOptions};
use mooring_controller::prometheus::{
    LocalPrometheus, LocalPrometheusOptions, PromClient, PromValue,
};
use mooring_k8s::kube;
use mooring_k8s::kube::api::{Api, DynamicObject, PostParams};
use mooring_k8s::kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};
use std::time::Duration;

pub fn dynamic_api(
    client: &kube::Client,
    ns: &str,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural),
    )
}

pub async fn create(api: &Api<DynamicObject>, obj: Value) {
    let o: DynamicObject = serde_json::from_value(obj).expect("object");
    api.create(&PostParams::default(), &o)
        .await
        .expect("create");
}

pub fn deployment(name: &str, error_rate: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name},
                "annotations": {"sim.mooring.dev/error-rate": error_rate, "sim.mooring.dev/request-rate": "50"}},
                "spec": {"containers": [{"name": "serve", "image": "registry.local/serve:1"}]}}}
    })
}

pub async fn start_prometheus(cluster: &Cluster, dir: &std::path::Path) -> LocalPrometheus {
    LocalPrometheus::start(LocalPrometheusOptions {
        binary: None,
        data_dir: dir.to_path_buf(),
        listen: None,
        scrape_interval: Duration::from_secs(1),
        clusters: vec![mooring_controller::prometheus::ScrapeCluster {
            url: cluster.url(),
            token_file: cluster.token_path(),
            ca_file: Some(cluster.ca_path()),
        }],
    })
    .await
    .expect("prometheus starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_prometheus_scrapes_the_simulated_error_rate() {
    let cluster = Cluster::start(ClusterOptions {
        sim: SimOptions {
            speed: 20.0,
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("cluster");
    let client = mooring_k8s::client_from_kubeconfig(cluster.kubeconfig_path())
        .await
        .expect("client");
    let deploys = dynamic_api(
        &client,
        "default",
        "apps",
        "v1",
        "Deployment",
        "deployments",
    );
    create(&deploys, deployment("model", "0.2")).await;
    let dir = tempfile::tempdir().expect("tmp");
    let prom = start_prometheus(&cluster, dir.path()).await;
    let pc = PromClient::new(&format!("{}/", prom.url())).expect("client");
    let q =
        r#"sum(rate(http_requests_total{code=~"5.."}[10s])) / sum(rate(http_requests_total[10s]))"#;
    let rate = eventually(90, "an error rate near 0.2", || async {
        match pc.query(q, Duration::from_secs(5)).await {
            Ok(PromValue::Vector(v)) if v.len() == 1 && (v[0].value - 0.2).abs() < 0.05 => {
                Some(v[0].value)
            }
            _ => None,
        }
    })
    .await;
    assert!((rate - 0.2).abs() < 0.05);

    // A bad query keeps Prometheus' own error text.
    let e = pc
        .query("sum(rate(", Duration::from_secs(5))
        .await
        .expect_err("parse error");
    assert!(e.to_string().contains("bad_data"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_prometheus_binary_says_how_to_install_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let e = LocalPrometheus::start(LocalPrometheusOptions {
        binary: Some(dir.path().join("no-such-prometheus")),
        data_dir: dir.path().join("data"),
        listen: None,
        scrape_interval: Duration::from_secs(1),
        clusters: vec![],
    })
    .await
    .expect_err("missing binary");
    assert!(e.to_string().contains("apt-get install prometheus"), "{e}");

    // Nobody listens on a port we just freed: the client reports the address.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let pc = PromClient::new(&format!("http://127.0.0.1:{port}")).expect("client");
    let e = pc
        .query("up", Duration::from_secs(2))
        .await
        .expect_err("unreachable");
    assert!(e.to_string().contains("unreachable"), "{e}");
}

// ---------------------------------------------------------------------------------------
// The AnalysisRun controller.

use crate::support::allow_outbound;
use mooring_controller::analysis::{self, AnalysisOptions};
use mooring_controller::outbound::Outbound;
use mooring_k8s::cluster::ClusterClient;
use mooring_k8s::kube::api::{Patch, PatchParams};

/// An AnalysisRun CRD with a status subresource, as the rollout CRDs have.
fn analysis_run_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "analysisruns.argoproj.io"},
        "spec": {"group": "argoproj.io", "scope": "Namespaced",
            "names": {"kind": "AnalysisRun", "listKind": "AnalysisRunList", "plural": "analysisruns", "singular": "analysisrun"},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    })
}

struct Env {
    _cluster: Cluster,
    client: kube::Client,
    outbound: Outbound,
    _tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The analysis controller's outbound client, following `mooring-cm` in `argocd` where
/// the admin allows the test servers on 127.0.0.1 (refused by default).
async fn outbound_allowing_loopback(
    client: &kube::Client,
) -> (Outbound, tokio::task::JoinHandle<()>) {
    let outbound = Outbound::new("argocd");
    let watch = outbound.watch_config(client.clone());
    allow_outbound(client, &outbound, "127.0.0.1").await;
    (outbound, watch)
}

impl Drop for Env {
    fn drop(&mut self) {
        for t in &self._tasks {
            t.abort();
        }
    }
}

async fn env(default_prometheus: Option<String>) -> Env {
    let cluster = Cluster::start(ClusterOptions {
        sim: SimOptions {
            speed: 20.0,
            ..Default::default()
        },
        crds: vec![analysis_run_crd()],
        ..Default::default()
    })
    .await
    .expect("cluster");
    let client = mooring_k8s::client_from_kubeconfig(cluster.kubeconfig_path())
        .await
        .expect("client");
    let (outbound, watch) = outbound_allowing_loopback(&client).await;
    let mut tasks = analysis::start(
        ClusterClient::new("test", client.clone()),
        AnalysisOptions {
            default_prometheus,
            outbound: outbound.clone(),
        },
    );
    tasks.push(watch);
    Env {
        _cluster: cluster,
        client,
        outbound,
        _tasks: tasks,
    }
}

fn runs(client: &kube::Client) -> Api<DynamicObject> {
    dynamic_api(
        client,
        "default",
        "argoproj.io",
        "v1alpha1",
        "AnalysisRun",
        "analysisruns",
    )
}

async fn create_run(client: &kube::Client, name: &str, spec: Value) {
    create(
        &runs(client),
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
               "metadata": {"name": name, "namespace": "default"}, "spec": spec}),
    )
    .await;
}

/// Wait for the run to complete; returns its status.
async fn finished(client: &kube::Client, name: &str) -> Value {
    let api = runs(client);
    eventually(90, &format!("AnalysisRun {name} to complete"), || {
        let api = api.clone();
        async move {
            let o = api.get(name).await.ok()?;
            let st = o.data.get("status")?.clone();
            matches!(
                st.get("phase").and_then(Value::as_str),
                Some("Successful" | "Failed" | "Error" | "Inconclusive")
            )
            .then_some(st)
        }
    })
    .await
}

fn prom_metric(name: &str, query: &str, extra: Value) -> Value {
    let mut m = json!({"name": name, "provider": {"prometheus": {"query": query}}});
    if let (Some(o), Some(e)) = (m.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    m
}

const ERROR_RATE: &str = r#"sum(rate(http_requests_total{code=~"5..",app="model"}[10s])) / sum(rate(http_requests_total{app="model"}[10s]))"#;

fn phase(st: &Value) -> &str {
    st.get("phase").and_then(Value::as_str).unwrap_or_default()
}

fn message(st: &Value) -> &str {
    st.get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_analysis_runs_are_judged_like_argo() {
    let dir = tempfile::tempdir().expect("tmp");
    // The cluster first (Prometheus needs its URL), then the controller with Prometheus
    // as the default address.
    let cluster = Cluster::start(ClusterOptions {
        sim: SimOptions {
            speed: 20.0,
            ..Default::default()
        },
        crds: vec![analysis_run_crd()],
        ..Default::default()
    })
    .await
    .expect("cluster");
    let prom = start_prometheus(&cluster, dir.path()).await;
    let client = mooring_k8s::client_from_kubeconfig(cluster.kubeconfig_path())
        .await
        .expect("client");
    // The "unreachable" case names a user address on 127.0.0.1: the admin allows it.
    let (outbound, _watch) = outbound_allowing_loopback(&client).await;
    let _tasks = analysis::start(
        ClusterClient::new("test", client.clone()),
        AnalysisOptions {
            default_prometheus: Some(prom.url()),
            outbound,
        },
    );
    let deploys = dynamic_api(
        &client,
        "default",
        "apps",
        "v1",
        "Deployment",
        "deployments",
    );
    create(&deploys, deployment("model", "0.2")).await;
    let pc = PromClient::new(&prom.url()).expect("client");
    eventually(90, "the error rate is scraped", || async {
        match pc.query(ERROR_RATE, Duration::from_secs(5)).await {
            Ok(PromValue::Vector(v)) if v.len() == 1 && (v[0].value - 0.2).abs() < 0.05 => Some(()),
            _ => None,
        }
    })
    .await;
    let secrets = dynamic_api(&client, "default", "", "v1", "Secret", "secrets");
    create(
        &secrets,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "prom-token", "namespace": "default"},
               "data": {"token": "czNjcjN0LXQwa2Vu"}}), // s3cr3t-t0ken
    )
    .await;

    let cases: Vec<(&str, Value)> = vec![
        (
            "success",
            json!({"metrics": [prom_metric("error-rate", ERROR_RATE,
            json!({"interval": "1s", "count": 3, "successCondition": "result[0] < 0.5"}))]}),
        ),
        (
            "failure",
            json!({"metrics": [prom_metric("error-rate", ERROR_RATE,
            json!({"interval": "1s", "count": 3, "failureLimit": 1, "successCondition": "result[0] < 0.05"}))]}),
        ),
        (
            "empty",
            json!({"metrics": [prom_metric("nothing", "sum(rate(http_requests_total{app=\"nobody\"}[10s]))",
            json!({"interval": "1s", "consecutiveErrorLimit": 1, "successCondition": "result[0] < 0.05"}))]}),
        ),
        (
            "empty-ok",
            json!({"metrics": [prom_metric("nothing", "sum(rate(http_requests_total{app=\"nobody\"}[10s]))",
            json!({"successCondition": "len(result) == 0"}))]}),
        ),
        (
            "nan",
            json!({"metrics": [prom_metric("nan", "scalar(vector(0) / vector(0))",
            json!({"successCondition": "isNaN(result)"}))]}),
        ),
        (
            "not-bool",
            json!({"metrics": [prom_metric("bad", ERROR_RATE,
            json!({"consecutiveErrorLimit": 0, "successCondition": "result[0] + 1"}))]}),
        ),
        (
            "dry-run",
            json!({
            "dryRun": [{"metricName": "strict"}],
            "metrics": [
                prom_metric("lenient", ERROR_RATE, json!({"successCondition": "result[0] < 0.5"})),
                prom_metric("strict", ERROR_RATE, json!({"successCondition": "result[0] < 0.01"})),
            ]}),
        ),
        (
            "unreachable",
            json!({"metrics": [{"name": "down", "interval": "1s", "consecutiveErrorLimit": 2,
            "successCondition": "result[0] < 0.5",
            "provider": {"prometheus": {"address": "http://127.0.0.1:1", "query": "up"}}}]}),
        ),
        (
            "secret",
            json!({
            "args": [{"name": "token", "valueFrom": {"secretKeyRef": {"name": "prom-token", "key": "token"}}}],
            "metrics": [{"name": "down", "interval": "1s", "consecutiveErrorLimit": 0,
                "provider": {"prometheus": {"address": "http://127.0.0.1:1/{{args.token}}/", "query": "up{t=\"{{args.token}}\"}"}}}]}),
        ),
        (
            "missing-secret",
            json!({
            "args": [{"name": "token", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "token"}}}],
            "metrics": [prom_metric("m", "up", json!({}))]}),
        ),
        (
            "unresolved-count",
            json!({"metrics": [prom_metric("m", "up", json!({"interval": "1s", "count": "{{args.n}}"}))]}),
        ),
    ];
    for (name, spec) in &cases {
        create_run(&client, name, spec.clone()).await;
    }
    let mut got = std::collections::BTreeMap::new();
    for (name, _) in &cases {
        got.insert(*name, finished(&client, name).await);
    }

    let st = &got["success"];
    assert_eq!(phase(st), "Successful", "{st}");
    let r = &st["metricResults"][0];
    assert_eq!(r["count"], 3);
    let v = r["measurements"][0]["value"].as_str().expect("value");
    assert!(v.starts_with("[0.") && v.ends_with(']'), "{v}");
    assert_eq!(st["runSummary"]["successful"], 1);

    let st = &got["failure"];
    assert_eq!(phase(st), "Failed", "{st}");
    assert_eq!(
        message(st),
        "Metric \"error-rate\" assessed Failed due to failed (2) > failureLimit (1)"
    );

    let st = &got["empty"];
    assert_eq!(phase(st), "Error", "{st}");
    assert!(
        message(st).contains("consecutiveErrors (2) > consecutiveErrorLimit (1)"),
        "{st}"
    );
    assert_eq!(st["metricResults"][0]["measurements"][0]["value"], "[]");
    assert_eq!(phase(&got["empty-ok"]), "Successful", "{}", got["empty-ok"]);

    let st = &got["nan"];
    assert_eq!(phase(st), "Successful", "{st}");
    assert_eq!(st["metricResults"][0]["measurements"][0]["value"], "NaN");

    let st = &got["not-bool"];
    assert_eq!(phase(st), "Error", "{st}");
    assert!(message(st).contains("not a boolean"), "{st}");

    let st = &got["dry-run"];
    assert_eq!(phase(st), "Successful", "{st}");
    assert_eq!(st["dryRunSummary"]["failed"], 1, "{st}");
    assert_eq!(st["runSummary"]["count"], 1, "{st}");

    let st = &got["unreachable"];
    assert_eq!(phase(st), "Error", "{st}");
    assert_eq!(st["metricResults"][0]["consecutiveError"], 3, "{st}");
    assert!(message(st).contains("unreachable"), "{st}");

    let st = &got["secret"];
    assert_eq!(phase(st), "Error", "{st}");
    let text = st.to_string();
    assert!(!text.contains("s3cr3t"), "the secret leaked: {text}");
    assert!(text.contains("*****"), "{text}");
    // Nowhere in the object, spec included (the spec only has the reference).
    let whole = runs(&client).get("secret").await.expect("run");
    assert!(!serde_json::to_string(&whole)
        .expect("json")
        .contains("s3cr3t"));

    let st = &got["missing-secret"];
    assert_eq!(phase(st), "Error", "{st}");
    assert!(message(st).contains("\"nope\" not found"), "{st}");
    assert!(
        st.get("metricResults").is_none_or(Value::is_null),
        "nothing measured: {st}"
    );

    let st = &got["unresolved-count"];
    assert_eq!(phase(st), "Error", "{st}");
    assert!(message(st).contains("args.n"), "{st}");
    drop(prom);
}

/// A tiny HTTP server answering every request with `status` and `body`.
async fn http_server(status: u16, body: &'static str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = s.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}")
}

fn web_metric(name: &str, url: &str, extra: Value) -> Value {
    let mut m = json!({"name": name, "provider": {"web": {"url": url, "jsonPath": "{$.data.ok}"}}});
    if let (Some(o), Some(e)) = (m.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_and_job_metrics_and_terminate() {
    let e = env(None).await;
    let ok = http_server(200, r#"{"data": {"ok": true, "score": 0.97}}"#).await;
    let broken = http_server(503, "unavailable").await;
    let big: &'static str =
        Box::leak(format!("[{}0]", "0,".repeat(3 * 1024 * 1024)).into_boxed_str());
    let huge = http_server(200, big).await;
    let job = |fail: bool| {
        json!({"job": {"metadata": {"labels": {"team": "ml"}}, "spec": {"backoffLimit": 0, "template": {
            "metadata": {"annotations": if fail { json!({"sim.mooring.dev/fail": "job"}) } else { json!({}) }},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "smoke", "image": "registry.local/smoke:1"}]}}}}})
    };
    let cases: Vec<(&str, Value)> = vec![
        (
            "web-ok",
            json!({"metrics": [web_metric("ok", &ok, json!({"successCondition": "result == true"}))]}),
        ),
        (
            "web-score",
            json!({"metrics": [{"name": "score", "successCondition": "result >= 0.95",
            "provider": {"web": {"url": ok, "jsonPath": "{$.data.score}", "headers": [{"key": "X-Test", "value": "1"}]}}}]}),
        ),
        (
            "web-503",
            json!({"metrics": [web_metric("down", &broken, json!({"consecutiveErrorLimit": 0}))]}),
        ),
        (
            "job-ok",
            json!({"metrics": [{"name": "smoke", "provider": job(false)}]}),
        ),
        (
            "job-fail",
            json!({"metrics": [{"name": "smoke", "provider": job(true)}]}),
        ),
        (
            "forever",
            json!({"metrics": [web_metric("ok", &ok, json!({"interval": "1s", "successCondition": "result"}))]}),
        ),
        (
            "unsupported",
            json!({"metrics": [{"name": "dd", "provider": {"datadog": {"query": "avg:x"}}}]}),
        ),
        // Hostile or malformed input: a clear Error, nothing measured half-way.
        ("malformed", json!({"metrics": "not a list"})),
        (
            "huge-body",
            json!({"metrics": [web_metric("big", &huge, json!({"consecutiveErrorLimit": 0}))]}),
        ),
        (
            "file-url",
            json!({"metrics": [web_metric("f", "file:///etc/passwd", json!({"consecutiveErrorLimit": 0}))]}),
        ),
        (
            "long-condition",
            json!({"metrics": [web_metric("ok", &ok, json!({"consecutiveErrorLimit": 0,
            "successCondition": format!("result == true{}", " && true".repeat(1000))}))]}),
        ),
    ];
    for (name, spec) in &cases {
        create_run(&e.client, name, spec.clone()).await;
    }

    let st = finished(&e.client, "web-ok").await;
    assert_eq!(phase(&st), "Successful", "{st}");
    assert_eq!(st["metricResults"][0]["measurements"][0]["value"], "true");
    let st = finished(&e.client, "web-score").await;
    assert_eq!(phase(&st), "Successful", "{st}");
    let st = finished(&e.client, "web-503").await;
    assert_eq!(phase(&st), "Error", "{st}");
    assert!(message(&st).contains("503"), "{st}");

    let st = finished(&e.client, "job-ok").await;
    assert_eq!(phase(&st), "Successful", "{st}");
    let m = &st["metricResults"][0]["measurements"][0];
    let job_name = m["metadata"]["job-name"].as_str().expect("job name");
    assert_eq!(job_name, "job-ok.smoke.1");
    let jobs = dynamic_api(&e.client, "default", "batch", "v1", "Job", "jobs");
    let j = jobs.get(job_name).await.expect("job");
    assert_eq!(
        j.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("team"))
            .map(String::as_str),
        Some("ml")
    );
    let owner = &j.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("AnalysisRun", "job-ok")
    );
    let st = finished(&e.client, "job-fail").await;
    assert_eq!(phase(&st), "Failed", "{st}");

    let st = finished(&e.client, "unsupported").await;
    assert_eq!(phase(&st), "Error", "{st}");
    assert!(message(&st).contains("datadog"), "{st}");
    let st = finished(&e.client, "malformed").await;
    assert_eq!(phase(&st), "Error", "{st}");
    assert!(message(&st).contains("invalid spec"), "{st}");
    for (run, want) in [
        ("huge-body", "larger than"),
        ("file-url", "not http or https"),
        ("long-condition", "limit is 4096"),
    ] {
        let st = finished(&e.client, run).await;
        assert_eq!(phase(&st), "Error", "{run}: {st}");
        assert!(message(&st).contains(want), "{run}: {st}");
    }

    // An indefinite metric runs until terminated, then the run is Successful.
    let api = runs(&e.client);
    eventually(60, "a few measurements of the indefinite run", || {
        let api = api.clone();
        async move {
            let o = api.get("forever").await.ok()?;
            (o.data.pointer("/status/metricResults/0/count")?.as_i64()? >= 2).then_some(())
        }
    })
    .await;
    assert_eq!(
        api.get("forever").await.expect("run").data["status"]["phase"],
        "Running"
    );
    api.patch(
        "forever",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"terminate": true}})),
    )
    .await
    .expect("terminate");
    let st = finished(&e.client, "forever").await;
    assert_eq!(phase(&st), "Successful", "{st}");
    assert_eq!(message(&st), "Run Terminated");
    drop(e);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_controller_resumes_runs_from_their_status() {
    let mut e = env(None).await;
    let ok = http_server(200, r#"{"data": {"ok": true}}"#).await;
    create_run(
        &e.client,
        "web",
        json!({"metrics": [web_metric("ok", &ok, json!({"interval": "1s", "count": 4, "successCondition": "result"}))]}),
    )
    .await;
    // A Job that runs long enough (40 s / speed 20) to be in flight during the restart.
    create_run(
        &e.client,
        "job",
        json!({"metrics": [{"name": "smoke", "provider": {"job": {"spec": {"backoffLimit": 0, "template": {
            "metadata": {"annotations": {"sim.mooring.dev/run-seconds": "40"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "smoke", "image": "registry.local/smoke:1"}]}}}}}}]}),
    )
    .await;
    let api = runs(&e.client);
    eventually(60, "one web measurement and a running job", || {
        let api = api.clone();
        async move {
            let w = api.get("web").await.ok()?;
            let j = api.get("job").await.ok()?;
            let running = j
                .data
                .pointer("/status/metricResults/0/measurements/0/phase")?
                == "Running";
            (w.data.pointer("/status/metricResults/0/count")?.as_i64()? >= 1 && running)
                .then_some(())
        }
    })
    .await;
    // Kill the controller and start another one.
    for t in e._tasks.drain(..) {
        t.abort();
    }
    e._tasks = analysis::start(
        ClusterClient::new("test", e.client.clone()),
        AnalysisOptions {
            outbound: e.outbound.clone(),
            ..Default::default()
        },
    );
    let st = finished(&e.client, "web").await;
    assert_eq!(phase(&st), "Successful", "{st}");
    assert_eq!(st["metricResults"][0]["count"], 4, "{st}");
    let st = finished(&e.client, "job").await;
    assert_eq!(phase(&st), "Successful", "{st}");
    assert_eq!(st["metricResults"][0]["count"], 1, "{st}");
    // The in-flight Job was picked up, not created again.
    let jobs = dynamic_api(&e.client, "default", "batch", "v1", "Job", "jobs");
    let all = jobs.list(&Default::default()).await.expect("jobs");
    assert_eq!(
        all.items.len(),
        1,
        "{:?}",
        all.items
            .iter()
            .map(|j| j.metadata.name.clone())
            .collect::<Vec<_>>()
    );
}
