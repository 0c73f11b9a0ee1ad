//! Heartbeat links: one UDP socket per configured link, bound to this node's address on
//! that link (and to its interface with `SO_BINDTODEVICE` when one is named), so a
//! heartbeat sent on link k really leaves through link k and an answer on link k proves
//! that link works.
//!
//! Sends never block: a full socket buffer drops the datagram (heartbeats are
//! redundant by design, and waiting would delay the next one). Each link's datagram
//! goes to all of its peers in one `sendmmsg`.
//!
//! One receive path serves every link: the heartbeat thread's loop awaits
//! [`Links::receive`], which waits on all link sockets at once (readable interest only,
//! so completed sends wake nobody) and reads whatever is queued on the ready one with
//! one `recvmmsg` into buffers allocated once. The buffers are one byte larger than
//! `wire::MAX_DATAGRAM`, so an oversized datagram is recognised and dropped instead of
//! silently truncated.

mod mmsg;

pub use mmsg::{SendReport, BATCH};

use crate::core::NodeId;
use mmsg::RecvBatch;
use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};
use std::ffi::OsString;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::os::fd::{AsRawFd, OwnedFd};
use std::task::{Context, Poll};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

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

/// One datagram of the batch [`Links::receive`] read.
#[derive(Debug)]
pub struct Received<'a> {
    /// The configured link index ([`LinkPlan::index`]).
    pub link: usize,
    pub from: Option<SocketAddr>,
    /// The datagram, or `None` if it was larger than `wire::MAX_DATAGRAM`. Mutable so
    /// the receiver can decrypt it where it lies.
    pub datagram: Option<&'a mut [u8]>,
}

struct Link {
    plan: LinkPlan,
    socket: AsyncFd<StdUdpSocket>,
    peers: Vec<SockaddrStorage>,
}

/// Every heartbeat socket of this node, and the one receive batch they share.
pub struct Links {
    links: Vec<Link>,
    batch: RecvBatch,
    /// Position in `links` of the socket the datagrams in `batch` came from.
    batch_link: usize,
    /// Where the next wait starts looking, so a busy link cannot starve the others.
    next: usize,
}

/// A socket error is retried at once (ICMP errors such as ECONNREFUSED from a peer
/// that is down are reported once, then cleared); this many in a row means it is not
/// going away, and the link waits for its next datagram instead of spinning.
const MAX_RECV_ERRORS: usize = 4;

impl Links {
    /// Opens one non-blocking socket per plan, bound to `plan.local:port`. Must be called
    /// inside a tokio runtime (the sockets are registered with it).
    pub fn open(plans: &[LinkPlan], port: u16) -> Result<Links, NetError> {
        let mut links = Vec::with_capacity(plans.len());
        for plan in plans {
            let std_socket = open_socket(plan, port)?;
            // Readable only: with writable interest too, every send completing would
            // wake the thread for nothing.
            // SAFETY: the socket owns its descriptor, and `Link` never replaces or
            // closes it while the `AsyncFd` holds it.
            let socket = unsafe { AsyncFd::register_with_interest(std_socket, Interest::READABLE) }
                .map_err(|e| NetError::Register {
                    link: plan.index,
                    source: e.into(),
                })?;
            let peers = plan
                .peers
                .iter()
                .map(|(_, ip)| SockaddrStorage::from(SocketAddr::new(*ip, port)))
                .collect();
            links.push(Link {
                plan: plan.clone(),
                socket,
                peers,
            });
        }
        Ok(Links {
            links,
            batch: RecvBatch::default(),
            batch_link: 0,
            next: 0,
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
        self.links
            .iter()
            .map(|l| l.socket.get_ref().local_addr())
            .collect()
    }

    /// Sends `datagrams[k]` to every peer on link k (one `sendmmsg` per link), without
    /// blocking. Links without a datagram are skipped; errors are counted, not returned
    /// (a down link is a normal condition the failure detector reports).
    pub fn send_to_all<D: AsRef<[u8]>>(&self, datagrams: &[D]) -> SendReport {
        let mut report = SendReport::default();
        for (link, datagram) in self.links.iter().zip(datagrams) {
            let r = mmsg::send_to_each(
                link.socket.as_raw_fd(),
                datagram.as_ref(),
                &link.peers,
                link.plan.index,
            );
            report.sent += r.sent;
            report.failed += r.failed;
        }
        report
    }

    /// Waits until a datagram is queued on any link, then reads up to [`BATCH`] of that
    /// link's queued datagrams in one `recvmmsg`. Returns how many were read (at least
    /// one); [`received`](Self::received) hands them out until the next call.
    ///
    /// Cancel-safe: nothing is read unless the call returns.
    pub async fn receive(&mut self) -> usize {
        std::future::poll_fn(|cx| self.poll_receive(cx)).await
    }

    /// Datagram `i` of the last [`receive`](Self::receive), with the configured index
    /// of its link (not the socket's position: a node absent from link 0 has its link 1
    /// socket first).
    pub fn received(&mut self, i: usize) -> Option<Received<'_>> {
        let link = self.links.get(self.batch_link)?.plan.index;
        let (from, datagram) = self.batch.get_mut(i)?;
        Some(Received {
            link,
            from,
            datagram,
        })
    }

    fn poll_receive(&mut self, cx: &mut Context<'_>) -> Poll<usize> {
        let n = self.links.len();
        for k in 0..n {
            let index = (self.next + k) % n;
            let Some(link) = self.links.get(index) else {
                continue;
            };
            if let Poll::Ready(count) = link.poll_batch(cx, &mut self.batch) {
                self.batch_link = index;
                self.next = (index + 1) % n;
                return Poll::Ready(count);
            }
        }
        Poll::Pending
    }
}

impl Link {
    /// Reads a batch if this socket has datagrams queued; otherwise registers `cx` to be
    /// woken when it does.
    fn poll_batch(&self, cx: &mut Context<'_>, batch: &mut RecvBatch) -> Poll<usize> {
        let index = self.plan.index;
        let mut errors = 0;
        loop {
            let mut ready = match self.socket.poll_read_ready(cx) {
                Poll::Ready(Ok(ready)) => ready,
                Poll::Ready(Err(e)) => {
                    // The runtime is shutting down; so is the thread.
                    tracing::trace!("link {index}: {e}");
                    return Poll::Pending;
                }
                Poll::Pending => return Poll::Pending,
            };
            match batch.recv(self.socket.as_raw_fd()) {
                Ok(count) if count > 0 => {
                    // A short batch emptied the queue: forget the readiness now rather
                    // than learn it from one more `recvmmsg` failing with EAGAIN. A
                    // datagram arriving meanwhile raises a new edge, so none is missed.
                    if count < BATCH {
                        ready.clear_ready();
                    }
                    return Poll::Ready(count);
                }
                Ok(_) => ready.clear_ready(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready.clear_ready(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::trace!("link {index}: receive error: {e}");
                    errors += 1;
                    if errors >= MAX_RECV_ERRORS {
                        ready.clear_ready();
                    }
                }
            }
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

#[cfg(test)]
mod tests;
