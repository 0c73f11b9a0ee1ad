//! Issue 13 point 4, as behaviour: the owner's service cable is pulled (its eth0, the
//! VIP's interface, loses carrier) while heartbeat link 1 stays up and the daemon runs
//! on. The group must move to the other node and the client must be served again
//! quickly: the daemon watches carrier, it does not wait for the next `vip` monitor.
//! Needs root (skipped without it, failed under CI), iproute2 and nftables.
#![cfg(feature = "lab")]

mod support;

use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tandem::lab::bench::{self, BenchConfig, Fault};

/// Generous against the target (100 ms at the default profile) for a loaded
/// 2-core box; today's monitor-driven handover takes ~8 s, far above it.
const BOUND_MS: f64 = 3_000.0;

#[test]
fn a_pulled_service_cable_moves_the_vip_within_seconds() {
    let Some(_serial) = support::lab::serial_lab_test("lab_link_loss") else {
        return;
    };
    let cfg = BenchConfig {
        runs: 2,
        interval: Duration::from_millis(100),
        deadtime: Duration::from_secs(1),
        fault: Fault::LinkLoss,
        run_timeout: Duration::from_secs(30),
        ..BenchConfig::default()
    };
    let stop = AtomicBool::new(false);
    let mut out = Vec::new();
    let result = bench::run(&cfg, &stop, &mut out);
    let text = String::from_utf8_lossy(&out);
    let report = result.unwrap_or_else(|e| panic!("bench failed: {e}\n{text}"));
    assert_eq!(report.samples.len(), 2, "{text}");
    // The victim alternates: the group can come back to a node whose cable was pulled
    // once it is plugged in again and its failure cleaned up.
    assert_eq!(
        report.samples[0].survivor, report.samples[1].victim,
        "{text}"
    );
    for s in &report.samples {
        let gap = s
            .client_gap_ms
            .unwrap_or_else(|| panic!("no client gap: {s:?}\n{text}"));
        assert!(
            gap > 0.0 && gap < BOUND_MS,
            "client gap {gap} ms: {s:?}\n{text}"
        );
        // Nobody died: the survivor never declares the old owner down.
        assert!(s.breakdown.detected_ms.is_none(), "{s:?}");
        assert_eq!(s.stray_replies_after, 0, "{s:?}");
    }
}
