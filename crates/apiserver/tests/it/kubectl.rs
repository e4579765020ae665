//! The real `kubectl` against the embedded cluster's kubeconfig. scripts/test installs
//! kubectl when it is missing; here a missing kubectl fails with what to install.

use crate::support::{client, eventually, start};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use mooring_apiserver::Cluster;
use mooring_k8s::{k8s_openapi, kube};
use serde_json::json;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

pub(crate) struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// Run the real kubectl with the cluster's kubeconfig (and `stdin`), whatever its outcome.
pub(crate) async fn kubectl(c: &Cluster, args: &[&str], stdin: Option<&str>) -> Out {
    let mut cmd = tokio::process::Command::new("kubectl");
    cmd.args(args)
        .env("KUBECONFIG", c.kubeconfig_path())
        .env_remove("KUBECTL_EXTERNAL_DIFF")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .expect("kubectl must be installed (scripts/test installs the Debian package kubectl)");
    if let Some(input) = stdin {
        let mut si = child.stdin.take().expect("stdin");
        si.write_all(input.as_bytes()).await.expect("write stdin");
        drop(si);
    }
    let out = child.wait_with_output().await.expect("kubectl runs");
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Run the real kubectl; it must succeed. Returns its stdout.
pub(crate) async fn ok(c: &Cluster, args: &[&str], stdin: Option<&str>) -> String {
    let o = kubectl(c, args, stdin).await;
    assert!(o.ok, "kubectl {args:?} failed:\n{}\n{}", o.stdout, o.stderr);
    o.stdout
}

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: registry.local/web:1.0
        ports: [{containerPort: 8080}]
";

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: pytorchjobs.kubeflow.org}
spec:
  group: kubeflow.org
  scope: Namespaced
  names: {plural: pytorchjobs, singular: pytorchjob, kind: PyTorchJob, shortNames: [ptj]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_verbs_against_the_embedded_cluster() {
    let c = start(None).await;
    let ns = ok(&c, &["get", "namespaces"], None).await;
    assert!(
        ns.contains("default") && ns.contains("kube-system") && ns.contains("Active"),
        "{ns}"
    );

    // Client-side apply: create, unchanged, configured.
    assert!(ok(&c, &["apply", "-f", "-"], Some(DEPLOYMENT))
        .await
        .contains("created"));
    assert!(ok(&c, &["apply", "-f", "-"], Some(DEPLOYMENT))
        .await
        .contains("unchanged"));
    let changed = DEPLOYMENT.replace("replicas: 2", "replicas: 3");
    assert!(ok(&c, &["apply", "-f", "-"], Some(&changed))
        .await
        .contains("configured"));
    let table = ok(&c, &["get", "deployments"], None).await;
    assert!(
        table.contains("READY") && table.contains("UP-TO-DATE") && table.contains("web"),
        "{table}"
    );
    let yaml = ok(&c, &["get", "deployment", "web", "-o", "yaml"], None).await;
    assert!(
        yaml.contains("replicas: 3") && yaml.contains("last-applied-configuration"),
        "{yaml}"
    );

    // The simulation rolls it out; `rollout status` returns.
    let status = ok(
        &c,
        &["rollout", "status", "deployment/web", "--timeout=90s"],
        None,
    )
    .await;
    assert!(status.contains("successfully rolled out"), "{status}");

    // scale goes through the scale subresource.
    assert!(
        ok(&c, &["scale", "deployment", "web", "--replicas=4"], None)
            .await
            .contains("scaled")
    );
    let r = ok(
        &c,
        &[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.replicas}",
        ],
        None,
    )
    .await;
    assert_eq!(r.trim(), "4");

    // Server-side apply, create, replace, patch, delete on a ConfigMap.
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: model-config}\ndata: {threshold: \"0.9\"}\n";
    assert!(ok(&c, &["apply", "--server-side", "-f", "-"], Some(cm))
        .await
        .contains("serverside-applied"));
    let cm2 =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: feature-flags}\ndata: {a: \"1\"}\n";
    assert!(ok(&c, &["create", "-f", "-"], Some(cm2))
        .await
        .contains("created"));
    let dup = kubectl(&c, &["create", "-f", "-"], Some(cm2)).await;
    assert!(
        !dup.ok && dup.stderr.contains("AlreadyExists"),
        "{}",
        dup.stderr
    );
    let replaced = cm2.replace("a: \"1\"", "a: \"2\"");
    assert!(ok(&c, &["replace", "-f", "-"], Some(&replaced))
        .await
        .contains("replaced"));
    assert!(ok(
        &c,
        &[
            "patch",
            "configmap",
            "feature-flags",
            "--type",
            "merge",
            "-p",
            r#"{"data":{"b":"3"}}"#
        ],
        None
    )
    .await
    .contains("patched"));
    let data = ok(
        &c,
        &[
            "get",
            "configmap",
            "feature-flags",
            "-o",
            "jsonpath={.data.a}{.data.b}",
        ],
        None,
    )
    .await;
    assert_eq!(data.trim(), "23");

    // A CRD and its objects, by plural and short name.
    assert!(ok(&c, &["apply", "-f", "-"], Some(CRD))
        .await
        .contains("created"));
    let job = "apiVersion: kubeflow.org/v1\nkind: PyTorchJob\nmetadata: {name: bert-finetune}\nspec: {pytorchReplicaSpecs: {Master: {replicas: 1}}}\n";
    // Discovery caches may lag a fresh CRD for a moment, as with a real server.
    eventually(20, "kubectl apply of a CRD object", || async {
        kubectl(&c, &["apply", "-f", "-"], Some(job))
            .await
            .ok
            .then_some(())
    })
    .await;
    let got = ok(&c, &["get", "ptj"], None).await;
    assert!(got.contains("bert-finetune"), "{got}");
    let got = ok(
        &c,
        &[
            "get",
            "pytorchjobs.kubeflow.org",
            "bert-finetune",
            "-o",
            "yaml",
        ],
        None,
    )
    .await;
    assert!(got.contains("pytorchReplicaSpecs"), "{got}");

    assert!(ok(&c, &["delete", "configmap", "feature-flags"], None)
        .await
        .contains("deleted"));
    let gone = kubectl(&c, &["get", "configmap", "feature-flags"], None).await;
    assert!(
        !gone.ok && gone.stderr.contains("NotFound"),
        "{}",
        gone.stderr
    );
    assert!(ok(&c, &["delete", "deployment", "web"], None)
        .await
        .contains("deleted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_watch_streams_changes() {
    let c = start(None).await;
    let mut child = tokio::process::Command::new("kubectl")
        .args(["get", "configmaps", "-w", "--request-timeout=60s"])
        .env("KUBECONFIG", c.kubeconfig_path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl must be installed (scripts/test installs it)");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let api: Api<ConfigMap> = Api::default_namespaced(client(&c).await);
    let created = async {
        // Give kubectl a moment to list and start watching, then create.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        api.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "watched-config"}})).expect("cm"),
        )
        .await
        .expect("create")
    };
    let read = async {
        let mut seen = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            let hit = line.contains("watched-config");
            seen.push(line);
            if hit {
                return seen;
            }
        }
        panic!("kubectl -w ended without the new object: {seen:?}");
    };
    let (_, seen) = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        tokio::join!(created, read)
    })
    .await
    .expect("kubectl -w shows the created object");
    assert!(seen.iter().any(|l| l.contains("watched-config")));
    let _ = child.kill().await;
}

const LOAD_BALANCED: &str = "apiVersion: v1
kind: Service
metadata: {name: model-api}
spec:
  type: LoadBalancer
  selector: {app: model}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata:
  name: held-back
  annotations: {sim.mooring.dev/load-balancer: pending}
spec:
  type: LoadBalancer
  selector: {app: model}
  ports: [{port: 81}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: model}
spec:
  ingressClassName: nginx
  rules:
  - host: model.localtest.me
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: model-api, port: {number: 80}}}}
";

/// `kubectl get svc` shows a LoadBalancer Service's address as EXTERNAL-IP (`<pending>`
/// while it has none) and `kubectl get ingress` the Ingress's as ADDRESS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_shows_load_balancer_addresses() {
    let c = start(None).await;
    ok(&c, &["apply", "-f", "-"], Some(LOAD_BALANCED)).await;
    let row = |table: &str, name: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
    };
    let svcs = eventually(20, "model-api's EXTERNAL-IP", || async {
        let t = ok(&c, &["get", "svc"], None).await;
        row(&t, "model-api")
            .filter(|r| r.get(3).is_some_and(|ip| ip == "127.0.100.2"))
            .map(|_| t)
    })
    .await;
    let header = row(&svcs, "NAME").expect("header");
    assert_eq!(
        header,
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    let held = row(&svcs, "held-back").expect("held-back row");
    assert_eq!(held[1], "LoadBalancer");
    assert_eq!(held[3], "<pending>", "{svcs}");
    let kube_svc = row(&svcs, "model-api").expect("row");
    assert_eq!(kube_svc[4], "80/TCP");

    let ings = eventually(20, "the Ingress's ADDRESS", || async {
        let t = ok(&c, &["get", "ingress"], None).await;
        t.contains("127.0.100.1").then_some(t)
    })
    .await;
    assert_eq!(
        row(&ings, "NAME").expect("header"),
        ["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"]
    );
    let ing = row(&ings, "model").expect("row");
    assert_eq!(
        ing[1..5],
        ["nginx", "model.localtest.me", "127.0.100.1", "80"]
    );

    // The same through jsonpath, as scripts read it.
    let ip = ok(
        &c,
        &[
            "get",
            "svc",
            "model-api",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}",
        ],
        None,
    )
    .await;
    assert_eq!(ip.trim(), "127.0.100.2");
}
