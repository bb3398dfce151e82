//! The api role: accounts and the player's own data.

mod auth;
mod heroes;
mod player;

use actix_web::middleware::from_fn;
use actix_web::web;

use super::RouteDoc;
use crate::platform::rate_limit::limit_auth;

/// Routes of the api role.
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc {
        method: "post",
        path: "/api/auth/register",
        summary: "Create a player; returns the profile and a token",
        auth: false,
        idempotent: false,
    },
    RouteDoc {
        method: "post",
        path: "/api/auth/login",
        summary: "Exchange username and password for a token",
        auth: false,
        idempotent: false,
    },
    RouteDoc { method: "get", path: "/api/player", summary: "The caller's profile", auth: true, idempotent: false },
    RouteDoc {
        method: "get",
        path: "/api/player/ledger",
        summary: "The caller's currency ledger, newest first",
        auth: true,
        idempotent: false,
    },
];

/// Mounts the api role.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/auth")
            .wrap(from_fn(limit_auth))
            .route("/register", web::post().to(auth::post_register))
            .route("/login", web::post().to(auth::post_login)),
    )
    .route("/api/player", web::get().to(player::get_player))
    .route("/api/player/ledger", web::get().to(player::get_ledger))
    .service(
        web::scope("/api/heroes")
            .route("", web::get().to(heroes::get_heroes))
            .route("/catalog", web::get().to(heroes::get_catalog))
            .route("/{hero_id}/level-up", web::post().to(heroes::post_level_up))
            .route("/{hero_id}/promote", web::post().to(heroes::post_promote)),
    )
    .route("/api/team", web::get().to(heroes::get_team))
    .route("/api/team", web::put().to(heroes::put_team));
}
