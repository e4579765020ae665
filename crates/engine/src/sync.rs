//! Sync planning: what to apply, prune and run as hooks, in which order — the manual.
//!
//! A sync turns the rendered manifests of an application into a sequence of **steps**.
//! Each step is one `(phase, wave)` pair; the controller executes the steps in order and
//! records progress in the Application's `status.operationState` after every step, so a
//! restarted controller resumes at the first unfinished step (see [`SyncState`]).
//!
//! Ordering and waiting follow Argo CD's gitops-engine (`pkg/sync/sync_context.go`,
//! `sync_tasks.go`) and Argo CD's documentation of sync waves, hooks and sync options, so
//! existing repositories behave the same:
//!
//! 1. **Phases**: `PreSync` hooks, then `Sync` (ordinary resources, `Sync` hooks and
//!    prunes), then `PostSync` hooks. If any step fails, the `SyncFail` hooks run and the
//!    operation fails. Hooks are resources annotated `argocd.argoproj.io/hook:
//!    PreSync|Sync|PostSync|SyncFail|Skip` (comma-separated; Helm's `helm.sh/hook`
//!    `pre-install`/`post-install`… map to PreSync/PostSync; a hook runs once in each phase
//!    it names, however many of its types map there). `Skip` resources are never
//!    applied. `PostDelete` hooks (Helm: `post-delete`) are not part of a sync: they run
//!    when the Application is deleted ([`is_post_delete_hook`]; the controller's deletion
//!    module is their manual).
//! 2. **Waves** inside a phase: `argocd.argoproj.io/sync-wave` (an integer, default 0),
//!    lowest first. **When health is awaited** ([`step_wait`]): after a step is applied,
//!    the next one starts only once the step's resources are Healthy (or have no health
//!    assessment), its prunes are gone and its hooks completed; a Degraded resource or
//!    hook fails the operation. So PostSync hooks run only once every resource is Healthy.
//!    The **last** step is not awaited: the operation succeeds as soon as it is applied
//!    (an Ingress that never gets an address leaves the app Progressing, with the sync
//!    Succeeded), unless it holds hooks, which are awaited (and, in a multi-step sync,
//!    its resources with them). Health is reported separately, by the comparison.
//! 3. **Kind order** inside a wave: namespaces and CRDs first, then the Kubernetes
//!    dependency order (ServiceAccounts, Secrets, ConfigMaps, storage, RBAC, Services,
//!    workloads, Ingresses), unknown kinds last; then by namespace and name.
//! 4. **Prune**: live resources of the app that are no longer in Git are deleted in the
//!    `Sync` phase, first in their step (in reverse kind order); their waves run in
//!    reverse (the lowest prune wave swaps with the highest, and so on, so what was
//!    created first goes last). With `PruneLast=true` (app or resource option) they go
//!    into an implicit wave after every other Sync-phase wave. `Prune=false` on a
//!    resource keeps it and reports it as requiring pruning; `Prune=confirm` holds the
//!    step that would prune it — nothing of that step is done — until the Application
//!    carries `argocd.argoproj.io/deletion-approved: <RFC 3339 time>` no older than the
//!    operation ([`prunes_to_confirm`], [`deletion_approved`]); the operation's message
//!    says `Waiting for pruning confirmation of v1/Namespace/x`. Pruning only happens
//!    when the sync asks for it (`--prune` or `automated.prune`).
//! 5. **Options**: `ApplyOutOfSyncOnly=true` skips resources already in sync;
//!    `CreateNamespace=true` adds the destination namespace as the first task, with
//!    `syncPolicy.managedNamespaceMetadata` labels and annotations (applied to an
//!    existing namespace too while that is set; without it an existing namespace is left
//!    alone); `Replace=true` makes a resource replace instead of apply; `Validate=false`
//!    is passed through; `RespectIgnoreDifferences=true` applies the live value of every
//!    field the app's `ignoreDifferences` names (the HPA-managed `spec.replicas`; see
//!    `diff::respect_ignored`); `FailOnSharedResource=true` fails the sync before anything
//!    is applied when a resource is tracked by another application (the
//!    `SharedResourceWarning` condition names it). Options come from the app's
//!    `syncPolicy.syncOptions` and each resource's `argocd.argoproj.io/sync-options`
//!    annotation (resource wins).
//! 6. **App deletion** (the resources finalizer): every live resource of the app is
//!    deleted except those [`kept_on_app_deletion`] names — `Delete=false`, Helm's
//!    `resource-policy: keep`, CRDs. `Delete=confirm` holds the whole deletion until the
//!    approval annotation is at or after the deletion time. `Delete=false` does not stop
//!    pruning (use `Prune=false` for that), as in Argo CD.
//!
//! Hook delete policies (`argocd.argoproj.io/hook-delete-policy`): `BeforeHookCreation`
//! (the default: an earlier run's hook object is deleted before the new one is created),
//! `HookSucceeded`, `HookFailed`. Hook objects with `generateName` get a name derived from
//! the operation, so re-running a step after a restart finds (rather than duplicates) the
//! hook it already created.

use mooring_core::app::{sync_option, ManagedNamespaceMetadata};
use mooring_core::ResourceKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;

#[cfg(test)]
mod proptests;

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
    /// The object was made by the plan, not rendered from Git (the namespace of
    /// `CreateNamespace=true`): it is stored with the plan, since no render has it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub generated: bool,
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

/// Argo CD's selective sync: only the tasks of the `selected` resources (group, kind, name,
/// and namespace when given) are kept, pruning included; hooks do not run in a partial
/// sync, as in Argo CD. The namespace the plan creates (`CreateNamespace=true`) stays.
pub fn select(mut plan: SyncPlan, selected: &[(String, String, String, String)]) -> SyncPlan {
    let chosen = |k: &ResourceKey| {
        selected.iter().any(|(group, kind, namespace, name)| {
            *group == k.group
                && *kind == k.kind
                && *name == k.name
                && (namespace.is_empty() || *namespace == k.namespace)
        })
    };
    for step in &mut plan.steps {
        step.tasks
            .retain(|t| t.generated || (t.kind != TaskKind::Hook && chosen(&t.key)));
    }
    plan.steps.retain(|s| !s.tasks.is_empty());
    plan.on_fail.clear();
    plan.prune_skipped.retain(|p| chosen(&p.key));
    plan
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
    /// `syncPolicy.managedNamespaceMetadata`: labels and annotations of that namespace.
    pub namespace_metadata: Option<&'a ManagedNamespaceMetadata>,
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
        let phases = h.split(',').filter_map(|p| match p.trim() {
            "PreSync" => Some(SyncPhase::PreSync),
            "Sync" => Some(SyncPhase::Sync),
            "PostSync" => Some(SyncPhase::PostSync),
            "SyncFail" => Some(SyncPhase::SyncFail),
            _ => None,
        });
        return Some(distinct(phases));
    }
    let helm = annotation(obj, ANNOTATION_HELM_HOOK)?;
    let phases = helm.split(',').filter_map(|p| match p.trim() {
        "pre-install" | "pre-upgrade" => Some(SyncPhase::PreSync),
        "post-install" | "post-upgrade" => Some(SyncPhase::PostSync),
        _ => None,
    });
    Some(distinct(phases))
}

/// Each phase once, in the order first named: a hook runs once per phase however often
/// its annotations name it (`pre-install,post-install,pre-upgrade,post-upgrade` is one
/// PreSync and one PostSync run), as gitops-engine collects hook phases into a set.
fn distinct(phases: impl Iterator<Item = SyncPhase>) -> Vec<SyncPhase> {
    let mut out = Vec::new();
    for p in phases {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// The `argocd.argoproj.io/hook` types Mooring acts on (`Skip` keeps an object out of the
/// sync on purpose; `PostDelete` runs when the app is deleted). Argo CD 3's `PreDelete` is
/// not run.
pub const HOOK_TYPES: &[&str] = &[
    "PreSync",
    "Sync",
    "PostSync",
    "SyncFail",
    "PostDelete",
    "Skip",
];

/// The `helm.sh/hook` types Mooring acts on (as Argo CD maps them). Helm's `pre-delete`,
/// rollback and test hooks are not run.
pub const HELM_HOOK_TYPES: &[&str] = &[
    "pre-install",
    "pre-upgrade",
    "post-install",
    "post-upgrade",
    "post-delete",
];

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

/// A hook's `hook-delete-policy` (default `BeforeHookCreation`).
pub fn delete_policies(obj: &Value) -> Vec<HookDeletePolicy> {
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
                        generated: false,
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
                    generated: false,
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
                    key: key.clone(),
                    kind: TaskKind::Apply,
                    phase: SyncPhase::PreSync,
                    wave: min_wave,
                    object: managed_namespace(ns, input.namespace_metadata),
                    options: vec![],
                    delete_policies: vec![],
                    generated: true,
                });
                // Never pruned, even when managedNamespaceMetadata gives it a tracking
                // annotation (Argo CD compares it with a generated namespace for that).
                desired_keys.insert(key);
            }
        }
    }

    // Prunes: live objects of the app that are not desired (hooks are never pruned).
    let mut prunes = Vec::new();
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
        prunes.push(SyncTask {
            key: key.clone(),
            kind: TaskKind::Prune,
            phase: SyncPhase::Sync,
            wave: wave(obj, &key).unwrap_or(0),
            object: obj.clone(),
            options,
            delete_policies: vec![],
            generated: false,
        });
    }
    // Prune waves run in reverse (gitops-engine swaps the lowest prune wave with the
    // highest, the second lowest with the second highest, ...): what was created first
    // is deleted last.
    let prune_waves: Vec<i64> = prunes
        .iter()
        .map(|t| t.wave)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    for t in &mut prunes {
        if let Ok(i) = prune_waves.binary_search(&t.wave) {
            t.wave = prune_waves[prune_waves.len() - 1 - i];
        }
    }
    tasks.extend(prunes);
    // `PruneLast=true` (app or resource): an implicit wave after every other Sync-phase
    // wave (at least wave 1), before PostSync.
    let last_sync_wave = tasks
        .iter()
        .filter(|t| t.phase == SyncPhase::Sync)
        .map(|t| t.wave)
        .max()
        .unwrap_or(0)
        .max(0);
    for t in &mut tasks {
        if t.kind == TaskKind::Prune && t.option("PruneLast") == Some("true") {
            t.wave = last_sync_wave.saturating_add(1);
        }
    }

    // Group into (phase, wave) steps. Inside a step prunes go first, as gitops-engine
    // runs them (dependents before what they depend on: reverse kind order), then the
    // applies and hooks in kind order.
    tasks.sort_by(|a, b| {
        (a.phase, a.wave, a.kind != TaskKind::Prune)
            .cmp(&(b.phase, b.wave, b.kind != TaskKind::Prune))
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
    on_fail.sort_by_key(|t| (t.wave, order_key(t)));
    Ok(SyncPlan {
        steps,
        on_fail,
        prune_skipped,
    })
}

/// Where a running operation stands; persisted in `status.operationState` (its `sync`
/// field, `mooring_core::app::OperationState::sync`) after every step so that a restarted
/// controller continues instead of starting over.
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

/// The namespace `CreateNamespace=true` creates, with `managedNamespaceMetadata`'s
/// labels and annotations when the app sets it.
fn managed_namespace(ns: &str, meta: Option<&ManagedNamespaceMetadata>) -> Value {
    let mut obj =
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    if let Some(m) = meta {
        if !m.labels.is_empty() {
            obj["metadata"]["labels"] = serde_json::json!(m.labels);
        }
        if !m.annotations.is_empty() {
            obj["metadata"]["annotations"] = serde_json::json!(m.annotations);
        }
    }
    obj
}

/// What the executor waits for once step `i` of `plan` was submitted, as gitops-engine
/// decides it (`syncContext.Sync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepWait {
    /// Wait until the step's applied resources are Healthy (or have no health) and its
    /// pruned resources are gone. A Degraded resource fails the operation.
    pub resources: bool,
    /// Wait until the step's hooks completed (a Degraded hook fails the operation).
    pub hooks: bool,
}

/// gitops-engine marks an applied resource "running" until it is Healthy and waits for
/// running tasks only when the sync is *multi-step* (more than one phase or wave, SyncFail
/// hooks included) — and for running hooks always. The last wave succeeds as soon as it
/// is applied ("successfully synced (all tasks run)"), even if its resources are not
/// Healthy yet, unless it has hooks: then the operation waits for them, and, in a
/// multi-step sync, for the step's resources as well. So health is awaited between waves
/// (and before PostSync hooks, which come in a later phase), never after the last one.
pub fn step_wait(plan: &SyncPlan, i: usize) -> StepWait {
    let Some(step) = plan.steps.get(i) else {
        return StepWait {
            resources: false,
            hooks: false,
        };
    };
    let hooks = step.tasks.iter().any(|t| t.kind == TaskKind::Hook);
    let last = i + 1 >= plan.steps.len();
    let multi_step = plan.steps.len() > 1 || !plan.on_fail.is_empty();
    StepWait {
        resources: !last || (hooks && multi_step),
        hooks,
    }
}

/// The prunes of `step` that wait for confirmation (`Prune=confirm`, on the resource or
/// the app), as `apiVersion/Kind/name`.
pub fn prunes_to_confirm(step: &SyncStep) -> Vec<String> {
    step.tasks
        .iter()
        .filter(|t| t.kind == TaskKind::Prune && t.option("Prune") == Some("confirm"))
        .map(|t| {
            format!(
                "{}/{}/{}",
                t.object
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
                t.key.kind,
                t.key.name
            )
        })
        .collect()
}

/// gitops-engine's message while prunes wait for confirmation.
pub fn prune_confirmation_message(resources: &[String]) -> String {
    let first = resources.first().map(String::as_str).unwrap_or_default();
    match resources.len() {
        0 | 1 => format!("Waiting for pruning confirmation of {first}"),
        n => format!(
            "Waiting for pruning confirmation of {first} and {} more resources",
            n - 1
        ),
    }
}

/// Argo CD's approval annotation on the Application: `Prune=confirm` prunes and
/// `Delete=confirm` deletions go ahead once it holds an RFC 3339 time at or after the
/// start of the operation (or of the deletion).
pub const ANNOTATION_DELETION_APPROVED: &str = "argocd.argoproj.io/deletion-approved";

/// Whether the approval annotation's value confirms what started at `since` (both RFC
/// 3339). An unparsable value approves nothing, as in Argo CD.
pub fn deletion_approved(approval: Option<&str>, since: &str) -> bool {
    let parse = |s: &str| mooring_core::time::parse(s.trim()).ok();
    match (approval.and_then(parse), parse(since)) {
        (Some(a), Some(s)) => a >= s,
        _ => false,
    }
}

/// Helm's `helm.sh/resource-policy: keep`, which Argo CD also honours on app deletion.
pub const ANNOTATION_HELM_RESOURCE_POLICY: &str = "helm.sh/resource-policy";

/// Why a live resource of an application stays when the application is deleted with its
/// resources (Argo CD's `shouldBeDeleted`), if it does: `Delete=false` (on the resource,
/// or on the app unless the resource overrides it), Helm's `resource-policy: keep`, and
/// CustomResourceDefinitions (deleting one deletes every object of its kind, in every
/// namespace). `Delete=false` only concerns app deletion: pruning honours `Prune=false`.
pub fn kept_on_app_deletion(live: &Value, app_options: &[String]) -> Option<&'static str> {
    if live.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition") {
        return Some("CustomResourceDefinitions are not deleted with an application");
    }
    if annotation(live, ANNOTATION_HELM_RESOURCE_POLICY) == Some("keep") {
        return Some("helm.sh/resource-policy: keep");
    }
    let options = effective_options(live, app_options);
    if sync_option(&options, "Delete") == Some("false") {
        return Some("Delete=false");
    }
    None
}

/// Whether deleting this live resource with its application waits for the approval
/// annotation (`Delete=confirm`).
pub fn deletion_needs_confirmation(live: &Value, app_options: &[String]) -> bool {
    sync_option(&effective_options(live, app_options), "Delete") == Some("confirm")
}

/// Whether a manifest is a `PostDelete` hook (`argocd.argoproj.io/hook: PostDelete`, or
/// Helm's `post-delete`): run after the application and its resources are deleted, never
/// during a sync (unless it also names a sync phase).
pub fn is_post_delete_hook(obj: &Value) -> bool {
    let has = |name: &str, value: &str| {
        annotation(obj, name).is_some_and(|h| h.split(',').any(|p| p.trim() == value))
    };
    has(ANNOTATION_HOOK, "PostDelete") || has(ANNOTATION_HELM_HOOK, "post-delete")
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
            namespace_metadata: None,
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
    fn a_selective_sync_keeps_only_the_named_resources_and_runs_no_hooks() {
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
                "cleanup",
                json!({"argocd.argoproj.io/hook": "SyncFail"}),
            ),
        ];
        let live = vec![
            obj("ConfigMap", "old", json!({})),
            obj("ConfigMap", "older", json!({})),
        ];
        let p = plan(&PlanInput {
            desired: &desired,
            live: &live,
            out_of_sync: &BTreeSet::new(),
            app_options: &["CreateNamespace=true".to_string()],
            prune: true,
            namespace: Some("ml"),
            namespace_metadata: None,
        })
        .expect("plan");
        let pick = |kind: &str, ns: &str, name: &str| {
            let group = if kind == "Deployment" { "apps" } else { "" };
            (
                group.to_string(),
                kind.to_string(),
                ns.to_string(),
                name.to_string(),
            )
        };
        // The namespace may be left out, as in Argo CD's `--resource GROUP:KIND:NAME`.
        let chosen = select(
            p.clone(),
            &[
                pick("Deployment", "", "server"),
                pick("ConfigMap", "ml", "old"),
            ],
        );
        assert_eq!(
            names(&chosen),
            vec![
                vec!["PreSync:Apply:ml"],
                vec!["Sync:Prune:old", "Sync:Apply:server"],
            ]
        );
        assert!(chosen.on_fail.is_empty());
        // Another namespace names nothing.
        let none = select(p, &[pick("Deployment", "other", "server")]);
        assert_eq!(names(&none), vec![vec!["PreSync:Apply:ml"]]);
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
            namespace_metadata: None,
        };
        let p = plan(&input).expect("plan");
        assert_eq!(
            names(&p),
            vec![
                vec!["Sync:Prune:old-server", "Sync:Prune:old", "Sync:Apply:keep"],
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
            namespace_metadata: None,
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
                namespace_metadata: None,
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
            namespace_metadata: None,
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

    fn plan_of(desired: &[Value], live: &[Value], app_options: &[String]) -> SyncPlan {
        plan(&PlanInput {
            desired,
            live,
            out_of_sync: &BTreeSet::new(),
            app_options,
            prune: true,
            namespace: Some("ml"),
            namespace_metadata: None,
        })
        .expect("plan")
    }

    #[test]
    fn prune_waves_run_in_reverse_and_prune_last_comes_after_every_wave() {
        let wave = |w: i64| json!({"argocd.argoproj.io/sync-wave": w.to_string()});
        let desired = vec![obj("ConfigMap", "kept", wave(3))];
        let live = vec![
            obj("ConfigMap", "kept", wave(3)),
            obj("ConfigMap", "db", wave(-1)),
            obj("ConfigMap", "api", wave(1)),
            obj("ConfigMap", "web", wave(5)),
            obj(
                "ConfigMap",
                "last",
                json!({"argocd.argoproj.io/sync-options": "PruneLast=true"}),
            ),
        ];
        let p = plan_of(&desired, &live, &[]);
        let waves: Vec<(i64, Vec<String>)> = p
            .steps
            .iter()
            .map(|s| (s.wave, s.tasks.iter().map(|t| t.key.name.clone()).collect()))
            .collect();
        // Prune waves -1, 0 (the PruneLast one), 1, 5 become 5, 1, 0, -1: created first,
        // deleted last; PruneLast then moves its prune after every wave.
        assert_eq!(
            waves,
            vec![
                (-1, vec!["web".to_string()]),
                (0, vec!["api".to_string()]),
                (3, vec!["kept".to_string()]),
                (5, vec!["db".to_string()]),
                (6, vec!["last".to_string()]),
            ]
        );
    }

    #[test]
    fn health_is_awaited_between_steps_never_after_the_last() {
        let w1 = json!({"argocd.argoproj.io/sync-wave": "1"});
        // One wave, no hooks: applied = succeeded (the Ingress case).
        let single = plan_of(
            &[
                obj("Deployment", "d", json!({})),
                obj("Ingress", "i", json!({})),
            ],
            &[],
            &[],
        );
        assert_eq!(single.steps.len(), 1);
        assert_eq!(
            step_wait(&single, 0),
            StepWait {
                resources: false,
                hooks: false
            }
        );
        // Two waves: the first is awaited, the last is not.
        let two = plan_of(
            &[
                obj("Deployment", "d", json!({})),
                obj("Ingress", "i", w1.clone()),
            ],
            &[],
            &[],
        );
        assert!(step_wait(&two, 0).resources);
        assert!(!step_wait(&two, 1).resources);
        // A PostSync hook: the Sync step is awaited (healthy before PostSync), the hook
        // too; with it in the last step of a multi-step sync, that step's resources too.
        let post = plan_of(
            &[
                obj("Deployment", "d", json!({})),
                obj(
                    "Job",
                    "smoke",
                    json!({"argocd.argoproj.io/hook": "PostSync"}),
                ),
            ],
            &[],
            &[],
        );
        assert!(step_wait(&post, 0).resources);
        assert_eq!(
            step_wait(&post, 1),
            StepWait {
                resources: true,
                hooks: true
            }
        );
        // A Sync hook in the only step: the hook is awaited, the resources are not.
        let hook_only = plan_of(
            &[
                obj("Deployment", "d", json!({})),
                obj("Job", "seed", json!({"argocd.argoproj.io/hook": "Sync"})),
            ],
            &[],
            &[],
        );
        assert_eq!(hook_only.steps.len(), 1);
        assert_eq!(
            step_wait(&hook_only, 0),
            StepWait {
                resources: false,
                hooks: true
            }
        );
        // SyncFail hooks make a sync multi-step (as gitops-engine counts tasks).
        let with_fail = plan_of(
            &[
                obj("Deployment", "d", json!({})),
                obj("Job", "seed", json!({"argocd.argoproj.io/hook": "Sync"})),
                obj(
                    "Job",
                    "cleanup",
                    json!({"argocd.argoproj.io/hook": "SyncFail"}),
                ),
            ],
            &[],
            &[],
        );
        assert!(step_wait(&with_fail, 0).resources);
        assert!(!step_wait(&with_fail, 7).hooks, "past the end: nothing");
    }

    #[test]
    fn prune_confirmation_and_approval() {
        let live = vec![
            obj(
                "ConfigMap",
                "precious",
                json!({"argocd.argoproj.io/sync-options": "Prune=confirm"}),
            ),
            obj("ConfigMap", "plain", json!({})),
        ];
        let p = plan_of(&[], &live, &[]);
        assert_eq!(
            prunes_to_confirm(&p.steps[0]),
            vec!["v1/ConfigMap/precious"]
        );
        assert_eq!(
            prune_confirmation_message(&prunes_to_confirm(&p.steps[0])),
            "Waiting for pruning confirmation of v1/ConfigMap/precious"
        );
        // App-level Prune=confirm covers every prune; a resource's Prune=true overrides.
        let all = plan_of(&[], &live, &["Prune=confirm".to_string()]);
        let names = prunes_to_confirm(&all.steps[0]);
        assert_eq!(names.len(), 2);
        assert_eq!(
            prune_confirmation_message(&names),
            format!(
                "Waiting for pruning confirmation of {} and 1 more resources",
                names[0]
            )
        );
        let since = "2025-01-01T10:00:00Z";
        assert!(deletion_approved(Some("2025-01-01T10:00:00Z"), since));
        assert!(deletion_approved(Some("2025-01-01T11:00:00+01:00"), since));
        assert!(!deletion_approved(Some("2025-01-01T09:59:59Z"), since));
        assert!(!deletion_approved(Some("yes"), since));
        assert!(!deletion_approved(None, since));
    }

    #[test]
    fn what_app_deletion_keeps() {
        let opts = |o: &str| vec![o.to_string()];
        let plain = obj("ConfigMap", "a", json!({}));
        let keep = obj(
            "PersistentVolumeClaim",
            "data",
            json!({"argocd.argoproj.io/sync-options": "Delete=false"}),
        );
        let helm_keep = obj("Secret", "s", json!({"helm.sh/resource-policy": "keep"}));
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "models.ml.example"}});
        assert_eq!(kept_on_app_deletion(&plain, &[]), None);
        assert_eq!(kept_on_app_deletion(&keep, &[]), Some("Delete=false"));
        assert!(kept_on_app_deletion(&helm_keep, &[]).is_some());
        assert!(kept_on_app_deletion(&crd, &[]).is_some());
        assert_eq!(
            kept_on_app_deletion(&plain, &opts("Delete=false")),
            Some("Delete=false")
        );
        let overrides = obj(
            "ConfigMap",
            "b",
            json!({"argocd.argoproj.io/sync-options": "Delete=true"}),
        );
        assert_eq!(
            kept_on_app_deletion(&overrides, &opts("Delete=false")),
            None
        );
        let confirm = obj(
            "Namespace",
            "team",
            json!({"argocd.argoproj.io/sync-options": "Prune=false,Delete=confirm"}),
        );
        assert!(deletion_needs_confirmation(&confirm, &[]));
        assert!(!deletion_needs_confirmation(&plain, &[]));
        // Delete=false does not stop pruning (Prune=false does).
        let p = plan_of(&[], std::slice::from_ref(&keep), &[]);
        assert_eq!(p.task_count(), 1);
    }

    #[test]
    fn post_delete_hooks_are_not_part_of_a_sync() {
        let hook = obj(
            "Job",
            "cleanup",
            json!({"argocd.argoproj.io/hook": "PostDelete"}),
        );
        let helm = obj(
            "Job",
            "helm-cleanup",
            json!({"helm.sh/hook": "post-delete"}),
        );
        let both = obj(
            "Job",
            "both",
            json!({"argocd.argoproj.io/hook": "PostSync,PostDelete"}),
        );
        assert!(is_post_delete_hook(&hook) && is_post_delete_hook(&helm));
        assert!(is_post_delete_hook(&both));
        assert!(!is_post_delete_hook(&obj(
            "Job",
            "x",
            json!({"argocd.argoproj.io/hook": "PostSync"})
        )));
        let p = plan_of(
            &[hook.clone(), helm, both],
            std::slice::from_ref(&hook),
            &[],
        );
        assert_eq!(names(&p), vec![vec!["PostSync:Hook:both"]]);
    }

    #[test]
    fn created_namespace_carries_managed_metadata_and_is_never_pruned() {
        let meta = ManagedNamespaceMetadata {
            labels: [("team".to_string(), "ml".to_string())].into(),
            annotations: [("owner".to_string(), "platform".to_string())].into(),
        };
        // A tracking annotation set through managedNamespaceMetadata makes the namespace
        // part of the live state; it must not be pruned.
        let live_ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"}});
        let p = plan(&PlanInput {
            desired: &[obj("ConfigMap", "a", json!({}))],
            live: &[live_ns],
            out_of_sync: &BTreeSet::new(),
            app_options: &["CreateNamespace=true".to_string()],
            prune: true,
            namespace: Some("ml"),
            namespace_metadata: Some(&meta),
        })
        .expect("plan");
        assert_eq!(
            names(&p),
            vec![vec!["PreSync:Apply:ml"], vec!["Sync:Apply:a"]]
        );
        let ns = &p.steps[0].tasks[0];
        assert!(ns.generated);
        assert_eq!(ns.object["metadata"]["labels"]["team"], "ml");
        assert_eq!(ns.object["metadata"]["annotations"]["owner"], "platform");
    }
}
