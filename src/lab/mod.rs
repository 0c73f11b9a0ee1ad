//! The network-namespace lab: real tandem clusters on one machine for integration tests,
//! the demo and the benchmarks. Each node lives in its own network namespace, joined to a
//! "switch" namespace (one bridge per heartbeat link) by veth pairs; a "client" namespace
//! sits on link 0 for VIP tests. Faults (cut links, partitions) are nftables drops on
//! the bridges. Nothing touches the host namespace, and everything the lab created —
//! processes, namespaces, the temp dir — is removed on `teardown`/`Drop`, even on panic.
//!
//! The lab is a synchronous test utility: it shells out to `ip`/`nft` with std::process.

pub mod bench;
mod cable;
pub mod chaos;
pub mod datagrams;
pub mod demo;
pub mod experiment;
pub mod keepalived;
mod neigh;
mod netns;
pub mod observe;
mod power;
mod render;
pub mod service;
pub mod stall;
pub mod steady;
pub mod tools;
pub mod topology;

use std::collections::BTreeSet;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

pub use netns::{pid_alive, pids_in_netns};
pub use render::{client_address, node_address, render_config, NAME_PREFIX, PORT};

/// How long `exec` lets a command run before killing it.
pub const EXEC_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `tandemctl` may run before it is killed.
pub const TANDEMCTL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `terminate` waits for a daemon to exit after SIGTERM before SIGKILLing it.
pub const TERMINATE_TIMEOUT: Duration = Duration::from_secs(10);
/// Set to keep the lab's temp dir (configs, logs, state) after teardown.
pub const KEEP_ENV: &str = "TANDEM_LAB_KEEP";
/// Set in each node's daemon environment (so inherited by every agent it runs): the
/// node's name, e.g. `n1`.
pub const NODE_ENV: &str = "TANDEM_LAB_NODE";
/// Set in each node's daemon environment: a directory private to the node (under the
/// lab's temp dir) for the pid and state files of the services it runs. Lab nodes share
/// one filesystem, so without it a node stopping "leftovers" at startup would act on the
/// owner's files.
pub const NODE_DIR_ENV: &str = "TANDEM_LAB_NODE_DIR";
/// Where resource-agents' OCF scripts keep state (`Dummy`'s state file, `IPaddr2`'s
/// send_arp pid files); the lab points it into the node's private directory.
const HA_RSCTMP_ENV: &str = "HA_RSCTMP";

static LAB_COUNTER: AtomicU32 = AtomicU32::new(0);

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(
        "the tandem lab must run as root (it creates network namespaces); effective uid is {0}"
    )]
    NotRoot(u32),
    #[error("`{tool}` is not installed or not runnable: apt-get install -y {package} (scripts/setup-test-host installs all the lab needs)")]
    ToolMissing { tool: String, package: String },
    #[error("invalid lab spec: {0}")]
    Spec(String),
    #[error("`{cmd}` failed ({status}): {stderr}")]
    Command {
        cmd: String,
        status: String,
        stderr: String,
    },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no node {0} in this lab")]
    NoSuchNode(usize),
    #[error("no link {0} in this lab")]
    NoSuchLink(usize),
    #[error("node {0} has no running daemon")]
    NotRunning(usize),
    #[error("node {0} already has a running daemon")]
    AlreadyRunning(usize),
    #[error("{what} did not finish within {after:?}")]
    Timeout { what: String, after: Duration },
    #[error("the lab has been torn down")]
    TornDown,
    #[error("observing the lab: {0}")]
    Observer(String),
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> LabError {
    let context = context.into();
    move |source| LabError::Io { context, source }
}

/// What to build. Node indexes are 1-based everywhere; link indexes are 0-based.
#[derive(Debug, Clone)]
pub struct LabSpec {
    pub nodes: usize,
    /// 1-based indexes of the nodes that are witnesses (vote, never own).
    pub witnesses: Vec<usize>,
    pub links: usize,
    /// `(node, link)` pairs (1-based node, 0-based link) where the node has no
    /// interface and no address: `null` in its config's `addresses` (a witness reached
    /// only through link 0). Every other pair is wired as usual.
    pub absent_links: Vec<(usize, usize)>,
    /// Node addresses are 2001:db8:{link}::{node}/64 instead of IPv4.
    pub ipv6: bool,
    pub interval: Duration,
    pub deadtime: Duration,
    /// Appended verbatim to every node's config. A top-level `heartbeat:`, `quorum:` or
    /// `groups:` here replaces the lab's default section instead of duplicating it.
    pub extra_yaml: String,
    /// Started in the node's namespace as `tandemd --config F --node nI --socket S
    /// --state-dir D --log-format json` (the lab reads the log through
    /// `observe::events`).
    pub tandemd: PathBuf,
    pub tandemctl: PathBuf,
}

impl LabSpec {
    /// Whether `node` (1-based) has an interface on `link`.
    pub fn on_link(&self, node: usize, link: usize) -> bool {
        !self.absent_links.contains(&(node, link))
    }

    /// The links `node` has an interface on.
    pub fn links_of(&self, node: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.links).filter(move |l| self.on_link(node, *l))
    }
}

impl Default for LabSpec {
    fn default() -> Self {
        LabSpec {
            nodes: 3,
            witnesses: Vec::new(),
            links: 2,
            absent_links: Vec::new(),
            ipv6: false,
            interval: Duration::from_millis(100),
            deadtime: Duration::from_secs(1),
            extra_yaml: String::new(),
            tandemd: default_binary("tandemd"),
            tandemctl: default_binary("tandemctl"),
        }
    }
}

/// `name` next to the current executable (or one directory up, which is where cargo puts
/// binaries relative to test executables in `target/*/deps`); else the bare name (PATH).
pub fn default_binary(name: &str) -> PathBuf {
    if let Ok(exe) = std::env::current_exe() {
        let mut dir = exe.parent();
        for _ in 0..2 {
            let Some(d) = dir else { break };
            let candidate = d.join(name);
            if candidate.is_file() {
                return candidate;
            }
            dir = d.parent();
        }
    }
    PathBuf::from(name)
}

/// A network namespace of the lab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ns {
    /// 1-based node index.
    Node(usize),
    Client,
    Switch,
}

/// A background process started with `Lab::spawn`.
#[derive(Debug, Clone)]
pub struct Spawned {
    pub pid: u32,
    /// Its stdout and stderr.
    pub log: PathBuf,
}

#[derive(Debug)]
struct NodeState {
    ns: String,
    config: PathBuf,
    socket: PathBuf,
    state_dir: PathBuf,
    /// Private run directory of the node (`TANDEM_LAB_NODE_DIR`); `rsctmp` inside it is
    /// the node's `HA_RSCTMP`.
    run_dir: PathBuf,
    log: PathBuf,
    daemon: Option<Child>,
    last_exit: Option<ExitStatus>,
}

/// A running lab. Dropping it tears everything down.
#[derive(Debug)]
pub struct Lab {
    spec: LabSpec,
    prefix: String,
    dir: PathBuf,
    authkey: PathBuf,
    switch_ns: String,
    client_ns: String,
    nodes: Vec<NodeState>,
    /// Namespaces that exist and must be deleted on teardown.
    created_ns: Vec<String>,
    cuts: BTreeSet<(usize, usize)>,
    /// Nodes whose every switch port drops all frames: powered off (`power.rs`).
    dark: BTreeSet<usize>,
    partition: Vec<Vec<usize>>,
    /// Percentage of node-to-node frames the switch drops at random (0: none).
    loss_percent: u8,
    spawned: Vec<Child>,
    torn_down: bool,
}

/// Fails with a clear message when the lab cannot work on this machine.
pub fn preflight() -> Result<(), LabError> {
    let euid = nix::unistd::geteuid().as_raw();
    if euid != 0 {
        return Err(LabError::NotRoot(euid));
    }
    for tool in ["ip", "nft"] {
        if !netns::tool_available(tool) {
            return Err(LabError::ToolMissing {
                tool: tool.into(),
                package: tools::package_of(tool).unwrap_or(tool).into(),
            });
        }
    }
    Ok(())
}

impl Lab {
    /// Creates namespaces, bridges, veths, addresses, the authkey and per-node configs.
    /// Does not start any daemon. On error, whatever was created is removed again.
    pub fn build(spec: LabSpec) -> Result<Lab, LabError> {
        render::validate(&spec)?;
        preflight()?;

        let prefix = render::lab_prefix(
            std::process::id(),
            LAB_COUNTER.fetch_add(1, Ordering::Relaxed),
        );
        let dir = std::env::temp_dir().join(format!("tandem-lab-{prefix}"));
        if dir.exists() {
            // Left by an earlier process that had our pid; it is dead, so it is garbage.
            fs::remove_dir_all(&dir)
                .map_err(io_err(format!("removing stale {}", dir.display())))?;
        }
        DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(&dir)
            .map_err(io_err(format!("creating {}", dir.display())))?;

        let nodes = (1..=spec.nodes)
            .map(|i| {
                let node_dir = dir.join(render::node_name(i));
                NodeState {
                    ns: format!("{prefix}-n{i}"),
                    config: node_dir.join("tandem.yaml"),
                    socket: node_dir.join("tandemd.sock"),
                    state_dir: node_dir.join("state"),
                    run_dir: node_dir.join("run"),
                    log: node_dir.join("tandemd.log"),
                    daemon: None,
                    last_exit: None,
                }
            })
            .collect();
        let mut lab = Lab {
            authkey: dir.join("authkey"),
            switch_ns: format!("{prefix}-sw"),
            client_ns: format!("{prefix}-cl"),
            spec,
            prefix,
            dir,
            nodes,
            created_ns: Vec::new(),
            cuts: BTreeSet::new(),
            dark: BTreeSet::new(),
            partition: Vec::new(),
            loss_percent: 0,
            spawned: Vec::new(),
            torn_down: false,
        };
        // `lab` is dropped (and so torn down) if any step fails.
        lab.write_files()?;
        lab.build_network()?;
        Ok(lab)
    }

    fn write_files(&mut self) -> Result<(), LabError> {
        let key: [u8; 32] = rand::random();
        let mut hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        hex.push('\n');
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&self.authkey)
            .map_err(io_err(format!("creating {}", self.authkey.display())))?;
        f.write_all(hex.as_bytes())
            .map_err(io_err(format!("writing {}", self.authkey.display())))?;

        let config = render::render_config(&self.spec, &self.authkey)?;
        for node in &self.nodes {
            DirBuilder::new()
                .mode(0o700)
                .recursive(true)
                .create(&node.state_dir)
                .map_err(io_err(format!("creating {}", node.state_dir.display())))?;
            let rsctmp = node.run_dir.join("rsctmp");
            DirBuilder::new()
                .mode(0o755)
                .recursive(true)
                .create(&rsctmp)
                .map_err(io_err(format!("creating {}", rsctmp.display())))?;
            fs::write(&node.config, &config)
                .map_err(io_err(format!("writing {}", node.config.display())))?;
        }
        Ok(())
    }

    fn build_network(&mut self) -> Result<(), LabError> {
        let all_ns: Vec<String> = [self.switch_ns.clone(), self.client_ns.clone()]
            .into_iter()
            .chain(self.nodes.iter().map(|n| n.ns.clone()))
            .collect();
        for ns in &all_ns {
            netns::run_checked("ip", &["netns", "add", ns], None)?;
            self.created_ns.push(ns.clone());
        }
        let ipv6 = self.spec.ipv6;
        let plen = render::prefix_len(ipv6);
        let nodad = if ipv6 { " nodad" } else { "" };

        let mut switch = String::from("link set lo up\n");
        for link in 0..self.spec.links {
            switch.push_str(&format!(
                "link add br{link} type bridge stp_state 0 mcast_snooping 0\nlink set br{link} up\n"
            ));
        }
        self.ip_batch(&self.switch_ns, &switch)?;

        for (idx, node) in self.nodes.iter().enumerate() {
            let i = idx + 1;
            let mut b = String::from("link set lo up\n");
            for link in self.spec.links_of(i) {
                let addr = render::node_address(ipv6, i, link);
                b.push_str(&format!(
                    "link add eth{link} type veth peer name {port} netns {sw}\n\
                     addr add {addr}/{plen} dev eth{link}{nodad}\n\
                     link set eth{link} up\n",
                    port = render::switch_port(link, i),
                    sw = self.switch_ns,
                ));
            }
            self.ip_batch(&node.ns, &b)?;
        }
        let client = format!(
            "link set lo up\n\
             link add eth0 type veth peer name {port} netns {sw}\n\
             addr add {addr}/{plen} dev eth0{nodad}\n\
             link set eth0 up\n",
            port = render::CLIENT_PORT,
            sw = self.switch_ns,
            addr = render::client_address(ipv6),
        );
        self.ip_batch(&self.client_ns, &client)?;

        let mut ports = String::new();
        for link in 0..self.spec.links {
            for i in (1..=self.spec.nodes).filter(|i| self.spec.on_link(*i, link)) {
                let port = render::switch_port(link, i);
                ports.push_str(&format!(
                    "link set {port} master br{link}\nlink set {port} up\n"
                ));
            }
        }
        ports.push_str(&format!(
            "link set {} master br0\nlink set {} up\n",
            render::CLIENT_PORT,
            render::CLIENT_PORT
        ));
        self.ip_batch(&self.switch_ns, &ports)?;
        let all: Vec<usize> = (1..=self.spec.nodes).collect();
        self.pin_neighbours(&all)?;
        self.apply_rules()
    }

    fn ip_batch(&self, ns: &str, script: &str) -> Result<(), LabError> {
        netns::run_checked("ip", &["-n", ns, "-batch", "-"], Some(script)).map(|_| ())
    }

    fn check_live(&self) -> Result<(), LabError> {
        if self.torn_down {
            Err(LabError::TornDown)
        } else {
            Ok(())
        }
    }

    fn node_state(&self, node: usize) -> Result<&NodeState, LabError> {
        node.checked_sub(1)
            .and_then(|i| self.nodes.get(i))
            .ok_or(LabError::NoSuchNode(node))
    }

    /// One of the node's paths; empty for a node the lab does not have.
    fn node_path(&self, node: usize, path: impl FnOnce(&NodeState) -> &PathBuf) -> PathBuf {
        self.node_state(node).map(path).cloned().unwrap_or_default()
    }

    fn node_state_mut(&mut self, node: usize) -> Result<&mut NodeState, LabError> {
        node.checked_sub(1)
            .and_then(|i| self.nodes.get_mut(i))
            .ok_or(LabError::NoSuchNode(node))
    }

    fn check_link(&self, link: usize) -> Result<(), LabError> {
        if link < self.spec.links {
            Ok(())
        } else {
            Err(LabError::NoSuchLink(link))
        }
    }

    /// The namespace name behind `ns`.
    pub fn ns_name(&self, ns: Ns) -> Result<String, LabError> {
        Ok(match ns {
            Ns::Node(i) => self.node_state(i)?.ns.clone(),
            Ns::Client => self.client_ns.clone(),
            Ns::Switch => self.switch_ns.clone(),
        })
    }

    // ----- daemons -------------------------------------------------------------------

    /// Starts tandemd for `node` inside its namespace (stdout+stderr appended to its log).
    pub fn start(&mut self, node: usize) -> Result<(), LabError> {
        self.check_live()?;
        if self.is_running(node) {
            return Err(LabError::AlreadyRunning(node));
        }
        let tandemd = self.spec.tandemd.clone();
        let n = self.node_state(node)?;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)
            .map_err(io_err(format!("opening {}", n.log.display())))?;
        let _ = writeln!(
            log,
            "=== tandem-lab: starting {} for n{node} ===",
            tandemd.display()
        );
        let log_err = log.try_clone().map_err(io_err("duplicating log fd"))?;
        let (mut cmd, _ns_file) = netns::command_in_netns(&n.ns, &tandemd)?;
        cmd.arg("--config")
            .arg(&n.config)
            .arg("--node")
            .arg(render::node_name(node))
            .arg("--socket")
            .arg(&n.socket)
            .arg("--state-dir")
            .arg(&n.state_dir)
            .arg("--log-format")
            .arg("json")
            .env(NODE_ENV, render::node_name(node))
            .env(NODE_DIR_ENV, &n.run_dir)
            .env(HA_RSCTMP_ENV, n.run_dir.join("rsctmp"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Own process group: a Ctrl-C at the terminal reaches only the lab, which
            // then tears the daemons down itself.
            .process_group(0);
        let child = cmd.spawn().map_err(io_err(format!(
            "starting {} in {}",
            tandemd.display(),
            n.ns
        )))?;
        let n = self.node_state_mut(node)?;
        n.daemon = Some(child);
        n.last_exit = None;
        Ok(())
    }

    pub fn start_all(&mut self) -> Result<(), LabError> {
        for node in 1..=self.nodes.len() {
            self.start(node)?;
        }
        Ok(())
    }

    /// Whether node's daemon is alive (a paused one is). Reaps it if it has exited.
    pub fn is_running(&mut self, node: usize) -> bool {
        let Ok(n) = self.node_state_mut(node) else {
            return false;
        };
        let Some(child) = n.daemon.as_mut() else {
            return false;
        };
        match child.try_wait() {
            Ok(None) => true,
            Ok(Some(status)) => {
                n.last_exit = Some(status);
                n.daemon = None;
                false
            }
            Err(_) => false,
        }
    }

    /// Pid of the node's running daemon.
    pub fn pid(&mut self, node: usize) -> Option<u32> {
        if !self.is_running(node) {
            return None;
        }
        self.node_state(node).ok()?.daemon.as_ref().map(Child::id)
    }

    /// How the node's daemon last exited (None while running or never started).
    pub fn last_exit(&mut self, node: usize) -> Option<ExitStatus> {
        self.is_running(node);
        self.node_state(node).ok()?.last_exit
    }

    fn running_child(&mut self, node: usize) -> Result<&mut NodeState, LabError> {
        if !self.is_running(node) {
            self.node_state(node)?;
            return Err(LabError::NotRunning(node));
        }
        self.node_state_mut(node)
    }

    /// SIGKILL of the whole daemon, lease guard and worker at once (with the node's
    /// links cut: a power loss), and reap. Services the daemon started keep running, as
    /// they would after a real crash; teardown removes them.
    pub fn kill(&mut self, node: usize) -> Result<(), LabError> {
        let worker = self.worker_pid(node);
        let n = self.running_child(node)?;
        if let Some(mut child) = n.daemon.take() {
            let _ = child.kill();
            if let Some(w) = worker.filter(|w| *w != child.id()) {
                let _ = kill(Pid::from_raw(w as i32), Signal::SIGKILL);
            }
            n.last_exit = child.wait().ok();
        }
        Ok(())
    }

    /// SIGKILL of the daemon's main PID alone (the lease guard): its worker hands every
    /// group over and exits. Reaped.
    pub fn kill_main(&mut self, node: usize) -> Result<(), LabError> {
        let n = self.running_child(node)?;
        if let Some(mut child) = n.daemon.take() {
            let _ = child.kill();
            n.last_exit = child.wait().ok();
        }
        Ok(())
    }

    /// SIGKILL of the daemon's worker alone (the process the OOM killer would pick):
    /// its lease guard takes everything down and starts a new worker.
    pub fn kill_worker(&mut self, node: usize) -> Result<(), LabError> {
        let worker = self.worker_pid(node).ok_or(LabError::NotRunning(node))?;
        kill(Pid::from_raw(worker as i32), Signal::SIGKILL).map_err(|e| LabError::Io {
            context: format!("killing n{node}'s worker {worker}"),
            source: e.into(),
        })
    }

    /// The process that runs the node's core and agents: the lease guard's child, or
    /// the daemon itself when it runs without a guard (`--no-guard`, stand-ins).
    pub fn worker_pid(&mut self, node: usize) -> Option<u32> {
        let main = self.pid(node)?;
        let children = std::fs::read_to_string(format!("/proc/{main}/task/{main}/children"))
            .unwrap_or_default();
        Some(
            children
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .find(|p: &u32| process_name(*p).as_deref() == Some("tandemd-worker"))
                .unwrap_or(main),
        )
    }

    /// SIGTERM (plus SIGCONT, so a paused daemon handles it) and wait up to
    /// `TERMINATE_TIMEOUT`; then SIGKILL and report a timeout.
    pub fn terminate(&mut self, node: usize) -> Result<(), LabError> {
        let n = self.running_child(node)?;
        let Some(mut child) = n.daemon.take() else {
            return Err(LabError::NotRunning(node));
        };
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let _ = kill(pid, Signal::SIGCONT);
        match netns::wait_timeout(&mut child, TERMINATE_TIMEOUT) {
            Ok(Some(status)) => {
                n.last_exit = Some(status);
                Ok(())
            }
            _ => {
                let _ = child.kill();
                n.last_exit = child.wait().ok();
                Err(LabError::Timeout {
                    what: format!("n{node} exiting after SIGTERM"),
                    after: TERMINATE_TIMEOUT,
                })
            }
        }
    }

    fn signal(&mut self, node: usize, sig: Signal) -> Result<(), LabError> {
        self.running_child(node)?;
        let Some(target) = self.worker_pid(node) else {
            return Err(LabError::NotRunning(node));
        };
        kill(Pid::from_raw(target as i32), sig).map_err(|e| LabError::Io {
            context: format!("sending {sig} to n{node}"),
            source: e.into(),
        })
    }

    /// SIGSTOP of the daemon's worker (a wedged process, a long GC pause); its lease
    /// guard stays awake and acts before the worker's leases end.
    pub fn pause(&mut self, node: usize) -> Result<(), LabError> {
        self.signal(node, Signal::SIGSTOP)
    }

    /// SIGCONT to the worker.
    pub fn resume(&mut self, node: usize) -> Result<(), LabError> {
        self.signal(node, Signal::SIGCONT)
    }

    /// Starts an arbitrary long-running command in `ns`; it is killed on teardown.
    pub fn spawn(&mut self, ns: Ns, cmd: &[&str]) -> Result<Spawned, LabError> {
        self.check_live()?;
        let (program, args) = cmd
            .split_first()
            .ok_or_else(|| LabError::Spec("spawn: empty command".into()))?;
        let ns_name = self.ns_name(ns)?;
        let log_path = self
            .dir
            .join(format!("spawn-{}.log", self.spawned.len() + 1));
        let log =
            File::create(&log_path).map_err(io_err(format!("creating {}", log_path.display())))?;
        let log_err = log.try_clone().map_err(io_err("duplicating log fd"))?;
        let (mut command, _ns_file) = netns::command_in_netns(&ns_name, program)?;
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0);
        let child = command.spawn().map_err(|e| {
            tools::spawn_error(
                program,
                format!("starting `{}` in {ns_name}", cmd.join(" ")),
                e,
            )
        })?;
        let spawned = Spawned {
            pid: child.id(),
            log: log_path,
        };
        self.spawned.push(child);
        Ok(spawned)
    }

    /// Runs a command to completion inside `ns` (killed after `EXEC_TIMEOUT`). For
    /// processes that should keep running in the background, use `spawn`.
    pub fn exec(&self, ns: Ns, cmd: &[&str]) -> Result<Output, LabError> {
        self.exec_timeout(ns, cmd, EXEC_TIMEOUT)
    }

    pub fn exec_timeout(
        &self,
        ns: Ns,
        cmd: &[&str],
        timeout: Duration,
    ) -> Result<Output, LabError> {
        self.check_live()?;
        netns::exec_in_netns(&self.ns_name(ns)?, cmd, None, timeout)
    }

    /// Every live process inside `ns`.
    pub fn pids(&self, ns: Ns) -> Vec<u32> {
        self.ns_name(ns)
            .map(|n| netns::pids_in_netns(&n))
            .unwrap_or_default()
    }

    /// `tandemctl --socket <node socket> args...`, run in the host namespace (the socket
    /// is a path). If tandemctl cannot be started or runs longer than
    /// `TANDEMCTL_TIMEOUT` (e.g. against a paused daemon), the Output has status 127 and
    /// the reason in stderr.
    pub fn tandemctl(&self, node: usize, args: &[&str]) -> Output {
        let failed = |msg: String| Output {
            status: ExitStatus::from_raw(127 << 8),
            stdout: Vec::new(),
            stderr: msg.into_bytes(),
        };
        let n = match self.node_state(node) {
            Ok(n) => n,
            Err(e) => return failed(e.to_string()),
        };
        let mut cmd = Command::new(&self.spec.tandemctl);
        cmd.arg("--socket").arg(&n.socket).args(args);
        let cmdline = format!(
            "{} --socket {} {}",
            self.spec.tandemctl.display(),
            n.socket.display(),
            args.join(" ")
        );
        netns::output_with_timeout(cmd, None, TANDEMCTL_TIMEOUT, cmdline)
            .unwrap_or_else(|e| failed(e.to_string()))
    }

    // ----- faults --------------------------------------------------------------------

    fn apply_rules(&self) -> Result<(), LabError> {
        self.check_live()?;
        let rules = render::render_switch_rules(
            self.spec.links,
            &self.dropped_ports(),
            &self.partition,
            self.loss_percent,
        );
        let out = netns::exec_in_netns(
            &self.switch_ns,
            &["nft", "-f", "-"],
            Some(rules.as_bytes()),
            EXEC_TIMEOUT,
        )?;
        if !out.status.success() {
            return Err(LabError::Command {
                cmd: format!("[{}] nft -f - <<EOF\n{rules}EOF", self.switch_ns),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(())
    }

    /// Drops everything `node` sends or receives on `link` (at its switch port).
    pub fn cut_link(&mut self, node: usize, link: usize) -> Result<(), LabError> {
        self.node_state(node)?;
        self.check_link(link)?;
        if !self.spec.on_link(node, link) {
            return Err(LabError::Spec(format!(
                "node {node} is not on link {link}: there is nothing to cut"
            )));
        }
        self.cuts.insert((node, link));
        self.apply_rules()
    }

    pub fn heal_link(&mut self, node: usize, link: usize) -> Result<(), LabError> {
        self.node_state(node)?;
        self.check_link(link)?;
        self.cuts.remove(&(node, link));
        self.apply_rules()
    }

    /// Cuts every link of `node`.
    pub fn isolate(&mut self, node: usize) -> Result<(), LabError> {
        self.node_state(node)?;
        for link in 0..self.spec.links {
            self.cuts.insert((node, link));
        }
        self.apply_rules()
    }

    /// Heals every link of `node` (partitions are left alone).
    pub fn heal(&mut self, node: usize) -> Result<(), LabError> {
        self.node_state(node)?;
        self.cuts.retain(|&(n, _)| n != node);
        self.apply_rules()
    }

    /// Nodes on different sides can no longer reach each other on any link; nodes not
    /// named, and the client, still reach everyone. Replaces any earlier partition.
    pub fn partition(&mut self, sides: &[&[usize]]) -> Result<(), LabError> {
        let mut seen = BTreeSet::new();
        for &node in sides.iter().flat_map(|s| s.iter()) {
            self.node_state(node)?;
            if !seen.insert(node) {
                return Err(LabError::Spec(format!(
                    "partition: node {node} is on two sides"
                )));
            }
        }
        self.partition = sides.iter().map(|s| s.to_vec()).collect();
        self.apply_rules()
    }

    /// Drops `percent` % of the frames between nodes, at random, on every link (0 heals;
    /// above 100 is 100). The client's traffic to and from the nodes is not affected.
    pub fn set_loss(&mut self, percent: u8) -> Result<(), LabError> {
        self.loss_percent = percent.min(100);
        self.apply_rules()
    }

    /// Removes every partition, cut link and packet loss.
    pub fn heal_all(&mut self) -> Result<(), LabError> {
        self.cuts.clear();
        self.partition.clear();
        self.loss_percent = 0;
        self.apply_rules()
    }

    fn set_links(&mut self, node: usize, state: &str) -> Result<(), LabError> {
        self.check_live()?;
        let ns = self.node_state(node)?.ns.clone();
        let script: String = self
            .spec
            .links_of(node)
            .map(|l| format!("link set eth{l} {state}\n"))
            .collect();
        self.ip_batch(&ns, &script)
    }

    /// `ip link set ethK down` on every link of `node` (power-loss / NIC failure).
    pub fn links_down(&mut self, node: usize) -> Result<(), LabError> {
        self.set_links(node, "down")
    }

    /// Undoes `links_down`. IPv4 addresses survive a down/up; IPv6 ones are re-added.
    pub fn links_up(&mut self, node: usize) -> Result<(), LabError> {
        self.set_links(node, "up")?;
        if self.spec.ipv6 {
            let ns = self.node_state(node)?.ns.clone();
            for l in self.spec.links_of(node) {
                let addr = format!("{}/64", render::node_address(true, node, l));
                let dev = format!("eth{l}");
                // Ignore "exists": the kernel keeps addresses on some kernels.
                let _ = netns::run_checked(
                    "ip",
                    &["-n", &ns, "addr", "replace", &addr, "dev", &dev, "nodad"],
                    None,
                );
            }
        }
        self.pin_neighbours(&[node])
    }

    /// Power loss: at one instant the node goes silent on every link (`blackout`), then
    /// every process in its namespace (tandemd and the services its agents started) is
    /// SIGKILLed and its links go down. Addresses stay configured, as RAM does not matter
    /// to a dark NIC; `power_on` models the reboot that clears them.
    pub fn power_off(&mut self, node: usize) -> Result<(), LabError> {
        self.check_live()?;
        self.blackout(node)?;
        if self.is_running(node) {
            self.kill(node)?;
        }
        let ns = self.node_state(node)?.ns.clone();
        let left = netns::kill_all_in_netns(&ns, Duration::from_secs(5));
        if !left.is_empty() {
            return Err(LabError::Timeout {
                what: format!("SIGKILL of processes {left:?} in {ns}"),
                after: Duration::from_secs(5),
            });
        }
        self.links_down(node)
    }

    /// The reboot after `power_off`: links come up with only the lab's own addresses (a
    /// VIP the node held before does not survive a reboot), then tandemd starts.
    pub fn power_on(&mut self, node: usize) -> Result<(), LabError> {
        self.restore_power(node)?;
        self.start(node)
    }

    /// `power_on` without starting tandemd (for a lab that runs something else on the
    /// node, e.g. keepalived).
    pub fn restore_power(&mut self, node: usize) -> Result<(), LabError> {
        self.check_live()?;
        let ns = self.node_state(node)?.ns.clone();
        let ipv6 = self.spec.ipv6;
        let plen = render::prefix_len(ipv6);
        let nodad = if ipv6 { " nodad" } else { "" };
        let mut script = String::from("link set lo up\n");
        for l in self.spec.links_of(node) {
            let addr = render::node_address(ipv6, node, l);
            script.push_str(&format!(
                "addr flush dev eth{l} scope global\n\
                 addr add {addr}/{plen} dev eth{l}{nodad}\n\
                 link set eth{l} up\n"
            ));
        }
        self.ip_batch(&ns, &script)?;
        self.pin_neighbours(&[node])?;
        self.end_blackout(node)
    }

    // ----- accessors -----------------------------------------------------------------

    /// The node's full log (daemon stdout+stderr across restarts); empty if none.
    pub fn logs(&self, node: usize) -> String {
        self.node_state(node)
            .ok()
            .and_then(|n| fs::read(&n.log).ok())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    pub fn config_path(&self, node: usize) -> PathBuf {
        self.node_path(node, |n| &n.config)
    }

    pub fn socket_path(&self, node: usize) -> PathBuf {
        self.node_path(node, |n| &n.socket)
    }

    pub fn state_dir(&self, node: usize) -> PathBuf {
        self.node_path(node, |n| &n.state_dir)
    }

    /// The node's private run directory (`TANDEM_LAB_NODE_DIR` of its daemon and agents).
    pub fn run_dir(&self, node: usize) -> PathBuf {
        self.node_path(node, |n| &n.run_dir)
    }

    /// The node's `HA_RSCTMP` (OCF agents' state files), inside `run_dir`.
    pub fn rsctmp_dir(&self, node: usize) -> PathBuf {
        self.run_dir(node).join("rsctmp")
    }

    pub fn log_path(&self, node: usize) -> PathBuf {
        self.node_path(node, |n| &n.log)
    }

    pub fn authkey_path(&self) -> &Path {
        &self.authkey
    }

    /// The lab's temp dir (configs, logs, state, authkey).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `tdm{pid}-{counter}`: the common prefix of this lab's namespace names.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn spec(&self) -> &LabSpec {
        &self.spec
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    pub fn node_name(&self, node: usize) -> String {
        render::node_name(node)
    }

    /// Node `node`'s address on `link`.
    pub fn address(&self, node: usize, link: usize) -> IpAddr {
        render::node_address(self.spec.ipv6, node, link)
    }

    pub fn client_address(&self) -> IpAddr {
        render::client_address(self.spec.ipv6)
    }

    // ----- teardown ------------------------------------------------------------------

    /// Kills every process the lab started or that lives in its namespaces, deletes the
    /// namespaces (and with them veths, bridges and nft tables) and the temp dir.
    /// Idempotent; never panics.
    pub fn teardown(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        if thread::panicking() {
            self.print_log_tails();
        }
        for n in &mut self.nodes {
            if let Some(mut child) = n.daemon.take() {
                let _ = child.kill();
                n.last_exit = child.wait().ok();
            }
        }
        for mut child in self.spawned.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in &self.created_ns {
            let left = netns::kill_all_in_netns(ns, Duration::from_secs(5));
            if !left.is_empty() {
                eprintln!("tandem-lab: processes {left:?} survived SIGKILL in {ns}");
            }
        }
        for ns in self.created_ns.drain(..) {
            if let Err(e) = netns::run_checked("ip", &["netns", "del", &ns], None) {
                eprintln!("tandem-lab: {e}");
            }
        }
        if std::env::var_os(KEEP_ENV).is_some() {
            eprintln!(
                "tandem-lab: keeping {} ({KEEP_ENV} is set)",
                self.dir.display()
            );
        } else if let Err(e) = fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("tandem-lab: removing {}: {e}", self.dir.display());
            }
        }
    }

    fn print_log_tails(&self) {
        for (idx, n) in self.nodes.iter().enumerate() {
            let log = self.logs(idx + 1);
            if log.is_empty() {
                continue;
            }
            eprintln!("---- tandem-lab: last lines of {} ----", n.log.display());
            for l in observe::events::readable_tail(&log, 30) {
                eprintln!("{l}");
            }
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Deletes namespaces (and temp dirs) left by labs whose creating process is dead (gone
/// or a zombie), e.g.
/// after a SIGKILLed test run. Live labs of other processes are left alone. Returns the
/// number of namespaces deleted.
pub fn cleanup_stale() -> Result<usize, LabError> {
    preflight()?;
    let mut deleted = 0;
    for ns in netns::list_netns() {
        let Some(pid) = render::creator_pid(&ns) else {
            continue;
        };
        if netns::pid_alive(pid) {
            continue;
        }
        netns::kill_all_in_netns(&ns, Duration::from_secs(5));
        netns::run_checked("ip", &["netns", "del", &ns], None)?;
        deleted += 1;
    }
    let tmp = std::env::temp_dir();
    if let Ok(entries) = fs::read_dir(&tmp) {
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(prefix) = name.to_str().and_then(|n| n.strip_prefix("tandem-lab-")) else {
                continue;
            };
            // Reuse the namespace-name parser by giving it a role suffix.
            if let Some(pid) = render::creator_pid(&format!("{prefix}-sw")) {
                if !netns::pid_alive(pid) {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
    }
    Ok(deleted)
}

/// Calls `f` every `poll` until it returns `Some`, or gives up after `timeout` (`f` is
/// always tried at least once, and once more at the deadline).
/// Sleeps `d` in slices of at most 20 ms so that a stop request (Ctrl-C, SIGTERM) is
/// seen quickly; false as soon as `stop` is set, true once `d` has passed.
pub(crate) fn sleep_unless_stopped(stop: &AtomicBool, d: Duration) -> bool {
    let end = Instant::now() + d;
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= end {
            return true;
        }
        thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}

pub fn wait_until<T>(
    timeout: Duration,
    poll: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        thread::sleep(poll.min(deadline - now));
    }
}

/// `comm` of a process (`None` once it is gone).
fn process_name(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|c| c.trim().to_string())
}
