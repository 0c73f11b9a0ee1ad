//! The voter's side: grants and promises.

use super::*;

/// A heartbeat from `from` claiming `www` as candidate at `term`.
fn claim(from: u16, seq: u64, term: u64, at: Instant) -> Heartbeat {
    Heartbeat {
        from: NodeId(from),
        incarnation: 1,
        seq,
        sent_at: at,
        config_digest: 7,
        flags: NodeFlags::default(),
        echoes: Vec::new(),
        view: Vec::new(),
        groups: vec![GroupReport {
            group: GroupId(1),
            term: Term(term),
            owner: Some(NodeId(from)),
            owner_incarnation: 1,
            phase: Phase::Candidate,
            handoff_to: None,
        }],
        grants: Vec::new(),
        fenced: Vec::new(),
        refuses: Vec::new(),
        admin: AdminState::default(),
    }
}

fn voter() -> Node {
    let spec = Spec::new(3).prefer(None).0;
    let boot = Boot {
        incarnation: 1,
        persisted: Some(PersistentState::default()),
        seed: 3,
    };
    Node::new(spec, NodeId(3), boot, Instant::ZERO)
}

fn hear(v: &mut Node, at: Instant, heartbeat: Heartbeat) {
    v.handle(at, Input::Heartbeat { link: 0, heartbeat });
}

fn granted_to(node: &Node, now: Instant) -> Option<(NodeId, Term)> {
    let hb = node.build_heartbeat(now);
    hb.grants
        .iter()
        .find(|g| g.group == GroupId(1))
        .map(|g| (g.to, g.term))
}

#[test]
fn a_voter_grants_nothing_in_its_quiet_period() {
    let mut v = voter();
    let at = Instant::ZERO + ms(500);
    hear(&mut v, at, claim(1, 1, 1, at));
    assert_eq!(granted_to(&v, at), None);
}

#[test]
fn a_voter_grants_a_candidate_after_its_quiet_period() {
    let mut v = voter();
    let at = Instant::ZERO + ms(1500);
    hear(&mut v, at, claim(1, 1, 1, at));
    assert_eq!(granted_to(&v, at), Some((NodeId(1), Term(1))));
}

#[test]
fn a_promise_keeps_a_second_candidate_waiting_until_it_runs_out() {
    let mut v = voter();
    let at = Instant::ZERO + ms(1500);
    hear(&mut v, at, claim(1, 1, 1, at));
    let later = at + ms(400);
    hear(&mut v, later, claim(2, 1, 2, later));
    assert_eq!(granted_to(&v, later), Some((NodeId(1), Term(1))));
    // alpha falls silent: once the promise (deadtime) ran out, beta gets the grant.
    let after = at + ms(1001);
    hear(&mut v, after, claim(2, 2, 2, after));
    assert_eq!(granted_to(&v, after), Some((NodeId(2), Term(2))));
}
