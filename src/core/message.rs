//! The heartbeat as the core sees it: plain values, no bytes.
//!
//! `wire` turns a [`Heartbeat`] into an authenticated datagram and back; the core only
//! ever deals in these structs. Every heartbeat carries the sender's whole view (its
//! liveness view, its knowledge of every group, its votes, the fences it knows of and the
//! cluster's admin state), so any single delivered heartbeat is enough to catch up and
//! losing some is harmless.

use super::ids::{GroupId, NodeId, Term};
use super::time::Instant;

pub use super::admin_state::AdminState;

/// Upper bounds that `wire` enforces when decoding, so a forged length can never make
/// a receiver allocate without limit.
pub const MAX_NODES: usize = 64;
pub const MAX_GROUPS: usize = 256;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    pub from: NodeId,
    /// Changes on every start of the sender and never goes backwards (persisted).
    pub incarnation: u64,
    /// Increases by one per heartbeat within an incarnation.
    pub seq: u64,
    /// The sender's clock when it built this heartbeat. Echoed back in grants and echoes;
    /// only ever compared with the sender's own clock.
    pub sent_at: Instant,
    /// Digest of the cluster-wide part of the sender's config; a mismatch is warned about.
    pub config_digest: u64,
    pub flags: NodeFlags,
    pub echoes: Vec<Echo>,
    pub view: Vec<PeerView>,
    pub groups: Vec<GroupReport>,
    pub grants: Vec<Grant>,
    pub fenced: Vec<FenceRecord>,
    /// Groups the sender will not take: it failed them too often, it is in standby, or
    /// a health check fails. Others then do not wait for it.
    pub refuses: Vec<GroupId>,
    pub admin: AdminState,
}

/// Facts about the sender that others need to decide ownership.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeFlags(pub u8);

impl NodeFlags {
    /// The sender's own config marks it as a witness (votes, never owns).
    pub const WITNESS: u8 = 1 << 0;
    /// The sender has seen every node at least once (`wait_for_all` satisfied).
    pub const SEEN_ALL: u8 = 1 << 1;
    /// The sender is still in its grant quiet period after a start (it may have
    /// forgotten promises made before a crash, so it grants nothing yet).
    pub const QUIET: u8 = 1 << 2;
    /// The sender has quorum in its own view.
    pub const QUORATE: u8 = 1 << 3;
    /// The sender lost its persisted state and waits for the cluster's view.
    pub const STATE_LOST: u8 = 1 << 4;
    /// One of the sender's health checks fails. Shown in `status` only: what others
    /// decide on is `refuses`. Senders that predate it never set it.
    pub const CHECKS_FAILING: u8 = 1 << 5;

    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    pub fn set(&mut self, bit: u8, on: bool) {
        if on {
            self.0 |= bit;
        } else {
            self.0 &= !bit;
        }
    }
}

/// "I last heard `peer`'s heartbeat `seq`, stamped `sent_at` on its clock, `held_ns`
/// before I stamped this one" — lets `peer` measure the round trip on its own clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Echo {
    pub peer: NodeId,
    pub seq: u64,
    pub sent_at: Instant,
    pub held_ns: u64,
}

/// The sender's opinion of one node's liveness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerView {
    pub node: NodeId,
    pub up: bool,
}

/// What the sender knows about one group: the highest term it has seen, who owns the
/// group at that term, and in what phase. When `owner == from` the phase is
/// authoritative (the sender is speaking about itself); otherwise it is gossip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupReport {
    pub group: GroupId,
    pub term: Term,
    pub owner: Option<NodeId>,
    /// The owner's incarnation when it claimed the term (0 if unknown or no owner), so
    /// that a fence record can be matched to the claim it ends.
    pub owner_incarnation: u64,
    pub phase: Phase,
    /// When the owner hands the group over on purpose (`move`, standby), the node it
    /// hands it to; voters then grant the next term to that node without waiting for
    /// the old owner's lease to run out.
    pub handoff_to: Option<NodeId>,
}

/// The life of one term of one group on its owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Asking voters to grant this term; nothing runs yet.
    Candidate = 0,
    /// Granted; resources are being started.
    Starting = 1,
    /// Every resource runs.
    Running = 2,
    /// Resources are being stopped.
    Stopping = 3,
    /// Everything is stopped and the owner has let go: voters may grant the next term
    /// at once.
    Released = 4,
    /// A start or stop failed; what runs is unknown until the owner is fenced or an
    /// admin cleans up.
    Failed = 5,
}

impl Phase {
    pub fn from_u8(v: u8) -> Option<Phase> {
        Some(match v {
            0 => Phase::Candidate,
            1 => Phase::Starting,
            2 => Phase::Running,
            3 => Phase::Stopping,
            4 => Phase::Released,
            5 => Phase::Failed,
            _ => return None,
        })
    }
}

/// A voter's promise: "I grant `group` at `term` to `to`, and will grant it to nobody
/// else until `deadtime` after I last heard `to` claim it". `echo_sent_at` is the
/// `sent_at` of the grantee's heartbeat that this grant answers, on the grantee's clock:
/// the grantee's lease runs from there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    pub group: GroupId,
    pub term: Term,
    pub to: NodeId,
    pub echo_sent_at: Instant,
}

/// "`node` in incarnation `incarnation` was fenced (powered off)": whatever it owned in
/// that incarnation is void.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FenceRecord {
    pub node: NodeId,
    pub incarnation: u64,
}
