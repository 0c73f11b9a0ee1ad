//! The simulated arbiter, with etcd's lease semantics: one lease per daemon
//! incarnation, a vote per group held by a key attached to a lease; a lease expires
//! `ttl` after the arbiter *received* its last refresh, judged on the arbiter's own
//! (drifting) clock, and its keys vanish the instant it does (the earliest etcd could
//! delete them: the adversarial choice). A leader change refreshes every live lease to
//! its full TTL (etcd's `Promote`) after a short outage; the arbiter can also be down,
//! slow, or cut off from some nodes. Requests and answers travel with a delay; a
//! request that finds it unreachable is answered `Unreachable` by the "driver" after a
//! timeout.

use super::*;
use crate::core::io::{ArbiterAnswer, ArbiterAsk, ArbiterRequest};

/// One key: the vote for a group, as etcd stores it.
#[derive(Clone, Copy, Debug)]
struct VoteKey {
    node: usize,
    inc: u64,
    term: Term,
}

#[derive(Debug)]
pub(super) struct SimArbiter {
    ttl: u64,
    /// Rate error of the arbiter's clock (ppm).
    ppm: i64,
    /// Lease expiry per (node, incarnation), on the arbiter's clock.
    leases: BTreeMap<(usize, u64), u64>,
    keys: BTreeMap<GroupId, VoteKey>,
    /// Real time until which the arbiter answers nothing (down, or electing a leader).
    down_until: u64,
    /// Real time until which requests and answers are slow (up to a few deadtimes).
    slow_until: u64,
    /// Per node, real time until which it cannot reach the arbiter.
    cut_until: BTreeMap<usize, u64>,
}

impl SimArbiter {
    pub(super) fn new(ttl: Duration, ppm: i64) -> SimArbiter {
        SimArbiter {
            ttl: dur(ttl),
            ppm,
            leases: BTreeMap::new(),
            keys: BTreeMap::new(),
            down_until: 0,
            slow_until: 0,
            cut_until: BTreeMap::new(),
        }
    }

    fn clock(&self, real: u64) -> u64 {
        let r = real as i128;
        (r + r * self.ppm as i128 / 1_000_000).max(0) as u64
    }

    fn lease_alive(&self, owner: (usize, u64), now: u64) -> bool {
        self.leases.get(&owner).is_some_and(|exp| now < *exp)
    }

    /// Refresh (or grant anew) the lease of `owner`: an expired lease cannot be
    /// renewed, so a new one replaces it (its keys are gone already).
    fn refresh(&mut self, owner: (usize, u64), now: u64) {
        self.leases.insert(owner, now + self.ttl);
    }

    /// The holder of a group's vote, if its key still exists at `now`.
    fn holder(&self, group: GroupId, now: u64) -> Option<VoteKey> {
        self.keys
            .get(&group)
            .copied()
            .filter(|k| self.lease_alive((k.node, k.inc), now))
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
        match ask {
            ArbiterAsk::Claim { group, term } => {
                // The driver refreshes its lease before the transaction, so the vote
                // lasts a full TTL from (after) the ask.
                self.refresh(owner, now);
                match self.holder(group, now) {
                    Some(k) if k.node != owner.0 => ArbiterAnswer::HeldBy {
                        group,
                        holder: ids[k.node],
                        term: k.term,
                    },
                    _ => {
                        let key = VoteKey {
                            node: owner.0,
                            inc: owner.1,
                            term,
                        };
                        self.keys.insert(group, key);
                        ArbiterAnswer::Granted { group, term }
                    }
                }
            }
            ArbiterAsk::Keep { group, .. } => {
                if !self.lease_alive(owner, now) {
                    return ArbiterAnswer::Lost { group };
                }
                self.refresh(owner, now);
                match self.holder(group, now) {
                    Some(k) if (k.node, k.inc) == owner => ArbiterAnswer::Granted {
                        group,
                        term: k.term,
                    },
                    _ => ArbiterAnswer::Lost { group },
                }
            }
            ArbiterAsk::Release { group, term } => {
                if self
                    .holder(group, now)
                    .is_some_and(|k| k.node == owner.0 && k.term <= term)
                {
                    self.keys.remove(&group);
                }
                ArbiterAnswer::Reachable
            }
            ArbiterAsk::Probe => ArbiterAnswer::Reachable,
        }
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
