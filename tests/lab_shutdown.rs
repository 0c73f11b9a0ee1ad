//! A clean shutdown (SIGTERM, what `systemctl stop tandem` sends) stops the node's groups
//! and hands them over before the daemon exits: no VIP outlives its manager, and the
//! takeover does not wait for a lease to run out. Real daemons, real VIP, in the lab.

mod support;

use serde_json::Value;
use std::time::{Duration, Instant};
use tandem::lab::{wait_until, Lab, LabSpec, Ns};

const VIP: &str = "192.0.2.100";

/// Whether the VIP is on the node's eth0; a failing `ip` fails the test (a "no" that
/// only means "could not look" must not pass a negative check).
fn has_vip(lab: &Lab, node: usize) -> bool {
    let out = lab
        .exec(Ns::Node(node), &["ip", "-o", "addr", "show", "dev", "eth0"])
        .expect("run ip");
    assert!(out.status.success(), "ip addr in n{node} failed");
    String::from_utf8_lossy(&out.stdout).contains(&format!("{VIP}/"))
}

fn owner(lab: &Lab, node: usize) -> Option<String> {
    let out = lab.tandemctl(node, &["status", "--json"]);
    let s: Value = serde_json::from_slice(&out.stdout).ok()?;
    let g = s["groups"]
        .as_array()?
        .iter()
        .find(|g| g["name"] == "www")?;
    (g["state"] == "running").then(|| g["owner"].as_str().map(str::to_string))?
}

#[test]
fn sigterm_hands_the_vip_over_before_the_daemon_exits() {
    if !support::lab::lab_or_skip("sigterm_hands_the_vip_over_before_the_daemon_exits") {
        return;
    }
    let spec = LabSpec {
        nodes: 3,
        witnesses: vec![3],
        // A long deadtime makes the difference visible: a takeover that waited for the
        // lease would take 10 s, a handover takes well under that.
        deadtime: Duration::from_secs(10),
        extra_yaml: format!(
            "groups:\n  - name: www\n    prefer: n1\n    resources:\n      \
             - vip: {{ address: {VIP}/24, interface: eth0 }}\n"
        ),
        ..LabSpec::default()
    };
    let mut lab = Lab::build(spec).expect("lab (needs root, iproute2, nftables)");
    lab.start_all().expect("start");
    let formed = wait_until(Duration::from_secs(60), Duration::from_millis(200), || {
        (owner(&lab, 2).as_deref() == Some("n1") && has_vip(&lab, 1)).then_some(())
    });
    assert!(formed.is_some(), "n1 runs www:\n{}", lab.logs(1));
    assert!(!has_vip(&lab, 2));

    let began = Instant::now();
    lab.terminate(1).expect("n1 exits after SIGTERM");
    let exited_after = began.elapsed();
    assert!(
        !has_vip(&lab, 1),
        "n1 removed the VIP before it exited:\n{}",
        lab.logs(1)
    );
    assert!(
        lab.logs(1)
            .contains("every group is stopped and handed over"),
        "n1 waited for its groups:\n{}",
        lab.logs(1)
    );
    let moved = wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
        (owner(&lab, 2).as_deref() == Some("n2") && has_vip(&lab, 2)).then(|| began.elapsed())
    })
    .unwrap_or_else(|| panic!("n2 took www over:\n{}", lab.logs(2)));
    // Generous, but below the 10 s deadtime a lease expiry would need.
    assert!(
        moved < Duration::from_secs(8),
        "handover took {moved:?} (exit after {exited_after:?}): it waited for the lease"
    );
}
