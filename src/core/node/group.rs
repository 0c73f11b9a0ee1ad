//! The per-group state a node keeps: what it knows of the group's term and owner, its
//! own role, its promise, and its resources.

use super::*;

#[derive(Clone, Copy, Debug)]
pub(super) struct Known {
    pub(super) term: Term,
    pub(super) owner: Option<NodeId>,
    pub(super) owner_inc: u64,
    pub(super) phase: Phase,
    pub(super) handoff_to: Option<NodeId>,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Promise {
    pub(super) to: NodeId,
    pub(super) to_incarnation: u64,
    pub(super) term: Term,
    pub(super) until: Instant,
    pub(super) echo: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Res {
    Stopped,
    Running,
    /// May be running (before a stop at startup, after a failed monitor or a timeout).
    Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Goal {
    Run,
    Stop,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AfterStop {
    /// Let go of the term and say so (voters may grant the next term at once).
    Release { handoff_to: Option<NodeId> },
    /// Someone else holds a newer term: just become idle.
    StepDown,
}

#[derive(Clone, Debug)]
pub(super) enum Role {
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

impl Role {
    /// A term we owned before a restart is still ours until we have stopped everything
    /// and said so: claim it as Stopping. No lease can be proven after a restart: stop
    /// at once. Voters that still promise us keep renewing while we claim the term as
    /// Stopping, so nobody takes over before we released.
    fn recovering(term: Term, now: Instant) -> Role {
        Role::Owner {
            term,
            grants: BTreeMap::new(),
            lease_until: now,
            after_stop: Some(AfterStop::Release { handoff_to: None }),
            failed: false,
            recovering: true,
        }
    }
}

impl GroupState {
    /// A group's state when the node starts: whatever may run from before is stopped
    /// first, and a term this node owned before the restart is claimed as stopping.
    /// `may_own`: whether this node could ever run the group (not a witness, in the
    /// group's nodes). A node that never could has nothing to clean up, and its
    /// agents may not even be installed there: it starts with everything stopped.
    pub(super) fn at_boot(
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
            role: if owned && term > Term(0) {
                Role::recovering(term, now)
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
            cleanup_seen: persisted.admin.cleanup_count(g.id),
            reason: Decision::StartingUp,
            noticed: None,
            pending: None,
            retiring: false,
        }
    }
}

impl GroupState {
    /// Whether anything of the group may be running here: a resource not known to be
    /// stopped, or a start still in flight (it may take effect any moment).
    pub(super) fn may_run(&self) -> bool {
        self.res.iter().any(|r| *r != Res::Stopped)
            || self.op.is_some_and(|(_, _, k)| k == OpKind::Start)
    }

    /// The term an operation of this group serves (its fencing token): the term this
    /// node owns the group in, else the newest term it knows (a stop of what may run
    /// from before, or after stepping down to a newer owner).
    pub(super) fn op_term(&self) -> Term {
        match self.role {
            Role::Owner { term, .. } => term,
            Role::Idle | Role::Candidate { .. } => self.known.term,
        }
    }

    /// A start or monitor of resource `idx` failed at `now`: it may be running, and the
    /// failure counts towards the group's threshold.
    pub(super) fn failed_at(&mut self, now: Instant, idx: usize, what: String) {
        self.res[idx] = Res::Unknown;
        self.failures.push(now);
        self.last_failure = Some(what);
    }

    /// The next step of a monitor sweep of a running group: the sweep in progress, or a
    /// new one every `interval`.
    pub(super) fn next_monitor_op(
        &mut self,
        now: Instant,
        interval: Duration,
    ) -> Option<(usize, OpKind)> {
        let n = self.res.len();
        if n == 0 {
            return None;
        }
        if let Some(i) = self.monitor_cursor {
            return Some((i.min(n - 1), OpKind::Monitor));
        }
        match self.next_monitor {
            None => {
                self.next_monitor = Some(now + interval);
                None
            }
            Some(at) if now >= at => {
                self.next_monitor = None;
                self.monitor_cursor = Some(0);
                Some((0, OpKind::Monitor))
            }
            Some(_) => None,
        }
    }

    /// Stop everything here and, as the owner, release the group once stopped (a failed
    /// start, or failures past the group's threshold).
    pub(super) fn give_up(&mut self) {
        if let Role::Owner { after_stop, .. } = &mut self.role {
            *after_stop = Some(AfterStop::Release { handoff_to: None });
        }
        self.goal = Goal::Stop;
    }
}

#[derive(Clone, Debug)]
pub(super) struct GroupState {
    pub(super) id: GroupId,
    pub(super) known: Known,
    /// When a handoff hint (`known.handoff_to`) was last learned.
    pub(super) handoff_seen: Option<Instant>,
    pub(super) holders: Holders,
    pub(super) role: Role,
    pub(super) promise: Option<Promise>,
    pub(super) res: Vec<Res>,
    pub(super) goal: Goal,
    pub(super) op: Option<(OpId, usize, OpKind)>,
    /// Restart in place: stop resources from the end down to this index, then start.
    pub(super) restart_from: Option<usize>,
    pub(super) next_monitor: Option<Instant>,
    /// The next resource of a monitor sweep in progress.
    pub(super) monitor_cursor: Option<usize>,
    pub(super) failures: Vec<Instant>,
    pub(super) banned: bool,
    pub(super) last_failure: Option<String>,
    pub(super) cleanup_seen: u32,
    /// Why this node waits or acts for the group now (status shows it).
    pub(super) reason: Decision,
    /// The last decision reported as an event: a new one is reported when it is not
    /// [`Decision::same_kind`] as this.
    pub(super) noticed: Option<Decision>,
    /// A reload changed this group's resources while they may run here: the old ones
    /// are stopped first, then this spec replaces the group's.
    pub(super) pending: Option<GroupSpec>,
    /// A reload removed this group: it stays, eligible nowhere, until it is stopped
    /// here and no peer claims it.
    pub(super) retiring: bool,
}
