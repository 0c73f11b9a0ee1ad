//! Acceptance test of membership over real sockets: three `tandemd`s in the netns lab,
//! observed only through `tandemctl status --json`. Needs root, iproute2 and nftables
//! (CI installs them); fails loudly otherwise. Bounds are generous: the machine is noisy.

mod support;

use serde_json::Value;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;
use tandem::core::message::{AdminState, NodeFlags};
use tandem::core::{Heartbeat, Instant, NodeId};
use tandem::lab::{wait_until, Lab, LabSpec, Ns};
use tandem::wire::{self, Key};

const PORT: u16 = 5405;
const POLL: Duration = Duration::from_millis(200);

fn build(spec: LabSpec) -> Lab {
    Lab::build(spec).unwrap_or_else(|e| {
        panic!(
            "cannot build the lab: {e}\n(needs root, iproute2 and nftables; .ci/run installs them)"
        )
    })
}

fn status(lab: &Lab, node: usize) -> Option<Value> {
    let out = lab.tandemctl(node, &["status", "--json"]);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

fn node<'a>(s: &'a Value, name: &str) -> Option<&'a Value> {
    s["nodes"].as_array()?.iter().find(|n| n["name"] == name)
}

fn state_of(s: &Value, name: &str) -> Option<String> {
    node(s, name)?["state"].as_str().map(str::to_string)
}

fn link_state(s: &Value, name: &str, link: usize) -> Option<String> {
    node(s, name)?["links"]
        .as_array()?
        .iter()
        .find(|l| l["index"] == link)?["state"]
        .as_str()
        .map(str::to_string)
}

fn drops(s: &Value, reason: &str) -> u64 {
    s["drops"][reason].as_u64().unwrap_or(0)
}

/// Polls until `check` holds on `observer`'s status; panics with the last status.
fn eventually(
    lab: &Lab,
    observer: usize,
    what: &str,
    limit: Duration,
    check: impl Fn(&Value) -> bool,
) {
    let mut last = None;
    let ok = wait_until(limit, POLL, || {
        let s = status(lab, observer)?;
        let hit = check(&s);
        last = Some(s);
        hit.then_some(())
    });
    if ok.is_none() {
        panic!(
            "n{observer}: {what} not reached within {limit:?}; last status: {}\nlog:\n{}",
            last.map(|s| s.to_string()).unwrap_or_else(|| "none".into()),
            lab.logs(observer)
        );
    }
}

fn all_online(s: &Value, names: &[&str]) -> bool {
    names
        .iter()
        .all(|n| state_of(s, n).as_deref() == Some("online"))
}

fn read_key(lab: &Lab) -> Key {
    let hex = std::fs::read_to_string(lab.authkey_path()).expect("read authkey");
    let hex = hex.trim();
    let mut key = [0u8; 32];
    for (i, b) in key.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex key");
    }
    Key::new(key)
}

fn heartbeat(from: u16, incarnation: u64, seq: u64) -> Heartbeat {
    Heartbeat {
        from: NodeId(from),
        incarnation,
        seq,
        sent_at: Instant::from_nanos(1),
        config_digest: 0,
        flags: NodeFlags::default(),
        echoes: vec![],
        view: vec![],
        groups: vec![],
        grants: vec![],
        fenced: vec![],
        refuses: vec![],
        admin: AdminState::default(),
    }
}

/// Sends `datagrams` over UDP from inside the lab's client namespace (a thread that
/// enters it, so nothing is sent from the host namespace).
fn send_from_client(lab: &Lab, to: SocketAddr, datagrams: Vec<Vec<u8>>) {
    let ns = lab.ns_name(Ns::Client).expect("client namespace");
    let from = lab.client_address();
    std::thread::spawn(move || {
        let f = std::fs::File::open(format!("/run/netns/{ns}")).expect("open netns");
        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let sock = UdpSocket::bind(SocketAddr::new(from, 0)).expect("bind in client ns");
        for d in datagrams {
            sock.send_to(&d, to).expect("send");
        }
    })
    .join()
    .expect("sender thread");
}

#[test]
fn three_nodes_join_detect_a_crash_survive_a_cut_link_and_count_bad_packets() {
    if !support::lab::lab_or_skip(
        "three_nodes_join_detect_a_crash_survive_a_cut_link_and_count_bad_packets",
    ) {
        return;
    }
    let spec = LabSpec {
        nodes: 3,
        links: 2,
        interval: Duration::from_millis(100),
        deadtime: Duration::from_secs(1),
        ..LabSpec::default()
    };
    let deadtime = spec.deadtime;
    let mut lab = build(spec);
    lab.start_all().expect("start daemons");
    let names = ["n1", "n2", "n3"];

    // 1. Everyone sees everyone online within 5 s of start (a little slack for a loaded CI).
    for observer in 1..=3 {
        eventually(&lab, observer, "all online", Duration::from_secs(8), |s| {
            all_online(s, &names) && s["quorate"] == true
        });
    }

    // 2. Bad packets towards n1 on link 0 each raise their own counter, change nothing.
    let before = status(&lab, 1).expect("status n1");
    let n2_incarnation = node(&before, "n2")
        .and_then(|n| n["incarnation"].as_u64())
        .expect("inc");
    let key = read_key(&lab);
    let cluster = tandem::core::ids::fnv1a64(b"lab");
    let wrong_key = wire::seal(
        &heartbeat(2, n2_incarnation, u64::MAX / 2),
        cluster,
        0,
        &Key::new([0x5a; 32]),
        [1; 24],
    )
    .expect("seal");
    // Seq 1 of n2's running incarnation, sent twice: whether or not n1 was up to receive
    // n2's own seq 1 (start order varies), the second copy is a replay.
    let replayed =
        wire::seal(&heartbeat(2, n2_incarnation, 1), cluster, 0, &key, [2; 24]).expect("seal");
    let truncated = replayed[..wire::HEADER_LEN + 4].to_vec();
    let n1 = SocketAddr::new(lab.address(1, 0), PORT);
    send_from_client(
        &lab,
        n1,
        vec![wrong_key, replayed.clone(), replayed, truncated],
    );
    eventually(
        &lab,
        1,
        "drop counters raised",
        Duration::from_secs(5),
        |s| {
            ["unknown_key", "replayed", "truncated"]
                .iter()
                .all(|r| drops(s, r) > drops(&before, r))
        },
    );
    let after = status(&lab, 1).expect("status");
    assert!(
        all_online(&after, &names),
        "bad packets changed membership: {after}"
    );
    assert_eq!(
        node(&after, "n2").and_then(|n| n["incarnation"].as_u64()),
        Some(n2_incarnation),
        "a forged packet must not change n2's incarnation"
    );

    // 3. One of two links cut on n3: n3 stays online, that link shows down; heal: up.
    lab.cut_link(3, 1).expect("cut");
    for observer in [1, 2] {
        eventually(
            &lab,
            observer,
            "n3 link 1 down, n3 online",
            deadtime * 3 + Duration::from_secs(2),
            |s| {
                link_state(s, "n3", 1).as_deref() == Some("down")
                    && state_of(s, "n3").as_deref() == Some("online")
                    && link_state(s, "n3", 0).as_deref() == Some("up")
            },
        );
    }
    // It never went offline meanwhile (checked again after more than a deadtime).
    std::thread::sleep(deadtime + Duration::from_millis(500));
    let s = status(&lab, 1).expect("status");
    assert_eq!(state_of(&s, "n3").as_deref(), Some("online"), "{s}");
    lab.heal_link(3, 1).expect("heal");
    for observer in [1, 2] {
        eventually(
            &lab,
            observer,
            "n3 link 1 up again",
            Duration::from_secs(5),
            |s| link_state(s, "n3", 1).as_deref() == Some("up"),
        );
    }

    // 4. kill -9 of n3: the others show it offline within deadtime + 1 s (generous poll).
    lab.kill(3).expect("kill n3");
    for observer in [1, 2] {
        eventually(
            &lab,
            observer,
            "n3 offline",
            deadtime + Duration::from_secs(3),
            |s| state_of(s, "n3").as_deref() == Some("offline") && all_online(s, &["n1", "n2"]),
        );
    }
}

#[test]
fn tandemctl_without_a_daemon_prints_one_line_and_exits_3() {
    let dir = std::env::temp_dir().join(format!("tandem-noctl-{}", std::process::id()));
    let socket = dir.join("tandemd.sock");
    let out = std::process::Command::new(tandem::lab::default_binary("tandemctl"))
        .args(["--socket", &socket.to_string_lossy(), "status"])
        .output()
        .expect("run tandemctl");
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot reach tandemd at") && err.contains("is tandemd running?"),
        "{err}"
    );
}
