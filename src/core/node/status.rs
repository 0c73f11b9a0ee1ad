//! Read-only queries of a node's state: `tandemctl status` and the simulator's probes.

use super::*;
use crate::core::admin_state::{AdminKey, AdminValue};
use crate::core::status::ConstraintStatus;
use crate::core::status::LINK_ABSENT as ABSENT;

impl Node {
    /// Whether this node has this group's resources possibly running (for the
    /// simulator's safety checks).
    pub fn runs(&self, group: GroupId) -> bool {
        !self.self_fenced
            && self
                .groups
                .iter()
                .find(|g| g.id == group)
                .is_some_and(|g| g.may_run())
    }

    /// The end of this node's lease on `group`, if it owns it.
    pub fn lease_until(&self, group: GroupId) -> Option<Instant> {
        self.groups
            .iter()
            .find(|g| g.id == group)
            .and_then(|g| match g.role {
                Role::Owner {
                    lease_until,
                    recovering: false,
                    ..
                } => Some(lease_until),
                _ => None,
            })
    }

    /// The highest term this node knows for `group`.
    pub fn known_term(&self, group: GroupId) -> Term {
        self.groups
            .iter()
            .find(|g| g.id == group)
            .map(|g| g.known.term)
            .or_else(|| {
                let remembered = self.persisted.terms.iter().find(|(id, _)| *id == group);
                remembered.map(|(_, t)| *t)
            })
            .unwrap_or_default()
    }

    /// Nothing of any group may run here, no operation is in flight, and this node
    /// neither owns nor campaigns for any group: exiting now leaves nothing behind.
    /// Groups in maintenance do not count: tandem is told not to touch them, so a
    /// shutdown leaves them as they are (Pacemaker's maintenance-mode does the same).
    pub fn is_quiet(&self) -> bool {
        self.self_fenced
            || self.groups.iter().all(|g| {
                self.maintenance(g.id)
                    || (!g.may_run() && g.op.is_none() && matches!(g.role, Role::Idle))
            })
    }

    /// Whether this node owns `group` with every resource running.
    pub fn owns_running(&self, group: GroupId) -> bool {
        self.groups.iter().find(|g| g.id == group).is_some_and(|g| {
            matches!(
                g.role,
                Role::Owner {
                    after_stop: None,
                    failed: false,
                    ..
                }
            ) && g.res.iter().all(|r| *r == Res::Running)
        })
    }

    /// A one-line dump of this node's state for `group`, for simulator traces.
    pub fn describe_group(&self, group: GroupId) -> String {
        let Some(g) = self.groups.iter().find(|g| g.id == group) else {
            return "unknown group".into();
        };
        format!(
            "role={:?} known={:?} holders={:?} res={:?} goal={:?} op={:?} restart_from={:?} promise={:?} fenced={:?} by_me={:?} reason={}",
            g.role, g.known, g.holders.all(), g.res, g.goal, g.op, g.restart_from, g.promise, self.fencing.off, self.fencing.by_me, g.reason
        )
    }

    pub fn is_self_fenced(&self) -> bool {
        self.self_fenced
    }

    pub fn lease_is_enforced(&self) -> bool {
        self.lease_enforced()
    }

    /// Whether tandem leaves `group` alone (cluster-wide or group maintenance): what runs
    /// of it is the admin's, not tandem's, to stop.
    pub fn in_maintenance(&self, group: GroupId) -> bool {
        self.maintenance(group)
    }

    /// Why this node waits or acts for `group` now.
    pub fn reason(&self, group: GroupId) -> Option<&Decision> {
        self.groups
            .iter()
            .find(|g| g.id == group)
            .map(|g| &g.reason)
    }

    pub fn status(&self, now: Instant) -> ClusterStatus {
        let initdead_over = now.saturating_since(self.started_at) >= self.spec.timing.initdead;
        let nodes = self
            .spec
            .nodes
            .iter()
            .map(|n| self.node_status(n, now, initdead_over))
            .collect();
        let groups = self
            .groups
            .iter()
            .zip(&self.spec.groups)
            .map(|(g, gs)| self.group_status(g, gs))
            .collect();
        let expected = self.spec.expected_votes();
        ClusterStatus {
            node: self.name(self.me),
            quorate: self.quorate(),
            votes_present: self.votes_present(),
            votes_expected: expected,
            quorum_votes: if self.spec.quorum.two_node {
                1
            } else {
                quorum::quorum_votes(expected)
            },
            nodes,
            groups,
            maintenance: self.admin.maintenance(),
            arbiter: self.arbiter_status(now),
            constraints: self.constraints(now),
        }
    }

    fn constraints(&self, now: Instant) -> Vec<ConstraintStatus> {
        let group = |g: GroupId| {
            Some(
                self.spec
                    .group(g)
                    .map_or_else(|| format!("{g:?}"), |s| s.name.clone()),
            )
        };
        self.admin
            .in_force()
            .map(|e| {
                let (kind, node, group) = match (e.key, e.value) {
                    (AdminKey::Maintenance, _) => ("maintenance", None, None),
                    (AdminKey::GroupMaintenance(g), _) => ("maintenance", None, group(g)),
                    (AdminKey::Standby(n), _) => ("standby", Some(n), None),
                    (AdminKey::Move(g), AdminValue::MoveTo(n)) => ("move", Some(n), group(g)),
                    (AdminKey::Move(g), _) => ("move", None, group(g)),
                    (AdminKey::Ban(g, n), _) => ("ban", Some(n), group(g)),
                };
                ConstraintStatus {
                    kind: kind.into(),
                    node: node.map(|n| self.name(n)),
                    group,
                    left_ms: e.expires.map(|x| {
                        u64::try_from(x.at.saturating_since(now).as_millis()).unwrap_or(u64::MAX)
                    }),
                    set_on: self.name(e.stamp.origin),
                }
            })
            .collect()
    }

    fn node_status(&self, n: &NodeSpec, now: Instant, initdead_over: bool) -> NodeStatus {
        let standby = self.admin.standby(n.id);
        if n.id == self.me {
            return NodeStatus {
                name: n.name.clone(),
                id: n.id.0,
                state: if standby { "standby" } else { "online" }.into(),
                witness: n.witness,
                local: true,
                links: (0..self.spec.links)
                    .map(|k| LinkStatus {
                        index: k,
                        state: if n.on_link(k) { "local" } else { ABSENT }.into(),
                        rtt_ms: None,
                        last_heard_ms: None,
                        phi: None,
                    })
                    .collect(),
                incarnation: self.incarnation,
                checks_failing: Some(!self.healthy),
            };
        }
        let Some(p) = self.peers.get(&n.id) else {
            return NodeStatus {
                name: n.name.clone(),
                id: n.id.0,
                state: "unknown".into(),
                ..NodeStatus::default()
            };
        };
        let state = if p.up {
            if standby {
                "standby"
            } else {
                "online"
            }
        } else if p.ever_seen || initdead_over {
            "offline"
        } else {
            "unknown"
        };
        NodeStatus {
            name: n.name.clone(),
            id: n.id.0,
            state: state.into(),
            witness: n.witness,
            local: false,
            links: p
                .links
                .iter()
                .enumerate()
                .map(|(k, d)| {
                    if !self.spec.shared_link(self.me, n.id, k) {
                        return LinkStatus {
                            index: k,
                            state: ABSENT.into(),
                            ..LinkStatus::default()
                        };
                    }
                    LinkStatus {
                        index: k,
                        state: d.state(now).as_str().into(),
                        rtt_ms: p.rtt[k].map(|r| r.as_secs_f64() * 1000.0),
                        last_heard_ms: d
                            .last_heard()
                            .map(|l| now.saturating_since(l).as_millis() as u64),
                        phi: d.last_heard().map(|_| d.phi(now)).filter(|v| v.is_finite()),
                    }
                })
                .collect(),
            incarnation: p.incarnation,
            checks_failing: p.ever_seen.then(|| p.flags.has(NodeFlags::CHECKS_FAILING)),
        }
    }

    /// The owner, term and state of a group as this node sees it.
    fn group_view(&self, g: &GroupState) -> (Option<NodeId>, Term, &'static str) {
        match &g.role {
            Role::Owner {
                term,
                failed,
                after_stop,
                ..
            } => {
                let state = if *failed {
                    "failed"
                } else if after_stop.is_some() {
                    "stopping"
                } else if g.res.iter().all(|r| *r == Res::Running) {
                    "running"
                } else {
                    "starting"
                };
                (Some(self.me), *term, state)
            }
            Role::Candidate { term, .. } => (Some(self.me), *term, "candidate"),
            Role::Idle => match g.known.owner.filter(|_| g.known.phase != Phase::Released) {
                Some(o) => {
                    let alive = self.peers.get(&o).is_some_and(|p| p.up);
                    let state = match g.known.phase {
                        Phase::Candidate => "candidate",
                        Phase::Starting => "starting",
                        Phase::Running => "running",
                        Phase::Stopping => "stopping",
                        Phase::Failed => "failed",
                        Phase::Released => "stopped",
                    };
                    (Some(o), g.known.term, if alive { state } else { "unknown" })
                }
                None => (None, g.known.term, "stopped"),
            },
        }
    }

    fn group_status(&self, g: &GroupState, gs: &GroupSpec) -> GroupStatus {
        let (owner, term, state) = self.group_view(g);
        let local_owner = matches!(g.role, Role::Owner { .. });
        GroupStatus {
            name: gs.name.clone(),
            owner: owner.map(|o| self.name(o)),
            term: term.0,
            state: state.into(),
            // Status shows the sentence; the typed decision stays in the core.
            reason: g.reason.to_string(),
            maintenance: self.maintenance(g.id),
            resources: gs
                .resources
                .iter()
                .enumerate()
                .map(|(i, name)| ResourceStatus {
                    name: name.clone(),
                    state: if local_owner || g.res[i] != Res::Stopped {
                        match g.res[i] {
                            Res::Running => "running",
                            Res::Stopped => "stopped",
                            Res::Unknown => "unknown",
                        }
                    } else {
                        "-"
                    }
                    .into(),
                    fail_count: g.failures.len() as u32,
                    last_failure: g.last_failure.clone(),
                })
                .collect(),
        }
    }
}
