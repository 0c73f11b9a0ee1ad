//! `tandem-lab bench failover`: measures how long a VIP is unreachable when its owner
//! fails, as a client sees it. A 3-node lab (n1, n2 may own group `www`, n3 is a witness)
//! runs the real daemons; a probe thread inside the client namespace sends an ICMP echo to
//! the VIP every 2 ms through the kernel's normal stack (so the client's ARP cache decides
//! which MAC gets it, as for a real client) and reads the replies on an AF_PACKET socket,
//! which gives the answering MAC. A netlink watcher in each owner namespace timestamps the
//! moment the VIP appears on an interface. Each run injects one fault on the owner, and
//! the daemons' own log timestamps (same wall clock) say where the time went.
//!
//! All times are CLOCK_REALTIME nanoseconds, because the daemons log wall-clock times.

use std::fs::File;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::demo::{node_state, query_status};
use super::{netns, Lab, LabSpec, Ns};
use crate::control::StatusReport;

/// The group the bench moves around.
pub const GROUP: &str = "www";
/// The VIP (192.0.2.0/24 is the lab's link 0).
pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
pub const VIP_PREFIX: u8 = 24;
/// How often the client probes the VIP.
pub const PROBE_PERIOD: Duration = Duration::from_millis(2);
/// ICMP echo identifier of the probe (any fixed value; replies are matched on it).
const PROBE_ID: u16 = 0x7a3d;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("interrupted")]
    Interrupted,
    #[error(transparent)]
    Lab(#[from] super::LabError),
    #[error("{0}")]
    Failed(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let context = context.into();
    move |source| BenchError::Io { context, source }
}

/// What happens to the owner in each run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// SIGKILL of tandemd and every link down at once: a power loss.
    PowerLoss,
    /// SIGTERM: the owner stops its resources and hands the group over.
    Graceful,
    /// `tandemctl move www OTHER`: a controlled switchover, nothing dies.
    Switchover,
}

impl Fault {
    pub fn describe(self) -> &'static str {
        match self {
            Fault::PowerLoss => "power loss (kill -9 of tandemd + links down)",
            Fault::Graceful => "graceful stop (SIGTERM of tandemd)",
            Fault::Switchover => "switchover (tandemctl move)",
        }
    }
}

#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub runs: usize,
    pub interval: Duration,
    pub deadtime: Duration,
    pub fault: Fault,
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
    /// Survivor logs the old owner `node-down` (power loss only; a graceful stop says goodbye).
    pub detected_ms: Option<f64>,
    /// Survivor logs "waiting for lease of X to expire (N ms)": the N it had to wait.
    pub lease_wait_reported_ms: Option<f64>,
    /// Survivor logs "candidate for term": it asks the quorum.
    pub candidate_ms: Option<f64>,
    /// Survivor logs `became-owner` (quorum granted the term).
    pub became_owner_ms: Option<f64>,
    /// Old owner logs "vip: removed" (graceful stop, switchover).
    pub old_vip_removed_ms: Option<f64>,
    /// Survivor logs "vip: added".
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
            runs_requested: cfg.runs,
            interval_ms: ms(cfg.interval),
            deadtime_ms: ms(cfg.deadtime),
            probe_period_ms: ms(PROBE_PERIOD),
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
        let mut s = String::new();
        let row = |s: &mut String, name: &str, st: Option<Stats>| {
            match st {
                Some(x) => s.push_str(&format!(
                    "  {name:<46} {:>3} {:>8.1} {:>8.1} {:>8.1} {:>8.1}\n",
                    x.n, x.min, x.median, x.p95, x.max
                )),
                None => s.push_str(&format!(
                    "  {name:<46}   0        -        -        -        -\n"
                )),
            };
        };
        s.push_str(&format!(
            "{} runs, {}; heartbeat interval {} ms, deadtime {} ms; probe every {} ms\n",
            self.samples.len(),
            self.fault.describe(),
            self.interval_ms,
            self.deadtime_ms,
            self.probe_period_ms
        ));
        s.push_str(&format!(
            "  {:<46} {:>3} {:>8} {:>8} {:>8} {:>8}\n",
            "ms", "n", "min", "median", "p95", "max"
        ));
        row(
            &mut s,
            "(a) fault -> VIP on survivor's eth0",
            self.vip_on_survivor,
        );
        row(
            &mut s,
            "(b) client gap: last old-MAC -> first new-MAC",
            self.client_gap,
        );
        row(
            &mut s,
            "    fault -> first reply from new MAC",
            self.fault_to_new_reply,
        );
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
        let bd = |f: fn(&Breakdown) -> Option<f64>| -> Option<Stats> {
            stats(
                &self
                    .samples
                    .iter()
                    .filter_map(|x| f(&x.breakdown))
                    .collect::<Vec<_>>(),
            )
        };
        row(
            &mut s,
            "survivor: old owner node-down",
            bd(|b| b.detected_ms),
        );
        row(
            &mut s,
            "survivor: lease wait it reported (duration)",
            bd(|b| b.lease_wait_reported_ms),
        );
        row(
            &mut s,
            "survivor: candidate for term",
            bd(|b| b.candidate_ms),
        );
        row(
            &mut s,
            "survivor: became-owner (quorum grant)",
            bd(|b| b.became_owner_ms),
        );
        row(
            &mut s,
            "old owner: vip removed",
            bd(|b| b.old_vip_removed_ms),
        );
        row(&mut s, "survivor: vip added", bd(|b| b.vip_added_log_ms));
        row(
            &mut s,
            "survivor: group-started",
            bd(|b| b.group_started_ms),
        );
        row(
            &mut s,
            "client: first gratuitous ARP from new MAC",
            bd(|b| b.first_garp_ms),
        );
        row(
            &mut s,
            "client: first echo reply from new MAC",
            bd(|b| b.first_new_reply_ms),
        );
        s
    }
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) fn ns_to_ms(ns: i64) -> f64 {
    ns as f64 / 1e6
}

/// CLOCK_REALTIME in ns since the epoch (the clock the daemons' log lines use).
pub fn realtime_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The `groups:` section of the bench lab.
pub fn group_yaml() -> String {
    format!(
        "groups:\n  - name: {GROUP}\n    prefer: n1\n    failback: false\n    resources:\n      \
         - vip: {{ name: vip, address: {VIP}/{VIP_PREFIX}, interface: eth0 }}\n"
    )
}

// ----- log parsing ----------------------------------------------------------------------

/// Removes ANSI colour sequences (tracing colours its output even into a file).
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// `2026-11-23T11:37:35.246478Z ...` (tracing's default, UTC) -> ns since the epoch.
pub fn parse_log_time(line: &str) -> Option<i64> {
    let ts = line.split_whitespace().next()?;
    let ts = ts.strip_suffix('Z')?;
    let (date, time) = ts.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>().ok());
    let (h, mi, s) = (t.next()??, t.next()??, t.next()??);
    if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_ns = frac.parse::<i64>().ok()? * 10i64.pow(9 - frac.len() as u32);
    let secs = days_from_civil(y, mo, da) * 86400 + h * 3600 + mi * 60 + s;
    Some(secs * 1_000_000_000 + frac_ns)
}

/// The log's lines at or after `since` (ns), colour removed, with their times.
pub fn log_lines_since(log: &str, since: i64) -> Vec<(i64, String)> {
    log.lines()
        .map(strip_ansi)
        .filter_map(|l| parse_log_time(&l).map(|t| (t, l)))
        .filter(|(t, _)| *t >= since)
        .collect()
}

fn first_match(lines: &[(i64, String)], pred: impl Fn(&str) -> bool) -> Option<i64> {
    lines.iter().find(|(_, l)| pred(l)).map(|(t, _)| *t)
}

/// Fills the log-based part of a breakdown.
pub fn breakdown_from_logs(
    survivor_log: &str,
    victim_log: &str,
    victim: &str,
    fault_ns: i64,
) -> Breakdown {
    let sl = log_lines_since(survivor_log, fault_ns);
    let vl = log_lines_since(victim_log, fault_ns);
    let rel = |t: Option<i64>| t.map(|t| ns_to_ms(t - fault_ns));
    let group = format!("group=\"{GROUP}\"");
    let vip_added = format!("vip: added {VIP}/");
    let vip_removed = format!("vip: removed {VIP} ");
    let lease_wait = sl
        .iter()
        .find(|(_, l)| l.contains("waiting for lease of"))
        .and_then(|(_, l)| {
            let open = l.find("expire (")? + "expire (".len();
            let rest = &l[open..];
            rest[..rest.find(" ms)")?].trim().parse::<f64>().ok()
        });
    Breakdown {
        detected_ms: rel(first_match(&sl, |l| {
            l.contains("kind=\"node-down\"") && l.contains(&format!("node=\"{victim}\""))
        })),
        lease_wait_reported_ms: lease_wait,
        candidate_ms: rel(first_match(&sl, |l| {
            l.contains("candidate for term") && l.contains(&group)
        })),
        became_owner_ms: rel(first_match(&sl, |l| {
            l.contains("kind=\"became-owner\"") && l.contains(&group)
        })),
        old_vip_removed_ms: rel(first_match(&vl, |l| l.contains(&vip_removed))),
        vip_added_log_ms: rel(first_match(&sl, |l| l.contains(&vip_added))),
        group_started_ms: rel(first_match(&sl, |l| {
            l.contains("kind=\"group-started\"") && l.contains(&group)
        })),
        first_garp_ms: None,
        first_new_reply_ms: None,
    }
}

// ----- raw sockets ----------------------------------------------------------------------

pub(crate) fn last_os_error(what: &str) -> BenchError {
    BenchError::Io {
        context: what.to_string(),
        source: std::io::Error::last_os_error(),
    }
}

/// Moves the calling thread (only it) into the named network namespace.
pub(crate) fn enter_netns(ns: &str) -> Result<(), BenchError> {
    let path = netns::netns_path(ns);
    let f = File::open(&path).map_err(io_err(format!("opening {}", path.display())))?;
    // SAFETY: setns on a valid fd; it affects only the calling thread.
    if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(last_os_error(&format!("setns into {ns}")));
    }
    Ok(())
}

pub(crate) fn socket(domain: i32, ty: i32, proto: i32, what: &str) -> Result<OwnedFd, BenchError> {
    // SAFETY: plain socket(2); the fd is owned by the OwnedFd from here on.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK, proto) };
    if fd < 0 {
        return Err(last_os_error(what));
    }
    // SAFETY: fd is a fresh, valid descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens a non-blocking AF_PACKET socket for the ethertype `protocol` (host order, e.g.
/// `libc::ETH_P_ALL`) bound to the calling thread's namespace's eth0, so that it sees only
/// the client's link. Shared by the failover probe and the chaos observer.
pub(crate) fn packet_socket_on_eth0(protocol: u16) -> Result<OwnedFd, BenchError> {
    let protocol_be = protocol.to_be();
    let fd = socket(
        libc::AF_PACKET,
        libc::SOCK_RAW,
        i32::from(protocol_be),
        "AF_PACKET socket",
    )?;
    // SAFETY: a valid NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(c"eth0".as_ptr()) };
    if ifindex == 0 {
        return Err(last_os_error("client eth0 ifindex"));
    }
    // SAFETY: zeroed sockaddr_ll is valid; fields set below.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol_be;
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: bind with a properly sized sockaddr_ll.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if r != 0 {
        return Err(last_os_error("binding the packet socket to eth0"));
    }
    Ok(fd)
}

/// Waits until `until` (at most a second) for frames on an AF_PACKET socket, then hands
/// every frame received — not the ones this host sent — to `each` with its CLOCK_REALTIME
/// receive time. The socket must be non-blocking. Shared by the failover probe and the
/// chaos observer, whose send loops differ but receive the same way.
pub(crate) fn drain_incoming(
    fd: &OwnedFd,
    until: Instant,
    buf: &mut [u8],
    mut each: impl FnMut(i64, &[u8]),
) {
    let wait = until.saturating_duration_since(Instant::now());
    let ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: wait.subsec_nanos() as libc::c_long,
    };
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, valid timespec, no signal mask.
    unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
    loop {
        // SAFETY: zeroed sockaddr_ll is valid as an out-parameter.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        // SAFETY: recvfrom into our buffer and sockaddr.
        let n = unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                &mut from as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                &mut len,
            )
        };
        if n <= 0 {
            return;
        }
        let at_ns = realtime_ns();
        if from.sll_pkttype != libc::PACKET_OUTGOING {
            each(at_ns, &buf[..n as usize]);
        }
    }
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from_be_bytes([chunk[0], 0])
        };
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn echo_request(seq: u16) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0] = 8; // echo request
    p[4..6].copy_from_slice(&PROBE_ID.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..16].copy_from_slice(b"tandembn");
    let c = checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

pub fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// What the client saw on its eth0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// An ICMP echo reply from the VIP.
    Reply { mac: [u8; 6] },
    /// An ARP frame whose sender is the VIP (gratuitous or a reply).
    Arp { mac: [u8; 6] },
}

/// Parses one Ethernet frame received by the client.
pub fn classify_frame(frame: &[u8]) -> Option<Seen> {
    if frame.len() < 14 {
        return None;
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&frame[6..12]);
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let body = &frame[14..];
    match ethertype {
        0x0800 => {
            if body.len() < 20 || body[0] >> 4 != 4 {
                return None;
            }
            let ihl = usize::from(body[0] & 0x0f) * 4;
            if body[9] != 1 || body[12..16] != VIP.octets() || body.len() < ihl + 8 {
                return None;
            }
            let icmp = &body[ihl..];
            let id = u16::from_be_bytes([icmp[4], icmp[5]]);
            (icmp[0] == 0 && id == PROBE_ID).then_some(Seen::Reply { mac })
        }
        0x0806 => {
            // htype 1, ptype IPv4, hlen 6, plen 4; sender protocol address at 14..18.
            if body.len() < 28 || body[4] != 6 || body[5] != 4 || body[14..18] != VIP.octets() {
                return None;
            }
            let mut sha = [0u8; 6];
            sha.copy_from_slice(&body[8..14]);
            Some(Seen::Arp { mac: sha })
        }
        _ => None,
    }
}

#[derive(Debug, Clone, Copy)]
struct Observed {
    at_ns: i64,
    seen: Seen,
}

type Shared<T> = Arc<Mutex<Vec<T>>>;

fn push<T>(v: &Shared<T>, x: T) {
    if let Ok(mut g) = v.lock() {
        g.push(x);
    }
}

fn take<T>(v: &Shared<T>) -> Vec<T> {
    v.lock()
        .map(|mut g| std::mem::take(&mut *g))
        .unwrap_or_default()
}

/// The client-side probe: a thread in the client namespace.
struct Probe {
    stop: Arc<AtomicBool>,
    seen: Shared<Observed>,
    handle: Option<JoinHandle<Result<(), BenchError>>>,
}

impl Probe {
    fn start(client_ns: String) -> Result<Probe, BenchError> {
        let stop = Arc::new(AtomicBool::new(false));
        let seen: Shared<Observed> = Arc::default();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handle = {
            let (stop, seen) = (Arc::clone(&stop), Arc::clone(&seen));
            thread::Builder::new()
                .name("bench-probe".into())
                .spawn(move || {
                    let socks = Probe::open(&client_ns);
                    let (pkt, icmp) = match socks {
                        Ok(s) => {
                            let _ = ready_tx.send(Ok(()));
                            s
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e.to_string()));
                            return Err(e);
                        }
                    };
                    Probe::run(&pkt, &icmp, &stop, &seen);
                    Ok(())
                })
                .map_err(io_err("starting the probe thread"))?
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Probe {
                stop,
                seen,
                handle: Some(handle),
            }),
            Ok(Err(e)) => Err(BenchError::Failed(format!("probe: {e}"))),
            Err(_) => Err(BenchError::Failed("probe thread died".into())),
        }
    }

    fn open(client_ns: &str) -> Result<(OwnedFd, OwnedFd), BenchError> {
        enter_netns(client_ns)?;
        let pkt = packet_socket_on_eth0(libc::ETH_P_ALL as u16)?;
        let icmp = socket(
            libc::AF_INET,
            libc::SOCK_RAW,
            libc::IPPROTO_ICMP,
            "raw ICMP socket",
        )?;
        Ok((pkt, icmp))
    }

    fn run(pkt: &OwnedFd, icmp: &OwnedFd, stop: &AtomicBool, seen: &Shared<Observed>) {
        // SAFETY: zeroed sockaddr_in is valid.
        let mut dst: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        dst.sin_family = libc::AF_INET as u16;
        dst.sin_addr.s_addr = u32::from(VIP).to_be();
        let mut seq: u16 = 0;
        let mut next_send = Instant::now();
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if now >= next_send {
                seq = seq.wrapping_add(1);
                let p = echo_request(seq);
                // Errors (no neighbour yet, unreachable) are part of what is measured.
                // SAFETY: sendto with a valid buffer and sockaddr_in.
                unsafe {
                    libc::sendto(
                        icmp.as_raw_fd(),
                        p.as_ptr().cast(),
                        p.len(),
                        0,
                        &dst as *const libc::sockaddr_in as *const libc::sockaddr,
                        std::mem::size_of::<libc::sockaddr_in>() as u32,
                    );
                }
                next_send += PROBE_PERIOD;
                if next_send < now {
                    next_send = now + PROBE_PERIOD;
                }
            }
            drain_incoming(pkt, next_send, &mut buf, |at_ns, frame| {
                if let Some(s) = classify_frame(frame) {
                    push(seen, Observed { at_ns, seen: s });
                }
            });
            // The raw ICMP socket gets a copy of every reply too; drain it.
            // SAFETY: recv into our buffer on a non-blocking socket.
            while unsafe { libc::recv(icmp.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) } > 0
            {
            }
        }
    }

    fn take(&self) -> Vec<Observed> {
        take(&self.seen)
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// VIP added to / removed from an interface in a node namespace.
#[derive(Debug, Clone, Copy)]
struct AddrEvent {
    at_ns: i64,
    node: usize,
    added: bool,
}

/// A netlink (RTMGRP_IPV4_IFADDR) listener per owner namespace: exact times of VIP
/// add/remove without polling `ip addr`.
struct AddrWatch {
    stop: Arc<AtomicBool>,
    events: Shared<AddrEvent>,
    handles: Vec<JoinHandle<()>>,
}

const RTMGRP_IPV4_IFADDR: u32 = 0x10;

impl AddrWatch {
    fn start(nodes: &[(usize, String)]) -> Result<AddrWatch, BenchError> {
        let stop = Arc::new(AtomicBool::new(false));
        let events: Shared<AddrEvent> = Arc::default();
        let mut w = AddrWatch {
            stop,
            events,
            handles: Vec::new(),
        };
        for (node, ns) in nodes.iter().cloned() {
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let (stop, events) = (Arc::clone(&w.stop), Arc::clone(&w.events));
            let h = thread::Builder::new()
                .name(format!("bench-addr-n{node}"))
                .spawn(move || match AddrWatch::open(&ns) {
                    Ok(fd) => {
                        let _ = ready_tx.send(Ok(()));
                        AddrWatch::run(&fd, node, &stop, &events);
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                    }
                })
                .map_err(io_err("starting a netlink watcher"))?;
            w.handles.push(h);
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(BenchError::Failed(format!("netlink watcher: {e}"))),
                Err(_) => return Err(BenchError::Failed("netlink watcher died".into())),
            }
        }
        Ok(w)
    }

    fn open(ns: &str) -> Result<OwnedFd, BenchError> {
        enter_netns(ns)?;
        // Blocking with a receive timeout, so the stop flag is seen.
        let fd = crate::guard::netlink::route_socket().map_err(|source| BenchError::Io {
            context: "netlink socket".into(),
            source,
        })?;
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        // SAFETY: setsockopt with a valid timeval.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            );
        }
        // SAFETY: zeroed sockaddr_nl is valid.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as u16;
        sa.nl_groups = RTMGRP_IPV4_IFADDR;
        // SAFETY: bind with a properly sized sockaddr_nl.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sa as *const libc::sockaddr_nl as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_nl>() as u32,
            )
        };
        if r != 0 {
            return Err(last_os_error("binding netlink to RTMGRP_IPV4_IFADDR"));
        }
        Ok(fd)
    }

    fn run(fd: &OwnedFd, node: usize, stop: &AtomicBool, events: &Shared<AddrEvent>) {
        let mut buf = vec![0u8; 16384];
        while !stop.load(Ordering::Relaxed) {
            // SAFETY: recv into our buffer.
            let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n <= 0 {
                continue;
            }
            let at_ns = realtime_ns();
            for added in parse_addr_messages(&buf[..n as usize]) {
                push(events, AddrEvent { at_ns, node, added });
            }
        }
    }

    fn take(&self) -> Vec<AddrEvent> {
        take(&self.events)
    }
}

impl Drop for AddrWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// For each RTM_NEWADDR / RTM_DELADDR about the VIP in a netlink datagram: true for added.
pub fn parse_addr_messages(mut data: &[u8]) -> Vec<bool> {
    const RTM_NEWADDR: u16 = 20;
    const RTM_DELADDR: u16 = 21;
    const IFA_ADDRESS: u16 = 1;
    const IFA_LOCAL: u16 = 2;
    let mut out = Vec::new();
    while data.len() >= 16 {
        let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let ty = u16::from_ne_bytes([data[4], data[5]]);
        if len < 16 || len > data.len() {
            break;
        }
        let msg = &data[16..len];
        if (ty == RTM_NEWADDR || ty == RTM_DELADDR) && msg.len() >= 8 && msg[0] == 2 {
            let mut attrs = &msg[8..];
            let mut hit = false;
            while attrs.len() >= 4 {
                let alen = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
                let aty = u16::from_ne_bytes([attrs[2], attrs[3]]);
                if alen < 4 || alen > attrs.len() {
                    break;
                }
                if (aty == IFA_LOCAL || aty == IFA_ADDRESS)
                    && alen == 8
                    && attrs[4..8] == VIP.octets()
                {
                    hit = true;
                }
                attrs = attrs.get((alen + 3) & !3..).unwrap_or(&[]);
            }
            if hit {
                out.push(ty == RTM_NEWADDR);
            }
        }
        let next = (len + 3) & !3;
        if next >= data.len() {
            break;
        }
        data = &data[next..];
    }
    out
}

// ----- the run --------------------------------------------------------------------------

/// Owner of www if it is running there.
fn running_owner(r: &StatusReport) -> Option<String> {
    r.view
        .groups
        .iter()
        .find(|g| g.name == GROUP && g.state == "running")
        .and_then(|g| g.owner.clone())
}

/// Every node online in every view, all quorate and agreeing on where www runs.
pub(crate) fn stable_owner(lab: &Lab) -> Option<String> {
    let names: Vec<String> = (1..=lab.node_count()).map(|n| lab.node_name(n)).collect();
    let mut owner: Option<String> = None;
    for node in 1..=lab.node_count() {
        let r = query_status(lab, node)?;
        if !r.view.quorate || names.iter().any(|n| node_state(&r, n) != Some("online")) {
            return None;
        }
        let o = running_owner(&r)?;
        if owner.as_ref().is_some_and(|x| *x != o) {
            return None;
        }
        owner = Some(o);
    }
    owner
}

fn node_mac(lab: &Lab, node: usize) -> Result<[u8; 6], BenchError> {
    eth0_mac(lab, Ns::Node(node))
}

/// The MAC address of `eth0` in `ns`.
pub fn eth0_mac(lab: &Lab, ns: Ns) -> Result<[u8; 6], BenchError> {
    let out = lab.exec(ns, &["ip", "-o", "link", "show", "dev", "eth0"])?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mac = text
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .ok_or_else(|| BenchError::Failed(format!("no MAC for {ns:?} eth0 in {text:?}")))?;
    let mut bytes = [0u8; 6];
    let parts: Vec<&str> = mac.split(':').collect();
    if parts.len() != 6 {
        return Err(BenchError::Failed(format!("bad MAC {mac:?}")));
    }
    for (b, p) in bytes.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16)
            .map_err(|_| BenchError::Failed(format!("bad MAC {mac:?}")))?;
    }
    Ok(bytes)
}

pub(crate) struct Ctx<'a> {
    pub(crate) stop: &'a AtomicBool,
    pub(crate) out: &'a mut dyn Write,
}

impl Ctx<'_> {
    pub(crate) fn check(&self) -> Result<(), BenchError> {
        if self.stop.load(Ordering::Relaxed) {
            Err(BenchError::Interrupted)
        } else {
            Ok(())
        }
    }

    pub(crate) fn sleep(&self, d: Duration) -> Result<(), BenchError> {
        if super::sleep_unless_stopped(self.stop, d) {
            Ok(())
        } else {
            Err(BenchError::Interrupted)
        }
    }

    pub(crate) fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        poll: Duration,
        mut f: impl FnMut() -> Result<Option<T>, BenchError>,
    ) -> Result<T, BenchError> {
        let end = Instant::now() + timeout;
        loop {
            self.check()?;
            if let Some(v) = f()? {
                return Ok(v);
            }
            if Instant::now() >= end {
                return Err(BenchError::Failed(format!(
                    "{what}: not reached within {timeout:?}"
                )));
            }
            thread::sleep(poll);
        }
    }
}

/// Runs the whole benchmark. Progress lines go to `out`; the lab is torn down on return.
pub fn run(
    cfg: &BenchConfig,
    stop: &AtomicBool,
    out: &mut dyn Write,
) -> Result<BenchReport, BenchError> {
    if cfg.runs == 0 {
        return Err(BenchError::Failed("--runs must be at least 1".into()));
    }
    let spec = LabSpec {
        nodes: 3,
        witnesses: vec![3],
        links: 2,
        ipv6: false,
        interval: cfg.interval,
        deadtime: cfg.deadtime,
        extra_yaml: group_yaml(),
        tandemd: cfg.tandemd.clone(),
        tandemctl: cfg.tandemctl.clone(),
    };
    let mut lab = Lab::build(spec)?;
    crate::config::load(&lab.config_path(1))
        .map_err(|e| BenchError::Failed(format!("the lab config is refused: {e}")))?;
    let mut ctx = Ctx { stop, out };
    let result = bench(cfg, &mut lab, &mut ctx);
    if matches!(result, Err(ref e) if !matches!(e, BenchError::Interrupted)) {
        let _ = writeln!(ctx.out, "bench failed; last log lines:");
        for node in 1..=lab.node_count() {
            let log = lab.logs(node);
            let lines: Vec<&str> = log.lines().collect();
            let _ = writeln!(ctx.out, "---- n{node} ----");
            for l in &lines[lines.len().saturating_sub(15)..] {
                let _ = writeln!(ctx.out, "{}", strip_ansi(l));
            }
        }
    }
    lab.teardown();
    result
}

fn bench(cfg: &BenchConfig, lab: &mut Lab, ctx: &mut Ctx) -> Result<BenchReport, BenchError> {
    let macs = [node_mac(lab, 1)?, node_mac(lab, 2)?];
    let probe = Probe::start(lab.ns_name(Ns::Client)?)?;
    let watch = AddrWatch::start(&[
        (1, lab.ns_name(Ns::Node(1))?),
        (2, lab.ns_name(Ns::Node(2))?),
    ])?;
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
    let outcome = run_loop(
        cfg,
        lab,
        ctx,
        &probe,
        &watch,
        macs,
        &mut samples,
        &mut unstable,
    );
    drop(watch);
    drop(probe);
    let aborted = match outcome {
        Ok(()) => None,
        Err(BenchError::Interrupted) => return Err(BenchError::Interrupted),
        Err(e) if samples.is_empty() => return Err(e),
        Err(e) => Some(e.to_string()),
    };
    let mut report = BenchReport::from_samples(cfg, samples);
    report.unstable_before_fault = unstable;
    report.aborted = aborted;
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
fn run_loop(
    cfg: &BenchConfig,
    lab: &mut Lab,
    ctx: &mut Ctx,
    probe: &Probe,
    watch: &AddrWatch,
    macs: [[u8; 6]; 2],
    samples: &mut Vec<Sample>,
    unstable: &mut Vec<String>,
) -> Result<(), BenchError> {
    let settle = (cfg.deadtime * 2).max(Duration::from_millis(500));
    let mut run = 0;
    while samples.len() < cfg.runs {
        run += 1;
        let owner = ctx.wait(
            "cluster stable (all online, quorate, www running)",
            cfg.settle_timeout,
            Duration::from_millis(50),
            || {
                for n in 1..=lab.node_count() {
                    if !lab.is_running(n) {
                        let exit = lab.last_exit(n).map(|e| e.to_string()).unwrap_or_default();
                        let fenced = lab.logs(n).contains("SELF-FENCE");
                        return Err(BenchError::Failed(format!(
                            "tandemd on n{n} is gone ({exit}){}",
                            if fenced {
                                "; it self-fenced (see its log)"
                            } else {
                                ""
                            }
                        )));
                    }
                }
                Ok(stable_owner(lab))
            },
        )?;
        let victim = match owner.as_str() {
            "n1" => 1,
            "n2" => 2,
            o => return Err(BenchError::Failed(format!("www runs on {o}, not n1/n2"))),
        };
        let survivor = 3 - victim;
        let (old_mac, new_mac) = (macs[victim - 1], macs[survivor - 1]);
        // Steady state: the client gets replies from the owner.
        ctx.wait(
            "client getting replies from the owner",
            cfg.settle_timeout,
            Duration::from_millis(20),
            || {
                let seen = probe.take();
                Ok(seen
                    .iter()
                    .any(|o| o.seen == Seen::Reply { mac: old_mac })
                    .then_some(()))
            },
        )?;
        ctx.sleep(settle)?;
        let still = stable_owner(lab);
        probe.take();
        watch.take();
        // Some steady-state replies in this run's record, so the last one from the old
        // owner before the fault is in it.
        ctx.sleep(Duration::from_millis(20))?;
        let pre = probe.take();
        // The group must not have moved (or be answered from two MACs) while settling:
        // a sample taken then would measure nothing. Such runs are counted and redone.
        let only_owner = pre.iter().any(|o| o.seen == Seen::Reply { mac: old_mac })
            && pre.iter().all(|o| match o.seen {
                Seen::Reply { mac } | Seen::Arp { mac } => mac == old_mac,
            });
        if still.as_deref() != Some(owner.as_str()) || !only_owner {
            let why = format!(
                "attempt {run}: not stable before the fault (owner was {owner}, now {still:?}; \
                 client saw {} other-MAC frames in the last 20 ms)",
                pre.iter()
                    .filter(|o| !matches!(o.seen, Seen::Reply { mac } | Seen::Arp { mac } if mac == old_mac))
                    .count()
            );
            let _ = writeln!(ctx.out, "{why}; redoing the run");
            unstable.push(why);
            if unstable.len() > cfg.runs * 3 {
                return Err(BenchError::Failed(format!(
                    "the cluster never stayed stable long enough: {unstable:?}"
                )));
            }
            continue;
        }
        let fault_ns = realtime_ns();
        match cfg.fault {
            // Links first: a dead machine's kernel no longer answers, whereas a killed
            // daemon's kernel would reject heartbeats (and answer the client) until the
            // links go down a few ms later.
            Fault::PowerLoss => {
                lab.links_down(victim)?;
                lab.kill(victim)?;
            }
            Fault::Graceful => lab.terminate(victim)?,
            Fault::Switchover => {
                let o = lab.tandemctl(survivor, &["move", GROUP, &lab.node_name(survivor)]);
                if !o.status.success() {
                    return Err(BenchError::Failed(format!(
                        "tandemctl move failed: {}",
                        String::from_utf8_lossy(&o.stderr)
                    )));
                }
            }
        }
        let mut seen: Vec<Observed> = pre;
        ctx.wait(
            "client getting replies from the survivor",
            cfg.run_timeout,
            Duration::from_millis(10),
            || {
                seen.extend(probe.take());
                Ok(seen
                    .iter()
                    .any(|o| o.at_ns >= fault_ns && o.seen == Seen::Reply { mac: new_mac })
                    .then_some(()))
            },
        )?;
        // A little more, to see stray replies from the old MAC (there must be none).
        ctx.sleep(Duration::from_millis(100))?;
        seen.extend(probe.take());
        let addr = watch.take();

        let rel = |t: i64| ns_to_ms(t - fault_ns);
        let first_new = seen
            .iter()
            .find(|o| o.at_ns >= fault_ns && o.seen == Seen::Reply { mac: new_mac })
            .map(|o| o.at_ns);
        let last_old = first_new.and_then(|f| {
            seen.iter()
                .filter(|o| o.at_ns <= f && o.seen == Seen::Reply { mac: old_mac })
                .map(|o| o.at_ns)
                .next_back()
        });
        // Only if the owner did not answer in the 20 ms before the fault: count from it.
        let last_old_or_fault = last_old.unwrap_or(fault_ns);
        let stray = first_new.map_or(0, |f| {
            seen.iter()
                .filter(|o| o.at_ns > f && matches!(o.seen, Seen::Reply { mac } if mac != new_mac))
                .count()
        });
        let vip_at = addr
            .iter()
            .find(|e| e.node == survivor && e.added)
            .map(|e| e.at_ns);
        let mut breakdown = breakdown_from_logs(
            &lab.logs(survivor),
            &lab.logs(victim),
            &lab.node_name(victim),
            fault_ns,
        );
        breakdown.first_garp_ms = seen
            .iter()
            .find(|o| o.at_ns >= fault_ns && o.seen == Seen::Arp { mac: new_mac })
            .map(|o| rel(o.at_ns));
        breakdown.first_new_reply_ms = first_new.map(rel);
        let sample = Sample {
            run: samples.len() + 1,
            victim: lab.node_name(victim),
            survivor: lab.node_name(survivor),
            old_mac: mac_string(&old_mac),
            new_mac: mac_string(&new_mac),
            fault_unix_ns: fault_ns,
            vip_on_survivor_ms: vip_at.map(rel),
            client_gap_ms: first_new.map(|f| ns_to_ms(f - last_old_or_fault)),
            fault_to_new_reply_ms: first_new.map(rel),
            last_old_reply_ms: last_old.map(rel),
            stray_replies_after: stray,
            breakdown,
        };
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
        samples.push(sample);

        // Bring the victim back (a power loss also loses its addresses: the reboot).
        match cfg.fault {
            Fault::PowerLoss => {
                let ns = lab.ns_name(Ns::Node(victim))?;
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
                lab.links_up(victim)?;
                lab.start(victim)?;
            }
            Fault::Graceful => lab.start(victim)?,
            Fault::Switchover => {}
        }
    }
    Ok(())
}

/// Writes the report as JSON.
/// Writes any lab report (bench, false positives, chaos) as pretty JSON.
pub fn write_json<T: Serialize>(report: &T, path: &Path) -> Result<(), BenchError> {
    let text = serde_json::to_string_pretty(report)
        .map_err(|e| BenchError::Failed(format!("serializing the report: {e}")))?;
    std::fs::write(path, text + "\n").map_err(io_err(format!("writing {}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn log_time_and_events() {
        let line = "\u{1b}[2m2026-11-23T11:37:36.060007Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m x: granted term 2 by a quorum (2 of 2 votes) \u{1b}[3mkind\u{1b}[0m\u{1b}[2m=\u{1b}[0m\"became-owner\" \u{1b}[3mnode\u{1b}[0m\u{1b}[2m=\u{1b}[0m\"n2\" \u{1b}[3mgroup\u{1b}[0m\u{1b}[2m=\u{1b}[0m\"www\"";
        let clean = strip_ansi(line);
        assert!(clean.contains("kind=\"became-owner\""), "{clean}");
        let t = parse_log_time(&clean).unwrap();
        // 2026-11-23T11:37:36Z = 1795433856 s.
        assert_eq!(t, 1_795_433_856_060_007_000);
        let log = format!(
            "2026-11-23T11:37:35.246478Z INFO n1 is down kind=\"node-down\" node=\"n1\" group=\"\"\n\
             2026-11-23T11:37:35.267615Z INFO waiting for lease of n1 to expire (728 ms) kind=\"decision\" node=\"n2\" group=\"www\"\n\
             {line}\n\
             2026-11-23T11:37:36.060264Z INFO vip: added 192.0.2.100/24 to eth0 resource=\"vip\"\n"
        );
        let fault = t - 1_000_000_000;
        let b = breakdown_from_logs(&log, "", "n1", fault);
        assert!((b.detected_ms.unwrap() - 186.471).abs() < 0.01, "{b:?}");
        assert_eq!(b.lease_wait_reported_ms, Some(728.0));
        assert!((b.became_owner_ms.unwrap() - 1000.0).abs() < 0.01);
        assert!((b.vip_added_log_ms.unwrap() - 1000.257).abs() < 0.01);
        // Lines before the fault are ignored.
        let b = breakdown_from_logs(&log, "", "n1", t + 1);
        assert!(b.detected_ms.is_none() && b.vip_added_log_ms.is_some());
    }

    #[test]
    fn classifies_echo_replies_and_arp() {
        let mac = [2, 0, 0, 0, 0, 9];
        let mut f = vec![0u8; 14 + 20 + 16];
        f[6..12].copy_from_slice(&mac);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[14 + 9] = 1;
        f[14 + 12..14 + 16].copy_from_slice(&VIP.octets());
        f[34] = 0;
        f[38..40].copy_from_slice(&PROBE_ID.to_be_bytes());
        assert_eq!(classify_frame(&f), Some(Seen::Reply { mac }));
        f[34] = 8; // a request is not a reply
        assert_eq!(classify_frame(&f), None);
        let mut a = vec![0u8; 14 + 28];
        a[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        a[14 + 4] = 6;
        a[14 + 5] = 4;
        a[14 + 8..14 + 14].copy_from_slice(&mac);
        a[14 + 14..14 + 18].copy_from_slice(&VIP.octets());
        assert_eq!(classify_frame(&a), Some(Seen::Arp { mac }));
        assert_eq!(classify_frame(&a[..20]), None);
    }

    #[test]
    fn echo_request_checksum_verifies() {
        assert_eq!(checksum(&echo_request(7)), 0);
    }

    #[test]
    fn netlink_newaddr_for_the_vip() {
        // nlmsghdr(16) + ifaddrmsg(8) + IFA_LOCAL(8)
        let mut m = vec![0u8; 32];
        m[0..4].copy_from_slice(&32u32.to_ne_bytes());
        m[4..6].copy_from_slice(&20u16.to_ne_bytes());
        m[16] = 2; // AF_INET
        m[24..26].copy_from_slice(&8u16.to_ne_bytes());
        m[26..28].copy_from_slice(&2u16.to_ne_bytes());
        m[28..32].copy_from_slice(&VIP.octets());
        assert_eq!(parse_addr_messages(&m), vec![true]);
        m[4..6].copy_from_slice(&21u16.to_ne_bytes());
        assert_eq!(parse_addr_messages(&m), vec![false]);
        m[31] = 1;
        assert!(parse_addr_messages(&m).is_empty());
    }
}
