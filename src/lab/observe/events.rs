//! The one reader of tandemd's log. The lab starts every daemon with `--log-format
//! json`; each line is one object whose fields are the shared contract between the
//! daemon and its readers: `timestamp`, `kind` (`EventKind::as_str()` or a guard kind),
//! `node`, `group`, `term`, `decision` (a stable tag), `wait_ms`, and on VIP lines `vip`
//! (`added`/`removed`), `address`, `dev`. Experiments decide on these fields only:
//! `message` is the sentence for people and may be reworded freely.

use std::net::IpAddr;

use crate::core::EventKind;
use crate::guard::log::{KIND_SELF_FENCE, KIND_TOOK_DOWN};

/// `decision` tag of "waiting for the lease of X to expire": `wait_ms` says how long.
pub const LEASE_WAIT: &str = "lease-wait";
/// `decision` tag of "candidate for term T": the node asks the quorum.
pub const CANDIDATE: &str = "candidate";

/// What a VIP line says happened to the address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VipChange {
    Added,
    Removed,
}

/// One line of a node's log, typed. Fields the line does not carry are empty / None.
#[derive(Debug, Clone, PartialEq)]
pub struct LogRecord {
    /// CLOCK_REALTIME ns since the epoch, from `timestamp`.
    pub at_ns: i64,
    pub level: String,
    /// `kind`: a core event kind or a guard kind (`guard-took-down`, ...).
    pub kind: Option<String>,
    /// The node the event is about (`""` when none).
    pub node: String,
    pub group: String,
    pub term: u64,
    /// The typed reason's tag (`""` in the log: None).
    pub decision: Option<String>,
    pub wait_ms: Option<f64>,
    pub vip: Option<VipChange>,
    pub address: Option<IpAddr>,
    /// For people only: never decided on.
    pub message: String,
}

impl LogRecord {
    /// Parses one log line; None for anything that is not a JSON object with a valid
    /// `timestamp` (lines of the lab itself, of agents' scripts, text-format lines).
    pub fn parse(line: &str) -> Option<LogRecord> {
        let line = line.trim();
        if !line.starts_with('{') {
            return None;
        }
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        let text = |key: &str| v.get(key).and_then(|x| x.as_str()).unwrap_or_default();
        let non_empty = |key: &str| Some(text(key)).filter(|s| !s.is_empty()).map(String::from);
        Some(LogRecord {
            at_ns: parse_timestamp(text("timestamp"))?,
            level: text("level").to_string(),
            kind: non_empty("kind"),
            node: text("node").to_string(),
            group: text("group").to_string(),
            term: v.get("term").and_then(|x| x.as_u64()).unwrap_or(0),
            decision: non_empty("decision"),
            wait_ms: v.get("wait_ms").and_then(|x| x.as_f64()),
            vip: match text("vip") {
                "added" => Some(VipChange::Added),
                "removed" => Some(VipChange::Removed),
                _ => None,
            },
            address: text("address").parse().ok(),
            message: text("message").to_string(),
        })
    }

    /// A core event of this kind.
    pub fn is(&self, kind: EventKind) -> bool {
        self.kind.as_deref() == Some(kind.as_str())
    }

    /// A core event of this kind about this group.
    pub fn is_for_group(&self, kind: EventKind, group: &str) -> bool {
        self.is(kind) && self.group == group
    }

    /// A decision with this tag (`LEASE_WAIT`, `CANDIDATE`, ...).
    pub fn has_decision(&self, tag: &str) -> bool {
        self.decision.as_deref() == Some(tag)
    }

    /// The guard removed its worker's addresses and process groups.
    pub fn is_guard_take_down(&self) -> bool {
        self.kind.as_deref() == Some(KIND_TOOK_DOWN)
    }

    /// The worker (core event) or the guard decided to self-fence.
    pub fn is_self_fence(&self) -> bool {
        self.is(EventKind::SelfFence) || self.kind.as_deref() == Some(KIND_SELF_FENCE)
    }

    /// What happened to `address`, if this line is a VIP line about it.
    pub fn vip_change(&self, address: IpAddr) -> Option<VipChange> {
        self.vip.filter(|_| self.address == Some(address))
    }

    /// The line for people: `timestamp LEVEL message [kind]`.
    pub fn readable(&self, raw_timestamp: &str) -> String {
        match &self.kind {
            Some(k) => format!("{raw_timestamp} {:>5} {} [{k}]", self.level, self.message),
            None => format!("{raw_timestamp} {:>5} {}", self.level, self.message),
        }
    }
}

/// Every record of a log, in file order.
pub fn records(log: &str) -> impl Iterator<Item = LogRecord> + '_ {
    log.lines().filter_map(LogRecord::parse)
}

/// The records at or after `since_ns`.
pub fn records_since(log: &str, since_ns: i64) -> Vec<LogRecord> {
    records(log).filter(|r| r.at_ns >= since_ns).collect()
}

/// The last `n` lines of a log for people: JSON lines as `time LEVEL message [kind]`,
/// other lines (the lab's own, agents' output) as they are.
pub fn readable_tail(log: &str, n: usize) -> Vec<String> {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| {
            let ts = serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("timestamp")?.as_str().map(String::from));
            match (LogRecord::parse(l), ts) {
                (Some(r), Some(ts)) => r.readable(&ts),
                _ => l.to_string(),
            }
        })
        .collect()
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// RFC 3339 in UTC as tracing and the guard write it (`2026-11-23T11:37:35.246478Z`)
/// -> ns since the epoch. Other offsets than `Z` are refused: tandemd logs UTC.
pub fn parse_timestamp(ts: &str) -> Option<i64> {
    let ts = ts.strip_suffix('Z')?;
    let (date, time) = ts.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>().ok());
    let (h, mi, s) = (t.next()??, t.next()??, t.next()??);
    if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_ns = frac.parse::<i64>().ok()? * 10i64.pow(9 - frac.len() as u32);
    let secs = days_from_civil(y, mo, da) * 86400 + h * 3600 + mi * 60 + s;
    Some(secs * 1_000_000_000 + frac_ns)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A line as `tandemd --log-format json` writes it (fields flattened).
    pub(crate) fn line(ts: &str, fields: &str, message: &str) -> String {
        let sep = if fields.is_empty() { "" } else { "," };
        format!(
            "{{\"timestamp\":\"{ts}\",\"level\":\"INFO\",\"message\":{}{sep}{fields},\"target\":\"tandem::daemon::heartbeat\"}}",
            serde_json::Value::String(message.into())
        )
    }

    #[test]
    fn timestamps() {
        // 2026-11-23T11:37:36Z = 1795433856 s.
        assert_eq!(
            parse_timestamp("2026-11-23T11:37:36.060007Z"),
            Some(1_795_433_856_060_007_000)
        );
        assert_eq!(
            parse_timestamp("2026-11-23T11:37:36Z"),
            Some(1_795_433_856_000_000_000)
        );
        assert_eq!(parse_timestamp("2026-11-23T11:37:36.06+01:00"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
    }

    #[test]
    fn core_events_are_typed() {
        let l = line(
            "2026-11-23T11:37:35.267615Z",
            r#""kind":"decision","node":"n2","group":"www","term":7,"decision":"lease-wait","wait_ms":728.5"#,
            "waiting for lease of n1 to expire (728 ms)",
        );
        let r = LogRecord::parse(&l).expect("a record");
        assert!(r.is(EventKind::Decision) && r.has_decision(LEASE_WAIT));
        assert_eq!(
            (r.node.as_str(), r.group.as_str(), r.term),
            ("n2", "www", 7)
        );
        assert_eq!(r.wait_ms, Some(728.5));
        assert_eq!(r.at_ns, 1_795_433_855_267_615_000);
        // Without the contract's optional fields (this branch's daemon): None, not 0.
        let l = line(
            "2026-11-23T11:37:35.3Z",
            r#""kind":"decision","node":"","group":"www","decision":"""#,
            "candidate for term 3: 1 of 2 votes granted",
        );
        let r = LogRecord::parse(&l).expect("a record");
        assert_eq!((r.decision.as_deref(), r.wait_ms, r.term), (None, None, 0));
        assert!(!r.has_decision(CANDIDATE));
    }

    #[test]
    fn vip_and_guard_lines() {
        let vip: IpAddr = "192.0.2.100".parse().expect("ip");
        let l = line(
            "2026-11-23T11:37:36.060264Z",
            r#""resource":"vip","vip":"added","address":"192.0.2.100","dev":"eth0""#,
            "vip: added 192.0.2.100/24 to eth0",
        );
        let r = LogRecord::parse(&l).expect("a record");
        assert_eq!(r.vip_change(vip), Some(VipChange::Added));
        assert_eq!(r.vip_change("192.0.2.7".parse().expect("ip")), None);
        let g = r#"{"timestamp":"2026-11-23T11:37:37.000001Z","level":"WARN","target":"tandemd::guard","message":"took down 1 group(s)","kind":"guard-took-down"}"#;
        let r = LogRecord::parse(g).expect("a record");
        assert!(r.is_guard_take_down() && !r.is_self_fence());
        let f = line(
            "2026-11-23T11:37:38Z",
            r#""kind":"self-fence","node":"n1""#,
            "x",
        );
        assert!(LogRecord::parse(&f).expect("a record").is_self_fence());
    }

    #[test]
    fn other_lines_are_skipped() {
        let log = "=== tandem-lab: starting tandemd for n1 ===\n\
                   2026-11-23T11:37:35.246478Z  INFO text line kind=\"node-down\"\n\
                   {\"no\":\"timestamp\"}\n\
                   {broken\n";
        assert_eq!(records(log).count(), 0);
        let tail = readable_tail(
            &format!(
                "plain\n{}\n",
                line(
                    "2026-11-23T11:37:38Z",
                    r#""kind":"node-down""#,
                    "n1 is down"
                )
            ),
            5,
        );
        assert_eq!(
            tail,
            ["plain", "2026-11-23T11:37:38Z  INFO n1 is down [node-down]"]
        );
    }
}
