//! Carrying out a chaos schedule: injecting each fault (or skipping it), healing it when
//! its time is up, and the janitor that reboots nodes found dark (fenced, self-fenced).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::thread;
use std::time::{Duration, Instant};

use super::analysis::log_events;
use super::report::{InjectedFault, NodeEvent, SkippedFault};
use super::schedule::{FaultKind, PlannedFault, Target};
use super::{ChaosConfig, REBOOT_DELAY};
use crate::lab::experiment::{self, ExperimentError};
use crate::lab::observe::client::ClientObserver;
use crate::lab::observe::realtime_ns;
use crate::lab::topology::clear_vip;
use crate::lab::{Lab, Ns};

pub(super) struct Active {
    fault: usize,
    kind: FaultKind,
    nodes: Vec<usize>,
    link: usize,
    heal_at: Instant,
}

impl Active {
    /// Whether a fault of `kind` on `nodes` would interfere with this one in the switch
    /// rules (the lab keeps one partition, one loss rate, one set of cut links).
    fn conflicts(&self, kind: FaultKind, nodes: &[usize]) -> bool {
        let cuts = |k: FaultKind| matches!(k, FaultKind::CutLink | FaultKind::Isolate);
        match kind {
            FaultKind::Loss | FaultKind::Partition => self.kind == kind,
            k if cuts(k) => cuts(self.kind) && self.nodes.iter().any(|n| nodes.contains(n)),
            _ => false,
        }
    }
}

pub(super) struct Runner<'a> {
    pub(super) cfg: &'a ChaosConfig,
    pub(super) stop: &'a AtomicBool,
    pub(super) out: &'a mut dyn Write,
    pub(super) macs: BTreeMap<[u8; 6], usize>,
    pub(super) active: Vec<Active>,
    /// Nodes found dark outside a daemon fault: when chaos reboots them, and when
    /// they were found.
    pub(super) reboot_at: BTreeMap<usize, (Instant, i64)>,
    pub(super) injected: Vec<InjectedFault>,
    pub(super) skipped: Vec<SkippedFault>,
    pub(super) node_events: Vec<NodeEvent>,
    /// (node, time) when chaos powered a node off or rebooted it (its VIP is gone).
    pub(super) power_offs: Vec<(String, i64)>,
    t0: Instant,
    pub(super) start_ns: i64,
}

impl<'a> Runner<'a> {
    /// A runner whose chaos phase begins now; `macs` maps each node's MAC to its index.
    pub(super) fn new(
        cfg: &'a ChaosConfig,
        stop: &'a AtomicBool,
        out: &'a mut dyn Write,
        macs: BTreeMap<[u8; 6], usize>,
    ) -> Self {
        Runner {
            cfg,
            stop,
            out,
            macs,
            active: Vec::new(),
            reboot_at: BTreeMap::new(),
            injected: Vec::new(),
            skipped: Vec::new(),
            node_events: Vec::new(),
            power_offs: Vec::new(),
            t0: Instant::now(),
            start_ns: realtime_ns(),
        }
    }
    fn check(&self) -> Result<(), ExperimentError> {
        experiment::check(self.stop)
    }

    pub(super) fn say(&mut self, msg: &str) {
        let at = self.t0.elapsed().as_secs_f64();
        let _ = writeln!(self.out, "[+{at:>7.1}s] {msg}");
    }

    fn max_down(&self) -> usize {
        (self.cfg.nodes - 1) / 2
    }

    /// Nodes out of the cluster now: daemon faults, isolation, a partition's minority
    /// side, and nodes found dark waiting for their reboot.
    fn down(&self) -> BTreeSet<usize> {
        let mut d: BTreeSet<usize> = self.reboot_at.keys().copied().collect();
        for a in &self.active {
            if a.kind.takes_node_down() {
                d.extend(&a.nodes);
            }
        }
        d
    }

    fn links_are_up(lab: &Lab, node: usize) -> bool {
        lab.exec(Ns::Node(node), &["ip", "-o", "link", "show", "dev", "eth0"])
            .map(|o| {
                let t = String::from_utf8_lossy(&o.stdout);
                t.split(['<', '>'])
                    .nth(1)
                    .is_some_and(|flags| flags.split(',').any(|f| f == "UP"))
            })
            .unwrap_or(false)
    }

    /// What a reboot does to a dark node: the VIP is gone (addresses do not survive a
    /// reboot), links come up, tandemd starts.
    fn reboot(&mut self, lab: &mut Lab, node: usize) -> Result<(), ExperimentError> {
        let at = realtime_ns();
        clear_vip(lab, node)?;
        // fence_lab downs every link, lo included.
        let _ = lab.exec(Ns::Node(node), &["ip", "link", "set", "lo", "up"]);
        lab.links_up(node)?;
        self.power_offs.push((lab.node_name(node), at));
        if !lab.is_running(node) {
            lab.start(node)?;
        }
        Ok(())
    }

    /// Brings a node whose daemon fault ends back: SIGCONT, restart, or reboot when it
    /// was fenced meanwhile. Returns a note when something other than planned happened.
    fn revive(
        &mut self,
        lab: &mut Lab,
        node: usize,
        kind: FaultKind,
    ) -> Result<Option<String>, ExperimentError> {
        let name = lab.node_name(node);
        if lab.is_running(node) {
            if kind == FaultKind::Pause {
                lab.resume(node)?;
            }
            return Ok(None);
        }
        let links_up = Self::links_are_up(lab, node);
        if kind == FaultKind::PowerLoss || !links_up {
            self.reboot(lab, node)?;
            return Ok(match kind {
                FaultKind::PowerLoss => None,
                _ => Some(format!("{name} had been fenced: rebooted")),
            });
        }
        lab.start(node)?;
        Ok(match kind {
            FaultKind::DaemonCrash | FaultKind::GracefulRestart => None,
            _ => Some(format!(
                "{name}'s tandemd had exited ({}): restarted",
                lab.last_exit(node)
                    .map(|e| e.to_string())
                    .unwrap_or_default()
            )),
        })
    }

    fn heal(&mut self, lab: &mut Lab, a: Active) -> Result<(), ExperimentError> {
        let mut notes = Vec::new();
        match a.kind {
            k if k.on_daemon() => {
                for &n in &a.nodes {
                    if let Some(note) = self.revive(lab, n, k)? {
                        notes.push(note);
                    }
                }
            }
            FaultKind::CutLink => lab.heal_link(a.nodes[0], a.link)?,
            FaultKind::Isolate => lab.heal(a.nodes[0])?,
            FaultKind::Partition => lab.partition(&[])?,
            FaultKind::Loss => lab.set_loss(0)?,
            _ => {}
        }
        let what = format!(
            "healed #{} {} {}",
            a.fault,
            a.kind.name(),
            a.nodes
                .iter()
                .map(|&n| lab.node_name(n))
                .collect::<Vec<_>>()
                .join("+")
        )
        .trim_end()
        .to_string();
        let line = if notes.is_empty() {
            what
        } else {
            format!("{what} ({})", notes.join("; "))
        };
        self.say(&line);
        if let Some(f) = self.injected.iter_mut().find(|f| f.index == a.fault) {
            f.healed_ns = Some(realtime_ns());
            f.notes.extend(notes);
        }
        Ok(())
    }

    fn skip(&mut self, p: &PlannedFault, reason: String) {
        self.say(&format!(
            "skipping #{} {}: {reason}",
            p.index,
            p.kind.name()
        ));
        self.skipped.push(SkippedFault {
            index: p.index,
            kind: p.kind,
            reason,
        });
    }

    /// Carries out a planned fault, unless it conflicts with an active one, would take
    /// down too many nodes, or needs a daemon that is not running (then it is skipped).
    fn inject(
        &mut self,
        lab: &mut Lab,
        p: &PlannedFault,
        observer: &ClientObserver,
    ) -> Result<(), ExperimentError> {
        let owner = observer
            .last_arp_reply(Duration::from_millis(500))
            .and_then(|r| self.macs.get(&r.seen.mac()).copied());
        let (node, hit_owner) = match p.target {
            Target::Owner => match owner {
                Some(o) => (o, true),
                None => (p.fallback, false),
            },
            Target::Node(n) => (n, owner == Some(n) && p.kind != FaultKind::Loss),
        };
        let mut nodes = vec![node];
        if p.kind == FaultKind::Partition {
            if let Some(partner) = p.partner {
                if partner != node {
                    nodes.push(partner);
                }
            }
        }
        if p.kind == FaultKind::Loss {
            nodes.clear();
        }
        if let Some(reason) = self.refusal(lab, p, node, &nodes) {
            self.skip(p, reason);
            return Ok(());
        }
        let start_ns = realtime_ns();
        self.carry_out(lab, p, node, &nodes, start_ns)?;
        let names: Vec<String> = nodes.iter().map(|&n| lab.node_name(n)).collect();
        self.say(&format!(
            "#{} {}{}{}{} for {:.1}s",
            p.index,
            p.kind.name(),
            if names.is_empty() {
                String::new()
            } else {
                format!(" {}", names.join("+"))
            },
            if p.kind == FaultKind::CutLink {
                format!(" link {}", p.link)
            } else {
                String::new()
            },
            if hit_owner { " (the owner)" } else { "" },
            p.duration_ms as f64 / 1000.0
        ));
        self.injected.push(InjectedFault {
            index: p.index,
            kind: p.kind,
            nodes: names,
            link: (p.kind == FaultKind::CutLink).then_some(p.link),
            hit_owner,
            start_ns,
            healed_ns: None,
            notes: Vec::new(),
        });
        self.active.push(Active {
            fault: p.index,
            kind: p.kind,
            nodes,
            link: p.link,
            heal_at: Instant::now() + Duration::from_millis(p.duration_ms),
        });
        Ok(())
    }

    /// Why the fault cannot be injected now, if it cannot.
    fn refusal(
        &self,
        lab: &mut Lab,
        p: &PlannedFault,
        node: usize,
        nodes: &[usize],
    ) -> Option<String> {
        if let Some(other) = self.active.iter().find(|a| a.conflicts(p.kind, nodes)) {
            return Some(format!("#{} {} is active", other.fault, other.kind.name()));
        }
        let down = self.down();
        if p.kind.takes_node_down() {
            if nodes.iter().any(|n| down.contains(n)) {
                return Some(format!("n{node} is already down"));
            }
            if down.len() + nodes.len() > self.max_down() {
                return Some(format!(
                    "it would take down {} of {} nodes (at most {} may be down)",
                    down.len() + nodes.len(),
                    self.cfg.nodes,
                    self.max_down()
                ));
            }
        }
        if p.kind.on_daemon() && !lab.is_running(node) {
            return Some(format!("n{node} runs no tandemd"));
        }
        None
    }

    fn carry_out(
        &mut self,
        lab: &mut Lab,
        p: &PlannedFault,
        node: usize,
        nodes: &[usize],
        start_ns: i64,
    ) -> Result<(), ExperimentError> {
        match p.kind {
            FaultKind::PowerLoss => {
                // Links first: a dead machine no longer answers anything.
                lab.links_down(node)?;
                let _ = lab.kill(node);
                self.power_offs.push((lab.node_name(node), start_ns));
            }
            // The process the OOM killer picks: the worker, not the lease guard.
            FaultKind::DaemonCrash => lab.kill_worker(node)?,
            FaultKind::Pause => lab.pause(node)?,
            FaultKind::GracefulRestart => {
                if let Err(e) = lab.terminate(node) {
                    self.say(&format!("n{node}: {e}"));
                }
            }
            FaultKind::CutLink => lab.cut_link(node, p.link)?,
            FaultKind::Isolate => lab.isolate(node)?,
            FaultKind::Partition => {
                let rest: Vec<usize> = (1..=self.cfg.nodes)
                    .filter(|n| !nodes.contains(n))
                    .collect();
                lab.partition(&[nodes, &rest])?;
            }
            FaultKind::Loss => lab.set_loss(30)?,
        }
        Ok(())
    }

    /// Nodes whose tandemd vanished outside a daemon fault (fenced, self-fenced, or
    /// died): noted, and rebooted after `REBOOT_DELAY`.
    fn janitor(&mut self, lab: &mut Lab) -> Result<(), ExperimentError> {
        let now = Instant::now();
        for node in 1..=self.cfg.nodes {
            let under_daemon_fault = self
                .active
                .iter()
                .any(|a| a.kind.on_daemon() && a.nodes.contains(&node));
            if under_daemon_fault {
                continue;
            }
            match self.reboot_at.get(&node).copied() {
                Some((at, seen_ns)) if now >= at => {
                    self.reboot_at.remove(&node);
                    // Classified now, not when first seen: a fence agent kills the
                    // processes before it downs the links.
                    let name = lab.node_name(node);
                    let self_fenced = log_events(&name, &lab.logs(node))
                        .iter()
                        .any(|e| e.what == "self-fence" && e.at_ns >= seen_ns - 5_000_000_000);
                    let what = if self_fenced {
                        "self-fenced (tandemd gone, links down)".to_string()
                    } else if !Self::links_are_up(lab, node) {
                        "fenced (tandemd gone, links down)".to_string()
                    } else {
                        format!(
                            "tandemd exited on its own ({})",
                            lab.last_exit(node)
                                .map(|e| e.to_string())
                                .unwrap_or_default()
                        )
                    };
                    self.node_events.push(NodeEvent {
                        at_ns: seen_ns,
                        node: name.clone(),
                        what: what.clone(),
                    });
                    self.reboot(lab, node)?;
                    self.node_events.push(NodeEvent {
                        at_ns: realtime_ns(),
                        node: name.clone(),
                        what: "rebooted by chaos".into(),
                    });
                    let line = match what.strip_prefix("tandemd") {
                        Some(rest) => format!("{name}'s tandemd{rest}: rebooted"),
                        None => format!("{name} was {what}: rebooted"),
                    };
                    self.say(&line);
                }
                Some(_) => {}
                None if !lab.is_running(node) => {
                    self.say(&format!("{} runs no tandemd any more", lab.node_name(node)));
                    self.reboot_at
                        .insert(node, (now + REBOOT_DELAY, realtime_ns()));
                }
                None => {}
            }
        }
        Ok(())
    }

    pub(super) fn sleep(&self, d: Duration) -> Result<(), ExperimentError> {
        experiment::sleep(self.stop, d)
    }

    pub(super) fn play(
        &mut self,
        lab: &mut Lab,
        plan: &[PlannedFault],
        observer: &ClientObserver,
    ) -> Result<(), ExperimentError> {
        let mut next = 0;
        while self.t0.elapsed() < self.cfg.duration {
            self.check()?;
            let now = Instant::now();
            let mut i = 0;
            while i < self.active.len() {
                if self.active[i].heal_at <= now {
                    let a = self.active.remove(i);
                    self.heal(lab, a)?;
                } else {
                    i += 1;
                }
            }
            self.janitor(lab)?;
            if let Some(p) = plan.get(next) {
                if self.t0.elapsed() >= Duration::from_millis(p.at_ms) {
                    next += 1;
                    self.inject(lab, p, observer)?;
                }
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Heals everything still active and reboots dark nodes, then waits until every
    /// daemon runs and the VIP answers.
    pub(super) fn wind_down(
        &mut self,
        lab: &mut Lab,
        observer: &ClientObserver,
    ) -> Result<(), ExperimentError> {
        for a in std::mem::take(&mut self.active) {
            self.heal(lab, a)?;
        }
        lab.heal_all()?;
        let end = Instant::now() + self.cfg.recover_timeout;
        loop {
            self.check()?;
            // Dark nodes are rebooted at once now.
            for (at, _) in self.reboot_at.values_mut() {
                *at = Instant::now();
            }
            self.janitor(lab)?;
            let all_running = (1..=self.cfg.nodes).all(|n| lab.is_running(n));
            if all_running
                && self.reboot_at.is_empty()
                && observer
                    .last_arp_reply(Duration::from_millis(100))
                    .is_some()
            {
                return Ok(());
            }
            if Instant::now() >= end {
                return Err(ExperimentError::Failed(format!(
                    "the cluster did not recover within {:?} after the last fault",
                    self.cfg.recover_timeout
                )));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}
