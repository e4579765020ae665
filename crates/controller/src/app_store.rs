//! The Applications the control plane reads, as the Application watch last delivered them
//! (Argo CD's application informer): what the loops that look at every app — the poll,
//! webhooks, the image watcher, project and cluster changes, audits — iterate over, and
//! what each reconcile starts from.
//!
//! Why a reconcile reads here rather than the API server: a GET per reconcile was a full
//! read, JSON encode, decode and parse of the app each time (at 10,000 apps, most of a
//! refresh pass's cost on both sides). The store is never older than the controller's own
//! writes ([`AppStore::wrote`]: a write's answer goes in at once, and a watch event never
//! replaces a newer version), and every write by someone else reaches it before the
//! watch queues the app. A reconcile that still reads a version someone has just replaced
//! writes nothing: every status write is conditional on the resourceVersion it read
//! (`Context::guard_writes`), so it fails, and the app is read again.
//!
//! Why: listing every Application from the API server each time one of those loops runs
//! costs a full read, JSON decode and parse of the fleet (at 10,000 apps, tens of MiB and
//! most of a core for each listing, several of which can overlap); the watch already
//! receives every object, so keeping the parsed ones costs one copy, shared by `Arc`.
//!
//! The watch's relist (after a restart or an expired resource version) is staged and
//! swapped in whole when it is done, so an app deleted while the watch was away does not
//! linger. Until the first listing is complete the store is not synced and callers read
//! the API server instead ([`crate::all_apps`]).

use mooring_core::app::Application;
use std::collections::HashMap;
use std::sync::Arc;

/// Parsed Applications by `namespace/name`.
#[derive(Default)]
pub(crate) struct AppStore {
    apps: HashMap<String, Arc<Application>>,
    /// A relist in progress: what it has delivered so far.
    staged: Option<HashMap<String, Arc<Application>>>,
    /// A first listing was complete.
    synced: bool,
}

impl AppStore {
    /// The watch (re)starts listing.
    pub(crate) fn begin_relist(&mut self) {
        self.staged = Some(HashMap::new());
    }

    /// An app of the listing in progress (or a change, outside a listing).
    pub(crate) fn relisted(&mut self, key: String, app: Option<Arc<Application>>) {
        match (&mut self.staged, app) {
            (Some(staged), Some(app)) => {
                staged.insert(key, app);
            }
            // Unparsable: not in the new listing.
            (Some(_), None) => {}
            (None, app) => self.put(key, app),
        }
    }

    /// The listing is complete: it replaces what the store held.
    pub(crate) fn end_relist(&mut self) {
        if let Some(staged) = self.staged.take() {
            self.apps = staged;
            self.synced = true;
        }
    }

    /// An app changed (`None`: it no longer parses, and is left out). A version older
    /// than the one held (a watch event behind a write the controller already stored) is
    /// not taken.
    pub(crate) fn put(&mut self, key: String, app: Option<Arc<Application>>) {
        if let Some(staged) = &mut self.staged {
            // Changes during a relist belong to the new listing too.
            match &app {
                Some(a) if !newer_held(staged.get(&key), a) => {
                    staged.insert(key.clone(), a.clone());
                }
                Some(_) => {}
                None => {
                    staged.remove(&key);
                }
            };
        }
        match app {
            Some(a) if !newer_held(self.apps.get(&key), &a) => {
                self.apps.insert(key, a);
            }
            Some(_) => {}
            None => {
                self.apps.remove(&key);
            }
        };
    }

    /// The controller wrote `app` (the API server's answer): held at once, so the next
    /// reconcile does not start from the version before its own write.
    pub(crate) fn wrote(&mut self, key: String, app: Arc<Application>) {
        let known = self.get(&key).is_some();
        // An app the store does not hold (deleted, or not listed yet) stays out.
        if known {
            self.put(key, Some(app));
        }
    }

    /// The app as last seen (a relist in progress has the newest versions).
    pub(crate) fn get(&self, key: &str) -> Option<Arc<Application>> {
        self.staged
            .as_ref()
            .and_then(|s| s.get(key))
            .or_else(|| self.apps.get(key))
            .cloned()
    }

    /// An app was deleted.
    pub(crate) fn remove(&mut self, key: &str) {
        if let Some(staged) = &mut self.staged {
            staged.remove(key);
        }
        self.apps.remove(key);
    }

    /// Every app, in `namespace/name` order; `None` before the first listing completed.
    pub(crate) fn list(&self) -> Option<Vec<Arc<Application>>> {
        if !self.synced {
            return None;
        }
        let mut keys: Vec<&String> = self.apps.keys().collect();
        keys.sort_unstable();
        Some(keys.into_iter().map(|k| self.apps[k].clone()).collect())
    }
}

/// Whether `held` is a newer version than `app` (resourceVersions compared as numbers, as
/// etcd's and the embedded cluster's are; one that is not a number is never "newer").
fn newer_held(held: Option<&Arc<Application>>, app: &Application) -> bool {
    let rv = |a: &Application| {
        a.metadata
            .get("resourceVersion")
            .and_then(serde_json::Value::as_str)
            .and_then(|s| s.parse::<u64>().ok())
    };
    match (held.and_then(|h| rv(h)), rv(app)) {
        (Some(h), Some(n)) => h > n,
        _ => false,
    }
}

/// The Application a watch delivered, parsed for the store, without its
/// `metadata.managedFields` (nothing that iterates over every app reads them, and they
/// are a good part of each object's size).
pub(crate) fn parse(value: serde_json::Value) -> Option<Arc<Application>> {
    let mut app: Application = serde_json::from_value(value).ok()?;
    if let Some(meta) = app.metadata.as_object_mut() {
        meta.remove("managedFields");
    }
    Some(Arc::new(app))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app(name: &str) -> Option<Arc<Application>> {
        parse(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": "argocd",
                "managedFields": [{"manager": "kubectl", "operation": "Update"}]},
            "spec": {"project": "default", "source": {"repoURL": "https://g/r.git", "path": "p"},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": "n"}}
        }))
    }

    fn at(name: &str, rv: &str) -> Option<Arc<Application>> {
        let mut a = app(name)?;
        Arc::make_mut(&mut a).metadata["resourceVersion"] = json!(rv);
        Some(a)
    }

    fn rv_of(s: &AppStore, key: &str) -> Option<String> {
        s.get(key)
            .and_then(|a| a.metadata["resourceVersion"].as_str().map(str::to_string))
    }

    #[test]
    fn a_write_is_held_at_once_and_an_older_watch_event_does_not_replace_it() {
        let mut s = AppStore::default();
        s.begin_relist();
        s.relisted("argocd/a".into(), at("a", "5"));
        s.end_relist();
        // The controller's write (rv 7) is held before its watch event arrives; the
        // event of an earlier write (rv 6) comes after it and is not taken.
        s.wrote("argocd/a".into(), at("a", "7").expect("parses"));
        assert_eq!(rv_of(&s, "argocd/a").as_deref(), Some("7"));
        s.put("argocd/a".into(), at("a", "6"));
        assert_eq!(rv_of(&s, "argocd/a").as_deref(), Some("7"));
        s.put("argocd/a".into(), at("a", "8"));
        assert_eq!(rv_of(&s, "argocd/a").as_deref(), Some("8"));
        // A write to an app the store does not hold (deleted meanwhile) is not kept.
        s.wrote("argocd/gone".into(), at("gone", "9").expect("parses"));
        assert_eq!(s.get("argocd/gone"), None);
        // During a relist, the relisted version is the one read.
        s.begin_relist();
        s.relisted("argocd/a".into(), at("a", "10"));
        assert_eq!(rv_of(&s, "argocd/a").as_deref(), Some("10"));
        s.end_relist();
        assert_eq!(rv_of(&s, "argocd/a").as_deref(), Some("10"));
    }

    fn names(s: &AppStore) -> Option<Vec<String>> {
        s.list()
            .map(|v| v.iter().map(|a| a.name().to_string()).collect())
    }

    #[test]
    fn not_synced_until_the_first_listing_is_done() {
        let mut s = AppStore::default();
        assert_eq!(names(&s), None);
        s.begin_relist();
        s.relisted("argocd/a".into(), app("a"));
        assert_eq!(names(&s), None);
        s.end_relist();
        assert_eq!(names(&s), Some(vec!["a".to_string()]));
    }

    #[test]
    fn a_relist_drops_apps_deleted_while_away() {
        let mut s = AppStore::default();
        s.begin_relist();
        s.relisted("argocd/a".into(), app("a"));
        s.relisted("argocd/b".into(), app("b"));
        s.end_relist();
        // The watch restarts; b was deleted meanwhile, c created.
        s.begin_relist();
        s.relisted("argocd/a".into(), app("a"));
        // Until the relist is done, the old listing is served.
        assert_eq!(names(&s), Some(vec!["a".to_string(), "b".to_string()]));
        s.relisted("argocd/c".into(), app("c"));
        s.end_relist();
        assert_eq!(names(&s), Some(vec!["a".to_string(), "c".to_string()]));
    }

    #[test]
    fn changes_and_deletes_apply_during_and_outside_a_relist() {
        let mut s = AppStore::default();
        s.begin_relist();
        s.end_relist();
        s.put("argocd/a".into(), app("a"));
        s.put("argocd/b".into(), app("b"));
        s.remove("argocd/a");
        assert_eq!(names(&s), Some(vec!["b".to_string()]));
        s.begin_relist();
        s.put("argocd/d".into(), app("d"));
        s.end_relist();
        assert_eq!(names(&s), Some(vec!["d".to_string()]));
        // An app edited into one that does not parse leaves the store.
        s.put("argocd/d".into(), None);
        assert_eq!(names(&s), Some(vec![]));
    }

    #[test]
    fn managed_fields_are_not_kept() {
        let a = app("a").expect("parses");
        assert!(a.metadata.get("managedFields").is_none());
        assert_eq!(a.metadata["name"], "a");
    }
}
