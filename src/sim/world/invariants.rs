//! The invariants as checked against the world's ground truth after every step.

use super::*;

impl Sim {
    /// A node without quorum takes nothing over, so it has no business fencing: that
    /// only powers off a node the majority may rely on. Where quorum does not gate
    /// takeovers (two_node, `no_quorum_policy: ignore`) or an admin asked, it may.
    pub(super) fn check_fence_has_quorum(
        &self,
        i: usize,
        target: NodeId,
    ) -> Result<(), Box<Violation>> {
        let q = &self.sc.spec.quorum;
        if q.two_node
            || q.no_quorum_policy == NoQuorumPolicy::Ignore
            || self.nodes[i].admin_fences.contains(&target)
        {
            return Ok(());
        }
        let quorate = self.nodes[i]
            .core
            .as_ref()
            .is_none_or(|c| c.status(self.local(i)).quorate);
        if quorate {
            return Ok(());
        }
        Err(self.violation(
            "only a node with quorum fences (unless an admin asked)",
            format!(
                "{} fences {} without quorum",
                self.name(i),
                self.index_of(target)
                    .map(|t| self.name(t))
                    .unwrap_or_else(|| target.to_string())
            ),
        ))
    }
    pub(super) fn unsafe_policy(&self) -> bool {
        self.sc.spec.quorum.no_quorum_policy == NoQuorumPolicy::Ignore
    }

    /// Nodes that actually run (any resource of) `g` and are not frozen — with a worker
    /// or without one (what a guard failed to kill would stay running).
    pub(super) fn runners(&self, g: GroupId) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| {
                let n = &self.nodes[*i];
                !n.vm_paused && n.running.iter().any(|(gg, _)| *gg == g)
            })
            .collect()
    }

    pub(super) fn check_safety(&self) -> Result<(), Box<Violation>> {
        if self.unsafe_policy() {
            return Ok(());
        }
        for gs in &self.ever_groups {
            let runners = self.runners(gs.id);
            if runners.len() > 1 {
                let names: Vec<String> = runners.iter().map(|i| self.name(*i)).collect();
                let views = self.group_views(gs.id);
                return Err(self.violation(
                    check::SAFETY_SINGLE_RUNNER,
                    format!("{} runs on {:?}{}", gs.name, names, views),
                ));
            }
            let lease_mode = self
                .nodes
                .iter()
                .find_map(|n| n.core.as_ref())
                .is_some_and(|c| c.lease_is_enforced());
            if !lease_mode {
                continue;
            }
            // A hung node (worker and guard wedged) cannot enforce its lease: only its
            // watchdog ends what it runs, and the voters' longer promise must cover that
            // (the single-runner check above is what judges it).
            for i in runners.into_iter().filter(|i| !self.nodes[*i].guard.hung) {
                let Some(core) = self.nodes[i].core.as_ref() else {
                    return Err(self.violation(
                        check::SAFETY_LEASE,
                        format!("{} runs {} without a worker", self.name(i), gs.name),
                    ));
                };
                let now = self.local(i);
                // One microsecond of slack: the simulated clocks tick in whole
                // nanoseconds at slightly different rates.
                match core.lease_until(gs.id) {
                    Some(l) if now <= l + Duration::from_micros(1) => {}
                    Some(l) => {
                        return Err(self.violation(
                            check::SAFETY_LEASE,
                            format!(
                                "{} runs {} {:?} after its lease ended ({:?}); actually running {:?}; core: {}",
                                self.name(i),
                                gs.name,
                                now,
                                l,
                                self.nodes[i].running,
                                core.describe_group(gs.id)
                            ),
                        ))
                    }
                    None => {
                        return Err(self.violation(check::SAFETY_LEASE, format!("{} runs {} without owning it", self.name(i), gs.name)))
                    }
                }
            }
            let holders: Vec<usize> = (0..self.nodes.len())
                .filter(|i| {
                    self.nodes[*i]
                        .core
                        .as_ref()
                        .and_then(|c| c.lease_until(gs.id))
                        .is_some_and(|l| self.real_of_exact(*i, l) > self.now)
                })
                .collect();
            if holders.len() > 1 {
                let names: Vec<String> = holders.iter().map(|i| self.name(*i)).collect();
                return Err(self.violation(
                    check::SAFETY_LEASE_OVERLAP,
                    format!("{} leased by {:?}", gs.name, names),
                ));
            }
        }
        Ok(())
    }
    pub(super) fn check_terms(&mut self, i: usize) -> Result<(), Box<Violation>> {
        let Some(core) = self.nodes[i].core.as_ref() else {
            return Ok(());
        };
        for gs in &self.ever_groups {
            let t = core.known_term(gs.id);
            let seen = self.terms[i].entry(gs.id).or_default();
            if t < *seen {
                let detail = format!(
                    "{} went from term {} to {} for {}",
                    self.sc.spec.nodes[i].name, seen, t, gs.name
                );
                return Err(self.violation(check::TERMS_MONOTONIC, detail));
            }
            *seen = t;
        }
        Ok(())
    }

    /// Nodes that own `g` with everything running, by their own account and in fact.
    pub(super) fn owners(&self, g: GroupId) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| {
                let n = &self.nodes[*i];
                // The node's own resource list: a reload may have changed it.
                let n_res = n
                    .core
                    .as_ref()
                    .and_then(|c| c.spec().group(g))
                    .map(|g| g.resources.len())
                    .unwrap_or(0);
                n.core.as_ref().is_some_and(|c| c.owns_running(g))
                    && n.running.iter().filter(|(gg, _)| *gg == g).count() == n_res
            })
            .collect()
    }

    pub(super) fn check_settled(&mut self) -> Result<(), Box<Violation>> {
        for gs in self.sc.spec.groups.clone() {
            let owners = self.owners(gs.id);
            let owner = (owners.len() == 1).then(|| owners[0]);
            match self.settle_owner.get(&gs.id) {
                None => {
                    if owner.is_none() {
                        let views = self.group_views(gs.id);
                        return Err(self.violation(
                            check::LIVENESS_OWNER,
                            format!(
                                "{}: no single running owner {} ms after healing (owners {:?}){}",
                                gs.name,
                                ms(dur(self.sc.heal - self.sc.settle)),
                                owners,
                                views
                            ),
                        ));
                    }
                    self.settle_owner.insert(gs.id, owner);
                }
                Some(prev) if *prev != owner => {
                    return Err(self.violation(
                        check::LIVENESS_STABLE,
                        format!(
                            "{}: owner changed from {:?} to {:?} after settling",
                            gs.name, prev, owner
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        self.settle_started = true;
        Ok(())
    }

    /// Every node's view of group `g`, one indented line each, for a violation.
    pub(super) fn group_views(&self, g: GroupId) -> String {
        (0..self.nodes.len())
            .map(|i| match &self.nodes[i].core {
                Some(c) => format!("\n    {}: {}", self.name(i), c.describe_group(g)),
                None => format!("\n    {}: off", self.name(i)),
            })
            .collect()
    }

    pub(super) fn check_liveness(&mut self) -> Result<(), Box<Violation>> {
        self.check_settled()
    }
}
