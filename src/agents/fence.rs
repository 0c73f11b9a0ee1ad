//! Fence agents (placeholder).
