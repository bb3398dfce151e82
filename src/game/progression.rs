//! Hero progression and the team: level-ups, promotions, team changes.

use serde::{Deserialize, Serialize};

use super::catalog::{self, Catalog};
use super::economy::Currency;
use super::error::GameError;
use super::player::{Player, TEAM_SLOTS};

/// What a level-up did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LevelUp {
    /// Hero id.
    pub hero_id: String,
    /// Level before.
    pub from_level: u32,
    /// Level after.
    pub to_level: u32,
    /// Gold paid.
    pub gold_spent: i64,
}

/// Gold to go from `from` to `to` (exclusive of `to`'s own step).
pub fn level_up_gold(from: u32, to: u32) -> i64 {
    (from..to).map(|l| catalog::level_up_cost(l) as i64).sum()
}

fn owned_mut<'a>(
    player: &'a mut Player,
    catalog: &Catalog,
    hero_id: &str,
) -> Result<&'a mut super::player::OwnedHero, GameError> {
    if catalog.get(hero_id).is_none() {
        return Err(GameError::NotFound(format!("no hero {hero_id:?} in the catalog")));
    }
    player.heroes.get_mut(hero_id).ok_or_else(|| GameError::NotFound(format!("you do not own {hero_id}")))
}

/// Raises an owned hero by `levels`, charged for all of them or none, up to the star cap.
pub fn level_up(player: &mut Player, catalog: &Catalog, hero_id: &str, levels: u32) -> Result<LevelUp, GameError> {
    if !(1..=100).contains(&levels) {
        return Err(GameError::Invalid(format!("levels must be between 1 and 100, got {levels}")));
    }
    let hero = owned_mut(player, catalog, hero_id)?;
    let cap = catalog::level_cap(hero.stars);
    let (from, to) = (hero.level, hero.level + levels);
    if to > cap {
        return Err(GameError::Conflict(format!(
            "{hero_id} is level {from}; {levels} more would pass the {}★ cap of {cap} (promote to raise it)",
            hero.stars
        )));
    }
    let gold = level_up_gold(from, to);
    player.balances.debit(Currency::Gold, gold)?;
    if let Some(h) = player.heroes.get_mut(hero_id) {
        h.level = to;
    }
    Ok(LevelUp { hero_id: hero_id.to_string(), from_level: from, to_level: to, gold_spent: gold })
}

/// What a promotion did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Promotion {
    /// Hero id.
    pub hero_id: String,
    /// Stars after.
    pub stars: u32,
    /// Shards spent.
    pub shards_spent: u32,
}

/// Spends shards of an owned hero for its next star.
pub fn promote(player: &mut Player, catalog: &Catalog, hero_id: &str) -> Result<Promotion, GameError> {
    let hero = owned_mut(player, catalog, hero_id)?;
    let next = hero.stars + 1;
    let cost = catalog::promotion_cost(next)
        .ok_or_else(|| GameError::Conflict(format!("{hero_id} already has the most stars ({})", hero.stars)))?;
    if hero.shards < cost {
        return Err(GameError::NotEnoughShards { hero_id: hero_id.to_string(), needed: cost, has: hero.shards });
    }
    hero.shards -= cost;
    hero.stars = next;
    Ok(Promotion { hero_id: hero_id.to_string(), stars: next, shards_spent: cost })
}

/// Sets the six slots: owned heroes only, none twice, at least one.
pub fn set_team(player: &mut Player, slots: Vec<Option<String>>) -> Result<(), GameError> {
    if slots.len() != TEAM_SLOTS {
        return Err(GameError::Invalid(format!("a team has exactly {TEAM_SLOTS} slots, got {}", slots.len())));
    }
    let mut seen = std::collections::BTreeSet::new();
    for h in slots.iter().flatten() {
        if !player.heroes.contains_key(h) {
            return Err(GameError::Invalid(format!("you do not own {h:?}")));
        }
        if !seen.insert(h) {
            return Err(GameError::Invalid(format!("{h} is in the team twice")));
        }
    }
    if seen.is_empty() {
        return Err(GameError::Invalid("a team needs at least one hero".into()));
    }
    player.team = slots;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::game::data::GameData;

    fn player() -> Player {
        Player::new("p".into(), "Ann", String::new(), chrono::Utc::now())
    }

    #[test]
    fn level_up_charges_the_sum_of_each_step_or_nothing() {
        let data = GameData::builtin();
        let mut p = player();
        let l = level_up(&mut p, &data.catalog, "marcus_the_shield", 3).unwrap();
        assert_eq!(l.gold_spent, 125 + 200 + 325);
        assert_eq!(p.balances.gold, 5000 - 650);
        let before = p.clone();
        assert!(matches!(
            level_up(&mut p, &data.catalog, "marcus_the_shield", 30),
            Err(GameError::InsufficientFunds(_))
        ));
        assert!(matches!(level_up(&mut p, &data.catalog, "marcus_the_shield", 47), Err(GameError::Conflict(_))));
        assert!(matches!(level_up(&mut p, &data.catalog, "apollyon_the_fallen", 1), Err(GameError::NotFound(_))));
        assert!(matches!(level_up(&mut p, &data.catalog, "nobody", 1), Err(GameError::NotFound(_))));
        assert_eq!(p, before);
    }

    #[test]
    fn promotion_spends_20_40_80_160_320() {
        let data = GameData::builtin();
        let mut p = player();
        p.heroes.get_mut("kai_the_tempest").unwrap().shards = 620;
        let spent: Vec<u32> =
            (0..5).map(|_| promote(&mut p, &data.catalog, "kai_the_tempest").unwrap().shards_spent).collect();
        assert_eq!(spent, vec![20, 40, 80, 160, 320]);
        assert_eq!(p.heroes["kai_the_tempest"].stars, 6);
        assert!(matches!(promote(&mut p, &data.catalog, "kai_the_tempest"), Err(GameError::Conflict(_))));
    }

    #[test]
    fn teams_hold_owned_heroes_once() {
        let mut p = player();
        let slot = |s: &str| Some(s.to_string());
        assert!(set_team(&mut p, vec![slot("kai_the_tempest"), None, None, None, None, None]).is_ok());
        assert!(
            set_team(&mut p, vec![slot("kai_the_tempest"), slot("kai_the_tempest"), None, None, None, None]).is_err()
        );
        assert!(set_team(&mut p, vec![None; 6]).is_err());
        assert!(set_team(&mut p, vec![slot("apollyon_the_fallen"), None, None, None, None, None]).is_err());
        assert!(set_team(&mut p, vec![slot("kai_the_tempest")]).is_err());
    }
}
