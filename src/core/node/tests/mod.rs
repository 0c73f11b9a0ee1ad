//! Unit tests of the node's parts: one input, then the exact actions and state that
//! follow. The fixture builds a small cluster spec and a few nodes wired back to back
//! (every heartbeat delivered at once, on every link), so a test can bring a cluster
//! to a known state in a few steps and then feed the one input it is about.
//! The simulator (`crate::sim`) checks the same rules under random faults.

mod admin;
mod decisions;
mod fencing;
mod grants;
mod membership;
mod ownership;
mod report;
mod resources;

use super::*;
use crate::core::spec::{FencingSpec, QuorumSpec};

const NAMES: [&str; 5] = ["alpha", "beta", "gamma", "delta", "epsilon"];

pub(super) fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// A cluster spec to adjust before the nodes boot: `n` nodes named alpha, beta, ...
/// (ids 1..=n), one group `www` with resources `ip` and `app`, deadtime 1 s.
pub(super) struct Spec(pub(super) ClusterSpec);

impl Spec {
    pub(super) fn new(n: usize) -> Spec {
        let nodes = (0..n)
            .map(|i| NodeSpec::new(i as u16 + 1, NAMES[i]))
            .collect();
        Spec(ClusterSpec {
            nodes,
            links: 1,
            timing: Timing::with_defaults(ms(100), ms(1000)),
            quorum: QuorumSpec::default(),
            fencing: FencingSpec {
                mode: FenceMode::WhenNeeded,
                retry_interval: ms(500),
            },
            groups: vec![GroupSpec {
                id: GroupId(1),
                name: "www".into(),
                prefer: Some(NodeId(1)),
                nodes: None,
                failback: true,
                failback_delay: Duration::ZERO,
                resources: vec!["ip".into(), "app".into()],
                resources_revision: 0,
                monitor_interval: ms(2000),
                migration_threshold: 2,
                failure_timeout: ms(60_000),
                on_fail: OnFail::Block,
            }],
            digest: 7,
        })
    }

    pub(super) fn witness(mut self, i: usize) -> Spec {
        self.0.nodes[i].witness = true;
        self
    }

    pub(super) fn prefer(mut self, i: Option<usize>) -> Spec {
        self.0.groups[0].prefer = i.map(|i| NodeId(i as u16 + 1));
        self
    }

    pub(super) fn two_node(mut self, fencing: FenceMode) -> Spec {
        self.0.quorum.two_node = true;
        self.0.fencing.mode = fencing;
        self
    }

    pub(super) fn group(mut self, f: impl FnOnce(&mut GroupSpec)) -> Spec {
        f(&mut self.0.groups[0]);
        self
    }

    /// Boots every node at time zero, with an empty (not lost) state file.
    pub(super) fn boot(self) -> Cluster {
        let nodes = self
            .0
            .nodes
            .iter()
            .map(|n| {
                let boot = Boot {
                    incarnation: 1,
                    persisted: Some(PersistentState::default()),
                    seed: u64::from(n.id.0),
                };
                Node::new(self.0.clone(), n.id, boot, Instant::ZERO)
            })
            .collect();
        Cluster {
            nodes,
            up: vec![true; self.0.nodes.len()],
            now: Instant::ZERO,
            actions: vec![Vec::new(); self.0.nodes.len()],
            ops: vec![Vec::new(); self.0.nodes.len()],
        }
    }
}

/// Nodes wired back to back. `up[i] == false` cuts node `i` off (it neither sends nor
/// hears). Every action a node returned is kept per node, in order.
pub(super) struct Cluster {
    pub(super) nodes: Vec<Node>,
    pub(super) up: Vec<bool>,
    pub(super) now: Instant,
    pub(super) actions: Vec<Vec<Action>>,
    /// Operations asked for and not yet answered, per node.
    pub(super) ops: Vec<Vec<(OpId, OpKind, usize)>>,
}

impl Cluster {
    /// Feeds node `i` one input at the current time; delivers what it sends.
    pub(super) fn input(&mut self, i: usize, input: Input) -> Vec<Action> {
        let out = self.nodes[i].handle(self.now, input);
        self.record(i, &out);
        out
    }

    fn record(&mut self, i: usize, out: &[Action]) {
        self.actions[i].extend(out.iter().cloned());
        let mut sends = Vec::new();
        for a in out {
            match a {
                Action::Send(hb) if self.up[i] => sends.push(hb.clone()),
                Action::RunOp {
                    op, kind, resource, ..
                } => self.ops[i].push((*op, *kind, *resource)),
                _ => {}
            }
        }
        for hb in sends {
            for j in 0..self.nodes.len() {
                if j != i && self.up[j] {
                    let input = Input::Heartbeat {
                        link: 0,
                        heartbeat: hb.clone(),
                    };
                    let out = self.nodes[j].handle(self.now, input);
                    self.record(j, &out);
                }
            }
        }
    }

    /// Advances time in 10 ms steps to `until`, ticking every node that is up and
    /// answering every operation with success.
    pub(super) fn run_until(&mut self, until: Duration) {
        let end = Instant::ZERO + until;
        while self.now < end {
            self.now = self.now + ms(10);
            for i in 0..self.nodes.len() {
                if self.up[i] {
                    self.answer_ops(i);
                    self.input(i, Input::Tick);
                }
            }
        }
    }

    fn answer_ops(&mut self, i: usize) {
        for (op, _, _) in std::mem::take(&mut self.ops[i]) {
            let result = OpResult::Ok;
            self.input(i, Input::OpDone { op, result });
        }
    }

    /// The node's reasons of every event, in order, from index `from` of its actions.
    pub(super) fn reasons(&self, i: usize, from: usize) -> Vec<(EventKind, Reason)> {
        self.actions[i][from..]
            .iter()
            .filter_map(|a| match a {
                Action::Event(e) => Some((e.kind, e.reason.clone())),
                _ => None,
            })
            .collect()
    }

    /// Node `i` falls silent (it neither sends nor ticks) for `d` of the others' time.
    pub(super) fn silence(&mut self, i: usize, d: Duration) {
        self.up[i] = false;
        self.run_until(self.now.saturating_since(Instant::ZERO) + d);
    }

    /// Cuts the actions recorded so far: what follows is the test's input's doing.
    pub(super) fn mark(&self, i: usize) -> usize {
        self.actions[i].len()
    }
}

/// Events of `kind` among `actions`, with their reasons.
pub(super) fn events(actions: &[Action], kind: EventKind) -> Vec<Reason> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Event(e) if e.kind == kind => Some(e.reason.clone()),
            _ => None,
        })
        .collect()
}

/// A three-node cluster where alpha (preferred) owns `www` and runs it.
pub(super) fn settled() -> Cluster {
    let mut c = Spec::new(3).boot();
    c.run_until(ms(2500));
    assert!(c.nodes[0].owns_running(GroupId(1)), "alpha owns www");
    c
}
