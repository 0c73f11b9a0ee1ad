//! One node's state machine: membership, quorum, votes (promises), leases, ownership
//! and the sequencing of resource operations.
//!
//! The protocol, in short (docs/design.md argues why it is safe):
//! - Every group has a term. A node that wants a group picks `known term + 1`, persists
//!   it, and claims it in its heartbeats (phase `Candidate`).
//! - A voter grants one candidate per group at a time and promises to grant nobody else
//!   until `promise` after it last heard that grantee claim the group — unless the
//!   grantee said it let go (`Released`) or was fenced. A node that just started grants
//!   nothing for `promise` (it may have forgotten promises made before a crash).
//!   `promise` is `deadtime`, or longer with a watchdog (a silent owner's hung machine
//!   may keep a VIP until its watchdog resets it): see
//!   [`Timing::promise`](super::spec::Timing::promise).
//! - A candidate becomes owner once grants worth a quorum of votes arrived. Its lease
//!   ends at (send time of the latest heartbeat a quorum acknowledged + deadtime − drift
//!   margin), on its own clock — `deadtime`, not `promise`: a live guard enforces it.
//!   It stops before the lease ends when renewal fails, and fences itself if something
//!   may still run when it ends; the lease guard (`Node::lease_until`) kills what runs
//!   shortly before the end if the worker itself is silent.
//! - Where a lease cannot prove safety (two_node, a failed stop, `fence: always`, the
//!   `freeze` policy) a candidate first fences the previous owner.
//!
//! The parts, one file each: `membership` (peers, detectors, quorum), `grants` (the
//! voter's side), `arbiter` (an external voter: etcd's vote and its lease),
//! `ownership` (eligibility, ranking, the dispatch by role and the recorded decision),
//! `owner`, `candidate` and `campaign` (what an owner, a candidate
//! and an idle node decide), `fencing`, `resources`, `admin` (commands, reloads,
//! shutdown), `report` (the heartbeat sent), `deadlines` (when the driver must call
//! back, and why) and `status`; `group` is the per-group state. This file holds the
//! `Node`, its inputs and persistence.

use super::decision::{ClaimState, Decision, Ineligible, RunsHere};
use super::detector::{Detector, LinkState};
use super::holders::Holders;
use super::ids::{GroupId, NodeId, Term};
use super::io::{
    Action, AdminCommand, Event, EventKind, Fault, FenceId, FenceResult, Input, OpId, OpKind,
    OpResult,
};
use super::message::{
    AdminState, Echo, FenceRecord, Grant, GroupReport, Heartbeat, NodeFlags, PeerView, Phase,
};
use super::quorum;
use super::reason::{describe, AdminChange, Reason, Refusal};
use super::spec::{ClusterSpec, FenceMode, GroupSpec, NoQuorumPolicy, NodeSpec, OnFail, Timing};
use super::status::{ClusterStatus, GroupStatus, LinkStatus, NodeStatus, ResourceStatus};
use super::time::Instant;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

mod admin;
mod arbiter;
mod campaign;
mod candidate;
mod deadlines;
mod fencing;
mod grants;
mod group;
mod membership;
mod owner;
mod ownership;
mod report;
mod resources;
mod status;
#[cfg(test)]
mod tests;

use arbiter::ArbiterView;
pub use deadlines::Deadline;
use fencing::{FenceJob, FenceNeed, FenceWhy, Fences};
use group::{AfterStop, Goal, GroupState, Known, Promise, Res, Role};
use membership::Peer;
use owner::Held;
use report::Sending;

/// What must survive a restart: the highest term seen per group (so a restarted node
/// never reuses one), the terms at which this node owned groups (so after a crash it
/// knows what it must stop and release), and the admin state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistentState {
    pub terms: Vec<(GroupId, Term)>,
    pub owned: Vec<(GroupId, Term)>,
    /// Per group, the last owner known to have started it (see [`HolderRecord`]).
    #[serde(default)]
    pub holders: Vec<HolderRecord>,
    #[serde(default)]
    pub admin: AdminState,
}

/// The last node known to have been granted a group and started it: who, at which term,
/// in which incarnation, and whether it has let go since. Where owners may run without a
/// lease (two_node, `fence: always`, the `freeze` policy), nobody may take the group
/// over until this holder released it or its incarnation was fenced — so it is
/// persisted, lest a voter forget it across a reboot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderRecord {
    pub group: GroupId,
    pub term: Term,
    pub owner: NodeId,
    pub incarnation: u64,
    pub released: bool,
    pub failed: bool,
}

/// What the driver hands the core at start.
#[derive(Clone, Debug)]
pub struct Boot {
    pub incarnation: u64,
    /// `None` when the state file was missing or corrupt: the node then waits for the
    /// cluster's view before it takes any group.
    pub persisted: Option<PersistentState>,
    /// Seed of the core's own random generator (heartbeat jitter).
    pub seed: u64,
}

/// A test-only switch that breaks one safety rule, so the simulator can prove that its
/// checker catches the bug.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PlantedBug {
    #[default]
    None,
    /// Voters grant a new candidate without waiting for their promise to expire.
    SkipPromiseWait,
    /// Not a rule of the core: the simulator's lease guard acts 1 ms after a silent
    /// worker's lease ended instead of `Timing::guard_lead` before it.
    LateGuard,
    /// The arbiter's vote counts from the arrival of its answer instead of from the
    /// request's ask time (the arbiter may have received it long before).
    ArbiterAnswerTime,
    /// Not a rule of the core: the simulated arbiter driver keeps an etcd lease that
    /// etcd dropped and answers every claim `Unreachable` from then on (issue 24).
    ArbiterKeepsExpiredLease,
    /// Not a rule of the core: the simulated arbiter driver writes a vote key without
    /// attaching it to its lease, so the vote outlives its holder (issue 24).
    ArbiterVoteWithoutLease,
}
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ReconfigureError {
    /// The new config changes something only a restart can apply.
    #[error("{0}: restart tandemd to apply this change")]
    NeedsRestart(String),
}
pub struct Node {
    spec: ClusterSpec,
    me: NodeId,
    incarnation: u64,
    started_at: Instant,
    sending: Sending,
    peers: BTreeMap<NodeId, Peer>,
    groups: Vec<GroupState>,
    /// Since when this node has quorum; None while it has none. For a deadtime after it
    /// gained quorum, a silent peer may be silent only because this node could not hear
    /// anyone: it is not fenced yet.
    quorate_since: Option<Instant>,
    seen_all: bool,
    state_lost: bool,
    healthy: bool,
    /// The daemon is shutting down (SIGTERM): give every group up cleanly, take none.
    leaving: bool,
    admin: AdminState,
    fencing: Fences,
    arbiter: ArbiterView,
    next_id: u64,
    persisted: PersistentState,
    self_fenced: bool,
    bug: PlantedBug,
    /// The latest time handed to `handle`: deadlines at or before it were dealt with.
    last_now: Instant,
    /// Something that must be durable changed; persist before the next send.
    persist_due: bool,
    /// Addresses to announce again because a peer came back (membership.rs).
    reannounce: membership::Reannounce,
}

/// A triggered heartbeat (something changed: a release, a claim, a grant) goes out at
/// once unless the last one left less than this long ago: a quarter interval, capped.
/// The cap matters at long intervals: a switchover is a chain of triggered sends
/// (release, claim, grant), and at 100 ms a 25 ms gap per link of the chain was most of
/// the time a `move` took. Renewals do not trigger sends, only changes do, so steady
/// state is unaffected, and a flapping state still costs at most one packet per 2 ms.
const MIN_SEND_GAP_DIVISOR: u32 = 4;
const MAX_TRIGGERED_SEND_GAP: Duration = Duration::from_millis(2);

impl Node {
    pub fn new(spec: ClusterSpec, me: NodeId, boot: Boot, now: Instant) -> Node {
        let links = spec.links.max(1);
        let peers = spec
            .nodes
            .iter()
            .filter(|n| n.id != me)
            .map(|n| {
                let peer = Peer {
                    incarnation: 0,
                    last_seq: None,
                    links: vec![Detector::new(spec.timing.interval, spec.timing.deadtime); links],
                    link_state: vec![LinkState::Unknown; links],
                    rtt: vec![None; links],
                    up: false,
                    ever_seen: false,
                    up_since: None,
                    flags: NodeFlags::default(),
                    digest_warned: false,
                    last_heard: None,
                    refuses: Vec::new(),
                    claims: BTreeMap::new(),
                };
                (n.id, peer)
            })
            .collect();
        let state_lost = boot.persisted.is_none();
        let persisted = boot.persisted.unwrap_or_default();
        let groups = spec
            .groups
            .iter()
            .map(|g| {
                let witness = spec.node(me).is_some_and(|n| n.witness);
                GroupState::at_boot(g, &persisted, now, !witness && g.allowed(me))
            })
            .collect();
        let mut admin = persisted.admin.clone();
        admin.after_boot(now);
        Node {
            admin,
            me,
            incarnation: boot.incarnation,
            started_at: now,
            sending: Sending {
                rng: ChaCha8Rng::seed_from_u64(boot.seed),
                seq: 0,
                last: None,
                next: now,
                asap: true,
                urgent: false,
            },
            peers,
            groups,
            quorate_since: None,
            seen_all: false,
            state_lost,
            healthy: true,
            leaving: false,
            fencing: Fences::default(),
            arbiter: ArbiterView::default(),
            next_id: 1,
            persisted,
            self_fenced: false,
            bug: PlantedBug::None,
            last_now: now,
            persist_due: false,
            reannounce: membership::Reannounce::default(),
            spec,
        }
    }

    /// Test-only: break one safety rule on purpose (see [`PlantedBug`]).
    pub fn plant_bug(&mut self, bug: PlantedBug) {
        self.bug = bug;
    }

    pub fn id(&self) -> NodeId {
        self.me
    }

    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    pub fn spec(&self) -> &ClusterSpec {
        &self.spec
    }

    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        if self.self_fenced {
            return out;
        }
        let now = now.max(self.last_now);
        self.last_now = now;
        self.excuse_own_pause(now, &mut out);
        match input {
            Input::Tick => {}
            Input::Heartbeat { link, heartbeat } => {
                self.on_heartbeat(now, link, heartbeat, &mut out)
            }
            Input::OpDone { op, result } => self.on_op_done(now, op, result, &mut out),
            Input::FenceDone { request, result } => {
                self.on_fence_done(now, request, result, &mut out)
            }
            Input::Admin(cmd) => self.on_admin(now, cmd, &mut out),
            Input::ResourceFault {
                group,
                resource,
                fault,
            } => self.on_resource_fault(now, group, &resource, fault, &mut out),
            Input::Arbiter { asked_at, answer } => self.on_arbiter(now, asked_at, answer),
            Input::Health { ok } => {
                if self.healthy != ok {
                    self.healthy = ok;
                    self.sending.asap = true;
                    out.push(self.node_decision(if ok {
                        Reason::HealthOk
                    } else {
                        Reason::HealthFailed
                    }));
                }
            }
        }
        self.evaluate(now, &mut out);
        self.drop_retired();
        out
    }

    fn evaluate(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.expire_admin(now, out);
        self.update_membership(now, out);
        self.refresh_leases();
        self.two_node_owner_fencing(now, out);
        self.run_fences(now, out);
        self.expire_failures(now, out);
        self.grant_waiting_claims(now);
        for gi in 0..self.groups.len() {
            if self.self_fenced {
                return;
            }
            self.evaluate_group(now, gi, out);
            self.drive_resources(now, gi, out);
        }
        self.announce_after_heal(now, out);
        // A grant made in this step without a heartbeat to answer (at a promise's end)
        // recorded its holder: durable before the grant goes out, as on receipt.
        if self.persist_due {
            self.persist(out);
        }
        self.maybe_send(now, out);
    }

    fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn persist(&mut self, out: &mut Vec<Action>) {
        // Terms of groups no longer configured are kept: should the group come back,
        // its terms must go on from where they were, never reuse one.
        let mut terms: Vec<(GroupId, Term)> = self
            .persisted
            .terms
            .iter()
            .filter(|(id, _)| !self.groups.iter().any(|g| g.id == *id))
            .copied()
            .collect();
        terms.extend(self.groups.iter().map(|g| (g.id, g.known.term)));
        let mut state = PersistentState {
            terms,
            holders: self
                .groups
                .iter()
                .flat_map(|g| g.holders.all().iter().copied())
                .collect(),
            owned: self.persisted.owned.clone(),
            admin: self.admin.clone(),
        };
        for g in &self.groups {
            if let Role::Owner { term, .. } = g.role {
                state.owned.retain(|(id, _)| *id != g.id);
                state.owned.push((g.id, term));
            }
        }
        self.persist_due = false;
        if state != self.persisted {
            self.persisted = state.clone();
            out.push(Action::Persist(state));
        }
    }

    fn name(&self, id: NodeId) -> String {
        self.spec
            .node(id)
            .map(|n| n.name.clone())
            .unwrap_or_else(|| id.to_string())
    }

    /// A decision about this node as a whole (shutdown, health, state rebuilt), not
    /// about one group.
    fn node_decision(&self, reason: Reason) -> Action {
        event(EventKind::Decision, Some(self.me), None, reason)
    }
}

fn event(kind: EventKind, node: Option<NodeId>, group: Option<GroupId>, reason: Reason) -> Action {
    Action::Event(Event {
        kind,
        node,
        group,
        term: None,
        reason,
    })
}
