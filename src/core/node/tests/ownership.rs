//! Ownership decisions: who owns, who waits and why, who gives a group up.

use super::*;
use crate::core::decision::{ClaimState, Ineligible, RunsHere};

#[test]
fn the_preferred_node_becomes_owner_and_the_others_say_why_they_wait() {
    let c = settled();
    let owner = events(&c.actions[0], EventKind::BecameOwner);
    assert_eq!(
        owner,
        [Reason::BecameOwner {
            term: Term(1),
            have: 2,
            needed: 2
        }]
    );
    assert_eq!(
        c.nodes[0].reason(GroupId(1)).cloned(),
        Some(Decision::Running {
            me: "alpha".into(),
            why: RunsHere::Preferred
        })
    );
    assert_eq!(
        c.nodes[2].reason(GroupId(1)).cloned(),
        Some(Decision::HeldBy {
            owner: "alpha".into(),
            state: ClaimState::Running
        })
    );
}

#[test]
fn a_node_just_started_waits_out_old_promises() {
    let mut c = Spec::new(3).boot();
    c.run_until(ms(500));
    assert_eq!(
        c.nodes[0].reason(GroupId(1)).cloned(),
        Some(Decision::JustStarted)
    );
}

#[test]
fn standby_on_the_owner_gives_the_group_up_to_the_next_best() {
    let mut c = settled();
    let out = c.input(
        0,
        Input::Admin(AdminCommand::Standby {
            node: NodeId(1),
            on: true,
        }),
    );
    assert_eq!(
        events(&out, EventKind::LostOwnership),
        [Reason::Decision(Decision::GivingUp {
            me: "alpha".into(),
            why: Ineligible::Standby
        })]
    );
    c.run_until(ms(4000));
    assert!(
        c.nodes[1].owns_running(GroupId(1)),
        "beta (lower id) took over"
    );
    // A live owner is the first thing an idle node names, eligible or not.
    assert_eq!(
        c.nodes[0].reason(GroupId(1)).map(|d| d.to_string()),
        Some("running on beta".to_string())
    );
}

#[test]
fn an_owner_cut_off_from_quorum_stops_before_its_lease_ends() {
    let mut c = settled();
    c.up[1] = false;
    c.up[2] = false;
    let from = c.mark(0);
    c.run_until(ms(4000));
    let lost = events(&c.actions[0][from..], EventKind::LostOwnership);
    assert!(
        matches!(
            lost.first(),
            Some(Reason::Decision(
                Decision::LeaseNotRenewed { .. } | Decision::QuorumLost { .. }
            ))
        ),
        "{lost:?}"
    );
    assert!(!c.nodes[0].runs(GroupId(1)));
    assert!(!c.nodes[0].is_self_fenced());
}

#[test]
fn without_failback_the_group_stays_where_it_runs() {
    let mut c = Spec::new(3).group(|g| g.failback = false).boot();
    c.up[0] = false;
    c.run_until(ms(4000));
    assert!(c.nodes[1].owns_running(GroupId(1)));
    c.up[0] = true;
    c.run_until(ms(6000));
    assert!(c.nodes[1].owns_running(GroupId(1)), "no failback");
    assert_eq!(
        c.nodes[1].reason(GroupId(1)).cloned(),
        Some(Decision::FailbackOff { me: "beta".into() })
    );
}
