//! What an event says, as a value: a group [`Decision`], or one of the facts the core
//! reports about peers, fences, resources and admin commands.
//!
//! `Display` gives the sentence of `tandemctl events` and the log; [`Reason::tag`] the
//! stable kebab-case name readers key on (never the sentence).

use super::admin_state::{AdminFull, AdminKey};
use super::decision::Decision;
use super::ids::{NodeId, Term};
use super::io::{Fault, OpResult};
use std::fmt;
use std::time::Duration;

/// Why a `move` was refused: the target can never own the group as things stand
/// (`Banned`: `tandemctl ban` keeps it from owning the group).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    Witness { node: String },
    NotInGroup { node: String },
    Standby { node: String },
    Banned { node: String },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Witness { node } => write!(f, "{node} is a witness"),
            Refusal::NotInGroup { node } => write!(f, "{node} is not in the group's nodes"),
            Refusal::Standby { node } => write!(f, "{node} is in standby"),
            Refusal::Banned { node } => write!(f, "{node} is banned from the group"),
        }
    }
}

/// An admin command the core accepted and spread as the new admin state, or an entry
/// given a `--lifetime` that ran out (`Expired`; the event names the node and group).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminChange {
    Standby { node: String, on: bool },
    MoveTo { target: NodeId },
    MoveCleared,
    Cleanup,
    Maintenance { on: bool },
    Ban { node: String, on: bool },
    Expired { key: AdminKey },
}

impl fmt::Display for AdminChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on_off = |on: bool| if on { "on" } else { "off" };
        match self {
            AdminChange::Standby { node, on } => {
                write!(f, "{node} {}", if *on { "standby" } else { "online" })
            }
            AdminChange::MoveTo { target } => write!(f, "move to {target}"),
            AdminChange::MoveCleared => f.write_str("move cleared"),
            AdminChange::Cleanup => f.write_str("cleanup"),
            AdminChange::Maintenance { on } => write!(f, "maintenance {}", on_off(*on)),
            AdminChange::Ban { node, on: true } => write!(f, "ban {node}"),
            AdminChange::Ban { node, on: false } => write!(f, "ban of {node} cleared"),
            AdminChange::Expired { key } => {
                let what = match key {
                    AdminKey::Maintenance | AdminKey::GroupMaintenance(_) => "maintenance",
                    AdminKey::Standby(_) => "standby",
                    AdminKey::Move(_) => "move",
                    AdminKey::Ban(..) => "ban",
                };
                write!(f, "{what} expired (its lifetime ran out)")
            }
        }
    }
}

/// The typed detail of an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Why this node waits or acts for a group.
    Decision(Decision),
    LateHeartbeat {
        link: usize,
        gap: Duration,
    },
    /// This node did not run for `pause` (its heartbeat was due that long ago): a machine
    /// or VM stall. Peers' silence during it is not held against them.
    LocalPause {
        pause: Duration,
    },
    ConfigDigest {
        peer: String,
        theirs: u64,
        mine: u64,
    },
    LinkDown {
        link: usize,
        peer: String,
    },
    LinkUp {
        link: usize,
        peer: String,
    },
    NodeUp {
        peer: String,
    },
    NodeDown {
        peer: String,
    },
    /// Quorum gained or lost: the votes present then.
    Votes {
        present: u32,
        expected: u32,
    },
    StateRebuilt,
    HealthOk,
    HealthFailed,
    GroupAdded,
    ResourcesChanged,
    GroupRemoved,
    ShuttingDown,
    StartFailed {
        resource: String,
        result: OpResult,
    },
    MonitorFailed {
        resource: String,
        result: OpResult,
        count: u32,
        threshold: u32,
        /// The threshold is reached: the group moves away (else: restart in place).
        moving: bool,
    },
    StopFailed {
        resource: String,
        result: OpResult,
    },
    /// A running resource failed outside of an operation (carrier loss): the group
    /// moves away at once and this node is banned from it for `failure_timeout`.
    ResourceFault {
        resource: String,
        fault: Fault,
    },
    FailuresExpired {
        timeout: Duration,
    },
    BecameOwner {
        term: Term,
        have: u32,
        needed: u32,
    },
    GroupStarted,
    GroupStopped,
    LeaseEnded {
        group: String,
    },
    /// A stop failed where the group's `on_fail` is to fence this node.
    StopFailedFenceSelf {
        resource: String,
        result: OpResult,
    },
    Fenced {
        target: String,
    },
    FenceFailed {
        target: String,
        error: String,
        retry: Duration,
    },
    FenceFirstIn {
        target: String,
        delay: Duration,
    },
    TwoNodeVanished {
        target: String,
        delay: Duration,
    },
    FenceCalledOff {
        target: String,
    },
    FencingNow {
        target: String,
    },
    AdminFence {
        target: String,
    },
    MoveNoTarget,
    MoveRefused(Refusal),
    /// The admin state is full (see `MAX_ADMIN_ENTRIES`): the command was not recorded.
    AdminFull(AdminFull),
    Admin(AdminChange),
}

impl Reason {
    /// The stable kebab-case name of this kind of reason.
    pub fn tag(&self) -> &'static str {
        match self {
            Reason::Decision(d) => d.tag(),
            Reason::LateHeartbeat { .. } => "late-heartbeat",
            Reason::LocalPause { .. } => "local-pause",
            Reason::ConfigDigest { .. } => "config-digest",
            Reason::LinkDown { .. } => "link-down",
            Reason::LinkUp { .. } => "link-up",
            Reason::NodeUp { .. } => "node-up",
            Reason::NodeDown { .. } => "node-down",
            Reason::Votes { .. } => "votes",
            Reason::StateRebuilt => "state-rebuilt",
            Reason::HealthOk => "health-ok",
            Reason::HealthFailed => "health-failed",
            Reason::GroupAdded => "group-added",
            Reason::ResourcesChanged => "resources-changed",
            Reason::GroupRemoved => "group-removed",
            Reason::ShuttingDown => "shutting-down",
            Reason::StartFailed { .. } => "start-failed",
            Reason::MonitorFailed { moving: true, .. } => "monitor-failed-moving",
            Reason::MonitorFailed { moving: false, .. } => "monitor-failed-restarting",
            Reason::StopFailed { .. } => "stop-failed",
            Reason::ResourceFault { .. } => "resource-fault-moving",
            Reason::FailuresExpired { .. } => "failures-expired",
            Reason::BecameOwner { .. } => "granted",
            Reason::GroupStarted => "all-started",
            Reason::GroupStopped => "stopped-released",
            Reason::LeaseEnded { .. } => "lease-ended",
            Reason::StopFailedFenceSelf { .. } => "stop-failed",
            Reason::Fenced { .. } => "fenced",
            Reason::FenceFailed { .. } => "fence-failed",
            Reason::FenceFirstIn { .. } => "fence-first",
            Reason::TwoNodeVanished { .. } => "two-node-vanished",
            Reason::FenceCalledOff { .. } => "fence-called-off",
            Reason::FencingNow { .. } => "fencing-now",
            Reason::AdminFence { .. } => "admin-fence",
            Reason::MoveNoTarget => "move-no-target",
            Reason::MoveRefused(_) => "move-refused",
            Reason::AdminFull(_) => "admin-full",
            Reason::Admin(_) => "admin",
        }
    }

    /// The remaining wait of a lease-wait decision.
    pub fn lease_wait(&self) -> Option<Duration> {
        match self {
            Reason::Decision(d) => d.lease_wait(),
            _ => None,
        }
    }

    /// Whether this refuses an admin command: a `move` with no target or one that can
    /// never own the group, or any command when the admin state is full.
    pub fn refuses_move(&self) -> bool {
        matches!(
            self,
            Reason::MoveNoTarget | Reason::MoveRefused(_) | Reason::AdminFull(_)
        )
    }
}

/// How an operation ended, in the words of events and status.
pub fn describe(r: &OpResult) -> String {
    match r {
        OpResult::Ok => "succeeded".into(),
        OpResult::NotRunning => "found it not running".into(),
        OpResult::Failed(why) => format!("failed ({why})"),
        OpResult::TimedOut => "timed out".into(),
    }
}

/// The sentence of a `local-pause` event (kept out of `Reason`'s long match).
struct LocalPauseText(Duration);

impl fmt::Display for LocalPauseText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "this node did not run for {} ms (a machine stall?): peers' silence meanwhile \
             is not held against them",
            self.0.as_millis()
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Decision(d) => d.fmt(f),
            Reason::LateHeartbeat { link, gap } => {
                write!(f, "heartbeat on link {link} {} ms late", gap.as_millis())
            }
            Reason::LocalPause { pause } => write!(f, "{}", LocalPauseText(*pause)),
            Reason::ConfigDigest { peer, theirs, mine } => write!(
                f,
                "{peer} runs a config with a different digest ({theirs:016x}, mine {mine:016x})"
            ),
            Reason::LinkDown { link, peer } => write!(f, "link {link} to {peer} down"),
            Reason::LinkUp { link, peer } => write!(f, "link {link} to {peer} up"),
            Reason::NodeUp { peer } => write!(f, "{peer} is up"),
            Reason::NodeDown { peer } => write!(f, "{peer} is down: no heartbeat on any link"),
            Reason::Votes { present, expected } => {
                write!(f, "{present} votes of {expected} present")
            }
            Reason::StateRebuilt => {
                f.write_str("state file was lost: rebuilt from the cluster's view")
            }
            Reason::HealthOk => f.write_str("health checks pass again"),
            Reason::HealthFailed => f.write_str("health check failed: giving up groups"),
            Reason::GroupAdded => f.write_str("group added by reload"),
            Reason::ResourcesChanged => {
                f.write_str("reload changed its resources: restarting the group here")
            }
            Reason::GroupRemoved => f.write_str("removed by reload: stopping it"),
            Reason::ShuttingDown => f.write_str("shutting down: handing every group over"),
            Reason::StartFailed { resource, result } => write!(
                f,
                "{resource}: start {}; giving the group up",
                describe(result)
            ),
            Reason::ResourceFault { resource, fault } => fault_moves(f, resource, fault),
            Reason::MonitorFailed {
                resource,
                result,
                count,
                threshold,
                moving,
            } => write!(
                f,
                "{resource}: monitor {} ({count}/{threshold}): {}",
                describe(result),
                if *moving {
                    "moving the group away"
                } else {
                    "restarting in place"
                }
            ),
            Reason::StopFailed { resource, result } => write!(
                f,
                "{resource}: stop {}: group blocked until cleanup or fencing",
                describe(result)
            ),
            Reason::FailuresExpired { timeout } => write!(
                f,
                "failures here are older than failure_timeout ({} s): eligible again",
                timeout.as_secs()
            ),
            Reason::BecameOwner { term, have, needed } => write!(
                f,
                "granted term {term} by a quorum ({have} of {needed} votes)"
            ),
            Reason::GroupStarted => f.write_str("all resources started"),
            Reason::GroupStopped => f.write_str("stopped and released"),
            Reason::LeaseEnded { group } => {
                write!(f, "lease of {group} ended while resources may still run")
            }
            Reason::StopFailedFenceSelf { resource, result } => {
                write!(f, "{resource}: stop {}", describe(result))
            }
            Reason::Fenced { target } => write!(f, "{target} is fenced (off)"),
            Reason::FenceFailed {
                target,
                error,
                retry,
            } => fence_failed(f, target, error, *retry),
            Reason::FenceFirstIn { target, delay } => {
                write!(f, "fencing {target} first (in {} ms)", delay.as_millis())
            }
            Reason::TwoNodeVanished { target, delay } => write!(
                f,
                "two_node: {target} vanished; fencing it in {} ms",
                delay.as_millis()
            ),
            Reason::FenceCalledOff { target } => {
                write!(f, "fence of {target} called off: this node lost quorum")
            }
            Reason::FencingNow { target } => write!(f, "fencing {target} now"),
            Reason::AdminFence { target } => write!(f, "fence {target} requested by admin"),
            Reason::MoveNoTarget => f.write_str("move: no other eligible node"),
            Reason::MoveRefused(why) => write!(f, "move refused: {why}"),
            Reason::AdminFull(full) => full.fmt(f),
            Reason::Admin(change) => change.fmt(f),
        }
    }
}

/// The sentence of [`Reason::FenceFailed`].
fn fence_failed(
    f: &mut fmt::Formatter<'_>,
    target: &str,
    error: &str,
    retry: Duration,
) -> fmt::Result {
    write!(
        f,
        "fencing {target} failed: {error}; retrying in {} ms; its groups stay stopped",
        retry.as_millis()
    )
}

/// The sentence of [`Reason::ResourceFault`].
fn fault_moves(f: &mut fmt::Formatter<'_>, resource: &str, fault: &Fault) -> fmt::Result {
    write!(f, "{resource}: {fault}: moving the group away")
}
