//! Who may own a group (eligibility, ranking, the live owner as this node sees it), the
//! dispatch of a group's evaluation by this node's role, and the reason it records.

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
        self.admin.maintenance() || self.admin.group_maintenance(g)
    }

    pub(super) fn node_eligible(&self, node: NodeId, gi: usize) -> bool {
        let gs = &self.spec.groups[gi];
        let Some(n) = self.spec.node(node) else {
            return false;
        };
        if n.witness || self.admin.standby(node) || self.admin.banned(gs.id, node) {
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
            .is_some_and(|p| p.responsive() && !p.refuses.contains(&gs.id))
    }

    /// Ordering of candidates: an admin move target first, then the preferred node,
    /// then priority, then the lower node id.
    pub(super) fn rank(
        &self,
        node: NodeId,
        gi: usize,
    ) -> (bool, bool, i32, std::cmp::Reverse<NodeId>) {
        let gs = &self.spec.groups[gi];
        let moved = self.admin.move_target(gs.id) == Some(node);
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
                .filter(|p| p.responsive())
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
        if !peer.responsive() {
            return None;
        }
        let claim = peer.claims.get(&g.id)?;
        (!matches!(claim.phase, Phase::Released | Phase::Failed) && claim.term >= g.known.term)
            .then_some(o)
    }

    pub(super) fn evaluate_group(&mut self, now: Instant, gi: usize, out: &mut Vec<Action>) {
        let gid = self.groups[gi].id;
        if self.maintenance(gid) {
            self.set_reason(gi, Decision::Maintenance, out);
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
                let held = Held {
                    term,
                    lease_until,
                    after_stop,
                    failed,
                };
                self.evaluate_owner(now, gi, held, out)
            }
            Role::Candidate {
                term,
                since,
                grants,
            } => self.evaluate_candidate(now, gi, term, since, &grants, out),
            Role::Idle => self.evaluate_idle(now, gi, out),
        }
    }

    /// Records why this node waits or acts for the group, and reports it as a
    /// `decision` event when it is news (not merely a counter that moved).
    pub(super) fn set_reason(&mut self, gi: usize, reason: Decision, out: &mut Vec<Action>) {
        let g = &mut self.groups[gi];
        if !g.noticed.as_ref().is_some_and(|n| n.same_kind(&reason)) {
            g.noticed = Some(reason.clone());
            out.push(Action::Event(Event {
                kind: EventKind::Decision,
                node: Some(self.me),
                group: Some(g.id),
                term: Some(g.known.term),
                reason: Reason::Decision(reason.clone()),
            }));
        }
        g.reason = reason;
    }
}
