//! The heartbeat this node sends: its view of every group, its grants, echoes and flags.
//!
//! Sending has one side effect on state, kept apart from building: a node that claims a
//! group votes for itself again ([`Node::renew_own_votes`]), which moves its own lease.
//! [`Node::build_heartbeat`] then only reads.

use super::*;

/// When this node sends: the sequence number of its latest heartbeat, when it went out,
/// when the next regular one is due, whether a change asks for one sooner, and the
/// generator of the interval's jitter.
pub(super) struct Sending {
    pub(super) rng: ChaCha8Rng,
    pub(super) seq: u64,
    pub(super) last: Option<Instant>,
    pub(super) next: Instant,
    /// Something changed (a release, a claim, a grant): send as soon as the minimum
    /// gap allows.
    pub(super) asap: bool,
    /// A takeover step that nobody may wait for (a new grant, or a candidate's own vote
    /// at the instant its promise to another ended): send in this step, whatever the
    /// gap. Set only on a change that cannot repeat before that promise is made again
    /// and ends or is released, so it does not lift the gap's bound on the packet rate.
    pub(super) urgent: bool,
}

impl Node {
    pub(super) fn earliest_triggered_send(&self) -> Instant {
        let gap = (self.spec.timing.interval / MIN_SEND_GAP_DIVISOR).min(MAX_TRIGGERED_SEND_GAP);
        self.sending.last.map(|l| l + gap).unwrap_or(Instant::ZERO)
    }

    pub(super) fn maybe_send(&mut self, now: Instant, out: &mut Vec<Action>) {
        let due = now >= self.sending.next
            || self.sending.urgent
            || (self.sending.asap && now >= self.earliest_triggered_send());
        if !due {
            return;
        }
        self.sending.asap = false;
        self.sending.urgent = false;
        self.sending.seq += 1;
        self.sending.last = Some(now);
        let interval = self.spec.timing.interval.as_nanos() as f64;
        let jitter = self.sending.rng.random_range(-0.1..=0.1) * interval;
        // A beat that a driver ran a little late (a coarse wake, see `deadlines`, plus
        // the wake's own latency) keeps the rhythm: the next one counts from when this
        // one was due, so the rate stays what the config says. After a longer stall it
        // counts from now (no burst of catching up).
        let due_at = self.sending.next;
        let late = now.saturating_since(due_at);
        let base = if now >= due_at && late <= self.spec.timing.interval / 4 {
            due_at
        } else {
            now
        };
        self.sending.next = base + Duration::from_nanos((interval + jitter).max(1.0) as u64);
        self.renew_own_votes(now);
        // Owner leases: our own grant just moved; recompute.
        self.refresh_leases();
        let hb = self.build_heartbeat(now);
        out.push(Action::Send(hb));
        self.ask_arbiter(now, out);
    }

    /// Our own vote is a promise like any other: for every group this node claims
    /// (candidate or owner), it renews it when it is free or already ours, and counts
    /// it as a grant — except in the quiet period after a start.
    pub(super) fn renew_own_votes(&mut self, now: Instant) {
        if self.in_quiet(now) {
            return;
        }
        let (me, my_inc) = (self.me, self.incarnation);
        let promise = self.spec.timing.promise();
        let fencing = &self.fencing;
        for g in &mut self.groups {
            let (Role::Candidate { term, grants, .. } | Role::Owner { term, grants, .. }) =
                &mut g.role
            else {
                continue;
            };
            let free = g
                .promise
                .is_none_or(|p| p.to == me || now >= p.until || fencing.voids(&p));
            if free {
                g.promise = Some(Promise {
                    to: me,
                    to_incarnation: my_inc,
                    term: *term,
                    until: now + promise,
                    echo: now,
                });
                grants.insert(me, now);
            }
        }
    }

    /// The heartbeat as of `now`, from the current state (nothing changes).
    pub(super) fn build_heartbeat(&self, now: Instant) -> Heartbeat {
        let me = self.me;
        let mut groups = Vec::with_capacity(self.groups.len());
        let mut grants = Vec::new();
        for g in &self.groups {
            self.group_reports(g, &mut groups);
            if let Some(p) = g.promise.filter(|p| now < p.until) {
                grants.push(Grant {
                    group: g.id,
                    term: p.term,
                    to: p.to,
                    echo_sent_at: p.echo,
                });
            }
        }
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
            seq: self.sending.seq,
            sent_at: now,
            config_digest: self.spec.digest,
            flags: self.flags(now),
            echoes: self.echoes(now),
            view: self
                .peers
                .iter()
                .map(|(id, p)| PeerView {
                    node: *id,
                    up: p.up,
                })
                .collect(),
            groups,
            grants,
            fenced: self.fencing.records(),
            refuses,
            admin: self.admin.clone(),
        }
    }

    fn flags(&self, now: Instant) -> NodeFlags {
        let mut flags = NodeFlags::default();
        let witness = self.spec.node(self.me).is_some_and(|n| n.witness);
        flags.set(NodeFlags::WITNESS, witness);
        flags.set(NodeFlags::SEEN_ALL, self.seen_all);
        flags.set(NodeFlags::QUIET, self.in_quiet(now));
        flags.set(NodeFlags::QUORATE, self.quorate());
        flags.set(NodeFlags::STATE_LOST, self.state_lost);
        flags.set(NodeFlags::CHECKS_FAILING, !self.healthy);
        flags
    }

    /// For each peer, its newest heartbeat echoed back (its round-trip time).
    fn echoes(&self, now: Instant) -> Vec<Echo> {
        self.peers
            .iter()
            .filter_map(|(id, p)| {
                p.last_heard.map(|(seq, sent_at, received)| Echo {
                    peer: *id,
                    seq,
                    sent_at,
                    held_ns: now.saturating_since(received).as_nanos() as u64,
                })
            })
            .collect()
    }

    /// What this node says about one group: its own claim, or (idle) what it knows.
    fn group_reports(&self, g: &GroupState, reports: &mut Vec<GroupReport>) {
        let report = match &g.role {
            Role::Candidate { term, .. } => self.claim_report(g, *term, Phase::Candidate),
            Role::Owner {
                term,
                after_stop,
                failed,
                ..
            } => {
                let phase = if *failed {
                    Phase::Failed
                } else if after_stop.is_some() {
                    Phase::Stopping
                } else if g.res.iter().all(|r| *r == Res::Running) {
                    Phase::Running
                } else {
                    Phase::Starting
                };
                self.claim_report(g, *term, phase)
            }
            Role::Idle => {
                self.idle_extra_reports(g, reports);
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
        reports.push(report);
    }

    fn claim_report(&self, g: &GroupState, term: Term, phase: Phase) -> GroupReport {
        GroupReport {
            group: g.id,
            term,
            owner: Some(self.me),
            owner_incarnation: self.incarnation,
            phase,
            handoff_to: None,
        }
    }

    /// Idle with nothing running: say so about ourselves, which releases any holder
    /// record (of any older term) that still names us. Besides the newest term, gossip
    /// the holder (and whether it let go), so every node learns who must release or be
    /// fenced before anyone takes over.
    fn idle_extra_reports(&self, g: &GroupState, reports: &mut Vec<GroupReport>) {
        let me = self.me;
        if !g.may_run() && g.op.is_none() && g.known.owner != Some(me) {
            reports.push(GroupReport {
                group: g.id,
                term: g.known.term,
                owner: Some(me),
                owner_incarnation: self.incarnation,
                phase: Phase::Released,
                handoff_to: None,
            });
        }
        let newest = (g.known.term, g.known.owner);
        for h in g
            .holders
            .unreleased()
            .filter(|h| (h.term, Some(h.owner)) != newest)
        {
            reports.push(GroupReport {
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
    }
}
