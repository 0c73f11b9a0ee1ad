//! The lease guard of one simulated node: what the worker last told it, and when it
//! must act if the worker goes silent.
//!
//! `tandemd` runs as a tiny guard and the worker (core and agents). After every step
//! the worker tells the guard, per group it may run, the lease deadline or "runs
//! without a deadline". The guard kills everything it was told about at once when the
//! worker dies, and `Timing::guard_lead` before the earliest deadline when the worker
//! is alive but silent (paused, hung); then it restarts the worker. The simulator keeps
//! the bookkeeping here and the effects (killing, restarting) in `world`.

use crate::core::ids::GroupId;
use crate::core::node::Node;
use crate::core::spec::GroupSpec;
use crate::core::time::Instant;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Default)]
pub(super) struct Guard {
    /// Per group the worker may run: its lease deadline on the node's clock, or `None`
    /// when it runs without one (a recovering owner, leases not enforced).
    pub table: BTreeMap<GroupId, Option<Instant>>,
    /// Generation of the armed check: a check of an older generation is stale.
    pub gen: u64,
    /// Real time of the armed check, if one is pending.
    pub armed: Option<u64>,
    /// Frozen together with the worker (`ScriptedFault::Hang`): it neither acts nor
    /// feeds the watchdog.
    pub hung: bool,
    /// Generation of the watchdog's pending reset: a feed makes older ones stale.
    pub watchdog_gen: u64,
}

impl Guard {
    /// What the worker reports after a step (as `daemon::guarded` does): every group it
    /// may run, with its lease deadline where the lease is enforced. A group in
    /// maintenance is the admin's, so the guard leaves it running too.
    pub fn report(core: &Node, groups: &[GroupSpec]) -> BTreeMap<GroupId, Option<Instant>> {
        let enforced = core.lease_is_enforced();
        groups
            .iter()
            .filter(|g| core.runs(g.id) && !core.in_maintenance(g.id))
            .map(|g| (g.id, core.lease_until(g.id).filter(|_| enforced)))
            .collect()
    }

    /// When (on the node's clock) the guard must act on a silent worker: `lead` before
    /// the earliest deadline, or — a planted bug — 1 ms after it.
    pub fn due(&self, lead: Duration, late: bool) -> Option<Instant> {
        let earliest = self.table.values().flatten().min().copied()?;
        Some(if late {
            earliest + Duration::from_millis(1)
        } else {
            earliest.saturating_sub(lead)
        })
    }

    /// The worker is gone (killed, or the machine is off): nothing is guarded, pending
    /// checks and watchdog resets are stale.
    pub fn forget(&mut self) {
        self.table.clear();
        self.gen += 1;
        self.armed = None;
        self.hung = false;
        self.watchdog_gen += 1;
    }
}
