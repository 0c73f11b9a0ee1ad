//! The `cluster` section, and reading the authentication keys it names.

use super::super::key::read_key;
use super::super::model::{AuthKeys, ClusterConfig};
use super::super::raw::{self, Field};
use super::ctx::Ctx;
use crate::core::ids::fnv1a64;
use std::path::{Path, PathBuf};

/// The cluster section and its key paths (see [`cluster`]).
pub(super) type ClusterAndKeyPaths = (Option<ClusterConfig>, Option<PathBuf>, Option<PathBuf>);

/// The cluster section, plus the key paths resolved against the config's directory
/// (returned even when the rest of the section is broken, so the keys get checked).
pub(super) fn cluster(
    ctx: &mut Ctx,
    raw: Field<raw::RawCluster>,
    base: &Path,
) -> ClusterAndKeyPaths {
    let Some(raw) = raw else {
        ctx.push("", None, "missing required section `cluster`".into());
        return (None, None, None);
    };
    let Some(raw) = ctx.lenient("cluster", raw) else {
        return (None, None, None);
    };
    ctx.unknown("cluster", &raw.unknown, raw::RawCluster::KEYS);
    let name = ctx.name("cluster", "name", raw.name);
    let authkey = ctx
        .required("cluster", "authkey", raw.authkey)
        .map(PathBuf::from);
    let authkey_next = ctx
        .field("cluster", "authkey_next", raw.authkey_next)
        .map(PathBuf::from);
    // Relative key paths are relative to the config file, not to the daemon's cwd.
    let resolve = |p: &PathBuf| {
        if p.is_absolute() {
            p.clone()
        } else {
            base.join(p)
        }
    };
    let authkey = authkey.as_ref().map(resolve);
    let authkey_next = authkey_next.as_ref().map(resolve);
    let config = match (name, &authkey) {
        (Some(name), Some(key)) => Some(ClusterConfig {
            cluster_id: fnv1a64(name.as_bytes()),
            name,
            authkey: key.clone(),
            authkey_next: authkey_next.clone(),
        }),
        _ => None,
    };
    (config, authkey, authkey_next)
}

/// Reads the key files the cluster section names. Keys are checked even when other
/// things are wrong: a missing key is one more thing the admin should learn about in
/// the same run.
pub(super) fn keys(
    ctx: &mut Ctx,
    cluster: ClusterAndKeyPaths,
) -> (Option<ClusterConfig>, Option<AuthKeys>) {
    let (cluster, authkey, authkey_next) = cluster;
    let current = authkey.as_ref().and_then(|p| {
        read_key(p)
            .map_err(|e| ctx.at_value("cluster.authkey", e.to_string()))
            .ok()
    });
    let next = authkey_next.as_ref().map(|p| {
        read_key(p)
            .map_err(|e| ctx.at_value("cluster.authkey_next", e.to_string()))
            .ok()
    });
    let keys = match (current, next) {
        (Some(current), None) => Some(AuthKeys {
            current,
            next: None,
        }),
        (Some(current), Some(Some(next))) => Some(AuthKeys {
            current,
            next: Some(next),
        }),
        _ => None,
    };
    (cluster, keys)
}
