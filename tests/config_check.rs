//! `tandemctl config check` and `tandemctl keygen`, run as the real binary on temp files.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXAMPLE: &str = include_str!("../etc/tandem.yaml");

/// A private temp directory, removed on drop (also when a test panics).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("tandemctl-test-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tandemctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tandemctl"))
        .args(args)
        .output()
        .expect("run tandemctl")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes the shipped example with its authkey moved into `dir`; returns (config, key).
fn example_in(dir: &TempDir, config_text: Option<String>) -> (PathBuf, PathBuf) {
    let key = dir.join("authkey");
    let cfg = dir.join("tandem.yaml");
    let body = config_text.unwrap_or_else(|| EXAMPLE.to_string());
    std::fs::write(
        &cfg,
        body.replace("/etc/tandem/authkey", &key.display().to_string()),
    )
    .expect("write config");
    (cfg, key)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

#[test]
fn example_passes_once_keygen_made_the_key() {
    let dir = TempDir::new("example");
    let (cfg, key) = example_in(&dir, None);

    // No key yet: a clear error naming the key path and how to make one.
    let out = tandemctl(&["config", "check", s(&cfg)]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cluster.authkey"), "{stderr}");
    assert!(
        stderr.contains(&format!("tandemctl keygen {}", key.display())),
        "{stderr}"
    );
    assert!(
        stderr.starts_with(&format!("{}:", cfg.display())),
        "{stderr}"
    );

    let out = tandemctl(&["keygen", s(&key)]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));

    let out = tandemctl(&["config", "check", s(&cfg)]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("cluster web"), "{stdout}");
    assert!(
        stdout.contains("alpha") && stdout.contains("www"),
        "{stdout}"
    );
}

#[test]
fn key_readable_by_others_is_refused() {
    let dir = TempDir::new("mode");
    let (cfg, key) = example_in(&dir, None);
    assert!(tandemctl(&["keygen", s(&key)]).status.success());
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");

    let out = tandemctl(&["config", "check", s(&cfg)]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cluster.authkey"), "{stderr}");
    assert!(stderr.contains("0644"), "{stderr}");
    assert!(
        stderr.contains(&format!("chmod 600 {}", key.display())),
        "{stderr}"
    );
}

#[test]
fn three_errors_are_all_listed() {
    let dir = TempDir::new("three");
    let broken = EXAMPLE
        .replacen("port: 5405", "port: banana", 1)
        .replacen("prefer: alpha", "prefer: delta", 1)
        .replacen("interval: 100ms", "interval: 2s", 1);
    let (cfg, key) = example_in(&dir, Some(broken.clone()));
    assert!(tandemctl(&["keygen", s(&key)]).status.success());

    let out = tandemctl(&["config", "check", s(&cfg)]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");

    let line_of = |needle: &str| {
        broken
            .lines()
            .position(|l| l.contains(needle))
            .expect("needle")
            + 1
    };
    let file = cfg.display().to_string();
    let port = format!("{file}:{}:9: heartbeat.port: ", line_of("port: banana"));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&port) && l.contains("u16")),
        "{stderr}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("groups[0].prefer") && l.contains("delta")),
        "{stderr}"
    );
    assert!(
        lines.iter().any(|l| l.contains("heartbeat.interval")
            && l.contains("2s")
            && l.contains("deadtime")),
        "{stderr}"
    );
}

#[test]
fn promotable_mistakes_are_listed_with_their_position() {
    let dir = TempDir::new("promotable");
    let extra = "      - ocf: { name: a, agent: \"heartbeat:Stateful\", promotable: true }\n      - ocf: { name: b, agent: \"heartbeat:Stateful\", promotable: true }\n";
    let broken = format!(
        "{}{extra}",
        EXAMPLE.replacen(
            "interface: eth0 }",
            "interface: eth0, promotable: true }",
            1
        )
    );
    let (cfg, key) = example_in(&dir, Some(broken.clone()));
    assert!(tandemctl(&["keygen", s(&key)]).status.success());

    let out = tandemctl(&["config", "check", s(&cfg)]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    let at = |needle: &str, nth: usize| {
        let (line, l) = broken
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains(needle))
            .nth(nth)
            .expect("needle");
        let column = l.find("promotable").expect("key") + 1;
        format!("{}:{}:{column}: ", cfg.display(), line + 1)
    };
    let vip = format!(
        "{}groups[0].resources[0].vip.promotable: only ocf and exec",
        at("- vip:", 0)
    );
    let second = format!(
        "{}groups[0].resources[3].ocf.promotable: a group can have only one promotable resource",
        at("- ocf:", 1)
    );
    for want in [vip, second] {
        assert!(
            stderr.lines().any(|l| l.starts_with(&want)),
            "{want}\n{stderr}"
        );
    }
    assert_eq!(stderr.lines().count(), 2, "{stderr}");
}

#[test]
fn missing_config_file_is_one_clear_line() {
    let dir = TempDir::new("nofile");
    let cfg = dir.join("nope.yaml");
    let out = tandemctl(&["config", "check", s(&cfg)]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("nope.yaml") && stderr.contains("No such file"),
        "{stderr}"
    );
}

#[test]
fn a_long_value_is_quoted_as_a_short_excerpt_with_its_length() {
    let dir = TempDir::new("long");
    // Under the size limit, so it is parsed: the top level is one long string.
    let long = dir.join("long.yaml");
    std::fs::write(&long, format!("\"{}\"\n", "a".repeat(900_000))).expect("write");
    let out = tandemctl(&["config", "check", s(&long)]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{}", stderr.len());
    assert_eq!(stderr.lines().count(), 1, "{}", stderr.len());
    assert!(stderr.len() < 400, "{} bytes of error", stderr.len());
    assert!(stderr.contains("(900000 bytes)"), "{stderr}");
    assert!(stderr.contains("expected a mapping"), "{stderr}");

    // A long unknown key and a long value of a known key: both bounded.
    let key = dir.join("authkey");
    let body = EXAMPLE
        .replace("/etc/tandem/authkey", &key.display().to_string())
        .replacen("port: 5405", &format!("port: {}", "7".repeat(50_000)), 1)
        + &format!("? {}\n: 1\n", "k".repeat(50_000));
    let cfg = dir.join("tandem.yaml");
    std::fs::write(&cfg, body).expect("write");
    assert!(tandemctl(&["keygen", s(&key)]).status.success());
    let out = tandemctl(&["config", "check", s(&cfg)]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{}", stderr.len());
    assert_eq!(stderr.lines().count(), 2, "{stderr}");
    assert!(stderr.len() < 1200, "{stderr}");
    assert!(stderr.contains("heartbeat.port"), "{stderr}");
    assert!(stderr.contains("(50000 bytes)"), "{stderr}");
    assert!(stderr.contains("unknown key `kkk"), "{stderr}");
}

#[test]
fn an_oversized_config_is_refused_with_its_size_and_the_limit_unread() {
    let dir = TempDir::new("huge");
    let cfg = dir.join("huge.yaml");
    // 27 MB of one string: refused by size, nothing of it on the terminal.
    std::fs::write(&cfg, format!("\"{}\"\n", "a".repeat(27_000_000))).expect("write");
    let out = tandemctl(&["config", "check", s(&cfg)]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{}", stderr.len());
    assert_eq!(stderr.lines().count(), 1, "{}", stderr.len());
    let limit = tandem::config::defaults::MAX_CONFIG_BYTES;
    assert!(stderr.contains("27000003 bytes"), "{stderr}");
    assert!(
        stderr.contains(&format!("limit is {limit} bytes")),
        "{stderr}"
    );
    assert!(!stderr.contains("aaaa"), "{stderr}");

    // A sparse 64 GiB file: refused at once, so it was never read.
    let sparse = dir.join("sparse.yaml");
    let f = std::fs::File::create(&sparse).expect("create");
    f.set_len(64 << 30).expect("sparse file");
    let started = std::time::Instant::now();
    let out = tandemctl(&["config", "check", s(&sparse)]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{} bytes", 64u64 << 30)),
        "{stderr}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));

    // Exactly at the limit is still read (and fails for what it says, not its size).
    let edge = dir.join("edge.yaml");
    let mut body = "# padding\n".repeat(limit as usize / 10);
    body.truncate(limit as usize - 2);
    body.push_str("\n\n");
    std::fs::write(&edge, body).expect("write");
    let out = tandemctl(&["config", "check", s(&edge)]);
    let (_, stderr) = text(&out);
    assert!(stderr.contains("no settings"), "{stderr}");
}

#[test]
fn keygen_writes_0600_and_refuses_overwrite_without_force() {
    let dir = TempDir::new("keygen");
    let key = dir.join("sub/authkey");

    let out = tandemctl(&["keygen", s(&key)]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let mode = std::fs::metadata(&key)
        .expect("key exists")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let first = std::fs::read_to_string(&key).expect("read key");
    assert_eq!(first.len(), 65);
    assert!(first.trim_end().chars().all(|c| c.is_ascii_hexdigit()));

    let out = tandemctl(&["keygen", s(&key)]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("already exists") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&key).expect("read key"),
        first,
        "untouched"
    );

    let out = tandemctl(&["keygen", "--force", s(&key)]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    let second = std::fs::read_to_string(&key).expect("read key");
    assert_ne!(first, second);
    let mode = std::fs::metadata(&key)
        .expect("key exists")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(tandemctl(&["config", "check"]).status.code(), Some(2));
    assert_eq!(tandemctl(&["frobnicate"]).status.code(), Some(2));
    assert_eq!(tandemctl(&["keygen", "--bogus"]).status.code(), Some(2));
}

/// The (key path, default cell) rows of docs/configuration.md's key tables. A `##`
/// heading names the section (`list` in it makes entries `section[]`), `` `agents[]`: ``
/// opens a sub-list of the section, and a bold `` **`vip`** `` a resource kind.
fn documented_defaults(doc: &str) -> Vec<(String, String)> {
    let mut section = String::new();
    let mut prefix = String::new();
    let mut rows = Vec::new();
    for line in doc.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            let name = heading.split_whitespace().next().unwrap_or_default();
            section = if heading.contains("list") {
                format!("{name}[]")
            } else {
                name.to_string()
            };
            prefix = section.clone();
        } else if let Some(sub) = line.strip_prefix('`').and_then(|l| l.strip_suffix("`:")) {
            prefix = format!("{section}.{sub}");
        } else if let Some(kind) = line
            .strip_prefix("**`")
            .and_then(|l| l.split_once("`**"))
            .map(|(kind, _)| kind)
        {
            prefix = format!("{section}.resources[].{kind}");
        } else if let Some(row) = line.strip_prefix("| `") {
            let cells: Vec<&str> = row.split(" | ").collect();
            let key = cells[0].trim_end_matches('`');
            rows.push((format!("{prefix}.{key}"), cells[1].trim().to_string()));
        }
    }
    rows
}

/// The same text, or the same duration spelled differently (`90s` and `1m30s`).
fn same_default(doc: &str, code: &str) -> bool {
    let duration = |cell: &str| {
        let inner = cell.strip_prefix('`')?.strip_suffix('`')?;
        tandem::config::parse_duration(inner).ok()
    };
    doc == code || duration(doc).is_some_and(|d| duration(code) == Some(d))
}

#[test]
fn the_docs_give_every_default_as_the_code_has_it() {
    let doc = include_str!("../docs/configuration.md");
    let documented = documented_defaults(doc);
    assert!(
        documented.len() > 60,
        "the tables were not found: {documented:?}"
    );
    let code: Vec<(String, String)> = tandem::config::defaults::documented()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let mut problems = Vec::new();
    for (key, default) in &code {
        match documented.iter().find(|(k, _)| k == key) {
            None => problems.push(format!("{key}: not in docs/configuration.md")),
            Some((_, d)) if !same_default(d, default) => problems.push(format!(
                "{key}: the docs say {d:?}, config::defaults says {default:?}"
            )),
            Some(_) => {}
        }
    }
    for (key, _) in &documented {
        if !code.iter().any(|(k, _)| k == key) {
            problems.push(format!("{key}: documented but not in config::defaults"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_docs_check_sees_a_changed_default() {
    // The check above must be able to fail: a changed cell is noticed.
    let doc = include_str!("../docs/configuration.md").replace("| `5405` |", "| `5406` |");
    let rows = documented_defaults(&doc);
    assert!(rows.contains(&("heartbeat.port".to_string(), "`5406`".to_string())));
    let code = tandem::config::defaults::documented();
    assert!(!code.contains(&("heartbeat.port", "`5406`".to_string())));
    assert!(same_default("`90s`", "`1m30s`"));
    assert!(!same_default("`90s`", "`1m`"));
}
