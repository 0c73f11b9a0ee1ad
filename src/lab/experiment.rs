//! What every experiment (bench, chaos, steady) shares apart from observing: its error
//! type, the context that makes long waits interruptible, the JSON report writer, and
//! the log tails printed when a run fails.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::observe::events::readable_tail;
use super::Lab;

/// Errors of an experiment run.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error("interrupted")]
    Interrupted,
    #[error(transparent)]
    Lab(#[from] super::LabError),
    #[error("{0}")]
    Failed(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> ExperimentError {
    let context = context.into();
    move |source| ExperimentError::Io { context, source }
}

/// The interrupt flag and the progress output of a run.
pub(crate) struct Ctx<'a> {
    pub(crate) stop: &'a AtomicBool,
    pub(crate) out: &'a mut dyn Write,
}

impl Ctx<'_> {
    pub(crate) fn check(&self) -> Result<(), ExperimentError> {
        check(self.stop)
    }

    pub(crate) fn sleep(&self, d: Duration) -> Result<(), ExperimentError> {
        sleep(self.stop, d)
    }

    /// Polls `f` every `poll` until it yields a value, fails, or `timeout` passes.
    pub(crate) fn wait<T>(
        &self,
        what: &str,
        timeout: Duration,
        poll: Duration,
        mut f: impl FnMut() -> Result<Option<T>, ExperimentError>,
    ) -> Result<T, ExperimentError> {
        let end = Instant::now() + timeout;
        loop {
            self.check()?;
            if let Some(v) = f()? {
                return Ok(v);
            }
            if Instant::now() >= end {
                return Err(ExperimentError::Failed(format!(
                    "{what}: not reached within {timeout:?}"
                )));
            }
            thread::sleep(poll);
        }
    }
}

/// `Interrupted` once `stop` is set.
pub(crate) fn check(stop: &AtomicBool) -> Result<(), ExperimentError> {
    if stop.load(Ordering::Relaxed) {
        Err(ExperimentError::Interrupted)
    } else {
        Ok(())
    }
}

/// Sleeps `d` unless `stop` is set meanwhile.
pub(crate) fn sleep(stop: &AtomicBool, d: Duration) -> Result<(), ExperimentError> {
    if super::sleep_unless_stopped(stop, d) {
        Ok(())
    } else {
        Err(ExperimentError::Interrupted)
    }
}

/// After a failed run: what went wrong and each node's last log lines, for people.
pub(crate) fn print_failure(out: &mut dyn Write, lab: &Lab, headline: &str) {
    let _ = writeln!(out, "{headline}; last log lines:");
    for node in 1..=lab.node_count() {
        let _ = writeln!(out, "---- n{node} ----");
        for l in readable_tail(&lab.logs(node), 15) {
            let _ = writeln!(out, "{l}");
        }
    }
}

/// Writes any lab report (bench, false positives, chaos) as pretty JSON.
pub fn write_json<T: Serialize>(report: &T, path: &Path) -> Result<(), ExperimentError> {
    let text = serde_json::to_string_pretty(report)
        .map_err(|e| ExperimentError::Failed(format!("serializing the report: {e}")))?;
    std::fs::write(path, text + "\n").map_err(io_err(format!("writing {}", path.display())))
}
