//! Register, login, logout and password change.

use actix_web::{post, web, HttpResponse};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::game::ids::PlayerId;
use crate::game::player::Player;
use crate::platform::auth::{hash_password, verify_password, AuthPlayer};
use crate::platform::error::{AppError, ErrorCode};
use crate::platform::no_body::NoBody;
use crate::platform::rate_limit::Verdict;
use crate::roles::views::{player_view, write, PlayerView};
use crate::state::AppState;
use crate::store::LedgerReason;
use crate::writes::Applied;

/// Register and login body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    username: String,
    #[schema(value_type = String, format = Password)]
    password: SecretString,
}

const PASSWORD_MIN: usize = 8;
const PASSWORD_MAX: usize = 128;

fn check_username(u: &str) -> Result<(), AppError> {
    let ok = (3..=20).contains(&u.len()) && u.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(AppError::new(ErrorCode::ValidationFailed, "username must be 3-20 characters of A-Z, a-z, 0-9 and _")
            .with_details(json!({"field": "username"})))
    }
}

fn check_password(p: &SecretString) -> Result<(), AppError> {
    use secrecy::ExposeSecret;
    let n = p.expose_secret().chars().count();
    if (PASSWORD_MIN..=PASSWORD_MAX).contains(&n) {
        Ok(())
    } else {
        Err(AppError::new(
            ErrorCode::ValidationFailed,
            format!("password must be {PASSWORD_MIN}-{PASSWORD_MAX} characters"),
        )
        .with_details(json!({"field": "password"})))
    }
}

/// The answer of a registration: the new player and a token.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RegisteredView {
    /// The new player's profile.
    pub player: PlayerView,
    /// Bearer token.
    pub token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// When the token expires.
    pub expires_at: DateTime<Utc>,
}

/// The answer of a login.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenView {
    /// Bearer token.
    pub token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// When the token expires.
    pub expires_at: DateTime<Utc>,
    /// Whose.
    pub player_id: PlayerId,
}

/// `POST /api/auth/register`: the player, its starter heroes and team, and a token.
#[utoipa::path(
    post,
    path = "/register",
    request_body = Credentials,
    responses((status = 201, description = "OK", body = RegisteredView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    description = "Create a player; returns the profile and a token"
)]
#[post("/register")]
#[tracing::instrument(skip_all, fields(username = %body.username))]
pub async fn post_register(state: web::Data<AppState>, body: web::Json<Credentials>) -> Result<HttpResponse, AppError> {
    let Credentials { username, password } = body.into_inner();
    check_username(&username)?;
    check_password(&password)?;
    let hash = web::block(move || hash_password(&password)).await.map_err(AppError::internal)??;
    let now = state.clock.now();
    let mut player = Player::new(uuid::Uuid::new_v4().simple().to_string(), &username, hash, now);
    // Committed before any pull can use it: the commitments show at once.
    player.fairness.commit_if_missing(&crate::game::rng::fresh_secret());
    player.recompute_scores(&state.data.catalog);
    state.store.create_player(&player).await?;
    let (token, expires_at) = state.tokens.issue(&player.id, player.token_version, now)?;
    tracing::info!(player_id = %player.id, "player registered");
    Ok(HttpResponse::Created().json(RegisteredView {
        player: player_view(&state.data.catalog, &player, now),
        token,
        token_type: "Bearer".into(),
        expires_at,
    }))
}

/// A valid argon2id hash of a random password, checked when the username is
/// unknown so that both paths take the same time.
static DECOY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    hash_password(&SecretString::from(uuid::Uuid::new_v4().to_string())).unwrap_or_default()
});

/// `POST /api/auth/login`: a token for the right username and password.
#[utoipa::path(
    post,
    path = "/login",
    request_body = Credentials,
    responses((status = 200, description = "OK", body = TokenView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    description = "Exchange username and password for a token"
)]
#[post("/login")]
#[tracing::instrument(skip_all)]
pub async fn post_login(state: web::Data<AppState>, body: web::Json<Credentials>) -> Result<HttpResponse, AppError> {
    let Credentials { username, password } = body.into_inner();
    let lower = username.to_ascii_lowercase();
    // Per-username bucket too, so one account cannot be guessed at from many IPs.
    if let Verdict::Limited { retry_after } =
        state.limits.check(&state.limits.auth, "login", &format!("login:{lower}")).await
    {
        let mut e = AppError::new(ErrorCode::RateLimited, "too many login attempts for this username");
        e.retry_after = Some(retry_after.as_secs().max(1));
        metrics::counter!(crate::platform::metrics::RATE_LIMIT_EXCEEDED, "role" => state.role.name(), "bucket" => "login").increment(1);
        return Err(e);
    }
    let player = if lower.len() <= 64 { state.store.player_by_username(&lower).await? } else { None };
    let now = state.clock.now();
    // Failed logins back off exponentially per account, on every pod (the count
    // is on the player record).
    if let Some(until) = player.as_ref().and_then(|p| p.login_blocked_until).filter(|until| *until > now) {
        let secs = (until - now).num_seconds().max(1);
        let mut e = AppError::new(
            ErrorCode::RateLimited,
            format!("too many failed logins for this username; retry in {secs} s"),
        );
        e.retry_after = Some(secs.unsigned_abs());
        return Err(e);
    }
    let hash = player.as_ref().map_or_else(|| DECOY_HASH.clone(), |p| p.password_hash.clone());
    let ok = web::block(move || verify_password(&password, &hash)).await.map_err(AppError::internal)?;
    if let Some(p) = player.as_ref().filter(|p| !ok || p.login_failures > 0) {
        // A failure is counted; a success after failures clears them.
        write(&state, &p.id, None, move |p: &mut Player| {
            if ok {
                p.login_succeeded();
            } else {
                p.login_failed(now);
            }
            Ok(Applied::new(LedgerReason::LoginAttempt, String::new(), ()))
        })
        .await?;
    }
    let Some(player) = player.filter(|_| ok) else {
        return Err(AppError::new(ErrorCode::InvalidCredentials, "wrong username or password"));
    };
    let (token, expires_at) = state.tokens.issue(&player.id, player.token_version, now)?;
    Ok(HttpResponse::Ok().json(TokenView {
        token,
        token_type: "Bearer".into(),
        expires_at,
        player_id: PlayerId(player.id),
    }))
}

/// `POST /api/auth/logout`: revokes every token of the caller.
#[utoipa::path(
    post,
    path = "/logout",
    responses((status = 204, description = "Every token of the player is revoked"), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Revoke every token of the caller (on every device)"
)]
#[post("/logout")]
pub async fn post_logout(state: web::Data<AppState>, who: AuthPlayer, _: NoBody) -> Result<HttpResponse, AppError> {
    write(&state, &who.0, None, |p: &mut Player| {
        p.token_version += 1;
        Ok(Applied::new(LedgerReason::Logout, String::new(), ()))
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Password change body.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    #[schema(value_type = String, format = Password)]
    old_password: SecretString,
    #[schema(value_type = String, format = Password)]
    new_password: SecretString,
}

/// `POST /api/auth/password`: a new password; every older token is revoked and
/// a fresh one returned.
#[utoipa::path(
    post,
    path = "/password",
    request_body = PasswordChange,
    responses((status = 200, description = "OK", body = TokenView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Change the password (the old one is required); revokes every older token and returns a new one"
)]
#[post("/password")]
pub async fn post_password(
    state: web::Data<AppState>,
    who: AuthPlayer,
    body: web::Json<PasswordChange>,
) -> Result<HttpResponse, AppError> {
    let PasswordChange { old_password, new_password } = body.into_inner();
    check_password(&new_password)?;
    let seen = who.1.password_hash.clone();
    let checked = seen.clone();
    let ok = web::block(move || verify_password(&old_password, &checked)).await.map_err(AppError::internal)?;
    if !ok {
        return Err(AppError::new(ErrorCode::InvalidCredentials, "the old password is wrong"));
    }
    let hash = web::block(move || hash_password(&new_password)).await.map_err(AppError::internal)??;
    let written = write(&state, &who.0, None, move |p: &mut Player| {
        if p.password_hash != seen {
            return Err(crate::game::error::GameError::Conflict("the password changed meanwhile; log in again".into()));
        }
        p.password_hash.clone_from(&hash);
        p.token_version += 1;
        Ok(Applied::new(LedgerReason::PasswordChange, String::new(), p.token_version))
    })
    .await?;
    let (token, expires_at) = state.tokens.issue(&who.0, written.view, state.clock.now())?;
    tracing::info!(player_id = %who.0, "password changed; older tokens revoked");
    Ok(HttpResponse::Ok().json(TokenView { token, token_type: "Bearer".into(), expires_at, player_id: who.0.clone() }))
}
