//! Diff: is a live object what Git says it should be, and if not, what differs?
//!
//! [`diff`] is a pure function of two JSON values (the rendered *desired* manifest and the
//! *live* object read from the cluster) plus the Application's `spec.ignoreDifferences`.
//! It answers Synced or OutOfSync the way an Argo CD user expects, and renders a
//! unified diff for people. Nothing here does I/O; everything is tested with fixtures in
//! `crates/engine/tests/fixtures/diff/`.
//!
//! # How a diff is computed
//!
//! 1. **Identity.** The [`ResourceKey`] comes from `apiVersion` (its group), `kind`,
//!    `metadata.namespace` and `metadata.name` of the desired object, or of the live one
//!    when there is nothing in Git ([`key_of`]).
//! 2. **Normalisation** of both sides: `status` is dropped, and so is metadata the API
//!    server sets (`uid`, `resourceVersion`, `generation`, `creationTimestamp`,
//!    `managedFields`, `selfLink`, `deletionTimestamp`, `deletionGracePeriodSeconds`, and
//!    `ownerReferences` unless the desired object declares some), plus the annotations
//!    `kubectl.kubernetes.io/last-applied-configuration` and
//!    `deployment.kubernetes.io/revision`. A Secret's `stringData` is folded into `data`
//!    (base64), as the API server does on write.
//! 3. **`managedFieldsManagers`.** For each matching ignoreDifferences entry, the fields
//!    that the named managers own in the live object's `metadata.managedFields` (any
//!    operation) are copied from live into desired: those managers win, so e.g. an HPA
//!    controller's `replicas` or a webhook's injected field is not drift. Managers with
//!    no entry in `managedFields` own nothing, and nothing is copied.
//! 4. **`jsonPointers` and `jqPathExpressions`.** Every matching entry's RFC 6901 pointers
//!    are removed from both sides (a pointer to an absent field is fine; a malformed one
//!    is [`DiffError::BadJsonPointer`]). Every jq expression is evaluated as `path(EXPR)`
//!    on each side separately, and the paths it yields are removed from that side. An
//!    expression that does not parse is [`DiffError::JqParse`]; one that fails at run time
//!    on a side (say `.[]` over an absent list) removes nothing there, as in Argo CD; one
//!    that runs away is stopped and is [`DiffError::JqLimit`] (see the `jq` module: step
//!    budget, one-second deadline, stack guard, a 32 MiB memory budget, text conversions
//!    capped at 4 MiB, at most 10,000 paths; `*` and string interpolation refused).
//!    Entries match by group (`""` = core) and kind, and by name and namespace when set;
//!    `*` matches anything.
//! 5. **Projection.** The API server fills in defaults that Git never states, so the live
//!    object is projected onto the desired object's shape: every field the desired object
//!    sets must be equal in live; extra live map fields are ignored, **except** fields
//!    owned by [`DiffOptions::manager`] with `operation: Apply` in the live object's
//!    managedFields (FieldsV1). Those were applied by Mooring from an earlier revision, so
//!    their absence from Git means "removed from Git" and is drift (for example a label
//!    deleted from the manifest).
//!    * Keyed lists (items are objects with a unique `name`, or `containerPort`, `port`,
//!      `mountPath`, `devicePath`, `ip`, `topologyKey`; this covers containers, env,
//!      ports, volumes, volumeMounts, …) compare item by item by key, in any order. An
//!      extra live item *is* drift: the API server never adds list items, another actor
//!      did (an injected sidecar is the classic case; ignore it with a jq expression such
//!      as `.spec.template.spec.containers[] | select(.name == "istio-proxy")`).
//!    * Other lists compare element by element and must have the same length.
//! 6. **Equality.** `null`, `{}`, `[]` and a missing field are all "unset" and equal. A
//!    desired zero value (`false`, `0`, `""`) also equals a missing live field, because
//!    the API server drops zero values of `omitempty` fields (`hostNetwork: false`).
//!    Numbers compare by value (`1 == 1.0`). Under `resources`, `limits`, `requests`,
//!    `hard`, `capacity`, `allocatable`, `overhead` and `sizeLimit`, values compare as
//!    Kubernetes quantities (`0.5` = `500m`, `1Gi` = `1073741824`). Anything else must be
//!    equal as JSON.
//! 7. **Status.** Synced when equal. No live object → OutOfSync (Missing). No desired
//!    object but a live one → OutOfSync; the resource requires pruning
//!    ([`ResourceDiff::requires_pruning`]).
//! 8. **Masking.** For `v1` Secrets, `data` and `stringData` values are replaced in
//!    [`ResourceDiff::desired`], [`ResourceDiff::live`] and [`ResourceDiff::unified`] by
//!    `+` runs whose lengths differ between different values ([`mask_secret`]). Whether
//!    the resource is a Secret is read from the objects as given (either side), so an
//!    entry that removes `kind` or `apiVersion` does not turn masking off. The
//!    comparison itself uses the real values, so a changed value is still OutOfSync. No
//!    error message ever quotes a value of a Secret.
//! 9. **Unified diff.** The YAML renderings of the projected live object (`--- live`) and
//!    of the desired object (`+++ desired`), three lines of context; empty when Synced.
//!    Where live and desired agree by value but are spelled differently (`500m` vs
//!    `0.5`), the projected live object uses the desired spelling, so only real changes
//!    appear.
//!
//! # Applying with `RespectIgnoreDifferences=true`
//!
//! The same entries can also shape what a sync applies: [`respect_ignored`] gives the
//! desired object the live value of every field they select (see the `respect` module).
//!
//! # What is approximate
//!
//! * Defaults are recognised structurally (projection), not from OpenAPI schemas: a field
//!   that Git sets to exactly the server default is fine, but a field that Git sets and the
//!   server *rewrites* (other than numbers and quantities) shows as drift.
//! * Keyed lists are recognised by the key names above, not by the schema's
//!   `x-kubernetes-list-map-keys`; a list whose items share a name falls back to
//!   element-by-element comparison. Multi-field keys (`containerPort` + `protocol`) are
//!   reduced to the first field.
//! * A desired zero value matching an absent live field can hide an out-of-band removal
//!   of a pointer field whose default is not zero (`automountServiceAccountToken: false`
//!   deleted by hand reads as Synced); the alternative, permanent drift on every
//!   `omitempty` zero value, is worse.
//! * `apiVersion` is compared as written: the caller must read the live object at the
//!   desired object's version.
//! * Managed-field ownership needs the live object's `metadata.managedFields`; without
//!   it (client-side apply) a field removed from Git is not detected, as with Argo CD's
//!   default diff when the last-applied annotation is missing.

mod compare;
mod ignore;
mod jq;
mod list_key;
mod managed;
mod mask;
mod normalize;
mod path;
#[cfg(test)]
mod proptests;
pub mod quantity;
mod render;
mod respect;

pub use jq::{
    MAX_EXPR_BYTES as JQ_MAX_EXPR_BYTES, MAX_PATHS as JQ_MAX_PATHS, TIMEOUT as JQ_TIMEOUT,
};
pub use mask::mask_secret;
pub use respect::respect_ignored;

use mooring_core::app::{ResourceIgnoreDifferences, SyncStatusCode};
use mooring_core::ResourceKey;
use serde_json::Value;

/// What a diff honours besides the two objects.
#[derive(Debug, Clone, Copy, Default)]
pub struct DiffOptions<'a> {
    /// The Application's `spec.ignoreDifferences`.
    pub ignore: &'a [ResourceIgnoreDifferences],
    /// Field manager Mooring applies with (server-side apply), e.g. `"mooring"`.
    pub manager: Option<&'a str>,
}

/// The outcome of comparing one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceDiff {
    pub key: ResourceKey,
    /// Synced or OutOfSync (missing live, or live to prune, are OutOfSync).
    pub status: SyncStatusCode,
    /// Normalised desired object as compared, Secret values masked.
    pub desired: Option<Value>,
    /// Normalised live object projected as compared, Secret values masked.
    pub live: Option<Value>,
    /// `--- live` / `+++ desired` unified diff of the YAML renderings; empty when Synced.
    pub unified: String,
}

impl ResourceDiff {
    /// Live but not in Git: pruning would delete it.
    pub fn requires_pruning(&self) -> bool {
        self.desired.is_none() && self.live.is_some()
    }

    /// In Git but not live.
    pub fn is_missing(&self) -> bool {
        self.live.is_none() && self.desired.is_some()
    }
}

/// Why a diff could not be computed. Messages name the offending input (an expression, a
/// pointer) and never contain values of the objects.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    #[error("nothing to compare: neither a desired nor a live object")]
    NoObject,
    #[error("object has no {0}: cannot identify it")]
    NoIdentity(&'static str),
    #[error("ignoreDifferences: invalid JSON pointer {pointer:?}: {reason}")]
    BadJsonPointer { pointer: String, reason: String },
    #[error("ignoreDifferences: invalid jq path expression {expr:?}: {reason}")]
    JqParse { expr: String, reason: String },
    #[error("ignoreDifferences: jq path expression {expr:?} failed: {reason}")]
    JqEval { expr: String, reason: String },
    #[error("ignoreDifferences: jq path expression {expr:?} was stopped: it {reason}")]
    JqLimit { expr: String, reason: String },
    #[error("cannot render the diff as YAML: {0}")]
    Render(String),
}

fn identify(obj: &Value) -> Result<ResourceKey, DiffError> {
    if obj
        .get("kind")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(DiffError::NoIdentity("kind"));
    }
    ResourceKey::of(obj).ok_or(DiffError::NoIdentity("metadata.name"))
}

/// Compare a desired object (from Git; `None` when Git no longer has it) with the live
/// object (`None` when the cluster does not have it). See the module docs for the rules.
pub fn diff(
    desired: Option<&Value>,
    live: Option<&Value>,
    opts: &DiffOptions,
) -> Result<ResourceDiff, DiffError> {
    let key = match (desired, live) {
        (Some(d), _) => identify(d)?,
        (None, Some(l)) => identify(l)?,
        (None, None) => return Err(DiffError::NoObject),
    };
    let rules: Vec<&ResourceIgnoreDifferences> = opts
        .ignore
        .iter()
        .filter(|r| ignore::matches(r, &key))
        .collect();
    ignore::validate(&rules)?;
    // Decided on the objects as given: an ignore rule may remove `kind` or `apiVersion`
    // from the compared sides, and the values must stay masked all the same.
    let secret =
        desired.is_some_and(normalize::is_secret) || live.is_some_and(normalize::is_secret);

    let keep_owner_refs = desired.is_some_and(|d| d.pointer("/metadata/ownerReferences").is_some());
    let mut want = desired.map(|d| normalize::normalize(d, keep_owner_refs));
    let mut have = live.map(|l| normalize::normalize(l, keep_owner_refs));

    // 3. managedFieldsManagers: those managers' live values win.
    if let (Some(want), Some(have), Some(raw_live)) = (want.as_mut(), have.as_ref(), live) {
        let managers: Vec<&str> = rules
            .iter()
            .flat_map(|r| r.managed_fields_managers.iter().map(String::as_str))
            .collect();
        if !managers.is_empty() {
            let owned = managed::owned_by(raw_live, &managers, false);
            take_owned_except_identity(want, have, &owned);
        }
    }

    // 4. jsonPointers and jqPathExpressions, each side on its own.
    if !rules.is_empty() {
        let mut sides: Vec<&mut Value> = [want.as_mut(), have.as_mut()]
            .into_iter()
            .flatten()
            .collect();
        ignore::apply(&rules, &mut sides, secret)?;
    }

    // 5–7. Projection, equality, status.
    let (status, have) = match (&want, have) {
        (Some(w), Some(h)) => {
            let owned = match (opts.manager, live) {
                (Some(m), Some(raw_live)) => Some(managed::owned_by(raw_live, &[m], true)),
                _ => None,
            };
            let projected = compare::project(&h, w, owned.as_ref(), compare::Ctx::default());
            let status = if compare::equal(w, &projected, compare::Ctx::default()) {
                SyncStatusCode::Synced
            } else {
                SyncStatusCode::OutOfSync
            };
            (status, Some(projected))
        }
        (_, h) => (SyncStatusCode::OutOfSync, h),
    };

    // 8. Masking, shared between the sides so a changed value still shows.
    let mut have = have;
    if secret {
        mask::mask_secret_sides(&mut [want.as_mut(), have.as_mut()]);
    }

    // 9. Unified diff.
    let unified = if status == SyncStatusCode::Synced {
        String::new()
    } else {
        let text = |v: &Option<Value>| v.as_ref().map(render::yaml).transpose();
        let (l, d) = (text(&have)?, text(&want)?);
        render::unified(l.as_deref().unwrap_or(""), d.as_deref().unwrap_or(""))
    };

    Ok(ResourceDiff {
        key,
        status,
        desired: want,
        live: have,
        unified,
    })
}

/// `take_owned`, but never for `apiVersion`, `kind` and `metadata.name`/`namespace`:
/// those identify the object and no manager can change them.
fn take_owned_except_identity(want: &mut Value, have: &Value, owned: &managed::Fields) {
    // A tree that lists nothing is what managers that own nothing (no managedFields entry
    // of theirs) leave. At the root it must not read as a leaf, "owned whole": no manager
    // owns an object whole, and taking the whole live object would hide every change.
    if owned.is_leaf() {
        return;
    }
    let identity = |w: &Value| {
        (
            w.get("apiVersion").cloned(),
            w.get("kind").cloned(),
            w.pointer("/metadata/name").cloned(),
            w.pointer("/metadata/namespace").cloned(),
        )
    };
    let before = identity(want);
    managed::take_owned(want, have, owned);
    if identity(want) != before {
        let (api, kind, name, ns) = before;
        if let Some(m) = want.as_object_mut() {
            for (k, v) in [("apiVersion", api), ("kind", kind)] {
                match v {
                    Some(v) => m.insert(k.to_string(), v),
                    None => m.shift_remove(k),
                };
            }
        }
        if let Some(Value::Object(meta)) = want.get_mut("metadata") {
            for (k, v) in [("name", name), ("namespace", ns)] {
                match v {
                    Some(v) => meta.insert(k.to_string(), v),
                    None => meta.shift_remove(k),
                };
            }
        }
    }
}
