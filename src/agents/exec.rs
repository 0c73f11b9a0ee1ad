//! `exec` resources: three shell strings, run with `sh -c`.
//!
//! The contract is the smallest useful one, borrowed from OCF: start and stop succeed on
//! exit 0; monitor exit 0 means running, 7 (OCF_NOT_RUNNING) means cleanly stopped, and
//! anything else is a failure. A resource without a monitor command is trusted to run
//! once started.

use super::process::{self, Exit, Finished, Launch, Spec};
use super::OpContext;
use crate::config::ResourceKind;
use crate::core::{OpKind, OpResult};

/// The OCF "not running" code that exec monitors share.
pub const EXIT_NOT_RUNNING: i32 = 7;

pub async fn run_with(ctx: &OpContext<'_>, launch: &Launch) -> OpResult {
    let ResourceKind::Exec {
        start,
        stop,
        monitor,
        ..
    } = &ctx.resource.kind
    else {
        return OpResult::Failed(format!("{}: not an exec resource", ctx.resource.name));
    };
    let (what, script) = match ctx.kind {
        OpKind::Start => ("start", start.as_str()),
        OpKind::Stop => ("stop", stop.as_str()),
        OpKind::Monitor => match monitor {
            Some(m) => ("monitor", m.as_str()),
            None => return OpResult::Ok,
        },
    };
    let mut spec = Spec::shell(ctx.resource.name.clone(), script, ctx.timeout).envs(ctx.env());
    if ctx.kind == OpKind::Start {
        // What the start leaves running stays in its process group: the lease guard
        // kills that group if it must act.
        spec = spec.guarded_by(u64::from(crate::core::GroupId::of_name(ctx.group).0));
    }
    let finished = process::run(launch, &spec).await;
    map(ctx.kind, what, &finished)
}

fn map(kind: OpKind, what: &str, finished: &Finished) -> OpResult {
    match (&finished.exit, kind) {
        (Exit::Code(0), _) => OpResult::Ok,
        (Exit::Code(EXIT_NOT_RUNNING), OpKind::Monitor) => OpResult::NotRunning,
        (Exit::TimedOut, _) => OpResult::TimedOut,
        _ => OpResult::Failed(finished.describe(what)),
    }
}
