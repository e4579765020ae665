//! The controller's error type: every failure names the input it comes from, and the
//! reconcile turns it into an Application condition.

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("invalid application spec: {0}")]
    Spec(String),
    #[error(transparent)]
    Source(#[from] mooring_source::SourceError),
    #[error(transparent)]
    Render(#[from] mooring_render::RenderError),
    #[error(transparent)]
    Diff(#[from] mooring_engine::diff::DiffError),
    #[error(transparent)]
    Kube(#[from] mooring_k8s::cluster::K8sError),
    #[error("writing the Application: {0}")]
    Write(String),
    /// The Application changed since this reconcile read it (another writer — another
    /// replica, the API, a user — got there first): nothing more is written from the
    /// stale read; the app is reconciled again from a fresh one.
    #[error("the Application changed since it was read (409 Conflict): {0}")]
    Conflict(String),
    #[error("{0}")]
    Internal(String),
    /// An error of one source of a multi-source application (`label` names it).
    #[error("{label}: {error}")]
    InSource {
        label: String,
        #[source]
        error: Box<ControllerError>,
    },
}
