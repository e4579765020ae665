//! Errors of rendering. Every variant names the offending file, path or option and, where
//! there is one, says what to do, because the message ends up verbatim in an Application
//! condition that a platform engineer reads without access to Mooring's logs.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// `source.path` is absolute, contains `..`, or is otherwise not a plain relative path.
    #[error("source path {path:?} is not allowed: {reason}; use a path relative to the repository root without `..`")]
    InvalidPath { path: String, reason: &'static str },

    #[error("source path {path:?} does not exist in the repository at this revision")]
    PathNotFound { path: String },

    #[error("source path {path:?} is not a directory; point source.path at the directory holding the manifests")]
    NotADirectory { path: String },

    /// A symlink or a kustomize reference resolves to something outside the exported tree.
    #[error("{path} resolves to {target}, which is outside the repository; only files inside the repository are rendered")]
    OutsideRoot { path: String, target: String },

    #[error("{file} is {size} bytes, over the {limit}-byte limit for one file; split it or raise the limit")]
    FileTooLarge { file: String, size: u64, limit: u64 },

    #[error("{what} produced more than {limit} bytes of manifests, over the output limit; split the application or raise the limit")]
    OutputTooLarge { what: String, limit: u64 },

    #[error("{file}: {source}")]
    Yaml {
        file: String,
        #[source]
        source: mooring_core::yaml::YamlError,
    },

    #[error("{file}: invalid JSON: {message}")]
    Json { file: String, message: String },

    /// A document is not a Kubernetes object (no apiVersion, kind or metadata.name).
    #[error("{file}, document {index}: {reason}; every manifest needs apiVersion, kind and metadata.name (exclude non-manifest files with source.directory.exclude)")]
    InvalidManifest {
        file: String,
        index: usize,
        reason: String,
    },

    #[error("resource {key} is defined twice: in {first} and in {second}; keep only one")]
    DuplicateResource {
        key: String,
        first: String,
        second: String,
    },

    /// An Argo CD parameter file (`.argocd-source[-APP].yaml`) that cannot be merged.
    #[error("parameter file {file}: {reason}")]
    ParameterFile { file: String, reason: String },

    /// An Argo CD source option (kustomize, helm or directory) has a value that is refused.
    #[error("invalid {option} {value:?}: {reason}")]
    InvalidOption {
        option: String,
        value: String,
        reason: String,
    },

    #[error("{kustomization} references remote base {entry:?}; Mooring renders only what is in the repository at the commit: vendor the base into the repository (or enable remote bases in the render options)")]
    RemoteBase {
        kustomization: String,
        entry: String,
    },

    #[error("{kustomization} references {entry:?}, which does not exist in the repository")]
    MissingReference {
        kustomization: String,
        entry: String,
    },

    #[error("neither `kustomize` nor `kubectl` was found on PATH; install kustomize (https://kubectl.docs.kubernetes.io/installation/kustomize/) or kubectl")]
    KustomizeMissing,

    #[error("{path} is a Helm chart but the `helm` binary was not found{detail}; install helm (Debian: `apt-get install helm` from the Helm apt repository, or https://helm.sh/docs/intro/install/) and make it available on PATH")]
    HelmMissing { path: String, detail: String },

    #[error("`{command}` failed ({status}): {stderr}")]
    ToolFailed {
        command: String,
        status: String,
        stderr: String,
    },

    #[error("`{command}` did not finish within {timeout:?} and was killed; simplify the application or raise the render timeout")]
    Timeout { command: String, timeout: Duration },

    #[error("could not start `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "source sets more than one of directory, kustomize, helm and plugin ({found}); keep one"
    )]
    MultipleSourceTypes { found: String },

    #[error("{what} is not supported by Mooring's renderer")]
    Unsupported { what: String },

    #[error("the application has no source: set spec.source or spec.sources")]
    NoSource,

    #[error("the application lists {count} sources, more than the {limit} Mooring accepts; split it into several Applications (an ApplicationSet can generate them)")]
    TooManySources { count: usize, limit: usize },

    /// One entry of `spec.sources` is malformed or hostile (`source_label` names it).
    #[error("{source_label}: {reason}")]
    InvalidSource {
        source_label: String,
        reason: String,
    },

    #[error("{source_label}: value file {entry:?} names a ref no source defines (refs defined: {known}); add a source with `ref: NAME` to spec.sources, or fix the name")]
    UnknownRef {
        entry: String,
        source_label: String,
        known: String,
    },

    #[error("every source is a `ref` source without `path`, so nothing would be rendered; give a source a path")]
    NoRenderedSource,

    /// The same resource rendered by two sources of one Application.
    #[error("resource {key} is rendered by both {first} and {second}; remove it from one of them (Argo CD would keep the last one with a RepeatedResourceWarning; Mooring refuses, so that neither definition is silently dropped)")]
    DuplicateAcrossSources {
        key: String,
        first: String,
        second: String,
    },
}

impl RenderError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RenderError::Io {
            path: path.into(),
            source,
        }
    }
}
