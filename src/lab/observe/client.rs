//! The client observer: a thread in the lab's client namespace that asks for the VIP
//! every few ms and records, from one AF_PACKET socket on the client's eth0, every ARP
//! frame whose sender is the VIP and every echo reply to its own probes, with the
//! sender's MAC and a CLOCK_REALTIME receive time. The failover bench probes with ICMP
//! echo through the kernel's stack (the client's ARP cache picks the MAC, as for a real
//! client); chaos broadcasts ARP requests and counts who answers each round.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::raw::{drain_incoming, enter_netns, packet_socket_on_eth0, socket, spawn_in_netns};
use super::{mac_string, realtime_ns};
use crate::lab::topology::{eth0_mac, VIP};
use crate::lab::{Lab, LabError, Ns};

/// ICMP echo identifier of the probe (any fixed value; replies are matched on it).
pub const PROBE_ID: u16 = 0x7a3d;

/// What the observer sends to the VIP, and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// An ICMP echo request through the kernel's stack.
    Echo { every: Duration },
    /// A broadcast "who has the VIP?" on the packet socket; each one opens a round.
    WhoHas { every: Duration },
}

/// What the client saw on its eth0 from the VIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// An ICMP echo reply to the probe.
    EchoReply { mac: [u8; 6] },
    /// An ARP reply to the client.
    ArpReply { mac: [u8; 6] },
    /// Any other ARP frame whose sender is the VIP (a gratuitous announcement).
    ArpOther { mac: [u8; 6] },
}

impl Seen {
    pub fn mac(self) -> [u8; 6] {
        match self {
            Seen::EchoReply { mac } | Seen::ArpReply { mac } | Seen::ArpOther { mac } => mac,
        }
    }

    pub fn is_arp(self) -> bool {
        !matches!(self, Seen::EchoReply { .. })
    }
}

/// One frame seen, when, and in which probe round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sighting {
    pub at_ns: i64,
    /// Index of the last probe sent before it arrived.
    pub round: u32,
    pub seen: Seen,
}

/// An ARP frame from the VIP seen by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ArpSeen {
    /// Index of the last request sent before it arrived.
    pub round: u32,
    pub at_ns: i64,
    #[serde(serialize_with = "ser_mac")]
    pub mac: [u8; 6],
}

fn ser_mac<S: serde::Serializer>(mac: &[u8; 6], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&mac_string(mac))
}

/// The ARP view of a run: every round and who answered it.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// Send time of each request round.
    pub rounds: Vec<i64>,
    /// ARP replies to our requests whose sender is the VIP.
    pub replies: Vec<ArpSeen>,
    /// Other ARP frames from the VIP (gratuitous announcements by a new owner).
    pub announcements: Vec<ArpSeen>,
}

/// Parses one Ethernet frame received by the client: ARP from `vip`, or an echo reply
/// from `vip` to our probe.
pub fn classify(frame: &[u8], vip: Ipv4Addr, client: Ipv4Addr) -> Option<Seen> {
    if frame.len() < 14 {
        return None;
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&frame[6..12]);
    let body = &frame[14..];
    match u16::from_be_bytes([frame[12], frame[13]]) {
        0x0800 => {
            if body.len() < 20 || body[0] >> 4 != 4 {
                return None;
            }
            let ihl = usize::from(body[0] & 0x0f) * 4;
            if body[9] != 1 || body[12..16] != vip.octets() || body.len() < ihl + 8 {
                return None;
            }
            let icmp = &body[ihl..];
            let id = u16::from_be_bytes([icmp[4], icmp[5]]);
            (icmp[0] == 0 && id == PROBE_ID).then_some(Seen::EchoReply { mac })
        }
        0x0806 => {
            // htype 1 (Ethernet), ptype IPv4, hlen 6, plen 4; sender address at 14..18.
            if body.len() < 28 || body[0..2] != [0, 1] || body[2..4] != [0x08, 0x00] {
                return None;
            }
            if body[4] != 6 || body[5] != 4 || body[14..18] != vip.octets() {
                return None;
            }
            let mut sha = [0u8; 6];
            sha.copy_from_slice(&body[8..14]);
            let op = u16::from_be_bytes([body[6], body[7]]);
            Some(if op == 2 && body[24..28] == client.octets() {
                Seen::ArpReply { mac: sha }
            } else {
                Seen::ArpOther { mac: sha }
            })
        }
        _ => None,
    }
}

/// The Internet checksum (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in data.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from_be_bytes([chunk[0], 0])
        };
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMP echo request (without the IP header) with the probe's identifier.
pub fn echo_request(seq: u16) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0] = 8; // echo request
    p[4..6].copy_from_slice(&PROBE_ID.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..16].copy_from_slice(b"tandembn");
    let c = checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// A broadcast "who has `vip`? tell `client`" frame.
pub fn arp_request(src_mac: [u8; 6], client: Ipv4Addr, vip: Ipv4Addr) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&src_mac);
    f[12..14].copy_from_slice(&[0x08, 0x06]);
    f[14..16].copy_from_slice(&[0, 1]);
    f[16..18].copy_from_slice(&[0x08, 0x00]);
    f[18] = 6;
    f[19] = 4;
    f[20..22].copy_from_slice(&[0, 1]);
    f[22..28].copy_from_slice(&src_mac);
    f[28..32].copy_from_slice(&client.octets());
    // Target MAC stays zero.
    f[38..42].copy_from_slice(&vip.octets());
    f
}

#[derive(Debug, Default)]
struct Record {
    rounds: Vec<i64>,
    /// Sightings not handed out by `take` yet (every one, for a `WhoHas` observer).
    sightings: Vec<Sighting>,
    last_arp_reply: Option<Sighting>,
}

/// The sockets of the observer thread, opened inside the client namespace.
struct Sockets {
    packet: OwnedFd,
    /// Echo probes only: the raw ICMP socket they are sent on.
    icmp: Option<OwnedFd>,
}

/// Addresses the observer thread works with.
#[derive(Debug, Clone, Copy)]
struct Addresses {
    client: Ipv4Addr,
    client_mac: [u8; 6],
    vip: Ipv4Addr,
}

/// The running observer; stopping it (drop or `finish`) joins its thread.
pub struct ClientObserver {
    stop: Arc<AtomicBool>,
    record: Arc<Mutex<Record>>,
    handle: Option<JoinHandle<()>>,
}

impl ClientObserver {
    /// Starts observing the VIP from the lab's client namespace (an IPv4 lab).
    pub fn start(lab: &Lab, probe: Probe) -> Result<ClientObserver, LabError> {
        let client_ns = lab.ns_name(Ns::Client)?;
        let client = match lab.client_address() {
            IpAddr::V4(a) => a,
            IpAddr::V6(_) => {
                return Err(LabError::Observer(
                    "the client observer needs an IPv4 lab".into(),
                ))
            }
        };
        let addrs = Addresses {
            client,
            client_mac: eth0_mac(lab, Ns::Client)?,
            vip: VIP,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let record: Arc<Mutex<Record>> = Arc::default();
        let handle = {
            let (stop, record) = (Arc::clone(&stop), Arc::clone(&record));
            spawn_in_netns(
                "client-observer".into(),
                move || open(&client_ns, probe),
                move |sockets| run(&sockets, probe, addrs, &stop, &record),
            )?
        };
        Ok(ClientObserver {
            stop,
            record,
            handle: Some(handle),
        })
    }

    /// Hands over the sightings since the last call (and forgets them).
    pub fn take(&self) -> Vec<Sighting> {
        self.record
            .lock()
            .map(|mut r| std::mem::take(&mut r.sightings))
            .unwrap_or_default()
    }

    /// The last ARP reply, if it came within `within` of now.
    pub fn last_arp_reply(&self, within: Duration) -> Option<Sighting> {
        let last = self.record.lock().ok()?.last_arp_reply?;
        (realtime_ns() - last.at_ns <= within.as_nanos() as i64).then_some(last)
    }

    /// The rounds and ARP sightings recorded so far.
    pub fn observation(&self) -> Observation {
        let Ok(r) = self.record.lock() else {
            return Observation::default();
        };
        let arp = |s: &Sighting| ArpSeen {
            round: s.round,
            at_ns: s.at_ns,
            mac: s.seen.mac(),
        };
        Observation {
            rounds: r.rounds.clone(),
            replies: r
                .sightings
                .iter()
                .filter(|s| matches!(s.seen, Seen::ArpReply { .. }))
                .map(arp)
                .collect(),
            announcements: r
                .sightings
                .iter()
                .filter(|s| matches!(s.seen, Seen::ArpOther { .. }))
                .map(arp)
                .collect(),
        }
    }

    /// Stops the thread and returns the record.
    pub fn finish(mut self) -> Observation {
        self.halt();
        self.observation()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for ClientObserver {
    fn drop(&mut self) {
        self.halt();
    }
}

fn open(client_ns: &str, probe: Probe) -> Result<Sockets, LabError> {
    enter_netns(client_ns)?;
    let packet = packet_socket_on_eth0(libc::ETH_P_ALL as u16)?;
    let icmp = match probe {
        Probe::Echo { .. } => Some(socket(
            libc::AF_INET,
            libc::SOCK_RAW,
            libc::IPPROTO_ICMP,
            "raw ICMP socket",
        )?),
        Probe::WhoHas { .. } => None,
    };
    Ok(Sockets { packet, icmp })
}

/// Sends one probe; true when it went out.
fn send_probe(sockets: &Sockets, addrs: Addresses, seq: u16) -> bool {
    match &sockets.icmp {
        Some(icmp) => {
            // SAFETY: zeroed sockaddr_in is valid.
            let mut dst: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            dst.sin_family = libc::AF_INET as u16;
            dst.sin_addr.s_addr = u32::from(addrs.vip).to_be();
            let p = echo_request(seq);
            // Errors (no neighbour yet, unreachable) are part of what is measured.
            // SAFETY: sendto with a valid buffer and sockaddr_in.
            let n = unsafe {
                libc::sendto(
                    icmp.as_raw_fd(),
                    p.as_ptr().cast(),
                    p.len(),
                    0,
                    &dst as *const libc::sockaddr_in as *const libc::sockaddr,
                    std::mem::size_of::<libc::sockaddr_in>() as u32,
                )
            };
            n > 0
        }
        None => {
            let request = arp_request(addrs.client_mac, addrs.client, addrs.vip);
            // SAFETY: send of a valid buffer on a bound packet socket.
            let n = unsafe {
                libc::send(
                    sockets.packet.as_raw_fd(),
                    request.as_ptr().cast(),
                    request.len(),
                    0,
                )
            };
            n > 0
        }
    }
}

fn run(
    sockets: &Sockets,
    probe: Probe,
    addrs: Addresses,
    stop: &AtomicBool,
    record: &Mutex<Record>,
) {
    let (Probe::Echo { every } | Probe::WhoHas { every }) = probe;
    let mut next_send = Instant::now();
    let mut round: u32 = 0;
    let mut seq: u16 = 0;
    let mut buf = [0u8; 2048];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now >= next_send {
            seq = seq.wrapping_add(1);
            // The round exists from the moment it is sent, answered or not.
            let sent_at = realtime_ns();
            if send_probe(sockets, addrs, seq) {
                if let Ok(mut r) = record.lock() {
                    r.rounds.push(sent_at);
                    round = (r.rounds.len() - 1) as u32;
                }
            }
            next_send += every;
            if next_send < now {
                next_send = now + every;
            }
        }
        drain_incoming(&sockets.packet, next_send, &mut buf, |at_ns, frame| {
            let Some(seen) = classify(frame, addrs.vip, addrs.client) else {
                return;
            };
            if let Ok(mut r) = record.lock() {
                let s = Sighting { at_ns, round, seen };
                r.sightings.push(s);
                if matches!(seen, Seen::ArpReply { .. }) {
                    r.last_arp_reply = Some(s);
                }
            }
        });
        if let Some(icmp) = &sockets.icmp {
            // The raw ICMP socket gets a copy of every reply too; drain it.
            // SAFETY: recv into our buffer on a non-blocking socket.
            while unsafe { libc::recv(icmp.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) } > 0
            {
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 200);

    fn arp_reply(mac: [u8; 6], vip: Ipv4Addr, to: Ipv4Addr) -> Vec<u8> {
        let mut f = arp_request(mac, vip, to).to_vec();
        // Turn the request into a reply: op 2, target = `to`.
        f[20..22].copy_from_slice(&[0, 2]);
        f[28..32].copy_from_slice(&vip.octets());
        f[38..42].copy_from_slice(&to.octets());
        f
    }

    #[test]
    fn echo_replies_are_recognised() {
        let mac = [2, 0, 0, 0, 0, 9];
        let mut f = vec![0u8; 14 + 20 + 16];
        f[6..12].copy_from_slice(&mac);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[14 + 9] = 1;
        f[14 + 12..14 + 16].copy_from_slice(&VIP.octets());
        f[34] = 0;
        f[38..40].copy_from_slice(&PROBE_ID.to_be_bytes());
        assert_eq!(classify(&f, VIP, CLIENT), Some(Seen::EchoReply { mac }));
        f[34] = 8; // a request is not a reply
        assert_eq!(classify(&f, VIP, CLIENT), None);
    }

    #[test]
    fn arp_frames_are_built_and_classified() {
        let me = [2, 0, 0, 0, 0, 1];
        let req = arp_request(me, CLIENT, VIP);
        assert_eq!(&req[0..6], &[0xff; 6]);
        assert_eq!(&req[28..32], &CLIENT.octets());
        assert_eq!(&req[38..42], &VIP.octets());
        // Our own request is not from the VIP.
        assert_eq!(classify(&req, VIP, CLIENT), None);
        let owner = [2, 0, 0, 0, 0, 9];
        let r = arp_reply(owner, VIP, CLIENT);
        assert_eq!(
            classify(&r, VIP, CLIENT),
            Some(Seen::ArpReply { mac: owner })
        );
        // A gratuitous ARP (request, sender = target = VIP).
        let garp = arp_request(owner, VIP, VIP);
        assert_eq!(
            classify(&garp, VIP, CLIENT),
            Some(Seen::ArpOther { mac: owner })
        );
        assert!(Seen::ArpOther { mac: owner }.is_arp());
        // Another address's reply, a short frame, not ARP.
        let other = arp_reply(owner, Ipv4Addr::new(192, 0, 2, 7), CLIENT);
        assert_eq!(classify(&other, VIP, CLIENT), None);
        assert_eq!(classify(&r[..30], VIP, CLIENT), None);
        let mut ip = r.clone();
        ip[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(classify(&ip, VIP, CLIENT), None);
    }

    #[test]
    fn echo_request_checksum_verifies() {
        assert_eq!(checksum(&echo_request(7)), 0);
    }
}
