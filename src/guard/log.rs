//! The guard's log lines: stderr (the journal under systemd), prefixed with a UTC
//! timestamp in the format the worker's `tracing` lines use, so a node's log reads in
//! one time order. No allocation: the timestamp is formatted by `format_args!`.

use nix::time::{clock_gettime, ClockId};

/// Prefix of every line, after the timestamp and level.
pub const PREFIX: &str = "tandemd[guard]:";
/// How a take-down line begins (after [`PREFIX`]); the lab's log reader keys on it.
pub const TOOK_DOWN: &str = "took down";

/// Days since 1970-01-01 -> (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Writes one line: `2026-11-29T21:46:35.274675Z  WARN tandemd[guard]: ...`.
pub fn line(level: &str, msg: std::fmt::Arguments<'_>) {
    let (secs, micros) = match clock_gettime(ClockId::CLOCK_REALTIME) {
        Ok(ts) => (ts.tv_sec(), ts.tv_nsec() / 1000),
        Err(_) => (0, 0),
    };
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    eprintln!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z {level:>5} {PREFIX} {msg}",
        s / 3600,
        s % 3600 / 60,
        s % 60
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_786), (2026, 11, 29));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
