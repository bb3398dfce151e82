//! Provably fair pulls over HTTP: the caller's commitments, rotation (which
//! reveals a seed) and the re-derivation of any kept summon.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};

use super::super::views::{respond, write};
use crate::game::gacha::banner::BannerKind;
use crate::game::gacha::fairness::{self, commitment_of, Fairness, RevealedSeed, Verification};
use crate::game::player::Player;
use crate::game::rng;
use crate::platform::auth::AuthPlayer;
use crate::platform::error::{AppError, ErrorCode};
use crate::platform::idempotency::IdempotencyKey;
use crate::state::AppState;
use crate::store::LedgerReason;
use crate::verify::{find_summon, verify_record};
use crate::writes::Applied;

/// Revealed seeds listed per kind (older ones: `GET /api/gacha/verify` still
/// re-derives their summons, and rotation answers gave each one).
const REVEALED_LISTED: u32 = 8;

/// A revealed seed as listed.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SeedView {
    /// Its number within the kind.
    pub index: u32,
    /// SHA-256 of the seed (hex).
    pub commitment: String,
    /// The seed (hex).
    pub server_seed: String,
}

/// One banner kind's provable-fairness state.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KindFairnessView {
    /// Banner kind: its banners share these seeds as they share pity.
    pub kind: BannerKind,
    /// The active seed's number.
    pub seed_index: u32,
    /// SHA-256 (hex) of the active server seed, published before it serves any pull.
    pub commitment: String,
    /// The client seed mixed into every pull.
    pub client_seed: String,
    /// The nonce the next pull takes.
    pub next_nonce: u64,
    /// The latest revealed seeds of the kind, newest first.
    pub revealed: Vec<SeedView>,
}

/// `GET /api/gacha/fairness`.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FairnessView {
    /// Every banner kind.
    pub kinds: Vec<KindFairnessView>,
    /// How a pull is derived, in words.
    pub scheme: String,
}

const SCHEME: &str = "pull n of a seed: ChaCha8 seeded with HMAC-SHA256(key = server seed, message = client seed \
                      + \":\" + n in decimal); the commitment is SHA-256(server seed); rotating reveals the seed";

fn kind_view(f: &Fairness, kind: BannerKind) -> Result<KindFairnessView, AppError> {
    let key = kind.pity_key();
    let state = f.kind(key);
    let seed = f
        .server_seed(key, state.index)
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("the player's fairness secret is missing or malformed")))?;
    let revealed = (state.index.saturating_sub(REVEALED_LISTED)..state.index)
        .rev()
        .filter_map(|i| f.revealed(key, i).map(|s| (i, s)))
        .map(|(index, s)| SeedView { index, commitment: commitment_of(&s), server_seed: hex::encode(s) })
        .collect();
    Ok(KindFairnessView {
        kind,
        seed_index: state.index,
        commitment: commitment_of(&seed),
        client_seed: state.client_seed,
        next_nonce: state.next_nonce,
        revealed,
    })
}

fn fairness_view(f: &Fairness) -> Result<FairnessView, AppError> {
    Ok(FairnessView {
        kinds: BannerKind::ALL.into_iter().map(|k| kind_view(f, k)).collect::<Result<_, _>>()?,
        scheme: SCHEME.to_string(),
    })
}

/// `GET /api/gacha/fairness`: the caller's commitments.
#[utoipa::path(
    get,
    path = "/api/gacha/fairness",
    responses((status = 200, description = "OK", body = FairnessView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "The caller's provably-fair seeds: per banner kind the commitment (SHA-256 of the secret server seed), client seed, next nonce and the latest revealed seeds"
)]
#[get("/api/gacha/fairness")]
async fn get_fairness(state: web::Data<AppState>, who: AuthPlayer) -> Result<HttpResponse, AppError> {
    let player = who.record();
    if !player.fairness.secret.is_empty() {
        return Ok(HttpResponse::Ok().json(fairness_view(&player.fairness)?));
    }
    // A player registered before pulls were provably fair commits here, first.
    let fresh = rng::fresh_secret();
    let written = write(&state, &who.0, None, move |p: &mut Player| {
        p.fairness.commit_if_missing(&fresh);
        Ok(Applied::new(
            LedgerReason::Fairness,
            "",
            fairness_view(&p.fairness).map_err(|e| crate::game::error::GameError::Invalid(e.to_string()))?,
        ))
    })
    .await?;
    Ok(respond(&written))
}

/// Rotation request.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    /// The banner kind whose seed to reveal.
    kind: BannerKind,
    /// A new client seed (1-64 printable ASCII characters); default: keep the current one.
    client_seed: Option<String>,
}

/// What a rotation did.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RotationView {
    /// The seed rotated out, now public.
    pub revealed: RevealedSeed,
    /// The kind's new state.
    pub active: KindFairnessView,
}

/// `POST /api/gacha/fairness/rotate`: reveal the kind's seed, commit to the next.
#[utoipa::path(
    post,
    path = "/api/gacha/fairness/rotate",
    request_body = RotateRequest,
    params(("Idempotency-Key" = String, Header, description = "1-64 characters of A-Z, a-z, 0-9, _ and -; a repeat with the same body returns the first answer (one rotation)")),
    responses((status = 200, description = "OK", body = RotationView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Reveal the banner kind's server seed and commit to a new one (nonce 0), optionally with a new client seed"
)]
#[post("/api/gacha/fairness/rotate")]
#[tracing::instrument(skip_all, fields(player_id = %who.0))]
async fn post_rotate(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    body: web::Json<RotateRequest>,
) -> Result<HttpResponse, AppError> {
    let req = body.into_inner();
    let idem = key.for_body(&req);
    let RotateRequest { kind, client_seed } = req;
    if let Some(c) = &client_seed {
        fairness::check_client_seed(c)?;
    }
    let (now, fresh) = (state.clock.now(), rng::fresh_secret());
    let written = write(&state, &who.0, Some(idem), move |p: &mut Player| {
        p.fairness.commit_if_missing(&fresh);
        let revealed = p.fairness.rotate(kind.pity_key(), client_seed.clone(), now)?;
        let active = kind_view(&p.fairness, kind).map_err(|e| crate::game::error::GameError::Invalid(e.to_string()))?;
        Ok(Applied::new(LedgerReason::Fairness, "", RotationView { revealed, active }))
    })
    .await?;
    Ok(respond(&written))
}

/// `?summon_id=&server_seed=` of a verification.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct VerifyQuery {
    summon_id: String,
    server_seed: Option<String>,
}

/// `GET /api/gacha/verify`: one of the caller's summons re-derived.
#[utoipa::path(
    get,
    path = "/api/gacha/verify",
    params(
        ("summon_id" = String, Query, description = "A summon of the caller's, still in the history"),
        ("server_seed" = Option<String>, Query, description = "The revealed seed (hex) to check; default: the server's, once revealed")
    ),
    responses((status = 200, description = "OK", body = Verification), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Re-derive a summon from its revealed seed, client seed, nonces, rate-table version and pity before, next to what was recorded"
)]
#[get("/api/gacha/verify")]
async fn get_verify(
    state: web::Data<AppState>,
    who: AuthPlayer,
    q: web::Query<VerifyQuery>,
) -> Result<HttpResponse, AppError> {
    let q = q.into_inner();
    let given =
        match &q.server_seed {
            Some(s) => Some(fairness::parse_seed(s).ok_or_else(|| {
                AppError::new(ErrorCode::ValidationFailed, "server_seed must be 64 hexadecimal digits")
            })?),
            None => None,
        };
    let (record, row_version) = find_summon(state.store.as_ref(), &who.0, &q.summon_id).await?;
    let player = who.record();
    let verification = verify_record(&state.data, player, &record, row_version, given, false)?;
    Ok(HttpResponse::Ok().json(verification))
}

impl From<crate::verify::VerifyFailure> for AppError {
    fn from(f: crate::verify::VerifyFailure) -> Self {
        use crate::verify::VerifyFailure as F;
        match f {
            F::NotFound(m) => AppError::new(ErrorCode::NotFound, m),
            F::NotRevealed(m) => AppError::new(ErrorCode::SeedNotRevealed, m),
            F::Unverifiable(m) => AppError::new(ErrorCode::Conflict, m),
            F::Store(e) => e.into(),
            F::Broken(m) => AppError::internal(anyhow::anyhow!(m)),
        }
    }
}
