//! `tandem-lab bench false-positives` and `tandem-lab bench footprint`: what a healthy
//! cluster does when nothing fails. The same 3-node lab as the failover bench (n1, n2 may
//! own `www`, n3 is a witness), fast heartbeat profile by default, runs for a while —
//! under full CPU load (busy loops in every node's namespace, more of them than the box
//! has cores) or idle — and then the daemons' own logs say whether anything happened that
//! should not have: an ownership change, a node declared down, quorum lost, a fence. Any
//! of those is a false positive. Meanwhile each daemon's RSS and CPU time are sampled from
//! /proc, which gives the footprint. A stall probe (stall.rs) runs alongside, so that a
//! false positive that came with the whole machine standing still is told apart from one
//! that is tandem's own. `--nodes`/`--groups` grow the lab (more witnesses, more no-op
//! groups) for the scaling curve, and the kernel's counters in each node's namespace give
//! the heartbeat's size on the wire and whether it was IP-fragmented (datagrams.rs).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::datagrams::{Counters, Traffic};
use super::experiment::{Ctx, ExperimentError};
use super::observe::events::records_since;
use super::observe::realtime_ns;
use super::observe::status::stable_owner;
use super::stall::{self, clock_ticks_per_second, Stall, StallProbe, StallReport};
use super::topology::{groups_yaml, scaled, GROUP};
use super::{Lab, Ns};
use crate::core::EventKind;

/// Event kinds that must not happen in a healthy cluster.
pub const FALSE_POSITIVE_KINDS: &[EventKind] = &[
    EventKind::NodeDown,
    EventKind::QuorumLost,
    EventKind::BecameOwner,
    EventKind::LostOwnership,
    EventKind::GroupStopped,
    EventKind::FenceRequested,
    EventKind::SelfFence,
];

#[derive(Debug, Clone)]
pub struct SteadyConfig {
    pub duration: Duration,
    pub interval: Duration,
    pub deadtime: Duration,
    /// Busy-loop processes started in every node's namespace (0: idle footprint run).
    pub load_per_node: usize,
    /// `heartbeat.realtime` of every node (off: to see what SCHED_RR buys).
    pub realtime: bool,
    /// Nodes in the lab: n1 and n2 may own, the others are witnesses.
    pub nodes: usize,
    /// Groups: `www` plus `groups - 1` no-op groups.
    pub groups: usize,
    pub tandemd: PathBuf,
    pub tandemctl: PathBuf,
    pub settle_timeout: Duration,
}

impl Default for SteadyConfig {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        SteadyConfig {
            duration: Duration::from_secs(600),
            interval: Duration::from_millis(10),
            deadtime: Duration::from_millis(40),
            // Three nodes x cores busy loops: three times more runnable processes than
            // the machine has cores, whichever node's heartbeat thread wants to run.
            load_per_node: cores,
            realtime: true,
            nodes: 3,
            groups: 1,
            tandemd: super::default_binary("tandemd"),
            tandemctl: super::default_binary("tandemctl"),
            settle_timeout: Duration::from_secs(60),
        }
    }
}

/// One logged event that should not have happened.
#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    pub node: String,
    /// ms after the measurement began.
    pub at_ms: f64,
    pub kind: String,
    /// What the daemon said (its message).
    pub line: String,
    /// The machine stall this event came with, if any (see `stall::explaining_stall`).
    pub during_stall: Option<Stall>,
}

/// Memory and CPU of one process of one node's daemon over the run.
#[derive(Debug, Clone, Serialize)]
pub struct Footprint {
    pub node: String,
    /// `worker` (heartbeats, agents, control socket) or `guard` (the lease guard).
    pub process: String,
    pub rss_max_kib: u64,
    pub rss_end_kib: u64,
    /// CPU time (user + system) over wall time, in percent of one core.
    pub cpu_percent: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SteadyReport {
    pub duration_s: f64,
    pub interval_ms: f64,
    pub deadtime_ms: f64,
    pub load_per_node: usize,
    pub realtime: bool,
    pub cores: usize,
    pub nodes: usize,
    pub groups: usize,
    pub owner: String,
    pub incidents: Vec<Incident>,
    /// Count per kind of `incidents`.
    pub false_positives: BTreeMap<String, usize>,
    /// `late-heartbeat` warnings (a peer's heartbeat arrived after `warntime`): not a
    /// false positive, but how close the run came to one.
    pub late_heartbeats: usize,
    /// `local-pause` events: a node stood still for more than an interval (its peers'
    /// silence meanwhile was not held against them). Not a false positive either.
    pub local_pauses: usize,
    pub footprint: Vec<Footprint>,
    /// Each node's heartbeat traffic over the measurement.
    pub traffic: Vec<Traffic>,
    /// The largest heartbeat this config can produce, as the config check computes it
    /// (header, body, tag), and the budget it is held to.
    pub largest_heartbeat_bytes: Option<usize>,
    /// What the stall probe saw over the measurement.
    pub machine: StallReport,
    /// The shortest stall that counts as explaining a false positive, ms.
    pub explaining_stall_ms: f64,
    /// The busy loops' pids (all killed before `run` returns).
    pub load_pids: Vec<u32>,
}

impl SteadyReport {
    pub fn total_false_positives(&self) -> usize {
        self.incidents.len()
    }

    /// False positives that did not come with a machine stall: tandem's own.
    pub fn unexplained_false_positives(&self) -> usize {
        self.incidents
            .iter()
            .filter(|i| i.during_stall.is_none())
            .count()
    }

    pub fn print(&self, out: &mut dyn Write) {
        let load = if self.load_per_node == 0 {
            "idle (no load)".to_string()
        } else {
            format!(
                "{} busy loops in each of {} node namespaces on {} core(s)",
                self.load_per_node, self.nodes, self.cores
            )
        };
        let _ = writeln!(
            out,
            "{:.0} s, {} nodes, {} group(s), heartbeat interval {} ms, deadtime {} ms, realtime {}, \
             {load}; www ran on {}",
            self.duration_s,
            self.nodes,
            self.groups,
            self.interval_ms,
            self.deadtime_ms,
            if self.realtime { "on" } else { "off" },
            self.owner
        );
        let _ = writeln!(
            out,
            "  false positives: {} (ownership changes, nodes declared down, quorum lost, fences)",
            self.total_false_positives()
        );
        for (kind, n) in &self.false_positives {
            let _ = writeln!(out, "    {kind:<16} {n}");
        }
        for i in self.incidents.iter().take(20) {
            let stall = i
                .during_stall
                .map(|s| format!(" [machine stall {:.0} ms]", s.late_ms))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "    {:>9.1} ms  {}: {}{stall}",
                i.at_ms, i.node, i.line
            );
        }
        if !self.incidents.is_empty() {
            let _ = writeln!(
                out,
                "    of these, {} came during or right after a machine stall of >= {:.0} ms \
                 (nothing ran, not even the probe); {} did not",
                self.total_false_positives() - self.unexplained_false_positives(),
                self.explaining_stall_ms,
                self.unexplained_false_positives()
            );
        }
        let m = &self.machine;
        let _ = writeln!(
            out,
            "  machine: {} stall(s) of the {} probe thread, longest wake-up {:.1} ms late; \
             steal {}",
            m.stalls.len(),
            if m.realtime {
                "SCHED_FIFO"
            } else {
                "(not real-time!)"
            },
            m.max_late_ms,
            m.steal_ms
                .map(|s| format!("{s:.0} ms"))
                .unwrap_or_else(|| "unknown".into())
        );
        let _ = writeln!(
            out,
            "  late heartbeats (warntime exceeded, not a failure): {}",
            self.late_heartbeats
        );
        let _ = writeln!(
            out,
            "  local pauses (a node stood still > 1 interval, silence excused): {}",
            self.local_pauses
        );
        self.print_scaling(out);
        let _ = writeln!(out, "  footprint of tandemd:");
        let _ = writeln!(
            out,
            "    node   process  RSS max MiB   RSS end MiB   CPU % of one core"
        );
        for f in &self.footprint {
            let _ = writeln!(
                out,
                "    {:<6} {:<7} {:>12.1} {:>13.1} {:>19.2}",
                f.node,
                f.process,
                f.rss_max_kib as f64 / 1024.0,
                f.rss_end_kib as f64 / 1024.0,
                f.cpu_percent
            );
        }
    }
}

impl SteadyReport {
    /// One line each for the workers' CPU and RSS (mean and max over the nodes) and the
    /// heartbeat on the wire: the scaling curve's columns.
    fn print_scaling(&self, out: &mut dyn Write) {
        let workers: Vec<&Footprint> = self
            .footprint
            .iter()
            .filter(|f| f.process == "worker")
            .collect();
        let mean = |f: fn(&Footprint) -> f64| {
            workers.iter().map(|w| f(w)).sum::<f64>() / workers.len().max(1) as f64
        };
        let max = |f: fn(&Footprint) -> f64| workers.iter().map(|w| f(w)).fold(0.0, f64::max);
        let rss = |f: &Footprint| f.rss_max_kib as f64 / 1024.0;
        let _ = writeln!(
            out,
            "  per worker: CPU mean {:.2} % / max {:.2} % of a core; RSS mean {:.1} MiB / max {:.1} MiB",
            mean(|f| f.cpu_percent),
            max(|f| f.cpu_percent),
            mean(rss),
            max(rss)
        );
        let payload: Vec<f64> = self.traffic.iter().map(|t| t.mean_payload_bytes).collect();
        let frags: u64 = self.traffic.iter().map(|t| t.fragments_created).sum();
        let rate: f64 = self.traffic.iter().map(|t| t.datagrams_per_s).sum();
        let _ = writeln!(
            out,
            "  heartbeat on the wire: {:.0}..{:.0} bytes of UDP payload per datagram (largest the \
             config allows: {}); {frags} IP fragments created; {rate:.0} datagrams/s in all",
            payload.iter().copied().fold(f64::INFINITY, f64::min),
            payload.iter().copied().fold(0.0, f64::max),
            self.largest_heartbeat_bytes.map_or(
                "none: the config check refuses this config".to_string(),
                |b| format!("{b} bytes")
            ),
        );
    }
}

/// VmRSS in KiB and utime + stime in clock ticks of a process, from /proc.
pub(crate) fn sample(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): utime is field 14.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(14 - 3)?.parse().ok()?;
    let stime: u64 = fields.get(15 - 3)?.parse().ok()?;
    Some((rss, utime + stime))
}

/// Warnings that are not false positives but say how close a run came to one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NearMisses {
    pub late_heartbeats: usize,
    pub local_pauses: usize,
}

/// Events of `FALSE_POSITIVE_KINDS`, and the near misses, in a node's log since
/// `since` (ns).
pub fn incidents_in_log(node: &str, log: &str, since: i64) -> (Vec<Incident>, NearMisses) {
    let mut incidents = Vec::new();
    let mut near = NearMisses::default();
    for r in records_since(log, since) {
        if r.is(EventKind::LateHeartbeat) {
            near.late_heartbeats += 1;
            continue;
        }
        if r.is(EventKind::LocalPause) {
            near.local_pauses += 1;
            continue;
        }
        let Some(kind) = FALSE_POSITIVE_KINDS.iter().find(|k| r.is(**k)) else {
            continue;
        };
        incidents.push(Incident {
            node: node.to_string(),
            at_ms: (r.at_ns - since) as f64 / 1e6,
            kind: kind.as_str().to_string(),
            line: r.message,
            during_stall: None,
        });
    }
    (incidents, near)
}

/// Runs the bench; progress lines go to `out`; the lab is torn down on return.
pub fn run(
    cfg: &SteadyConfig,
    stop: &AtomicBool,
    out: &mut dyn Write,
) -> Result<SteadyReport, ExperimentError> {
    let extra_yaml = if cfg.realtime {
        groups_yaml(cfg.groups)
    } else {
        // A `heartbeat:` section replaces the lab's, so it repeats the timing.
        format!(
            "heartbeat:\n  port: 5405\n  interval: {}ms\n  deadtime: {}ms\n  realtime: false\n{}",
            cfg.interval.as_millis(),
            cfg.deadtime.as_millis(),
            groups_yaml(cfg.groups)
        )
    };
    let spec = scaled(
        cfg.nodes,
        cfg.interval,
        cfg.deadtime,
        extra_yaml,
        &cfg.tandemd,
        &cfg.tandemctl,
    );
    let mut lab = Lab::build(spec)?;
    let mut ctx = Ctx { stop, out };
    // A config the daemons refuse (e.g. a heartbeat too large for one datagram) would
    // only show as a cluster that never forms: say why at once.
    if let Err(e) = crate::config::load(&lab.config_path(1)) {
        let _ = writeln!(
            ctx.out,
            "note: the config check refuses this lab's config; daemons that check it will \
             not start:\n{e}"
        );
    }
    let result = measure(cfg, &mut lab, &mut ctx);
    lab.teardown();
    result
}

fn measure(
    cfg: &SteadyConfig,
    lab: &mut Lab,
    ctx: &mut Ctx,
) -> Result<SteadyReport, ExperimentError> {
    lab.start_all()?;
    let _ = writeln!(
        ctx.out,
        "lab {} up (n1, n2 may own www, n3 witness); waiting for the cluster to form ...",
        lab.prefix()
    );
    let owner = ctx.wait(
        "a stable cluster",
        cfg.settle_timeout,
        Duration::from_millis(200),
        || Ok(stable_owner(lab, GROUP)),
    )?;
    // A moment more, so that start-up events (late first heartbeats) are not counted.
    ctx.sleep(Duration::from_secs(2).max(cfg.deadtime * 4))?;
    let pids = daemon_pids(lab)?;

    let mut load = Vec::new();
    for node in 1..=lab.node_count() {
        for _ in 0..cfg.load_per_node {
            load.push(lab.spawn(Ns::Node(node), &["sh", "-c", "while :; do :; done"])?);
        }
    }
    // Short stalls are recorded too (they show how close a run came). One explains a
    // false positive if it lasted an interval: the detectors act on two intervals of
    // silence, and the last heartbeat before a stall is up to an interval old already.
    let record_from = cfg.interval.min(Duration::from_millis(5));
    let explaining = cfg.interval;
    let probe = StallProbe::start(record_from);
    let since = realtime_ns();
    let began = Instant::now();
    let first: Vec<Option<(u64, u64)>> = pids.iter().map(|(_, p)| sample(*p)).collect();
    let counters_first = counters(lab, &pids);
    let mut rss_max = vec![0u64; pids.len()];
    let _ = writeln!(
        ctx.out,
        "www runs on {owner}; measuring for {:?} with {} busy loop(s) per node ...",
        cfg.duration, cfg.load_per_node
    );
    let measured = watch(cfg, lab, ctx, &pids, since, began, &mut rss_max);
    let wall = began.elapsed().as_secs_f64();
    let machine = probe.finish();
    let last: Vec<Option<(u64, u64)>> = pids.iter().map(|(_, p)| sample(*p)).collect();
    let counters_last = counters(lab, &pids);
    for spawned in &load {
        // Each busy loop leads its own process group (Lab::spawn).
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(spawned.pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    measured?;

    let footprint = footprints(&pids, &first, &last, &rss_max, wall);
    let traffic = counters_first
        .iter()
        .zip(&counters_last)
        .filter_map(|((node, a), (_, b))| Some(a.as_ref()?.traffic(b.as_ref()?, node, wall)))
        .collect();
    let (incidents, near) = all_incidents(cfg, lab, since, &machine, explaining);
    let mut false_positives = BTreeMap::new();
    for i in &incidents {
        *false_positives.entry(i.kind.clone()).or_insert(0) += 1;
    }
    Ok(SteadyReport {
        duration_s: wall,
        interval_ms: cfg.interval.as_secs_f64() * 1e3,
        deadtime_ms: cfg.deadtime.as_secs_f64() * 1e3,
        load_per_node: cfg.load_per_node,
        realtime: cfg.realtime,
        cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        nodes: lab.node_count(),
        groups: cfg.groups,
        owner,
        incidents,
        false_positives,
        late_heartbeats: near.late_heartbeats,
        local_pauses: near.local_pauses,
        footprint,
        traffic,
        largest_heartbeat_bytes: largest_heartbeat(lab),
        machine,
        explaining_stall_ms: explaining.as_secs_f64() * 1e3,
        load_pids: load.iter().map(|l| l.pid).collect(),
    })
}

/// Samples the daemons' memory every half second until `cfg.duration` has passed since
/// `began`, with a progress line every minute.
fn watch(
    cfg: &SteadyConfig,
    lab: &Lab,
    ctx: &mut Ctx,
    pids: &[DaemonPid],
    since: i64,
    began: Instant,
    rss_max: &mut [u64],
) -> Result<(), ExperimentError> {
    let mut next_progress = Duration::from_secs(60);
    loop {
        let elapsed = began.elapsed();
        for (i, (_, pid)) in pids.iter().enumerate() {
            if let Some((rss, _)) = sample(*pid) {
                rss_max[i] = rss_max[i].max(rss);
            }
        }
        if elapsed >= cfg.duration {
            return Ok(());
        }
        if elapsed >= next_progress {
            let so_far: usize = (1..=lab.node_count())
                .map(|n| {
                    incidents_in_log(&lab.node_name(n), &lab.logs(n), since)
                        .0
                        .len()
                })
                .sum();
            let _ = writeln!(
                ctx.out,
                "  {:>4} s: {so_far} false positive(s) so far",
                elapsed.as_secs()
            );
            next_progress += Duration::from_secs(60);
        }
        ctx.sleep(Duration::from_millis(500).min(cfg.duration - elapsed))?;
    }
}

/// (node name, `worker` or `guard`) and pid of one daemon process.
type DaemonPid = ((String, &'static str), u32);

/// (node, process) and pid of every daemon process: the worker, and the guard when the
/// node runs one.
fn daemon_pids(lab: &mut Lab) -> Result<Vec<DaemonPid>, ExperimentError> {
    let mut pids = Vec::new();
    for n in 1..=lab.node_count() {
        let missing = || ExperimentError::Failed(format!("n{n}'s tandemd is not running"));
        let guard = lab.pid(n).ok_or_else(missing)?;
        let worker = lab.worker_pid(n).ok_or_else(missing)?;
        pids.push(((lab.node_name(n), "worker"), worker));
        if worker != guard {
            pids.push(((lab.node_name(n), "guard"), guard));
        }
    }
    Ok(pids)
}

/// Each node's kernel counters (UDP, IP fragments, its heartbeat interfaces), read
/// through its worker's /proc entry.
fn counters(lab: &Lab, pids: &[DaemonPid]) -> Vec<(String, Option<Counters>)> {
    let ifaces: Vec<String> = (0..lab.spec().links).map(|l| format!("eth{l}")).collect();
    pids.iter()
        .filter(|((_, process), _)| *process == "worker")
        .map(|((node, _), pid)| (node.clone(), Counters::read(*pid, &ifaces)))
        .collect()
}

/// The config check's figure for the lab's config (None if it cannot be loaded).
fn largest_heartbeat(lab: &Lab) -> Option<usize> {
    let config = crate::config::load(&lab.config_path(1)).ok()?;
    Some(crate::config::largest_heartbeat(&config).bytes)
}

/// Memory and CPU of each process from its first and last sample over `wall` seconds.
fn footprints(
    pids: &[DaemonPid],
    first: &[Option<(u64, u64)>],
    last: &[Option<(u64, u64)>],
    rss_max: &[u64],
    wall: f64,
) -> Vec<Footprint> {
    let ticks = clock_ticks_per_second();
    pids.iter()
        .enumerate()
        .map(|(i, ((name, process), _))| {
            let cpu = match (first[i], last[i]) {
                (Some((_, a)), Some((_, b))) => (b.saturating_sub(a)) as f64 / ticks / wall * 100.0,
                _ => f64::NAN,
            };
            Footprint {
                node: name.clone(),
                process: process.to_string(),
                rss_max_kib: rss_max[i],
                rss_end_kib: last[i].map_or(0, |(r, _)| r),
                cpu_percent: cpu,
            }
        })
        .collect()
}

/// Every node's incidents since `since`, in time order, each with the stall that
/// explains it (if any); and the near misses.
fn all_incidents(
    cfg: &SteadyConfig,
    lab: &Lab,
    since: i64,
    machine: &StallReport,
    explaining: Duration,
) -> (Vec<Incident>, NearMisses) {
    let mut incidents = Vec::new();
    let mut near = NearMisses::default();
    for node in 1..=lab.node_count() {
        let (i, n) = incidents_in_log(&lab.node_name(node), &lab.logs(node), since);
        incidents.extend(i);
        near.late_heartbeats += n.late_heartbeats;
        near.local_pauses += n.local_pauses;
    }
    incidents.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
    for i in &mut incidents {
        let at = since + (i.at_ms * 1e6) as i64;
        // Once the machine runs again the detectors fire within a tick, and what follows
        // from a node declared down (quorum, ownership) within a deadtime.
        i.during_stall = stall::explaining_stall(
            &machine.stalls,
            at,
            explaining,
            cfg.deadtime + Duration::from_millis(100),
        );
    }
    (incidents, near)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_events_that_must_not_happen_and_nothing_else() {
        use crate::lab::observe::events::tests::line;
        let events = [
            ("00.000000", r#""kind":"node-up","node":"n2""#, "n2 is up"),
            (
                "01.000000",
                r#""kind":"late-heartbeat","node":"n2""#,
                "late",
            ),
            (
                "02.000000",
                r#""kind":"local-pause""#,
                "this node did not run for 31 ms",
            ),
            (
                "02.500000",
                r#""kind":"node-down","node":"n2""#,
                "n2 is down",
            ),
            (
                "03.000000",
                r#""kind":"became-owner","group":"www""#,
                "owner",
            ),
        ];
        let mut log: Vec<String> = events
            .iter()
            .map(|(s, fields, msg)| line(&format!("2026-11-23T10:00:{s}Z"), fields, msg))
            .collect();
        log.push("2026-11-23T10:00:04.000000Z  WARN not a JSON line kind=\"node-down\"".into());
        let log = log.join("\n");
        let since = crate::lab::observe::events::parse_timestamp("2026-11-23T10:00:00.500000Z")
            .expect("time");
        let (incidents, near) = incidents_in_log("n1", &log, since);
        assert_eq!(
            near,
            NearMisses {
                late_heartbeats: 1,
                local_pauses: 1
            }
        );
        let kinds: Vec<&str> = incidents.iter().map(|i| i.kind.as_str()).collect();
        assert_eq!(kinds, ["node-down", "became-owner"]);
        assert_eq!(incidents[0].at_ms, 2000.0);
        assert_eq!(incidents[0].line, "n2 is down");
    }
}
