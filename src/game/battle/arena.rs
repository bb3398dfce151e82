//! The arena: Elo ratings, rewards, bot opponents and monthly seasons.

use chrono::{DateTime, Datelike, Duration, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{simulate, team_snapshot, BattleLog, Side, TeamSnapshot, UnitSnapshot, RULES_VERSION};
use crate::game::catalog::{self, Catalog};
use crate::game::data_error::DataError;
use crate::game::economy::Currency;
use crate::game::error::GameError;
use crate::game::player::{Attachment, Mail, OfferedOpponent, Player};
use crate::game::rng::seeded;

/// A season reward band.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Band {
    /// Name (bronze … grandmaster).
    pub name: String,
    /// Lowest rating in the band.
    pub min_rating: i64,
    /// Crystals mailed at season end.
    pub crystals: i64,
    /// Medals mailed at season end.
    pub medals: i64,
}

/// Arena parameters.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct ArenaRules {
    pub start_rating: i64,
    pub k_factor: i64,
    pub opponents: usize,
    pub rating_window: i64,
    pub min_opponents_before_widening: usize,
    pub max_rating_window: i64,
    pub win_medals: i64,
    pub win_gold: i64,
    pub loss_medals: i64,
    pub loss_gold: i64,
    pub band: Vec<Band>,
}

impl ArenaRules {
    /// Checks the bands ascend from 0.
    pub fn validate(&self, file: &str) -> Result<(), DataError> {
        if self.band.first().map(|b| b.min_rating) != Some(0) {
            return Err(DataError::new(file, "arena.band", "the first band must start at rating 0"));
        }
        if self.band.windows(2).any(|w| w[0].min_rating >= w[1].min_rating) {
            return Err(DataError::new(file, "arena.band", "bands must ascend by min_rating"));
        }
        if self.k_factor <= 0 || self.opponents == 0 {
            return Err(DataError::new(file, "arena", "k_factor and opponents must be positive"));
        }
        if self.rating_window <= 0 || self.max_rating_window < self.rating_window {
            return Err(DataError::new(file, "arena", "rating_window must be positive and at most max_rating_window"));
        }
        Ok(())
    }

    /// The band of a rating.
    pub fn band_of(&self, rating: i64) -> &Band {
        self.band.iter().rev().find(|b| rating >= b.min_rating).unwrap_or(&self.band[0])
    }
}

/// Rating changes of one challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RatingChange {
    /// Attacker's change.
    pub attacker: i64,
    /// Defender's change: half the attacker's, the other way.
    pub defender: i64,
}

/// Elo with factor K: `K × (S − E)`, rounded; the defender moves half as far back.
pub fn rating_change(k: i64, attacker: i64, defender: i64, winner: Side) -> RatingChange {
    let expected = 1.0 / (1.0 + 10f64.powf((defender - attacker).clamp(-800, 800) as f64 / 400.0));
    let score = if winner == Side::Attacker { 1.0 } else { 0.0 };
    let a = (k as f64 * (score - expected)).round() as i64;
    RatingChange { attacker: a, defender: -a / 2 }
}

/// Applies a rating change with the floor at 0.
pub fn apply_rating(rating: i64, change: i64) -> i64 {
    (rating + change).max(0)
}

/// The season (calendar month, UTC) of a time: "2026-11".
pub fn season_of(now: DateTime<Utc>) -> String {
    format!("{:04}-{:02}", now.year(), now.month())
}

/// Closes the player's last season if the calendar has moved on: the season
/// reward by band arrives by mail (once: the season id is updated in the same
/// write) and the rating is softly reset to `1000 + (r − 1000)/2`.
/// Returns the band rewarded, if any.
///
/// Every rating is reset, also of players who only defended; only players who
/// fought in the season get the reward. A player who never touched the arena is
/// in the season of their registration.
pub fn roll_season(rules: &ArenaRules, player: &mut Player, now: DateTime<Utc>, mail_days: i64) -> Option<String> {
    let current = season_of(now);
    if player.arena_season.is_empty() {
        player.arena_season = season_of(player.created_at);
    }
    if player.arena_season == current {
        return None;
    }
    let old = std::mem::replace(&mut player.arena_season, current);
    let played = std::mem::take(&mut player.arena_season_battles) > 0;
    let reset = rules.start_rating + (player.arena_rating - rules.start_rating) / 2;
    if !played {
        player.arena_rating = reset;
        return None;
    }
    let band = rules.band_of(player.arena_rating).clone();
    player.deliver(Mail {
        id: format!("arena-season-{old}"),
        subject: format!("Arena season {old}: {} reward", band.name),
        body: format!("You finished season {old} at rating {} ({}).", player.arena_rating, band.name),
        attachments: vec![
            Attachment { currency: Currency::Crystals, amount: band.crystals },
            Attachment { currency: Currency::ArenaMedals, amount: band.medals },
        ],
        sent_at: now,
        expires_at: now + Duration::days(mail_days),
        claimed_at: None,
    });
    player.arena_rating = reset;
    Some(band.name)
}

/// Whether the player's arena season has ended (a rollover is due).
pub fn season_due(player: &Player, now: DateTime<Utc>) -> bool {
    let season =
        if player.arena_season.is_empty() { season_of(player.created_at) } else { player.arena_season.clone() };
    season != season_of(now)
}

/// The rating windows an opponent search tries, narrowest first: doubling from
/// `rating_window` until one exceeds `max_rating_window` (that one included).
pub fn search_windows(rules: &ArenaRules) -> Vec<i64> {
    let mut out = vec![rules.rating_window];
    while out[out.len() - 1] <= rules.max_rating_window {
        out.push(out[out.len() - 1] * 2);
    }
    out
}

/// A player who could be offered as an opponent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Player id.
    pub player_id: String,
    /// Username.
    pub username: String,
    /// Arena rating.
    pub rating: i64,
}

/// Whether a search window found enough players to stop widening.
pub fn enough_candidates(rules: &ArenaRules, found: &[Candidate], me: &str) -> bool {
    found.iter().filter(|c| c.player_id != me).count() >= rules.min_opponents_before_widening
}

/// Up to `rules.opponents` players for `me` at `rating`: never `me`, nearest
/// rating first, ties by id, so the list is stable between calls.
pub fn pick_opponents(rules: &ArenaRules, me: &str, rating: i64, mut found: Vec<Candidate>) -> Vec<Candidate> {
    found.retain(|c| c.player_id != me);
    found.sort_by(|a, b| (a.rating - rating).abs().cmp(&(b.rating - rating).abs()).then(a.player_id.cmp(&b.player_id)));
    found.truncate(rules.opponents);
    found
}

/// What one arena challenge did to the attacker.
#[derive(Debug, Clone)]
pub struct Challenge {
    /// The attacker's team as it fought.
    pub team: TeamSnapshot,
    /// The battle.
    pub log: BattleLog,
    /// Rating changes of both sides.
    pub change: RatingChange,
    /// The attacker's rating before.
    pub rating_before: i64,
    /// Medals won.
    pub medals: i64,
    /// Gold won.
    pub gold: i64,
}

/// The side being challenged: its team as it stands and its rating.
#[derive(Debug, Clone, Copy)]
pub struct Defense<'a> {
    /// The defending team.
    pub team: &'a TeamSnapshot,
    /// The defender's rating (a bot's is the one it was offered at).
    pub rating: i64,
}

/// One challenge by `player` against `defense`: the season rolls over first,
/// one ticket is spent, the battle is fought with `seed`, the attacker's rating
/// moves by Elo and the rewards are paid.
pub fn challenge(
    rules: &ArenaRules,
    catalog: &Catalog,
    player: &mut Player,
    defense: Defense<'_>,
    seed: u64,
    now: DateTime<Utc>,
    mail_days: i64,
) -> Result<Challenge, GameError> {
    roll_season(rules, player, now, mail_days);
    player.balances.debit(Currency::ArenaTickets, 1)?;
    let team = team_snapshot(player, catalog);
    let log = simulate(RULES_VERSION, seed, &team, defense.team);
    let change = rating_change(rules.k_factor, player.arena_rating, defense.rating, log.winner);
    let rating_before = player.arena_rating;
    player.arena_rating = apply_rating(rating_before, change.attacker);
    player.arena_season_battles += 1;
    let (medals, gold) = if log.winner == Side::Attacker {
        (rules.win_medals, rules.win_gold)
    } else {
        (rules.loss_medals, rules.loss_gold)
    };
    player.balances.credit(Currency::ArenaMedals, medals);
    player.balances.credit(Currency::Gold, gold);
    Ok(Challenge { team, log, change, rating_before, medals, gold })
}

/// The defender's side of a challenge: the season rolls over, the rating moves.
pub fn defend(rules: &ArenaRules, player: &mut Player, change: i64, now: DateTime<Utc>, mail_days: i64) {
    roll_season(rules, player, now, mail_days);
    player.arena_rating = apply_rating(player.arena_rating, change);
}

/// How long an offer of opponents stands, minutes.
pub const OFFER_MINUTES: i64 = 5;

/// A bot's id: its place in the offer. Its rating is kept in the offer on the
/// server, never read from the id.
pub fn bot_id(n: usize) -> String {
    format!("bot:{n}")
}

/// The number of a bot id.
pub fn bot_number(id: &str) -> Option<u64> {
    id.strip_prefix("bot:")?.parse().ok()
}

/// The offered entry a challenge names: it must be in the player's latest
/// offer, made less than [`OFFER_MINUTES`] ago.
pub fn offered<'a>(
    player: &'a Player,
    opponent_id: &str,
    now: DateTime<Utc>,
) -> Result<&'a OfferedOpponent, GameError> {
    let offer = player
        .arena_offer
        .as_ref()
        .ok_or_else(|| GameError::Conflict("ask for opponents first (GET /api/battle/arena/opponents)".into()))?;
    if now - offer.at > Duration::minutes(OFFER_MINUTES) {
        return Err(GameError::Conflict(format!(
            "the opponents offered at {} have expired ({OFFER_MINUTES} minutes): ask for new ones",
            offer.at.to_rfc3339()
        )));
    }
    offer
        .opponents
        .iter()
        .find(|o| o.id == opponent_id)
        .ok_or_else(|| GameError::Conflict(format!("{opponent_id} is not among the opponents last offered to you")))
}

/// A bot's team: a pure function of its id, of a strength that follows its rating.
pub fn bot_team(catalog: &Catalog, rating: i64, n: u64) -> TeamSnapshot {
    let mut rng = seeded(((rating as u64) << 16) ^ n ^ 0xB07);
    let roster: Vec<_> = catalog.all().iter().filter(|h| !h.limited_only && h.rarity <= catalog::Rarity::Ssr).collect();
    let level = (rating / 20).clamp(1, 100) as u32;
    let mut team = vec![None; 6];
    for slot in team.iter_mut().take(3) {
        let def = roster[rng.gen_range(0..roster.len())];
        *slot = Some(UnitSnapshot {
            hero_id: def.id.clone(),
            element: def.element,
            class: def.class,
            stats: catalog::stats_at(def.base_stats(), level, 1),
        });
    }
    team
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_ratings_move_by_half_k() {
        assert_eq!(rating_change(32, 1000, 1000, Side::Attacker), RatingChange { attacker: 16, defender: -8 });
        assert_eq!(rating_change(32, 1000, 1000, Side::Defender), RatingChange { attacker: -16, defender: 8 });
        let upset = rating_change(32, 1000, 1400, Side::Attacker);
        assert_eq!(upset.attacker, 29);
        assert_eq!(apply_rating(5, -16), 0);
    }

    #[test]
    fn bot_ids_round_trip() {
        assert_eq!(bot_number(&bot_id(2)), Some(2));
        assert_eq!(bot_number("bot:abc"), None);
        assert_eq!(bot_number("player"), None);
    }
}
