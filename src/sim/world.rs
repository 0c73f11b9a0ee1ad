//! The simulated world: real time, nodes with drifting clocks, the network, resource
//! and fence processes, faults — and the event loop that ties them together.

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
    OpDone {
        node: usize,
        inc: u64,
        op: OpId,
        group: GroupId,
        resource: usize,
        kind: OpKind,
        result: OpResult,
    },
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
    Unblock {
        link: Option<usize>,
        pairs: Vec<(usize, usize)>,
    },
    HealAll,
    AdminCleanup,
    Script(ScriptedFault),
    End,
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

    /// A node without quorum takes nothing over, so it has no business fencing: that
    /// only powers off a node the majority may rely on. Where quorum does not gate
    /// takeovers (two_node, `no_quorum_policy: ignore`) or an admin asked, it may.
    fn check_fence_has_quorum(&self, i: usize, target: NodeId) -> Result<(), Box<Violation>> {
        let q = &self.sc.spec.quorum;
        if q.two_node
            || q.no_quorum_policy == NoQuorumPolicy::Ignore
            || self.nodes[i].admin_fences.contains(&target)
        {
            return Ok(());
        }
        let quorate = self.nodes[i]
            .core
            .as_ref()
            .is_none_or(|c| c.status(self.local(i)).quorate);
        if quorate {
            return Ok(());
        }
        Err(self.violation(
            "only a node with quorum fences (unless an admin asked)",
            format!(
                "{} fences {} without quorum",
                self.name(i),
                self.index_of(target)
                    .map(|t| self.name(t))
                    .unwrap_or_else(|| target.to_string())
            ),
        ))
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

    // ------------------------------------------------------------------- steps

    fn step(&mut self, ev: Ev) -> Result<(), Box<Violation>> {
        match ev {
            Ev::Deliver { to, link, hb } => {
                let n = &self.nodes[to];
                if n.core.is_none() || n.vm_paused || n.daemon_paused {
                    return Ok(());
                }
                let now = self.local(to);
                self.drive(
                    to,
                    now,
                    Input::Heartbeat {
                        link,
                        heartbeat: *hb,
                    },
                )?;
            }
            Ev::Wake { node, gen } => {
                let n = &self.nodes[node];
                if n.wake_gen != gen || n.core.is_none() || n.vm_paused || n.daemon_paused {
                    return Ok(());
                }
                let now = self.local(node);
                self.drive(node, now, Input::Tick)?;
            }
            Ev::OpDone {
                node,
                inc,
                op,
                group,
                resource,
                kind,
                result,
            } => {
                if self.nodes[node].inc != inc || self.nodes[node].core.is_none() {
                    return Ok(());
                }
                if self.nodes[node].vm_paused {
                    let ev = Ev::OpDone {
                        node,
                        inc,
                        op,
                        group,
                        resource,
                        kind,
                        result,
                    };
                    self.nodes[node].held.push(ev);
                    return Ok(());
                }
                match (kind, &result) {
                    (OpKind::Stop, OpResult::Ok) => {
                        self.set_running(node, group, resource, false);
                    }
                    (OpKind::Monitor, OpResult::NotRunning) => {
                        self.set_running(node, group, resource, false);
                    }
                    _ => {}
                }
                if self.nodes[node].daemon_paused {
                    let ev = Ev::OpDone {
                        node,
                        inc,
                        op,
                        group,
                        resource,
                        kind,
                        result: result.clone(),
                    };
                    self.nodes[node].held.push(ev);
                    return Ok(());
                }
                self.note(format!(
                    "{} {kind:?} {}#{resource} -> {result:?}",
                    self.name(node),
                    self.group_name(group)
                ));
                let now = self.local(node);
                self.drive(node, now, Input::OpDone { op, result })?;
            }
            Ev::FenceDone {
                node,
                inc,
                request,
                target,
                result,
            } => {
                if self.nodes[node].inc != inc || self.nodes[node].core.is_none() {
                    return Ok(());
                }
                if result == FenceResult::Off {
                    self.note(format!("{} fenced {}", self.name(node), self.name(target)));
                    self.outcome.fences.push((target, ms(self.now)));
                    if self.nodes[target].core.is_some() {
                        self.power_off(target);
                        let delay = self.reboot_delay();
                        self.push(self.now + delay, Ev::Restart { node: target });
                    }
                }
                if self.nodes[node].vm_paused || self.nodes[node].daemon_paused {
                    self.nodes[node].held.push(Ev::FenceDone {
                        node,
                        inc,
                        request,
                        target,
                        result,
                    });
                    return Ok(());
                }
                let now = self.local(node);
                self.drive(node, now, Input::FenceDone { request, result })?;
            }
            Ev::Restart { node } => self.boot(node)?,
            Ev::Resume { node } => self.resume(node)?,
            Ev::GuardCheck { node, gen } => {
                if self.nodes[node].guard.gen == gen {
                    self.nodes[node].guard.armed = None;
                    self.guard_check(node);
                }
            }
            Ev::WatchdogFires { node, gen } => {
                let n = &self.nodes[node];
                if n.guard.watchdog_gen == gen && n.guard.hung && n.core.is_some() {
                    self.note(format!("{}'s watchdog resets it", self.name(node)));
                    self.outcome.watchdog_resets.push((node, ms(self.now)));
                    self.power_off(node);
                    let delay = self.reboot_delay();
                    self.push(self.now + delay, Ev::Restart { node });
                }
            }
            Ev::Fault => {
                if self.chaos_on {
                    self.inject_fault();
                    let gap = self.fault_gap();
                    self.push(self.now + gap, Ev::Fault);
                }
            }
            Ev::Unblock { link, pairs } => {
                for l in 0..self.blocked.len() {
                    if link.is_none_or(|k| k == l) {
                        for p in &pairs {
                            self.blocked[l].remove(p);
                        }
                    }
                }
            }
            Ev::HealAll => self.heal_all()?,
            Ev::AdminCleanup => self.admin_cleanup()?,
            Ev::Script(f) => self.scripted(f)?,
            Ev::End => {}
        }
        Ok(())
    }

    /// The end of a pause (or hang). A guard that was frozen too acts first if its
    /// deadline passed meanwhile: it runs at real-time priority, before the worker.
    fn resume(&mut self, node: usize) -> Result<(), Box<Violation>> {
        let n = &mut self.nodes[node];
        if n.core.is_none() || !(n.vm_paused || n.daemon_paused) {
            return Ok(());
        }
        n.vm_paused = false;
        n.daemon_paused = false;
        n.guard.hung = false;
        n.guard.watchdog_gen += 1;
        let held = std::mem::take(&mut n.held);
        self.note(format!("{} resumes", self.name(node)));
        self.guard_check(node);
        if self.nodes[node].core.is_none() {
            return Ok(());
        }
        let now = self.local(node);
        self.drive(node, now, Input::Tick)?;
        for ev in held {
            self.step(ev)?;
        }
        Ok(())
    }

    fn reboot_delay(&mut self) -> u64 {
        let d = dur(self.sc.spec.timing.deadtime);
        self.rng.random_range(d..=3 * d)
    }

    fn boot(&mut self, i: usize) -> Result<(), Box<Violation>> {
        if self.nodes[i].core.is_some() {
            return Ok(());
        }
        let lost_power = std::mem::take(&mut self.nodes[i].lost_power);
        if lost_power
            && self.chaos_on
            && self.rng.random_bool(self.sc.faults.disk_loss)
            && self.nodes[i].inc > 0
        {
            self.nodes[i].disk = None;
            self.terms[i].clear();
            self.note(format!("{} lost its state file", self.name(i)));
        }
        self.nodes[i].inc += 1;
        let boot = Boot {
            incarnation: self.nodes[i].inc,
            persisted: self.nodes[i].disk.clone(),
            seed: self.rng.random(),
        };
        let now = self.local(i);
        let mut core = Node::new(self.sc.spec.clone(), self.nodes[i].id, boot, now);
        core.plant_bug(self.sc.bug);
        self.nodes[i].core = Some(core);
        self.note(format!(
            "{} boots (incarnation {})",
            self.name(i),
            self.nodes[i].inc
        ));
        self.drive(i, now, Input::Tick)
    }

    fn power_off(&mut self, i: usize) {
        let now_ms = ms(self.now);
        let n = &mut self.nodes[i];
        n.core = None;
        n.vm_paused = false;
        n.daemon_paused = false;
        n.held.clear();
        n.wake_gen += 1;
        n.shutting_down = false;
        n.guard.forget();
        n.lost_power = true;
        let gone: Vec<(GroupId, usize)> = n.running.iter().copied().collect();
        n.running.clear();
        for (g, r) in gone {
            self.end_span(g, i, r, now_ms);
        }
        self.note(format!("{} powers off", self.name(i)));
    }

    // ------------------------------------------------------------ lease guard

    /// The worker tells its guard what it may run after every step; the guard arms a
    /// check for the earliest deadline. A renewal moves the deadline later, so a check
    /// that comes early finds nothing due and re-arms.
    fn guard_report(&mut self, i: usize) {
        let Some(core) = self.nodes[i].core.as_ref() else {
            return;
        };
        self.nodes[i].guard.table = Guard::report(core, &self.ever_groups);
        self.arm_guard(i);
    }

    fn guard_due(&self, i: usize) -> Option<Instant> {
        let late = self.sc.bug == PlantedBug::LateGuard;
        self.nodes[i]
            .guard
            .due(self.sc.spec.timing.guard_lead(), late)
    }

    fn arm_guard(&mut self, i: usize) {
        let Some(due) = self.guard_due(i) else {
            return;
        };
        let at = self.real_of(i, due);
        let guard = &mut self.nodes[i].guard;
        if guard.armed.is_some_and(|armed| armed <= at) {
            return;
        }
        guard.gen += 1;
        guard.armed = Some(at);
        let gen = guard.gen;
        self.push(at, Ev::GuardCheck { node: i, gen });
    }

    /// The guard looks at the clock: past the due time of a deadline the worker did not
    /// move (it is paused, hung, or simply did not renew), it acts. A frozen guard
    /// looks again when it thaws.
    fn guard_check(&mut self, i: usize) {
        let n = &self.nodes[i];
        if n.core.is_none() || n.vm_paused || n.guard.hung {
            return;
        }
        match self.guard_due(i) {
            Some(due) if due <= self.local(i) => self.guard_act(i, "lease deadline is near"),
            Some(_) => self.arm_guard(i),
            None => {}
        }
    }

    /// The worker dies (crash, OOM kill, exit on a persist error); the machine, its
    /// resources and the guard stay.
    fn daemon_crash(&mut self, i: usize) {
        let n = &self.nodes[i];
        // A frozen worker that dies changes nothing: nobody acts for it either way (a
        // hung guard: only the watchdog; a paused VM: nothing runs until it resumes).
        if n.core.is_none() || n.vm_paused || n.guard.hung {
            return;
        }
        self.guard_act(i, "worker died");
    }

    /// SIGKILL of the worker (a no-op if it died), then everything of every group it
    /// reported is killed at once; if something cannot be proven stopped, the guard
    /// powers the machine off. Only what the worker reported is killed: a resource it
    /// ran without telling the guard stays and the invariants see it.
    fn guard_act(&mut self, i: usize, why: &str) {
        let groups: Vec<GroupId> = self.nodes[i].guard.table.keys().copied().collect();
        self.note(format!(
            "{}'s guard: {why}: kills the worker and stops {} group(s)",
            self.name(i),
            groups.len()
        ));
        self.outcome.guard_kills.push((i, ms(self.now)));
        let unkillable = if self.chaos_on {
            self.sc.faults.unkillable
        } else {
            0.0
        };
        if !groups.is_empty() && self.rng.random_bool(unkillable) {
            self.note(format!(
                "{}'s guard cannot prove a resource stopped: powers the machine off",
                self.name(i)
            ));
            self.outcome.self_fences.push((i, ms(self.now)));
            self.power_off(i);
            let delay = self.reboot_delay();
            self.push(self.now + delay, Ev::Restart { node: i });
            return;
        }
        self.kill_worker(i);
        let killed: Vec<(GroupId, usize)> = self.nodes[i]
            .running
            .iter()
            .filter(|(g, _)| groups.contains(g))
            .copied()
            .collect();
        for (g, r) in killed {
            self.set_running(i, g, r, false);
        }
        let delay = self.worker_restart_delay();
        self.push(self.now + delay, Ev::Restart { node: i });
    }

    /// The worker process is gone; what it had in memory and in flight with it.
    fn kill_worker(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        n.core = None;
        n.daemon_paused = false;
        n.held.clear();
        n.wake_gen += 1;
        n.shutting_down = false;
        n.guard.forget();
    }

    /// The guard restarts its worker after a short back-off (systemd-like).
    fn worker_restart_delay(&mut self) -> u64 {
        let t = &self.sc.spec.timing;
        let (lo, hi) = (dur(t.interval), dur(t.deadtime * 2));
        self.rng.random_range(lo..=hi)
    }

    /// The worker and its guard stop (the whole service wedged) while the resources
    /// keep running. The guard fed the watchdog at the latest now, so (worst case) it
    /// resets the machine `watchdog_timeout` from now on the node's clock, unless the
    /// hang ends first.
    fn hang(&mut self, i: usize, d: u64) {
        let n = &mut self.nodes[i];
        if n.core.is_none() || n.vm_paused || n.daemon_paused {
            return;
        }
        n.daemon_paused = true;
        n.guard.hung = true;
        n.guard.watchdog_gen += 1;
        let gen = n.guard.watchdog_gen;
        self.push(self.now + d, Ev::Resume { node: i });
        if let Some(timeout) = self.sc.spec.timing.watchdog_timeout {
            let at = self.real_of(i, self.local(i) + timeout);
            self.push(at, Ev::WatchdogFires { node: i, gen });
        }
    }

    fn set_running(&mut self, i: usize, g: GroupId, r: usize, on: bool) {
        let changed = if on {
            self.nodes[i].running.insert((g, r))
        } else {
            self.nodes[i].running.remove(&(g, r))
        };
        if !changed {
            return;
        }
        let any = self.nodes[i].running.iter().any(|(gg, _)| *gg == g);
        let now_ms = ms(self.now);
        if on && !self.run_since.contains_key(&(g, i)) {
            self.run_since.insert((g, i), now_ms);
        }
        if !any {
            self.end_span(g, i, r, now_ms);
        }
    }

    fn end_span(&mut self, g: GroupId, i: usize, _r: usize, now_ms: f64) {
        if self.nodes[i].running.iter().any(|(gg, _)| *gg == g) {
            return;
        }
        if let Some(since) = self.run_since.remove(&(g, i)) {
            let name = self.group_name(g);
            self.outcome
                .running_spans
                .push((name, i, since, Some(now_ms)));
        }
    }

    /// Feed one input to a node and carry out everything it returns.
    fn drive(&mut self, i: usize, now: Instant, input: Input) -> Result<(), Box<Violation>> {
        let Some(core) = self.nodes[i].core.as_mut() else {
            return Ok(());
        };
        let actions = core.handle(now, input);
        self.settle(i, actions)
    }

    /// Carries out what node `i`'s core returned, checks it, and arms its next wake-up.
    fn settle(&mut self, i: usize, actions: Vec<Action>) -> Result<(), Box<Violation>> {
        self.apply(i, actions)?;
        self.check_terms(i)?;
        self.exit_if_quiet(i);
        self.schedule_wake(i);
        self.guard_report(i);
        Ok(())
    }

    /// A daemon shutting down exits once nothing runs here any more. Resources still
    /// running at that point would be left behind: power_off models exactly that, and
    /// the safety checks would see them overlap with the next owner.
    fn exit_if_quiet(&mut self, i: usize) {
        let quiet = self.nodes[i].core.as_ref().is_some_and(|c| c.is_quiet());
        if self.nodes[i].shutting_down && quiet {
            // Like the daemon: linger three intervals so the release goes out.
            self.nodes[i].shutting_down = false;
            let linger = dur(self.sc.spec.timing.interval * 3);
            self.push(self.now + linger, Ev::Script(ScriptedFault::Crash(i)));
            self.note(format!(
                "{} quiet after a clean shutdown: exits soon",
                self.name(i)
            ));
        }
    }

    fn schedule_wake(&mut self, i: usize) {
        let Some(core) = self.nodes[i].core.as_ref() else {
            return;
        };
        let Some((at, _why)) = core.next_deadline() else {
            return;
        };
        let real = self.real_of(i, at);
        self.nodes[i].wake_gen += 1;
        let gen = self.nodes[i].wake_gen;
        self.push(real, Ev::Wake { node: i, gen });
    }

    fn apply(&mut self, i: usize, actions: Vec<Action>) -> Result<(), Box<Violation>> {
        let deadtime = dur(self.sc.spec.timing.deadtime);
        for a in actions {
            if self.nodes[i].core.is_none() {
                break;
            }
            match a {
                Action::Send(hb) => self.send(i, hb),
                Action::Persist(state) => self.nodes[i].disk = Some(state),
                Action::RunOp {
                    op,
                    group,
                    resource,
                    kind,
                    ..
                } => {
                    let f = &self.sc.faults;
                    let (op_fail, op_hang, slow, monitor_fail) = if self.chaos_on {
                        (f.op_fail, f.op_hang, f.slow_stop, f.monitor_fail)
                    } else {
                        (0.0, 0.0, 0.0, 0.0)
                    };
                    let timeout = 2 * deadtime;
                    let inc = self.nodes[i].inc;
                    let (delay, result) = match kind {
                        OpKind::Start => {
                            self.set_running(i, group, resource, true);
                            if self.rng.random_bool(op_hang) {
                                (timeout, OpResult::TimedOut)
                            } else if self.nodes[i].fail_starts || self.rng.random_bool(op_fail) {
                                (
                                    self.rng.random_range(1_000_000..50_000_000),
                                    OpResult::Failed("exit 1".into()),
                                )
                            } else {
                                (self.rng.random_range(1_000_000..50_000_000), OpResult::Ok)
                            }
                        }
                        OpKind::Stop => {
                            if self.nodes[i].fail_stops || self.rng.random_bool(op_fail) {
                                (
                                    self.rng.random_range(1_000_000..50_000_000),
                                    OpResult::Failed("exit 1".into()),
                                )
                            } else if self.rng.random_bool(op_hang) {
                                (timeout, OpResult::TimedOut)
                            } else if self.rng.random_bool(slow) {
                                (
                                    self.rng.random_range(deadtime / 4..deadtime * 3 / 2),
                                    OpResult::Ok,
                                )
                            } else {
                                (self.rng.random_range(1_000_000..50_000_000), OpResult::Ok)
                            }
                        }
                        OpKind::Monitor => {
                            let runs = self.nodes[i].running.contains(&(group, resource));
                            let result = if runs && !self.rng.random_bool(monitor_fail) {
                                OpResult::Ok
                            } else {
                                OpResult::NotRunning
                            };
                            (self.rng.random_range(100_000..5_000_000), result)
                        }
                    };
                    self.push(
                        self.now + delay,
                        Ev::OpDone {
                            node: i,
                            inc,
                            op,
                            group,
                            resource,
                            kind,
                            result,
                        },
                    );
                }
                Action::Fence { request, target } => {
                    let Some(t) = self.index_of(target) else {
                        continue;
                    };
                    self.check_fence_has_quorum(i, target)?;
                    let inc = self.nodes[i].inc;
                    let f = &self.sc.faults;
                    let (fail, hang) = if self.chaos_on {
                        (f.fence_fail, f.fence_hang)
                    } else {
                        (0.0, 0.0)
                    };
                    self.note(format!("{} fences {}", self.name(i), self.name(t)));
                    let (delay, result) = if self.nodes[i].fail_fences || self.rng.random_bool(fail)
                    {
                        (
                            self.rng.random_range(50_000_000..deadtime.max(50_000_001)),
                            FenceResult::Failed("agent exit 1".into()),
                        )
                    } else if self.rng.random_bool(hang) {
                        (5 * deadtime, FenceResult::Failed("agent timed out".into()))
                    } else {
                        (
                            self.rng.random_range(50_000_000..deadtime.max(50_000_001)),
                            FenceResult::Off,
                        )
                    };
                    self.push(
                        self.now + delay,
                        Ev::FenceDone {
                            node: i,
                            inc,
                            request,
                            target: t,
                            result,
                        },
                    );
                }
                Action::SelfFence { reason } => {
                    self.note(format!("{} fences itself: {reason}", self.name(i)));
                    self.outcome.self_fences.push((i, ms(self.now)));
                    self.power_off(i);
                    let delay = self.reboot_delay();
                    self.push(self.now + delay, Ev::Restart { node: i });
                    break;
                }
                Action::Announce { group } => {
                    let name = self.group_name(group);
                    self.outcome.takeovers.push((name.clone(), i, ms(self.now)));
                    self.note(format!("{} announces {name}", self.name(i)));
                }
                Action::Event(e) => {
                    let g = e.group.map(|g| self.group_name(g)).unwrap_or_default();
                    let line = format!("{} [{}] {} {}", self.name(i), e.kind.as_str(), g, e.reason);
                    if self.outcome.events.len() < 10_000 {
                        self.outcome.events.push(line.clone());
                    }
                    self.note(line);
                }
            }
        }
        Ok(())
    }

    fn send(&mut self, from: usize, hb: Heartbeat) {
        let links = self.blocked.len();
        let deadtime = dur(self.sc.spec.timing.deadtime);
        for link in 0..links {
            for to in 0..self.nodes.len() {
                if to == from || self.blocked[link].contains(&(from, to)) {
                    continue;
                }
                if self.loss > 0.0 && self.rng.random_bool(self.loss) {
                    continue;
                }
                let copies = if self.chaos_on && self.rng.random_bool(self.sc.faults.duplicate) {
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    let mut delay = self.rng.random_range(100_000..1_500_000u64);
                    if self.chaos_on && self.rng.random_bool(self.sc.faults.delay_spike) {
                        delay += self.rng.random_range(0..deadtime / 2);
                    }
                    self.push(
                        self.now + delay,
                        Ev::Deliver {
                            to,
                            link,
                            hb: Box::new(hb.clone()),
                        },
                    );
                }
            }
        }
    }

    // ------------------------------------------------------------------ faults

    fn inject_fault(&mut self) {
        self.outcome.faults += 1;
        let f = self.sc.faults.clone();
        let n = self.nodes.len();
        let deadtime = dur(self.sc.spec.timing.deadtime);
        let mut kinds: Vec<u8> = Vec::new();
        if f.crash {
            kinds.push(0);
        }
        if f.vm_pause {
            kinds.push(1);
        }
        if f.daemon_pause {
            kinds.push(2);
        }
        if f.partition {
            kinds.extend([3, 3]);
        }
        if f.link_cut {
            kinds.push(4);
        }
        if f.admin {
            kinds.push(5);
        }
        if f.daemon_crash {
            kinds.push(6);
        }
        if f.hang {
            kinds.push(7);
        }
        if kinds.is_empty() {
            return;
        }
        let kind = kinds[self.rng.random_range(0..kinds.len())];
        let node = self.rng.random_range(0..n);
        match kind {
            0 => {
                if self.nodes[node].core.is_some() {
                    self.note(format!("FAULT crash {}", self.name(node)));
                    self.power_off(node);
                    let delay = self.rng.random_range(deadtime / 2..5 * deadtime);
                    self.push(self.now + delay, Ev::Restart { node });
                }
            }
            1 | 2 => {
                let nd = &mut self.nodes[node];
                if nd.core.is_some() && !nd.vm_paused && !nd.daemon_paused {
                    if kind == 1 {
                        nd.vm_paused = true;
                    } else {
                        nd.daemon_paused = true;
                    }
                    let d = self.rng.random_range(deadtime / 4..4 * deadtime);
                    self.note(format!(
                        "FAULT {} pause {} for {:.0} ms",
                        if kind == 1 { "vm" } else { "daemon" },
                        self.name(node),
                        ms(d)
                    ));
                    self.push(self.now + d, Ev::Resume { node });
                }
            }
            3 => {
                let mut side: Vec<bool> = (0..n).map(|_| self.rng.random_bool(0.5)).collect();
                side[node] = true;
                let asymmetric = self.rng.random_bool(0.3);
                let link = if self.blocked.len() > 1 && self.rng.random_bool(0.3) {
                    Some(self.rng.random_range(0..self.blocked.len()))
                } else {
                    None
                };
                let mut pairs = Vec::new();
                for a in 0..n {
                    for b in 0..n {
                        if side[a] && !side[b] {
                            pairs.push((a, b));
                            if !asymmetric {
                                pairs.push((b, a));
                            }
                        }
                    }
                }
                self.block(link, &pairs);
                let d = self.rng.random_range(deadtime..6 * deadtime);
                let a: Vec<String> = (0..n).filter(|i| side[*i]).map(|i| self.name(i)).collect();
                self.note(format!(
                    "FAULT {}partition {:?} | rest, link {:?}, for {:.0} ms",
                    if asymmetric { "asymmetric " } else { "" },
                    a,
                    link,
                    ms(d)
                ));
                self.push(self.now + d, Ev::Unblock { link, pairs });
            }
            4 => {
                let link = self.rng.random_range(0..self.blocked.len());
                let pairs: Vec<(usize, usize)> = (0..n)
                    .filter(|o| *o != node)
                    .flat_map(|o| [(node, o), (o, node)])
                    .collect();
                self.block(Some(link), &pairs);
                let d = self.rng.random_range(deadtime..6 * deadtime);
                self.note(format!(
                    "FAULT cut link {link} of {} for {:.0} ms",
                    self.name(node),
                    ms(d)
                ));
                self.push(
                    self.now + d,
                    Ev::Unblock {
                        link: Some(link),
                        pairs,
                    },
                );
            }
            6 => {
                if self.nodes[node].core.is_some() && !self.nodes[node].vm_paused {
                    self.note(format!("FAULT daemon crash {}", self.name(node)));
                    self.daemon_crash(node);
                }
            }
            7 => {
                let d = self.rng.random_range(deadtime / 4..6 * deadtime);
                self.note(format!(
                    "FAULT hang {} for {:.0} ms",
                    self.name(node),
                    ms(d)
                ));
                self.hang(node, d);
            }
            _ => {
                let Some(g) = self.sc.spec.groups.first().map(|g| g.id) else {
                    return;
                };
                let target = self.sc.spec.nodes[self.rng.random_range(0..n)].id;
                let cmd = match self.rng.random_range(0..4) {
                    0 => AdminCommand::Standby {
                        node: target,
                        on: true,
                    },
                    1 => AdminCommand::Standby {
                        node: target,
                        on: false,
                    },
                    2 => AdminCommand::Move {
                        group: g,
                        to: Some(target),
                    },
                    _ => AdminCommand::ClearMove { group: g },
                };
                if self.nodes[node].core.is_some()
                    && !self.nodes[node].vm_paused
                    && !self.nodes[node].daemon_paused
                {
                    self.note(format!("ADMIN on {}: {cmd:?}", self.name(node)));
                    let now = self.local(node);
                    let _ = self.drive(node, now, Input::Admin(cmd));
                }
            }
        }
    }

    fn block(&mut self, link: Option<usize>, pairs: &[(usize, usize)]) {
        for l in 0..self.blocked.len() {
            if link.is_none_or(|k| k == l) {
                self.blocked[l].extend(pairs.iter().copied());
            }
        }
    }

    fn heal_all(&mut self) -> Result<(), Box<Violation>> {
        self.chaos_on = false;
        self.note("HEAL: faults stop, partitions heal, nodes restart".into());
        for l in &mut self.blocked {
            l.clear();
        }
        self.loss = 0.0;
        for i in 0..self.nodes.len() {
            self.nodes[i].fail_stops = false;
            self.nodes[i].fail_starts = false;
            self.nodes[i].fail_fences = false;
            if self.nodes[i].core.is_none() {
                self.push(self.now, Ev::Restart { node: i });
            } else if self.nodes[i].vm_paused || self.nodes[i].daemon_paused {
                self.push(self.now, Ev::Resume { node: i });
            }
        }
        // An admin cleans up what the chaos left (fail counts, moves, standby) once the
        // healed cluster's views have converged: a command issued on a node whose admin
        // view is stale loses to a newer state (last writer wins; see the notes).
        let later = self.now + 3 * dur(self.sc.spec.timing.deadtime);
        self.push(later, Ev::AdminCleanup);
        Ok(())
    }

    fn admin_cleanup(&mut self) -> Result<(), Box<Violation>> {
        if let Some(i) = (0..self.nodes.len()).find(|i| {
            self.nodes[*i].core.is_some()
                && !self.nodes[*i].vm_paused
                && !self.nodes[*i].daemon_paused
        }) {
            let mut cmds = Vec::new();
            for g in &self.sc.spec.groups {
                cmds.push(AdminCommand::Cleanup { group: g.id });
                cmds.push(AdminCommand::ClearMove { group: g.id });
            }
            for n in &self.sc.spec.nodes {
                cmds.push(AdminCommand::Standby {
                    node: n.id,
                    on: false,
                });
            }
            for c in cmds {
                let now = self.local(i);
                self.drive(i, now, Input::Admin(c))?;
            }
        }
        Ok(())
    }

    fn scripted(&mut self, f: ScriptedFault) -> Result<(), Box<Violation>> {
        self.note(format!("SCRIPT {f:?}"));
        match f {
            ScriptedFault::Crash(i) => {
                if self.nodes[i].core.is_some() {
                    self.power_off(i);
                }
            }
            ScriptedFault::Restart(i) => self.boot(i)?,
            ScriptedFault::VmPause(i, d) | ScriptedFault::DaemonPause(i, d) => {
                if matches!(f, ScriptedFault::VmPause(..)) {
                    self.nodes[i].vm_paused = true;
                } else {
                    self.nodes[i].daemon_paused = true;
                }
                self.push(self.now + dur(d), Ev::Resume { node: i });
            }
            ScriptedFault::Partition(a, b) => {
                let mut pairs = Vec::new();
                for x in &a {
                    for y in &b {
                        pairs.push((*x, *y));
                        pairs.push((*y, *x));
                    }
                }
                self.block(None, &pairs);
            }
            ScriptedFault::OneWay(from, to) => {
                let pairs: Vec<(usize, usize)> = from
                    .iter()
                    .flat_map(|x| to.iter().map(|y| (*x, *y)))
                    .collect();
                self.block(None, &pairs);
            }
            ScriptedFault::Heal => {
                for l in &mut self.blocked {
                    l.clear();
                }
            }
            ScriptedFault::Connect(a, b) => {
                for l in &mut self.blocked {
                    l.retain(|(x, y)| {
                        !(a.contains(x) && b.contains(y) || a.contains(y) && b.contains(x))
                    });
                }
            }
            ScriptedFault::Admin(i, cmd) => {
                if let crate::core::AdminCommand::Fence { node } = &cmd {
                    self.nodes[i].admin_fences.insert(*node);
                }
                let now = self.local(i);
                self.drive(i, now, Input::Admin(cmd))?;
            }
            ScriptedFault::FailStops(i) => self.nodes[i].fail_stops = true,
            ScriptedFault::FailStarts(i, on) => self.nodes[i].fail_starts = on,
            ScriptedFault::FailFences(i) => self.nodes[i].fail_fences = true,
            ScriptedFault::DaemonCrash(i) => self.daemon_crash(i),
            ScriptedFault::Hang(i, d) => self.hang(i, dur(d)),
            ScriptedFault::Shutdown(i) => {
                let now = self.local(i);
                if let Some(core) = self.nodes[i].core.as_mut() {
                    let actions = core.leave(now);
                    self.nodes[i].shutting_down = true;
                    self.settle(i, actions)?;
                }
            }
            ScriptedFault::Reload(i, spec) => {
                // The newest config is what liveness is judged against.
                for g in &spec.groups {
                    if !self.ever_groups.iter().any(|e| e.id == g.id) {
                        self.ever_groups.push(g.clone());
                    }
                }
                // A node that (re)starts from now on reads the new file.
                self.sc.spec = (*spec).clone();
                let now = self.local(i);
                if let Some(core) = self.nodes[i].core.as_mut() {
                    match core.reconfigure(now, *spec) {
                        Ok(actions) => self.settle(i, actions)?,
                        Err(e) => self.note(format!("reload refused on node {i}: {e}")),
                    }
                }
            }
        }
        Ok(())
    }

    // -------------------------------------------------------------- invariants

    fn unsafe_policy(&self) -> bool {
        self.sc.spec.quorum.no_quorum_policy == NoQuorumPolicy::Ignore
    }

    /// Nodes that actually run (any resource of) `g` and are not frozen — with a worker
    /// or without one (what a guard failed to kill would stay running).
    fn runners(&self, g: GroupId) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| {
                let n = &self.nodes[*i];
                !n.vm_paused && n.running.iter().any(|(gg, _)| *gg == g)
            })
            .collect()
    }

    fn check_safety(&self) -> Result<(), Box<Violation>> {
        if self.unsafe_policy() {
            return Ok(());
        }
        for gs in &self.ever_groups {
            let runners = self.runners(gs.id);
            if runners.len() > 1 {
                let names: Vec<String> = runners.iter().map(|i| self.name(*i)).collect();
                let views: Vec<String> = (0..self.nodes.len())
                    .map(|i| match &self.nodes[i].core {
                        Some(c) => format!("\n    {}: {}", self.name(i), c.describe_group(gs.id)),
                        None => format!("\n    {}: off", self.name(i)),
                    })
                    .collect();
                return Err(self.violation(
                    check::SAFETY_SINGLE_RUNNER,
                    format!("{} runs on {:?}{}", gs.name, names, views.concat()),
                ));
            }
            let lease_mode = self
                .nodes
                .iter()
                .find_map(|n| n.core.as_ref())
                .is_some_and(|c| c.lease_is_enforced());
            if !lease_mode {
                continue;
            }
            // A hung node (worker and guard wedged) cannot enforce its lease: only its
            // watchdog ends what it runs, and the voters' longer promise must cover that
            // (the single-runner check above is what judges it).
            for i in runners.into_iter().filter(|i| !self.nodes[*i].guard.hung) {
                let Some(core) = self.nodes[i].core.as_ref() else {
                    return Err(self.violation(
                        check::SAFETY_LEASE,
                        format!("{} runs {} without a worker", self.name(i), gs.name),
                    ));
                };
                let now = self.local(i);
                // One microsecond of slack: the simulated clocks tick in whole
                // nanoseconds at slightly different rates.
                match core.lease_until(gs.id) {
                    Some(l) if now <= l + Duration::from_micros(1) => {}
                    Some(l) => {
                        return Err(self.violation(
                            check::SAFETY_LEASE,
                            format!(
                                "{} runs {} {:?} after its lease ended ({:?}); actually running {:?}; core: {}",
                                self.name(i),
                                gs.name,
                                now,
                                l,
                                self.nodes[i].running,
                                core.describe_group(gs.id)
                            ),
                        ))
                    }
                    None => {
                        return Err(self.violation(check::SAFETY_LEASE, format!("{} runs {} without owning it", self.name(i), gs.name)))
                    }
                }
            }
            let holders: Vec<usize> = (0..self.nodes.len())
                .filter(|i| {
                    self.nodes[*i]
                        .core
                        .as_ref()
                        .and_then(|c| c.lease_until(gs.id))
                        .is_some_and(|l| self.real_of_exact(*i, l) > self.now)
                })
                .collect();
            if holders.len() > 1 {
                let names: Vec<String> = holders.iter().map(|i| self.name(*i)).collect();
                return Err(self.violation(
                    check::SAFETY_LEASE_OVERLAP,
                    format!("{} leased by {:?}", gs.name, names),
                ));
            }
        }
        Ok(())
    }

    fn real_of_exact(&self, i: usize, local: Instant) -> u64 {
        let n = &self.nodes[i];
        let l = local.as_nanos() as i128 - n.offset as i128;
        (l * 1_000_000 / (1_000_000 + n.ppm as i128)).max(0) as u64
    }

    fn check_terms(&mut self, i: usize) -> Result<(), Box<Violation>> {
        let Some(core) = self.nodes[i].core.as_ref() else {
            return Ok(());
        };
        for gs in &self.ever_groups {
            let t = core.known_term(gs.id);
            let seen = self.terms[i].entry(gs.id).or_default();
            if t < *seen {
                let detail = format!(
                    "{} went from term {} to {} for {}",
                    self.sc.spec.nodes[i].name, seen, t, gs.name
                );
                return Err(self.violation(check::TERMS_MONOTONIC, detail));
            }
            *seen = t;
        }
        Ok(())
    }

    /// Nodes that own `g` with everything running, by their own account and in fact.
    fn owners(&self, g: GroupId) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| {
                let n = &self.nodes[*i];
                // The node's own resource list: a reload may have changed it.
                let n_res = n
                    .core
                    .as_ref()
                    .and_then(|c| c.spec().group(g))
                    .map(|g| g.resources.len())
                    .unwrap_or(0);
                n.core.as_ref().is_some_and(|c| c.owns_running(g))
                    && n.running.iter().filter(|(gg, _)| *gg == g).count() == n_res
            })
            .collect()
    }

    fn check_settled(&mut self) -> Result<(), Box<Violation>> {
        for gs in self.sc.spec.groups.clone() {
            let owners = self.owners(gs.id);
            let owner = (owners.len() == 1).then(|| owners[0]);
            match self.settle_owner.get(&gs.id) {
                None => {
                    if owner.is_none() {
                        let views: Vec<String> = (0..self.nodes.len())
                            .map(|i| match &self.nodes[i].core {
                                Some(c) => {
                                    format!("\n    {}: {}", self.name(i), c.describe_group(gs.id))
                                }
                                None => format!("\n    {}: off", self.name(i)),
                            })
                            .collect();
                        return Err(self.violation(
                            check::LIVENESS_OWNER,
                            format!(
                                "{}: no single running owner {} ms after healing (owners {:?}){}",
                                gs.name,
                                ms(dur(self.sc.heal - self.sc.settle)),
                                owners,
                                views.concat()
                            ),
                        ));
                    }
                    self.settle_owner.insert(gs.id, owner);
                }
                Some(prev) if *prev != owner => {
                    return Err(self.violation(
                        check::LIVENESS_STABLE,
                        format!(
                            "{}: owner changed from {:?} to {:?} after settling",
                            gs.name, prev, owner
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        self.settle_started = true;
        Ok(())
    }

    fn check_liveness(&mut self) -> Result<(), Box<Violation>> {
        self.check_settled()
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
