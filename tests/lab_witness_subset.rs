//! Issue 14, part 2: a witness reachable on link 0 only (`addresses: [IP, null]`), two
//! owners with two links between them. The cluster forms with all three votes, every
//! view shows link 1 of the witness as absent (not down), cutting link 1 moves nothing,
//! and a power loss of the owner hands the group to the other owner with the witness's
//! vote. Needs root (skipped without it, failed under CI), iproute2 and nftables.
#![cfg(feature = "lab")]

mod support;

use serde_json::Value;
use std::time::Duration;
use support::lab::{eventually, group, runs_on, serial_lab_test};
use tandem::lab::{Lab, LabSpec};

const VIP: &str = "192.0.2.100";
/// Generous on a loaded 2-core box: the deadtime is 1 s.
const FORM: Duration = Duration::from_secs(60);
const TAKEOVER: Duration = Duration::from_secs(30);

/// The state `observer` reports for `peer`'s link `link`.
fn link_state(s: &Value, peer: &str, link: usize) -> Option<String> {
    let node = s["nodes"].as_array()?.iter().find(|n| n["name"] == peer)?;
    node["links"].as_array()?.get(link)?["state"]
        .as_str()
        .map(str::to_string)
}

fn term(s: &Value) -> u64 {
    group(s, "www")
        .and_then(|g| g["term"].as_u64())
        .unwrap_or(0)
}

fn votes(s: &Value) -> u64 {
    s["votes_present"].as_u64().unwrap_or(0)
}

#[test]
fn a_witness_on_link_0_only_votes_and_its_missing_link_is_absent_not_down() {
    let Some(_serial) = serial_lab_test("lab_witness_subset") else {
        return;
    };
    let spec = LabSpec {
        nodes: 3,
        witnesses: vec![3],
        links: 2,
        absent_links: vec![(3, 1)],
        extra_yaml: format!(
            "groups:\n  - name: www\n    prefer: n1\n    failback: false\n    resources:\n      \
             - vip: {{ address: {VIP}/24, interface: eth0 }}\n"
        ),
        ..LabSpec::default()
    };
    let mut lab = Lab::build(spec).expect("lab (needs root, iproute2, nftables)");
    lab.start_all().expect("start");

    // Formed: every node counts three votes, n1 runs www.
    for observer in 1..=3 {
        eventually(&lab, observer, "3 votes and www on n1", FORM, |s| {
            votes(s) == 3 && runs_on(s, "www").as_deref() == Some("n1")
        });
    }
    // The witness's link 1 is absent in every view; the owners' link 1 is up.
    let w = eventually(&lab, 3, "link 0 up to n1 and n2", FORM, |s| {
        link_state(s, "n1", 0).as_deref() == Some("up")
            && link_state(s, "n2", 0).as_deref() == Some("up")
    });
    assert_eq!(link_state(&w, "n3", 1).as_deref(), Some("absent"), "{w}");
    assert_eq!(link_state(&w, "n3", 0).as_deref(), Some("local"), "{w}");
    assert_eq!(link_state(&w, "n1", 1).as_deref(), Some("absent"), "{w}");
    assert_eq!(link_state(&w, "n2", 1).as_deref(), Some("absent"), "{w}");
    let o = eventually(&lab, 1, "link 1 up to n2", FORM, |s| {
        link_state(s, "n2", 1).as_deref() == Some("up")
    });
    assert_eq!(link_state(&o, "n3", 1).as_deref(), Some("absent"), "{o}");
    assert_eq!(link_state(&o, "n3", 0).as_deref(), Some("up"), "{o}");
    let term_before = term(&o);
    assert!(term_before > 0, "{o}");

    // Cutting link 1 only: the owners still hear each other on link 0 and the witness
    // never depended on link 1. Nothing moves; n2 sees n1's link 1 go down.
    lab.cut_link(1, 1).expect("cut n1 link 1");
    lab.cut_link(2, 1).expect("cut n2 link 1");
    eventually(&lab, 2, "n1's link 1 down", TAKEOVER, |s| {
        link_state(s, "n1", 1).as_deref() == Some("down")
    });
    // Several deadtimes with link 1 cut: still one owner, the same term, 3 votes.
    std::thread::sleep(Duration::from_secs(5));
    for observer in 1..=3 {
        let s = eventually(&lab, observer, "www still on n1", FORM, |s| {
            runs_on(s, "www").is_some()
        });
        assert_eq!(
            runs_on(&s, "www").as_deref(),
            Some("n1"),
            "n{observer}: {s}"
        );
        assert_eq!(term(&s), term_before, "n{observer}: the term moved: {s}");
        assert_eq!(votes(&s), 3, "n{observer}: {s}");
        assert_eq!(
            link_state(&s, "n3", 1).as_deref(),
            Some("absent"),
            "n{observer}: {s}"
        );
    }
    lab.heal_all().expect("heal");

    // Power loss of the owner: n2 takes www over with the witness's vote (2 of 3).
    lab.power_off(1).expect("power off n1");
    let s = eventually(&lab, 2, "www on n2", TAKEOVER, |s| {
        runs_on(s, "www").as_deref() == Some("n2")
    });
    assert_eq!(votes(&s), 2, "{s}");
    assert!(term(&s) > term_before, "{s}");
    eventually(&lab, 3, "the witness sees www on n2", TAKEOVER, |s| {
        runs_on(s, "www").as_deref() == Some("n2")
    });
}
