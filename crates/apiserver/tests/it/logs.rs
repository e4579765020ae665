//! `pods/log` through the real kubectl, kube-rs and raw requests: what simulated
//! containers print, the options, the real errors, following, and hostile input.

use crate::kubectl::{kubectl, ok};
use crate::support::{client, eventually, raw, start};
use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};
use mooring_apiserver::Cluster;
use mooring_k8s::{k8s_openapi, kube};

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
kind: Pod
metadata: {name: crashy}
spec:
  containers:
  - {name: app, image: registry.local/app:crashloop}
---
apiVersion: v1
kind: Pod
metadata: {name: duo}
spec:
  containers:
  - {name: a, image: registry.local/model-server:1}
  - {name: b, image: busybox}
---
apiVersion: v1
kind: Pod
metadata: {name: pull}
spec:
  containers:
  - {name: app, image: registry.local/app:image-pull}
---
apiVersion: batch/v1
kind: Job
metadata: {name: batch}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: work, image: busybox}
";

fn auth(c: &Cluster) -> String {
    format!("Host: {}\r\nAuthorization: Bearer {}", c.addr, c.token())
}

async fn get(c: &Cluster, path: &str) -> crate::support::RawResponse {
    raw(c, &format!("GET {path} HTTP/1.1\r\n{}", auth(c)), b"").await
}

async fn running_pods(pods: &Api<Pod>, selector: &str) -> Vec<Pod> {
    let lp = ListParams::default().labels(selector);
    pods.list(&lp)
        .await
        .expect("list pods")
        .items
        .into_iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_logs_against_simulated_containers() {
    let c = start(None).await;
    let kc = client(&c).await;
    let pods: Api<Pod> = Api::namespaced(kc, "default");
    ok(&c, &["apply", "-f", "-"], Some(MANIFESTS)).await;
    eventually(30, "web Pods running", || async {
        (running_pods(&pods, "app=web").await.len() == 2).then_some(())
    })
    .await;

    // kubectl picks a Pod of the Deployment; nginx start-up lines, then requests.
    let out = eventually(30, "request lines", || async {
        let o = ok(&c, &["logs", "deploy/web"], None).await;
        o.contains("\"GET / HTTP/1.1\" 200").then_some(o)
    })
    .await;
    assert!(
        out.contains("Configuration complete; ready for start up"),
        "{out}"
    );
    let tail = ok(&c, &["logs", "deploy/web", "--tail=3"], None).await;
    assert_eq!(tail.lines().count(), 3, "{tail}");
    let ts = ok(
        &c,
        &["logs", "deploy/web", "--tail=1", "--timestamps"],
        None,
    )
    .await;
    let stamp = ts.split(' ').next().unwrap_or_default();
    assert!(
        mooring_core::time::parse(stamp).is_ok() && stamp.ends_with('Z'),
        "{ts}"
    );
    let since = ok(&c, &["logs", "deploy/web", "--since=1h"], None).await;
    assert!(since.contains("start worker processes"), "{since}");
    let labelled = ok(&c, &["logs", "-l", "app=web", "--tail=1"], None).await;
    assert_eq!(labelled.lines().count(), 2, "{labelled}");

    // Several containers: the real error, then -c.
    eventually(30, "duo running", || async {
        let p = pods.get("duo").await.ok()?;
        (p.status?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
    let e = kubectl(
        &c,
        &["logs", "pod/duo", "--all-containers=false", "-c", ""],
        None,
    )
    .await;
    // kubectl picks the first container itself (with a notice); the server's own answer:
    let r = get(&c, "/api/v1/namespaces/default/pods/duo/log").await;
    assert_eq!(r.code, 400, "{r:?}");
    assert_eq!(
        r.json()["message"],
        "a container name must be specified for pod duo, choose one of: [a b]"
    );
    let _ = e;
    let a = ok(&c, &["logs", "duo", "-c", "a"], None).await;
    assert!(a.contains("Uvicorn running on"), "{a}");
    let r = get(&c, "/api/v1/namespaces/default/pods/duo/log?container=zz").await;
    assert_eq!(r.code, 400);
    assert_eq!(r.json()["message"], "container zz is not valid for pod duo");

    // A crash loop: the previous instance's stack trace; none before the first restart.
    let prev = eventually(60, "a restarted crashy", || async {
        let o = kubectl(&c, &["logs", "crashy", "--previous"], None).await;
        o.ok.then_some(o.stdout)
    })
    .await;
    assert!(prev.contains("panic: runtime error"), "{prev}");
    let none = kubectl(&c, &["logs", "deploy/web", "--previous"], None).await;
    assert!(!none.ok);
    assert!(
        none.stderr
            .contains("previous terminated container \"web\" in pod")
            && none.stderr.contains("not found"),
        "{}",
        none.stderr
    );

    // A container that never started: the kubelet's words.
    let pulling = eventually(30, "pull pod waiting", || async {
        let o = kubectl(&c, &["logs", "pull"], None).await;
        (!o.ok && o.stderr.contains("waiting to start")).then_some(o.stderr)
    })
    .await;
    assert!(
        pulling.contains("container \"app\" in pod \"pull\" is waiting to start: trying and failing to pull image"),
        "{pulling}"
    );

    // A Job Pod logs its work and its result.
    let job = eventually(60, "job finished", || async {
        let o = ok(&c, &["logs", "job/batch"], None).await;
        o.contains("Job completed successfully").then_some(o)
    })
    .await;
    assert!(job.contains("Processing batch 1"), "{job}");

    // Following the Deployment (kubectl picks a Pod): a line written after the start
    // arrives; deleting the Deployment (and so its Pods) ends the stream.
    let mut child = tokio::process::Command::new("kubectl")
        .args(["logs", "-f", "--tail=0", "deploy/web"])
        .env("KUBECONFIG", c.kubeconfig_path())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl logs -f");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let first = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line())
        .await
        .expect("a followed line in time")
        .expect("read")
        .expect("a line");
    assert!(first.contains("HTTP/1.1"), "{first}");
    ok(&c, &["delete", "deploy", "web"], None).await;
    let end = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Ok(Some(_)) = lines.next_line().await {}
    })
    .await;
    assert!(end.is_ok(), "the stream ends when the Pod goes");
    let status = child.wait().await.expect("kubectl exits");
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_log_parameters_and_hostile_input() {
    let c = start(None).await;
    let kc = client(&c).await;
    let pods: Api<Pod> = Api::namespaced(kc.clone(), "default");
    ok(&c, &["apply", "-f", "-"], Some(MANIFESTS)).await;
    let web = eventually(30, "web Pods running", || async {
        let p = running_pods(&pods, "app=web").await;
        (p.len() == 2).then_some(p)
    })
    .await;
    let name = web[0].metadata.name.clone().unwrap_or_default();
    let base = format!("/api/v1/namespaces/default/pods/{name}/log");

    for (q, code, needle) in [
        (
            "tailLines=-1",
            422,
            "tailLines: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            "limitBytes=0",
            422,
            "limitBytes: Invalid value: 0: must be greater than 0",
        ),
        (
            "sinceSeconds=-5",
            422,
            "sinceSeconds: Invalid value: -5: must be greater than 0",
        ),
        (
            "sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z",
            422,
            "at most one of `sinceTime` or `sinceSeconds`",
        ),
        ("tailLines=abc", 400, "invalid syntax"),
        (
            "tailLines=999999999999999999999999",
            400,
            "value out of range",
        ),
        ("follow=maybe", 400, "ParseBool"),
        ("sinceTime=yesterday", 400, "sinceTime"),
        ("previous=true", 400, "previous terminated container"),
    ] {
        let r = get(&c, &format!("{base}?{q}")).await;
        assert_eq!(r.code, code, "{q}: {r:?}");
        let msg = r.json()["message"].as_str().unwrap_or_default().to_string();
        assert!(msg.contains(needle), "{q}: {msg} {r:?}");
    }
    // Absurd but valid: everything there is, bounded.
    let r = get(&c, &format!("{base}?tailLines=1000000000000")).await;
    assert_eq!(r.code, 200);
    assert!(r.body.lines().count() <= mooring_apiserver::sim::logs::MAX_LINES + 1);
    assert!(r.head.contains("content-type: text/plain"), "{}", r.head);
    let r = get(&c, &format!("{base}?limitBytes=10")).await;
    assert_eq!((r.code, r.body.len()), (200, 10), "{r:?}");
    let r = get(&c, &format!("{base}?tailLines=2&bogus=1")).await;
    assert_eq!(r.code, 200);
    assert!(
        r.head
            .contains("warning: 299 - \"unknown query parameters ignored by pods/log: bogus\""),
        "{}",
        r.head
    );
    // Missing Pod, unknown method.
    let r = get(&c, "/api/v1/namespaces/default/pods/nope/log").await;
    assert_eq!(r.code, 404);
    assert_eq!(r.json()["message"], "pods \"nope\" not found");
    let r = raw(&c, &format!("POST {base} HTTP/1.1\r\n{}", auth(&c)), b"").await;
    assert_eq!(r.code, 405);

    // Many followers at once (kube-rs), some stalled (never read): the cluster keeps
    // working, and each follower gets lines.
    let mut streams = Vec::new();
    for _ in 0..200 {
        let lp = LogParams {
            follow: true,
            tail_lines: Some(1),
            ..Default::default()
        };
        streams.push(pods.log_stream(&name, &lp).await.expect("follow"));
    }
    let mut stalled = Vec::new();
    for _ in 0..20 {
        // Followers that never read.
        let lp = LogParams {
            follow: true,
            ..Default::default()
        };
        stalled.push(pods.log_stream(&name, &lp).await.expect("follow"));
    }
    let mut readers = futures::stream::FuturesUnordered::new();
    for s in streams.drain(..) {
        readers.push(async move {
            let mut lines = s.lines();
            let mut n = 0;
            while n < 3 {
                match lines.next().await {
                    Some(Ok(_)) => n += 1,
                    _ => break,
                }
            }
            n
        });
    }
    let mut total = 0;
    while let Some(n) = readers.next().await {
        assert_eq!(n, 3, "a follower got its lines");
        total += 1;
    }
    assert_eq!(total, 200);
    // The simulation still runs: a new Pod gets Ready.
    ok(
        &c,
        &["run", "late", "--image=nginx", "--restart=Always"],
        None,
    )
    .await;
    eventually(30, "late Pod ready", || async {
        let p = pods.get("late").await.ok()?;
        let ready = p
            .status?
            .conditions?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        ready.then_some(())
    })
    .await;
    drop(stalled);
}
