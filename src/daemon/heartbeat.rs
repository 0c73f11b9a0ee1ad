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
use crate::control::server::ControlCall;
use crate::control::{Command, Response, StatusReport};
use crate::core::{Action, Heartbeat, Input, Instant, Node};
use crate::net::{Links, Received};
use crate::wire::{self, Key};
use rand::TryRngCore;
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
            } => self.executor.submit(Work::RunOp {
                op,
                group,
                resource,
                kind,
                timeout,
            }),
            Action::Fence { request, target } => {
                self.executor.submit(Work::Fence { request, target })
            }
            Action::SelfFence { reason } => self.executor.submit(Work::SelfFence { reason }),
            Action::Announce { group } => self.executor.submit(Work::Announce { group }),
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
