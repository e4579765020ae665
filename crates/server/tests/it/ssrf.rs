//! Security finding 2 (server-side request forgery), end to end: a tenant's AnalysisRun
//! `web` metric and a RollbackPolicy's incident webhook aimed at the embedded API server,
//! Mooring's REST API, the cloud metadata address, a name resolving to loopback and a
//! redirect to a refused address. Everything runs as `mooring up` runs it: the embedded
//! cluster, the controller (analysis and RollbackPolicy loops), the REST API on
//! 127.0.0.1, a real Prometheus, and the admin's `outbound.allow` in `mooring-cm`
//! (namespace `argocd`), changed while everything runs.

use mooring_apiserver::{Cluster, ClusterOptions};
use mooring_controller::outbound::{MANAGEMENT_API, REST_API};
use mooring_controller::{Controller, ControllerOptions};
use mooring_k8s::k8s_openapi::api::core::v1::ConfigMap;
use mooring_k8s::kube;
use mooring_k8s::kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use mooring_testkit::eventually;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TENANT: &str = "team-a";

/// What a test server answers to `(method, path)`: status, extra headers, body.
type Route = Arc<dyn Fn(&str, &str) -> (u16, Vec<(String, String)>, String) + Send + Sync>;

/// A recording HTTP/1.1 server on 127.0.0.1: every request's `METHOD path` is kept.
struct Server {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Server {
    async fn start(route: Route) -> Server {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let s = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let s = s.clone();
                let route = route.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head = loop {
                        let Ok(n) = sock.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_string();
                        if let Some(end) = text.find("\r\n\r\n") {
                            break text[..end].to_string();
                        }
                    };
                    let mut words = head.split_whitespace();
                    let (method, path) = (
                        words.next().unwrap_or_default().to_string(),
                        words.next().unwrap_or_default().to_string(),
                    );
                    s.lock().expect("lock").push(format!("{method} {path}"));
                    let (code, headers, body) = route(&method, &path);
                    let mut reply = format!(
                        "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                        body.len()
                    );
                    for (k, v) in headers {
                        reply.push_str(&format!("{k}: {v}\r\n"));
                    }
                    reply.push_str("\r\n");
                    reply.push_str(&body);
                    let _ = sock.write_all(reply.as_bytes()).await;
                });
            }
        });
        Server { addr, seen }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("lock").clone()
    }
}

/// The parts `mooring up` runs, with the protected endpoints it registers.
struct World {
    cluster: Cluster,
    client: kube::Client,
    controller: Controller,
    rest_api: SocketAddr,
    _cache: tempfile::TempDir,
}

async fn world(prometheus: Option<String>) -> World {
    let cluster = Cluster::start(ClusterOptions {
        crds: mooring_k8s::crds::all(),
        namespaces: vec!["argocd".into(), TENANT.into()],
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
            prometheus_address: prometheus,
            outbound_protected: vec![(cluster.url(), MANAGEMENT_API.into())],
            ..Default::default()
        },
    )
    .await
    .expect("controller");
    // The token store the original attack read, and the REST API on 127.0.0.1.
    mooring_server::store::Store::new(client.clone(), "argocd")
        .ensure_admin_token()
        .await
        .expect("admin token");
    let router = mooring_server::api::router(client.clone(), Default::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let rest_api = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve")
    });
    controller
        .ctx
        .outbound
        .protect(&format!("http://{rest_api}"), REST_API);
    World {
        cluster,
        client,
        controller,
        rest_api,
        _cache: cache,
    }
}

impl World {
    /// The admin changes `outbound.allow` in `mooring-cm` (namespace `argocd`), as with
    /// `kubectl edit`; the running controller follows it (no restart).
    async fn allow(&self, value: &str) {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), "argocd");
        api.patch(
            "mooring-cm",
            &PatchParams::apply("admin").force(),
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "mooring-cm", "namespace": "argocd"},
                "data": {"outbound.allow": value},
            })),
        )
        .await
        .expect("mooring-cm");
        let outbound = self.controller.ctx.outbound.clone();
        eventually(30, "the new allowlist in force", || {
            let outbound = outbound.clone();
            async move { (outbound.allow_text().as_deref() == Some(value)).then_some(()) }
        })
        .await;
    }
}

/// The tenant creates an AnalysisRun in its namespace with one `web` metric.
async fn web_run(client: &kube::Client, name: &str, web: Value) {
    run_with(client, name, json!({"web": web})).await
}

/// The tenant creates an AnalysisRun in its namespace with one metric of `provider`.
async fn run_with(client: &kube::Client, name: &str, provider: Value) {
    let runs: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        TENANT,
        &mooring_k8s::resources::analysis_run_resource(),
    );
    let run = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
        "metadata": {"name": name, "namespace": TENANT},
        "spec": {"metrics": [{"name": "m", "consecutiveErrorLimit": 0,
            "successCondition": "result == true", "provider": provider}]},
    });
    runs.create(
        &PostParams::default(),
        &serde_json::from_value(run).expect("run"),
    )
    .await
    .expect("create run");
}

/// The finished run's status.
async fn finished(client: &kube::Client, name: &str) -> Value {
    let runs: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        TENANT,
        &mooring_k8s::resources::analysis_run_resource(),
    );
    eventually(60, &format!("AnalysisRun {name} to finish"), || {
        let runs = runs.clone();
        async move {
            let st = runs.get(name).await.ok()?.data.get("status")?.clone();
            matches!(
                st["phase"].as_str(),
                Some("Successful" | "Failed" | "Error" | "Inconclusive")
            )
            .then_some(st)
        }
    })
    .await
}

/// The run ended in Error, nothing was measured, and the measurement says `wanted`.
fn refused(st: &Value, wanted: &[&str]) {
    assert_eq!(st["phase"], "Error", "{st}");
    let m = &st["metricResults"][0]["measurements"][0];
    assert_eq!(m["phase"], "Error", "{st}");
    assert!(m.get("value").is_none(), "a value was read: {st}");
    let msg = m["message"].as_str().unwrap_or_default();
    for w in wanted {
        assert!(msg.contains(w), "`{w}` missing from: {msg}");
    }
    assert!(
        msg.contains("outbound.allow") && msg.contains("namespace argocd"),
        "the refusal says how the admin opens it: {msg}"
    );
}

fn ok_metric() -> Route {
    Arc::new(|_, path| match path {
        "/metric" => (200, vec![], r#"{"data": {"ok": true}}"#.into()),
        _ => (404, vec![], "{}".into()),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_web_metrics_cannot_reach_internal_addresses() {
    let w = world(None).await;
    let api = w.cluster.url();
    let rest = format!("http://{}", w.rest_api);
    let metric = Server::start(ok_metric()).await;
    // Another loopback service, never allowed: the redirects below aim at it.
    let trap = Server::start(ok_metric()).await;
    let trap_url = trap.url("/metric");
    let api_secrets = format!("{api}/api/v1/namespaces/argocd/secrets");
    let redirector = {
        let (trap_url, api_secrets) = (trap_url.clone(), api_secrets.clone());
        Server::start(Arc::new(move |_, path| {
            let to = match path {
                "/to-metadata" => {
                    "http://169.254.169.254/latest/meta-data/iam/security-credentials/"
                }
                "/to-loopback" => trap_url.as_str(),
                "/to-api" => api_secrets.as_str(),
                _ => return (404, vec![], "{}".into()),
            };
            (302, vec![("location".into(), to.into())], "{}".into())
        }))
        .await
    };

    // 1. Nothing allowed (the default): every internal address is refused.
    let attacks: Vec<(&str, Value, Vec<String>)> = vec![
        // (a) the embedded API server: read the token store, create an object.
        (
            "api-read",
            json!({"url": format!("{api}/api/v1/namespaces/argocd/secrets/mooring-secret"), "insecure": true, "jsonPath": "{$.data}"}),
            vec![format!(
                "{} is {MANAGEMENT_API}",
                api.split("://").nth(1).unwrap_or_default()
            )],
        ),
        (
            "api-create",
            json!({"url": format!("{api}/api/v1/namespaces/{TENANT}/configmaps"), "insecure": true, "method": "POST",
                   "jsonBody": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pwned"}}}),
            vec![MANAGEMENT_API.into()],
        ),
        // (b) Mooring's REST API token route.
        (
            "rest-token",
            json!({"url": format!("{rest}/api/v1/account/admin/token"), "method": "POST",
                   "headers": [{"key": "Authorization", "value": "Bearer guessed"}]}),
            vec![format!("{} is {REST_API}", w.rest_api)],
        ),
        // (c) the cloud metadata service.
        (
            "metadata",
            json!({"url": "http://169.254.169.254/latest/meta-data/iam/security-credentials/"}),
            vec!["169.254.169.254 is a link-local address".into()],
        ),
        // (d) a host name that resolves to loopback.
        (
            "localhost",
            json!({"url": format!("http://localhost:{}/metric", metric.addr.port())}),
            vec!["is a loopback address".into()],
        ),
        // Any other loopback port.
        (
            "loopback",
            json!({"url": metric.url("/metric")}),
            vec!["127.0.0.1 is a loopback address".into()],
        ),
    ];
    for (name, web, _) in &attacks {
        web_run(&w.client, name, web.clone()).await;
    }
    for (name, _, wanted) in &attacks {
        let st = finished(&w.client, name).await;
        let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
        refused(&st, &wanted);
    }
    assert!(metric.seen().is_empty(), "{:?}", metric.seen());
    // A Prometheus `address` in a tenant's metric is a user URL too (the controller's
    // own Prometheus is the only one trusted).
    for (name, address, wanted) in [
        ("prom-api", api.clone(), MANAGEMENT_API),
        (
            "prom-metadata",
            "http://169.254.169.254:9090".to_string(),
            "169.254.169.254 is a link-local address",
        ),
    ] {
        run_with(
            &w.client,
            name,
            json!({"prometheus": {"address": address, "query": "up"}}),
        )
        .await;
        refused(
            &finished(&w.client, name).await,
            &[wanted, "Prometheus query"],
        );
    }

    // 2. The admin allows the metric server's port (by IP and by name), no restart.
    let port = metric.addr.port();
    let redirector_port = redirector.addr.port();
    w.allow(&format!(
        "127.0.0.1:{port}, localhost:{port}\n127.0.0.1:{redirector_port}"
    ))
    .await;
    for (name, url) in [
        ("allowed-ip", metric.url("/metric")),
        ("allowed-name", format!("http://localhost:{port}/metric")),
    ] {
        web_run(
            &w.client,
            name,
            json!({"url": url, "jsonPath": "{$.data.ok}"}),
        )
        .await;
        let st = finished(&w.client, name).await;
        assert_eq!(st["phase"], "Successful", "{name}: {st}");
        assert_eq!(st["metricResults"][0]["measurements"][0]["value"], "true");
    }
    // (e) An allowed server redirecting to refused addresses: refused at the redirect.
    for (name, path, wanted) in [
        (
            "redirect-metadata",
            "/to-metadata",
            "169.254.169.254 is a link-local address",
        ),
        (
            "redirect-loopback",
            "/to-loopback",
            "127.0.0.1 is a loopback address",
        ),
        ("redirect-api", "/to-api", MANAGEMENT_API),
    ] {
        web_run(
            &w.client,
            name,
            json!({"url": redirector.url(path), "insecure": true}),
        )
        .await;
        let st = finished(&w.client, name).await;
        refused(&st, &[wanted, "redirect from"]);
    }
    assert!(
        trap.seen().is_empty(),
        "the redirect reached {:?}",
        trap.seen()
    );
    assert_eq!(redirector.seen().len(), 3, "{:?}", redirector.seen());

    // 3. Even all of loopback allowed does not open the API server or the REST API: only
    // an entry naming them with their port does.
    w.allow("127.0.0.0/8, localhost").await;
    web_run(
        &w.client,
        "api-again",
        json!({"url": format!("{api}/api/v1/namespaces/argocd/secrets/mooring-secret"), "insecure": true}),
    )
    .await;
    refused(&finished(&w.client, "api-again").await, &[MANAGEMENT_API]);
    web_run(
        &w.client,
        "rest-again",
        json!({"url": format!("{rest}/api/v1/account/admin/token"), "method": "POST"}),
    )
    .await;
    refused(&finished(&w.client, "rest-again").await, &[REST_API]);
    web_run(
        &w.client,
        "trap-now-allowed",
        json!({"url": trap_url, "jsonPath": "{$.data.ok}"}),
    )
    .await;
    assert_eq!(
        finished(&w.client, "trap-now-allowed").await["phase"],
        "Successful"
    );

    // 4. An allowlist with a bad entry is not used at all, and the refusal says why.
    w.allow("127.0.0.0/8, http://127.0.0.1:1/").await;
    web_run(&w.client, "bad-allowlist", json!({"url": trap_url})).await;
    refused(
        &finished(&w.client, "bad-allowlist").await,
        &[
            "127.0.0.1 is a loopback address",
            "the current value is not used: outbound.allow entry `http://127.0.0.1:1/`",
        ],
    );
    // 5. The admin deletes the ConfigMap: back to the default.
    w.allow("127.0.0.0/8").await;
    let cms: Api<ConfigMap> = Api::namespaced(w.client.clone(), "argocd");
    cms.delete("mooring-cm", &Default::default())
        .await
        .expect("delete mooring-cm");
    let outbound = w.controller.ctx.outbound.clone();
    eventually(30, "the allowlist gone", || {
        let outbound = outbound.clone();
        async move { outbound.allow_text().is_none().then_some(()) }
    })
    .await;
    web_run(&w.client, "after-delete", json!({"url": trap_url})).await;
    refused(
        &finished(&w.client, "after-delete").await,
        &["127.0.0.1 is a loopback address"],
    );
    assert_eq!(trap.seen().len(), 1, "{:?}", trap.seen());

    // Nothing was created through the API server.
    let cms: Api<ConfigMap> = Api::namespaced(w.client.clone(), TENANT);
    assert!(cms.get_opt("pwned").await.expect("get").is_none());
}

fn policies(client: &kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::resources::rollback_policy_resource(),
    )
}

/// The RollbackPolicy's conditions by type.
async fn condition(client: &kube::Client, name: &str, type_: &str) -> Option<Value> {
    let p = policies(client).get(name).await.ok()?;
    p.data
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incident_webhooks_cannot_reach_internal_addresses() {
    // The admin's Prometheus (trusted: it is the controller's own) answers `vector(1)`.
    let dir = tempfile::tempdir().expect("tmp");
    let prom = mooring_controller::prometheus::LocalPrometheus::start(
        mooring_controller::prometheus::LocalPrometheusOptions {
            binary: None,
            data_dir: dir.path().to_path_buf(),
            listen: None,
            scrape_interval: Duration::from_secs(1),
            clusters: vec![],
        },
    )
    .await
    .expect("prometheus (install the Debian package `prometheus`)");
    let w = world(Some(prom.url())).await;
    let api = w.cluster.url();
    // A guarded Application (its source need not exist: the policy only lists it).
    let apps: Api<DynamicObject> = Api::namespaced_with(
        w.client.clone(),
        "argocd",
        &mooring_k8s::resources::application_resource(),
    );
    apps.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "model", "namespace": "argocd"},
            "spec": {"project": "default",
                "source": {"repoURL": "https://git.invalid/ml.git", "targetRevision": "main", "path": "model"},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": "ml"}}
        }))
        .expect("app"),
    )
    .await
    .expect("create app");
    let hook = Server::start(Arc::new(|_, _| (200, vec![], "{}".into()))).await;
    let trap = Server::start(Arc::new(|_, _| (200, vec![], "{}".into()))).await;
    let redirector = {
        let to = trap.url("/incidents");
        Server::start(Arc::new(move |_, _| {
            (307, vec![("location".into(), to.clone())], "{}".into())
        }))
        .await
    };
    let policy = |name: &str, url: &str| {
        json!({
            "apiVersion": "mooring.dev/v1alpha1", "kind": "RollbackPolicy",
            "metadata": {"name": name, "namespace": "argocd"},
            "spec": {
                "applications": {"names": ["model"]},
                "interval": "1s",
                "incident": {"webhook": {"url": url}},
                "rules": [{"name": "always", "query": "vector(1)",
                    "threshold": {"operator": ">", "value": 0.5}, "for": "0s", "action": "notify"}],
            }
        })
    };
    let cases = [
        (
            "to-api",
            format!("{api}/api/v1/namespaces/argocd/configmaps"),
            MANAGEMENT_API.to_string(),
        ),
        (
            "to-rest",
            format!("http://{}/api/v1/account/admin/token", w.rest_api),
            REST_API.to_string(),
        ),
        (
            "to-metadata",
            "http://169.254.169.254/latest/meta-data/".to_string(),
            "169.254.169.254 is a link-local address".to_string(),
        ),
        (
            "to-localhost",
            format!("http://localhost:{}/incidents", hook.addr.port()),
            "is a loopback address".to_string(),
        ),
        (
            "to-hook",
            hook.url("/incidents"),
            "127.0.0.1 is a loopback address".to_string(),
        ),
    ];
    for (name, url, _) in &cases {
        policies(&w.client)
            .create(
                &PostParams::default(),
                &serde_json::from_value(policy(name, url)).expect("policy"),
            )
            .await
            .expect("create policy");
    }
    for (name, _, wanted) in &cases {
        let c = eventually(60, &format!("{name}: IncidentWebhookRefused"), || async {
            condition(&w.client, name, "IncidentWebhookRefused").await
        })
        .await;
        let msg = c["message"].as_str().unwrap_or_default();
        assert!(msg.contains(wanted.as_str()), "{name}: {msg}");
        assert!(msg.contains("outbound.allow"), "{name}: {msg}");
    }
    // The rules did fire (notify), and nothing was sent.
    eventually(60, "the rule fired", || async {
        let p = policies(&w.client).get("to-hook").await.ok()?;
        p.data
            .pointer("/status/rules/0/firedAt")?
            .as_str()
            .map(|_| ())
    })
    .await;
    assert!(hook.seen().is_empty(), "{:?}", hook.seen());

    // The admin allows the hook's port (and the redirector's), no restart: the condition
    // goes away and the next firing is delivered.
    w.allow(&format!(
        "127.0.0.1:{}, 127.0.0.1:{}",
        hook.addr.port(),
        redirector.addr.port()
    ))
    .await;
    eventually(60, "the condition cleared", || async {
        let p = policies(&w.client).get("to-hook").await.ok()?;
        (p.data.get("status").is_some()
            && condition(&w.client, "to-hook", "IncidentWebhookRefused")
                .await
                .is_none())
        .then_some(())
    })
    .await;
    // A new breach (the policy is recreated) sends the incident.
    policies(&w.client)
        .delete("to-hook", &Default::default())
        .await
        .expect("delete");
    eventually(30, "the old policy gone", || async {
        policies(&w.client)
            .get_opt("to-hook")
            .await
            .ok()
            .and_then(|p| p.is_none().then_some(()))
    })
    .await;
    for (name, url) in [
        ("to-hook", hook.url("/incidents")),
        ("to-redirect", redirector.url("/incidents")),
    ] {
        policies(&w.client)
            .create(
                &PostParams::default(),
                &serde_json::from_value(policy(name, &url)).expect("policy"),
            )
            .await
            .expect("create policy");
    }
    eventually(60, "the incident delivered", || async {
        (!hook.seen().is_empty()).then_some(())
    })
    .await;
    assert_eq!(hook.seen()[0], "POST /incidents");
    // (e) The allowed redirector sends the POST to another loopback port: refused.
    eventually(60, "the redirector called", || async {
        (!redirector.seen().is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        trap.seen().is_empty(),
        "the redirect reached {:?}",
        trap.seen()
    );
    // The API server, the REST API and the metadata address are still refused.
    for (name, _, wanted) in &cases[..3] {
        let c = condition(&w.client, name, "IncidentWebhookRefused")
            .await
            .unwrap_or_else(|| panic!("{name}: still refused"));
        assert!(c["message"]
            .as_str()
            .unwrap_or_default()
            .contains(wanted.as_str()));
    }
    drop(prom);
}
