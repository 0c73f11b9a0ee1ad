//! `tandem-lab chaos`: a seeded fault storm against a real lab cluster, judged by an
//! independent observer. A schedule of faults (power loss, daemon crash, SIGSTOP, cut
//! link, isolation, partition, random loss, graceful restart) is drawn up front from the
//! seed, so a run can be replayed and discussed. While it plays, a thread in the client
//! namespace broadcasts an ARP request for the VIP every few ms and records who answers:
//! two MACs answering the same request is a dual-owner instant, a stretch with no answer
//! is downtime. At the end the daemons' logs give each node's VIP intervals, which are
//! cross-checked for overlaps. There must be no dual owner at all, with fencing or with
//! leases alone: a crashed or paused worker is taken down by its lease guard before its
//! lease ends (docs/design.md), so no fault of the schedule excuses two owners.
//!
//! All times are CLOCK_REALTIME nanoseconds (the daemons log wall-clock times).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::bench::{
    drain_incoming, enter_netns, eth0_mac, group_yaml, io_err, log_lines_since, mac_string, ms,
    ns_to_ms, packet_socket_on_eth0, realtime_ns, BenchError, GROUP, VIP, VIP_PREFIX,
};
use super::{netns, Lab, LabSpec, Ns};

/// Errors of a chaos run (the bench's: interrupted, lab, failed, I/O).
pub type ChaosError = BenchError;

/// How often the observer asks who has the VIP.
pub const OBSERVE_PERIOD: Duration = Duration::from_millis(5);
/// Gaps between fault injections are drawn from this range (ms).
const GAP_MS: (u64, u64) = (2_000, 8_000);
/// How long after a node was found fenced (tandemd gone, links down) chaos "reboots" it.
const REBOOT_DELAY: Duration = Duration::from_secs(1);
/// A fault still explains a dual owner this long after it was healed: a resumed or
/// restarted daemon needs a moment to notice it lost the group and drop the address.
const CONTEXT_GRACE: Duration = Duration::from_secs(3);
/// Rounds without any reply before the silence counts as downtime (2 rounds = 10 ms: a
/// single lost reply is not an outage).
const OUTAGE_MIN_ROUNDS: u32 = 3;
/// Dual-owner rounds at most this many rounds apart belong to one window.
const WINDOW_MERGE_ROUNDS: u32 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// kill -9 of tandemd and every link down; "rebooted" (VIP cleared, links up, start)
    /// when healed.
    PowerLoss,
    /// kill -9 of tandemd only: the VIP stays configured; restarted when healed.
    DaemonCrash,
    /// SIGSTOP of tandemd; SIGCONT when healed.
    Pause,
    /// One heartbeat link of one node cut at the switch.
    CutLink,
    /// Every link of one node cut (the client cannot see it either).
    Isolate,
    /// Two sides that cannot reach each other (the client reaches both).
    Partition,
    /// 30 % random loss between nodes on every link.
    Loss,
    /// SIGTERM (handover), then start again.
    GracefulRestart,
}

impl FaultKind {
    pub const ALL: [FaultKind; 8] = [
        FaultKind::PowerLoss,
        FaultKind::DaemonCrash,
        FaultKind::Pause,
        FaultKind::CutLink,
        FaultKind::Isolate,
        FaultKind::Partition,
        FaultKind::Loss,
        FaultKind::GracefulRestart,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::PowerLoss => "power-loss",
            FaultKind::DaemonCrash => "daemon-crash",
            FaultKind::Pause => "pause",
            FaultKind::CutLink => "cut-link",
            FaultKind::Isolate => "isolate",
            FaultKind::Partition => "partition",
            FaultKind::Loss => "loss",
            FaultKind::GracefulRestart => "graceful-restart",
        }
    }

    /// Relative frequency in the schedule.
    fn weight(self) -> u32 {
        match self {
            FaultKind::Pause => 3,
            FaultKind::Loss => 1,
            _ => 2,
        }
    }

    /// Range of the fault's duration (ms) before it is healed.
    fn duration_ms(self) -> (u64, u64) {
        match self {
            FaultKind::PowerLoss => (2_000, 8_000),
            FaultKind::DaemonCrash => (500, 4_000),
            FaultKind::Pause => (500, 5_000),
            FaultKind::CutLink => (2_000, 8_000),
            FaultKind::Isolate | FaultKind::Partition => (2_000, 6_000),
            FaultKind::Loss => (3_000, 10_000),
            FaultKind::GracefulRestart => (300, 2_000),
        }
    }

    /// Faults that act on the daemon itself (the janitor leaves such nodes alone).
    fn on_daemon(self) -> bool {
        matches!(
            self,
            FaultKind::PowerLoss
                | FaultKind::DaemonCrash
                | FaultKind::Pause
                | FaultKind::GracefulRestart
        )
    }

    /// Faults that take their target out of the cluster (count against the minority).
    fn takes_node_down(self) -> bool {
        !matches!(self, FaultKind::CutLink | FaultKind::Loss)
    }
}

/// Whom a fault hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// The node whose MAC last answered for the VIP (the fallback when none did).
    Owner,
    Node(usize),
}

/// One fault of the schedule, as drawn from the seed.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedFault {
    pub index: usize,
    /// Milliseconds after the chaos phase began.
    pub at_ms: u64,
    pub kind: FaultKind,
    pub target: Target,
    /// Used when the target is the owner and nobody answers for the VIP.
    pub fallback: usize,
    pub duration_ms: u64,
    /// Cut link: which link.
    pub link: usize,
    /// Partition in a 5-node lab: a second node on the target's (minority) side.
    pub partner: Option<usize>,
}

impl PlannedFault {
    pub fn describe(&self) -> String {
        let who = match self.target {
            Target::Owner => format!("owner (else n{})", self.fallback),
            Target::Node(n) => format!("n{n}"),
        };
        let what = match self.kind {
            FaultKind::CutLink => format!("cut link {} of {who}", self.link),
            FaultKind::Partition => match self.partner {
                Some(p) => format!("partition {who} + n{p} from the rest"),
                None => format!("partition {who} from the rest"),
            },
            FaultKind::Loss => "30% loss between nodes".to_string(),
            k => format!("{} {who}", k.name()),
        };
        format!(
            "+{:>7.1}s  {what} for {:.1}s",
            self.at_ms as f64 / 1000.0,
            self.duration_ms as f64 / 1000.0
        )
    }
}

/// The schedule of a run: every fault, its time, target and duration, from the seed alone.
pub fn schedule(seed: u64, nodes: usize, links: usize, duration: Duration) -> Vec<PlannedFault> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6368_616f_735f_6c61);
    let total: u32 = FaultKind::ALL.iter().map(|k| k.weight()).sum();
    let end_ms = duration.as_millis() as u64;
    let mut at = 0;
    let mut out = Vec::new();
    loop {
        at += rng.random_range(GAP_MS.0..=GAP_MS.1);
        if at >= end_ms {
            break;
        }
        let mut pick = rng.random_range(0..total);
        let mut kind = FaultKind::Pause;
        for k in FaultKind::ALL {
            if pick < k.weight() {
                kind = k;
                break;
            }
            pick -= k.weight();
        }
        let (lo, hi) = kind.duration_ms();
        let node = rng.random_range(1..=nodes);
        let owner = rng.random_bool(0.6);
        let fallback = rng.random_range(1..=nodes);
        let link = rng.random_range(0..links);
        let partner = (nodes >= 5 && rng.random_bool(0.5))
            .then(|| (node % nodes) + 1)
            .filter(|&p| p != node);
        out.push(PlannedFault {
            index: out.len() + 1,
            at_ms: at,
            kind,
            target: if owner && kind != FaultKind::Loss {
                Target::Owner
            } else {
                Target::Node(node)
            },
            fallback,
            duration_ms: rng.random_range(lo..=hi),
            link,
            partner,
        });
    }
    out
}

// ----- the observer ---------------------------------------------------------------------

/// An ARP frame from the VIP seen by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ArpSeen {
    /// Index of the last request sent before it arrived.
    pub round: u32,
    pub at_ns: i64,
    #[serde(serialize_with = "ser_mac")]
    pub mac: [u8; 6],
}

fn ser_mac<S: serde::Serializer>(mac: &[u8; 6], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&mac_string(mac))
}

/// Everything the observer recorded.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// Send time of each request round.
    pub rounds: Vec<i64>,
    /// ARP replies to our requests whose sender is the VIP.
    pub replies: Vec<ArpSeen>,
    /// Other ARP frames from the VIP (gratuitous announcements by a new owner).
    pub announcements: Vec<ArpSeen>,
}

#[derive(Debug, Default)]
struct ObserverData {
    obs: Observation,
    last_reply: Option<ArpSeen>,
}

/// What an ARP frame on the client's eth0 is, if it is from the VIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpFromVip {
    /// A reply to the client (sender VIP, target the client's address).
    Reply([u8; 6]),
    /// Anything else whose sender is the VIP (gratuitous ARP).
    Other([u8; 6]),
}

/// Parses one Ethernet frame received by the client.
pub fn classify_arp(frame: &[u8], vip: Ipv4Addr, client: Ipv4Addr) -> Option<ArpFromVip> {
    if frame.len() < 14 + 28 || frame[12..14] != [0x08, 0x06] {
        return None;
    }
    let a = &frame[14..];
    // htype 1 (Ethernet), ptype IPv4, hlen 6, plen 4.
    if a[0..2] != [0, 1] || a[2..4] != [0x08, 0x00] || a[4] != 6 || a[5] != 4 {
        return None;
    }
    if a[14..18] != vip.octets() {
        return None;
    }
    let mut sha = [0u8; 6];
    sha.copy_from_slice(&a[8..14]);
    let op = u16::from_be_bytes([a[6], a[7]]);
    Some(if op == 2 && a[24..28] == client.octets() {
        ArpFromVip::Reply(sha)
    } else {
        ArpFromVip::Other(sha)
    })
}

/// A broadcast "who has `vip`? tell `client`" frame.
pub fn arp_request(src_mac: [u8; 6], client: Ipv4Addr, vip: Ipv4Addr) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    f[14..16].copy_from_slice(&[0, 1]);
    f[16..18].copy_from_slice(&[0x08, 0x00]);
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&[0, 1]);
    f[22..28].copy_from_slice(&src_mac);
    f[28..32].copy_from_slice(&client.octets());
    // Target MAC stays zero.
    f[38..42].copy_from_slice(&vip.octets());
    f
}

/// The client-side observer: a thread in the client namespace that asks who has the VIP
/// every `OBSERVE_PERIOD` on an AF_PACKET socket and records every answer.
pub struct Observer {
    stop: Arc<AtomicBool>,
    data: Arc<Mutex<ObserverData>>,
    handle: Option<JoinHandle<()>>,
}

impl Observer {
    /// Starts observing from the lab's client namespace.
    pub fn start(lab: &Lab) -> Result<Observer, ChaosError> {
        let client_ns = lab.ns_name(Ns::Client)?;
        let client_mac = eth0_mac(lab, Ns::Client)?;
        let client = match lab.client_address() {
            IpAddr::V4(a) => a,
            IpAddr::V6(_) => {
                return Err(BenchError::Failed(
                    "the chaos observer needs an IPv4 lab".into(),
                ))
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let data: Arc<Mutex<ObserverData>> = Arc::default();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handle = {
            let (stop, data) = (Arc::clone(&stop), Arc::clone(&data));
            thread::Builder::new()
                .name("chaos-observer".into())
                .spawn(move || match Observer::open(&client_ns) {
                    Ok(fd) => {
                        let _ = ready_tx.send(Ok(()));
                        Observer::run(&fd, client_mac, client, &stop, &data);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                    }
                })
                .map_err(io_err("starting the observer thread"))?
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Observer {
                stop,
                data,
                handle: Some(handle),
            }),
            Ok(Err(e)) => Err(BenchError::Failed(format!("observer: {e}"))),
            Err(_) => Err(BenchError::Failed("observer thread died".into())),
        }
    }

    fn open(client_ns: &str) -> Result<OwnedFd, ChaosError> {
        enter_netns(client_ns)?;
        packet_socket_on_eth0(libc::ETH_P_ARP as u16)
    }

    fn run(
        fd: &OwnedFd,
        mac: [u8; 6],
        client: Ipv4Addr,
        stop: &AtomicBool,
        data: &Mutex<ObserverData>,
    ) {
        let request = arp_request(mac, client, VIP);
        let mut next_send = Instant::now();
        let mut round: u32 = 0;
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= next_send {
                // The round exists from the moment it is sent, answered or not.
                let sent_at = realtime_ns();
                // SAFETY: send of a valid buffer on a bound packet socket.
                let n = unsafe {
                    libc::send(fd.as_raw_fd(), request.as_ptr().cast(), request.len(), 0)
                };
                if n > 0 {
                    if let Ok(mut d) = data.lock() {
                        d.obs.rounds.push(sent_at);
                        round = (d.obs.rounds.len() - 1) as u32;
                    }
                }
                next_send += OBSERVE_PERIOD;
                if next_send < now {
                    next_send = now + OBSERVE_PERIOD;
                }
            }
            drain_incoming(fd, next_send, &mut buf, |at_ns, frame| {
                let Some(kind) = classify_arp(frame, VIP, client) else {
                    return;
                };
                if let Ok(mut d) = data.lock() {
                    match kind {
                        ArpFromVip::Reply(mac) => {
                            let seen = ArpSeen { round, at_ns, mac };
                            d.obs.replies.push(seen);
                            d.last_reply = Some(seen);
                        }
                        ArpFromVip::Other(mac) => {
                            d.obs.announcements.push(ArpSeen { round, at_ns, mac })
                        }
                    }
                }
            });
        }
    }

    /// The last reply, if it came within `within` of now.
    pub fn last_reply(&self, within: Duration) -> Option<ArpSeen> {
        let last = self.data.lock().ok()?.last_reply?;
        (realtime_ns() - last.at_ns <= within.as_nanos() as i64).then_some(last)
    }

    /// A copy of everything recorded so far.
    pub fn snapshot(&self) -> Observation {
        self.data.lock().map(|d| d.obs.clone()).unwrap_or_default()
    }

    /// Stops the thread and returns the record.
    pub fn finish(mut self) -> Observation {
        self.halt();
        self.snapshot()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.halt();
    }
}

// ----- analysis of the observation ------------------------------------------------------

/// A stretch of request rounds answered by two or more MACs.
#[derive(Debug, Clone, Serialize)]
pub struct DualWindow {
    pub start_ns: i64,
    pub end_ns: i64,
    /// Rounds in it with two or more answering MACs.
    pub dual_rounds: u32,
    pub macs: Vec<String>,
    /// The MACs' nodes (`?` for a MAC of no lab node).
    pub nodes: Vec<String>,
    /// Faults active (or healed less than CONTEXT_GRACE before) on those nodes: the
    /// context for whoever investigates it.
    pub faults_active: Vec<String>,
}

/// A stretch without any reply.
#[derive(Debug, Clone, Serialize)]
pub struct Outage {
    /// Last reply before it.
    pub from_ns: i64,
    /// First reply after it (or the end of the observation).
    pub to_ns: i64,
    pub ms: f64,
}

/// The single answering MAC changed.
#[derive(Debug, Clone, Serialize)]
pub struct OwnerChange {
    pub at_ns: i64,
    pub from: String,
    pub to: String,
    /// Last reply from anyone before the first one from the new MAC alone.
    pub gap_ms: f64,
    /// Both MACs answered in between (a dual-owner window led to the change).
    pub through_dual: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ObserverSummary {
    pub requests: usize,
    pub answered_rounds: usize,
    pub replies: usize,
    pub announcements: usize,
    /// MAC -> node name (or `?`), for every MAC that answered.
    pub macs: BTreeMap<String, String>,
    pub owner_changes: Vec<OwnerChange>,
    pub outages: Vec<Outage>,
    pub downtime_ms: f64,
    pub dual_owner_rounds: u32,
    pub dual_windows: Vec<DualWindow>,
}

fn node_of(macs: &BTreeMap<[u8; 6], String>, mac: &[u8; 6]) -> String {
    macs.get(mac).cloned().unwrap_or_else(|| "?".into())
}

/// Owner changes, outages and dual-owner windows from an observation. `macs` maps each
/// node's eth0 MAC to its name. Dual windows come without their faults.
pub fn analyze(obs: &Observation, macs: &BTreeMap<[u8; 6], String>) -> ObserverSummary {
    let mut by_round: BTreeMap<u32, Vec<&ArpSeen>> = BTreeMap::new();
    for r in &obs.replies {
        by_round.entry(r.round).or_default().push(r);
    }
    let mut seen_macs = BTreeMap::new();
    for r in &obs.replies {
        seen_macs.insert(mac_string(&r.mac), node_of(macs, &r.mac));
    }

    // Dual-owner rounds, merged into windows.
    // (first round, last round, start, end, dual rounds, MACs)
    type Window = (u32, u32, i64, i64, u32, BTreeSet<[u8; 6]>);
    let mut windows: Vec<Window> = Vec::new();
    let mut dual_rounds = 0;
    for (&round, replies) in &by_round {
        let distinct: BTreeSet<[u8; 6]> = replies.iter().map(|r| r.mac).collect();
        if distinct.len() < 2 {
            continue;
        }
        dual_rounds += 1;
        let first = replies.iter().map(|r| r.at_ns).min().unwrap_or(0);
        let last = replies.iter().map(|r| r.at_ns).max().unwrap_or(0);
        match windows.last_mut() {
            Some(w) if round - w.1 <= WINDOW_MERGE_ROUNDS => {
                w.1 = round;
                w.3 = last;
                w.4 += 1;
                w.5.extend(distinct);
            }
            _ => windows.push((round, round, first, last, 1, distinct)),
        }
    }
    let dual_windows = windows
        .into_iter()
        .map(|(_, _, start_ns, end_ns, n, set)| {
            // By node name, so windows read the same whatever the MACs were.
            let mut pairs: Vec<(String, String)> = set
                .iter()
                .map(|m| (node_of(macs, m), mac_string(m)))
                .collect();
            pairs.sort();
            DualWindow {
                start_ns,
                end_ns,
                dual_rounds: n,
                macs: pairs.iter().map(|p| p.1.clone()).collect(),
                nodes: pairs.into_iter().map(|p| p.0).collect(),
                faults_active: Vec::new(),
            }
        })
        .collect();

    // Outages: answered rounds far apart.
    let mut outages = Vec::new();
    let answered: Vec<(u32, i64, i64)> = by_round
        .iter()
        .map(|(&r, v)| {
            let first = v.iter().map(|x| x.at_ns).min().unwrap_or(0);
            let last = v.iter().map(|x| x.at_ns).max().unwrap_or(0);
            (r, first, last)
        })
        .collect();
    for pair in answered.windows(2) {
        let ((r1, _, last1), (r2, first2, _)) = (pair[0], pair[1]);
        if r2 - r1 >= OUTAGE_MIN_ROUNDS {
            outages.push(Outage {
                from_ns: last1,
                to_ns: first2,
                ms: ns_to_ms(first2 - last1),
            });
        }
    }
    if let (Some(&(r, _, last)), Some(&end)) = (answered.last(), obs.rounds.last()) {
        if obs.rounds.len() as u32 - 1 - r >= OUTAGE_MIN_ROUNDS {
            outages.push(Outage {
                from_ns: last,
                to_ns: end,
                ms: ns_to_ms(end - last),
            });
        }
    }
    let downtime_ms = outages.iter().map(|o| o.ms).sum();

    // Ownership as the client sees it: rounds answered by exactly one MAC.
    let mut owner_changes = Vec::new();
    let mut current: Option<[u8; 6]> = None;
    let mut last_any: Option<i64> = None;
    let mut dual_since_current = false;
    for replies in by_round.values() {
        let distinct: BTreeSet<[u8; 6]> = replies.iter().map(|r| r.mac).collect();
        let first = replies.iter().map(|r| r.at_ns).min().unwrap_or(0);
        let last = replies.iter().map(|r| r.at_ns).max().unwrap_or(0);
        if distinct.len() != 1 {
            dual_since_current = true;
            last_any = Some(last);
            continue;
        }
        let mac = replies[0].mac;
        match current {
            Some(m) if m != mac => {
                owner_changes.push(OwnerChange {
                    at_ns: first,
                    from: node_of(macs, &m),
                    to: node_of(macs, &mac),
                    gap_ms: ns_to_ms(first - last_any.unwrap_or(first)),
                    through_dual: dual_since_current,
                });
            }
            _ => {}
        }
        if current != Some(mac) {
            dual_since_current = false;
        }
        current = Some(mac);
        last_any = Some(last);
    }

    ObserverSummary {
        requests: obs.rounds.len(),
        answered_rounds: by_round.len(),
        replies: obs.replies.len(),
        announcements: obs.announcements.len(),
        macs: seen_macs,
        owner_changes,
        outages,
        downtime_ms,
        dual_owner_rounds: dual_rounds,
        dual_windows,
    }
}

// ----- the daemons' logs ----------------------------------------------------------------

/// A line of a node's log that matters for VIP ownership.
#[derive(Debug, Clone, Serialize)]
pub struct LogEvent {
    pub at_ns: i64,
    pub node: String,
    /// vip-added, vip-removed, became-owner, lost-ownership, fenced (this node was fenced,
    /// from the fencer's log), self-fence, guard-took-down (its lease guard removed its
    /// addresses).
    pub what: String,
    /// For `fenced`: who fenced it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// Events of one node's log (`node` is its name), and the `fenced` events it reports
/// about others.
pub fn log_events(node: &str, log: &str) -> Vec<LogEvent> {
    let added = format!("vip: added {VIP}/");
    let removed = format!("vip: removed {VIP} ");
    let group = format!("group=\"{GROUP}\"");
    let guard_took_down = format!(
        "{} {}",
        crate::guard::log::PREFIX,
        crate::guard::log::TOOK_DOWN
    );
    let mut out = Vec::new();
    for (at_ns, l) in log_lines_since(log, 0) {
        let ev = |what: &str| LogEvent {
            at_ns,
            node: node.to_string(),
            what: what.into(),
            by: None,
        };
        if l.contains(&added) {
            out.push(ev("vip-added"));
        } else if l.contains(&removed) {
            out.push(ev("vip-removed"));
        } else if l.contains("kind=\"became-owner\"") && l.contains(&group) {
            out.push(ev("became-owner"));
        } else if l.contains("kind=\"lost-ownership\"") && l.contains(&group) {
            out.push(ev("lost-ownership"));
        } else if l.contains("SELF-FENCE") {
            out.push(ev("self-fence"));
        } else if l.contains(&guard_took_down) {
            // The lease guard removed every address of the node's groups.
            out.push(ev("guard-took-down"));
        } else if let Some(i) = l.find(" is fenced (confirmed off)") {
            if let Some(target) = l[..i].split_whitespace().next_back() {
                out.push(LogEvent {
                    at_ns,
                    node: target.to_string(),
                    what: "fenced".into(),
                    by: Some(node.to_string()),
                });
            }
        }
    }
    out
}

/// When a node held the VIP according to its log, closed by "vip removed" or by the
/// node going dark (fenced, self-fenced, powered off or rebooted by chaos).
#[derive(Debug, Clone, Serialize)]
pub struct VipInterval {
    pub node: String,
    pub from_ns: i64,
    /// None: still held at the end.
    pub to_ns: Option<i64>,
    pub ended_by: String,
}

/// Two nodes' VIP intervals overlapping.
#[derive(Debug, Clone, Serialize)]
pub struct LogOverlap {
    pub nodes: [String; 2],
    pub from_ns: i64,
    pub to_ns: i64,
    pub ms: f64,
}

/// VIP intervals per node from the log events plus the power-offs chaos caused itself
/// (`(node name, time)`), and the overlaps between nodes. `end_ns` closes open intervals.
pub fn vip_intervals(
    events: &[LogEvent],
    power_offs: &[(String, i64)],
    end_ns: i64,
) -> (Vec<VipInterval>, Vec<LogOverlap>) {
    let mut per_node: BTreeMap<String, Vec<(i64, &str)>> = BTreeMap::new();
    for e in events {
        let kind = match e.what.as_str() {
            "vip-added" => "added",
            "vip-removed" | "guard-took-down" => "removed",
            "fenced" => "fenced",
            "self-fence" => "self-fence",
            _ => continue,
        };
        per_node
            .entry(e.node.clone())
            .or_default()
            .push((e.at_ns, kind));
    }
    for (n, t) in power_offs {
        per_node
            .entry(n.clone())
            .or_default()
            .push((*t, "power-off"));
    }
    let mut intervals = Vec::new();
    for (node, mut evs) in per_node {
        evs.sort_by_key(|e| e.0);
        let mut open: Option<i64> = None;
        for (t, kind) in evs {
            match (kind, open) {
                ("added", None) => open = Some(t),
                ("added", Some(_)) => {}
                (end, Some(from)) => {
                    intervals.push(VipInterval {
                        node: node.clone(),
                        from_ns: from,
                        to_ns: Some(t),
                        ended_by: end.to_string(),
                    });
                    open = None;
                }
                _ => {}
            }
        }
        if let Some(from) = open {
            intervals.push(VipInterval {
                node,
                from_ns: from,
                to_ns: None,
                ended_by: "still held at the end".into(),
            });
        }
    }
    let mut overlaps = Vec::new();
    for (i, a) in intervals.iter().enumerate() {
        for b in &intervals[i + 1..] {
            if a.node == b.node {
                continue;
            }
            let from = a.from_ns.max(b.from_ns);
            let to = a.to_ns.unwrap_or(end_ns).min(b.to_ns.unwrap_or(end_ns));
            if to > from {
                overlaps.push(LogOverlap {
                    nodes: [a.node.clone(), b.node.clone()],
                    from_ns: from,
                    to_ns: to,
                    ms: ns_to_ms(to - from),
                });
            }
        }
    }
    overlaps.sort_by_key(|o| o.from_ns);
    (intervals, overlaps)
}

// ----- the run --------------------------------------------------------------------------

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
#[derive(Debug, Clone, Serialize)]
pub struct InjectedFault {
    pub index: usize,
    pub kind: FaultKind,
    /// The nodes it hit (the minority side for a partition); empty for loss.
    pub nodes: Vec<String>,
    pub link: Option<usize>,
    /// Whether the target was chosen as the current owner.
    pub hit_owner: bool,
    pub start_ns: i64,
    pub healed_ns: Option<i64>,
    /// What happened on heal (e.g. "n2 had been fenced: rebooted").
    pub notes: Vec<String>,
}

/// A planned fault not carried out.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedFault {
    pub index: usize,
    pub kind: FaultKind,
    pub reason: String,
}

/// Something chaos noticed or did outside the schedule.
#[derive(Debug, Clone, Serialize)]
pub struct NodeEvent {
    pub at_ns: i64,
    pub node: String,
    pub what: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChaosReport {
    pub seed: u64,
    pub nodes: usize,
    pub duration_s: f64,
    pub interval_ms: f64,
    pub deadtime_ms: f64,
    pub fencing: bool,
    pub observe_period_ms: f64,
    /// Wall clock when the chaos phase began (schedule times are relative to it).
    pub start_ns: i64,
    pub end_ns: i64,
    pub node_macs: BTreeMap<String, String>,
    pub schedule: Vec<PlannedFault>,
    pub injected: Vec<InjectedFault>,
    pub skipped: Vec<SkippedFault>,
    pub faults_by_kind: BTreeMap<String, usize>,
    pub node_events: Vec<NodeEvent>,
    pub observer: ObserverSummary,
    pub log_events: Vec<LogEvent>,
    pub vip_intervals: Vec<VipInterval>,
    pub log_overlaps: Vec<LogOverlap>,
    /// Dual-owner windows that fail the run (all of them with fencing; the unexplained
    /// ones without).
    pub failing_dual_windows: usize,
    /// Why the run did not complete normally (lab failure), if it did not.
    pub failure: Option<String>,
}

impl ChaosReport {
    /// Clean: no failing dual-owner window, no lab failure, and the observer saw replies.
    pub fn ok(&self) -> bool {
        self.failing_dual_windows == 0 && self.failure.is_none() && self.observer.replies > 0
    }

    fn rel_s(&self, ns: i64) -> f64 {
        (ns - self.start_ns) as f64 / 1e9
    }

    /// The human-readable report.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let w = &mut s;
        use std::fmt::Write as _;
        let _ = writeln!(
            w,
            "chaos seed {}: {} nodes, {:.0} s, heartbeat {} ms / deadtime {} ms, {}",
            self.seed,
            self.nodes,
            self.duration_s,
            self.interval_ms,
            self.deadtime_ms,
            if self.fencing {
                "fencing.policy always (fence_lab)"
            } else {
                "NO fencing (leases only)"
            }
        );
        let _ = writeln!(
            w,
            "nodes: {}",
            self.node_macs
                .iter()
                .map(|(n, m)| format!("{n} {m}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let kinds: Vec<String> = self
            .faults_by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(
            w,
            "faults: {} planned, {} injected ({}), {} skipped",
            self.schedule.len(),
            self.injected.len(),
            kinds.join(", "),
            self.skipped.len()
        );
        for f in &self.injected {
            let _ = writeln!(
                w,
                "  +{:>7.1}s  #{:<3} {:<16} {:<8}{}{}",
                self.rel_s(f.start_ns),
                f.index,
                f.kind.name(),
                f.nodes.join("+"),
                f.link.map(|l| format!(" link {l}")).unwrap_or_default(),
                if f.notes.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", f.notes.join("; "))
                }
            );
        }
        for f in &self.skipped {
            let _ = writeln!(w, "  skipped #{} {}: {}", f.index, f.kind.name(), f.reason);
        }
        if !self.node_events.is_empty() {
            let _ = writeln!(w, "outside the schedule:");
            for e in &self.node_events {
                let _ = writeln!(w, "  +{:>7.1}s  {} {}", self.rel_s(e.at_ns), e.node, e.what);
            }
        }
        let o = &self.observer;
        let _ = writeln!(
            w,
            "observer: {} ARP requests (every {} ms), {} answered, {} replies, {} gratuitous",
            o.requests, self.observe_period_ms, o.answered_rounds, o.replies, o.announcements
        );
        let _ = writeln!(
            w,
            "failovers (the answering MAC changed): {}",
            o.owner_changes.len()
        );
        for c in &o.owner_changes {
            let how = if c.through_dual {
                "after both answered".to_string()
            } else {
                format!("no answer for {:.0} ms", c.gap_ms)
            };
            let _ = writeln!(
                w,
                "  +{:>7.1}s  {} -> {} ({how})",
                self.rel_s(c.at_ns),
                c.from,
                c.to,
            );
        }
        let longest = o.outages.iter().map(|x| x.ms).fold(0.0, f64::max);
        let _ = writeln!(
            w,
            "downtime (no answer from anyone for >= {} rounds): {:.0} ms in {} outage(s), longest {:.0} ms",
            OUTAGE_MIN_ROUNDS,
            o.downtime_ms,
            o.outages.len(),
            longest
        );
        let _ = writeln!(
            w,
            "  (an isolated owner is invisible to the client: its time counts as downtime)"
        );
        let _ = writeln!(
            w,
            "dual-owner instants: {} round(s) in {} window(s)",
            o.dual_owner_rounds,
            o.dual_windows.len()
        );
        for d in &o.dual_windows {
            let pairs: Vec<String> = d
                .macs
                .iter()
                .zip(&d.nodes)
                .map(|(m, n)| format!("{m}={n}"))
                .collect();
            let _ = writeln!(
                w,
                "  +{:>7.3}s .. +{:.3}s ({:.0} ms, {} rounds): {}",
                self.rel_s(d.start_ns),
                self.rel_s(d.end_ns),
                ns_to_ms(d.end_ns - d.start_ns),
                d.dual_rounds,
                pairs.join(", ")
            );
            let _ = writeln!(
                w,
                "      faults active: {}",
                if d.faults_active.is_empty() {
                    "none".to_string()
                } else {
                    d.faults_active.join(", ")
                }
            );
            let _ = writeln!(
                w,
                "      SAFETY VIOLATION: two nodes answered for the VIP at the same time"
            );
        }
        let _ = writeln!(
            w,
            "logs: {} VIP intervals, {} overlap(s) between nodes",
            self.vip_intervals.len(),
            self.log_overlaps.len()
        );
        for ov in &self.log_overlaps {
            let _ = writeln!(
                w,
                "  +{:>7.3}s {} and {} both held the VIP for {:.0} ms (by their logs)",
                self.rel_s(ov.from_ns),
                ov.nodes[0],
                ov.nodes[1],
                ov.ms
            );
        }
        if let Some(f) = &self.failure {
            let _ = writeln!(w, "LAB FAILURE: {f}");
        }
        let _ = writeln!(
            w,
            "verdict: {}",
            if self.ok() {
                "CLEAN (no dual owner)".to_string()
            } else if o.replies == 0 {
                "FAILED (the observer saw no answer at all)".to_string()
            } else if self.failing_dual_windows > 0 {
                format!(
                    "FAILED ({} dual-owner window(s))",
                    self.failing_dual_windows
                )
            } else {
                "FAILED (lab failure)".to_string()
            }
        );
        s
    }
}

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

struct Active {
    fault: usize,
    kind: FaultKind,
    nodes: Vec<usize>,
    link: usize,
    heal_at: Instant,
}

impl Active {
    /// Whether a fault of `kind` on `nodes` would interfere with this one in the switch
    /// rules (the lab keeps one partition, one loss rate, one set of cut links).
    fn conflicts(&self, kind: FaultKind, nodes: &[usize]) -> bool {
        let cuts = |k: FaultKind| matches!(k, FaultKind::CutLink | FaultKind::Isolate);
        match kind {
            FaultKind::Loss | FaultKind::Partition => self.kind == kind,
            k if cuts(k) => cuts(self.kind) && self.nodes.iter().any(|n| nodes.contains(n)),
            _ => false,
        }
    }
}

struct Runner<'a> {
    cfg: &'a ChaosConfig,
    stop: &'a AtomicBool,
    out: &'a mut dyn Write,
    macs: BTreeMap<[u8; 6], usize>,
    active: Vec<Active>,
    /// Nodes found dark outside a daemon fault: when chaos reboots them, and when
    /// they were found.
    reboot_at: BTreeMap<usize, (Instant, i64)>,
    injected: Vec<InjectedFault>,
    skipped: Vec<SkippedFault>,
    node_events: Vec<NodeEvent>,
    /// (node, time) when chaos powered a node off or rebooted it (its VIP is gone).
    power_offs: Vec<(String, i64)>,
    t0: Instant,
    start_ns: i64,
}

impl Runner<'_> {
    fn check(&self) -> Result<(), ChaosError> {
        if self.stop.load(Ordering::Relaxed) {
            Err(BenchError::Interrupted)
        } else {
            Ok(())
        }
    }

    fn say(&mut self, msg: &str) {
        let at = self.t0.elapsed().as_secs_f64();
        let _ = writeln!(self.out, "[+{at:>7.1}s] {msg}");
    }

    fn max_down(&self) -> usize {
        (self.cfg.nodes - 1) / 2
    }

    /// Nodes out of the cluster now: daemon faults, isolation, a partition's minority
    /// side, and nodes found dark waiting for their reboot.
    fn down(&self) -> BTreeSet<usize> {
        let mut d: BTreeSet<usize> = self.reboot_at.keys().copied().collect();
        for a in &self.active {
            if a.kind.takes_node_down() {
                d.extend(&a.nodes);
            }
        }
        d
    }

    fn links_are_up(lab: &Lab, node: usize) -> bool {
        lab.exec(Ns::Node(node), &["ip", "-o", "link", "show", "dev", "eth0"])
            .map(|o| {
                let t = String::from_utf8_lossy(&o.stdout);
                t.split(['<', '>'])
                    .nth(1)
                    .is_some_and(|flags| flags.split(',').any(|f| f == "UP"))
            })
            .unwrap_or(false)
    }

    /// What a reboot does to a dark node: the VIP is gone (addresses do not survive a
    /// reboot), links come up, tandemd starts.
    fn reboot(&mut self, lab: &mut Lab, node: usize) -> Result<(), ChaosError> {
        let ns = lab.ns_name(Ns::Node(node))?;
        let at = realtime_ns();
        let _ = netns::run_checked(
            "ip",
            &[
                "-n",
                &ns,
                "addr",
                "del",
                &format!("{VIP}/{VIP_PREFIX}"),
                "dev",
                "eth0",
            ],
            None,
        );
        // fence_lab downs every link, lo included.
        let _ = lab.exec(Ns::Node(node), &["ip", "link", "set", "lo", "up"]);
        lab.links_up(node)?;
        self.power_offs.push((lab.node_name(node), at));
        if !lab.is_running(node) {
            lab.start(node)?;
        }
        Ok(())
    }

    /// Brings a node whose daemon fault ends back: SIGCONT, restart, or reboot when it
    /// was fenced meanwhile. Returns a note when something other than planned happened.
    fn revive(
        &mut self,
        lab: &mut Lab,
        node: usize,
        kind: FaultKind,
    ) -> Result<Option<String>, ChaosError> {
        let name = lab.node_name(node);
        if lab.is_running(node) {
            if kind == FaultKind::Pause {
                lab.resume(node)?;
            }
            return Ok(None);
        }
        let links_up = Self::links_are_up(lab, node);
        if kind == FaultKind::PowerLoss || !links_up {
            self.reboot(lab, node)?;
            return Ok(match kind {
                FaultKind::PowerLoss => None,
                _ => Some(format!("{name} had been fenced: rebooted")),
            });
        }
        lab.start(node)?;
        Ok(match kind {
            FaultKind::DaemonCrash | FaultKind::GracefulRestart => None,
            _ => Some(format!(
                "{name}'s tandemd had exited ({}): restarted",
                lab.last_exit(node)
                    .map(|e| e.to_string())
                    .unwrap_or_default()
            )),
        })
    }

    fn heal(&mut self, lab: &mut Lab, a: Active) -> Result<(), ChaosError> {
        let mut notes = Vec::new();
        match a.kind {
            k if k.on_daemon() => {
                for &n in &a.nodes {
                    if let Some(note) = self.revive(lab, n, k)? {
                        notes.push(note);
                    }
                }
            }
            FaultKind::CutLink => lab.heal_link(a.nodes[0], a.link)?,
            FaultKind::Isolate => lab.heal(a.nodes[0])?,
            FaultKind::Partition => lab.partition(&[])?,
            FaultKind::Loss => lab.set_loss(0)?,
            _ => {}
        }
        let what = format!(
            "healed #{} {} {}",
            a.fault,
            a.kind.name(),
            a.nodes
                .iter()
                .map(|&n| lab.node_name(n))
                .collect::<Vec<_>>()
                .join("+")
        )
        .trim_end()
        .to_string();
        let line = if notes.is_empty() {
            what
        } else {
            format!("{what} ({})", notes.join("; "))
        };
        self.say(&line);
        if let Some(f) = self.injected.iter_mut().find(|f| f.index == a.fault) {
            f.healed_ns = Some(realtime_ns());
            f.notes.extend(notes);
        }
        Ok(())
    }

    fn skip(&mut self, p: &PlannedFault, reason: String) {
        self.say(&format!(
            "skipping #{} {}: {reason}",
            p.index,
            p.kind.name()
        ));
        self.skipped.push(SkippedFault {
            index: p.index,
            kind: p.kind,
            reason,
        });
    }

    fn inject(
        &mut self,
        lab: &mut Lab,
        p: &PlannedFault,
        observer: &Observer,
    ) -> Result<(), ChaosError> {
        let owner = observer
            .last_reply(Duration::from_millis(500))
            .and_then(|r| self.macs.get(&r.mac).copied());
        let (node, hit_owner) = match p.target {
            Target::Owner => match owner {
                Some(o) => (o, true),
                None => (p.fallback, false),
            },
            Target::Node(n) => (n, owner == Some(n) && p.kind != FaultKind::Loss),
        };
        let mut nodes = vec![node];
        if p.kind == FaultKind::Partition {
            if let Some(partner) = p.partner {
                if partner != node {
                    nodes.push(partner);
                }
            }
        }
        if p.kind == FaultKind::Loss {
            nodes.clear();
        }
        if let Some(other) = self.active.iter().find(|a| a.conflicts(p.kind, &nodes)) {
            let reason = format!("#{} {} is active", other.fault, other.kind.name());
            self.skip(p, reason);
            return Ok(());
        }
        let down = self.down();
        if p.kind.takes_node_down() {
            if nodes.iter().any(|n| down.contains(n)) {
                self.skip(p, format!("n{node} is already down"));
                return Ok(());
            }
            if down.len() + nodes.len() > self.max_down() {
                self.skip(
                    p,
                    format!(
                        "it would take down {} of {} nodes (at most {} may be down)",
                        down.len() + nodes.len(),
                        self.cfg.nodes,
                        self.max_down()
                    ),
                );
                return Ok(());
            }
        }
        if p.kind.on_daemon() && !lab.is_running(node) {
            self.skip(p, format!("n{node} runs no tandemd"));
            return Ok(());
        }
        let start_ns = realtime_ns();
        match p.kind {
            FaultKind::PowerLoss => {
                // Links first: a dead machine no longer answers anything.
                lab.links_down(node)?;
                let _ = lab.kill(node);
                self.power_offs.push((lab.node_name(node), start_ns));
            }
            // The process the OOM killer picks: the worker, not the lease guard.
            FaultKind::DaemonCrash => lab.kill_worker(node)?,
            FaultKind::Pause => lab.pause(node)?,
            FaultKind::GracefulRestart => {
                if let Err(e) = lab.terminate(node) {
                    self.say(&format!("n{node}: {e}"));
                }
            }
            FaultKind::CutLink => lab.cut_link(node, p.link)?,
            FaultKind::Isolate => lab.isolate(node)?,
            FaultKind::Partition => {
                let rest: Vec<usize> = (1..=self.cfg.nodes)
                    .filter(|n| !nodes.contains(n))
                    .collect();
                lab.partition(&[&nodes, &rest])?;
            }
            FaultKind::Loss => lab.set_loss(30)?,
        }
        let names: Vec<String> = nodes.iter().map(|&n| lab.node_name(n)).collect();
        self.say(&format!(
            "#{} {}{}{}{} for {:.1}s",
            p.index,
            p.kind.name(),
            if names.is_empty() {
                String::new()
            } else {
                format!(" {}", names.join("+"))
            },
            if p.kind == FaultKind::CutLink {
                format!(" link {}", p.link)
            } else {
                String::new()
            },
            if hit_owner { " (the owner)" } else { "" },
            p.duration_ms as f64 / 1000.0
        ));
        self.injected.push(InjectedFault {
            index: p.index,
            kind: p.kind,
            nodes: names,
            link: (p.kind == FaultKind::CutLink).then_some(p.link),
            hit_owner,
            start_ns,
            healed_ns: None,
            notes: Vec::new(),
        });
        self.active.push(Active {
            fault: p.index,
            kind: p.kind,
            nodes,
            link: p.link,
            heal_at: Instant::now() + Duration::from_millis(p.duration_ms),
        });
        Ok(())
    }

    /// Nodes whose tandemd vanished outside a daemon fault (fenced, self-fenced, or
    /// died): noted, and rebooted after `REBOOT_DELAY`.
    fn janitor(&mut self, lab: &mut Lab) -> Result<(), ChaosError> {
        let now = Instant::now();
        for node in 1..=self.cfg.nodes {
            let under_daemon_fault = self
                .active
                .iter()
                .any(|a| a.kind.on_daemon() && a.nodes.contains(&node));
            if under_daemon_fault {
                continue;
            }
            match self.reboot_at.get(&node).copied() {
                Some((at, seen_ns)) if now >= at => {
                    self.reboot_at.remove(&node);
                    // Classified now, not when first seen: a fence agent kills the
                    // processes before it downs the links.
                    let name = lab.node_name(node);
                    let self_fenced = log_events(&name, &lab.logs(node))
                        .iter()
                        .any(|e| e.what == "self-fence" && e.at_ns >= seen_ns - 5_000_000_000);
                    let what = if self_fenced {
                        "self-fenced (tandemd gone, links down)".to_string()
                    } else if !Self::links_are_up(lab, node) {
                        "fenced (tandemd gone, links down)".to_string()
                    } else {
                        format!(
                            "tandemd exited on its own ({})",
                            lab.last_exit(node)
                                .map(|e| e.to_string())
                                .unwrap_or_default()
                        )
                    };
                    self.node_events.push(NodeEvent {
                        at_ns: seen_ns,
                        node: name.clone(),
                        what: what.clone(),
                    });
                    self.reboot(lab, node)?;
                    self.node_events.push(NodeEvent {
                        at_ns: realtime_ns(),
                        node: name.clone(),
                        what: "rebooted by chaos".into(),
                    });
                    let line = match what.strip_prefix("tandemd") {
                        Some(rest) => format!("{name}'s tandemd{rest}: rebooted"),
                        None => format!("{name} was {what}: rebooted"),
                    };
                    self.say(&line);
                }
                Some(_) => {}
                None if !lab.is_running(node) => {
                    self.say(&format!("{} runs no tandemd any more", lab.node_name(node)));
                    self.reboot_at
                        .insert(node, (now + REBOOT_DELAY, realtime_ns()));
                }
                None => {}
            }
        }
        Ok(())
    }

    fn sleep(&self, d: Duration) -> Result<(), ChaosError> {
        if super::sleep_unless_stopped(self.stop, d) {
            Ok(())
        } else {
            Err(BenchError::Interrupted)
        }
    }

    fn play(
        &mut self,
        lab: &mut Lab,
        plan: &[PlannedFault],
        observer: &Observer,
    ) -> Result<(), ChaosError> {
        let mut next = 0;
        while self.t0.elapsed() < self.cfg.duration {
            self.check()?;
            let now = Instant::now();
            let mut i = 0;
            while i < self.active.len() {
                if self.active[i].heal_at <= now {
                    let a = self.active.remove(i);
                    self.heal(lab, a)?;
                } else {
                    i += 1;
                }
            }
            self.janitor(lab)?;
            if let Some(p) = plan.get(next) {
                if self.t0.elapsed() >= Duration::from_millis(p.at_ms) {
                    next += 1;
                    self.inject(lab, p, observer)?;
                }
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Heals everything still active and reboots dark nodes, then waits until every
    /// daemon runs and the VIP answers.
    fn wind_down(&mut self, lab: &mut Lab, observer: &Observer) -> Result<(), ChaosError> {
        for a in std::mem::take(&mut self.active) {
            self.heal(lab, a)?;
        }
        lab.heal_all()?;
        let end = Instant::now() + self.cfg.recover_timeout;
        loop {
            self.check()?;
            // Dark nodes are rebooted at once now.
            for (at, _) in self.reboot_at.values_mut() {
                *at = Instant::now();
            }
            self.janitor(lab)?;
            let all_running = (1..=self.cfg.nodes).all(|n| lab.is_running(n));
            if all_running
                && self.reboot_at.is_empty()
                && observer.last_reply(Duration::from_millis(100)).is_some()
            {
                return Ok(());
            }
            if Instant::now() >= end {
                return Err(BenchError::Failed(format!(
                    "the cluster did not recover within {:?} after the last fault",
                    self.cfg.recover_timeout
                )));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Writes the report as JSON.
/// Faults (on `nodes`) active in [from, to] or healed less than CONTEXT_GRACE before,
/// described.
fn faults_around(
    injected: &[InjectedFault],
    nodes: &[String],
    from: i64,
    to: i64,
    end_ns: i64,
) -> Vec<String> {
    let grace = CONTEXT_GRACE.as_nanos() as i64;
    injected
        .iter()
        .filter(|f| f.start_ns <= to && f.healed_ns.unwrap_or(end_ns) + grace >= from)
        .filter(|f| f.nodes.iter().any(|n| nodes.contains(n)))
        .map(|f| format!("#{} {} {}", f.index, f.kind.name(), f.nodes.join("+")))
        .collect()
}

/// Runs a chaos session. Progress lines go to `out`; the lab is torn down on return,
/// also on error or interruption.
pub fn run(
    cfg: &ChaosConfig,
    stop: &AtomicBool,
    out: &mut dyn Write,
) -> Result<ChaosReport, ChaosError> {
    if !(3..=5).contains(&cfg.nodes) {
        return Err(BenchError::Failed(format!(
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
        .map_err(|e| BenchError::Failed(format!("the lab config is refused: {e}")))?;
    let result = session(cfg, &plan, &mut lab, stop, out);
    if let Err(e) = &result {
        if !matches!(e, BenchError::Interrupted) {
            let _ = writeln!(out, "chaos failed: {e}; last log lines:");
            for node in 1..=lab.node_count() {
                let log = lab.logs(node);
                let lines: Vec<&str> = log.lines().collect();
                let _ = writeln!(out, "---- n{node} ----");
                for l in &lines[lines.len().saturating_sub(15)..] {
                    let _ = writeln!(out, "{}", super::bench::strip_ansi(l));
                }
            }
        }
    }
    lab.teardown();
    result
}

fn session(
    cfg: &ChaosConfig,
    plan: &[PlannedFault],
    lab: &mut Lab,
    stop: &AtomicBool,
    out: &mut dyn Write,
) -> Result<ChaosReport, ChaosError> {
    let mut macs = BTreeMap::new();
    let mut node_macs = BTreeMap::new();
    for n in 1..=cfg.nodes {
        let mac = eth0_mac(lab, Ns::Node(n))?;
        macs.insert(mac, n);
        node_macs.insert(lab.node_name(n), mac_string(&mac));
    }
    let mac_names: BTreeMap<[u8; 6], String> =
        macs.iter().map(|(m, &n)| (*m, lab.node_name(n))).collect();
    // Declared after the lab borrow: dropped (thread joined) before the lab goes.
    let observer = Observer::start(lab)?;
    lab.start_all()?;
    let _ = writeln!(
        out,
        "lab {} up; waiting for the VIP to answer ...",
        lab.prefix()
    );
    let formed = Instant::now();
    while observer.last_reply(Duration::from_millis(100)).is_none() {
        if stop.load(Ordering::Relaxed) {
            return Err(BenchError::Interrupted);
        }
        if formed.elapsed() > cfg.form_timeout {
            return Err(BenchError::Failed(format!(
                "no answer for the VIP within {:?} of start",
                cfg.form_timeout
            )));
        }
        thread::sleep(Duration::from_millis(20));
    }
    let mut runner = Runner {
        cfg,
        stop,
        out,
        macs,
        active: Vec::new(),
        reboot_at: BTreeMap::new(),
        injected: Vec::new(),
        skipped: Vec::new(),
        node_events: Vec::new(),
        power_offs: Vec::new(),
        t0: Instant::now(),
        start_ns: realtime_ns(),
    };
    runner.say("chaos begins");
    let played = runner
        .play(lab, plan, &observer)
        .and_then(|()| runner.wind_down(lab, &observer));
    let failure = match played {
        Ok(()) => None,
        Err(BenchError::Interrupted) => return Err(BenchError::Interrupted),
        Err(e) => Some(e.to_string()),
    };
    if failure.is_none() {
        // A little steady state after recovery, to see any late second owner.
        runner.say("all healed; observing the steady state");
        runner.sleep(Duration::from_secs(2))?;
    }
    let obs = observer.finish();
    let end_ns = realtime_ns();

    let mut summary = analyze(&obs, &mac_names);
    let mut failing = 0;
    for w in &mut summary.dual_windows {
        w.faults_active = faults_around(&runner.injected, &w.nodes, w.start_ns, w.end_ns, end_ns);
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
    Ok(ChaosReport {
        seed: cfg.seed,
        nodes: cfg.nodes,
        duration_s: cfg.duration.as_secs_f64(),
        interval_ms: ms(cfg.interval),
        deadtime_ms: ms(cfg.deadtime),
        fencing: cfg.fencing,
        observe_period_ms: ms(OBSERVE_PERIOD),
        start_ns: runner.start_ns,
        end_ns,
        node_macs,
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
        failure,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_a_function_of_the_seed() {
        let d = Duration::from_secs(300);
        let a = schedule(7, 3, 2, d);
        let b = schedule(7, 3, 2, d);
        let c = schedule(8, 3, 2, d);
        let key = |s: &[PlannedFault]| -> Vec<(u64, FaultKind, u64)> {
            s.iter().map(|p| (p.at_ms, p.kind, p.duration_ms)).collect()
        };
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&c));
        // 300 s at 2..8 s gaps: 37..150 faults, every kind drawn, gaps in range.
        assert!((37..=150).contains(&a.len()), "{}", a.len());
        for k in FaultKind::ALL {
            assert!(a.iter().any(|p| p.kind == k), "{k:?} never drawn");
        }
        for w in a.windows(2) {
            let gap = w[1].at_ms - w[0].at_ms;
            assert!((GAP_MS.0..=GAP_MS.1).contains(&gap), "{gap}");
        }
        assert!(a.iter().all(|p| p.at_ms < 300_000 && p.link < 2));
        assert!(a.iter().all(|p| match p.target {
            Target::Node(n) => (1..=3).contains(&n),
            Target::Owner => true,
        }));
    }

    fn reply(mac: [u8; 6], vip: Ipv4Addr, to: Ipv4Addr) -> Vec<u8> {
        let mut f = arp_request(mac, vip, to).to_vec();
        // Turn the request into a reply: op 2, target = `to`.
        f[20..22].copy_from_slice(&[0, 2]);
        f[28..32].copy_from_slice(&vip.octets());
        f[38..42].copy_from_slice(&to.octets());
        f
    }

    #[test]
    fn arp_frames_are_built_and_classified() {
        let client = Ipv4Addr::new(192, 0, 2, 200);
        let me = [2, 0, 0, 0, 0, 1];
        let req = arp_request(me, client, VIP);
        assert_eq!(&req[0..6], &[0xff; 6]);
        assert_eq!(&req[28..32], &client.octets());
        assert_eq!(&req[38..42], &VIP.octets());
        // Our own request is not from the VIP.
        assert_eq!(classify_arp(&req, VIP, client), None);
        let owner = [2, 0, 0, 0, 0, 9];
        let r = reply(owner, VIP, client);
        assert_eq!(
            classify_arp(&r, VIP, client),
            Some(ArpFromVip::Reply(owner))
        );
        // A gratuitous ARP (request, sender = target = VIP).
        let garp = arp_request(owner, VIP, VIP);
        assert_eq!(
            classify_arp(&garp, VIP, client),
            Some(ArpFromVip::Other(owner))
        );
        // Another address's reply, a short frame, not ARP.
        let other = reply(owner, Ipv4Addr::new(192, 0, 2, 7), client);
        assert_eq!(classify_arp(&other, VIP, client), None);
        assert_eq!(classify_arp(&r[..30], VIP, client), None);
        let mut ip = r.clone();
        ip[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(classify_arp(&ip, VIP, client), None);
    }

    fn obs_from(rounds: usize, replies: &[(u32, [u8; 6])]) -> Observation {
        let ms = 1_000_000i64;
        Observation {
            rounds: (0..rounds as i64).map(|r| r * 5 * ms).collect(),
            replies: replies
                .iter()
                .map(|&(round, mac)| ArpSeen {
                    round,
                    at_ns: i64::from(round) * 5 * ms + ms / 10,
                    mac,
                })
                .collect(),
            announcements: Vec::new(),
        }
    }

    #[test]
    fn analysis_finds_failovers_outages_and_dual_owners() {
        let (a, b) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let names: BTreeMap<[u8; 6], String> =
            [(a, "n1".to_string()), (b, "n2".to_string())].into();
        let mut replies = Vec::new();
        // a answers rounds 0..10, silence 10..30, b answers 30..40, both at 40..43 and 45,
        // then b alone 46..50; 50..60 unanswered (trailing outage).
        replies.extend((0..10).map(|r| (r, a)));
        replies.extend((30..40).map(|r| (r, b)));
        for r in [40, 41, 42, 45] {
            replies.push((r, a));
            replies.push((r, b));
        }
        replies.extend([(43, b), (44, b)]);
        replies.extend((46..50).map(|r| (r, b)));
        let s = analyze(&obs_from(60, &replies), &names);
        assert_eq!(s.owner_changes.len(), 1, "{s:?}");
        let c = &s.owner_changes[0];
        assert_eq!((c.from.as_str(), c.to.as_str()), ("n1", "n2"));
        assert!((c.gap_ms - 105.0).abs() < 0.01 && !c.through_dual, "{s:?}");
        assert_eq!(s.outages.len(), 2, "{s:?}");
        assert!((s.downtime_ms - (105.0 + 49.9)).abs() < 0.01, "{s:?}");
        assert_eq!(s.dual_owner_rounds, 4);
        assert_eq!(s.dual_windows.len(), 1, "{s:?}");
        assert_eq!(s.dual_windows[0].nodes, vec!["n1", "n2"]);
        assert_eq!(s.dual_windows[0].dual_rounds, 4);
        // n1 -> both -> n2: a change through a dual window, no gap.
        let mut replies: Vec<(u32, [u8; 6])> = (0..5).map(|r| (r, a)).collect();
        replies.extend([(5, a), (5, b), (6, b)]);
        let s = analyze(&obs_from(7, &replies), &names);
        assert_eq!(s.owner_changes.len(), 1, "{s:?}");
        assert!(s.owner_changes[0].through_dual, "{s:?}");
        assert!((s.owner_changes[0].gap_ms - 5.0).abs() < 0.01, "{s:?}");
        // One MAC only: no dual owner.
        let s = analyze(&obs_from(10, &[(1, a), (1, a), (2, a)]), &names);
        assert_eq!(s.dual_owner_rounds, 0);
        assert!(s.dual_windows.is_empty());
    }

    #[test]
    fn log_intervals_end_at_removal_or_power_off() {
        let log1 = "2026-01-01T00:00:01.000000Z  INFO vip: added 192.0.2.100/24 to eth0 resource=\"vip\"\n\
                    2026-01-01T00:00:05.000000Z  WARN tandem::daemon::executor: n2 is fenced (confirmed off)\n\
                    2026-01-01T00:00:09.000000Z  INFO vip: removed 192.0.2.100 from eth0\n";
        let log2 = "2026-01-01T00:00:03.000000Z  INFO vip: added 192.0.2.100/24 to eth0\n";
        let mut ev = log_events("n1", log1);
        ev.extend(log_events("n2", log2));
        assert!(ev
            .iter()
            .any(|e| e.what == "fenced" && e.node == "n2" && e.by.as_deref() == Some("n1")));
        let base = crate::lab::bench::parse_log_time("2026-01-01T00:00:00.000000Z x").unwrap();
        let s = 1_000_000_000;
        let (iv, ov) = vip_intervals(&ev, &[], base + 20 * s);
        assert_eq!(iv.len(), 2, "{iv:?}");
        // n2 held it from 3 s until it was fenced at 5 s: 2 s of overlap with n1.
        assert_eq!(ov.len(), 1, "{ov:?}");
        assert_eq!(ov[0].from_ns, base + 3 * s);
        assert_eq!(ov[0].to_ns, base + 5 * s);
        // A power-off by chaos at 4 s ends it earlier.
        let (_, ov) = vip_intervals(&ev, &[("n2".into(), base + 4 * s)], base + 20 * s);
        assert_eq!(ov[0].to_ns, base + 4 * s);
    }

    #[test]
    fn a_guard_take_down_ends_a_vip_interval() {
        let log1 = "2026-01-01T00:00:01.000000Z  INFO vip: added 192.0.2.100/24 to eth0\n\
                    2026-01-01T00:00:02.500000Z  WARN tandemd[guard]: took down 1 group(s) in 40 µs: 1 address(es) removed\n";
        let log2 = "2026-01-01T00:00:03.000000Z  INFO vip: added 192.0.2.100/24 to eth0\n";
        let mut ev = log_events("n1", log1);
        ev.extend(log_events("n2", log2));
        let base = crate::lab::bench::parse_log_time("2026-01-01T00:00:00.000000Z x").unwrap();
        let (iv, ov) = vip_intervals(&ev, &[], base + 20_000_000_000);
        assert!(ov.is_empty(), "{ov:?}");
        assert_eq!(iv[0].to_ns, Some(base + 2_500_000_000), "{iv:?}");
    }

    #[test]
    fn faults_around_a_dual_owner_window_are_listed_as_context() {
        let f = |kind, node: &str, start: i64, healed: i64| InjectedFault {
            index: 1,
            kind,
            nodes: vec![node.into()],
            link: None,
            hit_owner: true,
            start_ns: start,
            healed_ns: Some(healed),
            notes: Vec::new(),
        };
        let nodes = vec!["n1".to_string(), "n2".to_string()];
        let s = 1_000_000_000;
        let act = faults_around(&[f(FaultKind::Pause, "n1", 0, 2 * s)], &nodes, s, s, 9 * s);
        assert_eq!(act, vec!["#1 pause n1".to_string()]);
        // Long healed: not active.
        let act = faults_around(
            &[f(FaultKind::Pause, "n1", 0, s)],
            &nodes,
            9 * s,
            9 * s,
            9 * s,
        );
        assert!(act.is_empty());
        // A fault of a node that is not one of the two answering.
        let act = faults_around(&[f(FaultKind::Pause, "n3", 0, 2 * s)], &nodes, s, s, 9 * s);
        assert!(act.is_empty());
    }
}
