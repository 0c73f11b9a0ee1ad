//! OCF agents from Debian's `resource-agents` package (installed by .ci/run): Dummy
//! through its whole life cycle, IPaddr2 inside a network namespace the test creates.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;
use support::agents::*;
use support::require;
use tandem::agents::ocf;
use tandem::agents::process::Launch;
use tandem::config::{ResourceConfig, ResourceKind};
use tandem::core::{OpKind, OpResult};

const DUMMY: &str = "/usr/lib/ocf/resource.d/heartbeat/Dummy";
const IPADDR2: &str = "/usr/lib/ocf/resource.d/heartbeat/IPaddr2";

fn require_agent(path: &str) -> bool {
    require("agents_ocf", path, "resource-agents")
}

fn ocf_resource(name: &str, agent_type: &str, params: &[(&str, &str)]) -> ResourceConfig {
    let params: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    resource(
        name,
        ResourceKind::Ocf {
            provider: "heartbeat".into(),
            agent_type: agent_type.into(),
            params,
        },
        None,
    )
}

#[tokio::test]
async fn dummy_start_monitor_stop() {
    if !require_agent(DUMMY) {
        return;
    }
    let dir = TempDir::new("dummy");
    let state = dir.join("dummy.state");
    let r = ocf_resource(
        "dummy1",
        "Dummy",
        &[("state", &state.display().to_string())],
    );
    let launch = Launch::default();
    let t = Duration::from_secs(20);
    for (kind, expected) in LIFE_CYCLE {
        let got = ocf::run_with(&ctx(&r, kind, t), &launch).await;
        assert_eq!(got, expected, "{kind:?}");
        if kind == OpKind::Start {
            assert!(
                state.exists(),
                "Dummy keeps its state file where OCF_RESKEY_state says"
            );
        }
    }
}

#[tokio::test]
async fn meta_data_gives_default_timeouts_and_validate_all_runs() {
    if !require_agent(DUMMY) {
        return;
    }
    let dir = TempDir::new("meta");
    let launch = Launch::default();
    let meta = ocf::meta_data(&launch, "heartbeat", "Dummy")
        .await
        .expect("Dummy meta-data");
    assert!(meta.supports("validate-all"));
    assert_eq!(meta.timeout("start"), Some(Duration::from_secs(20)));
    assert_eq!(meta.timeout("meta-data"), Some(Duration::from_secs(5)));

    let r = ocf_resource(
        "d",
        "Dummy",
        &[("state", &dir.join("s").display().to_string())],
    );
    let t = ocf::op_timeout(&r, OpKind::Monitor, &launch, Duration::from_secs(99)).await;
    assert_eq!(
        t,
        Duration::from_secs(20),
        "the monitor timeout comes from meta-data"
    );
    let mut own = r.clone();
    own.timeout = Some(Duration::from_secs(3));
    let t = ocf::op_timeout(&own, OpKind::Monitor, &launch, Duration::from_secs(99)).await;
    assert_eq!(t, Duration::from_secs(3), "the resource's own timeout wins");

    assert_eq!(ocf::validate(&r).await, Ok(()));
    // Dummy's validate-all refuses a state file in a directory it cannot write.
    let bad = ocf_resource("d", "Dummy", &[("state", "/nonexistent/dir/state")]);
    match ocf::validate(&bad).await {
        Err(why) => assert!(why.contains("invalid argument"), "{why}"),
        Ok(()) => panic!("validate-all accepted an unwritable state file"),
    }
}

#[tokio::test]
async fn a_missing_agent_is_a_clear_failure() {
    let r = ocf_resource("x", "NoSuchAgentHere", &[]);
    let launch = Launch::default();
    match ocf::run_with(&ctx(&r, OpKind::Start, Duration::from_secs(5)), &launch).await {
        OpResult::Failed(why) => assert!(why.contains("NoSuchAgentHere"), "{why}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(!ocf::installed(&r, &launch));
    assert!(ocf::validate(&r).await.is_err());
}

/// IPaddr2 adds the address in the namespace it runs in, so the agent runs under
/// `ip netns exec NS` through `Launch::wrapper` (the same prefix would run any agent
/// elsewhere); the namespace has a veth pair because this machine has no dummy links.
#[tokio::test]
async fn ipaddr2_in_a_network_namespace() {
    if !require_agent(IPADDR2) {
        return;
    }
    let ns = Netns::new();
    ns.veth("v0", "v1", "192.0.2.1/24");
    let launch = Launch {
        wrapper: ns.wrapper(),
        ..Launch::default()
    };
    let r = ocf_resource(
        "vip1",
        "IPaddr2",
        &[("ip", "192.0.2.10"), ("cidr_netmask", "24"), ("nic", "v0")],
    );
    let t = Duration::from_secs(30);
    let has_vip = || {
        ns.ip_output(&["-o", "addr", "show", "dev", "v0"])
            .contains("192.0.2.10/24")
    };

    assert_eq!(
        ocf::run_with(&ctx(&r, OpKind::Monitor, t), &launch).await,
        OpResult::NotRunning
    );
    assert_eq!(
        ocf::run_with(&ctx(&r, OpKind::Start, t), &launch).await,
        OpResult::Ok
    );
    assert!(has_vip(), "the address is on v0 inside the namespace");
    assert_eq!(
        ocf::run_with(&ctx(&r, OpKind::Monitor, t), &launch).await,
        OpResult::Ok
    );
    assert_eq!(
        ocf::run_with(&ctx(&r, OpKind::Stop, t), &launch).await,
        OpResult::Ok
    );
    assert!(!has_vip(), "the address is gone after stop");
    assert_eq!(
        ocf::run_with(&ctx(&r, OpKind::Monitor, t), &launch).await,
        OpResult::NotRunning
    );

    // Bad parameters are the agent's "not configured" (6), named in the reason.
    let bad = ocf_resource("vip2", "IPaddr2", &[("ip", "300.1.1.1"), ("nic", "v0")]);
    match ocf::run_with(&ctx(&bad, OpKind::Start, t), &launch).await {
        OpResult::Failed(why) => assert!(why.contains("not configured"), "{why}"),
        other => panic!("expected a failure, got {other:?}"),
    }
}

/// `tandemctl config check --agents` runs validate-all of the installed OCF agents.
#[test]
fn config_check_runs_validate_all_on_request() {
    if !require_agent(DUMMY) {
        return;
    }
    let dir = TempDir::new("cfgcheck");
    let key = dir.join("authkey");
    let keygen = std::process::Command::new(env!("CARGO_BIN_EXE_tandemctl"))
        .args(["keygen", &key.display().to_string()])
        .output()
        .expect("run tandemctl keygen");
    assert!(keygen.status.success());
    let write = |state: &str| {
        let text = format!(
            "{}  - name: db\n    resources:\n      - ocf: {{ agent: heartbeat:Dummy, name: d1, params: {{ state: {state} }} }}\n      - ocf: {{ agent: heartbeat:NotInstalledHere, name: n1 }}\n",
            include_str!("../etc/tandem.yaml").replace("/etc/tandem/authkey", &key.display().to_string())
        );
        let cfg = dir.join("tandem.yaml");
        std::fs::write(&cfg, text).expect("write config");
        cfg
    };
    let check = |cfg: &std::path::Path, agents: bool| {
        let mut args = vec!["config", "check"];
        if agents {
            args.push("--agents");
        }
        let cfg = cfg.display().to_string();
        args.push(&cfg);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tandemctl"))
            .args(&args)
            .output()
            .expect("run tandemctl");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let good = write(&dir.join("d1.state").display().to_string());
    let (code, out) = check(&good, true);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("agent check db/d1: ok"), "{out}");
    assert!(out.contains("agent check db/n1: skipped"), "{out}");

    let bad = write("/nonexistent/dir/d1.state");
    let (code, out) = check(&bad, true);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("agent check db/d1: FAILED"), "{out}");
    // Without the flag no agent runs.
    let (code, out) = check(&bad, false);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("agent check"), "{out}");
}

#[tokio::test]
async fn agents_see_the_interval_and_timeout_pacemaker_would_pass() {
    // A probe and a recurring monitor differ only in OCF_RESKEY_CRM_meta_interval
    // (`ocf_is_probe` in ocf-shellfuncs): start and stop get 0, a monitor the group's
    // monitor_interval, every action its timeout, both in milliseconds.
    let dir = TempDir::new("ocf-meta");
    let agent_dir = dir.join("resource.d").join("heartbeat");
    std::fs::create_dir_all(&agent_dir).unwrap();
    let log = dir.join("calls.log");
    let agent = agent_dir.join("Recorder");
    support::script::write_executable(
        &agent,
        "#!/bin/sh\n[ \"$1\" = meta-data ] && exit 0\n\
         echo \"$1 interval=$OCF_RESKEY_CRM_meta_interval timeout=$OCF_RESKEY_CRM_meta_timeout\" \
         >> \"$OCF_RESKEY_log\"\nexit 0\n",
    );
    let r = ocf_resource("rec", "Recorder", &[("log", &log.display().to_string())]);
    let launch = Launch {
        ocf_root: Some(dir.0.clone()),
        ..Launch::default()
    };
    let t = Duration::from_secs(20);
    for kind in [OpKind::Start, OpKind::Monitor, OpKind::Stop] {
        assert_eq!(
            ocf::run_with(&ctx(&r, kind, t), &launch).await,
            OpResult::Ok
        );
    }
    let calls = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        calls,
        "start interval=0 timeout=20000\n\
         monitor interval=10000 timeout=20000\n\
         stop interval=0 timeout=20000\n"
    );
}
