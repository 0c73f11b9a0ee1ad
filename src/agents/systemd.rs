//! `systemd` resources: `systemctl start|stop UNIT`, monitored with
//! `systemctl is-active --quiet UNIT`.
//!
//! `systemctl` is looked up on `PATH` (the child's `PATH`, so a [`Launch`] that sets one
//! can put a stand-in first, which is how the tests check this contract on machines
//! without systemd). `is-active` exits 0 for an active unit and 3 for an inactive (or
//! failed, or unknown) one; anything else means systemctl itself could not tell. A stop
//! that fails while the unit is not active counts as stopped, as for LSB scripts.
//!
//! The fencing token (`TANDEM_TERM`, ...: `OpContext::env`) is deliberately not passed:
//! systemctl asks the service manager to start the unit, and the unit's processes get
//! the manager's environment, never systemctl's, so the variables would reach nobody
//! (docs/agents.md, "Fencing token").

use super::process::{self, Exit, Finished, Launch, Spec};
use super::OpContext;
use crate::config::ResourceKind;
use crate::core::{OpKind, OpResult};
use std::time::Duration;

const SYSTEMCTL: &str = "systemctl";

pub async fn run_with(ctx: &OpContext<'_>, launch: &Launch) -> OpResult {
    let ResourceKind::Systemd { unit } = &ctx.resource.kind else {
        return OpResult::Failed(format!("{}: not a systemd resource", ctx.resource.name));
    };
    let name = ctx.resource.name.as_str();
    let left = ctx.budget();
    match ctx.kind {
        OpKind::Monitor => is_active(launch, name, unit, ctx.timeout).await,
        OpKind::Start => {
            let done = systemctl(launch, name, &["start", unit], ctx.timeout, false).await;
            match done.exit {
                Exit::Code(0) => OpResult::Ok,
                Exit::TimedOut => OpResult::TimedOut,
                _ => OpResult::Failed(done.describe(&format!("systemctl start {unit}"))),
            }
        }
        OpKind::Stop => {
            let done = systemctl(launch, name, &["stop", unit], ctx.timeout, false).await;
            match done.exit {
                Exit::Code(0) => OpResult::Ok,
                Exit::TimedOut => OpResult::TimedOut,
                _ => match is_active(launch, name, unit, left()).await {
                    OpResult::NotRunning => OpResult::Ok,
                    _ => OpResult::Failed(done.describe(&format!("systemctl stop {unit}"))),
                },
            }
        }
    }
}

async fn systemctl(
    launch: &Launch,
    name: &str,
    args: &[&str],
    timeout: Duration,
    quiet: bool,
) -> Finished {
    let mut spec = Spec::new(name, SYSTEMCTL, timeout);
    for a in args {
        spec = spec.arg(a);
    }
    if quiet {
        spec = spec.quiet();
    }
    process::run(launch, &spec).await
}

async fn is_active(launch: &Launch, name: &str, unit: &str, timeout: Duration) -> OpResult {
    let done = systemctl(launch, name, &["is-active", "--quiet", unit], timeout, true).await;
    match done.exit {
        Exit::Code(0) => OpResult::Ok,
        Exit::Code(3) => OpResult::NotRunning,
        Exit::TimedOut => OpResult::TimedOut,
        _ => OpResult::Failed(done.describe(&format!("systemctl is-active {unit}"))),
    }
}
