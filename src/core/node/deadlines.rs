//! When the driver must call `handle(Tick)`, and why.
//!
//! Every deadline has a typed reason ([`Deadline`]). Some are on the path of a takeover
//! or bound a lease — a voter's promise ending (it may grant then), a candidate's own
//! promise ending (it may claim), a lease's renewal point and end, a peer's detector
//! turning, the arbiter falling silent — and a driver must wake for them at the
//! instant ([`Deadline::is_exact`]). The others (the regular heartbeat, monitors, retries,
//! expiries) may run a little late: [`Node::next_wake`] lets such a deadline wait up to
//! [`Node::coarse_slack`] so that it shares a wake with another deadline or with an
//! input (every input runs whatever is due), which is what a timer that fires at every
//! deadline to the microsecond no longer did.

use super::fencing::FenceJob;
use super::group::Role;
use super::Node;
use crate::core::time::Instant;
use std::time::Duration;

/// Why the core must be called back at a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Deadline {
    /// The regular heartbeat is due.
    Heartbeat,
    /// A change waits to be told, as soon as the gap between sends allows.
    TriggeredHeartbeat,
    /// The quiet period after a start ends: this node may grant again.
    GrantQuietEnds,
    /// A link's failure detector changes its verdict (late, down) if nothing arrives.
    FailureDetector,
    /// A promise (vote) ends: a waiting claim may be granted, a candidate may claim.
    PromiseExpires,
    /// An owner whose lease was not renewed must begin to stop.
    LeaseRenewalDue,
    /// An owner's lease ends.
    LeaseEnds,
    /// A resource monitor is due.
    Monitor,
    /// A resource failure stops counting.
    FailureExpires,
    /// The arbiter has not answered for `deadtime`.
    ArbiterSilent,
    /// An administrative constraint (`move --for`, `standby --for`) runs out.
    AdminExpires,
    /// Quorum has been held for `deadtime`.
    QuorumSettled,
    /// Re-announce addresses after a peer came back.
    Reannounce,
    /// A fence waits out its delay.
    FenceDelay,
    /// A failed fence is retried.
    FenceRetry,
}

impl Deadline {
    /// Whether the driver must wake at this deadline to the microsecond: a takeover
    /// waits on it, or a lease (safety) is bounded by it. The rest may run up to
    /// [`Node::coarse_slack`] late.
    pub fn is_exact(self) -> bool {
        match self {
            Deadline::GrantQuietEnds
            | Deadline::FailureDetector
            | Deadline::PromiseExpires
            | Deadline::LeaseRenewalDue
            | Deadline::LeaseEnds
            | Deadline::ArbiterSilent => true,
            Deadline::Heartbeat
            | Deadline::TriggeredHeartbeat
            | Deadline::Monitor
            | Deadline::FailureExpires
            | Deadline::AdminExpires
            | Deadline::QuorumSettled
            | Deadline::Reannounce
            | Deadline::FenceDelay
            | Deadline::FenceRetry => false,
        }
    }
}

/// The longest a coarse deadline may wait for company.
const MAX_COARSE_SLACK: Duration = Duration::from_millis(1);

impl Node {
    /// When the driver must call `handle(Tick)` at the latest, and why: the earliest
    /// deadline of any kind.
    pub fn next_deadline(&self) -> Option<(Instant, Deadline)> {
        let mut best: Option<(Instant, Deadline)> = None;
        self.each_deadline(|at, why| {
            if best.is_none_or(|(b, _)| at < b) {
                best = Some((at, why));
            }
        });
        best
    }

    /// When a driver that lets coarse deadlines share a wake should wake: the earliest
    /// exact deadline, or the earliest coarse one plus [`Node::coarse_slack`], whichever
    /// comes first. Never before [`Node::next_deadline`].
    pub fn next_wake(&self) -> Option<Instant> {
        let (mut exact, mut coarse): (Option<Instant>, Option<Instant>) = (None, None);
        self.each_deadline(|at, why| {
            let slot = if why.is_exact() {
                &mut exact
            } else {
                &mut coarse
            };
            if slot.is_none_or(|b| at < b) {
                *slot = Some(at);
            }
        });
        let coarse = coarse.map(|at| at + self.coarse_slack());
        match (exact, coarse) {
            (Some(e), Some(c)) => Some(e.min(c)),
            (e, c) => e.or(c),
        }
    }

    /// How late a coarse deadline may run: a tenth of the heartbeat interval (the
    /// heartbeat's own jitter), at most a millisecond.
    pub fn coarse_slack(&self) -> Duration {
        (self.spec.timing.interval / 10).min(MAX_COARSE_SLACK)
    }

    /// Calls `f` with every deadline still ahead (after the last `handle`).
    fn each_deadline(&self, mut f: impl FnMut(Instant, Deadline)) {
        if self.self_fenced {
            return;
        }
        let after = self.last_now;
        let mut consider = |at: Instant, why: Deadline| {
            if at > after {
                f(at, why);
            }
        };
        consider(self.sending.next, Deadline::Heartbeat);
        if self.sending.asap {
            consider(self.earliest_triggered_send(), Deadline::TriggeredHeartbeat);
        }
        let quiet_end = self.started_at + self.spec.timing.promise();
        if self.sending.last.is_some_and(|l| l < quiet_end) {
            consider(quiet_end, Deadline::GrantQuietEnds);
        }
        for peer in self.peers.values() {
            for d in &peer.links {
                if let Some(last) = d.last_heard() {
                    if let Some(at) = d.next_change(last.max(self.last_now)) {
                        consider(at, Deadline::FailureDetector);
                    }
                }
            }
        }
        for (gi, g) in self.groups.iter().enumerate() {
            if let Some(p) = g.promise {
                consider(p.until, Deadline::PromiseExpires);
            }
            if let Role::Owner {
                lease_until,
                recovering: false,
                ..
            } = g.role
            {
                if self.lease_enforced() {
                    consider(
                        lease_until.saturating_sub(self.spec.timing.stop_before_lease_end),
                        Deadline::LeaseRenewalDue,
                    );
                    consider(lease_until, Deadline::LeaseEnds);
                }
            }
            if let Some(at) = g.next_monitor {
                consider(at, Deadline::Monitor);
            }
            if let (Some(first), Some(gs)) = (g.failures.first(), self.spec.groups.get(gi)) {
                consider(*first + gs.failure_timeout, Deadline::FailureExpires);
            }
        }
        if let Some(at) = self.arbiter_silent_at() {
            consider(at, Deadline::ArbiterSilent);
        }
        if let Some(at) = self.admin.next_expiry() {
            consider(at, Deadline::AdminExpires);
        }
        if let Some(at) = self.quorum_settles_at() {
            consider(at, Deadline::QuorumSettled);
        }
        if let Some(at) = self.reannounce_deferred_until(self.last_now) {
            consider(at, Deadline::Reannounce);
        }
        for job in self.fencing.jobs.values() {
            match job {
                FenceJob::Delayed { until, .. } => consider(*until, Deadline::FenceDelay),
                FenceJob::Retry { at, .. } => consider(*at, Deadline::FenceRetry),
                FenceJob::InFlight { .. } => {}
            }
        }
    }
}
