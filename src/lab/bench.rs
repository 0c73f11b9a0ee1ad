//! `tandem-lab bench failover`: measures how long a VIP is unreachable when its owner
//! fails, as a client sees it. A 3-node lab (n1, n2 may own group `www`, n3 is a witness)
//! runs the real daemons; the client observer sends an ICMP echo to the VIP every 2 ms
//! through the kernel's normal stack (so the client's ARP cache decides which MAC gets
//! it, as for a real client) and sees the replies with the answering MAC. The address
//! watcher timestamps the moment the VIP appears on an interface. Each run injects one
//! fault on the owner, and the daemons' typed log events (same wall clock) say where the
//! time went.
//!
//! All times are CLOCK_REALTIME nanoseconds, because the daemons log wall-clock times.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde::Serialize;

use super::experiment::{print_failure, Ctx, ExperimentError};
use super::observe::addr::AddrWatch;
use super::observe::client::{ClientObserver, Probe, Seen, Sighting};
use super::observe::events::{records, records_since, LogRecord, VipChange, CANDIDATE, LEASE_WAIT};
use super::observe::status::stable_owner;
use super::observe::{mac_string, ms, ns_to_ms, realtime_ns};
use super::topology::{eth0_mac, groups_yaml, scaled, GROUP, VIP};
use super::{Lab, Ns};
use crate::core::EventKind;

/// How often the client probes the VIP (by default).
pub const PROBE_PERIOD: Duration = Duration::from_millis(2);
/// What happens to the owner in each run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// Every link cut at one instant, then SIGKILL of tandemd and the links down: a
    /// power loss (`Lab::power_off`).
    PowerLoss,
    /// SIGTERM: the owner stops its resources and hands the group over.
    Graceful,
    /// `tandemctl move www OTHER`: a controlled switchover, nothing dies.
    Switchover,
    /// The owner's service cable is pulled: its eth0 (the VIP's interface, heartbeat
    /// link 0) loses carrier while heartbeat link 1 stays up and the daemon runs on.
    LinkLoss,
}

impl Fault {
    pub fn describe(self) -> &'static str {
        match self {
            Fault::PowerLoss => {
                "power loss (all links cut at once, then kill -9 of tandemd + links down)"
            }
            Fault::Graceful => "graceful stop (SIGTERM of tandemd)",
            Fault::Switchover => "switchover (tandemctl move)",
            Fault::LinkLoss => "service cable pulled (owner's eth0 loses carrier, link 1 up)",
        }
    }
}

#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub runs: usize,
    pub interval: Duration,
    pub deadtime: Duration,
    pub fault: Fault,
    /// Nodes in the lab: n1 and n2 may own, the others are witnesses (3: the usual lab).
    pub nodes: usize,
    /// Groups: `www` plus `groups - 1` no-op groups (1: the usual lab).
    pub groups: usize,
    /// How often the client probes the VIP.
    pub probe_period: Duration,
    pub tandemd: PathBuf,
    pub tandemctl: PathBuf,
    /// From the fault until the client must have a reply from the new owner.
    pub run_timeout: Duration,
    /// From start / restart until the cluster is stable again.
    pub settle_timeout: Duration,
}

impl Default for BenchConfig {
    fn default() -> Self {
        BenchConfig {
            runs: 10,
            interval: Duration::from_millis(100),
            deadtime: Duration::from_secs(1),
            fault: Fault::PowerLoss,
            nodes: 3,
            groups: 1,
            probe_period: PROBE_PERIOD,
            tandemd: super::default_binary("tandemd"),
            tandemctl: super::default_binary("tandemctl"),
            run_timeout: Duration::from_secs(30),
            settle_timeout: Duration::from_secs(60),
        }
    }
}

/// Milestones of one run, in ms after the fault (None: not seen).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Breakdown {
    /// Survivor logs the old owner's `node-down` (power loss only; a graceful stop says goodbye).
    pub detected_ms: Option<f64>,
    /// Survivor logs a `lease-wait` decision: its `wait_ms`, the time it had to wait.
    pub lease_wait_reported_ms: Option<f64>,
    /// Survivor logs a `candidate` decision: it asks the quorum.
    pub candidate_ms: Option<f64>,
    /// Survivor logs `became-owner` (quorum granted the term).
    pub became_owner_ms: Option<f64>,
    /// Old owner logs `vip = removed` for the VIP (graceful stop, switchover).
    pub old_vip_removed_ms: Option<f64>,
    /// Survivor logs `vip = added` for the VIP.
    pub vip_added_log_ms: Option<f64>,
    /// Survivor logs `group-started`.
    pub group_started_ms: Option<f64>,
    /// First gratuitous ARP for the VIP from the survivor's MAC seen by the client.
    pub first_garp_ms: Option<f64>,
    /// First echo reply from the survivor's MAC.
    pub first_new_reply_ms: Option<f64>,
}

/// One run.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub run: usize,
    pub victim: String,
    pub survivor: String,
    pub old_mac: String,
    pub new_mac: String,
    /// Wall clock of the fault, ns since the epoch.
    pub fault_unix_ns: i64,
    /// (a) fault -> the VIP is on the survivor's interface (netlink RTM_NEWADDR).
    pub vip_on_survivor_ms: Option<f64>,
    /// (b) last echo reply from the old MAC -> first from the new MAC.
    pub client_gap_ms: Option<f64>,
    /// Fault -> first echo reply from the new MAC.
    pub fault_to_new_reply_ms: Option<f64>,
    /// Last reply from the old MAC, ms after the fault (negative: before it).
    pub last_old_reply_ms: Option<f64>,
    /// Replies from any other MAC than the survivor's after the first new reply (should be 0).
    pub stray_replies_after: usize,
    pub breakdown: Breakdown,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stats {
    pub n: usize,
    pub min: f64,
    pub median: f64,
    pub p95: f64,
    pub max: f64,
}

/// min / median / p95 (nearest rank) / max; None for no values.
pub fn stats(values: &[f64]) -> Option<Stats> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let rank = |p: f64| v[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Stats {
        n,
        min: v[0],
        median,
        p95: rank(0.95),
        max: v[n - 1],
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub fault: Fault,
    pub nodes: usize,
    pub groups: usize,
    pub runs_requested: usize,
    pub interval_ms: f64,
    pub deadtime_ms: f64,
    pub probe_period_ms: f64,
    pub vip_on_survivor: Option<Stats>,
    pub client_gap: Option<Stats>,
    pub fault_to_new_reply: Option<Stats>,
    /// Attempts dropped because the group moved (or two MACs answered) while the
    /// cluster was meant to be settled before the fault: false failovers.
    pub unstable_before_fault: Vec<String>,
    /// Why the bench stopped before `runs_requested` samples (the samples so far are kept).
    pub aborted: Option<String>,
    pub samples: Vec<Sample>,
}

impl BenchReport {
    fn from_samples(cfg: &BenchConfig, samples: Vec<Sample>) -> Self {
        let col =
            |f: fn(&Sample) -> Option<f64>| -> Vec<f64> { samples.iter().filter_map(f).collect() };
        BenchReport {
            fault: cfg.fault,
            nodes: cfg.nodes,
            groups: cfg.groups,
            runs_requested: cfg.runs,
            interval_ms: ms(cfg.interval),
            deadtime_ms: ms(cfg.deadtime),
            probe_period_ms: ms(cfg.probe_period),
            vip_on_survivor: stats(&col(|s| s.vip_on_survivor_ms)),
            client_gap: stats(&col(|s| s.client_gap_ms)),
            fault_to_new_reply: stats(&col(|s| s.fault_to_new_reply_ms)),
            unstable_before_fault: Vec::new(),
            aborted: None,
            samples,
        }
    }

    /// The human-readable tables.
    pub fn render(&self) -> String {
        let mut s = format!(
            "{} runs, {}; {} nodes, {} group(s); heartbeat interval {} ms, deadtime {} ms; \
             probe every {} ms\n",
            self.samples.len(),
            self.fault.describe(),
            self.nodes,
            self.groups,
            self.interval_ms,
            self.deadtime_ms,
            self.probe_period_ms
        );
        s.push_str(&format!(
            "  {:<46} {:>3} {:>8} {:>8} {:>8} {:>8}\n",
            "ms", "n", "min", "median", "p95", "max"
        ));
        let rows: [(&str, Option<Stats>); 3] = [
            ("(a) fault -> VIP on survivor's eth0", self.vip_on_survivor),
            (
                "(b) client gap: last old-MAC -> first new-MAC",
                self.client_gap,
            ),
            (
                "    fault -> first reply from new MAC",
                self.fault_to_new_reply,
            ),
        ];
        for (name, st) in rows {
            push_row(&mut s, name, st);
        }
        if let Some(why) = &self.aborted {
            s.push_str(&format!(
                "  ABORTED after {} run(s): {why}\n",
                self.samples.len()
            ));
        }
        if !self.unstable_before_fault.is_empty() {
            s.push_str(&format!(
                "  {} attempt(s) redone: the group moved or two MACs answered while settling\n",
                self.unstable_before_fault.len()
            ));
        }
        s.push_str("where the time goes (from the daemons' log timestamps, ms after the fault):\n");
        for (name, column) in BREAKDOWN_ROWS {
            let values: Vec<f64> = self
                .samples
                .iter()
                .filter_map(|x| column(&x.breakdown))
                .collect();
            push_row(&mut s, name, stats(&values));
        }
        s
    }
}

/// One milestone of a breakdown.
type Column = fn(&Breakdown) -> Option<f64>;

/// The rows of the "where the time goes" table, in order.
const BREAKDOWN_ROWS: [(&str, Column); 9] = [
    ("survivor: old owner node-down", |b| b.detected_ms),
    ("survivor: lease wait it reported (duration)", |b| {
        b.lease_wait_reported_ms
    }),
    ("survivor: candidate for term", |b| b.candidate_ms),
    ("survivor: became-owner (quorum grant)", |b| {
        b.became_owner_ms
    }),
    ("old owner: vip removed", |b| b.old_vip_removed_ms),
    ("survivor: vip added", |b| b.vip_added_log_ms),
    ("survivor: group-started", |b| b.group_started_ms),
    ("client: first gratuitous ARP from new MAC", |b| {
        b.first_garp_ms
    }),
    ("client: first echo reply from new MAC", |b| {
        b.first_new_reply_ms
    }),
];

fn push_row(s: &mut String, name: &str, st: Option<Stats>) {
    match st {
        Some(x) => s.push_str(&format!(
            "  {name:<46} {:>3} {:>8.1} {:>8.1} {:>8.1} {:>8.1}\n",
            x.n, x.min, x.median, x.p95, x.max
        )),
        None => s.push_str(&format!(
            "  {name:<46}   0        -        -        -        -\n"
        )),
    }
}

/// Fills the log-based part of a breakdown from the survivor's and the victim's log
/// records (their typed fields only).
pub fn breakdown_from_logs(
    survivor_log: &str,
    victim_log: &str,
    victim: &str,
    fault_ns: i64,
) -> Breakdown {
    let sl = records_since(survivor_log, fault_ns);
    let vl = records_since(victim_log, fault_ns);
    let first = |lines: &[LogRecord], pred: &dyn Fn(&LogRecord) -> bool| {
        lines
            .iter()
            .find(|r| pred(r))
            .map(|r| ns_to_ms(r.at_ns - fault_ns))
    };
    let vip = std::net::IpAddr::V4(VIP);
    Breakdown {
        detected_ms: first(&sl, &|r| r.is(EventKind::NodeDown) && r.node == victim),
        lease_wait_reported_ms: sl
            .iter()
            .find(|r| r.has_decision(LEASE_WAIT))
            .and_then(|r| r.wait_ms),
        candidate_ms: first(&sl, &|r| r.has_decision(CANDIDATE) && r.group == GROUP),
        became_owner_ms: first(&sl, &|r| r.is_for_group(EventKind::BecameOwner, GROUP)),
        old_vip_removed_ms: first(&vl, &|r| r.vip_change(vip) == Some(VipChange::Removed)),
        vip_added_log_ms: first(&sl, &|r| r.vip_change(vip) == Some(VipChange::Added)),
        group_started_ms: first(&sl, &|r| r.is_for_group(EventKind::GroupStarted, GROUP)),
        first_garp_ms: None,
        first_new_reply_ms: None,
    }
}

// ----- the run --------------------------------------------------------------------------

/// Runs the whole benchmark. Progress lines go to `out`; the lab is torn down on return.
pub fn run(
    cfg: &BenchConfig,
    stop: &AtomicBool,
    out: &mut dyn Write,
) -> Result<BenchReport, ExperimentError> {
    if cfg.runs == 0 {
        return Err(ExperimentError::Failed("--runs must be at least 1".into()));
    }
    let spec = scaled(
        cfg.nodes,
        cfg.interval,
        cfg.deadtime,
        groups_yaml(cfg.groups),
        &cfg.tandemd,
        &cfg.tandemctl,
    );
    let mut lab = Lab::build(spec)?;
    crate::config::load(&lab.config_path(1))
        .map_err(|e| ExperimentError::Failed(format!("the lab config is refused: {e}")))?;
    let mut ctx = Ctx { stop, out };
    let result = on_lab(cfg, &mut lab, &mut ctx);
    if matches!(result, Err(ref e) if !matches!(e, ExperimentError::Interrupted)) {
        print_failure(ctx.out, &lab, "bench failed");
    }
    lab.teardown();
    result
}

/// What the bench watches: the client's view and the owners' addresses.
struct Probes {
    client: ClientObserver,
    addr: AddrWatch,
    /// eth0 MACs of n1 and n2.
    macs: [[u8; 6]; 2],
}

/// The bench on a lab that is built but whose daemons are not started yet (`run`, and
/// `vs-keepalived` after its keepalived half). The lab's config must have group `www`.
pub(crate) fn on_lab(
    cfg: &BenchConfig,
    lab: &mut Lab,
    ctx: &mut Ctx,
) -> Result<BenchReport, ExperimentError> {
    let macs = [eth0_mac(lab, Ns::Node(1))?, eth0_mac(lab, Ns::Node(2))?];
    let probes = Probes {
        client: ClientObserver::start(
            lab,
            Probe::Echo {
                every: cfg.probe_period,
            },
        )?,
        addr: AddrWatch::start(&[
            (1, lab.ns_name(Ns::Node(1))?),
            (2, lab.ns_name(Ns::Node(2))?),
        ])?,
        macs,
    };
    lab.start_all()?;
    let _ = writeln!(
        ctx.out,
        "lab {} up: n1 {} , n2 {}, n3 witness; waiting for the cluster to form ...",
        lab.prefix(),
        mac_string(&macs[0]),
        mac_string(&macs[1])
    );
    let mut samples = Vec::new();
    let mut unstable = Vec::new();
    let outcome = run_loop(cfg, lab, ctx, &probes, &mut samples, &mut unstable);
    drop(probes);
    let aborted = match outcome {
        Ok(()) => None,
        Err(ExperimentError::Interrupted) => return Err(ExperimentError::Interrupted),
        Err(e) if samples.is_empty() => return Err(e),
        Err(e) => Some(e.to_string()),
    };
    let mut report = BenchReport::from_samples(cfg, samples);
    report.unstable_before_fault = unstable;
    report.aborted = aborted;
    Ok(report)
}

/// A run ready for its fault: who fails, who takes over, and what the client saw in
/// the last 20 ms before.
struct Armed {
    victim: usize,
    survivor: usize,
    old_mac: [u8; 6],
    new_mac: [u8; 6],
    pre: Vec<Sighting>,
}

fn run_loop(
    cfg: &BenchConfig,
    lab: &mut Lab,
    ctx: &mut Ctx,
    probes: &Probes,
    samples: &mut Vec<Sample>,
    unstable: &mut Vec<String>,
) -> Result<(), ExperimentError> {
    let mut attempt = 0;
    while samples.len() < cfg.runs {
        attempt += 1;
        let Some(armed) = arm(cfg, lab, ctx, probes, attempt, unstable)? else {
            continue;
        };
        let victim = armed.victim;
        ctx.sleep(random_phase(cfg.interval))?;
        let fault_ns = realtime_ns();
        inject(cfg.fault, lab, victim, armed.survivor)?;
        let sample = measure(cfg, lab, ctx, probes, armed, fault_ns, samples.len() + 1)?;
        print_sample(ctx, cfg, &sample);
        samples.push(sample);
        bring_back(cfg.fault, lab, victim)?;
    }
    Ok(())
}

/// A delay in [0, `interval`) before a fault. A power loss strikes at any point of the
/// heartbeat cycle, and the floor of a takeover (a promise ends `deadtime` after the last
/// heartbeat heard) depends on that point; without it the fault would come a fixed time
/// after the settle, which heartbeats and the bench's polls pace, so runs could cluster
/// at one phase and bias the median by up to an interval.
pub(crate) fn random_phase(interval: Duration) -> Duration {
    let ns = u64::try_from(interval.as_nanos())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_nanos(rand::random_range(0..ns))
}

/// Waits for a stable cluster whose owner answers the client alone. None: the group
/// moved (or two MACs answered) while settling; the attempt is recorded in `unstable`
/// and redone.
fn arm(
    cfg: &BenchConfig,
    lab: &mut Lab,
    ctx: &mut Ctx,
    probes: &Probes,
    attempt: usize,
    unstable: &mut Vec<String>,
) -> Result<Option<Armed>, ExperimentError> {
    let owner = wait_stable_owner(cfg, lab, ctx)?;
    let victim = match owner.as_str() {
        "n1" => 1,
        "n2" => 2,
        o => {
            return Err(ExperimentError::Failed(format!(
                "www runs on {o}, not n1/n2"
            )))
        }
    };
    let survivor = 3 - victim;
    let (old_mac, new_mac) = (probes.macs[victim - 1], probes.macs[survivor - 1]);
    // Steady state: the client gets replies from the owner.
    ctx.wait(
        "client getting replies from the owner",
        cfg.settle_timeout,
        Duration::from_millis(20),
        || {
            let seen = probes.client.take();
            Ok(seen
                .iter()
                .any(|o| o.seen == Seen::EchoReply { mac: old_mac })
                .then_some(()))
        },
    )?;
    ctx.sleep((cfg.deadtime * 2).max(Duration::from_millis(500)))?;
    let still = stable_owner(lab, GROUP);
    probes.client.take();
    probes.addr.take();
    // Some steady-state replies in this run's record, so the last one from the old
    // owner before the fault is in it.
    ctx.sleep(Duration::from_millis(20))?;
    let pre = probes.client.take();
    // The group must not have moved (or be answered from two MACs) while settling:
    // a sample taken then would measure nothing. Such runs are counted and redone.
    let only_owner = pre
        .iter()
        .any(|o| o.seen == Seen::EchoReply { mac: old_mac })
        && pre.iter().all(|o| o.seen.mac() == old_mac);
    if still.as_deref() == Some(owner.as_str()) && only_owner {
        return Ok(Some(Armed {
            victim,
            survivor,
            old_mac,
            new_mac,
            pre,
        }));
    }
    let why = format!(
        "attempt {attempt}: not stable before the fault (owner was {owner}, now {still:?}; \
         client saw {} other-MAC frames in the last 20 ms)",
        pre.iter().filter(|o| o.seen.mac() != old_mac).count()
    );
    let _ = writeln!(ctx.out, "{why}; redoing the run");
    unstable.push(why);
    if unstable.len() > cfg.runs * 3 {
        return Err(ExperimentError::Failed(format!(
            "the cluster never stayed stable long enough: {unstable:?}"
        )));
    }
    Ok(None)
}

/// Every node running, online, quorate, agreeing on www's owner.
fn wait_stable_owner(
    cfg: &BenchConfig,
    lab: &mut Lab,
    ctx: &mut Ctx,
) -> Result<String, ExperimentError> {
    ctx.wait(
        "cluster stable (all online, quorate, www running)",
        cfg.settle_timeout,
        Duration::from_millis(50),
        || {
            for n in 1..=lab.node_count() {
                if !lab.is_running(n) {
                    let exit = lab.last_exit(n).map(|e| e.to_string()).unwrap_or_default();
                    let fenced = records(&lab.logs(n)).any(|r| r.is_self_fence());
                    return Err(ExperimentError::Failed(format!(
                        "tandemd on n{n} is gone ({exit}){}",
                        if fenced {
                            "; it self-fenced (see its log)"
                        } else {
                            ""
                        }
                    )));
                }
            }
            Ok(stable_owner(lab, GROUP))
        },
    )
}

fn inject(
    fault: Fault,
    lab: &mut Lab,
    victim: usize,
    survivor: usize,
) -> Result<(), ExperimentError> {
    match fault {
        // One atomic cut of every link first (a dead machine's kernel no longer
        // answers, whereas a killed daemon's would reject heartbeats and answer the
        // client), then the kill and the links down.
        Fault::PowerLoss => lab.power_off(victim)?,
        Fault::Graceful => lab.terminate(victim)?,
        Fault::LinkLoss => lab.pull_cable(victim, 0)?,
        Fault::Switchover => {
            let o = lab.tandemctl(survivor, &["move", GROUP, &lab.node_name(survivor)]);
            if !o.status.success() {
                return Err(ExperimentError::Failed(format!(
                    "tandemctl move failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                )));
            }
        }
    }
    Ok(())
}

/// Waits for the survivor to answer the client, then puts the run's numbers together.
fn measure(
    cfg: &BenchConfig,
    lab: &Lab,
    ctx: &mut Ctx,
    probes: &Probes,
    armed: Armed,
    fault_ns: i64,
    run: usize,
) -> Result<Sample, ExperimentError> {
    let new_reply = Seen::EchoReply { mac: armed.new_mac };
    let mut seen = armed.pre;
    ctx.wait(
        "client getting replies from the survivor",
        cfg.run_timeout,
        Duration::from_millis(10),
        || {
            seen.extend(probes.client.take());
            Ok(seen
                .iter()
                .any(|o| o.at_ns >= fault_ns && o.seen == new_reply)
                .then_some(()))
        },
    )?;
    // A little more, to see stray replies from the old MAC (there must be none).
    ctx.sleep(Duration::from_millis(100))?;
    seen.extend(probes.client.take());
    let vip_at = probes
        .addr
        .take()
        .iter()
        .find(|e| e.node == armed.survivor && e.added)
        .map(|e| e.at_ns);
    let breakdown = breakdown_from_logs(
        &lab.logs(armed.survivor),
        &lab.logs(armed.victim),
        &lab.node_name(armed.victim),
        fault_ns,
    );
    let mut sample = client_sample(&seen, armed.old_mac, armed.new_mac, fault_ns, breakdown);
    sample.run = run;
    sample.victim = lab.node_name(armed.victim);
    sample.survivor = lab.node_name(armed.survivor);
    sample.vip_on_survivor_ms = vip_at.map(|t| ns_to_ms(t - fault_ns));
    Ok(sample)
}

/// The client's side of a sample: the gap between the MACs, stray replies, the first
/// gratuitous ARP and reply from the new MAC.
pub(crate) fn client_sample(
    seen: &[Sighting],
    old_mac: [u8; 6],
    new_mac: [u8; 6],
    fault_ns: i64,
    mut breakdown: Breakdown,
) -> Sample {
    let rel = |t: i64| ns_to_ms(t - fault_ns);
    let first_new = seen
        .iter()
        .find(|o| o.at_ns >= fault_ns && o.seen == Seen::EchoReply { mac: new_mac })
        .map(|o| o.at_ns);
    let last_old = first_new.and_then(|f| {
        seen.iter()
            .filter(|o| o.at_ns <= f && o.seen == Seen::EchoReply { mac: old_mac })
            .map(|o| o.at_ns)
            .next_back()
    });
    // Only if the owner did not answer in the 20 ms before the fault: count from it.
    let last_old_or_fault = last_old.unwrap_or(fault_ns);
    let stray = first_new.map_or(0, |f| {
        seen.iter()
            .filter(|o| o.at_ns > f && matches!(o.seen, Seen::EchoReply { mac } if mac != new_mac))
            .count()
    });
    breakdown.first_garp_ms = seen
        .iter()
        .find(|o| o.at_ns >= fault_ns && o.seen.is_arp() && o.seen.mac() == new_mac)
        .map(|o| rel(o.at_ns));
    breakdown.first_new_reply_ms = first_new.map(rel);
    Sample {
        run: 0,
        victim: String::new(),
        survivor: String::new(),
        old_mac: mac_string(&old_mac),
        new_mac: mac_string(&new_mac),
        fault_unix_ns: fault_ns,
        vip_on_survivor_ms: None,
        client_gap_ms: first_new.map(|f| ns_to_ms(f - last_old_or_fault)),
        fault_to_new_reply_ms: first_new.map(rel),
        last_old_reply_ms: last_old.map(rel),
        stray_replies_after: stray,
        breakdown,
    }
}

fn print_sample(ctx: &mut Ctx, cfg: &BenchConfig, sample: &Sample) {
    let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.1}"));
    let _ = writeln!(
        ctx.out,
        "run {:>3}/{}: {} -> {}: VIP on survivor {} ms, client gap {} ms (detect {}, owner {}, vip {}, garp {})",
        sample.run,
        cfg.runs,
        sample.victim,
        sample.survivor,
        f(sample.vip_on_survivor_ms),
        f(sample.client_gap_ms),
        f(sample.breakdown.detected_ms),
        f(sample.breakdown.became_owner_ms),
        f(sample.breakdown.vip_added_log_ms),
        f(sample.breakdown.first_garp_ms),
    );
}

/// Brings the victim back (a power loss also loses its addresses: the reboot).
fn bring_back(fault: Fault, lab: &mut Lab, victim: usize) -> Result<(), ExperimentError> {
    match fault {
        Fault::PowerLoss => lab.power_on(victim)?,
        Fault::Graceful => lab.start(victim)?,
        Fault::Switchover => {}
        Fault::LinkLoss => {
            lab.plug_cable(victim, 0)?;
            // The victim's `vip` failed: clear its failure so that it may take the group
            // back in the next run (the victim alternates).
            let o = lab.tandemctl(victim, &["cleanup", GROUP]);
            if !o.status.success() {
                return Err(ExperimentError::Failed(format!(
                    "tandemctl cleanup {GROUP} on n{victim} failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::observe::events::tests::line;

    #[test]
    fn stats_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        let s = stats(&v).unwrap();
        assert_eq!(
            (s.n, s.min, s.median, s.p95, s.max),
            (20, 1.0, 10.5, 19.0, 20.0)
        );
        let s = stats(&[3.0]).unwrap();
        assert_eq!((s.median, s.p95), (3.0, 3.0));
        assert!(stats(&[]).is_none());
    }

    /// A survivor's and a victim's log around a failover, each message produced by
    /// `say` (so a test can reword them all).
    pub(crate) fn failover_logs(say: impl Fn(&str) -> String) -> (String, String) {
        let survivor = [
            line("2026-11-23T11:37:35.246478Z", r#""kind":"node-down","node":"n1","group":"","term":0,"decision":"""#, &say("n1 is down")),
            line("2026-11-23T11:37:35.267615Z", r#""kind":"decision","node":"n2","group":"www","term":2,"decision":"lease-wait","wait_ms":728.0"#, &say("waiting for lease of n1 to expire (728 ms)")),
            line("2026-11-23T11:37:35.996000Z", r#""kind":"decision","node":"n2","group":"www","term":2,"decision":"candidate""#, &say("candidate for term 2: 1 of 2 votes granted")),
            line("2026-11-23T11:37:36.060007Z", r#""kind":"became-owner","node":"n2","group":"www","term":2,"decision":"""#, &say("granted term 2 by a quorum (2 of 2 votes)")),
            line("2026-11-23T11:37:36.060264Z", r#""resource":"vip","vip":"added","address":"192.0.2.100","dev":"eth0""#, &say("vip: added 192.0.2.100/24 to eth0")),
            line("2026-11-23T11:37:36.070000Z", r#""kind":"group-started","node":"n2","group":"www","term":2,"decision":"""#, &say("www started")),
        ]
        .join("\n");
        let victim = line(
            "2026-11-23T11:37:35.500000Z",
            r#""resource":"vip","vip":"removed","address":"192.0.2.100","dev":"eth0""#,
            &say("vip: removed 192.0.2.100 from eth0"),
        );
        (survivor, victim)
    }

    /// 2026-11-23T11:37:35.060007Z: a second before the survivor became owner.
    const FAULT_NS: i64 = 1_795_433_855_060_007_000;

    #[test]
    fn breakdown_from_typed_events() {
        let (survivor, victim) = failover_logs(str::to_string);
        let b = breakdown_from_logs(&survivor, &victim, "n1", FAULT_NS);
        assert!((b.detected_ms.unwrap() - 186.471).abs() < 0.01, "{b:?}");
        assert_eq!(b.lease_wait_reported_ms, Some(728.0));
        assert!((b.candidate_ms.unwrap() - 935.993).abs() < 0.01, "{b:?}");
        assert!((b.became_owner_ms.unwrap() - 1000.0).abs() < 0.01);
        assert!(
            (b.old_vip_removed_ms.unwrap() - 439.993).abs() < 0.01,
            "{b:?}"
        );
        assert!((b.vip_added_log_ms.unwrap() - 1000.257).abs() < 0.01);
        assert!((b.group_started_ms.unwrap() - 1009.993).abs() < 0.01);
        // Lines before the fault are ignored; another victim's node-down is not this one.
        let b = breakdown_from_logs(&survivor, "", "n1", FAULT_NS + 1_000_000_001);
        assert!(b.detected_ms.is_none() && b.vip_added_log_ms.is_some());
        assert!(breakdown_from_logs(&survivor, "", "n3", FAULT_NS)
            .detected_ms
            .is_none());
    }

    #[test]
    fn rewording_every_message_changes_no_number() {
        let (s1, v1) = failover_logs(str::to_string);
        let (s2, v2) =
            failover_logs(|m| format!("reworded: {}", m.chars().rev().collect::<String>()));
        assert_ne!(s1, s2);
        let a = breakdown_from_logs(&s1, &v1, "n1", FAULT_NS);
        let b = breakdown_from_logs(&s2, &v2, "n1", FAULT_NS);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert!(a.candidate_ms.is_some() && a.lease_wait_reported_ms.is_some());
    }

    #[test]
    fn the_client_gap_runs_from_the_last_old_reply_to_the_first_new_one() {
        let (old, new) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let ms = 1_000_000;
        let at = |t: i64, seen| Sighting {
            at_ns: t * ms,
            round: 0,
            seen,
        };
        let seen = [
            at(-5, Seen::EchoReply { mac: old }),
            at(2, Seen::EchoReply { mac: old }),
            at(300, Seen::ArpOther { mac: new }),
            at(310, Seen::EchoReply { mac: new }),
            at(312, Seen::EchoReply { mac: old }),
        ];
        let s = client_sample(&seen, old, new, 0, Breakdown::default());
        assert_eq!(s.client_gap_ms, Some(308.0));
        assert_eq!(s.last_old_reply_ms, Some(2.0));
        assert_eq!(s.fault_to_new_reply_ms, Some(310.0));
        assert_eq!(s.breakdown.first_garp_ms, Some(300.0));
        assert_eq!(s.stray_replies_after, 1);
    }
}
