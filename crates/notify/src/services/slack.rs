//! The `slack` service (placeholder of the skeleton: filled by the slice that owns it).

use crate::payload::Payload;
use serde_json::Value;

pub fn payloads(
    _config: &Value,
    _notification: &Value,
    _recipient: &str,
) -> Result<Vec<Payload>, String> {
    Err("the slack service is not built yet".to_string())
}
