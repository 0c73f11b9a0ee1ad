//! The heartbeat thread: owns the core, the link sockets, the keyring, replay windows
//! and drop counters, and nothing slow.
//!
//! A current-thread tokio runtime on a dedicated OS thread (SCHED_RR when configured)
//! waits for the earliest of: a datagram, an answer from the executor, a control call,
//! the core's next deadline, shutdown. The clock is read again right before every
//! `handle` (a timer that fired late must not make the core believe it is earlier than
//! it is), and every returned action is carried out, in order, before the next input.

use super::clock;
use super::events::{self, EventRing};
use super::executor::{Executor, Work};
use super::inbound::Inbound;
use super::state::StateDir;
use crate::config::{Config, ResourceConfig, ResourceKind};
use crate::control::server::ControlCall;
use crate::control::{Command, Response, StatusReport};
use crate::core::{Action, Heartbeat, Input, Instant, Node};
use crate::core::{GroupId, NodeId};
use crate::net::{Links, Received};
use crate::wire::{self, Key};
use rand::TryRngCore;
use std::sync::Arc;
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
    pub sealing_key: Key,
    pub cluster_id: u64,
    pub cluster_name: String,
    pub state: StateDir,
    pub executor: E,
    pub events: EventRing,
    /// The config the core runs: resource definitions and fence agents come from here.
    pub config: Arc<Config>,
    /// The config before the last reload, for groups whose old resources still run
    /// here until they are stopped (`Node::uses_previous_spec`).
    pub previous: Option<Arc<Config>>,
}

impl<E: Executor> HeartbeatLoop<E> {
    /// Runs until `shutdown` fires (or its sender is dropped) or a fatal error.
    pub async fn run(
        mut self,
        mut datagrams: mpsc::UnboundedReceiver<Received>,
        mut answers: mpsc::UnboundedReceiver<Input>,
        mut calls: mpsc::Receiver<ControlCall>,
        mut shutdown: oneshot::Receiver<()>,
    ) -> Result<(), LoopError> {
        self.step(Input::Tick)?;
        loop {
            let sleep = match self.node.next_deadline() {
                Some((at, _why)) => at.saturating_since(clock::now()),
                // No deadline: wake now and then anyway so a stuck core is noticed.
                None => std::time::Duration::from_secs(1),
            };
            tokio::select! {
                biased;
                _ = &mut shutdown => return Ok(()),
                Some(answer) = answers.recv() => self.step(answer)?,
                Some(received) = datagrams.recv() => {
                    let input = match &received.datagram {
                        Some(d) => self.inbound.accept(received.link, d),
                        None => {
                            self.inbound.count_oversized();
                            None
                        }
                    };
                    if let Some(input) = input {
                        self.step(input)?;
                    }
                }
                Some(call) = calls.recv() => self.answer(call),
                _ = tokio::time::sleep(sleep) => {
                    let due = self.node.next_deadline().is_none_or(|(at, _)| at <= clock::now());
                    if due {
                        self.step(Input::Tick)?;
                    }
                }
                else => return Err(LoopError::Orphaned),
            }
        }
    }

    /// Applies one input and carries out every action it produced, in order.
    fn step(&mut self, input: Input) -> Result<(), LoopError> {
        let now = clock::now();
        let actions = self.node.handle(now, input);
        for action in actions {
            self.carry_out(action)?;
        }
        Ok(())
    }

    fn carry_out(&mut self, action: Action) -> Result<(), LoopError> {
        match action {
            Action::Send(hb) => self.send(&hb),
            // Synchronous on purpose: the contract is "durable before any later action".
            Action::Persist(state) => self.state.save(&state)?,
            Action::Event(event) => {
                let record = events::record(&self.spec, &event, clock::realtime_ns() / 1_000_000);
                tracing::info!(
                    kind = record.kind.as_str(),
                    node = record.node.as_deref().unwrap_or(""),
                    group = record.group.as_deref().unwrap_or(""),
                    "{}",
                    record.reason
                );
                self.events.push(record);
            }
            Action::RunOp {
                op,
                group,
                resource,
                kind,
                timeout,
            } => {
                let work = Work::RunOp {
                    op,
                    group,
                    group_name: self.group_name(group),
                    resource: self.resource(group, resource).map(Box::new),
                    kind,
                    timeout,
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
                reason,
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

    /// Seals `hb` once per link (the link index is authenticated, so each link needs its
    /// own datagram) with a fresh random nonce, and sends each to every peer.
    fn send(&mut self, hb: &Heartbeat) {
        let mut datagrams = Vec::with_capacity(self.links.len());
        for link in 0..self.links.len() {
            let Ok(link_byte) = u8::try_from(link) else {
                break;
            };
            let mut nonce = [0u8; 24];
            if let Err(e) = rand::rngs::OsRng.try_fill_bytes(&mut nonce) {
                // Never send with a predictable nonce; skipping one beat is harmless.
                tracing::error!("OS random generator failed, heartbeat not sent: {e}");
                return;
            }
            match wire::seal(hb, self.cluster_id, link_byte, &self.sealing_key, nonce) {
                Ok(d) => datagrams.push(d),
                Err(e) => {
                    tracing::error!("cannot build heartbeat: {e}");
                    return;
                }
            }
        }
        self.links.send_to_all(&datagrams);
    }

    fn group_name(&self, group: GroupId) -> String {
        self.node
            .group_spec(group)
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
        let name = self.node.group_spec(group)?.resources.get(index)?;
        self.config_for(group)
            .groups
            .iter()
            .find(|g| g.id == group)?
            .resources
            .iter()
            .find(|r| &r.name == name)
            .cloned()
    }

    fn answer(&mut self, call: ControlCall) {
        let response = match call.command {
            Command::Status => Response::status(self.status(clock::now())),
            Command::Events => Response::events(self.events.snapshot()),
        };
        // The client may have gone away; nothing to do then.
        let _ = call.reply.send(response);
    }

    pub fn status(&self, now: Instant) -> StatusReport {
        StatusReport {
            cluster: self.cluster_name.clone(),
            config_digest: format!("{:016x}", self.spec.digest),
            drops: self
                .inbound
                .drops()
                .as_map()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            view: self.node.status(now),
        }
    }
}
