//! `mooring rollout …`: the `kubectl argo rollouts` commands, against any cluster.
//!
//! Every command acts on the public fields of Argo Rollouts' objects, exactly as the
//! kubectl plugin and Argo CD's Rollout actions do, so the rollout controller (Mooring's
//! or Argo's own) cannot tell who asked:
//!
//! | command | effect |
//! |---|---|
//! | `promote` | `spec.paused: false` when paused by a user; else clears `status.pauseConditions` (the controller moves past the pause); else, on a canary, skips the current step (`status.currentStepIndex + 1`) |
//! | `promote --full` | `status.promoteFull: true`: every remaining step, analysis and pause is skipped |
//! | `abort` / `retry` | `status.abort: true` / `false` |
//! | `pause` | `spec.paused: true` |
//! | `undo [--to-revision N]` | `spec.template` := the pod template of the ReplicaSet of revision N (default: the previous one), without its `rollouts-pod-template-hash` label |
//! | `set-image CONTAINER=IMAGE…` | the containers' images (`*` is every container) |
//!
//! Status fields are merge-patched through the `status` subresource. `undo` and
//! `set-image` send one merge patch computed from the object as read and naming its
//! `resourceVersion`, so a concurrent edit makes the API server refuse it (409) instead
//! of anything being half-applied; an unknown container or revision changes nothing. `--cluster NAME` targets a destination cluster registered as an Argo CD
//! cluster Secret in the management cluster; without it the management cluster itself
//! is used (`--kubeconfig`, `$KUBECONFIG`, then the one `mooring up` wrote).
//!
//! `get`, `list`, `watch` and `status` summarise a Rollout the way the plugin does (status icon,
//! step, set and actual weight, images of the stable and canary ReplicaSets, replica
//! counts, then the ReplicaSets by revision with their pods and AnalysisRuns). Exit codes:
//! 0 ok; 1 when `watch`/`status` end on a Degraded or aborted rollout or time out; 2 for usage
//! and runtime errors, including a command that has nothing to act on (aborting a
//! rollout that is fully promoted, retrying one that is not aborted).

use crate::app::{emit, print_table, Output};
use anyhow::{bail, Context as _};
use futures::StreamExt as _;
use mooring_k8s::kube::{
    self,
    api::{Api, DynamicObject, ListParams, Patch, PatchParams},
    core::ApiResource,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use mooring_core::rollout::{POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION};
use mooring_engine::rollout::command;

#[derive(clap::Args, Debug)]
pub struct RolloutCommon {
    /// Kubeconfig of the management cluster (default: $KUBECONFIG, then the one `mooring up` wrote).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of the Rollout.
    #[arg(short = 'n', long, global = true, default_value = "default")]
    pub namespace: String,
    /// A destination cluster registered in the management cluster (its name or server
    /// URL, as `mooring cluster list` shows them); default: the management cluster.
    #[arg(long, global = true)]
    pub cluster: Option<String>,
    /// The control-plane namespace, where the cluster Secrets of `--cluster` live
    /// (default: the kubeconfig context's namespace, then argocd).
    #[arg(
        long = "control-plane-namespace",
        global = true,
        env = "MOORING_NAMESPACE"
    )]
    pub control_plane_namespace: Option<String>,
}

impl RolloutCommon {
    fn management(&self) -> crate::connect::ManagementArgs {
        crate::connect::ManagementArgs {
            kubeconfig: self.kubeconfig.clone(),
            namespace: self.control_plane_namespace.clone(),
        }
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum RolloutCommand {
    /// List the rollouts of the namespace (`list rollouts` works too).
    List {
        /// Optional `rollouts`, as in `kubectl argo rollouts list rollouts`.
        #[arg(value_parser = ["rollouts", "rollout", "ro"], hide = true)]
        kind: Option<String>,
        /// Every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show a rollout: status, step, weights, images, replicas, ReplicaSets with their
    /// pods, AnalysisRuns (`get rollout NAME` works too).
    Get {
        /// NAME, or `rollout NAME`.
        #[arg(num_args = 1..=2, required = true, value_name = "NAME")]
        args: Vec<String>,
        /// Keep printing it on every change, as `watch`.
        #[arg(short, long)]
        watch: bool,
        /// With --watch: give up after this long (`90`, `90s`, `5m`, `1h`; 0 = never).
        #[arg(long, default_value = "0", value_parser = parse_duration)]
        timeout: u64,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Print the rollout again on every change until it is Healthy and fully promoted
    /// (exit 0) or Degraded/aborted (exit 1). `-o json` prints one JSON line per change.
    Watch {
        name: String,
        /// Give up after this long (`90`, `90s`, `5m`, `1h`; 0 = never); exit 1.
        #[arg(long, default_value = "0", value_parser = parse_duration)]
        timeout: u64,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// One line per status change (`Paused - CanaryPauseStep`) until the rollout is
    /// Healthy and fully promoted (exit 0) or Degraded/aborted (exit 1).
    Status {
        name: String,
        /// Give up after this long (`90`, `90s`, `5m`, `1h`; 0 = never); exit 1.
        #[arg(long, default_value = "0", value_parser = parse_duration)]
        timeout: u64,
    },
    /// Resume a paused rollout, or skip the current step.
    Promote {
        name: String,
        /// Skip every remaining step, analysis and pause.
        #[arg(long)]
        full: bool,
    },
    /// Abort the update: traffic and replicas go back to the stable version.
    Abort { name: String },
    /// Retry an aborted rollout.
    Retry { name: String },
    /// Pause the rollout (`promote` resumes it).
    Pause { name: String },
    /// Roll back to the pod template of an earlier revision.
    Undo {
        name: String,
        /// The revision to go back to (default: the previous one).
        #[arg(long = "to-revision")]
        to_revision: Option<i64>,
    },
    /// Update container images: `CONTAINER=IMAGE` (repeatable; `*=IMAGE` for every container).
    SetImage {
        name: String,
        #[arg(required = true, value_parser = parse_image)]
        images: Vec<(String, String)>,
    },
}

/// Seconds, or a number with `s`, `m` or `h`.
fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, ""),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("expected a duration like 90, 90s, 5m or 1h, got {s:?}"))?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => {
            return Err(format!(
                "expected a duration like 90, 90s, 5m or 1h, got {s:?}"
            ))
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("duration {s:?} is too long"))
}

fn parse_image(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((c, i)) if !c.is_empty() && !i.is_empty() && !i.chars().any(char::is_whitespace) => {
            Ok((c.to_string(), i.to_string()))
        }
        _ => Err(format!("expected CONTAINER=IMAGE (or *=IMAGE), got {s:?}")),
    }
}

use mooring_k8s::api_resource as resource;

/// The client of the cluster the command targets.
async fn target_client(common: &RolloutCommon) -> anyhow::Result<kube::Client> {
    let m = crate::connect::connect(&common.management()).await?;
    let mgmt = m.client.clone();
    let Some(name) = common.cluster.as_deref() else {
        return Ok(mgmt);
    };
    if mooring_core::app::names_in_cluster(name) {
        return Ok(mgmt);
    }
    let secrets: Api<mooring_k8s::k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(mgmt, m.namespace());
    let all = secrets
        .list(&ListParams::default().labels(&format!(
            "{}=cluster",
            mooring_k8s::registry::SECRET_TYPE_LABEL
        )))
        .await
        .context("listing cluster Secrets")?;
    let mut known = Vec::new();
    for s in all.items {
        let v = serde_json::to_value(&s)?;
        if let Ok(e) = mooring_k8s::registry::parse_secret(&v) {
            if e.name == name || e.server == name {
                return Ok(mooring_k8s::registry::client(&e).await?);
            }
            known.push(e.name);
        }
    }
    bail!(
        "no registered cluster named {name:?} (registered: {}; see `mooring cluster list`)",
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    )
}

struct Ctx {
    client: kube::Client,
    ns: String,
}

impl Ctx {
    fn rollouts(&self) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            &self.ns,
            &mooring_k8s::resources::rollout_resource(),
        )
    }

    async fn list_rollouts(&self) -> anyhow::Result<Vec<Value>> {
        match self.rollouts().list(&ListParams::default()).await {
            Ok(l) => l
                .items
                .into_iter()
                .map(|o| Ok(serde_json::to_value(o)?))
                .collect(),
            Err(kube::Error::Api(e)) if e.code == 404 => bail!(
                "this cluster serves no argoproj.io Rollouts: install the Argo Rollouts CRDs (`mooring crds | kubectl apply -f -`)"
            ),
            Err(e) => Err(e).context("listing rollouts"),
        }
    }

    async fn list_all_rollouts(&self) -> anyhow::Result<Vec<Value>> {
        let api: Api<DynamicObject> = Api::all_with(
            self.client.clone(),
            &mooring_k8s::resources::rollout_resource(),
        );
        match api.list(&ListParams::default()).await {
            Ok(l) => l
                .items
                .into_iter()
                .map(|o| Ok(serde_json::to_value(o)?))
                .collect(),
            Err(kube::Error::Api(e)) if e.code == 404 => bail!(
                "this cluster serves no argoproj.io Rollouts: install the Argo Rollouts CRDs (`mooring crds | kubectl apply -f -`)"
            ),
            Err(e) => Err(e).context("listing rollouts"),
        }
    }

    async fn get_rollout(&self, name: &str) -> anyhow::Result<Value> {
        match self.rollouts().get_opt(name).await {
            Ok(Some(o)) => Ok(serde_json::to_value(o)?),
            Ok(None) => {
                let names: Vec<String> = self
                    .list_rollouts()
                    .await?
                    .iter()
                    .filter_map(|r| r.pointer("/metadata/name")?.as_str().map(str::to_string))
                    .collect();
                bail!(
                    "rollout {name:?} not found in namespace {ns}; {others}",
                    ns = self.ns,
                    others = if names.is_empty() {
                        "there are no rollouts there (pick another with -n NAMESPACE)".to_string()
                    } else {
                        format!("rollouts there: {}", names.join(", "))
                    }
                )
            }
            Err(kube::Error::Api(e)) if e.code == 404 => bail!(
                "this cluster serves no argoproj.io Rollouts: install the Argo Rollouts CRDs (`mooring crds | kubectl apply -f -`)"
            ),
            Err(e) => Err(e).with_context(|| format!("reading rollout {name}")),
        }
    }

    /// Objects of `res` in the namespace owned by the rollout `uid` (an empty list when
    /// the kind is not served).
    async fn owned(
        &self,
        res: &ApiResource,
        owner_uid: &str,
        params: &ListParams,
    ) -> anyhow::Result<Vec<Value>> {
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &self.ns, res);
        let items = match api.list(params).await {
            Ok(l) => l.items,
            Err(kube::Error::Api(e)) if e.code == 404 => vec![],
            Err(e) => return Err(e).with_context(|| format!("listing {}", res.plural)),
        };
        Ok(items
            .into_iter()
            .filter_map(|o| serde_json::to_value(o).ok())
            .filter(|o| owned_by(o, owner_uid))
            .collect())
    }

    /// The rollout with its ReplicaSets (each with its pods) and AnalysisRuns.
    async fn tree(&self, rollout: Value) -> anyhow::Result<Tree> {
        let uid = rollout
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        // Argo labels every ReplicaSet and pod of a Rollout with its template hash.
        let with_hash = ListParams::default().labels(POD_TEMPLATE_HASH_LABEL);
        let mut replica_sets = self
            .owned(
                &resource("apps", "v1", "ReplicaSet", "replicasets"),
                &uid,
                &with_hash,
            )
            .await?;
        let analysis_runs = self
            .owned(
                &mooring_k8s::resources::analysis_run_resource(),
                &uid,
                &ListParams::default(),
            )
            .await?;
        let pods: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            &self.ns,
            &resource("", "v1", "Pod", "pods"),
        );
        let pods: Vec<Value> = match pods.list(&with_hash).await {
            Ok(l) => l
                .items
                .into_iter()
                .filter_map(|o| serde_json::to_value(o).ok())
                .collect(),
            Err(_) => vec![],
        };
        for rs in &mut replica_sets {
            let rs_uid = rs
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let mine: Vec<Value> = pods
                .iter()
                .filter(|p| owned_by(p, &rs_uid))
                .cloned()
                .collect();
            rs["__pods"] = Value::Array(mine);
        }
        Ok(Tree {
            rollout,
            replica_sets,
            analysis_runs,
        })
    }
}

fn owned_by(o: &Value, uid: &str) -> bool {
    !uid.is_empty()
        && o.pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
}

/// A rollout and what it owns, as read from the cluster.
pub struct Tree {
    pub rollout: Value,
    /// Each with its pods under `__pods`.
    pub replica_sets: Vec<Value>,
    pub analysis_runs: Vec<Value>,
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn i(v: &Value, ptr: &str) -> Option<i64> {
    match v.pointer(ptr)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Status of a rollout as the plugin shows it: `status.phase` and `status.message` when
/// the controller reports them, otherwise Argo CD's health of the object.
fn phase(r: &Value) -> (String, String) {
    let phase = s(r, "/status/phase");
    if !phase.is_empty() {
        return (phase.to_string(), s(r, "/status/message").to_string());
    }
    match mooring_engine::health::assess(r, None) {
        Some(h) => {
            let p = match h.status {
                mooring_core::app::HealthStatusCode::Healthy => "Healthy",
                mooring_core::app::HealthStatusCode::Suspended => "Paused",
                mooring_core::app::HealthStatusCode::Degraded => "Degraded",
                _ => "Progressing",
            };
            (p.to_string(), h.message)
        }
        None => ("Progressing".into(), String::new()),
    }
}

fn icon(phase: &str) -> &'static str {
    match phase {
        "Healthy" | "Successful" => "✔",
        "Paused" | "Suspended" => "॥",
        "Degraded" | "Failed" | "Error" => "✖",
        "Progressing" | "Pending" | "Running" => "◌",
        _ => "⚠",
    }
}

fn steps(r: &Value) -> &[Value] {
    r.pointer("/spec/strategy/canary/steps")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn strategy(r: &Value) -> &'static str {
    if r.pointer("/spec/strategy/blueGreen")
        .is_some_and(|v| !v.is_null())
    {
        "BlueGreen"
    } else {
        "Canary"
    }
}

/// The weight the current step asks for (the plugin's "SetWeight").
fn set_weight(r: &Value) -> Option<i64> {
    if strategy(r) != "Canary" {
        return None;
    }
    if command::aborted(r) {
        return Some(0);
    }
    if let Some(w) = i(r, "/status/canary/weights/canary/weight") {
        return Some(w);
    }
    let steps = steps(r);
    let index = i(r, "/status/currentStepIndex").unwrap_or(steps.len() as i64);
    if steps.is_empty() || index < 0 || index as usize >= steps.len() {
        return Some(100);
    }
    Some(
        steps[..=index as usize]
            .iter()
            .rev()
            .find_map(|st| i(st, "/setWeight"))
            .unwrap_or(0),
    )
}

fn rs_hash(rs: &Value) -> &str {
    rs.pointer("/metadata/labels")
        .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// What the plugin calls the ReplicaSet's role: stable, canary, active, preview.
fn rs_tags(r: &Value, hash: &str) -> Vec<&'static str> {
    let mut tags = Vec::new();
    if hash.is_empty() {
        return tags;
    }
    let stable = s(r, "/status/stableRS");
    let current = s(r, "/status/currentPodHash");
    if strategy(r) == "BlueGreen" {
        if stable == hash {
            tags.push("stable");
        }
        if s(r, "/status/blueGreen/activeSelector") == hash {
            tags.push("active");
        }
        if s(r, "/status/blueGreen/previewSelector") == hash && stable != hash {
            tags.push("preview");
        }
    } else {
        if stable == hash {
            tags.push("stable");
        }
        if current == hash && stable != hash {
            tags.push("canary");
        }
    }
    tags
}

/// The plugin's summary of a rollout, as JSON (also what `-o json|yaml` prints).
pub fn info(tree: &Tree) -> Value {
    let r = &tree.rollout;
    let (status, message) = phase(r);
    let strategy = strategy(r);
    let steps = steps(r);
    let step = (strategy == "Canary" && !steps.is_empty()).then(|| {
        let idx = i(r, "/status/currentStepIndex").unwrap_or(steps.len() as i64);
        format!("{idx}/{}", steps.len())
    });
    let stable = s(r, "/status/stableRS");
    let current = s(r, "/status/currentPodHash");
    let available = i(r, "/status/availableReplicas").unwrap_or(0);
    let canary_available = tree
        .replica_sets
        .iter()
        .find(|rs| rs_hash(rs) == current)
        .and_then(|rs| i(rs, "/status/availableReplicas"))
        .unwrap_or(0);
    let actual_weight = (strategy == "Canary").then(|| {
        if let Some(w) = i(r, "/status/canary/weights/canary/weight") {
            w
        } else if !current.is_empty() && current == stable {
            100
        } else if available > 0 {
            canary_available * 100 / available
        } else {
            0
        }
    });
    let mut replica_sets: Vec<Value> = tree
        .replica_sets
        .iter()
        .map(|rs| {
            let hash = rs_hash(rs);
            let pods: Vec<Value> = rs["__pods"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or(&[])
                .iter()
                .map(|p| {
                    let ready = p
                        .pointer("/status/conditions")
                        .and_then(Value::as_array)
                        .is_some_and(|c| {
                            c.iter()
                                .any(|c| c["type"] == "Ready" && c["status"] == "True")
                        });
                    json!({"name": s(p, "/metadata/name"), "phase": s(p, "/status/phase"), "ready": ready})
                })
                .collect();
            json!({
                "name": s(rs, "/metadata/name"),
                "revision": command::replica_set_revision(rs),
                "hash": hash,
                "tags": rs_tags(r, hash),
                "images": images_of(rs.pointer("/spec/template").unwrap_or(&Value::Null)),
                "desired": i(rs, "/spec/replicas").unwrap_or(0),
                "replicas": i(rs, "/status/replicas").unwrap_or(0),
                "ready": i(rs, "/status/readyReplicas").unwrap_or(0),
                "available": i(rs, "/status/availableReplicas").unwrap_or(0),
                "pods": pods,
            })
        })
        .collect();
    replica_sets.sort_by_key(|rs| std::cmp::Reverse(rs["revision"].as_i64().unwrap_or(-1)));
    let mut images: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for rs in &replica_sets {
        let tags: Vec<&str> = rs["tags"]
            .as_array()
            .map(|t| t.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if tags.is_empty() || rs["replicas"].as_i64().unwrap_or(0) == 0 && tags != ["stable"] {
            continue;
        }
        for img in rs["images"].as_array().into_iter().flatten() {
            let e = images
                .entry(img.as_str().unwrap_or("").to_string())
                .or_default();
            for t in &tags {
                if !e.contains(t) {
                    e.push(t);
                }
            }
        }
    }
    if images.is_empty() {
        for img in images_of(r.pointer("/spec/template").unwrap_or(&Value::Null)) {
            images.insert(img, vec![]);
        }
    }
    let mut analysis_runs: Vec<Value> = tree
        .analysis_runs
        .iter()
        .map(|ar| {
            let count = |field: &str| {
                ar.pointer("/status/metricResults")
                    .and_then(Value::as_array)
                    .map_or(0, |m| m.iter().filter_map(|m| i(m, field)).sum::<i64>())
            };
            let phase = s(ar, "/status/phase");
            json!({
                "name": s(ar, "/metadata/name"),
                "revision": ar.pointer("/metadata/annotations").and_then(|a| a.get(REVISION_ANNOTATION)).and_then(Value::as_str).and_then(|v| v.parse::<i64>().ok()),
                "hash": ar.pointer("/metadata/labels").and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL)).and_then(Value::as_str).unwrap_or(""),
                "phase": if phase.is_empty() { "Pending" } else { phase },
                "message": s(ar, "/status/message"),
                "successful": count("/successful"),
                "failed": count("/failed"),
                "error": count("/error"),
                "inconclusive": count("/inconclusive"),
                "created": s(ar, "/metadata/creationTimestamp"),
            })
        })
        .collect();
    analysis_runs.sort_by(|a, b| {
        (b["created"].as_str(), b["name"].as_str())
            .cmp(&(a["created"].as_str(), a["name"].as_str()))
    });
    json!({
        "name": s(r, "/metadata/name"),
        "namespace": s(r, "/metadata/namespace"),
        "status": status,
        "message": message,
        "strategy": strategy,
        "step": step,
        "setWeight": set_weight(r),
        "actualWeight": actual_weight,
        "abort": command::aborted(r),
        "paused": r.pointer("/spec/paused").and_then(Value::as_bool).unwrap_or(false),
        "revision": r.pointer("/metadata/annotations").and_then(|a| a.get(REVISION_ANNOTATION)).and_then(Value::as_str),
        "stableRS": stable,
        "currentPodHash": current,
        "images": images.into_iter().map(|(image, tags)| json!({"image": image, "tags": tags})).collect::<Vec<_>>(),
        "replicas": {
            "desired": i(r, "/spec/replicas").unwrap_or(1),
            "current": i(r, "/status/replicas").unwrap_or(0),
            "updated": i(r, "/status/updatedReplicas").unwrap_or(0),
            "ready": i(r, "/status/readyReplicas").unwrap_or(0),
            "available": available,
        },
        "replicaSets": replica_sets,
        "analysisRuns": analysis_runs,
    })
}

fn images_of(template: &Value) -> Vec<String> {
    ["initContainers", "containers"]
        .iter()
        .flat_map(|k| {
            template
                .pointer(&format!("/spec/{k}"))
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[])
        })
        .filter_map(|c| c["image"].as_str().map(str::to_string))
        .collect()
}

fn opt(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The plugin's `get rollout` view.
pub fn render(info: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let status = info["status"].as_str().unwrap_or("");
    let message = info["message"].as_str().unwrap_or("");
    let row = |out: &mut String, k: &str, v: &str| {
        let key = if k.is_empty() {
            String::new()
        } else {
            format!("{k}:")
        };
        let _ = writeln!(out, "{}", format!("{key:<17}{v}").trim_end());
    };
    row(&mut out, "Name", info["name"].as_str().unwrap_or(""));
    row(
        &mut out,
        "Namespace",
        info["namespace"].as_str().unwrap_or(""),
    );
    let mut st = format!("{} {status}", icon(status));
    if !message.is_empty() {
        let _ = write!(st, "\n{:<17}{message}", "Message:");
    }
    row(&mut out, "Status", &st);
    row(
        &mut out,
        "Strategy",
        info["strategy"].as_str().unwrap_or(""),
    );
    if info["strategy"] == "Canary" {
        if !info["step"].is_null() {
            row(&mut out, "  Step", &opt(&info["step"]));
        }
        row(&mut out, "  SetWeight", &opt(&info["setWeight"]));
        row(&mut out, "  ActualWeight", &opt(&info["actualWeight"]));
    }
    let images: Vec<String> = info["images"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|img| {
            let tags: Vec<String> = img["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|t| format!("({t})"))
                .collect();
            format!(
                "{} {}",
                img["image"].as_str().unwrap_or(""),
                tags.join(", ")
            )
            .trim_end()
            .to_string()
        })
        .collect();
    for (n, img) in images.iter().enumerate() {
        row(&mut out, if n == 0 { "Images" } else { "" }, img);
    }
    let r = &info["replicas"];
    row(&mut out, "Replicas", "");
    for k in ["desired", "current", "updated", "ready", "available"] {
        let label = format!("  {}{}", k[..1].to_uppercase(), &k[1..]);
        row(&mut out, &label, &r[k].to_string());
    }
    out.push('\n');
    let mut lines: Vec<[String; 4]> = vec![
        ["NAME".into(), "KIND".into(), "STATUS".into(), "INFO".into()],
        [
            format!("⟳ {}", info["name"].as_str().unwrap_or("")),
            "Rollout".into(),
            format!("{} {status}", icon(status)),
            String::new(),
        ],
    ];
    // Revisions, newest first, with their ReplicaSet, pods and AnalysisRuns.
    let mut revisions: Vec<Option<i64>> = info["replicaSets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|rs| rs["revision"].as_i64())
        .chain(
            info["analysisRuns"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| a["revision"].as_i64()),
        )
        .collect();
    revisions.sort_by_key(|r| std::cmp::Reverse(*r));
    revisions.dedup();
    let count = revisions.len();
    for (n, rev) in revisions.iter().enumerate() {
        let last = n + 1 == count;
        let (branch, indent) = if last {
            ("└──", "   ")
        } else {
            ("├──", "│  ")
        };
        lines.push([
            format!(
                "{branch}# revision:{}",
                rev.map_or("?".to_string(), |r| r.to_string())
            ),
            String::new(),
            String::new(),
            String::new(),
        ]);
        let mut children: Vec<(String, &str, String, String)> = Vec::new();
        let mut pods_of: Vec<Vec<(String, String)>> = Vec::new();
        for rs in info["replicaSets"].as_array().into_iter().flatten() {
            if rs["revision"].as_i64() != *rev {
                continue;
            }
            let tags: Vec<&str> = rs["tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let (desired, ready) = (
                rs["desired"].as_i64().unwrap_or(0),
                rs["ready"].as_i64().unwrap_or(0),
            );
            let st = if desired == 0 {
                "• ScaledDown".to_string()
            } else if ready >= desired {
                "✔ Healthy".to_string()
            } else {
                "◌ Progressing".to_string()
            };
            children.push((
                format!("⧉ {}", rs["name"].as_str().unwrap_or("")),
                "ReplicaSet",
                st,
                format!(
                    "{}{ready}/{desired} ready",
                    if tags.is_empty() {
                        String::new()
                    } else {
                        format!("{} ", tags.join(","))
                    }
                ),
            ));
            pods_of.push(
                rs["pods"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|p| {
                        let ready = p["ready"] == true;
                        (
                            p["name"].as_str().unwrap_or("").to_string(),
                            if ready {
                                "✔ Running".to_string()
                            } else {
                                format!("◌ {}", p["phase"].as_str().unwrap_or("Pending"))
                            },
                        )
                    })
                    .collect(),
            );
        }
        for ar in info["analysisRuns"].as_array().into_iter().flatten() {
            if ar["revision"].as_i64() != *rev {
                continue;
            }
            let phase = ar["phase"].as_str().unwrap_or("");
            let mut counts = Vec::new();
            for (k, sym) in [
                ("successful", "✔"),
                ("failed", "✖"),
                ("error", "⚠"),
                ("inconclusive", "?"),
            ] {
                let c = ar[k].as_i64().unwrap_or(0);
                if c > 0 {
                    counts.push(format!("{sym} {c}"));
                }
            }
            children.push((
                format!("α {}", ar["name"].as_str().unwrap_or("")),
                "AnalysisRun",
                format!("{} {phase}", icon(phase)),
                counts.join(","),
            ));
            pods_of.push(vec![]);
        }
        let kids = children.len();
        for (k, ((name, kind, st, extra), pods)) in children.iter().zip(&pods_of).enumerate() {
            let last_kid = k + 1 == kids;
            let b = if last_kid { "└──" } else { "├──" };
            lines.push([
                format!("{indent}{b}{name}"),
                kind.to_string(),
                st.clone(),
                extra.clone(),
            ]);
            let sub = if last_kid { "   " } else { "│  " };
            for (p, (pod, pst)) in pods.iter().enumerate() {
                let pb = if p + 1 == pods.len() {
                    "└──"
                } else {
                    "├──"
                };
                lines.push([
                    format!("{indent}{sub}{pb}□ {pod}"),
                    "Pod".into(),
                    pst.clone(),
                    String::new(),
                ]);
            }
        }
    }
    let width = |c: usize| {
        lines
            .iter()
            .filter(|l| !l[1].is_empty())
            .map(|l| l[c].chars().count())
            .max()
            .unwrap_or(0)
            + 2
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    for l in &lines {
        let line = if l[1].is_empty() {
            l[0].clone()
        } else {
            format!("{:<w0$}{:<w1$}{:<w2$}{}", l[0], l[1], l[2], l[3])
        };
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

fn list_row(info: &Value) -> Vec<String> {
    let r = &info["replicas"];
    vec![
        info["namespace"].as_str().unwrap_or("").to_string(),
        info["name"].as_str().unwrap_or("").to_string(),
        info["strategy"].as_str().unwrap_or("").to_string(),
        info["status"].as_str().unwrap_or("").to_string(),
        opt(&info["step"]),
        opt(&info["setWeight"]),
        format!("{}/{}", r["ready"], r["current"]),
        r["desired"].to_string(),
        r["updated"].to_string(),
        r["available"].to_string(),
    ]
}

/// Whether `watch` is done: `Some(true)` Healthy and fully promoted, `Some(false)`
/// Degraded or aborted, `None` still going.
pub fn finished(r: &Value) -> Option<bool> {
    let observed = match i(r, "/status/observedGeneration") {
        Some(o) => o >= i(r, "/metadata/generation").unwrap_or(0),
        None => r.pointer("/status/observedGeneration").is_some(),
    };
    if command::aborted(r) {
        return Some(false);
    }
    if !observed {
        return None;
    }
    let (phase, _) = phase(r);
    match phase.as_str() {
        "Degraded" => Some(false),
        "Healthy" => {
            let stable = s(r, "/status/stableRS");
            let current = s(r, "/status/currentPodHash");
            (stable.is_empty() || stable == current).then_some(true)
        }
        _ => None,
    }
}

pub async fn run(cmd: RolloutCommand, common: RolloutCommon) -> anyhow::Result<ExitCode> {
    let ctx = Ctx {
        client: target_client(&common).await?,
        ns: common.namespace.clone(),
    };
    match cmd {
        RolloutCommand::List {
            kind: _,
            all_namespaces,
            output,
        } => {
            let mut infos = Vec::new();
            let rollouts = if all_namespaces {
                ctx.list_all_rollouts().await?
            } else {
                ctx.list_rollouts().await?
            };
            for r in rollouts {
                infos.push(info(&Tree {
                    rollout: r,
                    replica_sets: vec![],
                    analysis_runs: vec![],
                }));
            }
            match output {
                Output::Table => {
                    if infos.is_empty() {
                        if all_namespaces {
                            eprintln!("no rollouts in any namespace");
                        } else {
                            eprintln!("no rollouts in namespace {}", ctx.ns);
                        }
                        return Ok(ExitCode::SUCCESS);
                    }
                    let mut rows = vec![[
                        "NAMESPACE",
                        "NAME",
                        "STRATEGY",
                        "STATUS",
                        "STEP",
                        "SET-WEIGHT",
                        "READY",
                        "DESIRED",
                        "UP-TO-DATE",
                        "AVAILABLE",
                    ]
                    .map(String::from)
                    .to_vec()];
                    rows.extend(infos.iter().map(list_row));
                    if !all_namespaces {
                        for r in &mut rows {
                            r.remove(0);
                        }
                    }
                    print_table(&rows);
                }
                o => emit(&Value::Array(infos), o)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        RolloutCommand::Get {
            args,
            watch: keep_watching,
            timeout,
            output,
        } => {
            let name = match args.as_slice() {
                [name] => name.clone(),
                [kind, name] if matches!(kind.as_str(), "rollout" | "rollouts" | "ro") => {
                    name.clone()
                }
                [kind, _] => bail!(
                    "`get {kind} NAME`: only rollouts can be shown (`mooring rollout get NAME`)"
                ),
                _ => bail!("`mooring rollout get NAME`"),
            };
            if keep_watching {
                return watch(&ctx, &name, timeout, output).await;
            }
            let r = ctx.get_rollout(&name).await?;
            let info = info(&ctx.tree(r).await?);
            match output {
                Output::Table => print!("{}", render(&info)),
                o => emit(&info, o)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        RolloutCommand::Watch {
            name,
            timeout,
            output,
        } => watch(&ctx, &name, timeout, output).await,
        RolloutCommand::Status { name, timeout } => status(&ctx, &name, timeout).await,
        RolloutCommand::Promote { name, full } => {
            let r = ctx.get_rollout(&name).await?;
            let (spec, status) = command::promote_patches(&r, full)?;
            apply_patches(&ctx, &name, spec, status).await?;
            println!(
                "rollout '{name}' {}",
                if full { "fully promoted" } else { "promoted" }
            );
            Ok(ExitCode::SUCCESS)
        }
        RolloutCommand::Abort { name } => {
            let r = ctx.get_rollout(&name).await?;
            apply_patches(&ctx, &name, None, Some(command::abort_patch(&r)?)).await?;
            println!("rollout '{name}' aborted");
            Ok(ExitCode::SUCCESS)
        }
        RolloutCommand::Retry { name } => {
            let r = ctx.get_rollout(&name).await?;
            apply_patches(&ctx, &name, None, Some(command::retry_patch(&r)?)).await?;
            println!("rollout '{name}' retried");
            Ok(ExitCode::SUCCESS)
        }
        RolloutCommand::Pause { name } => {
            ctx.get_rollout(&name).await?;
            apply_patches(&ctx, &name, Some(command::pause_patch()), None).await?;
            println!("rollout '{name}' paused");
            Ok(ExitCode::SUCCESS)
        }
        RolloutCommand::Undo { name, to_revision } => {
            let r = ctx.get_rollout(&name).await?;
            let tree = ctx.tree(r).await?;
            let (revision, patch) =
                command::undo_patch(&tree.rollout, &tree.replica_sets, to_revision)?;
            ctx.rollouts()
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .with_context(|| format!("updating rollout {name}"))?;
            println!("rollout '{name}' undo: pod template of revision {revision}");
            Ok(ExitCode::SUCCESS)
        }
        RolloutCommand::SetImage { name, images } => {
            let r = ctx.get_rollout(&name).await?;
            let patch = command::set_image_patch(&r, &images)?;
            ctx.rollouts()
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .with_context(|| format!("updating rollout {name}"))?;
            println!("rollout '{name}' image updated");
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn apply_patches(
    ctx: &Ctx,
    name: &str,
    spec: Option<Value>,
    status: Option<Value>,
) -> anyhow::Result<()> {
    let api = ctx.rollouts();
    if let Some(p) = status {
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&p))
            .await
            .with_context(|| format!("updating the status of rollout {name}"))?;
    }
    if let Some(p) = spec {
        api.patch(name, &PatchParams::default(), &Patch::Merge(&p))
            .await
            .with_context(|| format!("updating rollout {name}"))?;
    }
    Ok(())
}

/// How `watch` and `status` print each change.
#[derive(Clone, Copy, PartialEq)]
enum Follow {
    View(Output),
    StatusLines,
}

async fn watch(ctx: &Ctx, name: &str, timeout: u64, output: Output) -> anyhow::Result<ExitCode> {
    follow(ctx, name, timeout, Follow::View(output)).await
}

async fn status(ctx: &Ctx, name: &str, timeout: u64) -> anyhow::Result<ExitCode> {
    follow(ctx, name, timeout, Follow::StatusLines).await
}

/// Follows the Rollout through a watch (which resumes by itself after a dropped
/// connection), and re-reads its ReplicaSets and AnalysisRuns every two seconds between
/// Rollout events so that pods turning ready show up too. Prints only what changed.
async fn follow(ctx: &Ctx, name: &str, timeout: u64, mode: Follow) -> anyhow::Result<ExitCode> {
    use kube::runtime::watcher;
    // Not found → the helpful error, before waiting for anything.
    let mut current = ctx.get_rollout(name).await?;
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher::watcher(ctx.rollouts(), config).boxed();
    let deadline =
        (timeout > 0).then(|| tokio::time::Instant::now() + Duration::from_secs(timeout));
    let mut refresh = tokio::time::interval(Duration::from_secs(2));
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_view = String::new();
    let mut first = true;
    loop {
        if !first {
            let timed_out = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = timed_out => {
                    eprintln!(
                        "timed out after {timeout}s following rollout {name}; see `mooring rollout get {name} -n {}`",
                        ctx.ns
                    );
                    return Ok(ExitCode::from(1));
                }
                _ = refresh.tick(), if matches!(mode, Follow::View(_)) => {}
                next = stream.next() => match next {
                    None => bail!("the watch on rollout {name} ended"),
                    Some(Err(e)) => {
                        tracing::debug!("watch error (the watcher retries): {e}");
                        continue;
                    }
                    Some(Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o))) => {
                        current = serde_json::to_value(o)?;
                    }
                    Some(Ok(watcher::Event::Delete(_))) => bail!("rollout {name} was deleted"),
                    Some(Ok(_)) => continue,
                },
            }
        }
        first = false;
        let done = finished(&current);
        let (view, info) = match mode {
            Follow::View(output) => {
                let info = info(&ctx.tree(current.clone()).await?);
                let view = match output {
                    Output::Table => render(&info),
                    Output::Json => format!("{}\n", serde_json::to_string(&info)?),
                    Output::Yaml => format!("---\n{}", serde_saphyr::to_string(&info)?),
                };
                (view, info)
            }
            Follow::StatusLines => {
                let info = info(&Tree {
                    rollout: current.clone(),
                    replica_sets: vec![],
                    analysis_runs: vec![],
                });
                let status = info["status"].as_str().unwrap_or("");
                let message = info["message"].as_str().unwrap_or("");
                let line = if message.is_empty() {
                    format!("{status}\n")
                } else {
                    format!("{status} - {message}\n")
                };
                (line, info)
            }
        };
        if view != last_view {
            if mode == Follow::View(Output::Table) && !last_view.is_empty() {
                println!();
            }
            print!("{view}");
            last_view = view;
        }
        match done {
            Some(true) => return Ok(ExitCode::SUCCESS),
            Some(false) => {
                let message = info["message"].as_str().unwrap_or("");
                eprintln!(
                    "rollout {name} is {}: {}",
                    info["status"].as_str().unwrap_or(""),
                    match (message.is_empty(), info["abort"] == true) {
                        (false, _) => message,
                        (true, true) => "aborted",
                        (true, false) => "no message",
                    }
                );
                return Ok(ExitCode::from(1));
            }
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout(status: Value) -> Value {
        json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "ml-model-serving", "namespace": "ml", "generation": 2,
                         "annotations": {REVISION_ANNOTATION: "2"}},
            "spec": {
                "replicas": 4,
                "template": {"metadata": {"labels": {"app": "m"}},
                             "spec": {"containers": [{"name": "server", "image": "m:2"}],
                                      "initContainers": [{"name": "fetch", "image": "f:1"}]}},
                "strategy": {"canary": {"steps": [
                    {"setWeight": 10}, {"pause": {}}, {"analysis": {}}, {"setWeight": 50}, {"pause": {"duration": "1m"}}
                ]}},
            },
            "status": status,
        })
    }

    #[test]
    fn merge_diff_round_trips() {
        let from = json!({"metadata": {"labels": {"a": "1", "h": "x"}, "annotations": {"k": "v"}},
                          "spec": {"containers": [{"name": "s", "image": "1"}]}});
        let to = json!({"metadata": {"labels": {"a": "1"}},
                        "spec": {"containers": [{"name": "s", "image": "0"}], "nodeName": "n"}});
        let d = mooring_core::merge_patch::diff(&from, &to);
        let mut applied = from.clone();
        mooring_core::merge_patch::apply(&mut applied, &d);
        assert_eq!(applied, to);
    }

    #[test]
    fn set_weight_follows_the_steps() {
        let at = |idx: i64| {
            set_weight(&rollout(
                json!({"currentStepIndex": idx, "stableRS": "a", "currentPodHash": "b"}),
            ))
        };
        assert_eq!(at(0), Some(10));
        assert_eq!(at(2), Some(10));
        assert_eq!(at(4), Some(50));
        assert_eq!(at(5), Some(100));
        let aborted = rollout(json!({"currentStepIndex": 3, "abort": true}));
        assert_eq!(set_weight(&aborted), Some(0));
        let routed = rollout(
            json!({"currentStepIndex": 3, "canary": {"weights": {"canary": {"weight": 42}}}}),
        );
        assert_eq!(set_weight(&routed), Some(42));
    }

    #[test]
    fn info_and_watch_outcomes() {
        let r = rollout(json!({
            "observedGeneration": "2", "phase": "Paused", "message": "CanaryPauseStep",
            "currentStepIndex": 1, "stableRS": "a", "currentPodHash": "b",
            "replicas": 5, "updatedReplicas": 1, "readyReplicas": 5, "availableReplicas": 5,
            "pauseConditions": [{"reason": "CanaryPauseStep"}],
        }));
        let rs = |hash: &str, rev: &str, image: &str, avail: i64| {
            json!({"metadata": {"name": format!("m-{hash}"), "annotations": {REVISION_ANNOTATION: rev},
                                "labels": {POD_TEMPLATE_HASH_LABEL: hash}},
                   "spec": {"replicas": avail, "template": {"spec": {"containers": [{"name": "server", "image": image}]}}},
                   "status": {"replicas": avail, "readyReplicas": avail, "availableReplicas": avail},
                   "__pods": []})
        };
        let tree = Tree {
            rollout: r.clone(),
            replica_sets: vec![rs("a", "1", "m:1", 4), rs("b", "2", "m:2", 1)],
            analysis_runs: vec![
                json!({"metadata": {"name": "m-b-2-2", "annotations": {REVISION_ANNOTATION: "2"}},
                "status": {"phase": "Failed", "metricResults": [{"name": "success-rate", "successful": 2, "failed": 1}]}}),
            ],
        };
        let v = info(&tree);
        assert_eq!(v["status"], "Paused");
        assert_eq!(v["step"], "1/5");
        assert_eq!(v["setWeight"], 10);
        assert_eq!(v["actualWeight"], 20);
        assert_eq!(
            v["images"],
            json!([{"image": "m:1", "tags": ["stable"]}, {"image": "m:2", "tags": ["canary"]}])
        );
        assert_eq!(v["analysisRuns"][0]["failed"], 1);
        let text = render(&v);
        assert!(text.contains("॥ Paused"), "{text}");
        assert!(text.contains("m:2 (canary)"), "{text}");
        assert!(
            text.contains("# revision:2") && text.contains("α m-b-2-2"),
            "{text}"
        );
        assert_eq!(finished(&r), None);
        let mut healthy = r.clone();
        healthy["status"] = json!({"observedGeneration": "2", "phase": "Healthy", "stableRS": "b", "currentPodHash": "b"});
        assert_eq!(finished(&healthy), Some(true));
        healthy["metadata"]["generation"] = json!(3);
        assert_eq!(finished(&healthy), None, "a spec change not observed yet");
        let mut aborted = r;
        aborted["status"]["abort"] = json!(true);
        assert_eq!(finished(&aborted), Some(false));
    }

    /// Whatever a hostile or half-written object holds, the summary is computed without
    /// panicking and the commands that need a field say so.
    #[test]
    fn malformed_rollouts_are_summarised_not_panicked_on() {
        for r in [
            json!(null),
            json!("rollout"),
            json!({"spec": "x", "status": 7}),
            json!({"metadata": {"name": 5}, "spec": {"strategy": {"canary": {"steps": 5}}},
                   "status": {"currentStepIndex": -3, "phase": ["Healthy"], "canary": {"weights": "x"}}}),
            json!({"spec": {"replicas": "many", "strategy": {"canary": {"steps": [{"setWeight": "ten"}, 3, null]}},
                   "template": {"spec": {"containers": "server"}}},
                   "status": {"currentStepIndex": "99999999999999999999", "availableReplicas": -5}}),
            json!({"spec": {"strategy": {"blueGreen": {}}}, "status": {"blueGreen": 1, "pauseConditions": "yes"}}),
        ] {
            let tree = Tree {
                rollout: r.clone(),
                replica_sets: vec![
                    json!(1),
                    json!({"metadata": {"labels": "x", "annotations": {REVISION_ANNOTATION: "x"}}, "__pods": [7]}),
                ],
                analysis_runs: vec![json!({"status": {"metricResults": "x"}})],
            };
            let v = info(&tree);
            let _ = render(&v);
            let _ = finished(&r);
            let _ = command::promote_patches(&r, false);
            let _ = command::promote_patches(&r, true);
            let _ = command::undo_patch(&tree.rollout, &tree.replica_sets, None);
            assert!(
                command::set_image_patch(&r, &[("*".into(), "x:1".into())]).is_err(),
                "{r}"
            );
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("5m"), Ok(300));
        assert_eq!(parse_duration("1h"), Ok(3600));
        for bad in ["", "m", "5d", "-1", "1.5m", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn image_arguments_are_checked() {
        assert!(parse_image("server=m:1").is_ok());
        assert!(parse_image("*=m:1").is_ok());
        for bad in ["server", "=m:1", "server=", "server=m 1"] {
            assert!(parse_image(bad).is_err(), "{bad}");
        }
    }
}
