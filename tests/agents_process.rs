//! The process runner and the agents built directly on it (exec, systemd), and notify
//! hooks: real child processes, real process groups, real signals.

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::agents::*;
use tandem::agents::hooks::{self, HookEvent, HookKind};
use tandem::agents::process::{self, Exit, Launch, Spec};
use tandem::agents::{run_op, systemd};
use tandem::config::ResourceKind;
use tandem::core::{OpKind, OpResult};

fn exec_kind(start: &str, stop: &str, monitor: Option<&str>) -> ResourceKind {
    ResourceKind::Exec {
        start: start.into(),
        stop: stop.into(),
        monitor: monitor.map(Into::into),
        promote: None,
        demote: None,
    }
}

#[tokio::test]
async fn hung_exec_op_is_killed_with_its_children() {
    let dir = TempDir::new("hang");
    let pids = dir.join("pids");
    // The shell, a background child and a foreground child: all must die.
    let start = format!(
        "echo $$ > {p}; sleep 1000 & echo $! >> {p}; sleep 1000 & echo $! >> {p}; wait",
        p = pids.display()
    );
    let r = resource("hang", exec_kind(&start, "true", None), None);
    let began = Instant::now();
    let result = run_op(&ctx(&r, OpKind::Start, Duration::from_millis(800))).await;
    assert_eq!(result, OpResult::TimedOut);
    assert!(
        began.elapsed() < Duration::from_secs(15),
        "the op must return soon after its timeout, took {:?}",
        began.elapsed()
    );
    let pids = read_pids(&pids);
    assert_eq!(pids.len(), 3, "the script wrote its pids: {pids:?}");
    assert!(
        wait_until(Duration::from_secs(10), || pids
            .iter()
            .all(|p| pid_gone(*p))),
        "processes of the timed-out op still alive: {:?}",
        pids.iter().filter(|p| !pid_gone(**p)).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn exec_monitor_exit_codes() {
    let t = Duration::from_secs(20);
    let monitor = |m: Option<&str>| resource("m", exec_kind("true", "true", m), None);
    let r = monitor(Some("exit 0"));
    assert_eq!(run_op(&ctx(&r, OpKind::Monitor, t)).await, OpResult::Ok);
    let r = monitor(Some("exit 7"));
    assert_eq!(
        run_op(&ctx(&r, OpKind::Monitor, t)).await,
        OpResult::NotRunning
    );
    let r = monitor(Some("echo disk full >&2; exit 3"));
    match run_op(&ctx(&r, OpKind::Monitor, t)).await {
        OpResult::Failed(why) => {
            assert!(why.contains("monitor: exit 3"), "{why}");
            assert!(why.contains("disk full"), "the reason quotes stderr: {why}");
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    let r = monitor(None);
    assert_eq!(run_op(&ctx(&r, OpKind::Monitor, t)).await, OpResult::Ok);

    let r = resource("s", exec_kind("exit 0", "exit 1", None), None);
    assert_eq!(run_op(&ctx(&r, OpKind::Start, t)).await, OpResult::Ok);
    assert!(matches!(
        run_op(&ctx(&r, OpKind::Stop, t)).await,
        OpResult::Failed(w) if w.contains("stop: exit 1")
    ));
    // Exit 7 is "not running" only for a monitor.
    let r = resource("s7", exec_kind("exit 7", "true", None), None);
    assert!(matches!(
        run_op(&ctx(&r, OpKind::Start, t)).await,
        OpResult::Failed(_)
    ));
}

#[tokio::test]
async fn exec_gets_its_resource_in_the_environment() {
    let dir = TempDir::new("env");
    let out = dir.join("env");
    let start = format!(
        "echo \"$TANDEM_GROUP $TANDEM_RESOURCE $TANDEM_ACTION\" > {}",
        out.display()
    );
    let r = resource("web", exec_kind(&start, "true", None), None);
    let result = run_op(&ctx(&r, OpKind::Start, Duration::from_secs(20))).await;
    assert_eq!(result, OpResult::Ok);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap_or_default().trim(),
        "g1 web start"
    );
}

#[tokio::test]
async fn a_daemon_left_by_a_start_script_keeps_running() {
    // A start command that backgrounds a service and exits 0 must not have the service
    // killed with it, nor make the op wait for the service's stdout to close.
    let dir = TempDir::new("daemon");
    let pidfile = dir.join("pid");
    let start = format!("sleep 1000 & echo $! > {}", pidfile.display());
    let r = resource("d", exec_kind(&start, "true", None), None);
    let began = Instant::now();
    let result = run_op(&ctx(&r, OpKind::Start, Duration::from_secs(30))).await;
    assert_eq!(result, OpResult::Ok);
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "took {:?}",
        began.elapsed()
    );
    let pids = read_pids(&pidfile);
    assert_eq!(pids.len(), 1);
    std::thread::sleep(Duration::from_millis(300));
    let alive = !pid_gone(pids[0]);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pids[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert!(alive, "the backgrounded service was killed");
}

#[tokio::test]
async fn an_abandoned_operation_kills_its_process_group() {
    // What happens to running agents when the daemon stops: the future is dropped.
    let dir = TempDir::new("drop");
    let pids = dir.join("pids");
    let script = format!(
        "echo $$ > {p}; sleep 1000 & echo $! >> {p}; wait",
        p = pids.display()
    );
    let spec = Spec::shell("dropped", &script, Duration::from_secs(600));
    let task = tokio::spawn(async move { process::run(&Launch::default(), &spec).await });
    let found = {
        let pids = pids.clone();
        tokio::task::spawn_blocking(move || {
            wait_until(Duration::from_secs(10), || read_pids(&pids).len() == 2)
        })
        .await
        .unwrap_or(false)
    };
    assert!(found, "the script did not start");
    task.abort();
    let _ = task.await;
    let pids = read_pids(&pids);
    assert!(
        wait_until(Duration::from_secs(10), || pids
            .iter()
            .all(|p| pid_gone(*p))),
        "children of an abandoned op survived: {pids:?}"
    );
}

#[tokio::test]
async fn runner_reports_exit_signal_spawn_error_stdin_and_caps_output() {
    let launch = Launch::default();
    let t = Duration::from_secs(20);

    let done = process::run(&launch, &Spec::shell("x", "exit 42", t)).await;
    assert_eq!(done.exit, Exit::Code(42));

    let done = process::run(&launch, &Spec::shell("x", "kill -TERM $$", t)).await;
    assert_eq!(done.exit, Exit::Signal(15));

    let done = process::run(&launch, &Spec::new("x", "/nonexistent/agent", t)).await;
    match &done.exit {
        Exit::SpawnFailed { program, .. } => {
            assert_eq!(program, &PathBuf::from("/nonexistent/agent"));
            assert!(done.exit.not_found());
            assert!(done.describe("start").contains("/nonexistent/agent"));
        }
        other => panic!("expected a spawn failure, got {other:?}"),
    }

    let done = process::run(
        &launch,
        &Spec::new("x", "/bin/cat", t).stdin(b"action=off\nplug=n2\n".to_vec()),
    )
    .await;
    assert_eq!(done.exit, Exit::Code(0));
    assert_eq!(done.stdout_text(), "action=off\nplug=n2\n");

    // A chatty agent: 4 MB on stdout, 64 KiB kept.
    let mut spec = Spec::shell(
        "chatty",
        "head -c 4000000 /dev/zero | tr '\\0' 'x'; echo",
        t,
    );
    spec.capture_limit = 64 * 1024;
    let done = process::run(&launch, &spec).await;
    assert_eq!(done.exit, Exit::Code(0));
    assert!(done.truncated);
    assert_eq!(done.stdout.len(), 64 * 1024);

    // The wrapper prefix and the launch environment reach the child.
    let launch = Launch {
        wrapper: vec!["env".into(), "WRAPPED=yes".into()],
        env: vec![("FROM_LAUNCH".into(), "1".into())],
        ..Launch::default()
    };
    let done = process::run(
        &launch,
        &Spec::shell("x", "echo $WRAPPED$FROM_LAUNCH$FROM_SPEC", t).env("FROM_SPEC", "2"),
    )
    .await;
    assert_eq!(done.stdout_text().trim(), "yes12");
}

/// This machine runs no systemd, so the contract (`systemctl start|stop UNIT`,
/// `systemctl is-active --quiet UNIT`: 0 active, 3 inactive) is checked against a
/// stand-in `systemctl` put first on the child's PATH through `Launch::env`; the agent
/// looks `systemctl` up on PATH like any other program. The real systemctl is exercised
/// by the package tests.
#[tokio::test]
async fn systemd_agent_against_a_standin_systemctl() {
    let dir = TempDir::new("systemd");
    let state = dir.join("state");
    let log = dir.join("log");
    dir.script(
        "systemctl",
        &format!(
            r#"#!/bin/sh
echo "$*" >> {log}
case "$1" in
  start) [ "$2" = broken.service ] && exit 1; echo active > {state}.$2 ;;
  stop) [ "$2" = stuck.service ] && exit 1; rm -f {state}.$2 ;;
  is-active)
    [ "$2" = --quiet ] || exit 99
    [ "$3" = weird.service ] && exit 4
    [ "$3" = stuck.service ] && exit 0
    [ -e {state}.$3 ] && exit 0
    exit 3 ;;
  *) exit 99 ;;
esac
"#,
            log = log.display(),
            state = state.display()
        ),
    );
    let launch = Launch {
        env: vec![(
            "PATH".into(),
            format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", dir.path().display()).into(),
        )],
        ..Launch::default()
    };
    let t = Duration::from_secs(20);
    let unit = |u: &str| resource(u, ResourceKind::Systemd { unit: u.into() }, None);

    let r = unit("web.service");
    for (kind, expected) in [
        (OpKind::Monitor, OpResult::NotRunning),
        (OpKind::Start, OpResult::Ok),
        (OpKind::Monitor, OpResult::Ok),
        (OpKind::Stop, OpResult::Ok),
        (OpKind::Monitor, OpResult::NotRunning),
    ] {
        let got = systemd::run_with(&ctx(&r, kind, t), &launch).await;
        assert_eq!(got, expected, "{kind:?}");
    }
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(calls.contains("start web.service\n"), "{calls}");
    assert!(calls.contains("is-active --quiet web.service\n"), "{calls}");
    assert!(calls.contains("stop web.service\n"), "{calls}");

    let r = unit("broken.service");
    assert!(matches!(
        systemd::run_with(&ctx(&r, OpKind::Start, t), &launch).await,
        OpResult::Failed(w) if w.contains("systemctl start broken.service")
    ));
    let r = unit("weird.service");
    assert!(matches!(
        systemd::run_with(&ctx(&r, OpKind::Monitor, t), &launch).await,
        OpResult::Failed(_)
    ));
    // A failed stop of a unit that stays active is a failure; one of an inactive unit
    // (stop failed because it was not even loaded) is a success.
    let r = unit("stuck.service");
    assert!(matches!(
        systemd::run_with(&ctx(&r, OpKind::Stop, t), &launch).await,
        OpResult::Failed(_)
    ));
}

fn event(kind: HookKind) -> HookEvent {
    HookEvent {
        kind,
        cluster: "lab".into(),
        node: "n2".into(),
        local_node: "n1".into(),
        local_incarnation: 3,
        group: Some("www".into()),
        term: Some(7),
        reason: "n2 won".into(),
    }
}

#[tokio::test]
async fn hooks_get_the_event_in_argv_and_environment() {
    let dir = TempDir::new("hook");
    let out = dir.join("out");
    let hook = dir.script(
        "hook.sh",
        &format!(
            "#!/bin/sh\necho \"$1|$TANDEM_EVENT|$TANDEM_CLUSTER|$TANDEM_NODE|$TANDEM_LOCAL_NODE|$TANDEM_GROUP|$TANDEM_TERM|$TANDEM_INCARNATION|$TANDEM_REASON\" >> {}\n",
            out.display()
        ),
    );
    let handle = hooks::notify(
        std::slice::from_ref(&hook),
        &event(HookKind::LostOwnership),
        Duration::from_secs(20),
    )
    .expect("a hook task");
    let results = handle.await.expect("hook task");
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].exit, Exit::Code(0));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap_or_default(),
        "lost-ownership|lost-ownership|lab|n2|n1|www|7|3|n2 won\n"
    );
    // No hooks: nothing to run.
    assert!(hooks::notify(&[], &event(HookKind::NodeUp), Duration::from_secs(1)).is_none());
}

#[tokio::test]
async fn a_hung_hook_never_blocks_the_caller_and_is_killed() {
    let dir = TempDir::new("hookhang");
    let pids = dir.join("pids");
    let order = dir.join("order");
    let slow = dir.script(
        "slow.sh",
        &format!(
            "#!/bin/sh\necho $$ >> {p}\nsleep 1000 & echo $! >> {p}\nwait\n",
            p = pids.display()
        ),
    );
    let record = dir.script(
        "record.sh",
        &format!("#!/bin/sh\necho $1 >> {}\n", order.display()),
    );
    let began = Instant::now();
    let first = hooks::notify(
        &[slow, record.clone()],
        &event(HookKind::BecameOwner),
        // Long enough that a blocking notify could not hide under the bound below.
        Duration::from_secs(4),
    )
    .expect("task");
    let second = hooks::notify(
        &[record],
        &event(HookKind::QuorumLost),
        Duration::from_secs(20),
    )
    .expect("task");
    assert!(
        began.elapsed() < Duration::from_secs(2),
        "notify blocked the caller for {:?}",
        began.elapsed()
    );
    let results = first.await.expect("first hooks");
    assert_eq!(results[0].exit, Exit::TimedOut);
    assert_eq!(results[1].exit, Exit::Code(0));
    second.await.expect("second hooks");
    // Events reach hooks in the order they were notified.
    assert_eq!(
        std::fs::read_to_string(&order).unwrap_or_default(),
        "became-owner\nquorum-lost\n"
    );
    let pids = read_pids(&pids);
    assert_eq!(pids.len(), 2);
    assert!(
        wait_until(Duration::from_secs(10), || pids
            .iter()
            .all(|p| pid_gone(*p))),
        "the hung hook's processes survived: {pids:?}"
    );
}

#[test]
fn core_events_map_to_hook_events() {
    use tandem::core::EventKind;
    assert_eq!(
        HookKind::of(EventKind::BecameOwner),
        Some(HookKind::BecameOwner)
    );
    assert_eq!(
        HookKind::of(EventKind::ResourceFailed),
        Some(HookKind::Fault)
    );
    assert_eq!(HookKind::of(EventKind::NodeDown), Some(HookKind::NodeDown));
    assert_eq!(
        HookKind::of(EventKind::QuorumGained),
        Some(HookKind::QuorumGained)
    );
    assert_eq!(HookKind::of(EventKind::LinkDown), None);
    assert_eq!(HookKind::of(EventKind::Decision), None);
}

/// A program that is still open for writing somewhere (a script just written, whose
/// descriptor a process forked at that moment still holds) cannot be executed
/// (ETXTBSY). The runner waits a little for the writer to go instead of failing the
/// operation; a writer that never goes still fails it, with the reason.
#[tokio::test]
async fn a_program_busy_for_a_moment_still_runs() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("txtbsy");
    let script = dir.join("script");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").expect("write");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let writer = std::fs::OpenOptions::new()
        .write(true)
        .open(&script)
        .expect("open for writing");
    let spec = Spec::new("busy", &script, Duration::from_secs(5));
    let launch = Launch::default();
    let closer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        drop(writer);
    });
    let done = process::run(&launch, &spec).await;
    assert_eq!(done.exit, Exit::Code(0), "{done:?}");
    closer.await.expect("closer");

    let _held = std::fs::OpenOptions::new()
        .write(true)
        .open(&script)
        .expect("open for writing");
    let done = process::run(&launch, &spec).await;
    match &done.exit {
        Exit::SpawnFailed { error, .. } => assert!(error.contains("busy"), "{error}"),
        other => panic!("a program open for writing ran: {other:?}"),
    }
}
