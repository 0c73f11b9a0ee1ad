//! Faults: the random chaos (crashes, pauses, partitions, link cuts, admin commands,
//! daemon crashes, hangs), healing, the admin's cleanup, and scripted faults.

use super::*;

/// What a random fault does; see the `fault_*` methods.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FaultKind {
    Crash,
    VmPause,
    DaemonPause,
    Partition,
    LinkCut,
    Admin,
    DaemonCrash,
    Hang,
    Arbiter,
}

impl Sim {
    /// One random fault, of a kind the scenario enables, on a random node.
    pub(super) fn inject_fault(&mut self) {
        self.outcome.faults += 1;
        let kinds = self.fault_kinds();
        if kinds.is_empty() {
            return;
        }
        let kind = kinds[self.rng.random_range(0..kinds.len())];
        let node = self.rng.random_range(0..self.nodes.len());
        match kind {
            FaultKind::Crash => self.fault_crash(node),
            FaultKind::VmPause | FaultKind::DaemonPause => self.fault_pause(node, kind),
            FaultKind::Partition => self.fault_partition(node),
            FaultKind::LinkCut => self.fault_link_cut(node),
            FaultKind::Admin => self.fault_admin(node),
            FaultKind::DaemonCrash => self.fault_daemon_crash(node),
            FaultKind::Hang => self.fault_hang(node),
            FaultKind::Arbiter => self.fault_arbiter(node),
        }
    }

    /// The enabled kinds, each once (partitions twice: they are the interesting ones).
    /// The order is part of every seed's replay: a new kind goes at the end.
    fn fault_kinds(&self) -> Vec<FaultKind> {
        let f = &self.sc.faults;
        [
            (f.crash, FaultKind::Crash),
            (f.vm_pause, FaultKind::VmPause),
            (f.daemon_pause, FaultKind::DaemonPause),
            (f.partition, FaultKind::Partition),
            (f.partition, FaultKind::Partition),
            (f.link_cut, FaultKind::LinkCut),
            (f.admin, FaultKind::Admin),
            (f.daemon_crash, FaultKind::DaemonCrash),
            (f.hang, FaultKind::Hang),
            (self.arbiter.is_some(), FaultKind::Arbiter),
            (self.arbiter.is_some(), FaultKind::Arbiter),
        ]
        .into_iter()
        .filter_map(|(enabled, kind)| enabled.then_some(kind))
        .collect()
    }

    fn fault_crash(&mut self, node: usize) {
        let deadtime = dur(self.sc.spec.timing.deadtime);
        if self.nodes[node].core.is_some() {
            self.note(format!("FAULT crash {}", self.name(node)));
            self.power_off(node);
            let delay = self.rng.random_range(deadtime / 2..5 * deadtime);
            self.push(self.now + delay, Ev::Restart { node });
        }
    }

    fn fault_pause(&mut self, node: usize, kind: FaultKind) {
        let deadtime = dur(self.sc.spec.timing.deadtime);
        let nd = &mut self.nodes[node];
        if nd.core.is_some() && !nd.vm_paused && !nd.daemon_paused {
            if kind == FaultKind::VmPause {
                nd.vm_paused = true;
            } else {
                nd.daemon_paused = true;
            }
            let d = self.rng.random_range(deadtime / 4..4 * deadtime);
            self.note(format!(
                "FAULT {} pause {} for {:.0} ms",
                if kind == FaultKind::VmPause {
                    "vm"
                } else {
                    "daemon"
                },
                self.name(node),
                ms(d)
            ));
            self.push(self.now + d, Ev::Resume { node });
        }
    }

    fn fault_partition(&mut self, node: usize) {
        let deadtime = dur(self.sc.spec.timing.deadtime);
        let n = self.nodes.len();
        let mut side: Vec<bool> = (0..n).map(|_| self.rng.random_bool(0.5)).collect();
        side[node] = true;
        let asymmetric = self.rng.random_bool(0.3);
        let link = if self.blocked.len() > 1 && self.rng.random_bool(0.3) {
            Some(self.rng.random_range(0..self.blocked.len()))
        } else {
            None
        };
        let mut pairs = Vec::new();
        for a in 0..n {
            for b in 0..n {
                if side[a] && !side[b] {
                    pairs.push((a, b));
                    if !asymmetric {
                        pairs.push((b, a));
                    }
                }
            }
        }
        self.block(link, &pairs);
        let d = self.rng.random_range(deadtime..6 * deadtime);
        if link.is_none() {
            self.partition_arbiter(&side, self.now + d);
        }
        let a: Vec<String> = (0..n).filter(|i| side[*i]).map(|i| self.name(i)).collect();
        self.note(format!(
            "FAULT {}partition {:?} | rest, link {:?}, for {:.0} ms",
            if asymmetric { "asymmetric " } else { "" },
            a,
            link,
            ms(d)
        ));
        self.push(self.now + d, Ev::Unblock { link, pairs });
    }

    fn fault_link_cut(&mut self, node: usize) {
        let deadtime = dur(self.sc.spec.timing.deadtime);
        let n = self.nodes.len();
        let link = self.rng.random_range(0..self.blocked.len());
        let pairs: Vec<(usize, usize)> = (0..n)
            .filter(|o| *o != node)
            .flat_map(|o| [(node, o), (o, node)])
            .collect();
        self.block(Some(link), &pairs);
        let d = self.rng.random_range(deadtime..6 * deadtime);
        self.note(format!(
            "FAULT cut link {link} of {} for {:.0} ms",
            self.name(node),
            ms(d)
        ));
        self.push(
            self.now + d,
            Ev::Unblock {
                link: Some(link),
                pairs,
            },
        );
    }

    fn fault_daemon_crash(&mut self, node: usize) {
        if self.nodes[node].core.is_some() && !self.nodes[node].vm_paused {
            self.note(format!("FAULT daemon crash {}", self.name(node)));
            self.daemon_crash(node);
        }
    }

    fn fault_hang(&mut self, node: usize) {
        let deadtime = dur(self.sc.spec.timing.deadtime);
        let d = self.rng.random_range(deadtime / 4..6 * deadtime);
        self.note(format!(
            "FAULT hang {} for {:.0} ms",
            self.name(node),
            ms(d)
        ));
        self.hang(node, d);
    }

    fn fault_admin(&mut self, node: usize) {
        let n = self.nodes.len();
        let Some(g) = self.sc.spec.groups.first().map(|g| g.id) else {
            return;
        };
        let target = self.sc.spec.nodes[self.rng.random_range(0..n)].id;
        let lifetime = self
            .rng
            .random_bool(0.5)
            .then(|| Duration::from_millis(self.rng.random_range(100..20_000)));
        let cmd = match self.rng.random_range(0..6) {
            0 => AdminCommand::Standby {
                node: target,
                on: true,
            },
            1 => AdminCommand::Standby {
                node: target,
                on: false,
            },
            2 => AdminCommand::Move {
                group: g,
                to: Some(target),
                lifetime,
            },
            3 => AdminCommand::Ban {
                group: g,
                node: target,
                on: true,
                lifetime,
            },
            4 => AdminCommand::Ban {
                group: g,
                node: target,
                on: false,
                lifetime: None,
            },
            _ => AdminCommand::ClearMove { group: g },
        };
        if self.nodes[node].core.is_some()
            && !self.nodes[node].vm_paused
            && !self.nodes[node].daemon_paused
        {
            self.note(format!("ADMIN on {}: {cmd:?}", self.name(node)));
            let now = self.local(node);
            let _ = self.drive(node, now, Input::Admin(cmd));
        }
    }

    pub(super) fn heal_all(&mut self) -> Result<(), Box<Violation>> {
        self.chaos_on = false;
        self.note("HEAL: faults stop, partitions heal, nodes restart".into());
        for l in &mut self.blocked {
            l.clear();
        }
        self.loss = 0.0;
        self.heal_arbiter();
        for i in 0..self.nodes.len() {
            self.nodes[i].fail_stops = false;
            self.nodes[i].fail_starts = false;
            self.nodes[i].fail_fences = false;
            if self.nodes[i].core.is_none() {
                self.push(self.now, Ev::Restart { node: i });
            } else if self.nodes[i].vm_paused || self.nodes[i].daemon_paused {
                self.push(self.now, Ev::Resume { node: i });
            }
        }
        // An admin cleans up what the chaos left (fail counts, moves, bans, standby) once
        // the healed cluster's views have converged: a command issued on a node whose
        // admin view is stale could lose to a newer entry for the same key.
        let later = self.now + 3 * dur(self.sc.spec.timing.deadtime);
        self.push(later, Ev::AdminCleanup);
        Ok(())
    }

    pub(super) fn admin_cleanup(&mut self) -> Result<(), Box<Violation>> {
        if let Some(i) = (0..self.nodes.len()).find(|i| {
            self.nodes[*i].core.is_some()
                && !self.nodes[*i].vm_paused
                && !self.nodes[*i].daemon_paused
        }) {
            let mut cmds = Vec::new();
            for g in &self.sc.spec.groups {
                cmds.push(AdminCommand::Cleanup { group: g.id });
                cmds.push(AdminCommand::ClearMove { group: g.id });
            }
            for n in &self.sc.spec.nodes {
                cmds.push(AdminCommand::Standby {
                    node: n.id,
                    on: false,
                });
                for g in &self.sc.spec.groups {
                    cmds.push(AdminCommand::Ban {
                        group: g.id,
                        node: n.id,
                        on: false,
                        lifetime: None,
                    });
                }
            }
            for c in cmds {
                let now = self.local(i);
                self.drive(i, now, Input::Admin(c))?;
            }
        }
        Ok(())
    }

    /// The carrier watch of node `i` reports every group's first resource (its vip)
    /// without carrier.
    fn carrier_loss(&mut self, i: usize) -> Result<(), Box<Violation>> {
        let faults: Vec<Input> = self
            .sc
            .spec
            .groups
            .iter()
            .filter_map(|g| {
                Some(Input::ResourceFault {
                    group: g.id,
                    resource: g.resources.first()?.clone(),
                    fault: crate::core::Fault::NoCarrier {
                        interface: "eth0".into(),
                    },
                })
            })
            .collect();
        for input in faults {
            let now = self.local(i);
            self.drive(i, now, input)?;
        }
        Ok(())
    }

    pub(super) fn scripted(&mut self, f: ScriptedFault) -> Result<(), Box<Violation>> {
        self.note(format!("SCRIPT {f:?}"));
        match f {
            ScriptedFault::Crash(i) => {
                if self.nodes[i].core.is_some() {
                    self.power_off(i);
                }
            }
            ScriptedFault::Restart(i) => self.boot(i)?,
            ScriptedFault::VmPause(i, d) | ScriptedFault::DaemonPause(i, d) => {
                if matches!(f, ScriptedFault::VmPause(..)) {
                    self.nodes[i].vm_paused = true;
                } else {
                    self.nodes[i].daemon_paused = true;
                }
                self.push(self.now + dur(d), Ev::Resume { node: i });
            }
            ScriptedFault::Partition(a, b) => {
                let mut pairs = Vec::new();
                for x in &a {
                    for y in &b {
                        pairs.push((*x, *y));
                        pairs.push((*y, *x));
                    }
                }
                self.block(None, &pairs);
            }
            ScriptedFault::OneWay(from, to) => {
                let pairs: Vec<(usize, usize)> = from
                    .iter()
                    .flat_map(|x| to.iter().map(|y| (*x, *y)))
                    .collect();
                self.block(None, &pairs);
            }
            ScriptedFault::Heal => {
                for l in &mut self.blocked {
                    l.clear();
                }
            }
            ScriptedFault::Connect(a, b) => {
                for l in &mut self.blocked {
                    l.retain(|(x, y)| {
                        !(a.contains(x) && b.contains(y) || a.contains(y) && b.contains(x))
                    });
                }
            }
            ScriptedFault::Admin(i, cmd) => {
                if let crate::core::AdminCommand::Fence { node } = &cmd {
                    self.nodes[i].admin_fences.insert(*node);
                }
                let now = self.local(i);
                self.drive(i, now, Input::Admin(cmd))?;
            }
            ScriptedFault::FailStops(i) => self.nodes[i].fail_stops = true,
            ScriptedFault::FailStarts(i, on) => self.nodes[i].fail_starts = on,
            ScriptedFault::FailFences(i) => self.nodes[i].fail_fences = true,
            ScriptedFault::CarrierLoss(i) => self.carrier_loss(i)?,
            ScriptedFault::DaemonCrash(i) => self.daemon_crash(i),
            ScriptedFault::Hang(i, d) => self.hang(i, dur(d)),
            ScriptedFault::Shutdown(i) => {
                let now = self.local(i);
                if let Some(core) = self.nodes[i].core.as_mut() {
                    let actions = core.leave(now);
                    self.nodes[i].shutting_down = true;
                    self.settle(i, actions)?;
                }
            }
            ScriptedFault::Reload(i, spec) => {
                // The newest config is what liveness is judged against.
                for g in &spec.groups {
                    if !self.ever_groups.iter().any(|e| e.id == g.id) {
                        self.ever_groups.push(g.clone());
                    }
                }
                // A node that (re)starts from now on reads the new file.
                self.sc.spec = (*spec).clone();
                let now = self.local(i);
                if let Some(core) = self.nodes[i].core.as_mut() {
                    match core.reconfigure(now, *spec) {
                        Ok(actions) => self.settle(i, actions)?,
                        Err(e) => self.note(format!("reload refused on node {i}: {e}")),
                    }
                }
            }
            ScriptedFault::ArbiterSlow(d) => self.arbiter_slow(dur(d)),
            ScriptedFault::ArbiterCut(i, d) => self.arbiter_cut(i, dur(d)),
        }
        Ok(())
    }
}
