//! `tandem-lab bench vs-keepalived`: keepalived and tandem side by side, in one run on
//! one lab. The lab is the failover bench's (n1 and n2 may hold 192.0.2.100, n3 is
//! tandem's witness, two links, the client on link 0). First keepalived (Debian's
//! package, VRRPv3, `advert_int` 10 ms by default, unicast between n1 and n2 on eth0,
//! `nopreempt`) runs in n1's and n2's namespaces and the owner is powered off again and
//! again (every link cut at once, then kill -9 of everything in it); then keepalived is
//! gone and the ordinary failover bench runs tandem on the same lab at its own profile.
//! The client's gap is measured the same way for both (bench::client_sample), and the
//! owner's CPU and RSS at idle are sampled from /proc for both.
//!
//! Nothing is installed and nothing outside the lab is touched: keepalived's config,
//! pid files and log live in the lab's temp dir and it runs only in lab namespaces.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::bench::{self, stats, BenchConfig, Stats};
use super::experiment::{io_err, Ctx, ExperimentError};
use super::observe::client::{ClientObserver, Probe, Seen, Sighting};
use super::observe::{ms, realtime_ns};
use super::stall::clock_ticks_per_second;
use super::steady::sample;
use super::topology::{clear_vip, eth0_mac, group_yaml, scaled, GROUP, VIP, VIP_PREFIX};
use super::{netns, Lab, Ns};

/// Where Debian's `keepalived` package puts the daemon.
pub const KEEPALIVED: &str = "/usr/sbin/keepalived";

#[derive(Debug, Clone)]
pub struct VsConfig {
    /// Failovers of each.
    pub runs: usize,
    /// VRRP `advert_int`.
    pub advert_int: Duration,
    /// tandem's heartbeat interval and deadtime.
    pub interval: Duration,
    pub deadtime: Duration,
    /// How often the client probes the VIP (both halves).
    pub probe_period: Duration,
    /// How long the idle owner's CPU is sampled (each half).
    pub idle: Duration,
    pub keepalived: PathBuf,
    pub tandemd: PathBuf,
    pub tandemctl: PathBuf,
}

impl Default for VsConfig {
    fn default() -> Self {
        let bench = BenchConfig::default();
        VsConfig {
            runs: 10,
            advert_int: Duration::from_millis(10),
            interval: Duration::from_millis(10),
            deadtime: Duration::from_millis(40),
            probe_period: Duration::from_millis(5),
            idle: Duration::from_secs(20),
            keepalived: PathBuf::from(KEEPALIVED),
            tandemd: bench.tandemd,
            tandemctl: bench.tandemctl,
        }
    }
}

/// One side of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub name: String,
    /// Client gap per run, ms.
    pub gaps_ms: Vec<f64>,
    pub client_gap: Option<Stats>,
    /// The owner's processes (keepalived: parent and VRRP child; tandem: guard and
    /// worker), CPU in percent of one core over the idle window, and summed RSS.
    pub idle_cpu_percent: f64,
    pub idle_rss_kib: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct VsReport {
    pub runs: usize,
    pub advert_int_ms: f64,
    pub interval_ms: f64,
    pub deadtime_ms: f64,
    pub probe_period_ms: f64,
    pub idle_s: f64,
    pub keepalived: Side,
    pub tandem: Side,
    /// tandem's median client gap over keepalived's.
    pub median_ratio: Option<f64>,
}

impl VsReport {
    pub fn render(&self) -> String {
        let mut s = format!(
            "{} power losses each; keepalived advert_int {} ms (VRRPv3, unicast, 2 nodes, 1 link) \
             vs tandem {} ms / {} ms (2 nodes + witness, 2 links); probe every {} ms; idle \
             sampled {:.0} s\n",
            self.runs,
            self.advert_int_ms,
            self.interval_ms,
            self.deadtime_ms,
            self.probe_period_ms,
            self.idle_s
        );
        s.push_str(&format!(
            "  {:<11} {:>3} {:>8} {:>8} {:>8} {:>8}   {:>14} {:>9}\n",
            "client gap", "n", "min", "median", "p95", "max", "idle CPU %core", "RSS MiB"
        ));
        for side in [&self.keepalived, &self.tandem] {
            let st = side.client_gap.map_or(
                format!("{:>3} {:>8} {:>8} {:>8} {:>8}", 0, "-", "-", "-", "-"),
                |x| {
                    format!(
                        "{:>3} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
                        x.n, x.min, x.median, x.p95, x.max
                    )
                },
            );
            s.push_str(&format!(
                "  {:<11} {st}   {:>14.2} {:>9.1}\n",
                side.name,
                side.idle_cpu_percent,
                side.idle_rss_kib as f64 / 1024.0
            ));
        }
        if let Some(r) = self.median_ratio {
            s.push_str(&format!("  median ratio tandem / keepalived: {r:.2}\n"));
        }
        s
    }
}

/// Runs both halves; the lab is torn down on return.
pub fn run(
    cfg: &VsConfig,
    stop: &AtomicBool,
    out: &mut dyn Write,
) -> Result<VsReport, ExperimentError> {
    if !cfg.keepalived.is_file() {
        return Err(ExperimentError::Failed(format!(
            "{} not found: install Debian's keepalived package (apt-get install -y keepalived); \
             the bench starts it itself, only inside its namespaces",
            cfg.keepalived.display()
        )));
    }
    if cfg.runs == 0 {
        return Err(ExperimentError::Failed("--runs must be at least 1".into()));
    }
    let spec = scaled(
        3,
        cfg.interval,
        cfg.deadtime,
        group_yaml(),
        &cfg.tandemd,
        &cfg.tandemctl,
    );
    let mut lab = Lab::build(spec)?;
    let mut ctx = Ctx { stop, out };
    let result = both(cfg, &mut lab, &mut ctx);
    lab.teardown();
    result
}

fn both(cfg: &VsConfig, lab: &mut Lab, ctx: &mut Ctx) -> Result<VsReport, ExperimentError> {
    let _ = writeln!(ctx.out, "lab {}: keepalived first ...", lab.prefix());
    let keepalived = keepalived_side(cfg, lab, ctx)?;
    let _ = writeln!(ctx.out, "keepalived is gone; tandem on the same lab ...");
    let bench_cfg = BenchConfig {
        runs: cfg.runs,
        interval: cfg.interval,
        deadtime: cfg.deadtime,
        probe_period: cfg.probe_period,
        tandemd: cfg.tandemd.clone(),
        tandemctl: cfg.tandemctl.clone(),
        ..BenchConfig::default()
    };
    let report = bench::on_lab(&bench_cfg, lab, ctx)?;
    if let Some(why) = &report.aborted {
        return Err(ExperimentError::Failed(format!("tandem's half: {why}")));
    }
    let owner = ctx.wait(
        "tandem settled after its runs",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || Ok(super::observe::status::stable_owner(lab, GROUP)),
    )?;
    let node = if owner == "n1" { 1 } else { 2 };
    let pids: Vec<u32> = [lab.pid(node), lab.worker_pid(node)]
        .into_iter()
        .flatten()
        .collect::<std::collections::BTreeSet<u32>>()
        .into_iter()
        .collect();
    let (cpu, rss) = idle_footprint(ctx, &pids, cfg.idle)?;
    let gaps: Vec<f64> = report
        .samples
        .iter()
        .filter_map(|s| s.client_gap_ms)
        .collect();
    let tandem = Side {
        name: "tandem".into(),
        client_gap: stats(&gaps),
        gaps_ms: gaps,
        idle_cpu_percent: cpu,
        idle_rss_kib: rss,
    };
    let median_ratio = match (tandem.client_gap, keepalived.client_gap) {
        (Some(t), Some(k)) if k.median > 0.0 => Some(t.median / k.median),
        _ => None,
    };
    Ok(VsReport {
        runs: cfg.runs,
        advert_int_ms: ms(cfg.advert_int),
        interval_ms: ms(cfg.interval),
        deadtime_ms: ms(cfg.deadtime),
        probe_period_ms: ms(cfg.probe_period),
        idle_s: cfg.idle.as_secs_f64(),
        keepalived,
        tandem,
        median_ratio,
    })
}

/// CPU (percent of one core) and summed RSS (KiB, at the end) of `pids` over `window`.
fn idle_footprint(
    ctx: &Ctx,
    pids: &[u32],
    window: Duration,
) -> Result<(f64, u64), ExperimentError> {
    let ticks = |s: &[Option<(u64, u64)>]| s.iter().flatten().map(|(_, t)| t).sum::<u64>();
    let first: Vec<_> = pids.iter().map(|p| sample(*p)).collect();
    let began = Instant::now();
    ctx.sleep(window)?;
    let last: Vec<_> = pids.iter().map(|p| sample(*p)).collect();
    let wall = began.elapsed().as_secs_f64();
    let cpu =
        ticks(&last).saturating_sub(ticks(&first)) as f64 / clock_ticks_per_second() / wall * 100.0;
    let rss = last.iter().flatten().map(|(r, _)| r).sum();
    Ok((cpu, rss))
}

// ----- keepalived's half ----------------------------------------------------------------

/// The keepalived config of node `me` (1 or 2): VRRPv3 on eth0, unicast to the other.
pub fn keepalived_conf(me: usize, advert_int: Duration, lab: &Lab) -> String {
    let other = 3 - me;
    let priority = if me == 1 { 100 } else { 90 };
    format!(
        "global_defs {{\n    router_id lab_n{me}\n    vrrp_version 3\n    \
         vrrp_garp_master_delay 0\n}}\n\
         vrrp_instance lab {{\n    state BACKUP\n    nopreempt\n    interface eth0\n    \
         virtual_router_id 51\n    priority {priority}\n    advert_int {advert}\n    \
         unicast_src_ip {src}\n    unicast_peer {{\n        {peer}\n    }}\n    \
         virtual_ipaddress {{\n        {VIP}/{VIP_PREFIX} dev eth0\n    }}\n}}\n",
        advert = advert_int.as_secs_f64(),
        src = lab.address(me, 0),
        peer = lab.address(other, 0),
    )
}

/// keepalived's files in the lab's temp dir.
struct KeepalivedFiles {
    dir: PathBuf,
}

impl KeepalivedFiles {
    fn path(&self, node: usize, what: &str) -> PathBuf {
        self.dir.join(format!("n{node}.{what}"))
    }

    /// `keepalived -n -l -G -P -f CONF` with every pid file in the temp dir.
    fn command(&self, keepalived: &Path, node: usize) -> Vec<String> {
        let p = |w: &str| self.path(node, w).display().to_string();
        vec![
            keepalived.display().to_string(),
            "--dont-fork".into(),
            "--log-console".into(),
            "--no-syslog".into(),
            "--vrrp".into(),
            "-f".into(),
            p("conf"),
            "-p".into(),
            p("pid"),
            "-r".into(),
            p("vrrp.pid"),
            "-c".into(),
            p("checkers.pid"),
            "-b".into(),
            p("bfd.pid"),
        ]
    }
}

fn start_keepalived(
    cfg: &VsConfig,
    lab: &mut Lab,
    files: &KeepalivedFiles,
    node: usize,
) -> Result<(), ExperimentError> {
    // A reboot clears /run: without this keepalived finds the pid of its killed (and
    // not yet reaped) predecessor and refuses to start ("daemon is already running").
    for what in ["pid", "vrrp.pid", "checkers.pid", "bfd.pid"] {
        let _ = std::fs::remove_file(files.path(node, what));
    }
    let cmd = files.command(&cfg.keepalived, node);
    let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    lab.spawn(Ns::Node(node), &args)?;
    Ok(())
}

/// Which of n1, n2 has the VIP on eth0 (None: neither, or both).
fn vip_holder(lab: &Lab) -> Result<Option<usize>, ExperimentError> {
    let needle = format!(" {VIP}/");
    let mut holders = Vec::new();
    for node in [1, 2] {
        let out = lab.exec(
            Ns::Node(node),
            &["ip", "-o", "-4", "addr", "show", "dev", "eth0"],
        )?;
        if String::from_utf8_lossy(&out.stdout).contains(&needle) {
            holders.push(node);
        }
    }
    Ok((holders.len() == 1).then(|| holders[0]))
}

fn keepalived_side(cfg: &VsConfig, lab: &mut Lab, ctx: &mut Ctx) -> Result<Side, ExperimentError> {
    let files = KeepalivedFiles {
        dir: lab.dir().join("keepalived"),
    };
    std::fs::create_dir_all(&files.dir).map_err(io_err("creating keepalived's dir"))?;
    for node in [1, 2] {
        let conf = keepalived_conf(node, cfg.advert_int, lab);
        std::fs::write(files.path(node, "conf"), conf)
            .map_err(io_err("writing keepalived's config"))?;
        start_keepalived(cfg, lab, &files, node)?;
    }
    let macs = [eth0_mac(lab, Ns::Node(1))?, eth0_mac(lab, Ns::Node(2))?];
    let client = ClientObserver::start(
        lab,
        Probe::Echo {
            every: cfg.probe_period,
        },
    )?;
    let owner = settled_holder(lab, ctx, &client, &macs)?;
    let pids = lab.pids(Ns::Node(owner));
    let (cpu, rss) = idle_footprint(ctx, &pids, cfg.idle)?;
    let mut gaps = Vec::new();
    let mut redone = 0;
    while gaps.len() < cfg.runs {
        let run = gaps.len() + 1;
        match keepalived_run(cfg, lab, ctx, (&client, &files, &macs), run)? {
            Some(gap) => gaps.push(gap),
            None if redone < cfg.runs * 3 => redone += 1,
            None => {
                return Err(ExperimentError::Failed(
                    "keepalived never stayed stable long enough".into(),
                ))
            }
        }
    }
    drop(client);
    for node in [1, 2] {
        stop_node(lab, node)?;
        clear_vip(lab, node)?;
    }
    Ok(Side {
        name: "keepalived".into(),
        client_gap: stats(&gaps),
        gaps_ms: gaps,
        idle_cpu_percent: cpu,
        idle_rss_kib: rss,
    })
}

/// Kills everything in the node's namespace (keepalived's parent and VRRP child).
fn stop_node(lab: &Lab, node: usize) -> Result<(), ExperimentError> {
    let ns = lab.ns_name(Ns::Node(node))?;
    let left = netns::kill_all_in_netns(&ns, Duration::from_secs(5));
    if left.is_empty() {
        Ok(())
    } else {
        Err(ExperimentError::Failed(format!(
            "processes {left:?} survived SIGKILL in {ns}"
        )))
    }
}

/// Waits until exactly one of n1, n2 holds the VIP and the client gets replies from
/// its MAC alone for half a second; returns it.
fn settled_holder(
    lab: &Lab,
    ctx: &mut Ctx,
    client: &ClientObserver,
    macs: &[[u8; 6]; 2],
) -> Result<usize, ExperimentError> {
    ctx.wait(
        "keepalived: one VIP holder answering the client",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let Some(holder) = vip_holder(lab)? else {
                return Ok(None);
            };
            let mac = macs[holder - 1];
            client.take();
            ctx.sleep(Duration::from_millis(500))?;
            let seen = client.take();
            let only = seen.iter().any(|o| o.seen == Seen::EchoReply { mac })
                && seen.iter().all(|o| o.seen.mac() == mac);
            Ok((only && vip_holder(lab)? == Some(holder)).then_some(holder))
        },
    )
}

/// One power loss of keepalived's master; its client gap, or None if the pair was not
/// stable before the fault (the run is redone).
fn keepalived_run(
    cfg: &VsConfig,
    lab: &mut Lab,
    ctx: &mut Ctx,
    (client, files, macs): (&ClientObserver, &KeepalivedFiles, &[[u8; 6]; 2]),
    run: usize,
) -> Result<Option<f64>, ExperimentError> {
    let victim = settled_holder(lab, ctx, client, macs)?;
    let survivor = 3 - victim;
    let (old_mac, new_mac) = (macs[victim - 1], macs[survivor - 1]);
    ctx.sleep(Duration::from_millis(20))?;
    let mut seen: Vec<Sighting> = client.take();
    if !seen.iter().all(|o| o.seen.mac() == old_mac) {
        return Ok(None);
    }
    ctx.sleep(bench::random_phase(cfg.advert_int))?;
    let fault_ns = realtime_ns();
    // As the tandem bench: every link cut at one instant (a dead machine does not
    // answer), then kill -9 of everything in the namespace and the links down.
    lab.power_off(victim)?;
    ctx.wait(
        "keepalived: client getting replies from the survivor",
        Duration::from_secs(30),
        Duration::from_millis(10),
        || {
            seen.extend(client.take());
            Ok(seen
                .iter()
                .any(|o| o.at_ns >= fault_ns && o.seen == Seen::EchoReply { mac: new_mac })
                .then_some(()))
        },
    )?;
    let sample = bench::client_sample(&seen, old_mac, new_mac, fault_ns, Default::default());
    let _ = writeln!(
        ctx.out,
        "keepalived run {run:>3}/{}: n{victim} -> n{survivor}: client gap {} ms",
        cfg.runs,
        sample
            .client_gap_ms
            .map_or("-".to_string(), |g| format!("{g:.1}"))
    );
    // The reboot: no VIP, links up, keepalived starts as a backup (nopreempt).
    lab.restore_power(victim)?;
    start_keepalived(cfg, lab, files, victim)?;
    Ok(sample.client_gap_ms)
}
