//! Storage: acknowledged writes survive a restart and the resourceVersion continues;
//! concurrent conflicting writers neither lose nor duplicate updates.

use crate::support::{client, start};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use mooring_k8s::{k8s_openapi, kube};
use serde_json::json;

const WRITERS: usize = 8;
const INCREMENTS: usize = 25;

/// Read-modify-write a shared counter with optimistic concurrency, retrying on 409.
async fn increment(api: &Api<ConfigMap>, writer: usize) -> usize {
    let mut conflicts = 0;
    for _ in 0..INCREMENTS {
        loop {
            let mut cm = api.get("counter").await.expect("get counter");
            let data = cm.data.get_or_insert_default();
            let n: usize = data.get("n").and_then(|v| v.parse().ok()).unwrap_or(0);
            data.insert("n".into(), (n + 1).to_string());
            data.insert(format!("last-{writer}"), n.to_string());
            match api.replace("counter", &PostParams::default(), &cm).await {
                Ok(_) => break,
                Err(kube::Error::Api(s)) if s.code == 409 => conflicts += 1,
                Err(e) => panic!("writer {writer}: {e}"),
            }
        }
    }
    conflicts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_then_restart() {
    let dir = tempfile::tempdir().expect("tmp");
    let max_rv;
    {
        let c = start(Some(dir.path().to_path_buf())).await;
        let client = client(&c).await;
        let api: Api<ConfigMap> = Api::default_namespaced(client.clone());
        api.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "counter"}, "data": {"n": "0"}}))
                .expect("cm"),
        )
        .await
        .expect("create counter");
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let api = api.clone();
            tasks.push(tokio::spawn(async move {
                // Each writer also creates its own objects, concurrently with the others.
                for i in 0..10 {
                    api.create(
                        &PostParams::default(),
                        &serde_json::from_value(json!({"metadata": {"name": format!("w{w}-{i}")}}))
                            .expect("cm"),
                    )
                    .await
                    .expect("unique create");
                }
                increment(&api, w).await
            }));
        }
        let mut conflicts = 0;
        for t in tasks {
            conflicts += t.await.expect("writer");
        }
        let counter = api.get("counter").await.expect("counter");
        let n = counter.data.as_ref().and_then(|d| d.get("n")).cloned();
        assert_eq!(
            n.as_deref(),
            Some((WRITERS * INCREMENTS).to_string().as_str())
        );
        assert!(conflicts > 0, "writers should have collided at least once");
        let list = api.list(&ListParams::default()).await.expect("list");
        assert_eq!(list.items.len(), 1 + WRITERS * 10);
        max_rv = list
            .metadata
            .resource_version
            .expect("rv")
            .parse::<u64>()
            .expect("rv");
        c.stop();
    }
    // Same data dir: every object is back and revisions continue.
    let c = start(Some(dir.path().to_path_buf())).await;
    let api: Api<ConfigMap> = Api::default_namespaced(client(&c).await);
    let list = api
        .list(&ListParams::default())
        .await
        .expect("list after restart");
    assert_eq!(list.items.len(), 1 + WRITERS * 10);
    let counter = api.get("counter").await.expect("counter");
    assert_eq!(
        counter.data.and_then(|d| d.get("n").cloned()).as_deref(),
        Some((WRITERS * INCREMENTS).to_string().as_str())
    );
    let next = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "after-restart"}})).expect("cm"),
        )
        .await
        .expect("create after restart");
    let rv: u64 = next
        .metadata
        .resource_version
        .expect("rv")
        .parse()
        .expect("rv");
    assert!(rv > max_rv, "revision continues: {rv} > {max_rv}");
}
