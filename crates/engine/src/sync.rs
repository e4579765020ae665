//! Sync planning: what to apply, prune and run as hooks, in which order — the manual.
//!
//! A sync turns the rendered manifests of an application into a sequence of **steps**.
//! Each step is one `(phase, wave)` pair; the controller executes the steps in order and
//! records progress in the Application's `status.operationState` after every step, so a
//! restarted controller resumes at the first unfinished step (see [`SyncState`]).
//!
//! Ordering follows Argo CD, so existing repositories behave the same:
//!
//! 1. **Phases**: `PreSync` hooks, then `Sync` (ordinary resources, `Sync` hooks and
//!    prunes), then `PostSync` hooks. If any step fails, the `SyncFail` hooks run and the
//!    operation fails. Hooks are resources annotated `argocd.argoproj.io/hook:
//!    PreSync|Sync|PostSync|SyncFail|Skip` (comma-separated; Helm's `helm.sh/hook`
//!    `pre-install`/`post-install`… map to PreSync/PostSync). `Skip` resources are never
//!    applied.
//! 2. **Waves** inside a phase: `argocd.argoproj.io/sync-wave` (an integer, default 0),
//!    lowest first. The controller waits until a wave's resources are healthy (and its
//!    hooks finished) before starting the next wave.
//! 3. **Kind order** inside a wave: namespaces and CRDs first, then the Kubernetes
//!    dependency order (ServiceAccounts, Secrets, ConfigMaps, storage, RBAC, Services,
//!    workloads, Ingresses), unknown kinds last; then by namespace and name.
//! 4. **Prune**: live resources of the app that are no longer in Git are deleted in the
//!    `Sync` phase after everything else of their wave, in reverse kind order; with
//!    `PruneLast=true` (app or resource option) they go into a final step after all
//!    waves. `Prune=false` on a resource keeps it and reports it as requiring pruning.
//!    Pruning only happens when the sync asks for it (`--prune` or `automated.prune`).
//! 5. **Options**: `ApplyOutOfSyncOnly=true` skips resources already in sync;
//!    `CreateNamespace=true` adds the destination namespace as the first task;
//!    `Replace=true` makes a resource replace instead of apply; `Validate=false` is
//!    passed through. Options come from the app's `syncPolicy.syncOptions` and each
//!    resource's `argocd.argoproj.io/sync-options` annotation (resource wins).
//!
//! Hook delete policies (`argocd.argoproj.io/hook-delete-policy`): `BeforeHookCreation`
//! (the default: an earlier run's hook object is deleted before the new one is created),
//! `HookSucceeded`, `HookFailed`. Hook objects with `generateName` get a name derived from
//! the operation, so re-running a step after a restart finds (rather than duplicates) the
//! hook it already created.

use mooring_core::app::sync_option;
use mooring_core::ResourceKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;

pub const ANNOTATION_HOOK: &str = "argocd.argoproj.io/hook";
pub const ANNOTATION_HOOK_DELETE_POLICY: &str = "argocd.argoproj.io/hook-delete-policy";
pub const ANNOTATION_SYNC_WAVE: &str = "argocd.argoproj.io/sync-wave";
pub const ANNOTATION_SYNC_OPTIONS: &str = "argocd.argoproj.io/sync-options";
pub const ANNOTATION_HELM_HOOK: &str = "helm.sh/hook";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SyncPhase {
    PreSync,
    Sync,
    PostSync,
    SyncFail,
}

impl SyncPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncPhase::PreSync => "PreSync",
            SyncPhase::Sync => "Sync",
            SyncPhase::PostSync => "PostSync",
            SyncPhase::SyncFail => "SyncFail",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HookDeletePolicy {
    BeforeHookCreation,
    HookSucceeded,
    HookFailed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskKind {
    Apply,
    /// Delete a live resource that is no longer in Git.
    Prune,
    /// Create (and wait for) a hook resource.
    Hook,
}

/// One unit of work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncTask {
    pub key: ResourceKey,
    pub kind: TaskKind,
    pub phase: SyncPhase,
    pub wave: i64,
    /// The manifest to apply (Apply/Hook), or the live object (Prune).
    pub object: Value,
    /// Effective sync options for this resource (`Key=Value`).
    pub options: Vec<String>,
    pub delete_policies: Vec<HookDeletePolicy>,
}

impl SyncTask {
    pub fn option(&self, key: &str) -> Option<&str> {
        sync_option(&self.options, key)
    }
}

/// One `(phase, wave)` group of tasks, executed together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncStep {
    pub phase: SyncPhase,
    pub wave: i64,
    pub tasks: Vec<SyncTask>,
}

/// A resource that should be pruned but is kept (`Prune=false`, or pruning not requested).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PruneSkipped {
    pub key: ResourceKey,
    pub reason: String,
}

/// The whole ordered plan, plus the SyncFail hooks to run if a step fails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SyncPlan {
    pub steps: Vec<SyncStep>,
    pub on_fail: Vec<SyncTask>,
    pub prune_skipped: Vec<PruneSkipped>,
}

impl SyncPlan {
    pub fn task_count(&self) -> usize {
        self.steps.iter().map(|s| s.tasks.len()).sum()
    }
}

/// Inputs to planning. `desired` are the rendered manifests (hooks included); `live` the
/// live objects currently managed by the app; `out_of_sync` the keys the diff found out of
/// sync (used by `ApplyOutOfSyncOnly`).
pub struct PlanInput<'a> {
    pub desired: &'a [Value],
    pub live: &'a [Value],
    pub out_of_sync: &'a BTreeSet<ResourceKey>,
    pub app_options: &'a [String],
    pub prune: bool,
    /// Destination namespace, created first when `CreateNamespace=true`.
    pub namespace: Option<&'a str>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("{key}: annotation {annotation}={value:?} is not valid: {why}")]
    BadAnnotation {
        key: String,
        annotation: &'static str,
        value: String,
        why: String,
    },
    #[error("manifest #{index} has no apiVersion/kind/metadata.name")]
    NoIdentity { index: usize },
    #[error("resource {0} appears more than once in the manifests")]
    Duplicate(String),
}

fn annotation<'a>(obj: &'a Value, name: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")?.get(name)?.as_str()
}

/// The hook phases of a manifest (`None` = not a hook). `Skip` is reported as an empty set.
pub fn hook_phases(obj: &Value) -> Option<Vec<SyncPhase>> {
    if let Some(h) = annotation(obj, ANNOTATION_HOOK) {
        let mut phases = Vec::new();
        for p in h.split(',').map(str::trim) {
            match p {
                "PreSync" => phases.push(SyncPhase::PreSync),
                "Sync" => phases.push(SyncPhase::Sync),
                "PostSync" => phases.push(SyncPhase::PostSync),
                "SyncFail" => phases.push(SyncPhase::SyncFail),
                _ => {}
            }
        }
        return Some(phases);
    }
    let helm = annotation(obj, ANNOTATION_HELM_HOOK)?;
    let mut phases = Vec::new();
    for p in helm.split(',').map(str::trim) {
        match p {
            "pre-install" | "pre-upgrade" => phases.push(SyncPhase::PreSync),
            "post-install" | "post-upgrade" => phases.push(SyncPhase::PostSync),
            _ => {}
        }
    }
    phases.dedup();
    Some(phases)
}

/// Whether the manifest is a hook of any kind (including `Skip`).
pub fn is_hook(obj: &Value) -> bool {
    hook_phases(obj).is_some()
}

fn wave(obj: &Value, key: &ResourceKey) -> Result<i64, PlanError> {
    match annotation(obj, ANNOTATION_SYNC_WAVE) {
        None => Ok(0),
        Some(w) => w.trim().parse().map_err(|_| PlanError::BadAnnotation {
            key: key.to_string(),
            annotation: ANNOTATION_SYNC_WAVE,
            value: w.to_string(),
            why: "must be an integer".into(),
        }),
    }
}

fn delete_policies(obj: &Value) -> Vec<HookDeletePolicy> {
    let mut out: Vec<HookDeletePolicy> = annotation(obj, ANNOTATION_HOOK_DELETE_POLICY)
        .map(|p| {
            p.split(',')
                .filter_map(|s| match s.trim() {
                    "BeforeHookCreation" | "before-hook-creation" => {
                        Some(HookDeletePolicy::BeforeHookCreation)
                    }
                    "HookSucceeded" | "hook-succeeded" => Some(HookDeletePolicy::HookSucceeded),
                    "HookFailed" | "hook-failed" => Some(HookDeletePolicy::HookFailed),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    if out.is_empty() {
        out.push(HookDeletePolicy::BeforeHookCreation);
    }
    out
}

/// App options overridden by the resource's own `sync-options` annotation.
fn effective_options(obj: &Value, app: &[String]) -> Vec<String> {
    let mut out = app.to_vec();
    if let Some(a) = annotation(obj, ANNOTATION_SYNC_OPTIONS) {
        out.extend(
            a.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
        );
    }
    out
}

/// Kubernetes' install order for kinds (Helm's and Argo CD's); unknown kinds come last.
pub fn kind_rank(kind: &str) -> usize {
    const ORDER: &[&str] = &[
        "Namespace",
        "NetworkPolicy",
        "ResourceQuota",
        "LimitRange",
        "PodSecurityPolicy",
        "PodDisruptionBudget",
        "ServiceAccount",
        "Secret",
        "SecretList",
        "ConfigMap",
        "StorageClass",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleList",
        "ClusterRoleBinding",
        "ClusterRoleBindingList",
        "Role",
        "RoleList",
        "RoleBinding",
        "RoleBindingList",
        "Service",
        "DaemonSet",
        "Pod",
        "ReplicationController",
        "ReplicaSet",
        "Deployment",
        "HorizontalPodAutoscaler",
        "StatefulSet",
        "Job",
        "CronJob",
        "IngressClass",
        "Ingress",
        "APIService",
    ];
    ORDER.iter().position(|k| *k == kind).unwrap_or(ORDER.len())
}

fn order_key(t: &SyncTask) -> (usize, String, String) {
    (
        kind_rank(&t.key.kind),
        t.key.namespace.clone(),
        t.key.name.clone(),
    )
}

/// Build the ordered plan. Pure: the same inputs always give the same plan.
pub fn plan(input: &PlanInput) -> Result<SyncPlan, PlanError> {
    let mut tasks: Vec<SyncTask> = Vec::new();
    let mut on_fail = Vec::new();
    let mut seen = BTreeSet::new();
    let mut desired_keys = BTreeSet::new();
    for (i, obj) in input.desired.iter().enumerate() {
        let key = ResourceKey::of(obj).ok_or(PlanError::NoIdentity { index: i })?;
        if !seen.insert((key.clone(), is_hook(obj))) {
            return Err(PlanError::Duplicate(key.to_string()));
        }
        let w = wave(obj, &key)?;
        let options = effective_options(obj, input.app_options);
        match hook_phases(obj) {
            Some(phases) => {
                for phase in phases {
                    let t = SyncTask {
                        key: key.clone(),
                        kind: TaskKind::Hook,
                        phase,
                        wave: w,
                        object: obj.clone(),
                        options: options.clone(),
                        delete_policies: delete_policies(obj),
                    };
                    if phase == SyncPhase::SyncFail {
                        on_fail.push(t);
                    } else {
                        tasks.push(t);
                    }
                }
            }
            None => {
                desired_keys.insert(key.clone());
                if sync_option(&options, "ApplyOutOfSyncOnly") == Some("true")
                    && !input.out_of_sync.contains(&key)
                {
                    continue;
                }
                tasks.push(SyncTask {
                    key,
                    kind: TaskKind::Apply,
                    phase: SyncPhase::Sync,
                    wave: w,
                    object: obj.clone(),
                    options,
                    delete_policies: vec![],
                });
            }
        }
    }
    if sync_option(input.app_options, "CreateNamespace") == Some("true") {
        if let Some(ns) = input.namespace.filter(|n| !n.is_empty()) {
            let key = ResourceKey::new("", "Namespace", "", ns);
            if !desired_keys.contains(&key) {
                let min_wave = tasks.iter().map(|t| t.wave).min().unwrap_or(0).min(0);
                tasks.push(SyncTask {
                    key,
                    kind: TaskKind::Apply,
                    phase: SyncPhase::PreSync,
                    wave: min_wave,
                    object: serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                    options: vec![],
                    delete_policies: vec![],
                });
            }
        }
    }

    // Prunes: live objects of the app that are not desired (hooks are never pruned).
    let mut prune_last = Vec::new();
    let mut prune_skipped = Vec::new();
    for obj in input.live {
        let Some(key) = ResourceKey::of(obj) else {
            continue;
        };
        if desired_keys.contains(&key) || is_hook(obj) {
            continue;
        }
        let options = effective_options(obj, input.app_options);
        if sync_option(&options, "Prune") == Some("false") {
            prune_skipped.push(PruneSkipped {
                key,
                reason: "Prune=false is set on the resource".into(),
            });
            continue;
        }
        if !input.prune {
            prune_skipped.push(PruneSkipped {
                key,
                reason: "pruning is disabled for this sync (use --prune or automated.prune)".into(),
            });
            continue;
        }
        let t = SyncTask {
            key: key.clone(),
            kind: TaskKind::Prune,
            phase: SyncPhase::Sync,
            wave: wave(obj, &key).unwrap_or(0),
            object: obj.clone(),
            options: options.clone(),
            delete_policies: vec![],
        };
        if sync_option(&options, "PruneLast") == Some("true") {
            prune_last.push(t);
        } else {
            tasks.push(t);
        }
    }

    // Group into (phase, wave) steps; applies before prunes inside a step, prunes in
    // reverse kind order (dependents before what they depend on).
    tasks.sort_by(|a, b| {
        (a.phase, a.wave, a.kind == TaskKind::Prune)
            .cmp(&(b.phase, b.wave, b.kind == TaskKind::Prune))
            .then_with(|| {
                if a.kind == TaskKind::Prune {
                    order_key(b).cmp(&order_key(a))
                } else {
                    order_key(a).cmp(&order_key(b))
                }
            })
    });
    let mut steps: Vec<SyncStep> = Vec::new();
    for t in tasks {
        match steps.last_mut() {
            Some(s) if s.phase == t.phase && s.wave == t.wave => s.tasks.push(t),
            _ => steps.push(SyncStep {
                phase: t.phase,
                wave: t.wave,
                tasks: vec![t],
            }),
        }
    }
    if !prune_last.is_empty() {
        prune_last.sort_by_key(|t| std::cmp::Reverse(order_key(t)));
        // After every Sync-phase step, before PostSync.
        let at = steps
            .iter()
            .position(|s| s.phase > SyncPhase::Sync)
            .unwrap_or(steps.len());
        let last_wave = steps
            .iter()
            .filter(|s| s.phase == SyncPhase::Sync)
            .map(|s| s.wave)
            .max()
            .unwrap_or(0);
        steps.insert(
            at,
            SyncStep {
                phase: SyncPhase::Sync,
                wave: last_wave.saturating_add(1),
                tasks: prune_last,
            },
        );
    }
    on_fail.sort_by_key(|t| (t.wave, order_key(t)));
    Ok(SyncPlan {
        steps,
        on_fail,
        prune_skipped,
    })
}

/// Where a running operation stands; persisted in `status.operationState` after every
/// step so that a restarted controller continues instead of starting over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncState {
    /// Index of the first step not yet completed.
    pub next_step: usize,
    /// Whether the current step's tasks were already submitted (then only waiting
    /// remains); re-submitting is idempotent for applies, and hooks are found by name.
    #[serde(default)]
    pub submitted: bool,
    #[serde(default)]
    pub failed: bool,
    #[serde(default)]
    pub fail_hooks_submitted: bool,
    #[serde(default)]
    pub message: String,
}

/// What the executor should do next, decided from the state alone.
#[derive(Debug, Clone, PartialEq)]
pub enum NextAction {
    /// Submit the tasks of step N.
    Submit(usize),
    /// Step N was submitted: wait until its resources are healthy / hooks finished.
    Wait(usize),
    /// Run the SyncFail hooks.
    RunFailHooks,
    Succeeded,
    Failed(String),
}

pub fn next_action(plan: &SyncPlan, state: &SyncState) -> NextAction {
    if state.failed {
        if !state.fail_hooks_submitted && !plan.on_fail.is_empty() {
            return NextAction::RunFailHooks;
        }
        return NextAction::Failed(state.message.clone());
    }
    if state.next_step >= plan.steps.len() {
        return NextAction::Succeeded;
    }
    if state.submitted {
        NextAction::Wait(state.next_step)
    } else {
        NextAction::Submit(state.next_step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(kind: &str, name: &str, ann: Value) -> Value {
        let api = match kind {
            "Deployment" => "apps/v1",
            "Job" => "batch/v1",
            _ => "v1",
        };
        json!({"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "ml", "annotations": ann}})
    }

    fn names(p: &SyncPlan) -> Vec<Vec<String>> {
        p.steps
            .iter()
            .map(|s| {
                s.tasks
                    .iter()
                    .map(|t| format!("{}:{:?}:{}", s.phase.as_str(), t.kind, t.key.name))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn phases_waves_and_kind_order() {
        let desired = vec![
            obj("Deployment", "server", json!({})),
            obj("ConfigMap", "config", json!({})),
            obj(
                "Job",
                "migrate",
                json!({"argocd.argoproj.io/hook": "PreSync"}),
            ),
            obj(
                "Job",
                "smoke",
                json!({"argocd.argoproj.io/hook": "PostSync"}),
            ),
            obj(
                "Service",
                "svc",
                json!({"argocd.argoproj.io/sync-wave": "1"}),
            ),
            obj(
                "Namespace",
                "early",
                json!({"argocd.argoproj.io/sync-wave": "-1"}),
            ),
            obj(
                "Job",
                "cleanup",
                json!({"argocd.argoproj.io/hook": "SyncFail"}),
            ),
            obj(
                "ConfigMap",
                "skipped",
                json!({"argocd.argoproj.io/hook": "Skip"}),
            ),
        ];
        let p = plan(&PlanInput {
            desired: &desired,
            live: &[],
            out_of_sync: &BTreeSet::new(),
            app_options: &[],
            prune: false,
            namespace: None,
        })
        .expect("plan");
        assert_eq!(
            names(&p),
            vec![
                vec!["PreSync:Hook:migrate"],
                vec!["Sync:Apply:early"],
                vec!["Sync:Apply:config", "Sync:Apply:server"],
                vec!["Sync:Apply:svc"],
                vec!["PostSync:Hook:smoke"],
            ]
        );
        assert_eq!(p.on_fail.len(), 1);
    }

    #[test]
    fn prune_rules() {
        let desired = vec![obj("ConfigMap", "keep", json!({}))];
        let live = vec![
            obj("ConfigMap", "keep", json!({})),
            obj("ConfigMap", "old", json!({})),
            obj("Deployment", "old-server", json!({})),
            obj(
                "Secret",
                "precious",
                json!({"argocd.argoproj.io/sync-options": "Prune=false"}),
            ),
            obj(
                "Service",
                "late",
                json!({"argocd.argoproj.io/sync-options": "PruneLast=true"}),
            ),
            obj(
                "Job",
                "old-hook",
                json!({"argocd.argoproj.io/hook": "PostSync"}),
            ),
        ];
        let input = PlanInput {
            desired: &desired,
            live: &live,
            out_of_sync: &BTreeSet::new(),
            app_options: &[],
            prune: true,
            namespace: None,
        };
        let p = plan(&input).expect("plan");
        assert_eq!(
            names(&p),
            vec![
                vec!["Sync:Apply:keep", "Sync:Prune:old-server", "Sync:Prune:old"],
                vec!["Sync:Prune:late"],
            ]
        );
        assert_eq!(p.prune_skipped.len(), 1);
        assert_eq!(p.prune_skipped[0].key.name, "precious");

        let no_prune = plan(&PlanInput {
            prune: false,
            ..input
        })
        .expect("plan");
        assert_eq!(no_prune.task_count(), 1);
        assert_eq!(no_prune.prune_skipped.len(), 4);
    }

    #[test]
    fn options_create_namespace_and_out_of_sync_only() {
        let desired = vec![
            obj("ConfigMap", "a", json!({})),
            obj("ConfigMap", "b", json!({})),
        ];
        let oos: BTreeSet<ResourceKey> = [ResourceKey::new("", "ConfigMap", "ml", "b")].into();
        let opts = vec![
            "CreateNamespace=true".to_string(),
            "ApplyOutOfSyncOnly=true".to_string(),
        ];
        let p = plan(&PlanInput {
            desired: &desired,
            live: &[],
            out_of_sync: &oos,
            app_options: &opts,
            prune: false,
            namespace: Some("ml"),
        })
        .expect("plan");
        assert_eq!(
            names(&p),
            vec![vec!["PreSync:Apply:ml"], vec!["Sync:Apply:b"]]
        );
    }

    #[test]
    fn bad_input_is_refused() {
        let dup = vec![
            obj("ConfigMap", "a", json!({})),
            obj("ConfigMap", "a", json!({})),
        ];
        let input = |d: &[Value]| {
            plan(&PlanInput {
                desired: d,
                live: &[],
                out_of_sync: &BTreeSet::new(),
                app_options: &[],
                prune: false,
                namespace: None,
            })
        };
        assert!(matches!(input(&dup), Err(PlanError::Duplicate(_))));
        let bad_wave = vec![obj(
            "ConfigMap",
            "a",
            json!({"argocd.argoproj.io/sync-wave": "soon"}),
        )];
        assert!(matches!(
            input(&bad_wave),
            Err(PlanError::BadAnnotation { .. })
        ));
        assert!(matches!(
            input(&[json!({"kind": "X"})]),
            Err(PlanError::NoIdentity { index: 0 })
        ));
    }

    #[test]
    fn state_machine_resumes() {
        let desired = vec![
            obj("ConfigMap", "a", json!({})),
            obj(
                "Job",
                "cleanup",
                json!({"argocd.argoproj.io/hook": "SyncFail"}),
            ),
        ];
        let p = plan(&PlanInput {
            desired: &desired,
            live: &[],
            out_of_sync: &BTreeSet::new(),
            app_options: &[],
            prune: false,
            namespace: None,
        })
        .expect("plan");
        let mut s = SyncState::default();
        assert_eq!(next_action(&p, &s), NextAction::Submit(0));
        s.submitted = true;
        assert_eq!(next_action(&p, &s), NextAction::Wait(0));
        s.next_step = 1;
        s.submitted = false;
        assert_eq!(next_action(&p, &s), NextAction::Succeeded);
        let failed = SyncState {
            failed: true,
            message: "hook failed".into(),
            ..Default::default()
        };
        assert_eq!(next_action(&p, &failed), NextAction::RunFailHooks);
        let done = SyncState {
            fail_hooks_submitted: true,
            ..failed
        };
        assert_eq!(
            next_action(&p, &done),
            NextAction::Failed("hook failed".into())
        );
    }
}
