//! The battle role: campaign, arena and replays. Its routes are not built yet;
//! the role already serves health, metrics and OpenAPI so it can be deployed.

use actix_web::web;

use super::RouteDoc;

/// Routes of the battle role.
pub const ROUTES: &[RouteDoc] = &[];

/// Mounts the battle role.
pub fn configure(_cfg: &mut web::ServiceConfig) {}
