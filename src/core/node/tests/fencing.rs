//! Fencing: admin fences, results, retries, and takeovers that must fence first.

use super::*;

fn fence_requests(actions: &[Action]) -> Vec<(FenceId, NodeId)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Fence { request, target } => Some((*request, *target)),
            _ => None,
        })
        .collect()
}

#[test]
fn an_admin_fence_runs_at_once_and_its_success_is_reported() {
    let mut c = settled();
    let out = c.input(0, Input::Admin(AdminCommand::Fence { node: NodeId(3) }));
    let fences = fence_requests(&out);
    assert_eq!(fences.len(), 1, "{out:?}");
    assert_eq!(fences[0].1, NodeId(3));
    assert_eq!(
        events(&out, EventKind::FenceRequested),
        [Reason::FencingNow {
            target: "gamma".into()
        }]
    );
    c.up[2] = false;
    let out = c.input(
        0,
        Input::FenceDone {
            request: fences[0].0,
            result: FenceResult::Off,
        },
    );
    assert_eq!(
        events(&out, EventKind::FenceSucceeded),
        [Reason::Fenced {
            target: "gamma".into()
        }]
    );
}

#[test]
fn a_failed_fence_is_retried_after_the_retry_interval() {
    let mut c = settled();
    let out = c.input(0, Input::Admin(AdminCommand::Fence { node: NodeId(3) }));
    let (request, _) = fence_requests(&out)[0];
    let out = c.input(
        0,
        Input::FenceDone {
            request,
            result: FenceResult::Failed("no power switch".into()),
        },
    );
    let failed = events(&out, EventKind::FenceFailed);
    assert_eq!(
        failed[0].to_string(),
        "fencing gamma failed: no power switch; retrying in 500 ms; its groups stay stopped"
    );
    let from = c.mark(0);
    c.run_until(ms(2500) + ms(490));
    assert!(fence_requests(&c.actions[0][from..]).is_empty());
    c.run_until(ms(2500) + ms(510));
    assert_eq!(fence_requests(&c.actions[0][from..]).len(), 1);
}

#[test]
fn two_node_without_fence_agents_waits_for_the_unreachable_peer() {
    let mut c = Spec::new(2).two_node(FenceMode::Off).boot();
    c.up[1] = false;
    c.run_until(ms(3000));
    // alpha never heard beta: it may not take the group without fencing it, and cannot.
    assert_eq!(
        c.nodes[0].reason(GroupId(1)).cloned(),
        Some(Decision::TwoNodeCannotFence {
            peer: "beta".into()
        })
    );
    assert!(!c.nodes[0].runs(GroupId(1)));
}

#[test]
fn two_node_with_fence_agents_fences_the_silent_peer_before_taking_over() {
    let mut c = Spec::new(2).two_node(FenceMode::WhenNeeded).boot();
    c.up[1] = false;
    c.run_until(ms(3000));
    let requested = events(&c.actions[0], EventKind::FenceRequested);
    assert_eq!(
        requested.first(),
        Some(&Reason::FenceFirstIn {
            target: "beta".into(),
            delay: Duration::ZERO
        })
    );
    assert_eq!(fence_requests(&c.actions[0]).len(), 1);
    assert!(
        !c.nodes[0].runs(GroupId(1)),
        "nothing runs before the fence"
    );
}
