//! Static neighbour entries for large labs. The kernel keeps one ARP/NDP table for all
//! network namespaces, and its garbage-collection thresholds (`gc_thresh2` 512,
//! `gc_thresh3` 1024 by default) are settable only for the host namespace. A lab of N
//! nodes on L links needs N × (N − 1) × L node-to-node entries: 1984 for 32 nodes on 2
//! links, so the nodes that start last cannot resolve each other ("neighbor table
//! overflow!") and see each other offline — an artefact of running every "machine" on
//! one kernel, which real nodes do not share. Permanent entries do not count against
//! those thresholds, so a lab above `gc_thresh2` pins every node's peers instead of
//! touching the host's sysctls. The client and the VIP keep ordinary ARP.
//!
//! A link going down flushes its entries (permanent ones too), so `links_up` and
//! `power_on` pin them again.

use super::topology::link_mac;
use super::{render, Lab, LabError, Ns};

/// The kernel's default `net.ipv4.neigh.default.gc_thresh2`: above this many entries
/// it starts evicting, shared by every namespace.
const SHARED_NEIGH_BUDGET: usize = 512;

impl Lab {
    /// Whether this lab's node-to-node neighbour entries would strain the shared table.
    pub(super) fn pins_neighbours(&self) -> bool {
        let n = self.spec.nodes;
        n * n.saturating_sub(1) * self.spec.links > SHARED_NEIGH_BUDGET
    }

    /// Every node's MAC on every link, `[node - 1][link]` (`None` where it is absent).
    fn link_macs(&self) -> Result<Vec<Vec<Option<[u8; 6]>>>, LabError> {
        (1..=self.spec.nodes)
            .map(|node| {
                (0..self.spec.links)
                    .map(|link| {
                        if !self.spec.on_link(node, link) {
                            return Ok(None);
                        }
                        link_mac(self, Ns::Node(node), &format!("eth{link}")).map(Some)
                    })
                    .collect()
            })
            .collect()
    }

    /// Pins the peers of `nodes` (all of them, or one after its links came back).
    pub(super) fn pin_neighbours(&self, nodes: &[usize]) -> Result<(), LabError> {
        if !self.pins_neighbours() {
            return Ok(());
        }
        let macs = self.link_macs()?;
        for &node in nodes {
            let mut script = String::new();
            for (peer, peer_macs) in macs.iter().enumerate().map(|(i, m)| (i + 1, m)) {
                if peer == node {
                    continue;
                }
                for (link, mac) in peer_macs.iter().enumerate() {
                    let Some(mac) = mac.filter(|_| self.spec.on_link(node, link)) else {
                        continue;
                    };
                    script.push_str(&format!(
                        "neigh replace {} lladdr {} dev eth{link} nud permanent\n",
                        render::node_address(self.spec.ipv6, peer, link),
                        super::observe::mac_string(&mac),
                    ));
                }
            }
            let ns = self.node_state(node)?.ns.clone();
            self.ip_batch(&ns, &script)?;
        }
        Ok(())
    }
}
