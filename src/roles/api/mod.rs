//! The api role: accounts and the player's own data.

mod auth;
mod heroes;
mod player;
mod rewards;

use actix_web::middleware::from_fn;
use actix_web::web;

use super::RouteDoc;
use crate::platform::rate_limit::limit_auth;

/// Routes of the api role.
#[rustfmt::skip]
pub const ROUTES: &[RouteDoc] = &[
    RouteDoc { method: "post", path: "/api/auth/register", summary: "Create a player; returns the profile and a token", auth: false, idempotent: false },
    RouteDoc { method: "post", path: "/api/auth/login", summary: "Exchange username and password for a token", auth: false, idempotent: false },
    RouteDoc { method: "get", path: "/api/player", summary: "The caller's profile", auth: true, idempotent: false },
    RouteDoc { method: "get", path: "/api/player/ledger", summary: "The caller's currency ledger, newest first", auth: true, idempotent: false },
    RouteDoc { method: "get", path: "/api/heroes/catalog", summary: "Every hero's static data (cacheable, ETag)", auth: false, idempotent: false },
    RouteDoc { method: "get", path: "/api/heroes", summary: "The caller's heroes with current stats and power", auth: true, idempotent: false },
    RouteDoc { method: "post", path: "/api/heroes/{hero_id}/level-up", summary: "Raise a hero {levels}; gold for all levels or none", auth: true, idempotent: true },
    RouteDoc { method: "post", path: "/api/heroes/{hero_id}/promote", summary: "Spend shards for the next star", auth: true, idempotent: true },
    RouteDoc { method: "get", path: "/api/team", summary: "The caller's six team slots and team power", auth: true, idempotent: false },
    RouteDoc { method: "put", path: "/api/team", summary: "Replace the six slots {slots}", auth: true, idempotent: false },
    RouteDoc { method: "get", path: "/api/idle", summary: "Idle rewards accrued since the last claim", auth: true, idempotent: false },
    RouteDoc { method: "post", path: "/api/idle/claim", summary: "Claim idle rewards (12-hour cap)", auth: true, idempotent: true },
    RouteDoc { method: "get", path: "/api/daily-login", summary: "The 7-day login cycle and today's place in it", auth: true, idempotent: false },
    RouteDoc { method: "post", path: "/api/daily-login/claim", summary: "Claim today's login reward", auth: true, idempotent: true },
    RouteDoc { method: "get", path: "/api/mail", summary: "Unexpired system mail, newest first", auth: true, idempotent: false },
    RouteDoc { method: "post", path: "/api/mail/{id}/claim", summary: "Claim a mail's attachments once", auth: true, idempotent: true },
    RouteDoc { method: "get", path: "/api/leaderboards/{board}", summary: "Top N of power, campaign or arena, and the caller's rank", auth: true, idempotent: false },
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
    .route("/api/team", web::put().to(heroes::put_team))
    .route("/api/idle", web::get().to(rewards::get_idle))
    .route("/api/idle/claim", web::post().to(rewards::post_idle_claim))
    .route("/api/daily-login", web::get().to(rewards::get_daily))
    .route("/api/daily-login/claim", web::post().to(rewards::post_daily_claim))
    .route("/api/mail", web::get().to(rewards::get_mail))
    .route("/api/mail/{id}/claim", web::post().to(rewards::post_mail_claim))
    .route("/api/leaderboards/{board}", web::get().to(rewards::get_leaderboard));
}
