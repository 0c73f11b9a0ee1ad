//! The worker's reports to its lease guard (see `crate::guard`): which groups may run
//! here and until when, their addresses, and when the worker is ready.
//!
//! Called by the heartbeat thread after every input and *before* the actions it
//! produced are carried out, so the guard knows of a lease before the first resource
//! of the group starts. Only changes are sent: a renewal as one store in the lease
//! page, anything else as a record.

use crate::config::{Config, GroupConfig, ResourceKind};
use crate::core::{GroupId, Node};
use crate::guard::link::{GuardGone, GuardLink};
use crate::guard::{Exposure, Record, VipEntry};
use std::collections::BTreeMap;

pub struct GuardReports {
    link: Option<&'static GuardLink>,
    sent: BTreeMap<GroupId, Sent>,
    /// Each group's slot in the lease page, handed out once per worker.
    slots: BTreeMap<GroupId, u16>,
}

/// What the guard was last told of a group.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Sent {
    exposure: Exposure,
    needs_stop: bool,
}

impl Sent {
    /// Only the lease end moved: a renewal, which the lease page carries.
    fn is_renewal_of(&self, old: &Sent) -> bool {
        self.needs_stop == old.needs_stop
            && matches!(
                (self.exposure, old.exposure),
                (Exposure::Leased { .. }, Exposure::Leased { .. })
            )
    }
}

impl GuardReports {
    /// Reports through the process's guard link, if it has one.
    pub fn new() -> GuardReports {
        GuardReports {
            link: crate::guard::link::get(),
            sent: BTreeMap::new(),
            slots: BTreeMap::new(),
        }
    }

    pub fn is_guarded(&self) -> bool {
        self.link.is_some()
    }

    /// What may run of each group, if it differs from what the guard knows: a renewal
    /// as one store in the lease page, any other change as a record.
    /// `previous`: the config before the last reload, whose definitions still run for
    /// groups that are stopping under it (a removed group, a changed resource).
    pub fn sync(
        &mut self,
        node: &Node,
        config: &Config,
        previous: Option<&Config>,
    ) -> Result<(), GuardGone> {
        let Some((link, defs)) = self.reach(config, previous) else {
            return Ok(());
        };
        for group in group_ids(&defs) {
            let now = Sent {
                exposure: exposure(node, group),
                needs_stop: defs
                    .iter()
                    .filter(|d| d.id == group)
                    .flat_map(|d| &d.resources)
                    .any(|r| needs_agent_stop(&r.kind)),
            };
            let before = self.sent.get(&group).copied();
            if before == Some(now) {
                continue;
            }
            let slot = self.slot(group);
            if let Exposure::Leased { until_ns } = now.exposure {
                // Before the record: the guard must never read an older renewal for a
                // lease it has just been told of.
                let page = link.renew(slot, until_ns);
                if page && before.is_some_and(|b| now.is_renewal_of(&b)) {
                    self.sent.insert(group, now);
                    continue;
                }
            } else {
                link.renew(slot, 0);
            }
            link.send(Record::Group {
                group: u64::from(group.0),
                slot,
                exposure: now.exposure,
                needs_stop: now.needs_stop,
            })?;
            self.sent.insert(group, now);
        }
        Ok(())
    }

    /// The guard link (None: no guard, nothing to report) and every group definition
    /// the worker may be running: those of `config`, then those of `previous`.
    fn reach<'a>(
        &self,
        config: &'a Config,
        previous: Option<&'a Config>,
    ) -> Option<(&'static GuardLink, Vec<&'a GroupConfig>)> {
        let older = previous.map(|p| p.groups.as_slice()).unwrap_or_default();
        Some((self.link?, config.groups.iter().chain(older).collect()))
    }

    fn slot(&mut self, group: GroupId) -> u16 {
        let next = self.slots.len() as u16;
        *self.slots.entry(group).or_insert(next)
    }

    /// Registers every address of the `vip` resources of `config` and of `previous`
    /// (again after a reload: a changed address may still be up until its group has
    /// restarted under the new definition).
    pub fn register_addresses(
        &self,
        config: &Config,
        previous: Option<&Config>,
    ) -> Result<(), GuardGone> {
        let Some((link, defs)) = self.reach(config, previous) else {
            return Ok(());
        };
        // All clears first: a group defined in both configs keeps the addresses of
        // both.
        let clears = group_ids(&defs).into_iter().map(|group| Record::ClearVips {
            group: u64::from(group.0),
        });
        for record in clears.chain(vip_records(&defs)) {
            link.send(record)?;
        }
        Ok(())
    }

    pub fn ready(&self) -> Result<(), GuardGone> {
        match self.link {
            Some(link) => link.send(Record::Ready),
            None => Ok(()),
        }
    }
}

impl Default for GuardReports {
    fn default() -> Self {
        GuardReports::new()
    }
}

/// The groups of `defs`, each once, in order.
fn group_ids(defs: &[&GroupConfig]) -> Vec<GroupId> {
    let mut ids: Vec<GroupId> = Vec::with_capacity(defs.len());
    for d in defs {
        if !ids.contains(&d.id) {
            ids.push(d.id);
        }
    }
    ids
}

/// A `Vip` record for every `vip` resource of `defs` whose interface exists.
fn vip_records(defs: &[&GroupConfig]) -> Vec<Record> {
    let mut records = Vec::new();
    for group in defs {
        let id = u64::from(group.id.0);
        for r in &group.resources {
            let ResourceKind::Vip {
                address,
                prefix,
                interface,
                ..
            } = &r.kind
            else {
                continue;
            };
            match nix::net::if_::if_nametoindex(interface.as_str()) {
                Ok(ifindex) => records.push(Record::Vip(VipEntry {
                    group: id,
                    ifindex,
                    address: *address,
                    prefix: *prefix,
                })),
                // The vip agent cannot add it either until the interface exists;
                // a reload registers it again.
                Err(e) => tracing::warn!(
                    resource = r.name.as_str(),
                    "interface {interface}: {e}; the guard cannot remove {address} if it must act"
                ),
            }
        }
    }
    records
}

/// What the guard must assume of `group` on this node.
fn exposure(node: &Node, group: GroupId) -> Exposure {
    // A group in maintenance is the admin's: a shutdown leaves it running, so must the
    // guard.
    if !node.runs(group) || node.in_maintenance(group) {
        return Exposure::Idle;
    }
    match node.lease_until(group) {
        Some(until) if node.lease_is_enforced() => Exposure::Leased {
            until_ns: until.as_nanos(),
        },
        _ => Exposure::Unbounded,
    }
}

/// Resources the guard cannot take down with netlink or by killing a process group:
/// services run by systemd, and whatever LSB scripts and OCF agents start (they
/// daemonize out of the process group they were started in).
fn needs_agent_stop(kind: &ResourceKind) -> bool {
    matches!(
        kind,
        ResourceKind::Systemd { .. } | ResourceKind::Lsb { .. } | ResourceKind::Ocf { .. }
    )
}
