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
pub mod promotable;
pub mod score;
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
    /// Which ownership the operation serves; `None` only where no core decided it (the
    /// lease guard's emergency stop).
    pub token: Option<FencingToken>,
}

/// The fencing token of one operation (docs/agents.md, "Fencing token"): the term the
/// core decided it in and the incarnation of the node that runs it. Terms only grow, so
/// a service that remembers the highest term it has seen can refuse a write from a
/// lower one: that writer is an owner that has been replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FencingToken {
    /// This node's name (the group's owner while it runs the group).
    pub node: String,
    pub incarnation: u64,
    pub term: u64,
}

impl OpContext<'_> {
    /// `(name, value)` pairs every process an operation runs gets in its environment:
    /// what it is (`TANDEM_GROUP`, `TANDEM_RESOURCE`, `TANDEM_ACTION`) and, when known,
    /// the fencing token (`TANDEM_NODE`, `TANDEM_TERM`, `TANDEM_INCARNATION`).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        tandem_env(
            self.group,
            &self.resource.name,
            op_name(self.kind),
            self.token.as_ref(),
        )
    }

    /// What is left of the operation's `timeout`, counted from this call: a follow-up
    /// query (`status` after a failed stop) shares the budget, as the caller was
    /// promised an answer within it.
    pub fn budget(&self) -> impl Fn() -> Duration {
        let deadline = tokio::time::Instant::now() + self.timeout;
        move || deadline.saturating_duration_since(tokio::time::Instant::now())
    }
}

/// The `TANDEM_*` variables of one operation (see [`OpContext::env`]); `action` is its
/// OCF name, also for the actions that are not an [`OpKind`] (promote, demote, notify).
pub fn tandem_env(
    group: &str,
    resource: &str,
    action: &str,
    token: Option<&FencingToken>,
) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("TANDEM_GROUP", group.to_string()),
        ("TANDEM_RESOURCE", resource.to_string()),
        ("TANDEM_ACTION", action.to_string()),
    ];
    if let Some(t) = token {
        env.push(("TANDEM_NODE", t.node.clone()));
        env.push(("TANDEM_TERM", t.term.to_string()));
        env.push(("TANDEM_INCARNATION", t.incarnation.to_string()));
    }
    env
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
    // The agents' `run_with` take a launch so that tests can set PATH and the like.
    let launch = process::Launch::default();
    match &ctx.resource.kind {
        ResourceKind::Vip { .. } => vip::run(ctx).await,
        ResourceKind::Exec { .. } => exec::run_with(ctx, &launch).await,
        ResourceKind::Lsb { .. } => lsb::run_with(ctx, &launch).await,
        ResourceKind::Ocf { .. } => ocf::run_with(ctx, &launch).await,
        ResourceKind::Systemd { .. } => systemd::run_with(ctx, &launch).await,
    }
}
