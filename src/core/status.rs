//! A snapshot of what one node knows, for `tandemctl status` and metrics.
//!
//! Plain serializable values: the control protocol sends these as JSON, so field names
//! here are a public interface (`status --json`).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// Name of the node that answered.
    pub node: String,
    pub quorate: bool,
    pub votes_present: u32,
    pub votes_expected: u32,
    pub quorum_votes: u32,
    pub nodes: Vec<NodeStatus>,
    pub groups: Vec<GroupStatus>,
    pub maintenance: bool,
    /// The external arbiter (`quorum.arbiter`), when the cluster has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arbiter: Option<ArbiterStatus>,
    /// Every admin constraint in force (standby, maintenance, move, ban), in a stable
    /// order. Absent from daemons that predate it.
    #[serde(default)]
    pub constraints: Vec<ConstraintStatus>,
}

/// The arbiter as this node sees it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ArbiterStatus {
    /// It answered a request asked within the last `deadtime` (its vote counts
    /// towards quorum).
    pub reachable: bool,
    /// Milliseconds since the ask of the newest request it answered.
    pub last_answer_ms: Option<u64>,
    pub votes: Vec<ArbiterVote>,
    /// This daemon's etcd lease, as its driver last saw it (the core knows no lease
    /// ids). Absent from daemons that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<ArbiterSession>,
}

/// This daemon's own etcd lease: one per incarnation while etcd keeps it; a count
/// that keeps growing means leases keep expiring (etcd unreachable for a TTL, or a
/// node that claims nothing for longer than a TTL).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ArbiterSession {
    /// etcd's id of the lease, in hex as `etcdctl lease list` prints it.
    pub lease_id: Option<String>,
    /// The TTL etcd gave it at the last renewal, less the time since (ms).
    pub lease_ttl_left_ms: Option<u64>,
    /// Leases etcd granted this incarnation.
    pub leases_granted: u64,
}

/// Who the arbiter gives its vote for one group to, as far as this node knows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ArbiterVote {
    pub group: String,
    /// This node, another node the arbiter named, or nobody known.
    pub holder: Option<String>,
    /// When this node holds the vote: how long it still counts here (ms).
    pub lease_left_ms: Option<u64>,
    /// How long the arbiter has named this holder, as far as this node knows (ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<u64>,
}

/// One admin constraint in force.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ConstraintStatus {
    /// `standby`, `maintenance`, `move` or `ban`.
    pub kind: String,
    /// The node in standby, a move's target, the banned node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The group in maintenance, moved or banned from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Milliseconds until it lapses by itself; absent: until cleared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_ms: Option<u64>,
    /// The node the command was issued on.
    pub set_on: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub name: String,
    pub id: u16,
    /// `online`, `offline`, `standby` or `unknown`.
    pub state: String,
    pub witness: bool,
    /// This entry describes the node that answered.
    pub local: bool,
    pub links: Vec<LinkStatus>,
    pub incarnation: u64,
    /// Whether a health check of the node fails, as its own heartbeat says (for this
    /// node: its own verdict); absent while the node was never heard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks_failing: Option<bool>,
}

/// Link state of a link that does not exist between two nodes: one of them has no
/// address on it (`null` in `addresses`). Never "down": nothing is expected there.
pub const LINK_ABSENT: &str = "absent";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkStatus {
    pub index: usize,
    /// `up`, `suspect`, `down`, `unknown` (nothing heard yet), `local` for the
    /// answering node's own entry, or [`LINK_ABSENT`].
    pub state: String,
    pub rtt_ms: Option<f64>,
    /// Milliseconds since a heartbeat last arrived on this link.
    pub last_heard_ms: Option<u64>,
    pub phi: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupStatus {
    pub name: String,
    pub owner: Option<String>,
    pub term: u64,
    /// `running`, `starting`, `stopping`, `stopped`, `candidate`, `failed`, `blocked`.
    pub state: String,
    /// Why the group is where it is, in a few words.
    pub reason: String,
    pub maintenance: bool,
    pub resources: Vec<ResourceStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceStatus {
    pub name: String,
    pub state: String,
    pub fail_count: u32,
    pub last_failure: Option<String>,
}
