//! Disaster recovery end to end: a management cluster, a primary and a standby embedded
//! cluster registered with Argo CD cluster Secrets, a real Git repository, the controller;
//! plans written as users write them (control-plane namespace `argocd`, manual-sync DR
//! apps, automated primary apps).

use crate::support::*;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use mooring_apiserver::{sim::SimOptions, Cluster, ClusterOptions};
use mooring_k8s::kube;
use mooring_k8s::kube::core::{ApiResource, GroupVersionKind};
use mooring_k8s::registry::{secret_for, ClusterEntry};
use serde_json::{json, Value};

const INFERENCE: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: inference-gateway}
spec:
  replicas: 2
  selector: {matchLabels: {app: inference-gateway}}
  template:
    metadata: {labels: {app: inference-gateway}}
    spec:
      containers:
      - name: gateway
        image: registry.ml.example.com/platform/inference-gateway:3.1.0
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /health, port: http}}
---
apiVersion: v1
kind: Service
metadata: {name: inference-gateway-lb}
spec:
  type: LoadBalancer
  selector: {app: inference-gateway}
  ports: [{name: http, port: 8080, targetPort: http}]
"#;

const FEATURE_STORE: &str = r#"apiVersion: apps/v1
kind: StatefulSet
metadata: {name: feature-store}
spec:
  serviceName: feature-store
  replicas: 1
  selector: {matchLabels: {app: feature-store}}
  template:
    metadata: {labels: {app: feature-store}}
    spec:
      containers:
      - name: redis
        image: registry.ml.example.com/infra/redis:7.2
        ports: [{name: redis, containerPort: 6379}]
        readinessProbe: {tcpSocket: {port: redis}}
---
apiVersion: v1
kind: Service
metadata: {name: feature-store-lb}
spec:
  type: LoadBalancer
  selector: {app: feature-store}
  ports: [{name: redis, port: 6379, targetPort: redis}]
"#;

/// The management cluster with its controller, the two regions, and the repository.
/// (The regions' `Cluster`s are kept for the test's duration: dropping one stops it.)
#[allow(dead_code)] // fields used by some tests only
pub struct Regions {
    pub mgmt: Cluster,
    pub mgmt_client: kube::Client,
    pub env: Option<Env>,
    pub primary: Cluster,
    pub standby: Option<Cluster>,
    pub primary_client: kube::Client,
    pub standby_client: kube::Client,
    pub repo: Repo,
    pub revision: String,
    /// The load-balancer ranges of the regions (each test process its own: the addresses
    /// are real sockets) and the lease that keeps them this process's.
    pub ranges: (String, String),
    _lease: std::net::TcpListener,
}

/// Two /24s of loopback no other test process uses: range pair `k` is leased by holding
/// 127.0.0.1:(LEASE_PORT + k), so concurrent test processes never share addresses (they
/// would answer each other's checks).
pub(crate) fn lease_ranges() -> (std::net::TcpListener, String, String) {
    const LEASE_PORT: u16 = 47_300;
    for k in 0..50u16 {
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", LEASE_PORT + k)) {
            let base = 130 + 2 * k;
            return (
                l,
                format!("127.0.{base}.0/24"),
                format!("127.0.{}.0/24", base + 1),
            );
        }
    }
    panic!("no free load-balancer range pair (50 DR test processes at once?)");
}

fn sim() -> SimOptions {
    SimOptions {
        speed: 20.0,
        ..Default::default()
    }
}

pub fn resource(g: &str, v: &str, k: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, k), plural)
}

pub fn plans(client: &kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::resources::disaster_recovery_plan_resource(),
    )
}

pub fn apps(client: &kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::resources::application_resource(),
    )
}

impl Regions {
    pub async fn start() -> Regions {
        let repo = Repo::new();
        repo.write("environments/production/inference/all.yaml", INFERENCE);
        repo.write(
            "environments/production/feature-store/all.yaml",
            FEATURE_STORE,
        );
        let revision = repo.commit("production");
        let mgmt = Cluster::start(ClusterOptions {
            sim: sim(),
            crds: mooring_k8s::crds::all(),
            ..Default::default()
        })
        .await
        .expect("management cluster");
        let region = |name: &str, range: &str| ClusterOptions {
            name: name.into(),
            sim: SimOptions {
                load_balancer: mooring_apiserver::sim::loadbalancer::LoadBalancerAddresses::Range(
                    range.parse().expect("range"),
                ),
                ..sim()
            },
            ..Default::default()
        };
        let (lease, primary_range, standby_range) = lease_ranges();
        let primary = Cluster::start(region("us-west-2", &primary_range))
            .await
            .expect("primary");
        let standby = Cluster::start(region("eu-west-1", &standby_range))
            .await
            .expect("standby");
        let primary_client = mooring_k8s::client_from_kubeconfig(primary.kubeconfig_path())
            .await
            .expect("client");
        let standby_client = mooring_k8s::client_from_kubeconfig(standby.kubeconfig_path())
            .await
            .expect("client");
        let env = controller_for(&mgmt).await;
        let secrets: Api<DynamicObject> = Api::namespaced_with(
            env.client.clone(),
            "argocd",
            &resource("", "v1", "Secret", "secrets"),
        );
        for (name, c) in [("us-west-2", &primary), ("eu-west-1", &standby)] {
            let entry = ClusterEntry {
                project: String::new(),
                name: name.into(),
                server: c.url(),
                config: c.client_config(),
                labels: [("region".to_string(), name.to_string())].into(),
                annotations: Default::default(),
            };
            let secret: DynamicObject =
                serde_json::from_value(secret_for(&entry, "argocd")).expect("secret");
            secrets
                .create(&PostParams::default(), &secret)
                .await
                .expect("cluster secret");
        }
        let r = Regions {
            mgmt_client: env.client.clone(),
            mgmt,
            env: Some(env),
            primary,
            standby: Some(standby),
            primary_client,
            standby_client,
            repo,
            revision,
            ranges: (primary_range, standby_range),
            _lease: lease,
        };
        r.create_apps().await;
        r
    }

    pub fn client(&self) -> kube::Client {
        self.mgmt_client.clone()
    }

    /// The seed's shape: automated primary apps, manual-sync DR apps that let the plan own
    /// replicas (`managedFieldsManagers: [mooring-dr]`, as users write it for an HPA).
    async fn create_apps(&self) {
        let api = apps(&self.client());
        for (name, cluster, path, namespace, automated) in [
            (
                "inference-primary",
                "us-west-2",
                "environments/production/inference",
                "ml-inference",
                true,
            ),
            (
                "ml-platform-primary",
                "us-west-2",
                "environments/production/feature-store",
                "ml-platform",
                true,
            ),
            (
                "inference-dr",
                "eu-west-1",
                "environments/production/inference",
                "ml-inference",
                false,
            ),
            (
                "ml-platform-dr",
                "eu-west-1",
                "environments/production/feature-store",
                "ml-platform",
                false,
            ),
        ] {
            let mut spec = json!({
                "project": "default",
                "source": {"repoURL": self.repo.url(), "targetRevision": "main", "path": path},
                "destination": {"name": cluster, "namespace": namespace},
                "syncPolicy": {"syncOptions": ["CreateNamespace=true"]},
                "ignoreDifferences": [
                    {"group": "apps", "kind": "Deployment", "managedFieldsManagers": ["mooring-dr"]},
                    {"group": "apps", "kind": "StatefulSet", "managedFieldsManagers": ["mooring-dr"]},
                ],
            });
            if automated {
                spec["syncPolicy"]["automated"] = json!({"prune": true, "selfHeal": true});
            }
            let app: DynamicObject = serde_json::from_value(json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                "metadata": {"name": name, "namespace": "argocd"},
                "spec": spec,
            }))
            .expect("app");
            api.create(&PostParams::default(), &app)
                .await
                .expect("create app");
        }
        for name in ["inference-primary", "ml-platform-primary"] {
            self.wait_app(name, "Synced", "Healthy").await;
        }
    }

    pub async fn wait_app(&self, name: &str, sync: &str, health: &str) -> Value {
        let api = apps(&self.client());
        eventually(90, &format!("{name} {sync} and {health}"), || async {
            let a = serde_json::to_value(api.get(name).await.ok()?).ok()?;
            (field(&a, "/status/sync/status") == sync
                && field(&a, "/status/health/status") == health)
                .then_some(a)
        })
        .await
    }

    pub async fn create_plan(&self, plan: Value) {
        let p: DynamicObject = serde_json::from_value(plan).expect("plan");
        plans(&self.client())
            .create(&PostParams::default(), &p)
            .await
            .expect("create plan");
    }

    pub async fn plan(&self, name: &str) -> Value {
        serde_json::to_value(plans(&self.client()).get(name).await.expect("plan")).expect("json")
    }

    /// What `mooring dr failover|failback|drill` writes.
    pub async fn request(&self, plan: &str, kind: &str, incident: Option<&str>) {
        plans(&self.client())
            .patch_status(
                plan,
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"request": {
                    "kind": kind, "incident": incident,
                    "requestedAt": mooring_core::time::now_rfc3339(), "requestedBy": "test",
                }}})),
            )
            .await
            .expect("request");
    }

    pub async fn wait_phase(&self, plan: &str, phase: &str, secs: u64) -> Value {
        eventually(secs, &format!("plan {plan} {phase}"), || async {
            let p = self.plan(plan).await;
            (field(&p, "/status/phase") == phase && p.pointer("/status/request").is_none())
                .then_some(p)
        })
        .await
    }

    pub async fn replicas(&self, client: &kube::Client, ns: &str, kind: &str, name: &str) -> i64 {
        let plural = format!("{}s", kind.to_lowercase());
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), ns, &resource("apps", "v1", kind, &plural));
        let o = serde_json::to_value(api.get(name).await.expect("workload")).expect("json");
        o.pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(-1)
    }

    /// Why the app's automated sync is suspended (empty: it is not).
    pub async fn suspended(&self, app: &str) -> String {
        let a =
            serde_json::to_value(apps(&self.client()).get(app).await.expect("app")).expect("json");
        field(&a, "/metadata/annotations/mooring.dev~1auto-sync-suspended").to_string()
    }

    /// Events about the plan with this reason.
    pub async fn events(&self, reason: &str) -> Vec<Value> {
        let api: Api<DynamicObject> = Api::namespaced_with(
            self.client(),
            "argocd",
            &resource("", "v1", "Event", "events"),
        );
        api.list(&Default::default())
            .await
            .expect("events")
            .items
            .into_iter()
            .filter_map(|e| serde_json::to_value(e).ok())
            .filter(|e| {
                e["reason"] == reason && e["involvedObject"]["kind"] == "DisasterRecoveryPlan"
            })
            .collect()
    }
}

/// BIND serving the plan's zone, its TSIG key in the Secret `dr-dns-tsig`, the
/// controller's outbound client open to it; returns the plan's `activation.dns`.
pub async fn dns(r: &Regions, bind: &mooring_controller::dr::local_dns::LocalBind) -> Value {
    let key = bind.key("hmac-sha256");
    let secret: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "dr-dns-tsig", "namespace": "argocd"},
        "stringData": {"secret": key.secret},
    }))
    .expect("secret");
    Api::<DynamicObject>::namespaced_with(
        r.client(),
        "argocd",
        &resource("", "v1", "Secret", "secrets"),
    )
    .create(&PostParams::default(), &secret)
    .await
    .expect("tsig secret");
    let env = r.env.as_ref().expect("controller");
    allow_outbound(
        &r.client(),
        &env.controller.ctx.outbound,
        &format!("{}\n{}\n{}", bind.server(), r.ranges.0, r.ranges.1),
    )
    .await;
    json!({
        "provider": {"rfc2136": {"server": bind.server(), "zone": bind.zone(),
            "tsig": {"keyName": key.name, "algorithm": "hmac-sha256",
                     "secretRef": {"name": "dr-dns-tsig", "key": "secret"}}}},
        "ttl": 30,
        "records": [{"name": "inference",
            "primary": {"service": {"namespace": "ml-inference", "name": "inference-gateway-lb"}},
            "standby": {"service": {"namespace": "ml-inference", "name": "inference-gateway-lb"}}}],
    })
}

/// The load-balancer address of a Service on a region's cluster.
pub async fn lb_address(client: &kube::Client, ns: &str, name: &str) -> String {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &resource("", "v1", "Service", "services"),
    );
    eventually(60, &format!("{ns}/{name} has an address"), || async {
        let s = serde_json::to_value(api.get(name).await.ok()?).ok()?;
        s.pointer("/status/loadBalancer/ingress/0/ip")
            .and_then(Value::as_str)
            .map(str::to_string)
    })
    .await
}

/// The plan of the tests: the seed's pairs and scale overrides, validation of the apps.
pub fn plan(name: &str, extra: Value) -> Value {
    let mut p = json!({
        "apiVersion": "mooring.dev/v1alpha1", "kind": "DisasterRecoveryPlan",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {
            "primary": {"cluster": "us-west-2"},
            "standby": {"cluster": "eu-west-1"},
            "applications": {"pairs": [
                {"primary": "ml-platform-primary", "standby": "ml-platform-dr"},
                {"primary": "inference-primary", "standby": "inference-dr", "syncTimeout": "2m"},
            ]},
            "detection": {"automatic": false, "primaryUnreachableFor": "3s"},
            "activation": {"scale": [
                {"kind": "Deployment", "namespace": "ml-inference", "name": "inference-gateway", "replicas": 10},
                {"kind": "StatefulSet", "namespace": "ml-platform", "name": "feature-store", "replicas": 3},
            ]},
            "validation": {"timeout": "1m", "checks": [{"name": "apps", "applications": {}}]},
            "objectives": {"rto": "15m", "rpo": "5m"},
        }
    });
    if let (Some(spec), Some(extra)) = (p["spec"].as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_failover_moves_the_platform_and_a_failback_brings_it_home() {
    let r = Regions::start().await;
    r.create_plan(plan("ml-platform", json!({}))).await;
    eventually(30, "the plan Ready", || async {
        let p = r.plan("ml-platform").await;
        p["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
            .then_some(())
    })
    .await;
    // The DR apps never synced on their own (manual sync).
    let dr = r.wait_app("inference-dr", "OutOfSync", "Missing").await;
    assert!(dr.pointer("/status/operationState").is_none(), "{dr}");

    r.request("ml-platform", "Failover", Some("INC-1")).await;
    let p = r.wait_phase("ml-platform", "StandbyActive", 180).await;
    let op = &p["status"]["operation"];
    assert_eq!(op["phase"], "Succeeded", "{p}");
    assert_eq!(op["incident"], "INC-1");
    let steps: Vec<&str> = op["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(
        steps,
        [
            "freeze",
            "sync/ml-platform-dr",
            "sync/inference-dr",
            "scale",
            "validate",
            "notify"
        ]
    );
    assert!(op["rtoSeconds"].as_f64().is_some(), "{op}");
    assert_eq!(p["status"]["lastFailover"]["passed"], true);
    // The standby serves, at the seed's scale, and is Synced (the overrides are the plan's).
    r.wait_app("inference-dr", "Synced", "Healthy").await;
    r.wait_app("ml-platform-dr", "Synced", "Healthy").await;
    let sc = r.standby_client.clone();
    assert_eq!(
        r.replicas(&sc, "ml-inference", "Deployment", "inference-gateway")
            .await,
        10
    );
    assert_eq!(
        r.replicas(&sc, "ml-platform", "StatefulSet", "feature-store")
            .await,
        3
    );
    // The primary's automated sync is frozen, and says why.
    let suspended = r.suspended("inference-primary").await;
    assert!(suspended.contains("INC-1"), "{suspended}");
    let done = r.events("FailoverCompleted").await;
    assert_eq!(
        done.len(),
        1,
        "{done:?} {:?}",
        r.events("FailoverStarted").await
    );
    let msg = done[0]["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("INC-1") && msg.contains("us-west-2 → eu-west-1") && msg.contains("RTO"),
        "{msg}"
    );
    assert_eq!(done[0]["related"]["name"], "ml-platform-dr");

    // A second failover is refused while the standby serves.
    r.request("ml-platform", "Failover", Some("INC-2")).await;
    eventually(30, "the second failover refused", || async {
        let refused = r.events("RequestRefused").await;
        refused
            .iter()
            .any(|e| {
                e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("StandbyActive"))
            })
            .then_some(())
    })
    .await;

    r.request("ml-platform", "Failback", None).await;
    let p = r.wait_phase("ml-platform", "PrimaryActive", 180).await;
    assert_eq!(p["status"]["lastFailback"]["passed"], true, "{p}");
    assert_eq!(
        r.replicas(&sc, "ml-inference", "Deployment", "inference-gateway")
            .await,
        2
    );
    assert_eq!(
        r.replicas(&sc, "ml-platform", "StatefulSet", "feature-store")
            .await,
        1
    );
    let suspended = r.suspended("inference-primary").await;
    assert_eq!(suspended, "");
    assert_eq!(r.events("FailbackCompleted").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_plans_get_a_clear_condition_and_nothing_moves() {
    let r = Regions::start().await;
    r.create_plan(plan(
        "unknown-parts",
        json!({
            "standby": {"cluster": "mars-1"},
            "applications": {"pairs": [{"primary": "inference-primary", "standby": "no-such-app"}]},
        }),
    ))
    .await;
    let p = eventually(30, "the plan not Ready", || async {
        let p = r.plan("unknown-parts").await;
        let c = p["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Ready" && c["status"] == "False")?
            .clone();
        Some(c)
    })
    .await;
    let msg = p["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("cluster \"mars-1\" is not registered"),
        "{msg}"
    );
    assert!(msg.contains("argocd/no-such-app does not exist"), "{msg}");
    // A request against it is refused, and nothing is frozen.
    r.request("unknown-parts", "Failover", Some("INC-9")).await;
    eventually(30, "the request refused", || async {
        (!r.events("RequestRefused").await.is_empty()).then_some(())
    })
    .await;
    let suspended = r.suspended("inference-primary").await;
    assert_eq!(suspended, "");
    // A spec the engine refuses: every problem named.
    r.create_plan(plan(
        "bad-spec",
        json!({"detection": {"primaryUnreachableFor": "soon"}, "drill": {"failureMode": "meteor"}}),
    ))
    .await;
    let c = eventually(30, "the bad spec reported", || async {
        let p = r.plan("bad-spec").await;
        p["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Ready" && c["status"] == "False")
            .cloned()
    })
    .await;
    let msg = c["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("primaryUnreachableFor \"soon\"") && msg.contains("meteor"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_controller_killed_during_the_failover_finishes_it_exactly_once() {
    if !mooring_controller::dr::local_dns::LocalBind::available(
        "a_controller_killed_during_the_failover_finishes_it_exactly_once",
    ) {
        return;
    }
    let bind = mooring_controller::dr::local_dns::LocalBind::start("ml.example.com", None, &[])
        .expect("named");
    let mut r = Regions::start().await;
    let records = dns(&r, &bind).await;
    let hook = HttpReceiver::start(200).expect("receiver");
    allow_outbound(
        &r.client(),
        &r.env.as_ref().expect("controller").controller.ctx.outbound,
        &format!(
            "{}\n{}\n{}\n{}",
            bind.server(),
            r.ranges.0,
            r.ranges.1,
            hook.url("")
                .trim_start_matches("http://")
                .trim_end_matches('/')
        ),
    )
    .await;
    notify_failovers(&r, &hook).await;
    let serial = bind.serial().expect("serial");
    let mut activation = plan("x", json!({}))["spec"]["activation"].clone();
    activation["dns"] = records;
    r.create_plan(plan("ml-platform", json!({"activation": activation})))
        .await;
    r.request("ml-platform", "Failover", Some("INC-7")).await;
    // Killed as soon as a standby sync is under way.
    eventually(60, "a standby sync running", || async {
        let p = r.plan("ml-platform").await;
        p.pointer("/status/operation/steps")?
            .as_array()?
            .iter()
            .any(|s| {
                s["name"].as_str().is_some_and(|n| n.starts_with("sync/"))
                    && s["phase"] == "Running"
            })
            .then_some(())
    })
    .await;
    r.env = None;
    let during = r.plan("ml-platform").await;
    assert_eq!(field(&during, "/status/phase"), "FailingOver", "{during}");
    r.env = Some(controller_for(&r.mgmt).await);
    let p = r.wait_phase("ml-platform", "StandbyActive", 180).await;
    assert_eq!(p["status"]["operation"]["phase"], "Succeeded", "{p}");
    // One sync per standby app, one FailoverStarted, one FailoverCompleted.
    for app in ["inference-dr", "ml-platform-dr"] {
        let a = r.wait_app(app, "Synced", "Healthy").await;
        let history = a["status"]["history"].as_array().map(Vec::len);
        assert_eq!(history, Some(1), "{app} synced more than once: {a}");
        assert_eq!(
            field(&a, "/status/operationState/operation/initiatedBy/username"),
            "mooring-dr:INC-7"
        );
    }
    assert_eq!(r.events("FailoverStarted").await.len(), 1);
    assert_eq!(r.events("FailoverCompleted").await.len(), 1);
    let sc = r.standby_client.clone();
    assert_eq!(
        r.replicas(&sc, "ml-inference", "Deployment", "inference-gateway")
            .await,
        10
    );
    // DNS answers the standby's load balancer, written by exactly one update.
    let standby_ip = lb_address(&sc, "ml-inference", "inference-gateway-lb").await;
    let prefix = r.ranges.1.trim_end_matches("0/24");
    assert!(
        standby_ip.starts_with(prefix),
        "{standby_ip} not in {}",
        r.ranges.1
    );
    assert_eq!(
        bind.dig("inference.ml.example.com", "A").expect("dig"),
        [standby_ip]
    );
    assert_eq!(bind.serial().expect("serial"), serial + 1, "one DNS update");
    // One notification.
    eventually(30, "the failover notification", || async {
        (!hook.containing("FailoverCompleted").is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(hook.containing("INC-7").len(), 1, "one notification");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_to_a_standby_that_does_not_answer_is_refused_and_changes_nothing() {
    let mut r = Regions::start().await;
    r.create_plan(plan("ml-platform", json!({}))).await;
    eventually(30, "the plan Ready", || async {
        let p = r.plan("ml-platform").await;
        (field(&p, "/status/phase") == "PrimaryActive").then_some(())
    })
    .await;
    r.standby.take().expect("standby").stop();
    eventually(30, "the standby seen down", || async {
        let p = r.plan("ml-platform").await;
        p["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "StandbyReachable" && c["status"] == "False")
            .then_some(())
    })
    .await;
    r.request("ml-platform", "Failover", Some("INC-3")).await;
    let refused = eventually(30, "the failover refused", || async {
        r.events("RequestRefused").await.into_iter().next()
    })
    .await;
    let msg = refused["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("standby cluster eu-west-1 does not answer"),
        "{msg}"
    );
    let p = r.plan("ml-platform").await;
    assert_eq!(field(&p, "/status/phase"), "PrimaryActive", "{p}");
    assert!(p.pointer("/status/operation").is_none(), "{p}");
    let suspended = r.suspended("inference-primary").await;
    assert_eq!(suspended, "");
}

/// The checks of the seed's validation script: apps, the inference endpoint's `/health`
/// through its load balancer, the feature store's TCP port.
pub fn seed_checks() -> Value {
    json!({"timeout": "1m", "checks": [
        {"name": "apps", "applications": {}},
        {"name": "inference-endpoint", "http": {"service": {"namespace": "ml-inference", "name": "inference-gateway-lb"}, "path": "/health", "expectedStatus": 200}},
        {"name": "feature-store", "tcp": {"service": {"namespace": "ml-platform", "name": "feature-store-lb"}, "port": 6379}},
    ]})
}

/// `argocd-notifications-cm` sending `on-failover-completed` to `hook`, subscribed on the
/// standby app the plan's Events name.
async fn notify_failovers(r: &Regions, hook: &HttpReceiver) {
    let cms: Api<DynamicObject> = Api::namespaced_with(
        r.client(),
        "argocd",
        &resource("", "v1", "ConfigMap", "configmaps"),
    );
    let cm: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "argocd-notifications-cm", "namespace": "argocd"},
        "data": {
            "service.webhook.dr-hook": format!("url: {}/dr\n", hook.url("")),
            "template.failover": "webhook:\n  dr-hook:\n    method: POST\n    body: |\n      {\"event\": \"{{.event.reason}}\", \"message\": \"{{.event.message}}\"}\n",
            "trigger.on-failover-completed": "- send: [failover]\n",
        },
    }))
    .expect("cm");
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("notifications cm");
    apps(&r.client())
        .patch(
            "ml-platform-dr",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {
                "notifications.argoproj.io/subscribe.on-failover-completed.dr-hook": ""}}})),
        )
        .await
        .expect("subscribe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_primary_fails_over_by_itself_to_a_validated_standby() {
    if !mooring_controller::dr::local_dns::LocalBind::available(
        "a_partitioned_primary_fails_over_by_itself_to_a_validated_standby",
    ) {
        return;
    }
    let bind = mooring_controller::dr::local_dns::LocalBind::start("ml.example.com", None, &[])
        .expect("named");
    let r = Regions::start().await;
    let hook = HttpReceiver::start(200).expect("receiver");
    let mut records = dns(&r, &bind).await;
    let env = r.env.as_ref().expect("controller");
    allow_outbound(
        &r.client(),
        &env.controller.ctx.outbound,
        &format!(
            "{}\n{}\n{}\n{}",
            bind.server(),
            r.ranges.0,
            r.ranges.1,
            hook.url("")
                .trim_start_matches("http://")
                .trim_end_matches('/')
        ),
    )
    .await;
    notify_failovers(&r, &hook).await;
    let mut activation = plan("x", json!({}))["spec"]["activation"].clone();
    activation["dns"] = records.take();
    r.create_plan(plan(
        "ml-platform",
        json!({
            "detection": {"automatic": true, "primaryUnreachableFor": "3s"},
            "activation": activation,
            "validation": seed_checks(),
        }),
    ))
    .await;
    // The primary serves; a failback would point DNS here.
    let primary_ip = lb_address(&r.primary_client, "ml-inference", "inference-gateway-lb").await;
    eventually(30, "the plan watching a healthy primary", || async {
        let p = r.plan("ml-platform").await;
        p["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "PrimaryHealthy" && c["status"] == "True")
            .then_some(())
    })
    .await;
    // A region outage.
    r.primary.partition(true);
    let p = r.wait_phase("ml-platform", "StandbyActive", 180).await;
    let op = &p["status"]["operation"];
    assert_eq!(op["trigger"], "automatic", "{p}");
    assert_eq!(op["phase"], "Succeeded", "{p}");
    let validation = op["validation"].as_array().expect("validation");
    assert_eq!(validation.len(), 3, "{validation:?}");
    assert!(
        validation.iter().all(|c| c["passed"] == true),
        "{validation:?}"
    );
    // RTO from the first unanswered probe: detection (3 s) plus the activation.
    let rto = op["rtoSeconds"].as_f64().expect("rto");
    assert!(rto >= 3.0, "{rto}");
    r.wait_app("inference-dr", "Synced", "Healthy").await;
    r.wait_app("ml-platform-dr", "Synced", "Healthy").await;
    let sc = r.standby_client.clone();
    assert_eq!(
        r.replicas(&sc, "ml-inference", "Deployment", "inference-gateway")
            .await,
        10
    );
    assert_eq!(
        r.replicas(&sc, "ml-platform", "StatefulSet", "feature-store")
            .await,
        3
    );
    let standby_ip = lb_address(&sc, "ml-inference", "inference-gateway-lb").await;
    assert_ne!(standby_ip, primary_ip);
    assert_eq!(
        bind.dig("inference.ml.example.com", "A").expect("dig"),
        std::slice::from_ref(&standby_ip)
    );
    // The endpoint answers as the seed's validation script curls it.
    assert_eq!(curl(&format!("http://{standby_ip}:8080/health")), "200");
    // One notification with the incident, the regions and the RTO.
    let incident = op["incident"].as_str().unwrap_or_default().to_string();
    let sent = eventually(30, "the failover notification", || async {
        let got = hook.containing("FailoverCompleted");
        (!got.is_empty()).then_some(got)
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(hook.containing("FailoverCompleted").len(), 1, "{sent:?}");
    let body = String::from_utf8_lossy(&sent[0].body).to_string();
    for needle in [incident.as_str(), "us-west-2", "eu-west-1", "RTO"] {
        assert!(body.contains(needle), "{needle:?} not in {body}");
    }
    r.primary.partition(false);
}

/// `curl -s -o /dev/null -w %{http_code} URL`, as the seed's validation script.
fn curl(url: &str) -> String {
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
            url,
        ])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_drill_runs_end_to_end_and_the_primary_serves_again() {
    if !mooring_controller::dr::local_dns::LocalBind::available(
        "a_scheduled_drill_runs_end_to_end_and_the_primary_serves_again",
    ) {
        return;
    }
    let bind = mooring_controller::dr::local_dns::LocalBind::start("ml.example.com", None, &[])
        .expect("named");
    let r = Regions::start().await;
    let mut records = dns(&r, &bind).await;
    let mut activation = plan("x", json!({}))["spec"]["activation"].clone();
    activation["dns"] = records.take();
    let primary_ip = lb_address(&r.primary_client, "ml-inference", "inference-gateway-lb").await;
    // The reports' repository (served: pushes to its checked-out branch allowed).
    let reports = Repo::new();
    reports.git(&["config", "receive.denyCurrentBranch", "ignore"]);
    reports.write("README.md", "DR reports\n");
    reports.commit("reports");
    // A few seconds ahead, in the six-field form (leading seconds).
    let at = mooring_core::time::now() + mooring_core::time::SignedDuration::from_secs(8);
    let secs = at.as_second();
    let schedule = format!(
        "{} {} {} * * *",
        secs % 60,
        (secs / 60) % 60,
        (secs / 3600) % 24
    );
    r.create_plan(plan(
        "ml-platform",
        json!({
            "detection": {"automatic": false, "primaryDegradedFor": "2s"},
            "activation": activation,
            "validation": seed_checks(),
            "drill": {"schedule": schedule, "timeZone": "UTC", "failureMode": "scale-to-zero",
                      "report": {"git": {"repoURL": reports.url(), "branch": "main", "path": "dr-reports"}}},
        }),
    ))
    .await;
    let p = eventually(60, "the drill scheduled", || async {
        let p = r.plan("ml-platform").await;
        p.pointer("/status/nextDrill").is_some().then_some(p)
    })
    .await;
    let minute = mooring_core::time::format(at);
    assert!(
        field(&p, "/status/nextDrill").starts_with(&minute[..16]),
        "{p}"
    );
    let p = eventually(240, "the drill reported", || async {
        let p = r.plan("ml-platform").await;
        p.pointer("/status/lastDrill/report").is_some().then_some(p)
    })
    .await;
    let last = &p["status"]["lastDrill"];
    assert_eq!(last["passed"], true, "{p}");
    assert_eq!(field(&p, "/status/phase"), "PrimaryActive");
    // The report: JSON with the RTO from the injected failure to the validated,
    // DNS-switched standby; Markdown and JUnit beside it.
    let cms: Api<DynamicObject> = Api::namespaced_with(
        r.client(),
        "argocd",
        &resource("", "v1", "ConfigMap", "configmaps"),
    );
    let cm = serde_json::to_value(
        cms.get(last["report"].as_str().expect("report"))
            .await
            .expect("cm"),
    )
    .expect("json");
    let report: Value = serde_json::from_str(field(&cm, "/data/report.json")).expect("report.json");
    let rto = report["rtoSeconds"].as_f64().expect("rto");
    assert!(rto >= 2.0, "the RTO includes detection: {report}");
    assert_eq!(report["passed"], true);
    let steps: Vec<&str> = report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    for s in [
        "inject",
        "detect",
        "failover/validate",
        "failover/dns",
        "restore",
        "failback/dns",
    ] {
        assert!(steps.contains(&s), "{s} missing from {steps:?}");
    }
    assert!(field(&cm, "/data/report.md").contains("RTO"));
    assert!(field(&cm, "/data/report.xml").contains("<testsuite"));
    assert_eq!(r.events("DrillReport").await.len(), 1);
    let passed = p["status"]["conditions"]
        .as_array()
        .expect("conditions")
        .iter()
        .find(|c| c["type"] == "LastDrill")
        .cloned()
        .expect("LastDrill condition");
    assert_eq!(passed["status"], "True", "{passed}");
    assert!(field(&passed, "/message").contains("RTO"), "{passed}");
    // The report committed to the reports repository.
    assert!(field(last, "/message").contains("committed to"), "{last}");
    let files = reports.git(&["show", "--name-only", "--format=%s", "main"]);
    assert!(files.starts_with("DR drill"), "{files}");
    assert!(
        files.contains("dr-reports/ml-platform-")
            && files.contains(".md")
            && files.contains(".json"),
        "{files}"
    );
    // The primary serves again: replicas restored, automated sync resumed, DNS back.
    let pc = r.primary_client.clone();
    assert_eq!(
        r.replicas(&pc, "ml-inference", "Deployment", "inference-gateway")
            .await,
        2
    );
    r.wait_app("inference-primary", "Synced", "Healthy").await;
    let suspended = r.suspended("inference-primary").await;
    assert_eq!(suspended, "");
    assert_eq!(
        bind.dig("inference.ml.example.com", "A").expect("dig"),
        std::slice::from_ref(&primary_ip)
    );
    eventually(30, "the primary answering", || async {
        (curl(&format!("http://{primary_ip}:8080/health")) == "200").then_some(())
    })
    .await;
    // The standby is back to its warm size.
    let sc = r.standby_client.clone();
    assert_eq!(
        r.replicas(&sc, "ml-inference", "Deployment", "inference-gateway")
            .await,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unvalidated_standby_or_a_refused_tsig_key_leaves_dns_on_the_primary() {
    if !mooring_controller::dr::local_dns::LocalBind::available(
        "an_unvalidated_standby_or_a_refused_tsig_key_leaves_dns_on_the_primary",
    ) {
        return;
    }
    let r = Regions::start().await;
    let primary_ip = lb_address(&r.primary_client, "ml-inference", "inference-gateway-lb").await;
    let bind = mooring_controller::dr::local_dns::LocalBind::start(
        "ml.example.com",
        None,
        &[("inference", "A", primary_ip.as_str())],
    )
    .expect("named");
    let serial = bind.serial().expect("serial");
    let mut records = dns(&r, &bind).await;
    let mut activation = plan("x", json!({}))["spec"]["activation"].clone();
    activation["dns"] = records.take();
    // 1. The standby never validates (its endpoint is not there).
    let mut checks = seed_checks();
    checks["timeout"] = json!("3s");
    checks["checks"][1]["http"]["service"]["name"] = json!("no-such-lb");
    r.create_plan(plan(
        "ml-platform",
        json!({"activation": activation, "validation": checks}),
    ))
    .await;
    r.request("ml-platform", "Failover", Some("INC-11")).await;
    let p = eventually(180, "the failover failed", || async {
        let p = r.plan("ml-platform").await;
        (p["status"]["lastFailover"]["incident"] == "INC-11").then_some(p)
    })
    .await;
    assert_eq!(p["status"]["lastFailover"]["passed"], false, "{p}");
    assert_eq!(field(&p, "/status/phase"), "PrimaryActive");
    let failed = p["status"]["operation"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .find(|s| s["phase"] == "Failed")
        .cloned()
        .expect("a failed step");
    assert_eq!(failed["name"], "validate", "{p}");
    assert!(
        field(&failed, "/message").contains("no-such-lb"),
        "{failed}"
    );
    assert_eq!(
        bind.dig("inference.ml.example.com", "A").expect("dig"),
        std::slice::from_ref(&primary_ip)
    );
    assert_eq!(bind.serial().expect("serial"), serial, "no DNS update");
    assert!(!r.events("FailoverFailed").await.is_empty());
    let suspended = r.suspended("inference-primary").await;
    assert_eq!(suspended, "");

    // 2. The standby validates, but the name server refuses the TSIG key.
    let secrets: Api<DynamicObject> = Api::namespaced_with(
        r.client(),
        "argocd",
        &resource("", "v1", "Secret", "secrets"),
    );
    secrets
        .patch(
            "dr-dns-tsig",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"stringData": {"secret": "d3Jvbmcgc2VjcmV0IHdyb25nIHNlY3JldCB3cm9uZyE="}}),
            ),
        )
        .await
        .expect("wrong key");
    plans(&r.client())
        .patch(
            "ml-platform",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"validation": seed_checks()}})),
        )
        .await
        .expect("fix the checks");
    r.request("ml-platform", "Failover", Some("INC-12")).await;
    let p = eventually(180, "the second failover failed", || async {
        let p = r.plan("ml-platform").await;
        (p["status"]["lastFailover"]["incident"] == "INC-12").then_some(p)
    })
    .await;
    assert_eq!(p["status"]["lastFailover"]["passed"], false, "{p}");
    let message = field(&p, "/status/lastFailover/message").to_string();
    assert!(
        message.contains("step dns failed") && message.contains("TSIG"),
        "{message}"
    );
    assert_eq!(field(&p, "/status/phase"), "PrimaryActive");
    assert_eq!(
        bind.dig("inference.ml.example.com", "A").expect("dig"),
        std::slice::from_ref(&primary_ip)
    );
    assert_eq!(bind.serial().expect("serial"), serial, "no DNS update");
}
