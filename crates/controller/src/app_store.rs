//! The Applications the control plane reads, as the Application watch last delivered them
//! (Argo CD's application informer): what the loops that look at every app — the poll,
//! webhooks, the image watcher, project and cluster changes, audits — iterate over.
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

    /// An app changed (`None`: it no longer parses, and is left out).
    pub(crate) fn put(&mut self, key: String, app: Option<Arc<Application>>) {
        if let Some(staged) = &mut self.staged {
            // Changes during a relist belong to the new listing too.
            match &app {
                Some(a) => staged.insert(key.clone(), a.clone()),
                None => staged.remove(&key),
            };
        }
        match app {
            Some(a) => self.apps.insert(key, a),
            None => self.apps.remove(&key),
        };
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
