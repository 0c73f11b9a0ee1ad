//! Step two of loading a config: raw structs into a typed, validated [`Config`].
//!
//! Every field is converted on its own and every problem is recorded with its key path
//! (and a line from the locator when the key can be found in the text), then the
//! cross-field rules run on whatever did convert. A broken field gets its default so
//! that later rules still run, but rules that depend on it are skipped, and references
//! to nodes are only checked when every node parsed, to avoid reporting the echo of an
//! error as a second one. One submodule per section of the file.

mod arbiter;
mod checks;
mod cluster;
mod ctx;
mod datagram;
mod devices;
mod fencing;
mod groups;
mod heartbeat;
mod nodes;
mod quorum;
mod resources;
mod security;

use super::error::{ConfigError, ConfigErrors};
use super::model::*;
use super::raw;
use ctx::Ctx;
pub use datagram::{
    fragmentation_warning, largest_heartbeat, largest_heartbeat_of, FragmentationWarning,
    HeartbeatSize, HEARTBEAT_BUDGET,
};
use std::path::{Path, PathBuf};

/// Most heartbeat links a node may have (each is a socket and a sender slot).
pub const MAX_LINKS: usize = 8;

/// `facts` is the config file's metadata when it was read from disk (not for text
/// given directly): who may read it decides whether inline secrets are allowed.
pub(super) fn validate(
    raw: raw::RawConfig,
    text: &str,
    file: &str,
    facts: Option<&std::fs::Metadata>,
) -> Result<Config, ConfigErrors> {
    let mut ctx = Ctx::new(file, text);
    ctx.unknown("", &raw.unknown, raw::RawConfig::KEYS);
    let base_dir = Path::new(file)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();

    let cluster = cluster::cluster(&mut ctx, raw.cluster, &base_dir);
    let (nodes, index) = nodes::nodes(&mut ctx, raw.nodes);
    let heartbeat = heartbeat::heartbeat(&mut ctx, raw.heartbeat);
    let quorum = quorum::quorum(
        &mut ctx,
        raw.quorum,
        &nodes,
        &index,
        heartbeat.timing.deadtime,
    );
    let fencing = fencing::fencing(&mut ctx, raw.fencing, &nodes, &index);
    let groups = groups::groups(&mut ctx, raw.groups, &nodes, &index);
    let checks = checks::checks(&mut ctx, raw.checks, &index);
    let metrics = devices::metrics(&mut ctx, raw.metrics);
    let watchdog = devices::watchdog(&mut ctx, raw.watchdog);
    let notify = devices::notify(&mut ctx, raw.notify);
    let security = security::section(&mut ctx, raw.security);
    let (cluster, keys) = cluster::keys(&mut ctx, cluster);
    // These walk the converted config by index: only sound when nothing was dropped.
    if !ctx.has_errors() {
        datagram::check(&mut ctx, &nodes, &groups);
        security::inline_secrets(&mut ctx, facts, &fencing, &groups);
        if !security.allow_unsafe_scripts {
            let scripts = security::Scripts {
                groups: &groups,
                checks: &checks,
                fencing: &fencing,
                notify: &notify,
            };
            security::scripts(&mut ctx, &scripts);
        }
    }

    if ctx.has_errors() {
        let mut errors = ctx.into_errors();
        // File order reads best; errors without a line go last, in the order found.
        errors.sort_by_key(|e| e.line.unwrap_or(usize::MAX));
        return Err(ConfigErrors(errors));
    }
    match (cluster, keys) {
        (Some(cluster), Some(keys)) => Ok(Config {
            file: PathBuf::from(file),
            cluster,
            nodes,
            heartbeat,
            quorum,
            fencing,
            groups,
            checks,
            metrics,
            watchdog,
            notify,
            security,
            keys,
        }),
        // Unreachable in practice: a missing part always recorded an error above.
        _ => Err(ConfigErrors(vec![ConfigError::new(
            file,
            None,
            Some("cluster"),
            "incomplete cluster section",
        )])),
    }
}
