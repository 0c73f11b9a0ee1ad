//! Fencing through fence-agents compatible programs: Debian's real `fence_dummy`
//! (package fence-agents, installed by .ci/run), stand-in agents for the answers a real
//! one rarely gives, and the lab's own `resources/fence_lab` against a network
//! namespace the test creates.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use support::agents::*;
use support::require;
use tandem::agents::fence;
use tandem::config::FenceAgentConfig;
use tandem::core::ids::NodeId;
use tandem::core::FenceResult;

const FENCE_DUMMY: &str = "/usr/sbin/fence_dummy";
const N2: NodeId = NodeId(2);
const N3: NodeId = NodeId(3);

fn agent(name: &str, path: &str, params: &[(&str, &str)], nodes: &[NodeId]) -> FenceAgentConfig {
    FenceAgentConfig {
        name: name.into(),
        agent: PathBuf::from(path),
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        params_file: None,
        nodes: nodes.to_vec(),
    }
}

fn fence_lab() -> String {
    format!("{}/resources/fence_lab", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn fence_dummy_powers_off_and_confirms() {
    if !require(
        "fence_dummy_powers_off_and_confirms",
        FENCE_DUMMY,
        "fence-agents",
    ) {
        return;
    }
    let dir = TempDir::new("fdummy");
    let status = dir.join("status");
    std::fs::write(&status, "on").expect("write status");
    let status_param = status.display().to_string();
    let agents = [
        // Cannot fence n2: skipped.
        agent("other", FENCE_DUMMY, &[("type", "fail")], &[N3]),
        // Fails (fence_dummy's `fail` type): the next agent is tried.
        agent(
            "broken",
            FENCE_DUMMY,
            &[("type", "fail"), ("power_timeout", "1")],
            &[N2, N3],
        ),
        agent("pdu", FENCE_DUMMY, &[("status_file", &status_param)], &[N2]),
    ];
    let result = fence::fence(&agents, N2, "n2", Duration::from_secs(60)).await;
    assert_eq!(result, FenceResult::Off);
    assert_eq!(
        std::fs::read_to_string(&status).unwrap_or_default().trim(),
        "off",
        "fence_dummy recorded the power-off"
    );

    // Only the failing agent: a failure that names it.
    match fence::fence(&agents[..2], N2, "n2", Duration::from_secs(60)).await {
        FenceResult::Failed(why) => assert!(why.contains("broken: off: exit"), "{why}"),
        FenceResult::Off => panic!("a failing agent fenced"),
    }
    // Nobody can fence n4.
    match fence::fence(&agents, NodeId(4), "n4", Duration::from_secs(60)).await {
        FenceResult::Failed(why) => assert!(why.contains("no fence agent"), "{why}"),
        FenceResult::Off => panic!("fenced a node no agent covers"),
    }
}

#[tokio::test]
async fn off_is_not_enough_without_a_status_that_says_off() {
    let dir = TempDir::new("fliar");
    let seen = dir.join("stdin");
    // Says "off" succeeded but the node stays on.
    let liar = dir.script(
        "fence_liar",
        &format!(
            "#!/bin/sh\ncat >> {}\ngrep -q '^action=status' {} && exit 0\nexit 0\n",
            seen.display(),
            seen.display()
        ),
    );
    let agents = [agent(
        "liar",
        &liar.display().to_string(),
        &[("ipaddr", "198.51.100.7"), ("plug", "vm-two")],
        &[N2],
    )];
    match fence::fence(&agents, N2, "n2", Duration::from_secs(20)).await {
        FenceResult::Failed(why) => assert!(why.contains("still on"), "{why}"),
        FenceResult::Off => panic!("believed an agent whose status says on"),
    }
    let stdin = std::fs::read_to_string(&seen).unwrap_or_default();
    assert!(stdin.starts_with("action=off\n"), "{stdin}");
    assert!(stdin.contains("\nipaddr=198.51.100.7\n"), "{stdin}");
    // An admin's plug wins over the node name.
    assert!(
        stdin.contains("\nplug=vm-two\n") && !stdin.contains("plug=n2"),
        "{stdin}"
    );
    assert!(stdin.contains("\nnodename=n2\n"), "{stdin}");
    assert!(stdin.contains("action=status\n"), "{stdin}");

    // A hung agent is killed at the timeout and the fence fails.
    let hung = dir.script("fence_hung", "#!/bin/sh\nsleep 1000\n");
    let agents = [agent("hung", &hung.display().to_string(), &[], &[N2])];
    match fence::fence(&agents, N2, "n2", Duration::from_millis(500)).await {
        FenceResult::Failed(why) => assert!(why.contains("timed out"), "{why}"),
        FenceResult::Off => panic!("a hung agent fenced"),
    }
}

#[tokio::test]
async fn fence_lab_powers_off_a_lab_node() {
    let ns = Netns::new();
    ns.veth("eth0", "eth1", "192.0.2.2/24");
    // A "service" running on the lab node.
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &ns.name, "sleep", "1000"])
        .spawn()
        .expect("start a process in the namespace");
    assert!(
        wait_until(Duration::from_secs(10), || !ns.pids().is_empty()),
        "the process never showed up in the namespace"
    );
    let agents = [agent("lab", &fence_lab(), &[("netns", &ns.name)], &[N2])];

    let status = |ns: &Netns| {
        std::process::Command::new(fence_lab())
            .arg("-o")
            .arg("status")
            .arg("-n")
            .arg(&ns.name)
            .output()
            .expect("run fence_lab")
            .status
            .code()
    };
    assert_eq!(status(&ns), Some(0), "the lab node is on before fencing");

    let result = fence::fence(&agents, N2, "n2", Duration::from_secs(30)).await;
    assert_eq!(result, FenceResult::Off);
    let _ = child.wait();
    assert!(ns.pids().is_empty(), "processes survived: {:?}", ns.pids());
    let up = ns.ip_output(&["-o", "link", "show", "up"]);
    assert!(
        !up.contains("eth0") && !up.contains("eth1"),
        "links still up: {up}"
    );
    assert_eq!(status(&ns), Some(2), "fence_lab status says off");

    // A namespace that does not exist is an error, never a success.
    let gone = [agent(
        "lab",
        &fence_lab(),
        &[("netns", "tdm-no-such-ns")],
        &[N2],
    )];
    assert!(matches!(
        fence::fence(&gone, N2, "n2", Duration::from_secs(30)).await,
        FenceResult::Failed(_)
    ));
}
