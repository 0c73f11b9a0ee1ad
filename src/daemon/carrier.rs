//! The carrier watch: a thread that listens for link changes (`RTM_NEWLINK` /
//! `RTM_DELLINK` on a `NETLINK_ROUTE` socket subscribed to `RTMGRP_LINK`) on every
//! interface a `vip` resource of the config uses, and tells the core at once when one
//! loses its carrier or disappears ([`Input::ResourceFault`], through the same channel
//! as the executor's answers). The core decides what that means: a fault of a vip this
//! node runs moves the group away; any other is ignored. Without this, a pulled cable
//! waited for the next `vip` monitor (10 s by default).
//!
//! Only losses are reported, once per loss: a carrier that comes back changes nothing
//! here (the core's ban, lifted by `failure_timeout`, decides when the node may take
//! the group again). The interfaces are those of the config the daemon started with; a
//! reload that adds a vip on a new interface is watched after a restart.

use super::executor::Answers;
use crate::config::{Config, ResourceKind};
use crate::core::{Fault, GroupId, Input};
use std::collections::BTreeSet;
use std::os::fd::{AsRawFd, OwnedFd};

// The kernel's names, from libc (sizes from its structs), so none is written again here.
const RTMGRP_LINK: u32 = libc::RTMGRP_LINK as u32;
const RTM_NEWLINK: u16 = libc::RTM_NEWLINK;
const RTM_DELLINK: u16 = libc::RTM_DELLINK;
const NLMSG_HDR: usize = std::mem::size_of::<libc::nlmsghdr>();
const IFINFOMSG: usize = std::mem::size_of::<libc::ifinfomsg>();
const IFLA_IFNAME: u16 = libc::IFLA_IFNAME;
const IFF_UP: u32 = libc::IFF_UP as u32;
const IFF_RUNNING: u32 = libc::IFF_RUNNING as u32;
const IFF_LOWER_UP: u32 = libc::IFF_LOWER_UP as u32;

/// One vip resource and the interface it lives on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watched {
    pub interface: String,
    pub group: GroupId,
    pub resource: String,
}

/// Every vip resource of the config with its interface.
pub fn watched(config: &Config) -> Vec<Watched> {
    config
        .groups
        .iter()
        .flat_map(|g| {
            g.resources.iter().filter_map(move |r| match &r.kind {
                ResourceKind::Vip { interface, .. } => Some(Watched {
                    interface: interface.clone(),
                    group: g.id,
                    resource: r.name.clone(),
                }),
                _ => None,
            })
        })
        .collect()
}

/// What one link message says about an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkChange {
    /// `RTM_NEWLINK`: the interface exists; `carrier` = up, running and lower up.
    State { interface: String, carrier: bool },
    /// `RTM_DELLINK`.
    Gone { interface: String },
}

/// The link messages in one netlink datagram (others are skipped).
pub fn parse_link_messages(mut data: &[u8]) -> Vec<LinkChange> {
    let mut out = Vec::new();
    while data.len() >= NLMSG_HDR {
        let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let kind = u16::from_ne_bytes([data[4], data[5]]);
        if len < NLMSG_HDR || len > data.len() {
            break;
        }
        if kind == RTM_NEWLINK || kind == RTM_DELLINK {
            if let Some(change) = parse_link(kind, &data[NLMSG_HDR..len]) {
                out.push(change);
            }
        }
        data = data.get((len + 3) & !3..).unwrap_or(&[]);
    }
    out
}

/// One `ifinfomsg` with its attributes; `None` without a name.
fn parse_link(kind: u16, msg: &[u8]) -> Option<LinkChange> {
    let flags = u32::from_ne_bytes(msg.get(8..12)?.try_into().ok()?);
    let mut attrs = msg.get(IFINFOMSG..)?;
    let mut name = None;
    while attrs.len() >= 4 {
        let alen = usize::from(u16::from_ne_bytes([attrs[0], attrs[1]]));
        let akind = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
        if alen < 4 || alen > attrs.len() {
            break;
        }
        if akind == IFLA_IFNAME {
            let raw = &attrs[4..alen];
            let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
            name = Some(String::from_utf8_lossy(&raw[..end]).into_owned());
        }
        attrs = attrs.get((alen + 3) & !3..).unwrap_or(&[]);
    }
    let interface = name?;
    Some(if kind == RTM_DELLINK {
        LinkChange::Gone { interface }
    } else {
        let carrier =
            flags & (IFF_UP | IFF_RUNNING | IFF_LOWER_UP) == IFF_UP | IFF_RUNNING | IFF_LOWER_UP;
        LinkChange::State { interface, carrier }
    })
}

/// Which watched interfaces are known to be without carrier, so that a loss is
/// reported once (the kernel repeats `RTM_NEWLINK` for other flag changes).
#[derive(Debug, Default)]
pub struct CarrierState {
    lost: BTreeSet<String>,
}

impl CarrierState {
    /// The fault a change means, if it is a new loss on a watched interface.
    pub fn on_change(&mut self, change: LinkChange, watched: &[Watched]) -> Option<Fault> {
        let (interface, fault) = match change {
            LinkChange::State {
                interface,
                carrier: true,
            } => {
                self.lost.remove(&interface);
                return None;
            }
            LinkChange::State { interface, .. } => {
                let f = Fault::NoCarrier {
                    interface: interface.clone(),
                };
                (interface, f)
            }
            LinkChange::Gone { interface } => {
                let f = Fault::InterfaceGone {
                    interface: interface.clone(),
                };
                (interface, f)
            }
        };
        if !watched.iter().any(|w| w.interface == interface) {
            return None;
        }
        self.lost.insert(interface).then_some(fault)
    }
}

/// The inputs for the core that a fault on `fault`'s interface means: one per vip there.
pub fn faults_for(fault: &Fault, watched: &[Watched]) -> Vec<Input> {
    let interface = match fault {
        Fault::NoCarrier { interface } | Fault::InterfaceGone { interface } => interface,
    };
    watched
        .iter()
        .filter(|w| &w.interface == interface)
        .map(|w| Input::ResourceFault {
            group: w.group,
            resource: w.resource.clone(),
            fault: fault.clone(),
        })
        .collect()
}

/// Starts the watch for the vips of `config`, if it has any. The socket is opened here,
/// in the calling thread's network namespace (the one the agents use); the thread only
/// receives, so it needs no runtime and never touches the heartbeat thread.
pub fn spawn(config: &Config, answers: Answers) -> std::io::Result<()> {
    let watched = watched(config);
    if watched.is_empty() {
        return Ok(());
    }
    let fd = open()?;
    std::thread::Builder::new()
        .name("tandem-carrier".into())
        .spawn(move || run(&fd, &watched, &answers))?;
    Ok(())
}

fn open() -> std::io::Result<OwnedFd> {
    let fd = crate::guard::netlink::route_socket()?;
    // SAFETY: a zeroed sockaddr_nl is valid; the fields that matter are set below.
    let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as u16;
    sa.nl_groups = RTMGRP_LINK;
    // SAFETY: bind(2) with a sockaddr_nl of the right size, on a socket we own.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

fn run(fd: &OwnedFd, watched: &[Watched], answers: &Answers) {
    let mut buf = vec![0u8; 32 * 1024];
    let mut state = CarrierState::default();
    loop {
        // SAFETY: recv(2) into a buffer we own, of its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                // The kernel dropped messages (a burst of changes): the next change of
                // each interface tells its state again.
                Some(libc::ENOBUFS) => {
                    tracing::warn!("carrier watch: netlink overrun, some link changes lost");
                    continue;
                }
                _ => {
                    tracing::error!("carrier watch stops: {e}");
                    return;
                }
            }
        }
        let len = usize::try_from(n).unwrap_or(0).min(buf.len());
        for change in parse_link_messages(&buf[..len]) {
            let Some(fault) = state.on_change(change, watched) else {
                continue;
            };
            tracing::warn!("carrier watch: {fault}");
            for input in faults_for(&fault, watched) {
                // The heartbeat thread is gone only at shutdown.
                if answers.send(input).is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One RTM_NEWLINK (or DELLINK) datagram for `name` with `flags`.
    fn link_message(kind: u16, name: &str, flags: u32) -> Vec<u8> {
        let attr_len = 4 + name.len() + 1;
        let padded = (attr_len + 3) & !3;
        let total = NLMSG_HDR + IFINFOMSG + padded;
        let mut m = vec![0u8; total];
        m[0..4].copy_from_slice(&(total as u32).to_ne_bytes());
        m[4..6].copy_from_slice(&kind.to_ne_bytes());
        let i = NLMSG_HDR;
        m[i + 4..i + 8].copy_from_slice(&7i32.to_ne_bytes());
        m[i + 8..i + 12].copy_from_slice(&flags.to_ne_bytes());
        let a = i + IFINFOMSG;
        m[a..a + 2].copy_from_slice(&(attr_len as u16).to_ne_bytes());
        m[a + 2..a + 4].copy_from_slice(&IFLA_IFNAME.to_ne_bytes());
        m[a + 4..a + 4 + name.len()].copy_from_slice(name.as_bytes());
        m
    }

    fn watch_eth0() -> Vec<Watched> {
        vec![Watched {
            interface: "eth0".into(),
            group: GroupId(9),
            resource: "ip".into(),
        }]
    }

    const CARRIER: u32 = IFF_UP | IFF_RUNNING | IFF_LOWER_UP;

    #[test]
    fn link_messages_say_carrier_and_deletion() {
        let mut data = link_message(RTM_NEWLINK, "eth0", CARRIER);
        data.extend(link_message(RTM_NEWLINK, "eth1", IFF_UP));
        data.extend(link_message(RTM_DELLINK, "eth2", 0));
        data.extend(link_message(20, "ignored", 0));
        assert_eq!(
            parse_link_messages(&data),
            [
                LinkChange::State {
                    interface: "eth0".into(),
                    carrier: true
                },
                LinkChange::State {
                    interface: "eth1".into(),
                    carrier: false
                },
                LinkChange::Gone {
                    interface: "eth2".into()
                },
            ]
        );
    }

    #[test]
    fn truncated_messages_are_dropped_not_misread() {
        let m = link_message(RTM_NEWLINK, "eth0", CARRIER);
        assert!(parse_link_messages(&m[..m.len() - 4]).is_empty());
        assert!(parse_link_messages(&m[..NLMSG_HDR + 8]).is_empty());
    }

    #[test]
    fn a_loss_is_reported_once_per_loss_and_only_for_watched_interfaces() {
        let w = watch_eth0();
        let mut s = CarrierState::default();
        let lost = || LinkChange::State {
            interface: "eth0".into(),
            carrier: false,
        };
        let back = LinkChange::State {
            interface: "eth0".into(),
            carrier: true,
        };
        let fault = Fault::NoCarrier {
            interface: "eth0".into(),
        };
        assert_eq!(s.on_change(lost(), &w), Some(fault.clone()));
        assert_eq!(s.on_change(lost(), &w), None, "repeated: already reported");
        assert_eq!(s.on_change(back, &w), None);
        assert_eq!(s.on_change(lost(), &w), Some(fault.clone()), "a new loss");
        let other = LinkChange::Gone {
            interface: "eth1".into(),
        };
        assert_eq!(s.on_change(other, &w), None, "not a vip's interface");
        assert_eq!(
            faults_for(&fault, &w),
            [Input::ResourceFault {
                group: GroupId(9),
                resource: "ip".into(),
                fault
            }]
        );
    }

    /// Against the kernel: a veth pair whose far end goes down (the near end stays up
    /// and loses its carrier, as when a cable is pulled), then is deleted. Needs
    /// CAP_NET_ADMIN and changes interfaces, so it is ignored by default; run it in a
    /// network namespace of its own:
    /// `unshare -n cargo test --lib carrier -- --ignored`.
    #[test]
    #[ignore]
    fn the_kernel_reports_carrier_loss_of_a_veth() {
        let fd = open().expect("netlink socket");
        let ip = |args: &[&str]| {
            let ok = std::process::Command::new("ip")
                .args(args)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "ip {args:?}");
        };
        ip(&[
            "link", "add", "tdmc0", "type", "veth", "peer", "name", "tdmc1",
        ]);
        ip(&["link", "set", "tdmc0", "up"]);
        ip(&["link", "set", "tdmc1", "up"]);
        std::thread::sleep(std::time::Duration::from_millis(200));
        ip(&["link", "set", "tdmc1", "down"]);
        ip(&["link", "del", "tdmc0"]);
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        while !seen.iter().any(|c| matches!(c, LinkChange::Gone { .. })) {
            // SAFETY: recv(2) into a buffer we own; MSG_DONTWAIT: the messages are queued.
            let n = unsafe {
                libc::recv(
                    fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            assert!(n > 0, "no more messages; saw {seen:?}");
            seen.extend(
                parse_link_messages(&buf[..n as usize])
                    .into_iter()
                    .filter(|c| matches!(c, LinkChange::State { interface, .. } | LinkChange::Gone { interface } if interface == "tdmc0")),
            );
        }
        let w = vec![Watched {
            interface: "tdmc0".into(),
            group: GroupId(1),
            resource: "ip".into(),
        }];
        let mut state = CarrierState::default();
        let faults: Vec<Fault> = seen
            .into_iter()
            .filter_map(|c| state.on_change(c, &w))
            .collect();
        // Created down (a loss), carrier once both ends are up, the far end down (a
        // loss again, the near end still up), deleted (already lost: not reported
        // twice).
        let lost = Fault::NoCarrier {
            interface: "tdmc0".into(),
        };
        assert_eq!(faults, [lost.clone(), lost]);
    }
}
