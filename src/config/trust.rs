//! Who could change or read a file: the ownership and mode rules behind the checks on
//! scripts tandem runs as root, on secret files, and on the config file itself.
//!
//! A *trusted owner* is root, or the user tandem runs as (an unprivileged test daemon
//! runs its own scripts; it gains nothing it did not have). A script is safe when it
//! and every directory above it belong to a trusted owner and no one else can write
//! them. The one exception is a directory with the sticky bit owned by root, like
//! `/tmp`: anyone may add entries there, but only an entry's owner (or root) may
//! rename or delete it, so a root-owned script inside cannot be replaced by others.

use nix::unistd::{Gid, Group, Uid};
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The group whose members may run read-only `tandemctl` commands; created by the
/// package. A file readable by this group is readable by tandem's operators only.
pub const TANDEM_GROUP: &str = "tandem";

const STICKY: u32 = 0o1000;

/// Root, or the user this process runs as.
pub fn trusted_owner(uid: u32) -> bool {
    uid == 0 || uid == Uid::effective().as_raw()
}

/// The gid of the `tandem` group, if this machine has one.
pub fn tandem_gid() -> Option<u32> {
    Group::from_name(TANDEM_GROUP)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
}

/// Groups that may read private files: root's, and `tandem`.
pub fn trusted_group(gid: u32) -> bool {
    gid == 0 || Some(gid) == tandem_gid()
}

fn group_name(gid: u32) -> String {
    Group::from_gid(Gid::from_raw(gid))
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |g| g.name)
}

/// Why someone other than a trusted owner could replace or modify `path`, or `None`
/// when no one can. Components that do not exist are skipped (a missing script is
/// reported when it is run); a symlink is judged by its target, and the directories
/// holding the link by the walk over the path as written.
pub fn script_risk(path: &Path) -> Option<String> {
    let resolved = std::fs::canonicalize(path).ok();
    for candidate in std::iter::once(path).chain(resolved.as_deref()) {
        if let Some(risk) = chain_risk(candidate) {
            return Some(risk);
        }
    }
    None
}

fn chain_risk(path: &Path) -> Option<String> {
    let chain: Vec<PathBuf> = path.ancestors().map(Path::to_path_buf).collect();
    // From `/` down, so the first problem named is the highest one.
    for (depth, p) in chain.iter().rev().enumerate() {
        let Ok(meta) = std::fs::symlink_metadata(p) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            // Its mode means nothing; whoever owns it may replace it in a sticky dir.
            if !trusted_owner(meta.uid()) {
                return Some(format!(
                    "{} is a symlink owned by another user (uid {})",
                    p.display(),
                    meta.uid()
                ));
            }
            continue;
        }
        let is_target = depth + 1 == chain.len();
        if let Some(why) = entry_risk(&meta, is_target) {
            return Some(format!("{} {why}", p.display()));
        }
    }
    None
}

fn entry_risk(meta: &Metadata, is_target: bool) -> Option<String> {
    let mode = meta.mode() & 0o7777;
    let described = || {
        format!(
            "(mode {mode:04o}, owner uid {}, group {})",
            meta.uid(),
            group_name(meta.gid())
        )
    };
    if !trusted_owner(meta.uid()) {
        return Some(format!("is owned by another user {}", described()));
    }
    let sticky_root_dir = !is_target && meta.is_dir() && mode & STICKY != 0 && meta.uid() == 0;
    if sticky_root_dir {
        return None;
    }
    if mode & 0o002 != 0 {
        return Some(format!("is writable by everyone {}", described()));
    }
    if mode & 0o020 != 0 && meta.gid() != 0 {
        return Some(format!("is writable by its group {}", described()));
    }
    None
}

/// Why a file holding secrets is not private enough. `Display` is the phrase the
/// errors use after the file's name ("... is readable by every user (mode 0644)").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretFileRisk {
    OwnedByOther { uid: u32, mode: u32 },
    WritableByOthers { mode: u32 },
    ReadableByEveryone { mode: u32 },
    ReadableByGroup { group: String, mode: u32 },
}

impl std::fmt::Display for SecretFileRisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretFileRisk::OwnedByOther { uid, mode } => {
                write!(f, "is owned by uid {uid}, not root (mode {mode:04o})")
            }
            SecretFileRisk::WritableByOthers { mode } => {
                write!(f, "is writable by others (mode {mode:04o})")
            }
            SecretFileRisk::ReadableByEveryone { mode } => {
                write!(f, "is readable by every user (mode {mode:04o})")
            }
            SecretFileRisk::ReadableByGroup { group, mode } => write!(
                f,
                "is readable by group {group} (mode {mode:04o}); only root's group and `{TANDEM_GROUP}` may read it"
            ),
        }
    }
}

/// Who besides the owner can read a file holding secrets, or `None` when no one: any
/// user (`o+r`), or a group other than root's and `tandem`.
pub fn read_exposure(meta: &Metadata) -> Option<SecretFileRisk> {
    let mode = meta.mode() & 0o7777;
    if mode & 0o004 != 0 {
        return Some(SecretFileRisk::ReadableByEveryone { mode });
    }
    if mode & 0o040 != 0 && !trusted_group(meta.gid()) {
        return Some(SecretFileRisk::ReadableByGroup {
            group: group_name(meta.gid()),
            mode,
        });
    }
    None
}

/// Why a secrets file (fence agent `params_file`) is not private enough: it must belong
/// to a trusted owner, be writable by no one else and readable by no other group
/// than root's or `tandem` (modes 0600 or 0640).
pub fn secret_file_risk(meta: &Metadata) -> Option<SecretFileRisk> {
    let mode = meta.mode() & 0o7777;
    if !trusted_owner(meta.uid()) {
        return Some(SecretFileRisk::OwnedByOther {
            uid: meta.uid(),
            mode,
        });
    }
    if mode & 0o022 != 0 {
        return Some(SecretFileRisk::WritableByOthers { mode });
    }
    read_exposure(meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn temp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("tandem-trust-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("dir");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        p
    }

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    /// A shell script `name` in `dir` with `mode`.
    fn write_script(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, "#!/bin/sh\n").expect("write");
        chmod(&path, mode);
        path
    }

    #[test]
    fn a_private_script_under_tmp_is_safe_and_loosening_it_is_not() {
        let dir = temp("script");
        let script = write_script(&dir, "start.sh", 0o755);
        assert_eq!(script_risk(&script), None, "/tmp is sticky and root's");

        chmod(&script, 0o757);
        let risk = script_risk(&script).expect("world-writable script");
        assert!(risk.contains("start.sh is writable by everyone"), "{risk}");

        chmod(&script, 0o755);
        chmod(&dir, 0o777);
        let risk = script_risk(&script).expect("world-writable directory");
        assert!(
            risk.starts_with(&format!("{} is writable", dir.display())),
            "{risk}"
        );

        // The same directory with the sticky bit is still unsafe: it is not root's
        // unless the test runs as root, and sticky only protects entries in root's dirs.
        chmod(&dir, 0o1777);
        let as_root = Uid::effective().is_root();
        assert_eq!(script_risk(&script).is_none(), as_root);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_symlinked_script_is_judged_by_its_target() {
        let dir = temp("link");
        let target = write_script(&dir, "real.sh", 0o777);
        let link = dir.join("link.sh");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let risk = script_risk(&link).expect("target is world-writable");
        assert!(risk.contains("real.sh"), "{risk}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_paths_are_not_a_risk() {
        assert_eq!(script_risk(Path::new("/nonexistent/tandem/x.sh")), None);
    }

    #[test]
    fn secret_files_must_be_0600_or_group_tandem() {
        let dir = temp("secret");
        let f = dir.join("params");
        std::fs::write(&f, "password=x\n").expect("write");
        let meta = |mode| {
            chmod(&f, mode);
            std::fs::metadata(&f).expect("meta")
        };
        assert_eq!(secret_file_risk(&meta(0o600)), None);
        assert_eq!(
            secret_file_risk(&meta(0o644)),
            Some(SecretFileRisk::ReadableByEveryone { mode: 0o644 })
        );
        assert_eq!(
            secret_file_risk(&meta(0o620)),
            Some(SecretFileRisk::WritableByOthers { mode: 0o620 })
        );
        // 0640 is fine when the file's group is root's (files made by root here).
        let group_ok = trusted_group(std::fs::metadata(&f).expect("meta").gid());
        assert_eq!(secret_file_risk(&meta(0o640)).is_none(), group_ok);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
