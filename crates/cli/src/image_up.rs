//! `mooring up`'s image part: a local container registry for the images that the
//! Applications' Image Updater annotations (`argocd-image-updater.argoproj.io/image-list`)
//! name on registries that cannot be reached — the example's placeholder
//! `registry.ml.example.com`, as its placeholder Git URL is served from a local
//! repository.
//!
//! When there is such an image and Debian's `docker-registry` is installed, `up` starts
//! it on 127.0.0.1 with its push notifications pointed at `up`'s registry webhook, pushes
//! the tag each watched image is deployed with today (found in REPO's manifests) so the
//! watcher has a starting point, writes Image Updater's `registries.conf`
//! (`argocd-image-updater-config`) mapping the placeholder prefix to it, and lets the
//! snapshot repository take the watcher's pushes (`receive.denyCurrentBranch
//! updateInstead`). Pushing a new tag (`skopeo copy …`) then reaches the cluster through
//! the watcher's Git write-back and the canary. Without the binary, `up` says what to
//! install and the watcher reports the unreachable registry on the Application.

use mooring_engine::image::{self as rules, ImageRef};
use mooring_k8s::kube;
use mooring_testkit::registry::{Format, NotifyEndpoint, Registry, RegistryOptions};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// What `up` started and wants to say.
#[derive(Default)]
pub struct Outcome {
    /// The local registry, kept running while `up` runs.
    pub registry: Option<Registry>,
    /// The `registries.conf` mapping the placeholder prefixes to it, written by
    /// [`configure`] once the outbound allowlist lets the watcher reach it.
    pub registries_conf: Option<String>,
    pub notes: Vec<String>,
}

/// The images the Applications in REPO's YAML files watch (an app-of-apps' children
/// included: they are in REPO too).
fn watched(repo: &Path) -> Vec<ImageRef> {
    let mut out = Vec::new();
    for (_, text) in yaml_files(repo) {
        let Ok(docs) = mooring_core::yaml::parse_all(&text) else {
            continue;
        };
        for o in docs.iter().filter(|o| o["kind"] == "Application") {
            let annotations = o
                .pointer("/metadata/annotations")
                .and_then(|a| serde_json::from_value(a.clone()).ok())
                .unwrap_or_default();
            let name = o["metadata"]["name"].as_str().unwrap_or_default();
            if let Ok(Some(config)) = rules::annotations::parse(name, &annotations) {
                out.extend(config.images.into_iter().map(|i| i.image));
            }
        }
    }
    out
}

/// Every `.yaml`/`.yml` file under `repo` (`.git` skipped) and its text.
fn yaml_files(repo: &Path) -> Vec<(std::path::PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![repo.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() && e.file_name() != ".git" {
                stack.push(p);
            } else if t.is_file() && p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                if let Ok(text) = std::fs::read_to_string(&p) {
                    out.push((p, text));
                }
            }
        }
    }
    out
}

/// Whether `host` resolves (within two seconds).
async fn resolves(host: &str) -> bool {
    let target = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:443")
    };
    match tokio::time::timeout(Duration::from_secs(2), tokio::net::lookup_host(target)).await {
        Ok(Ok(mut addrs)) => addrs.next().is_some(),
        _ => false,
    }
}

/// The tags `image` is written with in REPO's YAML files (`HOST/PATH:TAG`).
fn tags_in_repo(repo: &Path, image: &ImageRef) -> BTreeSet<String> {
    let needle = format!("{}/{}:", image.registry, image.repository);
    let mut tags = BTreeSet::new();
    for (_, text) in yaml_files(repo) {
        for (i, _) in text.match_indices(&needle) {
            let tag: String = text[i + needle.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
                .collect();
            if !tag.is_empty() {
                tags.insert(tag);
            }
        }
    }
    tags
}

/// Start the local registry for the unreachable registries REPO's Applications watch
/// (see the module docs).
pub async fn start(
    repo: &Path,
    snapshot: bool,
    webhook: std::net::SocketAddr,
    token: Option<String>,
) -> Outcome {
    let mut out = Outcome::default();
    let images = watched(repo);
    let mut hosts = BTreeSet::new();
    for i in &images {
        if !i.registry.is_empty() && !resolves(&i.registry).await {
            hosts.insert(i.registry.clone());
        }
    }
    if hosts.is_empty() {
        return out;
    }
    let list = hosts.iter().cloned().collect::<Vec<_>>().join(", ");
    if Registry::binary().is_none() {
        out.notes.push(format!(
            "{list} cannot be reached and docker-registry is not installed: `apt-get install docker-registry skopeo` to try the image watcher locally"
        ));
        return out;
    }
    let notify = NotifyEndpoint {
        url: format!("http://{webhook}/api/webhook/registry"),
        bearer_token: token.unwrap_or_else(|| "unsigned".into()),
    };
    let started = tokio::task::spawn_blocking(move || {
        Registry::start(RegistryOptions {
            notify: Some(notify),
            ..Default::default()
        })
    })
    .await;
    let registry = match started {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            out.notes
                .push(format!("the local registry did not start: {e:#}"));
            return out;
        }
        Err(e) => {
            out.notes
                .push(format!("the local registry did not start: {e}"));
            return out;
        }
    };
    // What runs today, so the watcher starts from it.
    let mut seeded = Vec::new();
    for i in images.iter().filter(|i| hosts.contains(&i.registry)) {
        for tag in tags_in_repo(repo, i) {
            let created = mooring_core::time::now_rfc3339();
            let path = i.repository.clone();
            let r = registry.url();
            let pushed = {
                let reg = &registry;
                tokio::task::block_in_place(|| {
                    reg.push_image(&path, &tag, "linux/amd64", &created, Format::Oci)
                })
            };
            match pushed {
                Ok(_) => seeded.push(format!("{}/{path}:{tag}", registry.host())),
                Err(e) => out
                    .notes
                    .push(format!("pushing {path}:{tag} to {r}: {e:#}")),
            }
        }
    }
    let conf: String = hosts
        .iter()
        .map(|h| {
            format!(
                "- name: {h} (served locally by mooring up)\n  prefix: {h}\n  api_url: {}\n  insecure: yes\n",
                registry.url()
            )
        })
        .collect();
    out.registries_conf = Some(format!("registries:\n{conf}"));
    if snapshot {
        let set = std::process::Command::new("git")
            .args(["config", "receive.denyCurrentBranch", "updateInstead"])
            .current_dir(repo)
            .output();
        if !set.as_ref().is_ok_and(|o| o.status.success()) {
            out.notes.push(
                "the repository does not take the watcher's write-backs: `git config receive.denyCurrentBranch updateInstead` failed in it".into(),
            );
        }
    } else {
        out.notes.push(
            "the watcher's Git write-back pushes to REPO's checked-out branch, which git refuses unless `git config receive.denyCurrentBranch updateInstead`".into(),
        );
    }
    out.notes.insert(
        0,
        format!(
            "{list} served by the local registry {} (pushes notify the watcher); seeded {}",
            registry.url(),
            if seeded.is_empty() {
                "nothing".to_string()
            } else {
                seeded.join(", ")
            }
        ),
    );
    out.registry = Some(registry);
    out
}

/// Write Image Updater's `registries.conf` (`argocd-image-updater-config`); returns a
/// note when it fails.
pub async fn configure(client: &kube::Client, namespace: &str, conf: &str) -> Option<String> {
    let api: kube::Api<mooring_k8s::k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client.clone(), namespace);
    api.patch(
        mooring_controller::image::CONFIG_MAP,
        &kube::api::PatchParams::apply("mooring-up").force(),
        &kube::api::Patch::Apply(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": mooring_controller::image::CONFIG_MAP},
            "data": {mooring_controller::image::REGISTRIES_KEY: conf},
        })),
    )
    .await
    .err()
    .map(|e| format!("writing {}: {e}", mooring_controller::image::CONFIG_MAP))
}
