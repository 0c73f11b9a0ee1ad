//! The programs the lab runs (and asks others to run inside its namespaces) that come
//! from Debian packages outside the essential set, and which package each is in: a
//! missing one then fails with one line naming what to install (`LabError::ToolMissing`)
//! instead of "No such file or directory" from deep inside a test. `scripts/setup-test-host`
//! installs every package named here.

use std::io;
use std::path::Path;

use super::LabError;

/// Program name → Debian package, for the programs the lab, the demo, the benches and the
/// lab tests run by name. Programs from essential packages (sh, sleep, mount, dd, ...)
/// are on every Debian machine and not listed.
const PACKAGES: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("bridge", "iproute2"),
    ("ss", "iproute2"),
    ("nft", "nftables"),
    ("ping", "iputils-ping"),
    ("sysctl", "procps"),
    ("ps", "procps"),
    ("pgrep", "procps"),
    ("pkill", "procps"),
    ("kill", "procps"),
    ("keepalived", "keepalived"),
    ("nginx", "nginx-light"),
    ("ocf-tester", "resource-agents"),
];

/// Where resource-agents installs its OCF agents; anything under it is that package's.
const OCF_AGENTS: &str = "/usr/lib/ocf";

/// The Debian package that provides `program` (a name or a path), when the lab knows it.
pub fn package_of(program: &str) -> Option<&'static str> {
    let path = Path::new(program);
    if path.starts_with(OCF_AGENTS) {
        return Some("resource-agents");
    }
    let name = path.file_name()?.to_str()?;
    if name.starts_with("fence_") {
        return Some("fence-agents");
    }
    PACKAGES
        .iter()
        .find(|(p, _)| *p == name)
        .map(|(_, package)| *package)
}

/// The error for `program` failing to start: `ToolMissing` when it does not exist and its
/// package is known, otherwise the I/O error with `context`.
pub fn spawn_error(program: &str, context: String, source: io::Error) -> LabError {
    match package_of(program) {
        Some(package) if source.kind() == io::ErrorKind::NotFound => LabError::ToolMissing {
            tool: program.to_string(),
            package: package.to_string(),
        },
        _ => LabError::Io { context, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_are_found_by_name_path_and_family() {
        for (program, package) in [
            ("ping", Some("iputils-ping")),
            ("/usr/sbin/keepalived", Some("keepalived")),
            ("/usr/sbin/fence_dummy", Some("fence-agents")),
            (
                "/usr/lib/ocf/resource.d/heartbeat/IPaddr2",
                Some("resource-agents"),
            ),
            ("sh", None),
            ("", None),
        ] {
            assert_eq!(package_of(program), package, "{program:?}");
        }
    }

    #[test]
    fn a_missing_known_program_names_its_package_in_one_line() {
        let e = spawn_error(
            "ping",
            "running ping".into(),
            io::Error::from(io::ErrorKind::NotFound),
        );
        assert!(
            matches!(&e, LabError::ToolMissing { tool, package } if tool == "ping" && package == "iputils-ping"),
            "{e:?}"
        );
        assert_eq!(e.to_string().lines().count(), 1, "{e}");
        // Not found but unknown, or known but failing otherwise: the I/O error stays.
        let unknown = spawn_error(
            "frob",
            "running frob".into(),
            io::ErrorKind::NotFound.into(),
        );
        assert!(matches!(unknown, LabError::Io { .. }), "{unknown:?}");
        let denied = spawn_error(
            "ip",
            "running ip".into(),
            io::ErrorKind::PermissionDenied.into(),
        );
        assert!(matches!(denied, LabError::Io { .. }), "{denied:?}");
    }
}
