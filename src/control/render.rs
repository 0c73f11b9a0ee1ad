//! Human rendering of control responses for `tandemctl` (kept in the library so it can
//! be tested against fixed reports). Everything fits in 100 columns.

use super::{CheckStatus, EventRecord, ProbeOutcome, ProbeRecord, StatusReport};
use crate::core::status::{ConstraintStatus, GroupStatus, LinkStatus, NodeStatus};
use std::fmt::Write as _;

/// Total width the tables are laid out for.
pub const WIDTH: usize = 100;

fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}ms")
    } else if v < 1000.0 {
        format!("{v:.0}ms")
    } else {
        format!("{:.1}s", v / 1000.0)
    }
}

fn ago(ms_ago: u64) -> String {
    if ms_ago < 1000 {
        format!("{ms_ago}ms")
    } else if ms_ago < 60_000 {
        format!("{:.1}s", ms_ago as f64 / 1000.0)
    } else if ms_ago < 3_600_000 {
        format!("{}m", ms_ago / 60_000)
    } else {
        format!("{}h", ms_ago / 3_600_000)
    }
}

/// `L0 up 0.41ms 80ms`: link, state, round trip, time since last heard.
fn link_cell(l: &LinkStatus) -> String {
    let mut s = format!("L{} {}", l.index, l.state);
    if let Some(rtt) = l.rtt_ms {
        let _ = write!(s, " rtt {}", ms(rtt));
    }
    if let Some(heard) = l.last_heard_ms {
        let _ = write!(s, " {} ago", ago(heard));
    }
    s
}

fn clip(s: &str, width: usize) -> String {
    clip_with(s, width, "…")
}

/// `s` cut to `width` characters, ending in `ellipsis` where it was cut.
pub fn clip_with(s: &str, width: usize, ellipsis: &str) -> String {
    if s.chars().count() <= width {
        s.to_string()
    } else {
        let keep = width.saturating_sub(ellipsis.chars().count());
        s.chars().take(keep).chain(ellipsis.chars()).collect()
    }
}

/// The report as `tandemctl status` prints it.
pub fn status_text(r: &StatusReport) -> String {
    let mut out = String::new();
    write_headline(&mut out, r);
    out.push('\n');
    write_nodes(&mut out, &r.view.nodes);
    out.push('\n');
    write_groups(&mut out, &r.view.groups);
    write_checks(&mut out, &r.checks);
    write_constraints(&mut out, &r.view.constraints);
    write_drops(&mut out, r);
    write_recent_events(&mut out, &r.recent_events);
    out
}

/// Cluster, answering node and config; maintenance banners; quorum.
fn write_headline(out: &mut String, r: &StatusReport) {
    let v = &r.view;
    let _ = writeln!(
        out,
        "cluster {}   answered by {}   config {}",
        r.cluster, v.node, r.config_digest
    );
    if v.maintenance {
        let _ = writeln!(
            out,
            "*** MAINTENANCE: tandem starts, stops and monitors NOTHING (tandemctl maintenance off) ***"
        );
    }
    let in_maintenance: Vec<&str> = v
        .groups
        .iter()
        .filter(|g| g.maintenance && !v.maintenance)
        .map(|g| g.name.as_str())
        .collect();
    if !in_maintenance.is_empty() {
        let line = format!(
            "*** MAINTENANCE of group(s) {}: not started, stopped or monitored ***",
            in_maintenance.join(", ")
        );
        let _ = writeln!(out, "{}", clip(&line, WIDTH));
    }
    let _ = writeln!(
        out,
        "quorum: {} of {} votes present, {} needed: {}",
        v.votes_present,
        v.votes_expected,
        v.quorum_votes,
        if v.quorate { "quorate" } else { "NOT QUORATE" },
    );
    if let Some(a) = &v.arbiter {
        write_arbiter(out, a);
    }
}

/// The arbiter's line: reachable or not, and who holds each group's vote.
fn write_arbiter(out: &mut String, a: &crate::core::status::ArbiterStatus) {
    let reach = match (a.reachable, a.last_answer_ms) {
        (true, _) => "reachable".to_string(),
        (false, Some(ms)) => format!("UNREACHABLE (last answer {ms} ms ago)"),
        (false, None) => "UNREACHABLE (never answered)".to_string(),
    };
    let votes: Vec<String> = a
        .votes
        .iter()
        .map(|v| {
            let since = v
                .since_ms
                .map(|ms| format!(" for {}", seconds(ms)))
                .unwrap_or_default();
            match (&v.holder, v.lease_left_ms) {
                (Some(h), Some(ms)) => format!("{}: {h}{since} ({ms} ms left)", v.group),
                (Some(h), None) => format!("{}: {h}{since}", v.group),
                (None, _) => format!("{}: nobody known", v.group),
            }
        })
        .collect();
    let line = if votes.is_empty() {
        format!("arbiter: {reach}")
    } else {
        format!("arbiter: {reach}; vote {}", votes.join(", "))
    };
    let _ = writeln!(out, "{}", clip(&line, WIDTH));
    if let Some(session) = &a.session {
        let lease = match (&session.lease_id, session.lease_ttl_left_ms) {
            (Some(id), Some(ms)) => format!("{id} ({ms} ms of its ttl left)"),
            _ => "none yet".to_string(),
        };
        let line = format!(
            "arbiter lease: {lease}; {} granted to this daemon",
            session.leases_granted
        );
        let _ = writeln!(out, "{}", clip(&line, WIDTH));
    }
}

/// `12.3 s` from milliseconds.
fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// The node table: name (marked local or witness), state, links.
fn write_nodes(out: &mut String, nodes: &[NodeStatus]) {
    let _ = writeln!(out, "{:<16} {:<8} LINKS", "NODE", "STATE");
    for n in nodes {
        let mut name = n.name.clone();
        if n.local {
            name.push_str(" *");
        }
        if n.witness {
            name.push_str(" (w)");
        }
        let mut links = if n.local {
            "(this node)".to_string()
        } else {
            n.links.iter().map(link_cell).collect::<Vec<_>>().join("  ")
        };
        // First, so clipping a long link list cannot hide it.
        if n.checks_failing == Some(true) {
            links = format!("{CHECKS_FAILING}  {links}");
        }
        let line = format!("{:<16} {:<8} {}", clip(&name, 16), clip(&n.state, 8), links);
        let _ = writeln!(out, "{}", clip(line.trim_end(), WIDTH));
    }
}

/// The group table, each group followed by its resources.
fn write_groups(out: &mut String, groups: &[GroupStatus]) {
    if groups.is_empty() {
        out.push_str("no resource groups\n");
        return;
    }
    let _ = writeln!(
        out,
        "{:<20} {:<12} {:>6} {:<10} REASON",
        "GROUP", "OWNER", "TERM", "STATE"
    );
    for g in groups {
        // Maintenance must be impossible to miss: it takes the whole STATE column,
        // and the state it froze moves into the reason.
        let (state, reason) = if g.maintenance {
            (
                "MAINT".to_string(),
                format!("[maintenance, {}] {}", g.state, g.reason),
            )
        } else {
            (g.state.clone(), g.reason.clone())
        };
        let line = format!(
            "{:<20} {:<12} {:>6} {:<10} {}",
            clip(&g.name, 20),
            clip(g.owner.as_deref().unwrap_or("-"), 12),
            g.term,
            clip(&state, 10),
            reason
        );
        let _ = writeln!(out, "{}", clip(line.trim_end(), WIDTH));
        for r in &g.resources {
            let mut line = format!(
                "  {:<18} {:<10} fails {}",
                clip(&r.name, 18),
                clip(&r.state, 10),
                r.fail_count
            );
            if let Some(f) = &r.last_failure {
                let _ = write!(line, "   last failure: {f}");
            }
            let _ = writeln!(out, "{}", clip(&line, WIDTH));
        }
    }
}

/// Marks a node whose heartbeats say a health check fails (before its links, so
/// clipping cannot hide it).
const CHECKS_FAILING: &str = "HEALTH CHECK FAILING";
/// Heads the table of this node's health checks.
const CHECKS_HEADING: &str = "health checks on";

/// This node's health checks, if any: verdict, streaks against fall/rise, last probe.
fn write_checks(out: &mut String, checks: &[CheckStatus]) {
    let Some(first) = checks.first() else {
        return;
    };
    let _ = writeln!(out, "\n{CHECKS_HEADING} {}:", first.node);
    let _ = writeln!(
        out,
        "  {:<18} {:<8} {:<9} {:<9} LAST PROBE",
        "CHECK", "STATE", "FAILED", "PASSED"
    );
    for c in checks {
        let last = c
            .last
            .as_ref()
            .map(probe_cell)
            .unwrap_or_else(|| "-".into());
        let line = format!(
            "  {:<18} {:<8} {:<9} {:<9} {}",
            clip(&c.name, 18),
            c.state.as_str(),
            format!("{}/{}", c.consecutive_failures, c.fall),
            format!("{}/{}", c.consecutive_successes, c.rise),
            last
        );
        let _ = writeln!(out, "{}", clip(&line, WIDTH));
    }
}

/// Every admin constraint in force, with the time it has left and the command that
/// ends it, so nothing a `move` or `ban` left behind is a surprise later.
fn write_constraints(out: &mut String, constraints: &[ConstraintStatus]) {
    if constraints.is_empty() {
        return;
    }
    out.push_str("\nadmin constraints in force:\n");
    for c in constraints {
        let group = c.group.as_deref().unwrap_or("-");
        let node = c.node.as_deref().unwrap_or("-");
        let (what, clear) = match c.kind.as_str() {
            "move" => (
                format!("{group} pinned to {node}"),
                format!("tandemctl move --clear {group}"),
            ),
            "ban" => (
                format!("{group} never on {node}"),
                format!("tandemctl unban {group} {node}"),
            ),
            "standby" => (node.to_string(), format!("tandemctl online {node}")),
            _ if c.group.is_some() => (
                group.to_string(),
                format!("tandemctl maintenance off {group}"),
            ),
            _ => ("whole cluster".into(), "tandemctl maintenance off".into()),
        };
        let left = match c.left_ms {
            // Whole seconds, rounded up: "0s left" would read as already gone.
            Some(ms) => format!(
                "{} left",
                crate::config::format_duration(std::time::Duration::from_secs(ms.div_ceil(1000)))
            ),
            None => "until cleared".into(),
        };
        let line = format!(
            "  {:<11} {:<26} {:<13} {clear}   (set on {})",
            c.kind,
            clip(&what, 26),
            left,
            c.set_on
        );
        let _ = writeln!(out, "{}", clip(&line, WIDTH));
    }
}

/// `12:01:02.345 exit 1 (12ms): no route to host`.
fn probe_cell(p: &ProbeRecord) -> String {
    let what = match (p.outcome, p.exit_code, p.signal) {
        (ProbeOutcome::Passed, ..) => "ok".to_string(),
        (ProbeOutcome::Failed, Some(code), _) => format!("exit {code}"),
        (ProbeOutcome::Failed, None, Some(sig)) => format!("signal {sig}"),
        (ProbeOutcome::Failed, None, None) => "failed".to_string(),
        (ProbeOutcome::TimedOut, ..) => "timeout".to_string(),
        (ProbeOutcome::Error, ..) => "error".to_string(),
    };
    let mut cell = format!("{} {what} ({}ms)", clock_time(p.unix_ms), p.duration_ms);
    if !p.output.is_empty() {
        let _ = write!(cell, ": {}", p.output);
    }
    cell
}

/// The non-zero drop counters, if any.
fn write_drops(out: &mut String, r: &StatusReport) {
    let drops: Vec<String> = r
        .drops
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if !drops.is_empty() {
        out.push('\n');
        let line = format!("dropped datagrams: {}", drops.join(", "));
        let _ = writeln!(out, "{}", clip(&line, WIDTH));
    }
}

fn write_recent_events(out: &mut String, events: &[EventRecord]) {
    if !events.is_empty() {
        out.push_str("\nlast events:\n");
        for e in events {
            let _ = writeln!(out, "{}", event_line(e));
        }
    }
}

/// `HH:MM:SS.mmm` in local time (the date is left out: events are recent).
pub fn clock_time(unix_ms: u64) -> String {
    let secs = (unix_ms / 1000) as libc::time_t;
    // SAFETY: localtime_r only writes into the zeroed struct we own.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if !ok {
        return format!("@{unix_ms}");
    }
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec,
        unix_ms % 1000
    )
}

/// `tandemctl events`: one line per event, and a marker line wherever the daemon
/// restarted in between (the events before it are from an earlier incarnation).
pub fn events_text(events: &[EventRecord]) -> String {
    let mut out = String::new();
    let mut previous: Option<u64> = None;
    for e in events {
        if let (Some(before), Some(now)) = (previous, e.incarnation) {
            if before != now {
                let _ = writeln!(
                    out,
                    "--- tandemd restarted: incarnation {before} ended, {now} began ---"
                );
            }
        }
        previous = e.incarnation.or(previous);
        let _ = writeln!(out, "{}", event_line(e));
    }
    out
}

/// One event on one line of at most 100 columns.
pub fn event_line(e: &EventRecord) -> String {
    let mut about = Vec::new();
    if let Some(n) = &e.node {
        about.push(n.clone());
    }
    if let Some(g) = &e.group {
        about.push(g.clone());
    }
    if let Some(t) = e.term {
        about.push(format!("term {t}"));
    }
    let line = format!(
        "{} {:<15} {:<22} {}",
        clock_time(e.unix_ms),
        e.kind,
        clip(&about.join(" "), 22),
        e.reason
    );
    clip(line.trim_end(), WIDTH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::status::ClusterStatus;

    fn report() -> StatusReport {
        let link = |index, state: &str| LinkStatus {
            index,
            state: state.into(),
            rtt_ms: Some(0.412),
            last_heard_ms: Some(83),
            phi: None,
        };
        StatusReport {
            cluster: "prod".into(),
            config_digest: "00000000deadbeef".into(),
            drops: [("auth_failed".to_string(), 3), ("replayed".to_string(), 0)]
                .into_iter()
                .collect(),
            view: ClusterStatus {
                node: "alpha".into(),
                quorate: true,
                votes_present: 2,
                votes_expected: 3,
                quorum_votes: 2,
                nodes: vec![
                    NodeStatus {
                        name: "alpha".into(),
                        state: "online".into(),
                        local: true,
                        ..Default::default()
                    },
                    NodeStatus {
                        name: "a-node-with-a-very-long-name".into(),
                        state: "online".into(),
                        links: vec![link(0, "up"), link(1, "down")],
                        ..Default::default()
                    },
                ],
                groups: vec![GroupStatus {
                    name: "web".into(),
                    owner: Some("alpha".into()),
                    term: 7,
                    state: "running".into(),
                    reason: "preferred node ".repeat(20),
                    maintenance: true,
                    resources: vec![crate::core::status::ResourceStatus {
                        name: "db".into(),
                        state: "failed".into(),
                        fail_count: 2,
                        last_failure: Some("exit code 1 ".repeat(20)),
                    }],
                }],
                maintenance: false,
                arbiter: None,
                constraints: Vec::new(),
            },
            recent_events: vec![EventRecord {
                unix_ms: 1_700_000_000_123,
                kind: "became-owner".into(),
                node: Some("alpha".into()),
                group: Some("web".into()),
                term: Some(7),
                reason: "took over ".repeat(20),
                decision: None,
                wait_ms: None,
                incarnation: None,
            }],
            ..StatusReport::default()
        }
    }

    #[test]
    fn checks_show_state_streaks_against_fall_rise_and_the_last_probe() {
        let mut r = report();
        r.checks = vec![CheckStatus {
            name: "gateway".into(),
            node: "alpha".into(),
            kind: "script".into(),
            state: super::super::CheckState::Failing,
            fall: 3,
            rise: 2,
            consecutive_failures: 4,
            consecutive_successes: 0,
            probes_total: 9,
            failures_total: 4,
            last: Some(ProbeRecord {
                unix_ms: 1_700_000_000_123,
                outcome: ProbeOutcome::Failed,
                exit_code: Some(2),
                signal: None,
                duration_ms: 12,
                output: "no route to host ".repeat(10),
            }),
        }];
        let text = status_text(&r);
        let clock = clock_time(1_700_000_000_123);
        let want = format!(
            "  gateway            failing  4/3       0/2       {clock} exit 2 (12ms): no route"
        );
        assert!(text.contains(&format!("{CHECKS_HEADING} alpha:")), "{text}");
        assert!(
            text.lines().any(|l| l.starts_with(&want)),
            "{want:?} in:\n{text}"
        );
        for line in text.lines() {
            assert!(line.chars().count() <= WIDTH, "too wide: {line:?}");
        }
        assert!(!text.contains(CHECKS_FAILING), "{text}");
        r.checks.clear();
        assert!(!status_text(&r).contains(CHECKS_HEADING));
        r.view.nodes[1].checks_failing = Some(true);
        let peer = status_text(&r);
        let line = peer
            .lines()
            .find(|l| l.starts_with("a-node-with"))
            .expect("peer line");
        assert!(
            line.contains(&format!("online   {CHECKS_FAILING}  L0 up")),
            "{peer}"
        );
    }

    #[test]
    fn events_from_an_earlier_incarnation_are_marked_off() {
        let e = |incarnation| EventRecord {
            incarnation,
            ..report().recent_events[0].clone()
        };
        let text = events_text(&[e(None), e(Some(4)), e(Some(4)), e(Some(5))]);
        let markers: Vec<&str> = text.lines().filter(|l| l.starts_with("---")).collect();
        assert_eq!(
            markers,
            vec!["--- tandemd restarted: incarnation 4 ended, 5 began ---"]
        );
        assert_eq!(text.lines().count(), 5);
    }

    #[test]
    fn clipping_counts_characters_and_keeps_the_ellipsis_within_width() {
        assert_eq!(clip_with("abcdef", 6, "..."), "abcdef");
        assert_eq!(clip_with("abcdefg", 6, "..."), "abc...");
        assert_eq!(clip_with("äöüäöüä", 6, "…"), "äöüäö…");
        assert_eq!(clip_with("abcdefg", 2, "..."), "...");
    }

    #[test]
    fn status_shows_quorum_nodes_groups_and_nonzero_drops_within_100_columns() {
        let text = status_text(&report());
        assert!(
            text.contains("2 of 3 votes present, 2 needed: quorate"),
            "{text}"
        );
        assert!(text.contains("L1 down"), "{text}");
        assert!(text.contains("rtt 0.41ms 83ms ago"), "{text}");
        assert!(text.contains("web "), "{text}");
        assert!(text.contains("auth_failed 3"), "{text}");
        assert!(
            !text.contains("replayed"),
            "zero counters are not shown: {text}"
        );
        assert!(text.contains("*** MAINTENANCE of group(s) web"), "{text}");
        assert!(
            text.contains("fails 2   last failure: exit code 1"),
            "{text}"
        );
        assert!(text.contains("became-owner    alpha web term 7"), "{text}");
        for line in text.lines() {
            assert!(line.chars().count() <= WIDTH, "too wide: {line:?}");
        }
    }

    #[test]
    fn status_lists_every_admin_constraint_with_time_left_and_how_to_end_it() {
        let mut r = report();
        let c = |kind: &str, node: Option<&str>, group: Option<&str>, left_ms| ConstraintStatus {
            kind: kind.into(),
            node: node.map(Into::into),
            group: group.map(Into::into),
            left_ms,
            set_on: "beta".into(),
        };
        r.view.constraints = vec![
            c("move", Some("alpha"), Some("web"), Some(125_001)),
            c("ban", Some("gamma"), Some("web"), None),
            c("standby", Some("gamma"), None, None),
            c("maintenance", None, None, Some(400)),
        ];
        let text = status_text(&r);
        let expected = "
admin constraints in force:
  move        web pinned to alpha        2m6s left     tandemctl move --clear web   (set on beta)
  ban         web never on gamma         until cleared tandemctl unban web gamma   (set on beta)
  standby     gamma                      until cleared tandemctl online gamma   (set on beta)
  maintenance whole cluster              1s left       tandemctl maintenance off   (set on beta)
";
        assert!(text.contains(expected), "{text}");
        r.view.constraints.clear();
        assert!(!status_text(&r).contains("constraints"));
    }

    /// `tandemctl status` byte for byte, in three shapes (group in maintenance, whole
    /// cluster in maintenance without groups, plain group without owner). The event
    /// time is local, so it is spliced in.
    #[test]
    fn status_shows_the_arbiter_only_when_there_is_one() {
        use crate::core::status::{ArbiterSession, ArbiterStatus, ArbiterVote};
        let mut r = report();
        let plain = status_text(&r);
        let lines = |a: &ArbiterStatus| {
            let mut out = String::new();
            write_arbiter(&mut out, a);
            out
        };
        let reachable = ArbiterStatus {
            reachable: true,
            last_answer_ms: Some(40),
            votes: vec![ArbiterVote {
                group: "web".into(),
                holder: Some("alpha".into()),
                lease_left_ms: Some(1830),
                since_ms: Some(12_340),
            }],
            session: Some(ArbiterSession {
                lease_id: Some("694d8a1c2e3f".into()),
                lease_ttl_left_ms: Some(3400),
                leases_granted: 1,
            }),
        };
        assert_eq!(
            lines(&reachable),
            "arbiter: reachable; vote web: alpha for 12.3 s (1830 ms left)\n\
             arbiter lease: 694d8a1c2e3f (3400 ms of its ttl left); 1 granted to this daemon\n"
        );
        // The arbiter's lines are all that an arbiter adds to the status.
        r.view.arbiter = Some(reachable.clone());
        assert_eq!(status_text(&r).replacen(&lines(&reachable), "", 1), plain);
        let unreachable = ArbiterStatus {
            reachable: false,
            last_answer_ms: Some(5200),
            votes: vec![ArbiterVote {
                group: "web".into(),
                holder: None,
                lease_left_ms: None,
                since_ms: None,
            }],
            session: None,
        };
        assert_eq!(
            lines(&unreachable),
            "arbiter: UNREACHABLE (last answer 5200 ms ago); vote web: nobody known\n"
        );
    }

    #[test]
    fn status_text_is_byte_identical_to_the_golden_text() {
        let clock = clock_time(1_700_000_000_123);
        let mut r = report();
        assert_eq!(status_text(&r), GOLDEN_A.replace("{clock}", &clock));
        let mut plain = r.clone();
        plain.view.groups[0].maintenance = false;
        plain.view.groups[0].owner = None;
        let golden_c = GOLDEN_A
            .replace("{clock}", &clock)
            .replace(
                "*** MAINTENANCE of group(s) web: not started, stopped or monitored ***\n",
                "",
            )
            .replace(
                "web                  alpha             7 MAINT      [maintenance, running] preferred node preferred…",
                "web                  -                 7 running    preferred node preferred node preferred node pr…",
            );
        assert_eq!(status_text(&plain), golden_c);
        r.view.maintenance = true;
        r.view.quorate = false;
        r.view.groups.clear();
        r.drops.clear();
        r.recent_events.clear();
        r.view.nodes[1].witness = true;
        r.view.nodes[1].links[0].rtt_ms = None;
        r.view.nodes[1].links[1].last_heard_ms = Some(125_000);
        assert_eq!(status_text(&r), GOLDEN_B);
    }

    const GOLDEN_A: &str = r#"cluster prod   answered by alpha   config 00000000deadbeef
*** MAINTENANCE of group(s) web: not started, stopped or monitored ***
quorum: 2 of 3 votes present, 2 needed: quorate

NODE             STATE    LINKS
alpha *          online   (this node)
a-node-with-a-v… online   L0 up rtt 0.41ms 83ms ago  L1 down rtt 0.41ms 83ms ago

GROUP                OWNER          TERM STATE      REASON
web                  alpha             7 MAINT      [maintenance, running] preferred node preferred…
  db                 failed     fails 2   last failure: exit code 1 exit code 1 exit code 1 exit co…

dropped datagrams: auth_failed 3

last events:
{clock} became-owner    alpha web term 7       took over took over took over took over took ov…
"#;

    const GOLDEN_B: &str = r#"cluster prod   answered by alpha   config 00000000deadbeef
*** MAINTENANCE: tandem starts, stops and monitors NOTHING (tandemctl maintenance off) ***
quorum: 2 of 3 votes present, 2 needed: NOT QUORATE

NODE             STATE    LINKS
alpha *          online   (this node)
a-node-with-a-v… online   L0 up 83ms ago  L1 down rtt 0.41ms 2m ago

no resource groups
"#;
}
