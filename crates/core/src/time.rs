//! Time as Kubernetes and Argo write it, defined once.
//!
//! Every status stamp Mooring writes (`lastTransitionTime`, `startedAt`, `reconciledAt`,
//! event times) is a Kubernetes `metav1.Time`: RFC 3339 in UTC, whole seconds, `Z`
//! (`2026-01-01T00:00:00Z`). Tables show an object's age as kubectl does
//! (`duration.HumanDuration`: `45s`, `3m12s`, `5h`, `2d3h`). Before this module each crate
//! had its own copy of these rules on its own time crate; now they live here, on `jiff`
//! (the crate the API server, controller, server and CLI already used).
//!
//! The module is pure except for [`now`]/[`now_rfc3339`], the one place a wall-clock stamp
//! is read for status fields; rule code (`mooring_engine`) never calls them and takes the
//! current time as an argument instead.

pub use jiff::{SignedDuration, Timestamp};

/// A timestamp that could not be read or represented.
#[derive(Debug, thiserror::Error)]
pub enum TimeError {
    #[error("invalid RFC 3339 timestamp {input:?}: {source}")]
    Parse {
        input: String,
        #[source]
        source: jiff::Error,
    },
    #[error("unix time {0} s is out of the representable range")]
    OutOfRange(i64),
}

/// `t` as Kubernetes writes `metav1.Time`: RFC 3339, UTC, whole seconds (truncated), `Z`.
pub fn format(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// `t` as RFC 3339, UTC, with milliseconds (truncated), `Z`: Mooring's own rollback
/// status stamps (`breachingSince`, `firedAt`, `lastEvaluated`), where every evaluation
/// within a second must still show.
pub fn format_millis(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// `t` as Kubernetes writes `metav1.MicroTime` (a Lease's `acquireTime`, `renewTime`):
/// RFC 3339, UTC, microseconds, `Z`.
pub fn format_micros(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Parse an RFC 3339 timestamp (any offset, any sub-second precision), as Kubernetes reads
/// `metav1.Time`. A timestamp without an offset is rejected.
pub fn parse(s: &str) -> Result<Timestamp, TimeError> {
    s.parse::<Timestamp>().map_err(|source| TimeError::Parse {
        input: s.to_string(),
        source,
    })
}

/// The instant `secs` seconds after the Unix epoch.
pub fn from_unix(secs: i64) -> Result<Timestamp, TimeError> {
    Timestamp::from_second(secs).map_err(|_| TimeError::OutOfRange(secs))
}

/// The current wall-clock time. Only I/O-edge crates call this; rules take `now` as input.
pub fn now() -> Timestamp {
    Timestamp::now()
}

/// The current time formatted by [`format`], for status fields.
pub fn now_rfc3339() -> String {
    format(now())
}

/// Time elapsed from `ts` (RFC 3339) to `now`; zero when `ts` is absent, unparsable or in
/// the future.
pub fn since(ts: Option<&str>, now: Timestamp) -> std::time::Duration {
    ts.and_then(|t| parse(t).ok())
        .and_then(|t| std::time::Duration::try_from(now.duration_since(t)).ok())
        .unwrap_or(std::time::Duration::ZERO)
}

/// kubectl's short human age of `ts` at `now` (`duration.HumanDuration`): `45s`, `3m12s`,
/// `5h`, `2d3h`; `<unknown>` when `ts` is absent or unparsable. A future `ts` reads `0s`.
pub fn age(ts: Option<&str>, now: Timestamp) -> String {
    let Some(t) = ts.and_then(|t| parse(t).ok()) else {
        return "<unknown>".into();
    };
    let secs = (now.as_second() - t.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 8 * 3600 => format!("{}h{}m", s / 3600, (s % 3600) / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s if s < 8 * 86400 => format!("{}d{}h", s / 86400, (s % 86400) / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Units of a whole-seconds duration up to hours (`90`, `90s`, `5m`, `1h`): the waits of
/// `mooring rollout` (`--timeout`), as the Argo Rollouts plugin takes them.
pub const UP_TO_HOURS: &[(&str, u64)] = &[("s", 1), ("m", 60), ("h", 3600)];

/// [`UP_TO_HOURS`] plus days (`90d`): token lifetimes (`--expires-in`), as `argocd account
/// generate-token` takes them.
pub const UP_TO_DAYS: &[(&str, u64)] = &[("s", 1), ("m", 60), ("h", 3600), ("d", 86400)];

/// A whole number of seconds written as digits with at most one unit from `units` (a bare
/// number is seconds). Anything else (a sign, a fraction, two units, an unknown unit, an
/// overflow) is `None`; the caller names the accepted forms in its error. Go-style
/// durations with fractions and compound units are [`parse_go_duration`].
pub fn parse_whole_seconds(s: &str, units: &[(&str, u64)]) -> Option<u64> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits.parse().ok()?;
    let factor = match unit {
        "" => 1,
        u => units.iter().find(|(name, _)| *name == u)?.1,
    };
    n.checked_mul(factor)
}

/// Parse a duration as Kubernetes and Argo write them (Go's `time.ParseDuration` units:
/// `300ms`, `5s`, `3m`, `1h30m`), or a bare number of seconds; used for retry backoff,
/// sync window lengths, rollout pauses and analysis intervals.
pub fn parse_go_duration(s: &str) -> Option<std::time::Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Some(std::time::Duration::from_secs(secs));
    }
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push('s');
            chars.next();
        }
        let n: f64 = num.parse().ok()?;
        num.clear();
        total += n * match unit.as_str() {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
    }
    if !num.is_empty() {
        return None;
    }
    // A hostile `99999999999999999999h` overflows: no duration rather than a panic.
    std::time::Duration::try_from_secs_f64(total).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn whole_seconds_take_one_unit_from_the_callers_table() {
        use super::{parse_whole_seconds, UP_TO_DAYS, UP_TO_HOURS};
        for (s, want) in [
            ("90", 90),
            (" 90s ", 90),
            ("5m", 300),
            ("1h", 3600),
            ("0", 0),
        ] {
            assert_eq!(parse_whole_seconds(s, UP_TO_HOURS), Some(want), "{s}");
        }
        assert_eq!(parse_whole_seconds("90d", UP_TO_DAYS), Some(90 * 86400));
        assert_eq!(parse_whole_seconds("5d", UP_TO_HOURS), None);
        for bad in [
            "",
            "m",
            "-1",
            "1.5m",
            "1h30m",
            "99999999999999999999h",
            "9999999999999999999d",
        ] {
            assert_eq!(parse_whole_seconds(bad, UP_TO_DAYS), None, "{bad}");
        }
    }

    use super::*;

    fn ts(s: &str) -> Timestamp {
        parse(s).expect("valid test timestamp")
    }

    #[test]
    fn formats_like_metav1_time() {
        // Sub-second precision is truncated, the offset is always `Z`.
        assert_eq!(
            format(ts("2026-01-01T01:02:03.987+01:00")),
            "2026-01-01T00:02:03Z"
        );
        assert_eq!(format(from_unix(0).expect("epoch")), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_millis(ts("2026-01-01T00:00:03.9876Z")),
            "2026-01-01T00:00:03.987Z"
        );
        assert_eq!(
            format_millis(from_unix(0).expect("epoch")),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn parses_rfc3339_and_rejects_garbage_with_the_input() {
        assert_eq!(ts("2026-01-01T00:00:00Z").as_second(), 1_767_225_600);
        let err = parse("yesterday").expect_err("not a timestamp");
        assert!(err.to_string().contains("\"yesterday\""), "{err}");
        assert!(parse("2026-01-01T00:00:00").is_err(), "offset is required");
        assert!(matches!(from_unix(i64::MAX), Err(TimeError::OutOfRange(_))));
    }

    #[test]
    fn ages_read_like_kubectl() {
        let now = ts("2020-01-10T01:00:00Z");
        let cases = [
            ("2020-01-10T00:59:15Z", "45s"),
            ("2020-01-10T00:58:01Z", "119s"),
            ("2020-01-10T00:55:00Z", "5m0s"),
            ("2020-01-10T00:30:00Z", "30m"),
            ("2020-01-09T20:00:00Z", "5h0m"),
            ("2020-01-09T12:00:00Z", "13h"),
            ("2020-01-07T22:00:00Z", "2d3h"),
            ("2020-01-01T00:00:00Z", "9d"),
            ("2020-01-10T02:00:00Z", "0s"),
        ];
        for (t, want) in cases {
            assert_eq!(age(Some(t), now), want, "{t}");
        }
        assert_eq!(age(None, now), "<unknown>");
        assert_eq!(age(Some("garbage"), now), "<unknown>");
    }

    #[test]
    fn since_is_zero_for_missing_bad_or_future_stamps() {
        let now = ts("2020-01-01T00:01:00Z");
        assert_eq!(since(Some("2020-01-01T00:00:00Z"), now).as_secs(), 60);
        assert!(since(None, now).is_zero());
        assert!(since(Some("x"), now).is_zero());
        assert!(since(Some("2020-01-01T00:02:00Z"), now).is_zero());
    }
    #[test]
    fn go_durations() {
        assert_eq!(
            parse_go_duration("5s"),
            Some(std::time::Duration::from_secs(5))
        );
        assert_eq!(
            parse_go_duration("1h30m"),
            Some(std::time::Duration::from_secs(5400))
        );
        assert_eq!(
            parse_go_duration("300ms"),
            Some(std::time::Duration::from_millis(300))
        );
        assert_eq!(parse_go_duration("3x"), None);
        assert_eq!(parse_go_duration("99999999999999999999999h"), None);
    }
}
