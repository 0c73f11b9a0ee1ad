//! What a chaos run's record says: the client observer's rounds turned into owner
//! changes, outages and dual-owner windows; the daemons' typed log events turned into
//! each node's VIP intervals and their overlaps; the faults around a window.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use super::report::InjectedFault;
use crate::core::EventKind;
use crate::lab::observe::client::{ArpSeen, Observation};
use crate::lab::observe::events::{records, VipChange};
use crate::lab::observe::{mac_string, ns_to_ms};
use crate::lab::topology::{GROUP, VIP};

/// A fault still explains a dual owner this long after it was healed: a resumed or
/// restarted daemon needs a moment to notice it lost the group and drop the address.
const CONTEXT_GRACE: Duration = Duration::from_secs(3);
/// Rounds without any reply before the silence counts as downtime (2 rounds = 10 ms: a
/// single lost reply is not an outage).
pub const OUTAGE_MIN_ROUNDS: u32 = 3;
/// Dual-owner rounds at most this many rounds apart belong to one window.
const WINDOW_MERGE_ROUNDS: u32 = 4;

/// A stretch of request rounds answered by two or more MACs.
#[derive(Debug, Clone, Serialize)]
pub struct DualWindow {
    pub start_ns: i64,
    pub end_ns: i64,
    /// Rounds in it with two or more answering MACs.
    pub dual_rounds: u32,
    pub macs: Vec<String>,
    /// The MACs' nodes (`?` for a MAC of no lab node).
    pub nodes: Vec<String>,
    /// Faults active (or healed less than CONTEXT_GRACE before) on those nodes: the
    /// context for whoever investigates it.
    pub faults_active: Vec<String>,
}

/// A stretch without any reply.
#[derive(Debug, Clone, Serialize)]
pub struct Outage {
    /// Last reply before it.
    pub from_ns: i64,
    /// First reply after it (or the end of the observation).
    pub to_ns: i64,
    pub ms: f64,
}

/// The single answering MAC changed.
#[derive(Debug, Clone, Serialize)]
pub struct OwnerChange {
    pub at_ns: i64,
    pub from: String,
    pub to: String,
    /// Last reply from anyone before the first one from the new MAC alone.
    pub gap_ms: f64,
    /// Both MACs answered in between (a dual-owner window led to the change).
    pub through_dual: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ObserverSummary {
    pub requests: usize,
    pub answered_rounds: usize,
    pub replies: usize,
    pub announcements: usize,
    /// MAC -> node name (or `?`), for every MAC that answered.
    pub macs: BTreeMap<String, String>,
    pub owner_changes: Vec<OwnerChange>,
    pub outages: Vec<Outage>,
    pub downtime_ms: f64,
    pub dual_owner_rounds: u32,
    pub dual_windows: Vec<DualWindow>,
}

fn node_of(macs: &BTreeMap<[u8; 6], String>, mac: &[u8; 6]) -> String {
    macs.get(mac).cloned().unwrap_or_else(|| "?".into())
}

/// Replies per request round.
type ByRound<'a> = BTreeMap<u32, Vec<&'a ArpSeen>>;

/// Owner changes, outages and dual-owner windows from an observation. `macs` maps each
/// node's eth0 MAC to its name. Dual windows come without their faults.
pub fn analyze(obs: &Observation, macs: &BTreeMap<[u8; 6], String>) -> ObserverSummary {
    let mut by_round: ByRound = BTreeMap::new();
    for r in &obs.replies {
        by_round.entry(r.round).or_default().push(r);
    }
    let mut seen_macs = BTreeMap::new();
    for r in &obs.replies {
        seen_macs.insert(mac_string(&r.mac), node_of(macs, &r.mac));
    }
    let (dual_rounds, dual_windows) = dual_windows(&by_round, macs);
    let outages = outages(&by_round, obs);
    ObserverSummary {
        requests: obs.rounds.len(),
        answered_rounds: by_round.len(),
        replies: obs.replies.len(),
        announcements: obs.announcements.len(),
        macs: seen_macs,
        owner_changes: owner_changes(&by_round, macs),
        downtime_ms: outages.iter().map(|o| o.ms).sum(),
        outages,
        dual_owner_rounds: dual_rounds,
        dual_windows,
    }
}

/// Earliest and latest reply of a round.
fn span(replies: &[&ArpSeen]) -> (i64, i64) {
    let first = replies.iter().map(|r| r.at_ns).min().unwrap_or(0);
    let last = replies.iter().map(|r| r.at_ns).max().unwrap_or(0);
    (first, last)
}

/// Rounds answered by two or more MACs, merged into windows: (their count, windows).
fn dual_windows(by_round: &ByRound, macs: &BTreeMap<[u8; 6], String>) -> (u32, Vec<DualWindow>) {
    // (first round, last round, start, end, dual rounds, MACs)
    type Window = (u32, u32, i64, i64, u32, BTreeSet<[u8; 6]>);
    let mut windows: Vec<Window> = Vec::new();
    let mut dual_rounds = 0;
    for (&round, replies) in by_round {
        let distinct: BTreeSet<[u8; 6]> = replies.iter().map(|r| r.mac).collect();
        if distinct.len() < 2 {
            continue;
        }
        dual_rounds += 1;
        let (first, last) = span(replies);
        match windows.last_mut() {
            Some(w) if round - w.1 <= WINDOW_MERGE_ROUNDS => {
                w.1 = round;
                w.3 = last;
                w.4 += 1;
                w.5.extend(distinct);
            }
            _ => windows.push((round, round, first, last, 1, distinct)),
        }
    }
    let windows = windows
        .into_iter()
        .map(|(_, _, start_ns, end_ns, n, set)| {
            // By node name, so windows read the same whatever the MACs were.
            let mut pairs: Vec<(String, String)> = set
                .iter()
                .map(|m| (node_of(macs, m), mac_string(m)))
                .collect();
            pairs.sort();
            DualWindow {
                start_ns,
                end_ns,
                dual_rounds: n,
                macs: pairs.iter().map(|p| p.1.clone()).collect(),
                nodes: pairs.into_iter().map(|p| p.0).collect(),
                faults_active: Vec::new(),
            }
        })
        .collect();
    (dual_rounds, windows)
}

/// Answered rounds far apart, and a silence until the end of the observation.
fn outages(by_round: &ByRound, obs: &Observation) -> Vec<Outage> {
    let mut outages = Vec::new();
    let answered: Vec<(u32, i64, i64)> = by_round
        .iter()
        .map(|(&r, v)| {
            let (first, last) = span(v);
            (r, first, last)
        })
        .collect();
    for pair in answered.windows(2) {
        let ((r1, _, last1), (r2, first2, _)) = (pair[0], pair[1]);
        if r2 - r1 >= OUTAGE_MIN_ROUNDS {
            outages.push(Outage {
                from_ns: last1,
                to_ns: first2,
                ms: ns_to_ms(first2 - last1),
            });
        }
    }
    if let (Some(&(r, _, last)), Some(&end)) = (answered.last(), obs.rounds.last()) {
        if obs.rounds.len() as u32 - 1 - r >= OUTAGE_MIN_ROUNDS {
            outages.push(Outage {
                from_ns: last,
                to_ns: end,
                ms: ns_to_ms(end - last),
            });
        }
    }
    outages
}

/// Ownership as the client sees it: rounds answered by exactly one MAC.
fn owner_changes(by_round: &ByRound, macs: &BTreeMap<[u8; 6], String>) -> Vec<OwnerChange> {
    let mut owner_changes = Vec::new();
    let mut current: Option<[u8; 6]> = None;
    let mut last_any: Option<i64> = None;
    let mut dual_since_current = false;
    for replies in by_round.values() {
        let distinct: BTreeSet<[u8; 6]> = replies.iter().map(|r| r.mac).collect();
        let (first, last) = span(replies);
        if distinct.len() != 1 {
            dual_since_current = true;
            last_any = Some(last);
            continue;
        }
        let mac = replies[0].mac;
        match current {
            Some(m) if m != mac => {
                owner_changes.push(OwnerChange {
                    at_ns: first,
                    from: node_of(macs, &m),
                    to: node_of(macs, &mac),
                    gap_ms: ns_to_ms(first - last_any.unwrap_or(first)),
                    through_dual: dual_since_current,
                });
            }
            _ => {}
        }
        if current != Some(mac) {
            dual_since_current = false;
        }
        current = Some(mac);
        last_any = Some(last);
    }
    owner_changes
}

/// A line of a node's log that matters for VIP ownership.
#[derive(Debug, Clone, Serialize)]
pub struct LogEvent {
    pub at_ns: i64,
    pub node: String,
    /// vip-added, vip-removed, became-owner, lost-ownership, fenced (this node was fenced,
    /// from the fencer's log), self-fence, guard-took-down (its lease guard removed its
    /// addresses).
    pub what: String,
    /// For `fenced`: who fenced it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// Events of one node's log (`node` is its name), and the `fenced` events it reports
/// about others: from the records' typed fields alone.
pub fn log_events(node: &str, log: &str) -> Vec<LogEvent> {
    let vip = IpAddr::V4(VIP);
    let mut out = Vec::new();
    for r in records(log) {
        let what = match r.vip_change(vip) {
            Some(VipChange::Added) => "vip-added",
            Some(VipChange::Removed) => "vip-removed",
            None if r.is_for_group(EventKind::BecameOwner, GROUP) => "became-owner",
            None if r.is_for_group(EventKind::LostOwnership, GROUP) => "lost-ownership",
            None if r.is_self_fence() => "self-fence",
            // The lease guard removed every address of the node's groups.
            None if r.is_guard_take_down() => "guard-took-down",
            None if r.is(EventKind::FenceSucceeded) && !r.node.is_empty() => {
                out.push(LogEvent {
                    at_ns: r.at_ns,
                    node: r.node.clone(),
                    what: "fenced".into(),
                    by: Some(node.to_string()),
                });
                continue;
            }
            None => continue,
        };
        out.push(LogEvent {
            at_ns: r.at_ns,
            node: node.to_string(),
            what: what.into(),
            by: None,
        });
    }
    out
}

/// When a node held the VIP according to its log, closed by "vip removed" or by the
/// node going dark (fenced, self-fenced, powered off or rebooted by chaos).
#[derive(Debug, Clone, Serialize)]
pub struct VipInterval {
    pub node: String,
    pub from_ns: i64,
    /// None: still held at the end.
    pub to_ns: Option<i64>,
    pub ended_by: String,
}

/// Two nodes' VIP intervals overlapping.
#[derive(Debug, Clone, Serialize)]
pub struct LogOverlap {
    pub nodes: [String; 2],
    pub from_ns: i64,
    pub to_ns: i64,
    pub ms: f64,
}

/// VIP intervals per node from the log events plus the power-offs chaos caused itself
/// (`(node name, time)`), and the overlaps between nodes. `end_ns` closes open intervals.
pub fn vip_intervals(
    events: &[LogEvent],
    power_offs: &[(String, i64)],
    end_ns: i64,
) -> (Vec<VipInterval>, Vec<LogOverlap>) {
    let mut per_node: BTreeMap<String, Vec<(i64, &str)>> = BTreeMap::new();
    for e in events {
        let kind = match e.what.as_str() {
            "vip-added" => "added",
            "vip-removed" | "guard-took-down" => "removed",
            "fenced" => "fenced",
            "self-fence" => "self-fence",
            _ => continue,
        };
        per_node
            .entry(e.node.clone())
            .or_default()
            .push((e.at_ns, kind));
    }
    for (n, t) in power_offs {
        per_node
            .entry(n.clone())
            .or_default()
            .push((*t, "power-off"));
    }
    let mut intervals = Vec::new();
    for (node, mut evs) in per_node {
        evs.sort_by_key(|e| e.0);
        let mut open: Option<i64> = None;
        for (t, kind) in evs {
            match (kind, open) {
                ("added", None) => open = Some(t),
                ("added", Some(_)) => {}
                (end, Some(from)) => {
                    intervals.push(VipInterval {
                        node: node.clone(),
                        from_ns: from,
                        to_ns: Some(t),
                        ended_by: end.to_string(),
                    });
                    open = None;
                }
                _ => {}
            }
        }
        if let Some(from) = open {
            intervals.push(VipInterval {
                node,
                from_ns: from,
                to_ns: None,
                ended_by: "still held at the end".into(),
            });
        }
    }
    let mut overlaps = Vec::new();
    for (i, a) in intervals.iter().enumerate() {
        for b in &intervals[i + 1..] {
            if a.node == b.node {
                continue;
            }
            let from = a.from_ns.max(b.from_ns);
            let to = a.to_ns.unwrap_or(end_ns).min(b.to_ns.unwrap_or(end_ns));
            if to > from {
                overlaps.push(LogOverlap {
                    nodes: [a.node.clone(), b.node.clone()],
                    from_ns: from,
                    to_ns: to,
                    ms: ns_to_ms(to - from),
                });
            }
        }
    }
    overlaps.sort_by_key(|o| o.from_ns);
    (intervals, overlaps)
}

/// Faults (on `nodes`) active in [from, to] or healed less than CONTEXT_GRACE before,
/// described.
pub(super) fn faults_around(
    injected: &[InjectedFault],
    nodes: &[String],
    from: i64,
    to: i64,
    end_ns: i64,
) -> Vec<String> {
    let grace = CONTEXT_GRACE.as_nanos() as i64;
    injected
        .iter()
        .filter(|f| f.start_ns <= to && f.healed_ns.unwrap_or(end_ns) + grace >= from)
        .filter(|f| f.nodes.iter().any(|n| nodes.contains(n)))
        .map(|f| format!("#{} {} {}", f.index, f.kind.name(), f.nodes.join("+")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::chaos::FaultKind;
    use crate::lab::observe::events::tests::line;

    fn obs_from(rounds: usize, replies: &[(u32, [u8; 6])]) -> Observation {
        let ms = 1_000_000i64;
        Observation {
            rounds: (0..rounds as i64).map(|r| r * 5 * ms).collect(),
            replies: replies
                .iter()
                .map(|&(round, mac)| ArpSeen {
                    round,
                    at_ns: i64::from(round) * 5 * ms + ms / 10,
                    mac,
                })
                .collect(),
            announcements: Vec::new(),
        }
    }

    #[test]
    fn analysis_finds_failovers_outages_and_dual_owners() {
        let (a, b) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
        let names: BTreeMap<[u8; 6], String> =
            [(a, "n1".to_string()), (b, "n2".to_string())].into();
        let mut replies = Vec::new();
        // a answers rounds 0..10, silence 10..30, b answers 30..40, both at 40..43 and 45,
        // then b alone 46..50; 50..60 unanswered (trailing outage).
        replies.extend((0..10).map(|r| (r, a)));
        replies.extend((30..40).map(|r| (r, b)));
        for r in [40, 41, 42, 45] {
            replies.push((r, a));
            replies.push((r, b));
        }
        replies.extend([(43, b), (44, b)]);
        replies.extend((46..50).map(|r| (r, b)));
        let s = analyze(&obs_from(60, &replies), &names);
        assert_eq!(s.owner_changes.len(), 1, "{s:?}");
        let c = &s.owner_changes[0];
        assert_eq!((c.from.as_str(), c.to.as_str()), ("n1", "n2"));
        assert!((c.gap_ms - 105.0).abs() < 0.01 && !c.through_dual, "{s:?}");
        assert_eq!(s.outages.len(), 2, "{s:?}");
        assert!((s.downtime_ms - (105.0 + 49.9)).abs() < 0.01, "{s:?}");
        assert_eq!(s.dual_owner_rounds, 4);
        assert_eq!(s.dual_windows.len(), 1, "{s:?}");
        assert_eq!(s.dual_windows[0].nodes, vec!["n1", "n2"]);
        assert_eq!(s.dual_windows[0].dual_rounds, 4);
        // n1 -> both -> n2: a change through a dual window, no gap.
        let mut replies: Vec<(u32, [u8; 6])> = (0..5).map(|r| (r, a)).collect();
        replies.extend([(5, a), (5, b), (6, b)]);
        let s = analyze(&obs_from(7, &replies), &names);
        assert_eq!(s.owner_changes.len(), 1, "{s:?}");
        assert!(s.owner_changes[0].through_dual, "{s:?}");
        assert!((s.owner_changes[0].gap_ms - 5.0).abs() < 0.01, "{s:?}");
        // One MAC only: no dual owner.
        let s = analyze(&obs_from(10, &[(1, a), (1, a), (2, a)]), &names);
        assert_eq!(s.dual_owner_rounds, 0);
        assert!(s.dual_windows.is_empty());
    }

    const VIP_ADDED: &str =
        r#""resource":"vip","vip":"added","address":"192.0.2.100","dev":"eth0""#;
    const VIP_REMOVED: &str =
        r#""resource":"vip","vip":"removed","address":"192.0.2.100","dev":"eth0""#;

    /// Two nodes' logs: n1 holds the VIP from 1 s, fences n2 at 5 s, removes it at 9 s;
    /// n2 adds it at 3 s; each message made by `say`.
    fn fenced_logs(say: impl Fn(&str) -> String) -> (String, String) {
        let n1 = [
            line(
                "2026-01-01T00:00:01.000000Z",
                VIP_ADDED,
                &say("vip: added 192.0.2.100/24 to eth0"),
            ),
            line(
                "2026-01-01T00:00:01.000100Z",
                r#""kind":"became-owner","node":"n1","group":"www","term":1,"decision":"""#,
                &say("granted term 1"),
            ),
            line(
                "2026-01-01T00:00:05.000000Z",
                r#""kind":"fence-succeeded","node":"n2","group":"","term":0,"decision":"""#,
                &say("n2 is fenced (off)"),
            ),
            line(
                "2026-01-01T00:00:09.000000Z",
                VIP_REMOVED,
                &say("vip: removed 192.0.2.100 from eth0"),
            ),
        ]
        .join("\n");
        let n2 = line(
            "2026-01-01T00:00:03.000000Z",
            VIP_ADDED,
            &say("vip: added 192.0.2.100/24 to eth0"),
        );
        (n1, n2)
    }

    fn events_of(logs: &(String, String)) -> Vec<LogEvent> {
        let mut ev = log_events("n1", &logs.0);
        ev.extend(log_events("n2", &logs.1));
        ev
    }

    fn base() -> i64 {
        crate::lab::observe::events::parse_timestamp("2026-01-01T00:00:00Z").expect("time")
    }

    #[test]
    fn log_intervals_end_at_removal_or_power_off() {
        let ev = events_of(&fenced_logs(str::to_string));
        assert!(ev
            .iter()
            .any(|e| e.what == "fenced" && e.node == "n2" && e.by.as_deref() == Some("n1")));
        assert!(ev
            .iter()
            .any(|e| e.what == "became-owner" && e.node == "n1"));
        let (base, s) = (base(), 1_000_000_000);
        let (iv, ov) = vip_intervals(&ev, &[], base + 20 * s);
        assert_eq!(iv.len(), 2, "{iv:?}");
        // n2 held it from 3 s until it was fenced at 5 s: 2 s of overlap with n1.
        assert_eq!(ov.len(), 1, "{ov:?}");
        assert_eq!(ov[0].from_ns, base + 3 * s);
        assert_eq!(ov[0].to_ns, base + 5 * s);
        // A power-off by chaos at 4 s ends it earlier.
        let (_, ov) = vip_intervals(&ev, &[("n2".into(), base + 4 * s)], base + 20 * s);
        assert_eq!(ov[0].to_ns, base + 4 * s);
    }

    #[test]
    fn rewording_every_message_changes_no_interval_or_overlap() {
        let plain = fenced_logs(str::to_string);
        let reworded = fenced_logs(|m| format!("(reworded) {}", m.to_uppercase()));
        assert_ne!(plain, reworded);
        let end = base() + 20_000_000_000;
        let a = vip_intervals(&events_of(&plain), &[], end);
        let b = vip_intervals(&events_of(&reworded), &[], end);
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert_eq!(a.1.len(), 1);
    }

    #[test]
    fn a_guard_take_down_ends_a_vip_interval() {
        let log1 = [
            line("2026-01-01T00:00:01.000000Z", VIP_ADDED, "vip: added"),
            r#"{"timestamp":"2026-01-01T00:00:02.500000Z","level":"WARN","target":"tandemd::guard","message":"took down 1 group(s) in 40 µs: 1 address(es) removed","kind":"guard-took-down"}"#.to_string(),
        ]
        .join("\n");
        let log2 = line("2026-01-01T00:00:03.000000Z", VIP_ADDED, "vip: added");
        let ev = events_of(&(log1, log2));
        let (iv, ov) = vip_intervals(&ev, &[], base() + 20_000_000_000);
        assert!(ov.is_empty(), "{ov:?}");
        assert_eq!(iv[0].to_ns, Some(base() + 2_500_000_000), "{iv:?}");
    }

    #[test]
    fn faults_around_a_dual_owner_window_are_listed_as_context() {
        let f = |kind, node: &str, start: i64, healed: i64| InjectedFault {
            index: 1,
            kind,
            nodes: vec![node.into()],
            link: None,
            hit_owner: true,
            start_ns: start,
            healed_ns: Some(healed),
            notes: Vec::new(),
        };
        let nodes = vec!["n1".to_string(), "n2".to_string()];
        let s = 1_000_000_000;
        let act = faults_around(&[f(FaultKind::Pause, "n1", 0, 2 * s)], &nodes, s, s, 9 * s);
        assert_eq!(act, vec!["#1 pause n1".to_string()]);
        // Long healed: not active.
        let act = faults_around(
            &[f(FaultKind::Pause, "n1", 0, s)],
            &nodes,
            9 * s,
            9 * s,
            9 * s,
        );
        assert!(act.is_empty());
        // A fault of a node that is not one of the two answering.
        let act = faults_around(&[f(FaultKind::Pause, "n3", 0, 2 * s)], &nodes, s, s, 9 * s);
        assert!(act.is_empty());
    }
}
