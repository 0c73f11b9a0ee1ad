//! What the integration tests share: the rules for tests that cannot run here (root,
//! packages: skipped with one line locally, failed under CI), then one module per kind
//! of test (`agents`: resources, operation contexts, namespaces and temp dirs of the
//! agents_* tests; `lab`: the netns lab's `tandemctl` and status helpers; `script`:
//! writing a script that is run next). A test file says `mod support;` and uses what it
//! needs, so each test binary compiles all of it: unused helpers are expected.
#![allow(dead_code)]

pub mod agents;
#[cfg(feature = "lab")]
pub mod lab;
pub mod script;

use std::io::{Read, Write};
use std::path::Path;

/// Under CI (`CI` set) a test that cannot run fails, since not running it would hide a
/// regression and .ci/run (scripts/setup-test-host) provides everything; elsewhere (a
/// developer's laptop) it is skipped with one line saying why. False: skip.
pub fn skip_or_fail(test: &str, why: &str) -> bool {
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {why} (under CI nothing may be skipped)");
    }
    // Straight to stderr, not `eprintln!`: the test harness swallows a passing test's
    // output, and a skip must be seen.
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
    false
}

/// Tests that create network namespaces or addresses need root, and `ip` to make them.
/// True: go ahead; false: skip (see `skip_or_fail`).
pub fn root_or_skip(test: &str) -> bool {
    if !nix::unistd::geteuid().is_root() {
        return skip_or_fail(test, "needs root (it creates network namespaces)");
    }
    require_tool(test, "ip", "iproute2")
}

pub fn have(path: &str) -> bool {
    Path::new(path).exists()
}

fn install_hint(package: &str) -> String {
    format!("apt-get install -y {package} (or scripts/setup-test-host)")
}

/// Is the packaged file at `path` here? True: go ahead; false: skip with one line naming
/// the package (under CI: fail).
pub fn require(test: &str, path: &str, package: &str) -> bool {
    have(path) || skip_or_fail(test, &format!("{path} missing: {}", install_hint(package)))
}

/// Is `program` on PATH (executable)? True: go ahead; false: skip with one line naming
/// `package` (under CI: fail).
pub fn require_tool(test: &str, program: &str, package: &str) -> bool {
    on_path(program)
        || skip_or_fail(
            test,
            &format!("`{program}` not found on PATH: {}", install_hint(package)),
        )
}

fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| {
        std::fs::metadata(dir.join(program))
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    })
}

/// Every member of a `.tar.gz` (what `tandemctl report` writes): its path in the
/// archive and its contents as text.
pub fn archive_members(path: &Path) -> Vec<(String, String)> {
    let file = std::fs::File::open(path).expect("archive");
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut members = Vec::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let name = entry.path().expect("path").display().to_string();
        let mut text = String::new();
        entry.read_to_string(&mut text).expect("member text");
        members.push((name, text));
    }
    members
}
