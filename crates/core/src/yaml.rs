//! Safe YAML parsing for manifests and request bodies.
//!
//! serde_yaml is unmaintained; serde-saphyr is a maintained pure-Rust parser whose default
//! budget bounds alias expansion, nesting and node counts, so a "billion laughs" document
//! fails fast with an error instead of exhausting memory. On top of that we cap the input
//! size, because a 2 GiB manifest is as hostile as an alias bomb.

use serde_json::Value;

/// Largest YAML document accepted by default (bytes).
pub const MAX_YAML_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("YAML input is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("invalid YAML: {0}")]
    Parse(String),
}

fn check_size(input: &str) -> Result<(), YamlError> {
    if input.len() > MAX_YAML_BYTES {
        return Err(YamlError::TooLarge {
            size: input.len(),
            limit: MAX_YAML_BYTES,
        });
    }
    Ok(())
}

/// Parse one YAML (or JSON) document into a JSON value.
pub fn parse_one(input: &str) -> Result<Value, YamlError> {
    check_size(input)?;
    serde_saphyr::from_str::<Value>(input).map_err(|e| YamlError::Parse(e.to_string()))
}

/// Parse a multi-document YAML stream; empty documents are skipped.
pub fn parse_all(input: &str) -> Result<Vec<Value>, YamlError> {
    check_size(input)?;
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(input).map_err(|e| YamlError::Parse(e.to_string()))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documents() {
        let docs = parse_all("a: 1\n---\n---\nb: [x, z]\n").expect("valid");
        assert_eq!(docs.len(), 2, "{docs:?}");
        assert_eq!(docs[1]["b"][1], "z");
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut y = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for c in 'b'..='p' {
            y.push_str(&format!(
                "{c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
            prev = c;
        }
        assert!(parse_one(&y).is_err());
    }

    #[test]
    fn oversized_input_is_refused() {
        let big = "a".repeat(MAX_YAML_BYTES + 1);
        assert!(matches!(parse_one(&big), Err(YamlError::TooLarge { .. })));
    }
}
