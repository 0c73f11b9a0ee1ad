//! `tandemctl report` gathers the other nodes' evidence through the cluster, against
//! three real daemons in the netns lab: every node's files arrive under `peers/NODE/`
//! (secrets redacted there too), a node whose daemon is dead is named with the reason,
//! a client holding another cluster's key gets nothing, and `--this-node` asks nobody.
//! Needs root, iproute2 and nftables.

use serde_json::Value;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;
use std::time::Duration;
use tandem::config::redact::REDACTED;
use tandem::control::report::gap_note;
use tandem::control::report_channel::{ChannelError, Refusal};
use tandem::lab::{node_address, Lab, LabSpec, Ns, PORT};

mod support;

use support::lab::{eventually, fencing_with_secret, runs_on, IDLE_WWW};

const LONG: Duration = Duration::from_secs(40);
const SECRET: &str = "Planted-Peer-Secret-77f0";

fn extra_yaml() -> String {
    format!("{IDLE_WWW}{}", fencing_with_secret(SECRET, "[n1, n2, n3]"))
}

/// `tandemctl report` run inside node 1's namespace (the peers' heartbeat addresses are
/// reachable only there), with `args` after `report`.
fn report(lab: &Lab, args: &[&str]) -> Output {
    let tandemctl = lab.spec().tandemctl.display().to_string();
    let socket = lab.socket_path(1).display().to_string();
    let mut cmd = vec![tandemctl.as_str(), "--socket", &socket, "report"];
    cmd.extend_from_slice(args);
    let out = lab
        .exec_timeout(Ns::Node(1), &cmd, Duration::from_secs(200))
        .expect("tandemctl report");
    assert!(
        out.status.success(),
        "report failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every member of a report archive by its name below the archive's top directory,
/// which must be node 1's.
fn unpack(path: &Path) -> Vec<(String, String)> {
    support::archive_members(path)
        .into_iter()
        .map(|(name, text)| {
            assert!(name.starts_with("tandem-report-n1-"), "{name}");
            let inner = name
                .split_once('/')
                .map_or(name.clone(), |(_, r)| r.to_string());
            (inner, text)
        })
        .collect()
}

fn member<'a>(members: &'a [(String, String)], name: &str) -> Option<&'a str> {
    members
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, t)| t.as_str())
}

fn names(members: &[(String, String)]) -> Vec<&str> {
    members.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn a_report_gathers_every_node_it_can_reach_through_the_cluster() {
    let Some(_serial) = support::lab::serial_lab_test(
        "a_report_gathers_every_node_it_can_reach_through_the_cluster",
    ) else {
        return;
    };
    let scratch = support::agents::TempDir::new("peers");
    let spec = LabSpec {
        nodes: 3,
        extra_yaml: extra_yaml(),
        ..LabSpec::default()
    };
    let mut lab = Lab::build(spec).expect("lab (needs root, iproute2 and nftables)");
    for n in 1..=3 {
        // An inline secret needs a config only root can read.
        std::fs::set_permissions(lab.config_path(n), PermissionsExt::from_mode(0o600))
            .expect("chmod config");
    }
    lab.start_all().expect("start");
    eventually(&lab, 1, "www running", LONG, |s| {
        runs_on(s, "www").is_some()
    });

    // Every node answers: its own files under peers/NODE/, redacted like a local report.
    let all = scratch.join("all.tar.gz");
    let out = report(
        &lab,
        &["--since", "1h", "--output", all.to_str().expect("path")],
    );
    let members = unpack(&all);
    for peer in ["n2", "n3"] {
        let status = member(&members, &format!("peers/{peer}/status.json"))
            .unwrap_or_else(|| panic!("{peer}'s status missing from {:?}", names(&members)));
        let status: Value = serde_json::from_str(status).expect("status JSON");
        assert_eq!(status["node"], peer, "the archive under {peer} is {peer}'s");
        let config = member(&members, &format!("peers/{peer}/config.yaml")).expect("config");
        assert!(
            config.contains(&format!("password: {REDACTED}")),
            "{config}"
        );
        for file in ["README.txt", "versions.txt", "events.jsonl", "status.txt"] {
            let name = format!("peers/{peer}/{file}");
            assert!(member(&members, &name).is_some(), "{name} missing");
        }
    }
    assert!(
        member(&members, "status.json").is_some(),
        "this node's own part"
    );
    assert!(
        !members.iter().any(|(n, _)| n.ends_with("-unreachable.txt")),
        "{:?}\n{}",
        names(&members),
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, text) in &members {
        assert!(!text.contains(SECRET), "the planted secret is in {name}");
    }

    // A dead daemon: that node is named with the reason, the others still come.
    lab.kill(3).expect("kill n3's tandemd");
    let partial = scratch.join("partial.tar.gz");
    let out = report(&lab, &["--output", partial.to_str().expect("path")]);
    let members = unpack(&partial);
    let why = member(&members, "peers/n3-unreachable.txt")
        .unwrap_or_else(|| panic!("no note for n3 in {:?}", names(&members)));
    // Both of n3's addresses were tried, and the note and stderr say so.
    let n3: Vec<String> = (0..2)
        .map(|link| SocketAddr::new(node_address(false, 3, link), PORT).to_string())
        .collect();
    assert!(n3.iter().all(|a| why.contains(a.as_str())), "{why}");
    assert!(member(&members, "peers/n2/status.json").is_some());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .lines()
            .any(|l| l.contains(" n3") && n3.iter().all(|a| l.contains(a.as_str()))),
        "stderr names the node: {stderr}"
    );

    // Another cluster's key opens nothing: a copy of n1's config with a new authkey.
    let other_key = scratch.join("other.key");
    tandem::config::write_key(&other_key, &tandem::config::generate_key(), false).expect("key");
    let text = std::fs::read_to_string(lab.config_path(1)).expect("config");
    let forged: String = text
        .lines()
        .map(|l| match l.split_once("authkey:") {
            Some((indent, _)) => format!("{indent}authkey: {}\n", other_key.display()),
            None => format!("{l}\n"),
        })
        .collect();
    let forged_path = scratch.join("forged.yaml");
    std::fs::write(&forged_path, forged).expect("forged config");
    std::fs::set_permissions(&forged_path, PermissionsExt::from_mode(0o600)).expect("chmod");
    let refused = scratch.join("refused.tar.gz");
    let args = [
        "--config",
        forged_path.to_str().expect("path"),
        "--output",
        refused.to_str().expect("path"),
    ];
    report(&lab, &args);
    let members = unpack(&refused);
    let why = member(&members, "peers/n2-unreachable.txt")
        .unwrap_or_else(|| panic!("no note for n2 in {:?}", names(&members)));
    let not_sealed = ChannelError::Refused(Refusal::NotSealed);
    assert_eq!(why, gap_note("n2", &not_sealed));
    assert!(!members.iter().any(|(n, _)| n.starts_with("peers/n2/")));

    // --this-node asks nobody.
    let alone = scratch.join("alone.tar.gz");
    report(
        &lab,
        &["--this-node", "--output", alone.to_str().expect("path")],
    );
    let members = unpack(&alone);
    assert!(
        !members.iter().any(|(n, _)| n.starts_with("peers")),
        "{:?}",
        names(&members)
    );
    lab.teardown();
}
