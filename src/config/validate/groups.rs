//! The `groups` list: names and wire ids, which nodes may own a group, failback and
//! failure handling, and the group's resource list.

use super::super::defaults;
use super::super::model::{GroupConfig, NodeConfig, ResourceConfig};
use super::super::raw::{self, Field, Lenient, RawResource};
use super::ctx::{join, Ctx};
use super::nodes::NodeIndex;
use super::resources::resource;
use crate::core::ids::{GroupId, NodeId};
use crate::core::message::MAX_GROUPS;
use crate::core::spec::OnFail;
use std::collections::HashMap;

/// Names and wire ids of the groups seen so far: both must be unique.
#[derive(Default)]
struct Seen {
    names: HashMap<String, usize>,
    ids: HashMap<GroupId, String>,
}

pub(super) fn groups(
    ctx: &mut Ctx,
    raw: Field<Vec<Lenient<raw::RawGroup>>>,
    nodes: &[NodeConfig],
    index: &NodeIndex,
) -> Vec<GroupConfig> {
    let Some(list) = raw.and_then(|r| ctx.lenient("groups", r)) else {
        return Vec::new();
    };
    if list.len() > MAX_GROUPS {
        ctx.at_key(
            "groups",
            format!(
                "{} groups given; at most {MAX_GROUPS} are supported",
                list.len()
            ),
        );
    }
    let mut out = Vec::new();
    let mut seen = Seen::default();
    for (i, g) in list.into_iter().enumerate() {
        let p = format!("groups[{i}]");
        let Some(g) = ctx.lenient(&p, g) else {
            continue;
        };
        if let Some(group) = one_group(ctx, &p, i, g, &mut seen, nodes, index) {
            out.push(group);
        }
    }
    out
}

/// One entry; `None` when its name did not convert.
fn one_group(
    ctx: &mut Ctx,
    p: &str,
    i: usize,
    g: raw::RawGroup,
    seen: &mut Seen,
    nodes: &[NodeConfig],
    index: &NodeIndex,
) -> Option<GroupConfig> {
    ctx.unknown(p, &g.unknown, raw::RawGroup::KEYS);
    let name = ctx.name(p, "name", g.name);
    let id = name.as_deref().map(GroupId::of_name);
    if let (Some(name), Some(id)) = (&name, id) {
        if let Some(other) = seen.names.insert(name.clone(), i) {
            ctx.at_value(
                &join(p, "name"),
                format!("duplicate group name `{name}` (also groups[{other}])"),
            );
        } else if let Some(other) = seen.ids.insert(id, name.clone()) {
            ctx.at_value(&join(p, "name"), format!("group names `{name}` and `{other}` hash to the same wire id {id:?}: rename one"));
        }
    }
    let eligible = eligible(ctx, p, g.nodes, nodes, index);
    let prefer = prefer(ctx, p, g.prefer, &eligible, index);
    let failback = ctx.field_or(p, "failback", g.failback, defaults::GROUP_FAILBACK);
    let failback_delay = ctx
        .duration(p, "failback_delay", g.failback_delay)
        .unwrap_or(defaults::GROUP_FAILBACK_DELAY);
    let monitor_interval = ctx.positive_duration_or(
        p,
        "monitor_interval",
        g.monitor_interval,
        defaults::GROUP_MONITOR_INTERVAL,
    );
    let migration_threshold = ctx.count_or(
        p,
        "migration_threshold",
        g.migration_threshold,
        defaults::GROUP_MIGRATION_THRESHOLD,
    );
    let failure_timeout = ctx
        .duration(p, "failure_timeout", g.failure_timeout)
        .unwrap_or(defaults::GROUP_FAILURE_TIMEOUT);
    let on_fail = on_fail(ctx, p, g.on_fail);
    let notify = ctx
        .field(p, "notify", g.notify)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(j, s)| ctx.absolute_path(&format!("{p}.notify[{j}]"), s))
        .collect();
    let resources = resources(ctx, p, g.resources);
    Some(GroupConfig {
        id: id?,
        name: name?,
        prefer,
        nodes: eligible,
        failback,
        failback_delay,
        monitor_interval,
        migration_threshold,
        failure_timeout,
        on_fail,
        notify,
        resources,
    })
}

/// The nodes allowed to own the group: the listed ones, or every non-witness node.
fn eligible(
    ctx: &mut Ctx,
    p: &str,
    f: Field<Vec<String>>,
    nodes: &[NodeConfig],
    index: &NodeIndex,
) -> Vec<NodeId> {
    let eligible: Vec<NodeId> = match ctx.field(p, "nodes", f) {
        None => nodes.iter().filter(|n| !n.witness).map(|n| n.id).collect(),
        Some(list) => {
            let mut ids = Vec::new();
            for (j, n) in list.iter().enumerate() {
                let np = format!("{p}.nodes[{j}]");
                if let Some((id, witness)) = index.resolve(ctx, &np, n) {
                    if witness {
                        ctx.at_value(&np, format!("`{n}` is a witness and can never own a group"));
                    } else if ids.contains(&id) {
                        ctx.at_value(&np, format!("`{n}` is listed twice"));
                    } else {
                        ids.push(id);
                    }
                }
            }
            ids
        }
    };
    if eligible.is_empty() && index.complete && !nodes.is_empty() {
        ctx.at_key(
            p,
            "no node is eligible to own this group (all excluded or witnesses)",
        );
    }
    eligible
}

fn prefer(
    ctx: &mut Ctx,
    p: &str,
    f: Field<String>,
    eligible: &[NodeId],
    index: &NodeIndex,
) -> Option<NodeId> {
    let n = ctx.field(p, "prefer", f)?;
    let pp = join(p, "prefer");
    let (id, witness) = index.resolve(ctx, &pp, &n)?;
    if witness {
        ctx.at_value(&pp, format!("`{n}` is a witness and can never own a group"));
        None
    } else if !eligible.contains(&id) {
        ctx.at_value(&pp, format!("`{n}` is not in this group's `nodes`"));
        None
    } else {
        Some(id)
    }
}

fn on_fail(ctx: &mut Ctx, p: &str, f: Field<String>) -> OnFail {
    match ctx.field(p, "on_fail", f).as_deref() {
        None => defaults::GROUP_ON_FAIL,
        Some("fence") => OnFail::FenceSelf,
        Some("block") => OnFail::Block,
        Some(other) => {
            ctx.at_value(
                &join(p, "on_fail"),
                format!("`{other}`: expected fence or block"),
            );
            defaults::GROUP_ON_FAIL
        }
    }
}

/// The required resource list, each entry converted, names unique in the group.
fn resources(ctx: &mut Ctx, p: &str, f: Field<Vec<Lenient<RawResource>>>) -> Vec<ResourceConfig> {
    let mut resources = Vec::new();
    let Some(list) = ctx.required(p, "resources", f) else {
        return resources;
    };
    if list.is_empty() {
        ctx.at_value(&join(p, "resources"), "a group needs at least one resource");
    }
    let mut rnames: HashMap<String, usize> = HashMap::new();
    let mut promotable: Option<usize> = None;
    for (j, r) in list.into_iter().enumerate() {
        let rp = format!("{p}.resources[{j}]");
        let Some(r) = ctx.lenient(&rp, r) else {
            continue;
        };
        let Some(res) = resource(ctx, &rp, r) else {
            continue;
        };
        if let Some(other) = rnames.insert(res.name.clone(), j) {
            ctx.at_key(&rp, format!("duplicate resource name `{}` (also resources[{other}]); set `name` to tell them apart", res.name));
        }
        if res.promotable {
            match promotable {
                // One primary per group is what the lease covers; two promotable
                // resources would need an order between their promotions.
                Some(first) => ctx.at_key(
                    &format!("{rp}.{}.promotable", res.kind.kind_name()),
                    format!("a group can have only one promotable resource, and resources[{first}] is one already: put this one in a group of its own"),
                ),
                None => promotable = Some(j),
            }
        }
        resources.push(res);
    }
    resources
}
