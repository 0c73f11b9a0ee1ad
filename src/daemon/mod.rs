//! The daemon: wires the deterministic core to the world.
//!
//! Threads, by design brief: the *heartbeat thread* owns the core and the heartbeat
//! sockets and nothing slow ([`heartbeat`]); the *executor* runs agents and fencing
//! ([`executor`]); the main thread runs the control socket and signal handling. They
//! talk only through channels, so no slow script or client can delay a heartbeat.

mod admin;
pub mod arbiter;
pub mod carrier;
pub mod clock;
pub mod control;
mod deadline;
pub mod emergency;
pub mod event_log;
pub mod events;
pub mod executor;
pub mod guarded;
pub mod heartbeat;
pub mod inbound;
pub mod log_queue;
mod memory;
pub mod metrics;
pub mod notify;
pub mod outbound;
pub mod reload;
pub mod settings;
pub mod state;

use crate::core::{Boot, ClusterSpec, Node, NodeId};
use crate::net::{LinkPlan, Links, NetError};
use crate::wire::Keyring;
use control::{AccessPolicy, Backend, ControlCall};
use executor::{AgentExecutor, Executor, StubExecutor};
use heartbeat::HeartbeatLoop;
use inbound::Inbound;
use rand::TryRngCore;
use state::{IncarnationSource, StateDir};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Priority of the heartbeat thread under SCHED_RR: above ordinary services, below the
/// kernel's own threads and watchdogs (which use 99).
pub const HEARTBEAT_RT_PRIORITY: i32 = 50;

/// Everything the daemon needs, resolved from the config and the command line.
#[derive(Clone, Debug)]
pub struct Settings {
    pub cluster_name: String,
    /// `fnv1a64(cluster name)`, carried in every datagram header.
    pub cluster_id: u64,
    pub spec: ClusterSpec,
    pub me: NodeId,
    pub links: Vec<LinkPlan>,
    pub port: u16,
    pub keyring: Keyring,
    pub realtime: bool,
    pub mlockall: bool,
    pub socket: PathBuf,
    pub state_dir: PathBuf,
    /// The config file the daemon started with (`reload` and SIGHUP read it again);
    /// `None` when started from values built in code (tests): reload is refused.
    pub config_path: Option<PathBuf>,
    /// The whole validated config: agents, fence devices, hooks, checks.
    pub config: Arc<crate::config::Config>,
    /// Run resource operations for real (`false`: the logging stub, for plumbing tests).
    pub agents: bool,
    /// Where to serve Prometheus metrics (`metrics.listen`); `None`: no endpoint.
    pub metrics: Option<std::net::SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error(transparent)]
    Net(#[from] NetError),
    #[error(transparent)]
    Control(#[from] control::ServerError),
    #[error("heartbeat thread: {0}")]
    Heartbeat(#[from] heartbeat::LoopError),
    #[error("{0}")]
    Thread(String),
    #[error("cannot start a runtime: {0}")]
    Runtime(std::io::Error),
}

/// Boots the node: incarnation, persisted state, seed. Separate from `run` so the
/// state-dir logic is testable without sockets.
pub fn prepare_boot(dir: &StateDir) -> Result<Boot, DaemonError> {
    let (incarnation, source) = dir.next_incarnation(clock::realtime_ns())?;
    match source {
        IncarnationSource::Counter => tracing::info!("incarnation {incarnation}"),
        IncarnationSource::WallClock => tracing::warn!(
            "no usable {}: starting at incarnation {incarnation} (the wall clock in ns)",
            dir.incarnation_path().display()
        ),
    }
    let persisted = match dir.load() {
        Ok(Some(state)) => Some(state),
        Ok(None) => {
            tracing::warn!(
                "no persisted state in {}: this node will wait for the cluster's view before it takes any group",
                dir.path().display()
            );
            None
        }
        Err(reason) => {
            tracing::error!(
                "IGNORING persisted state: {reason}; this node will wait for the cluster's view before it takes any group"
            );
            None
        }
    };
    let mut seed = [0u8; 8];
    if let Err(e) = rand::rngs::OsRng.try_fill_bytes(&mut seed) {
        tracing::warn!("OS random generator failed ({e}); seeding jitter from the clock");
        seed = (clock::realtime_ns() ^ clock::now().as_nanos()).to_le_bytes();
    }
    Ok(Boot {
        incarnation,
        persisted,
        seed: u64::from_le_bytes(seed),
    })
}

/// Best effort: real-time scheduling for the calling thread.
///
/// `SCHED_RESET_ON_FORK` matters as much as the priority: without it every thread this
/// one creates (the executor) and every process those start (agents, and the services
/// LSB scripts or `exec` resources leave running) would inherit SCHED_RR, and a busy
/// service at RT priority 50 could starve the very heartbeats this is meant to protect.
fn try_realtime() {
    let param = libc::sched_param {
        sched_priority: HEARTBEAT_RT_PRIORITY,
    };
    // SAFETY: plain syscall on the calling thread (pid 0) with a valid parameter struct.
    let rc =
        unsafe { libc::sched_setscheduler(0, libc::SCHED_RR | libc::SCHED_RESET_ON_FORK, &param) };
    if rc == 0 {
        tracing::info!("heartbeat thread runs SCHED_RR priority {HEARTBEAT_RT_PRIORITY}");
    } else {
        tracing::warn!(
            "cannot switch the heartbeat thread to SCHED_RR: {}; heartbeats may be delayed under load",
            std::io::Error::last_os_error()
        );
    }
}

/// A running heartbeat thread.
struct HeartbeatThread {
    handle: std::thread::JoinHandle<Result<(), heartbeat::LoopError>>,
    shutdown: oneshot::Sender<()>,
    /// Fires when the thread ends on its own.
    exited: oneshot::Receiver<()>,
}

fn spawn_heartbeat(
    settings: &Settings,
    node: Node,
    state: StateDir,
    calls: mpsc::Receiver<ControlCall>,
    metrics: Arc<metrics::Metrics>,
) -> Result<HeartbeatThread, DaemonError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), DaemonError>>();
    let (shutdown, shutdown_rx) = oneshot::channel();
    let (exited_tx, exited) = oneshot::channel();
    let s = settings.clone();
    let handle = std::thread::Builder::new()
        .name("tandem-heartbeat".into())
        .spawn(move || {
            let result = heartbeat_thread(s, node, state, calls, metrics, shutdown_rx, &ready_tx);
            let _ = exited_tx.send(());
            result
        })
        .map_err(|e| DaemonError::Thread(format!("cannot spawn heartbeat thread: {e}")))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(HeartbeatThread {
            handle,
            shutdown,
            exited,
        }),
        Ok(Err(e)) => {
            let _ = handle.join();
            Err(e)
        }
        Err(_) => Err(DaemonError::Thread(
            "heartbeat thread died during start".into(),
        )),
    }
}

fn heartbeat_thread(
    s: Settings,
    node: Node,
    state: StateDir,
    calls: mpsc::Receiver<ControlCall>,
    metrics: Arc<metrics::Metrics>,
    shutdown: oneshot::Receiver<()>,
    ready: &std::sync::mpsc::Sender<Result<(), DaemonError>>,
) -> Result<(), heartbeat::LoopError> {
    if s.realtime {
        try_realtime();
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = ready.send(Err(DaemonError::Runtime(e)));
            return Ok(());
        }
    };
    runtime.block_on(async move {
        let links = match Links::open(&s.links, s.port) {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(e.into()));
                return Ok(());
            }
        };
        for (plan, addr) in links.plans().zip(links.local_addrs()) {
            match addr {
                Ok(a) => tracing::info!(
                    "link {}: listening on {a}{}",
                    plan.index,
                    plan.interface
                        .as_deref()
                        .map(|i| format!(" (device {i})"))
                        .unwrap_or_default()
                ),
                Err(e) => tracing::warn!("link {}: {e}", plan.index),
            }
        }
        let (answers_tx, answers) = mpsc::unbounded_channel();
        let arbiter = spawn_arbiter(&s, &node, &answers_tx, metrics.arbiter.clone());
        let executor: Result<Box<dyn Executor>, _> = if s.agents {
            let me = s
                .spec
                .node(s.me)
                .map(|n| n.name.clone())
                .unwrap_or_default();
            if let Err(e) = carrier::spawn(&s.config, answers_tx.clone()) {
                tracing::warn!("carrier watch not started (vips wait for their monitor): {e}");
            }
            AgentExecutor::spawn(answers_tx, metrics, s.config.checks.clone(), me)
                .map(|x| Box::new(x) as Box<dyn Executor>)
        } else {
            StubExecutor::spawn(answers_tx).map(|x| Box::new(x) as Box<dyn Executor>)
        };
        let executor = match executor {
            Ok(x) => x,
            Err(e) => {
                let _ = ready.send(Err(DaemonError::Thread(format!(
                    "cannot spawn executor thread: {e}"
                ))));
                return Ok(());
            }
        };
        let inbound = Inbound::new(
            s.cluster_id,
            s.me,
            s.spec.nodes.iter().map(|n| n.id),
            s.keyring.clone(),
        );
        let events = restore_events(&s.state_dir, node.incarnation());
        let hb = HeartbeatLoop {
            node,
            spec: s.spec.clone(),
            links,
            inbound,
            outbound: outbound::Outbound::new(s.cluster_id, s.keyring.current.clone()),
            cluster_name: s.cluster_name.clone(),
            state,
            executor,
            events,
            config: s.config.clone(),
            previous: None,
            guard: guarded::GuardReports::new(),
            guard_lost: false,
            arbiter,
        };
        let _ = ready.send(Ok(()));
        hb.run(answers, calls, shutdown).await
    })
}

/// The event ring with the history kept in `state_dir` and new events written there;
/// memory only (with an error logged) when the file cannot be opened.
fn restore_events(state_dir: &std::path::Path, incarnation: u64) -> events::EventRing {
    let history = event_log::load(state_dir);
    if !history.is_empty() {
        tracing::info!(
            "{} event(s) from before this start loaded from {}",
            history.len(),
            state_dir.join(event_log::EVENT_LOG).display()
        );
    }
    let log = match event_log::EventLog::start(state_dir) {
        Ok(log) => Some(log),
        Err(e) => {
            tracing::error!(
                "cannot keep events in {}: {e}; they are lost at the next restart",
                state_dir.join(event_log::EVENT_LOG).display()
            );
            None
        }
    };
    events::EventRing::restored(history, incarnation, log)
}

/// The etcd arbiter's thread, when `quorum.arbiter` is configured. Not starting it
/// costs the arbiter's vote (as an unreachable etcd would), never the daemon.
fn spawn_arbiter(
    s: &Settings,
    node: &Node,
    answers: &mpsc::UnboundedSender<crate::core::io::Input>,
    board: Arc<arbiter::ArbiterBoard>,
) -> Option<arbiter::ArbiterLink> {
    let etcd = &s.config.quorum.arbiter.as_ref()?.etcd;
    let who = arbiter::Identity {
        cluster: s.cluster_name.clone(),
        me: s.me,
        name: s
            .spec
            .node(s.me)
            .map(|n| n.name.clone())
            .unwrap_or_default(),
        incarnation: node.incarnation(),
    };
    match arbiter::spawn(etcd, &s.spec, who, answers.clone(), board) {
        Ok(link) => Some(link),
        Err(e) => {
            tracing::error!("arbiter: cannot start its thread ({e}); its vote stays missing");
            None
        }
    }
}

/// A started daemon: heartbeat thread running, control socket listening.
pub struct Running {
    hb: HeartbeatThread,
    signals: Signals,
    control: tokio::runtime::Runtime,
    socket: PathBuf,
    reloader: Option<Arc<reload::Reloader>>,
}

/// Starts the daemon: state dir, incarnation, heartbeat thread (links bound), control
/// socket. Returns once everything is up, or the first error.
pub fn start(settings: Settings) -> Result<Running, DaemonError> {
    let name = settings
        .spec
        .node(settings.me)
        .map(|n| n.name.clone())
        .unwrap_or_else(|| settings.me.to_string());
    tracing::info!(
        "tandemd {} starting: cluster {:?}, node {name} ({}), {} link(s), port {}",
        env!("CARGO_PKG_VERSION"),
        settings.cluster_name,
        settings.me,
        settings.links.len(),
        settings.port
    );
    memory::set_up(settings.mlockall);
    let state = StateDir::open(&settings.state_dir)?;
    let boot = prepare_boot(&state)?;
    let node = Node::new(settings.spec.clone(), settings.me, boot, clock::now());

    let (calls_tx, calls_rx) = mpsc::channel(64);
    let op_metrics = Arc::new(metrics::Metrics::default());
    let hb = spawn_heartbeat(&settings, node, state, calls_rx, op_metrics.clone())?;

    // The control socket gets its own small runtime thread: clients never share a
    // thread with heartbeats.
    let control = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("tandem-control")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            stop_heartbeat(hb)?;
            return Err(DaemonError::Runtime(e));
        }
    };
    let policy = Arc::new(AccessPolicy::from_system());
    let (signals, bound) = {
        let _guard = control.enter();
        // Registered before the socket exists, so a SIGTERM from then on always gets
        // the clean shutdown that removes it.
        (
            Signals::register(),
            control::bind(&settings.socket, &policy),
        )
    };
    let signals = match signals {
        Ok(s) => s,
        Err(e) => {
            stop_heartbeat(hb)?;
            return Err(e);
        }
    };
    let listener = match bound {
        Ok(l) => l,
        Err(e) => {
            stop_heartbeat(hb)?;
            return Err(e.into());
        }
    };
    tracing::info!("control socket {}", settings.socket.display());
    let reloader = settings.config_path.as_ref().map(|path| {
        Arc::new(reload::Reloader::new(
            path.clone(),
            settings.config.clone(),
            calls_tx.clone(),
        ))
    });
    if let Some(addr) = settings.metrics {
        match bind_metrics(&control, addr) {
            Ok(listener) => {
                tracing::info!("metrics on http://{addr}/metrics");
                control.spawn(metrics::serve(
                    listener,
                    calls_tx.clone(),
                    op_metrics.clone(),
                ));
            }
            // Metrics are optional: a taken port must not keep the cluster from running.
            Err(e) => tracing::error!("cannot serve metrics on {addr}: {e}; running without"),
        }
    }
    let backend = Backend {
        calls: calls_tx,
        reloader: reloader.clone(),
        checks: op_metrics.checks.clone(),
        arbiter: op_metrics.arbiter.clone(),
    };
    control::spawn_peer_listeners(&control, &settings, backend.clone());
    control.spawn(control::serve(listener, policy, backend));
    Ok(Running {
        hb,
        signals,
        control,
        socket: settings.socket.clone(),
        reloader,
    })
}

fn bind_metrics(
    control: &tokio::runtime::Runtime,
    addr: std::net::SocketAddr,
) -> std::io::Result<tokio::net::TcpListener> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let _guard = control.enter();
    tokio::net::TcpListener::from_std(std_listener)
}

fn stop_heartbeat(hb: HeartbeatThread) -> Result<(), DaemonError> {
    let _ = hb.shutdown.send(());
    hb.handle
        .join()
        .map_err(|_| DaemonError::Thread("heartbeat thread panicked".into()))??;
    Ok(())
}

impl Running {
    /// Blocks until SIGTERM/SIGINT or until the heartbeat thread stops on its own, then
    /// shuts down. SIGHUP reloads the config, exactly like `tandemctl reload`.
    pub fn wait_for_signals(mut self) -> Result<(), DaemonError> {
        let reloader = self.reloader.clone();
        let waited = self
            .control
            .block_on(self.signals.wait_for_stop(&mut self.hb.exited, reloader));
        let stopped = self.stop();
        waited.and(stopped)
    }

    /// Stops the control socket (removing its file) and the heartbeat thread.
    pub fn stop(self) -> Result<(), DaemonError> {
        self.control.shutdown_background();
        let _ = std::fs::remove_file(&self.socket);
        let result = stop_heartbeat(self.hb);
        tracing::info!("tandemd stopped");
        result
    }
}

/// Runs the daemon until SIGTERM/SIGINT (clean exit) or a fatal error.
pub fn run(settings: Settings) -> Result<(), DaemonError> {
    let running = start(settings)?;
    // Every thread runs and the first heartbeat went out: the code only the start
    // needed need not stay mapped (and locked) for the life of the worker.
    memory::drop_read_only_pages();
    match crate::guard::link::get() {
        Some(link) => {
            if let Err(e) = link.send(crate::guard::Record::Ready) {
                tracing::error!("{e}");
            }
            watch_guard(link);
        }
        None => notify::ready(),
    }
    let result = running.wait_for_signals();
    notify::stopping();
    result
}

/// A worker whose guard died has nothing left to enforce its leases if it dies too:
/// it shuts down the way SIGTERM asks (every group stopped and handed over), while it
/// is still alive to do so.
fn watch_guard(link: &'static crate::guard::link::GuardLink) {
    let spawned = std::thread::Builder::new()
        .name("tandem-guardwatch".into())
        .spawn(move || {
            link.wait_for_guard_death();
            tracing::error!("the lease guard is gone: handing every group over and exiting");
            let _ =
                nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGTERM);
        });
    if let Err(e) = spawned {
        tracing::error!("cannot watch the lease guard: {e}");
    }
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn register() -> Result<Signals, DaemonError> {
        use tokio::signal::unix::{signal, SignalKind};
        let sig =
            |kind| signal(kind).map_err(|e| DaemonError::Thread(format!("signal handler: {e}")));
        Ok(Signals {
            term: sig(SignalKind::terminate())?,
            int: sig(SignalKind::interrupt())?,
            hup: sig(SignalKind::hangup())?,
        })
    }

    async fn wait_for_stop(
        &mut self,
        exited: &mut oneshot::Receiver<()>,
        reloader: Option<Arc<reload::Reloader>>,
    ) -> Result<(), DaemonError> {
        loop {
            tokio::select! {
                _ = self.term.recv() => { tracing::info!("SIGTERM: shutting down"); return Ok(()); }
                _ = self.int.recv() => { tracing::info!("SIGINT: shutting down"); return Ok(()); }
                _ = self.hup.recv() => match &reloader {
                    // Its own task: a slow reload must not delay a SIGTERM. The reloader
                    // logs the outcome.
                    Some(r) => {
                        let r = r.clone();
                        tokio::spawn(async move { r.reload("SIGHUP").await });
                    }
                    None => tracing::warn!("SIGHUP: started without a config file; nothing to reload"),
                },
                _ = &mut *exited => {
                    tracing::error!("heartbeat thread stopped; shutting down");
                    return Ok(());
                }
            }
        }
    }
}
