//! Backup and restore of a control plane (`mooring admin export` / `import`), as
//! `argocd admin export` / `import`: the pure part — which objects belong in a backup, the
//! form they are written in, how a backup file is validated, and what an import does to
//! each object (create, update, leave, prune). The CLI lists, writes and deletes.
//!
//! # What a backup holds
//!
//! Everything Mooring's state consists of, in the control-plane namespace only:
//!
//! * Argo CD's `Application`, `AppProject` and `ApplicationSet`, Mooring's
//!   `RollbackPolicy` and `DisasterRecoveryPlan` (all of them in the namespace);
//! * the ConfigMaps named in [`Scope::config_maps`] (`mooring-cm`, `mooring-rbac-cm`,
//!   notifications, image updater: the caller names them from their owners' constants);
//! * the Secrets named in [`Scope::secrets`] (`mooring-secret` with the accounts' token
//!   hashes, the notifications Secret…) and every Secret labelled
//!   `argocd.argoproj.io/secret-type` with one of [`SECRET_TYPES`] (clusters,
//!   repositories, repository credential templates), as Argo CD selects them.
//!
//! Nothing else: another Secret of the namespace (a TLS key, a user's credentials) is not
//! exported, never pruned, and a backup that contains one is refused.
//!
//! # The written form
//!
//! Server-set metadata (`uid`, `resourceVersion`, `generation`, `creationTimestamp`,
//! `managedFields`, …; [`mooring_core::server_fields`]) is removed; names, namespace,
//! labels, annotations and finalizers are kept. `status` is kept as Argo CD keeps it: an
//! Application's `status.history` is what `app rollback ID` restores from, and a DR plan's
//! status says which site is active. The controller recomputes sync and health after a
//! restore anyway.
//!
//! # Import
//!
//! The whole file is validated before anything is written ([`parse_backup`]): every
//! document must be an object of a kind above, in the control-plane namespace (a document
//! without a namespace is put there, as Argo CD does), ConfigMaps and Secrets must be ones
//! a backup holds, no object may appear twice. One bad document refuses the file, naming
//! every problem. Then [`plan`] compares it with the live objects of the same selection:
//! absent objects are created, differing ones updated as Argo CD's import does ([`updated`]:
//! labels, annotations, finalizers, and `data` or `spec` replaced; everything else of the
//! live object kept, its `status` too: the running controller's is newer than a backup's,
//! so a backup's status is restored only into objects it creates), equal ones left alone,
//! and with `--prune` the live objects of the selection that the backup does not have are
//! deleted — except the settings ConfigMaps and Secrets named in the [`Scope`], which
//! belong to the installation ([`Scope::prunable`]). Objects are written in dependency
//! order: settings, credentials and projects before the Applications that use them.

use mooring_core::ResourceKey;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Values of `argocd.argoproj.io/secret-type` whose Secrets a backup holds: clusters,
/// repositories and credential templates, and their write-access variants.
pub const SECRET_TYPES: [&str; 5] = [
    "cluster",
    "repository",
    "repo-creds",
    "repository-write",
    "repo-write-creds",
];

/// The Secret label that marks Argo CD cluster and repository Secrets.
pub use mooring_core::cluster::SECRET_TYPE_LABEL;

/// Largest backup file accepted (bytes). Documents are parsed one at a time, each under
/// [`mooring_core::yaml::MAX_YAML_BYTES`].
pub const MAX_BACKUP_BYTES: usize = 256 * 1024 * 1024;

/// The kinds a backup holds, in the order an import writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    ConfigMap,
    Secret,
    AppProject,
    RollbackPolicy,
    DisasterRecoveryPlan,
    ApplicationSet,
    Application,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::ConfigMap,
        Kind::Secret,
        Kind::AppProject,
        Kind::RollbackPolicy,
        Kind::DisasterRecoveryPlan,
        Kind::ApplicationSet,
        Kind::Application,
    ];

    /// The API group.
    pub fn group(self) -> &'static str {
        match self {
            Kind::ConfigMap | Kind::Secret => "",
            Kind::AppProject | Kind::ApplicationSet | Kind::Application => mooring_core::app::GROUP,
            Kind::RollbackPolicy => mooring_core::rollback::GROUP,
            Kind::DisasterRecoveryPlan => mooring_core::dr::GROUP,
        }
    }

    /// The kind's name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::ConfigMap => "ConfigMap",
            Kind::Secret => "Secret",
            Kind::AppProject => "AppProject",
            Kind::RollbackPolicy => mooring_core::rollback::KIND,
            Kind::DisasterRecoveryPlan => mooring_core::dr::KIND,
            Kind::ApplicationSet => "ApplicationSet",
            Kind::Application => "Application",
        }
    }

    /// The kind of `obj` (by `apiVersion`'s group and `kind`), if a backup holds it.
    pub fn of(obj: &Value) -> Option<Kind> {
        let kind = obj.get("kind")?.as_str()?;
        let api_version = obj.get("apiVersion")?.as_str()?;
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        Kind::ALL
            .into_iter()
            .find(|k| k.name() == kind && k.group() == group)
    }

    /// The fields an import replaces besides labels, annotations and finalizers. Not
    /// `status`: a live object's status is the controller's, newer than any backup's.
    fn content_fields(self) -> &'static [&'static str] {
        match self {
            Kind::ConfigMap => &["data", "binaryData"],
            Kind::Secret => &["data", "type"],
            Kind::Application => &["spec", "operation"],
            _ => &["spec"],
        }
    }
}

/// What a backup selects in a management cluster.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    /// The control-plane namespace.
    pub namespace: &'a str,
    /// ConfigMaps a backup holds, by name.
    pub config_maps: &'a [&'a str],
    /// Secrets a backup holds by name (besides those of [`SECRET_TYPES`]).
    pub secrets: &'a [&'a str],
}

impl Scope<'_> {
    /// Whether a live object of `kind` belongs in a backup (its namespace is not looked
    /// at: the caller lists the control-plane namespace).
    pub fn selects(&self, kind: Kind, obj: &Value) -> bool {
        let name = obj["metadata"]["name"].as_str().unwrap_or_default();
        match kind {
            Kind::ConfigMap => self.config_maps.contains(&name),
            Kind::Secret => {
                self.secrets.contains(&name)
                    || obj["metadata"]["labels"][SECRET_TYPE_LABEL]
                        .as_str()
                        .is_some_and(|t| SECRET_TYPES.contains(&t))
            }
            _ => true,
        }
    }

    /// Whether `--prune` may delete a live object of the selection the backup lacks: not
    /// the settings ConfigMaps and Secrets named in the scope, which belong to the
    /// installation (a backup without them leaves them alone, as Argo CD's import never
    /// prunes its ConfigMaps); cluster and repository Secrets and the custom resources,
    /// yes.
    pub fn prunable(&self, kind: Kind, obj: &Value) -> bool {
        match kind {
            Kind::ConfigMap => false,
            Kind::Secret => {
                let name = obj["metadata"]["name"].as_str().unwrap_or_default();
                !self.secrets.contains(&name)
            }
            _ => true,
        }
    }
}

/// A backup file that cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("the backup is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("the backup was refused, nothing was written:\n  {}", .0.join("\n  "))]
    Refused(Vec<String>),
}

/// The key of a backup object (after [`parse_backup`], every one has a namespace).
pub fn key_of(kind: Kind, obj: &Value) -> ResourceKey {
    ResourceKey::new(
        kind.group(),
        kind.name(),
        obj["metadata"]["namespace"].as_str().unwrap_or_default(),
        obj["metadata"]["name"].as_str().unwrap_or_default(),
    )
}

/// `obj` as a backup writes it: server-set metadata removed.
pub fn export_form(mut obj: Value) -> Value {
    mooring_core::server_fields::strip_server_metadata(&mut obj);
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        // The last-applied annotation of `kubectl apply` carries the old object, and
        // ownerReferences point at uids of the old cluster.
        meta.remove("ownerReferences");
        if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            a.remove("kubectl.kubernetes.io/last-applied-configuration");
            if a.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    obj
}

/// Split a YAML stream into its documents at `---` lines, so each is parsed on its own
/// (under the per-document size limit) and a backup of 10,000 Applications is readable.
fn documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    for (i, line) in text.lines().enumerate() {
        if line == "---" || line.starts_with("--- ") || line.starts_with("---\t") {
            if !current.trim().is_empty() {
                docs.push((start, std::mem::take(&mut current)));
            }
            current.clear();
            // Content on the marker's line (`--- {kind: …}`) belongs to the new document.
            let rest = line[3..].trim();
            if rest.is_empty() {
                start = i + 2;
            } else {
                start = i + 1;
                current.push_str(rest);
                current.push('\n');
            }
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    if !current.trim().is_empty() {
        docs.push((start, current));
    }
    docs
}

/// Parse and validate a backup file for `scope` (see the module docs): every problem is
/// reported, and any one refuses the whole file.
pub fn parse_backup(text: &str, scope: &Scope<'_>) -> Result<Vec<(Kind, Value)>, BackupError> {
    if text.len() > MAX_BACKUP_BYTES {
        return Err(BackupError::TooLarge {
            size: text.len(),
            limit: MAX_BACKUP_BYTES,
        });
    }
    let mut problems = Vec::new();
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (line, doc) in documents(text) {
        let at = format!("document at line {line}");
        let mut obj = match mooring_core::yaml::parse_one(&doc) {
            Ok(Value::Null) => continue,
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => {
                problems.push(format!("{at}: not an object"));
                continue;
            }
            Err(e) => {
                problems.push(format!("{at}: {e}"));
                continue;
            }
        };
        let api_version = obj["apiVersion"].as_str().unwrap_or_default().to_string();
        let kind_name = obj["kind"].as_str().unwrap_or_default().to_string();
        let Some(kind) = Kind::of(&obj) else {
            problems.push(format!(
                "{at}: {api_version:?} {kind_name:?} is not a kind a backup holds (ConfigMap, Secret, AppProject, RollbackPolicy, DisasterRecoveryPlan, ApplicationSet, Application)"
            ));
            continue;
        };
        let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
            problems.push(format!("{at}: {kind_name} without metadata"));
            continue;
        };
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let invalid = mooring_core::validation::is_dns1123_subdomain(&name);
        if !invalid.is_empty() {
            problems.push(format!(
                "{at}: {kind_name} name {name:?}: {}",
                invalid.join("; ")
            ));
            continue;
        }
        match meta.get("namespace").and_then(Value::as_str) {
            None | Some("") => {
                meta.insert("namespace".into(), Value::from(scope.namespace));
            }
            Some(ns) if ns == scope.namespace => {}
            Some(ns) => {
                problems.push(format!(
                    "{at}: {kind_name} {name} is in namespace {ns:?}; a backup restores only the control-plane namespace {:?}",
                    scope.namespace
                ));
                continue;
            }
        }
        if !scope.selects(kind, &obj) {
            problems.push(format!(
                "{at}: {kind_name} {name} is not one of Mooring's (ConfigMaps: {}; Secrets: {} or labelled {SECRET_TYPE_LABEL} in {})",
                scope.config_maps.join(", "),
                scope.secrets.join(", "),
                SECRET_TYPES.join("/")
            ));
            continue;
        }
        let key = key_of(kind, &obj);
        if !seen.insert(key.clone()) {
            problems.push(format!("{at}: {key} appears twice"));
            continue;
        }
        out.push((kind, export_form(obj)));
    }
    if problems.is_empty() {
        out.sort_by_key(|(k, _)| *k);
        Ok(out)
    } else {
        Err(BackupError::Refused(problems))
    }
}

/// The live object with the backup's content ([`Kind::content_fields`], labels,
/// annotations, finalizers); its other fields (resourceVersion, status, …) kept, as Argo
/// CD's import updates, except that Argo CD also replaces an Application's status with
/// the backup's (stale) one. A content field the backup lacks is removed.
pub fn updated(kind: Kind, live: &Value, bak: &Value) -> Value {
    let mut out = live.clone();
    if let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in ["labels", "annotations", "finalizers"] {
            match bak["metadata"].get(f) {
                Some(v) => {
                    meta.insert(f.into(), v.clone());
                }
                None => {
                    meta.remove(f);
                }
            }
        }
    }
    if let Some(o) = out.as_object_mut() {
        for f in kind.content_fields() {
            match bak.get(*f) {
                Some(v) => {
                    o.insert((*f).into(), v.clone());
                }
                None => {
                    o.remove(*f);
                }
            }
        }
    }
    out
}

/// Whether importing `bak` over `live` would change nothing.
pub fn unchanged(kind: Kind, live: &Value, bak: &Value) -> bool {
    let empty = Value::Object(Map::new());
    let meta_eq = ["labels", "annotations", "finalizers"].iter().all(|f| {
        let a = live["metadata"].get(*f).unwrap_or(&empty);
        let b = bak["metadata"].get(*f).unwrap_or(&empty);
        a == b || (is_empty(a) && is_empty(b))
    });
    meta_eq
        && kind.content_fields().iter().all(|f| {
            let a = live.get(*f).unwrap_or(&Value::Null);
            let b = bak.get(*f).unwrap_or(&Value::Null);
            a == b || (is_empty(a) && is_empty(b))
        })
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// One step of an import.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Create the backup's object.
    Create(Kind, Value),
    /// Replace the live object by this (from [`updated`]).
    Update(Kind, Value),
    /// Already as in the backup.
    Unchanged(Kind, ResourceKey),
    /// A live object of the selection the backup does not have: deleted with `--prune`,
    /// reported otherwise.
    Prune(Kind, Value),
}

/// The steps that make `live` (the selection of the live cluster, by kind) equal to
/// `backup` (from [`parse_backup`]), creates and updates in [`Kind`] order, prunes (only
/// of [`Scope::prunable`] objects) in reverse (Applications before their projects).
pub fn plan(scope: &Scope<'_>, backup: Vec<(Kind, Value)>, live: Vec<(Kind, Value)>) -> Vec<Step> {
    let mut live: BTreeMap<ResourceKey, (Kind, Value)> = live
        .into_iter()
        .map(|(k, o)| (key_of(k, &o), (k, o)))
        .collect();
    let mut steps = Vec::new();
    for (kind, bak) in backup {
        let key = key_of(kind, &bak);
        match live.remove(&key) {
            None => steps.push(Step::Create(kind, bak)),
            Some((_, l)) if unchanged(kind, &l, &bak) => steps.push(Step::Unchanged(kind, key)),
            Some((_, l)) => steps.push(Step::Update(kind, updated(kind, &l, &bak))),
        }
    }
    let mut prunes: Vec<(Kind, Value)> = live
        .into_values()
        .filter(|(k, o)| scope.prunable(*k, o))
        .collect();
    prunes.sort_by_key(|(k, _)| std::cmp::Reverse(*k));
    steps.extend(prunes.into_iter().map(|(k, o)| Step::Prune(k, o)));
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SCOPE: Scope<'static> = Scope {
        namespace: "argocd",
        config_maps: &["mooring-cm", "mooring-rbac-cm"],
        secrets: &["mooring-secret"],
    };

    fn refused(text: &str) -> Vec<String> {
        match parse_backup(text, &SCOPE) {
            Err(BackupError::Refused(p)) => p,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_backup_is_parsed_into_the_control_plane_namespace_in_write_order() {
        let text = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: a, uid: x, resourceVersion: '9'}\nspec: {project: p}\nstatus: {history: [{id: 1}]}\n---\n---\napiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {name: p, namespace: argocd}\nspec: {}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: repo, labels: {argocd.argoproj.io/secret-type: repository}}\ndata: {url: eA==}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: mooring-cm}\ndata: {admin.enabled: 'true'}\n";
        let objs = parse_backup(text, &SCOPE).expect("valid");
        let kinds: Vec<Kind> = objs.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            kinds,
            [
                Kind::ConfigMap,
                Kind::Secret,
                Kind::AppProject,
                Kind::Application
            ]
        );
        let app = &objs[3].1;
        assert_eq!(app["metadata"], json!({"name": "a", "namespace": "argocd"}));
        assert_eq!(app["status"]["history"][0]["id"], 1);
    }

    #[test]
    fn hostile_backups_are_refused_whole_naming_every_problem() {
        let good = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: fine}\nspec: {}\n";
        for (bad, says) in [
            ("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n", "Deployment"),
            ("apiVersion: v1\nkind: Secret\nmetadata: {name: tls-key}\ndata: {}\n", "not one of Mooring's"),
            ("apiVersion: v1\nkind: Secret\nmetadata: {name: s, labels: {argocd.argoproj.io/secret-type: other}}\n", "not one of Mooring's"),
            ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kube-root-ca.crt}\n", "not one of Mooring's"),
            ("apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: x, namespace: kube-system}\n", "kube-system"),
            ("apiVersion: evil.io/v1\nkind: Application\nmetadata: {name: x}\n", "evil.io/v1"),
            ("apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: ../x}\n", "../x"),
            ("apiVersion: argoproj.io/v1alpha1\nkind: Application\n", "without metadata"),
            ("- a list\n", "not an object"),
            ("a: [unclosed\n", "invalid YAML"),
            ("a: &a [x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\ng: [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n", "document at line"),
            (good, "appears twice"),
        ] {
            let problems = refused(&format!("{good}---\n{bad}"));
            assert_eq!(problems.len(), 1, "{bad}: {problems:?}");
            assert!(problems[0].contains(says), "{bad}: {problems:?}");
        }
        // Every problem of a file is named, with its line.
        let p = refused("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: y}\n");
        assert_eq!(p.len(), 2);
        assert!(p[1].starts_with("document at line 5"), "{p:?}");
    }

    #[test]
    fn documents_split_at_markers_keeping_content_on_the_marker_line() {
        let text = "a: 1\n--- {b: 2}\n---\n\n---\nc: 3\n";
        let docs = documents(text);
        let values: Vec<Value> = docs
            .iter()
            .map(|(_, d)| mooring_core::yaml::parse_one(d).expect("yaml"))
            .collect();
        assert_eq!(values, [json!({"a": 1}), json!({"b": 2}), json!({"c": 3})]);
        assert_eq!(docs.iter().map(|(l, _)| *l).collect::<Vec<_>>(), [1, 2, 6]);
    }

    #[test]
    fn export_strips_what_the_server_set() {
        let o = export_form(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "mooring-cm", "namespace": "argocd", "uid": "u",
                         "resourceVersion": "3", "creationTimestamp": "t", "managedFields": [],
                         "ownerReferences": [{"uid": "o"}],
                         "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"},
                         "labels": {"a": "b"}},
            "data": {"k": "v"},
        }));
        assert_eq!(
            o["metadata"],
            json!({"name": "mooring-cm", "namespace": "argocd", "labels": {"a": "b"}})
        );
    }

    #[test]
    fn scope_selects_mooring_objects_only() {
        let secret = |name: &str, t: Option<&str>| json!({"metadata": {"name": name, "labels": t.map(|t| json!({SECRET_TYPE_LABEL: t}))}});
        assert!(SCOPE.selects(Kind::Secret, &secret("mooring-secret", None)));
        assert!(SCOPE.selects(Kind::Secret, &secret("c", Some("cluster"))));
        assert!(SCOPE.selects(Kind::Secret, &secret("r", Some("repo-creds"))));
        assert!(!SCOPE.selects(Kind::Secret, &secret("tls", None)));
        assert!(!SCOPE.selects(Kind::ConfigMap, &secret("other", None)));
        assert!(SCOPE.selects(Kind::Application, &secret("any", None)));
    }

    #[test]
    fn plan_creates_updates_keeps_and_prunes() {
        let app = |name: &str, rev: &str| {
            json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                   "metadata": {"name": name, "namespace": "argocd"},
                   "spec": {"source": {"targetRevision": rev}}})
        };
        let mut live_b = app("b", "v1");
        live_b["metadata"]["resourceVersion"] = json!("7");
        live_b["status"] = json!({"sync": {"status": "Synced"}});
        let backup = vec![
            (Kind::Application, app("a", "v1")),
            (Kind::Application, app("b", "v2")),
            (Kind::Application, app("c", "v1")),
        ];
        let live = vec![
            (Kind::Application, live_b),
            (Kind::Application, app("c", "v1")),
            (
                Kind::AppProject,
                json!({"metadata": {"name": "p", "namespace": "argocd"}}),
            ),
            (Kind::Application, app("d", "v1")),
            (
                Kind::ConfigMap,
                json!({"metadata": {"name": "mooring-cm", "namespace": "argocd"}}),
            ),
            (
                Kind::Secret,
                json!({"metadata": {"name": "mooring-secret", "namespace": "argocd"}}),
            ),
        ];
        let steps = plan(&SCOPE, backup, live);
        assert!(matches!(&steps[0], Step::Create(_, o) if o["metadata"]["name"] == "a"));
        match &steps[1] {
            Step::Update(_, o) => {
                assert_eq!(o["spec"]["source"]["targetRevision"], "v2");
                // The live resourceVersion (optimistic concurrency) and status stay.
                assert_eq!(o["metadata"]["resourceVersion"], "7");
                assert_eq!(o["status"]["sync"]["status"], "Synced");
            }
            s => panic!("{s:?}"),
        }
        assert!(matches!(&steps[2], Step::Unchanged(_, k) if k.name == "c"));
        // Applications are pruned before the project.
        assert!(
            matches!(&steps[3], Step::Prune(Kind::Application, o) if o["metadata"]["name"] == "d")
        );
        assert!(matches!(&steps[4], Step::Prune(Kind::AppProject, _)));
        assert_eq!(steps.len(), 5);
    }

    #[test]
    fn updated_replaces_secret_data_and_drops_labels_the_backup_lacks() {
        let live = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "mooring-secret", "labels": {"x": "y"}, "resourceVersion": "1"},
            "data": {"old": "eA=="}, "type": "Opaque"});
        let bak = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "mooring-secret"}, "data": {"new": "eQ=="}, "type": "Opaque"});
        let u = updated(Kind::Secret, &live, &bak);
        assert_eq!(u["data"], json!({"new": "eQ=="}));
        assert!(u["metadata"].get("labels").is_none());
        assert!(!unchanged(Kind::Secret, &live, &bak));
        assert!(unchanged(Kind::Secret, &u, &bak));
    }
}
