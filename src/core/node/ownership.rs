//! Ownership of a group by this node: who may own it (eligibility, ranking), and the
//! owner's and candidate's decisions — keep, step down, hand over, become owner.

use super::*;

impl Node {
    /// Whether an owner must stop before its lease ends. When every takeover from a
    /// silent owner needs a confirmed fence first (two_node, `fence: always`, the
    /// `freeze` policy), the fence (power off) is what makes a takeover safe, and the
    /// owner may keep running without a lease.
    pub(super) fn lease_enforced(&self) -> bool {
        !(self.spec.quorum.two_node
            || self.spec.fencing.mode == FenceMode::Always
            || self.spec.quorum.no_quorum_policy == NoQuorumPolicy::Freeze)
    }

    pub(super) fn maintenance(&self, g: GroupId) -> bool {
        self.admin.maintenance || self.admin.group_maintenance.contains(&g)
    }

    pub(super) fn node_eligible(&self, node: NodeId, gi: usize) -> bool {
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
    pub(super) fn rank(
        &self,
        node: NodeId,
        gi: usize,
    ) -> (bool, bool, i32, std::cmp::Reverse<NodeId>) {
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

    pub(super) fn best_node(
        &self,
        _now: Instant,
        group: GroupId,
        except: Option<NodeId>,
    ) -> Option<NodeId> {
        let gi = self.groups.iter().position(|g| g.id == group)?;
        self.spec
            .nodes
            .iter()
            .map(|n| n.id)
            .filter(|n| Some(*n) != except && self.node_eligible(*n, gi))
            .max_by_key(|n| self.rank(*n, gi))
    }

    pub(super) fn group_owner(&self, group: GroupId) -> Option<NodeId> {
        let g = self.groups.iter().find(|g| g.id == group)?;
        if matches!(g.role, Role::Owner { .. }) {
            return Some(self.me);
        }
        g.known.owner.filter(|_| g.known.phase != Phase::Released)
    }

    /// The owner of `gi` as far as this node can tell, if that owner is alive and
    /// still claims the group.
    pub(super) fn live_owner(&self, gi: usize) -> Option<NodeId> {
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

    pub(super) fn evaluate_group(&mut self, now: Instant, gi: usize, out: &mut Vec<Action>) {
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
    pub(super) fn evaluate_owner(
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

    pub(super) fn evaluate_candidate(
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

    pub(super) fn withdraw(&mut self, gi: usize, term: Term, why: String, out: &mut Vec<Action>) {
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

    pub(super) fn begin_stop(
        &mut self,
        gi: usize,
        after: AfterStop,
        why: String,
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

    pub(super) fn finish_stop(
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

    pub(super) fn set_reason(&mut self, gi: usize, reason: String, out: &mut Vec<Action>) {
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
}
