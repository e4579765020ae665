//! Destination clusters: registered from Argo CD cluster Secrets (see
//! [`mooring_k8s::registry`]) or in-process, connected in the background.
//!
//! A registered cluster is usable by name and server URL at once, before it has been
//! reached: its Applications must say "unreachable" rather than "not registered". The
//! connection (discovery, then the watch-fed cache of managed objects) is made by a task
//! per cluster that retries with exponential backoff (1 s doubling to 60 s), so one dead
//! cluster never stalls the others: reconciles of its apps return at once with
//! `ComparisonError` and sync status `Unknown` until it answers, and each state change
//! re-queues the apps that target it.

use crate::Context;
use mooring_k8s::cluster::{ClusterClient, Connection};
use mooring_k8s::kube;
use mooring_k8s::registry::{self, ClusterEntry};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Register (or replace) a destination cluster and start connecting to it.
pub async fn register(ctx: &Arc<Context>, name: &str, server: &str, client: kube::Client) {
    unregister(ctx, server).await;
    // A tenant's web metric must not reach a destination's API server through the
    // controller (with `127.0.0.1` allowed for a local test server, say).
    ctx.outbound
        .protect(server, &format!("the API server of cluster {name}"));
    let cluster = ClusterClient::new(name, client);
    {
        let mut clusters = ctx
            .clusters
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        clusters.insert(server.to_string(), cluster.clone());
        clusters.insert(name.to_string(), cluster.clone());
    }
    let task = tokio::spawn(connect(ctx.clone(), cluster, server.to_string()));
    ctx.cluster_tasks
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(server.to_string(), vec![task]);
}

/// Forget a cluster: stop its watches; its apps report it as not registered.
pub async fn unregister(ctx: &Arc<Context>, server: &str) {
    let tasks = ctx
        .cluster_tasks
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(server);
    for t in tasks.into_iter().flatten() {
        t.abort();
    }
    let removed = {
        let mut clusters = ctx
            .clusters
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let removed = clusters.remove(server);
        if let Some(c) = &removed {
            if clusters.get(&c.name).is_some_and(|n| Arc::ptr_eq(n, c)) {
                clusters.remove(&c.name);
            }
        }
        removed
    };
    if removed.is_some() {
        requeue_apps_of(ctx, server).await;
    }
}

async fn requeue_apps_of(ctx: &Arc<Context>, server: &str) {
    for app in crate::all_apps(ctx).await {
        let d = &app.spec.destination;
        if d.server.as_deref() == Some(server) || d.name.is_some() {
            ctx.enqueue(&format!("{}/{}", app.namespace(), app.name()));
        }
    }
}

/// Connect with backoff, then keep the cache's watch tasks under the cluster's entry.
async fn connect(ctx: Arc<Context>, cluster: Arc<ClusterClient>, server: String) {
    let mut wait = Duration::from_secs(1);
    loop {
        let attempt = async {
            let version = cluster.server_version().await?;
            let tasks = cluster.start_cache().await?;
            Ok::<_, mooring_k8s::cluster::K8sError>((version, tasks))
        };
        match attempt.await {
            Ok((version, mut tasks)) => {
                tasks.push(tokio::spawn(crate::watch_live(
                    ctx.clone(),
                    cluster.clone(),
                )));
                // Rollouts and analyses of a cluster follow its shard.
                let (c, cl, srv) = (ctx.clone(), cluster.clone(), server.clone());
                let owned = server.clone();
                tasks.push(crate::sharding::gated(
                    ctx.clone(),
                    move |ctx| ctx.sharding.owns_server(&owned),
                    move || c.start_rollouts(&srv, cl.clone()),
                ));
                ctx.cluster_tasks
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .entry(server.clone())
                    .or_default()
                    .extend(tasks);
                cluster.set_connection(Connection::Connected { version });
                requeue_apps_of(&ctx, &server).await;
                return;
            }
            Err(e) => {
                let first = cluster.connection() == Connection::Connecting;
                cluster.set_connection(Connection::Unreachable {
                    error: e.to_string(),
                });
                if first {
                    requeue_apps_of(&ctx, &server).await;
                }
                tracing::warn!(
                    cluster = cluster.name,
                    "unreachable, retrying in {}s: {e}",
                    wait.as_secs()
                );
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(60));
            }
        }
    }
}

/// Cluster Secrets in the management cluster's control-plane namespace → registered
/// clusters (a Secret anywhere else is never read: a tenant cannot add or redirect a
/// destination). Every change also re-runs the ApplicationSets, whose clusters generator
/// selects on these Secrets.
pub(crate) async fn watch_cluster_secrets(ctx: Arc<Context>) {
    use futures::StreamExt;
    use kube::runtime::{watcher, WatchStreamExt};
    let api: kube::Api<mooring_k8s::k8s_openapi::api::core::v1::Secret> =
        kube::Api::namespaced(ctx.management.client().clone(), ctx.namespace());
    let config =
        watcher::Config::default().labels(&format!("{}=cluster", registry::SECRET_TYPE_LABEL));
    let mut stream = watcher(api, config).default_backoff().boxed();
    // Secret (namespace/name) → the entry it registered.
    let mut known: std::collections::HashMap<String, ClusterEntry> = Default::default();
    while let Some(ev) = stream.next().await {
        let (secret, deleted) = match ev {
            Ok(watcher::Event::InitApply(s)) => (s, false),
            Ok(watcher::Event::Apply(s)) => {
                crate::appset::requeue_all(&ctx).await;
                (s, false)
            }
            Ok(watcher::Event::Delete(s)) => {
                crate::appset::requeue_all(&ctx).await;
                (s, true)
            }
            Ok(watcher::Event::InitDone) => {
                ctx.sharding.set_loaded();
                crate::appset::requeue_all(&ctx).await;
                continue;
            }
            _ => continue,
        };
        let Ok(secret) = serde_json::to_value(secret) else {
            continue;
        };
        let id = format!(
            "{}/{}",
            secret
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or(""),
            secret
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
        );
        if deleted {
            ctx.sharding.forget_cluster(&id);
            if let Some(old) = known.remove(&id) {
                unregister(&ctx, &old.server).await;
            }
            continue;
        }
        let entry = match registry::parse_secret(&secret) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("{e}");
                continue;
            }
        };
        ctx.sharding
            .cluster_secret(&id, &secret, &entry.server, &entry.name);
        if entry.server == mooring_core::app::IN_CLUSTER {
            // The management cluster: already connected; its Secret only names it.
            known.insert(id, entry);
            continue;
        }
        if known.get(&id).is_some_and(|old| {
            old.server == entry.server && old.name == entry.name && old.config == entry.config
        }) {
            // Labels only (the ApplicationSet clusters generator reads them itself).
            known.insert(id, entry);
            continue;
        }
        if let Some(old) = known.get(&id) {
            if old.server != entry.server {
                unregister(&ctx, &old.server).await;
            }
        }
        match registry::client(&entry).await {
            Ok(client) => register(&ctx, &entry.name, &entry.server, client).await,
            Err(e) => tracing::warn!("{e}"),
        }
        known.insert(id, entry);
    }
}
