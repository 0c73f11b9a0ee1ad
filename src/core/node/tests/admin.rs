//! Admin commands and reconfiguration.

use super::*;
use crate::core::admin_state::AdminKey;
use crate::core::reason::Refusal;

/// `tandemctl move www [--to NODE] [--lifetime D]`, as the core receives it.
fn move_www(to: Option<u16>, lifetime: Option<Duration>) -> Input {
    Input::Admin(AdminCommand::Move {
        group: GroupId(1),
        to: to.map(NodeId),
        lifetime,
    })
}

#[test]
fn a_move_to_a_witness_is_refused_and_records_nothing() {
    let mut c = Spec::new(3).witness(2).boot();
    c.run_until(ms(2500));
    let out = c.input(0, move_www(Some(3), None));
    let admin = events(&out, EventKind::Admin);
    let refusal = Reason::MoveRefused(Refusal::Witness {
        node: "gamma".into(),
    });
    assert_eq!(admin.as_slice(), std::slice::from_ref(&refusal));
    assert!(refusal.refuses_move());
    assert_eq!(refusal.to_string(), "move refused: gamma is a witness");
    assert!(!out.iter().any(|a| matches!(a, Action::Persist(_))));
}

#[test]
fn a_move_without_another_eligible_node_says_so() {
    let mut c = Spec::new(3).witness(1).witness(2).boot();
    c.run_until(ms(2500));
    let out = c.input(0, move_www(None, None));
    assert_eq!(events(&out, EventKind::Admin), [Reason::MoveNoTarget]);
}

#[test]
fn a_move_hands_the_group_over_to_its_target() {
    let mut c = settled();
    let from = c.mark(0);
    let out = c.input(0, move_www(Some(2), None));
    assert_eq!(
        events(&out, EventKind::Admin),
        [Reason::Admin(AdminChange::MoveTo { target: NodeId(2) })]
    );
    let lost = events(&c.actions[0][from..], EventKind::LostOwnership);
    assert_eq!(
        lost,
        [Reason::Decision(Decision::MovingTo {
            target: "beta".into()
        })]
    );
    c.run_until(ms(4000));
    assert!(c.nodes[1].owns_running(GroupId(1)), "beta owns www");
    assert!(!c.nodes[0].runs(GroupId(1)));
}

#[test]
fn a_ban_moves_the_group_off_its_owner_and_a_move_there_is_refused() {
    let mut c = settled();
    let ban = AdminCommand::Ban {
        group: GroupId(1),
        node: NodeId(1),
        on: true,
        lifetime: None,
    };
    let out = c.input(1, Input::Admin(ban));
    assert_eq!(
        events(&out, EventKind::Admin),
        [Reason::Admin(AdminChange::Ban {
            node: "alpha".into(),
            on: true
        })]
    );
    c.run_until(ms(5000));
    assert!(!c.nodes[0].runs(GroupId(1)), "alpha no longer runs www");
    assert!(
        c.nodes[1].owns_running(GroupId(1)),
        "beta, next in rank, owns www"
    );
    let status = c.nodes[2].status(c.now);
    let bans: Vec<_> = status
        .constraints
        .iter()
        .filter(|k| k.kind == "ban")
        .collect();
    assert_eq!(bans.len(), 1, "{status:?}");
    assert_eq!(
        (
            bans[0].node.as_deref(),
            bans[0].group.as_deref(),
            bans[0].left_ms
        ),
        (Some("alpha"), Some("www"), None)
    );
    assert_eq!(bans[0].set_on, "beta");
    let out = c.input(2, move_www(Some(1), None));
    assert_eq!(
        events(&out, EventKind::Admin),
        [Reason::MoveRefused(Refusal::Banned {
            node: "alpha".into()
        })]
    );
}

#[test]
fn a_move_with_a_lifetime_lapses_by_itself_on_every_node_and_says_so() {
    let mut c = settled();
    let from = c.mark(2);
    c.input(0, move_www(Some(2), Some(ms(3000))));
    c.run_until(ms(4000));
    assert!(c.nodes[1].owns_running(GroupId(1)), "beta owns www");
    for n in &c.nodes {
        let left = n.status(c.now).constraints.first().and_then(|k| k.left_ms);
        assert!(left.is_some_and(|l| l > 0 && l <= 2000), "{left:?}");
    }
    c.run_until(ms(6000));
    for n in &c.nodes {
        assert!(n.status(c.now).constraints.is_empty(), "the move lapsed");
    }
    let expired = Reason::Admin(AdminChange::Expired {
        key: AdminKey::Move(GroupId(1)),
    });
    assert!(
        events(&c.actions[2][from..], EventKind::Admin).contains(&expired),
        "gamma says so"
    );
    assert_eq!(expired.to_string(), "move expired (its lifetime ran out)");
}

#[test]
fn a_reload_that_changes_the_links_needs_a_restart() {
    let mut c = settled();
    let mut spec = c.nodes[0].spec().clone();
    spec.links = 2;
    let err = c.nodes[0].reconfigure(c.now, spec).err();
    assert_eq!(
        err,
        Some(ReconfigureError::NeedsRestart(
            "the number of heartbeat links changed".into()
        ))
    );
}

#[test]
fn a_reload_that_removes_the_group_stops_it() {
    let mut c = settled();
    let mut spec = c.nodes[0].spec().clone();
    spec.groups.clear();
    let out = c.nodes[0]
        .reconfigure(c.now, spec)
        .expect("policy reloads apply");
    assert_eq!(events(&out, EventKind::Decision)[0], Reason::GroupRemoved);
    assert!(c.nodes[0].uses_previous_spec(GroupId(1)));
}
