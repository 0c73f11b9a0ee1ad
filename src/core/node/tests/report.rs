//! The heartbeat this node sends.

use super::*;

#[test]
fn building_a_heartbeat_changes_nothing() {
    let c = settled();
    let node = &c.nodes[0];
    let now = c.now + ms(1);
    let first = node.build_heartbeat(now);
    let second = node.build_heartbeat(now);
    assert_eq!(first, second);
    let www = first.groups.iter().find(|r| r.group == GroupId(1));
    assert_eq!(
        www.map(|r| (r.owner, r.phase)),
        Some((Some(NodeId(1)), Phase::Running))
    );
}

#[test]
fn an_owner_renews_its_own_vote_when_it_sends() {
    let mut c = settled();
    let mut node = c.nodes.remove(0);
    let now = c.now + ms(50);
    node.renew_own_votes(now);
    let hb = node.build_heartbeat(now);
    let own = hb.grants.iter().find(|g| g.to == NodeId(1));
    assert_eq!(own.map(|g| g.echo_sent_at), Some(now));
}

#[test]
fn an_idle_voter_reports_the_owner_and_grants_it() {
    let c = settled();
    let hb = c.nodes[1].build_heartbeat(c.now);
    let www: Vec<_> = hb.groups.iter().filter(|r| r.group == GroupId(1)).collect();
    assert_eq!(www.last().map(|r| r.owner), Some(Some(NodeId(1))));
    assert!(hb
        .grants
        .iter()
        .any(|g| g.to == NodeId(1) && g.group == GroupId(1)));
    assert!(hb.refuses.is_empty());
}

#[test]
fn a_failing_health_check_is_flagged_and_peers_show_it_in_status() {
    let mut c = settled();
    let checks_failing = |c: &Cluster, observer: usize, node: &str| {
        let s = c.nodes[observer].status(c.now);
        s.nodes
            .iter()
            .find(|n| n.name == node)
            .and_then(|n| n.checks_failing)
    };
    assert_eq!(checks_failing(&c, 0, "beta"), Some(false));
    c.input(1, Input::Health { ok: false });
    let now = c.now;
    assert!(c.nodes[1]
        .build_heartbeat(now)
        .flags
        .has(NodeFlags::CHECKS_FAILING));
    c.run_until(ms(3000));
    assert_eq!(checks_failing(&c, 0, "beta"), Some(true), "alpha hears it");
    assert_eq!(checks_failing(&c, 1, "beta"), Some(true), "beta knows");
    c.input(1, Input::Health { ok: true });
    c.run_until(ms(3500));
    assert_eq!(
        checks_failing(&c, 2, "beta"),
        Some(false),
        "and hears it pass"
    );
}

/// A driver that runs the regular heartbeat a little late (a coarse wake, see
/// `Node::next_wake`, and the wake's own latency) does not slow the rhythm: the next beat
/// counts from when the late one was due, so a node woken only when `next_wake` says,
/// and 200 µs after that, still sends every `interval` on average (10 ms here, where
/// each beat comes 1.2 ms late).
#[test]
fn a_beat_sent_a_little_late_keeps_the_rhythm() {
    let mut spec = Spec::new(3);
    spec.0.timing = Timing::with_defaults(ms(10), ms(40));
    let mut c = spec.boot();
    let mut node = c.nodes.remove(0);
    // As the daemon starts: one step at once, then only when woken.
    node.handle(Instant::ZERO, Input::Tick);
    let (mut now, mut sends, mut late) = (Instant::ZERO, 0, 0);
    while now < Instant::ZERO + ms(10_000) {
        let first = node.next_deadline().map(|(at, _)| at).expect("a deadline");
        now = node.next_wake().expect("a wake") + Duration::from_micros(200);
        late += usize::from(now > first);
        let out = node.handle(now, Input::Tick);
        sends += out.iter().filter(|a| matches!(a, Action::Send(_))).count();
    }
    assert!(late > 900, "the beats were run late ({late} times)");
    assert!(
        (980..=1020).contains(&sends),
        "{sends} heartbeats in 10 s at a 10 ms interval"
    );
}
