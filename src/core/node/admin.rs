//! Administration and reconfiguration: admin commands (standby, move, cleanup,
//! maintenance, fence), the cluster-wide admin state, config reloads and shutdown.

use super::*;
use crate::core::admin_state::{AdminKey, AdminValue, Expiry};

/// One entry an admin command records, and how its event reads.
struct Record {
    key: AdminKey,
    value: AdminValue,
    lifetime: Option<Duration>,
    change: AdminChange,
}

impl Node {
    pub(super) fn on_admin(&mut self, now: Instant, cmd: AdminCommand, out: &mut Vec<Action>) {
        let on_off = |on: bool| {
            if on {
                AdminValue::On
            } else {
                AdminValue::Cleared
            }
        };
        let record = match cmd {
            AdminCommand::Move {
                group,
                to,
                lifetime,
            } => match self.admin_move(now, group, to) {
                Ok(target) => Record {
                    key: AdminKey::Move(group),
                    value: AdminValue::MoveTo(target),
                    lifetime,
                    change: AdminChange::MoveTo { target },
                },
                Err(refused) => {
                    out.push(event(EventKind::Admin, None, Some(group), refused));
                    return;
                }
            },
            AdminCommand::Fence { node } => {
                self.admin_fence(now, node, out);
                return;
            }
            AdminCommand::Cleanup { group } => {
                self.admin_cleanup(group, out);
                return;
            }
            AdminCommand::Standby { node, on } => Record {
                key: AdminKey::Standby(node),
                value: on_off(on),
                lifetime: None,
                change: AdminChange::Standby {
                    node: self.name(node),
                    on,
                },
            },
            AdminCommand::Ban {
                group,
                node,
                on,
                lifetime,
            } => Record {
                key: AdminKey::Ban(group, node),
                value: on_off(on),
                lifetime,
                change: AdminChange::Ban {
                    node: self.name(node),
                    on,
                },
            },
            AdminCommand::ClearMove { group } => Record {
                key: AdminKey::Move(group),
                value: AdminValue::Cleared,
                lifetime: None,
                change: AdminChange::MoveCleared,
            },
            AdminCommand::Maintenance { group, on } => Record {
                key: group.map_or(AdminKey::Maintenance, AdminKey::GroupMaintenance),
                value: on_off(on),
                lifetime: None,
                change: AdminChange::Maintenance { on },
            },
        };
        self.admin_record(now, record, out);
    }

    /// Records one admin entry, newer than any this node knows, and spreads it.
    fn admin_record(&mut self, now: Instant, record: Record, out: &mut Vec<Action>) {
        let (node, group) = subjects(record.key);
        let expires = record.lifetime.map(|life| {
            // Whole milliseconds: what the heartbeat carries.
            let lifetime =
                Duration::from_millis(u64::try_from(life.as_millis()).unwrap_or(u64::MAX));
            Expiry {
                at: now + lifetime,
                lifetime,
            }
        });
        let mut admin = self.admin.clone();
        if let Err(full) = admin.set(record.key, record.value, expires, self.me) {
            out.push(event(
                EventKind::Admin,
                node,
                group,
                Reason::AdminFull(full),
            ));
            return;
        }
        let reason = Reason::Admin(record.change);
        out.push(event(EventKind::Admin, node, group, reason));
        self.adopt_admin(admin, out);
    }

    fn admin_cleanup(&mut self, group: GroupId, out: &mut Vec<Action>) {
        let mut admin = self.admin.clone();
        match admin.cleanups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, c)) => *c += 1,
            None => admin.cleanups.push((group, 1)),
        }
        admin.cleanups.sort_unstable();
        let reason = Reason::Admin(AdminChange::Cleanup);
        out.push(event(EventKind::Admin, None, Some(group), reason));
        self.adopt_admin(admin, out);
    }

    /// A fence by hand: the admin vouches it is safe, so it runs at once, with or
    /// without quorum.
    fn admin_fence(&mut self, now: Instant, node: NodeId, out: &mut Vec<Action>) {
        let incarnation = self.peers.get(&node).map(|p| p.incarnation).unwrap_or(0);
        let job = FenceJob::Delayed {
            until: now,
            incarnation,
            why: FenceWhy::Admin,
        };
        self.fencing.jobs.insert(node, job);
        let target = self.name(node);
        let reason = Reason::AdminFence { target };
        out.push(event(EventKind::Admin, Some(node), None, reason));
    }

    /// A move: to `to`, or to the best other node. Refused (nothing recorded) when no
    /// node qualifies or the target can never own the group: a preference for such a
    /// node would linger and fire later, when nobody remembers asking (Pacemaker's
    /// stale ban constraints).
    fn admin_move(
        &self,
        now: Instant,
        group: GroupId,
        to: Option<NodeId>,
    ) -> Result<NodeId, Reason> {
        let owner = self.group_owner(group);
        let target = to
            .or_else(|| self.best_node(now, group, owner))
            .ok_or(Reason::MoveNoTarget)?;
        if let Some(why) = self.cannot_own(group, target) {
            return Err(Reason::MoveRefused(why));
        }
        Ok(target)
    }

    /// Merges the admin state a peer sent (stamped `sent_at` on its clock) into ours.
    pub(super) fn merge_admin(
        &mut self,
        now: Instant,
        theirs: &AdminState,
        sent_at: Instant,
        out: &mut Vec<Action>,
    ) {
        if self.admin.covers(theirs) {
            // Nothing new but maybe an earlier end of a copy (clocks drift): no news
            // to persist at once or spread.
            self.admin.lower_expiries(theirs, sent_at, now);
            return;
        }
        let mut merged = self.admin.clone();
        merged.merge(&theirs.rebased(sent_at, now));
        // A copy that lapsed on a faster clock first: this node says so too.
        for e in merged.entries.iter().filter(|e| !e.in_force()) {
            let lapsed = self
                .admin
                .get(e.key)
                .is_some_and(|mine| mine.in_force() && mine.stamp == e.stamp);
            if lapsed {
                let (node, group) = subjects(e.key);
                let reason = Reason::Admin(AdminChange::Expired { key: e.key });
                out.push(event(EventKind::Admin, node, group, reason));
            }
        }
        self.adopt_admin(merged, out);
    }

    /// Lets entries whose lifetime ran out lapse, saying so.
    pub(super) fn expire_admin(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.admin.next_expiry().is_none_or(|at| at > now) {
            return;
        }
        let mut admin = self.admin.clone();
        for gone in admin.expire(now) {
            let (node, group) = subjects(gone.key);
            let reason = Reason::Admin(AdminChange::Expired { key: gone.key });
            out.push(event(EventKind::Admin, node, group, reason));
        }
        self.adopt_admin(admin, out);
    }

    pub(super) fn adopt_admin(&mut self, admin: AdminState, out: &mut Vec<Action>) {
        self.admin = admin;
        for g in &mut self.groups {
            let c = self.admin.cleanup_count(g.id);
            if c > g.cleanup_seen {
                g.cleanup_seen = c;
                g.failures.clear();
                g.banned = false;
                g.last_failure = None;
                if let Role::Owner { failed, .. } = &mut g.role {
                    *failed = false;
                }
            }
        }
        self.persist(out);
        self.sending.asap = true;
    }

    /// Apply one input; the returned actions must be carried out in order.
    /// Applies a reloaded configuration (`tandemctl reload`, SIGHUP). Groups whose
    /// resources did not change keep running untouched; see `docs/operations.md`.
    /// Refused (nothing changes) when the change needs a restart, e.g. different nodes.
    pub fn reconfigure(
        &mut self,
        now: Instant,
        spec: ClusterSpec,
    ) -> Result<Vec<Action>, ReconfigureError> {
        if let Some(what) = restart_needed(&self.spec, &spec) {
            return Err(ReconfigureError::NeedsRestart(what));
        }
        let mut out = Vec::new();
        let mut old_groups: BTreeMap<GroupId, (GroupSpec, GroupState)> = self
            .spec
            .groups
            .drain(..)
            .zip(self.groups.drain(..))
            .map(|(gs, st)| (gs.id, (gs, st)))
            .collect();
        let mut groups = Vec::with_capacity(spec.groups.len());
        let mut specs = Vec::with_capacity(spec.groups.len());
        for new in &spec.groups {
            match old_groups.remove(&new.id) {
                None => {
                    let witness = spec.node(self.me).is_some_and(|n| n.witness);
                    let may_own = !witness && new.allowed(self.me);
                    let mut st = GroupState::at_boot(new, &self.persisted, now, may_own);
                    st.reason = Decision::AddedByReload;
                    out.push(event(
                        EventKind::Decision,
                        Some(self.me),
                        Some(new.id),
                        Reason::GroupAdded,
                    ));
                    specs.push(new.clone());
                    groups.push(st);
                }
                Some((old, st)) => {
                    let (spec, st, restarting) = keep_group(old, st, new);
                    if restarting {
                        let reason = Reason::ResourcesChanged;
                        out.push(event(
                            EventKind::Decision,
                            Some(self.me),
                            Some(new.id),
                            reason,
                        ));
                    }
                    specs.push(spec);
                    groups.push(st);
                }
            }
        }
        // Removed groups stay, eligible nowhere, until stopped and released (see
        // `drop_retired`), so a running group is never forgotten mid-flight.
        for (_, (mut old, mut st)) in old_groups {
            if !st.retiring {
                out.push(event(
                    EventKind::Decision,
                    Some(self.me),
                    Some(old.id),
                    Reason::GroupRemoved,
                ));
            }
            st.retiring = true;
            st.pending = None;
            old.nodes = Some(Vec::new());
            specs.push(old);
            groups.push(st);
        }
        let mut spec = spec;
        spec.groups = specs;
        self.spec = spec;
        self.groups = groups;
        for peer in self.peers.values_mut() {
            peer.digest_warned = false;
        }
        self.sending.asap = true;
        self.evaluate(now, &mut out);
        self.drop_retired();
        Ok(out)
    }

    /// True while a reload has changed this group's resources but the old ones still
    /// run here: operations on it must use the previous resource definitions.
    pub fn uses_previous_spec(&self, group: GroupId) -> bool {
        self.groups
            .iter()
            .any(|g| g.id == group && (g.pending.is_some() || g.retiring))
    }

    /// Forgets removed groups once nothing of them runs here and no peer claims them.
    pub(super) fn drop_retired(&mut self) {
        let mut i = 0;
        while i < self.groups.len() {
            let g = &self.groups[i];
            let claimed = self.peers.values().any(|p| p.claims.contains_key(&g.id));
            let done = g.retiring
                && !g.may_run()
                && g.op.is_none()
                && matches!(g.role, Role::Idle)
                && g.promise.is_none()
                && !claimed;
            if done {
                self.groups.remove(i);
                self.spec.groups.remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// Why `node` can never own `group` as things stand (witness, not in the group's
    /// `nodes`, standby), or `None`.
    pub(super) fn cannot_own(&self, group: GroupId, node: NodeId) -> Option<Refusal> {
        let spec = self.spec.node(node)?;
        let node_name = spec.name.clone();
        if spec.witness {
            return Some(Refusal::Witness { node: node_name });
        }
        if self.spec.group(group).is_some_and(|g| !g.allowed(node)) {
            return Some(Refusal::NotInGroup { node: node_name });
        }
        if self.admin.standby(node) {
            return Some(Refusal::Standby { node: node_name });
        }
        if self.admin.banned(group, node) {
            return Some(Refusal::Banned { node: node_name });
        }
        None
    }

    /// The daemon is shutting down: stop every group here in order and hand it over
    /// (like `standby`, but for this run only: nothing is persisted, a restarted node
    /// is eligible again). Call [`Node::is_quiet`] to know when it is safe to exit.
    pub fn leave(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.leaving {
            self.leaving = true;
            self.sending.asap = true;
            out.push(self.node_decision(Reason::ShuttingDown));
        }
        let now = now.max(self.last_now);
        self.last_now = now;
        self.evaluate(now, &mut out);
        out
    }
}

/// What a reload cannot change on a running node, or `None`. Timing and quorum must be
/// the same on every node for leases to be safe (an owner with a longer deadtime than
/// its voters would outlive their promises), so they change only by a coordinated
/// restart; the node list and links are the membership itself.
pub(super) fn restart_needed(old: &ClusterSpec, new: &ClusterSpec) -> Option<String> {
    if old.links != new.links {
        return Some("the number of heartbeat links changed".into());
    }
    if old.nodes.len() != new.nodes.len() {
        return Some("nodes were added or removed".into());
    }
    for (a, b) in old.nodes.iter().zip(&new.nodes) {
        if a.id != b.id || a.name != b.name {
            return Some(format!("node {} was renamed or replaced", a.name));
        }
        if a.votes != b.votes || a.witness != b.witness {
            return Some(format!("votes or witness of node {} changed", a.name));
        }
        if a.absent_links != b.absent_links {
            return Some(format!("the links node {} is on changed", a.name));
        }
    }
    if old.timing != new.timing {
        return Some("heartbeat timing changed".into());
    }
    let (q, r) = (&old.quorum, &new.quorum);
    if q.expected_votes != r.expected_votes
        || q.two_node != r.two_node
        || q.wait_for_all != r.wait_for_all
    {
        return Some("quorum settings changed (only no_quorum_policy can be reloaded)".into());
    }
    None
}

/// The node and group an admin entry is about, for its event.
fn subjects(key: AdminKey) -> (Option<NodeId>, Option<GroupId>) {
    match key {
        AdminKey::Maintenance => (None, None),
        AdminKey::Standby(n) => (Some(n), None),
        AdminKey::GroupMaintenance(g) | AdminKey::Move(g) => (None, Some(g)),
        AdminKey::Ban(g, n) => (Some(n), Some(g)),
    }
}

/// A group kept across a reload, with the spec it runs under now. A policy-only change
/// (prefer, failback, thresholds, ...) takes effect at the next decision and nothing
/// restarts; changed resources that may run here are restarted (true), the new ones
/// replacing the old once those stopped; otherwise the new resources replace the old.
fn keep_group(
    old: GroupSpec,
    mut st: GroupState,
    new: &GroupSpec,
) -> (GroupSpec, GroupState, bool) {
    st.retiring = false;
    // A reload that undoes a pending change simply cancels it.
    st.pending = None;
    if old.resources == new.resources && old.resources_revision == new.resources_revision {
        return (new.clone(), st, false);
    }
    if st.may_run() || st.op.is_some() {
        st.pending = Some(new.clone());
        st.restart_from = Some(0);
        return (old, st, true);
    }
    st.res = vec![Res::Stopped; new.resources.len()];
    (new.clone(), st, false)
}
