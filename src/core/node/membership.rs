//! Membership: what this node knows of each peer (liveness per link, incarnation,
//! claims, round-trip times), the quorum that follows from who is up, and the
//! re-announcement of running groups' addresses when a peer comes back.

use super::*;

/// Re-announcing addresses when a peer comes back (issue 16). A peer that was
/// unreachable — declared down, never heard yet, or silent on every link — and is heard
/// again means the network between us changed: a partition healed, a switch came back,
/// a node (re)joined. Neighbours on the far side may have learnt another MAC for our
/// addresses meanwhile (a failed-over address moved back, a switch flooded its tables),
/// so every group this node runs and holds the lease of is announced again
/// (gratuitous ARP / unsolicited NA), without waiting for their caches to expire.
///
/// Rate limit: at most one heal announcement per `deadtime`. The first return
/// announces at once; returns within `deadtime` of that announcement (a flapping link
/// or peer) are folded into a single one when that `deadtime` ends, so a heal is never
/// left unannounced and a flap costs one announcement per `deadtime`, not one per flap.
#[derive(Clone, Debug, Default)]
pub(super) struct Reannounce {
    /// A peer came back and no announcement has covered it yet.
    due: bool,
    /// When the last heal announcement went out.
    last: Option<Instant>,
}

#[derive(Clone, Debug)]
pub(super) struct Peer {
    pub(super) incarnation: u64,
    pub(super) last_seq: Option<u64>,
    pub(super) links: Vec<Detector>,
    pub(super) link_state: Vec<LinkState>,
    pub(super) rtt: Vec<Option<Duration>>,
    pub(super) up: bool,
    pub(super) ever_seen: bool,
    pub(super) up_since: Option<Instant>,
    pub(super) flags: NodeFlags,
    pub(super) digest_warned: bool,
    /// (seq, sent_at, received_at) of the newest heartbeat, echoed back to the peer.
    pub(super) last_heard: Option<(u64, Instant, Instant)>,
    pub(super) refuses: Vec<GroupId>,
    /// The peer's own claims (`owner == peer`) from its newest heartbeat.
    pub(super) claims: BTreeMap<GroupId, GroupReport>,
}

impl Peer {
    /// The peer was fenced: it is down and claims nothing until heard again.
    pub(super) fn powered_off(&mut self) {
        for d in &mut self.links {
            d.reset();
        }
        self.up = false;
        self.claims.clear();
    }

    /// Reads the link detectors at `now`: which links went down or came back, and
    /// whether the peer as a whole did (up while any link delivers or was heard within
    /// `deadtime`). `name` is the
    /// peer's, for the events.
    fn observe(&mut self, now: Instant, name: impl Fn() -> String) -> Vec<(EventKind, Reason)> {
        let mut seen = Vec::new();
        for (k, d) in self.links.iter().enumerate() {
            let s = d.state(now);
            let was = self.link_state[k];
            if s == was {
                continue;
            }
            self.link_state[k] = s;
            let peer = name();
            if was.delivers() && !s.delivers() {
                seen.push((EventKind::LinkDown, Reason::LinkDown { link: k, peer }));
            } else if !was.delivers() && s.delivers() && was != LinkState::Unknown {
                seen.push((EventKind::LinkUp, Reason::LinkUp { link: k, peer }));
            }
        }
        // A node is down only after `deadtime` of silence on every link: phi alone
        // (two intervals) turned every machine stall into a failover for nothing.
        let up = self.link_state.iter().any(|s| s.delivers())
            || self.links.iter().any(|d| d.within_deadtime(now));
        if up != self.up {
            self.up = up;
            self.up_since = up.then_some(now);
            seen.push(if up {
                (EventKind::NodeUp, Reason::NodeUp { peer: name() })
            } else {
                (EventKind::NodeDown, Reason::NodeDown { peer: name() })
            });
        }
        seen
    }

    /// Whether some link still delivers by phi. A peer up but not responsive is silent
    /// for longer than its arrival pattern explains yet less than `deadtime`: it is not
    /// declared down (no event, no quorum change, no fence), but a survivor already
    /// treats it as gone for ownership — it claims the group, so that its claim is
    /// waiting when the promises to that peer end. A claim is harmless to a live
    /// owner: voters keep renewing its promise, and an owner does not yield to a
    /// candidate.
    pub(super) fn responsive(&self) -> bool {
        self.up && self.link_state.iter().any(|s| s.delivers())
    }

    /// A heartbeat from a newer incarnation: the peer restarted, forget what it said.
    fn restarted(&mut self, incarnation: u64) {
        self.incarnation = incarnation;
        self.last_seq = None;
        self.claims.clear();
        self.digest_warned = false;
    }

    /// Feeds link `link`'s failure detector; returns the gap since the last heartbeat on
    /// that link when it was late (past `warntime`, before `deadtime`).
    fn heard_on(&mut self, now: Instant, link: usize, timing: &Timing) -> Option<Duration> {
        let d = self.links.get_mut(link)?;
        let gap = d.last_heard().map(|l| now.saturating_since(l));
        d.heartbeat(now);
        gap.filter(|gap| *gap > timing.warntime && *gap < timing.deadtime)
    }

    /// Round-trip time on `link` from the echo of one of our heartbeats (`seq` at most
    /// `my_seq`, the newest we sent).
    fn note_echoes(&mut self, now: Instant, link: usize, me: NodeId, my_seq: u64, hb: &Heartbeat) {
        for e in &hb.echoes {
            if e.peer == me && e.seq <= my_seq && e.sent_at <= now {
                let rtt = now
                    .saturating_since(e.sent_at)
                    .saturating_sub(Duration::from_nanos(e.held_ns));
                if let Some(slot) = self.rtt.get_mut(link) {
                    *slot = Some(rtt);
                }
            }
        }
    }

    /// Heartbeats carry the whole state: only the newest one is applied (the same
    /// heartbeat arrives once per link). False for an older or repeated one.
    fn take_newest(&mut self, now: Instant, hb: &Heartbeat) -> bool {
        if self.last_seq.is_some_and(|s| hb.seq <= s) {
            return false;
        }
        self.last_seq = Some(hb.seq);
        self.last_heard = Some((hb.seq, hb.sent_at, now));
        self.ever_seen = true;
        self.flags = hb.flags;
        self.refuses = hb.refuses.clone();
        self.claims = hb
            .groups
            .iter()
            .filter(|r| r.owner == Some(hb.from))
            .map(|r| (r.group, *r))
            .collect();
        true
    }
}

impl Node {
    /// A node that did not run heard nobody. When this node's own heartbeat is overdue
    /// by more than an interval — the process, or the whole machine, stood still — that
    /// time is taken off every peer's silence before anyone is judged: on a VM that the
    /// hypervisor stops for 30 ms every node would otherwise declare every other down at
    /// once when it resumes (Cassandra's failure detector likewise marks nobody down
    /// after a local pause). Liveness only: promises and leases run on the clock as
    /// before, so an owner whose lease ended during the pause still stops, and a real
    /// failure during a pause is declared that much later.
    pub(super) fn excuse_own_pause(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.sending.last.is_none() {
            return;
        }
        let pause = now.saturating_since(self.sending.next);
        if pause <= self.spec.timing.interval {
            return;
        }
        for peer in self.peers.values_mut() {
            for d in &mut peer.links {
                d.excuse(pause, now);
            }
        }
        let reason = Reason::LocalPause { pause };
        out.push(event(EventKind::LocalPause, Some(self.me), None, reason));
    }

    pub(super) fn on_heartbeat(
        &mut self,
        now: Instant,
        link: usize,
        hb: Heartbeat,
        out: &mut Vec<Action>,
    ) {
        let from = hb.from;
        if from == self.me {
            return;
        }
        if self
            .fencing
            .off
            .get(&from)
            .is_some_and(|inc| hb.incarnation <= *inc)
        {
            // A fenced incarnation is powered off; anything still in flight from it is
            // history.
            return;
        }
        let from_name = self.name(from);
        let (me, my_seq, my_digest) = (self.me, self.sending.seq, self.spec.digest);
        let shared = self.spec.shared_link(me, from, link);
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        if hb.incarnation < peer.incarnation {
            return;
        }
        if hb.incarnation > peer.incarnation {
            peer.restarted(hb.incarnation);
        }
        // A link the config says one of us is not on carries nothing for membership
        // (a peer whose config disagrees says so through the digest warning): status
        // keeps showing it absent, never up and later down.
        let late = if shared {
            peer.heard_on(now, link, &self.spec.timing)
        } else {
            None
        };
        if let Some(gap) = late {
            let reason = Reason::LateHeartbeat { link, gap };
            out.push(event(EventKind::LateHeartbeat, Some(from), None, reason));
        }
        peer.note_echoes(now, link, me, my_seq, &hb);
        if !peer.take_newest(now, &hb) {
            return;
        }
        if hb.config_digest != my_digest && !peer.digest_warned {
            peer.digest_warned = true;
            let reason = Reason::ConfigDigest {
                peer: from_name,
                theirs: hb.config_digest,
                mine: my_digest,
            };
            out.push(event(EventKind::ConfigMismatch, Some(from), None, reason));
        }
        let peer_incarnation = peer.incarnation;
        self.apply_heartbeat(now, from, peer_incarnation, &hb, out);
    }

    /// What the newest heartbeat of a peer teaches: fences, the admin state, terms and
    /// holders of groups, claims to grant, and grants to us.
    fn apply_heartbeat(
        &mut self,
        now: Instant,
        from: NodeId,
        from_inc: u64,
        hb: &Heartbeat,
        out: &mut Vec<Action>,
    ) {
        for f in &hb.fenced {
            self.learn_fence(f.node, f.incarnation);
        }
        self.merge_admin(now, &hb.admin, hb.sent_at, out);
        let mut term_grew = false;
        for r in &hb.groups {
            term_grew |= self.merge_report(from, from_inc, r);
        }
        if term_grew {
            self.persist(out);
        }
        for r in &hb.groups {
            if r.owner == Some(from) {
                self.consider_grant(now, from, from_inc, r, hb.sent_at);
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

    pub(super) fn update_membership(&mut self, now: Instant, out: &mut Vec<Action>) {
        let spec = &self.spec;
        for (&id, peer) in self.peers.iter_mut() {
            let name = || {
                spec.node(id)
                    .map_or_else(|| id.to_string(), |n| n.name.clone())
            };
            let was_reachable = peer.responsive();
            for (kind, reason) in peer.observe(now, name) {
                out.push(event(kind, Some(id), None, reason));
            }
            if !was_reachable && peer.responsive() {
                self.reannounce.due = true;
            }
        }
        if !self.seen_all && self.peers.values().all(|p| p.ever_seen) {
            self.seen_all = true;
        }
        self.update_quorum(now, out);
        // Where holder records are what keeps takeovers safe, a node that lost them must
        // hear every node (each gossips its holder record) before it votes again.
        let need_all = self.spec.quorum.wait_for_all || !self.lease_enforced();
        if self.state_lost && self.quorate() && !self.in_quiet(now) && (self.seen_all || !need_all)
        {
            self.state_lost = false;
            out.push(self.node_decision(Reason::StateRebuilt));
            self.persist(out);
        }
    }

    /// Announces again the addresses of every group this node runs and holds the lease
    /// of, once a peer came back (see [`Reannounce`] for the rule and the rate limit).
    /// Runs after the groups were evaluated: a group that stops or lost its lease in
    /// the same step is not announced.
    pub(super) fn announce_after_heal(&mut self, now: Instant, out: &mut Vec<Action>) {
        if !self.reannounce.due || self.reannounce_deferred_until(now).is_some() {
            return;
        }
        self.reannounce.due = false;
        let groups: Vec<GroupId> = self
            .groups
            .iter()
            .filter(|g| self.holds_running(now, g))
            .map(|g| g.id)
            .collect();
        if groups.is_empty() {
            return;
        }
        self.reannounce.last = Some(now);
        out.extend(groups.into_iter().map(|group| Action::Announce { group }));
    }

    /// When a due heal announcement held back by the rate limit may go out.
    pub(super) fn reannounce_deferred_until(&self, now: Instant) -> Option<Instant> {
        let at = self.reannounce.last? + self.spec.timing.deadtime;
        (self.reannounce.due && now < at).then_some(at)
    }

    /// Whether this node runs `g` as its owner with everything started, not on its way
    /// out, and (where leases count) within its lease: it may speak for the addresses.
    /// What the peers said meanwhile does not matter: a peer back from the other side
    /// of a partition may still claim a newer term as a candidate, which an owner within
    /// its lease does not yield to.
    fn holds_running(&self, now: Instant, g: &GroupState) -> bool {
        let Role::Owner {
            lease_until,
            after_stop: None,
            failed: false,
            recovering: false,
            ..
        } = g.role
        else {
            return false;
        };
        let started = g.res.iter().all(|r| *r == Res::Running);
        let leased = !self.lease_enforced() || now < lease_until;
        started && leased && !self.maintenance(g.id)
    }

    fn update_quorum(&mut self, now: Instant, out: &mut Vec<Action>) {
        let present = self.votes_present();
        let expected = self.spec.expected_votes();
        let quorate = quorum::is_quorate(present, expected, self.spec.quorum.two_node);
        if quorate == self.quorate() {
            return;
        }
        self.quorate_since = quorate.then_some(now);
        self.sending.asap = true;
        let kind = if quorate {
            EventKind::QuorumGained
        } else {
            EventKind::QuorumLost
        };
        let votes = Reason::Votes { present, expected };
        out.push(event(kind, Some(self.me), None, votes));
    }

    pub(super) fn quorate(&self) -> bool {
        self.quorate_since.is_some()
    }

    pub(super) fn votes_present(&self) -> u32 {
        let mine = self.spec.node(self.me).map(|n| n.votes).unwrap_or(0);
        let arbiter = if self.arbiter_reachable(self.last_now) {
            crate::core::spec::ArbiterSpec::VOTES
        } else {
            0
        };
        mine + arbiter
            + self
                .peers
                .iter()
                .filter(|(_, p)| p.up)
                .map(|(id, _)| self.spec.node(*id).map(|n| n.votes).unwrap_or(0))
                .sum::<u32>()
    }

    /// A node that just started may have forgotten promises it made before: it grants
    /// nothing until the longest of them would have run out.
    pub(super) fn in_quiet(&self, now: Instant) -> bool {
        now < self.started_at + self.spec.timing.promise()
    }

    pub(super) fn ignore_quorum(&self) -> bool {
        self.spec.quorum.no_quorum_policy == NoQuorumPolicy::Ignore
    }

    pub(super) fn votes_needed(&self) -> u32 {
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

    pub(super) fn drift_margin(&self) -> Duration {
        self.drift_margin_over(self.spec.timing.deadtime)
    }

    /// How much two clocks within `max_drift_ppm` of the true rate can disagree about a
    /// span `d` long (plus a floor).
    pub(super) fn drift_margin_over(&self, d: Duration) -> Duration {
        let ppm = u128::from(self.spec.timing.max_drift_ppm);
        let nanos = d.as_nanos() * 2 * ppm / 1_000_000;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)) + Duration::from_micros(100)
    }

    /// Until when a silent peer gets the benefit of the doubt after this node (re)gained
    /// quorum: a node back from isolation hears its peers one by one, and the one it has
    /// not heard yet is not known to be gone. None while this node has no quorum.
    pub(super) fn quorum_settles_at(&self) -> Option<Instant> {
        self.quorate_since
            .map(|since| since + self.spec.timing.deadtime)
    }

    pub(super) fn refresh_leases(&mut self) {
        for gi in 0..self.groups.len() {
            let g = &self.groups[gi];
            let Role::Owner { term, grants, .. } = &g.role else {
                continue;
            };
            let Some(until) = self.lease_from_votes(g.id, *term, grants) else {
                continue;
            };
            if let Role::Owner { lease_until, .. } = &mut self.groups[gi].role {
                if until > *lease_until {
                    *lease_until = until;
                }
            }
        }
    }
}
