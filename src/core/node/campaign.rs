//! An idle node's decision for a group: wait (and why), fence the previous holder
//! first, or campaign for the next term.

use super::*;

impl Node {
    pub(super) fn evaluate_idle(&mut self, now: Instant, gi: usize, out: &mut Vec<Action>) {
        if self.groups[gi].may_run() || self.groups[gi].op.is_some() {
            return; // startup cleanup still running
        }
        self.settle_released(gi, out);
        if let Some(why) = self.idle_wait(now, gi) {
            self.set_reason(gi, why, out);
            return;
        }
        let known = self.groups[gi].known;
        let hint_fresh = self.note_handoff(now, gi);
        if let Some(why) = self.defer(now, gi, known, hint_fresh) {
            self.set_reason(gi, why, out);
            return;
        }
        match self.fence_need(gi) {
            FenceNeed::Blocked(why) => self.set_reason(gi, why, out),
            FenceNeed::Fence(target) => {
                let why = self.fence_first(now, gi, target, out);
                self.set_reason(gi, why, out);
            }
            FenceNeed::None => self.campaign(now, gi, known, out),
        }
    }

    /// Idle with nothing running: if the record says we hold the group, we have in fact
    /// let go (stepped down, or restarted and cleaned up). Say so.
    fn settle_released(&mut self, gi: usize, out: &mut Vec<Action>) {
        let me = self.me;
        if self.groups[gi].holders.release(me, Term(u64::MAX)) {
            self.persist(out);
            self.sending.asap = true;
        }
        let known = &mut self.groups[gi].known;
        if known.owner == Some(me) && known.phase != Phase::Released {
            known.phase = Phase::Released;
            known.handoff_to = None;
            self.sending.asap = true;
        }
    }

    /// Why this node takes nothing yet, whoever else might: a live owner, not eligible,
    /// no state, not yet seen everyone, no quorum, or just started.
    fn idle_wait(&self, now: Instant, gi: usize) -> Option<Decision> {
        if let Some(o) = self.live_owner(gi) {
            return Some(self.held_by(gi, o));
        }
        if !self.node_eligible(self.me, gi) {
            let g = &self.groups[gi];
            let owner = g.known.owner.filter(|_| g.known.phase != Phase::Released);
            return Some(Decision::NotEligible {
                owner: owner.map(|o| self.name(o)),
                me: self.name(self.me),
                why: self.idle_ineligible(gi),
            });
        }
        if self.state_lost {
            return Some(Decision::StateLost);
        }
        if self.spec.quorum.wait_for_all && !self.seen_all {
            return Some(Decision::WaitForAll);
        }
        if !self.quorate() && !self.ignore_quorum() {
            return Some(Decision::NoQuorum);
        }
        if self.in_quiet(now) {
            return Some(Decision::JustStarted);
        }
        None
    }

    fn held_by(&self, gi: usize, owner: NodeId) -> Decision {
        let phase = self
            .peers
            .get(&owner)
            .and_then(|p| p.claims.get(&self.groups[gi].id))
            .map(|c| c.phase);
        let state = match phase {
            Some(Phase::Candidate) => ClaimState::Claiming,
            Some(Phase::Starting) => ClaimState::Starting,
            Some(Phase::Stopping) => ClaimState::Stopping,
            Some(Phase::Failed) => ClaimState::Failed,
            _ => ClaimState::Running,
        };
        Decision::HeldBy {
            owner: self.name(owner),
            state,
        }
    }

    fn idle_ineligible(&self, gi: usize) -> Ineligible {
        if self.spec.node(self.me).is_some_and(|n| n.witness) {
            Ineligible::Witness
        } else if self.leaving {
            Ineligible::ShuttingDown
        } else if self.admin.standby(self.me) {
            Ineligible::Standby
        } else if !self.healthy {
            Ineligible::HealthCheckFailing
        } else if self.groups[gi].banned {
            Ineligible::FailedTooOften
        } else if self.admin.banned(self.groups[gi].id, self.me) {
            Ineligible::Banned
        } else {
            Ineligible::NotAllowed
        }
    }

    /// A handoff is a hint: if its target does not act on it within two deadtimes (it
    /// may never have heard of it), normal ranking decides. Notes when the hint was
    /// first seen; true while it is fresh.
    fn note_handoff(&mut self, now: Instant, gi: usize) -> bool {
        let deadtime = self.spec.timing.deadtime;
        let g = &mut self.groups[gi];
        if g.known.handoff_to.is_some() && g.handoff_seen.is_none() {
            g.handoff_seen = Some(now);
        }
        let fresh = g
            .handoff_seen
            .is_none_or(|at| now.saturating_since(at) < deadtime * 2);
        if g.known.handoff_to.is_none() {
            g.handoff_seen = None;
        }
        fresh
    }

    /// Whom this node leaves the group to: the target of a fresh handoff, or a node that
    /// ranks higher.
    fn defer(&self, now: Instant, gi: usize, known: Known, hint_fresh: bool) -> Option<Decision> {
        if known.phase == Phase::Released && hint_fresh {
            if let Some(h) = known.handoff_to.filter(|h| *h != self.me) {
                if self.node_eligible(h, gi) {
                    return Some(Decision::HandedOver { to: self.name(h) });
                }
            }
        }
        let handed_to_me = known.phase == Phase::Released && known.handoff_to == Some(self.me);
        if handed_to_me {
            return None;
        }
        let best = self.best_node(now, self.groups[gi].id, None)?;
        (best != self.me).then(|| Decision::RanksHigher {
            best: self.name(best),
        })
    }

    /// The previous holder must be fenced before this node takes over: wait while it is
    /// alive or quorum is settling, else queue the fence (once) and say so.
    fn fence_first(
        &mut self,
        now: Instant,
        gi: usize,
        target: NodeId,
        out: &mut Vec<Action>,
    ) -> Decision {
        let failed = self.groups[gi]
            .holders
            .of(target)
            .is_some_and(|h| h.failed && !h.released);
        if !failed && self.peers.get(&target).is_some_and(|p| p.up) {
            return Decision::WaitingToLetGo {
                holder: self.name(target),
            };
        }
        if !failed {
            if let Some(settled) = self.quorum_settles_at().filter(|t| now < *t) {
                return Decision::QuorumSettling {
                    target: self.name(target),
                    remaining: settled.saturating_since(now),
                };
            }
        }
        if !self.fencing.jobs.contains_key(&target) {
            let (why, delay) = if failed {
                (FenceWhy::StopFailed, Duration::ZERO)
            } else {
                (FenceWhy::Vanished, self.fence_delay(target))
            };
            let incarnation = self.peers.get(&target).map(|p| p.incarnation).unwrap_or(0);
            let job = FenceJob::Delayed {
                until: now + delay,
                incarnation,
                why,
            };
            self.fencing.jobs.insert(target, job);
            let reason = Reason::FenceFirstIn {
                target: self.name(target),
                delay,
            };
            let gid = self.groups[gi].id;
            out.push(event(
                EventKind::FenceRequested,
                Some(target),
                Some(gid),
                reason,
            ));
        }
        Decision::FenceFirst {
            target: self.name(target),
        }
    }

    /// Campaign: persist the new term before claiming it.
    fn campaign(&mut self, now: Instant, gi: usize, known: Known, out: &mut Vec<Action>) {
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
        self.sending.asap = true;
        let gone = match known.owner {
            Some(o) if o != self.me && known.phase != Phase::Released => Some(self.name(o)),
            _ => None,
        };
        self.set_reason(gi, Decision::Claiming { gone, term }, out);
    }
}
