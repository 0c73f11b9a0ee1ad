//! The control protocol between `tandemd` and `tandemctl`: JSON lines over a Unix socket.
//!
//! One request per line, one response line per request. The types here are shared by
//! both sides so they cannot drift apart; field names are a public interface (scripts
//! read `tandemctl status --json`). The server side lives in the daemon
//! (`daemon::control`): it only parses, authorizes and forwards commands into a channel,
//! and the daemon's core thread answers them, so a slow or hostile client can never stall
//! heartbeats.

pub mod client;
pub mod render;
pub mod report;
pub mod report_channel;

use crate::core::status::ClusterStatus;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The protocol version this build speaks; requests carrying another are refused.
pub const PROTOCOL_VERSION: u32 = 1;
/// A request line longer than this is refused (and the connection closed) without
/// being parsed, so a client cannot make the daemon buffer without bound.
pub const MAX_REQUEST_LINE: usize = 64 * 1024;
/// Responses can be larger (big clusters, event lists), but still bounded on the client.
pub const MAX_RESPONSE_LINE: usize = 16 * 1024 * 1024;
/// Where `tandemd` listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/tandem/tandemd.sock";
/// Members of this group may use the read-only commands.
pub const READ_ONLY_GROUP: &str = "tandem";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub version: u32,
    #[serde(flatten)]
    pub command: Command,
}

impl Request {
    pub fn new(command: Command) -> Request {
        Request {
            version: PROTOCOL_VERSION,
            command,
        }
    }
}

/// Every command, tagged by `cmd`: `{"version":1,"cmd":"status"}`,
/// `{"version":1,"cmd":"move","group":"www","to":"beta"}`.
///
/// Nodes and groups are named as in the config; the daemon resolves the names and
/// answers an unknown one with the list of known names. `is_read_only` is exhaustive so
/// a new command cannot forget to say who may run it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Command {
    /// The cluster as this node sees it.
    Status,
    /// The most recent events (newest last).
    Events,
    /// The most recent events, then every new one as it happens, one JSON line each,
    /// until the client closes the connection.
    EventsFollow,
    /// Put a node in standby (`on`) or bring it back online.
    Standby { node: String, on: bool },
    /// Move a group to `to`, or to the best other node; the preference left behind
    /// lapses after `lifetime_ms` if given.
    Move {
        group: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lifetime_ms: Option<u64>,
    },
    /// Keep `node` from owning `group` (`on`), for `lifetime_ms` if given, or lift that.
    Ban {
        group: String,
        node: String,
        on: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lifetime_ms: Option<u64>,
    },
    /// Forget the location a move left behind.
    ClearMove { group: String },
    /// Reset fail counts and failed state of a group (`resource` is checked, but the
    /// whole group is cleaned).
    Cleanup {
        group: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resource: Option<String>,
    },
    /// Maintenance of the whole cluster (`group` absent) or of one group.
    Maintenance {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
        on: bool,
    },
    /// Fence a node by hand.
    Fence { node: String },
    /// Read the config file again and apply it, or refuse with every error.
    Reload,
    /// What `tandemctl report` archives from this daemon: the config with secrets
    /// redacted, status, events, version ([`ReportBundle`]). Root only: the journal
    /// and config it goes with are not for every reader.
    Report,
}

impl Command {
    /// Names accepted in `cmd`, for error messages.
    pub const NAMES: &'static [&'static str] = &[
        "status",
        "events",
        "events-follow",
        "standby",
        "move",
        "ban",
        "clear-move",
        "cleanup",
        "maintenance",
        "fence",
        "reload",
        "report",
    ];

    /// Whether members of the `tandem` group may run it (root may run everything).
    pub fn is_read_only(&self) -> bool {
        self.entry().1
    }

    pub fn name(&self) -> &'static str {
        self.entry().0
    }

    /// The command's `cmd` name and whether it is read-only: one exhaustive table, so a
    /// new command cannot forget either.
    fn entry(&self) -> (&'static str, bool) {
        match self {
            Command::Status => ("status", true),
            Command::Events => ("events", true),
            Command::EventsFollow => ("events-follow", true),
            Command::Standby { .. } => ("standby", false),
            Command::Move { .. } => ("move", false),
            Command::Ban { .. } => ("ban", false),
            Command::ClearMove { .. } => ("clear-move", false),
            Command::Cleanup { .. } => ("cleanup", false),
            Command::Maintenance { .. } => ("maintenance", false),
            Command::Fence { .. } => ("fence", false),
            Command::Reload => ("reload", false),
            Command::Report => ("report", false),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<EventRecord>>,
    /// What a command did, in one line (`standby`, `move`, `reload`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// One live event of `events-follow` (the lines after the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventRecord>,
    /// The answer to `report`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<Box<ReportBundle>>,
}

/// What the local daemon contributes to `tandemctl report`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReportBundle {
    /// `tandemd`'s version.
    pub version: String,
    /// The config file the daemon runs from, if it was started from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_path: Option<String>,
    /// That file as it reads now, secrets redacted (`config::redact`); `None` when it
    /// could not be read or parsed, with why in `config_note` (never the raw text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_note: Option<String>,
    /// The systemd unit tandemd runs in (`tandem@site-a.service`), when it is a tandem
    /// unit: whose journal the report reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    pub status: StatusReport,
    /// Every event the daemon keeps, older incarnations' included, oldest first.
    pub events: Vec<EventRecord>,
}

impl Response {
    pub fn error(message: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(message.into()),
            ..Response::default()
        }
    }

    pub fn status(report: StatusReport) -> Response {
        Response {
            ok: true,
            status: Some(report),
            ..Response::default()
        }
    }

    pub fn done(message: impl Into<String>) -> Response {
        Response {
            ok: true,
            message: Some(message.into()),
            ..Response::default()
        }
    }

    pub fn event(event: EventRecord) -> Response {
        Response {
            ok: true,
            event: Some(event),
            ..Response::default()
        }
    }

    pub fn events(events: Vec<EventRecord>) -> Response {
        Response {
            ok: true,
            events: Some(events),
            ..Response::default()
        }
    }
}

/// `tandemctl status --json`: the core's view flattened at the top level (`node`,
/// `quorate`, `nodes`, `groups`, ...) plus what only the daemon knows.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Cluster name from the config.
    pub cluster: String,
    /// Digest of the cluster-wide config, as 16 hex digits.
    pub config_digest: String,
    /// Datagrams dropped since start, by reason (every reason present, zeros included).
    pub drops: BTreeMap<String, u64>,
    /// The last few events (newest last), so one screen tells what just happened.
    #[serde(default)]
    pub recent_events: Vec<EventRecord>,
    /// This node's health checks (`checks:` in the config), one entry per check that
    /// runs here; absent when none does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckStatus>,
    #[serde(flatten)]
    pub view: ClusterStatus,
}

/// One event as kept in the daemon's ring for `tandemctl events`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Wall-clock time of the event, milliseconds since the Unix epoch.
    pub unix_ms: u64,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<u64>,
    /// The sentence: `Display` of the core's typed reason.
    pub reason: String,
    /// The stable kebab-case tag of the typed reason (`lease-wait`, `candidate`,
    /// `node-down`, ...): what readers key on, never the sentence. Absent from daemons
    /// that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// On `lease-wait` decisions: the remaining wait in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_ms: Option<f64>,
    /// The incarnation of the daemon that recorded it: events kept from before a
    /// restart carry an older one. Absent from daemons that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation: Option<u64>,
}

/// A health check's verdict after `fall`/`rise` hysteresis.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckState {
    Passing,
    Failing,
    /// No probe has finished yet.
    #[default]
    Unknown,
}

impl CheckState {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckState::Passing => "passing",
            CheckState::Failing => "failing",
            CheckState::Unknown => "unknown",
        }
    }
}

/// How one probe ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeOutcome {
    Passed,
    /// Exited non-zero (`exit_code`) or was killed by a signal (`signal`).
    Failed,
    /// Outlived the check's timeout and was killed.
    TimedOut,
    /// Could not be started at all (no `ping`, no `/bin/sh`, ...).
    Error,
}

/// The last probe of a health check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRecord {
    /// When it finished, milliseconds since the Unix epoch.
    pub unix_ms: u64,
    pub outcome: ProbeOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    pub duration_ms: u64,
    /// The last non-empty output line (stderr first, else stdout), at most 200
    /// characters; for a ping check prefixed by the target.
    pub output: String,
}

/// One health check as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckStatus {
    pub name: String,
    /// The node that runs it (the one that answered).
    pub node: String,
    /// `ping` or `script`.
    pub kind: String,
    pub state: CheckState,
    /// Consecutive failures that turn a passing check into a failing one.
    pub fall: u32,
    /// Consecutive successes that turn a failing check into a passing one.
    pub rise: u32,
    /// Failures in a row up to the last probe (0 after a success).
    pub consecutive_failures: u32,
    /// Successes in a row up to the last probe (0 after a failure).
    pub consecutive_successes: u32,
    /// Probes run and probes failed since the daemon started.
    pub probes_total: u64,
    pub failures_total: u64,
    /// The last probe; absent until one has finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<ProbeRecord>,
}

/// Why a request line could not be turned into a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request line is longer than {MAX_REQUEST_LINE} bytes")]
    TooLong,
    #[error("request line is not terminated by a newline")]
    Incomplete,
    #[error("request is not UTF-8")]
    NotUtf8,
    #[error("request is not a JSON object: {0}")]
    NotJson(String),
    #[error("request has no \"cmd\" field")]
    MissingCommand,
    #[error("unknown command {0:?} (known: {known})", known = Command::NAMES.join(", "))]
    UnknownCommand(String),
    #[error("unsupported protocol version {got} (this tandemd speaks {PROTOCOL_VERSION})")]
    BadVersion { got: u64 },
    #[error("invalid {cmd} request: {detail}")]
    Invalid { cmd: String, detail: String },
}

/// Parses one request line (without its newline). Each failure gets its own message, so
/// a client author sees what is wrong rather than a generic serde error.
pub fn parse_request(line: &[u8]) -> Result<Request, RequestError> {
    if line.len() > MAX_REQUEST_LINE {
        return Err(RequestError::TooLong);
    }
    let text = std::str::from_utf8(line).map_err(|_| RequestError::NotUtf8)?;
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| RequestError::NotJson(e.to_string()))?;
    let object = value
        .as_object()
        .ok_or_else(|| RequestError::NotJson("expected an object".into()))?;
    let cmd = match object.get("cmd") {
        None => return Err(RequestError::MissingCommand),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => return Err(RequestError::UnknownCommand(other.to_string())),
    };
    if !Command::NAMES.contains(&cmd.as_str()) {
        return Err(RequestError::UnknownCommand(cmd));
    }
    match object.get("version").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(PROTOCOL_VERSION) => {}
        Some(v) => return Err(RequestError::BadVersion { got: v }),
        None => {
            return Err(RequestError::Invalid {
                cmd,
                detail: "missing or non-integer \"version\"".into(),
            })
        }
    }
    serde_json::from_value(value).map_err(|e| RequestError::Invalid {
        cmd,
        detail: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_named_as_on_the_wire_and_only_queries_are_read_only() {
        let commands = [
            Command::Status,
            Command::Events,
            Command::EventsFollow,
            Command::Standby {
                node: "a".into(),
                on: true,
            },
            Command::Move {
                group: "g".into(),
                to: None,
                lifetime_ms: None,
            },
            Command::Ban {
                group: "g".into(),
                node: "a".into(),
                on: true,
                lifetime_ms: Some(1000),
            },
            Command::ClearMove { group: "g".into() },
            Command::Cleanup {
                group: "g".into(),
                resource: None,
            },
            Command::Maintenance {
                group: None,
                on: true,
            },
            Command::Fence { node: "a".into() },
            Command::Reload,
            Command::Report,
        ];
        let names: Vec<&str> = commands.iter().map(Command::name).collect();
        assert_eq!(names, Command::NAMES);
        for c in &commands {
            let wire = serde_json::to_value(c).expect("serialize");
            assert_eq!(wire["cmd"], c.name(), "{c:?}");
            let query = matches!(c, Command::Status | Command::Events | Command::EventsFollow);
            assert_eq!(c.is_read_only(), query, "{c:?}");
        }
    }
}
