//! The voter's side: merging what peers report about groups and terms, and granting
//! (promising) a group to one candidate at a time.

use super::*;

impl Node {
    /// Merge one group report into what this node knows; true when a term grew (which
    /// must be persisted before anything that depends on it).
    pub(super) fn merge_report(&mut self, from: NodeId, from_inc: u64, r: &GroupReport) -> bool {
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
    pub(super) fn consider_grant(
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
        let promise = Promise {
            to: from,
            to_incarnation: from_inc,
            term: r.term,
            until: now + self.spec.timing.promise(),
            echo: sent_at,
        };
        let bug = self.bug;
        // Disjoint borrows: the fence knowledge is read while the group changes.
        let fencing = &self.fencing;
        let Some(g) = self.groups.iter_mut().find(|g| g.id == r.group) else {
            return;
        };
        if r.phase == Phase::Released {
            if g.promise.is_some_and(|p| p.to == from && p.term <= r.term) {
                g.promise = None;
            }
            return;
        }
        let current = g.promise.filter(|p| now < p.until && !fencing.voids(p));
        match current {
            Some(p) if p.to == from => {
                if r.term >= p.term {
                    g.promise = Some(promise);
                    if g.holders.record(g.id, r.term, from, from_inc) {
                        self.persist_due = true;
                    }
                    // Acknowledge at once: the grantee's lease counts from the claim
                    // this echoes, so an ack that waited for our next regular
                    // heartbeat (up to an interval) left the owner that much less
                    // lease — on a loaded box, the margin whose loss made healthy
                    // owners step down. The send only moves our next heartbeat
                    // earlier (the next regular one is an interval after it), so a
                    // voter still sends about once per interval per owner.
                    self.sending.asap = true;
                }
            }
            Some(_) if bug != PlantedBug::SkipPromiseWait => {}
            _ => {
                if quiet || r.term < g.known.term {
                    return;
                }
                // Where owners may run without a lease, a new owner needs the holder to
                // have let go or to be fenced: a promise running out proves nothing.
                let blocked = fence_required
                    && g.holders
                        .unreleased()
                        .any(|h| h.owner != from && !fencing.holder_off(h));
                if blocked {
                    return;
                }
                g.promise = Some(promise);
                // A grant is a commitment: the grantee may start the moment it counts a
                // quorum, before anyone hears it run. Remember it as the holder, durably,
                // before the grant goes out.
                if g.holders.record(g.id, r.term, from, from_inc) {
                    self.persist_due = true;
                }
                // A candidate waits for nothing else: not for the gap after our last
                // send either (a new promise is made at most once per promise that
                // ended or was released, so this cannot flood).
                self.sending.asap = true;
                self.sending.urgent = true;
            }
        }
    }

    /// At the instant a promise to a peer that fell silent runs out, nobody has to ask
    /// again: a claim this node refused while the promise stood (remembered as the
    /// peer's newest claim) is granted now, by a triggered send, instead of on the
    /// candidate's next heartbeat an interval later; and a candidate of our own whose
    /// promise to another ended votes for itself now ([`Node::renew_own_votes`], as a
    /// send would) and sends at once — before the group is evaluated, so a quorum it
    /// completes makes an owner in this same step, not on the next input. Both sends are
    /// urgent (not held back by the gap after the previous send): the voters' regular
    /// heartbeats run in step with the old owner's, so one often left just before.
    ///
    /// The grant is the one `consider_grant` gives a fresh claim — same checks, echoing
    /// that claim's send time, so the candidate's lease counts from then (shorter, never
    /// longer). Hence two limits, both for an owner that is merely slow (a loaded box),
    /// not gone: only a claim heard within half an interval counts (an older echo would
    /// make an owner whose lease is nearly used up; the candidate sends when its own
    /// wait ends, so its claim is fresh when the voters' promises end too), and not while
    /// the peer the promise was made to still answers (phi): its renewal is likely on
    /// the way, and a voter that gave the group to whoever asked at that instant would
    /// move it for nothing.
    pub(super) fn grant_waiting_claims(&mut self, now: Instant) {
        let recent = self.spec.timing.interval / 2;
        for gi in 0..self.groups.len() {
            let g = &self.groups[gi];
            let free = g
                .promise
                .is_none_or(|p| now >= p.until || self.fencing.voids(&p));
            if !free {
                continue;
            }
            if let Role::Candidate { grants, .. } = &g.role {
                if !grants.contains_key(&self.me) && !self.in_quiet(now) {
                    self.renew_own_votes(now);
                    self.sending.asap = true;
                    self.sending.urgent |= self.votes_for_itself(gi);
                }
                continue;
            }
            let holder_answers = g
                .promise
                .and_then(|p| self.peers.get(&p.to))
                .is_some_and(|p| p.responsive());
            if holder_answers {
                continue;
            }
            let Some((from, inc, claim, sent_at)) = self.waiting_claim(now, gi, recent) else {
                continue;
            };
            self.consider_grant(now, from, inc, &claim, sent_at);
        }
    }

    /// Whether this node, a candidate for group `gi`, counts its own vote.
    fn votes_for_itself(&self, gi: usize) -> bool {
        matches!(&self.groups[gi].role, Role::Candidate { grants, .. } if grants.contains_key(&self.me))
    }

    /// The best claim (newest term, then rank) a live peer made for group `gi` as a
    /// candidate in a heartbeat heard within `recent`: who, its incarnation, the claim
    /// and the heartbeat's send time.
    fn waiting_claim(
        &self,
        now: Instant,
        gi: usize,
        recent: Duration,
    ) -> Option<(NodeId, u64, GroupReport, Instant)> {
        let gid = self.groups[gi].id;
        self.peers
            .iter()
            .filter(|(_, p)| p.up)
            .filter_map(|(id, p)| {
                let (_, sent_at, heard) = p.last_heard?;
                let claim = p.claims.get(&gid).filter(|c| c.phase == Phase::Candidate)?;
                (now.saturating_since(heard) <= recent).then_some((
                    *id,
                    p.incarnation,
                    *claim,
                    sent_at,
                ))
            })
            .max_by_key(|(id, _, claim, _)| (claim.term, self.rank(*id, gi)))
    }

    pub(super) fn receive_grant(&mut self, from: NodeId, grant: &Grant) {
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
}

/// Learn from one report who may be running a group (see [`Holders`]); true if it
/// changed. Releases and failures are relayed by gossip too: they originated with the
/// holder itself, and only authenticated members speak.
pub(super) fn update_holders(
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
