//! The `nodes` list: names, ids, per-link addresses and interfaces, votes — and the
//! [`NodeIndex`] the other sections resolve node references with.

use super::super::defaults;
use super::super::model::NodeConfig;
use super::super::raw::{self, Field, Lenient};
use super::ctx::{check_ifname, join, Ctx};
use super::MAX_LINKS;
use crate::core::ids::NodeId;
use crate::core::message::MAX_NODES;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// Everything about nodes that other sections need to resolve references.
pub(super) struct NodeIndex {
    by_name: HashMap<String, (NodeId, bool)>,
    /// Every node entry converted: references to unknown names are real errors.
    pub(super) complete: bool,
}

impl NodeIndex {
    /// Resolves a node reference, reporting unknown names (only when the node list is
    /// complete; otherwise the name may belong to a node that failed to parse).
    pub(super) fn resolve(&self, ctx: &mut Ctx, path: &str, name: &str) -> Option<(NodeId, bool)> {
        match self.by_name.get(name) {
            Some(n) => Some(*n),
            None => {
                if self.complete {
                    let mut names: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
                    names.sort_unstable();
                    ctx.at_value(
                        path,
                        format!("unknown node `{name}` (nodes: {})", names.join(", ")),
                    );
                }
                None
            }
        }
    }
}

/// What the entries seen so far claimed, for the rules across entries.
struct Seen {
    ids: HashMap<u16, usize>,
    addresses: HashMap<IpAddr, String>,
    /// Link count, taken from the first node whose addresses all converted.
    reference: Option<(usize, String, usize)>,
    /// Per link, the first node with an address there: (index, name, is IPv4).
    families: Vec<Option<(usize, String, bool)>>,
}

pub(super) fn nodes(
    ctx: &mut Ctx,
    raw: Field<Vec<Lenient<raw::RawNode>>>,
) -> (Vec<NodeConfig>, NodeIndex) {
    let mut index = NodeIndex {
        by_name: HashMap::new(),
        complete: false,
    };
    let Some(raw) = raw else {
        ctx.push("", None, "missing required section `nodes`".into());
        return (Vec::new(), index);
    };
    let Some(raw) = ctx.lenient("nodes", raw) else {
        return (Vec::new(), index);
    };
    if raw.is_empty() {
        ctx.at_value("nodes", "at least one node is required");
    }
    if raw.len() > MAX_NODES {
        ctx.at_key(
            "nodes",
            format!(
                "{} nodes given; at most {MAX_NODES} are supported",
                raw.len()
            ),
        );
    }
    let mut complete = true;
    let mut out = Vec::new();
    let mut seen = Seen {
        ids: HashMap::new(),
        addresses: HashMap::new(),
        reference: None,
        families: Vec::new(),
    };
    for (i, node) in raw.into_iter().enumerate() {
        let p = format!("nodes[{i}]");
        let Some(node) = ctx.lenient(&p, node) else {
            complete = false;
            continue;
        };
        let Some(node) = one_node(ctx, &p, i, node, &mut seen) else {
            complete = false;
            continue;
        };
        if index
            .by_name
            .insert(node.name.clone(), (node.id, node.witness))
            .is_some()
        {
            ctx.at_value(
                &join(&p, "name"),
                format!("duplicate node name `{}`", node.name),
            );
            continue;
        }
        out.push(node);
    }
    whole_list_rules(ctx, &out, complete);
    index.complete = complete;
    (out, index)
}

/// One entry; `None` when its name or id did not convert.
fn one_node(
    ctx: &mut Ctx,
    p: &str,
    i: usize,
    node: raw::RawNode,
    seen: &mut Seen,
) -> Option<NodeConfig> {
    ctx.unknown(p, &node.unknown, raw::RawNode::KEYS);
    let name = ctx.name(p, "name", node.name);
    let id = node_id(ctx, p, i, node.id, seen);
    let (addresses, addresses_clean) = addresses(ctx, p, node.addresses, seen);
    if addresses_clean {
        same_links_as_reference(ctx, p, i, name.as_deref(), &addresses, seen);
    }
    let interfaces = interfaces(ctx, p, node.interfaces, &addresses, addresses_clean);
    let priority = ctx.field_or(p, "priority", node.priority, defaults::NODE_PRIORITY);
    let votes = ctx.field_or(p, "votes", node.votes, defaults::NODE_VOTES);
    let witness = ctx.field_or(p, "witness", node.witness, defaults::NODE_WITNESS);
    if witness && votes == 0 {
        ctx.at_value(
            &join(p, "votes"),
            "a witness with no votes does nothing: give it votes ≥ 1 or remove it",
        );
    }
    let fence_delay: Duration = ctx
        .duration(p, "fence_delay", node.fence_delay)
        .unwrap_or(defaults::NODE_FENCE_DELAY);
    Some(NodeConfig {
        id: NodeId(id?),
        name: name?,
        addresses,
        interfaces,
        priority,
        votes,
        witness,
        fence_delay,
    })
}

fn node_id(ctx: &mut Ctx, p: &str, i: usize, f: Field<u16>, seen: &mut Seen) -> Option<u16> {
    let id = match ctx.field(p, "id", f) {
        Some(0) => {
            ctx.at_value(&join(p, "id"), "node ids start at 1");
            None
        }
        Some(id) => Some(id),
        None => Some(defaults::node_id(i)),
    };
    if let Some(id) = id {
        if let Some(other) = seen.ids.insert(id, i) {
            ctx.at_key(
                &join(p, "id"),
                format!("node id {id} is already used by nodes[{other}]"),
            );
        }
    }
    id
}

/// The converted addresses (`None` for a `null` entry: the node is not on that link),
/// and whether every one of them converted.
fn addresses(
    ctx: &mut Ctx,
    p: &str,
    f: Field<Vec<Lenient<Option<String>>>>,
    seen: &mut Seen,
) -> (Vec<Option<IpAddr>>, bool) {
    let mut addresses = Vec::new();
    let mut clean = true;
    match ctx.required(p, "addresses", f) {
        None => clean = false,
        Some(list) => {
            if list.is_empty() {
                ctx.at_value(
                    &join(p, "addresses"),
                    "at least one address (one per heartbeat link) is required",
                );
                clean = false;
            }
            for (j, a) in list.into_iter().enumerate() {
                let ap = format!("{p}.addresses[{j}]");
                let Some(a) = ctx.lenient(&ap, a) else {
                    clean = false;
                    continue;
                };
                let Some(a) = a else {
                    addresses.push(None);
                    continue;
                };
                match one_address(ctx, &ap, &a, seen) {
                    Some(ip) => addresses.push(Some(ip)),
                    None => clean = false,
                }
            }
            if clean && addresses.iter().all(Option::is_none) {
                ctx.at_value(
                    &join(p, "addresses"),
                    "every entry is null: the node would be on no heartbeat link",
                );
                clean = false;
            }
        }
    }
    if addresses.len() > MAX_LINKS {
        ctx.at_key(
            &join(p, "addresses"),
            format!(
                "{} addresses given; at most {MAX_LINKS} heartbeat links are supported",
                addresses.len()
            ),
        );
    }
    (addresses, clean)
}

/// One address; `None` when it is unusable (a duplicate is reported but kept).
fn one_address(ctx: &mut Ctx, ap: &str, a: &str, seen: &mut Seen) -> Option<IpAddr> {
    match a.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() || ip.is_multicast() => {
            ctx.at_value(
                ap,
                format!("`{a}` cannot be a node address (unspecified or multicast)"),
            );
            None
        }
        Ok(ip) => {
            if let Some(other) = seen.addresses.insert(ip, ap.to_string()) {
                ctx.at_value(ap, format!("address {ip} is also used at {other}"));
            }
            Some(ip)
        }
        Err(_) => {
            ctx.at_value(ap, format!("`{a}` is not an IPv4 or IPv6 address"));
            None
        }
    }
}

/// Every node has one entry per link (an address, or `null` where it is not on the
/// link), checked against the first node whose addresses all converted; each link has
/// one address family, checked against the first node with an address on it.
fn same_links_as_reference(
    ctx: &mut Ctx,
    p: &str,
    i: usize,
    name: Option<&str>,
    addresses: &[Option<IpAddr>],
    seen: &mut Seen,
) {
    let name = name.unwrap_or_default();
    match &seen.reference {
        None => seen.reference = Some((i, name.to_string(), addresses.len())),
        Some((ri, rname, count)) if *count != addresses.len() => {
            ctx.at_value(
                &join(p, "addresses"),
                format!(
                    "{} entries but nodes[{ri}] ({rname}) has {count}: every node needs one entry per heartbeat link (null for a link it is not on)",
                    addresses.len(),
                ),
            );
            return;
        }
        Some(_) => {}
    }
    if seen.families.len() < addresses.len() {
        seen.families.resize(addresses.len(), None);
    }
    for (j, a) in addresses.iter().enumerate() {
        let Some(a) = a else { continue };
        match &seen.families[j] {
            None => seen.families[j] = Some((i, name.to_string(), a.is_ipv4())),
            Some((ri, rname, v4)) if *v4 != a.is_ipv4() => {
                ctx.at_value(
                    &format!("{p}.addresses[{j}]"),
                    format!("link {j} is {} on nodes[{ri}] ({rname}) but {a} is not: every link uses one address family", if *v4 { "IPv4" } else { "IPv6" }),
                );
            }
            Some(_) => {}
        }
    }
}

fn interfaces(
    ctx: &mut Ctx,
    p: &str,
    f: Field<Vec<Option<String>>>,
    addresses: &[Option<IpAddr>],
    addresses_clean: bool,
) -> Vec<Option<String>> {
    let links = addresses.len();
    let mut interfaces = vec![None; links];
    let Some(list) = ctx.field(p, "interfaces", f) else {
        return interfaces;
    };
    let ip = join(p, "interfaces");
    if addresses_clean && list.len() != links {
        ctx.at_value(
            &ip,
            format!(
                "{} interface(s) for {} address(es): give one per address (null for none)",
                list.len(),
                links
            ),
        );
    }
    for (j, ifname) in list.into_iter().enumerate() {
        let Some(ifname) = ifname else {
            continue;
        };
        if addresses_clean && addresses.get(j).is_some_and(Option::is_none) {
            ctx.at_value(
                &format!("{ip}[{j}]"),
                format!("the node has no address on link {j} (null): give null here too"),
            );
            continue;
        }
        match check_ifname(&ifname) {
            Ok(()) => {
                if let Some(slot) = interfaces.get_mut(j) {
                    *slot = Some(ifname);
                }
            }
            Err(e) => ctx.at_value(&format!("{ip}[{j}]"), e),
        }
    }
    interfaces
}

/// Rules about the list as a whole, only when every entry converted.
fn whole_list_rules(ctx: &mut Ctx, out: &[NodeConfig], complete: bool) {
    if complete && !out.is_empty() && out.iter().all(|n| n.witness) {
        ctx.at_key(
            "nodes",
            "every node is a witness: no node could own a group",
        );
    }
    if complete && !out.is_empty() && out.iter().map(|n| u64::from(n.votes)).sum::<u64>() == 0 {
        ctx.at_key(
            "nodes",
            "the nodes have no votes at all: quorum could never be reached",
        );
    }
    if complete {
        every_link_shared(ctx, out);
    }
}

/// A node may sit on a subset of the links, but every two nodes must share one (they
/// could never hear each other otherwise: each would count the other down for good),
/// and every link must join at least two nodes (a link with one node is a typo).
fn every_link_shared(ctx: &mut Ctx, out: &[NodeConfig]) {
    if out.len() < 2
        || out
            .iter()
            .any(|n| n.addresses.len() != out[0].addresses.len())
    {
        return;
    }
    for (i, a) in out.iter().enumerate() {
        for b in &out[i + 1..] {
            let shared = a
                .addresses
                .iter()
                .zip(&b.addresses)
                .any(|(x, y)| x.is_some() && y.is_some());
            if !shared {
                ctx.at_key(
                    "nodes",
                    format!(
                        "{} and {} share no heartbeat link (each has null where the other has an address): they could never hear each other",
                        a.name, b.name
                    ),
                );
            }
        }
    }
    for link in 0..out[0].addresses.len() {
        let on: Vec<&str> = out
            .iter()
            .filter(|n| n.addresses[link].is_some())
            .map(|n| n.name.as_str())
            .collect();
        if on.len() < 2 {
            ctx.at_key(
                "nodes",
                format!(
                    "link {link} joins only {}: a heartbeat link needs at least two nodes on it",
                    if on.is_empty() {
                        "no node".to_string()
                    } else {
                        on.join(", ")
                    }
                ),
            );
        }
    }
}
