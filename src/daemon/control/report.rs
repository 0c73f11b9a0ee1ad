//! The daemon's part of `tandemctl report`: its version, its config file with secrets
//! redacted, its status and every event it keeps, in one reply.
//!
//! Assembled on the control runtime from two ordinary calls to the heartbeat thread
//! (status, events) and a read of the config file off the runtime's worker (the file
//! is bounded like a load), so a report costs the heartbeat thread no more than a
//! `status`. The journal is not read here: `tandemctl` reads it itself, which also
//! works when the daemon is down.
//!
//! The same part, plus this node's journal, is what another node's `tandemctl report`
//! gets through the report channel: [`spawn_peer_listeners`].

use super::{Backend, ControlCall};
use crate::control::report;
use crate::control::report_channel::{self as channel, ChannelKeys, PeerRequest, Refusal, Served};
use crate::control::{Command, ReportBundle, Response};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Answers `report`.
pub async fn bundle(backend: &Backend) -> Response {
    let ask = |command| backend.ask(|reply| ControlCall::Command { command, reply });
    let status = match ask(Command::Status).await {
        Ok(Response {
            status: Some(mut status),
            ..
        }) => {
            backend.complete(&mut status);
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
            unit: report::own_unit(),
            status,
            events,
        })),
        ..Response::default()
    }
}

/// Serves `tandemctl report` on other nodes through the report channel
/// ([`crate::control::report_channel`]): one listener thread per heartbeat address of
/// this node, on the heartbeat port (TCP). Blocking threads rather than tasks because
/// building an archive reads the journal for up to a minute; one archive is built at a
/// time, whichever link the request came in on, so a burst of requests cannot run
/// several `journalctl` at once.
pub fn spawn_peer_listeners(
    runtime: &tokio::runtime::Runtime,
    settings: &crate::daemon::Settings,
    backend: Backend,
) {
    let me = settings
        .spec
        .node(settings.me)
        .map(|n| n.name.clone())
        .unwrap_or_else(|| settings.me.to_string());
    let server = Arc::new(PeerServer {
        me,
        keys: ChannelKeys::new(&settings.config.keys),
        backend,
        runtime: runtime.handle().clone(),
        busy: AtomicBool::new(false),
    });
    for link in &settings.links {
        let addr = SocketAddr::new(link.local, settings.port);
        // Not fatal: reports are evidence, the cluster runs without them.
        let listener = match TcpListener::bind(addr) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("report channel: cannot listen on tcp/{addr}: {e}; other nodes' `tandemctl report` will not reach this one there");
                continue;
            }
        };
        let server = server.clone();
        let spawned = std::thread::Builder::new()
            .name("tandem-report".into())
            .spawn(move || server.accept_loop(listener));
        if let Err(e) = spawned {
            tracing::error!("report channel: cannot start a thread for tcp/{addr}: {e}");
        }
    }
}

struct PeerServer {
    me: String,
    keys: ChannelKeys,
    backend: Backend,
    runtime: tokio::runtime::Handle,
    busy: AtomicBool,
}

impl PeerServer {
    fn accept_loop(&self, listener: TcpListener) {
        for stream in listener.incoming() {
            match stream {
                Ok(stream) => self.serve_one(stream),
                // Out of descriptors and the like: wait instead of spinning.
                Err(e) => {
                    tracing::warn!("report channel: accept failed: {e}");
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
    }

    fn serve_one(&self, mut stream: TcpStream) {
        let peer = stream
            .peer_addr()
            .map_or_else(|_| "?".to_string(), |a| a.to_string());
        let timeouts = stream
            .set_read_timeout(Some(channel::REQUEST_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(channel::ANSWER_TIMEOUT)));
        if let Err(e) = timeouts {
            tracing::warn!("report channel: {peer}: {e}");
            return;
        }
        match channel::serve(&mut stream, &self.keys, &self.me, |r| self.gather(r)) {
            Ok(Served::Sent { request, bytes }) => tracing::info!(
                "report channel: sent this node's report ({bytes} bytes) to {} at {peer}",
                request.from
            ),
            Ok(Served::Refused { request, why }) => {
                tracing::warn!("report channel: refused {} at {peer}: {why}", request.from)
            }
            Ok(Served::Unauthenticated) => tracing::warn!(
                "report channel: refused a request from {peer}: not sealed with this cluster's key"
            ),
            Err(e) => tracing::warn!("report channel: {peer}: {e}"),
        }
    }

    /// The archive a local `tandemctl report --this-node` would write, built here.
    fn gather(&self, request: &PeerRequest) -> Result<Vec<u8>, Refusal> {
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err(Refusal::Busy);
        }
        let built = self.build_archive(request.since).map_err(Refusal::Failed);
        self.busy.store(false, Ordering::Release);
        built
    }

    fn build_archive(&self, since: u64) -> Result<Vec<u8>, String> {
        let answer = self.runtime.block_on(bundle(&self.backend));
        let daemon = match answer.report {
            Some(b) => Ok(*b),
            None => Err(answer.error.unwrap_or_else(|| "no report".into())),
        };
        let unit = report::own_unit().unwrap_or_else(|| report::UNIT.into());
        let gathered = report::Gathered {
            node: self.me.clone(),
            since,
            daemon,
            local_config: None,
            journal: report::journal(&unit, since),
            unit,
            log: None,
        };
        let dir = report::dir_name(&self.me, report::unix_now());
        report::write_archive(Vec::new(), &dir, &report::members(&gathered))
            .map_err(|e| format!("cannot build the archive: {e}"))
    }
}
