//! Deterministic simulator of the pure core: seeded clusters on a simulated clock and
//! network, with faults, and the safety invariants checked after every step.
//!
//! Everything that is not deterministic in the real world is simulated here: each
//! node's clock (offset and bounded rate drift), the network (loss, delay, duplication,
//! reordering, symmetric and asymmetric partitions, per link), crashes with restarts
//! (the disk survives, memory does not), VM-style pauses, daemon-only pauses and
//! crashes (the lease guard stops what the worker ran and restarts it), hangs that
//! only a watchdog ends, slow, failing and hanging operations, and fence agents that
//! succeed, fail or hang. A seed fully determines a run, so a failure prints its seed
//! and a trace, and `Sim::run(seed)` replays it exactly.
//!
//! The checker judges by ground truth — which resources actually run where — not by
//! what the nodes believe.

pub mod check;
mod guard;
mod scenario;
mod world;

pub use check::Violation;
pub use scenario::{Faults, Scenario, ScenarioBuilder, ScriptedFault};
pub use world::{Outcome, Sim};

/// Run one seed of the random scenario family; `Err` carries the seed's report.
pub fn run_seed(seed: u64) -> Result<Outcome, Box<Violation>> {
    let scenario = Scenario::random(seed);
    Sim::new(scenario).run()
}

/// Run one seed of the random family with an arbiter in every cluster.
pub fn run_arbiter_seed(seed: u64) -> Result<Outcome, Box<Violation>> {
    Sim::new(Scenario::random_with_arbiter(seed)).run()
}

/// Run one seed of the family with every witness on link 0 only
/// ([`Scenario::random_witness_on_link0`]).
pub fn run_seed_witness_on_link0(seed: u64) -> Result<Outcome, Box<Violation>> {
    Sim::new(Scenario::random_witness_on_link0(seed)).run()
}
