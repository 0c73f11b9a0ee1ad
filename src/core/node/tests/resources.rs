//! Resource runs: start in order, monitors, failures.

use super::*;

fn run_ops(actions: &[Action]) -> Vec<(OpKind, usize)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::RunOp { kind, resource, .. } => Some((*kind, *resource)),
            _ => None,
        })
        .collect()
}

#[test]
fn an_owner_starts_resources_in_order_then_announces() {
    let c = settled();
    let ops = run_ops(&c.actions[0]);
    // Startup cleanup stops everything (from the end), then the owner starts in order.
    assert_eq!(
        ops[..4],
        [
            (OpKind::Stop, 1),
            (OpKind::Stop, 0),
            (OpKind::Start, 0),
            (OpKind::Start, 1)
        ]
    );
    let started = events(&c.actions[0], EventKind::GroupStarted);
    assert_eq!(started, [Reason::GroupStarted]);
    assert!(c.actions[0]
        .iter()
        .any(|a| matches!(a, Action::Announce { group } if *group == GroupId(1))));
}

/// Runs the cluster to the first monitor of `app` on alpha and answers it with `result`.
fn fail_monitor(c: &mut Cluster, result: OpResult) -> Vec<Action> {
    loop {
        let pending = c.ops[0]
            .iter()
            .position(|(_, k, r)| *k == OpKind::Monitor && *r == 1);
        if let Some(i) = pending {
            let (op, _, _) = c.ops[0].remove(i);
            return c.input(0, Input::OpDone { op, result });
        }
        let next = c.now.saturating_since(Instant::ZERO) + ms(10);
        c.run_until(next);
    }
}

#[test]
fn a_failed_monitor_below_the_threshold_restarts_in_place() {
    let mut c = settled();
    let out = fail_monitor(&mut c, OpResult::NotRunning);
    let failed = events(&out, EventKind::ResourceFailed);
    assert_eq!(
        failed[0].to_string(),
        "app: monitor found it not running (1/2): restarting in place"
    );
    assert_eq!(run_ops(&out), [(OpKind::Stop, 1)]);
    assert!(events(&out, EventKind::LostOwnership).is_empty());
}

#[test]
fn a_failed_monitor_at_the_threshold_moves_the_group_away() {
    let mut c = Spec::new(3).group(|g| g.migration_threshold = 1).boot();
    c.run_until(ms(2500));
    let out = fail_monitor(&mut c, OpResult::TimedOut);
    assert_eq!(
        events(&out, EventKind::ResourceFailed),
        [Reason::MonitorFailed {
            resource: "app".into(),
            result: OpResult::TimedOut,
            count: 1,
            threshold: 1,
            moving: true
        }]
    );
    assert_eq!(run_ops(&out), [(OpKind::Stop, 1)]);
    let now = c.now.saturating_since(Instant::ZERO);
    c.run_until(now + ms(2000));
    assert!(!c.nodes[0].runs(GroupId(1)));
    assert!(c.nodes[1].owns_running(GroupId(1)), "beta took over");
}

#[test]
fn a_failed_stop_blocks_the_group() {
    let mut c = settled();
    c.input(
        0,
        Input::Admin(AdminCommand::Standby {
            node: NodeId(1),
            on: true,
        }),
    );
    let (op, kind, idx) = c.ops[0].remove(0);
    assert_eq!((kind, idx), (OpKind::Stop, 1));
    let out = c.input(
        0,
        Input::OpDone {
            op,
            result: OpResult::Failed("exit 1".into()),
        },
    );
    assert_eq!(
        events(&out, EventKind::ResourceFailed)[0].to_string(),
        "app: stop failed (exit 1): group blocked until cleanup or fencing"
    );
    // Blocked: it claims the group as failed, so nobody takes over without a fence.
    let hb = c.nodes[0].build_heartbeat(c.now);
    let www = hb.groups.iter().find(|r| r.group == GroupId(1));
    assert_eq!(www.map(|r| r.phase), Some(Phase::Failed));
    assert!(c.nodes[0].runs(GroupId(1)));
}

fn carrier_lost(resource: &str) -> Input {
    Input::ResourceFault {
        group: GroupId(1),
        resource: resource.into(),
        fault: Fault::NoCarrier {
            interface: "eth0".into(),
        },
    }
}

/// Issue 13: carrier loss on a running vip's interface moves the group at once — no
/// restart in place, no wait for the monitor — and bans the node (what damps a
/// flapping link) until `failure_timeout`.
#[test]
fn a_carrier_loss_hands_the_group_over_at_once_and_bans_the_node() {
    let mut c = settled();
    let out = c.input(0, carrier_lost("ip"));
    let failed = events(&out, EventKind::ResourceFailed);
    assert_eq!(
        failed,
        [Reason::ResourceFault {
            resource: "ip".into(),
            fault: Fault::NoCarrier {
                interface: "eth0".into()
            }
        }]
    );
    assert_eq!(
        failed[0].to_string(),
        "ip: eth0 lost its carrier: moving the group away"
    );
    assert_eq!(failed[0].tag(), "resource-fault-moving");
    assert_eq!(run_ops(&out), [(OpKind::Stop, 1)], "stops from the end");
    // The stops finish; the release names beta (the best other node), which takes over.
    c.run_until(ms(2500) + ms(300));
    assert!(c.nodes[1].owns_running(GroupId(1)), "beta runs www");
    assert!(!c.nodes[0].owns_running(GroupId(1)));
    assert!(c.nodes[0].groups[0].banned, "alpha is banned");
    // Failback does not pull it back while the ban holds.
    c.run_until(ms(2500) + ms(5000));
    assert!(c.nodes[1].owns_running(GroupId(1)), "still on beta");
}

#[test]
fn a_carrier_loss_of_a_resource_not_running_here_changes_nothing() {
    let mut c = settled();
    for (node, resource) in [(1, "ip"), (0, "nonexistent")] {
        let out = c.input(node, carrier_lost(resource));
        assert!(out.iter().all(|a| !matches!(a, Action::RunOp { .. })));
        assert!(events(&out, EventKind::ResourceFailed).is_empty());
    }
    assert!(c.nodes[0].owns_running(GroupId(1)));
    assert!(!c.nodes[1].groups[0].banned);
}

#[test]
fn the_carrier_ban_lifts_with_failure_timeout() {
    let mut c = Spec::new(3).group(|g| g.failure_timeout = ms(3000)).boot();
    c.run_until(ms(2500));
    assert!(c.nodes[0].owns_running(GroupId(1)));
    c.input(0, carrier_lost("ip"));
    c.run_until(ms(2500) + ms(2000));
    assert!(c.nodes[0].groups[0].banned);
    c.run_until(ms(2500) + ms(3100));
    assert!(!c.nodes[0].groups[0].banned, "the failure expired");
}

/// Operations and the term each carries (its fencing token).
fn op_terms(actions: &[Action]) -> Vec<(OpKind, usize, Term)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::RunOp {
                kind,
                resource,
                term,
                ..
            } => Some((*kind, *resource, *term)),
            _ => None,
        })
        .collect()
}

/// Issue 16 (6): every operation carries the term it was decided in: the boot-time
/// clean-up the newest term known (none yet), the owner's starts and monitors the term
/// it owns, and a new owner after a failover its new, higher term.
#[test]
fn every_operation_carries_the_term_it_serves() {
    let mut c = settled();
    let alpha = op_terms(&c.actions[0]);
    let owned = c.nodes[0].known_term(GroupId(1));
    assert_eq!(owned, Term(1));
    assert_eq!(
        alpha[..4],
        [
            (OpKind::Stop, 1, Term(0)),
            (OpKind::Stop, 0, Term(0)),
            (OpKind::Start, 0, owned),
            (OpKind::Start, 1, owned)
        ]
    );
    let from = c.mark(0);
    let _ = fail_monitor(&mut c, OpResult::Ok);
    let monitors = op_terms(&c.actions[0][from..]);
    assert!(!monitors.is_empty());
    assert!(monitors.iter().all(|(_, _, t)| *t == owned), "{monitors:?}");
    // Alpha vanishes; beta takes over in a newer term and starts in it.
    let from = c.mark(1);
    c.up[0] = false;
    let later = c.now.saturating_since(Instant::ZERO) + ms(3000);
    c.run_until(later);
    assert!(c.nodes[1].owns_running(GroupId(1)), "beta took over");
    let newer = c.nodes[1].known_term(GroupId(1));
    assert!(newer > owned, "{newer:?}");
    let starts: Vec<_> = op_terms(&c.actions[1][from..])
        .into_iter()
        .filter(|(k, _, _)| *k == OpKind::Start)
        .collect();
    assert_eq!(
        starts,
        [(OpKind::Start, 0, newer), (OpKind::Start, 1, newer)]
    );
}
