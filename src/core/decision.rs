//! Why a node waits or acts for a group, as a value: what `tandemctl status` shows as a
//! group's reason and what a `decision` event carries.
//!
//! `Display` gives the sentence operators and docs know; [`Decision::tag`] gives the
//! stable kebab-case name that readers (the lab, `tandemctl events --json`) key on.
//! Whether a decision *changed* is a typed comparison ([`Decision::same_kind`]): counters
//! (milliseconds left, votes, terms) move on every evaluation and are not news.

use super::ids::Term;
use std::fmt;
use std::time::Duration;

/// Why this node may not own a group (as the owner giving it up, or as an idle node).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ineligible {
    Witness,
    ShuttingDown,
    Standby,
    HealthCheckFailing,
    FailedTooOften,
    NotAllowed,
    /// `tandemctl ban` keeps this node from owning the group.
    Banned,
}

impl Ineligible {
    fn as_str(self) -> &'static str {
        match self {
            Ineligible::Witness => "witness: never owns",
            Ineligible::ShuttingDown => "shutting down",
            Ineligible::Standby => "standby",
            Ineligible::HealthCheckFailing => "health check failing",
            Ineligible::FailedTooOften => "failed too often here",
            Ineligible::NotAllowed => "not allowed here",
            Ineligible::Banned => "banned here (tandemctl ban)",
        }
    }
}

/// Why the owner runs the group here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunsHere {
    MovedByAdmin,
    Preferred,
    BestAvailable,
}

impl RunsHere {
    fn as_str(self) -> &'static str {
        match self {
            RunsHere::MovedByAdmin => "moved here by admin",
            RunsHere::Preferred => "preferred node",
            RunsHere::BestAvailable => "best available node",
        }
    }
}

/// What another node that holds the group is doing with it, as its claim says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimState {
    Claiming,
    Starting,
    Stopping,
    Failed,
    Running,
}

impl ClaimState {
    fn as_str(self) -> &'static str {
        match self {
            ClaimState::Claiming => "claiming",
            ClaimState::Starting => "starting",
            ClaimState::Stopping => "stopping",
            ClaimState::Failed => "failed",
            ClaimState::Running => "running",
        }
    }
}

/// Why a node waits or acts for a group. Node names are configured names; counters are
/// the values at the time of the decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// At start, whatever may run from before is stopped first.
    StartingUp,
    /// A group a reload added: leftovers are stopped first.
    AddedByReload,
    Maintenance,
    /// The owner's stop failed: it waits for a fence or a cleanup.
    StopFailed,
    /// Another node actively runs the group too (only after a partition under
    /// `no_quorum_policy: ignore`).
    RivalRuns {
        rival: String,
    },
    NewerOwner {
        owner: String,
        term: Term,
    },
    LeaseNotRenewed {
        left: Duration,
    },
    QuorumLost {
        me: String,
    },
    GivingUp {
        me: String,
        why: Ineligible,
    },
    MovingTo {
        target: String,
    },
    Failback {
        to: String,
    },
    FailbackIn {
        to: String,
        wait: Duration,
    },
    FailbackOff {
        me: String,
    },
    Running {
        me: String,
        why: RunsHere,
    },
    /// A candidate gives way to a node claiming the group.
    Outranked {
        rival: String,
    },
    NoGrantsInTime,
    NoLongerEligible,
    Starting {
        me: String,
        term: Term,
    },
    /// A candidate waits until the promise a voter (here: this node) made to `holder`
    /// runs out.
    LeaseWait {
        holder: String,
        remaining: Duration,
    },
    Candidate {
        term: Term,
        have: u32,
        needed: u32,
    },
    /// A candidate short of a quorum: the arbiter gives its vote to `holder` (at
    /// `term`) until that one releases it or its arbiter lease runs out.
    ArbiterHeldBy {
        holder: String,
        term: Term,
    },
    HeldBy {
        owner: String,
        state: ClaimState,
    },
    NotEligible {
        owner: Option<String>,
        me: String,
        why: Ineligible,
    },
    StateLost,
    WaitForAll,
    NoQuorum,
    JustStarted,
    HandedOver {
        to: String,
    },
    RanksHigher {
        best: String,
    },
    /// The previous holder may still run the group and there are no fence agents.
    CannotFence {
        holder: String,
    },
    TwoNodeCannotFence {
        peer: String,
    },
    WaitingToLetGo {
        holder: String,
    },
    QuorumSettling {
        target: String,
        remaining: Duration,
    },
    FenceFirst {
        target: String,
    },
    Claiming {
        gone: Option<String>,
        term: Term,
    },
}

impl Decision {
    /// The stable kebab-case name of this kind of decision.
    pub fn tag(&self) -> &'static str {
        match self {
            Decision::StartingUp => "starting-up",
            Decision::AddedByReload => "added-by-reload",
            Decision::Maintenance => "maintenance",
            Decision::StopFailed => "stop-failed",
            Decision::RivalRuns { .. } => "rival-runs",
            Decision::NewerOwner { .. } => "newer-owner",
            Decision::LeaseNotRenewed { .. } => "lease-not-renewed",
            Decision::QuorumLost { .. } => "quorum-lost",
            Decision::GivingUp { .. } => "giving-up",
            Decision::MovingTo { .. } => "moving",
            Decision::Failback { .. } => "failback",
            Decision::FailbackIn { .. } => "failback-wait",
            Decision::FailbackOff { .. } => "failback-off",
            Decision::Running { .. } => "running",
            Decision::Outranked { .. } => "outranked",
            Decision::NoGrantsInTime => "no-grants-in-time",
            Decision::NoLongerEligible => "no-longer-eligible",
            Decision::Starting { .. } => "starting",
            Decision::LeaseWait { .. } => "lease-wait",
            Decision::Candidate { .. } => "candidate",
            Decision::ArbiterHeldBy { .. } => "arbiter-held-elsewhere",
            Decision::HeldBy { .. } => "held-elsewhere",
            Decision::NotEligible { .. } => "not-eligible",
            Decision::StateLost => "state-lost",
            Decision::WaitForAll => "wait-for-all",
            Decision::NoQuorum => "no-quorum",
            Decision::JustStarted => "just-started",
            Decision::HandedOver { .. } => "handed-over",
            Decision::RanksHigher { .. } => "ranks-higher",
            Decision::CannotFence { .. } => "cannot-fence",
            Decision::TwoNodeCannotFence { .. } => "two-node-cannot-fence",
            Decision::WaitingToLetGo { .. } => "waiting-to-let-go",
            Decision::QuorumSettling { .. } => "quorum-settling",
            Decision::FenceFirst { .. } => "fence-first",
            Decision::Claiming { .. } => "claiming",
        }
    }

    /// The time left to wait, for a lease wait.
    pub fn lease_wait(&self) -> Option<Duration> {
        match self {
            Decision::LeaseWait { remaining, .. } => Some(*remaining),
            _ => None,
        }
    }

    /// Whether `other` says the same thing, counters aside: a node reports a decision
    /// when this turns false, not when a wait merely shortened or a vote arrived.
    pub fn same_kind(&self, other: &Decision) -> bool {
        self.without_counts() == other.without_counts()
    }

    fn without_counts(&self) -> Decision {
        let zero = Duration::ZERO;
        match self.clone() {
            Decision::NewerOwner { owner, .. } => Decision::NewerOwner {
                owner,
                term: Term(0),
            },
            Decision::LeaseNotRenewed { .. } => Decision::LeaseNotRenewed { left: zero },
            Decision::FailbackIn { to, .. } => Decision::FailbackIn { to, wait: zero },
            Decision::Starting { me, .. } => Decision::Starting { me, term: Term(0) },
            Decision::LeaseWait { holder, .. } => Decision::LeaseWait {
                holder,
                remaining: zero,
            },
            Decision::Candidate { .. } => Decision::Candidate {
                term: Term(0),
                have: 0,
                needed: 0,
            },
            Decision::ArbiterHeldBy { holder, .. } => Decision::ArbiterHeldBy {
                holder,
                term: Term(0),
            },
            Decision::QuorumSettling { target, .. } => Decision::QuorumSettling {
                target,
                remaining: zero,
            },
            Decision::Claiming { gone, .. } => Decision::Claiming {
                gone,
                term: Term(0),
            },
            other => other,
        }
    }
}

impl fmt::Display for Decision {
    /// One arm per decision, each its sentence: a long match, kept whole so that every
    /// sentence operators read is in one place.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: &Duration| d.as_millis();
        match self {
            Decision::StartingUp => f.write_str("starting up: stopping leftovers"),
            Decision::AddedByReload => f.write_str("added by reload: stopping leftovers"),
            Decision::Maintenance => f.write_str("maintenance: tandem leaves the group alone"),
            Decision::StopFailed => {
                f.write_str("blocked: a stop failed; fence this node or clean up")
            }
            Decision::RivalRuns { rival } => {
                write!(f, "{rival} also runs the group: stepping down")
            }
            Decision::NewerOwner { owner, term } => {
                write!(f, "{owner} owns term {term}: stepping down")
            }
            Decision::LeaseNotRenewed { left } => write!(
                f,
                "lease not renewed ({} ms left): lost contact with quorum",
                ms(left)
            ),
            Decision::QuorumLost { me } => write!(f, "{me} lost quorum"),
            Decision::GivingUp { me, why } => {
                write!(f, "{me}: {}, giving the group up", why.as_str())
            }
            Decision::MovingTo { target } => write!(f, "moving to {target} (admin)"),
            Decision::Failback { to } => write!(f, "failback to {to} (preferred)"),
            Decision::FailbackIn { to, wait } => {
                write!(f, "failback to {to} in {} ms", ms(wait))
            }
            Decision::FailbackOff { me } => write!(f, "failback off: staying on {me}"),
            Decision::Running { me, why } => write!(f, "running on {me} ({})", why.as_str()),
            Decision::Outranked { rival } => {
                write!(f, "{rival} claims the group: withdrawing")
            }
            Decision::NoGrantsInTime => f.write_str("no quorum of grants in time: withdrawing"),
            Decision::NoLongerEligible => f.write_str("no longer eligible or quorate: withdrawing"),
            Decision::Starting { me, term } => write!(f, "starting on {me} (term {term})"),
            Decision::ArbiterHeldBy { holder, term } => write!(
                f,
                "waiting for the arbiter: its vote is held by {holder} (term {term}) until released or its lease runs out"
            ),
            Decision::LeaseWait { holder, remaining } => write!(
                f,
                "waiting for lease of {holder} to expire ({} ms)",
                ms(remaining)
            ),
            Decision::Candidate { term, have, needed } => write!(
                f,
                "candidate for term {term}: {have} of {needed} votes granted"
            ),
            Decision::HeldBy { owner, state } => write!(f, "{} on {owner}", state.as_str()),
            Decision::NotEligible { owner, me, why } => {
                match owner {
                    Some(o) => write!(f, "owned by {o}")?,
                    None => f.write_str("no owner")?,
                }
                write!(f, "; {me} is not eligible ({})", why.as_str())
            }
            Decision::StateLost => f.write_str("state file lost: waiting for the cluster's view"),
            Decision::WaitForAll => f.write_str("wait_for_all: waiting to see every node once"),
            Decision::NoQuorum => f.write_str("no quorum: taking nothing"),
            Decision::JustStarted => f.write_str("just started: waiting out promises made before"),
            Decision::HandedOver { to } => write!(f, "handed over to {to}"),
            Decision::RanksHigher { best } => {
                write!(f, "waiting for {best} to take it ({best} ranks higher)")
            }
            Decision::CannotFence { holder } => write!(
                f,
                "{holder} may still run the group and cannot be fenced (no fence agents): waiting"
            ),
            Decision::TwoNodeCannotFence { peer } => write!(
                f,
                "two_node: {peer} is unreachable and cannot be fenced: waiting"
            ),
            Decision::WaitingToLetGo { holder } => {
                write!(f, "waiting for {holder} to let go (it is alive)")
            }
            Decision::QuorumSettling { target, remaining } => write!(
                f,
                "quorum regained: giving {target} {} ms to be heard before fencing it",
                ms(remaining)
            ),
            Decision::FenceFirst { target } => write!(f, "fencing {target} first"),
            Decision::Claiming {
                gone: Some(o),
                term,
            } => write!(f, "{o} is gone: claiming term {term}"),
            Decision::Claiming { gone: None, term } => {
                write!(f, "no owner: claiming term {term}")
            }
        }
    }
}
