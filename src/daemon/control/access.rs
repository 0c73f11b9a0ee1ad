//! Who may use the control socket: root everything, members of the `tandem` group the
//! read-only commands, everyone else nothing. The peer's identity comes from the kernel
//! (`SO_PEERCRED`), never from what the client says.

use crate::control::{Command, READ_ONLY_GROUP};

/// What a connected peer may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// root: every command.
    Full,
    /// Member of the `tandem` group: read-only commands.
    ReadOnly,
    Denied,
}

/// The kernel-verified identity of the process at the other end of the socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

/// Who may do what: root everything, the `tandem` group read-only, others nothing.
#[derive(Clone, Debug, Default)]
pub struct AccessPolicy {
    pub read_only_gid: Option<u32>,
}

impl AccessPolicy {
    /// Looks up the `tandem` group; without it only root has access.
    pub fn from_system() -> AccessPolicy {
        let gid = nix::unistd::Group::from_name(READ_ONLY_GROUP)
            .ok()
            .flatten()
            .map(|g| g.gid.as_raw());
        AccessPolicy { read_only_gid: gid }
    }

    pub fn access(&self, peer: &Peer) -> Access {
        if peer.uid == 0 {
            return Access::Full;
        }
        let Some(gid) = self.read_only_gid else {
            return Access::Denied;
        };
        // SO_PEERCRED carries only the primary group; supplementary groups are read
        // from the peer process, which is what `id` would show for it.
        let member = peer.gid == gid
            || peer
                .pid
                .and_then(supplementary_groups)
                .is_some_and(|gs| gs.contains(&gid));
        if member {
            Access::ReadOnly
        } else {
            Access::Denied
        }
    }
}

/// Whether `access` allows `command`; the error is the message sent to the client.
pub fn authorize(access: Access, command: &Command) -> Result<(), String> {
    match access {
        Access::Full => Ok(()),
        Access::ReadOnly if command.is_read_only() => Ok(()),
        Access::ReadOnly => Err(format!(
            "permission denied: `{}` needs root (members of group `{READ_ONLY_GROUP}` may only read)",
            command.name()
        )),
        Access::Denied => Err(format!(
            "permission denied: only root and members of group `{READ_ONLY_GROUP}` may use tandemd's control socket"
        )),
    }
}

fn supplementary_groups(pid: i32) -> Option<Vec<u32>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Groups:"))?;
    Some(
        line.split_whitespace()
            .filter_map(|g| g.parse().ok())
            .collect(),
    )
}
