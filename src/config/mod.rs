//! The configuration: `/etc/tandem/tandem.yaml` into a validated [`Config`].
//!
//! Loading has two steps, like ripgrep's flags: [`raw`] turns YAML into loosely typed
//! structs (the only place that knows the YAML crate), then [`validate`] converts them
//! field by field into the typed [`Config`], collecting *every* problem with its file,
//! line, column and key path. The authentication keys named in the file are read and
//! checked as part of validation, so a config that loads is one the daemon can run.

pub mod defaults;
mod duration;
mod error;
mod key;
mod locate;
mod model;
mod raw;
mod validate;

pub use duration::{format_duration, parse_duration};
pub use error::{ConfigError, ConfigErrors, KeyError};
pub use key::{generate_key, read_key, try_generate_key, write_key, KeyReadError, KEY_LEN};
pub use model::*;
pub use validate::MAX_LINKS;

use std::path::Path;

/// Default location of the config file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/tandem/tandem.yaml";
/// Default location of the authentication key (`tandemctl keygen`).
pub const DEFAULT_AUTHKEY_PATH: &str = "/etc/tandem/authkey";

/// Reads, parses and validates a config file, and reads the key files it names.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse_str(&text, &file),
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            file,
            line: None,
            column: None,
            path: None,
            message: format!("cannot read the config file: {e}"),
        }])),
    }
}

/// Parses and validates config text; `file` names it in errors and anchors relative
/// key paths. Also reads the key files the text names.
pub fn parse_str(text: &str, file: &str) -> Result<Config, ConfigErrors> {
    match raw::parse(text) {
        Ok(raw) => validate::validate(raw, text, file),
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            file: file.to_string(),
            line: e.line,
            column: e.column,
            path: None,
            message: e.message,
        }])),
    }
}

#[cfg(test)]
mod tests;
