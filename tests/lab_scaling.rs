//! Issue 13 point 3, as behaviour: `bench footprint --nodes --groups` builds the larger
//! lab, measures every node, and the heartbeat it sees on the wire is what the config
//! check computes: one datagram, never IP-fragmented, within the config's bound.
//! And `bench vs-keepalived` runs keepalived and tandem on one lab. Need root (skipped
//! without it, failed under CI), iproute2, nftables; the second also keepalived.
#![cfg(feature = "lab")]

mod support;

use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tandem::config::HEARTBEAT_BUDGET;
use tandem::lab::keepalived::{self, VsConfig};
use tandem::lab::steady::{self, SteadyConfig};

#[test]
fn a_larger_lab_is_measured_and_its_heartbeats_fit_one_datagram() {
    let Some(_serial) = support::lab::serial_lab_test("lab_scaling") else {
        return;
    };
    let cfg = SteadyConfig {
        duration: Duration::from_secs(5),
        interval: Duration::from_millis(100),
        deadtime: Duration::from_secs(1),
        load_per_node: 0,
        nodes: 5,
        groups: 4,
        ..SteadyConfig::default()
    };
    let stop = AtomicBool::new(false);
    let mut out = Vec::new();
    let result = steady::run(&cfg, &stop, &mut out);
    let text = String::from_utf8_lossy(&out);
    let report = result.unwrap_or_else(|e| panic!("bench failed: {e}\n{text}"));
    assert_eq!(report.total_false_positives(), 0, "{:#?}", report.incidents);
    assert_eq!((report.nodes, report.groups), (5, 4));
    let workers = report
        .footprint
        .iter()
        .filter(|f| f.process == "worker")
        .count();
    assert_eq!(workers, 5, "{report:?}");
    let largest = report.largest_heartbeat_bytes.expect("the config loads");
    assert!(largest <= HEARTBEAT_BUDGET, "{largest}");
    assert_eq!(report.traffic.len(), 5, "{report:?}");
    for t in &report.traffic {
        // Ten heartbeats a second to 4 peers on 2 links, for about 5 s.
        assert!(
            t.datagrams_per_s > 40.0 && t.datagrams_per_s < 160.0,
            "{t:?}"
        );
        assert_eq!(t.fragments_created, 0, "{t:?}");
        // Header and tag (60) plus a body of at least the fixed part and 4 echoes.
        assert!(
            t.mean_payload_bytes > 160.0 && t.mean_payload_bytes <= largest as f64,
            "{t:?} (largest {largest})"
        );
    }
}

#[test]
fn keepalived_and_tandem_fail_over_side_by_side() {
    let Some(_serial) = support::lab::serial_lab_test("lab_scaling") else {
        return;
    };
    if !support::require("lab_scaling", keepalived::KEEPALIVED, "keepalived") {
        return;
    }
    let cfg = VsConfig {
        runs: 2,
        idle: Duration::from_secs(2),
        ..VsConfig::default()
    };
    let stop = AtomicBool::new(false);
    let mut out = Vec::new();
    let result = keepalived::run(&cfg, &stop, &mut out);
    let text = String::from_utf8_lossy(&out);
    let report = result.unwrap_or_else(|e| panic!("bench failed: {e}\n{text}"));
    for side in [&report.keepalived, &report.tandem] {
        assert_eq!(side.gaps_ms.len(), 2, "{side:?}\n{text}");
        // Generous for a loaded box: both detect in tens of ms at these profiles.
        assert!(
            side.gaps_ms.iter().all(|g| *g > 0.0 && *g < 5_000.0),
            "{side:?}\n{text}"
        );
        assert!(side.idle_rss_kib > 256, "{side:?}");
        assert!(side.idle_cpu_percent.is_finite(), "{side:?}");
    }
    assert!(report.median_ratio.is_some_and(|r| r > 0.0), "{report:?}");
    assert!(
        report.render().contains("median ratio"),
        "{}",
        report.render()
    );
}
