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
        let on_fail = self.spec.groups[gi].on_fail;
        let failure_timeout = self.spec.groups[gi].failure_timeout;
        let threshold = self.spec.groups[gi].migration_threshold;
        let res_names = self.spec.groups[gi].resources.clone();
        let me = self.me;
        let g = &mut self.groups[gi];
        let Some((_, idx, kind)) = g.op.take() else {
            return;
        };
        let name = res_names.get(idx).cloned().unwrap_or_default();
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
            (OpKind::Start, _) => {
                // A failed start bans the node from the group (Pacemaker's
                // start-failure-is-fatal) and stops what was started.
                g.res[idx] = Res::Unknown;
                g.failures.push(now);
                g.banned = true;
                g.last_failure = Some(format!("{name}: start {}", describe(&result)));
                out.push(event(
                    EventKind::ResourceFailed,
                    Some(me),
                    Some(g.id),
                    &format!("{name}: start {}; giving the group up", describe(&result)),
                ));
                if let Role::Owner { after_stop, .. } = &mut g.role {
                    *after_stop = Some(AfterStop::Release { handoff_to: None });
                }
                g.goal = Goal::Stop;
                self.send_asap = true;
            }
            (OpKind::Monitor, _) => {
                g.res[idx] = Res::Unknown;
                g.failures.push(now);
                g.failures
                    .retain(|t| now.saturating_since(*t) < failure_timeout);
                g.last_failure = Some(format!("{name}: monitor {}", describe(&result)));
                g.next_monitor = None;
                g.monitor_cursor = None;
                let count = g.failures.len() as u32;
                if count >= threshold {
                    g.banned = true;
                    out.push(event(
                        EventKind::ResourceFailed,
                        Some(me),
                        Some(g.id),
                        &format!(
                            "{name}: monitor {} ({count}/{threshold}): moving the group away",
                            describe(&result)
                        ),
                    ));
                    if let Role::Owner { after_stop, .. } = &mut g.role {
                        *after_stop = Some(AfterStop::Release { handoff_to: None });
                    }
                    g.goal = Goal::Stop;
                    self.send_asap = true;
                } else {
                    out.push(event(
                        EventKind::ResourceFailed,
                        Some(me),
                        Some(g.id),
                        &format!(
                            "{name}: monitor {} ({count}/{threshold}): restarting in place",
                            describe(&result)
                        ),
                    ));
                    g.restart_from = Some(idx);
                }
            }
            (OpKind::Stop, _) => {
                g.res[idx] = Res::Unknown;
                g.last_failure = Some(format!("{name}: stop {}", describe(&result)));
                match on_fail {
                    OnFail::FenceSelf => {
                        self.self_fence(format!("{name}: stop {}", describe(&result)), out);
                    }
                    OnFail::Block => {
                        out.push(event(
                            EventKind::ResourceFailed,
                            Some(me),
                            Some(g.id),
                            &format!(
                                "{name}: stop {}: group blocked until cleanup or fencing",
                                describe(&result)
                            ),
                        ));
                        if let Role::Owner { failed, .. } = &mut g.role {
                            *failed = true;
                        }
                        self.send_asap = true;
                    }
                }
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
            self.send_asap = true;
            out.push(event(
                EventKind::Decision,
                Some(me),
                Some(g.id),
                &format!(
                    "failures here are older than failure_timeout ({} s): eligible again",
                    timeout.as_secs()
                ),
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
        self.groups[gi].op = Some((op, idx, kind));
        out.push(Action::RunOp {
            op,
            group: gid,
            resource: idx,
            kind,
            timeout: None,
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
            self.send_asap = true;
            out.push(Action::Event(Event {
                kind: EventKind::GroupStarted,
                node: Some(me),
                group: Some(g.id),
                term: Some(term),
                reason: "all resources started".into(),
            }));
            out.push(Action::Announce { group: g.id });
            return None;
        }
        if n == 0 {
            return None;
        }
        if let Some(i) = g.monitor_cursor {
            return Some((i.min(n - 1), OpKind::Monitor));
        }
        match g.next_monitor {
            None => {
                g.next_monitor = Some(now + monitor_interval);
                None
            }
            Some(at) if now >= at => {
                g.next_monitor = None;
                g.monitor_cursor = Some(0);
                Some((0, OpKind::Monitor))
            }
            Some(_) => None,
        }
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

pub(super) fn describe(r: &OpResult) -> String {
    match r {
        OpResult::Ok => "succeeded".into(),
        OpResult::NotRunning => "found it not running".into(),
        OpResult::Failed(why) => format!("failed ({why})"),
        OpResult::TimedOut => "timed out".into(),
    }
}
