//! Divine Heroes server: one library, one binary, three roles.
//!
//! Layers from the inside out (an inner layer never imports an outer one):
//! `game` (pure rules) → `store` (persistence) → `platform` (config, auth, cache,
//! limits, metrics) → `roles` (HTTP handlers) → `server` (wiring).

// Handler errors carry a JSON details object; they are built once per failed
// request, so their size on the error path is not worth boxing.
#![allow(clippy::result_large_err)]

pub mod admin;
pub mod audit;
pub mod backup;
pub mod game;
pub mod ops;
pub mod platform;
pub mod roles;
pub mod server;
pub mod state;
pub mod store;
pub mod verify;
pub mod workers;
pub mod writes;
