//! Resource runs: one operation at a time per group (start in order, stop in reverse,
//! monitor sweeps), and what a failed operation means (restart, ban, block, self-fence).

use super::*;

impl Node {
    pub(super) fn on_op_done(
        &mut self,
        now: Instant,
        op: OpId,
        result: OpResult,
        out: &mut Vec<Action>,
    ) {
        let Some(gi) = self
            .groups
            .iter()
            .position(|g| g.op.is_some_and(|(id, _, _)| id == op))
        else {
            return;
        };
        let Some((_, idx, kind)) = self.groups[gi].op.take() else {
            return;
        };
        let g = &mut self.groups[gi];
        match (kind, &result) {
            (OpKind::Start, OpResult::Ok) => g.res[idx] = Res::Running,
            (OpKind::Stop, OpResult::Ok | OpResult::NotRunning) => g.res[idx] = Res::Stopped,
            (OpKind::Monitor, OpResult::Ok) => {
                g.res[idx] = Res::Running;
                if idx + 1 >= g.res.len() {
                    g.monitor_cursor = None;
                    g.next_monitor = Some(now + self.spec.groups[gi].monitor_interval);
                } else {
                    g.monitor_cursor = Some(idx + 1);
                }
            }
            (kind, _) => {
                let failed = FailedOp {
                    gi,
                    idx,
                    resource: self.resource_name(gi, idx),
                    result,
                };
                match kind {
                    OpKind::Start => self.start_failed(now, failed, out),
                    OpKind::Monitor => self.monitor_failed(now, failed, out),
                    OpKind::Stop => self.stop_failed(failed, out),
                }
            }
        }
    }

    fn resource_name(&self, gi: usize, idx: usize) -> String {
        self.spec.groups[gi]
            .resources
            .get(idx)
            .cloned()
            .unwrap_or_default()
    }

    /// A failed start bans the node from the group (Pacemaker's start-failure-is-fatal)
    /// and stops what was started.
    fn start_failed(&mut self, now: Instant, failed: FailedOp, out: &mut Vec<Action>) {
        let (gi, idx) = (failed.gi, failed.idx);
        let (resource, result) = (failed.resource, failed.result);
        let me = self.me;
        let g = &mut self.groups[gi];
        g.failed_at(now, idx, format!("{resource}: start {}", describe(&result)));
        g.banned = true;
        let reason = Reason::StartFailed { resource, result };
        out.push(event(
            EventKind::ResourceFailed,
            Some(me),
            Some(g.id),
            reason,
        ));
        g.give_up();
        self.sending.asap = true;
    }

    /// A failed monitor restarts the group in place, or moves it away once the group's
    /// `migration_threshold` of recent failures is reached.
    fn monitor_failed(&mut self, now: Instant, failed: FailedOp, out: &mut Vec<Action>) {
        let (gi, idx) = (failed.gi, failed.idx);
        let (resource, result) = (failed.resource, failed.result);
        let gs = &self.spec.groups[gi];
        let (failure_timeout, threshold) = (gs.failure_timeout, gs.migration_threshold);
        let me = self.me;
        let g = &mut self.groups[gi];
        g.failed_at(
            now,
            idx,
            format!("{resource}: monitor {}", describe(&result)),
        );
        g.failures
            .retain(|t| now.saturating_since(*t) < failure_timeout);
        g.next_monitor = None;
        g.monitor_cursor = None;
        let count = g.failures.len() as u32;
        let moving = count >= threshold;
        if moving {
            g.banned = true;
        }
        let reason = Reason::MonitorFailed {
            resource,
            result,
            count,
            threshold,
            moving,
        };
        out.push(event(
            EventKind::ResourceFailed,
            Some(me),
            Some(g.id),
            reason,
        ));
        if moving {
            g.give_up();
            self.sending.asap = true;
        } else {
            g.restart_from = Some(idx);
        }
    }

    /// A running resource failed outside of an operation (its interface lost carrier):
    /// no restart in place (the start would fail the same way) — the failure is counted
    /// like a monitor's, this node is banned from the group until its failures expire
    /// (`failure_timeout`), and the group is stopped and handed to the best other node
    /// as a `move` would. The ban is what damps a flapping link: the group does not come
    /// back here, even with failback, before `failure_timeout`. A fault for a resource
    /// this node does not run (a standby's interface, a group stopping) changes nothing.
    pub(super) fn on_resource_fault(
        &mut self,
        now: Instant,
        group: GroupId,
        resource: &str,
        fault: Fault,
        out: &mut Vec<Action>,
    ) {
        let Some(gi) = self.groups.iter().position(|g| g.id == group) else {
            return;
        };
        let Some(idx) = self.spec.groups[gi]
            .resources
            .iter()
            .position(|r| r == resource)
        else {
            return;
        };
        let g = &self.groups[gi];
        let holding = matches!(
            g.role,
            Role::Owner {
                after_stop: None,
                failed: false,
                ..
            }
        );
        if !holding || g.res[idx] != Res::Running || self.maintenance(group) {
            return;
        }
        let to = self.best_node(now, group, Some(self.me));
        let failure_timeout = self.spec.groups[gi].failure_timeout;
        let g = &mut self.groups[gi];
        g.failed_at(now, idx, format!("{resource}: {fault}"));
        g.failures
            .retain(|t| now.saturating_since(*t) < failure_timeout);
        g.banned = true;
        g.next_monitor = None;
        g.monitor_cursor = None;
        if let Role::Owner { after_stop, .. } = &mut g.role {
            *after_stop = Some(AfterStop::Release { handoff_to: to });
        }
        g.goal = Goal::Stop;
        let reason = Reason::ResourceFault {
            resource: resource.to_string(),
            fault,
        };
        out.push(event(
            EventKind::ResourceFailed,
            Some(self.me),
            Some(group),
            reason,
        ));
        self.sending.asap = true;
    }

    /// A failed stop leaves the resource in an unknown state: fence this node, or block
    /// the group until a fence or a cleanup, as the group's `on_fail` says.
    fn stop_failed(&mut self, failed: FailedOp, out: &mut Vec<Action>) {
        let (gi, idx) = (failed.gi, failed.idx);
        let (resource, result) = (failed.resource, failed.result);
        let on_fail = self.spec.groups[gi].on_fail;
        let me = self.me;
        let g = &mut self.groups[gi];
        g.res[idx] = Res::Unknown;
        g.last_failure = Some(format!("{resource}: stop {}", describe(&result)));
        match on_fail {
            OnFail::FenceSelf => {
                self.self_fence(Reason::StopFailedFenceSelf { resource, result }, out);
            }
            OnFail::Block => {
                let reason = Reason::StopFailed { resource, result };
                out.push(event(
                    EventKind::ResourceFailed,
                    Some(me),
                    Some(g.id),
                    reason,
                ));
                if let Role::Owner { failed, .. } = &mut g.role {
                    *failed = true;
                }
                self.sending.asap = true;
            }
        }
    }

    /// Forgets failures older than the group's `failure_timeout`, and with the last of
    /// them the ban they caused (Pacemaker's failure-timeout): a node that failed a group
    /// becomes eligible again without an admin, once the failure is old news. A
    /// `tandemctl cleanup` does the same at once.
    pub(super) fn expire_failures(&mut self, now: Instant, out: &mut Vec<Action>) {
        let me = self.me;
        for (gi, g) in self.groups.iter_mut().enumerate() {
            let Some(timeout) = self.spec.groups.get(gi).map(|s| s.failure_timeout) else {
                continue;
            };
            let before = g.failures.len();
            g.failures.retain(|t| now.saturating_since(*t) < timeout);
            if g.failures.len() == before || !g.failures.is_empty() || !g.banned {
                continue;
            }
            g.banned = false;
            g.last_failure = None;
            self.sending.asap = true;
            out.push(event(
                EventKind::Decision,
                Some(me),
                Some(g.id),
                Reason::FailuresExpired { timeout },
            ));
        }
    }

    /// Issue the next resource operation of a group, if any is due: stop from the end
    /// (restart in place, or the goal is Stop), start from the front, or the next step of
    /// a monitor sweep. One operation at a time per group.
    pub(super) fn drive_resources(&mut self, now: Instant, gi: usize, out: &mut Vec<Action>) {
        let gid = self.groups[gi].id;
        if self.maintenance(gid) || self.groups[gi].op.is_some() {
            return;
        }
        self.apply_pending(gi);
        let Some((idx, kind)) = self.next_op(now, gi, out) else {
            return;
        };
        let op = OpId(self.fresh_id());
        let g = &mut self.groups[gi];
        g.op = Some((op, idx, kind));
        out.push(Action::RunOp {
            op,
            group: gid,
            resource: idx,
            kind,
            timeout: None,
            term: g.op_term(),
        });
    }

    pub(super) fn next_op(
        &mut self,
        now: Instant,
        gi: usize,
        out: &mut Vec<Action>,
    ) -> Option<(usize, OpKind)> {
        let me = self.me;
        let monitor_interval = self.spec.groups[gi].monitor_interval;
        let g = &mut self.groups[gi];
        let n = g.res.len();
        // Blocked after a failed stop: leave everything as it is until a fence or a
        // cleanup.
        if matches!(g.role, Role::Owner { failed: true, .. }) {
            return None;
        }
        if let Some(from) = g.restart_from {
            if let Some(i) = (from..n).rev().find(|i| g.res[*i] != Res::Stopped) {
                return Some((i, OpKind::Stop));
            }
            g.restart_from = None;
        }
        if g.goal == Goal::Stop {
            return (0..n)
                .rev()
                .find(|i| g.res[*i] != Res::Stopped)
                .map(|i| (i, OpKind::Stop));
        }
        let Role::Owner {
            term,
            after_stop: None,
            failed: false,
            ..
        } = g.role
        else {
            return None;
        };
        if let Some(i) = (0..n).find(|i| g.res[*i] != Res::Running) {
            return Some((i, OpKind::Start));
        }
        if g.known.phase == Phase::Starting && g.known.owner == Some(me) && g.known.term == term {
            g.known.phase = Phase::Running;
            g.monitor_cursor = None;
            g.next_monitor = Some(now + monitor_interval);
            self.sending.asap = true;
            out.push(Action::Event(Event {
                kind: EventKind::GroupStarted,
                node: Some(me),
                group: Some(g.id),
                term: Some(term),
                reason: Reason::GroupStarted,
            }));
            out.push(Action::Announce { group: g.id });
            return None;
        }
        g.next_monitor_op(now, monitor_interval)
    }

    /// A reload's new resources replace the old ones once the old ones stopped.
    pub(super) fn apply_pending(&mut self, gi: usize) {
        let g = &mut self.groups[gi];
        if g.pending.is_none() || g.op.is_some() || g.res.iter().any(|r| *r != Res::Stopped) {
            return;
        }
        if let Some(new) = g.pending.take() {
            g.res = vec![Res::Stopped; new.resources.len()];
            g.restart_from = None;
            g.monitor_cursor = None;
            self.spec.groups[gi] = new;
        }
    }
}

/// An operation that did not succeed: which group (index) and resource, and how.
struct FailedOp {
    gi: usize,
    idx: usize,
    resource: String,
    result: OpResult,
}
