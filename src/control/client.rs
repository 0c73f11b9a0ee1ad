//! The blocking client `tandemctl` uses: one request, one response.
//!
//! "tandemd is not running" is the commonest failure an operator meets, so it has its
//! own error variant and the CLI can print one clear line for it.

use super::{Request, Response, MAX_RESPONSE_LINE};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long the client waits for the daemon before giving up.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nobody listens at the socket path: tandemd is not running (or uses another path).
    #[error("cannot reach tandemd at {}: {} (is tandemd running?)", path.display(), describe(source))]
    Unreachable { path: PathBuf, source: io::Error },
    #[error("cannot talk to tandemd at {}: {}", path.display(), describe(source))]
    Io { path: PathBuf, source: io::Error },
    #[error("tandemd at {} sent an invalid response: {detail}", path.display())]
    Protocol { path: PathBuf, detail: String },
}

impl ClientError {
    /// Exit code for `tandemctl`: 3 when the daemon is unreachable, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::Unreachable { .. } => 3,
            _ => 1,
        }
    }
}

/// The OS message without Rust's " (os error N)" suffix, for one-line CLI output.
fn describe(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn connect(socket: &Path) -> Result<UnixStream, ClientError> {
    let path = socket.to_path_buf();
    let stream = UnixStream::connect(socket).map_err(|source| {
        let unreachable = matches!(
            source.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
        );
        if unreachable {
            ClientError::Unreachable {
                path: path.clone(),
                source,
            }
        } else {
            ClientError::Io {
                path: path.clone(),
                source,
            }
        }
    })?;
    let io_err = |source| ClientError::Io {
        path: path.clone(),
        source,
    };
    stream
        .set_read_timeout(Some(CLIENT_TIMEOUT))
        .map_err(io_err)?;
    stream
        .set_write_timeout(Some(CLIENT_TIMEOUT))
        .map_err(io_err)?;
    Ok(stream)
}

fn send(stream: &mut UnixStream, path: &Path, request: &Request) -> Result<(), ClientError> {
    let mut line = serde_json::to_vec(request).map_err(|e| ClientError::Protocol {
        path: path.to_path_buf(),
        detail: format!("cannot encode request: {e}"),
    })?;
    line.push(b'\n');
    stream.write_all(&line).map_err(|source| ClientError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads one response line; `Ok(None)` when the daemon closed the connection cleanly.
fn receive<R: BufRead>(reader: &mut R, path: &Path) -> Result<Option<Response>, ClientError> {
    let mut answer = Vec::new();
    reader
        .read_until(b'\n', &mut answer)
        .map_err(|source| ClientError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if answer.is_empty() {
        return Ok(None);
    }
    if answer.last() != Some(&b'\n') {
        let detail = if answer.len() > MAX_RESPONSE_LINE {
            "response too long".to_string()
        } else {
            "connection closed before a complete response".to_string()
        };
        return Err(ClientError::Protocol {
            path: path.to_path_buf(),
            detail,
        });
    }
    serde_json::from_slice(&answer)
        .map(Some)
        .map_err(|e| ClientError::Protocol {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
}

/// Sends `request` to the daemon at `socket` and returns its answer.
pub fn call(socket: &Path, request: &Request) -> Result<Response, ClientError> {
    let mut stream = connect(socket)?;
    send(&mut stream, socket, request)?;
    let mut reader = BufReader::new(stream.take(MAX_RESPONSE_LINE as u64 + 1));
    receive(&mut reader, socket)?.ok_or_else(|| ClientError::Protocol {
        path: socket.to_path_buf(),
        detail: "connection closed before a complete response".into(),
    })
}

/// `events-follow`: hands every response (the history first, then one per event) to
/// `each` until it returns false or the daemon closes the connection. Waits for events
/// without a timeout.
pub fn follow(socket: &Path, mut each: impl FnMut(Response) -> bool) -> Result<(), ClientError> {
    let mut stream = connect(socket)?;
    send(
        &mut stream,
        socket,
        &Request::new(super::Command::EventsFollow),
    )?;
    let mut reader = BufReader::new(stream);
    let mut first = true;
    loop {
        let response = match receive(&mut reader, socket)? {
            Some(r) => r,
            None if first => {
                return Err(ClientError::Protocol {
                    path: socket.to_path_buf(),
                    detail: "connection closed before a complete response".into(),
                })
            }
            None => return Ok(()),
        };
        if first {
            first = false;
            if response.ok {
                // The history arrived; from now on the daemon speaks only when
                // something happens, which may take hours.
                let _ = reader.get_ref().set_read_timeout(None);
            }
        }
        if !each(response) {
            return Ok(());
        }
    }
}
