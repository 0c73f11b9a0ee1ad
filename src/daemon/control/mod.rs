//! The daemon's side of the control socket: binding, authorization by `SO_PEERCRED`
//! ([`access`]), line framing with a size limit, and forwarding of authorized commands.
//!
//! This runs on the daemon's control runtime, never on the heartbeat thread. It does not
//! answer commands itself: each authorized command goes into a channel as a
//! [`ControlCall`] and whoever owns the state (the core thread) replies. Malformed input
//! of any kind gets an error reply; nothing a client sends can crash the daemon.

mod access;
mod report;

pub use access::{authorize, Access, AccessPolicy, Peer};
pub use report::spawn_peer_listeners;

use super::events::EventTotals;
use super::reload::Reloader;
use crate::agents::check_state::CheckBoard;
use crate::control::{
    parse_request, Command, EventRecord, RequestError, Response, StatusReport, MAX_REQUEST_LINE,
};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::{broadcast, mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

/// How long a connection waits for the core to answer one command.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 32;

/// A request for the state owner (the heartbeat thread), with where to send the answer.
#[derive(Debug)]
pub enum ControlCall {
    /// An authorized client command.
    Command {
        command: Command,
        reply: oneshot::Sender<Response>,
    },
    /// The event history and a subscription to every later event, taken at the same
    /// moment so a follower neither misses nor repeats one.
    Follow { reply: oneshot::Sender<EventFeed> },
    /// A reloaded config, already validated on the control thread: apply it or refuse.
    Apply {
        config: Arc<crate::config::Config>,
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// What the metrics endpoint shows.
    Metrics {
        reply: oneshot::Sender<(StatusReport, EventTotals)>,
    },
}

/// What `events --follow` gets: the history, then the live feed.
#[derive(Debug)]
pub struct EventFeed {
    pub history: Vec<EventRecord>,
    pub live: broadcast::Receiver<EventRecord>,
}

/// Where the connection handlers send their work.
#[derive(Clone, Debug)]
pub struct Backend {
    pub calls: mpsc::Sender<ControlCall>,
    /// `None` when the daemon was started without a config file (tests): `reload` then
    /// says so.
    pub reloader: Option<Arc<Reloader>>,
    /// This node's health checks, added to every status reply.
    pub checks: Arc<CheckBoard>,
    /// This daemon's etcd lease, added to the arbiter of every status reply.
    pub arbiter: Arc<crate::daemon::arbiter::ArbiterBoard>,
}

impl Backend {
    pub fn new(calls: mpsc::Sender<ControlCall>) -> Backend {
        Backend {
            calls,
            reloader: None,
            checks: Arc::default(),
            arbiter: Arc::default(),
        }
    }

    /// Adds what other threads than the one that built `status` know: the checks run
    /// on the executor, the etcd lease lives on the arbiter thread.
    pub fn complete(&self, status: &mut StatusReport) {
        status.checks = self.checks.snapshot();
        if let Some(a) = status.view.arbiter.as_mut() {
            a.session = Some(self.arbiter.snapshot());
        }
    }

    /// Sends `make(reply)` to the state owner and waits (bounded) for the answer.
    pub async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> ControlCall,
    ) -> Result<T, String> {
        let (reply, answer) = oneshot::channel();
        if self.calls.send(make(reply)).await.is_err() {
            return Err("tandemd is shutting down".into());
        }
        match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err("tandemd dropped the request (shutting down?)".into()),
            Err(_) => Err(format!(
                "tandemd did not answer within {}s",
                ANSWER_TIMEOUT.as_secs()
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot create directory {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("another tandemd is already listening on {0}")]
    InUse(PathBuf),
    #[error("cannot remove stale socket {path}: {source}")]
    RemoveStale { path: PathBuf, source: io::Error },
    #[error("cannot listen on {path}: {source}")]
    Bind { path: PathBuf, source: io::Error },
    #[error("cannot set permissions of {path}: {source}")]
    Permissions { path: PathBuf, source: io::Error },
}

/// Creates the socket's directory if needed, removes a stale socket file (refusing if a
/// live daemon still answers on it), binds, and sets mode 0660 with group `tandem` when
/// that group exists. Must be called inside a tokio runtime.
pub fn bind(path: &Path, policy: &AccessPolicy) -> Result<UnixListener, ServerError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|source| ServerError::CreateDir {
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
    }
    if path.symlink_metadata().is_ok() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ServerError::InUse(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(|source| ServerError::RemoveStale {
            path: path.to_path_buf(),
            source,
        })?;
    }
    let listener = UnixListener::bind(path).map_err(|source| ServerError::Bind {
        path: path.to_path_buf(),
        source,
    })?;
    let perm_err = |source| ServerError::Permissions {
        path: path.to_path_buf(),
        source,
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(perm_err)?;
    if let Some(gid) = policy.read_only_gid {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(perm_err)?;
    }
    Ok(listener)
}

/// Accepts connections until the task is dropped.
pub async fn serve(listener: UnixListener, policy: Arc<AccessPolicy>, backend: Backend) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let accept = || listener.accept();
    while let Some((permit, (stream, _))) = accept_next(&slots, "control socket", accept).await {
        let access = match stream.peer_cred() {
            Ok(c) => policy.access(&Peer {
                uid: c.uid(),
                gid: c.gid(),
                pid: c.pid(),
            }),
            Err(e) => {
                tracing::warn!("control socket: cannot read peer credentials: {e}");
                Access::Denied
            }
        };
        let backend = backend.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_connection(stream, access, backend).await {
                tracing::debug!("control connection ended: {e}");
            }
            drop(permit);
        });
    }
}

/// Waits for a free slot among `slots`, then for the next connection: a failed accept
/// (out of descriptors, say) is logged and tried again after a pause. `None` once the
/// slots are closed. Shared by the control socket and the metrics endpoint.
pub(super) async fn accept_next<C, F>(
    slots: &Arc<Semaphore>,
    what: &str,
    accept: impl Fn() -> F,
) -> Option<(OwnedSemaphorePermit, C)>
where
    F: std::future::Future<Output = io::Result<C>>,
{
    let permit = slots.clone().acquire_owned().await.ok()?;
    loop {
        match accept().await {
            Ok(connection) => return Some((permit, connection)),
            Err(e) => {
                tracing::warn!("{what}: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// One line read with a bound on its length.
#[derive(Debug, PartialEq, Eq)]
pub enum LineRead {
    Line(Vec<u8>),
    /// Clean end of stream between lines.
    Eof,
    /// The stream ended in the middle of a line.
    Incomplete,
    /// More than the limit arrived without a newline.
    TooLong,
}

/// Reads up to and excluding the next `\n`, never buffering more than `max` bytes.
pub async fn read_line_limited<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> io::Result<LineRead> {
    let mut line = Vec::new();
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if line.is_empty() {
                LineRead::Eof
            } else {
                LineRead::Incomplete
            });
        }
        let (chunk, found) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], Some(i)),
            None => (buf, None),
        };
        if line.len() + chunk.len() > max {
            return Ok(LineRead::TooLong);
        }
        line.extend_from_slice(chunk);
        match found {
            Some(i) => {
                reader.consume(i + 1);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(LineRead::Line(line));
            }
            None => {
                let n = chunk.len();
                reader.consume(n);
            }
        }
    }
}

/// Serves requests on one connection until the client closes it or sends something the
/// stream cannot recover from (too long, cut off). Each request gets exactly one reply,
/// except `events-follow`, which keeps writing events until the client goes away.
pub async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    access: Access,
    backend: Backend,
) -> io::Result<()> {
    let (read, mut write) = tokio::io::split(stream);
    let mut reader = BufReader::new(read);
    loop {
        let (response, keep_going) = match read_line_limited(&mut reader, MAX_REQUEST_LINE).await? {
            LineRead::Eof => return Ok(()),
            LineRead::TooLong => (Response::error(RequestError::TooLong.to_string()), false),
            LineRead::Incomplete => (Response::error(RequestError::Incomplete.to_string()), false),
            LineRead::Line(line) if line.iter().all(u8::is_ascii_whitespace) => continue,
            LineRead::Line(line) => match authorized(&line, access) {
                Err(refusal) => (Response::error(refusal), true),
                Ok(Command::EventsFollow) => {
                    return follow_events(&mut reader, &mut write, &backend).await;
                }
                Ok(command) => (answer(command, &backend).await, true),
            },
        };
        write_response(&mut write, &response).await?;
        if !keep_going {
            let _ = write.shutdown().await;
            return Ok(());
        }
    }
}

async fn write_response<W: AsyncWrite + Unpin>(
    write: &mut W,
    response: &Response,
) -> io::Result<()> {
    let mut out = serde_json::to_vec(response).unwrap_or_else(|e| {
        format!("{{\"ok\":false,\"error\":\"cannot encode response: {e}\"}}").into_bytes()
    });
    out.push(b'\n');
    write.write_all(&out).await?;
    write.flush().await
}

/// The parsed command if `access` allows it, else the reply that refuses it.
fn authorized(line: &[u8], access: Access) -> Result<Command, String> {
    let request = parse_request(line).map_err(|e| e.to_string())?;
    authorize(access, &request.command)?;
    Ok(request.command)
}

async fn answer(command: Command, backend: &Backend) -> Response {
    if command == Command::Reload {
        return match &backend.reloader {
            Some(reloader) => reloader.reload("tandemctl reload").await,
            None => Response::error("tandemd was started without a config file: nothing to reload"),
        };
    }
    if command == Command::Report {
        return report::bundle(backend).await;
    }
    let mut response = backend
        .ask(|reply| ControlCall::Command { command, reply })
        .await
        .unwrap_or_else(Response::error);
    if let Some(status) = &mut response.status {
        backend.complete(status);
    }
    response
}

/// `events-follow`: the history as one `events` reply, then one `event` line per new
/// event, until the client closes its end (or stops reading and the write fails).
async fn follow_events<R, W>(reader: &mut R, write: &mut W, backend: &Backend) -> io::Result<()>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut feed = match backend.ask(|reply| ControlCall::Follow { reply }).await {
        Ok(feed) => feed,
        Err(e) => return write_response(write, &Response::error(e)).await,
    };
    write_response(write, &Response::events(std::mem::take(&mut feed.history))).await?;
    loop {
        tokio::select! {
            next = feed.live.recv() => match next {
                Ok(event) => write_response(write, &Response::event(event)).await?,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let gap = Response::error(format!("{n} events were skipped: this reader is too slow"));
                    write_response(write, &gap).await?;
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            // Anything the client sends now is ignored; its end of stream ends the feed.
            read = read_line_limited(reader, MAX_REQUEST_LINE) => match read? {
                LineRead::Line(_) => {}
                _ => return Ok(()),
            },
        }
    }
}
