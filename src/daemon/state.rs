//! What the daemon keeps on disk in `--state-dir`: the incarnation counter and the
//! core's persistent state. Both are written atomically (temp file, fsync, rename, fsync
//! of the directory), so a crash at any moment leaves either the old or the new content,
//! never a torn file.

use crate::core::PersistentState;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "state.json";
pub const INCARNATION_FILE: &str = "incarnation";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create state directory {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot encode state: {0}")]
    Encode(#[from] serde_json::Error),
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

/// The state directory of one node.
#[derive(Clone, Debug)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// Creates the directory (mode 0700) if missing.
    pub fn open(dir: &Path) -> Result<StateDir, StateError> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| StateError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
        Ok(StateDir {
            dir: dir.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
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

    /// The core's persisted state: `Ok(None)` when missing, `Err(reason)` when present
    /// but unreadable (the caller boots with `None` and warns loudly either way).
    pub fn load(&self) -> Result<Option<PersistentState>, String> {
        let path = self.state_path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("{} is corrupt: {e}", path.display()))
    }

    /// Makes `state` durable (see [`atomic_write`]).
    pub fn save(&self, state: &PersistentState) -> Result<(), StateError> {
        let mut bytes = serde_json::to_vec_pretty(state)?;
        bytes.push(b'\n');
        let path = self.state_path();
        atomic_write(&path, &bytes).map_err(|source| StateError::Write { path, source })
    }
}
