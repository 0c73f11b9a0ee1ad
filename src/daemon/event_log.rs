//! The event history on disk, so `tandemctl events` (and `tandemctl report`) still show
//! what happened before a restart.
//!
//! Events are appended as JSON lines to `events.jsonl` in the state dir by a thread of
//! their own: the heartbeat thread, which records every event, only hands a copy to a
//! bounded channel and never waits for the disk (a full channel drops the copy and
//! counts it). The file is bounded: at [`ROTATE_EVENTS`] lines or [`ROTATE_BYTES`] it
//! becomes `events.jsonl.1` (replacing the previous one) and a new file starts, so the
//! two files never hold more than about twice that. At start the last [`EVENT_RING`]
//! events of both files are loaded back; a torn last line (a crash mid-write) is
//! skipped.
//!
//! Durability: each batch of events is written and then `fdatasync`ed by the writer
//! thread. Events are evidence, not safety state: unlike the core's `Persist` nothing
//! waits for them, but a node that reboots itself (self-fence through sysrq, which does
//! not sync) should still leave its last words on disk, and events are rare enough that
//! one sync per batch costs nothing the heartbeat can feel.

use super::events::EVENT_RING;
use crate::control::EventRecord;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

/// The current file, in the state dir.
pub const EVENT_LOG: &str = "events.jsonl";
/// The previous file, replaced at each rotation.
pub const EVENT_LOG_OLD: &str = "events.jsonl.1";
/// A file is rotated once it holds this many events...
pub const ROTATE_EVENTS: usize = EVENT_RING;
/// ...or this many bytes, whichever comes first.
pub const ROTATE_BYTES: u64 = 128 * 1024;
/// Events waiting for the writer; more are dropped (and counted) rather than waited for.
pub const QUEUE: usize = 1024;
/// A line longer than this is not written (no event comes near it).
pub const MAX_LINE: usize = 8 * 1024;

/// The sending side: cheap, never blocks.
#[derive(Debug)]
pub struct EventLog {
    queue: SyncSender<EventRecord>,
    dropped: Arc<AtomicU64>,
}

impl EventLog {
    /// Starts the writer thread on `dir`'s event file. The history is loaded separately
    /// ([`load`]) before this is called.
    pub fn start(dir: &Path) -> std::io::Result<EventLog> {
        let writer = Writer::open(dir)?;
        let (queue, rx) = mpsc::sync_channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        std::thread::Builder::new()
            .name("tandem-events".into())
            .spawn(move || writer.run(rx))?;
        Ok(EventLog { queue, dropped })
    }

    /// Hands `record` to the writer, or drops it if the writer is behind or gone.
    pub fn append(&self, record: &EventRecord) {
        match self.queue.try_send(record.clone()) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                let before = self.dropped.fetch_add(1, Ordering::Relaxed);
                if before == 0 {
                    tracing::warn!(
                        "the event file is behind or failed: events are kept in memory only"
                    );
                }
            }
        }
    }
}

/// The last [`EVENT_RING`] events kept in `dir`, oldest first. Missing files are an
/// empty history; unreadable lines are skipped.
pub fn load(dir: &Path) -> Vec<EventRecord> {
    let mut events = Vec::new();
    for name in [EVENT_LOG_OLD, EVENT_LOG] {
        let path = dir.join(name);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                tracing::warn!(
                    "cannot read {}: {e}; its events are not shown",
                    path.display()
                );
                continue;
            }
        };
        // Bounded read: a file grown by something else must not fill memory.
        let limited = std::io::Read::take(file, ROTATE_BYTES * 2);
        for line in BufReader::new(limited).lines() {
            let Ok(line) = line else { break };
            if let Ok(record) = serde_json::from_str::<EventRecord>(&line) {
                events.push(record);
            }
        }
    }
    let skip = events.len().saturating_sub(EVENT_RING);
    events.drain(..skip);
    events
}

/// The writer thread's state: the open file and how full it is.
struct Writer {
    dir: PathBuf,
    file: File,
    lines: usize,
    bytes: u64,
}

impl Writer {
    fn open(dir: &Path) -> std::io::Result<Writer> {
        let path = dir.join(EVENT_LOG);
        let mut file = open_append(&path)?;
        let bytes = file.metadata()?.len();
        let lines = match File::open(&path) {
            Ok(f) => BufReader::new(std::io::Read::take(f, ROTATE_BYTES * 2))
                .split(b'\n')
                .count(),
            Err(_) => 0,
        };
        // A torn last line must not swallow the next event.
        if bytes > 0 && !ends_with_newline(&path) {
            file.write_all(b"\n")?;
        }
        Ok(Writer {
            dir: dir.to_path_buf(),
            file,
            lines,
            bytes,
        })
    }

    /// Writes batches until every sender is gone.
    fn run(mut self, rx: Receiver<EventRecord>) {
        let mut failed = false;
        while let Ok(first) = rx.recv() {
            let batch = std::iter::once(first).chain(rx.try_iter());
            if let Err(e) = self.write_batch(batch) {
                if !failed {
                    tracing::error!(
                        "cannot write {}: {e}; events are kept in memory only until it works again",
                        self.dir.join(EVENT_LOG).display()
                    );
                }
                failed = true;
            } else {
                failed = false;
            }
        }
    }

    fn write_batch(&mut self, batch: impl Iterator<Item = EventRecord>) -> std::io::Result<()> {
        for record in batch {
            let Ok(mut line) = serde_json::to_vec(&record) else {
                continue;
            };
            if line.len() > MAX_LINE {
                continue;
            }
            line.push(b'\n');
            if self.lines >= ROTATE_EVENTS || self.bytes + line.len() as u64 > ROTATE_BYTES {
                self.rotate()?;
            }
            self.file.write_all(&line)?;
            self.lines += 1;
            self.bytes += line.len() as u64;
        }
        self.file.sync_data()
    }

    /// The current file becomes the old one (the old one goes) and a new one starts.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.sync_data()?;
        let current = self.dir.join(EVENT_LOG);
        std::fs::rename(&current, self.dir.join(EVENT_LOG_OLD))?;
        self.file = open_append(&current)?;
        File::open(&self.dir)?.sync_all()?;
        self.lines = 0;
        self.bytes = 0;
        Ok(())
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

fn ends_with_newline(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = File::open(path) else {
        return true;
    };
    let mut last = [0u8; 1];
    f.seek(SeekFrom::End(-1)).is_ok() && f.read_exact(&mut last).is_ok() && last[0] == b'\n'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("tandem-eventlog-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    fn event(n: u64) -> EventRecord {
        EventRecord {
            unix_ms: n,
            kind: "admin".into(),
            node: None,
            group: None,
            term: None,
            reason: format!("event {n}"),
            decision: None,
            wait_ms: None,
            incarnation: Some(7),
        }
    }

    fn write(dir: &Path, range: std::ops::Range<u64>) {
        let mut w = Writer::open(dir).expect("open");
        w.write_batch(range.map(event)).expect("write");
    }

    #[test]
    fn the_files_stay_bounded_and_the_last_ring_comes_back() {
        let dir = scratch("bound");
        write(&dir, 0..1000);
        let loaded = load(&dir);
        assert_eq!(loaded.len(), EVENT_RING);
        assert_eq!(
            loaded.first().map(|e| e.unix_ms),
            Some(1000 - EVENT_RING as u64)
        );
        assert_eq!(loaded.last().map(|e| e.unix_ms), Some(999));
        for name in [EVENT_LOG, EVENT_LOG_OLD] {
            let len = std::fs::metadata(dir.join(name)).expect("file").len();
            assert!(len <= ROTATE_BYTES, "{name}: {len} bytes");
            let lines = std::fs::read_to_string(dir.join(name))
                .expect("read")
                .lines()
                .count();
            assert!(lines <= ROTATE_EVENTS, "{name}: {lines} lines");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_line_is_skipped_and_does_not_swallow_the_next_event() {
        let dir = scratch("torn");
        write(&dir, 0..3);
        let mut f = open_append(&dir.join(EVENT_LOG)).expect("open");
        f.write_all(br#"{"unix_ms":99,"kind":"adm"#).expect("tear");
        write(&dir, 3..5);
        let got: Vec<u64> = load(&dir).iter().map(|e| e.unix_ms).collect();
        assert_eq!(got, vec![0, 1, 2, 3, 4]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn no_file_is_an_empty_history() {
        let dir = scratch("none");
        assert!(load(&dir).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
