//! The links on 127.0.0.x (every 127/8 address is local on Linux, so no namespace and no
//! root): one receive path over several sockets, batches, no lost wake-up after a short
//! batch, one send reaching every peer, errors that do not stall the receiver.

use super::*;
use std::time::Duration;

/// A port per test and process, so parallel tests and runs do not collide.
fn port(test: u16) -> u16 {
    40_000 + (std::process::id() % 2_000) as u16 * 8 + test
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

fn plan(index: usize, local: u8, peers: &[u8]) -> LinkPlan {
    LinkPlan {
        index,
        local: ip(local),
        interface: None,
        peers: peers
            .iter()
            .map(|p| (NodeId(u16::from(*p)), ip(*p)))
            .collect(),
    }
}

/// Runs a test's body on a current-thread runtime, with the test's own port.
fn on_port<F: std::future::Future<Output = ()>>(test: u16, body: impl FnOnce(u16) -> F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(body(port(test)));
}

/// A batch of one datagram on link 0.
fn one(bytes: &[u8]) -> Vec<(usize, Option<Vec<u8>>)> {
    vec![(0, Some(bytes.to_vec()))]
}

/// Every datagram of the next batch, as (link, bytes).
async fn next_batch(links: &mut Links) -> Vec<(usize, Option<Vec<u8>>)> {
    let n = tokio::time::timeout(Duration::from_secs(5), links.receive())
        .await
        .expect("a datagram within 5 s");
    (0..n)
        .map(|i| {
            let r = links.received(i).expect("in the batch");
            (r.link, r.datagram.map(|d| d.to_vec()))
        })
        .collect()
}

#[test]
fn one_send_reaches_every_peer_and_one_wait_serves_every_link() {
    on_port(0, |port| async move {
        let tx = Links::open(&[plan(0, 11, &[12, 13]), plan(1, 14, &[15])], port).expect("tx");
        let mut rx = Links::open(&[plan(0, 12, &[]), plan(1, 15, &[])], port).expect("rx");
        let mut other = Links::open(&[plan(0, 13, &[])], port).expect("other");
        let report = tx.send_to_all(&[b"zero".to_vec(), b"one".to_vec()]);
        assert_eq!(report, SendReport { sent: 3, failed: 0 });
        let mut seen = next_batch(&mut rx).await;
        seen.extend(next_batch(&mut rx).await);
        seen.sort();
        assert_eq!(
            seen,
            vec![(0, Some(b"zero".to_vec())), (1, Some(b"one".to_vec()))]
        );
        assert_eq!(next_batch(&mut other).await, one(b"zero"));
    });
}

/// A node absent from link 0 has its link 1 socket first: what it receives there is
/// reported as link 1, the configured index, not as its socket's position.
#[test]
fn a_node_on_link_1_only_receives_with_the_configured_index() {
    on_port(5, |port| async move {
        let tx = Links::open(&[plan(0, 21, &[]), plan(1, 22, &[23])], port).expect("tx");
        let mut rx = Links::open(&[plan(1, 23, &[])], port).expect("rx");
        let report = tx.send_to_all(&[b"zero".to_vec(), b"one".to_vec()]);
        assert_eq!(report, SendReport { sent: 1, failed: 0 });
        assert_eq!(next_batch(&mut rx).await, vec![(1, Some(b"one".to_vec()))]);
    });
}

#[test]
fn a_backlog_is_read_in_batches_and_a_short_batch_loses_no_later_datagram() {
    on_port(1, |port| async move {
        let tx = Links::open(&[plan(0, 21, &[22])], port).expect("tx");
        let mut rx = Links::open(&[plan(0, 22, &[])], port).expect("rx");
        for i in 0..BATCH + 2 {
            tx.send_to_all(&[vec![u8::try_from(i).expect("small"); 3]]);
        }
        let first = next_batch(&mut rx).await;
        assert_eq!(first.len(), BATCH, "one recvmmsg reads a full batch");
        assert_eq!(first[0], (0, Some(vec![0; 3])));
        let second = next_batch(&mut rx).await;
        assert_eq!(second.len(), 2);
        // The short batch cleared the readiness: the next wait must block, then wake
        // for a datagram sent later.
        let early = tokio::time::timeout(Duration::from_millis(50), rx.receive()).await;
        assert!(early.is_err(), "woke with nothing queued");
        tx.send_to_all(&[b"later".to_vec()]);
        assert_eq!(next_batch(&mut rx).await, one(b"later"));
    });
}

#[test]
fn oversized_datagrams_are_flagged_and_the_largest_allowed_passes() {
    on_port(2, |port| async move {
        let mut rx = Links::open(&[plan(0, 32, &[])], port).expect("rx");
        let raw = StdUdpSocket::bind((ip(31), 0)).expect("raw");
        let max = crate::wire::MAX_DATAGRAM;
        raw.send_to(&vec![1; max + 1], (ip(32), port)).expect("big");
        raw.send_to(&vec![2; max], (ip(32), port)).expect("max");
        let mut got = next_batch(&mut rx).await;
        if got.len() < 2 {
            got.extend(next_batch(&mut rx).await);
        }
        assert_eq!(got[0], (0, None), "oversized must be flagged, not cut");
        assert_eq!(got[1].1.as_ref().map(Vec::len), Some(max));
    });
}

#[test]
fn a_refused_send_is_counted_and_does_not_stall_receiving() {
    on_port(3, |port| async move {
        // Nobody listens on 127.0.0.42: a port-unreachable comes back (an error on
        // the socket where the kernel reports one); tx must still send and receive.
        let mut tx = Links::open(&[plan(0, 41, &[42])], port).expect("tx");
        assert_eq!(tx.send_to_all(&[b"x".to_vec()]).sent, 1);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let peer = Links::open(&[plan(0, 43, &[41])], port).expect("peer");
        peer.send_to_all(&[b"hello".to_vec()]);
        assert_eq!(next_batch(&mut tx).await, one(b"hello"));
    });
}

#[test]
fn ipv6_links_bound_to_a_device_send_and_receive() {
    on_port(4, |port| async move {
        // ::1 is the only IPv6 loopback address: the link's one peer is itself.
        let plan = LinkPlan {
            index: 0,
            local: loopback6(),
            interface: Some("lo".into()),
            peers: vec![(NodeId(1), loopback6())],
        };
        let mut links = Links::open(&[plan], port).expect("open");
        assert_eq!(links.send_to_all(&[b"six".to_vec()]).sent, 1);
        let n = tokio::time::timeout(Duration::from_secs(5), links.receive())
            .await
            .expect("a datagram within 5 s");
        assert_eq!(n, 1);
        let r = links.received(0).expect("in the batch");
        assert_eq!(r.datagram.as_deref(), Some(&b"six"[..]));
        let from = r.from.expect("an IPv6 sender");
        assert_eq!((from.ip(), from.port()), (loopback6(), port));
    });
}

fn loopback6() -> IpAddr {
    IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
}
