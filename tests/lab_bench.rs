//! `tandem-lab bench failover` in the netns lab, as behaviour (not speed): two power
//! losses at the default profile must each move the VIP to the survivor, and the client
//! probe must see replies from the survivor's MAC, with sane numbers. Needs root
//! (skipped without it, failed under CI), iproute2 and nftables.

mod support;

use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tandem::lab::bench::{self, BenchConfig, Fault};

#[test]
fn two_power_losses_move_the_vip_and_the_client_follows() {
    if !support::lab::lab_or_skip("lab_bench") {
        return;
    }
    let cfg = BenchConfig {
        runs: 2,
        interval: Duration::from_millis(100),
        deadtime: Duration::from_secs(1),
        fault: Fault::PowerLoss,
        ..BenchConfig::default()
    };
    let stop = AtomicBool::new(false);
    let mut out = Vec::new();
    let result = bench::run(&cfg, &stop, &mut out);
    let text = String::from_utf8_lossy(&out);
    let report = result.unwrap_or_else(|e| panic!("bench failed: {e}\n{text}"));
    assert_eq!(report.samples.len(), 2, "{text}");
    // The victim alternates: the survivor of run 1 owns the group in run 2.
    assert_eq!(
        report.samples[0].survivor, report.samples[1].victim,
        "{text}"
    );
    // Generous: deadtime 1 s; a loaded 2-core box may add seconds, not tens of them.
    let bound = 15_000.0;
    for s in &report.samples {
        assert_ne!(s.victim, s.survivor);
        assert_ne!(s.old_mac, s.new_mac);
        let vip = s
            .vip_on_survivor_ms
            .unwrap_or_else(|| panic!("no VIP on survivor: {s:?}"));
        let gap = s
            .client_gap_ms
            .unwrap_or_else(|| panic!("no client gap: {s:?}"));
        let first = s.fault_to_new_reply_ms.expect("first new reply");
        assert!(vip > 0.0 && vip < bound, "{s:?}");
        assert!(gap > 0.0 && gap < bound, "{s:?}");
        // The client reaches the survivor after the kill (no ordering against `vip`:
        // the two are stamped by different threads, which a loaded box delays).
        assert!(first > 0.0 && first < bound, "{s:?}");
        // A power loss is detected before the lease-based takeover completes.
        let b = &s.breakdown;
        let detected = b
            .detected_ms
            .unwrap_or_else(|| panic!("no node-down: {s:?}"));
        let owner = b
            .became_owner_ms
            .unwrap_or_else(|| panic!("no became-owner: {s:?}"));
        assert!(detected > 0.0 && detected <= owner, "{s:?}");
        assert!(b.vip_added_log_ms.is_some(), "{s:?}");
        assert_eq!(
            s.stray_replies_after, 0,
            "old owner answered after takeover: {s:?}"
        );
    }
    let gap = report.client_gap.expect("client gap stats");
    assert_eq!(gap.n, 2);
    assert!(gap.min <= gap.median && gap.median <= gap.max);
    let rendered = report.render();
    assert!(rendered.contains("(b) client gap"), "{rendered}");
}

/// `bench false-positives` / `footprint` as behaviour: a healthy cluster under some load
/// at the default profile does nothing it should not, the busy loops are gone afterwards,
/// and each daemon's memory and CPU are measured (from /proc, so non-zero).
#[test]
fn a_healthy_loaded_cluster_has_no_false_positives_and_its_footprint_is_measured() {
    if !support::lab::lab_or_skip("lab_bench") {
        return;
    }
    use tandem::lab::steady::{self, SteadyConfig};
    let cfg = SteadyConfig {
        duration: Duration::from_secs(5),
        interval: Duration::from_millis(100),
        deadtime: Duration::from_secs(1),
        load_per_node: 1,
        ..SteadyConfig::default()
    };
    let stop = AtomicBool::new(false);
    let mut out = Vec::new();
    let result = steady::run(&cfg, &stop, &mut out);
    let text = String::from_utf8_lossy(&out);
    let report = result.unwrap_or_else(|e| panic!("bench failed: {e}\n{text}"));
    assert_eq!(report.total_false_positives(), 0, "{:#?}", report.incidents);
    assert!(report.duration_s >= 5.0, "{report:?}");
    // The stall probe ran above the busy loops (as root it gets SCHED_FIFO), so its
    // verdicts about machine stalls mean something.
    assert!(report.machine.realtime, "{:?}", report.machine);
    let mut printed = Vec::new();
    report.print(&mut printed);
    let printed = String::from_utf8_lossy(&printed);
    assert!(printed.contains("machine: "), "{printed}");
    // Every node's worker and its lease guard.
    assert_eq!(report.footprint.len(), 6, "{report:?}");
    for process in ["worker", "guard"] {
        assert_eq!(
            report
                .footprint
                .iter()
                .filter(|f| f.process == process)
                .count(),
            3
        );
    }
    for f in &report.footprint {
        assert!(f.rss_max_kib > 256 && f.rss_max_kib < 256 * 1024, "{f:?}");
        assert!(f.cpu_percent.is_finite() && f.cpu_percent >= 0.0, "{f:?}");
    }
    // Five seconds of 10 heartbeats a second cost some CPU time on at least one node.
    assert!(
        report.footprint.iter().any(|f| f.cpu_percent > 0.0),
        "{report:?}"
    );
    assert_eq!(report.load_pids.len(), 3, "{report:?}");
    for pid in &report.load_pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "busy loop {pid} left behind"
        );
    }
}
