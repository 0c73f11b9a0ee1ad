//! systemd readiness notification (`sd_notify`), for `Type=notify` units.
//!
//! The protocol is one datagram on the socket named by `$NOTIFY_SOCKET`, so a few lines
//! of std beat a dependency. Without the variable (tests, foreground runs, other init
//! systems) every call is a no-op. A failed send is logged and otherwise ignored: the
//! cluster must not stop because the service manager went away.

use std::os::unix::net::UnixDatagram;

/// Tells systemd the daemon is up: control socket listening, heartbeat links bound.
pub fn ready() {
    send("READY=1\nSTATUS=running");
}

/// The one line `systemctl status` shows under the unit (`STATUS=`), e.g. what the
/// lease guard last had to do.
pub fn status(line: &str) {
    send(&status_message(line));
}

/// A newline would start another assignment: the line stays one line.
fn status_message(line: &str) -> String {
    format!("STATUS={}", line.replace('\n', " "))
}

/// Tells systemd the heartbeat thread is alive (`WatchdogSec=`).
pub fn watchdog() {
    send("WATCHDOG=1");
}

/// How often to send [`watchdog`]: half the unit's `WatchdogSec=`, as sd_watchdog_enabled(3)
/// advises, or `None` when no watchdog is set up for this process.
pub fn watchdog_period() -> Option<std::time::Duration> {
    watchdog_period_from(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn watchdog_period_from(
    usec: Option<&str>,
    pid: Option<&str>,
    me: u32,
) -> Option<std::time::Duration> {
    // WATCHDOG_PID names the process the watchdog is for; a child that inherited the
    // environment must not ping on its parent's behalf.
    if pid.is_some_and(|p| p.parse::<u32>().ok() != Some(me)) {
        return None;
    }
    let usec: u64 = usec?.parse().ok().filter(|u| *u > 0)?;
    Some(std::time::Duration::from_micros(usec) / 2)
}

/// Tells systemd the daemon is shutting down on purpose.
pub fn stopping() {
    send("STOPPING=1");
}

fn send(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send_to(&path, state) {
        tracing::warn!("sd_notify {state:?}: {e}");
    }
}

fn send_to(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_bytes();
    // A leading '@' names a socket in the abstract namespace (sd_notify(3)).
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        socket.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        socket.send_to(state.as_bytes(), path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{send_to, status_message, watchdog_period_from};
    use std::time::Duration;

    #[test]
    fn watchdog_pings_at_half_the_period_and_only_for_its_own_pid() {
        assert_eq!(
            watchdog_period_from(Some("10000000"), Some("42"), 42),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            watchdog_period_from(Some("10000000"), None, 42),
            Some(Duration::from_secs(5))
        );
        assert_eq!(watchdog_period_from(Some("10000000"), Some("41"), 42), None);
        assert_eq!(watchdog_period_from(None, None, 42), None);
        assert_eq!(watchdog_period_from(Some("0"), None, 42), None);
        assert_eq!(watchdog_period_from(Some("soon"), None, 42), None);
    }
    use std::os::unix::net::UnixDatagram;

    #[test]
    fn a_status_is_one_assignment() {
        assert_eq!(
            status_message("took down\nREADY=1"),
            "STATUS=took down READY=1"
        );
    }

    #[test]
    fn sends_the_state_to_a_path_socket() {
        let dir = std::env::temp_dir().join(format!("tandem-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        send_to(path.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sends_the_state_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("tandem-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&addr).unwrap();
        send_to(std::ffi::OsStr::new(&format!("@{name}")), "STOPPING=1").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }
}
