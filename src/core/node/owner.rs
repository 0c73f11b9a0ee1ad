//! The owner's decisions for a group it holds: keep running, step down for a rival or a
//! newer term, give the group up (lease, quorum, eligibility), hand it over (admin move,
//! failback), and the stop that follows.

use super::*;

/// What an owner holds, copied out of [`Role::Owner`] for one evaluation.
#[derive(Clone, Copy, Debug)]
pub(super) struct Held {
    pub(super) term: Term,
    /// The lease's end; never for an owner recovering after a restart (it only stops).
    pub(super) lease_until: Instant,
    pub(super) after_stop: Option<AfterStop>,
    pub(super) failed: bool,
}

/// The owner's verdict: stop (and then release or step down) or stay, and why.
enum Verdict {
    Stop(AfterStop, Decision),
    Stay(Decision),
}

impl Node {
    pub(super) fn evaluate_owner(
        &mut self,
        now: Instant,
        gi: usize,
        held: Held,
        out: &mut Vec<Action>,
    ) {
        let g = &self.groups[gi];
        let maybe_running = g.may_run();
        if self.lease_enforced() && now >= held.lease_until && maybe_running {
            let group = self.spec.groups[gi].name.clone();
            self.self_fence(Reason::LeaseEnded { group }, out);
            return;
        }
        if held.after_stop.is_some() {
            if !maybe_running && g.op.is_none() {
                self.finish_stop(gi, held.term, held.after_stop, out);
            }
            return;
        }
        if held.failed {
            self.set_reason(gi, Decision::StopFailed, out);
            return;
        }
        match self.owner_verdict(now, gi, held) {
            Verdict::Stop(after, why) => self.begin_stop(gi, after, why, out),
            Verdict::Stay(why) => self.set_reason(gi, why, out),
        }
    }

    /// The first reason, in order of urgency, to stop; else why the group stays here.
    fn owner_verdict(&self, now: Instant, gi: usize, held: Held) -> Verdict {
        if let Some(why) = self.contested(gi, held.term) {
            return Verdict::Stop(AfterStop::StepDown, why);
        }
        let release = AfterStop::Release { handoff_to: None };
        if self.lease_enforced() && now + self.spec.timing.stop_before_lease_end >= held.lease_until
        {
            let left = held.lease_until.saturating_since(now);
            return Verdict::Stop(release, Decision::LeaseNotRenewed { left });
        }
        if !self.quorate() && self.spec.quorum.no_quorum_policy == NoQuorumPolicy::Stop {
            let me = self.name(self.me);
            return Verdict::Stop(release, Decision::QuorumLost { me });
        }
        if !self.node_eligible(self.me, gi) {
            let to = self.best_node(now, self.groups[gi].id, Some(self.me));
            let why = Decision::GivingUp {
                me: self.name(self.me),
                why: self.owner_ineligible(gi),
            };
            return Verdict::Stop(AfterStop::Release { handoff_to: to }, why);
        }
        let gid = self.groups[gi].id;
        if let Some(target) = self.admin.move_target(gid) {
            if target != self.me && self.node_eligible(target, gi) {
                let why = Decision::MovingTo {
                    target: self.name(target),
                };
                return Verdict::Stop(
                    AfterStop::Release {
                        handoff_to: Some(target),
                    },
                    why,
                );
            }
        }
        self.placement(now, gi)
    }

    /// A newer term, or (only possible under `no_quorum_policy: ignore`) a better ranked
    /// owner of the same term: step down. Two live owners can only meet after a
    /// partition under `ignore`: whoever sees a peer actively claiming a newer term, or
    /// the same term with a better rank, steps down, so the cluster converges on one.
    fn contested(&self, gi: usize, term: Term) -> Option<Decision> {
        let g = &self.groups[gi];
        let newer_owner = g.known.term >= term
            && g.known.owner.is_some_and(|o| o != self.me)
            && g.known.phase != Phase::Candidate
            && g.known.phase != Phase::Released;
        if newer_owner {
            return Some(Decision::NewerOwner {
                owner: g.known.owner.map(|o| self.name(o)).unwrap_or_default(),
                term: g.known.term,
            });
        }
        let active = |p: Phase| matches!(p, Phase::Starting | Phase::Running | Phase::Stopping);
        let rival = self.peers.iter().filter(|(_, p)| p.up).find_map(|(id, p)| {
            let c = p.claims.get(&g.id)?;
            let beats =
                c.term > term || (c.term == term && self.rank(*id, gi) > self.rank(self.me, gi));
            (active(c.phase) && beats).then_some(*id)
        });
        rival.map(|o| Decision::RivalRuns {
            rival: self.name(o),
        })
    }

    /// Why this node, owning a group, is no longer eligible for it.
    fn owner_ineligible(&self, gi: usize) -> Ineligible {
        if self.leaving {
            Ineligible::ShuttingDown
        } else if self.admin.standby(self.me) {
            Ineligible::Standby
        } else if !self.healthy {
            Ineligible::HealthCheckFailing
        } else if self.admin.banned(self.groups[gi].id, self.me) {
            Ineligible::Banned
        } else {
            Ineligible::FailedTooOften
        }
    }

    /// Where the group belongs when nothing forces it away: back on its preferred node
    /// (failback, after `failback_delay` of that node being up), or here.
    fn placement(&self, now: Instant, gi: usize) -> Verdict {
        let gs = &self.spec.groups[gi];
        let gid = gs.id;
        let moved_here = self.admin.move_target(gid) == Some(self.me);
        if let Some(p) = gs.prefer.filter(|p| *p != self.me && !moved_here) {
            if self.node_eligible(p, gi) {
                if !gs.failback {
                    let me = self.name(self.me);
                    return Verdict::Stay(Decision::FailbackOff { me });
                }
                let stable = self
                    .peers
                    .get(&p)
                    .and_then(|peer| peer.up_since)
                    .map(|s| now.saturating_since(s));
                let to = self.name(p);
                if stable.is_some_and(|s| s >= gs.failback_delay) {
                    let after = AfterStop::Release {
                        handoff_to: Some(p),
                    };
                    return Verdict::Stop(after, Decision::Failback { to });
                }
                let wait = gs.failback_delay.saturating_sub(stable.unwrap_or_default());
                return Verdict::Stay(Decision::FailbackIn { to, wait });
            }
        }
        let why = if moved_here {
            RunsHere::MovedByAdmin
        } else if gs.prefer == Some(self.me) {
            RunsHere::Preferred
        } else {
            RunsHere::BestAvailable
        };
        Verdict::Stay(Decision::Running {
            me: self.name(self.me),
            why,
        })
    }

    pub(super) fn begin_stop(
        &mut self,
        gi: usize,
        after: AfterStop,
        why: Decision,
        out: &mut Vec<Action>,
    ) {
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
        self.sending.asap = true;
        out.push(Action::Event(Event {
            kind: EventKind::LostOwnership,
            node: Some(me),
            group: Some(self.groups[gi].id),
            term: None,
            reason: Reason::Decision(why.clone()),
        }));
        self.set_reason(gi, why, out);
    }

    pub(super) fn finish_stop(
        &mut self,
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
        self.sending.asap = true;
        out.push(Action::Event(Event {
            kind: EventKind::GroupStopped,
            node: Some(me),
            group: Some(gid),
            term: Some(term),
            reason: Reason::GroupStopped,
        }));
    }
}
