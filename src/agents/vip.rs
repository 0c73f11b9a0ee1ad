//! `vip` resources (placeholder: filled in by the agents work).

use super::OpContext;
use crate::core::OpResult;

pub async fn run(ctx: &OpContext<'_>) -> OpResult {
    OpResult::Failed(format!(
        "{}: vip agent not implemented yet",
        ctx.resource.name
    ))
}

pub async fn announce_again(_resource: &crate::config::ResourceConfig) {}
