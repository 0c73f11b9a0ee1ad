//! The invariants, checked after every simulated step, and the report of a violation.

use std::fmt;

/// A broken invariant: which one, when, the seed to replay it, and the last steps.
#[derive(Debug)]
pub struct Violation {
    pub seed: u64,
    pub at_ms: f64,
    pub invariant: &'static str,
    pub detail: String,
    pub trace: Vec<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invariant `{}` broken at {:.3} ms: {}",
            self.invariant, self.at_ms, self.detail
        )?;
        writeln!(f, "reproduce with: TANDEM_SIM_SEED={} cargo test --release --test sim replay -- --nocapture", self.seed)?;
        writeln!(f, "last {} steps:", self.trace.len())?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Violation {}

/// Names of the invariants, as printed in reports.
pub const SAFETY_SINGLE_RUNNER: &str = "at most one node runs a group";
pub const SAFETY_LEASE: &str = "a node runs a group only within its lease";
pub const SAFETY_LEASE_OVERLAP: &str = "two owners never both hold a valid lease";
pub const TERMS_MONOTONIC: &str = "terms never decrease on a node";
pub const LIVENESS_OWNER: &str = "after healing, every group has exactly one running owner";
pub const LIVENESS_STABLE: &str = "after settling, the owner does not change";
pub const LIVENESS_ARBITER: &str =
    "while a quorum with the arbiter exists, a group has an owner within deadtime + ttl + a margin";
