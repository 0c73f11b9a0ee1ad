//! The seam between the heartbeat thread and everything slow: resource operations,
//! fencing, self-fencing, address announcements, notify hooks, health checks.
//!
//! The core thread only ever hands work to an [`Executor`] (which must return at once)
//! and later receives the outcome as a core [`Input`] through a channel, so no script,
//! agent or fence device can delay a heartbeat. The heartbeat thread resolves every
//! piece of work against the config it runs (resource definitions, fence agents)
//! before handing it over, so the executor never needs to know about reloads.

use super::metrics::Metrics;
use crate::agents::hooks::HookEvent;
use crate::agents::{self, FencingToken, OpContext};
use crate::config::CheckConfig;
use crate::config::{FenceAgentConfig, ResourceConfig, SelfFence};
use crate::core::{FenceId, FenceResult, GroupId, Input, NodeId, OpId, OpKind, OpResult};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long one fence agent may take (fence_ipmilan's default power timeout is 20 s,
/// plus login and a status check).
pub const FENCE_TIMEOUT: Duration = Duration::from_secs(60);

/// Work the core asked for, resolved against the running config.
#[derive(Clone, Debug, PartialEq)]
pub enum Work {
    RunOp {
        op: OpId,
        group: GroupId,
        group_name: String,
        /// `None` when the core named a resource the config does not have (a bug or a
        /// reload race): answered as a failure, never guessed.
        resource: Option<Box<ResourceConfig>>,
        kind: OpKind,
        timeout: Option<Duration>,
        /// How often this operation recurs (monitors), zero for one-shot operations.
        interval: Duration,
        /// The term of the core's decision and this node's name and incarnation.
        token: FencingToken,
    },
    Fence {
        request: FenceId,
        target: NodeId,
        target_name: String,
        agents: Vec<FenceAgentConfig>,
    },
    SelfFence {
        reason: String,
        action: SelfFence,
    },
    Announce {
        group: GroupId,
        vips: Vec<ResourceConfig>,
    },
    /// Run notify hooks (keepalived-style) for one event; nobody waits for them.
    Notify {
        hooks: Vec<std::path::PathBuf>,
        event: HookEvent,
    },
}

/// How long one notify hook may run before its process group is killed.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// Accepts work without blocking; answers arrive later as [`Input`]s.
pub trait Executor: Send {
    fn submit(&mut self, work: Work);
}

/// Where answers for the core go.
pub type Answers = mpsc::UnboundedSender<Input>;

/// Runs every piece of work as its own task on a dedicated thread's runtime: the core
/// already serialises the operations of one group, and different groups, fences and
/// announcements must not wait for each other.
pub struct AgentExecutor {
    queue: mpsc::UnboundedSender<Work>,
}

impl AgentExecutor {
    /// Also runs this node's health checks, whose verdicts go to the core as
    /// `Input::Health` through `answers`.
    pub fn spawn(
        answers: Answers,
        metrics: Arc<Metrics>,
        checks: Vec<CheckConfig>,
        node_name: String,
    ) -> std::io::Result<AgentExecutor> {
        let (queue, mut rx) = mpsc::unbounded_channel::<Work>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("tandem-exec".into())
            .spawn(move || {
                runtime.block_on(async move {
                    tokio::spawn(agents::checks::run_checks_on(
                        checks,
                        node_name,
                        answers.clone(),
                        metrics.checks.clone(),
                    ));
                    while let Some(work) = rx.recv().await {
                        let answers = answers.clone();
                        let metrics = metrics.clone();
                        tokio::spawn(async move {
                            if let Some(answer) = carry_out(work, &metrics).await {
                                // The heartbeat thread is gone only at shutdown.
                                let _ = answers.send(answer);
                            }
                        });
                    }
                })
            })?;
        Ok(AgentExecutor { queue })
    }
}

impl<E: Executor + ?Sized> Executor for Box<E> {
    fn submit(&mut self, work: Work) {
        (**self).submit(work)
    }
}

impl Executor for AgentExecutor {
    fn submit(&mut self, work: Work) {
        if self.queue.send(work).is_err() {
            tracing::error!("executor thread is gone; work dropped");
        }
    }
}

/// Carries out one piece of work; `Some` is the answer for the core.
pub async fn carry_out(work: Work, metrics: &Metrics) -> Option<Input> {
    match work {
        Work::RunOp {
            op,
            group_name,
            resource,
            kind,
            timeout,
            interval,
            token,
            ..
        } => {
            let Some(resource) = resource else {
                tracing::error!(
                    group = group_name.as_str(),
                    "{} of a resource the config does not have: refused",
                    crate::agents::op_name(kind)
                );
                return Some(Input::OpDone {
                    op,
                    result: OpResult::Failed("resource not in the config".into()),
                });
            };
            let ctx = OpContext {
                group: &group_name,
                resource: &resource,
                kind,
                timeout: op_timeout(&resource, kind, timeout).await,
                interval,
                token: Some(token),
            };
            let result = run_op_recorded(&ctx, metrics).await;
            Some(Input::OpDone { op, result })
        }
        Work::Fence {
            request,
            target,
            target_name,
            agents,
        } => {
            let result = fence(target, &target_name, &agents).await;
            Some(Input::FenceDone { request, result })
        }
        Work::SelfFence { reason, action } => {
            self_fence(&reason, &action).await;
            None
        }
        Work::Announce { group, vips } => {
            if !vips.is_empty() {
                tracing::info!("announcing the addresses of {group:?} again");
            }
            for vip in &vips {
                agents::vip::announce_again(vip).await;
            }
            None
        }
        Work::Notify { hooks, event } => {
            // Returns at once: hooks run in their own task, in event order.
            let _ = agents::hooks::notify(&hooks, &event, HOOK_TIMEOUT);
            None
        }
    }
}

/// The operation's own timeout, else the OCF agent's meta-data, else ours.
async fn op_timeout(
    resource: &ResourceConfig,
    kind: OpKind,
    configured: Option<Duration>,
) -> Duration {
    let fallback = agents::default_timeout(&resource.kind);
    match configured {
        Some(t) => t,
        None => {
            let launch = agents::process::Launch::default();
            agents::ocf::op_timeout(resource, kind, &launch, fallback).await
        }
    }
}

/// Runs one resource operation, counts it in `metrics` and logs its outcome (routine
/// monitors only at debug level).
async fn run_op_recorded(ctx: &OpContext<'_>, metrics: &Metrics) -> OpResult {
    let kind = ctx.kind;
    let began = Instant::now();
    let result = agents::run_op(ctx).await;
    let took = began.elapsed();
    let name = ctx.resource.name.as_str();
    let ok =
        matches!(result, OpResult::Ok) || (result == OpResult::NotRunning && kind != OpKind::Start);
    metrics.record_op(
        ctx.group,
        name,
        crate::agents::op_name(kind),
        took.as_secs_f64(),
        ok,
    );
    match &result {
        OpResult::Ok | OpResult::NotRunning if kind == OpKind::Monitor => tracing::debug!(
            resource = name,
            "monitor: {result:?} ({} ms)",
            took.as_millis()
        ),
        OpResult::Ok | OpResult::NotRunning => tracing::info!(
            resource = name,
            "{}: {result:?} ({} ms)",
            crate::agents::op_name(kind),
            took.as_millis()
        ),
        _ => tracing::warn!(
            resource = name,
            "{} failed: {result:?} ({} ms)",
            crate::agents::op_name(kind),
            took.as_millis()
        ),
    }
    result
}

/// Fences `target` through its configured agents and logs the outcome.
async fn fence(target: NodeId, target_name: &str, agents: &[FenceAgentConfig]) -> FenceResult {
    tracing::warn!("fencing {target_name} ({target})");
    let result = if agents.is_empty() {
        FenceResult::Failed("no fence agent is configured for this node".into())
    } else {
        agents::fence::fence(agents, target, target_name, FENCE_TIMEOUT).await
    };
    match &result {
        FenceResult::Off => tracing::warn!("{target_name} is fenced (confirmed off)"),
        FenceResult::Failed(why) => tracing::error!("fencing {target_name} failed: {why}"),
    }
    result
}

/// The node must stop running anything at once and cannot prove it has. Like sbd and
/// Pacemaker's watchdog fencing, reboot through sysrq: no shutdown scripts (they may
/// hang, which is what got us here), no sync (the disks may be what hangs).
async fn self_fence(reason: &str, action: &SelfFence) {
    tracing::error!("SELF-FENCE: {reason}");
    let sysrq = match action {
        SelfFence::Reboot => Some(b"b"),
        SelfFence::Poweroff => Some(b"o"),
        SelfFence::None => {
            tracing::error!(
                "self_fence is `none`: NOT rebooting; this node may still run resources \
                 another node is about to start (unsafe, for labs only)"
            );
            None
        }
        SelfFence::Command(path) => {
            let status = tokio::process::Command::new(path)
                .env("TANDEM_REASON", reason)
                .status()
                .await;
            match status {
                Ok(s) if s.success() => {
                    tracing::error!("self-fence command {} ran", path.display())
                }
                Ok(s) => tracing::error!("self-fence command {} failed: {s}", path.display()),
                Err(e) => tracing::error!("cannot run self-fence command {}: {e}", path.display()),
            }
            None
        }
    };
    if let Some(letter) = sysrq {
        if let Err(e) = std::fs::write("/proc/sysrq-trigger", letter) {
            tracing::error!("cannot write /proc/sysrq-trigger ({e}); the node is NOT fenced");
        }
    }
}

/// Logs every request and answers the way a cluster without agents would: operations
/// succeed, fences fail. For tests of the daemon's plumbing that must not touch the
/// machine.
pub struct StubExecutor {
    queue: std::sync::mpsc::Sender<Work>,
}

impl StubExecutor {
    pub fn spawn(answers: Answers) -> std::io::Result<StubExecutor> {
        let (queue, rx) = std::sync::mpsc::channel::<Work>();
        std::thread::Builder::new()
            .name("tandem-exec".into())
            .spawn(move || {
                for work in rx {
                    if let Some(answer) = stub_answer(work) {
                        if answers.send(answer).is_err() {
                            return;
                        }
                    }
                }
            })?;
        Ok(StubExecutor { queue })
    }
}

impl Executor for StubExecutor {
    fn submit(&mut self, work: Work) {
        if self.queue.send(work).is_err() {
            tracing::error!("executor thread is gone; work dropped");
        }
    }
}

/// What the stub answers for one piece of work (`None`: no answer expected).
pub fn stub_answer(work: Work) -> Option<Input> {
    match work {
        Work::RunOp { op, kind, .. } => {
            tracing::info!("executor (stub): {}: ok", crate::agents::op_name(kind));
            Some(Input::OpDone {
                op,
                result: OpResult::Ok,
            })
        }
        Work::Fence {
            request,
            target_name,
            ..
        } => {
            tracing::warn!("executor (stub): cannot fence {target_name}: no fence agents");
            Some(Input::FenceDone {
                request,
                result: FenceResult::Failed("no fence agents".into()),
            })
        }
        Work::SelfFence { reason, .. } => {
            tracing::error!("executor (stub): self-fence requested ({reason}); not carried out");
            None
        }
        Work::Announce { .. } | Work::Notify { .. } => None,
    }
}
