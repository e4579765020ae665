//! Health of Kubernetes resources, with Argo CD's semantics, and the manual for writing
//! custom health checks.
//!
//! # How a resource's health is decided
//!
//! [`assess`] answers, in this order (Argo CD's precedence):
//!
//! 1. an object with `metadata.deletionTimestamp` is **Progressing** "Pending deletion";
//! 2. a custom Lua check for the object's group and kind, when one is configured (an exact
//!    `group/Kind` first, then the most specific wildcard). A script that fails, runs out
//!    of time or memory, or returns something invalid makes the resource **Unknown** with
//!    the error as its message;
//! 3. a built-in rule: Argo CD's for Deployment, StatefulSet, DaemonSet, ReplicaSet, Pod,
//!    PersistentVolumeClaim, Service, Ingress, Job, APIService and HorizontalPodAutoscaler
//!    (same conditions and messages as gitops-engine), and Mooring's for KServe
//!    `serving.kserve.io/InferenceService`, Kubeflow `kubeflow.org/PyTorchJob`, `TFJob`
//!    (and `MPIJob`, `XGBoostJob`, `PaddleJob`, `JAXJob`) and Argo Rollouts `argoproj.io/Rollout` and `AnalysisRun`;
//! 4. otherwise `None`: the kind has no health (a ConfigMap, a Secret, a Role…), and it
//!    does not count towards the application's health.
//!
//! Application health is the worst resource health, in Argo CD's order Healthy < Suspended
//! < Progressing < Missing < Degraded < Unknown ([`HealthStatusCode::worst`]).
//!
//! # Writing a custom health check
//!
//! A check is a Lua script that reads the global `obj` (the live object, converted from
//! JSON: objects and arrays are tables, arrays are 1-based, `null` fields are absent) and
//! returns a table with a `status` and an optional `message`:
//!
//! ```lua
//! local hs = { status = "Progressing", message = "Waiting for certificate" }
//! if obj.status ~= nil and obj.status.conditions ~= nil then
//!   for i, condition in ipairs(obj.status.conditions) do
//!     if condition.type == "Ready" and condition.status == "False" then
//!       hs.status = "Degraded"
//!       hs.message = condition.message
//!       return hs
//!     end
//!     if condition.type == "Ready" and condition.status == "True" then
//!       hs.status = "Healthy"
//!       hs.message = condition.message
//!       return hs
//!     end
//!   end
//! end
//! return hs
//! ```
//!
//! `status` must be one of `Healthy`, `Progressing`, `Suspended`, `Degraded`, `Missing`,
//! `Unknown`; anything else (or returning no table, or a table without `status`) is an
//! error and the resource becomes Unknown with a message that names the script.
//!
//! ## Where scripts live
//!
//! - A directory in Argo CD's `resource_customizations` layout, loaded with
//!   [`LuaHealthChecks::load_dir`] (through the caller's `mooring_core::files::Files`
//!   reader: the real file system in the binary, memory in tests):
//!   `DIR/<group>/<Kind>/health.lua`, or
//!   `DIR/<Kind>/health.lua` for core-group kinds. A folder named with `_` is a wildcard:
//!   `DIR/_.crossplane.io/_/health.lua` applies to every kind of every group ending in
//!   `.crossplane.io` (Argo CD's convention; `*` works too). Argo CD's own tree can be
//!   copied in unchanged.
//! - `argocd-cm` keys, loaded with [`LuaHealthChecks::from_argocd_cm`]:
//!   `resource.customizations.health.<group>_<Kind>` (e.g.
//!   `resource.customizations.health.cert-manager.io_Certificate`, or `…health.ConfigMap`
//!   for the core group) and the older merged `resource.customizations` YAML; keys may use
//!   `*`, e.g. `"*.crossplane.io/*"`.
//!
//! Put ConfigMap scripts over a directory with [`LuaHealthChecks::extend`]. A script for a
//! kind that has a built-in rule (say `apps/Deployment`) replaces the built-in rule.
//!
//! ## Testing scripts
//!
//! Next to each `health.lua` put a `health_test.yaml`, in Argo CD's format:
//!
//! ```yaml
//! tests:
//! - healthStatus:
//!     status: Degraded
//!     message: "Issuing certificate as Secret does not exist"
//!   inputPath: testdata/degraded.yaml
//! ```
//!
//! `mooring health test DIR` ([`run_health_tests`]) runs every case of every folder and
//! judges it as Argo CD's harness does: the script is chosen by the input object's group
//! and kind, and status **and message** must be equal (an omitted message expects the
//! empty string). It prints a table and `N passed, N failed`.
//!
//! ## The Lua environment
//!
//! LuaJIT, i.e. Lua 5.1 plus `goto`; `table.getn` works, as Argo CD's scripts expect.
//! Available: the base functions (`pairs`, `ipairs`, `tostring`, `tonumber`, `type`,
//! `error`, `assert`, `pcall`, `xpcall`, `select`, `unpack`, `next`, `rawget`/`rawset`,
//! `setmetatable`…), `string`, `table`, `math`, `os.time`, `os.date`, `os.clock`,
//! `os.difftime`, and `require` of exactly those modules (`local os = require("os")`
//! works, as in Argo CD). `print` goes to Mooring's debug log.
//!
//! Not available: `io`, `os.execute`/`os.exit`/`os.getenv`/`os.remove` and the rest of
//! `os`, `require` of anything else, `dofile`, `loadfile`, `load`, `loadstring`,
//! `string.dump`, `collectgarbage`, `coroutine`, `debug`, `ffi`, `jit`. (Argo CD enables
//! `string` and `math` only with `useOpenLibs`; Mooring always does, because they are
//! harmless inside these limits and the built-in scripts need them.)
//!
//! ## Limits
//!
//! Each evaluation runs in a fresh Lua state with [`LuaLimits`]: by default 1 s of wall
//! time (Argo CD's figure), 64 MiB of memory, and a deadline check every 1,000 VM
//! instructions. The JIT compiler is off for health scripts, because LuaJIT does not run
//! instruction hooks inside compiled loops; `pcall` cannot catch the time-limit error.
//! Exceeding a limit is an error naming the script. The deadline is checked between VM
//! instructions; a script stuck inside one library call is abandoned on its own thread
//! when the limit (plus a short grace) has passed, and the library calls that could take
//! long are bounded: `string.rep` refuses results over 8 MiB, and `string.find`,
//! `match`, `gmatch` and `gsub` refuse a pattern whose worst case on the given string is
//! too much work (roughly: one quantifier on strings up to 30 KB, two up to 1 KB, more
//! only on short strings; anchoring with `^` helps), with an error naming the function,
//! the pattern and the string's length. At most 32 scripts run at once; past that a
//! script is not run and its object's health is Unknown with a message saying so. See
//! the `lua` module for the details.

mod builtin;
mod checks;
mod harness;
mod lua;
mod ml;

pub use builtin::ANNOTATION_IGNORE_RESTART_POLICY;
pub use checks::{LuaHealthChecks, Script, MAX_SCRIPTS, MAX_SCRIPT_BYTES};
pub use harness::{run_health_tests, run_health_tests_with, HealthTestCase, HealthTestReport};
pub use lua::{run_lua, LuaLimits};
pub use mooring_core::app::{HealthStatus, HealthStatusCode};

use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// Errors of health assessment, custom scripts and the test harness.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("health script {script}: {message}")]
    Lua { script: String, message: String },
    #[error("health script {script}: exceeded its time limit of {limit:?}")]
    Timeout { script: String, limit: Duration },
    #[error("health script {script}: not run: {cap} health scripts are already running (some stuck past their time limit)")]
    Busy { script: String, cap: usize },
    #[error("health script {script}: exceeded its memory limit of {limit} bytes")]
    Memory { script: String, limit: usize },
    #[error("health script {script}: returned invalid health status {status:?} (expected Healthy, Progressing, Suspended, Degraded, Missing or Unknown)")]
    InvalidStatus { script: String, status: String },
    #[error(
        "health script {script}: must return a table {{status=..., message=...}}, returned {found}"
    )]
    BadReturn { script: String, found: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("{key}: {message}")]
    Config { key: String, message: String },
    #[error("{path}: {message}")]
    TestFile { path: PathBuf, message: String },
}

/// `(group, kind)` of an object, from `apiVersion` (`group/version`, or `version` alone for
/// the core group) and `kind`.
pub fn group_kind(obj: &Value) -> (&str, &str) {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    (group, kind)
}

/// Health of one live object, or `None` when its kind has no health (see the module docs
/// for the order of rules). Custom scripts run with the default [`LuaLimits`].
pub fn assess(obj: &Value, custom: Option<&LuaHealthChecks>) -> Option<HealthStatus> {
    assess_with(obj, custom, &LuaLimits::default())
}

/// [`assess`] with explicit limits for custom scripts.
pub fn assess_with(
    obj: &Value,
    custom: Option<&LuaHealthChecks>,
    limits: &LuaLimits,
) -> Option<HealthStatus> {
    if obj
        .get("metadata")
        .and_then(|m| m.get("deletionTimestamp"))
        .is_some_and(|t| !t.is_null())
    {
        return Some(HealthStatus::new(
            HealthStatusCode::Progressing,
            "Pending deletion",
        ));
    }
    let (group, kind) = group_kind(obj);
    if let Some(script) = custom.and_then(|c| c.lookup(group, kind)) {
        return Some(match script.run(obj, limits) {
            Ok(h) => h,
            Err(e) => HealthStatus::new(HealthStatusCode::Unknown, e.to_string()),
        });
    }
    builtin::rule(group, kind)
        .or_else(|| ml::rule(group, kind))
        .map(|rule| rule(obj))
}

/// True when Mooring has a built-in rule for `group`/`kind`.
pub fn has_builtin(group: &str, kind: &str) -> bool {
    builtin::rule(group, kind).is_some() || ml::rule(group, kind).is_some()
}
