//! Heartbeat links: one UDP socket per configured link, bound to this node's address on
//! that link (and to its interface with `SO_BINDTODEVICE` when one is named), so a
//! heartbeat sent on link k really leaves through link k and an answer on link k proves
//! that link works.
//!
//! Sends never block: a full socket buffer drops the datagram (heartbeats are
//! redundant by design, and waiting would delay the next one). Receives read into a
//! buffer one byte larger than `wire::MAX_DATAGRAM`, so an oversized datagram is
//! recognised and dropped instead of silently truncated.

use crate::core::NodeId;
use crate::wire::MAX_DATAGRAM;
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};
use std::ffi::OsString;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// One heartbeat link as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkPlan {
    /// 0-based link index (authenticated into every datagram).
    pub index: usize,
    /// This node's address on the link.
    pub local: IpAddr,
    /// Interface to bind to (`SO_BINDTODEVICE`), if configured.
    pub interface: Option<String>,
    /// Every other node's address on this link.
    pub peers: Vec<(NodeId, IpAddr)>,
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("link {link}: cannot create UDP socket: {source}")]
    Socket { link: usize, source: nix::Error },
    #[error("link {link}: cannot bind to interface {interface:?}: {source}")]
    BindDevice {
        link: usize,
        interface: String,
        source: nix::Error,
    },
    #[error("link {link}: cannot set socket option {option}: {source}")]
    Option {
        link: usize,
        option: &'static str,
        source: nix::Error,
    },
    #[error("link {link}: cannot bind to {addr}: {source}")]
    Bind {
        link: usize,
        addr: SocketAddr,
        source: nix::Error,
    },
    #[error("link {link}: cannot register socket with the runtime: {source}")]
    Register { link: usize, source: io::Error },
}

/// One received datagram.
#[derive(Debug)]
pub struct Received {
    pub link: usize,
    pub from: SocketAddr,
    /// The datagram, or `None` if it was larger than `wire::MAX_DATAGRAM`.
    pub datagram: Option<Vec<u8>>,
}

struct Link {
    plan: LinkPlan,
    socket: UdpSocket,
    peer_addrs: Vec<SocketAddr>,
}

/// Every heartbeat socket of this node.
#[derive(Clone)]
pub struct Links {
    links: Arc<Vec<Link>>,
}

/// Outcome of one `send_to_all`, for logging and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SendReport {
    pub sent: usize,
    pub failed: usize,
}

impl Links {
    /// Opens one non-blocking socket per plan, bound to `plan.local:port`. Must be called
    /// inside a tokio runtime (the sockets are registered with it).
    pub fn open(plans: &[LinkPlan], port: u16) -> Result<Links, NetError> {
        let mut links = Vec::with_capacity(plans.len());
        for plan in plans {
            let std_socket = open_socket(plan, port)?;
            let socket = UdpSocket::from_std(std_socket).map_err(|source| NetError::Register {
                link: plan.index,
                source,
            })?;
            let peer_addrs = plan
                .peers
                .iter()
                .map(|(_, ip)| SocketAddr::new(*ip, port))
                .collect();
            links.push(Link {
                plan: plan.clone(),
                socket,
                peer_addrs,
            });
        }
        Ok(Links {
            links: Arc::new(links),
        })
    }

    pub fn len(&self) -> usize {
        self.links.len()
    }

    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    pub fn plans(&self) -> impl Iterator<Item = &LinkPlan> {
        self.links.iter().map(|l| &l.plan)
    }

    /// The address each socket is actually bound to.
    pub fn local_addrs(&self) -> Vec<io::Result<SocketAddr>> {
        self.links.iter().map(|l| l.socket.local_addr()).collect()
    }

    /// Sends `datagrams[k]` to every peer on link k, without blocking. Links without a
    /// datagram are skipped; errors are counted, not returned (a down link is a normal
    /// condition the failure detector reports).
    pub fn send_to_all(&self, datagrams: &[Vec<u8>]) -> SendReport {
        let mut report = SendReport::default();
        for (link, datagram) in self.links.iter().zip(datagrams) {
            for addr in &link.peer_addrs {
                // A direct non-blocking sendto: tokio's `try_send_to` would refuse until the
                // reactor has seen the socket become writable, losing the first beats.
                let to = SockaddrStorage::from(*addr);
                match socket::sendto(
                    link.socket.as_raw_fd(),
                    datagram,
                    &to,
                    socket::MsgFlags::MSG_DONTWAIT,
                ) {
                    Ok(_) => report.sent += 1,
                    Err(e) => {
                        report.failed += 1;
                        tracing::trace!("link {}: send to {addr} failed: {e}", link.plan.index);
                    }
                }
            }
        }
        report
    }

    /// Receives one datagram on link `link`.
    pub async fn recv(&self, link: usize, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        match self.links.get(link) {
            Some(l) => l.socket.recv_from(buf).await,
            None => Err(io::Error::new(io::ErrorKind::NotFound, "no such link")),
        }
    }

    /// Spawns one receive task per link on the current runtime; each forwards what it
    /// receives into `out` until `out` is closed.
    pub fn spawn_receivers(&self, out: mpsc::UnboundedSender<Received>) {
        for index in 0..self.links.len() {
            let links = self.clone();
            let out = out.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; MAX_DATAGRAM + 1];
                loop {
                    let received = match links.recv(index, &mut buf).await {
                        Ok((n, from)) => Received {
                            link: index,
                            from,
                            datagram: (n <= MAX_DATAGRAM).then(|| buf[..n].to_vec()),
                        },
                        Err(e) => {
                            // ICMP errors from an earlier send surface here on Linux
                            // (ECONNREFUSED from a peer that is down): not fatal.
                            tracing::trace!("link {index}: receive error: {e}");
                            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                            continue;
                        }
                    };
                    if out.send(received).is_err() {
                        return;
                    }
                }
            });
        }
    }
}

fn open_socket(plan: &LinkPlan, port: u16) -> Result<StdUdpSocket, NetError> {
    let link = plan.index;
    let family = match plan.local {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd: OwnedFd = socket::socket(
        family,
        SockType::Datagram,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|source| NetError::Socket { link, source })?;
    if let Some(interface) = &plan.interface {
        socket::setsockopt(&fd, sockopt::BindToDevice, &OsString::from(interface)).map_err(
            |source| NetError::BindDevice {
                link,
                interface: interface.clone(),
                source,
            },
        )?;
    }
    if family == AddressFamily::Inet6 {
        socket::setsockopt(&fd, sockopt::Ipv6V6Only, &true).map_err(|source| NetError::Option {
            link,
            option: "IPV6_V6ONLY",
            source,
        })?;
        // A freshly added IPv6 address is "tentative" until duplicate address detection
        // ends; binding would fail with EADDRNOTAVAIL during that second.
        socket::setsockopt(&fd, sockopt::IpFreebind, &true).map_err(|source| NetError::Option {
            link,
            option: "IP_FREEBIND",
            source,
        })?;
    }
    let addr = SocketAddr::new(plan.local, port);
    let storage = SockaddrStorage::from(addr);
    socket::bind(fd.as_raw_fd(), &storage).map_err(|source| NetError::Bind {
        link,
        addr,
        source,
    })?;
    Ok(StdUdpSocket::from(fd))
}
