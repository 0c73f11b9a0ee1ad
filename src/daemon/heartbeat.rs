//! The heartbeat thread: owns the core, the link sockets, the keyring, replay windows
//! and drop counters, and nothing slow.
//!
//! A current-thread tokio runtime on a dedicated OS thread (SCHED_RR when configured)
//! waits for the earliest of: a datagram on any link (one wait on every link socket, a
//! batch read with one `recvmmsg`: [`Links::receive`]), an answer from the executor, a
//! control call, the core's next wake (`Node::next_wake`: a deadline a takeover or a
//! lease waits on at the instant, another up to a millisecond late), shutdown. The
//! clock is read again right before every `handle` (a timer that fired late must not
//! make the core believe it is earlier than it is), and every returned action is
//! carried out, in order, before the next input.
//! Control calls are answered by the admin handling in [`super::admin`].

use super::clock;
use super::control::ControlCall;
use super::deadline::DeadlineTimer;
use super::events::{self, EventRing};
use super::executor::{Executor, Work};
use super::inbound::Inbound;
use super::outbound::Outbound;
use super::state::StateDir;
use crate::config::{Config, ResourceConfig, ResourceKind};
use crate::core::{
    Action, Event, EventKind, GroupId, Heartbeat, Input, Instant, Node, NodeId, OpKind,
};
use crate::net::{Links, Received};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Why the heartbeat loop stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    /// The core's state could not be made durable: carrying on could reuse a term.
    #[error("cannot persist state: {0}")]
    Persist(#[from] super::state::StateError),
    #[error("all channels into the heartbeat thread closed")]
    Orphaned,
}

pub struct HeartbeatLoop<E: Executor> {
    pub node: Node,
    pub spec: crate::core::ClusterSpec,
    pub links: Links,
    pub inbound: Inbound,
    /// Seals and sends heartbeats (its buffers and nonce generator live across beats).
    pub outbound: Outbound,
    pub cluster_name: String,
    pub state: StateDir,
    pub executor: E,
    pub events: EventRing,
    /// The config the core runs: resource definitions and fence agents come from here.
    pub config: Arc<Config>,
    /// The config before the last reload, for groups whose old resources still run
    /// here until they are stopped (`Node::uses_previous_spec`).
    pub previous: Option<Arc<Config>>,
    /// What the lease guard is told (nothing when this worker has no guard).
    pub guard: super::guarded::GuardReports,
    /// The guard could not be told something: leave as on shutdown.
    pub guard_lost: bool,
    /// The etcd arbiter's request queue, when `quorum.arbiter` is configured.
    pub arbiter: Option<super::arbiter::ArbiterLink>,
}

/// How long a shutdown waits for groups to stop before exiting anyway (below the
/// unit's TimeoutStopSec, so tandemd's own message is what the journal shows).
pub const LEAVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(9 * 60);

/// How many events `status` shows.
pub const STATUS_EVENTS: usize = 5;

impl<E: Executor> HeartbeatLoop<E> {
    /// Runs until `shutdown` fires (or its sender is dropped) or a fatal error.
    pub async fn run(
        mut self,
        mut answers: mpsc::UnboundedReceiver<Input>,
        mut calls: mpsc::Receiver<ControlCall>,
        mut shutdown: oneshot::Receiver<()>,
    ) -> Result<(), LoopError> {
        let config = self.config.clone();
        if let Err(e) = self.guard.register_addresses(&config, None) {
            self.lose_guard(e);
        }
        self.step(Input::Tick)?;
        // The watchdog is fed from this thread, so a wedged heartbeat loop (not just a
        // dead process) gets the daemon restarted; its lease then runs out safely.
        let mut watchdog = super::notify::watchdog_period().map(tokio::time::interval);
        let mut timer = DeadlineTimer::new();
        // Set once shutdown was asked for: when to give up waiting for groups to stop.
        let mut leaving: Option<Instant> = None;
        // Set once quiet: when the release heartbeats have had time to go out.
        let mut exit_at: Option<Instant> = None;
        loop {
            if self.guard_lost && leaving.is_none() {
                leaving = Some(clock::now() + LEAVE_TIMEOUT);
                let actions = self.node.leave(clock::now());
                self.carry_out_all(actions)?;
            }
            if let Some(give_up) = leaving {
                let now = clock::now();
                if exit_at.is_none() && self.node.is_quiet() {
                    tracing::info!("every group is stopped and handed over");
                    exit_at = Some(now + self.spec.timing.interval * 3);
                }
                if exit_at.is_some_and(|at| now >= at) {
                    return Ok(());
                }
                if now >= give_up {
                    tracing::error!(
                        "groups still not stopped {} s after shutdown began; exiting anyway \
                         (the lease runs out before anyone takes over)",
                        LEAVE_TIMEOUT.as_secs()
                    );
                    return Ok(());
                }
            }
            let now = clock::now();
            // What a takeover or a lease waits on at the instant; the rest (the regular
            // beat, monitors) up to a millisecond later, sharing a wake with a datagram
            // or another deadline (core::node::deadlines).
            let mut wake = match self.node.next_wake() {
                Some(at) => at,
                // No deadline: wake now and then anyway so a stuck core is noticed.
                None => now + std::time::Duration::from_secs(1),
            };
            if leaving.is_some() {
                wake = wake.min(now + self.spec.timing.interval);
            }
            tokio::select! {
                biased;
                _ = &mut shutdown, if leaving.is_none() => {
                    // Like Pacemaker's shutdown: stop and hand over every group before
                    // exiting, so no VIP or service outlives its manager.
                    tracing::info!("shutting down: stopping and handing over every group");
                    leaving = Some(clock::now() + LEAVE_TIMEOUT);
                    let actions = self.node.leave(clock::now());
                    self.carry_out_all(actions)?;
                }
                Some(answer) = answers.recv() => self.step(answer)?,
                count = self.links.receive() => self.deliver(count)?,
                Some(call) = calls.recv() => self.answer(call)?,
                _ = watchdog_tick(&mut watchdog) => super::notify::watchdog(),
                _ = timer.until(wake) => {
                    let due = self.node.next_deadline().is_none_or(|(at, _)| at <= clock::now());
                    if due {
                        self.step(Input::Tick)?;
                    }
                }
                else => return Err(LoopError::Orphaned),
            }
        }
    }

    /// Hands the `count` datagrams [`Links::receive`] just read to the core, one by one,
    /// each decrypted where it lies.
    fn deliver(&mut self, count: usize) -> Result<(), LoopError> {
        for i in 0..count {
            let input = match self.links.received(i) {
                Some(Received {
                    link,
                    datagram: Some(d),
                    ..
                }) => self.inbound.accept(link, d),
                Some(Received { datagram: None, .. }) => {
                    self.inbound.count_oversized();
                    None
                }
                None => None,
            };
            if let Some(input) = input {
                self.step(input)?;
            }
        }
        Ok(())
    }

    /// Applies one input and carries out every action it produced, in order.
    fn step(&mut self, input: Input) -> Result<(), LoopError> {
        let now = clock::now();
        let actions = self.node.handle(now, input);
        self.carry_out_all(actions)
    }

    /// Tells the guard what may run from now on, then carries out `actions` in order:
    /// the guard must know of a lease before the first resource of its group starts.
    pub(super) fn carry_out_all(&mut self, actions: Vec<Action>) -> Result<(), LoopError> {
        let (config, previous) = (self.config.clone(), self.previous.clone());
        if let Err(e) = self.guard.sync(&self.node, &config, previous.as_deref()) {
            self.lose_guard(e);
        }
        for action in actions {
            self.carry_out(action)?;
        }
        Ok(())
    }

    /// Without a guard nothing protects the leases if this process dies: hand every
    /// group over and exit, like a shutdown (the guard, if alive, restarts nothing).
    pub(super) fn lose_guard(&mut self, e: crate::guard::link::GuardGone) {
        if !self.guard_lost {
            tracing::error!("{e}: handing every group over and exiting");
            self.guard_lost = true;
        }
    }

    fn carry_out(&mut self, action: Action) -> Result<(), LoopError> {
        match action {
            Action::Send(hb) => self.send(&hb),
            // Synchronous on purpose: the contract is "durable before any later action".
            Action::Persist(state) => self.state.save(&state)?,
            // Queued for the arbiter thread, never awaited here.
            Action::Arbiter(request) => {
                if let Some(link) = &self.arbiter {
                    link.ask(request);
                }
            }
            Action::Event(event) => self.record_event(event),
            Action::RunOp {
                op,
                group,
                resource,
                kind,
                timeout,
                term,
            } => {
                let interval = match kind {
                    OpKind::Monitor => self
                        .node
                        .spec()
                        .group(group)
                        .map(|g| g.monitor_interval)
                        .unwrap_or_default(),
                    OpKind::Start | OpKind::Stop => Duration::ZERO,
                };
                let work = Work::RunOp {
                    op,
                    group,
                    group_name: self.group_name(group),
                    resource: self.resource(group, resource).map(Box::new),
                    kind,
                    timeout,
                    interval,
                    token: crate::agents::FencingToken {
                        node: self.node_name(self.node.id()),
                        incarnation: self.node.incarnation(),
                        term: term.0,
                    },
                };
                self.executor.submit(work)
            }
            Action::Fence { request, target } => {
                let work = Work::Fence {
                    request,
                    target,
                    target_name: self.node_name(target),
                    agents: self
                        .config
                        .fencing
                        .agents
                        .iter()
                        .filter(|a| a.nodes.contains(&target))
                        .cloned()
                        .collect(),
                };
                self.executor.submit(work)
            }
            Action::SelfFence { reason } => self.executor.submit(Work::SelfFence {
                reason: reason.to_string(),
                action: self.config.fencing.self_fence.clone(),
            }),
            Action::Announce { group } => {
                let vips = self
                    .group_resources(group)
                    .into_iter()
                    .filter(|r| matches!(r.kind, ResourceKind::Vip { .. }))
                    .collect();
                self.executor.submit(Work::Announce { group, vips })
            }
        }
        Ok(())
    }

    /// Logs an event with its typed fields, keeps it for `tandemctl events`, and runs
    /// the notify hooks it concerns.
    fn record_event(&mut self, event: Event) {
        let record = events::record(&self.spec, &event, clock::realtime_ns() / 1_000_000);
        // The fields are the shared contract with log readers (the lab): they
        // decide on `kind`, `decision` and `wait_ms`, never on the sentence.
        tracing::info!(
            kind = record.kind.as_str(),
            node = record.node.as_deref().unwrap_or(""),
            group = record.group.as_deref().unwrap_or(""),
            term = record.term.unwrap_or(0),
            decision = record.decision.as_deref().unwrap_or(""),
            wait_ms = record.wait_ms,
            "{}",
            record.reason
        );
        self.events.push(event.kind, record);
        if let Some(hook_event) = crate::agents::hooks::from_core(
            &event,
            &self.config,
            self.node.id(),
            self.node.incarnation(),
        ) {
            let hooks = crate::agents::hooks::hooks_for(&self.config, &hook_event);
            if !hooks.is_empty() {
                self.executor.submit(Work::Notify {
                    hooks,
                    event: hook_event,
                });
            }
        }
        // A group's start or stop ran code the heartbeat path never runs again.
        if matches!(
            event.kind,
            EventKind::GroupStarted | EventKind::GroupStopped
        ) {
            super::memory::after_transition();
        }
    }

    fn send(&mut self, hb: &Heartbeat) {
        self.outbound.send(hb, &self.links);
    }

    fn group_name(&self, group: GroupId) -> String {
        self.node
            .spec()
            .group(group)
            .map(|g| g.name.clone())
            .unwrap_or_else(|| format!("{group:?}"))
    }

    fn node_name(&self, node: NodeId) -> String {
        self.spec
            .node(node)
            .map(|n| n.name.clone())
            .unwrap_or_else(|| node.to_string())
    }

    /// The config whose resource definitions the core currently drives for `group`.
    fn config_for(&self, group: GroupId) -> &Config {
        match &self.previous {
            Some(old) if self.node.uses_previous_spec(group) => old,
            _ => &self.config,
        }
    }

    fn group_resources(&self, group: GroupId) -> Vec<ResourceConfig> {
        self.config_for(group)
            .groups
            .iter()
            .find(|g| g.id == group)
            .map(|g| g.resources.clone())
            .unwrap_or_default()
    }

    /// The definition of resource `index` of `group`, as the core counts them. Found by
    /// name so that a reload that reorders resources cannot swap two of them.
    fn resource(&self, group: GroupId, index: usize) -> Option<ResourceConfig> {
        let name = self.node.spec().group(group)?.resources.get(index)?;
        self.config_for(group)
            .groups
            .iter()
            .find(|g| g.id == group)?
            .resources
            .iter()
            .find(|r| &r.name == name)
            .cloned()
    }
}

/// Resolves at the watchdog's next tick; never when there is no watchdog.
async fn watchdog_tick(watchdog: &mut Option<tokio::time::Interval>) {
    match watchdog {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}
