//! Errors of the config layer.
//!
//! A config error always names the file, and where it can the line and column (syntax
//! and type errors, and semantic errors whose key we could find in the text) and the key
//! path (`groups[0].resources[1].exec.start`), so an admin can go straight to the
//! offending line. Errors are collected, never returned one at a time: fixing a config
//! should not be a loop of "run, fix one thing, run again".

use super::excerpt::{bound_message, bound_path};
use std::fmt;
use std::path::PathBuf;

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Key path such as `heartbeat.interval` or `nodes[1].addresses[0]`.
    pub path: Option<String>,
    pub message: String,
}

impl ConfigError {
    /// An error whose message and key path are bounded (see [`super::excerpt`]): every
    /// config error is built here, so none can echo a huge value back whole.
    pub fn new(
        file: &str,
        position: Option<(usize, usize)>,
        path: Option<&str>,
        message: &str,
    ) -> ConfigError {
        ConfigError {
            file: file.to_string(),
            line: position.map(|p| p.0),
            column: position.map(|p| p.1),
            path: path.map(bound_path),
            message: bound_message(message),
        }
    }

    /// An error about the whole file (unreadable, too large, exposed).
    pub fn file(file: &str, message: &str) -> ConfigError {
        ConfigError::new(file, None, None, message)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        f.write_str(": ")?;
        if let Some(path) = &self.path {
            write!(f, "{path}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a config file; never empty when returned as an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        self.0.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Failure to create or write an authentication key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{0} already exists; use --force to replace it")]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the operating system's random generator failed: {0}")]
    Rng(String),
}
