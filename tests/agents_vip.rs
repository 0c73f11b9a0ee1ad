//! The `vip` agent against a real kernel: each test creates a "node" and a "peer"
//! network namespace joined by a veth pair (node side `eth0`), runs the agent on a
//! thread that entered the node namespace (with its own current-thread tokio runtime),
//! checks the addresses with `ip -n NS addr`, and checks the announcements where they
//! matter: the peer's neighbour table, seeded with a stale entry pointing at a wrong
//! MAC, must end up with the node's real MAC — the stale-ARP-cache-after-failover case
//! VRRP users hit. Addresses come from 192.0.2.0/24 and 2001:db8::/32 only; the
//! namespaces (and with them the veths) are deleted on drop, also on panic.
//! Needs root; skipped with a message otherwise.

use std::future::Future;
use std::net::IpAddr;
use std::time::{Duration, Instant};
mod support;

use support::agents::Netns;
use tandem::agents::{run_op, vip, OpContext};
use tandem::config::{ResourceConfig, ResourceKind};
use tandem::core::{OpKind, OpResult};

const WRONG_MAC: &str = "02:00:00:00:00:01";

/// Node and peer namespaces with a veth between them: `eth0` in the node (192.0.2.1/24,
/// 2001:db8::1/64), `v1` in the peer (192.0.2.2/24, 2001:db8::2/64).
struct Pair {
    node: Netns,
    peer: Netns,
}

impl Pair {
    fn new() -> Pair {
        let node = Netns::new();
        let peer = Netns::new();
        node.ip(&[
            "link", "add", "eth0", "type", "veth", "peer", "name", "v1", "netns", &peer.name,
        ]);
        node.ip(&["addr", "add", "192.0.2.1/24", "dev", "eth0"]);
        node.ip(&["addr", "add", "2001:db8::1/64", "dev", "eth0", "nodad"]);
        peer.ip(&["addr", "add", "192.0.2.2/24", "dev", "v1"]);
        peer.ip(&["addr", "add", "2001:db8::2/64", "dev", "v1", "nodad"]);
        node.ip(&["link", "set", "eth0", "up"]);
        peer.ip(&["link", "set", "v1", "up"]);
        // IPv6 multicast (the NA goes to ff02::1) is routed only once the kernel has
        // processed the carrier change (linkwatch may take a second) and added its
        // `multicast ff00::/8` route; until then packets count as Ip6InNoRoutes.
        for (ns, dev) in [(&node, "eth0"), (&peer, "v1")] {
            let start = Instant::now();
            let wanted = format!("multicast ff00::/8 dev {dev}");
            while !ns
                .ip_output(&["-6", "route", "show", "table", "local"])
                .contains(&wanted)
            {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "{wanted} never appeared"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Pair { node, peer }
    }

    fn node_mac(&self) -> String {
        let out = self.node.ip_output(&["-o", "link", "show", "dev", "eth0"]);
        let mac = out
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .unwrap_or_else(|| panic!("no MAC in {out}"));
        mac.to_string()
    }

    /// The peer's cache entry for `ip`, e.g. `192.0.2.10 dev v1 lladdr 02:.. STALE`.
    fn peer_neigh(&self, ip: &str) -> String {
        self.peer
            .ip_output(&["neigh", "show", "to", ip, "dev", "v1"])
    }

    fn make_peer_entry_stale(&self, ip: &str) {
        self.peer.ip(&[
            "neigh", "replace", ip, "lladdr", WRONG_MAC, "dev", "v1", "nud", "stale",
        ]);
        assert!(self.peer_neigh(ip).contains(WRONG_MAC));
    }
}

/// Runs `f` on a new thread inside `ns` with a current-thread runtime (so everything
/// the agent spawns also runs there) and returns its result; a panic propagates.
fn inside<T, F, Fut>(ns: &Netns, f: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
{
    let path = format!("/run/netns/{}", ns.name);
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(f())
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

fn vip_resource(
    address: &str,
    label: Option<&str>,
    count: u32,
    refresh: Option<u64>,
) -> ResourceConfig {
    let (ip, prefix) = address.split_once('/').expect("address/prefix");
    ResourceConfig {
        name: format!("vip-{ip}"),
        kind: ResourceKind::Vip {
            address: ip.parse::<IpAddr>().expect("ip"),
            prefix: prefix.parse().expect("prefix"),
            interface: "eth0".into(),
            label: label.map(str::to_string),
            garp_count: count,
            garp_interval: Duration::from_millis(200),
            garp_refresh: refresh.map(Duration::from_millis),
        },
        timeout: Some(Duration::from_secs(10)),
        promotable: false,
    }
}

fn with_interface(r: &ResourceConfig, name: &str) -> ResourceConfig {
    let mut r = r.clone();
    if let ResourceKind::Vip { interface, .. } = &mut r.kind {
        *interface = name.to_string();
    }
    r
}

async fn op(resource: &ResourceConfig, kind: OpKind) -> OpResult {
    let ctx = OpContext {
        group: "g",
        resource,
        kind,
        timeout: Duration::from_secs(10),
        interval: Duration::ZERO,
        token: None,
    };
    run_op(&ctx).await
}

/// Polls `f` (on the runtime, so the agent's tasks keep running) until it is true.
async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn addr_lines(ns: &Netns, family: &str) -> String {
    ns.ip_output(&[family, "-o", "addr", "show", "dev", "eth0"])
}

#[test]
fn ipv4_start_monitor_stop_are_idempotent_and_real() {
    if !support::root_or_skip("ipv4_start_monitor_stop_are_idempotent_and_real") {
        return;
    }
    let pair = Pair::new();
    let r = vip_resource("192.0.2.10/24", Some("eth0:vip"), 1, None);
    let rr = r.clone();
    let (before, s1, s2, mon) = inside(&pair.node, move || async move {
        (
            op(&rr, OpKind::Monitor).await,
            op(&rr, OpKind::Start).await,
            op(&rr, OpKind::Start).await,
            op(&rr, OpKind::Monitor).await,
        )
    });
    assert_eq!(before, OpResult::NotRunning);
    assert_eq!(s1, OpResult::Ok);
    assert_eq!(s2, OpResult::Ok, "a second start succeeds");
    assert_eq!(mon, OpResult::Ok);
    let addrs = addr_lines(&pair.node, "-4");
    let line = addrs
        .lines()
        .find(|l| l.contains("192.0.2.10/24"))
        .unwrap_or_else(|| panic!("VIP missing:\n{addrs}"));
    assert!(line.contains("eth0:vip"), "label missing: {line}");
    assert_eq!(
        addrs.matches("192.0.2.10/").count(),
        1,
        "added once:\n{addrs}"
    );

    let rr = r.clone();
    let (t1, t2, after) = inside(&pair.node, move || async move {
        (
            op(&rr, OpKind::Stop).await,
            op(&rr, OpKind::Stop).await,
            op(&rr, OpKind::Monitor).await,
        )
    });
    assert_eq!(t1, OpResult::Ok);
    assert_eq!(t2, OpResult::Ok, "stopping an absent address succeeds");
    assert_eq!(after, OpResult::NotRunning);
    let addrs = addr_lines(&pair.node, "-4");
    assert!(!addrs.contains("192.0.2.10/"), "VIP still there:\n{addrs}");
    assert!(
        addrs.contains("192.0.2.1/24"),
        "the node's own address was kept:\n{addrs}"
    );
}

#[test]
fn ipv6_start_monitor_stop_without_dad() {
    if !support::root_or_skip("ipv6_start_monitor_stop_without_dad") {
        return;
    }
    let pair = Pair::new();
    let r = vip_resource("2001:db8::10/64", None, 1, None);
    let rr = r.clone();
    let (s1, s2, mon) = inside(&pair.node, move || async move {
        (
            op(&rr, OpKind::Start).await,
            op(&rr, OpKind::Start).await,
            op(&rr, OpKind::Monitor).await,
        )
    });
    assert_eq!((s1, s2, mon), (OpResult::Ok, OpResult::Ok, OpResult::Ok));
    let addrs = addr_lines(&pair.node, "-6");
    let line = addrs
        .lines()
        .find(|l| l.contains("2001:db8::10/64"))
        .unwrap_or_else(|| panic!("VIP missing:\n{addrs}"));
    assert!(line.contains("nodad"), "added without DAD: {line}");
    assert!(!line.contains("tentative"), "usable at once: {line}");

    let rr = r.clone();
    let (t1, t2, after) = inside(&pair.node, move || async move {
        (
            op(&rr, OpKind::Stop).await,
            op(&rr, OpKind::Stop).await,
            op(&rr, OpKind::Monitor).await,
        )
    });
    assert_eq!(
        (t1, t2, after),
        (OpResult::Ok, OpResult::Ok, OpResult::NotRunning)
    );
    let addrs = addr_lines(&pair.node, "-6");
    assert!(
        !addrs.contains("2001:db8::10/"),
        "VIP still there:\n{addrs}"
    );
}

#[test]
fn a_missing_interface_is_a_clear_error_and_stop_still_succeeds() {
    if !support::root_or_skip("a_missing_interface_is_a_clear_error_and_stop_still_succeeds") {
        return;
    }
    let pair = Pair::new();
    let r = with_interface(&vip_resource("192.0.2.11/24", None, 1, None), "eth9");
    let (start, mon, stop) = inside(&pair.node, move || async move {
        (
            op(&r, OpKind::Start).await,
            op(&r, OpKind::Monitor).await,
            op(&r, OpKind::Stop).await,
        )
    });
    for result in [start, mon] {
        match result {
            OpResult::Failed(m) => assert!(m.contains("interface eth9 does not exist"), "{m}"),
            other => panic!("expected a failure, got {other:?}"),
        }
    }
    assert_eq!(
        stop,
        OpResult::Ok,
        "nothing can be configured on a missing interface"
    );
}

#[test]
fn a_down_interface_fails_monitor_and_start() {
    if !support::root_or_skip("a_down_interface_fails_monitor_and_start") {
        return;
    }
    let pair = Pair::new();
    let r = vip_resource("192.0.2.12/24", None, 1, None);
    let rr = r.clone();
    assert_eq!(
        inside(
            &pair.node,
            move || async move { op(&rr, OpKind::Start).await }
        ),
        OpResult::Ok
    );
    pair.node.ip(&["link", "set", "eth0", "down"]);
    let rr = r.clone();
    let mon = inside(
        &pair.node,
        move || async move { op(&rr, OpKind::Monitor).await },
    );
    assert_eq!(mon, OpResult::Failed("eth0 is down".into()));

    // A start on a down interface refuses rather than adding an address nobody reaches.
    let other = vip_resource("192.0.2.13/24", None, 1, None);
    let start = inside(&pair.node, move || async move {
        op(&other, OpKind::Start).await
    });
    assert_eq!(start, OpResult::Failed("eth0 is down".into()));
    assert!(!addr_lines(&pair.node, "-4").contains("192.0.2.13/"));

    // Carrier lost (the peer's end is down) is a failure too.
    pair.node.ip(&["link", "set", "eth0", "up"]);
    pair.peer.ip(&["link", "set", "v1", "down"]);
    let rr = r.clone();
    let mon = inside(
        &pair.node,
        move || async move { op(&rr, OpKind::Monitor).await },
    );
    assert_eq!(mon, OpResult::Failed("eth0 has no carrier".into()));
}

/// The VRRP stale-ARP case: the peer still maps the VIP to the old owner's MAC; the
/// gratuitous ARPs of the new owner must correct it. Then the refresh keeps correcting
/// it while owned, stops after Stop, and `announce_again` corrects it on demand.
#[test]
fn gratuitous_arp_fixes_a_stale_neighbour_entry_and_refresh_stops_with_stop() {
    if !support::root_or_skip(
        "gratuitous_arp_fixes_a_stale_neighbour_entry_and_refresh_stops_with_stop",
    ) {
        return;
    }
    let pair = std::sync::Arc::new(Pair::new());
    let mac = pair.node_mac();
    let ip = "192.0.2.20";
    pair.make_peer_entry_stale(ip);
    let r = vip_resource(&format!("{ip}/24"), None, 3, Some(500));
    let p = pair.clone();
    inside(&pair.node, move || async move {
        let vip_ip: IpAddr = ip.parse().expect("ip");
        assert_eq!(op(&r, OpKind::Start).await, OpResult::Ok);
        wait_until(
            "the peer to learn the VIP's MAC from the GARP",
            Duration::from_secs(10),
            || p.peer_neigh(ip).contains(&mac),
        )
        .await;
        assert!(vip::announcing("eth0", vip_ip), "refresh scheduled");

        // After the burst the refresh still announces.
        tokio::time::sleep(Duration::from_secs(1)).await;
        p.make_peer_entry_stale(ip);
        wait_until(
            "the refresh to fix the entry again",
            Duration::from_secs(10),
            || p.peer_neigh(ip).contains(&mac),
        )
        .await;

        // Stop cancels the refresh: a stale entry now stays stale.
        assert_eq!(op(&r, OpKind::Stop).await, OpResult::Ok);
        assert!(!vip::announcing("eth0", vip_ip), "refresh cancelled");
        p.make_peer_entry_stale(ip);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let entry = p.peer_neigh(ip);
        assert!(
            entry.contains(WRONG_MAC),
            "nothing announces a stopped VIP: {entry}"
        );
        // ... and announce_again has nothing to announce.
        vip::announce_again(&r).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(p.peer_neigh(ip).contains(WRONG_MAC));

        // Owned again without refresh: announce_again (partition healed) fixes it.
        let once = vip_resource(&format!("{ip}/24"), None, 1, None);
        assert_eq!(op(&once, OpKind::Start).await, OpResult::Ok);
        tokio::time::sleep(Duration::from_millis(500)).await;
        p.make_peer_entry_stale(ip);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            p.peer_neigh(ip).contains(WRONG_MAC),
            "no refresh configured"
        );
        vip::announce_again(&once).await;
        wait_until(
            "announce_again to fix the entry",
            Duration::from_secs(10),
            || p.peer_neigh(ip).contains(&mac),
        )
        .await;
        assert_eq!(op(&once, OpKind::Stop).await, OpResult::Ok);
    });
}

/// The same for IPv6: the unsolicited neighbour advertisement (Override set) replaces
/// the peer's stale entry; the peer's kernel checks hop limit and ICMPv6 checksum.
#[test]
fn unsolicited_na_fixes_a_stale_ipv6_neighbour_entry() {
    if !support::root_or_skip("unsolicited_na_fixes_a_stale_ipv6_neighbour_entry") {
        return;
    }
    let pair = std::sync::Arc::new(Pair::new());
    let mac = pair.node_mac();
    let ip = "2001:db8::20";
    pair.make_peer_entry_stale(ip);
    let r = vip_resource(&format!("{ip}/64"), None, 3, None);
    let p = pair.clone();
    inside(&pair.node, move || async move {
        assert_eq!(op(&r, OpKind::Start).await, OpResult::Ok);
        wait_until(
            "the peer to learn the VIP's MAC from the NA",
            Duration::from_secs(10),
            || p.peer_neigh(ip).contains(&mac),
        )
        .await;
        assert_eq!(op(&r, OpKind::Stop).await, OpResult::Ok);
    });
}
