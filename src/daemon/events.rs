//! The last events the core reported, kept in memory for `tandemctl events`.
//!
//! The ring starts with the history kept on disk from earlier incarnations
//! ([`super::event_log`]) and hands every new event to that log. It also feeds `tandemctl events --follow` (a broadcast channel: a slow follower
//! misses events, it never slows the heartbeat thread) and keeps the totals the metrics
//! endpoint exports, which must not reset when old events leave the ring.

use super::event_log::EventLog;
use crate::control::EventRecord;
use crate::core::{ClusterSpec, Event, EventKind};
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
    /// Stamped on every event pushed (0: not known, nothing stamped).
    incarnation: u64,
    /// Where new events are also kept across restarts; `None`: memory only.
    log: Option<EventLog>,
}

impl Default for EventRing {
    fn default() -> Self {
        EventRing {
            events: VecDeque::new(),
            live: broadcast::channel(FOLLOW_BUFFER).0,
            totals: EventTotals::default(),
            incarnation: 0,
            log: None,
        }
    }
}

impl EventRing {
    /// A ring that starts with `history` (older incarnations' events, oldest first;
    /// not counted in the totals, which are since start), stamps new events with
    /// `incarnation` and hands them to `log`.
    pub fn restored(history: Vec<EventRecord>, incarnation: u64, log: Option<EventLog>) -> Self {
        let skip = history.len().saturating_sub(EVENT_RING);
        EventRing {
            events: history.into_iter().skip(skip).collect(),
            incarnation,
            log,
            ..EventRing::default()
        }
    }

    /// Keeps `record` (of an event of `kind`) and counts what the totals count.
    pub fn push(&mut self, kind: EventKind, mut record: EventRecord) {
        if self.incarnation != 0 && record.incarnation.is_none() {
            record.incarnation = Some(self.incarnation);
        }
        if let Some(log) = &self.log {
            log.append(&record);
        }
        match kind {
            EventKind::BecameOwner => {
                let group = record.group.clone().unwrap_or_default();
                *self.totals.failovers.entry(group).or_default() += 1;
            }
            EventKind::FenceRequested => self.totals.fence_attempts += 1,
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
        incarnation: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{Decision, EventKind, GroupId, NodeId, Reason, Term};
    use std::time::Duration;

    fn spec() -> ClusterSpec {
        crate::sim::ScenarioBuilder::new(3).build().spec
    }

    fn decision(d: Decision) -> Event {
        Event {
            kind: EventKind::Decision,
            node: Some(NodeId(2)),
            group: Some(GroupId(1)),
            term: Some(Term(4)),
            reason: Reason::Decision(d),
        }
    }

    #[test]
    fn a_lease_wait_is_recorded_with_its_tag_and_remaining_wait() {
        let event = decision(Decision::LeaseWait {
            holder: "n1".into(),
            remaining: Duration::from_micros(523_250),
        });
        let r = record(&spec(), &event, 5);
        assert_eq!(r.kind, "decision");
        assert_eq!(r.node.as_deref(), Some("n2"));
        assert_eq!(r.term, Some(4));
        assert_eq!(r.reason, "waiting for lease of n1 to expire (523 ms)");
        assert_eq!(r.decision.as_deref(), Some("lease-wait"));
        assert_eq!(r.wait_ms, Some(523.25));
    }

    #[test]
    fn only_a_lease_wait_carries_a_wait() {
        let event = decision(Decision::Candidate {
            term: Term(4),
            have: 1,
            needed: 2,
        });
        let r = record(&spec(), &event, 5);
        assert_eq!(r.decision.as_deref(), Some("candidate"));
        assert_eq!(r.wait_ms, None);
        let json = serde_json::to_string(&r).expect("serialize");
        assert!(!json.contains("wait_ms"), "{json}");
    }

    #[test]
    fn records_without_the_typed_fields_still_parse() {
        let old = r#"{"unix_ms":1,"kind":"node-down","node":"n2","reason":"n2 is down: no heartbeat on any link"}"#;
        let r: EventRecord = serde_json::from_str(old).expect("old JSON parses");
        assert_eq!((r.decision, r.wait_ms, r.incarnation), (None, None, None));
    }

    #[test]
    fn restored_events_keep_their_incarnation_and_new_ones_get_the_current() {
        let old = record(&spec(), &decision(Decision::NoGrantsInTime), 1);
        let old = EventRecord {
            incarnation: Some(3),
            ..old
        };
        let mut ring = EventRing::restored(vec![old], 4, None);
        ring.push(
            EventKind::Decision,
            record(&spec(), &decision(Decision::NoGrantsInTime), 2),
        );
        let got: Vec<Option<u64>> = ring.snapshot().iter().map(|e| e.incarnation).collect();
        assert_eq!(got, vec![Some(3), Some(4)]);
        assert_eq!(
            ring.totals(),
            &EventTotals::default(),
            "history is not counted"
        );
    }
}
