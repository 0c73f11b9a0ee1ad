//! What a simulated run looks like: the cluster's spec, the per-node clock drift, the
//! fault mix, and the lengths of the chaos and heal phases — all drawn from one seed,
//! or set by hand for named scenarios.

use crate::core::ids::{GroupId, NodeId};
use crate::core::node::PlantedBug;
use crate::core::spec::{
    ArbiterSpec, ClusterSpec, FenceMode, FencingSpec, GroupSpec, NoQuorumPolicy, NodeSpec, OnFail,
    QuorumSpec, Timing,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;

/// Probabilities and bounds of the faults injected during the chaos phase.
#[derive(Clone, Debug)]
pub struct Faults {
    /// Mean time between two injected faults (crash, pause, partition, …).
    pub mean_gap: Duration,
    pub crash: bool,
    /// VM-style pause: the whole node (its resources too) freezes.
    pub vm_pause: bool,
    /// Daemon-only pause (SIGSTOP of the worker): resources keep running; the lease
    /// guard kills them before the lease ends.
    pub daemon_pause: bool,
    /// The worker dies (crash, OOM kill): the guard kills what it ran at once and
    /// restarts it; the machine and the disk stay.
    pub daemon_crash: bool,
    /// The worker and the guard both hang while resources keep running; only the
    /// watchdog (`Timing::watchdog_timeout`) resets the machine. Unsafe without one,
    /// and not quite safe with one (see `Timing::promise`): off in the random family.
    pub hang: bool,
    pub partition: bool,
    pub link_cut: bool,
    pub loss: f64,
    pub duplicate: f64,
    /// Extra delay spikes (reordering).
    pub delay_spike: f64,
    pub op_fail: f64,
    pub op_hang: f64,
    pub slow_stop: f64,
    pub monitor_fail: f64,
    pub fence_fail: f64,
    pub fence_hang: f64,
    pub disk_loss: f64,
    pub admin: bool,
    /// When the guard acts: the chance that it cannot prove a resource stopped (a
    /// process in uninterruptible sleep), so it powers the machine off instead.
    pub unkillable: f64,
}

impl Faults {
    pub fn none() -> Faults {
        Faults {
            mean_gap: Duration::from_secs(3600),
            crash: false,
            vm_pause: false,
            daemon_pause: false,
            daemon_crash: false,
            hang: false,
            partition: false,
            link_cut: false,
            loss: 0.0,
            duplicate: 0.0,
            delay_spike: 0.0,
            op_fail: 0.0,
            op_hang: 0.0,
            slow_stop: 0.0,
            monitor_fail: 0.0,
            fence_fail: 0.0,
            fence_hang: 0.0,
            disk_loss: 0.0,
            admin: false,
            unkillable: 0.0,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Scenario {
    pub seed: u64,
    pub spec: ClusterSpec,
    /// Per node clock rate error in ppm (within ±max_drift_ppm).
    pub drift_ppm: Vec<i64>,
    pub faults: Faults,
    pub chaos: Duration,
    pub heal: Duration,
    /// Trailing part of the heal phase in which the owner must not change.
    pub settle: Duration,
    pub bug: PlantedBug,
    /// Scripted faults (named scenarios): (at, fault).
    pub script: Vec<(Duration, ScriptedFault)>,
    /// Nodes wake as the daemon does, coarse deadlines up to `Node::coarse_slack` late
    /// (`Node::next_wake`), instead of at every deadline to the nanosecond. The random
    /// families do; named scenarios only when asked (`ScenarioBuilder::coarse_wakes`),
    /// so that their stories keep the timings they were written for.
    pub coarse_wakes: bool,
    /// Once the healed cluster has settled on its owners, the owner of the first
    /// group loses power for good (when the rest still makes a quorum with the
    /// arbiter): the fault after the chaos, which the survivors must handle with the
    /// arbiter sessions the chaos left them (issue 24). The arbiter family only.
    pub owner_loss_after_heal: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ScriptedFault {
    Crash(usize),
    Restart(usize),
    VmPause(usize, Duration),
    DaemonPause(usize, Duration),
    /// Cut every link between the two sides (node indexes).
    Partition(Vec<usize>, Vec<usize>),
    Heal,
    /// Cut every link in one direction only: the first side no longer reaches the
    /// second, which still reaches the first.
    OneWay(Vec<usize>, Vec<usize>),
    /// Restore every link between the two sides (undoes a `Partition` in part).
    Connect(Vec<usize>, Vec<usize>),
    Admin(usize, crate::core::AdminCommand),
    /// From now on, stops of this node fail.
    FailStops(usize),
    /// From now on, starts on this node fail (`true`) or succeed again (`false`).
    FailStarts(usize, bool),
    /// From now on, fence agents of this node fail.
    FailFences(usize),
    /// SIGTERM: the daemon hands its groups over, then exits.
    Shutdown(usize),
    /// The worker dies; its guard stops what it ran and restarts it.
    DaemonCrash(usize),
    /// The worker and its guard hang for this long; resources keep running.
    Hang(usize, Duration),
    /// The interface of every group's first resource (its vip) loses its carrier on this
    /// node: the daemon's carrier watch feeds the core a `ResourceFault`.
    CarrierLoss(usize),
    /// `tandemctl reload` on this node with this config.
    Reload(usize, Box<crate::core::ClusterSpec>),
    /// The arbiter's requests and answers are slow (up to two deadtimes each way).
    ArbiterSlow(Duration),
    /// This node cannot reach the arbiter for this long.
    ArbiterCut(usize, Duration),
}

impl Scenario {
    /// The random scenario family that the seeded test sweeps.
    pub fn random(seed: u64) -> Scenario {
        Scenario::random_family(seed, false)
    }

    /// The random family with an arbiter in every cluster (a two-node cluster then
    /// relies on it instead of `two_node`): the arbiter's own sweep.
    pub fn random_with_arbiter(seed: u64) -> Scenario {
        Scenario {
            owner_loss_after_heal: true,
            ..Scenario::random_family(seed, true)
        }
    }

    fn random_family(seed: u64, force_arbiter: bool) -> Scenario {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7a6e_6465_6d5f_7369);
        let (nodes, two_node) = random_nodes(&mut rng);
        let (fencing, policy) = random_policies(&mut rng);
        let interval_ms: u64 = rng.random_range(20..=100);
        let ratio: u64 = rng.random_range(4..=10);
        let deadtime = Duration::from_millis(interval_ms * ratio);
        let owners: Vec<NodeId> = nodes.iter().filter(|n| !n.witness).map(|n| n.id).collect();
        let groups = random_groups(&mut rng, &owners, deadtime, fencing);
        let max_drift_ppm = 500;
        let mut spec = ClusterSpec {
            links: rng.random_range(1..=2),
            timing: Timing {
                interval: Duration::from_millis(interval_ms),
                deadtime,
                warntime: deadtime / 2,
                initdead: deadtime * 2,
                max_drift_ppm,
                stop_before_lease_end: Timing::default_stop_before_lease_end(
                    Duration::from_millis(interval_ms),
                    deadtime,
                ),
                watchdog_timeout: None,
            },
            quorum: QuorumSpec {
                expected_votes: None,
                two_node,
                wait_for_all: two_node,
                no_quorum_policy: policy,
                arbiter: None,
            },
            fencing: FencingSpec {
                mode: fencing,
                retry_interval: deadtime * 2,
            },
            groups,
            digest: 42,
            nodes,
        };
        let fence_always = fencing == FenceMode::Always || (two_node && fencing != FenceMode::Off);
        let drift_ppm = (0..spec.nodes.len())
            .map(|_| rng.random_range(-(max_drift_ppm as i64)..=max_drift_ppm as i64))
            .collect();
        let mut faults = random_faults(&mut rng, deadtime, fence_always);
        let chaos = deadtime * 15;
        let mut script = rolling_reload(&mut rng, &spec, chaos);
        guard_faults(&mut rng, &mut faults, fence_always);
        watchdog(&mut rng, &mut spec, &mut script);
        arbiter(&mut rng, &mut spec, &mut script, force_arbiter);
        Scenario {
            seed,
            drift_ppm,
            faults,
            chaos,
            heal: deadtime * 25,
            settle: deadtime * 5,
            bug: PlantedBug::None,
            script,
            spec,
            coarse_wakes: true,
            owner_loss_after_heal: false,
        }
    }
}

impl Scenario {
    /// The random family again, on two links with every witness on link 0 only (a
    /// witness behind a router): a cluster without a witness gets one (and gives up
    /// `two_node`, which a witness replaces). Link cuts, partitions and loss then hit a
    /// node that has one path where the others have two. Derived from
    /// [`Scenario::random`] after the fact, so that family's seeds stay as they were.
    pub fn random_witness_on_link0(seed: u64) -> Scenario {
        let mut s = Scenario::random(seed);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7769_746e_6573_7330);
        witness_on_link0(&mut s.spec);
        for (_, f) in &mut s.script {
            if let ScriptedFault::Reload(_, new) = f {
                witness_on_link0(new);
            }
        }
        let max = i64::from(s.spec.timing.max_drift_ppm);
        s.drift_ppm
            .resize_with(s.spec.nodes.len(), || rng.random_range(-max..=max));
        s
    }
}

/// Two links; every witness absent from link 1; a witness added if there was none.
fn witness_on_link0(spec: &mut ClusterSpec) {
    spec.links = 2;
    if !spec.nodes.iter().any(|n| n.witness) {
        let id = spec.nodes.iter().map(|n| n.id.0).max().unwrap_or(0) + 1;
        spec.nodes.push(NodeSpec::witness(id, format!("w{id}")));
        spec.quorum.two_node = false;
        spec.quorum.wait_for_all = false;
    }
    for n in spec.nodes.iter_mut().filter(|n| n.witness) {
        n.absent_links = vec![1];
    }
}

/// 2 to 7 nodes; with two, either `two_node` or a witness; otherwise maybe a witness.
fn random_nodes(rng: &mut ChaCha8Rng) -> (Vec<NodeSpec>, bool) {
    let n: usize = rng.random_range(2..=7);
    let mut nodes: Vec<NodeSpec> = (0..n)
        .map(|i| NodeSpec {
            priority: rng.random_range(0..3) * 10,
            ..NodeSpec::new(i as u16 + 1, format!("n{}", i + 1))
        })
        .collect();
    let mut two_node = false;
    if n == 2 {
        if rng.random_bool(0.5) {
            two_node = true;
            nodes[0].fence_delay = Duration::from_millis(rng.random_range(0..3) * 500);
        } else {
            nodes.push(NodeSpec::witness(3, "w3"));
        }
    } else if rng.random_bool(0.3) {
        let w = nodes.len() - 1;
        nodes[w].witness = true;
    }
    (nodes, two_node)
}

fn random_policies(rng: &mut ChaCha8Rng) -> (FenceMode, NoQuorumPolicy) {
    let fencing = match rng.random_range(0..10) {
        0..=2 => FenceMode::Off,
        3..=6 => FenceMode::WhenNeeded,
        _ => FenceMode::Always,
    };
    let policy = match rng.random_range(0..20) {
        0..=15 => NoQuorumPolicy::Stop,
        16..=18 if fencing != FenceMode::Off => NoQuorumPolicy::Freeze,
        19 => NoQuorumPolicy::Ignore,
        _ => NoQuorumPolicy::Stop,
    };
    (fencing, policy)
}

/// One or two groups of one to three resources, timed in multiples of the deadtime.
fn random_groups(
    rng: &mut ChaCha8Rng,
    owners: &[NodeId],
    deadtime: Duration,
    fencing: FenceMode,
) -> Vec<GroupSpec> {
    let n_groups = rng.random_range(1..=2);
    (0..n_groups)
        .map(|gi| {
            let name = format!("g{gi}");
            let n_res = rng.random_range(1..=3);
            GroupSpec {
                id: GroupId::of_name(&name),
                name,
                prefer: rng
                    .random_bool(0.6)
                    .then(|| owners[rng.random_range(0..owners.len())]),
                nodes: None,
                failback: rng.random_bool(0.3),
                failback_delay: deadtime * 2,
                resources: (0..n_res).map(|r| format!("r{r}")).collect(),
                resources_revision: 0,
                monitor_interval: deadtime,
                migration_threshold: rng.random_range(1..=3),
                failure_timeout: deadtime * 20,
                on_fail: if fencing != FenceMode::Off && rng.random_bool(0.3) {
                    OnFail::Block
                } else {
                    OnFail::FenceSelf
                },
            }
        })
        .collect()
}

/// The random faults' rates (the lease guard's faults are drawn later, see below).
fn random_faults(rng: &mut ChaCha8Rng, deadtime: Duration, fence_always: bool) -> Faults {
    Faults {
        mean_gap: deadtime * rng.random_range(1..=4),
        crash: true,
        vm_pause: rng.random_bool(0.5),
        daemon_pause: fence_always && rng.random_bool(0.5),
        daemon_crash: false,
        hang: false,
        partition: true,
        link_cut: true,
        loss: if rng.random_bool(0.3) {
            rng.random_range(0.0..0.3)
        } else {
            0.0
        },
        duplicate: 0.02,
        delay_spike: 0.02,
        op_fail: if rng.random_bool(0.3) { 0.05 } else { 0.0 },
        op_hang: if rng.random_bool(0.2) { 0.03 } else { 0.0 },
        slow_stop: if rng.random_bool(0.3) { 0.1 } else { 0.0 },
        monitor_fail: if rng.random_bool(0.3) { 0.1 } else { 0.0 },
        fence_fail: if rng.random_bool(0.3) { 0.3 } else { 0.0 },
        fence_hang: if rng.random_bool(0.2) { 0.1 } else { 0.0 },
        disk_loss: 0.05,
        admin: rng.random_bool(0.3),
        unkillable: 0.0,
    }
}

/// The faults the lease guard answers for, drawn after everything else so that adding
/// them kept every older seed's cluster and faults as they were. Daemon pauses were
/// drawn above only where every takeover needs a fence (before the guard they were
/// unsafe elsewhere); now every mode gets them. A guard that cannot kill a resource
/// goes with operations that hang.
fn guard_faults(rng: &mut ChaCha8Rng, faults: &mut Faults, fence_always: bool) {
    if !fence_always {
        faults.daemon_pause = rng.random_bool(0.5);
    }
    faults.daemon_crash = rng.random_bool(0.5);
    if faults.op_hang > 0.0 {
        faults.unkillable = 0.2;
    }
}

/// One scenario in five has a watchdog (one to three deadtimes): voters then promise
/// longer and restarted nodes stay quiet longer. The reloads carry it too (a timing
/// change would be refused).
fn watchdog(
    rng: &mut ChaCha8Rng,
    spec: &mut ClusterSpec,
    script: &mut [(Duration, ScriptedFault)],
) {
    if !rng.random_bool(0.2) {
        return;
    }
    let timeout = spec.timing.deadtime * rng.random_range(1..=3);
    spec.timing.watchdog_timeout = Some(timeout);
    for (_, f) in script.iter_mut() {
        if let ScriptedFault::Reload(_, new) = f {
            new.timing.watchdog_timeout = Some(timeout);
        }
    }
}

/// One scenario in four (every one when `force`) has an external arbiter with a TTL
/// of one to one and a half deadtimes; a two-node cluster then counts on it instead of
/// `two_node` (the layout it exists for). Drawn last, so older seeds keep their
/// clusters; the reloads carry it too (a quorum change would be refused).
fn arbiter(
    rng: &mut ChaCha8Rng,
    spec: &mut ClusterSpec,
    script: &mut [(Duration, ScriptedFault)],
    force: bool,
) {
    if !force && !rng.random_bool(0.25) {
        return;
    }
    let deadtime = spec.timing.deadtime;
    let extra = rng.random_range(0..=deadtime.as_nanos() as u64 / 2);
    let ttl = deadtime + Duration::from_nanos(extra);
    let apply = |spec: &mut ClusterSpec| {
        spec.quorum.two_node = false;
        spec.quorum.arbiter = Some(ArbiterSpec { ttl });
    };
    apply(spec);
    for (_, f) in script.iter_mut() {
        if let ScriptedFault::Reload(_, new) = f {
            apply(new);
        }
    }
}

/// Sometimes (one scenario in four) an admin edits the config during the chaos and
/// reloads it node by node: a resource added, priorities changed, a group added or
/// removed. Drawn after everything else so that adding it kept every older seed's
/// cluster and faults as they were.
fn rolling_reload(
    rng: &mut ChaCha8Rng,
    spec: &ClusterSpec,
    chaos: Duration,
) -> Vec<(Duration, ScriptedFault)> {
    if !rng.random_bool(0.25) {
        return Vec::new();
    }
    let mut new = spec.clone();
    new.digest = spec.digest.wrapping_add(1);
    match rng.random_range(0..4) {
        0 => new.groups[0].resources.push("r-added".into()),
        1 => {
            for n in &mut new.nodes {
                n.priority = rng.random_range(0..3) * 10;
            }
        }
        2 => {
            let mut g = new.groups[0].clone();
            g.name = "g-added".into();
            g.id = GroupId::of_name(&g.name);
            new.groups.push(g);
        }
        _ => {
            if new.groups.len() > 1 {
                new.groups.remove(0);
            } else {
                new.groups[0].prefer = None;
            }
        }
    }
    let mut at = Duration::from_nanos(rng.random_range(0..chaos.as_nanos() as u64));
    let spread = spec.timing.deadtime;
    (0..spec.nodes.len())
        .map(|i| {
            at += Duration::from_nanos(rng.random_range(0..spread.as_nanos() as u64));
            (at, ScriptedFault::Reload(i, Box::new(new.clone())))
        })
        .collect()
}

/// Builds hand-written scenarios for the named unit tests.
pub struct ScenarioBuilder {
    scenario: Scenario,
}

impl ScenarioBuilder {
    /// `n` owner-capable nodes with one group `www` of one resource; 100 ms / 1 s timing;
    /// no random faults.
    pub fn new(n: usize) -> ScenarioBuilder {
        let nodes = (0..n)
            .map(|i| NodeSpec::new(i as u16 + 1, format!("n{}", i + 1)))
            .collect();
        let deadtime = Duration::from_secs(1);
        let spec = ClusterSpec {
            nodes,
            links: 1,
            // stop_before_lease_end: deadtime / 2 at this profile.
            timing: Timing::with_defaults(Duration::from_millis(100), deadtime),
            quorum: QuorumSpec::default(),
            fencing: FencingSpec {
                mode: FenceMode::Off,
                retry_interval: Duration::from_secs(2),
            },
            groups: vec![GroupSpec {
                id: GroupId::of_name("www"),
                name: "www".into(),
                prefer: None,
                nodes: None,
                failback: false,
                failback_delay: Duration::from_secs(2),
                resources: vec!["vip".into()],
                resources_revision: 0,
                monitor_interval: Duration::from_secs(1),
                migration_threshold: 3,
                failure_timeout: Duration::from_secs(600),
                on_fail: OnFail::FenceSelf,
            }],
            digest: 42,
        };
        ScenarioBuilder {
            scenario: Scenario {
                seed: 1,
                drift_ppm: vec![0; n],
                faults: Faults::none(),
                chaos: Duration::ZERO,
                heal: Duration::from_secs(30),
                settle: Duration::from_secs(5),
                bug: PlantedBug::None,
                script: Vec::new(),
                spec,
                coarse_wakes: false,
                owner_loss_after_heal: false,
            },
        }
    }

    pub fn witness(mut self, node: usize) -> Self {
        self.scenario.spec.nodes[node].witness = true;
        self
    }

    pub fn priority(mut self, node: usize, p: i32) -> Self {
        self.scenario.spec.nodes[node].priority = p;
        self
    }

    pub fn prefer(mut self, node: usize) -> Self {
        self.scenario.spec.groups[0].prefer = Some(NodeId(node as u16 + 1));
        self
    }

    pub fn failback(mut self, on: bool) -> Self {
        self.scenario.spec.groups[0].failback = on;
        self
    }

    pub fn two_node(mut self) -> Self {
        self.scenario.spec.quorum.two_node = true;
        self.scenario.spec.quorum.wait_for_all = true;
        self
    }

    pub fn fencing(mut self, mode: FenceMode) -> Self {
        self.scenario.spec.fencing.mode = mode;
        self
    }

    pub fn fence_delay(mut self, node: usize, d: Duration) -> Self {
        self.scenario.spec.nodes[node].fence_delay = d;
        self
    }

    pub fn failure_timeout(mut self, d: Duration) -> Self {
        self.scenario.spec.groups[0].failure_timeout = d;
        self
    }

    pub fn on_fail(mut self, f: OnFail) -> Self {
        self.scenario.spec.groups[0].on_fail = f;
        self
    }

    pub fn policy(mut self, p: NoQuorumPolicy) -> Self {
        self.scenario.spec.quorum.no_quorum_policy = p;
        self
    }

    pub fn seed(mut self, seed: u64) -> Self {
        self.scenario.seed = seed;
        self
    }

    /// Wake as the daemon does (see [`Scenario::coarse_wakes`]).
    pub fn coarse_wakes(mut self) -> Self {
        self.scenario.coarse_wakes = true;
        self
    }

    pub fn bug(mut self, bug: PlantedBug) -> Self {
        self.scenario.bug = bug;
        self
    }

    pub fn duration(mut self, total: Duration) -> Self {
        self.scenario.heal = total;
        self
    }

    pub fn at(mut self, at: Duration, fault: ScriptedFault) -> Self {
        self.scenario.script.push((at, fault));
        self
    }

    /// Heartbeat interval and deadtime, with the derived defaults of the config.
    pub fn timing(mut self, interval: Duration, deadtime: Duration) -> Self {
        let t = &mut self.scenario.spec.timing;
        t.interval = interval;
        t.deadtime = deadtime;
        t.warntime = deadtime / 2;
        t.initdead = deadtime * 2;
        t.stop_before_lease_end = Timing::default_stop_before_lease_end(interval, deadtime);
        self
    }

    /// An external arbiter with this TTL (instead of `two_node`).
    pub fn arbiter(mut self, ttl: Duration) -> Self {
        self.scenario.spec.quorum.two_node = false;
        self.scenario.spec.quorum.arbiter = Some(ArbiterSpec { ttl });
        self
    }

    pub fn watchdog(mut self, timeout: Duration) -> Self {
        self.scenario.spec.timing.watchdog_timeout = Some(timeout);
        self
    }

    pub fn faults(mut self, f: Faults) -> Self {
        self.scenario.faults = f;
        self
    }

    pub fn build(self) -> Scenario {
        let mut s = self.scenario;
        s.drift_ppm.resize(s.spec.nodes.len(), 0);
        s
    }
}
