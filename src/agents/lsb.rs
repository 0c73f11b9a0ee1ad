//! `lsb` resources: System V init scripts (`/etc/init.d/NAME start|stop|status`).
//!
//! Exit codes follow the LSB and, where the LSB leaves room, Pacemaker's reading of it
//! (`services__lsb2ocf` in pacemaker's lib/services/services_lsb.c), so scripts that work
//! under Pacemaker work here:
//! - `status`: 0 running; 1 (dead, pid file left), 2 (dead, lock file left) and 3 all
//!   mean not running; 4 is "unknown" and a failure, like every other code (150 "not
//!   installed" and 151 "insufficient privileges" are named in the reason).
//! - `start`/`stop`: 0 is success, anything else a failure, with two forgivenesses that
//!   the LSB asks of scripts but many do not honour: a start that fails while `status`
//!   says running is a success (the service *is* running), and a stop that fails while
//!   `status` says stopped is a success (the service *is* stopped).

use super::process::{self, Exit, Finished, Launch, Spec};
use super::OpContext;
use crate::config::ResourceKind;
use crate::core::{OpKind, OpResult};
use std::path::Path;
use std::time::Duration;

pub async fn run_with(ctx: &OpContext<'_>, launch: &Launch) -> OpResult {
    let ResourceKind::Lsb { script } = &ctx.resource.kind else {
        return OpResult::Failed(format!("{}: not an lsb resource", ctx.resource.name));
    };
    let name = ctx.resource.name.as_str();
    let left = ctx.budget();
    // The operation's environment (fencing token included) rides on the launch: every
    // call of the script for this operation, the follow-up `status` too, gets it.
    let launch = &launch.clone().with_env(ctx.env());
    match ctx.kind {
        OpKind::Monitor => status(launch, name, script, ctx.timeout).await,
        OpKind::Start | OpKind::Stop => {
            // What `status` says when the operation reached its goal despite its exit code.
            let (verb, goal, said) = if ctx.kind == OpKind::Start {
                ("start", OpResult::Ok, "running: started")
            } else {
                ("stop", OpResult::NotRunning, "stopped: stopped")
            };
            let done = action(launch, name, script, verb, ctx.timeout).await;
            match done.exit {
                Exit::Code(0) => OpResult::Ok,
                Exit::TimedOut => OpResult::TimedOut,
                _ if status(launch, name, script, left()).await == goal => {
                    tracing::warn!(
                        resource = name,
                        "{}; status says {said}",
                        done.describe(verb)
                    );
                    OpResult::Ok
                }
                _ => OpResult::Failed(done.describe(verb)),
            }
        }
    }
}

async fn action(
    launch: &Launch,
    name: &str,
    script: &Path,
    verb: &str,
    timeout: Duration,
) -> Finished {
    let spec = Spec::new(name, script, timeout).arg(verb);
    process::run(launch, &spec).await
}

async fn status(launch: &Launch, name: &str, script: &Path, timeout: Duration) -> OpResult {
    let done = action(launch, name, script, "status", timeout).await;
    status_result(&done)
}

/// Maps the outcome of `script status` (see the module comment for the source).
pub fn status_result(done: &Finished) -> OpResult {
    match &done.exit {
        Exit::Code(0) => OpResult::Ok,
        Exit::Code(1..=3) => OpResult::NotRunning,
        Exit::Code(4) => OpResult::Failed(done.describe("status unknown")),
        Exit::Code(150) => OpResult::Failed(done.describe("status: not installed")),
        Exit::Code(151) => OpResult::Failed(done.describe("status: insufficient privileges")),
        Exit::TimedOut => OpResult::TimedOut,
        _ => OpResult::Failed(done.describe("status")),
    }
}
