//! The `quorum` section: what a node does without quorum, and the two-node mode.

use super::super::defaults;
use super::super::model::{NodeConfig, QuorumConfig};
use super::super::raw::{self, Field};
use super::ctx::Ctx;
use super::nodes::NodeIndex;
use crate::core::spec::NoQuorumPolicy;

pub(super) fn quorum(
    ctx: &mut Ctx,
    raw: Field<raw::RawQuorum>,
    nodes: &[NodeConfig],
    index: &NodeIndex,
    deadtime: std::time::Duration,
) -> QuorumConfig {
    const P: &str = "quorum";
    let mut q = QuorumConfig {
        no_quorum_policy: defaults::NO_QUORUM_POLICY,
        two_node: defaults::TWO_NODE,
        // WAIT_FOR_ALL_RULE: the same as two_node.
        wait_for_all: defaults::TWO_NODE,
        expected_votes: None,
        arbiter: None,
    };
    let Some(raw) = raw.and_then(|r| ctx.lenient(P, r)) else {
        return q;
    };
    ctx.unknown(P, &raw.unknown, raw::RawQuorum::KEYS);
    if let Some(policy) = ctx.field(P, "no_quorum_policy", raw.no_quorum_policy) {
        q.no_quorum_policy = match policy.as_str() {
            "stop" => NoQuorumPolicy::Stop,
            "freeze" => NoQuorumPolicy::Freeze,
            "ignore" => NoQuorumPolicy::Ignore,
            other => {
                ctx.at_value(
                    "quorum.no_quorum_policy",
                    format!("`{other}`: expected stop, freeze or ignore"),
                );
                defaults::NO_QUORUM_POLICY
            }
        };
    }
    q.two_node = ctx.field_or(P, "two_node", raw.two_node, defaults::TWO_NODE);
    if q.two_node && index.complete {
        let owners = nodes.iter().filter(|n| !n.witness).count();
        let witnesses = nodes.len() - owners;
        if owners != 2 || witnesses != 0 {
            ctx.at_value(
                "quorum.two_node",
                format!("two_node needs exactly 2 nodes and no witness; this cluster has {owners} non-witness node(s) and {witnesses} witness(es)"),
            );
        }
    }
    q.wait_for_all = ctx
        .field(P, "wait_for_all", raw.wait_for_all)
        .unwrap_or(q.two_node);
    q.expected_votes = ctx.field(P, "expected_votes", raw.expected_votes);
    if q.expected_votes == Some(0) {
        ctx.at_value("quorum.expected_votes", "expected_votes must be at least 1");
    }
    q.arbiter = super::arbiter::arbiter(ctx, raw.arbiter, deadtime);
    if q.two_node && q.arbiter.is_some() {
        ctx.at_value(
            "quorum.two_node",
            "two_node and an arbiter exclude each other: with the arbiter's vote two nodes have a real majority; drop two_node",
        );
    }
    q
}
