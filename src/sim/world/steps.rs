//! The step loop's events, and the worker process's life on a node: boot, power-off,
//! pause and resume, and feeding the core its inputs.

use super::*;

impl Sim {
    /// One event of the queue.
    pub(super) fn step(&mut self, ev: Ev) -> Result<(), Box<Violation>> {
        match ev {
            Ev::Deliver { to, link, hb } => {
                let n = &self.nodes[to];
                if n.core.is_none() || n.vm_paused || n.daemon_paused {
                    return Ok(());
                }
                let now = self.local(to);
                self.drive(
                    to,
                    now,
                    Input::Heartbeat {
                        link,
                        heartbeat: *hb,
                    },
                )?;
            }
            Ev::Wake { node, gen } => {
                let n = &self.nodes[node];
                if n.wake_gen != gen || n.core.is_none() || n.vm_paused || n.daemon_paused {
                    return Ok(());
                }
                let now = self.local(node);
                self.drive(node, now, Input::Tick)?;
            }
            Ev::OpDone(done) => self.op_done(done)?,
            Ev::FenceDone {
                node,
                inc,
                request,
                target,
                result,
            } => self.fence_done(node, inc, request, target, result)?,
            Ev::Restart { node } => self.boot(node)?,
            Ev::Resume { node } => self.resume(node)?,
            Ev::GuardCheck { node, gen } => {
                if self.nodes[node].guard.gen == gen {
                    self.nodes[node].guard.armed = None;
                    self.guard_check(node);
                }
            }
            Ev::WatchdogFires { node, gen } => self.watchdog_fires(node, gen),
            Ev::Fault => {
                if self.chaos_on {
                    self.inject_fault();
                    let gap = self.fault_gap();
                    self.push(self.now + gap, Ev::Fault);
                }
            }
            Ev::Unblock { link, pairs } => self.unblock(link, &pairs),
            Ev::ArbiterArrive { node, inc, req } => self.arbiter_arrive(node, inc, req),
            Ev::ArbiterAnswer {
                node,
                inc,
                asked_at,
                answer,
            } => self.arbiter_answer(node, inc, asked_at, answer)?,
            Ev::HealAll => self.heal_all()?,
            Ev::OwnerLoss => self.owner_loss(),
            Ev::AdminCleanup => self.admin_cleanup()?,
            Ev::Script(f) => self.scripted(f)?,
            Ev::End => {}
        }
        Ok(())
    }

    /// The ground truth changes when the operation ends, even while the daemon is
    /// frozen (a stop that succeeded stopped the service); the daemon learns of it
    /// when it runs again. A paused VM runs nothing, so there it all waits.
    fn op_done(&mut self, done: OpDone) -> Result<(), Box<Violation>> {
        let node = done.node;
        if self.nodes[node].inc != done.inc || self.nodes[node].core.is_none() {
            return Ok(());
        }
        if self.nodes[node].vm_paused {
            self.nodes[node].held.push(Ev::OpDone(done));
            return Ok(());
        }
        match (done.kind, &done.result) {
            (OpKind::Stop, OpResult::Ok) => {
                self.set_running(node, done.group, done.resource, false);
            }
            (OpKind::Monitor, OpResult::NotRunning) => {
                self.set_running(node, done.group, done.resource, false);
            }
            _ => {}
        }
        if self.nodes[node].daemon_paused {
            self.nodes[node].held.push(Ev::OpDone(done));
            return Ok(());
        }
        let OpDone {
            op,
            group,
            resource,
            kind,
            result,
            ..
        } = done;
        self.note(format!(
            "{} {kind:?} {}#{resource} -> {result:?}",
            self.name(node),
            self.group_name(group)
        ));
        let now = self.local(node);
        self.drive(node, now, Input::OpDone { op, result })
    }

    /// A fence agent finished: a success powers the target off at once, whatever
    /// state the node that asked is in.
    fn fence_done(
        &mut self,
        node: usize,
        inc: u64,
        request: FenceId,
        target: usize,
        result: FenceResult,
    ) -> Result<(), Box<Violation>> {
        if self.nodes[node].inc != inc || self.nodes[node].core.is_none() {
            return Ok(());
        }
        if result == FenceResult::Off {
            self.note(format!("{} fenced {}", self.name(node), self.name(target)));
            self.outcome.fences.push((target, ms(self.now)));
            if self.nodes[target].core.is_some() {
                self.power_off(target);
                let delay = self.reboot_delay();
                self.push(self.now + delay, Ev::Restart { node: target });
            }
        }
        let held = Ev::FenceDone {
            node,
            inc,
            request,
            target,
            result: result.clone(),
        };
        self.drive_or_hold(node, Input::FenceDone { request, result }, held)
    }

    /// An answer for the node's daemon: driven now, or kept as `held` (stepped again
    /// by [`Sim::resume`]) while its VM or the daemon itself is paused.
    pub(super) fn drive_or_hold(
        &mut self,
        node: usize,
        input: Input,
        held: Ev,
    ) -> Result<(), Box<Violation>> {
        let n = &mut self.nodes[node];
        if n.vm_paused || n.daemon_paused {
            n.held.push(held);
            return Ok(());
        }
        let now = self.local(node);
        self.drive(node, now, input)
    }

    fn watchdog_fires(&mut self, node: usize, gen: u64) {
        let n = &self.nodes[node];
        if n.guard.watchdog_gen == gen && n.guard.hung && n.core.is_some() {
            self.note(format!("{}'s watchdog resets it", self.name(node)));
            self.outcome.watchdog_resets.push((node, ms(self.now)));
            self.power_off(node);
            let delay = self.reboot_delay();
            self.push(self.now + delay, Ev::Restart { node });
        }
    }

    /// The end of a pause (or hang). A guard that was frozen too acts first if its
    /// deadline passed meanwhile: it runs at real-time priority, before the worker.
    pub(super) fn resume(&mut self, node: usize) -> Result<(), Box<Violation>> {
        let n = &mut self.nodes[node];
        if n.core.is_none() || !(n.vm_paused || n.daemon_paused) {
            return Ok(());
        }
        n.vm_paused = false;
        n.daemon_paused = false;
        n.guard.hung = false;
        n.guard.watchdog_gen += 1;
        let held = std::mem::take(&mut n.held);
        self.note(format!("{} resumes", self.name(node)));
        self.guard_check(node);
        if self.nodes[node].core.is_none() {
            return Ok(());
        }
        let now = self.local(node);
        self.drive(node, now, Input::Tick)?;
        for ev in held {
            self.step(ev)?;
        }
        Ok(())
    }

    pub(super) fn reboot_delay(&mut self) -> u64 {
        let d = dur(self.sc.spec.timing.deadtime);
        self.rng.random_range(d..=3 * d)
    }

    pub(super) fn boot(&mut self, i: usize) -> Result<(), Box<Violation>> {
        if self.nodes[i].core.is_some() {
            return Ok(());
        }
        let lost_power = std::mem::take(&mut self.nodes[i].lost_power);
        if lost_power
            && self.chaos_on
            && self.rng.random_bool(self.sc.faults.disk_loss)
            && self.nodes[i].inc > 0
        {
            self.nodes[i].disk = None;
            self.terms[i].clear();
            self.note(format!("{} lost its state file", self.name(i)));
        }
        self.nodes[i].inc += 1;
        let boot = Boot {
            incarnation: self.nodes[i].inc,
            persisted: self.nodes[i].disk.clone(),
            seed: self.rng.random(),
        };
        let now = self.local(i);
        let mut core = Node::new(self.sc.spec.clone(), self.nodes[i].id, boot, now);
        core.plant_bug(self.sc.bug);
        self.nodes[i].core = Some(core);
        self.note(format!(
            "{} boots (incarnation {})",
            self.name(i),
            self.nodes[i].inc
        ));
        self.drive(i, now, Input::Tick)
    }

    pub(super) fn power_off(&mut self, i: usize) {
        let now_ms = ms(self.now);
        // The worker dies with the machine; power loss adds: no paused VM to resume,
        // a disk that may be lost at boot (`lost_power`), and no processes left.
        self.kill_worker(i);
        let n = &mut self.nodes[i];
        n.vm_paused = false;
        n.lost_power = true;
        let gone: Vec<(GroupId, usize)> = n.running.iter().copied().collect();
        n.running.clear();
        for (g, r) in gone {
            self.end_span(g, i, r, now_ms);
        }
        self.note(format!("{} powers off", self.name(i)));
    }

    /// Feed one input to a node and carry out everything it returns.
    pub(super) fn drive(
        &mut self,
        i: usize,
        now: Instant,
        input: Input,
    ) -> Result<(), Box<Violation>> {
        let Some(core) = self.nodes[i].core.as_mut() else {
            return Ok(());
        };
        let actions = core.handle(now, input);
        self.settle(i, actions)
    }

    /// Carries out what node `i`'s core returned, checks it, and arms its next wake-up.
    pub(super) fn settle(&mut self, i: usize, actions: Vec<Action>) -> Result<(), Box<Violation>> {
        self.apply(i, actions)?;
        self.check_terms(i)?;
        self.exit_if_quiet(i);
        self.schedule_wake(i);
        self.guard_report(i);
        Ok(())
    }

    /// A daemon shutting down exits once nothing runs here any more. Resources still
    /// running at that point would be left behind: power_off models exactly that, and
    /// the safety checks would see them overlap with the next owner.
    pub(super) fn exit_if_quiet(&mut self, i: usize) {
        let quiet = self.nodes[i].core.as_ref().is_some_and(|c| c.is_quiet());
        if self.nodes[i].shutting_down && quiet {
            // Like the daemon: linger three intervals so the release goes out.
            self.nodes[i].shutting_down = false;
            let linger = dur(self.sc.spec.timing.interval * 3);
            self.push(self.now + linger, Ev::Script(ScriptedFault::Crash(i)));
            self.note(format!(
                "{} quiet after a clean shutdown: exits soon",
                self.name(i)
            ));
        }
    }

    pub(super) fn schedule_wake(&mut self, i: usize) {
        let Some(core) = self.nodes[i].core.as_ref() else {
            return;
        };
        let at = if self.sc.coarse_wakes {
            core.next_wake()
        } else {
            core.next_deadline().map(|(at, _why)| at)
        };
        let Some(at) = at else {
            return;
        };
        let real = self.real_of(i, at);
        self.nodes[i].wake_gen += 1;
        let gen = self.nodes[i].wake_gen;
        self.push(real, Ev::Wake { node: i, gen });
    }
}
