//! Readable output: YAML renderings of both sides and a unified diff between them.

use super::DiffError;
use serde_json::Value;

/// Render a value as YAML (block style, keys in the order they were read).
pub(crate) fn yaml(v: &Value) -> Result<String, DiffError> {
    serde_saphyr::to_string(v).map_err(|e| DiffError::Render(e.to_string()))
}

/// `--- live` / `+++ desired` unified diff with three lines of context. A missing side is
/// an empty text, so a missing live object shows as all additions and an object to prune
/// as all removals.
pub(crate) fn unified(live: &str, desired: &str) -> String {
    similar::TextDiff::from_lines(live, desired)
        .unified_diff()
        .context_radius(3)
        .header("live", "desired")
        .to_string()
}
