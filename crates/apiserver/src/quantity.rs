//! Kubernetes resource quantities (`250m`, `1.5`, `128Mi`, `1G`, `2e3`) as numbers, for
//! the figures the cluster computes with: simulated usage, the metrics API and the HPA's
//! targets. (Mooring's diff compares quantities exactly, in `mooring_engine::diff::quantity`;
//! here a float is what the HPA algorithm works in.)

use serde_json::Value;

/// Parse a Kubernetes quantity (`250m`, `1.5`, `128Mi`, `1G`, `2e3`) as a number.
pub fn parse(q: &str) -> Option<f64> {
    let q = q.trim();
    let suffixes: [(&str, f64); 16] = [
        ("Ki", 1024.0),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
        ("", 1.0),
    ];
    for (suffix, mult) in suffixes {
        if let Some(num) = q.strip_suffix(suffix) {
            if num.is_empty()
                || !num
                    .starts_with(|c: char| c.is_ascii_digit() || c == '.' || c == '-' || c == '+')
            {
                continue;
            }
            // `1E3` is an exponent, `1E` is exa: only the bare number may use `e`.
            if !suffix.is_empty() && num.contains(['e', 'E']) {
                continue;
            }
            if let Ok(v) = num.parse::<f64>() {
                if v.is_finite() {
                    return Some(v * mult);
                }
            }
        }
    }
    None
}

/// A quantity given as a string or a JSON number.
pub fn of(v: &Value) -> Option<f64> {
    match v {
        Value::String(s) => parse(s),
        Value::Number(n) => n.as_f64(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(parse("250m"), Some(0.25));
        assert_eq!(parse("2"), Some(2.0));
        assert_eq!(parse("128Mi"), Some(134_217_728.0));
        assert_eq!(parse("1G"), Some(1e9));
        assert_eq!(parse("2e3"), Some(2000.0));
        assert_eq!(parse("1E"), Some(1e18));
        assert_eq!(parse("0.5"), Some(0.5));
        assert_eq!(parse("12345678n"), Some(0.012_345_678));
        assert_eq!(parse(""), None);
        assert_eq!(parse("Mi"), None);
        assert_eq!(parse("abc"), None);
    }
}
