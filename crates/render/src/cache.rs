//! The render cache: manifests by (repository, commit, path, source options), and reuse
//! of a render across commits that do not touch the application's inputs.

use crate::RenderError;
use mooring_core::app::ApplicationSource;
use serde_json::Value;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

/// What a render depends on. Two sources that render alike (same repo, commit, path and
/// the same directory/kustomize/helm/plugin options) share one key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey {
    pub repo_url: String,
    pub commit: String,
    pub path: String,
    /// Hash of the rendering options of the source (everything but repo, revision and path).
    pub options_hash: String,
}

impl CacheKey {
    /// The same application at another commit.
    pub fn at_commit(&self, commit: &str) -> CacheKey {
        CacheKey {
            commit: commit.into(),
            ..self.clone()
        }
    }

    /// This key for a render that also read the trees of `ref` sources (Helm
    /// `$NAME/path` value files of a multi-source app): each `(name, repo, commit)` is
    /// folded into the options hash, so a new commit of a values repository is a new key
    /// (and, through [`CacheKey::at_commit`], never matches a render made with the old
    /// values). No refs: the key is unchanged.
    pub fn with_refs<'a>(
        mut self,
        refs: impl IntoIterator<Item = (&'a str, &'a str, &'a str)>,
    ) -> CacheKey {
        let mut refs: Vec<(&str, &str, &str)> = refs.into_iter().collect();
        if refs.is_empty() {
            return self;
        }
        refs.sort_unstable();
        let mut h = DefaultHasher::new();
        self.options_hash.hash(&mut h);
        refs.hash(&mut h);
        self.options_hash = format!("{:016x}", h.finish());
        self
    }
}

impl CacheKey {
    /// This key for a render that merged the application's own parameter file
    /// (`.argocd-source-<app>.yaml`): the name is folded into the options hash, so two
    /// applications rendering the same path share a render only when neither has its own
    /// file.
    pub fn with_app(mut self, app_name: &str) -> CacheKey {
        let mut h = DefaultHasher::new();
        self.options_hash.hash(&mut h);
        "app-parameter-file".hash(&mut h);
        app_name.hash(&mut h);
        self.options_hash = format!("{:016x}", h.finish());
        self
    }
}

/// A rendered application, shared between readers.
pub type Manifests = Arc<Vec<Value>>;

struct Entry {
    manifests: Manifests,
    last_used: u64,
}

/// An in-memory, size-bounded (least recently used out) cache of renders. Errors are never
/// cached: a failed render is retried on the next refresh.
pub struct RenderCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<CacheKey, Entry>,
    clock: u64,
}

impl Default for RenderCache {
    /// Room for 1,024 renders.
    fn default() -> Self {
        RenderCache::new(1024)
    }
}

impl RenderCache {
    pub fn new(capacity: usize) -> Self {
        RenderCache {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The key of `source` rendered at `commit` (repo and path are taken as given, so the
    /// caller may pass normalized forms).
    pub fn key_for(repo: &str, commit: &str, path: &str, source: &ApplicationSource) -> CacheKey {
        CacheKey {
            repo_url: repo.into(),
            commit: commit.into(),
            path: normalize_path(path),
            options_hash: options_hash(source),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves a consistent map (every mutation is a
        // single insert/remove), so a poisoned lock is safe to keep using.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &CacheKey) -> Option<Manifests> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        inner.entries.get_mut(key).map(|e| {
            e.last_used = now;
            e.manifests.clone()
        })
    }

    pub fn insert(&self, key: CacheKey, manifests: Manifests) {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        if !inner.entries.contains_key(&key) && inner.entries.len() >= self.capacity {
            if let Some(oldest) = inner
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
            {
                inner.entries.remove(&oldest);
            }
        }
        inner.entries.insert(
            key,
            Entry {
                manifests,
                last_used: now,
            },
        );
    }

    /// The cached render for `key`, or the result of `render` (cached when it succeeds).
    /// The lock is not held while rendering; two concurrent misses on one key both render.
    pub fn get_or_render(
        &self,
        key: &CacheKey,
        render: impl FnOnce() -> Result<Vec<Value>, RenderError>,
    ) -> Result<Manifests, RenderError> {
        if let Some(m) = self.get(key) {
            return Ok(m);
        }
        let m = Arc::new(render()?);
        self.insert(key.clone(), m.clone());
        Ok(m)
    }

    /// Reuse the render of `previous` for the same application at `commit`, when the
    /// caller has established (with [`crate::kustomize_inputs`] and
    /// [`crate::inputs_touched`]) that the commits differ only outside the application's
    /// inputs. Returns the reused manifests, or `None` if `previous` is not cached.
    pub fn reuse(&self, previous: &CacheKey, commit: &str) -> Option<Manifests> {
        let m = self.get(previous)?;
        self.insert(previous.at_commit(commit), m.clone());
        Some(m)
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&self) {
        self.lock().entries.clear();
    }

    /// Drop every render of `repo_url` (a hard refresh: the next comparison renders
    /// again, as Argo CD's `refresh: hard` invalidates the repo-server's manifest cache).
    pub fn forget_repo(&self, repo_url: &str) {
        self.lock().entries.retain(|k, _| k.repo_url != repo_url);
    }
}

fn normalize_path(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

/// Hash of what, besides repo/commit/path, changes a render. The hasher is process-local
/// (the cache lives in memory), so its algorithm may change between builds.
fn options_hash(source: &ApplicationSource) -> String {
    let relevant = serde_json::json!({
        "chart": source.chart,
        "directory": source.directory,
        "kustomize": source.kustomize,
        "helm": source.helm,
        "plugin": source.plugin,
    });
    let mut h = DefaultHasher::new();
    relevant.to_string().hash(&mut h);
    format!("{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mooring_core::app::KustomizeSource;

    #[test]
    fn keys_follow_options() {
        let mut s = ApplicationSource::default();
        let a = RenderCache::key_for("r", "c1", "./apps/a/", &s);
        assert_eq!(a.path, "apps/a");
        s.kustomize = Some(KustomizeSource {
            name_prefix: Some("x-".into()),
            ..Default::default()
        });
        let b = RenderCache::key_for("r", "c1", "apps/a", &s);
        assert_ne!(a, b);
        s.target_revision = Some("main".into());
        assert_eq!(b, RenderCache::key_for("r", "c1", "apps/a", &s));
    }

    #[test]
    fn ref_commits_are_part_of_the_key() {
        let s = ApplicationSource::default();
        let k = RenderCache::key_for("r", "c1", "charts/a", &s);
        assert_eq!(k.clone().with_refs([]), k);
        let v1 = k.clone().with_refs([("values", "https://v", "v1")]);
        let v2 = k.clone().with_refs([("values", "https://v", "v2")]);
        assert_ne!(v1, k);
        assert_ne!(
            v1, v2,
            "a new commit of the values repository is a new render"
        );
        assert_eq!(
            v1,
            k.clone().with_refs([("values", "https://v", "v1")]),
            "stable"
        );
        let both = k
            .clone()
            .with_refs([("a", "https://a", "1"), ("b", "https://b", "2")]);
        assert_eq!(
            both,
            k.with_refs([("b", "https://b", "2"), ("a", "https://a", "1")]),
            "order does not matter"
        );
        // Reuse across commits of the chart keeps the refs: the previous render with
        // other values is a different key.
        assert_ne!(v2.at_commit("c0"), v1.at_commit("c0"));
    }

    #[test]
    fn caches_successes_evicts_oldest_and_reuses() {
        let cache = RenderCache::new(2);
        let s = ApplicationSource::default();
        let k1 = RenderCache::key_for("r", "c1", "a", &s);
        let mut calls = 0;
        for _ in 0..2 {
            cache
                .get_or_render(&k1, || {
                    calls += 1;
                    Ok(vec![serde_json::json!({"kind": "A"})])
                })
                .expect("render");
        }
        assert_eq!(calls, 1);
        assert!(cache
            .get_or_render(&k1.at_commit("bad"), || Err(RenderError::KustomizeMissing))
            .is_err());
        assert_eq!(cache.len(), 1, "errors are not cached");
        let reused = cache.reuse(&k1, "c2").expect("cached");
        assert_eq!(reused.len(), 1);
        assert!(cache.get(&k1.at_commit("c2")).is_some());
        cache.insert(k1.at_commit("c3"), Arc::new(Vec::new()));
        assert_eq!(cache.len(), 2);
    }
}
