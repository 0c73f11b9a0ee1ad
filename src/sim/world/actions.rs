//! Carrying out what a core returned: resource operations and fences with their
//! simulated outcomes, and the ground truth of which resources run where.

use super::*;

impl Sim {
    pub(super) fn set_running(&mut self, i: usize, g: GroupId, r: usize, on: bool) {
        let changed = if on {
            self.nodes[i].running.insert((g, r))
        } else {
            self.nodes[i].running.remove(&(g, r))
        };
        if !changed {
            return;
        }
        let any = self.nodes[i].running.iter().any(|(gg, _)| *gg == g);
        let now_ms = ms(self.now);
        if on && !self.run_since.contains_key(&(g, i)) {
            self.run_since.insert((g, i), now_ms);
        }
        if !any {
            self.end_span(g, i, r, now_ms);
        }
    }

    pub(super) fn end_span(&mut self, g: GroupId, i: usize, _r: usize, now_ms: f64) {
        if self.nodes[i].running.iter().any(|(gg, _)| *gg == g) {
            return;
        }
        if let Some(since) = self.run_since.remove(&(g, i)) {
            let name = self.group_name(g);
            self.outcome
                .running_spans
                .push((name, i, since, Some(now_ms)));
        }
    }

    /// Carries out node `i`'s actions in order, until one of them ends the node.
    pub(super) fn apply(&mut self, i: usize, actions: Vec<Action>) -> Result<(), Box<Violation>> {
        for a in actions {
            if self.nodes[i].core.is_none() {
                break;
            }
            match a {
                Action::Send(hb) => self.send(i, hb),
                Action::Persist(state) => self.nodes[i].disk = Some(state),
                Action::RunOp {
                    op,
                    group,
                    resource,
                    kind,
                    ..
                } => {
                    let inc = self.nodes[i].inc;
                    let (delay, result) = self.op_outcome(i, group, resource, kind);
                    self.push(
                        self.now + delay,
                        Ev::OpDone(OpDone {
                            node: i,
                            inc,
                            op,
                            group,
                            resource,
                            kind,
                            result,
                        }),
                    );
                }
                Action::Fence { request, target } => self.fence(i, request, target)?,
                Action::Arbiter(req) => self.ask_arbiter(i, req),
                Action::SelfFence { reason } => {
                    self.note(format!("{} fences itself: {reason}", self.name(i)));
                    self.outcome.self_fences.push((i, ms(self.now)));
                    self.power_off(i);
                    let delay = self.reboot_delay();
                    self.push(self.now + delay, Ev::Restart { node: i });
                    break;
                }
                // An owner announces when its start finishes and again when a peer
                // comes back: only the first is an ownership change (GroupStarted).
                Action::Announce { group } => {
                    let name = self.group_name(group);
                    self.note(format!("{} announces {name}", self.name(i)));
                }
                Action::Event(e) => {
                    let g = e.group.map(|g| self.group_name(g)).unwrap_or_default();
                    if e.kind == crate::core::EventKind::BecameOwner {
                        self.outcome.became_owner.push((g.clone(), i, ms(self.now)));
                    }
                    if e.kind == crate::core::EventKind::GroupStarted {
                        self.outcome.takeovers.push((g.clone(), i, ms(self.now)));
                    }
                    let line = format!("{} [{}] {} {}", self.name(i), e.kind.as_str(), g, e.reason);
                    if self.outcome.events.len() < 10_000 {
                        self.outcome.events.push(line.clone());
                    }
                    self.note(line);
                }
            }
        }
        Ok(())
    }

    /// How long an operation takes and how it ends, drawn from the fault rates (zero
    /// once chaos is over). A start makes the resource run from the moment it begins.
    fn op_outcome(
        &mut self,
        i: usize,
        group: GroupId,
        resource: usize,
        kind: OpKind,
    ) -> (u64, OpResult) {
        let deadtime = dur(self.sc.spec.timing.deadtime);
        let f = &self.sc.faults;
        let (op_fail, op_hang, slow, monitor_fail) = if self.chaos_on {
            (f.op_fail, f.op_hang, f.slow_stop, f.monitor_fail)
        } else {
            (0.0, 0.0, 0.0, 0.0)
        };
        let timeout = 2 * deadtime;
        match kind {
            OpKind::Start => {
                self.set_running(i, group, resource, true);
                if self.rng.random_bool(op_hang) {
                    (timeout, OpResult::TimedOut)
                } else if self.nodes[i].fail_starts || self.rng.random_bool(op_fail) {
                    (
                        self.rng.random_range(1_000_000..50_000_000),
                        OpResult::Failed("exit 1".into()),
                    )
                } else {
                    (self.rng.random_range(1_000_000..50_000_000), OpResult::Ok)
                }
            }
            OpKind::Stop => {
                if self.nodes[i].fail_stops || self.rng.random_bool(op_fail) {
                    (
                        self.rng.random_range(1_000_000..50_000_000),
                        OpResult::Failed("exit 1".into()),
                    )
                } else if self.rng.random_bool(op_hang) {
                    (timeout, OpResult::TimedOut)
                } else if self.rng.random_bool(slow) {
                    (
                        self.rng.random_range(deadtime / 4..deadtime * 3 / 2),
                        OpResult::Ok,
                    )
                } else {
                    (self.rng.random_range(1_000_000..50_000_000), OpResult::Ok)
                }
            }
            OpKind::Monitor => {
                let runs = self.nodes[i].running.contains(&(group, resource));
                let result = if runs && !self.rng.random_bool(monitor_fail) {
                    OpResult::Ok
                } else {
                    OpResult::NotRunning
                };
                (self.rng.random_range(100_000..5_000_000), result)
            }
        }
    }

    /// Node `i` runs its fence agent against `target`; the outcome arrives later.
    fn fence(&mut self, i: usize, request: FenceId, target: NodeId) -> Result<(), Box<Violation>> {
        let Some(t) = self.index_of(target) else {
            return Ok(());
        };
        self.check_fence_has_quorum(i, target)?;
        let deadtime = dur(self.sc.spec.timing.deadtime);
        let inc = self.nodes[i].inc;
        let f = &self.sc.faults;
        let (fail, hang) = if self.chaos_on {
            (f.fence_fail, f.fence_hang)
        } else {
            (0.0, 0.0)
        };
        self.note(format!("{} fences {}", self.name(i), self.name(t)));
        let (delay, result) = if self.nodes[i].fail_fences || self.rng.random_bool(fail) {
            (
                self.rng.random_range(50_000_000..deadtime.max(50_000_001)),
                FenceResult::Failed("agent exit 1".into()),
            )
        } else if self.rng.random_bool(hang) {
            (5 * deadtime, FenceResult::Failed("agent timed out".into()))
        } else {
            (
                self.rng.random_range(50_000_000..deadtime.max(50_000_001)),
                FenceResult::Off,
            )
        };
        self.push(
            self.now + delay,
            Ev::FenceDone {
                node: i,
                inc,
                request,
                target: t,
                result,
            },
        );
        Ok(())
    }
}
