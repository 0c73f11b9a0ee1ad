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

use super::detector::{Detector, LinkState};
use super::holders::Holders;
use super::ids::{GroupId, NodeId, Term};
use super::io::{
    Action, AdminCommand, Event, EventKind, FenceId, FenceResult, Input, OpId, OpKind, OpResult,
};
use super::message::{
    AdminState, Echo, FenceRecord, Grant, GroupReport, Heartbeat, NodeFlags, PeerView, Phase,
};
use super::quorum;
use super::spec::{ClusterSpec, FenceMode, GroupSpec, NoQuorumPolicy, OnFail};
use super::status::{ClusterStatus, GroupStatus, LinkStatus, NodeStatus, ResourceStatus};
use super::time::Instant;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

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
}

#[derive(Clone, Debug)]
struct Peer {
    incarnation: u64,
    last_seq: Option<u64>,
    links: Vec<Detector>,
    link_state: Vec<LinkState>,
    rtt: Vec<Option<Duration>>,
    up: bool,
    ever_seen: bool,
    up_since: Option<Instant>,
    flags: NodeFlags,
    digest_warned: bool,
    /// (seq, sent_at, received_at) of the newest heartbeat, echoed back to the peer.
    last_heard: Option<(u64, Instant, Instant)>,
    refuses: Vec<GroupId>,
    /// The peer's own claims (`owner == peer`) from its newest heartbeat.
    claims: BTreeMap<GroupId, GroupReport>,
}

#[derive(Clone, Copy, Debug)]
struct Known {
    term: Term,
    owner: Option<NodeId>,
    owner_inc: u64,
    phase: Phase,
    handoff_to: Option<NodeId>,
}

#[derive(Clone, Copy, Debug)]
struct Promise {
    to: NodeId,
    to_incarnation: u64,
    term: Term,
    until: Instant,
    echo: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Res {
    Stopped,
    Running,
    /// May be running (before a stop at startup, after a failed monitor or a timeout).
    Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Goal {
    Run,
    Stop,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AfterStop {
    /// Let go of the term and say so (voters may grant the next term at once).
    Release { handoff_to: Option<NodeId> },
    /// Someone else holds a newer term: just become idle.
    StepDown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RoleKind {
    Candidate,
    Owner,
}

#[derive(Clone, Debug)]
enum Role {
    Idle,
    Candidate {
        term: Term,
        since: Instant,
        grants: BTreeMap<NodeId, Instant>,
    },
    Owner {
        term: Term,
        grants: BTreeMap<NodeId, Instant>,
        lease_until: Instant,
        after_stop: Option<AfterStop>,
        failed: bool,
        /// Restarted while owning: no lease can be proven, stop at once and release.
        recovering: bool,
    },
}

impl GroupState {
    /// A group's state when the node starts: whatever may run from before is stopped
    /// first, and a term this node owned before the restart is claimed as stopping.
    /// `may_own`: whether this node could ever run the group (not a witness, in the
    /// group's nodes). A node that never could has nothing to clean up, and its
    /// agents may not even be installed there: it starts with everything stopped.
    fn at_boot(
        g: &GroupSpec,
        persisted: &PersistentState,
        now: Instant,
        may_own: bool,
    ) -> GroupState {
        let term = persisted
            .terms
            .iter()
            .find(|(id, _)| *id == g.id)
            .map(|(_, t)| *t)
            .unwrap_or_default();
        let owned = persisted
            .owned
            .iter()
            .any(|(id, t)| *id == g.id && *t == term);
        GroupState {
            id: g.id,
            known: Known {
                term,
                owner: None,
                owner_inc: 0,
                phase: Phase::Released,
                handoff_to: None,
            },
            holders: Holders::from_records(
                persisted
                    .holders
                    .iter()
                    .filter(|h| h.group == g.id)
                    .copied(),
            ),
            handoff_seen: None,
            // A term we owned before a restart is still ours until we have
            // stopped everything and said so: claim it as Stopping.
            role: if owned && term > Term(0) {
                Role::Owner {
                    term,
                    grants: BTreeMap::new(),
                    // No lease can be proven after a restart: stop at once. Voters
                    // that still promise us keep renewing while we claim the term
                    // as Stopping, so nobody takes over before we released.
                    lease_until: now,
                    after_stop: Some(AfterStop::Release { handoff_to: None }),
                    failed: false,
                    recovering: true,
                }
            } else {
                Role::Idle
            },
            promise: None,
            // Startup: whatever may run from before is stopped first (stop is
            // idempotent for every agent kind).
            res: vec![if may_own { Res::Unknown } else { Res::Stopped }; g.resources.len()],
            goal: Goal::Stop,
            op: None,
            restart_from: None,
            next_monitor: None,
            monitor_cursor: None,
            failures: Vec::new(),
            banned: false,
            last_failure: None,
            cleanup_seen: persisted
                .admin
                .cleanups
                .iter()
                .find(|(id, _)| *id == g.id)
                .map(|(_, c)| *c)
                .unwrap_or(0),
            reason: "starting up: stopping leftovers".into(),
            reason_kind: String::new(),
            pending: None,
            retiring: false,
        }
    }
}

impl GroupState {
    /// Whether anything of the group may be running here: a resource not known to be
    /// stopped, or a start still in flight (it may take effect any moment).
    fn may_run(&self) -> bool {
        self.res.iter().any(|r| *r != Res::Stopped)
            || self.op.is_some_and(|(_, _, k)| k == OpKind::Start)
    }
}

#[derive(Clone, Debug)]
struct GroupState {
    id: GroupId,
    known: Known,
    /// When a handoff hint (`known.handoff_to`) was last learned.
    handoff_seen: Option<Instant>,
    holders: Holders,
    role: Role,
    promise: Option<Promise>,
    res: Vec<Res>,
    goal: Goal,
    op: Option<(OpId, usize, OpKind)>,
    /// Restart in place: stop resources from the end down to this index, then start.
    restart_from: Option<usize>,
    next_monitor: Option<Instant>,
    /// The next resource of a monitor sweep in progress.
    monitor_cursor: Option<usize>,
    failures: Vec<Instant>,
    banned: bool,
    last_failure: Option<String>,
    cleanup_seen: u32,
    reason: String,
    reason_kind: String,
    /// A reload changed this group's resources while they may run here: the old ones
    /// are stopped first, then this spec replaces the group's.
    pending: Option<GroupSpec>,
    /// A reload removed this group: it stays, eligible nowhere, until it is stopped
    /// here and no peer claims it.
    retiring: bool,
}

#[derive(Clone, Copy, Debug)]
enum FenceJob {
    Delayed {
        until: Instant,
        incarnation: u64,
        why: FenceWhy,
    },
    InFlight {
        request: FenceId,
        incarnation: u64,
        why: FenceWhy,
    },
    Retry {
        at: Instant,
        incarnation: u64,
        why: FenceWhy,
    },
}

/// Why a fence was asked for: a node that vanished is not shot if it comes back before
/// the fence delay runs out; a node whose stop failed, or that an admin named, is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FenceWhy {
    Vanished,
    StopFailed,
    Admin,
}

enum FenceNeed {
    None,
    Fence(NodeId),
    Blocked(String),
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
    rng: ChaCha8Rng,
    started_at: Instant,
    seq: u64,
    last_send: Option<Instant>,
    next_send: Instant,
    send_asap: bool,
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
    fenced: BTreeMap<NodeId, u64>,
    /// Nodes this node itself fenced (confirmed) since it started and has not heard
    /// since: the only fence proof that holds for a node whose incarnation it never
    /// learned.
    fenced_by_me: BTreeMap<NodeId, u64>,
    fences: BTreeMap<NodeId, FenceJob>,
    next_id: u64,
    persisted: PersistentState,
    self_fenced: bool,
    bug: PlantedBug,
    /// The latest time handed to `handle`: deadlines at or before it were dealt with.
    last_now: Instant,
    /// Something that must be durable changed; persist before the next send.
    persist_due: bool,
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
        Node {
            admin: persisted.admin.clone(),
            me,
            incarnation: boot.incarnation,
            rng: ChaCha8Rng::seed_from_u64(boot.seed),
            started_at: now,
            seq: 0,
            last_send: None,
            next_send: now,
            send_asap: true,
            peers,
            groups,
            quorate_since: None,
            seen_all: false,
            state_lost,
            healthy: true,
            leaving: false,
            fenced: BTreeMap::new(),
            fenced_by_me: BTreeMap::new(),
            fences: BTreeMap::new(),
            next_id: 1,
            persisted,
            self_fenced: false,
            bug: PlantedBug::None,
            last_now: now,
            persist_due: false,
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

    /// Apply one input; the returned actions must be carried out in order.
    /// Applies a reloaded configuration (`tandemctl reload`, SIGHUP). Groups whose
    /// resources did not change keep running untouched; see `docs/operations.md`.
    /// Refused (nothing changes) when the change needs a restart, e.g. different nodes.
    pub fn reconfigure(
        &mut self,
        now: Instant,
        spec: ClusterSpec,
    ) -> Result<Vec<Action>, ReconfigureError> {
        if let Some(what) = restart_needed(&self.spec, &spec) {
            return Err(ReconfigureError::NeedsRestart(what));
        }
        let mut out = Vec::new();
        let mut old_groups: BTreeMap<GroupId, (GroupSpec, GroupState)> = self
            .spec
            .groups
            .drain(..)
            .zip(self.groups.drain(..))
            .map(|(gs, st)| (gs.id, (gs, st)))
            .collect();
        let mut groups = Vec::with_capacity(spec.groups.len());
        let mut specs = Vec::with_capacity(spec.groups.len());
        for new in &spec.groups {
            match old_groups.remove(&new.id) {
                None => {
                    let witness = spec.node(self.me).is_some_and(|n| n.witness);
                    let may_own = !witness && new.allowed(self.me);
                    let mut st = GroupState::at_boot(new, &self.persisted, now, may_own);
                    st.reason = "added by reload: stopping leftovers".into();
                    out.push(event(
                        EventKind::Decision,
                        Some(self.me),
                        Some(new.id),
                        "group added by reload",
                    ));
                    specs.push(new.clone());
                    groups.push(st);
                }
                Some((mut old, mut st)) => {
                    st.retiring = false;
                    // A reload that undoes a pending change simply cancels it.
                    st.pending = None;
                    if old.resources == new.resources
                        && old.resources_revision == new.resources_revision
                    {
                        // Policy only (prefer, failback, thresholds, ...): takes effect
                        // at the next decision; nothing restarts.
                        old = new.clone();
                    } else if st.may_run() || st.op.is_some() {
                        st.pending = Some(new.clone());
                        st.restart_from = Some(0);
                        out.push(event(
                            EventKind::Decision,
                            Some(self.me),
                            Some(new.id),
                            "reload changed its resources: restarting the group here",
                        ));
                    } else {
                        st.res = vec![Res::Stopped; new.resources.len()];
                        old = new.clone();
                    }
                    specs.push(old);
                    groups.push(st);
                }
            }
        }
        // Removed groups stay, eligible nowhere, until stopped and released (see
        // `drop_retired`), so a running group is never forgotten mid-flight.
        for (_, (mut old, mut st)) in old_groups {
            if !st.retiring {
                out.push(event(
                    EventKind::Decision,
                    Some(self.me),
                    Some(old.id),
                    "removed by reload: stopping it",
                ));
            }
            st.retiring = true;
            st.pending = None;
            old.nodes = Some(Vec::new());
            specs.push(old);
            groups.push(st);
        }
        let mut spec = spec;
        spec.groups = specs;
        self.spec = spec;
        self.groups = groups;
        for peer in self.peers.values_mut() {
            peer.digest_warned = false;
        }
        self.send_asap = true;
        self.evaluate(now, &mut out);
        self.drop_retired();
        Ok(out)
    }

    /// True while a reload has changed this group's resources but the old ones still
    /// run here: operations on it must use the previous resource definitions.
    pub fn uses_previous_spec(&self, group: GroupId) -> bool {
        self.groups
            .iter()
            .any(|g| g.id == group && (g.pending.is_some() || g.retiring))
    }

    /// Forgets removed groups once nothing of them runs here and no peer claims them.
    fn drop_retired(&mut self) {
        let mut i = 0;
        while i < self.groups.len() {
            let g = &self.groups[i];
            let claimed = self.peers.values().any(|p| p.claims.contains_key(&g.id));
            let done = g.retiring
                && !g.may_run()
                && g.op.is_none()
                && matches!(g.role, Role::Idle)
                && g.promise.is_none()
                && !claimed;
            if done {
                self.groups.remove(i);
                self.spec.groups.remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// A reload's new resources replace the old ones once the old ones stopped.
    fn apply_pending(&mut self, gi: usize) {
        let g = &mut self.groups[gi];
        if g.pending.is_none() || g.op.is_some() || g.res.iter().any(|r| *r != Res::Stopped) {
            return;
        }
        if let Some(new) = g.pending.take() {
            g.res = vec![Res::Stopped; new.resources.len()];
            g.restart_from = None;
            g.monitor_cursor = None;
            self.spec.groups[gi] = new;
        }
    }

    pub fn handle(&mut self, now: Instant, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        if self.self_fenced {
            return out;
        }
        let now = now.max(self.last_now);
        self.last_now = now;
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
            Input::Health { ok } => {
                if self.healthy != ok {
                    self.healthy = ok;
                    self.send_asap = true;
                    out.push(event(
                        EventKind::Decision,
                        Some(self.me),
                        None,
                        if ok {
                            "health checks pass again"
                        } else {
                            "health check failed: giving up groups"
                        },
                    ));
                }
            }
        }
        self.evaluate(now, &mut out);
        self.drop_retired();
        out
    }

    /// When the driver must call `handle(Tick)` at the latest, and why.
    pub fn next_deadline(&self) -> Option<(Instant, &'static str)> {
        if self.self_fenced {
            return None;
        }
        let mut best: Option<(Instant, &'static str)> = None;
        let after = self.last_now;
        let mut consider = |at: Instant, why: &'static str| {
            if at > after && best.is_none_or(|(b, _)| at < b) {
                best = Some((at, why));
            }
        };
        consider(self.next_send, "heartbeat");
        if self.send_asap {
            consider(self.earliest_triggered_send(), "triggered heartbeat");
        }
        let quiet_end = self.started_at + self.spec.timing.promise();
        if self.last_send.is_some_and(|l| l < quiet_end) {
            consider(quiet_end, "grant quiet period ends");
        }
        for peer in self.peers.values() {
            for d in &peer.links {
                if let Some(last) = d.last_heard() {
                    if let Some(at) = d.next_change(last.max(self.last_now)) {
                        consider(at, "failure detector");
                    }
                }
            }
        }
        for (gi, g) in self.groups.iter().enumerate() {
            if let Some(p) = g.promise {
                consider(p.until, "promise expires");
            }
            if let Role::Owner {
                lease_until,
                recovering: false,
                ..
            } = g.role
            {
                if self.lease_enforced() {
                    consider(
                        lease_until.saturating_sub(self.spec.timing.stop_before_lease_end),
                        "lease renewal due",
                    );
                    consider(lease_until, "lease ends");
                }
            }
            if let Some(at) = g.next_monitor {
                consider(at, "monitor");
            }
            if let (Some(first), Some(gs)) = (g.failures.first(), self.spec.groups.get(gi)) {
                consider(*first + gs.failure_timeout, "failure expires");
            }
        }
        if let Some(at) = self.quorum_settles_at() {
            consider(at, "quorum settled");
        }
        for job in self.fences.values() {
            match job {
                FenceJob::Delayed { until, .. } => consider(*until, "fence delay"),
                FenceJob::Retry { at, .. } => consider(*at, "fence retry"),
                FenceJob::InFlight { .. } => {}
            }
        }
        best
    }

    // ---------------------------------------------------------------- heartbeats in

    fn on_heartbeat(&mut self, now: Instant, link: usize, hb: Heartbeat, out: &mut Vec<Action>) {
        let from = hb.from;
        if from == self.me {
            return;
        }
        if self
            .fenced
            .get(&from)
            .is_some_and(|inc| hb.incarnation <= *inc)
        {
            // A fenced incarnation is powered off; anything still in flight from it is
            // history.
            return;
        }
        let my_digest = self.spec.digest;
        let from_name = self.name(from);
        let my_seq = self.seq;
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        if hb.incarnation < peer.incarnation {
            return;
        }
        if hb.incarnation > peer.incarnation {
            peer.incarnation = hb.incarnation;
            peer.last_seq = None;
            peer.claims.clear();
            peer.digest_warned = false;
        }
        if let Some(d) = peer.links.get_mut(link) {
            let gap = d.last_heard().map(|l| now.saturating_since(l));
            d.heartbeat(now);
            if let Some(gap) = gap {
                if gap > self.spec.timing.warntime && gap < self.spec.timing.deadtime {
                    out.push(event(
                        EventKind::LateHeartbeat,
                        Some(from),
                        None,
                        &format!("heartbeat on link {link} {} ms late", gap.as_millis()),
                    ));
                }
            }
        }
        for e in &hb.echoes {
            if e.peer == self.me && e.seq <= my_seq && e.sent_at <= now {
                let rtt = now
                    .saturating_since(e.sent_at)
                    .saturating_sub(Duration::from_nanos(e.held_ns));
                if let Some(slot) = peer.rtt.get_mut(link) {
                    *slot = Some(rtt);
                }
            }
        }
        // Heartbeats carry the whole state: only the newest one is applied (the same
        // heartbeat arrives once per link).
        if peer.last_seq.is_some_and(|s| hb.seq <= s) {
            return;
        }
        peer.last_seq = Some(hb.seq);
        peer.last_heard = Some((hb.seq, hb.sent_at, now));
        peer.ever_seen = true;
        peer.flags = hb.flags;
        peer.refuses = hb.refuses.clone();
        if hb.config_digest != my_digest && !peer.digest_warned {
            peer.digest_warned = true;
            out.push(event(
                EventKind::ConfigMismatch,
                Some(from),
                None,
                &format!(
                    "{} runs a config with a different digest ({:016x}, mine {:016x})",
                    from_name, hb.config_digest, my_digest
                ),
            ));
        }
        peer.claims = hb
            .groups
            .iter()
            .filter(|r| r.owner == Some(from))
            .map(|r| (r.group, *r))
            .collect();
        let peer_incarnation = peer.incarnation;

        for f in &hb.fenced {
            self.learn_fence(f.node, f.incarnation);
        }
        if self.admin.is_older_than(&hb.admin) {
            self.adopt_admin(hb.admin.clone(), out);
        }
        let mut term_grew = false;
        for r in &hb.groups {
            term_grew |= self.merge_report(from, peer_incarnation, r);
        }
        if term_grew {
            self.persist(out);
        }
        for r in &hb.groups {
            if r.owner == Some(from) {
                self.consider_grant(now, from, peer_incarnation, r, hb.sent_at);
            }
        }
        if self.persist_due {
            self.persist(out);
        }
        for g in &hb.grants {
            if g.to == self.me {
                self.receive_grant(from, g);
            }
        }
    }

    fn learn_fence(&mut self, node: NodeId, incarnation: u64) {
        let e = self.fenced.entry(node).or_insert(0);
        if incarnation > *e {
            *e = incarnation;
        }
        // Promises to a fenced incarnation protect nothing any more.
        for g in &mut self.groups {
            if g.promise
                .is_some_and(|p| p.to == node && p.to_incarnation <= incarnation)
            {
                g.promise = None;
            }
        }
    }

    /// Merge one group report into what this node knows; true when a term grew (which
    /// must be persisted before anything that depends on it).
    fn merge_report(&mut self, from: NodeId, from_inc: u64, r: &GroupReport) -> bool {
        let rank_of = |node: NodeId, spec: &ClusterSpec| {
            let n = spec.node(node);
            (
                n.map(|n| n.priority).unwrap_or(i32::MIN),
                std::cmp::Reverse(node),
            )
        };
        let spec = &self.spec;
        let Some(g) = self.groups.iter_mut().find(|g| g.id == r.group) else {
            return false;
        };
        let authoritative = r.owner == Some(from);
        let owner_inc = if authoritative {
            from_inc
        } else {
            r.owner_incarnation
        };
        let holder_changed = update_holders(&mut g.holders, g.id, r, authoritative, owner_inc);
        if r.term > g.known.term {
            g.known = Known {
                term: r.term,
                owner: r.owner,
                owner_inc,
                phase: r.phase,
                handoff_to: r.handoff_to,
            };
            return true;
        }
        if holder_changed {
            // Persisted like a term: the caller persists when this returns true.
            return true;
        }
        if r.term < g.known.term || !authoritative {
            if r.term == g.known.term && g.known.owner.is_none() && r.owner.is_some() {
                g.known.owner = r.owner;
                g.known.owner_inc = owner_inc;
                g.known.phase = r.phase;
                g.known.handoff_to = r.handoff_to;
            }
            return false;
        }
        // Same term, the sender speaks about itself. A release never displaces what we
        // know of another node's claim.
        if r.phase == Phase::Released && g.known.owner.is_some_and(|o| o != from) {
            return false;
        }
        let replace = match g.known.owner {
            None => true,
            Some(o) if o == from => true,
            Some(o) => {
                // A started claim beats a candidate's or a released one.
                let active = |p: Phase| !matches!(p, Phase::Candidate | Phase::Released);
                let known_granted = active(g.known.phase);
                let new_granted = active(r.phase);
                (new_granted && !known_granted)
                    || (new_granted == known_granted && rank_of(from, spec) > rank_of(o, spec))
            }
        };
        if replace {
            g.known.owner = Some(from);
            g.known.owner_inc = owner_inc;
            g.known.phase = r.phase;
            g.known.handoff_to = r.handoff_to;
        }
        false
    }

    /// The voter's side: grant `from` the group it claims, or renew the grant, if no
    /// promise to somebody else stands in the way.
    fn consider_grant(
        &mut self,
        now: Instant,
        from: NodeId,
        from_inc: u64,
        r: &GroupReport,
        sent_at: Instant,
    ) {
        let fence_required = !self.lease_enforced();
        // Not yet: promises made before a crash may be forgotten (quiet period), or the
        // holder records that gate takeovers were lost with the state file.
        let quiet = self.in_quiet(now) || (fence_required && self.state_lost);
        let promise = self.spec.timing.promise();
        let bug = self.bug;
        let fenced_by_me = self.fenced_by_me.clone();
        let holder_fenced_by_me = |h: HolderRecord| {
            fenced_by_me
                .get(&h.owner)
                .is_some_and(|f| *f >= h.incarnation)
        };
        let fenced = &self.fenced;
        let Some(g) = self.groups.iter_mut().find(|g| g.id == r.group) else {
            return;
        };
        if r.phase == Phase::Released {
            if g.promise.is_some_and(|p| p.to == from && p.term <= r.term) {
                g.promise = None;
            }
            return;
        }
        let current = g.promise.filter(|p| {
            now < p.until && fenced.get(&p.to).is_none_or(|inc| *inc < p.to_incarnation)
        });
        match current {
            Some(p) if p.to == from => {
                if r.term >= p.term {
                    g.promise = Some(Promise {
                        to: from,
                        to_incarnation: from_inc,
                        term: r.term,
                        until: now + promise,
                        echo: sent_at,
                    });
                    if g.holders.record(g.id, r.term, from, from_inc) {
                        self.persist_due = true;
                    }
                }
            }
            Some(_) if bug != PlantedBug::SkipPromiseWait => {}
            _ => {
                if quiet || r.term < g.known.term {
                    return;
                }
                // Where owners may run without a lease, a new owner needs the holder to
                // have let go or to be fenced: a promise running out proves nothing.
                if fence_required {
                    let blocked = g.holders.unreleased().any(|h| {
                        let inc_fenced = fenced
                            .get(&h.owner)
                            .is_some_and(|f| h.incarnation > 0 && *f >= h.incarnation);
                        h.owner != from && !inc_fenced && !holder_fenced_by_me(*h)
                    });
                    if blocked {
                        return;
                    }
                }
                g.promise = Some(Promise {
                    to: from,
                    to_incarnation: from_inc,
                    term: r.term,
                    until: now + promise,
                    echo: sent_at,
                });
                // A grant is a commitment: the grantee may start the moment it counts a
                // quorum, before anyone hears it run. Remember it as the holder, durably,
                // before the grant goes out.
                if g.holders.record(g.id, r.term, from, from_inc) {
                    self.persist_due = true;
                }
                self.send_asap = true;
            }
        }
    }

    fn receive_grant(&mut self, from: NodeId, grant: &Grant) {
        let Some(g) = self.groups.iter_mut().find(|g| g.id == grant.group) else {
            return;
        };
        match &mut g.role {
            Role::Candidate { term, grants, .. } | Role::Owner { term, grants, .. }
                if *term == grant.term =>
            {
                let e = grants.entry(from).or_insert(grant.echo_sent_at);
                if grant.echo_sent_at > *e {
                    *e = grant.echo_sent_at;
                }
            }
            _ => {}
        }
    }

    fn adopt_admin(&mut self, admin: AdminState, out: &mut Vec<Action>) {
        self.admin = admin;
        for g in &mut self.groups {
            let c = self
                .admin
                .cleanups
                .iter()
                .find(|(id, _)| *id == g.id)
                .map(|(_, c)| *c)
                .unwrap_or(0);
            if c > g.cleanup_seen {
                g.cleanup_seen = c;
                g.failures.clear();
                g.banned = false;
                g.last_failure = None;
                if let Role::Owner { failed, .. } = &mut g.role {
                    *failed = false;
                }
            }
        }
        self.persist(out);
        self.send_asap = true;
    }

    // ------------------------------------------------------------- operations in

    fn on_op_done(&mut self, now: Instant, op: OpId, result: OpResult, out: &mut Vec<Action>) {
        let Some(gi) = self
            .groups
            .iter()
            .position(|g| g.op.is_some_and(|(id, _, _)| id == op))
        else {
            return;
        };
        let on_fail = self.spec.groups[gi].on_fail;
        let failure_timeout = self.spec.groups[gi].failure_timeout;
        let threshold = self.spec.groups[gi].migration_threshold;
        let res_names = self.spec.groups[gi].resources.clone();
        let me = self.me;
        let g = &mut self.groups[gi];
        let Some((_, idx, kind)) = g.op.take() else {
            return;
        };
        let name = res_names.get(idx).cloned().unwrap_or_default();
        match (kind, &result) {
            (OpKind::Start, OpResult::Ok) => g.res[idx] = Res::Running,
            (OpKind::Stop, OpResult::Ok | OpResult::NotRunning) => g.res[idx] = Res::Stopped,
            (OpKind::Monitor, OpResult::Ok) => {
                g.res[idx] = Res::Running;
                if idx + 1 >= g.res.len() {
                    g.monitor_cursor = None;
                    g.next_monitor = Some(now + self.spec.groups[gi].monitor_interval);
                } else {
                    g.monitor_cursor = Some(idx + 1);
                }
            }
            (OpKind::Start, _) => {
                // A failed start bans the node from the group (Pacemaker's
                // start-failure-is-fatal) and stops what was started.
                g.res[idx] = Res::Unknown;
                g.failures.push(now);
                g.banned = true;
                g.last_failure = Some(format!("{name}: start {}", describe(&result)));
                out.push(event(
                    EventKind::ResourceFailed,
                    Some(me),
                    Some(g.id),
                    &format!("{name}: start {}; giving the group up", describe(&result)),
                ));
                if let Role::Owner { after_stop, .. } = &mut g.role {
                    *after_stop = Some(AfterStop::Release { handoff_to: None });
                }
                g.goal = Goal::Stop;
                self.send_asap = true;
            }
            (OpKind::Monitor, _) => {
                g.res[idx] = Res::Unknown;
                g.failures.push(now);
                g.failures
                    .retain(|t| now.saturating_since(*t) < failure_timeout);
                g.last_failure = Some(format!("{name}: monitor {}", describe(&result)));
                g.next_monitor = None;
                g.monitor_cursor = None;
                let count = g.failures.len() as u32;
                if count >= threshold {
                    g.banned = true;
                    out.push(event(
                        EventKind::ResourceFailed,
                        Some(me),
                        Some(g.id),
                        &format!(
                            "{name}: monitor {} ({count}/{threshold}): moving the group away",
                            describe(&result)
                        ),
                    ));
                    if let Role::Owner { after_stop, .. } = &mut g.role {
                        *after_stop = Some(AfterStop::Release { handoff_to: None });
                    }
                    g.goal = Goal::Stop;
                    self.send_asap = true;
                } else {
                    out.push(event(
                        EventKind::ResourceFailed,
                        Some(me),
                        Some(g.id),
                        &format!(
                            "{name}: monitor {} ({count}/{threshold}): restarting in place",
                            describe(&result)
                        ),
                    ));
                    g.restart_from = Some(idx);
                }
            }
            (OpKind::Stop, _) => {
                g.res[idx] = Res::Unknown;
                g.last_failure = Some(format!("{name}: stop {}", describe(&result)));
                match on_fail {
                    OnFail::FenceSelf => {
                        self.self_fence(format!("{name}: stop {}", describe(&result)), out);
                    }
                    OnFail::Block => {
                        out.push(event(
                            EventKind::ResourceFailed,
                            Some(me),
                            Some(g.id),
                            &format!(
                                "{name}: stop {}: group blocked until cleanup or fencing",
                                describe(&result)
                            ),
                        ));
                        if let Role::Owner { failed, .. } = &mut g.role {
                            *failed = true;
                        }
                        self.send_asap = true;
                    }
                }
            }
        }
    }

    fn on_fence_done(
        &mut self,
        now: Instant,
        request: FenceId,
        result: FenceResult,
        out: &mut Vec<Action>,
    ) {
        let Some((&target, &job)) = self
            .fences
            .iter()
            .find(|(_, j)| matches!(j, FenceJob::InFlight { request: r, .. } if *r == request))
        else {
            return;
        };
        let FenceJob::InFlight {
            incarnation, why, ..
        } = job
        else {
            return;
        };
        match result {
            FenceResult::Off => {
                // A power-off ends whatever incarnation runs, which is at least every
                // incarnation we know of.
                let known = self
                    .groups
                    .iter()
                    .filter_map(|g| g.holders.of(target))
                    .map(|h| h.incarnation);
                let peer = self.peers.get(&target).map(|p| p.incarnation).unwrap_or(0);
                let incarnation = known
                    .chain([incarnation, peer])
                    .max()
                    .unwrap_or(incarnation);
                self.fences.remove(&target);
                self.fenced_by_me.insert(target, incarnation);
                self.learn_fence(target, incarnation);
                if let Some(p) = self.peers.get_mut(&target) {
                    for d in &mut p.links {
                        d.reset();
                    }
                    p.up = false;
                    p.claims.clear();
                }
                self.send_asap = true;
                out.push(event(
                    EventKind::FenceSucceeded,
                    Some(target),
                    None,
                    &format!("{} is fenced (off)", self.name(target)),
                ));
            }
            FenceResult::Failed(error) => {
                let at = now + self.spec.fencing.retry_interval;
                self.fences.insert(
                    target,
                    FenceJob::Retry {
                        at,
                        incarnation,
                        why,
                    },
                );
                out.push(event(
                    EventKind::FenceFailed,
                    Some(target),
                    None,
                    &format!(
                        "fencing {} failed: {error}; retrying in {} ms; its groups stay stopped",
                        self.name(target),
                        self.spec.fencing.retry_interval.as_millis()
                    ),
                ));
            }
        }
    }

    fn on_admin(&mut self, now: Instant, cmd: AdminCommand, out: &mut Vec<Action>) {
        let mut admin = self.admin.clone();
        let what = match cmd {
            AdminCommand::Standby { node, on } => {
                admin.standby.retain(|n| *n != node);
                if on {
                    admin.standby.push(node);
                }
                format!(
                    "{} {}",
                    self.name(node),
                    if on { "standby" } else { "online" }
                )
            }
            AdminCommand::Move { group, to } => {
                let owner = self.group_owner(group);
                let target = to.or_else(|| self.best_node(now, group, owner));
                let Some(target) = target else {
                    out.push(event(
                        EventKind::Admin,
                        None,
                        Some(group),
                        "move: no other eligible node",
                    ));
                    return;
                };
                // A preference for a node that can never own the group would linger
                // and fire later, when nobody remembers asking (Pacemaker's stale
                // ban constraints): refuse it now instead.
                if let Some(why) = self.cannot_own(group, target) {
                    out.push(event(
                        EventKind::Admin,
                        None,
                        Some(group),
                        &format!("move refused: {why}"),
                    ));
                    return;
                }
                admin.moves.retain(|(g, _)| *g != group);
                admin.moves.push((group, target));
                format!("move to {target}")
            }
            AdminCommand::ClearMove { group } => {
                admin.moves.retain(|(g, _)| *g != group);
                "move cleared".to_string()
            }
            AdminCommand::Cleanup { group } => {
                let entry = admin.cleanups.iter_mut().find(|(g, _)| *g == group);
                match entry {
                    Some((_, c)) => *c += 1,
                    None => admin.cleanups.push((group, 1)),
                }
                "cleanup".to_string()
            }
            AdminCommand::Maintenance { group: None, on } => {
                admin.maintenance = on;
                format!("maintenance {}", if on { "on" } else { "off" })
            }
            AdminCommand::Maintenance {
                group: Some(group),
                on,
            } => {
                admin.group_maintenance.retain(|g| *g != group);
                if on {
                    admin.group_maintenance.push(group);
                }
                format!("maintenance {}", if on { "on" } else { "off" })
            }
            AdminCommand::Fence { node } => {
                let incarnation = self.peers.get(&node).map(|p| p.incarnation).unwrap_or(0);
                self.fences.insert(
                    node,
                    FenceJob::Delayed {
                        until: now,
                        incarnation,
                        why: FenceWhy::Admin,
                    },
                );
                out.push(event(
                    EventKind::Admin,
                    Some(node),
                    None,
                    &format!("fence {} requested by admin", self.name(node)),
                ));
                return;
            }
        };
        admin.version = self.admin.version.max(admin.version) + 1;
        admin.origin = self.me;
        out.push(event(EventKind::Admin, None, None, &what));
        self.adopt_admin(admin, out);
    }

    // ------------------------------------------------------------------ evaluate

    fn evaluate(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.update_membership(now, out);
        self.refresh_leases();
        self.two_node_owner_fencing(now, out);
        self.run_fences(now, out);
        self.expire_failures(now, out);
        for gi in 0..self.groups.len() {
            if self.self_fenced {
                return;
            }
            self.evaluate_group(now, gi, out);
            self.drive_resources(now, gi, out);
        }
        self.maybe_send(now, out);
    }

    /// Forgets failures older than the group's `failure_timeout`, and with the last of
    /// them the ban they caused (Pacemaker's failure-timeout): a node that failed a group
    /// becomes eligible again without an admin, once the failure is old news. A
    /// `tandemctl cleanup` does the same at once.
    fn expire_failures(&mut self, now: Instant, out: &mut Vec<Action>) {
        let me = self.me;
        for (gi, g) in self.groups.iter_mut().enumerate() {
            let Some(timeout) = self.spec.groups.get(gi).map(|s| s.failure_timeout) else {
                continue;
            };
            let before = g.failures.len();
            g.failures.retain(|t| now.saturating_since(*t) < timeout);
            if g.failures.len() == before || !g.failures.is_empty() || !g.banned {
                continue;
            }
            g.banned = false;
            g.last_failure = None;
            self.send_asap = true;
            out.push(event(
                EventKind::Decision,
                Some(me),
                Some(g.id),
                &format!(
                    "failures here are older than failure_timeout ({} s): eligible again",
                    timeout.as_secs()
                ),
            ));
        }
    }

    fn update_membership(&mut self, now: Instant, out: &mut Vec<Action>) {
        let initdead_over = now.saturating_since(self.started_at) >= self.spec.timing.initdead;
        let spec = &self.spec;
        let name = |id: NodeId| {
            spec.node(id)
                .map_or_else(|| id.to_string(), |n| n.name.clone())
        };
        for (&id, peer) in self.peers.iter_mut() {
            for (k, d) in peer.links.iter().enumerate() {
                let s = d.state(now);
                let was = peer.link_state[k];
                if s != was {
                    peer.link_state[k] = s;
                    if was.delivers() && !s.delivers() {
                        out.push(event(
                            EventKind::LinkDown,
                            Some(id),
                            None,
                            &format!("link {k} to {} down", name(id)),
                        ));
                    } else if !was.delivers() && s.delivers() && was != LinkState::Unknown {
                        out.push(event(
                            EventKind::LinkUp,
                            Some(id),
                            None,
                            &format!("link {k} to {} up", name(id)),
                        ));
                    }
                }
            }
            let up = peer.link_state.iter().any(|s| s.delivers());
            if up != peer.up {
                peer.up = up;
                if up {
                    peer.up_since = Some(now);
                    out.push(event(
                        EventKind::NodeUp,
                        Some(id),
                        None,
                        &format!("{} is up", name(id)),
                    ));
                } else {
                    peer.up_since = None;
                    out.push(event(
                        EventKind::NodeDown,
                        Some(id),
                        None,
                        &format!("{} is down: no heartbeat on any link", name(id)),
                    ));
                }
            }
        }
        let _ = initdead_over;
        if !self.seen_all && self.peers.values().all(|p| p.ever_seen) {
            self.seen_all = true;
        }
        let present = self.votes_present();
        let expected = self.spec.expected_votes();
        let quorate = quorum::is_quorate(present, expected, self.spec.quorum.two_node);
        if quorate != self.quorate() {
            self.quorate_since = quorate.then_some(now);
            self.send_asap = true;
            let kind = if quorate {
                EventKind::QuorumGained
            } else {
                EventKind::QuorumLost
            };
            out.push(event(
                kind,
                Some(self.me),
                None,
                &format!("{} votes of {expected} present", present),
            ));
        }
        // Where holder records are what keeps takeovers safe, a node that lost them must
        // hear every node (each gossips its holder record) before it votes again.
        let need_all = self.spec.quorum.wait_for_all || !self.lease_enforced();
        if self.state_lost && self.quorate() && !self.in_quiet(now) && (self.seen_all || !need_all)
        {
            self.state_lost = false;
            out.push(event(
                EventKind::Decision,
                Some(self.me),
                None,
                "state file was lost: rebuilt from the cluster's view",
            ));
            self.persist(out);
        }
    }

    fn quorate(&self) -> bool {
        self.quorate_since.is_some()
    }

    fn votes_present(&self) -> u32 {
        let mine = self.spec.node(self.me).map(|n| n.votes).unwrap_or(0);
        mine + self
            .peers
            .iter()
            .filter(|(_, p)| p.up)
            .map(|(id, _)| self.spec.node(*id).map(|n| n.votes).unwrap_or(0))
            .sum::<u32>()
    }

    /// Whether `node`, as this node knows it, is powered off by a confirmed fence. A
    /// fence record names an incarnation; it proves nothing about a node whose current
    /// incarnation we never heard (it may have rebooted since), unless we fenced it
    /// ourselves after we last heard it.
    fn is_fenced(&self, node: NodeId) -> bool {
        let inc = self.peers.get(&node).map(|p| p.incarnation).unwrap_or(0);
        if let Some(f) = self.fenced_by_me.get(&node) {
            if *f >= inc {
                return true;
            }
        }
        inc > 0 && self.fenced.get(&node).is_some_and(|f| *f >= inc)
    }

    /// A node that just started may have forgotten promises it made before: it grants
    /// nothing until the longest of them would have run out.
    fn in_quiet(&self, now: Instant) -> bool {
        now < self.started_at + self.spec.timing.promise()
    }

    /// Whether an owner must stop before its lease ends. When every takeover from a
    /// silent owner needs a confirmed fence first (two_node, `fence: always`, the
    /// `freeze` policy), the fence (power off) is what makes a takeover safe, and the
    /// owner may keep running without a lease.
    fn lease_enforced(&self) -> bool {
        !(self.spec.quorum.two_node
            || self.spec.fencing.mode == FenceMode::Always
            || self.spec.quorum.no_quorum_policy == NoQuorumPolicy::Freeze)
    }

    fn maintenance(&self, g: GroupId) -> bool {
        self.admin.maintenance || self.admin.group_maintenance.contains(&g)
    }

    fn node_eligible(&self, node: NodeId, gi: usize) -> bool {
        let gs = &self.spec.groups[gi];
        let Some(n) = self.spec.node(node) else {
            return false;
        };
        if n.witness || self.admin.standby.contains(&node) {
            return false;
        }
        if !gs.allowed(node) {
            return false;
        }
        // A node whose stop failed holds the group blocked: it must be fenced or
        // cleaned up, not waited for.
        if self.groups[gi]
            .holders
            .of(node)
            .is_some_and(|h| h.failed && !h.released)
        {
            return false;
        }
        if node == self.me {
            return self.healthy && !self.leaving && !self.groups[gi].banned;
        }
        self.peers
            .get(&node)
            .is_some_and(|p| p.up && !p.refuses.contains(&gs.id))
    }

    /// Ordering of candidates: an admin move target first, then the preferred node,
    /// then priority, then the lower node id.
    fn rank(&self, node: NodeId, gi: usize) -> (bool, bool, i32, std::cmp::Reverse<NodeId>) {
        let gs = &self.spec.groups[gi];
        let moved = self
            .admin
            .moves
            .iter()
            .any(|(g, n)| *g == gs.id && *n == node);
        let preferred = gs.prefer == Some(node);
        let prio = self.spec.node(node).map(|n| n.priority).unwrap_or(i32::MIN);
        (moved, preferred, prio, std::cmp::Reverse(node))
    }

    fn best_node(&self, _now: Instant, group: GroupId, except: Option<NodeId>) -> Option<NodeId> {
        let gi = self.groups.iter().position(|g| g.id == group)?;
        self.spec
            .nodes
            .iter()
            .map(|n| n.id)
            .filter(|n| Some(*n) != except && self.node_eligible(*n, gi))
            .max_by_key(|n| self.rank(*n, gi))
    }

    fn group_owner(&self, group: GroupId) -> Option<NodeId> {
        let g = self.groups.iter().find(|g| g.id == group)?;
        if matches!(g.role, Role::Owner { .. }) {
            return Some(self.me);
        }
        g.known.owner.filter(|_| g.known.phase != Phase::Released)
    }

    /// The owner of `gi` as far as this node can tell, if that owner is alive and
    /// still claims the group.
    fn live_owner(&self, gi: usize) -> Option<NodeId> {
        let g = &self.groups[gi];
        for h in g.holders.unreleased().filter(|h| h.owner != self.me) {
            // A holder whose stop failed is not "live": it must be fenced.
            let claims = self
                .peers
                .get(&h.owner)
                .filter(|p| p.up)
                .and_then(|p| p.claims.get(&g.id))
                .is_some_and(|c| {
                    c.term >= h.term && !matches!(c.phase, Phase::Released | Phase::Failed)
                });
            if claims {
                return Some(h.owner);
            }
        }
        let o = g.known.owner?;
        if o == self.me {
            return None;
        }
        let peer = self.peers.get(&o)?;
        if !peer.up {
            return None;
        }
        let claim = peer.claims.get(&g.id)?;
        (!matches!(claim.phase, Phase::Released | Phase::Failed) && claim.term >= g.known.term)
            .then_some(o)
    }

    fn evaluate_group(&mut self, now: Instant, gi: usize, out: &mut Vec<Action>) {
        let gid = self.groups[gi].id;
        if self.maintenance(gid) {
            self.set_reason(gi, "maintenance: tandem leaves the group alone".into(), out);
            return;
        }
        match self.groups[gi].role.clone() {
            Role::Owner {
                term,
                lease_until,
                after_stop,
                failed,
                recovering,
                ..
            } => {
                // A recovering owner has no lease to enforce: it only stops and releases.
                let lease_until = if recovering {
                    Instant::from_nanos(u64::MAX)
                } else {
                    lease_until
                };
                self.evaluate_owner(now, gi, term, lease_until, after_stop, failed, out)
            }
            Role::Candidate {
                term,
                since,
                grants,
            } => self.evaluate_candidate(now, gi, term, since, &grants, out),
            Role::Idle => self.evaluate_idle(now, gi, out),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn evaluate_owner(
        &mut self,
        now: Instant,
        gi: usize,
        term: Term,
        lease_until: Instant,
        after_stop: Option<AfterStop>,
        failed: bool,
        out: &mut Vec<Action>,
    ) {
        let g = &self.groups[gi];
        let gid = g.id;
        let stopping = after_stop.is_some();
        let maybe_running = g.may_run();

        if self.lease_enforced() && now >= lease_until && maybe_running {
            self.self_fence(
                format!(
                    "lease of {} ended while resources may still run",
                    self.spec.groups[gi].name
                ),
                out,
            );
            return;
        }
        if stopping {
            if !maybe_running && g.op.is_none() {
                self.finish_stop(now, gi, term, after_stop, out);
            }
            return;
        }
        if failed {
            self.set_reason(
                gi,
                "blocked: a stop failed; fence this node or clean up".into(),
                out,
            );
            return;
        }
        // A newer term, or (only possible under `no_quorum_policy: ignore`) a better
        // ranked owner of the same term.
        let newer_owner = g.known.term >= term
            && g.known.owner.is_some_and(|o| o != self.me)
            && g.known.phase != Phase::Candidate
            && g.known.phase != Phase::Released;
        // Two live owners can only meet after a partition under `no_quorum_policy:
        // ignore`: whoever sees a peer actively claiming a newer term, or the same term
        // with a better rank, steps down, so the cluster converges on one owner.
        let active = |p: Phase| matches!(p, Phase::Starting | Phase::Running | Phase::Stopping);
        let rival = self.peers.iter().filter(|(_, p)| p.up).find_map(|(id, p)| {
            let c = p.claims.get(&gid)?;
            let beats =
                c.term > term || (c.term == term && self.rank(*id, gi) > self.rank(self.me, gi));
            (active(c.phase) && beats).then_some(*id)
        });
        if let Some(o) = rival.filter(|_| !newer_owner) {
            let o = self.name(o);
            self.begin_stop(
                gi,
                AfterStop::StepDown,
                format!("{o} also runs the group: stepping down"),
                out,
            );
            return;
        }
        if newer_owner {
            let o = g.known.owner.map(|o| self.name(o)).unwrap_or_default();
            self.begin_stop(
                gi,
                AfterStop::StepDown,
                format!("{o} owns term {}: stepping down", g.known.term),
                out,
            );
            return;
        }
        if self.lease_enforced() && now + self.spec.timing.stop_before_lease_end >= lease_until {
            let left = lease_until.saturating_since(now).as_millis();
            self.begin_stop(
                gi,
                AfterStop::Release { handoff_to: None },
                format!("lease not renewed ({left} ms left): lost contact with quorum"),
                out,
            );
            return;
        }
        if !self.quorate() && self.spec.quorum.no_quorum_policy == NoQuorumPolicy::Stop {
            self.begin_stop(
                gi,
                AfterStop::Release { handoff_to: None },
                format!("{} lost quorum", self.name(self.me)),
                out,
            );
            return;
        }
        if !self.node_eligible(self.me, gi) {
            let to = self.best_node(now, gid, Some(self.me));
            let why = if self.leaving {
                "shutting down"
            } else if self.admin.standby.contains(&self.me) {
                "standby"
            } else if !self.healthy {
                "health check failing"
            } else {
                "failed too often here"
            };
            self.begin_stop(
                gi,
                AfterStop::Release { handoff_to: to },
                format!("{}: {why}, giving the group up", self.name(self.me)),
                out,
            );
            return;
        }
        if let Some(&(_, target)) = self.admin.moves.iter().find(|(g, _)| *g == gid) {
            if target != self.me && self.node_eligible(target, gi) {
                self.begin_stop(
                    gi,
                    AfterStop::Release {
                        handoff_to: Some(target),
                    },
                    format!("moving to {} (admin)", self.name(target)),
                    out,
                );
                return;
            }
        }
        let gs = &self.spec.groups[gi];
        let moved_here = self
            .admin
            .moves
            .iter()
            .any(|(g, n)| *g == gid && *n == self.me);
        if let Some(p) = gs.prefer {
            if p != self.me && !moved_here {
                let stable = self
                    .peers
                    .get(&p)
                    .and_then(|peer| peer.up_since)
                    .map(|s| now.saturating_since(s));
                if gs.failback && self.node_eligible(p, gi) {
                    if stable.is_some_and(|s| s >= gs.failback_delay) {
                        self.begin_stop(
                            gi,
                            AfterStop::Release {
                                handoff_to: Some(p),
                            },
                            format!("failback to {} (preferred)", self.name(p)),
                            out,
                        );
                        return;
                    }
                    let wait = gs.failback_delay.saturating_sub(stable.unwrap_or_default());
                    self.set_reason(
                        gi,
                        format!("failback to {} in {} ms", self.name(p), wait.as_millis()),
                        out,
                    );
                    return;
                }
                if !gs.failback && self.node_eligible(p, gi) {
                    self.set_reason(
                        gi,
                        format!("failback off: staying on {}", self.name(self.me)),
                        out,
                    );
                    return;
                }
            }
        }
        let why = if moved_here {
            "moved here by admin"
        } else if gs.prefer == Some(self.me) {
            "preferred node"
        } else {
            "best available node"
        };
        self.set_reason(
            gi,
            format!("running on {} ({why})", self.name(self.me)),
            out,
        );
    }

    fn evaluate_candidate(
        &mut self,
        now: Instant,
        gi: usize,
        term: Term,
        since: Instant,
        grants: &BTreeMap<NodeId, Instant>,
        out: &mut Vec<Action>,
    ) {
        let g = &self.groups[gi];
        // A better-ranked rival at the same term, or anyone at a newer term: withdraw.
        let rival = g.known.owner.filter(|o| *o != self.me);
        let outranked = rival.is_some_and(|o| {
            g.known.term > term
                || (g.known.term == term
                    && (g.known.phase != Phase::Candidate
                        || self.rank(o, gi) > self.rank(self.me, gi)))
        });
        // Voters grant once their promise to a silent owner ran out: allow for that
        // promise, then two deadtimes and a few heartbeats to gather the grants.
        let t = &self.spec.timing;
        let timeout = t.promise() + t.deadtime * 2 + t.interval * 4;
        let gave_up = now.saturating_since(since) > timeout;
        let cannot = !self.node_eligible(self.me, gi) || !(self.quorate() || self.ignore_quorum());
        if outranked || gave_up || cannot {
            let why = if outranked {
                format!(
                    "{} claims the group: withdrawing",
                    rival.map(|o| self.name(o)).unwrap_or_default()
                )
            } else if gave_up {
                "no quorum of grants in time: withdrawing".to_string()
            } else {
                "no longer eligible or quorate: withdrawing".to_string()
            };
            self.withdraw(gi, term, why, out);
            return;
        }
        let needed = self.votes_needed();
        let weighted: Vec<(u32, Instant)> = grants
            .iter()
            .map(|(n, at)| (self.spec.node(*n).map(|s| s.votes).unwrap_or(0), *at))
            .collect();
        let have: u32 = weighted.iter().map(|(w, _)| *w).sum();
        // Grants collected over a long candidacy may be stale: only a quorum whose
        // lease still has more than the step-down margin left makes an owner.
        let fresh = quorum::quorum_acknowledged(&weighted, needed)
            .map(|acked| acked + self.spec.timing.deadtime - self.drift_margin())
            .filter(|until| *until > now + self.spec.timing.stop_before_lease_end);
        if let Some(lease_until) = fresh {
            let grants = grants.clone();
            let g = &mut self.groups[gi];
            g.role = Role::Owner {
                term,
                grants,
                lease_until,
                after_stop: None,
                failed: false,
                recovering: false,
            };
            g.holders.record(g.id, term, self.me, self.incarnation);
            g.goal = Goal::Run;
            g.known = Known {
                term,
                owner: Some(self.me),
                owner_inc: self.incarnation,
                phase: Phase::Starting,
                handoff_to: None,
            };
            // Persist the ownership before starting anything: after a crash this node
            // must know it may have left resources running at this term.
            self.persist(out);
            self.send_asap = true;
            let gid = self.groups[gi].id;
            out.push(Action::Event(Event {
                kind: EventKind::BecameOwner,
                node: Some(self.me),
                group: Some(gid),
                term: Some(term),
                reason: format!("granted term {term} by a quorum ({have} of {needed} votes)"),
            }));
            self.set_reason(
                gi,
                format!("starting on {} (term {term})", self.name(self.me)),
                out,
            );
        } else {
            let blocker = self.groups[gi]
                .promise
                .filter(|p| p.to != self.me && now < p.until);
            let why = match blocker {
                Some(p) => format!(
                    "waiting for lease of {} to expire ({} ms)",
                    self.name(p.to),
                    p.until.saturating_since(now).as_millis()
                ),
                None => format!("candidate for term {term}: {have} of {needed} votes granted"),
            };
            self.set_reason(gi, why, out);
        }
    }

    fn evaluate_idle(&mut self, now: Instant, gi: usize, out: &mut Vec<Action>) {
        let gid = self.groups[gi].id;
        if self.groups[gi].may_run() || self.groups[gi].op.is_some() {
            return; // startup cleanup still running
        }
        // Idle with nothing running: if the record says we hold the group, we have in
        // fact let go (stepped down, or restarted and cleaned up). Say so.
        let me = self.me;
        if self.groups[gi].holders.release(me, Term(u64::MAX)) {
            self.persist(out);
            self.send_asap = true;
        }
        let known = &mut self.groups[gi].known;
        if known.owner == Some(me) && known.phase != Phase::Released {
            known.phase = Phase::Released;
            known.handoff_to = None;
            self.send_asap = true;
        }
        if let Some(o) = self.live_owner(gi) {
            let phase = self
                .peers
                .get(&o)
                .and_then(|p| p.claims.get(&gid))
                .map(|c| c.phase);
            let state = match phase {
                Some(Phase::Candidate) => "claiming",
                Some(Phase::Starting) => "starting",
                Some(Phase::Stopping) => "stopping",
                Some(Phase::Failed) => "failed",
                _ => "running",
            };
            self.set_reason(gi, format!("{state} on {}", self.name(o)), out);
            return;
        }
        if !self.node_eligible(self.me, gi) {
            let why = if self.spec.node(self.me).is_some_and(|n| n.witness) {
                "witness: never owns"
            } else if self.leaving {
                "shutting down"
            } else if self.admin.standby.contains(&self.me) {
                "standby"
            } else if !self.healthy {
                "health check failing"
            } else if self.groups[gi].banned {
                "failed too often here"
            } else {
                "not allowed here"
            };
            let owner = self.groups[gi]
                .known
                .owner
                .filter(|_| self.groups[gi].known.phase != Phase::Released);
            let where_ = owner
                .map(|o| format!("owned by {}", self.name(o)))
                .unwrap_or_else(|| "no owner".into());
            self.set_reason(
                gi,
                format!("{where_}; {} is not eligible ({why})", self.name(self.me)),
                out,
            );
            return;
        }
        if self.state_lost {
            self.set_reason(
                gi,
                "state file lost: waiting for the cluster's view".into(),
                out,
            );
            return;
        }
        if self.spec.quorum.wait_for_all && !self.seen_all {
            self.set_reason(
                gi,
                "wait_for_all: waiting to see every node once".into(),
                out,
            );
            return;
        }
        if !self.quorate() && !self.ignore_quorum() {
            self.set_reason(gi, "no quorum: taking nothing".into(), out);
            return;
        }
        if self.in_quiet(now) {
            self.set_reason(
                gi,
                "just started: waiting out promises made before".into(),
                out,
            );
            return;
        }
        let known = self.groups[gi].known;
        // A handoff is a hint: if its target does not act on it within two deadtimes
        // (it may never have heard of it), normal ranking decides.
        if known.handoff_to.is_some() && self.groups[gi].handoff_seen.is_none() {
            self.groups[gi].handoff_seen = Some(now);
        }
        let hint_fresh = self.groups[gi]
            .handoff_seen
            .is_none_or(|at| now.saturating_since(at) < self.spec.timing.deadtime * 2);
        if known.handoff_to.is_none() {
            self.groups[gi].handoff_seen = None;
        }
        if known.phase == Phase::Released && hint_fresh {
            if let Some(h) = known.handoff_to.filter(|h| *h != self.me) {
                if self.node_eligible(h, gi) {
                    self.set_reason(gi, format!("handed over to {}", self.name(h)), out);
                    return;
                }
            }
        }
        let handed_to_me = known.phase == Phase::Released && known.handoff_to == Some(self.me);
        if !handed_to_me {
            if let Some(best) = self.best_node(now, gid, None) {
                if best != self.me {
                    self.set_reason(
                        gi,
                        format!(
                            "waiting for {} to take it ({} ranks higher)",
                            self.name(best),
                            self.name(best)
                        ),
                        out,
                    );
                    return;
                }
            }
        }
        match self.fence_need(gi) {
            FenceNeed::Blocked(why) => {
                self.set_reason(gi, why, out);
                return;
            }
            FenceNeed::Fence(target) => {
                let failed = self.groups[gi]
                    .holders
                    .of(target)
                    .is_some_and(|h| h.failed && !h.released);
                if !failed && self.peers.get(&target).is_some_and(|p| p.up) {
                    self.set_reason(
                        gi,
                        format!("waiting for {} to let go (it is alive)", self.name(target)),
                        out,
                    );
                    return;
                }
                if !failed {
                    if let Some(settled) = self.quorum_settles_at().filter(|t| now < *t) {
                        self.set_reason(
                            gi,
                            format!(
                                "quorum regained: giving {} {} ms to be heard before fencing it",
                                self.name(target),
                                settled.saturating_since(now).as_millis()
                            ),
                            out,
                        );
                        return;
                    }
                }
                if !self.fences.contains_key(&target) {
                    let why = if failed {
                        FenceWhy::StopFailed
                    } else {
                        FenceWhy::Vanished
                    };
                    let delay = if failed {
                        Duration::ZERO
                    } else {
                        self.fence_delay(target)
                    };
                    let incarnation = self.peers.get(&target).map(|p| p.incarnation).unwrap_or(0);
                    self.fences.insert(
                        target,
                        FenceJob::Delayed {
                            until: now + delay,
                            incarnation,
                            why,
                        },
                    );
                    out.push(event(
                        EventKind::FenceRequested,
                        Some(target),
                        Some(gid),
                        &format!(
                            "fencing {} first (in {} ms)",
                            self.name(target),
                            delay.as_millis()
                        ),
                    ));
                }
                self.set_reason(gi, format!("fencing {} first", self.name(target)), out);
                return;
            }
            FenceNeed::None => {}
        }
        // Campaign: persist the new term before claiming it.
        let term = known.term.next();
        let g = &mut self.groups[gi];
        g.known = Known {
            term,
            owner: Some(self.me),
            owner_inc: self.incarnation,
            phase: Phase::Candidate,
            handoff_to: None,
        };
        g.role = Role::Candidate {
            term,
            since: now,
            grants: BTreeMap::new(),
        };
        self.persist(out);
        self.send_asap = true;
        let why = match known.owner {
            Some(o) if o != self.me && known.phase != Phase::Released => {
                format!("{} is gone: claiming term {term}", self.name(o))
            }
            _ => format!("no owner: claiming term {term}"),
        };
        self.set_reason(gi, why, out);
    }

    fn ignore_quorum(&self) -> bool {
        self.spec.quorum.no_quorum_policy == NoQuorumPolicy::Ignore
    }

    fn votes_needed(&self) -> u32 {
        if self.ignore_quorum() && !self.quorate() {
            return self.votes_present();
        }
        if self.spec.quorum.two_node {
            // Both votes, unless the peer is fenced (then it holds nothing).
            let total: u32 = self.spec.nodes.iter().map(|n| n.votes).sum();
            let fenced_votes: u32 = self
                .peers
                .iter()
                .filter(|(id, p)| !p.up && self.is_fenced(**id))
                .map(|(id, _)| self.spec.node(*id).map(|n| n.votes).unwrap_or(0))
                .sum();
            return total.saturating_sub(fenced_votes).max(1);
        }
        quorum::quorum_votes(self.spec.expected_votes())
    }

    fn drift_margin(&self) -> Duration {
        let d = self.spec.timing.deadtime;
        let ppm = u128::from(self.spec.timing.max_drift_ppm);
        let nanos = d.as_nanos() * 2 * ppm / 1_000_000;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)) + Duration::from_micros(100)
    }

    /// Until when a silent peer gets the benefit of the doubt after this node (re)gained
    /// quorum: a node back from isolation hears its peers one by one, and the one it has
    /// not heard yet is not known to be gone. None while this node has no quorum.
    fn quorum_settles_at(&self) -> Option<Instant> {
        self.quorate_since
            .map(|since| since + self.spec.timing.deadtime)
    }

    fn fence_delay(&self, target: NodeId) -> Duration {
        let base = self
            .spec
            .node(target)
            .map(|n| n.fence_delay)
            .unwrap_or_default();
        // The node that runs groups wins a fence race (Pacemaker's
        // priority-fencing-delay): others wait a deadtime longer before shooting it. What
        // this node last heard from the owner may be stale (it was cut off while the group
        // moved); the holder records it gossiped since are not.
        let owns = self.groups.iter().any(|g| {
            (g.known.owner == Some(target) && g.known.phase != Phase::Released)
                || g.holders.unreleased().any(|h| h.owner == target)
        });
        if owns {
            base + self.spec.timing.deadtime
        } else {
            base
        }
    }

    /// Whether the incarnation that held a group is confirmed off.
    fn holder_fenced(&self, h: &HolderRecord) -> bool {
        self.fenced
            .get(&h.owner)
            .is_some_and(|f| h.incarnation > 0 && *f >= h.incarnation)
            || self
                .fenced_by_me
                .get(&h.owner)
                .is_some_and(|f| *f >= h.incarnation)
    }

    fn fence_need(&self, gi: usize) -> FenceNeed {
        let g = &self.groups[gi];
        let mode = self.spec.fencing.mode;
        let is_fenced = |n: NodeId| self.is_fenced(n);
        for h in g.holders.unreleased().filter(|h| h.owner != self.me) {
            if self.holder_fenced(h) {
                continue;
            }
            let must = h.failed || !self.lease_enforced();
            if must {
                return if mode == FenceMode::Off {
                    FenceNeed::Blocked(format!(
                        "{} may still run the group and cannot be fenced (no fence agents): waiting",
                        self.name(h.owner)
                    ))
                } else {
                    FenceNeed::Fence(h.owner)
                };
            }
        }
        if self.spec.quorum.two_node {
            for (&id, p) in &self.peers {
                if !p.up && !is_fenced(id) {
                    return if mode == FenceMode::Off {
                        FenceNeed::Blocked(format!(
                            "two_node: {} is unreachable and cannot be fenced: waiting",
                            self.name(id)
                        ))
                    } else {
                        FenceNeed::Fence(id)
                    };
                }
            }
        }
        FenceNeed::None
    }

    /// In a two-node cluster the node that runs groups shoots a vanished peer first, so
    /// that the fence race (each side fencing the other) is won by the side that keeps
    /// the service where it is; the peer waits a deadtime longer before shooting it.
    fn two_node_owner_fencing(&mut self, now: Instant, out: &mut Vec<Action>) {
        if !self.spec.quorum.two_node || self.spec.fencing.mode == FenceMode::Off {
            return;
        }
        if !self
            .groups
            .iter()
            .any(|g| matches!(g.role, Role::Owner { .. }))
        {
            return;
        }
        let lost: Vec<(NodeId, u64)> = self
            .peers
            .iter()
            .filter(|(id, p)| p.ever_seen && !p.up && !self.is_fenced(**id))
            .map(|(id, p)| (*id, p.incarnation))
            .collect();
        for (target, incarnation) in lost {
            if self.fences.contains_key(&target) {
                continue;
            }
            let delay = self.fence_delay(target);
            self.fences.insert(
                target,
                FenceJob::Delayed {
                    until: now + delay,
                    incarnation,
                    why: FenceWhy::Vanished,
                },
            );
            out.push(event(
                EventKind::FenceRequested,
                Some(target),
                None,
                &format!(
                    "two_node: {} vanished; fencing it in {} ms",
                    self.name(target),
                    delay.as_millis()
                ),
            ));
        }
    }

    fn run_fences(&mut self, now: Instant, out: &mut Vec<Action>) {
        // A node without quorum takes nothing over, so a fence it queued for a takeover
        // would only power off a node that the majority may be relying on (Pacemaker: a
        // partition without quorum does not fence). An admin's explicit request stands.
        let may_fence = self.quorate() || self.ignore_quorum();
        let targets: Vec<NodeId> = self.fences.keys().copied().collect();
        for target in targets {
            let Some(job) = self.fences.get(&target).copied() else {
                continue;
            };
            if let FenceJob::Delayed { why, .. } | FenceJob::Retry { why, .. } = job {
                if !may_fence && why != FenceWhy::Admin {
                    self.fences.remove(&target);
                    out.push(event(
                        EventKind::Decision,
                        Some(target),
                        None,
                        &format!(
                            "fence of {} called off: this node lost quorum",
                            self.name(target)
                        ),
                    ));
                    continue;
                }
            }
            let target_back = self.peers.get(&target).is_some_and(|p| p.up);
            match job {
                FenceJob::Delayed {
                    until,
                    incarnation,
                    why,
                }
                | FenceJob::Retry {
                    at: until,
                    incarnation,
                    why,
                } => {
                    if target_back && why == FenceWhy::Vanished {
                        // It came back before we shot: nothing to fence any more.
                        self.fences.remove(&target);
                        continue;
                    }
                    if now >= until {
                        let request = FenceId(self.fresh_id());
                        self.fences.insert(
                            target,
                            FenceJob::InFlight {
                                request,
                                incarnation,
                                why,
                            },
                        );
                        out.push(Action::Fence { request, target });
                        out.push(event(
                            EventKind::FenceRequested,
                            Some(target),
                            None,
                            &format!("fencing {} now", self.name(target)),
                        ));
                    }
                }
                FenceJob::InFlight { .. } => {}
            }
        }
    }

    fn withdraw(&mut self, gi: usize, term: Term, why: String, out: &mut Vec<Action>) {
        let me = self.me;
        let g = &mut self.groups[gi];
        g.role = Role::Idle;
        if g.known.term == term && g.known.owner == Some(me) {
            g.known.phase = Phase::Released;
        }
        if g.promise.is_some_and(|p| p.to == me) {
            g.promise = None;
        }
        self.send_asap = true;
        self.set_reason(gi, why, out);
    }

    fn begin_stop(&mut self, gi: usize, after: AfterStop, why: String, out: &mut Vec<Action>) {
        let me = self.me;
        let g = &mut self.groups[gi];
        if let Role::Owner {
            after_stop, term, ..
        } = &mut g.role
        {
            *after_stop = Some(after);
            if g.known.term == *term && g.known.owner == Some(me) {
                g.known.phase = Phase::Stopping;
            }
        }
        g.goal = Goal::Stop;
        g.next_monitor = None;
        g.monitor_cursor = None;
        g.restart_from = None;
        self.send_asap = true;
        out.push(Action::Event(Event {
            kind: EventKind::LostOwnership,
            node: Some(me),
            group: Some(self.groups[gi].id),
            term: None,
            reason: why.clone(),
        }));
        self.set_reason(gi, why, out);
    }

    fn finish_stop(
        &mut self,
        _now: Instant,
        gi: usize,
        term: Term,
        after: Option<AfterStop>,
        out: &mut Vec<Action>,
    ) {
        let me = self.me;
        let g = &mut self.groups[gi];
        g.role = Role::Idle;
        if g.promise.is_some_and(|p| p.to == me) {
            g.promise = None;
        }
        match after {
            Some(AfterStop::Release { handoff_to }) => {
                if g.known.term == term {
                    g.known = Known {
                        term,
                        owner: Some(me),
                        owner_inc: g.known.owner_inc,
                        phase: Phase::Released,
                        handoff_to,
                    };
                    g.holders.release(me, term);
                }
            }
            Some(AfterStop::StepDown) | None => {}
        }
        let gid = g.id;
        self.persisted.owned.retain(|(id, _)| *id != gid);
        self.persist(out);
        self.send_asap = true;
        out.push(Action::Event(Event {
            kind: EventKind::GroupStopped,
            node: Some(me),
            group: Some(gid),
            term: Some(term),
            reason: "stopped and released".into(),
        }));
    }

    fn self_fence(&mut self, reason: String, out: &mut Vec<Action>) {
        self.self_fenced = true;
        out.push(event(EventKind::SelfFence, Some(self.me), None, &reason));
        out.push(Action::SelfFence { reason });
    }

    /// Issue the next resource operation of a group, if any is due: stop from the end
    /// (restart in place, or the goal is Stop), start from the front, or the next step of
    /// a monitor sweep. One operation at a time per group.
    fn drive_resources(&mut self, now: Instant, gi: usize, out: &mut Vec<Action>) {
        let gid = self.groups[gi].id;
        if self.maintenance(gid) || self.groups[gi].op.is_some() {
            return;
        }
        self.apply_pending(gi);
        let Some((idx, kind)) = self.next_op(now, gi, out) else {
            return;
        };
        let op = OpId(self.fresh_id());
        self.groups[gi].op = Some((op, idx, kind));
        out.push(Action::RunOp {
            op,
            group: gid,
            resource: idx,
            kind,
            timeout: None,
        });
    }

    fn next_op(
        &mut self,
        now: Instant,
        gi: usize,
        out: &mut Vec<Action>,
    ) -> Option<(usize, OpKind)> {
        let me = self.me;
        let monitor_interval = self.spec.groups[gi].monitor_interval;
        let g = &mut self.groups[gi];
        let n = g.res.len();
        // Blocked after a failed stop: leave everything as it is until a fence or a
        // cleanup.
        if matches!(g.role, Role::Owner { failed: true, .. }) {
            return None;
        }
        if let Some(from) = g.restart_from {
            if let Some(i) = (from..n).rev().find(|i| g.res[*i] != Res::Stopped) {
                return Some((i, OpKind::Stop));
            }
            g.restart_from = None;
        }
        if g.goal == Goal::Stop {
            return (0..n)
                .rev()
                .find(|i| g.res[*i] != Res::Stopped)
                .map(|i| (i, OpKind::Stop));
        }
        let Role::Owner {
            term,
            after_stop: None,
            failed: false,
            ..
        } = g.role
        else {
            return None;
        };
        if let Some(i) = (0..n).find(|i| g.res[*i] != Res::Running) {
            return Some((i, OpKind::Start));
        }
        if g.known.phase == Phase::Starting && g.known.owner == Some(me) && g.known.term == term {
            g.known.phase = Phase::Running;
            g.monitor_cursor = None;
            g.next_monitor = Some(now + monitor_interval);
            self.send_asap = true;
            out.push(Action::Event(Event {
                kind: EventKind::GroupStarted,
                node: Some(me),
                group: Some(g.id),
                term: Some(term),
                reason: "all resources started".into(),
            }));
            out.push(Action::Announce { group: g.id });
            return None;
        }
        if n == 0 {
            return None;
        }
        if let Some(i) = g.monitor_cursor {
            return Some((i.min(n - 1), OpKind::Monitor));
        }
        match g.next_monitor {
            None => {
                g.next_monitor = Some(now + monitor_interval);
                None
            }
            Some(at) if now >= at => {
                g.next_monitor = None;
                g.monitor_cursor = Some(0);
                Some((0, OpKind::Monitor))
            }
            Some(_) => None,
        }
    }

    fn fresh_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    // --------------------------------------------------------------- heartbeats out

    fn earliest_triggered_send(&self) -> Instant {
        let gap = (self.spec.timing.interval / MIN_SEND_GAP_DIVISOR).min(MAX_TRIGGERED_SEND_GAP);
        self.last_send.map(|l| l + gap).unwrap_or(Instant::ZERO)
    }

    fn maybe_send(&mut self, now: Instant, out: &mut Vec<Action>) {
        let due =
            now >= self.next_send || (self.send_asap && now >= self.earliest_triggered_send());
        if !due {
            return;
        }
        self.send_asap = false;
        self.seq += 1;
        self.last_send = Some(now);
        let interval = self.spec.timing.interval.as_nanos() as f64;
        let jitter = self.rng.random_range(-0.1..=0.1) * interval;
        self.next_send = now + Duration::from_nanos((interval + jitter).max(1.0) as u64);
        let hb = self.build_heartbeat(now);
        out.push(Action::Send(hb));
    }

    fn build_heartbeat(&mut self, now: Instant) -> Heartbeat {
        let me = self.me;
        let promise = self.spec.timing.promise();
        let quiet = self.in_quiet(now);
        let my_inc = self.incarnation;
        let fenced_view = self.fenced.clone();
        let mut groups = Vec::with_capacity(self.groups.len());
        let mut grants = Vec::new();
        for g in &mut self.groups {
            let role_kind = match g.role {
                Role::Candidate { .. } => RoleKind::Candidate,
                _ => RoleKind::Owner,
            };
            let (after_stop_now, failed_now) = match g.role {
                Role::Owner {
                    after_stop, failed, ..
                } => (after_stop.is_some(), failed),
                _ => (false, false),
            };
            let all_running = g.res.iter().all(|r| *r == Res::Running);
            let report = match &mut g.role {
                Role::Candidate {
                    term, grants: got, ..
                }
                | Role::Owner {
                    term, grants: got, ..
                } => {
                    let phase = match (&role_kind, after_stop_now, failed_now) {
                        (RoleKind::Candidate, _, _) => Phase::Candidate,
                        (_, _, true) => Phase::Failed,
                        (_, true, _) => Phase::Stopping,
                        _ if all_running => Phase::Running,
                        _ => Phase::Starting,
                    };
                    // Our own vote is a promise like any other: it must be free or ours.
                    let free = g.promise.is_none_or(|p| {
                        p.to == me
                            || now >= p.until
                            || fenced_view
                                .get(&p.to)
                                .is_some_and(|i| *i >= p.to_incarnation)
                    });
                    if free && !quiet {
                        g.promise = Some(Promise {
                            to: me,
                            to_incarnation: my_inc,
                            term: *term,
                            until: now + promise,
                            echo: now,
                        });
                        got.insert(me, now);
                    }
                    GroupReport {
                        group: g.id,
                        term: *term,
                        owner: Some(me),
                        owner_incarnation: my_inc,
                        phase,
                        handoff_to: None,
                    }
                }
                Role::Idle => {
                    // Idle with nothing running: say so about ourselves, which releases
                    // any holder record (of any older term) that still names us.
                    if !g.may_run() && g.op.is_none() && g.known.owner != Some(me) {
                        groups.push(GroupReport {
                            group: g.id,
                            term: g.known.term,
                            owner: Some(me),
                            owner_incarnation: my_inc,
                            phase: Phase::Released,
                            handoff_to: None,
                        });
                    }
                    // Besides the newest term, gossip the holder (and whether it let go),
                    // so every node learns who must release or be fenced before anyone
                    // takes over.
                    for h in g
                        .holders
                        .unreleased()
                        .filter(|h| (h.term, Some(h.owner)) != (g.known.term, g.known.owner))
                    {
                        groups.push(GroupReport {
                            group: g.id,
                            term: h.term,
                            owner: Some(h.owner),
                            owner_incarnation: h.incarnation,
                            phase: if h.failed {
                                Phase::Failed
                            } else {
                                Phase::Running
                            },
                            handoff_to: None,
                        });
                    }
                    GroupReport {
                        group: g.id,
                        term: g.known.term,
                        owner: g.known.owner,
                        owner_incarnation: g.known.owner_inc,
                        phase: g.known.phase,
                        handoff_to: g.known.handoff_to,
                    }
                }
            };
            let report = match &g.role {
                Role::Owner { failed: true, .. } => GroupReport {
                    phase: Phase::Failed,
                    ..report
                },
                _ => report,
            };
            groups.push(report);
            if let Some(p) = g.promise {
                if now < p.until {
                    grants.push(Grant {
                        group: g.id,
                        term: p.term,
                        to: p.to,
                        echo_sent_at: p.echo,
                    });
                }
            }
        }
        // Owner leases: our own grant just moved; recompute.
        self.refresh_leases();
        let mut flags = NodeFlags::default();
        flags.set(
            NodeFlags::WITNESS,
            self.spec.node(me).is_some_and(|n| n.witness),
        );
        flags.set(NodeFlags::SEEN_ALL, self.seen_all);
        flags.set(NodeFlags::QUIET, quiet);
        flags.set(NodeFlags::QUORATE, self.quorate());
        flags.set(NodeFlags::STATE_LOST, self.state_lost);
        let echoes = self
            .peers
            .iter()
            .filter_map(|(id, p)| {
                p.last_heard.map(|(seq, sent_at, received)| Echo {
                    peer: *id,
                    seq,
                    sent_at,
                    held_ns: now.saturating_since(received).as_nanos() as u64,
                })
            })
            .collect();
        let view = self
            .peers
            .iter()
            .map(|(id, p)| PeerView {
                node: *id,
                up: p.up,
            })
            .collect();
        let refuses = self
            .groups
            .iter()
            .enumerate()
            .filter(|(gi, _)| !self.node_eligible(me, *gi))
            .map(|(_, g)| g.id)
            .collect();
        Heartbeat {
            from: me,
            incarnation: self.incarnation,
            seq: self.seq,
            sent_at: now,
            config_digest: self.spec.digest,
            flags,
            echoes,
            view,
            groups,
            grants,
            fenced: self
                .fenced
                .iter()
                .map(|(n, i)| FenceRecord {
                    node: *n,
                    incarnation: *i,
                })
                .collect(),
            refuses,
            admin: self.admin.clone(),
        }
    }

    fn refresh_leases(&mut self) {
        let needed = self.votes_needed();
        let span = self
            .spec
            .timing
            .deadtime
            .saturating_sub(self.drift_margin());
        let votes: BTreeMap<NodeId, u32> =
            self.spec.nodes.iter().map(|n| (n.id, n.votes)).collect();
        for g in &mut self.groups {
            if let Role::Owner {
                grants,
                lease_until,
                ..
            } = &mut g.role
            {
                let weighted: Vec<(u32, Instant)> = grants
                    .iter()
                    .map(|(n, at)| (votes.get(n).copied().unwrap_or(0), *at))
                    .collect();
                if let Some(acked) = quorum::quorum_acknowledged(&weighted, needed) {
                    let until = acked + span;
                    if until > *lease_until {
                        *lease_until = until;
                    }
                }
            }
        }
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

    fn set_reason(&mut self, gi: usize, reason: String, out: &mut Vec<Action>) {
        let kind: String = reason.chars().filter(|c| !c.is_ascii_digit()).collect();
        let g = &mut self.groups[gi];
        if g.reason_kind != kind {
            g.reason_kind = kind;
            out.push(Action::Event(Event {
                kind: EventKind::Decision,
                node: Some(self.me),
                group: Some(g.id),
                term: Some(g.known.term),
                reason: reason.clone(),
            }));
        }
        g.reason = reason;
    }

    fn name(&self, id: NodeId) -> String {
        self.spec
            .node(id)
            .map(|n| n.name.clone())
            .unwrap_or_else(|| id.to_string())
    }

    // ------------------------------------------------------------------- queries

    /// Whether this node has this group's resources possibly running (for the
    /// simulator's safety checks).
    pub fn runs(&self, group: GroupId) -> bool {
        !self.self_fenced
            && self
                .groups
                .iter()
                .find(|g| g.id == group)
                .is_some_and(|g| g.may_run())
    }

    /// The end of this node's lease on `group`, if it owns it.
    pub fn lease_until(&self, group: GroupId) -> Option<Instant> {
        self.groups
            .iter()
            .find(|g| g.id == group)
            .and_then(|g| match g.role {
                Role::Owner {
                    lease_until,
                    recovering: false,
                    ..
                } => Some(lease_until),
                _ => None,
            })
    }

    /// The highest term this node knows for `group`.
    pub fn known_term(&self, group: GroupId) -> Term {
        self.groups
            .iter()
            .find(|g| g.id == group)
            .map(|g| g.known.term)
            .or_else(|| {
                let remembered = self.persisted.terms.iter().find(|(id, _)| *id == group);
                remembered.map(|(_, t)| *t)
            })
            .unwrap_or_default()
    }

    /// Why `node` can never own `group` as things stand (witness, not in the group's
    /// `nodes`, standby), or `None`.
    fn cannot_own(&self, group: GroupId, node: NodeId) -> Option<String> {
        let spec = self.spec.node(node)?;
        if spec.witness {
            return Some(format!("{} is a witness", spec.name));
        }
        if self.spec.group(group).is_some_and(|g| !g.allowed(node)) {
            return Some(format!("{} is not in the group's nodes", spec.name));
        }
        if self.admin.standby.contains(&node) {
            return Some(format!("{} is in standby", spec.name));
        }
        None
    }

    /// The daemon is shutting down: stop every group here in order and hand it over
    /// (like `standby`, but for this run only: nothing is persisted, a restarted node
    /// is eligible again). Call [`Node::is_quiet`] to know when it is safe to exit.
    pub fn leave(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.leaving {
            self.leaving = true;
            self.send_asap = true;
            out.push(event(
                EventKind::Decision,
                Some(self.me),
                None,
                "shutting down: handing every group over",
            ));
        }
        let now = now.max(self.last_now);
        self.last_now = now;
        self.evaluate(now, &mut out);
        out
    }

    /// Nothing of any group may run here, no operation is in flight, and this node
    /// neither owns nor campaigns for any group: exiting now leaves nothing behind.
    /// Groups in maintenance do not count: tandem is told not to touch them, so a
    /// shutdown leaves them as they are (Pacemaker's maintenance-mode does the same).
    pub fn is_quiet(&self) -> bool {
        self.self_fenced
            || self.groups.iter().all(|g| {
                self.maintenance(g.id)
                    || (!g.may_run() && g.op.is_none() && matches!(g.role, Role::Idle))
            })
    }

    /// Whether this node owns `group` with every resource running.
    pub fn owns_running(&self, group: GroupId) -> bool {
        self.groups.iter().find(|g| g.id == group).is_some_and(|g| {
            matches!(
                g.role,
                Role::Owner {
                    after_stop: None,
                    failed: false,
                    ..
                }
            ) && g.res.iter().all(|r| *r == Res::Running)
        })
    }

    /// A one-line dump of this node's state for `group`, for simulator traces.
    pub fn describe_group(&self, group: GroupId) -> String {
        let Some(g) = self.groups.iter().find(|g| g.id == group) else {
            return "unknown group".into();
        };
        format!(
            "role={:?} known={:?} holders={:?} res={:?} goal={:?} op={:?} restart_from={:?} promise={:?} fenced={:?} by_me={:?} reason={}",
            g.role, g.known, g.holders.all(), g.res, g.goal, g.op, g.restart_from, g.promise, self.fenced, self.fenced_by_me, g.reason
        )
    }

    pub fn is_self_fenced(&self) -> bool {
        self.self_fenced
    }

    pub fn lease_is_enforced(&self) -> bool {
        self.lease_enforced()
    }

    /// Whether tandem leaves `group` alone (cluster-wide or group maintenance): what runs
    /// of it is the admin's, not tandem's, to stop.
    pub fn in_maintenance(&self, group: GroupId) -> bool {
        self.maintenance(group)
    }

    pub fn reason(&self, group: GroupId) -> Option<&str> {
        self.groups
            .iter()
            .find(|g| g.id == group)
            .map(|g| g.reason.as_str())
    }

    pub fn status(&self, now: Instant) -> ClusterStatus {
        let initdead_over = now.saturating_since(self.started_at) >= self.spec.timing.initdead;
        let nodes = self
            .spec
            .nodes
            .iter()
            .map(|n| {
                let standby = self.admin.standby.contains(&n.id);
                if n.id == self.me {
                    return NodeStatus {
                        name: n.name.clone(),
                        id: n.id.0,
                        state: if standby { "standby" } else { "online" }.into(),
                        witness: n.witness,
                        local: true,
                        links: (0..self.spec.links)
                            .map(|k| LinkStatus {
                                index: k,
                                state: "local".into(),
                                rtt_ms: None,
                                last_heard_ms: None,
                                phi: None,
                            })
                            .collect(),
                        incarnation: self.incarnation,
                    };
                }
                let Some(p) = self.peers.get(&n.id) else {
                    return NodeStatus {
                        name: n.name.clone(),
                        id: n.id.0,
                        state: "unknown".into(),
                        ..NodeStatus::default()
                    };
                };
                let state = if p.up {
                    if standby {
                        "standby"
                    } else {
                        "online"
                    }
                } else if p.ever_seen || initdead_over {
                    "offline"
                } else {
                    "unknown"
                };
                NodeStatus {
                    name: n.name.clone(),
                    id: n.id.0,
                    state: state.into(),
                    witness: n.witness,
                    local: false,
                    links: p
                        .links
                        .iter()
                        .enumerate()
                        .map(|(k, d)| LinkStatus {
                            index: k,
                            state: d.state(now).as_str().into(),
                            rtt_ms: p.rtt[k].map(|r| r.as_secs_f64() * 1000.0),
                            last_heard_ms: d
                                .last_heard()
                                .map(|l| now.saturating_since(l).as_millis() as u64),
                            phi: d.last_heard().map(|_| d.phi(now)).filter(|v| v.is_finite()),
                        })
                        .collect(),
                    incarnation: p.incarnation,
                }
            })
            .collect();
        let groups = self
            .groups
            .iter()
            .zip(&self.spec.groups)
            .map(|(g, gs)| {
                let (owner, term, state) = match &g.role {
                    Role::Owner {
                        term,
                        failed,
                        after_stop,
                        ..
                    } => {
                        let state = if *failed {
                            "failed"
                        } else if after_stop.is_some() {
                            "stopping"
                        } else if g.res.iter().all(|r| *r == Res::Running) {
                            "running"
                        } else {
                            "starting"
                        };
                        (Some(self.me), *term, state)
                    }
                    Role::Candidate { term, .. } => (Some(self.me), *term, "candidate"),
                    Role::Idle => {
                        match g.known.owner.filter(|_| g.known.phase != Phase::Released) {
                            Some(o) => {
                                let alive = self.peers.get(&o).is_some_and(|p| p.up);
                                let state = match g.known.phase {
                                    Phase::Candidate => "candidate",
                                    Phase::Starting => "starting",
                                    Phase::Running => "running",
                                    Phase::Stopping => "stopping",
                                    Phase::Failed => "failed",
                                    Phase::Released => "stopped",
                                };
                                (Some(o), g.known.term, if alive { state } else { "unknown" })
                            }
                            None => (None, g.known.term, "stopped"),
                        }
                    }
                };
                let local_owner = matches!(g.role, Role::Owner { .. });
                GroupStatus {
                    name: gs.name.clone(),
                    owner: owner.map(|o| self.name(o)),
                    term: term.0,
                    state: state.into(),
                    reason: g.reason.clone(),
                    maintenance: self.maintenance(g.id),
                    resources: gs
                        .resources
                        .iter()
                        .enumerate()
                        .map(|(i, name)| ResourceStatus {
                            name: name.clone(),
                            state: if local_owner || g.res[i] != Res::Stopped {
                                match g.res[i] {
                                    Res::Running => "running",
                                    Res::Stopped => "stopped",
                                    Res::Unknown => "unknown",
                                }
                            } else {
                                "-"
                            }
                            .into(),
                            fail_count: g.failures.len() as u32,
                            last_failure: g.last_failure.clone(),
                        })
                        .collect(),
                }
            })
            .collect();
        let expected = self.spec.expected_votes();
        ClusterStatus {
            node: self.name(self.me),
            quorate: self.quorate(),
            votes_present: self.votes_present(),
            votes_expected: expected,
            quorum_votes: if self.spec.quorum.two_node {
                1
            } else {
                quorum::quorum_votes(expected)
            },
            nodes,
            groups,
            maintenance: self.admin.maintenance,
        }
    }
}

fn event(kind: EventKind, node: Option<NodeId>, group: Option<GroupId>, reason: &str) -> Action {
    Action::Event(Event {
        kind,
        node,
        group,
        term: None,
        reason: reason.to_string(),
    })
}

fn describe(r: &OpResult) -> String {
    match r {
        OpResult::Ok => "succeeded".into(),
        OpResult::NotRunning => "found it not running".into(),
        OpResult::Failed(why) => format!("failed ({why})"),
        OpResult::TimedOut => "timed out".into(),
    }
}

/// Learn from one report who may be running a group (see [`Holders`]); true if it
/// changed. Releases and failures are relayed by gossip too: they originated with the
/// holder itself, and only authenticated members speak.
fn update_holders(
    holders: &mut Holders,
    group: GroupId,
    r: &GroupReport,
    _authoritative: bool,
    owner_inc: u64,
) -> bool {
    let Some(owner) = r.owner else {
        return false;
    };
    match r.phase {
        Phase::Released => holders.release(owner, r.term),
        Phase::Starting | Phase::Running | Phase::Stopping => {
            holders.record(group, r.term, owner, owner_inc)
        }
        Phase::Failed => {
            let recorded = holders.record(group, r.term, owner, owner_inc);
            holders.fail(owner, r.term) || recorded
        }
        Phase::Candidate => false,
    }
}

/// What a reload cannot change on a running node, or `None`. Timing and quorum must be
/// the same on every node for leases to be safe (an owner with a longer deadtime than
/// its voters would outlive their promises), so they change only by a coordinated
/// restart; the node list and links are the membership itself.
fn restart_needed(old: &ClusterSpec, new: &ClusterSpec) -> Option<String> {
    if old.links != new.links {
        return Some("the number of heartbeat links changed".into());
    }
    if old.nodes.len() != new.nodes.len() {
        return Some("nodes were added or removed".into());
    }
    for (a, b) in old.nodes.iter().zip(&new.nodes) {
        if a.id != b.id || a.name != b.name {
            return Some(format!("node {} was renamed or replaced", a.name));
        }
        if a.votes != b.votes || a.witness != b.witness {
            return Some(format!("votes or witness of node {} changed", a.name));
        }
    }
    if old.timing != new.timing {
        return Some("heartbeat timing changed".into());
    }
    let (q, r) = (&old.quorum, &new.quorum);
    if q.expected_votes != r.expected_votes
        || q.two_node != r.two_node
        || q.wait_for_all != r.wait_for_all
    {
        return Some("quorum settings changed (only no_quorum_policy can be reloaded)".into());
    }
    None
}
