//! Address announcements after a takeover: gratuitous ARP for IPv4 and unsolicited
//! neighbour advertisements for IPv6, so that switches and neighbours stop sending the
//! VIP's traffic to the old owner's MAC without waiting for their caches to expire.
//!
//! The frame builders are pure (and unit-tested byte by byte); [`send_frame`] writes a
//! finished Ethernet frame to an `AF_PACKET` socket bound to the interface. A packet
//! socket is used rather than the kernel's own ARP/NDISC paths because the kernel only
//! announces on its own schedule (and never re-announces on demand after a partition).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

pub const ETH_P_ARP: u16 = 0x0806;
pub const ETH_P_IPV6: u16 = 0x86dd;
const ETH_BROADCAST: [u8; 6] = [0xff; 6];
/// ff02::1 (all nodes) mapped to Ethernet multicast (RFC 2464 §7).
const ETH_ALL_NODES: [u8; 6] = [0x33, 0x33, 0x00, 0x00, 0x00, 0x01];
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// Ethernet frames are at least 60 bytes before the FCS; NICs pad shorter ones, but a
/// packet socket on a veth or bridge would send them short, so pad ourselves.
const ETH_MIN_FRAME: usize = 60;
const ICMPV6_NEIGHBOR_ADVERT: u8 = 136;
const NA_FLAG_OVERRIDE: u8 = 0x20;
const ND_OPT_TARGET_LINKADDR: u8 = 2;
const IPPROTO_ICMPV6: u8 = 58;

/// Gratuitous ARP for `ip` owned by `mac`: an ARP *request* with sender and target
/// protocol address both set to `ip`, broadcast. RFC 5227 §3 calls this an ARP
/// Announcement and prefers requests over replies; it is what keepalived and `arping -U`
/// send, and some hosts and switches ignore unsolicited replies while every ARP
/// implementation processes requests (Linux updates an existing cache entry from the
/// sender fields of any request it sees). The target hardware address is zero, as RFC
/// 5227 asks.
pub fn garp_frame(mac: [u8; 6], ip: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(ETH_MIN_FRAME);
    f.extend_from_slice(&ETH_BROADCAST);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ETH_P_ARP.to_be_bytes());
    f.extend_from_slice(&1u16.to_be_bytes()); // hardware type: Ethernet
    f.extend_from_slice(&0x0800u16.to_be_bytes()); // protocol type: IPv4
    f.push(6); // hardware address length
    f.push(4); // protocol address length
    f.extend_from_slice(&1u16.to_be_bytes()); // operation: request
    f.extend_from_slice(&mac); // sender hardware address
    f.extend_from_slice(&ip.octets()); // sender protocol address
    f.extend_from_slice(&[0; 6]); // target hardware address
    f.extend_from_slice(&ip.octets()); // target protocol address
    f.resize(ETH_MIN_FRAME, 0);
    f
}

/// Unsolicited neighbour advertisement (RFC 4861 §7.2.6) for `ip` owned by `mac`: sent
/// from `ip` itself to ff02::1 with hop limit 255 (receivers drop ND packets with any
/// other value, as proof they were not routed), Override set so receivers replace a
/// cached link-layer address, Solicited clear (it answers no solicitation; receivers
/// drop multicast NAs with S set), and the Target Link-Layer Address option carrying
/// `mac`.
pub fn unsolicited_na_frame(mac: [u8; 6], ip: Ipv6Addr) -> Vec<u8> {
    let mut icmp = Vec::with_capacity(32);
    icmp.push(ICMPV6_NEIGHBOR_ADVERT);
    icmp.push(0); // code
    icmp.extend_from_slice(&[0, 0]); // checksum, filled in below
    icmp.extend_from_slice(&[NA_FLAG_OVERRIDE, 0, 0, 0]); // R=0 S=0 O=1, reserved
    icmp.extend_from_slice(&ip.octets()); // target address
    icmp.push(ND_OPT_TARGET_LINKADDR);
    icmp.push(1); // option length in units of 8 bytes
    icmp.extend_from_slice(&mac);
    let sum = icmpv6_checksum(ip, ALL_NODES, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());

    let mut f = Vec::with_capacity(14 + 40 + icmp.len());
    f.extend_from_slice(&ETH_ALL_NODES);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
    f.extend_from_slice(&[0x60, 0, 0, 0]); // version 6, traffic class 0, flow label 0
    f.extend_from_slice(&(icmp.len() as u16).to_be_bytes()); // payload length
    f.push(IPPROTO_ICMPV6); // next header
    f.push(255); // hop limit
    f.extend_from_slice(&ip.octets());
    f.extend_from_slice(&ALL_NODES.octets());
    f.extend_from_slice(&icmp);
    f
}

/// The ICMPv6 checksum (RFC 4443 §2.3): the Internet checksum over the IPv6
/// pseudo-header (RFC 8200 §8.1) followed by the ICMPv6 message with its checksum
/// field zero.
fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    let mut pseudo = Vec::with_capacity(40 + message.len());
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&(message.len() as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, IPPROTO_ICMPV6]);
    pseudo.extend_from_slice(message);
    internet_checksum(&pseudo)
}

/// RFC 1071: one's complement of the one's complement sum of 16-bit big-endian words,
/// an odd trailing byte padded with zero.
fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The frame announcing `ip` (GARP or unsolicited NA by family) and its EtherType.
pub fn announcement_frame(mac: [u8; 6], ip: IpAddr) -> (Vec<u8>, u16) {
    match ip {
        IpAddr::V4(v4) => (garp_frame(mac, v4), ETH_P_ARP),
        IpAddr::V6(v6) => (unsolicited_na_frame(mac, v6), ETH_P_IPV6),
    }
}

/// Sends one finished Ethernet frame out of interface `ifindex` through a fresh
/// `AF_PACKET` socket (created in the calling thread's network namespace). The socket
/// is non-blocking: a full transmit queue is reported as an error rather than stalling
/// the agent runtime.
pub fn send_frame(ifindex: u32, frame: &[u8], ethertype: u16) -> io::Result<()> {
    if frame.len() < 14 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frame shorter than an Ethernet header",
        ));
    }
    // Protocol 0: this socket only sends, so the kernel never queues received frames
    // on it.
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a freshly created descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let ifindex = i32::try_from(ifindex)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index too large"))?;
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = ethertype.to_be();
    addr.sll_ifindex = ifindex;
    addr.sll_halen = 6;
    addr.sll_addr[..6].copy_from_slice(&frame[..6]);
    // SAFETY: `frame` and `addr` are valid for the lengths passed; the fd is open.
    let sent = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    if sent as usize != frame.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("sent {sent} of {} bytes", frame.len()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0x00, 0x5e, 0x10, 0x20, 0x30];

    #[test]
    fn garp_is_a_broadcast_arp_request_for_itself() {
        let ip = Ipv4Addr::new(192, 0, 2, 10);
        let f = garp_frame(MAC, ip);
        #[rustfmt::skip]
        let expected: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // destination: broadcast
            0x02, 0x00, 0x5e, 0x10, 0x20, 0x30, // source
            0x08, 0x06,                         // EtherType ARP
            0x00, 0x01, 0x08, 0x00, 6, 4,       // Ethernet / IPv4
            0x00, 0x01,                         // request
            0x02, 0x00, 0x5e, 0x10, 0x20, 0x30, // sender MAC
            192, 0, 2, 10,                      // sender IP
            0, 0, 0, 0, 0, 0,                   // target MAC
            192, 0, 2, 10,                      // target IP
        ];
        assert_eq!(f.len(), 60);
        assert_eq!(&f[..42], &expected[..]);
        assert!(f[42..].iter().all(|b| *b == 0), "padding is zero");
    }

    #[test]
    fn unsolicited_na_layout() {
        let ip: Ipv6Addr = "2001:db8::10".parse().unwrap();
        let f = unsolicited_na_frame(MAC, ip);
        assert_eq!(f.len(), 14 + 40 + 32);
        assert_eq!(&f[0..6], &[0x33, 0x33, 0, 0, 0, 1]);
        assert_eq!(&f[6..12], &MAC);
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        let ip6 = &f[14..54];
        assert_eq!(ip6[0] >> 4, 6, "version");
        assert_eq!(u16::from_be_bytes([ip6[4], ip6[5]]), 32, "payload length");
        assert_eq!(ip6[6], 58, "next header ICMPv6");
        assert_eq!(ip6[7], 255, "hop limit");
        assert_eq!(&ip6[8..24], &ip.octets());
        assert_eq!(&ip6[24..40], &ALL_NODES.octets());
        let icmp = &f[54..];
        assert_eq!(icmp[0], 136, "neighbour advertisement");
        assert_eq!(icmp[1], 0, "code");
        assert_eq!(icmp[4], 0x20, "only Override set");
        assert_eq!(&icmp[5..8], &[0, 0, 0]);
        assert_eq!(&icmp[8..24], &ip.octets());
        assert_eq!(&icmp[24..26], &[2, 1], "target link-layer address option");
        assert_eq!(&icmp[26..32], &MAC);
    }

    /// The checksum value was computed independently of this code, with a separate
    /// RFC 1071 implementation in Python over the pseudo-header
    /// `src | ff02::1 | 0x00000020 | 0x0000003a` followed by the message with a zero
    /// checksum field:
    ///
    /// ```text
    /// import ipaddress, struct
    /// src = ipaddress.IPv6Address("2001:db8::10").packed
    /// dst = ipaddress.IPv6Address("ff02::1").packed
    /// mac = bytes([2, 0, 0x5e, 0x10, 0x20, 0x30])
    /// msg = bytes([136, 0, 0, 0, 0x20, 0, 0, 0]) + src + bytes([2, 1]) + mac
    /// data = src + dst + struct.pack("!I", len(msg)) + bytes([0, 0, 0, 58]) + msg
    /// s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    /// while s >> 16: s = (s & 0xffff) + (s >> 16)
    /// print(hex(~s & 0xffff))   # 0x7acd
    /// ```
    ///
    /// The integration test `agents_vip` also has a real kernel accept the frame, and
    /// the kernel drops NAs with a bad checksum.
    #[test]
    fn unsolicited_na_checksum_matches_an_independent_computation() {
        let ip: Ipv6Addr = "2001:db8::10".parse().unwrap();
        let f = unsolicited_na_frame(MAC, ip);
        assert_eq!(u16::from_be_bytes([f[56], f[57]]), 0x7acd);
    }

    #[test]
    fn checksum_verifies_to_zero_over_the_whole_message() {
        // A receiver sums everything including the checksum field and must get 0.
        let ip: Ipv6Addr = "2001:db8:1::abcd".parse().unwrap();
        let f = unsolicited_na_frame([0x0a, 0xbb, 0xcc, 0xdd, 0xee, 0xff], ip);
        assert_eq!(icmpv6_checksum(ip, ALL_NODES, &f[54..]), 0);
    }

    #[test]
    fn internet_checksum_rfc1071_example() {
        // RFC 1071 §3 example: words 0001 f203 f4f5 f6f7 sum to ddf2 (one's complement
        // sum), so the checksum is its complement 220d.
        assert_eq!(
            internet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
        // Odd length: the last byte is padded with zero.
        assert_eq!(internet_checksum(&[0xff]), !0xff00);
    }
}
