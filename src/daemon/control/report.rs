//! The daemon's part of `tandemctl report`: its version, its config file with secrets
//! redacted, its status and every event it keeps, in one reply.
//!
//! Assembled on the control runtime from two ordinary calls to the heartbeat thread
//! (status, events) and a read of the config file off the runtime's worker (the file
//! is bounded like a load), so a report costs the heartbeat thread no more than a
//! `status`. The journal is not read here: `tandemctl` reads it itself, which also
//! works when the daemon is down.

use super::{Backend, ControlCall};
use crate::control::{Command, ReportBundle, Response};

/// Answers `report`.
pub async fn bundle(backend: &Backend) -> Response {
    let ask = |command| backend.ask(|reply| ControlCall::Command { command, reply });
    let status = match ask(Command::Status).await {
        Ok(Response {
            status: Some(mut status),
            ..
        }) => {
            status.checks = backend.checks.snapshot();
            status
        }
        Ok(other) => return Response::error(other.error.unwrap_or_else(|| "no status".into())),
        Err(e) => return Response::error(e),
    };
    let events = match ask(Command::Events).await {
        Ok(r) => r.events.unwrap_or_default(),
        Err(e) => return Response::error(e),
    };
    let path = backend.reloader.as_ref().map(|r| r.path().to_path_buf());
    let (config, config_note) = match &path {
        None => (
            None,
            Some("tandemd was started without a config file".into()),
        ),
        Some(path) => {
            let path = path.clone();
            match tokio::task::spawn_blocking(move || crate::config::redact::redact_file(&path))
                .await
            {
                Ok(Ok(text)) => (Some(text), None),
                Ok(Err(why)) => (None, Some(why)),
                Err(e) => (None, Some(format!("reading the config failed: {e}"))),
            }
        }
    };
    Response {
        ok: true,
        report: Some(Box::new(ReportBundle {
            version: env!("CARGO_PKG_VERSION").into(),
            config_path: path.map(|p| p.display().to_string()),
            config,
            config_note,
            status,
            events,
        })),
        ..Response::default()
    }
}
