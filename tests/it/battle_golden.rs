//! Golden battles: fixed (seed, teams) cases whose full logs are checked in, so
//! that any change to the rules shows up as a diff. After an intended rule
//! change (with a new RULES_VERSION), regenerate with `UPDATE_GOLDEN=1 cargo test
//! --test it battle_golden` and review the diff.

use std::path::PathBuf;

use divine_heroes::game::battle::{simulate, team_snapshot, TeamSnapshot, RULES_VERSION};
use divine_heroes::game::data::GameData;
use divine_heroes::game::player::Player;

fn player_team(data: &GameData, heroes: &[(&str, u32, u32)]) -> TeamSnapshot {
    let mut p = Player::new("golden".into(), "Golden", String::new(), chrono::DateTime::UNIX_EPOCH);
    p.heroes.clear();
    p.team = vec![None; 6];
    for (slot, &(id, level, stars)) in heroes.iter().enumerate() {
        p.heroes.insert(
            id.to_string(),
            divine_heroes::game::player::OwnedHero {
                hero_id: id.into(),
                level,
                stars,
                shards: 0,
                acquired_at: p.created_at,
                acquired_version: 0,
            },
        );
        p.team[slot] = Some(id.to_string());
    }
    team_snapshot(&p, &data.catalog)
}

fn cases(data: &GameData) -> Vec<(&'static str, u64, TeamSnapshot, TeamSnapshot)> {
    let starters =
        player_team(data, &[("marcus_the_shield", 1, 1), ("soren_the_flame", 1, 1), ("kai_the_tempest", 1, 1)]);
    let stage_1_1 = data.battle.campaign.stage(&data.catalog, 1, 1).unwrap().enemies;
    let boss_3 = data.battle.campaign.stage(&data.catalog, 3, 21).unwrap().enemies;
    let full = player_team(
        data,
        &[
            ("michael_the_archangel", 60, 3),
            ("malachi_the_destroyer", 55, 3),
            ("leon_the_paladin", 50, 2),
            ("raphael_the_eternal", 60, 3),
            ("selene_the_moonbow", 50, 2),
            ("apollyon_the_fallen", 60, 3),
        ],
    );
    let mirror =
        player_team(data, &[("darius_the_void", 30, 2), ("lucian_the_divine", 30, 2), ("artemis_the_swift", 30, 2)]);
    vec![
        ("starters_vs_stage_1_1", 1, starters.clone(), stage_1_1),
        ("starters_vs_chapter_3_boss", 2, starters, boss_3),
        ("six_vs_six", 3, full.clone(), mirror.clone()),
        ("mirror_match", 4, mirror.clone(), mirror),
        ("six_vs_six_other_seed", 99, full.clone(), full),
    ]
}

#[test]
fn golden_logs_are_stable() {
    let data = GameData::builtin();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    for (name, seed, attacker, defender) in cases(&data) {
        let log = simulate(RULES_VERSION, seed, &attacker, &defender);
        let text = serde_json::to_string_pretty(&serde_json::json!({
            "attacker": attacker, "defender": defender, "log": log,
        }))
        .unwrap()
            + "\n";
        let path = dir.join(format!("{name}.json"));
        if update {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; generate with UPDATE_GOLDEN=1", path.display()));
        assert!(expected == text, "{name}: the log differs from {}: a rule changed", path.display());
    }
}
