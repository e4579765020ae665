//! Load-balancer addresses: LoadBalancer Services get unique addresses from the configured
//! range (released and reused, kept across a restart), Ingresses share the first address,
//! the opt-out annotation withholds them, an exhausted range leaves a Service pending
//! with a Warning Event, and hostname mode hands out one hostname.

use crate::support::{client, eventually, start_with};
use mooring_apiserver::api::{Api, DeleteOptions, ListOptions, Subresource, WriteOptions};
use mooring_apiserver::error::ApiError;
use mooring_apiserver::registry::ResourceType;
use mooring_apiserver::sim::{LoadBalancerAddresses, SimOptions};
use mooring_apiserver::{Cluster, ClusterOptions};
use mooring_k8s::{k8s_openapi, kube};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

async fn cluster(addresses: LoadBalancerAddresses, data_dir: Option<PathBuf>) -> Cluster {
    start_with(ClusterOptions {
        data_dir,
        sim: SimOptions {
            load_balancer: addresses,
            ..Default::default()
        },
        ..Default::default()
    })
    .await
}

fn range(s: &str) -> LoadBalancerAddresses {
    LoadBalancerAddresses::Range(s.parse().expect("range"))
}

fn rt(api: &Api, group: &str, plural: &str) -> Arc<ResourceType> {
    api.registry
        .get(group, "v1", plural)
        .unwrap_or_else(|| panic!("{group}/{plural} registered"))
}

fn wo() -> WriteOptions {
    WriteOptions {
        field_manager: Some("lb-test".into()),
        ..Default::default()
    }
}

fn service(name: &str, ty: &str, annotations: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"type": ty, "selector": {"app": name}, "ports": [{"port": 80}]},
    })
}

fn ingress(name: &str, annotations: Value) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"rules": [{"host": format!("{name}.test"), "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": name, "port": {"number": 80}}}}]}}]},
    })
}

fn create_svc(api: &Api, obj: Value) {
    api.create(&rt(api, "", "services"), Some("default"), obj, &wo())
        .expect("create service");
}

fn create_ing(api: &Api, obj: Value) {
    api.create(
        &rt(api, "networking.k8s.io", "ingresses"),
        Some("default"),
        obj,
        &wo(),
    )
    .expect("create ingress");
}

fn get(api: &Api, group: &str, plural: &str, name: &str) -> Value {
    api.get(&rt(api, group, plural), Some("default"), name)
        .unwrap_or_else(|e| panic!("get {plural}/{name}: {e}"))
}

/// Read-modify-write of a Service's main resource (retrying conflicts with the controller).
fn edit_svc(api: &Api, name: &str, f: impl Fn(&mut Value)) {
    let srt = rt(api, "", "services");
    loop {
        let mut s = get(api, "", "services", name);
        f(&mut s);
        match api.update(&srt, Some("default"), name, s, Subresource::Main, &wo()) {
            Ok(_) => return,
            Err(ApiError::Conflict { .. }) => continue,
            Err(e) => panic!("update {name}: {e}"),
        }
    }
}

fn delete_svc(api: &Api, name: &str) {
    api.delete(
        &rt(api, "", "services"),
        Some("default"),
        name,
        &DeleteOptions::default(),
    )
    .expect("delete service");
}

/// `status.loadBalancer.ingress` of an object.
fn lb(obj: &Value) -> Vec<Value> {
    obj.pointer("/status/loadBalancer/ingress")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn ip_of(obj: &Value) -> Option<String> {
    lb(obj)
        .first()
        .and_then(|i| i["ip"].as_str())
        .map(str::to_string)
}

async fn svc_ip(api: &Api, name: &str) -> String {
    eventually(20, &format!("an address for Service {name}"), || async {
        ip_of(&get(api, "", "services", name))
    })
    .await
}

async fn ing_address(api: &Api, name: &str) -> Value {
    eventually(20, &format!("an address for Ingress {name}"), || async {
        lb(&get(api, "networking.k8s.io", "ingresses", name))
            .first()
            .cloned()
    })
    .await
}

/// Events about object `name`: (type, reason, message).
fn events(api: &Api, name: &str) -> Vec<(String, String, String)> {
    api.list(
        &rt(api, "", "events"),
        Some("default"),
        &ListOptions::default(),
    )
    .expect("list events")
    .items
    .iter()
    .filter_map(|s| s.value().ok())
    .filter(|e| e["involvedObject"]["name"] == name)
    .map(|e| {
        let f = |k: &str| e[k].as_str().unwrap_or_default().to_string();
        (f("type"), f("reason"), f("message"))
    })
    .collect()
}

async fn event(api: &Api, name: &str, reason: &str) -> (String, String) {
    eventually(20, &format!("a {reason} Event for {name}"), || async {
        events(api, name)
            .into_iter()
            .find(|(_, r, _)| r == reason)
            .map(|(t, _, m)| (t, m))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_get_unique_addresses_and_ingresses_share_one() {
    let c = cluster(LoadBalancerAddresses::default(), None).await;
    let api = &c.api;
    for n in ["alpha", "beta", "gamma"] {
        create_svc(api, service(n, "LoadBalancer", json!({})));
    }
    create_svc(api, service("internal", "ClusterIP", json!({})));
    create_ing(api, ingress("web", json!({})));
    create_ing(api, ingress("docs", json!({})));

    let mut ips = BTreeSet::new();
    for n in ["alpha", "beta", "gamma"] {
        let ip = svc_ip(api, n).await;
        let svc = get(api, "", "services", n);
        assert_eq!(lb(&svc)[0]["ipMode"], "VIP", "{svc}");
        let (ty, msg) = event(api, n, "IPAllocated").await;
        assert_eq!(ty, "Normal");
        assert_eq!(msg, format!("Assigned IP [\"{ip}\"]"));
        ips.insert(ip);
    }
    // The lowest free addresses of 127.0.100.0/24, after the Ingresses' 127.0.100.1.
    let want: BTreeSet<String> = ["127.0.100.2", "127.0.100.3", "127.0.100.4"]
        .map(String::from)
        .into();
    assert_eq!(ips, want);
    for n in ["web", "docs"] {
        assert_eq!(ing_address(api, n).await, json!({"ip": "127.0.100.1"}));
    }
    // A ClusterIP Service gets nothing.
    let internal = get(api, "", "services", "internal");
    assert!(lb(&internal).is_empty(), "{internal}");
    assert_eq!(internal["status"]["loadBalancer"], json!({}));
    // Once assigned, an address is not reported again.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let allocated = events(api, "alpha")
        .into_iter()
        .filter(|(_, r, _)| r == "IPAllocated")
        .count();
    assert_eq!(allocated, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_range_leaves_services_pending_until_an_address_is_released() {
    // Four addresses: .1 for the Ingresses, .2–.4 for Services.
    let c = cluster(range("127.0.50.1-127.0.50.4"), None).await;
    let api = &c.api;
    for n in ["a", "b", "c"] {
        create_svc(api, service(n, "LoadBalancer", json!({})));
        svc_ip(api, n).await;
    }
    let b_ip = ip_of(&get(api, "", "services", "b")).expect("b has an address");
    let c_ip = ip_of(&get(api, "", "services", "c")).expect("c has an address");

    create_svc(api, service("d", "LoadBalancer", json!({})));
    let (ty, msg) = event(api, "d", "AllocationFailed").await;
    assert_eq!(ty, "Warning");
    assert!(
        msg.starts_with(
            "Failed to allocate IP for \"default/d\": no available IPs in 127.0.50.1-127.0.50.4"
        ),
        "{msg}"
    );
    assert!(ip_of(&get(api, "", "services", "d")).is_none());

    // Deleting b frees its address for d, the Service waiting for one.
    delete_svc(api, "b");
    assert_eq!(svc_ip(api, "d").await, b_ip);

    // c turning into a ClusterIP Service releases its address and clears its status.
    edit_svc(api, "c", |s| s["spec"]["type"] = json!("ClusterIP"));
    eventually(20, "c's load-balancer status cleared", || async {
        lb(&get(api, "", "services", "c")).is_empty().then_some(())
    })
    .await;
    create_svc(api, service("e", "LoadBalancer", json!({})));
    assert_eq!(svc_ip(api, "e").await, c_ip);

    // Every live address is unique.
    let live: Vec<String> = ["a", "d", "e"]
        .iter()
        .filter_map(|n| ip_of(&get(api, "", "services", n)))
        .collect();
    let unique: BTreeSet<&String> = live.iter().collect();
    assert_eq!(live.len(), 3);
    assert_eq!(unique.len(), 3, "{live:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_annotation_withholds_the_address() {
    let c = cluster(LoadBalancerAddresses::default(), None).await;
    let api = &c.api;
    let pending = json!({"sim.mooring.dev/load-balancer": "pending"});
    create_svc(api, service("quiet", "LoadBalancer", pending.clone()));
    create_ing(api, ingress("quiet-ing", pending.clone()));
    create_svc(
        api,
        service(
            "typo",
            "LoadBalancer",
            json!({"sim.mooring.dev/load-balancer": "off"}),
        ),
    );

    let (ty, msg) = event(api, "quiet", "AddressWithheld").await;
    assert_eq!(ty, "Normal");
    assert!(
        msg.contains("sim.mooring.dev/load-balancer: pending"),
        "{msg}"
    );
    event(api, "quiet-ing", "AddressWithheld").await;
    let (ty, msg) = event(api, "typo", "InvalidAnnotation").await;
    assert_eq!(ty, "Warning");
    assert!(msg.contains("\"off\""), "{msg}");
    assert!(lb(&get(api, "", "services", "quiet")).is_empty());
    assert!(lb(&get(api, "", "services", "typo")).is_empty());
    assert!(lb(&get(api, "networking.k8s.io", "ingresses", "quiet-ing")).is_empty());

    // Removing the annotation assigns one; adding it back releases it.
    edit_svc(api, "quiet", |s| {
        s["metadata"]["annotations"] = json!({});
    });
    let ip = svc_ip(api, "quiet").await;
    assert_eq!(ip, "127.0.100.2");
    edit_svc(api, "quiet", |s| {
        s["metadata"]["annotations"] = pending.clone();
    });
    eventually(20, "quiet's address withdrawn", || async {
        lb(&get(api, "", "services", "quiet"))
            .is_empty()
            .then_some(())
    })
    .await;
    create_svc(api, service("next", "LoadBalancer", json!({})));
    assert_eq!(
        svc_ip(api, "next").await,
        ip,
        "the withdrawn address is free again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requested_load_balancer_ip_is_honoured_or_reported() {
    let c = cluster(range("127.0.60.0/28"), None).await;
    let api = &c.api;
    let with_ip = |name: &str, ip: &str| {
        let mut s = service(name, "LoadBalancer", json!({}));
        s["spec"]["loadBalancerIP"] = json!(ip);
        s
    };
    create_svc(api, with_ip("fixed", "127.0.60.9"));
    assert_eq!(svc_ip(api, "fixed").await, "127.0.60.9");
    create_svc(api, with_ip("clash", "127.0.60.9"));
    let (_, msg) = event(api, "clash", "AllocationFailed").await;
    assert!(
        msg.contains("already in use by Service default/fixed"),
        "{msg}"
    );
    create_svc(api, with_ip("far", "10.1.2.3"));
    let (_, msg) = event(api, "far", "AllocationFailed").await;
    assert!(
        msg.contains("not in the address range 127.0.60.0/28"),
        "{msg}"
    );
    create_svc(api, with_ip("ingress-ip", "127.0.60.1"));
    let (_, msg) = event(api, "ingress-ip", "AllocationFailed").await;
    assert!(msg.contains("address of the Ingresses"), "{msg}");
    // When the holder goes, the waiting Service gets the address it asked for.
    delete_svc(api, "fixed");
    assert_eq!(svc_ip(api, "clash").await, "127.0.60.9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_mode_gives_every_load_balancer_the_hostname() {
    let addresses = LoadBalancerAddresses::hostname("lb.mooring.test").expect("hostname");
    let c = cluster(addresses, None).await;
    let api = &c.api;
    create_svc(api, service("a", "LoadBalancer", json!({})));
    create_svc(api, service("b", "LoadBalancer", json!({})));
    create_ing(api, ingress("web", json!({})));
    for n in ["a", "b"] {
        let svc: Value = eventually(20, "a hostname", || async {
            let s = get(api, "", "services", n);
            (!lb(&s).is_empty()).then_some(s)
        })
        .await;
        assert_eq!(lb(&svc), vec![json!({"hostname": "lb.mooring.test"})]);
    }
    assert_eq!(
        ing_address(api, "web").await,
        json!({"hostname": "lb.mooring.test"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_survive_a_restart_with_the_same_data_dir() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = Some(dir.path().to_path_buf());
    let (a, c_ip) = {
        let c = cluster(LoadBalancerAddresses::default(), data.clone()).await;
        let api = &c.api;
        for n in ["a", "b", "c"] {
            create_svc(api, service(n, "LoadBalancer", json!({})));
            svc_ip(api, n).await;
        }
        let a = ip_of(&get(api, "", "services", "a")).expect("a");
        let c_ip = ip_of(&get(api, "", "services", "c")).expect("c");
        let b_ip = ip_of(&get(api, "", "services", "b")).expect("b");
        delete_svc(api, "b");
        // b's address is free only in the store; the new cluster must rediscover that.
        assert!(b_ip != a && b_ip != c_ip);
        c.stop();
        (a, c_ip)
    };
    let c = cluster(LoadBalancerAddresses::default(), data).await;
    let api = &c.api;
    create_svc(api, service("d", "LoadBalancer", json!({})));
    let d = svc_ip(api, "d").await;
    // Let the controller settle, then nothing has moved and nothing collides.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(ip_of(&get(api, "", "services", "a")), Some(a.clone()));
    assert_eq!(ip_of(&get(api, "", "services", "c")), Some(c_ip.clone()));
    assert!(d != a && d != c_ip, "d got {d}, a {a}, c {c_ip}");
    assert_eq!(d, "127.0.100.3", "the lowest free address (b's) is reused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_of_the_spec_keeps_the_address() {
    use kube::api::{Api as KubeApi, DynamicObject, Patch, PatchParams};
    let c = cluster(LoadBalancerAddresses::default(), None).await;
    let client = client(&c).await;
    let ar = kube::api::ApiResource::erase::<k8s_openapi::api::core::v1::Service>(&());
    let svcs: KubeApi<DynamicObject> = KubeApi::namespaced_with(client, "default", &ar);
    let pp = PatchParams::apply("argocd-controller");
    let manifest = |port: i64| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "model"},
               "spec": {"type": "LoadBalancer", "selector": {"app": "model"}, "ports": [{"port": port}]}})
    };
    svcs.patch("model", &pp, &Patch::Apply(manifest(80)))
        .await
        .expect("apply");
    let ip = svc_ip(&c.api, "model").await;
    for port in [8080, 9090] {
        let applied = svcs
            .patch("model", &pp, &Patch::Apply(manifest(port)))
            .await
            .expect("re-apply without force: no conflict with the status writer");
        assert_eq!(
            applied.data["status"]["loadBalancer"]["ingress"][0]["ip"], ip,
            "{:?}",
            applied.data
        );
    }
    assert_eq!(ip_of(&get(&c.api, "", "services", "model")), Some(ip));
}
