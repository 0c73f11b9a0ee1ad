//! The cluster the experiments (bench, chaos, steady) run: group `www` with one VIP on
//! link 0, which the client namespace sits on; the scaled variant of it (more witnesses,
//! more groups) for the scaling curve; and the node-side facts they need about it (a
//! namespace's MAC, clearing the VIP as a reboot would).

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use super::{netns, Lab, LabError, LabSpec, Ns};

/// The group the experiments move around.
pub const GROUP: &str = "www";
/// The VIP (192.0.2.0/24 is the lab's link 0).
pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);
pub const VIP_PREFIX: u8 = 24;

/// The `groups:` section of the experiments' lab.
pub fn group_yaml() -> String {
    format!(
        "groups:\n  - name: {GROUP}\n    prefer: n1\n    failback: false\n    resources:\n      \
         - vip: {{ name: vip, address: {VIP}/{VIP_PREFIX}, interface: eth0 }}\n"
    )
}

/// `groups:` with `www` and `count - 1` more groups (`g2`, `g3`, ...), each one no-op
/// `exec` resource: groups that cost the heartbeat and the core what any group costs,
/// but neither an address nor a process. `count` 0 or 1 is [`group_yaml`].
pub fn groups_yaml(count: usize) -> String {
    let mut y = group_yaml();
    for g in 2..=count {
        y.push_str(&format!(
            "  - name: g{g}\n    prefer: n1\n    failback: false\n    resources:\n      \
             - exec: {{ name: noop, start: /bin/true, stop: /bin/true }}\n"
        ));
    }
    y
}

/// The benches' lab: `nodes` nodes in all (3 for the smallest), two links; n1 and n2
/// may own the groups, every other node is a witness (votes and heartbeats like any
/// node, owns nothing), so the benches' victim and survivor stay n1 and n2 whatever the
/// size. `extra_yaml` holds at least the `groups:` section ([`group_yaml`]).
pub fn scaled(
    nodes: usize,
    interval: Duration,
    deadtime: Duration,
    extra_yaml: String,
    tandemd: &Path,
    tandemctl: &Path,
) -> LabSpec {
    LabSpec {
        nodes,
        witnesses: (3..=nodes).collect(),
        links: 2,
        absent_links: Vec::new(),
        ipv6: false,
        interval,
        deadtime,
        extra_yaml,
        tandemd: tandemd.to_path_buf(),
        tandemctl: tandemctl.to_path_buf(),
    }
}

/// The MAC address of `eth0` in `ns`.
pub fn eth0_mac(lab: &Lab, ns: Ns) -> Result<[u8; 6], LabError> {
    link_mac(lab, ns, "eth0")
}

/// The MAC address of interface `dev` in `ns`.
pub fn link_mac(lab: &Lab, ns: Ns, dev: &str) -> Result<[u8; 6], LabError> {
    let out = lab.exec(ns, &["ip", "-o", "link", "show", "dev", dev])?;
    let text = String::from_utf8_lossy(&out.stdout);
    let bad = |what: String| LabError::Observer(format!("{what} for {ns:?} {dev} in {text:?}"));
    let mac = text
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .ok_or_else(|| bad("no MAC".into()))?;
    let parts: Vec<&str> = mac.split(':').collect();
    if parts.len() != 6 {
        return Err(bad(format!("bad MAC {mac:?}")));
    }
    let mut bytes = [0u8; 6];
    for (b, p) in bytes.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).map_err(|_| bad(format!("bad MAC {mac:?}")))?;
    }
    Ok(bytes)
}

/// Removes the VIP from a node's eth0, as a reboot would (addresses do not survive
/// one); an absent address is fine.
pub fn clear_vip(lab: &Lab, node: usize) -> Result<(), LabError> {
    let ns = lab.ns_name(Ns::Node(node))?;
    let vip = format!("{VIP}/{VIP_PREFIX}");
    let _ = netns::run_checked("ip", &["-n", &ns, "addr", "del", &vip, "dev", "eth0"], None);
    Ok(())
}
