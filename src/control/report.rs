//! `tandemctl report`: one `.tar.gz` of evidence from this node and the others, like
//! Pacemaker's `crm_report` or sosreport, for an incident ticket.
//!
//! The archive holds one directory, `tandem-report-NODE-STAMP/`, with: `README.txt`
//! (what is in it and what is not), `versions.txt`, `config.yaml` (secrets redacted by
//! `config::redact`), `status.json` and `status.txt`, `events.jsonl` and `events.txt`
//! (since `--since`, earlier incarnations included), `journal.txt` (`journalctl -u` the
//! daemon's unit) or `journal-unavailable.txt` saying why not, and `log.txt` when a
//! log file is named. What the daemon knows comes from the `report` control command;
//! when the daemon does not answer the archive says so and still carries the config
//! and the journal, which is when they are needed most.
//!
//! The other nodes' parts come through the cluster: each `tandemd` builds the same
//! archive of its own node when asked over the report channel ([`super::report_channel`]),
//! and [`gather_peers`] puts them under `peers/NODE/` (or `peers/NODE-unreachable.txt`
//! saying why not), like `crm_report` collects every node's part into one tarball.
//!
//! Gzip over tar because that is what support tooling and people expect to unpack;
//! `tar` and `flate2` are the mainstream pure-Rust crates for both.

use super::report_channel::{fetch_from, ChannelError, ChannelKeys, PeerRequest};
use super::{render, EventRecord, ReportBundle};
use crate::config::Config;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The systemd unit the package installs (`tandem@CLUSTER.service` for instances).
pub const UNIT: &str = "tandem.service";
/// How far back a report goes without `--since`.
pub const DEFAULT_SINCE: Duration = Duration::from_secs(24 * 3600);
/// Most of the journal or log file kept (the newest part).
pub const MAX_LOG_BYTES: usize = 8 * 1024 * 1024;
/// How long `journalctl` may take.
pub const JOURNAL_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything gathered for one archive.
#[derive(Debug)]
pub struct Gathered {
    pub node: String,
    /// Unix seconds: the start of the window.
    pub since: u64,
    /// The daemon's part, or why there is none.
    pub daemon: Result<ReportBundle, String>,
    /// The config redacted by `tandemctl` itself when the daemon did not answer.
    pub local_config: Option<Result<String, String>>,
    /// The systemd unit whose journal was read.
    pub unit: String,
    pub journal: Result<String, String>,
    /// A log file's path and its (newest) text, or why it could not be read.
    pub log: Option<(String, Result<String, String>)>,
}

/// Parses `--since`: `30m`, `2h`, `1d` (that long ago), `@UNIX` (seconds), or a local
/// `YYYY-MM-DD[ HH:MM[:SS]]` (also with `T`). Returns Unix seconds.
pub fn parse_since(text: &str, now: u64) -> Result<u64, String> {
    let t = text.trim();
    if let Some(unix) = t.strip_prefix('@') {
        return unix
            .parse()
            .map_err(|_| format!("--since {t:?}: expected @ and Unix seconds"));
    }
    if let Some(ago) = relative(t) {
        return Ok(now.saturating_sub(ago));
    }
    local_time(t).ok_or_else(|| {
        format!("--since {t:?}: expected 30m, 2h, 1d, @UNIX-SECONDS or YYYY-MM-DD [HH:MM[:SS]]")
    })
}

/// `90s`, `30m`, `2h`, `1d` as seconds.
fn relative(t: &str) -> Option<u64> {
    let unit = t.chars().last()?;
    let n: u64 = t[..t.len() - unit.len_utf8()].parse().ok()?;
    let scale = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// A local date and time as Unix seconds (the machine's time zone, like journalctl).
fn local_time(t: &str) -> Option<u64> {
    let (date, time) = match t.split_once([' ', 'T']) {
        Some((d, tm)) => (d, tm),
        None => (t, "00:00:00"),
    };
    let d: Vec<i32> = date
        .split('-')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let mut hms: Vec<i32> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if d.len() != 3 || !(2..=3).contains(&hms.len()) {
        return None;
    }
    hms.resize(3, 0);
    // SAFETY: mktime reads and normalizes the zeroed struct we own.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = d[0] - 1900;
    tm.tm_mon = d[1] - 1;
    tm.tm_mday = d[2];
    tm.tm_hour = hms[0];
    tm.tm_min = hms[1];
    tm.tm_sec = hms[2];
    tm.tm_isdst = -1;
    let secs = unsafe { libc::mktime(&mut tm) };
    u64::try_from(secs).ok()
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The tandem unit this process runs in, from `/proc/self/cgroup`: `tandem.service`,
/// `tandem@site-a.service`. `None` outside one (a shell, a test, another service's
/// child), where [`UNIT`] is the best guess.
pub fn own_unit() -> Option<String> {
    unit_of_cgroup(&std::fs::read_to_string("/proc/self/cgroup").ok()?)
}

/// The innermost `tandem*.service` component of a `/proc/PID/cgroup` text (v2's
/// `0::/system.slice/...` or v1's `N:controllers:/...` lines).
fn unit_of_cgroup(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| line.splitn(3, ':').nth(2))
        .flat_map(|path| path.rsplit('/'))
        .find(|c| c.starts_with("tandem") && c.ends_with(".service"))
        .map(str::to_string)
}

/// `journalctl -u UNIT --since @SINCE`: its text, or why there is none (no
/// journalctl, no journal, no permission). Never fails the report.
pub fn journal(unit: &str, since: u64) -> Result<String, String> {
    let child = Command::new("journalctl")
        .args(["-u", unit, "--no-pager", "-o", "short-iso-precise"])
        .arg(format!("--since=@{since}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run journalctl: {e} (no systemd journal on this machine?)"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(JOURNAL_TIMEOUT) {
        Ok(Ok(out)) => out,
        Ok(Err(e)) => return Err(format!("journalctl failed: {e}")),
        Err(_) => {
            return Err(format!(
                "journalctl did not finish within {}s",
                JOURNAL_TIMEOUT.as_secs()
            ))
        }
    };
    let text = newest(&String::from_utf8_lossy(&out.stdout));
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "journalctl failed ({}): {}",
            out.status,
            err.trim()
        ));
    }
    Ok(text)
}

/// The newest part of `path`, at most [`MAX_LOG_BYTES`].
pub fn log_file(path: &Path) -> Result<String, String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(MAX_LOG_BYTES as u64);
    f.seek(SeekFrom::Start(start))
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    f.take(MAX_LOG_BYTES as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The last [`MAX_LOG_BYTES`] of `text`, cut at a line start.
fn newest(text: &str) -> String {
    if text.len() <= MAX_LOG_BYTES {
        return text.to_string();
    }
    let mut cut = text.len() - MAX_LOG_BYTES;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    let tail = &text[cut..];
    tail.split_once('\n')
        .map_or(tail, |(_, rest)| rest)
        .to_string()
}

/// The archive's directory name: `tandem-report-NODE-UNIXSECONDS`.
pub fn dir_name(node: &str, now: u64) -> String {
    format!("tandem-report-{}-{now}", safe_name(node))
}

/// `name` with everything but ASCII letters, digits, `-` and `_` replaced: usable as
/// one path component whatever a config or a peer calls itself.
fn safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The archive's members: name inside the directory, and contents.
pub fn members(g: &Gathered) -> Vec<(String, String)> {
    let mut files = vec![("README.txt".to_string(), readme(g))];
    files.push(("versions.txt".into(), versions(g)));
    match &g.daemon {
        Ok(b) => {
            match (&b.config, &b.config_note) {
                (Some(text), _) => files.push(("config.yaml".into(), text.clone())),
                (None, note) => files.push((
                    "config-missing.txt".into(),
                    format!("{}\n", note.as_deref().unwrap_or("no config")),
                )),
            }
            let status = serde_json::to_string_pretty(&b.status).unwrap_or_default();
            files.push(("status.json".into(), status + "\n"));
            files.push(("status.txt".into(), render::status_text(&b.status)));
            let events: Vec<&EventRecord> = b
                .events
                .iter()
                .filter(|e| e.unix_ms / 1000 >= g.since)
                .collect();
            let jsonl: String = events
                .iter()
                .filter_map(|e| serde_json::to_string(e).ok())
                .map(|l| l + "\n")
                .collect();
            files.push(("events.jsonl".into(), jsonl));
            let owned: Vec<EventRecord> = events.into_iter().cloned().collect();
            files.push(("events.txt".into(), render::events_text(&owned)));
        }
        Err(why) => {
            files.push((
                "daemon-unreachable.txt".into(),
                format!("tandemd did not answer: {why}\nNo status or events from the daemon.\n"),
            ));
            match &g.local_config {
                Some(Ok(text)) => files.push(("config.yaml".into(), text.clone())),
                Some(Err(why)) => files.push(("config-missing.txt".into(), format!("{why}\n"))),
                None => {}
            }
        }
    }
    match &g.journal {
        Ok(text) => files.push(("journal.txt".into(), text.clone())),
        Err(why) => files.push(("journal-unavailable.txt".into(), format!("{why}\n"))),
    }
    if let Some((path, log)) = &g.log {
        match log {
            Ok(text) => files.push(("log.txt".into(), text.clone())),
            Err(why) => files.push(("log-unavailable.txt".into(), format!("{path}: {why}\n"))),
        }
    }
    files
}

fn readme(g: &Gathered) -> String {
    format!(
        "tandem report of node {node}, written by tandemctl {version}.\n\
         Window: since {since} (Unix seconds; events and journal).\n\n\
         config.yaml      the config file, secrets redacted: values of keys naming a secret\n\
         \x20                (password, passwd, secret, token, key, ...) and every fence agent\n\
         \x20                param read <redacted>; key files and params files are never read.\n\
         status.*         `tandemctl status` as JSON and as text, when the daemon answered\n\
         events.*         the daemon's events since the window start, earlier incarnations\n\
         \x20                included (they survive restarts)\n\
         journal.txt      journalctl -u {unit} for the window (or journal-unavailable.txt)\n\
         log.txt          the log file named with --log, newest 8 MiB\n\n\
         peers/NODE/      the same files from every other node that answered through the\n\
         \x20                cluster, and peers/NODE-unreachable.txt saying why a node did not\n\
         \x20                (only in the archive of the node where `tandemctl report` ran,\n\
         \x20                and not with --this-node)\n",
        node = g.node,
        version = env!("CARGO_PKG_VERSION"),
        since = g.since,
        unit = g.unit,
    )
}

fn versions(g: &Gathered) -> String {
    let mut out = format!("tandemctl {}\n", env!("CARGO_PKG_VERSION"));
    match &g.daemon {
        Ok(b) => out.push_str(&format!("tandemd {}\n", b.version)),
        Err(_) => out.push_str("tandemd (did not answer)\n"),
    }
    if let Ok(kernel) = std::fs::read_to_string("/proc/version") {
        out.push_str(&kernel);
    }
    if let Ok(os) = std::fs::read_to_string("/etc/os-release") {
        out.push_str(&os);
    }
    out
}

/// Writes the members as `dir/NAME` into a gzip-compressed tar on `out`.
pub fn write_archive<W: Write>(
    out: W,
    dir: &str,
    files: &[(String, String)],
) -> std::io::Result<W> {
    let gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mtime = unix_now();
    for (name, text) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, format!("{dir}/{name}"), text.as_bytes())?;
    }
    tar.into_inner()?.finish()
}

/// Most files kept from one node's archive.
pub const MAX_PEER_FILES: usize = 64;
/// Most bytes unpacked from one node's archive (its journal is at most 8 MiB).
pub const MAX_PEER_UNPACKED: u64 = 64 * 1024 * 1024;

/// Another node's part of the report: its archive as it sent it, or why there is none.
#[derive(Debug)]
pub struct PeerPart {
    pub node: String,
    pub archive: Result<Vec<u8>, ChannelError>,
}

/// Why another node's files are missing from the archive.
#[derive(Debug, thiserror::Error)]
pub enum PeerGap<'a> {
    #[error("{0}")]
    Fetch(&'a ChannelError),
    #[error("its archive is unreadable: {0}")]
    Unreadable(std::io::Error),
}

/// Asks every node of `config` but `me` for its archive over the report channel, all
/// at once (each fetch bounded by the channel's timeouts), in the config's order.
pub fn gather_peers(config: &Config, me: &str, since: u64) -> Vec<PeerPart> {
    let keys = ChannelKeys::new(&config.keys);
    let port = config.heartbeat.port;
    std::thread::scope(|scope| {
        let fetches: Vec<_> = config
            .nodes
            .iter()
            .filter(|n| n.name != me)
            .map(|n| {
                let addresses: Vec<SocketAddr> = n
                    .addresses
                    .iter()
                    .flatten()
                    .map(|ip| SocketAddr::new(*ip, port))
                    .collect();
                let request = PeerRequest {
                    from: me.to_string(),
                    to: n.name.clone(),
                    since,
                };
                let keys = &keys;
                let fetch = scope.spawn(move || fetch_from(&addresses, keys, &request));
                (n.name.clone(), fetch)
            })
            .collect();
        fetches
            .into_iter()
            .map(|(node, fetch)| PeerPart {
                node,
                archive: fetch.join().unwrap_or_else(|_| {
                    Err(ChannelError::Io(std::io::Error::other(
                        "the fetch failed unexpectedly",
                    )))
                }),
            })
            .collect()
    })
}

/// The members for the other nodes: `peers/NODE/FILE` for each file of an archive that
/// arrived, `peers/NODE-unreachable.txt` with the reason for one that did not.
pub fn peer_members(peers: &[PeerPart]) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for peer in peers {
        let dir = safe_name(&peer.node);
        match peer_files(peer) {
            Ok(entries) => files.extend(
                entries
                    .into_iter()
                    .map(|(name, text)| (format!("peers/{dir}/{name}"), text)),
            ),
            Err(gap) => files.push((
                format!("peers/{dir}-unreachable.txt"),
                gap_note(&peer.node, &gap),
            )),
        }
    }
    files
}

/// The text of `peers/NODE-unreachable.txt`: which node, and why it gave nothing.
pub fn gap_note(node: &str, gap: &dyn std::fmt::Display) -> String {
    format!("no report from node {node}: {gap}\n")
}

/// One node's files by their own names, or why there are none.
pub fn peer_files(peer: &PeerPart) -> Result<Vec<(String, String)>, PeerGap<'_>> {
    match &peer.archive {
        Ok(bytes) => unpack(bytes).map_err(PeerGap::Unreadable),
        Err(e) => Err(PeerGap::Fetch(e)),
    }
}

/// The files of a node's archive by their own names (its top directory dropped),
/// bounded in count and size; a name that is not a plain file name is skipped.
fn unpack(archive: &[u8]) -> std::io::Result<Vec<(String, String)>> {
    let gz = flate2::read::GzDecoder::new(archive).take(MAX_PEER_UNPACKED);
    let mut tar = tar::Archive::new(gz);
    let mut files = Vec::new();
    for entry in tar.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string);
        let plain = name.filter(|n| {
            n.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                && !n.starts_with('.')
        });
        let Some(name) = plain else { continue };
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        files.push((name, String::from_utf8_lossy(&bytes).into_owned()));
        if files.len() == MAX_PEER_FILES {
            break;
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_durations_unix_seconds_and_dates() {
        assert_eq!(parse_since("30m", 10_000), Ok(8_200));
        assert_eq!(parse_since("2h", 100_000), Ok(92_800));
        assert_eq!(parse_since("1d", 100_000), Ok(13_600));
        assert_eq!(parse_since("@1700000000", 0), Ok(1_700_000_000));
        let day = parse_since("2026-01-02", 0).expect("date");
        let later = parse_since("2026-01-02 03:04:05", 0).expect("date and time");
        assert_eq!(later - day, 3 * 3600 + 4 * 60 + 5);
        assert!(parse_since("yesterday", 0).is_err());
        assert!(parse_since("5x", 0).is_err());
    }

    #[test]
    fn an_unreachable_daemon_still_gives_config_and_journal_and_says_why() {
        let g = Gathered {
            node: "al/pha".into(),
            since: 0,
            daemon: Err("connection refused".into()),
            local_config: Some(Ok("cluster: {}\n".into())),
            unit: UNIT.into(),
            journal: Err("cannot run journalctl: not found".into()),
            log: None,
        };
        let names: Vec<String> = members(&g).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "README.txt",
                "versions.txt",
                "daemon-unreachable.txt",
                "config.yaml",
                "journal-unavailable.txt"
            ]
        );
        assert_eq!(dir_name("al/pha", 5), "tandem-report-al_pha-5");
        let mut bytes = write_archive(Vec::new(), "d", &members(&g)).expect("archive");
        assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic");
        bytes.clear();
    }

    fn unreachable() -> ChannelError {
        ChannelError::Unreachable("192.0.2.3:5405: refused".into())
    }

    #[test]
    fn peer_parts_land_under_their_node_and_a_missing_one_says_why() {
        let files = [
            ("README.txt".to_string(), "hello\n".to_string()),
            ("status.json".into(), "{}\n".into()),
            (".hidden".into(), "x".into()),
            ("weird name!.txt".into(), "x".into()),
        ];
        let archive = write_archive(Vec::new(), "tandem-report-n2-9", &files).expect("archive");
        let peers = [
            PeerPart {
                node: "n2".into(),
                archive: Ok(archive),
            },
            PeerPart {
                node: "n/3".into(),
                archive: Err(unreachable()),
            },
            PeerPart {
                node: "n4".into(),
                archive: Ok(b"not a gzip".to_vec()),
            },
        ];
        let members = peer_members(&peers);
        let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "peers/n2/README.txt",
                "peers/n2/status.json",
                "peers/n_3-unreachable.txt",
                "peers/n4-unreachable.txt"
            ]
        );
        assert_eq!(members[0].1, "hello\n");
        assert_eq!(members[2].1, gap_note("n/3", &unreachable()));
        let gap = peer_files(&peers[2]).expect_err("garbage is no archive");
        assert!(matches!(gap, PeerGap::Unreadable(_)), "{gap:?}");
        assert_eq!(members[3].1, gap_note("n4", &gap));
    }

    #[test]
    fn the_unit_comes_from_the_cgroup_and_only_a_tandem_unit_counts() {
        let v2 = "0::/system.slice/system-tandem.slice/tandem@site-a.service\n";
        assert_eq!(unit_of_cgroup(v2).as_deref(), Some("tandem@site-a.service"));
        let plain = "0::/system.slice/tandem.service\n";
        assert_eq!(unit_of_cgroup(plain).as_deref(), Some("tandem.service"));
        let v1 = "12:pids:/\n1:name=systemd:/system.slice/tandem.service\n";
        assert_eq!(unit_of_cgroup(v1).as_deref(), Some("tandem.service"));
        // Started by hand from an ssh session or by another service: not ours to read.
        assert_eq!(unit_of_cgroup("0::/system.slice/ssh.service\n"), None);
        assert_eq!(
            unit_of_cgroup("0::/user.slice/user-0.slice/session-3.scope\n"),
            None
        );
    }
}
