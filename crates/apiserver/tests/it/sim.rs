//! Workload simulation, through the in-process API: Deployments roll out, fail on
//! injected faults, Jobs complete or fail, StatefulSets and DaemonSets become ready,
//! PVCs bind, Services get Endpoints, and Pods export metrics.

use mooring_apiserver::api::{Api, ListOptions, Subresource, WriteOptions};
use mooring_apiserver::registry::ResourceType;
use mooring_apiserver::selector::LabelSelector;
use mooring_apiserver::sim::{self, SimOptions};
use mooring_apiserver::{Cluster, ClusterOptions};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SPEED: f64 = 20.0;

async fn cluster() -> Cluster {
    Cluster::start(ClusterOptions {
        sim: SimOptions {
            nodes: 3,
            speed: SPEED,
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("cluster starts")
}

fn rt(api: &Api, group: &str, plural: &str) -> Arc<ResourceType> {
    api.registry
        .get(group, "v1", plural)
        .unwrap_or_else(|| panic!("{group}/{plural} registered"))
}

fn wo() -> WriteOptions {
    WriteOptions {
        field_manager: Some("sim-test".into()),
        ..Default::default()
    }
}

fn create(api: &Api, group: &str, plural: &str, obj: Value) -> Value {
    api.create(&rt(api, group, plural), Some("default"), obj, &wo())
        .unwrap_or_else(|e| panic!("create {plural}: {e}"))
}

fn get(api: &Api, group: &str, plural: &str, name: &str) -> Option<Value> {
    api.get(&rt(api, group, plural), Some("default"), name).ok()
}

fn list(api: &Api, group: &str, plural: &str, selector: &str) -> Vec<Value> {
    let opts = ListOptions {
        label_selector: Some(LabelSelector::parse(selector).expect("selector")),
        ..Default::default()
    };
    api.list(&rt(api, group, plural), Some("default"), &opts)
        .expect("list")
        .items
        .iter()
        .map(|s| s.value().expect("json"))
        .collect()
}

/// Poll `f` until it returns `Some` (panics with `what` and the last observation after
/// `secs`).
async fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) => {
                if Instant::now() > deadline {
                    panic!("timed out after {secs}s waiting for {what}; last: {last}");
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn condition<'a>(obj: &'a Value, t: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == t)
}

fn deployment(name: &str, replicas: i64, image: &str, annotations: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {"containers": [{"name": "main", "image": image,
                    "ports": [{"name": "http", "containerPort": 8080}]}]},
            },
        },
    })
}

/// What `kubectl rollout status` checks.
fn rolled_out(d: &Value) -> Result<(), String> {
    let s = &d["status"];
    let n = |v: &Value| v.as_i64().unwrap_or(0);
    let want = n(&d["spec"]["replicas"]);
    let ok = n(&s["observedGeneration"]) >= n(&d["metadata"]["generation"])
        && n(&s["updatedReplicas"]) == want
        && n(&s["replicas"]) == n(&s["updatedReplicas"])
        && n(&s["availableReplicas"]) == n(&s["updatedReplicas"]);
    if ok {
        Ok(())
    } else {
        Err(s.to_string())
    }
}

fn update_template(api: &Api, name: &str, f: impl Fn(&mut Value)) {
    let drt = rt(api, "apps", "deployments");
    loop {
        let mut d = get(api, "apps", "deployments", name).expect("deployment");
        f(&mut d["spec"]["template"]);
        match api.update(&drt, Some("default"), name, d, Subresource::Main, &wo()) {
            Ok(_) => return,
            Err(mooring_apiserver::error::ApiError::Conflict { .. }) => continue,
            Err(e) => panic!("update: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_becomes_available_and_rolls_out_a_new_template() {
    let c = cluster().await;
    let api = &c.api;
    create(
        api,
        "apps",
        "deployments",
        deployment("web", 3, "nginx:1.25", json!({})),
    );
    let d = eventually(20, "deployment web rolled out", || {
        let d = get(api, "apps", "deployments", "web").ok_or("missing")?;
        rolled_out(&d)?;
        let p = condition(&d, "Progressing").ok_or("no Progressing")?;
        if p["reason"] != "NewReplicaSetAvailable" {
            return Err(p.to_string());
        }
        Ok(d)
    })
    .await;
    assert_eq!(d["status"]["readyReplicas"], 3);
    assert_eq!(d["status"]["availableReplicas"], 3);
    let avail = condition(&d, "Available").expect("Available");
    assert_eq!(avail["status"], "True");
    assert_eq!(avail["reason"], "MinimumReplicasAvailable");
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );

    let rses = list(api, "apps", "replicasets", "app=web");
    assert_eq!(rses.len(), 1);
    let rs = &rses[0];
    let hash = rs["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .expect("hash label")
        .to_string();
    assert_eq!(rs["metadata"]["name"], format!("web-{hash}"));
    assert_eq!(
        rs["spec"]["selector"]["matchLabels"]["pod-template-hash"],
        hash.as_str()
    );
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    assert_eq!(
        rs["metadata"]["ownerReferences"][0]["uid"],
        d["metadata"]["uid"]
    );
    assert_eq!(rs["metadata"]["ownerReferences"][0]["controller"], true);

    let pods = list(api, "", "pods", "app=web");
    assert_eq!(pods.len(), 3);
    for p in &pods {
        let name = p["metadata"]["name"].as_str().expect("name");
        assert!(
            name.starts_with(&format!("web-{hash}-"))
                && name.len() == format!("web-{hash}-").len() + 5,
            "{name}"
        );
        assert_eq!(p["status"]["phase"], "Running");
        assert!(p["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| n.starts_with("mooring-node-")));
        assert!(p["status"]["podIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.244.")));
        assert_eq!(p["status"]["containerStatuses"][0]["ready"], true);
        assert_eq!(p["status"]["containerStatuses"][0]["started"], true);
        let types: Vec<&str> = p["status"]["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .filter_map(|c| c["type"].as_str())
            .collect();
        for t in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
            assert!(types.contains(&t), "{t} in {types:?}");
        }
    }

    // A new template: a second ReplicaSet takes over.
    update_template(api, "web", |t| {
        t["spec"]["containers"][0]["image"] = json!("nginx:1.26")
    });
    let d = eventually(20, "second rollout", || {
        let d = get(api, "apps", "deployments", "web").ok_or("missing")?;
        rolled_out(&d)?;
        if d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] != "2" {
            return Err(format!("revision {}", d["metadata"]["annotations"]));
        }
        Ok(d)
    })
    .await;
    assert_eq!(
        condition(&d, "Progressing").expect("Progressing")["reason"],
        "NewReplicaSetAvailable"
    );
    let rses = list(api, "apps", "replicasets", "app=web");
    assert_eq!(rses.len(), 2);
    let new = rses
        .iter()
        .find(|r| r["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2")
        .expect("revision 2 ReplicaSet");
    let old = rses
        .iter()
        .find(|r| r["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1")
        .expect("revision 1 ReplicaSet");
    assert_eq!(new["spec"]["replicas"], 3);
    assert_eq!(old["spec"]["replicas"], 0);
    assert_eq!(old["metadata"]["name"], format!("web-{hash}"));
    let new_hash = new["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .expect("hash");
    eventually(10, "only new pods remain", || {
        let pods = list(api, "", "pods", "app=web");
        let all_new = pods
            .iter()
            .all(|p| p["metadata"]["labels"]["pod-template-hash"] == new_hash);
        if pods.len() == 3 && all_new {
            Ok(())
        } else {
            Err(format!("{} pods", pods.len()))
        }
    })
    .await;

    // Scaling down works on the current ReplicaSet.
    let drt = rt(api, "apps", "deployments");
    let scale = api.get_scale(&drt, Some("default"), "web").expect("scale");
    let mut scale = scale;
    scale["spec"]["replicas"] = json!(1);
    api.set_scale(&drt, Some("default"), "web", &scale, &wo())
        .expect("scale down");
    eventually(10, "scaled to 1", || {
        let d = get(api, "apps", "deployments", "web").ok_or("missing")?;
        rolled_out(&d)?;
        let pods = list(api, "", "pods", "app=web");
        if pods.len() == 1 && d["status"]["replicas"] == 1 {
            Ok(())
        } else {
            Err(format!("{} pods, {}", pods.len(), d["status"]))
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_failure_exceeds_the_progress_deadline() {
    let c = cluster().await;
    let api = &c.api;
    // A good release, then a bad one (image tag) that never becomes ready.
    let mut d = deployment("api", 2, "app:1", json!({}));
    d["spec"]["progressDeadlineSeconds"] = json!(20);
    create(api, "apps", "deployments", d);
    eventually(20, "first rollout", || {
        rolled_out(&get(api, "apps", "deployments", "api").ok_or("missing")?)
    })
    .await;
    update_template(api, "api", |t| {
        t["spec"]["containers"][0]["image"] = json!("app:never-ready")
    });
    let d = eventually(30, "ProgressDeadlineExceeded", || {
        let d = get(api, "apps", "deployments", "api").ok_or("missing")?;
        let p = condition(&d, "Progressing").ok_or("no Progressing")?;
        if p["status"] == "False" && p["reason"] == "ProgressDeadlineExceeded" {
            Ok(d)
        } else {
            Err(p.to_string())
        }
    })
    .await;
    assert!(rolled_out(&d).is_err(), "a stuck rollout is not rolled out");
    // maxUnavailable 25% of 2 rounds down to 0: the old Pods keep serving.
    assert_eq!(d["status"]["availableReplicas"], 2);
    assert_eq!(
        condition(&d, "Available").expect("Available")["status"],
        "True"
    );
    let bad: Vec<Value> = list(api, "", "pods", "app=api")
        .into_iter()
        .filter(|p| p["spec"]["containers"][0]["image"] == "app:never-ready")
        .collect();
    assert_eq!(bad.len(), 1, "maxSurge 25% of 2 rounds up to 1");
    assert_eq!(bad[0]["status"]["phase"], "Running");
    let ready = condition(&bad[0], "Ready").expect("Ready");
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "ContainersNotReady");

    // Crash-looping from the start (annotation): never available.
    let mut d = deployment(
        "crash",
        1,
        "app:1",
        json!({"sim.mooring.dev/fail": "crashloop"}),
    );
    d["spec"]["progressDeadlineSeconds"] = json!(30);
    create(api, "apps", "deployments", d);
    let d = eventually(30, "crash deployment times out", || {
        let d = get(api, "apps", "deployments", "crash").ok_or("missing")?;
        let p = condition(&d, "Progressing").ok_or("no Progressing")?;
        if p["reason"] == "ProgressDeadlineExceeded" {
            Ok(d)
        } else {
            Err(p.to_string())
        }
    })
    .await;
    let avail = condition(&d, "Available").expect("Available");
    assert_eq!(avail["status"], "False");
    assert_eq!(avail["reason"], "MinimumReplicasUnavailable");
    eventually(30, "crash-looping pod restarts", || {
        let pods = list(api, "", "pods", "app=crash");
        let cs = pods
            .first()
            .map(|p| p["status"]["containerStatuses"][0].clone())
            .ok_or("no pod")?;
        if cs["restartCount"].as_i64().unwrap_or(0) >= 2 && cs["ready"] == false {
            Ok(())
        } else {
            Err(cs.to_string())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_strategy_and_pause() {
    let c = cluster().await;
    let api = &c.api;
    let mut d = deployment("rec", 2, "app:1", json!({}));
    d["spec"]["strategy"] = json!({"type": "Recreate"});
    create(api, "apps", "deployments", d);
    eventually(20, "first rollout", || {
        rolled_out(&get(api, "apps", "deployments", "rec").ok_or("missing")?)
    })
    .await;
    update_template(api, "rec", |t| {
        t["spec"]["containers"][0]["image"] = json!("app:2")
    });
    eventually(20, "recreated", || {
        let d = get(api, "apps", "deployments", "rec").ok_or("missing")?;
        rolled_out(&d)?;
        let pods = list(api, "", "pods", "app=rec");
        if pods.len() == 2
            && pods
                .iter()
                .all(|p| p["spec"]["containers"][0]["image"] == "app:2")
        {
            Ok(())
        } else {
            Err(format!("{} pods", pods.len()))
        }
    })
    .await;

    // Paused: a template change does not roll out.
    let drt = rt(api, "apps", "deployments");
    let mut d = get(api, "apps", "deployments", "rec").expect("rec");
    d["spec"]["paused"] = json!(true);
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("app:3");
    api.update(&drt, Some("default"), "rec", d, Subresource::Main, &wo())
        .expect("pause");
    let d = eventually(10, "paused condition", || {
        let d = get(api, "apps", "deployments", "rec").ok_or("missing")?;
        let p = condition(&d, "Progressing").ok_or("none")?;
        if p["reason"] == "DeploymentPaused" {
            Ok(d)
        } else {
            Err(p.to_string())
        }
    })
    .await;
    assert_eq!(
        d["status"]["observedGeneration"],
        d["metadata"]["generation"]
    );
    assert_eq!(list(api, "apps", "replicasets", "app=rec").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_complete_or_fail() {
    let c = cluster().await;
    let api = &c.api;
    let job = |name: &str, annotations: Value, completions: i64| {
        json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name},
            "spec": {
                "completions": completions, "parallelism": 2, "backoffLimit": 1,
                "template": {
                    "metadata": {"annotations": annotations},
                    "spec": {"restartPolicy": "Never", "containers": [{"name": "work", "image": "busybox"}]},
                },
            },
        })
    };
    create(
        api,
        "batch",
        "jobs",
        job("ok", json!({"sim.mooring.dev/run-seconds": "1"}), 3),
    );
    create(
        api,
        "batch",
        "jobs",
        job("bad", json!({"sim.mooring.dev/fail": "job"}), 1),
    );
    let j = eventually(30, "job ok complete", || {
        let j = get(api, "batch", "jobs", "ok").ok_or("missing")?;
        match condition(&j, "Complete") {
            Some(c) if c["status"] == "True" => Ok(j),
            _ => Err(j["status"].to_string()),
        }
    })
    .await;
    assert_eq!(j["status"]["succeeded"], 3);
    assert!(j["status"]["startTime"].is_string());
    assert!(j["status"]["completionTime"].is_string());
    assert_eq!(
        condition(&j, "SuccessCriteriaMet").expect("SuccessCriteriaMet")["status"],
        "True"
    );
    assert_eq!(
        condition(&j, "Complete").expect("Complete")["reason"],
        "CompletionsReached"
    );
    let uid = j["metadata"]["uid"].as_str().expect("uid");
    let pods = list(
        api,
        "",
        "pods",
        &format!("batch.kubernetes.io/controller-uid={uid}"),
    );
    assert_eq!(pods.len(), 3);
    assert!(pods.iter().all(|p| p["status"]["phase"] == "Succeeded"));

    let j = eventually(30, "job bad failed", || {
        let j = get(api, "batch", "jobs", "bad").ok_or("missing")?;
        match condition(&j, "Failed") {
            Some(c) if c["status"] == "True" => Ok(j),
            _ => Err(j["status"].to_string()),
        }
    })
    .await;
    assert_eq!(
        condition(&j, "Failed").expect("Failed")["reason"],
        "BackoffLimitExceeded"
    );
    assert_eq!(
        j["status"]["failed"], 2,
        "backoffLimit 1: the second failure ends the Job"
    );
    assert!(condition(&j, "Complete").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_daemonset_and_claims_become_ready() {
    let c = cluster().await;
    let api = &c.api;
    create(
        api,
        "apps",
        "statefulsets",
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db"},
            "spec": {
                "replicas": 3, "serviceName": "db",
                "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [{"name": "pg", "image": "postgres:16"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"},
                    "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "5Gi"}}}}],
            },
        }),
    );
    create(
        api,
        "apps",
        "daemonsets",
        json!({
            "apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent"},
            "spec": {
                "selector": {"matchLabels": {"app": "agent"}},
                "template": {"metadata": {"labels": {"app": "agent"}},
                    "spec": {"containers": [{"name": "a", "image": "agent:1"}]}},
            },
        }),
    );
    create(
        api,
        "",
        "persistentvolumeclaims",
        json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "scratch"},
            "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Gi"}}},
        }),
    );

    let sts = eventually(30, "statefulset ready", || {
        let s = get(api, "apps", "statefulsets", "db").ok_or("missing")?;
        let st = &s["status"];
        if st["readyReplicas"] == 3
            && st["availableReplicas"] == 3
            && st["currentRevision"] == st["updateRevision"]
        {
            Ok(s)
        } else {
            Err(st.to_string())
        }
    })
    .await;
    assert_eq!(sts["status"]["replicas"], 3);
    assert_eq!(sts["status"]["updatedReplicas"], 3);
    for i in 0..3 {
        let p = get(api, "", "pods", &format!("db-{i}")).expect("ordered pod");
        assert_eq!(
            p["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
            format!("data-db-{i}")
        );
        let pvc = eventually(10, "claim bound", || {
            let pvc =
                get(api, "", "persistentvolumeclaims", &format!("data-db-{i}")).ok_or("missing")?;
            if pvc["status"]["phase"] == "Bound" {
                Ok(pvc)
            } else {
                Err(pvc["status"].to_string())
            }
        })
        .await;
        assert_eq!(pvc["status"]["capacity"]["storage"], "5Gi");
    }

    // Rolling update from the highest ordinal.
    let srt = rt(api, "apps", "statefulsets");
    let mut s = sts.clone();
    s["spec"]["template"]["spec"]["containers"][0]["image"] = json!("postgres:17");
    api.update(&srt, Some("default"), "db", s, Subresource::Main, &wo())
        .expect("update sts");
    eventually(30, "statefulset updated", || {
        let s = get(api, "apps", "statefulsets", "db").ok_or("missing")?;
        let st = &s["status"];
        let done = st["updatedReplicas"] == 3
            && st["readyReplicas"] == 3
            && st["currentRevision"] == st["updateRevision"]
            && st["updateRevision"] != sts["status"]["updateRevision"];
        if done {
            Ok(())
        } else {
            Err(st.to_string())
        }
    })
    .await;

    let ds = eventually(30, "daemonset ready", || {
        let d = get(api, "apps", "daemonsets", "agent").ok_or("missing")?;
        let st = &d["status"];
        if st["desiredNumberScheduled"] == 3
            && st["numberReady"] == 3
            && st["numberAvailable"] == 3
            && st["updatedNumberScheduled"] == 3
        {
            Ok(d)
        } else {
            Err(st.to_string())
        }
    })
    .await;
    assert_eq!(ds["status"]["currentNumberScheduled"], 3);
    let mut nodes: Vec<String> = list(api, "", "pods", "app=agent")
        .iter()
        .map(|p| {
            p["spec"]["nodeName"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    nodes.sort();
    assert_eq!(
        nodes,
        vec!["mooring-node-0", "mooring-node-1", "mooring-node-2"]
    );

    // A DaemonSet rolling update replaces every Pod.
    let drt = rt(api, "apps", "daemonsets");
    let mut d = get(api, "apps", "daemonsets", "agent").expect("agent");
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("agent:2");
    api.update(&drt, Some("default"), "agent", d, Subresource::Main, &wo())
        .expect("update ds");
    eventually(30, "daemonset updated", || {
        let d = get(api, "apps", "daemonsets", "agent").ok_or("missing")?;
        let pods = list(api, "", "pods", "app=agent");
        let all_new = pods
            .iter()
            .all(|p| p["spec"]["containers"][0]["image"] == "agent:2");
        let st = &d["status"];
        if all_new
            && pods.len() == 3
            && st["updatedNumberScheduled"] == 3
            && st["numberAvailable"] == 3
        {
            Ok(())
        } else {
            Err(st.to_string())
        }
    })
    .await;

    let pvc = eventually(10, "standalone claim bound", || {
        let pvc = get(api, "", "persistentvolumeclaims", "scratch").ok_or("missing")?;
        if pvc["status"]["phase"] == "Bound" {
            Ok(pvc)
        } else {
            Err(pvc["status"].to_string())
        }
    })
    .await;
    assert_eq!(pvc["status"]["capacity"]["storage"], "1Gi");
    assert_eq!(pvc["status"]["accessModes"], json!(["ReadWriteMany"]));
    assert_eq!(
        pvc["spec"]["volumeName"],
        format!(
            "pvc-{}",
            pvc["metadata"]["uid"].as_str().unwrap_or_default()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_list_ready_pods() {
    let c = cluster().await;
    let api = &c.api;
    create(
        api,
        "apps",
        "deployments",
        deployment("shop", 2, "shop:1", json!({})),
    );
    create(
        api,
        "",
        "services",
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "shop"},
            "spec": {"selector": {"app": "shop"}, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]},
        }),
    );
    let ep = eventually(20, "endpoints with two ready pods", || {
        let ep = get(api, "", "endpoints", "shop").ok_or("missing")?;
        let n = ep
            .pointer("/subsets/0/addresses")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if n == 2 {
            Ok(ep)
        } else {
            Err(ep.to_string())
        }
    })
    .await;
    assert_eq!(ep["subsets"][0]["ports"][0]["port"], 8080);
    assert_eq!(ep["subsets"][0]["ports"][0]["name"], "web");
    let pods = list(api, "", "pods", "app=shop");
    let mut ips: Vec<&str> = pods
        .iter()
        .filter_map(|p| p["status"]["podIP"].as_str())
        .collect();
    ips.sort();
    let mut listed: Vec<&str> = ep["subsets"][0]["addresses"]
        .as_array()
        .expect("addresses")
        .iter()
        .filter_map(|a| a["ip"].as_str())
        .collect();
    listed.sort();
    assert_eq!(ips, listed);
    assert_eq!(ep["subsets"][0]["addresses"][0]["targetRef"]["kind"], "Pod");

    // The EndpointSlice next to it, as the EndpointSlice controller writes it.
    let slice = eventually(20, "an EndpointSlice with two ready endpoints", || {
        let slices = list(
            api,
            "discovery.k8s.io",
            "endpointslices",
            "kubernetes.io/service-name=shop",
        );
        match slices.as_slice() {
            [one] if one["endpoints"].as_array().map_or(0, Vec::len) == 2 => Ok(one.clone()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(
        slice["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("shop-")),
        "{slice}"
    );
    assert_eq!(
        slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Service");
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(slice["ports"][0]["port"], 8080);
    assert_eq!(slice["ports"][0]["name"], "web");
    let e = &slice["endpoints"][0];
    assert_eq!(
        e["conditions"],
        json!({"ready": true, "serving": true, "terminating": false})
    );
    assert_eq!(e["targetRef"]["kind"], "Pod");
    assert!(e["nodeName"]
        .as_str()
        .is_some_and(|n| n.starts_with("mooring-node-")));
    let mut slice_ips: Vec<&str> = slice["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .filter_map(|e| e["addresses"][0].as_str())
        .collect();
    slice_ips.sort();
    assert_eq!(ips, slice_ips);
    // Scaled to zero: the slice stays, empty.
    api.patch(
        &rt(api, "apps", "deployments"),
        Some("default"),
        "shop",
        mooring_apiserver::api::PatchType::Merge,
        &json!({"spec": {"replicas": 0}}),
        mooring_apiserver::api::Subresource::Main,
        &wo(),
    )
    .expect("scale to zero");
    eventually(20, "an empty EndpointSlice", || {
        let slices = list(
            api,
            "discovery.k8s.io",
            "endpointslices",
            "kubernetes.io/service-name=shop",
        );
        match slices.as_slice() {
            [one] if one["endpoints"].as_array().is_some_and(Vec::is_empty) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

/// A plain HTTP/1.1 GET with the cluster's token, as Prometheus scrapes it.
async fn http_get(c: &Cluster, path: &str) -> (String, String) {
    let r = crate::support::raw(
        c,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}",
            c.addr,
            c.token()
        ),
        b"",
    )
    .await;
    (format!("HTTP/1.1 {} ", r.code), r.body)
}

fn metric(text: &str, name: &str, must_contain: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && must_contain.iter().all(|m| l.contains(m)))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_export_metrics_from_their_annotations() {
    let c = cluster().await;
    let api = &c.api;
    let ann = json!({"sim.mooring.dev/request-rate": "1000", "sim.mooring.dev/error-rate": "0.2",
                     "sim.mooring.dev/accuracy": "0.81", "sim.mooring.dev/latency-ms": "20"});
    let mut d = deployment("model", 1, "model:1", ann);
    d["spec"]["template"]["metadata"]["labels"]["version"] = json!("v1");
    d["spec"]["selector"]["matchLabels"]["version"] = json!("v1");
    create(api, "apps", "deployments", d);
    create(
        api,
        "apps",
        "deployments",
        deployment("other", 1, "model:1", json!({})),
    );
    let handler = sim::metrics_handler(api.clone());
    let pod = eventually(20, "model pod running", || {
        let pods = list(api, "", "pods", "app=model");
        let p = pods.first().ok_or("no pod")?;
        if p["status"]["phase"] == "Running" {
            Ok(p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string())
        } else {
            Err(p["status"].to_string())
        }
    })
    .await;
    let path = format!("pods/default/{pod}");
    let first = eventually(20, "some requests counted", || {
        let text = handler(&path).ok_or("404")?;
        let ok = metric(&text, "http_requests_total{", &["code=\"200\""]).ok_or(text.clone())?;
        if ok > 0.0 {
            Ok(text)
        } else {
            Err(text)
        }
    })
    .await;
    let pod_label = format!("pod=\"{pod}\"");
    assert!(first.contains("# TYPE http_requests_total counter"));
    assert!(first.contains("# TYPE http_request_duration_seconds histogram"));
    assert!(first.contains("le=\"0.005\""));
    assert!(first.contains("le=\"+Inf\""));
    assert_eq!(
        metric(
            &first,
            "ml_model_accuracy{",
            &[&pod_label, "app=\"model\"", "version=\"v1\""]
        ),
        Some(0.81)
    );
    let ok1 = metric(&first, "http_requests_total{", &["code=\"200\""]).expect("200s");
    let err1 = metric(&first, "http_requests_total{", &["code=\"500\""]).expect("500s");

    let (ok2, err2) = eventually(20, "counters increase", || {
        let text = handler(&path).ok_or("404")?;
        let ok2 = metric(&text, "http_requests_total{", &["code=\"200\""]).ok_or("no 200")?;
        let err2 = metric(&text, "http_requests_total{", &["code=\"500\""]).ok_or("no 500")?;
        if ok2 > ok1 && err2 > err1 && ok2 + err2 > 500.0 {
            Ok((ok2, err2))
        } else {
            Err(format!("{ok2} {err2}"))
        }
    })
    .await;
    let share = err2 / (ok2 + err2);
    assert!((share - 0.2).abs() < 0.02, "error share {share}");

    // The namespace-wide view includes both Deployments' pods; unknown paths are 404.
    let all = eventually(20, "both pods exported", || {
        let text = handler("pods/default").ok_or("404")?;
        if text.contains("app=\"other\"") && text.contains("app=\"model\"") {
            Ok(text)
        } else {
            Err(text)
        }
    })
    .await;
    assert_eq!(
        metric(&all, "ml_model_accuracy{", &["app=\"other\""]),
        Some(0.95)
    );
    assert!(handler("pods/default/no-such-pod").is_none());

    // The same text over the cluster's HTTP endpoint, as Prometheus scrapes it.
    let (status, body) = http_get(&c, "/metrics/pods/default").await;
    assert!(status.contains(" 200 "), "{status}");
    assert!(
        body.contains("ml_model_accuracy{") && body.contains("app=\"model\""),
        "{body}"
    );
    let (status, _) = http_get(&c, "/metrics/pods/default/no-such-pod").await;
    assert!(status.contains(" 404 "), "{status}");
    assert!(handler("nothing-here").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_converged_cluster_writes_nothing() {
    let c = cluster().await;
    let api = &c.api;
    create(
        api,
        "apps",
        "deployments",
        deployment("calm", 2, "calm:1", json!({})),
    );
    create(
        api,
        "",
        "services",
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "calm"},
            "spec": {"selector": {"app": "calm"}, "ports": [{"port": 80}]},
        }),
    );
    eventually(20, "rolled out", || {
        rolled_out(&get(api, "apps", "deployments", "calm").ok_or("missing")?)
    })
    .await;
    // Once converged, a whole second (20 simulated seconds) passes without a write.
    let mut quiet = false;
    for _ in 0..20 {
        let before = api.store.revision();
        tokio::time::sleep(Duration::from_secs(1)).await;
        if api.store.revision() == before {
            quiet = true;
            break;
        }
    }
    assert!(quiet, "the simulation keeps writing to a converged cluster");
}
