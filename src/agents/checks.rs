//! Health checks that steer ownership (placeholder).
