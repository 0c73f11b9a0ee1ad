//! The demo's service and its client: what makes a takeover visible the way a user sees
//! it. The service is a tiny UDP responder (`tandem-lab demo-service`) that an `exec`
//! resource starts on the owner behind the VIP; it answers every datagram with the name
//! of the node it runs on. The client asks the VIP from the lab's client namespace every
//! few milliseconds and keeps the answers as runs ("n1 answered from t0 to t1"), so the
//! outage is the silence between two runs, measured where a user would measure it.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How often the client asks.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// Largest datagram either side reads; requests and answers are a few bytes.
const MAX_DATAGRAM: usize = 512;

/// Runs the responder until killed. The pid file is written only once the socket is
/// bound, so a start script that waits for it knows the service answers.
pub fn serve(listen: SocketAddr, name: &str, pidfile: Option<&Path>) -> io::Result<()> {
    let socket = UdpSocket::bind(listen)?;
    if let Some(p) = pidfile {
        std::fs::write(p, format!("{}\n", std::process::id()))?;
    }
    let mut buf = [0u8; MAX_DATAGRAM];
    loop {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        // Echo the request's sequence number so that the client can match the answer.
        let mut answer = buf[..n.min(32)].to_vec();
        answer.push(b' ');
        answer.extend_from_slice(name.as_bytes());
        // A client that went away is not the service's problem.
        let _ = socket.send_to(&answer, from);
    }
}

/// A stretch of consecutive answers from one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerRun {
    pub node: String,
    pub first: Instant,
    pub last: Instant,
    pub answers: u64,
}

/// The client in a background thread, inside a network namespace.
pub struct ServiceClient {
    runs: Arc<Mutex<Vec<AnswerRun>>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl ServiceClient {
    /// Starts asking `target` from inside namespace `ns`. Fails if the namespace cannot be
    /// entered or the socket cannot be made (reported before the thread runs on).
    pub fn start(ns: &str, target: SocketAddr) -> io::Result<ServiceClient> {
        let runs = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let ns = ns.to_string();
        let thread = {
            let runs = Arc::clone(&runs);
            let stop = Arc::clone(&stop);
            thread::Builder::new()
                .name("demo-client".into())
                .spawn(move || {
                    let socket = super::observe::raw::enter_netns(&ns)
                        .map_err(|e| io::Error::other(e.to_string()))
                        .and_then(|()| UdpSocket::bind(("0.0.0.0", 0)))
                        .and_then(|s| {
                            s.set_read_timeout(Some(Duration::from_millis(1)))?;
                            Ok(s)
                        });
                    match socket {
                        Ok(s) => {
                            let _ = ready_tx.send(Ok(()));
                            ask_until_stopped(&s, target, &runs, &stop);
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                })?
        };
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(ServiceClient {
                runs,
                stop,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => Err(io::Error::other("demo client thread died")),
        }
    }

    /// The answer runs so far, oldest first.
    pub fn runs(&self) -> Vec<AnswerRun> {
        self.runs.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// The node that answered last, and when.
    pub fn last_answer(&self) -> Option<(String, Instant)> {
        self.runs().last().map(|r| (r.node.clone(), r.last))
    }
}

impl Drop for ServiceClient {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn ask_until_stopped(
    socket: &UdpSocket,
    target: SocketAddr,
    runs: &Mutex<Vec<AnswerRun>>,
    stop: &AtomicBool,
) {
    let mut seq: u64 = 0;
    let mut next_ask = Instant::now();
    let mut buf = [0u8; MAX_DATAGRAM];
    while !stop.load(Ordering::Relaxed) {
        if Instant::now() >= next_ask {
            seq += 1;
            // Unreachable (no ARP answer yet) is the outage being measured: keep asking.
            let _ = socket.send_to(seq.to_string().as_bytes(), target);
            next_ask += PROBE_INTERVAL;
            if next_ask < Instant::now() {
                next_ask = Instant::now() + PROBE_INTERVAL;
            }
        }
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        if from != target {
            continue;
        }
        let Some(node) = parse_answer(&buf[..n]) else {
            continue;
        };
        record(runs, node, Instant::now());
    }
}

/// `"<seq> <node>"` -> node.
fn parse_answer(answer: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(answer).ok()?;
    let (seq, node) = text.split_once(' ')?;
    seq.parse::<u64>().ok()?;
    let node = node.trim();
    (!node.is_empty()).then(|| node.to_string())
}

fn record(runs: &Mutex<Vec<AnswerRun>>, node: String, at: Instant) {
    let Ok(mut runs) = runs.lock() else { return };
    match runs.last_mut() {
        Some(r) if r.node == node && at.duration_since(r.last) < SILENCE => {
            r.last = at;
            r.answers += 1;
        }
        _ => runs.push(AnswerRun {
            node,
            first: at,
            last: at,
            answers: 1,
        }),
    }
}

/// Silence longer than this splits two answer runs from the same node (a node that
/// failed and came back is two runs).
pub const SILENCE: Duration = Duration::from_millis(100);

/// The longest silence between answers after `since`, with the nodes on either side:
/// the client-visible outage of a takeover.
pub fn outage_after(runs: &[AnswerRun], since: Instant) -> Option<(Duration, &str, &str)> {
    runs.windows(2)
        .filter(|w| w[1].first >= since)
        .map(|w| {
            (
                w[1].first.saturating_duration_since(w[0].last),
                w[0].node.as_str(),
                w[1].node.as_str(),
            )
        })
        .max_by_key(|(gap, _, _)| *gap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_parsed_and_garbage_is_not() {
        assert_eq!(parse_answer(b"17 n2"), Some("n2".into()));
        assert_eq!(parse_answer(b"17 n2\n"), Some("n2".into()));
        assert_eq!(parse_answer(b"x n2"), None);
        assert_eq!(parse_answer(b"17 "), None);
        assert_eq!(parse_answer(b"17"), None);
        assert_eq!(parse_answer(&[0xff, b' ', b'a']), None);
    }

    #[test]
    fn runs_split_on_a_new_node_or_a_long_silence_and_the_outage_is_the_longest_gap() {
        let runs = Mutex::new(Vec::new());
        let t0 = Instant::now();
        let ms = |m| t0 + Duration::from_millis(m);
        for m in [0, 10, 20] {
            record(&runs, "n1".into(), ms(m));
        }
        for m in [900, 910] {
            record(&runs, "n2".into(), ms(m));
        }
        // n2 again after a long silence: a new run.
        record(&runs, "n2".into(), ms(1500));
        let runs = runs.into_inner().unwrap();
        assert_eq!(runs.len(), 3, "{runs:?}");
        assert_eq!(runs[0].answers, 3);
        assert_eq!((runs[0].first, runs[0].last), (ms(0), ms(20)));
        let (gap, from, to) = outage_after(&runs, ms(5)).unwrap();
        assert_eq!((gap, from, to), (Duration::from_millis(880), "n1", "n2"));
        // Only silences that end after `since` count.
        let (gap, from, to) = outage_after(&runs, ms(1000)).unwrap();
        assert_eq!((gap, from, to), (Duration::from_millis(590), "n2", "n2"));
        assert!(outage_after(&runs, ms(2000)).is_none());
    }

    #[test]
    fn the_service_answers_with_its_name_and_the_client_records_it() {
        let server = UdpSocket::bind(("127.0.0.1", 0)).unwrap();
        let addr = server.local_addr().unwrap();
        drop(server);
        thread::spawn(move || serve(addr, "n7", None));
        let client = UdpSocket::bind(("127.0.0.1", 0)).unwrap();
        client
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut buf = [0u8; 64];
        let mut got = None;
        for _ in 0..50 {
            let _ = client.send_to(b"41", addr);
            if let Ok((n, _)) = client.recv_from(&mut buf) {
                got = Some(buf[..n].to_vec());
                break;
            }
        }
        assert_eq!(got.as_deref(), Some(&b"41 n7"[..]));
    }
}
