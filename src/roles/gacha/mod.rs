//! The gacha role: banners, rate disclosure, summons, pity and history.

use std::sync::Arc;

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use serde_json::json;

use chrono::{DateTime, Utc};

use std::collections::BTreeMap;

use super::views::{load_player, respond, write, Items, PageQuery, Paged};
use super::Mount;
use crate::game::catalog::Rarity;
use crate::game::data::GameData;
use crate::game::economy::{Balances, Currency};
use crate::game::gacha::banner::{Banner, BannerKind, Filler, Outcome, SoftPity};
use crate::game::gacha::engine::{self, PullResult, SummonRecord};
use crate::game::gacha::fairness::{self, FairnessProof};
use crate::game::gacha::rates::{self, ConsolidatedRate, FeaturedExpectation, ItemOdds, Milestone};
use crate::game::ids::BannerId;
use crate::game::player::PityState;
use crate::game::player::Player;
use crate::game::rng;
use crate::platform::auth::{AuthPlayer, MaybePlayer};
use crate::platform::error::{AppError, ErrorCode};
use crate::platform::idempotency::IdempotencyKey;
use crate::platform::metrics::{GACHA_PUBLISHED_RATE, GACHA_PULLS};
use crate::state::AppState;
use crate::store::events::{DomainEvent, Draw};
use crate::store::LedgerReason;
use crate::writes::Applied;

mod page;
pub mod provably_fair;

/// Mounts the gacha role.
pub fn configure<C: Mount>(cfg: &mut C) {
    cfg.service(get_banners)
        .service(get_rates)
        .service(get_draws)
        .service(get_observed)
        .service(post_summon)
        .service(get_pity)
        .service(get_history)
        .service(provably_fair::get_fairness)
        .service(provably_fair::post_rotate)
        .service(provably_fair::get_verify)
        .service(page::get_page);
}

/// Publishes every banner's consolidated rates as gauges, next to which the
/// observed shares are reported.
pub fn publish_rate_metrics(data: &GameData) {
    for b in data.banners.all() {
        for r in rates::consolidated(b) {
            metrics::gauge!(GACHA_PUBLISHED_RATE, "banner" => b.id.clone(), "category" => r.id.clone())
                .set(r.consolidated_rate);
        }
    }
}

fn record_pulls(banner: &Banner, results: &[PullResult]) {
    // The observed shares next to the published rates are kept by the event
    // consumers from every pod's summons (see workers.rs); here only the counter.
    for r in results {
        metrics::counter!(GACHA_PULLS, "banner" => banner.id.clone(), "category" => r.category.clone()).increment(1);
    }
}

fn banner_or_404<'a>(state: &'a AppState, id: &str) -> Result<&'a Banner, AppError> {
    state.data.banners.get(id).ok_or_else(|| AppError::new(ErrorCode::NotFound, format!("no banner {id:?}")))
}

/// An active banner as the list shows it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BannerView {
    /// Banner id.
    pub id: BannerId,
    /// Display name.
    pub name: String,
    /// Its kind: banners of one kind share the player's pity.
    pub kind: BannerKind,
    /// The currency pulls cost.
    pub currency: Currency,
    /// Price of one pull.
    pub cost_single: i64,
    /// Price of ten pulls.
    pub cost_ten: i64,
    /// Start of a dated banner.
    pub starts_at: Option<DateTime<Utc>>,
    /// End of a dated banner.
    pub ends_at: Option<DateTime<Utc>>,
    /// Featured heroes.
    pub featured: Vec<String>,
    /// The category hard pity guarantees.
    pub pity_category: String,
    /// Pulls to the guarantee.
    pub hard_pity: u32,
    /// The caller's pity on it (only with a token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pity: Option<PityState>,
}

/// `GET /api/gacha/banners`.
#[utoipa::path(
    get,
    path = "/api/gacha/banners",
    responses((status = 200, description = "OK", body = Items<BannerView>), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security((), ("bearer" = [])),
    description = "Active banners, costs, and the caller's pity with a token"
)]
#[get("/api/gacha/banners")]
async fn get_banners(state: web::Data<AppState>, who: MaybePlayer) -> Result<HttpResponse, AppError> {
    let now = state.clock.now();
    let player = match &who.0 {
        Some(id) => Some(load_player(&state, id).await?),
        None => None,
    };
    // Filtered on every call, not cached: a cached list would outlive a banner's
    // start or end by up to its TTL (it is a filter over a few in-memory rows).
    let active: Vec<BannerView> = state
        .data
        .banners
        .all()
        .iter()
        .filter(|b| b.is_active(now))
        .map(|b| BannerView {
            id: BannerId(b.id.clone()),
            name: b.name.clone(),
            kind: b.kind,
            currency: b.currency,
            cost_single: b.cost_single,
            cost_ten: b.cost_ten,
            starts_at: b.starts_at,
            ends_at: b.ends_at,
            featured: b.featured.clone(),
            pity_category: b.pity_category.clone(),
            hard_pity: b.hard_pity,
            pity: None,
        })
        .collect();
    let pity = player.map(|p| {
        let mut pity = p.pity.clone();
        state.data.banners.migrate_pity(&mut pity);
        pity
    });
    let items: Vec<BannerView> = active
        .into_iter()
        .map(|mut v| {
            if let Some(pity) = &pity {
                v.pity = Some(pity.get(v.kind.pity_key()).copied().unwrap_or_default());
            }
            v
        })
        .collect();
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "private, max-age=30")).json(Items { items }))
}

/// One point of the per-pull curve: each category's probability at that pull.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CurveView {
    /// Pull number since the last pity-category result (1-based).
    pub pull: u32,
    /// Category id to probability.
    pub probabilities: BTreeMap<String, f64>,
}

/// The pity, featured and duplicate rules of a banner, in words and numbers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RulesView {
    /// The category hard pity guarantees.
    pub pity_category: String,
    /// Pulls to the guarantee.
    pub hard_pity: u32,
    /// The hard pity rule in words.
    pub hard_pity_rule: String,
    /// The banner's kind: its pity counter and guarantee are the kind's.
    pub kind: BannerKind,
    /// Which banners share the counter, and what carries over, in words.
    pub pity_carry_over: String,
    /// Soft pity, if any.
    pub soft_pity: Option<SoftPity>,
    /// Featured heroes.
    pub featured: Vec<String>,
    /// Share of the pity category that is featured.
    pub featured_share: f64,
    /// The 50/50 guarantee in words (banners with featured heroes).
    pub featured_guarantee: Option<String>,
    /// Duplicates in words, from the shard table.
    pub duplicates: String,
    /// Shards per duplicate by rarity.
    pub duplicate_shards: BTreeMap<String, u32>,
}

/// The rate disclosure of a banner.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RatesView<'a> {
    /// Banner id.
    pub banner_id: &'a str,
    /// Display name.
    pub name: &'a str,
    /// The version of this rate table (receipts and history rows name it).
    pub version: u32,
    /// When this version took effect.
    pub effective_from: DateTime<Utc>,
    /// When the banner opens (dated banners).
    pub starts_at: Option<DateTime<Utc>>,
    /// When the banner closes (dated banners).
    pub ends_at: Option<DateTime<Utc>>,
    /// The currency pulls cost.
    pub currency: Currency,
    /// Price of one pull.
    pub cost_single: i64,
    /// Price of ten pulls.
    pub cost_ten: i64,
    /// Base rates by category.
    pub base_rates: &'a [Outcome],
    /// Filler rewards.
    pub filler: &'a [Filler],
    /// Heroes by rarity.
    pub pools: &'a BTreeMap<Rarity, Vec<String>>,
    /// The rules.
    pub rules: RulesView,
    /// Probabilities at every pull count.
    pub per_pull_curve: Vec<CurveView>,
    /// Exact long-run rates (stationary distribution of the pity chain).
    pub consolidated: Vec<ConsolidatedRate>,
    /// Expected pulls and cost to the featured hero (limited banners).
    pub featured_expectation: Option<FeaturedExpectation>,
    /// Expected own currency returned per pull (refunds).
    pub expected_own_currency_returned_per_pull: f64,
    /// Every obtainable item and its long-run chance per pull.
    pub items: Vec<ItemOdds>,
    /// The featured heroes' long-run chance per pull, the guarantee included.
    pub featured_rate: Option<f64>,
    /// The same as a percentage.
    pub featured_percent: Option<String>,
    /// Pulls and currency to the first pity-category result and to a featured
    /// hero, from a fresh state: mean and percentiles.
    pub milestones: Vec<Milestone>,
    /// How precise the percentages are.
    pub precision: &'static str,
}

/// The carry-over rule in words, from the banner table itself.
fn carry_over_rule(data: &GameData, b: &Banner) -> String {
    let kind = b.kind.pity_key();
    let guarantee = if b.featured.is_empty() { "" } else { " and a held featured guarantee" };
    match data.banners.of_kind(b.kind).as_slice() {
        [_] => format!(
            "pulls since the last {} are counted for every {kind} banner, now and later ones: the count{guarantee} \
             carries over to the next {kind} banner",
            b.pity_category
        ),
        ids => format!(
            "the {kind} banners ({}) share one count of pulls since the last pity result{guarantee}: it carries over \
             from one to the next, each banner's own hard pity applying to it",
            ids.join(", ")
        ),
    }
}

/// The duplicate rule in words, from the shard table itself.
fn duplicates_rule() -> String {
    let table: Vec<String> = Rarity::ALL.iter().map(|r| format!("{} {}", r.label(), r.duplicate_shards())).collect();
    format!("a copy of an owned hero (also a second copy within one summon) becomes shards: {}", table.join(", "))
}

/// `?version=` of the rate disclosure.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct VersionQuery {
    version: Option<u32>,
}

/// `GET /api/gacha/banners/{id}/rates`: the disclosure, from the engine's own tables.
#[utoipa::path(
    get,
    path = "/api/gacha/banners/{id}/rates",
    params(("id" = String, Path, description = "A banner id"), ("version" = Option<u32>, Query, description = "A past version of its rate table (default: the current one)")),
    responses((status = 200, description = "OK", body = RatesView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    description = "Rate disclosure: base rates, rules, per-pull curve, long-run rates; any kept version"
)]
#[get("/api/gacha/banners/{id}/rates")]
async fn get_rates(
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: web::Query<VersionQuery>,
) -> Result<HttpResponse, AppError> {
    let b = match q.version {
        None => banner_or_404(&state, &id)?,
        Some(v) => state.data.banners.version(&id, v).ok_or_else(|| {
            AppError::new(ErrorCode::NotFound, format!("no version {v} of banner {:?} is kept", id.as_str()))
        })?,
    };
    let curve = rates::curve(b)
        .into_iter()
        .map(|c| CurveView { pull: c.pull, probabilities: c.probabilities.into_iter().collect() })
        .collect();
    let c = &b.pity_category;
    let items = rates::item_odds(b);
    let featured_rate =
        (!b.featured.is_empty()).then(|| items.iter().filter(|i| i.featured).map(|i| i.probability).sum::<f64>());
    let rules = RulesView {
        pity_category: c.clone(),
        hard_pity: b.hard_pity,
        hard_pity_rule: format!(
            "pull {} without a {c} result is a {c}; the counter resets on any {c} result",
            b.hard_pity
        ),
        kind: b.kind,
        pity_carry_over: carry_over_rule(&state.data, b),
        soft_pity: b.soft_pity.clone(),
        featured: b.featured.clone(),
        featured_share: f64::from(b.featured_share_ppm) / 1e6,
        featured_guarantee: (!b.featured.is_empty())
            .then(|| "a pity-category hero that was not featured makes the next one featured".to_string()),
        duplicates: duplicates_rule(),
        duplicate_shards: Rarity::ALL.iter().map(|r| (r.label().to_string(), r.duplicate_shards())).collect(),
    };
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "public, max-age=300")).json(RatesView {
        banner_id: &b.id,
        name: &b.name,
        version: b.version,
        effective_from: b.effective_from,
        starts_at: b.starts_at,
        ends_at: b.ends_at,
        currency: b.currency,
        cost_single: b.cost_single,
        cost_ten: b.cost_ten,
        base_rates: &b.outcomes,
        filler: &b.filler,
        pools: &b.pools,
        rules,
        per_pull_curve: curve,
        consolidated: rates::consolidated(b),
        featured_expectation: rates::featured_expectation(b),
        expected_own_currency_returned_per_pull: rates::expected_own_currency_per_pull(b),
        featured_rate,
        featured_percent: featured_rate.map(rates::percent),
        items,
        milestones: rates::milestones(b),
        precision: "probabilities are exact long-run values in double precision (computed from the pity \
                    chain, not sampled); percentages are those rounded to 4 decimal places",
    }))
}

/// Summon request body.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SummonRequest {
    banner_id: BannerId,
    count: u32,
}

/// What a summon cost.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Cost {
    /// The banner's currency.
    pub currency: Currency,
    /// Amount paid.
    pub amount: i64,
}

/// The receipt of a summon, also kept with its idempotency key.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SummonReceipt {
    /// Summon id.
    pub summon_id: String,
    /// The banner pulled on.
    pub banner_id: BannerId,
    /// 1 or 10.
    pub count: u32,
    /// What was paid.
    pub cost: Cost,
    /// Every pull, in order.
    pub results: Vec<PullResult>,
    /// The pity counters after the summon.
    pub pity_after: PityState,
    /// Balances after the summon.
    pub balances_after: Balances,
    /// When.
    pub at: DateTime<Utc>,
    /// The version of the banner's rate table that served it.
    pub rates_version: u32,
    /// What re-derives the pulls once the seed is revealed: the commitment
    /// (SHA-256 of the server seed), the client seed and the first pull's nonce.
    pub fairness: FairnessProof,
}

/// `POST /api/gacha/summon`: one atomic, idempotent summon.
#[utoipa::path(
    post,
    path = "/api/gacha/summon",
    request_body = SummonRequest,
    params(("Idempotency-Key" = String, Header, description = "1-64 characters of A-Z, a-z, 0-9, _ and -; a repeat with the same body returns the first answer")),
    responses((status = 200, description = "OK", body = SummonReceipt), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "Summon {banner_id, count: 1|10}; returns the receipt"
)]
#[post("/api/gacha/summon")]
#[tracing::instrument(skip_all, fields(player_id = %who.0, banner = %body.banner_id, count = body.count))]
async fn post_summon(
    state: web::Data<AppState>,
    who: AuthPlayer,
    key: IdempotencyKey,
    body: web::Json<SummonRequest>,
) -> Result<HttpResponse, AppError> {
    let req = body.into_inner();
    let banner = banner_or_404(&state, &req.banner_id)?;
    if banner.cost(req.count).is_none() {
        return Err(AppError::new(ErrorCode::ValidationFailed, format!("count must be 1 or 10, got {}", req.count))
            .with_details(json!({"field": "count"})));
    }
    let idem = key.for_body(&req);
    let (now, fresh, count) = (state.clock.now(), rng::fresh_secret(), req.count);
    let summon_id = crate::store::time_ordered_id();
    let rule = summon_rule(state.data.clone(), banner.id.clone(), count, fresh, summon_id, now);
    let written = write(&state, &who.0, Some(idem), rule).await?;
    if written.fresh {
        record_pulls(banner, &written.view.results);
    }
    Ok(respond(&written))
}

/// The rule of one summon: `count` pulls on the banner from the kind's committed
/// seed (`fresh_seed` is committed to first if the kind has none), charged at
/// once, with one history row holding its pulls and the `gacha.summoned` event. Pure: the
/// store may run it again on a retried write and get the same receipt.
pub fn summon_rule(
    data: Arc<GameData>,
    banner_id: String,
    count: u32,
    fresh_seed: fairness::ServerSeed,
    summon_id: String,
    now: DateTime<Utc>,
) -> impl Fn(&mut Player) -> Result<Applied<SummonReceipt>, crate::game::error::GameError> + Send + Sync + 'static {
    move |p: &mut Player| {
        let banner = data
            .banners
            .get(&banner_id)
            .ok_or_else(|| crate::game::error::GameError::NotFound(format!("no banner {banner_id:?}")))?;
        data.banners.migrate_pity(&mut p.pity);
        let price = banner
            .cost(count)
            .ok_or_else(|| crate::game::error::GameError::Invalid(format!("count must be 1 or 10, got {count}")))?;
        // The controls first: a refused summon changes nothing (the rule's error
        // discards the whole record).
        p.spending.charge(banner.currency, price, now)?;
        let (mut draws, proof) = fairness::draws_for(p, banner.kind.pity_key(), count, &fresh_seed)?;
        let s = engine::summon(p, banner, count, &mut draws, now)?;
        let record = SummonRecord {
            summon_id: summon_id.clone(),
            banner_id: banner.id.clone(),
            results: s.results.clone(),
            rates_version: Some(banner.version),
            pity_before: Some(s.pity_before),
            fairness: Some(proof.clone()),
        };
        let history = vec![serde_json::to_value(record).unwrap_or_default()];
        let event = DomainEvent::GachaSummoned {
            summon_id: summon_id.clone(),
            banner_id: banner.id.clone(),
            results: s.results.clone(),
            rates_version: Some(banner.version),
        };
        let receipt = SummonReceipt {
            summon_id: summon_id.clone(),
            banner_id: BannerId(banner.id.clone()),
            count,
            cost: Cost { currency: banner.currency, amount: s.cost },
            results: s.results,
            pity_after: s.pity,
            balances_after: p.balances,
            at: now,
            rates_version: banner.version,
            fairness: proof,
        };
        Ok(Applied::new(LedgerReason::Summon, summon_id.clone(), receipt).with_history(history).with_event(event))
    }
}

/// The caller's pity on one banner.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PityView {
    /// Banner id.
    pub banner_id: BannerId,
    /// Its kind: every banner of the kind shows (and moves) the same counters.
    pub kind: BannerKind,
    /// The category hard pity guarantees.
    pub pity_category: String,
    /// Pulls since the last pity-category result.
    pub pulls_since_pity: u32,
    /// Pulls left to the guarantee.
    pub pulls_to_hard_pity: u32,
    /// The next pity-category hero is the featured one.
    pub featured_guaranteed: bool,
}

/// `GET /api/gacha/pity`.
#[utoipa::path(
    get,
    path = "/api/gacha/pity",
    responses((status = 200, description = "OK", body = Items<PityView>), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "The caller's pity counters and guarantees"
)]
#[get("/api/gacha/pity")]
async fn get_pity(state: web::Data<AppState>, who: AuthPlayer) -> Result<HttpResponse, AppError> {
    let mut pity = who.player().pity.clone();
    state.data.banners.migrate_pity(&mut pity);
    let items: Vec<PityView> = state
        .data
        .banners
        .all()
        .iter()
        .map(|b| {
            let s = pity.get(b.kind.pity_key()).copied().unwrap_or_default();
            PityView {
                banner_id: BannerId(b.id.clone()),
                kind: b.kind,
                pity_category: b.pity_category.clone(),
                pulls_since_pity: s.since_pity,
                pulls_to_hard_pity: b.hard_pity - s.since_pity.min(b.hard_pity),
                featured_guaranteed: s.featured_guaranteed,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(Items { items }))
}

/// One pull in the caller's history.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HistoryView {
    /// The summon it was part of.
    pub summon_id: String,
    /// The banner.
    pub banner_id: BannerId,
    /// The pull.
    pub result: PullResult,
    /// When.
    pub at: DateTime<Utc>,
    /// The version of the banner's rate table that served it (none before tables were versioned).
    pub rates_version: Option<u32>,
}

/// `GET /api/gacha/history`: every pull, newest first, paged.
#[utoipa::path(
    get,
    path = "/api/gacha/history",
    params(("limit" = Option<usize>, Query, description = "1-100, default 20"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "OK", body = Paged<HistoryView>), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    security(("bearer" = [])),
    description = "The caller's pulls, newest first"
)]
#[get("/api/gacha/history")]
async fn get_history(
    state: web::Data<AppState>,
    who: AuthPlayer,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, AppError> {
    let limit = q.limit()?;
    let start = HistoryCursor::parse(q.raw_cursor())?;
    // (A token whose player is gone was refused by the extractor, not answered with an empty page.)
    // Every row holds at least one pull: `limit` rows and one more to know whether
    // anything follows are always enough.
    let page = state.store.history(&who.0, limit + 1, start.before).await?;
    let mut items = Vec::with_capacity(limit);
    let mut next = None;
    'rows: for row in page.items {
        let seq = row.seq;
        let mut pulls = engine::pulls_of_row(&row.data)
            .map_err(|e| AppError::internal(anyhow::anyhow!("decoding history row {seq} of {}: {e}", who.0)))?;
        pulls.reverse(); // newest first
        let skip = if start.before == Some(seq + 1) { start.skip } else { 0 };
        for (shown, d) in pulls.into_iter().enumerate().skip(skip) {
            if items.len() == limit {
                next = Some(HistoryCursor { before: Some(seq + 1), skip: shown });
                break 'rows;
            }
            items.push(HistoryView {
                summon_id: d.summon_id,
                banner_id: BannerId(d.banner_id),
                result: d.result,
                at: row.at,
                rates_version: d.rates_version,
            });
        }
    }
    Ok(HttpResponse::Ok().json(Paged { items, next_cursor: next.map(|c| c.to_string()) }))
}

/// Where a history page starts: rows before `before` (a store position), the
/// first `skip` pulls (newest first) of the first one already shown. Written
/// `<before in hex>.<skip>`.
struct HistoryCursor {
    before: Option<u64>,
    skip: usize,
}

impl HistoryCursor {
    fn parse(raw: Option<&str>) -> Result<Self, AppError> {
        let Some(raw) = raw else { return Ok(Self { before: None, skip: 0 }) };
        let bad = || AppError::new(ErrorCode::ValidationFailed, "cursor is not one this server issued");
        let (before, skip) = raw.split_once('.').unwrap_or((raw, "0"));
        let before = u64::from_str_radix(before, 16).map_err(|_| bad())?;
        let skip = skip.parse::<usize>().ok().filter(|&s| s <= 255).ok_or_else(bad)?;
        Ok(Self { before: Some(before), skip })
    }
}

impl std::fmt::Display for HistoryCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:x}.{}", self.before.unwrap_or(u64::MAX), self.skip)
    }
}

/// `GET /api/gacha/banners/{id}/draws`: the banner's public draw record.
#[utoipa::path(
    get,
    path = "/api/gacha/banners/{id}/draws",
    params(("id" = String, Path, description = "A banner id"), ("limit" = Option<usize>, Query, description = "1-100, default 20"), ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "OK", body = Paged<Draw>), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    description = "Every pull of the banner, newest first, kept as long as the history (90 days by default): result, time, no player"
)]
#[get("/api/gacha/banners/{id}/draws")]
async fn get_draws(
    state: web::Data<AppState>,
    id: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, AppError> {
    let b = banner_or_404(&state, &id)?;
    let limit = q.limit()?;
    let before = match q.raw_cursor() {
        Some(c) if c.len() <= 64 && c.bytes().all(|x| x.is_ascii_hexdigit()) => Some(c.to_string()),
        Some(_) => return Err(AppError::new(ErrorCode::ValidationFailed, "cursor is not one this server issued")),
        None => None,
    };
    let mut items = state.store.draws(&b.id, before, limit + 1).await?;
    let next_cursor = (items.len() > limit).then(|| items[limit - 1].id.clone());
    items.truncate(limit);
    Ok(HttpResponse::Ok().insert_header(("Cache-Control", "public, max-age=5")).json(Paged { items, next_cursor }))
}

/// One category's observed share next to its published rate.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ObservedRate {
    /// Outcome category.
    pub category: String,
    /// The published long-run rate.
    pub published: f64,
    /// Pulls that gave it, every player together.
    pub pulls: i64,
    /// Its share of all the banner's pulls.
    pub observed: f64,
}

/// Every category of a banner, observed against published.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ObservedView {
    /// Banner id.
    pub banner_id: BannerId,
    /// Pulls counted (every summon since the banner opened, counted once by the
    /// event consumers).
    pub total_pulls: i64,
    /// Per category.
    pub categories: Vec<ObservedRate>,
}

/// `GET /api/gacha/banners/{id}/observed`: what the record implies.
#[utoipa::path(
    get,
    path = "/api/gacha/banners/{id}/observed",
    params(("id" = String, Path, description = "A banner id")),
    responses((status = 200, description = "OK", body = ObservedView), (status = "default", description = "An error", body = crate::roles::common::ErrorView)),
    description = "Observed share of each category over every pull, next to the published rate"
)]
#[get("/api/gacha/banners/{id}/observed")]
async fn get_observed(state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse, AppError> {
    let b = banner_or_404(&state, &id)?;
    let prefix = format!("gacha:{}:", b.id);
    let counts: BTreeMap<String, i64> = state
        .store
        .counters(&prefix)
        .await?
        .into_iter()
        .map(|(name, n)| (name.trim_start_matches(prefix.as_str()).to_string(), n))
        .collect();
    let total: i64 = counts.values().sum();
    let categories = rates::consolidated(b)
        .into_iter()
        .map(|r| {
            let pulls = counts.get(&r.id).copied().unwrap_or(0);
            ObservedRate {
                published: r.consolidated_rate,
                pulls,
                observed: pulls as f64 / total.max(1) as f64,
                category: r.id,
            }
        })
        .collect();
    Ok(HttpResponse::Ok().json(ObservedView { banner_id: BannerId(b.id.clone()), total_pulls: total, categories }))
}
