//! Kubernetes protobuf bodies against the embedded cluster: every `kubectl create`
//! generator (the real kubectl sends protobuf for them), protobuf answers and watches read
//! as client-go reads them, and hostile protobuf bodies.

use crate::kubectl::{kubectl, ok};
use crate::support::{raw, start};
use mooring_apiserver::protobuf::{self, MAGIC};
use mooring_apiserver::Cluster;
use serde_json::{json, Value};

async fn get_json(c: &Cluster, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    let out = ok(c, &all, None).await;
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kubectl_create_generator_round_trips() {
    let c = start(None).await;
    let n = ["-n", "demo"];
    let run = |args: Vec<String>| {
        let c = &c;
        async move {
            let a: Vec<&str> = args.iter().map(String::as_str).collect();
            ok(c, &a, None).await
        }
    };
    // The namespace first: what follows `--` is the container's command.
    let cmd = |s: &str| -> Vec<String> {
        n.iter()
            .map(|s| s.to_string())
            .chain(s.split(' ').map(str::to_string))
            .collect()
    };
    assert!(ok(&c, &["create", "namespace", "demo"], None)
        .await
        .contains("namespace/demo created"));
    run(cmd(
        "create deployment web --image=nginx:1.27 --replicas=2 --port=8080",
    ))
    .await;
    run(cmd(
        "create configmap settings --from-literal=mode=fast --from-literal=level=3",
    ))
    .await;
    run(cmd(
        "create secret generic creds --from-literal=user=admin --from-literal=pass=s3cr3t",
    ))
    .await;
    run(cmd(
        "create secret docker-registry pull --docker-server=registry.local --docker-username=u --docker-password=p",
    ))
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ck = rcgen::generate_simple_self_signed(vec!["web.example".to_string()]).expect("cert");
    let (crt, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&crt, ck.cert.pem()).expect("write cert");
    std::fs::write(&key, ck.signing_key.serialize_pem()).expect("write key");
    let mut tls = cmd("create secret tls web-tls");
    tls.push(format!("--cert={}", crt.display()));
    tls.push(format!("--key={}", key.display()));
    run(tls).await;
    run(
        cmd("create cronjob nightly --image=busybox --schedule=*/5_*_*_*_* -- echo hi")
            .into_iter()
            .map(|s| s.replace('_', " "))
            .collect(),
    )
    .await;
    run(cmd("create job once --image=busybox -- echo once")).await;
    run(cmd("create job from-cron --from=cronjob/nightly")).await;
    run(cmd("create service clusterip web --tcp=80:http")).await;
    run(cmd("create service nodeport web-np --tcp=80:8080")).await;
    run(cmd("create service loadbalancer web-lb --tcp=443:8443")).await;
    run(cmd("create serviceaccount runner")).await;
    run(cmd(
        "create role reader --verb=get,list --resource=pods,deployments.apps",
    ))
    .await;
    run(cmd(
        "create rolebinding reader --role=reader --serviceaccount=demo:runner",
    ))
    .await;
    ok(
        &c,
        &[
            "create",
            "clusterrole",
            "node-reader",
            "--verb=get",
            "--resource=nodes",
        ],
        None,
    )
    .await;
    ok(
        &c,
        &[
            "create",
            "clusterrolebinding",
            "node-reader",
            "--clusterrole=node-reader",
            "--user=alice",
        ],
        None,
    )
    .await;
    run(cmd("create quota compute --hard=cpu=2,memory=4Gi,pods=10")).await;
    run(cmd(
        "create poddisruptionbudget web --selector=app=web --min-available=1",
    ))
    .await;
    ok(
        &c,
        &[
            "create",
            "priorityclass",
            "batch-low",
            "--value=100",
            "--description=low",
        ],
        None,
    )
    .await;
    run(cmd(
        "create ingress web --class=nginx --rule=web.example/api*=web:80,tls=web-tls",
    ))
    .await;
    run(cmd(
        "autoscale deployment web --min=2 --max=5 --cpu-percent=80",
    ))
    .await;

    // Read everything back: the fields survived protobuf.
    let d = get_json(&c, &["deployment", "web", "-n", "demo"]).await;
    assert_eq!(d["spec"]["replicas"], 2);
    assert_eq!(d["metadata"]["labels"]["app"], "web");
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    assert_eq!(
        d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
        8080
    );
    // The server's defaults apply to a protobuf body as to JSON.
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    assert!(d["metadata"]["creationTimestamp"].is_string(), "{d}");

    let cm = get_json(&c, &["configmap", "settings", "-n", "demo"]).await;
    assert_eq!(cm["data"], json!({"level": "3", "mode": "fast"}));
    let s = get_json(&c, &["secret", "creds", "-n", "demo"]).await;
    assert_eq!(s["type"], "Opaque");
    assert_eq!(s["data"]["pass"], "czNjcjN0"); // base64 of the bytes "s3cr3t"
    let s = get_json(&c, &["secret", "pull", "-n", "demo"]).await;
    assert_eq!(s["type"], "kubernetes.io/dockerconfigjson");
    assert!(s["data"][".dockerconfigjson"].is_string(), "{s}");
    let s = get_json(&c, &["secret", "web-tls", "-n", "demo"]).await;
    assert_eq!(s["type"], "kubernetes.io/tls");
    use base64::Engine as _;
    let crt_back = base64::engine::general_purpose::STANDARD
        .decode(s["data"]["tls.crt"].as_str().expect("tls.crt"))
        .expect("base64");
    assert_eq!(crt_back, ck.cert.pem().into_bytes());

    let cj = get_json(&c, &["cronjob", "nightly", "-n", "demo"]).await;
    assert_eq!(cj["spec"]["schedule"], "*/5 * * * *");
    assert_eq!(
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"],
        json!(["echo", "hi"])
    );
    let j = get_json(&c, &["job", "from-cron", "-n", "demo"]).await;
    assert_eq!(
        j["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );
    assert_eq!(j["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    let j = get_json(&c, &["job", "once", "-n", "demo"]).await;
    assert_eq!(
        j["spec"]["template"]["spec"]["containers"][0]["command"],
        json!(["echo", "once"])
    );

    let svc = get_json(&c, &["service", "web", "-n", "demo"]).await;
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http"); // IntOrString, type 1
    let svc = get_json(&c, &["service", "web-np", "-n", "demo"]).await;
    assert_eq!(svc["spec"]["type"], "NodePort");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080); // IntOrString, type 0
    let svc = get_json(&c, &["service", "web-lb", "-n", "demo"]).await;
    assert_eq!(svc["spec"]["type"], "LoadBalancer");
    assert_eq!(svc["spec"]["ports"][0]["port"], 443);

    assert_eq!(
        get_json(&c, &["serviceaccount", "runner", "-n", "demo"]).await["metadata"]["name"],
        "runner"
    );
    let role = get_json(&c, &["role", "reader", "-n", "demo"]).await;
    assert_eq!(role["rules"][0]["verbs"], json!(["get", "list"]));
    let rb = get_json(&c, &["rolebinding", "reader", "-n", "demo"]).await;
    assert_eq!(rb["roleRef"]["name"], "reader");
    assert_eq!(rb["subjects"][0]["kind"], "ServiceAccount");
    let cr = get_json(&c, &["clusterrole", "node-reader"]).await;
    assert_eq!(cr["rules"][0]["resources"], json!(["nodes"]));
    let crb = get_json(&c, &["clusterrolebinding", "node-reader"]).await;
    assert_eq!(crb["subjects"][0]["name"], "alice");

    let q = get_json(&c, &["resourcequota", "compute", "-n", "demo"]).await;
    assert_eq!(
        q["spec"]["hard"],
        json!({"cpu": "2", "memory": "4Gi", "pods": "10"})
    );
    let pdb = get_json(&c, &["poddisruptionbudget", "web", "-n", "demo"]).await;
    assert_eq!(pdb["spec"]["minAvailable"], 1);
    assert_eq!(pdb["spec"]["selector"]["matchLabels"]["app"], "web");
    let pc = get_json(&c, &["priorityclass", "batch-low"]).await;
    assert_eq!(pc["value"], 100);
    assert_eq!(pc["description"], "low");
    let ing = get_json(&c, &["ingress", "web", "-n", "demo"]).await;
    assert_eq!(ing["spec"]["ingressClassName"], "nginx");
    assert_eq!(ing["spec"]["rules"][0]["host"], "web.example");
    assert_eq!(
        ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"],
        json!({"name": "web", "port": {"number": 80}})
    );
    assert_eq!(
        ing["spec"]["rules"][0]["http"]["paths"][0]["pathType"],
        "Prefix"
    );
    assert_eq!(ing["spec"]["tls"][0]["secretName"], "web-tls");
    let hpa = get_json(&c, &["hpa", "web", "-n", "demo"]).await;
    assert_eq!(hpa["spec"]["minReplicas"], 2);
    assert_eq!(hpa["spec"]["maxReplicas"], 5);
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "web");

    // `kubectl create token` needs TokenRequest, which is not served: a clear error.
    let t = kubectl(&c, &["create", "token", "runner", "-n", "demo"], None).await;
    assert!(!t.ok);
    assert!(
        t.stderr.contains("TokenRequest") && !t.stderr.contains("UnsupportedMediaType"),
        "{}",
        t.stderr
    );

    // Deleting through protobuf-speaking kubectl paths works too.
    ok(&c, &["delete", "namespace", "demo", "--wait=false"], None).await;
}

fn head(c: &Cluster, request_line: &str, extra: &str) -> String {
    format!(
        "{request_line} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}{extra}",
        c.addr,
        c.token()
    )
}

/// A protobuf body for `v` as client-go sends it.
fn pb(v: &Value) -> Vec<u8> {
    protobuf::encode_object(v)
        .expect("has a protobuf form")
        .expect("encodes")
}

/// The body of a chunked (or plain) HTTP response, as bytes.
fn body_bytes(r: &crate::support::RawResponse) -> Vec<u8> {
    if !r.head.contains("transfer-encoding: chunked") {
        return r.bytes.clone();
    }
    let mut out = Vec::new();
    let mut rest = r.bytes.as_slice();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            std::str::from_utf8(&rest[..eol])
                .expect("chunk size")
                .trim(),
            16,
        )
        .expect("hex size");
        if size == 0 {
            break;
        }
        out.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
        rest = &rest[eol + 2 + size + 2..];
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_answers_lists_watches_and_hostile_bodies() {
    let c = start(None).await;
    let cms = "/api/v1/namespaces/default/configmaps";
    let accept = "\r\nAccept: application/vnd.kubernetes.protobuf, */*";
    let ct = "\r\nContent-Type: application/vnd.kubernetes.protobuf";
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "pb", "labels": {"via": "protobuf"}},
                    "data": {"k": "v"}, "binaryData": {"b": "AAEC"}});

    // Create in protobuf, answered in protobuf.
    let r = raw(
        &c,
        &head(&c, &format!("POST {cms}"), &format!("{ct}{accept}")),
        &pb(&cm),
    )
    .await;
    assert_eq!(r.code, 201, "{}", r.body);
    assert!(
        r.head
            .contains("content-type: application/vnd.kubernetes.protobuf"),
        "{}",
        r.head
    );
    let created = protobuf::decode(&r.bytes)
        .expect("a protobuf answer")
        .object;
    assert_eq!(created["data"]["k"], "v");
    assert_eq!(created["binaryData"]["b"], "AAEC");
    assert!(created["metadata"]["uid"].is_string(), "{created}");

    // Dry run and a replace (PUT) in protobuf.
    let mut dry = cm.clone();
    dry["metadata"]["name"] = json!("dry");
    let r = raw(
        &c,
        &head(&c, &format!("POST {cms}?dryRun=All"), ct),
        &pb(&dry),
    )
    .await;
    assert_eq!(r.code, 201, "{}", r.body);
    let mut changed = created.clone();
    changed["data"]["k"] = json!("w");
    let r = raw(&c, &head(&c, &format!("PUT {cms}/pb"), ct), &pb(&changed)).await;
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(r.json()["data"]["k"], "w");
    assert_eq!(r.json()["binaryData"]["b"], "AAEC");

    // Get and list in protobuf; Table stays JSON.
    let r = raw(&c, &head(&c, &format!("GET {cms}/pb"), accept), b"").await;
    assert_eq!(
        protobuf::decode(&r.bytes).expect("object").object["data"]["k"],
        "w"
    );
    let r = raw(&c, &head(&c, &format!("GET {cms}"), accept), b"").await;
    let list = protobuf::decode(&r.bytes).expect("list");
    assert_eq!(list.kind, "ConfigMapList");
    assert!(list.object["items"]
        .as_array()
        .is_some_and(|i| i.iter().any(|x| x["metadata"]["name"] == "pb")));
    let r = raw(
        &c,
        &head(
            &c,
            &format!("GET {cms}"),
            "\r\nAccept: application/json;as=Table;v=v1;g=meta.k8s.io, application/vnd.kubernetes.protobuf",
        ),
        b"",
    )
    .await;
    assert_eq!(r.json()["kind"], "Table");
    // Errors are a protobuf Status.
    let r = raw(&c, &head(&c, &format!("GET {cms}/missing"), accept), b"").await;
    assert_eq!(r.code, 404);
    let status = protobuf::decode(&r.bytes).expect("Status").object;
    assert_eq!(status["reason"], "NotFound");
    assert_eq!(status["code"], 404);
    // Custom resources have no protobuf form: JSON when allowed, else 406.
    let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}}}]}});
    // The CRD itself is a built-in kind: created in protobuf.
    let r = raw(
        &c,
        &head(
            &c,
            "POST /apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            ct,
        ),
        &pb(&crd),
    )
    .await;
    assert_eq!(r.code, 201, "{}", r.body);
    assert_eq!(
        r.json()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            ["x-kubernetes-preserve-unknown-fields"],
        true
    );
    let apps = "/apis/example.com/v1/namespaces/default/widgets";
    let r = raw(&c, &head(&c, &format!("GET {apps}"), accept), b"").await;
    assert_eq!(r.code, 200, "{}", r.body);
    assert!(
        r.head.contains("content-type: application/json"),
        "{}",
        r.head
    );
    let only_pb = "\r\nAccept: application/vnd.kubernetes.protobuf";
    let r = raw(&c, &head(&c, &format!("GET {apps}"), only_pb), b"").await;
    assert_eq!(r.code, 406, "{}", r.body);
    // ... and a protobuf body for them is a 415, as for custom resources.
    let app = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
    let r = raw(&c, &head(&c, &format!("POST {apps}"), ct), &pb(&app)).await;
    assert_eq!(r.code, 415, "{}", r.body);

    // A protobuf watch: length-prefixed raw WatchEvents whose object is an envelope.
    let r = raw(
        &c,
        &head(
            &c,
            &format!("GET {cms}?watch=true&timeoutSeconds=1"),
            "\r\nAccept: application/vnd.kubernetes.protobuf;stream=watch",
        ),
        b"",
    )
    .await;
    assert!(
        r.head
            .contains("content-type: application/vnd.kubernetes.protobuf;stream=watch"),
        "{}",
        r.head
    );
    let stream = body_bytes(&r);
    let mut events = Vec::new();
    let mut rest = stream.as_slice();
    while rest.len() >= 4 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let frame = &rest[4..4 + len];
        events.push(protobuf::decode_watch_event(frame).expect("a WatchEvent"));
        rest = &rest[4 + len..];
    }
    assert!(
        events
            .iter()
            .any(|(t, o)| t == "ADDED" && o["metadata"]["name"] == "pb" && o["data"]["k"] == "w"),
        "{events:?}"
    );

    // Hostile bodies: 400 naming the problem, nothing stored.
    let rev = c.api.store.revision();
    let good = pb(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "h"}}));
    let secret = pb(&json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "h"}}));
    let deploy =
        pb(&json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "h"}}));
    let mut bad_utf8 = Vec::new();
    bad_utf8.extend_from_slice(&[0x12, 0x06, 0x0a, 0x01, b'k', 0x12, 0x01, 0xff]);
    let bad_utf8 = protobuf::envelope("v1", "ConfigMap", bad_utf8).expect("envelope");
    let wrong_wire = protobuf::envelope("v1", "ConfigMap", vec![0x08, 0x01]).expect("envelope");
    let unknown = protobuf::envelope("example.com/v1", "Widget", vec![]).expect("envelope");
    let mut nested = Vec::new();
    for _ in 0..500 {
        let mut next = vec![0xe2, 0x01];
        prost::encoding::encode_varint(nested.len() as u64, &mut next);
        next.extend_from_slice(&nested);
        nested = next;
    }
    let schema_props = |inner: Vec<u8>| {
        // CRD.spec(2).versions(7)[0].schema(4).openAPIV3Schema(1) = the nested props.
        let wrap = |field: u8, body: Vec<u8>| {
            let mut out = vec![(field << 3) | 2];
            prost::encoding::encode_varint(body.len() as u64, &mut out);
            out.extend_from_slice(&body);
            out
        };
        let mut version = wrap(1, b"v1".to_vec());
        version.extend(wrap(4, wrap(1, inner)));
        protobuf::envelope(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            wrap(2, wrap(7, version)),
        )
        .expect("envelope")
    };
    let deep = schema_props(nested);
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        ("no magic", cms, b"\x0a\x00".to_vec(), "magic"),
        ("truncated", cms, good[..good.len() - 3].to_vec(), "decode"),
        (
            "length prefix beyond the body",
            cms,
            b"k8s\0\x0a\xff\x7f\x01".to_vec(),
            "decode",
        ),
        ("empty envelope", cms, MAGIC.to_vec(), "names no kind"),
        ("invalid UTF-8", cms, bad_utf8, "decode"),
        ("wrong wire type", cms, wrong_wire, "decode"),
        ("unknown kind", cms, unknown, "no kind \"Widget\""),
        (
            "kind disagrees with the URL",
            cms,
            secret,
            "must be of type ConfigMap",
        ),
        (
            "group disagrees with the URL",
            cms,
            deploy,
            "must be of type ConfigMap",
        ),
        ("deeply nested schema", crds, deep, "decode"),
    ];
    for (what, path, body, needle) in cases {
        let r = raw(&c, &head(&c, &format!("POST {path}"), ct), &body).await;
        assert_eq!(r.code, 400, "{what}: {}", r.body);
        assert_eq!(r.json()["reason"], "BadRequest", "{what}");
        let msg = r.json()["message"].as_str().unwrap_or_default().to_string();
        assert!(msg.contains(needle), "{what}: {msg}");
    }
    assert_eq!(
        c.api.store.revision(),
        rev,
        "hostile bodies stored something"
    );
}
