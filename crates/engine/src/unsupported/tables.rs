//! The tables: for each format Mooring reads, every field it acts on, every field of the
//! upstream format it does not (with why), and the sync options and values it acts on.
//!
//! This is the one place to change when Mooring learns a field: move it from `No`/`Never`
//! to `Yes` (or a nested table) here, and the controllers and `mooring check` stop
//! reporting it. Field names follow the upstream JSON exactly (Argo CD's
//! `pkg/apis/application/v1alpha1`, Argo Rollouts' `pkg/apis/rollouts/v1alpha1`).

/// One field of an object and what Mooring does with it.
#[derive(Debug)]
pub struct Field {
    pub name: &'static str,
    pub kind: Kind,
}

/// What Mooring does with a field (see the module docs of [`super`]).
#[derive(Debug)]
pub enum Kind {
    /// Acted on as a whole (a scalar, a list of scalars, or an object passed on as it is:
    /// a pod template, Helm values, a label selector).
    Yes,
    /// An object whose fields are listed; others are not fields of the type.
    Object(&'static [Field]),
    /// An object keyed by names (plugins): listed names are known, others get the note.
    Named(&'static [Field], &'static str),
    /// A list of objects whose fields are listed.
    List(&'static [Field]),
    /// A list of one-key objects (canary steps): listed keys are known, others get the note.
    NamedList(&'static [Field], &'static str),
    /// An upstream field Mooring does not act on, reported unless zero (`false`, `""`,
    /// `0`, `[]`, `{}`).
    No(&'static str),
    /// An upstream field Mooring does not act on, reported whenever present: its
    /// presence alone changes the meaning (a step kind, a traffic router, a plugin).
    Never(&'static str),
    /// Acted on for these values only (as text); others are reported with the note.
    Only(&'static [&'static str], &'static str),
    /// A list of `Key=Value` sync options, checked against [`SYNC_OPTIONS`].
    SyncOptions,
    /// ApplicationSet generators (matrix and merge nest them), checked against [`GENERATOR`].
    Generators,
}

use Kind::*;

const fn f(name: &'static str, kind: Kind) -> Field {
    Field { name, kind }
}

// ---------------------------------------------------------------------------------------
// Argo CD Application
// ---------------------------------------------------------------------------------------

/// A whole `Application` object.
pub const APPLICATION: &[Field] = &[
    f("apiVersion", Yes),
    f("kind", Yes),
    f("metadata", Yes),
    f("spec", Object(APP_SPEC)),
    f("status", Yes),
    f("operation", Yes),
];

/// `Application.spec` (also `ApplicationSet.spec.template.spec`).
pub const APP_SPEC: &[Field] = &[
    f("source", Object(SOURCE)),
    f("sources", List(SOURCE)),
    f("destination", Object(DESTINATION)),
    f("project", Yes),
    f("syncPolicy", Object(SYNC_POLICY)),
    f("ignoreDifferences", List(IGNORE_DIFFERENCES)),
    f("info", Yes),
    f("revisionHistoryLimit", Yes),
    f(
        "sourceHydrator",
        No("source hydration (rendering a dry source and pushing it back to Git) is not implemented; Mooring deploys spec.source or spec.sources"),
    ),
];

const SOURCE: &[Field] = &[
    f("repoURL", Yes),
    f("path", Yes),
    f("targetRevision", Yes),
    f("ref", Yes),
    // A label for the source in UIs and CLIs; nothing to act on.
    f("name", Yes),
    f(
        "chart",
        No("charts from Helm repositories are not fetched; vendor the chart into the Git repository and set path"),
    ),
    f("helm", Object(HELM)),
    f("kustomize", Object(KUSTOMIZE)),
    f("directory", Object(DIRECTORY)),
    f(
        "plugin",
        Never("config management plugins are not run (the source renders as a plain directory, kustomization or chart)"),
    ),
];

const HELM: &[Field] = &[
    f("valueFiles", Yes),
    f("parameters", List(HELM_PARAMETER)),
    f("fileParameters", List(HELM_FILE_PARAMETER)),
    f("releaseName", Yes),
    f("values", Yes),
    f("valuesObject", Yes),
    f("namespace", Yes),
    f("kubeVersion", Yes),
    f("apiVersions", Yes),
    f("ignoreMissingValueFiles", Yes),
    f("skipCrds", Yes),
    f("version", Only(&["3", "v3"], "Mooring renders charts with Helm 3")),
    f(
        "passCredentials",
        No("credentials are only passed to Helm repositories, which Mooring does not fetch from"),
    ),
    f(
        "skipTests",
        No("helm template runs without --skip-tests, so the chart's test hooks are rendered"),
    ),
    f(
        "skipSchemaValidation",
        No("helm template runs without --skip-schema-validation, so the chart's values schema is enforced"),
    ),
];

const HELM_PARAMETER: &[Field] = &[f("name", Yes), f("value", Yes), f("forceString", Yes)];

const HELM_FILE_PARAMETER: &[Field] = &[f("name", Yes), f("path", Yes)];

const KUSTOMIZE_NOTE: &str = "this Argo CD kustomize option is not applied by Mooring's renderer";

const KUSTOMIZE: &[Field] = &[
    f("namePrefix", Yes),
    f("nameSuffix", Yes),
    f("images", Yes),
    f("commonLabels", Yes),
    f("commonAnnotations", Yes),
    f("namespace", Yes),
    f("replicas", List(KUSTOMIZE_REPLICA)),
    f(
        "version",
        No("Mooring runs the kustomize binary on PATH (or kubectl kustomize), not a named version"),
    ),
    f("forceCommonLabels", No(KUSTOMIZE_NOTE)),
    f("forceCommonAnnotations", No(KUSTOMIZE_NOTE)),
    f("commonAnnotationsEnvsubst", No(KUSTOMIZE_NOTE)),
    f("patches", No(KUSTOMIZE_NOTE)),
    f("components", No(KUSTOMIZE_NOTE)),
    f("ignoreMissingComponents", No(KUSTOMIZE_NOTE)),
    f("labelWithoutSelector", No(KUSTOMIZE_NOTE)),
    f("labelIncludeTemplates", No(KUSTOMIZE_NOTE)),
    f("kubeVersion", No(KUSTOMIZE_NOTE)),
    f("apiVersions", No(KUSTOMIZE_NOTE)),
];

const KUSTOMIZE_REPLICA: &[Field] = &[f("name", Yes), f("count", Yes)];

const DIRECTORY: &[Field] = &[
    f("recurse", Yes),
    f("include", Yes),
    f("exclude", Yes),
    f(
        "jsonnet",
        No("jsonnet is not rendered (Mooring refuses .jsonnet files; exclude them)"),
    ),
];

const DESTINATION: &[Field] = &[f("server", Yes), f("name", Yes), f("namespace", Yes)];

const SYNC_POLICY: &[Field] = &[
    f("automated", Object(AUTOMATED)),
    f("syncOptions", SyncOptions),
    f("retry", Object(RETRY)),
    f(
        "managedNamespaceMetadata",
        Object(MANAGED_NAMESPACE_METADATA),
    ),
];

const AUTOMATED: &[Field] = &[
    f("prune", Yes),
    f("selfHeal", Yes),
    f("allowEmpty", Yes),
    f(
        "enabled",
        Only(
            &["true"],
            "Mooring syncs automatically whenever syncPolicy.automated is set; remove it to turn automated sync off",
        ),
    ),
];

const RETRY: &[Field] = &[
    f("limit", Yes),
    f("backoff", Object(BACKOFF)),
    f(
        "refresh",
        No("a retried sync always uses the revision of the sync that failed"),
    ),
];

const BACKOFF: &[Field] = &[f("duration", Yes), f("factor", Yes), f("maxDuration", Yes)];

const MANAGED_NAMESPACE_METADATA: &[Field] = &[f("labels", Yes), f("annotations", Yes)];

const IGNORE_DIFFERENCES: &[Field] = &[
    f("group", Yes),
    f("kind", Yes),
    f("name", Yes),
    f("namespace", Yes),
    f("jsonPointers", Yes),
    f("jqPathExpressions", Yes),
    f("managedFieldsManagers", Yes),
];

/// Sync options Mooring acts on, each with the values it acts on (Argo CD's default
/// value among them, so writing the default is never reported).
pub const SYNC_OPTIONS: &[(&str, &[&str])] = &[
    ("Validate", &["true", "false"]),
    ("CreateNamespace", &["true", "false"]),
    ("PruneLast", &["true", "false"]),
    ("ApplyOutOfSyncOnly", &["true", "false"]),
    (
        "PrunePropagationPolicy",
        &["foreground", "background", "orphan"],
    ),
    ("Replace", &["true", "false"]),
    // Mooring always applies server-side; `false` (client-side apply) is not available.
    ("ServerSideApply", &["true"]),
    ("SkipDryRunOnMissingResource", &["true", "false"]),
    ("Prune", &["true", "false", "confirm"]),
    ("Delete", &["true", "false", "confirm"]),
    ("RespectIgnoreDifferences", &["true", "false"]),
    ("FailOnSharedResource", &["true", "false"]),
];

/// Hook annotations and the hook types Mooring runs (the lists are the sync planner's).
pub const HOOK_TYPES: &[(&str, &[&str])] = &[
    (crate::sync::ANNOTATION_HOOK, crate::sync::HOOK_TYPES),
    (
        crate::sync::ANNOTATION_HELM_HOOK,
        crate::sync::HELM_HOOK_TYPES,
    ),
];

/// Argo CD sync options Mooring does not act on at all, and why.
pub const SYNC_OPTIONS_NOT_ACTED: &[(&str, &str)] = &[
    (
        "Force",
        "resources are never force-deleted and recreated (Replace=true replaces them in place)",
    ),
    (
        "ClientSideApplyMigration",
        "Mooring always applies server-side and has no client-side managed fields to migrate",
    ),
];

// ---------------------------------------------------------------------------------------
// Argo CD ApplicationSet
// ---------------------------------------------------------------------------------------

/// A whole `ApplicationSet` object.
pub const APPLICATION_SET: &[Field] = &[
    f("apiVersion", Yes),
    f("kind", Yes),
    f("metadata", Yes),
    f("spec", Object(APPSET_SPEC)),
    f("status", Yes),
];

const APPSET_SPEC: &[Field] = &[
    f("generators", Generators),
    f("template", Object(APPSET_TEMPLATE)),
    // Checked by generation itself (an unknown option is a generation error).
    f("goTemplate", Yes),
    f("goTemplateOptions", Yes),
    f("templatePatch", Yes),
    f("syncPolicy", Object(APPSET_SYNC_POLICY)),
    f("strategy", Object(APPSET_STRATEGY)),
    f("preservedFields", Object(PRESERVED_FIELDS)),
    f(
        "ignoreApplicationDifferences",
        No("generated Applications are updated as a whole; no difference is ignored"),
    ),
    // Mooring always applies the selectors of nested generators (Argo CD 3 does too).
    f("applyNestedSelectors", Yes),
];

const APPSET_TEMPLATE: &[Field] = &[
    f("metadata", Object(APPSET_TEMPLATE_META)),
    f("spec", Object(APP_SPEC)),
];

const APPSET_TEMPLATE_META: &[Field] = &[
    f("name", Yes),
    f("namespace", Yes),
    f("labels", Yes),
    f("annotations", Yes),
    f("finalizers", Yes),
];

const APPSET_SYNC_POLICY: &[Field] = &[
    f("preserveResourcesOnDeletion", Yes),
    // An unknown value fails to parse: reported by the controller as an error.
    f("applicationsSync", Yes),
];

const PROGRESSIVE_SYNC: &str =
    "progressive syncs are not implemented: every generated Application is created, updated and deleted at once";

const APPSET_STRATEGY: &[Field] = &[
    f("type", Only(&["AllAtOnce"], PROGRESSIVE_SYNC)),
    f("rollingSync", No(PROGRESSIVE_SYNC)),
    f("deletionOrder", No(PROGRESSIVE_SYNC)),
];

const PRESERVED_FIELDS: &[Field] = &[
    // Mooring keeps every annotation of a generated Application that the template does
    // not set, which covers any list of annotations to preserve.
    f("annotations", Yes),
    f(
        "labels",
        No("the labels of generated Applications are replaced by the template's; none is preserved"),
    ),
];

/// What an unknown key of a generator entry is.
pub const UNKNOWN_GENERATOR: &str =
    "not a generator Mooring implements (list, clusters, git, matrix, merge)";

const NOT_A_GENERATOR: &str =
    "this generator is not implemented by Mooring (list, clusters, git, matrix, merge are); the ApplicationSet fails to generate";

/// One entry of `spec.generators` (or of a matrix/merge `generators`).
pub const GENERATOR: &[Field] = &[
    f("list", Object(LIST_GENERATOR)),
    f("clusters", Object(CLUSTERS_GENERATOR)),
    f("git", Object(GIT_GENERATOR)),
    f("matrix", Object(MATRIX_GENERATOR)),
    f("merge", Object(MERGE_GENERATOR)),
    f("selector", Yes),
    f("template", Object(APPSET_TEMPLATE)),
    f("scmProvider", Never(NOT_A_GENERATOR)),
    f("pullRequest", Never(NOT_A_GENERATOR)),
    f("clusterDecisionResource", Never(NOT_A_GENERATOR)),
    f("plugin", Never(NOT_A_GENERATOR)),
];

const LIST_GENERATOR: &[Field] = &[
    f("elements", Yes),
    f("elementsYaml", Yes),
    f("template", Object(APPSET_TEMPLATE)),
];

const CLUSTERS_GENERATOR: &[Field] = &[
    f("selector", Yes),
    f("values", Yes),
    f("template", Object(APPSET_TEMPLATE)),
    f(
        "flatList",
        No("the clusters generator gives one parameter set per cluster, never one flat list"),
    ),
];

const GIT_GENERATOR: &[Field] = &[
    f("repoURL", Yes),
    f("revision", Yes),
    f("directories", List(GIT_PATH)),
    f("files", List(GIT_PATH)),
    f("values", Yes),
    f("pathParamPrefix", Yes),
    f("requeueAfterSeconds", Yes),
    f("template", Object(APPSET_TEMPLATE)),
];

const GIT_PATH: &[Field] = &[f("path", Yes), f("exclude", Yes)];

const MATRIX_GENERATOR: &[Field] = &[
    f("generators", Generators),
    f("template", Object(APPSET_TEMPLATE)),
];

const MERGE_GENERATOR: &[Field] = &[
    f("generators", Generators),
    f("mergeKeys", Yes),
    f("template", Object(APPSET_TEMPLATE)),
];

// ---------------------------------------------------------------------------------------
// Argo Rollouts Rollout
// ---------------------------------------------------------------------------------------

/// A whole `Rollout` object.
pub const ROLLOUT: &[Field] = &[
    f("apiVersion", Yes),
    f("kind", Yes),
    f("metadata", Yes),
    f("spec", Object(ROLLOUT_SPEC)),
    f("status", Yes),
];

const ROLLOUT_SPEC: &[Field] = &[
    f("replicas", Yes),
    f("selector", Yes),
    f("template", Yes),
    f("minReadySeconds", Yes),
    f("revisionHistoryLimit", Yes),
    f("paused", Yes),
    f("progressDeadlineSeconds", Yes),
    f("progressDeadlineAbort", Yes),
    f("strategy", Object(STRATEGY)),
    f(
        "workloadRef",
        Never("the pod template of a referenced Deployment is not used; inline the pod template in spec.template"),
    ),
    f("restartAt", No("pods are not restarted at a given time")),
    f(
        "rollbackWindow",
        No("rollbacks within a window are not fast-tracked; they run the steps like any update"),
    ),
    f("analysis", Object(RUN_HISTORY)),
];

const RUN_HISTORY: &[Field] = &[
    f(
        "successfulRunHistoryLimit",
        No("old AnalysisRuns are not garbage-collected by count"),
    ),
    f(
        "unsuccessfulRunHistoryLimit",
        No("old AnalysisRuns are not garbage-collected by count"),
    ),
];

const STRATEGY: &[Field] = &[
    f("canary", Object(CANARY)),
    f("blueGreen", Object(BLUE_GREEN)),
];

const POD_METADATA: &str = "extra labels and annotations are not put on the pods of one version";

const CANARY: &[Field] = &[
    f("canaryService", Yes),
    f("stableService", Yes),
    f("steps", NamedList(STEP, STEP_NOT_KNOWN)),
    f("trafficRouting", Object(TRAFFIC_ROUTING)),
    f("maxSurge", Yes),
    f("maxUnavailable", Yes),
    f("analysis", Object(BACKGROUND_ANALYSIS)),
    f("dynamicStableScale", Yes),
    f("scaleDownDelaySeconds", Yes),
    f("abortScaleDownDelaySeconds", Yes),
    f(
        "antiAffinity",
        Never("anti-affinity between the stable and canary pods is not injected"),
    ),
    f("canaryMetadata", No(POD_METADATA)),
    f("stableMetadata", No(POD_METADATA)),
    f(
        "scaleDownDelayRevisionLimit",
        No("old ReplicaSets waiting for their scale-down delay are not limited in number"),
    ),
    f("pingPong", Never("ping-pong Services are not supported")),
    f(
        "minPodsPerReplicaSet",
        No("the canary and stable ReplicaSets get no minimum pod count"),
    ),
];

/// Note for a canary step kind Mooring does not implement.
pub const STEP_NOT_SUPPORTED: &str = "this canary step is not implemented";
/// Note for a canary step key that is no step kind at all.
pub const STEP_NOT_KNOWN: &str = "not a canary step Argo Rollouts or Mooring knows";

const STEP: &[Field] = &[
    f("setWeight", Yes),
    f("pause", Object(PAUSE)),
    f("analysis", Object(ANALYSIS)),
    f("setCanaryScale", Object(SET_CANARY_SCALE)),
    f("experiment", Never(STEP_NOT_SUPPORTED)),
    f("setHeaderRoute", Never(STEP_NOT_SUPPORTED)),
    f("setMirrorRoute", Never(STEP_NOT_SUPPORTED)),
    f("plugin", Never(STEP_NOT_SUPPORTED)),
];

const PAUSE: &[Field] = &[f("duration", Yes)];

const SET_CANARY_SCALE: &[Field] = &[
    f("weight", Yes),
    f("replicas", Yes),
    f("matchTrafficWeight", Yes),
];

const RUN_METADATA: &str = "AnalysisRuns get no extra labels or annotations";

const ANALYSIS: &[Field] = &[
    f("templates", List(TEMPLATE_REF)),
    f("args", List(ANALYSIS_ARG)),
    f("dryRun", Yes),
    f("measurementRetention", Yes),
    f("analysisRunMetadata", No(RUN_METADATA)),
];

const BACKGROUND_ANALYSIS: &[Field] = &[
    f("templates", List(TEMPLATE_REF)),
    f("args", List(ANALYSIS_ARG)),
    f("dryRun", Yes),
    f("measurementRetention", Yes),
    f("analysisRunMetadata", No(RUN_METADATA)),
    f("startingStep", Yes),
];

const TEMPLATE_REF: &[Field] = &[f("templateName", Yes), f("clusterScope", Yes)];

const ANALYSIS_ARG: &[Field] = &[
    f("name", Yes),
    f("value", Yes),
    f("valueFrom", Object(ARG_VALUE_FROM)),
];

const ARG_VALUE_FROM: &[Field] = &[
    f("podTemplateHashValue", Yes),
    f("fieldRef", Object(FIELD_REF)),
    // Resolved by the analysis controller when the run starts.
    f("secretKeyRef", Yes),
];

const FIELD_REF: &[Field] = &[f("fieldPath", Yes)];

const ROUTER: &str =
    "this traffic router is not supported; Mooring drives Istio and the argoproj-labs/gatewayAPI plugin";

const TRAFFIC_ROUTING: &[Field] = &[
    f("istio", Object(ISTIO)),
    f(
        "plugins",
        Named(
            TRAFFIC_PLUGINS,
            "not a traffic-router plugin Mooring drives (it drives argoproj-labs/gatewayAPI)",
        ),
    ),
    f("nginx", Never(ROUTER)),
    f("alb", Never(ROUTER)),
    f("smi", Never(ROUTER)),
    f("ambassador", Never(ROUTER)),
    f("appMesh", Never(ROUTER)),
    f("traefik", Never(ROUTER)),
    f("apisix", Never(ROUTER)),
    f(
        "managedRoutes",
        No("managed routes serve header and mirror routes, which are not supported"),
    ),
    f(
        "maxTrafficWeight",
        Only(&["100"], "weights are percentages of 100"),
    ),
];

const ISTIO: &[Field] = &[
    f("virtualService", Object(VIRTUAL_SERVICE)),
    f("virtualServices", List(VIRTUAL_SERVICE)),
    f("destinationRule", Object(DESTINATION_RULE)),
];

const VIRTUAL_SERVICE: &[Field] = &[
    f("name", Yes),
    f("routes", Yes),
    f("tlsRoutes", List(TLS_ROUTE)),
    f("tcpRoutes", List(TCP_ROUTE)),
];

const TLS_ROUTE: &[Field] = &[f("port", Yes), f("sniHosts", Yes)];

const TCP_ROUTE: &[Field] = &[f("port", Yes)];

const DESTINATION_RULE: &[Field] = &[
    f("name", Yes),
    f("canarySubsetName", Yes),
    f("stableSubsetName", Yes),
];

const TRAFFIC_PLUGINS: &[Field] = &[f("argoproj-labs/gatewayAPI", Object(GATEWAY_API))];

const GATEWAY_API: &[Field] = &[
    f("httpRoute", Yes),
    f("httpRoutes", List(GATEWAY_API_ROUTE)),
    f("namespace", Yes),
];

const GATEWAY_API_ROUTE: &[Field] = &[
    f("name", Yes),
    f("useHeaderRoutes", No("header routes are not supported")),
];

const BLUE_GREEN: &[Field] = &[
    f("activeService", Yes),
    f("previewService", Yes),
    f("previewReplicaCount", Yes),
    f("autoPromotionEnabled", Yes),
    f("autoPromotionSeconds", Yes),
    f("scaleDownDelaySeconds", Yes),
    f("abortScaleDownDelaySeconds", Yes),
    f("prePromotionAnalysis", Object(ANALYSIS)),
    f("postPromotionAnalysis", Object(ANALYSIS)),
    f(
        "maxUnavailable",
        No("it bounds pod restarts (restartAt), which Mooring does not do"),
    ),
    f(
        "scaleDownDelayRevisionLimit",
        No("old ReplicaSets waiting for their scale-down delay are not limited in number"),
    ),
    f(
        "antiAffinity",
        Never("anti-affinity between the active and preview pods is not injected"),
    ),
    f("previewMetadata", No(POD_METADATA)),
    f("activeMetadata", No(POD_METADATA)),
];
