//! What the daemons say about the cluster over their control sockets: the status report
//! of one node, and whether the whole lab agrees on a running owner.

use crate::control::{self, client, Request, StatusReport};
use crate::lab::Lab;

/// One status query over the control socket (cheap enough to poll every 20 ms).
pub fn query_status(lab: &Lab, node: usize) -> Option<StatusReport> {
    let response = client::call(
        &lab.socket_path(node),
        &Request::new(control::Command::Status),
    )
    .ok()?;
    response.status.filter(|_| response.ok)
}

/// The state (`online`, `standby`, ...) `r` reports for node `name`.
pub fn node_state<'r>(r: &'r StatusReport, name: &str) -> Option<&'r str> {
    r.view
        .nodes
        .iter()
        .find(|n| n.name == name)
        .map(|n| n.state.as_str())
}

/// Owner of `group` if it is running there.
pub fn running_owner(r: &StatusReport, group: &str) -> Option<String> {
    r.view
        .groups
        .iter()
        .find(|g| g.name == group && g.state == "running")
        .and_then(|g| g.owner.clone())
}

/// Every node online in every view, all quorate and agreeing on where `group` runs.
pub fn stable_owner(lab: &Lab, group: &str) -> Option<String> {
    let names: Vec<String> = (1..=lab.node_count()).map(|n| lab.node_name(n)).collect();
    let mut owner: Option<String> = None;
    for node in 1..=lab.node_count() {
        let r = query_status(lab, node)?;
        if !r.view.quorate || names.iter().any(|n| node_state(&r, n) != Some("online")) {
            return None;
        }
        let o = running_owner(&r, group)?;
        if owner.as_ref().is_some_and(|x| *x != o) {
            return None;
        }
        owner = Some(o);
    }
    owner
}
