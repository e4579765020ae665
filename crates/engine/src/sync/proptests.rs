//! Property tests of sync planning (issue 20): the rules of the module docs checked on
//! generated applications (random waves, hook annotations of Argo CD and Helm, sync
//! options, live objects to prune) rather than on the hand-picked cases of `tests`.
//!
//! For every plan:
//!
//! * each desired resource is applied exactly once (none with `ApplyOutOfSyncOnly=true`
//!   when in sync), each hook runs exactly once in each phase it names, and each live
//!   resource no longer in Git is pruned exactly once or reported as skipped;
//! * steps come in phase order (PreSync, Sync, PostSync) and, within a phase, in
//!   increasing waves; SyncFail hooks are only in `on_fail`;
//! * inside a step prunes come first; prune waves are the reverse of creation waves, and
//!   `PruneLast` prunes come after every other Sync-phase wave;
//! * nothing is both applied and pruned; the namespace `CreateNamespace=true` makes is the
//!   first task and is never pruned.

use super::{plan, PlanInput, SyncPhase, SyncPlan, TaskKind};
use mooring_core::app::sync_option;
use mooring_core::ResourceKey;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

const KINDS: &[(&str, &str)] = &[
    ("v1", "ConfigMap"),
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
    ("batch/v1", "Job"),
    ("v1", "Secret"),
    ("v1", "Namespace"),
    ("example.com/v1", "Widget"),
];

/// `argocd.argoproj.io/hook` values, with lists, repeats, spaces and unknown names.
const HOOKS: &[&str] = &[
    "PreSync",
    "Sync",
    "PostSync",
    "SyncFail",
    "Skip",
    "PostDelete",
    "PreSync,PostSync",
    "PostSync, PreSync",
    "PreSync,PreSync",
    "Sync,SyncFail",
    "Bogus",
];

/// `helm.sh/hook` values.
const HELM_HOOKS: &[&str] = &[
    "pre-install",
    "post-install",
    "pre-install,pre-upgrade",
    "pre-install,post-install,pre-upgrade,post-upgrade",
    "post-delete",
    "test",
];

const OPTIONS: &[&str] = &[
    "PruneLast=true",
    "Prune=false",
    "Prune=confirm",
    "ApplyOutOfSyncOnly=true",
    "Replace=true",
];

const APP_OPTIONS: &[&str] = &[
    "CreateNamespace=true",
    "PruneLast=true",
    "ApplyOutOfSyncOnly=true",
    "Prune=confirm",
];

/// One generated resource.
fn resource() -> impl Strategy<Value = Value> {
    (
        select(KINDS),
        0..6u8,
        prop::option::of(-3i64..4),
        prop::option::weighted(0.3, select(HOOKS)),
        prop::option::weighted(0.2, select(HELM_HOOKS)),
        subsequence(OPTIONS, 0..3),
    )
        .prop_map(|((api, kind), name, wave, hook, helm, options)| {
            let mut ann = Map::new();
            if let Some(w) = wave {
                ann.insert(super::ANNOTATION_SYNC_WAVE.into(), json!(w.to_string()));
            }
            if let Some(h) = hook {
                ann.insert(super::ANNOTATION_HOOK.into(), json!(h));
            }
            if let Some(h) = helm {
                ann.insert(super::ANNOTATION_HELM_HOOK.into(), json!(h));
            }
            if !options.is_empty() {
                ann.insert(
                    super::ANNOTATION_SYNC_OPTIONS.into(),
                    json!(options.join(",")),
                );
            }
            let mut meta = Map::new();
            meta.insert("name".into(), json!(format!("r{name}")));
            if kind != "Namespace" {
                meta.insert("namespace".into(), json!("ml"));
            }
            meta.insert("annotations".into(), Value::Object(ann));
            json!({"apiVersion": api, "kind": kind, "metadata": meta})
        })
}

/// Resources with distinct keys.
fn resources(max: usize) -> impl Strategy<Value = Vec<Value>> {
    prop::collection::vec(resource(), 0..max).prop_map(|rs| {
        let mut seen = BTreeSet::new();
        rs.into_iter()
            .filter(|r| seen.insert(ResourceKey::of(r).expect("generated with a name")))
            .collect()
    })
}

#[derive(Debug)]
struct App {
    desired: Vec<Value>,
    live: Vec<Value>,
    out_of_sync: BTreeSet<ResourceKey>,
    app_options: Vec<String>,
    prune: bool,
}

fn app() -> impl Strategy<Value = App> {
    (
        resources(10),
        resources(8),
        prop::collection::vec(any::<bool>(), 10),
        subsequence(APP_OPTIONS, 0..3),
        any::<bool>(),
    )
        .prop_map(|(desired, extra, flags, app_options, prune)| {
            let desired_keys: BTreeSet<ResourceKey> =
                desired.iter().filter_map(ResourceKey::of).collect();
            // Live: some of the desired resources, and others that Git no longer has.
            let mut live: Vec<Value> = desired
                .iter()
                .zip(flags.iter().cycle())
                .filter(|(_, f)| **f)
                .map(|(r, _)| r.clone())
                .collect();
            live.extend(
                extra
                    .into_iter()
                    .filter(|r| ResourceKey::of(r).is_some_and(|k| !desired_keys.contains(&k))),
            );
            let out_of_sync = desired
                .iter()
                .zip(flags.iter().rev().cycle())
                .filter(|(_, f)| **f)
                .filter_map(|(r, _)| ResourceKey::of(r))
                .collect();
            App {
                desired,
                live,
                out_of_sync,
                app_options: app_options.into_iter().map(str::to_string).collect(),
                prune,
            }
        })
}

fn annotation<'a>(obj: &'a Value, name: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations")?.get(name)?.as_str()
}

/// The phases a hook runs in, as the module docs define them (a set: a phase named twice
/// runs once); `None` when the resource is not a hook.
fn model_phases(obj: &Value) -> Option<BTreeSet<SyncPhase>> {
    if let Some(h) = annotation(obj, super::ANNOTATION_HOOK) {
        return Some(
            h.split(',')
                .filter_map(|p| match p.trim() {
                    "PreSync" => Some(SyncPhase::PreSync),
                    "Sync" => Some(SyncPhase::Sync),
                    "PostSync" => Some(SyncPhase::PostSync),
                    "SyncFail" => Some(SyncPhase::SyncFail),
                    _ => None,
                })
                .collect(),
        );
    }
    let helm = annotation(obj, super::ANNOTATION_HELM_HOOK)?;
    Some(
        helm.split(',')
            .filter_map(|p| match p.trim() {
                "pre-install" | "pre-upgrade" => Some(SyncPhase::PreSync),
                "post-install" | "post-upgrade" => Some(SyncPhase::PostSync),
                _ => None,
            })
            .collect(),
    )
}

fn options(obj: &Value, app: &[String]) -> Vec<String> {
    let mut out = app.to_vec();
    if let Some(a) = annotation(obj, super::ANNOTATION_SYNC_OPTIONS) {
        out.extend(a.split(',').map(|s| s.trim().to_string()));
    }
    out
}

fn wave_of(obj: &Value) -> i64 {
    annotation(obj, super::ANNOTATION_SYNC_WAVE)
        .and_then(|w| w.trim().parse().ok())
        .unwrap_or(0)
}

fn plan_app(app: &App) -> SyncPlan {
    plan(&PlanInput {
        desired: &app.desired,
        live: &app.live,
        out_of_sync: &app.out_of_sync,
        app_options: &app.app_options,
        prune: app.prune,
        namespace: Some("ml"),
        namespace_metadata: None,
    })
    .expect("generated applications are valid")
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn prop_every_resource_is_applied_hooked_or_pruned_exactly_once(app in app()) {
        let p = plan_app(&app);
        let mut applies: BTreeMap<ResourceKey, usize> = BTreeMap::new();
        let mut hooks: BTreeMap<(ResourceKey, SyncPhase), usize> = BTreeMap::new();
        let mut prunes: BTreeMap<ResourceKey, usize> = BTreeMap::new();
        let mut generated = 0;
        for t in p.steps.iter().flat_map(|s| &s.tasks).chain(&p.on_fail) {
            match t.kind {
                TaskKind::Apply if t.generated => generated += 1,
                TaskKind::Apply => *applies.entry(t.key.clone()).or_default() += 1,
                TaskKind::Hook => *hooks.entry((t.key.clone(), t.phase)).or_default() += 1,
                TaskKind::Prune => *prunes.entry(t.key.clone()).or_default() += 1,
            }
        }

        // The model of the module docs.
        let mut want_applies = BTreeMap::new();
        let mut want_hooks = BTreeMap::new();
        let mut desired_keys = BTreeSet::new();
        for r in &app.desired {
            let key = ResourceKey::of(r).expect("named");
            match model_phases(r) {
                Some(phases) => {
                    for phase in phases {
                        want_hooks.insert((key.clone(), phase), 1);
                    }
                }
                None => {
                    desired_keys.insert(key.clone());
                    let only_oos = sync_option(&options(r, &app.app_options), "ApplyOutOfSyncOnly")
                        == Some("true");
                    if !only_oos || app.out_of_sync.contains(&key) {
                        want_applies.insert(key, 1);
                    }
                }
            }
        }
        let ns = ResourceKey::new("", "Namespace", "", "ml");
        let creates_ns = app.app_options.iter().any(|o| o == "CreateNamespace=true")
            && !desired_keys.contains(&ns);
        prop_assert_eq!(generated, usize::from(creates_ns));
        if creates_ns {
            desired_keys.insert(ns);
        }
        let mut want_prunes = BTreeMap::new();
        let mut want_skipped = BTreeSet::new();
        for r in &app.live {
            let key = ResourceKey::of(r).expect("named");
            if desired_keys.contains(&key) || model_phases(r).is_some() {
                continue;
            }
            if app.prune && sync_option(&options(r, &app.app_options), "Prune") != Some("false") {
                want_prunes.insert(key, 1);
            } else {
                want_skipped.insert(key);
            }
        }
        prop_assert_eq!(&applies, &want_applies);
        prop_assert_eq!(&hooks, &want_hooks);
        prop_assert_eq!(&prunes, &want_prunes);
        let skipped: BTreeSet<ResourceKey> = p.prune_skipped.iter().map(|s| s.key.clone()).collect();
        prop_assert_eq!(skipped.len(), p.prune_skipped.len(), "skipped twice");
        prop_assert_eq!(skipped, want_skipped);
        for key in prunes.keys() {
            prop_assert!(!applies.contains_key(key), "{} applied and pruned", key);
        }
    }

    #[test]
    fn prop_steps_follow_phases_and_waves(app in app()) {
        let p = plan_app(&app);
        for pair in p.steps.windows(2) {
            prop_assert!(
                (pair[0].phase, pair[0].wave) < (pair[1].phase, pair[1].wave),
                "steps out of order: {:?}/{} then {:?}/{}",
                pair[0].phase, pair[0].wave, pair[1].phase, pair[1].wave
            );
        }
        for step in &p.steps {
            prop_assert!(step.phase != SyncPhase::SyncFail);
            prop_assert!(!step.tasks.is_empty());
            let mut seen_other = false;
            for t in &step.tasks {
                prop_assert_eq!((t.phase, t.wave), (step.phase, step.wave));
                if t.kind == TaskKind::Prune {
                    prop_assert!(!seen_other, "a prune after an apply in its step");
                    prop_assert_eq!(t.phase, SyncPhase::Sync);
                } else {
                    seen_other = true;
                }
                if t.kind == TaskKind::Apply && !t.generated {
                    prop_assert_eq!(t.phase, SyncPhase::Sync);
                    prop_assert_eq!(t.wave, wave_of(&t.object));
                }
                if t.kind == TaskKind::Hook {
                    prop_assert_eq!(t.wave, wave_of(&t.object));
                }
            }
        }
        for t in &p.on_fail {
            prop_assert_eq!((t.kind, t.phase), (TaskKind::Hook, SyncPhase::SyncFail));
        }
        prop_assert!(p.on_fail.windows(2).all(|w| w[0].wave <= w[1].wave));
        // The namespace comes first.
        if let Some(pos) = p.steps.iter().flat_map(|s| &s.tasks).position(|t| t.generated) {
            prop_assert_eq!(pos, 0);
        }
    }

    #[test]
    fn prop_prunes_run_in_reverse_waves_and_prune_last_after_every_wave(app in app()) {
        let p = plan_app(&app);
        let tasks: Vec<_> = p.steps.iter().flat_map(|s| &s.tasks).collect();
        let prunes: Vec<_> = tasks.iter().filter(|t| t.kind == TaskKind::Prune).collect();
        let last = |t: &super::SyncTask| t.option("PruneLast") == Some("true");
        // Creation waves of all prunes, lowest first; a prune's wave mirrors its own.
        let waves: Vec<i64> = prunes
            .iter()
            .map(|t| wave_of(&t.object))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let others_max = tasks
            .iter()
            .filter(|t| t.phase == SyncPhase::Sync && !(t.kind == TaskKind::Prune && last(t)))
            .map(|t| t.wave)
            .max()
            .unwrap_or(0);
        for t in &prunes {
            if last(t) {
                prop_assert!(t.wave > others_max && t.wave >= 1, "PruneLast at {} <= {}", t.wave, others_max);
            } else {
                let i = waves.binary_search(&wave_of(&t.object)).expect("listed");
                prop_assert_eq!(t.wave, waves[waves.len() - 1 - i]);
            }
        }
    }
}

/// Regression (minimised by the property above): Helm's usual
/// `pre-install,post-install,pre-upgrade,post-upgrade` ran the hook twice in PreSync and
/// twice in PostSync (only adjacent repeats were dropped); Argo CD's `PreSync,PreSync`
/// likewise ran it twice.
#[test]
fn regression_a_hook_runs_once_per_phase() {
    for (annotation, value) in [
        (
            super::ANNOTATION_HELM_HOOK,
            "pre-install,post-install,pre-upgrade,post-upgrade",
        ),
        (super::ANNOTATION_HOOK, "PreSync,PostSync,PreSync"),
    ] {
        let hook = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "r0", "namespace": "ml", "annotations": {annotation: value}}});
        let app = App {
            desired: vec![hook],
            live: vec![],
            out_of_sync: BTreeSet::new(),
            app_options: vec![],
            prune: false,
        };
        let p = plan_app(&app);
        let phases: Vec<SyncPhase> = p
            .steps
            .iter()
            .flat_map(|s| &s.tasks)
            .map(|t| t.phase)
            .collect();
        assert_eq!(
            phases,
            vec![SyncPhase::PreSync, SyncPhase::PostSync],
            "{value}"
        );
    }
}
