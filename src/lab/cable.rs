//! Cable pulls: the switch-side end of a node's veth goes down, so the node's own
//! interface loses carrier (`NO-CARRIER`, `IFF_LOWER_UP` cleared) while it stays
//! administratively up with its addresses, as when someone pulls the cable or the switch
//! port dies. Unlike `links_down` (the node's side set down, as a power loss) the node
//! sees exactly what a real NIC reports: an RTM_NEWLINK with the carrier gone.

use super::{render, Lab, LabError};

impl Lab {
    /// Pulls `node`'s cable on `link`: its `eth{link}` loses carrier.
    pub fn pull_cable(&mut self, node: usize, link: usize) -> Result<(), LabError> {
        self.set_switch_port(node, link, "down")
    }

    /// Plugs the cable back in: carrier returns on the node's `eth{link}`.
    pub fn plug_cable(&mut self, node: usize, link: usize) -> Result<(), LabError> {
        self.set_switch_port(node, link, "up")
    }

    fn set_switch_port(&mut self, node: usize, link: usize, state: &str) -> Result<(), LabError> {
        self.check_live()?;
        self.node_state(node)?;
        self.check_link(link)?;
        let script = format!("link set {} {state}\n", render::switch_port(link, node));
        self.ip_batch(&self.switch_ns, &script)
    }
}
