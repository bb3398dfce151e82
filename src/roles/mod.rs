//! HTTP handlers, one module per role, each mounted through one `configure`.

pub mod common;
pub mod views;

#[cfg(feature = "api")]
pub mod api;
#[cfg(feature = "battle")]
pub mod battle;
#[cfg(feature = "gacha")]
pub mod gacha;

use actix_web::web;

use crate::platform::config::Role;

/// A route as listed in the OpenAPI document.
#[derive(Debug, Clone, Copy)]
pub struct RouteDoc {
    /// HTTP method, lower-case.
    pub method: &'static str,
    /// Path with `{param}` segments.
    pub path: &'static str,
    /// One line on what it does.
    pub summary: &'static str,
    /// Needs a bearer token.
    pub auth: bool,
    /// Needs an `Idempotency-Key`.
    pub idempotent: bool,
}

/// Mounts the chosen role's routes. Role scopes with longer prefixes go first,
/// since actix does not fall through from a matched scope.
pub fn configure(role: Role, cfg: &mut web::ServiceConfig) {
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

/// The routes the chosen role serves, for the OpenAPI document.
pub fn route_docs(role: Role) -> Vec<RouteDoc> {
    let mut docs = common::ROUTES.to_vec();
    #[cfg(feature = "api")]
    if role.mounts(Role::Api) {
        docs.extend_from_slice(api::ROUTES);
    }
    #[cfg(feature = "gacha")]
    if role.mounts(Role::Gacha) {
        docs.extend_from_slice(gacha::ROUTES);
    }
    #[cfg(feature = "battle")]
    if role.mounts(Role::Battle) {
        docs.extend_from_slice(battle::ROUTES);
    }
    docs
}
