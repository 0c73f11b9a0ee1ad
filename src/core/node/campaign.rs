//! An idle node's decision for a group: wait (and why), fence the previous holder
//! first, or campaign for the next term.

use super::*;

impl Node {
    pub(super) fn evaluate_idle(&mut self, now: Instant, gi: usize, out: &mut Vec<Action>) {
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
}
