//! tandem-lab: bring up a tandem cluster in network namespaces on this machine (for
//! trying things out), run the failover demo, the failover benchmark or a seeded chaos
//! run, or clean up after a killed run.
//! Needs root, iproute2 and nftables.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use tandem::lab::experiment::ExperimentError;
use tandem::lab::{self, bench, chaos, demo, keepalived, steady, Lab, LabSpec};

#[derive(Parser)]
#[command(
    name = "tandem-lab",
    version,
    about = "Network-namespace lab for tandem clusters"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Delete namespaces and temp dirs left by labs whose process has died.
    Cleanup,
    /// Build a lab, start tandemd on every node, and keep it up until Ctrl-C.
    Up(UpArgs),
    /// Show a failover: 3-node lab, kill the owner, watch the takeover, rejoin, tear down.
    Demo(Binaries),
    /// Benchmarks (docs/benchmarks.md).
    #[command(subcommand)]
    Bench(BenchCmd),
    /// Seeded fault storm (power loss, crash, SIGSTOP, cut links, partitions, loss,
    /// restarts) judged by an ARP observer: reports failovers, downtime and every
    /// dual-owner instant; exits 1 on any dual owner (docs/chaos.md).
    Chaos(ChaosArgs),
    /// The demo's service: answers every UDP datagram with its node's name (run by the
    /// demo group's `exec` resource).
    #[command(hide = true)]
    DemoService(DemoServiceArgs),
}

#[derive(clap::Args)]
struct DemoServiceArgs {
    #[arg(long)]
    listen: std::net::SocketAddr,
    #[arg(long)]
    name: String,
    /// Written once the socket is bound.
    #[arg(long)]
    pidfile: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ChaosArgs {
    /// Seed of the fault schedule (the same seed replays the same schedule)
    /// [default: random, printed].
    #[arg(long)]
    seed: Option<u64>,
    /// How long faults are injected (e.g. 60s, 5m).
    #[arg(long, default_value = "60s", value_parser = tandem::config::parse_duration)]
    duration: Duration,
    /// Number of nodes (3..=5); every one may own the VIP.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(3..=5))]
    nodes: u8,
    /// Heartbeat interval.
    #[arg(long, default_value = "100ms", value_parser = tandem::config::parse_duration)]
    interval: Duration,
    /// Heartbeat deadtime.
    #[arg(long, default_value = "1s", value_parser = tandem::config::parse_duration)]
    deadtime: Duration,
    /// Leases only: no fence agents. The lease guard must keep a crashed or paused
    /// owner from holding its VIP past its lease: any dual owner fails the run.
    #[arg(long)]
    no_fencing: bool,
    /// Write the schedule, every fault, observation summary and log events as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    bins: Binaries,
}

#[derive(Subcommand)]
enum BenchCmd {
    /// Kill (or stop, or move away from) the owner of a VIP again and again and measure
    /// how long the client cannot reach it.
    Failover(FailoverArgs),
    /// Run a healthy cluster under full CPU load and count what should not happen:
    /// ownership changes, nodes declared down, quorum lost, fences. Exit 3 if any (1: the
    /// bench itself failed).
    FalsePositives(SteadyArgs),
    /// Run a healthy, idle cluster and report each tandemd's memory and CPU use, and the
    /// heartbeat's size on the wire (`--nodes`, `--groups`: the scaling curve).
    Footprint(SteadyArgs),
    /// keepalived (VRRP, Debian's package) and tandem side by side in one run on one
    /// lab: client gap on power loss of the owner, idle CPU and RSS of the owner.
    VsKeepalived(VsArgs),
}

#[derive(clap::Args)]
struct VsArgs {
    /// Power losses of each.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// keepalived's VRRP advert_int.
    #[arg(long, default_value = "10ms", value_parser = tandem::config::parse_duration)]
    advert_int: Duration,
    /// tandem's heartbeat interval.
    #[arg(long, default_value = "10ms", value_parser = tandem::config::parse_duration)]
    interval: Duration,
    /// tandem's heartbeat deadtime.
    #[arg(long, default_value = "40ms", value_parser = tandem::config::parse_duration)]
    deadtime: Duration,
    /// How long the idle owner's CPU is sampled, for each.
    #[arg(long, default_value = "20s", value_parser = tandem::config::parse_duration)]
    idle: Duration,
    /// How often the client probes the VIP, for both: each gap is measured to within
    /// about this much at each end.
    #[arg(long, default_value = "5ms", value_parser = tandem::config::parse_duration)]
    probe_every: Duration,
    /// keepalived binary.
    #[arg(long, default_value = keepalived::KEEPALIVED)]
    keepalived: PathBuf,
    /// Write the report (every gap) to this JSON file.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    bins: Binaries,
}

#[derive(clap::Args)]
struct SteadyArgs {
    /// How long to measure (e.g. 60s, 10m).
    #[arg(long, default_value = "10m", value_parser = tandem::config::parse_duration)]
    duration: Duration,
    /// Heartbeat interval.
    #[arg(long, default_value = "10ms", value_parser = tandem::config::parse_duration)]
    interval: Duration,
    /// Heartbeat deadtime.
    #[arg(long, default_value = "40ms", value_parser = tandem::config::parse_duration)]
    deadtime: Duration,
    /// Busy loops per node namespace [false-positives default: the number of cores].
    #[arg(long)]
    load: Option<usize>,
    /// Run the heartbeat thread without SCHED_RR (`heartbeat.realtime: false`), to see
    /// what real-time scheduling buys.
    #[arg(long)]
    no_realtime: bool,
    #[command(flatten)]
    size: BenchSize,
    /// Write the report (every incident, the footprint) to this JSON file.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    bins: Binaries,
}

#[derive(clap::Args)]
struct FailoverArgs {
    /// Number of failovers.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// Heartbeat interval (e.g. 100ms, 10ms).
    #[arg(long, default_value = "100ms", value_parser = tandem::config::parse_duration)]
    interval: Duration,
    /// Heartbeat deadtime (e.g. 1s, 40ms).
    #[arg(long, default_value = "1s", value_parser = tandem::config::parse_duration)]
    deadtime: Duration,
    /// SIGTERM the owner instead of a power loss (every link cut at once, kill -9).
    #[arg(long, conflicts_with = "switchover")]
    graceful: bool,
    /// `tandemctl move` the group to the other node instead of a power loss.
    #[arg(long, conflicts_with = "link_loss")]
    switchover: bool,
    /// Pull only the owner's service cable (eth0, the VIP's interface, loses carrier)
    /// while heartbeat link 1 stays up and the daemon runs on.
    #[arg(long, conflicts_with = "graceful")]
    link_loss: bool,
    /// How often the client probes the VIP: the gap is measured to within about this
    /// much at each end.
    #[arg(long, default_value = "2ms", value_parser = tandem::config::parse_duration)]
    probe_every: Duration,
    #[command(flatten)]
    size: BenchSize,
    /// Write every sample (and the summary) to this JSON file.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    bins: Binaries,
}

/// The binaries a lab runs, each defaulting to the one next to this executable.
#[derive(clap::Args)]
struct Binaries {
    /// tandemd binary [default: next to this executable].
    #[arg(long)]
    tandemd: Option<PathBuf>,
    /// tandemctl binary [default: next to this executable].
    #[arg(long)]
    tandemctl: Option<PathBuf>,
}

impl Binaries {
    /// (tandemd, tandemctl): the ones given, else those next to this executable.
    fn resolve(self) -> (PathBuf, PathBuf) {
        (
            self.tandemd
                .unwrap_or_else(|| lab::default_binary("tandemd")),
            self.tandemctl
                .unwrap_or_else(|| lab::default_binary("tandemctl")),
        )
    }
}

/// The size of a bench's lab.
#[derive(clap::Args)]
struct BenchSize {
    /// Nodes in the lab (n1, n2 may own; the others are witnesses).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(3..=64))]
    nodes: u8,
    /// Groups: `www` and this many minus one no-op groups.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    groups: u16,
}

#[derive(clap::Args)]
struct UpArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// 1-based indexes of witness nodes (comma-separated or repeated).
    #[arg(long, value_delimiter = ',')]
    witnesses: Vec<usize>,
    /// Number of heartbeat links.
    #[arg(long, default_value_t = 2)]
    links: usize,
    /// Use IPv6 addresses (2001:db8:{link}::{node}).
    #[arg(long)]
    ipv6: bool,
    /// YAML file appended to every node's config (groups, fencing, quorum overrides).
    #[arg(long)]
    extra_yaml: Option<PathBuf>,
    #[command(flatten)]
    bins: Binaries,
}

fn main() -> Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Cleanup => {
            let n = lab::cleanup_stale()?;
            println!("removed {n} stale lab namespace(s)");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Up(args) => up(args).map(|()| ExitCode::SUCCESS),
        Cmd::Demo(args) => Ok(demo(args)),
        Cmd::Bench(BenchCmd::Failover(args)) => bench_failover(args),
        Cmd::Bench(BenchCmd::FalsePositives(args)) => bench_steady(args, true),
        Cmd::Bench(BenchCmd::Footprint(args)) => bench_steady(args, false),
        Cmd::Bench(BenchCmd::VsKeepalived(args)) => bench_vs_keepalived(args),
        Cmd::Chaos(args) => chaos(args),
        Cmd::DemoService(args) => {
            tandem::lab::service::serve(args.listen, &args.name, args.pidfile.as_deref())
                .with_context(|| format!("demo-service on {}", args.listen))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn bench_steady(args: SteadyArgs, loaded: bool) -> Result<ExitCode> {
    let (tandemd, tandemctl) = args.bins.resolve();
    let defaults = steady::SteadyConfig::default();
    let cfg = steady::SteadyConfig {
        duration: args.duration,
        interval: args.interval,
        deadtime: args.deadtime,
        load_per_node: args
            .load
            .unwrap_or(if loaded { defaults.load_per_node } else { 0 }),
        realtime: !args.no_realtime,
        nodes: usize::from(args.size.nodes),
        groups: usize::from(args.size.groups),
        tandemd,
        tandemctl,
        ..defaults
    };
    let name = if loaded {
        "bench false-positives"
    } else {
        "bench footprint"
    };
    experiment(
        |stop, out| steady::run(&cfg, stop, out),
        Shown {
            print: |r: &steady::SteadyReport| r.print(&mut std::io::stdout()),
            json: args.json.as_deref(),
            what: "report",
        },
        |r| {
            if loaded && r.total_false_positives() > 0 {
                ExitCode::from(EXIT_FALSE_POSITIVES)
            } else {
                ExitCode::SUCCESS
            }
        },
        |e| Err(anyhow::Error::new(e).context(name)),
    )
}

fn chaos(args: ChaosArgs) -> Result<ExitCode> {
    let (tandemd, tandemctl) = args.bins.resolve();
    let cfg = chaos::ChaosConfig {
        seed: args.seed.unwrap_or_else(rand::random),
        duration: args.duration,
        nodes: usize::from(args.nodes),
        interval: args.interval,
        deadtime: args.deadtime,
        fencing: !args.no_fencing,
        tandemd,
        tandemctl,
        ..chaos::ChaosConfig::default()
    };
    experiment(
        |stop, out| chaos::run(&cfg, stop, out),
        Shown {
            print: |r: &chaos::ChaosReport| print!("{}", r.render()),
            json: args.json.as_deref(),
            what: "report",
        },
        |r| success_if(r.ok()),
        |e| {
            eprintln!("tandem-lab chaos (seed {}): {e:#}", cfg.seed);
            Ok(ExitCode::FAILURE)
        },
    )
}

fn bench_failover(args: FailoverArgs) -> Result<ExitCode> {
    let (tandemd, tandemctl) = args.bins.resolve();
    let cfg = bench::BenchConfig {
        runs: args.runs,
        interval: args.interval,
        deadtime: args.deadtime,
        fault: if args.graceful {
            bench::Fault::Graceful
        } else if args.switchover {
            bench::Fault::Switchover
        } else if args.link_loss {
            bench::Fault::LinkLoss
        } else {
            bench::Fault::PowerLoss
        },
        nodes: usize::from(args.size.nodes),
        groups: usize::from(args.size.groups),
        probe_period: args.probe_every.max(Duration::from_micros(100)),
        tandemd,
        tandemctl,
        ..bench::BenchConfig::default()
    };
    experiment(
        |stop, out| bench::run(&cfg, stop, out),
        Shown {
            print: |r: &bench::BenchReport| print!("{}", r.render()),
            json: args.json.as_deref(),
            what: "samples",
        },
        |r| success_if(r.aborted.is_none()),
        |e| Err(anyhow::Error::new(e).context("bench failover")),
    )
}

fn bench_vs_keepalived(args: VsArgs) -> Result<ExitCode> {
    let (tandemd, tandemctl) = args.bins.resolve();
    let cfg = keepalived::VsConfig {
        runs: args.runs,
        advert_int: args.advert_int,
        interval: args.interval,
        deadtime: args.deadtime,
        idle: args.idle,
        probe_period: args.probe_every.max(Duration::from_micros(100)),
        keepalived: args.keepalived,
        tandemd,
        tandemctl,
    };
    experiment(
        |stop, out| keepalived::run(&cfg, stop, out),
        Shown {
            print: |r: &keepalived::VsReport| print!("{}", r.render()),
            json: args.json.as_deref(),
            what: "report",
        },
        |_| ExitCode::SUCCESS,
        |e| Err(anyhow::Error::new(e).context("bench vs-keepalived")),
    )
}

/// How a finished report is shown: printed (after a blank line), and written as JSON
/// to `json` if given, saying so (`what` written to PATH).
struct Shown<'a, R> {
    print: fn(&R),
    json: Option<&'a Path>,
    what: &'a str,
}

/// Runs one experiment the way every lab command does: Ctrl-C handling installed and
/// stale labs removed first; then its report shown and its exit status decided by
/// `verdict`, an interruption said, or its error handed to `failed`.
fn experiment<R: serde::Serialize>(
    run: impl FnOnce(&AtomicBool, &mut dyn std::io::Write) -> Result<R, ExperimentError>,
    shown: Shown<'_, R>,
    verdict: impl FnOnce(&R) -> ExitCode,
    failed: impl FnOnce(ExperimentError) -> Result<ExitCode>,
) -> Result<ExitCode> {
    let stop = interrupt_flag()?;
    let _ = lab::cleanup_stale();
    match run(&stop, &mut std::io::stdout()) {
        Ok(report) => {
            println!();
            (shown.print)(&report);
            if let Some(path) = shown.json {
                lab::experiment::write_json(&report, path)?;
                println!("{} written to {}", shown.what, path.display());
            }
            Ok(verdict(&report))
        }
        Err(ExperimentError::Interrupted) => Ok(interrupted()),
        Err(e) => failed(e),
    }
}

fn success_if(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A run stopped by Ctrl-C: the lab is gone already.
fn interrupted() -> ExitCode {
    println!("interrupted; the lab has been removed");
    ExitCode::from(EXIT_INTERRUPTED)
}

/// A flag that SIGINT or SIGTERM sets. Every long-running command polls it and returns,
/// so the lab's teardown runs instead of the process dying with namespaces left behind.
fn interrupt_flag() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signal handler")?;
    }
    Ok(stop)
}

/// Exit status of `bench false-positives` when it counted any (errors exit 1).
const EXIT_FALSE_POSITIVES: u8 = 3;

/// Exit status of an interrupted demo (128 + SIGINT, as shells report it).
const EXIT_INTERRUPTED: u8 = 130;

fn demo(bins: Binaries) -> ExitCode {
    // Registered first so a Ctrl-C at any later point reaches the polling loops, which
    // return and let the lab's Drop remove everything.
    let stop = match interrupt_flag() {
        Ok(stop) => stop,
        Err(e) => {
            eprintln!("tandem-lab demo: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let (tandemd, tandemctl) = bins.resolve();
    let cfg = demo::DemoConfig {
        tandemd,
        tandemctl,
        ..demo::DemoConfig::default()
    };
    let mut stdout = std::io::stdout();
    match demo::run(&cfg, &stop, &mut stdout) {
        Ok(_) => ExitCode::SUCCESS,
        Err(demo::DemoError::Interrupted { step }) => {
            println!("interrupted during: {step}; everything the demo built has been removed");
            ExitCode::from(EXIT_INTERRUPTED)
        }
        Err(demo::DemoError::Failed { step, detail, logs }) => {
            println!();
            println!("DEMO FAILED at step: {step}");
            println!("  {detail}");
            for tail in logs {
                println!();
                println!(
                    "---- last lines of {} ({}) ----",
                    tail.node,
                    tail.path.display()
                );
                for line in tail.lines {
                    println!("{line}");
                }
            }
            println!();
            println!(
                "(the lab has been torn down; run with {}=1 to keep its dir and full logs)",
                lab::KEEP_ENV
            );
            ExitCode::FAILURE
        }
    }
}

fn up(args: UpArgs) -> Result<()> {
    let extra_yaml = match &args.extra_yaml {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => String::new(),
    };
    let (tandemd, tandemctl) = args.bins.resolve();
    let spec = LabSpec {
        nodes: args.nodes,
        witnesses: args.witnesses,
        links: args.links,
        ipv6: args.ipv6,
        extra_yaml,
        tandemd,
        tandemctl,
        ..LabSpec::default()
    };

    // Register before building so a Ctrl-C during setup still tears down cleanly.
    let stop = interrupt_flag()?;

    let mut lab = Lab::build(spec).context("building the lab")?;
    lab.start_all().context("starting tandemd")?;
    print_summary(&lab);

    let mut reported = std::collections::BTreeSet::new();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        for node in 1..=lab.node_count() {
            if !reported.contains(&node) && !lab.is_running(node) {
                reported.insert(node);
                let status = lab
                    .last_exit(node)
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                eprintln!("n{node}: tandemd exited ({status}); log tail:");
                let log = lab.logs(node);
                let lines: Vec<&str> = log.lines().collect();
                for l in &lines[lines.len().saturating_sub(20)..] {
                    eprintln!("  {l}");
                }
            }
        }
    }
    println!("\ntearing down {} ...", lab.prefix());
    lab.teardown();
    Ok(())
}

fn print_summary(lab: &Lab) {
    let spec = lab.spec();
    println!(
        "lab {} is up ({} nodes, {} links)",
        lab.prefix(),
        lab.node_count(),
        spec.links
    );
    println!("  dir:      {}", lab.dir().display());
    println!("  authkey:  {}", lab.authkey_path().display());
    println!("  tandemd:  {}", spec.tandemd.display());
    let ns = |n: lab::Ns| lab.ns_name(n).unwrap_or_default();
    println!("  switch:   netns {}", ns(lab::Ns::Switch));
    println!(
        "  client:   netns {} ({})",
        ns(lab::Ns::Client),
        lab.client_address()
    );
    for node in 1..=lab.node_count() {
        let addrs: Vec<String> = (0..spec.links)
            .map(|l| lab.address(node, l).to_string())
            .collect();
        let role = if spec.witnesses.contains(&node) {
            " (witness)"
        } else {
            ""
        };
        println!(
            "\n  {}{role}: netns {}  [{}]",
            lab.node_name(node),
            ns(lab::Ns::Node(node)),
            addrs.join(", ")
        );
        println!("    config: {}", lab.config_path(node).display());
        println!("    socket: {}", lab.socket_path(node).display());
        println!("    state:  {}", lab.state_dir(node).display());
        println!("    log:    {}", lab.log_path(node).display());
        println!(
            "    status: {} --socket {} status",
            spec.tandemctl.display(),
            lab.socket_path(node).display()
        );
    }
    println!(
        "\n  shell in a node: ip netns exec {} bash",
        ns(lab::Ns::Node(1))
    );
    println!("\nCtrl-C to tear down.");
}
