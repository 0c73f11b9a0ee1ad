//! The lease guard of each node: what the worker reported, when the guard acts on a
//! silent worker, killing the worker, and hangs that only a watchdog ends.

use super::*;

impl Sim {
    /// The worker tells its guard what it may run after every step; the guard arms a
    /// check for the earliest deadline. A renewal moves the deadline later, so a check
    /// that comes early finds nothing due and re-arms.
    pub(super) fn guard_report(&mut self, i: usize) {
        let Some(core) = self.nodes[i].core.as_ref() else {
            return;
        };
        self.nodes[i].guard.table = Guard::report(core, &self.ever_groups);
        self.arm_guard(i);
    }

    pub(super) fn guard_due(&self, i: usize) -> Option<Instant> {
        let late = self.sc.bug == PlantedBug::LateGuard;
        self.nodes[i]
            .guard
            .due(self.sc.spec.timing.guard_lead(), late)
    }

    pub(super) fn arm_guard(&mut self, i: usize) {
        let Some(due) = self.guard_due(i) else {
            return;
        };
        let at = self.real_of(i, due);
        let guard = &mut self.nodes[i].guard;
        if guard.armed.is_some_and(|armed| armed <= at) {
            return;
        }
        guard.gen += 1;
        guard.armed = Some(at);
        let gen = guard.gen;
        self.push(at, Ev::GuardCheck { node: i, gen });
    }

    /// The guard looks at the clock: past the due time of a deadline the worker did not
    /// move (it is paused, hung, or simply did not renew), it acts. A frozen guard
    /// looks again when it thaws.
    pub(super) fn guard_check(&mut self, i: usize) {
        let n = &self.nodes[i];
        if n.core.is_none() || n.vm_paused || n.guard.hung {
            return;
        }
        match self.guard_due(i) {
            Some(due) if due <= self.local(i) => self.guard_act(i, "lease deadline is near"),
            Some(_) => self.arm_guard(i),
            None => {}
        }
    }

    /// The worker dies (crash, OOM kill, exit on a persist error); the machine, its
    /// resources and the guard stay.
    pub(super) fn daemon_crash(&mut self, i: usize) {
        let n = &self.nodes[i];
        // A frozen worker that dies changes nothing: nobody acts for it either way (a
        // hung guard: only the watchdog; a paused VM: nothing runs until it resumes).
        if n.core.is_none() || n.vm_paused || n.guard.hung {
            return;
        }
        self.guard_act(i, "worker died");
    }

    /// SIGKILL of the worker (a no-op if it died), then everything of every group it
    /// reported is killed at once; if something cannot be proven stopped, the guard
    /// powers the machine off. Only what the worker reported is killed: a resource it
    /// ran without telling the guard stays and the invariants see it.
    pub(super) fn guard_act(&mut self, i: usize, why: &str) {
        let groups: Vec<GroupId> = self.nodes[i].guard.table.keys().copied().collect();
        self.note(format!(
            "{}'s guard: {why}: kills the worker and stops {} group(s)",
            self.name(i),
            groups.len()
        ));
        self.outcome.guard_kills.push((i, ms(self.now)));
        let unkillable = if self.chaos_on {
            self.sc.faults.unkillable
        } else {
            0.0
        };
        if !groups.is_empty() && self.rng.random_bool(unkillable) {
            self.note(format!(
                "{}'s guard cannot prove a resource stopped: powers the machine off",
                self.name(i)
            ));
            self.outcome.self_fences.push((i, ms(self.now)));
            self.power_off(i);
            let delay = self.reboot_delay();
            self.push(self.now + delay, Ev::Restart { node: i });
            return;
        }
        self.kill_worker(i);
        let killed: Vec<(GroupId, usize)> = self.nodes[i]
            .running
            .iter()
            .filter(|(g, _)| groups.contains(g))
            .copied()
            .collect();
        for (g, r) in killed {
            self.set_running(i, g, r, false);
        }
        let delay = self.worker_restart_delay();
        self.push(self.now + delay, Ev::Restart { node: i });
    }

    /// The worker process is gone; what it had in memory and in flight with it.
    pub(super) fn kill_worker(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        n.core = None;
        n.daemon_paused = false;
        n.held.clear();
        n.wake_gen += 1;
        n.shutting_down = false;
        n.guard.forget();
    }

    /// The guard restarts its worker after a short back-off (systemd-like).
    pub(super) fn worker_restart_delay(&mut self) -> u64 {
        let t = &self.sc.spec.timing;
        let (lo, hi) = (dur(t.interval), dur(t.deadtime * 2));
        self.rng.random_range(lo..=hi)
    }

    /// The worker and its guard stop (the whole service wedged) while the resources
    /// keep running. The guard fed the watchdog at the latest now, so (worst case) it
    /// resets the machine `watchdog_timeout` from now on the node's clock, unless the
    /// hang ends first.
    pub(super) fn hang(&mut self, i: usize, d: u64) {
        let n = &mut self.nodes[i];
        if n.core.is_none() || n.vm_paused || n.daemon_paused {
            return;
        }
        n.daemon_paused = true;
        n.guard.hung = true;
        n.guard.watchdog_gen += 1;
        let gen = n.guard.watchdog_gen;
        self.push(self.now + d, Ev::Resume { node: i });
        if let Some(timeout) = self.sc.spec.timing.watchdog_timeout {
            let at = self.real_of(i, self.local(i) + timeout);
            self.push(at, Ev::WatchdogFires { node: i, gen });
        }
    }
}
