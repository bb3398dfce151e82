//! Divine Heroes server: one library, one binary, three roles.
//!
//! Layers from the inside out (an inner layer never imports an outer one):
//! `game` (pure rules) → `store` (persistence) → `platform` (config, auth, cache,
//! limits, metrics) → `roles` (HTTP handlers) → `server` (wiring).

pub mod game;
pub mod platform;
pub mod roles;
pub mod server;
pub mod store;
