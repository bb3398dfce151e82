//! The battle engine: a pure function of (rules version, seed, attacker team,
//! defender team) to a full log. Integer arithmetic only, ordered collections
//! only and one seeded RNG, so the same inputs give the same log everywhere.

pub mod arena;
pub mod campaign;
pub mod tower;

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::catalog::{Catalog, Class, Element, Stats};
use super::player::Player;
use super::rng::seeded;

/// The rules version this engine implements; stored with every battle so a
/// replay can tell when it was fought under other rules.
pub const RULES_VERSION: u32 = 1;
/// Rounds before the defender wins by time-out.
pub const MAX_ROUNDS: u32 = 30;
/// Slots 0-2 are the front row, 3-5 the back row.
pub const FRONT_ROW: usize = 3;

/// Which side a unit fights on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The side that started the fight.
    Attacker,
    /// The side that was challenged.
    Defender,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::Attacker => Side::Defender,
            Side::Defender => Side::Attacker,
        }
    }
}

/// A unit as it enters battle: everything the engine needs, nothing it can look up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UnitSnapshot {
    /// Hero id.
    pub hero_id: String,
    /// Element.
    pub element: Element,
    /// Class.
    pub class: Class,
    /// Stats at its level and stars (HP already multiplied for bosses).
    pub stats: Stats,
}

/// Six slots; `None` is an empty slot.
pub type TeamSnapshot = Vec<Option<UnitSnapshot>>;

/// A player's team as it stands now.
pub fn team_snapshot(player: &Player, catalog: &Catalog) -> TeamSnapshot {
    player
        .team
        .iter()
        .map(|slot| {
            let id = slot.as_ref()?;
            let def = catalog.get(id)?;
            Some(UnitSnapshot {
                hero_id: id.clone(),
                element: def.element,
                class: def.class,
                stats: player.hero_stats(catalog, id)?,
            })
        })
        .collect()
}

/// One unit hit by an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Hit {
    /// Side of the unit hit.
    pub side: Side,
    /// Its slot.
    pub slot: usize,
    /// Damage dealt.
    pub damage: u32,
    /// Whether it was a critical hit.
    pub crit: bool,
    /// HP after the hit (never below 0).
    pub hp_after: u32,
    /// Whether the hit killed it.
    pub died: bool,
}

/// One action in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Action {
    /// Round, from 1.
    pub round: u32,
    /// Side of the actor.
    pub side: Side,
    /// Slot of the actor.
    pub slot: usize,
    /// Hero id of the actor.
    pub hero_id: String,
    /// Skill used.
    pub skill: Skill,
    /// Units hit, in order.
    pub hits: Vec<Hit>,
}

/// Every skill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum Skill {
    Basic,
    Strike,
    Taunt,
    Bolt,
    Blast,
    Shot,
    Volley,
    Ultimate,
}

/// The full result of a battle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BattleLog {
    /// Rules version.
    pub rules_version: u32,
    /// Seed, written as a string: JSON readers and BSON lose u64s above 2⁶³.
    #[serde(with = "seed_as_string")]
    #[schema(value_type = String, pattern = "^[0-9]{1,20}$")]
    pub seed: u64,
    /// Winner.
    pub winner: Side,
    /// Rounds fought.
    pub rounds: u32,
    /// Stars for the attacker (0 on a loss).
    pub stars: u8,
    /// Attacker units lost.
    pub attacker_lost: u32,
    /// Every action in order.
    pub actions: Vec<Action>,
}

mod seed_as_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(seed: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(seed)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

struct Unit {
    side: Side,
    slot: usize,
    snap: UnitSnapshot,
    hp: u32,
    rage: u32,
    cd_small: u32,
    cd_big: u32,
    taunt_rounds: u32,
}

impl Unit {
    fn alive(&self) -> bool {
        self.hp > 0
    }
}

/// Element advantage in percent: Fire > Wind > Earth > Water > Fire at 120 (80 the
/// other way); Light and Dark deal 120 to each other.
fn element_pct(att: Element, def: Element) -> u64 {
    use Element::{Dark, Earth, Fire, Light, Water, Wind};
    let beats = |a, d| matches!((a, d), (Fire, Wind) | (Wind, Earth) | (Earth, Water) | (Water, Fire));
    match (att, def) {
        (Light, Dark) | (Dark, Light) => 120,
        (a, d) if beats(a, d) => 120,
        (a, d) if beats(d, a) => 80,
        _ => 100,
    }
}

/// Class advantage in percent: Warrior > Archer > Mage > Warrior at 115 (85 back).
fn class_pct(att: Class, def: Class) -> u64 {
    use Class::{Archer, Mage, Warrior};
    let beats = |a, d| matches!((a, d), (Warrior, Archer) | (Archer, Mage) | (Mage, Warrior));
    if beats(att, def) {
        115
    } else if beats(def, att) {
        85
    } else {
        100
    }
}

/// Skill multipliers in percent.
fn skill_pct(skill: Skill, class: Class) -> u64 {
    match (skill, class) {
        (Skill::Basic, _) => 100,
        (Skill::Strike, _) => 150,
        (Skill::Bolt, _) => 180,
        (Skill::Blast, _) => 120,
        (Skill::Shot, _) => 160,
        (Skill::Volley, _) => 100,
        (Skill::Taunt, _) => 0,
        (Skill::Ultimate, Class::Warrior) => 250,
        (Skill::Ultimate, Class::Mage) => 300,
        (Skill::Ultimate, Class::Archer) => 220,
    }
}

const CRIT_PER_MILLE: u32 = 150;
const SMALL_CD: u32 = 2;
const BIG_CD: u32 = 4;
const TAUNT_ROUNDS: u32 = 2;
const RAGE_PER_ACTION: u32 = 25;
const RAGE_PER_HIT: u32 = 10;
const RAGE_FULL: u32 = 100;
const ULTIMATE_ARCHER_TARGETS: usize = 3;

/// `max(1, ATK × skill − DEF / 2) × element × class × crit × roll`, in integers:
/// everything is scaled to hundredths (the roll to ten-thousandths) and divided once.
fn damage(att: &Unit, def: &Unit, skill: Skill, crit: bool, roll: u64) -> u32 {
    let base = (u64::from(att.snap.stats.atk) * skill_pct(skill, att.snap.class))
        .saturating_sub(u64::from(def.snap.stats.def) * 50)
        .max(100);
    let crit_pct = if crit { 150 } else { 100 };
    let scaled = u128::from(base)
        * u128::from(element_pct(att.snap.element, def.snap.element))
        * u128::from(class_pct(att.snap.class, def.snap.class))
        * crit_pct as u128
        * u128::from(roll);
    let d = scaled / (100u128 * 100 * 100 * 100 * 10_000);
    d.clamp(1, u128::from(u32::MAX)) as u32
}

/// Index of the single target for `actor`, honouring taunt and the class rules.
fn single_target(units: &[Unit], actor: &Unit) -> Option<usize> {
    let enemies = || units.iter().enumerate().filter(|(_, u)| u.side != actor.side && u.alive());
    if let Some((i, _)) = enemies().filter(|(_, u)| u.taunt_rounds > 0).min_by_key(|(_, u)| u.slot) {
        return Some(i);
    }
    match actor.snap.class {
        Class::Archer => enemies().min_by_key(|(_, u)| (u.hp, u.slot)).map(|(i, _)| i),
        Class::Warrior | Class::Mage => {
            let front = enemies().filter(|(_, u)| u.slot < FRONT_ROW).min_by_key(|(_, u)| u.slot).map(|(i, _)| i);
            front.or_else(|| enemies().min_by_key(|(_, u)| u.slot).map(|(i, _)| i))
        }
    }
}

fn living(units: &[Unit], side: Side) -> usize {
    units.iter().filter(|u| u.side == side && u.alive()).count()
}

/// Fights a battle. Deterministic in its inputs.
pub fn simulate(rules_version: u32, seed: u64, attacker: &TeamSnapshot, defender: &TeamSnapshot) -> BattleLog {
    let mut rng = seeded(seed ^ (u64::from(rules_version) << 56));
    let mut units: Vec<Unit> = Vec::with_capacity(12);
    for (side, team) in [(Side::Attacker, attacker), (Side::Defender, defender)] {
        for (slot, u) in team.iter().enumerate().take(6) {
            if let Some(snap) = u {
                units.push(Unit {
                    side,
                    slot,
                    hp: snap.stats.hp.max(1),
                    snap: snap.clone(),
                    rage: 0,
                    cd_small: 0,
                    cd_big: 0,
                    taunt_rounds: 0,
                });
            }
        }
    }
    let attacker_start = living(&units, Side::Attacker) as u32;
    let mut actions = Vec::new();
    let mut round = 0;
    let mut winner = None;
    while round < MAX_ROUNDS && winner.is_none() {
        round += 1;
        // Turn order: SPD, then attacker before defender, then slot.
        let mut order: Vec<usize> = (0..units.len()).filter(|&i| units[i].alive()).collect();
        order.sort_by_key(|&i| (std::cmp::Reverse(units[i].snap.stats.spd), units[i].side, units[i].slot));
        for i in order {
            if !units[i].alive() {
                continue;
            }
            let enemy = units[i].side.other();
            if living(&units, enemy) == 0 {
                break;
            }
            let class = units[i].snap.class;
            let skill = if units[i].rage >= RAGE_FULL {
                Skill::Ultimate
            } else if units[i].cd_big == 0 {
                match class {
                    Class::Warrior => Skill::Taunt,
                    Class::Mage => Skill::Blast,
                    Class::Archer => Skill::Volley,
                }
            } else if units[i].cd_small == 0 {
                match class {
                    Class::Warrior => Skill::Strike,
                    Class::Mage => Skill::Bolt,
                    Class::Archer => Skill::Shot,
                }
            } else {
                Skill::Basic
            };
            let targets: Vec<usize> = match skill {
                Skill::Taunt => Vec::new(),
                Skill::Blast | Skill::Volley => {
                    (0..units.len()).filter(|&j| units[j].side == enemy && units[j].alive()).collect()
                }
                Skill::Ultimate if class == Class::Archer => {
                    let mut pool: Vec<usize> =
                        (0..units.len()).filter(|&j| units[j].side == enemy && units[j].alive()).collect();
                    let mut picked = Vec::new();
                    while picked.len() < ULTIMATE_ARCHER_TARGETS && !pool.is_empty() {
                        picked.push(pool.remove(rng.gen_range(0..pool.len())));
                    }
                    picked
                }
                Skill::Ultimate => (0..units.len()).filter(|&j| units[j].side == enemy && units[j].alive()).collect(),
                _ => single_target(&units, &units[i]).into_iter().collect(),
            };
            let mut hits = Vec::with_capacity(targets.len());
            for t in targets {
                let crit = rng.gen_range(0..1000) < CRIT_PER_MILLE;
                let roll = rng.gen_range(9_500..=10_500u64);
                let d = damage(&units[i], &units[t], skill, crit, roll);
                let target = &mut units[t];
                target.hp = target.hp.saturating_sub(d);
                target.rage = (target.rage + RAGE_PER_HIT).min(RAGE_FULL);
                hits.push(Hit {
                    side: target.side,
                    slot: target.slot,
                    damage: d,
                    crit,
                    hp_after: target.hp,
                    died: target.hp == 0,
                });
            }
            let actor = &mut units[i];
            match skill {
                Skill::Ultimate => actor.rage = 0,
                _ => actor.rage = (actor.rage + RAGE_PER_ACTION).min(RAGE_FULL),
            }
            match skill {
                Skill::Taunt => {
                    actor.taunt_rounds = TAUNT_ROUNDS;
                    actor.cd_big = BIG_CD;
                }
                Skill::Blast | Skill::Volley => actor.cd_big = BIG_CD,
                Skill::Strike | Skill::Bolt | Skill::Shot => actor.cd_small = SMALL_CD,
                _ => {}
            }
            actions.push(Action {
                round,
                side: actor.side,
                slot: actor.slot,
                hero_id: actor.snap.hero_id.clone(),
                skill,
                hits,
            });
            if living(&units, enemy) == 0 {
                winner = Some(units[i].side);
                break;
            }
        }
        for u in &mut units {
            u.cd_small = u.cd_small.saturating_sub(1);
            u.cd_big = u.cd_big.saturating_sub(1);
            u.taunt_rounds = u.taunt_rounds.saturating_sub(1);
        }
        if winner.is_none() && living(&units, Side::Defender) == 0 {
            winner = Some(Side::Attacker);
        }
    }
    let winner = winner.unwrap_or(Side::Defender);
    let attacker_lost = attacker_start - living(&units, Side::Attacker) as u32;
    let stars = match (winner, attacker_lost) {
        (Side::Defender, _) => 0,
        (_, 0) => 3,
        (_, 1..=2) => 2,
        _ => 1,
    };
    BattleLog { rules_version, seed, winner, rounds: round, stars, attacker_lost, actions }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::game::data::GameData;

    fn team(catalog: &Catalog, picks: &[(usize, u32, u32)]) -> TeamSnapshot {
        let heroes = catalog.all();
        let mut t: TeamSnapshot = vec![None; 6];
        for (slot, &(h, level, stars)) in picks.iter().enumerate().take(6) {
            let def = &heroes[h % heroes.len()];
            t[slot] = Some(UnitSnapshot {
                hero_id: def.id.clone(),
                element: def.element,
                class: def.class,
                stats: catalog::stats_at(def.base_stats(), level, stars),
            });
        }
        t
    }

    use crate::game::catalog;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn battles_obey_their_invariants(
            seed in any::<u64>(),
            a in proptest::collection::vec((0usize..23, 1u32..100, 1u32..=6), 1..=6),
            d in proptest::collection::vec((0usize..23, 1u32..100, 1u32..=6), 1..=6),
        ) {
            let data = GameData::builtin();
            let (ta, td) = (team(&data.catalog, &a), team(&data.catalog, &d));
            let log = simulate(RULES_VERSION, seed, &ta, &td);
            prop_assert!(log.rounds >= 1 && log.rounds <= MAX_ROUNDS);
            let mut hp: BTreeMap<(Side, usize), u32> = BTreeMap::new();
            for (side, t) in [(Side::Attacker, &ta), (Side::Defender, &td)] {
                for (slot, u) in t.iter().enumerate() {
                    if let Some(u) = u { hp.insert((side, slot), u.stats.hp); }
                }
            }
            for act in &log.actions {
                prop_assert!(act.round <= log.rounds);
                prop_assert!(hp[&(act.side, act.slot)] > 0, "a dead unit acted");
                for h in &act.hits {
                    let before = hp[&(h.side, h.slot)];
                    prop_assert!(before > 0, "a dead unit was hit");
                    prop_assert!(h.damage >= 1);
                    prop_assert_eq!(h.hp_after, before.saturating_sub(h.damage));
                    prop_assert_eq!(h.died, h.hp_after == 0);
                    hp.insert((h.side, h.slot), h.hp_after);
                }
            }
            let alive = |s: Side| hp.iter().filter(|((side, _), v)| *side == s && **v > 0).count();
            match log.winner {
                Side::Attacker => prop_assert_eq!(alive(Side::Defender), 0),
                Side::Defender => prop_assert!(alive(Side::Attacker) == 0 || log.rounds == MAX_ROUNDS),
            }
            prop_assert_eq!(simulate(RULES_VERSION, seed, &ta, &td), log, "same inputs, same log");
        }
    }

    #[test]
    fn advantages_follow_the_wheels() {
        use Element::*;
        assert_eq!(element_pct(Fire, Wind), 120);
        assert_eq!(element_pct(Wind, Fire), 80);
        assert_eq!(element_pct(Water, Fire), 120);
        assert_eq!(element_pct(Light, Dark), 120);
        assert_eq!(element_pct(Dark, Light), 120);
        assert_eq!(element_pct(Fire, Light), 100);
        assert_eq!(class_pct(Class::Warrior, Class::Archer), 115);
        assert_eq!(class_pct(Class::Archer, Class::Warrior), 85);
        assert_eq!(class_pct(Class::Mage, Class::Warrior), 115);
    }
}
