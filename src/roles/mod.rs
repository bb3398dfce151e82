//! HTTP handlers, one module per role, each mounted through one `configure`.

pub mod common;
pub mod guild_state;
pub mod views;

#[cfg(feature = "api")]
pub mod api;
#[cfg(feature = "battle")]
pub mod battle;
#[cfg(feature = "gacha")]
pub mod gacha;

use utoipa_actix_web::service_config::ServiceConfig;

use crate::platform::config::Role;

/// Mounts the chosen role's routes; each route documents itself, so the
/// OpenAPI document lists exactly what is mounted.
pub fn configure(role: Role, cfg: &mut ServiceConfig) {
    #[cfg(feature = "gacha")]
    if role.mounts(Role::Gacha) {
        gacha::configure(cfg);
    }
    #[cfg(feature = "battle")]
    if role.mounts(Role::Battle) {
        battle::configure(cfg);
    }
    #[cfg(feature = "api")]
    if role.mounts(Role::Api) {
        api::configure(cfg);
    }
    common::configure(cfg);
}
