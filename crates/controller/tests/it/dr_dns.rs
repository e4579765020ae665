//! DNS switching for disaster recovery against real servers: BIND (`named`) taking
//! TSIG-signed RFC 2136 updates, read back with `dig` and its SOA serial (one per
//! accepted update message), and an ExternalDNS webhook provider on 127.0.0.1.
//!
//! The BIND tests skip (saying so) only where `named` is missing and
//! `MOORING_REQUIRE_DNS_SERVER` is unset; `scripts/test` installs BIND and sets it.

use mooring_controller::dr::dns::{Change, DnsError, Provider, RecordType, Switch};
use mooring_controller::dr::local_dns::LocalBind as Bind;
use mooring_controller::outbound::Outbound;
use mooring_core::dr::{DnsProvider, DnsWebhookSpec, Rfc2136Spec, SecretKeyRef, TsigSpec};
use mooring_testkit::dns::{WebhookProvider, WEBHOOK_MEDIA_TYPE};
use serde_json::json;

const ZONE: &str = "ml.example.com";
const PRIMARY: &str = "10.0.1.10";
const STANDBY: &str = "10.0.2.10";

/// The zone as the primary region serves it.
fn start_bind() -> Bind {
    Bind::start(
        ZONE,
        None,
        &[
            ("inference", "A", PRIMARY),
            ("feature-store", "A", "10.0.1.20"),
            ("models", "CNAME", "lb-primary.us-west-2.example.net."),
        ],
    )
    .expect("named")
}

/// A plan's `rfc2136` provider for `bind` with the key `key_name` of `algorithm`.
fn rfc2136(bind: &Bind, key_name: &str, algorithm: &str) -> DnsProvider {
    DnsProvider {
        rfc2136: Some(Rfc2136Spec {
            server: bind.server(),
            zone: ZONE.into(),
            tsig: Some(TsigSpec {
                key_name: key_name.into(),
                algorithm: Some(algorithm.into()),
                secret_ref: SecretKeyRef {
                    name: "dns-tsig".into(),
                    key: "secret".into(),
                },
            }),
        }),
        webhook: None,
    }
}

/// The provider with `bind`'s key of `algorithm`, as the failover engine builds it.
fn provider(bind: &Bind, algorithm: &str) -> Provider {
    let key = bind.key(algorithm);
    Provider::from_spec(
        &rfc2136(bind, &key.name, algorithm),
        Some(key.secret.clone().into_bytes()),
    )
    .expect("provider")
}

/// The admin's rule opening 127.0.0.1 (loopback is refused by default).
fn loopback_allowed() -> Outbound {
    let o = Outbound::new("argocd");
    o.set_allowlist(Some("127.0.0.1"));
    o
}

fn a(p: &Provider, name: &str, target: &str) -> Change {
    Change {
        fqdn: p.record_name(name).expect("name"),
        record_type: RecordType::A,
        ttl: 60,
        target: target.into(),
    }
}

#[tokio::test]
async fn an_rfc2136_switch_moves_every_record_in_one_signed_update() {
    if !Bind::available("an_rfc2136_switch_moves_every_record_in_one_signed_update") {
        return;
    }
    let bind = start_bind();
    let p = provider(&bind, "hmac-sha256");
    let out = loopback_allowed();
    let inference = p.fqdn("inference");
    assert_eq!(inference, "inference.ml.example.com.");
    assert_eq!(
        p.current(&out, &inference, RecordType::A)
            .await
            .expect("current"),
        vec![PRIMARY]
    );
    let serial = bind.serial().expect("serial");
    let switch = Switch {
        records: vec![
            a(&p, "inference", STANDBY),
            a(&p, "feature-store", "10.0.2.20"),
            Change {
                fqdn: p.fqdn("models"),
                record_type: RecordType::Cname,
                ttl: 30,
                target: "lb-standby.eu-west-1.example.net".into(),
            },
        ],
    };
    assert_eq!(p.pending(&out, &switch).await.expect("pending"), switch);
    p.apply(&out, &switch).await.expect("apply");

    // What a resolver sees now.
    assert_eq!(
        bind.dig("inference.ml.example.com", "A").expect("dig"),
        vec![STANDBY]
    );
    assert_eq!(
        bind.dig("feature-store.ml.example.com", "A").expect("dig"),
        vec!["10.0.2.20"]
    );
    assert_eq!(
        bind.dig("models.ml.example.com", "CNAME").expect("dig"),
        vec!["lb-standby.eu-west-1.example.net."]
    );
    // Three records, one update message.
    assert_eq!(bind.serial().expect("serial"), serial + 1);
    assert_eq!(
        p.current(&out, &inference, RecordType::A)
            .await
            .expect("current"),
        vec![STANDBY]
    );
    assert_eq!(
        p.current(&out, &p.fqdn("models"), RecordType::Cname)
            .await
            .expect("current"),
        vec!["lb-standby.eu-west-1.example.net"]
    );
    // A failover resumed after a crash finds nothing left to write.
    assert_eq!(
        p.pending(&out, &switch).await.expect("pending"),
        Switch::default()
    );
    // A name without records answers nothing (NXDOMAIN is not an error).
    assert!(p
        .current(&out, &p.fqdn("nothing-here"), RecordType::A)
        .await
        .expect("current")
        .is_empty());
}

#[tokio::test]
async fn bind_accepts_every_supported_tsig_algorithm() {
    if !Bind::available("bind_accepts_every_supported_tsig_algorithm") {
        return;
    }
    let bind = start_bind();
    let out = loopback_allowed();
    for (alg, target) in [("hmac-sha512", "10.0.3.1"), ("hmac-sha1", "10.0.3.2")] {
        let p = provider(&bind, alg);
        p.apply(
            &out,
            &Switch {
                records: vec![a(&p, "inference", target)],
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(
            bind.dig("inference.ml.example.com", "A").expect("dig"),
            vec![target],
            "{alg}"
        );
    }
}

#[tokio::test]
async fn a_wrong_key_is_refused_clearly_and_the_record_is_unchanged() {
    if !Bind::available("a_wrong_key_is_refused_clearly_and_the_record_is_unchanged") {
        return;
    }
    let bind = start_bind();
    let out = loopback_allowed();
    let serial = bind.serial().expect("serial");
    // A wrong secret (another valid key's bytes) for the right name.
    let wrong_secret = Provider::from_spec(
        &rfc2136(&bind, "mooring", "hmac-sha256"),
        Some(b"d3JvbmctYnV0LXdlbGwtZm9ybWVkLXNlY3JldC0zMmI=".to_vec()),
    )
    .expect("provider");
    let e = wrong_secret
        .apply(
            &out,
            &Switch {
                records: vec![a(&wrong_secret, "inference", STANDBY)],
            },
        )
        .await
        .expect_err("refused");
    assert_eq!(
        e.to_string(),
        format!("the DNS server {} refused the TSIG key mooring (BADSIG): check the secret and the server's allow-update", bind.server())
    );
    // A key name the server does not know.
    let key = bind.key("hmac-sha256");
    let unknown = Provider::from_spec(
        &rfc2136(&bind, "intruder", "hmac-sha256"),
        Some(key.secret.clone().into_bytes()),
    )
    .expect("provider");
    let e = unknown
        .apply(
            &out,
            &Switch {
                records: vec![a(&unknown, "inference", STANDBY)],
            },
        )
        .await
        .expect_err("refused");
    assert!(
        matches!(&e, DnsError::TsigRefused { key, code, .. } if key == "intruder" && code == "BADKEY"),
        "{e}"
    );
    // Reading with a wrong key is refused as well (the answer cannot be trusted).
    assert!(wrong_secret
        .current(&out, &wrong_secret.fqdn("inference"), RecordType::A)
        .await
        .is_err());
    assert_eq!(
        bind.dig("inference.ml.example.com", "A").expect("dig"),
        vec![PRIMARY]
    );
    assert_eq!(bind.serial().expect("serial"), serial);
}

#[tokio::test]
async fn hostile_changes_are_refused_before_anything_is_sent() {
    if !Bind::available("hostile_changes_are_refused_before_anything_is_sent") {
        return;
    }
    let bind = start_bind();
    let p = provider(&bind, "hmac-sha256");
    let out = loopback_allowed();
    let serial = bind.serial().expect("serial");
    let long = "x".repeat(64);
    let change = |fqdn: String, ttl: u32, target: &str| Switch {
        records: vec![
            a(&p, "inference", STANDBY),
            Change {
                fqdn,
                record_type: RecordType::A,
                ttl,
                target: target.into(),
            },
        ],
    };
    for (switch, wanted) in [
        (
            change("in ference.ml.example.com.".into(), 60, STANDBY),
            "invalid record name `in ference.ml.example.com.`",
        ),
        (
            change(format!("{long}.ml.example.com."), 60, STANDBY),
            "has a label of 64 characters",
        ),
        (change(String::new(), 60, STANDBY), "invalid record name ``"),
        (
            change("api.ml.example.com.".into(), 60, "lb.example.net"),
            "invalid target `lb.example.net`",
        ),
        (
            change("api.ml.example.com.".into(), 0, STANDBY),
            "invalid ttl `0`",
        ),
        (
            change("api.ml.example.com.".into(), 1 << 31, STANDBY),
            "invalid ttl `2147483648`",
        ),
        (
            change("api.other.example.org.".into(), 60, STANDBY),
            "is not in zone ml.example.com.",
        ),
    ] {
        let e = p.apply(&out, &switch).await.expect_err(wanted).to_string();
        assert!(e.contains(wanted), "{wanted}: {e}");
    }
    let e = Provider::from_spec(
        &rfc2136(&bind, "mooring", "hmac-md5"),
        Some(b"AAAA".to_vec()),
    )
    .expect_err("md5");
    assert!(
        e.to_string().contains("rfc2136.tsig.algorithm `hmac-md5`"),
        "{e}"
    );
    // Nothing was sent: the first, valid record of each switch was not written either.
    assert_eq!(bind.serial().expect("serial"), serial);
    assert_eq!(
        bind.dig("inference.ml.example.com", "A").expect("dig"),
        vec![PRIMARY]
    );
}

#[tokio::test]
async fn the_name_server_follows_the_outbound_allowlist() {
    if !Bind::available("the_name_server_follows_the_outbound_allowlist") {
        return;
    }
    let bind = start_bind();
    let p = provider(&bind, "hmac-sha256");
    let serial = bind.serial().expect("serial");
    let closed = Outbound::new("argocd");
    let e = p
        .apply(
            &closed,
            &Switch {
                records: vec![a(&p, "inference", STANDBY)],
            },
        )
        .await
        .expect_err("refused");
    assert!(matches!(&e, DnsError::Outbound(o) if o.is_refused()), "{e}");
    assert!(
        e.to_string().starts_with(&format!(
            "request to dns://{} refused: 127.0.0.1 is a loopback address",
            bind.server()
        )),
        "{e}"
    );
    assert_eq!(bind.serial().expect("serial"), serial);
}

#[tokio::test]
async fn a_server_that_does_not_answer_is_a_clear_error() {
    // Accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    let spec = |port: u16| DnsProvider {
        rfc2136: Some(Rfc2136Spec {
            server: format!("127.0.0.1:{port}"),
            zone: ZONE.into(),
            tsig: None,
        }),
        webhook: None,
    };
    let out = loopback_allowed();
    let p = Provider::from_spec(&spec(silent_port), None).expect("provider");
    let switch = Switch {
        records: vec![a(&p, "inference", STANDBY)],
    };
    let e = p.apply(&out, &switch).await.expect_err("timeout");
    assert_eq!(
        e.to_string(),
        format!("no answer from DNS server 127.0.0.1:{silent_port} in 5s")
    );
    // Nothing listening at all.
    let free = mooring_testkit::free_port().expect("port");
    let p = Provider::from_spec(&spec(free), None).expect("provider");
    let e = p.apply(&out, &switch).await.expect_err("refused");
    assert!(
        e.to_string()
            .starts_with(&format!("cannot connect to DNS server 127.0.0.1:{free}: ")),
        "{e}"
    );
    drop(silent);
}

// ---------------------------------------------------------------------------------------
// ExternalDNS webhook provider.

fn webhook(url: &str) -> Provider {
    Provider::from_spec(
        &DnsProvider {
            rfc2136: None,
            webhook: Some(DnsWebhookSpec {
                url: url.into(),
                zone: Some(ZONE.into()),
            }),
        },
        None,
    )
    .expect("provider")
}

fn endpoints() -> Vec<serde_json::Value> {
    vec![json!({
        "dnsName": "inference.ml.example.com",
        "targets": [PRIMARY],
        "recordType": "A",
        "recordTTL": 60,
        "labels": {"owner": "external-dns"},
    })]
}

#[tokio::test]
async fn a_webhook_switch_is_one_post_of_updates() {
    let server = WebhookProvider::start(ZONE, endpoints()).expect("webhook");
    let p = webhook(&server.url());
    let out = loopback_allowed();
    assert_eq!(
        p.current(&out, &p.fqdn("inference"), RecordType::A)
            .await
            .expect("current"),
        vec![PRIMARY]
    );
    let switch = Switch {
        records: vec![a(&p, "inference", STANDBY), a(&p, "batch", "10.0.2.30")],
    };
    let before = server.requests().len();
    p.apply(&out, &switch).await.expect("apply");
    let requests = server.requests()[before..].to_vec();
    let shape: Vec<(String, String)> = requests
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    assert_eq!(
        shape,
        [("GET", "/"), ("GET", "/records"), ("POST", "/records")]
            .map(|(m, p)| (m.to_string(), p.to_string()))
    );
    assert_eq!(requests[0].header("accept"), Some(WEBHOOK_MEDIA_TYPE));
    let post = &requests[2];
    assert_eq!(post.header("content-type"), Some(WEBHOOK_MEDIA_TYPE));
    assert_eq!(
        post.body,
        json!({
            "Create": [{"dnsName": "batch.ml.example.com", "targets": ["10.0.2.30"], "recordType": "A", "recordTTL": 60}],
            "UpdateOld": endpoints(),
            "UpdateNew": [{"dnsName": "inference.ml.example.com", "targets": [STANDBY], "recordType": "A", "recordTTL": 60, "labels": {"owner": "external-dns"}}],
            "Delete": [],
        })
    );
    assert_eq!(
        p.current(&out, &p.fqdn("inference"), RecordType::A)
            .await
            .expect("current"),
        vec![STANDBY]
    );
    assert_eq!(
        p.pending(&out, &switch).await.expect("pending"),
        Switch::default()
    );
    assert_eq!(server.records().len(), 2);
}

#[tokio::test]
async fn webhook_errors_carry_the_first_line_of_the_answer() {
    let server = WebhookProvider::start(ZONE, endpoints()).expect("webhook");
    let p = webhook(&server.url());
    let out = loopback_allowed();
    let switch = Switch {
        records: vec![a(&p, "inference", STANDBY)],
    };
    for status in [409, 500] {
        server.fail_updates(
            status,
            "zone ml.example.com is locked\ngoroutine 1 [running]:",
        );
        let e = p.apply(&out, &switch).await.expect_err("fails");
        assert_eq!(
            e.to_string(),
            format!(
                "the ExternalDNS webhook {}/records answered {status}: zone ml.example.com is locked",
                server.url()
            )
        );
    }
    assert_eq!(server.records(), endpoints());
    // A record outside the provider's domain filter is refused before the POST.
    let outside = Switch {
        records: vec![Change {
            fqdn: "api.example.org.".into(),
            record_type: RecordType::A,
            ttl: 60,
            target: STANDBY.into(),
        }],
    };
    let other_zone = Provider::from_spec(
        &DnsProvider {
            rfc2136: None,
            webhook: Some(DnsWebhookSpec {
                url: server.url(),
                zone: None,
            }),
        },
        None,
    )
    .expect("provider");
    let posts = |s: &WebhookProvider| s.requests().iter().filter(|r| r.method == "POST").count();
    let before = posts(&server);
    let e = other_zone.apply(&out, &outside).await.expect_err("outside");
    assert!(
        e.to_string()
            .contains("is outside the domain filter of the webhook provider"),
        "{e}"
    );
    assert_eq!(posts(&server), before);
    // Without a zone, a relative name is refused.
    assert!(other_zone.record_name("inference").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_webhook_is_refused_unless_the_admin_allows_it() {
    use mooring_apiserver::{Cluster, ClusterOptions};
    let cluster = Cluster::start(ClusterOptions::default())
        .await
        .expect("cluster");
    let client = mooring_k8s::client_from_kubeconfig(cluster.kubeconfig_path())
        .await
        .expect("client");
    let server = WebhookProvider::start(ZONE, endpoints()).expect("webhook");
    let p = webhook(&server.url());
    let out = Outbound::new("argocd");
    let watch = out.watch_config(client.clone());
    let switch = Switch {
        records: vec![a(&p, "inference", STANDBY)],
    };
    let e = p.apply(&out, &switch).await.expect_err("refused");
    assert!(matches!(&e, DnsError::Outbound(o) if o.is_refused()), "{e}");
    assert!(server.requests().is_empty(), "the provider was contacted");
    crate::support::allow_outbound(&client, &out, "127.0.0.1").await;
    p.apply(&out, &switch).await.expect("allowed");
    assert_eq!(server.records()[0]["targets"], json!([STANDBY]));
    watch.abort();
}

// ---------------------------------------------------------------------------------------
// A server that is not BIND: forged or unsigned answers, error RCODEs.

/// A DNS server on 127.0.0.1 (TCP) answering every message with `reply(request)`.
async fn fake_server(reply: impl Fn(&[u8]) -> Vec<u8> + Send + Sync + 'static) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = l.local_addr().expect("addr").port();
    let reply = std::sync::Arc::new(reply);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = l.accept().await {
            let reply = reply.clone();
            tokio::spawn(async move {
                let mut len = [0u8; 2];
                if sock.read_exact(&mut len).await.is_err() {
                    return;
                }
                let mut req = vec![0u8; usize::from(u16::from_be_bytes(len))];
                if sock.read_exact(&mut req).await.is_err() {
                    return;
                }
                let answer = reply(&req);
                let mut framed = (answer.len() as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&answer);
                let _ = sock.write_all(&framed).await;
            });
        }
    });
    port
}

/// The request's header and first question/zone, as an answer with `rcode` and no
/// records (what a server answers to an update), unsigned.
fn bare_answer(req: &[u8], rcode: u8) -> Vec<u8> {
    let mut pos = 12;
    while req[pos] != 0 {
        pos += 1 + usize::from(req[pos]);
    }
    let mut out = req[..pos + 5].to_vec();
    out[2] |= 0x80;
    out[3] = (out[3] & 0xF0) | rcode;
    out[4..12].copy_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    out
}

/// A TSIG record of key `mooring` (hmac-sha256) with a MAC that is not the key's.
fn forged_tsig(answer: &mut Vec<u8>, id: [u8; 2]) {
    let name = |out: &mut Vec<u8>, n: &str| {
        for l in n.split('.') {
            out.push(l.len() as u8);
            out.extend_from_slice(l.as_bytes());
        }
        out.push(0);
    };
    name(answer, "mooring");
    answer.extend_from_slice(&[0, 250, 0, 255, 0, 0, 0, 0]);
    let mut rdata = Vec::new();
    name(&mut rdata, "hmac-sha256");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    rdata.extend_from_slice(&now.to_be_bytes()[2..]);
    rdata.extend_from_slice(&[1, 44, 0, 32]);
    rdata.extend_from_slice(&[7u8; 32]);
    rdata.extend_from_slice(&id);
    rdata.extend_from_slice(&[0, 0, 0, 0]);
    answer.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    answer.extend_from_slice(&rdata);
    answer[11] = 1;
}

fn signed_provider(port: u16) -> Provider {
    Provider::from_spec(
        &DnsProvider {
            rfc2136: Some(Rfc2136Spec {
                server: format!("127.0.0.1:{port}"),
                zone: ZONE.into(),
                tsig: Some(TsigSpec {
                    key_name: "mooring".into(),
                    algorithm: None,
                    secret_ref: SecretKeyRef {
                        name: "dns-tsig".into(),
                        key: "secret".into(),
                    },
                }),
            }),
            webhook: None,
        },
        Some(b"c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=".to_vec()),
    )
    .expect("provider")
}

#[tokio::test]
async fn unsigned_or_forged_answers_are_not_trusted() {
    let out = loopback_allowed();
    // Unsigned "NOERROR" to a signed update.
    let port = fake_server(|req| bare_answer(req, 0)).await;
    let p = signed_provider(port);
    let switch = Switch {
        records: vec![a(&p, "inference", STANDBY)],
    };
    let e = p.apply(&out, &switch).await.expect_err("unsigned");
    assert_eq!(
        e.to_string(),
        format!("the answer of DNS server 127.0.0.1:{port} does not carry a valid TSIG of key mooring: the answer is not signed")
    );
    // A forged MAC.
    let port = fake_server(|req| {
        let mut a = bare_answer(req, 0);
        forged_tsig(&mut a, [req[0], req[1]]);
        a
    })
    .await;
    let p = signed_provider(port);
    let e = p.apply(&out, &switch).await.expect_err("forged");
    assert!(e.to_string().ends_with(": the MAC does not match"), "{e}");
    // A forged "the record already points to the standby" cannot make a failover skip
    // its update: reading fails as well.
    let e = p.pending(&out, &switch).await.expect_err("forged read");
    assert!(matches!(e, DnsError::BadAnswerSignature { .. }), "{e}");
    // An answer to another message.
    let port = fake_server(|req| {
        let mut a = bare_answer(req, 0);
        a[0] ^= 0xFF;
        a
    })
    .await;
    let e = signed_provider(port)
        .apply(&out, &switch)
        .await
        .expect_err("other id");
    assert!(
        e.to_string().contains("is malformed: it answers message"),
        "{e}"
    );
}

#[tokio::test]
async fn error_rcodes_say_what_to_check() {
    let out = loopback_allowed();
    for (rcode, wanted) in [
        (5, "answered REFUSED for zone ml.example.com: the server refuses it: check its allow-update / update-policy for this address (no TSIG key is configured)"),
        (2, "answered SERVFAIL for zone ml.example.com: the server failed to process it (see its log)"),
        (10, "answered NOTZONE for zone ml.example.com: a record is not in zone ml.example.com"),
        (9, "answered NOTAUTH for zone ml.example.com: the server is not authoritative for zone ml.example.com (is it the zone's primary?)"),
    ] {
        let port = fake_server(move |req| bare_answer(req, rcode)).await;
        let p = Provider::from_spec(
            &DnsProvider {
                rfc2136: Some(Rfc2136Spec {
                    server: format!("127.0.0.1:{port}"),
                    zone: ZONE.into(),
                    tsig: None,
                }),
                webhook: None,
            },
            None,
        )
        .expect("provider");
        let e = p
            .apply(
                &out,
                &Switch {
                    records: vec![a(&p, "inference", STANDBY)],
                },
            )
            .await
            .expect_err("rcode");
        assert_eq!(
            e.to_string(),
            format!("DNS server 127.0.0.1:{port} {wanted}")
        );
    }
}

#[tokio::test]
async fn bind_not_serving_the_zone_answers_notauth() {
    if !Bind::available("bind_not_serving_the_zone_answers_notauth") {
        return;
    }
    let bind = start_bind();
    let key = bind.key("hmac-sha256");
    let mut spec = rfc2136(&bind, &key.name, "hmac-sha256");
    if let Some(r) = spec.rfc2136.as_mut() {
        r.zone = "other.example.org".into();
    }
    let p = Provider::from_spec(&spec, Some(key.secret.clone().into_bytes())).expect("provider");
    let e = p
        .apply(
            &loopback_allowed(),
            &Switch {
                records: vec![a(&p, "inference", STANDBY)],
            },
        )
        .await
        .expect_err("not served");
    assert!(
        matches!(&e, DnsError::Rcode { rcode, .. } if rcode == "NOTAUTH"),
        "{e}"
    );
}
