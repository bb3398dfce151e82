//! The campaign: stages generated from `config/battle.toml`, unlock order,
//! stamina, first-clear and win rewards, best stars, sweeps.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::{BattleLog, Side, TeamSnapshot, UnitSnapshot};
use crate::game::catalog::{self, Catalog, Rarity};
use crate::game::data_error::DataError;
use crate::game::economy::Currency;
use crate::game::error::GameError;
use crate::game::player::Player;
use crate::game::rng::seeded;

/// Campaign parameters.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct CampaignRules {
    pub chapters: u32,
    pub stages_per_chapter: u32,
    pub mini_boss_stages: Vec<u32>,
    pub boss_stage: u32,
    pub enemies: usize,
    pub enemies_mini_boss: usize,
    pub enemies_boss: usize,
    pub boss_hp_pct: u32,
    pub enemy_stat_base_pct: u32,
    pub rarity_by_chapter: Vec<Rarity>,
    pub stamina_base: i64,
    pub stamina_boss_extra: i64,
    pub gold_per_chapter: i64,
    pub xp_per_stage_number: u64,
    pub first_clear_crystals_per_chapter: i64,
    pub first_clear_boss_multiplier: i64,
    pub max_sweeps: u32,
}

/// What kind of stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StageKind {
    /// An ordinary stage.
    Normal,
    /// Stages 5, 10, 15, 20.
    MiniBoss,
    /// Stage 21.
    Boss,
}

/// A generated stage.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Stage {
    /// Chapter, from 1.
    pub chapter: u32,
    /// Stage in the chapter, from 1.
    pub stage: u32,
    /// Stage number n = stages_per_chapter·(c−1)+s.
    pub number: u32,
    /// Kind.
    pub kind: StageKind,
    /// Stamina per fight.
    pub stamina: i64,
    /// Gold per win.
    pub gold: i64,
    /// Player xp per win.
    pub xp: u64,
    /// Crystals on the first clear.
    pub first_clear_crystals: i64,
    /// The enemy team.
    pub enemies: TeamSnapshot,
    /// Its power.
    pub power: u64,
}

impl CampaignRules {
    /// Validates the parameters against the catalog.
    pub fn validate(&self, file: &str, catalog: &Catalog) -> Result<(), DataError> {
        let err = |p: &str| Err(DataError::new(file, "campaign", p));
        if self.chapters == 0 || self.stages_per_chapter == 0 {
            return err("chapters and stages_per_chapter must be positive");
        }
        if self.boss_stage == 0 || self.boss_stage > self.stages_per_chapter {
            return err("boss_stage must be a stage of the chapter");
        }
        if self.mini_boss_stages.iter().any(|&s| s == 0 || s > self.stages_per_chapter || s == self.boss_stage) {
            return err("mini_boss_stages must be stages of the chapter other than the boss");
        }
        if [self.enemies, self.enemies_mini_boss, self.enemies_boss].iter().any(|&n| n == 0 || n > 6) {
            return err("enemy counts must be 1 to 6");
        }
        if self.rarity_by_chapter.len() != self.chapters as usize {
            return err("rarity_by_chapter needs one entry per chapter");
        }
        for r in &self.rarity_by_chapter {
            if !catalog.all().iter().any(|h| h.rarity <= *r && !h.limited_only) {
                return err("a chapter's rarity tier has no hero to draw");
            }
        }
        if self.stamina_base < 0 || self.max_sweeps == 0 {
            return err("stamina_base must not be negative and max_sweeps must be positive");
        }
        Ok(())
    }

    /// The stage (c, s), or `None` outside the campaign.
    pub fn stage(&self, catalog: &Catalog, chapter: u32, stage: u32) -> Option<Stage> {
        if !(1..=self.chapters).contains(&chapter) || !(1..=self.stages_per_chapter).contains(&stage) {
            return None;
        }
        let n = self.stages_per_chapter * (chapter - 1) + stage;
        let kind = if stage == self.boss_stage {
            StageKind::Boss
        } else if self.mini_boss_stages.contains(&stage) {
            StageKind::MiniBoss
        } else {
            StageKind::Normal
        };
        let count = match kind {
            StageKind::Normal => self.enemies,
            StageKind::MiniBoss => self.enemies_mini_boss,
            StageKind::Boss => self.enemies_boss,
        };
        let tier = self.rarity_by_chapter[(chapter - 1) as usize];
        let roster: Vec<_> = catalog.all().iter().filter(|h| h.rarity <= tier && !h.limited_only).collect();
        // Enemies are a pure function of (c, s).
        let mut rng = seeded((u64::from(chapter) << 32) | u64::from(stage));
        let stat_pct = u64::from(self.enemy_stat_base_pct + n);
        let mut enemies: TeamSnapshot = vec![None; 6];
        for (slot, e) in enemies.iter_mut().enumerate().take(count) {
            let def = roster[rng.gen_range(0..roster.len())];
            let s = catalog::stats_at(def.base_stats(), n, 1);
            let pct = |v: u32| ((u64::from(v) * stat_pct) / 100).max(1) as u32;
            let mut stats = catalog::Stats { hp: pct(s.hp), atk: pct(s.atk), def: pct(s.def), spd: s.spd };
            if kind == StageKind::Boss && slot == count - 1 {
                stats.hp = (u64::from(stats.hp) * u64::from(self.boss_hp_pct) / 100) as u32;
            }
            *e = Some(UnitSnapshot { hero_id: def.id.clone(), element: def.element, class: def.class, stats });
        }
        let power = enemies.iter().flatten().map(|u| catalog::power(u.stats)).sum();
        let boss = kind == StageKind::Boss;
        Some(Stage {
            chapter,
            stage,
            number: n,
            kind,
            stamina: self.stamina_base + (i64::from(chapter) - 1) + if boss { self.stamina_boss_extra } else { 0 },
            gold: self.gold_per_chapter * i64::from(chapter) * (10 + i64::from(stage)) / 10,
            xp: self.xp_per_stage_number * u64::from(n),
            first_clear_crystals: self.first_clear_crystals_per_chapter
                * i64::from(chapter)
                * if boss { self.first_clear_boss_multiplier } else { 1 },
            enemies,
            power,
        })
    }

    /// The (chapter, stage) of stage number `n`.
    pub fn locate(&self, n: u32) -> (u32, u32) {
        ((n - 1) / self.stages_per_chapter + 1, (n - 1) % self.stages_per_chapter + 1)
    }

    /// Total stages.
    pub fn total(&self) -> u32 {
        self.chapters * self.stages_per_chapter
    }
}

/// What a fight paid.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StageRewards {
    /// Gold.
    pub gold: i64,
    /// Player xp.
    pub xp: u64,
    /// First-clear crystals.
    pub crystals: i64,
    /// Whether this was the first clear.
    pub first_clear: bool,
}

/// Checks that `stage` may be fought: unlocked and within the player's stamina.
pub fn check_fight(player: &Player, stage: &Stage, times: u32) -> Result<(), GameError> {
    let cleared = player.stages_cleared() as u32;
    if stage.number > cleared + 1 {
        return Err(GameError::Conflict(format!(
            "stage {}-{} is locked: clear stage {} first",
            stage.chapter,
            stage.stage,
            cleared + 1
        )));
    }
    let cost = stage.stamina * i64::from(times);
    let has = player.balances.stamina;
    if has < cost {
        return Err(crate::game::economy::InsufficientFunds { currency: Currency::Stamina, needed: cost, has }.into());
    }
    Ok(())
}

/// Applies a fought battle: stamina is charged only now that every check passed;
/// a win pays, a first clear pays crystals once and records the stars, and the
/// best stars are kept.
pub fn apply_fight(player: &mut Player, stage: &Stage, log: &BattleLog) -> Result<StageRewards, GameError> {
    check_fight(player, stage, 1)?;
    player.balances.debit(Currency::Stamina, stage.stamina)?;
    if log.winner != Side::Attacker {
        return Ok(StageRewards::default());
    }
    let idx = (stage.number - 1) as usize;
    let first_clear = idx == player.campaign_stars.len();
    if first_clear {
        player.campaign_stars.push(log.stars);
        player.balances.credit(Currency::Crystals, stage.first_clear_crystals);
    } else if let Some(best) = player.campaign_stars.get_mut(idx) {
        *best = (*best).max(log.stars);
    }
    player.balances.credit(Currency::Gold, stage.gold);
    player.add_xp(stage.xp);
    Ok(StageRewards {
        gold: stage.gold,
        xp: stage.xp,
        crystals: if first_clear { stage.first_clear_crystals } else { 0 },
        first_clear,
    })
}

/// Sweeps a 3★ stage `times` times: the same stamina and win rewards, no first clear.
pub fn sweep(player: &mut Player, stage: &Stage, times: u32, max: u32) -> Result<StageRewards, GameError> {
    if !(1..=max).contains(&times) {
        return Err(GameError::Invalid(format!("times must be between 1 and {max}, got {times}")));
    }
    let stars = player.campaign_stars.get((stage.number - 1) as usize).copied().unwrap_or(0);
    if stars < 3 {
        return Err(GameError::Conflict(format!(
            "only 3★ stages can be swept; {}-{} has {stars}★",
            stage.chapter, stage.stage
        )));
    }
    check_fight(player, stage, times)?;
    player.balances.debit(Currency::Stamina, stage.stamina * i64::from(times))?;
    let gold = stage.gold * i64::from(times);
    let xp = stage.xp * u64::from(times);
    player.balances.credit(Currency::Gold, gold);
    player.add_xp(xp);
    Ok(StageRewards { gold, xp, crystals: 0, first_clear: false })
}
