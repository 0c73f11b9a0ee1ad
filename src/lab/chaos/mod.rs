//! `tandem-lab chaos`: a seeded fault storm against a real lab cluster, judged by an
//! independent observer. A schedule of faults (power loss, daemon crash, SIGSTOP, cut
//! link, isolation, partition, random loss, graceful restart) is drawn up front from the
//! seed ([`schedule`]), so a run can be replayed and discussed. While it plays
//! ([`runner`]), the client observer broadcasts an ARP request for the VIP every few ms
//! and records who answers: two MACs answering the same request is a dual-owner instant,
//! a stretch with no answer is downtime. At the end the daemons' typed log events give
//! each node's VIP intervals, which are cross-checked for overlaps ([`analysis`]). There
//! must be no dual owner at all, with fencing or with leases alone: a crashed or paused
//! worker is taken down by its lease guard before its lease ends (docs/design.md), so no
//! fault of the schedule excuses two owners.
//!
//! All times are CLOCK_REALTIME nanoseconds (the daemons log wall-clock times).

pub mod analysis;
pub mod report;
mod runner;
pub mod schedule;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub use analysis::{
    analyze, log_events, vip_intervals, DualWindow, LogEvent, LogOverlap, ObserverSummary, Outage,
    OwnerChange, VipInterval,
};
pub use report::{ChaosReport, InjectedFault, NodeEvent, SkippedFault};
pub use schedule::{schedule, FaultKind, PlannedFault, Target};

use super::experiment::{io_err, print_failure, ExperimentError};
use super::observe::client::{ClientObserver, Observation, Probe};
use super::observe::{mac_string, ms, realtime_ns};
use super::topology::{eth0_mac, group_yaml};
use super::{Lab, LabSpec, Ns};
use runner::Runner;

/// How often the observer asks who has the VIP.
pub const OBSERVE_PERIOD: Duration = Duration::from_millis(5);
/// How long after a node was found fenced (tandemd gone, links down) chaos "reboots" it.
const REBOOT_DELAY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct ChaosConfig {
    pub seed: u64,
    pub duration: Duration,
    pub nodes: usize,
    pub interval: Duration,
    pub deadtime: Duration,
    /// `fencing.policy: always` with fence_lab for every node; false: leases only.
    pub fencing: bool,
    pub tandemd: PathBuf,
    pub tandemctl: PathBuf,
    /// From start until the client first gets an answer for the VIP.
    pub form_timeout: Duration,
    /// After the last fault is healed: how long to wait for every node to run again and
    /// the VIP to answer.
    pub recover_timeout: Duration,
}

impl Default for ChaosConfig {
    fn default() -> Self {
        ChaosConfig {
            seed: 1,
            duration: Duration::from_secs(60),
            nodes: 3,
            interval: Duration::from_millis(100),
            deadtime: Duration::from_secs(1),
            fencing: true,
            tandemd: super::default_binary("tandemd"),
            tandemctl: super::default_binary("tandemctl"),
            form_timeout: Duration::from_secs(60),
            recover_timeout: Duration::from_secs(60),
        }
    }
}

/// A fault as it was carried out.
/// The fencing section: fence_lab for every node, `@NS<i>@` placeholders for the
/// namespace names (known only once the lab is built).
fn fencing_yaml(nodes: usize) -> String {
    let fence = Path::new(env!("CARGO_MANIFEST_DIR")).join("resources/fence_lab");
    let mut y = format!(
        "fencing:\n  policy: always\n  self_fence: {}\n  agents:\n",
        super::render::lab_self_fence().display()
    );
    for i in 1..=nodes {
        y.push_str(&format!(
            "    - name: lab-n{i}\n      agent: {}\n      params: {{ netns: \"@NS{i}@\" }}\n      nodes: [n{i}]\n",
            fence.display()
        ));
    }
    y
}

/// Runs a chaos session. Progress lines go to `out`; the lab is torn down on return,
/// also on error or interruption.
pub fn run(
    cfg: &ChaosConfig,
    stop: &AtomicBool,
    out: &mut dyn Write,
) -> Result<ChaosReport, ExperimentError> {
    if !(3..=5).contains(&cfg.nodes) {
        return Err(ExperimentError::Failed(format!(
            "--nodes must be 3..=5, got {}",
            cfg.nodes
        )));
    }
    let links = 2;
    let plan = schedule(cfg.seed, cfg.nodes, links, cfg.duration);
    let _ = writeln!(
        out,
        "chaos seed {}: {} faults over {:?} ({} nodes, {}):",
        cfg.seed,
        plan.len(),
        cfg.duration,
        cfg.nodes,
        if cfg.fencing {
            "fencing.policy always"
        } else {
            "no fencing"
        }
    );
    for p in &plan {
        let _ = writeln!(out, "  #{:<3} {}", p.index, p.describe());
    }
    let mut extra = group_yaml();
    if cfg.fencing {
        extra.push_str(&fencing_yaml(cfg.nodes));
    }
    let spec = LabSpec {
        nodes: cfg.nodes,
        witnesses: Vec::new(),
        links,
        absent_links: Vec::new(),
        ipv6: false,
        interval: cfg.interval,
        deadtime: cfg.deadtime,
        extra_yaml: extra,
        tandemd: cfg.tandemd.clone(),
        tandemctl: cfg.tandemctl.clone(),
    };
    let mut lab = Lab::build(spec)?;
    for node in 1..=cfg.nodes {
        let path = lab.config_path(node);
        let mut config = std::fs::read_to_string(&path)
            .map_err(io_err(format!("reading {}", path.display())))?;
        for i in 1..=cfg.nodes {
            config = config.replace(&format!("@NS{i}@"), &lab.ns_name(Ns::Node(i))?);
        }
        std::fs::write(&path, config).map_err(io_err(format!("writing {}", path.display())))?;
    }
    crate::config::load(&lab.config_path(1))
        .map_err(|e| ExperimentError::Failed(format!("the lab config is refused: {e}")))?;
    let result = session(cfg, &plan, &mut lab, stop, out);
    if let Err(e) = &result {
        if !matches!(e, ExperimentError::Interrupted) {
            print_failure(out, &lab, &format!("chaos failed: {e}"));
        }
    }
    lab.teardown();
    result
}

/// Node MACs: MAC -> index, node name -> MAC text, MAC -> node name.
type Macs = (
    BTreeMap<[u8; 6], usize>,
    BTreeMap<String, String>,
    BTreeMap<[u8; 6], String>,
);

fn node_macs(cfg: &ChaosConfig, lab: &Lab) -> Result<Macs, ExperimentError> {
    let mut macs = BTreeMap::new();
    let mut node_macs = BTreeMap::new();
    for n in 1..=cfg.nodes {
        let mac = eth0_mac(lab, Ns::Node(n))?;
        macs.insert(mac, n);
        node_macs.insert(lab.node_name(n), mac_string(&mac));
    }
    let mac_names = macs.iter().map(|(m, &n)| (*m, lab.node_name(n))).collect();
    Ok((macs, node_macs, mac_names))
}

/// Waits until the client first gets an answer for the VIP.
fn wait_for_vip(
    cfg: &ChaosConfig,
    stop: &AtomicBool,
    observer: &ClientObserver,
) -> Result<(), ExperimentError> {
    let formed = Instant::now();
    while observer
        .last_arp_reply(Duration::from_millis(100))
        .is_none()
    {
        if stop.load(Ordering::Relaxed) {
            return Err(ExperimentError::Interrupted);
        }
        if formed.elapsed() > cfg.form_timeout {
            return Err(ExperimentError::Failed(format!(
                "no answer for the VIP within {:?} of start",
                cfg.form_timeout
            )));
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

fn session(
    cfg: &ChaosConfig,
    plan: &[PlannedFault],
    lab: &mut Lab,
    stop: &AtomicBool,
    out: &mut dyn Write,
) -> Result<ChaosReport, ExperimentError> {
    let (macs, node_macs, mac_names) = node_macs(cfg, lab)?;
    // Declared after the lab borrow: dropped (thread joined) before the lab goes.
    let observer = ClientObserver::start(
        lab,
        Probe::WhoHas {
            every: OBSERVE_PERIOD,
        },
    )?;
    lab.start_all()?;
    let _ = writeln!(
        out,
        "lab {} up; waiting for the VIP to answer ...",
        lab.prefix()
    );
    wait_for_vip(cfg, stop, &observer)?;
    let mut runner = Runner::new(cfg, stop, out, macs);
    runner.say("chaos begins");
    let played = runner
        .play(lab, plan, &observer)
        .and_then(|()| runner.wind_down(lab, &observer));
    let failure = match played {
        Ok(()) => None,
        Err(ExperimentError::Interrupted) => return Err(ExperimentError::Interrupted),
        Err(e) => Some(e.to_string()),
    };
    if failure.is_none() {
        // A little steady state after recovery, to see any late second owner.
        runner.say("all healed; observing the steady state");
        runner.sleep(Duration::from_secs(2))?;
    }
    let obs = observer.finish();
    let mut report = judge(cfg, plan, lab, runner, &obs, &mac_names);
    report.node_macs = node_macs;
    report.failure = failure;
    Ok(report)
}

/// The report of a finished run: the observation analysed, every dual-owner window
/// failing it (with its faults as context), the logs' VIP intervals and overlaps.
fn judge(
    cfg: &ChaosConfig,
    plan: &[PlannedFault],
    lab: &Lab,
    runner: Runner,
    obs: &Observation,
    mac_names: &BTreeMap<[u8; 6], String>,
) -> ChaosReport {
    let end_ns = realtime_ns();
    let mut summary = analyze(obs, mac_names);
    let mut failing = 0;
    for w in &mut summary.dual_windows {
        w.faults_active =
            analysis::faults_around(&runner.injected, &w.nodes, w.start_ns, w.end_ns, end_ns);
        failing += 1;
    }
    let mut events = Vec::new();
    for n in 1..=cfg.nodes {
        events.extend(log_events(&lab.node_name(n), &lab.logs(n)));
    }
    events.sort_by_key(|e| e.at_ns);
    let (intervals, overlaps) = vip_intervals(&events, &runner.power_offs, end_ns);
    let mut by_kind = BTreeMap::new();
    for f in &runner.injected {
        *by_kind.entry(f.kind.name().to_string()).or_insert(0) += 1;
    }
    ChaosReport {
        seed: cfg.seed,
        nodes: cfg.nodes,
        duration_s: cfg.duration.as_secs_f64(),
        interval_ms: ms(cfg.interval),
        deadtime_ms: ms(cfg.deadtime),
        fencing: cfg.fencing,
        observe_period_ms: ms(OBSERVE_PERIOD),
        start_ns: runner.start_ns,
        end_ns,
        node_macs: BTreeMap::new(),
        schedule: plan.to_vec(),
        injected: runner.injected,
        skipped: runner.skipped,
        faults_by_kind: by_kind,
        node_events: runner.node_events,
        observer: summary,
        log_events: events,
        vip_intervals: intervals,
        log_overlaps: overlaps,
        failing_dual_windows: failing,
        failure: None,
    }
}
