//! The Argo CD `ApplicationSet` (`argoproj.io/v1alpha1`) as Rust types.
//!
//! Users bring their Argo CD ApplicationSets unchanged, so field names follow Argo CD's
//! JSON. Two parts stay untyped on purpose:
//!
//! - `spec.generators` is a list of JSON values in the CRD schema and is parsed into
//!   [`Generator`] by the controller. Generators nest (matrix and merge hold generators),
//!   which a structural CRD schema cannot express, and Argo CD too reports an unknown or
//!   malformed generator as an `ErrorOccurred` condition rather than an admission error.
//! - `spec.template.spec` is a JSON value: before parameter substitution it is not an
//!   `ApplicationSpec` yet (`count: '{{.replicas}}'` is a string where an integer goes).

use crate::selector::SelectorError;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Label on every Application an ApplicationSet owns (value: the set's name), so the
/// controller finds its Applications with one label-selected list.
pub const OWNER_LABEL: &str = "mooring.dev/applicationset";

/// An Argo CD `ApplicationSet` object (metadata kept as JSON: it is Kubernetes' own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSet {
    #[serde(default = "api_version")]
    pub api_version: String,
    #[serde(default = "kind")]
    pub kind: String,
    #[serde(default)]
    pub metadata: Value,
    pub spec: ApplicationSetSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ApplicationSetStatus>,
}

fn api_version() -> String {
    format!("{}/{}", crate::app::GROUP, crate::app::VERSION)
}

fn kind() -> String {
    "ApplicationSet".into()
}

impl ApplicationSet {
    pub fn name(&self) -> &str {
        crate::app::metadata_str(&self.metadata, "name")
    }

    pub fn namespace(&self) -> &str {
        crate::app::metadata_str(&self.metadata, "namespace")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSetSpec {
    /// Parsed into [`Generator`]s by the controller (see the module docs).
    #[serde(default)]
    pub generators: Vec<Value>,
    #[serde(default)]
    pub template: ApplicationSetTemplate,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub go_template: bool,
    /// `missingkey=error` (or `missingkey=default`/`zero`/`invalid`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub go_template_options: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_policy: Option<ApplicationSetSyncPolicy>,
    /// A Go template rendering to a YAML/JSON patch merged over each generated
    /// Application (requires `goTemplate: true`, as in Argo CD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_patch: Option<String>,
    /// Argo CD's `strategy` (progressive syncs); kept, not acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preserved_fields: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_application_differences: Option<Value>,
}

/// `spec.template`: Application metadata and spec, with `{{…}}` parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSetTemplate {
    #[serde(default)]
    pub metadata: ApplicationSetTemplateMeta,
    #[serde(default)]
    pub spec: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSetTemplateMeta {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
}

/// What the controller may do to the Applications it generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ApplicationsSyncPolicy {
    CreateOnly,
    CreateUpdate,
    CreateDelete,
    Sync,
}

impl ApplicationsSyncPolicy {
    pub fn allows_update(self) -> bool {
        matches!(self, Self::CreateUpdate | Self::Sync)
    }

    pub fn allows_delete(self) -> bool {
        matches!(self, Self::CreateDelete | Self::Sync)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSetSyncPolicy {
    /// Delete generated Applications without cascading to their resources.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub preserve_resources_on_deletion: bool,
    /// Default: `sync` (create, update and delete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applications_sync: Option<ApplicationsSyncPolicy>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSetCondition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True` or `False`.
    pub status: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// One generated Application, as listed in `status.resources`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSetResource {
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSetStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ApplicationSetCondition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ApplicationSetResource>,
}

// ---- Generators (parsed from `spec.generators`, serde only) ----

/// One entry of `spec.generators` (or of a matrix/merge `generators`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Generator {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub list: Option<ListGenerator>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clusters: Option<ClusterGenerator>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitGenerator>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix: Option<MatrixGenerator>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<MergeGenerator>,
    /// Post-filter on the generated parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Per-generator template, merged over `spec.template`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Value>,
    /// Anything else: an unknown (or not supported) generator, reported by name.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ListGenerator {
    #[serde(default)]
    pub elements: Vec<Value>,
    /// A (templated) YAML/JSON string holding a list of elements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elements_yaml: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ClusterGenerator {
    #[serde(default)]
    pub selector: LabelSelector,
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GitGenerator {
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    #[serde(default)]
    pub revision: String,
    #[serde(default)]
    pub directories: Vec<GitPathItem>,
    #[serde(default)]
    pub files: Vec<GitPathItem>,
    #[serde(default)]
    pub values: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path_param_prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct GitPathItem {
    pub path: String,
    #[serde(default)]
    pub exclude: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct MatrixGenerator {
    #[serde(default)]
    pub generators: Vec<Generator>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct MergeGenerator {
    #[serde(default)]
    pub generators: Vec<Generator>,
    #[serde(default)]
    pub merge_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Value>,
}

/// A Kubernetes label selector (`matchLabels`, `matchExpressions`) as written in an
/// ApplicationSet; evaluated by the one implementation in [`crate::selector`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    pub key: String,
    /// `In`, `NotIn`, `Exists`, `DoesNotExist`.
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

impl LabelSelector {
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// The selector, validated as apimachinery's `LabelSelectorAsSelector` does (Argo CD
    /// reports an invalid one as a generator error).
    pub fn to_selector(&self) -> Result<crate::selector::LabelSelector, SelectorError> {
        let json = serde_json::to_value(self).map_err(|e| {
            SelectorError::Invalid(format!("label selector cannot be represented: {e}"))
        })?;
        crate::selector::LabelSelector::from_label_selector_json(&json)
    }

    /// Does a label set match? An invalid selector (e.g. an unknown operator) matches
    /// nothing (fail closed); use [`LabelSelector::to_selector`] to report it.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.to_selector().is_ok_and(|s| s.matches(labels))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_argo_cd_applicationset_unchanged() {
        let y = r#"
apiVersion: argoproj.io/v1alpha1
kind: ApplicationSet
metadata: {name: guestbook, namespace: argocd}
spec:
  goTemplate: true
  goTemplateOptions: ["missingkey=error"]
  generators:
  - matrix:
      generators:
      - clusters: {selector: {matchLabels: {env: prod}}, values: {replicas: "2"}}
      - list: {elements: [{app: a}]}
  template:
    metadata: {name: '{{.name}}-{{.app}}'}
    spec:
      project: default
      source: {repoURL: 'https://x/y.git', path: apps, targetRevision: HEAD}
      destination: {server: '{{.server}}', namespace: guestbook}
  syncPolicy: {applicationsSync: create-only, preserveResourcesOnDeletion: true}
"#;
        let v = crate::yaml::parse_one(y).expect("yaml");
        let set: ApplicationSet = serde_json::from_value(v).expect("appset");
        assert_eq!(set.name(), "guestbook");
        let sp = set.spec.sync_policy.as_ref().expect("policy");
        assert_eq!(
            sp.applications_sync,
            Some(ApplicationsSyncPolicy::CreateOnly)
        );
        let g: Generator = serde_json::from_value(set.spec.generators[0].clone()).expect("gen");
        let m = g.matrix.expect("matrix");
        assert_eq!(m.generators.len(), 2);
        assert_eq!(
            m.generators[0].clusters.as_ref().map(|c| c.values.len()),
            Some(1)
        );
    }

    #[test]
    fn selectors() {
        let labels: BTreeMap<String, String> = [("env".to_string(), "prod".to_string())]
            .into_iter()
            .collect();
        let sel = |y: &str| -> LabelSelector {
            serde_json::from_value(crate::yaml::parse_one(y).expect("yaml")).expect("selector")
        };
        assert!(sel("matchLabels: {env: prod}").matches(&labels));
        assert!(!sel("matchLabels: {env: dev}").matches(&labels));
        assert!(
            sel("matchExpressions: [{key: env, operator: In, values: [prod, x]}]").matches(&labels)
        );
        assert!(sel("matchExpressions: [{key: tier, operator: DoesNotExist}]").matches(&labels));
        assert!(!sel("matchExpressions: [{key: env, operator: Bogus}]").matches(&labels));
        assert!(sel("{}").matches(&labels));
    }
}
