//! `spec.ignoreDifferences`: which entries apply to a resource, and removing the fields
//! they name (JSON pointers and jq path expressions) from one side of a diff.

use super::{jq, path, DiffError};
use mooring_core::app::ResourceIgnoreDifferences;
use mooring_core::ResourceKey;
use serde_json::Value;

/// Does `rule` apply to `key`? Group (`""` is the core group) and kind must match, name
/// and namespace only when set; `*` matches anything in any of the four.
pub(crate) fn matches(rule: &ResourceIgnoreDifferences, key: &ResourceKey) -> bool {
    let eq = |pattern: &str, value: &str| pattern == "*" || pattern == value;
    let opt = |pattern: &str, value: &str| pattern.is_empty() || eq(pattern, value);
    eq(&rule.group, &key.group)
        && eq(&rule.kind, &key.kind)
        && opt(&rule.name, &key.name)
        && opt(&rule.namespace, &key.namespace)
}

/// Check every pointer and expression of the rules up front, so a typo is reported even
/// when the resource has only one side.
pub(crate) fn validate(rules: &[&ResourceIgnoreDifferences]) -> Result<(), DiffError> {
    for rule in rules {
        for p in &rule.json_pointers {
            path::parse_pointer(p).map_err(|reason| DiffError::BadJsonPointer {
                pointer: p.clone(),
                reason,
            })?;
        }
        for e in &rule.jq_path_expressions {
            jq::validate(e)?;
        }
    }
    Ok(())
}

/// Remove the fields the rules name from each side of the diff.
///
/// Pointers are removed from every side. A jq expression is evaluated on each side on
/// its own (one job for both, so one deadline and step budget); the paths found in a
/// side are removed from that side. An expression that fails at run time on a side
/// (typically `cannot iterate over null` because the field is absent there) removes
/// nothing from it, as in Argo CD; an expression that exceeds its bounds is an error.
pub(crate) fn apply(
    rules: &[&ResourceIgnoreDifferences],
    sides: &mut [&mut Value],
    secret: bool,
) -> Result<(), DiffError> {
    for rule in rules {
        for p in &rule.json_pointers {
            let segments = path::parse_pointer(p).map_err(|reason| DiffError::BadJsonPointer {
                pointer: p.clone(),
                reason,
            })?;
            for doc in sides.iter_mut() {
                path::remove_pointer(doc, &segments);
            }
        }
        for e in &rule.jq_path_expressions {
            let inputs: Vec<&Value> = sides.iter().map(|d| &**d).collect();
            let results = jq::paths_each(e, &inputs, secret)?;
            for (doc, result) in sides.iter_mut().zip(results) {
                match result {
                    Ok(paths) => path::remove_paths(doc, &paths),
                    Err(err) => tracing::debug!(error = %err, "jq path expression removed nothing"),
                }
            }
        }
    }
    Ok(())
}
