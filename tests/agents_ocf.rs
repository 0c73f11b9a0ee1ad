//! OCF agents from Debian's `resource-agents` package (installed by .ci/run): Dummy
//! through its whole life cycle, IPaddr2 inside a network namespace the test creates,
//! Stateful as a promotable resource with tandem's crm_master/crm_attribute shims.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use support::agents::*;
use support::require;
use tandem::agents::process::Launch;
use tandem::agents::promotable::{
    self, Notification, NotifyOperation, NotifyType, RoleAction, RoleOp, RoleResult,
};
use tandem::agents::score::{self, Lifetime, PromotionScore};
use tandem::agents::{ocf, FencingToken};
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

const STATEFUL: &str = "/usr/lib/ocf/resource.d/heartbeat/Stateful";

/// The shims of this source tree, as the package installs them under
/// /usr/lib/tandem/ocf-shims.
fn shims() -> Launch {
    Launch {
        ocf_shims: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("resources/ocf-shims")),
        ..Launch::default()
    }
}

fn primary_token() -> FencingToken {
    FencingToken {
        node: "n1".into(),
        incarnation: 1_700_000_001,
        term: 12,
    }
}

fn role_op<'a>(r: &'a ResourceConfig, action: RoleAction<'a>, score_file: &'a Path) -> RoleOp<'a> {
    RoleOp {
        group: "db",
        resource: r,
        action,
        timeout: Duration::from_secs(20),
        interval: Duration::from_secs(10),
        clone_max: 2,
        notify: false,
        score_file,
    }
}

fn promotable(mut r: ResourceConfig) -> ResourceConfig {
    r.promotable = true;
    r
}

/// Debian's unchanged Stateful agent through a replica's and a primary's life: the
/// roles come from its own state file, the scores from what it told the shims.
#[tokio::test]
async fn stateful_is_started_promoted_demoted_and_stopped() {
    if !require_agent(STATEFUL) {
        return;
    }
    let dir = TempDir::new("stateful");
    let state = dir.join("stateful.state");
    let r = promotable(ocf_resource(
        "state",
        "Stateful",
        &[("state", &state.display().to_string())],
    ));
    let scores = dir.join("scores");
    let file = score::file_for(&scores, "db", "state");
    let launch = &shims();
    let token = primary_token();
    let state_is = |want: Option<&str>| {
        let got = std::fs::read_to_string(&state).ok();
        assert_eq!(got.as_deref().map(str::trim), want, "Stateful's state file");
    };
    let score_is = |want: PromotionScore| {
        assert_eq!(score::read(&file).ok(), Some(want), "the recorded score");
    };
    let run = |action| {
        let op = role_op(&r, action, &file);
        async move { promotable::run(&op, launch).await }
    };
    let monitor = RoleAction::Op(OpKind::Monitor, Some(&token));

    assert_eq!(run(monitor).await, RoleResult::NotRunning);
    assert_eq!(
        run(RoleAction::Op(OpKind::Start, Some(&token))).await,
        RoleResult::Ok
    );
    state_is(Some("slave"));
    score_is(value(5, Lifetime::Reboot));
    assert_eq!(run(monitor).await, RoleResult::Ok, "running unpromoted");

    assert_eq!(run(RoleAction::Promote(&token)).await, RoleResult::Ok);
    state_is(Some("master"));
    score_is(value(10, Lifetime::Reboot));
    assert_eq!(run(monitor).await, RoleResult::Promoted, "exit 8");

    assert_eq!(run(RoleAction::Demote(Some(&token))).await, RoleResult::Ok);
    state_is(Some("slave"));
    score_is(value(5, Lifetime::Reboot));
    assert_eq!(run(monitor).await, RoleResult::Ok);

    assert_eq!(
        run(RoleAction::Op(OpKind::Stop, Some(&token))).await,
        RoleResult::Ok
    );
    state_is(None);
    score_is(PromotionScore::Deleted);
    assert_eq!(run(monitor).await, RoleResult::NotRunning);
}

fn value(score: i64, lifetime: Lifetime) -> PromotionScore {
    PromotionScore::Value {
        score: score::Score::new(score),
        lifetime,
    }
}

/// A primary whose state went bad: Stateful's monitor cannot fail promoted, so a
/// recording agent under a private OCF root gives 9, and shows what every promotable
/// action and a notify see in their environment.
#[tokio::test]
async fn promote_and_notify_get_the_token_the_clone_and_the_lists() {
    let dir = TempDir::new("promotable-env");
    let agent_dir = dir.join("resource.d").join("test");
    std::fs::create_dir_all(&agent_dir).expect("agent dir");
    let out = dir.join("env");
    dir.script(
        "resource.d/test/Recorder",
        &format!(
            "#!/bin/sh\n[ \"$1\" = meta-data ] && exit 0\n\
             env | grep -E '^(TANDEM|OCF_RESKEY_CRM_meta|HA_SBIN_DIR)' | sort > \"{out}.$1\"\n\
             [ \"$1\" = monitor ] && exit 9\nexit 0\n",
            out = out.display()
        ),
    );
    let r = promotable(resource(
        "rec",
        ResourceKind::Ocf {
            provider: "test".into(),
            agent_type: "Recorder".into(),
            params: BTreeMap::new(),
        },
        None,
    ));
    let launch = Launch {
        ocf_root: Some(dir.0.clone()),
        ..shims()
    };
    let file = score::file_for(&dir.join("scores"), "db", "rec");
    let token = primary_token();
    let note = Notification {
        kind: NotifyType::Post,
        operation: NotifyOperation::Promote,
        start: vec![],
        stop: vec![],
        promote: vec!["n1".into()],
        demote: vec!["n2".into()],
        active: vec!["n1".into(), "n2".into()],
        promoted: vec!["n1".into()],
        unpromoted: vec!["n2".into()],
    };
    let mut op = role_op(&r, RoleAction::Promote(&token), &file);
    op.notify = true;
    assert_eq!(promotable::run(&op, &launch).await, RoleResult::Ok);
    op.action = RoleAction::Notify(&note, &token);
    assert_eq!(promotable::run(&op, &launch).await, RoleResult::Ok);
    op.action = RoleAction::Op(OpKind::Monitor, None);
    assert!(matches!(
        promotable::run(&op, &launch).await,
        RoleResult::FailedPromoted(why) if why.contains("failed promoted")
    ));

    let env = |action: &str| {
        std::fs::read_to_string(format!("{}.{action}", out.display())).unwrap_or_default()
    };
    let promote = env("promote");
    let shim_dir = promotable::shim_dir(&launch);
    for line in [
        "TANDEM_ACTION=promote".to_string(),
        "TANDEM_TERM=12".into(),
        "TANDEM_NODE=n1".into(),
        format!("TANDEM_SCORE_FILE={}", file.display()),
        format!("HA_SBIN_DIR={}", shim_dir.display()),
        "OCF_RESKEY_CRM_meta_promotable=true".into(),
        "OCF_RESKEY_CRM_meta_clone_max=2".into(),
        "OCF_RESKEY_CRM_meta_promoted_max=1".into(),
        "OCF_RESKEY_CRM_meta_master_max=1".into(),
        "OCF_RESKEY_CRM_meta_notify=true".into(),
        "OCF_RESKEY_CRM_meta_on_node=n1".into(),
    ] {
        assert!(promote.lines().any(|l| l == line), "{line} in:\n{promote}");
    }
    let notify = env("notify");
    for line in [
        "TANDEM_ACTION=notify",
        "TANDEM_TERM=12",
        "OCF_RESKEY_CRM_meta_notify_type=post",
        "OCF_RESKEY_CRM_meta_notify_operation=promote",
        "OCF_RESKEY_CRM_meta_notify_promote_uname=n1",
        "OCF_RESKEY_CRM_meta_notify_demote_uname=n2",
        "OCF_RESKEY_CRM_meta_notify_active_uname=n1 n2",
        "OCF_RESKEY_CRM_meta_notify_promoted_uname=n1",
        "OCF_RESKEY_CRM_meta_notify_master_uname=n1",
        "OCF_RESKEY_CRM_meta_notify_unpromoted_uname=n2",
        "OCF_RESKEY_CRM_meta_notify_slave_uname=n2",
        "OCF_RESKEY_CRM_meta_notify_start_uname=",
    ] {
        assert!(notify.lines().any(|l| l == line), "{line} in:\n{notify}");
    }
    // A monitor without a decision claims no term.
    assert!(
        !env("monitor").contains("TANDEM_TERM="),
        "{}",
        env("monitor")
    );
}

#[tokio::test]
async fn an_ordinary_resource_is_not_promoted() {
    let dir = TempDir::new("not-promotable");
    let r = ocf_resource("d", "Dummy", &[]);
    let file = dir.join("score");
    let token = primary_token();
    let op = role_op(&r, RoleAction::Promote(&token), &file);
    assert!(matches!(
        promotable::run(&op, &shims()).await,
        RoleResult::Failed(why) if why.contains("not a promotable")
    ));
}

/// The shims as agents call them, through `sh` and nothing else installed.
#[test]
fn the_shims_record_query_and_delete_scores() {
    let dir = TempDir::new("shims");
    let file = dir.join("db:state.score");
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("resources/ocf-shims");
    let shim = |prog: &str, args: &[&str]| {
        std::process::Command::new(bin.join(prog))
            .args(args)
            .env("TANDEM_SCORE_FILE", &file)
            .env("OCF_RESOURCE_INSTANCE", "state")
            .env("TANDEM_NODE", "n1")
            .output()
            .expect("run shim")
    };
    let code = |prog: &str, args: &[&str]| shim(prog, args).status.code();
    let read = || score::read(&file).ok();

    assert_eq!(code("crm_attribute", &["-p", "-G", "-q"]), Some(105));
    assert_eq!(code("crm_attribute", &["-p", "-v", "5"]), Some(0));
    assert_eq!(read(), Some(value(5, Lifetime::Reboot)));
    let q = shim("crm_attribute", &["-p", "-G", "--quiet"]);
    assert_eq!(String::from_utf8_lossy(&q.stdout).trim(), "5");
    // crm_master, as ocf_promotion_score calls it when Pacemaker is installed.
    assert_eq!(
        code("crm_master", &["-l", "reboot", "-v", "-INFINITY"]),
        Some(0)
    );
    assert_eq!(read(), Some(value(-1_000_000, Lifetime::Reboot)));
    assert_eq!(code("crm_master", &["-N", "n1", "-v100"]), Some(0));
    assert_eq!(read(), Some(value(100, Lifetime::Forever)));
    assert_eq!(code("crm_attribute", &["--promotion", "-D"]), Some(0));
    assert_eq!(read(), Some(PromotionScore::Deleted));
    assert_eq!(code("crm_attribute", &["-p", "-G", "-q"]), Some(105));

    // What is not a score of this resource on this node is refused, nothing recorded.
    for args in [
        &["-p", "-v", "high"][..],
        &["-p", "-v", "5", "-N", "n2"],
        &["-p", "-v"],
        &["-n", "colour", "-v", "red"],
        &["--promotion=other", "-v", "1"],
    ] {
        let out = shim("crm_attribute", args);
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("tandem shim"),
            "{args:?}"
        );
    }
    assert_eq!(read(), Some(PromotionScore::Deleted));
}
