//! Why a `mooring check` run could not proceed at all.

use std::path::PathBuf;

/// Why a run could not proceed (exit code 2 of `mooring check`); everything the
/// repository gets wrong is a finding of the [`Report`] instead.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{} does not exist (pass the platform repository directory)", path.display())]
    RepoMissing {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("reading {}", path.display())]
    ReadConfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", path.display())]
    ParseConfig {
        path: PathBuf,
        #[source]
        source: mooring_core::yaml::YamlError,
    },
    #[error("{}: expected `lints: {{disable: [id, …]}}`", path.display())]
    InvalidConfig {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("unknown lint id {ids} (known: {known})")]
    UnknownLint { ids: String, known: String },
    #[error("{0}")]
    ControlPlane(String),
    #[error("creating a temporary directory for {what}")]
    TempDir {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("exporting {}", path.display())]
    Export {
        path: PathBuf,
        #[source]
        source: mooring_source::SourceError,
    },
    #[error("render task")]
    RenderTask(#[source] tokio::task::JoinError),
    #[error("running terraform {args:?}")]
    Terraform {
        args: &'static [&'static str],
        #[source]
        source: std::io::Error,
    },
    #[error("terraform {args:?} timed out")]
    TerraformTimeout { args: &'static [&'static str] },
}
