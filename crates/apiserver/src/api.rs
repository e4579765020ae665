//! Kubernetes object semantics over the store: the in-process API.
//!
//! Everything a real API server does between decoding a request and writing to etcd lives
//! here, so that the HTTP layer and the in-process workload simulation share one code path:
//! uid and creationTimestamp on create, `generateName`, name and label validation,
//! namespace existence, defaulting, `metadata.generation` bumped only on spec changes,
//! optimistic concurrency on `resourceVersion`, immutable fields, the split between the
//! main resource and its `status`/`scale` subresources, managed fields, finalizers and
//! `deletionTimestamp`, and dry runs. Custom resources are pruned, defaulted and validated
//! against their CRD's structural schema ([`crate::structural`]), unknown fields reported as
//! `fieldValidation` asks ([`crate::fields`]). Garbage collection of dependents and namespace
//! cleanup run asynchronously in [`crate::gc`], as in Kubernetes.

use crate::error::ApiError;
use crate::fields::{self, FieldValidation, Warnings};
use crate::patch::{self, ApplyOptions, PatchError};
use crate::registry::{split_api_version, Registry, ResourceType};
use crate::selector::{FieldSelector, LabelSelector, SelectorError};
use crate::store::{ObjKey, Store, Stored, Write, Written};
use crate::{defaults, validation};
use mooring_core::time::now_rfc3339;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    Main,
    Status,
}

/// Options shared by create, update and patch.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `fieldManager`; defaults to the client's user-agent name, as Kubernetes does.
    pub field_manager: Option<String>,
    pub dry_run: bool,
    /// `force` for server-side apply.
    pub force: bool,
    /// `fieldValidation`: what unknown and duplicate fields do ([`crate::fields`]).
    pub field_validation: FieldValidation,
    /// Keys the body repeated, as paths: only its decoder sees them (the HTTP layer).
    pub duplicate_fields: Vec<String>,
    /// Where `fieldValidation=Warn` findings go (the HTTP layer sends them as headers).
    pub warnings: Warnings,
}

impl WriteOptions {
    fn manager(&self) -> &str {
        self.field_manager.as_deref().unwrap_or("unknown")
    }

    /// Drop the fields the schema of `rt` does not declare from `obj` and act on them and
    /// on the body's duplicate keys as `fieldValidation` says.
    fn check_fields(&self, rt: &ResourceType, obj: &mut Value) -> Result<(), ApiError> {
        let unknown = fields::prune_unknown(rt, obj);
        if !unknown.is_empty() {
            tracing::debug!(kind = %rt.kind, manager = self.manager(), ?unknown, "unknown fields in a write");
        }
        if Api::is_crd_type(rt) {
            // CEL rules are not evaluated here: say so rather than accept them silently.
            for rule in crate::structural::cel_rules(obj) {
                self.warnings.push(format!(
                    "x-kubernetes-validations are not enforced by the embedded cluster (no CEL): {rule}"
                ));
            }
        }
        fields::enforce(
            self.field_validation,
            (&rt.kind, &rt.version),
            &unknown,
            &self.duplicate_fields,
            &self.warnings,
        )
    }
}

/// The patch formats Kubernetes accepts, by content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub propagation: Option<Propagation>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub label_selector: Option<LabelSelector>,
    pub field_selector: Option<FieldSelector>,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
    /// `resourceVersion`: unset is the most recent state; `0` any state; otherwise a
    /// revision, read as `resourceVersionMatch` says.
    pub resource_version: Option<String>,
    /// `resourceVersionMatch`: `Exact` or `NotOlderThan`.
    pub resource_version_match: Option<String>,
}

/// The message Kubernetes sends with a 410 for a continue token whose snapshot is gone.
const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

/// Which revision a list reads.
enum ReadAt {
    /// The current state.
    Latest,
    /// The state at this revision (a continue token's snapshot, or `Exact`).
    Revision(u64),
}

/// Validate the resourceVersion options of a list (Kubernetes' `ValidateListOptions`)
/// and decide which revision it reads.
fn read_at(opts: &ListOptions, continue_rv: Option<u64>, current: u64) -> Result<ReadAt, ApiError> {
    let rv = opts.resource_version.as_deref().filter(|v| !v.is_empty());
    let m = opts
        .resource_version_match
        .as_deref()
        .filter(|v| !v.is_empty());
    let invalid =
        |cause: String| ApiError::invalid(("ListOptions", "meta.k8s.io"), "", vec![cause]);
    if let Some(m) = m {
        if !matches!(m, "Exact" | "NotOlderThan") {
            return Err(invalid(format!(
                "resourceVersionMatch: Unsupported value: {m:?}: supported values: \"Exact\", \"NotOlderThan\", \"\""
            )));
        }
        if rv.is_none() {
            return Err(invalid("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided".into()));
        }
        if opts.continue_token.is_some() {
            return Err(invalid("resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when continue is provided".into()));
        }
        if m == "Exact" && rv == Some("0") {
            return Err(invalid("resourceVersionMatch: Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"".into()));
        }
    }
    if let Some(crv) = continue_rv {
        if rv.is_some_and(|v| v != "0") {
            return Err(ApiError::BadRequest(
                "specifying resource version is not allowed when using continue".into(),
            ));
        }
        // 0: an inconsistent continuation (after an expired snapshot): current state.
        return Ok(if crv == 0 {
            ReadAt::Latest
        } else {
            ReadAt::Revision(crv)
        });
    }
    let Some(rv) = rv else {
        return Ok(ReadAt::Latest);
    };
    let n: u64 = rv
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("invalid resource version: {rv:?}")))?;
    if n > current {
        return Err(ApiError::Timeout(format!(
            "Too large resource version: {n}, current: {current}"
        )));
    }
    Ok(match m {
        Some("Exact") => ReadAt::Revision(n),
        // NotOlderThan (the default for a non-zero version) and "0": the latest state
        // is never older than what was asked for.
        _ => ReadAt::Latest,
    })
}

pub struct ListResult {
    pub items: Vec<Arc<Stored>>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

/// Result of a delete: the object is gone, or still there waiting on finalizers.
pub enum Deleted {
    Gone(Value),
    Pending(Value),
}

/// The in-process Kubernetes API of one embedded cluster.
#[derive(Clone)]
pub struct Api {
    pub store: Arc<Store>,
    pub registry: Registry,
}

fn meta(v: &Value) -> Option<&Map<String, Value>> {
    v.get("metadata").and_then(Value::as_object)
}

fn meta_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v.get("metadata").is_some_and(Value::is_object) {
        v["metadata"] = json!({});
    }
    v["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

fn meta_str<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    meta(v)?.get(field)?.as_str()
}

fn finalizers(v: &Value) -> Vec<String> {
    meta(v)
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn set_finalizers(v: &mut Value, f: &[String]) {
    let m = meta_mut(v);
    if f.is_empty() {
        m.remove("finalizers");
    } else {
        m.insert("finalizers".into(), json!(f));
    }
}

/// The parts of an object whose change bumps `metadata.generation`.
fn spec_part(v: &Value) -> Value {
    let mut c = v.clone();
    if let Some(o) = c.as_object_mut() {
        o.remove("metadata");
        o.remove("status");
    }
    c
}

fn random_suffix() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

impl Api {
    pub fn new(store: Arc<Store>, registry: Registry) -> Self {
        Api { store, registry }
    }

    fn key(rt: &ResourceType, ns: Option<&str>, name: &str) -> ObjKey {
        ObjKey::new(
            &rt.storage_key(),
            if rt.namespaced { ns.unwrap_or("") } else { "" },
            name,
        )
    }

    fn not_found(rt: &ResourceType, name: &str) -> ApiError {
        ApiError::not_found((&rt.plural, &rt.group), name)
    }

    /// Present a stored object as the requested version of its resource.
    pub fn present(rt: &ResourceType, stored: &Stored) -> Result<Value, ApiError> {
        let mut v = crate::convert::to_version(rt, stored.value()?);
        if rt.is_events_v1() {
            return Ok(crate::convert::to_events_v1(&v));
        }
        if let Some(o) = v.as_object_mut() {
            o.insert("apiVersion".into(), json!(rt.api_version()));
            o.insert("kind".into(), json!(rt.kind));
        }
        // A custom resource stored before its schema gained a default reads with it, as
        // the real server defaults what it reads from etcd.
        structural_defaults(rt, &mut v);
        Ok(v)
    }

    pub fn get(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
        let stored = self
            .store
            .get(&Self::key(rt, ns, name))
            .ok_or_else(|| Self::not_found(rt, name))?;
        Self::present(rt, &stored)
    }

    pub fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> Result<ListResult, ApiError> {
        let ns = if rt.namespaced { ns } else { None };
        let ns = ns.or(opts
            .field_selector
            .as_ref()
            .and_then(|f| f.exact_namespace()));
        let start_after = match &opts.continue_token {
            Some(t) => Some(decode_continue(t)?),
            None => None,
        };
        let current = self.store.revision();
        let at = read_at(opts, start_after.as_ref().map(|(_, _, rv)| *rv), current)?;
        let (all, rev) = match at {
            ReadAt::Latest => self.store.list(&rt.storage_key(), ns),
            ReadAt::Revision(r) => match self.store.list_at(&rt.storage_key(), ns, r) {
                Ok(items) => (items, r),
                Err(oldest) => {
                    return Err(match &start_after {
                        Some((sns, sname, _)) => ApiError::ContinueExpired {
                            message: CONTINUE_EXPIRED.into(),
                            continue_token: encode_continue(sns, sname, 0),
                        },
                        None => ApiError::Gone(format!("too old resource version: {r} ({oldest})")),
                    })
                }
            },
        };
        let mut items = Vec::new();
        let mut remaining = 0usize;
        let mut last = None;
        for s in all {
            if let Some((ref sns, ref sname, _)) = start_after {
                if (s.key.namespace.as_str(), s.key.name.as_str()) <= (sns.as_str(), sname.as_str())
                {
                    continue;
                }
            }
            if let Some(sel) = &opts.label_selector {
                if !sel.matches(&s.labels) {
                    continue;
                }
            }
            if let Some(fs) = &opts.field_selector {
                if !fs.is_empty() {
                    if let Some(n) = fs.exact_name() {
                        if n != s.key.name {
                            continue;
                        }
                    }
                    let v = if rt.is_events_v1() {
                        Self::present(rt, &s)?
                    } else {
                        s.value()?
                    };
                    if !fs.matches(&v) {
                        continue;
                    }
                }
            }
            if opts.limit.is_some_and(|l| l > 0 && items.len() >= l) {
                remaining += 1;
                continue;
            }
            last = Some((s.key.namespace.clone(), s.key.name.clone()));
            items.push(s);
        }
        let continue_token = if remaining > 0 {
            last.map(|(n, m)| encode_continue(&n, &m, rev))
        } else {
            None
        };
        Ok(ListResult {
            items,
            resource_version: rev,
            continue_token,
            remaining: (remaining > 0).then_some(remaining),
        })
    }

    /// Core `v1` Events, where `events.k8s.io` Events are stored.
    fn core_events(&self) -> Result<Arc<ResourceType>, ApiError> {
        self.registry
            .get("", "v1", "events")
            .ok_or_else(|| ApiError::Internal("v1 events are not registered".into()))
    }

    /// Check the namespace of a new namespaced object exists and is not terminating.
    fn check_namespace(&self, ns: &str) -> Result<(), ApiError> {
        let key = ObjKey::new("/namespaces", "", ns);
        match self.store.get(&key) {
            None => Err(ApiError::not_found(("namespaces", ""), ns)),
            Some(s) => {
                let v = s.value()?;
                if v.pointer("/metadata/deletionTimestamp").is_some() {
                    Err(ApiError::Forbidden(format!(
                        "unable to create new content in namespace {ns} because it is being terminated"
                    )))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Check apiVersion/kind of a body against the URL's resource.
    fn check_type(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
        let Some(o) = obj.as_object() else {
            return Err(ApiError::BadRequest(
                "the object provided is not a JSON/YAML object".into(),
            ));
        };
        if let Some(kind) = o.get("kind").and_then(Value::as_str) {
            if kind != rt.kind {
                return Err(ApiError::BadRequest(format!(
                    "the object provided is unrecognized (must be of type {}): kind {kind:?} does not match the resource {}",
                    rt.kind,
                    rt.qualified_plural()
                )));
            }
        }
        if let Some(av) = o.get("apiVersion").and_then(Value::as_str) {
            let (g, _) = split_api_version(av);
            if g != rt.group {
                return Err(ApiError::BadRequest(format!(
                    "the API version in the data ({av}) does not match the expected API version ({})",
                    rt.api_version()
                )));
            }
        }
        if let Some(m) = o.get("metadata") {
            if !m.is_object() {
                return Err(ApiError::BadRequest(
                    "metadata must be an object".to_string(),
                ));
            }
        }
        Ok(())
    }

    fn validate(
        &self,
        rt: &ResourceType,
        obj: &Value,
        old: Option<&Value>,
    ) -> Result<(), ApiError> {
        let name = meta_str(obj, "name").unwrap_or_default();
        let mut causes = Vec::new();
        if let Err(e) = validation::validate_name(&rt.kind, name) {
            causes.push(e);
        }
        if let Some(labels) = meta(obj).and_then(|m| m.get("labels")) {
            match labels.as_object() {
                Some(l) => causes.extend(validation::validate_labels(l)),
                None => causes.push("metadata.labels: Invalid value: must be a map".into()),
            }
        }
        if let Some(ann) = meta(obj).and_then(|m| m.get("annotations")) {
            match ann.as_object() {
                Some(a) => causes.extend(validation::validate_annotations(a)),
                None => causes.push("metadata.annotations: Invalid value: must be a map".into()),
            }
        }
        causes.extend(defaults::validate(rt, obj, old));
        if Self::is_crd_type(rt) {
            if let Err(e) = crate::registry::types_from_crd(obj) {
                causes.push(e.to_string());
            }
            causes.extend(crate::structural::crd_errors(obj));
        }
        if let Some(schema) = &rt.schema {
            causes.extend(crate::structural::validate(schema, obj, old));
        }
        if causes.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid((&rt.kind, &rt.group), name, causes))
        }
    }

    /// Create an object. `ns` is the namespace from the URL.
    pub fn create(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        if rt.is_events_v1() {
            Self::check_type(rt, &obj)?;
            let core = self.core_events()?;
            let out = self.create(&core, ns, crate::convert::from_events_v1(&obj), opts)?;
            return Ok(crate::convert::to_events_v1(&out));
        }
        Self::check_type(rt, &obj)?;
        opts.check_fields(rt, &mut obj)?;
        let ns = self.resolve_namespace(rt, ns, &obj)?;
        {
            let m = meta_mut(&mut obj);
            let has_name = m
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            if !has_name {
                match m.get("generateName").and_then(Value::as_str) {
                    Some(prefix) if !prefix.is_empty() => {
                        let name = format!("{prefix}{}", random_suffix());
                        m.insert("name".into(), json!(name));
                    }
                    _ => {
                        return Err(ApiError::invalid(
                            (&rt.kind, &rt.group),
                            "",
                            vec![
                                "metadata.name: Required value: name or generateName is required"
                                    .into(),
                            ],
                        ))
                    }
                }
            }
        }
        let name = meta_str(&obj, "name").unwrap_or_default().to_string();
        if let Some(ns) = &ns {
            meta_mut(&mut obj).insert("namespace".into(), json!(ns));
        } else {
            meta_mut(&mut obj).remove("namespace");
        }
        obj["apiVersion"] = json!(rt.api_version());
        obj["kind"] = json!(rt.kind);
        let mut obj = crate::convert::to_storage(rt, obj);
        structural_defaults(rt, &mut obj);
        self.validate(rt, &obj, None)?;
        if let Some(ns) = &ns {
            self.check_namespace(ns)?;
        }
        let now = now_rfc3339();
        prepare_create(rt, &mut obj, &now);
        defaults::apply(rt, &mut obj);
        let obj = patch::track_update(None, &obj, opts.manager(), &rt.api_version(), &now);
        let key = Self::key(rt, ns.as_deref(), &name);
        self.put_new(rt, &key, obj, opts.dry_run)
    }

    fn put_new(
        &self,
        rt: &ResourceType,
        key: &ObjKey,
        obj: Value,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        let name = key.name.clone();
        let mut dry = None;
        let written = self.store.write(key, |cur, _| {
            if cur.is_some() {
                return Err(ApiError::already_exists((&rt.plural, &rt.group), &name));
            }
            if dry_run {
                dry = Some(obj);
                return Ok(Write::Keep);
            }
            Ok(Write::Put(obj))
        })?;
        if let Some(v) = dry {
            return Ok(v);
        }
        self.after_write(rt, &written)?;
        let stored = written
            .stored()
            .ok_or_else(|| ApiError::Internal("create wrote nothing".into()))?;
        Self::present(rt, stored)
    }

    fn is_crd_type(rt: &ResourceType) -> bool {
        rt.crd.is_none()
            && rt.group == "apiextensions.k8s.io"
            && rt.kind == "CustomResourceDefinition"
    }

    /// Keep the registry in step with CustomResourceDefinitions, synchronously, so a CRD is
    /// served as soon as its create returns and its objects go when it is deleted.
    fn after_write(&self, rt: &ResourceType, written: &Written) -> Result<(), ApiError> {
        if !Self::is_crd_type(rt) {
            return Ok(());
        }
        match written {
            Written::Created(s) | Written::Updated(s) => {
                let v = s.value()?;
                let name = s.key.name.clone();
                if v.pointer("/metadata/deletionTimestamp").is_some() {
                    return Ok(());
                }
                let types = crate::registry::types_from_crd(&v).map_err(|e| {
                    ApiError::invalid((&rt.kind, &rt.group), &name, vec![e.to_string()])
                })?;
                let established = v
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .is_some_and(|c| !c.is_empty());
                self.registry.set_crd_types(&name, types);
                if !established {
                    let now = now_rfc3339();
                    let names = v.pointer("/spec/names").cloned().unwrap_or(json!({}));
                    self.store.write(&s.key, |cur, _| {
                        let Some(cur) = cur else { return Ok(Write::Keep) };
                        let mut v = cur.value()?;
                        v["status"] = json!({
                            "acceptedNames": names,
                            "storedVersions": v.pointer("/spec/versions").and_then(Value::as_array)
                                .map(|vs| vs.iter().filter(|x| x.get("storage").and_then(Value::as_bool) == Some(true))
                                    .filter_map(|x| x.get("name").cloned()).collect::<Vec<_>>()).unwrap_or_default(),
                            "conditions": [
                                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                                 "message": "no conflicts found", "lastTransitionTime": now},
                                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                                 "message": "the initial names have been accepted", "lastTransitionTime": now},
                            ],
                        });
                        Ok(Write::Put(v))
                    })?;
                }
            }
            Written::Deleted(s) => self.remove_crd(&s.key.name, &s.value()?),
            Written::Unchanged(_) => {}
        }
        Ok(())
    }

    fn remove_crd(&self, name: &str, crd: &Value) {
        if let Ok(types) = crate::registry::types_from_crd(crd) {
            if let Some(t) = types.first() {
                let (items, _) = self.store.list(&t.storage_key(), None);
                for s in items {
                    let r = self.store.write(&s.key, |_, _| Ok(Write::Delete));
                    if let Err(e) = r {
                        tracing::warn!("removing {} with its CRD {name}: {e}", s.key);
                    }
                }
            }
        }
        self.registry.set_crd_types(name, vec![]);
    }

    /// Serve the CRDs already stored (after a restart).
    pub fn load_crds(&self) {
        let Some(rt) = self
            .registry
            .by_kind("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        else {
            return;
        };
        let (items, _) = self.store.list(&rt.storage_key(), None);
        for s in items {
            match s.value().map_err(ApiError::from).and_then(|v| {
                crate::registry::types_from_crd(&v).map_err(|e| ApiError::BadRequest(e.to_string()))
            }) {
                Ok(types) => self.registry.set_crd_types(&s.key.name, types),
                Err(e) => tracing::warn!("stored CRD {} cannot be served: {e}", s.key.name),
            }
        }
    }

    fn resolve_namespace(
        &self,
        rt: &ResourceType,
        url_ns: Option<&str>,
        obj: &Value,
    ) -> Result<Option<String>, ApiError> {
        if !rt.namespaced {
            return Ok(None);
        }
        let body_ns = meta_str(obj, "namespace").filter(|s| !s.is_empty());
        match (url_ns, body_ns) {
            (Some(u), Some(b)) if u != b => Err(ApiError::BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request"
                    .into(),
            )),
            (Some(u), _) => Ok(Some(u.to_string())),
            (None, Some(b)) => Ok(Some(b.to_string())),
            (None, None) => Ok(Some("default".to_string())),
        }
    }

    /// Replace an object (PUT). A stale `metadata.resourceVersion` is a 409 Conflict.
    pub fn update(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        mut obj: Value,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        if rt.is_events_v1() {
            Self::check_type(rt, &obj)?;
            let core = self.core_events()?;
            let obj = crate::convert::from_events_v1(&obj);
            let out = self.update(&core, ns, name, obj, sub, opts)?;
            return Ok(crate::convert::to_events_v1(&out));
        }
        Self::check_type(rt, &obj)?;
        opts.check_fields(rt, &mut obj)?;
        if let Some(n) = meta_str(&obj, "name") {
            if n != name {
                return Err(ApiError::BadRequest(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
        }
        let want_rv = meta_str(&obj, "resourceVersion")
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        self.modify(rt, ns, name, sub, opts, |old| {
            check_resource_version(rt, name, want_rv.as_deref(), old)?;
            Ok(obj)
        })
        .map(|(v, _)| v)
    }

    /// Patch an object with one of the four patch types. Server-side apply creates the
    /// object when it does not exist.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        patch_type: PatchType,
        body: &Value,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        if rt.is_events_v1() {
            let core = self.core_events()?;
            let body = crate::convert::patch_to_core(patch_type == PatchType::Json, body);
            let out = self.patch(&core, ns, name, patch_type, &body, sub, opts)?;
            return Ok(crate::convert::to_events_v1(&out));
        }
        if patch_type == PatchType::Apply && opts.field_manager.is_none() {
            return Err(ApiError::BadRequest(
                "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".into(),
            ));
        }
        // An applied configuration is checked before apply computes field ownership from
        // it; the other patch types are checked on the object they produce.
        let pruned_body;
        let body = if patch_type == PatchType::Apply {
            let mut b = body.clone();
            opts.check_fields(rt, &mut b)?;
            pruned_body = b;
            &pruned_body
        } else {
            body
        };
        let key = Self::key(rt, ns, name);
        if patch_type == PatchType::Apply && self.store.get(&key).is_none() {
            if sub != Subresource::Main {
                return Err(Self::not_found(rt, name));
            }
            Self::check_type(rt, body)?;
            let now = now_rfc3339();
            let mut applied = body.clone();
            if let Some(n) = meta_str(&applied, "name") {
                if n != name {
                    return Err(ApiError::BadRequest(format!(
                        "the name of the object ({n}) does not match the name on the URL ({name})"
                    )));
                }
            }
            meta_mut(&mut applied).insert("name".into(), json!(name));
            let ns = self.resolve_namespace(rt, ns, &applied)?;
            if let Some(ns) = &ns {
                meta_mut(&mut applied).insert("namespace".into(), json!(ns));
            }
            applied["apiVersion"] = json!(rt.api_version());
            applied["kind"] = json!(rt.kind);
            let obj = patch::server_side_apply(
                None,
                &applied,
                &ApplyOptions {
                    manager: opts.manager(),
                    force: opts.force,
                    api_version: &rt.api_version(),
                    now: &now,
                },
            )
            .map_err(|e| patch_error(rt, name, e))?;
            let mut obj = crate::convert::to_storage(rt, obj);
            structural_defaults(rt, &mut obj);
            self.validate(rt, &obj, None)?;
            if let Some(ns) = &ns {
                self.check_namespace(ns)?;
            }
            let managed = meta(&obj).and_then(|m| m.get("managedFields")).cloned();
            prepare_create(rt, &mut obj, &now);
            defaults::apply(rt, &mut obj);
            if let Some(mf) = managed {
                meta_mut(&mut obj).insert("managedFields".into(), mf);
            }
            return match self.put_new(rt, &key, obj, opts.dry_run) {
                // Lost a create race: apply onto the object that won.
                Err(ApiError::AlreadyExists { .. }) => {
                    self.patch(rt, ns.as_deref(), name, patch_type, body, sub, opts)
                }
                other => other,
            };
        }
        let now = now_rfc3339();
        self.modify(rt, ns, name, sub, opts, |old| {
            let patched = match patch_type {
                PatchType::Merge => Ok(mooring_core::merge_patch::applied(old, body)),
                PatchType::Json => patch::json_patch(old, body),
                PatchType::Strategic => patch::strategic_merge_patch(old, body),
                PatchType::Apply => {
                    let mut applied = body.clone();
                    if sub == Subresource::Status {
                        // Apply to /status owns only the status fields.
                        if let Some(o) = applied.as_object_mut() {
                            o.retain(|k, _| {
                                matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status")
                            });
                        }
                    } else if rt.status_subresource {
                        if let Some(o) = applied.as_object_mut() {
                            o.remove("status");
                        }
                    }
                    patch::server_side_apply(
                        Some(old),
                        &applied,
                        &ApplyOptions {
                            manager: opts.manager(),
                            force: opts.force,
                            api_version: &rt.api_version(),
                            now: &now,
                        },
                    )
                }
            }
            .map_err(|e| patch_error(rt, name, e))?;
            let mut patched = patched;
            if patch_type != PatchType::Apply {
                opts.check_fields(rt, &mut patched)?;
            }
            let want = meta_str(&patched, "resourceVersion").filter(|s| !s.is_empty());
            check_resource_version(rt, name, want, old)?;
            Ok(patched)
        })
        .map(|(v, _)| v)
    }

    /// The shared read-modify-write path of update and patch: `change` produces the
    /// requested object from the current one; this applies the semantics of the
    /// subresource, immutable fields, generation and finalizers, and writes it.
    fn modify<F>(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        sub: Subresource,
        opts: &WriteOptions,
        change: F,
    ) -> Result<(Value, Written), ApiError>
    where
        F: FnOnce(&Value) -> Result<Value, ApiError>,
    {
        let key = Self::key(rt, ns, name);
        let mut dry = None;
        let now = now_rfc3339();
        let written = self.store.write(&key, |cur, _| {
            let cur = cur.ok_or_else(|| Self::not_found(rt, name))?;
            let old = cur.value()?;
            let requested = crate::convert::to_storage(
                rt,
                change(&crate::convert::to_version(rt, old.clone()))?,
            );
            if !requested.is_object() {
                return Err(ApiError::BadRequest(
                    "the patched object is not an object".into(),
                ));
            }
            let mut new = match sub {
                Subresource::Status => {
                    let mut n = old.clone();
                    match requested.get("status") {
                        Some(s) => n["status"] = s.clone(),
                        None => {
                            if let Some(o) = n.as_object_mut() {
                                o.remove("status");
                            }
                        }
                    }
                    if let Some(mf) = meta(&requested).and_then(|m| m.get("managedFields")) {
                        meta_mut(&mut n).insert("managedFields".into(), mf.clone());
                    }
                    n
                }
                Subresource::Main => {
                    let mut n = requested;
                    if rt.status_subresource {
                        match old.get("status") {
                            Some(s) => n["status"] = s.clone(),
                            None => {
                                if let Some(o) = n.as_object_mut() {
                                    o.remove("status");
                                }
                            }
                        }
                    }
                    n
                }
            };
            new["apiVersion"] = json!(crate::convert::storage_api_version(rt));
            new["kind"] = json!(rt.kind);
            preserve_system_metadata(&old, &mut new);
            if sub == Subresource::Main {
                defaults::apply(rt, &mut new);
            }
            structural_defaults(rt, &mut new);
            self.validate(rt, &new, Some(&old))?;
            if rt.has_generation {
                let gen = old
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(1);
                let gen = if spec_part(&old) != spec_part(&new) {
                    gen + 1
                } else {
                    gen
                };
                meta_mut(&mut new).insert("generation".into(), json!(gen));
            }
            let manager = opts.manager();
            let new = if meta(&new).and_then(|m| m.get("managedFields"))
                == meta(&old).and_then(|m| m.get("managedFields"))
            {
                patch::track_update(Some(&old), &new, manager, &rt.api_version(), &now)
            } else {
                // Server-side apply computed ownership itself.
                new
            };
            // An object being deleted goes once its last finalizer is removed.
            if meta(&new).is_some_and(|m| m.contains_key("deletionTimestamp"))
                && finalizers(&new).is_empty()
                && !namespace_blocked(rt, &new)
            {
                if opts.dry_run {
                    dry = Some(new);
                    return Ok(Write::Keep);
                }
                return Ok(Write::Delete);
            }
            if spec_and_meta_equal(&old, &new) {
                dry = Some(new);
                return Ok(Write::Keep);
            }
            if opts.dry_run {
                dry = Some(new);
                return Ok(Write::Keep);
            }
            Ok(Write::Put(new))
        })?;
        match (&written, dry) {
            (Written::Unchanged(_), Some(v)) => Ok((v, written)),
            _ => {
                self.after_write(rt, &written)?;
                let stored = written
                    .stored()
                    .ok_or_else(|| ApiError::Internal("update wrote nothing".into()))?;
                Ok((Self::present(rt, stored)?, written))
            }
        }
    }

    /// Delete an object. With finalizers (including the ones a Foreground or Orphan
    /// propagation adds), the object stays with a `deletionTimestamp` until they are gone.
    pub fn delete(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Deleted, ApiError> {
        let key = Self::key(rt, ns, name);
        let now = now_rfc3339();
        let mut dry = None;
        let written = self.store.write(&key, |cur, _| {
            let cur = cur.ok_or_else(|| Self::not_found(rt, name))?;
            let mut obj = cur.value()?;
            if let Some(uid) = &opts.precondition_uid {
                if uid != &cur.uid {
                    return Err(ApiError::conflict(
                        (&rt.plural, &rt.group),
                        name,
                        &format!(
                            "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                            cur.uid
                        ),
                    ));
                }
            }
            if let Some(rv) = &opts.precondition_rv {
                if rv != &cur.rv.to_string() {
                    return Err(ApiError::conflict(
                        (&rt.plural, &rt.group),
                        name,
                        &format!(
                            "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                            cur.rv
                        ),
                    ));
                }
            }
            let mut fins = finalizers(&obj);
            match opts.propagation {
                Some(Propagation::Foreground) if !fins.iter().any(|f| f == FOREGROUND) => {
                    fins.push(FOREGROUND.into());
                }
                Some(Propagation::Orphan) if !fins.iter().any(|f| f == ORPHAN) => {
                    fins.push(ORPHAN.into());
                }
                _ => {}
            }
            let is_namespace = rt.group.is_empty() && rt.kind == "Namespace";
            if fins.is_empty() && !is_namespace {
                if opts.dry_run {
                    dry = Some(obj);
                    return Ok(Write::Keep);
                }
                return Ok(Write::Delete);
            }
            set_finalizers(&mut obj, &fins);
            let m = meta_mut(&mut obj);
            if !m.contains_key("deletionTimestamp") {
                m.insert("deletionTimestamp".into(), json!(now));
                m.insert("deletionGracePeriodSeconds".into(), json!(0));
            }
            if is_namespace {
                obj["status"]["phase"] = json!("Terminating");
            }
            if opts.dry_run {
                dry = Some(obj);
                return Ok(Write::Keep);
            }
            Ok(Write::Put(obj))
        })?;
        if let Some(v) = dry {
            return Ok(Deleted::Pending(v));
        }
        self.after_write(rt, &written)?;
        match written {
            Written::Deleted(s) => Ok(Deleted::Gone(Self::present(rt, &s)?)),
            Written::Updated(s) | Written::Created(s) => {
                Ok(Deleted::Pending(Self::present(rt, &s)?))
            }
            Written::Unchanged(Some(s)) => Ok(Deleted::Pending(Self::present(rt, &s)?)),
            Written::Unchanged(None) => Err(Self::not_found(rt, name)),
        }
    }

    /// Delete every object matching the list options; returns the deleted (or
    /// now-terminating) objects.
    pub fn delete_collection(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<Vec<Value>, ApiError> {
        let mut unlimited = list.clone();
        unlimited.limit = None;
        unlimited.continue_token = None;
        let items = self.list(rt, ns, &unlimited)?.items;
        let mut out = Vec::new();
        for s in items {
            let ns = (!s.key.namespace.is_empty()).then_some(s.key.namespace.as_str());
            match self.delete(rt, ns, &s.key.name, opts) {
                Ok(Deleted::Gone(v) | Deleted::Pending(v)) => out.push(v),
                Err(ApiError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The `autoscaling/v1` Scale view of an object with a scale subresource.
    pub fn get_scale(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let spec = rt.scale.as_ref().ok_or_else(|| ApiError::NotFound {
            message: format!(
                "the server could not find the requested resource ({}/scale)",
                rt.plural
            ),
            details: Default::default(),
        })?;
        let obj = self.get(rt, ns, name)?;
        let spec_replicas = path_get(&obj, &spec.spec_replicas_path)
            .cloned()
            .unwrap_or(json!(0));
        let status_replicas = path_get(&obj, &spec.status_replicas_path)
            .cloned()
            .unwrap_or(json!(0));
        let selector = spec
            .label_selector_path
            .as_deref()
            .and_then(|p| path_get(&obj, p))
            .and_then(Value::as_str)
            .map(str::to_string)
            .map(Ok)
            .or_else(|| obj.pointer("/spec/selector").map(selector_string))
            .transpose()
            .map_err(|e| ApiError::Internal(format!("{}/{name}: spec.selector: {e}", rt.kind)))?
            .unwrap_or_default();
        let m = meta(&obj).cloned().unwrap_or_default();
        Ok(json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": m.get("name"), "namespace": m.get("namespace"), "uid": m.get("uid"),
                "resourceVersion": m.get("resourceVersion"), "creationTimestamp": m.get("creationTimestamp"),
            },
            "spec": {"replicas": spec_replicas},
            "status": {"replicas": status_replicas, "selector": selector},
        }))
    }

    /// Write the replica count through the scale subresource (PUT or PATCH body already
    /// resolved to a Scale object).
    pub fn set_scale(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        scale: &Value,
        opts: &WriteOptions,
    ) -> Result<Value, ApiError> {
        let spec = rt.scale.clone().ok_or_else(|| ApiError::NotFound {
            message: format!(
                "the server could not find the requested resource ({}/scale)",
                rt.plural
            ),
            details: Default::default(),
        })?;
        let mut scale = scale.clone();
        if let Some(message) = crate::proto::message_for("autoscaling/v1", "Scale") {
            let unknown = fields::prune_object(&message, &mut scale);
            fields::enforce(
                opts.field_validation,
                ("Scale", "v1"),
                &unknown,
                &opts.duplicate_fields,
                &opts.warnings,
            )?;
        }
        let replicas = scale
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .ok_or_else(|| {
                ApiError::invalid(
                    ("Scale", "autoscaling"),
                    name,
                    vec!["spec.replicas: Required value".into()],
                )
            })?;
        if replicas < 0 {
            return Err(ApiError::invalid(
                ("Scale", "autoscaling"),
                name,
                vec![format!(
                    "spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"
                )],
            ));
        }
        let want_rv = scale
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        self.modify(rt, ns, name, Subresource::Main, opts, |old| {
            check_resource_version(rt, name, want_rv.as_deref(), old)?;
            let mut new = old.clone();
            path_set(&mut new, &spec.spec_replicas_path, json!(replicas));
            Ok(new)
        })?;
        self.get_scale(rt, ns, name)
    }
}

/// Optimistic concurrency: a write that names a resourceVersion must name the current one.
/// Fill in the `default`s of a custom resource's schema ([`crate::structural`]).
fn structural_defaults(rt: &ResourceType, obj: &mut Value) {
    if let Some(schema) = &rt.schema {
        crate::structural::default(schema, obj);
    }
}

fn check_resource_version(
    rt: &ResourceType,
    name: &str,
    want: Option<&str>,
    current: &Value,
) -> Result<(), ApiError> {
    match want {
        Some(rv) if Some(rv) != meta_str(current, "resourceVersion") => Err(ApiError::conflict(
            (&rt.plural, &rt.group),
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )),
        _ => Ok(()),
    }
}

pub const FOREGROUND: &str = "foregroundDeletion";
pub const ORPHAN: &str = "orphan";

/// A namespace stays until its `spec.finalizers` are cleared by the namespace controller.
fn namespace_blocked(rt: &ResourceType, obj: &Value) -> bool {
    rt.group.is_empty()
        && rt.kind == "Namespace"
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
}

fn spec_and_meta_equal(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut c = v.clone();
        if let Some(m) = c.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("managedFields");
            m.remove("resourceVersion");
        }
        c
    };
    strip(old) == strip(new)
}

/// Fields clients cannot change on update: identity, creation time, deletion state.
fn preserve_system_metadata(old: &Value, new: &mut Value) {
    let old_meta = meta(old).cloned().unwrap_or_default();
    let m = meta_mut(new);
    for f in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "namespace",
        "name",
    ] {
        match old_meta.get(f) {
            Some(v) => {
                m.insert(f.into(), v.clone());
            }
            None => {
                m.remove(f);
            }
        }
    }
    // Finalizers may only be removed, not added, once deletion started.
    if old_meta.contains_key("deletionTimestamp") {
        let old_f: Vec<Value> = old_meta
            .get("finalizers")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(Value::Array(nf)) = m.get_mut("finalizers") {
            nf.retain(|f| old_f.contains(f));
        }
    }
}

/// uid, creationTimestamp, generation, and cleared status for a new object.
fn prepare_create(rt: &ResourceType, obj: &mut Value, now: &str) {
    if rt.status_subresource {
        if let Some(o) = obj.as_object_mut() {
            o.remove("status");
        }
    }
    let m = meta_mut(obj);
    m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("creationTimestamp".into(), json!(now));
    m.remove("resourceVersion");
    m.remove("deletionTimestamp");
    m.remove("deletionGracePeriodSeconds");
    if rt.has_generation {
        m.insert("generation".into(), json!(1));
    } else {
        m.remove("generation");
    }
}

fn patch_error(rt: &ResourceType, name: &str, e: PatchError) -> ApiError {
    match e {
        PatchError::Conflict(_) => ApiError::Conflict {
            message: format!("Apply failed with {}", e),
            details: crate::error::Details {
                name: name.into(),
                group: rt.group.clone(),
                kind: rt.plural.clone(),
            },
        },
        PatchError::Invalid(msg) => ApiError::invalid((&rt.kind, &rt.group), name, vec![msg]),
    }
}

/// Read a dotted path like `.spec.replicas`.
pub fn path_get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for seg in path
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
    {
        cur = cur.get(seg)?;
    }
    Some(cur)
}

fn path_set(v: &mut Value, path: &str, value: Value) {
    let segs: Vec<&str> = path
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
        .collect();
    let mut cur = v;
    for (i, seg) in segs.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let o = cur.as_object_mut().expect("made an object above");
        if i + 1 == segs.len() {
            o.insert(seg.to_string(), value);
            return;
        }
        cur = o.entry(seg.to_string()).or_insert_with(|| json!({}));
    }
}

/// Render a metav1.LabelSelector as the selector string the scale subresource reports:
/// Kubernetes' `LabelSelectorAsSelector(..).String()`, requirements sorted by key, from the
/// one label-selector implementation. An invalid selector is an error, as in Kubernetes.
pub fn selector_string(sel: &Value) -> Result<String, SelectorError> {
    Ok(LabelSelector::from_label_selector_json(sel)?.to_string())
}

fn encode_continue(ns: &str, name: &str, rv: u64) -> String {
    let raw = json!({"ns": ns, "name": name, "rv": rv}).to_string();
    raw.bytes().map(|b| format!("{b:02x}")).collect()
}

fn decode_continue(token: &str) -> Result<(String, String, u64), ApiError> {
    let bad = || ApiError::BadRequest(format!("continue key is not valid: {token:?}"));
    if !token.len().is_multiple_of(2) || token.len() > 4096 {
        return Err(bad());
    }
    let bytes: Result<Vec<u8>, _> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16))
        .collect();
    let v: Value = serde_json::from_slice(&bytes.map_err(|_| bad())?).map_err(|_| bad())?;
    Ok((
        v.get("ns")
            .and_then(Value::as_str)
            .ok_or_else(bad)?
            .to_string(),
        v.get("name")
            .and_then(Value::as_str)
            .ok_or_else(bad)?
            .to_string(),
        v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_selector_string_is_kubernetes_canonical_form() {
        let sel = json!({"matchLabels": {"tier": "gpu", "app": "web"},
                         "matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["b", "a"]},
                                              {"key": "canary", "operator": "DoesNotExist"}]});
        assert_eq!(
            selector_string(&sel).expect("valid"),
            "app=web,!canary,tier=gpu,zone notin (a,b)"
        );
        assert_eq!(selector_string(&json!({})).expect("empty"), "");
        let err = selector_string(
            &json!({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]}),
        )
        .expect_err("invalid operator");
        assert!(err.to_string().contains("Equals"), "{err}");
    }
}
