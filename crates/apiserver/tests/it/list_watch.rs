//! List and watch semantics: continue tokens over a consistent snapshot (410 with a fresh
//! token once it is compacted away), `resourceVersionMatch`, and selector watches that
//! see objects enter and leave the selection.

use crate::support::{client, raw, send, start, start_with};
use mooring_apiserver::{Cluster, ClusterOptions};
use serde_json::{json, Value};
use std::process::Stdio;
use tokio::io::AsyncBufReadExt;

const CMS: &str = "/api/v1/namespaces/lw/configmaps";

async fn setup(c: &Cluster, n: usize) -> mooring_k8s::kube::Client {
    let kc = client(c).await;
    send(
        &kc,
        "POST",
        "/api/v1/namespaces",
        Some(json!({"metadata": {"name": "lw"}})),
    )
    .await;
    for i in 0..n {
        let cm = json!({"metadata": {"name": format!("cm-{i}"), "labels": {"tier": "web"}}, "data": {"v": "1"}});
        let (code, v) = send(&kc, "POST", CMS, Some(cm)).await;
        assert_eq!(code, 200, "{v}");
    }
    kc
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["metadata"]["name"].as_str().expect("name").to_string())
        .collect()
}

async fn get_raw(c: &Cluster, path: &str) -> (u16, Value) {
    let r = raw(
        c,
        &format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}",
            c.addr,
            c.token()
        ),
        b"",
    )
    .await;
    (r.code, r.json())
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continue_pages_over_a_consistent_snapshot() {
    let c = start(None).await;
    let kc = setup(&c, 6).await;
    let (code, page1) = send(&kc, "GET", &format!("{CMS}?limit=2"), None).await;
    assert_eq!(code, 200);
    assert_eq!(names(&page1), ["cm-0", "cm-1"]);
    let rv = page1["metadata"]["resourceVersion"].clone();
    let token = page1["metadata"]["continue"]
        .as_str()
        .expect("continue")
        .to_string();
    assert_eq!(page1["metadata"]["remainingItemCount"], 4);

    // Between pages: a later object is deleted, one modified, one created.
    send(&kc, "DELETE", &format!("{CMS}/cm-5"), None).await;
    send(
        &kc,
        "PUT",
        &format!("{CMS}/cm-3"),
        Some(json!({"metadata": {"name": "cm-3"}, "data": {"v": "2"}})),
    )
    .await;
    send(
        &kc,
        "POST",
        CMS,
        Some(json!({"metadata": {"name": "cm-9"}})),
    )
    .await;

    let (_, page2) = send(
        &kc,
        "GET",
        &format!("{CMS}?limit=2&continue={}", enc(&token)),
        None,
    )
    .await;
    assert_eq!(names(&page2), ["cm-2", "cm-3"]);
    assert_eq!(
        page2["items"][1]["data"]["v"], "1",
        "the snapshot's version of cm-3"
    );
    assert_eq!(page2["metadata"]["resourceVersion"], rv);
    let token = page2["metadata"]["continue"]
        .as_str()
        .expect("continue")
        .to_string();
    let (_, page3) = send(
        &kc,
        "GET",
        &format!("{CMS}?limit=2&continue={}", enc(&token)),
        None,
    )
    .await;
    assert_eq!(
        names(&page3),
        ["cm-4", "cm-5"],
        "deleted later, still in the snapshot; cm-9 not"
    );
    assert!(page3["metadata"].get("continue").is_none(), "{page3}");

    // resourceVersionMatch=Exact reads the same past state; NotOlderThan the current one.
    let (code, exact) = send(
        &kc,
        "GET",
        &format!(
            "{CMS}?resourceVersion={}&resourceVersionMatch=Exact",
            rv.as_str().expect("rv")
        ),
        None,
    )
    .await;
    assert_eq!(code, 200, "{exact}");
    assert_eq!(
        names(&exact),
        ["cm-0", "cm-1", "cm-2", "cm-3", "cm-4", "cm-5"]
    );
    let (_, newer) = send(
        &kc,
        "GET",
        &format!(
            "{CMS}?resourceVersion={}&resourceVersionMatch=NotOlderThan",
            rv.as_str().expect("rv")
        ),
        None,
    )
    .await;
    assert_eq!(
        names(&newer),
        ["cm-0", "cm-1", "cm-2", "cm-3", "cm-4", "cm-9"]
    );

    // Invalid combinations, as Kubernetes' ValidateListOptions.
    let current = c.api.store.revision();
    for (query, code, reason) in [
        ("resourceVersionMatch=Exact", 422, "Invalid"),
        (
            "resourceVersion=0&resourceVersionMatch=Exact",
            422,
            "Invalid",
        ),
        (
            "resourceVersion=1&resourceVersionMatch=Sometimes",
            422,
            "Invalid",
        ),
        (
            &*format!(
                "resourceVersion=1&resourceVersionMatch=Exact&continue={}",
                enc(&token)
            ),
            422,
            "Invalid",
        ),
        (
            &*format!("resourceVersion=5&continue={}", enc(&token)),
            400,
            "BadRequest",
        ),
        ("resourceVersion=abc", 400, "BadRequest"),
        ("limit=-1", 400, "BadRequest"),
    ] {
        let (got, v) = send(&kc, "GET", &format!("{CMS}?{query}"), None).await;
        assert_eq!(
            (got, v["reason"].as_str()),
            (code, Some(reason)),
            "{query}: {v}"
        );
    }
    // A revision the store has not reached: 504 (raw: clients retry 504s).
    let (got, v) = get_raw(
        &c,
        &format!(
            "{CMS}?resourceVersion={}&resourceVersionMatch=Exact",
            current + 1000
        ),
    )
    .await;
    assert_eq!((got, v["reason"].as_str()), (504, Some("Timeout")), "{v}");
    // Malformed continue tokens: 400, never a panic.
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
    for bad in [
        "zz".to_string(),
        "abc".to_string(),
        hex("not json"),
        hex(r#"{"ns":"lw","name":"cm-1"}"#),
        hex(r#"{"ns":"lw","name":"cm-1","rv":-3}"#),
        hex(r#"{"ns":7,"name":"cm-1","rv":1}"#),
        "0".repeat(10_000),
        "%00%ff".to_string(),
    ] {
        let (got, v) = send(
            &kc,
            "GET",
            &format!("{CMS}?limit=2&continue={}", enc(&bad)),
            None,
        )
        .await;
        assert_eq!(
            (got, v["reason"].as_str()),
            (400, Some("BadRequest")),
            "{bad:.40}: {v}"
        );
    }
    c.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_snapshot_is_410_with_a_fresh_continue_token() {
    let c = start_with(ClusterOptions {
        event_log: 30,
        ..Default::default()
    })
    .await;
    let kc = setup(&c, 5).await;
    let (_, page1) = send(&kc, "GET", &format!("{CMS}?limit=2"), None).await;
    let rv = page1["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    let token = page1["metadata"]["continue"]
        .as_str()
        .expect("continue")
        .to_string();
    // More writes than the store keeps history for (compaction, as etcd's).
    for i in 0..40 {
        send(
            &kc,
            "PUT",
            &format!("{CMS}/cm-0"),
            Some(json!({"metadata": {"name": "cm-0"}, "data": {"v": i.to_string()}})),
        )
        .await;
    }
    let (code, status) = get_raw(&c, &format!("{CMS}?limit=2&continue={}", enc(&token))).await;
    assert_eq!(code, 410, "{status}");
    assert_eq!(status["reason"], "Expired");
    assert!(status["message"]
        .as_str()
        .expect("message")
        .starts_with("The provided continue parameter is too old"));
    let fresh = status["metadata"]["continue"]
        .as_str()
        .expect("a fresh continue token");
    // The fresh token continues after the same key, over the current state.
    let (code, rest) = send(
        &kc,
        "GET",
        &format!("{CMS}?limit=10&continue={}", enc(fresh)),
        None,
    )
    .await;
    assert_eq!(code, 200, "{rest}");
    assert_eq!(names(&rest), ["cm-2", "cm-3", "cm-4"]);
    // An exact read of a compacted revision is 410 too.
    let (code, v) = send(
        &kc,
        "GET",
        &format!("{CMS}?resourceVersion={rv}&resourceVersionMatch=Exact"),
        None,
    )
    .await;
    assert_eq!((code, v["reason"].as_str()), (410, Some("Expired")), "{v}");
    c.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selector_watches_see_objects_enter_and_leave() {
    let c = start(None).await;
    let kc = setup(&c, 2).await;
    send(
        &kc,
        "POST",
        CMS,
        Some(json!({"metadata": {"name": "outsider", "labels": {"tier": "db"}}})),
    )
    .await;
    let mut child = tokio::process::Command::new("kubectl")
        .args(["get", "configmaps", "-n", "lw", "-l", "tier=web", "-w", "--output-watch-events",
            "-o", "custom-columns=EVENT:.type,NAME:.object.metadata.name,TIER:.object.metadata.labels.tier",
            "--request-timeout=60s"])
        .env("KUBECONFIG", c.kubeconfig_path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl must be installed (scripts/test installs it)");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let changes = async {
        tokio::time::sleep(std::time::Duration::from_millis(700)).await;
        let relabel = |name: &str, tier: &str| {
            http::Request::patch(format!("{CMS}/{name}"))
                .header("content-type", "application/merge-patch+json")
                .body(
                    serde_json::to_vec(&json!({"metadata": {"labels": {"tier": tier}}}))
                        .expect("json"),
                )
                .expect("request")
        };
        kc.request_text(relabel("cm-0", "db"))
            .await
            .expect("cm-0 leaves");
        kc.request_text(relabel("outsider", "web"))
            .await
            .expect("outsider enters");
    };
    let read = async {
        let mut seen = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            let words: Vec<String> = line.split_whitespace().map(str::to_string).collect();
            seen.push(words);
            let left = seen.iter().any(|w| w[..] == ["DELETED", "cm-0", "web"]);
            let entered = seen.iter().any(|w| w[..] == ["ADDED", "outsider", "web"]);
            if left && entered {
                return seen;
            }
        }
        panic!("kubectl -w ended early: {seen:?}");
    };
    let (_, seen) = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        tokio::join!(changes, read)
    })
    .await
    .expect("the watch shows cm-0 leaving and outsider entering");
    assert!(
        !seen
            .iter()
            .any(|w| w.first().is_some_and(|e| e == "MODIFIED")),
        "{seen:?}"
    );
    let _ = child.kill().await;

    // A watch with resourceVersionMatch but without sendInitialEvents is refused.
    let (code, v) = send(
        &kc,
        "GET",
        &format!("{CMS}?watch=true&resourceVersion=1&resourceVersionMatch=Exact"),
        None,
    )
    .await;
    assert_eq!((code, v["reason"].as_str()), (422, Some("Invalid")), "{v}");
    c.stop();
}
