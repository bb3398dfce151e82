//! The shop (LOOPS.md, Shop): a daily shop of 6 offers drawn from (player id,
//! date), fixed offers with daily limits and rising prices, and the medal shop
//! with weekly limits. Every purchase is one player write: the limits live on
//! the player record, so concurrent purchases cannot pass them.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::catalog::{Catalog, Rarity};
use super::data_error::DataError;
use super::economy::Currency;
use super::error::GameError;
pub use super::loops::ShopState;
use super::player::Player;
use super::quests::Reward;

/// What an offer gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Item {
    /// An amount of a currency.
    Currency {
        /// Which.
        currency: Currency,
        /// How much.
        amount: i64,
    },
    /// Shards of one hero (the hero must be owned when bought).
    Shards {
        /// Which hero; `None` on a medal-shop offer: the buyer chooses.
        hero_id: Option<String>,
        /// How many.
        shards: u32,
    },
}

/// One weighted entry of the daily shop's table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DailyEntry {
    /// Stable id.
    pub id: String,
    /// Relative chance of being one of the day's offers.
    pub weight: u32,
    /// A currency grant, or...
    #[serde(default)]
    pub currency: Option<Reward>,
    /// ...shards of a hero of this rarity, drawn with the day's offers,
    #[serde(default)]
    pub shards_of: Option<Rarity>,
    /// ...between these counts (multiples of 10).
    #[serde(default)]
    pub shards: Option<(u32, u32)>,
    /// The price.
    pub price: Reward,
}

/// An offer with a limit per day (fixed) or per week (medal shop).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitedOffer {
    /// Stable id (the buy route's).
    pub id: String,
    /// What one purchase gives; shards with no hero: the buyer names an SSR hero.
    pub item: Item,
    /// Price of the first purchase in the period.
    pub price: Reward,
    /// Added to the price by each purchase earlier in the period.
    #[serde(default)]
    pub price_step: i64,
    /// Purchases per period.
    pub limit: u32,
}

/// `config/shop.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopTable {
    /// Offers a day in the daily shop.
    pub daily_offers: usize,
    /// What the daily shop draws from.
    pub daily: Vec<DailyEntry>,
    /// Fixed offers, limits per UTC day.
    pub fixed: Vec<LimitedOffer>,
    /// The medal shop, limits per week (from Monday 00:00 UTC).
    pub medal: Vec<LimitedOffer>,
    /// Crystal packs sold for real money (credited by the purchase webhook).
    pub packs: Vec<super::purchases::Pack>,
}

impl ShopTable {
    /// Parses and validates `shop.toml` against the catalog.
    pub fn from_toml(file: &str, text: &str, catalog: &Catalog) -> Result<Self, DataError> {
        let t: ShopTable = toml::from_str(text).map_err(|e| DataError::new(file, "(file)", e.to_string()))?;
        if t.daily_offers == 0 || t.daily_offers > t.daily.len() {
            return Err(DataError::new(file, "daily_offers", "must be between 1 and the number of daily entries"));
        }
        let mut ids = HashSet::new();
        for d in &t.daily {
            let shards_ok = match (d.shards_of, d.shards) {
                (Some(r), Some((lo, hi))) => {
                    lo > 0
                        && lo <= hi
                        && lo % 10 == 0
                        && hi % 10 == 0
                        && catalog.all().iter().any(|h| h.rarity == r && !h.limited_only)
                }
                (None, None) => true,
                _ => false,
            };
            if d.weight == 0 || d.price.amount <= 0 || !shards_ok || d.currency.is_some() == d.shards_of.is_some() {
                return Err(DataError::new(
                    file,
                    &d.id,
                    "needs a positive weight and price and either a currency or shards_of with shards = [min, max] (multiples of 10)",
                ));
            }
            if d.currency.is_some_and(|c| c.amount <= 0) {
                return Err(DataError::new(file, &d.id, "amount must be positive"));
            }
            if !ids.insert(d.id.clone()) {
                return Err(DataError::new(file, &d.id, "offer id used twice"));
            }
        }
        for o in t.fixed.iter().chain(&t.medal) {
            if !item_is_valid(&o.item, catalog) || o.price.amount <= 0 || o.price_step < 0 || o.limit == 0 {
                return Err(DataError::new(file, &o.id, "needs a positive item, price and limit"));
            }
            if !ids.insert(o.id.clone()) || o.id.starts_with("daily-") {
                return Err(DataError::new(file, &o.id, "offer id used twice (or starting with daily-)"));
            }
        }
        super::purchases::validate(file, &t.packs)?;
        Ok(t)
    }
}

/// A limited offer's item: a positive amount of a currency, or shards of a
/// real hero (or of one the buyer names).
pub fn item_is_valid(item: &Item, catalog: &Catalog) -> bool {
    match item {
        Item::Currency { amount, .. } => *amount > 0,
        Item::Shards { hero_id, shards } => *shards > 0 && hero_id.as_ref().is_none_or(|h| catalog.get(h).is_some()),
    }
}

/// An offer as the player sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OfferView {
    /// Id for `POST /api/shop/buy`.
    pub offer_id: String,
    /// What one purchase gives.
    pub item: Item,
    /// What the next purchase costs.
    pub price: Reward,
    /// Purchases left in the period.
    pub remaining: u32,
}

/// `GET /api/shop`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShopView {
    /// Today's daily offers (each once today).
    pub daily: Vec<OfferView>,
    /// Fixed offers (limits per day).
    pub fixed: Vec<OfferView>,
    /// The medal shop (limits per week).
    pub medal: Vec<OfferView>,
}

/// A daily offer's id: the day and the slot, so yesterday's id is known as expired.
fn daily_id(day: NaiveDate, slot: usize) -> String {
    format!("daily-{}-{}", day.format("%Y%m%d"), slot + 1)
}

/// The day's offers of a player: drawn without replacement by weight from a
/// seed of (player id, date), so every pod shows the same six all day.
pub fn daily_offers(
    table: &ShopTable,
    catalog: &Catalog,
    player_id: &str,
    day: NaiveDate,
) -> Vec<(String, Item, Reward)> {
    let digest = Sha256::digest(format!("daily-shop:{player_id}:{day}").as_bytes());
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&digest);
    let mut rng = super::rng::GameRng::from_seed(seed);
    let mut left: Vec<&DailyEntry> = table.daily.iter().collect();
    let mut out = Vec::with_capacity(table.daily_offers);
    for slot in 0..table.daily_offers {
        let total: u32 = left.iter().map(|e| e.weight).sum();
        let mut roll = rng.gen_range(0..total);
        let i = left
            .iter()
            .position(|e| {
                if roll < e.weight {
                    true
                } else {
                    roll -= e.weight;
                    false
                }
            })
            .unwrap_or(0);
        let e = left.remove(i);
        let item = match (e.currency, e.shards_of, e.shards) {
            (Some(c), _, _) => Item::Currency { currency: c.currency, amount: c.amount },
            (None, Some(rarity), Some((lo, hi))) => {
                let heroes: Vec<&str> = catalog
                    .all()
                    .iter()
                    .filter(|h| h.rarity == rarity && !h.limited_only)
                    .map(|h| h.id.as_str())
                    .collect();
                // Validated: every shards_of rarity has a hero outside limited banners.
                let hero = heroes[rng.gen_range(0..heroes.len())];
                let shards = 10 * rng.gen_range(lo / 10..=hi / 10);
                Item::Shards { hero_id: Some(hero.to_string()), shards }
            }
            _ => Item::Currency { currency: Currency::Gold, amount: 0 },
        };
        out.push((daily_id(day, slot), item, e.price));
    }
    out
}

fn price_of(o: &LimitedOffer, bought: u32, quantity: u32) -> i64 {
    (0..quantity).map(|i| o.price.amount + o.price_step * i64::from(bought + i)).sum()
}

/// The shop of a player at `now`.
pub fn view(table: &ShopTable, catalog: &Catalog, p: &Player, now: DateTime<Utc>) -> ShopView {
    let mut s = p.shop.clone();
    s.roll(now);
    let limited = |offers: &[LimitedOffer], bought: &BTreeMap<String, u32>| {
        offers
            .iter()
            .map(|o| {
                let n = bought.get(&o.id).copied().unwrap_or(0);
                OfferView {
                    offer_id: o.id.clone(),
                    item: o.item.clone(),
                    price: Reward { currency: o.price.currency, amount: price_of(o, n, 1) },
                    remaining: o.limit.saturating_sub(n),
                }
            })
            .collect()
    };
    ShopView {
        daily: daily_offers(table, catalog, &p.id, now.date_naive())
            .into_iter()
            .map(|(offer_id, item, price)| {
                let remaining = u32::from(!s.today.contains_key(&offer_id));
                OfferView { offer_id, item, price, remaining }
            })
            .collect(),
        fixed: limited(&table.fixed, &s.today),
        medal: limited(&table.medal, &s.this_week),
    }
}

/// What a purchase did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Purchase {
    /// The offer.
    pub offer_id: String,
    /// How many bought.
    pub quantity: u32,
    /// What was granted in all (shards name their hero).
    pub item: Item,
    /// What was paid in all.
    pub paid: Reward,
}

fn grant(p: &mut Player, item: &Item, times: u32) -> Result<Item, GameError> {
    match item {
        Item::Currency { currency, amount } => {
            let total = amount * i64::from(times);
            p.balances.credit(*currency, total);
            Ok(Item::Currency { currency: *currency, amount: total })
        }
        Item::Shards { hero_id: Some(hero_id), shards } => {
            let h = p
                .heroes
                .get_mut(hero_id)
                .ok_or_else(|| GameError::Conflict(format!("shards of {hero_id} need the hero owned first")))?;
            let total = shards * times;
            h.shards = h.shards.saturating_add(total);
            Ok(Item::Shards { hero_id: Some(hero_id.clone()), shards: total })
        }
        Item::Shards { hero_id: None, .. } => {
            Err(GameError::Invalid("this offer needs hero_id: the hero whose shards you buy".into()))
        }
    }
}

fn check_quantity(quantity: u32) -> Result<(), GameError> {
    if quantity == 0 || quantity > 100 {
        return Err(GameError::Invalid(format!("quantity must be 1-100, got {quantity}")));
    }
    Ok(())
}

/// Buys `quantity` of an offer: the price debited and the item granted in one
/// change, or nothing when a limit, the balance or the offer's day refuses it.
/// `hero_id` names the hero of a medal-shop shard offer (an owned SSR).
pub fn buy(
    table: &ShopTable,
    catalog: &Catalog,
    p: &mut Player,
    offer_id: &str,
    quantity: u32,
    hero_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Purchase, GameError> {
    check_quantity(quantity)?;
    p.shop.roll(now);
    if offer_id.starts_with("daily-") {
        let today = daily_offers(table, catalog, &p.id, now.date_naive());
        let Some((_, item, price)) = today.into_iter().find(|(id, _, _)| id == offer_id) else {
            return Err(GameError::OfferExpired(format!("offer {offer_id} is not in today's daily shop")));
        };
        if quantity != 1 || p.shop.today.contains_key(offer_id) {
            return Err(GameError::LimitReached(format!("daily offer {offer_id} can be bought once today")));
        }
        p.balances.debit(price.currency, price.amount)?;
        let item = grant(p, &item, 1)?;
        p.shop.today.insert(offer_id.to_string(), 1);
        return Ok(Purchase { offer_id: offer_id.to_string(), quantity, item, paid: price });
    }
    let (offer, weekly) = if let Some(o) = table.fixed.iter().find(|o| o.id == offer_id) {
        (o, false)
    } else if let Some(o) = table.medal.iter().find(|o| o.id == offer_id) {
        (o, true)
    } else {
        return Err(GameError::NotFound(format!("no offer {offer_id:?}")));
    };
    buy_limited(catalog, p, offer, weekly, quantity, hero_id, now)
}

/// Buys `quantity` of a limited offer (fixed, medal or guild shop): the limit
/// of its period checked, the price debited and the item granted in one change.
/// The counts live on the player's shop record under the offer's id.
pub fn buy_limited(
    catalog: &Catalog,
    p: &mut Player,
    offer: &LimitedOffer,
    weekly: bool,
    quantity: u32,
    hero_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Purchase, GameError> {
    check_quantity(quantity)?;
    p.shop.roll(now);
    let offer_id = offer.id.as_str();
    let bought = if weekly { &p.shop.this_week } else { &p.shop.today }.get(offer_id).copied().unwrap_or(0);
    if bought + quantity > offer.limit {
        let period = if weekly { "this week" } else { "today" };
        return Err(GameError::LimitReached(format!(
            "{offer_id}: {} of {} left {period}, asked for {quantity}",
            offer.limit.saturating_sub(bought),
            offer.limit
        )));
    }
    let item = match (&offer.item, hero_id) {
        (Item::Shards { hero_id: None, shards }, Some(h)) => {
            if catalog.get(h).is_none_or(|d| d.rarity != Rarity::Ssr) {
                return Err(GameError::Invalid(format!("{h:?} is not an SSR hero")));
            }
            Item::Shards { hero_id: Some(h.to_string()), shards: *shards }
        }
        (item, _) => item.clone(),
    };
    let paid = Reward { currency: offer.price.currency, amount: price_of(offer, bought, quantity) };
    p.balances.debit(paid.currency, paid.amount)?;
    let item = grant(p, &item, quantity)?;
    let counts = if weekly { &mut p.shop.this_week } else { &mut p.shop.today };
    counts.insert(offer_id.to_string(), bought + quantity);
    Ok(Purchase { offer_id: offer_id.to_string(), quantity, item, paid })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::data::GameData;
    use chrono::TimeZone;

    #[test]
    fn the_daily_shop_is_the_same_all_day_and_changes_the_next() {
        let data = GameData::builtin();
        let day = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        let a = daily_offers(&data.shop, &data.catalog, "p1", day);
        assert_eq!(a.len(), 6);
        assert_eq!(a, daily_offers(&data.shop, &data.catalog, "p1", day), "deterministic");
        let ids: HashSet<_> = a.iter().map(|(_, item, _)| format!("{item:?}")).collect();
        assert_eq!(ids.len(), 6, "six different offers");
        let other_days: Vec<_> =
            (1..10).map(|d| daily_offers(&data.shop, &data.catalog, "p1", day + chrono::Duration::days(d))).collect();
        assert!(other_days.iter().any(|o| o.iter().map(|x| &x.1).ne(a.iter().map(|x| &x.1))), "other days differ");
    }

    #[test]
    fn a_rising_price_sums_over_the_quantity() {
        let data = GameData::builtin();
        let now = Utc.with_ymd_and_hms(2026, 11, 26, 10, 0, 0).unwrap();
        let mut p = Player::new("s".into(), "s", "h".into(), now);
        p.balances.credit(Currency::Crystals, 10_000);
        let before = p.balances.crystals;
        let got = buy(&data.shop, &data.catalog, &mut p, "stamina_refill", 3, None, now).unwrap();
        assert_eq!(got.paid.amount, 50 + 100 + 150);
        assert_eq!(p.balances.crystals, before - 300);
        let e = buy(&data.shop, &data.catalog, &mut p, "stamina_refill", 4, None, now).unwrap_err();
        assert!(matches!(e, GameError::LimitReached(_)), "{e:?}");
        let next_day = now + chrono::Duration::days(1);
        let got = buy(&data.shop, &data.catalog, &mut p, "stamina_refill", 1, None, next_day).unwrap();
        assert_eq!(got.paid.amount, 50, "the price starts over each day");
    }
}
