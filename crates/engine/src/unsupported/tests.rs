//! The tables against manifests written as Argo CD and Argo Rollouts users write them.

use super::*;

fn yaml(s: &str) -> Value {
    mooring_core::yaml::parse_one(s).expect("test YAML parses")
}

/// The paths reported, sorted (the walk follows the objects' key order).
fn paths(entries: &[Unsupported]) -> Vec<&str> {
    let mut p: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    p.sort_unstable();
    p
}

#[test]
fn a_plain_argo_cd_application_has_nothing_unsupported() {
    let app = yaml(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: model-serving
  namespace: argocd
  finalizers: [resources-finalizer.argocd.argoproj.io]
  annotations: {argocd.argoproj.io/refresh: hard}
spec:
  project: ml-platform
  source:
    repoURL: https://git.example.com/ml/platform.git
    targetRevision: main
    path: applications/model-serving/overlays/production
    kustomize:
      namePrefix: prod-
      images: ["model=registry/model:2.1"]
      commonLabels: {team: ml}
      replicas: [{name: inference, count: 3}]
  destination: {server: https://kubernetes.default.svc, namespace: ml-serving}
  syncPolicy:
    automated: {prune: true, selfHeal: true, allowEmpty: false}
    syncOptions: [CreateNamespace=true, PruneLast=true, ServerSideApply=true, PrunePropagationPolicy=foreground]
    retry: {limit: 5, backoff: {duration: 5s, factor: 2, maxDuration: 3m}}
  ignoreDifferences:
  - group: apps
    kind: Deployment
    jsonPointers: [/spec/replicas]
    jqPathExpressions: ['.spec.template.spec.containers[].image']
  info: [{name: owner, value: ml-platform-team}]
  revisionHistoryLimit: 10
status:
  sync: {status: Synced}
operation:
  sync: {revision: abc}
"#,
    );
    assert_eq!(application(&app), vec![]);
}

#[test]
fn zero_values_of_unsupported_fields_are_not_reported() {
    // What `argocd app create` / the UI writes back: empty jsonnet, false flags.
    let app = yaml(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: guestbook, namespace: argocd}
spec:
  project: default
  source:
    repoURL: https://github.com/argoproj/argocd-example-apps.git
    path: guestbook
    targetRevision: HEAD
    directory:
      recurse: true
      jsonnet: {tlas: [], extVars: [], libs: []}
    helm: {skipTests: false, passCredentials: false, version: v3}
  destination: {name: in-cluster, namespace: guestbook}
  syncPolicy: {automated: {enabled: true}, retry: {refresh: false}}
"#,
    );
    assert_eq!(application(&app), vec![]);
}

#[test]
fn multi_source_applications_with_refs_are_supported() {
    let app = yaml(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: prometheus, namespace: argocd}
spec:
  project: default
  destination: {server: https://kubernetes.default.svc, namespace: monitoring}
  sources:
  - repoURL: https://git.example.com/charts.git
    path: charts/prometheus
    targetRevision: 15.7.1
    helm:
      releaseName: prometheus
      valueFiles: [$values/charts/prometheus/values.yaml]
      valuesObject: {server: {replicaCount: 2}}
      parameters: [{name: server.image.tag, value: v2.50.0, forceString: true}]
  - repoURL: https://git.example.com/values.git
    targetRevision: main
    ref: values
    name: values
  syncPolicy:
    syncOptions: [RespectIgnoreDifferences=true, FailOnSharedResource=true, Prune=confirm, Delete=false]
    managedNamespaceMetadata: {labels: {team: obs}, annotations: {a: b}}
"#,
    );
    assert_eq!(application(&app), vec![]);
}

#[test]
fn unsupported_application_fields_are_named_by_path() {
    let app = yaml(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: legacy, namespace: argocd}
spec:
  project: default
  source:
    repoURL: https://git.example.com/legacy.git
    path: jsonnet
    targetRevision: HEAD
    directory:
      recursive: true
      jsonnet:
        tlas: [{name: env, value: prod}]
    helm: {skipTests: true, version: "2"}
    kustomize: {components: [../components/tls]}
    plugin: {name: argocd-vault-plugin}
  sourceHydrator:
    drySource: {repoURL: https://git.example.com/legacy.git, targetRevision: HEAD, path: dry}
    syncSource: {targetBranch: env/prod, path: prod}
  destination: {server: https://kubernetes.default.svc, namespace: legacy}
  syncPolicy:
    automated: {enabled: false}
    syncOptions: [CreateNamespace=true, Force=true, ServerSideApply=false, Delete=maybe, Frobnicate=yes, nonsense]
"#,
    );
    let found = application(&app);
    assert_eq!(
        paths(&found),
        vec![
            "spec.source.directory.jsonnet",
            "spec.source.directory.recursive",
            "spec.source.helm.skipTests",
            "spec.source.helm.version",
            "spec.source.kustomize.components",
            "spec.source.plugin",
            "spec.sourceHydrator",
            "spec.syncPolicy.automated.enabled",
            "spec.syncPolicy.syncOptions[1]",
            "spec.syncPolicy.syncOptions[2]",
            "spec.syncPolicy.syncOptions[3]",
            "spec.syncPolicy.syncOptions[4]",
            "spec.syncPolicy.syncOptions[5]",
        ],
        "{found:#?}"
    );
    let text = summary(&found);
    assert!(
        text.contains("spec.source.directory.recursive is not a field of an Argo CD Application"),
        "{text}"
    );
    assert!(
        text.contains(
            "spec.source.directory.jsonnet is not supported by Mooring: jsonnet is not rendered"
        ),
        "{text}"
    );
    assert!(
        text.contains("spec.syncPolicy.syncOptions[1] \"Force=true\" is not supported by Mooring"),
        "{text}"
    );
    assert!(
        text.contains("\"ServerSideApply=false\" is not supported by Mooring: Mooring acts on ServerSideApply=true"),
        "{text}"
    );
    assert!(
        text.contains("\"Delete=maybe\" is not supported by Mooring: Mooring acts on Delete=true or Delete=false or Delete=confirm"),
        "{text}"
    );
    assert!(
        text.contains("Frobnicate is not an Argo CD sync option"),
        "{text}"
    );
    assert!(text.contains("written Key=Value"), "{text}");
    assert!(
        text.contains("spec.syncPolicy.automated.enabled \"false\" is not supported"),
        "{text}"
    );
}

#[test]
fn sync_options_of_a_resource_annotation() {
    let found = sync_options(
        &["Prune=false", "Force=true,Replace=true"],
        "metadata.annotations[\"argocd.argoproj.io/sync-options\"]",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        found[0].path,
        "metadata.annotations[\"argocd.argoproj.io/sync-options\"][1]"
    );
}

const SEED_SET: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata:
  name: ml-inference-services
  namespace: argocd
spec:
  goTemplate: true
  goTemplateOptions: ["missingkey=error"]
  generators:
  - merge:
      mergeKeys: [name]
      generators:
      - clusters:
          selector:
            matchLabels: {environment: production, workload-type: inference}
          values: {replicas: "2"}
      - list:
          elements:
          - name: prod-us-east
            values: {replicas: "6"}
  syncPolicy:
    applicationsSync: sync
    preserveResourcesOnDeletion: false
  strategy: {type: AllAtOnce}
  preservedFields: {annotations: [notified.notifications.argoproj.io]}
  template:
    metadata:
      name: 'inference-{{.name}}'
      labels: {environment: production}
    spec:
      project: ml-platform
      source:
        repoURL: https://git.example.com/ml-platform/platform.git
        targetRevision: main
        path: applications/inference-service/overlays/production
        kustomize:
          replicas:
          - name: inference-gateway
            count: '{{.values.replicas}}'
      destination:
        server: '{{.server}}'
        namespace: ml-inference-production
      syncPolicy:
        automated: {prune: true, selfHeal: true}
        syncOptions: ['CreateNamespace={{.createNamespace}}']
"#;

#[test]
fn the_seed_applicationset_has_nothing_unsupported() {
    assert_eq!(applicationset(&yaml(SEED_SET)), vec![]);
}

#[test]
fn unsupported_applicationset_fields_and_generators_are_named_by_path() {
    let set = yaml(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: previews, namespace: argocd}
spec:
  goTemplate: true
  generators:
  - matrix:
      generators:
      - scmProvider:
          github: {organization: example}
      - list:
          elements: [{env: dev}]
          elementsYml: oops
  - clusters: {flatList: true}
  - pullRequest: {github: {owner: example, repo: app}}
  - git:
      repoURL: https://git.example.com/apps.git
      revision: HEAD
      files: [{path: 'apps/*/config.json', exclude: false}]
      requeueAfterSeconds: 60
  strategy:
    type: RollingSync
    rollingSync:
      steps:
      - matchExpressions: [{key: env, operator: In, values: [dev]}]
  ignoreApplicationDifferences:
  - jsonPointers: [/spec/source/targetRevision]
  preservedFields: {labels: [team]}
  template:
    metadata: {name: '{{.env}}'}
    spec:
      project: default
      source: {repoURL: https://git.example.com/apps.git, path: '{{.path.path}}', plugin: {}}
      destination: {name: in-cluster, namespace: '{{.env}}'}
"#,
    );
    let found = applicationset(&set);
    assert_eq!(
        paths(&found),
        vec![
            "spec.generators[0].matrix.generators[0].scmProvider",
            "spec.generators[0].matrix.generators[1].list.elementsYml",
            "spec.generators[1].clusters.flatList",
            "spec.generators[2].pullRequest",
            "spec.ignoreApplicationDifferences",
            "spec.preservedFields.labels",
            "spec.strategy.rollingSync",
            "spec.strategy.type",
            "spec.template.spec.source.plugin",
        ],
        "{found:#?}"
    );
    let text = summary(&found);
    assert!(
        text.contains("spec.strategy.type \"RollingSync\" is not supported by Mooring: progressive syncs are not implemented"),
        "{text}"
    );
    assert!(
        text.contains("spec.generators[2].pullRequest is not supported by Mooring: this generator is not implemented"),
        "{text}"
    );
    assert!(
        text.contains("elementsYml is not a field of an Argo CD ApplicationSet"),
        "{text}"
    );
}

#[test]
fn an_unknown_generator_is_named() {
    let set = yaml(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: s, namespace: argocd}
spec:
  generators: [{listt: {elements: []}}]
  template: {metadata: {name: x}, spec: {project: default}}
"#,
    );
    let found = applicationset(&set);
    assert_eq!(paths(&found), vec!["spec.generators[0].listt"]);
    assert!(found[0]
        .to_string()
        .contains("not a generator Mooring implements"));
}

const SEED_ROLLOUT: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: ml-model-serving, namespace: ml-serving}
spec:
  replicas: 3
  revisionHistoryLimit: 5
  selector: {matchLabels: {app: ml-model-serving}}
  template:
    metadata: {labels: {app: ml-model-serving}}
    spec: {containers: [{name: server, image: "registry/fraud-detector:1.4.2", futureField: x}]}
  strategy:
    canary:
      stableService: ml-model-serving
      canaryService: ml-model-serving-canary
      maxSurge: "25%"
      maxUnavailable: 0
      dynamicStableScale: false
      trafficRouting:
        istio:
          virtualService: {name: ml-model-serving, routes: [primary]}
          destinationRule: {name: ml-model-serving, canarySubsetName: canary, stableSubsetName: stable}
        plugins:
          argoproj-labs/gatewayAPI: {httpRoute: ml-model-serving, namespace: ml-serving}
      analysis:
        templates: [{templateName: error-rate}]
        startingStep: 2
        args: [{name: service, value: ml-model-serving}]
      steps:
      - setWeight: 10
      - pause: {duration: 2m}
      - setCanaryScale: {replicas: 1}
      - analysis:
          templates: [{templateName: model-performance-analysis, clusterScope: false}]
          args:
          - name: canary-hash
            valueFrom: {podTemplateHashValue: Latest}
          - name: namespace
            valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
          dryRun: [{metricName: accuracy}]
      - pause: {}
"#;

#[test]
fn the_seed_rollout_has_nothing_unsupported() {
    assert_eq!(rollout(&yaml(SEED_ROLLOUT)), vec![]);
}

#[test]
fn rollout_steps_routers_and_fields_mooring_does_not_implement() {
    let mut r = yaml(SEED_ROLLOUT);
    r["spec"]["strategy"]["canary"]["steps"] = yaml(
        r#"
- setWeight: 20
- experiment:
    duration: 1h
    templates: [{name: baseline, specRef: stable}]
- setHeaderRoute: {name: canary-header, match: [{headerName: X-Canary, headerValue: {exact: "yes"}}]}
- setMirrorRoute: {name: mirror, percentage: 10}
- setWieght: 50
- pause: {duration: 1m, untilApproved: true}
"#,
    );
    r["spec"]["strategy"]["canary"]["trafficRouting"]["nginx"] = yaml("{stableIngress: web}");
    r["spec"]["strategy"]["canary"]["trafficRouting"]["plugins"]["acme/mesh"] = yaml("{}");
    r["spec"]["strategy"]["canary"]["canaryMetadata"] = yaml("{labels: {role: canary}}");
    r["spec"]["strategy"]["canary"]["pingPong"] = yaml("{pingService: a, pongService: b}");
    r["spec"]["restartAt"] = yaml("'2026-01-01T00:00:00Z'");
    let found = rollout(&r);
    assert_eq!(
        paths(&found),
        vec![
            "spec.restartAt",
            "spec.strategy.canary.canaryMetadata",
            "spec.strategy.canary.pingPong",
            "spec.strategy.canary.steps[1].experiment",
            "spec.strategy.canary.steps[2].setHeaderRoute",
            "spec.strategy.canary.steps[3].setMirrorRoute",
            "spec.strategy.canary.steps[4].setWieght",
            "spec.strategy.canary.steps[5].pause.untilApproved",
            "spec.strategy.canary.trafficRouting.nginx",
            "spec.strategy.canary.trafficRouting.plugins[\"acme/mesh\"]",
        ],
        "{found:#?}"
    );
    let steps: Vec<(usize, &str)> = found
        .iter()
        .filter_map(|e| e.list_item("spec.strategy.canary.steps"))
        .collect();
    assert_eq!(
        steps,
        vec![
            (1, "experiment"),
            (2, "setHeaderRoute"),
            (3, "setMirrorRoute"),
            (4, "setWieght")
        ]
    );
    let text = summary(&found);
    assert!(
        text.contains("trafficRouting.nginx is not supported by Mooring: this traffic router is not supported; Mooring drives Istio"),
        "{text}"
    );
    assert!(
        text.contains("steps[4].setWieght is not supported by Mooring: not a canary step"),
        "{text}"
    );
    assert!(
        text.contains("steps[5].pause.untilApproved is not a field of an Argo Rollouts Rollout"),
        "{text}"
    );
}

#[test]
fn blue_green_fields_mooring_does_not_implement() {
    let r = yaml(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: bg, namespace: ml}
spec:
  selector: {matchLabels: {app: bg}}
  template: {metadata: {labels: {app: bg}}, spec: {containers: [{name: c, image: i}]}}
  workloadRef: {apiVersion: apps/v1, kind: Deployment, name: bg}
  analysis: {successfulRunHistoryLimit: 3}
  strategy:
    blueGreen:
      activeService: bg-active
      previewService: bg-preview
      autoPromotionEnabled: false
      prePromotionAnalysis: {templates: [{templateName: smoke}], analysisRunMetadata: {labels: {a: b}}}
      antiAffinity: {preferredDuringSchedulingIgnoredDuringExecution: {weight: 1}}
      previewMetadata: {labels: {role: preview}}
"#,
    );
    let found = rollout(&r);
    assert_eq!(
        paths(&found),
        vec![
            "spec.analysis.successfulRunHistoryLimit",
            "spec.strategy.blueGreen.antiAffinity",
            "spec.strategy.blueGreen.prePromotionAnalysis.analysisRunMetadata",
            "spec.strategy.blueGreen.previewMetadata",
            "spec.workloadRef",
        ],
        "{found:#?}"
    );
}

#[test]
fn list_item_parses_step_paths_only() {
    let e = |p: &str| Unsupported {
        path: p.into(),
        reason: Reason::NotImplemented("x"),
    };
    let steps = "spec.strategy.canary.steps";
    assert_eq!(
        e("spec.strategy.canary.steps[12].plugin").list_item(steps),
        Some((12, "plugin"))
    );
    assert_eq!(
        e("spec.strategy.canary.steps[1].pause.untilApproved").list_item(steps),
        None
    );
    assert_eq!(e("spec.strategy.canary.pingPong").list_item(steps), None);
}

#[test]
fn hostile_shapes_are_not_judged_here() {
    // Wrong types are the typed parser's to report; nothing here panics on them.
    for v in [
        yaml("spec: 3"),
        yaml("[1, 2, 3]"),
        yaml("'a string'"),
        Value::Null,
    ] {
        assert_eq!(application(&v), vec![], "{v}");
        assert_eq!(applicationset(&v), vec![], "{v}");
        assert_eq!(rollout(&v), vec![], "{v}");
    }
    let app = yaml(
        "spec: {source: [1, 2], sources: {a: 1}, syncPolicy: {syncOptions: [1, {a: b}, null]}}",
    );
    assert_eq!(application(&app), vec![]);
    let set = yaml("spec: {generators: {a: 1}, template: [1], strategy: {type: [AllAtOnce]}}");
    assert_eq!(applicationset(&set), vec![]);
    let set = yaml("spec: {generators: [1, [], {matrix: {generators: 'x'}}]}");
    assert_eq!(applicationset(&set), vec![]);
    let ro = yaml("spec: {strategy: {canary: {steps: [1, x, null, []], trafficRouting: [nginx]}}}");
    assert_eq!(rollout(&ro), vec![]);
    // A field set to null is the same as absent.
    assert_eq!(
        application(&yaml(
            "spec: {source: {plugin: null}, sourceHydrator: null}"
        )),
        vec![]
    );
    // Nesting is bounded by the tables (and generators, which nest, by a depth limit), not
    // by the input.
    let mut deep = yaml("{list: {elementz: []}}");
    for _ in 0..100 {
        deep = serde_json::json!({"matrix": {"generators": [deep]}});
    }
    let set = serde_json::json!({"spec": {"generators": [deep]}});
    assert_eq!(applicationset(&set), vec![]);
}

/// Every Application, ApplicationSet and Rollout of the example platform is fully
/// supported: the seed must deploy without a warning.
#[test]
fn the_example_platform_is_fully_supported() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ml-platform");
    let mut seen = 0;
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("example directory") {
            let p = entry.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&p).expect("read");
            let Ok(docs) = mooring_core::yaml::parse_all(&text) else {
                continue;
            };
            for d in docs {
                let found = match d["kind"].as_str() {
                    Some("Application") => application(&d),
                    Some("ApplicationSet") => applicationset(&d),
                    Some("Rollout") => rollout(&d),
                    _ => continue,
                };
                seen += 1;
                assert_eq!(found, vec![], "{}", p.display());
            }
        }
    }
    assert!(seen > 5, "found only {seen} objects");
}

#[test]
fn manifest_annotations_mooring_does_not_act_on() {
    use serde_json::json;
    let obj = |ann: Value| {
        json!({"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": "db-migrate", "namespace": "ml", "annotations": ann}})
    };
    // Hooks Mooring runs, Skip, and options it acts on: nothing to say.
    for ann in [
        json!({"argocd.argoproj.io/hook": "PreSync,PostSync", "argocd.argoproj.io/hook-delete-policy": "HookSucceeded"}),
        json!({"argocd.argoproj.io/hook": "Skip"}),
        json!({"argocd.argoproj.io/hook": "PostDelete"}),
        json!({"helm.sh/hook": "pre-install,pre-upgrade"}),
        json!({"argocd.argoproj.io/sync-options": "Prune=false,Delete=confirm"}),
    ] {
        assert_eq!(manifest(&obj(ann.clone())), vec![], "{ann}");
    }
    let found = manifest(&obj(json!({
        "argocd.argoproj.io/hook": "PreDelete",
        "helm.sh/hook": "test,pre-rollback",
        "argocd.argoproj.io/sync-options": "Force=true",
    })));
    let text: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(found.len(), 4, "{text:?}");
    assert!(text.iter().any(|t| t.starts_with(
        "Job.batch/ml/db-migrate: metadata.annotations[\"argocd.argoproj.io/hook\"] \"PreDelete\" is not supported"
    )), "{text:?}");
    assert!(text.iter().any(|t| t.contains("\"test\"")), "{text:?}");
    assert!(
        text.iter().any(|t| t.contains("\"pre-rollback\"")),
        "{text:?}"
    );
    assert!(
        text.iter().any(|t| t.contains("\"Force=true\"")),
        "{text:?}"
    );
    // Hostile: no metadata at all is nothing to report, not a panic.
    assert_eq!(manifest(&json!({"kind": "Job"})), vec![]);
}
