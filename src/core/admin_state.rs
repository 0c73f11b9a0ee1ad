//! The cluster-wide admin state (standby, maintenance, moves, bans, cleanups) as a set of
//! independently versioned entries, so that two commands issued on two nodes at once
//! (or on both sides of a partition) both survive the merge.
//!
//! One entry per [`AdminKey`] (kind and target). Each carries a Lamport [`Stamp`]
//! (counter, then the issuing node as tie-break); merging keeps the entry with the
//! higher stamp, key by key. Clearing is an entry too (a tombstone, value
//! [`AdminValue::Cleared`]) with a newer stamp, so a clear survives a merge with the
//! value it cleared. Tombstones are kept (there is at most one per key, and keys are
//! bounded by the config); only when [`MAX_ADMIN_ENTRIES`] is reached does the oldest
//! tombstone make room. Merging is commutative, associative and idempotent.
//!
//! An entry may expire (`--lifetime`). Expiry is a point on the clock of the node that
//! holds the copy: a heartbeat carries it on the sender's clock next to `sent_at`, and the
//! receiver turns it into a span and adds it to its own clock ([`AdminState::rebased`]),
//! so clocks are never compared across nodes; a copy can only outlive the original by
//! the delivery delay. Two copies of one entry (same stamp) keep the earlier expiry, and
//! an expired entry becomes a tombstone of the same stamp. Expiry only ever changes
//! placement preferences, never safety.

use super::ids::{GroupId, NodeId};
use super::time::Instant;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Most entries (tombstones included) an admin state holds; `wire` refuses more. At
/// 26 bytes an entry on the wire, a full table is 3.3 KB of every heartbeat.
pub const MAX_ADMIN_ENTRIES: usize = 128;

/// The version of one entry: a Lamport counter, then the node that issued it.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Stamp {
    pub counter: u64,
    pub origin: NodeId,
}

/// What an entry is about: one per kind and target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminKey {
    /// Maintenance of the whole cluster.
    Maintenance,
    Standby(NodeId),
    GroupMaintenance(GroupId),
    /// Where `tandemctl move` sent the group (value [`AdminValue::MoveTo`]).
    Move(GroupId),
    /// `tandemctl ban GROUP NODE`: the node never owns the group.
    Ban(GroupId, NodeId),
}

/// The value of an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminValue {
    /// Cleared by hand or expired: a tombstone.
    Cleared,
    /// In force (standby, maintenance, ban).
    On,
    /// The group is pinned to this node.
    MoveTo(NodeId),
}

/// When an entry lapses by itself: `at` on the clock of whoever holds this copy, and
/// the lifetime it was given (whole milliseconds, so it crosses the wire unchanged).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiry {
    pub at: Instant,
    pub lifetime: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminEntry {
    pub key: AdminKey,
    pub stamp: Stamp,
    pub value: AdminValue,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<Expiry>,
}

impl AdminEntry {
    pub fn in_force(&self) -> bool {
        self.value != AdminValue::Cleared
    }

    /// The merge of two copies of the same key: the newer stamp wins; of two copies of
    /// one entry, a cleared (expired) one wins and the earlier expiry is kept.
    fn merged(self, other: AdminEntry) -> AdminEntry {
        if other.stamp != self.stamp {
            return if other.stamp > self.stamp {
                other
            } else {
                self
            };
        }
        let value = if self.in_force() {
            other.value
        } else {
            self.value
        };
        let expires = match (self.expires, other.expires) {
            (Some(a), Some(b)) => Some(if b.at < a.at { b } else { a }),
            (a, b) => a.or(b),
        };
        AdminEntry {
            value,
            expires,
            ..self
        }
    }
}

/// Why an admin command could not be recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AdminFull {
    #[error("the admin state holds {MAX_ADMIN_ENTRIES} constraints in force: clear some first")]
    Full,
}

/// Cluster-wide administrative intent, spread by gossip and merged entry by entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "on_disk::AdminStateOnDisk")]
pub struct AdminState {
    /// Sorted by key, one entry per key.
    pub entries: Vec<AdminEntry>,
    /// Per group, a counter bumped by `tandemctl cleanup`: every node resets its fail
    /// counts for the group when it sees a higher value. Merged by maximum.
    pub cleanups: Vec<(GroupId, u32)>,
}

impl AdminState {
    pub fn get(&self, key: AdminKey) -> Option<&AdminEntry> {
        self.entries
            .binary_search_by(|e| e.key.cmp(&key))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// The entries in force (not cleared, not expired).
    pub fn in_force(&self) -> impl Iterator<Item = &AdminEntry> {
        self.entries.iter().filter(|e| e.in_force())
    }

    fn on(&self, key: AdminKey) -> bool {
        self.get(key).is_some_and(AdminEntry::in_force)
    }

    pub fn maintenance(&self) -> bool {
        self.on(AdminKey::Maintenance)
    }

    pub fn standby(&self, node: NodeId) -> bool {
        self.on(AdminKey::Standby(node))
    }

    pub fn group_maintenance(&self, group: GroupId) -> bool {
        self.on(AdminKey::GroupMaintenance(group))
    }

    pub fn banned(&self, group: GroupId, node: NodeId) -> bool {
        self.on(AdminKey::Ban(group, node))
    }

    /// The node a `move` pinned `group` to, while in force.
    pub fn move_target(&self, group: GroupId) -> Option<NodeId> {
        match self.get(AdminKey::Move(group))?.value {
            AdminValue::MoveTo(n) => Some(n),
            _ => None,
        }
    }

    pub fn cleanup_count(&self, group: GroupId) -> u32 {
        self.cleanups
            .iter()
            .find(|(g, _)| *g == group)
            .map(|(_, c)| *c)
            .unwrap_or(0)
    }

    /// The stamp for a new command issued by `origin`: newer than every entry known.
    fn next_stamp(&self, origin: NodeId) -> Stamp {
        let counter = self.entries.iter().map(|e| e.stamp.counter).max();
        Stamp {
            counter: counter.unwrap_or(0) + 1,
            origin,
        }
    }

    /// Records a command of `origin`: `key` now has `value`, newer than anything known.
    pub fn set(
        &mut self,
        key: AdminKey,
        value: AdminValue,
        expires: Option<Expiry>,
        origin: NodeId,
    ) -> Result<(), AdminFull> {
        let entry = AdminEntry {
            key,
            stamp: self.next_stamp(origin),
            value,
            expires: expires.filter(|_| value != AdminValue::Cleared),
        };
        if self.insert(entry) {
            Ok(())
        } else {
            Err(AdminFull::Full)
        }
    }

    /// Merges one entry in; false if it is new and there is no room for it.
    fn insert(&mut self, entry: AdminEntry) -> bool {
        match self.entries.binary_search_by(|e| e.key.cmp(&entry.key)) {
            Ok(i) => {
                self.entries[i] = self.entries[i].merged(entry);
                true
            }
            Err(_) if self.entries.len() >= MAX_ADMIN_ENTRIES && !self.drop_oldest_tombstone() => {
                false
            }
            Err(_) => {
                // The drop may have moved the slot.
                let at = self.entries.partition_point(|e| e.key < entry.key);
                self.entries.insert(at, entry);
                true
            }
        }
    }

    /// Makes room by forgetting the oldest clear. A node that still holds the value it
    /// cleared (one cut off since before that clear) could bring it back: the price of
    /// a bounded table, paid only after `MAX_ADMIN_ENTRIES` distinct constraints.
    fn drop_oldest_tombstone(&mut self) -> bool {
        let oldest = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.in_force())
            .min_by_key(|(_, e)| e.stamp)
            .map(|(i, _)| i);
        oldest.map(|i| self.entries.remove(i)).is_some()
    }

    /// Merges `other` into `self`, entry by entry (and cleanups by maximum).
    pub fn merge(&mut self, other: &AdminState) {
        for e in &other.entries {
            self.insert(*e);
        }
        for &(g, c) in &other.cleanups {
            match self.cleanups.iter_mut().find(|(id, _)| *id == g) {
                Some((_, mine)) => *mine = (*mine).max(c),
                None => self.cleanups.push((g, c)),
            }
        }
        self.cleanups.sort_unstable();
    }

    /// This state as received in a heartbeat stamped `sent_at` on the sender's clock,
    /// with every expiry moved onto the receiver's clock at `now`. The lifetime does
    /// not travel; the copy's is the time it had left when it arrived.
    pub fn rebased(&self, sent_at: Instant, now: Instant) -> AdminState {
        let mut copy = self.clone();
        for e in &mut copy.entries {
            if let Some(x) = &mut e.expires {
                x.lifetime = x.at.saturating_since(sent_at);
                x.at = now + x.lifetime;
            }
        }
        copy
    }

    /// After a start: an expiry further away than its lifetime was stored under a
    /// clock that has since restarted (a reboot resets the boot clock); it is given its
    /// whole lifetime again from `now` (peers that kept running correct it down).
    pub fn after_boot(&mut self, now: Instant) {
        for x in self.entries.iter_mut().filter_map(|e| e.expires.as_mut()) {
            if x.at > now + x.lifetime {
                x.at = now + x.lifetime;
            }
        }
    }

    /// Turns every entry in force whose expiry is at or before `now` into a tombstone
    /// of the same stamp; returns those entries as they were.
    pub fn expire(&mut self, now: Instant) -> Vec<AdminEntry> {
        let mut gone = Vec::new();
        for e in &mut self.entries {
            if e.in_force() && e.expires.is_some_and(|x| x.at <= now) {
                gone.push(*e);
                e.value = AdminValue::Cleared;
            }
        }
        gone
    }

    /// Whether merging `other` in would change no entry's version or value and no
    /// cleanup counter (expiries aside): the steady state, checked without copying.
    pub fn covers(&self, other: &AdminState) -> bool {
        let entries = other.entries.iter().all(|t| {
            self.get(t.key).is_some_and(|o| {
                o.stamp > t.stamp || (o.stamp == t.stamp && (o.value == t.value || !o.in_force()))
            })
        });
        entries
            && other
                .cleanups
                .iter()
                .all(|&(g, c)| self.cleanup_count(g) >= c)
    }

    /// Takes the earlier expiry of every entry `other` (received stamped `sent_at`, now
    /// `now`) holds in the same version: what [`AdminState::merge`] does to expiries.
    pub fn lower_expiries(&mut self, other: &AdminState, sent_at: Instant, now: Instant) {
        for t in &other.entries {
            let Some(x) = t.expires else { continue };
            let Ok(i) = self.entries.binary_search_by(|e| e.key.cmp(&t.key)) else {
                continue;
            };
            let mine = &mut self.entries[i];
            let lifetime = x.at.saturating_since(sent_at);
            let at = now + lifetime;
            if mine.stamp == t.stamp && mine.expires.is_some_and(|m| at < m.at) {
                mine.expires = Some(Expiry { at, lifetime });
            }
        }
    }

    /// When the next entry in force expires.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.in_force()
            .filter_map(|e| e.expires)
            .map(|x| x.at)
            .min()
    }
}

/// The persisted form, which also reads the state files of versions before per-entry
/// versions (one version for the whole record).
mod on_disk {
    use super::*;

    #[derive(Deserialize)]
    #[serde(untagged)]
    pub enum AdminStateOnDisk {
        Current {
            entries: Vec<AdminEntry>,
            #[serde(default)]
            cleanups: Vec<(GroupId, u32)>,
        },
        Legacy(Legacy),
    }

    /// The single last-writer-wins record of older versions.
    #[derive(Deserialize)]
    pub struct Legacy {
        version: u64,
        origin: NodeId,
        #[serde(default)]
        maintenance: bool,
        #[serde(default)]
        standby: Vec<NodeId>,
        #[serde(default)]
        group_maintenance: Vec<GroupId>,
        #[serde(default)]
        moves: Vec<(GroupId, NodeId)>,
        #[serde(default)]
        cleanups: Vec<(GroupId, u32)>,
    }

    impl From<AdminStateOnDisk> for AdminState {
        fn from(disk: AdminStateOnDisk) -> AdminState {
            match disk {
                AdminStateOnDisk::Current { entries, cleanups } => {
                    let mut state = AdminState {
                        entries: Vec::new(),
                        cleanups,
                    };
                    // Through `insert`, so a hand-edited file still ends up sorted,
                    // unique and bounded.
                    for e in entries {
                        state.insert(e);
                    }
                    state
                }
                AdminStateOnDisk::Legacy(old) => old.into(),
            }
        }
    }

    /// Every setting of the old record becomes an entry stamped with the record's
    /// version: older than anything issued since, as it was.
    impl From<Legacy> for AdminState {
        fn from(old: Legacy) -> AdminState {
            let stamp = Stamp {
                counter: old.version,
                origin: old.origin,
            };
            let mut state = AdminState {
                entries: Vec::new(),
                cleanups: old.cleanups,
            };
            let on = |key| (key, AdminValue::On);
            let settings = old
                .maintenance
                .then_some(on(AdminKey::Maintenance))
                .into_iter()
                .chain(old.standby.into_iter().map(|n| on(AdminKey::Standby(n))))
                .chain(
                    old.group_maintenance
                        .into_iter()
                        .map(|g| on(AdminKey::GroupMaintenance(g))),
                )
                .chain(
                    old.moves
                        .into_iter()
                        .map(|(g, n)| (AdminKey::Move(g), AdminValue::MoveTo(n))),
                );
            for (key, value) in settings {
                state.insert(AdminEntry {
                    key,
                    stamp,
                    value,
                    expires: None,
                });
            }
            state
        }
    }
}

#[cfg(test)]
mod tests;
