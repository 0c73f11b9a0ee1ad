//! The core's inputs and outputs.
//!
//! Contract for drivers (the daemon, the simulator): apply one [`Input`] with
//! `Node::handle`, then carry out every returned [`Action`] in order before the next
//! input. A [`Action::Persist`] must be durable before any later action runs (the
//! core relies on "persist before you send what depends on it"). Time passed to the
//! core never goes backwards.

use super::ids::{GroupId, NodeId, Term};
use super::message::Heartbeat;
use super::reason::Reason;
use super::time::Instant;
use std::time::Duration;

// A heartbeat is moved in and out exactly once per event; boxing it would only add an
// allocation on the hot path to shrink the other variants.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// A deadline returned by `next_deadline` has passed (or the driver just woke up).
    Tick,
    /// An authenticated, non-replayed heartbeat arrived on link `link`.
    Heartbeat { link: usize, heartbeat: Heartbeat },
    /// A resource operation the core asked for has finished.
    OpDone { op: OpId, result: OpResult },
    /// A fence the core asked for has finished.
    FenceDone {
        request: FenceId,
        result: FenceResult,
    },
    /// An administrative command from `tandemctl`.
    Admin(AdminCommand),
    /// A health check changed (ping/script checks): `ok = false` makes this node
    /// ineligible to own groups.
    Health { ok: bool },
    /// Something outside the agents saw a resource of a group fail at once (the
    /// interface of a `vip` lost its carrier): if this node runs it, the group fails
    /// over now instead of at the next monitor. `resource` is the resource's name.
    ResourceFault {
        group: GroupId,
        resource: String,
        fault: Fault,
    },
    /// The arbiter answered (or failed to answer) a request the core made with
    /// [`Action::Arbiter`]; `asked_at` is that request's, echoed unchanged.
    Arbiter {
        asked_at: Instant,
        answer: ArbiterAnswer,
    },
}

/// A request for the external arbiter (docs/design.md, "The arbiter"). The driver must
/// send it *after* it got the action, so that everything the arbiter does for it
/// happens after `asked_at` on every clock: the vote it grants or keeps lasts at least
/// `ttl` from then.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArbiterRequest {
    pub asked_at: Instant,
    pub ask: ArbiterAsk,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArbiterAsk {
    /// Give this node the group's vote at `term` if nobody else holds it (or it is
    /// already this node's): refresh this node's arbiter lease, then attach the vote
    /// to it.
    Claim { group: GroupId, term: Term },
    /// Keep the vote this node holds: refresh its arbiter lease.
    Keep { group: GroupId, term: Term },
    /// Give the vote up: this node has stopped the group (or never started it).
    Release { group: GroupId, term: Term },
    /// Only say whether the arbiter is reachable (it counts towards quorum).
    Probe,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArbiterAnswer {
    /// The vote for `group` at `term` is this node's, for at least the arbiter's TTL
    /// after the request's `asked_at`.
    Granted { group: GroupId, term: Term },
    /// Someone else holds the vote; nobody gets it before that one's lease is gone.
    HeldBy {
        group: GroupId,
        holder: NodeId,
        term: Term,
    },
    /// The vote this node held for `group` is gone (its arbiter lease expired).
    Lost { group: GroupId },
    /// The arbiter answered a probe or a release.
    Reachable,
    /// No answer: an error, a timeout, an unreachable arbiter. It costs the vote,
    /// nothing else.
    Unreachable,
}

/// Why a resource failed outside of an operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The interface lost its carrier (IFF_RUNNING / IFF_LOWER_UP off) or was set down.
    NoCarrier { interface: String },
    /// The interface was deleted.
    InterfaceGone { interface: String },
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::NoCarrier { interface } => write!(f, "{interface} lost its carrier"),
            Fault::InterfaceGone { interface } => write!(f, "{interface} was removed"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FenceId(pub u64);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    Start,
    Stop,
    Monitor,
}

/// The outcome of an operation, in OCF terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// OCF_SUCCESS: started / stopped / monitor says running.
    Ok,
    /// OCF_NOT_RUNNING: monitor says cleanly stopped (a failure only if it should run).
    NotRunning,
    /// Any other outcome, with a short reason for status and logs.
    Failed(String),
    /// The operation hit its timeout and its process group was killed.
    TimedOut,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FenceResult {
    /// The target is confirmed off.
    Off,
    Failed(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminCommand {
    Standby {
        node: NodeId,
        on: bool,
    },
    /// Move a group to `to`, or to the best other node when `None`; the preference
    /// this leaves behind lapses after `lifetime`, if given.
    Move {
        group: GroupId,
        to: Option<NodeId>,
        lifetime: Option<Duration>,
    },
    /// Keep `node` from owning `group` (`on`), for `lifetime` if given, or lift that.
    Ban {
        group: GroupId,
        node: NodeId,
        on: bool,
        lifetime: Option<Duration>,
    },
    /// Forget the location a `Move` left behind.
    ClearMove {
        group: GroupId,
    },
    Cleanup {
        group: GroupId,
    },
    Maintenance {
        group: Option<GroupId>,
        on: bool,
    },
    /// Fence a node by hand (the admin vouches it is safe to do so).
    Fence {
        node: NodeId,
    },
}

#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Send this heartbeat to every peer on every link, now.
    Send(Heartbeat),
    /// Make this state durable (atomic write + fsync) before carrying out anything that
    /// follows.
    Persist(super::PersistentState),
    /// Run one operation of one resource of a group. The driver must answer with
    /// `Input::OpDone` carrying the same `op`, after at most `timeout` (killing the
    /// process group on expiry and answering `TimedOut`).
    RunOp {
        op: OpId,
        group: GroupId,
        resource: usize,
        kind: OpKind,
        timeout: Option<Duration>,
        /// The term the operation serves, decided with it: the term this node owns
        /// the group in, else (a stop of what may run from before) the newest term it
        /// knows. The driver hands it to the agent as the fencing token
        /// (`TANDEM_TERM`, docs/agents.md).
        term: Term,
    },
    /// Power `target` off through the fence agents; answer with `Input::FenceDone`.
    Fence { request: FenceId, target: NodeId },
    /// This node must stop running anything at once and cannot prove it has: reboot or
    /// power off now (the configured self-fence action).
    SelfFence { reason: Reason },
    /// Announce the group's addresses (gratuitous ARP / unsolicited NA). The owner
    /// sends it when its start finishes, and again, for every group it runs and holds
    /// the lease of, when a peer comes back (heard again after being down, never heard
    /// before, or silent on every link): a partition healed or a node (re)joined. At
    /// most one such re-announcement per `deadtime`; more returns within it are
    /// folded into one at its end (`core::node::membership`).
    Announce { group: GroupId },
    /// Send this request to the arbiter (off the heartbeat thread) and answer with
    /// `Input::Arbiter`; never block on it.
    Arbiter(ArbiterRequest),
    /// Something an admin wants to read in `tandemctl events` and the log.
    Event(Event),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub node: Option<NodeId>,
    pub group: Option<GroupId>,
    pub term: Option<Term>,
    /// What happened or why, typed; its `Display` is the short human sentence
    /// (`n1 lost quorum`, `failback off: staying on n2`).
    pub reason: Reason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    NodeUp,
    NodeDown,
    LinkUp,
    LinkDown,
    LateHeartbeat,
    LocalPause,
    QuorumGained,
    QuorumLost,
    BecameOwner,
    LostOwnership,
    GroupStarted,
    GroupStopped,
    ResourceFailed,
    FenceRequested,
    FenceSucceeded,
    FenceFailed,
    SelfFence,
    Decision,
    ConfigMismatch,
    Admin,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::NodeUp => "node-up",
            EventKind::NodeDown => "node-down",
            EventKind::LinkUp => "link-up",
            EventKind::LinkDown => "link-down",
            EventKind::LateHeartbeat => "late-heartbeat",
            EventKind::LocalPause => "local-pause",
            EventKind::QuorumGained => "quorum-gained",
            EventKind::QuorumLost => "quorum-lost",
            EventKind::BecameOwner => "became-owner",
            EventKind::LostOwnership => "lost-ownership",
            EventKind::GroupStarted => "group-started",
            EventKind::GroupStopped => "group-stopped",
            EventKind::ResourceFailed => "resource-failed",
            EventKind::FenceRequested => "fence-requested",
            EventKind::FenceSucceeded => "fence-succeeded",
            EventKind::FenceFailed => "fence-failed",
            EventKind::SelfFence => "self-fence",
            EventKind::Decision => "decision",
            EventKind::ConfigMismatch => "config-mismatch",
            EventKind::Admin => "admin",
        }
    }
}
