//! What the integration tests share: the root-required rule and the packages a test
//! needs, then one module per kind of test (`agents`: resources, operation contexts,
//! namespaces and temp dirs of the agents_* tests; `lab`: the netns lab's `tandemctl`
//! and status helpers). A test file says `mod support;` and uses what it needs, so each
//! test binary compiles all of it: unused helpers are expected.
#![allow(dead_code)]

pub mod agents;
#[cfg(feature = "lab")]
pub mod lab;

use std::path::Path;

/// Tests that create network namespaces or addresses need root. Without it a test is
/// skipped with a message (a developer's laptop), except under CI (`CI` set), where not
/// running it would hide a regression: there it fails. True: go ahead.
pub fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: must run as root under CI (it creates network namespaces)");
    }
    eprintln!("SKIP {test}: needs root (it creates network namespaces)");
    false
}

pub fn have(path: &str) -> bool {
    Path::new(path).exists()
}

/// Is the packaged program at `path` here? .ci/run installs every package these tests
/// use, so under CI a missing one fails the test; elsewhere the test says why it did
/// nothing instead of failing on something it cannot test.
pub fn require(path: &str, package: &str) -> bool {
    if have(path) {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{path} missing under CI: .ci/run must install {package}");
    }
    eprintln!("SKIP: {path} missing: apt-get install {package}");
    false
}
