//! tandemd's log lines leave the thread that logs them through a bounded queue, and a
//! thread of their own writes them to stderr.
//!
//! Why: the heartbeat thread logs (late heartbeats, node and link changes, decisions),
//! and a write to stderr can block — a file on a busy disk waits for the journal
//! (appending changes the size, every write the mtime), a pipe or journald's stream
//! socket waits for its reader. Blocked for 40 ms at 10 ms / 40 ms, a node falls silent
//! and is declared down for nothing. corosync logs through a thread for the same reason.
//! A full queue drops the line and counts it; the next line that gets through says how
//! many were lost before it, so a gap in the log is never silent.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Lines queued at most; far more than a burst of events (a group of 256 resources
/// stopping logs a few hundred).
const QUEUE_LINES: usize = 4096;

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
}

/// The `tracing` writer: each event's line is queued when the event is done.
#[derive(Clone)]
pub struct LogQueue {
    tx: SyncSender<Vec<u8>>,
    counters: Arc<Counters>,
}

/// One event's line, handed to the queue when dropped.
pub struct QueuedLine {
    buf: Vec<u8>,
    queue: LogQueue,
}

impl LogQueue {
    /// Starts the writer thread over `out` (stderr in the daemon). If no thread can be
    /// started, lines are written by the caller as before (`None`).
    pub fn start<W: Write + Send + 'static>(out: W) -> Option<LogQueue> {
        let (tx, rx) = sync_channel(QUEUE_LINES);
        let counters = Arc::new(Counters::default());
        let theirs = counters.clone();
        std::thread::Builder::new()
            .name("tandem-log".into())
            .spawn(move || write_lines(rx, out, &theirs))
            .ok()?;
        Some(LogQueue { tx, counters })
    }

    /// Waits up to `timeout` for the lines queued so far to be written (before exit).
    pub fn flush(&self, timeout: Duration) {
        let queued = self.counters.queued.load(Ordering::Acquire);
        let until = Instant::now() + timeout;
        while self.counters.written.load(Ordering::Acquire) < queued && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Queues `line`, preceded by a note of the lines lost just before it, if any.
    fn push(&self, line: Vec<u8>) {
        let lost = self.counters.dropped.swap(0, Ordering::Relaxed);
        let entry = if lost == 0 {
            line
        } else {
            let mut entry =
                format!("tandemd: {lost} log line(s) dropped: the log could not keep up\n")
                    .into_bytes();
            entry.extend_from_slice(&line);
            entry
        };
        match self.tx.try_send(entry) {
            Ok(()) => {
                self.counters.queued.fetch_add(1, Ordering::AcqRel);
            }
            Err(_) => {
                self.counters.dropped.fetch_add(lost + 1, Ordering::Relaxed);
            }
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogQueue {
    type Writer = QueuedLine;

    fn make_writer(&'a self) -> QueuedLine {
        QueuedLine {
            buf: Vec::with_capacity(256),
            queue: self.clone(),
        }
    }
}

impl Write for QueuedLine {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for QueuedLine {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.queue.push(std::mem::take(&mut self.buf));
        }
    }
}

fn write_lines<W: Write>(rx: Receiver<Vec<u8>>, mut out: W, counters: &Counters) {
    for line in rx {
        // Nowhere to report a failed write to; the next line tries again.
        let _ = out.write_all(&line);
        let _ = out.flush();
        counters.written.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Condvar, Mutex};

    /// Whether the gate is open, and what went through it.
    type GateState = Mutex<(bool, Vec<u8>)>;

    /// A writer that blocks until released, as stderr on a stuck disk would.
    #[derive(Clone, Default)]
    struct Gate {
        state: Arc<(GateState, Condvar)>,
    }

    impl Gate {
        fn open(&self) {
            let (lock, cv) = &*self.state;
            lock.lock().expect("lock").0 = true;
            cv.notify_all();
        }
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.state.0.lock().expect("lock").1).into_owned()
        }
    }

    impl Write for Gate {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let (lock, cv) = &*self.state;
            let mut s = cv
                .wait_while(lock.lock().expect("lock"), |s| !s.0)
                .expect("wait");
            s.1.extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn log(queue: &LogQueue, text: &str) {
        let mut line = tracing_subscriber::fmt::MakeWriter::make_writer(queue);
        line.write_all(text.as_bytes()).expect("buffer");
    }

    #[test]
    fn a_stuck_output_never_blocks_the_logger_and_losses_are_reported() {
        let gate = Gate::default();
        let queue = LogQueue::start(gate.clone()).expect("thread");
        // The writer holds the first line at the gate; the queue takes QUEUE_LINES more
        // and the rest are dropped — without the logging thread ever waiting. It logs on
        // a thread of its own, so a logger that did wait fails here instead of hanging.
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let logger = queue.clone();
        std::thread::spawn(move || {
            for i in 0..QUEUE_LINES + 100 {
                log(&logger, &format!("line {i}\n"));
            }
            let _ = done_tx.send(());
        });
        assert!(
            done_rx.recv_timeout(Duration::from_secs(30)).is_ok(),
            "logging waited for the output"
        );
        gate.open();
        queue.flush(Duration::from_secs(10));
        log(&queue, "after\n");
        queue.flush(Duration::from_secs(10));
        let text = gate.text();
        assert!(text.starts_with("line 0\nline 1\n"), "order kept");
        // Line 0 may or may not have left the queue when it filled: 99 or 100 dropped,
        // reported where the gap is, before the next line that got through.
        let reported = [99, 100].iter().any(|n| {
            text.ends_with(&format!(
                "line {}\ntandemd: {n} log line(s) dropped: the log could not keep up\nafter\n",
                QUEUE_LINES + 99 - n
            ))
        });
        assert!(reported, "{}", &text[text.len() - 120..]);
    }
}
