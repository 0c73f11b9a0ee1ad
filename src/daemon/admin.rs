//! Admin handling on the heartbeat thread: the control calls (client commands, event
//! follows, reloaded configs, metrics snapshots) answered from the state the loop owns,
//! client names resolved to ids, and the one-line summary of what a command did.
//!
//! The loop itself ([`super::heartbeat`]) only routes a call here; nothing in this file
//! waits on anything, so answering a client never delays a heartbeat.

use super::clock;
use super::control::{ControlCall, EventFeed};
use super::executor::Executor;
use super::heartbeat::{HeartbeatLoop, LoopError, STATUS_EVENTS};
use crate::control::{Command, Response, StatusReport};
use crate::core::{Action, AdminCommand, EventKind, GroupId, Input, Instant, NodeId};
use std::sync::Arc;
use std::time::Duration;

impl<E: Executor> HeartbeatLoop<E> {
    /// Answers one call from the control runtime with the state this thread owns.
    pub(super) fn answer(&mut self, call: ControlCall) -> Result<(), LoopError> {
        // Every reply may find the client gone; nothing to do then.
        match call {
            ControlCall::Command { command, reply } => {
                let response = self.command(command)?;
                let _ = reply.send(response);
            }
            ControlCall::Follow { reply } => {
                let _ = reply.send(EventFeed {
                    history: self.events.snapshot(),
                    live: self.events.subscribe(),
                });
            }
            ControlCall::Apply { config, reply } => {
                let outcome = self.apply_config(config)?;
                let _ = reply.send(outcome);
            }
            ControlCall::Metrics { reply } => {
                let _ = reply.send((self.status(clock::now()), self.events.totals().clone()));
            }
        }
        Ok(())
    }

    /// Answers one client command; only a persistence failure is an error of the loop.
    fn command(&mut self, command: Command) -> Result<Response, LoopError> {
        let admin = match self.resolve(&command) {
            Ok(Some(admin)) => admin,
            Ok(None) => {
                return Ok(match command {
                    Command::Events | Command::EventsFollow => {
                        Response::events(self.events.snapshot())
                    }
                    Command::Reload | Command::Report => {
                        Response::error("handled by the control thread, not here")
                    }
                    _ => Response::status(self.status(clock::now())),
                })
            }
            Err(unknown) => return Ok(Response::error(unknown)),
        };
        let owner_before = self.group_of(&admin).and_then(|g| self.owner_name(g));
        let notes = self.admin(admin.clone())?;
        // The core says why it refused in the event it emits.
        if let Some(refusal) = notes.iter().find(|r| r.refuses_move()) {
            return Ok(Response::error(refusal.to_string()));
        }
        let mut message = self.summary(&command, &admin, owner_before);
        if let Some(left) = self.left_behind(&command, &notes) {
            message.push_str(&left);
        }
        Ok(Response::done(message))
    }

    /// The core command for an admin request, with names resolved (`Ok(None)` for the
    /// read-only commands), or the error naming what is known.
    fn resolve(&self, command: &Command) -> Result<Option<AdminCommand>, String> {
        Ok(Some(match command {
            Command::Status
            | Command::Events
            | Command::EventsFollow
            | Command::Reload
            | Command::Report => return Ok(None),
            Command::Standby { node, on } => AdminCommand::Standby {
                node: self.node_id(node)?,
                on: *on,
            },
            Command::Move {
                group,
                to,
                lifetime_ms,
            } => AdminCommand::Move {
                group: self.group_id(group)?,
                to: to.as_deref().map(|n| self.node_id(n)).transpose()?,
                lifetime: lifetime_of(*lifetime_ms)?,
            },
            Command::Ban {
                group,
                node,
                on,
                lifetime_ms,
            } => AdminCommand::Ban {
                group: self.group_id(group)?,
                node: self.node_id(node)?,
                on: *on,
                lifetime: lifetime_of(*lifetime_ms)?,
            },
            Command::ClearMove { group } => AdminCommand::ClearMove {
                group: self.group_id(group)?,
            },
            Command::Cleanup { group, resource } => {
                let id = self.group_id(group)?;
                if let Some(resource) = resource {
                    let known = self
                        .spec
                        .group(id)
                        .map(|g| g.resources.clone())
                        .unwrap_or_default();
                    if !known.contains(resource) {
                        return Err(format!(
                            "group {group} has no resource {resource:?} (its resources: {})",
                            list(&known)
                        ));
                    }
                }
                AdminCommand::Cleanup { group: id }
            }
            Command::Maintenance { group, on } => AdminCommand::Maintenance {
                group: group.as_deref().map(|g| self.group_id(g)).transpose()?,
                on: *on,
            },
            Command::Fence { node } => {
                let id = self.node_id(node)?;
                if id == self.node.id() {
                    return Err(format!(
                        "{node} is the node answering this command: a node does not fence itself on request"
                    ));
                }
                // Accepting it would only retry a fence that cannot happen, forever.
                if !self
                    .config
                    .fencing
                    .agents
                    .iter()
                    .any(|a| a.nodes.contains(&id))
                {
                    return Err(format!(
                        "no fence agent is configured for {node} (fencing.agents[].nodes)"
                    ));
                }
                AdminCommand::Fence { node: id }
            }
        }))
    }

    fn node_id(&self, name: &str) -> Result<NodeId, String> {
        let nodes = self.spec.nodes.iter().map(|n| (n.name.as_str(), n.id));
        id_named(nodes, name, "node")
    }

    fn group_id(&self, name: &str) -> Result<GroupId, String> {
        let groups = self.spec.groups.iter().map(|g| (g.name.as_str(), g.id));
        id_named(groups, name, "group")
    }

    fn group_of(&self, admin: &AdminCommand) -> Option<GroupId> {
        match admin {
            AdminCommand::Move { group, .. }
            | AdminCommand::Ban { group, .. }
            | AdminCommand::ClearMove { group }
            | AdminCommand::Cleanup { group }
            | AdminCommand::Maintenance {
                group: Some(group), ..
            } => Some(*group),
            _ => None,
        }
    }

    fn group_status(&self, group: GroupId) -> Option<crate::core::status::GroupStatus> {
        let name = &self.spec.group(group)?.name;
        self.node
            .status(clock::now())
            .groups
            .into_iter()
            .find(|g| &g.name == name)
    }

    fn owner_name(&self, group: GroupId) -> Option<String> {
        self.group_status(group).and_then(|g| g.owner)
    }

    /// Applies an admin command like [`Self::step`] and returns the reasons of the
    /// admin events it produced (a refused move says why there).
    fn admin(&mut self, admin: AdminCommand) -> Result<Vec<crate::core::Reason>, LoopError> {
        let actions = self.node.handle(clock::now(), Input::Admin(admin));
        let notes = actions
            .iter()
            .filter_map(|a| match a {
                Action::Event(e) if e.kind == EventKind::Admin => Some(e.reason.clone()),
                _ => None,
            })
            .collect();
        self.carry_out_all(actions)?;
        Ok(notes)
    }

    /// One line saying what the core made of an admin command.
    fn summary(
        &self,
        command: &Command,
        admin: &AdminCommand,
        owner_before: Option<String>,
    ) -> String {
        let reason = self
            .group_of(admin)
            .and_then(|g| self.group_status(g))
            .map(|g| g.reason)
            .filter(|r| !r.is_empty())
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        match command {
            Command::Standby { node, on: true } => format!(
                "{node} is in standby: it gives up its groups and takes none until `tandemctl online {node}`"
            ),
            Command::Standby { node, on: false } => {
                format!("{node} is online: it may own groups again")
            }
            Command::Ban { group, node, on: true, .. } => {
                format!("{group}: {node} is banned from it{reason}")
            }
            Command::Ban { group, node, on: false, .. } => {
                format!("{group}: ban of {node} lifted, it may own the group again{reason}")
            }
            Command::Move { group, to, .. } => {
                let from = owner_before.unwrap_or_else(|| "no owner".into());
                match to {
                    Some(to) => format!("{group}: moving from {from} to {to}"),
                    None => format!("{group}: moving away from {from}{reason}"),
                }
            }
            Command::ClearMove { group } => {
                let stays = owner_before
                    .map(|o| format!("it stays on {o} until failback or a failure moves it"))
                    .unwrap_or_else(|| "it has no owner now".into());
                format!("{group}: move preference removed; {stays}{reason}")
            }
            Command::Cleanup {
                group,
                resource: Some(resource),
            } => format!(
                "{group}: fail counts and failed state reset for the whole group (tandem cleans groups, so not only {resource}){reason}"
            ),
            Command::Cleanup { group, .. } => {
                format!("{group}: fail counts and failed state reset{reason}")
            }
            Command::Maintenance { group: None, on: true } => "maintenance ON for the whole cluster: tandem does not start, stop or monitor anything until `tandemctl maintenance off`".into(),
            Command::Maintenance { group: None, on: false } => "maintenance off: tandem manages every group again".into(),
            Command::Maintenance { group: Some(g), on: true } => format!("maintenance ON for {g}: tandem does not start, stop or monitor it until `tandemctl maintenance off {g}`"),
            Command::Maintenance { group: Some(g), on: false } => format!("maintenance off for {g}: tandem manages it again"),
            Command::Fence { node } => format!("fencing {node} requested; `tandemctl events` shows the outcome"),
            Command::Status
            | Command::Events
            | Command::EventsFollow
            | Command::Reload
            | Command::Report => String::new(),
        }
    }

    /// What a `move` or `ban` leaves behind and how to clear it, as a second sentence
    /// (pcs moved to auto-clearing moves because a silent one surprised people later).
    fn left_behind(&self, command: &Command, notes: &[crate::core::Reason]) -> Option<String> {
        use crate::core::reason::AdminChange;
        let lasts = |ms: Option<u64>, clear: String| match ms {
            Some(ms) => format!(
                "for {} (it lapses by itself; `{clear}` ends it sooner)",
                crate::config::format_duration(Duration::from_millis(ms))
            ),
            None => format!("until cleared with `{clear}`"),
        };
        match command {
            Command::Move {
                group, lifetime_ms, ..
            } => {
                let target = notes.iter().find_map(|r| match r {
                    crate::core::Reason::Admin(AdminChange::MoveTo { target }) => Some(*target),
                    _ => None,
                })?;
                let target = self.spec.node(target).map(|n| n.name.clone())?;
                let clear = format!("tandemctl move --clear {group}");
                Some(format!(
                    "\n{group} is now pinned to {target} {}; `tandemctl status` lists it",
                    lasts(*lifetime_ms, clear)
                ))
            }
            Command::Ban {
                group,
                node,
                on: true,
                lifetime_ms,
            } => {
                let clear = format!("tandemctl unban {group} {node}");
                Some(format!(
                    "\n{node} stays banned from {group} {}; `tandemctl status` lists it",
                    lasts(*lifetime_ms, clear)
                ))
            }
            _ => None,
        }
    }

    /// Hands a reloaded config to the core. On refusal nothing changes and the reason
    /// goes back to the client; on success the new spec and config replace the old ones.
    fn apply_config(
        &mut self,
        config: Arc<crate::config::Config>,
    ) -> Result<Result<String, String>, LoopError> {
        let spec = config.cluster_spec();
        let old = self.spec.digest;
        match self.node.reconfigure(clock::now(), spec.clone()) {
            Err(e) => Ok(Err(e.to_string())),
            Ok(actions) => {
                self.spec = spec;
                self.previous = Some(std::mem::replace(&mut self.config, config));
                let (config, previous) = (self.config.clone(), self.previous.clone());
                if let Err(e) = self.guard.register_addresses(&config, previous.as_deref()) {
                    self.lose_guard(e);
                }
                self.carry_out_all(actions)?;
                let new = self.spec.digest;
                tracing::info!("config reloaded: digest {old:016x} -> {new:016x}");
                Ok(Ok(format!(
                    "config applied: digest {old:016x} -> {new:016x}"
                )))
            }
        }
    }

    pub fn status(&self, now: Instant) -> StatusReport {
        StatusReport {
            cluster: self.cluster_name.clone(),
            config_digest: format!("{:016x}", self.spec.digest),
            drops: self
                .inbound
                .drops()
                .as_map()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            recent_events: self.events.last(STATUS_EVENTS),
            // Added by the control thread: the checks run on the executor.
            checks: Vec::new(),
            view: self.node.status(now),
        }
    }
}

/// The id of the item called `name`, or the error listing every known `kind` by name.
fn id_named<'a, Id>(
    items: impl Iterator<Item = (&'a str, Id)>,
    name: &str,
    kind: &str,
) -> Result<Id, String> {
    let mut known = Vec::new();
    for (candidate, id) in items {
        if candidate == name {
            return Ok(id);
        }
        known.push(candidate.to_string());
    }
    Err(format!(
        "unknown {kind} {name:?} (known {kind}s: {})",
        list(&known)
    ))
}

/// A lifetime as the client sent it; zero would expire at once (a client bug).
fn lifetime_of(ms: Option<u64>) -> Result<Option<Duration>, String> {
    match ms {
        Some(0) => Err("a lifetime must be at least 1 ms".into()),
        ms => Ok(ms.map(Duration::from_millis)),
    }
}

/// `a, b, c`, or `none` for an empty list.
fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_resolves_to_its_id_and_an_unknown_one_lists_the_known() {
        let groups = || [("www", 1u32), ("db", 2)].into_iter();
        assert_eq!(id_named(groups(), "db", "group"), Ok(2));
        assert_eq!(
            id_named(groups(), "mail", "group"),
            Err("unknown group \"mail\" (known groups: www, db)".to_string())
        );
        assert_eq!(
            id_named(std::iter::empty::<(&str, u32)>(), "n1", "node"),
            Err("unknown node \"n1\" (known nodes: none)".to_string())
        );
    }
}
