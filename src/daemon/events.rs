//! The last events the core reported, kept in memory for `tandemctl events`.

use crate::control::EventRecord;
use crate::core::{ClusterSpec, Event};
use std::collections::VecDeque;

/// How many events are kept.
pub const EVENT_RING: usize = 200;

#[derive(Debug, Default)]
pub struct EventRing {
    events: VecDeque<EventRecord>,
}

impl EventRing {
    pub fn push(&mut self, record: EventRecord) {
        if self.events.len() == EVENT_RING {
            self.events.pop_front();
        }
        self.events.push_back(record);
    }

    pub fn snapshot(&self) -> Vec<EventRecord> {
        self.events.iter().cloned().collect()
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
        reason: event.reason.clone(),
    }
}
