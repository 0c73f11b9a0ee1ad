//! What a node's heartbeats cost on the wire, from the kernel's own counters in the
//! node's namespace: UDP datagrams sent (`/proc/PID/net/snmp`, `Udp: OutDatagrams`), IP
//! fragments created (`Ip: FragCreates`: non-zero means a datagram did not fit the
//! link MTU) and the bytes and frames on the heartbeat interfaces (`/proc/PID/net/dev`).
//! Any process of the namespace will do as PID: the files are per network namespace.

use serde::Serialize;

/// Ethernet header, IPv4 header without options, UDP header: what each frame (and each
/// datagram) carries besides the heartbeat itself. The lab's node addresses are IPv4.
const ETH_HEADER: u64 = 14;
const IPV4_HEADER: u64 = 20;
const UDP_HEADER: u64 = 8;

/// Counters of one namespace at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub udp_out: u64,
    pub frag_creates: u64,
    /// Over the interfaces asked for.
    pub tx_bytes: u64,
    pub tx_packets: u64,
}

/// A node's heartbeat traffic over a run (the difference of two `Counters`).
#[derive(Debug, Clone, Serialize)]
pub struct Traffic {
    pub node: String,
    pub datagrams: u64,
    pub fragments_created: u64,
    /// Mean UDP payload per datagram: the heartbeat's size on the wire (header, sealed
    /// body, tag). Frames that are not IPv4 (ARP) count as noise of a few bytes.
    pub mean_payload_bytes: f64,
    pub datagrams_per_s: f64,
}

impl Counters {
    /// The counters of the namespace `pid` lives in, summed over `ifaces`.
    pub fn read(pid: u32, ifaces: &[String]) -> Option<Counters> {
        let snmp = std::fs::read_to_string(format!("/proc/{pid}/net/snmp")).ok()?;
        let dev = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
        let (tx_bytes, tx_packets) = tx_of(&dev, ifaces)?;
        Some(Counters {
            udp_out: snmp_field(&snmp, "Udp", "OutDatagrams")?,
            frag_creates: snmp_field(&snmp, "Ip", "FragCreates")?,
            tx_bytes,
            tx_packets,
        })
    }

    /// What was sent between `self` (earlier) and `later`, over `wall_s` seconds.
    pub fn traffic(&self, later: &Counters, node: &str, wall_s: f64) -> Traffic {
        let datagrams = later.udp_out.saturating_sub(self.udp_out);
        let frames = later.tx_packets.saturating_sub(self.tx_packets);
        let bytes = later.tx_bytes.saturating_sub(self.tx_bytes);
        let payload = bytes
            .saturating_sub(frames * (ETH_HEADER + IPV4_HEADER))
            .saturating_sub(datagrams * UDP_HEADER);
        Traffic {
            node: node.to_string(),
            datagrams,
            fragments_created: later.frag_creates.saturating_sub(self.frag_creates),
            mean_payload_bytes: if datagrams == 0 {
                f64::NAN
            } else {
                payload as f64 / datagrams as f64
            },
            datagrams_per_s: datagrams as f64 / wall_s.max(f64::MIN_POSITIVE),
        }
    }
}

/// `proto: field` from /proc/net/snmp, whose sections are a line of names followed by
/// a line of values, both prefixed `Proto:`.
fn snmp_field(snmp: &str, proto: &str, field: &str) -> Option<u64> {
    let prefix = format!("{proto}:");
    let mut lines = snmp.lines().filter(|l| l.starts_with(&prefix));
    let names = lines.next()?;
    let values = lines.next()?;
    let at = names.split_whitespace().position(|n| n == field)?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// Summed tx bytes and packets of `ifaces` from /proc/net/dev (after the name: 8
/// receive columns, then transmit bytes and packets).
fn tx_of(dev: &str, ifaces: &[String]) -> Option<(u64, u64)> {
    let mut found = 0;
    let (mut bytes, mut packets) = (0, 0);
    for line in dev.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        if !ifaces.iter().any(|i| i == name.trim()) {
            continue;
        }
        let cols: Vec<u64> = rest
            .split_whitespace()
            .filter_map(|c| c.parse().ok())
            .collect();
        bytes += cols.get(8)?;
        packets += cols.get(9)?;
        found += 1;
    }
    (found == ifaces.len()).then_some((bytes, packets))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNMP: &str = "Ip: Forwarding DefaultTTL InReceives FragOKs FragFails FragCreates\n\
                        Ip: 2 64 1000 3 0 6\n\
                        Udp: InDatagrams NoPorts InErrors OutDatagrams\n\
                        Udp: 500 0 0 412\n";
    const DEV: &str = "Inter-|   Receive                                                |  Transmit\n \
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
         lo:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n  \
         eth0:  90000     300    0    0    0     0          0         0   100000     400    0    0    0     0       0          0\n  \
         eth1:  90000     300    0    0    0     0          0         0    50000     200    0    0    0     0       0          0\n";

    #[test]
    fn reads_the_kernel_counters_by_name() {
        assert_eq!(snmp_field(SNMP, "Udp", "OutDatagrams"), Some(412));
        assert_eq!(snmp_field(SNMP, "Ip", "FragCreates"), Some(6));
        assert_eq!(snmp_field(SNMP, "Udp", "Nope"), None);
        let both = ["eth0".to_string(), "eth1".to_string()];
        assert_eq!(tx_of(DEV, &both), Some((150_000, 600)));
        assert_eq!(tx_of(DEV, &["eth7".to_string()]), None);
    }

    #[test]
    fn the_payload_is_what_is_left_after_the_headers() {
        let before = Counters::default();
        // 100 datagrams of 200 bytes, each one frame: 100 * (14 + 20 + 8 + 200) bytes.
        let after = Counters {
            udp_out: 100,
            frag_creates: 0,
            tx_bytes: 100 * 242,
            tx_packets: 100,
        };
        let t = before.traffic(&after, "n1", 10.0);
        assert_eq!((t.datagrams, t.fragments_created), (100, 0));
        assert!((t.mean_payload_bytes - 200.0).abs() < 1e-9, "{t:?}");
        assert!((t.datagrams_per_s - 10.0).abs() < 1e-9);
    }
}
