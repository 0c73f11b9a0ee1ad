//! What the core needs to know of the configuration, as plain values.
//!
//! `config` builds a [`ClusterSpec`] from the validated YAML; the simulator builds one
//! directly. Keeping it separate from the YAML schema lets the core ignore paths,
//! addresses, agent parameters and everything else it has no business with.

use super::ids::{GroupId, NodeId};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq)]
pub struct ClusterSpec {
    pub nodes: Vec<NodeSpec>,
    /// Number of heartbeat links. A node may sit on a subset of them
    /// ([`NodeSpec::absent_links`]).
    pub links: usize,
    pub timing: Timing,
    pub quorum: QuorumSpec,
    pub fencing: FencingSpec,
    pub groups: Vec<GroupSpec>,
    /// Digest of the cluster-wide config, carried in heartbeats.
    pub digest: u64,
}

impl ClusterSpec {
    pub fn node(&self, id: NodeId) -> Option<&NodeSpec> {
        self.nodes.iter().find(|n| n.id == id)
    }

    pub fn group(&self, id: GroupId) -> Option<&GroupSpec> {
        self.groups.iter().find(|g| g.id == id)
    }

    /// Whether nodes `a` and `b` can hear each other on link `link`: both have an
    /// address there. A link one of them is not on is absent between them, never "down".
    pub fn shared_link(&self, a: NodeId, b: NodeId, link: usize) -> bool {
        link < self.links
            && [a, b]
                .iter()
                .all(|n| self.node(*n).is_some_and(|n| n.on_link(link)))
    }

    pub fn expected_votes(&self) -> u32 {
        self.quorum.expected_votes.unwrap_or_else(|| {
            let arbiter = self.quorum.arbiter.map_or(0, |_| ArbiterSpec::VOTES);
            self.nodes.iter().map(|n| n.votes).sum::<u32>() + arbiter
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct NodeSpec {
    pub id: NodeId,
    pub name: String,
    pub votes: u32,
    /// Votes, never owns a group.
    pub witness: bool,
    pub priority: i32,
    /// How long others wait before fencing this node, to break fence races in two-node
    /// clusters (Pacemaker's `pcmk_delay_base`).
    pub fence_delay: Duration,
    /// Links this node has no address on (a witness reached only through link 0 behind
    /// a router): nothing is sent to it or heard from it there. Membership needs no
    /// special case for it, a peer is up while any link delivers; status shows such a
    /// link as `absent`, so that it never reads as a link that failed.
    pub absent_links: Vec<usize>,
}

impl NodeSpec {
    /// A node with one vote, no priority, no fence delay, on every link: what a config
    /// entry with only a name and addresses gives. Tests and the simulator adjust it.
    pub fn new(id: u16, name: impl Into<String>) -> NodeSpec {
        NodeSpec {
            id: NodeId(id),
            name: name.into(),
            votes: 1,
            witness: false,
            priority: 0,
            fence_delay: Duration::ZERO,
            absent_links: Vec::new(),
        }
    }

    /// [`NodeSpec::new`], as a witness.
    pub fn witness(id: u16, name: impl Into<String>) -> NodeSpec {
        NodeSpec {
            witness: true,
            ..NodeSpec::new(id, name)
        }
    }

    pub fn on_link(&self, link: usize) -> bool {
        !self.absent_links.contains(&link)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Heartbeat interval (the sender adds ±10% jitter).
    pub interval: Duration,
    /// A peer not heard for this long is dead; also the length of a voter's promise.
    pub deadtime: Duration,
    /// A heartbeat later than this is logged (Heartbeat's `warntime`).
    pub warntime: Duration,
    /// Grace after start before peers that were never heard are declared dead
    /// (Heartbeat's `initdead`).
    pub initdead: Duration,
    /// Bound on how far two nodes' clocks may drift apart in rate, in parts per million.
    /// The owner's lease is shortened by `deadtime * 2 * max_drift_ppm / 1e6` (plus a
    /// floor) so that a fast voter clock can never let a promise end before the lease.
    pub max_drift_ppm: u32,
    /// The owner starts stopping its groups when less than this is left of its lease
    /// and renewal has failed.
    pub stop_before_lease_end: Duration,
    /// Timeout of the watchdog device each node's lease guard feeds (`watchdog:`), if
    /// configured. A silent owner's machine may then keep its resources until its
    /// watchdog fires, so voters promise a silent owner at least this long plus a
    /// margin before granting its groups to anyone else (sbd's
    /// `stonith-watchdog-timeout` rule); see [`Timing::promise`].
    pub watchdog_timeout: Option<Duration>,
}

impl Timing {
    /// Default of `max_drift_ppm`: ordinary quartz is within 100 ppm; 500 leaves room
    /// for a clock being slewed by NTP.
    pub const DEFAULT_MAX_DRIFT_PPM: u32 = 500;

    /// Every timing derived from an interval and a deadtime, as a config that sets only
    /// those two gets it (`config::defaults` names these rules for the docs).
    pub fn with_defaults(interval: Duration, deadtime: Duration) -> Timing {
        Timing {
            interval,
            deadtime,
            warntime: Timing::default_warntime(deadtime),
            initdead: Timing::default_initdead(deadtime),
            max_drift_ppm: Timing::DEFAULT_MAX_DRIFT_PPM,
            stop_before_lease_end: Timing::default_stop_before_lease_end(interval, deadtime),
            watchdog_timeout: None,
        }
    }

    /// Default for `warntime`: half the deadtime (Heartbeat's habit), early enough that
    /// a late heartbeat is logged well before the peer is declared dead.
    pub fn default_warntime(deadtime: Duration) -> Duration {
        deadtime / 2
    }

    /// Default for `initdead`: twice the deadtime, for peers that boot more slowly.
    pub fn default_initdead(deadtime: Duration) -> Duration {
        deadtime * 2
    }

    /// Default for `stop_before_lease_end`. An owner's lease is renewed by voters'
    /// heartbeats that echo its own, so in steady state about two intervals of it are
    /// already used up; stepping down must only happen once renewal really failed.
    /// Hence at most `deadtime - 3 * interval`, at most half the deadtime, and at least
    /// one interval (time to stop at least a VIP).
    pub fn default_stop_before_lease_end(interval: Duration, deadtime: Duration) -> Duration {
        (deadtime / 2)
            .min(deadtime.saturating_sub(interval * 3))
            .max(interval)
    }

    /// How long before a lease deadline the lease guard kills a silent worker and the
    /// groups it reported: a quarter of `stop_before_lease_end` (the worker itself
    /// starts stopping that early, so a healthy one is never pre-empted), at least 1 ms
    /// for the kill to land and at most 100 ms (a real-time process that never
    /// allocates is not late by more), but never more than `stop_before_lease_end`.
    pub fn guard_lead(&self) -> Duration {
        (self.stop_before_lease_end / 4)
            .clamp(Duration::from_millis(1), Duration::from_millis(100))
            .min(self.stop_before_lease_end)
    }

    /// How long a voter promises a grantee after it last heard it claim a group, and how
    /// long a node that just started grants nothing: `deadtime`, or with a watchdog
    /// `deadtime + watchdog_timeout`.
    ///
    /// Why: an owner whose machine hangs (the kernel, or the guard and the worker both
    /// wedged) may keep a VIP answering until its watchdog resets it, `watchdog_timeout`
    /// after the guard's last feed. The guard feeds while it runs, and while it runs it
    /// takes everything down by the lease end; so a hang that matters came before the
    /// lease ended, and the reset comes by lease end + `watchdog_timeout`. The lease was
    /// renewed by a heartbeat the voters *received*, so it ends at most `deadtime` after
    /// the last heartbeat any voter heard: a voter counting `deadtime + watchdog_timeout`
    /// from its last heartbeat waits long enough, even when the owner's heartbeats
    /// stopped reaching it some time before the hang (one-way loss; the scenario
    /// `a_hung_owner_whose_heartbeats_were_lost_first_is_covered_by_the_promise`). A
    /// margin of a few intervals instead of `deadtime` is not enough in that case.
    ///
    /// The owner's own lease stays `deadtime`-based: a live guard enforces it long
    /// before any watchdog would fire.
    pub fn promise(&self) -> Duration {
        match self.watchdog_timeout {
            None => self.deadtime,
            Some(w) => self.deadtime + w,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoQuorumPolicy {
    /// Stop every group (default).
    Stop,
    /// Keep what runs, take nothing new.
    Freeze,
    /// Act as if quorate. Unsafe: documented as such, excluded from safety checks.
    Ignore,
}

/// The default is a plain majority of the configured votes, stopping without it.
#[derive(Clone, Debug, PartialEq)]
pub struct QuorumSpec {
    pub expected_votes: Option<u32>,
    /// Each of two nodes has quorum alone; taking over from an unseen peer then needs a
    /// confirmed fence.
    pub two_node: bool,
    /// A freshly started node takes no group until it has seen every node once.
    pub wait_for_all: bool,
    pub no_quorum_policy: NoQuorumPolicy,
    /// An external arbiter (an etcd cluster) that gives one more vote per group.
    pub arbiter: Option<ArbiterSpec>,
}

/// The arbiter as the core sees it: one vote whose promise is a lease of `ttl` the
/// arbiter keeps on its own clock, from the moment it received the request that last
/// claimed or kept the vote (docs/design.md, "The arbiter").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArbiterSpec {
    /// Time-to-live of the arbiter's lease: a vote lasts this long after the arbiter
    /// received the last request that claimed or kept it, unless released.
    pub ttl: Duration,
}

impl ArbiterSpec {
    /// The arbiter weighs as much as one ordinary node.
    pub const VOTES: u32 = 1;
}

impl Default for QuorumSpec {
    fn default() -> QuorumSpec {
        QuorumSpec {
            expected_votes: None,
            two_node: false,
            wait_for_all: false,
            no_quorum_policy: NoQuorumPolicy::Stop,
            arbiter: None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FenceMode {
    /// Never fence. Takeover relies on leases alone; two_node without a witness then
    /// never takes over from an unseen peer.
    Off,
    /// Fence only when a lease cannot prove safety (two_node, a failed stop).
    WhenNeeded,
    /// Also fence an owner that vanished while holding a group before taking over.
    Always,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FencingSpec {
    /// Whether fence agents are configured at all.
    pub mode: FenceMode,
    /// Wait between failed fence attempts.
    pub retry_interval: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFail {
    /// A stop that fails or times out while the lease runs out: the node fences itself.
    FenceSelf,
    /// Leave the group blocked (unsafe if the lease runs out: documented).
    Block,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GroupSpec {
    pub id: GroupId,
    pub name: String,
    pub prefer: Option<NodeId>,
    /// Nodes allowed to own the group; `None` = every non-witness node.
    pub nodes: Option<Vec<NodeId>>,
    pub failback: bool,
    /// How long the preferred node must have been stable before failback.
    pub failback_delay: Duration,
    /// Names of the resources, in start order.
    pub resources: Vec<String>,
    /// Fingerprint of the resources' full definitions (addresses, commands, params):
    /// a reload that changes one under the same name must still restart the group.
    pub resources_revision: u64,
    pub monitor_interval: Duration,
    /// Monitor failures tolerated (restart in place) before the group moves away.
    pub migration_threshold: u32,
    /// Failures older than this are forgotten.
    pub failure_timeout: Duration,
    pub on_fail: OnFail,
}

impl GroupSpec {
    pub fn allowed(&self, node: NodeId) -> bool {
        self.nodes.as_ref().is_none_or(|ns| ns.contains(&node))
    }
}
