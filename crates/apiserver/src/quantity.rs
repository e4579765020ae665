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

    /// Property tests: well-formed quantities read as their value, the forms Mooring
    /// prints (metrics-server's `n` and `Ki`) read back, and nothing panics.
    mod props {
        use super::*;
        use crate::sim::usage::{format_cpu, format_memory};
        use proptest::prelude::*;

        /// A suffix and the power of 10 and of 2 it multiplies by.
        const SUFFIXES: [(&str, i32, i32); 16] = [
            ("", 0, 0),
            ("n", -9, 0),
            ("u", -6, 0),
            ("m", -3, 0),
            ("k", 3, 0),
            ("M", 6, 0),
            ("G", 9, 0),
            ("T", 12, 0),
            ("P", 15, 0),
            ("E", 18, 0),
            ("Ki", 0, 10),
            ("Mi", 0, 20),
            ("Gi", 0, 30),
            ("Ti", 0, 40),
            ("Pi", 0, 50),
            ("Ei", 0, 60),
        ];

        /// A well-formed quantity and its value: sign, digits with an optional fraction,
        /// then a suffix or (bare numbers only) an exponent.
        fn quantity() -> impl Strategy<Value = (String, f64)> {
            (
                prop::sample::select(vec!["", "+", "-"]),
                "[0-9]{0,12}",
                prop::option::of("[0-9]{0,6}"),
                prop_oneof![
                    3 => prop::sample::select(SUFFIXES.to_vec()).prop_map(|s| (s.0.to_string(), s.1, s.2)),
                    1 => (prop::sample::select(vec!["e", "E"]), -20i32..20)
                        .prop_map(|(e, n)| (format!("{e}{n}"), n, 0)),
                ],
                prop::sample::select(vec!["", " ", "\t"]),
            )
                .prop_filter("a digit is needed", |(_, int, frac, _, _)| {
                    !int.is_empty() || frac.as_deref().is_some_and(|f| !f.is_empty())
                })
                .prop_map(|(sign, int, frac, (suffix, exp10, exp2), pad)| {
                    let number = match &frac {
                        Some(f) => format!("{int}.{f}"),
                        None => int.clone(),
                    };
                    let digits = format!("{int}{}", frac.as_deref().unwrap_or(""));
                    let scale = exp10 - i32::try_from(frac.map_or(0, |f| f.len())).expect("short");
                    // digits × 10^scale, rounded once, then × 2^exp2 (exact).
                    let magnitude = format!("{}e{scale}", if digits.is_empty() { "0" } else { &digits })
                        .parse::<f64>()
                        .expect("a float")
                        * 2f64.powi(exp2);
                    let value = if sign == "-" { -magnitude } else { magnitude };
                    (format!("{pad}{sign}{number}{suffix}{pad}"), value)
                })
        }

        fn close(a: f64, b: f64) -> bool {
            a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn quantity_parse_never_panics(
                text in prop_oneof![
                    any::<String>(),
                    prop::collection::vec(
                        prop::sample::select(vec![
                            "1", "0", ".", "-", "+", "e", "E", "i", "K", "Ki", "m", "M", "n",
                            "u", "inf", "NaN", " ", "_", "x", "é",
                        ]),
                        0..8,
                    ).prop_map(|t| t.concat()),
                ],
            ) {
                if let Some(v) = parse(&text) {
                    prop_assert!(v.is_finite(), "{:?} -> {}", text, v);
                }
                let _ = of(&Value::String(text));
            }

            /// Every well-formed quantity reads as its value.
            #[test]
            fn quantity_parses_to_its_value((text, want) in quantity()) {
                let got = parse(&text);
                prop_assert!(got.is_some_and(|g| close(g, want)), "{:?}: {:?}, want {}", text, got, want);
            }

            /// The quantities Mooring prints read back to what was printed, and print the
            /// same again (the canonical form is stable).
            #[test]
            fn printed_quantities_read_back(nanos in 0u64..(1 << 40), bytes in 0u64..(1 << 60)) {
                let cpu = format_cpu(nanos);
                let read = parse(&cpu);
                prop_assert!(read.is_some_and(|c| close(c, nanos as f64 * 1e-9)), "{} -> {:?}", cpu, read);
                prop_assert_eq!(format_cpu((read.expect("checked") * 1e9).round() as u64), cpu);
                let memory = format_memory(bytes);
                let read = parse(&memory);
                prop_assert_eq!(read, Some(((bytes / 1024) * 1024) as f64), "{}", memory);
                prop_assert_eq!(format_memory(read.expect("checked") as u64), memory);
            }
        }
    }
}
