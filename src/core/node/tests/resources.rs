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
