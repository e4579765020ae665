//! Workload simulation (placeholder; being written).
use crate::api::Api;
use crate::error::ApiError;
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub nodes: usize,
    pub speed: f64,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions { nodes: 3, speed: 1.0 }
    }
}

pub fn start(_api: Api, _opts: SimOptions) -> Vec<tokio::task::JoinHandle<()>> {
    vec![]
}

pub type MetricsHandler = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

pub fn metrics_handler(_api: Api) -> MetricsHandler {
    Arc::new(|_| None)
}

pub fn bootstrap_nodes(_api: &Api, _opts: &SimOptions) -> Result<(), ApiError> {
    Ok(())
}
