//! The `fencing` section: policy, self-fence action and the fence agents.

use super::super::defaults;
use super::super::model::{FenceAgentConfig, FencePolicy, FencingConfig, NodeConfig, SelfFence};
use super::super::raw::{self, Field};
use super::super::secrets::read_params_file;
use super::ctx::{join, Ctx};
use super::nodes::NodeIndex;
use crate::core::ids::NodeId;
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

const P: &str = "fencing";

pub(super) fn fencing(
    ctx: &mut Ctx,
    raw: Field<raw::RawFencing>,
    nodes: &[NodeConfig],
    index: &NodeIndex,
) -> FencingConfig {
    let mut f = FencingConfig {
        policy: defaults::FENCE_POLICY,
        retry_interval: defaults::FENCE_RETRY_INTERVAL,
        self_fence: defaults::SELF_FENCE,
        agents: Vec::new(),
    };
    let Some(raw) = raw.and_then(|r| ctx.lenient(P, r)) else {
        return f;
    };
    ctx.unknown(P, &raw.unknown, raw::RawFencing::KEYS);
    let policy_given = raw.policy.is_some();
    if let Some(policy) = ctx.field(P, "policy", raw.policy) {
        f.policy = match policy.as_str() {
            "needed" => FencePolicy::Needed,
            "always" => FencePolicy::Always,
            other => {
                ctx.at_value(
                    "fencing.policy",
                    format!("`{other}`: expected needed or always"),
                );
                defaults::FENCE_POLICY
            }
        };
    }
    if raw.retry_interval.is_some() {
        if let Some(d) = ctx.positive_duration(P, "retry_interval", raw.retry_interval) {
            f.retry_interval = d;
        }
    }
    if let Some(s) = ctx.field(P, "self_fence", raw.self_fence) {
        f.self_fence = self_fence(ctx, &s);
    }
    let mut names = HashSet::new();
    let all_nodes: Vec<NodeId> = nodes.iter().map(|n| n.id).collect();
    for (i, agent) in ctx
        .field(P, "agents", raw.agents)
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let p = format!("fencing.agents[{i}]");
        let Some(a) = ctx.lenient(&p, agent) else {
            continue;
        };
        if let Some(agent) = fence_agent(ctx, &p, a, &mut names, &all_nodes, index) {
            f.agents.push(agent);
        }
    }
    if policy_given && f.policy == FencePolicy::Always && f.agents.is_empty() {
        ctx.at_value(
            "fencing.policy",
            "policy `always` needs at least one fence agent in fencing.agents",
        );
    }
    f
}

fn self_fence(ctx: &mut Ctx, s: &str) -> SelfFence {
    match s {
        "reboot" => SelfFence::Reboot,
        "poweroff" => SelfFence::Poweroff,
        "none" => SelfFence::None,
        other if other.starts_with('/') => SelfFence::Command(PathBuf::from(other)),
        other => {
            ctx.at_value(
                "fencing.self_fence",
                format!(
                    "`{other}`: expected reboot, poweroff, none or an absolute path to a command"
                ),
            );
            defaults::SELF_FENCE
        }
    }
}

/// One entry of `fencing.agents`; `None` when its name or program did not convert.
fn fence_agent(
    ctx: &mut Ctx,
    p: &str,
    a: raw::RawFenceAgent,
    names: &mut HashSet<String>,
    all_nodes: &[NodeId],
    index: &NodeIndex,
) -> Option<FenceAgentConfig> {
    ctx.unknown(p, &a.unknown, raw::RawFenceAgent::KEYS);
    let name = ctx.name(p, "name", a.name);
    if let Some(n) = &name {
        if !names.insert(n.clone()) {
            ctx.at_value(
                &join(p, "name"),
                format!("duplicate fence agent name `{n}`"),
            );
        }
    }
    let agent = ctx
        .required(p, "agent", a.agent)
        .and_then(|t| ctx.absolute_path(&join(p, "agent"), t));
    let params_raw = ctx.field(p, "params", a.params);
    let params = ctx.params(&join(p, "params"), params_raw, false);
    let params_file = params_file(ctx, p, a.params_file, &params);
    let targets = match ctx.field(p, "nodes", a.nodes) {
        None => all_nodes.to_vec(),
        Some(list) => {
            if list.is_empty() {
                ctx.at_value(&join(p, "nodes"), "an agent that can fence no node is useless: list at least one node or omit `nodes` for all");
            }
            list.iter()
                .enumerate()
                .filter_map(|(j, n)| {
                    index
                        .resolve(ctx, &format!("{p}.nodes[{j}]"), n)
                        .map(|r| r.0)
                })
                .collect()
        }
    };
    Some(FenceAgentConfig {
        name: name?,
        agent: agent?,
        params,
        params_file,
        nodes: targets,
    })
}

/// An agent's `params_file`: an absolute path to a private file whose `key=value`
/// lines parse and name no parameter also given inline. Read here so `config check`
/// finds its problems, and again at fence time so it can change without a reload.
fn params_file(
    ctx: &mut Ctx,
    p: &str,
    raw: Field<String>,
    inline: &BTreeMap<String, String>,
) -> Option<PathBuf> {
    let fp = join(p, "params_file");
    let path = ctx
        .field(p, "params_file", raw)
        .and_then(|t| ctx.absolute_path(&fp, t))?;
    match read_params_file(&path) {
        Ok(from_file) => {
            if let Some(both) = from_file.keys().find(|k| inline.contains_key(*k)) {
                ctx.at_value(
                    &fp,
                    format!(
                        "`{both}` is given both in params and in {}: keep one",
                        path.display()
                    ),
                );
            }
        }
        Err(e) => ctx.at_value(&fp, e),
    }
    Some(path)
}
