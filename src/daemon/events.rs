//! The last events the core reported, kept in memory for `tandemctl events`.
//!
//! The ring also feeds `tandemctl events --follow` (a broadcast channel: a slow follower
//! misses events, it never slows the heartbeat thread) and keeps the totals the metrics
//! endpoint exports, which must not reset when old events leave the ring.

use crate::control::EventRecord;
use crate::core::{ClusterSpec, Event};
use std::collections::{BTreeMap, VecDeque};
use tokio::sync::broadcast;

/// How many events are kept.
pub const EVENT_RING: usize = 200;
/// Events buffered per follower before it is told it missed some.
pub const FOLLOW_BUFFER: usize = 256;

/// Counts since start, for the metrics endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventTotals {
    /// `became-owner` events by group name: how often a group changed hands to here.
    pub failovers: BTreeMap<String, u64>,
    /// `fence-requested` events.
    pub fence_attempts: u64,
}

#[derive(Debug)]
pub struct EventRing {
    events: VecDeque<EventRecord>,
    live: broadcast::Sender<EventRecord>,
    totals: EventTotals,
}

impl Default for EventRing {
    fn default() -> Self {
        EventRing {
            events: VecDeque::new(),
            live: broadcast::channel(FOLLOW_BUFFER).0,
            totals: EventTotals::default(),
        }
    }
}

impl EventRing {
    pub fn push(&mut self, record: EventRecord) {
        match record.kind.as_str() {
            "became-owner" => {
                let group = record.group.clone().unwrap_or_default();
                *self.totals.failovers.entry(group).or_default() += 1;
            }
            "fence-requested" => self.totals.fence_attempts += 1,
            _ => {}
        }
        // No follower is not an error.
        let _ = self.live.send(record.clone());
        if self.events.len() == EVENT_RING {
            self.events.pop_front();
        }
        self.events.push_back(record);
    }

    pub fn snapshot(&self) -> Vec<EventRecord> {
        self.events.iter().cloned().collect()
    }

    /// The last `n` events, oldest first.
    pub fn last(&self, n: usize) -> Vec<EventRecord> {
        let skip = self.events.len().saturating_sub(n);
        self.events.iter().skip(skip).cloned().collect()
    }

    /// Every event pushed from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<EventRecord> {
        self.live.subscribe()
    }

    pub fn totals(&self) -> &EventTotals {
        &self.totals
    }
}

/// The event with node and group ids replaced by their configured names.
pub fn record(spec: &ClusterSpec, event: &Event, unix_ms: u64) -> EventRecord {
    EventRecord {
        unix_ms,
        kind: event.kind.as_str().to_string(),
        node: event.node.map(|n| {
            spec.node(n)
                .map(|s| s.name.clone())
                .unwrap_or_else(|| n.to_string())
        }),
        group: event.group.map(|g| {
            spec.group(g)
                .map(|s| s.name.clone())
                .unwrap_or_else(|| format!("{g:?}"))
        }),
        term: event.term.map(|t| t.0),
        reason: event.reason.to_string(),
        decision: Some(event.reason.tag().to_string()),
        wait_ms: event.reason.lease_wait().map(|d| d.as_secs_f64() * 1000.0),
    }
}
