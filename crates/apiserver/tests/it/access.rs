//! Security finding 4, end to end: the embedded API server is authenticated and its data
//! private. Each test performs the attack as an outsider would (raw HTTPS with the
//! headers it chooses, a file listing) and shows it refused with nothing written and
//! nothing leaked; the legitimate clients (kubectl, kube-rs through the kubeconfig) keep
//! working.

use crate::support::{client, raw, start, start_with, RawResponse};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, PostParams};
use mooring_apiserver::{Cluster, ClusterOptions};
use mooring_k8s::{k8s_openapi, kube};
use serde_json::json;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const SECRET_VALUE: &str = "hunter2-repository-password";

/// A Secret worth stealing, created by the legitimate client.
async fn plant_secret(c: &Cluster) {
    let secrets: Api<Secret> = Api::default_namespaced(client(c).await);
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "repo-creds"},
                "stringData": {"password": SECRET_VALUE}}))
            .expect("secret"),
        )
        .await
        .expect("create secret");
}

fn configmap(name: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name}, "data": {"pwned": "yes"}}))
    .expect("json")
}

fn assert_status(r: &RawResponse, code: u16, reason: &str, what: &str) {
    assert_eq!(r.code, code, "{what}: {}", r.body);
    let s = r.json();
    assert_eq!(s["kind"], "Status", "{what}: {}", r.body);
    assert_eq!(s["reason"], reason, "{what}: {}", r.body);
    assert_eq!(s["code"], code, "{what}: {}", r.body);
    assert!(
        !r.body.contains(SECRET_VALUE) && !r.body.contains("aHVudGVyMi"),
        "{what} leaked the secret: {}",
        r.body
    );
}

/// Requests without the cluster's token — none, a wrong one, the constant every older
/// kubeconfig carried, Basic credentials — are 401 with a Kubernetes `Status`, create
/// nothing and read nothing; only the public health and version paths answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_the_token_are_401_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let c = start(Some(dir.path().join("data"))).await;
    plant_secret(&c).await;
    let host = format!("Host: {}", c.addr);
    let wrong = "0".repeat(64);
    let auths = [
        ("no token", String::new()),
        (
            "a wrong token",
            format!("\r\nAuthorization: Bearer {wrong}"),
        ),
        (
            "the old constant token",
            "\r\nAuthorization: Bearer mooring-embedded".to_string(),
        ),
        (
            "Basic credentials",
            "\r\nAuthorization: Basic YWRtaW46YWRtaW4=".to_string(),
        ),
        (
            "the token with a wrong scheme",
            format!("\r\nAuthorization: Token {}", c.token()),
        ),
    ];
    let rev = c.api.store.revision();
    for (what, auth) in &auths {
        let r = raw(
            &c,
            &format!("POST {CMS} HTTP/1.1\r\n{host}\r\nContent-Type: application/json{auth}"),
            &configmap("stolen"),
        )
        .await;
        assert_status(&r, 401, "Unauthorized", &format!("create with {what}"));
        assert!(r.head.contains("www-authenticate: bearer"), "{}", r.head);
        for path in [
            "/api/v1/secrets",
            "/api/v1/namespaces/default/secrets/repo-creds",
            "/api/v1/secrets?watch=true",
            "/apis",
            "/metrics/targets",
            "/openapi/v3",
        ] {
            let r = raw(&c, &format!("GET {path} HTTP/1.1\r\n{host}{auth}"), b"").await;
            assert_status(&r, 401, "Unauthorized", &format!("GET {path} with {what}"));
        }
        let r = raw(
            &c,
            &format!(
                "DELETE /api/v1/namespaces/default/secrets/repo-creds HTTP/1.1\r\n{host}{auth}"
            ),
            b"",
        )
        .await;
        assert_status(&r, 401, "Unauthorized", &format!("delete with {what}"));
    }
    assert_eq!(c.api.store.revision(), rev, "nothing was written");
    let cms: Api<ConfigMap> = Api::default_namespaced(client(&c).await);
    assert!(cms.get_opt("stolen").await.expect("get").is_none());
    let secrets: Api<Secret> = Api::default_namespaced(client(&c).await);
    assert!(secrets.get_opt("repo-creds").await.expect("get").is_some());
    // What Kubernetes shows anonymous users, and nothing else.
    for path in ["/livez", "/readyz", "/healthz", "/version"] {
        let r = raw(&c, &format!("GET {path} HTTP/1.1\r\n{host}"), b"").await;
        assert_eq!(r.code, 200, "{path}: {}", r.body);
    }
    // The right token opens it.
    let r = raw(
        &c,
        &format!(
            "GET /api/v1/namespaces/default/secrets/repo-creds HTTP/1.1\r\n{host}\r\nAuthorization: Bearer {}",
            c.token()
        ),
        b"",
    )
    .await;
    assert_eq!(r.code, 200, "{}", r.body);
}

/// A browser's cross-site "simple" POST (no preflight: `text/plain`, a form, multipart)
/// whose body is a ConfigMap is refused with 415 and creates nothing, even with the token;
/// without it (as a browser sends it, also for a Blob without a type), 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_simple_posts_are_415_and_create_nothing() {
    let c = start(None).await;
    let host = format!("Host: {}", c.addr);
    let token = format!("Authorization: Bearer {}", c.token());
    let rev = c.api.store.revision();
    for ct in [
        "Content-Type: text/plain;charset=UTF-8\r\n",
        "Content-Type: text/plain\r\n",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        "Content-Type: multipart/form-data; boundary=x\r\n",
    ] {
        let r = raw(
            &c,
            &format!(
                "POST {CMS} HTTP/1.1\r\n{host}\r\nOrigin: https://evil.example\r\n{ct}{token}"
            ),
            &configmap("cross-site"),
        )
        .await;
        assert_status(&r, 415, "UnsupportedMediaType", &format!("POST {ct:?}"));
        let r = raw(
            &c,
            &format!("POST {CMS} HTTP/1.1\r\n{host}\r\nOrigin: https://evil.example\r\n{ct}User-Agent: browser"),
            &configmap("cross-site"),
        )
        .await;
        assert_status(&r, 401, "Unauthorized", &format!("browser POST {ct:?}"));
    }
    // A Blob without a type sends no Content-Type: read as JSON, as Kubernetes does (the
    // Python client sends none), so only the token stands in the way, and a browser has none.
    let r = raw(
        &c,
        &format!(
            "POST {CMS} HTTP/1.1\r\n{host}\r\nOrigin: https://evil.example\r\nUser-Agent: browser"
        ),
        &configmap("cross-site"),
    )
    .await;
    assert_status(&r, 401, "Unauthorized", "browser POST without Content-Type");
    // Replacing an existing object that way is refused too.
    let cms: Api<ConfigMap> = Api::default_namespaced(client(&c).await);
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "settings"}, "data": {"k": "v"}}))
            .expect("cm"),
    )
    .await
    .expect("create");
    let rev_after_create = c.api.store.revision();
    let r = raw(
        &c,
        &format!("PUT {CMS}/settings HTTP/1.1\r\n{host}\r\nContent-Type: text/plain\r\n{token}"),
        &configmap("settings"),
    )
    .await;
    assert_status(&r, 415, "UnsupportedMediaType", "PUT text/plain");
    assert!(rev_after_create > rev);
    assert_eq!(c.api.store.revision(), rev_after_create, "nothing written");
    assert!(cms.get_opt("cross-site").await.expect("get").is_none());
    let settings = cms.get("settings").await.expect("get");
    assert_eq!(
        settings.data.expect("data").get("k").map(String::as_str),
        Some("v")
    );
    // The formats Kubernetes accepts still work over raw HTTP.
    for (ct, body) in [
        ("application/json", configmap("as-json")),
        (
            "application/yaml",
            b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: as-yaml}\n".to_vec(),
        ),
    ] {
        let r = raw(
            &c,
            &format!("POST {CMS} HTTP/1.1\r\n{host}\r\nContent-Type: {ct}\r\n{token}"),
            &body,
        )
        .await;
        assert_eq!(r.code, 201, "{ct}: {}", r.body);
    }
}

/// A DNS-rebinding page reaches the loopback port under its own name: its `Host` is
/// refused (403) even with a valid token, before anything is read or written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_rebinding_hosts_are_refused() {
    let c = start(None).await;
    plant_secret(&c).await;
    let token = format!("Authorization: Bearer {}", c.token());
    let port = c.addr.port();
    let rev = c.api.store.revision();
    for host in [
        "evil.example".to_string(),
        format!("evil.example:{port}"),
        format!("127.0.0.1.evil.example:{port}"),
        "127.0.0.1".to_string(),
    ] {
        for (method, path, body) in [
            (
                "GET",
                "/api/v1/namespaces/default/secrets/repo-creds",
                vec![],
            ),
            ("GET", "/version", vec![]),
            ("POST", CMS, configmap("rebound")),
        ] {
            let r = raw(
                &c,
                &format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{token}"),
                &body,
            )
            .await;
            assert_status(
                &r,
                403,
                "Forbidden",
                &format!("{method} {path} Host {host}"),
            );
            assert!(
                r.json()["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("DNS-rebinding"),
                "{}",
                r.body
            );
        }
    }
    assert_eq!(c.api.store.revision(), rev, "nothing was written");
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("LocalHost:{port}"),
    ] {
        let r = raw(
            &c,
            &format!("GET /api/v1/namespaces/default/secrets/repo-creds HTTP/1.1\r\nHost: {host}\r\n{token}"),
            b"",
        )
        .await;
        assert_eq!(r.code, 200, "{host}: {}", r.body);
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// The data directory (0700) and everything secret in it (0600).
fn assert_private(dir: &Path) {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    let mut seen = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir") {
        let p = e.expect("entry").path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
        seen.push(p.file_name().expect("name").to_string_lossy().to_string());
    }
    for f in [
        "cluster.db",
        "cluster.db-wal",
        "kubeconfig",
        "token",
        "ca.crt",
        "ca.key",
        "server.crt",
        "server.key",
    ] {
        assert!(seen.iter().any(|s| s == f), "{f} in {seen:?}");
    }
}

/// `.mooring`-style data directories are private after start, and a directory whose
/// files were opened up (0755/0644, as older versions left them) is tightened at the
/// next start, keeping its token, CA and data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_files_are_private_after_start_and_after_restart() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    let (token, ca) = {
        let c = start(Some(dir.clone())).await;
        plant_secret(&c).await;
        assert_private(&dir);
        let kc = std::fs::read_to_string(c.kubeconfig_path()).expect("kubeconfig");
        assert!(kc.contains(c.token()) && !kc.contains("mooring-embedded"));
        (c.token().to_string(), c.ca_pem().to_string())
    };
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for e in std::fs::read_dir(&dir).expect("read dir") {
        let p = e.expect("entry").path();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let c = start(Some(dir.clone())).await;
    assert_private(&dir);
    assert_eq!(c.token(), token, "the token belongs to the data directory");
    assert_eq!(c.ca_pem(), ca, "the CA belongs to the data directory");
    let secrets: Api<Secret> = Api::default_namespaced(client(&c).await);
    assert!(secrets.get_opt("repo-creds").await.expect("get").is_some());

    // An in-memory cluster's kubeconfig directory is private too.
    let m = start(None).await;
    let kdir = m.kubeconfig_path().parent().expect("dir");
    assert_private_dir_only(kdir);
    assert_eq!(mode(m.kubeconfig_path()), 0o600);
    assert_ne!(m.token(), c.token());
}

fn assert_private_dir_only(dir: &Path) {
    assert_eq!(mode(dir), 0o700, "{}", dir.display());
    for e in std::fs::read_dir(dir).expect("read dir") {
        let p = e.expect("entry").path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
}

/// A token file changed by hand is refused at start with what to do, never replaced
/// silently (the kubeconfigs handed out would stop working without a word).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_token_file_is_an_error() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("data");
    drop(start(Some(dir.clone())).await);
    std::fs::write(dir.join("token"), "mooring-embedded\n").expect("write");
    let e = match Cluster::start(ClusterOptions {
        data_dir: Some(dir.clone()),
        ..Default::default()
    })
    .await
    {
        Ok(_) => panic!("a malformed token file was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(e.contains("token") && e.contains("delete it"), "{e}");
}

/// Bound to another address (127.0.0.2 stands for "elsewhere" here), the cluster serves
/// HTTPS with its certificate naming that address; kubectl verifies it with the CA from
/// the kubeconfig (and refuses it with any other CA), and `Host` must name it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bound_elsewhere_it_serves_tls_that_kubectl_verifies() {
    let tmp = tempfile::tempdir().expect("tmp");
    let c = start_with(ClusterOptions {
        data_dir: Some(tmp.path().join("data")),
        bind_address: "127.0.0.2".parse().expect("ip"),
        hostnames: vec!["mooring.internal".into()],
        ..Default::default()
    })
    .await;
    assert_eq!(c.addr.ip().to_string(), "127.0.0.2");
    assert_eq!(c.url(), format!("https://127.0.0.2:{}", c.addr.port()));
    let kc = std::fs::read_to_string(c.kubeconfig_path()).expect("kubeconfig");
    assert!(kc.contains(&format!("server: https://127.0.0.2:{}", c.addr.port())));
    assert!(kc.contains("certificate-authority-data: "));
    assert!(!kc.contains("insecure-skip-tls-verify"));
    let kubectl = |args: &[&str]| {
        std::process::Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", c.kubeconfig_path())
            .output()
            .expect("kubectl must be installed (scripts/test installs the Debian package kubectl)")
    };
    let out = kubectl(&["get", "namespace", "argocd", "-o", "name"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "namespace/argocd"
    );
    // Another cluster's CA does not verify this server.
    let other = start(None).await;
    let other_ca = tmp.path().join("other-ca.crt");
    std::fs::write(&other_ca, other.ca_pem()).expect("write");
    let out = kubectl(&[
        "--certificate-authority",
        other_ca.to_str().expect("utf-8"),
        "get",
        "namespaces",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificate"), "{err}");
    // Host: the bind address and the configured name are this server; others are not.
    let token = format!("Authorization: Bearer {}", c.token());
    let port = c.addr.port();
    for (host, code) in [
        (format!("127.0.0.2:{port}"), 200),
        (format!("mooring.internal:{port}"), 200),
        (format!("evil.example:{port}"), 403),
    ] {
        let r = raw(
            &c,
            &format!("GET /api/v1/namespaces HTTP/1.1\r\nHost: {host}\r\n{token}"),
            b"",
        )
        .await;
        assert_eq!(r.code, code, "{host}: {}", r.body);
    }
}
