//! The `heartbeat` section: port, timing and how the heartbeat thread runs, with the
//! rules that tie the timings to each other.

use super::super::defaults;
use super::super::duration::format_duration;
use super::super::model::HeartbeatConfig;
use super::super::raw::{self, Field, RawDuration};
use super::ctx::Ctx;
use crate::core::spec::Timing;
use std::time::Duration;

const P: &str = "heartbeat";

/// The timings as given; `None` means "given but broken": rules involving it are
/// skipped (absent ones already hold their defaults, except `stop_before`).
struct Timings {
    interval: Option<Duration>,
    deadtime: Option<Duration>,
    warntime: Option<Duration>,
    initdead: Option<Duration>,
    /// No default here: it depends on the interval too and is filled in at the end;
    /// only an explicit value is checked.
    stop_before: Option<Duration>,
}

pub(super) fn heartbeat(ctx: &mut Ctx, raw: Field<raw::RawHeartbeat>) -> HeartbeatConfig {
    let Some(mut raw) = raw.and_then(|r| ctx.lenient(P, r)) else {
        return all_defaults();
    };
    ctx.unknown(P, &raw.unknown, raw::RawHeartbeat::KEYS);
    let port = match ctx.field(P, "port", raw.port.take()) {
        Some(0) => {
            ctx.at_value("heartbeat.port", "port 0 is not a usable UDP port");
            defaults::HEARTBEAT_PORT
        }
        Some(p) => p,
        None => defaults::HEARTBEAT_PORT,
    };
    let t = timings(ctx, &mut raw);
    let max_drift_ppm = ctx.field_or(
        P,
        "max_drift_ppm",
        raw.max_drift_ppm,
        defaults::HEARTBEAT_MAX_DRIFT_PPM,
    );
    if max_drift_ppm > 100_000 {
        ctx.at_value(
            "heartbeat.max_drift_ppm",
            format!("{max_drift_ppm} ppm is more than 10%: no real clock drifts that much"),
        );
    }
    if let Some(deadtime) = t.deadtime {
        timing_rules(ctx, &t, deadtime);
    }
    let derived = Timing::with_defaults(
        t.interval.unwrap_or(defaults::HEARTBEAT_INTERVAL),
        t.deadtime.unwrap_or(defaults::HEARTBEAT_DEADTIME),
    );
    HeartbeatConfig {
        port,
        timing: Timing {
            warntime: t.warntime.unwrap_or(derived.warntime),
            initdead: t.initdead.unwrap_or(derived.initdead),
            max_drift_ppm,
            stop_before_lease_end: t.stop_before.unwrap_or(derived.stop_before_lease_end),
            ..derived
        },
        realtime: ctx.field_or(P, "realtime", raw.realtime, defaults::HEARTBEAT_REALTIME),
        mlockall: ctx.field_or(P, "mlockall", raw.mlockall, defaults::HEARTBEAT_MLOCKALL),
    }
}

/// The section is absent.
fn all_defaults() -> HeartbeatConfig {
    HeartbeatConfig {
        port: defaults::HEARTBEAT_PORT,
        timing: Timing::with_defaults(defaults::HEARTBEAT_INTERVAL, defaults::HEARTBEAT_DEADTIME),
        realtime: defaults::HEARTBEAT_REALTIME,
        mlockall: defaults::HEARTBEAT_MLOCKALL,
    }
}

fn timings(ctx: &mut Ctx, raw: &mut raw::RawHeartbeat) -> Timings {
    let interval = if raw.interval.is_some() {
        ctx.positive_duration(P, "interval", raw.interval.take())
    } else {
        Some(defaults::HEARTBEAT_INTERVAL)
    };
    let deadtime = if raw.deadtime.is_some() {
        ctx.positive_duration(P, "deadtime", raw.deadtime.take())
    } else {
        Some(defaults::HEARTBEAT_DEADTIME)
    };
    let opt = |ctx: &mut Ctx, key: &str, f: Field<RawDuration>, default: Option<Duration>| {
        if f.is_some() {
            ctx.duration(P, key, f)
        } else {
            default
        }
    };
    let warntime = opt(
        ctx,
        "warntime",
        raw.warntime.take(),
        deadtime.map(defaults::warntime),
    );
    let initdead = opt(
        ctx,
        "initdead",
        raw.initdead.take(),
        deadtime.map(defaults::initdead),
    );
    let stop_before = opt(
        ctx,
        "stop_before_lease_end",
        raw.stop_before_lease_end.take(),
        None,
    );
    Timings {
        interval,
        deadtime,
        warntime,
        initdead,
        stop_before,
    }
}

/// How the other timings must relate to a deadtime that converted: per timing its key,
/// its name in the message, its value, when it breaks the rule, and the rule in words.
fn timing_rules(ctx: &mut Ctx, t: &Timings, deadtime: Duration) {
    type Breaks = fn(Duration, Duration) -> bool;
    let rules: [(&str, &str, Option<Duration>, Breaks, &str); 4] = [
        (
            "heartbeat.interval",
            "heartbeat.interval",
            t.interval,
            |v, d| v >= d,
            "must be shorter than heartbeat.deadtime",
        ),
        (
            "heartbeat.warntime",
            "warntime",
            t.warntime,
            |v, d| v > d,
            "must not exceed deadtime",
        ),
        (
            "heartbeat.stop_before_lease_end",
            "stop_before_lease_end",
            t.stop_before,
            |v, d| v >= d,
            "must be shorter than deadtime",
        ),
        (
            "heartbeat.initdead",
            "initdead",
            t.initdead,
            |v, d| v < d,
            "must be at least deadtime",
        ),
    ];
    for (key, name, value, breaks, rule) in rules {
        if let Some(v) = value.filter(|&v| breaks(v, deadtime)) {
            let (v, d) = (format_duration(v), format_duration(deadtime));
            ctx.at_value(key, format!("{name} ({v}) {rule} ({d})"));
        }
    }
}
