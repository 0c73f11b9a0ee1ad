//! Issue 16 point 2, as behaviour: an owner that kept its group through a partition
//! announces the VIP again when the partition heals, so a client whose neighbour entry
//! for the VIP points at a wrong MAC is corrected at once instead of after its cache
//! times out (15–45 s in REACHABLE, then ~8 s of probing).
//! The same run checks issue 16 point 6 end to end: the group's `exec` resource sees
//! the owner's fencing token (node, term, incarnation) that `status` shows.
//! Needs root (skipped without it, failed under CI), iproute2 and nftables.
#![cfg(feature = "lab")]

mod support;

use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};
use support::agents::TempDir;
use support::lab::{eventually, group, node_state, runs_on, serial_lab_test};
use tandem::lab::observe::mac_string;
use tandem::lab::topology::{eth0_mac, VIP};
use tandem::lab::{wait_until, Lab, LabSpec, Ns};

/// A MAC no lab interface has (locally administered).
const WRONG_MAC: &str = "02:00:00:00:00:99";
/// How long the poisoned entry must survive while nothing heals: far longer than the
/// daemon needs to announce after a heal, so an announcement for another reason (a
/// refresh, the partition itself) would show up here instead.
const POISON_HOLDS: Duration = Duration::from_secs(3);
/// Generous for a loaded 2-core box; the client's own cache would take well over
/// `BASE_REACHABLE` to notice.
const FIXED_WITHIN: Duration = Duration::from_secs(8);
/// The client's base_reachable_time: a REACHABLE entry stays 0.5–1.5 × this before the
/// kernel even starts doubting it.
const BASE_REACHABLE: Duration = Duration::from_secs(60);

fn client(lab: &Lab, cmd: &[&str]) -> String {
    let out = lab.exec(Ns::Client, cmd).expect("run in the client");
    assert!(
        out.status.success(),
        "{cmd:?} in the client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The client's neighbour entry for the VIP: `(lladdr, state)`, lower case.
fn vip_entry(lab: &Lab) -> Option<(String, String)> {
    let vip = VIP.to_string();
    let text = client(lab, &["ip", "neigh", "show", &vip, "dev", "eth0"]);
    let words: Vec<&str> = text.split_whitespace().collect();
    let mac = words
        .iter()
        .position(|w| *w == "lladdr")
        .and_then(|i| words.get(i + 1))?;
    let state = words.last()?;
    Some((mac.to_lowercase(), state.to_lowercase()))
}

/// `www`: the VIP, and an `exec` resource whose start writes its fencing token to
/// `token`.
fn groups_yaml(token: &Path) -> String {
    format!(
        "groups:\n  - name: www\n    prefer: n1\n    failback: false\n    resources:\n      \
         - vip: {{ name: vip, address: {VIP}/24, interface: eth0 }}\n      \
         - exec: {{ name: token, start: 'echo \"$TANDEM_NODE $TANDEM_TERM \
         $TANDEM_INCARNATION\" > {}', stop: 'true' }}\n",
        token.display()
    )
}

/// What the owner's token should be, from a status: `n1 TERM INCARNATION`.
fn expected_token(s: &Value) -> String {
    let term = group(s, "www").map(|g| g["term"].clone());
    let n1 = s["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["name"] == "n1"))
        .map(|n| n["incarnation"].clone());
    format!("n1 {} {}", term.unwrap_or_default(), n1.unwrap_or_default())
}

#[test]
fn a_heal_corrects_a_client_that_has_the_vip_at_a_wrong_mac() {
    let Some(_serial) = serial_lab_test("lab_reannounce") else {
        return;
    };
    // n3 is a witness: with it, n1 keeps quorum (and so the group) while n2 is cut off.
    let dir = TempDir::new("reannounce");
    let token = dir.join("token");
    let spec = LabSpec {
        nodes: 3,
        witnesses: vec![3],
        extra_yaml: groups_yaml(&token),
        ..LabSpec::default()
    };
    let mut lab = Lab::build(spec).expect("lab (needs root, iproute2, nftables)");
    // Written through /proc in the client's namespace: no procps needed.
    let base = format!(
        "echo {} > /proc/sys/net/ipv4/neigh/eth0/base_reachable_time_ms",
        BASE_REACHABLE.as_millis()
    );
    client(&lab, &["sh", "-c", &base]);
    lab.start_all().expect("start");
    let limit = Duration::from_secs(60);
    let formed = eventually(&lab, 1, "n1 runs www", limit, |s| {
        runs_on(s, "www").as_deref() == Some("n1")
    });
    let written = std::fs::read_to_string(&token).unwrap_or_default();
    assert_eq!(written.trim(), expected_token(&formed), "the start's token");
    let owner_mac = mac_string(&eth0_mac(&lab, Ns::Node(1)).expect("n1's MAC"));

    // n2 is cut off from n1 and n3 until n1 declares it down; n1 keeps www.
    lab.partition(&[&[1, 3], &[2]]).expect("partition");
    eventually(&lab, 1, "n1 sees n2 offline", limit, |s| {
        node_state(s, "n2").as_deref() == Some("offline")
    });
    let status = eventually(&lab, 1, "n1 still runs www", limit, |s| {
        runs_on(s, "www").as_deref() == Some("n1")
    });
    assert_eq!(runs_on(&status, "www").as_deref(), Some("n1"));

    // The client believes the VIP is elsewhere (as after a failover it missed the end
    // of), and believes it firmly: REACHABLE, not to be doubted for a long while.
    let vip = VIP.to_string();
    client(
        &lab,
        &[
            "ip",
            "neigh",
            "replace",
            &vip,
            "lladdr",
            WRONG_MAC,
            "dev",
            "eth0",
            "nud",
            "reachable",
        ],
    );
    std::thread::sleep(POISON_HOLDS);
    let poisoned = vip_entry(&lab);
    assert_eq!(
        poisoned.as_ref().map(|(mac, _)| mac.as_str()),
        Some(WRONG_MAC),
        "nothing but a heal may correct the entry: {poisoned:?}"
    );

    let healed = Instant::now();
    lab.heal_all().expect("heal");
    let fixed = wait_until(FIXED_WITHIN, Duration::from_millis(100), || {
        vip_entry(&lab)
            .filter(|(mac, _)| *mac == owner_mac)
            .map(|_| healed.elapsed())
    });
    let took = fixed.unwrap_or_else(|| {
        panic!(
            "the client still has the VIP at {:?} {FIXED_WITHIN:?} after the heal (n1 is \
             {owner_mac}):\n==== n1 log ====\n{}",
            vip_entry(&lab),
            lab.logs(1)
        )
    });
    eprintln!("client corrected {took:?} after the heal");
    // And the client is served again.
    client(&lab, &["ping", "-c", "1", "-n", "-W", "2", &vip]);
}
