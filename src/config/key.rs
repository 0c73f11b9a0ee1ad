//! The cluster's shared authentication key: 32 random bytes stored as 64 hex digits.
//!
//! Whoever holds the key can forge heartbeats and so steal resource groups; the file
//! must therefore be private. Reading refuses a key that is group or world readable
//! (like ssh does), and writing creates the file with mode 0600 from the first instant
//! rather than tightening it afterwards.

use super::error::KeyError;
use rand::TryRngCore;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

pub const KEY_LEN: usize = 32;

/// Why a key file could not be used (rendered as a config error on `cluster.authkey`).
#[derive(Debug, thiserror::Error)]
pub enum KeyReadError {
    #[error("cannot read key file {path}: {source} (create one with `tandemctl keygen {path}`)")]
    Unreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("key file {path} must hold exactly 64 hex digits (32 bytes), optionally followed by a newline; {detail} (make a new one with `tandemctl keygen --force {path}`)")]
    Format { path: String, detail: String },
    #[error("key file {path} has mode {mode:04o}: it must not be accessible to group or others; run `chmod 600 {path}`")]
    TooOpen { path: String, mode: u32 },
}

/// Reads and checks a key file.
pub fn read_key(path: &Path) -> Result<[u8; KEY_LEN], KeyReadError> {
    let shown = path.display().to_string();
    let unreadable = |source| KeyReadError::Unreadable {
        path: shown.clone(),
        source,
    };
    let mut file = File::open(path).map_err(unreadable)?;
    // Check the mode of the file we opened, not of whatever the path names later.
    let meta = file.metadata().map_err(unreadable)?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyReadError::TooOpen { path: shown, mode });
    }
    let mut text = String::new();
    // A key file is 65 bytes; read a little more so oversized files are reported.
    (&mut file)
        .take(256)
        .read_to_string(&mut text)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData {
                KeyReadError::Format {
                    path: shown.clone(),
                    detail: "the file is not text".into(),
                }
            } else {
                unreadable(e)
            }
        })?;
    parse_key(&text).map_err(|detail| KeyReadError::Format {
        path: shown,
        detail,
    })
}

fn parse_key(text: &str) -> Result<[u8; KEY_LEN], String> {
    let hex = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    if hex.len() != 2 * KEY_LEN {
        return Err(format!("found {} characters", hex.chars().count()));
    }
    let mut key = [0u8; KEY_LEN];
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        let digit = |b: u8| (b as char).to_digit(16);
        match (digit(pair[0]), digit(pair[1])) {
            (Some(hi), Some(lo)) => key[i] = (hi * 16 + lo) as u8,
            _ => return Err(format!("non-hex character near position {}", 2 * i + 1)),
        }
    }
    Ok(key)
}

fn render_key(key: &[u8; KEY_LEN]) -> String {
    let mut s: String = key.iter().map(|b| format!("{b:02x}")).collect();
    s.push('\n');
    s
}

/// A fresh key from the operating system's random generator.
pub fn try_generate_key() -> Result<[u8; KEY_LEN], KeyError> {
    let mut key = [0u8; KEY_LEN];
    rand::rngs::OsRng
        .try_fill_bytes(&mut key)
        .map_err(|e| KeyError::Rng(e.to_string()))?;
    Ok(key)
}

/// A fresh key from the operating system's random generator.
///
/// # Panics
/// If the OS generator fails (no `getrandom`, no `/dev/urandom`): there is no safe
/// fallback for key material. Use [`try_generate_key`] to handle that as an error.
pub fn generate_key() -> [u8; KEY_LEN] {
    match try_generate_key() {
        Ok(key) => key,
        Err(e) => panic!("{e}"),
    }
}

/// Writes `key` to `path` with mode 0600 from creation, and fsyncs it.
///
/// Without `force`, an existing file is never touched (`O_EXCL`). With `force`, the key
/// goes to a temporary file next to `path` which is then renamed over it, so a crash
/// leaves either the old key or the new one, never a truncated file. A missing parent
/// directory is created (mode 0755: it also holds the readable `tandem.yaml`).
pub fn write_key(path: &Path, key: &[u8; KEY_LEN], force: bool) -> Result<(), KeyError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| KeyError::Io { path, source }
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(io(dir))?;
    }
    let create = |target: &Path| {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(target)
    };
    if !force {
        let mut file = create(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyError::Exists(path.to_path_buf())
            } else {
                KeyError::Io {
                    path: path.to_path_buf(),
                    source: e,
                }
            }
        })?;
        file.write_all(render_key(key).as_bytes())
            .map_err(io(path))?;
        file.sync_all().map_err(io(path))?;
        return sync_parent(path);
    }
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = Path::new(&tmp_name);
    // A leftover from a crashed earlier run with the same pid is ours to replace.
    let _ = std::fs::remove_file(tmp);
    let result = (|| {
        let mut file = create(tmp).map_err(io(tmp))?;
        file.write_all(render_key(key).as_bytes())
            .map_err(io(tmp))?;
        file.sync_all().map_err(io(tmp))?;
        std::fs::rename(tmp, path).map_err(io(path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    result?;
    sync_parent(path)
}

/// Makes the directory entry durable too: a key that vanishes after a power cut would
/// lock the node out of its own cluster.
fn sync_parent(path: &Path) -> Result<(), KeyError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| KeyError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp_path(tag: &str) -> std::path::PathBuf {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        std::env::temp_dir().join(format!("tandem-key-{}-{tag}-{n}", std::process::id()))
    }

    #[test]
    fn round_trip_with_mode_0600() {
        let p = temp_path("rt");
        let key = generate_key();
        write_key(&p, &key, false).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_key(&p).unwrap(), key);
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn refuses_overwrite_without_force() {
        let p = temp_path("ow");
        let first = generate_key();
        write_key(&p, &first, false).unwrap();
        let second = generate_key();
        assert_ne!(first, second);
        assert!(matches!(
            write_key(&p, &second, false),
            Err(KeyError::Exists(_))
        ));
        assert_eq!(read_key(&p).unwrap(), first);
        write_key(&p, &second, true).unwrap();
        assert_eq!(read_key(&p).unwrap(), second);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn rejects_open_mode() {
        let p = temp_path("mode");
        write_key(&p, &generate_key(), false).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read_key(&p).unwrap_err();
        assert!(
            matches!(e, KeyReadError::TooOpen { mode: 0o644, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::remove_file(&p).unwrap();
    }

    #[test]
    fn rejects_bad_format() {
        assert!(parse_key(&"ab".repeat(32)).is_ok());
        assert!(parse_key(&format!("{}\n", "AB".repeat(32))).is_ok());
        assert!(parse_key(&"ab".repeat(31)).is_err());
        assert!(parse_key(&format!("{}zz", "ab".repeat(31))).is_err());
        assert!(parse_key(&format!("{}\n\n", "ab".repeat(32))).is_err());
    }

    #[test]
    fn missing_key_hints_keygen() {
        let p = temp_path("missing");
        let e = read_key(&p).unwrap_err().to_string();
        assert!(e.contains("tandemctl keygen"), "{e}");
        assert!(e.contains(&p.display().to_string()), "{e}");
    }
}
