//! A candidate's decisions for a group it campaigns for: withdraw (outranked, too slow,
//! no longer eligible), become owner once a fresh quorum of grants arrived, or wait.

use super::*;

impl Node {
    pub(super) fn evaluate_candidate(
        &mut self,
        now: Instant,
        gi: usize,
        term: Term,
        since: Instant,
        grants: &BTreeMap<NodeId, Instant>,
        out: &mut Vec<Action>,
    ) {
        if let Some(why) = self.withdrawal(now, gi, term, since) {
            self.withdraw(gi, term, why, out);
            return;
        }
        let needed = self.votes_needed();
        let gid = self.groups[gi].id;
        let have: u32 = grants
            .keys()
            .map(|n| self.spec.node(*n).map(|s| s.votes).unwrap_or(0))
            .sum::<u32>()
            + self.arbiter_votes_for(now, gid, term);
        // Grants collected over a long candidacy may be stale: only a quorum whose
        // lease still has more than the step-down margin left makes an owner.
        let fresh = self
            .lease_from_votes(gid, term, grants)
            .filter(|until| *until > now + self.spec.timing.stop_before_lease_end);
        match fresh {
            Some(lease_until) => {
                let granted = Reason::BecameOwner { term, have, needed };
                self.become_owner(gi, term, grants.clone(), lease_until, granted, out);
            }
            None => {
                let why = self.candidate_wait(now, gi, term, have, needed);
                self.set_reason(gi, why, out);
            }
        }
    }

    /// Why a candidate gives up its candidacy, if it must: a better-ranked rival at the
    /// same term or anyone at a newer term, no quorum of grants in time, or it may no
    /// longer own the group.
    fn withdrawal(&self, now: Instant, gi: usize, term: Term, since: Instant) -> Option<Decision> {
        let g = &self.groups[gi];
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
        if outranked {
            Some(Decision::Outranked {
                rival: rival.map(|o| self.name(o)).unwrap_or_default(),
            })
        } else if gave_up {
            Some(Decision::NoGrantsInTime)
        } else if cannot {
            Some(Decision::NoLongerEligible)
        } else {
            None
        }
    }

    /// What a candidate without a fresh quorum waits for: the promise this node made
    /// to another (a lease still running), or more votes.
    fn candidate_wait(
        &self,
        now: Instant,
        gi: usize,
        term: Term,
        have: u32,
        needed: u32,
    ) -> Decision {
        let blocker = self.groups[gi]
            .promise
            .filter(|p| p.to != self.me && now < p.until);
        if let Some(p) = blocker {
            return Decision::LeaseWait {
                holder: self.name(p.to),
                remaining: p.until.saturating_since(now),
            };
        }
        match self.arbiter_held_by(self.groups[gi].id) {
            Some((holder, held_term)) if have < needed => Decision::ArbiterHeldBy {
                holder,
                term: held_term,
            },
            _ => Decision::Candidate { term, have, needed },
        }
    }

    fn become_owner(
        &mut self,
        gi: usize,
        term: Term,
        grants: BTreeMap<NodeId, Instant>,
        lease_until: Instant,
        granted: Reason,
        out: &mut Vec<Action>,
    ) {
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
        self.sending.asap = true;
        out.push(Action::Event(Event {
            kind: EventKind::BecameOwner,
            node: Some(self.me),
            group: Some(self.groups[gi].id),
            term: Some(term),
            reason: granted,
        }));
        let me = self.name(self.me);
        self.set_reason(gi, Decision::Starting { me, term }, out);
    }

    pub(super) fn withdraw(&mut self, gi: usize, term: Term, why: Decision, out: &mut Vec<Action>) {
        let me = self.me;
        let g = &mut self.groups[gi];
        g.role = Role::Idle;
        if g.known.term == term && g.known.owner == Some(me) {
            g.known.phase = Phase::Released;
        }
        if g.promise.is_some_and(|p| p.to == me) {
            g.promise = None;
        }
        self.sending.asap = true;
        self.set_reason(gi, why, out);
    }
}
