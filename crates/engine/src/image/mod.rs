//! The image watcher's rules, compatible with Argo CD Image Updater (v0.x annotations).
//!
//! An Application opts in with `argocd-image-updater.argoproj.io/image-list`; the
//! watcher (`mooring_controller::image`) lists each image's tags in its registry, picks
//! the tag the image's update strategy wants ([`select`]), and writes the change back
//! ([`writeback`]): to Git (the overlay's `images:` or Argo CD's
//! `.argocd-source-<app>.yaml` parameter file) or as a parameter override on the
//! Application. Everything here is pure: annotations and registries.conf are parsed,
//! tags chosen and files edited from values; the registry protocol's I/O is the
//! controller's, its message formats are [`registry`].
//!
//! # Trust
//!
//! The annotations are tenant input (a project member writes the Application), the
//! registries.conf is the admin's (`argocd-image-updater-config` in the control-plane
//! namespace). Nothing in an annotation runs a command (`ext:` credentials are refused),
//! reads the controller's environment (`env:` is admin-only), or sends credentials to a
//! host other than the one they belong to.
//!
//! Shared vocabulary (the contract between the parts of this module and the controller):
//! [`ImageRef`], [`WatchedImage`], [`UpdateConfig`], [`RegistryConfig`],
//! [`CredentialSource`], [`Platform`], [`TagInfo`], [`ImageChange`].

pub mod annotations;
pub mod registries;
pub mod registry;
pub mod select;
pub mod writeback;

use mooring_core::time::Timestamp;

/// Every annotation this module reads starts with this.
pub const ANNOTATION_PREFIX: &str = "argocd-image-updater.argoproj.io/";

/// An image reference as written in `image-list` or a manifest:
/// `[registry/]repository[:tag][@digest]`. `registry` is empty for Docker Hub's
/// implicit one (`nginx`, `library/nginx`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ImageRef {
    /// `host[:port]`, or empty for the default registry.
    pub registry: String,
    /// `path/name` inside the registry.
    pub repository: String,
    pub tag: Option<String>,
    /// `sha256:…`.
    pub digest: Option<String>,
}

/// An image update strategy (`<alias>.update-strategy`). The older names map to the
/// new ones: `latest` = [`Strategy::NewestBuild`], `name` = [`Strategy::Alphabetical`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The highest semantic version allowed by the constraint (the default).
    #[default]
    Semver,
    /// The most recently built tag (the config blob's `created`).
    NewestBuild,
    /// The current digest of one (moving) tag: the constraint names the tag.
    Digest,
    /// The last tag in lexical order.
    Alphabetical,
}

/// A tag filter of `allow-tags` / `ignore-tags`: `regexp:EXPR`, or a glob (`*`, `?`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum TagFilter {
    Regexp(String),
    Glob(String),
}

/// An OCI platform: `os/arch[/variant]` (`linux/amd64`, `linux/arm/v7`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

/// Where registry credentials come from (Image Updater's syntax).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum CredentialSource {
    /// `pullsecret:NAMESPACE/NAME`: a `kubernetes.io/dockerconfigjson` Secret; only the
    /// entry for the registry's own host is used.
    PullSecret { namespace: String, name: String },
    /// `secret:NAMESPACE/NAME#FIELD`: `username:password` in one field.
    Secret {
        namespace: String,
        name: String,
        field: String,
    },
    /// `env:VAR`: `username:password` in the controller's environment (admin only).
    Env(String),
}

/// One image of `image-list`, with its per-alias options.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WatchedImage {
    /// `alias=` in `image-list` (options are keyed by it; without one, by the image name).
    pub alias: Option<String>,
    /// The image (its `tag` part is the version constraint, not a tag).
    pub image: ImageRef,
    /// The version constraint (`~1.2`, `^1.0`, `>=1.2 <2`), or for `digest` the tag.
    pub constraint: Option<String>,
    pub strategy: Strategy,
    pub allow_tags: Option<TagFilter>,
    pub ignore_tags: Vec<TagFilter>,
    /// Platforms an image must provide (empty: the controller's, `linux/amd64`).
    pub platforms: Vec<Platform>,
    pub pull_secret: Option<CredentialSource>,
    /// `<alias>.kustomize.image-name`: the name to set in kustomize's `images:`.
    pub kustomize_image_name: Option<String>,
    /// `<alias>.helm.image-name` / `image-tag` / `image-spec`: Helm parameter names.
    pub helm_image_name: Option<String>,
    pub helm_image_tag: Option<String>,
    pub helm_image_spec: Option<String>,
}

/// `write-back-method`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub enum WriteBackMethod {
    /// `argocd`: a parameter override on the Application (the default).
    #[default]
    Argocd,
    /// `git` / `git:secret:NAMESPACE/NAME`: a commit; credentials from the repository's
    /// own Secret, or the named one.
    Git { secret: Option<(String, String)> },
}

/// `write-back-target`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub enum WriteBackTarget {
    /// Argo CD's `.argocd-source-<app>.yaml` in the source path (the default).
    #[default]
    ParameterFile,
    /// `kustomization[:PATH]`: the `images:` of the kustomization at `PATH` (relative to
    /// the source path, or absolute from the repository root with a leading `/`).
    Kustomization { path: Option<String> },
}

/// An Application's whole image-updater configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct UpdateConfig {
    pub images: Vec<WatchedImage>,
    pub method: WriteBackMethod,
    /// `git-branch`: the branch to commit to (default: the source's targetRevision);
    /// `BASE:TARGET` commits on TARGET starting from BASE.
    pub branch: Option<String>,
    pub target: WriteBackTarget,
}

/// One registry of the admin's `registries.conf`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct RegistryConfig {
    pub name: String,
    /// Image name prefix this registry serves (`docker.io`, `ghcr.io`,
    /// `registry.example.com`).
    pub prefix: String,
    /// Base URL of the distribution API (`https://registry-1.docker.io`).
    pub api_url: String,
    pub credentials: Option<CredentialSource>,
    /// Namespace of unqualified images (`library` on Docker Hub).
    pub default_ns: Option<String>,
    /// The registry of images without a registry part.
    pub default: bool,
    /// Accept any TLS certificate.
    pub insecure: bool,
    /// Requests per second at most (`limit`), 0 = the default.
    pub limit: u32,
    /// How often to list tags (Mooring's extension, `interval`; default 2 minutes as
    /// Image Updater's `--interval`).
    pub interval_seconds: Option<u64>,
}

/// What the registry says about one tag (after platform selection).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TagInfo {
    pub tag: String,
    /// The digest of the manifest (or index) the tag points at.
    pub digest: String,
    /// The config blob's `created` (for `newest-build`), when asked for.
    pub created: Option<Timestamp>,
    /// Platforms the tag provides (an image manifest's one, or an index's entries).
    pub platforms: Vec<Platform>,
}

/// One image to change in a write-back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImageChange {
    pub alias: Option<String>,
    /// The image as the manifests name it (`registry/repository`), or the kustomize /
    /// helm name override.
    pub name: String,
    /// The version before (tag or digest), when known.
    pub old: Option<String>,
    pub new_tag: String,
    /// Set for the `digest` strategy: the write-back pins `name:tag@digest`.
    pub new_digest: Option<String>,
}

/// Errors of the image rules, each naming the offending input.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("image reference {reference:?}: {reason}")]
    Reference { reference: String, reason: String },
    #[error("annotation {annotation}: {reason}")]
    Annotation { annotation: String, reason: String },
    #[error("registries.conf: {0}")]
    Registries(String),
    #[error("{0}")]
    Other(String),
}
