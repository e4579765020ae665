//! Events as the simulated controllers record them, seen through the real kubectl
//! (`describe`, `get events`, `kubectl events`), field selectors, `events.k8s.io/v1`,
//! aggregation and the Event TTL.

use crate::kubectl::ok;
use crate::support::{client, eventually, raw, start, start_with};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, PostParams};
use mooring_apiserver::{Cluster, ClusterOptions};
use mooring_k8s::{k8s_openapi, kube};
use serde_json::json;

const MANIFESTS: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: nginx:1.27, ports: [{containerPort: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 1
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - {name: db, image: postgres:16}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers:
      - {name: agent, image: busybox}
---
apiVersion: v1
kind: Pod
metadata: {name: crashy}
spec:
  containers:
  - {name: app, image: registry.local/app:crashloop}
---
apiVersion: v1
kind: Pod
metadata: {name: pull}
spec:
  containers:
  - {name: app, image: registry.local/app:image-pull}
---
apiVersion: v1
kind: Pod
metadata: {name: unready}
spec:
  containers:
  - {name: app, image: registry.local/app:never-ready}
---
apiVersion: batch/v1
kind: Job
metadata: {name: batch}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: work, image: busybox}
---
apiVersion: batch/v1
kind: Job
metadata: {name: doomed}
spec:
  backoffLimit: 0
  template:
    metadata: {annotations: {sim.mooring.dev/fail: job}}
    spec:
      restartPolicy: Never
      containers:
      - {name: work, image: busybox}
";

fn auth(c: &Cluster) -> String {
    format!("Host: {}\r\nAuthorization: Bearer {}", c.addr, c.token())
}

/// `kubectl describe`'s Events section, once it mentions `needle`.
async fn described(c: &Cluster, what: &[&str], needle: &str) -> String {
    eventually(30, needle, || async {
        let mut args = vec!["describe"];
        args.extend_from_slice(what);
        let o = ok(c, &args, None).await;
        o.contains(needle).then_some(o)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controllers_record_events_kubectl_shows() {
    let c = start(None).await;
    let kc = client(&c).await;
    ok(&c, &["apply", "-f", "-"], Some(MANIFESTS)).await;

    // Deployment: the real ScalingReplicaSet message.
    let d = described(&c, &["deploy", "web"], "ScalingReplicaSet").await;
    assert!(
        d.contains("deployment-controller") && d.contains("to 2 from 0"),
        "{d}"
    );
    assert!(d.contains("Scaled up replica set web-"), "{d}");
    let rs = described(&c, &["rs", "-l", "app=web"], "SuccessfulCreate").await;
    assert!(rs.contains("Created pod: web-"), "{rs}");

    let sts = described(
        &c,
        &["sts", "db"],
        "create Pod db-0 in StatefulSet db successful",
    )
    .await;
    assert!(
        sts.contains("create Claim data-db-0 Pod db-0 in StatefulSet db success"),
        "{sts}"
    );
    let ds = described(&c, &["ds", "agent"], "SuccessfulCreate").await;
    assert!(
        ds.contains("daemonset-controller") && ds.contains("Created pod: agent-"),
        "{ds}"
    );

    // A Pod's life: scheduler and kubelet.
    let pods: Api<Pod> = Api::namespaced(kc.clone(), "default");
    let web = eventually(30, "web pods", || async {
        let l = pods
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?;
        (l.items.len() == 2).then_some(l.items)
    })
    .await;
    let name = web[0].metadata.name.clone().unwrap_or_default();
    let p = described(&c, &["pod", &name], "Started").await;
    for want in [
        "default-scheduler",
        &format!("Successfully assigned default/{name} to mooring-node-"),
        "Pulled",
        "Created container: web",
        "Started container web",
    ] {
        assert!(p.contains(want), "{want}: {p}");
    }

    // Failures.
    let crash = described(&c, &["pod", "crashy"], "BackOff").await;
    assert!(
        crash.contains("Back-off restarting failed container app in pod crashy_default"),
        "{crash}"
    );
    let pull = described(&c, &["pod", "pull"], "ImagePullBackOff").await;
    assert!(
        pull.contains("ErrImagePull") && pull.contains("Failed to pull image"),
        "{pull}"
    );
    let unready = described(&c, &["pod", "unready"], "Unhealthy").await;
    assert!(unready.contains("Readiness probe failed"), "{unready}");
    let job = described(&c, &["job", "batch"], "Completed").await;
    assert!(
        job.contains("job-controller") && job.contains("Created pod: batch-"),
        "{job}"
    );
    let doomed = described(&c, &["job", "doomed"], "BackoffLimitExceeded").await;
    assert!(
        doomed.contains("Job has reached the specified backoff limit"),
        "{doomed}"
    );

    // Aggregation: the crash loop's BackOff is one Event whose count grows.
    let events: Api<Event> = Api::namespaced(kc.clone(), "default");
    eventually(60, "BackOff counted twice", || async {
        let l = events
            .list(&ListParams::default().fields("involvedObject.name=crashy,reason=BackOff"))
            .await
            .ok()?;
        (l.items.len() == 1 && l.items[0].count.unwrap_or(0) >= 2).then_some(())
    })
    .await;

    // kubectl get events / kubectl events / field selectors kubectl uses.
    let all = ok(&c, &["get", "events"], None).await;
    assert!(!all.contains("NAME"), "{all}");
    for col in [
        "LAST SEEN",
        "TYPE",
        "REASON",
        "OBJECT",
        "MESSAGE",
        "deployment/web",
    ] {
        assert!(all.contains(col), "{col}: {all}");
    }
    let for_deploy = ok(&c, &["events", "--for", "deploy/web"], None).await;
    assert!(for_deploy.contains("ScalingReplicaSet"), "{for_deploy}");
    assert!(!for_deploy.contains("Scheduled"), "{for_deploy}");
    let started = ok(
        &c,
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.kind=Pod,reason=Started,type=Normal",
            "-o",
            "jsonpath={range .items[*]}{.reason}{\"\\n\"}{end}",
        ],
        None,
    )
    .await;
    assert!(
        !started.is_empty() && started.lines().all(|l| l == "Started"),
        "{started}"
    );
    let uid = web[0].metadata.uid.clone().unwrap_or_default();
    let by_uid = ok(
        &c,
        &[
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.uid={uid},involvedObject.namespace=default"),
            "-o",
            "name",
        ],
        None,
    )
    .await;
    assert!(by_uid.lines().count() >= 4, "{by_uid}");

    // events.k8s.io/v1: the same objects, its field names.
    let v1 = ok(&c, &["get", "events.v1.events.k8s.io"], None).await;
    assert!(v1.contains("ScalingReplicaSet"), "{v1}");
    let r = raw(
        &c,
        &format!(
            "GET /apis/events.k8s.io/v1/namespaces/default/events?fieldSelector=regarding.name%3Dcrashy,reason%3DBackOff HTTP/1.1\r\n{}",
            auth(&c)
        ),
        b"",
    )
    .await;
    assert_eq!(r.code, 200, "{r:?}");
    let list = r.json();
    let item = &list["items"][0];
    assert_eq!(list["apiVersion"], "events.k8s.io/v1");
    assert_eq!(item["regarding"]["name"], "crashy");
    assert_eq!(item["reportingController"], "kubelet");
    assert!(
        item["note"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Back-off"),
        "{item}"
    );
    assert!(item["deprecatedCount"].as_i64().unwrap_or(0) >= 1, "{item}");
    assert!(item.get("involvedObject").is_none(), "{item}");
    let disc = ok(&c, &["api-resources", "--api-group=events.k8s.io"], None).await;
    assert!(disc.contains("events"), "{disc}");

    // EndpointSlices through kubectl.
    let slices = eventually(30, "a slice with two endpoints", || async {
        let o = ok(
            &c,
            &[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=web",
            ],
            None,
        )
        .await;
        (o.contains("IPv4") && o.matches("10.244.").count() == 2).then_some(o)
    })
    .await;
    assert!(
        slices.contains("ADDRESSTYPE") && slices.contains("web-"),
        "{slices}"
    );

    // Deleting a Pod: the kubelet's Killing.
    pods.delete(&name, &Default::default())
        .await
        .expect("delete");
    eventually(30, "Killing", || async {
        let l = events
            .list(
                &ListParams::default()
                    .fields(&format!("involvedObject.name={name},reason=Killing")),
            )
            .await
            .ok()?;
        l.items
            .first()
            .filter(|e| e.message.as_deref() == Some("Stopping container web"))
            .map(|_| ())
    })
    .await;

    // Hostile input: malformed field selectors and Events.
    let r = raw(
        &c,
        &format!(
            "GET /api/v1/namespaces/default/events?fieldSelector=reason HTTP/1.1\r\n{}",
            auth(&c)
        ),
        b"",
    )
    .await;
    assert_eq!(r.code, 400, "{r:?}");
    let r = raw(
        &c,
        &format!(
            "POST /apis/events.k8s.io/v1/namespaces/default/events HTTP/1.1\r\n{}\r\nContent-Type: application/json",
            auth(&c)
        ),
        br#"{"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {}}"#,
    )
    .await;
    assert_eq!(r.code, 422, "{r:?}");
    let r = raw(
        &c,
        &format!(
            "POST /apis/events.k8s.io/v1/namespaces/default/events HTTP/1.1\r\n{}\r\nContent-Type: application/json",
            auth(&c)
        ),
        br#"{"apiVersion": "v1", "kind": "Event", "metadata": {"name": "x"}}"#,
    )
    .await;
    assert_eq!(r.code, 400, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_expire_after_the_ttl() {
    let c = start_with(ClusterOptions {
        event_ttl: std::time::Duration::from_secs(1),
        ..Default::default()
    })
    .await;
    let kc = client(&c).await;
    let events: Api<Event> = Api::namespaced(kc, "default");
    let ev: Event = serde_json::from_value(json!({
        "metadata": {"name": "hello"},
        "involvedObject": {"kind": "ConfigMap", "name": "x", "namespace": "default"},
        "reason": "Testing", "message": "short-lived", "type": "Normal",
        "firstTimestamp": mooring_core::time::now_rfc3339(),
        "lastTimestamp": mooring_core::time::now_rfc3339(),
        "count": 1,
    }))
    .expect("event");
    events
        .create(&PostParams::default(), &ev)
        .await
        .expect("create");
    // Written through events.k8s.io as well: the same storage, the same TTL.
    let r = raw(
        &c,
        &format!(
            "POST /apis/events.k8s.io/v1/namespaces/default/events HTTP/1.1\r\n{}\r\nContent-Type: application/json",
            auth(&c)
        ),
        json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
               "metadata": {"name": "modern"}, "regarding": {"kind": "ConfigMap", "name": "x"},
               "reason": "Testing", "note": "new API", "type": "Normal",
               "eventTime": "2026-01-01T00:00:00.000000Z", "action": "Test",
               "reportingController": "tests", "reportingInstance": "t-1"})
        .to_string()
        .as_bytes(),
    )
    .await;
    assert_eq!(r.code, 201, "{r:?}");
    let core = events.get("modern").await.expect("seen as a core Event");
    assert_eq!(core.message.as_deref(), Some("new API"));
    assert_eq!(core.reporting_component.as_deref(), Some("tests"));
    // client-go's events.k8s.io recorder patches the series of a repeated Event.
    let r = raw(
        &c,
        &format!(
            "PATCH /apis/events.k8s.io/v1/namespaces/default/events/modern HTTP/1.1\r\n{}\r\nContent-Type: application/merge-patch+json",
            auth(&c)
        ),
        br#"{"series": {"count": 2, "lastObservedTime": "2026-01-01T00:00:01.000000Z"}, "note": "again"}"#,
    )
    .await;
    assert_eq!(r.code, 200, "{r:?}");
    assert_eq!(r.json()["series"]["count"], 2);
    assert_eq!(r.json()["note"], "again");
    let core = events.get("modern").await.expect("patched");
    assert_eq!(core.message.as_deref(), Some("again"));
    assert_eq!(core.series.and_then(|s| s.count), Some(2));
    eventually(30, "events expired", || async {
        let l = events.list(&ListParams::default()).await.ok()?;
        l.items.is_empty().then_some(())
    })
    .await;
}
