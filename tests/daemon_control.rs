//! The control protocol: framing, parsing, authorization, and the socket itself.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use tandem::control::client::{self, ClientError};
use tandem::control::{
    parse_request, Command, Request, RequestError, Response, StatusReport, MAX_REQUEST_LINE,
};
use tandem::daemon::control::{
    self as control, authorize, Access, AccessPolicy, Backend, ControlCall, LineRead, Peer,
    ServerError,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

fn temp_dir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tandem-{tag}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn fake_report() -> StatusReport {
    let mut r = StatusReport {
        cluster: "unit".into(),
        ..Default::default()
    };
    r.view.node = "n1".into();
    r
}

/// A stand-in for the core thread: answers every call, counting them.
fn fake_core() -> (Backend, Arc<std::sync::atomic::AtomicU32>) {
    let (tx, mut rx) = mpsc::channel::<ControlCall>(8);
    let answered = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counter = answered.clone();
    tokio::spawn(async move {
        while let Some(call) = rx.recv().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if let ControlCall::Command { command, reply } = call {
                let response = match command {
                    Command::Status => Response::status(fake_report()),
                    Command::Events => Response::events(vec![]),
                    other => Response::done(other.name()),
                };
                let _ = reply.send(response);
            }
        }
    });
    (Backend::new(tx), answered)
}

/// Writes `input` on a fresh connection and returns the response lines until EOF.
async fn exchange(input: &[u8], access: Access, close_after_write: bool) -> Vec<Response> {
    let (calls, _) = fake_core();
    let (client, server_end) = tokio::io::duplex(256 * 1024);
    let server_task = tokio::spawn(control::serve_connection(server_end, access, calls));
    let (read, mut write) = tokio::io::split(client);
    write.write_all(input).await.expect("write");
    if close_after_write {
        write.shutdown().await.expect("shutdown");
    }
    let mut lines = BufReader::new(read).lines();
    let mut out = Vec::new();
    let expected = input.iter().filter(|&&b| b == b'\n').count().max(1);
    while out.len() < expected {
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), lines.next_line())
            .await
            .expect("server answered in time")
            .expect("read");
        match next {
            Some(l) => out.push(serde_json::from_str(&l).expect("response is JSON")),
            None => break,
        }
    }
    drop(write);
    drop(lines);
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), server_task).await;
    assert!(
        ended.is_ok(),
        "server connection task must end when the client leaves"
    );
    out
}

#[test]
fn requests_round_trip_in_the_documented_shape() {
    let line = serde_json::to_string(&Request::new(Command::Status)).expect("encode");
    assert_eq!(line, r#"{"version":1,"cmd":"status"}"#);
    let parsed = parse_request(line.as_bytes()).expect("parse");
    assert_eq!(parsed.command, Command::Status);
}

#[test]
fn parse_names_each_kind_of_bad_request() {
    assert!(matches!(
        parse_request(b"\xff\xfe"),
        Err(RequestError::NotUtf8)
    ));
    assert!(matches!(
        parse_request(b"hello"),
        Err(RequestError::NotJson(_))
    ));
    assert!(matches!(
        parse_request(b"[1,2]"),
        Err(RequestError::NotJson(_))
    ));
    assert!(matches!(
        parse_request(br#"{"version":1}"#),
        Err(RequestError::MissingCommand)
    ));
    assert!(matches!(
        parse_request(br#"{"version":1,"cmd":"selfdestruct"}"#),
        Err(RequestError::UnknownCommand(c)) if c == "selfdestruct"
    ));
    assert!(matches!(
        parse_request(br#"{"version":99,"cmd":"status"}"#),
        Err(RequestError::BadVersion { got: 99 })
    ));
    assert!(matches!(
        parse_request(br#"{"cmd":"status"}"#),
        Err(RequestError::Invalid { .. })
    ));
    let long = vec![b' '; MAX_REQUEST_LINE + 1];
    assert!(matches!(parse_request(&long), Err(RequestError::TooLong)));
}

#[tokio::test]
async fn garbage_gets_an_error_reply_and_the_connection_keeps_working() {
    let input =
        b"this is not json\n{\"version\":1,\"cmd\":\"nope\"}\n{\"version\":1,\"cmd\":\"status\"}\n";
    let replies = exchange(input, Access::Full, false).await;
    assert_eq!(replies.len(), 3, "{replies:?}");
    assert!(!replies[0].ok);
    assert!(replies[0]
        .error
        .as_deref()
        .unwrap_or("")
        .contains("not a JSON"));
    assert!(!replies[1].ok);
    assert!(
        replies[1]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("unknown command \"nope\""),
        "{:?}",
        replies[1]
    );
    assert!(replies[2].ok, "{:?}", replies[2]);
    assert_eq!(
        replies[2].status.as_ref().map(|s| s.view.node.as_str()),
        Some("n1")
    );
}

#[tokio::test]
async fn an_oversized_line_gets_an_error_reply_not_a_crash() {
    let mut input = vec![b'x'; MAX_REQUEST_LINE + 10];
    input.push(b'\n');
    let replies = exchange(&input, Access::Full, false).await;
    assert_eq!(replies.len(), 1);
    assert!(!replies[0].ok);
    assert!(
        replies[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("longer than"),
        "{:?}",
        replies[0]
    );
}

#[tokio::test]
async fn a_half_line_gets_an_error_reply() {
    let replies = exchange(br#"{"version":1,"cmd":"sta"#, Access::Full, true).await;
    assert_eq!(replies.len(), 1);
    assert!(!replies[0].ok);
    assert!(
        replies[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("not terminated"),
        "{:?}",
        replies[0]
    );
}

#[tokio::test]
async fn strangers_are_refused_and_never_reach_the_core() {
    let (calls, answered) = fake_core();
    let (client, server_end) = tokio::io::duplex(4096);
    tokio::spawn(control::serve_connection(server_end, Access::Denied, calls));
    let (read, mut write) = tokio::io::split(client);
    write
        .write_all(b"{\"version\":1,\"cmd\":\"status\"}\n")
        .await
        .expect("write");
    let line = BufReader::new(read)
        .lines()
        .next_line()
        .await
        .expect("read")
        .expect("line");
    let r: Response = serde_json::from_str(&line).expect("json");
    assert!(!r.ok);
    assert!(
        r.error
            .as_deref()
            .unwrap_or("")
            .contains("permission denied"),
        "{r:?}"
    );
    assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[test]
fn access_policy_root_full_group_read_only_others_denied() {
    let policy = AccessPolicy {
        read_only_gid: Some(4242),
    };
    let peer = |uid, gid| Peer {
        uid,
        gid,
        pid: None,
    };
    assert_eq!(policy.access(&peer(0, 0)), Access::Full);
    assert_eq!(policy.access(&peer(1000, 4242)), Access::ReadOnly);
    assert_eq!(policy.access(&peer(1000, 1000)), Access::Denied);
    assert_eq!(
        AccessPolicy::default().access(&peer(1000, 4242)),
        Access::Denied
    );
    assert!(authorize(Access::ReadOnly, &Command::Status).is_ok());
    assert!(authorize(Access::ReadOnly, &Command::Events).is_ok());
    assert!(authorize(Access::Denied, &Command::Status).is_err());
}

#[tokio::test]
async fn read_line_limited_stops_at_the_limit() {
    let mut r = BufReader::new(&b"abc\ndefgh\nxy"[..]);
    let lr = control::read_line_limited(&mut r, 4).await.expect("io");
    assert_eq!(lr, LineRead::Line(b"abc".to_vec()));
    assert_eq!(
        control::read_line_limited(&mut r, 4).await.expect("io"),
        LineRead::TooLong
    );
    let mut r = BufReader::new(&b"xy"[..]);
    assert_eq!(
        control::read_line_limited(&mut r, 4).await.expect("io"),
        LineRead::Incomplete
    );
    let mut r = BufReader::new(&b""[..]);
    assert_eq!(
        control::read_line_limited(&mut r, 4).await.expect("io"),
        LineRead::Eof
    );
}

#[test]
fn client_reports_a_missing_daemon_as_unreachable_with_exit_code_3() {
    let dir = temp_dir("noclient");
    let path = dir.join("tandemd.sock");
    let err = client::call(&path, &Request::new(Command::Status)).expect_err("nobody listens");
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
    assert_eq!(err.exit_code(), 3);
    let msg = err.to_string();
    assert_eq!(
        msg,
        format!(
            "cannot reach tandemd at {}: No such file or directory (is tandemd running?)",
            path.display()
        )
    );
}

#[test]
fn socket_is_created_with_its_directory_mode_0660_replacing_a_stale_file() {
    let dir = temp_dir("sock");
    let path = dir.join("sub").join("tandemd.sock");
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    // A stale socket file left by a crashed daemon: nobody listens on it.
    drop(std::os::unix::net::UnixListener::bind(&path).expect("stale bind"));
    assert!(path.exists());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let policy = AccessPolicy::default();
        let listener = control::bind(&path, &policy).expect("bind over stale socket");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o660);
        // A second daemon must not steal the socket of a live one.
        assert!(matches!(
            control::bind(&path, &policy),
            Err(ServerError::InUse(_))
        ));
        let (calls, _) = fake_core();
        tokio::spawn(control::serve(listener, Arc::new(policy), calls));
        let p = path.clone();
        let response =
            tokio::task::spawn_blocking(move || client::call(&p, &Request::new(Command::Status)))
                .await
                .expect("join")
                .expect("call");
        assert!(response.ok);
        assert_eq!(response.status.map(|s| s.cluster), Some("unit".to_string()));
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bind_creates_a_missing_parent_directory() {
    let dir = temp_dir("mkdir");
    let path = dir.join("a").join("b").join("tandemd.sock");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let _listener = control::bind(&path, &AccessPolicy::default()).expect("bind");
        assert!(path.exists());
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn admin_commands_have_a_documented_shape_and_need_root() {
    let cases = [
        (
            Command::Move {
                group: "www".into(),
                to: Some("beta".into()),
                lifetime_ms: None,
            },
            r#"{"version":1,"cmd":"move","group":"www","to":"beta"}"#,
        ),
        (
            Command::Move {
                group: "www".into(),
                to: None,
                lifetime_ms: Some(600_000),
            },
            r#"{"version":1,"cmd":"move","group":"www","lifetime_ms":600000}"#,
        ),
        (
            Command::Ban {
                group: "www".into(),
                node: "alpha".into(),
                on: true,
                lifetime_ms: None,
            },
            r#"{"version":1,"cmd":"ban","group":"www","node":"alpha","on":true}"#,
        ),
        (
            Command::Standby {
                node: "alpha".into(),
                on: true,
            },
            r#"{"version":1,"cmd":"standby","node":"alpha","on":true}"#,
        ),
        (
            Command::Maintenance {
                group: None,
                on: false,
            },
            r#"{"version":1,"cmd":"maintenance","on":false}"#,
        ),
        (Command::Reload, r#"{"version":1,"cmd":"reload"}"#),
        (
            Command::EventsFollow,
            r#"{"version":1,"cmd":"events-follow"}"#,
        ),
    ];
    for (command, line) in cases {
        let encoded = serde_json::to_string(&Request::new(command.clone())).expect("encode");
        assert_eq!(encoded, line);
        assert_eq!(
            parse_request(line.as_bytes()).expect("parse").command,
            command
        );
        assert!(Command::NAMES.contains(&command.name()));
        let read_only = matches!(command, Command::EventsFollow);
        assert_eq!(command.is_read_only(), read_only, "{command:?}");
        assert_eq!(authorize(Access::ReadOnly, &command).is_ok(), read_only);
        assert!(authorize(Access::Full, &command).is_ok());
    }
    assert!(matches!(
        parse_request(br#"{"version":1,"cmd":"fence"}"#),
        Err(RequestError::Invalid { cmd, .. }) if cmd == "fence"
    ));
}

#[tokio::test]
async fn events_follow_writes_the_history_then_each_new_event_until_the_client_leaves() {
    let (tx, mut rx) = mpsc::channel::<ControlCall>(8);
    let (live_tx, _) = tokio::sync::broadcast::channel(16);
    let feed_tx = live_tx.clone();
    tokio::spawn(async move {
        while let Some(call) = rx.recv().await {
            if let ControlCall::Follow { reply } = call {
                let _ = reply.send(control::EventFeed {
                    history: vec![event("old")],
                    live: feed_tx.subscribe(),
                });
            }
        }
    });
    let (client, server_end) = tokio::io::duplex(64 * 1024);
    let task = tokio::spawn(control::serve_connection(
        server_end,
        Access::ReadOnly,
        Backend::new(tx),
    ));
    let (read, mut write) = tokio::io::split(client);
    write
        .write_all(b"{\"version\":1,\"cmd\":\"events-follow\"}\n")
        .await
        .expect("write");
    let mut lines = BufReader::new(read).lines();
    let next =
        |l: Option<String>| serde_json::from_str::<Response>(&l.expect("line")).expect("json");
    let first = next(lines.next_line().await.expect("read"));
    assert_eq!(first.events.map(|e| e.len()), Some(1));
    live_tx.send(event("new")).expect("send");
    let second = next(lines.next_line().await.expect("read"));
    assert_eq!(second.event.map(|e| e.reason), Some("new".to_string()));
    drop(write);
    drop(lines);
    let ended = tokio::time::timeout(std::time::Duration::from_secs(10), task).await;
    assert!(ended.is_ok(), "the follow ends when the client leaves");
}

fn event(reason: &str) -> tandem::control::EventRecord {
    tandem::control::EventRecord {
        unix_ms: 1,
        kind: "admin".into(),
        node: None,
        group: None,
        term: None,
        reason: reason.into(),
        decision: None,
        wait_ms: None,
        incarnation: None,
    }
}
