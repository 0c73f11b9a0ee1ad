//! The guard's picture of what may run on this node: per resource group its exposure
//! (lease deadline), its addresses and the process groups of its resources.
//!
//! Every list has a fixed capacity reserved at start and never grows, so applying a
//! record never allocates. A record that does not fit marks the table `incomplete`:
//! the guard then cannot undo everything by itself and self-fences when it must act.

use super::record::{Exposure, Record, VipEntry};

pub const MAX_GROUPS: usize = 256;
pub const MAX_VIPS: usize = 512;
pub const MAX_PROCESS_GROUPS: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupEntry {
    pub group: u64,
    /// Its slot in the lease page, where renewals arrive.
    pub slot: u16,
    pub exposure: Exposure,
    pub needs_stop: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessGroupEntry {
    pub group: u64,
    pub pgid: i32,
}

#[derive(Debug)]
pub struct Table {
    groups: Vec<GroupEntry>,
    vips: Vec<VipEntry>,
    process_groups: Vec<ProcessGroupEntry>,
    /// A record was dropped for lack of room: what the table says is not all there is.
    incomplete: bool,
}

impl Default for Table {
    fn default() -> Self {
        Table::new()
    }
}

/// Pushes without ever reallocating; false when full.
fn push_bounded<T>(v: &mut Vec<T>, cap: usize, item: T) -> bool {
    if v.len() >= cap {
        return false;
    }
    v.push(item);
    true
}

impl Table {
    pub fn new() -> Table {
        Table {
            groups: Vec::with_capacity(MAX_GROUPS),
            vips: Vec::with_capacity(MAX_VIPS),
            process_groups: Vec::with_capacity(MAX_PROCESS_GROUPS),
            incomplete: false,
        }
    }

    /// Applies one record from the worker (`Ready` carries no state and is ignored).
    pub fn apply(&mut self, record: Record) {
        match record {
            Record::Ready => {}
            Record::Group {
                group,
                slot,
                exposure,
                needs_stop,
            } => self.set_group(group, slot, exposure, needs_stop),
            Record::Vip(vip) => {
                if !self.vips.contains(&vip) && !push_bounded(&mut self.vips, MAX_VIPS, vip) {
                    self.incomplete = true;
                }
            }
            Record::ClearVips { group } => self.vips.retain(|v| v.group != group),
            Record::ProcessGroup { group, pgid } => {
                let entry = ProcessGroupEntry { group, pgid };
                if !self.process_groups.contains(&entry)
                    && !push_bounded(&mut self.process_groups, MAX_PROCESS_GROUPS, entry)
                {
                    self.incomplete = true;
                }
            }
            Record::ProcessGroupGone { group, pgid } => self
                .process_groups
                .retain(|p| !(p.group == group && p.pgid == pgid)),
        }
    }

    fn set_group(&mut self, group: u64, slot: u16, exposure: Exposure, needs_stop: bool) {
        if exposure == Exposure::Idle {
            // Nothing runs: its process groups are done with, and their ids may be
            // reused by unrelated processes from now on.
            self.groups.retain(|g| g.group != group);
            self.process_groups.retain(|p| p.group != group);
            return;
        }
        let entry = GroupEntry {
            group,
            slot,
            exposure,
            needs_stop,
        };
        match self.groups.iter_mut().find(|g| g.group == group) {
            Some(g) => *g = entry,
            None => {
                if !push_bounded(&mut self.groups, MAX_GROUPS, entry) {
                    self.incomplete = true;
                }
            }
        }
    }

    /// Groups that may run something here.
    pub fn exposed(&self) -> &[GroupEntry] {
        &self.groups
    }

    pub fn is_exposed(&self) -> bool {
        !self.groups.is_empty()
    }

    pub fn is_incomplete(&self) -> bool {
        self.incomplete
    }

    /// The earliest lease end among exposed groups, with its group. `renewed(slot)` is
    /// the latest renewal in the lease page: a lease ends at the later of it and the
    /// end its record announced.
    pub fn earliest_lease_end(&self, renewed: impl Fn(u16) -> u64) -> Option<(u64, u64)> {
        self.groups
            .iter()
            .filter_map(|g| match g.exposure {
                Exposure::Leased { until_ns } => Some((until_ns.max(renewed(g.slot)), g.group)),
                _ => None,
            })
            .min()
    }

    /// When the guard must act if nothing is renewed: `lead_ns` before the earliest
    /// lease end.
    pub fn act_at(&self, lead_ns: u64, renewed: impl Fn(u16) -> u64) -> Option<u64> {
        self.earliest_lease_end(renewed)
            .map(|(until, _)| until.saturating_sub(lead_ns))
    }

    /// Whether an exposed group has resources only their agent (or a self-fence) can
    /// stop, or the table lost track of something.
    pub fn needs_more_than_kill(&self) -> bool {
        self.incomplete || self.groups.iter().any(|g| g.needs_stop)
    }

    /// The addresses of exposed groups.
    pub fn exposed_vips(&self) -> impl Iterator<Item = &VipEntry> {
        self.vips
            .iter()
            .filter(|v| self.groups.iter().any(|g| g.group == v.group))
    }

    /// The process groups of exposed groups.
    pub fn exposed_process_groups(&self) -> impl Iterator<Item = &ProcessGroupEntry> {
        self.process_groups
            .iter()
            .filter(|p| self.groups.iter().any(|g| g.group == p.group))
    }

    /// Everything was taken down (or the node fenced): nothing is exposed any more.
    pub fn clear_exposure(&mut self) {
        self.groups.clear();
        self.process_groups.clear();
        self.incomplete = false;
    }

    /// A new worker starts: it registers its addresses again.
    pub fn forget_vips(&mut self) {
        self.vips.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn leased(group: u64, until_ns: u64) -> Record {
        Record::Group {
            group,
            slot: group as u16,
            exposure: Exposure::Leased { until_ns },
            needs_stop: false,
        }
    }

    fn vip(group: u64, last: u8) -> Record {
        Record::Vip(VipEntry {
            group,
            ifindex: 2,
            address: IpAddr::from([192, 0, 2, last]),
            prefix: 24,
        })
    }

    #[test]
    fn acts_before_the_earliest_lease_and_follows_renewals() {
        let none = |_| 0;
        let mut t = Table::new();
        assert_eq!(t.act_at(5, none), None);
        t.apply(leased(1, 1_000));
        t.apply(leased(2, 800));
        assert_eq!(t.act_at(5, none), Some(795));
        t.apply(leased(2, 2_000));
        assert_eq!(t.act_at(5, none), Some(995));
        t.apply(Record::Group {
            group: 1,
            slot: 1,
            exposure: Exposure::Unbounded,
            needs_stop: false,
        });
        assert_eq!(
            t.act_at(5, none),
            Some(1_995),
            "an unbounded group has no deadline"
        );
        assert!(t.is_exposed());
        // Renewals through the lease page move the deadline later, never earlier.
        assert_eq!(
            t.act_at(5, |slot| if slot == 2 { 3_000 } else { 0 }),
            Some(2_995)
        );
        assert_eq!(t.act_at(5, |_| 10), Some(1_995));
    }

    #[test]
    fn only_exposed_groups_are_taken_down_and_idle_forgets_process_groups() {
        let mut t = Table::new();
        t.apply(vip(1, 10));
        t.apply(vip(1, 10));
        t.apply(vip(2, 20));
        t.apply(leased(1, 100));
        t.apply(Record::ProcessGroup { group: 1, pgid: 77 });
        t.apply(Record::ProcessGroup { group: 2, pgid: 88 });
        let vips: Vec<_> = t.exposed_vips().map(|v| v.address).collect();
        assert_eq!(
            vips,
            vec![IpAddr::from([192, 0, 2, 10])],
            "duplicates kept once"
        );
        let pgs: Vec<_> = t.exposed_process_groups().map(|p| p.pgid).collect();
        assert_eq!(pgs, vec![77]);
        t.apply(Record::Group {
            group: 1,
            slot: 1,
            exposure: Exposure::Idle,
            needs_stop: false,
        });
        assert!(!t.is_exposed());
        assert_eq!(t.exposed_vips().count(), 0);
        t.apply(leased(1, 100));
        assert_eq!(
            t.exposed_process_groups().count(),
            0,
            "pgid 77 may be reused now"
        );
        assert_eq!(
            t.exposed_vips().count(),
            1,
            "addresses are configuration: kept"
        );
    }

    #[test]
    fn a_gone_process_group_is_forgotten() {
        let mut t = Table::new();
        t.apply(leased(1, 100));
        t.apply(Record::ProcessGroup { group: 1, pgid: 5 });
        t.apply(Record::ProcessGroupGone { group: 1, pgid: 5 });
        assert_eq!(t.exposed_process_groups().count(), 0);
    }

    #[test]
    fn overflow_marks_the_table_incomplete_instead_of_growing() {
        let mut t = Table::new();
        t.apply(leased(1, 100));
        assert!(!t.needs_more_than_kill());
        for i in 0..=MAX_PROCESS_GROUPS as i32 {
            t.apply(Record::ProcessGroup { group: 1, pgid: i });
        }
        assert!(t.is_incomplete());
        assert!(t.needs_more_than_kill());
        assert_eq!(t.process_groups.capacity(), MAX_PROCESS_GROUPS);
        t.clear_exposure();
        assert!(!t.is_incomplete());
    }

    #[test]
    fn needs_stop_asks_for_more_than_kill() {
        let mut t = Table::new();
        t.apply(Record::Group {
            group: 9,
            slot: 9,
            exposure: Exposure::Unbounded,
            needs_stop: true,
        });
        assert!(t.needs_more_than_kill());
    }
}
