//! The record and the report of a chaos run: the faults as carried out, what chaos did
//! outside the schedule, the observer's and the logs' findings, and the verdict.

use std::collections::BTreeMap;

use serde::Serialize;

use super::analysis::{LogEvent, LogOverlap, ObserverSummary, VipInterval, OUTAGE_MIN_ROUNDS};
use super::schedule::{FaultKind, PlannedFault};
use crate::lab::observe::ns_to_ms;

#[derive(Debug, Clone, Serialize)]
pub struct InjectedFault {
    pub index: usize,
    pub kind: FaultKind,
    /// The nodes it hit (the minority side for a partition); empty for loss.
    pub nodes: Vec<String>,
    pub link: Option<usize>,
    /// Whether the target was chosen as the current owner.
    pub hit_owner: bool,
    pub start_ns: i64,
    pub healed_ns: Option<i64>,
    /// What happened on heal (e.g. "n2 had been fenced: rebooted").
    pub notes: Vec<String>,
}

/// A planned fault not carried out.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedFault {
    pub index: usize,
    pub kind: FaultKind,
    pub reason: String,
}

/// Something chaos noticed or did outside the schedule.
#[derive(Debug, Clone, Serialize)]
pub struct NodeEvent {
    pub at_ns: i64,
    pub node: String,
    pub what: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChaosReport {
    pub seed: u64,
    pub nodes: usize,
    pub duration_s: f64,
    pub interval_ms: f64,
    pub deadtime_ms: f64,
    pub fencing: bool,
    pub observe_period_ms: f64,
    /// Wall clock when the chaos phase began (schedule times are relative to it).
    pub start_ns: i64,
    pub end_ns: i64,
    pub node_macs: BTreeMap<String, String>,
    pub schedule: Vec<PlannedFault>,
    pub injected: Vec<InjectedFault>,
    pub skipped: Vec<SkippedFault>,
    pub faults_by_kind: BTreeMap<String, usize>,
    pub node_events: Vec<NodeEvent>,
    pub observer: ObserverSummary,
    pub log_events: Vec<LogEvent>,
    pub vip_intervals: Vec<VipInterval>,
    pub log_overlaps: Vec<LogOverlap>,
    /// Dual-owner windows that fail the run (all of them with fencing; the unexplained
    /// ones without).
    pub failing_dual_windows: usize,
    /// Why the run did not complete normally (lab failure), if it did not.
    pub failure: Option<String>,
}

impl ChaosReport {
    /// Clean: no failing dual-owner window, no lab failure, and the observer saw replies.
    pub fn ok(&self) -> bool {
        self.failing_dual_windows == 0 && self.failure.is_none() && self.observer.replies > 0
    }

    fn rel_s(&self, ns: i64) -> f64 {
        (ns - self.start_ns) as f64 / 1e9
    }

    /// The human-readable report.
    pub fn render(&self) -> String {
        let mut s = String::new();
        self.render_faults(&mut s);
        self.render_observer(&mut s);
        self.render_logs_and_verdict(&mut s);
        s
    }

    /// The run's setup and what was injected, skipped or done outside the schedule.
    fn render_faults(&self, w: &mut String) {
        use std::fmt::Write as _;
        let _ = writeln!(
            w,
            "chaos seed {}: {} nodes, {:.0} s, heartbeat {} ms / deadtime {} ms, {}",
            self.seed,
            self.nodes,
            self.duration_s,
            self.interval_ms,
            self.deadtime_ms,
            if self.fencing {
                "fencing.policy always (fence_lab)"
            } else {
                "NO fencing (leases only)"
            }
        );
        let _ = writeln!(
            w,
            "nodes: {}",
            self.node_macs
                .iter()
                .map(|(n, m)| format!("{n} {m}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let kinds: Vec<String> = self
            .faults_by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(
            w,
            "faults: {} planned, {} injected ({}), {} skipped",
            self.schedule.len(),
            self.injected.len(),
            kinds.join(", "),
            self.skipped.len()
        );
        for f in &self.injected {
            let _ = writeln!(
                w,
                "  +{:>7.1}s  #{:<3} {:<16} {:<8}{}{}",
                self.rel_s(f.start_ns),
                f.index,
                f.kind.name(),
                f.nodes.join("+"),
                f.link.map(|l| format!(" link {l}")).unwrap_or_default(),
                if f.notes.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", f.notes.join("; "))
                }
            );
        }
        for f in &self.skipped {
            let _ = writeln!(w, "  skipped #{} {}: {}", f.index, f.kind.name(), f.reason);
        }
        if !self.node_events.is_empty() {
            let _ = writeln!(w, "outside the schedule:");
            for e in &self.node_events {
                let _ = writeln!(w, "  +{:>7.1}s  {} {}", self.rel_s(e.at_ns), e.node, e.what);
            }
        }
    }

    /// What the client saw: failovers, downtime, dual-owner windows.
    fn render_observer(&self, w: &mut String) {
        use std::fmt::Write as _;
        let o = &self.observer;
        let _ = writeln!(
            w,
            "observer: {} ARP requests (every {} ms), {} answered, {} replies, {} gratuitous",
            o.requests, self.observe_period_ms, o.answered_rounds, o.replies, o.announcements
        );
        let _ = writeln!(
            w,
            "failovers (the answering MAC changed): {}",
            o.owner_changes.len()
        );
        for c in &o.owner_changes {
            let how = if c.through_dual {
                "after both answered".to_string()
            } else {
                format!("no answer for {:.0} ms", c.gap_ms)
            };
            let _ = writeln!(
                w,
                "  +{:>7.1}s  {} -> {} ({how})",
                self.rel_s(c.at_ns),
                c.from,
                c.to,
            );
        }
        let longest = o.outages.iter().map(|x| x.ms).fold(0.0, f64::max);
        let _ = writeln!(
            w,
            "downtime (no answer from anyone for >= {} rounds): {:.0} ms in {} outage(s), longest {:.0} ms",
            OUTAGE_MIN_ROUNDS,
            o.downtime_ms,
            o.outages.len(),
            longest
        );
        let _ = writeln!(
            w,
            "  (an isolated owner is invisible to the client: its time counts as downtime)"
        );
        let _ = writeln!(
            w,
            "dual-owner instants: {} round(s) in {} window(s)",
            o.dual_owner_rounds,
            o.dual_windows.len()
        );
        for d in &o.dual_windows {
            let pairs: Vec<String> = d
                .macs
                .iter()
                .zip(&d.nodes)
                .map(|(m, n)| format!("{m}={n}"))
                .collect();
            let _ = writeln!(
                w,
                "  +{:>7.3}s .. +{:.3}s ({:.0} ms, {} rounds): {}",
                self.rel_s(d.start_ns),
                self.rel_s(d.end_ns),
                ns_to_ms(d.end_ns - d.start_ns),
                d.dual_rounds,
                pairs.join(", ")
            );
            let _ = writeln!(
                w,
                "      faults active: {}",
                if d.faults_active.is_empty() {
                    "none".to_string()
                } else {
                    d.faults_active.join(", ")
                }
            );
            let _ = writeln!(
                w,
                "      SAFETY VIOLATION: two nodes answered for the VIP at the same time"
            );
        }
    }

    /// What the logs say, and the verdict.
    fn render_logs_and_verdict(&self, w: &mut String) {
        use std::fmt::Write as _;
        let o = &self.observer;
        let _ = writeln!(
            w,
            "logs: {} VIP intervals, {} overlap(s) between nodes",
            self.vip_intervals.len(),
            self.log_overlaps.len()
        );
        for ov in &self.log_overlaps {
            let _ = writeln!(
                w,
                "  +{:>7.3}s {} and {} both held the VIP for {:.0} ms (by their logs)",
                self.rel_s(ov.from_ns),
                ov.nodes[0],
                ov.nodes[1],
                ov.ms
            );
        }
        if let Some(f) = &self.failure {
            let _ = writeln!(w, "LAB FAILURE: {f}");
        }
        let _ = writeln!(
            w,
            "verdict: {}",
            if self.ok() {
                "CLEAN (no dual owner)".to_string()
            } else if o.replies == 0 {
                "FAILED (the observer saw no answer at all)".to_string()
            } else if self.failing_dual_windows > 0 {
                format!(
                    "FAILED ({} dual-owner window(s))",
                    self.failing_dual_windows
                )
            } else {
                "FAILED (lab failure)".to_string()
            }
        );
    }
}
