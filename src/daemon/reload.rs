//! `tandemctl reload` and SIGHUP: read the config file again, validate it, and hand it
//! to the heartbeat thread, or refuse with every reason while the old config runs on.
//!
//! All file reading and validation happens here, on the control runtime: the heartbeat
//! thread only receives a finished, validated [`Config`] and asks the core whether it
//! can apply it. Keys the running daemon cannot change (its sockets, its keys, the node
//! list) are refused up front with the key named, so an admin knows a restart is needed.

use super::control::ControlCall;
use crate::config::Config;
use crate::control::Response;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Mutex};

/// How long the heartbeat thread may take to accept or refuse a new config.
pub const APPLY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug)]
pub struct Reloader {
    path: PathBuf,
    /// The config running now. The lock also serializes reloads: two at once would
    /// compare against a config that is about to be replaced.
    current: Mutex<Arc<Config>>,
    calls: mpsc::Sender<ControlCall>,
}

impl Reloader {
    pub fn new(path: PathBuf, current: Arc<Config>, calls: mpsc::Sender<ControlCall>) -> Self {
        Reloader {
            path,
            current: Mutex::new(current),
            calls,
        }
    }

    /// The config file it reads.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// Reloads the config file; `origin` (`SIGHUP`, `tandemctl reload`) goes in the log.
    /// The reply is ok with a one-line summary, or an error with one problem per line.
    pub async fn reload(&self, origin: &str) -> Response {
        let mut current = self.current.lock().await;
        let path = self.path.clone();
        let loaded = tokio::task::spawn_blocking(move || crate::config::load(&path)).await;
        let config = match loaded {
            Ok(Ok(config)) => Arc::new(config),
            Ok(Err(errors)) => {
                return self.refuse(
                    origin,
                    format!("{} error(s) in {}", errors.len(), self.path.display()),
                    errors.iter().map(|e| e.to_string()).collect(),
                )
            }
            Err(e) => {
                return self.refuse(origin, format!("reading the config failed: {e}"), vec![])
            }
        };
        let restart = needs_restart(&current, &config);
        if !restart.is_empty() {
            return self.refuse(
                origin,
                "these changes need a restart of tandemd".into(),
                restart
                    .into_iter()
                    .map(|key| format!("{key}: changed; restart tandemd to apply it"))
                    .collect(),
            );
        }
        let digest = config.cluster_spec().digest;
        if same_config(&current, &config) {
            tracing::info!("{origin}: config unchanged (digest {digest:016x})");
            return Response::done(format!("config unchanged (digest {digest:016x})"));
        }
        let (reply, answer) = oneshot::channel();
        let call = ControlCall::Apply {
            config: config.clone(),
            reply,
        };
        if self.calls.send(call).await.is_err() {
            return Response::error("tandemd is shutting down");
        }
        match tokio::time::timeout(APPLY_TIMEOUT, answer).await {
            Ok(Ok(Ok(summary))) => {
                for warning in config.warnings() {
                    tracing::warn!("{origin}: config warning: {warning}");
                }
                *current = config;
                tracing::info!("{origin}: {summary} (new digest {digest:016x})");
                Response::done(summary)
            }
            Ok(Ok(Err(reason))) => self.refuse(origin, reason, vec![]),
            Ok(Err(_)) => Response::error("tandemd dropped the reload (shutting down?)"),
            Err(_) => Response::error(format!(
                "the heartbeat thread did not answer the reload within {}s",
                APPLY_TIMEOUT.as_secs()
            )),
        }
    }

    fn refuse(&self, origin: &str, headline: String, details: Vec<String>) -> Response {
        tracing::error!(
            "{origin}: config NOT reloaded: {headline}; the running config is unchanged"
        );
        for d in &details {
            tracing::error!("  {d}");
        }
        let mut text = format!("config not reloaded ({headline}); the running config is unchanged");
        for d in details {
            text.push('\n');
            text.push_str(&d);
        }
        Response::error(text)
    }
}

/// Two configs that differ only in the path they were read from.
fn same_config(a: &Config, b: &Config) -> bool {
    let mut b = b.clone();
    b.file = a.file.clone();
    *a == b
}

/// The keys whose change the running daemon cannot apply: they are bound at start
/// (sockets, keys, thread setup) or identify the cluster and its members.
pub fn needs_restart(old: &Config, new: &Config) -> Vec<String> {
    let mut keys = Vec::new();
    let mut changed = |differs: bool, key: &str| {
        if differs {
            keys.push(key.to_string());
        }
    };
    changed(old.cluster.name != new.cluster.name, "cluster.name");
    changed(
        old.cluster.authkey != new.cluster.authkey || old.keys.current != new.keys.current,
        "cluster.authkey",
    );
    changed(
        old.cluster.authkey_next != new.cluster.authkey_next || old.keys.next != new.keys.next,
        "cluster.authkey_next",
    );
    changed(old.heartbeat.port != new.heartbeat.port, "heartbeat.port");
    changed(
        old.heartbeat.realtime != new.heartbeat.realtime,
        "heartbeat.realtime",
    );
    changed(
        old.heartbeat.mlockall != new.heartbeat.mlockall,
        "heartbeat.mlockall",
    );
    changed(old.metrics != new.metrics, "metrics.listen");
    // The checks run from the executor's start; restarting them live is not built yet.
    changed(old.checks != new.checks, "checks");
    let names = |c: &Config| -> Vec<(String, u16)> {
        c.nodes.iter().map(|n| (n.name.clone(), n.id.0)).collect()
    };
    if names(old) != names(new) {
        keys.push("nodes (names, ids or number of nodes)".into());
    } else {
        for (i, (o, n)) in old.nodes.iter().zip(&new.nodes).enumerate() {
            if o.addresses != n.addresses {
                keys.push(format!("nodes[{i}].addresses ({})", n.name));
            }
            if o.interfaces != n.interfaces {
                keys.push(format!("nodes[{i}].interfaces ({})", n.name));
            }
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::needs_restart;
    use std::os::unix::fs::PermissionsExt;

    fn config(extra: &str) -> crate::config::Config {
        let dir = std::env::temp_dir().join(format!("tandem-reload-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let key = dir.join("authkey");
        std::fs::write(&key, format!("{}\n", "ab".repeat(32))).expect("key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let yaml = format!(
            "cluster: {{ name: c, authkey: {} }}\nnodes:\n  - {{ name: a, addresses: [192.0.2.1] }}\n  - {{ name: b, addresses: [192.0.2.2] }}\n{extra}",
            key.display()
        );
        crate::config::parse_str(&yaml, "t.yaml").expect("valid")
    }

    #[test]
    fn changed_checks_need_a_restart_and_groups_do_not() {
        let base = config("");
        let checks = config("checks:\n  - { name: up, ping: [192.0.2.9] }\n");
        assert_eq!(needs_restart(&base, &checks), vec!["checks".to_string()]);
        let groups = config(
            "groups:\n  - name: g\n    resources:\n      - exec: { name: x, start: /bin/true, stop: /bin/true }\n",
        );
        assert!(needs_restart(&base, &groups).is_empty());
    }
}
