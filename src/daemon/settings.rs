//! Resolves the daemon's [`Settings`](super::Settings) from the config file and the
//! command line.

use super::Settings;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{0}")]
    Config(String),
}

pub fn load(
    _config: &Path,
    _node: &str,
    _socket: PathBuf,
    _state_dir: PathBuf,
) -> Result<Settings, SettingsError> {
    Err(SettingsError::Config("config layer not merged yet".into()))
}
