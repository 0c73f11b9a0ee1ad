//! Child processes for agents (placeholder: filled in by the agents work).
