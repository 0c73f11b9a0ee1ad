//! `tandem-lab chaos` in the netns lab: a short seeded fault storm against real daemons
//! with fencing must move the VIP at least once and never let two MACs answer for it;
//! and the ARP observer that judges this must really see a second owner when one is
//! planted by hand. Needs root (skipped without it, failed under CI) and iproute2 and
//! nftables (fails loudly without them). The tests
//! run one at a time (a lock): the box has two cores.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::thread;
use std::time::{Duration, Instant};

use tandem::lab::chaos::{self, ChaosConfig, FaultKind, Target, OBSERVE_PERIOD};
use tandem::lab::observe::client::{ClientObserver, Probe};
use tandem::lab::observe::{mac_string, realtime_ns};
use tandem::lab::topology::eth0_mac;
use tandem::lab::{Lab, LabSpec, Ns};

fn netns_list() -> String {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const DURATION: Duration = Duration::from_secs(35);

/// The first seed whose schedule takes the owner down (power loss, crash, pause,
/// isolation or graceful restart) early enough to see the takeover: the run below then
/// must contain a failover.
fn seed_with_an_early_owner_fault() -> u64 {
    (1..1000)
        .find(|&seed| {
            chaos::schedule(seed, 3, 2, DURATION).iter().any(|p| {
                p.target == Target::Owner
                    && p.at_ms < 20_000
                    && matches!(
                        p.kind,
                        FaultKind::PowerLoss
                            | FaultKind::DaemonCrash
                            | FaultKind::Isolate
                            | FaultKind::GracefulRestart
                    )
            })
        })
        .expect("some seed below 1000 hits the owner early")
}

#[test]
fn a_short_chaos_run_with_fencing_never_has_two_owners() {
    let Some(_serial) = support::lab::serial_lab_test("lab_chaos") else {
        return;
    };
    let seed = seed_with_an_early_owner_fault();
    let cfg = ChaosConfig {
        seed,
        duration: DURATION,
        fencing: true,
        ..ChaosConfig::default()
    };
    let stop = AtomicBool::new(false);
    let mut out = Vec::new();
    let result = chaos::run(&cfg, &stop, &mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let report = result.unwrap_or_else(|e| panic!("chaos failed: {e}\n{text}"));
    let rendered = report.render();
    let all = format!("{text}\n{rendered}");
    assert!(report.failure.is_none(), "{all}");
    assert!(!report.injected.is_empty(), "no fault injected\n{all}");
    assert!(
        report.injected.iter().any(|f| f.hit_owner),
        "no fault hit the owner\n{all}"
    );
    assert!(report.observer.replies > 100, "{all}");
    assert!(
        !report.observer.owner_changes.is_empty(),
        "no failover seen by the client\n{all}"
    );
    assert_eq!(report.observer.dual_owner_rounds, 0, "{all}");
    assert_eq!(report.failing_dual_windows, 0, "{all}");
    assert!(report.ok(), "{all}");
    // The logs agree that someone held the VIP.
    assert!(
        report.vip_intervals.len() >= 2,
        "fewer than two VIP intervals in the logs after a failover\n{all}"
    );
    assert!(
        rendered.contains(&format!("chaos seed {seed}")),
        "{rendered}"
    );
    // Nothing left behind.
    let prefix = text
        .split_whitespace()
        .skip_while(|w| *w != "lab")
        .nth(1)
        .expect("lab prefix in the output")
        .to_string();
    assert!(prefix.starts_with("tdm"), "{prefix}");
    assert!(
        !netns_list().contains(&prefix),
        "namespaces of {prefix} left behind:\n{}",
        netns_list()
    );
}

fn add_vip(lab: &Lab, node: usize) {
    let out = lab
        .exec(
            Ns::Node(node),
            &["ip", "addr", "add", "192.0.2.100/24", "dev", "eth0"],
        )
        .expect("ip addr add");
    assert!(
        out.status.success(),
        "ip addr add on n{node}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_observer_sees_a_planted_second_owner() {
    let Some(_serial) = support::lab::serial_lab_test("lab_chaos") else {
        return;
    };
    // No daemon runs: the VIP is put on interfaces by hand, the kernels answer ARP.
    let mut lab = Lab::build(LabSpec {
        nodes: 3,
        ..LabSpec::default()
    })
    .unwrap_or_else(|e| panic!("cannot build the lab: {e} (needs root, iproute2, nftables)"));
    let names: BTreeMap<[u8; 6], String> = (1..=3)
        .map(|n| (eth0_mac(&lab, Ns::Node(n)).expect("mac"), format!("n{n}")))
        .collect();
    let mac1 = mac_string(&eth0_mac(&lab, Ns::Node(1)).expect("mac"));
    let observer = ClientObserver::start(
        &lab,
        Probe::WhoHas {
            every: OBSERVE_PERIOD,
        },
    )
    .expect("observer");

    // Nobody has the VIP: requests, no replies.
    thread::sleep(Duration::from_millis(200));
    let quiet = observer.observation();
    assert!(quiet.rounds.len() >= 10, "{} rounds", quiet.rounds.len());
    assert!(quiet.replies.is_empty(), "{:?}", quiet.replies);

    // One owner: replies from n1 only, no dual owner.
    add_vip(&lab, 1);
    wait_for("replies from n1", || {
        observer.observation().replies.len() >= 20
    });
    let one = chaos::analyze(&observer.observation(), &names);
    assert_eq!(one.dual_owner_rounds, 0, "{one:?}");
    assert!(one.dual_windows.is_empty(), "{one:?}");
    assert_eq!(
        one.macs.get(&mac1).map(String::as_str),
        Some("n1"),
        "{one:?}"
    );

    // Plant a second owner on n2.
    let planted_ns = realtime_ns();
    add_vip(&lab, 2);
    wait_for("dual-owner rounds", || {
        chaos::analyze(&observer.observation(), &names).dual_owner_rounds >= 20
    });
    let obs = observer.finish();
    let two = chaos::analyze(&obs, &names);
    assert!(two.dual_owner_rounds >= 20, "{two:?}");
    assert_eq!(two.dual_windows.len(), 1, "{:?}", two.dual_windows);
    let w = &two.dual_windows[0];
    assert_eq!(w.nodes, vec!["n1".to_string(), "n2".to_string()], "{w:?}");
    assert_eq!(w.macs.len(), 2);
    // The window starts after n2 got the address, not before.
    assert!(w.start_ns > planted_ns, "{w:?}");
    lab.teardown();
}
