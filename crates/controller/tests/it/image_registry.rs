//! The image watcher's registry client against a real OCI registry (Debian's
//! `docker-registry`, CNCF distribution) and, for what a well-behaved registry never
//! does, a hostile one (axum on 127.0.0.1): endless pagination, a 100 MiB manifest, an
//! HTML answer, a token realm on another host, 429 with `Retry-After`.
//!
//! The real-registry tests skip (saying so) only where `docker-registry` is missing and
//! `MOORING_REQUIRE_REGISTRY` is unset; `scripts/test` installs it and sets it.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mooring_controller::image::registry::{Limits, RegistryAccess, RegistryClient, RegistryError};
use mooring_controller::outbound::Outbound;
use mooring_engine::image::registry::{parse_notification, MEDIA_OCI_MANIFEST};
use mooring_engine::image::{Platform, RegistryConfig};
use mooring_testkit::receiver::HttpReceiver;
use mooring_testkit::registry::{Format, NotifyEndpoint, Registry, RegistryOptions};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The outbound client of the control plane `argocd`, opened to 127.0.0.1 by the admin.
fn outbound() -> Outbound {
    let o = Outbound::new("argocd");
    o.set_allowlist(Some("127.0.0.1"));
    o
}

fn client() -> RegistryClient {
    RegistryClient::new(outbound())
}

/// A registries.conf entry for `api_url`, paced generously (tests read many pages).
fn access(api_url: &str, credentials: Option<(&str, &str)>) -> RegistryAccess {
    RegistryAccess {
        config: RegistryConfig {
            name: "test".into(),
            prefix: api_url.trim_start_matches("http://").into(),
            api_url: api_url.into(),
            limit: 1000,
            ..RegistryConfig::default()
        },
        credentials: credentials.map(|(u, p)| (u.to_string(), p.to_string())),
        admin_configured: true,
    }
}

fn platform(s: &str) -> Platform {
    let p: Vec<&str> = s.split('/').collect();
    Platform {
        os: p[0].into(),
        architecture: p[1].into(),
        variant: p.get(2).map(|v| v.to_string()),
    }
}

fn time(s: &str) -> mooring_core::time::Timestamp {
    mooring_core::time::parse(s).expect("time")
}

/// Start a registry on a blocking thread (its helpers are synchronous).
async fn start(options: RegistryOptions) -> Registry {
    tokio::task::spawn_blocking(move || Registry::start(options))
        .await
        .expect("join")
        .expect("docker-registry")
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("join")
        .expect("push")
}

#[tokio::test]
async fn tags_are_listed_across_pages_of_the_real_registry() {
    if !Registry::available("tags_are_listed_across_pages_of_the_real_registry") {
        return;
    }
    let reg = Arc::new(start(RegistryOptions::default()).await);
    let r = reg.clone();
    blocking(move || {
        for (i, t) in ["1.0.0", "1.1.0", "1.2.0", "2.0.0-rc.1", "latest"]
            .iter()
            .enumerate()
        {
            r.push_image(
                "team-a/model-server",
                t,
                "linux/amd64",
                &format!("2026-12-0{}T10:00:00Z", i + 1),
                Format::Oci,
            )?;
        }
        Ok(())
    })
    .await;
    // Asked for pages of 2 (distribution 2.8 answers every tag at once; pagination is
    // pinned against the paging test server below).
    let c = RegistryClient::with_limits(
        outbound(),
        Limits {
            page_size: 2,
            ..Limits::default()
        },
    );
    let mut tags = c
        .tags(&access(&reg.url(), None), "team-a/model-server")
        .await
        .expect("tags");
    tags.sort();
    assert_eq!(tags, ["1.0.0", "1.1.0", "1.2.0", "2.0.0-rc.1", "latest"]);
    // An unknown repository is an error naming it and the status.
    let e = c
        .tags(&access(&reg.url(), None), "team-a/nothing")
        .await
        .expect_err("unknown");
    assert_eq!(e.status(), Some(404), "{e}");
    assert!(e.to_string().contains("team-a/nothing"), "{e}");
}

#[tokio::test]
async fn basic_auth_uses_the_credentials_and_a_wrong_password_says_so() {
    if !Registry::available("basic_auth_uses_the_credentials_and_a_wrong_password_says_so") {
        return;
    }
    let reg = Arc::new(
        start(RegistryOptions {
            basic_auth: Some(("ci-bot".into(), "s3cret".into())),
            notify: None,
        })
        .await,
    );
    let r = reg.clone();
    blocking(move || {
        r.push_image(
            "ml/train",
            "v1",
            "linux/amd64",
            "2026-12-01T00:00:00Z",
            Format::Docker,
        )
    })
    .await;
    let tags = client()
        .tags(&access(&reg.url(), Some(("ci-bot", "s3cret"))), "ml/train")
        .await
        .expect("tags with the right password");
    assert_eq!(tags, ["v1"]);
    let e = client()
        .tags(&access(&reg.url(), Some(("ci-bot", "wrong"))), "ml/train")
        .await
        .expect_err("wrong password");
    assert!(matches!(e, RegistryError::Auth { .. }), "{e}");
    assert!(e.to_string().contains("credentials were refused"), "{e}");
    assert!(e.to_string().contains(&reg.url()), "{e}");
    let e = client()
        .tags(&access(&reg.url(), None), "ml/train")
        .await
        .expect_err("anonymous");
    assert!(e.to_string().contains("none are configured"), "{e}");
}

#[tokio::test]
async fn an_index_gives_its_platforms_and_the_wanted_platforms_build_time() {
    if !Registry::available("an_index_gives_its_platforms_and_the_wanted_platforms_build_time") {
        return;
    }
    let reg = Arc::new(start(RegistryOptions::default()).await);
    for (format, tag) in [(Format::Oci, "oci"), (Format::Docker, "docker")] {
        let r = reg.clone();
        let pushed = blocking(move || {
            r.push_index(
                "inference/server",
                tag,
                &[
                    ("linux/amd64", "2026-11-01T08:00:00Z"),
                    ("linux/arm64", "2026-11-02T09:30:00Z"),
                ],
                format,
            )
        })
        .await;
        let a = access(&reg.url(), None);
        let info = client()
            .tag_info(
                &a,
                "inference/server",
                tag,
                &[platform("linux/arm64")],
                true,
            )
            .await
            .expect("tag info");
        assert_eq!(info.digest, pushed.digest, "{format:?}");
        assert_eq!(
            info.platforms,
            vec![platform("linux/amd64"), platform("linux/arm64")]
        );
        assert_eq!(
            info.created,
            Some(time("2026-11-02T09:30:00Z")),
            "{format:?}"
        );
        let arm = client()
            .platform_digest(&a, "inference/server", tag, &platform("linux/arm64"))
            .await
            .expect("arm64");
        assert_eq!(arm.as_deref(), Some(pushed.entries[1].1.as_str()));
        let none = client()
            .platform_digest(&a, "inference/server", tag, &platform("linux/s390x"))
            .await
            .expect("s390x");
        assert_eq!(none, None);
        // Without a platform, the default (linux/amd64) decides the build time.
        let info = client()
            .tag_info(&a, "inference/server", tag, &[], true)
            .await
            .expect("tag info");
        assert_eq!(info.created, Some(time("2026-11-01T08:00:00Z")));
    }
}

#[tokio::test]
async fn build_times_and_a_moving_tags_digest_come_from_the_registry() {
    if !Registry::available("build_times_and_a_moving_tags_digest_come_from_the_registry") {
        return;
    }
    let reg = Arc::new(start(RegistryOptions::default()).await);
    let r = reg.clone();
    let (d1, d2, latest1) = blocking(move || {
        let d1 = r.push_image(
            "ml/model",
            "1.0",
            "linux/amd64",
            "2026-10-01T12:00:00Z",
            Format::Oci,
        )?;
        let d2 = r.push_image(
            "ml/model",
            "1.1",
            "linux/amd64",
            "2026-10-15T12:00:00Z",
            Format::Docker,
        )?;
        let latest = r.retag("ml/model", "1.0", "latest")?;
        Ok((d1, d2, latest))
    })
    .await;
    assert_eq!(latest1, d1);
    let a = access(&reg.url(), None);
    let c = client();
    let one = c
        .tag_info(&a, "ml/model", "1.0", &[], true)
        .await
        .expect("1.0");
    let two = c
        .tag_info(&a, "ml/model", "1.1", &[], true)
        .await
        .expect("1.1");
    assert_eq!(one.created, Some(time("2026-10-01T12:00:00Z")));
    assert_eq!(two.created, Some(time("2026-10-15T12:00:00Z")));
    assert_eq!(two.digest, d2);
    assert_eq!(two.platforms, vec![platform("linux/amd64")]);
    // Not asked: no config read, no created.
    let plain = c
        .tag_info(&a, "ml/model", "1.1", &[], false)
        .await
        .expect("1.1");
    assert_eq!((plain.created, plain.digest), (None, d2.clone()));
    let before = c
        .tag_info(&a, "ml/model", "latest", &[], false)
        .await
        .expect("latest");
    assert_eq!(before.digest, d1);
    let r = reg.clone();
    blocking(move || r.retag("ml/model", "1.1", "latest")).await;
    let after = c
        .tag_info(&a, "ml/model", "latest", &[], false)
        .await
        .expect("latest");
    assert_eq!(after.digest, d2, "the moved tag's digest");
    // A manifest by digest is verified against it.
    let m = c.manifest(&a, "ml/model", &d1).await.expect("by digest");
    assert_eq!(m.digest, d1);
}

#[tokio::test]
async fn an_oci_artifact_takes_its_build_time_from_the_annotation() {
    if !Registry::available("an_oci_artifact_takes_its_build_time_from_the_annotation") {
        return;
    }
    let reg = Arc::new(start(RegistryOptions::default()).await);
    let r = reg.clone();
    let digest = blocking(move || {
        r.push_artifact(
            "models/fraud-detector",
            "v3",
            "application/vnd.mooring.model.v1",
            b"fake safetensors weights",
            "2026-12-05T16:20:00Z",
        )
    })
    .await;
    let info = client()
        .tag_info(
            &access(&reg.url(), None),
            "models/fraud-detector",
            "v3",
            &[],
            true,
        )
        .await
        .expect("artifact");
    assert_eq!(info.digest, digest);
    assert_eq!(info.created, Some(time("2026-12-05T16:20:00Z")));
    assert!(info.platforms.is_empty());
}

#[tokio::test]
async fn the_registry_notifies_a_push_and_the_envelope_parses() {
    if !Registry::available("the_registry_notifies_a_push_and_the_envelope_parses") {
        return;
    }
    let hook = HttpReceiver::start(200).expect("receiver");
    let reg = Arc::new(
        start(RegistryOptions {
            basic_auth: None,
            notify: Some(NotifyEndpoint {
                url: hook.url("/api/webhook/registry"),
                bearer_token: "hook-token".into(),
            }),
        })
        .await,
    );
    let r = reg.clone();
    let digest = blocking(move || {
        r.push_image(
            "team-a/model-server",
            "1.4.0",
            "linux/amd64",
            "2026-12-06T08:00:00Z",
            Format::Oci,
        )
    })
    .await;
    let push = mooring_testkit::eventually(30, "the registry's push notification", || {
        let reqs = hook.requests();
        let digest = digest.clone();
        async move {
            reqs.iter().find_map(|r| {
                let n = parse_notification(&r.body).ok()?;
                n.pushes
                    .into_iter()
                    .find(|p| p.digest == digest)
                    .map(|p| (r.clone(), p))
            })
        }
    })
    .await;
    let (req, event) = push;
    assert_eq!(req.header("authorization"), Some("Bearer hook-token"));
    assert!(
        req.header("content-type")
            .is_some_and(|c| c.contains("application/vnd.docker.distribution.events.v1+json")),
        "{:?}",
        req.headers
    );
    assert_eq!(event.repository, "team-a/model-server");
    assert_eq!(event.tag.as_deref(), Some("1.4.0"));
    assert_eq!(event.media_type, MEDIA_OCI_MANIFEST);
    assert_eq!(event.host.as_deref(), Some(reg.host().as_str()));
}

// ---------------------------------------------------------------------------------------
// A hostile registry.

#[derive(Default)]
struct Seen {
    /// (path and query, Authorization) of every request.
    requests: Mutex<Vec<(String, Option<String>)>>,
    flaky: AtomicUsize,
    /// The token realm's URL the Bearer repositories announce.
    realm: Mutex<String>,
}

type Shared = Arc<Seen>;

fn auth_of(h: &HeaderMap) -> Option<String> {
    h.get("authorization")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

fn json_answer(status: StatusCode, body: String) -> Response {
    (status, [("content-type", "application/json")], body).into_response()
}

async fn tags(
    State(s): State<Shared>,
    Path(repo): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    let auth = auth_of(&headers);
    s.requests
        .lock()
        .expect("lock")
        .push((uri.to_string(), auth.clone()));
    match repo.as_str() {
        "endless" => {
            let n = s.requests.lock().expect("lock").len();
            (
                [
                    ("content-type", "application/json".to_string()),
                    (
                        "link",
                        format!("</v2/endless/tags/list?last=t{n}&n=1>; rel=\"next\""),
                    ),
                ],
                format!("{{\"name\":\"endless\",\"tags\":[\"t{n}\"]}}"),
            )
                .into_response()
        }
        "paged" => {
            // Pages as distribution v3 does: `n` tags after `last`, a relative next link,
            // then an absolute one (same host).
            let all = ["1.0", "1.1", "1.2", "2.0", "2.1"];
            let q: std::collections::HashMap<String, String> = uri
                .query()
                .unwrap_or_default()
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let n: usize = q.get("n").and_then(|n| n.parse().ok()).unwrap_or(100);
            let start = q
                .get("last")
                .and_then(|l| all.iter().position(|t| t == l))
                .map_or(0, |i| i + 1);
            let page: Vec<&str> = all.iter().skip(start).take(n).copied().collect();
            let body = serde_json::json!({"name": "paged", "tags": page}).to_string();
            let mut resp = json_answer(StatusCode::OK, body);
            if start + n < all.len() {
                let host = headers
                    .get("host")
                    .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
                    .unwrap_or_default();
                let path = format!("/v2/paged/tags/list?last={}&n={n}", all[start + n - 1]);
                let link = if start == 0 {
                    format!("<{path}>; rel=\"next\"")
                } else {
                    format!("<http://{host}{path}>; rel=\"next\"")
                };
                resp.headers_mut()
                    .insert("link", link.parse().expect("header value"));
            }
            resp
        }
        "escape" => (
            [
                ("content-type", "application/json"),
                (
                    "link",
                    "<http://169.254.169.254/latest/meta-data>; rel=\"next\"",
                ),
            ],
            "{\"tags\":[\"a\"]}",
        )
            .into_response(),
        "flaky" => match s.flaky.fetch_add(1, Ordering::SeqCst) {
            0 => (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "1")],
                "slow down",
            )
                .into_response(),
            1 => (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response(),
            _ => json_answer(StatusCode::OK, "{\"tags\":[\"ok\"]}".into()),
        },
        "down" => (StatusCode::BAD_GATEWAY, "upstream is down").into_response(),
        "bearer" | "foreign" => {
            if auth.as_deref() == Some("Bearer good-token") {
                return json_answer(StatusCode::OK, "{\"tags\":[\"1.0\"]}".into());
            }
            let realm = s.realm.lock().expect("lock").clone();
            (
                StatusCode::UNAUTHORIZED,
                [(
                    "www-authenticate",
                    format!(
                        "Bearer realm=\"{realm}\",service=\"hostile\",scope=\"repository:{repo}:pull\""
                    ),
                )],
                "{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}",
            )
                .into_response()
        }
        _ => json_answer(StatusCode::NOT_FOUND, "{}".into()),
    }
}

/// An image manifest whose config is the blob `{"created":"2026-01-01T00:00:00Z"}`.
fn small_manifest() -> (String, String) {
    let config = r#"{"created":"2026-01-01T00:00:00Z"}"#;
    let digest = digest(config.as_bytes());
    (
        format!(
            r#"{{"schemaVersion":2,"mediaType":"{MEDIA_OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{digest}","size":{}}},"layers":[]}}"#,
            config.len()
        ),
        config.to_string(),
    )
}

fn digest(b: &[u8]) -> String {
    mooring_testkit::registry::sha256_digest(b)
}

async fn manifests(Path((repo, _reference)): Path<(String, String)>) -> Response {
    match repo.as_str() {
        "liar" => (
            [
                ("content-type", MEDIA_OCI_MANIFEST.to_string()),
                ("docker-content-digest", digest(b"something else")),
            ],
            small_manifest().0,
        )
            .into_response(),
        "badconfig" => ([("content-type", MEDIA_OCI_MANIFEST)], small_manifest().0).into_response(),
        "schema1" => (
            [(
                "content-type",
                "application/vnd.docker.distribution.manifest.v1+prettyjws",
            )],
            r#"{"schemaVersion":1,"name":"schema1","tag":"old","fsLayers":[]}"#,
        )
            .into_response(),
        "huge" => {
            let chunks = futures::stream::iter(
                (0..100).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024 * 1024])),
            );
            (
                [("content-type", MEDIA_OCI_MANIFEST)],
                axum::body::Body::from_stream(chunks),
            )
                .into_response()
        }
        "html" => (
            [("content-type", "text/html; charset=utf-8")],
            "<html><body>Sign in</body></html>",
        )
            .into_response(),
        _ => json_answer(StatusCode::NOT_FOUND, "{}".into()),
    }
}

/// Blobs: `badconfig`'s config blob answers other bytes than its digest.
async fn blobs(Path((repo, _digest)): Path<(String, String)>) -> Response {
    match repo.as_str() {
        "badconfig" => json_answer(
            StatusCode::OK,
            r#"{"created":"2030-01-01T00:00:00Z"}"#.into(),
        ),
        _ => json_answer(StatusCode::NOT_FOUND, "{}".into()),
    }
}

/// The token realm: a token for the right Basic credentials or for anyone (anonymous
/// tokens are refused by the registry, as for a private repository).
async fn token(State(s): State<Shared>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let auth = auth_of(&headers);
    s.requests
        .lock()
        .expect("lock")
        .push((uri.to_string(), auth.clone()));
    // base64("ci-bot:s3cret")
    if auth.as_deref() == Some("Basic Y2ktYm90OnMzY3JldA==") {
        json_answer(
            StatusCode::OK,
            "{\"access_token\":\"good-token\",\"expires_in\":300}".into(),
        )
    } else {
        json_answer(StatusCode::OK, "{\"token\":\"anonymous\"}".into())
    }
}

/// Serve the hostile registry (and its token realm at `/token`); its base URL.
async fn hostile(seen: Shared) -> String {
    let app = axum::Router::new()
        .route("/v2/{repo}/tags/list", get(tags))
        .route("/v2/{repo}/manifests/{reference}", get(manifests))
        .route("/v2/{repo}/blobs/{digest}", get(blobs))
        .route("/token", get(token))
        .with_state(seen);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn tags_pages_are_followed_relative_and_absolute() {
    let seen = Shared::default();
    let url = hostile(seen.clone()).await;
    let c = RegistryClient::with_limits(
        outbound(),
        Limits {
            page_size: 2,
            ..Limits::default()
        },
    );
    let tags = c.tags(&access(&url, None), "paged").await.expect("tags");
    assert_eq!(tags, ["1.0", "1.1", "1.2", "2.0", "2.1"]);
    let paths: Vec<String> = seen
        .requests
        .lock()
        .expect("lock")
        .iter()
        .map(|(p, _)| p.clone())
        .collect();
    assert_eq!(
        paths,
        [
            "/v2/paged/tags/list?n=2",
            "/v2/paged/tags/list?last=1.1&n=2",
            "/v2/paged/tags/list?last=2.0&n=2"
        ]
    );
}

#[tokio::test]
async fn endless_pagination_and_links_to_other_hosts_are_bounded_and_named() {
    let seen = Shared::default();
    let url = hostile(seen.clone()).await;
    let c = RegistryClient::with_limits(
        outbound(),
        Limits {
            max_pages: 20,
            ..Limits::default()
        },
    );
    let e = c
        .tags(&access(&url, None), "endless")
        .await
        .expect_err("endless");
    assert!(e.to_string().contains("more than 20 pages"), "{e}");
    assert!(e.to_string().contains(&url), "names the registry: {e}");
    assert_eq!(seen.requests.lock().expect("lock").len(), 20);
    let e = c
        .tags(&access(&url, None), "escape")
        .await
        .expect_err("escape");
    assert!(e.to_string().contains("leaves the registry's host"), "{e}");
}

#[tokio::test]
async fn a_huge_manifest_is_cut_and_an_html_answer_is_not_a_manifest() {
    let url = hostile(Shared::default()).await;
    let a = access(&url, None);
    let e = client()
        .manifest(&a, "huge", "latest")
        .await
        .expect_err("huge");
    assert!(e.to_string().contains("larger than 4194304 bytes"), "{e}");
    let e = client()
        .manifest(&a, "html", "latest")
        .await
        .expect_err("html");
    assert!(e.to_string().contains("text/html"), "{e}");
    assert!(matches!(e, RegistryError::Format { .. }), "{e}");
    let e = client()
        .manifest(&a, "schema1", "old")
        .await
        .expect_err("schema 1");
    assert!(e.to_string().contains("schema 1 is not supported"), "{e}");
    let e = client()
        .manifest(&a, "liar", "latest")
        .await
        .expect_err("digest header");
    assert!(
        e.to_string().contains("is not the digest of the body"),
        "{e}"
    );
    let e = client()
        .tag_info(&a, "badconfig", "latest", &[], true)
        .await
        .expect_err("config digest");
    assert!(e.to_string().contains("the config blob's digest"), "{e}");
}

#[tokio::test]
async fn bearer_tokens_get_credentials_only_from_the_registrys_own_host() {
    // The realm on the registry's own host gets the credentials; the token is cached.
    let seen = Shared::default();
    let url = hostile(seen.clone()).await;
    *seen.realm.lock().expect("lock") = format!("{url}/token");
    let mut a = access(&url, Some(("ci-bot", "s3cret")));
    a.admin_configured = false;
    let c = client();
    assert_eq!(c.tags(&a, "bearer").await.expect("bearer"), ["1.0"]);
    assert_eq!(c.tags(&a, "bearer").await.expect("cached"), ["1.0"]);
    let reqs = seen.requests.lock().expect("lock").clone();
    let token_reqs: Vec<_> = reqs
        .iter()
        .filter(|(p, _)| p.starts_with("/token"))
        .collect();
    assert_eq!(token_reqs.len(), 1, "one token request (cached): {reqs:?}");
    assert!(
        token_reqs[0].0.contains("scope=repository%3Abearer%3Apull"),
        "{reqs:?}"
    );
    assert!(token_reqs[0].0.contains("service=hostile"), "{reqs:?}");
    assert_eq!(
        token_reqs[0].1.as_deref(),
        Some("Basic Y2ktYm90OnMzY3JldA==")
    );

    // The cached token is not lent to a request without those credentials.
    let anonymous = RegistryAccess {
        credentials: None,
        ..a.clone()
    };
    let e = c.tags(&anonymous, "bearer").await.expect_err("anonymous");
    assert!(
        e.to_string().contains("anonymous access was refused"),
        "{e}"
    );

    // A wrong password is refused by the realm's registry, saying so.
    let wrong = RegistryAccess {
        credentials: Some(("ci-bot".into(), "wrong".into())),
        ..a.clone()
    };
    let e = client().tags(&wrong, "bearer").await.expect_err("wrong");
    assert!(e.to_string().contains("credentials were refused"), "{e}");

    // A realm on another host (another server) gets no credentials from a registry the
    // admin did not configure; the error says why.
    let realm_seen = Shared::default();
    let realm_url = hostile(realm_seen.clone()).await;
    *seen.realm.lock().expect("lock") = format!("{realm_url}/token");
    let e = client()
        .tags(&a, "foreign")
        .await
        .expect_err("foreign realm");
    assert!(
        e.to_string().contains("credentials were not sent there"),
        "{e}"
    );
    let realm_reqs = realm_seen.requests.lock().expect("lock").clone();
    assert!(!realm_reqs.is_empty(), "the realm was asked");
    assert!(
        realm_reqs.iter().all(|(_, auth)| auth.is_none()),
        "credentials sent to another host: {realm_reqs:?}"
    );
    // The admin's registry may send them there.
    a.admin_configured = true;
    assert_eq!(client().tags(&a, "foreign").await.expect("admin"), ["1.0"]);

    // A realm the allowlist refuses is an error naming it.
    *seen.realm.lock().expect("lock") = "http://169.254.169.254/token".into();
    let e = client()
        .tags(&a, "foreign")
        .await
        .expect_err("refused realm");
    assert!(
        e.to_string()
            .contains("the token realm http://169.254.169.254/token"),
        "{e}"
    );
    assert!(e.to_string().contains("outbound.allow"), "{e}");
}

#[tokio::test]
async fn a_429_and_a_503_are_retried_and_a_registry_that_stays_down_is_named() {
    let seen = Shared::default();
    let url = hostile(seen.clone()).await;
    let tags = client()
        .tags(&access(&url, None), "flaky")
        .await
        .expect("after the retries");
    assert_eq!(tags, ["ok"]);
    assert_eq!(seen.flaky.load(Ordering::SeqCst), 3);
    let e = client()
        .tags(&access(&url, None), "down")
        .await
        .expect_err("down");
    assert_eq!(e.status(), Some(502), "{e}");
    assert!(e.to_string().contains("upstream is down"), "{e}");
    let attempts = seen
        .requests
        .lock()
        .expect("lock")
        .iter()
        .filter(|(p, _)| p.starts_with("/v2/down/"))
        .count();
    assert_eq!(attempts, 4, "the first request and three retries");
}
