//! One node's state machine (placeholder until the ownership core lands).

use super::ids::{GroupId, NodeId, Term};
use super::io::{Action, Input};
use super::spec::ClusterSpec;
use super::status::ClusterStatus;
use super::time::Instant;
use serde::{Deserialize, Serialize};

/// What must survive a restart: the highest term seen per group, so a restarted node
/// never reuses one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistentState {
    pub terms: Vec<(GroupId, Term)>,
}

/// What the driver hands the core at start.
#[derive(Clone, Debug)]
pub struct Boot {
    pub incarnation: u64,
    /// `None` when the state file was missing or corrupt: the node then waits for the
    /// cluster's view before it takes any group.
    pub persisted: Option<PersistentState>,
    /// Seed of the core's own random generator (heartbeat jitter).
    pub seed: u64,
}

pub struct Node {
    spec: ClusterSpec,
    me: NodeId,
}

impl Node {
    pub fn new(spec: ClusterSpec, me: NodeId, _boot: Boot, _now: Instant) -> Node {
        Node { spec, me }
    }

    pub fn handle(&mut self, _now: Instant, _input: Input) -> Vec<Action> {
        Vec::new()
    }

    pub fn next_deadline(&self) -> Option<(Instant, &'static str)> {
        None
    }

    pub fn status(&self, _now: Instant) -> ClusterStatus {
        ClusterStatus {
            node: self
                .spec
                .node(self.me)
                .map(|n| n.name.clone())
                .unwrap_or_default(),
            ..ClusterStatus::default()
        }
    }
}
