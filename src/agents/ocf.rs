//! `ocf` resources: Pacemaker's resource agents (the `resource-agents` package), run the
//! way Pacemaker runs them: `$OCF_ROOT/resource.d/PROVIDER/TYPE ACTION` with the
//! instance described in `OCF_*` variables and every parameter as `OCF_RESKEY_<name>`.
//!
//! Exit codes are the OCF ones (0 success .. 7 not running), named in failure reasons.
//! 7 is the only code whose meaning depends on the action: for a monitor it is the clean
//! "stopped" answer, for a stop it means "already stopped", hence success, and for a
//! start it is a failure. An agent's `meta-data` (read once per agent and cached) gives
//! the default timeout of each action when the resource has none, and says whether
//! `validate-all` exists, which `tandemctl config check --agents` runs.

use super::process::{self, Exit, Finished, Launch, Spec};
use super::OpContext;
use crate::config::{parse_duration, ResourceConfig, ResourceKind};
use crate::core::{OpKind, OpResult};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const DEFAULT_OCF_ROOT: &str = "/usr/lib/ocf";
/// For actions that have no timeout anywhere (meta-data itself, validate-all).
const FALLBACK_TIMEOUT: Duration = Duration::from_secs(20);
const META_DATA_TIMEOUT: Duration = Duration::from_secs(10);

pub const OCF_SUCCESS: i32 = 0;
pub const OCF_NOT_RUNNING: i32 = 7;
pub const OCF_RUNNING_PROMOTED: i32 = 8;
pub const OCF_FAILED_PROMOTED: i32 = 9;
pub const OCF_DEGRADED: i32 = 190;
pub const OCF_DEGRADED_PROMOTED: i32 = 191;

/// The OCF name of an exit code, for failure reasons.
pub fn exit_name(code: i32) -> &'static str {
    match code {
        0 => "success",
        1 => "generic error",
        2 => "invalid argument",
        3 => "unimplemented feature",
        4 => "insufficient privileges",
        5 => "not installed",
        6 => "not configured",
        7 => "not running",
        8 => "running promoted",
        9 => "failed promoted",
        190 => "degraded",
        191 => "degraded promoted",
        _ => "unknown error",
    }
}

/// `OCF_ROOT` for children: the launch's, else the daemon's `$OCF_ROOT`, else
/// `/usr/lib/ocf`.
pub fn ocf_root(launch: &Launch) -> PathBuf {
    launch
        .ocf_root
        .clone()
        .or_else(|| std::env::var_os("OCF_ROOT").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_OCF_ROOT))
}

pub fn agent_path(root: &Path, provider: &str, agent_type: &str) -> PathBuf {
    root.join("resource.d").join(provider).join(agent_type)
}

/// One `<action .../>` of an agent's meta-data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionMeta {
    pub name: String,
    pub timeout: Option<Duration>,
    /// `depth` of a monitor; deeper monitors are not what a plain monitor runs.
    pub depth: Option<String>,
}

/// What tandem reads from an agent's meta-data: its actions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetaData {
    pub actions: Vec<ActionMeta>,
}

impl MetaData {
    /// Reads the `<action>` tags of an agent's meta-data XML. A tag scan rather than an
    /// XML parser: the format is flat and fixed by the OCF spec, and a broken document
    /// only costs us the defaults.
    pub fn parse(xml: &str) -> MetaData {
        let mut actions = Vec::new();
        let mut rest = xml;
        while let Some(i) = rest.find("<action") {
            rest = &rest[i + "<action".len()..];
            // `<actions>` is the container, not an action.
            if !rest.starts_with(|c: char| c.is_ascii_whitespace()) {
                continue;
            }
            let end = rest.find('>').unwrap_or(rest.len());
            let tag = &rest[..end];
            rest = &rest[end..];
            let Some(name) = attribute(tag, "name") else {
                continue;
            };
            actions.push(ActionMeta {
                name,
                timeout: attribute(tag, "timeout").and_then(|t| parse_ocf_duration(&t)),
                depth: attribute(tag, "depth"),
            });
        }
        MetaData { actions }
    }

    pub fn supports(&self, action: &str) -> bool {
        self.actions.iter().any(|a| a.name == action)
    }

    /// The advertised timeout of `action` (for monitors: the depth-0 one).
    pub fn timeout(&self, action: &str) -> Option<Duration> {
        self.actions
            .iter()
            .filter(|a| a.name == action)
            .find(|a| a.depth.as_deref().is_none_or(|d| d == "0"))
            .and_then(|a| a.timeout)
    }
}

/// `key="value"` (or single quotes) inside one tag.
fn attribute(tag: &str, key: &str) -> Option<String> {
    let mut rest = tag;
    while let Some(i) = rest.find(key) {
        let before_ok = i == 0
            || rest[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_whitespace());
        rest = &rest[i + key.len()..];
        let after = rest.trim_start();
        if !before_ok || !after.starts_with('=') {
            continue;
        }
        let value = after[1..].trim_start();
        let quote = value.chars().next()?;
        if quote != '"' && quote != '\'' {
            return None;
        }
        let value = &value[1..];
        let end = value.find(quote)?;
        return Some(value[..end].to_string());
    }
    None
}

/// Timeouts as agents write them: `20s`, `100ms`, `2min`, `1m`, or bare seconds (`20`).
fn parse_ocf_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    if !t.is_empty() && t.chars().all(|c| c.is_ascii_digit()) {
        return t.parse::<u64>().ok().map(Duration::from_secs);
    }
    let t = t
        .strip_suffix("min")
        .map_or(t.to_string(), |n| format!("{n}m"));
    parse_duration(&t).ok()
}

static META_CACHE: Mutex<BTreeMap<PathBuf, Arc<MetaData>>> = Mutex::new(BTreeMap::new());

/// The agent's meta-data, from the cache or by running `AGENT meta-data`.
pub async fn meta_data(
    launch: &Launch,
    provider: &str,
    agent_type: &str,
) -> Result<Arc<MetaData>, String> {
    let root = ocf_root(launch);
    let path = agent_path(&root, provider, agent_type);
    if let Some(m) = META_CACHE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&path)
    {
        return Ok(Arc::clone(m));
    }
    let spec = Spec::new(
        format!("ocf:{provider}:{agent_type}"),
        &path,
        META_DATA_TIMEOUT,
    )
    .env("OCF_ROOT", &root)
    .quiet()
    .arg("meta-data");
    let done = process::run(launch, &spec).await;
    if done.exit != Exit::Code(OCF_SUCCESS) {
        return Err(describe(&done, "meta-data"));
    }
    let meta = Arc::new(MetaData::parse(&done.stdout_text()));
    META_CACHE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(path, Arc::clone(&meta));
    Ok(meta)
}

/// The timeout an operation of `resource` gets: its own, else the agent's advertised
/// one, else `fallback`. The executor should use this (not only
/// [`super::default_timeout`]) when it bounds an OCF operation from outside.
pub async fn op_timeout(
    resource: &ResourceConfig,
    kind: OpKind,
    launch: &Launch,
    fallback: Duration,
) -> Duration {
    action_timeout(resource, super::op_name(kind), launch, fallback).await
}

/// [`op_timeout`] for any action by its OCF name (`promote`, `notify`, ...).
pub async fn action_timeout(
    resource: &ResourceConfig,
    action: &str,
    launch: &Launch,
    fallback: Duration,
) -> Duration {
    if let Some(t) = resource.timeout {
        return t;
    }
    let ResourceKind::Ocf {
        provider,
        agent_type,
        ..
    } = &resource.kind
    else {
        return fallback;
    };
    match meta_data(launch, provider, agent_type).await {
        Ok(meta) => meta.timeout(action).unwrap_or(fallback),
        Err(_) => fallback,
    }
}

/// The child for `ACTION` of one instance: agent path and the OCF environment.
/// `interval` is the recurrence of the operation (zero for one-shot operations): agents
/// tell a probe from a recurring monitor by it (`ocf_is_probe`).
pub(super) fn spec(
    resource: &ResourceConfig,
    action: &str,
    timeout: Duration,
    interval: Duration,
    launch: &Launch,
) -> Spec {
    let ResourceKind::Ocf {
        provider,
        agent_type,
        params,
    } = &resource.kind
    else {
        // Callers check the kind; this keeps the function total.
        return Spec::new(&resource.name, "/bin/false", timeout);
    };
    let root = ocf_root(launch);
    let mut spec = Spec::new(
        &resource.name,
        agent_path(&root, provider, agent_type),
        timeout,
    )
    .arg(action)
    .env("OCF_ROOT", &root)
    .env("OCF_FUNCTIONS_DIR", root.join("lib").join("heartbeat"))
    .env("OCF_RA_VERSION_MAJOR", "1")
    .env("OCF_RA_VERSION_MINOR", "1")
    .env("OCF_RESOURCE_INSTANCE", &resource.name)
    .env("OCF_RESOURCE_TYPE", agent_type)
    .env("OCF_RESOURCE_PROVIDER", provider)
    .env(
        "OCF_RESKEY_CRM_meta_timeout",
        timeout.as_millis().to_string(),
    )
    .env(
        "OCF_RESKEY_CRM_meta_interval",
        interval.as_millis().to_string(),
    );
    for (key, value) in params {
        spec = spec.env(format!("OCF_RESKEY_{key}"), value);
    }
    spec
}

pub(super) fn describe(done: &Finished, action: &str) -> String {
    match done.exit {
        Exit::Code(c) => {
            let base = done.describe(action);
            format!("{base} [{}]", exit_name(c))
        }
        _ => done.describe(action),
    }
}

pub async fn run_with(ctx: &OpContext<'_>, launch: &Launch) -> OpResult {
    if !matches!(ctx.resource.kind, ResourceKind::Ocf { .. }) {
        return OpResult::Failed(format!("{}: not an ocf resource", ctx.resource.name));
    }
    let timeout = op_timeout(ctx.resource, ctx.kind, launch, ctx.timeout).await;
    let action = super::op_name(ctx.kind);
    let spec = spec(ctx.resource, action, timeout, ctx.interval, launch).envs(ctx.env());
    let done = process::run(launch, &spec).await;
    map(ctx.kind, &done)
}

/// OCF exit code of `kind` to the core's result (see the module comment).
pub fn map(kind: OpKind, done: &Finished) -> OpResult {
    match (&done.exit, kind) {
        (Exit::Code(OCF_SUCCESS), _) => OpResult::Ok,
        (Exit::Code(OCF_NOT_RUNNING), OpKind::Monitor) => OpResult::NotRunning,
        (Exit::Code(OCF_NOT_RUNNING), OpKind::Stop) => OpResult::Ok,
        (Exit::TimedOut, _) => OpResult::TimedOut,
        _ => OpResult::Failed(describe(done, super::op_name(kind))),
    }
}

/// Runs the agent's `validate-all` for `resource` when its meta-data lists it. `Ok` for
/// other kinds of resources and for agents without `validate-all`; `Err` with the reason
/// when the agent is missing or rejects the parameters.
pub async fn validate(resource: &ResourceConfig) -> Result<(), String> {
    validate_with(resource, &Launch::default()).await
}

pub async fn validate_with(resource: &ResourceConfig, launch: &Launch) -> Result<(), String> {
    let ResourceKind::Ocf {
        provider,
        agent_type,
        ..
    } = &resource.kind
    else {
        return Ok(());
    };
    let meta = meta_data(launch, provider, agent_type).await?;
    if !meta.supports("validate-all") {
        return Ok(());
    }
    let timeout = resource
        .timeout
        .or_else(|| meta.timeout("validate-all"))
        .unwrap_or(FALLBACK_TIMEOUT);
    let done = process::run(
        launch,
        &spec(resource, "validate-all", timeout, Duration::ZERO, launch),
    )
    .await;
    match done.exit {
        Exit::Code(OCF_SUCCESS) => Ok(()),
        _ => Err(describe(&done, "validate-all")),
    }
}

/// Is the agent of `resource` installed under this machine's OCF root?
pub fn installed(resource: &ResourceConfig, launch: &Launch) -> bool {
    match &resource.kind {
        ResourceKind::Ocf {
            provider,
            agent_type,
            ..
        } => agent_path(&ocf_root(launch), provider, agent_type).is_file(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_data_actions_and_timeouts() {
        let xml = r#"<?xml version="1.0"?>
<resource-agent name="X"><parameters><parameter name="action"/></parameters>
<actions>
<action name="start"        timeout="20s" />
<action name="stop"         timeout='2min' />
<action name="monitor" depth="10" timeout="99s" interval="10s" />
<action name="monitor"      timeout="30" interval="10s" depth="0" />
<action name="meta-data"    timeout="500ms" />
<action name="validate-all"/>
</actions></resource-agent>"#;
        let m = MetaData::parse(xml);
        assert_eq!(m.timeout("start"), Some(Duration::from_secs(20)));
        assert_eq!(m.timeout("stop"), Some(Duration::from_secs(120)));
        assert_eq!(m.timeout("monitor"), Some(Duration::from_secs(30)));
        assert_eq!(m.timeout("meta-data"), Some(Duration::from_millis(500)));
        assert_eq!(m.timeout("validate-all"), None);
        assert!(m.supports("validate-all"));
        assert!(!m.supports("promote"));
        // The `name="action"` parameter is not an action.
        assert!(!m.supports("action"));
    }

    #[test]
    fn attribute_needs_a_whole_key() {
        assert_eq!(
            attribute(r#" xname="a" name="b""#, "name"),
            Some("b".into())
        );
        assert_eq!(attribute(r#" name = "c""#, "name"), Some("c".into()));
        assert_eq!(attribute(r#" name=c"#, "name"), None);
    }

    #[test]
    fn exit_codes_by_action() {
        let f = |code| Finished {
            exit: Exit::Code(code),
            stdout: Vec::new(),
            stderr: b"oops\n".to_vec(),
            truncated: false,
        };
        assert_eq!(map(OpKind::Monitor, &f(7)), OpResult::NotRunning);
        assert_eq!(map(OpKind::Stop, &f(7)), OpResult::Ok);
        assert_eq!(
            map(OpKind::Start, &f(7)),
            OpResult::Failed("start: exit 7 (oops) [not running]".into())
        );
        assert_eq!(
            map(OpKind::Start, &f(5)),
            OpResult::Failed("start: exit 5 (oops) [not installed]".into())
        );
        assert_eq!(map(OpKind::Monitor, &f(0)), OpResult::Ok);
    }
}
