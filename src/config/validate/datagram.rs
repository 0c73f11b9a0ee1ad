//! How large a heartbeat of this config can grow. A heartbeat carries an entry per peer
//! and per group, so a large enough cluster produces datagrams that the kernel
//! IP-fragments: a lost fragment loses the whole heartbeat, and fragments are what
//! firewalls drop first. That costs liveness, not safety, and clusters that run fine
//! today in steady state would only meet it in a large handover, so above
//! [`HEARTBEAT_BUDGET`] the config loads with a warning (`tandemctl config check`, and the
//! daemon's journal at every load). What the codec cannot encode at all is refused: a
//! node whose heartbeat cannot be built goes silent, and its peers would take it for
//! dead.
//!
//! The per-entry sizes come from the codec itself (`wire::encode_body` of a heartbeat
//! with one more entry of each list), so this file holds no copy of the layout.

use super::super::model::{Config, GroupConfig, NodeConfig};
use super::ctx::Ctx;
use crate::core::admin_state::{AdminEntry, AdminKey, AdminValue, Expiry, Stamp};
use crate::core::ids::{GroupId, NodeId, Term};
use crate::core::message::{
    AdminState, Echo, FenceRecord, Grant, GroupReport, Heartbeat, NodeFlags, PeerView, Phase,
    MAX_GROUPS,
};
use crate::core::time::Instant;
use crate::wire::{encode_body, HEADER_LEN, MAX_DATAGRAM, TAG_LEN};

/// Largest heartbeat (UDP payload: header, sealed body, tag) a config may produce: one
/// Ethernet frame of 1500 bytes less an IPv6 header (40) and a UDP header (8), with 52
/// bytes to spare for a VLAN tag, a tunnel or IP options. The same for IPv4 and IPv6
/// links, so a config does not change meaning with the address family.
pub const HEARTBEAT_BUDGET: usize = 1400;

/// The largest heartbeat of a config and what it is made of, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeartbeatSize {
    /// The whole datagram's payload: `fixed + per_node * nodes + groups_bytes`.
    pub bytes: usize,
    /// Header, tag and the body's fixed part.
    pub fixed: usize,
    /// What the nodes add, in all.
    pub nodes_bytes: usize,
    /// What the groups add, in all.
    pub groups_bytes: usize,
    /// What the most expensive group adds (for "at most K groups").
    pub per_group_max: usize,
    /// Group reports in the largest heartbeat (the codec carries at most `MAX_GROUPS`).
    pub reports: usize,
}

/// Bytes each list entry adds to an encoded heartbeat.
struct EntrySizes {
    empty: usize,
    echo: usize,
    view: usize,
    fenced: usize,
    standby: usize,
    report: usize,
    grant: usize,
    refuse: usize,
    group_maintenance: usize,
    moves: usize,
    cleanup: usize,
}

fn empty_heartbeat() -> Heartbeat {
    Heartbeat {
        from: NodeId(1),
        incarnation: 0,
        seq: 0,
        sent_at: Instant::ZERO,
        config_digest: 0,
        flags: NodeFlags::default(),
        echoes: Vec::new(),
        view: Vec::new(),
        groups: Vec::new(),
        grants: Vec::new(),
        fenced: Vec::new(),
        refuses: Vec::new(),
        admin: AdminState::default(),
    }
}

/// Adds an admin entry for `key` at its largest: a move in force with a lifetime.
fn admin_entry(hb: &mut Heartbeat, key: AdminKey) {
    let (value, expires) = match key {
        AdminKey::Move(_) => (
            AdminValue::MoveTo(NodeId(2)),
            Some(Expiry {
                at: Instant::ZERO,
                lifetime: std::time::Duration::ZERO,
            }),
        ),
        _ => (AdminValue::On, None),
    };
    hb.admin.entries.push(AdminEntry {
        key,
        stamp: Stamp::default(),
        value,
        expires,
    });
}

/// Encoded body length of `hb`; the heartbeats built here have one entry per list at
/// most, far below every codec limit, so an error is a broken codec.
fn body_len(hb: &Heartbeat) -> usize {
    encode_body(hb).map_or(usize::MAX / 2, |b| b.len())
}

impl EntrySizes {
    fn from_codec() -> EntrySizes {
        let empty = body_len(&empty_heartbeat());
        let with = |add: fn(&mut Heartbeat)| {
            let mut hb = empty_heartbeat();
            add(&mut hb);
            body_len(&hb).saturating_sub(empty)
        };
        // The ids do not change the sizes: the codec writes them at fixed width.
        EntrySizes {
            empty,
            echo: with(|hb| {
                hb.echoes.push(Echo {
                    peer: NodeId(2),
                    seq: 0,
                    sent_at: Instant::ZERO,
                    held_ns: 0,
                })
            }),
            view: with(|hb| {
                hb.view.push(PeerView {
                    node: NodeId(2),
                    up: true,
                })
            }),
            fenced: with(|hb| {
                hb.fenced.push(FenceRecord {
                    node: NodeId(2),
                    incarnation: 0,
                })
            }),
            standby: with(|hb| admin_entry(hb, AdminKey::Standby(NodeId(2)))),
            report: with(|hb| {
                hb.groups.push(GroupReport {
                    group: GroupId(0),
                    term: Term(0),
                    owner: Some(NodeId(2)),
                    owner_incarnation: 0,
                    phase: Phase::Running,
                    handoff_to: Some(NodeId(2)),
                })
            }),
            grant: with(|hb| {
                hb.grants.push(Grant {
                    group: GroupId(0),
                    term: Term(0),
                    to: NodeId(2),
                    echo_sent_at: Instant::ZERO,
                })
            }),
            refuse: with(|hb| hb.refuses.push(GroupId(0))),
            group_maintenance: with(|hb| admin_entry(hb, AdminKey::GroupMaintenance(GroupId(0)))),
            moves: with(|hb| admin_entry(hb, AdminKey::Move(GroupId(0)))),
            cleanup: with(|hb| hb.admin.cleanups.push((GroupId(0), 1))),
        }
    }
}

/// The largest heartbeat a node of this cluster can send. Every list at its bound:
///
/// - per other node: an echo, a view entry and a fence record (`fenced` keeps one per
///   node ever fenced);
/// - per node: an admin `standby` entry;
/// - per group: the report of the newest term, a `released` report about the sender,
///   and one holder report per node that may own the group (an idle node gossips every
///   holder that has not let go yet), one grant (a node promises a group to one node at
///   a time), one `refuses` entry, and the admin `group_maintenance`, `moves` and
///   `cleanups` entries. (`tandemctl ban` adds an entry per banned node and group on
///   top: 26 bytes each, a few in practice.)
///
/// A steady cluster sends much less (one report and one grant per group); the bound is
/// what a handover after fences and admin commands can reach, and it is the one that
/// must fit, since that is when heartbeats matter most.
pub fn largest_heartbeat_of(nodes: &[NodeConfig], groups: &[GroupConfig]) -> HeartbeatSize {
    let s = EntrySizes::from_codec();
    let n = nodes.len();
    let peers = n.saturating_sub(1);
    let owners_default = nodes.iter().filter(|x| !x.witness).count();
    let owners = |g: &GroupConfig| {
        if g.nodes.is_empty() {
            owners_default
        } else {
            g.nodes.len()
        }
    };
    let per_group = |g: &GroupConfig| {
        (2 + owners(g)) * s.report + s.grant + s.refuse + s.group_maintenance + s.moves + s.cleanup
    };
    let fixed = HEADER_LEN + s.empty + TAG_LEN;
    let nodes_bytes = peers * (s.echo + s.view + s.fenced) + n * s.standby;
    let groups_bytes = groups.iter().map(per_group).sum();
    HeartbeatSize {
        bytes: fixed + nodes_bytes + groups_bytes,
        fixed,
        nodes_bytes,
        groups_bytes,
        per_group_max: groups.iter().map(per_group).max().unwrap_or(0),
        reports: groups.iter().map(|g| 2 + owners(g)).sum(),
    }
}

/// [`largest_heartbeat_of`] a loaded config.
pub fn largest_heartbeat(config: &Config) -> HeartbeatSize {
    largest_heartbeat_of(&config.nodes, &config.groups)
}

/// Refuses a config whose largest heartbeat the codec could not encode: more group
/// reports than one heartbeat carries, or more bytes than one datagram may hold.
pub(super) fn check(ctx: &mut Ctx, nodes: &[NodeConfig], groups: &[GroupConfig]) {
    let size = largest_heartbeat_of(nodes, groups);
    let why = if size.reports > MAX_GROUPS {
        format!(
            "a heartbeat of this cluster can carry {} group reports (2 + the nodes that may \
             own it, per group), more than the {MAX_GROUPS} the wire format holds",
            size.reports
        )
    } else if size.bytes > MAX_DATAGRAM {
        format!(
            "a heartbeat of this cluster can reach {} bytes, more than the {MAX_DATAGRAM} one \
             datagram may hold",
            size.bytes
        )
    } else {
        return;
    };
    let path = if groups.is_empty() { "nodes" } else { "groups" };
    ctx.at_key(
        path,
        format!("{why}: no heartbeat could be built in a large handover; use fewer groups or restrict `nodes:` of some"),
    );
}

/// A config whose largest heartbeat exceeds [`HEARTBEAT_BUDGET`]: the sizes, and how
/// many groups of the costliest kind would fit with these nodes. `Display` is the
/// warning `config check` and the journal print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragmentationWarning {
    pub size: HeartbeatSize,
    pub nodes: usize,
    pub groups: usize,
    /// Groups that would fit; 0: none, the nodes alone leave no room.
    pub groups_that_fit: usize,
}

impl std::fmt::Display for FragmentationWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.size;
        write!(
            f,
            "a heartbeat of this cluster can reach {} bytes ({} fixed + {} for {} nodes + {} for {} \
             group(s)), more than the {HEARTBEAT_BUDGET} bytes that fit one datagram below a \
             1500-byte MTU: the kernel IP-fragments such heartbeats, and one lost fragment loses \
             the heartbeat (",
            s.bytes, s.fixed, s.nodes_bytes, self.nodes, s.groups_bytes, self.groups,
        )?;
        match self.groups_that_fit {
            0 => write!(f, "no group fits with this many nodes)"),
            k => write!(f, "at most {k} such groups fit with these nodes)"),
        }
    }
}

/// The warning for a config whose largest heartbeat exceeds [`HEARTBEAT_BUDGET`].
pub fn fragmentation_warning(config: &Config) -> Option<FragmentationWarning> {
    let size = largest_heartbeat(config);
    if size.bytes <= HEARTBEAT_BUDGET {
        return None;
    }
    let room = HEARTBEAT_BUDGET.saturating_sub(size.fixed + size.nodes_bytes);
    Some(FragmentationWarning {
        size,
        nodes: config.nodes.len(),
        groups: config.groups.len(),
        groups_that_fit: room / size.per_group_max.max(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{generate_key, parse_str, write_key, Config, ConfigErrors};

    /// A cluster of `nodes` nodes (n3 and up witnesses) and `groups` one-resource groups,
    /// loaded through the whole config path.
    fn load(nodes: usize, groups: usize) -> Result<Config, ConfigErrors> {
        let key = std::env::temp_dir().join(format!(
            "tandem-datagram-test-{}-{nodes}-{groups}",
            std::process::id()
        ));
        write_key(&key, &generate_key(), false).expect("write test key");
        let mut y = format!(
            "cluster:\n  name: t\n  authkey: {}\nnodes:\n",
            key.display()
        );
        for i in 1..=nodes {
            y.push_str(&format!("  - name: n{i}\n    addresses: [10.0.0.{i}]\n"));
            if i >= 3 {
                y.push_str("    witness: true\n");
            }
        }
        y.push_str("fencing:\n  self_fence: none\ngroups:\n");
        for g in 1..=groups {
            y.push_str(&format!(
                "  - name: g{g}\n    resources:\n      \
                 - exec: {{ name: x, start: /bin/true, stop: /bin/true }}\n"
            ));
        }
        let config = parse_str(&y, "test.yaml");
        let _ = std::fs::remove_file(&key);
        config
    }

    #[test]
    fn the_sizes_are_the_codecs() {
        // By the layout in wire/mod.rs: echo 26, view 3, fence record 10, standby 14;
        // report 25, grant 22, refuse 4, group_maintenance 16, move with a lifetime 26,
        // cleanup 8.
        let s = EntrySizes::from_codec();
        let per_node = (s.echo, s.view, s.fenced, s.standby);
        assert_eq!(per_node, (26, 3, 10, 14));
        let per_group = (
            s.report,
            s.grant,
            s.refuse,
            s.group_maintenance,
            s.moves,
            s.cleanup,
        );
        assert_eq!(per_group, (25, 22, 4, 16, 26, 8));
        let config = load(3, 1).expect("3 nodes, 1 group load");
        let size = largest_heartbeat(&config);
        // Two peers x 39, three standby x 14; one group owned by n1 or n2: 4 reports.
        assert_eq!(size.nodes_bytes, 2 * 39 + 3 * 14);
        assert_eq!(size.groups_bytes, 4 * 25 + 22 + 4 + 16 + 26 + 8);
        assert_eq!(size.fixed, HEADER_LEN + TAG_LEN + s.empty);
        assert_eq!(
            size.bytes,
            size.fixed + size.nodes_bytes + size.groups_bytes
        );
    }

    #[test]
    fn a_heartbeat_above_one_datagram_is_a_warning_not_an_error() {
        // 3 nodes: 226 bytes before the groups, 176 per group: 6 fit, 7 do not.
        let six = load(3, 6).expect("6 groups load");
        assert!(largest_heartbeat(&six).bytes <= HEARTBEAT_BUDGET);
        assert_eq!(fragmentation_warning(&six), None);
        let seven = load(3, 7).expect("7 groups load, with a warning");
        let warning = fragmentation_warning(&seven).expect("a warning");
        assert_eq!(warning.size.bytes, 1458);
        assert_eq!((warning.nodes, warning.groups), (3, 7));
        assert_eq!(warning.groups_that_fit, 6);
        assert!(
            seven
                .warnings()
                .contains(&crate::config::ConfigWarning::Fragmentation(warning)),
            "{:?}",
            seven.warnings()
        );
        // Nodes alone can exceed it: 32 nodes leave no room for any group.
        let many = load(32, 1).expect("32 nodes load, with a warning");
        let warning = fragmentation_warning(&many).expect("a warning");
        assert_eq!(warning.groups_that_fit, 0);
    }

    #[test]
    fn a_heartbeat_the_codec_cannot_carry_is_refused() {
        // 2 owners: 4 reports a group; 64 groups are 256 reports, 65 are one group too many.
        let fits = load(3, 64).expect("64 groups load");
        assert_eq!(largest_heartbeat(&fits).reports, MAX_GROUPS);
        let errors = load(3, 65).expect_err("65 groups are refused").0;
        assert_eq!(errors.len(), 1, "{errors:?}");
        // The boundary is the codec's: one group more than the 256 reports that fit.
        assert_eq!(errors[0].path.as_deref(), Some("groups"), "{}", errors[0]);
        assert_eq!(largest_heartbeat(&fits).reports + 4, 260);
    }
}
