//! The real daemon driver, in process: three nodes inside one network namespace the
//! test creates (addresses 192.0.2.x and 198.51.100.x on its loopback device), talking
//! through real UDP sockets, queried through real control sockets. Needs root (it
//! creates a namespace); skipped with a message otherwise.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::Command as Proc;
use std::time::{Duration, Instant};
use tandem::control::client;
use tandem::control::{Command, Request, StatusReport};
use tandem::core::spec::{FenceMode, FencingSpec, NoQuorumPolicy, NodeSpec, QuorumSpec, Timing};
use tandem::core::{ClusterSpec, NodeId};
use tandem::daemon::{self, Settings};
use tandem::net::{LinkPlan, Links, NetError};
use tandem::wire::{Key, Keyring, MAX_DATAGRAM};

/// A network namespace owned by this test, deleted on drop (also on panic). Named like
/// the lab's so a CI run's stale-lab cleanup also removes it if the test is killed.
struct Netns {
    name: String,
}

impl Netns {
    fn create(tag: u32) -> Option<Netns> {
        if !support::root_or_skip("daemon_loopback") {
            return None;
        }
        let name = format!("tdm{}-{}-n1", std::process::id(), 9000 + tag);
        let ok = Proc::new("ip")
            .args(["netns", "add", &name])
            .status()
            .map(|s| s.success());
        assert_eq!(ok.ok(), Some(true), "ip netns add {name}");
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        for host in 1..=3 {
            ns.ip(&["addr", "add", &format!("192.0.2.{host}/32"), "dev", "lo"]);
            ns.ip(&["addr", "add", &format!("198.51.100.{host}/32"), "dev", "lo"]);
        }
        Some(ns)
    }

    fn ip(&self, args: &[&str]) {
        let out = Proc::new("ip")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .expect("ip");
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Moves the calling thread into the namespace; threads it spawns inherit it.
    fn enter(&self) {
        let f = std::fs::File::open(format!("/run/netns/{}", self.name)).expect("open netns");
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Proc::new("ip").args(["netns", "del", &self.name]).status();
    }
}

/// Runs `f` on a thread inside `ns` (so the test's own thread never leaves the host
/// namespace) and propagates its panic.
fn inside<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let name = ns.name.clone();
    std::thread::spawn(move || {
        Netns { name: name.clone() }.enter_no_drop();
        f()
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

impl Netns {
    fn enter_no_drop(self) {
        self.enter();
        std::mem::forget(self);
    }
}

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn addr(node: u16, link: usize) -> IpAddr {
    if link == 0 {
        v4(192, 0, 2, node as u8)
    } else {
        v4(198, 51, 100, node as u8)
    }
}

fn spec(n: u16) -> ClusterSpec {
    let deadtime = Duration::from_millis(1500);
    ClusterSpec {
        nodes: (1..=n).map(|i| NodeSpec::new(i, format!("n{i}"))).collect(),
        links: 2,
        timing: Timing {
            interval: Duration::from_millis(100),
            deadtime,
            warntime: deadtime / 2,
            initdead: deadtime * 2,
            max_drift_ppm: 500,
            stop_before_lease_end: deadtime / 2,
            watchdog_timeout: None,
        },
        quorum: QuorumSpec {
            expected_votes: None,
            two_node: false,
            wait_for_all: false,
            no_quorum_policy: NoQuorumPolicy::Stop,
            arbiter: None,
        },
        fencing: FencingSpec {
            mode: FenceMode::Off,
            retry_interval: Duration::from_secs(2),
        },
        groups: vec![],
        digest: 7,
    }
}

fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tandem-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn settings(me: u16, n: u16, dir: &std::path::Path, key: [u8; 32]) -> Settings {
    let links = (0..2)
        .map(|link| LinkPlan {
            index: link,
            local: addr(me, link),
            interface: Some("lo".into()),
            peers: (1..=n)
                .filter(|p| *p != me)
                .map(|p| (NodeId(p), addr(p, link)))
                .collect(),
        })
        .collect();
    Settings {
        cluster_name: "loop".into(),
        cluster_id: tandem::core::ids::fnv1a64(b"loop"),
        spec: spec(n),
        me: NodeId(me),
        links,
        port: 5405,
        keyring: Keyring::new(Key::new(key)),
        realtime: false,
        mlockall: false,
        socket: dir.join(format!("n{me}")).join("tandemd.sock"),
        state_dir: dir.join(format!("n{me}")).join("state"),
        config_path: None,
        config: std::sync::Arc::new(minimal_config(n, dir, key)),
        agents: false,
        metrics: None,
    }
}

/// A config file's worth of the same cluster (the daemon reads agents and fence
/// devices from it; this cluster has none).
fn minimal_config(n: u16, dir: &std::path::Path, key: [u8; 32]) -> tandem::config::Config {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).expect("scratch dir");
    let keyfile = dir.join("authkey");
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&keyfile, hex + "\n").expect("write key");
    std::fs::set_permissions(&keyfile, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let nodes: String = (1..=n)
        .map(|p| {
            format!(
                "  - name: n{p}\n    addresses: [{}, {}]\n",
                addr(p, 0),
                addr(p, 1)
            )
        })
        .collect();
    let yaml = format!(
        "cluster:\n  name: loop\n  authkey: {}\nnodes:\n{nodes}",
        keyfile.display()
    );
    tandem::config::parse_str(&yaml, "loop.yaml").expect("minimal config")
}

fn status(socket: &std::path::Path) -> Option<StatusReport> {
    client::call(socket, &Request::new(Command::Status))
        .ok()
        .and_then(|r| r.status)
}

fn node_state(r: &StatusReport, name: &str) -> Option<String> {
    r.view
        .nodes
        .iter()
        .find(|n| n.name == name)
        .map(|n| n.state.clone())
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

#[test]
fn three_daemons_see_each_other_and_count_bad_datagrams() {
    let Some(ns) = Netns::create(1) else { return };
    let dir = scratch("loopback");
    inside(&ns, {
        let dir = dir.clone();
        move || {
            let key = [5u8; 32];
            let mut running: Vec<Option<daemon::Running>> = (1..=3)
                .map(|me| Some(daemon::start(settings(me, 3, &dir, key)).expect("start")))
                .collect();
            let sock = |me: u16| settings(me, 3, &dir, key).socket;

            wait_for(
                "every node online on every node",
                Duration::from_secs(15),
                || {
                    (1..=3).all(|me| {
                        status(&sock(me)).is_some_and(|r| {
                            (1..=3).all(|p| {
                                node_state(&r, &format!("n{p}")).as_deref() == Some("online")
                            })
                        })
                    })
                },
            );

            // Hostile traffic from an address of the namespace towards n1's link 0.
            let before = status(&sock(1)).expect("status");
            let raw = UdpSocket::bind((Ipv4Addr::new(192, 0, 2, 3), 0)).expect("bind raw");
            let n1 = SocketAddr::new(addr(1, 0), 5405);
            let hb = tandem::core::Heartbeat {
                from: NodeId(2),
                incarnation: 1,
                seq: 1,
                sent_at: tandem::core::Instant::from_nanos(1),
                config_digest: 7,
                flags: Default::default(),
                echoes: vec![],
                view: vec![],
                groups: vec![],
                grants: vec![],
                fenced: vec![],
                refuses: vec![],
                admin: Default::default(),
            };
            let cluster = tandem::core::ids::fnv1a64(b"loop");
            let wrong_key =
                tandem::wire::seal(&hb, cluster, 0, &Key::new([9; 32]), [1; 24]).expect("seal");
            raw.send_to(&wrong_key, n1).expect("send");
            let good = tandem::wire::seal(&hb, cluster, 0, &Key::new(key), [2; 24]).expect("seal");
            raw.send_to(&good[..50], n1).expect("send truncated");
            raw.send_to(&vec![0u8; MAX_DATAGRAM + 1], n1)
                .expect("send oversized");
            let drops_rose = |r: &StatusReport, k: &str| {
                r.drops.get(k).copied().unwrap_or(0) > before.drops.get(k).copied().unwrap_or(0)
            };
            wait_for("drop counters", Duration::from_secs(10), || {
                status(&sock(1)).is_some_and(|r| {
                    drops_rose(&r, "unknown_key")
                        && drops_rose(&r, "truncated")
                        && drops_rose(&r, "oversized")
                })
            });
            let after = status(&sock(1)).expect("status");
            assert_eq!(node_state(&after, "n2").as_deref(), Some("online"));
            assert_eq!(after.cluster, "loop");
            assert_eq!(after.config_digest, "0000000000000007");

            // Stop n3: the others must see it go offline, and the socket file goes away.
            let n3 = running[2].take().expect("n3");
            n3.stop().expect("stop n3");
            assert!(!sock(3).exists(), "socket file removed on stop");
            wait_for("n3 offline on n1 and n2", Duration::from_secs(15), || {
                (1..=2).all(|me| {
                    status(&sock(me))
                        .is_some_and(|r| node_state(&r, "n3").as_deref() == Some("offline"))
                })
            });
            for r in running.into_iter().flatten() {
                r.stop().expect("stop");
            }
        }
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn links_flag_oversized_datagrams_and_refuse_a_taken_port() {
    let Some(ns) = Netns::create(2) else { return };
    inside(&ns, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async {
            let plan = |me: u16| LinkPlan {
                index: 0,
                local: addr(me, 0),
                interface: None,
                peers: vec![(NodeId(2), addr(2, 0))],
            };
            let mut rx = Links::open(
                &[LinkPlan {
                    peers: vec![],
                    ..plan(2)
                }],
                6000,
            )
            .expect("rx");
            assert!(matches!(
                Links::open(&[plan(2)], 6000),
                Err(NetError::Bind { link: 0, .. })
            ));
            let tx = Links::open(&[plan(1)], 6000).expect("tx");
            let report = tx.send_to_all(&[b"beat".to_vec()]);
            assert_eq!(report.sent, 1);
            let raw = UdpSocket::bind((Ipv4Addr::new(192, 0, 2, 3), 0)).expect("raw");
            raw.send_to(
                &vec![1u8; MAX_DATAGRAM + 1],
                (Ipv4Addr::new(192, 0, 2, 2), 6000),
            )
            .expect("big");
            raw.send_to(
                &vec![2u8; MAX_DATAGRAM],
                (Ipv4Addr::new(192, 0, 2, 2), 6000),
            )
            .expect("max");
            // One receive path: everything queued comes out in order, in one batch or more.
            let mut got = Vec::new();
            while got.len() < 3 {
                for i in 0..rx.receive().await {
                    let r = rx.received(i).expect("in the batch");
                    got.push((r.from, r.datagram.map(|d| d.to_vec())));
                }
            }
            assert_eq!(got[0].1.as_deref(), Some(&b"beat"[..]));
            assert_eq!(got[0].0, Some(SocketAddr::new(addr(1, 0), 6000)));
            assert!(got[1].1.is_none(), "oversized must be flagged");
            assert_eq!(got[2].1.as_ref().map(|d| d.len()), Some(MAX_DATAGRAM));
        });
    });
}
