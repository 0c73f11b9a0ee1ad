//! The lab's one observation layer: everything an experiment (demo, bench, chaos,
//! steady, stall) learns about a running cluster comes through here, never from the
//! experiments' own scraping.
//!
//! - [`events`]: tandemd's JSON log lines as typed records (kind, group, decision, ...);
//! - [`client`]: the client observer (ARP and ICMP from one AF_PACKET socket);
//! - [`addr`]: netlink times of the VIP appearing on / leaving a node's interface;
//! - [`status`]: the daemons' status reports over their control sockets.
//!
//! All times are CLOCK_REALTIME nanoseconds since the epoch, because the daemons log
//! wall-clock times.

pub mod addr;
pub mod client;
pub mod events;
pub(crate) mod raw;
pub mod status;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A duration in (fractional) milliseconds, as reports show them.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Nanoseconds (a difference of `realtime_ns` values) in milliseconds.
pub fn ns_to_ms(ns: i64) -> f64 {
    ns as f64 / 1e6
}

/// CLOCK_REALTIME in ns since the epoch (the clock the daemons' log lines use).
pub fn realtime_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// `02:00:00:00:00:09`.
pub fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
