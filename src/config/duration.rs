//! Durations as admins write them: `100ms`, `1s`, `2m`, `1h`, `1500us`, `1m30s`.
//!
//! A unit is mandatory (a bare `5` is ambiguous between Heartbeat's seconds and
//! keepalived's centiseconds, so we refuse to guess), except for `0`, which means the
//! same in every unit.

use std::time::Duration;

const UNITS: &[(&str, u128)] = &[
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses a duration such as `100ms`, `1s`, `2m`, `1h`, `1500us` or `1m30s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err("expected a duration such as `100ms` or `1s`, found an empty value".into());
    }
    if s.starts_with('-') {
        return Err(format!("`{s}`: a duration cannot be negative"));
    }
    if s.chars().all(|c| c == '0') {
        return Ok(Duration::ZERO);
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "`{s}` is not a duration: expected a number followed by a unit (us, ms, s, m, h)"
            ));
        }
        let number: u128 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{s}`: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        if unit.is_empty() {
            return Err(format!(
                "`{s}` has no unit: write e.g. `{s}s` or `{s}ms` (units: us, ms, s, m, h)"
            ));
        }
        let Some((_, nanos)) = UNITS.iter().find(|(u, _)| *u == unit) else {
            return Err(format!(
                "`{s}`: unknown unit `{unit}` (expected us, ms, s, m or h)"
            ));
        };
        total = number
            .checked_mul(*nanos)
            .and_then(|n| total.checked_add(n))
            .ok_or_else(|| format!("`{s}`: duration too large"))?;
        rest = &rest[unit_len..];
    }
    let secs =
        u64::try_from(total / 1_000_000_000).map_err(|_| format!("`{s}`: duration too large"))?;
    // The remainder of a division by 1e9 always fits in u32.
    let nanos = (total % 1_000_000_000) as u32;
    Ok(Duration::new(secs, nanos))
}

/// Renders a duration the way an admin would write it: `100ms`, `1s`, `1m30s`.
/// `parse_duration(&format_duration(d)) == d` for whole microseconds.
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    let mut nanos = d.as_nanos();
    let mut out = String::new();
    for (unit, size) in [
        ("h", 3_600_000_000_000u128),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ] {
        let n = nanos / size;
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
            nanos -= n * size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1500us"), Ok(Duration::from_micros(1500)));
        assert_eq!(parse_duration(" 20s "), Ok(Duration::from_secs(20)));
    }

    #[test]
    fn parses_compound() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1s500ms"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn zero_needs_no_unit() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0ms"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_missing_unit() {
        let e = parse_duration("5").unwrap_err();
        assert!(e.contains("no unit"), "{e}");
    }

    #[test]
    fn rejects_negative() {
        let e = parse_duration("-1s").unwrap_err();
        assert!(e.contains("negative"), "{e}");
    }

    #[test]
    fn rejects_junk() {
        for junk in ["", "s", "1x", "1.5s", "abc", "1 s", "ms100", "1s-", "1d"] {
            assert!(parse_duration(junk).is_err(), "accepted {junk:?}");
        }
    }

    #[test]
    fn rejects_overflow() {
        assert!(parse_duration("99999999999999999999999999999999999999h").is_err());
        assert!(parse_duration("999999999999999999999h").is_err());
    }

    #[test]
    fn formats_round_trip() {
        for s in ["100ms", "1s", "2m", "1h", "1500us", "1m30s", "0s"] {
            let d = parse_duration(s).unwrap();
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{s}");
        }
        assert_eq!(format_duration(Duration::from_millis(1500)), "1s500ms");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
    }
}
