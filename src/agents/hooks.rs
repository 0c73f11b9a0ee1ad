//! Notify hooks: admin scripts run on cluster transitions, in the manner of keepalived's
//! `notify` scripts.
//!
//! A hook gets the event name as `$1` and the details in `TANDEM_*` environment
//! variables. Hooks are fire-and-forget: [`notify`] returns at once and the scripts run
//! in a spawned task, each bounded by a timeout that kills its process group, so a hung
//! hook can never hold up the daemon. Events are handed to hooks in the order they were
//! notified (a `lost-ownership` hook never overtakes the `became-owner` before it): each
//! event's task first waits for the previous event's task.
//!
//! Which hooks see what: a group's `notify` hooks get that group's events; the top-level
//! `notify` hooks get every event (the cluster-wide ones: quorum, node up/down, and the
//! group ones).

use super::process::{self, Finished, Launch, Spec};
use crate::config::Config;
use crate::core::ids::NodeId;
use crate::core::{Event, EventKind};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::oneshot;

/// The transitions hooks are told about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HookKind {
    BecameOwner,
    LostOwnership,
    /// A resource failed or this node must fence itself: keepalived's FAULT.
    Fault,
    QuorumLost,
    QuorumGained,
    NodeDown,
    NodeUp,
}

impl HookKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HookKind::BecameOwner => "became-owner",
            HookKind::LostOwnership => "lost-ownership",
            HookKind::Fault => "fault",
            HookKind::QuorumLost => "quorum-lost",
            HookKind::QuorumGained => "quorum-gained",
            HookKind::NodeDown => "node-down",
            HookKind::NodeUp => "node-up",
        }
    }

    /// The hook event for a core event kind, when hooks care about it.
    pub fn of(kind: EventKind) -> Option<HookKind> {
        Some(match kind {
            EventKind::BecameOwner => HookKind::BecameOwner,
            EventKind::LostOwnership => HookKind::LostOwnership,
            EventKind::ResourceFailed | EventKind::SelfFence => HookKind::Fault,
            EventKind::QuorumLost => HookKind::QuorumLost,
            EventKind::QuorumGained => HookKind::QuorumGained,
            EventKind::NodeDown => HookKind::NodeDown,
            EventKind::NodeUp => HookKind::NodeUp,
            _ => return None,
        })
    }
}

/// One event as hooks see it: names, not ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookEvent {
    pub kind: HookKind,
    pub cluster: String,
    /// The node the event is about (`TANDEM_NODE`): the peer for node-up/down, else
    /// this node.
    pub node: String,
    /// This node (`TANDEM_LOCAL_NODE`).
    pub local_node: String,
    /// This node's incarnation (`TANDEM_INCARNATION`): with `TANDEM_TERM`, the
    /// fencing token of a `became-owner`.
    pub local_incarnation: u64,
    pub group: Option<String>,
    pub term: Option<u64>,
    pub reason: String,
}

impl HookEvent {
    /// `(name, value)` pairs of the hook's environment.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TANDEM_EVENT", self.kind.as_str().to_string()),
            ("TANDEM_CLUSTER", self.cluster.clone()),
            ("TANDEM_NODE", self.node.clone()),
            ("TANDEM_LOCAL_NODE", self.local_node.clone()),
            ("TANDEM_INCARNATION", self.local_incarnation.to_string()),
            ("TANDEM_GROUP", self.group.clone().unwrap_or_default()),
            (
                "TANDEM_TERM",
                self.term.map(|t| t.to_string()).unwrap_or_default(),
            ),
            ("TANDEM_REASON", self.reason.clone()),
        ]
    }
}

/// The hook event for a core event, with names from `config`; `None` for events hooks
/// are not told about.
pub fn from_core(
    event: &Event,
    config: &Config,
    local: NodeId,
    local_incarnation: u64,
) -> Option<HookEvent> {
    let kind = HookKind::of(event.kind)?;
    let name_of = |id: NodeId| {
        config
            .node_by_id(id)
            .map_or_else(|| id.to_string(), |n| n.name.clone())
    };
    Some(HookEvent {
        kind,
        cluster: config.cluster.name.clone(),
        node: name_of(event.node.unwrap_or(local)),
        local_node: name_of(local),
        local_incarnation,
        group: event.group.map(|g| {
            config
                .groups
                .iter()
                .find(|c| c.id == g)
                .map_or_else(|| format!("{g:?}"), |c| c.name.clone())
        }),
        term: event.term.map(|t| t.0),
        reason: event.reason.to_string(),
    })
}

/// The hooks that run for `event`: the top-level ones, then the group's.
pub fn hooks_for(config: &Config, event: &HookEvent) -> Vec<PathBuf> {
    let mut hooks = config.notify.clone();
    if let Some(g) = event.group.as_deref().and_then(|g| config.group_by_name(g)) {
        hooks.extend(g.notify.iter().cloned());
    }
    hooks
}

/// The task of the previous event: the next one waits for it (see the module comment).
static LAST: Mutex<Option<oneshot::Receiver<()>>> = Mutex::new(None);

/// Runs `hooks` for `event`, one after the other, each for at most `timeout`, in a
/// spawned task; returns at once. The handle is for tests; the daemon drops it. `None`
/// (and a logged error) when called outside a tokio runtime or with no hooks.
pub fn notify(
    hooks: &[PathBuf],
    event: &HookEvent,
    timeout: Duration,
) -> Option<tokio::task::JoinHandle<Vec<Finished>>> {
    notify_with(hooks, event, timeout, &Launch::default())
}

pub fn notify_with(
    hooks: &[PathBuf],
    event: &HookEvent,
    timeout: Duration,
    launch: &Launch,
) -> Option<tokio::task::JoinHandle<Vec<Finished>>> {
    if hooks.is_empty() {
        return None;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::error!(
            "notify hooks for {} not run: no runtime",
            event.kind.as_str()
        );
        return None;
    };
    let specs: Vec<Spec> = hooks
        .iter()
        .map(|hook| {
            let mut spec = Spec::new(format!("hook:{}", hook.display()), hook, timeout)
                .arg(event.kind.as_str());
            for (k, v) in event.env() {
                spec = spec.env(k, v);
            }
            spec
        })
        .collect();
    let (done, next) = oneshot::channel();
    let previous = LAST.lock().unwrap_or_else(|p| p.into_inner()).replace(next);
    let launch = launch.clone();
    Some(runtime.spawn(async move {
        if let Some(previous) = previous {
            // Err means the previous task is gone (finished, or its runtime ended).
            let _ = previous.await;
        }
        let mut results = Vec::with_capacity(specs.len());
        for spec in &specs {
            let finished = process::run(&launch, spec).await;
            if finished.exit != process::Exit::Code(0) {
                tracing::warn!("{}", finished.describe(&spec.name));
            }
            results.push(finished);
        }
        drop(done);
        results
    }))
}
