//! The report channel against honest, mistaken and hostile peers, over in-memory
//! streams: what arrives whole, what is refused, and that a refusal never ran `gather`.

use super::*;
use std::io::Cursor;
use std::os::unix::net::UnixStream;

fn keys(byte: u8) -> ChannelKeys {
    ChannelKeys::new(&AuthKeys {
        current: [byte; 32],
        next: None,
    })
}

fn request(to: &str) -> PeerRequest {
    PeerRequest {
        from: "n1".into(),
        to: to.into(),
        since: 1_700_000_000,
    }
}

/// An archive of three chunks and a bit, with content that shows reordering.
fn archive() -> Vec<u8> {
    (0..(2 * CHUNK + 1000)).map(|i| (i % 251) as u8).collect()
}

/// Runs `serve` as node n2 on one end of a socket pair and `client` on the other.
/// The server's result is an error when the client hung up before the end.
fn exchange<T>(
    server_keys: ChannelKeys,
    client: impl FnOnce(&mut UnixStream) -> T,
) -> (T, Result<Served, ChannelError>, bool) {
    let (mut a, mut b) = UnixStream::pair().expect("socket pair");
    let server = std::thread::spawn(move || {
        let mut gathered = false;
        let served = serve(&mut b, &server_keys, "n2", |_| {
            gathered = true;
            Ok(archive())
        });
        (served, gathered)
    });
    let out = client(&mut a);
    drop(a);
    let (served, gathered) = server.join().expect("server thread");
    (out, served, gathered)
}

#[test]
fn an_archive_arrives_whole_and_the_server_knows_who_asked() {
    let (got, served, gathered) = exchange(keys(7), |s| fetch(s, &keys(7), &request("n2")));
    assert_eq!(got.expect("fetch"), archive());
    assert!(gathered);
    assert_eq!(
        served.expect("served"),
        Served::Sent {
            request: request("n2"),
            bytes: archive().len()
        }
    );
}

#[test]
fn another_clusters_key_is_refused_before_anything_is_gathered() {
    let (got, served, gathered) = exchange(keys(7), |s| fetch(s, &keys(8), &request("n2")));
    assert!(
        matches!(got, Err(ChannelError::Refused(Refusal::NotSealed))),
        "{got:?}"
    );
    assert_eq!(served.expect("served"), Served::Unauthenticated);
    assert!(!gathered);
}

#[test]
fn the_wrong_node_refuses_instead_of_answering_under_another_name() {
    let (got, served, gathered) = exchange(keys(7), |s| fetch(s, &keys(7), &request("n3")));
    let answered_by = Refusal::WrongNode("n2".into());
    assert!(
        matches!(&got, Err(ChannelError::Refused(r)) if *r == answered_by),
        "{got:?}"
    );
    assert!(
        matches!(&served, Ok(Served::Refused { why, .. }) if *why == answered_by),
        "{served:?}"
    );
    assert!(!gathered);
}

#[test]
fn every_refusal_arrives_as_its_kind_and_an_unknown_one_as_a_bounded_failure() {
    let sent = [
        Refusal::NotSealed,
        Refusal::WrongNode("n2".into()),
        Refusal::Busy,
        Refusal::Failed("journalctl did not finish".into()),
    ];
    for refusal in sent {
        let mut wire = Vec::new();
        refuse(&mut wire, &refusal).expect("refuse");
        let frame = read_frame(&mut Cursor::new(wire)).expect("frame");
        assert_eq!(frame[0], FrameKind::Refusal as u8);
        assert_eq!(Refusal::decode(&frame[1..]), refusal);
    }
    // A newer node's reason: shown as a failure, its detail cut to a bounded length.
    let mut body = vec![9u8];
    body.extend(std::iter::repeat_n(b'x', 10_000));
    match Refusal::decode(&body) {
        Refusal::Failed(detail) => assert_eq!(detail.len(), MAX_REFUSAL_CHARS),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_rotation_in_progress_still_opens_with_the_next_key() {
    let server = ChannelKeys::new(&AuthKeys {
        current: [9; 32],
        next: Some([7; 32]),
    });
    let (got, _, _) = exchange(server, |s| fetch(s, &keys(7), &request("n2")));
    // The answer is sealed with the server's current key, which the client lacks.
    assert!(matches!(got, Err(ChannelError::Unauthenticated)), "{got:?}");
    let both = || {
        ChannelKeys::new(&AuthKeys {
            current: [7; 32],
            next: Some([9; 32]),
        })
    };
    let server = ChannelKeys::new(&AuthKeys {
        current: [9; 32],
        next: Some([7; 32]),
    });
    let (got, _, _) = exchange(server, |s| fetch(s, &both(), &request("n2")));
    assert_eq!(got.expect("fetch during rotation"), archive());
}

#[test]
fn a_recorded_request_is_useless_on_a_new_connection() {
    // Record what an honest client sends in one exchange...
    let (recorded, _, _) = exchange(keys(7), |s| {
        let challenge = read_hello(s).expect("hello");
        let plain = serde_json::to_vec(&request("n2")).expect("json");
        let aad = associated_data(Direction::Request, &challenge, 0);
        let frame = seal(&keys(7).current, &aad, &plain).expect("seal");
        write_frame(s, &frame).expect("send");
        let _ = read_frame(s);
        frame
    });
    // ...and replay it on another: the challenge differs, so it does not open.
    let (_, served, gathered) = exchange(keys(7), |s| {
        read_hello(s).expect("hello");
        write_frame(s, &recorded).expect("replay");
        read_frame(s).expect("refusal")
    });
    assert_eq!(served.expect("served"), Served::Unauthenticated);
    assert!(!gathered);
}

/// A stream whose input is fixed bytes and whose output is collected.
struct Scripted {
    input: Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Scripted {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The frames an honest server sends for `archive()` after the challenge `[3; 24]`.
fn honest_answer() -> (Vec<u8>, Vec<Vec<u8>>) {
    let challenge = [3u8; NONCE_LEN];
    let mut hello = MAGIC.to_vec();
    hello.push(VERSION);
    hello.extend_from_slice(&challenge);
    let mut wire = Vec::new();
    send_archive(&mut wire, &keys(7), &challenge, &archive()).expect("send");
    let mut frames = Vec::new();
    let mut r = Cursor::new(wire);
    while let Ok(f) = read_frame(&mut r) {
        frames.push(f);
    }
    (hello, frames)
}

fn client_reads(hello: &[u8], frames: &[Vec<u8>]) -> Result<Vec<u8>, ChannelError> {
    let mut input = hello.to_vec();
    for f in frames {
        write_frame(&mut input, f).expect("frame");
    }
    let mut stream = Scripted {
        input: Cursor::new(input),
        output: Vec::new(),
    };
    fetch(&mut stream, &keys(7), &request("n2"))
}

#[test]
fn an_answer_cut_short_reordered_or_altered_is_never_taken_for_the_archive() {
    let (hello, frames) = honest_answer();
    assert_eq!(frames.len(), 4, "three chunks and the end");
    assert_eq!(client_reads(&hello, &frames).expect("honest"), archive());

    let cut = &frames[..3];
    assert!(client_reads(&hello, cut).is_err(), "no end frame");

    let mut dropped = frames.clone();
    dropped.remove(1);
    assert!(matches!(
        client_reads(&hello, &dropped),
        Err(ChannelError::Unauthenticated)
    ));

    let mut swapped = frames.clone();
    swapped.swap(0, 1);
    assert!(matches!(
        client_reads(&hello, &swapped),
        Err(ChannelError::Unauthenticated)
    ));

    let mut flipped = frames.clone();
    flipped[1][100] ^= 1;
    assert!(matches!(
        client_reads(&hello, &flipped),
        Err(ChannelError::Unauthenticated)
    ));

    let end_early = vec![frames[0].clone(), frames[3].clone()];
    assert!(matches!(
        client_reads(&hello, &end_early),
        Err(ChannelError::Unauthenticated)
    ));
}

#[test]
fn junk_on_the_port_is_named_and_a_huge_frame_is_refused_before_allocation() {
    let http = b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec();
    assert!(matches!(
        client_reads(&http, &[]),
        Err(ChannelError::NotAReportChannel)
    ));
    let mut old = MAGIC.to_vec();
    old.push(VERSION + 1);
    old.extend_from_slice(&[0; NONCE_LEN]);
    assert!(matches!(
        client_reads(&old, &[]),
        Err(ChannelError::Version(_))
    ));

    let mut huge = Cursor::new(u32::MAX.to_be_bytes().to_vec());
    assert!(matches!(
        read_frame(&mut huge),
        Err(ChannelError::FrameTooLarge(_))
    ));
    // A server reading a request with a huge length gives up the same way.
    let mut stream = Scripted {
        input: Cursor::new(u32::MAX.to_be_bytes().to_vec()),
        output: Vec::new(),
    };
    let served = serve(&mut stream, &keys(7), "n2", |_| panic!("must not gather"));
    assert!(matches!(served, Err(ChannelError::FrameTooLarge(_))));
}
