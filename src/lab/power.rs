//! The instant of a power loss. A machine that loses power stops sending and answering
//! on every interface at once. Taking a node's links down one after the other (`ip link
//! set ethK down`, each waiting for the kernel to quiesce the device — milliseconds on a
//! loaded VM) lets heartbeats leave on the last link after the client already lost the
//! first, so a benchmark cutting that way measures its own cut, not the protocol.
//! A blackout drops every frame at all of the node's switch ports in one nftables
//! transaction (atomic); what is slower (the kill, the links going down) comes after it.

use std::collections::BTreeSet;

use super::{Lab, LabError};

impl Lab {
    /// From this instant on nothing the node sends reaches anyone and nothing reaches
    /// it, on every link at once. Independent of cut links and partitions (`heal_all`
    /// does not end it); `end_blackout` or `power_on` does.
    pub fn blackout(&mut self, node: usize) -> Result<(), LabError> {
        self.node_state(node)?;
        self.dark.insert(node);
        self.apply_rules()
    }

    /// Undoes `blackout`: the switch forwards the node's frames again.
    pub fn end_blackout(&mut self, node: usize) -> Result<(), LabError> {
        self.node_state(node)?;
        if self.dark.remove(&node) {
            self.apply_rules()?;
        }
        Ok(())
    }

    /// The (node, link) ports the switch drops: the cut links and every port of a node
    /// in a blackout.
    pub(super) fn dropped_ports(&self) -> BTreeSet<(usize, usize)> {
        let dark = self
            .dark
            .iter()
            .flat_map(|&n| self.spec.links_of(n).map(move |l| (n, l)));
        self.cuts.iter().copied().chain(dark).collect()
    }
}
