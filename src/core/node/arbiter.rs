//! The external arbiter (an etcd cluster) as one more voter: which of its votes this
//! node holds and until when, whether it is reachable (it counts towards quorum), and
//! the requests that claim, keep and release its votes.
//!
//! Its promise is a lease the arbiter keeps on its own clock: a vote lasts `ttl` after
//! the arbiter received the last request that claimed or kept it. Like a grant's echo,
//! the core counts it from the request's *ask* time on this node's clock (earlier than
//! any receipt), minus the drift margin over `ttl` — docs/design.md, "The arbiter".

use super::*;
use crate::core::io::{ArbiterAnswer, ArbiterAsk, ArbiterRequest};
use crate::core::spec::ArbiterSpec;
use crate::core::status::{ArbiterStatus, ArbiterVote};

/// The arbiter's vote for one group, held by this node.
#[derive(Clone, Copy, Debug)]
pub(super) struct HeldVote {
    pub(super) term: Term,
    /// The ask time of the newest request that the arbiter answered with the vote.
    pub(super) asked_at: Instant,
    /// The ask time of the first request that got it at this term (for status).
    pub(super) since: Instant,
}

/// The arbiter named another node as the holder of a group's vote.
#[derive(Clone, Copy, Debug)]
pub(super) struct ForeignVote {
    pub(super) holder: NodeId,
    pub(super) term: Term,
    /// The ask time of the newest request that the arbiter answered so.
    pub(super) asked_at: Instant,
    /// The ask time of the first answer that named this holder at this term.
    pub(super) since: Instant,
}

/// What this node knows of the arbiter.
#[derive(Clone, Debug, Default)]
pub(super) struct ArbiterView {
    /// Per group, the vote the arbiter gave us.
    pub(super) held: BTreeMap<GroupId, HeldVote>,
    /// Per group, who the arbiter said holds the vote (when it is not us). Only news
    /// while no request asked later went unanswered: see [`Node::arbiter_held_by`].
    pub(super) held_by: BTreeMap<GroupId, ForeignVote>,
    /// The ask time of the newest request the arbiter answered at all.
    pub(super) heard: Option<Instant>,
    /// The ask time of the newest request the driver reported unanswered.
    pub(super) failed: Option<Instant>,
}

impl Node {
    fn arbiter_spec(&self) -> Option<ArbiterSpec> {
        self.spec.quorum.arbiter
    }

    /// Whether the arbiter answered a request asked within the last `deadtime`: it
    /// then counts towards quorum, like a peer heard within `deadtime`.
    pub(super) fn arbiter_reachable(&self, now: Instant) -> bool {
        self.arbiter_spec().is_some()
            && self
                .arbiter
                .heard
                .is_some_and(|at| now < at + self.spec.timing.deadtime)
    }

    /// When the arbiter's vote towards quorum lapses unless it answers again.
    pub(super) fn arbiter_silent_at(&self) -> Option<Instant> {
        self.arbiter_spec()?;
        self.arbiter.heard.map(|at| at + self.spec.timing.deadtime)
    }

    /// Until when the arbiter's vote for `group` at `term` counts for this node: the
    /// ask time of the newest request it granted or kept, plus `ttl`, minus the drift
    /// margin over `ttl` (the arbiter's clock may run faster than ours).
    pub(super) fn arbiter_vote_until(&self, group: GroupId, term: Term) -> Option<Instant> {
        let spec = self.arbiter_spec()?;
        let held = self.arbiter.held.get(&group)?;
        (held.term == term)
            .then(|| held.asked_at + spec.ttl.saturating_sub(self.drift_margin_over(spec.ttl)))
    }

    /// The end of the lease a quorum of votes gives a claim of `group` at `term`: each
    /// peer's grant lasts `deadtime` from the send time it echoed, the arbiter's vote
    /// until [`Node::arbiter_vote_until`]; the lease ends where the last vote that
    /// completes a quorum ends (the quorum-th latest end). `None` without a quorum.
    pub(super) fn lease_from_votes(
        &self,
        group: GroupId,
        term: Term,
        grants: &BTreeMap<NodeId, Instant>,
    ) -> Option<Instant> {
        let span = self
            .spec
            .timing
            .deadtime
            .saturating_sub(self.drift_margin());
        let mut ends: Vec<(u32, Instant)> = grants
            .iter()
            .map(|(n, at)| (self.spec.node(*n).map_or(0, |s| s.votes), *at + span))
            .collect();
        if let Some(until) = self.arbiter_vote_until(group, term) {
            ends.push((ArbiterSpec::VOTES, until));
        }
        quorum::quorum_acknowledged(&ends, self.votes_needed())
    }

    /// Votes a candidate counts, the arbiter's included while it still lasts.
    pub(super) fn arbiter_votes_for(&self, now: Instant, group: GroupId, term: Term) -> u32 {
        match self.arbiter_vote_until(group, term) {
            Some(until) if now < until => ArbiterSpec::VOTES,
            _ => 0,
        }
    }

    /// Who holds the arbiter's vote for a group, when the arbiter said it is not us
    /// and no request asked since went unanswered: after that, the holder may long be
    /// gone (its etcd lease expired), and a candidate that waits "for n2" would tell
    /// the admin something nobody knows (issue 24).
    pub(super) fn arbiter_held_by(&self, group: GroupId) -> Option<(String, Term)> {
        self.foreign_vote(group)
            .map(|v| (self.name(v.holder), v.term))
    }

    fn foreign_vote(&self, group: GroupId) -> Option<ForeignVote> {
        self.arbiter_spec()?;
        let v = *self.arbiter.held_by.get(&group)?;
        let failed_since = self.arbiter.failed.is_some_and(|f| f > v.asked_at);
        (!failed_since).then_some(v)
    }

    pub(super) fn on_arbiter(&mut self, now: Instant, asked_at: Instant, answer: ArbiterAnswer) {
        if self.arbiter_spec().is_none() {
            return;
        }
        if answer == ArbiterAnswer::Unreachable {
            self.arbiter.failed = self.arbiter.failed.max(Some(asked_at));
            return;
        }
        self.arbiter.heard = self.arbiter.heard.max(Some(asked_at));
        match answer {
            ArbiterAnswer::Granted { group, term } => {
                // The vote lasts from the ask, never from the answer's arrival: the
                // arbiter may have received the request long before we heard back.
                let from = if self.bug == PlantedBug::ArbiterAnswerTime {
                    now
                } else {
                    asked_at
                };
                self.arbiter.held_by.remove(&group);
                let old = self.arbiter.held.get(&group).copied();
                let newer = old.is_none_or(|v| (term, from) > (v.term, v.asked_at));
                if newer {
                    let since = old.filter(|v| v.term == term).map_or(from, |v| v.since);
                    let vote = HeldVote {
                        term,
                        asked_at: from,
                        since,
                    };
                    self.arbiter.held.insert(group, vote);
                }
                self.sending.asap = self.sending.asap || self.claims_at(group, term);
            }
            ArbiterAnswer::HeldBy {
                group,
                holder,
                term,
            } => {
                self.arbiter.held.remove(&group);
                let old = self.arbiter.held_by.get(&group).copied();
                let same = old.filter(|v| (v.holder, v.term) == (holder, term));
                let vote = ForeignVote {
                    holder,
                    term,
                    asked_at: same.map_or(asked_at, |v| v.asked_at.max(asked_at)),
                    since: same.map_or(asked_at, |v| v.since.min(asked_at)),
                };
                self.arbiter.held_by.insert(group, vote);
            }
            ArbiterAnswer::Lost { group } => {
                self.arbiter.held.remove(&group);
            }
            ArbiterAnswer::Reachable | ArbiterAnswer::Unreachable => {}
        }
    }

    /// Whether this node claims `group` at `term` (candidate or owner).
    fn claims_at(&self, group: GroupId, term: Term) -> bool {
        self.groups.iter().any(|g| {
            g.id == group
                && matches!(g.role, Role::Candidate { term: t, .. } | Role::Owner { term: t, .. } if t == term)
        })
    }

    /// The requests that go with a heartbeat: claim or keep the vote of every group
    /// this node claims, release the votes of groups it no longer does, and a probe
    /// when there is nothing else to ask (the arbiter's reachability is a vote towards
    /// quorum).
    pub(super) fn ask_arbiter(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.arbiter_spec().is_none() {
            return;
        }
        let mut asks = Vec::new();
        for g in &self.groups {
            let claimed = match g.role {
                Role::Candidate { term, .. } | Role::Owner { term, .. } => Some(term),
                Role::Idle => None,
            };
            let held = self.arbiter.held.get(&g.id).map(|v| v.term);
            match (claimed, held) {
                (Some(term), Some(t)) if t == term => {
                    asks.push(ArbiterAsk::Keep { group: g.id, term })
                }
                (Some(term), _) => asks.push(ArbiterAsk::Claim { group: g.id, term }),
                (None, Some(term)) => asks.push(ArbiterAsk::Release { group: g.id, term }),
                (None, None) => {}
            }
        }
        // A release is sent once: if it is lost, the vote lapses with its lease.
        for ask in &asks {
            if let ArbiterAsk::Release { group, .. } = ask {
                self.arbiter.held.remove(group);
            }
        }
        if asks.is_empty() {
            asks.push(ArbiterAsk::Probe);
        }
        out.extend(
            asks.into_iter()
                .map(|ask| Action::Arbiter(ArbiterRequest { asked_at: now, ask })),
        );
    }

    /// The arbiter for `tandemctl status`.
    pub(super) fn arbiter_status(&self, now: Instant) -> Option<ArbiterStatus> {
        self.arbiter_spec()?;
        let votes = self
            .groups
            .iter()
            .zip(&self.spec.groups)
            .map(|(g, gs)| {
                let held = self.arbiter.held.get(&g.id);
                let mine = held
                    .and_then(|v| self.arbiter_vote_until(g.id, v.term))
                    .filter(|until| now < *until);
                let foreign = self.foreign_vote(g.id);
                let since = match (mine, held, foreign) {
                    (Some(_), Some(v), _) => Some(v.since),
                    (None, _, Some(v)) => Some(v.since),
                    _ => None,
                };
                ArbiterVote {
                    group: gs.name.clone(),
                    holder: mine
                        .map(|_| self.name(self.me))
                        .or(foreign.map(|v| self.name(v.holder))),
                    lease_left_ms: mine.map(|u| millis(u.saturating_since(now))),
                    since_ms: since.map(|at| millis(now.saturating_since(at))),
                }
            })
            .collect();
        Some(ArbiterStatus {
            reachable: self.arbiter_reachable(now),
            last_answer_ms: self
                .arbiter
                .heard
                .map(|at| millis(now.saturating_since(at))),
            votes,
            session: None,
        })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
