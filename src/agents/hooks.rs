//! Notify hooks (placeholder).
