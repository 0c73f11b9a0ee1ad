//! The seam between the heartbeat thread and everything slow: resource operations,
//! fencing, self-fencing, address announcements.
//!
//! The core thread only ever hands work to an [`Executor`] (which must return at once)
//! and later receives the outcome as a core [`Input`] through a channel, so no script,
//! agent or fence device can delay a heartbeat. Agents arrive in a later issue; until
//! then [`StubExecutor`] runs a thread that logs each request and answers the way a
//! cluster without agents would.

use crate::core::{FenceId, FenceResult, GroupId, Input, NodeId, OpId, OpKind, OpResult};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Work the core asked for, as the executor receives it.
#[derive(Clone, Debug, PartialEq)]
pub enum Work {
    RunOp {
        op: OpId,
        group: GroupId,
        resource: usize,
        kind: OpKind,
        timeout: Option<Duration>,
    },
    Fence {
        request: FenceId,
        target: NodeId,
    },
    SelfFence {
        reason: String,
    },
    Announce {
        group: GroupId,
    },
}

/// Accepts work without blocking; answers arrive later as [`Input`]s.
pub trait Executor: Send {
    fn submit(&mut self, work: Work);
}

/// Where answers for the core go.
pub type Answers = mpsc::UnboundedSender<Input>;

/// Logs every request on its own thread and answers `OpDone{Ok}` for operations and
/// `FenceDone{Failed("no fence agents")}` for fences.
pub struct StubExecutor {
    queue: std_mpsc::Sender<Work>,
}

impl StubExecutor {
    pub fn spawn(answers: Answers) -> std::io::Result<StubExecutor> {
        let (queue, rx) = std_mpsc::channel::<Work>();
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
        Work::RunOp {
            op,
            group,
            resource,
            kind,
            ..
        } => {
            tracing::info!("executor (stub): {kind:?} of resource {resource} of {group:?}: ok");
            Some(Input::OpDone {
                op,
                result: OpResult::Ok,
            })
        }
        Work::Fence { request, target } => {
            tracing::warn!("executor (stub): cannot fence {target}: no fence agents");
            Some(Input::FenceDone {
                request,
                result: FenceResult::Failed("no fence agents".into()),
            })
        }
        Work::SelfFence { reason } => {
            tracing::error!("executor (stub): self-fence requested ({reason}); not implemented");
            None
        }
        Work::Announce { group } => {
            tracing::info!("executor (stub): announce addresses of {group:?}");
            None
        }
    }
}
