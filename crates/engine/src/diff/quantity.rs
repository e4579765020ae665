//! Kubernetes resource quantities (`500m`, `0.5`, `1Gi`, `1073741824`, `1e3`), compared
//! by value. The API server stores quantities in a canonical form, so `cpu: "0.5"` in Git
//! comes back as `500m` and `memory: 1073741824` as `1Gi`; neither is drift.
//!
//! Values are held exactly as an integer count of nano-units (10^-9), which covers every
//! suffix from `n` to `E`/`Ei`; digits finer than a nano-unit are rounded up, as the API
//! server does.

use serde_json::Value;

/// Parse a quantity into nano-units. Returns `None` for anything that is not a
/// well-formed quantity.
pub fn parse(s: &str) -> Option<i128> {
    let s = s.trim();
    let (sign, s) = match s.as_bytes().first()? {
        b'-' => (-1i128, &s[1..]),
        b'+' => (1, &s[1..]),
        _ => (1, s),
    };
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(num_end);
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return None;
    }
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    // value = digits × 10^exp10 × 2^exp2
    let (exp10, exp2): (i32, u32) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        e if e.starts_with(['e', 'E']) => {
            let n: i32 = e[1..].parse().ok()?;
            if !(-30..=30).contains(&n) {
                return None;
            }
            (n, 0)
        }
        _ => return None,
    };
    if int_part.len() + frac_part.len() > 30 {
        return None;
    }
    let digits: String = format!("{int_part}{frac_part}");
    let mantissa: i128 = digits.parse().ok()?;
    // nano-units: mantissa × 10^(exp10 + 9 - frac_len) × 2^exp2
    let scale = exp10 + 9 - i32::try_from(frac_part.len()).ok()?;
    let mut v = mantissa.checked_mul(1i128.checked_shl(exp2)?)?;
    if scale >= 0 {
        v = v.checked_mul(10i128.checked_pow(scale.unsigned_abs())?)?;
    } else {
        let d = 10i128.checked_pow(scale.unsigned_abs())?;
        v = (v + d - 1) / d; // round up
    }
    Some(sign * v)
}

/// A quantity from a JSON scalar (strings, and numbers as YAML gives `cpu: 1`).
pub fn of(v: &Value) -> Option<i128> {
    match v {
        Value::String(s) => parse(s),
        Value::Number(n) => parse(&n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_forms() {
        assert_eq!(parse("0.5"), parse("500m"));
        assert_eq!(parse("1Gi"), parse("1073741824"));
        assert_eq!(parse("1k"), parse("1e3"));
        assert_eq!(parse("1.5Gi"), parse("1536Mi"));
        assert_eq!(parse("2"), parse("2000m"));
        assert_ne!(parse("1G"), parse("1Gi"));
        assert_eq!(parse("100n"), Some(100));
        assert_eq!(parse("1E"), Some(1_000_000_000_000_000_000_000_000_000));
    }

    #[test]
    fn rejects_garbage() {
        for s in ["", "abc", "1.2.3", "1Xi", ".", "1e", "m"] {
            assert_eq!(parse(s), None, "{s}");
        }
    }
}
