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

/// A voter past its quiet period that has just granted alpha's claim (term 1), and
/// when: 1.5 s after its start.
fn promised_to_alpha() -> (Node, Instant) {
    let mut v = voter();
    let at = Instant::ZERO + ms(1500);
    hear(&mut v, at, claim(1, 1, 1, at));
    (v, at)
}

fn granted_to(node: &Node, now: Instant) -> Option<(NodeId, Term)> {
    let hb = node.build_heartbeat(now);
    hb.grants
        .iter()
        .find(|g| g.group == GroupId(1))
        .map(|g| (g.to, g.term))
}

/// The voter hears `from`'s claim the instant it is sent, at `at`: whom it grants
/// `www` to then.
fn granted_after_claim(
    v: &mut Node,
    at: Instant,
    (from, seq, term): (u16, u64, u64),
) -> Option<(NodeId, Term)> {
    hear(v, at, claim(from, seq, term, at));
    granted_to(v, at)
}

#[test]
fn a_voter_grants_nothing_in_its_quiet_period() {
    let mut v = voter();
    let at = Instant::ZERO + ms(500);
    assert_eq!(granted_after_claim(&mut v, at, (1, 1, 1)), None);
}

#[test]
fn a_voter_grants_a_candidate_after_its_quiet_period() {
    let (v, at) = promised_to_alpha();
    assert_eq!(granted_to(&v, at), Some((NodeId(1), Term(1))));
}

#[test]
fn a_promise_keeps_a_second_candidate_waiting_until_it_runs_out() {
    let (mut v, at) = promised_to_alpha();
    let granted = granted_after_claim(&mut v, at + ms(400), (2, 1, 2));
    assert_eq!(granted, Some((NodeId(1), Term(1))));
    // alpha falls silent: once the promise (deadtime) ran out, beta gets the grant.
    let granted = granted_after_claim(&mut v, at + ms(1001), (2, 2, 2));
    assert_eq!(granted, Some((NodeId(2), Term(2))));
}

/// Runs `v` as the daemon does while nothing arrives: a tick at each of its deadlines
/// before `until`. (A node fed nothing for longer than an interval would take the gap
/// for a pause of its own and excuse its peers' silence.)
fn idle_until(v: &mut Node, until: Instant) {
    while let Some((at, _)) = v.next_deadline() {
        if at >= until {
            break;
        }
        v.handle(at, Input::Tick);
    }
}

/// A voter that promised `www` to alpha (at 1.5 s) and refused beta's claim, made
/// `before` the promise ends: (the voter, when beta claimed, when the promise ends).
/// The voter ran all along and is left just before the promise's end.
fn refusing_voter(before: Duration) -> (Node, Instant, Instant) {
    let (mut v, at) = promised_to_alpha();
    let expiry = at + ms(1000);
    let refused = expiry - before;
    idle_until(&mut v, refused);
    hear(&mut v, refused, claim(2, 1, 2, refused));
    idle_until(&mut v, expiry - ms(1));
    (v, refused, expiry)
}

/// The first grant in the heartbeat among `out`, if one was sent.
fn sent_grant(out: &[Action]) -> Option<Grant> {
    out.iter().find_map(|a| match a {
        Action::Send(hb) => hb.grants.first().copied(),
        _ => None,
    })
}

/// Issue 13: a claim refused because the promise to another node had a little time
/// left is granted the instant that promise runs out, not on the candidate's next claim
/// an interval later.
#[test]
fn a_refused_claim_is_granted_the_instant_the_promise_runs_out() {
    // beta claims 30 ms before the promise to alpha ends: refused for now.
    let (mut v, refused, expiry) = refusing_voter(ms(30));
    assert_eq!(granted_to(&v, refused), Some((NodeId(1), Term(1))));
    assert!(
        v.next_deadline().is_some_and(|(t, _)| t <= expiry),
        "the voter wakes by the time its promise ends"
    );
    // Nothing more from beta: the tick at the promise's end grants and sends at once.
    let out = v.handle(expiry, Input::Tick);
    assert_eq!(granted_to(&v, expiry), Some((NodeId(2), Term(2))));
    assert_eq!(
        sent_grant(&out).map(|g| (g.to, g.term, g.echo_sent_at)),
        Some((NodeId(2), Term(2), refused)),
        "the grant goes out at once and echoes the refused claim's send time"
    );
}

/// The driver's wake (`Node::next_wake`) lets coarse deadlines — here the voter's
/// regular heartbeats — wait a little for company, but never the end of a promise: woken
/// only when `next_wake` says, the voter still grants at that instant.
#[test]
fn woken_as_the_daemon_wakes_a_voter_still_grants_the_instant_the_promise_runs_out() {
    let (mut v, refused, expiry) = refusing_voter(ms(30));
    let (mut now, mut granted_at_expiry, mut waited) = (refused, None, false);
    while now < expiry + ms(300) {
        let first = v.next_deadline().map(|(at, _)| at).expect("a deadline");
        now = v.next_wake().expect("a wake");
        assert!(now >= first, "never before a deadline");
        waited |= now > first;
        v.handle(now, Input::Tick);
        if now == expiry {
            granted_at_expiry = granted_to(&v, now);
        }
    }
    assert_eq!(
        granted_at_expiry,
        Some((NodeId(2), Term(2))),
        "woken at the promise's end, and granted then"
    );
    assert!(waited, "a heartbeat waited for company");
}

#[test]
fn what_a_takeover_or_a_lease_waits_on_is_exact() {
    for exact in [
        Deadline::PromiseExpires,
        Deadline::FailureDetector,
        Deadline::LeaseRenewalDue,
        Deadline::LeaseEnds,
    ] {
        assert!(exact.is_exact(), "{exact:?}");
    }
    for coarse in [Deadline::Heartbeat, Deadline::Monitor, Deadline::FenceRetry] {
        assert!(!coarse.is_exact(), "{coarse:?}");
    }
}

/// The grant at a promise's end is not held back by the gap between triggered sends:
/// a voter whose previous heartbeat left 1 ms before its promise ended (here: its health
/// changed) still grants at that instant, not 2 ms later. The voters' heartbeats are
/// in step with the owner's (each acknowledges a renewal at once), so after `deadtime`
/// of silence one of their regular sends often falls just before the promise's end.
#[test]
fn a_grant_at_the_promise_end_goes_out_even_right_after_another_send() {
    let (mut v, _, expiry) = refusing_voter(ms(10));
    let out = v.handle(expiry - ms(1), Input::Health { ok: false });
    assert!(
        out.iter().any(|a| matches!(a, Action::Send(_))),
        "the change of health is sent at once"
    );
    let out = v.handle(expiry, Input::Tick);
    assert_eq!(
        sent_grant(&out).map(|g| (g.to, g.term)),
        Some((NodeId(2), Term(2))),
        "granted and sent at the promise's end, 1 ms after the previous send"
    );
}

/// A claim heard too long ago (its candidate may be gone) is not granted on its own.
#[test]
fn a_stale_refused_claim_waits_for_a_fresh_one() {
    let (mut v, at) = promised_to_alpha();
    let refused = at + ms(500);
    hear(&mut v, refused, claim(2, 1, 2, refused));
    hear(&mut v, at + ms(700), claim(1, 2, 1, at + ms(700)));
    // alpha renewed at +700 ms; its promise ends at +1700 ms, long after beta's claim.
    let expiry = at + ms(1700);
    v.handle(expiry, Input::Tick);
    assert_eq!(granted_to(&v, expiry), None);
}

/// A renewal is acknowledged by a triggered heartbeat, not the next regular one: the
/// owner's lease counts from the claim the ack echoes.
#[test]
fn a_renewed_promise_is_acknowledged_at_once() {
    let (mut v, at) = promised_to_alpha();
    let renewal = at + ms(50);
    let out = v.handle(
        renewal,
        Input::Heartbeat {
            link: 0,
            heartbeat: claim(1, 2, 1, renewal),
        },
    );
    let echo = out.iter().find_map(|a| match a {
        Action::Send(hb) => hb.grants.first().map(|g| g.echo_sent_at),
        _ => None,
    });
    assert_eq!(echo, Some(renewal), "acknowledged in the same step");
}

/// The holder a grant records is durable before the grant goes out (docs/design.md:
/// the grantee may start the instant it counts a quorum) — also for the grant made on a
/// tick at the promise's end, which once went out with the record still in memory.
#[test]
fn a_grant_at_the_promise_end_is_persisted_before_it_is_sent() {
    let (mut v, _, expiry) = refusing_voter(ms(30));
    let out = v.handle(expiry, Input::Tick);
    let persisted = out.iter().position(|a| {
        matches!(a, Action::Persist(state) if state.holders.iter().any(|h| h.owner == NodeId(2)))
    });
    let sent = out.iter().position(|a| matches!(a, Action::Send(_)));
    assert!(
        persisted.is_some_and(|p| sent.is_some_and(|s| p < s)),
        "the record of beta as holder is persisted before the grant is sent: {out:?}"
    );
}
