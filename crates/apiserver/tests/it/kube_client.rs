//! kube-rs against the embedded cluster: discovery, CRUD, server-side apply, conflicts,
//! watch ordering and resumption, garbage collection, selectors and paging.

use crate::support::{client, eventually, start, start_with};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{
    Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
    PropagationPolicy, WatchEvent, WatchParams,
};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Discovery;
use mooring_k8s::{k8s_openapi, kube};
use serde_json::json;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}}))
        .expect("valid configmap")
}

fn crd() -> serde_json::Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "inferenceservices.serving.kserve.io"},
        "spec": {"group": "serving.kserve.io", "scope": "Namespaced",
            "names": {"plural": "inferenceservices", "singular": "inferenceservice",
                      "kind": "InferenceService", "shortNames": ["isvc"]},
            "versions": [{"name": "v1beta1", "served": true, "storage": true,
                "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                "additionalPrinterColumns": [{"name": "URL", "type": "string", "jsonPath": ".status.url"}],
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_finds_builtins_and_new_crds() {
    let c = start(None).await;
    let client = client(&c).await;
    let d = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let gvk = GroupVersionKind::gvk("apps", "v1", "Deployment");
    let (ar, caps) = d.resolve_gvk(&gvk).expect("deployments discovered");
    assert_eq!(ar.plural, "deployments");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    assert!(d
        .resolve_gvk(&GroupVersionKind::gvk("", "v1", "Namespace"))
        .is_some());
    let isvc = GroupVersionKind::gvk("serving.kserve.io", "v1beta1", "InferenceService");
    assert!(d.resolve_gvk(&isvc).is_none());

    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let obj: DynamicObject = serde_json::from_value(crd()).expect("crd object");
    crds.create(&PostParams::default(), &obj)
        .await
        .expect("create CRD");

    // Served at once, discovery included.
    let d = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let (ar, caps) = d
        .resolve_gvk(&isvc)
        .expect("CRD discovered right after create");
    assert_eq!(caps.scope, kube::discovery::Scope::Namespaced);
    assert!(caps
        .subresources
        .iter()
        .any(|(s, _)| s.plural == "inferenceservices/status" || s.plural == "status"));
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let inst: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "serving.kserve.io/v1beta1", "kind": "InferenceService",
        "metadata": {"name": "sklearn-iris"},
        "spec": {"replicas": 2, "predictor": {"model": {"modelFormat": {"name": "sklearn"}}}}
    }))
    .expect("instance");
    let created = api
        .create(&PostParams::default(), &inst)
        .await
        .expect("create instance");
    assert_eq!(created.metadata.generation, Some(1));
    let scale = api
        .get_scale("sklearn-iris")
        .await
        .expect("scale subresource");
    assert_eq!(scale.spec.and_then(|s| s.replicas), Some(2));

    // Status writes do not bump generation; spec writes do.
    let st = api
        .patch_status(
            "sklearn-iris",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"url": "http://iris"}})),
        )
        .await
        .expect("status patch");
    assert_eq!(st.metadata.generation, Some(1));
    assert_eq!(st.data["status"]["url"], "http://iris");
    let sp = api
        .patch(
            "sklearn-iris",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}, "status": {"url": "ignored"}})),
        )
        .await
        .expect("spec patch");
    assert_eq!(sp.metadata.generation, Some(2));
    assert_eq!(
        sp.data["status"]["url"], "http://iris",
        "main resource ignores status"
    );

    // Deleting the CRD removes its objects and stops serving it.
    crds.delete(
        "inferenceservices.serving.kserve.io",
        &DeleteParams::default(),
    )
    .await
    .expect("delete CRD");
    let d = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    assert!(d.resolve_gvk(&isvc).is_none());
    let key_count = c.api.store.count("serving.kserve.io/inferenceservices");
    assert_eq!(key_count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_with_optimistic_concurrency() {
    let c = start(None).await;
    let api: Api<ConfigMap> = Api::default_namespaced(client(&c).await);
    let created = api
        .create(&PostParams::default(), &cm("one"))
        .await
        .expect("create");
    let meta = &created.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    assert!(meta.resource_version.is_some());
    let err = api
        .create(&PostParams::default(), &cm("one"))
        .await
        .expect_err("duplicate");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409 && s.reason == "AlreadyExists"),
        "{err:?}"
    );

    let mut fresh = api.get("one").await.expect("get");
    fresh
        .data
        .get_or_insert_default()
        .insert("k".into(), "v2".into());
    let replaced = api
        .replace("one", &PostParams::default(), &fresh)
        .await
        .expect("replace");
    // Replacing again with the now stale resourceVersion conflicts.
    let err = api
        .replace("one", &PostParams::default(), &fresh)
        .await
        .expect_err("stale");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409 && s.reason == "Conflict"),
        "{err:?}"
    );
    assert_eq!(
        replaced
            .data
            .as_ref()
            .and_then(|d| d.get("k"))
            .map(String::as_str),
        Some("v2")
    );

    // The three classic patch types.
    api.patch(
        "one",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"m": "1"}})),
    )
    .await
    .expect("merge patch");
    api.patch(
        "one",
        &PatchParams::default(),
        &Patch::<()>::Json(
            serde_json::from_value(json!([{"op": "add", "path": "/data/j", "value": "2"}]))
                .expect("json patch"),
        ),
    )
    .await
    .expect("json patch");
    let p = api
        .patch(
            "one",
            &PatchParams::default(),
            &Patch::Strategic(json!({"data": {"s": "3"}})),
        )
        .await
        .expect("strategic patch");
    let data = p.data.expect("data");
    assert_eq!(
        (data["m"].as_str(), data["j"].as_str(), data["s"].as_str()),
        ("1", "2", "3")
    );

    // generateName.
    let mut gen = cm("");
    gen.metadata.name = None;
    gen.metadata.generate_name = Some("model-".into());
    let g = api
        .create(&PostParams::default(), &gen)
        .await
        .expect("generateName");
    let name = g.metadata.name.expect("generated name");
    assert!(
        name.starts_with("model-") && name.len() == "model-".len() + 5,
        "{name}"
    );

    api.delete("one", &DeleteParams::default())
        .await
        .expect("delete");
    let err = api.get("one").await.expect_err("gone");
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 404 && s.reason == "NotFound"));
}

fn deployment(replicas: i32, labels: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "model-server", "labels": labels},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "model"}},
            "template": {"metadata": {"labels": {"app": "model"}},
                "spec": {"containers": [{"name": "server", "image": "registry.local/model:1.0"}]}}}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_create_update_remove_and_conflict() {
    let c = start(None).await;
    let api: Api<Deployment> = Api::default_namespaced(client(&c).await);
    let gitops = PatchParams::apply("mooring");
    let d = api
        .patch(
            "model-server",
            &gitops,
            &Patch::Apply(deployment(2, json!({"team": "ml", "tier": "serving"}))),
        )
        .await
        .expect("apply creates");
    assert_eq!(d.spec.replicas, Some(2));
    let mf = d.metadata.managed_fields.clone().expect("managed fields");
    assert!(mf.iter().any(
        |m| m.manager.as_deref() == Some("mooring") && m.operation.as_deref() == Some("Apply")
    ));

    // Update: change replicas and drop the `tier` label: the field is removed.
    let d = api
        .patch(
            "model-server",
            &gitops,
            &Patch::Apply(deployment(3, json!({"team": "ml"}))),
        )
        .await
        .expect("apply updates");
    let labels = d.metadata.labels.clone().unwrap_or_default();
    assert_eq!(d.spec.replicas, Some(3));
    assert!(
        labels.contains_key("team") && !labels.contains_key("tier"),
        "{labels:?}"
    );

    // Another manager applying a different replica count conflicts...
    let other = PatchParams::apply("hpa-controller");
    let err = api
        .patch(
            "model-server",
            &other,
            &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "model-server"}, "spec": {"replicas": 5}})),
        )
        .await
        .expect_err("conflict");
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert!(
                s.message.contains("mooring") && s.message.contains(".spec.replicas"),
                "{}",
                s.message
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    // ...unless forced, which takes ownership.
    let d = api
        .patch(
            "model-server",
            &other.force(),
            &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "model-server"}, "spec": {"replicas": 5}})),
        )
        .await
        .expect("forced apply");
    assert_eq!(d.spec.replicas, Some(5));
    // The original manager no longer owns replicas: re-applying without them keeps 5.
    let d = api
        .patch(
            "model-server",
            &gitops.clone().force(),
            &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "model-server", "labels": {"team": "ml"}},
                "spec": {"selector": {"matchLabels": {"app": "model"}},
                    "template": {"metadata": {"labels": {"app": "model"}},
                        "spec": {"containers": [{"name": "server", "image": "registry.local/model:1.0"}]}}}})),
        )
        .await
        .expect("apply without replicas");
    assert_eq!(d.spec.replicas, Some(5));

    // Dry run changes nothing.
    let before = api.get("model-server").await.expect("get");
    let dry = api
        .patch(
            "model-server",
            &PatchParams::apply("mooring").force().dry_run(),
            &Patch::Apply(deployment(9, json!({"team": "ml"}))),
        )
        .await
        .expect("dry run");
    assert_eq!(dry.spec.replicas, Some(9));
    let after = api.get("model-server").await.expect("get");
    // The simulation keeps writing status, so compare what a dry run could have changed.
    assert_eq!(before.spec.replicas, after.spec.replicas);
    assert_eq!(before.metadata.generation, after.metadata.generation);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_is_ordered_and_resumes() {
    let c = start(None).await;
    let api: Api<ConfigMap> = Api::namespaced(client(&c).await, "kube-public");
    let start_rv = api
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let mut stream = api
        .watch(&WatchParams::default(), &start_rv)
        .await
        .expect("watch")
        .boxed();
    api.create(&PostParams::default(), &cm("w"))
        .await
        .expect("create");
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "2"}})),
    )
    .await
    .expect("patch");
    api.delete("w", &DeleteParams::default())
        .await
        .expect("delete");
    let mut kinds = Vec::new();
    let mut rvs = Vec::new();
    while kinds.len() < 3 {
        let ev = tokio::time::timeout(std::time::Duration::from_secs(10), stream.try_next())
            .await
            .expect("event in time")
            .expect("no error")
            .expect("stream open");
        let (k, rv) = match ev {
            WatchEvent::Added(o) => ("ADDED", o.metadata.resource_version),
            WatchEvent::Modified(o) => ("MODIFIED", o.metadata.resource_version),
            WatchEvent::Deleted(o) => ("DELETED", o.metadata.resource_version),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(e) => panic!("watch error {e:?}"),
        };
        kinds.push(k);
        rvs.push(rv.expect("rv").parse::<u64>().expect("numeric rv"));
    }
    assert_eq!(kinds, vec!["ADDED", "MODIFIED", "DELETED"]);
    assert!(rvs.windows(2).all(|w| w[0] < w[1]), "{rvs:?}");

    // Resume from the ADDED event's revision: only the later two arrive.
    let mut resumed = api
        .watch(&WatchParams::default(), &rvs[0].to_string())
        .await
        .expect("resume")
        .boxed();
    let mut again = Vec::new();
    while again.len() < 2 {
        match tokio::time::timeout(std::time::Duration::from_secs(10), resumed.try_next())
            .await
            .expect("event in time")
            .expect("no error")
            .expect("open")
        {
            WatchEvent::Modified(_) => again.push("MODIFIED"),
            WatchEvent::Deleted(_) => again.push("DELETED"),
            WatchEvent::Added(_) => again.push("ADDED"),
            _ => {}
        }
    }
    assert_eq!(again, vec!["MODIFIED", "DELETED"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_compacted_revision_is_gone() {
    let c = start_with(mooring_apiserver::ClusterOptions {
        event_log: 5,
        ..Default::default()
    })
    .await;
    let api: Api<ConfigMap> = Api::default_namespaced(client(&c).await);
    let first = api
        .create(&PostParams::default(), &cm("c0"))
        .await
        .expect("create");
    for i in 1..20 {
        api.create(&PostParams::default(), &cm(&format!("c{i}")))
            .await
            .expect("create");
    }
    let rv = first.metadata.resource_version.expect("rv");
    let mut s = api
        .watch(&WatchParams::default(), &rv)
        .await
        .expect("watch")
        .boxed();
    match s.try_next().await.expect("event").expect("one event") {
        WatchEvent::Error(e) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
        }
        other => panic!("expected 410 Gone, got {other:?}"),
    }
    // kube-runtime's watcher recovers by relisting.
    let objs: Vec<ConfigMap> = kube::runtime::watcher(api.clone(), Default::default())
        .filter_map(|e| async move {
            match e {
                Ok(kube::runtime::watcher::Event::Init) => None,
                Ok(kube::runtime::watcher::Event::InitApply(o)) => Some(o),
                _ => None,
            }
        })
        .take(20)
        .collect()
        .await;
    assert_eq!(objs.len(), 20, "the watcher relists all 20 objects");
}

fn owned_cm(name: &str, owner: &ConfigMap) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": owner.metadata.name,
        "uid": owner.metadata.uid, "controller": true, "blockOwnerDeletion": true}]}}))
    .expect("owned configmap")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collection_background_foreground_orphan() {
    let c = start(None).await;
    let api: Api<ConfigMap> = Api::default_namespaced(client(&c).await);
    let pp = PostParams::default();

    // Background: the owner goes at once, dependents follow.
    let owner = api.create(&pp, &cm("bg-owner")).await.expect("owner");
    api.create(&pp, &owned_cm("bg-dep-1", &owner))
        .await
        .expect("dep");
    api.create(&pp, &owned_cm("bg-dep-2", &owner))
        .await
        .expect("dep");
    api.delete("bg-owner", &DeleteParams::background())
        .await
        .expect("delete");
    eventually(10, "background dependents deleted", || async {
        let l = api.list(&ListParams::default()).await.ok()?;
        (!l.items.iter().any(|c| {
            c.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("bg-"))
        }))
        .then_some(())
    })
    .await;

    // Foreground: the owner waits (deletionTimestamp + finalizer) until dependents are gone.
    let owner = api.create(&pp, &cm("fg-owner")).await.expect("owner");
    let dep = owned_cm("fg-dep", &owner);
    let mut dep_with_finalizer = dep.clone();
    dep_with_finalizer.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&pp, &dep_with_finalizer).await.expect("dep");
    let r = api
        .delete("fg-owner", &DeleteParams::foreground())
        .await
        .expect("delete");
    let pending = r.left().expect("owner still present");
    assert!(pending.metadata.deletion_timestamp.is_some());
    assert!(pending
        .metadata
        .finalizers
        .unwrap_or_default()
        .contains(&"foregroundDeletion".to_string()));
    // The dependent is being deleted but held by its own finalizer; the owner waits.
    eventually(10, "dependent marked for deletion", || async {
        api.get("fg-dep")
            .await
            .ok()?
            .metadata
            .deletion_timestamp
            .map(|_| ())
    })
    .await;
    assert!(
        api.get("fg-owner").await.is_ok(),
        "owner must wait for its dependent"
    );
    api.patch(
        "fg-dep",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release dependent");
    eventually(10, "foreground owner deleted after dependent", || async {
        api.get_opt("fg-owner").await.ok()?.is_none().then_some(())
    })
    .await;
    assert!(api.get_opt("fg-dep").await.expect("get").is_none());

    // Orphan: dependents stay, without the owner reference.
    let owner = api.create(&pp, &cm("or-owner")).await.expect("owner");
    api.create(&pp, &owned_cm("or-dep", &owner))
        .await
        .expect("dep");
    api.delete(
        "or-owner",
        &DeleteParams {
            propagation_policy: Some(PropagationPolicy::Orphan),
            ..Default::default()
        },
    )
    .await
    .expect("delete");
    eventually(10, "orphan owner deleted", || async {
        api.get_opt("or-owner").await.ok()?.is_none().then_some(())
    })
    .await;
    let d = api.get("or-dep").await.expect("orphaned dependent remains");
    assert!(d.metadata.owner_references.unwrap_or_default().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_deletion_removes_contents() {
    let c = start(None).await;
    let client = client(&c).await;
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "team-a"}})).expect("ns"),
    )
    .await
    .expect("create ns");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "team-a");
    cms.create(&PostParams::default(), &cm("x"))
        .await
        .expect("cm");
    let r = nss
        .delete("team-a", &DeleteParams::default())
        .await
        .expect("delete ns");
    let ns = r.left().expect("namespace terminates first");
    assert_eq!(
        ns.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    eventually(10, "namespace and contents gone", || async {
        nss.get_opt("team-a").await.ok()?.is_none().then_some(())
    })
    .await;
    assert_eq!(c.api.store.keys_in_namespace("team-a").len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_and_paging() {
    let c = start(None).await;
    let api: Api<ConfigMap> = Api::default_namespaced(client(&c).await);
    for (i, env) in ["dev", "staging", "prod", "prod", "dev"].iter().enumerate() {
        let mut m = cm(&format!("s{i}"));
        m.metadata.labels = Some([("env".to_string(), env.to_string())].into());
        api.create(&PostParams::default(), &m)
            .await
            .expect("create");
    }
    let names = |l: kube::core::ObjectList<ConfigMap>| -> Vec<String> {
        l.items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect()
    };
    let eq = api
        .list(&ListParams::default().labels("env=prod"))
        .await
        .expect("list");
    assert_eq!(names(eq), vec!["s2", "s3"]);
    let set = api
        .list(&ListParams::default().labels("env in (dev,staging),env!=staging"))
        .await
        .expect("list");
    assert_eq!(names(set), vec!["s0", "s4"]);
    let field = api
        .list(&ListParams::default().fields("metadata.name=s1"))
        .await
        .expect("list");
    assert_eq!(names(field), vec!["s1"]);
    let bad = api
        .list(&ListParams::default().labels("env in ("))
        .await
        .expect_err("bad selector");
    assert!(
        matches!(bad, kube::Error::Api(ref s) if s.code == 400),
        "{bad:?}"
    );

    let mut seen = Vec::new();
    let mut lp = ListParams::default().labels("env").limit(2);
    loop {
        let page = api.list(&lp).await.expect("page");
        let cont = page.metadata.continue_.clone();
        assert!(page.items.len() <= 2);
        seen.extend(names(page));
        match cont {
            Some(c) if !c.is_empty() => lp = lp.continue_token(&c),
            _ => break,
        }
    }
    assert_eq!(seen, vec!["s0", "s1", "s2", "s3", "s4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_object_semantics() {
    let c = start(None).await;
    let client = client(&c).await;
    let deps: Api<Deployment> = Api::default_namespaced(client.clone());
    let d: Deployment = serde_json::from_value(deployment(1, json!({"team": "ml"}))).expect("d");
    let d = deps
        .create(&PostParams::default(), &d)
        .await
        .expect("create");
    assert_eq!(d.metadata.generation, Some(1));
    // Defaults as the real API server sets them.
    assert_eq!(d.spec.progress_deadline_seconds, Some(600));
    assert_eq!(d.spec.revision_history_limit, Some(10));

    // Metadata-only change: no generation bump; spec change: bump.
    let d = deps
        .patch(
            "model-server",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .expect("label patch");
    assert_eq!(d.metadata.generation, Some(1));
    let d = deps
        .patch(
            "model-server",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 2}})),
        )
        .await
        .expect("spec patch");
    assert_eq!(d.metadata.generation, Some(2));

    // Immutable selector.
    let err = deps
        .patch(
            "model-server",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"selector": {"matchLabels": {"app": "other"}},
                "template": {"metadata": {"labels": {"app": "other"}}}}}),
            ),
        )
        .await
        .expect_err("selector is immutable");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 422 && s.message.contains("immutable")),
        "{err:?}"
    );

    // Strategic merge patch merges containers by name.
    let d = deps
        .patch(
            "model-server",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"template": {"spec": {"containers": [
                {"name": "sidecar", "image": "registry.local/proxy:2"}]}}}})),
        )
        .await
        .expect("strategic merge");
    let names: Vec<String> = d
        .spec
        .template
        .spec
        .expect("pod spec")
        .containers
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, vec!["server", "sidecar"]);

    // deletecollection with a label selector.
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    for (n, l) in [("dc-1", "a"), ("dc-2", "a"), ("dc-3", "b")] {
        let mut m = cm(n);
        m.metadata.labels = Some([("set".to_string(), l.to_string())].into());
        cms.create(&PostParams::default(), &m)
            .await
            .expect("create");
    }
    cms.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("set=a"),
    )
    .await
    .expect("deletecollection");
    let left: Vec<String> = cms
        .list(&ListParams::default().labels("set"))
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(left, vec!["dc-3"]);

    // No new content in a terminating namespace.
    let nss: Api<Namespace> = Api::all(client.clone());
    nss.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "closing"}})).expect("ns"),
    )
    .await
    .expect("ns");
    let held: Api<ConfigMap> = Api::namespaced(client.clone(), "closing");
    let mut m = cm("held");
    m.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    held.create(&PostParams::default(), &m)
        .await
        .expect("held object");
    nss.delete("closing", &DeleteParams::default())
        .await
        .expect("delete ns");
    let err = held
        .create(&PostParams::default(), &cm("late"))
        .await
        .expect_err("terminating");
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 403),
        "{err:?}"
    );
    // Finalizer removal lets the object, then the namespace, go.
    eventually(10, "held object marked for deletion", || async {
        held.get("held")
            .await
            .ok()?
            .metadata
            .deletion_timestamp
            .map(|_| ())
    })
    .await;
    held.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release");
    eventually(10, "namespace gone", || async {
        nss.get_opt("closing").await.ok()?.is_none().then_some(())
    })
    .await;

    // Watch: timeoutSeconds ends the stream; allowWatchBookmarks sends bookmarks.
    let rv = cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let stream = cms
        .watch(&WatchParams::default().timeout(3), &rv)
        .await
        .expect("watch");
    let events: Vec<_> = tokio::time::timeout(
        std::time::Duration::from_secs(15),
        stream.collect::<Vec<_>>(),
    )
    .await
    .expect("stream ends after timeoutSeconds");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Ok(WatchEvent::Bookmark(_)))),
        "an idle watch with bookmarks gets at least one: {events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_clusters_in_one_process_and_raw_endpoints() {
    let a = start_with(mooring_apiserver::ClusterOptions {
        name: "east".into(),
        ..Default::default()
    })
    .await;
    let b = start_with(mooring_apiserver::ClusterOptions {
        name: "west".into(),
        ..Default::default()
    })
    .await;
    assert_ne!(a.addr, b.addr);
    let (ca, cb) = (client(&a).await, client(&b).await);
    let east: Api<ConfigMap> = Api::default_namespaced(ca.clone());
    let west: Api<ConfigMap> = Api::default_namespaced(cb.clone());
    east.create(&PostParams::default(), &cm("only-east"))
        .await
        .expect("create");
    assert!(east.get_opt("only-east").await.expect("get").is_some());
    assert!(
        west.get_opt("only-east").await.expect("get").is_none(),
        "clusters are isolated"
    );
    let kc = std::fs::read_to_string(b.kubeconfig_path()).expect("kubeconfig");
    assert!(kc.contains("current-context: west") && kc.contains(&b.addr.to_string()));

    for path in ["/healthz", "/readyz", "/livez"] {
        let req = http::Request::get(path).body(Vec::new()).expect("req");
        assert_eq!(ca.request_text(req).await.expect(path), "ok");
    }
    let req = http::Request::get("/version")
        .body(Vec::new())
        .expect("req");
    let v: serde_json::Value = ca.request(req).await.expect("version");
    assert_eq!(v["major"], "1");

    // The legacy `/watch/` path form streams like `?watch=true`.
    let rv = east
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("rv");
    let req = http::Request::get(format!(
        "/api/v1/watch/namespaces/default/configmaps?resourceVersion={rv}&timeoutSeconds=2"
    ))
    .body(Vec::new())
    .expect("req");
    let watch = tokio::spawn({
        let ca = ca.clone();
        async move { ca.request_text(req).await.expect("watch stream") }
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    east.create(&PostParams::default(), &cm("via-watch-path"))
        .await
        .expect("create");
    let text = watch.await.expect("watch task");
    assert!(
        text.contains("\"type\":\"ADDED\"") && text.contains("via-watch-path"),
        "{text}"
    );
}
