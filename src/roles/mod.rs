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

use actix_web::dev::HttpServiceFactory;
use actix_web::middleware::from_fn;
use utoipa_actix_web::OpenApiFactory;

use crate::platform::config::Role;
use crate::platform::rate_limit::limit_auth;

/// Where the routes are mounted: an HTTP worker's app (actix's `ServiceConfig`:
/// the handlers alone) or the OpenAPI document's builder (`utoipa_actix_web`'s:
/// the handlers and their documentation), from the same `configure`. Every
/// worker builds its own app; collecting every route's schemas there cost each
/// worker several MB of short-lived maps at start, which the allocator then
/// kept as idle memory. Both take only documented handlers.
pub trait Mount {
    /// The configuration of a scope's routes.
    type Scoped<'a>: Mount;
    /// Mounts one handler.
    fn service<F: HttpServiceFactory + OpenApiFactory + 'static>(&mut self, handler: F) -> &mut Self;
    /// Mounts `routes` under `path`, each behind the sign-in rate limit (`limit_auth`).
    fn auth_scope(&mut self, path: &str, routes: impl for<'a> FnOnce(&mut Self::Scoped<'a>)) -> &mut Self;
}

impl Mount for actix_web::web::ServiceConfig {
    type Scoped<'a> = actix_web::web::ServiceConfig;

    fn service<F: HttpServiceFactory + OpenApiFactory + 'static>(&mut self, handler: F) -> &mut Self {
        actix_web::web::ServiceConfig::service(self, handler)
    }

    fn auth_scope(&mut self, path: &str, routes: impl for<'a> FnOnce(&mut Self::Scoped<'a>)) -> &mut Self {
        actix_web::web::ServiceConfig::service(
            self,
            actix_web::web::scope(path).wrap(from_fn(limit_auth)).configure(routes),
        )
    }
}

impl Mount for utoipa_actix_web::service_config::ServiceConfig<'_> {
    type Scoped<'a> = utoipa_actix_web::service_config::ServiceConfig<'a>;

    fn service<F: HttpServiceFactory + OpenApiFactory + 'static>(&mut self, handler: F) -> &mut Self {
        utoipa_actix_web::service_config::ServiceConfig::service(self, handler)
    }

    fn auth_scope(&mut self, path: &str, routes: impl for<'a> FnOnce(&mut Self::Scoped<'a>)) -> &mut Self {
        let scope = utoipa_actix_web::scope(path).wrap(from_fn(limit_auth)).configure(routes);
        utoipa_actix_web::service_config::ServiceConfig::service(self, scope)
    }
}

/// Mounts the chosen role's routes; each route documents itself, so the
/// OpenAPI document lists exactly what is mounted.
pub fn configure<C: Mount>(role: Role, cfg: &mut C) {
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
