//! The clocks the daemon reads. The core's time is `CLOCK_BOOTTIME`: monotonic, and it
//! keeps counting through suspend and VM pauses, so a node that was frozen wakes up
//! knowing its lease ran out.

use crate::core::Instant;
use nix::time::{clock_gettime, ClockId};

fn nanos(ts: nix::sys::time::TimeSpec) -> u64 {
    let secs = u64::try_from(ts.tv_sec()).unwrap_or(0);
    let sub = u64::try_from(ts.tv_nsec()).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(sub)
}

/// Now on `CLOCK_BOOTTIME`. Falls back to `CLOCK_MONOTONIC` only if the kernel lacks
/// BOOTTIME (pre-2.6.39), which never happens on a supported system.
pub fn now() -> Instant {
    let ts = clock_gettime(ClockId::CLOCK_BOOTTIME)
        .or_else(|_| clock_gettime(ClockId::CLOCK_MONOTONIC))
        .unwrap_or_else(|_| nix::sys::time::TimeSpec::new(0, 0));
    Instant::from_nanos(nanos(ts))
}

/// Wall-clock nanoseconds since the Unix epoch (0 if the clock is unreadable).
pub fn realtime_ns() -> u64 {
    clock_gettime(ClockId::CLOCK_REALTIME)
        .map(nanos)
        .unwrap_or(0)
}
