//! The configuration: `/etc/tandem/tandem.yaml` into a validated [`Config`].
//!
//! Loading has two steps, like ripgrep's flags: [`raw`] turns YAML into loosely typed
//! structs (the only place that knows the YAML crate), then [`validate`] converts them
//! field by field into the typed [`Config`], collecting *every* problem with its file,
//! line, column and key path. The authentication keys named in the file are read and
//! checked as part of validation, so a config that loads is one the daemon can run.

pub mod defaults;
mod digest;
mod duration;
mod error;
mod excerpt;
mod key;
mod locate;
mod model;
mod raw;
pub mod redact;
pub mod secrets;
pub mod trust;
mod validate;
mod warnings;

pub use duration::{format_duration, parse_duration};
pub use error::{ConfigError, ConfigErrors, KeyError};
pub use key::{generate_key, read_key, try_generate_key, write_key, KeyReadError, KEY_LEN};
pub use model::*;
pub use validate::{
    fragmentation_warning, largest_heartbeat, largest_heartbeat_of, FragmentationWarning,
    HeartbeatSize, HEARTBEAT_BUDGET, MAX_LINKS,
};
pub use warnings::ConfigWarning;

use std::path::Path;

/// Default location of the config file.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/tandem/tandem.yaml";
/// Default location of the authentication key (`tandemctl keygen`).
pub const DEFAULT_AUTHKEY_PATH: &str = "/etc/tandem/authkey";

/// Reads, parses and validates a config file, and reads the key files it names.
///
/// A file larger than [`defaults::MAX_CONFIG_BYTES`] is refused before it is read
/// (and a file that grows past the limit while being read, or a pipe that never ends,
/// is cut off there): a config is a few kilobytes, anything else is the wrong file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let (text, meta) =
        read_bounded(path).map_err(|m| ConfigErrors(vec![ConfigError::file(&file, &m)]))?;
    parse_with(&text, &file, Some(&meta))
}

fn read_bounded(path: &Path) -> Result<(String, std::fs::Metadata), String> {
    use std::io::Read;
    let unreadable = |e: std::io::Error| format!("cannot read the config file: {e}");
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    let size = meta.len();
    if size > defaults::MAX_CONFIG_BYTES {
        return Err(too_large(&size.to_string()));
    }
    let mut text = String::new();
    file.take(defaults::MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(unreadable)?;
    if text.len() as u64 > defaults::MAX_CONFIG_BYTES {
        return Err(too_large("more than that"));
    }
    Ok((text, meta))
}

fn too_large(size: &str) -> String {
    format!(
        "the config file is {size} bytes; the limit is {} bytes (a config is a few \
         kilobytes: is this the right file?)",
        defaults::MAX_CONFIG_BYTES
    )
}

/// Parses and validates config text; `file` names it in errors and anchors relative
/// key paths. Also reads the key files the text names.
///
/// Text that was not read from a file has no mode, so the check of inline secrets
/// against who may read the file is [`load`]'s alone.
pub fn parse_str(text: &str, file: &str) -> Result<Config, ConfigErrors> {
    parse_with(text, file, None)
}

fn parse_with(
    text: &str,
    file: &str,
    facts: Option<&std::fs::Metadata>,
) -> Result<Config, ConfigErrors> {
    match raw::parse(text) {
        Ok(raw) => validate::validate(raw, text, file, facts),
        Err(e) => Err(ConfigErrors(vec![ConfigError::new(
            file,
            e.line.zip(e.column),
            None,
            &e.message,
        )])),
    }
}

#[cfg(test)]
mod tests;
