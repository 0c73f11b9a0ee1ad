//! What a valid config can still get wrong: the risks `tandemctl config check` points
//! out and tandemd logs at start. Each is a value, so tests and callers match on what
//! was found; the sentence is written once, in `Display`, for people.

use super::duration::format_duration;
use super::model::Config;
use super::validate::FragmentationWarning;
use crate::core::spec::NoQuorumPolicy;
use crate::core::spec::OnFail;
use std::fmt;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigWarning {
    IgnoreQuorum,
    TwoNodeWithoutFencing,
    DeadtimeUnderThreeIntervals {
        deadtime: Duration,
        interval: Duration,
    },
    OneLink,
    /// An owner node present on one of several links.
    NodeOnOneLink {
        node: String,
        links: usize,
    },
    NoSelfFence,
    Fragmentation(FragmentationWarning),
    OnFailBlock {
        group: String,
    },
    /// `promotable: true` is read and checked, but nothing promotes yet (issue 25).
    PromotableNotPromoted {
        group: String,
        resource: String,
    },
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigWarning::IgnoreQuorum => write!(
                f,
                "quorum.no_quorum_policy is `ignore`: groups may run on both sides of a partition"
            ),
            ConfigWarning::TwoNodeWithoutFencing => write!(
                f,
                "two_node without fence agents: a node will never take over from a peer it cannot see"
            ),
            ConfigWarning::DeadtimeUnderThreeIntervals { deadtime, interval } => write!(
                f,
                "heartbeat.deadtime ({}) is less than 3 intervals ({}): two lost packets cause a failover",
                format_duration(*deadtime),
                format_duration(*interval)
            ),
            ConfigWarning::OneLink => write!(
                f,
                "only one heartbeat link: a single cable or switch failure looks like a node failure"
            ),
            ConfigWarning::NodeOnOneLink { node, links } => write!(
                f,
                "node {node} is on one of the {links} heartbeat links: a single cable or switch failure separates it from the others"
            ),
            ConfigWarning::NoSelfFence => write!(
                f,
                "fencing.self_fence is `none`: a node that cannot stop its groups keeps running them"
            ),
            ConfigWarning::Fragmentation(w) => write!(f, "{w}"),
            ConfigWarning::OnFailBlock { group } => write!(
                f,
                "group {group}: on_fail `block` leaves a failed stop unresolved when the lease runs out"
            ),
            ConfigWarning::PromotableNotPromoted { group, resource } => write!(
                f,
                "group {group}: resource {resource} is promotable, but this version runs it like \
                 any other resource (started on the owner only) and never promotes it"
            ),
        }
    }
}

/// Every risk of `config`, in a stable order.
pub(super) fn of(config: &Config) -> Vec<ConfigWarning> {
    let mut w = Vec::new();
    if config.quorum.no_quorum_policy == NoQuorumPolicy::Ignore {
        w.push(ConfigWarning::IgnoreQuorum);
    }
    if config.quorum.two_node && config.fencing.agents.is_empty() {
        w.push(ConfigWarning::TwoNodeWithoutFencing);
    }
    let t = &config.heartbeat.timing;
    if t.deadtime < t.interval * 3 {
        w.push(ConfigWarning::DeadtimeUnderThreeIntervals {
            deadtime: t.deadtime,
            interval: t.interval,
        });
    }
    let links = config.links();
    if links == 1 {
        w.push(ConfigWarning::OneLink);
    }
    // A witness on one link is the point of `null` addresses; a node that may own
    // groups there loses the link redundancy the cluster was built with.
    for n in config.nodes.iter().filter(|n| !n.witness) {
        if links > 1 && n.addresses.iter().flatten().count() == 1 {
            w.push(ConfigWarning::NodeOnOneLink {
                node: n.name.clone(),
                links,
            });
        }
    }
    if config.fencing.self_fence == super::model::SelfFence::None {
        w.push(ConfigWarning::NoSelfFence);
    }
    w.extend(super::validate::fragmentation_warning(config).map(ConfigWarning::Fragmentation));
    for g in &config.groups {
        if g.on_fail == OnFail::Block {
            w.push(ConfigWarning::OnFailBlock {
                group: g.name.clone(),
            });
        }
        for r in g.resources.iter().filter(|r| r.promotable) {
            w.push(ConfigWarning::PromotableNotPromoted {
                group: g.name.clone(),
                resource: r.name.clone(),
            });
        }
    }
    w
}
