//! Removing addresses by rtnetlink with nothing but a socket opened at start and a
//! stack buffer: the guard cannot use the async `rtnetlink` crate (no runtime, no
//! allocation when it acts), and `RTM_DELADDR` is 40 bytes it can write by hand.

use super::record::VipEntry;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

// The kernel's numbers come from libc; the two header sizes are fixed by the ABI
// (libc has no `ifaddrmsg` on every target).
const NLMSG_HDR: usize = std::mem::size_of::<libc::nlmsghdr>();
const IFADDRMSG: usize = 8;
const RTM_DELADDR: u16 = libc::RTM_DELADDR;
const REQUEST_ACK: u16 = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
const NLMSG_ERROR: u16 = libc::NLMSG_ERROR as u16;
const ADDRESS_ATTRS: [u16; 2] = [libc::IFA_LOCAL, libc::IFA_ADDRESS];
/// Largest request: header, ifaddrmsg, two IPv6 attributes of 4 + 16 bytes.
pub const MAX_REQUEST: usize = NLMSG_HDR + IFADDRMSG + 2 * (4 + 16);

/// Writes an `RTM_DELADDR` for `vip` into `buf`; returns its length.
///
/// Both `IFA_LOCAL` and `IFA_ADDRESS` carry the address: IPv4 matches on the local
/// address, IPv6 on the address and prefix length, so the request finds the address
/// however the vip agent added it.
pub fn delete_request(vip: &VipEntry, seq: u32, buf: &mut [u8; MAX_REQUEST]) -> usize {
    let (family, octets, len): (u8, [u8; 16], usize) = match vip.address {
        IpAddr::V4(a) => {
            let mut o = [0u8; 16];
            o[..4].copy_from_slice(&a.octets());
            (libc::AF_INET as u8, o, 4)
        }
        IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets(), 16),
    };
    let total = NLMSG_HDR + IFADDRMSG + 2 * (4 + len);
    *buf = [0u8; MAX_REQUEST];
    buf[0..4].copy_from_slice(&(total as u32).to_ne_bytes());
    buf[4..6].copy_from_slice(&RTM_DELADDR.to_ne_bytes());
    buf[6..8].copy_from_slice(&REQUEST_ACK.to_ne_bytes());
    buf[8..12].copy_from_slice(&seq.to_ne_bytes());
    // nlmsg_pid 0: the kernel.
    let m = NLMSG_HDR;
    buf[m] = family;
    buf[m + 1] = vip.prefix;
    buf[m + 4..m + 8].copy_from_slice(&vip.ifindex.to_ne_bytes());
    let mut at = m + IFADDRMSG;
    for kind in ADDRESS_ATTRS {
        buf[at..at + 2].copy_from_slice(&((4 + len) as u16).to_ne_bytes());
        buf[at + 2..at + 4].copy_from_slice(&kind.to_ne_bytes());
        buf[at + 4..at + 4 + len].copy_from_slice(&octets[..len]);
        at += 4 + len;
    }
    total
}

/// The error code of a netlink ACK (`0` success, else a positive errno), with its
/// sequence number; `None` if `msg` is not an `NLMSG_ERROR`.
pub fn parse_ack(msg: &[u8]) -> Option<(u32, i32)> {
    if msg.len() < NLMSG_HDR + 4 {
        return None;
    }
    let kind = u16::from_ne_bytes([msg[4], msg[5]]);
    if kind != NLMSG_ERROR {
        return None;
    }
    let seq = u32::from_ne_bytes([msg[8], msg[9], msg[10], msg[11]]);
    let err = i32::from_ne_bytes([msg[16], msg[17], msg[18], msg[19]]);
    Some((seq, -err))
}

/// A `NETLINK_ROUTE` socket, opened once at start.
pub struct Rtnl {
    fd: OwnedFd,
    seq: u32,
}

/// A `NETLINK_ROUTE` socket of the calling thread's network namespace (also what the
/// lab's address watcher listens on).
pub fn route_socket() -> std::io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Rtnl {
    pub fn open() -> std::io::Result<Rtnl> {
        Ok(Rtnl {
            fd: route_socket()?,
            seq: 0,
        })
    }

    /// Sends one delete per address and waits (at most `wait_ms` in total) for the
    /// kernel's answers. Returns (removed, already absent, failed).
    pub fn delete_all<'a>(
        &mut self,
        vips: impl Iterator<Item = &'a VipEntry>,
        wait_ms: i32,
    ) -> (u32, u32, u32) {
        let mut buf = [0u8; MAX_REQUEST];
        let mut sent = 0u32;
        let mut failed = 0u32;
        for vip in vips {
            self.seq = self.seq.wrapping_add(1);
            let len = delete_request(vip, self.seq, &mut buf);
            // SAFETY: buf is valid for len bytes; the socket is ours.
            let rc = unsafe {
                libc::send(
                    self.fd.as_raw_fd(),
                    buf.as_ptr().cast(),
                    len,
                    libc::MSG_DONTWAIT,
                )
            };
            if rc < 0 {
                failed += 1;
            } else {
                sent += 1;
            }
        }
        let (removed, absent, refused) = self.read_acks(sent, wait_ms);
        (removed, absent, failed + refused)
    }

    fn read_acks(&mut self, mut pending: u32, wait_ms: i32) -> (u32, u32, u32) {
        let (mut removed, mut absent, mut refused) = (0, 0, 0);
        let mut buf = [0u8; 1024];
        let mut left = wait_ms;
        while pending > 0 && left > 0 {
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut pfd, 1, 1) } <= 0 {
                left -= 1;
                continue;
            }
            let Some(n) = super::recv_waiting(self.fd.as_raw_fd(), &mut buf) else {
                continue;
            };
            if let Some((_, err)) = parse_ack(&buf[..n]) {
                pending -= 1;
                match err {
                    0 => removed += 1,
                    libc::EADDRNOTAVAIL | libc::ENODEV => absent += 1,
                    _ => refused += 1,
                }
            }
        }
        (removed, absent, refused + pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vip(ifindex: u32, address: &str, prefix: u8) -> VipEntry {
        VipEntry {
            group: 1,
            ifindex,
            address: address.parse().unwrap(),
            prefix,
        }
    }

    #[test]
    fn ipv4_request_layout() {
        let vip = vip(7, "192.0.2.10", 24);
        let mut buf = [0u8; MAX_REQUEST];
        let len = delete_request(&vip, 3, &mut buf);
        assert_eq!(len, 16 + 8 + 8 + 8);
        assert_eq!(
            u32::from_ne_bytes(buf[0..4].try_into().unwrap()),
            len as u32
        );
        assert_eq!(u16::from_ne_bytes([buf[4], buf[5]]), RTM_DELADDR);
        assert_eq!(u32::from_ne_bytes(buf[8..12].try_into().unwrap()), 3);
        assert_eq!(buf[16], libc::AF_INET as u8);
        assert_eq!(buf[17], 24);
        assert_eq!(u32::from_ne_bytes(buf[20..24].try_into().unwrap()), 7);
        assert_eq!(u16::from_ne_bytes([buf[26], buf[27]]), libc::IFA_LOCAL);
        assert_eq!(&buf[28..32], &[192, 0, 2, 10]);
        assert_eq!(u16::from_ne_bytes([buf[34], buf[35]]), libc::IFA_ADDRESS);
        assert_eq!(&buf[36..40], &[192, 0, 2, 10]);
    }

    #[test]
    fn ipv6_request_is_the_largest() {
        let vip = vip(2, "2001:db8::10", 64);
        let mut buf = [0u8; MAX_REQUEST];
        assert_eq!(delete_request(&vip, 1, &mut buf), MAX_REQUEST);
        assert_eq!(buf[16], libc::AF_INET6 as u8);
    }

    #[test]
    fn acks_are_parsed_and_other_messages_ignored() {
        let mut ack = [0u8; 36];
        ack[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        ack[8..12].copy_from_slice(&9u32.to_ne_bytes());
        ack[16..20].copy_from_slice(&(-libc::EADDRNOTAVAIL).to_ne_bytes());
        assert_eq!(parse_ack(&ack), Some((9, libc::EADDRNOTAVAIL)));
        ack[4] = 0x14;
        assert_eq!(parse_ack(&ack), None);
        assert_eq!(parse_ack(&ack[..10]), None);
    }
}
