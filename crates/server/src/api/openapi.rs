//! `GET /api/openapi.json`: the REST API described for scripts and client generators
//! (OpenAPI 3.1), each operation with the RBAC it checks (`x-rbac`). The document is kept
//! by hand next to the router; a test holds the two together both ways (every route is
//! documented with its methods, and every documented operation is routed).

use axum::http::header;
use axum::response::IntoResponse;

/// The document, as served.
pub const DOCUMENT: &str = include_str!("openapi.json");

pub(super) async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    use super::DOCUMENT;
    use std::collections::BTreeSet;

    /// (path, method) of every `.route(…)` in the router's source, wildcards written as
    /// OpenAPI parameters.
    fn routed() -> BTreeSet<(String, String)> {
        let src = include_str!("mod.rs");
        let mut out = BTreeSet::new();
        let mut rest = src;
        while let Some(i) = rest.find(".route(") {
            rest = &rest[i + ".route(".len()..];
            let Some(start) = rest.find('"') else { break };
            let Some(len) = rest[start + 1..].find('"') else {
                break;
            };
            let path = rest[start + 1..start + 1 + len].replace("{*", "{");
            let end = rest.find(".route").unwrap_or(rest.len());
            let handlers = &rest[start + 1 + len..end];
            for m in ["get", "post", "put", "delete"] {
                if handlers.contains(&format!("{m}(")) {
                    out.insert((path.clone(), m.to_string()));
                }
            }
        }
        out
    }

    #[test]
    fn every_route_is_documented_and_every_documented_operation_is_routed() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).expect("valid JSON");
        let mut documented = BTreeSet::new();
        for (path, ops) in doc["paths"].as_object().expect("paths") {
            for (method, op) in ops.as_object().expect("operations") {
                assert!(
                    op.get("x-rbac").is_some(),
                    "{method} {path} does not say which RBAC it checks"
                );
                documented.insert((path.clone(), method.clone()));
            }
        }
        let routed: BTreeSet<_> = routed()
            .into_iter()
            .filter(|(p, _)| p.starts_with("/api/v1/"))
            .collect();
        assert!(
            routed.len() > 20,
            "the router's source was not read: {routed:?}"
        );
        let undocumented: Vec<_> = routed.difference(&documented).collect();
        let unrouted: Vec<_> = documented.difference(&routed).collect();
        assert!(
            undocumented.is_empty(),
            "routes missing from openapi.json: {undocumented:?}"
        );
        assert!(
            unrouted.is_empty(),
            "documented but not routed: {unrouted:?}"
        );
    }
}
