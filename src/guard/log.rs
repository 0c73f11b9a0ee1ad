//! The guard's log lines: stderr (the journal under systemd), prefixed with a UTC
//! timestamp in the format the worker's `tracing` lines use, so a node's log reads in
//! one time order. With `--log-format json` each line is the JSON object the worker's
//! lines are (`timestamp`, `level`, `target`, `message`, and `kind` on the lines a
//! reader keys on: [`KIND_TOOK_DOWN`], [`KIND_SELF_FENCE`]). No allocation: the
//! timestamp and the escaped message are formatted by `format_args!`.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::time::{clock_gettime, ClockId};

/// Prefix of every text line, after the timestamp and level.
pub const PREFIX: &str = "tandemd[guard]:";
/// How a take-down message begins (after [`PREFIX`] in text).
pub const TOOK_DOWN: &str = "took down";
/// `kind` of a line saying the guard took its worker's resources down.
pub const KIND_TOOK_DOWN: &str = "guard-took-down";
/// `kind` of the guard's self-fence line.
pub const KIND_SELF_FENCE: &str = "guard-self-fence";
/// `target` of the guard's JSON lines (the worker's are module paths).
const TARGET: &str = "tandemd::guard";

/// Set once at start-up, before the guard loop runs; read on every line.
static JSON: AtomicBool = AtomicBool::new(false);

/// Makes every later line a JSON object (`tandemd --log-format json`).
pub fn use_json(json: bool) {
    JSON.store(json, Ordering::Relaxed);
}

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

/// CLOCK_REALTIME as `2026-11-29T21:46:35.274675Z`.
struct Timestamp {
    secs: i64,
    micros: i64,
}

impl Timestamp {
    fn now() -> Self {
        match clock_gettime(ClockId::CLOCK_REALTIME) {
            Ok(ts) => Timestamp {
                secs: ts.tv_sec(),
                micros: ts.tv_nsec() / 1000,
            },
            Err(_) => Timestamp { secs: 0, micros: 0 },
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, mo, d) = civil_from_days(self.secs.div_euclid(86_400));
        let s = self.secs.rem_euclid(86_400);
        write!(
            f,
            "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:06}Z",
            s / 3600,
            s % 3600 / 60,
            s % 60,
            self.micros
        )
    }
}

/// The message as the inside of a JSON string, escaped while it is written.
struct JsonEscaped<'a>(fmt::Arguments<'a>);

impl fmt::Display for JsonEscaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Escaper<'b, 'c>(&'b mut fmt::Formatter<'c>);
        impl fmt::Write for Escaper<'_, '_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                for c in s.chars() {
                    match c {
                        '"' => self.0.write_str("\\\"")?,
                        '\\' => self.0.write_str("\\\\")?,
                        '\n' => self.0.write_str("\\n")?,
                        '\r' => self.0.write_str("\\r")?,
                        '\t' => self.0.write_str("\\t")?,
                        c if u32::from(c) < 0x20 => write!(self.0, "\\u{:04x}", u32::from(c))?,
                        c => self.0.write_char(c)?,
                    }
                }
                Ok(())
            }
        }
        fmt::write(&mut Escaper(f), self.0)
    }
}

/// One line in the chosen format; `kind` only shows in JSON.
fn write_line(level: &str, kind: Option<&str>, msg: fmt::Arguments<'_>) {
    let at = Timestamp::now();
    if JSON.load(Ordering::Relaxed) {
        match kind {
            Some(kind) => eprintln!(
                "{{\"timestamp\":\"{at}\",\"level\":\"{level}\",\"target\":\"{TARGET}\",\"message\":\"{}\",\"kind\":\"{kind}\"}}",
                JsonEscaped(msg)
            ),
            None => eprintln!(
                "{{\"timestamp\":\"{at}\",\"level\":\"{level}\",\"target\":\"{TARGET}\",\"message\":\"{}\"}}",
                JsonEscaped(msg)
            ),
        }
    } else {
        eprintln!("{at} {level:>5} {PREFIX} {msg}");
    }
}

/// Writes one line: `2026-11-29T21:46:35.274675Z  WARN tandemd[guard]: ...`.
pub fn line(level: &str, msg: fmt::Arguments<'_>) {
    write_line(level, None, msg);
}

/// Writes one line a reader keys on: in JSON it carries `kind` (a `KIND_*` constant);
/// the text line is the same as [`line`]'s.
pub fn event(level: &str, kind: &str, msg: fmt::Arguments<'_>) {
    write_line(level, Some(kind), msg);
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

    #[test]
    fn timestamps_are_rfc3339_with_micros() {
        let t = Timestamp {
            secs: 20_786 * 86_400 + 21 * 3600 + 46 * 60 + 35,
            micros: 274_675,
        };
        assert_eq!(t.to_string(), "2026-11-29T21:46:35.274675Z");
    }

    #[test]
    fn json_messages_are_escaped_into_valid_json() {
        let reason = "lease \"www\" ends\\now\n\u{1}";
        let body = format!(
            "{{\"message\":\"{}\"}}",
            JsonEscaped(format_args!("SELF-FENCE: {reason}"))
        );
        let v: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
        assert_eq!(v["message"], format!("SELF-FENCE: {reason}"));
    }
}
