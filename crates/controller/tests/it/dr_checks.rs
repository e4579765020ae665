//! A disaster-recovery plan's validation checks against the embedded cluster: the
//! standby's apps (synced from a real Git repository), HTTP and TCP through the
//! outbound client (loopback refused until the admin allows it), PromQL against the real
//! Prometheus, and the hostile checks (two kinds, a non-http URL, a missing Service, an
//! app not in the plan).

use crate::support::{allow_outbound, controller_for, eventually, field, Repo};
use mooring_controller::dr::checks;
use mooring_controller::prometheus::{LocalPrometheus, LocalPrometheusOptions};
use mooring_core::dr::{CheckResult, DisasterRecoveryPlan, ServiceRef};
use mooring_engine::dr::Side;
use mooring_k8s::kube::api::{Api, DynamicObject, PostParams};
use mooring_testkit::receiver::HttpReceiver;
use serde_json::json;
use std::time::Duration;

const INFERENCE: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: inference-server
  labels: {app: inference-server}
spec:
  replicas: 2
  selector: {matchLabels: {app: inference-server}}
  template:
    metadata: {labels: {app: inference-server}}
    spec:
      containers:
      - name: server
        image: registry.local/inference:1.0
        ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: inference-lb}
spec:
  type: LoadBalancer
  selector: {app: inference-server}
  ports: [{name: http, port: 80, targetPort: 8080}]
";

fn result<'a>(results: &'a [CheckResult], name: &str) -> &'a CheckResult {
    results
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no result {name} in {results:#?}"))
}

fn assert_check(results: &[CheckResult], name: &str, passed: bool, says: &str) {
    let r = result(results, name);
    assert_eq!(r.passed, passed, "{name}: {r:#?}");
    assert!(
        r.message.contains(says),
        "{name}: {:?} should say {says:?}",
        r.message
    );
    assert!(r.checked_at.is_some(), "{name} has checkedAt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_of_the_standby_side_pass_and_fail_with_their_reasons() {
    let repo = Repo::new();
    repo.write("apps/inference/inference.yaml", INFERENCE);
    repo.commit("inference");
    // Load-balancer addresses are real sockets: a range no other test process uses.
    let (_lease, range, _) = crate::dr::lease_ranges();
    let cluster = mooring_apiserver::Cluster::start(mooring_apiserver::ClusterOptions {
        sim: mooring_apiserver::sim::SimOptions {
            speed: 20.0,
            load_balancer: mooring_apiserver::sim::loadbalancer::LoadBalancerAddresses::Range(
                range.parse().expect("range"),
            ),
            ..Default::default()
        },
        crds: mooring_k8s::crds::all(),
        ..Default::default()
    })
    .await
    .expect("cluster");
    let mut e = controller_for(&cluster).await;
    // The standby region is the same embedded cluster, registered as `eu-west-1`.
    let client = mooring_k8s::client_from_kubeconfig(cluster.kubeconfig_path())
        .await
        .expect("client");
    e.controller
        .add_cluster("eu-west-1", "https://eu-west-1.example.com:6443", client)
        .await
        .expect("register eu-west-1");
    let apps: Api<DynamicObject> = Api::namespaced_with(
        e.client.clone(),
        "argocd",
        &mooring_k8s::resources::application_resource(),
    );
    let app: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "inference-dr", "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo.url(), "targetRevision": "main", "path": "apps/inference"},
            "destination": {"name": "eu-west-1", "namespace": "ml-serving"},
            "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]},
        }
    }))
    .expect("app");
    apps.create(&PostParams::default(), &app)
        .await
        .expect("create app");
    eventually(90, "inference-dr Synced and Healthy", || {
        let apps = apps.clone();
        async move {
            let a = serde_json::to_value(apps.get("inference-dr").await.ok()?).ok()?;
            (field(&a, "/status/sync/status") == "Synced"
                && field(&a, "/status/health/status") == "Healthy")
                .then_some(())
        }
    })
    .await;

    let ok = HttpReceiver::start_answering(200, "ok\n").expect("receiver");
    let down = HttpReceiver::start(503).expect("receiver");
    let broken =
        HttpReceiver::start_answering(500, "\nno ready endpoints\nretry later").expect("receiver");
    let dir = tempfile::tempdir().expect("tmp");
    let prom = LocalPrometheus::start(LocalPrometheusOptions {
        binary: None,
        data_dir: dir.path().to_path_buf(),
        listen: None,
        scrape_interval: Duration::from_secs(1),
        clusters: vec![],
    })
    .await
    .expect("prometheus starts (Debian: apt-get install prometheus)");
    let tcp_address = ok.url("").trim_start_matches("http://").to_string();
    let plan: DisasterRecoveryPlan = serde_json::from_value(json!({
        "apiVersion": "mooring.dev/v1alpha1", "kind": "DisasterRecoveryPlan",
        "metadata": {"name": "ml-platform", "namespace": "argocd"},
        "spec": {
            "primary": {"cluster": "in-cluster"},
            "standby": {"cluster": "eu-west-1"},
            "applications": {"pairs": [{"primary": "inference-primary", "standby": "inference-dr"}]},
            "prometheus": {"address": prom.url()},
            "validation": {"checks": [
                {"name": "apps-healthy", "applications": {}},
                {"name": "by-primary-name", "applications": {"names": ["inference-primary"]}},
                {"name": "not-in-plan", "applications": {"names": ["training"]}},
                {"name": "inference-health", "http": {"url": ok.url("/health")}},
                {"name": "inference-503", "http": {"url": down.url("/health")}},
                {"name": "inference-500", "http": {"url": broken.url("/health")}},
                {"name": "ftp", "http": {"url": "ftp://files.example.com/health"}},
                {"name": "two-kinds", "http": {"url": ok.url("/")}, "tcp": {"address": tcp_address}},
                {"name": "feature-store", "tcp": {"service": {"namespace": "feature-store", "name": "redis"}, "port": 6379}},
                {"name": "receiver-port", "tcp": {"address": tcp_address}},
                {"name": "inference-lb", "http": {"service": {"namespace": "ml-serving", "name": "inference-lb"}}},
                {"name": "inference-lb-port", "http": {"service": {"namespace": "ml-serving", "name": "inference-lb"}, "port": 8080}},
                {"name": "prom-up", "prometheus": {"query": "vector(1)"}},
                {"name": "prom-zero", "prometheus": {"query": "vector(0)"}},
                {"name": "prom-condition", "prometheus": {"query": "vector(0.5)", "condition": "result < 1"}},
            ]},
        }
    }))
    .expect("plan");
    let ctx = e.controller.ctx.clone();

    // Loopback is refused until the admin allows it: nothing is sent.
    let refused = checks::run(&ctx, &plan, Side::Standby).await;
    assert_check(&refused, "inference-health", false, "refused");
    assert_check(&refused, "receiver-port", false, "tcp://127.0.0.1");
    assert_check(&refused, "receiver-port", false, "refused");
    assert_check(&refused, "prom-up", false, "refused");
    assert!(ok.requests().is_empty(), "a refused check sent nothing");

    let allow = format!("127.0.0.1, {range}");
    allow_outbound(&e.client, &ctx.outbound, &allow).await;
    let results = checks::run(&ctx, &plan, Side::Standby).await;
    assert_eq!(results.len(), plan.spec.validation.checks.len());
    assert_check(
        &results,
        "apps-healthy",
        true,
        "inference-dr Synced and Healthy",
    );
    assert_check(&results, "by-primary-name", true, "inference-dr");
    assert_check(
        &results,
        "not-in-plan",
        false,
        "application \"training\" is not in the plan (its standby apps: inference-dr)",
    );
    assert_check(&results, "inference-health", true, "HTTP 200: ok");
    assert_check(
        &results,
        "inference-503",
        false,
        "HTTP 503 (expected 200): {}",
    );
    // The status and the first line of the body, nothing more.
    assert_check(
        &results,
        "inference-500",
        false,
        "HTTP 500 (expected 200): no ready endpoints",
    );
    assert!(!result(&results, "inference-500").message.contains("retry"));
    assert_check(
        &results,
        "ftp",
        false,
        "check \"ftp\": http url \"ftp://files.example.com/health\" is not http:// or https://",
    );
    assert_check(
        &results,
        "two-kinds",
        false,
        "check \"two-kinds\" names several kinds (http, tcp)",
    );
    assert_check(
        &results,
        "feature-store",
        false,
        "Service feature-store/redis does not exist on cluster eu-west-1",
    );
    assert_check(&results, "receiver-port", true, "connected to 127.0.0.1:");
    assert_check(&results, "prom-up", true, "vector(1) = 1");
    assert_check(&results, "prom-zero", false, "not result > 0");
    assert_check(&results, "prom-condition", true, "result < 1");

    // Through the Service's load balancer: 200 while the inference pods are ready.
    let lb = eventually(30, "GET the inference load balancer answers 200", || {
        let ctx = ctx.clone();
        let plan = plan.clone();
        async move {
            let results = checks::run(&ctx, &plan, Side::Standby).await;
            let r = result(&results, "inference-lb").clone();
            r.passed.then_some(results)
        }
    })
    .await;
    assert_check(&lb, "inference-lb", true, "/health: HTTP 200");
    assert_check(
        &lb,
        "inference-lb-port",
        false,
        "Service ml-serving/inference-lb has no port 8080 (its ports: [80])",
    );

    // No ready pod behind it (scaled to 0 by hand: no selfHeal): 503, with the status.
    let deployments: Api<DynamicObject> = Api::namespaced_with(
        e.client.clone(),
        "ml-serving",
        &mooring_k8s::kube::core::ApiResource::from_gvk_with_plural(
            &mooring_k8s::kube::core::GroupVersionKind::gvk("apps", "v1", "Deployment"),
            "deployments",
        ),
    );
    deployments
        .patch(
            "inference-server",
            &mooring_k8s::kube::api::PatchParams::default(),
            &mooring_k8s::kube::api::Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await
        .expect("scale to 0");
    let down_lb = eventually(30, "the inference load balancer answers 503", || {
        let ctx = ctx.clone();
        let plan = plan.clone();
        async move {
            let results = checks::run(&ctx, &plan, Side::Standby).await;
            let r = result(&results, "inference-lb").clone();
            (!r.passed).then_some(results)
        }
    })
    .await;
    assert_check(&down_lb, "inference-lb", false, "HTTP 503 (expected 200)");

    // The primary side's apps: its pair app does not exist.
    let primary = checks::run(&ctx, &plan, Side::Primary).await;
    assert_check(
        &primary,
        "apps-healthy",
        false,
        "inference-primary does not exist",
    );

    // The load-balancer address of the standby's Service, for HTTP checks and DNS.
    let standby = checks::side_cluster(&ctx, &plan, Side::Standby).expect("standby cluster");
    let svc = ServiceRef {
        namespace: "ml-serving".into(),
        name: "inference-lb".into(),
    };
    let (address, ports) = eventually(30, "inference-lb has an address", || {
        let standby = standby.clone();
        let svc = svc.clone();
        async move { checks::service_address(&standby, &svc).await.ok() }
    })
    .await;
    assert!(!address.is_empty());
    assert_eq!(ports, [80]);
    let missing = ServiceRef {
        namespace: "ml-serving".into(),
        name: "nope".into(),
    };
    let err = checks::service_address(&standby, &missing)
        .await
        .expect_err("missing Service");
    assert_eq!(
        err.to_string(),
        "Service ml-serving/nope does not exist on cluster eu-west-1"
    );
    let mut unknown = plan.clone();
    unknown.spec.standby.cluster = "ap-south-1".into();
    let Err(err) = checks::side_cluster(&ctx, &unknown, Side::Standby) else {
        panic!("ap-south-1 is not registered");
    };
    assert!(err.to_string().contains("\"ap-south-1\""), "{err}");
}
