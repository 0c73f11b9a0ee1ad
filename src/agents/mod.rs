//! Resource agents: how a `Start`/`Stop`/`Monitor` of one configured resource is carried
//! out on this machine, and the helpers around them (fence agents, notify hooks, health
//! checks, address announcements).
//!
//! Everything here runs in the executor's runtime, never on the heartbeat thread: an
//! agent may take seconds, a heartbeat may not wait for it. Every operation ends within
//! its timeout (the process group of a script is killed on expiry), so the core always
//! gets an answer.

pub mod announce;
pub mod check_state;
pub mod checks;
pub mod exec;
pub mod fence;
pub mod hooks;
pub mod lsb;
pub mod ocf;
pub mod process;
pub mod systemd;
pub mod vip;

use crate::config::{ResourceConfig, ResourceKind};
use crate::core::{OpKind, OpResult};
use std::time::Duration;

/// One operation of one resource, as an agent receives it.
#[derive(Clone, Debug)]
pub struct OpContext<'a> {
    /// Name of the group the resource belongs to (for logs and OCF instance names).
    pub group: &'a str,
    pub resource: &'a ResourceConfig,
    pub kind: OpKind,
    /// Already resolved: the resource's own timeout, else the agent's default.
    pub timeout: Duration,
    /// How often the operation recurs: the group's `monitor_interval` for monitors, zero
    /// for start and stop (OCF agents see it as `OCF_RESKEY_CRM_meta_interval`).
    pub interval: Duration,
}

/// Timeout of an operation when the config gives none (OCF agents may refine it from
/// their meta-data).
pub fn default_timeout(kind: &ResourceKind) -> Duration {
    match kind {
        ResourceKind::Vip { .. } => Duration::from_secs(10),
        _ => Duration::from_secs(20),
    }
}

/// An operation's name: the OCF action, and what logs and metrics call it.
pub fn op_name(kind: OpKind) -> &'static str {
    match kind {
        OpKind::Start => "start",
        OpKind::Stop => "stop",
        OpKind::Monitor => "monitor",
    }
}

/// Runs one operation and reports it in OCF terms. Never panics on anything an agent
/// does; returns within `ctx.timeout` plus a short grace for killing.
pub async fn run_op(ctx: &OpContext<'_>) -> OpResult {
    match &ctx.resource.kind {
        ResourceKind::Vip { .. } => vip::run(ctx).await,
        ResourceKind::Exec { .. } => exec::run(ctx).await,
        ResourceKind::Lsb { .. } => lsb::run(ctx).await,
        ResourceKind::Ocf { .. } => ocf::run(ctx).await,
        ResourceKind::Systemd { .. } => systemd::run(ctx).await,
    }
}
