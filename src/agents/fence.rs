//! Fence agents (placeholder).

use crate::config::FenceAgentConfig;
use crate::core::FenceResult;
use std::time::Duration;

pub async fn fence(_agents: &[FenceAgentConfig], target: &str, _timeout: Duration) -> FenceResult {
    FenceResult::Failed(format!(
        "cannot fence {target}: fence agents not implemented yet"
    ))
}
