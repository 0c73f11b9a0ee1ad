//! Resolves the daemon's [`Settings`](super::Settings) from the config file and the
//! command line. The pure pieces (which node am I, which sockets do I open) are separate
//! functions so they are tested without a config file.

use super::Settings;
use crate::core::NodeId;
use crate::net::LinkPlan;
use crate::wire::{Key, Keyring};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{0}")]
    Config(String),
    #[error("node {name:?} is not in the config (configured nodes: {}); pass --node NAME", known.join(", "))]
    UnknownNode { name: String, known: Vec<String> },
}

/// One configured node's heartbeat addresses, as the daemon needs them.
#[derive(Clone, Debug)]
pub struct NodeLinks {
    pub id: NodeId,
    pub name: String,
    /// One entry per link; `None` where the node is not on the link.
    pub addresses: Vec<Option<IpAddr>>,
    /// One optional interface per link.
    pub interfaces: Vec<Option<String>>,
}

/// The index of the node called `name`, or an error listing the configured names.
pub fn find_node(nodes: &[NodeLinks], name: &str) -> Result<usize, SettingsError> {
    nodes
        .iter()
        .position(|n| n.name == name)
        .ok_or_else(|| SettingsError::UnknownNode {
            name: name.to_string(),
            known: nodes.iter().map(|n| n.name.clone()).collect(),
        })
}

/// One plan per link node `me` is on: its own address and interface on that link, and
/// the address of every other node on the same link (a node absent from a link is not
/// sent to there).
pub fn link_plans(nodes: &[NodeLinks], me: usize) -> Vec<LinkPlan> {
    let Some(local) = nodes.get(me) else {
        return Vec::new();
    };
    local
        .addresses
        .iter()
        .enumerate()
        .filter_map(|(index, addr)| {
            Some(LinkPlan {
                index,
                local: (*addr)?,
                interface: local.interfaces.get(index).cloned().flatten(),
                peers: nodes
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != me)
                    .filter_map(|(_, n)| {
                        n.addresses.get(index).copied().flatten().map(|a| (n.id, a))
                    })
                    .collect(),
            })
        })
        .collect()
}

/// Loads the config file and resolves everything for node `node`. Config errors come
/// back as one message with every error on its own line.
pub fn load(
    config: &Path,
    node: &str,
    socket: PathBuf,
    state_dir: PathBuf,
) -> Result<Settings, SettingsError> {
    let cfg = crate::config::load(config).map_err(|e| SettingsError::Config(e.to_string()))?;
    // What `tandemctl config check` points out, in the journal too: an admin who never
    // ran the check still learns that the config is valid but risky.
    for warning in cfg.warnings() {
        tracing::warn!("config warning: {warning}");
    }
    let mut settings = from_config(&cfg, node, socket, state_dir)?;
    settings.config_path = Some(config.to_path_buf());
    Ok(settings)
}

/// Resolves the daemon's settings from an already validated config.
pub fn from_config(
    cfg: &crate::config::Config,
    node: &str,
    socket: PathBuf,
    state_dir: PathBuf,
) -> Result<Settings, SettingsError> {
    let nodes: Vec<NodeLinks> = cfg
        .nodes
        .iter()
        .map(|n| NodeLinks {
            id: n.id,
            name: n.name.clone(),
            addresses: n.addresses.clone(),
            interfaces: n.interfaces.clone(),
        })
        .collect();
    let me = find_node(&nodes, node)?;
    let keyring = Keyring {
        current: Key::new(cfg.keys.current),
        next: cfg.keys.next.map(Key::new),
    };
    Ok(Settings {
        cluster_name: cfg.cluster.name.clone(),
        cluster_id: cfg.cluster.cluster_id,
        spec: cfg.cluster_spec(),
        me: nodes[me].id,
        links: link_plans(&nodes, me),
        port: cfg.heartbeat.port,
        keyring,
        realtime: cfg.heartbeat.realtime,
        mlockall: cfg.heartbeat.mlockall,
        socket,
        state_dir,
        config_path: None,
        config: std::sync::Arc::new(cfg.clone()),
        agents: true,
        metrics: cfg.metrics.as_ref().map(|m| m.listen),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<NodeLinks> {
        (1..=3u8)
            .map(|i| NodeLinks {
                id: NodeId(u16::from(i)),
                name: format!("n{i}"),
                addresses: vec![
                    Some(IpAddr::from([192, 0, 2, i])),
                    Some(IpAddr::from([198, 51, 100, i])),
                ],
                interfaces: vec![Some("eth0".into()), None],
            })
            .collect()
    }

    #[test]
    fn plans_pair_each_link_with_the_peers_on_it() {
        let plans = link_plans(&nodes(), 1);
        assert_eq!(plans.len(), 2);
        assert_eq!(plans[0].local, IpAddr::from([192, 0, 2, 2]));
        assert_eq!(plans[0].interface.as_deref(), Some("eth0"));
        assert_eq!(plans[1].interface, None);
        assert_eq!(
            plans[1].peers,
            vec![
                (NodeId(1), IpAddr::from([198, 51, 100, 1])),
                (NodeId(3), IpAddr::from([198, 51, 100, 3]))
            ]
        );
    }

    #[test]
    fn a_node_absent_from_a_link_has_no_plan_there_and_is_no_peer_there() {
        let mut nodes = nodes();
        nodes[2].addresses[1] = None;
        nodes[2].interfaces[1] = None;
        let witness = link_plans(&nodes, 2);
        assert_eq!(witness.len(), 1, "the witness opens link 0 only");
        assert_eq!(witness[0].index, 0);
        let owner = link_plans(&nodes, 0);
        assert_eq!(owner.len(), 2);
        assert_eq!(owner[0].peers.len(), 2);
        assert_eq!(
            owner[1].peers,
            vec![(NodeId(2), IpAddr::from([198, 51, 100, 2]))],
            "nothing is sent to the witness on link 1"
        );
        // A node on link 1 only keeps the link's real index.
        nodes[2].addresses = vec![None, Some(IpAddr::from([198, 51, 100, 3]))];
        let plans = link_plans(&nodes, 2);
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].index, 1);
    }

    #[test]
    fn an_unknown_node_name_lists_the_configured_ones() {
        assert_eq!(find_node(&nodes(), "n3").ok(), Some(2));
        let err = find_node(&nodes(), "web7").expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "node \"web7\" is not in the config (configured nodes: n1, n2, n3); pass --node NAME"
        );
    }
}
