//! The optional top-level extras: `metrics`, `watchdog` and the global `notify` hooks.

use super::super::defaults;
use super::super::model::{MetricsConfig, WatchdogConfig};
use super::super::raw::{self, Field};
use super::ctx::Ctx;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub(super) fn metrics(ctx: &mut Ctx, raw: Field<raw::RawMetrics>) -> Option<MetricsConfig> {
    let m = ctx.lenient("metrics", raw?)?;
    ctx.unknown("metrics", &m.unknown, raw::RawMetrics::KEYS);
    let listen = ctx.required("metrics", "listen", m.listen)?;
    match listen.parse::<SocketAddr>() {
        Ok(listen) => Some(MetricsConfig { listen }),
        Err(_) => {
            ctx.at_value(
                "metrics.listen",
                format!("`{listen}` is not a socket address such as `127.0.0.1:9405`"),
            );
            None
        }
    }
}

pub(super) fn watchdog(ctx: &mut Ctx, raw: Field<raw::RawWatchdog>) -> Option<WatchdogConfig> {
    let w = ctx.lenient("watchdog", raw?)?;
    ctx.unknown("watchdog", &w.unknown, raw::RawWatchdog::KEYS);
    let device = ctx.required("watchdog", "device", w.device)?;
    let device = ctx.absolute_path("watchdog.device", device)?;
    let timeout = match w.timeout {
        None => defaults::WATCHDOG_TIMEOUT,
        f => ctx.positive_duration("watchdog", "timeout", f)?,
    };
    if timeout < Duration::from_secs(1) || timeout.subsec_nanos() != 0 {
        ctx.at_value(
            "watchdog.timeout",
            "watchdog drivers count in whole seconds: give at least 1s, in whole seconds",
        );
        return None;
    }
    Some(WatchdogConfig { device, timeout })
}

pub(super) fn notify(ctx: &mut Ctx, raw: Field<Vec<String>>) -> Vec<PathBuf> {
    raw.and_then(|n| ctx.lenient("notify", n))
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(j, s)| ctx.absolute_path(&format!("notify[{j}]"), s))
        .collect()
}
