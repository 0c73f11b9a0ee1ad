//! The simulated world: real time, nodes with drifting clocks, the network, resource
//! and fence processes, faults — and the event loop that ties them together.
//!
//! This file holds the state and the clocks; the submodules each own one part of
//! what happens to it.

mod actions;
mod arbiter;
mod faults;
mod invariants;
mod lease_guard;
mod network;
mod steps;

use super::check::{self, Violation};
use super::guard::Guard;
use super::scenario::{Scenario, ScriptedFault};
use crate::core::ids::{GroupId, NodeId, Term};
use crate::core::io::{Action, AdminCommand, FenceId, FenceResult, Input, OpId, OpKind, OpResult};
use crate::core::message::Heartbeat;
use crate::core::node::{Boot, Node, PersistentState, PlantedBug};
use crate::core::spec::{FenceMode, GroupSpec, NoQuorumPolicy};
use crate::core::time::Instant;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, VecDeque};
use std::time::Duration;

const TRACE_MAX: usize = 400;

/// What a successful run observed, for reports and for tests that check behaviour.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub steps: u64,
    pub faults: u64,
    /// Per group: the owner (node index) at the end of the run.
    pub final_owner: BTreeMap<String, Option<usize>>,
    /// Ownership changes seen (group, node index that started it, at ms).
    pub takeovers: Vec<(String, usize, f64)>,
    /// Quorum grants that made an owner (group, node index, at ms): how long a
    /// takeover's grant round trip took, apart from the resources' start.
    pub became_owner: Vec<(String, usize, f64)>,
    pub fences: Vec<(usize, f64)>,
    /// Every power-off a node did to itself: the core's self-fence, or its guard's
    /// when it could not prove a resource stopped.
    pub self_fences: Vec<(usize, f64)>,
    /// (node index, at ms): the lease guard killed the worker and what it ran.
    pub guard_kills: Vec<(usize, f64)>,
    /// (node index, at ms): a watchdog reset a hung node.
    pub watchdog_resets: Vec<(usize, f64)>,
    /// (group, node index, start of running in ms, end in ms or None).
    pub running_spans: Vec<(String, usize, f64, Option<f64>)>,
    pub events: Vec<String>,
}

#[derive(Debug)]
enum Ev {
    Deliver {
        to: usize,
        link: usize,
        hb: Box<Heartbeat>,
    },
    Wake {
        node: usize,
        gen: u64,
    },
    OpDone(OpDone),
    FenceDone {
        node: usize,
        inc: u64,
        request: FenceId,
        target: usize,
        result: FenceResult,
    },
    Restart {
        node: usize,
    },
    Resume {
        node: usize,
    },
    /// The lease guard looks at its table (armed for the earliest deadline).
    GuardCheck {
        node: usize,
        gen: u64,
    },
    /// The watchdog of a hung node runs out.
    WatchdogFires {
        node: usize,
        gen: u64,
    },
    Fault,
    /// `Scenario::owner_loss_after_heal`.
    OwnerLoss,
    Unblock {
        link: Option<usize>,
        pairs: Vec<(usize, usize)>,
    },
    /// A request reaches the arbiter.
    ArbiterArrive {
        node: usize,
        inc: u64,
        req: crate::core::io::ArbiterRequest,
    },
    /// The arbiter's answer (or the driver's timeout) reaches a node.
    ArbiterAnswer {
        node: usize,
        inc: u64,
        asked_at: Instant,
        answer: crate::core::io::ArbiterAnswer,
    },
    HealAll,
    AdminCleanup,
    Script(ScriptedFault),
    End,
}

/// A resource operation finished (in the real world: the agent process exited).
#[derive(Debug)]
struct OpDone {
    node: usize,
    /// The worker incarnation that started it: a later one ignores the result.
    inc: u64,
    op: OpId,
    group: GroupId,
    resource: usize,
    kind: OpKind,
    result: OpResult,
}

struct Queued {
    at: u64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Queued {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Queued {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

struct SimNode {
    id: NodeId,
    core: Option<Node>,
    inc: u64,
    disk: Option<PersistentState>,
    offset: u64,
    ppm: i64,
    vm_paused: bool,
    daemon_paused: bool,
    /// Ground truth: resources that actually run (from the moment a start is issued
    /// until a stop succeeds; a power-off ends them all).
    running: BTreeSet<(GroupId, usize)>,
    wake_gen: u64,
    fail_stops: bool,
    fail_starts: bool,
    fail_fences: bool,
    /// Nodes an admin asked this node to fence (`tandemctl fence`): the one fence a node
    /// without quorum may still carry out.
    admin_fences: BTreeSet<NodeId>,
    /// Deliveries of operation results held back while the daemon is paused.
    held: Vec<Ev>,
    /// A clean shutdown is in progress: the daemon exits once its core is quiet.
    shutting_down: bool,
    guard: Guard,
    /// The machine lost power since the worker last started (a crash, a fence): its
    /// state file may be lost. A restart by the guard keeps it.
    lost_power: bool,
}

pub struct Sim {
    sc: Scenario,
    rng: ChaCha8Rng,
    now: u64,
    seq: u64,
    queue: BinaryHeap<Reverse<Queued>>,
    nodes: Vec<SimNode>,
    /// Per link, blocked directed pairs (from, to).
    blocked: Vec<BTreeSet<(usize, usize)>>,
    loss: f64,
    chaos_on: bool,
    trace: VecDeque<String>,
    terms: Vec<BTreeMap<GroupId, Term>>,
    outcome: Outcome,
    settle_owner: BTreeMap<GroupId, Option<usize>>,
    settle_started: bool,
    run_since: BTreeMap<(GroupId, usize), f64>,
    steps: u64,
    /// Every group any config ever had: safety is checked for all of them, also for
    /// groups a reload removed (they may still be running somewhere).
    ever_groups: Vec<GroupSpec>,
    /// The external arbiter, when the cluster has one.
    arbiter: Option<arbiter::SimArbiter>,
    /// From when (real time) the arbiter liveness check runs.
    liveness_from: u64,
    /// Per group, since when it has had no owner while a quorum with the arbiter existed.
    unowned_since: BTreeMap<GroupId, u64>,
}

impl Sim {
    pub fn new(sc: Scenario) -> Sim {
        let mut rng = ChaCha8Rng::seed_from_u64(sc.seed);
        let nodes = sc
            .spec
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| SimNode {
                id: n.id,
                core: None,
                inc: 0,
                disk: Some(PersistentState::default()),
                offset: rng.random_range(0..1_000_000_000_000u64),
                ppm: sc.drift_ppm.get(i).copied().unwrap_or(0),
                vm_paused: false,
                daemon_paused: false,
                running: BTreeSet::new(),
                wake_gen: 0,
                fail_stops: false,
                fail_starts: false,
                fail_fences: false,
                admin_fences: BTreeSet::new(),
                held: Vec::new(),
                shutting_down: false,
                guard: Guard::default(),
                lost_power: true,
            })
            .collect();
        let links = sc.spec.links.max(1);
        let loss = sc.faults.loss;
        let max_ppm = i64::from(sc.spec.timing.max_drift_ppm);
        let arbiter = sc.spec.quorum.arbiter.map(|a| {
            let ppm = rng.random_range(-max_ppm..=max_ppm);
            arbiter::SimArbiter::new(a.ttl, ppm, sc.bug)
        });
        Sim {
            rng,
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            blocked: vec![BTreeSet::new(); links],
            loss,
            chaos_on: true,
            trace: VecDeque::new(),
            terms: vec![BTreeMap::new(); sc.spec.nodes.len()],
            outcome: Outcome::default(),
            settle_owner: BTreeMap::new(),
            settle_started: false,
            run_since: BTreeMap::new(),
            steps: 0,
            ever_groups: sc.spec.groups.clone(),
            arbiter,
            liveness_from: 0,
            unowned_since: BTreeMap::new(),
            sc,
        }
    }

    /// Run the whole scenario: start every node (staggered), chaos, heal, settle.
    pub fn run(mut self) -> Result<Outcome, Box<Violation>> {
        for i in 0..self.nodes.len() {
            let at = self
                .rng
                .random_range(0..self.sc.spec.timing.deadtime.as_nanos() as u64);
            self.push(at, Ev::Restart { node: i });
        }
        let chaos = dur(self.sc.chaos);
        if chaos > 0 {
            let gap = self.fault_gap();
            self.push(gap, Ev::Fault);
            self.push(chaos, Ev::HealAll);
            // The heal phase's admin cleanup (faults.rs) comes 3 deadtimes after it.
            let deadtime = dur(self.sc.spec.timing.deadtime);
            self.liveness_from = chaos + 3 * deadtime;
            if self.sc.owner_loss_after_heal {
                self.push(chaos + 10 * deadtime, Ev::OwnerLoss);
            }
        } else {
            self.chaos_on = false;
        }
        for (at, f) in self.sc.script.clone() {
            self.push(dur(at), Ev::Script(f));
        }
        let end = chaos + dur(self.sc.heal);
        self.push(end, Ev::End);
        let settle_from = end.saturating_sub(dur(self.sc.settle));
        while let Some(Reverse(q)) = self.queue.pop() {
            self.now = q.at;
            self.steps += 1;
            if matches!(q.ev, Ev::End) {
                self.check_liveness()?;
                break;
            }
            self.step(q.ev)?;
            self.check_safety()?;
            self.check_arbiter_liveness()?;
            if self.now >= settle_from && !self.sc.script.iter().any(|_| false) {
                self.check_settled()?;
            }
        }
        self.outcome.steps = self.steps;
        for g in &self.sc.spec.groups {
            let owner = self.owners(g.id).first().copied();
            self.outcome.final_owner.insert(g.name.clone(), owner);
        }
        let now_ms = ms(self.now);
        for ((g, n), since) in &self.run_since {
            let name = self.group_name(*g);
            self.outcome.running_spans.push((name, *n, *since, None));
        }
        let _ = now_ms;
        Ok(self.outcome)
    }

    fn fault_gap(&mut self) -> u64 {
        let mean = dur(self.sc.faults.mean_gap) as f64;
        let u: f64 = self.rng.random_range(0.001..1.0);
        (-u.ln() * mean) as u64 + 1
    }

    fn push(&mut self, at: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse(Queued {
            at,
            seq: self.seq,
            ev,
        }));
    }

    fn local(&self, i: usize) -> Instant {
        let n = &self.nodes[i];
        let real = self.now as i128;
        let t = n.offset as i128 + real + real * n.ppm as i128 / 1_000_000;
        Instant::from_nanos(t.max(0) as u64)
    }

    /// The earliest real instant (not before now) at which node `i`'s clock reads at
    /// least `local`.
    fn real_of(&self, i: usize, local: Instant) -> u64 {
        let n = &self.nodes[i];
        let l = local.as_nanos() as i128 - n.offset as i128;
        let mut real = (l * 1_000_000 / (1_000_000 + n.ppm as i128)).max(self.now as i128) as u64;
        // The integer clock is a step function: nudge to the exact first step.
        while self.local_at(i, real) < local {
            real += 1;
        }
        while real > self.now && self.local_at(i, real - 1) >= local {
            real -= 1;
        }
        real
    }

    fn local_at(&self, i: usize, real: u64) -> Instant {
        let n = &self.nodes[i];
        let real = real as i128;
        let t = n.offset as i128 + real + real * n.ppm as i128 / 1_000_000;
        Instant::from_nanos(t.max(0) as u64)
    }

    fn note(&mut self, line: String) {
        if self.trace.len() == TRACE_MAX {
            self.trace.pop_front();
        }
        self.trace
            .push_back(format!("{:>10.3} ms  {line}", ms(self.now)));
    }

    fn violation(&self, invariant: &'static str, detail: String) -> Box<Violation> {
        Box::new(Violation {
            seed: self.sc.seed,
            at_ms: ms(self.now),
            invariant,
            detail,
            trace: self.trace.iter().cloned().collect(),
        })
    }

    fn name(&self, i: usize) -> String {
        self.sc.spec.nodes[i].name.clone()
    }

    fn group_name(&self, g: GroupId) -> String {
        self.ever_groups
            .iter()
            .find(|gs| gs.id == g)
            .map(|g| g.name.clone())
            .unwrap_or_default()
    }

    fn index_of(&self, id: NodeId) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    fn real_of_exact(&self, i: usize, local: Instant) -> u64 {
        let n = &self.nodes[i];
        let l = local.as_nanos() as i128 - n.offset as i128;
        (l * 1_000_000 / (1_000_000 + n.ppm as i128)).max(0) as u64
    }
}

fn dur(d: Duration) -> u64 {
    d.as_nanos() as u64
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

#[allow(dead_code)]
fn fencing_required(mode: FenceMode) -> bool {
    mode == FenceMode::Always
}
