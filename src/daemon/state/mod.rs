//! What the daemon keeps on disk in `--state-dir`: the incarnation counter and the
//! core's persistent state. A crash at any moment leaves either the old or the new
//! content of each, never a mix.
//!
//! The incarnation is written once per boot, atomically (temp file, fsync, rename, fsync
//! of the directory). The core's state is written on the takeover path — a voter records
//! its grantee, a new owner its term, both before the packet or the address that depends
//! on it — so it takes the cheaper way: two slot files written in turn, in place, each
//! save one `fdatasync` (see [`record`] and [`StateDir::save`]).

mod record;

use crate::core::PersistentState;
use record::Defect;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The two slots of the core's state; a save goes to the one not holding the newest.
pub const STATE_SLOTS: [&str; 2] = ["state.a", "state.b"];
/// Where versions before the slots kept the state (read once, removed after the first
/// save to the slots).
pub const LEGACY_STATE_FILE: &str = "state.json";
pub const INCARNATION_FILE: &str = "incarnation";
/// Far above any real state (it is bounded by the config); a larger file is not ours.
const MAX_STATE_BYTES: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create state directory {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot encode state: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Why the stored state could not be used (the daemon then boots without it and waits
/// for the cluster's view, as on a first start).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("no usable state in {}", describe(.0))]
    Corrupt(Vec<(PathBuf, SlotFault)>),
}

/// What is wrong with one stored copy.
#[derive(Debug, thiserror::Error)]
pub enum SlotFault {
    #[error("{0}")]
    Record(Defect),
    #[error("larger than {MAX_STATE_BYTES} bytes")]
    TooLarge,
    #[error("the record holds no valid state: {0}")]
    Json(serde_json::Error),
}

fn describe(faults: &[(PathBuf, SlotFault)]) -> String {
    let parts: Vec<String> = faults
        .iter()
        .map(|(path, fault)| format!("{}: {fault}", path.display()))
        .collect();
    parts.join("; ")
}

/// Replaces `path` with `bytes` so that readers (and a crash) see the old or the new
/// content, never a mix; durable when this returns.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        // The rename is only durable once the directory entry is.
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Where a boot's incarnation came from (logged at start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IncarnationSource {
    /// The stored counter plus one.
    Counter,
    /// No usable counter: the wall clock in nanoseconds, which is larger than any
    /// counter an earlier boot derived the same way.
    WallClock,
}

/// The state directory of one node, and where its next state save goes.
#[derive(Debug)]
pub struct StateDir {
    dir: PathBuf,
    /// The slot the next save overwrites, and the sequence number it gets.
    next: SlotCursor,
    /// A state file of an older version was there at open: the first save removes it.
    legacy_present: bool,
}

#[derive(Clone, Copy, Debug)]
struct SlotCursor {
    slot: usize,
    seq: u64,
}

/// One slot as found on disk.
enum Found {
    Missing,
    Valid(u64, PersistentState),
    /// Not usable; `seq` when the record itself was whole (a body this version cannot
    /// read, e.g. after a downgrade): the next save must still number above it.
    Faulty {
        fault: SlotFault,
        seq: Option<u64>,
    },
}

impl StateDir {
    /// Creates the directory (mode 0700) if missing, and finds which slot holds the
    /// newest state so the next save goes to the other one.
    pub fn open(dir: &Path) -> Result<StateDir, StateError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| StateError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        let mut state = StateDir {
            dir: dir.to_path_buf(),
            next: SlotCursor { slot: 0, seq: 1 },
            legacy_present: dir.join(LEGACY_STATE_FILE).exists(),
        };
        state.next = match state.read_slots() {
            Ok(found) => cursor_after(&found),
            // A slot that cannot be read may hold any number: count from the wall clock
            // in ns, above any counter, as the incarnation does.
            Err(_) => SlotCursor {
                slot: 0,
                seq: super::clock::realtime_ns().max(1),
            },
        };
        Ok(state)
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The two slot files, in slot order.
    pub fn slot_paths(&self) -> [PathBuf; 2] {
        STATE_SLOTS.map(|name| self.dir.join(name))
    }

    pub fn legacy_state_path(&self) -> PathBuf {
        self.dir.join(LEGACY_STATE_FILE)
    }

    pub fn incarnation_path(&self) -> PathBuf {
        self.dir.join(INCARNATION_FILE)
    }

    /// Picks this boot's incarnation and makes it durable before returning, so that no
    /// two boots ever use the same one: the stored value + 1, or `wall_clock_ns` when the
    /// file is missing or unreadable.
    pub fn next_incarnation(
        &self,
        wall_clock_ns: u64,
    ) -> Result<(u64, IncarnationSource), StateError> {
        let path = self.incarnation_path();
        let stored = fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        let (next, source) = match stored {
            Some(old) => (old.saturating_add(1), IncarnationSource::Counter),
            None => (wall_clock_ns.max(1), IncarnationSource::WallClock),
        };
        atomic_write(&path, format!("{next}\n").as_bytes())
            .map_err(|source| StateError::Write { path, source })?;
        Ok((next, source))
    }

    /// The core's persisted state: the newest valid slot; else a state file of an older
    /// version; `Ok(None)` when there is nothing at all, an error when something is
    /// there but none of it is usable (the caller boots with `None` and warns loudly).
    pub fn load(&self) -> Result<Option<PersistentState>, LoadError> {
        let found = self.read_slots()?;
        let mut faults = Vec::new();
        let mut newest: Option<(u64, PersistentState, PathBuf)> = None;
        for (path, slot) in self.slot_paths().into_iter().zip(found) {
            match slot {
                Found::Missing => {}
                Found::Faulty { fault, .. } => faults.push((path, fault)),
                Found::Valid(seq, state) => {
                    if newest.as_ref().is_none_or(|(best, ..)| seq > *best) {
                        newest = Some((seq, state, path));
                    }
                }
            }
        }
        if let Some((_, state, path)) = newest {
            // Every save removes the old single file, so one newer than the newest slot
            // was written by an older version run since (a downgrade): its terms are
            // the later ones, and reusing a term is what must never happen.
            if modified(&self.legacy_state_path()) > modified(&path) {
                if let Ok(Some(legacy)) = self.load_legacy() {
                    return Ok(Some(legacy));
                }
            }
            return Ok(Some(state));
        }
        // No slot was ever completed: an upgrade from the single file (perhaps cut off
        // during its first save to the slots, which is why faults do not win here).
        match self.load_legacy() {
            Ok(Some(state)) => Ok(Some(state)),
            Ok(None) if faults.is_empty() => Ok(None),
            Ok(None) => Err(LoadError::Corrupt(faults)),
            Err(fault) => {
                faults.push((self.legacy_state_path(), fault));
                Err(LoadError::Corrupt(faults))
            }
        }
    }

    /// Makes `state` durable: one write over the slot that does not hold the newest
    /// state, then `fdatasync`. A crash mid-write tears only that slot; `load` then finds
    /// the other, i.e. the state before this save — and nothing was carried out on the
    /// strength of a save that had not returned.
    pub fn save(&mut self, state: &PersistentState) -> Result<(), StateError> {
        let mut body = serde_json::to_vec_pretty(state)?;
        body.push(b'\n');
        let SlotCursor { slot, seq } = self.next;
        let path = self.dir.join(STATE_SLOTS[slot]);
        write_slot(&self.dir, &path, seq, &body)
            .map_err(|source| StateError::Write { path, source })?;
        self.next = SlotCursor {
            slot: 1 - slot,
            seq: seq + 1,
        };
        // The slots now hold the newest state; an old single file would only mislead.
        if self.legacy_present {
            let _ = fs::remove_file(self.legacy_state_path());
            self.legacy_present = false;
        }
        Ok(())
    }

    fn read_slots(&self) -> Result<[Found; 2], LoadError> {
        let [a, b] = self.slot_paths();
        Ok([read_slot(&a)?, read_slot(&b)?])
    }

    fn load_legacy(&self) -> Result<Option<PersistentState>, SlotFault> {
        let path = self.legacy_state_path();
        match read_bounded(&path) {
            Ok(None) => Ok(None),
            Ok(Some(bytes)) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(SlotFault::Json),
            Err(ReadFault::TooLarge) => Err(SlotFault::TooLarge),
            // Unreadable is as good as absent for a file only kept for upgrades.
            Err(ReadFault::Io(_)) => Ok(None),
        }
    }
}

/// Next save: over the slot that does not hold the newest valid state, numbered above
/// every whole record either slot holds.
fn cursor_after(found: &[Found; 2]) -> SlotCursor {
    let newest_valid = found
        .iter()
        .enumerate()
        .filter_map(|(slot, f)| match f {
            Found::Valid(seq, _) => Some((*seq, slot)),
            _ => None,
        })
        .max();
    let highest = found
        .iter()
        .filter_map(|f| match f {
            Found::Valid(seq, _) | Found::Faulty { seq: Some(seq), .. } => Some(*seq),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    SlotCursor {
        slot: newest_valid.map_or(0, |(_, slot)| 1 - slot),
        seq: highest.saturating_add(1),
    }
}

/// When `path` was last written; `None` when it is missing (older than anything).
fn modified(path: &Path) -> Option<std::time::SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

enum ReadFault {
    Io(io::Error),
    TooLarge,
}

/// The file's bytes, `None` when it does not exist; refuses to read a huge file.
fn read_bounded(path: &Path) -> Result<Option<Vec<u8>>, ReadFault> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(ReadFault::Io(e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_STATE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadFault::Io)?;
    if bytes.len() as u64 > MAX_STATE_BYTES {
        return Err(ReadFault::TooLarge);
    }
    Ok(Some(bytes))
}

fn read_slot(path: &Path) -> Result<Found, LoadError> {
    let bytes = match read_bounded(path) {
        Ok(None) => return Ok(Found::Missing),
        Ok(Some(bytes)) => bytes,
        Err(ReadFault::TooLarge) => {
            return Ok(Found::Faulty {
                fault: SlotFault::TooLarge,
                seq: None,
            })
        }
        Err(ReadFault::Io(source)) => {
            return Err(LoadError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let record = match record::decode(&bytes) {
        Ok(record) => record,
        Err(defect) => {
            return Ok(Found::Faulty {
                fault: SlotFault::Record(defect),
                seq: None,
            })
        }
    };
    Ok(match serde_json::from_slice(record.body) {
        Ok(state) => Found::Valid(record.seq, state),
        Err(e) => Found::Faulty {
            fault: SlotFault::Json(e),
            seq: Some(record.seq),
        },
    })
}

/// Overwrites the slot at `path` in place and syncs its data. A slot seen for the first
/// time is created, and it and its directory entry are synced in full once; after that
/// the file only grows when the state does, so a save is one `pwrite` and one
/// `fdatasync` with no journal commit.
fn write_slot(dir: &Path, path: &Path, seq: u64, body: &[u8]) -> io::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    let old_len = file.metadata()?.len();
    let bytes = record::encode(seq, body, usize::try_from(old_len).unwrap_or(0));
    file.write_all_at(&bytes, 0)?;
    if old_len == 0 {
        file.sync_all()?;
        File::open(dir)?.sync_all()
    } else {
        file.sync_data()
    }
}
