//! The set of custom Lua health checks, keyed like Argo CD's resource customizations.

use super::lua::{run_named, LuaLimits};
use super::HealthError;
use mooring_core::app::HealthStatus;
use mooring_core::files::{EntryKind, Files};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Largest `health.lua` accepted (bytes). Argo CD's own scripts are under 10 KiB.
pub const MAX_SCRIPT_BYTES: u64 = 256 * 1024;
/// Most scripts one tree or ConfigMap may define.
pub const MAX_SCRIPTS: usize = 10_000;

/// One custom health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// API group pattern (`""` for the core group; `*` matches any run of characters).
    pub group: String,
    /// Kind pattern (`*` matches any run of characters).
    pub kind: String,
    /// Where the script came from, used in every error message: a file path or the
    /// ConfigMap key.
    pub origin: String,
    /// The Lua source.
    pub code: String,
}

impl Script {
    /// Argo CD's key for this script: `group/Kind`, or `Kind` for the core group.
    pub fn key(&self) -> String {
        config_key(&self.group, &self.kind)
    }

    fn is_wildcard(&self) -> bool {
        self.group.contains('*') || self.kind.contains('*')
    }

    /// Run the script against `obj` with `limits`; errors name [`Script::origin`].
    pub fn run(&self, obj: &Value, limits: &LuaLimits) -> Result<HealthStatus, HealthError> {
        run_named(&self.origin, &self.code, obj, limits)
    }
}

fn config_key(group: &str, kind: &str) -> String {
    if group.is_empty() {
        kind.to_string()
    } else {
        format!("{group}/{kind}")
    }
}

/// Custom health checks by group and kind, with Argo CD's wildcard support.
#[derive(Debug, Clone, Default)]
pub struct LuaHealthChecks {
    /// Keyed by Argo CD key (`group/Kind` or `Kind`); later inserts replace earlier ones.
    scripts: BTreeMap<String, Script>,
}

impl LuaHealthChecks {
    /// No custom checks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Load an Argo CD `resource_customizations`-layout tree:
    /// `DIR/<group>/<Kind>/health.lua`, and `DIR/<Kind>/health.lua` for core-group kinds.
    /// In folder names `_` stands for `*` (Argo CD's convention, e.g.
    /// `_.crossplane.io/_/health.lua`); a literal `*` works too. Other files (`actions/`,
    /// `health_test.yaml`, `testdata/`) are ignored. Symlinks are not followed, so nothing
    /// outside `dir` is read. The tree is read through `files` (the binary passes the real
    /// file system, `mooring_source::files::StdFiles`); nothing here touches a disk.
    pub fn load_dir(files: &dyn Files, dir: &Path) -> Result<Self, HealthError> {
        let mut checks = LuaHealthChecks::new();
        for first in read_dir_sorted(files, dir)? {
            if !is_real_dir(files, &first)? {
                continue;
            }
            let first_name = file_name(&first);
            let core_script = first.join("health.lua");
            if is_real_file(files, &core_script)? {
                checks.insert_file(files, "", &first_name, &core_script)?;
            }
            for second in read_dir_sorted(files, &first)? {
                if !is_real_dir(files, &second)? {
                    continue;
                }
                let script = second.join("health.lua");
                if is_real_file(files, &script)? {
                    checks.insert_file(files, &first_name, &file_name(&second), &script)?;
                }
            }
        }
        Ok(checks)
    }

    fn insert_file(
        &mut self,
        files: &dyn Files,
        group: &str,
        kind: &str,
        path: &Path,
    ) -> Result<(), HealthError> {
        let code = read_capped(files, path, MAX_SCRIPT_BYTES)?;
        self.insert(Script {
            group: folder_pattern(group),
            kind: folder_pattern(kind),
            origin: path.display().to_string(),
            code,
        })
    }

    /// Checks from `(group, kind, script)` triples, as in Argo CD's
    /// `resource.customizations.health.<group>_<kind>` ConfigMap keys; `*` is a wildcard.
    pub fn from_scripts<I, G, K, S>(scripts: I) -> Self
    where
        I: IntoIterator<Item = (G, K, S)>,
        G: Into<String>,
        K: Into<String>,
        S: Into<String>,
    {
        let mut checks = LuaHealthChecks::new();
        for (group, kind, code) in scripts.into_iter().take(MAX_SCRIPTS) {
            let (group, kind) = (group.into(), kind.into());
            let origin = format!(
                "resource.customizations.health.{}",
                if group.is_empty() {
                    kind.clone()
                } else {
                    format!("{group}_{kind}")
                }
            );
            checks.scripts.insert(
                config_key(&group, &kind),
                Script {
                    group,
                    kind,
                    origin,
                    code: code.into(),
                },
            );
        }
        checks
    }

    /// Checks from the `data` of an `argocd-cm` ConfigMap: split keys
    /// `resource.customizations.health.<group>_<Kind>` (core kinds: `…health.<Kind>`) and
    /// the older merged `resource.customizations` YAML (`<group>/<Kind>: {health.lua: …}`).
    /// Split keys win over the merged form, as in Argo CD.
    pub fn from_argocd_cm(data: &serde_json::Map<String, Value>) -> Result<Self, HealthError> {
        let mut checks = LuaHealthChecks::new();
        if let Some(merged) = data.get("resource.customizations").and_then(Value::as_str) {
            let parsed =
                mooring_core::yaml::parse_one(merged).map_err(|e| HealthError::Config {
                    key: "resource.customizations".into(),
                    message: e.to_string(),
                })?;
            if let Some(map) = parsed.as_object() {
                for (key, entry) in map {
                    let Some(code) = entry.get("health.lua").and_then(Value::as_str) else {
                        continue;
                    };
                    let (group, kind) = match key.rsplit_once('/') {
                        Some((g, k)) => (g.to_string(), k.to_string()),
                        None => (String::new(), key.clone()),
                    };
                    checks.insert(Script {
                        group,
                        kind,
                        origin: format!("resource.customizations[{key}].health.lua"),
                        code: code.to_string(),
                    })?;
                }
            }
        }
        for (key, value) in data {
            let Some(group_kind) = key.strip_prefix("resource.customizations.health.") else {
                continue;
            };
            let code = value.as_str().ok_or_else(|| HealthError::Config {
                key: key.clone(),
                message: "value is not a string".into(),
            })?;
            let (group, kind) = match group_kind.rsplit_once('_') {
                Some((g, k)) => (g.to_string(), k.to_string()),
                None => (String::new(), group_kind.to_string()),
            };
            checks.insert(Script {
                group,
                kind,
                origin: key.clone(),
                code: code.to_string(),
            })?;
        }
        Ok(checks)
    }

    /// Add or replace one script.
    pub fn insert(&mut self, script: Script) -> Result<(), HealthError> {
        if self.scripts.len() >= MAX_SCRIPTS && !self.scripts.contains_key(&script.key()) {
            return Err(HealthError::Config {
                key: script.origin,
                message: format!("more than {MAX_SCRIPTS} health scripts"),
            });
        }
        self.scripts.insert(script.key(), script);
        Ok(())
    }

    /// Layer `higher` over `self`: its scripts replace any with the same key (use it to put
    /// ConfigMap overrides over a directory tree, Argo CD's precedence).
    pub fn extend(&mut self, higher: LuaHealthChecks) {
        self.scripts.extend(higher.scripts);
    }

    /// Number of scripts.
    pub fn len(&self) -> usize {
        self.scripts.len()
    }

    /// True when there are no scripts.
    pub fn is_empty(&self) -> bool {
        self.scripts.is_empty()
    }

    /// All scripts, in key order.
    pub fn scripts(&self) -> impl Iterator<Item = &Script> {
        self.scripts.values()
    }

    /// The script for `group`/`kind`: an exact key first, else the most specific wildcard
    /// that matches the whole `group/Kind` key (most literal characters; ties broken by key
    /// order, so the answer never depends on load order).
    pub fn lookup(&self, group: &str, kind: &str) -> Option<&Script> {
        let key = config_key(group, kind);
        if let Some(s) = self.scripts.get(&key).filter(|s| !s.is_wildcard()) {
            return Some(s);
        }
        self.scripts
            .values()
            .filter(|s| s.is_wildcard() && glob_match(&s.key(), &key))
            .max_by(|a, b| {
                let lit = |s: &Script| s.key().chars().filter(|c| *c != '*').count();
                lit(a).cmp(&lit(b)).then_with(|| b.key().cmp(&a.key()))
            })
    }
}

/// `_` in a folder name stands for `*`.
fn folder_pattern(name: &str) -> String {
    name.replace('_', "*")
}

/// Glob with `*` (any run of characters, `/` included, as Argo CD's `glob.Match`) and `?`.
/// Hand-written: twenty lines, no other syntax wanted, and no backtracking blow-up (the
/// classic two-pointer algorithm is linear in practice and quadratic at worst).
pub(super) fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

pub(super) fn read_capped(
    files: &dyn Files,
    path: &Path,
    limit: u64,
) -> Result<String, HealthError> {
    let io = |e| HealthError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    let entry = files.entry(path).map_err(io)?;
    if entry.len > limit {
        return Err(HealthError::TooLarge {
            path: path.to_path_buf(),
            size: entry.len,
            limit,
        });
    }
    files.read(path).map_err(io)
}

pub(super) fn read_dir_sorted(files: &dyn Files, dir: &Path) -> Result<Vec<PathBuf>, HealthError> {
    let mut out = files.list(dir).map_err(|e| HealthError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    out.sort();
    Ok(out)
}

/// What `path` is (symlinks not followed), `None` when nothing is there.
pub(super) fn kind(files: &dyn Files, path: &Path) -> Result<Option<EntryKind>, HealthError> {
    match files.entry(path) {
        Ok(e) => Ok(Some(e.kind)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(HealthError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

/// A directory that is not a symlink.
pub(super) fn is_real_dir(files: &dyn Files, path: &Path) -> Result<bool, HealthError> {
    Ok(kind(files, path)? == Some(EntryKind::Dir))
}

/// A regular file that is not a symlink.
pub(super) fn is_real_file(files: &dyn Files, path: &Path) -> Result<bool, HealthError> {
    Ok(kind(files, path)? == Some(EntryKind::File))
}

pub(super) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        assert!(glob_match(
            "*.crossplane.io/*",
            "ec2.aws.crossplane.io/Instance"
        ));
        assert!(glob_match("*", "anything/at all"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("*.crossplane.io/*", "example.com/Thing"));
        assert!(!glob_match(
            "cert-manager.io/Certificate",
            "cert-manager.io/Issuer"
        ));
        assert!(glob_match("**a*b", "xxaxxb"));
    }

    #[test]
    fn exact_beats_wildcard_and_specific_wildcard_beats_general() {
        let checks = LuaHealthChecks::from_scripts([
            ("*", "*", "return {status='Unknown'}"),
            ("*.example.com", "*", "return {status='Degraded'}"),
            ("db.example.com", "Database", "return {status='Healthy'}"),
        ]);
        assert_eq!(
            checks.lookup("db.example.com", "Database").map(Script::key),
            Some("db.example.com/Database".into())
        );
        assert_eq!(
            checks.lookup("cache.example.com", "Redis").map(Script::key),
            Some("*.example.com/*".into())
        );
        assert_eq!(
            checks.lookup("apps", "Deployment").map(Script::key),
            Some("*/*".into())
        );
        assert!(LuaHealthChecks::new()
            .lookup("apps", "Deployment")
            .is_none());
    }

    #[test]
    fn argocd_cm_keys() {
        let data = serde_json::json!({
            "resource.customizations.health.cert-manager.io_Certificate": "return {status='Healthy'}",
            "resource.customizations.health.ConfigMap": "return {status='Healthy'}",
            "resource.customizations": "\"*.crossplane.io/*\":\n  health.lua: |\n    return {status='Progressing'}\n",
        });
        let checks =
            LuaHealthChecks::from_argocd_cm(data.as_object().expect("object")).expect("parses");
        assert_eq!(checks.len(), 3);
        assert!(checks.lookup("cert-manager.io", "Certificate").is_some());
        assert!(checks.lookup("", "ConfigMap").is_some());
        assert_eq!(
            checks
                .lookup("s3.aws.crossplane.io", "Bucket")
                .map(|s| s.origin.as_str()),
            Some("resource.customizations[*.crossplane.io/*].health.lua")
        );
    }
}
