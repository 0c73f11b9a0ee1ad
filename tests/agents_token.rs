//! The fencing token in every resource operation's environment: exec, lsb and OCF
//! agents see the group, the action, this node, the term of the core's decision and
//! this node's incarnation (docs/agents.md, "Fencing token").

mod support;

use std::path::Path;
use std::time::Duration;
use support::agents::*;
use tandem::agents::process::Launch;
use tandem::agents::{lsb, ocf, run_op, FencingToken, OpContext};
use tandem::config::{ResourceConfig, ResourceKind};
use tandem::core::{OpKind, OpResult};

/// What the scripts below write: one line per call.
const LINE: &str =
    "$TANDEM_GROUP|$TANDEM_RESOURCE|$TANDEM_ACTION|$TANDEM_NODE|$TANDEM_TERM|$TANDEM_INCARNATION";

fn token(term: u64) -> FencingToken {
    FencingToken {
        node: "n2".into(),
        incarnation: 1_700_000_123,
        term,
    }
}

fn with_token(r: &ResourceConfig, kind: OpKind, term: u64) -> OpContext<'_> {
    OpContext {
        token: Some(token(term)),
        ..ctx(r, kind, Duration::from_secs(20))
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn exec_operations_get_the_fencing_token() {
    let dir = TempDir::new("token-exec");
    let out = dir.join("env");
    let record = format!("echo \"{LINE}\" >> {}", out.display());
    let r = resource(
        "db",
        ResourceKind::Exec {
            start: record.clone(),
            stop: record.clone(),
            monitor: Some(record),
            promote: None,
            demote: None,
        },
        None,
    );
    for (kind, term) in [(OpKind::Start, 7), (OpKind::Monitor, 7), (OpKind::Stop, 8)] {
        assert_eq!(run_op(&with_token(&r, kind, term)).await, OpResult::Ok);
    }
    assert_eq!(
        lines(&out),
        [
            "g1|db|start|n2|7|1700000123",
            "g1|db|monitor|n2|7|1700000123",
            "g1|db|stop|n2|8|1700000123",
        ]
    );
}

#[tokio::test]
async fn without_a_decision_there_is_no_token() {
    // The lease guard's emergency stop runs without the core: no term is claimed.
    let dir = TempDir::new("token-none");
    let out = dir.join("env");
    let record = format!(
        "echo \"${{TANDEM_TERM-unset}}|${{TANDEM_INCARNATION-unset}}|$TANDEM_ACTION\" > {}",
        out.display()
    );
    let r = resource(
        "db",
        ResourceKind::Exec {
            start: "true".into(),
            stop: record,
            monitor: None,
            promote: None,
            demote: None,
        },
        None,
    );
    let stop = ctx(&r, OpKind::Stop, Duration::from_secs(20));
    assert_eq!(run_op(&stop).await, OpResult::Ok);
    assert_eq!(lines(&out), ["unset|unset|stop"]);
}

#[tokio::test]
async fn lsb_scripts_get_the_fencing_token_in_every_call() {
    let dir = TempDir::new("token-lsb");
    let out = dir.join("env");
    let script = dir.script(
        "svc",
        &format!(
            "#!/bin/sh\necho \"$1|{LINE}\" >> {}\nexit 0\n",
            out.display()
        ),
    );
    let r = resource("svc", ResourceKind::Lsb { script }, None);
    let launch = Launch::default();
    for kind in [OpKind::Start, OpKind::Monitor] {
        let got = lsb::run_with(&with_token(&r, kind, 12), &launch).await;
        assert_eq!(got, OpResult::Ok);
    }
    assert_eq!(
        lines(&out),
        [
            "start|g1|svc|start|n2|12|1700000123",
            "status|g1|svc|monitor|n2|12|1700000123",
        ]
    );
}

#[tokio::test]
async fn ocf_agents_get_the_fencing_token_beside_their_params() {
    let dir = TempDir::new("token-ocf");
    let agent_dir = dir.join("resource.d").join("heartbeat");
    std::fs::create_dir_all(&agent_dir).expect("agent dir");
    let out = dir.join("env");
    let agent = agent_dir.join("Recorder");
    std::fs::write(
        &agent,
        format!(
            "#!/bin/sh\n[ \"$1\" = meta-data ] && exit 0\n\
             echo \"$OCF_RESKEY_name|{LINE}\" >> \"$OCF_RESKEY_log\"\nexit 0\n"
        ),
    )
    .expect("write agent");
    std::fs::set_permissions(&agent, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let params = [
        ("log".to_string(), out.display().to_string()),
        ("name".to_string(), "kept".to_string()),
    ];
    let r = resource(
        "rec",
        ResourceKind::Ocf {
            provider: "heartbeat".into(),
            agent_type: "Recorder".into(),
            params: params.into_iter().collect(),
        },
        None,
    );
    let launch = Launch {
        ocf_root: Some(dir.0.clone()),
        ..Launch::default()
    };
    let got = ocf::run_with(&with_token(&r, OpKind::Start, 3), &launch).await;
    assert_eq!(got, OpResult::Ok);
    assert_eq!(lines(&out), ["kept|g1|rec|start|n2|3|1700000123"]);
}
