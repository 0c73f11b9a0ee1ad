//! The simulated arbiter, with etcd's lease semantics: a vote per group held by a key
//! attached to a lease; a lease expires `ttl` after the arbiter *received* its last
//! refresh, judged on the arbiter's own (drifting) clock, and its keys vanish the
//! instant it does (the earliest etcd could delete them: the adversarial choice). A
//! leader change refreshes every live lease to its full TTL (etcd's `Promote`) after a
//! short outage; the arbiter can also be down, slow, or cut off from some nodes.
//! Requests and answers travel with a delay; a request that finds it unreachable is
//! answered `Unreachable` by the "driver" after a timeout.
//!
//! The driver's own session is modelled too (daemon/arbiter): one lease per daemon
//! incarnation, granted at the first claim, refreshed by every request after it (a
//! probe first drops the keys still on it), and replaced by a new grant when etcd no
//! longer has it. A lease lapses for real when a node cannot reach etcd for a TTL, so
//! the replacement path runs in the sweep; the planted bugs of issue 24 break it.

use super::*;
use crate::core::io::{ArbiterAnswer, ArbiterAsk, ArbiterRequest};
use crate::core::spec::ArbiterSpec;

/// One key: the vote for a group, as etcd stores it.
#[derive(Clone, Copy, Debug)]
struct VoteKey {
    node: usize,
    /// The etcd lease the key is attached to; `None` only under
    /// `PlantedBug::ArbiterVoteWithoutLease`.
    lease: Option<u64>,
    term: Term,
}

#[derive(Debug)]
pub(super) struct SimArbiter {
    ttl: u64,
    /// Rate error of the arbiter's clock (ppm).
    ppm: i64,
    /// Lease expiry per lease id, on the arbiter's clock.
    leases: BTreeMap<u64, u64>,
    next_lease: u64,
    keys: BTreeMap<GroupId, VoteKey>,
    /// The driver side: the lease each daemon incarnation (node, incarnation) holds.
    sessions: BTreeMap<(usize, u64), u64>,
    bug: PlantedBug,
    /// Real time until which the arbiter answers nothing (down, or electing a leader).
    down_until: u64,
    /// Real time until which requests and answers are slow (up to a few deadtimes).
    slow_until: u64,
    /// Per node, real time until which it cannot reach the arbiter.
    cut_until: BTreeMap<usize, u64>,
}

impl SimArbiter {
    pub(super) fn new(ttl: Duration, ppm: i64, bug: PlantedBug) -> SimArbiter {
        SimArbiter {
            ttl: dur(ttl),
            ppm,
            leases: BTreeMap::new(),
            next_lease: 1,
            keys: BTreeMap::new(),
            sessions: BTreeMap::new(),
            bug,
            down_until: 0,
            slow_until: 0,
            cut_until: BTreeMap::new(),
        }
    }

    fn clock(&self, real: u64) -> u64 {
        let r = real as i128;
        (r + r * self.ppm as i128 / 1_000_000).max(0) as u64
    }

    fn lease_alive(&self, lease: u64, now: u64) -> bool {
        self.leases.get(&lease).is_some_and(|exp| now < *exp)
    }

    /// The driver's `refresh_lease`: keep its lease alive, or have a new one granted
    /// when etcd no longer has it. `None`: the driver failed the batch (`Unreachable`).
    fn refresh(&mut self, owner: (usize, u64), now: u64) -> Option<u64> {
        match self.sessions.get(&owner).copied() {
            Some(id) if self.lease_alive(id, now) => {
                self.leases.insert(id, now + self.ttl);
                return Some(id);
            }
            // Issue 24 as it was: the keepalive on a lease etcd dropped fails, the
            // driver calls etcd unreachable and keeps the dead lease for ever.
            Some(_) if self.bug == PlantedBug::ArbiterKeepsExpiredLease => return None,
            _ => {}
        }
        let id = self.next_lease;
        self.next_lease += 1;
        self.leases.insert(id, now + self.ttl);
        self.sessions.insert(owner, id);
        Some(id)
    }

    /// The holder of a group's vote, if its key still exists at `now`.
    fn holder(&self, group: GroupId, now: u64) -> Option<VoteKey> {
        self.keys
            .get(&group)
            .copied()
            .filter(|k| k.lease.is_none_or(|l| self.lease_alive(l, now)))
    }

    /// etcd's side of one request from `owner`, at real time `real`.
    fn serve(
        &mut self,
        owner: (usize, u64),
        ask: ArbiterAsk,
        real: u64,
        ids: &[NodeId],
    ) -> ArbiterAnswer {
        let now = self.clock(real);
        let lease = match ask {
            // The driver refreshes its lease before the transaction, so the vote
            // lasts a full TTL from (after) the ask.
            ArbiterAsk::Claim { .. } | ArbiterAsk::Keep { .. } => match self.refresh(owner, now) {
                Some(id) => Some(id),
                None => return ArbiterAnswer::Unreachable,
            },
            ArbiterAsk::Release { .. } | ArbiterAsk::Probe => None,
        };
        match ask {
            ArbiterAsk::Claim { group, term } => match self.holder(group, now) {
                Some(k) if k.node != owner.0 => ArbiterAnswer::HeldBy {
                    group,
                    holder: ids[k.node],
                    term: k.term,
                },
                _ => {
                    let lease = lease.filter(|_| self.bug != PlantedBug::ArbiterVoteWithoutLease);
                    let key = VoteKey {
                        node: owner.0,
                        lease,
                        term,
                    };
                    self.keys.insert(group, key);
                    ArbiterAnswer::Granted { group, term }
                }
            },
            ArbiterAsk::Keep { group, .. } => match self.holder(group, now) {
                Some(k) if k.node == owner.0 && (k.lease.is_none() || k.lease == lease) => {
                    ArbiterAnswer::Granted {
                        group,
                        term: k.term,
                    }
                }
                _ => ArbiterAnswer::Lost { group },
            },
            ArbiterAsk::Release { group, term } => {
                if self
                    .holder(group, now)
                    .is_some_and(|k| k.node == owner.0 && k.term <= term)
                {
                    self.keys.remove(&group);
                }
                ArbiterAnswer::Reachable
            }
            ArbiterAsk::Probe => {
                self.probe(owner, now);
                ArbiterAnswer::Reachable
            }
        }
    }

    /// The driver's probe: the core claims nothing, so the keys on its lease go and
    /// the lease is kept alive; a lease etcd dropped is forgotten (the next claim gets
    /// a new one) — unless the planted bug keeps it.
    fn probe(&mut self, owner: (usize, u64), now: u64) {
        let Some(id) = self.sessions.get(&owner).copied() else {
            return;
        };
        if !self.lease_alive(id, now) {
            if self.bug != PlantedBug::ArbiterKeepsExpiredLease {
                self.sessions.remove(&owner);
            }
            return;
        }
        self.keys.retain(|_, k| k.lease != Some(id));
        self.leases.insert(id, now + self.ttl);
    }

    /// A new etcd leader: every lease still alive gets its full TTL again.
    fn leader_change(&mut self, real: u64, extend: u64) {
        let now = self.clock(real);
        for exp in self.leases.values_mut() {
            if now < *exp {
                *exp = now + extend + self.ttl;
            }
        }
    }

    fn reachable(&self, node: usize, real: u64) -> bool {
        real >= self.down_until && self.cut_until.get(&node).is_none_or(|u| real >= *u)
    }
}

impl Sim {
    /// A node's core asked the arbiter something: send it (or time out).
    pub(super) fn ask_arbiter(&mut self, i: usize, req: ArbiterRequest) {
        let Some(arb) = self.arbiter.as_ref() else {
            return;
        };
        let inc = self.nodes[i].inc;
        let slow = self.now < arb.slow_until;
        let reachable = arb.reachable(i, self.now);
        let delay = self.arbiter_delay(slow);
        if !reachable {
            // The driver's request timeout: about a deadtime.
            let timeout = dur(self.sc.spec.timing.deadtime);
            let answer = ArbiterAnswer::Unreachable;
            self.push(
                self.now + timeout,
                Ev::ArbiterAnswer {
                    node: i,
                    inc,
                    asked_at: req.asked_at,
                    answer,
                },
            );
            return;
        }
        self.push(self.now + delay, Ev::ArbiterArrive { node: i, inc, req });
    }

    fn arbiter_delay(&mut self, slow: bool) -> u64 {
        let base = self.rng.random_range(200_000..3_000_000u64);
        if slow {
            base + self
                .rng
                .random_range(0..2 * dur(self.sc.spec.timing.deadtime))
        } else {
            base
        }
    }

    /// A request reaches the arbiter: it serves it and answers after a delay.
    pub(super) fn arbiter_arrive(&mut self, node: usize, inc: u64, req: ArbiterRequest) {
        let ids: Vec<NodeId> = self.nodes.iter().map(|n| n.id).collect();
        let now = self.now;
        let Some(arb) = self.arbiter.as_mut() else {
            return;
        };
        let answer = if arb.reachable(node, now) {
            arb.serve((node, inc), req.ask, now, &ids)
        } else {
            ArbiterAnswer::Unreachable
        };
        let slow = now < arb.slow_until;
        let delay = self.arbiter_delay(slow);
        self.note(format!(
            "arbiter serves {} {:?}: {:?}",
            self.name(node),
            req.ask,
            answer
        ));
        self.push(
            now + delay,
            Ev::ArbiterAnswer {
                node,
                inc,
                asked_at: req.asked_at,
                answer,
            },
        );
    }

    /// An answer reaches the node's driver: held while the daemon is frozen.
    pub(super) fn arbiter_answer(
        &mut self,
        node: usize,
        inc: u64,
        asked_at: Instant,
        answer: ArbiterAnswer,
    ) -> Result<(), Box<Violation>> {
        let n = &self.nodes[node];
        if n.core.is_none() || n.inc != inc {
            return Ok(());
        }
        let held = Ev::ArbiterAnswer {
            node,
            inc,
            asked_at,
            answer,
        };
        self.drive_or_hold(node, Input::Arbiter { asked_at, answer }, held)
    }

    /// One random arbiter fault: down, a leader change, slow, or cut off from a node.
    pub(super) fn fault_arbiter(&mut self, node: usize) {
        let deadtime = dur(self.sc.spec.timing.deadtime);
        let kind = self.rng.random_range(0..4);
        let d = self.rng.random_range(deadtime / 4..5 * deadtime);
        let now = self.now;
        // etcd's election timeout: the outage of a leader change, and its extension.
        let election = self.rng.random_range(deadtime / 10..deadtime);
        let Some(arb) = self.arbiter.as_mut() else {
            return;
        };
        let line = match kind {
            0 => {
                arb.down_until = arb.down_until.max(now + d);
                format!("FAULT arbiter down for {:.0} ms", ms(d))
            }
            1 => {
                arb.down_until = arb.down_until.max(now + election);
                arb.leader_change(now + election, election);
                format!("FAULT arbiter leader change ({:.0} ms)", ms(election))
            }
            2 => {
                arb.slow_until = arb.slow_until.max(now + d);
                format!("FAULT arbiter slow for {:.0} ms", ms(d))
            }
            _ => {
                arb.cut_until.insert(node, now + d);
                format!("FAULT node {node} cut from the arbiter for {:.0} ms", ms(d))
            }
        };
        self.note(line);
    }

    /// A partition puts the arbiter on one side: nodes on the other lose it too.
    pub(super) fn partition_arbiter(&mut self, side: &[bool], until: u64) {
        if self.arbiter.is_none() {
            return;
        }
        let arb_side = self.rng.random_bool(0.5);
        let now_cut: Vec<usize> = (0..side.len()).filter(|i| side[*i] != arb_side).collect();
        if let Some(arb) = self.arbiter.as_mut() {
            for i in &now_cut {
                let u = arb.cut_until.entry(*i).or_insert(0);
                *u = (*u).max(until);
            }
        }
        self.note(format!("  the arbiter is cut from nodes {now_cut:?}"));
    }

    /// Scripted: the arbiter is slow for `d`.
    pub(super) fn arbiter_slow(&mut self, d: u64) {
        let until = self.now + d;
        if let Some(arb) = self.arbiter.as_mut() {
            arb.slow_until = arb.slow_until.max(until);
        }
        self.note(format!("SCRIPT arbiter slow for {:.0} ms", ms(d)));
    }

    /// Scripted: node `i` cannot reach the arbiter for `d`.
    pub(super) fn arbiter_cut(&mut self, i: usize, d: u64) {
        let until = self.now + d;
        if let Some(arb) = self.arbiter.as_mut() {
            arb.cut_until.insert(i, until);
        }
        self.note(format!(
            "SCRIPT {} cut from the arbiter for {:.0} ms",
            self.name(i),
            ms(d)
        ));
    }

    pub(super) fn heal_arbiter(&mut self) {
        if let Some(arb) = self.arbiter.as_mut() {
            arb.down_until = 0;
            arb.slow_until = 0;
            arb.cut_until.clear();
        }
    }
}

impl Sim {
    /// Ground truth: whether a quorum *with the arbiter* exists for `group` now — the
    /// arbiter up and prompt, and one live node allowed to own the group that reaches
    /// it and hears, both ways on some link, enough live nodes that also reach it to
    /// make a quorum with the arbiter's vote. No other fault may be in force: this is
    /// the state in which nothing but the arbiter's own logic can keep the group down.
    fn arbiter_quorum_exists(&self, group: &GroupSpec) -> bool {
        let Some(arb) = self.arbiter.as_ref() else {
            return false;
        };
        if self.now < arb.down_until || self.now < arb.slow_until || self.loss > 0.0 {
            return false;
        }
        let spec = &self.sc.spec;
        let up = |i: usize| {
            let n = &self.nodes[i];
            n.core.is_some()
                && !n.vm_paused
                && !n.daemon_paused
                && !n.shutting_down
                && !n.fail_starts
                && !n.fail_stops
                && !n.fail_fences
                && arb.reachable(i, self.now)
        };
        let hears = |a: usize, b: usize| {
            (0..self.blocked.len()).any(|l| {
                spec.shared_link(spec.nodes[a].id, spec.nodes[b].id, l)
                    && !self.blocked[l].contains(&(a, b))
                    && !self.blocked[l].contains(&(b, a))
            })
        };
        (0..self.nodes.len())
            .filter(|s| up(*s) && !spec.nodes[*s].witness && group.allowed(spec.nodes[*s].id))
            .any(|s| {
                let peers: u32 = (0..self.nodes.len())
                    .filter(|j| up(*j) && (*j == s || hears(s, *j)))
                    .map(|j| spec.nodes[j].votes)
                    .sum();
                self.quorate_with_arbiter(peers)
            })
    }

    /// Whether nodes with `votes` between them and the arbiter make a quorum.
    fn quorate_with_arbiter(&self, votes: u32) -> bool {
        let expected = self.sc.spec.expected_votes();
        votes + ArbiterSpec::VOTES >= crate::core::quorum::quorum_votes(expected)
    }

    /// Liveness beside safety (issue 24): while a quorum with the arbiter exists, no
    /// group stays without an owner for longer than deadtime + ttl + a margin (a start
    /// after initdead, a candidate's round, a fence retry). Checked after the admin
    /// cleanup of the heal phase in random runs (chaos leaves bans and fail counts
    /// that rightly keep a group down until then), from the start in scripted ones.
    pub(super) fn check_arbiter_liveness(&mut self) -> Result<(), Box<Violation>> {
        let Some(a) = self.sc.spec.quorum.arbiter else {
            return Ok(());
        };
        if self.chaos_on || self.now < self.liveness_from {
            return Ok(());
        }
        let timing = &self.sc.spec.timing;
        let bound = dur(timing.deadtime) + dur(a.ttl) + dur(timing.deadtime) * 6;
        for gs in self.sc.spec.groups.clone() {
            // Arbitration is done once a node owns the group under a lease: how long
            // its resources then take to start is not the arbiter's business.
            let owned = self.owners(gs.id).len() == 1
                || self.nodes.iter().any(|n| {
                    !n.vm_paused
                        && n.core
                            .as_ref()
                            .is_some_and(|c| c.lease_until(gs.id).is_some())
                });
            if owned || !self.arbiter_quorum_exists(&gs) {
                self.unowned_since.remove(&gs.id);
                continue;
            }
            let since = *self.unowned_since.entry(gs.id).or_insert(self.now);
            if self.now - since > bound {
                let views = self.group_views(gs.id);
                return Err(self.violation(
                    check::LIVENESS_ARBITER,
                    format!(
                        "{}: no owner for {:.0} ms (bound {:.0} ms) while a quorum with the arbiter exists{}",
                        gs.name,
                        ms(self.now - since),
                        ms(bound),
                        views
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl Sim {
    /// `Scenario::owner_loss_after_heal`: the first group's owner loses power for good,
    /// unless that would leave no quorum with the arbiter or a group with nowhere to
    /// run (then the run just goes on).
    pub(super) fn owner_loss(&mut self) {
        let Some(first) = self.sc.spec.groups.first().cloned() else {
            return;
        };
        let [owner] = self.owners(first.id)[..] else {
            return;
        };
        let spec = &self.sc.spec;
        let survivors: Vec<usize> = (0..self.nodes.len())
            .filter(|i| *i != owner && self.nodes[*i].core.is_some())
            .collect();
        let votes: u32 = survivors.iter().map(|i| spec.nodes[*i].votes).sum();
        let quorate = self.quorate_with_arbiter(votes);
        let placed = spec.groups.iter().all(|g| {
            survivors
                .iter()
                .any(|i| !spec.nodes[*i].witness && g.allowed(spec.nodes[*i].id))
        });
        if !(quorate && placed) {
            self.note(format!(
                "no owner loss after the heal: without {} no quorum or no place",
                self.name(owner)
            ));
            return;
        }
        self.note(format!(
            "OWNER LOSS after the heal: {} loses power",
            self.name(owner)
        ));
        self.power_off(owner);
    }
}
