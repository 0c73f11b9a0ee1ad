//! Fence agents: power a node off through programs that speak the fence-agents stdin
//! protocol, so the whole `fence_*` suite (fence_ipmilan, fence_virsh, ...) works.
//!
//! The protocol (fence-agents' fencing.py, `_parse_input_stdin`): with no command-line
//! arguments an agent reads `key=value` lines from stdin, `action=off`, `plug=NODE` and
//! its own options. `action=status` exits 0 when the target is on and 2 when it is off.
//! A node counts as fenced only when `off` exited 0 *and* a following `status` says off:
//! an agent that says "done" while the node still runs would let two owners live. Only
//! an agent whose meta-data lists no `status` action is believed on `off` alone.
//! Agents are tried in config order; the first that confirms wins.
//!
//! An agent's `params_file` is read (and its owner and mode checked) at each fencing,
//! not at load: a password changed in it takes effect without a reload, and a file
//! that became unreadable or too open fails that agent with the reason.

use super::process::{self, Exit, Launch, Spec};
use crate::config::secrets::read_params_file;
use crate::config::FenceAgentConfig;
use crate::core::ids::NodeId;
use crate::core::FenceResult;
use std::collections::BTreeMap;
use std::time::Duration;

/// fence-agents' exit code of `action=status` for a target that is off.
pub const STATUS_OFF: i32 = 2;
pub const STATUS_ON: i32 = 0;

/// Powers `target` off with the first agent (in config order) that can fence it and
/// confirms it. Each agent call gets `timeout`.
pub async fn fence(
    agents: &[FenceAgentConfig],
    target: NodeId,
    target_name: &str,
    timeout: Duration,
) -> FenceResult {
    fence_with(agents, target, target_name, timeout, &Launch::default()).await
}

pub async fn fence_with(
    agents: &[FenceAgentConfig],
    target: NodeId,
    target_name: &str,
    timeout: Duration,
    launch: &Launch,
) -> FenceResult {
    let mut failures = Vec::new();
    for agent in agents.iter().filter(|a| a.nodes.contains(&target)) {
        match fence_one(agent, target_name, timeout, launch).await {
            Ok(()) => {
                tracing::warn!(agent = %agent.name, "fenced {target_name}: confirmed off");
                return FenceResult::Off;
            }
            Err(why) => {
                tracing::error!(agent = %agent.name, "fencing {target_name} failed: {why}");
                failures.push(format!("{}: {why}", agent.name));
            }
        }
    }
    if failures.is_empty() {
        FenceResult::Failed(format!("no fence agent is configured for {target_name}"))
    } else {
        FenceResult::Failed(failures.join("; "))
    }
}

/// An agent's params: the inline ones plus those of its `params_file`, if any.
pub fn agent_params(agent: &FenceAgentConfig) -> Result<BTreeMap<String, String>, String> {
    let mut params = agent.params.clone();
    if let Some(file) = &agent.params_file {
        params.extend(read_params_file(file)?);
    }
    Ok(params)
}

/// The stdin of one agent call with its inline params (see [`stdin_lines_with`]).
pub fn stdin_lines(agent: &FenceAgentConfig, action: &str, target_name: &str) -> String {
    stdin_lines_with(&agent.params, action, target_name)
}

/// The stdin of one agent call. Admin params come after the defaults so that a
/// `plug` (or `port`) in params wins over the node name: the plug is often a VM or
/// outlet name, not the cluster's node name.
pub fn stdin_lines_with(
    params: &BTreeMap<String, String>,
    action: &str,
    target_name: &str,
) -> String {
    let mut s = format!("action={action}\n");
    if !params.contains_key("plug") && !params.contains_key("port") {
        s.push_str(&format!("plug={target_name}\n"));
    }
    // fencing.py silently ignores `nodename` when an agent does not take it.
    s.push_str(&format!("nodename={target_name}\n"));
    for (k, v) in params {
        if k == "action" {
            continue;
        }
        // A value with a newline would smuggle in another key; config validation
        // rejects those, this keeps the function safe on its own.
        let v = v.replace(['\n', '\r'], " ");
        s.push_str(&format!("{k}={v}\n"));
    }
    s
}

/// One agent with its params read for this fencing.
struct Call<'a> {
    agent: &'a FenceAgentConfig,
    params: BTreeMap<String, String>,
}

async fn call(
    c: &Call<'_>,
    action: &str,
    target_name: &str,
    timeout: Duration,
    launch: &Launch,
) -> process::Finished {
    let agent = c.agent;
    let spec = Spec::new(format!("fence:{}", agent.name), &agent.agent, timeout)
        .stdin(stdin_lines_with(&c.params, action, target_name));
    let spec = if action == "off" { spec } else { spec.quiet() };
    process::run(launch, &spec).await
}

async fn fence_one(
    agent: &FenceAgentConfig,
    target_name: &str,
    timeout: Duration,
    launch: &Launch,
) -> Result<(), String> {
    let agent = &Call {
        agent,
        params: agent_params(agent)?,
    };
    let off = call(agent, "off", target_name, timeout, launch).await;
    if off.exit != Exit::Code(0) {
        return Err(off.describe("off"));
    }
    let status = call(agent, "status", target_name, timeout, launch).await;
    match status.exit {
        Exit::Code(STATUS_OFF) => Ok(()),
        Exit::Code(STATUS_ON) => Err(format!(
            "off exited 0 but status says the target is still on{}",
            status
                .last_line()
                .map_or(String::new(), |l| format!(" ({l})"))
        )),
        _ => {
            // Agents without a status action (fence-agents' `no_status` devices) can
            // only be taken at their word; any other agent must answer.
            let meta = call(agent, "metadata", target_name, timeout, launch).await;
            let lists_status = meta.exit == Exit::Code(0)
                && meta.stdout_text().contains("<action name=\"status\"");
            if lists_status || meta.exit != Exit::Code(0) {
                Err(status.describe("status after off"))
            } else {
                tracing::warn!(agent = %agent.agent.name, "agent has no status action: believing its off");
                Ok(())
            }
        }
    }
}
