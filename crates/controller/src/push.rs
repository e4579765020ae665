//! Which objects a push concerns: pure functions over the Application and ApplicationSet
//! lists, shared by the controller's own webhook path (`mooring up`, one process:
//! [`crate::Context::refresh_for_push`] queues them) and the standalone server (`mooring
//! server`, another process: it sets Argo CD's refresh annotations on them, which the
//! controller honours, as Argo CD's API server does).
//!
//! - A Git push concerns an Application when one of its sources names the pushed
//!   repository (directly or through a repository alias), tracks the pushed branch or tag
//!   (or `HEAD`), and — when the payload lists the changed files — has its path touched
//!   (a path-less `ref` source lends files anywhere in its repository).
//! - A Git push concerns an ApplicationSet when one of its git generators (at any depth:
//!   matrix, merge) reads the pushed repository.
//! - A registry push concerns an Application whose Image Updater `image-list`
//!   annotation names a pushed repository path. Across processes the server records the
//!   paths in [`REGISTRY_PUSH_ANNOTATION`]; the image watcher reads and removes it.

use mooring_core::app::Application;
use mooring_source::webhook::{normalize_repo_url, touches, PushEvent};
use serde_json::Value;
use std::collections::BTreeSet;

/// Argo CD's refresh request on an ApplicationSet (`"true"`), removed once served.
pub const APPSET_REFRESH_ANNOTATION: &str = "argocd.argoproj.io/application-set-refresh";

/// Repository paths (comma-separated) a registry announced pushes to, set by a
/// standalone `mooring server` on the Applications watching them; the image watcher checks
/// their images at once and removes the annotation.
pub const REGISTRY_PUSH_ANNOTATION: &str = "mooring.dev/registry-push";

/// Image Updater's annotation listing an Application's watched images.
pub const IMAGE_LIST_ANNOTATION: &str = "argocd-image-updater.argoproj.io/image-list";

/// The URL fetched for a repository URL named in a manifest: the alias target when one
/// of `aliases` (`[from, to]`) names it (git's `insteadOf`), else the URL itself.
pub fn fetch_url(aliases: &[(String, String)], url: &str) -> String {
    let norm = normalize_repo_url(url);
    aliases
        .iter()
        .find(|(from, _)| normalize_repo_url(from) == norm)
        .map(|(_, to)| to.clone())
        .unwrap_or_else(|| url.to_string())
}

/// The pushed repository's URLs, normalised.
pub fn pushed_urls(event: &PushEvent) -> Vec<String> {
    event
        .repo_urls
        .iter()
        .map(|u| normalize_repo_url(u))
        .collect()
}

/// What a Git push concerns among the Applications.
#[derive(Debug, Default, PartialEq)]
pub struct Concerned {
    /// `namespace/name` of every concerned Application.
    pub apps: Vec<String>,
    /// Normalised fetch URLs whose cached revision resolutions are stale now.
    pub stale: Vec<String>,
}

/// The Applications a Git push concerns (see the module docs).
pub fn apps_for_push<A: std::borrow::Borrow<Application>>(
    apps: &[A],
    event: &PushEvent,
    aliases: &[(String, String)],
) -> Concerned {
    let pushed = pushed_urls(event);
    let mut out = Concerned::default();
    let mut stale = BTreeSet::new();
    for app in apps.iter().map(A::borrow) {
        let mut concerned = false;
        for src in app.sources() {
            let names = [src.repo_url.clone(), fetch_url(aliases, &src.repo_url)];
            if !names
                .iter()
                .any(|u| pushed.contains(&normalize_repo_url(u)))
            {
                continue;
            }
            stale.insert(normalize_repo_url(&names[1]));
            let target = src.target_revision.as_deref().unwrap_or("HEAD");
            let same_ref = matches!(target, "" | "HEAD")
                || event.branch() == Some(target)
                || event.tag() == Some(target)
                || event.git_ref == target;
            if !same_ref {
                continue;
            }
            let path = src.path.as_deref().unwrap_or(".");
            if let Some(files) = &event.changed_files {
                if src.ref_.is_none() && !touches(files, path) {
                    continue;
                }
            }
            concerned = true;
        }
        if concerned {
            out.apps.push(format!("{}/{}", app.namespace(), app.name()));
        }
    }
    out.stale = stale.into_iter().collect();
    out
}

/// The `(repoURL, revision)` of every git generator in `generators`, at any depth.
pub fn git_generator_sources(generators: &Value, out: &mut BTreeSet<(String, String)>) {
    match generators {
        Value::Object(o) => {
            if let Some(g) = o.get("git") {
                if let Some(url) = g.get("repoURL").and_then(Value::as_str) {
                    let rev = g
                        .get("revision")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    out.insert((url.to_string(), rev.to_string()));
                }
            }
            o.values().for_each(|x| git_generator_sources(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| git_generator_sources(x, out)),
        _ => {}
    }
}

/// `namespace/name` of the ApplicationSets (raw objects) whose git generators read a
/// pushed repository (`pushed`: normalised URLs).
pub fn appsets_for_push(
    sets: &[Value],
    pushed: &[String],
    aliases: &[(String, String)],
) -> Vec<String> {
    sets.iter()
        .filter(|v| {
            let mut sources = BTreeSet::new();
            git_generator_sources(&v["spec"]["generators"], &mut sources);
            sources.iter().any(|(url, _)| {
                [url.clone(), fetch_url(aliases, url)]
                    .iter()
                    .any(|u| pushed.contains(&normalize_repo_url(u)))
            })
        })
        .map(object_key)
        .collect()
}

/// `namespace/name` of the Applications (raw objects) whose `image-list` annotation names
/// one of the pushed repository paths (matched by path, as [`crate::image::Trigger`]).
pub fn apps_for_registry_push(apps: &[Value], repositories: &[String]) -> Vec<String> {
    apps.iter()
        .filter(|v| {
            let Some(list) = v["metadata"]["annotations"][IMAGE_LIST_ANNOTATION].as_str() else {
                return false;
            };
            list.split(',').any(|entry| {
                // `[alias=]registry/path[:constraint]`
                let image = entry.trim().rsplit('=').next().unwrap_or_default();
                let image = image_name(image);
                repositories
                    .iter()
                    .any(|r| !r.is_empty() && (image == r || image.ends_with(&format!("/{r}"))))
            })
        })
        .map(object_key)
        .collect()
}

/// An image reference without its tag, digest or version constraint (a registry's port
/// stays: only a `:` or `@` after the last `/` starts one).
fn image_name(image: &str) -> &str {
    let last = image.rfind('/').map_or(0, |i| i + 1);
    match image[last..].find([':', '@']) {
        Some(i) => &image[..last + i],
        None => image,
    }
}

/// The repository paths a [`REGISTRY_PUSH_ANNOTATION`] value names.
pub fn registry_push_paths(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// `namespace/name` of a raw object (the work queues' key).
fn object_key(v: &Value) -> String {
    format!(
        "{}/{}",
        v["metadata"]["namespace"].as_str().unwrap_or_default(),
        v["metadata"]["name"].as_str().unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app(name: &str, repo: &str, rev: &str, path: &str) -> Application {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": "argocd"},
            "spec": {"project": "default",
                     "source": {"repoURL": repo, "targetRevision": rev, "path": path},
                     "destination": {"server": "https://kubernetes.default.svc", "namespace": "x"}}
        }))
        .expect("app")
    }

    fn push(url: &str, git_ref: &str, files: Option<Vec<&str>>) -> PushEvent {
        PushEvent {
            repo_urls: vec![url.into()],
            git_ref: git_ref.into(),
            after: Some("abc".into()),
            changed_files: files.map(|f| f.into_iter().map(String::from).collect()),
        }
    }

    #[test]
    fn a_push_concerns_apps_of_its_repository_branch_and_paths() {
        let apps = vec![
            app(
                "a",
                "https://git.example/org/platform.git",
                "main",
                "apps/a",
            ),
            app("b", "https://git.example/org/platform", "HEAD", "apps/b"),
            app(
                "c",
                "https://git.example/org/platform.git",
                "release",
                "apps/a",
            ),
            app("d", "https://git.example/org/other.git", "main", "apps/a"),
        ];
        let c = apps_for_push(
            &apps,
            &push(
                "https://git.example/org/platform",
                "refs/heads/main",
                Some(vec!["apps/a/x.yaml"]),
            ),
            &[],
        );
        assert_eq!(c.apps, ["argocd/a"]);
        assert_eq!(c.stale.len(), 1, "{c:?}");
        let c = apps_for_push(
            &apps,
            &push(
                "https://git.example/org/platform.git",
                "refs/heads/main",
                None,
            ),
            &[],
        );
        assert_eq!(c.apps, ["argocd/a", "argocd/b"]);
    }

    #[test]
    fn an_aliased_repository_is_matched_by_either_url() {
        let apps = vec![app(
            "a",
            "https://git.example/org/platform.git",
            "main",
            ".",
        )];
        let aliases = vec![(
            "https://git.example/org/platform.git".to_string(),
            "file:///srv/platform".to_string(),
        )];
        let c = apps_for_push(
            &apps,
            &push("file:///srv/platform", "refs/heads/main", None),
            &aliases,
        );
        assert_eq!(c.apps, ["argocd/a"]);
    }

    #[test]
    fn appsets_are_found_by_their_git_generators_at_any_depth() {
        let sets = vec![
            json!({"metadata": {"name": "s1", "namespace": "argocd"},
                   "spec": {"generators": [{"matrix": {"generators": [
                       {"git": {"repoURL": "https://git.example/org/platform.git", "revision": "main"}},
                       {"list": {"elements": []}}]}}]}}),
            json!({"metadata": {"name": "s2", "namespace": "argocd"},
                   "spec": {"generators": [{"list": {"elements": []}}]}}),
        ];
        let pushed = vec![normalize_repo_url("https://git.example/org/platform")];
        assert_eq!(appsets_for_push(&sets, &pushed, &[]), ["argocd/s1"]);
    }

    #[test]
    fn registry_pushes_concern_apps_watching_the_repository() {
        let apps = vec![
            json!({"metadata": {"name": "a", "namespace": "argocd", "annotations": {
                IMAGE_LIST_ANNOTATION: "model=registry.example:5000/models/fraud:~1.2"}}}),
            json!({"metadata": {"name": "b", "namespace": "argocd", "annotations": {
                IMAGE_LIST_ANNOTATION: "registry.example/models/fraud-v2"}}}),
            json!({"metadata": {"name": "c", "namespace": "argocd"}}),
        ];
        assert_eq!(
            apps_for_registry_push(&apps, &["models/fraud".into()]),
            ["argocd/a"]
        );
        assert!(apps_for_registry_push(&apps, &["".into()]).is_empty());
        assert_eq!(registry_push_paths(" a/b, ,c "), ["a/b", "c"]);
    }
}
