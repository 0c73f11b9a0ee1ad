//! Fencing: which nodes are known to be off, fence jobs (delayed, in flight, retried),
//! and whether a takeover must fence its predecessor first.

use super::*;

#[derive(Clone, Copy, Debug)]
pub(super) enum FenceJob {
    Delayed {
        until: Instant,
        incarnation: u64,
        why: FenceWhy,
    },
    InFlight {
        request: FenceId,
        incarnation: u64,
        why: FenceWhy,
    },
    Retry {
        at: Instant,
        incarnation: u64,
        why: FenceWhy,
    },
}

/// Why a fence was asked for: a node that vanished is not shot if it comes back before
/// the fence delay runs out; a node whose stop failed, or that an admin named, is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FenceWhy {
    Vanished,
    StopFailed,
    Admin,
}

pub(super) enum FenceNeed {
    None,
    Fence(NodeId),
    Blocked(Decision),
}

/// What this node knows of fences: which incarnations are confirmed off, and the fence
/// jobs it runs itself.
#[derive(Clone, Debug, Default)]
pub(super) struct Fences {
    /// Per node, the highest incarnation confirmed off (by us or by gossip).
    pub(super) off: BTreeMap<NodeId, u64>,
    /// Nodes this node itself fenced (confirmed) since it started and has not heard
    /// since: the only fence proof that holds for a node whose incarnation it never
    /// learned.
    pub(super) by_me: BTreeMap<NodeId, u64>,
    pub(super) jobs: BTreeMap<NodeId, FenceJob>,
}

impl Fences {
    /// Whether `node`, last heard in incarnation `inc` (0: never), is powered off by a
    /// confirmed fence. A fence record names an incarnation; it proves nothing about a
    /// node whose current incarnation we never heard (it may have rebooted since),
    /// unless we fenced it ourselves after we last heard it.
    pub(super) fn is_off(&self, node: NodeId, inc: u64) -> bool {
        if self.by_me.get(&node).is_some_and(|f| *f >= inc) {
            return true;
        }
        inc > 0 && self.off.get(&node).is_some_and(|f| *f >= inc)
    }

    /// Whether the incarnation that held a group is confirmed off.
    pub(super) fn holder_off(&self, h: &HolderRecord) -> bool {
        self.off
            .get(&h.owner)
            .is_some_and(|f| h.incarnation > 0 && *f >= h.incarnation)
            || self
                .by_me
                .get(&h.owner)
                .is_some_and(|f| *f >= h.incarnation)
    }

    /// Whether a promise's grantee is confirmed off (the promise protects nothing).
    pub(super) fn voids(&self, p: &Promise) -> bool {
        self.off.get(&p.to).is_some_and(|i| *i >= p.to_incarnation)
    }

    /// Records that `node` is off up to `incarnation`.
    pub(super) fn learn(&mut self, node: NodeId, incarnation: u64) {
        let e = self.off.entry(node).or_insert(0);
        if incarnation > *e {
            *e = incarnation;
        }
    }

    pub(super) fn records(&self) -> Vec<FenceRecord> {
        self.off
            .iter()
            .map(|(n, i)| FenceRecord {
                node: *n,
                incarnation: *i,
            })
            .collect()
    }
}

impl Node {
    /// Whether `node`, as this node knows it, is powered off by a confirmed fence. A
    /// fence record names an incarnation; it proves nothing about a node whose current
    /// incarnation we never heard (it may have rebooted since), unless we fenced it
    /// ourselves after we last heard it.
    pub(super) fn is_fenced(&self, node: NodeId) -> bool {
        let inc = self.peers.get(&node).map(|p| p.incarnation).unwrap_or(0);
        self.fencing.is_off(node, inc)
    }

    pub(super) fn learn_fence(&mut self, node: NodeId, incarnation: u64) {
        self.fencing.learn(node, incarnation);
        // Promises to a fenced incarnation protect nothing any more.
        for g in &mut self.groups {
            if g.promise
                .is_some_and(|p| p.to == node && p.to_incarnation <= incarnation)
            {
                g.promise = None;
            }
        }
    }

    pub(super) fn fence_delay(&self, target: NodeId) -> Duration {
        let base = self
            .spec
            .node(target)
            .map(|n| n.fence_delay)
            .unwrap_or_default();
        // The node that runs groups wins a fence race (Pacemaker's
        // priority-fencing-delay): others wait a deadtime longer before shooting it. What
        // this node last heard from the owner may be stale (it was cut off while the group
        // moved); the holder records it gossiped since are not.
        let owns = self.groups.iter().any(|g| {
            (g.known.owner == Some(target) && g.known.phase != Phase::Released)
                || g.holders.unreleased().any(|h| h.owner == target)
        });
        if owns {
            base + self.spec.timing.deadtime
        } else {
            base
        }
    }

    pub(super) fn fence_need(&self, gi: usize) -> FenceNeed {
        let g = &self.groups[gi];
        let mode = self.spec.fencing.mode;
        let is_fenced = |n: NodeId| self.is_fenced(n);
        for h in g.holders.unreleased().filter(|h| h.owner != self.me) {
            if self.fencing.holder_off(h) {
                continue;
            }
            let must = h.failed || !self.lease_enforced();
            if must {
                return if mode == FenceMode::Off {
                    FenceNeed::Blocked(Decision::CannotFence {
                        holder: self.name(h.owner),
                    })
                } else {
                    FenceNeed::Fence(h.owner)
                };
            }
        }
        if self.spec.quorum.two_node {
            for (&id, p) in &self.peers {
                if !p.up && !is_fenced(id) {
                    return if mode == FenceMode::Off {
                        FenceNeed::Blocked(Decision::TwoNodeCannotFence {
                            peer: self.name(id),
                        })
                    } else {
                        FenceNeed::Fence(id)
                    };
                }
            }
        }
        FenceNeed::None
    }

    /// In a two-node cluster the node that runs groups shoots a vanished peer first, so
    /// that the fence race (each side fencing the other) is won by the side that keeps
    /// the service where it is; the peer waits a deadtime longer before shooting it.
    pub(super) fn two_node_owner_fencing(&mut self, now: Instant, out: &mut Vec<Action>) {
        if !self.spec.quorum.two_node || self.spec.fencing.mode == FenceMode::Off {
            return;
        }
        if !self
            .groups
            .iter()
            .any(|g| matches!(g.role, Role::Owner { .. }))
        {
            return;
        }
        let lost: Vec<(NodeId, u64)> = self
            .peers
            .iter()
            .filter(|(id, p)| p.ever_seen && !p.up && !self.is_fenced(**id))
            .map(|(id, p)| (*id, p.incarnation))
            .collect();
        for (target, incarnation) in lost {
            if self.fencing.jobs.contains_key(&target) {
                continue;
            }
            let delay = self.fence_delay(target);
            self.fencing.jobs.insert(
                target,
                FenceJob::Delayed {
                    until: now + delay,
                    incarnation,
                    why: FenceWhy::Vanished,
                },
            );
            out.push(event(
                EventKind::FenceRequested,
                Some(target),
                None,
                Reason::TwoNodeVanished {
                    target: self.name(target),
                    delay,
                },
            ));
        }
    }

    pub(super) fn run_fences(&mut self, now: Instant, out: &mut Vec<Action>) {
        // A node without quorum takes nothing over, so a fence it queued for a takeover
        // would only power off a node that the majority may be relying on (Pacemaker: a
        // partition without quorum does not fence). An admin's explicit request stands.
        let may_fence = self.quorate() || self.ignore_quorum();
        let targets: Vec<NodeId> = self.fencing.jobs.keys().copied().collect();
        for target in targets {
            let Some(job) = self.fencing.jobs.get(&target).copied() else {
                continue;
            };
            if let FenceJob::Delayed { why, .. } | FenceJob::Retry { why, .. } = job {
                if !may_fence && why != FenceWhy::Admin {
                    self.fencing.jobs.remove(&target);
                    out.push(event(
                        EventKind::Decision,
                        Some(target),
                        None,
                        Reason::FenceCalledOff {
                            target: self.name(target),
                        },
                    ));
                    continue;
                }
            }
            let target_back = self.peers.get(&target).is_some_and(|p| p.up);
            match job {
                FenceJob::Delayed {
                    until,
                    incarnation,
                    why,
                }
                | FenceJob::Retry {
                    at: until,
                    incarnation,
                    why,
                } => {
                    if target_back && why == FenceWhy::Vanished {
                        // It came back before we shot: nothing to fence any more.
                        self.fencing.jobs.remove(&target);
                        continue;
                    }
                    if now >= until {
                        let request = FenceId(self.fresh_id());
                        self.fencing.jobs.insert(
                            target,
                            FenceJob::InFlight {
                                request,
                                incarnation,
                                why,
                            },
                        );
                        out.push(Action::Fence { request, target });
                        out.push(event(
                            EventKind::FenceRequested,
                            Some(target),
                            None,
                            Reason::FencingNow {
                                target: self.name(target),
                            },
                        ));
                    }
                }
                FenceJob::InFlight { .. } => {}
            }
        }
    }

    pub(super) fn on_fence_done(
        &mut self,
        now: Instant,
        request: FenceId,
        result: FenceResult,
        out: &mut Vec<Action>,
    ) {
        let Some((&target, &job)) = self
            .fencing
            .jobs
            .iter()
            .find(|(_, j)| matches!(j, FenceJob::InFlight { request: r, .. } if *r == request))
        else {
            return;
        };
        let FenceJob::InFlight {
            incarnation, why, ..
        } = job
        else {
            return;
        };
        match result {
            FenceResult::Off => self.fenced_off(target, incarnation, out),
            FenceResult::Failed(error) => {
                let retry = self.spec.fencing.retry_interval;
                let job = FenceJob::Retry {
                    at: now + retry,
                    incarnation,
                    why,
                };
                self.fencing.jobs.insert(target, job);
                let target_name = self.name(target);
                let reason = Reason::FenceFailed {
                    target: target_name,
                    error,
                    retry,
                };
                out.push(event(EventKind::FenceFailed, Some(target), None, reason));
            }
        }
    }

    /// A fence of `target` (asked for at `incarnation`) confirmed it off.
    fn fenced_off(&mut self, target: NodeId, incarnation: u64, out: &mut Vec<Action>) {
        // A power-off ends whatever incarnation runs, which is at least every
        // incarnation we know of.
        let known = self
            .groups
            .iter()
            .filter_map(|g| g.holders.of(target))
            .map(|h| h.incarnation);
        let peer = self.peers.get(&target).map(|p| p.incarnation).unwrap_or(0);
        let incarnation = known
            .chain([incarnation, peer])
            .max()
            .unwrap_or(incarnation);
        self.fencing.jobs.remove(&target);
        self.fencing.by_me.insert(target, incarnation);
        self.learn_fence(target, incarnation);
        if let Some(p) = self.peers.get_mut(&target) {
            p.powered_off();
        }
        self.sending.asap = true;
        let reason = Reason::Fenced {
            target: self.name(target),
        };
        out.push(event(EventKind::FenceSucceeded, Some(target), None, reason));
    }

    pub(super) fn self_fence(&mut self, reason: Reason, out: &mut Vec<Action>) {
        self.self_fenced = true;
        out.push(event(
            EventKind::SelfFence,
            Some(self.me),
            None,
            reason.clone(),
        ));
        out.push(Action::SelfFence { reason });
    }
}
