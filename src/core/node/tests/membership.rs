//! Membership: peers coming and going, quorum, late heartbeats, config digests.

use super::*;

#[test]
fn hearing_peers_brings_them_up_and_gains_quorum() {
    let mut c = Spec::new(3).boot();
    c.run_until(ms(50));
    let got = c.reasons(0, 0);
    let up: Vec<_> = got
        .iter()
        .filter(|(k, _)| *k == EventKind::NodeUp)
        .map(|(_, r)| r.to_string())
        .collect();
    assert_eq!(up, ["beta is up", "gamma is up"]);
    let gained = got
        .iter()
        .find(|(k, _)| *k == EventKind::QuorumGained)
        .map(|(_, r)| r.clone());
    assert_eq!(
        gained,
        Some(Reason::Votes {
            present: 2,
            expected: 3
        })
    );
    assert_eq!(c.nodes[0].status(c.now).votes_present, 3);
}

#[test]
fn a_silent_peer_goes_down_by_deadtime_but_not_within_two_intervals() {
    let mut c = settled();
    c.up[2] = false;
    let from = c.mark(0);
    c.run_until(ms(2500) + ms(150));
    assert!(events(&c.actions[0][from..], EventKind::NodeDown).is_empty());
    c.run_until(ms(2500) + ms(1010));
    let down = events(&c.actions[0][from..], EventKind::NodeDown);
    assert_eq!(
        down,
        [Reason::NodeDown {
            peer: "gamma".into()
        }]
    );
    assert_eq!(
        down[0].to_string(),
        "gamma is down: no heartbeat on any link"
    );
    assert_eq!(down[0].tag(), "node-down");
    // Two of three votes remain: alpha keeps quorum and the group.
    assert!(c.nodes[0].status(c.now).quorate);
    assert!(c.nodes[0].owns_running(GroupId(1)));
}

#[test]
fn a_heartbeat_between_warntime_and_deadtime_is_reported_late() {
    let mut c = settled();
    c.silence(1, ms(700));
    c.up[1] = true;
    let from = c.mark(0);
    c.run_until(ms(2500) + ms(900));
    let late = events(&c.actions[0][from..], EventKind::LateHeartbeat);
    let Some(Reason::LateHeartbeat { link: 0, gap }) = late.first().cloned() else {
        panic!("no late heartbeat: {late:?}");
    };
    assert!(gap > ms(500) && gap < ms(1000), "{gap:?}");
}

#[test]
fn a_different_config_digest_is_reported_once() {
    let mut spec = Spec::new(2).0;
    let boot = |seed: u64| Boot {
        incarnation: 1,
        persisted: Some(PersistentState::default()),
        seed,
    };
    let mut alpha = Node::new(spec.clone(), NodeId(1), boot(1), Instant::ZERO);
    spec.digest = 9;
    let mut beta = Node::new(spec, NodeId(2), boot(2), Instant::ZERO);
    let mut mismatches = Vec::new();
    for step in 1..=5u64 {
        let now = Instant::ZERO + ms(step * 100);
        for a in beta.handle(now, Input::Tick) {
            if let Action::Send(hb) = a {
                let out = alpha.handle(
                    now,
                    Input::Heartbeat {
                        link: 0,
                        heartbeat: hb,
                    },
                );
                mismatches.extend(events(&out, EventKind::ConfigMismatch));
            }
        }
    }
    assert_eq!(
        mismatches,
        [Reason::ConfigDigest {
            peer: "beta".into(),
            theirs: 9,
            mine: 7
        }]
    );
}

/// Issue 13: a stall of a few intervals (phi says the link is down) must not make a
/// node-down, lose quorum or move a group; only `deadtime` of silence does.
#[test]
fn a_silence_past_phi_but_short_of_deadtime_is_not_a_node_down() {
    let mut c = settled();
    let from = c.mark(0);
    // 500 ms of silence from beta: five intervals, phi calls the link down.
    c.silence(1, ms(500));
    let status = c.nodes[0].status(c.now);
    let beta = status
        .nodes
        .iter()
        .find(|n| n.name == "beta")
        .expect("beta");
    assert_eq!(beta.links[0].state, "down", "phi called the link down");
    assert_eq!(beta.state, "online", "but beta still counts as up");
    assert_eq!(status.votes_present, 3);
    assert!(events(&c.actions[0][from..], EventKind::NodeDown).is_empty());
    assert_eq!(
        events(&c.actions[0][from..], EventKind::LinkDown).len(),
        1,
        "the link's own state is reported at once"
    );
    c.run_until(ms(2500) + ms(1010));
    let down = events(&c.actions[0][from..], EventKind::NodeDown);
    assert_eq!(down.len(), 1, "down at deadtime of silence: {down:?}");
}

/// ... yet a survivor treats an owner that phi calls gone as gone for ownership: it
/// claims the group at once (its claim waits at the voters for their promises to
/// end) without declaring the owner down.
#[test]
fn a_survivor_claims_from_an_unresponsive_owner_before_declaring_it_down() {
    let mut c = settled();
    let from = c.mark(1);
    c.silence(0, ms(500));
    assert!(events(&c.actions[1][from..], EventKind::NodeDown).is_empty());
    assert!(
        matches!(
            c.nodes[1].groups[0].role,
            Role::Candidate { term: Term(2), .. }
        ),
        "beta claims term 2: {:?}",
        c.nodes[1].groups[0].role
    );
}

/// Issue 14: a witness on link 0 only of two. Its link 1 is absent in every view (not
/// unknown, not down), and even a heartbeat of it that turns up on link 1 (a peer
/// whose config disagrees) never makes that link come up and later go down.
#[test]
fn a_link_a_peer_is_not_on_is_absent_and_never_goes_up_or_down() {
    let mut spec = Spec::new(3).witness(2);
    spec.0.links = 2;
    spec.0.nodes[2].absent_links = vec![1];
    let mut c = spec.boot();
    c.run_until(ms(2500));
    let state =
        |s: &ClusterStatus, node: usize, link: usize| s.nodes[node].links[link].state.clone();
    let alpha = c.nodes[0].status(c.now);
    assert_eq!(alpha.votes_present, 3);
    assert_eq!(state(&alpha, 2, 1), "absent");
    assert_eq!(state(&alpha, 2, 0), "up");
    // The fixture delivers on link 0 only: beta's link 1 was simply never heard.
    assert_eq!(state(&alpha, 1, 1), "unknown");
    let gamma = c.nodes[2].status(c.now);
    assert_eq!(state(&gamma, 2, 1), "absent", "its own entry");
    assert_eq!(state(&gamma, 2, 0), "local");
    assert_eq!(state(&gamma, 0, 1), "absent");

    let stray = c.actions[2]
        .iter()
        .rev()
        .find_map(|a| match a {
            Action::Send(hb) => Some(hb.clone()),
            _ => None,
        })
        .expect("gamma sent heartbeats");
    let from = c.mark(0);
    c.input(
        0,
        Input::Heartbeat {
            link: 1,
            heartbeat: stray,
        },
    );
    c.run_until(ms(6000));
    let about_links: Vec<_> = c
        .reasons(0, from)
        .into_iter()
        .filter(|(k, _)| matches!(k, EventKind::LinkDown | EventKind::LinkUp))
        .collect();
    assert!(about_links.is_empty(), "{about_links:?}");
    assert_eq!(state(&c.nodes[0].status(c.now), 2, 1), "absent");
}

/// The groups a node announced again among `actions`.
fn announced(actions: &[Action]) -> Vec<GroupId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Announce { group } => Some(*group),
            _ => None,
        })
        .collect()
}

fn at(c: &Cluster, later: u64) -> Duration {
    c.now.saturating_since(Instant::ZERO) + ms(later)
}

/// Issue 16 (2): an owner that kept its group through a partition announces its
/// addresses again when the partition heals, once; the peer that came back, which
/// runs nothing, announces nothing.
#[test]
fn an_owner_announces_again_when_a_peer_comes_back() {
    let mut c = settled();
    let (alpha, beta) = (c.mark(0), c.mark(1));
    c.up[1] = false;
    let t = at(&c, 1500);
    c.run_until(t);
    assert_eq!(
        events(&c.actions[0][alpha..], EventKind::NodeDown),
        [Reason::NodeDown {
            peer: "beta".into()
        }]
    );
    assert!(c.nodes[0].owns_running(GroupId(1)), "alpha kept www");
    assert!(
        announced(&c.actions[0][alpha..]).is_empty(),
        "nothing healed yet"
    );
    let healed = c.mark(0);
    c.up[1] = true;
    let t = at(&c, 300);
    c.run_until(t);
    assert_eq!(announced(&c.actions[0][healed..]), [GroupId(1)]);
    assert!(
        announced(&c.actions[1][beta..]).is_empty(),
        "beta runs nothing"
    );
    // Steady again: no more announcements.
    let settled = c.mark(0);
    let t = at(&c, 3000);
    c.run_until(t);
    assert!(announced(&c.actions[0][settled..]).is_empty());
}

/// A peer silent on every link for a few intervals (phi), short of deadtime, is a
/// heal too when it is heard again: a switch that dropped everything for a moment may
/// have flooded or relearnt its tables.
#[test]
fn a_link_back_after_all_were_silent_announces_again() {
    let mut c = settled();
    c.up[2] = false;
    let from = c.mark(0);
    let t = at(&c, 500);
    c.run_until(t);
    assert!(events(&c.actions[0][from..], EventKind::NodeDown).is_empty());
    c.up[2] = true;
    let t = at(&c, 200);
    c.run_until(t);
    assert_eq!(announced(&c.actions[0][from..]), [GroupId(1)]);
}

/// Rate limit: a peer flapping faster than deadtime gets one announcement when it
/// first comes back and one when deadtime has passed since, not one per flap.
#[test]
fn a_flapping_peer_costs_one_announcement_per_deadtime() {
    let mut c = settled();
    let from = c.mark(0);
    let flap = |c: &mut Cluster, silent: u64| {
        c.up[2] = false;
        let t = at(c, silent);
        c.run_until(t);
        c.up[2] = true;
        let t = at(c, 50);
        c.run_until(t);
    };
    flap(&mut c, 500);
    assert_eq!(
        announced(&c.actions[0][from..]),
        [GroupId(1)],
        "the first return announces at once"
    );
    // Back again within the same deadtime (1 s): held back...
    let again = c.mark(0);
    flap(&mut c, 600);
    assert_eq!(
        events(&c.actions[0][from..], EventKind::LinkUp).len(),
        2,
        "gamma came back twice"
    );
    assert!(announced(&c.actions[0][again..]).is_empty(), "held back");
    // ... and announced once when the deadtime since the first ends.
    let t = at(&c, 1000);
    c.run_until(t);
    assert_eq!(announced(&c.actions[0][again..]), [GroupId(1)]);
}

/// Issue 13: a stall of the whole machine (every node stopped at once, as a VM the
/// hypervisor does not run) must not make every node declare every other down the
/// moment it resumes: none of them could have heard anything meanwhile.
#[test]
fn a_stall_of_the_whole_machine_is_not_held_against_the_peers() {
    let mut c = settled();
    let from: Vec<usize> = (0..3).map(|i| c.mark(i)).collect();
    // Nobody runs for 950 ms: with the last heartbeats up to an interval old, every
    // peer's silence is past deadtime (1 s) when the nodes resume.
    c.up = vec![false; 3];
    c.run_until(c.now.saturating_since(Instant::ZERO) + ms(950));
    c.up = vec![true; 3];
    c.run_until(c.now.saturating_since(Instant::ZERO) + ms(300));
    for (i, from) in from.into_iter().enumerate() {
        let seen = &c.actions[i][from..];
        assert_eq!(events(seen, EventKind::NodeDown), [], "node {i}");
        assert_eq!(events(seen, EventKind::QuorumLost), [], "node {i}");
        let paused = events(seen, EventKind::LocalPause);
        assert!(
            matches!(paused.as_slice(), [Reason::LocalPause { pause }] if *pause > ms(800)),
            "node {i}: {paused:?}"
        );
    }
}

/// The pause is excused once, not forever: a peer that stays silent after it is
/// declared down `deadtime` after the node resumed at the latest.
#[test]
fn a_peer_silent_after_a_local_pause_is_still_declared_down() {
    let mut c = settled();
    let from = c.mark(0);
    c.up = vec![false; 3];
    c.run_until(c.now.saturating_since(Instant::ZERO) + ms(500));
    let resumed = c.now;
    c.up = vec![true, true, false];
    c.run_until(resumed.saturating_since(Instant::ZERO) + ms(1000) + ms(20));
    let seen = &c.actions[0][from..];
    assert_eq!(
        events(seen, EventKind::NodeDown),
        [Reason::NodeDown {
            peer: "gamma".into()
        }]
    );
    assert_eq!(events(seen, EventKind::LocalPause).len(), 1);
}
